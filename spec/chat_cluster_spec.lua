-- examples/chat.lua on several processes sharing one Redis (--redis), and on workers (--workers):
-- members, joined/left, one seq per room, the shared history, resuming after a dropped link with
-- `since`, the error a message gets while Redis is gone. Python `websockets` clients
-- (spec/support/chat_agent.py), a redis-server of the spec's own.
local cjson = require "cjson"
local helper = require "helper"
local harness = require "support.chat_harness"
local redis_mod = require "support.redis"

local HISTORY = 50
local unpack_ = table.unpack or unpack

local function nicks_of(members)
  local out = {}
  for _, m in ipairs(members) do out[#out + 1] = m.nick end
  table.sort(out)
  return table.concat(out, ",")
end

-- The chat messages among `list`, as { seq, from_nick, text }.
local function chat_messages(list)
  local out = {}
  for _, m in ipairs(list) do
    if m.type == "message" then out[#out + 1] = { seq = m.seq, nick = m.nick, text = m.text } end
  end
  return out
end

describe("the chat on two processes and one Redis", function()
  local redis, a, b, agent

  setup(function()
    redis = redis_mod.start()
    a = harness.start_chat({ "--history", tostring(HISTORY), "--redis", redis.url })
    b = harness.start_chat({ "--history", tostring(HISTORY), "--redis", redis.url })
    agent = harness.agent()
  end)

  teardown(function()
    if agent then agent:quit() end
    if a then a.stop() end
    if b then b.stop() end
    if redis then redis.stop() end
  end)

  -- Opens client `id` on `server`, joins `room` as `nick`; returns welcome, members, history.
  local function join(id, server, nick, room, since)
    assert.is_true(agent:open(id, server.ws_url).ok)
    local welcome = assert(agent:recv(id, 5))
    assert.equal("welcome", welcome.type)
    agent:send(id, { type = "join", nick = nick, room = room, since = since })
    local members = assert(agent:expect(id, "members", 5))
    local second = assert(agent:recv(id, 5))
    return welcome, members, second
  end

  it("shares members, joined and left across the processes", function()
    local wa = join("p-ada", a, "ada", "presence")
    -- a member is in the room's presence once everyone heard it joined: ada hears it too
    local own = assert(agent:expect("p-ada", "joined", 5))
    assert.equal("ada", own.nick)
    local wb, members = join("p-bob", b, "bob", "presence")
    assert.are_not.equal(wa.id, wb.id) -- ids are unique across processes
    assert.equal("ada,bob", nicks_of(members.members))
    local joined = assert(agent:expect("p-ada", "joined", 5))
    assert.equal("bob", joined.nick)
    assert.equal(wb.id, joined.id)
    agent:close("p-bob")
    local left = assert(agent:expect("p-ada", "left", 5))
    assert.equal("bob", left.nick)
    -- A nick is unique in the room across processes too.
    assert.is_true(agent:open("p-ada2", b.ws_url).ok)
    agent:recv("p-ada2", 5)
    agent:send("p-ada2", { type = "join", nick = "ada", room = "presence" })
    local err = assert(agent:expect("p-ada2", "error", 5))
    assert.equal("nick_taken", err.code)
    agent:close("p-ada")
    agent:close("p-ada2")
  end)

  it("delivers 400 interleaved messages from two processes in one order with gapless seq", function()
    local N = 200
    join("s1", a, "s1", "busy")
    join("s2", b, "s2", "busy")
    join("w1", a, "w1", "busy")
    join("w2", b, "w2", "busy")
    for _, id in ipairs({ "s1", "s2", "w1", "w2" }) do agent:drain(id, 0.2) end
    local t1, t2 = {}, {}
    for i = 1, N do
      t1[i] = cjson.encode({ type = "message", text = "s1 " .. i })
      t2[i] = cjson.encode({ type = "message", text = "s2 " .. i })
    end
    for k = 0, N - 1, 20 do -- the senders take turns in batches, each batch sent without waiting
      agent:flood("s1", { unpack_(t1, k + 1, k + 20) })
      agent:flood("s2", { unpack_(t2, k + 1, k + 20) })
    end
    local seen = {}
    for _, id in ipairs({ "w1", "w2" }) do
      assert.is_true(agent:wait_for(id, '"type":"message"', 2 * N, 20).ok, id .. " missed messages")
    end
    -- wait_for counted and dropped them: the order is checked on the senders' own copies.
    for _, id in ipairs({ "s1", "s2" }) do
      local got = {}
      for _ = 1, 40 do
        local more = chat_messages(agent:drain(id, 0.3))
        for _, m in ipairs(more) do got[#got + 1] = m end
        if #got >= 2 * N then break end
      end
      seen[id] = got
    end
    for _, id in ipairs({ "s1", "s2" }) do
      local got = seen[id]
      assert.equal(2 * N, #got, id)
      local next_of = { s1 = 1, s2 = 1 }
      for i, m in ipairs(got) do
        assert.equal(got[1].seq + i - 1, m.seq, id .. ": seq gap at " .. i)
        assert.equal(m.nick .. " " .. next_of[m.nick], m.text, id .. ": a sender's order")
        next_of[m.nick] = next_of[m.nick] + 1
      end
    end
    for i = 1, 2 * N do -- both processes delivered the one order
      assert.same(seen.s1[i], seen.s2[i])
    end
    local mixed = 0 -- the senders' messages did interleave
    for i = 2, 2 * N do if seen.s1[i].nick ~= seen.s1[i - 1].nick then mixed = mixed + 1 end end
    assert.is_true(mixed > 1, "the two senders never interleaved")

    -- A late joiner on either process gets the same history: the room's last messages.
    local _, _, ha = join("late-a", a, "late-a", "busy")
    local _, _, hb = join("late-b", b, "late-b", "busy")
    assert.equal("history", ha.type)
    assert.equal(HISTORY, #ha.messages)
    assert.same(ha.messages, hb.messages)
    assert.equal(seen.s1[2 * N].seq, ha.messages[HISTORY].seq)
    for _, id in ipairs({ "s1", "s2", "w1", "w2", "late-a", "late-b" }) do agent:close(id) end
  end)

  it("gives a client that comes back with since exactly what it missed, on the other process", function()
    join("r-talk", a, "talker", "resume")
    local _, _, history = join("r-away", a, "away", "resume")
    assert.equal("history", history.type)
    agent:send("r-talk", { type = "message", text = "before" })
    local before = assert(agent:expect("r-away", "message", 5))
    agent:close("r-away")
    for i = 1, 5 do agent:send("r-talk", { type = "message", text = "missed " .. i }) end
    assert.is_true(agent:wait_for("r-talk", "missed 5", 1, 5).ok)
    -- back, on the other process, with the seq of the last message it saw
    local _, members, first = join("r-back", b, "away", "resume", before.seq)
    assert.equal("away,talker", nicks_of(members.members))
    for i = 1, 5 do
      local m = i == 1 and first or assert(agent:recv("r-back", 5))
      assert.equal("message", m.type)
      assert.equal("missed " .. i, m.text)
      assert.equal(before.seq + i, m.seq)
    end
    local resumed = assert(agent:recv("r-back", 5))
    assert.equal("resumed", resumed.type)
    assert.equal(before.seq, resumed.since)
    assert.equal(5, resumed.missed)
    agent:send("r-talk", { type = "message", text = "live" })
    local live = assert(agent:expect("r-back", "message", 5))
    assert.equal("live", live.text)
    assert.equal(before.seq + 6, live.seq)
    -- since past what the room holds: the history, marked as a reset
    local _, _, reset = join("r-odd", b, "odd", "resume", before.seq + 1000)
    assert.equal("history", reset.type)
    assert.is_true(reset.reset)
    for _, id in ipairs({ "r-talk", "r-back", "r-odd" }) do agent:close(id) end
  end)

  it("answers a message with an error while Redis is unreachable, and works again after", function()
    join("u-ada", a, "ada", "outage")
    redis.stop()
    agent:send("u-ada", { type = "message", text = "into the void" })
    local err = assert(agent:expect("u-ada", "error", 10))
    assert.equal("unavailable", err.code)
    assert.equal("the chat cannot reach its Redis right now; nothing was sent, try again", err.message)
    -- Redis comes back empty (no persistence): the room's seq starts again under a new epoch, and
    -- the members of the room are closed with 1012 to join again (docs/scaling.md).
    redis.restart()
    local closed = false
    assert.is_true(helper.wait_until(function()
      local m, e, code = agent:recv("u-ada", 0.5)
      if not m and e == "closed" then closed = code end
      return closed ~= false
    end, 20), "the member of a room whose Redis lost its data was never told")
    assert.equal(1012, closed)
    -- The other process's bus may still be reconnecting (backoff): a join answered with
    -- "unavailable" is tried again.
    local n, history = 0, nil
    assert.is_true(helper.wait_until(function()
      n = n + 1
      local id = "u-again" .. n
      assert.is_true(agent:open(id, b.ws_url).ok)
      agent:recv(id, 5)
      agent:send(id, { type = "join", nick = "ada", room = "outage" })
      local first = agent:recv(id, 5)
      if first and first.type == "members" then
        history = agent:recv(id, 5)
        return true
      end
      agent:close(id)
      return false
    end, 20), "could not join again")
    assert.equal("history", history.type)
    local again = "u-again" .. n
    agent:send(again, { type = "message", text = "back" })
    local m = assert(agent:expect(again, "message", 5))
    assert.equal("back", m.text)
    assert.equal(1, m.seq)
    agent:close(again)
  end)
end)

describe("the chat's --workers", function()
  it("needs --redis, and says so", function()
    local ok, code, _, err = helper.run({ helper.lua, "examples/chat.lua", "--port", "0", "--workers", "2" },
      { timeout = 10 })
    assert.is_false(ok and code == 0)
    assert.equal(2, code)
    assert.truthy(err:find("--workers needs --redis", 1, true))
  end)

  it("spreads connections over the workers and delivers to members on both", function()
    local redis = redis_mod.start()
    local chat = harness.start_chat({ "--redis", redis.url, "--workers", "2" })
    local agent = harness.agent()
    finally(function()
      agent:quit()
      chat.stop()
      redis.stop()
    end)
    -- Connection ids name their worker's node: open until both workers served one.
    local nodes, first_of = {}, {}
    local n = 0
    -- The listening line comes from the master, before its workers open their listeners.
    assert.is_true(helper.wait_until(function()
      local ok = agent:open("probe", chat.ws_url).ok
      if ok then agent:close("probe") end
      return ok
    end, 10), "the workers never answered")
    for i = 1, 40 do
      local id = "k" .. i
      assert.is_true(agent:open(id, chat.ws_url).ok)
      local welcome = assert(agent:recv(id, 5))
      local node = welcome.id:match("^(.*)/%d+$")
      if not nodes[node] then
        nodes[node] = true
        n = n + 1
        first_of[n] = id
      else
        agent:close(id)
      end
      if n == 2 then break end
    end
    assert.equal(2, n, "every connection went to one worker")
    for i, id in ipairs(first_of) do
      agent:send(id, { type = "join", nick = "w" .. i, room = "workers" })
      assert(agent:expect(id, "members", 5))
    end
    agent:drain(first_of[1], 0.3)
    agent:send(first_of[2], { type = "message", text = "across workers" })
    local m = assert(agent:expect(first_of[1], "message", 5))
    assert.equal("across workers", m.text)
  end)
end)
