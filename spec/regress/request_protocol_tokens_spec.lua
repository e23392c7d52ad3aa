-- RFC 6455 4.1 and 4.3: Sec-WebSocket-Protocol is a list of tokens (1#token). A server
-- that reads anything else is not reading a valid handshake: 400 (4.2.1), rather than a
-- list of strings no subprotocol name can equal.
local codec = require "ws.codec"

local function request(protocol_lines)
  local t = { "GET / HTTP/1.1", "Host: h", "Upgrade: websocket", "Connection: Upgrade",
              "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13" }
  for _, l in ipairs(protocol_lines) do t[#t + 1] = "Sec-WebSocket-Protocol: " .. l end
  return table.concat(t, "\r\n") .. "\r\n\r\n"
end

describe("Sec-WebSocket-Protocol in a request", function()
  it("takes tokens, across headers, skipping empty list elements", function()
    local req = assert(codec.parse_request(request { "chat, v2.json", "x-y_z!#$%&'*+-.^`|~" }))
    assert.is_nil(req.error)
    assert.same({ "chat", "v2.json", "x-y_z!#$%&'*+-.^`|~" }, req.protocols)
    req = assert(codec.parse_request(request { ", chat,, v2 ," }))
    assert.is_nil(req.error)
    assert.same({ "chat", "v2" }, req.protocols)
  end)

  it("refuses elements that are not tokens with 400", function()
    for _, v in ipairs { '"chat"', "chat v2", "chat;q=1", "a/b", "a=b", "chat, (x)", "{x}", "a@b", "a:b",
                         "[x]", "a?b", "a\\b", "\194\169" } do
      local req = assert(codec.parse_request(request { v }))
      assert.equal(400, req.status, v)
      assert.equal("invalid Sec-WebSocket-Protocol", req.error, v)
    end
  end)
end)
