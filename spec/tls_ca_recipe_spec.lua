-- docs/client.md's test certificate authority recipe, run as the page shows it: its openssl
-- commands make a CA and a server certificate; examples/echo.lua serves wss:// with them; our
-- client and Python's websockets trust the CA and connect by name (localhost) and by address,
-- and a client that does not trust the CA is refused.
local helper = require "helper"

local function recipe()
  local doc = assert(helper.read_file(helper.root .. "/docs/client.md"))
  local block = doc:match("<!%-%- test%-ca%-recipe[^\n]*\n```sh\n(.-)\n```")
  return assert(block, "docs/client.md: no test-ca-recipe block")
end

describe("the test CA recipe of docs/client.md", function()
  local dir, echo, port
  setup(function()
    dir = helper.tmpdir("lua-ws-ca")
    helper.write_file(dir .. "/recipe.sh", recipe())
    local ok, code, out, err = helper.run({ "sh", "-ec", "cd " .. helper.shell_quote(dir) .. " && . ./recipe.sh" },
      { timeout = 60 })
    assert(ok, ("recipe failed (exit %s)\n%s\n%s"):format(tostring(code), out, err))
    assert.matches("server.crt: OK\n", out, 1, true)
    echo = helper.spawn_lua({ helper.root .. "/examples/echo.lua", "--port", tostring(helper.free_port()),
      "--tls-cert", dir .. "/server.crt", "--tls-key", dir .. "/server.key" }, { timeout = 120 })
    port = tonumber(echo:wait_output("listening on wss://127%.0%.0%.1:(%d+)/", 10))
    assert(port, "echo did not start: " .. echo:errors())
  end)
  teardown(function()
    if echo then echo:kill() end
    if dir then helper.rmtree(dir) end
  end)

  it("serves wss:// to our client, which trusts the CA", function()
    local script = dir .. "/client.lua"
    helper.write_file(script, ([[
      local ws = require "ws"
      for _, host in ipairs({ "localhost", "127.0.0.1" }) do
        local c = assert(ws.connect("wss://" .. host .. ":%d/", { tls = { ca = "%s/ca.crt" }, timeout = 10 }))
        c:send("over tls via " .. host)
        print(c:receive(5))
        c:close()
      end
      local c, err, code = ws.connect("wss://localhost:%d/", { timeout = 10 })
      print("untrusted", c, err, code)
    ]]):format(port, dir, port))
    local ok, code, out, err = helper.run({ helper.lua, script }, {
      timeout = 60, env = { LUA_PATH = helper.lpath .. ";;", LUA_CPATH = helper.cpath .. ";;" } })
    assert.is_true(ok, ("exit %s\n%s\n%s"):format(tostring(code), out, err))
    assert.matches("over tls via localhost\ttext\n", out, 1, true)
    assert.matches("over tls via 127.0.0.1\ttext\n", out, 1, true)
    assert.matches("untrusted\tnil\twss://localhost:%d+/: tls: certificate verify failed[^\n]*\ttls\n", out)
  end)

  it("serves wss:// to Python's websockets with an SSL context on the CA", function()
    local ok, code, out, err = helper.run({ helper.python, "-c", [[
import asyncio, ssl, sys, websockets
async def main():
    ctx = ssl.create_default_context(cafile=sys.argv[2] + "/ca.crt")
    async with websockets.connect("wss://localhost:%s/" % sys.argv[1], ssl=ctx, open_timeout=10) as ws:
        await ws.send("python over tls")
        print(await asyncio.wait_for(ws.recv(), 5))
asyncio.run(main())
]], tostring(port), dir }, { timeout = 60 })
    assert.is_true(ok, ("exit %s\n%s\n%s"):format(tostring(code), out, err))
    assert.matches("python over tls\n", out, 1, true)
  end)
end)
