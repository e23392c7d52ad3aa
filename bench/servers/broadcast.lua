-- The lua-ws broadcast server for the fan-out benchmark:
--   lua5.4 bench/servers/broadcast.lua --port N
-- Every text message received from any connection is sent, unchanged, as one text frame to
-- every open connection, the sender included (the protocol bench/loadclient.c expects). The
-- fan-out itself is server:publish in C: one frame built once and shared by all subscribers.
local root = (arg and arg[0] or ""):match("^(.*)/bench/servers/[^/]*$") or "."
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = root .. (jit and "/build/luajit/?.so;" or "/lua/?.so;") .. package.cpath -- `make luajit` builds there
local ws = require "ws"

local port = 8080
for i = 1, #arg - 1 do
  if arg[i] == "--port" then port = assert(tonumber(arg[i + 1]), "--port takes a number") end
end

local server
server = assert(ws.server({ host = "127.0.0.1", port = port, max_message = 64 * 1024 * 1024 }, function(conn)
  conn:subscribe("all")
  for msg, kind in conn:messages() do
    if kind == "text" then server:publish("all", msg, "text") end
  end
end))
print(("lua-ws broadcast listening on 127.0.0.1:%d"):format(server.port))
io.stdout:flush()
ws.run()
