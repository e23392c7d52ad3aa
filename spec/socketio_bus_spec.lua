-- The Socket.IO server on the Redis bus: two processes on one redis-server of the spec's own,
-- Node's socket.io-client on each (WebSocket only and polling only): every broadcast shape
-- (one room, several rooms, except, the whole namespace, another namespace, a socket id)
-- reaches each member on either process exactly once, and a process subscribes only to the
-- rooms it has members of (PUBSUB NUMSUB is the number of processes holding the room).
local cjson = require "cjson"
local helper = require "helper"
local redis_mod = require "support.redis"

local NODE_LIMIT = 120

local function have_client()
  return helper.exists(helper.root .. "/node_modules/socket.io-client/package.json")
end

local function start(script, redis, extra)
  local port = helper.free_port()
  local argv = { script, "--port", tostring(port), "--redis", redis.url }
  for _, a in ipairs(extra or {}) do argv[#argv + 1] = a end
  local srv = helper.spawn_lua(argv, { timeout = 200 })
  assert(srv:wait_output("listening[^\n]-(%d+)", 10), "server did not start: " .. srv:errors())
  return srv, port
end

-- The checks the Node script printed so far, its phases and its summary.
local function parse(out)
  local checks, phases, summary = {}, {}, nil
  for line in out:gmatch("[^\n]+") do
    local ok, obj = pcall(cjson.decode, line)
    if ok and type(obj) == "table" then
      if obj.check then
        if checks[obj.check] == nil or not obj.ok then checks[obj.check] = obj end
      elseif obj.phase then phases[obj.phase] = obj
      elseif obj.done then summary = obj end
    end
  end
  return checks, phases, summary
end

local function numsub(redis, topic)
  local out = redis.cli("PUBSUB", "NUMSUB", "ws:t:" .. topic)
  return tonumber(out:match("\n(%d+)$"))
end

describe("Socket.IO on the Redis bus", function()
  if not redis_mod.available then
    pending("redis-server is not installed")
    return
  end
  if not have_client() then
    it("needs node_modules/socket.io-client", function()
      assert(have_client(), "node_modules/socket.io-client is missing: run npm install")
    end)
    return
  end

  local redis, s1, s2, p1, p2
  setup(function()
    redis = redis_mod.start()
  end)
  teardown(function()
    if s1 then s1:kill() end
    if s2 then s2:kill() end
    if redis then redis.stop() end
  end)

  it("delivers every broadcast shape once to each member on either process; a process subscribes only to the rooms it holds", function()
    s1, p1 = start("spec/support/socketio_bus_server.lua", redis)
    s2, p2 = start("spec/support/socketio_bus_server.lua", redis)
    local dir = helper.tmpdir("sio-bus")
    local flag = dir .. "/flag"
    local node = helper.spawn({ "timeout", "-k", "5", tostring(NODE_LIMIT), helper.node,
      "spec/support/socketio_bus_client.js", "--port1", tostring(p1), "--port2", tostring(p2), "--flag", flag },
      { timeout = NODE_LIMIT + 10 })

    assert.truthy(helper.wait_until(function()
      local _, phases = parse(node:output())
      return phases.joined or not node:running()
    end, 60), "no joined phase: " .. node:output() .. node:errors())
    local _, phases = parse(node:output())
    assert.truthy(phases.joined, "the client ended early: " .. node:output() .. node:errors())
    local ids = phases.joined.ids
    -- node 1: a1 (r1, r2), a2 (r1); node 2: b1 (r1, r2, x), b2 (r2), c1 (/admin: r1)
    assert.are.equal(2, numsub(redis, "sio:/#r1"))
    assert.are.equal(2, numsub(redis, "sio:/#r2"))
    assert.are.equal(1, numsub(redis, "sio:/#x"))
    assert.are.equal(0, numsub(redis, "sio:/#nobody"))
    assert.are.equal(1, numsub(redis, "sio:/admin#r1"))
    assert.are.equal(2, numsub(redis, "sio-all:/"))
    assert.are.equal(1, numsub(redis, "sio-all:/admin"))
    assert.are.equal(1, numsub(redis, "sio:/#" .. ids.a2))
    assert.are.equal(1, numsub(redis, "sio:/#" .. ids.b1))
    -- nothing like "every node receives everything": no pattern subscriptions
    assert.are.equal("0", redis.cli("PUBSUB", "NUMPAT"))
    helper.write_file(flag .. ".1", "go")

    assert.truthy(helper.wait_until(function()
      local _, ph = parse(node:output())
      return ph.left or not node:running()
    end, 30), "no left phase: " .. node:output() .. node:errors())
    -- b1 left r1 and x, a1 left r2: after the linger (0.2 s) only the holders remain
    assert.truthy(helper.wait_until(function()
      return numsub(redis, "sio:/#r1") == 1 and numsub(redis, "sio:/#x") == 0 and numsub(redis, "sio:/#r2") == 1
    end, 5), ("NUMSUB r1 %s x %s r2 %s"):format(numsub(redis, "sio:/#r1"), numsub(redis, "sio:/#x"), numsub(redis, "sio:/#r2")))
    helper.write_file(flag .. ".2", "go")
    assert.truthy(node:wait(30), "the client did not end")
    local checks, _, summary = parse(node:output())
    local names = { "connect", "one-room", "one-room-from-polling-sender", "many-in-order", "multi-room",
                    "multi-room-except", "except-socket-id", "namespace", "namespace-but-sender",
                    "other-namespace", "to-socket-id", "to-socket-id-polling", "leave", "after-leave" }
    for _, name in ipairs(names) do
      local c = checks[name]
      assert.truthy(c, "missing check " .. name .. ": " .. node:output() .. node:errors())
      assert.is_true(c.ok, name .. ": " .. tostring(c.detail))
    end
    assert.truthy(summary)
    assert.are.equal(0, summary.failed)
    assert.are.equal(#names, summary.passed)
    node:kill()
    helper.rmtree(dir)
    -- the sockets are gone: after the linger, neither process holds any room
    assert.truthy(helper.wait_until(function()
      return numsub(redis, "sio:/#r1") == 0 and numsub(redis, "sio-all:/") == 0
    end, 20), ("rooms still subscribed after every client left: r1 %s, sio-all:/ %s"):format(
      numsub(redis, "sio:/#r1"), numsub(redis, "sio-all:/")))
  end)

  it("examples/socketio_chat.lua --redis: two processes, a client on each, one room: each message arrives once", function()
    local c1, q1 = start("examples/socketio_chat.lua", redis)
    local c2, q2 = start("examples/socketio_chat.lua", redis)
    local cmd = ("timeout -k 5 %d %s spec/support/socketio_bus_chat.js --port1 %d --port2 %d 2>&1"):format(
      NODE_LIMIT, helper.shell_quote(helper.node), q1, q2)
    local pipe = assert(io.popen(cmd, "r"))
    local out = pipe:read("a")
    pipe:close()
    c1:kill()
    c2:kill()
    local checks, _, summary = parse(out)
    local c = checks["two-processes-one-room"]
    assert.truthy(c, out)
    assert.is_true(c.ok, tostring(c.detail))
    assert.are.equal(0, summary.failed)
  end)
end)
