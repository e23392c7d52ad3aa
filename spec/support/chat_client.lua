-- A small blocking WebSocket client for the chat specs: LuaSocket for the socket, `ws.codec`
-- (our own protocol core) for the handshake and the frames. It offers the same methods as the
-- Python agent in chat_harness.lua (a pool of clients named by id), so a spec can mix both.
-- Every read has a deadline.
local socket = require "socket"
local codec = require "ws.codec"
local cjson = require "cjson"

local Pool = {}
Pool.__index = Pool

local M = {}

function M.pool() return setmetatable({ clients = {} }, Pool) end

local function parse_url(url)
  local u = assert(require("ws.url").parse(url))
  return u.host, u.port, u.target, u.host_header
end

-- Reads what has arrived (waiting at most `timeout`); returns the bytes, or nil and the reason.
local function read_some(sock, timeout)
  if not sock:dirty() then
    local readable = socket.select({ sock }, nil, math.max(timeout, 0))
    if not readable[1] then return nil, "timeout" end
  end
  sock:settimeout(0)
  local data, err, partial = sock:receive(65536)
  data = data or partial
  if data and #data > 0 then return data end
  return nil, err
end

function Pool:open(id, url, opts)
  opts = opts or {}
  local host, port, path, host_header = parse_url(url)
  local sock = assert(socket.tcp())
  sock:settimeout(5)
  local ok, err = sock:connect(host, port)
  if not ok then return { ok = false, error = err } end
  local request, key = codec.client_request({ host = host_header, path = path, origin = opts.origin })
  assert(sock:send(request))
  local buf = ""
  local deadline = socket.gettime() + 5
  while true do
    local resp, consumed = codec.parse_response(buf, key)
    if resp then
      local c = codec.new({ role = "client", max_message = 4 * 1024 * 1024 })
      if #buf > consumed then assert(c:feed(buf:sub(consumed + 1))) end
      self.clients[id] = { sock = sock, codec = c }
      return { ok = true }
    elseif consumed ~= "again" then
      sock:close()
      return { ok = false, error = "refused", status = tonumber(buf:match("^HTTP/1%.1 (%d+)")), reason = consumed }
    end
    local left = deadline - socket.gettime()
    local data, rerr = left > 0 and read_some(sock, left)
    if not data then
      sock:close()
      return { ok = false, error = rerr or "timeout" }
    end
    buf = buf .. data
  end
end

local function flush(client)
  local out = client.codec:output()
  if #out > 0 then
    client.sock:settimeout(5)
    assert(client.sock:send(out))
  end
end

function Pool:send(id, data, kind)
  if type(data) == "table" then data = cjson.encode(data) end
  local client = assert(self.clients[id], id)
  assert(client.codec:send(data, kind or "text"))
  flush(client)
  return { ok = true }
end

function Pool:send_binary(id, hex)
  return self:send(id, (hex:gsub("%x%x", function(h) return string.char(tonumber(h, 16)) end)), "binary")
end

function Pool:flood(id, texts)
  for _, text in ipairs(texts) do self:send(id, text) end
  return { ok = true }
end

-- The next text message as (decoded, raw), or nil, "timeout" | "closed", code.
function Pool:recv(id, timeout)
  local client = assert(self.clients[id], id)
  local deadline = socket.gettime() + (timeout or 3)
  while true do
    local kind, a, b = client.codec:next()
    if kind == "text" or kind == "binary" then
      local ok, obj = pcall(cjson.decode, a)
      return ok and obj or a, a
    elseif kind == "close" or kind == "error" then
      flush(client)
      client.closed = kind == "close" and a or b
      return nil, "closed", client.closed
    elseif kind == nil then
      if client.closed then return nil, "closed", client.closed end
      flush(client)   -- pongs the codec queued
      local left = deadline - socket.gettime()
      if left <= 0 then return nil, "timeout" end
      local data, err = read_some(client.sock, left)
      if data then
        assert(client.codec:feed(data))
      elseif err == "closed" then
        client.closed = 1006
        return nil, "closed", 1006
      end
    end
  end
end

function Pool:drain(id, quiet)
  local out = {}
  for _ = 1, 10000 do
    local msg = self:recv(id, quiet or 0.3)
    if not msg then break end
    out[#out + 1] = msg
  end
  return out
end

function Pool:wait_for(id, contains, count, timeout)
  local start = socket.gettime()
  local deadline = start + (timeout or 10)
  local n = 0
  while n < count do
    local left = deadline - socket.gettime()
    if left <= 0 then return { ok = false, error = "timeout", count = n } end
    local _, raw = self:recv(id, left)
    if not raw then return { ok = false, error = "closed", count = n } end
    if raw:find(contains, 1, true) then n = n + 1 end
  end
  return { ok = true, count = n, seconds = socket.gettime() - start }
end

-- Messages until one of `type` arrives (at most 50 others in between); returns it and the ones
-- before it. Works on any object with :recv(id, timeout) returning a decoded message.
function M.expect(self, id, type_, timeout)
  local before = {}
  for _ = 1, 50 do
    local msg, err = self:recv(id, timeout)
    if not msg then return nil, err, before end
    if msg.type == type_ then return msg, before end
    before[#before + 1] = msg
  end
  return nil, "too many other messages", before
end
Pool.expect = M.expect

function Pool:close(id)
  local client = self.clients[id]
  if not client then return { ok = true } end
  self.clients[id] = nil
  if not client.closed then
    client.codec:close(1000)
    pcall(flush, client)
    -- Wait (briefly) for the server's close reply, as a polite client does.
    local deadline = socket.gettime() + 2
    while socket.gettime() < deadline do
      local kind = client.codec:next()
      if kind == "close" then break end
      if kind == nil then
        local data = read_some(client.sock, deadline - socket.gettime())
        if not data then break end
        client.codec:feed(data)
      end
    end
  end
  client.sock:close()
  return { ok = true }
end

function Pool:quit()
  for id in pairs(self.clients) do self:close(id) end
end

return M
