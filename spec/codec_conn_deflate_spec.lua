-- permessage-deflate through ws.codec connections (c:set_deflate): RFC 7692's example frames
-- byte for byte and split at every position, RSV1 rules, compressed sends, round trips
-- between a client and a server conn in every mode, the bomb closing with 1009, and the
-- memory a connection holds.
local codec = require "ws.codec"
local V = require "vectors.rfc6455"
local hex, tohex = V.hex, V.tohex
local KEY = V.key

local MAX_EVENTS = require("support.codec_events").MAX_EVENTS

local function conn(role, params, cfg, opts)
  local o = { role = role }
  for k, v in pairs(opts or {}) do o[k] = v end
  local c = codec.new(o)
  -- The RFC's vectors compress "Hello", which is under the default threshold.
  local with_threshold = { threshold = 0 }
  for k, v in pairs(cfg or {}) do with_threshold[k] = v end
  if params then assert.is_true(c:set_deflate(params, with_threshold)) end
  return c
end

local drain = require("support.codec_events").drain
local frames_of = require("support.codec_events").frames_of

local function feed_all(c, chunks)
  local evs = {}
  for _, chunk in ipairs(chunks) do
    assert.is_true(c:feed(chunk))
    drain(c, evs)
  end
  return evs
end

-- A compressed frame as a client sends it (masked) or a server does (plain).
local function cframe(kind, payload, fin, masked)
  return codec.frame(kind, payload, { fin = fin, rsv = 4, mask = masked and KEY or nil })
end

local function random_bytes(n)
  local t = {}
  for i = 1, n do t[i] = string.char(math.random(0, 255)) end
  return table.concat(t)
end

local function text_like(n)
  local words = { "user ", "message ", "hello ", "world ", "channel ", "général ", "the ", "fox ", "{\"id\":" }
  local t, len = {}, 0
  while len < n do
    local w = words[math.random(#words)]
    t[#t + 1] = w
    len = len + #w
  end
  return table.concat(t)
end

local defaults = { server_no_context_takeover = false, client_no_context_takeover = false,
                   server_max_window_bits = 15, client_max_window_bits = 15 }

describe("codec connections with permessage-deflate: RFC 7692 example frames", function()
  local function every_split(role, bytes, expected)
    for i = 0, #bytes do
      local c = conn(role, defaults)
      local evs = feed_all(c, { bytes:sub(1, i), bytes:sub(i + 1) })
      assert.same(expected, evs)
    end
    -- and one byte at a time
    local c = conn(role, defaults)
    local chunks = {}
    for i = 1, #bytes do chunks[i] = bytes:sub(i, i) end
    assert.same(expected, feed_all(c, chunks))
  end

  it("receives \"Hello\" compressed in one frame (7.2.3.1)", function()
    every_split("client", hex("c1 07 f2 48 cd c9 c9 07 00"), { { "text", "Hello" } })
  end)

  it("receives \"Hello\" compressed in two fragments (7.2.3.1)", function()
    every_split("client", hex("41 03 f2 48 cd") .. hex("80 04 c9 c9 07 00"), { { "text", "Hello" } })
  end)

  it("receives two messages sharing the LZ77 window (7.2.3.2)", function()
    every_split("client", hex("c1 07 f2 48 cd c9 c9 07 00") .. hex("c1 05 f2 00 11 00 00"),
                { { "text", "Hello" }, { "text", "Hello" } })
  end)

  it("receives a block with no compression, a BFINAL block and two blocks (7.2.3.3-5)", function()
    every_split("client", hex("c1 0b 00 05 00 fa ff 48 65 6c 6c 6f 00"), { { "text", "Hello" } })
    every_split("client", hex("c1 08 f3 48 cd c9 c9 07 00 00"), { { "text", "Hello" } })
    every_split("client", hex("c1 0d f2 48 05 00 00 00 ff ff ca c9 c9 07 00"), { { "text", "Hello" } })
  end)

  it("receives masked compressed frames on the server side", function()
    local bytes = cframe("text", hex("f2 48 cd c9 c9 07 00"), true, true) ..
                  cframe("binary", hex("f2 00 11 00 00"), true, true)
    every_split("server", bytes, { { "text", "Hello" }, { "binary", "Hello" } })
  end)

  it("sends \"Hello\" as c1 07 f2 48 cd c9 c9 07 00, then c1 05 f2 00 11 00 00", function()
    local c = conn("server", defaults)
    assert.is_true(c:send("Hello"))
    assert.equal("C1 07 F2 48 CD C9 C9 07 00", tohex(c:output()))
    assert.is_true(c:send("Hello"))
    assert.equal("C1 05 F2 00 11 00 00", tohex(c:output()))
  end)

  it("sends each message afresh without context takeover", function()
    local c = conn("server", { server_no_context_takeover = true })
    for _ = 1, 3 do
      assert.is_true(c:send("Hello"))
      assert.equal("C1 07 F2 48 CD C9 C9 07 00", tohex(c:output()))
    end
  end)

  it("sends an empty compressed message as one 00 byte", function()
    local c = conn("server", defaults)
    assert.is_true(c:send("", "binary"))
    assert.equal("C2 01 00", tohex(c:output()))
  end)
end)

describe("codec connections with permessage-deflate: RSV1 and what is compressed", function()
  local function expect_error(role, bytes, message, code)
    local c = conn(role, defaults)
    local evs = feed_all(c, { bytes })
    assert.same({ { "error", message, code } }, evs)
    local frames = frames_of(c:output())
    assert.equal(1, #frames)
    assert.equal(8, frames[1].opcode)
    assert.equal(code, frames[1].payload:byte(1) * 256 + frames[1].payload:byte(2))
  end

  it("fails RSV1 on a control frame or a continuation, and RSV2/RSV3 still", function()
    expect_error("client", codec.frame("ping", "x", { rsv = 4 }), "RSV1 set on a control frame", 1002)
    expect_error("client", hex("41 03 f2 48 cd") .. hex("c0 04 c9 c9 07 00"), "RSV1 set on a continuation frame", 1002)
    expect_error("client", codec.frame("text", "x", { rsv = 2 }), "reserved bits set without an extension", 1002)
  end)

  it("fails data that does not inflate with 1007", function()
    expect_error("client", cframe("text", hex("ff ff ff ff"), true), "invalid compressed data", 1007)
  end)

  it("checks the UTF-8 of inflated text", function()
    local z = codec.deflater({}, {}, "server"):compress("ok \255 no")
    expect_error("client", cframe("text", z, true), "invalid UTF-8 in text message", 1007)
  end)

  it("still takes uncompressed messages", function()
    local c = conn("client", defaults)
    assert.same({ { "text", "plain" } }, feed_all(c, { codec.frame("text", "plain") }))
  end)

  it("never compresses control frames, nor a message sent with compress = false", function()
    local c = conn("server", defaults)
    assert.is_true(c:ping("ping payload ping payload"))
    assert.is_true(c:send("not compressed", "text", { compress = false }))
    assert.is_true(c:close(1000, "bye bye bye bye"))
    for _, f in ipairs(frames_of(c:output())) do assert.equal(0, f.rsv) end
  end)

  it("sends a fragmented message uncompressed", function()
    local c = conn("server", defaults)
    assert.is_true(c:send("Hel", "text", { fin = false }))
    assert.is_true(c:send("lo", "continuation"))
    local frames = frames_of(c:output())
    assert.equal(2, #frames)
    assert.equal(0, frames[1].rsv)
    assert.equal("Hello", frames[1].payload .. frames[2].payload)
  end)

  it("masks compressed frames sent by a client", function()
    local c = conn("client", defaults)
    assert.is_true(c:send("Hello"))
    local frames = frames_of(c:output())
    assert.same({ { opcode = 1, payload = hex("f2 48 cd c9 c9 07 00"), fin = true, rsv = 4, masked = true } }, frames)
  end)

  it("sends messages shorter than the threshold uncompressed", function()
    local c = conn("server", defaults, { threshold = 64 })
    assert.is_true(c:send("Hello"))
    assert.is_true(c:send(string.rep("a", 64)))
    local frames = frames_of(c:output())
    assert.equal(2, #frames)
    assert.same({ opcode = 1, payload = "Hello", fin = true, rsv = 0, masked = false }, frames[1])
    assert.equal(4, frames[2].rsv)
  end)
end)

describe("codec connections with permessage-deflate: round trips", function()
  local modes = {
    { name = "dedicated", offer = "permessage-deflate; client_max_window_bits", cfg = {} },
    { name = "dedicated, no client_max_window_bits", offer = "permessage-deflate", cfg = {} },
    { name = "shared", offer = "permessage-deflate; client_max_window_bits", cfg = { mode = "shared" } },
    { name = "8-bit windows", offer = "permessage-deflate; client_max_window_bits=8; server_max_window_bits=8",
      cfg = { window_bits = 8, mem_level = 1 } },
    { name = "15-bit windows", offer = "permessage-deflate; client_max_window_bits", cfg = { window_bits = 15 } },
  }

  for _, mode in ipairs(modes) do
    it("passes text and binary both ways, whole and split: " .. mode.name, function()
      math.randomseed(11)
      local resp, sparams = codec.deflate_negotiate(mode.offer, mode.cfg)
      local cparams = assert(codec.deflate_accept(resp, {}, mode.offer))
      local s = conn("server", sparams, mode.cfg)
      local c = conn("client", cparams, {})
      for _, n in ipairs { 0, 1, 100, 3000, 70000 } do
        for _, pair in ipairs { { "text", text_like(n) }, { "binary", random_bytes(n) } } do
          local kind, msg = pair[1], pair[2]
          assert.is_true(c:send(msg, kind))
          local out = c:output()
          assert.equal(4, frames_of(out)[1].rsv)
          local cut = math.random(0, #out)
          assert.same({ { kind, msg } }, feed_all(s, { out:sub(1, cut), out:sub(cut + 1) }))
          assert.is_true(s:send(msg, kind))
          out = s:output()
          cut = math.random(0, #out)
          assert.same({ { kind, msg } }, feed_all(c, { out:sub(1, cut), out:sub(cut + 1) }))
        end
      end
    end)
  end
end)

describe("codec connections with permessage-deflate: streams shared between connections", function()
  -- In shared mode (no context takeover either way) the zlib streams are reused by every
  -- connection, one message at a time; a connection holds one only while a message of its own
  -- is half inflated.
  local cfg = { mode = "shared" }
  local resp, params = codec.deflate_negotiate("permessage-deflate; client_max_window_bits", cfg)
  local cparams = assert(codec.deflate_accept(resp))

  it("inflates half-received messages of several connections interleaved", function()
    math.randomseed(21)
    local s1, s2 = conn("server", params, cfg), conn("server", params, cfg)
    local idle = s1:deflate_memory()
    local m1, m2, m3 = text_like(6000), text_like(5000), text_like(4000)
    local z = codec.deflater(cparams, {}, "client")
    local f1 = cframe("text", z:compress(m1), true, true)
    local z3 = z:compress(m3)
    local half = math.floor(#f1 / 2)
    assert.same({}, feed_all(s1, { f1:sub(1, half) }))
    assert.is_true(s1:deflate_memory() > idle) -- its inflater, while the message is in progress
    assert.same({ { "text", m2 } }, feed_all(s2, { cframe("text", z:compress(m2), true, true) }))
    assert.equal(idle, s2:deflate_memory())
    assert.same({ { "text", m1 } }, feed_all(s1, { f1:sub(half + 1) }))
    assert.equal(idle, s1:deflate_memory())
    -- a message in two frames, with another connection's message between them
    local cut = math.floor(#z3 / 3)
    assert.same({}, feed_all(s2, { cframe("text", z3:sub(1, cut), false, true) }))
    assert.same({ { "text", m1 } }, feed_all(s1, { cframe("text", z:compress(m1), true, true) }))
    assert.same({ { "text", m3 } },
                feed_all(s2, { codec.frame("continuation", z3:sub(cut + 1), { mask = KEY }) }))
    assert.equal(idle, s2:deflate_memory())
  end)

  it("never lets a message refer to what another connection received", function()
    math.randomseed(22)
    local m = text_like(3000)
    local z = codec.deflater({}, {}, "client") -- keeps its context: the second copy refers back
    local first, again = z:compress(m), z:compress(m)
    assert.is_true(#again < 100)
    local s1, s2 = conn("server", params, cfg), conn("server", params, cfg)
    assert.same({ { "text", m } }, feed_all(s1, { cframe("text", first, true, true) }))
    assert.same({ { "error", "invalid compressed data", 1007 } },
                feed_all(s2, { cframe("text", again, true, true) }))
  end)

  it("compresses each message as if it were the first, whoever sent before", function()
    math.randomseed(23)
    local m = text_like(3000)
    local s1, s2 = conn("server", params, cfg), conn("server", params, cfg)
    assert.is_true(s1:send(m))
    assert.is_true(s2:send(m))
    assert.is_true(s1:send(m))
    local a, b = frames_of(s1:output()), frames_of(s2:output())
    assert.equal(a[1].payload, b[1].payload)
    assert.equal(a[1].payload, a[2].payload)
    assert.equal(codec.deflater({}, { mode = "shared" }, "server"):compress(m), a[1].payload)
    local c = conn("client", cparams, {})
    assert.same({ { "text", m }, { "text", m } }, feed_all(c, { codec.frame("text", a[1].payload, { rsv = 4 }) ..
                                                               codec.frame("text", b[1].payload, { rsv = 4 }) }))
  end)
end)

describe("codec connections with permessage-deflate: limits and memory", function()
  it("closes with 1009 on a bomb, before inflating it", function()
    local zeros = codec.deflater({}, { window_bits = 15, mem_level = 8 }, "client")
                       :compress(string.rep("\0", 64 * 1024 * 1024)) -- 64 KiB that inflate to 64 MiB
    assert.is_true(#zeros < 128 * 1024)
    local s = conn("server", defaults, {}, { max_message = 1024 * 1024 })
    local started = os.clock()
    local evs = feed_all(s, { cframe("binary", zeros, true, true) })
    assert.same({ { "error", "message over max_message", 1009 } }, evs)
    assert.is_true(os.clock() - started < 2)
    local frames = frames_of(s:output())
    assert.equal(8, frames[1].opcode)
    assert.equal("03 F1", tohex(frames[1].payload:sub(1, 2)))
    assert.is_true(s:deflate_memory() < 64 * 1024)
  end)

  it("counts the limit across the fragments of a compressed message", function()
    local z = codec.deflater({}, {}, "client"):compress(string.rep("a", 3000))
    local half = math.floor(#z / 2)
    local s = conn("server", defaults, {}, { max_message = 2999 })
    local evs = feed_all(s, { cframe("text", z:sub(1, half), false, true) ..
                              codec.frame("continuation", z:sub(half + 1), { mask = KEY }) })
    assert.same({ { "error", "message over max_message", 1009 } }, evs)
    s = conn("server", defaults, {}, { max_message = 3000 })
    evs = feed_all(s, { cframe("text", z:sub(1, half), false, true) ..
                        codec.frame("continuation", z:sub(half + 1), { mask = KEY }) })
    assert.same({ { "text", string.rep("a", 3000) } }, evs)
  end)

  it("holds no zlib memory before the first message, nor between messages in shared mode", function()
    local cfg = { mode = "shared" }
    local resp, params = codec.deflate_negotiate("permessage-deflate; client_max_window_bits", cfg)
    local s = conn("server", params, cfg)
    local c = conn("client", assert(codec.deflate_accept(resp)), {})
    local idle = s:deflate_memory()
    assert.is_true(idle < 512)
    for _ = 1, 3 do
      assert.is_true(c:send(text_like(2000)))
      feed_all(s, { c:output() })
      assert.is_true(s:send(text_like(2000)))
      feed_all(c, { s:output() })
      assert.equal(idle, s:deflate_memory())
    end
  end)

  it("keeps a dedicated connection within 64 KiB of zlib memory", function()
    local resp, params = codec.deflate_negotiate("permessage-deflate; client_max_window_bits")
    local s = conn("server", params)
    local c = conn("client", assert(codec.deflate_accept(resp)), {})
    assert.is_true(c:send(text_like(2000)))
    feed_all(s, { c:output() })
    assert.is_true(s:send(text_like(2000)))
    assert.is_true(s:deflate_memory() <= 64 * 1024, s:deflate_memory())
    assert.is_true(s:deflate_memory() > 32 * 1024)
    assert.equal(0, codec.new{}:deflate_memory())
  end)

  it("raises on bad parameters", function()
    local c = codec.new { role = "server" }
    assert.has_error(function() c:set_deflate({ server_max_window_bits = 7 }) end,
                     "bad deflate option 'server_max_window_bits' (integer 8..15 expected)")
  end)
end)
