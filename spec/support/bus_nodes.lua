-- For the multi-process bus specs: chat-like lua-ws nodes (spec/support/bus_node.lua) started on a
-- Redis, and blocking WebSocket clients that speak its one-line command protocol. Every wait is
-- bounded.
local helper = require "helper"
local wsc = require "support.ws_client"

local M = {}

local NODE = helper.root .. "/spec/support/bus_node.lua"
local RELAY = helper.root .. "/spec/support/ns_relay.lua"

-- A Lua script with the build under test, in the network namespace ns when given (ip netns exec).
local function spawn_lua(ns, args, opts)
  if not ns then return helper.spawn_lua(args, opts) end
  local argv = { "ip", "netns", "exec", ns, helper.lua }
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  local env = { LUA_CPATH = helper.cpath .. ";;", LUA_PATH = helper.lpath .. ";;" }
  env.LUA_CPATH_5_4, env.LUA_PATH_5_4 = env.LUA_CPATH, env.LUA_PATH
  opts.env = env
  return helper.spawn(argv, opts)
end
M.spawn_lua = spawn_lua

-- start(redis_url, name [, { presence_ttl =, history =, gap = "close" | "notify", netns =, dir =,
-- timeout = }])
-- With netns (a network namespace's name) the node runs in that namespace, and its clients reach
-- it from inside it too, through spec/support/ns_relay.lua run there: node.addr is the relay's
-- Unix socket, made in dir (a temporary directory of the caller).
function M.start(redis_url, name, opts)
  opts = opts or {}
  local port = helper.free_port()
  local p = spawn_lua(opts.netns, { NODE, tostring(port), redis_url, name, tostring(opts.presence_ttl or 2),
    tostring(opts.history or 1000), opts.gap or "close" }, { timeout = opts.timeout or 300 })
  assert(p:wait_output("ready %d+", 10), "node did not start: " .. p:errors())
  local node = { port = port, proc = p, name = name }
  if opts.netns then
    node.addr = assert(opts.dir, "a node in a namespace needs dir") .. "/" .. name .. ".sock"
    node.relay = spawn_lua(opts.netns, { RELAY, node.addr, tostring(port) }, { timeout = opts.timeout or 300 })
    assert(node.relay:wait_output("ready", 10), "relay did not start: " .. node.relay:errors())
  end
  function node.kill()
    if node.relay then node.relay:kill() end
    node.proc:kill()
  end
  -- Waits (bounded) until the node's bus is up.
  function node.wait_up()
    local c = M.client(node)
    local up = helper.wait_until(function() return (c.cmd("bus") or ""):match("^ok bus up") end, 10, 0.1)
    c:close()
    assert(up, name .. ": bus not up")
  end
  return node
end

-- pair({ nameA, nameB } [, { redis = redis.start's options, node = start's options }])
--   -> srv, admin, A, B: a redis-server of its own, a support.resp connection to it, and two
-- nodes on it, both buses up. stop(srv, admin, ...) undoes it (any of them may be nil).
function M.pair(names, opts)
  opts = opts or {}
  local srv = require("support.redis").start(opts.redis)
  local admin = assert(require("support.resp").connect(srv.port))
  local A = M.start(srv.url, names[1], opts.node)
  local B = M.start(srv.url, names[2], opts.node)
  A.wait_up()
  B.wait_up()
  return srv, admin, A, B
end

function M.stop(srv, admin, ...)
  if admin then admin:close() end
  for _, n in ipairs({ ... }) do if n.proc then n.proc:kill() end end
  if srv then srv.stop() end
end

-- A client of a node. c.cmd(line) sends a command and returns its reply ("ok <verb> ..." or
-- "err <verb> ..."); everything else that arrives (msg, presence, direct, gap lines) is kept in
-- order in c.events (c.at[i]: when c.events[i] was read, wsc.now()).
function M.client(node)
  local c = assert(wsc.connect(node.addr or node.port))
  c.events, c.at = {}, {}
  -- Reads what has arrived, waiting at most `timeout` (default 0) for the first message.
  function c.pump(timeout)
    local first = true
    while true do
      local kind, msg = c:receive(first and (timeout or 0) or 0)
      first = false
      if kind == "text" then c.events[#c.events + 1] = msg c.at[#c.events] = wsc.now()
      elseif kind == "close" then c.closed = msg return
      elseif kind == nil then return end
    end
  end
  function c.cmd(line, timeout)
    assert(c:send(line))
    local verb = line:match("^(%S+)")
    local ok, err = "ok " .. verb, "err " .. verb
    local deadline = wsc.now() + (timeout or 5)
    while wsc.now() < deadline do
      local kind, msg = c:message(deadline - wsc.now())
      if kind ~= "text" then return nil, kind end
      if msg:sub(1, #ok) == ok or msg:sub(1, #err) == err then return msg end
      c.events[#c.events + 1] = msg
      c.at[#c.events] = wsc.now()
    end
    return nil, "timeout"
  end
  function c.matching(pattern)
    local out = {}
    for _, e in ipairs(c.events) do if e:match(pattern) then out[#out + 1] = e end end
    return out
  end
  -- Waits until n events match pattern (bounded); returns them.
  function c.wait_events(pattern, n, timeout)
    local deadline = wsc.now() + (timeout or 5)
    while #c.matching(pattern) < n and wsc.now() < deadline and not c.closed do c.pump(0.05) end
    return c.matching(pattern)
  end
  -- The "msg <topic> <offset> <epoch> <data>" events of a topic: { offset =, epoch =, data = }.
  function c.msgs(topic)
    local out = {}
    for _, e in ipairs(c.matching("^msg " .. topic:gsub("%p", "%%%0") .. " ")) do
      local offset, epoch, data = e:match("^msg %S+ (%d+) (%w+) (.*)$")
      out[#out + 1] = { offset = tonumber(offset), epoch = epoch, data = data }
    end
    return out
  end
  return c
end

return M
