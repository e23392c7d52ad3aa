-- A server's bus counters for the bench servers: start(server) keeps a snapshot of server:bus()
-- every 0.1 s (a closed bus reports no counters, and SIGTERM closes it); print() writes the last
-- snapshot as one line on stdout, keys sorted:
--   bus state=up failed=0 foreign=0 own=N received=N reconnects=0 sent=N ...
-- bench/run_bus.sh reads it from the server's log after the server has stopped (it waits more
-- than 0.1 s after the last message before stopping it).
local ws = require "ws"

return function(server)
  local last = "bus state=none"
  local function snapshot()
    local state, counters = server:bus()
    local parts = { "bus", "state=" .. tostring(state) }
    local keys = {}
    for k in pairs(counters or {}) do keys[#keys + 1] = k end
    table.sort(keys)
    for _, k in ipairs(keys) do parts[#parts + 1] = k .. "=" .. tostring(counters[k]) end
    last = table.concat(parts, " ")
  end
  ws.spawn(function()
    while true do
      snapshot()
      ws.sleep(0.1)
    end
  end)
  return {
    print = function()
      print(last)
      io.stdout:flush()
    end,
  }
end
