-- Client resume on ordered topics: conn:subscribe(topic, { since = offset, epoch = e }) gives a
-- connection exactly what it missed, then the live messages, with no gap and no duplicate,
-- whichever node it comes back to; a range the stream no longer holds, or another epoch, is
-- "gone". Two node processes (spec/support/bus_node.lua) on a redis-server of the spec's own;
-- every wait is bounded.
local helper = require "helper"
local socket = require "socket"
local wsc = require "support.ws_client"
local nodes = require "support.bus_nodes"

local client = nodes.client

-- Offsets of a topic's messages at c must be exactly from..to, in order.
local function assert_exactly(c, topic, from, to)
  local got = c.msgs(topic)
  local bad
  for i, m in ipairs(got) do
    if m.offset ~= from + i - 1 then bad = bad or ("offset " .. m.offset .. " at position " .. i) end
  end
  assert.is_nil(bad)
  assert.equal(to - from + 1, #got)
end

describe("ordered topics: a connection resumes from its last offset", function()
  local srv, admin, A, B

  setup(function()
    srv, admin, A, B = nodes.pair({ "resA", "resB" })
  end)

  teardown(function()
    nodes.stop(srv, admin, A or {}, B or {})
  end)

  it("gets exactly what it missed on another node, then the live messages", function()
    local s1 = client(A)
    assert.equal("ok sub", s1.cmd("sub room:r"))
    assert(helper.wait_until(function() return admin:call("PUBSUB", "NUMSUB", "ws:t:room:r")[2] == 1 end, 5, 0.05))
    local p = client(B)
    for i = 1, 20 do assert.equal("ok pub", p.cmd("pub room:r m" .. i)) end
    s1.wait_events("^msg room:r 20 ", 1, 5)
    assert_exactly(s1, "room:r", 1, 20)
    local epoch = s1.msgs("room:r")[20].epoch
    s1:close()
    for i = 21, 50 do assert.equal("ok pub", p.cmd("pub room:r m" .. i)) end
    -- back on node B, which does not receive the topic yet
    local s2 = client(B)
    local t0 = wsc.now()
    assert.equal("ok rsub 30", s2.cmd("rsub room:r 20 " .. epoch))
    s2.wait_events("^msg room:r 50 ", 1, 5)
    local resumed = wsc.now() - t0
    for i = 51, 60 do assert.equal("ok pub", p.cmd("pub room:r m" .. i)) end
    s2.wait_events("^msg room:r 60 ", 1, 5)
    assert_exactly(s2, "room:r", 21, 60)
    assert.equal("m21", s2.msgs("room:r")[1].data)
    -- and on node A, which has a subscriber of the topic: 40 missed, then live
    local keep = client(A)
    assert.equal("ok sub", keep.cmd("sub room:r"))
    local s3 = client(A)
    assert.equal("ok rsub 40", s3.cmd("rsub room:r 20 " .. epoch))
    assert.equal("ok pub", p.cmd("pub room:r m61"))
    s3.wait_events("^msg room:r 61 ", 1, 5)
    assert_exactly(s3, "room:r", 21, 61)
    io.stderr:write(string.format("\n[a client back on the other node with its last offset had the 30 it missed %.0f ms " ..
      "after asking]\n", resumed * 1000))
    for _, c in ipairs({ s2, s3, keep, p }) do c:close() end
  end)

  it("resumes without a gap or a duplicate while messages keep coming, on both nodes", function()
    local watcher = client(A) -- node A receives the topic throughout
    assert.equal("ok sub", watcher.cmd("sub room:live"))
    assert(helper.wait_until(function() return admin:call("PUBSUB", "NUMSUB", "ws:t:room:live")[2] == 1 end, 5, 0.05))
    local p = client(A)
    local N = 1500
    local resumed = {}
    local epoch
    for i = 1, N do
      assert(p:send("pub room:live " .. i))
      if i % 15 == 0 then
        socket.sleep(0.01)
        p.pump()
        watcher.pump()
        for _, r in ipairs(resumed) do r.c.pump() end
      end
      if i == 300 or i == 700 or i == 1100 then
        -- a new connection resumes from the watcher's position a bit back, on A and on B in turn
        watcher.pump(0.2)
        local seen = watcher.msgs("room:live")
        epoch = epoch or (seen[1] and seen[1].epoch)
        local since = math.max(0, #seen - 100)
        local node = (#resumed % 2 == 0) and B or A
        local c = client(node)
        local reply = c.cmd("rsub room:live " .. since .. " " .. epoch, 10)
        assert.matches("^ok rsub %d+$", reply)
        resumed[#resumed + 1] = { c = c, since = since, node = node.name }
      end
    end
    watcher.wait_events("^msg room:live " .. N .. " ", 1, 20)
    assert_exactly(watcher, "room:live", 1, N)
    for _, r in ipairs(resumed) do
      r.c.wait_events("^msg room:live " .. N .. " ", 1, 20)
      assert_exactly(r.c, "room:live", r.since + 1, N)
      r.c:close()
    end
    p.wait_events("^ok pub", N, 10)
    assert.equal(N, #p.matching("^ok pub"))
    watcher:close() p:close()
  end)

  it("says gone when the stream no longer holds what follows since, or the epoch is another", function()
    local p = client(A)
    for i = 1, 10 do assert.equal("ok pub", p.cmd("pub room:g m" .. i)) end
    local epoch = p.cmd("hist room:g 1"):match("^ok hist %d+ (%w+)")
    assert.equal(5, admin:call("XTRIM", "ws:s:room:g", "MAXLEN", 5)) -- 1..5 gone
    local c = client(B)
    assert.equal("err rsub history_no_longer_holds_offset_3 gone", c.cmd("rsub room:g 2 " .. epoch))
    assert.equal("err rsub epoch_changed gone", c.cmd("rsub room:g 7 other"))
    assert.equal("err rsub offset_past_the_topic's_last_one gone", c.cmd("rsub room:g 11 " .. epoch))
    assert.equal("ok rsub 0", c.cmd("rsub room:g 10 " .. epoch)) -- up to date
    assert.equal("ok rsub false", c.cmd("rsub room:g 5 " .. epoch)) -- subscribed already: no replay
    assert.equal("ok rsub 3", client(A).cmd("rsub room:g 7"))         -- no epoch: any
    assert.equal("ok pub", p.cmd("pub room:g m11"))
    assert.equal(1, #c.wait_events("^msg room:g 11 ", 1, 5))
    c:close() p:close()
  end)
end)
