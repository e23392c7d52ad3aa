-- The OpenResty path answered 400 (or 426) to an upgrade whose Sec-WebSocket-Key had trailing
-- white space, where the runtime answers 101: header values' optional white space is not part
-- of the value (RFC 7230 3.2.4). ws.resty parses the request head with the core's parser, but
-- on ngx.req.raw_header(), which does not give back the bytes nginx received: nginx writes a
-- NUL over the first white space after a value, and raw_header turns it into a line feed.
local helper = require "helper"
local client = require "support.ws_client"
local openresty = require "support.openresty_server"

local KEY = "dGhlIHNhbXBsZSBub25jZQ=="
local ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" -- RFC 6455 1.3

local VARIANTS = {
  { "one space either side", " " .. KEY .. " " },
  { "two spaces after", KEY .. "  " },
  { "no space after the colon, one after the value", KEY .. " " },
  { "tabs", "\t" .. KEY .. "\t" },
  { "mixed", " \t " .. KEY .. " \t " },
}

local function upgrade(port, key_value, other)
  return client.http(port, "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket \r\n" ..
    "Connection: Upgrade\r\nSec-WebSocket-Key:" .. key_value .. "\r\nSec-WebSocket-Version: " ..
    (other or "13") .. "\r\n\r\n", 10)
end

local function expect_accepted(port)
  for _, v in ipairs(VARIANTS) do
    local status, headers, body = upgrade(port, v[2])
    assert.equal(101, status, v[1] .. ": " .. tostring(body))
    assert.equal(ACCEPT, headers["sec-websocket-accept"], v[1])
  end
  -- White space after the last header's value, and after every value at once.
  local status, headers = upgrade(port, " " .. KEY .. "  ", "13  ")
  assert.equal(101, status)
  assert.equal(ACCEPT, headers["sec-websocket-accept"])
  -- A key that is not base64 of 16 bytes is still refused, spaces or not.
  assert.equal(400, (upgrade(port, " dGhlIHNhbXBsZSBub25jZQ= ")))
end

describe("a Sec-WebSocket-Key with white space around it", function()
  it("is accepted by the runtime (examples/echo.lua)", function()
    local proc = helper.spawn_lua({ helper.root .. "/examples/echo.lua", "--port", tostring(helper.free_port()) },
      { timeout = 60 })
    local port = tonumber((proc:wait_output("listening on ws://127%.0%.0%.1:(%d+)/", 10)))
    assert(port, "echo.lua did not start: " .. proc:errors())
    expect_accepted(port)
    proc:kill()
  end)

  local it_nginx = openresty.available and it or pending
  it_nginx("is accepted by ws.resty in nginx, as by the runtime", function()
    local nginx = openresty.start()
    local ok, err = pcall(expect_accepted, nginx.port)
    nginx.stop()
    assert(ok, err)
  end)
end)
