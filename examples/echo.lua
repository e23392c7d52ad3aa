-- Echo server: every message comes back as it was sent (text as text, binary as binary).
--   lua5.4 examples/echo.lua --port N [--host H] [--protocol NAME] [--tls-cert F --tls-key F]
--                            [--deflate[=shared|dedicated]] [--workers K|auto]
-- prints one line when it listens, and serves ws://127.0.0.1:N/ (wss:// with a certificate and
-- key) until SIGINT or SIGTERM. --deflate turns permessage-deflate on (dedicated contexts by
-- default; =shared for no context takeover). --workers runs K worker processes on the port
-- (auto: one per CPU), supervised by this one.
local root = (arg and arg[0] or ""):match("^(.*)/examples/[^/]*$") or "."
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = root .. (jit and "/build/luajit/?.so;" or "/lua/?.so;") .. package.cpath -- `make luajit` builds there

local ws = require "ws"

local opts = { host = "127.0.0.1", port = 8080 }
local workers
local i = 1
while arg[i] do
  local a, v = arg[i], arg[i + 1]
  if a == "--port" and v then opts.port = assert(tonumber(v), "--port needs a number"); i = i + 2
  elseif a == "--host" and v then opts.host = v; i = i + 2
  elseif a == "--protocol" and v then opts.protocols = { v }; i = i + 2
  elseif a == "--tls-cert" and v then opts.tls = opts.tls or {}; opts.tls.cert = v; i = i + 2
  elseif a == "--tls-key" and v then opts.tls = opts.tls or {}; opts.tls.key = v; i = i + 2
  elseif a == "--workers" and v then
    workers = v == "auto" and v or assert(tonumber(v), "--workers needs a number or auto"); i = i + 2
  elseif a == "--deflate" then opts.compression = "dedicated"; i = i + 1
  elseif a == "--deflate=shared" or a == "--deflate=dedicated" then opts.compression = a:sub(11); i = i + 1
  else
    io.stderr:write("usage: lua5.4 examples/echo.lua --port N [--host H] [--protocol NAME] [--tls-cert F --tls-key F] [--deflate[=shared|dedicated]] [--workers K|auto]\n")
    os.exit(2)
  end
end
opts.max_message = 16 * 1024 * 1024

local server = assert(ws.server(opts, function(conn)
  for msg, kind in conn:messages() do
    conn:send(msg, kind)
  end
end))

print(("echo: listening on %s://%s:%d/%s"):format(opts.tls and "wss" or "ws", server.host, server.port,
  workers and (" (%s workers)"):format(workers) or ""))
io.stdout:flush()
assert(ws.run({ workers = workers }))
