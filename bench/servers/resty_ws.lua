-- The handler of lua-ws's OpenResty server for the benchmarks (see nginx_ws_resty.conf): ws.resty
-- speaking the load client's protocols, as bench/peers/resty_ws.lua does with lua-resty-websocket.
-- Echo: every message comes back with its kind. Broadcast: every text message received from any
-- connection is sent, unchanged, to every open connection, the sender included; a cosocket is
-- written only by the light threads of its own request, so each connection has a writer thread
-- fed through a queue and an ngx.semaphore. No compression is offered (the peer has none).
local resty = require "ws.resty"
local semaphore = require "ngx.semaphore"

local conn, err = resty.accept { max_message = 64 * 1024 * 1024 }
if not conn then
  ngx.log(ngx.ERR, "handshake failed: ", err)
  return
end

if ngx.var.bench_mode ~= "broadcast" then
  for msg, kind in conn:messages() do
    if not conn:send(msg, kind) then break end
  end
  conn:close()
  return
end

local hub = package.loaded.bench_ws_resty_hub
if not hub then
  hub = { clients = {} }
  package.loaded.bench_ws_resty_hub = hub
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
      if not conn:send(d) then
        me.closed = true
        break
      end
    end
  end
end

local w = ngx.thread.spawn(writer)
for msg, kind in conn:messages() do
  if kind == "text" then
    for c in pairs(hub.clients) do
      if not c.closed then
        c.tail = c.tail + 1
        c.q[c.tail] = msg
        c.sem:post(1)
      end
    end
  end
end
hub.clients[me] = nil
me.closed = true
me.sem:post(1)
ngx.thread.wait(w)
conn:close()
