-- ws.bus_ordered: the ordered delivery class of the bus. A publish goes through Redis first (one
-- script: the topic's counter, its capped stream, then PUBLISH of an 'o' envelope); every node,
-- the publisher's included, delivers what Redis publishes, in Redis's order, with its offset.
--
-- Each node remembers the last offset (and epoch) it delivered per topic. A message that comes
-- after a gap, or the bus coming back after a loss, makes the node read what it missed from the
-- topic's stream and deliver it first, in order and once: its connections never see the gap.
-- Only when the stream no longer holds the range, or the epoch changed (Redis restarted without
-- persistence, or the topic expired), is the application told: server.on_gap(topic, conns),
-- whose default closes those connections with 1012 so that they reconnect and resynchronise.
--
-- B is the bus state lua/ws/bus.lua keeps per server: B.bus (the core bus), B.l (the listener),
-- B.server, B.node, B.prefix, B.opts (history, history_ttl, format), B.conns (id -> local conn).
local core = require "ws.core"
local scripts = require "ws.bus_scripts"
local wait = require("ws.conn").wait

local M = {}

local KIND = { text = "t", binary = "b", t = "t", b = "b" }
local KIND_NAME = { t = "text", b = "binary", text = "text", binary = "binary" }
local MAX_QUEUE = 10000 -- live messages held per topic while its gap is being filled
local FILL_TRIES = 50   -- reads of the stream before a fill gives up (the bus is down meanwhile)

local unpack = table.unpack or unpack

local function now_us()
  return string.format("%.0f", core.now() * 1e6)
end

-- An epoch for a topic that has none yet: 12 random base-36 characters after the time, so
-- that two nodes (or a restarted Redis) never pick the same one.
local function new_epoch()
  local t = {}
  local alphabet = "0123456789abcdefghijklmnopqrstuvwxyz"
  local n = math.floor(core.now() * 1000) % 2176782336 -- 36^6
  for _ = 1, 6 do
    local d = n % 36
    t[#t + 1] = alphabet:sub(d + 1, d + 1)
    n = (n - d) / 36
  end
  for _ = 1, 12 do
    local d = math.random(0, 35)
    t[#t + 1] = alphabet:sub(d + 1, d + 1)
  end
  return table.concat(t)
end
M.new_epoch = new_epoch

local function caller(B)
  if not B.call then
    B.call = function(...) return core.bus_call(B.bus, ...) end
    B.send = function(...) return core.bus_send(B.bus, ...) end
    B.loaded = {} -- script name -> the connection generation it was EVALed on
  end
  return B.call, B.send
end
M.caller = caller

local function generation(B)
  local _, counters = core.bus_state(B.bus)
  return counters and counters.reconnects or 0
end

local function topic_keys(B, topic)
  local cache = B.keys
  if not cache then cache = {} B.keys = cache end
  local k = cache[topic]
  if not k then
    k = scripts.keys(B.prefix, topic)
    cache[topic] = k
  end
  return k
end
M.topic_keys = topic_keys

-- Learns the SHA1 of every script once, in a task, so that publishes that do not wait can use
-- EVALSHA; until then they send EVAL.
local function learn_scripts(B)
  if B.learning then return end
  B.learning = true
  local call = caller(B)
  core.spawn(function()
    for _, s in ipairs(scripts.all) do
      if not s.sha and not scripts.load(call, s) then break end
    end
    B.learning = false
  end)
end

-- publish(B, topic, data, kind, except_conn, wait) -> true (queued to Redis) | offset, epoch (wait)
-- | nil, "bus unavailable", "unavailable" | nil, message, code (wait: Redis's answer)
function M.publish(B, topic, data, kind, except_conn, wait)
  if core.bus_state(B.bus) ~= "up" then return nil, "bus unavailable", "unavailable" end
  local call, send = caller(B)
  local k = topic_keys(B, topic)
  local opts = B.opts
  local except_id = except_conn and except_conn.id or ""
  local letter = KIND[kind or "text"]
  if not letter then error('ws: publish kind must be "text" or "binary"', 3) end
  if wait then
    local r, err, code = scripts.run(call, scripts.publish, k.stream, k.meta, k.channel, opts.history or 100,
      opts.history_ttl or 86400, new_epoch(), letter, B.node, except_id, now_us(), data)
    if not r then return nil, err, code end
    return r[1], r[2]
  end
  if not scripts.publish.sha then learn_scripts(B) end
  local ok, err, code = scripts.send(send, scripts.publish, B.loaded, generation(B), k.stream, k.meta, k.channel,
    opts.history or 100, opts.history_ttl or 86400, new_epoch(), letter, B.node, except_id, now_us(), data)
  if not ok then return nil, err, code end
  return true
end

-- The local connections subscribed to topic.
local function subscribers(B, topic)
  local list = {}
  if core.topic_conns then return core.topic_conns(B.l, topic) end
  for _, conn in pairs(B.conns or {}) do
    if conn.state == "open" then
      for _, t in ipairs(conn:topics()) do
        if t == topic then list[#list + 1] = conn break end
      end
    end
  end
  return list
end
M.subscribers = subscribers

-- The default on_gap: close the connections that missed messages, with 1012 (service restart),
-- so they come back and resynchronise (history, or their own resume).
local function default_on_gap(_, _, conns)
  for _, conn in ipairs(conns) do
    core.close(conn, 1012, "missed messages")
  end
end

local function report_gap(B, topic, why)
  B.gaps = (B.gaps or 0) + 1
  local conns = subscribers(B, topic)
  local fn = B.server.on_gap
  if fn then
    local ok, err = pcall(fn, topic, conns, why)
    if not ok then core.report("bus", "on_gap: " .. tostring(err)) end
  else
    default_on_gap(topic, why, conns)
  end
end

local function state_of(B, topic)
  local topics = B.ordered
  if not topics then topics = {} B.ordered = topics end
  local T = topics[topic]
  if not T then
    T = {}
    topics[topic] = T
  end
  return T
end

-- One message to this node's subscribers (its own publisher excluded), formatted once.
local function deliver_now(B, topic, data, kind, node, id, offset, epoch)
  local T = state_of(B, topic)
  T.last, T.epoch = offset, epoch
  local name = KIND_NAME[kind] or "text"
  local payload = data
  local format = B.opts.format
  if format then
    local ok, out = pcall(format, topic, data, offset, epoch, name)
    if ok and type(out) == "string" then
      payload = out
    else
      core.report("bus", "format: " .. (ok and "string expected, got " .. type(out) or tostring(out)))
    end
  end
  local except
  if id and id ~= "" and node == B.node and B.conns then except = B.conns[id] end
  B.delivered = (B.delivered or 0) + 1
  return core.publish_local(B.l, topic, payload, name, except)
end

local fill -- below

-- The 'o' hook: a message of an ordered topic from Redis (own or another node's).
function M.on_message(B, topic, data, kind, node, id, offset, epoch)
  offset = tonumber(offset)
  if not offset then return end
  local T = state_of(B, topic)
  if T.queue then -- a fill is running: after it
    if #T.queue >= MAX_QUEUE then
      T.overflow = true
    else
      T.queue[#T.queue + 1] = { data, kind, node, id, offset, epoch }
    end
    return
  end
  if T.last == nil then -- the first message since this node subscribed
    return deliver_now(B, topic, data, kind, node, id, offset, epoch)
  end
  if epoch ~= T.epoch then
    -- A new epoch: what followed our last offset in the old one is gone. Messages of the new
    -- epoch before this one are still in its stream: fill them from 0.
    report_gap(B, topic, "epoch")
    T.last, T.epoch = 0, epoch
  end
  if offset <= T.last then
    B.duplicates = (B.duplicates or 0) + 1
    return
  end
  if offset == T.last + 1 then
    return deliver_now(B, topic, data, kind, node, id, offset, epoch)
  end
  T.queue = { { data, kind, node, id, offset, epoch } }
  fill(B, topic, T)
end

local function flush_queue(B, topic, T)
  local q = T.queue
  T.queue, T.overflow = nil, nil
  for i = 1, #q do
    local m = q[i]
    if T.queue then -- a new gap started a new fill: the rest waits for it
      T.queue[#T.queue + 1] = m
    else
      M.on_message(B, topic, unpack(m, 1, 6))
    end
  end
end

-- Reads (since T.last) what the stream holds and delivers it, then the queued live messages.
-- Runs in a task; the bus may be down: it retries, and gives up (a gap) after FILL_TRIES.
function fill(B, topic, T)
  B.fills = (B.fills or 0) + 1
  core.spawn(function()
    local call = caller(B)
    local k = topic_keys(B, topic)
    local r, err
    for try = 1, FILL_TRIES do
      if core.bus_state(B.bus) == "up" then
        r, err = scripts.run(call, scripts.history, k.stream, k.meta, 0, T.last or 0, "", B.opts.history_ttl or 86400, T.epoch or "")
        if r then break end
      end
      if B.closed then return end
      wait(nil, "t", math.min(0.05 * try, 0.5))
    end
    if not r then
      core.report("bus", "could not read the stream of " .. topic .. ": " .. tostring(err))
      report_gap(B, topic, "unavailable")
      T.last = nil
    else
      local top, epoch, status, entries = r[1], r[2], r[3], r[4]
      if status == "epoch" or status == "ahead" then
        report_gap(B, topic, "epoch")
        T.last, T.epoch = 0, epoch
        local r2 = scripts.run(call, scripts.history, k.stream, k.meta, 0, 0, "", B.opts.history_ttl or 86400, epoch)
        entries = r2 and r2[4] or {}
        if r2 and r2[3] == "trimmed" then report_gap(B, topic, "trimmed") end
      elseif status == "trimmed" then
        report_gap(B, topic, "trimmed")
      end
      for _, e in ipairs(entries) do
        local x = scripts.entry(e)
        if T.last == nil or x.offset > T.last then
          deliver_now(B, topic, x.data, x.kind, x.node, x.id or "", x.offset, epoch)
          B.filled = (B.filled or 0) + 1
        end
      end
      if T.last == nil or T.last < top then T.last = top end -- nothing more to wait for
      T.epoch = epoch
    end
    if T.overflow then
      report_gap(B, topic, "overflow")
      T.last = nil
    end
    if T.queue then flush_queue(B, topic, T) end
  end)
end

-- The bus is up again after a loss: every topic this node delivered may have missed its tail.
function M.on_reconnect(B)
  for topic, T in pairs(B.ordered or {}) do
    if T.last and not T.queue then
      T.queue = {}
      fill(B, topic, T)
    end
  end
end

-- This node no longer subscribes to topic: what it remembers would make the next subscription
-- look like a gap.
function M.forget(B, topic)
  local T = B.ordered and B.ordered[topic]
  if T and not T.queue then B.ordered[topic] = nil end
end

-- server:history(topic [, { limit = N, since = offset, epoch = e }]) -> list, top | nil, message, code
-- list: { { offset =, data =, kind = }, ... } oldest first; top: { offset =, epoch = [, gone = why] }
-- (gone: "trimmed" when the stream no longer holds since + 1, "epoch" when `epoch` is not the
-- topic's, "ahead" when since is past the top).
function M.history(B, topic, opts)
  opts = opts or {}
  local limit, since = opts.limit, opts.since
  if limit ~= nil and (type(limit) ~= "number" or limit < 0 or limit % 1 ~= 0) then
    error("ws: history limit must be a whole number >= 0", 3)
  end
  if since ~= nil and (type(since) ~= "number" or since < 0 or since % 1 ~= 0) then
    error("ws: history since must be an offset (a whole number >= 0)", 3)
  end
  if opts.epoch ~= nil and type(opts.epoch) ~= "string" then error("ws: history epoch must be a string", 3) end
  if core.bus_state(B.bus) ~= "up" then return nil, "bus unavailable", "unavailable" end
  local k = topic_keys(B, topic)
  local r, err, code = scripts.run(caller(B), scripts.history, k.stream, k.meta,
    limit or (since and 0 or B.opts.history or 100), since and string.format("%d", since) or "",
    new_epoch(), B.opts.history_ttl or 86400, opts.epoch or "")
  if not r then return nil, err, code end
  local list = {}
  for i, e in ipairs(r[4]) do
    local x = scripts.entry(e)
    list[i] = { offset = x.offset, data = x.data, kind = x.kind }
  end
  local top = { offset = r[1], epoch = r[2] }
  if r[3] ~= "" then top.gone = r[3] end
  return list, top
end

return M
