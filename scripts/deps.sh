#!/usr/bin/env bash
# Installs everything lua-ws needs to build, test and demo on Debian 12: Debian packages through apt-get
# and the Node test peers through npm. Idempotent: it asks apt only for what is missing (one
# `apt-get update`, only then) and runs npm only when node_modules is missing or stale.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# One group per line; append names freely (a name already installed costs nothing).
PACKAGES=(
  build-essential gcc make pkg-config ca-certificates
  lua5.4 liblua5.4-dev lua5.1 liblua5.1-0-dev lua5.3 liblua5.3-dev
  # LuaJIT 2.1: Debian's `luajit`/`libluajit-5.1-dev` conflict with libnginx-mod-http-lua, which needs
  # libluajit2-5.1-2 (OpenResty's LuaJIT branch). `luajit2`/`libluajit2-5.1-dev` come from that same
  # branch and install the same /usr/bin/luajit and /usr/include/luajit-2.1, so this one set serves the
  # codec's LuaJIT build and nginx+lua together (checked with apt-get -s on bookworm).
  luajit2 libluajit2-5.1-dev
  nginx libnginx-mod-http-lua
  libev-dev libssl-dev zlib1g-dev openssl
  lua-busted luarocks lua-cjson lua-socket
  python3 python3-websockets python3-prometheus-client
  clang libfuzzer-14-dev libclang-rt-14-dev
  chromium fonts-liberation fonts-dejavu-core
  valgrind procps
  # the Redis bus (scale-out): hiredis as the RESP codec, redis-server for the specs
  redis-server libhiredis-dev
  # the two-host bus spec: network namespaces and a veth pair (ip netns, ip link)
  iproute2
  # bench/ peers: libwebsockets, lua-http on cqueues
  libwebsockets-dev lua-http lua-cqueues
)

missing=()
for pkg in "${PACKAGES[@]}"; do
  if [ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$pkg" 2>/dev/null)" != "ii " ]; then
    missing+=("$pkg")
  fi
done
# Node: a machine may already carry a newer Node whose package provides npm itself (nodesource), and
# Debian's npm would conflict with it; so Debian's nodejs/npm are installed only when no node/npm runs.
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)

if [ "${#missing[@]}" -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "deps: run as root (or install sudo) to install: ${missing[*]}" >&2; exit 1; }
    sudo=(sudo)
  fi
  export DEBIAN_FRONTEND=noninteractive
  # Packages such as nginx start their service when installed; the tests start their own servers on
  # 127.0.0.1, so services are kept from starting for the duration of the install.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee /usr/sbin/policy-rc.d >/dev/null
    "${sudo[@]}" chmod 755 /usr/sbin/policy-rc.d
    trap '"${sudo[@]}" rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  "${sudo[@]}" apt-get update -q
  "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  echo "deps: all ${#PACKAGES[@]} Debian packages present"
fi

# Node peers (ws, playwright-core). playwright-core stays on 1.61, the last line that runs on Debian's
# own Node 18 as well as Node 20; it drives Debian's /usr/bin/chromium and never downloads a browser.
stamp=node_modules/.package-lock.json
if [ ! -d node_modules ] || [ ! -f "$stamp" ] || [ package.json -nt "$stamp" ] ||
   { [ -f package-lock.json ] && [ package-lock.json -nt "$stamp" ]; }; then
  echo "deps: installing Node packages"
  if [ -f package-lock.json ]; then
    npm ci --no-audit --no-fund
  else
    npm install --no-audit --no-fund
  fi
else
  echo "deps: node_modules up to date"
fi
