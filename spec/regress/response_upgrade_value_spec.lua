-- RFC 6455 4.1, the client's checks of the server's handshake: Upgrade must be websocket
-- itself (an ASCII case-insensitive match), not a list that merely includes it, and a
-- 101 answer only exists in HTTP/1.1 and later.
local codec = require "ws.codec"

local KEY = "dGhlIHNhbXBsZSBub25jZQ=="
local function response(status_line, upgrade_lines)
  local t = { status_line }
  for _, l in ipairs(upgrade_lines) do t[#t + 1] = l end
  t[#t + 1] = "Connection: Upgrade"
  t[#t + 1] = "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
  return table.concat(t, "\r\n") .. "\r\n\r\n"
end

describe("the client's check of the server's Upgrade header and version", function()
  it("accepts websocket in any case", function()
    for _, v in ipairs { "websocket", "WebSocket", "WEBSOCKET", " websocket " } do
      local resp = codec.parse_response(response("HTTP/1.1 101 Switching Protocols", { "Upgrade: " .. v }), KEY)
      assert.is_table(resp, v)
    end
  end)

  it("fails on an Upgrade that names anything besides websocket", function()
    for _, lines in ipairs {
      { "Upgrade: websocket, h2c" },
      { "Upgrade: h2c, websocket" },
      { "Upgrade: websocket", "Upgrade: h2c" },
    } do
      assert.same({ nil, "Upgrade is not websocket alone" },
        { codec.parse_response(response("HTTP/1.1 101 Switching Protocols", lines), KEY) }, table.concat(lines, " | "))
    end
    assert.same({ nil, "missing Upgrade: websocket" },
      { codec.parse_response(response("HTTP/1.1 101 Switching Protocols", { "Upgrade: websocket/13" }), KEY) })
  end)

  it("fails on a 101 in HTTP/1.0", function()
    assert.same({ nil, "HTTP/1.1 or later required" },
      { codec.parse_response(response("HTTP/1.0 101 Switching Protocols", { "Upgrade: websocket" }), KEY) })
    assert.is_table(codec.parse_response(response("HTTP/1.2 101 Switching Protocols", { "Upgrade: websocket" }), KEY))
  end)
end)
