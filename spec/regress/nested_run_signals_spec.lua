-- ws.run() inside the running loop fails ("the loop is already running") and must leave the
-- outer ws.run's signal handling in place: SIGTERM still closes gracefully (queued messages
-- delivered, then 1001) instead of killing the process.
local server = require "support.ws_server"
local client = require "support.ws_client"

describe("a failed nested ws.run()", function()
  it("keeps graceful shutdown on SIGTERM", function()
    local srv = server.start([[
      listen({}, function(conn)
        for msg in conn:messages() do conn:send(msg) end
      end)
      ws.spawn(function() log("nested", pcall(ws.run)) end)
      ws.run()
      log("run returned")
    ]], { no_run = true })
    assert.truthy(srv:wait_output("nested false ws.run: the loop is already running"))
    local c = assert(client.connect(srv.port))
    c:send("ping me")
    local kind, msg = c:message(5)
    assert.same({ "text", "ping me" }, { kind, msg })
    srv:signal("TERM")
    local k, code = c:message(5)
    assert.same({ "close", 1001 }, { k, code })
    c:close()
    assert.truthy(srv:wait_output("run returned", 5))
    assert.equal(0, srv.proc:wait(5))
    srv:stop()
  end)
end)
