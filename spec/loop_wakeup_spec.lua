-- Work a handler queues while it runs (a line for the Lua logger, another task made ready) is
-- done before the loop waits for I/O again, not at the next event: here the peer stays silent
-- after its last message, so a line that waited for the next event would come only with the
-- close timeout.
local helper = require "helper"
local server = require "support.ws_server"
local client = require "support.ws_client"

describe("the loop after a handler ran", function()
  it("delivers the lines the handler logged without waiting for another event", function()
    local srv = server.start([[
      ws.set_logger(function(line) log("LOG " .. line) end, 1)
      listen({ close_timeout = 20 }, function(conn)
        for msg in conn:messages() do
          if msg == "bye" then conn:close(4000, "done here") end
        end
      end)
    ]])
    local c = assert(client.connect(srv.port))
    assert(c:send("bye"))
    -- The peer neither reads nor answers the close from here on.
    local ok = srv:wait_output("closing, code 4000", 3)
    local out = srv:output()
    c:close()
    srv:stop()
    assert.is_truthy(ok, out)
  end)

  it("runs a task another task made ready in the same round", function()
    local srv = server.start([[
      listen({}, function(conn)
        for msg in conn:messages() do
          ws.spawn(function() conn:send("from a task: " .. msg) end)
        end
      end)
    ]])
    local c = assert(client.connect(srv.port))
    for i = 1, 3 do
      assert(c:send("m" .. i))
      assert.are.same({ "text", "from a task: m" .. i }, { c:message() })
    end
    c:close()
    srv:stop()
  end)
end)
