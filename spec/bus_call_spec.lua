-- The Redis bus inside one process: the `bus` option's checks, no socket before the loop
-- runs, the node id, core.bus_call's replies and errors (coroutine and callback styles),
-- core.bus_send, the envelope hook, the linger. A redis-server of the spec's own; every wait
-- is bounded.
local ws = require "ws"
local core = require "ws.core"
local bus = require "ws.bus"
local redis_mod = require "support.redis"
local loop = require "support.on_loop"
local helper = require "helper"

local wait_until = loop.wait_until
local in_task = loop.in_task

describe("the Redis bus in one process", function()
  local redis
  setup(function() redis = redis_mod.start() end)
  teardown(function() if redis then redis.stop() end end)

  it("checks its options", function()
    local function err_of(b)
      local ok, e = pcall(ws.server, { port = 0, bus = b }, function() end)
      assert.is_false(ok)
      return (tostring(e):gsub("^.-:%d+: ", ""))
    end
    assert.equal("ws.server: option 'bus' must be a table", err_of(5))
    assert.equal("ws.server: bus.url must start with redis:// or rediss://", err_of({ url = "http://x" }))
    assert.equal("ws.server: bus.tls must be a table", err_of({ url = "rediss://h", tls = 1 }))
    assert.equal("ws.server: bus.url: the database must be a number", err_of({ url = "redis://h/x" }))
    assert.equal("ws.server: bus.linger must be a non-negative number", err_of({ url = redis.url, linger = -1 }))
    assert.equal("ws.server: bus.node must be 1 to 64 of A-Z a-z 0-9 . _ : -", err_of({ url = redis.url, node = "a b" }))
    local u = bus.parse_url("redis://user:p%40ss@example.org:6380/3")
    assert.same({ host = "example.org", port = 6380, username = "user", password = "p@ss", db = 3 }, u)
    local srv = assert(ws.server({ port = 0 }, function() end))
    assert.is_nil(srv:bus())
    srv:close()
  end)

  it("opens no socket before the loop runs and names its node when it starts", function()
    local srv = assert(ws.server({ port = 0, bus = { url = redis.url } }, function() end))
    assert.equal("connecting", (srv:bus()))
    assert.is_nil(srv._bus:node())
    assert.is_nil(redis.cli("CLIENT", "LIST"):match("lua%-ws:"))
    assert.truthy(wait_until(function() return srv:bus() == "up" end))
    local node = srv._bus:node()
    assert.matches("^[%w._-]+%-%d+%-%x%x%x%x$", node)
    assert.truthy(redis.cli("CLIENT", "LIST"):find("name=lua-ws:" .. node .. ":sub", 1, true))
    assert.equal("1", redis.cli("PUBSUB", "NUMSUB", "ws:n:" .. node):match("\n(%d+)$"))
    srv:close()
    assert.equal("down", (srv:bus()))
    assert.truthy(wait_until(function() return not redis.cli("CLIENT", "LIST"):find(node, 1, true) end))
  end)

  it("returns replies as Lua values and errors as nil, message, code", function()
    local srv = assert(ws.server({ port = 0, bus = { url = redis.url, node = "calls" } }, function() end))
    local b = srv._bus.c
    assert.truthy(wait_until(function() return srv:bus() == "up" end))
    in_task(function()
      assert.equal("OK", core.bus_call(b, "SET", "k", "v"))
      assert.equal("v", core.bus_call(b, "GET", "k"))
      assert.is_false(core.bus_call(b, "GET", "missing"))
      assert.equal(2, core.bus_call(b, "RPUSH", "l", "a", 7))
      assert.same({ "a", "7" }, core.bus_call(b, "LRANGE", "l", 0, -1))
      assert.same({ "v", false }, core.bus_call(b, "MGET", "k", "missing"))
      assert.same({ 1, { "x", { err = "ERR boom" } } },
        core.bus_call(b, "EVAL", "return {1, {'x', redis.error_reply('ERR boom')}}", 0))
      local r, msg, code = core.bus_call(b, "INCR", "l")
      assert.is_nil(r)
      assert.matches("^WRONGTYPE", msg)
      assert.equal("redis", code)
      r, msg, code = core.bus_call(b, "NOSUCHCOMMAND")
      assert.is_nil(r) assert.matches("unknown command", msg) assert.equal("redis", code)
    end)
    local ok, e = pcall(core.bus_call, b, "GET", {})
    assert.is_false(ok)
    assert.matches("bad argument #3 to '[%w_]+' %(string or number expected%)", e)
    -- the main thread outside the loop waits by running it
    assert.equal("v", core.bus_call(b, "GET", "k"))
    -- bus_send: no waiting; an error reply is counted
    local f0 = select(2, srv:bus()).failed
    assert.is_true(core.bus_send(b, "INCR", "l"))
    assert.is_true(core.bus_send(b, "SET", "s", "1"))
    assert.truthy(wait_until(function() return select(2, srv:bus()).failed == f0 + 1 end))
    srv:close()
  end)

  it("answers a callback-style handler that waits for a reply", function()
    local srv
    srv = assert(ws.server({ port = 0, bus = { url = redis.url, node = "cb" } }, {
      message = function(conn, msg)
        local v, err = core.bus_call(srv._bus.c, "INCRBY", "counter", msg)
        conn:send(tostring(v or err) .. " " .. tostring(conn.id))
      end,
    }))
    assert.truthy(wait_until(function() return srv:bus() == "up" end))
    local c = assert(ws.connect(("ws://127.0.0.1:%d/"):format(srv.port)))
    c:send("5")
    assert.matches("^5 cb/%d+$", (c:receive(5)))
    c:send("2")
    assert.matches("^7 cb/%d+$", (c:receive(5)))
    c:close()
    srv:close()
  end)

  it("answers a coroutine-style handler that waits for a reply", function()
    local srv
    srv = assert(ws.server({ port = 0, bus = { url = redis.url, node = "co" } }, function(conn)
      for msg in conn:messages() do
        local v, err = core.bus_call(srv._bus.c, "INCRBY", "co-counter", msg)
        conn:send(tostring(v or err) .. " " .. tostring(conn.id))
      end
    end))
    assert.truthy(wait_until(function() return srv:bus() == "up" end))
    local c = assert(ws.connect(("ws://127.0.0.1:%d/"):format(srv.port)))
    c:send("3")
    assert.matches("^3 co/%d+$", (c:receive(5)))
    c:send("4")
    assert.matches("^7 co/%d+$", (c:receive(5)))
    c:close()
    srv:close()
  end)

  it("fails a call at once while Redis is down and with a timeout when Redis does not answer", function()
    local srv = assert(ws.server({ port = 0, bus = { url = redis.url, node = "fails", timeout = 0.5 } }, function() end))
    local b = srv._bus.c
    assert.truthy(wait_until(function() return srv:bus() == "up" end))
    redis.cli("CLIENT", "PAUSE", "1500", "ALL")
    local t0 = ws.now()
    local r, msg, code = in_task(function() return core.bus_call(b, "GET", "k") end)
    assert.is_nil(r) assert.equal("timeout", msg) assert.equal("timeout", code)
    assert.is_true(ws.now() - t0 < 1.2)
    assert.truthy(wait_until(function() return srv:bus() == "up" end, 5))
    redis.stop()
    assert.truthy(wait_until(function() return srv:bus() == "down" end, 3))
    r, msg, code = in_task(function() return core.bus_call(b, "GET", "k") end)
    assert.is_nil(r) assert.equal("bus unavailable", msg) assert.equal("unavailable", code)
    local ok
    ok, msg, code = core.bus_send(b, "GET", "k")
    assert.is_nil(ok) assert.equal("bus unavailable", msg) assert.equal("unavailable", code)
    redis.restart()
    assert.truthy(wait_until(function() return srv:bus() == "up" end, 5))
    srv:close()
  end)

  it("bounds the size of a reply and the number of commands waiting", function()
    local srv = assert(ws.server({ port = 0, bus = { url = redis.url, node = "bounds", max_reply = 1000, max_pending = 2 } },
      function() end))
    local b = srv._bus.c
    assert.truthy(wait_until(function() return srv:bus() == "up" end))
    local r, msg, code = in_task(function()
      assert.equal("OK", core.bus_call(b, "SET", "big", string.rep("x", 5000)))
      return core.bus_call(b, "GET", "big")
    end)
    assert.is_nil(r) assert.equal("reply from Redis too large", msg) assert.equal("toolarge", code)
    assert.truthy(wait_until(function() return srv:bus() == "up" end, 5))
    assert.is_true(core.bus_send(b, "PING"))
    assert.is_true(core.bus_send(b, "PING"))
    local ok
    ok, msg, code = core.bus_send(b, "PING")
    assert.is_nil(ok) assert.equal("too many commands waiting for Redis", msg) assert.equal("unavailable", code)
    assert.truthy(wait_until(function() return core.bus_send(b, "PING") end))
    srv:close()
  end)

  it("fans bus messages out without waiting for a slow subscriber (the topic's policy applies)", function()
    local a = assert(ws.server({ port = 0, bus = { url = redis.url, node = "pubA" } }, function() end))
    local conns = {}
    local b = assert(ws.server({ port = 0, slow_subscriber = "close", max_backlog = 256 * 1024,
      bus = { url = redis.url, node = "subB" } }, function(conn)
      conns[#conns + 1] = conn
      conn:subscribe("flood")
      for _ in conn:messages() do end
    end))
    assert.truthy(wait_until(function() return a:bus() == "up" and b:bus() == "up" end))
    local fast = assert(ws.connect(("ws://127.0.0.1:%d/"):format(b.port)))
    -- a client that completes the handshake and then never reads (small receive buffer)
    local slow = helper.spawn({ helper.python, "-c", ([[
import socket, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.connect(("127.0.0.1", %d))
s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
          b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
print("open", flush=True)
time.sleep(60)
]]):format(b.port) }, { timeout = 90 })
    assert.truthy(slow:wait_output("open", 10))
    assert.truthy(wait_until(function() return b:subscribers("flood") == 2 end))
    local got, n, chunk = 0, 1600, string.rep("f", 16 * 1024)
    ws.spawn(function() while got < n do if fast:receive(5) then got = got + 1 else break end end end)
    for i = 1, n do
      a:publish("flood", chunk)
      if i % 4 == 0 then ws.sleep(0.001) end
    end
    assert.truthy(wait_until(function() return got == n end, 10), "the fast subscriber missed messages: " .. got)
    assert.equal(n, select(2, b:bus()).received)
    -- the reader that stalled is closed by the policy (1008), with nothing else held up
    local closing = 0
    for _, c in ipairs(conns) do if c.state ~= "open" then closing = closing + 1 end end
    assert.equal(1, closing)
    slow:kill()
    fast:close()
    a:close()
    b:close()
  end)

  it("notices a Redis that stops answering (PING) and comes back when it answers again", function()
    local srv = assert(ws.server({ port = 0, bus = { url = redis.url, node = "pinged", ping = 0.3, timeout = 0.3 } },
      function() end))
    assert.truthy(wait_until(function() return srv:bus() == "up" end))
    os.execute("/bin/kill -STOP -- -" .. redis.pid)
    local t0 = ws.now()
    local ok = wait_until(function() return srv:bus() ~= "up" end, 3)
    local took = ws.now() - t0
    os.execute("/bin/kill -CONT -- -" .. redis.pid)
    assert.truthy(ok, "a stopped Redis went unnoticed")
    assert.is_true(took < 1.5)
    assert.truthy(wait_until(function() return srv:bus() == "up" end, 8))
    assert.is_true(select(2, srv:bus()).reconnects >= 1)
    srv:close()
  end)

  it("hands other envelope types to the hook and keeps a topic subscribed for the linger", function()
    local got
    bus.handlers.j = function(b, ...) got = { b.server ~= nil, ... } end
    local srv = assert(ws.server({ port = 0, bus = { url = redis.url, node = "hooked", linger = 1 } }, function(conn)
      conn:subscribe("lt")
      for _ in conn:messages() do end
    end))
    assert.truthy(wait_until(function() return srv:bus() == "up" end))
    local c = assert(ws.connect(("ws://127.0.0.1:%d/"):format(srv.port)))
    assert.truthy(wait_until(function() return redis.cli("PUBSUB", "NUMSUB", "ws:t:lt"):match("\n(%d+)$") == "1" end))
    redis.cli("PUBLISH", "ws:t:lt", "\31ws1|j|t|other|other/3|12|Ep0ch|1700000000000000\n{\"nick\":\"x\"}")
    assert.truthy(wait_until(function() return got end))
    assert.same({ true, "lt", "{\"nick\":\"x\"}", "text", "other", "other/3", 12, "Ep0ch", 1700000000000000 }, got)
    bus.handlers.j = nil
    c:close()
    assert.truthy(wait_until(function() return srv:subscribers("lt") == 0 end))
    local t0 = ws.now()
    ws.sleep(0.5)
    assert.equal("1", redis.cli("PUBSUB", "NUMSUB", "ws:t:lt"):match("\n(%d+)$")) -- lingering
    assert.truthy(wait_until(function() return redis.cli("PUBSUB", "NUMSUB", "ws:t:lt"):match("\n(%d+)$") == "0" end, 3))
    assert.is_true(ws.now() - t0 >= 0.9)
    srv:close()
  end)
end)
