-- The methods of a connection (server side now, client side later): the waiting wrappers
-- around the non-blocking primitives of ws.core. C never blocks: a primitive answers at once,
-- and when it would block the wrapper waits on the loop (yielding the running task, or on the
-- main thread running the loop) and tries again.
local core = require "ws.core"
local check = require "ws.options"

local cwait, yield, now, pcall, error = core.wait, coroutine.yield, core.now, pcall, error
local check_arg = check.arg
local crecv, cdrained, cclose, cfragment, cabort = core.recv, core.drained, core.close, core.send_fragment, core.abort
local type = type

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

-- A method called with a dot (conn.receive()) gets no connection: said at the caller's line.
local function check_self(self, name)
  if type(self) ~= "userdata" then
    error(("conn:%s: no connection (call it as conn:%s(...))"):format(name, name), 3)
  end
end

-- msg, kind | nil, message, code ("timeout", "closed", "protocol", "toolarge", errno names).
-- A timeout loses nothing: the next receive gets the message that arrives later.
function methods:receive(timeout)
  check_self(self, "receive")
  if timeout ~= nil then check_arg("conn:receive", "timeout", timeout, "number", 2) end
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
else -- LuaJIT: as core.sender's function does it, with its argument errors at the caller's line
  local csend, type = core.send, type
  local function bad(n, why) error(("bad argument #%d to 'send' (%s)"):format(n, why), 3) end
  function methods:send(data, kind, opts)
    local t = type(data)
    if t ~= "string" and t ~= "number" then bad(1, "string expected, got " .. t) end
    if kind ~= nil and kind ~= "text" and kind ~= "binary" then bad(2, '"text" or "binary" expected') end
    if opts ~= nil and type(opts) ~= "table" then bad(3, "options table expected") end
    local ok, err, code = csend(self, data, kind, opts)
    if ok == false then return drain(self) end
    if ok then return true end
    return nil, err, code
  end
end

-- Performs the closing handshake (bounded by the close timeout); safe to call twice. The
-- values (a valid close code, a reason of 123 bytes at most) are checked in C, and reported
-- at the caller's line.
function methods:close(code, reason)
  check_self(self, "close")
  check_arg("conn:close", "code", code, "number?", 2)
  check_arg("conn:close", "reason", reason, "string?", 2)
  local ok, err = pcall(cclose, self, code, reason)
  if not ok then error("conn:close: " .. (tostring(err):match("%((.*)%)$") or tostring(err)), 2) end
  while self.state ~= "closed" do wait(self, "c") end
  return true
end

-- conn:ping([data]) -> true | nil, message, code: sends a ping.
-- conn:ping([data], { wait = true [, timeout = s] }) waits for its pong and returns the round
-- trip in seconds | nil, message, code ("timeout", "closed"...). A pong answers its ping and
-- every earlier one. conn.latency keeps the last round trip, automatic pings' included.
local cping, cpong = core.ping, core.pong
function methods:ping(data, opts)
  if data ~= nil then check_arg("conn:ping", "data", data, "string", 2) end
  if opts == nil then return cping(self, data) end
  check.arg("conn:ping", "opts", opts, "table", 2)
  if not opts.wait then return cping(self, data) end
  local timeout = opts.timeout
  check.arg("conn:ping", "timeout", timeout, "number?", 2)
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

methods.buffered = core.buffered -- a C function: its argument errors name the caller's line

-- One fragment of a message sent in pieces, for a payload too large to hold whole:
--   conn:send_fragment(chunk, "binary")          -- the first names the kind ("text" default)
--   conn:send_fragment(chunk)                    -- continuation frames
--   conn:send_fragment(last, nil, true)          -- fin: the message ends
-- true | nil, message, code; waits under backpressure as conn:send does. Pings, pongs and the
-- close may go out between fragments; another data message may not: conn:send meanwhile
-- returns nil, message, "busy", and a publish or broadcast skips this connection (counted in
-- conn.dropped). Fragments are never compressed.
function methods:send_fragment(data, kind, fin)
  check_self(self, "send_fragment")
  check_arg("conn:send_fragment", "data", data, "string", 2)
  if kind ~= nil and kind ~= "text" and kind ~= "binary" then
    error('conn:send_fragment: kind must be "text" or "binary"', 2)
  end
  local ok, r, err, code = pcall(cfragment, self, data, kind, fin)
  if not ok then error("conn:send_fragment: " .. (tostring(r):match("%((.*)%)$") or tostring(r)), 2) end
  if r == false then return drain(self) end
  if r then return true end
  return nil, err, code
end

-- Drops the connection at once, without the closing handshake (what is queued is lost; the
-- peer sees the TCP connection end, close code 1006 on both sides). Safe to call twice.
function methods:terminate()
  check_self(self, "terminate")
  cabort(self, "terminated")
  return true
end


return M
