-- The client and connection API a user of Node's ws or Python's websockets expects: the client's
-- event style and its readyState, a refused handshake's response, the server's registry of
-- connections and broadcast, conn:terminate and messages sent in fragments, routes (several
-- paths on one port) and Unix sockets. Real sockets on 127.0.0.1 (or a Unix socket in a
-- temporary directory); the peers are our client and Python's websockets, run as children.
local helper = require "helper"
local ws = require "ws"

local PEER = helper.root .. "/spec/support/client_api_peer.py"

local function peer(args, timeout)
  local argv = { helper.python, PEER }
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  return helper.spawn(argv, { timeout = timeout or 30 })
end

-- busted keeps one `finally` per test (a second replaces the first): cleanup(fn) registers
-- as many as a test needs, run in reverse order, each one even when another fails.
local cleanups
local function cleanup(fn)
  if not cleanups then
    cleanups = {}
    finally(function()
      local list = cleanups
      cleanups = nil
      for i = #list, 1, -1 do pcall(list[i]) end
    end)
  end
  cleanups[#cleanups + 1] = fn
end

-- Runs our loop until the child has ended (bounded), then returns its output.
local function finish(proc, timeout)
  local deadline = ws.now() + (timeout or 20)
  while proc:running() and ws.now() < deadline do ws.sleep(0.02) end
  local out, err = proc:output(), proc:errors()
  proc:kill()
  return out, err
end

-- Runs the loop until fn() is true (bounded); returns fn's last value.
local function loop_until(fn, timeout)
  local deadline = ws.now() + (timeout or 10)
  local v = fn()
  while not v and ws.now() < deadline do
    ws.sleep(0.005)
    v = fn()
  end
  return v
end

-- Whether a file of any kind (a socket too, which io.open cannot open) is at path.
local function present(path)
  local ok, _, code = os.execute("test -e " .. helper.shell_quote(path))
  if type(ok) == "number" then return ok == 0 end
  return ok == true and code == 0
end

local function url(srv, path) return ("ws://127.0.0.1:%d%s"):format(srv.port, path or "/") end

describe("client events", function()
  local srv
  setup(function()
    srv = assert(ws.server({ port = 0 }, {
      message = function(conn, msg, kind)
        if msg == "close me" then return conn:close(4001, "done") end
        conn:send(msg, kind)
      end,
    }))
  end)
  teardown(function() srv:close() end)

  it("goes through connecting, open, closing and closed, calling open, message and close", function()
    local events, seen = {}, {}
    local conn = ws.connect(url(srv), nil, {
      open = function(c) events[#events + 1] = "open " .. c.state c:send("hi") end,
      message = function(c, msg, kind)
        events[#events + 1] = ("message %s %s"):format(msg, kind)
        c:close(4000, "bye")
      end,
      close = function(c, code, reason) events[#events + 1] = ("close %s %q %s"):format(code, reason, c.state) end,
      error = function(_, msg) events[#events + 1] = "error " .. msg end,
    })
    assert.are.equal("connecting", conn.state) -- returned at once
    local function note() if seen[#seen] ~= conn.state then seen[#seen + 1] = conn.state end end
    note()
    ws.spawn(function()
      for _ = 1, 5000 do
        note()
        if conn.state == "closed" then return end
        ws.sleep(0)
      end
    end)
    assert(loop_until(function() return #events == 3 end))
    assert.are.same({ "connecting", "open", "closing", "closed" }, seen)
    -- the server echoes our code; it sends no reason of its own
    assert.are.same({ "open open", "message hi text", 'close 4000 "" closed' }, events)
  end)

  it("gives close the code and reason of the server's close", function()
    local got
    ws.connect(url(srv), nil, {
      open = function(c) c:send("close me") end,
      close = function(_, code, reason) got = { code, reason } end,
    })
    assert(loop_until(function() return got end))
    assert.are.same({ 4001, "done" }, got)
  end)

  it("reports a refused connection through error, then close with 1006", function()
    local port = helper.free_port() -- nothing listens there
    local events = {}
    local conn = ws.connect(("ws://127.0.0.1:%d/"):format(port), nil, {
      open = function() events[#events + 1] = "open" end,
      error = function(c, msg, code) events[#events + 1] = ("error %s %s"):format(code, msg) end,
      close = function(_, code, reason) events[#events + 1] = ("close %s %q"):format(code, reason) end,
    })
    assert.is_not_nil(conn)
    assert(loop_until(function() return #events == 2 end))
    assert.are.same({ ("error ECONNREFUSED cannot connect to ws://127.0.0.1:%d/: Connection refused"):format(port),
                      'close 1006 ""' }, events)
    assert.are.equal("closed", conn.state)
  end)

  it("closes with 1011 when a callback raises, reports the error and still calls close", function()
    local reported, closed = {}, nil
    ws.set_error_handler(function(where, msg) reported[#reported + 1] = where .. ": " .. msg end)
    cleanup(function() ws.set_error_handler(nil) end)
    local server_saw
    local srv2 = assert(ws.server({ port = 0 }, { close = function(_, code) server_saw = code end }))
    cleanup(function() srv2:close() end)
    ws.connect(url(srv2), nil, {
      open = function() error("boom in open") end,
      close = function(_, code) closed = code end,
    })
    assert(loop_until(function() return closed and server_saw end))
    assert.are.equal(1011, server_saw)
    assert.are.equal(1011, closed) -- the server echoes it
    assert.are.equal(1, #reported)
    assert.matches("^client: .*boom in open", reported[1])
  end)

  it("talks to a Python websockets server", function()
    local p = peer({ "echo" })
    cleanup(function() p:kill() end)
    local port = tonumber((p:wait_output("listening (%d+)", 10)))
    assert(port, p:errors())
    local events = {}
    local conn = ws.connect(("ws://127.0.0.1:%d/"):format(port), { protocols = "chat.v1" }, {
      open = function(c) events[#events + 1] = "open " .. c.protocol c:send("héllo") c:send("\0\1", "binary") end,
      message = function(c, msg, kind)
        events[#events + 1] = ("message %s %s"):format(kind == "text" and msg or ("%02x%02x"):format(msg:byte(1, 2)), kind)
        if kind == "binary" then c:send("close me") end
      end,
      close = function(_, code, reason) events[#events + 1] = ("close %s %s"):format(code, reason) end,
    })
    assert.are.equal("connecting", conn.state)
    assert(loop_until(function() return #events == 4 end))
    assert.are.same({ "open chat.v1", "message h\195\169llo text", "message 0001 binary",
                      "close 4001 python done" }, events)
  end)

  it("refuses callbacks it does not know, at the caller's line", function()
    local ok, err = pcall(ws.connect, url(srv), nil, { mesage = print })
    assert.is_false(ok)
    assert.are.equal("ws.connect: unknown callback 'mesage' (did you mean 'message'?)", err)
    local line = debug.getinfo(1, "l").currentline + 1
    ok, err = pcall(function() local c = ws.connect(url(srv), nil, { open = "yes" }) return c end)
    assert.are.equal(("spec/client_api_spec.lua:%d: ws.connect: callback 'open' must be a function"):format(line),
                     (err:gsub("^.*(spec/client_api_spec)", "%1")))
  end)

  it("gives a reconnecting client's on_close the close code and reason", function()
    local closes = {}
    local rc = ws.reconnecting(url(srv), {
      reconnect = { initial = 0.01, max = 0.05, attempts = 20 },
      on_close = function(_, msg, code, close_code, close_reason)
        closes[#closes + 1] = { msg, code, close_code, close_reason }
      end,
    })
    cleanup(function() rc:close() end)
    assert(rc:send("close me"))
    assert.are.same({ nil, "timeout", "timeout" }, { rc:receive(0.5) }) -- the link dropped, came back
    assert.are.same({ { "closed", "closed", 4001, "done" } }, closes)
    assert.are.equal(4001, rc.close_code)
  end)
end)

describe("a refused handshake", function()
  it("gives ws.connect the status, headers and body of the response", function()
    local srv = assert(ws.server({ port = 0, handshake = function(req)
      return false, 403, { ["X-Reason"] = "banned", ["Retry-After"] = "60" }, "go away: " .. req.path .. "\n"
    end }, function() end))
    cleanup(function() srv:close() end)
    local c, err, code, status, response = ws.connect(url(srv, "/room"))
    assert.is_nil(c)
    assert.are.equal(url(srv, "/room") .. ": server answered 403 Forbidden instead of 101", err)
    assert.are.equal("handshake", code)
    assert.are.equal(403, status)
    assert.are.equal(403, response.status)
    assert.are.equal("Forbidden", response.reason)
    assert.are.equal("banned", response.headers["x-reason"])
    assert.are.equal("60", response.headers["retry-after"])
    assert.are.equal("go away: /room\n", response.body)
    -- the event style gets the same through error
    local got
    ws.connect(url(srv, "/x"), nil, { error = function(_, msg, ecode, resp) got = { msg, ecode, resp } end })
    assert(loop_until(function() return got end))
    assert.are.equal("handshake", got[2])
    assert.are.equal("go away: /x\n", got[3].body)
  end)

  it("reads the response of a Python websockets server, repeated headers joined", function()
    local p = peer({ "refuse" })
    cleanup(function() p:kill() end)
    local port = tonumber((p:wait_output("listening (%d+)", 10)))
    assert(port, p:errors())
    local c, err, code, status, response = ws.connect(("ws://127.0.0.1:%d/"):format(port))
    assert.is_nil(c)
    assert.matches("server answered 403 Forbidden instead of 101", err, 1, true)
    assert.are.same({ "handshake", 403 }, { code, status })
    assert.are.equal("banned", response.headers["x-reason"])
    assert.are.equal("a=1, b=2", response.headers["set-cookie"])
    assert.are.equal("you are not welcome here\n", response.body)
    -- and a reconnecting client's on_error gets it too
    local seen
    local rc = ws.reconnecting(("ws://127.0.0.1:%d/"):format(port), {
      reconnect = { attempts = 1 }, on_error = function(_, _, _, resp) seen = resp end })
    assert.is_nil((rc:connect()))
    assert.are.equal(403, seen.status)
    assert.are.equal(403, rc.last_response.status)
  end)
end)

-- A raw TCP server in Python that answers every request with `reply` (then `pad` bytes "x")
-- and then keeps the connection open (keep = true) or closes it.
local function raw_refuser(reply, keep, pad)
  local p = helper.spawn({ helper.python, "-c", ([[
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 0)); s.listen(8)
print("listening", s.getsockname()[1], flush=True)
reply, keep, conns = bytes.fromhex(sys.argv[1]) + b"x" * int(sys.argv[3]), sys.argv[2] == "1", []
while True:
    c, _ = s.accept()
    data = b""
    while b"\r\n\r\n" not in data:
        data += c.recv(4096)
    c.sendall(reply)
    if keep: conns.append(c)
    else: c.close()
]]), (reply:gsub(".", function(ch) return ("%02x"):format(ch:byte()) end)), keep and "1" or "0",
    tostring(pad or 0) }, { timeout = 30 })
  local port = tonumber((p:wait_output("listening (%d+)", 10)))
  assert(port, "raw server did not start: " .. p:errors())
  return p, port
end

describe("a refused handshake's body", function()
  it("is decoded when chunked, without waiting for the connection to end", function()
    local p, port = raw_refuser("HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer\r\n" ..
      "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", true)
    cleanup(function() p:kill() end)
    local t0 = ws.now()
    local c, err, code, status, response = ws.connect(("ws://127.0.0.1:%d/"):format(port), { timeout = 5 })
    assert.is_nil(c)
    assert.matches("server answered 401 Unauthorized instead of 101", err, 1, true)
    assert.are.same({ "handshake", 401 }, { code, status })
    assert.are.equal("Bearer", response.headers["www-authenticate"])
    assert.are.equal("hello world", response.body)
    assert.is_true(ws.now() - t0 < 2)
  end)

  it("may be longer than max_header_bytes, and is kept up to 64 KiB", function()
    local body = ("0123456789"):rep(3000)
    local p, port = raw_refuser("HTTP/1.1 400 Bad Request\r\nContent-Length: " .. #body .. "\r\n\r\n" .. body, true)
    cleanup(function() p:kill() end)
    local c, _, code, status, response = ws.connect(("ws://127.0.0.1:%d/"):format(port),
      { timeout = 5, max_header_bytes = 1024 })
    assert.is_nil(c)
    assert.are.same({ "handshake", 400 }, { code, status })
    assert.are.equal(body, response.body)
    local p2, port2 = raw_refuser("HTTP/1.1 413 Payload Too Large\r\nContent-Length: 100000\r\n\r\n", true, 100000)
    cleanup(function() p2:kill() end)
    c, _, code, status, response = ws.connect(("ws://127.0.0.1:%d/"):format(port2), { timeout = 5 })
    assert.is_nil(c)
    assert.are.same({ "handshake", 413 }, { code, status })
    assert.are.equal(65536, #response.body)
  end)

  it("is read up to the end of the connection when it has no length", function()
    local p, port = raw_refuser("HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n\r\ntry later\n", false)
    cleanup(function() p:kill() end)
    local c, _, code, status, response = ws.connect(("ws://127.0.0.1:%d/"):format(port), { timeout = 5 })
    assert.is_nil(c)
    assert.are.same({ "handshake", 503, "try later\n" }, { code, status, response.body })
  end)
end)

describe("the server's connections", function()
  it("lists its clients, counts them and broadcasts to all of them (Python and ours)", function()
    local srv = assert(ws.server({ port = 0 }, function(conn)
      for _ in conn:messages() do end
    end))
    cleanup(function() srv:close() end)
    local a = assert(ws.connect(url(srv)))
    local b = assert(ws.connect(url(srv)))
    local p = peer({ "collect", url(srv), "2" })
    assert(loop_until(function() return #srv:clients() == 3 end), "three clients expected")
    assert.are.equal(3, srv:connections())
    for _, c in ipairs(srv:clients()) do assert.are.equal("open", c.state) end
    assert.are.equal(3, srv:broadcast("to everyone"))
    assert.are.equal(3, srv:broadcast("\1\2\3", "binary"))
    assert.are.same({ "to everyone", "text" }, { a:receive(5) })
    assert.are.same({ "\1\2\3", "binary" }, { a:receive(5) })
    assert.are.same({ "to everyone", "text" }, { b:receive(5) })
    assert.are.same({ "\1\2\3", "binary" }, { b:receive(5) })
    local out = finish(p)
    assert.matches("message text 11 to everyone\nmessage binary 3 010203\nclosed 1000\n", out, 1, true)
    -- all but one: the connection given as third argument
    assert(loop_until(function() return #srv:clients() == 2 end))
    assert.are.equal(1, srv:broadcast("not you", "text", srv:clients()[1]))
    local ra, rb = a:receive(0.3), b:receive(0.3)
    assert.are.equal("not you", ra or rb)
    assert.is_true(ra == nil or rb == nil)
    a:close()
    b:close()
    assert(loop_until(function() return srv:connections() == 0 end))
    assert.are.same({}, srv:clients())
    assert.are.equal(0, srv:broadcast("nobody"))
  end)

  it("does not count a connection in its handshake as a client", function()
    local srv = assert(ws.server({ port = 0 }, function() end))
    cleanup(function() srv:close() end)
    local p = helper.spawn({ helper.python, "-c", ([[
import socket, time
s = socket.create_connection(("127.0.0.1", %d)); print("connected", flush=True); time.sleep(3)]]):format(srv.port) },
      { timeout = 10 })
    cleanup(function() p:kill() end)
    assert(loop_until(function() return srv:connections() == 1 end))
    assert.are.same({}, srv:clients())
  end)
end)

describe("terminate", function()
  it("ends the connection at once, the peer sees 1006", function()
    local server_close
    local srv = assert(ws.server({ port = 0 }, {
      message = function(conn) conn:terminate() end,
      close = function(_, code) server_close = code end,
    }))
    cleanup(function() srv:close() end)
    local p = peer({ "collect", url(srv), "1" })
    local out = finish(p)
    assert.matches("protocol None\n", out, 1, true)
    assert.matches("ConnectionClosedError: no close frame received or sent", p:errors() .. out, 1, true)
    assert.are.equal(1006, server_close)
    -- and from our client's side
    local srv_side
    local srv3 = assert(ws.server({ port = 0 }, { close = function(_, code) srv_side = code end }))
    cleanup(function() srv3:close() end)
    local c3 = assert(ws.connect(url(srv3)))
    assert.is_true(c3:terminate())
    assert.are.equal("closed", c3.state)
    assert.are.equal(1006, c3.close_code)
    assert.are.same({ nil, "terminated", "closed" }, { c3:receive(1) })
    assert(loop_until(function() return srv_side end))
    assert.are.equal(1006, srv_side)
  end)
end)

describe("messages sent in fragments", function()
  it("stream a large message that arrives whole (Python, ours)", function()
    local srv = assert(ws.server({ port = 0 }, function(conn)
      conn:receive(5)
      -- 1 MiB in 64 KiB pieces, never held whole here
      local piece = ("0123456789abcdef"):rep(4096)
      for i = 1, 16 do assert(conn:send_fragment(piece, "text", i == 16)) end
      assert(conn:send("after"))
      for _ in conn:messages() do end
    end))
    cleanup(function() srv:close() end)
    local c = assert(ws.connect(url(srv)))
    assert(c:send("stream"))
    local msg, kind = c:receive(10)
    assert.are.equal("text", kind)
    assert.are.equal(16 * 65536, #msg)
    assert.are.equal(("0123456789abcdef"):rep(65536), msg)
    assert.are.equal("after", (c:receive(5)))
    c:close()
    local out = finish(peer({ "collect", url(srv), "2" }))
    assert.matches("message text 1048576 0123456789abcdef", out, 1, true)
    assert.matches("message text 5 after\nclosed 1000\n", out, 1, true)
  end)

  it("keep the framing rules of the protocol core", function()
    local results
    local srv = assert(ws.server({ port = 0 }, function(conn)
      results = {}
      assert(conn:send_fragment("abc", "binary"))
      conn:ping("between")
      assert(conn:send_fragment("defg"))
      results.busy = { conn:send("interleaved") }
      results.kind = { pcall(conn.send_fragment, conn, "x", "text") }
      assert(conn:send_fragment("hi", nil, true))
      assert(conn:send("whole"))
      conn:close()
    end))
    cleanup(function() srv:close() end)
    local out = finish(peer({ "frames", "127.0.0.1", tostring(srv.port), "/" }))
    local frames = {}
    for op, fin, n in out:gmatch("frame (%d+) (%d) (%d+)") do frames[#frames + 1] = op .. "/" .. fin .. "/" .. n end
    assert.are.same({ "2/0/3", "9/1/7", "0/0/4", "0/1/2", "1/1/5", "8/1/2" }, frames)
    assert.are.same({ nil, "a fragmented message is being sent", "busy" }, results.busy)
    assert.is_false(results.kind[1])
    assert.matches("conn:send_fragment: the message being sent is of the other kind", results.kind[2], 1, true)
  end)
end)

describe("routes", function()
  local srv
  setup(function()
    srv = assert(ws.server({ port = 0, routes = {
      ["/chat"] = { protocols = { "chat.v1" }, require_protocol = true, handler = {
        message = function(conn, msg) conn:send("chat: " .. msg) end,
      } },
      ["/echo"] = function(conn)
        for msg, kind in conn:messages() do conn:send(msg, kind) end
      end,
      ["/upper"] = { message = function(conn, msg) conn:send(msg:upper()) end },
    } }))
  end)
  teardown(function() srv:close() end)

  it("gives each path its own handler and handshake options", function()
    local out = finish(peer({ "collect", url(srv, "/chat"), "1", "chat.v1" }))
    assert.matches("protocol chat.v1\nmessage text 11 chat: hello\nclosed 1000\n", out, 1, true)
    out = finish(peer({ "collect", url(srv, "/echo?x=1"), "1" }))
    assert.matches("protocol None\nmessage text 5 hello\n", out, 1, true)
    out = finish(peer({ "collect", url(srv, "/upper"), "1" }))
    assert.matches("message text 5 HELLO\n", out, 1, true)
    -- /chat requires its subprotocol; /echo has none to offer
    out = finish(peer({ "status", url(srv, "/chat") }))
    assert.matches("refused 400\n", out, 1, true)
    out = finish(peer({ "status", url(srv, "/nowhere") }))
    assert.matches("refused 404\n", out, 1, true)
    -- our client on two routes at once
    local a = assert(ws.connect(url(srv, "/chat"), { protocols = "chat.v1" }))
    local b = assert(ws.connect(url(srv, "/echo")))
    assert(a:send("x"))
    assert(b:send("y"))
    assert.are.equal("chat: x", (a:receive(5)))
    assert.are.equal("y", (b:receive(5)))
    assert.are.equal(2, #srv:clients())
    a:close()
    b:close()
  end)

  it("refuses wrong routes at the caller's line", function()
    local function err_of(opts, handler)
      local ok, err = pcall(ws.server, opts, handler)
      assert.is_false(ok)
      return err
    end
    assert.are.equal("ws.server: route 'chat' must be a path starting with /",
      err_of({ routes = { chat = print } }))
    assert.are.equal("ws.server: route '/a': unknown option 'protocol' (did you mean 'protocols'?)",
      err_of({ routes = { ["/a"] = { handler = print, protocol = "x" } } }))
    assert.are.equal("ws.server: route '/a': unknown option 'max_message'",
      err_of({ routes = { ["/a"] = { handler = print, max_message = 5 } } }))
    assert.are.equal("ws.server: route '/a': unknown callback 'mesage' (did you mean 'message'?)",
      err_of({ routes = { ["/a"] = { mesage = print } } }))
    assert.are.equal("ws.server: routes and a handler do not go together (give the handler a route)",
      err_of({ routes = { ["/a"] = print } }, print))
    assert.are.equal("ws.server: route '/a': handler function expected",
      err_of({ routes = { ["/a"] = 5 } }))
  end)
end)

describe("a Unix socket", function()
  it("serves Python and our client, replaces a stale socket file, sets its mode and removes it", function()
    local dir = helper.tmpdir("lua-ws-unix")
    cleanup(function() helper.rmtree(dir) end)
    local path = dir .. "/app.sock"
    local function serve()
      return ws.server({ unix = path, unix_mode = "660" }, function(conn)
        for msg in conn:messages() do conn:send(msg .. " via " .. (conn.remote_addr == "" and "unix" or "tcp")) end
      end)
    end
    local srv = assert(serve())
    assert.are.equal(path, srv.unix)
    assert.is_nil(srv.port)
    local out = finish(peer({ "unix", path, "ws://app.local/x", "1" }))
    assert.matches("message text 14 hello via unix\nclosed 1000\n", out, 1, true)
    local c = assert(ws.connect("ws://app.local/x", { unix = path }))
    assert(c:send("hi"))
    assert.are.equal("hi via unix", (c:receive(5)))
    local mode = io.popen("stat -c %a " .. path):read("*l")
    assert.are.equal("660", mode)
    -- a second server on the same path: the first still listens
    local s2, err, code = ws.server({ unix = path }, function() end)
    assert.is_nil(s2)
    assert.are.equal("cannot listen on " .. path .. ": Address already in use", err)
    assert.are.equal("EADDRINUSE", code)
    c:close()
    srv:close()
    assert.is_false(present(path)) -- removed at close
    -- a socket file left by a process that ended: replaced
    assert(helper.run({ helper.python, "-c",
      "import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])", path }))
    srv = assert(serve())
    c = assert(ws.connect("ws://app.local/", { unix = path }))
    assert(c:send("again"))
    assert.are.equal("again via unix", (c:receive(5)))
    c:close()
    srv:close()
    -- any other file is left alone
    helper.write_file(path, "not a socket")
    s2, err, code = ws.server({ unix = path }, function() end)
    assert.is_nil(s2)
    assert.are.equal("EADDRINUSE", code)
    assert.are.equal("not a socket", helper.read_file(path))
  end)

  it("is shared by the workers of ws.run{ workers = K }, and removed by the master alone", function()
    local dir = helper.tmpdir("lua-ws-unix")
    cleanup(function() helper.rmtree(dir) end)
    local path, script = dir .. "/w.sock", dir .. "/w.lua"
    helper.write_file(script, [[
local ws = require "ws"
ws.server({ unix = arg[1] }, function(conn)
  for msg in conn:messages() do conn:send("worker " .. tostring(ws.worker())) end
end)
local f = assert(io.open("/proc/self/stat"))
print("master " .. f:read("*l"):match("^(%d+)")) io.stdout:flush()
f:close()
ws.run({ workers = 2 })
]])
    local p = helper.spawn_lua({ script, path }, { timeout = 60 })
    cleanup(function() p:kill() end)
    local master = p:wait_output("master (%d+)", 10)
    assert(master, p:errors())
    local seen = {}
    assert(loop_until(function()
      local c = ws.connect("ws://app.local/", { unix = path, timeout = 2 })
      if c then
        c:send("who")
        local msg = c:receive(2)
        c:close()
        if msg then seen[msg] = true end
      end
      return seen["worker 1"] or seen["worker 2"]
    end, 15), "no worker answered: " .. p:errors())
    for k in pairs(seen) do assert.matches("^worker [12]$", k) end
    assert.is_true(present(path))
    -- the workers end first (their copies of the socket leave the file), then the master
    os.execute("kill -TERM " .. master)
    assert(helper.wait_until(function() return not present(path) end, 10), "the socket file stayed")
    assert(helper.wait_until(function() return not p:running() end, 10))
  end)
end)

