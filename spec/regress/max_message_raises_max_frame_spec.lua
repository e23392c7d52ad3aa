-- A max_message over 1 MiB raised the message limit but not the frame limit: one frame of
-- 2, 4, 8 or 16 MiB under a 16 MiB max_message was closed with 1009 "frame over max_frame",
-- by the server and by the client (both lowered max_frame from its 1 MiB default, never
-- raised it), and by ws.resty (its max_frame default stayed 1 MiB). A single frame of up to
-- max_message bytes is one legal message; ws.codec already took it.
local client = require "support.ws_client"
local openresty = require "support.openresty_server"
local echo = require "support.echo_example"
local codec = require "ws.codec"
local ws = require "ws"

local MiB = 1024 * 1024

local start_echo, pattern = echo.start, echo.pattern

-- Sends `payload` as one binary frame and returns the first event that comes back.
local function echo_once(port, payload)
  local c = assert(client.connect(port, { timeout = 10 }))
  assert(c:send(payload, "binary"))
  local kind, a, b = c:message(30)
  c:abort()
  return kind, a, b
end

describe("max_message over 1 MiB", function()
  local proc, port
  setup(function() proc, port = start_echo() end)
  teardown(function() if proc then proc:kill() end end)

  it("lets the server take one frame of 2, 8 and 16 MiB (examples/echo.lua: max_message 16 MiB)", function()
    for _, size in ipairs({ 2 * MiB, 8 * MiB, 16 * MiB }) do
      local data = pattern(size)
      local kind, msg = echo_once(port, data)
      assert.equal("binary", kind, ("%d bytes: %s %s"):format(size, tostring(kind), tostring(msg)))
      assert.is_true(msg == data, size .. " bytes came back changed")
    end
  end)

  it("still closes a frame over max_message with 1009", function()
    local kind, code, reason = echo_once(port, pattern(16 * MiB) .. "x")
    assert.same({ "close", 1009, "message over max_message" }, { kind, code, reason })
  end)

  it("lets the client take one frame of 3 MiB with max_message = 4 MiB", function()
    local conn = assert(ws.connect(("ws://127.0.0.1:%d/"):format(port), { max_message = 4 * MiB, timeout = 10 }))
    local data = pattern(3 * MiB)
    assert(conn:send(data, "binary"))
    local msg, kind = conn:receive(30)
    assert.equal("binary", kind, tostring(msg))
    assert.is_true(msg == data)
    conn:close()
  end)
end)

describe("ws.codec and ws.resty give the same frame limit", function()
  -- Feeds `bytes` in reads of 16 KiB, taking events between them: the first event.
  local function first_event(c, bytes)
    for i = 1, #bytes, 16384 do
      assert(c:feed(bytes:sub(i, i + 16383)))
      local kind, a, b = c:next()
      if kind then return kind, a, b end
    end
  end

  it("ws.codec: max_frame follows max_message unless set", function()
    local frame = codec.frame("binary", pattern(3 * MiB))
    local kind, msg = first_event(codec.new { role = "client", max_message = 4 * MiB }, frame)
    assert.equal("binary", kind)
    assert.equal(3 * MiB, #msg)
    assert.same({ "error", "frame over max_frame", 1009 },
      { first_event(codec.new { role = "client", max_message = 4 * MiB, max_frame = MiB }, frame) })
  end)

  local describe_nginx = openresty.available and describe or pending
  describe_nginx("ws.resty in nginx", function()
    local nginx
    setup(function()
      nginx = openresty.start(echo.resty_location("/four", "{ max_message = 4 * 1024 * 1024 }"))
    end)
    teardown(function() if nginx then nginx.stop() end end)

    it("takes one frame of 3 MiB with max_message = 4 MiB", function()
      local c = assert(client.connect(nginx.port, { path = "/four", timeout = 10 }))
      local data = pattern(3 * MiB)
      assert(c:send(data, "binary"))
      local kind, msg = c:message(30)
      assert.equal("binary", kind, tostring(msg))
      assert.is_true(msg == data)
      local code, reason = c:close(1000)
      assert.same({ 1000, "" }, { code, reason })
    end)
  end)
end)
