-- Shared helpers for the specs: where things are (repository root, the Lua under test, python3, node,
-- chromium), bounded waits, free ports, temporary directories and child processes that always end.
-- Works on Lua 5.1 to 5.4 and LuaJIT, and needs nothing but a POSIX shell and coreutils.
local helper = {}

local function shell_quote(s)
  s = tostring(s)
  if s:match("^[%w%%+,./:=@_-]+$") then return s end
  return "'" .. s:gsub("'", "'\\''") .. "'"
end
helper.shell_quote = shell_quote

local function command_line(argv)
  if type(argv) == "string" then return argv end
  local parts = {}
  for i = 1, #argv do parts[i] = shell_quote(argv[i]) end
  return table.concat(parts, " ")
end

-- os.execute's result differs between 5.1/LuaJIT (a number) and 5.2+ (ok, "exit"|"signal", code).
local function execute(cmd)
  local a, how, code = os.execute(cmd)
  if type(a) == "number" then
    if a > 255 then a = math.floor(a / 256) end
    return a == 0, a
  end
  if how == "signal" then return false, 128 + code end
  return a == true, code or 0
end

local function capture(cmd)
  local f = assert(io.popen(cmd, "r"))
  local out = f:read("*a")
  f:close()
  return out
end

function helper.read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local data = f:read("*a")
  f:close()
  return data
end

function helper.write_file(path, data)
  local f = assert(io.open(path, "wb"))
  assert(f:write(data))
  assert(f:close())
end

function helper.exists(path)
  local f = io.open(path, "rb")
  if f then f:close() return true end
  return false
end

-- The repository root, absolute: specs run from it, but child processes may change directory.
helper.root = (function()
  local src = debug.getinfo(1, "S").source:gsub("^@", "")
  local dir = src:match("^(.*)/spec/helper%.lua$") or "."
  if dir:sub(1, 1) ~= "/" then
    dir = capture("cd " .. shell_quote(dir) .. " && pwd"):gsub("%s+$", "")
  end
  return dir
end)()

-- The Lua interpreter and module path under test. The sanitizer stage sets WS_TEST_LUA to its sanitized
-- interpreter and WS_TEST_CPATH to its build, so Lua children run the same build as the specs.
helper.lua = os.getenv("WS_TEST_LUA") or "lua5.4"
helper.cpath = os.getenv("WS_TEST_CPATH") or (helper.root .. "/lua/?.so")
helper.lpath = helper.root .. "/lua/?.lua;" .. helper.root .. "/lua/?/init.lua"

-- Debian's python3 carries python3-websockets; a python3 earlier in PATH (pyenv) does not.
helper.python = "/usr/bin/python3"

helper.node = (function()
  for _, p in ipairs({ "/usr/bin/node", "/usr/local/bin/node" }) do
    if helper.exists(p) then return p end
  end
  local p = capture("command -v node 2>/dev/null"):gsub("%s+$", "")
  return p ~= "" and p or "node"
end)()
helper.node_path = helper.root .. "/node_modules"

helper.chromium = "/usr/bin/chromium"
-- Flags that keep Chromium off the network and quiet in a closed sandbox; add a fresh --user-data-dir.
helper.chromium_args = {
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
}

-- Sleeps without a Lua library: a bounded child `sleep`.
function helper.sleep(seconds)
  execute("sleep " .. string.format("%.3f", seconds))
end

-- Wall-clock seconds with sub-second resolution (os.time has whole seconds only).
function helper.now()
  local s = capture("date +%s.%N"):gsub("%s+$", "")
  return tonumber(s) or os.time()
end

-- Calls fn until it returns a true value, at most `timeout` seconds (default 5) polling every
-- `interval` (default 0.05); returns fn's values, or nil, "timeout". Bounded in count and in time.
function helper.wait_until(fn, timeout, interval)
  timeout = timeout or 5
  interval = interval or 0.05
  local deadline = os.time() + math.ceil(timeout) + 1
  local tries = math.ceil(timeout / interval) + 1
  for _ = 1, tries do
    local r = { fn() }
    if r[1] then return (unpack or table.unpack)(r) end
    if os.time() > deadline then break end
    helper.sleep(interval)
  end
  return nil, "timeout"
end

function helper.tmpdir(prefix)
  local dir = capture("mktemp -d /tmp/" .. (prefix or "lua-ws-spec") .. ".XXXXXX"):gsub("%s+$", "")
  assert(dir ~= "", "mktemp failed")
  return dir
end

function helper.rmtree(dir)
  assert(dir:match("^/tmp/.+"), "refusing to remove " .. dir)
  execute("rm -rf " .. shell_quote(dir))
end

-- A TCP port on 127.0.0.1 that was free a moment ago (the kernel's pick for port 0).
function helper.free_port()
  local out = capture(shell_quote(helper.python) ..
    [[ -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])"]])
  return assert(tonumber(out), "no free port: " .. tostring(out))
end

-- Runs argv (a list, or a shell string) to completion within `timeout` seconds (default 30).
-- Returns ok, exit code, stdout, stderr (124 = timed out). opts.env: a table of extra variables;
-- opts.stdin: data written to the child's standard input.
function helper.run(argv, opts)
  opts = opts or {}
  local dir = helper.tmpdir("lua-ws-run")
  local env = ""
  for k, v in pairs(opts.env or {}) do env = env .. k .. "=" .. shell_quote(v) .. " " end
  local stdin = "/dev/null"
  if opts.stdin then
    stdin = dir .. "/in"
    helper.write_file(stdin, opts.stdin)
  end
  local cmd = string.format("%s timeout -k 2 %s %s <%s >%s/out 2>%s/err",
    env ~= "" and ("env " .. env) or "", tostring(opts.timeout or 30), command_line(argv),
    stdin, dir, dir)
  local ok, code = execute(cmd)
  local out, err = helper.read_file(dir .. "/out"), helper.read_file(dir .. "/err")
  helper.rmtree(dir)
  return ok, code, out, err
end

local Process = {}
Process.__index = Process

-- Every process started here, so that none outlives the suite (see the end of this file).
local spawned = {}

-- Starts argv in the background, in its own process group, killed after opts.timeout seconds
-- (default 60) whatever happens. Output goes to files: p:output(), p:errors(), p:wait_output(pattern).
function helper.spawn(argv, opts)
  opts = opts or {}
  local dir = helper.tmpdir("lua-ws-proc")
  local env = ""
  for k, v in pairs(opts.env or {}) do env = env .. k .. "=" .. shell_quote(v) .. " " end
  local inner = string.format("%stimeout --foreground -k 2 %s %s; echo $? >%s/rc",
    env ~= "" and ("env " .. env) or "", tostring(opts.timeout or 60), command_line(argv), dir)
  local cmd = string.format("setsid sh -c %s >%s/out 2>%s/err </dev/null & echo $!",
    shell_quote(inner), dir, dir)
  local pid = tonumber((capture(cmd):gsub("%s+$", "")))
  assert(pid, "spawn failed: " .. command_line(argv))
  local proc = setmetatable({ pid = pid, dir = dir, argv = argv }, Process)
  spawned[#spawned + 1] = proc
  return proc
end

-- Starts a Lua script with the interpreter and build under test (see helper.lua / helper.cpath).
function helper.spawn_lua(script_and_args, opts)
  opts = opts or {}
  local env = opts.env or {}
  env.LUA_CPATH = env.LUA_CPATH or (helper.cpath .. ";;")
  env.LUA_PATH = env.LUA_PATH or (helper.lpath .. ";;")
  env.LUA_CPATH_5_4 = env.LUA_CPATH_5_4 or env.LUA_CPATH
  env.LUA_PATH_5_4 = env.LUA_PATH_5_4 or env.LUA_PATH
  opts.env = env
  local argv = { helper.lua }
  for i = 1, #script_and_args do argv[#argv + 1] = script_and_args[i] end
  return helper.spawn(argv, opts)
end

function Process:output()
  return self.dir and (helper.read_file(self.dir .. "/out") or "") or self.final_output
end
function Process:errors()
  return self.dir and (helper.read_file(self.dir .. "/err") or "") or self.final_errors
end

-- The exit code once the process has ended, or nil while it runs.
function Process:exit_code()
  if not self.dir then return self.final_code end
  local rc = helper.read_file(self.dir .. "/rc")
  return rc and tonumber((rc:gsub("%s+$", "")))
end

-- A process is alive while it exists and is not a zombie waiting to be reaped.
local function alive(pid)
  local stat = capture("ps -o stat= -p " .. pid .. " 2>/dev/null")
  return stat:match("%S") ~= nil and not stat:match("^%s*Z")
end

function Process:running()
  return self.dir ~= nil and self:exit_code() == nil and alive(self.pid)
end

-- Waits (bounded) until stdout matches the Lua pattern; returns the captures or the match.
function Process:wait_output(pattern, timeout)
  return helper.wait_until(function()
    local out = self:output()
    local m = { out:match(pattern) }
    if m[1] then return (unpack or table.unpack)(m) end
    if not self:running() then return nil end
  end, timeout or 10)
end

-- Waits (bounded) for the process to end; returns its exit code, or nil, "timeout".
function Process:wait(timeout)
  return helper.wait_until(function() return self:exit_code() end, timeout or 10)
end

-- Ends the whole process group (TERM, then KILL after `grace` seconds) and removes its files, keeping
-- the output readable; safe to call twice.
function Process:kill(grace)
  if not self.dir then return self.final_code end
  execute("/bin/kill -TERM -- -" .. self.pid .. " 2>/dev/null")
  helper.wait_until(function() return not alive(self.pid) end, grace or 3, 0.02)
  -- Whatever ignored TERM (or outlived the group leader) goes now.
  execute("/bin/kill -KILL -- -" .. self.pid .. " 2>/dev/null")
  self.final_code, self.final_output, self.final_errors = self:exit_code(), self:output(), self:errors()
  helper.rmtree(self.dir)
  self.dir = nil
  return self.final_code
end

-- Ends every process still running and removes their files; runs by itself when the suite ends.
function helper.cleanup()
  for i = #spawned, 1, -1 do
    spawned[i]:kill(1)
    spawned[i] = nil
  end
end

local ok, busted = pcall(require, "busted")
if ok and type(busted) == "table" and busted.subscribe then
  busted.subscribe({ "suite", "end" }, function()
    helper.cleanup()
    return nil, true
  end)
end

return helper
