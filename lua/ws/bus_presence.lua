-- ws.bus_presence: who is in a topic, across nodes. Each member (a connection id and a small info
-- string the application gives, e.g. JSON with a nick) is kept in Redis (a sorted set of expiries
-- and a hash of infos per topic, see ws.bus_scripts) with a TTL that its node refreshes every
-- presence_ttl / 3, so the members of a node that crashed disappear within presence_ttl: whichever
-- node next refreshes or reads the topic purges them and announces their leave. Joins and leaves
-- travel as 'j' and 'l' envelopes on the topic's channel; every node with subscribers of the
-- topic calls server.on_presence(topic, "join" | "leave", id, info).
--
-- B is the Bus object of lua/ws/bus.lua; this module keeps its state in B._pres.
local core = require "ws.core"
local scripts = require "ws.bus_scripts"
local ordered = require "ws.bus_ordered"
local wait = require("ws.conn").wait

local cnode = core.bus_node

local M = {}

local MAX_INFO = 64 * 1024
local CHUNK = 500 -- members per refresh call

-- Per-bus state: tracked (topic -> { [id] = info }), by_conn (id -> { [topic] = true }), the
-- connections (id -> conn, to watch their close).
local function P(B)
  local p = B._pres
  if not p then
    p = { tracked = {}, by_conn = {}, conns = {}, events = nil }
    B._pres = p
  end
  return p
end

local function ttl_of(B)
  return B.config.presence_ttl
end

-- Sends the refresh of every member of a topic (pipelined script calls of CHUNK members each),
-- without waiting.
local function refresh_topic(B, topic, members)
  local k = ordered.topic_keys(B, topic)
  local node, ttl = cnode(B.c), ttl_of(B)
  local args, n = {}, 0
  local function flush()
    if n == 0 then return end
    ordered.send_script(B, scripts.presence_add, k.pz, k.ph, k.channel, node, ttl, (table.unpack or unpack)(args, 1, 2 * n))
    args, n = {}, 0
  end
  for id, info in pairs(members) do
    args[2 * n + 1], args[2 * n + 2] = id, info
    n = n + 1
    if n == CHUNK then flush() end
  end
  flush()
end

local function refresh_all(B)
  for topic, members in pairs(P(B).tracked) do refresh_topic(B, topic, members) end
end

-- Every presence_ttl / 3 while this node tracks anyone. It sleeps in steps of at most a second,
-- so that it ends soon after the server closes or the last member leaves.
local function refresher(B)
  local p = P(B)
  if p.refreshing then return end
  p.refreshing = true
  core.spawn(function()
    local due = core.now() + ttl_of(B) / 3
    while next(p.tracked) and not B.server.closing do
      local left = due - core.now()
      if left > 0 then
        wait(nil, "t", math.min(left, 1))
      else
        refresh_all(B)
        due = core.now() + ttl_of(B) / 3
      end
    end
    p.refreshing = false
  end)
end

local function forget(B, id, topic)
  local p = P(B)
  local members = p.tracked[topic]
  if not members or members[id] == nil then return false end
  members[id] = nil
  if not next(members) then p.tracked[topic] = nil end
  local topics = p.by_conn[id]
  if topics then
    topics[topic] = nil
    if not next(topics) then
      p.by_conn[id] = nil
      p.conns[id] = nil
    end
  end
  return true
end

-- A connection closed: it leaves every topic it was tracked in, without waiting.
function M.on_close(B, id)
  local p = B._pres
  local topics = p and p.by_conn[id]
  if not topics then return end
  local list = {}
  for topic in pairs(topics) do list[#list + 1] = topic end
  local node = cnode(B.c)
  for _, topic in ipairs(list) do
    forget(B, id, topic)
    if node and not B.server.closed then -- else it expires within presence_ttl
      local k = ordered.topic_keys(B, topic)
      ordered.send_script(B, scripts.presence_remove, k.pz, k.ph, k.channel, node, id)
    end
  end
end

-- A task per tracked connection waits for its close.
local function watch_close(B, conn, id)
  local p = P(B)
  if p.conns[id] then return end
  p.conns[id] = conn
  core.spawn(function()
    while conn.state ~= "closed" and p.conns[id] == conn do wait(conn, "c") end
    if p.conns[id] == conn then M.on_close(B, id) end
  end)
end

local function check(conn, topic)
  if type(topic) ~= "string" or topic == "" then error("ws: topic name expected", 4) end
  local id = conn.id
  if type(id) ~= "string" then error("ws: presence needs the server's bus to be started (conn.id)", 4) end
  return id
end

-- conn:track(topic, info) -> true | nil, message, code. The member stays tracked on this node
-- (and is added and announced as soon as Redis answers) even when Redis could not be told now.
function M.track(B, conn, topic, info)
  local id = check(conn, topic)
  if info == nil then info = "" end
  if type(info) ~= "string" then error("ws: track info must be a string", 3) end
  if #info > MAX_INFO then error("ws: track info over 64 KiB", 3) end
  if conn.state == "closed" then return nil, "closed", "closed" end
  local p = P(B)
  p.tracked[topic] = p.tracked[topic] or {}
  p.tracked[topic][id] = info
  p.by_conn[id] = p.by_conn[id] or {}
  p.by_conn[id][topic] = true
  watch_close(B, conn, id)
  refresher(B)
  local r, err, code
  if cnode(B.c) then
    local k = ordered.topic_keys(B, topic)
    r, err, code = scripts.run(ordered.S(B).call, scripts.presence_add, k.pz, k.ph, k.channel, cnode(B.c),
      ttl_of(B), id, info)
  else
    err, code = "bus unavailable", "unavailable"
  end
  if not r then
    M.on_reconnect(B) -- adds it (with the others) as soon as Redis answers, not at the next refresh
    return nil, err, code
  end
  return true
end

-- conn:untrack(topic) -> true | nil, message, code
function M.untrack(B, conn, topic)
  local id = check(conn, topic)
  forget(B, id, topic)
  if not cnode(B.c) then return nil, "bus unavailable", "unavailable" end
  local k = ordered.topic_keys(B, topic)
  local r, err, code = scripts.run(ordered.S(B).call, scripts.presence_remove, k.pz, k.ph, k.channel, cnode(B.c), id)
  if not r then return nil, err, code end
  return true
end

-- The bus is back after a loss (Redis may have restarted empty): re-add every tracked member at
-- once, from a task that waits for each reply and retries while the command connection is not
-- back yet; members that other nodes purged meanwhile join again.
function M.on_reconnect(B)
  local p = B._pres
  if not p then return end
  if p.readding then p.readd_again = true return end -- one more pass once this one is done
  p.readding = true
  core.spawn(function()
    local call = ordered.S(B).call
    for try = 1, 50 do
      p.readd_again = false
      local node = cnode(B.c)
      local ok = node ~= nil
      local topics = {} -- a snapshot: the calls below wait, tracking may change meanwhile
      for topic in pairs(p.tracked) do topics[#topics + 1] = topic end
      for _, topic in ipairs(ok and topics or {}) do
        local k = ordered.topic_keys(B, topic)
        local args, n = {}, 0
        for id, info in pairs(p.tracked[topic] or {}) do
          args[2 * n + 1], args[2 * n + 2] = id, info
          n = n + 1
        end
        for i = 1, n, CHUNK do
          local last = math.min(n, i + CHUNK - 1)
          if not scripts.run(call, scripts.presence_add, k.pz, k.ph, k.channel, node, ttl_of(B),
              (table.unpack or unpack)(args, 2 * i - 1, 2 * last)) then
            ok = false
            break
          end
        end
        if not ok then break end
      end
      if B.server.closing or (ok and not p.readd_again) then break end
      if not ok then wait(nil, "t", math.min(0.05 * try, 0.5)) end
    end
    p.readding = false
  end)
end

-- server:presence(topic) -> { [id] = info, ... } | nil, message, code
function M.presence(B, topic)
  if type(topic) ~= "string" or topic == "" then error("ws: presence: topic name expected", 3) end
  if not cnode(B.c) then return nil, "bus unavailable", "unavailable" end
  local k = ordered.topic_keys(B, topic)
  local r, err, code = scripts.run(ordered.S(B).call, scripts.presence_get, k.pz, k.ph, k.channel, cnode(B.c))
  if not r then return nil, err, code end
  local out = {}
  for i = 1, #r - 1, 2 do out[r[i]] = r[i + 1] end
  return out
end

-- The 'j' and 'l' handlers: server.on_presence(topic, "join" | "leave", id, info), from a task
-- (it may wait, e.g. to send to clients), in the order the events came.
function M.on_event(B, event, topic, info, id)
  if not topic or not id or not B.server.on_presence then return end
  local p = P(B)
  local q = p.events
  if q then q[#q + 1] = { topic, event, id, info } return end
  q = { { topic, event, id, info } }
  p.events = q
  core.spawn(function()
    local i = 1
    while q[i] do
      local e = q[i]
      q[i] = false
      local h = B.server.on_presence
      if h then
        local ok, err = pcall(h, e[1], e[2], e[3], e[4])
        if not ok then core.report("bus", "on_presence: " .. tostring(err)) end
      end
      i = i + 1
    end
    p.events = nil
  end)
end

return M
