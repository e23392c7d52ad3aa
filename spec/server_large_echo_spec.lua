-- Large messages take a shorter path: the rest of a large frame is read into the buffer its
-- first part came in, and a large message sent while nothing else waits goes to the socket
-- from the sender's string, whatever the socket does not take being queued. A client that
-- does not read for a while (the server's socket fills up halfway through such writes) gets
-- large and small messages, ASCII and not, back whole and in order; a large text message with
-- invalid UTF-8 still fails the connection with 1007.
local server = require "support.ws_server"
local client = require "support.ws_client"
local socket = require "socket"

local SIZES = { 70000, 10, 20000, 65536, 3, 16384, 300000, 126, 40000 }
local ROUNDS = 30

local function payload(i, size)
  local unit = i % 3 == 0 and "\195\169t\195\169 " or string.char(65 + i % 26) -- ASCII, or not
  return (string.rep(unit, math.floor(size / #unit) + 1)):sub(1, size - size % #unit)
end

describe("large messages", function()
  local srv
  setup(function()
    srv = server.start([[
      listen({ max_message = 1024 * 1024, send_high_water = 4 * 1024 * 1024 }, function(conn)
        for msg, kind in conn:messages() do
          assert(conn:send(msg, kind))
        end
      end)
    ]])
  end)
  teardown(function() if srv then srv:stop() end end)

  it("come back whole and in order to a client that reads late", function()
    local c = assert(client.connect(srv.port))
    local expected, got = {}, {}
    local n = 0
    for _ = 1, ROUNDS do
      for _, size in ipairs(SIZES) do
        n = n + 1
        expected[n] = payload(n, size)
        assert(c.codec:send(expected[n], "text"))
      end
    end
    local bytes = c.codec:output()
    c.sock:settimeout(0.05)
    -- Sending first, reading only when the server stops taking more: its writes meet a full
    -- socket.
    local at = 1
    local deadline = socket.gettime() + 60
    while at <= #bytes and socket.gettime() < deadline do
      local sent, err, last = c.sock:send(bytes, at, math.min(#bytes, at + 65535))
      if not sent and err ~= "timeout" then error(err) end
      at = (sent or last) + 1
      if not sent then
        local data = client.recv_some(c.sock, 0.05) -- the server may wait for us to read
        if data then assert(c.codec:feed(data)) end
        while true do
          local kind, msg = c.codec:next()
          if not kind then break end
          got[#got + 1] = msg
        end
      end
    end
    assert(at > #bytes, "the server stopped reading")
    deadline = socket.gettime() + 30
    while #got < n and socket.gettime() < deadline do
      local data = client.recv_some(c.sock, 0.05)
      if data then assert(c.codec:feed(data)) end
      while true do
        local kind, msg = c.codec:next()
        if not kind then break end
        assert.equal("text", kind)
        got[#got + 1] = msg
      end
    end
    assert.equal(n, #got)
    for i = 1, n do
      if got[i] ~= expected[i] then
        error(("message %d: %d bytes back, %d sent"):format(i, #got[i], #expected[i]))
      end
    end
    assert.equal(1000, (c:close(1000)))
  end)

  -- More connections than streams may keep the loop's receive buffer between two runs of the
  -- handlers (64): those past the bound read at the next loop iteration, and none is left out.
  it("come back to 200 connections that each send one at the same moment", function()
    local conns = {}
    for i = 1, 200 do
      conns[i] = assert(client.connect(srv.port))
      conns[i].sock:settimeout(0.01)
    end
    local frames = {}
    for i, c in ipairs(conns) do
      assert(c.codec:send(payload(i, 65536), "binary"))
      frames[i] = c.codec:output()
    end
    for i, c in ipairs(conns) do
      local at = 1
      while at <= #frames[i] do -- 64 KiB fits in a loopback socket's buffer: no wait for the server
        local sent, err, last = c.sock:send(frames[i], at)
        if not sent and err ~= "timeout" then error(err) end
        at = (sent or last) + 1
      end
    end
    local got, left = {}, #conns
    local deadline = socket.gettime() + 30
    while left > 0 and socket.gettime() < deadline do
      for i, c in ipairs(conns) do
        if not got[i] then
          local data = client.recv_some(c.sock, 0)
          if data then assert(c.codec:feed(data)) end
          local kind, msg = c.codec:next()
          if kind then
            assert.equal("binary", kind)
            got[i] = msg
            left = left - 1
          end
        end
      end
    end
    assert.equal(0, left)
    for i, c in ipairs(conns) do
      assert(got[i] == payload(i, 65536), ("connection %d: %d bytes back"):format(i, #got[i]))
      c.sock:close()
    end
  end)

  it("fail the connection with 1007 for invalid UTF-8 far into a large text message", function()
    local c = assert(client.connect(srv.port))
    local bad = string.rep("a", 50000) .. "\xff" .. string.rep("b", 20000)
    assert(c.codec:send(bad, "binary")) -- the codec checks text it sends; the frame is relabelled
    local frame = c.codec:output()
    assert.equal(0x82, frame:byte(1)) -- FIN, binary
    frame = string.char(0x81) .. frame:sub(2) -- FIN, text
    assert(c.sock:send(frame))
    local code
    local deadline = socket.gettime() + 10
    while not code and socket.gettime() < deadline do
      local data = client.recv_some(c.sock, 0.05)
      if data then assert(c.codec:feed(data)) end
      while true do
        local kind, a = c.codec:next()
        if not kind then break end
        if kind == "close" then code = a end
      end
    end
    assert.equal(1007, code)
  end)
end)
