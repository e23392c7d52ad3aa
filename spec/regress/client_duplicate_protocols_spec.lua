-- RFC 6455 4.1: the subprotocols a client offers "MUST all be unique strings".
local codec = require "ws.codec"

describe("client_request with subprotocols", function()
  it("refuses a list that names a protocol twice", function()
    assert.has_error(function() codec.client_request { host = "h", protocols = { "chat", "v2", "chat" } } end,
      "client_request: protocol 'chat' offered twice")
  end)

  it("takes protocols that differ only in case, which are different protocols", function()
    local req = codec.client_request { host = "h", protocols = { "chat", "Chat" } }
    assert.matches("Sec%-WebSocket%-Protocol: chat, Chat\r\n", req)
  end)
end)
