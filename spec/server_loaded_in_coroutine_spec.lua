-- ws.core keeps the main thread of the state that loads it, to resume tasks from. Lua 5.4 names
-- it in the registry; LuaJIT does not, and a `require "ws"` run first inside a coroutine must
-- still give a loop whose tasks, servers and main-thread waits work.
local helper = require "helper"

local SCRIPT = [[
local ws
coroutine.wrap(function() ws = require "ws" end)()
local srv = assert(ws.server({ host = "127.0.0.1", port = 0 }, function(conn)
  for msg, kind in conn:messages() do conn:send(msg, kind) end
end))
local got = {}
ws.spawn(function()
  local c = assert(ws.connect("ws://127.0.0.1:" .. srv.port .. "/"))
  for i = 1, 3 do
    assert(c:send("m" .. i))
    got[i] = assert(c:receive())
  end
  c:close()
  srv:close()
end)
local t0 = ws.now()
ws.sleep(0.01)
local slept = ws.now() - t0 >= 0.009
ws.run()
print(table.concat(got, " "), slept, "done")
]]

describe("ws loaded first inside a coroutine", function()
  it("runs servers, clients and waits on the main thread", function()
    local dir = helper.tmpdir("lua-ws-co-require")
    local file = dir .. "/main.lua"
    helper.write_file(file, SCRIPT)
    local ok, code, out, err = helper.run({ helper.lua, file }, { timeout = 20, env = {
      LUA_CPATH = helper.cpath .. ";;", LUA_PATH = helper.lpath .. ";;",
      LUA_CPATH_5_4 = helper.cpath .. ";;", LUA_PATH_5_4 = helper.lpath .. ";;",
    } })
    helper.rmtree(dir)
    assert.is_true(ok, ("exit %s: %s"):format(tostring(code), tostring(err)))
    assert.are.equal("m1 m2 m3\ttrue\tdone\n", out)
  end)
end)
