-- The Redis bus in ws.metrics(): its state and counters as Prometheus families, one sample per
-- server with a bus (label `server`, its port), added to ws.metrics' providers with the first bus.
local metrics = require "ws.metrics"
local server_mod = require "ws.server"

local STATES = { "up", "connecting", "down" }

-- counter name in server:bus() -> family name, type, help
local FAMILIES = {
  { "sent", "ws_bus_messages_sent_total", "counter", "Messages this process published to the bus." },
  { "received", "ws_bus_messages_received_total", "counter", "Bus messages this process received." },
  { "unsent", "ws_bus_messages_unsent_total", "counter",
    "Fast-class messages delivered locally but not sent to the bus (bus down)." },
  { "failed", "ws_bus_commands_failed_total", "counter", "Bus commands whose reply was an error or never came." },
  { "foreign", "ws_bus_messages_foreign_total", "counter", "Malformed or foreign messages dropped from the bus." },
  { "reconnects", "ws_bus_reconnects_total", "counter", "Times a bus connection was made again after a loss." },
  { "subscriptions", "ws_bus_subscriptions", "gauge", "Bus channels this process subscribes now." },
  { "delivered", "ws_bus_ordered_delivered_total", "counter", "Ordered-topic messages delivered on this process." },
  { "filled", "ws_bus_ordered_filled_total", "counter", "Ordered-topic messages read back from the stream to fill a gap." },
  { "gaps", "ws_bus_ordered_gaps_total", "counter", "Ordered-topic gaps that could not be filled (reported to on_gap)." },
}

local function servers_of(server)
  if server then return server._bus and { server } or {} end
  local list = {}
  for srv in pairs(server_mod.open_servers) do
    if srv._bus then list[#list + 1] = srv end
  end
  table.sort(list, function(a, b) return (a.port or 0) < (b.port or 0) end)
  return list
end

local function provider(server)
  local list = servers_of(server)
  if #list == 0 then return nil end
  local state_f = { name = "ws_bus_state", type = "gauge",
                    help = "The bus connection's state: 1 for the current one.", samples = {} }
  local lag_f = { name = "ws_bus_lag_seconds", type = "gauge",
                  help = "Publish-to-delivery lag of the last bus message received.", samples = {} }
  local fams = { state_f }
  for i, f in ipairs(FAMILIES) do
    fams[i + 1] = { name = f[2], type = f[3], help = f[4], samples = {} }
  end
  fams[#fams + 1] = lag_f
  for _, srv in ipairs(list) do
    local label = tostring(srv.port)
    local state, counters = srv:bus()
    for _, s in ipairs(STATES) do
      state_f.samples[#state_f.samples + 1] = { value = state == s and 1 or 0, labels = { server = label, state = s } }
    end
    for i, f in ipairs(FAMILIES) do
      local v = counters[f[1]]
      if v then fams[i + 1].samples[#fams[i + 1].samples + 1] = { value = v, labels = { server = label } } end
    end
    if counters.lag_us then
      lag_f.samples[#lag_f.samples + 1] = { value = counters.lag_us / 1e6, labels = { server = label } }
    end
  end
  return fams
end

metrics.add_provider(provider)
return provider
