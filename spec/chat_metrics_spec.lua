-- examples/chat.lua serves GET /metrics (Prometheus' text format, read back with
-- prometheus_client's parser) beside GET /stats, under a small load from Python's websockets.
local helper = require "helper"
local cjson = require "cjson"
local harness = require "support.chat_harness"

describe("examples/chat.lua metrics", function()
  local server
  setup(function() server = harness.start_chat() end)
  teardown(function() if server then server.stop() end end)

  it("counts a small load in GET /metrics and keeps GET /stats", function()
    local ok, code, out, err = helper.run({ helper.python, helper.root .. "/spec/support/chat_load.py",
      server.ws_url, "4", "5" }, { timeout = 60 })
    assert.is_true(ok, ("exit %s\n%s\n%s"):format(tostring(code), out, err))
    assert.matches("^ok %d+", out)
    local status, _, body = harness.http(server.port, "GET", "/metrics")
    assert.are.equal(200, status)
    if os.getenv("WS_PRINT_METRICS") then io.stderr:write("\n", body) end
    ok, code, out, err = helper.run({ helper.python, helper.root .. "/spec/support/metrics_peer.py",
      server.base .. "/metrics" }, { timeout = 30 })
    assert.is_true(ok, ("exit %s\n%s\n%s"):format(tostring(code), out, err))
    assert.matches("content-type text/plain; version=0.0.4; charset=utf-8\n", out, 1, true)
    local samples = {}
    for name, labels, value in out:gmatch("sample (%S+) (%S+) (%S+)") do
      samples[labels == "-" and name or name .. "{" .. labels .. "}"] = tonumber(value)
    end
    assert.are.equal(4, samples.ws_connections_accepted_total)
    -- 4 joins and 20 messages at least (the clients may close before the server reads a close)
    assert.is_true(samples.ws_messages_received_total >= 24, out)
    assert.is_true(samples.ws_messages_sent_total > samples.ws_messages_received_total, out)
    assert.is_true(samples.ws_bytes_received_total > 0 and samples.ws_bytes_sent_total > 0, out)
    local stats_status, _, stats = harness.http(server.port, "GET", "/stats")
    assert.are.equal(200, stats_status)
    assert.is_number(cjson.decode(stats).connections)
  end)
end)
