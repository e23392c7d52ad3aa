-- The http hook's second argument (the connection) and the two primitives long-polling needs:
-- core.body(conn, n) reads a request body (in as many TCP pieces as it comes), and
-- core.defer(conn, seconds) keeps a request open after its hook returns so that another task
-- answers it later with core.respond, with no thread kept for it meanwhile.
local server = require "support.ws_server"
local client = require "support.ws_client"
local socket = require "socket"

local function post(path, body)
  return ("POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"):format(path, #body, body)
end

describe("http hook: request bodies and later answers", function()
  local srv
  setup(function()
    srv = server.start([[
      local core = require "ws.core"
      local conn_mod = require "ws.conn"
      local held = {}
      listen({ path = "/ws", http = function(req, conn)
        if req.path == "/body" then
          local n = tonumber(req.headers["content-length"])
          local body, err, code
          repeat
            body, err, code = core.body(conn, n)
            if body == false then conn_mod.wait(conn, "r") end
          until body ~= false
          if not body then log("body failed", err, code) return end
          return 200, { ["Content-Type"] = "text/plain" }, "got " .. #body .. " " .. body:sub(1, 10)
        elseif req.path == "/hold" then
          core.defer(conn, tonumber(req.query) or 5)
          held[#held + 1] = { conn, req.headers["x-index"] or "?" }
          log("held " .. #held)
          return
        elseif req.path == "/release" then
          local list = held
          held = {}
          -- the hooks may run in another order than the clients connected: each says its index
          for _, h in ipairs(list) do core.respond(h[1], 200, nil, "released " .. h[2]) end
          return 200, nil, "released " .. #list
        end
        return 404, nil, "no\n"
      end }, function(conn) end)
    ]])
  end)
  teardown(function() srv:stop() end)

  it("reads a body sent in one piece", function()
    local status, _, body = client.http(srv.port, post("/body", "hello world"))
    assert.equal(200, status)
    assert.equal("got 11 hello worl", body)
  end)

  it("reads a body that comes in small TCP chunks, the head too", function()
    local sock = assert(client.tcp(srv.port))
    sock:setoption("tcp-nodelay", true)
    local req = post("/body", string.rep("0123456789", 50))
    for i = 1, #req, 7 do
      sock:send(req:sub(i, i + 6))
      socket.sleep(0.001)
    end
    local _, status, _, body = client.read_until(sock, "", client.parse_http, 5)
    sock:close()
    assert.equal(200, status)
    assert.equal("got 500 0123456789", body)
  end)

  it("reads a large body", function()
    local status, _, body = client.http(srv.port, post("/body", string.rep("x", 300000)))
    assert.equal(200, status)
    assert.equal("got 300000 xxxxxxxxxx", body)
  end)

  it("reports a client that leaves before its body is complete", function()
    local sock = assert(client.tcp(srv.port))
    sock:send("POST /body HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly a part")
    socket.sleep(0.1)
    sock:close()
    assert(srv:wait_output("body failed connection closed during the request body closed"))
  end)

  it("holds requests after the hook returns and answers them later", function()
    local socks = {}
    for i = 1, 20 do
      socks[i] = assert(client.tcp(srv.port))
      socks[i]:send("GET /hold HTTP/1.1\r\nHost: x\r\nX-Index: " .. i .. "\r\n\r\n")
    end
    assert(srv:wait_output("held 20"))
    -- nothing answered yet
    socks[1]:settimeout(0.2)
    local data, err = socks[1]:receive(1)
    assert.is_nil(data)
    assert.equal("timeout", err)
    local status, _, body = client.get(srv.port, "/release")
    assert.equal(200, status)
    assert.equal("released 20", body)
    for i = 1, 20 do
      local _, st, _, b = client.read_until(socks[i], "", client.parse_http, 5)
      assert.equal(200, st)
      assert.equal("released " .. i, b)
      socks[i]:close()
    end
  end)

  it("cuts a held request at its deadline", function()
    local sock = assert(client.tcp(srv.port))
    sock:send("GET /hold?0.2 HTTP/1.1\r\nHost: x\r\n\r\n")
    local _, err = client.read_until(sock, "", client.parse_http, 3)
    sock:close()
    assert.equal("closed", err)
    client.get(srv.port, "/release") -- forget it
  end)
end)
