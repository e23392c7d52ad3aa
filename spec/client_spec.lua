-- The client: ws.connect for ws:// (wss:// is in tls_spec.lua), from the main thread, from
-- loop coroutines and from a plain script; its errors (refused, DNS, non-101, wrong Accept,
-- timeout); interop with Python websockets and Node ws servers; and ws.reconnecting across a
-- server restart.
local helper = require "helper"
local certs = require "support.certs"
local server = require "support.ws_server"
local ws = require "ws"

local ECHO = [[
  listen({ port = %s, path = %s, protocols = { "chat.v2", "chat.v1" }, tls = %s }, function(conn)
    local request = conn.request -- kept until the handler first waits
    for msg, kind in conn:messages() do
      if msg == "fields?" then
        local h = request.headers
        conn:send(table.concat({ tostring(conn.protocol), request.path, tostring(h.origin),
          tostring(h["x-test"]), tostring(h.host) }, " "))
      else
        conn:send(msg, kind)
      end
    end
  end)
]]

local function echo_server(opts)
  opts = opts or {}
  return server.start(ECHO:format(opts.port or "0", opts.path and ("%q"):format(opts.path) or "nil", opts.tls or "nil"))
end

-- A raw TCP server in Python that answers each connection with `reply` (nil: never answers).
local function raw_server(reply)
  local p = helper.spawn({ helper.python, "-c", ([[
import socket, sys, base64, hashlib, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 0)); s.listen(8)
print("listening", s.getsockname()[1], flush=True)
reply = %s
reply = bytes.fromhex(reply) if reply is not None else None
conns = []
while True:
    c, _ = s.accept(); conns.append(c)
    data = b""
    while b"\r\n\r\n" not in data:
        data += c.recv(4096)
    if reply is not None:
        c.sendall(reply)
]]):format(reply and ('"' .. reply:gsub(".", function(ch) return ("%02x"):format(ch:byte()) end) .. '"') or "None") }, { timeout = 30 })
  local port = tonumber((p:wait_output("listening (%d+)", 10)))
  assert(port, "raw server did not start: " .. p:errors())
  return p, port
end

describe("client", function()
  local srv
  setup(function() srv = echo_server({ path = "/chat" }) end)
  teardown(function() srv:stop() end)

  local function url(path) return ("ws://127.0.0.1:%d%s"):format(srv.port, path or "/chat") end

  it("connects from the main thread, negotiates a subprotocol and sends headers and origin", function()
    local c = assert(ws.connect(url("/chat?room=1"), {
      protocols = { "chat.v1", "other" }, origin = "http://127.0.0.1:" .. srv.port, headers = { ["X-Test"] = "yes" },
    }))
    assert.are.equal("open", c.state)
    assert.are.equal("chat.v1", c.protocol)
    assert.are.equal(101, c.response.status)
    assert.are.equal("websocket", c.response.headers.upgrade:lower())
    assert.are.equal("number", type(c.id))
    assert(c:send("fields?"))
    assert.are.equal(("chat.v1 /chat http://127.0.0.1:%d yes 127.0.0.1:%d"):format(srv.port, srv.port), (c:receive(5)))
    for _, n in ipairs({ 0, 125, 126, 65536, 500000 }) do
      assert(c:send(("m"):rep(n), "binary"))
      local m, kind = c:receive(5)
      assert.are.same({ n, "binary" }, { #m, kind })
    end
    assert.are.same({ nil, "timeout", "timeout" }, { c:receive(0.05) })
    assert.is_true(c:ping("p"))
    assert.is_true(c:close(1000, "bye"))
    assert.is_true(c:close()) -- twice is fine
    assert.are.equal("closed", c.state)
    assert.are.equal(1000, c.close_code)
  end)

  it("runs many clients in loop coroutines at once", function()
    local done, bad = 0, {}
    for i = 1, 20 do
      ws.spawn(function()
        local c, err = ws.connect(url(), { timeout = 5 })
        if not c then bad[#bad + 1] = err return end
        for k = 1, 10 do
          local m = ("client %d message %d"):format(i, k)
          c:send(m)
          local got = c:receive(5)
          if got ~= m then bad[#bad + 1] = tostring(got) end
        end
        c:close()
        done = done + 1
      end)
    end
    ws.run()
    assert.are.same({}, bad)
    assert.are.equal(20, done)
  end)

  it("works from a plain script that never starts the loop itself", function()
    local dir = helper.tmpdir()
    helper.write_file(dir .. "/plain.lua", ([[
local ws = require "ws"
local c = assert(ws.connect(%q))
assert(c:send("plain script"))
print((c:receive(5)))
c:close()
print(c.state)
]]):format(url()))
    local p = helper.spawn_lua({ dir .. "/plain.lua" }, { timeout = 20 })
    assert.are.equal(0, p:wait(15))
    assert.are.equal("plain script\nclosed\n", p:output())
    p:kill()
    helper.rmtree(dir)
  end)

  it("reports a non-101 answer with its status", function()
    local c, err, code, status = ws.connect(url("/elsewhere"))
    assert.is_nil(c)
    assert.are.equal(url("/elsewhere") .. ": server answered 404 Not Found instead of 101", err)
    assert.are.equal("handshake", code)
    assert.are.equal(404, status)
  end)

  it("reports a refused connection", function()
    local port = helper.free_port()
    local c, err, code = ws.connect(("ws://127.0.0.1:%d/"):format(port))
    assert.is_nil(c)
    assert.are.equal(("cannot connect to ws://127.0.0.1:%d/: Connection refused"):format(port), err)
    assert.are.equal("ECONNREFUSED", code)
  end)

  it("reports a DNS failure", function()
    -- A 64-byte label cannot go into a DNS query: the lookup fails without any network traffic.
    local name = ("a"):rep(64) .. ".invalid"
    local c, err, code = ws.connect("ws://" .. name .. "/")
    assert.is_nil(c)
    assert.are.equal("dns", code)
    assert.truthy(err:find("^cannot resolve " .. name .. ": "), err)
  end)

  it("resolves names from the hosts file without blocking the loop", function()
    local name = "localhost"
    local ticks = 0
    ws.spawn(function() for _ = 1, 3 do ticks = ticks + 1 ws.sleep(0) end end)
    local c = assert(ws.connect(("ws://%s:%d/chat"):format(name, srv.port)))
    assert(c:send("by name"))
    assert.are.equal("by name", (c:receive(5)))
    c:close()
    assert.is_true(ticks >= 1)
  end)

  it("raises for a malformed URL", function()
    assert.has_error(function() ws.connect("http://127.0.0.1/") end, "ws.connect: unsupported URL scheme http")
    assert.has_error(function() ws.connect("ws://127.0.0.1:99999/") end, "ws.connect: invalid port in URL ws://127.0.0.1:99999/")
  end)

  it("names the option the request cannot carry", function()
    local url = "ws://127.0.0.1:1/"
    assert.has_error(function() ws.connect(url, { origin = "a\nb" }) end, "ws.connect: invalid origin")
    assert.has_error(function() ws.connect(url, { protocols = { "a b" } }) end, "ws.connect: invalid protocol name 'a b'")
    assert.has_error(function() ws.connect(url, { protocols = { "a", "a" } }) end, "ws.connect: protocol 'a' offered twice")
  end)
end)

describe("client errors from other servers", function()
  it("refuses a wrong Sec-WebSocket-Accept", function()
    local p, port = raw_server("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" ..
      "Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n")
    local c, err, code = ws.connect(("ws://127.0.0.1:%d/"):format(port))
    assert.is_nil(c)
    assert.are.equal(("ws://127.0.0.1:%d/: bad handshake response: wrong Sec-WebSocket-Accept"):format(port), err)
    assert.are.equal("handshake", code)
    p:kill()
  end)

  it("gives up at the timeout when the server never answers", function()
    local p, port = raw_server(nil)
    local t0 = ws.now()
    local c, err, code = ws.connect(("ws://127.0.0.1:%d/"):format(port), { timeout = 0.5 })
    local took = ws.now() - t0
    assert.is_nil(c)
    assert.are.equal(("ws://127.0.0.1:%d/: handshake timed out"):format(port), err)
    assert.are.equal("timeout", code)
    assert.truthy(took >= 0.45 and took < 3, took)
    p:kill()
  end)
end)

describe("client interop", function()
  it("talks to a Python websockets server", function()
    local p = helper.spawn({ helper.python, "-c", [[
import asyncio, websockets
async def echo(w, path=None):
    async for m in w:
        await w.send(m)
async def main():
    async with websockets.serve(echo, "127.0.0.1", 0, subprotocols=["chat"]) as s:
        print("listening", s.sockets[0].getsockname()[1], flush=True)
        await asyncio.sleep(25)
asyncio.run(main())
]] }, { timeout = 30 })
    local port = tonumber((p:wait_output("listening (%d+)", 10)))
    local c = assert(ws.connect(("ws://127.0.0.1:%d/"):format(port), { protocols = "chat" }))
    assert.are.equal("chat", c.protocol)
    assert(c:send("héllo"))
    assert.are.same({ "héllo", "text" }, { c:receive(5) })
    assert(c:send(("\0\255"):rep(40000), "binary"))
    assert.are.same({ ("\0\255"):rep(40000), "binary" }, { c:receive(5) })
    c:close()
    assert.are.equal(1000, c.close_code)
    p:kill()
  end)

  it("talks to a Node ws server", function()
    local p = helper.spawn({ helper.node, "-e", [[
const { WebSocketServer } = require("ws");
const s = new WebSocketServer({ host: "127.0.0.1", port: 0 });
s.on("connection", (w) => w.on("message", (m, bin) => w.send(m, { binary: bin })));
s.on("listening", () => console.log("listening", s.address().port));
setTimeout(() => process.exit(0), 25000);
]] }, { timeout = 30, env = { NODE_PATH = helper.node_path } })
    local port = tonumber((p:wait_output("listening (%d+)", 10)))
    local c = assert(ws.connect(("ws://127.0.0.1:%d/"):format(port)))
    for _, n in ipairs({ 1, 126, 70000 }) do
      assert(c:send(("q"):rep(n)))
      assert.are.equal(n, #(c:receive(5)))
    end
    c:close()
    p:kill()
  end)
end)

describe("reconnecting client", function()
  it("survives a server restart and resubscribes", function()
    local C = certs.make()
    local tls_opts = ("{ cert = %q, key = %q }"):format(C.cert, C.key)
    local port = helper.free_port()
    local srv = echo_server({ port = port, tls = tls_opts })
    local opens, closes = 0, {}
    local rc = ws.reconnecting(("wss://127.0.0.1:%d/"):format(port), {
      tls = { ca = C.ca }, timeout = 2,
      reconnect = { initial = 0.05, max = 0.4, jitter = true, attempts = 100 },
      on_open = function(conn) opens = opens + 1 conn:send("subscribe " .. opens) end,
      on_close = function(_, msg, code) closes[#closes + 1] = code end,
    })
    -- Even when an assertion fails: a client left retrying would keep the next ws.run() of
    -- this process (other spec files) busy for its 100 attempts.
    finally(function() rc:close() srv:stop() end)
    assert.are.equal("connecting", rc.state)
    assert.are.equal("subscribe 1", (rc:receive(5)))
    assert.are.equal("open", rc.state)
    assert(rc:send("before"))
    assert.are.equal("before", (rc:receive(5)))
    srv:stop()
    assert.are.same({ nil, "timeout", "timeout" }, { rc:receive(0.6) }) -- attempts fail meanwhile
    assert.are.equal(1, #closes)
    assert.are.equal("connecting", rc.state)
    srv = echo_server({ port = port, tls = tls_opts })
    assert.are.equal("subscribe 2", (rc:receive(10)))
    assert(rc:send("after"))
    assert.are.equal("after", (rc:receive(5)))
    assert.are.equal(2, opens)
    assert.are.equal(1, #closes)
    assert.is_true(rc.failures >= 1)
    rc:close()
    assert.are.equal("closed", rc.state)
    srv:stop()
  end)

  it("is what ws.connect returns with a reconnect option", function()
    local srv = echo_server({})
    local rc = assert(ws.connect(("ws://127.0.0.1:%d/"):format(srv.port), { reconnect = { initial = 0.1 } }))
    finally(function() rc:close() srv:stop() end)
    assert.are.equal("open", rc.state)
    assert(rc:send("x"))
    assert.are.equal("x", (rc:receive(5)))
    rc:close()
    srv:stop()
  end)

  it("gives up after its attempts with the last error", function()
    local port = helper.free_port()
    local rc = ws.reconnecting(("ws://127.0.0.1:%d/"):format(port), { reconnect = { initial = 0.01, attempts = 3 } })
    local m, err, code = rc:receive(1)
    assert.is_nil(m)
    assert.are.equal("ECONNREFUSED", code)
    assert.truthy(err:find("Connection refused", 1, true))
    assert.are.equal(3, rc.failures)
  end)
end)
