-- lua-ws: `require "ws"`. A WebSocket server (and tools) on a libev loop; each connection's
-- handler runs in its own coroutine and is written as straight-line code.
local core = require "ws.core"
local conn_mod = require "ws.conn"
local server_mod = require "ws.server"
local client_mod = require "ws.client"
local check = require "ws.options"
local workers_mod = require "ws.workers"

local wait = conn_mod.wait

local ws = { _VERSION = "lua-ws 0.1" }

ws.server = server_mod.new
ws.connect = client_mod.connect        -- ws:// and wss:// clients
ws.reconnecting = client_mod.reconnecting
ws.tls = require "ws.tls"              -- ws.tls.info(conn)

-- Runs fn(...) in a new coroutine on the loop (from the next loop iteration).
function ws.spawn(fn, ...)
  if type(fn) ~= "function" then error("ws.spawn: function expected", 2) end
  return core.spawn(fn, ...)
end

-- Suspends the running task (or, on the main thread, runs the loop) for `seconds`.
function ws.sleep(seconds)
  if type(seconds) ~= "number" or seconds ~= seconds then error("ws.sleep: number expected", 2) end
  wait(nil, "t", seconds < 0 and 0 or seconds)
end

ws.now = core.now
ws.stop = core.stop

-- Where errors of handlers and tasks go: fn(where, message_with_traceback); nil for stderr.
ws.set_error_handler = core.set_error_handler

-- The default reaction to SIGINT and SIGTERM: close every server gracefully (what is queued is
-- delivered, then 1001), then stop the loop. A second signal stops at once; in a worker it
-- changes nothing (ws.run{ workers }): its master, signalled too, decides when to kill it.
local stopping = false
local function on_signal()
  if stopping then
    if workers_mod.worker() then return end
    return core.stop()
  end
  stopping = true
  local list = {}
  for srv in pairs(server_mod.open_servers) do list[#list + 1] = srv end
  for _, srv in ipairs(list) do srv:_begin_close({ code = 1001, reason = "server shutting down" }) end
  for _, srv in ipairs(list) do srv:_finish_close({}) end
  core.stop()
end

-- A ws.run() inside the running loop (a task's) fails without touching the signal handling of
-- the one that runs.
local running = false
local function run_loop(opts, worker)
  local catch = worker or not (opts and opts.signals == false)
  if catch then core.signals(on_signal) end
  running = true
  stopping = false
  local ok, err = pcall(core.run)
  if catch then core.signals(nil) end
  running = false
  if not ok then error(err, 0) end
end

-- Runs the loop until ws.stop() or until no server and no task is left.
-- opts.signals = false leaves SIGINT and SIGTERM alone.
-- opts.workers = K (or "auto": one per CPU): the process becomes a master that forks K worker
-- processes, each running this script's servers on the same ports and its own loop, restarts
-- those that die, and on SIGTERM/SIGINT stops them gracefully (opts.stop_timeout seconds,
-- default 10, then SIGKILL); ws.run returns in the master once they are gone, and never in a
-- worker (it exits). Returns true, or nil, message, code when a server's port cannot be kept.
local RUN_OPTIONS = { signals = "boolean", workers = "workers", stop_timeout = "number" }
function ws.run(opts)
  check.options("ws.run", opts, RUN_OPTIONS, 2)
  if running then error("ws.run: the loop is already running", 2) end
  local k = opts and opts.workers
  if k and not workers_mod.worker() then
    if not workers_mod.count(k) then error('ws.run: workers must be a positive integer or "auto"', 2) end
    if core.current() then error("ws.run: workers are forked before the loop runs, from the main chunk", 2) end
    if opts.signals == false then error("ws.run: the master of workers handles SIGINT and SIGTERM (signals = false)", 2) end
    if opts.stop_timeout ~= nil and (type(opts.stop_timeout) ~= "number" or not (opts.stop_timeout >= 0)) then
      error("ws.run: stop_timeout must be a number of seconds", 2)
    end
    local list = {}
    for srv in pairs(server_mod.open_servers) do list[#list + 1] = srv end
    return workers_mod.run(opts, list, function() run_loop(opts, true) end)
  end
  run_loop(opts)
  return true
end

-- This worker's number, 1..K (ws.run{ workers = K }), or nil in the master or a single process.
ws.worker = workers_mod.worker
-- How many workers serve the script: K in the master and its workers, 1 otherwise.
ws.workers = workers_mod.workers

-- For Lua hosts with another event loop (docs/embedding.md): ws.pollfd() is a descriptor that
-- is readable while lua-ws has I/O to handle; ws.step([timeout]) runs one iteration, waiting at
-- most `timeout` seconds (default 0), and returns `alive, wait`: whether anything is left, and
-- how long the host may poll before calling it again (0 when work is queued already).
ws.pollfd = core.pollfd
function ws.step(timeout)
  if timeout ~= nil and (type(timeout) ~= "number" or timeout ~= timeout) then
    error("ws.step: number expected", 2)
  end
  return core.step(timeout)
end

return ws
