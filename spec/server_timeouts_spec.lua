-- Deadlines: automatic pings close a silent peer with 1011, idle_timeout closes quiet
-- connections, open_timeout drops a slowloris handshake, receive(timeout) loses nothing and
-- close() is bounded by the close timeout.
local server = require "support.ws_server"
local client = require "support.ws_client"
local socket = require "socket"

describe("server timeouts", function()
  -- Each deadline has a listener of its own, so that no spec depends on how fast this process
  -- answers a ping: ports[1] has no pings (receive, open and close timeouts), ports[2] an idle
  -- timeout, ports[3] pings with a second to answer them, ports[4] pings that must be answered
  -- within 0.2 s (only ever used by a peer that answers nothing).
  local srv
  setup(function()
    srv = server.start([[
      local function handler(conn)
        while true do
          local msg, err, code = conn:receive(0.2)
          if msg == "close-me" then
            local t0 = ws.now()
            conn:close(1000, "bye")
            log("close returned", string.format("%.3f", ws.now() - t0))
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
      listen({ ping_interval = 0, open_timeout = 0.4, close_timeout = 0.5 }, handler)
      listen({ ping_interval = 0, idle_timeout = 0.3 }, function(conn)
        for msg in conn:messages() do conn:send(msg) end
        log("idle ended", conn.close_code)
      end)
      listen({ ping_interval = 0.2, ping_timeout = 1 }, handler)
      listen({ ping_interval = 0.2, ping_timeout = 0.2 }, handler)
    ]])
    assert(srv:wait_output("listening %d+\nlistening %d+\nlistening %d+\nlistening %d+"))
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
    -- Answering (receive does) for over two rounds of ping_interval + ping_timeout, and for at
    -- least three pings, however slowly this process gets to run.
    local c = assert(client.connect(srv.ports[3]))
    local pings = 0
    local t0 = client.now()
    while client.now() < t0 + 2.5 or pings < 3 do
      assert.is_true(client.now() < t0 + 20, "pings " .. pings .. " in 20 s")
      local kind, a = c:receive(0.05)
      if kind == "ping" then pings = pings + 1 end
      assert.are_not.equal("close", kind, "closed with " .. tostring(a))
      assert.are_not.equal("closed", a)
    end
    assert.is_true(pings >= 3, "pings " .. pings)
    c:send("alive")
    local got
    local deadline = client.now() + 10
    while client.now() < deadline do -- skip pings and the handler's "tick"
      local kind, a = c:receive(deadline - client.now())
      assert.are_not.equal("close", kind, "closed with " .. tostring(a))
      if kind == "text" and a ~= "tick" then got = a break end
      if kind == nil and a ~= "timeout" then break end
    end
    assert.are.equal("alive", got)
    c:close()
  end)

  it("closes a silent peer with 1011 after ping_timeout", function()
    local c = assert(client.connect(srv.ports[4]))
    socket.sleep(0.8) -- read nothing, answer nothing
    local saw_ping, code
    local deadline = client.now() + 10
    while client.now() < deadline do
      local kind, a = c:receive(deadline - client.now())
      if kind == "ping" then saw_ping = true end
      if kind == "close" then code = a break end
      if kind == nil then break end
    end
    assert.is_true(saw_ping)
    assert.are.equal(1011, code)
    assert.is_true(c:wait_eof(5))
    assert.truthy(srv:wait_output("ended %d+ ping timeout closed"))
  end)

  it("closes an idle connection after idle_timeout", function()
    local c = assert(client.connect(srv.ports[2]))
    local kind, code, reason = c:message(10)
    assert.are.equal("close", kind)
    assert.are.equal(1000, code)
    assert.are.equal("idle timeout", reason)
  end)

  it("drops a slowloris handshake at open_timeout and serves others meanwhile", function()
    -- t0 before the connect: the server's open timer cannot start earlier. The bytes keep
    -- trickling in, and must not push the deadline (0.4 s; the default is 10 s) back.
    local t0 = client.now()
    local s = assert(client.tcp(srv.port))
    s:send("GET / HTTP/1.1\r\n")
    local closed_at, served = nil, false
    while client.now() < t0 + 10 do
      local ok = s:send("X")
      local _, rerr = client.recv_some(s, 0.1)
      if not ok or rerr == "closed" then closed_at = client.now() break end
      if not served then
        local c = assert(client.connect(srv.port))
        c:close()
        served = true
      end
    end
    s:close()
    assert.is_not_nil(closed_at, "the slow handshake was never dropped")
    local took = closed_at - t0
    assert.is_true(took >= 0.3 and took < 2.5, "dropped after " .. took)
  end)

  it("bounds close() by the close timeout when the peer never answers", function()
    local c = assert(client.connect(srv.port))
    c:send("close-me")
    -- close_timeout is 0.5 s (the default is 10 s)
    local took = tonumber((srv:wait_output("close returned (%d+%.%d+)", 10)))
    assert.is_not_nil(took, "close() did not return")
    assert.is_true(took >= 0.4 and took < 2, "close returned after " .. took)
    c:abort()
  end)
end)
