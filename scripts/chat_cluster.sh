#!/usr/bin/env bash
# `make chat-cluster`: the chat on two processes sharing one Redis, for trying it in two browser
# tabs: a redis-server of its own on 127.0.0.1:$REDIS_PORT (nothing saved to disk) and two
# examples/chat.lua processes on $DEMO_PORT and $DEMO_PORT2. Ctrl-C stops all three.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

DEMO_PORT=${DEMO_PORT:-8080}
DEMO_PORT2=${DEMO_PORT2:-8081}
REDIS_PORT=${REDIS_PORT:-6390}
pids=()

stop() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop INT TERM EXIT

redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no --loglevel warning &
pids+=($!)
for _ in $(seq 50); do
  redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break
  sleep 0.1
done
redis-cli -p "$REDIS_PORT" ping >/dev/null || { echo "chat-cluster: redis-server did not start" >&2; exit 1; }

for port in "$DEMO_PORT" "$DEMO_PORT2"; do
  lua5.4 examples/chat.lua --port "$port" --redis "redis://127.0.0.1:$REDIS_PORT" &
  pids+=($!)
done
echo "chat-cluster: two chat processes on one Redis (127.0.0.1:$REDIS_PORT):"
echo "  http://127.0.0.1:$DEMO_PORT/ and http://127.0.0.1:$DEMO_PORT2/ (open one in each tab; Ctrl-C stops)"
wait -n "${pids[@]}"
