-- A server whose loop was busy (a blocking handler, a loaded machine) closed peers that had
-- answered its ping in time with 1011 "ping timeout": the ping left only at the next flush,
-- after the stall, while ping_timeout counted from before it; and libev runs an expired timer
-- before the read of the same iteration, so the pong waiting in the socket was not seen.
-- The ping is written at once now, and the socket is read before any verdict.
local server = require "support.ws_server"
local client = require "support.ws_client"

describe("ping timeout on a busy loop", function()
  it("keeps a peer that answers every ping while the loop stalls longer than ping_timeout", function()
    local srv = server.start([[
      local socket = require "socket"
      listen({ ping_interval = 0.2, ping_timeout = 0.3 }, function(conn)
        for msg in conn:messages() do conn:send(msg) end
        log("ended", conn.close_code, conn.close_reason)
      end)
      -- the loop runs for 0.05 s, then is blocked for 0.6 s (twice ping_timeout), again and again
      ws.spawn(function() while true do ws.sleep(0.05) socket.sleep(0.6) end end)
    ]])
    finally(function() srv:stop() end)
    local c = assert(client.connect(srv.port, { timeout = 10 }))
    local pings, t0 = 0, client.now()
    while client.now() < t0 + 2.5 or pings < 2 do
      assert.is_true(client.now() < t0 + 30, "pings " .. pings .. " in 30 s")
      local kind, a, b = c:receive(0.02)
      if kind == "ping" then pings = pings + 1 end
      assert.are_not.equal("close", kind, ("closed with %s %s after %.1f s"):format(tostring(a), tostring(b), client.now() - t0))
      assert.are_not.equal("closed", a)
    end
    c:send("still here")
    assert.are.same({ "text", "still here" }, { c:message(10) })
    c:close()
  end)
end)
