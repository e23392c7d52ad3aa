-- Plain HTTP sent to a TLS port was closed without a word (OpenSSL's "wrong version number" in
-- the log, nothing for the client). A request that starts with a method is told apart from a
-- TLS record by its first byte, answered with a 400 as nginx does, and logged; then the
-- connection closes.
local certs = require "support.certs"
local server = require "support.ws_server"
local client = require "support.ws_client"

describe("plain HTTP to a TLS port", function()
  it("is answered with a 400 that says so", function()
    local C = certs.make()
    local srv = server.start(([[
      listen({ tls = { cert = %q, key = %q } }, function(conn)
        for msg in conn:messages() do conn:send(msg) end
      end)
      ws.set_error_handler(function(where, msg) log("error", where, msg) end)
    ]]):format(C.cert, C.key))
    finally(function() srv:stop() end)
    local sock = assert(client.tcp(srv.port))
    assert(sock:send("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n\r\n"))
    local buf, why, partial = client.read_until(sock, "", function() return false end, 5)
    sock:close()
    assert.is_nil(buf)
    assert.are.equal("closed", why) -- the server closes once the answer is out
    local status, headers, body = client.parse_http(partial)
    assert.are.equal(400, status, partial)
    assert.truthy(partial:find("^HTTP/1%.1 400 Bad Request\r\n"))
    assert.are.equal("close", headers.connection)
    assert.are.equal("The plain HTTP request was sent to HTTPS port\n", body)
    assert.truthy(srv:wait_output(
      "error tls handshake with 127%.0%.0%.1:%d+ failed: plain HTTP request sent to a TLS port"))
  end)

  it("still leaves TLS garbage to OpenSSL, without an HTTP answer", function()
    local C = certs.make()
    local srv = server.start(([[
      listen({ tls = { cert = %q, key = %q } }, function(conn) end)
      ws.set_error_handler(function(where, msg) log("error", where, msg) end)
    ]]):format(C.cert, C.key))
    finally(function() srv:stop() end)
    local sock = assert(client.tcp(srv.port))
    -- A handshake record header with a version no TLS has, then junk.
    assert(sock:send("\22\9\9\0\5hello"))
    local buf, why, partial = client.read_until(sock, "", function() return false end, 5)
    sock:close()
    assert.is_nil(buf)
    assert.are_not.equal("timeout", why)
    assert.is_nil(partial:find("HTTP/1.1", 1, true))
    assert.truthy(srv:wait_output("error tls handshake with 127%.0%.0%.1:%d+ failed: "))
    assert.is_nil(srv:output():find("plain HTTP", 1, true))
  end)
end)
