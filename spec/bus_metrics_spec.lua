-- The Redis bus in ws.metrics(): its state and counters, read back with prometheus_client's
-- parser (Python), while Redis is up and after it is gone.
local helper = require "helper"
local server = require "support.ws_server"
local client = require "support.ws_client"
local redis_mod = require "support.redis"

local scrape = require "support.metrics_scrape"

describe("bus metrics", function()
  local redis, srv
  setup(function()
    redis = redis_mod.start()
    srv = server.start(([[
      local main
      main = listen({ bus = { url = %q, linger = 0.1, ping = 0.2, timeout = 0.3 }, ping_interval = 0,
                      http = ws.metrics_handler() }, function(conn)
        conn:subscribe("news")
        for msg in conn:messages() do conn:send("published " .. main:publish("news", msg)) end
      end)
    ]]):format(redis.url))
  end)
  teardown(function()
    if srv then srv:stop() end
    if redis then redis.stop() end
  end)

  it("gives the bus's state and counters per server", function()
    local label = "server=" .. srv.port
    local c = assert(client.connect(srv.port))
    local r
    assert.is_true(helper.wait_until(function()
      r = scrape(srv.port)
      return r.samples["ws_bus_state{" .. label .. ",state=up}"] == 1
        and (r.samples["ws_bus_subscriptions{" .. label .. "}"] or 0) >= 1
    end, 10), "the bus never came up with a subscription")
    c:send("hello")
    local _, msg = c:message(5)
    assert.equal("hello", msg) -- its own subscription
    _, msg = c:message(5)
    assert.equal("published 1", msg)
    assert.is_true(helper.wait_until(function()
      r = scrape(srv.port)
      return (r.samples["ws_bus_messages_sent_total{" .. label .. "}"] or 0) >= 1
    end, 5))
    assert.equal("gauge", r.families.ws_bus_state)
    assert.equal("counter", r.families.ws_bus_messages_sent)
    assert.equal(0, r.samples["ws_bus_messages_unsent_total{" .. label .. "}"])
    assert.equal(0, r.samples["ws_bus_state{" .. label .. ",state=down}"])

    redis.stop()
    assert.is_true(helper.wait_until(function()
      r = scrape(srv.port)
      return r.samples["ws_bus_state{" .. label .. ",state=up}"] == 0
    end, 10), "the bus still says up with Redis gone")
    c:send("while down")
    _, msg = c:message(5)
    assert.equal("while down", msg) -- the local subscriber still gets it
    _, msg = c:message(5)
    assert.equal("published 1", msg)
    r = scrape(srv.port)
    assert.equal(1, r.samples["ws_bus_messages_unsent_total{" .. label .. "}"])
    c:close()
  end)
end)

describe("a closed bus", function()
  it("keeps its last counters for server:bus()", function()
    local redis = redis_mod.start()
    finally(redis.stop)
    local ok, code, out, err = helper.run({ helper.lua, "-e", ([[
      package.path = %q
      package.cpath = %q
      local ws = require "ws"
      local srv = assert(ws.server({ port = 0, bus = { url = %q, node = "closing" } }, function() end))
      ws.spawn(function()
        for _ = 1, 200 do
          if srv:bus() == "up" then break end
          ws.sleep(0.02)
        end
        for i = 1, 5 do srv:publish("news", "m" .. i) end
        ws.sleep(0.2)
        srv:close()
        local state, c = srv:bus()
        print(state, c.sent, c.error)
      end)
      ws.run()
    ]]):format(helper.lpath .. ";;", helper.cpath .. ";;", redis.url) }, { timeout = 20 })
    assert.is_true(ok, tostring(code) .. "\n" .. tostring(out) .. tostring(err))
    assert.equal("down\t5\tbus closed\n", out)
  end)
end)
