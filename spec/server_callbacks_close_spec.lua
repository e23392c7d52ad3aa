-- Callback style without a close callback: a connection that closes is done without running
-- its dispatch function when no message waits, and messages that came with the close frame
-- still reach the message callback first.
local helper = require "helper"
local server = require "support.ws_server"
local client = require "support.ws_client"

describe("server callbacks without a close callback", function()
  local srv
  setup(function()
    srv = server.start([[
      local s = listen({}, {
        message = function(conn, msg)
          if msg == "count?" then conn:send(tostring(ws_server_count())) else log("got " .. msg) end
        end,
      })
      function ws_server_count() return s:connections() end
    ]])
  end)
  teardown(function() srv:stop() end)

  it("delivers the messages sent with the close frame, then lets the connection go", function()
    for round = 1, 3 do
      local c = assert(client.connect(srv.port))
      assert(c.codec:send("a" .. round, "text"))
      assert(c.codec:send("b" .. round, "text"))
      assert.are.equal(1000, c:close(1000, "")) -- both messages and the close in one write
      assert.truthy(srv:wait_output("got a" .. round))
      assert.truthy(srv:wait_output("got b" .. round))
    end
    local c = assert(client.connect(srv.port))
    local n
    assert(helper.wait_until(function()
      c:send("count?")
      local _, got = c:message()
      n = tonumber(got)
      return n == 1
    end, 5))
    assert.are.equal(1, n) -- only this one: the closed ones are gone
    c:close()
  end)
end)
