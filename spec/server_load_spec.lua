-- Many connections at once: 1,000 clients connected together, each exchanging messages with
-- its own payloads through one server process; and the server's memory per idle connection.
local server = require "support.ws_server"
local client = require "support.ws_client"

local N = 1000

describe("server load", function()
  local srv
  setup(function()
    srv = server.start([[
      listen({ max_connections = 0, http = function() collectgarbage() return 200, {}, "rss=" .. rss_kib() end }, function(conn)
        for msg, kind in conn:messages() do conn:send(msg .. "|" .. conn.id, kind) end
      end)
    ]])
  end)
  teardown(function() srv:stop() end)

  local function rss()
    local _, _, body = client.get(srv.port, "/rss")
    return tonumber(body:match("rss=(%d+)"))
  end

  it("serves 1,000 concurrent connections with the right payloads", function()
    local conns = {}
    for i = 1, N do conns[i] = assert(client.connect(srv.port)) end
    for round = 1, 3 do
      for i = 1, N do assert(conns[i]:send(("c%d-r%d"):format(i, round))) end
      local ids = {}
      for i = 1, N do
        local kind, got = conns[i]:message(10)
        assert.are.equal("text", kind)
        local body, id = got:match("^(.-)|(%d+)$")
        assert.are.equal(("c%d-r%d"):format(i, round), body)
        assert.is_nil(ids[id])
        ids[id] = true
      end
    end
    for i = 1, N do conns[i]:close() end
  end)

  it("keeps idle connections small", function()
    -- a fresh server, so that memory freed by the test above does not hide the cost
    local fresh = server.start([[
      listen({ http = function() collectgarbage() collectgarbage() return 200, {}, "rss=" .. rss_kib() end }, function(conn)
        for msg, kind in conn:messages() do conn:send(msg, kind) end
      end)
    ]])
    local function rss()
      local _, _, body = client.get(fresh.port, "/rss")
      return tonumber(body:match("rss=(%d+)"))
    end
    local before = rss()
    local conns = {}
    for i = 1, N do
      conns[i] = assert(client.connect(fresh.port))
      conns[i]:send("x")
      assert(conns[i]:message(5))
    end
    local after = rss()
    local per = (after - before) * 1024 / N
    print(("\n  server RSS per idle connection: %.0f bytes (%d connections)"):format(per, N))
    -- a coroutine alone is about 1.2 KiB in Lua 5.4; the buffer pool (at most 1 MiB) is shared
    if not os.getenv("WS_TEST_SANITIZE") then -- the sanitizers' allocator inflates RSS
      assert.is_true(per < 8192, "per connection " .. per)
    end
    for i = 1, N do conns[i]:abort() end
    fresh:stop()
  end)
end)
