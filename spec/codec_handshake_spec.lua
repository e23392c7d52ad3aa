-- The opening handshake of ws.codec (RFC 6455 section 4), both sides, byte for byte.
-- Every head is also parsed from every prefix of itself (bytes arriving one at a time, or
-- split at any position): a prefix answers "again" or exactly what the whole head answers.
local codec = require "ws.codec"

local RFC_KEY = "dGhlIHNhbXBsZSBub25jZQ=="
local RFC_ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

-- RFC 6455 section 1.3, the client's handshake.
local RFC_REQUEST = "GET /chat HTTP/1.1\r\n" ..
  "Host: server.example.com\r\n" ..
  "Upgrade: websocket\r\n" ..
  "Connection: Upgrade\r\n" ..
  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" ..
  "Origin: http://example.com\r\n" ..
  "Sec-WebSocket-Protocol: chat, superchat\r\n" ..
  "Sec-WebSocket-Version: 13\r\n\r\n"

-- RFC 6455 section 1.3, the server's handshake.
local RFC_RESPONSE = "HTTP/1.1 101 Switching Protocols\r\n" ..
  "Upgrade: websocket\r\n" ..
  "Connection: Upgrade\r\n" ..
  "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" ..
  "Sec-WebSocket-Protocol: chat\r\n\r\n"

-- A valid upgrade request with the given extra header lines (each without its CRLF).
local function upgrade_request(extra, opts)
  opts = opts or {}
  local lines = { (opts.request_line or "GET /chat HTTP/1.1") }
  local base = {
    { "Host", "server.example.com" },
    { "Upgrade", "websocket" },
    { "Connection", "Upgrade" },
    { "Sec-WebSocket-Key", RFC_KEY },
    { "Sec-WebSocket-Version", "13" },
  }
  for _, h in ipairs(base) do
    if not (opts.without and opts.without[h[1]]) then
      lines[#lines + 1] = h[1] .. ": " .. ((opts.replace or {})[h[1]] or h[2])
    end
  end
  for _, l in ipairs(extra or {}) do lines[#lines + 1] = l end
  return table.concat(lines, "\r\n") .. "\r\n\r\n"
end

local function pack(...) return { n = select("#", ...), ... } end

-- Every prefix gives "again" or the whole head's answer; the answer for the whole head is returned.
local function check_prefixes(parse, data)
  local whole = pack(parse(data))
  for i = 0, #data - 1 do
    local part = pack(parse(data:sub(1, i)))
    if not (part[1] == nil and part[2] == "again") then
      assert.same(whole, part, "prefix of " .. i .. " bytes")
    end
  end
  return whole
end

local function request(data, max)
  local r = check_prefixes(function(d) return codec.parse_request(d, max) end, data)
  return r[1], r[2], r[3]
end

local function response(data, key, opts)
  local r = check_prefixes(function(d) return codec.parse_response(d, key, opts) end, data)
  return r[1], r[2], r[3]
end

-- An upgrade request that parses but breaks RFC 6455 4.2.1: status and reason.
local function refused(data)
  local req, consumed = request(data)
  assert.is_table(req, consumed)
  assert.is_true(req.upgrade)
  return req.status, req.error
end

local function bad_head(data, max)
  local req, reason, status = request(data, max)
  assert.is_nil(req)
  return reason, status
end

describe("ws.codec opening handshake", function()
  describe("accept_key", function()
    it("gives RFC 6455's accept value for its sample key", function()
      assert.equal(RFC_ACCEPT, codec.accept_key(RFC_KEY))
    end)
  end)

  describe("parse_request", function()
    it("parses RFC 6455's sample request", function()
      local req, consumed = request(RFC_REQUEST)
      assert.equal(#RFC_REQUEST, consumed)
      assert.equal("GET", req.method)
      assert.equal("/chat", req.target)
      assert.equal("/chat", req.path)
      assert.is_nil(req.query)
      assert.equal("1.1", req.version)
      assert.is_true(req.upgrade)
      assert.is_nil(req.status)
      assert.is_nil(req.error)
      assert.equal(RFC_KEY, req.key)
      assert.equal("http://example.com", req.origin)
      assert.same({ "chat", "superchat" }, req.protocols)
      assert.is_nil(req.extensions)
      assert.equal("server.example.com", req.headers.host)
      assert.equal("Upgrade", req.headers.connection)
      assert.equal(7, #req.header_list)
      assert.same({ "Sec-WebSocket-Key", RFC_KEY }, req.header_list[4])
    end)

    it("answers again for every proper prefix", function()
      for i = 0, #RFC_REQUEST - 1 do
        local req, reason = codec.parse_request(RFC_REQUEST:sub(1, i))
        assert.is_nil(req)
        assert.equal("again", reason)
      end
    end)

    it("consumes only the head, leaving frame bytes that follow it", function()
      local data = RFC_REQUEST .. "\129\133\55\250\33\61\127\159\77\81\88"
      local req, consumed = request(data)
      assert.is_table(req)
      assert.equal(#RFC_REQUEST, consumed)
    end)

    it("accepts bare LF line ends, and a mix of LF and CRLF", function()
      local lf = RFC_REQUEST:gsub("\r\n", "\n")
      local req, consumed = request(lf)
      assert.equal(#lf, consumed)
      assert.is_nil(req.error)
      assert.equal(RFC_KEY, req.key)
      local mixed = "GET / HTTP/1.1\nHost: a\r\nUpgrade: websocket\nConnection: Upgrade\r\n" ..
        "Sec-WebSocket-Key: " .. RFC_KEY .. "\nSec-WebSocket-Version: 13\r\n\n"
      req, consumed = request(mixed)
      assert.equal(#mixed, consumed)
      assert.is_nil(req.error)
    end)

    it("splits the target into path and query", function()
      local req = request(upgrade_request(nil, { request_line = "GET /chat/room?id=7&x=%20y HTTP/1.1" }))
      assert.equal("/chat/room?id=7&x=%20y", req.target)
      assert.equal("/chat/room", req.path)
      assert.equal("id=7&x=%20y", req.query)
      req = request(upgrade_request(nil, { request_line = "GET /a? HTTP/1.1" }))
      assert.equal("/a", req.path)
      assert.equal("", req.query)
      req = request(upgrade_request(nil, { request_line = "GET /a?b?c HTTP/1.1" }))
      assert.equal("/a", req.path)
      assert.equal("b?c", req.query)
    end)

    it("keeps repeated headers, in order, and joins them in the map", function()
      local req = request(upgrade_request({ "X-Tag: one", "x-tag: two", "X-Other: 3", "X-TAG: three" }))
      local tags = {}
      for _, h in ipairs(req.header_list) do
        if h[1]:lower() == "x-tag" then tags[#tags + 1] = h end
      end
      assert.same({ { "X-Tag", "one" }, { "x-tag", "two" }, { "X-TAG", "three" } }, tags)
      assert.equal("one, two, three", req.headers["x-tag"])
      assert.equal("3", req.headers["x-other"])
    end)

    it("trims white space around values and keeps empty values", function()
      local req = request(upgrade_request({ "X-A: \t padded value \t ", "X-Empty:", "X-Tight:v" }))
      assert.equal("padded value", req.headers["x-a"])
      assert.equal("", req.headers["x-empty"])
      assert.equal("v", req.headers["x-tight"])
    end)

    it("accepts values with bytes above 127 (obs-text)", function()
      local req = request(upgrade_request({ "X-Name: caf\195\169" }))
      assert.equal("caf\195\169", req.headers["x-name"])
    end)

    it("exposes Origin, or nil when absent", function()
      local req = request(upgrade_request({ "Origin: https://example.org" }))
      assert.equal("https://example.org", req.origin)
      req = request(upgrade_request())
      assert.is_nil(req.origin)
    end)

    it("collects offered protocols from every Sec-WebSocket-Protocol header", function()
      local req = request(upgrade_request({ "Sec-WebSocket-Protocol: a, b", "Sec-WebSocket-Protocol: c" }))
      assert.same({ "a", "b", "c" }, req.protocols)
      req = request(upgrade_request())
      assert.same({}, req.protocols)
    end)

    it("joins offered extension headers", function()
      local req = request(upgrade_request({
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits",
        "Sec-WebSocket-Extensions: x-foo" }))
      assert.equal("permessage-deflate; client_max_window_bits, x-foo", req.extensions)
    end)

    it("treats a request without Upgrade: websocket as plain HTTP", function()
      local data = "GET /index.html HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\n"
      local req, consumed = request(data)
      assert.equal(#data, consumed)
      assert.is_false(req.upgrade)
      assert.is_nil(req.status)
      assert.is_nil(req.key)
      assert.is_nil(req.protocols)
      local post = "POST /form HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc"
      req, consumed = request(post)
      assert.equal(#post - 3, consumed)
      assert.equal("POST", req.method)
      assert.equal("1.0", req.version)
      assert.is_false(req.upgrade)
    end)

    describe("upgrade checks (RFC 6455 4.2.1)", function()
      it("matches Upgrade and Connection case-insensitively, inside lists and repeated headers", function()
        for _, extra in ipairs({
          { replace = { Upgrade = "WebSocket", Connection = "upgrade" } },
          { replace = { Upgrade = "h2c, websocket", Connection = "keep-alive, Upgrade" } },
          { replace = { Connection = "keep-alive,UPGRADE" } },
        }) do
          local req = request(upgrade_request(nil, extra))
          assert.is_nil(req.error)
          assert.is_true(req.upgrade)
        end
        local req = request(upgrade_request({ "Connection: upgrade" }, { replace = { Connection = "keep-alive" } }))
        assert.is_nil(req.error)
        req = request(upgrade_request({ "Upgrade: websocket" }, { replace = { Upgrade = "h2c" } }))
        assert.is_nil(req.error)
      end)

      it("accepts later HTTP/1.x versions", function()
        local req = request(upgrade_request(nil, { request_line = "GET / HTTP/1.2" }))
        assert.equal("1.2", req.version)
        assert.is_nil(req.error)
      end)

      it("refuses a method other than GET with 400", function()
        local status, err = refused(upgrade_request(nil, { request_line = "POST /chat HTTP/1.1" }))
        assert.equal(400, status)
        assert.equal("method must be GET", err)
      end)

      it("refuses HTTP/1.0 with 400", function()
        local status, err = refused(upgrade_request(nil, { request_line = "GET /chat HTTP/1.0" }))
        assert.equal(400, status)
        assert.equal("HTTP/1.1 or later required", err)
      end)

      it("refuses a missing, repeated or empty Host with 400", function()
        assert.same({ 400, "missing Host header" }, { refused(upgrade_request(nil, { without = { Host = true } })) })
        assert.same({ 400, "repeated Host header" }, { refused(upgrade_request({ "Host: other" })) })
        assert.same({ 400, "empty Host header" }, { refused(upgrade_request(nil, { replace = { Host = "" } })) })
      end)

      it("refuses a missing Connection: Upgrade with 400", function()
        assert.same({ 400, "missing Connection: Upgrade" },
          { refused(upgrade_request(nil, { without = { Connection = true } })) })
        assert.same({ 400, "missing Connection: Upgrade" },
          { refused(upgrade_request(nil, { replace = { Connection = "upgrades, keep-alive" } })) })
      end)

      it("answers a missing or wrong Sec-WebSocket-Version with 426", function()
        assert.same({ 426, "missing Sec-WebSocket-Version" },
          { refused(upgrade_request(nil, { without = { ["Sec-WebSocket-Version"] = true } })) })
        for _, v in ipairs({ "8", "12", "14", "13, 8", "013", "" }) do
          assert.same({ 426, "unsupported Sec-WebSocket-Version" },
            { refused(upgrade_request(nil, { replace = { ["Sec-WebSocket-Version"] = v } })) }, v)
        end
        assert.same({ 426, "unsupported Sec-WebSocket-Version" },
          { refused(upgrade_request({ "Sec-WebSocket-Version: 8" })) })
      end)

      it("refuses a missing, repeated or malformed key with 400", function()
        assert.same({ 400, "missing Sec-WebSocket-Key" },
          { refused(upgrade_request(nil, { without = { ["Sec-WebSocket-Key"] = true } })) })
        assert.same({ 400, "repeated Sec-WebSocket-Key" },
          { refused(upgrade_request({ "Sec-WebSocket-Key: " .. RFC_KEY })) })
        for _, key in ipairs({
          "AAAAAAAAAAAAAAAAAAAA",          -- 15 bytes
          "AAAAAAAAAAAAAAAAAAAAAA=",       -- 16 bytes, one pad character short
          "AAAAAAAAAAAAAAAAAAAAAAA=",      -- 17 bytes
          "AAAAAAAAAAAAAAAAAAAAAAAA",      -- 18 bytes
          "dGhlIHNhbXBsZSBub25jZR==",      -- 16 bytes but not the canonical spelling
          "dGhlIHNhbXBsZSBub25jZ!==",      -- not base64
          "dGhlIHNhbXBs ZSBub25jZQ==",     -- a space inside
          "=GhlIHNhbXBsZSBub25jZQ==",
          "",
        }) do
          assert.same({ 400, "invalid Sec-WebSocket-Key" },
            { refused(upgrade_request(nil, { replace = { ["Sec-WebSocket-Key"] = key } })) }, key)
        end
      end)

      it("trims white space around the key and version, and answers for the trimmed key", function()
        local data = upgrade_request(nil, { replace = { ["Sec-WebSocket-Key"] = RFC_KEY .. " \t",
                                                        ["Sec-WebSocket-Version"] = "13 " } })
        data = data:gsub("Sec%-WebSocket%-Key: ", "Sec-WebSocket-Key:\t ")
        local req = request(data)
        assert.is_nil(req.error)
        assert.equal(RFC_KEY, req.key)
        assert.matches("Sec%-WebSocket%-Accept: " .. RFC_ACCEPT:gsub("%+", "%%+") .. "\r\n", codec.accept_response(req))
      end)

      it("exposes the key and Origin even when a check fails", function()
        local req = request(upgrade_request({ "Origin: http://o" }, { request_line = "PUT / HTTP/1.1" }))
        assert.equal(400, req.status)
        assert.equal(RFC_KEY, req.key)
        assert.equal("http://o", req.origin)
      end)
    end)

    describe("malformed heads", function()
      local function with_line(line) return "GET / HTTP/1.1\r\nHost: a\r\n" .. line .. "\r\n\r\n" end

      it("refuses obsolete line folding", function()
        assert.same({ "obsolete line folding", 400 }, { bad_head(with_line("X-A: 1\r\n  more")) })
        assert.same({ "obsolete line folding", 400 }, { bad_head(with_line("X-A: 1\r\n\tmore")) })
      end)

      it("refuses control characters", function()
        assert.same({ "control character in header", 400 }, { bad_head(with_line("X-A: a\1b")) })
        assert.same({ "control character in header", 400 }, { bad_head(with_line("X-A: a\0b")) })
        assert.same({ "control character in header", 400 }, { bad_head(with_line("X-A: a\127")) })
        assert.same({ "control character in request line", 400 }, { bad_head("GET /\1 HTTP/1.1\r\n\r\n") })
        -- Detected as soon as it arrives, before the line ends.
        assert.same({ nil, "control character in header", 400 }, { codec.parse_request("GET / HTTP/1.1\r\nX: \27") })
      end)

      it("refuses a CR that is not followed by LF", function()
        assert.same({ "CR without LF", 400 }, { bad_head(with_line("X-A: a\rb")) })
        assert.same({ "CR without LF", 400 }, { bad_head("GET / HTTP/1.1\r\r\n\r\n") })
      end)

      it("refuses header names that are not tokens, and lines without a colon", function()
        assert.same({ "invalid character in header name", 400 }, { bad_head(with_line("X(A): 1")) })
        assert.same({ "invalid character in header name", 400 }, { bad_head(with_line("X\"A\": 1")) })
        assert.same({ "invalid character in header name", 400 }, { bad_head(with_line("Caf\195\169: 1")) })
        assert.same({ "white space in header name", 400 }, { bad_head(with_line("X-A : 1")) })
        assert.same({ "white space in header name", 400 }, { bad_head(with_line("Bad Name: 1")) })
        assert.same({ "header line without colon", 400 }, { bad_head(with_line("NoColon")) })
        assert.same({ "empty header name", 400 }, { bad_head(with_line(": value")) })
      end)

      it("refuses malformed request lines", function()
        local cases = {
          { "GET /chat\r\n\r\n", "invalid request line" },
          { "GET\r\n\r\n", "invalid method" },
          { " GET / HTTP/1.1\r\n\r\n", "invalid method" },
          { "G@T / HTTP/1.1\r\n\r\n", "invalid method" },
          { "GET  / HTTP/1.1\r\n\r\n", "invalid request target" },
          { "GET /caf\195\169 HTTP/1.1\r\n\r\n", "invalid request target" },
          { "GET / HTTP/1.1 \r\n\r\n", "invalid HTTP version" },
          { "GET / http/1.1\r\n\r\n", "invalid HTTP version" },
          { "GET / HTTP/1.x\r\n\r\n", "invalid HTTP version" },
          { "GET / HTTP/11\r\n\r\n", "invalid HTTP version" },
          { "GET / HTTP/2.0\r\n\r\n", "unsupported HTTP version" },
          { "GET / HTTP/0.9\r\n\r\n", "unsupported HTTP version" },
          { "\r\nGET / HTTP/1.1\r\n\r\n", "empty first line" },
        }
        for _, c in ipairs(cases) do
          assert.same({ c[2], 400 }, { bad_head(c[1]) }, c[1])
        end
      end)

      it("answers 431 for a head over the byte limit", function()
        local big = upgrade_request({ "X-Big: " .. ("b"):rep(9000) })
        assert.same({ "request head too large", 431 }, { bad_head(big) })
        -- Exactly at a custom limit passes; one byte over does not.
        local req, consumed = request(RFC_REQUEST, #RFC_REQUEST)
        assert.equal(#RFC_REQUEST, consumed)
        assert.is_nil(req.error)
        assert.same({ "request head too large", 431 }, { bad_head(RFC_REQUEST, #RFC_REQUEST - 1) })
        -- An endless line is refused as soon as it passes the limit, not later.
        assert.same({ nil, "request head too large", 431 },
          { codec.parse_request("GET /" .. ("a"):rep(8200)) })
        assert.same({ nil, "again" }, { codec.parse_request("GET /" .. ("a"):rep(8000)) })
      end)

      it("answers 431 for more than 100 header lines", function()
        local lines = {}
        for i = 1, 95 do lines[#lines + 1] = "X-" .. i .. ": v" end
        local req = request(upgrade_request(lines))   -- 5 + 95 = 100 headers
        assert.equal(100, #req.header_list)
        assert.is_nil(req.error)
        lines[#lines + 1] = "X-Last: v"
        assert.same({ "too many header lines", 431 }, { bad_head(upgrade_request(lines)) })
      end)

      it("reports the first fault of a head", function()
        assert.same({ "invalid method", 400 }, { bad_head("G@T / HTTP/1.1\r\nX A: \1\r\n\r\n") })
        assert.same({ "white space in header name", 400 }, { bad_head("GET / HTTP/1.1\r\nX A: 1\r\nY: \1\r\n\r\n") })
      end)
    end)
  end)

  describe("choose_protocol", function()
    local req = request(RFC_REQUEST)  -- offers chat, superchat

    it("follows the server's order of preference", function()
      assert.equal("superchat", codec.choose_protocol(req, { "superchat", "chat" }))
      assert.equal("chat", codec.choose_protocol(req, { "chat", "superchat" }))
      assert.equal("chat", codec.choose_protocol(req, { "v2", "chat" }))
    end)

    it("gives nil when nothing matches or nothing was offered", function()
      assert.is_nil(codec.choose_protocol(req, { "v2", "Chat" }))
      assert.is_nil(codec.choose_protocol(req, {}))
      assert.is_nil(codec.choose_protocol(request(upgrade_request()), { "chat" }))
    end)
  end)

  describe("accept_response", function()
    it("builds RFC 6455's sample response", function()
      local req = request(RFC_REQUEST)
      assert.equal(RFC_RESPONSE, codec.accept_response(req, { protocol = codec.choose_protocol(req, { "chat" }) }))
    end)

    it("sends no protocol header when none is chosen", function()
      local req = request(RFC_REQUEST)
      assert.equal("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" ..
        "Sec-WebSocket-Accept: " .. RFC_ACCEPT .. "\r\n\r\n", codec.accept_response(req))
    end)

    it("adds the extension answer and extra headers (sorted by name)", function()
      local req = request(upgrade_request({ "Sec-WebSocket-Extensions: permessage-deflate" }))
      local resp = codec.accept_response(req, { extensions = "permessage-deflate; server_no_context_takeover",
        headers = { ["X-Zed"] = "z", ["Set-Cookie"] = "id=1", ["X-Num"] = 42 } })
      assert.equal("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" ..
        "Sec-WebSocket-Accept: " .. RFC_ACCEPT .. "\r\n" ..
        "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n" ..
        "Set-Cookie: id=1\r\nX-Num: 42\r\nX-Zed: z\r\n\r\n", resp)
    end)

    it("never answers with a protocol the client did not offer, nor a list", function()
      local req = request(RFC_REQUEST)
      assert.has_error(function() codec.accept_response(req, { protocol = "v2" }) end,
        "accept_response: protocol 'v2' was not offered by the client")
      assert.has_error(function() codec.accept_response(req, { protocol = "chat, superchat" }) end,
        "accept_response: invalid protocol name 'chat, superchat'")
    end)

    it("refuses a request that failed its checks, and header injection", function()
      local bad = request(upgrade_request(nil, { request_line = "POST / HTTP/1.1" }))
      assert.has_error(function() codec.accept_response(bad) end,
        "accept_response: the request failed its upgrade check (method must be GET)")
      local req = request(RFC_REQUEST)
      assert.has_error(function() codec.accept_response(req, { headers = { ["X-A"] = "a\r\nX-B: b" } }) end,
        "accept_response: invalid value for header 'X-A'")
      assert.has_error(function() codec.accept_response(req, { headers = { ["X A"] = "a" } }) end,
        "accept_response: invalid header name 'X A'")
      assert.has_error(function() codec.accept_response(req, { extensions = "x\ny" }) end,
        "accept_response: invalid extensions value")
      assert.has_error(function() codec.accept_response({}) end, "accept_response: the request has no key")
    end)
  end)

  describe("response", function()
    it("builds a plain response with Content-Length and Connection: close", function()
      assert.equal("HTTP/1.1 400 Bad Request\r\nContent-Length: 20\r\nConnection: close\r\n\r\n" ..
        "missing Host header\n", codec.response(400, nil, "missing Host header\n"))
      assert.equal("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n" ..
        "Content-Type: text/plain\r\n\r\n", codec.response(404, { ["Content-Type"] = "text/plain" }))
      assert.equal("HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        codec.response(431))
      assert.equal("HTTP/1.1 299 Success\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
        codec.response(299, {}, "ok"))
    end)

    it("puts Sec-WebSocket-Version: 13 on a 426", function()
      assert.equal("HTTP/1.1 426 Upgrade Required\r\nContent-Length: 0\r\nConnection: close\r\n" ..
        "Sec-WebSocket-Version: 13\r\n\r\n", codec.response(426))
    end)

    it("raises on a status out of range and on header injection", function()
      assert.has_error(function() codec.response(99) end)
      assert.has_error(function() codec.response(1000) end)
      assert.has_error(function() codec.response(400, { ["X"] = "1\r\n\r\nHTTP/1.1 200 OK" }) end,
        "response: invalid value for header 'X'")
    end)
  end)

  describe("client side", function()
    local KEY = "AQIDBAUGBwgJCgsMDQ4PEA=="   -- bytes 1..16

    it("builds the upgrade request byte for byte", function()
      local req, key = codec.client_request{ host = "example.com:8080", path = "/chat?x=1",
        protocols = { "chat", "superchat" }, extensions = "permessage-deflate; client_max_window_bits",
        origin = "http://example.com", headers = { ["X-Token"] = "t" }, key = KEY }
      assert.equal(KEY, key)
      assert.equal("GET /chat?x=1 HTTP/1.1\r\nHost: example.com:8080\r\nUpgrade: websocket\r\n" ..
        "Connection: Upgrade\r\nSec-WebSocket-Key: " .. KEY .. "\r\nSec-WebSocket-Version: 13\r\n" ..
        "Origin: http://example.com\r\nSec-WebSocket-Protocol: chat, superchat\r\n" ..
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\nX-Token: t\r\n\r\n", req)
      req = codec.client_request{ host = "h", key = KEY }
      assert.equal("GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" ..
        "Sec-WebSocket-Key: " .. KEY .. "\r\nSec-WebSocket-Version: 13\r\n\r\n", req)
    end)

    it("draws a fresh random key that a server accepts", function()
      local seen = {}
      for _ = 1, 20 do
        local data, key = codec.client_request{ host = "h" }
        assert.equal(24, #key)
        assert.is_nil(seen[key])
        seen[key] = true
        local req = codec.parse_request(data)
        assert.is_nil(req.error)
        assert.equal(key, req.key)
      end
    end)

    it("raises on invalid arguments", function()
      assert.has_error(function() codec.client_request{} end, "client_request: host is required")
      assert.has_error(function() codec.client_request{ host = "a b" } end, "client_request: invalid host 'a b'")
      assert.has_error(function() codec.client_request{ host = "h", path = "/a b" } end,
        "client_request: invalid path '/a b'")
      assert.has_error(function() codec.client_request{ host = "h", protocols = { "a,b" } } end,
        "client_request: invalid protocol name 'a,b'")
      assert.has_error(function() codec.client_request{ host = "h", key = "short" } end,
        "client_request: invalid key")
      assert.has_error(function() codec.client_request{ host = "h", origin = "o\r\nX: y" } end,
        "client_request: invalid origin")
    end)

    it("parses RFC 6455's sample response", function()
      local resp, consumed = response(RFC_RESPONSE, RFC_KEY, { protocols = { "chat", "superchat" } })
      assert.equal(#RFC_RESPONSE, consumed)
      assert.equal(101, resp.status)
      assert.equal("Switching Protocols", resp.reason)
      assert.equal("1.1", resp.version)
      assert.equal("chat", resp.protocol)
      assert.is_nil(resp.extensions)
      assert.equal(RFC_ACCEPT, resp.headers["sec-websocket-accept"])
      assert.equal(4, #resp.header_list)
    end)

    it("consumes only the head, leaving frame bytes that follow it", function()
      local resp, consumed = response(RFC_RESPONSE .. "\129\5Hello", RFC_KEY, { protocols = { "chat" } })
      assert.is_table(resp)
      assert.equal(#RFC_RESPONSE, consumed)
    end)

    it("round-trips with the server side", function()
      local data, key = codec.client_request{ host = "127.0.0.1:9000", path = "/r?q",
        protocols = { "v1", "v2" }, extensions = "permessage-deflate" }
      local req, consumed = request(data)
      assert.equal(#data, consumed)
      assert.is_nil(req.error)
      assert.equal("/r", req.path)
      assert.equal("q", req.query)
      local chosen = codec.choose_protocol(req, { "v2", "v1" })
      assert.equal("v2", chosen)
      local answer = codec.accept_response(req, { protocol = chosen, extensions = "permessage-deflate" })
      local resp, n = response(answer, key, { protocols = { "v1", "v2" }, extensions = "permessage-deflate" })
      assert.equal(#answer, n)
      assert.equal("v2", resp.protocol)
      assert.equal("permessage-deflate", resp.extensions)
    end)

    it("fails on a status other than 101, with that status", function()
      local data = "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n"
      assert.same({ nil, "unexpected status 403", 403 }, { response(data, RFC_KEY) })
      assert.same({ nil, "unexpected status 200", 200 }, { response("HTTP/1.1 200 OK\r\n\r\n", RFC_KEY) })
    end)

    it("fails on a wrong or missing Accept", function()
      local wrong = RFC_RESPONSE:gsub("s3pPLMBiTxaQ9kYGzzhZRbK%+xOo=", "s3pPLMBiTxaQ9kYGzzhZRbK+xOp=")
      assert.same({ nil, "wrong Sec-WebSocket-Accept" }, { response(wrong, RFC_KEY, { protocols = { "chat" } }) })
      assert.same({ nil, "wrong Sec-WebSocket-Accept" },
        { response(RFC_RESPONSE, "AQIDBAUGBwgJCgsMDQ4PEA==", { protocols = { "chat" } }) })
      local missing = RFC_RESPONSE:gsub("Sec%-WebSocket%-Accept: [^\r]*\r\n", "")
      assert.same({ nil, "missing Sec-WebSocket-Accept" }, { response(missing, RFC_KEY, { protocols = { "chat" } }) })
      local twice = RFC_RESPONSE:gsub("\r\n\r\n$", "\r\nSec-WebSocket-Accept: " .. RFC_ACCEPT .. "\r\n\r\n")
      assert.same({ nil, "repeated Sec-WebSocket-Accept" }, { response(twice, RFC_KEY, { protocols = { "chat" } }) })
    end)

    it("fails on a protocol that was not offered", function()
      assert.same({ nil, "protocol not offered" }, { response(RFC_RESPONSE, RFC_KEY) })
      assert.same({ nil, "protocol not offered" }, { response(RFC_RESPONSE, RFC_KEY, { protocols = { "superchat" } }) })
      local list = RFC_RESPONSE:gsub("Protocol: chat", "Protocol: chat, superchat")
      assert.same({ nil, "protocol not offered" }, { response(list, RFC_KEY, { protocols = { "chat", "superchat" } }) })
    end)

    it("accepts no protocol even when some were offered", function()
      local none = RFC_RESPONSE:gsub("Sec%-WebSocket%-Protocol: chat\r\n", "")
      local resp = response(none, RFC_KEY, { protocols = { "chat" } })
      assert.is_nil(resp.protocol)
    end)

    it("fails on an extension that was not offered", function()
      local ext = RFC_RESPONSE:gsub("\r\n\r\n$", "\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n")
      assert.same({ nil, "extension not offered" }, { response(ext, RFC_KEY, { protocols = { "chat" } }) })
      local resp = response(ext, RFC_KEY, { protocols = { "chat" }, extensions = "permessage-deflate" })
      assert.equal("permessage-deflate", resp.extensions)
    end)

    it("fails without Upgrade: websocket or Connection: Upgrade", function()
      local no_up = RFC_RESPONSE:gsub("Upgrade: websocket\r\n", "")
      assert.same({ nil, "missing Upgrade: websocket" }, { response(no_up, RFC_KEY, { protocols = { "chat" } }) })
      local no_conn = RFC_RESPONSE:gsub("Connection: Upgrade\r\n", "Connection: keep-alive\r\n")
      assert.same({ nil, "missing Connection: Upgrade" }, { response(no_conn, RFC_KEY, { protocols = { "chat" } }) })
      local cased = RFC_RESPONSE:gsub("Upgrade: websocket", "UPGRADE: WebSocket"):gsub("Connection: Upgrade", "connection: upgrade")
      assert.is_table((response(cased, RFC_KEY, { protocols = { "chat" } })))
    end)

    it("refuses malformed status lines and heads", function()
      local cases = {
        { "HTTP/1.1 1O1 Switching\r\n\r\n", "invalid status code" },
        { "HTTP/1.1 10 x\r\n\r\n", "invalid status code" },
        { "HTTP/1.1 1011\r\n\r\n", "invalid status code" },
        { "HTTP/1.1\r\n\r\n", "invalid status code" },
        { "HTTP/2 101\r\n\r\n", "invalid HTTP version" },
        { "HTTP/2.0 101 x\r\n\r\n", "unsupported HTTP version" },
        { "HTTP/1.1 101 ok\1\r\n\r\n", "control character in status line" },
        { "HTTP/1.1 101 x\r\nUpgrade: websocket\r\n folded\r\n\r\n", "obsolete line folding" },
        { "HTTP/1.1 101 x\r\nBad Header: 1\r\n\r\n", "white space in header name" },
      }
      for _, c in ipairs(cases) do
        assert.same({ nil, c[2] }, { response(c[1], RFC_KEY) }, c[1])
      end
      assert.same({ nil, "response head too large" },
        { response("HTTP/1.1 101 x\r\nX: " .. ("a"):rep(9000) .. "\r\n\r\n", RFC_KEY) })
      assert.same({ nil, "response head too large" },
        { response(RFC_RESPONSE, RFC_KEY, { protocols = { "chat" }, max_header_bytes = 64 }) })
    end)

    it("accepts a status line without a reason phrase", function()
      local bare = RFC_RESPONSE:gsub("101 Switching Protocols", "101")
      local resp = response(bare, RFC_KEY, { protocols = { "chat" } })
      assert.equal(101, resp.status)
      assert.equal("", resp.reason)
    end)

    it("answers again for every proper prefix", function()
      for i = 0, #RFC_RESPONSE - 1 do
        assert.same({ nil, "again" }, { codec.parse_response(RFC_RESPONSE:sub(1, i), RFC_KEY) })
      end
    end)
  end)
end)
