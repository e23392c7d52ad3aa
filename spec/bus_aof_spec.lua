-- A Redis with persistence (AOF, fsync always) restarted in the middle of a stream of ordered
-- publishes: every publish Redis acknowledged is delivered exactly once, in order, at every
-- subscriber of both nodes; publishes during the outage are refused with an error; the epoch does
-- not change. Two node processes (spec/support/bus_node.lua); every wait is bounded.
local helper = require "helper"
local socket = require "socket"
local wsc = require "support.ws_client"
local nodes = require "support.bus_nodes"

local client = nodes.client

describe("ordered topics across a Redis restart with AOF", function()
  local srv, admin, dir, A, B

  setup(function()
    dir = helper.tmpdir("lua-ws-aof")
    srv, admin, A, B = nodes.pair({ "aofA", "aofB" },
      { redis = { args = { "--appendonly", "yes", "--appendfsync", "always", "--dir", dir } }, node = { gap = "notify" } })
  end)

  teardown(function()
    nodes.stop(srv, admin, A or {}, B or {})
    if dir then helper.rmtree(dir) end
  end)

  it("delivers every acknowledged publish exactly once and refuses those made during the outage", function()
    local subs = { client(A), client(B) }
    for _, c in ipairs(subs) do assert.equal("ok sub", c.cmd("sub room:aof")) end
    assert(helper.wait_until(function() return srv.cli("PUBSUB", "NUMSUB", "ws:t:room:aof"):match("\n2$") end, 5, 0.05))
    local p = client(A)
    local N = 1200
    local restarted = false
    local t_stop, t_back
    for i = 1, N do
      assert(p:send("wpub room:aof " .. i))
      if i % 20 == 0 then
        socket.sleep(0.01)
        p.pump(0.001)
        for _, c in ipairs(subs) do c.pump(0.001) end
      end
      if i == 400 then
        assert.equal(400, #p.wait_events("^ok wpub", 400, 10))
        srv.stop()
        t_stop = wsc.now()
        -- while Redis is away: refused at once
        for j = 1, 10 do assert(p:send("wpub room:aof down" .. j)) end
        assert.equal(10, #p.wait_events("^err wpub bus_unavailable unavailable$", 10, 10))
        srv.restart() -- same port, same AOF
        t_back = wsc.now()
        restarted = true
      end
    end
    assert.is_true(restarted)
    -- every command answered
    assert(helper.wait_until(function()
      p.pump(0.05)
      return #p.matching("^ok wpub") + #p.matching("^err wpub") == N + 10
    end, 30, 0))
    local acked, epochs, refused = {}, {}, 0
    for _, line in ipairs(p.matching("^ok wpub")) do
      local offset, epoch = line:match("^ok wpub (%d+) (%w+)$")
      acked[#acked + 1] = tonumber(offset)
      epochs[epoch] = true
    end
    for _, line in ipairs(p.matching("^err wpub")) do
      assert.matches("^err wpub %S+ %a+$", line)
      refused = refused + 1
    end
    local n_epochs = 0
    for _ in pairs(epochs) do n_epochs = n_epochs + 1 end
    assert.equal(1, n_epochs) -- the epoch survived the restart
    table.sort(acked)
    local top = tonumber(srv.cli("HGET", "ws:m:room:aof", "s"))
    assert.is_true(top >= acked[#acked])
    for _, c in ipairs(subs) do
      c.wait_events("^msg room:aof " .. top .. " ", 1, 20)
      local got = c.msgs("room:aof")
      local bad
      for i, m in ipairs(got) do if m.offset ~= i then bad = bad or ("offset " .. m.offset .. " at " .. i) end end
      assert.is_nil(bad)
      assert.equal(top, #got) -- 1..top once each: every acknowledged offset among them
      assert.same({}, c.matching("^gap"))
    end
    -- the first publish acknowledged after Redis was back
    local first_ok
    local seen_err = false
    for idx, e in ipairs(p.events) do
      if e:match("^err wpub") then seen_err = true end
      if seen_err and e:match("^ok wpub") and p.at[idx] >= t_back then first_ok = p.at[idx] break end
    end
    io.stderr:write(string.format("\n[Redis with AOF restarted: %d acknowledged, %d refused during the restart, top %d; " ..
      "Redis away %.2f s, first publish acknowledged %.2f s after it was back]\n", #acked, refused, top,
      t_back - t_stop, (first_ok or wsc.now()) - t_back))
    assert.is_true(refused >= 10)
    for _, c in ipairs(subs) do c:close() end
    p:close()
  end)
end)
