-- ws.client: `ws.connect(url [, opts])` for ws:// and wss://, and `ws.reconnecting(url, opts)`,
-- a connection that comes back after the link drops (exponential backoff with jitter) and
-- tells the script through on_open so it can subscribe again.
-- Connections are the same objects as a server's: receive, messages, send, ping, close, state,
-- protocol. Every call works in a coroutine the loop runs (it yields) and on the main thread of
-- a plain script (it runs the loop until the call completes).
local core = require "ws.core"
local conn_mod = require "ws.conn"
local tls_mod = require "ws.tls"
local check = require "ws.options"

local wait = conn_mod.wait
local unpack = table.unpack or unpack
local cconnect, chead = core.connect, core.client_head

local M = {}

-- "ws[s]://host[:port][/path][?query]" -> { scheme, host, port, target, host_header, tls }
-- or nil, message (ws.url).
M.parse_url = require("ws.url").parse

local function describe(u, url, msg, code)
  if code == "dns" then return ("cannot resolve %s: %s"):format(u.host, (msg:gsub("^dns: ", ""))) end
  if code == "handshake" or code == "tls" or code == "timeout" then return ("%s: %s"):format(url, msg) end
  return ("cannot connect to %s: %s"):format(url, msg)
end

local PASS = { "max_message", "max_header_bytes", "ping_interval", "ping_timeout", "close_timeout",
               "idle_timeout", "send_high_water", "send_low_water", "max_queue",
               "compression" } -- "off" | "shared" | "dedicated" | { mode =, window_bits =, ... }

-- The options of ws.connect and ws.reconnecting and their types (ws.options); values are
-- checked where they are read.
local OPTIONS = {
  protocols = "protocols",
  origin = "string",
  headers = "headers",
  timeout = "number",
  tls = { "table", fields = { server_name = "string", verify = "boolean", ca = "string", cert = "string",
                             key = "string" } },
  compression = { "compression", fields = check.COMPRESSION_FIELDS },
  max_message = "number",
  max_header_bytes = "number",
  ping_interval = "number",
  ping_timeout = "number",
  close_timeout = "number",
  idle_timeout = "number",
  send_high_water = "number",
  send_low_water = "number",
  max_queue = "number",
  reconnect = { "boolean|table", fields = { initial = "number", max = "number", jitter = "boolean",
                                            attempts = "number" } },
  on_open = "function",
  on_close = "function",
  on_error = "function",
  unix = "string",
}
M.OPTIONS = OPTIONS

-- A refusal's body as the server meant it: a chunked one decoded (RFC 9112 7.1).
local function dechunk(body)
  local out, pos = {}, 1
  while true do
    local size, data = body:match("^(%x+)[^\r\n]*\r\n()", pos)
    if not size then break end
    size = tonumber(size, 16)
    if size == 0 then break end
    out[#out + 1] = body:sub(data, data + size - 1)
    pos = data + size + 2
  end
  return table.concat(out)
end

local function refusal(response)
  if response and response.body ~= "" then
    local te = response.headers["transfer-encoding"]
    if te and te:lower():find("chunked", 1, true) then response.body = dechunk(response.body) end
  end
  return response
end

local EVENTS = { open = true, message = true, close = true, error = true }

-- The event style: runs in its own task from the next loop iteration, and calls
-- error(conn, message, code [, response]) when the connection could not be opened or failed,
-- open(conn), message(conn, msg, kind) for each message, and close(conn, code, reason) once at
-- the end (after error: code 1006). A callback that raises closes the connection (1011) and is
-- reported as a handler error is; close is still called.
local function run_events(conn, cb, u, url, protocols, failure)
  local open, message, close, on_error = cb.open, cb.message, cb.close, cb.error
  local function body()
    if failure then
      if on_error then on_error(conn, failure[1], failure[2]) end
      return
    end
    while true do
      local ok, e, c, _, response = chead(conn, protocols)
      if ok then break end
      if ok == nil then
        if on_error then on_error(conn, describe(u, url, e, c), c, refusal(response)) end
        return
      end
      wait(conn, "r")
    end
    if open then open(conn) end
    while true do
      local msg, kind, code = conn:receive()
      if not msg then
        if code ~= "closed" and on_error then on_error(conn, kind, code) end -- a failure, not a close
        return
      end
      if message then message(conn, msg, kind) end
    end
  end
  local ok, err = xpcall(body, debug.traceback)
  if not ok then
    core.report("client", tostring(err))
    if conn.state == "open" then pcall(conn.close, conn, 1011, "internal error") end
  end
  while conn.state ~= "closed" do wait(conn, "c") end
  if close then close(conn, conn.close_code or 1006, conn.close_reason or "") end
end

-- conn | nil, message, code ("ECONNREFUSED" and other errno names, "dns", "tls", "timeout",
-- "handshake" with the HTTP status and the response { status, reason, headers, body } as a
-- fourth and fifth value, "closed").
-- With a third argument, a table of callbacks { open =, message =, close =, error = }, it
-- returns the connection at once, in state "connecting", and reports through the callbacks
-- (run_events) instead: the browser's `new WebSocket(url)` with its onopen, onmessage,
-- onclose and onerror.
function M.connect(url, opts, callbacks)
  if type(url) ~= "string" then error("ws.connect: URL string expected", 2) end
  check.options("ws.connect", opts, OPTIONS, 2)
  check.callbacks("ws.connect", callbacks, EVENTS, 2)
  opts = opts or {}
  if opts.reconnect then
    if callbacks then error("ws.connect: callbacks and reconnect do not go together (use on_open, on_close)", 2) end
    local rc = M.reconnecting(url, opts)
    local ok, err, code = rc:connect()
    if not ok then return nil, err, code end
    return rc
  end
  local u, uerr = M.parse_url(url)
  if not u then error("ws.connect: " .. uerr, 2) end
  local protocols = opts.protocols
  if type(protocols) == "string" then protocols = { protocols } end
  local copts = {
    path = u.target, host_header = u.host_header, origin = opts.origin, headers = opts.headers,
    protocols = protocols, timeout = opts.timeout or 10, unix = opts.unix,
  }
  for _, k in ipairs(PASS) do copts[k] = opts[k] end
  if u.tls then
    local ctx, terr = tls_mod.client_context(opts.tls)
    if not ctx then return nil, terr, "tls" end
    copts.tls = ctx
    copts.server_name = opts.tls and opts.tls.server_name or u.host
  elseif opts.tls ~= nil then
    error("ws.connect: tls options need a wss:// URL", 2)
  end
  local conn, err, code, failed = check.relay(2, cconnect, u.host, u.port, copts)
  if callbacks then
    conn = conn or failed
    core.spawn(run_events, conn, callbacks, u, url, protocols,
               failed and { describe(u, url, err, code), code } or nil)
    return conn
  end
  if not conn then return nil, describe(u, url, err, code), code end
  while true do
    local ok, e, c, status, response = chead(conn, protocols)
    if ok then return conn end
    if ok == nil then return nil, describe(u, url, e, c), c, status, refusal(response) end
    wait(conn, "r")
  end
end

-- ---- reconnecting connections ----

local Reconnecting = {}
local RC = {}
Reconnecting.__index = function(self, k)
  if RC[k] ~= nil then return RC[k] end
  local conn = rawget(self, "conn")
  if k == "state" then
    if rawget(self, "closed") then return "closed" end
    return conn and conn.state ~= "closed" and conn.state or "connecting"
  elseif k == "protocol" then
    return conn and conn.protocol
  end
  return nil
end
M.Reconnecting = RC

-- ws.reconnecting(url, opts): opts as for ws.connect, plus
--   reconnect = { initial = 0.5, max = 30, jitter = true, attempts = nil (no limit) }
--   on_open = function(conn, rc)   after every (re)connection: subscribe here
--   on_close = function(rc, message, code, close_code, close_reason)   when the link drops
--   on_error = function(rc, message, code, response)   when an attempt fails (response: a
--                                            refused handshake's, as ws.connect returns it)
-- It connects on first use (or rc:connect()).
function M.reconnecting(url, opts)
  if type(url) ~= "string" then error("ws.reconnecting: URL string expected", 2) end
  check.options("ws.reconnecting", opts, OPTIONS, 2)
  opts = opts or {}
  local u, uerr = M.parse_url(url)
  if not u then error("ws.reconnecting: " .. uerr, 2) end
  local policy = type(opts.reconnect) == "table" and opts.reconnect or {}
  local copts = {}
  for k, v in pairs(opts) do copts[k] = v end
  copts.reconnect, copts.on_open, copts.on_close, copts.on_error = nil, nil, nil, nil
  return setmetatable({
    url = url, options = copts,
    initial = policy.initial or 0.5, max = policy.max or 30, jitter = policy.jitter ~= false,
    attempts = policy.attempts,
    on_open = opts.on_open, on_close = opts.on_close, on_error = opts.on_error,
    connects = 0, failures = 0,
  }, Reconnecting)
end

-- The next delay: doubles from `initial` up to `max`; with jitter, a random point in its
-- upper half, so clients that lost the same server do not return all at once.
local function next_delay(self)
  local d = self.delay or self.initial
  self.delay = math.min(self.max, d * 2)
  if self.jitter then d = d / 2 + math.random() * d / 2 end
  return d
end

-- The link dropped: on_close(rc, message, code, close_code, close_reason), the last two the
-- connection's (1006 and "" when it ended without a closing handshake).
local function dropped(self, msg, code)
  local conn = rawget(self, "conn")
  self.conn = nil
  local ccode, creason = conn and conn.close_code or 1006, conn and conn.close_reason or ""
  self.close_code, self.close_reason = ccode, creason
  if self.on_close then self.on_close(self, msg, code, ccode, creason) end
end

local function attempt(self, deadline)
  local tries = 0
  while not self.closed do
    local c, err, code, _, response = M.connect(self.url, self.options)
    if c then
      self.conn, self.delay = c, nil
      self.connects = self.connects + 1
      if self.on_open then self.on_open(c, self) end
      return c
    end
    tries = tries + 1
    self.failures = self.failures + 1
    self.last_error, self.last_code, self.last_response = err, code, response
    if self.on_error then self.on_error(self, err, code, response) end
    if self.attempts and tries >= self.attempts then return nil, err, code end
    local d = next_delay(self)
    if deadline and core.now() + d >= deadline then
      local left = deadline - core.now()
      if left > 0 then wait(nil, "t", left) end
      return nil, "timeout", "timeout"
    end
    wait(nil, "t", d)
  end
  return nil, "closed", "closed"
end

-- How often a caller that shares another's connection attempt looks whether it has ended.
local SHARE_POLL = 0.005

-- Connects (again), retrying with backoff: the connection | nil, message, code once
-- `attempts` failed in a row, the object was closed, or (nil, "timeout", "timeout") the
-- next try would start after `deadline` (a ws.now() time; nil: none). Callers in other
-- coroutines while an attempt runs share it (one connection, whoever asked first) and get its
-- result; each one's own deadline still holds.
function RC:connect(deadline)
  check.arg("rc:connect", "deadline", deadline, "number?", 2)
  local conn = rawget(self, "conn")
  if conn and conn.state ~= "closed" then return conn end
  local shared = rawget(self, "_attempt")
  if shared then
    while not shared.done do
      local left = deadline and deadline - core.now()
      if left and left <= 0 then return nil, "timeout", "timeout" end
      wait(nil, "t", left and left < SHARE_POLL and left or SHARE_POLL)
    end
    return unpack(shared, 1, 3)
  end
  if conn then dropped(self, conn.close_reason ~= "" and conn.close_reason or "closed", "closed") end
  shared = {}
  self._attempt = shared
  local r = { pcall(attempt, self, deadline) }
  self._attempt = nil
  shared.done = true
  if not r[1] then -- on_open or on_error raised: in this caller; the others get an error result
    shared[2], shared[3] = "connection attempt failed: " .. tostring(r[2]), "closed"
    error(r[2], 0)
  end
  shared[1], shared[2], shared[3] = r[2], r[3], r[4]
  return r[2], r[3], r[4]
end

-- msg, kind | nil, message, code. A dropped link is reconnected (on_open runs again) and
-- receiving goes on; only a timeout (reconnecting included), rc:close() or exhausted
-- attempts end it.
function RC:receive(timeout)
  check.arg("rc:receive", "timeout", timeout, "number?", 2)
  local deadline = timeout and core.now() + timeout
  while true do
    local conn = rawget(self, "conn") -- a closed one still hands out what it received
    if not conn then
      local err, code
      conn, err, code = self:connect(deadline)
      if not conn then return nil, err, code end
    end
    local left = deadline and deadline - core.now()
    if left and left < 0 then left = 0 end
    local msg, kind, rcode = conn:receive(left)
    if msg then return msg, kind end
    if rcode == "timeout" then return nil, kind, rcode end
    if self.closed then return nil, kind, rcode end
    dropped(self, kind, rcode)
  end
end

function RC:messages()
  return function()
    local msg, kind = self:receive()
    if msg then return msg, kind end
    return nil
  end
end

-- true | nil, message, code. Nothing is sent twice: a message that met a dropped link is
-- reported, and the next call reconnects.
function RC:send(data, kind, opts)
  check.arg("rc:send", "data", data, "string", 2)
  check.arg("rc:send", "kind", kind, "string?", 2)
  check.arg("rc:send", "opts", opts, "table?", 2)
  local conn, err, code = self:connect()
  if not conn then return nil, err, code end
  local ok, serr, scode = conn:send(data, kind, opts)
  if ok then return true end
  if conn.state == "closed" then dropped(self, serr, scode) end
  return nil, serr, scode
end

function RC:ping(data, opts)
  check.arg("rc:ping", "data", data, "string?", 2)
  check.arg("rc:ping", "opts", opts, "table?", 2)
  local conn = rawget(self, "conn")
  if not conn then return nil, "not connected", "closed" end
  return conn:ping(data, opts)
end

-- Ends the link for good (no more reconnecting).
function RC:close(code, reason)
  check.arg("rc:close", "code", code, "number?", 2)
  check.arg("rc:close", "reason", reason, "string?", 2)
  self.closed = true
  local conn = rawget(self, "conn")
  if conn then conn:close(code, reason) end
  return true
end

return M
