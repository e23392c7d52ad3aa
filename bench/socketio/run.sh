#!/usr/bin/env bash
# Socket.IO on lua-ws against Node's socket.io server, through our load client speaking the
# protocol over WebSocket (bench/loadclient.c --socketio): echo with acknowledgement and a room
# broadcast, 100 and 1,000 clients. Each server alone, pinned to core 0, the client to core 1.
# Writes bench/socketio/RESULTS.md (a table, the commands and the client's raw lines).
#
#   bench/socketio/run.sh            (after `make` and `make bench/bin/loadclient`, npm install)
# Environment: SIO_DURATION (default 3 s), SIO_ROUNDS (default 1; the median is kept),
# SIO_PORT (default 19300), SIO_OUT (default bench/socketio/RESULTS.md), SIO_LUAJIT (default 1:
# the lua-ws server also runs on LuaJIT when `luajit` and build/luajit (`make luajit`) are there).
# bench/socketio/profile.md, when present, is copied under the table (where the time goes).
set -u
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
DURATION=${SIO_DURATION:-3}
ROUNDS=${SIO_ROUNDS:-1}
PORT=${SIO_PORT:-19300}
OUT=${SIO_OUT:-bench/socketio/RESULTS.md}
LC=bench/bin/loadclient
TMP=$(mktemp -d /tmp/lua-ws-sio-bench.XXXXXX)
RAW=$TMP/raw.txt
: >"$RAW"
SERVER_PID=
stop_server() {
  [ -n "$SERVER_PID" ] || return 0
  kill -TERM "$SERVER_PID" 2>/dev/null
  for _ in $(seq 1 40); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.05; done
  kill -KILL "$SERVER_PID" 2>/dev/null
  wait "$SERVER_PID" 2>/dev/null
  SERVER_PID=
}
trap 'stop_server; rm -rf "$TMP"' EXIT
trap 'exit 130' INT TERM
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null
[ -x "$LC" ] || make --no-print-directory "$LC" >/dev/null || exit 1

start_server() { # name
  PORT=$((PORT + 1))
  case $1 in
  lua-ws) taskset -c 0 lua5.4 bench/socketio/server.lua --port "$PORT" >"$TMP/server.out" 2>&1 & ;;
  lua-ws-jit) taskset -c 0 luajit bench/socketio/server.lua --port "$PORT" >"$TMP/server.out" 2>&1 & ;;
  node) taskset -c 0 node bench/socketio/node_server.js --port "$PORT" >"$TMP/server.out" 2>&1 & ;;
  ws-echo) taskset -c 0 lua5.4 examples/echo.lua --port "$PORT" >"$TMP/server.out" 2>&1 & ;;
  esac
  SERVER_PID=$!
  for _ in $(seq 1 100); do grep -qi listening "$TMP/server.out" 2>/dev/null && return 0; sleep 0.05; done
  echo "bench: $1 did not start: $(cat "$TMP/server.out")" >&2
  return 1
}

# scenario:conns:inflight
SET="echo:100:1 echo:100:16 echo:1000:1 fanout:100:16 fanout:1000:4"
SERVERS="lua-ws node"
if [ "${SIO_LUAJIT:-1}" = 1 ] && command -v luajit >/dev/null && [ -f build/luajit/ws/core.so ]; then
  SERVERS="lua-ws lua-ws-jit node"
fi
for round in $(seq 1 "$ROUNDS"); do
  for spec in $SET; do
    IFS=: read -r sc conns inflight <<<"$spec"
    servers=$SERVERS
    [ "$sc" = echo ] && servers="$SERVERS ws-echo" # the floor: lua-ws's plain WebSocket echo
    for srv in $servers; do
      start_server "$srv" || continue
      sio=--socketio
      [ "$srv" = ws-echo ] && sio=
      cmd="taskset -c 1 $LC $sio --scenario $sc --port $PORT --conns $conns --inflight $inflight --size 32 --duration $DURATION --warmup 0.5 --server-pid $SERVER_PID --label $srv"
      line=$($cmd 2>&1 | tail -1)
      echo "$line" | tee -a "$RAW"
      stop_server
    done
  done
done

lua5.4 - "$RAW" "$OUT" "$DURATION" "$ROUNDS" <<'LUA'
local raw, out, duration, rounds = arg[1], arg[2], arg[3], arg[4]
local rows, order = {}, {}
for line in io.lines(raw) do
  local t = {}
  for k, v in line:gmatch("(%S+)=(%S+)") do t[k] = v end
  if t.scenario then
    local n = t.conns or t.subscribers
    local key = ("%s %s clients, %s in flight"):format(t.scenario == "echo" and "echo with ack" or "room broadcast", n, t.inflight)
    if not rows[key] then rows[key] = {}; order[#order + 1] = key end
    local rate = tonumber(t.msgs_per_s or t.deliveries_per_s)
    local cpu = tonumber(t.server_cpu_us_per_msg or t.server_cpu_us_per_delivery)
    local list = rows[key][t.server] or {}
    list[#list + 1] = { rate = rate, cpu = cpu, pct = tonumber(t.server_cpu_pct), p50 = tonumber(t.p50_us), errors = tonumber(t.errors) }
    rows[key][t.server] = list
  end
end
local function median(list, f)
  local v = {}
  for i, x in ipairs(list) do v[i] = x[f] or 0 end
  table.sort(v)
  return v[math.floor((#v + 1) / 2)] or 0
end
local f = assert(io.open(out, "w"))
f:write("# Socket.IO: lua-ws (ws.socketio) and Node's socket.io\n\n")
f:write(("Produced by `bench/socketio/run.sh` (%s s per run, median of %s round(s)). Each server alone on core 0, the\n"):format(duration, rounds))
f:write("load client (`bench/loadclient --socketio`, WebSocket transport, 32-byte payloads) on core 1.\n")
f:write("\"events/s\" is what the client saw (deliveries for a broadcast); \"per core\" is 10^6 / server CPU us per\n")
f:write("event, the rate one core of server CPU sustains; the ratio is lua-ws / node per core. The LuaJIT columns are\n")
f:write("the same server (`luajit bench/socketio/server.lua`, build/luajit) in the same run.\n\n")
f:write("The last column is the floor under the echo rows: lua-ws's plain WebSocket echo (`examples/echo.lua`, the\n")
f:write("same load client without `--socketio`), server CPU us per message in the same conditions.\n\n")
f:write("| scenario | lua-ws events/s | lua-ws CPU us/event | lua-ws per core | node events/s | node CPU us/event | node per core | ratio per core | LuaJIT CPU us/event | LuaJIT ratio per core | plain ws echo CPU us/msg |\n")
f:write("|---|---|---|---|---|---|---|---|---|---|---|\n")
for _, key in ipairs(order) do
  local a, b = rows[key]["lua-ws"] or {}, rows[key]["node"] or {}
  local ar, ac, br, bc = median(a, "rate"), median(a, "cpu"), median(b, "rate"), median(b, "cpu")
  local apc = ac > 0 and 1e6 / ac or 0
  local bpc = bc > 0 and 1e6 / bc or 0
  local e = rows[key]["ws-echo"]
  local j = rows[key]["lua-ws-jit"]
  local jc = j and median(j, "cpu") or 0
  f:write(("| %s | %.0f | %.2f | %.0f | %.0f | %.2f | %.0f | %s | %s | %s | %s |\n"):format(key, ar, ac, apc, br, bc, bpc,
    bpc > 0 and ("%.1fx"):format(apc / bpc) or "-", jc > 0 and ("%.2f"):format(jc) or "-",
    jc > 0 and bpc > 0 and ("%.1fx"):format(1e6 / jc / bpc) or "-", e and ("%.2f"):format(median(e, "cpu")) or "-"))
end
local up = (io.popen("uptime"):read("*l") or ""):match("load average: .*") or "?"
f:write(("\nMachine: %s (2 cores shared with other work: CPU per event is the figure to compare;\nevents/s depend on how much of core 0 the server got).\n"):format(up:gsub("^%s+", "")))
local prof = io.open("bench/socketio/profile.md", "r")
if prof then
  f:write("\n", prof:read("a"))
  prof:close()
end
f:write("\nThe client's raw lines:\n\n```\n")
for line in io.lines(raw) do f:write(line, "\n") end
f:write("```\n")
f:close()
print("bench: wrote " .. out)
LUA
