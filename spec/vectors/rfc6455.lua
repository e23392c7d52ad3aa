-- RFC 6455 section 5.7 example frames, byte for byte, plus the hex helpers the codec specs
-- share. Written with hex strings because Lua 5.1 has no "\x" escapes.
local V = {}

-- "81 05 48" -> the bytes (spaces are ignored)
function V.hex(s)
  return (s:gsub("%s", ""):gsub("%x%x", function(h) return string.char(tonumber(h, 16)) end))
end

-- bytes -> "81 05 48"
function V.tohex(s)
  return (s:gsub(".", function(c) return string.format("%02X ", c:byte()) end):gsub(" $", ""))
end

-- The masking key every masked example uses.
V.key = V.hex("37 fa 21 3d")

V.vectors = {
  { name = "single-frame unmasked text", role = "client",
    bytes = V.hex("81 05 48 65 6c 6c 6f"),
    events = { { "text", "Hello" } } },
  { name = "single-frame masked text", role = "server",
    bytes = V.hex("81 85 37 fa 21 3d 7f 9f 4d 51 58"),
    events = { { "text", "Hello" } } },
  { name = "fragmented unmasked text", role = "client",
    bytes = V.hex("01 03 48 65 6c") .. V.hex("80 02 6c 6f"),
    events = { { "text", "Hello" } } },
  { name = "unmasked ping", role = "client",
    bytes = V.hex("89 05 48 65 6c 6c 6f"),
    events = { { "ping", "Hello" } } },
  { name = "masked pong", role = "server",
    bytes = V.hex("8a 85 37 fa 21 3d 7f 9f 4d 51 58"),
    events = { { "pong", "Hello" } } },
}

-- 256 bytes and 64 KiB of binary data in a single unmasked frame: only the header is given
-- in the RFC, the payload is ours.
local function payload(n)
  local t = {}
  for i = 0, 255 do t[#t + 1] = string.char(i) end
  local block = table.concat(t)
  return string.rep(block, math.floor(n / 256)) .. block:sub(1, n % 256)
end
V.payload = payload

V.binary_256 = { name = "256 bytes binary", role = "client",
  header = V.hex("82 7E 01 00"), payload = payload(256) }
V.binary_64k = { name = "64 KiB binary", role = "client",
  header = V.hex("82 7F 00 00 00 00 00 01 00 00"), payload = payload(65536) }
for _, v in ipairs { V.binary_256, V.binary_64k } do
  v.bytes = v.header .. v.payload
  v.events = { { "binary", v.payload } }
  V.vectors[#V.vectors + 1] = v
end

return V
