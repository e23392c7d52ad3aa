-- The OpenResty example's echo took messages of up to 1 MiB where examples/echo.lua takes
-- 16 MiB, so one conformance run could not cover both paths with the same cases. Both now
-- take 16 MiB, in one frame or in fragments, and close with 1009 past it.
local helper = require "helper"
local client = require "support.ws_client"
local openresty = require "support.openresty_server"

local MiB = 1024 * 1024

local function pattern(n)
  return ("0123456789abcdef"):rep(math.floor(n / 16) + 1):sub(1, n)
end

local function echo(port, data, fragment)
  local c = assert(client.connect(port, { timeout = 10 }))
  if fragment then
    for i = 1, #data, fragment do
      local last = i + fragment > #data
      assert(c.codec:send(data:sub(i, i + fragment - 1), i == 1 and "binary" or "continuation", { fin = last }))
      if last or math.floor(i / fragment) % 1024 == 0 then assert(c:flush()) end
    end
  else
    assert(c:send(data, "binary"))
  end
  local kind, a, b = c:message(60)
  c:abort()
  return kind, a, b
end

-- The answers a conformance run looks at, for the echo on `port`.
local function limits(port)
  local big = pattern(16 * MiB)
  local kind, msg = echo(port, big)
  assert.equal("binary", kind, tostring(msg))
  assert.is_true(msg == big, "16 MiB in one frame came back changed")
  local four = pattern(4 * MiB)
  kind, msg = echo(port, four, 64)
  assert.equal("binary", kind, tostring(msg))
  assert.is_true(msg == four, "4 MiB in 64-byte fragments came back changed")
  assert.same({ "close", 1009, "message over max_message" }, { echo(port, big .. "x") })
end

describe("the echo examples take the same limit", function()
  it("examples/echo.lua: 16 MiB", function()
    local proc = helper.spawn_lua({ helper.root .. "/examples/echo.lua", "--port", tostring(helper.free_port()) },
      { timeout = 120 })
    local port = tonumber((proc:wait_output("listening on ws://127%.0%.0%.1:(%d+)/", 10)))
    assert(port, "echo.lua did not start: " .. proc:errors())
    local ok, err = pcall(limits, port)
    proc:kill()
    assert(ok, err)
  end)

  local it_nginx = openresty.available and it or pending
  it_nginx("examples/openresty (echo location): 16 MiB", function()
    local nginx = openresty.start()
    local ok, err = pcall(limits, nginx.port)
    nginx.stop()
    assert(ok, err)
  end)
end)
