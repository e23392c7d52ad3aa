-- Starts a lua-ws server as a child process from a chunk of Lua for the server specs. The chunk
-- sees `ws`, `listen(opts, handler)` (a server on a free port of 127.0.0.1; it prints
-- "listening <port>"), `log(...)` (a line on stdout, flushed) and `rss_kib()`; the loop runs
-- after the chunk. The child is killed with its process group when the spec stops it.
-- opts: timeout, no_run, env (extra environment variables of the child).
local helper = require "helper"

local M = {}

local PRELUDE = [[
local ws = require "ws"
local function log(...)
  local t = { ... }
  for i = 1, select("#", ...) do t[i] = tostring(t[i]) end
  io.stdout:write(table.concat(t, " "), "\n")
  io.stdout:flush()
end
local function rss_kib()
  local f = io.open("/proc/self/status")
  local s = f:read("*a")
  f:close()
  return tonumber(s:match("VmRSS:%s*(%d+)"))
end
local function listen(opts, handler)
  opts.host = opts.host or "127.0.0.1"
  opts.port = opts.port or 0
  local srv = assert(ws.server(opts, handler))
  log("listening " .. srv.port)
  return srv
end
]]

local Server = {}
Server.__index = Server

-- Returns a server handle with .port, :output(), :errors(), :wait_output(pattern), :stop().
function M.start(code, opts)
  opts = opts or {}
  local dir = helper.tmpdir("lua-ws-server")
  local file = dir .. "/server.lua"
  helper.write_file(file, PRELUDE .. code .. (opts.no_run and "" or "\nws.run()\n"))
  local proc = helper.spawn_lua({ file }, { timeout = opts.timeout or 120, env = opts.env })
  local port = proc:wait_output("listening (%d+)", 10)
  local self = setmetatable({ proc = proc, dir = dir, port = tonumber(port) }, Server)
  if not self.port then
    local errs = proc:errors()
    self:stop()
    error("server did not start: " .. tostring(errs))
  end
  return self
end

function Server:output() return self.proc:output() end
function Server:errors() return self.proc:errors() end
function Server:wait_output(pattern, timeout) return self.proc:wait_output(pattern, timeout) end
function Server:running() return self.proc:running() end

-- The pid of the Lua process itself (the spawned group leader is a shell).
function Server:lua_pid()
  local f = io.popen("pgrep -g " .. self.proc.pid .. " -f " .. helper.shell_quote(self.dir .. "/server.lua"))
  local out = f:read("*a")
  f:close()
  for pid in out:gmatch("%d+") do
    local c = io.open("/proc/" .. pid .. "/comm")
    local comm = c and c:read("*l")
    if c then c:close() end
    if comm and comm:match("^lua") then return tonumber(pid) end
  end
end

function Server:rss_kib()
  local pid = self:lua_pid()
  local f = pid and io.open("/proc/" .. pid .. "/status")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return tonumber(s:match("VmRSS:%s*(%d+)"))
end

-- Sends a signal to the Lua process only.
function Server:signal(name)
  local pid = self:lua_pid()
  if pid then os.execute("kill -" .. name .. " " .. pid) end
end

function Server:stop()
  if self.proc then self.proc:kill() end
  if self.dir then helper.rmtree(self.dir) end
  self.proc, self.dir = nil, nil
end

return M
