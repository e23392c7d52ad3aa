-- ws.socketio: a Socket.IO server (Engine.IO protocol v4, Socket.IO protocol v5) on lua-ws, for
-- the official Socket.IO clients, unchanged. See docs/socketio.md.
--
--   local sio = require("ws.socketio").new({ port = 3000 })
--   sio:on("connection", function(socket)
--     socket:on("chat message", function(text, ack) sio:to("lobby"):emit("chat message", text); ack(true) end)
--   end)
--   require("ws").run()
local server_mod = require "ws.server"
local parser = require "ws.socketio.parser"
local sio_server = require "ws.socketio.server"

local M = { _VERSION = "Engine.IO 4 / Socket.IO 5" }

M.binary = parser.binary     -- mark a string as binary data in an event's arguments
M.is_binary = parser.is_binary
M.null = parser.null         -- JSON null, as received inside tables

local IO = sio_server.IO

local function copy(t)
  local c = {}
  for k, v in pairs(t) do c[k] = v end
  return c
end

-- The ws.server options and callbacks that serve this Socket.IO server: for an application
-- that creates the server itself (then io:attach(server)). opts are ws.server's options; an
-- `http` hook in them answers the requests outside the Socket.IO path.
-- Options of Socket.IO itself, not passed on to ws.server (which refuses names it does not know).
local OWN_OPTIONS = { "ping_interval", "ping_timeout", "max_payload", "max_attachments", "max_packets",
  "connect_timeout", "upgrade_timeout", "max_buffer", "cors", "allow_request", "listen", "ws_ping_interval" }

function IO:server_options(opts)
  opts = copy(opts or self.opts)
  local ws_ping = opts.ws_ping_interval
  for _, k in ipairs(OWN_OPTIONS) do opts[k] = nil end
  local engine = self.engine
  local path = self.path
  local user_http, user_hs = opts.http, opts.handshake
  opts.path = path
  opts.max_message = opts.max_message or engine.max_payload
  -- Engine.IO has its own heartbeat; WebSocket pings are off unless asked for.
  opts.ping_interval = ws_ping or 0
  opts.http = function(request, conn)
    if request.path == path then return engine:http(request, conn) end
    if user_http then return user_http(request, conn) end
    return 404, nil, "Not Found\n"
  end
  opts.handshake = function(request)
    local ok, status, headers, body = engine:check_upgrade(request)
    if not ok then return false, status, headers, body end
    if user_hs then return user_hs(request) end
    return true
  end
  local callbacks = {
    open = function(conn) engine:ws_open(conn) end,
    message = function(conn, msg, kind) engine:ws_message(conn, msg, kind) end,
    close = function(conn) engine:ws_close(conn) end,
  }
  return opts, callbacks
end

function IO:attach(server)
  self.server = server
  self.engine:start()
  return self
end

-- Closes every session ("server shutting down"), then the server (if it made it).
function IO:close()
  self.engine:stop()
  local list = {}
  for _, s in pairs(self.engine.sessions) do list[#list + 1] = s end
  for _, s in ipairs(list) do
    if s.client then
      for _, sock in pairs(s.client.sockets) do
        if sock.connected then s.client:_send_packet({ type = parser.DISCONNECT, nsp = sock.nsp.name }, true) end
      end
    end
    s:close("server shutting down")
  end
  if self.server and self.own_server then self.server:close() end
  return true
end

-- M.new(opts): a Socket.IO server. opts: every ws.server option (host, port, tls, origins,
-- max_connections, http for other paths, ...) and
--   path = "/socket.io/", ping_interval = 25, ping_timeout = 20 (seconds),
--   max_payload = 1000000 (bytes of a polling request or a WebSocket message),
--   max_attachments = 10 (binary attachments of one packet), max_packets = 1000 (packets in
--   one polling request), connect_timeout = 45 (seconds to connect a namespace),
--   upgrade_timeout = 10, max_buffer = 10 MiB (packets queued for a polling client that does
--   not fetch them: over it the session closes), cors = nil | "*" | { origins } | function(origin) -> bool
--   (polling responses to other origins), allow_request = function(request) -> bool,
--   listen = false: create no server (io:server_options() and io:attach(server) then).
-- Returns the server object, or nil, message, code when listening failed.
function M.new(opts)
  opts = opts or {}
  if type(opts) ~= "table" then error("socketio.new: options table expected", 2) end
  local io = sio_server.new(opts)
  io.path = opts.path or "/socket.io/"
  if opts.listen == false then return io end
  local sopts, callbacks = io:server_options(opts)
  local server, err, code = server_mod.new(sopts, callbacks)
  if not server then return nil, err, code end
  io.own_server = true
  io.port = server.port
  return io:attach(server)
end

return M
