-- examples/chat.lua as its users meet it: a child process on 127.0.0.1, its page over HTTP,
-- and several WebSocket clients in two rooms: Python `websockets` (spec/support/chat_agent.py)
-- and our own codec (spec/support/chat_client.lua). Then examples/origin.lua.
local cjson = require "cjson"
local harness = require "support.chat_harness"
local chat_client = require "support.chat_client"

local HISTORY = 5

local function ids_of(members)
  local out = {}
  for _, m in ipairs(members) do out[#out + 1] = m.nick end
  table.sort(out)
  return table.concat(out, ",")
end

local function types_of(messages)
  local out = {}
  for i, m in ipairs(messages) do out[i] = m.type end
  return table.concat(out, ",")
end

describe("examples/chat.lua", function()
  local server, python, lua
  -- Two client implementations side by side: Python `websockets` (an independent peer) and our
  -- own codec over LuaSocket. Each client id is served by one of them.
  local LUA_CLIENTS = { ken = true, late = true, fresh = true, bad = true, huge = true }
  local agent = setmetatable({}, { __index = function(_, method)
    return function(_, id, ...)
      local impl = LUA_CLIENTS[id] and lua or python
      return impl[method](impl, id, ...)
    end
  end })

  setup(function()
    server = harness.start_chat({ "--history", tostring(HISTORY) })
    python = harness.agent()
    lua = chat_client.pool()
  end)

  teardown(function()
    if lua then lua:quit() end
    if python then python:quit() end
    if server then server.stop() end
  end)

  -- Opens a client, reads its welcome, joins `room` as `nick`, and returns the messages of the
  -- join: welcome, members, history, joined.
  local function join(id, nick, room)
    assert.is_true(agent:open(id, server.ws_url).ok)
    local welcome = assert(agent:recv(id))
    assert.equal("welcome", welcome.type)
    agent:send(id, { type = "join", nick = nick, room = room })
    local members = assert(agent:expect(id, "members"))
    local history, history_json = assert(agent:recv(id))
    local joined = assert(agent:expect(id, "joined"))
    return { welcome = welcome, members = members, history = history, history_json = history_json,
             joined = joined }
  end

  describe("the page", function()
    it("is served at / with its content types", function()
      local status, head, body = harness.http(server.port, "GET", "/")
      assert.equal(200, status)
      assert.equal("text/html; charset=utf-8", head["content-type"])
      assert.truthy(body:find("<title>lua-ws chat</title>", 1, true))
      status, head = harness.http(server.port, "GET", "/chat.css")
      assert.equal(200, status)
      assert.equal("text/css; charset=utf-8", head["content-type"])
      status, head, body = harness.http(server.port, "GET", "/chat.js")
      assert.equal(200, status)
      assert.equal("text/javascript; charset=utf-8", head["content-type"])
      assert.truthy(body:find("new WebSocket", 1, true))
    end)

    it("serves no other file, whatever the path", function()
      for _, path in ipairs({ "/../chat.lua", "/chat/../chat.lua", "/%2e%2e/chat.lua", "/..%2fchat.lua",
                              "/chat.lua", "//etc/passwd", "/index.html/", "/nope" }) do
        local status, _, body = harness.http(server.port, "GET", path)
        assert.equal(404, status, path)
        assert.equal("not found\n", body, path)
      end
    end)

    it("answers other methods with 405", function()
      local status, head = harness.http(server.port, "POST", "/")
      assert.equal(405, status)
      assert.equal("GET, HEAD", head["allow"])
    end)

    it("answers /stats with JSON", function()
      local status, head, body = harness.http(server.port, "GET", "/stats")
      assert.equal(200, status)
      assert.equal("application/json", head["content-type"])
      local stats = cjson.decode(body)
      assert.is_number(stats.connections)
      assert.is_number(stats.dropped)
    end)
  end)

  describe("origin policy", function()
    it("refuses a browser page from another origin with 403", function()
      assert.equal(403, harness.upgrade_status(server.port, "/ws", { Origin = "http://localhost:9" }))
      assert.equal(403, harness.upgrade_status(server.port, "/ws", { Origin = "http://evil.example" }))
    end)

    it("admits the page's own origin and clients that send none", function()
      assert.equal(101, harness.upgrade_status(server.port, "/ws", { Origin = server.base }))
      assert.equal(101, harness.upgrade_status(server.port, "/ws"))
    end)

    it("admits the origins given with --origin", function()
      local other = harness.start_chat({ "--origin", "http://localhost:9" })
      finally(other.stop)
      assert.equal(101, harness.upgrade_status(other.port, "/ws", { Origin = "http://localhost:9" }))
      assert.equal(403, harness.upgrade_status(other.port, "/ws", { Origin = "http://localhost:10" }))
    end)
  end)

  describe("rooms", function()
    local ada, grace, ken

    setup(function()
      ada = join("ada", "ada", "alpha")
      grace = join("grace", "grace", "alpha")
      ken = join("ken", "ken", "beta")
      agent:drain("ada")
    end)

    it("gives each connection its own id", function()
      assert.is_number(ada.welcome.id)
      assert.are_not.equal(ada.welcome.id, grace.welcome.id)
      assert.are_not.equal(grace.welcome.id, ken.welcome.id)
      assert.same({ nick = 32, room = 32, text = 2000 }, ada.welcome.limits)
      assert.equal(HISTORY, ada.welcome.history)
    end)

    it("tells a joiner who is in the room and everyone that it joined", function()
      assert.equal("ada", ids_of(ada.members.members))
      assert.equal("ada,grace", ids_of(grace.members.members))
      assert.equal("ken", ids_of(ken.members.members))
      assert.equal("alpha", grace.members.room)
      assert.same({ type = "joined", room = "alpha", id = grace.welcome.id, nick = "grace",
                    ts = grace.joined.ts }, grace.joined)
      assert.is_number(grace.joined.ts)
    end)

    it("delivers a message to exactly the members of its room", function()
      agent:send("ada", { type = "message", text = "hello alpha" })
      for _, id in ipairs({ "ada", "grace" }) do
        local msg = assert(agent:expect(id, "message"))
        assert.equal("hello alpha", msg.text)
        assert.equal("ada", msg.nick)
        assert.equal(ada.welcome.id, msg.from)
        assert.equal("alpha", msg.room)
        assert.is_number(msg.seq)
        assert.is_number(msg.ts)
      end
      agent:send("ken", { type = "message", text = "hello beta" })
      local msg = assert(agent:expect("ken", "message"))
      assert.equal("hello beta", msg.text)
      assert.same({}, agent:drain("ada"))
      assert.same({}, agent:drain("grace"))
      assert.same({}, agent:drain("ken"))
    end)

    it("keeps unicode text intact", function()
      local text = "héllo — 你好 🎉\nsecond line"
      agent:send("grace", { type = "message", text = text })
      assert.equal(text, assert(agent:expect("ada", "message")).text)
      assert.equal(text, assert(agent:expect("grace", "message")).text)
    end)

    it("refuses a nickname already used in the room, but not in another", function()
      assert.is_true(agent:open("dup", server.ws_url).ok)
      assert.equal("welcome", agent:recv("dup").type)
      agent:send("dup", { type = "join", nick = "ada", room = "alpha" })
      assert.same({ type = "error", code = "nick_taken", message = 'nickname "ada" is already used in #alpha' },
        agent:recv("dup"))
      agent:send("dup", { type = "join", nick = "ada", room = "beta" })
      assert.equal("ada,ken", ids_of(assert(agent:expect("dup", "members")).members))
      assert.equal("joined", assert(agent:expect("ken", "joined")).type)
      agent:close("dup")
      local left = assert(agent:expect("ken", "left"))
      assert.equal("ada", left.nick)
      assert.equal("beta", left.room)
      assert.same({}, agent:drain("ada"))
    end)

    it("moves a member to another room on a second join", function()
      agent:send("grace", { type = "join", nick = "grace", room = "beta" })
      local left = assert(agent:expect("ada", "left"))
      assert.equal("grace", left.nick)
      assert.equal("grace,ken", ids_of(assert(agent:expect("grace", "members")).members))
      assert.equal("grace", assert(agent:expect("ken", "joined")).nick)
      agent:send("ada", { type = "message", text = "grace is gone" })
      assert.equal("grace is gone", assert(agent:expect("ada", "message")).text)
      agent:drain("grace")
      agent:send("grace", { type = "join", nick = "grace", room = "alpha" })
      assert.equal("grace", assert(agent:expect("ken", "left")).nick)
      assert.equal("grace", assert(agent:expect("ada", "joined")).nick)
      agent:drain("grace")
      agent:drain("ken")
    end)

    it("replays the room's last messages, oldest first, to who joins", function()
      for i = 1, HISTORY + 2 do agent:send("ken", { type = "message", text = "beta " .. i }) end
      for _ = 1, HISTORY + 2 do assert(agent:expect("ken", "message")) end
      local late = join("late", "linus", "beta")
      assert.equal("history", late.history.type)
      assert.equal("beta", late.history.room)
      local texts, seqs = {}, {}
      for i, m in ipairs(late.history.messages) do texts[i], seqs[i] = m.text, m.seq end
      assert.same({ "beta 3", "beta 4", "beta 5", "beta 6", "beta 7" }, texts)
      for i = 2, #seqs do assert.equal(seqs[i - 1] + 1, seqs[i]) end
      assert.equal("ken,linus", ids_of(late.members.members))
      agent:send("late", { type = "leave" })
      local own = assert(agent:expect("late", "left"))   -- the leaver hears it too
      assert.same({ type = "left", room = "beta", id = late.welcome.id, nick = "linus", ts = own.ts }, own)
      assert.same(own, assert(agent:expect("ken", "left")))
      -- Still connected, no longer a member.
      agent:send("late", { type = "message", text = "anyone?" })
      assert.equal("not_joined", agent:recv("late").code)
      agent:close("late")
      agent:drain("grace")
      agent:drain("ken")
    end)

    it("sends an empty history as an empty list", function()
      local fresh = join("fresh", "ada", "empty-room")
      assert.equal(0, #fresh.history.messages)
      assert.truthy(fresh.history_json:find('"messages":[]', 1, true), fresh.history_json)
      agent:close("fresh")
    end)

    it("answers bad input on that connection only and carries on", function()
      assert.is_true(agent:open("bad", server.ws_url).ok)
      assert.equal("welcome", agent:recv("bad").type)
      local cases = {
        { "not json", "bad_json", "message is not valid JSON" },
        { "[1,2,3]", "bad_message", 'a message must be a JSON object with a string "type"' },
        { '{"type":42}', "bad_message", 'a message must be a JSON object with a string "type"' },
        { '{"type":"dance"}', "unknown_type", 'unknown message type "dance"' },
        { '{"type":"message","text":"early"}', "not_joined", "join a room first" },
        { cjson.encode({ type = "join", room = "alpha", nick = string.rep("n", 33) }), "bad_nick",
          "nickname must be 1 to 32 characters with no control characters" },
        { cjson.encode({ type = "join", room = "alpha", nick = "   " }), "bad_nick",
          "nickname must be 1 to 32 characters with no control characters" },
        { cjson.encode({ type = "join", room = "alpha", nick = "bell\7" }), "bad_nick",
          "nickname must be 1 to 32 characters with no control characters" },
        { cjson.encode({ type = "join", room = "al pha", nick = "bad" }), "bad_room",
          "room must be 1 to 32 letters, digits, '-', '_' or '.'" },
        { cjson.encode({ type = "join", room = string.rep("r", 33), nick = "bad" }), "bad_room",
          "room must be 1 to 32 letters, digits, '-', '_' or '.'" },
        { cjson.encode({ type = "join", nick = "bad" }), "bad_room",
          "room must be 1 to 32 letters, digits, '-', '_' or '.'" },
      }
      for _, case in ipairs(cases) do
        agent:send("bad", case[1])
        assert.same({ type = "error", code = case[2], message = case[3] }, agent:recv("bad"), case[1])
      end
      assert.is_true(agent:send_binary("bad", "00ff").ok)
      assert.same({ type = "error", code = "bad_message", message = "messages are JSON text, not binary" },
        agent:recv("bad"))

      -- The same connection can still join and talk.
      agent:send("bad", { type = "join", room = "alpha", nick = "mallory" })
      assert(agent:expect("bad", "joined"))
      assert.equal("mallory", assert(agent:expect("ada", "joined")).nick)
      agent:send("bad", { type = "message", text = string.rep("x", 2001) })
      assert.same({ type = "error", code = "too_long", message = "message text is over 2000 characters" },
        agent:recv("bad"))
      agent:send("bad", { type = "message", text = "  \n " })
      assert.same({ type = "error", code = "bad_text", message = "message text must be a non-empty string" },
        agent:recv("bad"))
      agent:send("bad", { type = "message", text = { "not", "a", "string" } })
      assert.equal("bad_text", agent:recv("bad").code)
      local exactly = string.rep("é", 2000)   -- 2000 characters, 4000 bytes: allowed
      agent:send("bad", { type = "message", text = exactly })
      assert.equal(exactly, assert(agent:expect("ada", "message")).text)
      assert.equal(exactly, assert(agent:expect("grace", "message")).text)

      -- Nobody else saw any of the errors.
      agent:send("ada", { type = "message", text = "still fine" })
      assert.equal("still fine", assert(agent:expect("grace", "message")).text)
      for _, id in ipairs({ "ada", "grace", "ken" }) do
        for _, m in ipairs(agent:drain(id)) do assert.are_not.equal("error", m.type) end
      end
      agent:close("bad")
      assert.equal("mallory", assert(agent:expect("ada", "left")).nick)
      assert.is_true(server.alive())
    end)

    it("closes a frame over the size limit with 1009 and keeps the others", function()
      assert.is_true(agent:open("huge", server.ws_url).ok)
      assert.equal("welcome", agent:recv("huge").type)
      agent:send("huge", string.rep("x", 64 * 1024))
      local msg, err, code = agent:recv("huge", 5)
      assert.is_nil(msg)
      assert.equal("closed", err)
      assert.equal(1009, code)
      agent:send("ada", { type = "message", text = "after the big one" })
      assert.equal("after the big one", assert(agent:expect("grace", "message")).text)
      agent:drain("ada")
    end)

    it("does not let a member that stops reading slow the room down", function()
      -- slow joins alpha and never reads again; fast must still get every message promptly,
      -- and the server drops for slow (counted in conn.dropped, summed in /stats).
      assert.is_true(agent:open("slow", server.ws_url, { slow = true }).ok)
      agent:send("slow", { type = "join", room = "alpha", nick = "slowpoke" })
      assert.equal("slowpoke", assert(agent:expect("ada", "joined")).nick)
      agent:drain("ada")
      agent:drain("grace")

      -- Drops start once the server's socket buffer for slow (up to tcp_wmem's maximum, 4 MiB
      -- by default and more on tuned hosts) and then its own queue (send_high_water, 1 MiB) are
      -- full: flood in rounds of about 1 MB until the first drop, for up to 40 MB.
      local body = string.rep("z", 1900)
      local batch = 500
      local sent, dropped = 0, 0
      for round = 1, 40 do
        local texts = {}
        for i = 1, batch do
          texts[i] = cjson.encode({ type = "message", text = ("%d/%d %s"):format(round, i, body) })
        end
        assert.is_true(agent:flood("ada", texts).ok)
        sent = sent + batch
        local got = agent:wait_for("grace", body, batch, 20)
        assert.is_true(got.ok, ("round %d: grace got %d of %d (%s)"):format(round, got.count or -1, batch,
          tostring(got.error)))
        assert.is_true(got.seconds < 15, "grace was slowed down: " .. got.seconds .. " s")
        assert.is_true(agent:wait_for("ada", body, batch, 20).ok)
        local _, _, stats = harness.http(server.port, "GET", "/stats")
        dropped = cjson.decode(stats).dropped
        if dropped > 0 then break end
      end
      assert.is_true(dropped > 0, ("no message was dropped for the slow reader after %d"):format(sent))
      assert.is_true(dropped < sent)
      -- The room still works, and the slow member is still a member.
      agent:send("grace", { type = "message", text = "after the flood" })
      assert.equal("after the flood", assert(agent:expect("ada", "message")).text)
      agent:close("slow")
      assert.equal("slowpoke", assert(agent:expect("ada", "left")).nick)
      assert.is_true(server.alive())
    end)

    it("logs no handler error", function()
      assert.is_nil(server.stderr():find("traceback", 1, true))
    end)
  end)
end)

describe("examples/origin.lua", function()
  local server

  setup(function()
    server = harness.start_example("examples/origin.lua", { "--allow", "https://Partner.example.net",
      "--allow-pattern", "^https://[%w%-]+%.example%.com$", "--allow-pattern", "^http://localhost:%d+$" })
  end)

  teardown(function()
    if server then server.stop() end
  end)

  it("admits clients with no Origin, the allowlist and the patterns", function()
    assert.equal(101, harness.upgrade_status(server.port, "/"))
    assert.equal(101, harness.upgrade_status(server.port, "/", { Origin = "https://partner.example.net" }))
    assert.equal(101, harness.upgrade_status(server.port, "/", { Origin = "https://app.example.com" }))
    assert.equal(101, harness.upgrade_status(server.port, "/", { Origin = "http://localhost:3000" }))
    assert.equal(101, harness.upgrade_status(server.port, "/", { Origin = "http://127.0.0.1:" .. server.port }))
  end)

  it("refuses every other origin with 403 and logs each refusal", function()
    for _, origin in ipairs({ "https://example.com.evil.org", "http://app.example.com",
                              "https://a.b.example.com", "https://partner.example.net.evil", "null" }) do
      assert.equal(403, harness.upgrade_status(server.port, "/", { Origin = origin }), origin)
      assert.truthy(server.stderr():find(("origin refused: %q"):format(origin), 1, true), origin)
    end
  end)

  it("echoes for an admitted client", function()
    local pool = chat_client.pool()
    finally(function() pool:quit() end)
    assert.is_true(pool:open("c", "ws://127.0.0.1:" .. server.port .. "/", { origin = "https://app.example.com" }).ok)
    pool:send("c", "ping?")
    local _, raw = pool:recv("c")
    assert.equal("ping?", raw)
    local refused = pool:open("d", "ws://127.0.0.1:" .. server.port .. "/", { origin = "https://evil.example.org" })
    assert.is_false(refused.ok)
    assert.equal(403, refused.status)
  end)
end)
