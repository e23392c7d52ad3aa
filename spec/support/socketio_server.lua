-- The Socket.IO server the specs drive with the real clients (spec/support/socketio_client.js,
-- socketio_polling.js): every feature the checks need, one event each.
--   lua5.4 spec/support/socketio_server.lua --port N [--ping-interval S] [--ping-timeout S]
-- Prints "listening PORT", then one line per server-side event the specs assert:
--   "disconnect <nsp> <socket id> <reason>", "connection <nsp> <socket id> <transport>".
local ws = require "ws"
local socketio = require "ws.socketio"

local opts = { port = 0, ping_interval = 2, ping_timeout = 10 }
for i = 1, #arg, 2 do
  local k, v = arg[i], arg[i + 1]
  if k == "--port" then opts.port = tonumber(v)
  elseif k == "--ping-interval" then opts.ping_interval = tonumber(v)
  elseif k == "--ping-timeout" then opts.ping_timeout = tonumber(v)
  elseif k == "--max-payload" then opts.max_payload = tonumber(v)
  elseif k == "--max-buffer" then opts.max_buffer = tonumber(v)
  end
end

local function log(...)
  io.stdout:write(table.concat({ ... }, " "), "\n")
  io.stdout:flush()
end

local sio = assert(socketio.new({ port = opts.port, ping_interval = opts.ping_interval,
  ping_timeout = opts.ping_timeout, max_payload = opts.max_payload, max_buffer = opts.max_buffer,
  max_attachments = 4 }))

sio:use(function(socket, next)
  if socket.handshake.auth.token == "bad" then
    return next({ message = "not authorized", data = { reason = "bad token" } })
  end
  if socket.handshake.auth.slow then ws.sleep(0.05) end -- a middleware may wait
  next()
end)

local function common(socket)
  local nsp = socket.nsp.name
  log("connection", nsp, socket.id, socket.client.session.transport)
  socket:on("disconnect", function(reason) log("disconnect", nsp, socket.id, reason) end)
end

sio:on("connection", function(socket)
  common(socket)
  socket.data.greeting = "hi " .. tostring(socket.handshake.auth.name)
  -- events both ways: the server emits what it is asked to
  socket:on("ping me", function(name, ...) socket:emit(name, ...) end)
  -- acks: the ack gets the event's arguments back
  socket:on("echo", function(...)
    local n = select("#", ...)
    local args = { ... }
    local ack = args[n]
    if type(ack) == "function" then ack((table.unpack or unpack)(args, 1, n - 1)) end
  end)
  socket:on("greeting", function(ack) ack(socket.data.greeting) end)
  -- the server asks the client and waits for its ack, from inside this handler
  socket:on("ask", function(q, ack)
    local ok, answer = socket:timeout(3):emit_with_ack("question", q)
    ack(ok and answer or ("no answer: " .. tostring(answer)))
  end)
  -- an ack the client never sends: the timeout fires
  socket:on("ask silent", function(ack)
    socket:timeout(0.3):emit("silent", "?", function(err, answer)
      ack(err and ("timed out: " .. err) or ("answered " .. tostring(answer)))
    end)
  end)
  socket:on("ignore me", function() end)
  socket:on("flood", function(count, size)
    local blob = string.rep("x", size)
    for _ = 1, count do if not socket:emit("flood", blob) then break end end
  end)
  -- binary both ways
  socket:on("bin", function(b, ack)
    ack({ size = #b.data, back = socketio.binary(b.data:reverse()), binary = socketio.is_binary(b) })
  end)
  socket:on("bins", function(list, ack)
    local sizes = {}
    for i, b in ipairs(list) do sizes[i] = #b.data end
    ack(sizes)
  end)
  -- rooms
  socket:on("join", function(room, ack) socket:join(room); if ack then ack(true) end end)
  socket:on("leave", function(room, ack) socket:leave(room); if ack then ack(true) end end)
  socket:on("to room", function(room, text, ack)
    sio:to(room):emit("room msg", { from = socket.id, text = text })
    if ack then ack(true) end
  end)
  socket:on("to room but me", function(room, text, ack)
    socket:to(room):emit("room msg", { from = socket.id, text = text, excl = true })
    if ack then ack(true) end
  end)
  socket:on("broadcast", function(text, ack)
    socket.broadcast:emit("broadcast msg", text)
    if ack then ack(true) end
  end)
  socket:on("broadcast call", function(text, ack)
    socket:broadcast():emit("broadcast msg", text)
    if ack then ack(true) end
  end)
  socket:on("to id", function(id, text, ack)
    sio:to(id):emit("private", { from = socket.id, text = text })
    if ack then ack(true) end
  end)
  -- disconnects
  socket:on("kick", function() socket:disconnect() end)
  socket:on("drop", function() socket.client.session:close("forced close") end)
  socket:on("stats", function(ack)
    local sockets, held = 0, 0
    for _ in pairs(sio.sockets.sockets) do sockets = sockets + 1 end
    for _, s in pairs(sio.engine.sessions) do if s.poll then held = held + 1 end end
    ack({ sessions = sio.engine.count, sockets = sockets, held = held })
  end)
end)

local admin = sio:of("/admin")
admin:use(function(socket, next)
  if socket.handshake.auth.role ~= "admin" then return next("admin only") end
  next()
end)
admin:on("connection", function(socket)
  common(socket)
  socket:on("whoami", function(ack) ack("admin", socket.nsp.name) end)
end)

log("listening", sio.port)
ws.run()
