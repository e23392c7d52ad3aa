-- The 101 carries Upgrade, Connection, Sec-WebSocket-Accept and, from the protocol and
-- extensions fields, Sec-WebSocket-Protocol and -Extensions. ws.codec's accept_response (so
-- ws.resty.accept's `headers`) let extra headers name them again, and wrote them twice (a
-- client sees two subprotocols); only ws.core refused two of them. The core's response
-- builder refuses all five now (ws_response_accept_check), for every binding.
local codec = require "ws.codec"

local KEY = "dGhlIHNhbXBsZSBub25jZQ=="
local REQUEST = "GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n" ..
  "Connection: Upgrade\r\nSec-WebSocket-Key: " .. KEY .. "\r\nSec-WebSocket-Version: 13\r\n" ..
  "Sec-WebSocket-Protocol: chat, superchat\r\n\r\n"

describe("accept_response's extra headers", function()
  local req = assert(codec.parse_request(REQUEST))

  local function refused(headers, message)
    assert.has_error(function() codec.accept_response(req, { protocol = "chat", headers = headers }) end,
      "accept_response: " .. message)
  end

  it("may not set what the handshake sets", function()
    refused({ ["Sec-WebSocket-Protocol"] = "superchat" }, "Sec-WebSocket-Protocol is set with the protocol field")
    refused({ { "sec-websocket-protocol", "chat" } }, "Sec-WebSocket-Protocol is set with the protocol field")
    refused({ ["Sec-WebSocket-Extensions"] = "permessage-deflate" },
      "Sec-WebSocket-Extensions is set by the compression option or the extensions field")
    refused({ Upgrade = "websocket" }, "Upgrade is set by the handshake")
    refused({ Connection = "Upgrade" }, "Connection is set by the handshake")
    refused({ ["Sec-WebSocket-Accept"] = "x" }, "Sec-WebSocket-Accept is set by the handshake")
  end)

  it("may set others, and the subprotocol goes out once", function()
    local res = codec.accept_response(req, { protocol = "chat", headers = { ["X-Server"] = "lua-ws" } })
    local _, count = res:gsub("\r\n[Ss]ec%-[Ww]eb[Ss]ocket%-[Pp]rotocol:", "")
    assert.equal(1, count)
    assert.truthy(res:find("\r\nX-Server: lua-ws\r\n", 1, true))
  end)
end)
