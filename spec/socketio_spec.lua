-- The Socket.IO server (ws.socketio) with the official clients: Node's socket.io-client with its
-- default transports (polling, then the upgrade), WebSocket only and polling only
-- (spec/support/socketio_client.js), and long-polling at the HTTP level
-- (spec/support/socketio_polling.js), against spec/support/socketio_server.lua. The Node
-- scripts print one JSON line per check; each is asserted here, and so are the server's own
-- lines (connections and disconnect reasons).
local cjson = require "cjson"
local helper = require "helper"
local node_checks = require "support.node_checks"

local NODE_LIMIT = 120

local function have_client()
  return helper.exists(helper.root .. "/node_modules/socket.io-client/package.json")
end

local function start_server(extra)
  local port = helper.free_port()
  local argv = { "spec/support/socketio_server.lua", "--port", tostring(port) }
  for _, a in ipairs(extra or {}) do argv[#argv + 1] = a end
  local srv = helper.spawn_lua(argv, { timeout = 200 })
  assert(srv:wait_output("listening %d+", 10), "server did not start: " .. srv:errors())
  return srv, port
end

local function run_node(script, args)
  local cmd = ("timeout -k 5 %d %s %s %s 2>&1"):format(NODE_LIMIT, helper.shell_quote(helper.node),
    helper.shell_quote(script), args)
  return node_checks.run(cmd)
end

-- The check of a Node run; the run needs the Node client installed.
local function expect_in(checks, output, name)
  assert(have_client(), "node_modules/socket.io-client is missing: run npm install")
  return node_checks.expect(checks, output, name)
end

local CLIENT_CHECKS = {
  { "connect", "connects and gets its socket id" },
  { "auth-accepted", "passes the CONNECT payload to the middleware as handshake.auth (a middleware may wait)" },
  { "auth-refused", "refuses a connection from the middleware: connect_error with message and data" },
  { "events-both-ways", "carries events both ways with their arguments" },
  { "acks-from-server", "acknowledges a client's event with arguments" },
  { "acks-from-client", "waits for a client's acknowledgement inside a handler (emit_with_ack)" },
  { "server-ack-timeout-fires", "fires the server's ack timeout when the client does not answer" },
  { "client-ack-timeout-fires", "lets the client's own ack timeout fire" },
  { "binary-payloads", "carries binary payloads both ways (attachments)" },
  { "too-many-attachments-closes-that-client", "closes a client over the attachment limit and only that one" },
  { "rooms", "delivers to rooms: to(room), socket:to(room) without the sender, leave, to(socket id)" },
  { "broadcast-excludes-sender", "broadcasts to everyone but the sender (socket.broadcast and socket:broadcast())" },
  { "namespaces", "serves namespaces with their own middleware; an unknown namespace is refused" },
  { "disconnect-reasons", "disconnects: io server disconnect on the client; client namespace disconnect and transport close on the server" },
  { "reconnect-after-server-drop", "lets the client reconnect after the server drops the connection" },
}

for _, mode in ipairs({ "default", "websocket", "polling" }) do
  describe("socket.io-client (transports: " .. mode .. ")", function()
    local srv, checks, summary, output

    setup(function()
      if not have_client() then return end
      local port
      srv, port = start_server()
      checks, summary, output = run_node("spec/support/socketio_client.js",
        ("--port %d --transports %s"):format(port, mode))
    end)

    teardown(function()
      if srv then srv:kill() end
    end)

    local function expect_check(name) return expect_in(checks, output, name) end

    it("finishes every check", function()
      assert(summary, "the client run did not finish: " .. tostring(output))
      assert.equal(0, summary.failed, cjson.encode(checks))
    end)

    for _, c in ipairs(CLIENT_CHECKS) do
      it(c[2], function() expect_check(c[1]) end)
    end

    it("reports Socket.IO's disconnect reasons on the server", function()
      expect_check("disconnect-reasons")
      local log = srv:output()
      local kicked, left, cut = checks["disconnect-reasons"].detail:match("^kicked (%S+); left (%S+); cut (%S+)$")
      assert.truthy(log:find("disconnect / " .. kicked .. " server namespace disconnect", 1, true), log)
      assert.truthy(log:find("disconnect / " .. left .. " client namespace disconnect", 1, true), log)
      assert(helper.wait_until(function()
        return srv:output():find("disconnect / " .. cut .. " transport close", 1, true)
      end, 5), srv:output())
      local first = checks["reconnect-after-server-drop"].detail:match("^(%S+) %->")
      assert.truthy(log:find("disconnect / " .. first .. " forced close", 1, true), log)
      assert.truthy(log:find("disconnect / %S+ parse error"), log) -- the client over the attachment limit
    end)

    if mode == "default" then
      it("upgrades from polling to WebSocket", function()
        expect_check("connect")
        local log = srv:output()
        -- the connection is made on polling; the session moves to WebSocket after it
        assert.truthy(log:find("connection / %S+ polling"), log)
        -- the client checked its transport is websocket after the upgrade, then echoed over it
        assert.truthy(checks["connect"].detail:find("default, upgraded", 1, true), checks["connect"].detail)
      end)
    end
  end)
end

describe("Engine.IO long-polling", function()
  local srv, checks, summary, output

  setup(function()
    if not have_client() then return end
    local port
    srv, port = start_server({ "--ping-interval", "1", "--ping-timeout", "10", "--max-buffer", "1000000" })
    checks, summary, output = run_node("spec/support/socketio_polling.js", ("--port %d --clients 200"):format(port))
  end)

  teardown(function()
    if srv then srv:kill() end
  end)

  local function expect_check(name) return expect_in(checks, output, name) end

  it("finishes every check", function()
    assert(summary, "the polling run did not finish: " .. tostring(output))
    assert.equal(0, summary.failed, cjson.encode(checks))
  end)
  it("opens a session with sid, upgrades, pingInterval, pingTimeout, maxPayload", function() expect_check("handshake") end)
  it("reads requests split in small TCP chunks", function() expect_check("request-split-in-small-chunks") end)
  it("holds a poll until an event comes", function() expect_check("held-poll-answered-by-event") end)
  it("answers a held poll with the ping of the heartbeat", function() expect_check("held-poll-answered-on-ping-interval") end)
  it("answers the protocol's errors (version, transport, session, handshake method)", function() expect_check("protocol-errors") end)
  it("closes only the session that sent a malformed packet", function() expect_check("malformed-packet-closes-only-that-session") end)
  it("closes a session that polls twice at once", function() expect_check("duplicate-poll-closes-the-session") end)
  it("refuses a request over maxPayload with 413", function() expect_check("payload-too-large") end)
  it("closes a session whose client lets more than max_buffer wait", function() expect_check("unfetched-queue-is-bounded") end)
  it("serves 200 polling clients at once, every poll held without a thread", function()
    local c = expect_check("many-polling-clients")
    assert.truthy(c.detail:match("^200 clients"), c.detail)
  end)
end)

describe("examples/socketio_chat.lua", function()
  for _, mode in ipairs({ "default", "websocket" }) do
    it("keeps its contract with the Node client (transports: " .. mode .. ")", function()
      assert(have_client(), "node_modules/socket.io-client is missing: run npm install")
      local port = helper.free_port()
      local srv = helper.spawn_lua({ "examples/socketio_chat.lua", "--port", tostring(port) }, { timeout = 60 })
      local ok = srv:wait_output("socketio_chat: listening on http://127%.0%.0%.1:" .. port .. "/", 10)
      assert(ok, "the example did not start: " .. srv:errors())
      local checks, summary, output = run_node("spec/support/socketio_chat_check.js", ("--port %d --transports %s"):format(port, mode))
      srv:kill()
      assert(summary, output)
      assert(checks["chat-contract"] and checks["chat-contract"].ok, cjson.encode(checks))
    end)
  end
end)
