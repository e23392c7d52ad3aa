-- ws.bus_presence: who is in a topic, across nodes. Each member (a connection id and a small info
-- string the application gives, e.g. JSON with a nick) is kept in Redis (a sorted set of expiries
-- and a hash of infos per topic, see ws.bus_scripts) with a TTL that its node refreshes every
-- presence_ttl / 3, so the members of a node that crashed disappear within presence_ttl: whichever
-- node next refreshes or reads the topic purges them and announces their leave. Joins and leaves
-- travel as 'j' and 'l' envelopes on the topic's channel; every node with subscribers of the
-- topic calls server.on_presence(topic, "join" | "leave", id, info).
--
-- B is the bus state of lua/ws/bus.lua (see ws.bus_ordered).
local core = require "ws.core"
local scripts = require "ws.bus_scripts"
local ordered = require "ws.bus_ordered"
local wait = require("ws.conn").wait

local M = {}

local MAX_INFO = 64 * 1024

local function ttl_of(B)
  return B.opts.presence_ttl or 60
end

local function generation(B)
  local _, counters = core.bus_state(B.bus)
  return counters and counters.reconnects or 0
end

local function tables(B)
  if not B.tracked then
    B.tracked = {}      -- topic -> { [conn id] = info }
    B.tracked_conns = {} -- conn id -> { [topic] = true }
  end
  return B.tracked, B.tracked_conns
end

-- Sends the refresh of every member of a topic (one pipelined script call per topic, chunks of
-- 500 members), without waiting.
local function refresh_topic(B, topic, members)
  local _, send = ordered.caller(B)
  local k = ordered.topic_keys(B, topic)
  local args, n = {}, 0
  local gen = generation(B)
  local function flush()
    if n == 0 then return end
    scripts.send(send, scripts.presence_add, B.loaded, gen, k.pz, k.ph, k.channel, B.node, ttl_of(B),
      (table.unpack or unpack)(args, 1, 2 * n))
    args, n = {}, 0
  end
  for id, info in pairs(members) do
    args[2 * n + 1], args[2 * n + 2] = id, info
    n = n + 1
    if n == 500 then flush() end
  end
  flush()
end

-- Every presence_ttl / 3 while this node tracks anyone: refresh them all; members of closed
-- connections (if their close was missed) leave.
local function refresher(B)
  if B.refreshing then return end
  B.refreshing = true
  core.spawn(function()
    local tracked, by_conn = tables(B)
    while next(tracked) and not B.closed do
      wait(nil, "t", ttl_of(B) / 3)
      if B.closed then break end
      for id, topics in pairs(by_conn) do
        local conn = B.conns and B.conns[id]
        if not conn or conn.state == "closed" then
          M.on_close(B, id, topics)
        end
      end
      if core.bus_state(B.bus) == "up" then
        for topic, members in pairs(tracked) do refresh_topic(B, topic, members) end
      end
    end
    B.refreshing = false
  end)
end

local function check(conn, topic)
  if type(topic) ~= "string" or topic == "" then error("ws: topic name expected", 3) end
  if type(conn) ~= "table" and type(conn) ~= "userdata" then error("ws: connection expected", 3) end
  local id = conn.id
  if type(id) ~= "string" then error("ws: presence needs the server's bus (conn.id is not a bus id)", 3) end
  return id
end

-- conn:track(topic, info) -> true | nil, message, code. The member stays tracked on this node
-- (and is announced when the bus is back) even when Redis could not be told now.
function M.track(B, conn, topic, info)
  local id = check(conn, topic)
  info = info == nil and "" or info
  if type(info) ~= "string" then error("ws: track info must be a string", 2) end
  if #info > MAX_INFO then error("ws: track info over 64 KiB", 2) end
  if conn.state == "closed" then return nil, "closed", "closed" end
  local tracked, by_conn = tables(B)
  tracked[topic] = tracked[topic] or {}
  tracked[topic][id] = info
  by_conn[id] = by_conn[id] or {}
  by_conn[id][topic] = true
  if B.conns and not B.conns[id] then B.conns[id] = conn end
  refresher(B)
  if core.bus_state(B.bus) ~= "up" then return nil, "bus unavailable", "unavailable" end
  local k = ordered.topic_keys(B, topic)
  local r, err, code = scripts.run(ordered.caller(B), scripts.presence_add, k.pz, k.ph, k.channel, B.node,
    ttl_of(B), id, info)
  if not r then return nil, err, code end
  return true
end

local function forget(B, id, topic)
  local tracked, by_conn = tables(B)
  local members = tracked[topic]
  if not members or members[id] == nil then return false end
  members[id] = nil
  if not next(members) then tracked[topic] = nil end
  local topics = by_conn[id]
  if topics then
    topics[topic] = nil
    if not next(topics) then by_conn[id] = nil end
  end
  return true
end

-- conn:untrack(topic) -> true | nil, message, code
function M.untrack(B, conn, topic)
  local id = check(conn, topic)
  forget(B, id, topic)
  if core.bus_state(B.bus) ~= "up" then return nil, "bus unavailable", "unavailable" end
  local k = ordered.topic_keys(B, topic)
  local r, err, code = scripts.run(ordered.caller(B), scripts.presence_remove, k.pz, k.ph, k.channel, B.node, id)
  if not r then return nil, err, code end
  return true
end

-- A connection closed: it leaves every topic it was tracked in, without waiting (called from the
-- loop). topics: its set, when the caller has it.
function M.on_close(B, id, topics)
  if not B.tracked then return end
  topics = topics or B.tracked_conns[id]
  if not topics then return end
  local list = {}
  for topic in pairs(topics) do list[#list + 1] = topic end
  local up = core.bus_state(B.bus) == "up"
  local _, send = ordered.caller(B)
  local gen = generation(B)
  for _, topic in ipairs(list) do
    forget(B, id, topic)
    if up then
      local k = ordered.topic_keys(B, topic)
      scripts.send(send, scripts.presence_remove, B.loaded, gen, k.pz, k.ph, k.channel, B.node, id)
    end
  end
end

-- The bus is up again: refresh (re-add) every tracked member at once; those that other nodes
-- purged meanwhile join again.
function M.on_reconnect(B)
  if not B.tracked or core.bus_state(B.bus) ~= "up" then return end
  for topic, members in pairs(B.tracked) do refresh_topic(B, topic, members) end
end

-- server:presence(topic) -> { [id] = info, ... } | nil, message, code
function M.presence(B, topic)
  if type(topic) ~= "string" or topic == "" then error("ws: topic name expected", 2) end
  if core.bus_state(B.bus) ~= "up" then return nil, "bus unavailable", "unavailable" end
  local k = ordered.topic_keys(B, topic)
  local r, err, code = scripts.run(ordered.caller(B), scripts.presence_get, k.pz, k.ph, k.channel, B.node)
  if not r then return nil, err, code end
  local out = {}
  for i = 1, #r - 1, 2 do out[r[i]] = r[i + 1] end
  return out
end

-- The 'j' and 'l' hooks: server.on_presence(topic, "join" | "leave", id, info), in a task of its
-- own (it may wait: send to clients), in the order the events came.
function M.on_event(B, event, topic, info, id)
  local fn = B.server.on_presence
  if not fn or not topic then return end
  local q = B.presence_queue
  if q then q[#q + 1] = { topic, event, id, info } return end
  q = { { topic, event, id, info } }
  B.presence_queue = q
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
    B.presence_queue = nil
  end)
end

return M
