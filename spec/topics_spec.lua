-- Publish/subscribe: conn:subscribe, conn:unsubscribe, conn:topics, conn:publish, conn.dropped,
-- server:publish, server:subscribers and the slow-subscriber policies. Server and clients run
-- in this process on one loop over real sockets on 127.0.0.1; every wait is bounded.
local ws = require "ws"

-- Runs the loop until fn() is true, at most `timeout` seconds; returns whether it became true.
local function wait_until(fn, timeout)
  local deadline = ws.now() + (timeout or 5)
  while not fn() do
    if ws.now() > deadline then return false end
    ws.sleep(0.005)
  end
  return true
end

-- A server whose handler subscribes each connection to the topics the client names in its
-- URL (?a,b) and keeps the server-side connection objects by id, in arrival order.
local function topic_server(opts, on_message)
  local conns = {}
  opts = opts or {}
  opts.port = 0
  local srv
  srv = assert(ws.server(opts, function(conn)
    local q = conn.request.query
    if q then for t in q:gmatch("[^,]+") do assert(conn:subscribe(t)) end end
    conns[#conns + 1] = conn
    for msg, kind in conn:messages() do
      if on_message then on_message(srv, conn, msg, kind) end
    end
  end))
  srv.conns = conns
  return srv
end

local function connect(srv, topics, opts)
  local url = ("ws://127.0.0.1:%d/%s"):format(srv.port, topics and ("?" .. topics) or "")
  return assert(ws.connect(url, opts))
end

-- Waits until the server has accepted and subscribed n connections.
local function accepted(srv, n)
  assert.is_true(wait_until(function() return #srv.conns >= n end, 10), "connections not accepted")
end

local function stop(srv, clients)
  for _, c in ipairs(clients or {}) do if c.state ~= "closed" then c:close() end end
  srv:close({ timeout = 2 })
end

describe("topics", function()
  it("subscribes, unsubscribes, lists topics and counts subscribers", function()
    local srv = topic_server()
    local a, b = connect(srv), connect(srv)
    accepted(srv, 2)
    local ca, cb = srv.conns[1], srv.conns[2]
    assert.is_true(ca:subscribe("news"))
    assert.is_false(ca:subscribe("news")) -- already
    assert.is_true(ca:subscribe("sport"))
    assert.is_true(cb:subscribe("news"))
    local list = ca:topics()
    table.sort(list)
    assert.are.same({ "news", "sport" }, list)
    assert.are.same({ "news" }, cb:topics())
    assert.are.equal(2, srv:subscribers("news"))
    assert.are.equal(1, srv:subscribers("sport"))
    assert.are.equal(0, srv:subscribers("weather"))
    assert.is_true(ca:unsubscribe("news"))
    assert.is_false(ca:unsubscribe("news"))
    assert.is_false(ca:unsubscribe("weather"))
    assert.are.same({ "sport" }, ca:topics())
    assert.are.equal(1, srv:subscribers("news"))
    assert.is_true(cb:unsubscribe("news"))
    assert.are.equal(0, srv:subscribers("news"))
    assert.are.same({}, cb:topics())
    assert.is_true(cb:subscribe("news")) -- a topic that emptied comes back
    assert.are.equal(1, srv:subscribers("news"))
    assert.are.equal(0, ca.dropped)
    stop(srv, { a, b })
  end)

  it("checks its arguments", function()
    local srv = topic_server()
    local a = connect(srv)
    accepted(srv, 1)
    local c = srv.conns[1]
    assert.has_error(function() c:subscribe("") end, "bad argument #1 to 'subscribe' (empty topic name)")
    assert.has_error(function() c:subscribe(string.rep("x", 1025)) end,
      "bad argument #1 to 'subscribe' (topic name over 1024 bytes)")
    assert.is_true(c:subscribe(string.rep("x", 1024)))
    assert.has_error(function() c:subscribe({}) end)
    assert.has_error(function() srv:publish("t", "x", "json") end,
      "bad argument #3 to 'publish' (\"text\" or \"binary\" expected)")
    assert.has_error(function() srv:publish("t") end)
    assert.has_error(function() c.dropped = 3 end, "ws: conn.dropped is read-only")
    -- topics belong to a server: a client connection has none
    assert.has_error(function() a:subscribe("t") end, "ws: topics belong to a server's connections")
    assert.has_error(function() ws.server({ port = 0, slow_subscriber = "block" }, function() end) end,
      'ws.server: slow_subscriber must be "drop" or "close"')
    assert.has_error(function() ws.server({ port = 0, max_backlog = -1 }, function() end) end,
      "ws.server: max_backlog must be a number of bytes")
    stop(srv, { a })
  end)

  it("publishes to exactly the subscribers of a topic, text and binary", function()
    local srv = topic_server()
    local both, red, blue, none = connect(srv, "red,blue"), connect(srv, "red"), connect(srv, "blue"), connect(srv)
    accepted(srv, 4)
    assert.is_true(wait_until(function() return srv:subscribers("red") == 2 and srv:subscribers("blue") == 2 end))
    assert.are.equal(2, srv:publish("red", "to red"))
    assert.are.equal(2, srv:publish("blue", "to blue"))
    local bytes = {}
    for i = 0, 255 do bytes[#bytes + 1] = string.char(i) end
    bytes = table.concat(bytes):rep(300) -- 76,800 bytes: a 64-bit length header
    assert.are.equal(2, srv:publish("red", bytes, "binary"))
    assert.are.equal(0, srv:publish("green", "nobody"))
    local function got(c, n)
      local list = {}
      for i = 1, n do
        local msg, kind = c:receive(5)
        list[i] = msg and (kind .. ":" .. (kind == "binary" and #msg .. (msg == bytes and " ok" or " bad") or msg))
      end
      return list
    end
    assert.are.same({ "text:to red", "text:to blue", "binary:76800 ok" }, got(both, 3))
    assert.are.same({ "text:to red", "binary:76800 ok" }, got(red, 2))
    assert.are.same({ "text:to blue" }, got(blue, 1))
    local msg, err = none:receive(0.2)
    assert.is_nil(msg)
    assert.are.equal("timeout", err)
    msg, err = blue:receive(0.1)
    assert.is_nil(msg)
    assert.are.equal("timeout", err)
    stop(srv, { both, red, blue, none })
  end)

  it("conn:publish reaches every subscriber but the sender", function()
    local counts = {}
    local srv = topic_server({}, function(_, conn, msg, kind)
      counts[#counts + 1] = conn:publish("room", conn.id .. " says " .. msg, kind)
    end)
    local clients = {}
    for i = 1, 4 do clients[i] = connect(srv, "room") end
    accepted(srv, 4)
    assert.is_true(wait_until(function() return srv:subscribers("room") == 4 end))
    clients[2]:send("hi")
    assert.is_true(wait_until(function() return #counts == 1 end))
    assert.are.equal(3, counts[1])
    local sender_id
    for i, c in ipairs(clients) do
      if i ~= 2 then
        local msg = assert(c:receive(5))
        sender_id = sender_id or msg:match("^(%d+) says hi$")
        assert.are.equal(sender_id .. " says hi", msg)
      end
    end
    assert.is_nil((clients[2]:receive(0.2)))
    clients[4]:send(string.char(0, 1, 2), "binary")
    local msg, kind = clients[1]:receive(5)
    assert.are.equal("binary", kind)
    assert.matches("says \0\1\2$", msg)
    stop(srv, clients)
  end)

  it("keeps topics per server", function()
    local s1, s2 = topic_server(), topic_server()
    local c1, c2 = connect(s1, "t"), connect(s2, "t")
    accepted(s1, 1)
    accepted(s2, 1)
    assert.are.equal(1, s1:publish("t", "one"))
    assert.are.equal("one", (c1:receive(5)))
    assert.is_nil((c2:receive(0.2)))
    stop(s1, { c1 })
    stop(s2, { c2 })
  end)

  it("makes a connection leave all its topics when it closes", function()
    local srv = topic_server()
    local a, b, c = connect(srv, "x,y"), connect(srv, "x"), connect(srv, "y")
    accepted(srv, 3)
    assert.is_true(wait_until(function() return srv:subscribers("x") == 2 and srv:subscribers("y") == 2 end))
    a:close() -- closing handshake
    assert.is_true(wait_until(function() return srv:subscribers("x") == 1 end))
    assert.are.equal(1, srv:subscribers("y"))
    local ca = srv.conns[1]
    assert.are.same({}, ca:topics())
    assert.is_false(ca:unsubscribe("x"))
    local ok, err, code = ca:subscribe("x") -- a closed connection cannot join again
    assert.is_nil(ok)
    assert.are.equal("closed", code)
    assert.is_string(err)
    ok, err, code = ca:publish("x", "late")
    assert.is_nil(ok)
    assert.are.equal("closed", code)
    -- a close from the server side too
    srv.conns[3]:close()
    assert.is_true(wait_until(function() return srv:subscribers("y") == 0 end))
    assert.are.equal(1, srv:publish("x", "still here"))
    assert.are.equal("still here", (b:receive(5)))
    stop(srv, { b, c })
    assert.are.equal(0, srv:subscribers("x"))
  end)

  it("drops for a subscriber that does not read, counts it, and the others get everything fast", function()
    local SIZE, N, BACKLOG = 16 * 1024, 1200, 64 * 1024
    local srv = topic_server({ slow_subscriber = "drop", max_backlog = BACKLOG })
    -- max_queue = 1: the slow client stops reading its socket after one message
    local slow = connect(srv, "feed", { max_queue = 1 })
    accepted(srv, 1)
    local fast = {}
    for i = 1, 3 do fast[i] = connect(srv, "feed") end
    accepted(srv, 4)
    assert.is_true(wait_until(function() return srv:subscribers("feed") == 4 end))
    local slow_conn = srv.conns[1]
    local received, bad, finished = { 0, 0, 0 }, 0, 0
    local t0 = ws.now()
    local took = {}
    for i = 1, 3 do
      ws.spawn(function()
        for n = 1, N do
          local msg = fast[i]:receive(10)
          if not msg then break end
          if msg:sub(1, 8) ~= ("%08d"):format(n) or #msg ~= SIZE then bad = bad + 1 end
          received[i] = n
        end
        took[i] = ws.now() - t0
        finished = finished + 1
      end)
    end
    local total = 0
    for n = 1, N do
      total = total + srv:publish("feed", ("%08d"):format(n) .. string.rep("d", SIZE - 8))
      ws.sleep(0) -- one loop iteration: the queues are written, the readers read
    end
    assert.is_true(wait_until(function() return finished == 3 end, 20), "fast readers did not finish")
    assert.are.same({ N, N, N }, received)
    assert.are.equal(0, bad)
    for i = 1, 3 do
      assert.is_true(took[i] < 10, ("fast reader %d took %.2f s"):format(i, took[i]))
      assert.are.equal(0, srv.conns[i + 1].dropped)
    end
    local dropped = slow_conn.dropped
    print(("\n  slow subscriber: %d of %d messages dropped; fast readers done in %.2f s")
      :format(dropped, N, math.max(took[1], took[2], took[3])))
    assert.is_true(dropped > 0, "nothing dropped for the slow subscriber")
    assert.is_true(dropped < N)
    -- every publish reached the fast three, and the slow one unless it was dropped
    assert.are.equal(3 * N + (N - dropped), total)
    -- what was queued for the slow one stays bounded by its backlog (plus one message)
    assert.is_true(slow_conn:buffered() <= BACKLOG + SIZE + 14, "slow queue " .. slow_conn:buffered())
    assert.are.equal("open", slow_conn.state)
    -- once it reads again it gets, in order, exactly what was not dropped
    local last, count = 0, 0
    while count < N - dropped do
      local msg = slow:receive(5)
      if not msg then break end
      local n = tonumber(msg:sub(1, 8))
      assert.is_true(n > last)
      last, count = n, count + 1
    end
    assert.are.equal(N - dropped, count)
    stop(srv, { slow, fast[1], fast[2], fast[3] })
  end)

  it("closes a subscriber that falls behind with 1008 under the close policy", function()
    local SIZE, BACKLOG = 16 * 1024, 64 * 1024
    local srv = topic_server({ slow_subscriber = "close", max_backlog = BACKLOG })
    local slow = connect(srv, "feed", { max_queue = 1 })
    accepted(srv, 1)
    local fast = connect(srv, "feed")
    accepted(srv, 2)
    local slow_conn = srv.conns[1]
    local fast_got = 0
    ws.spawn(function()
      while fast:receive(10) do fast_got = fast_got + 1 end
    end)
    local n, reached = 0, {}
    while slow_conn.state == "open" and n < 5000 do
      n = n + 1
      reached[n] = srv:publish("feed", string.rep("c", SIZE))
      ws.sleep(0)
    end
    assert.are.equal("closing", slow_conn.state)
    assert.is_true(n < 5000, "never closed")
    assert.are.equal(1, srv:publish("feed", "after")) -- the closing one is no longer a receiver
    assert.are.equal(0, slow_conn.dropped)
    assert.is_true(wait_until(function() return fast_got == n + 1 end, 10), "fast got " .. fast_got)
    -- the slow client reads its queue, then the close frame
    local msgs = 0
    while true do
      local msg = slow:receive(5)
      if not msg then break end
      msgs = msgs + 1
    end
    assert.is_true(msgs < n)
    assert.are.equal(1008, slow.close_code)
    assert.are.equal("subscriber too slow", slow.close_reason)
    assert.is_true(wait_until(function() return srv:subscribers("feed") == 1 end))
    stop(srv, { fast })
  end)

  it("fans out to 1,000 subscribers", function()
    local N = 1000
    local srv = topic_server()
    local clients = {}
    for i = 1, N do clients[i] = connect(srv, "all") end
    accepted(srv, N)
    assert.is_true(wait_until(function() return srv:subscribers("all") == N end, 10))
    local ok = 0
    for round = 1, 3 do
      local t0 = ws.now()
      assert.are.equal(N, srv:publish("all", "round " .. round))
      local got = 0
      for i = 1, N do
        ws.spawn(function()
          if clients[i]:receive(10) == "round " .. round then got = got + 1 end
        end)
      end
      assert.is_true(wait_until(function() return got == N end, 20), ("round %d: %d of %d"):format(round, got, N))
      ok = ok + 1
      assert.is_true(ws.now() - t0 < 10)
    end
    assert.are.equal(3, ok)
    -- conn:publish from one of them reaches the other 999
    assert.are.equal(N - 1, srv.conns[1]:publish("all", "from one"))
    for i = 1, N do clients[i]:close() end
    assert.is_true(wait_until(function() return srv:subscribers("all") == 0 end, 20))
    srv:close({ timeout = 2 })
  end)
end)
