-- Echo through the server runtime: messages of every kind and size come back intact, control
-- frames are answered, and the connection's fields describe it.
local server = require "support.ws_server"
local client = require "support.ws_client"

describe("server echo", function()
  local srv
  setup(function()
    srv = server.start([[
      listen({ protocols = { "chat.v2", "chat.v1" }, max_message = 4 * 1024 * 1024 }, function(conn)
        local r = conn.request -- kept until the handler first waits
        for msg, kind in conn:messages() do
          if msg == "fields?" then
            conn:send(table.concat({ type(conn.id), conn.state, tostring(conn.protocol), r.method, r.path,
              tostring(r.query), r.headers["x-test"] or "-", conn.remote_addr, type(conn.remote_port) }, " "))
          else
            conn:send(msg, kind)
          end
        end
        log("closed", conn.close_code, conn.close_reason)
      end)
    ]])
  end)
  teardown(function() srv:stop() end)

  it("echoes text and binary messages of many sizes", function()
    local c = assert(client.connect(srv.port))
    for _, n in ipairs({ 0, 1, 125, 126, 127, 65535, 65536, 1000000 }) do
      local text = string.rep("a", n)
      assert(c:send(text, "text"))
      local kind, got = c:message()
      assert.are.equal("text", kind)
      assert.are.equal(n, #got)
      assert.are.equal(text, got)
    end
    local bin = {}
    for i = 0, 255 do bin[#bin + 1] = string.char(i) end
    bin = table.concat(bin):rep(10)
    assert(c:send(bin, "binary"))
    local kind, got = c:message()
    assert.are.equal("binary", kind)
    assert.are.equal(bin, got)
    assert.are.equal(1000, c:close(1000, "bye"))
    assert.truthy(srv:wait_output("closed 1000 bye"))
  end)

  it("reassembles fragmented messages and answers pings in between", function()
    local c = assert(client.connect(srv.port))
    assert(c.codec:send("Hel", "text", { fin = false }))
    assert(c.codec:ping("p1"))
    assert(c.codec:send("lo", "continuation"))
    c:flush()
    local kind, a = c:receive()
    assert.are.same({ "pong", "p1" }, { kind, a })
    kind, a = c:receive()
    assert.are.same({ "text", "Hello" }, { kind, a })
    c:close()
  end)

  it("answers many messages sent in one write in order", function()
    local c = assert(client.connect(srv.port))
    for i = 1, 500 do assert(c.codec:send("m" .. i, "text")) end
    c:flush()
    for i = 1, 500 do
      local kind, got = c:message()
      assert.are.equal("m" .. i, got)
    end
    c:close()
  end)

  it("exposes id, state, protocol and the request", function()
    local c = assert(client.connect(srv.port, { path = "/x?y=1", protocols = { "chat.v1" }, headers = { ["X-Test"] = "yes" } }))
    assert.are.equal("chat.v1", c.protocol)
    c:send("fields?")
    local _, got = c:message()
    assert.are.equal("number open chat.v1 GET /x y=1 yes 127.0.0.1 number", got)
    c:close()
  end)

  it("prefers the server's order of subprotocols and serves clients without one", function()
    local c = assert(client.connect(srv.port, { protocols = { "chat.v1", "chat.v2" } }))
    assert.are.equal("chat.v2", c.protocol)
    c:close()
    c = assert(client.connect(srv.port, { protocols = { "other" } }))
    assert.is_nil(c.protocol)
    c:close()
  end)

  it("replies to a close with the same code and closes the TCP connection", function()
    local c = assert(client.connect(srv.port))
    local code = c:close(4001, "app")
    assert.are.equal(4001, code)
    assert.truthy(srv:wait_output("closed 4001 app"))
  end)

  it("answers a plain GET with 426", function()
    local status, headers = client.get(srv.port, "/")
    assert.are.equal(426, status)
    assert.are.equal("13", headers["sec-websocket-version"])
  end)
end)
