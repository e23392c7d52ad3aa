-- The workers mode (ws.run{ workers = K }) with real processes: connections spread over the
-- workers' SO_REUSEPORT listeners, a killed worker is restarted, SIGTERM to the master closes
-- every client with 1001 after everything queued for it, and the master exits 0.
local helper = require "helper"
local client = require "support.ws_client"

local SCRIPT = helper.root .. "/spec/support/workers_server.lua"

-- opts.session: the master leads a process group of its own with its workers, as in a
-- terminal (where Ctrl-C signals the whole group).
local function start(args, opts)
  local argv = { SCRIPT }
  for _, a in ipairs(args or {}) do argv[#argv + 1] = a end
  local proc
  if opts and opts.session then
    local path, cpath = helper.lpath .. ";;", helper.cpath .. ";;"
    table.insert(argv, 1, helper.lua)
    table.insert(argv, 1, "setsid")
    proc = helper.spawn(argv, { timeout = 90, env = { LUA_PATH = path, LUA_PATH_5_4 = path,
      LUA_CPATH = cpath, LUA_CPATH_5_4 = cpath } })
  else
    proc = helper.spawn_lua(argv, { timeout = 90 })
  end
  local master, port = proc:wait_output("master (%d+) listening (%d+)", 10)
  assert(port, "the server did not start: " .. proc:errors())
  return { proc = proc, master = tonumber(master), port = tonumber(port) }
end

-- The pid of each worker index that printed "ready" (the latest one per index).
local function ready(srv)
  local pids = {}
  for index, pid in srv.proc:output():gmatch("ready (%d+) (%d+)") do pids[tonumber(index)] = tonumber(pid) end
  return pids
end

local function wait_ready(srv, k)
  return helper.wait_until(function()
    local pids = ready(srv)
    for i = 1, k do if not pids[i] then return nil end end
    return pids
  end, 10)
end

local function kill(pid, sig) -- a negative pid: its process group
  os.execute(("/bin/kill -%s -- %d 2>/dev/null"):format(sig, pid))
end

-- Asks a new connection which worker serves it: index, pid, K.
local function who(port)
  local c = assert(client.connect(port))
  assert(c:send("who"))
  local kind, msg = c:message(5)
  assert.are.equal("text", kind)
  local index, pid, k = msg:match("^worker (%d+) (%d+) (%d+)$")
  return c, tonumber(index), tonumber(pid), tonumber(k)
end

-- Only a process of this spec's script (a pid may have been reused once it is gone).
local function ours(pid)
  local f = io.open("/proc/" .. pid .. "/cmdline")
  local cmd = f and f:read("*a") or ""
  if f then f:close() end
  return cmd:find("workers_server.lua", 1, true) ~= nil
end

local function alive(pid)
  local f = io.open("/proc/" .. pid .. "/stat")
  if not f then return false end
  local st = f:read("*l")
  f:close()
  return st ~= nil and not st:match("^%d+ %b() Z")
end

describe("workers", function()
  local srv
  after_each(function()
    if srv then
      -- The master and its workers, wherever their process group is (see start).
      for _, pid in pairs(ready(srv)) do if ours(pid) then kill(pid, "KILL") end end
      if ours(srv.master) then kill(srv.master, "KILL") end
      srv.proc:kill()
    end
    srv = nil
  end)

  for _, style in ipairs({ "coroutine", "callback" }) do
    it("spreads 200 connections over 2 workers on one port (" .. style .. " style)", function()
      srv = start({ "--workers", "2", "--style", style })
      local pids = assert(wait_ready(srv, 2))
      assert.are_not.equal(pids[1], pids[2])
      assert.are_not.equal(srv.master, pids[1])
      local count, conns = { 0, 0 }, {}
      for i = 1, 200 do
        local c, index, pid, k = who(srv.port)
        assert.are.equal(2, k)
        assert.are.equal(pids[index], pid)
        count[index] = count[index] + 1
        conns[i] = c
      end
      for _, c in ipairs(conns) do c:abort() end
      print(("\n[workers %s] 200 connections: worker 1 %d, worker 2 %d"):format(style, count[1], count[2]))
      -- A 4-tuple hash: about 100 each (binomial, sd 7); 60 is more than five sd away.
      assert.is_true(count[1] >= 60 and count[2] >= 60, ("%d / %d"):format(count[1], count[2]))
    end)
  end

  it("restarts a worker killed with SIGKILL, which serves again", function()
    srv = start({ "--workers", "2" })
    local pids = assert(wait_ready(srv, 2))
    kill(pids[1], "KILL")
    local line = ("ws: worker 1 (pid %d) exited with signal 9; restarting in 0.1 s"):format(pids[1])
    assert.truthy(helper.wait_until(function() return srv.proc:errors():find(line, 1, true) end, 5), srv.proc:errors())
    local new = assert(helper.wait_until(function()
      local p = ready(srv)[1]
      return p ~= pids[1] and p
    end, 10))
    assert.is_true(alive(pids[2])) -- the other worker went on
    local seen, conns = {}, {}
    for i = 1, 100 do
      local c, index, pid = who(srv.port)
      conns[i] = c
      seen[index] = pid
      if seen[1] and seen[2] then break end
    end
    for _, c in ipairs(conns) do c:abort() end
    assert.are.same({ new, pids[2] }, { seen[1], seen[2] })
  end)

  it("restarts a worker that exits with an error status", function()
    local dir = helper.tmpdir("lua-ws-workers")
    srv = start({ "--workers", "2", "--fail-once", dir .. "/started" })
    assert.truthy(wait_ready(srv, 2))
    assert.matches("^ws: worker 1 %(pid %d+%) exited with status 3; restarting in 0%.1 s\n$", srv.proc:errors())
    local seen, conns = {}, {}
    for i = 1, 100 do
      local c, index = who(srv.port)
      conns[i] = c
      seen[index] = true
      if seen[1] and seen[2] then break end
    end
    for _, c in ipairs(conns) do c:abort() end
    assert.are.same({ true, true }, seen)
    helper.rmtree(dir)
  end)

  it("backs off: a worker killed again soon after its restart waits twice as long", function()
    srv = start({ "--workers", "1" })
    local first = assert(wait_ready(srv, 1))[1]
    kill(first, "KILL")
    local second = assert(helper.wait_until(function()
      local p = ready(srv)[1]
      return p ~= first and p
    end, 10))
    kill(second, "KILL")
    local line = ("ws: worker 1 (pid %d) exited with signal 9; restarting in 0.2 s"):format(second)
    assert.truthy(helper.wait_until(function() return srv.proc:errors():find(line, 1, true) end, 5), srv.proc:errors())
    assert.truthy(helper.wait_until(function()
      local p = ready(srv)[1]
      return p ~= second and p
    end, 10))
  end)

  for _, style in ipairs({ "coroutine", "callback" }) do
    it("SIGTERM to the master: every client gets all it queued, then 1001; the master exits 0 (" .. style .. ")", function()
      local BURST, CLIENTS = 2000, 8 -- 8 MiB for each client
      srv = start({ "--workers", "2", "--style", style })
      local pids = assert(wait_ready(srv, 2))
      local conns, on = {}, { 0, 0 }
      for i = 1, CLIENTS do
        local c, index = who(srv.port)
        on[index] = on[index] + 1
        conns[i] = c
        assert(c:send("burst " .. BURST))
      end
      assert.is_true(on[1] > 0 and on[2] > 0) -- both workers hold some (2^-7 to miss)
      -- Every burst is queued, the clients read nothing yet: the sockets are full and each
      -- worker still holds megabytes for its clients when the master gets the signal.
      assert.truthy(helper.wait_until(function()
        local n = 0
        for _ in srv.proc:output():gmatch("queued %d+ %d+") do n = n + 1 end
        return n == CLIENTS
      end, 10))
      helper.sleep(0.5) -- the sockets fill up
      local held = assert(helper.wait_until(function()
        local last = {}
        for index, bytes in srv.proc:output():gmatch("buffered (%d+) (%d+)") do last[tonumber(index)] = tonumber(bytes) end
        return last[1] and last[2] and last
      end, 10))
      print(("\n[workers %s] at SIGTERM, queued in the workers: %d and %d bytes"):format(style, held[1], held[2]))
      assert.is_true(held[1] > on[1] * 2^21 and held[2] > on[2] * 2^21)
      kill(srv.master, "TERM")
      for _, c in ipairs(conns) do
        for i = 1, BURST do
          local _, got = c:message(5)
          assert.are.equal("n" .. i, got and got:match("^n%d+"))
        end
        local _, last = c:message(5)
        assert.are.equal("burst end", last)
        local kind, code = c:message(5)
        assert.are.same({ "close", 1001 }, { kind, code })
        c:close()
      end
      assert.are.equal(0, srv.proc:wait(15))
      assert.matches("master returned true nil nil\n", srv.proc:output())
      assert.is_false(alive(pids[1]))
      assert.is_false(alive(pids[2]))
      assert.are.equal("", srv.proc:errors())
      assert.is_nil(client.tcp(srv.port, 1)) -- nobody listens any more
    end)
  end

  it("Ctrl-C (SIGINT to the whole process group) stops as gracefully as SIGTERM to the master", function()
    srv = start({ "--workers", "2" }, { session = true })
    local pids = assert(wait_ready(srv, 2))
    local conns = {}
    for i = 1, 6 do
      conns[i] = who(srv.port)
      assert(conns[i]:send("burst 2000")) -- 8 MiB: most of it stays queued in the worker
    end
    assert.truthy(helper.wait_until(function()
      local n = 0
      for _ in srv.proc:output():gmatch("queued %d+ %d+") do n = n + 1 end
      return n == 6
    end, 10))
    helper.sleep(0.3)
    kill(-srv.master, "INT") -- the master and both workers get it at once
    for _, c in ipairs(conns) do
      for i = 1, 2000 do
        local _, got = c:message(5)
        assert.are.equal("n" .. i, got and got:match("^n%d+"))
      end
      assert.are.same({ "text", "burst end" }, { c:message(5) })
      local kind, code = c:message(5)
      assert.are.same({ "close", 1001 }, { kind, code })
      c:close()
    end
    assert.truthy(srv.proc:wait_output("master returned true nil nil\n", 10))
    assert.truthy(helper.wait_until(function()
      return not alive(srv.master) and not alive(pids[1]) and not alive(pids[2])
    end, 5))
    assert.are.equal("", srv.proc:errors())
  end)

  it("a second signal kills the workers at once", function()
    srv = start({ "--workers", "2", "--stop-timeout", "30" })
    local pids = assert(wait_ready(srv, 2))
    local conns = {}
    for i = 1, 8 do
      conns[i] = who(srv.port)
      assert(conns[i]:send("burst 2000")) -- about 8 MiB each, left unread
    end
    assert.truthy(helper.wait_until(function()
      local n = 0
      for _ in srv.proc:output():gmatch("queued %d+ %d+") do n = n + 1 end
      return n == 8
    end, 10))
    kill(srv.master, "TERM")
    helper.sleep(0.3)
    assert.is_true(alive(pids[1]) or alive(pids[2])) -- still flushing to clients that do not read
    kill(srv.master, "INT")
    assert.are.equal(0, srv.proc:wait(5))
    assert.is_false(alive(pids[1]))
    assert.is_false(alive(pids[2]))
    for _, c in ipairs(conns) do c:abort() end
  end)

  it("workers stop by themselves when their master is killed with SIGKILL", function()
    srv = start({ "--workers", "2" })
    local pids = assert(wait_ready(srv, 2))
    local c = who(srv.port)
    kill(srv.master, "KILL")
    local kind, code = c:message(5)
    assert.are.same({ "close", 1001 }, { kind, code })
    c:close()
    assert.truthy(helper.wait_until(function() return not alive(pids[1]) and not alive(pids[2]) end, 10))
  end)

  it("a parked listener keeps its port and accepts nothing; closing the server frees the port", function()
    local ok, code, out, err = helper.run({ helper.lua, "-e", [[
      package.path = ]] .. ("%q"):format(helper.lpath .. ";;") .. [[
      package.cpath = ]] .. ("%q"):format(helper.cpath .. ";;") .. [[
      local ws = require "ws"
      local h = function() end
      local a = assert(ws.server({ port = 0 }, h))
      assert(a:_before_fork())
      print(select(3, ws.server({ port = a.port }, h)))
      print((select(3, ws.connect("ws://127.0.0.1:" .. a.port .. "/", { timeout = 2 }))))
      a:close()
      local b = assert(ws.server({ port = a.port }, h))
      print(b.port == a.port)
    ]] }, { timeout = 10 })
    assert.is_true(ok, err)
    assert.are.equal(0, code)
    assert.are.equal("EADDRINUSE\nECONNREFUSED\ntrue\n", out)
  end)

  it("reuseport is off by default: a second server on a taken port fails, unless both ask for it", function()
    local ok, code, out, err = helper.run({ helper.lua, "-e", [[
      package.path = ]] .. ("%q"):format(helper.lpath .. ";;") .. [[
      package.cpath = ]] .. ("%q"):format(helper.cpath .. ";;") .. [[
      local ws = require "ws"
      local h = function() end
      local a = assert(ws.server({ port = 0 }, h))
      print(select(3, ws.server({ port = a.port }, h)))
      local b = assert(ws.server({ port = 0, reuseport = true }, h))
      local c, e = ws.server({ port = b.port, reuseport = true }, h)
      print(c and c.port == b.port, e)
      print(select(3, ws.server({ port = b.port }, h)))
    ]] }, { timeout = 10 })
    assert.is_true(ok, err)
    assert.are.equal(0, code)
    assert.are.equal("EADDRINUSE\ntrue\tnil\nEADDRINUSE\n", out)
  end)

  it("ws.run checks its workers option", function()
    local ok, code, _, err = helper.run({ helper.lua, "-e", [[
      package.path = ]] .. ("%q"):format(helper.lpath .. ";;") .. [[
      package.cpath = ]] .. ("%q"):format(helper.cpath .. ";;") .. [[
      local ws = require "ws"
      for _, k in ipairs({ 0, 1.5, "many", -1 }) do
        local ok, e = pcall(ws.run, { workers = k })
        io.stderr:write(tostring(e), "\n")
      end
      local ok, e = pcall(ws.run, { workers = 2, signals = false })
      io.stderr:write(tostring(e), "\n")
      assert(ws.worker() == nil and ws.workers() == 1)
    ]] }, { timeout = 10 })
    assert.is_true(ok, err)
    assert.are.equal(0, code)
    local expected = ('ws.run: workers must be a positive integer or "auto"\n'):rep(4) ..
      "ws.run: the master of workers handles SIGINT and SIGTERM (signals = false)\n"
    assert.are.equal(expected, (err:gsub("[^\n]*: ws%.run", "ws.run")))
  end)
end)
