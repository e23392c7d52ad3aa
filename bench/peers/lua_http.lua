-- lua-http (Debian lua-http on lua-cqueues) peer for the benchmarks: echo or broadcast.
-- Usage (lua-http is packaged for Lua 5.1 to 5.3; this path lets Lua 5.4 find it):
--   LUA_PATH="/usr/share/lua/5.4/?.lua;/usr/share/lua/5.4/?/init.lua;/usr/share/lua/5.3/?.lua;/usr/share/lua/5.3/?/init.lua;/usr/share/lua/5.2/?.lua;/usr/share/lua/5.2/?/init.lua;;" \
--     lua5.4 bench/peers/lua_http.lua --port N [--mode echo|broadcast]
-- broadcast: every text message received from any connection is sent, unchanged, as one text
-- frame to every open connection, the sender included (the protocol bench/loadclient.c expects).
local http_server = require "http.server"
local http_headers = require "http.headers"
local websocket = require "http.websocket"

local port, mode = nil, "echo"
for i = 1, #arg - 1 do
  if arg[i] == "--port" then port = tonumber(arg[i + 1]) end
  if arg[i] == "--mode" then mode = arg[i + 1] end
end
if not port or (mode ~= "echo" and mode ~= "broadcast") then
  io.stderr:write("usage: lua_http.lua --port N [--mode echo|broadcast]\n")
  os.exit(2)
end

local clients = {}

local function serve(ws)
  if mode == "echo" then
    while true do
      local data, kind = ws:receive()
      if not data then break end
      if not ws:send(data, kind) then break end
    end
  else
    clients[ws] = true
    while true do
      local data, kind = ws:receive()
      if not data then break end
      if kind == "text" then
        for other in pairs(clients) do other:send(data, "text") end
      end
    end
    clients[ws] = nil
  end
  ws:close()
end

local server = assert(http_server.listen {
  host = "127.0.0.1",
  port = port,
  reuseaddr = true,
  onstream = function(_, stream)
    local headers = assert(stream:get_headers())
    local ws = websocket.new_from_stream(stream, headers)
    if not ws then
      local res = http_headers.new()
      res:append(":status", "400")
      stream:write_headers(res, true)
      return
    end
    if ws:accept() then serve(ws) end
  end,
  onerror = function() end,
})
assert(server:listen())
print(("lua-http %s listening on 127.0.0.1:%d"):format(mode, port))
io.stdout:flush()
assert(server:loop())
