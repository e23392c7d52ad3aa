-- A Socket.IO server on the Redis bus for spec/socketio_bus_spec.lua (two of them share one
-- Redis): every broadcast shape, driven by the client's "bcast" event.
--   lua5.4 spec/support/socketio_bus_server.lua --port N --redis URL [--linger S]
-- Prints "listening PORT".
local ws = require "ws"
local socketio = require "ws.socketio"

local opts = { port = 0, linger = 0.2 }
for i = 1, #arg, 2 do
  local k, v = arg[i], arg[i + 1]
  if k == "--port" then opts.port = tonumber(v)
  elseif k == "--redis" then opts.redis = v
  elseif k == "--linger" then opts.linger = tonumber(v)
  end
end

local sio = assert(socketio.new({ port = opts.port, ping_interval = 2, ping_timeout = 10,
                                   bus = { url = opts.redis, linger = opts.linger } }))

-- spec: { nsp =, to = { rooms }, except = { rooms }, from = "io" | "socket" | "broadcast" }
local function broadcast(socket, spec, ...)
  local target
  if spec.from == "broadcast" then
    target = socket.broadcast
  elseif spec.from == "socket" then
    target = socket.broadcast
  else
    target = sio:of(spec.nsp or "/")
  end
  if spec.to then target = target:to(spec.to) end
  if spec.except then target = target:except(spec.except) end
  target:emit("m", ...)
end

local function handlers(socket)
  socket:on("join", function(rooms, ack)
    socket:join(rooms)
    ack(true)
  end)
  socket:on("leave", function(room, ack)
    socket:leave(room)
    ack(true)
  end)
  socket:on("bcast", function(spec, tag, ack)
    broadcast(socket, spec, tag, socketio.binary("\0\1\2"))
    ack(true)
  end)
  socket:on("transport", function(ack) ack(socket.client.session.transport) end)
end

sio:on("connection", handlers)
sio:of("/admin"):on("connection", handlers)

io.stdout:write("listening ", sio.port, "\n")
io.stdout:flush()
ws.run()
