-- A program whose event loop is LuaSocket's socket.select, not lua-ws's: it serves its own
-- plain TCP line service and, beside it, a lua-ws echo server driven only through ws.pollfd()
-- and ws.step() (docs/embedding.md). Run from the repository root:
--   lua5.4 examples/select_loop.lua [WS_PORT [TCP_PORT]]
-- Over WebSocket, "sleep" is answered after ws.sleep(0.2): lua-ws's timers fire in this loop.
-- On the line service, each line comes back upper-cased.
-- The checkout's modules, unless LUA_PATH / LUA_CPATH say where to find them.
local root = (arg and arg[0] or ""):match("^(.*)/examples/[^/]*$") or "."
if not (os.getenv("LUA_PATH_5_4") or os.getenv("LUA_PATH")) then
  package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
end
if not (os.getenv("LUA_CPATH_5_4") or os.getenv("LUA_CPATH")) then
  package.cpath = root .. (jit and "/build/luajit/?.so;" or "/lua/?.so;") .. package.cpath -- `make luajit` builds there
end
local socket = require "socket"
local ws = require "ws"

local ws_port = tonumber(arg[1]) or 8080
local tcp_port = tonumber(arg[2]) or 8081

local server = assert(ws.server({ host = "127.0.0.1", port = ws_port }, function(conn)
  for msg, kind in conn:messages() do
    if msg == "sleep" then
      local t0 = ws.now()
      ws.sleep(0.2)
      conn:send(("slept %.3f"):format(ws.now() - t0))
    else
      conn:send(msg, kind)
    end
  end
end))

-- The host's own service.
local listener = assert(socket.bind("127.0.0.1", tcp_port))
listener:settimeout(0)
local clients, pending = {}, {}

local function serve_line_client(c)
  local line, err, partial = c:receive("*l", pending[c])
  if line then
    pending[c] = nil
    c:send(line:upper() .. "\n")
  elseif err == "timeout" then
    pending[c] = partial
  else -- closed or failed
    pending[c] = nil
    for i, other in ipairs(clients) do
      if other == c then table.remove(clients, i) break end
    end
    c:close()
  end
end

-- socket.select watches any object with a getfd method: here lua-ws's descriptor.
local fd = assert(ws.pollfd())
local lua_ws = { getfd = function() return fd end }

print(("lua-ws on ws://127.0.0.1:%d/, line service on 127.0.0.1:%d"):format(server.port, tcp_port))
io.stdout:flush()

local wait = 0
while true do
  local watched = { lua_ws, listener }
  for _, c in ipairs(clients) do watched[#watched + 1] = c end
  local readable = socket.select(watched, nil, wait)
  for _, s in ipairs(readable) do
    if s == listener then
      local c = listener:accept()
      if c then
        c:settimeout(0)
        clients[#clients + 1] = c
      end
    elseif s ~= lua_ws then
      serve_line_client(s)
    end
  end
  -- Step every time round, not only when lua-ws's descriptor is readable: its timers are due
  -- by the clock, and `wait` (0 when lua-ws has queued work) bounds the next select.
  local _, next_wait = ws.step()
  wait = next_wait
end
