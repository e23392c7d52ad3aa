-- ws.url: the one ws:// URL parser (ws.connect, ws.resty.connect, the specs' clients) and the
-- one origin policy (ws.server, ws.resty.accept).
local url = require "ws.url"

describe("ws.url.parse", function()
  it("splits ws:// and wss:// URLs, leaving the default port out of Host", function()
    local u = assert(url.parse("ws://example.com/chat?room=1#top"))
    assert.same({ scheme = "ws", host = "example.com", port = 80, target = "/chat?room=1",
                  host_header = "example.com", tls = false }, u)
    u = assert(url.parse("WSS://[::1]:8443?x"))
    assert.same({ scheme = "wss", host = "::1", port = 8443, target = "/?x", host_header = "[::1]:8443", tls = true }, u)
  end)

  it("says what is wrong", function()
    assert.same({ nil, "unsupported URL scheme http", "scheme" }, { url.parse("http://a/") })
    assert.same({ nil, "invalid URL a/b", "url" }, { url.parse("a/b") })
    assert.same({ nil, "user information in URLs is not supported", "userinfo" }, { url.parse("ws://u@a/") })
    assert.same({ nil, "invalid host in URL ws:///x", "host" }, { url.parse("ws:///x") })
    assert.same({ nil, "invalid port in URL ws://a:0/", "port" }, { url.parse("ws://a:0/") })
  end)
end)

describe("ws.url.origin_policy", function()
  local function req() return { path = "/" } end

  it("admits a request without Origin under every policy", function()
    for _, opt in ipairs { false, "*", { "https://a.example" }, function() return true end } do
      assert.is_true(url.origin_policy(opt or nil, "t", 1)(nil, "h", req))
    end
  end)

  it("compares a list without case, and asks a function with the request", function()
    local allowed = url.origin_policy({ "https://A.example" }, "t", 1)
    assert.is_true(allowed("https://a.EXAMPLE", nil, req))
    assert.is_false(allowed("https://b.example", nil, req))
    local seen
    url.origin_policy(function(o, r) seen = { o, r.path } return false end, "t", 1)("https://x", nil, req)
    assert.same({ "https://x", "/" }, seen)
  end)

  it("wants the host by default", function()
    local same = url.origin_policy(nil, "t", 1)
    assert.is_true(same("http://Host:8080", "host:8080", req))
    assert.is_false(same("http://other", "host", req))
  end)

  it("refuses other option values", function()
    assert.has_error(function() url.origin_policy(42, "ws.server", 1) end, 'ws.server: origins must be a list, a function or "*"')
  end)
end)
