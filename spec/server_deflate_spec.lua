-- permessage-deflate (RFC 7692) in the server and the client: the `compression` option, the
-- negotiation in the upgrade (malformed offers, declined offers, the handshake hook), sends with
-- and without compression, publish compressing once, interop with Python websockets and Node ws
-- clients in every parameter combination against both modes, lua-ws's client against Python and
-- Node servers, and a decompression bomb refused with 1009 in bounded memory.
local helper = require "helper"
local server = require "support.ws_server"
local ws = require "ws"

-- An echo server; "info?" answers with the extensions and the zlib memory of the connection,
-- "plain?" with 1000 bytes sent uncompressed, "sub" subscribes to "t" and "pub" publishes the
-- last message reversed (prefixed with "P") to "t". Each ended connection logs how it ended and
-- the memory its deflate state holds once closed.
local ECHO = [[
  local srv
  srv = listen({ compression = %s, max_message = %s }, function(conn)
    local last = ""
    for msg, kind in conn:messages() do
      if msg == "info?" then
        conn:send(tostring(conn.extensions) .. "|" .. conn.deflate_memory)
      elseif msg == "plain?" then
        conn:send(("x"):rep(1000), "text", { compress = false })
      elseif msg == "sub" then
        conn:subscribe("t")
        conn:send("ok")
      elseif msg == "pub" then
        srv:publish("t", "P" .. last:reverse())
      else
        last = msg
        conn:send(msg, kind)
      end
    end
    local _, err, code = conn:receive()
    conn:close()
    log("ended", err, code, "released", conn.deflate_memory)
  end)
  log("rss", rss_kib())
  ws.spawn(function()
    while true do ws.sleep(0.2) log("rss", rss_kib()) end
  end)
]]

local function echo_server(compression, max_message)
  return server.start(ECHO:format(compression, max_message or "nil"))
end

local function url(srv) return ("ws://127.0.0.1:%d/"):format(srv.port) end

local function run_python(args, timeout)
  local argv = { helper.python }
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  local ok, code, out, err = helper.run(argv, { timeout = timeout or 120 })
  assert(ok, ("exit %s\n%s\n%s"):format(code, out, err))
  return out
end

local function run_node(args)
  local argv = { helper.node }
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  local ok, code, out, err = helper.run(argv, { timeout = 180, env = { NODE_PATH = helper.node_path } })
  assert(ok, ("exit %s\n%s\n%s"):format(code, out, err))
  return out
end

-- Checks the lines of deflate_client.py / deflate_client.js: 64 combinations, each negotiated
-- with the mode's rules, the context kept exactly when the mode and the offer allow it.
local function check_grid(out, mode)
  local n = 0
  for line in out:gmatch("[^\n]+") do
    assert.is_nil(line:match("^fail"), line)
    local snct, cnct, resp, a, b = line:match("^ok snct=(%d) cnct=(%d) smwb=%S+ cmwb=%S+ resp=(.-) sizes=(%d+),(%d+)")
    assert(snct, "unexpected line: " .. line)
    n = n + 1
    a, b = tonumber(a), tonumber(b)
    local takeover = mode == "dedicated" and snct == "0"
    assert.is_truthy(resp:match("^permessage%-deflate"), line)
    assert.equal(not takeover, resp:find("server_no_context_takeover", 1, true) ~= nil, line)
    assert.equal(mode == "shared" or cnct == "1", resp:find("client_no_context_takeover", 1, true) ~= nil, line)
    if takeover then
      assert.is_true(b < a, line) -- the second copy refers back to the first (as far as the window reaches)
    else
      assert.equal(a, b, line)
    end
    local small = line:match(" small=(%d)")
    if small then assert.equal("0", small, line) end -- under the 64-byte threshold
  end
  assert.equal(64, n)
end

describe("permessage-deflate", function()
  describe("options", function()
    it("checks the compression option", function()
      assert.has_error(function() ws.server({ compression = "gzip" }, function() end) end,
        'ws.server: compression must be "off", "shared" or "dedicated"')
      assert.has_error(function() ws.server({ compression = { window_bits = 7 } }, function() end) end,
        "ws.server: compression.window_bits must be an integer from 8 to 15")
      assert.has_error(function() ws.server({ compression = { mode = "shared", mem_level = 10 } }, function() end) end,
        "ws.server: compression.mem_level must be an integer from 1 to 9")
      assert.has_error(function() ws.server({ compression = { threshold = -1 } }, function() end) end,
        "ws.server: compression.threshold must be a non-negative integer")
      assert.has_error(function() ws.server({ compression = { level = 10 } }, function() end) end,
        "ws.server: compression.level must be an integer from 0 to 9")
      assert.has_error(function() ws.connect("ws://127.0.0.1:1/", { compression = { level = 1.5 } }) end,
        "ws.connect: compression.level must be an integer from 0 to 9")
      assert.has_error(function() ws.connect("ws://127.0.0.1:1/", { compression = 3 }) end,
        'ws.connect: option \'compression\' must be "off", "shared", "dedicated" or a table')
    end)
  end)

  describe("compression level", function()
    local fast, stored
    setup(function()
      fast = echo_server('{ mode = "dedicated", level = 1 }')
      stored = echo_server('{ mode = "shared", level = 0 }')
    end)
    teardown(function() fast:stop() stored:stop() end)

    it("trades size for speed as asked, and each level interoperates with Python websockets", function()
      local msg = ('{"type":"message","user":"ann","text":"hello, level test"}'):rep(40)
      for _, srv in ipairs({ fast, stored }) do
        local c = assert(ws.connect(url(srv), { compression = "dedicated" }))
        assert(c:send(msg))
        assert.equal(msg, (c:receive(5)))
        c:close()
        local out = run_python({ helper.root .. "/spec/support/deflate_client.py", url(srv), "plain" }, 30)
        assert.matches("plain rsv1=0 echo rsv1=1", out, 1, true)
      end
      -- level 0 sends stored blocks: a compressed echo is no smaller than the message
      local codec = require "ws.codec"
      local params = { server_no_context_takeover = true, client_no_context_takeover = true }
      local l0 = codec.deflater(params, { level = 0 }, "server"):compress(msg)
      local l1 = codec.deflater(params, { level = 1 }, "server"):compress(msg)
      local l9 = codec.deflater(params, { level = 9 }, "server"):compress(msg)
      assert.is_true(#l0 >= #msg, #l0)
      assert.is_true(#l1 < #msg / 4, #l1)
      assert.is_true(#l9 <= #l1, #l9 .. " " .. #l1)
      local inflater = codec.deflater(params, {}, "client")
      for _, c in ipairs({ l0, l1, l9 }) do assert.equal(msg, (inflater:inflate(c))) end
    end)
  end)

  for _, mode in ipairs({ "dedicated", "shared" }) do
    describe(mode .. " mode", function()
      local srv
      setup(function() srv = echo_server(("%q"):format(mode)) end)
      teardown(function() srv:stop() end)

      it("negotiates with lua-ws's client and echoes compressed messages", function()
        local c = assert(ws.connect(url(srv), { compression = "dedicated" }))
        assert.is_truthy(c.extensions:match("^permessage%-deflate"))
        assert.equal(mode == "shared", c.extensions:find("server_no_context_takeover", 1, true) ~= nil)
        local msg = ('{"type":"message","text":"hello"}'):rep(60)
        for _ = 1, 5 do
          assert(c:send(msg))
          assert.equal(msg, (c:receive(5)))
        end
        assert(c:send(("\0\1\2\255"):rep(20000), "binary"))
        assert.same({ ("\0\1\2\255"):rep(20000), "binary" }, { c:receive(5) })
        assert(c:send("info?"))
        local ext, mem = assert(c:receive(5)):match("^(.*)|(%d+)$")
        assert.equal(c.extensions, ext)
        if mode == "shared" then
          assert.is_true(tonumber(mem) < 1024, mem) -- no zlib stream between messages
        else
          assert.is_true(tonumber(mem) > 40000 and tonumber(mem) < 80000, mem) -- window 13, memLevel 4
        end
        if mode == "shared" then assert.is_true(c.deflate_memory < 1024) end
        c:close()
        assert.equal(0, c.deflate_memory) -- released with the connection
        assert.is_truthy(srv:wait_output("ended closed closed released 0", 5))
      end)

      it("sends with compress = false uncompressed, and compresses the rest", function()
        local out = run_python({ helper.root .. "/spec/support/deflate_client.py", url(srv), "plain" }, 30)
        assert.matches("plain rsv1=0 echo rsv1=1", out, 1, true)
      end)

      it("interoperates with Python websockets clients in every parameter combination", function()
        check_grid(run_python({ helper.root .. "/spec/support/deflate_client.py", url(srv) }), mode)
      end)

      it("interoperates with Node ws clients in every parameter combination", function()
        check_grid(run_node({ helper.root .. "/spec/support/deflate_client.js", url(srv) }), mode)
      end)

      it("compresses a publish once per window size and keeps each subscriber's context right", function()
        local out = run_python({ helper.root .. "/spec/support/deflate_client.py", url(srv), "publish" }, 30)
        local subs = {}
        for name, rsv1, len, hash, echo in out:gmatch("sub (%w+) rsv1=(%d) len=(%d+) hash=(%d+) echo=(%-?%d+)") do
          subs[name] = { rsv1 = rsv1, len = tonumber(len), hash = hash, echo = tonumber(echo) }
        end
        assert.same({ "1", "1", "1", "0" }, { subs.a.rsv1, subs.b.rsv1, subs.w10.rsv1, subs.plain.rsv1 })
        assert.equal(subs.a.hash, subs.b.hash)      -- one compressed frame for both
        assert.not_equal(subs.a.hash, subs.w10.hash) -- a 10-bit window gets its own
        assert.is_true(subs.a.len < 400, out)        -- about 1.9 KB of JSON
        -- After the publish each subscriber's own compressor restarts, so the echo still
        -- inflates right (deflate_client.py checks it) and is compressed afresh.
        assert.is_true(subs.a.echo > 100, out)
      end)

      it("refuses a malformed Sec-WebSocket-Extensions with 400 and declines a bad offer", function()
        local c, err, code, status = ws.connect(url(srv), {
          headers = { ["Sec-WebSocket-Extensions"] = 'permessage-deflate; x="open' } })
        assert.is_nil(c)
        assert.equal("handshake", code, err)
        assert.equal(400, status)
        assert.matches("server answered 400 Bad Request instead of 101", err, 1, true)
        c = assert(ws.connect(url(srv), {
          headers = { ["Sec-WebSocket-Extensions"] = "permessage-deflate; server_max_window_bits=7, x-other" } }))
        assert.is_nil(c.extensions)
        assert.is_nil(c.response.headers["sec-websocket-extensions"])
        assert(c:send("hello"))
        assert.equal("hello", (c:receive(5)))
        c:close()
      end)
    end)
  end

  it("is served by examples/echo.lua --deflate", function()
    for _, flag in ipairs({ "--deflate", "--deflate=shared" }) do
      local echo = helper.spawn_lua({ helper.root .. "/examples/echo.lua", "--port", tostring(helper.free_port()), flag },
        { timeout = 60 })
      local port = echo:wait_output("listening on ws://127%.0%.0%.1:(%d+)/", 10)
      assert(port, "echo did not start: " .. echo:errors())
      local c = assert(ws.connect(("ws://127.0.0.1:%s/"):format(port), { compression = "dedicated" }))
      assert.is_truthy(c.extensions:match("^permessage%-deflate"))
      assert.equal(flag == "--deflate=shared", c.extensions:find("server_no_context_takeover", 1, true) ~= nil)
      local msg = ("echo, echo, echo "):rep(100)
      assert(c:send(msg))
      assert.equal(msg, (c:receive(5)))
      c:close()
      echo:kill()
    end
  end)

  it("is off by default: an offer gets no extension", function()
    local srv = echo_server("nil")
    local c = assert(ws.connect(url(srv), { compression = "shared" }))
    assert.is_nil(c.extensions)
    assert(c:send(("abc"):rep(100)))
    assert.equal(("abc"):rep(100), (c:receive(5)))
    c:close()
    srv:stop()
  end)

  it("lets the handshake hook decline it, and keeps the 101's extensions its own", function()
    local srv = server.start([[
      listen({ compression = "shared", handshake = function(req)
        if req.path == "/plain" then return true, { compression = false } end
        if req.path == "/clash" then return true, { headers = { ["Sec-WebSocket-Extensions"] = "x" } } end
        return true
      end }, function(conn)
        for msg in conn:messages() do conn:send(msg) end
      end)
    ]])
    local base = url(srv)
    local c = assert(ws.connect(base .. "plain", { compression = "dedicated" }))
    assert.is_nil(c.extensions)
    c:close()
    c = assert(ws.connect(base .. "deflate", { compression = "dedicated" }))
    assert.is_truthy(c.extensions)
    c:close()
    local _, err, code, status = ws.connect(base .. "clash", { compression = "dedicated" })
    assert.equal("handshake", code)
    assert.equal(500, status, err)
    assert.is_truthy(srv:wait_output("Sec%-WebSocket%-Extensions is set by the compression option", 5)
      or srv:errors():match("Sec%-WebSocket%-Extensions is set by the compression option"))
    srv:stop()
  end)

  it("refuses a decompression bomb with 1009 before using the memory", function()
    local srv = echo_server('"dedicated"', 1048576)
    -- Warm up: one ordinary compressed conversation, so the baseline includes zlib's buffers.
    local c = assert(ws.connect(url(srv), { compression = "dedicated" }))
    assert(c:send(("warm up "):rep(1000)))
    assert(c:receive(5))
    c:close()
    local before = srv:rss_kib()
    -- 1 MiB on the wire that inflates to 1 GiB, in 64 KiB fragments.
    local out = run_python({ helper.root .. "/spec/support/deflate_bomb.py", tostring(srv.port), "1024" }, 60)
    assert.matches("close 1009 message over max_message", out, 1, true)
    assert.is_truthy(srv:wait_output("ended message over max_message toolarge released 0", 5))
    local after = srv:rss_kib()
    assert.is_true(after - before < 8 * 1024, ("RSS grew from %d to %d KiB"):format(before, after))
    -- The server goes on serving.
    c = assert(ws.connect(url(srv), { compression = "dedicated" }))
    assert(c:send("still here"))
    assert.equal("still here", (c:receive(5)))
    c:close()
    srv:stop()
  end)

  it("is negotiated and used by Chromium on the chat server (compression = \"shared\")", function()
    local chat = helper.spawn_lua({ helper.root .. "/examples/chat.lua", "--port", "0" }, { timeout = 90 })
    local base = chat:wait_output("listening on (http://127%.0%.0%.1:%d+)/", 10)
    assert(base, "chat did not start: " .. chat:errors())
    local ok, code, out, err = helper.run({ helper.node, helper.root .. "/spec/support/browser/deflate_e2e.js", base },
      { timeout = 80, env = { NODE_PATH = helper.node_path } })
    chat:kill()
    assert.is_true(ok, ("exit %s\n%s\n%s"):format(code, out, err))
    local cjson = require "cjson"
    local r = cjson.decode(out:match("[^\n]+"))
    assert.is_true(r.ok, out)
    -- The page's WebSocket.extensions is the 101's Sec-WebSocket-Extensions as Chromium took it.
    assert.equal("permessage-deflate; server_no_context_takeover; client_no_context_takeover; " ..
      "server_max_window_bits=13; client_max_window_bits=13", r.extensions)
    assert.is_true(r.echoed) -- sent compressed by the page, published compressed to the room
  end)

  describe("lua-ws's client", function()
    local function exercise(target, opts)
      local c = assert(ws.connect(target, opts))
      assert.is_truthy(c.extensions and c.extensions:match("^permessage%-deflate"), tostring(c.extensions))
      local msg = ('{"type":"message","text":"hello"}'):rep(60)
      for _ = 1, 4 do
        assert(c:send(msg))
        assert.equal(msg, (c:receive(5)))
      end
      local bin = ("\0\1\2\3"):rep(50000)
      assert(c:send(bin, "binary"))
      assert.same({ bin, "binary" }, { c:receive(5) })
      assert(c:send("short"))
      assert.equal("short", (c:receive(5)))
      return c
    end

    for _, case in ipairs({ { 0, 0, 0 }, { 10, 10, 0 }, { 0, 0, 1 }, { 9, 12, 1 } }) do
      local label = ("smwb=%d cmwb=%d no_context_takeover=%d"):format(case[1], case[2], case[3])
      it("interoperates with a Python websockets server, " .. label, function()
        local p = helper.spawn({ helper.python, helper.root .. "/spec/support/deflate_server.py",
          tostring(case[1]), tostring(case[2]), tostring(case[3]) }, { timeout = 60 })
        local port = tonumber((p:wait_output("listening (%d+)", 10)))
        assert(port, "python server did not start: " .. p:errors())
        for _, mode in ipairs({ "dedicated", "shared" }) do
          local c = exercise(("ws://127.0.0.1:%d/"):format(port), { compression = mode })
          assert(c:send("compressed?"))
          assert.is_true(tonumber((c:receive(5))) >= 5) -- the JSON and the binary went compressed
          c:close()
        end
        p:kill()
      end)
    end

    it("interoperates with a Node ws server", function()
      local p = helper.spawn({ helper.node, "-e", [[
        const { WebSocketServer } = require('ws');
        const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, maxPayload: 1 << 24,
          perMessageDeflate: { threshold: 0, serverMaxWindowBits: 11, clientMaxWindowBits: 10 } });
        wss.on('listening', () => console.log('listening ' + wss.address().port));
        wss.on('connection', (ws) => ws.on('message', (m, bin) => ws.send(m, { binary: bin })));
      ]] }, { timeout = 60, env = { NODE_PATH = helper.node_path } })
      local port = tonumber((p:wait_output("listening (%d+)", 10)))
      assert(port, "node server did not start: " .. p:errors())
      for _, mode in ipairs({ "dedicated", "shared" }) do
        local c = exercise(("ws://127.0.0.1:%d/"):format(port), { compression = mode })
        assert.matches("server_max_window_bits=11", c.extensions, 1, true)
        assert.matches("client_max_window_bits=10", c.extensions, 1, true)
        c:close()
      end
      p:kill()
    end)

    it("fails the handshake on an answer that does not fit its offer", function()
      local p = helper.spawn({ helper.python, "-c", [[
import base64, hashlib, socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 0)); s.listen(8)
print("listening", s.getsockname()[1], flush=True)
while True:
    c, _ = s.accept()
    data = b""
    while b"\r\n\r\n" not in data:
        data += c.recv(4096)
    key = [l.split(b":", 1)[1].strip() for l in data.split(b"\r\n") if l.lower().startswith(b"sec-websocket-key:")][0]
    accept = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
    c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              b"Sec-WebSocket-Accept: " + accept + b"\r\n"
              b"Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=16\r\n\r\n")
]] }, { timeout = 30 })
      local port = tonumber((p:wait_output("listening (%d+)", 10)))
      assert(port, "raw server did not start: " .. p:errors())
      local c, err, code = ws.connect(("ws://127.0.0.1:%d/"):format(port), { compression = "dedicated" })
      assert.is_nil(c)
      assert.equal("handshake", code)
      assert.matches("bad handshake response: server_max_window_bits must be 8..15", err, 1, true)
      c, err, code = ws.connect(("ws://127.0.0.1:%d/"):format(port))
      assert.is_nil(c)
      assert.matches("bad handshake response: extension not offered", err, 1, true)
      p:kill()
    end)
  end)
end)
