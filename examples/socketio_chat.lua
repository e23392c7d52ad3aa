#!/usr/bin/env lua5.4
--[[
A Socket.IO chat on lua-ws: the official Socket.IO clients (browser, Node, ...) talk to it
unchanged, over HTTP long-polling or WebSocket, on the default path /socket.io/.

  lua5.4 examples/socketio_chat.lua [--port 3000] [--host 127.0.0.1] [--redis redis://127.0.0.1:6379]

With --redis, several processes (on one machine or several) share their rooms through the Redis
bus: a message to a room reaches its members on every process once, whatever their transport.

The page is served at http://HOST:PORT/ (examples/socketio_chat/), with the official browser
client from node_modules/socket.io-client/dist/ (npm install).

The contract:
  - a client is in room "lobby" from its connection on;
  - emit("join", room) moves it to that room (it leaves the previous one);
  - emit("chat message", text, ack): the ack gets true, and everyone in the sender's room, the
    sender included, gets "chat message" with { from = <the sender's socket id>, text = text }.
]]

local here = (arg and arg[0] or ""):match("^(.*)[/\\][^/\\]*$") or "."
local root = here .. "/.."
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = root .. (jit and "/build/luajit/?.so;" or "/lua/?.so;") .. package.cpath

local ws = require "ws"
local socketio = require "ws.socketio"

local opts = { port = 3000, host = "127.0.0.1" }
local i = 1
while i <= #arg do
  local a, v = arg[i], arg[i + 1]
  if a == "--port" and tonumber(v) then opts.port = math.floor(tonumber(v))
  elseif a == "--host" and v then opts.host = v
  elseif a == "--redis" and v then opts.redis = v
  else
    io.stderr:write("usage: lua5.4 examples/socketio_chat.lua [--port N] [--host H] [--redis URL]\n")
    os.exit(a == "--help" and 0 or 2)
  end
  i = i + 2
end

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local data = f:read("*a")
  f:close()
  return data
end

local STATIC = {
  ["/"] = { here .. "/socketio_chat/index.html", "text/html; charset=utf-8" },
  ["/index.html"] = { here .. "/socketio_chat/index.html", "text/html; charset=utf-8" },
  ["/chat.js"] = { here .. "/socketio_chat/chat.js", "text/javascript; charset=utf-8" },
  ["/socket.io.min.js"] = { root .. "/node_modules/socket.io-client/dist/socket.io.min.js", "text/javascript; charset=utf-8" },
}

local function on_http(req)
  local entry = STATIC[req.path]
  if not entry or req.method ~= "GET" then return 404, { ["Content-Type"] = "text/plain" }, "Not Found\n" end
  local body = read_file(entry[1])
  if not body then return 404, { ["Content-Type"] = "text/plain" }, "Not Found (npm install?)\n" end
  return 200, { ["Content-Type"] = entry[2], ["Cache-Control"] = "no-cache" }, body
end

local MAX_TEXT, MAX_ROOM = 2000, 64

local sio = assert(socketio.new({ host = opts.host, port = opts.port, http = on_http,
                                   bus = opts.redis and { url = opts.redis } or nil }))

sio:on("connection", function(socket)
  socket.data.room = "lobby"
  socket:join("lobby")
  socket:on("join", function(room)
    if type(room) ~= "string" or #room == 0 or #room > MAX_ROOM then return end
    socket:leave(socket.data.room)
    socket.data.room = room
    socket:join(room)
  end)
  socket:on("chat message", function(text, ack)
    if type(text) ~= "string" or #text > MAX_TEXT then
      if type(ack) == "function" then ack(false) end
      return
    end
    sio:to(socket.data.room):emit("chat message", { from = socket.id, text = text })
    if type(ack) == "function" then ack(true) end
  end)
end)

print(("socketio_chat: listening on http://%s:%d/"):format(opts.host, sio.port))
io.stdout:flush()
ws.run()
