-- ws.bus_scripts: the Lua scripts the bus runs inside Redis (ordered publish, history, presence) and
-- how to call them: EVALSHA with a fallback to EVAL when Redis does not know the script (first use,
-- a restarted Redis, SCRIPT FLUSH). Redis runs a script atomically, which is what gives an ordered
-- topic one order and gapless offsets whichever node publishes.
--
-- Keys and channels (prefix = the bus's `prefix` option, default "ws:"):
--   <prefix>s:<topic>   stream of an ordered topic: entry id "<offset>-0", fields
--                       k (t|b), n (origin node), i (excluded connection id or ""), t (time_us), d (data)
--   <prefix>m:<topic>   its meta hash: e = epoch, s = top offset
--   <prefix>pz:<topic>  presence: sorted set, member id -> expiry (Redis time, ms)
--   <prefix>ph:<topic>  presence: hash, member id -> info
--   <prefix>t:<topic>   the topic's channel; the scripts PUBLISH 'o', 'j' and 'l' envelopes on it:
--   "\31ws1|<type>|<kind>|<node>|<id>|<offset>|<epoch>|<time_us>\n" .. data
-- Redis 7.0 has no HEXPIRE: a member's expiry is its score; every presence script purges the
-- expired members first and announces each purged one with an 'l' envelope, exactly once.
local M = {}

-- Shared by the presence scripts: Redis's clock (ms, and µs as a string for the envelopes), the
-- envelope, and the purge of expired members. unpack is done in chunks: Lua 5.1's C stack is
-- limited to a few thousand values.
local PRESENCE_LIB = [[
local function clock()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000), t[1] .. string.format('%06d', tonumber(t[2]))
end
local function envelope(etype, node, id, time_us, data)
  return '\31ws1|' .. etype .. '|t|' .. node .. '|' .. id .. '||' .. '|' .. time_us .. '\n' .. data
end
local function chunks(list, fn)
  for i = 1, #list, 1000 do
    fn(unpack(list, i, math.min(i + 999, #list)))
  end
end
local function purge(pz, ph, channel, node, now, time_us)
  local gone = redis.call('ZRANGEBYSCORE', pz, '-inf', string.format('%.0f', now))
  if #gone == 0 then return gone end
  local infos = {}
  chunks(gone, function(...)
    local part = redis.call('HMGET', ph, ...)
    for i = 1, #part do infos[#infos + 1] = part[i] end
  end)
  redis.call('ZREMRANGEBYSCORE', pz, '-inf', string.format('%.0f', now))
  chunks(gone, function(...) redis.call('HDEL', ph, ...) end)
  for i = 1, #gone do
    redis.call('PUBLISH', channel, envelope('l', node, gone[i], time_us, infos[i] or ''))
  end
  return gone
end
]]

local function script(name, nkeys, src)
  return { name = name, nkeys = nkeys, src = src }
end

-- KEYS: stream, meta. ARGV: channel, history size, ttl (s, 0 = none), epoch to use when the topic
-- has none (may be ""), kind (t|b), node, excluded id, time_us ("": Redis's clock), data.
-- -> { offset, epoch }
-- A missing meta hash starts a new epoch (and drops any stream left from the previous one), so
-- offsets restart at 1 only under a new epoch.
M.publish = script("publish", 2, [[
local stream, meta = KEYS[1], KEYS[2]
local channel, size, ttl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local kind, node, id, time_us, data = ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9]
if time_us == '' then
  local t = redis.call('TIME')
  time_us = t[1] .. string.format('%06d', tonumber(t[2]))
end
local epoch = redis.call('HGET', meta, 'e')
if not epoch then
  epoch = ARGV[4]
  if epoch == '' then
    local t = redis.call('TIME')
    epoch = t[1] .. string.format('%06d', tonumber(t[2]))
  end
  redis.call('DEL', stream)
  redis.call('HSET', meta, 'e', epoch)
end
local offset = redis.call('HINCRBY', meta, 's', 1)
redis.call('XADD', stream, 'MAXLEN', size, offset .. '-0', 'k', kind, 'n', node, 'i', id, 't', time_us, 'd', data)
if ttl > 0 then
  redis.call('EXPIRE', stream, ttl)
  redis.call('EXPIRE', meta, ttl)
end
redis.call('PUBLISH', channel, '\31ws1|o|' .. kind .. '|' .. node .. '|' .. id .. '|' .. offset .. '|' .. epoch .. '|' .. time_us .. '\n' .. data)
return { offset, epoch }
]])

-- KEYS: stream, meta. ARGV: limit (0 = no limit), since ("" = the last `limit` entries; else the
-- last offset the caller has: entries after it), epoch to create when the topic has none, ttl,
-- the caller's epoch ("" = any). -> { top offset, epoch, status, entries }
-- status: "" | "trimmed" (the stream no longer holds since + 1) | "epoch" (the caller's epoch is not
-- the topic's) | "ahead" (since is past the top). entries: XRANGE's reply, oldest first.
-- A topic without meta gets its epoch here (top 0), so a reader's position stays valid for the
-- first publish.
M.history = script("history", 2, [[
local stream, meta = KEYS[1], KEYS[2]
local limit, since, ttl, theirs = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[4]), ARGV[5]
local m = redis.call('HMGET', meta, 'e', 's')
local epoch, top = m[1], tonumber(m[2]) or 0
if not epoch then
  epoch = ARGV[3]
  if epoch == '' then
    local t = redis.call('TIME')
    epoch = t[1] .. string.format('%06d', tonumber(t[2]))
  end
  redis.call('DEL', stream)
  redis.call('HSET', meta, 'e', epoch, 's', 0)
  if ttl > 0 then redis.call('EXPIRE', meta, ttl) end
  top = 0
end
local entries, status = {}, ''
if since == '' then
  if limit > 0 then
    local rev = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', limit)
    for i = #rev, 1, -1 do entries[#entries + 1] = rev[i] end
  else
    entries = redis.call('XRANGE', stream, '-', '+')
  end
else
  since = tonumber(since)
  if theirs ~= '' and theirs ~= epoch then
    status = 'epoch'
  elseif since > top then
    status = 'ahead'
  elseif since < top then
    if limit > 0 then
      entries = redis.call('XRANGE', stream, (since + 1) .. '-0', '+', 'COUNT', limit)
    else
      entries = redis.call('XRANGE', stream, (since + 1) .. '-0', '+')
    end
    if #entries == 0 or entries[1][1] ~= (since + 1) .. '-0' then status = 'trimmed' end
  end
end
return { top, epoch, status, entries }
]])

-- KEYS: pz, ph. ARGV: channel, node, ttl (s), then id, info pairs. Purges the expired members,
-- adds or refreshes the given ones (expiry = now + ttl), announces each new one with a 'j'
-- envelope (data = info), keeps both keys alive for ttl. -> { joined count, purged ids... }
M.presence_add = script("presence_add", 2, PRESENCE_LIB .. [[
local pz, ph = KEYS[1], KEYS[2]
local channel, node, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])
local now, time_us = clock()
local gone = purge(pz, ph, channel, node, now, time_us)
local expiry = string.format('%.0f', now + ttl * 1000)
local joined = 0
for i = 4, #ARGV - 1, 2 do
  local id, info = ARGV[i], ARGV[i + 1]
  if redis.call('ZADD', pz, expiry, id) == 1 then
    joined = joined + 1
    redis.call('HSET', ph, id, info)
    redis.call('PUBLISH', channel, envelope('j', node, id, time_us, info))
  else
    redis.call('HSET', ph, id, info)
  end
end
for _, key in ipairs({ pz, ph }) do
  if redis.call('PTTL', key) < ttl * 1000 then redis.call('PEXPIRE', key, ttl * 1000) end
end
local out = { joined }
for i = 1, #gone do out[i + 1] = gone[i] end
return out
]])

-- KEYS: pz, ph. ARGV: channel, node, then ids. Removes them; each one that was there is
-- announced with an 'l' envelope (data = its info). -> count removed
M.presence_remove = script("presence_remove", 2, PRESENCE_LIB .. [[
local pz, ph = KEYS[1], KEYS[2]
local channel, node = ARGV[1], ARGV[2]
local _, time_us = clock()
local removed = 0
for i = 3, #ARGV do
  local id = ARGV[i]
  local info = redis.call('HGET', ph, id)
  if redis.call('ZREM', pz, id) == 1 then
    removed = removed + 1
    redis.call('PUBLISH', channel, envelope('l', node, id, time_us, info or ''))
  end
  redis.call('HDEL', ph, id)
end
return removed
]])

-- KEYS: pz, ph. ARGV: channel, node. Purges the expired members (announced), then
-- -> { id, info, id, info, ... }
M.presence_get = script("presence_get", 2, PRESENCE_LIB .. [[
local pz, ph = KEYS[1], KEYS[2]
local now, time_us = clock()
purge(pz, ph, ARGV[1], ARGV[2], now, time_us)
local ids = redis.call('ZRANGE', pz, 0, -1)
local out = {}
chunks(ids, function(...)
  local infos = redis.call('HMGET', ph, ...)
  local base = #out
  for i = 1, select('#', ...) do
    out[base + 2 * i - 1] = (select(i, ...))
    out[base + 2 * i] = infos[i] or ''
  end
end)
return out
]])

-- KEYS: pz, ph. ARGV: channel, node. Purges the expired members (announced). -> their ids
M.presence_purge = script("presence_purge", 2, PRESENCE_LIB .. [[
local now, time_us = clock()
return purge(KEYS[1], KEYS[2], ARGV[1], ARGV[2], now, time_us)
]])

M.all = { M.publish, M.history, M.presence_add, M.presence_remove, M.presence_get, M.presence_purge }

local function noscript(err, code)
  return code == "redis" and type(err) == "string" and err:find("NOSCRIPT", 1, true) ~= nil
end

-- Learns a script's SHA1 from Redis (SCRIPT LOAD). call(cmd, ...) -> reply | nil, message, code.
function M.load(call, s)
  local sha, err, code = call("SCRIPT", "LOAD", s.src)
  if not sha then return nil, err, code end
  s.sha = sha
  return sha
end

-- Runs script s with its keys and arguments (...) through call, which waits for the reply:
-- EVALSHA when the SHA1 is known, EVAL when Redis answers NOSCRIPT (EVAL caches the script again).
-- -> the script's reply | nil, message, code
function M.run(call, s, ...)
  if not s.sha then
    local ok, err, code = M.load(call, s)
    if not ok then return nil, err, code end
  end
  local r, err, code = call("EVALSHA", s.sha, s.nkeys, ...)
  if r == nil and noscript(err, code) then
    return call("EVAL", s.src, s.nkeys, ...)
  end
  return r, err, code
end

-- The same without waiting, through send(cmd, ...) -> true | nil, message, code. `loaded` is the
-- caller's table (one per Redis connection) of script name -> the connection generation (its
-- reconnect count) the script was last EVALed on: the first send of a script on a connection is an
-- EVAL, which loads the script, so the EVALSHAs pipelined after it on that same connection find it
-- even after Redis restarted. EVAL too while the SHA1 is unknown (M.load).
function M.send(send, s, loaded, generation, ...)
  if s.sha and loaded[s.name] == generation then
    return send("EVALSHA", s.sha, s.nkeys, ...)
  end
  local ok, err, code = send("EVAL", s.src, s.nkeys, ...)
  if ok and s.sha then loaded[s.name] = generation end
  return ok, err, code
end

-- Key and channel names.
function M.keys(prefix, topic)
  return {
    stream = prefix .. "s:" .. topic, meta = prefix .. "m:" .. topic,
    pz = prefix .. "pz:" .. topic, ph = prefix .. "ph:" .. topic,
    channel = prefix .. "t:" .. topic,
  }
end
function M.node_channel(prefix, node)
  return prefix .. "n:" .. node
end

-- An XRANGE entry { "12-0", { "k", "t", "n", node, "i", id, "t", time_us, "d", data } } as
-- { offset = 12, data =, kind = "text" | "binary", node =, id = (nil when none), time_us = }.
function M.entry(e)
  local f = {}
  local fields = e[2]
  for i = 1, #fields - 1, 2 do f[fields[i]] = fields[i + 1] end
  local id = f.i
  return {
    offset = tonumber((e[1]:match("^(%d+)"))), data = f.d or "",
    kind = f.k == "b" and "binary" or "text", node = f.n,
    id = id ~= "" and id or nil, time_us = tonumber(f.t),
  }
end

return M
