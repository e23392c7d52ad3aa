-- The loop and its tasks, in this process: ws.spawn, ws.sleep, ws.now, ws.stop, ws.run.
local ws = require "ws"

describe("loop", function()
  it("runs spawned tasks with their arguments and sleeps in order", function()
    local order = {}
    local t0 = ws.now()
    ws.spawn(function() ws.sleep(0.15) order[#order + 1] = "late" end)
    ws.spawn(function(a, b) ws.sleep(0.05) order[#order + 1] = a .. b end, "ear", "ly")
    ws.spawn(function() order[#order + 1] = "now" end)
    ws.run() -- returns once no task is left
    assert.are.same({ "now", "early", "late" }, order)
    local took = ws.now() - t0
    assert.is_true(took >= 0.14 and took < 1, "took " .. took)
  end)

  it("sleeps on the main thread by running the loop", function()
    local ran = false
    ws.spawn(function() ran = true end)
    local t0 = ws.now()
    ws.sleep(0.05)
    assert.is_true(ran)
    assert.is_true(ws.now() - t0 >= 0.045)
  end)

  it("stops with ws.stop while tasks remain", function()
    local ticks, finished = 0, false
    ws.spawn(function()
      while not finished do ticks = ticks + 1 ws.sleep(0.01) end
    end)
    ws.spawn(function() ws.sleep(0.1) ws.stop() end)
    ws.run()
    assert.is_true(ticks >= 3 and ticks < 50, "ticks " .. ticks)
    finished = true
    ws.run() -- the ticker ends at its next wake-up, and then nothing is left
    local after = ticks
    assert.is_true(after - ticks <= 1)
  end)

  it("treats a plain coroutine.yield in a task as a pass to the others", function()
    local log = {}
    ws.spawn(function() for i = 1, 3 do log[#log + 1] = "a" .. i coroutine.yield() end end)
    ws.spawn(function() for i = 1, 3 do log[#log + 1] = "b" .. i coroutine.yield() end end)
    ws.run()
    assert.are.same({ "a1", "b1", "a2", "b2", "a3", "b3" }, log)
  end)

  it("reports a failing task with its traceback and keeps running the others", function()
    local reports = {}
    ws.set_error_handler(function(where, msg) reports[#reports + 1] = { where, msg } end)
    local done = false
    ws.spawn(function() local function inner() error("boom") end inner() end)
    ws.spawn(function() ws.sleep(0.02) done = true end)
    ws.run()
    ws.set_error_handler(nil)
    assert.is_true(done)
    assert.are.equal(1, #reports)
    assert.are.equal("task", reports[1][1])
    assert.matches("boom", reports[1][2])
    assert.matches("stack traceback", reports[1][2])
    assert.matches("inner", reports[1][2])
  end)

  it("refuses to wait outside a task and to run twice", function()
    local co = coroutine.create(function() ws.sleep(0.01) end)
    local ok, err = coroutine.resume(co)
    assert.is_false(ok)
    assert.matches("coroutine run by the loop", err)
    local inner_err
    ws.spawn(function() inner_err = select(2, pcall(ws.run)) end)
    ws.run()
    assert.matches("already running", inner_err)
  end)

  it("keeps ws.now monotonic and in seconds", function()
    local a = ws.now()
    ws.sleep(0.02)
    local b = ws.now()
    assert.is_true(b > a and b - a < 1)
  end)

  it("rejects bad arguments", function()
    assert.has_error(function() ws.spawn(42) end, "ws.spawn: function expected")
    assert.has_error(function() ws.sleep("x") end, "ws.sleep: number expected")
  end)
end)
