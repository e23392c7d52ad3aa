-- ws.now() was libev's ev_now(), which libev keeps in step with the wall clock: a step of the
-- system time (NTP, a resumed virtual machine) moved every duration and deadline computed from
-- it, and specs saw a 0.15 s sleep "take" 40 s. It is CLOCK_MONOTONIC now: here it must fall
-- between two readings of that clock taken by another process.
local helper = require "helper"
local ws = require "ws"

local function monotonic()
  local ok, _, out = helper.run({ helper.python, "-c", "import time; print('%.6f' % time.monotonic())" })
  assert(ok, "python3 failed")
  return assert(tonumber(out))
end

describe("ws.now", function()
  it("reads CLOCK_MONOTONIC, not the time of day", function()
    local before = monotonic()
    local now = ws.now()
    local after = monotonic()
    assert.is_true(now >= before - 0.001 and now <= after + 0.001,
      ("ws.now() %.6f outside [%.6f, %.6f]"):format(now, before, after))
  end)

  it("measures a sleep the same way from a task and from the main thread", function()
    local inside
    ws.spawn(function()
      local t0 = ws.now()
      ws.sleep(0.05)
      inside = ws.now() - t0
    end)
    local t0 = ws.now()
    ws.run()
    local outside = ws.now() - t0
    assert.is_true(inside >= 0.045 and inside <= outside, ("task %.3f, main %.3f"):format(inside, outside))
  end)
end)
