#!/usr/bin/env bash
# Runs lua-ws and every peer available on this machine through the same load client, one server
# at a time pinned to core 0 and the client pinned to core 1, prints one table per scenario with
# each figure and the ratio lua-ws / peer, and writes bench/RESULTS.md (tables, the exact
# commands and the client's raw lines). Used by `make bench`; see bench/README.md.
#
# Environment:
#   BENCH_QUICK=1         short runs and fewer combinations (a smoke run of the whole kit)
#   BENCH_ROUNDS=N        rounds per figure, the median is kept (default 1, 3 for a careful run)
#   BENCH_SERVERS="a b"   only these (names: lua-ws lua-ws-cb lua-ws-resty uws lws nginx node lua-http python tcp)
#   BENCH_SCENARIOS="…"   only these (echo fanout handshake idle tls-echo tls-handshake deflate)
#   BENCH_TLS_KEY=SPEC    the wss:// rows' key, as openssl req -newkey takes it (default ec, P-256;
#                         e.g. rsa:2048)
#   BENCH_PORT=N          first port to use (default 19100; each server start takes the next)
#   BENCH_OUT=FILE        where the report goes (default bench/RESULTS.md)
#   UWS_ECHO=PATH         an already built uWebSockets server taking --port N [--mode echo|broadcast]
#                         (and --tls-cert F --tls-key F for the wss:// rows)
#   RESTY_WEBSOCKET_LIB=DIR  lua-resty-websocket's lib/ directory (holding resty/websocket/server.lua)
#   WS_CODEC_CPATH=DIR    lua-ws-resty: a directory whose ws/codec.so is built for nginx's LuaJIT
#                         (default: built into build/luajit/ws, as examples/openresty/run.sh does)
set -u
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
BIN=${BENCH_BIN:-bench/bin}
OUT=${BENCH_OUT:-bench/RESULTS.md}
QUICK=${BENCH_QUICK:-0}
ROUNDS=${BENCH_ROUNDS:-1}
PORT=${BENCH_PORT:-19100}
TMP=$(mktemp -d /tmp/lua-ws-bench.XXXXXX)
RAW=$TMP/raw.txt
CMDS=$TMP/commands.txt
NOTES=$TMP/notes.txt
: >"$RAW" >"$CMDS" >"$NOTES"
SERVER_PID=

LUA_HTTP_PATH="/usr/share/lua/5.4/?.lua;/usr/share/lua/5.4/?/init.lua;/usr/share/lua/5.3/?.lua;/usr/share/lua/5.3/?/init.lua;/usr/share/lua/5.2/?.lua;/usr/share/lua/5.2/?/init.lua;;"

if [ "$QUICK" = 1 ]; then
  DURATION=1; WARMUP=0.3
  ECHO_SET="1:1:32 100:1:32 100:16:32 1000:16:32 100:16:1024 100:1:65536"
  FANOUT_SET="1000:16:32"
  HANDSHAKE_SET="16"
  IDLE_CONNS=10000; HOLD=0.5
else
  DURATION=${BENCH_DURATION:-3}; WARMUP=0.5
  ECHO_SET="1:1:32 100:1:32 100:16:32 1000:1:32 1000:16:32 100:1:1024 100:16:1024 1000:1:1024 1000:16:1024 1:1:65536 100:1:65536 100:16:65536 1000:1:65536"
  FANOUT_SET="100:16:32 1000:16:32 1000:16:1024"
  HANDSHAKE_SET="16"
  IDLE_CONNS=10000; HOLD=2
fi
# Echo with 10,000 connections, 1 in flight (in the echo tables, after ECHO_SET's rows).
ECHO_10K_SET="10000:1:32 10000:1:1024"
# wss://: echo and handshakes over TLS (loadclient --tls) against the servers that serve it.
if [ "$QUICK" = 1 ]; then
  TLS_ECHO_SET="100:16:32 100:1:16384"
else
  TLS_ECHO_SET="100:1:32 100:16:32 100:1:16384 100:16:16384"
fi
TLS_HANDSHAKE_SET="16"
TLS_SERVERS="lua-ws lua-ws-cb uws node"
TLS_KEY=${BENCH_TLS_KEY:-ec}
TLS_DIR=
# lua-ws-cb: lua-ws in the callback style (no coroutine per connection): idle and handshakes.
# lua-ws-resty: lua-ws's ws.resty inside the same nginx as the `nginx` peer (the OpenResty section).
ALL_SERVERS="lua-ws lua-ws-cb lua-ws-resty uws lws nginx node lua-http python tcp"
SERVERS=${BENCH_SERVERS:-$ALL_SERVERS}
SCENARIOS=${BENCH_SCENARIOS:-echo fanout handshake idle tls-echo tls-handshake deflate}

. bench/common.sh

note() { echo "bench: $*" >&2; echo "- $*" >>"$NOTES"; }

# --- OpenResty: lua-ws's ws.resty in Debian's nginx + lua-nginx-module (server lua-ws-resty) ---
# The same nginx, process settings and protocols as the lua-resty-websocket peer (`nginx`);
# ws.codec is built for nginx's LuaJIT (Lua 5.1 ABI) beside the Lua 5.4 build.
RESTY_CPATH=${WS_CODEC_CPATH:-$ROOT/build/luajit}
resty_unavailable() {
  command -v nginx >/dev/null || { echo "nginx is not installed"; return; }
  [ -f /usr/lib/nginx/modules/ngx_http_lua_module.so ] || { echo "libnginx-mod-http-lua is not installed"; return; }
  if [ -z "${WS_CODEC_CPATH:-}" ]; then
    [ -f /usr/include/luajit-2.1/lua.h ] || { echo "no LuaJIT headers in /usr/include/luajit-2.1"; return; }
    make -s --no-print-directory LUA=jit LUA_INC=/usr/include/luajit-2.1 BUILD="$RESTY_CPATH/obj" \
      OUT="$RESTY_CPATH/ws" codec >/dev/null 2>&1 || { echo "ws.codec did not build for LuaJIT"; return; }
  fi
  [ -f "$RESTY_CPATH/ws/codec.so" ] || echo "no ws/codec.so in $RESTY_CPATH"
}
resty_cmd() {
  local mode=$1 port=$2 prefix=$TMP/nginx-ws-$2
  mkdir -p "$prefix/tmp"
  sed -e "s|@PREFIX@|$prefix|g" -e "s|@PORT@|$port|g" -e "s|@MODE@|$mode|g" -e "s|@ROOT@|$ROOT|g" \
    -e "s|@CPATH@|$RESTY_CPATH|g" -e "s|@BENCH@|$ROOT/bench|g" \
    bench/servers/nginx_ws_resty.conf >"$prefix/nginx.conf"
  echo "nginx -p $prefix -c $prefix/nginx.conf -e $prefix/error.log"
}
# --- end of the OpenResty section ---

stop_server() {
  [ -n "$SERVER_PID" ] || return 0
  stop_pid "$SERVER_PID" 40
  SERVER_PID=
}
cleanup() { stop_server; rm -rf "$TMP"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

# 10,000 connections need more descriptors than the usual 1024, on both sides.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null


# Why a server cannot run here, or nothing when it can.
unavailable() {
  case $1 in
  lua-ws|lua-ws-cb)
    [ -f examples/echo.lua ] || { echo "examples/echo.lua is missing"; return; }
    [ "$1" = lua-ws ] || [ -f bench/servers/idle_callbacks.lua ] || { echo "bench/servers/idle_callbacks.lua is missing"; return; }
    lua5.4 -e 'package.path="lua/?.lua;lua/?/init.lua;"..package.path package.cpath="lua/?.so;"..package.cpath require "ws"' \
      2>/dev/null || echo "lua5.4 cannot load the ws module (run make first)" ;;
  lua-ws-resty) resty_unavailable ;;
  uws)
    [ -n "${UWS_ECHO:-}" ] && [ -x "${UWS_ECHO:-}" ] || echo "UWS_ECHO is not set to a built uWebSockets server" ;;
  lws)
    [ -x "$BIN/lws_server" ] || echo "$BIN/lws_server was not built (libwebsockets-dev missing?)" ;;
  nginx)
    command -v nginx >/dev/null || { echo "nginx is not installed"; return; }
    [ -f /usr/lib/nginx/modules/ngx_http_lua_module.so ] || { echo "libnginx-mod-http-lua is not installed"; return; }
    [ -n "${RESTY_WEBSOCKET_LIB:-}" ] && [ -f "${RESTY_WEBSOCKET_LIB:-}/resty/websocket/server.lua" ] ||
      echo "RESTY_WEBSOCKET_LIB does not point at lua-resty-websocket's lib/ directory" ;;
  node)
    command -v node >/dev/null || { echo "node is not installed"; return; }
    node -e 'require("ws")' 2>/dev/null || echo "the npm package ws is not installed (scripts/deps.sh)" ;;
  lua-http)
    LUA_PATH=$LUA_HTTP_PATH lua5.4 -e 'require "http.server" require "http.websocket"' 2>/dev/null ||
      echo "lua-http / lua-cqueues are not installed" ;;
  python)
    /usr/bin/python3 -c 'import websockets' 2>/dev/null || echo "python3-websockets is not installed" ;;
  tcp)
    [ -x "$BIN/tcp_echo" ] || echo "$BIN/tcp_echo was not built" ;;
  esac
}

# wss://: a self-signed certificate for 127.0.0.1, made once per run in the temporary directory.
make_tls_cert() {
  [ -n "$TLS_DIR" ] && return 0
  local dir=$TMP/tls newkey=(-newkey "$TLS_KEY")
  [ "$TLS_KEY" = ec ] && newkey=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1)
  mkdir -p "$dir"
  if ! openssl req -x509 "${newkey[@]}" -nodes -keyout "$dir/key.pem" -out "$dir/cert.pem" -days 2 \
      -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 >"$dir/openssl.log" 2>&1; then
    note "wss:// rows skipped: openssl req failed: $(tail -n 2 "$dir/openssl.log" | tr '\n' ' ')"
    return 1
  fi
  TLS_DIR=$dir
}

# The command that starts server $1 serving wss:// echo on port $2.
tls_server_cmd() {
  local name=$1 port=$2 tls="--tls-cert $TLS_DIR/cert.pem --tls-key $TLS_DIR/key.pem"
  case $name in
  lua-ws) echo "lua5.4 examples/echo.lua --port $port $tls" ;;
  lua-ws-cb) echo "lua5.4 bench/servers/idle_callbacks.lua --port $port $tls" ;;
  uws) echo "$UWS_ECHO --port $port --mode echo $tls" ;;
  node) echo "node bench/peers/node_ws.js --port $port --mode echo $tls" ;;
  esac
}

# The command that starts server $1 in mode $2 (echo|broadcast|tls, tls: wss:// echo) on port $3.
server_cmd() {
  local name=$1 mode=$2 port=$3
  if [ "$mode" = tls ]; then tls_server_cmd "$name" "$port"; return; fi
  case $name in
  lua-ws)
    if [ "$mode" = echo ]; then echo "lua5.4 examples/echo.lua --port $port"
    else echo "lua5.4 bench/servers/broadcast.lua --port $port"; fi ;;
  lua-ws-cb) echo "lua5.4 bench/servers/idle_callbacks.lua --port $port" ;;
  lua-ws-resty) resty_cmd "$mode" "$port" ;;
  uws) echo "$UWS_ECHO --port $port --mode $mode" ;;
  lws) echo "$BIN/lws_server --port $port --mode $mode" ;;
  nginx)
    local prefix=$TMP/nginx-$port
    mkdir -p "$prefix/tmp"
    sed -e "s|@PREFIX@|$prefix|g" -e "s|@PORT@|$port|g" -e "s|@MODE@|$mode|g" \
      -e "s|@RESTY_LIB@|$RESTY_WEBSOCKET_LIB|g" -e "s|@BENCH@|$ROOT/bench|g" \
      bench/peers/nginx_resty.conf >"$prefix/nginx.conf"
    echo "nginx -p $prefix -c $prefix/nginx.conf -e $prefix/error.log" ;;
  node) echo "node bench/peers/node_ws.js --port $port --mode $mode" ;;
  lua-http) echo "env LUA_PATH=$LUA_HTTP_PATH lua5.4 bench/peers/lua_http.lua --port $port --mode $mode" ;;
  python) echo "/usr/bin/python3 bench/peers/python_ws.py --port $port --mode $mode" ;;
  tcp) echo "$BIN/tcp_echo --port $port" ;;
  esac
}

# Start "$1" (a command line) on core 0 with its output in $2, and wait up to 10 s for $PORT;
# $3 names it in the note when it does not listen.
launch_server() {
  local cmd=$1 log=$2 what=$3
  echo "taskset -c 0 $cmd" >>"$CMDS"
  set -f  # the command is a word list on purpose, never a glob (LUA_PATH holds '?')
  # shellcheck disable=SC2086
  taskset -c 0 $cmd >"$log" 2>&1 &
  SERVER_PID=$!
  set +f
  for _ in $(seq 1 200); do
    if port_open "$PORT"; then return 0; fi
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.05
  done
  note "$what did not start listening: $(tail -n 3 "$log" | tr '\n' ' ')"
  stop_server
  return 1
}

start_server() {
  local name=$1 mode=$2
  stop_server
  next_port
  launch_server "$(server_cmd "$name" "$mode" "$PORT")" "$TMP/server-$name-$mode-$PORT.log" "$name ($mode)"
}

# Run the client; keep the median line of $ROUNDS rounds by the figure named $1.
client() {
  local key=$1 name=$2; shift 2
  local args=(--port "$PORT" --label "$name" --server-pid "$SERVER_PID" "$@")
  [ "$name" = tcp ] && args+=(--raw)
  echo "taskset -c 1 $BIN/loadclient ${args[*]}" >>"$CMDS"
  local lines=() r line
  for r in $(seq 1 "$ROUNDS"); do
    line=$(timeout 300 taskset -c 1 "$BIN/loadclient" "${args[@]}" 2>>"$TMP/client.err")
    [ -n "$line" ] || line="scenario=${args[*]} server=$name failed=1 errors=1"
    lines+=("$line")
    kill -0 "$SERVER_PID" 2>/dev/null || { note "$name died during: ${args[*]}"; break; }
  done
  local median
  median=$(printf '%s\n' "${lines[@]}" |
    awk -v k="$key" '{v=0; for(i=1;i<=NF;i++){split($i,a,"="); if(a[1]==k) v=a[2]} print v "\t" $0}' |
    sort -g | awk -v n="${#lines[@]}" 'NR==int((n+1)/2){sub(/^[^\t]*\t/,""); print}')
  echo "$median" | tee -a "$RAW"
}

# The idle scenario runs each round on a fresh server: memory freed by one round's
# connections would otherwise serve the next round's and hide their cost. Median by bytes_per_conn.
idle_rounds() {
  local name=$1; shift
  local lines=() r line
  for r in $(seq 1 "$ROUNDS"); do
    start_server "$name" echo || return 0
    sleep 0.3  # let the fresh server settle before its baseline RSS is read
    local args=(--port "$PORT" --label "$name" --server-pid "$SERVER_PID" "$@")
    [ "$name" = tcp ] && args+=(--raw)
    echo "taskset -c 1 $BIN/loadclient ${args[*]}" >>"$CMDS"
    line=$(timeout 300 taskset -c 1 "$BIN/loadclient" "${args[@]}" 2>>"$TMP/client.err")
    [ -n "$line" ] || line="scenario=${args[*]} server=$name failed=1 errors=1"
    lines+=("$line")
    kill -0 "$SERVER_PID" 2>/dev/null || note "$name died during: ${args[*]}"
    stop_server
  done
  [ ${#lines[@]} -gt 0 ] || return 0
  printf '%s\n' "${lines[@]}" |
    awk '{v=0; for(i=1;i<=NF;i++){split($i,a,"="); if(a[1]=="bytes_per_conn") v=a[2]} print v "\t" $0}' |
    sort -g | awk -v n="${#lines[@]}" 'NR==int((n+1)/2){sub(/^[^\t]*\t/,""); print}' | tee -a "$RAW"
}

available=()
for s in $SERVERS; do
  why=$(unavailable "$s")
  if [ -n "$why" ]; then note "skipped $s: $why"; else available+=("$s"); fi
done
echo "bench: servers: ${available[*]:-none}; scenarios: $SCENARIOS; quick=$QUICK rounds=$ROUNDS" >&2

for scenario in $SCENARIOS; do
  for s in "${available[@]}"; do
    if [ "$s" = lua-ws-cb ]; then case $scenario in idle|handshake|tls-handshake) ;; *) continue ;; esac; fi
    case $scenario in
    echo)
      start_server "$s" echo || continue
      for combo in $ECHO_SET $ECHO_10K_SET; do
        IFS=: read -r conns inflight size <<<"$combo"
        client msgs_per_s "$s" --scenario echo --conns "$conns" --inflight "$inflight" --size "$size" \
          --duration "$DURATION" --warmup "$WARMUP"
        kill -0 "$SERVER_PID" 2>/dev/null || break
      done ;;
    fanout)
      [ "$s" = tcp ] && continue
      start_server "$s" broadcast || continue
      for combo in $FANOUT_SET; do
        IFS=: read -r conns inflight size <<<"$combo"
        client deliveries_per_s "$s" --scenario fanout --conns "$conns" --inflight "$inflight" --size "$size" \
          --duration "$DURATION" --warmup "$WARMUP"
        kill -0 "$SERVER_PID" 2>/dev/null || break
      done ;;
    handshake)
      [ "$s" = tcp ] && continue
      start_server "$s" echo || continue
      for conns in $HANDSHAKE_SET; do
        client handshakes_per_s "$s" --scenario handshake --conns "$conns" --duration "$DURATION" --warmup "$WARMUP"
      done ;;
    idle)
      idle_rounds "$s" --scenario idle --conns "$IDLE_CONNS" --hold "$HOLD" ;;
    tls-echo|tls-handshake)
      case " $TLS_SERVERS " in *" $s "*) ;; *) continue ;; esac
      make_tls_cert || continue
      start_server "$s" tls || continue
      if [ "$scenario" = tls-echo ]; then
        for combo in $TLS_ECHO_SET; do
          IFS=: read -r conns inflight size <<<"$combo"
          client msgs_per_s "$s" --tls --scenario echo --conns "$conns" --inflight "$inflight" --size "$size" \
            --duration "$DURATION" --warmup "$WARMUP"
          kill -0 "$SERVER_PID" 2>/dev/null || break
        done
      else
        for conns in $TLS_HANDSHAKE_SET; do
          client handshakes_per_s "$s" --tls --scenario handshake --conns "$conns" --duration "$DURATION" --warmup "$WARMUP"
        done
      fi ;;
    esac
    stop_server
  done
done

# ---- permessage-deflate (scenario "deflate") ----
# Echo of 1 KiB JSON-like text with permessage-deflate (loadclient --deflate): lua-ws's shared
# and dedicated modes, uWebSockets' SHARED_COMPRESSOR and DEDICATED_COMPRESSOR, Node ws with
# perMessageDeflate (every message compressed). Labels: <server>-shared|dedicated, node-deflate.
DEFLATE_SET="100:1:1024 100:16:1024"  # quick or not: two rows

deflate_cmd() {
  local label=$1 port=$2
  case $label in
  lua-ws-shared|lua-ws-dedicated) echo "lua5.4 examples/echo.lua --port $port --deflate=${label#lua-ws-}" ;;
  uws-shared|uws-dedicated) echo "$UWS_ECHO --port $port --mode echo --compress ${label#uws-}" ;;
  node-deflate) echo "node bench/peers/node_ws.js --port $port --mode echo --deflate" ;;
  esac
}

start_deflate_server() {
  local label=$1
  stop_server
  next_port
  launch_server "$(deflate_cmd "$label" "$PORT")" "$TMP/server-$label-$PORT.log" "$label"
}

case " $SCENARIOS " in
*" deflate "*)
  for s in "${available[@]}"; do
    case $s in
    lua-ws) labels="lua-ws-shared lua-ws-dedicated" ;;
    uws) labels="uws-shared uws-dedicated" ;;
    node) labels="node-deflate" ;;
    *) continue ;;
    esac
    for label in $labels; do
      start_deflate_server "$label" || continue
      for combo in $DEFLATE_SET; do
        IFS=: read -r conns inflight size <<<"$combo"
        client msgs_per_s "$label" --scenario echo --deflate --conns "$conns" --inflight "$inflight" --size "$size" \
          --duration "$DURATION" --warmup "$WARMUP"
        kill -0 "$SERVER_PID" 2>/dev/null || break
      done
      stop_server
    done
  done ;;
esac

# Tables to the terminal and the report.
lua5.4 bench/report.lua "$RAW" >"$TMP/tables.md" || note "report.lua failed"
cat "$TMP/tables.md"
{
  echo "# lua-ws benchmark results"
  echo
  echo "Generated by \`make bench\` (bench/run.sh) on $(date -u '+%Y-%m-%d %H:%M UTC'):"
  echo "$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), Linux $(uname -r)."
  echo "Each server runs alone, pinned to core 0 (\`taskset -c 0\`); the load client is pinned to core 1."
  echo "Mode: $([ "$QUICK" = 1 ] && echo "quick (BENCH_QUICK=1)" || echo full), ${DURATION} s timed after ${WARMUP} s warm-up, median of $ROUNDS round(s)."
  [ -n "$TLS_DIR" ] && echo "wss:// rows: a self-signed certificate (key: $TLS_KEY$([ "$TLS_KEY" = ec ] && echo ", P-256")) made for the run; the load client makes a full TLS handshake on every connection (OpenSSL $(openssl version | cut -d' ' -f2) defaults, no session resumption, no certificate check)."
  echo "Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine disturbs wall-clock figures; server CPU per message is steadier)."
  echo
  cat "$TMP/tables.md"
  echo
  report_notes "## Notes"
  echo
  # the profile notes (where the time goes, written by hand from callgrind runs) stay as they were
  if [ -f "$OUT" ] && grep -q '^<!-- profile begin -->' "$OUT"; then
    sed -n '/^<!-- profile begin -->/,/^<!-- profile end -->/p' "$OUT"
    echo
  fi
  echo "## Commands"
  echo
  echo "Servers are started from the repository root; ports vary per run. Environment:"
  echo
  for v in LUA_PATH LUA_CPATH UWS_ECHO RESTY_WEBSOCKET_LIB WS_CODEC_CPATH; do
    [ -n "${!v:-}" ] && echo "    $v=${!v}"
  done
  echo "    ulimit -n $(ulimit -n)"
  echo
  echo '```'
  cat "$CMDS"
  echo '```'
  echo
  report_raw "## Raw lines"
  # the section `make bench-bus` writes (bench/run_bus.sh) stays as it was
  if [ -f "$OUT" ] && grep -q '^<!-- bench-bus begin -->' "$OUT"; then
    echo
    sed -n '/^<!-- bench-bus begin -->/,/^<!-- bench-bus end -->/p' "$OUT"
  fi
} >"$TMP/report.md"
cp "$TMP/report.md" "$OUT"
echo "bench: wrote $OUT" >&2
