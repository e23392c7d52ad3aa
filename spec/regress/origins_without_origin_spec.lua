-- Browsers always send Origin; non-browser clients usually do not. Every `origins` policy
-- (the default, a list, "*", a function) admits a request without Origin, as docs/server.md
-- says; require_origin = true refuses those with 403 "Origin required".
local server = require "support.ws_server"
local client = require "support.ws_client"

local ALLOWED = "https://app.example"

describe("an origins allowlist and requests without Origin", function()
  local open, strict, strict_fn
  setup(function()
    local code = [[
      listen({ origins = %s, require_origin = %s }, function(conn) conn:send("hi " .. tostring(conn.request.headers.origin)) end)
    ]]
    open = server.start(code:format(("{ %q }"):format(ALLOWED), "false"))
    strict = server.start(code:format(("{ %q }"):format(ALLOWED), "true"))
    strict_fn = server.start(code:format("function(origin) log('asked ' .. tostring(origin)) return true end", "true"))
  end)
  teardown(function()
    open:stop()
    strict:stop()
    strict_fn:stop()
  end)

  local function try(port, origin)
    local c, _, status, _, body = client.connect(port, { origin = origin })
    if not c then return status, body end
    local _, msg = c:message()
    c:close()
    return 101, msg
  end

  it("admits a client without Origin by default, and checks the ones that send it", function()
    assert.same({ 101, "hi nil" }, { try(open.port) })
    assert.same({ 101, "hi " .. ALLOWED }, { try(open.port, ALLOWED) })
    assert.same({ 403, "Origin not allowed\n" }, { try(open.port, "https://evil.example") })
  end)

  it("refuses a client without Origin with require_origin = true", function()
    assert.same({ 403, "Origin required\n" }, { try(strict.port) })
    assert.same({ 101, "hi " .. ALLOWED }, { try(strict.port, ALLOWED) })
    assert.same({ 403, "Origin not allowed\n" }, { try(strict.port, "https://evil.example") })
  end)

  it("does not ask an origins function about a request without Origin when it is required", function()
    assert.same({ 403, "Origin required\n" }, { try(strict_fn.port) })
    assert.same({ 101, "hi https://other.example" }, { try(strict_fn.port, "https://other.example") })
    assert.truthy(strict_fn:wait_output("asked https://other.example"))
    assert.is_nil(strict_fn:output():find("asked nil", 1, true))
  end)
end)
