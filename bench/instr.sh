#!/usr/bin/env bash
# Instructions per echoed message of the lua-ws echo server under `valgrind --tool=callgrind`: a
# figure that stays the same on a busy machine, for catching regressions (`make bench-instr`).
# The server runs twice under callgrind, echoing BASE and then BASE + MSGS messages of 32 bytes
# on one connection, one in flight; the difference of the two totals divided by MSGS leaves out
# start-up, the handshake and shutdown.
# Environment: INSTR_MSGS (default 20000), INSTR_BASE (default 1000), BENCH_BIN (bench/bin);
# INSTR_CONNS (default 1) connections with INSTR_INFLIGHT (default 1) messages in flight each,
# of INSTR_SIZE bytes (default 32); INSTR_SERVER, the server script (default examples/echo.lua;
# bench/servers/idle_callbacks.lua counts the callback style); INSTR_DEFLATE=shared|dedicated,
# permessage-deflate (the server's --deflate=MODE, the client's --deflate with its JSON-like text).
set -u
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BIN=${BENCH_BIN:-bench/bin}
MSGS=${INSTR_MSGS:-20000}
BASE=${INSTR_BASE:-1000}
PORT=${BENCH_PORT:-19090}
CONNS=${INSTR_CONNS:-1}
INFLIGHT=${INSTR_INFLIGHT:-1}
SIZE=${INSTR_SIZE:-32}
SERVER=${INSTR_SERVER:-examples/echo.lua}
DEFLATE=${INSTR_DEFLATE:-}
SERVER_ARGS=() CLIENT_ARGS=()
[ -n "$DEFLATE" ] && SERVER_ARGS=(--deflate="$DEFLATE") CLIENT_ARGS=(--deflate)
TMP=$(mktemp -d /tmp/lua-ws-instr.XXXXXX)
PID=
cleanup() {
  [ -n "$PID" ] && kill -KILL "$PID" 2>/dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

command -v valgrind >/dev/null || { echo "bench-instr: valgrind is not installed" >&2; exit 1; }
[ -f "$SERVER" ] || { echo "bench-instr: $SERVER is missing" >&2; exit 1; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Echo $1 messages under callgrind; prints the total instruction count.
measure() {
  local count=$1 out=$TMP/callgrind.$1
  while port_open "$PORT"; do PORT=$((PORT + 1)); done
  valgrind --tool=callgrind --callgrind-out-file="$out" lua5.4 "$SERVER" --port "$PORT" "${SERVER_ARGS[@]}" \
    >"$TMP/server.$count.log" 2>&1 &
  PID=$!
  for _ in $(seq 1 600); do port_open "$PORT" && break; sleep 0.1; done  # up to 60 s
  # Another program that took the port meanwhile would answer instead of this server.
  kill -0 "$PID" 2>/dev/null || { echo "bench-instr: the server exited: $(cat "$TMP/server.$count.log")" >&2; PID=; return 1; }
  if ! "$BIN/loadclient" --scenario echo --port "$PORT" --conns "$CONNS" --inflight "$INFLIGHT" --size "$SIZE" --count "$count" \
    "${CLIENT_ARGS[@]}" --deadline 300 --label lua-ws-callgrind >"$TMP/client.$count" 2>&1; then
    echo "bench-instr: the client failed: $(cat "$TMP/client.$count")" >&2
    return 1
  fi
  kill -TERM "$PID"
  for _ in $(seq 1 300); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$PID" 2>/dev/null && { echo "bench-instr: the server did not exit on SIGTERM" >&2; return 1; }
  wait "$PID" 2>/dev/null
  PID=
  awk '/^(summary|totals):/ {print $2; exit}' "$out"
}

a=$(measure "$BASE") || exit 1
b=$(measure "$((BASE + MSGS))") || exit 1
[ -n "$a" ] && [ -n "$b" ] || { echo "bench-instr: callgrind wrote no totals" >&2; exit 1; }
if [ "$SERVER" = examples/echo.lua ] && [ "$CONNS" = 1 ] && [ "$INFLIGHT" = 1 ] && [ "$SIZE" = 32 ]; then
  echo "bench-instr: lua-ws echo, 1 connection, 32-byte text messages, 1 in flight"
else
  echo "bench-instr: lua-ws $SERVER${DEFLATE:+ --deflate=$DEFLATE}, $CONNS connection(s), $SIZE-byte text messages, $INFLIGHT in flight each"
fi
echo "instructions_total_${BASE}=$a instructions_total_$((BASE + MSGS))=$b"
awk -v a="$a" -v b="$b" -v n="$MSGS" 'BEGIN { printf "instructions_per_message=%.0f\n", (b - a) / n }'
