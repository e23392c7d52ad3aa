-- docs/client.md shows ws.tls.info(conn): `ws.tls` is the ws.tls module on the main module, so
-- the documented call works without a require of its own.
local certs = require "support.certs"
local server = require "support.ws_server"
local ws = require "ws"

local C = certs.make()

describe("ws.tls", function()
  local srv
  setup(function()
    srv = server.start(([[
      listen({ tls = { cert = %q, key = %q } }, function(conn)
        for msg in conn:messages() do conn:send(msg) end
      end)
    ]]):format(C.cert, C.key))
  end)
  teardown(function() srv:stop() end)

  it("is the ws.tls module", function()
    assert.equal(require("ws.tls"), ws.tls)
  end)

  it("answers ws.tls.info(conn) for a wss:// connection, nil for ws://", function()
    local c = assert(ws.connect("wss://127.0.0.1:" .. srv.port .. "/", { tls = { ca = C.ca }, timeout = 5 }))
    local info = ws.tls.info(c)
    assert.equal("http/1.1", info.alpn)
    assert.truthy(info.version:match("^TLSv1%.[23]$"))
    assert.equal("string", type(info.cipher))
    c:close()
    local plain = assert(ws.server({ port = 0 }, function() end))
    local p = assert(ws.connect("ws://127.0.0.1:" .. plain.port .. "/", { timeout = 5 }))
    assert.is_nil(ws.tls.info(p))
    p:close()
    plain:close()
  end)
end)
