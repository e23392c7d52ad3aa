-- A reconnecting client used from two coroutines at once (a reader in rc:messages() and a
-- sender in rc:send) shares one connection attempt: the second caller waits for the first
-- one's connection instead of opening another, so the reply to what one sent reaches the
-- other. A failed attempt is shared as well: two callers, one series of tries.
local helper = require "helper"
local server = require "support.ws_server"

local function run_client(code)
  local dir = helper.tmpdir("lua-ws-rc")
  local file = dir .. "/client.lua"
  helper.write_file(file, "local ws = require 'ws'\n" .. code)
  local ok, rc, out, err = helper.run({ helper.lua, file }, {
    timeout = 20,
    env = { LUA_PATH = helper.lpath .. ";;", LUA_CPATH = helper.cpath .. ";;",
            LUA_PATH_5_4 = helper.lpath .. ";;", LUA_CPATH_5_4 = helper.cpath .. ";;" },
  })
  helper.rmtree(dir)
  return ok, rc, out, err
end

describe("ws.reconnecting used from two coroutines", function()
  local srv
  setup(function()
    srv = server.start([[
      local n = 0
      listen({}, function(conn)
        n = n + 1
        log("connection " .. n)
        for msg in conn:messages() do conn:send("echo " .. msg) end
      end)
    ]])
  end)
  teardown(function() srv:stop() end)

  it("opens one connection and the reader gets the reply to the sender's message", function()
    local ok, code, out, err = run_client(([[
      local rc = ws.reconnecting("ws://127.0.0.1:%d/")
      ws.spawn(function() -- a bound on the whole script
        ws.sleep(5)
        print("timed out")
        os.exit(1)
      end)
      ws.spawn(function()
        for msg in rc:messages() do
          print("reader got " .. msg)
          break
        end
        print("connects " .. rc.connects)
        rc:close()
        os.exit(0)
      end)
      ws.spawn(function() print("sent", rc:send("one")) end)
      ws.run()
    ]]):format(srv.port))
    assert.is_true(ok, tostring(out) .. tostring(err))
    assert.matches("reader got echo one", out, 1, true)
    assert.matches("connects 1", out, 1, true)
    assert.truthy(srv:wait_output("connection 1"))
    helper.sleep(0.2)
    assert.is_nil(srv:output():find("connection 2", 1, true))
  end)

  it("shares a failed attempt: both callers get its error, after one series of tries", function()
    local port = helper.free_port() -- nothing listens there
    local ok, code, out, err = run_client(([[
      local rc = ws.reconnecting("ws://127.0.0.1:%d/", { reconnect = { attempts = 2, initial = 0.01 } })
      local done = 0
      for i = 1, 2 do
        ws.spawn(function()
          local conn, msg, code = rc:connect()
          print("caller " .. i, tostring(conn), code)
          done = done + 1
          if done == 2 then print("failures " .. rc.failures) end
        end)
      end
      ws.run()
    ]]):format(port))
    assert.is_true(ok, tostring(out) .. tostring(err))
    assert.matches("caller 1\tnil\tECONNREFUSED", out, 1, true)
    assert.matches("caller 2\tnil\tECONNREFUSED", out, 1, true)
    assert.matches("failures 2", out, 1, true)
  end)

  it("lets a waiting caller give up at its own deadline", function()
    local port = helper.free_port()
    local ok, code, out, err = run_client(([[
      local rc = ws.reconnecting("ws://127.0.0.1:%d/", { reconnect = { attempts = 3, initial = 0.3, jitter = false } })
      ws.spawn(function() print("first", select(3, rc:connect())) end)
      ws.spawn(function()
        local t = ws.now()
        local conn, msg, code = rc:connect(ws.now() + 0.1)
        print("second", msg, code, ws.now() - t < 0.25)
      end)
      ws.run()
    ]]):format(port))
    assert.is_true(ok, tostring(out) .. tostring(err))
    assert.matches("second\ttimeout\ttimeout\ttrue", out, 1, true)
    assert.matches("first\tECONNREFUSED", out, 1, true)
  end)
end)
