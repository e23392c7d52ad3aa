-- The lua-ws server for the chat-shape benchmark (bench/loadclient.c --scenario chat):
--   lua5.4 bench/servers/rooms.lua --port N [--redis redis://127.0.0.1:R] [--node ID] [--ordered]
-- A connection to /chat/<room> joins topic "r<room>"; every text message it sends goes to the
-- room's other members, the sender excluded (conn:publish), and nowhere else. With --redis the
-- server has a bus (the fast class): the members of a room may be on different processes on one
-- Redis, each process subscribing only the rooms it holds. --ordered puts the rooms in the ordered
-- class (through Redis first, one order everywhere; it needs ws.bus_ordered), else the fast one. It prints its bus counters as a line
-- "bus state=... sent=N received=N own=N ..." every 0.25 s when they changed.
local root = (arg and arg[0] or ""):match("^(.*)/bench/servers/[^/]*$") or "."
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = root .. (jit and "/build/luajit/?.so;" or "/lua/?.so;") .. package.cpath -- `make luajit` builds there
local ws = require "ws"

local port, redis, node, ordered = 8080, nil, nil, false
for i = 1, #arg do
  if arg[i] == "--port" then port = assert(tonumber(arg[i + 1]), "--port takes a number") end
  if arg[i] == "--redis" then redis = arg[i + 1] end
  if arg[i] == "--node" then node = arg[i + 1] end
  if arg[i] == "--ordered" then ordered = true end
end

local opts = {
  host = "127.0.0.1", port = port,
  -- the room comes from the request path; conn.data carries it to the handler
  handshake = function(req)
    local room = req.path:match("^/chat/(%d+)$")
    if not room then return false, 404, nil, "Not Found\n" end
    return true, { data = "r" .. room }
  end,
}
if redis then opts.bus = { url = redis, node = node, ordered = ordered and { "r*" } or nil } end
local server = assert(ws.server(opts, function(conn)
  local room = conn.data
  conn:subscribe(room)
  for msg, kind in conn:messages() do
    if kind == "text" then conn:publish(room, msg, "text") end
  end
end))
print(("lua-ws rooms listening on 127.0.0.1:%d%s"):format(server.port, redis and " with a bus on " .. redis or ""))
io.stdout:flush()
if redis then dofile(root .. "/bench/servers/bus_counters.lua")(server) end
ws.run()
