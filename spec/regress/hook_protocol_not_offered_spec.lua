-- RFC 6455 4.2.2: the subprotocol in a 101 must be one the client offered. A handshake hook
-- that returns another one (or one for a client that offered none) is refused with a logged
-- error and a 500 instead of an upgrade the client would have to fail (core.upgrade returns
-- nil, a message and "protocol" for such a name, and sends nothing).
local server = require "support.ws_server"
local client = require "support.ws_client"

describe("a handshake hook choosing a subprotocol", function()
  local srv
  setup(function()
    srv = server.start([[
      ws.set_error_handler(function(where, msg) log("error in " .. where .. ": " .. msg) end)
      listen({ protocols = { "p1" },
        handshake = function(req)
          local q = req.query
          if q == "offered" then return true, { protocol = "custom" } end
          if q == "other" then return true, { protocol = "made-up" } end
          if q == "none" then return true, { protocol = false } end
          return true
        end,
      }, function(conn) conn:send(tostring(conn.protocol)) end)
    ]])
  end)
  teardown(function() srv:stop() end)

  local function first_message(port, path, protocols)
    local c, _, status, _, body = client.connect(port, { path = path, protocols = protocols })
    if not c then return nil, status, body end
    local _, msg = c:message()
    c:close()
    return c, msg
  end

  it("answers one the client offered", function()
    local port = srv.port
    local c, msg = first_message(port, "/?offered", { "custom", "p1" })
    assert.truthy(c)
    assert.are.equal("custom", c.protocol)
    assert.are.equal("custom", msg)
  end)

  it("refuses one the client did not offer with 500 and logs why", function()
    local port = srv.port
    local c, status, body = first_message(port, "/?other", { "p1" })
    assert.is_nil(c)
    assert.are.equal(500, status)
    assert.are.equal("Internal Server Error\n", body)
    assert.truthy(srv:wait_output('error in handshake: the handshake hook chose subprotocol "made%-up", which the client did not offer'))
    -- a client that offered nothing at all is refused the same way
    c, status = first_message(port, "/?offered", nil)
    assert.is_nil(c)
    assert.are.equal(500, status)
  end)

  it("may drop the protocol with false", function()
    local port = srv.port
    local c, msg = first_message(port, "/?none", { "p1" })
    assert.truthy(c)
    assert.is_nil(c.protocol)
    assert.are.equal("nil", msg)
  end)
end)
