-- Run inside nginx by spec/openresty_spec.lua (location /client-test): the ws.resty client
-- against this server's own echo and subprotocol locations. Prints "name value" lines.
local resty = require "ws.resty"
local base = "ws://127.0.0.1:" .. ngx.var.server_port

local function say(name, ...)
  local parts = { name }
  for i = 1, select("#", ...) do parts[#parts + 1] = tostring((select(i, ...))) end
  ngx.say(table.concat(parts, " "))
end

local conn, err, code = resty.connect(base .. "/", { timeout = 5 })
say("connect", conn ~= nil, err, code)
if not conn then return end
say("state", conn.state)

conn:send("hello")
say("text", conn:receive(5))
conn:send("\0\1\2\255", "binary")
local msg, kind = conn:receive(5)
say("binary", msg == "\0\1\2\255", kind)
local big = string.rep("0123456789", 50000)
conn:send(big)
msg = conn:receive(5)
say("large", msg == big)

local pongs = 0
conn.on_pong = function(data) if data == "p1" then pongs = pongs + 1 end end
conn:ping("p1")
conn:send("after ping")
say("ping", conn:receive(5), pongs)

say("timeout", conn:receive(0.05))
conn:send("still there")
say("after_timeout", conn:receive(5))

say("close", conn:close(1000, "done"))
say("closed", conn.state, conn.close_code, conn.close_reason)
say("receive_after_close", conn:receive(1))
say("send_after_close", conn:send("x"))

local p = resty.connect(base .. "/proto", { protocols = { "chat.v1" }, timeout = 5 })
say("protocol", p and p.protocol, p and p:receive(5))
if p then p:close() end

local bad, berr, bcode = resty.connect("ws://127.0.0.1:" .. ngx.var.server_port .. "/nowhere",
  { timeout = 5 })
say("not_found", bad, berr, bcode)
local bad2, berr2, bcode2 = resty.connect("http://127.0.0.1/")
say("bad_url", bad2, berr2, bcode2)

-- permessage-deflate: offered, negotiated with the echo, and messages intact both ways.
for _, mode in ipairs({ "dedicated", "shared" }) do
  local d = resty.connect(base .. "/", { compression = mode, timeout = 5 })
  local text = string.rep("compressible ", 10000)
  local ok = d and d:send(text)
  local back = d and d:receive(5)
  local ok2 = d and d:send("tiny")
  local back2 = d and d:receive(5)
  say("deflate_" .. mode, d and d.extensions and d.extensions:match("^[%w-]+"),
    back == text and ok, back2 == "tiny" and ok2)
  if d then d:close() end
end
local plain = resty.connect(base .. "/", { timeout = 5 })
say("deflate_off", plain and plain.extensions)
if plain then plain:close() end
