-- The broadcast server of the fan-out benchmark (bench/servers/broadcast.lua) on the Redis bus:
--   lua5.4 bench/servers/broadcast_bus.lua --port N --redis redis://127.0.0.1:R --class fast|ordered
-- fast: server:publish delivers locally at once and publishes an envelope to Redis; ordered: the
-- publish goes through Redis's script and comes back to be delivered (with its offset), so the
-- difference is what the ordered path costs this node. Payloads are delivered unchanged.
local root = (arg and arg[0] or ""):match("^(.*)/bench/servers/[^/]*$") or "."
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = root .. (jit and "/build/luajit/?.so;" or "/lua/?.so;") .. package.cpath
local ws = require "ws"

local port, url, class = 8080, "redis://127.0.0.1:6379", "fast"
for i = 1, #arg - 1 do
  if arg[i] == "--port" then port = assert(tonumber(arg[i + 1]), "--port takes a number")
  elseif arg[i] == "--redis" then url = arg[i + 1]
  elseif arg[i] == "--class" then class = arg[i + 1] end
end
assert(class == "fast" or class == "ordered", "--class fast|ordered")
local topic = class == "ordered" and "room:all" or "all"

local server
server = assert(ws.server({ host = "127.0.0.1", port = port, max_message = 64 * 1024 * 1024,
  bus = { url = url, ordered = { "room:*" }, history = 1000 } }, function(conn)
  conn:subscribe(topic)
  for msg, kind in conn:messages() do
    if kind == "text" then server:publish(topic, msg, "text") end
  end
end))
print(("lua-ws broadcast (%s, bus %s) listening on 127.0.0.1:%d"):format(class, url, server.port))
io.stdout:flush()
ws.run()
