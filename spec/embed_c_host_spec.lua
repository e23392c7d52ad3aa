-- A C host that owns its libev loop and runs lua-ws on it through csrc/ws.h (ws_attach):
-- examples/c_host is built with `make c-host` against the ws/core.so under test, started on a
-- free port, and must echo over WebSocket while its own timer keeps ticking on the same loop.
local helper = require "helper"
local client = require "support.ws_client"

local function find_core()
  local path = package.searchpath("ws.core", helper.cpath)
  assert(path, "ws/core.so not found in " .. helper.cpath)
  if path:sub(1, 1) ~= "/" then path = helper.root .. "/" .. path end
  return path
end

-- The pid of the host program itself (the spawned group leader is a shell).
local function host_pid(proc)
  local f = io.popen("pgrep -g " .. proc.pid .. " -x host")
  local out = f:read("*a")
  f:close()
  return tonumber(out:match("%d+"))
end

describe("C host with its own libev loop", function()
  local dir, host

  setup(function()
    dir = helper.tmpdir("lua-ws-chost")
    host = dir .. "/host"
    local argv = { "make", "--no-print-directory", "-C", helper.root, "c-host",
                   "C_HOST=" .. host, "C_HOST_CORE=" .. find_core(), "C_HOST_FLAGS=-Werror" }
    -- A sanitized core.so needs the sanitizer runtimes in the program that links it.
    local sanitize = os.getenv("WS_TEST_SANITIZE")
    if sanitize and sanitize ~= "" then argv[#argv] = "C_HOST_FLAGS=-Werror -fsanitize=" .. sanitize end
    if jit then -- the host links the Lua that runs the specs
      argv[#argv + 1] = "C_HOST_LUA_INC=/usr/include/luajit-2.1"
      argv[#argv + 1] = "C_HOST_LUA_LIB=-lluajit-5.1"
    end
    local ok, code, out, err = helper.run(argv, { timeout = 120 })
    assert(ok, ("make c-host failed (%s):\n%s%s"):format(tostring(code), out or "", err or ""))
  end)
  teardown(function() if dir then helper.rmtree(dir) end end)

  local function start(script, args)
    local argv = { host, script }
    for _, a in ipairs(args or {}) do argv[#argv + 1] = a end
    return helper.spawn(argv, { timeout = 60, env = {
      LUA_CPATH = helper.cpath .. ";;", LUA_PATH = helper.lpath .. ";;",
      LUA_CPATH_5_4 = helper.cpath .. ";;", LUA_PATH_5_4 = helper.lpath .. ";;",
    } })
  end

  it("echoes through lua-ws while the host's own timer runs, and stops on SIGTERM", function()
    local port = helper.free_port()
    local proc = start(helper.root .. "/examples/c_host/echo.lua", { tostring(port) })
    local ok, err = pcall(function()
      assert(proc:wait_output("listening on ws://127%.0%.0%.1:(%d+)/", 10), "host did not start: " .. proc:errors())
      local c = assert(client.connect(port))
      assert(c:send("hello"))
      assert.same({ "text", "hello" }, { c:message() })
      local blob = ("\0\1\2\255"):rep(5000)
      assert(c:send(blob, "binary"))
      assert.same({ "binary", blob }, { c:message() })
      -- the host's timer (every 0.2 s) and a lua-ws task (every 0.25 s) both ran on the loop
      assert(proc:wait_output("host tick 3\n", 5), "the host's timer did not run")
      assert(c:send("ticks?"))
      local kind, text = c:message()
      assert.are.equal("text", kind)
      local ht, lt = text:match("^host (%d+) lua (%d+)$")
      assert.is_true(tonumber(ht) >= 3, text)
      assert.is_true(tonumber(lt) >= 1, text)
      c:close()
      local pid = assert(host_pid(proc), "host process not found")
      os.execute("kill -TERM " .. pid)
      assert(proc:wait_output("host stopped after (%d+) ticks", 5), "host did not stop: " .. proc:errors())
    end)
    proc:kill()
    assert(ok, err)
    assert.matches("host got signal 15\nhost stopped after %d+ ticks\n", proc:output())
    assert.are.equal("", proc:errors())
  end)

  it("refuses ws.run, ws.step and waits on the main thread; ws.stop ends the host's ev_run", function()
    local script = dir .. "/checks.lua"
    helper.write_file(script, [[
      local ws = require "ws"
      local function try(f, ...) local ok, e = pcall(f, ...) print(ok, (tostring(e):gsub("^.-: ws", "ws"))) end
      try(ws.run)
      try(ws.step, 0)
      try(ws.sleep, 0.01)
      print(ws.pollfd())
      ws.spawn(function()
        ws.sleep(0.05)
        print("task slept on the host's loop")
        ws.stop()
      end)
    ]])
    local proc = start(script)
    local code = proc:wait(10)
    local out = proc:output()
    proc:kill()
    assert.are.equal(0, code, out)
    assert.are.equal(table.concat({
      "false\tws.run: the host runs the loop (ws_attach)",
      "false\tws.step: the host runs the loop (ws_attach)",
      "false\tws: the host runs the loop (ws_attach): wait from a coroutine started with ws.spawn",
      "nil\tws.pollfd: the host runs the loop (ws_attach)",
      "task slept on the host's loop",
      "host stopped after 0 ticks",
    }, "\n") .. "\n", out)
  end)
end)
