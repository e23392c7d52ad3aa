-- ws.bus_api: the Lua API on top of a server's Redis bus, wired into ws.bus when the first bus is
-- created: the handlers of the envelopes C hands over ('o' ordered messages, 'j'/'l' presence
-- events, 'd' direct messages, and the 'u'/'s'/'r' events: a topic unsubscribed, a topic's
-- subscription confirmed, the bus back after a loss), and the methods server:history, server:presence, server:send_to, conn:track,
-- conn:untrack. server:bus()'s counters gain those of the ordered class.
local core = require "ws.core"
local bus = require "ws.bus"
local ordered = require "ws.bus_ordered"
local presence = require "ws.bus_presence"
local server_mod = require "ws.server"
local conn_mod = require "ws.conn"

local cnode, csend = core.bus_node, core.send

local M = {}

-- ---- handlers (called from the loop: none of them waits) ----

local h = bus.handlers
h.o = function(b, topic, data, kind, node, id, offset, epoch)
  return ordered.on_message(b, topic, data, kind, node, id, offset, epoch)
end
h.j = function(b, topic, data, _, _, id) return presence.on_event(b, "join", topic, data, id) end
h.l = function(b, topic, data, _, _, id) return presence.on_event(b, "leave", topic, data, id) end
h.u = function(b, topic) if topic then ordered.forget(b, topic) end end
h.s = function(b, topic) if topic then ordered.on_subscribed(b, topic) end end
h.r = function(b)
  ordered.on_reconnect(b)
  presence.on_reconnect(b)
end

-- "<node>/<n>" -> node, n | nil
local function split_id(id)
  if type(id) ~= "string" or #id > 160 then return nil end
  local node, n = id:match("^([%w._:-]+)/(%d+)$")
  if not node or #node > 64 then return nil end
  return node, tonumber(n)
end

-- A direct message for a connection of this node ('d' on the node's channel).
local function deliver_direct(b, data, kind, id)
  local node, n = split_id(id)
  local s = ordered.S(b)
  if node ~= cnode(b.c) then s.direct_lost = (s.direct_lost or 0) + 1 return end
  local conn = core.server_conn(b.server._l, n)
  if not conn or csend(conn, data, kind) == nil then
    s.direct_lost = (s.direct_lost or 0) + 1
  end
end
h.d = function(b, _, data, kind, _, id) return deliver_direct(b, data, kind, id) end

-- ---- methods ----

local Server = server_mod.Server

local function server_bus(srv, what)
  local b = srv._bus
  if not b then error("ws: " .. what .. " needs the server's bus option", 3) end
  return b
end

-- server:history(topic [, { limit =, since =, epoch = }]) -> list, top | nil, message, code
function Server:history(topic, opts)
  return ordered.history(server_bus(self, "server:history"), topic, opts)
end

-- server:presence(topic) -> { [id] = info } | nil, message, code
function Server:presence(topic)
  return presence.presence(server_bus(self, "server:presence"), topic)
end

-- server:send_to(id, data [, kind]) -> true | nil, message, code. A connection of this node gets
-- the message at once (queued like conn:send, without waiting for its queue to drain); another
-- node's gets it through that node's channel (no acknowledgement: true means sent to Redis).
-- "notfound": no such connection here, or an id that names none.
function Server:send_to(id, data, kind)
  local b = server_bus(self, "server:send_to")
  if type(data) ~= "string" then error("ws: send_to data must be a string", 2) end
  kind = kind or "text"
  if kind ~= "text" and kind ~= "binary" then error('ws: send_to kind must be "text" or "binary"', 2) end
  local node, n
  if type(id) == "number" then
    node, n = cnode(b.c), id
  else
    node, n = split_id(id)
  end
  if not node then return nil, "no such connection", "notfound" end
  if node == cnode(b.c) or type(id) == "number" then
    local conn = core.server_conn(self._l, n)
    if not conn then return nil, "no such connection", "notfound" end
    local ok, err, code = csend(conn, data, kind)
    if ok == nil then return nil, err, code end
    return true
  end
  local own = cnode(b.c)
  if not own then return nil, "bus unavailable", "unavailable" end
  local env = "\31ws1|d|" .. (kind == "binary" and "b" or "t") .. "|" .. own .. "|" .. id .. "|||\n" .. data
  return b:send("PUBLISH", b.config.prefix .. "n:" .. node, env)
end

-- server:bus() -> state, counters (with the ordered class's: delivered, duplicates, fills,
-- filled, gaps)
local plain_bus = Server.bus
function Server:bus()
  local state, counters = plain_bus(self)
  if state and counters then ordered.counters(self._bus, counters) end
  return state, counters
end

local methods = conn_mod.methods

local function conn_bus(conn, what)
  local cb = core.conn_bus(conn)
  local b = cb and bus.of(cb)
  if not b then error("ws: " .. what .. " needs the server's bus option", 3) end
  return b
end

-- conn:subscribe(topic [, { since = offset [, epoch = e] }]): with `since`, on an ordered topic
-- of a server with a bus, the connection first gets what it missed (ws.bus_ordered.resume).
local plain_subscribe = methods.subscribe
function methods:subscribe(topic, opts)
  if opts == nil then return plain_subscribe(self, topic) end
  if type(opts) ~= "table" then error("ws: subscribe options must be a table", 2) end
  local since, epoch = opts.since, opts.epoch
  if since == nil then return plain_subscribe(self, topic) end
  if type(since) ~= "number" or since < 0 or since % 1 ~= 0 then
    error("ws: subscribe since must be an offset (a whole number >= 0)", 2)
  end
  if epoch ~= nil and type(epoch) ~= "string" then error("ws: subscribe epoch must be a string", 2) end
  local b = conn_bus(self, "conn:subscribe with since")
  if type(topic) ~= "string" or topic == "" then error("ws: topic name expected", 2) end
  if not b:ordered(topic) then error("ws: conn:subscribe with since needs an ordered topic", 2) end
  return ordered.resume(b, self, topic, since, epoch)
end

-- conn:track(topic [, info]) -> true | nil, message, code
function methods:track(topic, info)
  return presence.track(conn_bus(self, "conn:track"), self, topic, info)
end

-- conn:untrack(topic) -> true | nil, message, code
function methods:untrack(topic)
  return presence.untrack(conn_bus(self, "conn:untrack"), self, topic)
end

return M
