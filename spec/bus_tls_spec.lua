-- The Redis bus over TLS (rediss://) through lua-ws's own OpenSSL layer, against a TLS-only
-- redis-server of the spec's own (certificates from spec/support/certs.lua).
local ws = require "ws"
local core = require "ws.core"
local certs = require "support.certs"
local redis_mod = require "support.redis"
local loop = require "support.on_loop"

local wait_until = loop.wait_until

describe("the Redis bus over TLS", function()
  local C, redis
  setup(function()
    C = certs.make()
    redis = redis_mod.start({ tls = { cert = C.cert, key = C.key, ca = C.ca } })
  end)
  teardown(function() if redis then redis.stop() end end)

  it("connects with rediss://, verifies the certificate and carries calls and fast publishes", function()
    local a = assert(ws.server({ port = 0, bus = { url = redis.url, node = "tA", tls = { ca = C.ca } } }, function() end))
    local b = assert(ws.server({ port = 0, bus = { url = redis.url, node = "tB", tls = { ca = C.ca } } }, function(conn)
      conn:subscribe("room")
      for _ in conn:messages() do end
    end))
    assert.truthy(wait_until(function() return a:bus() == "up" and b:bus() == "up" end))
    local big = string.rep("z", 300000) -- many TLS records each way
    local ok = false
    ws.spawn(function()
      assert.equal("OK", core.bus_call(a._bus.c, "SET", "k", big))
      ok = core.bus_call(a._bus.c, "GET", "k") == big
    end)
    assert.truthy(wait_until(function() return ok end))
    local c = assert(ws.connect(("ws://127.0.0.1:%d/"):format(b.port)))
    assert.truthy(wait_until(function() return redis.cli("PUBSUB", "NUMSUB", "ws:t:room"):match("\n(%d+)$") == "1" end))
    for i = 1, 500 do a:publish("room", "m" .. i) end
    for i = 1, 500 do assert.equal("m" .. i, (c:receive(5))) end
    c:close()
    a:close()
    b:close()
  end)

  it("stays down with the reason when the certificate does not verify", function()
    local s = assert(ws.server({ port = 0, bus = { url = redis.url, node = "tC", tls = { ca = C.ca2 } } }, function() end))
    local err
    assert.truthy(wait_until(function()
      local st, c = s:bus()
      err = c.error
      return st == "down" and err
    end))
    assert.matches("^tls: certificate verify failed", err)
    s:close()
  end)
end)
