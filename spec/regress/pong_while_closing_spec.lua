-- RFC 6455 5.5.2: a ping is answered "unless it already received a Close frame". Having
-- sent our own close is no exemption: between our close and the peer's, pings still get
-- their pong (data, pings and a second close stay refused, 5.5.1).
local codec = require "ws.codec"
local V = require "vectors.rfc6455"

local function masked(kind, payload) return codec.frame(kind, payload, { mask = V.key }) end

describe("a ping received after our close and before the peer's", function()
  it("is answered with a pong of the same payload", function()
    local c = codec.new { role = "server" }
    assert.is_true(c:close(1000))
    assert.equal(codec.frame("close", "\3\232"), c:output())
    assert.is_true(c:feed(masked("ping", "p1") .. masked("ping", "")))
    assert.same({ "ping", "p1" }, { c:next() })
    assert.same({ "ping", "" }, { c:next() })
    assert.equal(codec.frame("pong", "p1") .. codec.frame("pong", ""), c:output())
    assert.equal("closing", c:state())
  end)

  it("is answered with a masked pong by a client", function()
    local c = codec.new { role = "client" }
    assert.is_true(c:close())
    c:output()
    c:feed(codec.frame("ping", "abc"))
    assert.same({ "ping", "abc" }, { c:next() })
    local out = c:output()
    local h = assert(codec.parse_frame_header(out))
    assert.equal(10, h.opcode)
    assert.is_true(h.masked)
    assert.equal("abc", (codec.mask(out:sub(h.header_length + 1), h.mask)))
  end)

  it("may be answered by the host when auto_pong is off; nothing else may be sent", function()
    local c = codec.new { role = "server", auto_pong = false }
    assert.is_true(c:close(1001))
    c:output()
    c:feed(masked("ping", "x"))
    assert.same({ "ping", "x" }, { c:next() })
    assert.equal("", c:output())
    assert.is_true(c:pong("x"))
    assert.equal(codec.frame("pong", "x"), c:output())
    assert.same({ nil, "close already sent" }, { c:send("data") })
    assert.same({ nil, "close already sent" }, { c:ping("p") })
    assert.same({ nil, "close already sent" }, { c:close(1000) })
  end)

  it("is neither reported nor answered once the peer's close arrived, nor after a failure", function()
    local c = codec.new { role = "server" }
    assert.is_true(c:close(1000))
    c:output()
    c:feed(masked("close", "\3\232") .. masked("ping", "late"))
    assert.same({ "close", 1000, "" }, { c:next() })
    assert.is_nil(c:next())
    assert.equal("", c:output())
    assert.same({ nil, "close already sent" }, { c:pong("late") })
    c = codec.new { role = "server" }
    c:feed(codec.frame("ping", "unmasked"))
    assert.same({ "error", "unmasked frame from client", 1002 }, { c:next() })
    c:output()
    assert.same({ nil, "close already sent" }, { c:pong("x") })
    assert.equal("", c:output())
  end)
end)
