#!/usr/bin/env bash
# Instructions per Socket.IO echo-with-ack of bench/socketio/server.lua under
# `valgrind --tool=callgrind` (as bench/instr.sh for the plain echo): the server echoes BASE and
# then BASE + MSGS events on one connection (the load client with --socketio, one in flight);
# the difference of the two totals divided by MSGS leaves out start-up, handshakes and shutdown.
# A figure that stays the same on a busy machine.
# Environment: INSTR_MSGS (default 20000), INSTR_BASE (default 1000), INSTR_LUA (default lua5.4),
# INSTR_INFLIGHT (default 1),
# BENCH_PORT (default 19611).
set -u
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
MSGS=${INSTR_MSGS:-20000}
BASE=${INSTR_BASE:-1000}
PORT=${BENCH_PORT:-19611}
LUA=${INSTR_LUA:-lua5.4}
INFLIGHT=${INSTR_INFLIGHT:-1}
TMP=$(mktemp -d /tmp/lua-ws-sio-instr.XXXXXX)
PID=
cleanup() {
  [ -n "$PID" ] && kill -KILL "$PID" 2>/dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
command -v valgrind >/dev/null || { echo "sio-instr: valgrind is not installed" >&2; exit 1; }
[ -x bench/bin/loadclient ] || make --no-print-directory bench/bin/loadclient >/dev/null || exit 1

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

measure() {
  local count=$1 out=$TMP/callgrind.$1
  while port_open "$PORT"; do PORT=$((PORT + 1)); done
  valgrind --tool=callgrind --callgrind-out-file="$out" "$LUA" bench/socketio/server.lua --port "$PORT" \
    >"$TMP/server.$count.log" 2>&1 &
  PID=$!
  for _ in $(seq 1 600); do port_open "$PORT" && break; sleep 0.1; done
  kill -0 "$PID" 2>/dev/null || { echo "sio-instr: the server exited: $(cat "$TMP/server.$count.log")" >&2; PID=; return 1; }
  if ! bench/bin/loadclient --socketio --scenario echo --port "$PORT" --conns 1 --inflight "$INFLIGHT" --size 32 \
    --count "$count" --deadline 300 --label lua-ws-callgrind >"$TMP/client.$count" 2>&1; then
    echo "sio-instr: the client failed: $(cat "$TMP/client.$count")" >&2
    return 1
  fi
  kill -TERM "$PID"
  for _ in $(seq 1 300); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$PID" 2>/dev/null
  wait "$PID" 2>/dev/null
  PID=
  awk '/^(summary|totals):/ {print $2; exit}' "$out"
}

a=$(measure "$BASE") || exit 1
b=$(measure "$((BASE + MSGS))") || exit 1
[ -n "$a" ] && [ -n "$b" ] || { echo "sio-instr: callgrind wrote no totals" >&2; exit 1; }
echo "sio-instr: $LUA bench/socketio/server.lua, echo with ack, 1 connection, 32-byte payloads, $INFLIGHT in flight"
echo "instructions_total_$BASE=$a instructions_total_$((BASE + MSGS))=$b"
echo "instructions_per_event=$(( (b - a) / MSGS ))"
