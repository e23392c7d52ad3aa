-- Socket.IO protocol v5 packets: <type>[<attachments>-][<namespace>,][<ack id>][<JSON>].
-- encode builds the text of a packet and the list of its binary attachments; a decoder takes a
-- connection's text and binary messages in turn and returns whole packets, binary attachments
-- put back where their placeholders were. Every failure is `nil, message` with one of the
-- messages in M.errors; nothing else is raised for any input.
local cjson = require "cjson.safe"

local M = {}

M.CONNECT, M.DISCONNECT, M.EVENT, M.ACK, M.CONNECT_ERROR, M.BINARY_EVENT, M.BINARY_ACK = 0, 1, 2, 3, 4, 5, 6

-- The messages a decoder returns (the only ones).
M.errors = {
  type = "invalid packet type",
  attachments = "invalid attachment count",
  too_many = "too many attachments",
  namespace = "invalid namespace",
  id = "invalid ack id",
  payload = "invalid payload",
  unexpected = "unexpected binary attachment",
  placeholder = "invalid attachment placeholder",
  large = "packet too large",
}
local E = M.errors

local json = cjson.new() -- our own instance: its settings do not leak into the application's cjson
json.decode_max_depth(32)
json.encode_max_depth(64)
json.encode_sparse_array(true)
json.decode_invalid_numbers(false)
json.encode_invalid_numbers(false)
local jencode, jdecode, null = json.encode, json.decode, json.null
M.null = null
M.json = json

-- Binary data: Lua strings are bytes, so binary payloads are marked. M.binary(s) makes one;
-- received attachments arrive as such objects (b.data is the bytes).
local Binary = {}
Binary.__index = Binary
Binary.__tostring = function(b) return b.data end
Binary.__len = function(b) return #b.data end
M.Binary = Binary
function M.binary(s)
  if type(s) ~= "string" then error("socketio.binary: string expected", 2) end
  return setmetatable({ data = s }, Binary)
end
local function is_binary(v) return getmetatable(v) == Binary end
M.is_binary = is_binary

-- Does a value hold binary data anywhere (depth-bounded: deeper tables are not looked into,
-- and JSON encoding refuses them anyway)?
local function has_binary(v, depth)
  if type(v) ~= "table" then return false end
  if getmetatable(v) == Binary then return true end
  if depth > 32 then return false end
  for _, x in pairs(v) do
    if type(x) == "table" and has_binary(x, depth + 1) then return true end
  end
  return false
end
M.has_binary = has_binary

-- A copy of v with every Binary replaced by a placeholder, the bytes appended to atts.
local function deconstruct(v, atts, depth)
  if type(v) ~= "table" then return v end
  if getmetatable(v) == Binary then
    atts[#atts + 1] = v.data
    return { _placeholder = true, num = #atts - 1 }
  end
  if depth > 32 then return v end
  local out = {}
  for k, x in pairs(v) do out[k] = deconstruct(x, atts, depth + 1) end
  return out
end

-- list: a Lua array of n values (nil holes allowed: they become JSON null).
local function array(list, n)
  local t = {}
  for i = 1, n do
    local v = list[i]
    if v == nil then v = null end
    t[i] = v
  end
  return t
end
M.array = array

-- Does any element of an array (or its tables) hold binary data?
local function args_binary(data)
  for i = 1, #data do
    local x = data[i]
    if type(x) == "table" and has_binary(x, 1) then return true end
  end
  return false
end
M.args_binary = args_binary

local format = string.format
local TYPES = { [0] = "0", "1", "2", "3", "4", "5", "6" }

-- The text of a packet and its attachments (nil when none):
-- p = { type =, nsp = "/", id = n, data = lua value } (data is encoded as JSON).
-- For EVENT and ACK, binary anywhere in data makes it BINARY_EVENT or BINARY_ACK.
function M.encode(p)
  local t, nsp, id, data = p.type, p.nsp, p.id, p.data
  return M.encode_parts(t, nsp, id, data)
end

function M.encode_parts(t, nsp, id, data)
  local atts
  if t == 3 and id and (nsp == "/" or nsp == nil) and type(data) == "table" then -- an ACK: the common case
    local binary = false
    for i = 1, #data do if type(data[i]) == "table" then binary = true break end end
    if not binary then
      local s, err = jencode(data)
      if not s then error("socketio: cannot encode the payload as JSON: " .. tostring(err), 3) end
      return "3" .. id .. s
    end
  end
  if (t == M.EVENT or t == M.ACK) and type(data) == "table" and args_binary(data) then
    atts = {}
    data = deconstruct(data, atts, 0)
    t = t == M.EVENT and M.BINARY_EVENT or M.BINARY_ACK
  end
  local head = atts and (TYPES[t] .. #atts .. "-") or TYPES[t]
  if nsp and nsp ~= "/" then head = head .. nsp .. "," end
  if id then head = head .. (id % 1 == 0 and format("%d", id) or error("socketio: ack id must be an integer", 3)) end
  if data == nil then return head, atts end
  local s, err = jencode(data)
  if not s then error("socketio: cannot encode the payload as JSON: " .. tostring(err), 3) end
  return head .. s, atts
end

-- Put the attachments back where their placeholders are; false on a bad placeholder.
local function reconstruct(v, atts, depth)
  if type(v) ~= "table" then return v end
  if v._placeholder == true then
    local num = v.num
    if type(num) ~= "number" or num % 1 ~= 0 or num < 0 or num >= #atts then return false end
    num = math.floor(num)
    return setmetatable({ data = atts[num + 1] }, Binary)
  end
  if depth > 32 then return v end
  for k, x in pairs(v) do
    local r = reconstruct(x, atts, depth + 1)
    if r == false then return false end
    v[k] = r
  end
  return v
end

local sbyte, sfind, ssub = string.byte, string.find, string.sub

-- Does the payload suit the packet type (the rules of the protocol's reference parser)?
local function valid_payload(t, data, has)
  if t == M.CONNECT then
    return not has or type(data) == "table"
  elseif t == M.DISCONNECT then
    return not has
  elseif t == M.CONNECT_ERROR then
    return has and (type(data) == "table" or type(data) == "string")
  elseif t == M.EVENT or t == M.BINARY_EVENT then
    return has and type(data) == "table" and type(data[1]) == "string"
  else -- ACK, BINARY_ACK
    return has and type(data) == "table"
  end
end

-- One text message into a packet: p, nil | nil, message. Binary packets come back with
-- p.attachments (the count) and p.data still holding placeholders.
local decode_full
local function decode_text(s, max_attachments)
  -- the common case: an EVENT or ACK of the default namespace, no attachments
  local t, c = sbyte(s, 1, 2)
  if (t == 50 or t == 51) and c and c ~= 47 then
    local pos = 2
    local id
    if c ~= 91 then
      local a, b = sfind(s, "^%d+", 2)
      if not a or b - a > 14 or sbyte(s, b + 1) ~= 91 then return decode_full(s, max_attachments) end
      id = tonumber(ssub(s, a, b))
      pos = b + 1
    elseif t == 51 then
      return nil, E.payload -- an ACK needs its id
    end
    local data = jdecode(ssub(s, pos))
    if type(data) ~= "table" or t == 50 and type(data[1]) ~= "string" then return nil, E.payload end
    return { type = t - 48, nsp = "/", id = id, data = data }
  end
  return decode_full(s, max_attachments)
end

function decode_full(s, max_attachments)
  local t = (sbyte(s, 1) or 0) - 48
  if t < 0 or t > 6 then return nil, E.type end
  local pos, n = 2, #s
  local p = { type = t, nsp = "/" }
  if t == M.BINARY_EVENT or t == M.BINARY_ACK then
    local a, b = sfind(s, "^%d+%-", pos)
    if not a or b - a > 6 then return nil, E.attachments end
    local count = tonumber(ssub(s, a, b - 1))
    if count > max_attachments then return nil, E.too_many end
    p.attachments = count
    pos = b + 1
  end
  if sbyte(s, pos) == 47 then -- "/"
    local comma = sfind(s, ",", pos, true)
    local stop = comma and comma - 1 or n
    local nsp = ssub(s, pos, stop)
    if #nsp > 256 or sfind(nsp, "[%c]") then return nil, E.namespace end
    p.nsp = nsp
    pos = comma and comma + 1 or n + 1
  end
  local a, b = sfind(s, "^%d+", pos)
  if a then
    if b - a > 14 then return nil, E.id end -- up to 15 digits: exact in a double
    p.id = tonumber(ssub(s, a, b))
    pos = b + 1
  end
  local has = pos <= n
  if has then
    -- cjson decodes [] and {} alike: the first byte tells an array from an object
    local first = sbyte(s, pos)
    if t == M.CONNECT and first ~= 123 or t == M.CONNECT_ERROR and first ~= 123 and first ~= 34
      or t ~= M.CONNECT and t ~= M.CONNECT_ERROR and first ~= 91 then
      return nil, E.payload
    end
    local data = jdecode(ssub(s, pos))
    if data == nil then return nil, E.payload end
    p.data = data
  end
  if not valid_payload(t, p.data, has) then return nil, E.payload end
  if (t == M.ACK or t == M.BINARY_ACK) and not p.id then return nil, E.payload end
  return p
end
M.decode_text = decode_text

-- The common packet on its own, read from position off of s (a WebSocket message "4<packet>"
-- is read from 2, with no copy of the packet): an EVENT or ACK of the default namespace without
-- attachments. -> type (2 or 3), id (a number or nil), data, id's digits | nil when s holds
-- another kind of packet (the caller decodes it the full way) | false, message when invalid.
-- ws.core's sio_decode reads the simplest of these (flat arrays of plain strings, integers,
-- booleans and null) in one C call, and returns nothing for anything else.
local smatch = string.match
local ok_core, core = pcall(require, "ws.core")
local sio_decode = ok_core and type(core) == "table" and core.sio_decode or nil
assert(null == nil or type(null) == "userdata") -- sio_decode's null is a NULL light userdata, as cjson's
function M.decode_common(s, off)
  if sio_decode then
    local t, id, data, digits = sio_decode(s, off)
    if t then return t, id, data, digits end
  end
  local t, c = sbyte(s, off, off + 1)
  if t ~= 50 and t ~= 51 or not c then return nil end
  local id, digits, pos
  if c == 91 then -- "["
    if t == 51 then return false, E.payload end -- an ACK needs its id
    pos = off + 1
  elseif c >= 48 and c <= 57 then
    digits, pos = smatch(s, "^(%d+)()%[", off + 1)
    if not digits or #digits > 15 then return nil end
    id = tonumber(digits)
  else
    return nil
  end
  local data = jdecode(ssub(s, pos))
  if type(data) ~= "table" or t == 50 and type(data[1]) ~= "string" then return false, E.payload end
  return t - 48, id, data, digits
end

-- A decoder per connection: d:add(msg, binary) -> packet | false (an attachment is awaited) |
-- nil, message. After an error the decoder is reset.
local Decoder = {}
Decoder.__index = Decoder

function M.decoder(opts)
  opts = opts or {}
  return setmetatable({ max_attachments = opts.max_attachments or 10, pending = nil, atts = nil }, Decoder)
end

function Decoder:add(msg, binary)
  local p = self.pending
  if binary then
    if not p then return nil, E.unexpected end
    local atts = self.atts
    atts[#atts + 1] = msg
    if #atts < p.attachments then return false end
    self.pending, self.atts = nil, nil
    local data = reconstruct(p.data, atts, 0)
    if data == false then return nil, E.placeholder end
    p.data = data
    p.attachments = nil
    return p
  end
  if p then -- a text packet while attachments are awaited
    self.pending, self.atts = nil, nil
    return nil, E.unexpected
  end
  local q, err = decode_text(msg, self.max_attachments)
  if not q then return nil, err end
  if q.attachments then
    if q.attachments == 0 then
      local data = reconstruct(q.data, {}, 0)
      if data == false then return nil, E.placeholder end
      q.attachments = nil
      return q
    end
    self.pending, self.atts = q, {}
    return false
  end
  return q
end

function Decoder:reset()
  self.pending, self.atts = nil, nil
end

return M
