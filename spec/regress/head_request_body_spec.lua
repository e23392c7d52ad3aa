-- A HEAD request is answered with the head a GET would get (status, headers, the body's
-- Content-Length) and no body (RFC 7231 4.3.2): from the http hook, and for the server's own
-- answers (426, 404). Bytes after the head would be read as the next response.
local server = require "support.ws_server"
local client = require "support.ws_client"

local PAGE = ("<p>lua-ws</p>\n"):rep(300) -- 4,200 bytes

-- Everything the server sends until it closes the connection.
local function exchange(port, request)
  local sock = assert(client.tcp(port))
  sock:send(request)
  local _, _, buf = client.read_until(sock, "", function() return false end, 3)
  sock:close()
  return buf
end

local function head_and_rest(raw)
  local e = raw:find("\r\n\r\n", 1, true)
  assert.truthy(e, raw)
  return raw:sub(1, e + 3), raw:sub(e + 4)
end

describe("a HEAD request", function()
  local srv, plain
  setup(function()
    srv = server.start(([[
      listen({ path = "/ws", http = function(req)
        return 200, { ["Content-Type"] = "text/html" }, %q
      end }, function(conn) end)
    ]]):format(PAGE))
    plain = server.start([[ listen({ path = "/ws" }, function(conn) end) ]])
  end)
  teardown(function()
    srv:stop()
    plain:stop()
  end)

  it("to the http hook gets the headers with the body's Content-Length, and no body", function()
    local raw = exchange(srv.port, "HEAD / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    local head, rest = head_and_rest(raw)
    assert.matches("^HTTP/1%.1 200 OK\r\n", head)
    assert.matches("\r\nContent%-Length: " .. #PAGE .. "\r\n", head)
    assert.matches("\r\nContent%-Type: text/html\r\n", head)
    assert.equal("", rest)
  end)

  it("leaves GET as it was", function()
    local raw = exchange(srv.port, "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    local head, rest = head_and_rest(raw)
    assert.matches("\r\nContent%-Length: " .. #PAGE .. "\r\n", head)
    assert.equal(PAGE, rest)
  end)

  it("to the server's own answers (426, 404) gets no body either", function()
    local head, rest = head_and_rest(exchange(plain.port, "HEAD /ws HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"))
    assert.matches("^HTTP/1%.1 426 ", head)
    assert.matches("\r\nContent%-Length: " .. #"WebSocket upgrade expected\n" .. "\r\n", head)
    assert.equal("", rest)
    head, rest = head_and_rest(exchange(plain.port, "HEAD /other HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"))
    assert.matches("^HTTP/1%.1 404 ", head)
    assert.matches("\r\nContent%-Length: 10\r\n", head)
    assert.equal("", rest)
  end)
end)
