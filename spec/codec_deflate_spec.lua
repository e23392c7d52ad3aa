-- permessage-deflate (RFC 7692) in ws.codec: the section 7.2.3 byte vectors, negotiation on
-- both sides (every parameter, with and without values, repeats, unknown names, ranges,
-- several offers), round trips in every mode, a decompression bomb, and memory per mode.
local codec = require "ws.codec"
local helper = require "helper"
local V = require "vectors.rfc6455"
local hex, tohex = V.hex, V.tohex

local function server(params, cfg) return codec.deflater(params or {}, cfg or {}, "server") end
local function client(params, cfg) return codec.deflater(params or {}, cfg or {}, "client") end

local function random_bytes(n, alphabet)
  local t = {}
  for i = 1, n do t[i] = string.char(math.random(0, (alphabet or 256) - 1)) end
  return table.concat(t)
end

local function text_like(n)
  local words = { "user", "message", "hello", "world", "channel", "general", "the", "quick",
                  "brown", "fox", "timestamp", "{", "}", "\"", ":", "," }
  local t, len = {}, 0
  while len < n do
    local w = words[math.random(#words)] .. (math.random(3) == 1 and tostring(math.random(1000)) or " ")
    t[#t + 1] = w
    len = len + #w
  end
  return table.concat(t):sub(1, n)
end

-- Inflate data as one message, fed in the given pieces (fin on the last).
local function inflate_pieces(d, data, cuts, max)
  local out, at = {}, 1
  for i = 1, #cuts + 1 do
    local stop = cuts[i] or #data
    local r, err, code = d:inflate(data:sub(at, stop), i == #cuts + 1, max)
    if not r then return nil, err, code end
    out[#out + 1] = r
    at = stop + 1
  end
  return table.concat(out)
end

describe("permessage-deflate RFC 7692 section 7.2.3 vectors", function()
  local hello = hex("f2 48 cd c9 c9 07 00")

  it("compresses \"Hello\" to f2 48 cd c9 c9 07 00 (7.2.3.1)", function()
    assert.equal(tohex(hello), tohex(server():compress("Hello")))
    assert.equal(tohex(hello), tohex(client():compress("Hello")))
    assert.equal(tohex(hello), tohex(server({}, { window_bits = 15, mem_level = 8 }):compress("Hello")))
  end)

  it("shares the LZ77 window with context takeover: the second \"Hello\" is f2 00 11 00 00 (7.2.3.2)", function()
    local d = server()
    assert.equal(tohex(hello), tohex(d:compress("Hello")))
    assert.equal("F2 00 11 00 00", tohex(d:compress("Hello")))
    local r = client()
    assert.equal("Hello", r:inflate(hello))
    assert.equal("Hello", r:inflate(hex("f2 00 11 00 00")))
  end)

  it("starts afresh per message without context takeover", function()
    for _, d in ipairs { server({ server_no_context_takeover = true }),
                         server({}, { no_context_takeover = true }),
                         client({ client_no_context_takeover = true }) } do
      assert.equal(tohex(hello), tohex(d:compress("Hello")))
      assert.equal(tohex(hello), tohex(d:compress("Hello")))
    end
    -- and an inflater that may reset cannot resolve a back reference to the last message
    local r = client({ server_no_context_takeover = true })
    assert.equal("Hello", r:inflate(hello))
    local m, err, code = r:inflate(hex("f2 00 11 00 00"))
    assert.is_nil(m)
    assert.equal("invalid compressed data", err)
    assert.equal("protocol", code)
  end)

  it("inflates a DEFLATE block with no compression (7.2.3.3)", function()
    assert.equal("Hello", client():inflate(hex("00 05 00 fa ff 48 65 6c 6c 6f 00")))
  end)

  it("inflates a block with BFINAL set, and keeps the window for the next message (7.2.3.4)", function()
    local r = client()
    assert.equal("Hello", r:inflate(hex("f3 48 cd c9 c9 07 00 00")))
    assert.equal("Hello", r:inflate(hex("f2 00 11 00 00")))
    -- a sender that stops right after the final block is understood too
    assert.equal("Hello", client():inflate(hex("f3 48 cd c9 c9 07 00")))
  end)

  it("inflates two DEFLATE blocks in one message (7.2.3.5)", function()
    assert.equal("Hello", client():inflate(hex("f2 48 05 00 00 00 ff ff ca c9 c9 07 00")))
  end)

  it("sends an empty message as the single byte 00, in every state of the window", function()
    local d = server()
    assert.equal("00", tohex(d:compress("")))
    d:compress("Hello")
    assert.equal("00", tohex(d:compress("")))
    assert.equal("00", tohex(d:compress("")))
    local r = client()
    assert.equal("", r:inflate(hex("00")))
    assert.equal("Hello", r:inflate(hello))
    assert.equal("", r:inflate(hex("00")))
  end)

  it("inflates every vector split at every byte position", function()
    local vectors = { hello, hex("00 05 00 fa ff 48 65 6c 6c 6f 00"), hex("f3 48 cd c9 c9 07 00 00"),
                      hex("f2 48 05 00 00 00 ff ff ca c9 c9 07 00") }
    for _, v in ipairs(vectors) do
      for i = 0, #v do
        for j = i, #v do
          assert.equal("Hello", inflate_pieces(client(), v, { i, j }))
        end
      end
    end
    -- the second message of 7.2.3.2, split everywhere, after the first
    for i = 0, 5 do
      local r = client()
      assert.equal("Hello", r:inflate(hello))
      assert.equal("Hello", inflate_pieces(r, hex("f2 00 11 00 00"), { i }))
    end
  end)

  it("keeps a window of 8 bits although zlib compresses with 9: no distance beyond 256", function()
    -- zlib's 9-bit compressor reaches back at most 512 - 262 = 250 bytes: a block repeated
    -- 253 bytes later finds no match, one repeated 200 bytes later does
    local far = random_bytes(253):rep(20)
    local z = server({ server_max_window_bits = 8 }):compress(far)
    assert.is_true(#z > 253 * 19, #z)
    assert.equal(far, client({ server_max_window_bits = 8 }):inflate(z))
    local near = random_bytes(200):rep(20)
    z = server({ server_max_window_bits = 8 }):compress(near)
    assert.is_true(#z < 200 * 2, #z)
    assert.equal(near, client({ server_max_window_bits = 8 }):inflate(z))
    -- a 9-bit window agreed is used as such: 300 bytes back is within reach
    local mid = random_bytes(300):rep(20)
    assert.is_true(#server({ server_max_window_bits = 9 }):compress(mid) > 300 * 19)
    assert.is_true(#server({ server_max_window_bits = 10 }):compress(mid) < 300 * 2)
  end)

  it("uses at most the agreed window: 10 bits reach 1 KiB back, not 2 KiB", function()
    local block = random_bytes(1500)
    local data = block:rep(8)
    local z = server({ server_max_window_bits = 10 }):compress(data)
    assert.is_true(#z > #block * 7) -- no match 1500 bytes back
    assert.equal(data, client({ server_max_window_bits = 10 }):inflate(z))
    local z11 = server({ server_max_window_bits = 11 }):compress(data)
    assert.is_true(#z11 < #block * 2)
  end)

  it("refuses corrupt data and a message cut inside a block", function()
    local m, err, code = client():inflate(hex("ff ff ff ff"))
    assert.is_nil(m)
    assert.equal("invalid compressed data", err)
    assert.equal("protocol", code)
    local z = server():compress(text_like(5000))
    m, err = client():inflate(z:sub(1, #z - 3))
    assert.is_nil(m)
    assert.equal("invalid compressed data", err)
  end)
end)

describe("codec.deflate_negotiate (server)", function()
  local function ok(offers, cfg)
    local resp, params = codec.deflate_negotiate(offers, cfg)
    assert.is_string(resp, "expected an accepted offer, got " .. tostring(params))
    return resp, params
  end
  local function declined(offers, why, cfg)
    local resp, err = codec.deflate_negotiate(offers, cfg)
    assert.equal(false, resp)
    assert.equal(why, err)
  end
  local function malformed(offers, why)
    local resp, err, status = codec.deflate_negotiate(offers)
    assert.is_nil(resp)
    assert.equal(why, err)
    assert.equal(400, status)
  end
  local w15 = { window_bits = 15 }

  it("accepts a bare offer, announcing its own smaller window", function()
    local resp, params = ok("permessage-deflate")
    assert.equal("permessage-deflate; server_max_window_bits=13", resp)
    assert.same({ server_no_context_takeover = false, client_no_context_takeover = false,
                  server_max_window_bits = 13, client_max_window_bits = 15 }, params)
    assert.equal("permessage-deflate", ok("permessage-deflate", w15))
  end)

  it("limits the client's window only when client_max_window_bits is offered", function()
    local resp, params = ok("permessage-deflate; client_max_window_bits")
    assert.equal("permessage-deflate; server_max_window_bits=13; client_max_window_bits=13", resp)
    assert.equal(13, params.client_max_window_bits)
    assert.equal("permessage-deflate", ok("permessage-deflate; client_max_window_bits", w15))
    resp, params = ok("permessage-deflate; client_max_window_bits=10", w15)
    assert.equal("permessage-deflate; client_max_window_bits=10", resp)
    assert.equal(10, params.client_max_window_bits)
    resp, params = ok("permessage-deflate; client_max_window_bits=15")
    assert.equal("permessage-deflate; server_max_window_bits=13; client_max_window_bits=13", resp)
    resp, params = ok("permessage-deflate; client_max_window_bits=8")
    assert.equal("permessage-deflate; server_max_window_bits=13; client_max_window_bits=8", resp)
    assert.equal(8, params.client_max_window_bits)
  end)

  it("never imposes an 8-bit window on a client that did not ask for it", function()
    -- zlib-based clients (Python's websockets) cannot compress with 8 bits
    local resp, params = ok("permessage-deflate; client_max_window_bits", { window_bits = 8 })
    assert.equal("permessage-deflate; server_max_window_bits=8; client_max_window_bits=9", resp)
    assert.equal(9, params.client_max_window_bits)
    assert.equal(8, params.server_max_window_bits)
  end)

  it("grants server_max_window_bits at or below the offer, 8 included", function()
    for bits = 8, 15 do
      local resp, params = ok("permessage-deflate; server_max_window_bits=" .. bits, w15)
      assert.equal("permessage-deflate; server_max_window_bits=" .. bits, resp)
      assert.equal(bits, params.server_max_window_bits)
    end
    local resp = ok("permessage-deflate; server_max_window_bits=15")
    assert.equal("permessage-deflate; server_max_window_bits=13", resp)
  end)

  it("takes quoted values", function()
    local resp, params = ok('permessage-deflate; server_max_window_bits="10"; client_max_window_bits="9"', w15)
    assert.equal("permessage-deflate; server_max_window_bits=10; client_max_window_bits=9", resp)
    assert.equal(10, params.server_max_window_bits)
    assert.equal(9, params.client_max_window_bits)
    assert.equal("permessage-deflate; server_max_window_bits=11",
                 (ok('permessage-deflate; server_max_window_bits="1\\1"', w15)))
  end)

  it("grants server_no_context_takeover and client_no_context_takeover", function()
    local resp, params = ok("permessage-deflate; server_no_context_takeover", w15)
    assert.equal("permessage-deflate; server_no_context_takeover", resp)
    assert.is_true(params.server_no_context_takeover)
    assert.is_false(params.client_no_context_takeover)
    resp, params = ok("permessage-deflate; client_no_context_takeover", w15)
    assert.equal("permessage-deflate; client_no_context_takeover", resp)
    assert.is_true(params.client_no_context_takeover)
    resp = ok("permessage-deflate; client_no_context_takeover; server_no_context_takeover; " ..
              "client_max_window_bits=12; server_max_window_bits=11", w15)
    assert.equal("permessage-deflate; server_no_context_takeover; client_no_context_takeover; " ..
                 "server_max_window_bits=11; client_max_window_bits=12", resp)
  end)

  it("imposes no context takeover both ways in shared mode", function()
    local resp, params = ok("permessage-deflate; client_max_window_bits", { mode = "shared" })
    assert.equal("permessage-deflate; server_no_context_takeover; client_no_context_takeover; " ..
                 "server_max_window_bits=13; client_max_window_bits=13", resp)
    assert.is_true(params.server_no_context_takeover)
    assert.is_true(params.client_no_context_takeover)
  end)

  it("reads names case-insensitively", function()
    assert.equal("permessage-deflate; server_no_context_takeover",
                 (ok("PerMessage-Deflate; Server_No_Context_Takeover", w15)))
  end)

  it("declines an offer with a parameter that has a value it must not have, or lacks one", function()
    declined("permessage-deflate; server_no_context_takeover=1", "server_no_context_takeover takes no value")
    declined("permessage-deflate; client_no_context_takeover=\"\"", "client_no_context_takeover takes no value")
    declined("permessage-deflate; server_max_window_bits", "server_max_window_bits must be 8..15")
  end)

  it("declines out-of-range and malformed window sizes", function()
    for _, v in ipairs { "7", "16", "0", "08", "010", "1a", "-9", "9.0", "\"\"", "\"9 \"", "100" } do
      declined("permessage-deflate; server_max_window_bits=" .. v, "server_max_window_bits must be 8..15")
      declined("permessage-deflate; client_max_window_bits=" .. v, "client_max_window_bits must be 8..15")
    end
  end)

  it("declines repeated parameters", function()
    for _, p in ipairs { "server_no_context_takeover", "client_no_context_takeover",
                         "server_max_window_bits=10", "client_max_window_bits" } do
      local name = p:match("^[%w_]+")
      declined("permessage-deflate; " .. p .. "; " .. p, "duplicate " .. name)
    end
    declined("permessage-deflate; client_max_window_bits=10; client_max_window_bits",
             "duplicate client_max_window_bits")
    declined("permessage-deflate" .. ("; client_no_context_takeover"):rep(12),
             "duplicate permessage-deflate parameter")
  end)

  it("declines unknown parameters", function()
    declined("permessage-deflate; foo", "unknown permessage-deflate parameter")
    declined("permessage-deflate; max_window_bits=10", "unknown permessage-deflate parameter")
  end)

  it("takes the first offer that can be met, falling back as the RFC's examples do", function()
    local resp, params = ok("permessage-deflate; client_max_window_bits; server_max_window_bits=10, " ..
                            "permessage-deflate; client_max_window_bits", w15)
    assert.equal("permessage-deflate; server_max_window_bits=10", resp)
    assert.equal(10, params.server_max_window_bits)
    resp = ok("permessage-deflate; server_max_window_bits=16, permessage-deflate; foo, " ..
              "permessage-deflate; server_no_context_takeover", w15)
    assert.equal("permessage-deflate; server_no_context_takeover", resp)
  end)

  it("reads offers across several header values and skips other extensions", function()
    local resp = ok({ "x-webkit-deflate-frame", "foo; bar=\"a,b\", permessage-deflate; server_max_window_bits=9" }, w15)
    assert.equal("permessage-deflate; server_max_window_bits=9", resp)
    resp = ok({ "permessage-deflate; foo", "permessage-deflate" }, w15)
    assert.equal("permessage-deflate", resp)
  end)

  it("answers false without an offer, and says why the last offer was declined", function()
    assert.equal(false, codec.deflate_negotiate(nil))
    assert.equal(false, codec.deflate_negotiate(""))
    assert.equal(false, codec.deflate_negotiate({}))
    assert.equal(false, codec.deflate_negotiate("x-webkit-deflate-frame, , foo"))
    local resp, why = codec.deflate_negotiate("permessage-deflate; foo, permessage-deflate; server_max_window_bits=5")
    assert.equal(false, resp)
    assert.equal("server_max_window_bits must be 8..15", why)
  end)

  it("answers 400 for a header that breaks the extension grammar", function()
    malformed("permessage-deflate; =1", "invalid extension parameter")
    malformed("permessage-deflate;", "invalid extension parameter")
    malformed("permessage-deflate; a=", "invalid extension parameter value")
    malformed('permessage-deflate; a="1', "unterminated quoted string")
    malformed("permessage-deflate x", "invalid character in extension list")
    malformed("permessage-deflate; a=b c", "invalid character in extension list")
    malformed("; server_no_context_takeover", "invalid extension name")
    malformed({ "permessage-deflate", "permessage-deflate; a=(1)" }, "invalid extension parameter value")
    malformed("permessage-deflate; a=\"\1\"", "invalid quoted string")
  end)

  it("raises on a bad config", function()
    assert.has_error(function() codec.deflate_negotiate("permessage-deflate", { window_bits = 16 }) end,
                     "bad deflate option 'window_bits' (integer 8..15 expected)")
    assert.has_error(function() codec.deflate_negotiate("permessage-deflate", { mem_level = 0 }) end,
                     "bad deflate option 'mem_level' (integer 1..9 expected)")
    assert.has_error(function() codec.deflate_negotiate("permessage-deflate", { mode = "all" }) end,
                     "bad deflate option 'mode' (\"shared\" or \"dedicated\" expected)")
  end)
end)

describe("codec.deflate_offer and codec.deflate_accept (client)", function()
  it("offers client_max_window_bits, and no context takeover in shared mode", function()
    assert.equal("permessage-deflate; client_max_window_bits", codec.deflate_offer())
    assert.equal("permessage-deflate; client_max_window_bits; server_no_context_takeover; " ..
                 "client_no_context_takeover", codec.deflate_offer { mode = "shared" })
  end)

  it("accepts a response within the offer", function()
    assert.same({ server_no_context_takeover = false, client_no_context_takeover = false,
                  server_max_window_bits = 15, client_max_window_bits = 15 },
                codec.deflate_accept("permessage-deflate"))
    assert.same({ server_no_context_takeover = true, client_no_context_takeover = true,
                  server_max_window_bits = 10, client_max_window_bits = 9 },
                codec.deflate_accept("permessage-deflate; server_no_context_takeover; " ..
                                     "client_no_context_takeover; server_max_window_bits=10; " ..
                                     "client_max_window_bits=\"9\""))
  end)

  it("fails a response with a parameter the offer did not allow", function()
    local function bad(resp, why, offer, cfg)
      local p, err = codec.deflate_accept(resp, cfg, offer)
      assert.is_nil(p)
      assert.equal(why, err)
    end
    bad("permessage-deflate; client_max_window_bits=10", "client_max_window_bits not offered", "permessage-deflate")
    bad("permessage-deflate; client_max_window_bits", "client_max_window_bits must be 8..15")
    bad("permessage-deflate; client_max_window_bits=12", "client_max_window_bits above the offer",
        "permessage-deflate; client_max_window_bits=10")
    bad("permessage-deflate; server_max_window_bits=12", "server_max_window_bits above the offer",
        "permessage-deflate; server_max_window_bits=10")
    bad("permessage-deflate", "server_max_window_bits not granted", "permessage-deflate; server_max_window_bits=10")
    bad("permessage-deflate", "server_no_context_takeover not granted", nil, { mode = "shared" })
    bad("permessage-deflate; server_max_window_bits=16", "server_max_window_bits must be 8..15")
    bad("permessage-deflate; foo", "unknown permessage-deflate parameter")
    bad("permessage-deflate; server_no_context_takeover; server_no_context_takeover",
        "duplicate server_no_context_takeover")
    bad("x-webkit-deflate-frame", "extension not offered")
    bad("permessage-deflate, permessage-deflate", "permessage-deflate accepted twice")
    bad("permessage-deflate; a=\"", "unterminated quoted string")
  end)

  it("accepts a response that fits any one of several offers", function()
    local offer = "permessage-deflate; server_max_window_bits=10, permessage-deflate; client_max_window_bits"
    local p = assert(codec.deflate_accept("permessage-deflate; client_max_window_bits=11", {}, offer))
    assert.equal(11, p.client_max_window_bits)
    assert(codec.deflate_accept("permessage-deflate; server_max_window_bits=9", {}, offer))
  end)

  it("keeps its own no-context-takeover hint even when the server says nothing of it", function()
    local p = assert(codec.deflate_accept("permessage-deflate", {},
                                          "permessage-deflate; client_no_context_takeover"))
    assert.is_true(p.client_no_context_takeover)
  end)

  it("answers false when the response has no extension", function()
    assert.equal(false, codec.deflate_accept(""))
  end)

  it("agrees with the server on every parameter, whatever the offer", function()
    local offers = { "permessage-deflate", "permessage-deflate; client_max_window_bits",
                     "permessage-deflate; client_max_window_bits=9; server_max_window_bits=8",
                     "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
                     "permessage-deflate; client_max_window_bits=15; server_max_window_bits=15" }
    for _, offer in ipairs(offers) do
      for _, cfg in ipairs { {}, { window_bits = 15 }, { window_bits = 8 }, { mode = "shared" } } do
        local resp, sp = codec.deflate_negotiate(offer, cfg)
        local cp = assert(codec.deflate_accept(resp, {}, offer))
        assert.same(sp, cp)
      end
    end
  end)
end)

describe("permessage-deflate round trips", function()
  local modes = {
    { name = "dedicated, default windows", cfg = {}, offer = "permessage-deflate; client_max_window_bits" },
    { name = "dedicated, 15-bit windows", cfg = { window_bits = 15, mem_level = 8 },
      offer = "permessage-deflate; client_max_window_bits" },
    { name = "dedicated, 8-bit windows", cfg = { window_bits = 8, mem_level = 1 },
      offer = "permessage-deflate; client_max_window_bits" },
    { name = "shared (no context takeover)", cfg = { mode = "shared" },
      offer = "permessage-deflate; client_max_window_bits" },
    { name = "client asks for no server context takeover", cfg = {},
      offer = "permessage-deflate; server_no_context_takeover; server_max_window_bits=9" },
  }
  for _, mode in ipairs(modes) do
    it("carries random and text-like messages both ways: " .. mode.name, function()
      math.randomseed(7)
      local resp, params = codec.deflate_negotiate(mode.offer, mode.cfg)
      assert.is_string(resp)
      local s, c = server(params, mode.cfg), client(params, {})
      local sizes = { 0, 1, 5, 63, 64, 200, 1000, 4096, 40000, 100000 }
      for round = 1, 2 do
        for _, n in ipairs(sizes) do
          for _, msg in ipairs { random_bytes(n), text_like(n), random_bytes(n, 4) } do
            local z = s:compress(msg)
            if round == 1 then
              assert.equal(msg, c:inflate(z))
            else -- pieces cut at random places
              local a = math.random(0, #z)
              assert.equal(msg, inflate_pieces(c, z, { a, math.random(a, #z) }))
            end
            z = c:compress(msg)
            assert.equal(msg, s:inflate(z))
          end
        end
      end
    end)
  end

  it("compresses repetitive text well", function()
    local msg = text_like(20000)
    local z = server():compress(msg)
    assert.is_true(#z < #msg / 2)
  end)
end)

describe("permessage-deflate against Python websockets' implementation (no sockets)", function()
  local peer = helper.root .. "/spec/support/deflate_peer.py"

  -- Our side compresses `msgs`; Python inflates each and compresses it back; we inflate that.
  local function exchange(ours, argv, msgs, skip_first_line)
    local lines = {}
    for i, msg in ipairs(msgs) do lines[i] = tohex(ours:compress(msg)):gsub(" ", "") end
    local ok, code, out, err = helper.run(argv, { stdin = table.concat(lines, "\n") .. "\n", timeout = 60 })
    assert.is_true(ok, "python failed (" .. tostring(code) .. "): " .. tostring(err))
    local i = 0
    for line in out:gmatch("[^\n]+") do
      if skip_first_line and i == 0 and not line:match("^%x* %x*$") then
        skip_first_line = false
      else
        i = i + 1
        local inflated, back = line:match("^(%x*) (%x*)$")
        assert.equal(tohex(msgs[i]), tohex(hex(inflated)))
        assert.equal(msgs[i], ours:inflate(hex(back)))
      end
    end
    assert.equal(#msgs, i)
  end

  local function messages()
    math.randomseed(5)
    local msgs = {}
    for i = 1, 12 do
      msgs[i] = (i % 2 == 0) and text_like(math.random(0, 6000)) or random_bytes(math.random(0, 3000), 8)
    end
    msgs[#msgs + 1] = text_like(100000)
    return msgs
  end

  for _, cfg in ipairs { {}, { mode = "shared" }, { window_bits = 8 }, { window_bits = 15 } } do
    it("serves a Python client, config " .. (cfg.mode or cfg.window_bits or "default"), function()
      local offer = "permessage-deflate; client_max_window_bits"
      local resp, params = codec.deflate_negotiate(offer, cfg)
      exchange(server(params, cfg), { helper.python, peer, "client", resp }, messages())
    end)
  end

  for _, case in ipairs { { 0, 0, "0" }, { 10, 11, "0" }, { 9, 9, "1" }, { 15, 8, "0" } } do
    it("talks to a Python server granting windows " .. case[1] .. "/" .. case[2] .. ", reset " .. case[3], function()
      local offer = codec.deflate_offer()
      local ok, _, out = helper.run({ helper.python, peer, "server", offer, case[1], case[2], case[3] })
      assert.is_true(ok)
      local resp = out:match("^[^\n]+")
      local params = assert(codec.deflate_accept(resp))
      if case[2] > 0 then assert.equal(case[2], params.client_max_window_bits) end
      exchange(client(params), { helper.python, peer, "server", offer, case[1], case[2], case[3] },
               messages(), true)
    end)
  end
end)

describe("permessage-deflate decompression bomb", function()
  -- A deflate stream of zeros is periodic: one sync-flushed segment inflates to the same
  -- zeros again wherever it is repeated, so a bomb of any size is a repetition.
  local seg, link, seg_out
  setup(function()
    seg_out = 4 * 1024 * 1024
    seg = server({}, { window_bits = 15, mem_level = 8 }):compress(string.rep("\0", seg_out))
    link = seg .. hex("00 00 ff ff") -- the tail the compressor dropped, so copies can follow
  end)

  local function peak_rss_kib()
    local f = io.open("/proc/self/status", "r")
    if not f then return nil end
    local s = f:read("*a")
    f:close()
    return tonumber(s:match("VmHWM:%s*(%d+)"))
  end

  it("refuses a few KiB that inflate to MiB, at the limit", function()
    assert.is_true(#seg < 8 * 1024, "segment is " .. #seg .. " bytes")
    local r = client()
    local m, err, code = r:inflate(seg, true, 1024 * 1024)
    assert.is_nil(m)
    assert.equal("message over max_message", err)
    assert.equal("toolarge", code)
    -- exactly at the limit is fine
    assert.equal(seg_out, #assert(client():inflate(seg, true, seg_out)))
    m, err = client():inflate(seg, true, seg_out - 1)
    assert.equal("message over max_message", err)
  end)

  it("refuses a message that would inflate to 4 GiB, in bounded time and memory", function()
    local bomb = link:rep(1023) .. seg -- 4 GiB of zeros
    local before = peak_rss_kib()
    local started = os.clock()
    local r = client()
    local m, err, code = r:inflate(bomb, true, 1024 * 1024)
    assert.is_nil(m)
    assert.equal("message over max_message", err)
    assert.equal("toolarge", code)
    -- the same bomb sent as many frames of one message: the limit spans the pieces
    r = client()
    local failed_at
    for i = 1, 1024 do
      m, err, code = r:inflate(link, false, 1024 * 1024 * 16)
      if not m then failed_at = i break end
    end
    assert.equal(5, failed_at) -- 4 segments (16 MiB) fit in 16 MiB, the 5th does not
    assert.equal("message over max_message", err)
    assert.is_true(os.clock() - started < 5)
    assert.is_true(r:memory() < 64 * 1024)
    local after = peak_rss_kib()
    if before and after then
      assert.is_true(after - before < 64 * 1024, "peak RSS grew by " .. (after - before) .. " KiB")
    end
  end)
end)

describe("permessage-deflate memory", function()
  local figures = {}
  local function note(name, bytes) figures[#figures + 1] = string.format("%-58s %7d bytes", name, bytes) end
  teardown(function()
    if os.getenv("WS_DEFLATE_MEMORY") then print("\n" .. table.concat(figures, "\n")) end
  end)

  local function exchange(s, c, msg)
    assert.equal(msg, c:inflate(s:compress(msg)))
    assert.equal(msg, s:inflate(c:compress(msg)))
  end

  it("creates no zlib stream before the first message", function()
    local s = server()
    assert.is_true(s:memory() < 512)
    note("any mode, before the first message", s:memory())
  end)

  it("keeps a dedicated connection near 64 KiB when the client lets us limit its window", function()
    local resp, params = codec.deflate_negotiate("permessage-deflate; client_max_window_bits")
    local s, c = server(params), client(params)
    exchange(s, c, text_like(3000))
    assert.is_true(s:memory() <= 64 * 1024, s:memory())
    assert.is_true(s:memory() > 32 * 1024)
    note("dedicated (window 13, memLevel 4), client window limited", s:memory())
    local resp2, params2 = codec.deflate_negotiate("permessage-deflate")
    s, c = server(params2), client(params2)
    exchange(s, c, text_like(3000))
    assert.is_true(s:memory() <= 96 * 1024, s:memory())
    note("dedicated, client window 15 (no client_max_window_bits)", s:memory())
    local cfg = { window_bits = 15, mem_level = 8 }
    s, c = server({}, cfg), client({}, cfg)
    exchange(s, c, text_like(3000))
    note("zlib defaults (window 15, memLevel 8) for comparison", s:memory())
    assert.is_true(s:memory() > 256 * 1024)
  end)

  it("holds no zlib memory between messages in shared mode", function()
    local cfg = { mode = "shared" }
    local resp, params = codec.deflate_negotiate("permessage-deflate; client_max_window_bits", cfg)
    local s, c = server(params, cfg), client(params, {})
    local idle = s:memory()
    for _ = 1, 3 do
      exchange(s, c, text_like(3000))
      assert.equal(idle, s:memory())
      assert.equal(idle, c:memory())
    end
    note("shared, between messages", s:memory())
  end)

  it("releases the inflater only when the peer resets its context", function()
    local _, params = codec.deflate_negotiate("permessage-deflate; client_no_context_takeover; " ..
                                              "client_max_window_bits")
    local s, c = server(params), client(params)
    exchange(s, c, text_like(3000))
    -- the server keeps its compressor (46,912 bytes at the defaults), not the inflater
    assert.is_true(s:memory() < 48 * 1024, s:memory())
    assert.is_true(s:memory() > 40 * 1024, s:memory())
    note("client_no_context_takeover: compressor only", s:memory())
  end)

  it("frees everything on close, and close is idempotent", function()
    local s = server()
    s:compress(text_like(1000))
    s:close()
    s:close()
    assert.has_error(function() s:compress("x") end, "deflater is closed")
  end)
end)
