-- permessage-deflate measured: the server's memory per connection and its echo throughput in
-- each compression mode. The load client is lua-ws's own client (bench/loadclient does not
-- speak deflate), in this process; the server is a child process pinned to core 0, the client
-- to core 1 when taskset exists.
--
--   lua5.4 bench/deflate.lua memory [--conns 1000]
--       per mode (off, shared, dedicated): N connections that each had one 1 KiB JSON message
--       echoed, then held; the server's RSS growth per connection from /proc/PID/status.
--   lua5.4 bench/deflate.lua echo [--conns 50] [--inflight 8] [--seconds 3]
--       per mode: each connection keeps `inflight` 1 KiB JSON messages outstanding for
--       `seconds`; messages per second, and the server's CPU time per message.
--   lua5.4 bench/deflate.lua server MODE     (the child: echo server, prints its port and pid)
-- BENCH_SERVER_ENV="NAME=value ..." is put before the server's command (e.g. glibc tunables).
-- --level N (0..9) sets the server's zlib compression level (compression.level; default 6).
local root = (arg and arg[0] or ""):match("^(.*)/bench/[^/]*$") or "."
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = root .. "/lua/?.so;" .. package.cpath

local ws = require "ws"

local cmd = arg[1]
local opts = { conns = nil, inflight = 8, seconds = 3 }
for i = 2, #arg - 1, 2 do
  local k = arg[i]:match("^%-%-(%w+)$")
  if k then opts[k] = tonumber(arg[i + 1]) end
end

if cmd == "server" then
  local mode, level = arg[2], tonumber(arg[3])
  local compression = mode
  if level and mode ~= "off" then compression = { mode = mode, level = level } end
  local srv = assert(ws.server({ port = 0, compression = compression, max_queue = 64 }, function(conn)
    for msg, kind in conn:messages() do conn:send(msg, kind) end
  end))
  local f = io.open("/proc/self/stat")
  local pid = f:read("l"):match("^(%d+)")
  f:close()
  print(srv.port, pid)
  io.stdout:flush()
  ws.run()
  return
end

local function read_proc(pid, file)
  local f = io.open(("/proc/%s/%s"):format(pid, file))
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

local function rss_kib(pid) return tonumber(read_proc(pid, "status"):match("VmRSS:%s*(%d+)")) end

local function cpu_seconds(pid)
  local stat = read_proc(pid, "stat"):gsub("^.-%) ", "")
  local fields = {}
  for v in stat:gmatch("%S+") do fields[#fields + 1] = v end
  return (tonumber(fields[12]) + tonumber(fields[13])) / 100 -- utime, stime in clock ticks
end

local has_taskset = os.execute("command -v taskset >/dev/null 2>&1")

local function start_server(mode)
  local pin = (os.getenv("BENCH_SERVER_ENV") or "") .. " " .. (has_taskset and "taskset -c 0 " or "")
  local p = assert(io.popen(("%slua5.4 %s/bench/deflate.lua server %s %s"):format(pin, root, mode, opts.level or ""), "r"))
  local port, pid = p:read("l"):match("^(%d+)%s+(%d+)$")
  return { pipe = p, port = tonumber(port), pid = pid }
end

local function stop_server(s)
  os.execute("kill " .. s.pid)
  s.pipe:close()
end

-- About 1 KiB of chat-like JSON, a little different each time.
local function json(n)
  local items = {}
  for k = 1, 10 do
    items[k] = ('{"type":"message","room":"lobby","seq":%d,"nick":"user%d","text":"hello there, how is it going?"}')
      :format(n * 10 + k, (n + k) % 50)
  end
  return "[" .. table.concat(items, ",") .. "]"
end

local MODES = { "off", "shared", "dedicated" }

local function memory()
  local n = opts.conns or 1000
  print(("memory: %d connections, one %d-byte JSON message echoed on each, then held"):format(n, #json(1)))
  for _, mode in ipairs(MODES) do
    local s = start_server(mode)
    ws.sleep(0.2)
    local before = rss_kib(s.pid)
    local conns, done = {}, 0
    for i = 1, n do
      ws.spawn(function()
        local c = assert(ws.connect(("ws://127.0.0.1:%d/"):format(s.port),
          { compression = mode ~= "off" and "dedicated" or nil, ping_interval = 0 }))
        local m = json(i)
        assert(c:send(m))
        assert(c:receive(10) == m)
        conns[i] = c
        done = done + 1
      end)
    end
    local deadline = ws.now() + 60
    while done < n and ws.now() < deadline do ws.sleep(0.05) end
    ws.sleep(0.3)
    local after = rss_kib(s.pid)
    print(("  %-9s  %4d conns  server RSS %6d -> %6d KiB  = %6.0f bytes per connection")
      :format(mode, done, before, after, (after - before) * 1024 / n))
    for _, c in pairs(conns) do c:close() end
    stop_server(s)
  end
end

local function echo()
  local n, inflight, seconds = opts.conns or 50, opts.inflight, opts.seconds
  print(("echo: %d connections x %d in flight, %d-byte JSON messages, %d s per mode"):format(n, inflight, #json(1), seconds))
  local msgs = {}
  for i = 1, 64 do msgs[i] = json(i) end
  for _, mode in ipairs(MODES) do
    local s = start_server(mode)
    ws.sleep(0.2)
    local count, errors, running = 0, 0, true
    local started, finished = 0, 0
    for i = 1, n do
      ws.spawn(function()
        local c = assert(ws.connect(("ws://127.0.0.1:%d/"):format(s.port),
          { compression = mode ~= "off" and "dedicated" or nil }))
        started = started + 1
        local k = i
        for _ = 1, inflight do k = k + 1; assert(c:send(msgs[k % 64 + 1])) end
        local expect = i
        while running do
          local m = c:receive(10)
          expect = expect + 1
          if m ~= msgs[expect % 64 + 1] then errors = errors + 1 end
          count = count + 1
          k = k + 1
          c:send(msgs[k % 64 + 1])
        end
        c:close()
        finished = finished + 1
      end)
    end
    local deadline = ws.now() + 10
    while started < n and ws.now() < deadline do ws.sleep(0.01) end
    ws.sleep(0.5) -- warm up
    local c0, cpu0, t0 = count, cpu_seconds(s.pid), ws.now()
    ws.sleep(seconds)
    local c1, cpu1, t1 = count, cpu_seconds(s.pid), ws.now()
    running = false
    deadline = ws.now() + 10
    while finished < started and ws.now() < deadline do ws.sleep(0.01) end
    local rate = (c1 - c0) / (t1 - t0)
    print(("  %-9s  %8.0f msg/s  server CPU %5.1f us/msg  errors %d")
      :format(mode, rate, (cpu1 - cpu0) * 1e6 / math.max(1, c1 - c0), errors))
    stop_server(s)
  end
end

if cmd == "memory" then memory()
elseif cmd == "echo" then echo()
else
  io.stderr:write("usage: lua5.4 bench/deflate.lua memory [--conns N] | echo [--conns N] [--inflight N] [--seconds S]\n")
  os.exit(2)
end
