-- Messages received before a protocol error were lost: a valid message followed in the same
-- TCP segment by a reserved-opcode frame, an unmasked frame or a continuation with nothing to
-- continue failed the connection before the handler saw (and echoed) the message, because the
-- runtime parses a whole read ahead of its handler and the core queued the failure's close at
-- once. Now the handler gets the messages and its answers go out before the close (as on the
-- OpenResty path, which parses one event at a time).
local helper = require "helper"
local client = require "support.ws_client"
local openresty = require "support.openresty_server"
local codec = require "ws.codec"
local ws = require "ws"

local KEY = "\55\250\33\61"

local function masked(kind, payload, opts)
  opts = opts or {}
  opts.mask = KEY
  return codec.frame(kind, payload, opts)
end

local BAD = {
  { "a reserved opcode", masked(3, ""), "unknown opcode" },
  { "an unmasked frame", codec.frame("text", "x"), "unmasked frame from client" },
  { "a continuation with nothing to continue", masked("continuation", "x"),
    "continuation frame without a message to continue" },
  { "invalid UTF-8", masked("text", "\255"), "invalid UTF-8 in text message", 1007 },
}

-- Sends the messages and the bad frame in one write; returns every event until the close.
local function run(port, messages, bad, path)
  local c = assert(client.connect(port, { timeout = 10, path = path }))
  local bytes = {}
  for i, m in ipairs(messages) do bytes[i] = masked(m[1], m[2]) end
  bytes[#bytes + 1] = bad
  assert(c.sock:send(table.concat(bytes)))
  local events = {}
  for _ = 1, #messages + 2 do
    local kind, a, b = c:message(10)
    if kind == "close" then
      events[#events + 1] = { kind, a, b }
      break
    end
    events[#events + 1] = { kind, a }
    if not kind then break end
  end
  c:abort()
  return events
end

local function expect_echoes(port, path)
  for _, case in ipairs(BAD) do
    local name, bad, reason, code = case[1], case[2], case[3], case[4] or 1002
    assert.same({ { "text", "hello" }, { "close", code, reason } }, run(port, { { "text", "hello" } }, bad, path), name)
    local big = ("0123456789abcdef"):rep(8192) -- 128 KiB: left in the core's buffers, not copied
    assert.same({ { "text", "one" }, { "binary", big }, { "text", "three" }, { "close", code, reason } },
      run(port, { { "text", "one" }, { "binary", big }, { "text", "three" } }, bad, path), name)
  end
end

describe("messages received before a protocol error", function()
  local proc, port
  setup(function()
    proc = helper.spawn_lua({ helper.root .. "/examples/echo.lua", "--port", tostring(helper.free_port()) },
      { timeout = 120 })
    port = tonumber((proc:wait_output("listening on ws://127%.0%.0%.1:(%d+)/", 10)))
    assert(port, "echo.lua did not start: " .. proc:errors())
  end)
  teardown(function() if proc then proc:kill() end end)

  it("are echoed by the server before it closes with the error", function()
    expect_echoes(port)
  end)

  it("are echoed by a callback-style server before it closes with the error", function()
    local srv = require("support.ws_server").start([[
      listen({}, {
        message = function(conn, msg, kind) conn:send(msg, kind) end,
        close = function(conn, code, reason) log("close", code, reason) end,
      })
    ]])
    local ok, err = pcall(expect_echoes, srv.port)
    srv:stop()
    assert(ok, err)
  end)

  it("do not hold the failure up when the handler does not take them (close_timeout)", function()
    local srv = require("support.ws_server").start([[
      listen({ close_timeout = 1 }, function(conn)
        ws.sleep(3)
        log("late", conn:receive(0))
        log("then", conn:receive(0))
      end)
    ]])
    local t0 = helper.now()
    local events = run(srv.port, { { "text", "hello" } }, masked(3, ""))
    assert.same({ { "close", 1002, "unknown opcode" } }, events)
    local took = helper.now() - t0
    assert.is_true(took > 0.8 and took < 2.5, "closed after " .. took .. " s")
    -- The message was received: a handler that asks later still gets it, then the error.
    assert.is_truthy(srv:wait_output("then nil unknown opcode protocol\n", 10))
    assert.matches("late hello text\n", srv:output())
    srv:stop()
  end)

  it("reach a client, whose answer goes out before its close", function()
    -- A raw server: the 101, then a text message and a masked frame (forbidden from a server)
    -- in one segment; it prints what the client sends back.
    local p = helper.spawn({ helper.python, "-c", [[
import socket, base64, hashlib, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 0)); s.listen(1)
print("listening", s.getsockname()[1], flush=True)
c, _ = s.accept(); c.settimeout(10)
data = b""
while b"\r\n\r\n" not in data:
    data += c.recv(4096)
key = [l.split(b":", 1)[1].strip() for l in data.split(b"\r\n") if l.lower().startswith(b"sec-websocket-key:")][0]
accept = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
          b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n" + b"\x81\x05hello" + b"\x81\x81abcd" + bytes([ord("x") ^ ord("a")]))
got = b""
try:
    while True:
        d = c.recv(4096)
        if not d: break
        got += d
except socket.timeout:
    pass
def frames(b):
    out = []
    while len(b) >= 6:
        op, n = b[0] & 15, b[1] & 127
        mask, payload = b[2:6], b[6:6 + n]
        out.append((op, bytes(x ^ mask[i % 4] for i, x in enumerate(payload))))
        b = b[6 + n:]
    return out
for op, payload in frames(got):
    print("frame", op, payload.hex(), flush=True)
print("end", flush=True)
]] }, { timeout = 30 })
    local sport = tonumber((p:wait_output("listening (%d+)", 10)))
    assert(sport, "raw server did not start: " .. p:errors())
    local conn = assert(ws.connect(("ws://127.0.0.1:%d/"):format(sport), { timeout = 10 }))
    local msg, kind = conn:receive(10)
    assert.same({ "hello", "text" }, { msg, kind })
    assert(conn:send("reply"))
    assert.same({ nil, "masked frame from server", "protocol" }, { conn:receive(10) })
    assert(p:wait_output("end", 15))
    local reply = ("reply"):gsub(".", function(ch) return ("%02x"):format(ch:byte()) end)
    local reason = ("\3\234masked frame from server"):gsub(".", function(ch) return ("%02x"):format(ch:byte()) end)
    assert.equal(("frame 1 %s\nframe 8 %s\nend\n"):format(reply, reason), p:output():gsub("^listening %d+\n", ""))
    p:kill()
  end)
end)

local describe_nginx = openresty.available and describe or pending
describe_nginx("messages received before a protocol error on the OpenResty path", function()
  local nginx
  setup(function() nginx = openresty.start() end)
  teardown(function() if nginx then nginx.stop() end end)

  it("are echoed before the close, as by the runtime", function()
    expect_echoes(nginx.port)
  end)
end)
