-- Connections read into one receive buffer shared by the whole loop and keep, in a buffer of
-- their own, only what is left of a read: a trailing partial frame, messages the handler has
-- not taken yet, a large message delivered in place. Several clients send frames of every
-- size (held in place, copied to the inbox, streamed) cut at odd points and interleaved, to a
-- slow handler with a short inbox; every message comes back whole and in order.
local server = require "support.ws_server"
local client = require "support.ws_client"
local socket = require "socket"

local SIZES = { 0, 7, 125, 126, 1000, 9000, 20000, 65535, 70000, 200000, 3 }
local CUTS = { 1, 13, 1500, 4096, 33333, 70001, 2 }
local CLIENTS, ROUNDS = 3, 2

local function payload(k, i, size)
  return string.rep(string.char(65 + (k * 7 + i) % 26), size)
end

describe("the shared receive buffer", function()
  local srv
  setup(function()
    srv = server.start([[
      listen({ max_queue = 2, max_message = 1024 * 1024 }, function(conn)
        local n = 0
        for msg, kind in conn:messages() do
          n = n + 1
          if n % 4 == 0 then ws.sleep(0.005) end -- a slow handler: reading pauses meanwhile
          assert(conn:send(msg, kind))
        end
      end)
    ]])
  end)
  teardown(function() if srv then srv:stop() end end)

  it("loses and reorders nothing across partial frames, paused reads and many connections", function()
    local clients, expected, got, pending = {}, {}, {}, {}
    for k = 1, CLIENTS do
      local c = assert(client.connect(srv.port))
      clients[k], expected[k], got[k] = c, {}, {}
      local n = 0
      for _ = 1, ROUNDS do
        for _, size in ipairs(SIZES) do
          n = n + 1
          local p = payload(k, n, size)
          expected[k][n] = p
          assert(c.codec:send(p, "binary"))
        end
      end
      pending[k] = c.codec:output()
    end

    local function drain(k, timeout)
      local c = clients[k]
      local data = client.recv_some(c.sock, timeout)
      if data then assert(c.codec:feed(data)) end
      while true do
        local kind, msg = c.codec:next()
        if not kind then break end
        assert.equal("binary", kind)
        got[k][#got[k] + 1] = msg
      end
    end

    -- Round robin: a piece of each client's bytes at a time, reading whatever came back.
    local cut, left = 0, CLIENTS
    while left > 0 do
      left = 0
      for k = 1, CLIENTS do
        local bytes = pending[k]
        if #bytes > 0 then
          cut = cut % #CUTS + 1
          local piece = bytes:sub(1, CUTS[cut])
          clients[k].sock:settimeout(5)
          assert(clients[k].sock:send(piece))
          pending[k] = bytes:sub(#piece + 1)
          if #pending[k] > 0 then left = left + 1 end
        end
        drain(k, 0)
      end
    end

    local deadline = socket.gettime() + 20
    for k = 1, CLIENTS do
      while #got[k] < #expected[k] and socket.gettime() < deadline do drain(k, 0.05) end
      assert.equal(#expected[k], #got[k])
      for i = 1, #expected[k] do
        if got[k][i] ~= expected[k][i] then
          error(("client %d message %d: %d bytes back, %d sent"):format(k, i, #got[k][i], #expected[k][i]))
        end
      end
      assert.equal(1000, (clients[k]:close(1000)))
    end
  end)
end)
