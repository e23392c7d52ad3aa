-- An option of the wrong type is refused when the server, the client or the ws.resty
-- accept is created, with an error that names the option, at the caller's line. Before, such
-- options were taken and failed later, on every request (500 or 404), or were ignored.
local ws = require "ws"
local resty = require "ws.resty"
local server = require "support.ws_server"
local client = require "support.ws_client"

-- The message of fn's error, and whether it points at this file.
local raised_at = require "support.raised"
local raised = raised_at.at("option_types_spec")

local function handler() end

describe("wrong option types", function()
  it("are refused by ws.server, naming the option", function()
    local cases = {
      { { protocols = 5 }, "ws.server: option 'protocols' must be a string or a list of strings" },
      { { protocols = { "chat", 5 } }, "ws.server: option 'protocols' must be a string or a list of strings" },
      { { path = 5 }, "ws.server: option 'path' must be a string" },
      { { handshake = 42 }, "ws.server: option 'handshake' must be a function" },
      { { http = "x" }, "ws.server: option 'http' must be a function" },
      { { origins = "https://a.example" }, "ws.server: option 'origins' must be a list of strings, a function or \"*\"" },
      { { require_origin = "yes" }, "ws.server: option 'require_origin' must be a boolean" },
      { { max_message = "1e6" }, "ws.server: option 'max_message' must be a number" },
      { { ping_interval = 0 / 0 }, "ws.server: option 'ping_interval' must be a number" },
      { { tls = "server.crt" }, "ws.server: option 'tls' must be a table" },
      { { compression = 3 }, "ws.server: option 'compression' must be \"off\", \"shared\", \"dedicated\" or a table" },
    }
    for _, case in ipairs(cases) do
      local opts = case[1]
      opts.port = 0
      local msg, here = raised(function() ws.server(opts, handler) end)
      assert.equal(case[2], msg)
      assert.is_true(here, "not at the caller's line: " .. msg)
    end
    local msg = raised(function() ws.server(5, handler) end)
    assert.equal("ws.server: options table expected", msg)
  end)

  it("are refused by ws.connect and ws.reconnecting, naming the option", function()
    local url = "ws://127.0.0.1:1/"
    local cases = {
      { { protocols = 5 }, "option 'protocols' must be a string or a list of strings" },
      { { origin = true }, "option 'origin' must be a string" },
      { { headers = "X-A: b" }, "option 'headers' must be a table of headers" },
      { { timeout = "5" }, "option 'timeout' must be a number" },
      { { tls = { server_name = 1 } }, "option 'tls.server_name' must be a string" },
      { { reconnect = { max = "30" } }, "option 'reconnect.max' must be a number" },
      { { on_open = "subscribe" }, "option 'on_open' must be a function" },
    }
    for _, case in ipairs(cases) do
      local msg, here = raised(function() ws.connect(url, case[1]) end)
      assert.equal("ws.connect: " .. case[2], msg)
      assert.is_true(here, msg)
      msg, here = raised(function() ws.reconnecting(url, case[1]) end)
      assert.equal("ws.reconnecting: " .. case[2], msg)
      assert.is_true(here, msg)
    end
  end)

  it("are refused by ws.resty's accept and connect before the request is looked at", function()
    local msg, here = raised(function() resty.accept { protocols = "chat" } end)
    assert.equal("ws.resty.accept: option 'protocols' must be a list of strings", msg)
    assert.is_true(here, msg)
    msg = raised(function() resty.accept { origins = "https://a.example" } end)
    assert.equal("ws.resty.accept: option 'origins' must be a list of strings or a function", msg)
    msg = raised(function() resty.accept { max_message = "big" } end)
    assert.equal("ws.resty.accept: option 'max_message' must be a number", msg)
    msg = raised(function() resty.connect("ws://127.0.0.1:1/", { handshake_timeout = "10" }) end)
    assert.equal("ws.resty.connect: option 'handshake_timeout' must be a number", msg)
  end)

  it("leave options of the right types working", function()
    local srv = server.start([[
      listen({ path = "/ws", protocols = "chat", require_protocol = false, origins = "*",
               require_origin = false, max_message = 65536, ping_interval = 0, compression = "off",
               handshake = function() return true end,
               http = function() return 200, nil, "page\n" end },
        function(conn) conn:send("hello " .. tostring(conn.protocol)) end)
    ]])
    local c = assert(client.connect(srv.port, { path = "/ws", protocols = { "chat" } }))
    local _, msg = c:message()
    assert.equal("hello chat", msg)
    c:close()
    local status, _, body = client.get(srv.port, "/")
    assert.equal(200, status)
    assert.equal("page\n", body)
    srv:stop()
  end)
end)
