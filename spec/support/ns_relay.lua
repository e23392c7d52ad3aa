-- A byte relay for specs whose servers run in a network namespace of their own: run inside that
-- namespace (`ip netns exec NS lua ns_relay.lua <unix path> <port>`), it accepts connections on a
-- Unix socket (a file path, reachable from any namespace) and relays each one, both ways, to a TCP
-- connection it opens to 127.0.0.1:<port> inside the namespace. So a spec's clients connect from
-- inside the server's namespace without any address outside it. Prints "ready" once listening.
-- Non-blocking: one select loop, a buffer per direction, nothing waits on a slow side.
local socket = require "socket"
local unix = require "socket.unix"

local path, port = arg[1], tonumber(arg[2])
assert(path and port, "usage: ns_relay.lua <unix path> <port>")
os.remove(path)
local listener = assert((unix.stream or unix)())
assert(listener:bind(path))
assert(listener:listen(64))
listener:settimeout(0)

local pairs_of = {} -- socket -> { peer = socket, out = pending bytes for this socket }
local function close_pair(s)
  local me = pairs_of[s]
  if not me then return end
  local peer = me.peer
  pairs_of[s], pairs_of[peer] = nil, nil
  s:close()
  peer:close()
end

io.stdout:write("ready\n")
io.stdout:flush()

while true do
  local readers, writers = { listener }, {}
  for s, st in pairs(pairs_of) do
    readers[#readers + 1] = s
    if #st.out > 0 then writers[#writers + 1] = s end
  end
  local r, w = socket.select(readers, writers, 1)
  for _, s in ipairs(w or {}) do
    local st = pairs_of[s]
    if st and #st.out > 0 then
      local n, err, last = s:send(st.out)
      if not n and err ~= "timeout" then close_pair(s)
      else st.out = st.out:sub((n or last or 0) + 1) end
    end
  end
  for _, s in ipairs(r or {}) do
    if s == listener then
      local c = listener:accept()
      if c then
        local t = socket.tcp()
        t:settimeout(5)
        if t:connect("127.0.0.1", port) then
          c:settimeout(0)
          t:settimeout(0)
          pairs_of[c] = { peer = t, out = "" }
          pairs_of[t] = { peer = c, out = "" }
        else
          c:close()
          t:close()
        end
      end
    elseif pairs_of[s] then
      local st = pairs_of[s]
      local data, err, partial = s:receive(65536)
      data = data or partial
      local peer = pairs_of[st.peer]
      if data and #data > 0 and peer then peer.out = peer.out .. data end
      if err == "closed" then
        -- flush what is left towards the peer (bounded), then close both
        local p = st.peer
        if peer and #peer.out > 0 then
          p:settimeout(2)
          p:send(peer.out)
        end
        close_pair(s)
      end
    end
  end
end
