#!/usr/bin/env lua5.4
--[[
Origin policy as a Lua function: which web pages may open a WebSocket to this server.

  lua5.4 examples/origin.lua [--port 8080] [--host 127.0.0.1] [--allow ORIGIN]... [--allow-pattern PATTERN]...

A browser sends the page's origin ("https://app.example.com") with every WebSocket handshake.
Without a check, any site a user visits could open a connection to this server with the user's
cookies (cross-site WebSocket hijacking). Here the decision is:

  1. no Origin header: not a browser (a script, a service): admitted (the option
     require_origin = true would refuse it before this function is asked);
  2. the origin is in the allowlist (exact, compared in lower case): admitted;
  3. the origin matches one of the Lua patterns (anchored with ^...$): admitted;
  4. anything else is refused: the browser gets 403 and a line is logged to stderr.

The allowlist starts with this server's own origins (http://127.0.0.1:PORT and
http://localhost:PORT); --allow and --allow-pattern add to it. The example's default pattern admits
every subdomain of example.com over https. Admitted clients get an echo service at ws://HOST:PORT/.
]]

local here = (arg and arg[0] or ""):match("^(.*)[/\\][^/\\]*$") or "."
local root = here .. "/.."
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = root .. (jit and "/build/luajit/?.so;" or "/lua/?.so;") .. package.cpath -- `make luajit` builds there

local ws = require "ws"

local tointeger = math.tointeger or function(n) return n == math.floor(n) and n or nil end -- LuaJIT
local opts = { port = 8080, host = "127.0.0.1", allow = {}, patterns = {} }
do
  local argv, i = arg or {}, 1
  while i <= #argv do
    local a, v = argv[i], argv[i + 1]
    if a == "--port" and tonumber(v) then opts.port = tointeger(tonumber(v))
    elseif a == "--host" and v then opts.host = v
    elseif a == "--allow" and v then opts.allow[#opts.allow + 1] = v
    elseif a == "--allow-pattern" and v then opts.patterns[#opts.patterns + 1] = v
    else
      io.stderr:write("usage: lua5.4 examples/origin.lua [--port N] [--host H] ",
        "[--allow ORIGIN]... [--allow-pattern PATTERN]...\n")
      os.exit(a == "--help" and 0 or 2)
    end
    i = i + 2
  end
end
if #opts.patterns == 0 then opts.patterns[1] = "^https://[%w%-]+%.example%.com$" end

local allowed = {}
for _, origin in ipairs(opts.allow) do allowed[origin:lower()] = true end

local function log(fmt, ...)
  io.stderr:write(os.date("!%Y-%m-%dT%H:%M:%SZ "), fmt:format(...), "\n")
end

-- The policy. `origin` is the Origin header (nil when the client sent none) and `req` the
-- handshake request; true admits, false refuses with 403.
local function origin_allowed(origin, req)
  if origin == nil then return true end
  local o = origin:lower()
  if allowed[o] then return true end
  for _, pattern in ipairs(opts.patterns) do
    if o:match(pattern) then return true end
  end
  log("origin refused: %q from %s:%s for %s", origin, tostring(req and req.remote_addr),
    tostring(req and req.remote_port), tostring(req and req.path))
  return false
end

local server = ws.server({
  host = opts.host,
  port = opts.port,
  origins = origin_allowed,
}, function(conn)
  for msg, kind in conn:messages() do conn:send(msg, kind) end
end)

-- The server's own pages are always welcome, once the port is known (--port 0 picks one).
allowed[("http://127.0.0.1:%d"):format(server.port)] = true
allowed[("http://localhost:%d"):format(server.port)] = true

print(("origin: listening on ws://%s:%d/ (allowlist: %d origins, %d patterns)"):format(
  opts.host, server.port, #opts.allow + 2, #opts.patterns))
io.stdout:flush()
ws.run()
