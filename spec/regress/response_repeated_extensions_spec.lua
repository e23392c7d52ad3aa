-- A 101 that accepts extensions in two Sec-WebSocket-Extensions headers is refused by ws.core's
-- client ("repeated Sec-WebSocket-Extensions"); ws.codec (and ws.resty.connect, built on it)
-- joined the two values and went on. The rule is now the core's ws_response_check_upgrade.
local codec = require "ws.codec"

local KEY = "dGhlIHNhbXBsZSBub25jZQ=="
local HEAD = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" ..
  "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"

describe("a 101 response with Sec-WebSocket-Extensions twice", function()
  it("is refused by ws.codec", function()
    local twice = HEAD .. "Sec-WebSocket-Extensions: permessage-deflate\r\n" ..
      "Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n"
    assert.same({ nil, "repeated Sec-WebSocket-Extensions" },
      { codec.parse_response(twice, KEY, { extensions = "permessage-deflate" }) })
  end)

  it("is accepted in one header", function()
    local once = HEAD .. "Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n"
    local resp = assert(codec.parse_response(once, KEY, { extensions = "permessage-deflate" }))
    assert.equal("permessage-deflate", resp.extensions)
  end)
end)
