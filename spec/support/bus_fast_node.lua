-- A server with a Redis bus for the bus specs, as a child process:
--   lua bus_fast_node.lua <redis url> <node id> [linger] [ping] [timeout]
-- It prints "listening <port>" and serves text commands on each connection:
--   "sub T" / "unsub T"            -> "ok" (conn:subscribe / conn:unsubscribe)
--   "subn PREFIX A B"              -> subscribes to PREFIX..A .. PREFIX..B, "ok"
--   "pub T DATA" / "cpub T DATA"   -> "ok <local count>" (server:publish / conn:publish)
--   "state"                        -> "state <up|connecting|down> k=v ..." (server:bus())
--   "id"                           -> "id <conn.id>"
-- Published messages reach the connection as they are (their text never starts with "ok",
-- "state" or "id " in the specs).
local ws = require "ws"

local url, node = arg[1], arg[2]
local linger, ping, timeout = tonumber(arg[3] or "2"), tonumber(arg[4] or "5"), tonumber(arg[5] or "2")

local srv
srv = assert(ws.server({ host = "127.0.0.1", port = 0,
  bus = { url = url, node = node, linger = linger, ping = ping, timeout = timeout } }, function(conn)
  for msg in conn:messages() do
    local cmd, a, b = msg:match("^(%S+) ?(%S*) ?(.*)$")
    if cmd == "sub" then
      conn:subscribe(a)
      conn:send("ok")
    elseif cmd == "unsub" then
      conn:unsubscribe(a)
      conn:send("ok")
    elseif cmd == "subn" then
      local from, to = b:match("^(%d+) (%d+)$")
      for i = tonumber(from), tonumber(to) do conn:subscribe(a .. i) end
      conn:send("ok")
    elseif cmd == "pub" then
      conn:send("ok " .. tostring(srv:publish(a, b)))
    elseif cmd == "cpub" then
      conn:send("ok " .. tostring(conn:publish(a, b)))
    elseif cmd == "state" then
      local st, c = srv:bus()
      local parts = { "state", st }
      local keys = {}
      for k in pairs(c) do keys[#keys + 1] = k end
      table.sort(keys)
      for _, k in ipairs(keys) do parts[#parts + 1] = k .. "=" .. tostring(c[k]) end
      conn:send(table.concat(parts, " "))
    elseif cmd == "id" then
      conn:send("id " .. tostring(conn.id))
    end
  end
end))
io.stdout:write("listening ", srv.port, "\n")
io.stdout:flush()
ws.run()
