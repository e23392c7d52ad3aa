-- wss://: the server's TLS (certificates, SNI, ALPN, client certificates, reload without
-- dropping connections, failed handshakes logged and harmless) against our client, Python
-- websockets and Node ws. Certificates are made for the run by spec/support/certs.lua.
local helper = require "helper"
local certs = require "support.certs"
local server = require "support.ws_server"
local ws = require "ws"
local tls = require "ws.tls"

local C = certs.make()

-- A child server speaking TLS; "reload" makes it switch to the second certificate.
local function tls_server(extra)
  return server.start(([[
    local srv
    srv = listen({ tls = %s, open_timeout = 1 }, function(conn)
      for msg, kind in conn:messages() do
        if msg == "reload" then
          assert(srv:reload_tls({ cert = %q, key = %q }))
          conn:send("reloaded")
        else
          conn:send(msg, kind)
        end
      end
    end)
    ws.set_error_handler(function(where, msg) log("error", where, msg) end)
  ]]):format(extra or ("{ cert = %q, key = %q }"):format(C.cert, C.key), C.cert2, C.key2))
end

local function wss(port, tls_opts, opts)
  opts = opts or {}
  opts.tls = tls_opts or { ca = C.ca }
  opts.timeout = opts.timeout or 5
  return ws.connect("wss://127.0.0.1:" .. port .. "/", opts)
end

local function echo(conn, msg, kind)
  assert(conn:send(msg, kind))
  return conn:receive(5)
end

describe("tls server", function()
  local srv
  before_each(function() srv = tls_server() end)
  after_each(function() srv:stop() end)

  it("echoes messages of many sizes to our wss client, with ALPN http/1.1", function()
    local c = assert(wss(srv.port))
    assert.are.equal("open", c.state)
    for _, n in ipairs({ 0, 1, 125, 126, 65535, 65536, 200000, 1000000 }) do
      local m, kind = echo(c, ("x"):rep(n), "binary")
      assert.are.equal("binary", kind)
      assert.are.equal(n, #m)
    end
    local info = tls.info(c)
    assert.are.equal("http/1.1", info.alpn)
    assert.truthy(info.version:match("^TLSv1%.[23]$"))
    c:close()
    assert.are.equal("closed", c.state)
  end)

  it("serves Python websockets over wss with the test CA", function()
    local ok, code, out, err = helper.run({ helper.python, "-c", ([[
import asyncio, ssl, websockets
ctx = ssl.create_default_context(cafile=%q)
async def main():
    async with websockets.connect("wss://127.0.0.1:%d/", ssl=ctx) as w:
        for m in ["hello", "x" * 70000, b"\x00\x01\xff" * 1000]:
            await w.send(m)
            r = await w.recv()
            assert r == m, "mismatch"
        print("python ok", w.transport.get_extra_info("ssl_object").selected_alpn_protocol())
asyncio.run(main())
]]):format(C.ca, srv.port) }, { timeout = 20 })
    assert(ok, tostring(code) .. " " .. tostring(err))
    assert.are.equal("python ok None\n", out) -- websockets offers no ALPN; none is forced on it
  end)

  it("serves Node ws over wss with the test CA", function()
    local ok, code, out, err = helper.run({ helper.node, "-e", ([[
const WebSocket = require("ws"), fs = require("fs");
const w = new WebSocket("wss://127.0.0.1:%d/", { ca: fs.readFileSync(%q) });
const sent = ["hello", "y".repeat(70000)]; let i = 0;
w.on("open", () => w.send(sent[0]));
w.on("message", (m) => {
  if (m.toString() !== sent[i]) { console.log("mismatch"); process.exit(1); }
  if (++i === sent.length) { console.log("node ok"); w.close(); } else w.send(sent[i]);
});
w.on("error", (e) => { console.log("error " + e.message); process.exit(1); });
]]):format(srv.port, C.ca) }, { timeout = 20, env = { NODE_PATH = helper.node_path } })
    assert(ok, tostring(code) .. " " .. tostring(out) .. tostring(err))
    assert.are.equal("node ok\n", out)
  end)

  it("refuses a client with the wrong CA with a clear message, logs it and keeps serving", function()
    local c, err, code = wss(srv.port, { ca = C.ca2 })
    assert.is_nil(c)
    assert.are.equal("tls", code)
    assert.are.equal(("wss://127.0.0.1:%d/: tls: certificate verify failed: unable to get local issuer certificate")
      :format(srv.port), err)
    assert.truthy(srv:wait_output("error tls handshake with 127%.0%.0%.1:%d+ failed: tlsv1 alert unknown ca"))
    local good = assert(wss(srv.port))
    assert.are.equal("still here", (echo(good, "still here")))
    good:close()
  end)

  it("names a hostname mismatch", function()
    local c, err, code = wss(srv.port, { ca = C.ca, server_name = "other.test" })
    assert.is_nil(c)
    assert.are.equal("tls", code)
    assert.truthy(err:find("tls: certificate verify failed: hostname mismatch", 1, true), err)
  end)

  it("answers a plain HTTP request on the TLS port with 400 and logs it", function()
    local c, err, code = ws.connect("ws://127.0.0.1:" .. srv.port .. "/", { timeout = 5 })
    assert.is_nil(c)
    assert.are.equal("handshake", code)
    assert.truthy(err:find("server answered 400 Bad Request instead of 101", 1, true), err)
    assert.truthy(srv:wait_output("error tls handshake with [%d.]+:%d+ failed: plain HTTP request sent to a TLS port"))
  end)

  it("counts the TLS handshake against open_timeout", function()
    local ok, _, out = helper.run({ helper.python, "-c", ([[
import socket, time
s = socket.create_connection(("127.0.0.1", %d)); t = time.time()
s.settimeout(5); d = s.recv(10)
print("closed after %%.1f" %% (time.time() - t), repr(d))
]]):format(srv.port) }, { timeout = 10 })
    assert(ok)
    local after = tonumber(out:match("closed after ([%d.]+)"))
    assert.truthy(after and after >= 0.8 and after < 3, out)
  end)

  it("reloads certificates: open connections keep working, new ones see the new certificate", function()
    local old = assert(wss(srv.port))
    assert.are.equal("reloaded", (echo(old, "reload")))
    local c, err = wss(srv.port, { ca = C.ca }) -- the new certificate is from the second CA
    assert.is_nil(c)
    assert.truthy(err:find("unable to get local issuer certificate", 1, true), err)
    local new = assert(wss(srv.port, { ca = C.ca2 }))
    assert.are.equal("new", (echo(new, "new")))
    assert.are.equal("old still works", (echo(old, "old still works")))
    new:close()
    old:close()
  end)
end)

describe("tls server options", function()
  it("serves other names by SNI", function()
    local srv = tls_server(("{ cert = %q, key = %q, sni = { ['other.test'] = { cert = %q, key = %q } } }")
      :format(C.cert, C.key, C.other_cert, C.other_key))
    local a = assert(wss(srv.port, { ca = C.ca, server_name = "other.test" }))
    assert.are.equal("sni", (echo(a, "sni")))
    local b = assert(wss(srv.port, { ca = C.ca })) -- no SNI for an IP address: the default certificate
    assert.are.equal("default", (echo(b, "default")))
    a:close()
    b:close()
    srv:stop()
  end)

  it("requires a client certificate with verify_peer", function()
    local srv = tls_server(("{ cert = %q, key = %q, ca = %q, verify_peer = true }"):format(C.cert, C.key, C.ca))
    local c, err, code = wss(srv.port, { ca = C.ca })
    -- TLS 1.3: the client learns of the refusal with its first read at the latest.
    if c then
      local m, rerr = c:receive(5)
      assert.is_nil(m)
      err, code = rerr, "tls"
    end
    assert.are.equal("tls", code)
    assert.truthy(err:find("certificate required", 1, true) or err:find("handshake failure", 1, true), err)
    local good = assert(wss(srv.port, { ca = C.ca, cert = C.client_cert, key = C.client_key }))
    assert.are.equal("with cert", (echo(good, "with cert")))
    good:close()
    srv:stop()
  end)

  it("reports a certificate that cannot be loaded", function()
    local s, err, code = ws.server({ port = 0, tls = { cert = C.dir .. "/missing.crt", key = C.key } }, function() end)
    assert.is_nil(s)
    assert.are.equal("tls", code)
    assert.truthy(err:find("^tls: cannot load certificate " .. C.dir:gsub("%p", "%%%0") .. "/missing%.crt"), err)
    s, err = ws.server({ port = 0, tls = { cert = C.cert, key = C.key2 } }, function() end)
    assert.is_nil(s)
    assert.truthy(err:find("key values mismatch", 1, true) or err:find("does not match", 1, true), err)
  end)

  it("serves the echo example over wss with --tls-cert and --tls-key", function()
    local port = helper.free_port()
    local p = helper.spawn_lua({ helper.root .. "/examples/echo.lua", "--port", tostring(port),
                                 "--tls-cert", C.cert, "--tls-key", C.key }, { timeout = 30 })
    assert.truthy(p:wait_output("echo: listening on wss://127%.0%.0%.1:" .. port .. "/"))
    local c = assert(wss(port))
    assert.are.equal("example", (echo(c, "example")))
    c:close()
    p:kill()
  end)
end)

describe("tls client", function()
  local function peer(argv, env)
    local p = helper.spawn(argv, { timeout = 30, env = env })
    local port = tonumber((p:wait_output("listening (%d+)", 10)))
    assert(port, "peer did not start: " .. p:errors())
    return p, port
  end

  it("talks to a Python websockets wss server", function()
    local p, port = peer({ helper.python, "-c", ([[
import asyncio, ssl, websockets
async def echo(w, path=None):
    async for m in w:
        await w.send(m)
async def main():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(%q, %q)
    async with websockets.serve(echo, "127.0.0.1", 0, ssl=ctx) as s:
        print("listening", s.sockets[0].getsockname()[1], flush=True)
        await asyncio.sleep(25)
asyncio.run(main())
]]):format(C.cert, C.key) })
    local c = assert(wss(port))
    assert.are.same({ "from lua", "text" }, { echo(c, "from lua") })
    assert.are.same({ ("b"):rep(100000), "binary" }, { echo(c, ("b"):rep(100000), "binary") })
    c:close()
    assert.are.equal(1000, c.close_code)
    p:kill()
  end)

  it("talks to a Node ws wss server", function()
    local p, port = peer({ helper.node, "-e", ([[
const https = require("https"), fs = require("fs"), { WebSocketServer } = require("ws");
const s = https.createServer({ cert: fs.readFileSync(%q), key: fs.readFileSync(%q) });
new WebSocketServer({ server: s }).on("connection", (w) => w.on("message", (m, bin) => w.send(m, { binary: bin })));
s.listen(0, "127.0.0.1", () => console.log("listening", s.address().port));
setTimeout(() => process.exit(0), 25000);
]]):format(C.cert, C.key) }, { NODE_PATH = helper.node_path })
    local c = assert(wss(port))
    assert.are.same({ "from lua", "text" }, { echo(c, "from lua") })
    assert.are.same({ ("n"):rep(300000), "binary" }, { echo(c, ("n"):rep(300000), "binary") })
    assert.are.equal("http/1.1", tls.info(c).alpn)
    c:close()
    p:kill()
  end)
end)
