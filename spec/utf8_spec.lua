-- UTF-8 validation: codec.utf8_valid on whole strings, and the incremental validator as a
-- connection uses it (text checked as it arrives, failing at the first invalid byte, with
-- its state carried across reads and fragments).
local codec = require "ws.codec"
local V = require "vectors.rfc6455"
local hex = V.hex

-- A plain reference decoder (RFC 3629), written for clarity rather than speed.
local function ref_valid(s)
  local i, n = 1, #s
  while i <= n do
    local c = s:byte(i)
    local need, cp, min
    if c < 0x80 then need, cp, min = 0, c, 0
    elseif c >= 0xC2 and c <= 0xDF then need, cp, min = 1, c - 0xC0, 0x80
    elseif c >= 0xE0 and c <= 0xEF then need, cp, min = 2, c - 0xE0, 0x800
    elseif c >= 0xF0 and c <= 0xF4 then need, cp, min = 3, c - 0xF0, 0x10000
    else return false end
    if i + need > n then return false end
    for j = 1, need do
      local d = s:byte(i + j)
      if d < 0x80 or d > 0xBF then return false end
      cp = cp * 64 + (d - 0x80)
    end
    if cp < min or cp > 0x10FFFF or (cp >= 0xD800 and cp <= 0xDFFF) then return false end
    i = i + need + 1
  end
  return true
end

-- Can s still be completed into valid UTF-8? (Only the first continuation byte after a
-- lead is restricted, so a few candidate endings settle it.)
local function ref_prefix_ok(s)
  if ref_valid(s) then return true end
  for _, second in ipairs { 0x80, 0x90, 0xA0, 0xBF } do
    for missing = 1, 3 do
      local tail = string.char(second) .. string.rep("\128", missing - 1)
      if ref_valid(s .. tail) then return true end
    end
  end
  return false
end

local function cp_to_utf8(cp)
  if cp < 0x80 then return string.char(cp) end
  if cp < 0x800 then
    return string.char(0xC0 + math.floor(cp / 64), 0x80 + cp % 64)
  end
  if cp < 0x10000 then
    return string.char(0xE0 + math.floor(cp / 4096), 0x80 + math.floor(cp / 64) % 64, 0x80 + cp % 64)
  end
  return string.char(0xF0 + math.floor(cp / 262144), 0x80 + math.floor(cp / 4096) % 64,
    0x80 + math.floor(cp / 64) % 64, 0x80 + cp % 64)
end

local VALID = {
  "", "hello", "\0", string.rep("a", 100),
  hex("C2 80"), hex("DF BF"),                     -- U+0080, U+07FF
  hex("E0 A0 80"), hex("ED 9F BF"),               -- U+0800, U+D7FF
  hex("EE 80 80"), hex("EF BF BF"),               -- U+E000, U+FFFF
  hex("F0 90 80 80"), hex("F4 8F BF BF"),         -- U+10000, U+10FFFF
  hex("CE BA E1 BD B9 CF 83 CE BC CE B5"),        -- "kosme" in Greek (Autobahn 6.2)
  hex("EF BB BF") .. "BOM is fine",
}

local INVALID = {
  { "lone continuation", hex("80") }, { "lone continuation BF", hex("BF") },
  { "overlong 2-byte C0", hex("C0 80") }, { "overlong 2-byte C1", hex("C1 BF") },
  { "overlong 3-byte", hex("E0 80 80") }, { "overlong 3-byte max", hex("E0 9F BF") },
  { "overlong 4-byte", hex("F0 80 80 80") }, { "overlong 4-byte max", hex("F0 8F BF BF") },
  { "surrogate D800", hex("ED A0 80") }, { "surrogate DFFF", hex("ED BF BF") },
  { "over U+10FFFF", hex("F4 90 80 80") }, { "lead F5", hex("F5 80 80 80") },
  { "lead FE", hex("FE") }, { "lead FF", hex("FF") },
  { "truncated 2-byte", hex("C2") }, { "truncated 3-byte", hex("E0 A0") },
  { "truncated 4-byte", hex("F0 90 80") }, { "missing continuation", hex("C2 41") },
  { "extra continuation", hex("C2 80 80") },
  { "Autobahn 6.3.1", hex("CE BA E1 BD B9 CF 83 CE BC CE B5 ED A0 80 65 64 69 74 65 64") },
}

describe("codec.utf8_valid", function()
  it("accepts the boundaries of every sequence length", function()
    for _, s in ipairs(VALID) do assert.is_true(codec.utf8_valid(s), V.tohex(s)) end
  end)

  it("rejects overlongs, surrogates, code points over U+10FFFF and truncations", function()
    for _, case in ipairs(INVALID) do assert.is_false(codec.utf8_valid(case[2]), case[1]) end
  end)

  it("finds one bad byte at every position of a long ASCII run (the word-at-a-time path)", function()
    for len = 1, 70 do
      for pos = 1, len do
        local s = string.rep("x", pos - 1) .. "\255" .. string.rep("y", len - pos)
        assert.is_false(codec.utf8_valid(s))
        local ok = string.rep("x", pos - 1) .. hex("E2 82 AC") .. string.rep("y", len - pos)
        assert.is_true(codec.utf8_valid(ok))
      end
    end
  end)

  it("agrees with a reference decoder on every 1- and 2-byte string", function()
    for a = 0, 255 do
      local sa = string.char(a)
      assert.equal(ref_valid(sa), codec.utf8_valid(sa))
      for b = 0x70, 0xFF do -- ASCII second bytes all behave alike
        local s = sa .. string.char(b)
        if ref_valid(s) ~= codec.utf8_valid(s) then
          error("mismatch on " .. V.tohex(s))
        end
      end
    end
  end)

  it("agrees with a reference decoder on every 3-byte string with an E0..EF lead", function()
    local bytes = {}
    for b = 0x7F, 0xC0 do bytes[#bytes + 1] = string.char(b) end
    for a = 0xE0, 0xF4 do
      local sa = string.char(a)
      for _, b in ipairs(bytes) do
        for _, c in ipairs(bytes) do
          local s = sa .. b .. c
          if ref_valid(s) ~= codec.utf8_valid(s) then error("mismatch on " .. V.tohex(s)) end
        end
      end
    end
  end)

  it("agrees with a reference decoder on random mixed strings", function()
    math.randomseed(6455)
    local pick = { 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2, 0xDF,
                   0xE0, 0xE1, 0xED, 0xEE, 0xEF, 0xF0, 0xF1, 0xF4, 0xF5, 0xFF }
    for _ = 1, 3000 do
      local parts = {}
      for _ = 1, math.random(1, 12) do
        local r = math.random()
        if r < 0.4 then
          parts[#parts + 1] = string.rep("a", math.random(0, 20))
        elseif r < 0.8 then
          local cp = ({ 0x7F, 0x7FF, 0xFFFF, 0x10FFFF })[math.random(1, 4)]
          cp = math.random(0, cp)
          if cp >= 0xD800 and cp <= 0xDFFF then cp = 0x41 end
          parts[#parts + 1] = cp_to_utf8(cp)
        else
          parts[#parts + 1] = string.char(pick[math.random(1, #pick)])
        end
      end
      local s = table.concat(parts)
      if ref_valid(s) ~= codec.utf8_valid(s) then error("mismatch on " .. V.tohex(s)) end
    end
  end)

  it("raises on a non-string", function()
    assert.has_error(function() codec.utf8_valid() end)
  end)
end)

describe("text messages over ws.codec", function()
  local function client() return codec.new { role = "client" } end

  -- Feed a text frame's payload one byte at a time and return after how many payload bytes
  -- the error came (nil when none) and the events seen.
  local function feed_bytewise(payload)
    local c = client()
    local frame = codec.frame("text", payload)
    c:feed(frame:sub(1, #frame - #payload)) -- the header alone
    for i = 1, #payload do
      c:feed(payload:sub(i, i))
      local kind, a, b = c:next()
      if kind == "error" then return i, { kind, a, b } end
      if kind then return nil, { kind, a } end
    end
    return nil, { c:next() }
  end

  it("fails at the first byte that can no longer be valid, mid-frame", function()
    math.randomseed(7)
    local pick = { 0x41, 0x80, 0xA0, 0xBF, 0xC2, 0xE0, 0xED, 0xF0, 0xF4, 0xF5 }
    for _ = 1, 400 do
      local t = {}
      for _ = 1, math.random(1, 10) do
        local cp = math.random(0, 0x10FFFF)
        if cp >= 0xD800 and cp <= 0xDFFF then cp = cp - 0x800 end
        t[#t + 1] = math.random() < 0.5 and cp_to_utf8(cp) or string.char(pick[math.random(1, #pick)])
      end
      local s = table.concat(t)
      local expect_at
      for k = 1, #s do
        if not ref_prefix_ok(s:sub(1, k)) then expect_at = k break end
      end
      local at, ev = feed_bytewise(s)
      if expect_at then
        assert.equal(expect_at, at, V.tohex(s))
        assert.same({ "error", "invalid UTF-8 in text message", 1007 }, ev)
      elseif ref_valid(s) then
        assert.same({ "text", s }, ev)
      else -- valid so far, but the message ends inside a code point
        assert.same({ "error", "invalid UTF-8 in text message", 1007 }, ev)
      end
    end
  end)

  it("accepts a code point split across fragments (Autobahn 6.2.4 style)", function()
    local s = hex("CE BA E1 BD B9 CF 83 CE BC CE B5")
    for cut = 0, #s do
      local c = client()
      c:feed(codec.frame("text", s:sub(1, cut), { fin = false }))
      assert.is_nil(c:next())
      c:feed(codec.frame("continuation", s:sub(cut + 1)))
      assert.same({ "text", s }, { c:next() })
    end
  end)

  it("fails on an invalid fragment before the message ends (Autobahn 6.4.1)", function()
    local c = client()
    c:feed(codec.frame("text", hex("CE BA E1 BD B9 CF 83 CE BC CE B5"), { fin = false }))
    assert.is_nil(c:next())
    c:feed(codec.frame("continuation", hex("F4 90 80 80"), { fin = false }))
    assert.same({ "error", "invalid UTF-8 in text message", 1007 }, { c:next() })
  end)

  it("fails inside a fragment whose frame has not fully arrived (Autobahn 6.4.2-6.4.4)", function()
    local c = client()
    c:feed(codec.frame("text", hex("CE BA E1 BD B9 CF 83 CE BC CE B5"), { fin = false }))
    local bad = hex("F4 90 80 80") .. "edited"
    local frame = codec.frame("continuation", bad)
    c:feed(frame:sub(1, 2 + 1)) -- header and the F4 lead: still possibly valid
    assert.is_nil(c:next())
    c:feed(frame:sub(4, 4))     -- 90 after F4: over U+10FFFF, fail now
    assert.same({ "error", "invalid UTF-8 in text message", 1007 }, { c:next() })
    assert.equal("closed", c:state())
  end)

  it("fails when a text message ends inside a code point", function()
    local c = client()
    c:feed(codec.frame("text", "ab" .. hex("E2 82"), { fin = false }))
    assert.is_nil(c:next())
    c:feed(codec.frame("continuation", ""))
    assert.same({ "error", "invalid UTF-8 in text message", 1007 }, { c:next() })
  end)

  it("does not check binary messages", function()
    local c = client()
    c:feed(codec.frame("binary", hex("FF FE ED A0 80")))
    assert.same({ "binary", hex("FF FE ED A0 80") }, { c:next() })
  end)

  it("checks a large text frame as it streams", function()
    local c = codec.new { role = "client", max_message = 1000000 }
    local good = string.rep("\207\128", 100000) -- 200 KB of U+03C0
    local frame = codec.frame("text", good .. "\255")
    c:feed(frame:sub(1, 60000))
    assert.is_nil(c:next())
    c:feed(frame:sub(60001, 120000))
    assert.is_nil(c:next())
    for at = 120001, #frame, 50000 do c:feed(frame:sub(at, at + 49999)) end
    assert.same({ "error", "invalid UTF-8 in text message", 1007 }, { c:next() })
  end)
end)
