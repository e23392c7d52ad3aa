-- RFC 6455 4.2.1 (3, 4): a request with Upgrade: websocket and no Connection: Upgrade is a
-- WebSocket request missing a header, answered 400 "missing Connection: Upgrade". ws.server
-- took it for plain HTTP and answered 426 while ws.codec (and ws.resty, built on it) said
-- 400: one request, two answers. The core now decides both what is an upgrade request and
-- what is wrong with it.
local codec = require "ws.codec"
local server = require "support.ws_server"
local client = require "support.ws_client"

local REQUEST = "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n" ..
  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"

describe("an upgrade request without Connection: Upgrade", function()
  it("is an upgrade request refused with 400 by ws.codec", function()
    local req = assert(codec.parse_request(REQUEST))
    assert.is_true(req.upgrade)
    assert.equal(400, req.status)
    assert.equal("missing Connection: Upgrade", req.error)
  end)

  it("gets the same 400 and reason from ws.server", function()
    local srv = server.start([[
      listen({ path = "/ws" }, function(conn) conn:close() end)
    ]])
    local status, _, body = client.http(srv.port, REQUEST)
    srv:stop()
    assert.equal(400, status)
    assert.equal("missing Connection: Upgrade\n", body)
  end)

  it("leaves a request without Upgrade: websocket to plain HTTP", function()
    local req = assert(codec.parse_request("GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"))
    assert.is_false(req.upgrade)
    assert.is_nil(req.status)
  end)
end)
