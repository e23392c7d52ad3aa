-- The callback style: ws.server(opts, { open =, message =, close = }) keeps no coroutine per
-- connection. Each event runs in a thread taken from a pool; a callback that waits (a send
-- under backpressure, ws.sleep) keeps its thread until it returns, and events that arrive
-- meanwhile wait for it, in order. A callback that raises closes only its own connection with
-- 1011; its close callback still runs.
local server = require "support.ws_server"
local client = require "support.ws_client"

describe("server callbacks", function()
  local srv
  setup(function()
    srv = server.start([[
      local opened = 0
      listen({ send_high_water = 64 * 1024, send_low_water = 16 * 1024 }, {
        open = function(conn)
          opened = opened + 1
          conn.n = 0
          log("open", conn.id, conn.request.path)
          if conn.request.path == "/refuse" then conn:close(4000, "not here") end
        end,
        message = function(conn, msg, kind)
          conn.n = conn.n + 1
          if msg == "raise" then error("callback failed on purpose") end
          if msg == "sleep" then
            ws.sleep(0.2) -- the thread stays with this connection meanwhile
            return conn:send("slept " .. conn.n)
          end
          if msg == "flood" then -- over send_high_water: the send waits for the reader
            local chunk = string.rep("x", 16 * 1024)
            for i = 1, 64 do assert(conn:send(chunk)) end
            return conn:send("flood done")
          end
          if msg == "count" then return conn:send("opened " .. opened) end
          conn:send(msg, kind)
        end,
        close = function(conn, code, reason)
          log("close", conn.id, code, reason, conn.n)
        end,
      })
    ]])
  end)
  teardown(function() srv:stop() end)

  it("calls open, message for every message in order, and close", function()
    local c = assert(client.connect(srv.port, { path = "/a" }))
    for i = 1, 200 do assert(c.codec:send("m" .. i, "text")) end
    assert(c.codec:send("\0\1\2", "binary"))
    c:flush()
    for i = 1, 200 do
      local kind, got = c:message()
      assert.are.same({ "text", "m" .. i }, { kind, got })
    end
    assert.are.same({ "binary", "\0\1\2" }, { c:message() })
    assert.are.equal(1000, c:close(1000, "done"))
    assert.truthy(srv:wait_output("close %d+ 1000 done 201"))
    assert.truthy(srv:output():match("open %d+ /a"))
  end)

  it("lets a callback wait (ws.sleep) while later messages wait their turn", function()
    local c = assert(client.connect(srv.port))
    assert(c.codec:send("sleep", "text"))
    assert(c.codec:send("after", "text"))
    c:flush()
    local other = assert(client.connect(srv.port)) -- other connections are served meanwhile
    assert(other:send("hello"))
    assert.are.same({ "text", "hello" }, { other:message(1) })
    assert.are.same({ "text", "slept 1" }, { c:message() })
    assert.are.same({ "text", "after" }, { c:message() })
    other:close()
    c:close()
  end)

  it("lets a send wait for a slow reader (backpressure) and delivers everything", function()
    local c = assert(client.connect(srv.port))
    assert(c:send("flood"))
    assert(c:send("next"))
    for i = 1, 64 do
      local kind, got = c:message(10)
      assert.are.equal("text", kind)
      assert.are.equal(16 * 1024, #got)
    end
    assert.are.same({ "text", "flood done" }, { c:message() })
    assert.are.same({ "text", "next" }, { c:message() })
    c:close()
  end)

  it("closes only the failing connection with 1011 and still calls close", function()
    local bystander = assert(client.connect(srv.port))
    local c = assert(client.connect(srv.port))
    assert(c:send("raise"))
    local kind, code = c:message()
    assert.are.same({ "close", 1011 }, { kind, code })
    assert.truthy(srv:wait_output("close %d+ 1011"))
    assert.truthy(srv:errors():match("callback failed on purpose"))
    assert.truthy(srv:errors():match("stack traceback"))
    assert(bystander:send("still here"))
    assert.are.same({ "text", "still here" }, { bystander:message() })
    bystander:close()
  end)

  it("runs the close callback when open closes the connection", function()
    local c = assert(client.connect(srv.port, { path = "/refuse" }))
    local kind, code, reason = c:message()
    assert.are.same({ "close", 4000, "not here" }, { kind, code, reason })
    c:close()
    assert.truthy(srv:wait_output("close %d+ 4000  0")) -- the peer echoed the code, without a reason
  end)

  it("runs the close callback when the peer goes away without a close frame", function()
    local c = assert(client.connect(srv.port, { path = "/gone" }))
    assert(c:send("x"))
    assert.are.same({ "text", "x" }, { c:message() })
    c:abort()
    assert.truthy(srv:wait_output("close %d+ 1006  1"))
  end)
end)

describe("server callbacks memory", function()
  it("keeps no coroutine per idle connection", function()
    local code = [[
      local style = "%s"
      local handler
      if style == "callbacks" then
        handler = { message = function(conn, msg) conn:send(msg) end }
      else
        handler = function(conn) for msg in conn:messages() do conn:send(msg) end end
      end
      local srv = listen({}, handler)
      ws.spawn(function()
        local base
        while true do
          ws.sleep(0.05)
          collectgarbage() collectgarbage()
          local kb = collectgarbage("count")
          base = base or kb
          log("conns", srv:connections(), "lua_bytes", math.floor((kb - base) * 1024))
        end
      end)
    ]]
    local per = {}
    for _, style in ipairs({ "callbacks", "coroutines" }) do
      local s = server.start(code:format(style))
      local conns = {}
      for i = 1, 200 do conns[i] = assert(client.connect(s.port)) end
      assert(conns[200]:send("ready"))
      assert.are.same({ "text", "ready" }, { conns[200]:message() })
      local bytes
      assert.truthy(s:wait_output("conns 200 lua_bytes"))
      require("helper").wait_until(function()
        local last
        for n in s:output():gmatch("conns 200 lua_bytes (%-?%d+)") do last = tonumber(n) end
        bytes = last
        return bytes ~= nil
      end, 5)
      per[style] = bytes / 200
      for _, c in ipairs(conns) do c:abort() end
      s:stop()
    end
    print(("\n  Lua heap per idle connection: callbacks %.0f bytes, coroutine per connection %.0f bytes")
      :format(per.callbacks, per.coroutines))
    -- The connection's userdata is about 850 bytes; a coroutine adds more than 1 KiB on Lua 5.4,
    -- about 500 bytes on LuaJIT (whose userdata also carries a table for its user values).
    assert.is_true(per.callbacks < 1100)
    assert.is_true(per.coroutines - per.callbacks > (jit and 400 or 800))
    -- ... and little more than that: the handler's coroutine is not the one whose stack the
    -- handshake grew (core.handoff), and conn:messages() makes no closure.
    assert.is_true(per.coroutines - per.callbacks < 1500)
  end)
end)
