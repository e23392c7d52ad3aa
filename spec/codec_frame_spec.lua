-- ws.codec frame helpers: header parsing, frame building and masking, byte for byte
-- against RFC 6455 section 5.
local codec = require "ws.codec"
local V = require "vectors.rfc6455"
local hex, tohex = V.hex, V.tohex

-- XOR of two bytes without bit operators (Lua 5.1 has none).
local function bxor8(a, b)
  local r, bit = 0, 1
  for _ = 1, 8 do
    local x, y = a % 2, b % 2
    if x ~= y then r = r + bit end
    a, b, bit = (a - x) / 2, (b - y) / 2, bit * 2
  end
  return r
end

local function ref_mask(s, key, phase)
  phase = phase or 0
  local out = {}
  for i = 1, #s do
    out[i] = string.char(bxor8(s:byte(i), key:byte((phase + i - 1) % 4 + 1)))
  end
  return table.concat(out)
end

describe("codec.parse_frame_header", function()
  it("reads a 7-bit length, FIN, opcode and no mask", function()
    local h = assert(codec.parse_frame_header(hex("81 05 48 65 6c 6c 6f")))
    assert.same({ fin = true, rsv = 0, opcode = 1, masked = false, length = 5, header_length = 2 }, h)
  end)

  it("reads the mask key", function()
    local h = assert(codec.parse_frame_header(hex("81 85 37 fa 21 3d 7f")))
    assert.equal(true, h.masked)
    assert.equal(V.key, h.mask)
    assert.equal(6, h.header_length)
    assert.equal(5, h.length)
  end)

  it("reads 16-bit and 64-bit lengths", function()
    local h = assert(codec.parse_frame_header(hex("82 7E 01 00")))
    assert.equal(256, h.length); assert.equal(4, h.header_length); assert.equal(2, h.opcode)
    h = assert(codec.parse_frame_header(hex("82 7F 00 00 00 00 00 01 00 00")))
    assert.equal(65536, h.length); assert.equal(10, h.header_length)
    h = assert(codec.parse_frame_header(hex("82 FF 00 00 00 00 00 01 00 00 01 02 03 04")))
    assert.equal(65536, h.length); assert.equal(14, h.header_length); assert.equal(hex("01 02 03 04"), h.mask)
    h = assert(codec.parse_frame_header(hex("82 7F 00 1F FF FF FF FF FF FF")))
    assert.equal(2^53 - 1, h.length)
  end)

  it("accepts non-minimal length encodings, as the RFC lets decoders", function()
    local h = assert(codec.parse_frame_header(hex("81 7E 00 05")))
    assert.equal(5, h.length)
    h = assert(codec.parse_frame_header(hex("81 7F 00 00 00 00 00 00 00 05")))
    assert.equal(5, h.length)
  end)

  it("reads FIN clear and each RSV bit", function()
    local h = assert(codec.parse_frame_header(hex("01 00")))
    assert.equal(false, h.fin)
    assert.equal(4, assert(codec.parse_frame_header(hex("C1 00"))).rsv)
    assert.equal(2, assert(codec.parse_frame_header(hex("A1 00"))).rsv)
    assert.equal(1, assert(codec.parse_frame_header(hex("91 00"))).rsv)
    assert.equal(15, assert(codec.parse_frame_header(hex("8F 00"))).opcode)
  end)

  it("answers again for every proper prefix of a header", function()
    for _, whole in ipairs { hex("81 85 37 fa 21 3d"), hex("82 7E 01 00"),
                             hex("82 FF 00 00 00 00 00 01 00 00 01 02 03 04") } do
      for i = 0, #whole - 1 do
        local h, err = codec.parse_frame_header(whole:sub(1, i))
        assert.is_nil(h)
        assert.equal("again", err)
      end
      assert.is_table(codec.parse_frame_header(whole))
    end
  end)

  it("rejects a 64-bit length with the top bit set as soon as that byte is there", function()
    local h, err = codec.parse_frame_header(hex("82 7F 80"))
    assert.is_nil(h)
    assert.equal("frame length has the top bit set", err)
    assert.same({ nil, "frame length has the top bit set" },
      { codec.parse_frame_header(hex("82 7F 80 00 00 00 00 00 00 00")) })
  end)

  it("raises on a non-string argument", function()
    assert.has_error(function() codec.parse_frame_header({}) end)
  end)
end)

describe("codec.frame", function()
  it("builds the RFC 6455 5.7 examples byte for byte", function()
    assert.equal("81 05 48 65 6C 6C 6F", tohex(codec.frame("text", "Hello")))
    assert.equal("81 85 37 FA 21 3D 7F 9F 4D 51 58",
      tohex(codec.frame("text", "Hello", { mask = V.key })))
    assert.equal("01 03 48 65 6C", tohex(codec.frame("text", "Hel", { fin = false })))
    assert.equal("80 02 6C 6F", tohex(codec.frame("continuation", "lo")))
    assert.equal("89 05 48 65 6C 6C 6F", tohex(codec.frame("ping", "Hello")))
    assert.equal("8A 85 37 FA 21 3D 7F 9F 4D 51 58",
      tohex(codec.frame("pong", "Hello", { mask = V.key })))
    assert.equal(V.binary_256.bytes, codec.frame("binary", V.binary_256.payload))
    assert.equal(V.binary_64k.bytes, codec.frame("binary", V.binary_64k.payload))
  end)

  it("picks the shortest length encoding at each boundary", function()
    local cases = { { 0, 2 }, { 125, 2 }, { 126, 4 }, { 65535, 4 }, { 65536, 10 } }
    for _, case in ipairs(cases) do
      local n, hl = case[1], case[2]
      local f = codec.frame("binary", string.rep("a", n))
      assert.equal(hl + n, #f)
      local h = assert(codec.parse_frame_header(f))
      assert.equal(n, h.length)
      assert.equal(hl, h.header_length)
    end
  end)

  it("builds close, RSV bits and raw opcodes", function()
    assert.equal("88 02 03 E8", tohex(codec.frame("close", hex("03 E8"))))
    assert.equal("88 00", tohex(codec.frame("close")))
    assert.equal("C1 00", tohex(codec.frame("text", "", { rsv = 4 })))
    assert.equal("83 00", tohex(codec.frame(3, "")))
  end)

  it("masks long payloads the same as a byte-at-a-time reference", function()
    local key = hex("A1 B2 C3 D4")
    local data = V.payload(20000)
    local f = codec.frame("binary", data, { mask = key })
    local h = assert(codec.parse_frame_header(f))
    assert.equal(ref_mask(data, key), f:sub(h.header_length + 1))
  end)

  it("raises on programmer errors", function()
    assert.has_error(function() codec.frame("bogus", "") end)
    assert.has_error(function() codec.frame(16, "") end)
    assert.has_error(function() codec.frame("text", "", { mask = "abc" }) end)
    assert.has_error(function() codec.frame("text", "", { rsv = 8 }) end)
  end)
end)

describe("codec.mask", function()
  local key = hex("37 fa 21 3d")

  it("masks the RFC example", function()
    local m, phase = codec.mask("Hello", key)
    assert.equal("7F 9F 4D 51 58", tohex(m))
    assert.equal(1, phase)
    assert.equal("Hello", (codec.mask(m, key)))
  end)

  it("agrees with a reference for every length 0..80 and every phase", function()
    local data = V.payload(80)
    for phase = 0, 3 do
      for n = 0, 80 do
        local s = data:sub(1, n)
        local m, next_phase = codec.mask(s, key, phase)
        assert.equal(ref_mask(s, key, phase), m)
        assert.equal((phase + n) % 4, next_phase)
      end
    end
  end)

  it("masks in pieces split anywhere the same as at once", function()
    local data = V.payload(300)
    local whole = codec.mask(data, key)
    for cut = 0, #data do
      local a, phase = codec.mask(data:sub(1, cut), key, 0)
      local b = codec.mask(data:sub(cut + 1), key, phase)
      assert.equal(whole, a .. b)
    end
  end)

  it("raises on a bad key or phase", function()
    assert.has_error(function() codec.mask("x", "abc") end)
    assert.has_error(function() codec.mask("x", key, 4) end)
    assert.has_error(function() codec.mask(nil, key) end)
  end)
end)
