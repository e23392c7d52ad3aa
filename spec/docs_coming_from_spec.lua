-- docs/coming-from.md: every lua-ws block of the page compiles, and its echo, broadcast and
-- "What's your name?" servers run as shown, answered by Python's websockets (the client the
-- page compares with).
local helper = require "helper"

local function lua_blocks()
  local doc = assert(helper.read_file(helper.root .. "/docs/coming-from.md"))
  local blocks = {}
  for block in doc:gmatch("```lua\n(.-)\n```") do blocks[#blocks + 1] = block end
  return blocks
end

-- The first block that contains `needle`, as a server script on `port` that stops by itself.
local function server_script(needle, port)
  for _, b in ipairs(lua_blocks()) do
    if b:find(needle, 1, true) then
      local code = b:gsub("port = %d+", "port = " .. port)
      if not code:find('require "ws"', 1, true) then code = 'local ws = require "ws"\n' .. code end
      if not code:find("ws.run()", 1, true) then code = code .. "\nws.run()\n" end
      return 'io.stdout:setvbuf("line")\nprint("starting")\n' .. code
    end
  end
  error("no lua block with " .. needle)
end

local function run_with_python(needle, python)
  local port = helper.free_port()
  local file = helper.tmpdir("lua-ws-doc") .. "/server.lua"
  helper.write_file(file, server_script(needle, port))
  local proc = helper.spawn_lua({ file }, { timeout = 60 })
  assert(proc:wait_output("starting", 10), proc:errors())
  local ok, code, out, err
  for _ = 1, 50 do -- until the server listens (bounded)
    ok, code, out, err = helper.run({ helper.python, "-c", python, tostring(port) }, { timeout = 30 })
    if ok or not (err or ""):find("Connect call failed", 1, true) then break end
    helper.sleep(0.1)
  end
  local errors = proc:errors()
  proc:kill()
  assert(ok, ("exit %s\n%s\n%s\nserver: %s"):format(tostring(code), out, err, errors))
  return out
end

describe("docs/coming-from.md", function()
  it("has lua-ws blocks that compile", function()
    local blocks = lua_blocks()
    assert.is_true(#blocks >= 5)
    for i, b in ipairs(blocks) do
      local fn, err = (loadstring or load)(b, "block " .. i)
      assert(fn, err)
    end
  end)

  it("echoes as shown", function()
    local out = run_with_python("conn:messages() do conn:send(msg, kind) end", [[
import asyncio, sys, websockets
async def main():
    async with websockets.connect("ws://127.0.0.1:%s/" % sys.argv[1], open_timeout=5) as ws:
        await ws.send("echo me")
        print(await asyncio.wait_for(ws.recv(), 5))
asyncio.run(main())
]])
    assert.are.equal("echo me\n", out)
  end)

  it("broadcasts to every other subscriber as shown", function()
    local out = run_with_python('conn:publish("everyone", msg, kind)', [[
import asyncio, sys, websockets
async def main():
    url = "ws://127.0.0.1:%s/" % sys.argv[1]
    async with websockets.connect(url) as a, websockets.connect(url) as b, websockets.connect(url) as c:
        await asyncio.sleep(0.2)  # all three subscribed
        await a.send("hello all")
        print(await asyncio.wait_for(b.recv(), 5), await asyncio.wait_for(c.recv(), 5))
        try:
            await asyncio.wait_for(a.recv(), 0.3)
            print("the sender got its own message")
        except asyncio.TimeoutError:
            print("not to the sender")
asyncio.run(main())
]])
    assert.are.equal("hello all hello all\nnot to the sender\n", out)
  end)

  it("asks for a name as shown", function()
    local out = run_with_python('conn:send("Hello " .. name .. "!")', [[
import asyncio, sys, websockets
async def main():
    async with websockets.connect("ws://127.0.0.1:%s/" % sys.argv[1]) as ws:
        await ws.send("Ada")
        print(await asyncio.wait_for(ws.recv(), 5))
asyncio.run(main())
]])
    assert.are.equal("Hello Ada!\n", out)
  end)
end)
