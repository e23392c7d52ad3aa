-- Bounded waits for specs that run servers and clients on this process's own loop (ws.sleep
-- yields to it, so the servers keep running while the spec waits).
--   local loop = require "support.on_loop"
--   loop.wait_until(fn [, timeout = 5 [, step = 0.02]]) -> fn's first true value, or false
--   loop.in_task(fn [, timeout = 10]) -> fn's results, fn run in a task (raises if not done in time)
local ws = require "ws"
local luassert = require "luassert"

local M = {}

function M.wait_until(fn, timeout, step)
  local deadline = ws.now() + (timeout or 5)
  while true do
    local v = fn()
    if v then return v end
    if ws.now() > deadline then return false end
    ws.sleep(step or 0.02)
  end
end

function M.in_task(fn, timeout)
  local res
  ws.spawn(function() res = { fn() } end)
  luassert.truthy(M.wait_until(function() return res end, timeout or 10), "task did not finish")
  return (unpack or table.unpack)(res)
end

return M
