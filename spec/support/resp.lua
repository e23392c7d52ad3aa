-- For the bus specs: a tiny blocking RESP client over LuaSocket to look at and drive Redis from the
-- spec (binary-safe commands, pipelines, and a subscriber that collects what is published). Every
-- read is bounded. The redis-server itself comes from spec/support/redis.lua.
local socket = require "socket"

local M = {}

local Client = {}
Client.__index = Client

local function encode(args)
  local parts = { "*" .. #args .. "\r\n" }
  for i = 1, #args do
    local a = tostring(args[i])
    parts[#parts + 1] = "$" .. #a .. "\r\n" .. a .. "\r\n"
  end
  return table.concat(parts)
end

-- port: a TCP port on 127.0.0.1, or the path of Redis's Unix socket (a string).
function M.connect(port, timeout)
  local unix = type(port) == "string" and require("socket.unix")
  local s, err
  if unix then s, err = (unix.stream or unix)() else s, err = socket.tcp() end
  if not s then return nil, err end
  s:settimeout(timeout or 5)
  local ok, cerr
  if unix then ok, cerr = s:connect(port) else ok, cerr = s:connect("127.0.0.1", port) end
  if not ok then s:close() return nil, cerr end
  return setmetatable({ sock = s }, Client)
end

-- One reply: strings, integers, false for a nil bulk, tables for arrays, { err = "..." } for an
-- error reply; nil, "timeout" | "closed" when nothing comes.
function Client:read()
  local line, err = self.sock:receive("*l")
  if not line then return nil, err end
  local t, rest = line:sub(1, 1), line:sub(2)
  if t == "+" then return rest end
  if t == "-" then return { err = rest } end
  if t == ":" then return tonumber(rest) end
  if t == "$" then
    local n = tonumber(rest)
    if n < 0 then return false end
    local data, derr = self.sock:receive(n + 2)
    if not data then return nil, derr end
    return data:sub(1, n)
  end
  if t == "*" then
    local n = tonumber(rest)
    if n < 0 then return false end
    local list = {}
    for i = 1, n do
      local v, verr = self:read()
      if v == nil then return nil, verr end
      list[i] = v
    end
    return list
  end
  return nil, "bad reply: " .. line
end

function Client:call(...)
  assert(self.sock:send(encode({ ... })))
  return self:read()
end

-- Sends several commands at once and reads their replies in order.
function Client:pipeline(cmds)
  local out = {}
  for i = 1, #cmds do out[i] = encode(cmds[i]) end
  assert(self.sock:send(table.concat(out)))
  local replies = {}
  for i = 1, #cmds do replies[i] = self:read() end
  return replies
end

function Client:settimeout(t) self.sock:settimeout(t) end
function Client:close() self.sock:close() end

-- A subscriber: client:subscribe(channel...) then client:messages(n, timeout) -> the payloads of the
-- next messages (at most n, waiting at most timeout seconds for each).
function Client:subscribe(...)
  assert(self.sock:send(encode({ "SUBSCRIBE", ... })))
  for _ = 1, select("#", ...) do
    local r = self:read()
    assert(type(r) == "table" and r[1] == "subscribe", "subscribe failed")
  end
end
function Client:messages(n, timeout)
  local out = {}
  self.sock:settimeout(timeout or 1)
  while #out < n do
    local r = self:read()
    if not r then break end
    if type(r) == "table" and r[1] == "message" then out[#out + 1] = r[3] end
  end
  self.sock:settimeout(5)
  return out
end

M.encode = encode
return M
