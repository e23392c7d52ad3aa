-- ws.socketio's decoders: the Socket.IO v5 packet parser (text packets and binary
-- attachments), Engine.IO's base64 and query strings. Known vectors from the protocol's
-- description, then a bounded randomized run (the decoders are Lua, so instead of a libFuzzer
-- driver: thousands of random and mutated packets), asserting that a decoder never raises and
-- fails only with its documented messages.
package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
local parser = require "ws.socketio.parser"
local engine = require "ws.socketio.engine"

local E = parser.errors
local KNOWN = {}
for _, m in pairs(E) do KNOWN[m] = true end

local function decode(s, max)
  local d = parser.decoder({ max_attachments = max or 10 })
  return d:add(s, false)
end

describe("socketio parser: known packets", function()
  it("decodes the protocol's examples", function()
    local p = assert(decode('0'))
    assert.same({ type = 0, nsp = "/" }, p)
    p = assert(decode('0/admin,{"token":"123"}'))
    assert.same({ type = 0, nsp = "/admin", data = { token = "123" } }, p)
    p = assert(decode('2["hello",1]'))
    assert.same({ type = 2, nsp = "/", data = { "hello", 1 } }, p)
    p = assert(decode('2/admin,456["project:delete",123]'))
    assert.same({ type = 2, nsp = "/admin", id = 456, data = { "project:delete", 123 } }, p)
    p = assert(decode('3/admin,456[]'))
    assert.same({ type = 3, nsp = "/admin", id = 456, data = {} }, p)
    p = assert(decode('1/admin,'))
    assert.same({ type = 1, nsp = "/admin" }, p)
    p = assert(decode('4{"message":"Not authorized"}'))
    assert.same({ type = 4, nsp = "/", data = { message = "Not authorized" } }, p)
  end)

  it("puts binary attachments back where their placeholders are", function()
    local d = parser.decoder()
    assert.is_false(d:add('52-["hello",{"_placeholder":true,"num":1},{"x":{"_placeholder":true,"num":0}}]', false))
    assert.is_false(d:add("\1\2\3", true))
    local p = assert(d:add("\0", true))
    assert.equal(parser.BINARY_EVENT, p.type)
    assert.equal("hello", p.data[1])
    assert.is_true(parser.is_binary(p.data[2]))
    assert.equal("\0", p.data[2].data)
    assert.equal("\1\2\3", p.data[3].x.data)
  end)

  it("encodes events, acks and binary", function()
    assert.equal('2["hello",1]', (parser.encode({ type = 2, nsp = "/", data = { "hello", 1 } })))
    assert.equal('2/admin,12["a"]', (parser.encode({ type = 2, nsp = "/admin", id = 12, data = { "a" } })))
    assert.equal('0{"sid":"x"}', (parser.encode({ type = 0, data = { sid = "x" } })))
    local text, atts = parser.encode({ type = 3, id = 7, data = { parser.binary("\255") } })
    assert.equal('61-7[{"_placeholder":true,"num":0}]', text:gsub('"num":0,"_placeholder":true', '"_placeholder":true,"num":0'))
    assert.same({ "\255" }, atts)
    assert.equal('2["x",null,2]', (parser.encode({ type = 2, data = parser.array({ "x", nil, 2 }, 3) })))
  end)

  it("fails with its documented messages", function()
    local cases = {
      { "", E.type }, { "7", E.type }, { "x", E.type },
      { "5[]", E.attachments }, { "5x-[]", E.attachments },
      { "511-[\"a\"]", E.too_many },
      { "2/a\1,[\"a\"]", E.namespace },
      { "21234567890123456[\"a\"]", E.id },
      { "2[", E.payload }, { "2{}", E.payload }, { "2[1]", E.payload }, { "2", E.payload },
      { "3", E.payload }, { "3[]", E.payload }, -- an ACK needs its id
      { "1{}", E.payload }, { "0[]", E.payload }, { "4", E.payload }, { "0\"x\"", E.payload },
    }
    for _, c in ipairs(cases) do
      local p, err = decode(c[1])
      assert.is_nil(p, c[1])
      assert.equal(c[2], err, c[1])
    end
    local d = parser.decoder()
    local p, err = d:add("\1", true)
    assert.is_nil(p)
    assert.equal(E.unexpected, err)
    assert.is_false(d:add('51-["a",{"_placeholder":true,"num":3}]', false))
    p, err = d:add("x", true)
    assert.is_nil(p)
    assert.equal(E.placeholder, err)
    assert.is_false(d:add('51-["a",{"_placeholder":true,"num":0}]', false))
    p, err = d:add('2["b"]', false)
    assert.is_nil(p)
    assert.equal(E.unexpected, err)
  end)

  it("refuses JSON nested deeper than its limit", function()
    local p, err = decode("2[\"a\"," .. string.rep("[", 200) .. string.rep("]", 200) .. "]")
    assert.is_nil(p)
    assert.equal(E.payload, err)
  end)
end)

describe("socketio parser: randomized", function()
  -- A fixed seed per run keeps failures reproducible; the count keeps it bounded.
  local seed = tonumber(os.getenv("SOCKETIO_FUZZ_SEED") or "") or 20261207
  local N = tonumber(os.getenv("SOCKETIO_FUZZ_N") or "") or 20000
  math.randomseed(seed)

  local seeds = {
    '0', '0/admin,{"token":"123"}', '2["hello",1]', '2/admin,456["project:delete",123]', '3/admin,456[]',
    '1/admin,', '4{"message":"Not authorized"}', '51-["hello",{"_placeholder":true,"num":0}]',
    '62-/x,9[{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]', '2["a",{"b":[1,2,{"c":null}]},"\\u00e9"]',
    '20["x",1.5e300,-0,true,false]', '2["echo","plain text",-12,0,true,false,null]', '37[ "a" , 1 ]',
    '3123456789012345["ok"]', '2["x",007,1e5,"a\\"b"]',
  }
  local alphabet = '0123456789-/,[]{}":_placeholder truefalsnum\\\1\255'

  local function random_string(n)
    local t = {}
    for i = 1, n do
      if math.random() < 0.7 then
        local k = math.random(#alphabet)
        t[i] = alphabet:sub(k, k)
      else
        t[i] = string.char(math.random(0, 255))
      end
    end
    return table.concat(t)
  end

  local function mutate(s)
    local ops = math.random(1, 4)
    for _ = 1, ops do
      local r, pos = math.random(), math.random(1, #s + 1)
      if r < 0.3 and #s > 0 then -- flip a byte
        s = s:sub(1, pos - 1) .. string.char(math.random(0, 255)) .. s:sub(pos + 1)
      elseif r < 0.55 then -- insert
        s = s:sub(1, pos - 1) .. random_string(math.random(1, 4)) .. s:sub(pos)
      elseif r < 0.8 then -- delete
        s = s:sub(1, pos - 1) .. s:sub(pos + math.random(1, 4))
      else -- splice two seeds
        local other = seeds[math.random(#seeds)]
        s = s:sub(1, pos - 1) .. other:sub(math.random(1, #other))
      end
    end
    return s
  end

  local function check_result(ok, p, err, input)
    assert(ok, ("raised on %q: %s"):format(input, tostring(p)))
    if p == nil then
      assert(KNOWN[err], ("undocumented error %q on %q"):format(tostring(err), input))
    elseif p ~= false then
      assert.equal("table", type(p))
      assert(p.type >= 0 and p.type <= 6)
      assert.equal("string", type(p.nsp))
    end
  end

  it(("never raises on %d random and mutated packets (seed %d)"):format(N, seed), function()
    local d = parser.decoder({ max_attachments = 3 })
    local counts = { ok = 0, wait = 0, err = 0 }
    for i = 1, N do
      local input, binary
      local r = math.random()
      if r < 0.15 then
        input, binary = random_string(math.random(0, 40)), math.random() < 0.3
      else
        input, binary = mutate(seeds[math.random(#seeds)]), math.random() < 0.1
      end
      local ok, p, err = pcall(d.add, d, input, binary)
      check_result(ok, p, err, input)
      if p then counts.ok = counts.ok + 1 elseif p == false then counts.wait = counts.wait + 1 else counts.err = counts.err + 1 end
      if i % 97 == 0 then d:reset() end
    end
    -- the run reached every outcome
    assert.truthy(counts.ok > 0 and counts.wait > 0 and counts.err > 0)
  end)

  it(("reads the common packets from a WebSocket message as the full decoder does (%d inputs)"):format(N), function()
    local core = require "ws.core"
    assert.is_function(core.sio_decode) -- the C reader is the one checked here
    local same, common, in_c = 0, 0, 0
    for _ = 1, N do
      local input = math.random() < 0.15 and random_string(math.random(0, 40)) or mutate(seeds[math.random(#seeds)])
      local ok, t, id, data, digits = pcall(parser.decode_common, "4" .. input, 2)
      assert(ok, ("raised on %q: %s"):format(input, tostring(t)))
      local p, err = parser.decode_text(input, 3)
      if core.sio_decode("4" .. input, 2) then in_c = in_c + 1 end
      if t == false then
        assert.is_nil(p, input)
        assert.equal(err, id, input) -- the same documented message
        common = common + 1
      elseif t then
        assert.truthy(p, input)
        assert.is_nil(p.attachments)
        assert.equal(p.type, t)
        assert.equal("/", p.nsp)
        assert.equal(p.id, id)
        if id then assert.equal(id, tonumber(digits)) end
        assert.same(p.data, data)
        common = common + 1
      end
      same = same + 1
    end
    assert.truthy(common > N / 10, "too few common packets: " .. common)
    assert.truthy(in_c > N / 50, "too few packets read by sio_decode: " .. in_c)
    assert.equal(N, same)
  end)

  it(("builds the common acknowledgement as cjson encodes it (%d strings)"):format(N), function()
    local core = require "ws.core"
    for _ = 1, N do
      local v = random_string(math.random(0, 40))
      assert.equal("4317" .. parser.json.encode({ v }), core.sio_ack("17", v))
    end
    assert.equal("431[true]", core.sio_ack("1", true))
    assert.equal("431[false]", core.sio_ack("1", false))
    assert.is_nil(core.sio_ack("1", 1.5))
    assert.is_nil(core.sio_ack("1", {}))
  end)

  it("never raises on random base64 and query strings", function()
    for _ = 1, math.floor(N / 4) do
      local s = random_string(math.random(0, 30))
      local ok, out = pcall(engine.b64decode, s)
      assert(ok, out)
      assert(out == nil or type(out) == "string")
      local bytes = random_string(math.random(0, 30))
      assert.equal(bytes, engine.b64decode(engine.b64encode(bytes)))
      local ok2, q = pcall(engine.parse_query, s)
      assert(ok2, q)
      assert.equal("table", type(q))
    end
  end)
end)
