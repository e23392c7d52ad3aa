-- The chat specs' pool of Lua WebSocket clients named by id, on the specs' one client
-- (support/ws_client.lua). It offers the same methods as the Python agent in chat_harness.lua,
-- so a spec can mix both. Every read has a deadline.
local cjson = require "cjson"
local ws_client = require "support.ws_client"

local Pool = {}
Pool.__index = Pool

local M = {}

function M.pool() return setmetatable({ clients = {} }, Pool) end

function Pool:open(id, url, opts)
  opts = opts or {}
  local u = assert(require("ws.url").parse(url))
  local client, reason, status = ws_client.connect(u.port, {
    host = u.host_header, path = u.target, origin = opts.origin, max_message = 4 * 1024 * 1024,
  })
  if not client then
    if status then return { ok = false, error = "refused", status = status, reason = reason } end
    return { ok = false, error = reason }
  end
  self.clients[id] = client
  return { ok = true }
end

function Pool:send(id, data, kind)
  if type(data) == "table" then data = cjson.encode(data) end
  local client = assert(self.clients[id], id)
  assert(client:send(data, kind or "text"))
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
  if client.closed then return nil, "closed", client.closed end
  local deadline = ws_client.now() + (timeout or 3)
  while true do
    local kind, a, b = client:receive(math.max(0, deadline - ws_client.now()))
    if kind == "text" or kind == "binary" then
      local ok, obj = pcall(cjson.decode, a)
      return ok and obj or a, a
    elseif kind == "close" or kind == "error" then
      client.closed = kind == "close" and a or b
      return nil, "closed", client.closed
    elseif kind == nil then
      if a == "timeout" then return nil, "timeout" end
      client.closed = 1006
      return nil, "closed", 1006
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
  local start = ws_client.now()
  local deadline = start + (timeout or 10)
  local n = 0
  while n < count do
    local left = deadline - ws_client.now()
    if left <= 0 then return { ok = false, error = "timeout", count = n } end
    local _, raw = self:recv(id, left)
    if not raw then return { ok = false, error = "closed", count = n } end
    if raw:find(contains, 1, true) then n = n + 1 end
  end
  return { ok = true, count = n, seconds = ws_client.now() - start }
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
  -- A polite client waits (briefly) for the server's close reply.
  if not client.closed then pcall(client.close, client, 1000, nil, 2) end
  client:abort()
  return { ok = true }
end

function Pool:quit()
  for id in pairs(self.clients) do self:close(id) end
end

return M
