-- Loaded by examples/c_host/host.c, which owns the libev loop: start an echo server on it and
-- return. The host's ev_run then drives the server, its connections and the task below.
-- "ticks?" is answered with what the host's own timer and a lua-ws task have counted.
local ws = require "ws"

local port = tonumber(arg and arg[1]) or 8080
local lua_ticks = 0

local server = assert(ws.server({ host = "127.0.0.1", port = port }, function(conn)
  for msg, kind in conn:messages() do
    if msg == "ticks?" then
      conn:send(("host %d lua %d"):format(host.ticks(), lua_ticks))
    else
      conn:send(msg, kind)
    end
  end
end))

-- A coroutine on the host's loop: ws.sleep works as under ws.run.
ws.spawn(function()
  while true do
    ws.sleep(0.25)
    lua_ticks = lua_ticks + 1
  end
end)

print("listening on ws://127.0.0.1:" .. server.port .. "/")
