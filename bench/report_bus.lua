-- Turns bench/run_bus.sh's lines (the load client's `key=value ...` line plus the servers' bus
-- counters) into the markdown tables of the bus section of bench/RESULTS.md, with each target
-- of the bus and whether this run held it.
--   lua5.4 bench/report_bus.lua RAW_LINES_FILE
local path = assert(arg[1], "usage: lua5.4 bench/report_bus.lua RAW_LINES_FILE")
local records = {}
for line in assert(io.open(path)):lines() do
  local r = {}
  for k, v in line:gmatch("([%w_]+)=(%S+)") do r[k] = v end
  if r.scenario and r.server then records[#records + 1] = r end
end

local TITLE = { ["lua-ws-1"] = "lua-ws, 1 process, no bus", ["lua-ws"] = "lua-ws, 2 processes + Redis",
                socketio = "Socket.IO + redis-adapter, 2 processes + Redis",
                ["lua-ws-ordered"] = "lua-ws, 2 processes + Redis, ordered class" }

local function num(r, k) return r and tonumber(r[k]) end

local function human(v, digits)
  v = tonumber(v)
  if not v then return "-" end
  if v >= 1e6 then return ("%.2f M"):format(v / 1e6) end
  if v >= 1e4 then return ("%.0f k"):format(v / 1e3) end
  if v >= 100 then return ("%.0f"):format(v) end
  return ("%." .. (digits or 2) .. "f"):format(v)
end

local function errors(r)
  if r.failed then return "failed" end
  return tostring(tonumber(r.errors) or "?")
end

-- verdict(value, limit, "<=" | ">="): "held" / "**not held**" / "-"
local function verdict(v, limit, op)
  if not v then return "-" end
  local ok = (op == "<=" and v <= limit) or (op == ">=" and v >= limit)
  return ok and "held" or "**not held**"
end

local function select(pred)
  local out = {}
  for _, r in ipairs(records) do if pred(r) then out[#out + 1] = r end end
  return out
end

local function find(list, server, inflight)
  for _, r in ipairs(list) do
    if r.server == server and (not inflight or r.inflight == inflight) then return r end
  end
end

local out = {}
local function p(s) out[#out + 1] = s or "" end

-- ---- cross-node fan-out ----
local fan = select(function(r) return r.scenario == "fanout" and not r.rate end)
if #fan > 0 then
  p("### Cross-node fan-out: 1,000 subscribers, 32 B")
  p()
  p("Two processes: the publisher and 500 subscribers on the first, 500 on the second; every subscriber gets every")
  p("message. Server CPU is both processes' summed, per delivery. In flight: broadcasts the publisher keeps not yet")
  p("delivered everywhere (16 as in `make bench`; 64 lets the servers write several frames per connection at once).")
  p("Targets (lua-ws): <= 0.40 us per delivery, Redis <= 10 us per publish.")
  p()
  p("| server | in flight | deliveries/s | server CPU us/delivery | CPU % (1st + 2nd) | Redis CPU us/publish | Redis CPU % | p50 us | p99 us | errors |")
  p("|---|---|---|---|---|---|---|---|---|---|")
  for _, r in ipairs(fan) do
    local split = r.server1_cpu_pct and ("%s + %s"):format(r.server1_cpu_pct, r.server2_cpu_pct) or (r.server_cpu_pct or "-")
    p(("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |"):format(TITLE[r.server] or r.server, r.inflight, human(r.deliveries_per_s),
      r.server_cpu_us_per_delivery or "-", split, r.redis_cpu_us_per_publish or "-", r.redis_cpu_pct or "-",
      human(r.p50_us, 0), human(r.p99_us, 0), errors(r)))
  end
  p()
  for _, inflight in ipairs({ "16", "64" }) do
    local one, two = find(fan, "lua-ws-1", inflight), find(fan, "lua-ws", inflight)
    if two then
      p(("- %s in flight: lua-ws CPU per delivery, 2 processes: %s us (%s; target <= 0.40)%s; Redis CPU per publish %s us (%s; target <= 10)%s."):format(
        inflight, two.server_cpu_us_per_delivery or "-", verdict(num(two, "server_cpu_us_per_delivery"), 0.40, "<="),
        one and (", 1 process in this run: %s us, ratio %.2f%s"):format(one.server_cpu_us_per_delivery or "-",
          (num(two, "server_cpu_us_per_delivery") or 0) / (num(one, "server_cpu_us_per_delivery") or 1),
          inflight == "16" and (" (x 0.34 us, one process on an idle machine: %.2f us)"):format(0.34 *
            (num(two, "server_cpu_us_per_delivery") or 0) / (num(one, "server_cpu_us_per_delivery") or 1)) or "") or "",
        two.redis_cpu_us_per_publish or "-", verdict(num(two, "redis_cpu_us_per_publish"), 10, "<="),
        (one and num(one, "deliveries_per_s") and num(two, "deliveries_per_s")) and
          ("; deliveries/s 2 processes / 1 process: %.2f"):format(num(two, "deliveries_per_s") / num(one, "deliveries_per_s")) or ""))
    end
  end
  p()
end

-- ---- latency ----
local lat = select(function(r) return r.scenario == "fanout" and r.rate end)
if #lat > 0 then
  p("### Latency the bus adds: 100 subscribers (50 + 50), 1,000 publishes/s, 32 B")
  p()
  p("Send -> receipt in the load client, for the subscribers on the publishing process (local) and on the other one")
  p("(remote, through Redis); the bus adds the difference. Targets (lua-ws): p50 <= 150 us, p99 <= 1 ms.")
  p()
  p("| server | local p10 / p50 / p99 us | remote p10 / p50 / p99 us | added p10 us | added p50 us | added p99 us | publishes skipped | errors |")
  p("|---|---|---|---|---|---|---|---|")
  for _, r in ipairs(lat) do
    p(("| %s | %s / %s / %s | %s / %s / %s | %s | %s | %s | %s | %s |"):format(TITLE[r.server] or r.server,
      r.local_p10_us or "-", r.local_p50_us or "-", r.local_p99_us or "-", r.remote_p10_us or "-", r.remote_p50_us or "-",
      r.remote_p99_us or "-", r.bus_added_p10_us or "-", r.bus_added_p50_us or "-", r.bus_added_p99_us or "-",
      r.rate_missed or "-", errors(r)))
  end
  local l = find(lat, "lua-ws")
  if l then
    p()
    p(("- lua-ws: added p50 %s us (%s), added p99 %s us (%s)."):format(l.bus_added_p50_us or "-",
      verdict(num(l, "bus_added_p50_us"), 150, "<="), l.bus_added_p99_us or "-", verdict(num(l, "bus_added_p99_us"), 1000, "<=")))
    local l10, a10 = num(l, "local_p10_us"), num(l, "bus_added_p10_us")
    if l10 and a10 and l10 > 0 then
      p("- The local path wakes one process (the publishing server), the remote one two more (redis-server, then the other")
      p(("  server), all on one core here. The local p10, %.0f us, is what one wake-up and a delivery cost on this machine"):format(l10))
      p(("  now; the bus added %.0f us at p10, %.1f times that. Where one hop costs ~30 us (an idle core: `make bench`'s"):format(a10, a10 / l10))
      p(("  one-connection echo, ~62 us a round trip), that is ~%.0f us."):format(30 * a10 / l10))
    end
  end
  p()
end

-- ---- what more cores change ----
local function more_cores()
  p("### On a machine with more cores")
  p()
  p("Here the two servers and Redis share core 0 and the load client has core 1, so two processes cannot deliver")
  p("more than one: compare CPU per delivery. With a core per process (and load clients on cores of their own),")
  p("the cross-node fan-out should deliver about twice what one process does (each process delivers to its own")
  p("half, the bus costs each one a PUBLISH or one envelope per message, and Redis a few microseconds per publish),")
  p("at the same CPU per delivery as in the table; the chat shape should grow with the processes until Redis's")
  p("core is busy (about 1 / (its CPU per publish) publishes per second, several hundred thousand here) - past")
  p("that, more Redis (sharded pub/sub, or one Redis per group of topics). The latency the bus adds is two")
  p("wake-ups and Redis's work, a few tens of microseconds on idle cores.")
  p()
end

-- ---- chat shape ----
local chat = select(function(r) return r.scenario == "chat" and not r.placement end)
if #chat > 0 then
  p("### Chat shape: 1,000 rooms of 2 members, one member on each process, 32 B")
  p()
  p("Every message goes to the room's other member only, so with two processes every one crosses the bus; each")
  p("member keeps 8 messages outstanding. Target (lua-ws): >= 50,000 messages/s end to end, 0 errors.")
  p()
  p("| server | messages/s | p50 us | p99 us | server CPU us/message | CPU % (1st + 2nd) | Redis CPU us/publish | Redis CPU % | errors |")
  p("|---|---|---|---|---|---|---|---|---|")
  for _, r in ipairs(chat) do
    local split = r.server1_cpu_pct and ("%s + %s"):format(r.server1_cpu_pct, r.server2_cpu_pct) or (r.server_cpu_pct or "-")
    p(("| %s | %s | %s | %s | %s | %s | %s | %s | %s |"):format(TITLE[r.server] or r.server, human(r.msgs_per_s),
      human(r.p50_us, 0), human(r.p99_us, 0), r.server_cpu_us_per_msg or "-", split, r.redis_cpu_us_per_publish or "-",
      r.redis_cpu_pct or "-", errors(r)))
  end
  local c = find(chat, "lua-ws")
  if c then
    p()
    p(("- lua-ws, 2 processes: %s messages/s, %s errors (%s)."):format(human(c.msgs_per_s), errors(c),
      (num(c, "errors") == 0 and (num(c, "msgs_per_s") or 0) >= 50000) and "held" or "**not held**"))
  end
  p()
end

-- ---- bus messages per node ----
local bus = select(function(r) return r.bus_published end)
if #bus > 0 then
  p("### Bus messages received per process")
  p()
  p("What each process's Redis subscriber connection received, split into its own messages coming back and the other")
  p("process's (lua-ws: `server:bus()` counters own, and received + foreign; Socket.IO: the adapter's onmessage calls,")
  p("of which its own publishes come back through its pattern), against the messages both published to the bus.")
  p("\"rooms on one process\": both members of even rooms on the first process, of odd rooms on the second, so")
  p("neither process holds a room the other publishes in. Redis channels and patterns: their peak in `INFO stats`.")
  p()
  p("| server | scenario | published (both) | 1st received: own + from 2nd | 2nd received: own + from 1st | received per published, 1st / 2nd | Redis channels | Redis patterns |")
  p("|---|---|---|---|---|---|---|---|")
  for _, r in ipairs(bus) do
    local what = r.scenario == "chat" and (r.placement and "chat, rooms on one process" or "chat, rooms across both")
      or (r.rate and "fan-out 100 at 1,000/s" or ("fan-out 1,000, %s in flight"):format(r.inflight))
    local pub, a, b = num(r, "bus_published"), num(r, "node1_bus_received"), num(r, "node2_bus_received")
    local per = (pub and pub > 0 and a and b) and ("%.2f / %.2f"):format(a / pub, b / pub) or "-"
    local function split(i)
      return ("%s: %s + %s"):format(r["node" .. i .. "_bus_received"] or "-", r["node" .. i .. "_bus_own"] or "-",
        r["node" .. i .. "_bus_from_other"] or "-")
    end
    p(("| %s | %s | %s | %s | %s | %s | %s | %s |"):format(TITLE[r.server] or r.server, what, r.bus_published, split(1),
      split(2), per, r.redis_pubsub_channels or "-", r.redis_pubsub_patterns or "-"))
  end
  p()
end

more_cores()
io.write(table.concat(out, "\n"), "\n")
