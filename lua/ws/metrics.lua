-- ws.metrics: the counters of the runtime (kept in C where the events happen, read with one
-- call: core.metrics) as Prometheus' text exposition format, version 0.0.4.
-- Other parts add their own metric families through M.providers (see M.add_provider).
local core = require "ws.core"

local M = {}

M.CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

-- Metric families from other parts of lua-ws or from the application (a message bus, a
-- worker pool): each provider is a function(server_or_nil) returning a list of families
--   { name = "ws_bus_messages_sent_total", type = "counter", help = "...",
--     samples = { { value = 12, labels = { state = "up" } }, ... } }
-- or nil. server_or_nil is the server whose metrics are asked for, nil for the process.
M.providers = {}

function M.add_provider(fn)
  if type(fn) ~= "function" then error("ws.metrics.add_provider: function expected", 2) end
  M.providers[#M.providers + 1] = fn
  return fn
end

local function escape(v)
  return (tostring(v):gsub("\\", "\\\\"):gsub("\n", "\\n"):gsub('"', '\\"'))
end

local function number(v)
  if v ~= v then return "NaN" end
  if v == math.huge then return "+Inf" end
  if v == -math.huge then return "-Inf" end
  if math.type and math.type(v) == "integer" then return tostring(v) end
  if v == math.floor(v) and v > -2^53 and v < 2^53 then return ("%d"):format(v) end
  return ("%.17g"):format(v)
end

local function label_text(labels, extra)
  local keys = {}
  for k in pairs(labels or {}) do keys[#keys + 1] = k end
  for k in pairs(extra or {}) do if not (labels and labels[k] ~= nil) then keys[#keys + 1] = k end end
  if #keys == 0 then return "" end
  table.sort(keys)
  local parts = {}
  for i, k in ipairs(keys) do
    local v = labels and labels[k]
    if v == nil then v = extra[k] end
    parts[i] = ('%s="%s"'):format(k, escape(v))
  end
  return "{" .. table.concat(parts, ",") .. "}"
end

local function render(out, fam, const_labels)
  out[#out + 1] = ("# HELP %s %s"):format(fam.name, (fam.help or ""):gsub("\\", "\\\\"):gsub("\n", "\\n"))
  out[#out + 1] = ("# TYPE %s %s"):format(fam.name, fam.type or "untyped")
  for _, s in ipairs(fam.samples or {}) do
    out[#out + 1] = fam.name .. label_text(s.labels, const_labels) .. " " .. number(s.value)
  end
end

-- Codes from a { [code] = n } table in ascending order, "other" last.
local function by_code(t, label)
  local codes = {}
  for k in pairs(t) do codes[#codes + 1] = k end
  table.sort(codes, function(a, b)
    if type(a) == type(b) then return a < b end
    return type(a) == "number"
  end)
  local samples = {}
  for i, k in ipairs(codes) do samples[i] = { value = t[k], labels = { [label] = tostring(k) } } end
  return samples
end

local function one(v) return { { value = v } } end

-- The families of the runtime's counters (c: what core.metrics returns).
function M.families(c)
  return {
    { name = "ws_connections", type = "gauge", help = "WebSocket connections open now (upgraded, not closed yet).",
      samples = one(c.connections) },
    { name = "ws_connections_accepted_total", type = "counter",
      help = "WebSocket connections opened: handshakes completed (101 sent, or received by a client).",
      samples = one(c.accepted) },
    { name = "ws_handshakes_refused_total", type = "counter",
      help = "Requests for a WebSocket answered with an HTTP error instead of 101, by status (bad requests, origin, path, handshake hook).",
      samples = by_code(c.refused, "status") },
    { name = "ws_tls_handshake_failures_total", type = "counter", help = "TLS handshakes that failed.",
      samples = one(c.tls_failures) },
    { name = "ws_messages_received_total", type = "counter", help = "Data messages (text and binary) received.",
      samples = one(c.messages_received) },
    { name = "ws_messages_sent_total", type = "counter",
      help = "Data messages queued for sending; a publish counts once per subscriber it reached.",
      samples = one(c.messages_sent) },
    { name = "ws_bytes_received_total", type = "counter", help = "Payload bytes of the data messages received (after decompression).",
      samples = one(c.bytes_received) },
    { name = "ws_bytes_sent_total", type = "counter", help = "Payload bytes of the data messages sent (before compression).",
      samples = one(c.bytes_sent) },
    { name = "ws_messages_dropped_total", type = "counter",
      help = "Published messages not delivered to a subscriber whose send queue was over its limit.",
      samples = one(c.dropped) },
    { name = "ws_closes_total", type = "counter",
      help = "Open connections closed, by close code: the peer's code (1005: none given, 1006: no close frame came), or ours when this side failed the connection.",
      samples = by_code(c.closes, "code") },
    { name = "ws_ping_timeouts_total", type = "counter", help = "Connections closed because no pong came within ping_timeout.",
      samples = one(c.ping_timeouts) },
    { name = "ws_send_queue_bytes", type = "gauge", help = "Bytes queued for sending on the server connections now.",
      samples = one(c.send_queue_bytes) },
    { name = "ws_topics", type = "gauge", help = "Publish/subscribe topics with at least one subscriber now.",
      samples = one(c.topics) },
    { name = "ws_subscriptions", type = "gauge", help = "Topic subscriptions of all connections now.",
      samples = one(c.subscriptions) },
  }
end

-- The exposition text. server: one server (its _l), or nil for the whole process.
-- opts.labels: labels added to every sample (for example { worker = "2" }).
function M.text(server, opts)
  local c = core.metrics(server and server._l or nil)
  local fams = M.families(c)
  for _, p in ipairs(M.providers) do
    local extra = p(server)
    if extra then for _, f in ipairs(extra) do fams[#fams + 1] = f end end
  end
  local out = {}
  local labels = opts and opts.labels
  for _, f in ipairs(fams) do render(out, f, labels) end
  out[#out + 1] = ""
  return table.concat(out, "\n")
end

-- The raw numbers, as core.metrics returns them (for dashboards and tests).
function M.snapshot(server)
  return core.metrics(server and server._l or nil)
end

-- An `http` handler for a server's options: GET (or HEAD) on opts.path (default "/metrics")
-- answers the exposition; other requests go to opts.fallback(req) (default: 404).
-- opts.server: report only that server (default: the whole process).
function M.handler(opts)
  opts = opts or {}
  if type(opts) ~= "table" then error("ws.metrics_handler: options table expected", 2) end
  local path = opts.path or "/metrics"
  local fallback = opts.fallback
  if fallback ~= nil and type(fallback) ~= "function" then error("ws.metrics_handler: fallback must be a function", 2) end
  return function(req)
    if req.path == path then
      if req.method ~= "GET" and req.method ~= "HEAD" then
        return 405, { ["Allow"] = "GET, HEAD", ["Content-Type"] = "text/plain" }, "method not allowed\n"
      end
      return 200, { ["Content-Type"] = M.CONTENT_TYPE, ["Cache-Control"] = "no-store" }, M.text(opts.server, opts)
    end
    if fallback then return fallback(req) end
    return 404, { ["Content-Type"] = "text/plain" }, "Not Found\n"
  end
end

return M
