-- The other side of examples/dialogue.lua, with the lua-ws client: says hello, answers the
-- question with a name, prints the conversation.
--   lua5.4 examples/dialogue_client.lua [--port N] [--name NAME]
local root = (arg and arg[0] or ""):match("^(.*)/examples/[^/]*$") or "."
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = root .. (jit and "/build/luajit/?.so;" or "/lua/?.so;") .. package.cpath -- `make luajit` builds there

local ws = require "ws"

local port, name = 8080, "Ada"
local i = 1
while arg[i] do
  if arg[i] == "--port" then port = assert(tonumber(arg[i + 1]), "--port needs a number")
  elseif arg[i] == "--name" then name = assert(arg[i + 1], "--name needs a value") end
  i = i + 2
end

local conn = assert(ws.connect(("ws://127.0.0.1:%d/"):format(port), { timeout = 5 }))
conn:send("Hello!")
print("> Hello!")
local question = assert(conn:receive(5))
print("< " .. question)
conn:send(name)
print("> " .. name)
local greeting = assert(conn:receive(5))
print("< " .. greeting)
conn:receive(5) -- the server closes
print("closed: " .. tostring(conn.close_code) .. " " .. tostring(conn.close_reason))
