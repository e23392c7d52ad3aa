-- ws.server: listening, the handshake policy (path, origins, subprotocols, the handshake and
-- http hooks) and the server lifecycle. The protocol checks themselves happen in C
-- (ws_handshake); this file only decides what the application asked for.
local core = require "ws.core"
local conn_mod = require "ws.conn"
local tls_mod = require "ws.tls"
local topics_mod = require "ws.topics"
local check = require "ws.options"

local wait = conn_mod.wait
local chead, crequest, crespond, cupgrade, cchoose = core.head, core.request, core.respond, core.upgrade, core.choose_protocol

local M = {}
local Server = {}
Server.__index = Server
M.Server = Server
topics_mod.install(Server) -- server:publish, server:subscribers
-- The Redis bus's methods (lua/ws/bus_api.lua) replace these when the first bus is created.
for _, name in ipairs({ "history", "presence", "send_to" }) do
  Server[name] = function() error("ws: server:" .. name .. " needs the server's bus option", 2) end
end
for _, name in ipairs({ "track", "untrack" }) do
  conn_mod.methods[name] = function() error("ws: conn:" .. name .. " needs the server's bus option", 2) end
end

-- The servers still listening, for the default SIGINT/SIGTERM handling and the workers mode.
-- Held strongly: a script that keeps no reference to its server (`ws.server(opts, handler)`,
-- then `ws.run()`) must still have it closed gracefully on a signal.
local open_servers = {}
M.open_servers = open_servers

-- The origin policy (ws.url): non-browser clients send no Origin and pass; by default a
-- browser's Origin must name the host it connects to; require_origin = true refuses requests
-- without Origin before any policy is asked.
local origin_policy = require("ws.url").origin_policy

local UPGRADED = {} -- what serve returns to the callback style's dispatch after the 101
local STAGE_NEW, STAGE_OPEN, STAGE_DONE = 0, 1, 3 -- wsl_stage in csrc/binding/lua_core.h
local crecv, cstage, chandoff, cdeferred = core.recv, core.stage, core.handoff, core.deferred

-- The callback style { open =, message =, close = } keeps no coroutine per connection: for
-- each event a pooled thread runs dispatch(conn, stage), which calls what is due and returns when
-- nothing is left to do (the thread goes back to the pool). A callback that waits (a send
-- under backpressure, ws.sleep) keeps its thread until it returns. The progress (handshake
-- done, close called) is kept in C: core.stage, which the loop passes to dispatch.
local function dispatcher(cb, serve)
  local open, message, close = cb.open, cb.message, cb.close
  return function(conn, stage) -- stage: core.stage(conn), passed by the loop
    if stage == STAGE_NEW then
      if serve(conn) ~= UPGRADED then return end -- refused or gone: C finishes it
      local more
      stage, more = cstage(conn, STAGE_OPEN)
      if open then open(conn)
      elseif not more then return end -- nothing to receive yet: core.recv would say false
    end
    local msg, kind
    if message and stage == STAGE_OPEN then -- not after a failed callback
      while true do -- every message waiting, in this one resume
        msg, kind = crecv(conn)
        if not msg then break end
        message(conn, msg, kind)
      end
    else
      repeat msg = crecv(conn) until not msg
    end
    if msg == false then return end -- nothing more for now
    cstage(conn, STAGE_DONE)
    if close then close(conn, conn.close_code, conn.close_reason) end
  end
end

-- The options of ws.server and their types (ws.options); values are checked where they are read.
local OPTIONS = {
  host = "string",
  port = "number",
  unix = "string",
  unix_mode = "mode",
  path = "string",
  routes = "table",
  protocols = "protocols",
  require_protocol = "boolean",
  origins = "origins",
  require_origin = "boolean",
  handshake = "function",
  http = "function",
  compression = { "compression", fields = check.COMPRESSION_FIELDS },
  tls = { "table", fields = { cert = "string", key = "string", ca = "string", verify_peer = "boolean",
                              sni = "table" } },
  max_message = "number",
  max_header_bytes = "number",
  ping_interval = "number",
  ping_timeout = "number",
  idle_timeout = "number",
  open_timeout = "number",
  close_timeout = "number",
  max_connections = "number",
  send_high_water = "number",
  send_low_water = "number",
  max_queue = "number",
  backlog = "number",
  reuseport = "boolean",
  keep_request = "boolean",
  slow_subscriber = "string",
  max_backlog = "number",
  bus = "table",
}
M.OPTIONS = OPTIONS

-- What a route may set for itself; the rest (limits, timeouts, compression, TLS) is the
-- server's, for every path.
local ROUTE_OPTIONS = {
  handler = "function|table",
  protocols = "protocols",
  require_protocol = "boolean",
  origins = "origins",
  require_origin = "boolean",
  handshake = "function",
}
M.ROUTE_OPTIONS = ROUTE_OPTIONS

local CALLBACKS = { open = true, message = true, close = true }

-- Reads the request head: path, upgrade, status, why, origin, host (host only with an origin,
-- the one thing it is compared with); nil when it was answered already (400, 431) or the
-- connection is gone.
local function read_head(conn)
  while true do
    local ok, rpath, upgrade, status, why, origin, host = chead(conn)
    if ok then return rpath, upgrade, status, why, origin, host end
    if ok == nil then
      if type(rpath) == "string" and rpath:sub(1, 5) == "tls: " then -- a failed TLS handshake: logged, nothing else
        core.report("tls", ("handshake with %s:%s failed: %s"):format(conn.remote_addr, conn.remote_port, rpath:sub(6)))
      end
      return nil
    end
    wait(conn, "r")
  end
end

-- One endpoint: a handler (a function, run in its own coroutine, or a callback table) with
-- its handshake policy. Returns upgrade(conn, status, why, origin, host) -> UPGRADED (callback
-- style) | what core.handoff returns | nil when refused, and the callback table or nil.
-- A handshake hook that picks a subprotocol the client did not offer is a server bug: logged,
-- and the client gets a 500.
local function hook_protocol_refused(conn, protocol)
  core.report("handshake", ("the handshake hook chose subprotocol %q, which the client did not offer")
    :format(tostring(protocol)))
  return crespond(conn, 500, nil, "Internal Server Error\n")
end

local function endpoint(opts, handler, where, level)
  level = level + 1
  local cb
  if type(handler) == "table" then
    cb = check.callbacks(where, handler, CALLBACKS, level)
  elseif type(handler) ~= "function" then
    error(where .. ": handler function expected", level)
  end
  local protocols = opts.protocols
  if type(protocols) == "string" then protocols = { protocols } end
  local require_protocol = opts.require_protocol
  local origin_ok = origin_policy(opts.origins, where, level)
  local policy_reads_request = type(opts.origins) == "function" -- the others get no closure per handshake
  local require_origin = opts.require_origin
  local hshook = opts.handshake

  local function upgrade(conn, status, why, origin, host)
    if status ~= 0 then return crespond(conn, status, nil, (why or "Bad Request") .. "\n") end
    if origin == nil and require_origin then return crespond(conn, 403, nil, "Origin required\n") end
    -- Without an Origin only a function policy has anything to decide (the others admit it).
    if origin ~= nil or policy_reads_request then
      local request
      if policy_reads_request then request = function() return crequest(conn) end end
      if not origin_ok(origin, host, request) then
        return crespond(conn, 403, nil, "Origin not allowed\n")
      end
    end
    local protocol
    if protocols then
      protocol = cchoose(conn, protocols)
      if not protocol and require_protocol then
        return crespond(conn, 400, nil, "No supported subprotocol\n")
      end
    end
    local headers, data, compress
    if hshook then
      local accept, a, b, c = hshook(crequest(conn))
      if not accept then return crespond(conn, a or 403, b, c) end
      if type(a) == "table" then
        if a.protocol ~= nil then protocol = a.protocol or nil end
        if protocol ~= nil and type(protocol) ~= "string" then return hook_protocol_refused(conn, protocol) end
        headers, data = a.headers, a.data
        if a.compression == false then compress = false end -- no permessage-deflate for this one
      end
    end
    local ok, _, code = cupgrade(conn, protocol, headers, compress)
    if not ok then
      -- RFC 6455 4.2.2, decided by core.upgrade: only a subprotocol the client offered (ours
      -- always is one); nothing was sent.
      if code == "protocol" then return hook_protocol_refused(conn, protocol) end
      return
    end
    if data ~= nil then conn.data = data end
    if cb then return UPGRADED end
    -- The handler runs in a fresh coroutine: this one's stack grew during the handshake, and
    -- a thread keeps its stack for as long as it lives.
    return chandoff(conn, handler)
  end
  return upgrade, cb
end

-- routes = { ["/path"] = handler | callbacks | { handler =, protocols =, ... } } -> path ->
-- { upgrade =, cb = }. A path is matched without its query, exactly.
local function build_routes(routes, level)
  level = level + 1
  local out = {}
  for rpath, r in pairs(routes) do
    if type(rpath) ~= "string" or rpath:sub(1, 1) ~= "/" then
      error(("ws.server: route '%s' must be a path starting with /"):format(tostring(rpath)), level)
    end
    local where = ("ws.server: route '%s'"):format(rpath)
    local ropts, handler = {}, r
    if type(r) == "table" and r.handler ~= nil then
      ropts = check.options(where, r, ROUTE_OPTIONS, level)
      handler = r.handler
    end
    local upgrade, cb = endpoint(ropts, handler, where, level)
    out[rpath] = { upgrade = upgrade, cb = cb }
  end
  return out
end

-- The dispatch function of a server with routes (one for both styles, since the route is
-- known only once the head is read): for a callback route it goes on as dispatcher does,
-- with the route's callbacks (kept per connection in `route_of`).
local function route_dispatcher(serve, route_of)
  return function(conn, stage)
    local cb
    if stage == STAGE_NEW then
      if serve(conn) ~= UPGRADED then return end
      cb = route_of[conn]
      stage = cstage(conn, STAGE_OPEN)
      if cb.open then cb.open(conn) end
    else
      cb = route_of[conn]
    end
    local message, msg, kind = cb.message, nil, nil
    if message and stage == STAGE_OPEN then
      while true do
        msg, kind = crecv(conn)
        if not msg then break end
        message(conn, msg, kind)
      end
    else
      repeat msg = crecv(conn) until not msg
    end
    if msg == false then return end
    cstage(conn, STAGE_DONE)
    if cb.close then cb.close(conn, conn.close_code, conn.close_reason) end
  end
end

function M.new(opts, handler)
  opts = opts or {}
  check.options("ws.server", opts, OPTIONS, 2)
  local port = opts.port
  if port ~= nil and (port < 0 or port > 65535 or port % 1 ~= 0) then
    error("ws.server: option 'port' must be an integer from 0 to 65535", 2)
  end
  if opts.unix ~= nil and port ~= nil then error("ws.server: options 'unix' and 'port' do not go together", 2) end
  local mode = opts.unix_mode
  if type(mode) == "string" then mode = tonumber(mode, 8) end
  local http = opts.http
  local listen_fn, quiet_close
  if opts.routes ~= nil then
    if handler ~= nil then error("ws.server: routes and a handler do not go together (give the handler a route)", 2) end
    if opts.path ~= nil then error("ws.server: routes and path do not go together", 2) end
    local routes = build_routes(opts.routes, 2)
    local route_of = setmetatable({}, { __mode = "k" })
    local function serve(conn)
      local rpath, upgrade, status, why, origin, host = read_head(conn)
      if not rpath then return end
      local r = routes[rpath:match("^[^?]*")]
      if not upgrade then
        if http then
          local st, headers, body = http(crequest(conn), conn)
          -- A hook that called core.defer(conn) and returned nothing answers later (core.respond).
          if st == nil and cdeferred(conn) then return end
          return crespond(conn, st or 500, headers, body)
        end
        if not r then return crespond(conn, 404, nil, "Not Found\n") end
        return crespond(conn, 426, nil, "WebSocket upgrade expected\n")
      end
      if not r then return crespond(conn, 404, nil, "Not Found\n") end
      local res = r.upgrade(conn, status, why, origin, host)
      if res == UPGRADED then route_of[conn] = r.cb end
      return res
    end
    listen_fn = route_dispatcher(serve, route_of)
  else
    local upgrade, cb = endpoint(opts, handler, "ws.server", 2)
    local path = opts.path
    local function serve(conn)
      local rpath, upgrade_, status, why, origin, host = read_head(conn)
      if not rpath then return end
      if not upgrade_ then
        if http then
          local st, headers, body = http(crequest(conn), conn)
          -- A hook that called core.defer(conn) and returned nothing answers later (core.respond).
          if st == nil and cdeferred(conn) then return end
          return crespond(conn, st or 500, headers, body)
        end
        if path and rpath ~= path then return crespond(conn, 404, nil, "Not Found\n") end
        return crespond(conn, 426, nil, "WebSocket upgrade expected\n")
      end
      if path and rpath ~= path then return crespond(conn, 404, nil, "Not Found\n") end
      return upgrade(conn, status, why, origin, host)
    end
    listen_fn = cb and dispatcher(cb, serve) or serve
    quiet_close = cb ~= nil and cb.close == nil -- a close is only the messages still waiting
  end

  local bus_cfg
  if opts.bus ~= nil then bus_cfg = require("ws.bus").check(opts.bus) end

  local tls_ctx
  if opts.tls ~= nil then
    local terr
    tls_ctx, terr = tls_mod.server_context(opts.tls)
    if not tls_ctx then return nil, terr, "tls" end
  end
  local lopts = opts
  if mode ~= opts.unix_mode then
    lopts = {}
    for k, v in pairs(opts) do lopts[k] = v end
    lopts.unix_mode = mode
  end
  -- Both styles run the handshake on pooled threads; a coroutine-style handler then gets a
  -- thread of its own (core.handoff). Option values C checks are reported at the caller's line.
  local l, err, code = check.relay(2, core.listen, opts.host or "127.0.0.1", port or 0, lopts, listen_fn, true,
    quiet_close)
  if not l then return nil, err, code end
  topics_mod.configure(l, opts) -- slow_subscriber, max_backlog
  if tls_ctx then core.server_set_tls(l, tls_ctx) end
  local srv = setmetatable({ host = opts.host or "127.0.0.1", port = core.server_port(l), _l = l, options = opts }, Server)
  if opts.unix then srv.host, srv.port, srv.unix = nil, nil, opts.unix end
  srv._tls = tls_ctx -- the current TLS context (reload_tls replaces it)
  if bus_cfg then require("ws.bus").attach(srv, bus_cfg) end
  open_servers[srv] = true
  return srv
end

-- New connections get the new certificates ({ cert, key [, ca, verify_peer, sni] }); open
-- ones keep theirs. true | nil, message, "tls".
function Server:reload_tls(opts)
  check.arg("server:reload_tls", "opts", opts, "table", 2)
  local ok, err, code = tls_mod.reload(self, opts) -- not a tail call: its errors name the caller's line
  return ok, err, code
end

-- How many connections the server holds: every accepted socket not yet closed, those still in
-- their handshake or getting an HTTP answer included (what max_connections counts).
function Server:connections()
  return core.server_count(self._l)
end

-- This server's metrics as Prometheus text (ws.metrics() is the whole process's).
function Server:metrics(opts)
  return require("ws.metrics").text(self, opts)
end

-- The WebSocket connections of the server, open or closing, as a new list (a snapshot: a
-- connection may close while you go through it; sending to it then returns nil, "closed").
--   for _, conn in ipairs(server:clients()) do conn:send(msg) end
function Server:clients()
  return core.server_clients(self._l)
end

-- Stop accepting and send a close to every connection (after what is queued for it).
function Server:_begin_close(opts)
  if self.closing then return end
  self.closing = true
  open_servers[self] = nil
  core.server_close(self._l)
  core.server_shutdown(self._l, opts.code or 1001, opts.reason or "server closing")
end

-- Wait for the closing handshakes, at most opts.timeout seconds (default 5), then cut the rest.
-- The bus closes last, once the connections are gone.
function Server:_finish_close(opts)
  local deadline = core.now() + (opts.timeout or 5)
  while core.server_count(self._l) > 0 and core.now() < deadline do
    wait(nil, "t", 0.01)
  end
  if core.server_count(self._l) > 0 then
    core.server_shutdown(self._l, 1001, "", true)
  end
  if self._bus then require("ws.bus").close(self) end
  self.closed = true
end

-- The workers mode (lua/ws/workers.lua, ws.run{ workers = K }). In the master, once, before
-- the workers are forked: the listener stops, its port (resolved if it was 0) stays reserved.
-- true | nil, message, code.
function Server:_before_fork()
  return core.server_park(self._l)
end

-- In each worker (index 1..K), right after the fork and before its loop runs: a listener of
-- its own with SO_REUSEPORT on the master's port. Whatever a server keeps per process (a bus
-- connection) starts here too: extend this method, calling the original first.
-- true | nil, message, code (the worker exits and the master restarts it).
function Server:_after_fork(index) -- luacheck: ignore index (for the methods that extend it)
  return core.server_reopen(self._l)
end

-- The Redis bus: state ("up" | "connecting" | "down"), counters; nil without a bus.
function Server:bus()
  if not self._bus then return nil end
  return require("ws.bus").state(self)
end

-- Graceful close: { code = 1001, reason = "...", timeout = 5 }. Everything queued for a
-- connection is delivered before its close frame.
local CLOSE_OPTIONS = { code = "number", reason = "string", timeout = "number" }

function Server:close(opts)
  check.options("server:close", opts, CLOSE_OPTIONS, 2)
  opts = opts or {}
  self:_begin_close(opts)
  if not self.closed then self:_finish_close(opts) end
  return true
end

return M
