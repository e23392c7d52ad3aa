-- Deadlines: automatic pings close a silent peer with 1011, idle_timeout closes quiet
-- connections, open_timeout drops a slowloris handshake, receive(timeout) loses nothing and
-- close() is bounded by the close timeout.
local server = require "support.ws_server"
local client = require "support.ws_client"
local socket = require "socket"

describe("server timeouts", function()
  local srv
  setup(function()
    srv = server.start([[
      local function handler(conn)
        while true do
          local msg, err, code = conn:receive(0.2)
          if msg == "close-me" then
            local t0 = ws.now()
            conn:close(1000, "bye")
            log("close returned", string.format("%.1f", ws.now() - t0))
            return
          elseif msg then
            conn:send(msg)
          elseif code == "timeout" then
            if conn.data_timeouts == nil then conn:send("tick") end
            conn.data_timeouts = true
          else
            log("ended", conn.id, err, code)
            return
          end
        end
      end
      listen({ ping_interval = 0.2, ping_timeout = 0.2, open_timeout = 0.4, close_timeout = 0.5 }, handler)
      listen({ ping_interval = 0, idle_timeout = 0.3 }, function(conn)
        for msg in conn:messages() do conn:send(msg) end
        log("idle ended", conn.close_code)
      end)
    ]])
    assert(srv:wait_output("listening %d+\nlistening %d+"))
    srv.ports = {}
    for p in srv:output():gmatch("listening (%d+)") do srv.ports[#srv.ports + 1] = tonumber(p) end
  end)
  teardown(function() srv:stop() end)

  it("times out receive without losing the message that comes later", function()
    local c = assert(client.connect(srv.port))
    local kind, got = c:message(2)
    assert.are.equal("tick", got)
    c:send("later")
    kind, got = c:message(2)
    assert.are.equal("later", got)
    c:close()
  end)

  it("keeps a peer that answers pings", function()
    local c = assert(client.connect(srv.port))
    local pings = 0
    local deadline = client.now() + 1
    while client.now() < deadline do
      local kind = c:receive(0.05)
      if kind == "ping" then pings = pings + 1 end
      assert.are_not.equal("close", kind)
    end
    assert.is_true(pings >= 2, "pings " .. pings)
    c:send("alive")
    local got
    for _ = 1, 10 do -- skip pings and the handler's "tick"
      local kind, a = c:receive(1)
      if kind == "text" and a ~= "tick" then got = a break end
    end
    assert.are.equal("alive", got)
    c:close()
  end)

  it("closes a silent peer with 1011 after ping_timeout", function()
    local c = assert(client.connect(srv.port))
    socket.sleep(0.8) -- read nothing, answer nothing
    local saw_ping, code
    for _ = 1, 10 do
      local kind, a = c:receive(1)
      if kind == "ping" then saw_ping = true end
      if kind == "close" then code = a break end
      if kind == nil then break end
    end
    assert.is_true(saw_ping)
    assert.are.equal(1011, code)
    assert.is_true(c:wait_eof(2))
    assert.truthy(srv:wait_output("ended %d+ ping timeout closed"))
  end)

  it("closes an idle connection after idle_timeout", function()
    local c = assert(client.connect(srv.ports[2]))
    local kind, code, reason = c:message(2)
    assert.are.equal("close", kind)
    assert.are.equal(1000, code)
    assert.are.equal("idle timeout", reason)
  end)

  it("drops a slowloris handshake at open_timeout and serves others meanwhile", function()
    local s = client.tcp(srv.port)
    s:send("GET / HTTP/1.1\r\n")
    local t0 = client.now()
    local closed_at
    for _ = 1, 20 do
      local ok, err = s:send("X")
      local data, rerr = client.recv_some(s, 0.1)
      if not ok or rerr == "closed" then closed_at = client.now() break end
      if _ == 2 then
        local c = assert(client.connect(srv.port))
        c:close()
      end
    end
    assert.is_not_nil(closed_at, "the slow handshake was never dropped")
    local took = closed_at - t0
    assert.is_true(took >= 0.3 and took < 1.0, "dropped after " .. took)
  end)

  it("bounds close() by the close timeout when the peer never answers", function()
    local c = assert(client.connect(srv.port))
    c:send("close-me")
    assert.truthy(srv:wait_output("close returned 0%.[456]", 3))
    c:abort()
  end)
end)
