-- A refused TLS handshake (here: no client certificate with verify_peer) closed the socket at
-- once. A TLS 1.3 client sends its last handshake records and its request before it learns of
-- the refusal; whatever of that arrived after the close was answered with a reset, so the
-- client's next write failed (ECONNRESET, EPIPE) instead of it reading the server's alert. The
-- server now half-closes and drains until the client's FIN.
local helper = require "helper"
local certs = require "support.certs"
local server = require "support.ws_server"

describe("a refused TLS handshake", function()
  it("lets a late client write its request and read the alert", function()
    local C = certs.make()
    local srv = server.start(([[
      listen({ tls = { cert = %q, key = %q, ca = %q, verify_peer = true } }, function(conn)
        for msg in conn:messages() do conn:send(msg) end
      end)
      ws.set_error_handler(function(where, msg) log("error", where, msg) end)
    ]]):format(C.cert, C.key, C.ca))
    finally(function() srv:stop() end)
    local ok, code, out, err = helper.run({ helper.python, helper.root .. "/spec/support/tls_late_flight.py",
      tostring(srv.port), C.ca }, { timeout = 30 })
    assert(ok, tostring(code) .. " " .. tostring(out) .. tostring(err))
    assert.are.equal("request written\nalert: TLSV13_ALERT_CERTIFICATE_REQUIRED\n", out)
    assert.truthy(srv:wait_output("error tls handshake with 127%.0%.0%.1:%d+ failed: peer did not return a certificate"))
  end)
end)
