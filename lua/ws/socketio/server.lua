-- Socket.IO protocol v5 over the Engine.IO sessions of ws.socketio.engine: namespaces with
-- their middleware, sockets, events, acknowledgements both ways, rooms and broadcasts.
-- Rooms are lua-ws topics ("sio:<namespace>#<room>") for WebSocket sessions, so a broadcast
-- is one publish (and, with the Redis bus, reaches the other nodes); sessions still on
-- long-polling are kept in a Lua set per room and get the packet queued besides.
-- With the Redis bus (the server's `bus` option) every broadcast also goes to the other nodes
-- as one application envelope (type "a") per room, published on that room's topic channel;
-- a node holds (core.bus_hold) the topics of the rooms, socket ids and namespaces it has
-- members of, whatever their transport, so it receives exactly those, and delivers each
-- envelope to its own members of that room that are in none of the broadcast's earlier rooms
-- (each socket gets a broadcast to several rooms once). Own envelopes are skipped: the
-- publishing node delivers to its members itself.
local core = require "ws.core"
local conn_mod = require "ws.conn"
local parser = require "ws.socketio.parser"
local engine_mod = require "ws.socketio.engine"

local wait = conn_mod.wait
local now, crecv = core.now, core.recv
local encode, encode_parts, array = parser.encode, parser.encode_parts, parser.array
local EVENT, ACK, CONNECT, DISCONNECT, CONNECT_ERROR = parser.EVENT, parser.ACK, parser.CONNECT, parser.DISCONNECT, parser.CONNECT_ERROR
local BINARY_EVENT, BINARY_ACK = parser.BINARY_EVENT, parser.BINARY_ACK
local unpack = table.unpack or unpack
local traceback = debug.traceback
local jencode = parser.json.encode
local wsend = conn_mod.methods.send -- conn:send without the method lookup
local select, type, pairs, next = select, type, pairs, next
local format, ssub = string.format, string.sub
local sio_ack = core.sio_ack
local LOCAL_TEXT, LOCAL_BINARY

local M = {}

local by_server = setmetatable({}, { __mode = "k" }) -- server -> io, for the bus's "a" handler

local RESERVED = { connect = true, connect_error = true, disconnect = true, disconnecting = true,
                   newListener = true, removeListener = true }

-- Calls fn(...) and reports an error (with its traceback) instead of raising it.
local function guarded(where, fn, ...)
  local ok, err = xpcall(fn, debug.traceback, ...)
  if not ok then core.report(where, err) end
  return ok
end

-- ---- the Redis bus ----

-- The server's bus (ws.bus's Bus) when it has one and it is open.
local function bus_of(io)
  local srv = io.server
  local b = srv and srv._bus
  if b and not b.closed then return b end
  return nil
end

-- Takes (on = true) or gives back a hold on a topic: the node receives the topic's channel.
local function hold(io, topic, on)
  local b = bus_of(io)
  if b then core.bus_hold(b.c, topic, on) end
end

local function all_topic(nsp) return "sio-all:" .. nsp.name end

-- ---- the server ----

local IO = {}
IO.__index = IO
M.IO = IO

local Namespace = {}
Namespace.__index = Namespace
M.Namespace = Namespace

local Socket = {}
Socket.__index = Socket
M.Socket = Socket

local Client = {} -- one Engine.IO session and the sockets (one per namespace) on it
Client.__index = Client

local Operator = {} -- a broadcast in the making: rooms, exceptions, flags
Operator.__index = Operator

-- opts: ping_interval, ping_timeout, max_payload, max_attachments, connect_timeout, ...
function M.new(opts)
  local io = setmetatable({
    opts = opts,
    nsps = {},
    max_attachments = opts.max_attachments or 10,
    connect_timeout = opts.connect_timeout or 45,
    clients = {},
  }, IO)
  io.engine = engine_mod.new(opts, {
    open = function(s) io:_client_open(s) end,
    message = function(s, data, binary) return s.client:_on_data(data, binary) end,
    upgrade = function(s) s.client:_upgraded() end,
    close = function(s, reason) if s.client then s.client:_closed(reason) end end,
  })
  io.engine.tick_hook = function(t) io:_tick(t) end
  io.engine.h.text = M._on_text -- a WebSocket text message "4...": the common packets without a copy
  io.sockets = io:of("/")
  return io
end

-- The namespace called name ("/admin"), created on first use.
function IO:of(name)
  if type(name) ~= "string" then error("socketio: namespace name expected", 2) end
  if name:sub(1, 1) ~= "/" then name = "/" .. name end
  local nsp = self.nsps[name]
  if not nsp then
    nsp = setmetatable({ name = name, io = self, sockets = {}, handlers = {}, middleware = {},
                         poll_rooms = {}, rooms = {} }, Namespace)
    self.nsps[name] = nsp
  end
  return nsp
end

-- The default namespace's methods on the server itself.
function IO:on(event, fn) self.sockets:on(event, fn); return self end
function IO:use(fn) self.sockets:use(fn); return self end
function IO:to(room) return self.sockets:to(room) end
IO["in"] = IO.to
function IO:except(room) return self.sockets:except(room) end
function IO:emit(event, ...) return self.sockets:emit(event, ...) end
function IO:disconnect_sockets(close) return self.sockets:disconnect_sockets(close) end

function IO:_client_open(s)
  local c = setmetatable({ io = self, session = s, sockets = {}, count = 0,
                           decoder = parser.decoder({ max_attachments = self.max_attachments }),
                           connect_deadline = now() + self.connect_timeout }, Client)
  s.client = c
  self.clients[c] = true
end

-- Run by the engine's heartbeat task: clients that never connected a namespace, and ack timeouts.
function IO:_tick(t)
  for c in pairs(self.clients) do
    if c.count == 0 and c.connect_deadline and t >= c.connect_deadline then
      c.session:close("forced close")
    end
  end
  local timers = self.ack_timers
  if timers then
    for sock, acks in pairs(timers) do
      for id, deadline in pairs(acks) do
        if t >= deadline then
          acks[id] = nil
          local fn = sock.acks[id]
          sock.acks[id] = nil
          if fn then guarded("socketio ack timeout", fn, "operation has timed out") end
        end
      end
      if next(acks) == nil then timers[sock] = nil end
    end
  end
end

-- ---- clients (an Engine.IO session) ----

-- Sends an encoded packet and its attachments on this client's session.
function Client:_send(text, atts, nowait)
  local s = self.session
  if not s:send_message(text, nowait) then return false end
  if atts then
    for i = 1, #atts do s:send_binary(atts[i], nowait) end
  end
  return true
end

function Client:_send_packet(p, nowait)
  local text, atts = encode(p)
  return self:_send(text, atts, nowait)
end

local decode_text, decode_common = parser.decode_text, parser.decode_common

-- A WebSocket text message "4<packet>": the common packets (EVENT and ACK of "/" without
-- attachments) straight from the message, anything else through _on_data.
local function on_text(s, msg)
  local self = s.client
  if not self.decoder.pending then
    local t, id, data, digits = decode_common(msg, 2)
    if t then
      local sock = self.sockets["/"]
      if not sock then return true end -- not connected to that namespace: ignored
      if t == EVENT then sock:_on_event(data, id, digits)
      else sock:_on_ack(id, data) end
      return true
    elseif t == false then
      self:_close("parse error")
      return false
    end
  end
  return self:_on_data(ssub(msg, 2), false)
end
M._on_text = on_text

function Client:_on_data(data, binary)
  local p
  local d = self.decoder
  if binary or d.pending then
    p = d:add(data, binary)
  else -- a text packet with nothing pending: the decoder's own first step, without its call
    p = decode_text(data, d.max_attachments)
    if p and p.attachments then p = d:add(data, false) end
  end
  if p == false then return true end
  if not p then
    self:_close("parse error")
    return false
  end
  local t, nsp_name = p.type, p.nsp
  if t == CONNECT then
    self:_connect(nsp_name, p.data)
    return true
  end
  local sock = self.sockets[nsp_name]
  if not sock then return true end -- not connected to that namespace: ignored
  if t == EVENT or t == BINARY_EVENT then
    sock:_on_event(p.data, p.id)
  elseif t == ACK or t == BINARY_ACK then
    sock:_on_ack(p.id, p.data)
  elseif t == DISCONNECT then
    sock:_on_close("client namespace disconnect")
  else -- CONNECT_ERROR from a client
    self:_close("parse error")
    return false
  end
  return true
end

function Client:_connect(name, auth)
  local io = self.io
  local nsp = io.nsps[name]
  if not nsp then
    self:_send_packet({ type = CONNECT_ERROR, nsp = name, data = { message = "Invalid namespace" } })
    return
  end
  if self.sockets[name] then return end
  local s = self.session
  local req = s.request or {}
  local sock = setmetatable({
    id = engine_mod.new_id(),
    nsp = nsp,
    client = self,
    server = io,
    connected = false,
    data = {},
    rooms = {},
    handlers = {},
    acks = {},
    ack_seq = 0,
    handshake = {
      auth = type(auth) == "table" and auth or {},
      headers = req.headers or {},
      query = engine_mod.parse_query(req.query),
      address = req.remote_addr,
      url = req.target,
      time = os.date("!%Y-%m-%dT%H:%M:%SZ"),
      issued = os.time() * 1000,
      secure = false,
      xdomain = req.headers and req.headers.origin ~= nil or false,
    },
  }, Socket)
  sock.broadcast = setmetatable({ nsp = nsp, rooms = {}, excepts = {}, sender = sock }, Operator)
  self.sockets[name] = sock -- reserved while the middleware runs: a second CONNECT is ignored
  for _, mw in ipairs(nsp.middleware) do
    local called, err
    local ok, perr = xpcall(mw, debug.traceback, sock, function(e) called = true; err = e end)
    if not ok then
      core.report("socketio middleware", perr)
      called, err = true, { message = "Internal server error" }
    elseif not called then
      core.report("socketio middleware", "a middleware returned without calling next")
      called, err = true, { message = "Internal server error" }
    end
    if err ~= nil then
      if self.sockets[name] == sock then self.sockets[name] = nil end
      local data
      if type(err) == "table" then
        data = { message = tostring(err.message or "error"), data = err.data }
      else
        data = { message = tostring(err) }
      end
      self:_send_packet({ type = CONNECT_ERROR, nsp = name, data = data })
      return
    end
    if s.state ~= "open" or self.sockets[name] ~= sock then return end -- gone meanwhile
  end
  sock.connected = true
  self.count = self.count + 1
  self.connect_deadline = nil
  if io.server and io.server._bus then
    if next(nsp.sockets) == nil then hold(io, all_topic(nsp), true) end
    hold(io, nsp:_topic(sock.id), true)
  end
  nsp.sockets[sock.id] = sock
  self:_send_packet({ type = CONNECT, nsp = name, data = { sid = sock.id } })
  local fns = nsp.handlers.connection
  if fns then
    for i = 1, #fns do
      if not sock.connected then break end
      guarded("socketio connection", fns[i], sock)
    end
  end
end

-- Upgraded to WebSocket: the rooms of its sockets become topic subscriptions.
function Client:_upgraded()
  local conn = self.session.conn
  for _, sock in pairs(self.sockets) do
    local nsp = sock.nsp
    for room in pairs(sock.rooms) do
      local set = nsp.poll_rooms[room]
      if set then
        set[sock] = nil
        if next(set) == nil then nsp.poll_rooms[room] = nil end
      end
      conn:subscribe(nsp:_topic(room))
    end
  end
end

-- The session ended (the engine says why).
function Client:_closed(reason)
  self.io.clients[self] = nil
  local list = {}
  for _, sock in pairs(self.sockets) do list[#list + 1] = sock end
  for _, sock in ipairs(list) do sock:_on_close(reason) end
  self.sockets = {}
end

-- Ends the connection (a protocol error): its sockets go at once, the client gets the
-- Engine.IO close packet (with its next poll, or as the WebSocket closes).
function Client:_close(reason)
  self:_closed(reason)
  self.session:close(reason)
end

-- ---- sockets ----

function Socket:on(event, fn)
  if type(event) ~= "string" then error("socket:on: event name expected", 2) end
  if type(fn) ~= "function" then error("socket:on: function expected", 2) end
  local list = self.handlers[event]
  if not list then list = {}; self.handlers[event] = list end
  list[#list + 1] = fn
  return self
end

function Socket:once(event, fn)
  local wrapper
  wrapper = function(...)
    self:off(event, wrapper)
    return fn(...)
  end
  return self:on(event, wrapper)
end

function Socket:off(event, fn)
  if event == nil then self.handlers = {}; return self end
  local list = self.handlers[event]
  if not list then return self end
  if fn == nil then self.handlers[event] = nil; return self end
  for i = #list, 1, -1 do
    if list[i] == fn then table.remove(list, i) end
  end
  return self
end

-- Every incoming event: fn(event, ...).
function Socket:on_any(fn)
  if type(fn) ~= "function" then error("socket:on_any: function expected", 2) end
  self.any = self.any or {}
  self.any[#self.any + 1] = fn
  return self
end

local function call_handlers(sock, list, ...)
  for i = 1, #list do
    guarded("socketio event", list[i], ...)
  end
end

-- The acknowledgement handed to an event's handler: ack(...) sends the client's ACK once.
-- digits: the ack id as text (as the client wrote it when the packet came the common way).
local function make_ack(sock, digits)
  local sent = false
  return function(...)
    if sent or not sock.connected then return false end
    sent = true
    local client = sock.client
    local session = client.session
    local k = select("#", ...)
    local plain = sock.nsp.name == "/" and session.transport == "websocket" and session.state == "open"
    if plain and k == 1 then -- the common case in one step: no namespace, no binary, an open WebSocket
      local v = ...
      local tv = type(v)
      if tv == "string" or tv == "boolean" then -- one C call builds the packet
        return wsend(session.conn, sio_ack(digits, v), "text") ~= nil
      elseif v ~= nil and tv ~= "table" then
        local json = jencode(v)
        if json then return wsend(session.conn, "43" .. digits .. "[" .. json .. "]", "text") ~= nil end
      end
    end
    local args = { ... }
    for i = 1, k do
      local v = args[i]
      if v == nil then args = array(args, k); break end
      if type(v) == "table" then plain = false end
    end
    if plain then
      local json = jencode(args)
      if json then return wsend(session.conn, "43" .. digits .. json, "text") ~= nil end
    end
    local text, atts = encode_parts(ACK, sock.nsp.name, tonumber(digits), args)
    return client:_send(text, atts)
  end
end

-- digits: the ack id as the client wrote it, when the packet came the common way (namespace "/").
function Socket:_on_event(data, id, digits)
  local event = data[1]
  local n = #data
  local null = parser.null
  for i = 2, n do
    if data[i] == null then data[i] = nil end
  end
  if id then
    data[n + 1] = make_ack(self, digits or format("%d", id))
    n = n + 1
  end
  local any = self.any
  if any then
    for i = 1, #any do guarded("socketio event", any[i], unpack(data, 1, n)) end
  end
  local list = self.handlers[event]
  if list then
    if #list == 1 then
      local ok, err
      if n == 3 then ok, err = xpcall(list[1], traceback, data[2], data[3])
      else ok, err = xpcall(list[1], traceback, unpack(data, 2, n)) end
      if not ok then core.report("socketio event", err) end
      return
    end
    for i = 1, #list do
      local ok, err = xpcall(list[i], traceback, unpack(data, 2, n))
      if not ok then core.report("socketio event", err) end
    end
  end
end

function Socket:_on_ack(id, data)
  local fn = self.acks[id]
  if not fn then return end
  self.acks[id] = nil
  local timers = self.server.ack_timers
  local with_err = self.ack_err and self.ack_err[id]
  if with_err then self.ack_err[id] = nil end
  if timers and timers[self] then timers[self][id] = nil end
  local n = #data
  for i = 1, n do
    if data[i] == parser.null then data[i] = nil end
  end
  if with_err then
    guarded("socketio ack", fn, nil, unpack(data, 1, n))
  else
    guarded("socketio ack", fn, unpack(data, 1, n))
  end
end

-- socket:emit(event, ... [, ack]) -> true | false when the socket is gone.
-- A function as last argument is the acknowledgement: it gets the client's arguments.
function Socket:emit(event, ...)
  return self:_emit(nil, event, ...)
end

function Socket:_emit(timeout, event, ...)
  if type(event) ~= "string" then error("socket:emit: event name expected", 3) end
  if RESERVED[event] then error(('socket:emit: "%s" is a reserved event name'):format(event), 3) end
  if not self.connected then return false end
  local n = select("#", ...)
  local data = { event, ... }
  local id
  local ack = n > 0 and data[n + 1] or nil
  if type(ack) == "function" then
    data[n + 1] = nil
    n = n - 1
    self.ack_seq = self.ack_seq + 1
    id = self.ack_seq
    self.acks[id] = ack
    if timeout then
      self.ack_err = self.ack_err or {}
      self.ack_err[id] = true
      local timers = self.server.ack_timers
      if not timers then timers = {}; self.server.ack_timers = timers end
      local mine = timers[self]
      if not mine then mine = {}; timers[self] = mine end
      mine[id] = now() + timeout
      self.server.engine:start()
    end
  end
  local text, atts = encode_parts(EVENT, self.nsp.name, id, array(data, n + 1))
  return self.client:_send(text, atts)
end

-- socket:timeout(seconds):emit(event, ..., function(err, ...) end): the callback gets
-- err = "operation has timed out" when no acknowledgement came in time.
-- socket:timeout(seconds):emit_with_ack(event, ...) waits: true, ... (the client's arguments)
-- | nil, "operation has timed out", "timeout" | nil, "socket disconnected", "closed".
local Timed = {}
Timed.__index = Timed

function Socket:timeout(seconds)
  if type(seconds) ~= "number" or seconds ~= seconds or seconds < 0 then
    error("socket:timeout: number of seconds expected", 2)
  end
  return setmetatable({ sock = self, seconds = seconds }, Timed)
end

function Timed:emit(event, ...)
  return self.sock:_emit(self.seconds, event, ...)
end

function Timed:emit_with_ack(event, ...)
  return self.sock:_emit_wait(self.seconds, event, ...)
end

function Socket:emit_with_ack(event, ...)
  return self:_emit_wait(nil, event, ...)
end

-- Waits for the acknowledgement. Inside a handler of this same socket's WebSocket
-- connection the acknowledgement would wait behind the handler: the connection's messages
-- are then taken here, in order, while waiting.
function Socket:_emit_wait(timeout, event, ...)
  local result
  local n = select("#", ...)
  local args = { ... }
  args[n + 1] = function(err, ...)
    result = { n = select("#", ...) + 1, err, ... }
  end
  if not self:_emit(timeout or 1e9, event, unpack(args, 1, n + 1)) then
    return nil, "socket disconnected", "closed"
  end
  local s = self.client.session
  local delay = 0.001
  local deadline = now() + (timeout or 1e9) + 1
  while not result do
    if not self.connected then return nil, "socket disconnected", "closed" end
    if now() >= deadline then return nil, "operation has timed out", "timeout" end
    local co = coroutine.running()
    if s.transport == "websocket" and s.dispatching and s.dispatching == co then
      local conn = s.conn
      local msg, kind = crecv(conn)
      if msg then
        s:on_packet(msg, kind == "binary")
        s.dispatching = co
      elseif msg == false then
        wait(conn, "r", math.min(deadline - now(), 0.05))
      else
        wait(nil, "t", 0.01) -- closed: the engine notices; the loop above ends
      end
    else
      wait(nil, "t", delay)
      if delay < 0.02 then delay = delay * 2 end
    end
  end
  if result[1] ~= nil then return nil, "operation has timed out", "timeout" end
  return true, unpack(result, 2, result.n)
end

-- Rooms. A socket is always in the room named by its id (without a topic: io:to(id) finds it
-- among this process's sockets).
function Socket:join(room)
  if type(room) == "table" then
    for _, r in ipairs(room) do self:join(r) end
    return self
  end
  if type(room) ~= "string" then error("socket:join: room name expected", 2) end
  if self.rooms[room] or not self.connected then return self end
  self.rooms[room] = true
  local nsp = self.nsp
  local members = nsp.rooms[room]
  if not members then
    members = {}
    nsp.rooms[room] = members
    hold(self.server, nsp:_topic(room), true)
  end
  members[self] = true
  local s = self.client.session
  if s.transport == "websocket" then
    s.conn:subscribe(nsp:_topic(room))
  else
    local set = nsp.poll_rooms[room]
    if not set then set = {}; nsp.poll_rooms[room] = set end
    set[self] = true
  end
  return self
end

function Socket:leave(room)
  if not self.rooms[room] then return self end
  self.rooms[room] = nil
  local nsp = self.nsp
  local members = nsp.rooms[room]
  if members then
    members[self] = nil
    if next(members) == nil then
      nsp.rooms[room] = nil
      hold(self.server, nsp:_topic(room), false)
    end
  end
  local set = nsp.poll_rooms[room]
  if set then
    set[self] = nil
    if next(set) == nil then nsp.poll_rooms[room] = nil end
  end
  local s = self.client.session
  if s.transport == "websocket" and s.conn.state ~= "closed" then
    s.conn:unsubscribe(nsp:_topic(room))
  end
  return self
end

-- The rooms the socket is in (a set), its own id included.
function Socket:rooms_list()
  local t = { [self.id] = true }
  for r in pairs(self.rooms) do t[r] = true end
  return t
end

function Socket:to(room) return self.broadcast:to(room) end
Socket["in"] = Socket.to
function Socket:except(room) return self.broadcast:except(room) end

-- socket.broadcast:emit(...) and socket:broadcast():emit(...): everyone in the namespace but
-- this socket (an operator called as a method returns itself).
Operator.__call = function(op) return op end

function Socket:_leave_all()
  local list = {}
  for r in pairs(self.rooms) do list[#list + 1] = r end
  for _, r in ipairs(list) do self:leave(r) end
end

function Socket:_on_close(reason)
  if not self.connected then
    if self.client.sockets[self.nsp.name] == self then self.client.sockets[self.nsp.name] = nil end
    return
  end
  local fns = self.handlers.disconnecting
  if fns then call_handlers(self, fns, reason) end
  self:_leave_all()
  self.connected = false
  local client = self.client
  if client.sockets[self.nsp.name] == self then
    client.sockets[self.nsp.name] = nil
    client.count = client.count - 1
  end
  local nsp = self.nsp
  if nsp.sockets[self.id] == self then
    nsp.sockets[self.id] = nil
    if self.server.server and self.server.server._bus then
      hold(self.server, nsp:_topic(self.id), false)
      if next(nsp.sockets) == nil then hold(self.server, all_topic(nsp), false) end
    end
  end
  local timers = self.server.ack_timers
  if timers then timers[self] = nil end
  -- pending timed acknowledgements fail at once
  if self.ack_err then
    for id in pairs(self.ack_err) do
      local fn = self.acks[id]
      self.acks[id] = nil
      if fn then guarded("socketio ack", fn, "socket has been disconnected") end
    end
    self.ack_err = nil
  end
  self.acks = {}
  fns = self.handlers.disconnect
  if fns then call_handlers(self, fns, reason) end
end

-- socket:disconnect([close]): leaves the namespace (the client hears "io server disconnect");
-- with close = true the whole connection is closed.
function Socket:disconnect(close)
  if not self.connected then return self end
  self.client:_send_packet({ type = DISCONNECT, nsp = self.nsp.name })
  self:_on_close("server namespace disconnect")
  if close then self.client.session:close("forced server close") end
  return self
end

-- ---- namespaces ----

function Namespace:_topic(room)
  return "sio:" .. self.name .. "#" .. room
end

function Namespace:on(event, fn)
  if event ~= "connection" and event ~= "connect" then
    error('namespace:on: only "connection" is an event of a namespace', 2)
  end
  if type(fn) ~= "function" then error("namespace:on: function expected", 2) end
  local list = self.handlers.connection
  if not list then list = {}; self.handlers.connection = list end
  list[#list + 1] = fn
  return self
end

-- fn(socket, next): call next() to let the socket in, next(err) (a string, or
-- { message =, data = }) to refuse it: the client gets connect_error. It may wait before.
function Namespace:use(fn)
  if type(fn) ~= "function" then error("namespace:use: function expected", 2) end
  self.middleware[#self.middleware + 1] = fn
  return self
end

local function new_op(nsp, sender)
  return setmetatable({ nsp = nsp, rooms = {}, excepts = {}, sender = sender }, Operator)
end

function Namespace:to(room) return new_op(self, nil):to(room) end
Namespace["in"] = Namespace.to
function Namespace:except(room) return new_op(self, nil):except(room) end
function Namespace:emit(event, ...) return new_op(self, nil):emit(event, ...) end

-- The sockets of this process in the namespace (or in the given rooms): a list.
function Namespace:fetch_sockets() return new_op(self, nil):fetch_sockets() end

function Namespace:disconnect_sockets(close)
  local list = {}
  for _, s in pairs(self.sockets) do list[#list + 1] = s end
  for _, s in ipairs(list) do s:disconnect(close) end
end

-- ---- broadcasts ----

local function copy_op(op)
  local o = setmetatable({ nsp = op.nsp, rooms = {}, excepts = {}, sender = op.sender }, Operator)
  for i, r in ipairs(op.rooms) do o.rooms[i] = r end
  for r in pairs(op.excepts) do o.excepts[r] = true end
  return o
end

function Operator:to(room)
  local o = copy_op(self)
  if type(room) == "table" then
    for _, r in ipairs(room) do o.rooms[#o.rooms + 1] = r end
  else
    o.rooms[#o.rooms + 1] = room
  end
  return o
end
Operator["in"] = Operator.to

function Operator:except(room)
  local o = copy_op(self)
  if type(room) == "table" then
    for _, r in ipairs(room) do o.excepts[r] = true end
  else
    o.excepts[room] = true
  end
  return o
end

-- The local sockets of nsp a broadcast reaches, as a set: those in any of rooms (the whole
-- namespace when there is none), or with index, those in rooms[index] and in none of the rooms
-- before it (what another node's envelope for that room brings here); but the sender (its id)
-- and the sockets in a room of except (or with an id of it).
local function targets(nsp, rooms, except, sender_id, index)
  local set = {}
  if #rooms == 0 then
    for _, s in pairs(nsp.sockets) do set[s] = true end
  else
    local first, last = index or 1, index or #rooms
    for i = first, last do
      local r = rooms[i]
      local members = nsp.rooms[r]
      if members then for s in pairs(members) do set[s] = true end end
      local own = nsp.sockets[r]
      if own then set[own] = true end
    end
    if index and index > 1 then
      for s in pairs(set) do
        for i = 1, index - 1 do
          local r = rooms[i]
          if s.rooms[r] or s.id == r then set[s] = nil; break end
        end
      end
    end
  end
  if sender_id then
    local own = nsp.sockets[sender_id]
    if own then set[own] = nil end
  end
  if next(except) then
    for s in pairs(set) do
      if except[s.id] then set[s] = nil
      else
        for r in pairs(except) do
          if s.rooms[r] then set[s] = nil; break end
        end
      end
    end
  end
  return set
end

function Operator:_targets()
  return targets(self.nsp, self.rooms, self.excepts, self.sender and self.sender.id)
end

function Operator:fetch_sockets()
  local list = {}
  for s in pairs(self:_targets()) do list[#list + 1] = s end
  return list
end

-- Emit to every socket the broadcast reaches (no acknowledgement: Socket.IO's broadcasts
-- with acks are not supported). One room without exceptions is one topic publish (the frames
-- are built once) plus the polling members of that room; anything else goes socket by socket.
function Operator:emit(event, ...)
  if type(event) ~= "string" then error("emit: event name expected", 2) end
  if RESERVED[event] then error(('emit: "%s" is a reserved event name'):format(event), 2) end
  local n = select("#", ...)
  if n > 0 and type((select(n, ...))) == "function" then
    error("emit: acknowledgements are not supported for broadcasts", 2)
  end
  local nsp = self.nsp
  local text, atts = encode({ type = EVENT, nsp = nsp.name, data = array({ event, ... }, n + 1) })
  local rooms = self.rooms
  local b = bus_of(nsp.io)
  if #rooms == 1 and next(self.excepts) == nil and not nsp.sockets[rooms[1]] then
    local room = rooms[1]
    local topic = nsp:_topic(room)
    local sender = self.sender
    local server = nsp.io.server
    local msg = "4" .. text
    local sconn = sender and sender.client.session.transport == "websocket" and sender.client.session.conn
    -- with a bus, this node's members only: the other nodes get the envelope below
    local text_kind, bin_kind = "text", "binary"
    if b then text_kind, bin_kind = LOCAL_TEXT, LOCAL_BINARY end
    if sconn and sconn.state ~= "closed" then
      sconn:publish(topic, msg, text_kind)
      if atts then for i = 1, #atts do sconn:publish(topic, atts[i], bin_kind) end end
    elseif server then
      server:publish(topic, msg, text_kind)
      if atts then for i = 1, #atts do server:publish(topic, atts[i], bin_kind) end end
    end
    local set = nsp.poll_rooms[room]
    if set then
      for s in pairs(set) do
        if s ~= sender and s.connected and s.client.session.transport ~= "websocket" then
          s.client:_send(text, atts, true)
        end
      end
    end
  else
    for s in pairs(self:_targets()) do
      if s.connected then s.client:_send(text, atts, true) end
    end
  end
  if b then M._publish_remote(b, nsp, rooms, self.excepts, self.sender and self.sender.id, text, atts) end
  return true
end

-- ---- broadcasts across nodes (the Redis bus) ----

LOCAL_TEXT, LOCAL_BINARY = { kind = "text", ["local"] = true }, { kind = "binary", ["local"] = true }

-- The envelope's data: a JSON header, a newline, the packet's text and its attachments.
-- header: ns (namespace), r (rooms), i (the room this copy is for, 0: the whole namespace),
-- e (except rooms and ids), s (the sender's id), t (bytes of text), a (bytes of each attachment).
function M._publish_remote(b, nsp, rooms, except, sender_id, text, atts)
  local node = core.bus_node(b.c)
  if not node then return end -- the bus has not started yet: nobody else can be reached
  local ex = {}
  for r in pairs(except) do ex[#ex + 1] = r end
  local alens
  local parts = { "", "\n", text }
  if atts then
    alens = {}
    for i = 1, #atts do alens[i] = #atts[i]; parts[#parts + 1] = atts[i] end
  end
  local head = { ns = nsp.name, r = array(rooms, #rooms), e = array(ex, #ex), s = sender_id, t = #text, a = alens }
  local prefix = b.config.prefix
  local env = "\31ws1|a|t|" .. node .. "||||\n"
  if #rooms == 0 then
    head.i = 0
    parts[1] = jencode(head)
    b:send("PUBLISH", prefix .. "t:" .. all_topic(nsp), env .. table.concat(parts))
    return
  end
  for i = 1, #rooms do
    head.i = i
    parts[1] = jencode(head)
    b:send("PUBLISH", prefix .. "t:" .. nsp:_topic(rooms[i]), env .. table.concat(parts))
  end
end

-- An "a" envelope of another node: delivered to this node's members it is meant for.
local function on_envelope(b, topic, data, kind, node)
  if node == core.bus_node(b.c) then return end -- our own: delivered when it was published
  local io = by_server[b.server]
  if not io or not topic then return end
  local nl = data:find("\n", 1, true)
  if not nl then return end
  local head = parser.json.decode(data:sub(1, nl - 1))
  if type(head) ~= "table" or type(head.ns) ~= "string" or type(head.r) ~= "table"
     or type(head.i) ~= "number" or type(head.t) ~= "number" then return end
  local nsp = io.nsps[head.ns]
  if not nsp then return end
  local at = nl + 1
  local text = data:sub(at, at + head.t - 1)
  at = at + head.t
  local atts
  if type(head.a) == "table" and #head.a > 0 then
    atts = {}
    for i = 1, #head.a do
      local n = tonumber(head.a[i]) or 0
      atts[i] = data:sub(at, at + n - 1)
      at = at + n
    end
  end
  local rooms, index = head.r, head.i
  local except = {}
  if type(head.e) == "table" then for _, r in ipairs(head.e) do except[r] = true end end
  local sender = type(head.s) == "string" and head.s or nil
  if index == 0 then rooms = {} end
  if #rooms == 1 and next(except) == nil and not nsp.sockets[rooms[1]] and not nsp.sockets[sender or ""] then
    -- one room: its WebSocket members in one local publish, its polling members one by one
    local room = rooms[1]
    local srv = b.server
    local t = nsp:_topic(room)
    core.publish_local(srv._l, t, "4" .. text, "text")
    if atts then for i = 1, #atts do core.publish_local(srv._l, t, atts[i], "binary") end end
    local set = nsp.poll_rooms[room]
    if set then
      for s in pairs(set) do
        if s.connected and s.client.session.transport ~= "websocket" then s.client:_send(text, atts, true) end
      end
    end
    return
  end
  if index ~= 0 and not rooms[index] then return end
  for s in pairs(targets(nsp, rooms, except, sender, index ~= 0 and index or nil)) do
    if s.connected then s.client:_send(text, atts, true) end
  end
end

function Operator:disconnect_sockets(close)
  for s in pairs(self:_targets()) do s:disconnect(close) end
end

function Operator:socketsJoin(room)
  for s in pairs(self:_targets()) do s:join(room) end
end

function Operator:sockets_leave(room)
  for s in pairs(self:_targets()) do s:leave(room) end
end
Operator.sockets_join = Operator.socketsJoin

-- The server io serves: with a bus, io receives the "a" envelopes of its rooms.
function M.attached(io, server)
  by_server[server] = io
  if server._bus then require("ws.bus").handlers.a = on_envelope end
end

return M
