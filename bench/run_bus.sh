#!/usr/bin/env bash
# The Redis bus measured: lua-ws on two processes sharing one redis-server, and Socket.IO with
# @socket.io/redis-adapter on two Node processes sharing another, through the same load client
# (bench/loadclient.c; --socketio for Socket.IO). Used by `make bench-bus`; see bench/README.md.
#
# Every measurement gets a fresh redis-server (127.0.0.1, a free port, no persistence, killed by
# its pid) and fresh servers. Redis and the servers are pinned to core 0 (`taskset -c 0`), the
# load client to core 1, as in bench/run.sh: on a 2-core machine the two servers and Redis share
# one core, so throughput cannot grow with processes; CPU per delivery is the figure to compare.
#
# Scenarios (BENCH_BUS_SCENARIOS):
#   xfanout  1,000 subscribers, 32 B: first the lua-ws broadcast server alone (one process, no
#            bus: today's reference), then two processes on one Redis, the publisher and 500
#            subscribers on the first, 500 on the second; summed server CPU per delivery, Redis
#            CPU per publish
#   latency  100 subscribers split the same way, 1,000 publishes/s: send -> receipt on the
#            publishing process (local) and on the other one (remote); the bus adds the difference
#   chat     1,000 rooms of 2 members, one on each process: every message crosses the bus;
#            messages/s end to end (and one lua-ws process without a bus as the reference)
#   rooms    the same rooms, both members of a room on one process (even rooms on the first,
#            odd on the second): what each process receives from Redis for rooms it does not hold
#   ordered  the chat shape with the rooms in the ordered class (when ws.bus_ordered is there):
#            every message through Redis's script first, delivered in Redis's order
# After each measurement the servers print their bus counters (messages received from Redis) and
# Redis's INFO (pubsub channels and patterns) is read while the load runs.
#
# Environment:
#   BENCH_BUS_SCENARIOS="xfanout latency chat rooms ordered"   BENCH_BUS_SERVERS="lua-ws socketio"
#   BENCH_DURATION=3  BENCH_ROUNDS=1 (median)  BENCH_PORT=19400  BENCH_OUT=bench/RESULTS.md
#   BENCH_QUICK=1 (1 s runs)
# The report replaces the section between "<!-- bench-bus begin -->" and "<!-- bench-bus end -->"
# in BENCH_OUT (appended when missing); bench/run.sh keeps that section when it rewrites the file.
set -u
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
BIN=${BENCH_BIN:-bench/bin}
OUT=${BENCH_OUT:-bench/RESULTS.md}
QUICK=${BENCH_QUICK:-0}
ROUNDS=${BENCH_ROUNDS:-1}
PORT=${BENCH_PORT:-19400}
SCENARIOS=${BENCH_BUS_SCENARIOS:-xfanout latency chat rooms ordered}
SERVERS=${BENCH_BUS_SERVERS:-lua-ws socketio}
if [ "$QUICK" = 1 ]; then DURATION=1; WARMUP=0.3; else DURATION=${BENCH_DURATION:-3}; WARMUP=0.5; fi
TMP=$(mktemp -d /tmp/lua-ws-bench-bus.XXXXXX)
RAW=$TMP/raw.txt
CMDS=$TMP/commands.txt
NOTES=$TMP/notes.txt
: >"$RAW" >"$CMDS" >"$NOTES"
PIDS=()        # servers of the current measurement
REDIS_PID=
REDIS_PORT=

. bench/common.sh

note() { echo "bench-bus: $*" >&2; echo "- $*" >>"$NOTES"; }

stop_servers() {
  local p
  for p in "${PIDS[@]}"; do stop_pid "$p"; done
  PIDS=()
}
stop_redis() {
  [ -n "$REDIS_PID" ] || return 0
  stop_pid "$REDIS_PID"
  REDIS_PID=
}
cleanup() { stop_servers; stop_redis; rm -rf "$TMP"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null

rcli() { timeout 10 redis-cli -h 127.0.0.1 -p "$REDIS_PORT" --raw "$@" 2>/dev/null; }

start_redis() {
  stop_redis
  next_port
  REDIS_PORT=$PORT
  local cmd="redis-server --bind 127.0.0.1 --port $REDIS_PORT --save '' --appendonly no --daemonize no --protected-mode no"
  echo "taskset -c 0 $cmd" >>"$CMDS"
  taskset -c 0 redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no --daemonize no \
    --protected-mode no >"$TMP/redis-$REDIS_PORT.log" 2>&1 &
  REDIS_PID=$!
  for _ in $(seq 1 100); do
    [ "$(rcli PING)" = PONG ] && return 0
    kill -0 "$REDIS_PID" 2>/dev/null || break
    sleep 0.05
  done
  note "redis-server did not start: $(tail -n 3 "$TMP/redis-$REDIS_PORT.log" | tr '\n' ' ')"
  stop_redis
  return 1
}

# The command of server $1 (lua-ws | lua-ws-1 | socketio) in mode $2 (broadcast | chat) on port $3,
# node name $4 (with the bus of $REDIS_PORT; lua-ws-1 has no bus).
server_cmd() {
  local name=$1 mode=$2 port=$3 node=$4 script extra=""
  if [ "$mode" = broadcast ]; then script=bench/servers/broadcast.lua; else script=bench/servers/rooms.lua; fi
  [ "$mode" = ordered ] && extra=" --ordered"
  case $name in
  lua-ws-1) echo "lua5.4 $script --port $port" ;;
  lua-ws) echo "lua5.4 $script --port $port --redis redis://127.0.0.1:$REDIS_PORT --node $node$extra" ;;
  socketio) echo "node bench/peers/socketio_redis.js --port $port --redis redis://127.0.0.1:$REDIS_PORT --mode $mode" ;;
  esac
}

# Start $3 servers ($1 in mode $2); their ports in SPORTS, pids in PIDS, logs in SLOGS.
SPORTS=(); SLOGS=()
start_servers() {
  local name=$1 mode=$2 count=$3 i cmd log
  stop_servers
  SPORTS=(); SLOGS=()
  for i in $(seq 1 "$count"); do
    next_port
    cmd=$(server_cmd "$name" "$mode" "$PORT" "node$i")
    log=$TMP/server-$name-$mode-$PORT.log
    echo "taskset -c 0 $cmd" >>"$CMDS"
    # shellcheck disable=SC2086
    taskset -c 0 $cmd >"$log" 2>&1 &
    PIDS+=($!)
    SPORTS+=("$PORT")
    SLOGS+=("$log")
  done
  for i in "${!PIDS[@]}"; do
    local up=0
    for _ in $(seq 1 300); do  # up to 15 s (Node starts slowly on a busy machine)
      if grep -q listening "${SLOGS[$i]}" 2>/dev/null && port_open "${SPORTS[$i]}"; then up=1; break; fi
      kill -0 "${PIDS[$i]}" 2>/dev/null || break
      sleep 0.05
    done
    if [ $up = 0 ]; then
      note "$name ($mode) did not start: $(tail -n 3 "${SLOGS[$i]}" | tr '\n' ' ')"
      stop_servers
      return 1
    fi
  done
}

# The value of key $2 in the "bus ..." line of log $1 (0 when missing).
bus_field() {
  awk -v k="$2" '/^bus /{for(i=2;i<=NF;i++){split($i,a,"="); if(a[1]==k) v=a[2]}} END{print v+0}' "$1"
}

# One measurement: the servers are up; run the client with "$@" ($1: the figure the median is
# taken by), read Redis's pubsub INFO while it runs, stop the servers, add their bus counters;
# the line goes to $TMP/line.txt (no subshell: PIDS stays this shell's).
measure() {
  local key=$1 name=$2; shift 2
  local label=$name
  [ "$CUR_MODE" = ordered ] && label=$name-ordered
  local args=("$@" --label "$label" --server-pid "${PIDS[0]}")
  [ ${#PIDS[@]} -gt 1 ] && args+=(--port2 "${SPORTS[1]}" --server-pid2 "${PIDS[1]}")
  [ -n "$REDIS_PID" ] && args+=(--redis-pid "$REDIS_PID")
  [ "$name" = socketio ] && args+=(--socketio)
  echo "taskset -c 1 $BIN/loadclient ${args[*]}" >>"$CMDS"
  local out=$TMP/client.out
  timeout 300 taskset -c 1 "$BIN/loadclient" "${args[@]}" >"$out" 2>>"$TMP/client.err" &
  local cpid=$! chans=0 pats=0 c p
  # Redis's channels and patterns at their peak while the client runs (every 0.5 s, bounded)
  for _ in $(seq 1 1200); do
    kill -0 "$cpid" 2>/dev/null || break
    sleep 0.25
    [ -n "$REDIS_PID" ] || continue
    read -r c p < <(rcli INFO stats | tr -d '\r' |
      awk -F: '/^pubsub_channels:/{c=$2} /^pubsub_patterns:/{p=$2} END{print c+0, p+0}')
    [ "${c:-0}" -gt "$chans" ] && chans=$c
    [ "${p:-0}" -gt "$pats" ] && pats=$p
    sleep 0.25
  done
  wait "$cpid" 2>/dev/null
  local info="redis_pubsub_channels=$chans redis_pubsub_patterns=$pats"
  local line
  line=$(tail -n 1 "$out")
  [ -n "$line" ] || line="scenario=${args[*]} server=$name failed=1 errors=1"
  # the servers print their bus counters every 0.25 s when they change: wait until they settle
  # (a slow server still works through what Redis sent it), at most 20 s
  local prev="" cur="" settled=0 l
  for _ in $(seq 1 40); do
    sleep 0.5
    cur=""
    for l in "${SLOGS[@]}"; do cur="$cur|$(grep '^bus ' "$l" | tail -n 1)"; done
    [ "$cur" = "$prev" ] && { settled=1; break; }
    prev=$cur
  done
  [ $settled = 1 ] || note "$name: bus counters still moving 20 s after the run"
  local logs=("${SLOGS[@]}") n=${#PIDS[@]}
  stop_servers
  if [ "$name" != lua-ws-1 ] && [ "$n" -gt 1 ]; then
    local i extra="" pub=0 r own other
    for i in 0 1; do
      if [ "$name" = socketio ]; then  # the adapter gets its own messages back (its pattern), and drops them
        own=$(bus_field "${logs[$i]}" published)
        r=$(bus_field "${logs[$i]}" received)
        other=$((r - own))
      else  # own: its envelopes back, skipped; received + foreign: from the other process
        own=$(bus_field "${logs[$i]}" own)
        other=$(( $(bus_field "${logs[$i]}" received) + $(bus_field "${logs[$i]}" foreign) ))
        r=$((own + other))
      fi
      pub=$((pub + $(bus_field "${logs[$i]}" "$([ "$name" = socketio ] && echo published || echo sent)")))
      extra="$extra node$((i + 1))_bus_received=$r node$((i + 1))_bus_own=$own node$((i + 1))_bus_from_other=$other"
    done
    line="$line bus_published=$pub$extra $info"
  fi
  echo "$line" >"$TMP/line.txt"
}

# One round of configuration number $CASE (the same number in every round: the rounds run the
# whole list in turn, so a configuration and its reference see the same moments of a busy
# machine) on fresh Redis and servers; its lines go to $TMP/case-N.txt, the median is taken at
# the end by the figure named $1.
CASE=0
run_case() {
  local key=$1 name=$2 mode=$3 nservers=$4; shift 4
  CASE=$((CASE + 1))
  CUR_MODE=$mode
  echo "$key" >"$TMP/case-$CASE.key"
  local line
  if [ "$name" != lua-ws-1 ]; then start_redis || return 0; fi
  start_servers "$name" "$mode" "$nservers" || { stop_redis; return 0; }
  : >"$TMP/line.txt"
  measure "$key" "$name" --port "${SPORTS[0]}" "$@"
  line=$(cat "$TMP/line.txt")
  stop_redis
  echo "$line" | tee -a "$TMP/case-$CASE.txt" >&2
}

median_cases() {
  local k key n
  for k in $(seq 1 "$CASE"); do
    [ -s "$TMP/case-$k.txt" ] || continue
    key=$(cat "$TMP/case-$k.key")
    n=$(wc -l <"$TMP/case-$k.txt")
    awk -v k="$key" '{v=0; for(i=1;i<=NF;i++){split($i,a,"="); if(a[1]==k) v=a[2]} print v "\t" $0}' "$TMP/case-$k.txt" |
      sort -g | awk -v n="$n" 'NR==int((n+1)/2){sub(/^[^\t]*\t/,""); print}' >>"$RAW"
  done
}

# What can run here.
unavailable() {
  case $1 in
  lua-ws)
    command -v redis-server >/dev/null && command -v redis-cli >/dev/null || { echo "redis-server is not installed"; return; }
    lua5.4 -e 'package.path="lua/?.lua;lua/?/init.lua;"..package.path package.cpath="lua/?.so;"..package.cpath require "ws.bus"' \
      2>/dev/null || echo "lua5.4 cannot load ws.bus (run make first)" ;;
  socketio)
    command -v redis-server >/dev/null || { echo "redis-server is not installed"; return; }
    command -v node >/dev/null || { echo "node is not installed"; return; }
    node -e 'for (const m of ["socket.io", "@socket.io/redis-adapter", "redis"]) require(m)' 2>/dev/null ||
      echo "npm socket.io, @socket.io/redis-adapter and redis are not installed (npm install)" ;;
  esac
}

[ -x "$BIN/loadclient" ] || { echo "bench-bus: $BIN/loadclient is missing (make bench-bin)" >&2; exit 1; }
available=()
for s in $SERVERS; do
  why=$(unavailable "$s")
  if [ -n "$why" ]; then note "skipped $s: $why"; else available+=("$s"); fi
done
echo "bench-bus: servers: ${available[*]:-none}; scenarios: $SCENARIOS; quick=$QUICK rounds=$ROUNDS" >&2

T=(--duration "$DURATION" --warmup "$WARMUP" --size 32)
for round in $(seq 1 "$ROUNDS"); do
  CASE=0
  for scenario in $SCENARIOS; do
    case $scenario in
    xfanout)
      for inflight in 16 64; do
        for s in "${available[@]}"; do
          [ "$s" = socketio ] && [ "$inflight" != 16 ] && continue  # Node's figures do not move with it
          [ "$s" = lua-ws ] && run_case deliveries_per_s lua-ws-1 broadcast 1 --scenario fanout --conns 1000 --inflight "$inflight" "${T[@]}"
          run_case deliveries_per_s "$s" broadcast 2 --scenario fanout --conns 1000 --inflight "$inflight" "${T[@]}"
        done
      done ;;
    latency)
      for s in "${available[@]}"; do
        run_case bus_added_p50_us "$s" broadcast 2 --scenario fanout --conns 100 --rate 1000 --inflight 256 "${T[@]}"
      done ;;
    chat)
      for s in "${available[@]}"; do
        [ "$s" = lua-ws ] && run_case msgs_per_s lua-ws-1 chat 1 --scenario chat --rooms 1000 --inflight 8 "${T[@]}"
        run_case msgs_per_s "$s" chat 2 --scenario chat --rooms 1000 --inflight 8 "${T[@]}"
      done ;;
    rooms)
      for s in "${available[@]}"; do
        run_case msgs_per_s "$s" chat 2 --scenario chat --rooms 1000 --inflight 8 --local-rooms "${T[@]}"
      done ;;
    ordered)
      if ! lua5.4 -e 'package.path="lua/?.lua;lua/?/init.lua;"..package.path package.cpath="lua/?.so;"..package.cpath require "ws.bus_ordered"' 2>/dev/null; then
        [ "$round" = 1 ] && note "ordered: skipped, this tree has no ws.bus_ordered (the ordered class)"
      elif [[ " ${available[*]} " == *" lua-ws "* ]]; then
        run_case msgs_per_s lua-ws ordered 2 --scenario chat --rooms 1000 --inflight 8 "${T[@]}"
      fi ;;
    *) [ "$round" = 1 ] && note "unknown scenario $scenario" ;;
    esac
  done
done
median_cases

lua5.4 bench/report_bus.lua "$RAW" >"$TMP/tables.md" || note "report_bus.lua failed"
cat "$TMP/tables.md"
{
  echo "<!-- bench-bus begin -->"
  echo "## The Redis bus: two processes on one Redis (\`make bench-bus\`)"
  echo
  echo "Generated by \`make bench-bus\` (bench/run_bus.sh) on $(date -u '+%Y-%m-%d %H:%M UTC'):"
  echo "$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), Linux $(uname -r), $(redis-server --version | awk '{print $1, $2, $3}')."
  echo "Redis and the servers share core 0 (\`taskset -c 0\`), the load client runs on core 1; a fresh redis-server and"
  echo "fresh servers for every line. Mode: $([ "$QUICK" = 1 ] && echo "quick (BENCH_QUICK=1)" || echo full), ${DURATION} s timed after ${WARMUP} s warm-up, median of $ROUNDS round(s)."
  echo "Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine disturbs wall-clock figures; CPU per delivery is steadier)."
  echo
  cat "$TMP/tables.md"
  echo
  report_notes "### Notes"
  echo
  echo "### Commands"
  echo
  echo "From the repository root; ports vary per run (\`ulimit -n $(ulimit -n)\`)."
  echo
  echo '```'
  cat "$CMDS"
  echo '```'
  echo
  report_raw "### Raw lines"
  echo "<!-- bench-bus end -->"
} >"$TMP/section.md"
if [ -f "$OUT" ] && grep -q '^<!-- bench-bus begin -->' "$OUT"; then
  awk -v sec="$TMP/section.md" '
    /^<!-- bench-bus begin -->/ { while ((getline l < sec) > 0) print l; skip = 1; next }
    /^<!-- bench-bus end -->/ { skip = 0; next }
    !skip { print }' "$OUT" >"$TMP/out.md"
  cp "$TMP/out.md" "$OUT"
else
  { [ -f "$OUT" ] && echo; cat "$TMP/section.md"; } >>"$OUT"
fi
echo "bench-bus: wrote the bus section of $OUT" >&2
