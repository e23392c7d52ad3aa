-- The Socket.IO benchmark server on lua-ws (bench/socketio/run.sh):
--   lua5.4 bench/socketio/server.lua --port N
-- Every socket joins room "bench"; "echo" is acknowledged with its argument, "pub" is emitted
-- to the room as "msg" (the sender included). WebSocket transport only is what the load
-- client uses; polling works too.
local here = (arg and arg[0] or ""):match("^(.*)[/\\][^/\\]*$") or "."
local root = here .. "/../.."
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = root .. (jit and "/build/luajit/?.so;" or "/lua/?.so;") .. package.cpath

local ws = require "ws"
local socketio = require "ws.socketio"

local port = 3000
for i = 1, #arg, 2 do
  if arg[i] == "--port" then port = tonumber(arg[i + 1]) end
end

local sio = assert(socketio.new({ port = port, max_connections = 20000 }))
sio:on("connection", function(socket)
  socket:join("bench")
  socket:on("echo", function(data, ack) ack(data) end)
  socket:on("pub", function(data) sio:to("bench"):emit("msg", data) end)
end)
print("listening " .. sio.port)
io.stdout:flush()
ws.run()
