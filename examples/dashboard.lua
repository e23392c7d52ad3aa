-- A live dashboard of a lua-ws server's own metrics: the page (examples/dashboard/) draws them with
-- uPlot (installed by scripts/deps.sh from npm, served from node_modules/uplot), and this server
-- pushes a snapshot over a WebSocket once a second. It watches the process it runs in: the echo
-- at /echo is there to have something to watch; in an application, copy the three pieces marked
-- below (the page's routes, the /dashboard socket, the once-a-second task) next to your handler.
--
--   lua5.4 examples/dashboard.lua [--port 8090] [--host 127.0.0.1] [--history 300]
--                                 [--redis redis://127.0.0.1:6379 [--workers K]]
--
-- Then open http://127.0.0.1:8090/ and put some load on ws://127.0.0.1:8090/echo.
-- Routes: GET / (the page), /dashboard.js, /dashboard.css, /uplot/uPlot.iife.min.js,
-- /uplot/uPlot.min.css, GET /metrics (Prometheus text), WebSocket /dashboard (the snapshots as
-- JSON), WebSocket /echo. With --workers K (and --redis, the bus between the workers), each worker
-- publishes its own snapshot, tagged with its index, to the topic every dashboard page follows:
-- every page draws one line per worker, whichever worker its socket landed on.
local here = (arg and arg[0] or ""):match("^(.*)[/\\][^/\\]*$") or "."
local root = here .. "/.."
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = root .. (jit and "/build/luajit/?.so;" or "/lua/?.so;") .. package.cpath

local ws = require "ws"
local metrics = require "ws.metrics"

local opts = { host = "127.0.0.1", port = 8090, history = 300 }
do
  local i = 1
  while arg and arg[i] do
    local a, v = arg[i], arg[i + 1]
    if (a == "--port" or a == "--history") and tonumber(v) then opts[a:sub(3)] = tonumber(v); i = i + 2
    elseif a == "--host" and v then opts.host = v; i = i + 2
    elseif a == "--redis" and v then opts.redis = v; i = i + 2
    elseif a == "--workers" and v and (v == "auto" or tonumber(v)) then opts.workers = tonumber(v) or v; i = i + 2
    else
      io.stderr:write("usage: lua5.4 examples/dashboard.lua [--port N] [--host H] [--history SECONDS]" ..
        " [--redis URL [--workers K]]\n")
      os.exit(2)
    end
  end
  if opts.workers and not opts.redis then
    io.stderr:write("dashboard: --workers needs --redis: the workers' snapshots meet on the bus\n")
    os.exit(2)
  end
end

------------------------------------------------------------------------------------------------
-- 1. The page's routes, for the server's `http` option.

local PAGE_DIR = here .. "/dashboard/"
local UPLOT_DIR = root .. "/node_modules/uplot/dist/"
local FILES = {
  ["/"] = { PAGE_DIR .. "index.html", "text/html; charset=utf-8" },
  ["/dashboard.js"] = { PAGE_DIR .. "dashboard.js", "text/javascript; charset=utf-8" },
  ["/dashboard.css"] = { PAGE_DIR .. "dashboard.css", "text/css; charset=utf-8" },
  ["/uplot/uPlot.iife.min.js"] = { UPLOT_DIR .. "uPlot.iife.min.js", "text/javascript; charset=utf-8" },
  ["/uplot/uPlot.min.css"] = { UPLOT_DIR .. "uPlot.min.css", "text/css; charset=utf-8" },
}

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local data = f:read("*a")
  f:close()
  return data
end

local function text(status, body)
  return status, { ["Content-Type"] = "text/plain; charset=utf-8" }, body
end

local function dashboard_http(req)
  if req.method ~= "GET" and req.method ~= "HEAD" then return text(405, "method not allowed\n") end
  if req.path == "/metrics" then
    return 200, { ["Content-Type"] = metrics.CONTENT_TYPE }, ws.metrics()
  end
  if req.path == "/favicon.ico" then return 204, nil, "" end
  local entry = FILES[req.path == "/index.html" and "/" or req.path]
  if not entry then return text(404, "not found\n") end
  local body = read_file(entry[1])
  if not body then
    if entry[1]:find(UPLOT_DIR, 1, true) then
      return text(500, "uPlot is not installed: run scripts/deps.sh (npm ci) in " .. root .. "\n")
    end
    return text(500, "missing " .. entry[1] .. "\n")
  end
  return 200, { ["Content-Type"] = entry[2], ["Cache-Control"] = "no-cache" }, body
end

------------------------------------------------------------------------------------------------
-- 2. Snapshots: the process's counters once a second, with per-second rates, as JSON.

local TOPIC = "ws:dashboard"
-- This worker's label and the number of workers, asked when a snapshot is taken: the script runs
-- up to ws.run in the master, before the workers exist.
local function worker_label()
  local w = ws.worker()
  return w and tostring(w) or "main"
end

local function json_number(v)
  if v ~= v or v == math.huge or v == -math.huge then return "null" end
  if math.type and math.type(v) == "integer" then return tostring(v) end
  return ("%.15g"):format(v)
end

-- A flat object of numbers (and the worker's label): enough for the page, no JSON library needed.
local function encode(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys)
  local parts = {}
  for _, k in ipairs(keys) do
    local v = t[k]
    parts[#parts + 1] = ('"%s":%s'):format(k, type(v) == "number" and json_number(v) or ('"' .. tostring(v) .. '"'))
  end
  return "{" .. table.concat(parts, ",") .. "}"
end

local function total(codes)
  local n = 0
  for _, v in pairs(codes) do n = n + v end
  return n
end

local history = {}       -- the last opts.history snapshots (JSON), oldest first
local wall0, mono0 = os.time(), ws.now()
local prev, prev_now

local function snapshot()
  local m = metrics.snapshot()
  local now = ws.now()
  local s = {
    t = wall0 + (now - mono0),               -- seconds since the epoch, for the charts' time axis
    worker = worker_label(),
    workers = ws.workers(),
    connections = m.connections, accepted = m.accepted,
    messages_received = m.messages_received, messages_sent = m.messages_sent,
    bytes_received = m.bytes_received, bytes_sent = m.bytes_sent,
    dropped = m.dropped, refused = total(m.refused), closes = total(m.closes),
    ping_timeouts = m.ping_timeouts, send_queue_bytes = m.send_queue_bytes,
    topics = m.topics, subscriptions = m.subscriptions,
  }
  local dt = prev and now - prev_now or 0
  for _, k in ipairs({ "messages_received", "messages_sent", "bytes_received", "bytes_sent", "dropped",
                       "refused", "closes", "accepted" }) do
    s[k .. "_rate"] = dt > 0 and (s[k] - prev[k]) / dt or 0
  end
  prev, prev_now = s, now
  return encode(s)
end

------------------------------------------------------------------------------------------------
-- 3. The server: the dashboard's socket and the echo to watch.

local server, err
server, err = ws.server({
  host = opts.host,
  port = opts.port,
  http = dashboard_http,
  bus = opts.redis and { url = opts.redis, prefix = "dashboard:" } or nil,
  handshake = function(req)
    if req.path == "/dashboard" or req.path == "/echo" then return true end
    return false, 404, { ["Content-Type"] = "text/plain" }, "not found\n"
  end,
}, function(conn)
  if conn.request.path == "/dashboard" then
    -- what the page missed, then one snapshot a second through the topic
    conn:send('{"type":"history","worker":"' .. worker_label() .. '","samples":[' ..
      table.concat(history, ",") .. "]}")
    conn:subscribe(TOPIC)
    for _ in conn:messages() do end -- the page sends nothing; this waits for its close
  else
    for msg, kind in conn:messages() do conn:send(msg, kind) end
  end
end)
if not server then
  io.stderr:write("dashboard: ", tostring(err), "\n")
  os.exit(1)
end

ws.spawn(function()
  while true do
    ws.sleep(1)
    local json = snapshot()
    history[#history + 1] = json
    if #history > opts.history then table.remove(history, 1) end
    server:publish(TOPIC, '{"type":"sample","sample":' .. json .. "}")
  end
end)

print(("dashboard: listening on http://%s:%d/ (echo at ws://%s:%d/echo)"):format(opts.host, server.port,
  opts.host, server.port))
io.stdout:flush()
ws.run({ workers = opts.workers })
