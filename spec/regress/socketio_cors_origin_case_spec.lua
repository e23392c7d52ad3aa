-- Socket.IO's `cors` list compared origins byte for byte while ws.server's `origins` (ws.url's
-- origin policy) compares them without case, as origins are (RFC 6454 4): a page at
-- https://App.example could open the WebSocket but not read a polling response. Both now go
-- through ws.url.origin_policy.
local engine = require "ws.socketio.engine"

local function allow_origin(cors, origin)
  local e = engine.new({ cors = cors }, {})
  return e:headers({ path = "/socket.io/", headers = { origin = origin } })["Access-Control-Allow-Origin"]
end

describe("socket.io cors", function()
  it("admits a listed origin written in another case, as ws.server's origins does", function()
    assert.equal("https://App.Example", allow_origin({ "https://app.example" }, "https://App.Example"))
    assert.is_nil(allow_origin({ "https://app.example" }, "https://evil.example"))
  end)

  it("keeps \"*\", a function (given the request) and no cors at all", function()
    assert.equal("https://x.example", allow_origin("*", "https://x.example"))
    local seen
    assert.equal("https://y.example", allow_origin(function(origin, request)
      seen = request.path
      return origin == "https://y.example"
    end, "https://y.example"))
    assert.equal("/socket.io/", seen)
    assert.is_nil(allow_origin(nil, "https://x.example"))
  end)
end)
