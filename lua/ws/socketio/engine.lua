-- Engine.IO protocol v4, server side: sessions with their heartbeat, the HTTP long-polling
-- transport (through the http hook of ws.server), the WebSocket transport (a lua-ws
-- connection on the same path) and the upgrade from polling to WebSocket with its probe.
-- The layer above (ws.socketio.server) gets open(session), message(session, data, binary),
-- upgrade(session) and close(session, reason).
local core = require "ws.core"
local conn_mod = require "ws.conn"
local cjson = require "cjson.safe"
local origin_policy = require("ws.url").origin_policy

local wait = conn_mod.wait
local wsend = conn_mod.methods.send -- conn:send without the method lookup
local now, csend, cclose, crespond, cbody, cdefer = core.now, core.send, core.close, core.respond, core.body, core.defer
local cbuffered = core.buffered
local sbyte, ssub, sfind, concat = string.byte, string.sub, string.find, table.concat
local running = coroutine.running

local M = {}

-- Packet types (one digit in front of a text packet).
local OPEN, CLOSE, PING, PONG, MESSAGE, UPGRADE, NOOP = "0", "1", "2", "3", "4", "5", "6"
local SEP = "\30" -- record separator between the packets of a polling payload

-- The errors of the handshake, as the protocol numbers them.
M.errors = {
  transport = { code = 0, message = "Transport unknown" },
  session = { code = 1, message = "Session ID unknown" },
  method = { code = 2, message = "Bad handshake method" },
  request = { code = 3, message = "Bad request" },
  forbidden = { code = 4, message = "Forbidden" },
  version = { code = 5, message = "Unsupported protocol version" },
}

-- ---- ids and base64 ----

local urandom
local function random_bytes(n)
  if not urandom then urandom = assert(io.open("/dev/urandom", "rb")) ; urandom:setvbuf("full", 4096) end
  return urandom:read(n)
end

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
local enc_std, enc_url, dec = {}, {}, {}
for i = 1, 64 do
  enc_std[i - 1] = ssub(B64, i, i)
  enc_url[i - 1] = ssub(B64URL, i, i)
  dec[sbyte(B64, i)] = i - 1
end

local floor = math.floor

local function b64encode(s, alphabet, pad)
  local out, n = {}, #s
  for i = 1, n, 3 do
    local a, b, c = sbyte(s, i, i + 2)
    local v = a * 65536 + (b or 0) * 256 + (c or 0)
    local c1, c2, c3, c4 = floor(v / 262144), floor(v / 4096) % 64, floor(v / 64) % 64, v % 64
    out[#out + 1] = alphabet[c1] .. alphabet[c2] .. (b and alphabet[c3] or (pad and "=" or ""))
      .. (c and alphabet[c4] or (pad and "=" or ""))
  end
  return concat(out)
end
M.b64encode = function(s) return b64encode(s, enc_std, true) end

-- nil when s is not base64
local schar = string.char
local function b64decode(s)
  s = s:gsub("=?=$", "")
  local n = #s
  if n % 4 == 1 then return nil end
  local out = {}
  for i = 1, n, 4 do
    local a, b, c, d = sbyte(s, i, i + 3)
    a, b = dec[a], dec[b]
    if not a or not b then return nil end
    local v = a * 262144 + b * 4096
    local cc, dd
    if c then cc = dec[c]; if not cc then return nil end; v = v + cc * 64 end
    if d then dd = dec[d]; if not dd then return nil end; v = v + dd end
    local x, y, z = floor(v / 65536), floor(v / 256) % 256, v % 256
    if dd then out[#out + 1] = schar(x, y, z)
    elseif cc then out[#out + 1] = schar(x, y)
    else out[#out + 1] = schar(x) end
  end
  return concat(out)
end
M.b64decode = b64decode

function M.new_id()
  return b64encode(random_bytes(15), enc_url, false) -- 20 characters
end

-- ---- the query string ----

local function unescape(s)
  return (s:gsub("+", " "):gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

function M.parse_query(q)
  local t = {}
  if not q then return t end
  for pair in q:gmatch("[^&]+") do
    local k, v = pair:match("^([^=]*)=?(.*)$")
    if k and #k > 0 and t[unescape(k)] == nil then t[unescape(k)] = unescape(v) end
  end
  return t
end

-- ---- sessions ----

local Session = {}
Session.__index = Session
M.Session = Session

local Engine = {}
Engine.__index = Engine
M.Engine = Engine

-- opts: ping_interval, ping_timeout (seconds), max_payload (bytes), max_packets (per polling
-- request), upgrade_timeout, cors (nil: none | "*" | list of origins | function(origin, request)
-- -> bool: ws.url's origin policy, which ws.server's `origins` follows too).
-- handlers: open, message, upgrade, close (see the head of this file), and optionally
-- text(s, msg): a WebSocket text message "4<packet>" whole (the packet read from its second
-- byte, without the copy message(s, packet) would take).
function M.new(opts, handlers)
  local e = setmetatable({
    ping_interval = opts.ping_interval or 25,
    ping_timeout = opts.ping_timeout or 20,
    max_payload = opts.max_payload or 1000000,
    max_packets = opts.max_packets or 1000,
    upgrade_timeout = opts.upgrade_timeout or 10,
    max_buffer = opts.max_buffer or 10 * 1024 * 1024,
    cors = opts.cors,
    cors_allows = opts.cors and origin_policy(opts.cors, "ws.socketio: cors", 2),
    allow_request = opts.allow_request,
    sessions = {},
    by_conn = setmetatable({}, { __mode = "k" }), -- WebSocket connection -> its session
    count = 0,
    h = handlers,
  }, Engine)
  e.tick = math.max(0.005, math.min(1, e.ping_interval / 4, e.ping_timeout / 4))
  return e
end

local function json_error(err)
  return cjson.encode({ code = err.code, message = err.message })
end

function Engine:handshake_data(upgrades)
  return {
    sid = nil,
    upgrades = upgrades,
    pingInterval = math.floor(self.ping_interval * 1000 + 0.5),
    pingTimeout = math.floor(self.ping_timeout * 1000 + 0.5),
    maxPayload = self.max_payload,
  }
end

function Engine:new_session(transport, request)
  local t = now()
  local s = setmetatable({
    id = M.new_id(),
    engine = self,
    transport = transport,
    state = "open",
    request = request,
    queue = {},    -- polling: encoded packets waiting for a poll
    qbytes = 0,
    next_ping = t + self.ping_interval,
    pong_deadline = nil,
  }, Session)
  self.sessions[s.id] = s
  self.count = self.count + 1
  return s
end

-- The open packet's text for session s.
function Engine:open_packet(s, upgrades)
  local d = self:handshake_data(upgrades)
  d.sid = s.id
  local txt = cjson.encode(d)
  -- cjson encodes an empty table as {}: the protocol wants an array
  return OPEN .. txt:gsub('"upgrades":{}', '"upgrades":[]')
end

-- Queue (polling) or send (websocket) one packet; binary packets are raw bytes.
-- nowait: never wait for the socket to drain (the heartbeat, broadcasts).
function Session:send_packet(pkt, binary, nowait)
  if self.state == "closed" then return false end
  if self.transport == "websocket" then
    local conn = self.conn
    if nowait then
      local ok = csend(conn, pkt, binary and "binary" or "text")
      if ok == false and cbuffered(conn) > self.engine.max_buffer then
        self:close("transport error") -- a reader that does not keep up: no unbounded queue
        return false
      end
      return ok ~= nil
    end
    return wsend(conn, pkt, binary and "binary" or "text") ~= nil
  end
  local q = self.queue
  local item = binary and ("b" .. M.b64encode(pkt)) or pkt
  q[#q + 1] = item
  self.qbytes = self.qbytes + #item
  if self.qbytes > self.engine.max_buffer and self.state == "open" then
    -- a polling client that does not come to fetch its packets: no unbounded queue
    self:close("transport error", true)
    return false
  end
  self:flush()
  return true
end

function Session:send_message(data, nowait) return self:send_packet(MESSAGE .. data, false, nowait) end
function Session:send_binary(data, nowait) return self:send_packet(data, true, nowait) end

local TEXT_HEADERS = { ["Content-Type"] = "text/plain; charset=UTF-8" }

function Engine:headers(request)
  local allows = self.cors_allows
  if not allows then return TEXT_HEADERS end
  local origin = request and request.headers.origin
  if not origin or not allows(origin, nil, function() return request end) then return TEXT_HEADERS end
  return { ["Content-Type"] = "text/plain; charset=UTF-8", ["Access-Control-Allow-Origin"] = origin,
           ["Access-Control-Allow-Credentials"] = "true", ["Vary"] = "Origin" }
end

-- Answer a held poll with everything queued (polling transport).
function Session:flush()
  local poll = self.poll
  if not poll or #self.queue == 0 then return end
  self.poll = nil
  local body = concat(self.queue, SEP)
  self.queue, self.qbytes = {}, 0
  local closing = self.state == "closing"
  crespond(poll, 200, self.engine:headers(self.poll_request), body)
  self.poll_request = nil
  if closing then self.engine:remove(self, self.close_reason) end
end

-- Cut the session: reason as Socket.IO names it ("transport close", "ping timeout",
-- "parse error", "transport error", "forced close", "server shutting down").
function Session:close(reason, discard)
  if self.state ~= "open" then return end
  local e = self.engine
  self.close_reason = reason
  if self.transport == "websocket" then
    self.state = "closed"
    local conn = self.conn
    if conn and conn.state ~= "closed" then cclose(conn, 1000, "") end
    if self.upgrading and self.upgrading.state ~= "closed" then cclose(self.upgrading, 1000, "") end
    e:remove(self, reason)
  else
    -- After a successful probe the client polls no more: the close packet goes on the new
    -- transport once the client completes the upgrade (or the session ends at its deadline).
    if self.upgrading and not (self.probed and not discard) then
      if self.upgrading.state ~= "closed" then cclose(self.upgrading, 1000, "") end
      self.upgrading, self.probed = nil, nil
    end
    if discard then
      if self.poll then crespond(self.poll, 400, TEXT_HEADERS, json_error(M.errors.request)) ; self.poll = nil end
      self.state = "closed"
      e:remove(self, reason)
      return
    end
    -- The close packet goes with the next poll; until then the session stays, closing.
    self.state = "closing"
    self.queue[#self.queue + 1] = CLOSE
    self.qbytes = self.qbytes + 1
    self.close_deadline = now() + e.ping_interval + e.ping_timeout
    self:flush()
  end
end

function Engine:remove(s, reason)
  if self.sessions[s.id] ~= s then return end
  self.sessions[s.id] = nil
  self.count = self.count - 1
  s.state = "closed"
  if s.poll then
    local poll = s.poll
    s.poll = nil
    crespond(poll, 200, TEXT_HEADERS, CLOSE)
  end
  if s.opened then
    s.opened = false
    self.h.close(s, reason or "transport close")
  end
end

-- One Engine.IO packet from the client (text, or binary data).
function Session:on_packet(pkt, binary)
  if binary then
    return self.engine.h.message(self, pkt, true)
  end
  local t = ssub(pkt, 1, 1)
  if t == MESSAGE then
    return self.engine.h.message(self, ssub(pkt, 2), false)
  elseif t == PONG then
    self.pong_deadline = nil
    self.next_ping = now() + self.engine.ping_interval
  elseif t == PING then
    self:send_packet(PONG .. ssub(pkt, 2), false, true)
  elseif t == CLOSE then
    self:close("transport close", true)
  elseif t == NOOP or t == UPGRADE then
    -- a noop, or an upgrade packet that came late on the old transport: nothing to do
  else
    self:close("parse error", true)
    return false
  end
  return true
end

-- ---- the heartbeat: one task for all sessions ----

function Engine:start()
  if self.running then return end
  self.running = true
  core.spawn(function()
    while self.running do
      wait(nil, "t", self.tick)
      local t = now()
      for _, s in pairs(self.sessions) do
        if s.state == "closing" then
          if t >= s.close_deadline then s.state = "closed"; self:remove(s, s.close_reason) end
        elseif s.pong_deadline then
          if t >= s.pong_deadline then s:close("ping timeout", true) end
        elseif t >= s.next_ping then
          s.pong_deadline = t + self.ping_timeout
          s:send_packet(PING, false, true)
        end
        if s.upgrading and s.upgrade_deadline and t >= s.upgrade_deadline then
          local u = s.upgrading
          s.upgrading = nil
          if u.state ~= "closed" then cclose(u, 1000, "") end
        end
      end
      if self.tick_hook then self.tick_hook(t) end
    end
  end)
end

function Engine:stop()
  self.running = false
end

-- ---- HTTP long-polling (called from the http hook, on a pooled thread) ----

local function fail(err, headers)
  return 400, headers or TEXT_HEADERS, json_error(err)
end

-- request: conn.request; conn: the connection. Returns status, headers, body, or nothing when
-- the answer comes later (a held poll).
function Engine:http(request, conn)
  local q = M.parse_query(request.query)
  local method = request.method
  local headers = self:headers(request)
  if method == "OPTIONS" and self.cors then
    local h = {}
    for k, v in pairs(headers) do h[k] = v end
    h["Access-Control-Allow-Methods"] = "GET, POST"
    h["Access-Control-Allow-Headers"] = request.headers["access-control-request-headers"] or "content-type"
    return 204, h, nil
  end
  if q.EIO ~= "4" then return fail(M.errors.version, headers) end
  if q.transport ~= "polling" then return fail(M.errors.transport, headers) end
  local sid = q.sid
  if not sid then
    if method ~= "GET" then return fail(M.errors.method, headers) end
    if self.allow_request and not self.allow_request(request) then
      return 403, headers, json_error(M.errors.forbidden)
    end
    local s = self:new_session("polling", request)
    local body = self:open_packet(s, { "websocket" })
    s.opened = true
    self.h.open(s)
    -- what the layer above sent at once (nothing, for Socket.IO) goes with the next poll
    return 200, headers, body
  end
  local s = self.sessions[sid]
  if not s then return fail(M.errors.session, headers) end
  if s.transport ~= "polling" then return fail(M.errors.request, headers) end
  if method == "GET" then
    if s.poll then -- two polls at once: the protocol closes the session
      s:close("transport error", true)
      return fail(M.errors.request, headers)
    end
    if #s.queue > 0 then
      local body = concat(s.queue, SEP)
      s.queue, s.qbytes = {}, 0
      if s.state == "closing" then self:remove(s, s.close_reason) end
      return 200, headers, body
    end
    if s.state ~= "open" then return fail(M.errors.request, headers) end
    if s.probed then -- the probe succeeded: end this poll at once so the client pauses
      return 200, headers, NOOP
    end
    -- Held until something is queued or the next ping; no thread waits for it meanwhile.
    cdefer(conn, self.ping_interval + self.ping_timeout + 5)
    s.poll, s.poll_request = conn, request
    return
  elseif method == "POST" then
    if s.posting then
      s:close("transport error", true)
      return fail(M.errors.request, headers)
    end
    local len = tonumber(request.headers["content-length"] or "")
    if not len or len % 1 ~= 0 or len < 0 then
      return 411, headers, "Length Required"
    end
    if len > self.max_payload then
      s:close("transport error", true)
      return 413, headers, "Payload Too Large"
    end
    s.posting = true
    local body, err
    while true do
      body, err = cbody(conn, len)
      if body ~= false then break end
      wait(conn, "r")
    end
    s.posting = false
    if not body then
      s:close("transport error", true)
      return nil, nil, err
    end
    -- Split first: a malformed packet anywhere refuses the whole request.
    local pkts, n, pos = {}, 0, 1
    while pos <= #body + 1 do
      local stop = sfind(body, SEP, pos, true)
      local p = ssub(body, pos, (stop or #body + 1) - 1)
      n = n + 1
      if n > self.max_packets or #p == 0 then pkts = nil break end
      if sbyte(p, 1) == 98 then -- "b": base64 binary
        local bin = b64decode(ssub(p, 2))
        if not bin then pkts = nil break end
        pkts[n] = { bin, true }
      else
        local t = sbyte(p, 1)
        if t < 48 or t > 54 then pkts = nil break end
        pkts[n] = { p, false }
      end
      if not stop then break end
      pos = stop + 1
    end
    if not pkts then
      s:close("parse error", true)
      return fail(M.errors.request, headers)
    end
    -- Answer first: the client may post again while the packets are handled.
    crespond(conn, 200, headers, "ok")
    for i = 1, #pkts do
      if s.state ~= "open" then break end
      if s:on_packet(pkts[i][1], pkts[i][2]) == false then break end
    end
    return
  end
  return fail(M.errors.method, headers)
end

-- ---- WebSocket ----

-- The handshake hook's check of an upgrade request: true | false, status, headers, body.
function Engine:check_upgrade(request)
  local q = M.parse_query(request.query)
  if q.EIO ~= "4" then return false, 400, TEXT_HEADERS, json_error(M.errors.version) end
  if q.transport ~= "websocket" then return false, 400, TEXT_HEADERS, json_error(M.errors.transport) end
  if q.sid then
    local s = self.sessions[q.sid]
    if not s then return false, 400, TEXT_HEADERS, json_error(M.errors.session) end
    if s.transport ~= "polling" or s.upgrading or s.state ~= "open" then
      return false, 400, TEXT_HEADERS, json_error(M.errors.request)
    end
  elseif self.allow_request and not self.allow_request(request) then
    return false, 403, TEXT_HEADERS, json_error(M.errors.forbidden)
  end
  return true
end

function Engine:ws_open(conn)
  local q = M.parse_query(conn.request.query)
  if q.sid then
    local s = self.sessions[q.sid]
    if not s or s.transport ~= "polling" or s.upgrading or s.state ~= "open" then
      cclose(conn, 1000, "")
      return
    end
    s.upgrading = conn
    s.upgrade_deadline = now() + self.upgrade_timeout
    self.by_conn[conn] = s
    return
  end
  local s = self:new_session("websocket", conn.request)
  s.conn = conn
  self.by_conn[conn] = s
  csend(conn, self:open_packet(s, {}), "text")
  s.opened = true
  self.h.open(s)
end

function Engine:ws_message(conn, msg, kind)
  local s = self.by_conn[conn]
  if not s or s.state ~= "open" and s.state ~= "closing" then return end
  if s.upgrading == conn then
    if kind == "text" and msg == "2probe" then
      csend(conn, "3probe", "text")
      s.probed = true
      if s.poll then -- end the pending poll so that the client pauses polling
        local poll = s.poll
        s.poll = nil
        crespond(poll, 200, self:headers(s.poll_request), NOOP)
      end
    elseif kind == "text" and msg == UPGRADE and s.probed then
      s.upgrading, s.probed, s.upgrade_deadline = nil, nil, nil
      s.transport = "websocket"
      s.conn = conn
      if s.poll then
        local poll = s.poll
        s.poll = nil
        crespond(poll, 200, self:headers(s.poll_request), NOOP)
      end
      local q = s.queue
      s.queue, s.qbytes = {}, 0
      self.h.upgrade(s)
      for i = 1, #q do
        local p = q[i]
        if sbyte(p, 1) == 98 then csend(conn, b64decode(ssub(p, 2)), "binary")
        else csend(conn, p, "text") end
      end
      if s.state == "closing" then s.state = "open"; s:close(s.close_reason) end
    else
      s.upgrading, s.probed = nil, nil
      cclose(conn, 1000, "")
    end
    return
  end
  if s.conn ~= conn then return end
  s.dispatching = running()
  local ok
  if kind == "text" and sbyte(msg, 1) == 52 then -- "4": a message, the common case
    local text = self.h.text
    if text then ok = text(s, msg) -- the message read from its second byte, without a copy
    else ok = self.h.message(s, ssub(msg, 2), false) end
  else
    ok = s:on_packet(msg, kind == "binary")
  end
  s.dispatching = nil
  return ok
end

function Engine:ws_close(conn)
  local s = self.by_conn[conn]
  if not s then return end
  self.by_conn[conn] = nil
  if s.upgrading == conn then
    s.upgrading, s.probed = nil, nil
    return
  end
  if s.conn == conn and s.state ~= "closed" then
    s.state = "closed"
    self:remove(s, s.close_reason or (conn.close_code == 1006 and "transport error" or "transport close"))
  end
end

return M
