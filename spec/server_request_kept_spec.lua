-- conn.request on the server: an idle connection does not keep the bytes of its request. The
-- request (head and table) is there in the handshake hook, in the open callback and in a
-- coroutine handler until it first waits; later it is an error that says so, unless the server
-- keeps it with keep_request = true.
local server = require "support.ws_server"
local client = require "support.ws_client"

local GONE = "conn.request is kept only until the handler first waits or the open callback returns"

describe("conn.request after the handler waits", function()
  local srv
  setup(function()
    srv = server.start([[
      local function fields(conn)
        local ok, r = pcall(function() return conn.request end)
        if not ok then return "error: " .. tostring(r) end
        return r.path .. " " .. tostring(r.headers["x-test"])
      end
      -- coroutine style: read at the start, and again after the first wait
      listen({ port = 0 }, function(conn)
        local first = fields(conn)
        for msg in conn:messages() do conn:send(first .. " | " .. fields(conn)) end
      end)
      -- the same with keep_request
      listen({ port = 0, keep_request = true }, function(conn)
        local first = fields(conn)
        for msg in conn:messages() do conn:send(first .. " | " .. fields(conn)) end
      end)
      -- callback style: in open, then in message
      listen({ port = 0 }, {
        open = function(conn) conn.first = fields(conn) end,
        message = function(conn) conn:send(conn.first .. " | " .. fields(conn)) end,
      })
    ]])
    assert.truthy(srv:wait_output("listening %d+%s+listening %d+%s+listening %d+"))
    srv.ports = {}
    for port in srv:output():gmatch("listening (%d+)") do srv.ports[#srv.ports + 1] = tonumber(port) end
  end)
  teardown(function() srv:stop() end)

  local function ask(port)
    local c = assert(client.connect(port, { path = "/p", headers = { ["X-Test"] = "yes" } }))
    assert(c.codec:send("?", "text"))
    c:flush()
    local kind, got = c:message()
    c:close(1000)
    return kind, got
  end

  it("is gone after a coroutine handler's first wait", function()
    local kind, got = ask(srv.ports[1])
    assert.are.equal("text", kind)
    local first, later = got:match("^(.-) | (.*)$")
    assert.are.equal("/p yes", first)
    assert.truthy(later:find(GONE, 1, true), later)
  end)

  it("stays with keep_request = true", function()
    local _, got = ask(srv.ports[2])
    assert.are.equal("/p yes | /p yes", got)
  end)

  it("is gone after the open callback returns", function()
    local _, got = ask(srv.ports[3])
    local first, later = got:match("^(.-) | (.*)$")
    assert.are.equal("/p yes", first)
    assert.truthy(later:find(GONE, 1, true), later)
  end)
end)
