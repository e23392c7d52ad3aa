-- A handshake hook that returns a header whose name is not an RFC 7230 token ("X Bad") is
-- a server bug. The binding checked names for CR, LF and ':' only, the core's token rule
-- then refused the 101 and the client was dropped with "out of memory" in the log. The
-- binding now asks the core's rule: the client gets a 500 and the error names the header.
local server = require "support.ws_server"
local client = require "support.ws_client"

describe("a handshake hook returning an invalid header name", function()
  local srv
  setup(function()
    srv = server.start([[
      ws.set_error_handler(function(where, msg) log("error in " .. where .. ": " .. msg) end)
      listen({
        handshake = function(req)
          if req.query == "space" then return true, { headers = { ["X Bad"] = "1" } } end
          if req.query == "value" then return true, { headers = { ["X-Bad"] = "a\1b" } } end
          return true, { headers = { ["X-Good"] = "1" } }
        end,
      }, function(conn) conn:send("hi") end)
    ]])
  end)
  teardown(function() srv:stop() end)

  it("answers 500 and names the header", function()
    local c, _, status = client.connect(srv.port, { path = "/?space" })
    assert.is_nil(c)
    assert.are.equal(500, status)
    assert.truthy(srv:wait_output("invalid header name 'X Bad'"))
    assert.is_nil(srv:errors():find("out of memory", 1, true))
  end)

  it("answers 500 for a value with a control character, naming the header", function()
    local c, _, status = client.connect(srv.port, { path = "/?value" })
    assert.is_nil(c)
    assert.are.equal(500, status)
    assert.truthy(srv:wait_output("invalid value for header 'X%-Bad'"))
  end)

  it("keeps serving valid headers", function()
    local c = assert(client.connect(srv.port, { path = "/?good" }))
    local _, msg = c:message()
    assert.are.equal("hi", msg)
    c:close()
  end)
end)
