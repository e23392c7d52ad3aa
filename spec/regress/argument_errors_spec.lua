-- The public functions check their arguments and raise an error that names the argument, at
-- the caller's line: conn:receive("soon") used to fail inside lua/ws/conn.lua with "attempt to
-- add a 'number' with a 'string'".
local ws = require "ws"
local resty = require "ws.resty"

-- fn's error message without its position, and whether the position is this file.
local raised_at = require "support.raised"
local raised = raised_at.at("argument_errors_spec")

describe("argument errors", function()
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

  it("name the argument of a connection's methods", function()
    local cases = {
      { function() local m = conn:receive("soon") return m end, "conn:receive: timeout must be a number (got string)" },
      { function() local m = conn:receive(0 / 0) return m end, "conn:receive: timeout must be a number (got nan)" },
      { function() local ok = conn:close("normal") return ok end, "conn:close: code must be a number (got string)" },
      { function() local ok = conn:close(1000, {}) return ok end, "conn:close: reason must be a string (got table)" },
      { function() local ok = conn:close(999) return ok end, "conn:close: invalid close code" },
      { function() local ok = conn:ping({}) return ok end, "conn:ping: data must be a string (got table)" },
      { function() local ok = conn:send("x", "text", 5) return ok end, "bad argument #3 to 'send' (options table expected)" },
    }
    raised_at.cases(raised, cases)
    -- nothing was disturbed: the connection still echoes
    assert(conn:send("still open"))
    assert.equal("still open", conn:receive(5))
  end)

  it("name the argument of a reconnecting client's methods", function()
    local rc = ws.reconnecting("ws://127.0.0.1:" .. srv.port .. "/")
    local cases = {
      { function() local m = rc:receive("soon") return m end, "rc:receive: timeout must be a number (got string)" },
      { function() local ok = rc:send(nil) return ok end, "rc:send: data must be a string (got nil)" },
      { function() local ok = rc:send("x", "text", true) return ok end, "rc:send: opts must be a table (got boolean)" },
      { function() local ok = rc:connect("later") return ok end, "rc:connect: deadline must be a number (got string)" },
      { function() local ok = rc:ping(5) return ok end, "rc:ping: data must be a string (got number)" },
      { function() local ok = rc:close("bye") return ok end, "rc:close: code must be a number (got string)" },
    }
    raised_at.cases(raised, cases)
    rc:close()
  end)

  it("name the argument of the server's and the module's functions", function()
    local msg, here = raised(function() local ok = srv:close(5) return ok end)
    assert.equal("server:close: options table expected", msg)
    assert.is_true(here, msg)
    msg = raised(function() local ok = srv:close({ timeout = "soon" }) return ok end)
    assert.equal("server:close: option 'timeout' must be a number", msg)
    assert.is_nil(srv.closing) -- the server was left alone
    msg, here = raised(function() ws.run(5) end)
    assert.equal("ws.run: options table expected", msg)
    assert.is_true(here, msg)
    msg = raised(function() ws.run({ signals = "no" }) end)
    assert.equal("ws.run: option 'signals' must be a boolean", msg)
  end)

  it("name the argument of ws.resty's connection methods", function()
    -- the checks come before any use of the socket, which is never touched here
    local c = resty.wrap({}, { role = "server" })
    local msg, here = raised(function() local m = c:receive("soon") return m end)
    assert.equal("conn:receive: timeout must be a number (got string)", msg)
    assert.is_true(here, msg)
    msg = raised(function() local ok = c:close("bye") return ok end)
    assert.equal("conn:close: code must be a number (got string)", msg)
    msg = raised(function() local ok = c:ping({}) return ok end)
    assert.equal("conn:ping: data must be a string (got table)", msg)
  end)
end)
