-- RFC 6455 4.2.1 (2) with RFC 7230 5.4: a Host field with an invalid value is a bad
-- request (400). Host is uri-host [ ":" port ]: no white space, no userinfo, no path.
local codec = require "ws.codec"

local function request(host)
  return "GET / HTTP/1.1\r\nHost: " .. host .. "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" ..
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
end

describe("the Host header of an upgrade request", function()
  it("takes names, IPv4 and IPv6 literals, with or without a port", function()
    for _, h in ipairs { "example.com", "example.com:8080", "127.0.0.1:9000", "[::1]:443", "[fe80::1%25eth0]",
                         "xn--bcher-kva.example", "a_b-c~d", "sub.domain.example.:80" } do
      local req = assert(codec.parse_request(request(h)))
      assert.is_nil(req.error, h)
    end
  end)

  it("refuses anything else with 400", function()
    for _, h in ipairs { "a b", "user@host", "host/path", "host?q", "host#f", "h\"x", "h<x>", "h\\x", "h{x}",
                         "h|x", "h^x", "h`x", "b\195\188cher.example" } do
      local req = assert(codec.parse_request(request(h)))
      assert.equal(400, req.status, h)
      assert.equal("invalid Host header", req.error, h)
    end
  end)
end)
