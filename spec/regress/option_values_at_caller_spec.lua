-- Option values checked in C (a negative limit, an unknown compression mode, a port out of
-- range, a header that is not a string) raised at a line inside lua/ws/ ("lua/ws/server.lua:199:
-- bad argument #2 to 'listen' (port out of range)"), and conn.receive() called with a dot
-- failed inside lua/ws/conn.lua naming 'crecv'. They are reported at the caller's line now,
-- with the option's name.
local ws = require "ws"

local raised_at = require "support.raised"
local raised = raised_at.at("option_values_at_caller_spec")

local function handler() end

describe("option values checked in C", function()
  it("are reported at the caller's line", function()
    local cases = {
      { function() local s = ws.server({ port = 70000 }, handler) return s end,
        "ws.server: option 'port' must be an integer from 0 to 65535" },
      { function() local s = ws.server({ port = 0, max_message = -1 }, handler) return s end,
        "ws.server: option max_message must not be negative" },
      { function() local s = ws.server({ port = 0, compression = "zip" }, handler) return s end,
        'ws.server: compression must be "off", "shared" or "dedicated"' },
      { function() local c = ws.connect("ws://127.0.0.1:1/", { max_message = -5 }) return c end,
        "ws.connect: option max_message must not be negative" },
      { function() local c = ws.connect("ws://127.0.0.1:1/", { headers = { 5 } }) return c end,
        "ws.connect: header names and values must be strings" },
      { function() local c = ws.connect("ws://127.0.0.1:1/", { compression = "zip" }) return c end,
        'ws.connect: compression must be "off", "shared" or "dedicated"' },
    }
    raised_at.cases(raised, cases)
  end)

  it("name the method called with a dot instead of a colon", function()
    local srv = assert(ws.server({ port = 0 }, function(c) for m in c:messages() do c:send(m) end end))
    local conn = assert(ws.connect("ws://127.0.0.1:" .. srv.port .. "/"))
    finally(function() conn:close() srv:close() end)
    local msg, here = raised(function() local m = conn.receive() return m end)
    assert.are.equal("conn:receive: no connection (call it as conn:receive(...))", msg)
    assert.is_true(here, msg)
    msg, here = raised(function() local ok = conn.close(1000) return ok end)
    assert.are.equal("conn:close: no connection (call it as conn:close(...))", msg)
    assert.is_true(here, msg)
    msg, here = raised(function() local ok = srv:reload_tls({}) return ok end)
    assert.are.equal("server:reload_tls: the server was not started with tls", msg)
    assert.is_true(here, msg)
  end)
end)
