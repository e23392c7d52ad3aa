-- The lua-ws server of the idle benchmark's callback row (`lua-ws-cb`):
--   lua5.4 bench/servers/idle_callbacks.lua --port N [--tls-cert F --tls-key F]
-- An echo server in the callback style: ws.server(opts, { message = ... }) keeps no coroutine
-- per connection (a pooled thread runs each event), so an idle connection holds only its C
-- state. Every message comes back as it was sent, which the idle scenario's final check uses.
-- With a certificate and key it serves wss:// (the handshake benchmark's callback rows).
local root = (arg and arg[0] or ""):match("^(.*)/bench/servers/[^/]*$") or "."
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = root .. (jit and "/build/luajit/?.so;" or "/lua/?.so;") .. package.cpath -- `make luajit` builds there
local ws = require "ws"

local opts = { host = "127.0.0.1", port = 8080, max_message = 16 * 1024 * 1024 }
for i = 1, #arg - 1 do
  if arg[i] == "--port" then opts.port = assert(tonumber(arg[i + 1]), "--port takes a number") end
  if arg[i] == "--tls-cert" then opts.tls = opts.tls or {}; opts.tls.cert = arg[i + 1] end
  if arg[i] == "--tls-key" then opts.tls = opts.tls or {}; opts.tls.key = arg[i + 1] end
end

local server = assert(ws.server(opts, {
  message = function(conn, msg, kind) conn:send(msg, kind) end,
}))
print(("lua-ws (callbacks) listening on 127.0.0.1:%d"):format(server.port))
io.stdout:flush()
ws.run()
