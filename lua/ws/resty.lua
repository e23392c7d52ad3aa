-- WebSocket server and client for OpenResty (nginx + lua-nginx-module) and hosts with the same
-- cosocket API. Every protocol decision is made by ws.codec (the sans-I/O core); this file only
-- moves bytes between the codec and the host's socket, and turns waits into cosocket yields.
--
--   local conn, err = require("ws.resty").accept{ protocols = { "chat" } }  -- in content_by_lua*
--   local conn, err = require("ws.resty").connect("ws://127.0.0.1:8080/", opts)
--   local msg, kind = conn:receive([timeout])      -- nil, message, code on failure
--   conn:send(data [, "text" | "binary"]); conn:ping([data]); conn:close([code [, reason]])
--   for msg, kind in conn:messages() do ... end
local codec = require "ws.codec"
local check = require "ws.options"
local parse_ws_url, origin_policy = require("ws.url").parse, require("ws.url").origin_policy

local type, tostring, tonumber, setmetatable, error = type, tostring, tonumber, setmetatable, error
local pairs, pcall = pairs, pcall
local check_arg = check.arg
local floor, huge = math.floor, math.huge
local concat = table.concat
local byte, find = string.byte, string.find
local ngx = ngx

local M = { _VERSION = "0.1" }

-- Defaults. Times are in seconds, as everywhere in lua-ws.
local DEFAULTS = {
  max_message = 1048576,
  max_frame = nil,           -- nil: max_message (ws.codec's rule)
  max_fragments = nil,       -- nil: max_message / 64 + 1, at least 1024 (ws.codec's rule)
  timeout = nil,             -- receive() with no argument waits this long (nil: for ever)
  send_timeout = 30,         -- a send that cannot finish in this time fails the connection
  close_timeout = 3,         -- how long close() waits for the peer's close frame
  handshake_timeout = 10,    -- client: connect + upgrade
  max_handshake = 16384,     -- client: bytes of the server's response head
  read_size = 65536,         -- bytes asked from the socket per read
}

-- The options and their types (ws.options); values are checked where they are read.
local WRAP_OPTIONS = {
  role = "string",
  max_message = "number",
  max_frame = "number",
  max_fragments = "number",
  timeout = "number",
  send_timeout = "number",
  close_timeout = "number",
  read_size = "number",
  protocol = "string",
  extensions = "string",
  deflate = "table",
  deflate_config = "table",
  initial = "string",
  on_ping = "function",
  on_pong = "function",
}
local HANDSHAKE_OPTIONS = check.extend(WRAP_OPTIONS, {
  protocols = "strings",
  headers = "headers",
  compression = "string",
  window_bits = "number",
  mem_level = "number",
  level = "number",
  threshold = "number",
})
local ACCEPT_OPTIONS = check.extend(HANDSHAKE_OPTIONS, {
  origins = "list|function",
})
local CONNECT_OPTIONS = check.extend(HANDSHAKE_OPTIONS, {
  origin = "string",
  handshake_timeout = "number",
  max_handshake = "number",
  server_name = "string",
  ssl_verify = "boolean",
})
M.ACCEPT_OPTIONS, M.CONNECT_OPTIONS, M.WRAP_OPTIONS = ACCEPT_OPTIONS, CONNECT_OPTIONS, WRAP_OPTIONS

-- The longest wait a cosocket accepts (milliseconds in a signed 32-bit value); longer waits loop.
local MAX_WAIT_MS = 2147483647 - 1

local function opt(opts, name)
  local v = opts and opts[name]
  if v == nil then return DEFAULTS[name] end
  return v
end

-- Seconds, with the host's clock (nginx caches its time: refresh it first).
local function now()
  if ngx then
    ngx.update_time()
    return ngx.now()
  end
  return os.time()
end

local function wait_ms(seconds)
  if seconds == nil or seconds == huge then return MAX_WAIT_MS end
  local ms = floor(seconds * 1000)
  if ms < 1 then return 1 end -- 0 would mean "the nginx default", not "do not wait"
  if ms > MAX_WAIT_MS then return MAX_WAIT_MS end
  return ms
end

-- permessage-deflate (RFC 7692) comes from the codec (codec.deflate_*, c:set_deflate). The
-- codec's deflate config from our options: compression = "shared" (no context takeover:
-- no compressor memory kept between messages) or "dedicated" (per-connection contexts),
-- window_bits, mem_level, level (zlib's 0..9), threshold (shorter messages go uncompressed).
local function deflate_config(opts, mode)
  return { mode = mode, window_bits = opts.window_bits, mem_level = opts.mem_level,
           level = opts.level, threshold = opts.threshold }
end

---------------------------------------------------------------------------------------------
-- The codec calls made for every message. Under LuaJIT they go through the FFI to ws.codec's
-- entry points for it (ws_codec_feed_next, ws_codec_send_output: see lua_codec_conn.c), which
-- compiled code calls for a few instructions where a Lua C function ends the trace; elsewhere,
-- or when the codec found has no such entry points, they are the methods c:feed_next,
-- c:next and c:send_output. Both give the same answers.

local function method_feed_next(c, data) return c:feed_next(data) end
local function method_next(c) return c:next() end
local function method_send_output(c, data, kind, opts) return c:send_output(data, kind, opts) end
local function method_state(c) return c:state() end
local feed_next, next_event, send_output, codec_state = method_feed_next, method_next, method_send_output, method_state
-- accept_plain(c, head): where the FFI has ws_codec_accept_plain, parses and checks the
-- upgrade request and queues the 101 response (no subprotocol, no extension) on c: true, or
-- false (nothing queued) when the request is not one it accepts.
local accept_plain
-- server_codec(max_message, max_frame, max_fragments): where the FFI has
-- ws_codec_server_limits, a server's codec conn with these limits (numbers, or nil for the
-- default), made without the options table codec.new reads; nil for values codec.new refuses.
local server_codec

local function ffi_codec()
  local ok, ffi = pcall(require, "ffi")
  if not ok or not package.searchpath then return nil end
  local path = package.searchpath("ws.codec", package.cpath)
  if not path then return nil end
  if not pcall(ffi.typeof, "ws_codec_event") then
    ok = pcall(ffi.cdef, [[
      typedef struct ws_codec_event { int kind; unsigned code; const char *data; size_t len; } ws_codec_event;
      int ws_codec_next(void *conn, ws_codec_event *ev);
      int ws_codec_feed_next(void *conn, const char *p, size_t n, ws_codec_event *ev);
      const char *ws_codec_send_output(void *conn, int opcode, const char *p, size_t n, size_t *len);
      void ws_codec_output_taken(void *conn);
      const char *ws_codec_error(void *conn);
    ]])
    if not ok then return nil end
  end
  local lib
  ok, lib = pcall(ffi.load, path) -- the file require loaded: the same module instance
  if not ok or not pcall(function() return lib.ws_codec_feed_next and lib.ws_codec_output_taken end) then
    return nil
  end
  return ffi, lib
end

local ffi, lib = ffi_codec()
if ffi then
  local ffi_string, C_next, C_feed_next = ffi.string, lib.ws_codec_next, lib.ws_codec_feed_next
  local C_send_output, C_taken, C_error = lib.ws_codec_send_output, lib.ws_codec_output_taken, lib.ws_codec_error
  local ev = ffi.new("ws_codec_event")
  local outlen = ffi.new("size_t[1]")
  -- entry points a codec built before them lacks: each is used only when it is there
  local function entry(decl, name)
    pcall(ffi.cdef, decl)
    local ok, f = pcall(function() return lib[name] end)
    return ok and f or nil
  end
  local C_accept_plain = entry("int ws_codec_accept_plain(void *conn, const char *head, size_t len);",
    "ws_codec_accept_plain")
  local C_limits = entry("int ws_codec_server_limits(void *conn, double max_message, double max_frame, double max_fragments);",
    "ws_codec_server_limits")
  if C_limits then
    local new = codec.new
    server_codec = function(max_message, max_frame, max_fragments)
      local c = new()
      if C_limits(c, max_message or 0, max_frame or 0, max_fragments or 0) == 0 then return c end
    end
  end
  local C_state = entry("int ws_codec_state(void *conn);", "ws_codec_state")
  if C_state then
    local STATES = { [0] = "connecting", "open", "closing", "closed" }
    codec_state = function(c) return STATES[C_state(c)] end
  end
  if C_accept_plain then
    accept_plain = function(c, head) return C_accept_plain(c, head, #head) == 0 end
  end
  local KINDS = { "text", "binary", "ping", "pong" }
  -- the event in ev, returned as c:next() returns it
  local function event(k)
    if k == 1 or k == 2 or k == 3 or k == 4 then return KINDS[k], ffi_string(ev.data, ev.len) end
    if k == 0 then return nil end
    if k == 5 then return "close", tonumber(ev.code), ffi_string(ev.data, ev.len) end
    if k == 6 then return "error", ffi_string(ev.data, ev.len), tonumber(ev.code) end
    return nil, "input over the buffer limit" -- -1: feed_next's input did not fit
  end
  next_event = function(c) return event(C_next(c, ev)) end
  feed_next = function(c, data) return event(C_feed_next(c, data, #data, ev)) end
  send_output = function(c, data, kind, opts)
    local opcode = kind == "text" and 1 or kind == "binary" and 2
    if not opcode or opts ~= nil then return c:send_output(data, kind, opts) end
    local p = C_send_output(c, opcode, data, #data, outlen)
    if p == nil then return nil, ffi_string(C_error(c)) end
    local out = ffi_string(p, outlen[0])
    C_taken(c)
    return out
  end
end

---------------------------------------------------------------------------------------------
-- The connection

local Conn = {}
Conn.__index = Conn
Conn.__name = "ws.resty.conn"

function Conn:__tostring()
  return "ws.resty.conn (" .. self.role .. ", " .. self.state .. ")"
end

-- Once closed (by the codec, or a failure latched), a connection stays closed.
local function update_state(self)
  if self.state ~= "closed" then self.state = codec_state(self.codec) end
end

-- Latch a failure: every later call returns the same answer. Timeouts are never latched.
local function fail(self, message, code)
  if not self.failure then
    self.failure = { message, code }
    self.state = "closed"
  end
  return nil, self.failure[1], self.failure[2]
end

local function socket_fail(self, what, err)
  if not self.close_code then self.close_code = 1006 end -- no close frame: abnormal closure
  if err == "closed" then
    return fail(self, what .. ": connection closed", "closed")
  end
  return fail(self, what .. ": " .. tostring(err), err == "timeout" and "timeout" or "socket")
end

-- The socket's timeouts. Where the host has settimeouts (send and read apart, as nginx's
-- cosockets do), the send timeout is set once and the read timeout only when it changes;
-- otherwise settimeout is called when the wait differs from the one last set.
local function send_timeout(self)
  if self.split_timeouts then return end
  local ms = self.send_ms
  if self.sock_ms ~= ms then
    self.sock:settimeout(ms)
    self.sock_ms = ms
  end
end

local function read_timeout(self, ms)
  if self.sock_ms ~= ms then
    if self.split_timeouts then
      self.sock:settimeouts(self.send_ms, self.send_ms, ms)
    else
      self.sock:settimeout(ms)
    end
    self.sock_ms = ms
  end
end

-- Write what the codec queued. Only one light thread writes at a time (a cosocket refuses two
-- concurrent sends); a second caller leaves its bytes in the codec's queue, which the writer
-- already in progress drains before it returns, so the order of frames is kept.
-- write_out(self, out) writes bytes already taken out of the codec's queue (c:send_output),
-- and then whatever other callers queued meanwhile. The loop over those is a function of its
-- own, called only when there are some: a loop on the path of every message would keep
-- LuaJIT from compiling the handler's loop around it ("inner loop in root trace").
local function write_queued(self)
  local c, sock = self.codec, self.sock
  while self.more do
    self.more = false
    local out = c:output()
    if out ~= "" then
      if self.sock_ms ~= self.send_ms then send_timeout(self) end
      local ok, err = sock:send(out)
      if not ok then return nil, err end
    end
  end
  return true
end

local function write_out(self, out)
  if out == "" then return true end
  self.writing = true
  self.more = false
  if self.sock_ms ~= self.send_ms then send_timeout(self) end
  local ok, err = self.sock:send(out)
  if ok and self.more then ok, err = write_queued(self) end
  self.writing = false
  if not ok then return socket_fail(self, "send failed", err) end
  return true
end

local function flush(self)
  self.corked = 0
  if self.writing then
    self.more = true -- the writer in progress takes these bytes too
    return true
  end
  return write_out(self, self.codec:output())
end

-- Frames sent while the codec still holds received input (a client with several messages in
-- flight) wait in the codec's queue, so that the answers to one read leave in one write: the
-- next receive() writes them before it waits for the socket, and a light thread started once
-- per batch writes them as soon as this one yields (ngx.sleep(0) resumes after the events
-- nginx has ready), whatever the handler does in between. Up to CORK_LIMIT bytes, and only
-- frames shorter than CORK_FRAME, wait that way.
--
-- Whether input is left is mostly known without asking the codec: self.unread counts the
-- bytes read minus, for each message returned, the smallest frame that carries it (header and
-- payload). A fragmented message, a control frame or a frame with a longer header than needed
-- only leave the count above the truth, never below, so 0 means that the codec holds no byte:
-- receive() then goes to the socket at once, and send() writes at once. Above 0, receive()
-- asks the codec (c:next()); when no event came, c:buffered() sets the count, and since the
-- codec may then have taken part of a frame out of its input already, the message that
-- follows sets it from c:buffered() too (self.short). With permessage-deflate a message is
-- longer than its frame, so the count is not kept (unread stays huge).
local CORK_LIMIT, CORK_FRAME = 65536, 16384
local spawn, sleep = ngx and ngx.thread and ngx.thread.spawn, ngx and ngx.sleep

local function deferred_flush(self)
  pcall(sleep, 0) -- where a light thread cannot sleep, it writes at once
  self.flush_posted = false
  if not self.failure then flush(self) end
end

local function cork(self, n)
  local corked = self.corked + n + 2 -- at least the frame's header
  if corked > CORK_LIMIT or self.unread <= 0 then return flush(self) end
  if not self.exact and not (self.has_buffered and self.codec:buffered() > 0) then return flush(self) end
  if not self.flush_posted then
    self.flush_posted = true
    if not pcall(spawn, deferred_flush, self) then
      self.flush_posted = false
      return flush(self)
    end
  end
  self.corked = corked
  return true
end

-- Read once from the socket into the codec, and take the next event in the same call:
-- true, kind, a, b (kind nil: the codec needs more input). A timeout returns nil, "timeout"
-- (not latched, no byte lost: the codec keeps partial frames).
local function fill(self, deadline)
  local ms = MAX_WAIT_MS
  if deadline then
    local left = deadline - now()
    if left <= 0 then return nil, "timeout" end
    ms = wait_ms(left)
  end
  if self.sock_ms ~= ms then read_timeout(self, ms) end
  local data, err = self.sock:receiveany(self.read_size)
  if not data then
    if err == "timeout" then return nil, "timeout" end
    return socket_fail(self, "receive failed", err)
  end
  local kind, a, b = feed_next(self.codec, data)
  if kind == nil and a then
    -- The codec refuses input over its limit; that is the peer sending too much.
    return fail(self, "protocol error: " .. tostring(a), "toolarge")
  end
  self.unread = self.unread + #data
  return true, kind, a, b
end

-- The connection ends: the client closes its socket. On the server side nginx closes the
-- connection when the handler returns (a raw request socket has no close of its own); where
-- the host offers shutdown("send"), the FIN goes out at once.
local function finish(self)
  update_state(self)
  if self.socket_closed then return end
  self.socket_closed = true
  if self.role == "client" then
    self.sock:close()
  elseif self.sock.shutdown then
    self.sock:shutdown("send")
  end
end

-- Handle one codec event. Returns msg, kind for a message; nil, message, code to end receive();
-- or false to go on reading.
local function on_event(self, kind, a, b)
  if kind == "text" or kind == "binary" then
    return a, kind
  elseif kind == "ping" then
    flush(self) -- the codec queued the pong
    if self.on_ping then self.on_ping(a) end
    return false
  elseif kind == "pong" then
    self.last_pong = a
    if self.on_pong then self.on_pong(a) end
    return false
  elseif kind == "close" then
    self.close_code, self.close_reason = a, b
    flush(self) -- the reply close, when we had not sent ours
    finish(self)
    return fail(self, "closed", "closed")
  elseif kind == "error" then
    self.close_code = b -- the code we close with
    self.error = a
    flush(self) -- the close frame the codec queued
    finish(self)
    return fail(self, "protocol error: " .. tostring(a), b == 1009 and "toolarge" or "protocol")
  end
  error("ws.resty: unknown codec event " .. tostring(kind))
end

-- A message counts its bytes out of self.unread (see cork) as it is returned.
local function took(self, c, a)
  if self.short then
    -- the codec was short of input on the way: part of this message may have left its
    -- input before the count was set, so it is asked
    self.unread, self.short = c:buffered(), false
  else
    local n = #a
    n = self.unread - n - (n < 126 and 2 or n < 65536 and 4 or 10) - self.mask_len
    self.unread = n > 0 and n or 0
  end
  self.reading = false
end

-- The general case of receive(): events other than messages, several reads, corked sends.
local function receive_loop(self, c, deadline, kind, a, b)
  while true do
    if kind == "text" or kind == "binary" then
      -- a message changes nothing in the connection's state
      took(self, c, a)
      return a, kind
    elseif kind then
      local msg, k, code = on_event(self, kind, a, b)
      if msg ~= false then
        self.reading = false
        update_state(self)
        if msg == nil then return nil, k, code end
        return msg, k
      end
      kind = nil
      if self.unread > 0 then kind, a, b = next_event(c) end
    else
      if self.unread > 0 and self.exact then
        self.unread, self.short = c:buffered(), true
      end
      -- the codec's queue holds bytes only when sends were corked: every other path writes
      local ok, err, code = true, nil, nil
      if self.corked > 0 then ok, err, code = flush(self) end
      if ok then
        ok, kind, a, b = fill(self, deadline) -- the read's first event, if any
        if not ok then err, code, kind = kind, a, nil end
      end
      if not ok then
        self.reading = false
        if err == "timeout" and not self.failure then return nil, "timeout", "timeout" end
        return nil, err, code
      end
    end
  end
end

-- msg, kind = conn:receive([timeout]): the next whole message ("text" or "binary"), with
-- pings answered and pongs recorded on the way. nil, message, code when it cannot:
-- "timeout" (not fatal), "closed" (the peer closed: conn.close_code, conn.close_reason),
-- "protocol" / "toolarge" (the peer broke the protocol or a limit; we closed with 1002,
-- 1007 or 1009), "socket".
--
-- The common case has no loop: with nothing held and nothing corked, one read, and when it
-- brought a whole message, that message (a loop on the path of every message would keep
-- LuaJIT from compiling the handler's loop around receive).
function Conn:receive(timeout)
  if timeout ~= nil and type(timeout) ~= "number" then check_arg("conn:receive", "timeout", timeout, "number?", 2) end
  local failure = self.failure
  if failure then return nil, failure[1], failure[2] end
  if self.reading then error("ws.resty: receive() is already waiting in another thread", 2) end
  if timeout == nil then timeout = self.timeout end
  local deadline = timeout and now() + timeout or nil
  local c = self.codec
  self.reading = true
  local kind, a, b
  if self.unread > 0 then
    kind, a, b = next_event(c)
  elseif self.corked == 0 then
    local ok
    ok, kind, a, b = fill(self, deadline) -- the read's first event, if any
    if not ok then
      self.reading = false
      if kind == "timeout" and not self.failure then return nil, "timeout", "timeout" end
      return nil, kind, a
    end
  end
  if kind == "text" or kind == "binary" then
    took(self, c, a)
    return a, kind
  end
  return receive_loop(self, c, deadline, kind, a, b)
end

-- for msg, kind in conn:messages() do ... end: ends when the connection ends; why it ended is
-- then in conn.close_code / conn.close_reason (peer's close) or conn.error.
-- A stateless iterator (no closure made per connection: LuaJIT compiles no function that
-- makes one).
local function next_message(self)
  local msg, kind, code = self:receive(self.timeout)
  if msg == nil and code ~= "closed" and not self.error then self.error = kind end
  return msg, kind
end
function Conn:messages()
  return next_message, self
end

-- conn:send(data [, kind [, opts]]): kind "text" (default) or "binary"; opts.compress = false
-- sends this message uncompressed. true, or nil, message, code.
function Conn:send(data, kind, opts)
  if type(data) ~= "string" then error("ws.resty: send() expects a string", 2) end
  if kind ~= nil and type(kind) ~= "string" then check_arg("conn:send", "kind", kind, "string?", 2) end
  if opts ~= nil and type(opts) ~= "table" then check_arg("conn:send", "opts", opts, "table?", 2) end
  local failure = self.failure
  if failure then return nil, failure[1], failure[2] end
  local n = #data
  local corks = self.unread > 0 and n < CORK_FRAME and self.can_cork
  kind = kind or "text"
  if not corks and not self.writing and opts == nil and (kind == "text" or kind == "binary") then
    -- written at once: the frame and anything corked before it, out of the codec in one call
    local out, err = send_output(self.codec, data, kind)
    if not out then return nil, err, "state" end
    self.corked = 0
    return write_out(self, out)
  end
  local ok, err = self.codec:send(data, kind, opts)
  if not ok then return nil, err, "state" end
  if corks then return cork(self, n) end
  return flush(self)
end

function Conn:ping(data)
  check.arg("conn:ping", "data", data, "string?", 2)
  if self.failure then return nil, self.failure[1], self.failure[2] end
  local ok, err = self.codec:ping(data)
  if not ok then return nil, err, "state" end
  return flush(self)
end

function Conn:pong(data)
  check.arg("conn:pong", "data", data, "string?", 2)
  if self.failure then return nil, self.failure[1], self.failure[2] end
  local ok, err = self.codec:pong(data)
  if not ok then return nil, err, "state" end
  return flush(self)
end

-- conn:close([code [, reason]]): sends our close frame and waits (close_timeout) for the
-- peer's. Idempotent. When another light thread is inside receive(), that thread sees the
-- peer's answer and ends; close() then returns once the frame is sent.
function Conn:close(code, reason)
  if code ~= nil and (type(code) ~= "number" or code ~= code) then check_arg("conn:close", "code", code, "number?", 2) end
  if reason ~= nil and type(reason) ~= "string" then check_arg("conn:close", "reason", reason, "string?", 2) end
  if self.closed_by_us or self.failure then
    finish(self)
    return true
  end
  self.closed_by_us = true
  local c = self.codec
  local st = codec_state(c)
  if st == "open" then
    local ok, err = c:close(code or 1000, reason)
    if not ok then
      self.closed_by_us = false
      return nil, err, "state"
    end
  end
  local ok, err, ecode = flush(self)
  if not ok then finish(self) return nil, err, ecode end
  if not self.reading then
    -- Drain until the peer's close frame arrives, bounded in time; messages still in
    -- flight are dropped, as the closing handshake allows.
    local deadline = now() + (self.close_timeout or DEFAULTS.close_timeout)
    while codec_state(c) ~= "closed" and not self.failure do
      local kind, a, b = c:next()
      if not kind then
        local ok
        ok, kind, a, b = fill(self, deadline) -- the read's first event, if any
        if not ok then break end
      end
      if kind == "close" or kind == "error" then on_event(self, kind, a, b) end
    end
    if not self.failure then fail(self, "closed", "closed") end
    finish(self)
  end
  update_state(self)
  return true
end

-- The codec conn for the limits in opts, with role "server" or "client". The options table
-- codec.new reads is kept per role while the limits stay the same, so that a server accepting
-- connections with the same options does not build one for each.
local codec_confs = {}
local function new_codec(opts, role)
  local max_message, max_frame, max_fragments = opt(opts, "max_message"), opts.max_frame, opts.max_fragments
  -- 0 is "not given" to server_codec, a value codec.new refuses: its own error for it
  if server_codec and role == "server" and max_message ~= 0 and max_frame ~= 0 and max_fragments ~= 0 then
    local c = server_codec(max_message, max_frame, max_fragments)
    if c then return c end
  end
  local conf = codec_confs[role]
  if not conf or conf.max_message ~= max_message or conf.max_frame ~= max_frame
      or conf.max_fragments ~= max_fragments then
    conf = { role = role, max_message = max_message, max_frame = max_frame,
             max_fragments = max_fragments, auto_pong = true }
    codec_confs[role] = conf
  end
  return codec.new(conf)
end

-- The connection on sock, with the codec conn c (opts as wrap takes them, checked already;
-- the negotiated protocol, extensions and deflate parameters given apart).
local function new_conn(sock, c, opts, role, protocol, extensions, deflate, dconfig)
  if deflate then c:set_deflate(deflate, dconfig) end
  local has_buffered = type(c.buffered) == "function"
  local send_timeout = opt(opts, "send_timeout")
  local self = setmetatable({
    sock = sock,
    codec = c,
    role = role,
    state = "open",         -- a new codec conn is open (update_state follows it from here)
    protocol = protocol,
    extensions = extensions,
    timeout = opt(opts, "timeout"),
    send_timeout = send_timeout,
    close_timeout = opt(opts, "close_timeout"),
    read_size = opt(opts, "read_size"),
    on_ping = opts.on_ping,
    on_pong = opts.on_pong,
    corked = 0,             -- bytes of frames waiting in the codec's queue (see cork)
    can_cork = spawn ~= nil,
    -- bytes read that may hold frames (see cork); kept exactly only without compression and
    -- with a codec that tells how much input it holds
    has_buffered = has_buffered,
    exact = not deflate and has_buffered,
    unread = (deflate or not has_buffered) and huge or 0,
    mask_len = role == "server" and 4 or 0, -- a client's frames carry a masking key
    split_timeouts = type(sock.settimeouts) == "function",
    send_ms = wait_ms(send_timeout),
  }, Conn)
  if self.split_timeouts then
    sock:settimeouts(self.send_ms, self.send_ms, MAX_WAIT_MS)
    self.sock_ms = MAX_WAIT_MS
  end
  return self
end

-- Bytes read past the handshake go to the codec first.
local function feed_initial(self, initial)
  if initial and #initial > 0 then
    local ok, err = self.codec:feed(initial)
    if not ok then fail(self, "protocol error: " .. tostring(err), "toolarge") end
    self.unread = self.unread + #initial
  end
end

-- Wraps a socket on which the handshake is done. `sock` needs receiveany, send, settimeout
-- (and close for a client): an ngx.req.socket(true), an ngx.socket.tcp(), or the like.
-- opts: role ("server" | "client"), the limits, timeout, send_timeout, close_timeout,
-- protocol, extensions, deflate and deflate_config (the parameters codec.deflate_negotiate or
-- codec.deflate_accept agreed, and the config they were agreed with), initial (bytes already
-- read past the handshake).
function M.wrap(sock, opts)
  check.options("ws.resty.wrap", opts, WRAP_OPTIONS, 2)
  opts = opts or {}
  local role = opts.role or "server"
  local self = new_conn(sock, new_codec(opts, role), opts, role, opts.protocol, opts.extensions,
    opts.deflate, opts.deflate_config)
  feed_initial(self, opts.initial)
  return self
end

---------------------------------------------------------------------------------------------
-- Server: inside content_by_lua*, on an HTTP/1.1 request

-- An answer through nginx itself (so error_page, logs and keep-alive behave as usual).
local function refuse(status, reason, headers)
  ngx.status = status
  if headers then
    for k, v in pairs(headers) do ngx.header[k] = v end
  end
  ngx.header["Content-Type"] = "text/plain"
  ngx.print(reason, "\n")
  ngx.eof()
  return nil, "handshake failed: " .. reason, "handshake"
end

-- The request head as the client sent it, for the codec's parser. ngx.req.raw_header() gives
-- back nginx's buffer, where nginx wrote a NUL after each header value; when white space
-- followed the value, that NUL took the place of its first byte, and raw_header turns such a
-- NUL into a line feed. Put the space back, so that the codec sees the optional white space
-- the client sent (RFC 7230 3.2.4) instead of a broken line. A valid head never has a bare LF
-- followed by optional white space, CRLF and more of the head (that would be an empty line
-- inside the head, or obsolete folding), so nothing a client sent is changed.
-- Such a NUL leaves a line feed with no carriage return before it, which is rare: the head is
-- scanned line by line for one first (a plain find), and the pattern runs only then.
local function request_head()
  local ok, head = pcall(ngx.req.raw_header)
  if not ok or type(head) ~= "string" then return nil end
  local pos = find(head, "\n", 1, true)
  while pos do
    if pos == 1 or byte(head, pos - 1) ~= 13 then
      return (head:gsub("([^\r\n])\n([ \t]*\r\n)(.)", "%1 %2%3"))
    end
    pos = find(head, "\n", pos + 1, true)
  end
  return head
end


-- conn.request: the upgrade request as codec.parse_request gives it. Where accept took the
-- plain path (accept_plain), it is made from the head on first use: until then the table holds
-- only the head, under a key of its own, and a metatable that fills it in.
-- pairs() fills it too where the VM honours __pairs (Lua 5.2+); LuaJIT's pairs does not, so
-- there a field is read first (docs/openresty.md).
local HEAD = {}
local LazyRequest = {}
local function fill_request(req)
  local head = rawget(req, HEAD)
  if head == nil then return end
  req[HEAD] = nil
  setmetatable(req, nil)
  local parsed = codec.parse_request(head, #head + 1)
  if parsed then
    for name, v in pairs(parsed) do req[name] = v end
  end
end
LazyRequest.__index = function(req, k)
  fill_request(req)
  return rawget(req, k)
end
LazyRequest.__pairs = function(req)
  fill_request(req)
  return next, req, nil
end

-- Writes the 101 response on the new connection's socket (with its send timeout).
local function send_response(conn, response)
  send_timeout(conn)
  local ok, err = conn.sock:send(response)
  if not ok then
    return nil, "handshake failed: send: " .. tostring(err), "handshake"
  end
  return conn
end

-- Whether the origin policy (a list or a function) lets req through. Apart from accept, so
-- that accept makes no closure: LuaJIT compiles no function that makes one, nor its returns.
local function origin_allowed(origins, req)
  return origin_policy(origins, "ws.resty.accept", 3)(req.origin, nil, function() return req end)
end

-- conn = resty.accept([opts]): validates the upgrade request (with the codec's own parser, on
-- the request head nginx received), answers 101 with the chosen subprotocol and extensions,
-- and returns the connection. On a bad request it answers (400, 403, 426) and returns
-- nil, message, "handshake". opts: protocols (the server's list, in order of preference),
-- origins (a list or function(origin) -> boolean), compression ("off" default | "shared" |
-- "dedicated"), headers (extra response headers), and
-- everything wrap() takes.
function M.accept(opts)
  check.options("ws.resty.accept", opts, ACCEPT_OPTIONS, 2)
  opts = opts or {}
  local head = request_head()
  local mode = opts.compression or "off"
  if head and accept_plain and mode == "off" and not (opts.protocols or opts.origins or opts.headers) then
    -- Nothing in opts changes the answer: the codec checks the request and writes the 101 in
    -- one call, with no Lua table made; any request it does not accept takes the path below,
    -- which says why.
    local c = new_codec(opts, "server")
    if accept_plain(c, head) then
      local sock, err = ngx.req.socket(true)
      if not sock then
        return nil, "handshake failed: no raw socket: " .. tostring(err), "handshake"
      end
      local conn = new_conn(sock, c, opts, "server")
      conn.request = setmetatable({ [HEAD] = head }, LazyRequest)
      return send_response(conn, c:output())
    end
  end
  if not head then
    return refuse(400, "a WebSocket upgrade needs HTTP/1.1")
  end
  local req, reason, status = codec.parse_request(head, #head + 1)
  if not req then
    return refuse(status or 400, reason == "again" and "incomplete request head" or reason)
  end
  if not req.upgrade then
    return refuse(426, "this resource speaks WebSocket only",
      { ["Upgrade"] = "websocket", ["Connection"] = "Upgrade", ["Sec-WebSocket-Version"] = "13" })
  end
  if req.status then
    return refuse(req.status, req.error or "bad upgrade request",
      req.status == 426 and { ["Sec-WebSocket-Version"] = "13" } or nil)
  end
  if opts.origins and not origin_allowed(opts.origins, req) then
    return refuse(403, "origin not allowed")
  end

  local protocol = opts.protocols and codec.choose_protocol(req, opts.protocols) or nil
  local extensions, deflate
  local dconfig = mode ~= "off" and deflate_config(opts, mode) or nil
  if dconfig and req.extensions then
    local answer, params = codec.deflate_negotiate(req.extensions, dconfig)
    if answer == nil then
      return refuse(400, tostring(params)) -- a malformed Sec-WebSocket-Extensions header
    end
    if answer then extensions, deflate = answer, params end -- false: declined, no compression
  end

  local sock, err = ngx.req.socket(true)
  if not sock then
    return nil, "handshake failed: no raw socket: " .. tostring(err), "handshake"
  end
  local response = codec.accept_response(req, { protocol = protocol, extensions = extensions,
    headers = opts.headers })
  local conn = new_conn(sock, new_codec(opts, "server"), opts, "server", protocol, extensions, deflate, dconfig)
  conn.request = req
  return send_response(conn, response)
end

---------------------------------------------------------------------------------------------
-- Client: ngx.socket.tcp()

-- ws.url's parser; a scheme other than ws or wss keeps the message resty callers know.
local function parse_url(url)
  local u, err, what = parse_ws_url(url)
  if not u and (what == "scheme" or what == "url") then return nil, "bad url (ws:// or wss:// expected): " .. url end
  return u, err
end

-- conn = resty.connect(url [, opts]): opens ws:// or wss:// with a cosocket. opts: protocols,
-- origin, headers, compression ("off" | "shared" | "dedicated"), handshake_timeout,
-- server_name and ssl_verify (wss), pool options are not used (a WebSocket is never pooled),
-- and everything wrap() takes. nil, message, code ("handshake", "timeout", "socket").
function M.connect(url, opts)
  if type(url) ~= "string" then error("ws.resty.connect: URL string expected", 2) end
  check.options("ws.resty.connect", opts, CONNECT_OPTIONS, 2)
  opts = opts or {}
  local u, uerr = parse_url(url)
  if not u then return nil, uerr, "handshake" end
  local deadline = now() + opt(opts, "handshake_timeout")
  local sock = ngx.socket.tcp()
  local function bail(message, code)
    sock:close()
    return nil, message, code or "handshake"
  end
  sock:settimeout(wait_ms(deadline - now()))
  local ok, err = sock:connect(u.host, u.port)
  if not ok then
    return nil, "connect failed: " .. tostring(err), err == "timeout" and "timeout" or "socket"
  end
  if u.scheme == "wss" then
    ok, err = sock:sslhandshake(nil, opts.server_name or u.host, opts.ssl_verify ~= false)
    if not ok then return bail("tls handshake failed: " .. tostring(err), "tls") end
  end

  local offer
  local mode = opts.compression or "off"
  local dconfig = mode ~= "off" and deflate_config(opts, mode) or nil
  if dconfig then offer = codec.deflate_offer(dconfig) end
  local request, key = codec.client_request{ host = u.host_header, path = u.target,
    protocols = opts.protocols, extensions = offer, origin = opts.origin, headers = opts.headers }
  ok, err = sock:send(request)
  if not ok then return bail("send failed: " .. tostring(err), "socket") end

  local parts, have = {}, 0
  local max = opt(opts, "max_handshake")
  while true do
    local left = deadline - now()
    if left <= 0 then return bail("handshake timed out", "timeout") end
    sock:settimeout(wait_ms(left))
    local data, rerr = sock:receiveany(max - have)
    if not data then
      if rerr == "timeout" then return bail("handshake timed out", "timeout") end
      return bail("handshake failed: " .. tostring(rerr), "handshake")
    end
    parts[#parts + 1] = data
    have = have + #data
    local buf = concat(parts)
    parts = { buf }
    local resp, consumed = codec.parse_response(buf, key, { protocols = opts.protocols,
      extensions = offer })
    if resp then
      local deflate
      if resp.extensions and offer then
        local params, derr = codec.deflate_accept(resp.extensions, dconfig, offer)
        if params == nil then return bail("handshake failed: " .. tostring(derr)) end
        deflate = params or nil -- false: the server declined compression
      end
      local conn = new_conn(sock, new_codec(opts, "client"), opts, "client", resp.protocol,
        resp.extensions, deflate, dconfig)
      feed_initial(conn, buf:sub(consumed + 1))
      conn.response = resp
      return conn
    elseif consumed ~= "again" then
      return bail("handshake failed: " .. tostring(consumed))
    elseif have >= max then
      return bail("handshake failed: response head over " .. max .. " bytes")
    end
  end
end

M.parse_url = parse_url
M.Conn = Conn
M.ffi = ffi ~= nil -- whether the per-message codec calls go through LuaJIT's FFI

return M
