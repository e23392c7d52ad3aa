-- c:close() without a code sends a close frame with no status; an explicit code must be
-- one the wire allows (RFC 6455 7.4), and 0 is not one.
local codec = require "ws.codec"

describe("c:close with a code of 0", function()
  it("is an invalid close code, and sends nothing", function()
    local c = codec.new()
    assert.same({ nil, "invalid close code" }, { c:close(0) })
    assert.same({ nil, "invalid close code" }, { c:close(0, "why") })
    assert.equal("", c:output())
    assert.equal("open", c:state())
    assert.is_true(c:close())
    assert.equal("\136\0", c:output())
  end)
end)
