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
-- or nil, message. IPv6 literals go in brackets.
function M.parse_url(url)
  local scheme, rest = url:match("^(%a[%w+.-]*)://(.*)$")
  if not scheme then return nil, "invalid URL " .. url end
  scheme = scheme:lower()
  if scheme ~= "ws" and scheme ~= "wss" then return nil, "unsupported URL scheme " .. scheme end
  local authority, target = rest:match("^([^/?#]*)(.*)$")
  target = target:gsub("#.*$", "")
  if target == "" then target = "/" elseif target:sub(1, 1) == "?" then target = "/" .. target end
  if authority:find("@", 1, true) then return nil, "user information in URLs is not supported" end
  local host, port
  if authority:sub(1, 1) == "[" then
    host, port = authority:match("^%[([%x:.]+)%]:?(%d*)$")
  else
    host, port = authority:match("^([^:]+):?(%d*)$")
  end
  if not host or host == "" then return nil, "invalid host in URL " .. url end
  local default = scheme == "wss" and 443 or 80
  port = port ~= "" and tonumber(port) or default
  if port < 1 or port > 65535 then return nil, "invalid port in URL " .. url end
  local host_header = authority:sub(1, 1) == "[" and ("[" .. host .. "]") or host
  if port ~= default then host_header = host_header .. ":" .. port end
  return { scheme = scheme, host = host, port = port, target = target, host_header = host_header,
           tls = scheme == "wss" }
end

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
  tls = { "table", fields = { server_name = "string", verify = "boolean" } },
  compression = "compression",
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
}
M.OPTIONS = OPTIONS

-- conn | nil, message, code ("ECONNREFUSED" and other errno names, "dns", "tls", "timeout",
-- "handshake" with the HTTP status as a fourth value, "closed").
function M.connect(url, opts)
  if type(url) ~= "string" then error("ws.connect: URL string expected", 2) end
  check.options("ws.connect", opts, OPTIONS, 2)
  opts = opts or {}
  if opts.reconnect then
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
    protocols = protocols, timeout = opts.timeout or 10,
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
  local conn, err, code = cconnect(u.host, u.port, copts)
  if not conn then return nil, describe(u, url, err, code), code end
  while true do
    local ok, e, c, status = chead(conn, protocols)
    if ok then return conn end
    if ok == nil then return nil, describe(u, url, e, c), c, status end
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
--   on_close = function(rc, message, code)   when the link drops
--   on_error = function(rc, message, code)   when an attempt fails
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

local function dropped(self, msg, code)
  self.conn = nil
  if self.on_close then self.on_close(self, msg, code) end
end

local function attempt(self, deadline)
  local tries = 0
  while not self.closed do
    local c, err, code = M.connect(self.url, self.options)
    if c then
      self.conn, self.delay = c, nil
      self.connects = self.connects + 1
      if self.on_open then self.on_open(c, self) end
      return c
    end
    tries = tries + 1
    self.failures = self.failures + 1
    self.last_error, self.last_code = err, code
    if self.on_error then self.on_error(self, err, code) end
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
