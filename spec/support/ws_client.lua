-- The specs' one Lua WebSocket client, blocking and independent of the server's event loop:
-- LuaSocket for the socket and `ws.codec` (the sans-I/O core) for the handshake and frames.
-- Every read has a deadline. Also raw HTTP helpers for refusals and odd requests, and the
-- chat specs' pool of clients (chat_client.lua) is built on it.
local socket = require "socket"
local codec = require "ws.codec"

local M = {}
local Client = {}
Client.__index = Client
M.Client = Client

local function now() return socket.gettime() end
M.now = now

-- What has arrived, waiting at most `timeout` for the first byte: data | nil, "timeout" |
-- nil, "closed" | nil, error. (LuaSocket's receive(n) would wait for all n bytes.)
local function recv_some(sock, timeout)
  -- No select(): it cannot watch descriptors over FD_SETSIZE, and the load specs go past it.
  sock:settimeout(math.max(0, timeout))
  local first, e = sock:receive(1)
  if not first then
    if e == "timeout" then return nil, "timeout" end
    return nil, e
  end
  sock:settimeout(0)
  local data, _, partial = sock:receive(65536)
  return first .. (data or partial or "")
end
M.recv_some = recv_some

-- Parses an HTTP response head (and its Content-Length body) from buf: status, headers
-- (lower-case names), body, or nil when incomplete.
local function parse_http(buf)
  local head_end = buf:find("\r\n\r\n", 1, true)
  if not head_end then return nil end
  local head = buf:sub(1, head_end - 1)
  local status = tonumber(head:match("^HTTP/1%.%d (%d%d%d)"))
  local headers = {}
  for name, value in head:gmatch("\r\n([^:\r\n]+):[ \t]*([^\r\n]*)") do
    headers[name:lower()] = value
  end
  local len = tonumber(headers["content-length"] or "0")
  local body = buf:sub(head_end + 4)
  if #body < len then return nil end
  return status, headers, body:sub(1, len)
end
M.parse_http = parse_http

-- A connected TCP socket to 127.0.0.1:port, or a Unix socket when port is a path (a string).
function M.tcp(port, timeout)
  local unix = type(port) == "string" and require("socket.unix")
  local sock = assert(unix and (unix.stream or unix)() or socket.tcp())
  sock:settimeout(timeout or 5)
  local ok, err
  if unix then ok, err = sock:connect(port) else ok, err = sock:connect("127.0.0.1", port) end
  if not ok then sock:close() return nil, err end
  return sock
end

-- Reads until `done(buf)` returns true values, the peer closes, or the deadline.
local function read_until(sock, buf, done, timeout)
  local deadline = now() + (timeout or 5)
  while true do
    local r = { done(buf) }
    if r[1] then return buf, (unpack or table.unpack)(r) end
    local left = deadline - now()
    if left <= 0 then return nil, "timeout", buf end
    local data, err = recv_some(sock, left)
    if data then buf = buf .. data
    elseif err == "closed" then
      local r2 = { done(buf) }
      if r2[1] then return buf, (unpack or table.unpack)(r2) end
      return nil, "closed", buf
    elseif err ~= "timeout" then return nil, err, buf end
  end
end
M.read_until = read_until

-- Sends raw request bytes and returns the HTTP response: status, headers, body.
function M.http(port, request, timeout)
  local sock, err = M.tcp(port, timeout)
  if not sock then return nil, err end
  sock:send(request)
  local _, status, headers, body = read_until(sock, "", parse_http, timeout)
  sock:close()
  return status, headers, body
end

-- A request `method path` with Host and the given headers (a table name -> value); returns the
-- response's status, headers, body.
function M.request(port, method, path, headers, timeout)
  local req = { method .. " " .. (path or "/") .. " HTTP/1.1", "Host: 127.0.0.1:" .. port }
  for k, v in pairs(headers or {}) do req[#req + 1] = k .. ": " .. v end
  return M.http(port, table.concat(req, "\r\n") .. "\r\n\r\n", timeout)
end

function M.get(port, path, headers) return M.request(port, "GET", path, headers) end

-- The bytes of a valid upgrade request for `path` (default /ws) with RFC 6455's sample key,
-- followed by the `extra` header lines ("Name: value").
function M.upgrade_request(port, path, extra)
  local lines = {
    "GET " .. (path or "/ws") .. " HTTP/1.1", "Host: 127.0.0.1:" .. port, "Upgrade: websocket", "Connection: Upgrade",
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13",
  }
  for _, l in ipairs(extra or {}) do lines[#lines + 1] = l end
  return table.concat(lines, "\r\n") .. "\r\n\r\n"
end

-- Opens a WebSocket: opts.path, protocols, origin, headers, timeout, max_message, host (the
-- Host header; the socket always goes to 127.0.0.1).
-- Returns a client, or nil, reason, status, headers, body when the server refuses.
function M.connect(port, opts)
  opts = opts or {}
  local sock, err = M.tcp(port, opts.timeout)
  if not sock then return nil, err end
  local request, key = codec.client_request({
    host = opts.host or (type(port) == "string" and "localhost" or ("127.0.0.1:" .. port)), path = opts.path or "/", protocols = opts.protocols,
    origin = opts.origin, headers = opts.headers,
  })
  sock:send(request)
  local resp, consumed
  local buf, why = read_until(sock, "", function(b)
    resp, consumed = codec.parse_response(b, key, { protocols = opts.protocols })
    if resp then return true end
    if consumed ~= "again" then return true end
  end, opts.timeout)
  if not buf then sock:close() return nil, why end
  if not resp then
    local _, status, headers, body = read_until(sock, buf, parse_http, 2)
    sock:close()
    return nil, consumed, status, headers, body
  end
  local c = codec.new({ role = "client", max_message = opts.max_message or 64 * 1024 * 1024 })
  if consumed < #buf then c:feed(buf:sub(consumed + 1)) end
  return setmetatable({ sock = sock, codec = c, protocol = resp.protocol, response = resp }, Client)
end

function Client:flush()
  local out = self.codec:output()
  if out ~= "" then
    self.sock:settimeout(5)
    local ok, err = self.sock:send(out)
    if not ok then return nil, err end
  end
  return true
end

function Client:send(data, kind)
  assert(self.codec:send(data, kind or "text"))
  return self:flush()
end

function Client:ping(data)
  assert(self.codec:ping(data or ""))
  return self:flush()
end

-- The next event: kind, a, b as codec:next() gives them ("text", msg | "close", code,
-- reason | "ping", payload ...), or nil, "timeout" | nil, "closed".
function Client:receive(timeout)
  local deadline = now() + (timeout or 5)
  while true do
    local kind, a, b = self.codec:next()
    if kind then
      self:flush() -- automatic pongs and close replies
      return kind, a, b
    end
    local left = deadline - now()
    if left <= 0 then return nil, "timeout" end
    local data, err = recv_some(self.sock, left)
    if data then
      assert(self.codec:feed(data))
    elseif err == "closed" then
      return nil, "closed"
    elseif err ~= "timeout" then
      return nil, err
    end
  end
end

-- The next message, skipping pings and pongs.
function Client:message(timeout)
  local deadline = now() + (timeout or 5)
  while true do
    local kind, a, b = self:receive(math.max(0, deadline - now()))
    if kind ~= "ping" and kind ~= "pong" then return kind, a, b end
  end
end

-- Closing handshake from our side: returns the server's close code and reason.
function Client:close(code, reason, timeout)
  self.codec:close(code or 1000, reason)
  self:flush()
  local deadline = now() + (timeout or 5)
  while true do
    local kind, a, b = self:receive(math.max(0, deadline - now()))
    if kind == "close" then
      self:wait_eof(deadline - now())
      self.sock:close()
      return a, b
    end
    if kind == nil then self.sock:close() return nil, a end
  end
end

-- Waits for the server to close the TCP connection; true when it did.
function Client:wait_eof(timeout)
  local deadline = now() + (timeout or 5)
  while now() < deadline do
    local data, err = recv_some(self.sock, deadline - now())
    if not data and err ~= "timeout" then return true end
  end
  return false
end

function Client:abort() self.sock:close() end

return M
