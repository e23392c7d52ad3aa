-- The lua-ws broadcast server for the fan-out benchmark:
--   lua5.4 bench/servers/broadcast.lua --port N [--redis redis://127.0.0.1:R] [--node ID]
-- Every text message received from any connection is sent, unchanged, as one text frame to
-- every open connection, the sender included (the protocol bench/loadclient.c expects). The
-- fan-out itself is server:publish in C: one frame built once and shared by all subscribers.
-- With --redis the server has a bus (the fast class): several such processes on one Redis
-- deliver every message to the connections of all of them. It prints its bus counters as a line
-- "bus state=... sent=N received=N own=N ..." every 0.25 s when they changed.
local root = (arg and arg[0] or ""):match("^(.*)/bench/servers/[^/]*$") or "."
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = root .. (jit and "/build/luajit/?.so;" or "/lua/?.so;") .. package.cpath -- `make luajit` builds there
local ws = require "ws"

local port, redis, node = 8080, nil, nil
for i = 1, #arg - 1 do
  if arg[i] == "--port" then port = assert(tonumber(arg[i + 1]), "--port takes a number") end
  if arg[i] == "--redis" then redis = arg[i + 1] end
  if arg[i] == "--node" then node = arg[i + 1] end
end

local opts = { host = "127.0.0.1", port = port, max_message = 64 * 1024 * 1024 }
if redis then opts.bus = { url = redis, node = node } end
local server
server = assert(ws.server(opts, function(conn)
  conn:subscribe("all")
  for msg, kind in conn:messages() do
    if kind == "text" then server:publish("all", msg, "text") end
  end
end))
print(("lua-ws broadcast listening on 127.0.0.1:%d%s"):format(server.port, redis and " with a bus on " .. redis or ""))
io.stdout:flush()
if redis then dofile(root .. "/bench/servers/bus_counters.lua")(server) end
ws.run()
