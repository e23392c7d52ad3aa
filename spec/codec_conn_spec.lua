-- ws.codec connections: every receiving rule of RFC 6455 sections 5 to 7 at the byte
-- level (event, close code, error message and the close frame queued), every vector fed
-- split at every byte position, the state machine, and what may be sent in each state.
local codec = require "ws.codec"
local V = require "vectors.rfc6455"
local hex, tohex = V.hex, V.tohex
local KEY = V.key

-- Frames as a client sends them (masked) and as a server sends them (plain).
local function m(kind, payload, opts)
  opts = opts or {}
  return codec.frame(kind, payload or "", { fin = opts.fin, rsv = opts.rsv, mask = KEY })
end
local function u(kind, payload, opts)
  opts = opts or {}
  return codec.frame(kind, payload or "", { fin = opts.fin, rsv = opts.rsv })
end

-- opts.deflate attaches permessage-deflate with its default parameters.
local function new(role, opts)
  local o = { role = role }
  for k, v in pairs(opts or {}) do o[k] = v end
  local deflate = o.deflate
  o.deflate = nil
  local c = codec.new(o)
  if deflate then assert.is_true(c:set_deflate({}, {})) end
  return c
end

local MAX_EVENTS = require("support.codec_events").MAX_EVENTS

local drain = require("support.codec_events").drain
local frames_of = require("support.codec_events").frames_of

-- Feed the chunks in order, collecting events after each.
local function run(role, chunks, opts)
  local c = new(role, opts)
  local evs = {}
  for _, chunk in ipairs(chunks) do
    assert.is_true(c:feed(chunk))
    drain(c, evs)
  end
  return evs, c
end

local function same_events(a, b)
  if #a ~= #b then return false end
  for i = 1, #a do
    if #a[i] ~= #b[i] then return false end
    for j = 1, #a[i] do if a[i][j] ~= b[i][j] then return false end end
  end
  return true
end

local function describe_events(evs)
  local t = {}
  for _, ev in ipairs(evs) do
    local parts = {}
    for j = 1, #ev do
      local s = tostring(ev[j])
      parts[j] = #s > 40 and (s:sub(1, 40) .. "...(" .. #s .. ")") or s
    end
    t[#t + 1] = "{" .. table.concat(parts, ", ") .. "}"
  end
  return table.concat(t, " ")
end

-- The same events whether the bytes come at once, cut in two at any position, or one by one.
local function check_splits(role, bytes, expected, opts)
  local evs, c = run(role, { bytes }, opts)
  assert.same(expected, evs)
  for cut = 1, #bytes - 1 do
    local got = run(role, { bytes:sub(1, cut), bytes:sub(cut + 1) }, opts)
    if not same_events(got, expected) then
      error("split at " .. cut .. ": " .. describe_events(got) .. " instead of " .. describe_events(expected))
    end
  end
  local chunks = {}
  for i = 1, #bytes do chunks[i] = bytes:sub(i, i) end
  local got = run(role, chunks, opts)
  if not same_events(got, expected) then
    error("byte by byte: " .. describe_events(got) .. " instead of " .. describe_events(expected))
  end
  return c
end

local function close_payload(code, reason)
  return string.char(math.floor(code / 256), code % 256) .. (reason or "")
end

-- A rule violation: the error event (split anywhere), then nothing more, and exactly one
-- close frame with the code (and the message as its reason) queued.
local function expect_fail(role, bytes, message, code, opts)
  local c = check_splits(role, bytes, { { "error", message, code } }, opts)
  assert.equal("closed", c:state())
  assert.is_nil(c:next())
  local frames = frames_of(c:output())
  assert.equal(1, #frames)
  assert.equal(8, frames[1].opcode)
  assert.equal(role == "client", frames[1].masked)
  assert.equal(close_payload(code, message), frames[1].payload)
  assert.is_true(c:feed(m("text", "ignored")))
  assert.is_nil(c:next())
  assert.equal("", c:output())
end

describe("ws.codec RFC 6455 5.7 vectors", function()
  for _, v in ipairs(V.vectors) do
    it(v.name .. ", split at every byte position and byte by byte", function()
      check_splits(v.role, v.bytes, v.events)
    end)
  end

  it("256 bytes and 64 KiB masked, to a server, split everywhere", function()
    for _, v in ipairs { V.binary_256, V.binary_64k } do
      check_splits("server", m("binary", v.payload), v.events)
    end
  end)

  it("answers the unmasked ping with a masked pong carrying the same payload", function()
    local _, c = run("client", { V.vectors[4].bytes })
    local frames = frames_of(c:output())
    assert.same({ { opcode = 10, payload = "Hello", fin = true, rsv = 0, masked = true } }, frames)
  end)
end)

describe("ws.codec masking direction", function()
  it("a server fails on an unmasked client frame with 1002", function()
    expect_fail("server", u("text", "Hello"), "unmasked frame from client", 1002)
    expect_fail("server", u("ping", ""), "unmasked frame from client", 1002)
  end)

  it("a client fails on a masked server frame with 1002", function()
    expect_fail("client", m("text", "Hello"), "masked frame from server", 1002)
    expect_fail("client", m("close", ""), "masked frame from server", 1002)
  end)
end)

describe("ws.codec reserved bits", function()
  it("fails on RSV1, RSV2 or RSV3 when no extension claimed them", function()
    for _, rsv in ipairs { 4, 2, 1, 7 } do
      expect_fail("server", m("text", "x", { rsv = rsv }), "reserved bits set without an extension", 1002)
      expect_fail("server", m("ping", "x", { rsv = rsv }), "reserved bits set without an extension", 1002)
      expect_fail("client", u("binary", "x", { rsv = rsv }), "reserved bits set without an extension", 1002)
    end
  end)

  local have_deflate = codec.new().set_deflate ~= nil
  local it_deflate = have_deflate and it or pending

  it_deflate("with permessage-deflate, allows RSV1 only on the first frame of a data message", function()
    local d = { deflate = true }
    expect_fail("server", m("ping", "x", { rsv = 4 }), "RSV1 set on a control frame", 1002, d)
    expect_fail("client", u("close", "", { rsv = 4 }), "RSV1 set on a control frame", 1002, d)
    expect_fail("server", m("text", "a", { fin = false }) .. m("continuation", "b", { rsv = 4 }),
      "RSV1 set on a continuation frame", 1002, d)
    expect_fail("server", m("text", "a", { rsv = 2 }), "reserved bits set without an extension", 1002, d)
    -- "Hello" compressed (RFC 7692 7.2.3.1), masked, in two fragments: RSV1 on the first only
    local z = hex("f2 48 cd c9 c9 07 00")
    check_splits("server", m("text", z:sub(1, 3), { fin = false, rsv = 4 }) .. m("continuation", z:sub(4)),
      { { "text", "Hello" } }, d)
  end)

  it("fails on RSV bits of a continuation frame", function()
    expect_fail("server", m("text", "a", { fin = false }) .. m("continuation", "b", { rsv = 4 }),
      "reserved bits set without an extension", 1002)
  end)
end)

describe("ws.codec opcodes", function()
  it("fails on every reserved opcode with 1002", function()
    for _, op in ipairs { 3, 4, 5, 6, 7, 11, 12, 13, 14, 15 } do
      expect_fail("server", m(op, ""), "unknown opcode", 1002)
      expect_fail("client", u(op, "abc"), "unknown opcode", 1002)
    end
  end)

  it("fails on a reserved opcode inside a fragmented message", function()
    expect_fail("server", m("text", "a", { fin = false }) .. m(11, "b"), "unknown opcode", 1002)
  end)
end)

describe("ws.codec control frames", function()
  it("accepts 125 bytes and answers with the same 125 bytes", function()
    local p = string.rep("p", 125)
    local c = check_splits("server", m("ping", p), { { "ping", p } })
    assert.equal(u("pong", p), c:output())
  end)

  it("fails on a payload over 125 bytes as soon as the header arrives", function()
    local frame = m("ping", string.rep("p", 126))
    expect_fail("server", frame, "control frame payload over 125 bytes", 1002)
    local c = new("server")
    c:feed(frame:sub(1, 8)) -- header only: 2 + 2 (length 126) + 4 (key)
    assert.same({ "error", "control frame payload over 125 bytes", 1002 }, { c:next() })
    expect_fail("client", u("close", close_payload(1000, string.rep("r", 124))),
      "control frame payload over 125 bytes", 1002)
    expect_fail("client", u("pong", string.rep("p", 126)), "control frame payload over 125 bytes", 1002)
  end)

  it("fails on a fragmented control frame", function()
    expect_fail("server", m("ping", "x", { fin = false }), "fragmented control frame", 1002)
    expect_fail("client", u("pong", "", { fin = false }), "fragmented control frame", 1002)
    expect_fail("client", u("close", "", { fin = false }), "fragmented control frame", 1002)
  end)

  it("delivers control frames between the fragments of a message", function()
    local bytes = m("text", "Hel", { fin = false }) .. m("ping", "1") .. m("continuation", "", { fin = false })
      .. m("pong", "2") .. m("continuation", "lo")
    local c = check_splits("server", bytes, { { "ping", "1" }, { "pong", "2" }, { "text", "Hello" } })
    assert.equal(u("pong", "1"), c:output())
  end)

  it("does not answer pings when auto_pong is off", function()
    local c = check_splits("server", m("ping", "x"), { { "ping", "x" } }, { auto_pong = false })
    assert.equal("", c:output())
    assert.is_true(c:pong("x"))
    assert.equal(u("pong", "x"), c:output())
  end)
end)

describe("ws.codec fragmentation", function()
  it("reassembles fragments, empty ones included", function()
    local bytes = m("binary", "a", { fin = false }) .. m("continuation", "", { fin = false })
      .. m("continuation", "bc", { fin = false }) .. m("continuation", "d")
    check_splits("server", bytes, { { "binary", "abcd" } })
    check_splits("server", m("text", "", { fin = false }) .. m("continuation", ""), { { "text", "" } })
  end)

  it("starts afresh after a fragmented message", function()
    local bytes = m("text", "a", { fin = false }) .. m("continuation", "b") .. m("binary", "c")
      .. m("text", "d", { fin = false }) .. m("continuation", "e")
    check_splits("server", bytes, { { "text", "ab" }, { "binary", "c" }, { "text", "de" } })
  end)

  it("fails on a continuation frame without a message", function()
    expect_fail("server", m("continuation", "x"), "continuation frame without a message to continue", 1002)
    expect_fail("client", u("continuation", "x", { fin = false }),
      "continuation frame without a message to continue", 1002)
    check_splits("server", m("text", "a") .. m("continuation", "b"),
      { { "text", "a" }, { "error", "continuation frame without a message to continue", 1002 } })
  end)

  it("fails on a new data frame inside a fragmented message", function()
    expect_fail("server", m("text", "a", { fin = false }) .. m("text", "b"),
      "new data frame inside a fragmented message", 1002)
    expect_fail("client", u("binary", "a", { fin = false }) .. u("text", "b", { fin = false }),
      "new data frame inside a fragmented message", 1002)
  end)
end)

describe("ws.codec lengths", function()
  it("reads 16-bit and 64-bit lengths, minimal or not", function()
    check_splits("client", hex("81 7E 00 05") .. "Hello", { { "text", "Hello" } })
    check_splits("client", hex("81 7F 00 00 00 00 00 00 00 05") .. "Hello", { { "text", "Hello" } })
    local big = string.rep("z", 70000)
    check_splits("client", hex("82 7F 00 00 00 00 00 01 11 70") .. big, { { "binary", big } })
  end)

  it("fails on a 64-bit length with the top bit set, at its first byte", function()
    expect_fail("server", hex("82 FF 80 00 00 00 00 00 00 00") .. KEY, "frame length has the top bit set", 1002)
    local c = new("client")
    c:feed(hex("82 7F 80"))
    assert.same({ "error", "frame length has the top bit set", 1002 }, { c:next() })
  end)
end)

describe("ws.codec limits", function()
  it("fails on a frame over max_frame from its header, before storing it", function()
    local c = new("client")
    c:feed(hex("82 7F 40 00 00 00 00 00 00 00")) -- 2^62 bytes announced, none sent
    assert.same({ "error", "message over max_message", 1009 }, { c:next() })
    c = new("client", { max_frame = 1000 })
    c:feed(hex("82 7E 03 E9")) -- 1001 bytes announced, none sent
    assert.same({ "error", "frame over max_frame", 1009 }, { c:next() })
    expect_fail("server", m("binary", "123456"), "frame over max_frame", 1009, { max_frame = 5 })
    check_splits("server", m("binary", "12345"), { { "binary", "12345" } }, { max_frame = 5 })
    expect_fail("server", m("text", "abc", { fin = false }) .. m("continuation", "123456"),
      "frame over max_frame", 1009, { max_frame = 5 })
  end)

  it("fails on a message over max_message, single or fragmented, before storing it", function()
    check_splits("server", m("text", "1234567890"), { { "text", "1234567890" } }, { max_message = 10 })
    expect_fail("server", m("text", "12345678901"), "message over max_message", 1009, { max_message = 10 })
    local c = new("server", { max_message = 10 })
    c:feed(m("text", "12345678901"):sub(1, 6)) -- the header only
    assert.same({ "error", "message over max_message", 1009 }, { c:next() })
    check_splits("server", m("text", "123456", { fin = false }) .. m("continuation", "7890"),
      { { "text", "1234567890" } }, { max_message = 10 })
    expect_fail("server", m("text", "123456", { fin = false }) .. m("continuation", "78901"),
      "message over max_message", 1009, { max_message = 10 })
    c = new("client") -- the default limit is 1 MiB
    c:feed(hex("82 7F 00 00 00 00 00 10 00 01"))
    assert.same({ "error", "message over max_message", 1009 }, { c:next() })
    c = new("client")
    c:feed(hex("82 7F 00 00 00 00 00 10 00 00"))
    assert.is_nil(c:next())
  end)

  it("fails on more than max_fragments frames in a message", function()
    local three = m("text", "a", { fin = false }) .. m("continuation", "b", { fin = false }) .. m("continuation", "c")
    check_splits("server", three, { { "text", "abc" } }, { max_fragments = 3 })
    local four = m("text", "a", { fin = false }) .. m("continuation", "b", { fin = false })
      .. m("continuation", "c", { fin = false }) .. m("continuation", "d")
    expect_fail("server", four, "message over max_fragments", 1009, { max_fragments = 3 })
  end)

  it("reassembles 1 MiB from 16 fragments fed in 20000-byte reads", function()
    local piece = V.payload(65536)
    local bytes = {}
    for i = 1, 16 do
      bytes[i] = m(i == 1 and "binary" or "continuation", piece, { fin = i == 16 })
    end
    bytes = table.concat(bytes)
    local c = new("server")
    local evs = {}
    for at = 1, #bytes, 20000 do
      assert.is_true(c:feed(bytes:sub(at, at + 19999)))
      drain(c, evs)
    end
    assert.equal(1, #evs)
    assert.equal("binary", evs[1][1])
    assert.equal(string.rep(piece, 16), evs[1][2])
  end)

  it("streams a large single frame through a bounded input buffer", function()
    local payload = V.payload(300000)
    local bytes = m("binary", payload)
    local c = new("server")
    local evs = {}
    for at = 1, #bytes, 65536 do
      assert.is_true(c:feed(bytes:sub(at, at + 65535)))
      drain(c, evs)
    end
    assert.same({ { "binary", payload } }, evs)
  end)

  it("refuses input over its buffer limit until the events are taken", function()
    local c = new("server")
    local small = m("binary", "x")
    local t = {}
    for i = 1, 30000 do t[i] = small end
    local batch = table.concat(t) -- 210000 bytes of small frames
    assert.same({ nil, "input over the buffer limit" }, { c:feed(batch) })
    assert.is_true(c:feed(batch:sub(1, 70000)))
    assert.equal(10000, #drain(c))
    assert.is_true(c:feed(batch:sub(70001, 140000)))
  end)
end)

describe("ws.codec closing handshake", function()
  it("echoes the peer's code and reason in the event, and the code in the reply", function()
    local c = check_splits("server", m("close", close_payload(1001, "bye")), { { "close", 1001, "bye" } })
    assert.equal("closed", c:state())
    assert.equal(u("close", close_payload(1001)), c:output())
    assert.same({ nil, "close already sent" }, { c:send("late") })
    assert.is_nil(c:next())
  end)

  it("reports 1005 for an empty close and replies with no code", function()
    local c = check_splits("server", m("close", ""), { { "close", 1005, "" } })
    assert.equal(hex("88 00"), c:output())
    local _, cc = run("client", { u("close", "") })
    assert.same({ { opcode = 8, payload = "", fin = true, rsv = 0, masked = true } }, frames_of(cc:output()))
  end)

  it("accepts every valid code", function()
    for _, code in ipairs { 1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014,
                            3000, 3999, 4000, 4999 } do
      local c = check_splits("client", u("close", close_payload(code, "r")), { { "close", code, "r" } })
      assert.equal(close_payload(code), frames_of(c:output())[1].payload)
    end
  end)

  it("fails on an invalid code with 1002", function()
    for _, code in ipairs { 0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535 } do
      expect_fail("server", m("close", close_payload(code)), "invalid close code", 1002)
    end
  end)

  it("fails on a 1-byte close payload with 1002", function()
    expect_fail("server", m("close", "\3"), "close frame with a 1-byte payload", 1002)
  end)

  it("fails on a reason that is not UTF-8 with 1007", function()
    expect_fail("server", m("close", close_payload(1000, hex("CE BA E1 BD"))), "invalid UTF-8 in close reason", 1007)
    expect_fail("client", u("close", close_payload(1000, hex("ED A0 80"))), "invalid UTF-8 in close reason", 1007)
  end)

  it("ignores everything after the peer's close", function()
    check_splits("server", m("close", "") .. m("text", "after") .. hex("FF FF"), { { "close", 1005, "" } })
  end)

  it("drops a fragmented message the close cut short", function()
    check_splits("server", m("text", "part", { fin = false }) .. m("close", close_payload(1000)),
      { { "close", 1000, "" } })
  end)
end)

describe("ws.codec state machine", function()
  it("goes open -> closing -> closed when we close first", function()
    local c = new("server")
    assert.equal("open", c:state())
    assert.is_true(c:close(1000, "done"))
    assert.equal("closing", c:state())
    assert.equal(u("close", close_payload(1000, "done")), c:output())
    -- data the peer sent before seeing our close is still delivered
    c:feed(m("text", "late") .. m("ping", "p"))
    assert.same({ "text", "late" }, { c:next() })
    assert.same({ "ping", "p" }, { c:next() })
    assert.equal(u("pong", "p"), c:output()) -- a ping is answered until the peer's close (5.5.2)
    c:feed(m("close", close_payload(1000)))
    assert.same({ "close", 1000, "" }, { c:next() })
    assert.equal("closed", c:state())
    assert.equal("", c:output()) -- our close was the first: no second one
  end)

  it("goes open -> closed when the peer closes first, with the reply queued", function()
    local c = new("client")
    c:feed(u("close", close_payload(1000, "bye")))
    assert.same({ "close", 1000, "bye" }, { c:next() })
    assert.equal("closed", c:state())
    assert.same({ { opcode = 8, payload = close_payload(1000), fin = true, rsv = 0, masked = true } },
      frames_of(c:output()))
  end)

  it("sends nothing after our close but a pong", function()
    local c = new("server")
    assert.is_true(c:close())
    assert.equal(hex("88 00"), c:output())
    assert.same({ nil, "close already sent" }, { c:send("x") })
    assert.same({ nil, "close already sent" }, { c:ping() })
    assert.same({ nil, "close already sent" }, { c:close(1000) })
    assert.equal("", c:output())
    assert.same({ nil, "control frame payload over 125 bytes" }, { c:pong(string.rep("p", 126)) })
    assert.is_true(c:pong()) -- to answer a ping that crossed our close (5.5.2)
    assert.equal(hex("8A 00"), c:output())
  end)

  it("sends nothing and reads nothing before it is open", function()
    local c = codec.new { role = "server", open = false }
    assert.equal("connecting", c:state())
    assert.same({ nil, "connection not open" }, { c:send("x") })
    assert.same({ nil, "connection not open" }, { c:ping() })
    assert.same({ nil, "connection not open" }, { c:close(1000) })
    assert.is_true(c:feed(m("text", "early")))
    assert.is_nil(c:next())
    c:open()
    assert.equal("open", c:state())
    assert.same({ "text", "early" }, { c:next() })
  end)

  it("fails once: the error event, the close queued, then silence", function()
    local c = new("server")
    c:feed(m("text", "ok") .. u("text", "bad") .. m("text", "never"))
    assert.same({ "text", "ok" }, { c:next() })
    assert.same({ "error", "unmasked frame from client", 1002 }, { c:next() })
    assert.is_nil(c:next())
    assert.equal("closed", c:state())
    assert.same({ nil, "close already sent" }, { c:send("x") })
  end)

  it("does not queue a second close when failing after our close", function()
    local c = new("server")
    c:close(1001)
    assert.equal(u("close", close_payload(1001)), c:output())
    c:feed(u("text", "bad"))
    assert.same({ "error", "unmasked frame from client", 1002 }, { c:next() })
    assert.equal("", c:output())
  end)
end)

describe("ws.codec input held", function()
  it("c:buffered() counts the bytes received and not yet returned as events", function()
    local c = new("server")
    assert.equal(0, c:buffered())
    local one, two = m("text", "one"), m("text", "second")
    c:feed(one .. two .. two:sub(1, 3))
    assert.equal(#one + #two + 3, c:buffered())
    assert.same({ "text", "one" }, { c:next() })
    assert.equal(#two + 3, c:buffered())
    assert.same({ "text", "second" }, { c:next() })
    assert.equal(3, c:buffered())
    assert.is_nil(c:next())
    c:feed(two:sub(4))
    assert.same({ "text", "second" }, { c:next() })
    assert.equal(0, c:buffered())
  end)
end)

describe("ws.codec sending", function()
  it("writes plain frames as a server", function()
    local c = new("server")
    assert.is_true(c:send("Hello"))
    assert.is_true(c:send("\0\1", "binary"))
    assert.is_true(c:ping("p"))
    assert.is_true(c:pong(""))
    assert.equal(7 + 4 + 3 + 2, c:pending())
    assert.equal(u("text", "Hello") .. u("binary", "\0\1") .. u("ping", "p") .. u("pong", ""), c:output())
    assert.equal(0, c:pending())
    assert.equal("", c:output())
  end)

  it("masks every frame as a client, with fresh keys", function()
    local c = new("client")
    local big = V.payload(70000)
    assert.is_true(c:send("Hello"))
    assert.is_true(c:send(big, "binary"))
    assert.is_true(c:close(1000, "bye"))
    local frames = frames_of(c:output())
    assert.same({ opcode = 1, payload = "Hello", fin = true, rsv = 0, masked = true }, frames[1])
    assert.same({ opcode = 2, payload = big, fin = true, rsv = 0, masked = true }, frames[2])
    assert.same({ opcode = 8, payload = close_payload(1000, "bye"), fin = true, rsv = 0, masked = true }, frames[3])
    local keys = {}
    for _ = 1, 100 do
      c = new("client")
      c:send("x")
      keys[assert(codec.parse_frame_header(c:output())).mask] = true
    end
    local distinct = 0
    for _ in pairs(keys) do distinct = distinct + 1 end
    assert.is_true(distinct > 90)
  end)

  it("sends fragmented messages in order", function()
    local c = new("server")
    assert.is_true(c:send("Hel", "text", { fin = false }))
    assert.is_true(c:ping("between"))
    assert.is_true(c:send("", "continuation", { fin = false }))
    assert.is_true(c:send("lo", "continuation"))
    assert.equal(tohex(hex("01 03") .. "Hel" .. u("ping", "between") .. hex("00 00 80 02") .. "lo"), tohex(c:output()))
  end)

  it("refuses continuation out of sequence", function()
    local c = new("server")
    assert.same({ nil, "no fragmented message to continue" }, { c:send("x", "continuation") })
    assert.is_true(c:send("a", "binary", { fin = false }))
    assert.same({ nil, "a fragmented message is being sent" }, { c:send("x") })
    assert.is_true(c:send("b", "continuation"))
    assert.is_true(c:send("x"))
  end)

  it("refuses control payloads over 125 bytes and bad close arguments", function()
    local c = new("server")
    assert.same({ nil, "control frame payload over 125 bytes" }, { c:ping(string.rep("p", 126)) })
    assert.same({ nil, "control frame payload over 125 bytes" }, { c:pong(string.rep("p", 126)) })
    assert.is_true(c:ping(string.rep("p", 125)))
    assert.same({ nil, "invalid close code" }, { c:close(1005) })
    assert.same({ nil, "invalid close code" }, { c:close(999) })
    assert.same({ nil, "invalid close code" }, { c:close(70000) })
    assert.same({ nil, "close reason over 123 bytes" }, { c:close(1000, string.rep("r", 124)) })
    assert.same({ nil, "close reason is not UTF-8" }, { c:close(1000, hex("FF")) })
    assert.same({ nil, "a close reason needs a code" }, { c:close(nil, "why") })
    assert.equal("open", c:state())
    assert.is_true(c:close(4000, string.rep("r", 123)))
  end)

  it("echoes a message straight from the event", function()
    local s, cl = new("server"), new("client")
    for _, msg in ipairs { "", "a", string.rep("b", 125), string.rep("c", 126), V.payload(70000) } do
      assert.is_true(cl:send(msg, "binary"))
      assert.is_true(s:feed(cl:output()))
      local kind, data = s:next()
      assert.equal("binary", kind)
      assert.is_true(s:send(data, kind))
      assert.is_true(cl:feed(s:output()))
      assert.same({ "binary", msg }, { cl:next() })
    end
  end)
end)

describe("ws.codec combined calls", function()
  it("c:feed_next(bytes) feeds and returns the next event, as feed then next", function()
    local bytes = m("text", "one") .. m("ping", "p") .. m("binary", "two", { fin = false })
      .. m("continuation", "!") .. m("close", close_payload(1000, "bye"))
    for cut = 0, #bytes do
      local a, b = new("server"), new("server")
      assert.is_true(a:feed(bytes:sub(1, cut)))
      local first = { b:feed_next(bytes:sub(1, cut)) }
      assert.same({ a:next() }, first)
      local evs_a, evs_b = drain(a), drain(b)
      assert.is_true(a:feed(bytes:sub(cut + 1)))
      local second = { b:feed_next(bytes:sub(cut + 1)) }
      assert.same({ a:next() }, second)
      for _, e in ipairs(drain(a)) do evs_a[#evs_a + 1] = e end
      for _, e in ipairs(drain(b)) do evs_b[#evs_b + 1] = e end
      assert.same(evs_a, evs_b)
      assert.equal(a:output(), b:output())
    end
    local c = new("server")
    assert.same({ "text", "hi" }, { c:feed_next(m("text", "hi")) })
    assert.equal(0, select("#", c:feed_next(m("text", "hi"):sub(1, 3))))
    assert.same({ "error", "invalid UTF-8 in text message", 1007 }, { new("server"):feed_next(m("text", "\255")) })
  end)

  it("c:feed_next refuses input over the buffer limit with nil, message, as feed", function()
    local c = new("server")
    local t = {}
    for i = 1, 30000 do t[i] = m("binary", "x") end
    assert.same({ nil, "input over the buffer limit" }, { c:feed_next(table.concat(t)) })
    assert.same({ "binary", "x" }, { c:feed_next(t[1]) })
  end)

  it("c:send_output(data [, kind [, opts]]) queues the frame and returns all the output", function()
    local c = new("server")
    assert.equal(u("text", "Hello"), c:send_output("Hello"))
    assert.equal(u("binary", "\0\1"), c:send_output("\0\1", "binary"))
    assert.is_true(c:ping("p"))
    assert.equal(u("ping", "p") .. u("text", "x"), c:send_output("x", "text"))
    assert.equal(0, c:pending())
    assert.equal(hex("01 03") .. "Hel", c:send_output("Hel", "text", { fin = false }))
    assert.equal(hex("80 02") .. "lo", c:send_output("lo", "continuation"))
    assert.same({ nil, "no fragmented message to continue" }, { c:send_output("x", "continuation") })
    assert.is_true(c:close(1000))
    assert.same({ nil, "close already sent" }, { c:send_output("late") })
    assert.equal(u("close", close_payload(1000, "")), c:output())
    assert.has_error(function() c:send_output("x", "ping") end)
    local cl = new("client")
    assert.same({ { opcode = 2, payload = "masked", fin = true, rsv = 0, masked = true } },
      frames_of(cl:send_output("masked", "binary")))
  end)

  it("raises the usual argument error for a self that is no conn", function()
    local c = new("server")
    for _, name in ipairs { "feed_next", "send_output", "feed", "next", "send", "output", "state", "buffered" } do
      assert.error_matches(function() c[name]({}, "x") end, "ws.codec.conn expected, got table", 1, true)
      assert.error_matches(function() c[name](io.stdout, "x") end, "ws.codec.conn expected", 1, true)
      assert.error_matches(function() c[name]() end, "ws.codec.conn expected", 1, true)
    end
  end)
end)

-- The entry points ws.resty calls through LuaJIT's FFI give what the methods give.
local have_ffi = pcall(require, "ffi") and package.searchpath
  and package.searchpath("ws.codec", package.cpath)
-- Only LuaJIT has an FFI: elsewhere there is nothing to test (the methods are tested above).
local describe_ffi = have_ffi and describe or function() end

describe_ffi("ws.codec entry points for LuaJIT's FFI", function()
  it("are what ws.resty uses, and answer as feed_next, next and send_output", function()
    local resty = require "ws.resty"
    assert.is_true(resty.ffi)
    local ffi = require "ffi"
    local lib = ffi.load(package.searchpath("ws.codec", package.cpath))
    local ev = ffi.new("ws_codec_event")
    local function event(k)
      if k == 0 then return nil end
      if k == -1 then return nil, "input over the buffer limit" end
      local names = { "text", "binary", "ping", "pong", "close", "error" }
      local data = ffi.string(ev.data, ev.len)
      if k == 5 then return "close", tonumber(ev.code), data end
      if k == 6 then return "error", data, tonumber(ev.code) end
      return names[k], data
    end
    local bytes = m("text", "one") .. m("ping", "p") .. m("pong", "q") .. m("binary", string.rep("b", 70000))
      .. m("close", close_payload(4000, "bye"))
    for _, cut in ipairs { 0, 1, 7, #bytes - 3, #bytes } do
      local a, b = new("server"), new("server")
      assert.same({ a:feed_next(bytes:sub(1, cut)) }, { event(lib.ws_codec_feed_next(b, bytes:sub(1, cut), cut, ev)) })
      assert.same({ a:feed_next(bytes:sub(cut + 1)) }, { event(lib.ws_codec_feed_next(b, bytes:sub(cut + 1), #bytes - cut, ev)) })
      for _ = 1, 6 do assert.same({ a:next() }, { event(lib.ws_codec_next(b, ev)) }) end
      assert.equal(a:output(), b:output())
    end
    local c = new("server")
    assert.same({ "error", "invalid UTF-8 in text message", 1007 }, { event(lib.ws_codec_feed_next(c, m("text", "\255"), 7, ev)) })
    local len = ffi.new("size_t[1]")
    local s = new("server")
    assert.is_true(s:ping("p"))
    local p = lib.ws_codec_send_output(s, 2, "xy", 2, len)
    assert.equal(u("ping", "p") .. u("binary", "xy"), ffi.string(p, len[0]))
    lib.ws_codec_output_taken(s)
    assert.equal(0, s:pending())
    assert.is_true(s:close())
    assert.is_true(lib.ws_codec_send_output(s, 1, "late", 4, len) == nil)
    assert.equal("close already sent", ffi.string(lib.ws_codec_error(s)))
  end)

  it("accept a valid upgrade as parse_request and accept_response do, and tell the state", function()
    require "ws.resty" -- declares the entry points
    local ffi = require "ffi"
    local lib = ffi.load(package.searchpath("ws.codec", package.cpath))
    local ok = "GET /x?y=1 HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      .. "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: p\r\nSec-WebSocket-Version: 13\r\n\r\n"
    local c = new("server")
    assert.equal(0, lib.ws_codec_accept_plain(c, ok, #ok))
    assert.equal(codec.accept_response((codec.parse_request(ok))), c:output())
    for _, bad in ipairs {
      ok:gsub("Version: 13", "Version: 12"), ok:gsub("GET", "POST"), ok:sub(1, -3),
      "GET / HTTP/1.1\r\nHost: a\r\n\r\n", (ok:gsub("Key: [^\r]*", "Key: short")),
    } do
      assert.equal(-1, lib.ws_codec_accept_plain(c, bad, #bad))
      assert.equal(0, c:pending())
    end
    local names = { [0] = "connecting", "open", "closing", "closed" }
    assert.equal("open", names[lib.ws_codec_state(c)])
    assert.is_true(c:close(1000))
    assert.equal(c:state(), names[lib.ws_codec_state(c)])
    assert.equal("connecting", names[lib.ws_codec_state(codec.new { open = false })])
  end)
end)

describe("ws.codec arguments", function()
  it("raises on bad options and arguments", function()
    assert.has_error(function() codec.new { role = "peer" } end,
      "bad option 'role' (\"server\" or \"client\" expected)")
    assert.has_error(function() codec.new { max_message = 0 } end,
      "bad option 'max_message' (positive integer expected)")
    assert.has_error(function() codec.new { max_frame = 1.5 } end,
      "bad option 'max_frame' (positive integer expected)")
    assert.has_error(function() codec.new { max_fragments = "x" } end,
      "bad option 'max_fragments' (positive integer expected)")
    local c = codec.new()
    assert.has_error(function() c:send({}) end)
    assert.has_error(function() c:send("x", "ping") end)
    assert.has_error(function() c:feed() end)
    assert.has_error(function() c.next({}) end)
  end)

  it("defaults to a server that is open", function()
    local c = codec.new()
    assert.equal("open", c:state())
    assert.is_true(c:feed(m("text", "hi")))
    assert.same({ "text", "hi" }, { c:next() })
    assert.matches("^ws.codec.conn %(open%)", tostring(c))
  end)
end)

describe("ws.codec edge cases of RFC 6455", function()
  it("answers every ping with a pong of the same payload, in order, also between fragments", function()
    local bytes = m("ping", "1") .. m("ping", "") .. m("binary", "a", { fin = false }) .. m("ping", string.rep("x", 125))
      .. m("continuation", "b", { fin = false }) .. m("ping", "\0\255") .. m("continuation", "c")
    local c = check_splits("server", bytes,
      { { "ping", "1" }, { "ping", "" }, { "ping", string.rep("x", 125) }, { "ping", "\0\255" }, { "binary", "abc" } })
    assert.equal(u("pong", "1") .. u("pong", "") .. u("pong", string.rep("x", 125)) .. u("pong", "\0\255"), c:output())
    local _, cc = run("client", { u("ping", "a") .. u("ping", "b") })
    local frames = frames_of(cc:output())
    assert.equal(2, #frames)
    assert.same({ opcode = 10, payload = "a", fin = true, rsv = 0, masked = true }, frames[1])
    assert.same({ opcode = 10, payload = "b", fin = true, rsv = 0, masked = true }, frames[2])
  end)

  it("neither reports nor answers a ping that follows the peer's close", function()
    local c = check_splits("server", m("close", close_payload(1000)) .. m("ping", "late"), { { "close", 1000, "" } })
    assert.equal(u("close", close_payload(1000)), c:output())
    c = new("server")
    c:feed(m("close", ""))
    assert.same({ "close", 1005, "" }, { c:next() })
    c:feed(m("ping", "later"))
    assert.is_nil(c:next())
    assert.equal(hex("88 00"), c:output())
  end)

  it("delivers empty text frames and carries the UTF-8 state across empty fragments", function()
    check_splits("server", m("text", ""), { { "text", "" } })
    check_splits("server", m("text", hex("E2 82"), { fin = false }) .. m("continuation", "", { fin = false })
      .. m("ping", "") .. m("continuation", hex("AC")), { { "ping", "" }, { "text", hex("E2 82 AC") } })
    check_splits("server", m("text", "", { fin = false }) .. m("continuation", hex("F0 9F"), { fin = false })
      .. m("continuation", "", { fin = false }) .. m("continuation", hex("98 80")), { { "text", hex("F0 9F 98 80") } })
  end)

  it("fails with 1007 when a text message ends inside a code point, single frame or fragmented", function()
    expect_fail("server", m("text", "ok" .. hex("E2 82")), "invalid UTF-8 in text message", 1007)
    expect_fail("client", u("text", hex("F0 9F 98")), "invalid UTF-8 in text message", 1007)
    expect_fail("server", m("text", hex("E2"), { fin = false }) .. m("continuation", hex("82"), { fin = false })
      .. m("continuation", ""), "invalid UTF-8 in text message", 1007)
    -- a binary message may end anywhere
    check_splits("server", m("binary", hex("E2 82")), { { "binary", hex("E2 82") } })
  end)

  it("fails on lengths near 2^63 from the header alone, without storing anything", function()
    local c = new("client")
    c:feed(hex("82 7F 7F FF FF FF FF FF FF FF"))
    assert.same({ "error", "message over max_message", 1009 }, { c:next() })
    c = new("client", { max_message = 2^53, max_frame = 2^53 })
    c:feed(hex("82 7F 7F FF FF FF FF FF FF FF"))
    assert.same({ "error", "message over max_message", 1009 }, { c:next() })
    c = new("client", { max_message = 2^53, max_frame = 2^53 })
    c:feed(hex("82 7F 00 20 00 00 00 00 00 01")) -- 2^53 + 1
    assert.same({ "error", "message over max_message", 1009 }, { c:next() })
    expect_fail("client", hex("82 7F FF FF FF FF FF FF FF FF"), "frame length has the top bit set", 1002)
    expect_fail("client", hex("82 7F 80 00 00 00 00 00 00 00"), "frame length has the top bit set", 1002)
    -- the announced length of a continuation counts with what was already received
    c = new("client", { max_message = 10 })
    c:feed(u("binary", "123456", { fin = false }) .. hex("80 7F 7F FF FF FF FF FF FF FB"))
    assert.same({ "error", "message over max_message", 1009 }, { c:next() })
  end)

  it("fails on a compressed frame near 2^63 from its header", function()
    assert.is_function(codec.new().set_deflate, "permessage-deflate is built into ws.codec")
    local c = new("client", { deflate = true })
    c:feed(hex("C2 7F 7F FF FF FF FF FF FF FF"))
    assert.same({ "error", "frame over max_frame", 1009 }, { c:next() })
  end)

  it("counts every frame of a message against max_fragments, empty ones included, control frames not", function()
    expect_fail("server", m("text", "a", { fin = false }) .. m("continuation", "b"), "message over max_fragments", 1009,
      { max_fragments = 1 })
    check_splits("server", m("text", "ab"), { { "text", "ab" } }, { max_fragments = 1 })
    local two = m("binary", "", { fin = false }) .. m("ping", "1") .. m("ping", "2") .. m("continuation", "")
    check_splits("server", two, { { "ping", "1" }, { "ping", "2" }, { "binary", "" } }, { max_fragments = 2 })
    expect_fail("server", m("binary", "", { fin = false }) .. m("continuation", "", { fin = false })
      .. m("continuation", ""), "message over max_fragments", 1009, { max_fragments = 2 })
    -- the count starts again with each message
    local again = {}
    for i = 1, 3 do again[i] = m("text", "x", { fin = false }) .. m("continuation", "y") end
    check_splits("server", table.concat(again), { { "text", "xy" }, { "text", "xy" }, { "text", "xy" } },
      { max_fragments = 2 })
  end)

  it("refuses every close code the wire does not allow, and sends 3000-4999", function()
    local c = new("server")
    for _, code in ipairs { 1, 999, 1004, 1005, 1006, 1015, 1016, 1500, 2000, 2999, 5000, 65535 } do
      assert.same({ nil, "invalid close code" }, { c:close(code) })
    end
    assert.equal("open", c:state())
    assert.equal("", c:output())
    for _, code in ipairs { 1000, 1012, 1014, 3000, 4999 } do
      c = new("client")
      assert.is_true(c:close(code, "r"))
      assert.equal(close_payload(code, "r"), frames_of(c:output())[1].payload)
    end
  end)

  it("echoes the peer's code in its close reply, and reports the first of two close frames only", function()
    for _, code in ipairs { 1000, 1001, 1011, 3000, 4999 } do
      local c = check_splits("server", m("close", close_payload(code, "why")) .. m("close", close_payload(1000)),
        { { "close", code, "why" } })
      assert.equal(u("close", close_payload(code)), c:output())
    end
  end)

  it("queues nothing after a failure: no pong, no reply, no second close", function()
    local c = new("server")
    c:feed(m("ping", "1") .. m("text", hex("FF")) .. m("ping", "2") .. m("close", close_payload(1000)))
    assert.same({ "ping", "1" }, { c:next() })
    assert.same({ "error", "invalid UTF-8 in text message", 1007 }, { c:next() })
    assert.is_nil(c:next())
    assert.equal(u("pong", "1") .. u("close", close_payload(1007, "invalid UTF-8 in text message")), c:output())
    assert.same({ nil, "close already sent" }, { c:send("x") })
    assert.same({ nil, "close already sent" }, { c:ping("x") })
    assert.same({ nil, "close already sent" }, { c:pong("x") })
    assert.same({ nil, "close already sent" }, { c:close(1000) })
    assert.is_true(c:feed(m("ping", "3")))
    assert.is_nil(c:next())
    assert.equal("", c:output())
    assert.equal("closed", c:state())
  end)
end)
