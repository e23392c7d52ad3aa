-- RFC 6455 4.1/4.2.1 (7) and RFC 6454 7.3: a handshake carries at most one Origin. Two
-- of them would leave a server's origin check (10.2) reading one value while the
-- headers table shows both, so the request is refused with 400.
local codec = require "ws.codec"

local BASE = "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" ..
  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"

describe("the Origin header of an upgrade request", function()
  it("is exposed when there is one", function()
    local req = assert(codec.parse_request(BASE .. "Origin: http://good.example\r\n\r\n"))
    assert.is_nil(req.error)
    assert.equal("http://good.example", req.origin)
  end)

  it("is refused with 400 when repeated", function()
    local req = assert(codec.parse_request(BASE .. "Origin: http://good.example\r\norigin: http://evil.example\r\n\r\n"))
    assert.equal(400, req.status)
    assert.equal("repeated Origin header", req.error)
    assert.equal("http://good.example", req.origin)
  end)
end)
