-- A server's bus counters for the bench servers: start(server) prints server:bus() as one line
-- on stdout every 0.25 s when it changed, keys sorted:
--   bus state=up failed=0 foreign=0 own=N received=N reconnects=0 sent=N ...
-- bench/run_bus.sh waits until the last line of each server stops changing, then stops the
-- servers and reads that line (a closed bus reports no counters, and SIGTERM closes it).
local ws = require "ws"

return function(server)
  local last
  ws.spawn(function()
    while true do
      local state, counters = server:bus()
      local parts = { "bus", "state=" .. tostring(state) }
      local keys = {}
      for k in pairs(counters or {}) do keys[#keys + 1] = k end
      table.sort(keys)
      -- lag_us changes with every message; it is not a count
      for _, k in ipairs(keys) do if k ~= "lag_us" then parts[#parts + 1] = k .. "=" .. tostring(counters[k]) end end
      local line = table.concat(parts, " ")
      if line ~= last then
        print(line)
        io.stdout:flush()
        last = line
      end
      ws.sleep(0.25)
    end
  end)
end
