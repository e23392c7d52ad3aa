-- Failures stay where they happen: a handler that raises closes only its own connection
-- (1011, logged with a traceback); a peer that breaks the protocol or a limit gets the close
-- code the RFC asks for, and the handler learns why through receive's error code.
local server = require "support.ws_server"
local client = require "support.ws_client"
local socket = require "socket"

describe("server errors", function()
  local srv
  setup(function()
    srv = server.start([[
      local function fds()
        local p = io.popen("ls /proc/" .. io.open("/proc/self/stat"):read("*n") .. "/fd | wc -l")
        local n = tonumber(p:read("*a"))
        p:close()
        return n
      end
      listen({ max_message = 1000,
        http = function(req)
          -- twice: what the first collection finalizes (connections) is freed by the second
          collectgarbage()
          collectgarbage()
          return 200, {}, "fds=" .. fds() .. " lua=" .. math.floor(collectgarbage("count"))
        end,
        handshake = function(req)
          if req.query == "explode" then error("hook failed on purpose") end
          return true
        end,
      }, function(conn)
        for msg, kind in conn:messages() do
          if msg == "raise" then
            local function deep() error("handler failed on purpose") end
            deep()
          end
          conn:send(msg, kind)
        end
        local _, err, code = conn:receive()
        log("ended", conn.id, err, code, conn.close_code)
      end)
    ]])
  end)
  teardown(function() srv:stop() end)

  it("closes only the failing connection, with 1011, and logs the traceback", function()
    local a = assert(client.connect(srv.port))
    local b = assert(client.connect(srv.port))
    a:send("before")
    assert.are.equal("before", select(2, a:message()))
    b:send("raise")
    local kind, code = b:message()
    assert.are.equal("close", kind)
    assert.are.equal(1011, code)
    b:close()
    a:send("after")
    assert.are.equal("after", select(2, a:message()))
    a:close()
    local errs = srv:errors()
    assert.matches("handler failed on purpose", errs)
    assert.matches("stack traceback", errs)
    assert.matches("in %a* ?%a* ?'?deep'?", errs)
  end)

  it("fails a peer that sends an unmasked frame with 1002", function()
    local c = assert(client.connect(srv.port))
    c.sock:send("\129\002hi") -- FIN text, no mask
    local kind, code = c:message()
    assert.are.equal("close", kind)
    assert.are.equal(1002, code)
    assert.is_true(c:wait_eof(2))
    assert.truthy(srv:wait_output("ended %d+ [^\n]- protocol 1006"))
  end)

  it("fails a message over max_message with 1009 and code toolarge", function()
    local c = assert(client.connect(srv.port))
    c:send(string.rep("x", 1001))
    local kind, code = c:message()
    assert.are.equal("close", kind)
    assert.are.equal(1009, code)
    assert.truthy(srv:wait_output("ended %d+ [^\n]- toolarge 1006"))
  end)

  it("fails invalid UTF-8 in a text message with 1007", function()
    local c = assert(client.connect(srv.port))
    c:send("\255\254", "text")
    local kind, code = c:message()
    assert.are.equal("close", kind)
    assert.are.equal(1007, code)
  end)

  it("answers 500 when the handshake hook raises, and keeps serving", function()
    local ok, _, status = client.connect(srv.port, { path = "/?explode" })
    assert.is_nil(ok)
    assert.are.equal(500, status)
    assert.matches("hook failed on purpose", srv:errors())
    local c = assert(client.connect(srv.port))
    c:close()
  end)

  it("leaks no descriptor and no memory over many failing handlers", function()
    local function stats()
      local _, _, body = client.get(srv.port, "/stats")
      return tonumber(body:match("fds=(%d+)")), tonumber(body:match("lua=(%d+)"))
    end
    -- warm up, then measure
    for _ = 1, 20 do
      local c = assert(client.connect(srv.port))
      c:send("raise")
      c:message()
      c:close()
    end
    socket.sleep(0.2)
    local fds0, mem0 = stats()
    for _ = 1, 200 do
      local c = assert(client.connect(srv.port))
      c:send("raise")
      local kind, code = c:message()
      assert.are.same({ "close", 1011 }, { kind, code })
      c:close()
    end
    for _ = 1, 100 do
      local ok = client.connect(srv.port, { path = "/?explode" })
      assert.is_nil(ok)
    end
    -- the last sockets close once their peers' FINs arrive: wait for that, bounded
    local fds1, mem1
    for _ = 1, 30 do
      socket.sleep(0.1)
      fds1, mem1 = stats()
      if fds1 <= fds0 then break end
    end
    assert.is_true(fds1 <= fds0, ("descriptors: %d before, %d after"):format(fds0, fds1))
    assert.is_true(mem1 - mem0 < 64, ("Lua heap grew by %d KiB"):format(mem1 - mem0))
  end)

  it("survives a peer that vanishes mid-message", function()
    local c = assert(client.connect(srv.port))
    c.sock:send("\129\254\000\200\001\002\003\004abc") -- a 200-byte masked frame, cut short
    c:abort()
    local d = assert(client.connect(srv.port))
    d:send("still here")
    assert.are.equal("still here", select(2, d:message()))
    d:close()
  end)
end)
