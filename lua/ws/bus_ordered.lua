-- ws.bus_ordered: the ordered delivery class of the bus. A publish goes through Redis first (one
-- script: the topic's counter, its capped stream, then PUBLISH of an 'o' envelope); every node,
-- the publisher's included, delivers what Redis publishes, in Redis's order, with its offset.
--
-- Each node remembers the last offset (and epoch) it delivered per topic. A message that comes
-- after a gap, or the bus coming back after a loss, makes the node read what it missed from the
-- topic's stream and deliver it first, in order and once: its connections never see the gap.
-- Only when the stream no longer holds the range, or the epoch changed (Redis restarted without
-- persistence, or the topic expired), is the application told: server.on_gap(topic, conns, why),
-- whose default closes those connections with 1012 so that they reconnect and resynchronise.
--
-- B is the Bus object of lua/ws/bus.lua (B.c the core bus, B.server, B.config the checked
-- options: prefix, history, history_ttl, format); this module keeps its state in B._ord.
local core = require "ws.core"
local scripts = require "ws.bus_scripts"
local wait = require("ws.conn").wait

local M = {}

local KIND = { text = "t", binary = "b" }
local MAX_QUEUE = 10000  -- live messages held per topic while its gap is being filled
local FILL_TRIES = 50    -- reads of the stream before a fill gives up (the bus is down meanwhile)
local MAX_KEYS = 10000   -- key names cached

local unpack = table.unpack or unpack
local cstate, cnode, cpublish_local = core.bus_state, core.bus_node, core.publish_local

-- Per-bus state: topics (name -> { last, epoch, queue }), cached key names, the scripts EVALed
-- on the current connection, local connections by id (weak).
local function S(B)
  local s = B._ord
  if not s then
    s = {
      topics = {}, keys = {}, nkeys = 0, loaded = {},
      conns = setmetatable({}, { __mode = "v" }),
      call = function(...) return B:call(...) end,
      send = function(...) return B:send(...) end,
      delivered = 0, duplicates = 0, fills = 0, filled = 0, gaps = 0,
    }
    B._ord = s
  end
  return s
end
M.S = S

-- The epoch a topic gets when it has none: "" lets the script take Redis's clock (seconds and
-- microseconds, 16 digits), which a restarted Redis has moved past.
local function new_epoch() return "" end
M.new_epoch = new_epoch

local function generation(B)
  local _, counters = cstate(B.c)
  return counters and counters.reconnects or 0
end
M.generation = generation

local function topic_keys(B, topic)
  local s = S(B)
  local k = s.keys[topic]
  if not k then
    if s.nkeys >= MAX_KEYS then s.keys, s.nkeys = {}, 0 end
    k = scripts.keys(B.config.prefix, topic)
    s.keys[topic] = k
    s.nkeys = s.nkeys + 1
  end
  return k
end
M.topic_keys = topic_keys

-- Learns the SHA1 of every script once, in a task, so that what does not wait can use EVALSHA;
-- until then it sends EVAL.
local function learn_scripts(B)
  local s = S(B)
  if s.learning then return end
  s.learning = true
  core.spawn(function()
    for _, sc in ipairs(scripts.all) do
      if not sc.sha and not scripts.load(s.call, sc) then break end
    end
    s.learning = false
  end)
end
M.learn_scripts = learn_scripts

-- Runs a script without waiting (pipelined on the command connection).
function M.send_script(B, sc, ...)
  local s = S(B)
  if not sc.sha then learn_scripts(B) end
  return scripts.send(s.send, sc, s.loaded, generation(B), ...)
end

-- publish(B, conn, topic, data, kind, opts) for server:publish (conn nil) and conn:publish.
-- -> true (queued to Redis) | offset, epoch (opts.wait) | nil, "bus unavailable", "unavailable"
-- | nil, message, code (opts.wait: Redis's answer, or the bus went down meanwhile)
function M.publish(B, conn, topic, data, kind, opts)
  if type(data) ~= "string" then error("ws: publish data must be a string", 3) end
  local letter = KIND[kind or "text"]
  if not letter then error('ws: publish kind must be "text" or "binary"', 3) end
  -- No check of the bus's state: the command connection alone decides (a publish is refused,
  -- "bus unavailable", only when it is down; while only the subscriber connection is down the
  -- publish is accepted and this node fills what it missed once it is back).
  local s = S(B)
  local node = cnode(B.c)
  if not node then return nil, "bus unavailable", "unavailable" end
  local k = topic_keys(B, topic)
  local cfg = B.config
  local except_id = ""
  if conn then
    if conn.state == "closed" then return nil, "closed", "closed" end
    except_id = conn.id
    s.conns[except_id] = conn -- its own message comes back through Redis: found here
  end
  if opts and opts.wait then
    local r, err, code = scripts.run(s.call, scripts.publish, k.stream, k.meta, k.channel, cfg.history,
      cfg.history_ttl, new_epoch(), letter, node, except_id, "", data)
    if not r then return nil, err, code end
    return r[1], r[2]
  end
  local ok, err, code = M.send_script(B, scripts.publish, k.stream, k.meta, k.channel, cfg.history,
    cfg.history_ttl, new_epoch(), letter, node, except_id, "", data)
  if not ok then return nil, err, code end
  return true
end

-- The local connections subscribed to topic.
local function subscribers(B, topic)
  if core.topic_conns then return core.topic_conns(B.server._l, topic) end
  local list = {}
  for _, conn in pairs(S(B).conns) do
    if conn.state == "open" then
      for _, t in ipairs(conn:topics()) do
        if t == topic then list[#list + 1] = conn break end
      end
    end
  end
  return list
end
M.subscribers = subscribers

-- The default on_gap: close the connections that missed messages with 1012 (service restart),
-- so that they come back and resynchronise (history, or their own resume).
local function default_on_gap(conns)
  for _, conn in ipairs(conns) do core.close(conn, 1012, "missed messages") end
end

-- server.on_gap(topic, conns, why) runs in a task of its own (it may wait, e.g. to send to the
-- connections); why: "trimmed" | "epoch" | "unavailable" | "overflow".
local function report_gap(B, topic, why)
  local s = S(B)
  s.gaps = s.gaps + 1
  local conns = subscribers(B, topic)
  local fn = B.server.on_gap
  if fn then
    core.spawn(function()
      local ok, err = pcall(fn, topic, conns, why)
      if not ok then core.report("bus", "on_gap: " .. tostring(err)) end
    end)
  else
    default_on_gap(conns)
  end
end

local function topic_state(B, topic)
  local topics = S(B).topics
  local T = topics[topic]
  if not T then
    T = {}
    topics[topic] = T
  end
  return T
end

local function formatted(B, topic, data, offset, epoch, kind)
  local format = B.config.format
  if not format then return data end
  local ok, out = pcall(format, topic, data, offset, epoch, kind)
  if ok and type(out) == "string" then return out end
  core.report("bus", "format: " .. (ok and "string expected, got " .. type(out) or tostring(out)))
  return data
end

-- The last RING messages delivered per topic, kept once a connection resumed on the topic (see
-- M.resume): offset -> payload, kind, in slots offset % RING.
local RING = 128

-- One message to this node's subscribers (its own publisher excluded), formatted once.
local function deliver_now(B, T, topic, data, kind, node, id, offset, epoch)
  local s = S(B)
  T.last, T.epoch, T.at = offset, epoch, core.now()
  local payload = formatted(B, topic, data, offset, epoch, kind)
  local ring = T.ring
  if ring then
    local i = offset % RING
    ring.o[i], ring.p[i], ring.k[i] = offset, payload, kind
  end
  local except
  if id and node == cnode(B.c) then except = s.conns[id] end
  s.delivered = s.delivered + 1
  return cpublish_local(B.server._l, topic, payload, kind, except)
end

local fill -- below

-- The 'o' handler: a message of an ordered topic from Redis (this node's or another's).
function M.on_message(B, topic, data, kind, node, id, offset, epoch)
  offset = tonumber(offset)
  if not topic or not offset or not epoch then return end
  local T = topic_state(B, topic)
  if T.queue then -- a fill is running: after it
    if #T.queue >= MAX_QUEUE then
      T.overflow = true
    else
      T.queue[#T.queue + 1] = { data, kind, node, id, offset, epoch }
    end
    return
  end
  if T.last == nil then -- the first message since this node subscribed
    return deliver_now(B, T, topic, data, kind, node, id, offset, epoch)
  end
  if epoch ~= T.epoch then
    -- A new epoch: what followed our last offset in the old one is lost, unless the topic simply
    -- expired: nothing published for history_ttl since our last message, and our subscription
    -- never dropped meanwhile (then we saw everything). The messages of the new epoch before
    -- this one are in its stream: fill them from 0.
    local s = S(B)
    local ttl = B.config.history_ttl
    local idle = ttl > 0 and T.at and core.now() - T.at >= ttl - math.min(1, ttl / 10)
    if not (idle and (s.reconnected_at or -1) < T.at) then report_gap(B, topic, "epoch") end
    T.last, T.epoch = 0, epoch
  end
  if offset <= T.last then
    S(B).duplicates = S(B).duplicates + 1
    return
  end
  if offset == T.last + 1 then
    return deliver_now(B, T, topic, data, kind, node, id, offset, epoch)
  end
  T.queue = { { data, kind, node, id, offset, epoch } }
  fill(B, topic, T)
end

local function flush_queue(B, topic, T)
  local q = T.queue
  T.queue, T.overflow = nil, nil
  for i = 1, #q do
    if T.queue then -- a new gap started a new fill: the rest waits for it
      T.queue[#T.queue + 1] = q[i]
    else
      M.on_message(B, topic, unpack(q[i], 1, 6))
    end
  end
end

-- Reads from the stream what follows T.last and delivers it, then the queued live messages. Runs
-- in a task; while the bus is down it retries, and gives up (a gap) after FILL_TRIES.
function fill(B, topic, T)
  local s = S(B)
  s.fills = s.fills + 1
  core.spawn(function()
    local k = topic_keys(B, topic)
    local ttl = B.config.history_ttl
    local r, err
    for try = 1, FILL_TRIES do
      r, err = scripts.run(s.call, scripts.history, k.stream, k.meta, 0, string.format("%d", T.last or 0), "", ttl, T.epoch or "")
      if r then break end
      if B.server.closing then return end
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
        local r2 = scripts.run(s.call, scripts.history, k.stream, k.meta, 0, "0", "", ttl, epoch)
        entries = r2 and r2[4] or {}
        if r2 and r2[3] == "trimmed" then report_gap(B, topic, "trimmed") end
      elseif status == "trimmed" then
        report_gap(B, topic, "trimmed")
      end
      for _, e in ipairs(entries) do
        local x = scripts.entry(e)
        if T.last == nil or x.offset > T.last then
          deliver_now(B, T, topic, x.data, x.kind, x.node, x.id, x.offset, epoch)
          s.filled = s.filled + 1
        end
      end
      if T.last == nil or T.last < top then T.last = top end -- the stream's top: nothing before it is missing now
      T.epoch = epoch
    end
    if T.overflow then
      report_gap(B, topic, "overflow")
      T.last = nil
    end
    flush_queue(B, topic, T)
    if T.forgotten and not T.queue then
      T.forgotten = nil
      if s.topics[topic] == T then s.topics[topic] = nil end
    end
  end)
end

-- The bus is up again after a loss: every topic this node delivered may have missed its tail.
function M.on_reconnect(B)
  S(B).reconnected_at = core.now()
  for topic, T in pairs(S(B).topics) do
    if T.last and not T.queue then
      T.queue = {}
      fill(B, topic, T)
    end
  end
end

-- Redis confirmed this node's subscription to topic: if a resumed connection seeded the topic's
-- position (it was not received here yet), read what was published between that and now.
function M.on_subscribed(B, topic)
  local T = S(B).topics[topic]
  if T and T.seeded then
    T.seeded = nil
    if T.last and not T.queue then
      T.queue = {}
      fill(B, topic, T)
    end
  end
end

-- This node no longer subscribes to topic: what it remembers would make the next subscription
-- look like a gap.
function M.forget(B, topic)
  local topics = S(B).topics
  local T = topics[topic]
  if not T then return end
  if T.queue then T.forgotten = true else topics[topic] = nil end -- after its fill
end

-- conn:subscribe(topic, { since = offset, epoch = epoch }) on an ordered topic: the connection
-- gets every message after `since` (read from the topic's stream, formatted as live ones are),
-- then the live ones, with no gap and no duplicate, whichever node it was on before. The switch
-- from the replay to the live subscription happens within one loop step: it is taken when this
-- node has delivered exactly up to the last message replayed (the missing few come from the
-- node's ring of recent messages). When the node does not receive the topic yet, its position is
-- seeded with the replay's end, so that what Redis publishes meanwhile is filled as a gap.
-- -> true, replayed | false (it was subscribed already) | nil, message, "gone" (the stream no longer holds since + 1, or the epoch is
-- not the topic's: the connection is not subscribed; the application resynchronises it) |
-- nil, message, code
local RESUME_TRIES = 100

local function send_replay(conn, payload, kind)
  local ok, err, code = core.send(conn, payload, kind)
  if ok == nil then return nil, err, code end
  return true
end

function M.resume(B, conn, topic, since, epoch)
  for _, t in ipairs(conn:topics()) do
    if t == topic then return false end -- as conn:subscribe: it already was (a replay would repeat)
  end
  local s = S(B)
  local k = topic_keys(B, topic)
  local cur, replayed = since, 0
  local ttl = B.config.history_ttl
  local behind = 0
  for _ = 1, RESUME_TRIES do
    if conn.state ~= "open" then return nil, "closed", "closed" end
    local r, err, code = scripts.run(s.call, scripts.history, k.stream, k.meta, 0, string.format("%d", cur), new_epoch(), ttl, epoch or "")
    if not r then return nil, err, code end
    local repoch, status, entries = r[2], r[3], r[4]
    if status == "trimmed" then return nil, "history no longer holds offset " .. string.format("%d", cur + 1), "gone" end
    if status == "epoch" then return nil, "epoch changed", "gone" end
    if status == "ahead" then return nil, "offset past the topic's last one", "gone" end
    epoch = repoch
    for _, e in ipairs(entries) do
      local x = scripts.entry(e)
      if x.offset > cur then
        local ok, serr, scode = send_replay(conn, formatted(B, topic, x.data, x.offset, epoch, x.kind), x.kind)
        if not ok then return nil, serr, scode end
        cur, replayed = x.offset, replayed + 1
      end
    end
    -- From here to the subscribe: no waiting.
    local T = s.topics[topic]
    if not T or T.last == nil then
      -- This node does not deliver the topic yet: it starts where the replay ended.
      T = T or {}
      s.topics[topic] = T
      T.last, T.epoch, T.at = cur, epoch, core.now()
      T.ring = T.ring or { o = {}, p = {}, k = {} }
      T.seeded = true -- until Redis confirms the subscription ('s'): then what came meanwhile is read
      conn:subscribe(topic)
      return true, replayed
    end
    T.ring = T.ring or { o = {}, p = {}, k = {} }
    if not T.queue and T.epoch == epoch and T.last >= cur then
      local ring, ok = T.ring, true
      for o = cur + 1, T.last do
        if ring.o[o % RING] ~= o then ok = false break end
      end
      if ok then
        for o = cur + 1, T.last do
          local i = o % RING
          local sent, serr, scode = send_replay(conn, ring.p[i], ring.k[i])
          if not sent then return nil, serr, scode end
          replayed = replayed + 1
        end
        conn:subscribe(topic)
        return true, replayed
      end
      -- the node is ahead of what its ring holds: read again from cur
    elseif not T.queue and T.epoch == epoch and T.last < cur then
      -- messages on their way to this node: wait for them; if they do not come, fill
      behind = behind + 1
      if behind == 20 then
        T.queue = {}
        fill(B, topic, T)
      end
      wait(nil, "t", 0.005)
    else
      wait(nil, "t", 0.01) -- a fill is running, or the node has not seen the new epoch yet
    end
  end
  return nil, "could not catch up with the topic", "timeout"
end

-- server:history(topic [, { limit = N, since = offset, epoch = e }]) -> list, top | nil, message, code
-- list: { { offset =, data =, kind = }, ... } oldest first; top: { offset =, epoch = [, gone = why] }
-- gone: "trimmed" when the stream no longer holds since + 1, "epoch" when `epoch` is not the
-- topic's, "ahead" when since is past the top.
function M.history(B, topic, opts)
  if type(topic) ~= "string" or topic == "" then error("ws: history: topic name expected", 3) end
  opts = opts or {}
  if type(opts) ~= "table" then error("ws: history: options table expected", 3) end
  local limit, since = opts.limit, opts.since
  if limit ~= nil and (type(limit) ~= "number" or limit < 0 or limit % 1 ~= 0) then
    error("ws: history limit must be a whole number >= 0", 3)
  end
  if since ~= nil and (type(since) ~= "number" or since < 0 or since % 1 ~= 0) then
    error("ws: history since must be an offset (a whole number >= 0)", 3)
  end
  if opts.epoch ~= nil and type(opts.epoch) ~= "string" then error("ws: history epoch must be a string", 3) end
  if not cnode(B.c) then return nil, "bus unavailable", "unavailable" end
  local k = topic_keys(B, topic)
  local r, err, code = scripts.run(S(B).call, scripts.history, k.stream, k.meta,
    limit or (since and 0 or B.config.history), since and string.format("%d", since) or "",
    new_epoch(), B.config.history_ttl, opts.epoch or "")
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

-- Counters of this class on this node (merged into server:bus()'s).
function M.counters(B, into)
  local s = B._ord
  if not s then return into end
  into.delivered, into.duplicates, into.fills, into.filled, into.gaps = s.delivered, s.duplicates, s.fills, s.filled, s.gaps
  return into
end

return M
