-- ws.bus: a server's Redis bus (the `bus` option of ws.server). The bus itself is C
-- (csrc/runtime/ws_bus.c: connections, subscriptions per topic, the fast class, reconnects);
-- this file checks the options, creates the bus, routes publishes by topic class, waits for
-- command replies (core.bus_call) and dispatches the envelopes C hands over to handlers by
-- type (M.handlers.o, .j, .l, .d, filled by the ordered/presence/direct modules).
local core = require "ws.core"
local conn_mod = require "ws.conn"

local cwait, yield, now = core.wait, coroutine.yield, core.now
local cbus_request, cbus_result, cbus_cancel = core.bus_request, core.bus_result, core.bus_cancel
local cbus_publish, cpublish_local, cbus_state = core.bus_publish, core.publish_local, core.bus_state

local M = {}

-- handlers[type](bus, topic, data, kind, node, id, offset, epoch, time_us): called from the
-- loop with a plain call; a handler must not wait (to wait, it spawns a task).
M.handlers = {}

local Bus = {}
Bus.__index = Bus
M.Bus = Bus

local DEFAULTS = {
  prefix = "ws:", history = 100, history_ttl = 86400, presence_ttl = 60, linger = 2,
  ping = 5, timeout = 2, max_pending = 100000, max_output = 16 * 1024 * 1024, max_reply = 64 * 1024 * 1024,
}
local NUMBERS = { "history", "history_ttl", "presence_ttl", "linger", "ping", "timeout",
                  "max_pending", "max_output", "max_reply" }

local function percent_decode(s)
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

-- "redis://[[user]:password@]host[:port][/db]" -> { host, port, username, password, db } | nil, error
function M.parse_url(url)
  if type(url) ~= "string" then return nil, "ws.server: bus.url must be a string" end
  local scheme, rest = url:match("^(%a[%w+.-]*)://(.*)$")
  if scheme ~= "redis" and scheme ~= "rediss" then return nil, "ws.server: bus.url must start with redis:// or rediss://" end
  local r = { tls = scheme == "rediss" or nil }
  local auth, hostpart = rest:match("^(.*)@([^@]*)$")
  if not auth then hostpart = rest end
  if auth then
    local user, pass = auth:match("^([^:]*):(.*)$")
    if user then
      if user ~= "" then r.username = percent_decode(user) end
      r.password = percent_decode(pass)
    else
      r.password = percent_decode(auth)
    end
  end
  local hp, db = hostpart:match("^([^/]*)/?(.*)$")
  if db ~= "" then
    if not db:match("^%d+$") then return nil, "ws.server: bus.url: the database must be a number" end
    r.db = tonumber(db)
  end
  local host, port = hp:match("^%[([^%]]+)%]:?(%d*)$")
  if not host then host, port = hp:match("^([^:]*):?(%d*)$") end
  if not host then return nil, "ws.server: bus.url: bad host" end
  r.host = host ~= "" and host or "127.0.0.1"
  r.port = port ~= "" and tonumber(port) or 6379
  if r.port < 1 or r.port > 65535 then return nil, "ws.server: bus.url: port out of range" end
  return r
end

-- A topic-name pattern with '*' wildcards as an anchored Lua pattern.
local function glob(p)
  return "^" .. p:gsub("[%^%$%(%)%%%.%[%]%+%-%?]", "%%%0"):gsub("%*", ".*") .. "$"
end

-- Checked options (with defaults) | raises "ws.server: bus...".
function M.check(o)
  if type(o) ~= "table" then error("ws.server: bus must be a table", 3) end
  local c, err = M.parse_url(o.url)
  if not c then error(err, 3) end
  for k, v in pairs(DEFAULTS) do c[k] = v end
  for _, k in ipairs(NUMBERS) do
    local v = o[k]
    if v ~= nil then
      if type(v) ~= "number" or v ~= v or v < 0 then error("ws.server: bus." .. k .. " must be a non-negative number", 3) end
      c[k] = v
    end
  end
  if o.prefix ~= nil then
    if type(o.prefix) ~= "string" or #o.prefix > 64 then error("ws.server: bus.prefix must be a string of at most 64 bytes", 3) end
    c.prefix = o.prefix
  end
  if o.node ~= nil then
    if type(o.node) ~= "string" or not o.node:match("^[%w._:-]+$") or #o.node > 64 then
      error("ws.server: bus.node must be 1 to 64 of A-Z a-z 0-9 . _ : -", 3)
    end
    c.node = o.node
  end
  c.ordered = {}
  if o.ordered ~= nil then
    if type(o.ordered) == "string" then o.ordered = { o.ordered } end
    if type(o.ordered) ~= "table" then error("ws.server: bus.ordered must be a list of topic patterns", 3) end
    for i, p in ipairs(o.ordered) do
      if type(p) ~= "string" then error("ws.server: bus.ordered must be a list of topic patterns", 3) end
      c.ordered[i] = glob(p)
    end
  end
  if o.format ~= nil and type(o.format) ~= "function" then error("ws.server: bus.format must be a function", 3) end
  if o.tls ~= nil and type(o.tls) ~= "table" then error("ws.server: bus.tls must be a table", 3) end
  if c.tls then -- rediss://: { ca =, verify = true, cert =, key =, server_name = } as for ws.connect
    local ctx, terr = require("ws.tls").client_context(o.tls or {})
    if not ctx then error("ws.server: bus.tls: " .. terr, 3) end
    c.tls = ctx
    c.server_name = o.tls and o.tls.server_name or c.host
  end
  c.format = o.format
  return c
end

-- ---- waiting for replies ----

-- bus_call(cbus, cmd, ...) -> reply | nil, message, code. The calling task waits (yields);
-- on the main thread, outside the loop, the loop runs until the reply comes.
local function call(cbus, ...)
  local req, err, code = cbus_request(cbus, ...)
  if not req then return nil, err, code end
  local deadline = now() + 3600
  while true do
    local done, a, b, c = cbus_result(req)
    if done then return a, b, c end
    -- the bus fails a command itself after its timeout; this bound only guards against a bug
    local left = deadline - now()
    if left <= 0 then
      cbus_cancel(req)
      return nil, "timeout", "timeout"
    end
    if not cwait(nil, "t", left) then yield() end
  end
end
M.call = call
core.bus_call = call -- the agreed name: core.bus_call(bus, cmd, ...)

-- ---- the bus object ----

-- Topic class: true when the topic is ordered (cached per name, bounded).
function Bus:ordered(topic)
  local pats = self.config.ordered
  if #pats == 0 then return false end
  local cache = self._class
  local v = cache[topic]
  if v ~= nil then return v end
  v = false
  for i = 1, #pats do
    if topic:find(pats[i]) then v = true break end
  end
  if self._ncached >= 10000 then cache = {} self._class = cache self._ncached = 0 end
  cache[topic] = v
  self._ncached = self._ncached + 1
  return v
end

function Bus:call(...) return call(self.c, ...) end
function Bus:send(...) return core.bus_send(self.c, ...) end
function Bus:node() return core.bus_node(self.c) end
function Bus:state() return cbus_state(self.c) end
function Bus:close()
  self.closed = true
  return core.bus_close(self.c)
end

local ordered_mod
local function ordered()
  if not ordered_mod then
    local ok, m = pcall(require, "ws.bus_ordered")
    if not ok then error("ws: ordered topics need ws.bus_ordered: " .. tostring(m), 3) end
    ordered_mod = m
  end
  return ordered_mod
end

-- publish(bus, conn_or_nil, topic, data, kind_or_opts) for server:publish and conn:publish.
local function route(b, conn, topic, data, opts)
  local kind = opts
  if type(opts) == "table" then
    kind = opts.kind
    if opts["local"] then return cpublish_local(b.server._l, topic, data, kind, conn) end
  end
  if b.closed then return cpublish_local(b.server._l, topic, data, kind, conn) end -- the server is closing
  if b:ordered(topic) then return ordered().publish(b, conn, topic, data, kind, type(opts) == "table" and opts or nil) end
  return cbus_publish(b.c, topic, data, kind, conn)
end
M.route = route

local by_cbus = setmetatable({}, { __mode = "k" }) -- core bus -> Bus
function M.of(cbus) return by_cbus[cbus] end

local function dispatch_hook(b)
  local handlers = M.handlers
  return function(typ, topic, data, kind, node, id, offset, epoch, time_us)
    local h = handlers[typ]
    if h then return h(b, topic, data, kind, node, id, offset, epoch, time_us) end
  end
end

local conn_publish_installed = false
local function install_conn_publish()
  if conn_publish_installed then return end
  conn_publish_installed = true
  local methods = conn_mod.methods
  local cpub, conn_bus = methods.publish, core.conn_bus
  methods.publish = function(conn, topic, data, opts)
    local cb = conn_bus(conn)
    if not cb then return cpub(conn, topic, data, opts) end
    return route(by_cbus[cb], conn, topic, data, opts)
  end
end

-- Creates the bus of server srv from its `bus` option (opts already checked by M.check).
function M.attach(srv, cfg)
  local b = setmetatable({ server = srv, config = cfg, _class = {}, _ncached = 0 }, Bus)
  b.c = core.bus_new(srv._l, cfg, dispatch_hook(b))
  by_cbus[b.c] = b
  srv._bus = b
  install_conn_publish()
  require "ws.bus_metrics" -- its families in ws.metrics()
  require "ws.bus_api" -- the handlers of ordered, presence and direct messages; their methods
  -- server:publish routes by class; the C method stays for servers without a bus
  srv.publish = function(self, topic, data, opts) return route(self._bus, nil, topic, data, opts) end
  for _, init in pairs(M.on_attach) do init(b) end
  return b
end

-- Modules that add to every bus as it is created (presence refresh timers...): fn(bus).
M.on_attach = {}

-- server:bus() -> state, counters | nil (no bus)
function M.state(srv)
  local b = srv._bus
  if not b then return nil end
  return cbus_state(b.c)
end

function M.close(srv)
  local b = srv._bus
  if b then
    b.closed = true
    core.bus_close(b.c)
  end
end

return M
