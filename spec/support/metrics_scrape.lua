-- Reads a server's GET /metrics with prometheus_client's own parser (spec/support/metrics_peer.py),
-- optionally after traffic from Python's websockets (ws_url, count messages, closed with code).
--   local scrape = require "support.metrics_scrape"
--   scrape(port [, ws_url, count, code]) -> { families = { name = type },
--     samples = { ["name{labels}"] = value }, content_type = "..." }
local helper = require "helper"

local PEER = helper.root .. "/spec/support/metrics_peer.py"

return function(port, ws_url, count, code)
  local argv = { helper.python, PEER, ("http://127.0.0.1:%d/metrics"):format(port) }
  if ws_url then
    argv[#argv + 1] = ws_url
    argv[#argv + 1] = tostring(count)
    argv[#argv + 1] = tostring(code)
  end
  local ok, exit, out, err = helper.run(argv, { timeout = 30 })
  assert(ok, ("metrics peer failed (exit %s)\n%s\n%s"):format(tostring(exit), out, err))
  local r = { families = {}, samples = {} }
  r.content_type = out:match("content%-type ([^\n]+)")
  for name, typ in out:gmatch("family (%S+) (%S+)") do r.families[name] = typ end
  for name, labels, value in out:gmatch("sample (%S+) (%S+) (%S+)") do
    local key = labels == "-" and name or (name .. "{" .. labels .. "}")
    r.samples[key] = tonumber(value)
  end
  return r
end
