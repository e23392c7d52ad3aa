-- Node-level gap fill of ordered topics: a node that misses messages on its subscription (lost on
-- the channel, its subscriber connection killed, Redis restarted) reads them from the topic's
-- stream and delivers them in order and once before the live ones; only when the stream no longer
-- holds them, or the epoch changed, is the application told (server.on_gap; by default the
-- connections are closed with 1012). Two node processes (spec/support/bus_node.lua) on a
-- redis-server of the spec's own; every wait is bounded.
local helper = require "helper"
local socket = require "socket"
local redis = require "support.redis"
local resp = require "support.resp"
local wsc = require "support.ws_client"
local scripts = require "ws.bus_scripts"

local nodes = require "support.bus_nodes"

local client = nodes.client
local function start_node(redis_url, name, history, gap_mode)
  return nodes.start(redis_url, name, { presence_ttl = 60, history = history, gap = gap_mode or "notify" })
end

-- The offsets and data of "msg <topic> <offset> <epoch> <data>" events, in arrival order.
local function msgs(c, topic) return c.msgs(topic) end

local function counter(c, name)
  local line = c.cmd("bus") or ""
  return tonumber(line:match(" " .. name .. "=(%d+)")), line
end

describe("ordered topics: gap fill on a node", function()
  local srv, admin, A, B

  local function subscribe_both(topic)
    local subs = { client(A), client(B) }
    for _, c in ipairs(subs) do assert.equal("ok sub", c.cmd("sub " .. topic)) end
    assert(helper.wait_until(function()
      return admin:call("PUBSUB", "NUMSUB", "ws:t:" .. topic)[2] == 2
    end, 5, 0.05), "both nodes subscribed to " .. topic)
    return subs
  end

  -- An ordered publish that reaches the stream but not the channel (as if the node's
  -- subscription had lost it).
  local function publish_unseen(topic, data)
    local k = scripts.keys("ws:", topic)
    local r = admin:call("EVAL", scripts.publish.src, 2, k.stream, k.meta, "ws:t:nowhere", 1000, 600, "",
      "t", "spec", "", "", data)
    assert(type(r) == "table" and r[1], "publish failed")
    return r[1], r[2]
  end

  setup(function()
    srv = redis.start()
    admin = assert(resp.connect(srv.port))
    A = start_node(srv.url, "gapA")
    B = start_node(srv.url, "gapB")
    for _, n in ipairs({ A, B }) do
      local c = client(n)
      assert(helper.wait_until(function() return (c.cmd("bus") or ""):match("^ok bus up") end, 10, 0.1))
      c:close()
    end
  end)

  teardown(function()
    if admin then admin:close() end
    for _, n in ipairs({ A or {}, B or {} }) do if n.proc then n.proc:kill() end end
    if srv then srv.stop() end
  end)

  it("fills a message lost on the channel from the stream, before the next one, on every node", function()
    local subs = subscribe_both("room:lost")
    local p = client(A)
    assert.equal("ok pub", p.cmd("pub room:lost one"))
    for _, c in ipairs(subs) do assert.equal(1, #c.wait_events("^msg room:lost 1 ", 1, 5)) end
    assert.equal(2, (publish_unseen("room:lost", "two")))
    assert.equal(3, (publish_unseen("room:lost", "three")))
    assert.equal("ok pub", p.cmd("pub room:lost four"))
    for _, c in ipairs(subs) do
      c.wait_events("^msg room:lost 4 ", 1, 5)
      local got = msgs(c, "room:lost")
      assert.equal(4, #got)
      for i, d in ipairs({ "one", "two", "three", "four" }) do
        assert.equal(i, got[i].offset)
        assert.equal(d, got[i].data)
      end
      assert.same({}, c.matching("^gap"))
    end
    local fills = counter(p, "fills")
    assert.is_true(fills >= 1)
    for _, c in ipairs(subs) do c:close() end
    p:close()
  end)

  it("tells on_gap when the stream no longer holds the missing range, then goes on", function()
    local subs = subscribe_both("room:trim")
    local p = client(B)
    assert.equal("ok pub", p.cmd("pub room:trim a"))
    for _, c in ipairs(subs) do assert.equal(1, #c.wait_events("^msg room:trim 1 ", 1, 5)) end
    assert.equal(6, admin:call("HINCRBY", "ws:m:room:trim", "s", 5)) -- offsets 2..6 never existed
    assert.equal("ok pub", p.cmd("pub room:trim b"))
    assert.equal("ok pub", p.cmd("pub room:trim c"))
    for _, c in ipairs(subs) do
      assert.same({ "gap room:trim trimmed 1" }, c.wait_events("^gap", 1, 5))
      c.wait_events("^msg room:trim 8 ", 1, 5)
      local got = msgs(c, "room:trim")
      assert.same({ 1, 7, 8 }, { got[1].offset, got[2].offset, got[3].offset })
      assert.equal(3, #got)
    end
    for _, c in ipairs(subs) do c:close() end
    p:close()
  end)

  it("loses nothing and duplicates nothing when the subscriber connections are killed twice mid-stream", function()
    local subs = subscribe_both("room:stream")
    local pa, pb = client(A), client(B)
    local N = 2000
    local t0 = wsc.now()
    for i = 1, N do
      assert((i % 2 == 0 and pa or pb):send("pub room:stream " .. i))
      if i % 20 == 0 then
        socket.sleep(0.01)
        for _, c in ipairs(subs) do c.pump() end
        pa.pump() pb.pump()
      end
      if i == 600 or i == 1300 then
        local killed = admin:call("CLIENT", "KILL", "TYPE", "pubsub")
        assert.is_true(killed >= 2)
      end
    end
    local rate = N / (wsc.now() - t0)
    for _, c in ipairs(subs) do
      c.wait_events("^msg room:stream " .. N .. " ", 1, 20)
      local got = msgs(c, "room:stream")
      local bad
      for i, m in ipairs(got) do
        if m.offset ~= i then bad = bad or ("offset " .. m.offset .. " at " .. i) end
      end
      assert.is_nil(bad)
      assert.equal(N, #got)
      assert.same({}, c.matching("^gap"))
    end
    for _, p in ipairs({ pa, pb }) do
      p.wait_events("^ok pub", N / 2, 10)
      assert.equal(N / 2, #p.matching("^ok pub"))
    end
    local reconnects = counter(pa, "reconnects")
    assert.is_true(reconnects >= 2, "reconnects " .. tostring(reconnects))
    io.stderr:write(string.format("[%d messages at %.0f/s; fills A=%s B=%s]\n", N, rate,
      tostring(counter(pa, "fills")), tostring(counter(pb, "fills"))))
    for _, c in ipairs(subs) do c:close() end
    pa:close() pb:close()
  end)

  it("fills the gap of a node that Redis dropped for falling behind (SIGSTOP, small output-buffer limit)", function()
    local subs = subscribe_both("room:slow")
    local p = client(A)
    assert.equal("OK", admin:call("CONFIG", "SET", "client-output-buffer-limit", "pubsub 64kb 32kb 1"))
    local pad = string.rep("x", 16000)
    local N = 800
    os.execute("/bin/kill -STOP -- -" .. B.proc.pid)
    local stopped = true
    local ok, err = pcall(function()
      for i = 1, N do
        assert(p:send("pub room:slow " .. i .. " " .. pad))
        if i % 20 == 0 then
          socket.sleep(0.05) -- 13 MB in 2 s: more than the socket buffers take, far over the limit
          p.pump()
          subs[1].pump()
        end
      end
      socket.sleep(1.5)
    end)
    os.execute("/bin/kill -CONT -- -" .. B.proc.pid)
    stopped = false
    assert(ok, err)
    assert.is_false(stopped)
    for _, c in ipairs(subs) do
      c.wait_events("^msg room:slow " .. N .. " ", 1, 20)
      local got = c.msgs("room:slow")
      local bad
      for i, m in ipairs(got) do if m.offset ~= i then bad = bad or ("offset " .. m.offset .. " at " .. i) end end
      assert.is_nil(bad)
      assert.equal(N, #got)
      assert.same({}, c.matching("^gap"))
    end
    local reconnects = counter(client(B), "reconnects")
    assert.is_true(reconnects >= 1, "node B was not dropped by Redis")
    admin:call("CONFIG", "SET", "client-output-buffer-limit", "pubsub 32mb 8mb 60")
    for _, c in ipairs(subs) do c:close() end
    p:close()
  end)

  it("reports the epoch change of a Redis restarted without persistence, closing with 1012 by default", function()
    local C = start_node(srv.url, "gapC", 1000, "close")
    local subs = subscribe_both("room:epoch")
    local sc = client(C)
    assert.equal("ok sub", sc.cmd("sub room:epoch"))
    local tracker = client(A)
    local tracker_id = tracker.cmd("id"):match("^ok id (%S+)")
    assert.equal("ok track", tracker.cmd("track room:epoch t1"))
    assert(helper.wait_until(function() return admin:call("PUBSUB", "NUMSUB", "ws:t:room:epoch")[2] == 3 end, 5, 0.05))
    local p = client(B)
    local first = p.cmd("wpub room:epoch before")
    local epoch1 = first:match("^ok wpub 1 (%w+)$")
    assert.is_truthy(epoch1, first)
    for _, c in ipairs(subs) do assert.equal(1, #c.wait_events("^msg room:epoch 1 ", 1, 5)) end
    assert.equal(1, #sc.wait_events("^msg room:epoch 1 ", 1, 5))
    admin:close()
    srv.restart()
    admin = assert(resp.connect(srv.port))
    for _, c in ipairs(subs) do
      assert.same({ "gap room:epoch epoch 1" }, c.wait_events("^gap", 1, 10))
    end
    -- the default on_gap: closed with 1012
    sc.wait_events("^never", 1, 10)
    assert.equal(1012, sc.closed)
    -- live messages go on under the new epoch, from offset 1
    local again
    assert(helper.wait_until(function()
      again = p.cmd("wpub room:epoch after")
      return again and again:match("^ok")
    end, 10, 0.2), "publish after the restart: " .. tostring(again))
    local epoch2 = again:match("^ok wpub 1 (%w+)$")
    assert.is_truthy(epoch2, again)
    assert.not_equal(epoch1, epoch2)
    for _, c in ipairs(subs) do
      assert.equal(1, #c.wait_events("^msg room:epoch 1 " .. epoch2 .. " after$", 1, 5))
    end
    -- the tracked member is back in the new Redis (refreshed when the bus came back)
    assert(helper.wait_until(function()
      return (p.cmd("pres room:epoch") or ""):find(tracker_id .. "=t1", 1, true)
    end, 5, 0.1))
    for _, c in ipairs(subs) do c:close() end
    p:close() tracker:close()
    C.proc:kill()
  end)
end)
