-- The Host a client sends must pass the rule a server applies to the Host it receives
-- (RFC 7230 5.4: uri-host [":" port]). ws.codec's client_request and ws.connect checked only
-- for visible ASCII, so they sent hosts such as 'a"b' that a lua-ws server answers with 400.
-- Both ask ws_client_request_check now, which applies the server's rule.
local codec = require "ws.codec"
local ws = require "ws"

describe("the Host a client sends", function()
  it("is refused by client_request when a server would refuse it", function()
    for _, host in ipairs({ 'a"b', "a<b", "a{b}", "a|b", "a\\b", "a^b", "a`b" }) do
      assert.has_error(function() codec.client_request{ host = host } end, "client_request: invalid host '" .. host .. "'")
    end
    for _, host in ipairs({ "example.com", "example.com:8080", "127.0.0.1:9000", "[::1]:80", "a-b_c~d" }) do
      local req = codec.client_request{ host = host }
      assert.truthy(req:find("\r\nHost: " .. host .. "\r\n", 1, true))
    end
  end)

  it("is refused by ws.connect the same way", function()
    assert.has_error(function() ws.connect('ws://a"b:1/') end, "ws.connect: invalid host 'a\"b:1'")
  end)

  it("passes the server's own check when accepted", function()
    local data = codec.client_request{ host = "example.com:8080" }
    local req = assert(codec.parse_request(data))
    assert.is_nil(req.status)
    assert.is_nil(req.error)
  end)
end)
