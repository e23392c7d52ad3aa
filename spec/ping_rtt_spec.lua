-- Round trips: conn:ping(data, { wait = true }) waits for its pong and returns the round trip
-- in seconds, on the server (answered by Python's websockets and by our client) and on the
-- client (ws.connect); conn.latency keeps the last one, the automatic pings' included; an
-- unanswered ping times out without closing anything, and a close ends the wait.
local helper = require "helper"
local server = require "support.ws_server"
local client = require "support.ws_client"

local function python(code, port)
  return helper.run({ helper.python, "-c", code, tostring(port) }, { timeout = 30 })
end

describe("ping round trips", function()
  local srv
  setup(function()
    srv = server.start([[
      listen({ ping_interval = 0.3, ping_timeout = 5 }, function(conn)
        log("latency before", tostring(conn.latency))
        for msg in conn:messages() do
          if msg == "rtt" then
            local rtt, err, code = conn:ping(nil, { wait = true, timeout = 3 })
            conn:send(("rtt %s %s %s latency %s"):format(type(rtt), tostring(rtt), tostring(code), tostring(conn.latency)))
          elseif msg == "rtt data" then
            local rtt = conn:ping("my payload", { wait = true, timeout = 3 })
            conn:send("rtt " .. type(rtt))
          elseif msg == "unanswered" then
            local rtt, err, code = conn:ping("x", { wait = true, timeout = 0.3 })
            conn:send(("unanswered %s %s %s %s"):format(tostring(rtt), tostring(err), tostring(code), conn.state))
          elseif msg == "latency" then
            conn:send("latency " .. tostring(conn.latency))
          elseif msg == "wait for close" then
            ws.spawn(function()
              local rtt, err, code = conn:ping(nil, { wait = true })
              log("ended", tostring(rtt), tostring(err), tostring(code))
            end)
          end
        end
      end)
    ]])
  end)
  teardown(function() srv:stop() end)

  it("measures the round trip to Python's websockets client, which answers by itself", function()
    local ok, code, out, err = python([[
import asyncio, sys, websockets
async def main():
    async with websockets.connect("ws://127.0.0.1:%s/" % sys.argv[1], open_timeout=5) as ws:
        await ws.send("rtt")
        print(await asyncio.wait_for(ws.recv(), 5))
        await ws.send("rtt data")
        print(await asyncio.wait_for(ws.recv(), 5))
asyncio.run(main())
]], srv.port)
    assert.is_true(ok, ("exit %s\n%s\n%s"):format(tostring(code), out, err))
    local rtt, latency = out:match("rtt number (%S+) nil latency (%S+)")
    assert.is_truthy(rtt, out)
    assert.is_true(tonumber(rtt) >= 0 and tonumber(rtt) < 3, out)
    assert.is_true(math.abs(tonumber(latency) - tonumber(rtt)) < 1e-3, out) -- conn.latency is a float
    assert.matches("rtt number\n", out, 1, true)
    assert.truthy(srv:wait_output("latency before nil"))
  end)

  it("times out when no pong comes, and the connection stays open", function()
    local c = assert(client.connect(srv.port))
    assert(c:send("unanswered"))
    -- Our test client answers pings only when it reads: it reads after the server's timeout.
    helper.sleep(0.6)
    local kind, msg
    for _ = 1, 5 do
      kind, msg = c:receive(3)
      if kind == "text" then break end
    end
    assert.are.equal("unanswered nil timeout timeout open", msg)
    c:close()
  end)

  it("keeps the automatic ping's round trip in conn.latency", function()
    local c = assert(client.connect(srv.port))
    -- idle past ping_interval: the server pings, our client answers as it reads
    local kind, data = c:receive(2)
    assert.are.same({ "ping", "" }, { kind, data })
    assert(c:send("latency"))
    local _, msg = c:message()
    local latency = tonumber(msg:match("^latency (%S+)$"))
    assert.is_truthy(latency, msg)
    assert.is_true(latency >= 0 and latency < 2, msg)
    c:close()
  end)

  it("ends the wait with the close of the connection", function()
    local c = assert(client.connect(srv.port))
    assert(c:send("wait for close"))
    helper.sleep(0.1)
    c:abort()
    assert.truthy(srv:wait_output("ended nil [^\n]+ %S+\n"))
  end)

  it("measures a round trip from the client side (ws.connect)", function()
    local script = helper.tmpdir("lua-ws-rtt") .. "/c.lua"
    helper.write_file(script, ([[
      local ws = require "ws"
      ws.spawn(function()
        local c = assert(ws.connect("ws://127.0.0.1:%d/"))
        print("before", tostring(c.latency))
        local rtt = assert(c:ping(nil, { wait = true, timeout = 3 }))
        print("rtt", type(rtt), rtt >= 0 and rtt < 3, math.abs(c.latency - rtt) < 1e-3)
        print("plain", c:ping("x"))
        local ok, err = pcall(c.ping, c, nil, { wait = true, timeout = "1" })
        print("bad", ok, tostring(err))
        c:close()
      end)
      ws.run()
    ]]):format(srv.port))
    local ok, code, out, err = helper.run({ helper.lua, script }, {
      timeout = 30, env = { LUA_PATH = helper.lpath .. ";;", LUA_CPATH = helper.cpath .. ";;" } })
    assert.is_true(ok, ("exit %s\n%s\n%s"):format(tostring(code), out, err))
    assert.matches("before\tnil\n", out, 1, true)
    assert.matches("rtt\tnumber\ttrue\ttrue\n", out, 1, true)
    assert.matches("plain\ttrue\n", out, 1, true)
    assert.matches("bad\tfalse\tconn:ping: timeout must be a number (got string)\n", out, 1, true)
  end)
end)
