-- Lua hosts with their own loop: ws.pollfd() and ws.step(). examples/select_loop.lua runs
-- LuaSocket's socket.select as its only loop, with its own TCP line service beside a lua-ws
-- echo server driven purely through pollfd/step; both must answer, and lua-ws's timers must
-- fire in that loop.
local helper = require "helper"
local client = require "support.ws_client"
local socket = require "socket"
local ws = require "ws"

describe("ws.pollfd and ws.step", function()
  it("give a descriptor and one bounded iteration", function()
    local fd = assert(ws.pollfd())
    assert.are.equal("integer", math.type and math.type(fd) or fd == math.floor(fd) and "integer")
    assert.is_true(fd >= 0)
    local alive, wait = ws.step()
    assert.are.equal("boolean", type(alive))
    assert.are.equal("number", type(wait))
    assert.is_true(wait >= 0 and wait <= 0.05)
    local ok, err = pcall(ws.step, "soon")
    assert.is_false(ok)
    assert.matches("ws.step: number expected", err)
    -- a bounded wait with nothing to do returns at once; with a task due it waits for it
    local t0 = socket.gettime()
    ws.step(0.3)
    local woke
    ws.spawn(function() ws.sleep(0.1) woke = true end)
    for _ = 1, 20 do
      if woke then break end
      ws.step(0.2)
    end
    assert.is_true(woke)
    local elapsed = socket.gettime() - t0
    assert.is_true(elapsed >= 0.09 and elapsed < 1, tostring(elapsed))
  end)

  it("drive an echo server from a socket.select loop, with timers", function()
    local ws_port, tcp_port = helper.free_port(), helper.free_port()
    local proc = helper.spawn_lua({ helper.root .. "/examples/select_loop.lua", tostring(ws_port), tostring(tcp_port) },
      { timeout = 60 })
    local ok, err = pcall(function()
      assert(proc:wait_output("lua%-ws on ws://127%.0%.0%.1:%d+/", 10), "did not start: " .. proc:errors())
      -- the host's own service
      local line = client.tcp(tcp_port)
      line:settimeout(5)
      assert(line:send("hello host\n"))
      assert.are.equal("HELLO HOST", line:receive("*l"))
      -- lua-ws, several clients at once, the line client still connected
      local a, b = assert(client.connect(ws_port)), assert(client.connect(ws_port))
      assert(a:send("one"))
      assert(b:send(("x"):rep(100000), "binary"))
      assert.same({ "text", "one" }, { a:message() })
      assert.same({ "binary", ("x"):rep(100000) }, { b:message() })
      -- ws.sleep(0.2) inside a handler: the timer fires without any socket traffic
      local t0 = client.now()
      assert(a:send("sleep"))
      local kind, text = a:message(3)
      assert.are.equal("text", kind)
      local slept = tonumber(text:match("^slept ([%d.]+)$"))
      assert.is_true(slept >= 0.19 and slept < 0.5, text)
      assert.is_true(client.now() - t0 < 0.6)
      assert(line:send("still here\n"))
      assert.are.equal("STILL HERE", line:receive("*l"))
      a:close()
      b:close()
      line:close()
    end)
    proc:kill()
    assert(ok, err)
    assert.are.equal("", (proc:errors():gsub("Terminated%s*", "")))
  end)

  it("run inside a cqueues controller", function()
    local dir = helper.tmpdir("lua-ws-cqueues")
    local script = dir .. "/cq.lua"
    helper.write_file(script, [[
      local cqueues = require "cqueues"
      local ws = require "ws"
      local server = assert(ws.server({ port = 0 }, function(conn)
        for msg, kind in conn:messages() do conn:send(msg, kind) end
      end))
      local fd, wait = assert(ws.pollfd()), 0
      local lua_ws = {
        pollfd = function() return fd end,
        events = function() return "r" end,
        timeout = function() return wait end,
      }
      local cq = cqueues.new()
      cq:wrap(function()
        while true do
          cqueues.poll(lua_ws)
          local _
          _, wait = ws.step()
        end
      end)
      local result
      ws.spawn(function()
        local c = assert(ws.connect("ws://127.0.0.1:" .. server.port .. "/"))
        assert(c:send("via cqueues"))
        local echoed = c:receive(5)
        c:close()
        local t0 = ws.now()
        ws.sleep(0.2)
        result = ("%s %.3f"):format(echoed, ws.now() - t0)
      end)
      cq:wrap(function() -- the host's own work, beside lua-ws, for at most 5 s
        local n = 0
        while not result and n < 100 do cqueues.sleep(0.05) n = n + 1 end
        print(result, n > 0)
        os.exit(result and 0 or 1)
      end)
      assert(cq:loop())
    ]])
    local ok, code, out, errs = helper.run({ helper.lua, script }, { timeout = 20, env = {
      LUA_CPATH = helper.cpath .. ";;", LUA_PATH = helper.lpath .. ";;",
      LUA_CPATH_5_4 = helper.cpath .. ";;", LUA_PATH_5_4 = helper.lpath .. ";;",
    } })
    helper.rmtree(dir)
    assert(ok, ("exit %s: %s%s"):format(tostring(code), out, errs))
    local echoed, slept, ticked = out:match("^(.-) ([%d.]+)\t(%a+)\n$")
    assert.are.equal("via cqueues", echoed, out)
    assert.is_true(tonumber(slept) >= 0.19 and tonumber(slept) < 0.5, out)
    assert.are.equal("true", ticked)
  end)
end)
