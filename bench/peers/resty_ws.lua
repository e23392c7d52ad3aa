-- The handler of the nginx + lua-resty-websocket peer (see nginx_resty.conf): echo, or
-- broadcast: every text message received from any connection is sent, unchanged, as one text
-- frame to every open connection, the sender included (the protocol bench/loadclient.c
-- expects). In broadcast mode each connection has a writer light thread fed through a queue
-- and an ngx.semaphore, since one cosocket may be read in one thread and written in another.
local server = require "resty.websocket.server"
local semaphore = require "ngx.semaphore"

local wb, err = server:new { timeout = 600000, max_payload_len = 64 * 1024 * 1024 }
if not wb then
  ngx.log(ngx.ERR, "handshake failed: ", err)
  return ngx.exit(400)
end

local function receive()
  -- a whole message: fragments are joined; pings answered; nil at close or error
  local parts
  while true do
    local data, typ, e = wb:recv_frame()
    if not data then
      if e and e:find("timeout", 1, true) then
        -- idle: keep waiting
      else
        return nil
      end
    elseif typ == "close" then
      wb:send_close(1000, "")
      return nil
    elseif typ == "ping" then
      wb:send_pong(data)
    elseif typ == "pong" then
      -- nothing
    elseif e == "again" then
      parts = parts or { kind = typ }
      parts[#parts + 1] = data
    elseif typ == "continuation" then
      if not parts then return nil end
      parts[#parts + 1] = data
      return table.concat(parts), parts.kind
    else
      return data, typ
    end
  end
end

if ngx.var.bench_mode ~= "broadcast" then
  while true do
    local data, kind = receive()
    if not data then break end
    local ok
    if kind == "binary" then ok = wb:send_binary(data) else ok = wb:send_text(data) end
    if not ok then break end
  end
  return ngx.exit(ngx.OK)
end

local hub = package.loaded.bench_resty_hub
if not hub then
  hub = { clients = {} }
  package.loaded.bench_resty_hub = hub
end

local me = { q = {}, head = 1, tail = 0, sem = semaphore.new(), closed = false }
hub.clients[me] = true

local function writer()
  while not me.closed do
    me.sem:wait(600)
    while me.head <= me.tail do
      local d = me.q[me.head]
      me.q[me.head] = nil
      me.head = me.head + 1
      if not wb:send_text(d) then
        me.closed = true
        break
      end
    end
  end
end

local w = ngx.thread.spawn(writer)
while true do
  local data, kind = receive()
  if not data then break end
  if kind == "text" then
    for c in pairs(hub.clients) do
      if not c.closed then
        c.tail = c.tail + 1
        c.q[c.tail] = data
        c.sem:post(1)
      end
    end
  end
end
hub.clients[me] = nil
me.closed = true
me.sem:post(1)
ngx.thread.wait(w)
return ngx.exit(ngx.OK)
