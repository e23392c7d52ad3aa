-- The classic dialogue: the server answers every message with "What's your name?" after a
-- second, then greets whoever answers. Each connection is a straight-line conversation in its
-- own coroutine; ws.sleep pauses only that conversation.
--   lua5.4 examples/dialogue.lua [--port N]        (then: lua5.4 examples/dialogue_client.lua --port N)
local root = (arg and arg[0] or ""):match("^(.*)/examples/[^/]*$") or "."
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = root .. (jit and "/build/luajit/?.so;" or "/lua/?.so;") .. package.cpath -- `make luajit` builds there

local ws = require "ws"

local port = 8080
if arg[1] == "--port" and tonumber(arg[2]) then port = tonumber(arg[2]) end

local server = assert(ws.server({ host = "127.0.0.1", port = port }, function(conn)
  local hello = conn:receive()
  if not hello then return end
  ws.sleep(1)
  conn:send("What's your name?")
  local name = conn:receive(30)
  if not name then return conn:close(1000, "no answer") end
  conn:send(("Nice to meet you, %s! I am connection %d."):format(name, conn.id))
  conn:close(1000, "bye")
end))

print(("dialogue: listening on ws://127.0.0.1:%d/"):format(server.port))
io.stdout:flush()
ws.run()
