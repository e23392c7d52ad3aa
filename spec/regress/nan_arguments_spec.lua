-- Numbers that are not numbers: a NaN (or an infinity) where the codec expects a close
-- code, an opcode, an RSV value, a mask phase or a deflate option is refused before it is
-- converted to an integer (converting a NaN or an out-of-range double is undefined in C).
local codec = require "ws.codec"

local nan, inf = 0 / 0, 1 / 0

describe("non-finite numbers as arguments", function()
  it("are an invalid close code", function()
    local c = codec.new()
    assert.same({ nil, "invalid close code" }, { c:close(nan) })
    assert.same({ nil, "invalid close code" }, { c:close(inf) })
    assert.same({ nil, "invalid close code" }, { c:close(-inf) })
    assert.equal("open", c:state())
  end)

  it("raise for frame opcodes, RSV bits and mask phases", function()
    assert.has_error(function() codec.frame(nan, "") end)
    assert.has_error(function() codec.frame(inf, "") end)
    assert.has_error(function() codec.frame("text", "", { rsv = nan }) end)
    assert.has_error(function() codec.mask("x", "abcd", nan) end)
  end)

  it("raise for deflate options", function()
    assert.has_error(function() codec.deflate_offer { window_bits = nan } end)
    assert.has_error(function() codec.deflater({ server_max_window_bits = nan }, {}) end)
  end)
end)
