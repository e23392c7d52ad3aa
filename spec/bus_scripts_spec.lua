-- The Redis scripts of the bus (lua/ws/bus_scripts.lua) run against a real redis-server the spec
-- starts on a free port: ordered publish (gapless offsets, epochs, capped stream, TTL, the 'o'
-- envelope on the topic's channel), history reads, presence with expiry, and the EVALSHA/EVAL
-- fallback. Driven by a small blocking RESP client (spec/support/redis.lua).
local helper = require "helper"
local redis = require "support.redis"
local resp = require "support.resp"
local scripts = require "ws.bus_scripts"

local PREFIX = "ws:"

describe("bus scripts", function()
  local srv, c, sub

  -- call(cmd, ...) as the bus gives it: reply | nil, message, "redis"
  local function call(...)
    local r, err = c:call(...)
    if r == nil then return nil, err, "closed" end
    if type(r) == "table" and r.err then return nil, r.err, "redis" end
    return r
  end

  local function publish(topic, data, opts)
    opts = opts or {}
    local k = scripts.keys(PREFIX, topic)
    return scripts.run(call, scripts.publish, k.stream, k.meta, k.channel, opts.history or 100,
      opts.ttl or 60, opts.epoch or "", opts.kind or "t", opts.node or "n1", opts.id or "",
      opts.time_us or "1700000000000000", data)
  end

  local function history(topic, limit, since, theirs)
    local k = scripts.keys(PREFIX, topic)
    return scripts.run(call, scripts.history, k.stream, k.meta, limit or 0, since or "", "", 60, theirs or "")
  end

  local function presence(name, topic, ...)
    local k = scripts.keys(PREFIX, topic)
    return scripts.run(call, scripts[name], k.pz, k.ph, k.channel, "n1", ...)
  end

  setup(function()
    srv = redis.start()
    c = assert(resp.connect(srv.port))
    sub = assert(resp.connect(srv.port))
  end)

  teardown(function()
    if sub then sub:close() end
    if c then c:close() end
    if srv then srv.stop() end
  end)

  describe("ordered publish", function()
    it("numbers a topic's messages from 1 without gaps under a new epoch, and publishes the 'o' envelope", function()
      sub:subscribe(PREFIX .. "t:room:a")
      local r1 = assert(publish("room:a", "hello", { epoch = "E1abc", id = "n1/7", time_us = "123" }))
      assert.same({ 1, "E1abc" }, r1)
      local r2 = assert(publish("room:a", "bin\0\n|x", { kind = "b", node = "n2", epoch = "ignored" }))
      assert.same({ 2, "E1abc" }, r2)
      for i = 3, 50 do assert.same({ i, "E1abc" }, publish("room:a", "m" .. i)) end
      local msgs = sub:messages(50, 2)
      assert.equal(50, #msgs)
      assert.equal("\31ws1|o|t|n1|n1/7|1|E1abc|123\nhello", msgs[1])
      assert.equal("\31ws1|o|b|n2||2|E1abc|1700000000000000\nbin\0\n|x", msgs[2])
      for i = 3, 50 do
        assert.equal("\31ws1|o|t|n1||" .. i .. "|E1abc|1700000000000000\nm" .. i, msgs[i])
      end
      assert.same({ "E1abc", "50" }, c:call("HMGET", PREFIX .. "m:room:a", "e", "s"))
    end)

    it("caps the stream at the history size and sets the TTL on the stream and the meta hash", function()
      for i = 1, 30 do assert(publish("room:cap", "x" .. i, { history = 10, ttl = 77 })) end
      assert.equal(10, c:call("XLEN", PREFIX .. "s:room:cap"))
      local first = c:call("XRANGE", PREFIX .. "s:room:cap", "-", "+", "COUNT", 1)
      assert.equal("21-0", first[1][1])
      for _, key in ipairs({ "s:room:cap", "m:room:cap" }) do
        local ttl = c:call("TTL", PREFIX .. key)
        assert.is_true(ttl > 70 and ttl <= 77, key .. " ttl " .. tostring(ttl))
      end
    end)

    it("makes an epoch of Redis's clock when the caller gives none, and a new one when the meta hash is gone", function()
      local r = assert(publish("room:e", "a"))
      assert.matches("^%d+$", r[2])
      assert.is_true(#r[2] <= 32)
      assert(publish("room:e", "b"))
      assert.equal(2, c:call("XLEN", PREFIX .. "s:room:e"))
      -- The meta hash expires (or Redis restarted without it): a new epoch, offsets from 1, old stream dropped.
      c:call("DEL", PREFIX .. "m:room:e")
      local r2 = assert(publish("room:e", "c", { epoch = "Enew" }))
      assert.same({ 1, "Enew" }, r2)
      assert.equal(1, c:call("XLEN", PREFIX .. "s:room:e"))
    end)

    it("keeps offsets gapless and unique when many publishes are pipelined", function()
      local k = scripts.keys(PREFIX, "room:p")
      assert(publish("room:p", "first", { epoch = "Ep" })) -- loads the script: its sha is known
      local cmds = {}
      for i = 1, 200 do
        cmds[i] = { "EVALSHA", scripts.publish.sha, 2, k.stream, k.meta, k.channel, 1000, 60, "", "t", "n" .. (i % 2), "", "", "p" .. i }
      end
      local replies = c:pipeline(cmds)
      for i = 1, 200 do assert.same({ i + 1, "Ep" }, replies[i]) end
    end)
  end)

  describe("history", function()
    setup(function()
      for i = 1, 20 do assert(publish("room:h", "h" .. i, { history = 15, epoch = "Eh", kind = i == 3 and "b" or "t", id = i == 5 and "n1/5" or "" })) end
    end)

    it("reads the last N entries oldest first with the top offset and epoch", function()
      local r = assert(history("room:h", 3))
      assert.equal(20, r[1])
      assert.equal("Eh", r[2])
      assert.equal("", r[3])
      local list = {}
      for i, e in ipairs(r[4]) do list[i] = scripts.entry(e) end
      assert.equal(3, #list)
      assert.same({ offset = 18, data = "h18", kind = "text", node = "n1", time_us = 1700000000000000 }, list[1])
      assert.equal(20, list[3].offset)
    end)

    it("reads everything the stream holds with no limit", function()
      local r = assert(history("room:h", 0))
      assert.equal(15, #r[4])
      assert.equal(6, scripts.entry(r[4][1]).offset)
    end)

    it("reads the entries after `since`, and says when the stream no longer holds since + 1", function()
      local r = assert(history("room:h", 0, 17))
      assert.equal("", r[3])
      assert.same({ 18, 19, 20 }, { scripts.entry(r[4][1]).offset, scripts.entry(r[4][2]).offset, scripts.entry(r[4][3]).offset })
      r = assert(history("room:h", 2, 10))
      assert.equal("", r[3])
      assert.equal(2, #r[4])
      assert.equal(11, scripts.entry(r[4][1]).offset)
      r = assert(history("room:h", 0, 20))
      assert.equal("", r[3])
      assert.equal(0, #r[4])
      r = assert(history("room:h", 0, 5)) -- 6 is the oldest entry: 6 is there, nothing is missing
      assert.equal("", r[3])
      assert.equal(15, #r[4])
      r = assert(history("room:h", 0, 4)) -- 5 was trimmed
      assert.equal("trimmed", r[3])
      assert.equal(6, scripts.entry(r[4][1]).offset)
    end)

    it("says when the caller's epoch is not the topic's, or when since is past the top", function()
      local r = assert(history("room:h", 0, 10, "Eold"))
      assert.equal("epoch", r[3])
      assert.equal(0, #r[4])
      assert.equal("Eh", r[2])
      r = assert(history("room:h", 0, 10, "Eh"))
      assert.equal("", r[3])
      r = assert(history("room:h", 0, 21))
      assert.equal("ahead", r[3])
    end)

    it("gives a topic with no publication an epoch and top 0, which the first publish keeps", function()
      local r = assert(history("room:new", 10))
      assert.equal(0, r[1])
      assert.equal("", r[3])
      assert.equal(0, #r[4])
      local epoch = r[2]
      assert.matches("^%d+$", epoch)
      assert.same({ 1, epoch }, publish("room:new", "x", { epoch = "other" }))
    end)

    it("keeps the excluded connection id of a conn:publish in the entry", function()
      local r = assert(history("room:h", 0, 4))
      for _, e in ipairs(r[4]) do assert.is_nil(scripts.entry(e).id) end
      local r2 = assert(history("room:h", 20))
      local by_offset = {}
      for _, e in ipairs(r2[4]) do local x = scripts.entry(e) by_offset[x.offset] = x end
      assert.is_nil(by_offset[5]) -- trimmed
      local k = scripts.keys(PREFIX, "room:i")
      assert(publish("room:i", "x", { id = "n9/3", kind = "b" }))
      local e = scripts.entry(c:call("XRANGE", k.stream, "-", "+")[1])
      assert.equal("n9/3", e.id)
      assert.equal("binary", e.kind)
    end)
  end)

  describe("presence", function()
    local psub
    setup(function()
      psub = assert(resp.connect(srv.port))
      psub:subscribe(PREFIX .. "t:room:pr")
    end)
    teardown(function() psub:close() end)

    it("adds members with their info, announces only new ones with 'j', reads them back", function()
      local r = assert(presence("presence_add", "room:pr", 60, "n1/1", '{"nick":"ann"}', "n1/2", "bob"))
      assert.same({ 2 }, r)
      r = assert(presence("presence_add", "room:pr", 60, "n1/1", '{"nick":"ann2"}')) -- a refresh
      assert.same({ 0 }, r)
      local msgs = psub:messages(2, 1)
      assert.equal(2, #msgs)
      assert.matches('^\31ws1|j|t|n1|n1/1|||%d+\n{"nick":"ann"}$', msgs[1])
      assert.matches("^\31ws1|j|t|n1|n1/2|||%d+\nbob$", msgs[2])
      assert.same({}, psub:messages(1, 0.2))
      local got = assert(presence("presence_get", "room:pr"))
      local map = {}
      for i = 1, #got, 2 do map[got[i]] = got[i + 1] end
      assert.same({ ["n1/1"] = '{"nick":"ann2"}', ["n1/2"] = "bob" }, map)
      local ttl = c:call("TTL", PREFIX .. "pz:room:pr")
      assert.is_true(ttl > 55 and ttl <= 60)
    end)

    it("removes members and announces each one that was there with 'l'", function()
      assert.equal(1, presence("presence_remove", "room:pr", "n1/2", "n1/nobody"))
      local msgs = psub:messages(2, 0.5)
      assert.equal(1, #msgs)
      assert.matches("^\31ws1|l|t|n1|n1/2|||%d+\nbob$", msgs[1])
      assert.same({ "n1/1", '{"nick":"ann2"}' }, presence("presence_get", "room:pr"))
      assert.equal(0, presence("presence_remove", "room:pr", "n1/2"))
    end)

    it("purges expired members on every read and add, announcing each purged one once", function()
      assert(presence("presence_add", "room:pr", 1, "n2/1", "short", "n2/2", "short2"))
      assert.equal(2, #psub:messages(2, 1)) -- their joins
      local deadline = os.time() + 5
      local got
      repeat
        got = assert(presence("presence_get", "room:pr"))
      until #got == 2 or os.time() > deadline
      assert.same({ "n1/1", '{"nick":"ann2"}' }, got)
      local msgs = psub:messages(3, 0.5)
      assert.equal(2, #msgs)
      table.sort(msgs)
      assert.matches("^\31ws1|l|t|n1|n2/1|||%d+\nshort$", msgs[1])
      assert.matches("^\31ws1|l|t|n1|n2/2|||%d+\nshort2$", msgs[2])
      assert.same({}, presence("presence_purge", "room:pr"))
      assert.is_false(c:call("HGET", PREFIX .. "ph:room:pr", "n2/1"))
    end)

    it("purge returns the purged ids; add returns the ones it purged too", function()
      assert(presence("presence_add", "room:pr", 1, "n3/1", "a", "n3/2", "b"))
      local purged
      local deadline = os.time() + 5
      repeat
        purged = assert(presence("presence_purge", "room:pr"))
      until #purged > 0 or os.time() > deadline
      table.sort(purged)
      assert.same({ "n3/1", "n3/2" }, purged)
      assert(presence("presence_add", "room:pr", 1, "n4/1", "a"))
      helper.sleep(1.1)
      local r = assert(presence("presence_add", "room:pr", 60, "n4/2", "b"))
      assert.same({ 1, "n4/1" }, r)
      psub:messages(20, 0.2)
    end)

    it("handles a thousand members in one call", function()
      local args = {}
      for i = 1, 1000 do args[#args + 1] = "n5/" .. i args[#args + 1] = "i" .. i end
      local r = assert(presence("presence_add", "room:big", 60, (table.unpack or unpack)(args)))
      assert.same({ 1000 }, r)
      local got = assert(presence("presence_get", "room:big"))
      assert.equal(2000 + 0, #got - 2 * 0)
      r = assert(presence("presence_add", "room:big", 1, "n5/extra", "x"))
      c:call("ZADD", PREFIX .. "pz:room:big", "XX", 1, "n5/1") -- expired long ago, as are...
      local ids = {}
      for i = 2, 1000 do ids[#ids + 1] = 1 ids[#ids + 1] = "n5/" .. i end
      c:call("ZADD", PREFIX .. "pz:room:big", "XX", (table.unpack or unpack)(ids))
      local purged = assert(presence("presence_purge", "room:big"))
      assert.equal(1000, #purged)
      assert.equal(1, c:call("HLEN", PREFIX .. "ph:room:big"))
    end)
  end)

  describe("EVALSHA with EVAL as the fallback", function()
    it("answers NOSCRIPT with an EVAL after SCRIPT FLUSH, and passes Redis errors on", function()
      assert(publish("room:f", "a"))
      assert.equal("OK", c:call("SCRIPT", "FLUSH"))
      local r = assert(publish("room:f", "b"))
      assert.equal(2, r[1])
      local ok, err, code = scripts.run(call, scripts.publish, "k1") -- wrong number of arguments
      assert.is_nil(ok)
      assert.equal("redis", code)
      assert.matches("ERR", err)
    end)

    it("sends EVAL first on each connection generation, then EVALSHA", function()
      local sent = {}
      local function send(cmd) sent[#sent + 1] = cmd return true end
      local s = { name = "x", nkeys = 0, src = "return 1", sha = "abc" }
      local loaded = {}
      scripts.send(send, s, loaded, 1)
      scripts.send(send, s, loaded, 1)
      scripts.send(send, s, loaded, 2)
      scripts.send(send, s, loaded, 2)
      assert.same({ "EVAL", "EVALSHA", "EVAL", "EVALSHA" }, sent)
      scripts.send(send, s, {}, 2) -- another connection
      assert.equal("EVAL", sent[5])
      local s2 = { name = "y", nkeys = 0, src = "return 1" } -- sha unknown: EVAL every time
      sent = {}
      scripts.send(send, s2, loaded, 1)
      scripts.send(send, s2, loaded, 1)
      assert.same({ "EVAL", "EVAL" }, sent)
    end)
  end)
end)
