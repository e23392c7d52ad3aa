#!/usr/bin/env bash
# Serve the echo (ws://127.0.0.1:N/) and the chat (ws://127.0.0.1:N/chat) with Debian's nginx and
# lua-nginx-module, in the foreground, from a prefix directory of its own under a temporary folder.
#   bash examples/openresty/run.sh N
# Environment: WORKERS (default 1); WS_NGINX_INCLUDE, a file of extra `location` blocks to serve too;
# LUAJIT_INC, the headers of the LuaJIT nginx runs on (ws.codec is built against them when needed);
# WS_LUAJIT_BUILD, where that build goes (default build/luajit); WS_CODEC_CPATH, a directory whose
# ws/codec.so is already built for that LuaJIT (then nothing is built).
set -euo pipefail

port=${1:?usage: run.sh PORT}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
here=$root/examples/openresty
luajit_inc=${LUAJIT_INC:-/usr/include/luajit-2.1}
build=${WS_LUAJIT_BUILD:-$root/build/luajit}

command -v nginx >/dev/null || { echo "run.sh: nginx not found (bash scripts/deps.sh installs it)" >&2; exit 1; }
[ -f /usr/lib/nginx/modules/ngx_http_lua_module.so ] ||
  { echo "run.sh: libnginx-mod-http-lua is not installed" >&2; exit 1; }
[ -f "$luajit_inc/lua.h" ] || { echo "run.sh: no LuaJIT headers in $luajit_inc" >&2; exit 1; }

# ws.codec for nginx's LuaJIT (Lua 5.1 ABI), apart from the Lua 5.4 build in lua/ws.
if [ -n "${WS_CODEC_CPATH:-}" ]; then
  build=$WS_CODEC_CPATH
else
  make -C "$root" --no-print-directory -s LUA=jit LUA_INC="$luajit_inc" \
    BUILD="$build/obj" OUT="$build/ws" codec >&2
fi

prefix=$(mktemp -d "${TMPDIR:-/tmp}/ws-openresty.XXXXXX")
mkdir -p "$prefix/conf/conf.d" "$prefix/logs" "$prefix/tmp"
sed -e "s|@PORT@|$port|g" -e "s|@ROOT@|$root|g" -e "s|@CPATH@|$build|g" -e "s|@WORKERS@|${WORKERS:-1}|g" \
  "$here/nginx.conf" >"$prefix/conf/nginx.conf"
if [ -n "${WS_NGINX_INCLUDE:-}" ]; then
  sed -e "s|@PORT@|$port|g" -e "s|@ROOT@|$root|g" "$WS_NGINX_INCLUDE" >"$prefix/conf/conf.d/extra.conf"
fi

nginx_pid=
cleanup() {
  if [ -n "$nginx_pid" ] && kill -0 "$nginx_pid" 2>/dev/null; then
    kill -TERM "$nginx_pid" 2>/dev/null || true
    wait "$nginx_pid" 2>/dev/null || true
  fi
  rm -rf "$prefix"
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

echo "run.sh: nginx on ws://127.0.0.1:$port/ (echo) and ws://127.0.0.1:$port/chat, prefix $prefix" >&2
# Workers run as `nobody` when nginx starts as root, and could not read a tree under a private
# home such as /root: as root, the workers keep root's identity.
globals=()
[ "$(id -u)" -eq 0 ] && globals=(-g "user root;")
nginx -p "$prefix" -c conf/nginx.conf "${globals[@]}" &
nginx_pid=$!
wait "$nginx_pid"
