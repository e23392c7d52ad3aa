-- A short run of the runtime for spec/regress/valgrind_exit_status_spec.lua, in one process:
-- a plain and a TLS echo server, clients of each, a TLS handshake that fails on both sides
-- (error texts), a client context that cannot be made, an accept key from ws.codec; then
-- everything closes and the loop ends. Prints one line per result.
--   lua5.4 spec/support/valgrind_echo.lua CERT KEY CA
local ws = require "ws"
local codec = require "ws.codec"
local cert, key, ca = arg[1], arg[2], arg[3]

local function echo(conn)
  for msg, kind in conn:messages() do conn:send(msg, kind) end
end
local plain = assert(ws.server({ host = "127.0.0.1", port = 0 }, echo))
local secure = assert(ws.server({ host = "127.0.0.1", port = 0, tls = { cert = cert, key = key } }, echo))
ws.set_error_handler(function(where, msg) print("logged " .. where .. ": " .. msg) end)

ws.spawn(function()
  local a = assert(ws.connect("ws://127.0.0.1:" .. plain.port .. "/"))
  assert(a:send("plain"))
  print("echo " .. assert(a:receive(10)))
  a:close()
  local b = assert(ws.connect("wss://127.0.0.1:" .. secure.port .. "/", { tls = { ca = ca } }))
  assert(b:send("secure"))
  print("echo " .. assert(b:receive(10)))
  b:close()
  -- The server's own certificate is no CA: the handshake fails on both sides.
  local _, err = ws.connect("wss://127.0.0.1:" .. secure.port .. "/", { tls = { ca = cert }, timeout = 10 })
  print("refused " .. tostring(err))
  _, err = ws.connect("wss://127.0.0.1:" .. secure.port .. "/", { tls = { ca = ca .. ".missing" } })
  print("refused " .. tostring(err))
  ws.sleep(0.2) -- the server's side of the failed handshake is logged
  plain:close()
  secure:close()
end)
ws.run()
print("accept " .. codec.accept_key("dGhlIHNhbXBsZSBub25jZQ=="))
