-- The bytes after an upgrade request's head are WebSocket frames (RFC 6455 4.2.2, 5). A
-- request that announces a body (Transfer-Encoding, or a Content-Length other than 0) would
-- have those bytes read as a body by an intermediary and as frames by us, so it is refused
-- with 400 instead of being guessed at.
local codec = require "ws.codec"

local BASE = "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" ..
  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"

describe("an upgrade request that announces a body", function()
  it("is refused with 400", function()
    for _, line in ipairs { "Content-Length: 5", "Transfer-Encoding: chunked", "Content-Length: 0\r\nContent-Length: 5",
                            "Content-Length: x" } do
      local req = assert(codec.parse_request(BASE .. line .. "\r\n\r\nhello"))
      assert.equal(400, req.status, line)
      assert.equal("request body not allowed", req.error, line)
    end
  end)

  it("passes with Content-Length: 0", function()
    local req = assert(codec.parse_request(BASE .. "Content-Length: 0\r\n\r\n"))
    assert.is_nil(req.error)
  end)
end)
