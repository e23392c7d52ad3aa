#!/usr/bin/env bash
# The cost of the ordered class against the fast one on one node: the fan-out scenario of the load
# client against bench/servers/broadcast_bus.lua with each class, on a redis-server of our own
# (127.0.0.1, no persistence). Prints the load client's line for each class and Redis's CPU per
# publish (INFO cpu over the run). Bounded: every step has a timeout; everything started is killed.
#   bash bench/bus_classes.sh [conns=100] [duration=3]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
CONNS=${1:-100} DURATION=${2:-3}
make -s bench/bin/loadclient >/dev/null 2>&1 || make -s BENCH_BIN=bench/bin bench/bin/loadclient
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
RPORT=$(free_port)
redis-server --bind 127.0.0.1 --port "$RPORT" --save '' --appendonly no --daemonize no >/dev/null &
RPID=$!
SPID=
cleanup() { [ -n "$SPID" ] && kill "$SPID" 2>/dev/null; kill "$RPID" 2>/dev/null; wait 2>/dev/null || true; }
trap cleanup EXIT
for _ in $(seq 50); do redis-cli -p "$RPORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
rcpu() { redis-cli -p "$RPORT" info cpu | awk -F: '/^used_cpu_(sys|user):/ { s += $2 } END { printf "%.6f", s }'; }
for class in fast ordered; do
  PORT=$(free_port)
  lua5.4 bench/servers/broadcast_bus.lua --port "$PORT" --redis "redis://127.0.0.1:$RPORT" --class "$class" >/dev/null &
  SPID=$!
  for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done
  before=$(rcpu)
  line=$(timeout 60 bench/bin/loadclient --scenario fanout --port "$PORT" --conns "$CONNS" --inflight 16 --size 32 \
    --duration "$DURATION" --server-pid "$SPID" --label "bus-$class")
  after=$(rcpu)
  msgs=$(sed -n "s/.* broadcasts=\([0-9]*\).*/\1/p" <<<"$line")
  echo "$line"
  awk -v a="$after" -v b="$before" -v m="$msgs" -v c="$class" \
    'BEGIN { if (m > 0) printf "  %s: redis cpu per publish %.2f us (INFO cpu over the warmup and the run, per timed broadcast)\n", c, (a - b) * 1e6 / m }'
  kill "$SPID"; wait "$SPID" 2>/dev/null || true; SPID=
done
