-- Turns the load client's lines (one `key=value ...` line per figure) into one markdown table
-- per scenario, each figure followed by the ratio lua-ws / peer.
--   lua5.4 bench/report.lua RAW_LINES_FILE
local ORDER = { "lua-ws", "lua-ws-cb", "lua-ws-resty", "uws", "lws", "nginx", "node", "lua-http", "python", "tcp" }
local TITLE = {
  ["lua-ws"] = "lua-ws", ["lua-ws-cb"] = "lua-ws callbacks", ["lua-ws-resty"] = "lua-ws in nginx", uws = "uWebSockets", lws = "libwebsockets", nginx = "nginx+resty",
  node = "Node ws", ["lua-http"] = "lua-http", python = "Python websockets", tcp = "raw TCP (limit)",
}

local path = assert(arg[1], "usage: lua5.4 bench/report.lua RAW_LINES_FILE")
local records, deflate_records = {}, {}
for line in assert(io.open(path)):lines() do
  local r = {}
  for k, v in line:gmatch("([%w_]+)=(%S+)") do r[k] = v end
  if r.deflate then deflate_records[#deflate_records + 1] = r -- their own tables, at the end
  else
    if r.tls == "1" and r.scenario then r.scenario = "tls-" .. r.scenario end -- wss:// rows, tables of their own
    if r.scenario and r.server then records[#records + 1] = r end
  end
end

local function human(v, digits)
  v = tonumber(v)
  if not v then return "-" end
  if v >= 1e6 then return ("%.2f M"):format(v / 1e6) end
  if v >= 1e4 then return ("%.0f k"):format(v / 1e3) end
  if v >= 100 then return ("%.0f"):format(v) end
  return ("%." .. (digits or 2) .. "f"):format(v)
end

-- rows: distinct configurations in order of first appearance; cells[config][server] = record
local function collect(scenario, config_of)
  local rows, cells, servers_seen = {}, {}, {}
  for _, r in ipairs(records) do
    if r.scenario == scenario then
      local key = config_of(r)
      if not cells[key] then
        cells[key] = {}
        rows[#rows + 1] = key
      end
      cells[key][r.server] = r
      servers_seen[r.server] = true
    end
  end
  local servers = {}
  for _, s in ipairs(ORDER) do if servers_seen[s] then servers[#servers + 1] = s end end
  return rows, cells, servers
end

-- lua-ws's own rows (its styles) are the bases of the ratios, never peers.
local OURS = { ["lua-ws"] = true, ["lua-ws-cb"] = true, ["lua-ws-resty"] = true }

local function cell(rec, field, base, digits)
  if not rec then return "-" end
  if rec.failed then return "failed" end
  local v = tonumber(rec[field])
  local text = human(rec[field], digits)
  local errors = tonumber(rec.errors) or 0
  if base and not OURS[rec.server] and v and v > 0 and tonumber(base[field]) and (tonumber(base.errors) or 0) == 0 then
    text = text .. (" (%.2fx)"):format(tonumber(base[field]) / v)
  end
  if errors > 0 then text = text .. (" **%d errors**"):format(errors) end
  return text
end

-- base_name: whose figure the ratios divide (default lua-ws); only: the servers shown (default all).
local function table_for(title, scenario, config_cols, config_of, field, digits, base_name, only)
  local rows, cells, servers = collect(scenario, config_of)
  if only then
    local kept = {}
    for _, s in ipairs(servers) do if only[s] then kept[#kept + 1] = s end end
    servers = kept
    if #servers < 2 then return end
  end
  if #rows == 0 then return end
  print("### " .. title)
  print()
  local head, rule = {}, {}
  for _, c in ipairs(config_cols) do head[#head + 1] = c; rule[#rule + 1] = "---" end
  for _, s in ipairs(servers) do head[#head + 1] = TITLE[s] or s; rule[#rule + 1] = "---:" end
  print("| " .. table.concat(head, " | ") .. " |")
  print("|" .. table.concat(rule, "|") .. "|")
  for _, key in ipairs(rows) do
    local line = {}
    for part in key:gmatch("[^|]+") do line[#line + 1] = part end
    local base = cells[key][base_name or "lua-ws"]
    for _, s in ipairs(servers) do line[#line + 1] = cell(cells[key][s], field, base, digits) end
    print("| " .. table.concat(line, " | ") .. " |")
  end
  print()
end

print("In brackets: the ratio lua-ws / peer of the same figure in the same run (above 1 is better")
print("for rates; below 1 is better for CPU time, latency and memory). Errors (wrong, lost or missing")
print("payloads, failed handshakes) are shown in bold next to the figure.")
print()

local function echo_key(r) return r.conns .. "|" .. r.inflight .. "|" .. r.size end
table_for("Echo: messages/s", "echo", { "conns", "in flight", "bytes" }, echo_key, "msgs_per_s")
table_for("Echo: server CPU microseconds per message", "echo", { "conns", "in flight", "bytes" }, echo_key,
  "server_cpu_us_per_msg", 3)
table_for("Echo: latency p99 (microseconds)", "echo", { "conns", "in flight", "bytes" }, echo_key, "p99_us", 0)
local function fan_key(r) return r.subscribers .. "|" .. r.inflight .. "|" .. r.size end
table_for("Fan-out: deliveries/s (one publisher, broadcast to all)", "fanout",
  { "subscribers", "in flight", "bytes" }, fan_key, "deliveries_per_s")
table_for("Fan-out: server CPU microseconds per delivery", "fanout", { "subscribers", "in flight", "bytes" },
  fan_key, "server_cpu_us_per_delivery", 3)
local function hs_key(r) return r.conns end
table_for("Handshakes/s (connect, upgrade, close)", "handshake", { "concurrent" }, hs_key, "handshakes_per_s")
table_for("Handshakes: server CPU microseconds per handshake", "handshake", { "concurrent" }, hs_key,
  "server_cpu_us_per_handshake", 1)
table_for("Handshakes: the same, ratios for lua-ws's callback style", "handshake", { "concurrent" }, hs_key,
  "server_cpu_us_per_handshake", 1, "lua-ws-cb")
local function idle_key(r) return r.conns end
table_for("Idle: server memory (RSS) bytes per open connection (ratios: lua-ws, a coroutine per connection)",
  "idle", { "connections" }, idle_key, "bytes_per_conn", 0)
table_for("Idle: the same, ratios for lua-ws's callback style (no coroutine per idle connection)", "idle",
  { "connections" }, idle_key, "bytes_per_conn", 0, "lua-ws-cb")

-- wss:// (loadclient --tls): TCP and TLS on every connection, a full handshake each time.
table_for("wss:// echo: messages/s", "tls-echo", { "conns", "in flight", "bytes" }, echo_key, "msgs_per_s")
table_for("wss:// echo: server CPU microseconds per message", "tls-echo", { "conns", "in flight", "bytes" },
  echo_key, "server_cpu_us_per_msg", 3)
table_for("wss:// echo: latency p99 (microseconds)", "tls-echo", { "conns", "in flight", "bytes" }, echo_key,
  "p99_us", 0)
table_for("wss:// handshakes/s (connect, TLS handshake, upgrade, close)", "tls-handshake", { "concurrent" },
  hs_key, "handshakes_per_s")
table_for("wss:// handshakes: server CPU microseconds per handshake", "tls-handshake", { "concurrent" }, hs_key,
  "server_cpu_us_per_handshake", 1)
table_for("wss:// handshakes: the same, ratios for lua-ws's callback style", "tls-handshake", { "concurrent" },
  hs_key, "server_cpu_us_per_handshake", 1, "lua-ws-cb")
-- ---- permessage-deflate (run.sh's "deflate" scenario: loadclient --deflate) ----
-- Each peer's ratio is taken against lua-ws in the same kind of mode: uWS's shared compressor
-- against lua-ws shared; uWS's dedicated one and Node ws (context takeover) against lua-ws dedicated.
local D_ORDER = { "lua-ws-shared", "lua-ws-dedicated", "uws-shared", "uws-dedicated", "node-deflate" }
local D_TITLE = {
  ["lua-ws-shared"] = "lua-ws shared", ["lua-ws-dedicated"] = "lua-ws dedicated",
  ["uws-shared"] = "uWS shared", ["uws-dedicated"] = "uWS dedicated", ["node-deflate"] = "Node ws",
}
local D_BASE = { ["uws-shared"] = "lua-ws-shared", ["uws-dedicated"] = "lua-ws-dedicated", ["node-deflate"] = "lua-ws-dedicated" }

local function deflate_table(title, field, digits, with_ratio)
  local rows, cells, seen = {}, {}, {}
  for _, r in ipairs(deflate_records) do
    local key = (r.conns or "?") .. "|" .. (r.inflight or "?") .. "|" .. (r.size or "?")
    if not cells[key] then cells[key] = {}; rows[#rows + 1] = key end
    cells[key][r.server] = r
    seen[r.server] = true
  end
  if #rows == 0 then return end
  local servers = {}
  for _, s in ipairs(D_ORDER) do if seen[s] then servers[#servers + 1] = s end end
  print("### " .. title)
  print()
  local head, rule = { "conns", "in flight", "bytes" }, { "---", "---", "---" }
  for _, s in ipairs(servers) do head[#head + 1] = D_TITLE[s]; rule[#rule + 1] = "---:" end
  print("| " .. table.concat(head, " | ") .. " |")
  print("|" .. table.concat(rule, "|") .. "|")
  for _, key in ipairs(rows) do
    local line = {}
    for part in key:gmatch("[^|]+") do line[#line + 1] = part end
    for _, s in ipairs(servers) do
      local rec, text = cells[key][s], "-"
      if rec and rec.failed then text = "failed"
      elseif rec then
        text = human(rec[field], digits)
        local base = D_BASE[s] and cells[key][D_BASE[s]]
        local v, b = tonumber(rec[field]), base and tonumber(base[field])
        if with_ratio and v and v > 0 and b and (tonumber(base.errors) or 0) == 0 then
          text = text .. (" (%.2fx)"):format(b / v)
        end
        if (tonumber(rec.errors) or 0) > 0 then text = text .. (" **%d errors**"):format(tonumber(rec.errors)) end
      end
      line[#line + 1] = text
    end
    print("| " .. table.concat(line, " | ") .. " |")
  end
  print()
end

if #deflate_records > 0 then
  print("## Compression: permessage-deflate echo of JSON-like text")
  print()
  print("In brackets: lua-ws in the matching mode / peer (uWS shared against lua-ws shared; uWS dedicated")
  print("and Node ws, which keep their context, against lua-ws dedicated). The wire ratio is the bytes of")
  print("compressed payloads the server sent over the bytes of the messages inside them (lower is smaller).")
  print()
  deflate_table("Compression: messages/s", "msgs_per_s", nil, true)
  deflate_table("Compression: server CPU microseconds per message", "server_cpu_us_per_msg", 2, true)
  deflate_table("Compression: wire ratio of the server's messages (compressed / payload bytes)", "wire_ratio", 3, false)
end
-- OpenResty: ws.resty and lua-resty-websocket in the same nginx (one worker), ratios ws.resty / peer.
local RESTY = { ["lua-ws-resty"] = true, nginx = true }
table_for("OpenResty echo: messages/s (ratios: lua-ws in nginx / lua-resty-websocket, same nginx)", "echo",
  { "conns", "in flight", "bytes" }, echo_key, "msgs_per_s", nil, "lua-ws-resty", RESTY)
table_for("OpenResty echo: server CPU microseconds per message (ratios as above)", "echo",
  { "conns", "in flight", "bytes" }, echo_key, "server_cpu_us_per_msg", 3, "lua-ws-resty", RESTY)
table_for("OpenResty fan-out: server CPU microseconds per delivery (ratios as above)", "fanout",
  { "subscribers", "in flight", "bytes" }, fan_key, "server_cpu_us_per_delivery", 3, "lua-ws-resty", RESTY)
