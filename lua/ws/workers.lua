-- ws.run{ workers = K }: the process becomes a master that forks K workers before any loop
-- runs. Each worker serves every server of the script on the same port with a listener of its
-- own (SO_REUSEPORT: the kernel spreads new connections over them) and runs its own loop; the
-- master runs no loop. It restarts a worker that ends (with backoff and a line on stderr),
-- and on SIGTERM or SIGINT stops them all gracefully; a second signal kills them at once.
local core = require "ws.core"

local M = {}

local BACKOFF_MIN, BACKOFF_MAX = 0.1, 5 -- seconds before a restart, doubling ...
local STABLE = 10                        -- ... back to the minimum for a worker that ran this long
local STOP_TIMEOUT = 10                  -- the graceful stop, then SIGKILL (a worker's own close waits 5)
local KILL_WAIT = 5                      -- after SIGKILL, how long the master waits to reap
local POLL = 1                           -- the longest sleep between two looks at the workers

local index, count -- this worker's number (nil in the master and in a single process); K

-- 1..K in a worker, nil otherwise.
function M.worker() return index end
-- K in the master and in its workers, 1 in a single process.
function M.workers() return count or 1 end

local function log(fmt, ...)
  io.stderr:write("ws: ", fmt:format(...), "\n")
  io.stderr:flush()
end

-- K from the option: a positive integer, or "auto" (the CPUs this process may use).
function M.count(k)
  if k == "auto" then return core.cores() end
  if type(k) == "number" and k >= 1 and k <= 1024 and k == math.floor(k) then return k end
  return nil
end

-- The worker's side of a fork: it never returns into the master's code.
local function become_worker(i, servers, serve)
  index = i
  local ok, err = xpcall(function()
    for _, srv in ipairs(servers) do
      local done, msg = srv:_after_fork(i)
      if not done then error(msg, 0) end
    end
    serve()
  end, debug.traceback)
  if not ok then log("worker %d (pid %d): %s", i, core.getpid(), tostring(err)) end
  os.exit(ok and 0 or 1, true)
end

-- Runs the master until its workers are gone after SIGTERM/SIGINT. servers: the open servers,
-- whose listeners it parks; serve(): a worker's loop (ws.run without workers). true | nil,
-- message, code (a listener's port could not be kept).
function M.run(opts, servers, serve)
  local k = assert(M.count(opts.workers))
  local stop_timeout = opts.stop_timeout or STOP_TIMEOUT
  for _, srv in ipairs(servers) do
    local ok, err, code = srv:_before_fork()
    if not ok then return nil, err, code end
  end
  count = k
  assert(core.proc_master(true))
  local now = core.now
  local slots = {}
  for i = 1, k do slots[i] = { index = i, delay = BACKOFF_MIN } end

  local function schedule(slot, why)
    if now() - (slot.started or now()) >= STABLE then slot.delay = BACKOFF_MIN end
    log("%s; restarting in %g s", why, slot.delay)
    slot.restart_at = now() + slot.delay
    slot.delay = math.min(slot.delay * 2, BACKOFF_MAX)
  end

  local function start(slot)
    slot.restart_at = nil
    local pid, err = core.fork()
    if pid == 0 then become_worker(slot.index, servers, serve) end
    slot.started = now()
    if pid then
      slot.pid = pid
    else
      schedule(slot, ("cannot start worker %d: %s"):format(slot.index, err))
    end
  end

  local stopping, forced, deadline = false, false, nil
  local function reap()
    local live = 0
    for _, slot in ipairs(slots) do
      if slot.pid then
        local how, code = core.proc_status(slot.pid)
        if how == false then
          live = live + 1
        else
          local pid = slot.pid
          slot.pid = nil
          if not stopping then
            schedule(slot, how and ("worker %d (pid %d) exited with %s %d")
              :format(slot.index, pid, how == "exit" and "status" or "signal", code)
              or ("worker %d (pid %d) is gone: %s"):format(slot.index, pid, tostring(code)))
          end
        end
      end
    end
    return live
  end

  local function signal_all(name)
    for _, slot in ipairs(slots) do
      if slot.pid then core.kill(slot.pid, name) end
    end
  end

  for _, slot in ipairs(slots) do start(slot) end
  while true do
    local live = reap()
    local wait = POLL
    if stopping then
      if live == 0 then break end
      if now() >= deadline then
        if forced then break end -- SIGKILLed and still not reaped: nothing more to do
        for _, slot in ipairs(slots) do
          if slot.pid then log("worker %d (pid %d) did not stop within %g s; killed", slot.index, slot.pid, stop_timeout) end
        end
        signal_all("SIGKILL")
        forced, deadline = true, now() + KILL_WAIT
      end
      wait = math.min(wait, math.max(0, deadline - now()))
    else
      for _, slot in ipairs(slots) do
        if slot.restart_at and slot.restart_at <= now() then start(slot) end
        if slot.restart_at then wait = math.min(wait, math.max(0, slot.restart_at - now())) end
      end
    end
    local sig = core.sigwait(wait)
    if sig == "SIGTERM" or sig == "SIGINT" then
      if not stopping then
        stopping, deadline = true, now() + stop_timeout
        for _, slot in ipairs(slots) do slot.restart_at = nil end
        signal_all("SIGTERM")
      elseif not forced then -- a second signal: at once
        signal_all("SIGKILL")
        forced, deadline = true, now() + KILL_WAIT
      end
    end
  end
  core.proc_master(false)
  for _, srv in ipairs(servers) do srv:close({ timeout = 0 }) end -- the ports go
  return true
end

return M
