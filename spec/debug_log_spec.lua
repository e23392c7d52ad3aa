-- Debug logging: WS_DEBUG=1 logs handshakes (request line, subprotocol, extensions),
-- refusals with their reason and closes (who closed first, code, reason) on stderr; WS_DEBUG=2
-- every frame too; without it nothing is logged. ws.set_logger(fn, level) sends the lines to a
-- Lua function instead. Traffic from our test client and from Python's websockets.
local helper = require "helper"
local server = require "support.ws_server"
local client = require "support.ws_client"

local SERVER = [[
  listen({ path = "/ws", protocols = { "chat" }, origins = { "http://good.example" }, compression = "shared" },
    function(conn)
      for msg in conn:messages() do
        if msg == "bye" then conn:close(4000, "done here") else conn:send(msg) end
      end
    end)
]]

local function python_client(port)
  return helper.run({ helper.python, "-c", [[
import asyncio, sys, websockets
async def main():
    async with websockets.connect("ws://127.0.0.1:%s/ws" % sys.argv[1], subprotocols=["chat"], open_timeout=5) as ws:
        await ws.send("hello from python")
        await asyncio.wait_for(ws.recv(), 5)
        await ws.close(4001, "python leaves")
asyncio.run(main())
]], tostring(port) }, { timeout = 30 })
end

local function traffic(srv)
  local c = assert(client.connect(srv.port, { path = "/ws", protocols = { "chat" } }))
  assert(c:send("hi"))
  assert.are.same({ "text", "hi" }, { c:message() })
  assert(c:send("bye"))
  local kind, code, reason = c:message()
  assert.are.same({ "close", 4000, "done here" }, { kind, code, reason })
  c:close()
  assert.is_nil((client.connect(srv.port, { path = "/ws", origin = "http://evil.example" })))
  local ok, exit, out, err = python_client(srv.port)
  assert.is_true(ok, ("exit %s\n%s\n%s"):format(tostring(exit), out, err))
end

describe("debug logging", function()
  it("is silent by default", function()
    local srv = server.start(SERVER, { env = {} })
    traffic(srv)
    helper.sleep(0.2)
    local errs = srv:errors()
    srv:stop()
    assert.are.equal("", errs)
  end)

  it("logs handshakes, refusals and closes with WS_DEBUG=1", function()
    local srv = server.start(SERVER, { env = { WS_DEBUG = "1" } })
    traffic(srv)
    local errs
    assert(helper.wait_until(function()
      errs = srv:errors()
      return errs:find("python leaves", 1, true)
    end, 5))
    srv:stop()
    -- our client: the upgrade with its subprotocol, our close with 4000
    assert.matches('ws%[1%]: conn %d+ 127%.0%.0%.1:%d+: "GET /ws HTTP/1%.1" 101, subprotocol chat, extensions %(none%)\n', errs)
    assert.matches(': closing, code 4000, reason "done here"\n', errs, 1, true)
    assert.matches('closed by this side; the peer answered code 4000, reason ""\n', errs, 1, true)
    -- the refused origin, with the reason
    assert.matches('"GET /ws HTTP/1.1" 403, upgrade refused: Origin not allowed\n', errs, 1, true)
    -- Python offers permessage-deflate; its close comes first
    assert.matches('101, subprotocol chat, extensions permessage%-deflate[^\n]*\n', errs)
    assert.matches('closed by the peer: code 4001, reason "python leaves"\n', errs, 1, true)
    assert.is_nil(errs:find("frame in", 1, true))
  end)

  it("logs every frame with WS_DEBUG=2", function()
    local srv = server.start(SERVER, { env = { WS_DEBUG = "2" } })
    traffic(srv)
    local errs
    assert(helper.wait_until(function()
      errs = srv:errors()
      return errs:find("python leaves", 1, true)
    end, 5))
    srv:stop()
    assert.matches("ws%[2%]: conn %d+ [%d.]+:%d+: frame in text fin=1 rsv=0 len=2\n", errs)
    assert.matches("ws%[2%]: conn %d+ [%d.]+:%d+: frame out text fin=1 rsv=0 len=2\n", errs)
    assert.matches("frame out close fin=1 rsv=0 len=11\n", errs, 1, true) -- 4000 "done here"
    assert.matches("frame in text fin=1 rsv=4 len=", errs, 1, true)     -- Python compresses
  end)

  it("sends the lines to a Lua function with ws.set_logger", function()
    local script = helper.tmpdir("lua-ws-log") .. "/l.lua"
    helper.write_file(script, [[
      local ws = require "ws"
      local lines = {}
      print("level", ws.set_logger(function(line, level) lines[#lines + 1] = level .. " " .. line end, 2))
      local srv = assert(ws.server({ port = 0 }, function(conn) for m in conn:messages() do conn:send(m) end end))
      ws.spawn(function()
        local c = assert(ws.connect("ws://127.0.0.1:" .. srv.port .. "/"))
        c:send("abc")
        c:receive(5)
        c:close(1000, "ok")
        ws.sleep(0.2)
        print("off", ws.set_logger(nil, 0))
        local n = #lines
        local d = assert(ws.connect("ws://127.0.0.1:" .. srv.port .. "/"))
        d:close()
        ws.sleep(0.1)
        print("after off", #lines - n)
        for _, l in ipairs(lines) do print(l) end
        local ok, err = pcall(ws.set_logger, "x")
        print("bad", err)
        ok, err = pcall(ws.set_logger, nil, 3)
        print("bad", err)
        srv:close()
      end)
      ws.run()
    ]])
    local ok, code, out, err = helper.run({ helper.lua, script }, {
      timeout = 30, env = { LUA_PATH = helper.lpath .. ";;", LUA_CPATH = helper.cpath .. ";;" } })
    assert.is_true(ok, ("exit %s\n%s\n%s"):format(tostring(code), out, err))
    assert.are.equal("", err)
    assert.matches("level\t2\n", out, 1, true)
    assert.matches("off\t0\n", out, 1, true)
    assert.matches("after off\t0\n", out, 1, true)
    assert.matches('1 conn %d+ 127%.0%.0%.1:%d+: "GET / HTTP/1%.1" 101, subprotocol %(none%), extensions %(none%)\n', out)
    assert.matches("2 client conn %d+ 127%.0%.0%.1:%d+: frame out text fin=1 rsv=0 len=3\n", out)
    assert.matches("2 conn %d+ 127%.0%.0%.1:%d+: frame in text fin=1 rsv=0 len=3\n", out)
    assert.matches('1 client conn %d+ [%d.:]+: closing, code 1000, reason "ok"\n', out)
    assert.matches('1 client conn %d+ [%d.:]+: closed by this side; the peer answered code 1000, reason ""\n', out)
    assert.matches('1 conn %d+ [%d.:]+: closed by the peer: code 1000, reason "ok"\n', out)
    assert.matches("bad\tws.set_logger: function or nil expected\n", out, 1, true)
    assert.matches("bad\tws.set_logger: level 0, 1 or 2 expected\n", out, 1, true)
  end)
end)
