-- wss next to ws: handshakes per second and echo throughput of examples/echo.lua, measured with
-- lua-ws's own client (one process; pinned to another core than the server when taskset exists).
--   lua5.4 bench/tls_echo.lua [seconds-per-case (default 3)]
-- Certificates are made for the run in a temporary directory. Every case is bounded in time.
local root = (arg and arg[0] or ""):match("^(.*)/bench/[^/]*$") or "."
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. root .. "/spec/?.lua;" .. package.path
package.cpath = root .. "/lua/?.so;" .. package.cpath

local ws = require "ws"
local helper = require "helper"
local certs = require "support.certs"

local SECONDS = tonumber(arg[1]) or 3
local C = certs.make()
local has_taskset = os.execute("command -v taskset >/dev/null 2>&1")

local function start_server(tls)
  local port = helper.free_port()
  local argv = { helper.lua, root .. "/examples/echo.lua", "--port", tostring(port) }
  if tls then for _, a in ipairs({ "--tls-cert", C.cert, "--tls-key", C.key }) do argv[#argv + 1] = a end end
  if has_taskset then table.insert(argv, 1, "0") table.insert(argv, 1, "-c") table.insert(argv, 1, "taskset") end
  local p = helper.spawn(argv, { timeout = 20 * SECONDS + 30, env = { LUA_CPATH = package.cpath, LUA_PATH = package.path } })
  assert(p:wait_output("listening"), "server did not start: " .. p:errors())
  return p, port
end

local function url(tls, port) return ("%s://127.0.0.1:%d/"):format(tls and "wss" or "ws", port) end
local OPTS = { tls = { ca = C.ca }, timeout = 5 }

-- Full WebSocket connects (TCP + TLS + upgrade) per second from `par` coroutines.
local function connects(tls, port, par)
  ws.sleep(0) -- ws.now() is the loop's time: bring it up to date first
  local n, stop_at, errs = 0, ws.now() + SECONDS, 0
  for _ = 1, par do
    ws.spawn(function()
      while ws.now() < stop_at do
        local c = ws.connect(url(tls, port), tls and OPTS or { timeout = 5 })
        if c then n = n + 1 c:close() else errs = errs + 1 end
      end
    end)
  end
  ws.run()
  return n / SECONDS, errs
end

-- Echo messages of `size` bytes over `conns` connections with `inflight` messages each.
local function echo(tls, port, size, conns, inflight)
  ws.sleep(0)
  local msgs, stop_at = 0, ws.now() + SECONDS
  local payload = ("x"):rep(size)
  for _ = 1, conns do
    ws.spawn(function()
      local c = assert(ws.connect(url(tls, port), tls and OPTS or { timeout = 5 }))
      for _ = 1, inflight do c:send(payload, "binary") end
      while ws.now() < stop_at do
        local m = c:receive(5)
        if not m then break end
        msgs = msgs + 1
        c:send(payload, "binary")
      end
      c:close()
    end)
  end
  local t0 = ws.now()
  ws.run()
  local took = ws.now() - t0
  return msgs / took, msgs * size / took / 1e6
end

local function s_time(port)
  local ok, _, out = helper.run({ "openssl", "s_time", "-connect", "127.0.0.1:" .. port, "-new",
                                  "-time", tostring(SECONDS), "-CAfile", C.ca }, { timeout = SECONDS + 20 })
  return ok and tonumber(out:match("([%d.]+) connections/user sec")), out and out:match("(%d+ connections in [%d.]+ real seconds)")
end

if has_taskset then os.execute("taskset -cp 1 " .. (io.open("/proc/self/stat"):read("l"):match("^(%d+)")) .. " >/dev/null") end
print(("lua-ws %s, %d s per case, server on core 0, client on core 1 (%s)")
  :format(ws._VERSION, SECONDS, has_taskset and "taskset" or "not pinned"))
local rows = {}
for _, tls in ipairs({ false, true }) do
  local p, port = start_server(tls)
  local name = tls and "wss" or "ws"
  local r = {}
  r.conn1 = connects(tls, port, 1)
  r.conn8 = connects(tls, port, 8)
  if tls then r.s_time_user, r.s_time_real = s_time(port) end
  r.e32 = { echo(tls, port, 32, 50, 16) }
  r.e1k = { echo(tls, port, 1024, 50, 16) }
  r.e64k = { echo(tls, port, 65536, 10, 1) }
  rows[name] = r
  p:kill()
end
local function f(x) return x and ("%.0f"):format(x) or "-" end
print(("%-40s %12s %12s"):format("case", "ws", "wss"))
print(("%-40s %12s %12s"):format("connects/s, 1 client coroutine", f(rows.ws.conn1), f(rows.wss.conn1)))
print(("%-40s %12s %12s"):format("connects/s, 8 client coroutines", f(rows.ws.conn8), f(rows.wss.conn8)))
for _, k in ipairs({ { "e32", "echo 32 B, 50 conns x 16 in flight" }, { "e1k", "echo 1 KiB, 50 conns x 16 in flight" },
                     { "e64k", "echo 64 KiB, 10 conns x 1 in flight" } }) do
  print(("%-40s %12s %12s   msg/s"):format(k[2], f(rows.ws[k[1]][1]), f(rows.wss[k[1]][1])))
  print(("%-40s %12.1f %12.1f   MB/s each way"):format("", rows.ws[k[1]][2], rows.wss[k[1]][2]))
end
print(("openssl s_time -new against the wss server: %s connections/user sec (%s)")
  :format(f(rows.wss.s_time_user), tostring(rows.wss.s_time_real)))
certs.cleanup()
