-- Metrics: the runtime's counters through ws.metrics(), server:metrics() and the GET /metrics
-- handler, read back with prometheus_client's own parser (Python) after traffic from our test
-- client and from Python's websockets: connections, refusals by status, messages and bytes,
-- closes by code, drops for a slow subscriber, topics and subscriptions, send-queue bytes, ping
-- timeouts, and families added by a provider.
local helper = require "helper"
local server = require "support.ws_server"
local client = require "support.ws_client"

local scrape = require "support.metrics_scrape"

describe("metrics", function()
  local srv
  setup(function()
    srv = server.start([[
      ws.metrics_providers[#ws.metrics_providers + 1] = function(server)
        return { { name = "app_rooms", type = "gauge", help = "Rooms of the test application.",
                   samples = { { value = 3, labels = { kind = "public" } } } } }
      end
      local main
      main = listen({ path = "/ws", origins = { "http://good.example" }, send_high_water = 64 * 1024,
                      max_backlog = 16 * 1024, ping_interval = 0, http = ws.metrics_handler({
          fallback = function(req)
            if req.path == "/server" then return 200, { ["Content-Type"] = "text/plain" }, main:metrics() end
            return 404, nil, "no\n"
          end }) },
        function(conn)
          for msg in conn:messages() do
            if msg == "sub" then
              conn:subscribe("room")
              conn:send("subscribed")
            elseif msg:match("^flood") then
              local n = 0
              for i = 1, 2000 do n = n + main:publish("room", string.rep("x", 16 * 1024)) end
              conn:send("flooded " .. n)
            else
              conn:send(msg)
            end
          end
        end)
      local other = listen({ path = "/other", ping_interval = 0.2, ping_timeout = 0.3 }, function(conn)
        for msg in conn:messages() do conn:send(msg) end
      end)
      log("other " .. other.port)
    ]])
  end)
  teardown(function() srv:stop() end)

  it("counts our client's and Python's traffic and refusals, read by prometheus_client's parser", function()
    local before = scrape(srv.port)
    assert.are.equal("text/plain; version=0.0.4; charset=utf-8", before.content_type)
    for name, typ in pairs({ ws_connections = "gauge", ws_connections_accepted = "counter",
        ws_messages_received = "counter", ws_messages_sent = "counter", ws_bytes_received = "counter",
        ws_bytes_sent = "counter", ws_closes = "counter", ws_handshakes_refused = "counter",
        ws_messages_dropped = "counter", ws_ping_timeouts = "counter", ws_send_queue_bytes = "gauge",
        ws_topics = "gauge", ws_subscriptions = "gauge", ws_tls_handshake_failures = "counter",
        app_rooms = "gauge" }) do
      assert.are.equal(typ, before.families[name], name)
    end
    assert.are.equal(0, before.samples.ws_connections)
    assert.are.equal(3, before.samples["app_rooms{kind=public}"])

    -- Our client: three messages, a clean close.
    local c = assert(client.connect(srv.port, { path = "/ws" }))
    for _, m in ipairs({ "a", "bb", "ccc" }) do
      assert(c:send(m))
      local _, got = c:message()
      assert.are.equal(m, got)
    end
    local open = scrape(srv.port)
    assert.are.equal(1, open.samples.ws_connections)
    assert.are.equal(1, open.samples.ws_connections_accepted_total)
    assert.are.equal(3, open.samples.ws_messages_received_total)
    assert.are.equal(6, open.samples.ws_bytes_received_total)
    assert.are.equal(3, open.samples.ws_messages_sent_total)
    assert.are.equal(6, open.samples.ws_bytes_sent_total)
    assert.are.equal(1000, c:close(1000, "bye"))

    -- Refusals: a wrong path (404), a foreign origin (403), a malformed upgrade (400).
    assert.is_nil((client.connect(srv.port, { path = "/nope" })))
    assert.is_nil((client.connect(srv.port, { path = "/ws", origin = "http://evil.example" })))
    local status = client.http(srv.port, "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" ..
      "Sec-WebSocket-Version: 13\r\n\r\n")
    assert.are.equal(400, status)

    -- Python websockets: five messages, a ping, a close with 4001.
    local after = scrape(srv.port, ("ws://127.0.0.1:%d/ws"):format(srv.port), 5, 4001)
    assert.are.equal(0, after.samples.ws_connections)
    assert.are.equal(2, after.samples.ws_connections_accepted_total)
    assert.are.equal(8, after.samples.ws_messages_received_total)
    assert.are.equal(8, after.samples.ws_messages_sent_total)
    assert.are.equal(6 + 5 * 4, after.samples.ws_bytes_received_total)
    assert.are.equal(1, after.samples['ws_closes_total{code=1000}'])
    assert.are.equal(1, after.samples['ws_closes_total{code=4001}'])
    assert.are.equal(1, after.samples['ws_handshakes_refused_total{status=404}'])
    assert.are.equal(1, after.samples['ws_handshakes_refused_total{status=403}'])
    assert.are.equal(1, after.samples['ws_handshakes_refused_total{status=400}'])
    -- GET /metrics itself is plain HTTP, not a refused handshake.
    assert.is_nil(after.samples['ws_handshakes_refused_total{status=200}'])
  end)

  it("counts drops for a slow subscriber, its topic, subscription and send queue", function()
    local slow = assert(client.connect(srv.port, { path = "/ws" }))
    assert(slow:send("sub"))
    assert.are.same({ "text", "subscribed" }, { slow:message() })
    local flooder = assert(client.connect(srv.port, { path = "/ws" }))
    assert(flooder:send("flood"))
    local _, answer = flooder:message(10)
    local delivered = tonumber(answer:match("flooded (%d+)"))
    assert.is_true(delivered > 0 and delivered < 2000, answer)
    local m = scrape(srv.port)
    assert.are.equal(1, m.samples.ws_topics)
    assert.are.equal(1, m.samples.ws_subscriptions)
    assert.are.equal(2000 - delivered, m.samples.ws_messages_dropped_total)
    assert.is_true(m.samples.ws_send_queue_bytes > 16 * 1024, tostring(m.samples.ws_send_queue_bytes))
    slow:abort()
    flooder:close()
    assert(helper.wait_until(function()
      local n = scrape(srv.port)
      return n.samples.ws_topics == 0 and n.samples.ws_subscriptions == 0 and n.samples.ws_connections == 0
        and n.samples['ws_closes_total{code=1006}'] == 1
    end, 10, 0.2))
  end)

  it("counts ping timeouts, and keeps one server's numbers apart from the process's", function()
    local other = tonumber(srv:wait_output("other (%d+)"))
    local mute = assert(client.connect(other, { path = "/other" }))
    assert(mute:send("hi"))
    assert.are.same({ "text", "hi" }, { mute:message() })
    -- It never reads again: the server's pings go unanswered.
    assert(helper.wait_until(function()
      return scrape(srv.port).samples.ws_ping_timeouts_total == 1
    end, 10, 0.2))
    mute:abort()
    -- The close is counted when the socket closes (the server waited for the peer's FIN).
    assert(helper.wait_until(function()
      return scrape(srv.port).samples['ws_closes_total{code=1011}'] == 1
    end, 10, 0.2))
    -- /server is the main server alone: the other server's message and close are not in it.
    local _, _, body = client.get(srv.port, "/server")
    local process = scrape(srv.port)
    local main_received = tonumber(body:match("\nws_messages_received_total (%d+)"))
    assert.are.equal(process.samples.ws_messages_received_total - 1, main_received)
    assert.is_nil(body:match('ws_closes_total{code="1011"}'))
    assert.matches("\nws_ping_timeouts_total 0\n", body, 1, true)
  end)
end)

describe("metrics in one process", function()
  it("totals servers and clients, and a closed server's counts stay in the total", function()
    local script = helper.tmpdir("lua-ws-metrics") .. "/m.lua"
    helper.write_file(script, [[
      local ws = require "ws"
      local a = assert(ws.server({ port = 0 }, function(conn) for m in conn:messages() do conn:send(m) end end))
      local b = assert(ws.server({ port = 0 }, { message = function(conn, m) conn:send(m .. m) end }))
      ws.spawn(function()
        for _, s in ipairs({ a, b }) do
          local c = assert(ws.connect("ws://127.0.0.1:" .. s.port .. "/"))
          c:send("xy")
          assert(c:receive(5))
          c:close()
        end
        ws.sleep(0.3) -- the servers finish their side of the closes
        local snap = require("ws.metrics").snapshot
        local pa, pb, all = snap(a), snap(b), snap()
        print("a", pa.messages_received, pa.bytes_sent, pa.accepted)
        print("b", pb.messages_received, pb.bytes_sent, pb.accepted)
        -- the process: both servers, and the two client connections (received 2 echoes)
        print("all", all.messages_received, all.bytes_sent, all.accepted, all.connections)
        a:close()
        b:close()
        a, b = nil, nil
        collectgarbage()
        collectgarbage()
        local after = snap()
        print("after", after.messages_received, after.accepted, after.servers)
        print(ws.metrics({ labels = { worker = "1" } }):match("ws_connections_accepted_total{worker=\"1\"} %d+"))
      end)
      ws.run()
    ]])
    local ok, code, out, err = helper.run({ helper.lua, script }, {
      timeout = 30, env = { LUA_PATH = helper.lpath .. ";;", LUA_CPATH = helper.cpath .. ";;" } })
    assert.is_true(ok, ("exit %s\n%s\n%s"):format(tostring(code), out, err))
    assert.matches("a\t1\t2\t1\n", out, 1, true)
    assert.matches("b\t1\t4\t1\n", out, 1, true)
    assert.matches("all\t4\t10\t4\t0\n", out, 1, true)
    assert.matches("after\t4\t4\t0\n", out, 1, true)
    assert.matches('ws_connections_accepted_total{worker="1"} 4', out, 1, true)
  end)
end)
