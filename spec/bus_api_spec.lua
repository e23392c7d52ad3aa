-- The Lua API of ordered topics, history, presence and send_to inside one process (one node):
-- argument errors, publish with and without waiting, `format`, conn:publish's exclusion, history
-- reads, presence with on_presence in the callback style, send_to on this node, refusals before the
-- bus is up. A redis-server of the spec's own; clients are lua-ws's own, on the same loop; every
-- wait is bounded.
local ws = require "ws"
local redis_mod = require "support.redis"
local loop = require "support.on_loop"

local function wait_until(fn, timeout) return loop.wait_until(fn, timeout, 0.01) end
local in_task = loop.in_task

local function message(e) return (tostring(e):gsub("^.-:%d+: ", "")) end

-- A client on the loop that keeps what it receives.
local function collector(port)
  local c = { got = {} }
  ws.spawn(function()
    local conn = assert(ws.connect("ws://127.0.0.1:" .. port .. "/"))
    c.conn = conn
    for msg, kind in conn:messages() do c.got[#c.got + 1] = { msg, kind } end
    c.closed = conn.close_code or true
  end)
  assert.truthy(wait_until(function() return c.conn end), "client connected")
  return c
end

describe("bus API in one process", function()
  local redis
  setup(function() redis = redis_mod.start() end)
  teardown(function() if redis then redis.stop() end end)

  it("raises on misuse and refuses what needs Redis before the bus is up", function()
    local plain = assert(ws.server({ port = 0 }, function() end))
    assert.equal("ws: server:history needs the server's bus option", message(select(2, pcall(plain.history, plain, "t"))))
    assert.equal("ws: server:presence needs the server's bus option", message(select(2, pcall(plain.presence, plain, "t"))))
    assert.equal("ws: server:send_to needs the server's bus option", message(select(2, pcall(plain.send_to, plain, "x/1", "d"))))
    plain:close()
    local srv = assert(ws.server({ port = 0, bus = { url = redis.url, node = "early", ordered = { "room:*" } } }, function() end))
    -- nothing runs before the loop: no node yet
    assert.same({ nil, "bus unavailable", "unavailable" }, { srv:publish("room:a", "x") })
    assert.same({ nil, "bus unavailable", "unavailable" }, { srv:history("room:a") })
    assert.same({ nil, "bus unavailable", "unavailable" }, { srv:presence("room:a") })
    assert.equal("ws: history limit must be a whole number >= 0", message(select(2, pcall(srv.history, srv, "room:a", { limit = -1 }))))
    assert.equal("ws: history since must be an offset (a whole number >= 0)", message(select(2, pcall(srv.history, srv, "room:a", { since = 1.5 }))))
    assert.equal('ws: publish kind must be "text" or "binary"', message(select(2, pcall(srv.publish, srv, "room:a", "x", "blob"))))
    assert.equal('ws: send_to kind must be "text" or "binary"', message(select(2, pcall(srv.send_to, srv, "early/1", "x", "blob"))))
    srv:close()
  end)

  it("publishes in order with offsets, formats once per message, excludes conn:publish's sender, reads history", function()
    local calls = 0
    local srv
    srv = assert(ws.server({ port = 0, bus = {
      url = redis.url, node = "one", ordered = { "room:*" }, history = 5,
      format = function(topic, data, offset, epoch, kind)
        calls = calls + 1
        return topic .. "#" .. offset .. "@" .. epoch .. ":" .. kind .. ":" .. data
      end,
    } }, {
      open = function(conn) conn:subscribe("room:o") end,
      message = function(conn, msg) assert(conn:publish("room:o", "from-" .. msg)) end,
    }))
    assert.truthy(wait_until(function() return srv:bus() == "up" end))
    local a, b, c = collector(srv.port), collector(srv.port), collector(srv.port)
    assert.truthy(wait_until(function() return srv:subscribers("room:o") == 3 end))
    assert.truthy(wait_until(function() return redis.cli("PUBSUB", "NUMSUB", "ws:t:room:o"):match("\n1$") end))
    local offset, epoch = in_task(function() return srv:publish("room:o", "hello", { wait = true }) end)
    assert.equal(1, offset)
    assert.matches("^[%w]+$", epoch)
    assert.is_true(srv:publish("room:o", "\0\1", { kind = "binary" }))
    assert.truthy(wait_until(function() return #a.got == 2 and #b.got == 2 and #c.got == 2 end))
    assert.same({ "room:o#1@" .. epoch .. ":text:hello", "text" }, a.got[1])
    assert.same({ "room:o#2@" .. epoch .. ":binary:\0\1", "binary" }, c.got[2])
    assert.equal(2, calls) -- once per message, not per subscriber
    -- conn:publish from a's connection: everyone but a
    a.conn:send("a")
    assert.truthy(wait_until(function() return #b.got == 3 and #c.got == 3 end))
    assert.equal("room:o#3@" .. epoch .. ":text:from-a", b.got[3][1])
    ws.sleep(0.1)
    assert.equal(2, #a.got)
    -- history: the data as published, capped at 5 entries
    in_task(function()
      for i = 4, 8 do assert(srv:publish("room:o", "m" .. i, { wait = true })) end
      local list, top = srv:history("room:o")
      assert.same({ offset = 8, epoch = epoch }, top)
      assert.equal(5, #list)
      assert.same({ offset = 4, data = "m4", kind = "text" }, list[1])
      list, top = srv:history("room:o", { limit = 2 })
      assert.same({ 7, 8 }, { list[1].offset, list[2].offset })
      list, top = srv:history("room:o", { since = 6, epoch = epoch })
      assert.same({ 7, 8 }, { list[1].offset, list[2].offset })
      assert.is_nil(top.gone)
      list, top = srv:history("room:o", { since = 1 })
      assert.equal("trimmed", top.gone)
      assert.equal(4, list[1].offset)
      list, top = srv:history("room:o", { since = 3, epoch = "other" })
      assert.equal("epoch", top.gone)
      assert.same({}, list)
      list, top = srv:history("room:none")
      assert.same({}, list)
      assert.equal(0, top.offset)
    end)
    local _, counters = srv:bus()
    assert.is_true(counters.delivered >= 8)
    srv:close()
  end)

  it("tells on_gap of a new epoch, but not of a topic that expired after history_ttl of silence", function()
    local gaps = {}
    local srv = assert(ws.server({ port = 0, bus = {
      url = redis.url, node = "epochs", ordered = { "room:*" }, history_ttl = 1,
    } }, { open = function(conn) conn:subscribe("room:x") end }))
    srv.on_gap = function(topic, conns, why) gaps[#gaps + 1] = { topic, #conns, why } end
    assert.truthy(wait_until(function() return srv:bus() == "up" end))
    local a = collector(srv.port)
    assert.truthy(wait_until(function() return redis.cli("PUBSUB", "NUMSUB", "ws:t:room:x"):match("\n1$") end))
    local _, e1 = in_task(function() return srv:publish("room:x", "one", { wait = true }) end)
    assert.truthy(wait_until(function() return #a.got == 1 end))
    -- silence for longer than history_ttl: the topic expires in Redis, nothing was missed
    assert.truthy(wait_until(function() return redis.cli("EXISTS", "ws:m:room:x") == "0" end, 5))
    local o2, e2 = in_task(function() return srv:publish("room:x", "two", { wait = true }) end)
    assert.equal(1, o2)
    assert.not_equal(e1, e2)
    assert.truthy(wait_until(function() return #a.got == 2 end))
    assert.equal("two", a.got[2][1])
    ws.sleep(0.05)
    assert.same({}, gaps)
    -- the topic's meta gone at once (as after a restart without persistence): a loss is possible
    redis.cli("DEL", "ws:m:room:x")
    in_task(function() return srv:publish("room:x", "three", { wait = true }) end)
    assert.truthy(wait_until(function() return #gaps == 1 end))
    assert.same({ "room:x", 1, "epoch" }, gaps[1])
    assert.truthy(wait_until(function() return #a.got == 3 end))
    srv:close()
  end)

  it("forgets a topic's position once it unsubscribed: a later subscriber gets no stale fill", function()
    local srv = assert(ws.server({ port = 0, bus = {
      url = redis.url, node = "forget", ordered = { "room:*" }, linger = 0.1,
    } }, { open = function(conn) conn:subscribe("room:f") end }))
    assert.truthy(wait_until(function() return srv:bus() == "up" end))
    local function subscribed(n)
      return wait_until(function() return redis.cli("PUBSUB", "NUMSUB", "ws:t:room:f"):match("\n" .. n .. "$") end)
    end
    local a = collector(srv.port)
    assert.truthy(subscribed(1))
    in_task(function() return srv:publish("room:f", "one", { wait = true }) end)
    assert.truthy(wait_until(function() return #a.got == 1 end))
    a.conn:close()
    assert.truthy(subscribed(0)) -- after the linger
    in_task(function()
      assert(srv:publish("room:f", "two", { wait = true }))
      assert(srv:publish("room:f", "three", { wait = true }))
    end)
    local b = collector(srv.port)
    assert.truthy(subscribed(1))
    in_task(function() return srv:publish("room:f", "four", { wait = true }) end)
    assert.truthy(wait_until(function() return #b.got >= 1 end))
    ws.sleep(0.1)
    assert.same({ { "four", "text" } }, b.got)
    local _, counters = srv:bus()
    assert.equal(0, counters.fills)
    srv:close()
  end)

  it("tracks presence from callbacks, calls on_presence, untracks a closed connection by itself", function()
    local events = {}
    local srv
    srv = assert(ws.server({ port = 0, bus = { url = redis.url, node = "pres", presence_ttl = 30 } }, {
      open = function(conn)
        conn:subscribe("lobby")
        assert(conn:track("lobby", '{"nick":"n' .. #events .. '"}'))
      end,
    }))
    srv.on_presence = function(topic, event, id, info) events[#events + 1] = { topic, event, id, info } end
    assert.truthy(wait_until(function() return srv:bus() == "up" end))
    local a = collector(srv.port)
    assert.truthy(wait_until(function() return #events == 1 end))
    assert.equal("lobby", events[1][1])
    assert.equal("join", events[1][2])
    assert.matches("^pres/%d+$", events[1][3])
    local id = events[1][3]
    local map = in_task(function() return srv:presence("lobby") end)
    assert.same({ [id] = '{"nick":"n0"}' }, map)
    local ttl = tonumber(redis.cli("TTL", "ws:pz:lobby"))
    assert.is_true(ttl > 25 and ttl <= 30)
    a.conn:close()
    assert.truthy(wait_until(function() return #events == 2 end))
    assert.same({ "lobby", "leave", id, '{"nick":"n0"}' }, events[2])
    assert.same({}, in_task(function() return srv:presence("lobby") end))
    srv:close()
  end)

  it("adds a member tracked while Redis did not answer as soon as it does", function()
    local port = require("helper").free_port()
    local results = {}
    local srv = assert(ws.server({ port = 0, bus = { url = "redis://127.0.0.1:" .. port, node = "late" } }, {
      open = function(conn) results[#results + 1] = { conn:track("hall", "early") } end,
    }))
    local a = collector(srv.port)
    assert.truthy(wait_until(function() return results[1] end))
    assert.same({ nil, "bus unavailable", "unavailable" }, results[1])
    local late = redis_mod.start({ port = port })
    assert.truthy(wait_until(function() return srv:bus() == "up" end, 10))
    assert.truthy(wait_until(function() return late.cli("HLEN", "ws:ph:hall") == "1" end, 5))
    local map = in_task(function() return srv:presence("hall") end)
    local id, info = next(map)
    assert.matches("^late/%d+$", id)
    assert.equal("early", info)
    assert.is_nil(next(map, id))
    a.conn:close()
    srv:close()
    late.stop()
  end)

  it("sends to a connection of this node by id, and says notfound for one that is not there", function()
    local ids = {}
    local srv = assert(ws.server({ port = 0, bus = { url = redis.url, node = "direct" } }, {
      open = function(conn) ids[#ids + 1] = conn.id end,
    }))
    assert.truthy(wait_until(function() return srv:bus() == "up" end))
    local a = collector(srv.port)
    assert.truthy(wait_until(function() return ids[1] end))
    assert.is_true(srv:send_to(ids[1], "hi"))
    assert.is_true(srv:send_to(ids[1], "\255", "binary"))
    assert.truthy(wait_until(function() return #a.got == 2 end))
    assert.same({ { "hi", "text" }, { "\255", "binary" } }, a.got)
    assert.same({ nil, "no such connection", "notfound" }, { srv:send_to("direct/99999", "x") })
    assert.same({ nil, "no such connection", "notfound" }, { srv:send_to("not an id", "x") })
    -- another node's connection: sent through Redis, no acknowledgement
    assert.is_true(srv:send_to("elsewhere/1", "x"))
    srv:close()
  end)
end)
