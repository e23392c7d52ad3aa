-- A fixed, undocumented limit of 1,024 frames per message closed a 4 MiB message in 64-byte
-- fragments (far under max_message) with 1009, and streaming clients that send many small
-- fragments too. The bound now follows max_message (ws_conn_max_fragments in the core, the
-- same for the server, the client, ws.codec and ws.resty): a message of max_message bytes in
-- fragments of 64 bytes or more always fits, and a message of empty frames still ends.
local client = require "support.ws_client"
local openresty = require "support.openresty_server"
local echo = require "support.echo_example"
local codec = require "ws.codec"

local MiB = 1024 * 1024

local start_echo, pattern = echo.start, echo.pattern

-- Sends `data` as one message in fragments of `size` bytes (the first one of `kind`).
local function send_fragmented(c, data, size, kind)
  local n = #data
  for i = 1, n, size do
    local last = i + size > n
    assert(c.codec:send(data:sub(i, i + size - 1), i == 1 and (kind or "binary") or "continuation",
      { fin = last }))
    if last or math.floor(i / size) % 1024 == 0 then assert(c:flush()) end
  end
end

local function echo_fragmented(port, data, size, path)
  local c = assert(client.connect(port, { timeout = 10, path = path }))
  send_fragmented(c, data, size)
  local kind, msg, reason = c:message(60)
  c:abort()
  return kind, msg, reason
end

describe("a message in many fragments", function()
  local proc, port
  setup(function() proc, port = start_echo() end)
  teardown(function() if proc then proc:kill() end end)

  it("reaches the server: 4 MiB in 64-byte fragments (65,536 frames; max_message 16 MiB)", function()
    local data = pattern(4 * MiB)
    local kind, msg = echo_fragmented(port, data, 64)
    assert.equal("binary", kind, tostring(msg))
    assert.is_true(msg == data)
  end)

  it("reaches the server from a streaming client: 5,000 fragments of 10 bytes", function()
    local data = pattern(50000)
    local kind, msg = echo_fragmented(port, data, 10)
    assert.equal("binary", kind, tostring(msg))
    assert.is_true(msg == data)
  end)

  it("is still bounded: more empty frames than max_message / 64 + 1 close with 1009", function()
    local c = assert(client.connect(port, { timeout = 10 }))
    local limit = math.floor(16 * MiB / 64) + 1
    assert(c.codec:send("", "binary", { fin = false }))
    for i = 2, limit + 1 do
      assert(c.codec:send("", "continuation", { fin = false }))
      if i % 4096 == 0 then assert(c:flush()) end
    end
    assert(c:flush())
    assert.same({ "close", 1009, "message over max_fragments" }, { c:message(30) })
    c:abort()
  end)
end)

describe("ws.codec", function()
  -- Feeds `bytes` in reads of 16 KiB, taking events between them: every event.
  local function events(c, bytes)
    local out = {}
    for i = 1, #bytes, 16384 do
      assert(c:feed(bytes:sub(i, i + 16383)))
      while true do
        local ev = { c:next() }
        if not ev[1] then break end
        out[#out + 1] = ev
      end
    end
    return out
  end

  local function fragments(data, size, count)
    local key = "\1\2\3\4"
    local parts = {}
    count = count or math.max(1, math.ceil(#data / size))
    for i = 1, count do
      local piece = data:sub((i - 1) * size + 1, i * size)
      parts[i] = codec.frame(i == 1 and "binary" or "continuation", piece, { fin = i == count, mask = key })
    end
    return table.concat(parts)
  end

  it("takes max_message bytes in 64-byte fragments by default", function()
    local data = pattern(MiB)
    local evs = events(codec.new { role = "server" }, fragments(data, 64))
    assert.equal(1, #evs)
    assert.equal("binary", evs[1][1])
    assert.is_true(evs[1][2] == data)
  end)

  it("refuses a message of more than max_message / 64 + 1 frames, and never fewer than 1024", function()
    local limit = math.floor(MiB / 64) + 1
    assert.same({ { "binary", "" } }, events(codec.new { role = "server" }, fragments("", 1, limit)))
    assert.same({ { "error", "message over max_fragments", 1009 } },
      events(codec.new { role = "server" }, fragments("", 1, limit + 1)))
    assert.same({ { "binary", "" } }, events(codec.new { role = "server", max_message = 100 }, fragments("", 1, 1024)))
    assert.same({ { "error", "message over max_fragments", 1009 } },
      events(codec.new { role = "server", max_message = 100 }, fragments("", 1, 1025)))
  end)

  it("keeps max_fragments as an option", function()
    assert.same({ { "error", "message over max_fragments", 1009 } },
      events(codec.new { role = "server", max_fragments = 3 }, fragments("abcd", 1)))
  end)
end)

local describe_nginx = openresty.available and describe or pending
describe_nginx("ws.resty in nginx", function()
  local nginx
  setup(function()
    nginx = openresty.start(echo.resty_location("/default", "()"))
  end)
  teardown(function() if nginx then nginx.stop() end end)

  it("takes max_message (1 MiB by default) in 64-byte fragments", function()
    local data = pattern(MiB)
    local kind, msg = echo_fragmented(nginx.port, data, 64, "/default")
    assert.equal("binary", kind, tostring(msg))
    assert.is_true(msg == data)
  end)
end)
