-- A server in the workers mode for spec/workers_spec.lua:
--   lua5.4 workers_server.lua --workers K [--style coroutine|callback] [--stop-timeout S]
-- (--fail-once FILE: worker 1 exits with status 3 at its first start, when FILE is missing)
-- prints "master <pid> listening <port>", then each worker prints "ready <index> <pid>" when
-- its loop runs, and the master "master returned <ok>" when ws.run returns. A message "who"
-- gets "worker <index> <pid> <K>"; "burst N" queues N numbered messages of 4 KiB and "burst
-- end" at once (no waiting: the send queue is large) and logs "queued <index> <pid>"; then,
-- while the worker holds such connections, it logs "buffered <index> <bytes>" (what they still
-- have queued, not yet written to their sockets) every 50 ms when it changed.
local ws = require "ws"

local function pid()
  local f = assert(io.open("/proc/self/stat"))
  local p = f:read("*l"):match("^(%d+)")
  f:close()
  return tonumber(p)
end

local function log(...)
  io.stdout:write(table.concat({ ... }, " "), "\n")
  io.stdout:flush()
end

local workers, style, stop_timeout, fail_once = 2, "coroutine", nil, nil
local i = 1
while arg[i] do
  local a, v = arg[i], arg[i + 1]
  if a == "--workers" then workers = v == "auto" and v or assert(tonumber(v))
  elseif a == "--style" then style = v
  elseif a == "--stop-timeout" then stop_timeout = assert(tonumber(v))
  elseif a == "--fail-once" then fail_once = v -- a file: worker 1 exits with status 3 if it is missing
  else error("unknown argument " .. a) end
  i = i + 2
end

local bursting = setmetatable({}, { __mode = "k" })

local function answer(conn, msg)
  if msg == "who" then
    conn:send(("worker %d %d %d"):format(ws.worker(), pid(), ws.workers()))
  elseif msg:match("^burst %d+$") then
    local n = tonumber(msg:match("%d+"))
    local pad = string.rep("-", 4096)
    for k = 1, n do conn:send("n" .. k .. pad) end
    conn:send("burst end")
    bursting[conn] = true
    log("queued", ws.worker(), pid())
  end
end

local opts = { host = "127.0.0.1", port = 0, send_high_water = 256 * 1024 * 1024,
  send_low_water = 1024 * 1024, close_timeout = 5 }
local handler
if style == "callback" then
  handler = { message = answer }
else
  handler = function(conn)
    for msg in conn:messages() do answer(conn, msg) end
  end
end
local srv = assert(ws.server(opts, handler))
assert(ws.worker() == nil and ws.workers() == 1)
log("master", pid(), "listening", srv.port)
ws.spawn(function() -- runs in each worker's loop
  if fail_once and ws.worker() == 1 and not io.open(fail_once) then
    assert(io.open(fail_once, "w")):close()
    os.exit(3)
  end
  log("ready", ws.worker(), pid())
  local last = 0
  while true do
    ws.sleep(0.05)
    local sum = 0
    for conn in pairs(bursting) do sum = sum + conn:buffered() end
    if sum ~= last then log("buffered", ws.worker(), sum) end
    last = sum
  end
end)
local ok, err = ws.run({ workers = workers, stop_timeout = stop_timeout })
log("master returned", tostring(ok), tostring(err), tostring(ws.worker()))
