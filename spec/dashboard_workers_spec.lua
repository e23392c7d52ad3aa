-- examples/dashboard.lua on two workers sharing a Redis bus: a dashboard socket on either worker
-- receives the snapshots of both (one line per worker on the page), each with its worker's own
-- counters. Our client on the dashboard's socket; a redis-server of the spec's own.
local cjson = require "cjson"
local helper = require "helper"
local harness = require "support.chat_harness"
local redis_mod = require "support.redis"
local client = require "support.ws_client"

describe("the dashboard on workers", function()
  it("refuses --workers without --redis", function()
    local ok, code, _, err = helper.run({ helper.lua, "examples/dashboard.lua", "--port", "0", "--workers", "2" },
      { timeout = 10 })
    assert.is_false(ok and code == 0)
    assert.equal(2, code)
    assert.truthy(err:find("--workers needs --redis", 1, true))
  end)

  it("gives every page the snapshots of every worker", function()
    local redis = redis_mod.start()
    local dash = harness.start_example("examples/dashboard.lua", { "--redis", redis.url, "--workers", "2" })
    finally(function()
      dash.stop()
      redis.stop()
    end)
    -- The listening line comes from the master, before its workers open their listeners.
    local c
    assert.is_true(helper.wait_until(function()
      c = client.connect(dash.port, { path = "/dashboard" })
      return c ~= nil
    end, 10), "the workers never answered")
    local seen = {}
    local deadline = os.time() + 15
    while os.time() < deadline do
      local kind, msg = c:message(2)
      if kind == "text" then
        local m = cjson.decode(msg)
        if m.type == "sample" then
          seen[m.sample.worker] = m.sample
          assert.equal(2, m.sample.workers)
        end
      end
      if seen["1"] and seen["2"] then break end
    end
    c:close()
    assert.truthy(seen["1"], "no snapshot of worker 1")
    assert.truthy(seen["2"], "no snapshot of worker 2")
    assert.is_nil(seen.main)
    -- the dashboard's own socket counts on the worker it landed on only
    assert.equal(1, (seen["1"].connections or 0) + (seen["2"].connections or 0))
  end)
end)
