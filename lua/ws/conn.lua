-- The methods of a connection (server side now, client side later): the waiting wrappers
-- around the non-blocking primitives of ws.core. C never blocks: a primitive answers at once,
-- and when it would block the wrapper waits on the loop (yielding the running task, or on the
-- main thread running the loop) and tries again.
local core = require "ws.core"

local cwait, yield, now = core.wait, coroutine.yield, core.now
local crecv, cdrained, cclose = core.recv, core.drained, core.close

local M = {}

-- Waits for `what` ("r", "w", "c" or "t") on conn (nil for "t"); returns the reason it woke.
local function wait(conn, what, timeout)
  local r = cwait(conn, what, timeout)
  if r then return r end
  return yield()
end
M.wait = wait

local methods = core.conn_methods
M.methods = methods

-- msg, kind | nil, message, code ("timeout", "closed", "protocol", "toolarge", errno names).
-- A timeout loses nothing: the next receive gets the message that arrives later.
function methods:receive(timeout)
  local deadline = timeout and now() + timeout
  while true do
    local msg, kind, code = crecv(self)
    if msg then return msg, kind end
    if msg == nil then return nil, kind, code end
    local left
    if deadline then
      left = deadline - now()
      if left <= 0 then return nil, "timeout", "timeout" end
    end
    wait(self, "r", left)
  end
end

-- for msg, kind in conn:messages() do ... end  (ends when the connection does)
-- The iterator takes a waiting message straight from the inbox and calls wait_read (one resume
-- per batch of messages) only when the inbox is empty. It is one function for every connection
-- (the connection is the generic for's state), so an idle connection holds no closure for it.
local function wait_read(self)
  if not cwait(self, "r") then yield() end -- wait(self, "r"), one call less per wake-up
end
if core.reader then -- in C: one C call per message
  methods.messages = core.reader(wait_read)
else -- no continuations for C on LuaJIT: the same iterator in Lua
  local function next_message(self)
    while true do
      local msg, kind = crecv(self)
      if msg then return msg, kind end
      if msg == nil then return nil end
      wait_read(self)
    end
  end
  function methods:messages()
    return next_message, self
  end
end

-- true | nil, message, code. Over the high-water mark the caller waits until the queue is
-- back under the low-water mark, so a slow reader slows its writer instead of growing memory.
-- opts.compress = false sends the message uncompressed on a connection that negotiated
-- permessage-deflate (messages under the compression threshold always are).
-- conn:send is C (core.sender: core.send, one C call per message); drain is its rest when
-- the queue is over the high-water mark.
local function drain(self)
  local ok, err, code
  repeat
    wait(self, "w")
    ok, err, code = cdrained(self)
  until ok ~= false
  if ok then return true end
  return nil, err, code
end
if core.sender then
  methods.send = core.sender(drain)
else -- LuaJIT: as core.sender's function does it
  local csend = core.send
  function methods:send(data, kind, opts)
    local ok, err, code = csend(self, data, kind, opts)
    if ok == false then return drain(self) end
    if ok then return true end
    return nil, err, code
  end
end

-- Performs the closing handshake (bounded by the close timeout); safe to call twice.
function methods:close(code, reason)
  cclose(self, code, reason)
  while self.state ~= "closed" do wait(self, "c") end
  return true
end

-- conn:ping([data]) -> true | nil, message, code: sends a ping.
-- conn:ping([data], { wait = true [, timeout = s] }) waits for its pong and returns the round
-- trip in seconds | nil, message, code ("timeout", "closed"...). A pong answers its ping and
-- every earlier one. conn.latency keeps the last round trip, automatic pings' included.
local cping, cpong = core.ping, core.pong
function methods:ping(data, opts)
  if opts == nil or not opts.wait then return cping(self, data) end
  if type(opts) ~= "table" then error("ws: conn:ping options must be a table", 2) end
  local timeout = opts.timeout
  if timeout ~= nil and type(timeout) ~= "number" then error("ws: conn:ping timeout must be a number", 2) end
  local seq, sent, code = cping(self, data, true)
  if not seq then return nil, sent, code end
  local deadline = timeout and now() + timeout
  while true do
    local at, err, ecode = cpong(self, seq)
    if at then return at - sent end
    if at == nil then return nil, err, ecode end
    local left
    if deadline then
      left = deadline - now()
      if left <= 0 then return nil, "timeout", "timeout" end
    end
    wait(self, "p", left)
  end
end

function methods:buffered()
  return core.buffered(self)
end

return M
