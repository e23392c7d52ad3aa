-- The Redis bus across two server processes (spec/support/bus_fast_node.lua) on one redis-server of
-- the spec's own: the fast class, subscriptions only where members are (Redis's PUBSUB NUMSUB),
-- the linger, reconnect after CLIENT KILL and a Redis restart, foreign messages. Clients are
-- ws.connect in this process; every wait is bounded.
local ws = require "ws"
local helper = require "helper"
local redis_mod = require "support.redis"
local loop = require "support.on_loop"

local wait_until = loop.wait_until

local function start_node(redis, id, linger)
  local p = helper.spawn_lua({ helper.root .. "/spec/support/bus_fast_node.lua", redis.url, id,
    tostring(linger or 0.3), "1", "1" }, { timeout = 180 })
  local port = p:wait_output("listening (%d+)", 10)
  assert(port, "node did not start: " .. tostring(p:errors()))
  return { proc = p, port = tonumber(port), id = id }
end

local function client(n)
  return assert(ws.connect(("ws://127.0.0.1:%d/"):format(n.port)))
end

local function cmd(c, text)
  assert(c:send(text))
  local r, err = c:receive(5)
  assert(r, err)
  return r
end

local function state(n)
  n.ctl = n.ctl and n.ctl.state == "open" and n.ctl or client(n)
  local line = cmd(n.ctl, "state")
  local st = { state = line:match("^state (%S+)") }
  for k, v in line:gmatch("(%w+)=(%-?%d+)") do st[k] = tonumber(v) end
  return st
end

local function numsub(redis, channels)
  local out = redis.cli("PUBSUB", "NUMSUB", (unpack or table.unpack)(channels))
  local counts, lines = {}, {}
  for l in out:gmatch("[^\n]+") do lines[#lines + 1] = l end
  for i = 1, #lines, 2 do counts[lines[i]] = tonumber(lines[i + 1]) end
  return counts
end

local function both_up(a, b)
  return wait_until(function() return state(a).state == "up" and state(b).state == "up" end, 5)
end

describe("the Redis bus across two processes", function()
  local redis, A, B
  setup(function()
    redis = redis_mod.start()
    A = start_node(redis, "nodeA")
    B = start_node(redis, "nodeB")
    assert.truthy(both_up(A, B), "the bus did not come up")
  end)
  teardown(function()
    if A then A.proc:kill() end
    if B then B.proc:kill() end
    if redis then redis.stop() end
  end)

  it("delivers a fast publish to the other node's subscribers once and skips its own envelope", function()
    local xa, yb = client(A), client(B)
    assert.equal("ok", cmd(xa, "sub room"))
    assert.equal("ok", cmd(yb, "sub room"))
    assert.truthy(wait_until(function() return numsub(redis, { "ws:t:room" })["ws:t:room"] == 2 end))
    local a0, b0 = state(A), state(B)
    local ctl = client(B)
    assert.equal("ok 1", cmd(ctl, "pub room hello")) -- local count: yb
    assert.equal("hello", xa:receive(5))
    assert.equal("hello", yb:receive(5))
    local r, err = yb:receive(0.3)
    assert.is_nil(r) assert.equal("timeout", err) -- its own envelope came back and was skipped
    assert.truthy(wait_until(function() return state(A).received == a0.received + 1 end))
    assert.truthy(wait_until(function() return state(B).own == b0.own + 1 end))
    assert.equal(b0.sent + 1, state(B).sent)
    -- conn:publish: everyone but the sender, on every node
    assert.equal("ok 0", cmd(yb, "cpub room from-y"))
    assert.equal("from-y", xa:receive(5))
    r = yb:receive(0.3)
    assert.is_nil(r)
    -- conn.id names the node
    assert.matches("^id nodeB/%d+$", cmd(ctl, "id"))
    xa:close() yb:close() ctl:close()
  end)

  it("subscribes only where members are: 1,000 rooms of two members, NUMSUB = nodes holding members", function()
    local conns = {}
    for i = 1, 2 do
      conns[#conns + 1] = client(A)
      assert.equal("ok", cmd(conns[#conns], "subn r 1 600")) -- more than one SUBSCRIBE batch (512)
      conns[#conns + 1] = client(B)
      assert.equal("ok", cmd(conns[#conns], "subn r 601 1000"))
    end
    local shared = client(B) -- rooms 1..10 have a member on each node
    assert.equal("ok", cmd(shared, "subn r 1 10"))
    local chans = {}
    for i = 1, 1000 do chans[i] = "ws:t:r" .. i end
    local counts
    assert.truthy(wait_until(function()
      counts = numsub(redis, chans)
      local sum = 0
      for _, v in pairs(counts) do sum = sum + v end
      return sum == 1010
    end, 10), "subscriptions did not settle")
    for i = 1, 1000 do assert.equal(i <= 10 and 2 or 1, counts["ws:t:r" .. i], "room r" .. i) end

    -- B publishes in its own rooms: A receives nothing from the bus
    local a0, b0 = state(A), state(B)
    local ctlB = client(B)
    for i = 601, 1000 do cmd(ctlB, "pub r" .. i .. " m" .. i) end
    assert.truthy(wait_until(function() return state(B).own == b0.own + 400 end, 10))
    assert.equal(a0.received, state(A).received)
    -- A publishes in B's rooms: B receives every one
    local ctlA = client(A)
    for i = 601, 700 do assert.equal("ok 0", cmd(ctlA, "pub r" .. i .. " n" .. i)) end
    assert.truthy(wait_until(function() return state(B).received == b0.received + 100 end, 10))
    assert.equal(a0.own, state(A).own)

    -- both subscribed connections killed: every room is subscribed again (in batches) within 2 s
    assert.equal("2", redis.cli("CLIENT", "KILL", "TYPE", "pubsub"))
    local t0 = ws.now()
    assert.truthy(wait_until(function()
      local sum = 0
      for _, v in pairs(numsub(redis, chans)) do sum = sum + v end
      return sum == 1010
    end, 2), "not resubscribed within 2 s")
    io.stderr:write(("\n  1,010 subscriptions back %.2f s after CLIENT KILL\n"):format(ws.now() - t0))

    -- the last members leave: after the linger no subscription is left
    for _, c in ipairs(conns) do c:close() end
    shared:close()
    assert.truthy(wait_until(function()
      local out = redis.cli("PUBSUB", "CHANNELS", "ws:t:r*")
      return out == ""
    end, 5), "subscriptions left after the linger")
    ctlA:close() ctlB:close()
  end)

  it("is back and resubscribed within 2 s after CLIENT KILL TYPE pubsub", function()
    local xa, yb = client(A), client(B)
    assert.equal("ok", cmd(xa, "sub k1"))
    assert.equal("ok", cmd(yb, "sub k1"))
    assert.truthy(wait_until(function() return numsub(redis, { "ws:t:k1" })["ws:t:k1"] == 2 end))
    local r0 = state(A).reconnects
    local t0 = ws.now()
    assert.equal("2", redis.cli("CLIENT", "KILL", "TYPE", "pubsub"))
    assert.truthy(wait_until(function()
      return numsub(redis, { "ws:t:k1" })["ws:t:k1"] == 2 and state(A).reconnects > r0
    end, 2), "not resubscribed within 2 s")
    assert.is_true(ws.now() - t0 < 2)
    assert.equal("ok 1", cmd(client(B), "pub k1 after-kill"))
    assert.equal("after-kill", xa:receive(5))
    xa:close() yb:close()
  end)

  it("keeps local delivery while Redis is down (counted unsent) and is back after a restart", function()
    local xa, yb = client(A), client(B)
    assert.equal("ok", cmd(xa, "sub k2"))
    assert.equal("ok", cmd(yb, "sub k2"))
    assert.truthy(wait_until(function() return numsub(redis, { "ws:t:k2" })["ws:t:k2"] == 2 end))
    local ctl = client(A)
    local u0 = state(A).unsent
    redis.stop()
    assert.truthy(wait_until(function() return state(A).state == "down" end, 3))
    assert.equal("ok 1", cmd(ctl, "pub k2 while-down"))
    assert.equal("while-down", xa:receive(5))
    assert.equal(u0 + 1, state(A).unsent)
    local t0 = ws.now()
    redis.restart()
    assert.truthy(wait_until(function()
      return numsub(redis, { "ws:t:k2" })["ws:t:k2"] == 2 and state(A).state == "up" and state(B).state == "up"
    end, 4), "not back after the restart")
    io.stderr:write(("\n  bus back %.2f s after redis-server answered again\n"):format(ws.now() - t0))
    assert.equal("ok 1", cmd(client(B), "pub k2 after-restart"))
    assert.equal("after-restart", xa:receive(5))
    xa:close() yb:close() ctl:close()
  end)

  it("counts and drops foreign and malformed messages on its channels", function()
    local xa = client(A)
    assert.equal("ok", cmd(xa, "sub k3"))
    assert.truthy(wait_until(function() return numsub(redis, { "ws:t:k3" })["ws:t:k3"] == 1 end))
    local f0 = state(A).foreign
    redis.cli("PUBLISH", "ws:t:k3", "not an envelope")
    redis.cli("PUBLISH", "ws:t:k3", "\31ws1|f|t|bad node||||\nx")
    redis.cli("PUBLISH", "ws:t:k3", "\31ws1|x|t|n||||\nx")
    redis.cli("PUBLISH", "ws:t:k3", "\31ws1|f|t|n||99999999999999999999999||\nx")
    redis.cli("PUBLISH", "ws:n:nodeA", "\31ws1|f|t|n||||\nno topic on a node channel")
    wait_until(function() return state(A).foreign == f0 + 5 end)
    assert.equal(f0 + 5, state(A).foreign)
    local r = xa:receive(0.2)
    assert.is_nil(r)
    assert.is_true(A.proc:running())
    -- a valid envelope from elsewhere still goes through
    redis.cli("PUBLISH", "ws:t:k3", "\31ws1|f|t|other||||\nfine")
    assert.equal("fine", xa:receive(5))
    xa:close()
  end)
end)
