-- A close code given must be one the wire allows (RFC 6455 7.4), and 0 is not one: ws.core's
-- conn:close(0) sent a close frame with no status (the peer saw 1005) while ws.codec's
-- c:close(0) and server:close{ code = 0 } refused it. All three ask ws_close_args_check now.
local ws = require "ws"
local raised_at = require "support.raised"
local raised = raised_at.at("conn_close_code_zero_spec")

describe("a close code of 0", function()
  local srv, conn
  setup(function()
    srv = assert(ws.server({ port = 0 }, function(c)
      for msg in c:messages() do c:send(msg) end
    end))
    conn = assert(ws.connect("ws://127.0.0.1:" .. srv.port .. "/", { timeout = 5 }))
  end)
  teardown(function()
    conn:close()
    srv:close()
  end)

  it("is an invalid close code for conn:close, and nothing is sent", function()
    raised_at.cases(raised, {
      { function() local ok = conn:close(0) return ok end, "conn:close: invalid close code" },
      { function() local ok = conn:close(0, "why") return ok end, "conn:close: invalid close code" },
      { function() local ok = conn:close(1000.5) return ok end, "conn:close: invalid close code" },
      { function() local ok = conn:close(-1) return ok end, "conn:close: invalid close code" },
      { function() local ok = conn:close(65536 + 1000) return ok end, "conn:close: invalid close code" },
    })
    -- the connection was left open
    assert(conn:send("still open"))
    assert.equal("still open", conn:receive(5))
  end)
end)
