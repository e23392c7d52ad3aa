-- The opening handshake policy: path, origins, subprotocols, the handshake hook (which may
-- yield, accept with protocol/headers/data or refuse with a real HTTP response) and the http
-- hook for plain requests. Protocol checks of the request come from ws_handshake.
local server = require "support.ws_server"
local client = require "support.ws_client"

local function upgrade_request(port, extra) return client.upgrade_request(port, "/ws", extra) end

describe("server handshake", function()
  local srv
  setup(function()
    srv = server.start([[
      local function echo(conn)
        conn:send(tostring(conn.protocol) .. " " .. tostring(conn.data and conn.data.user))
        for msg, kind in conn:messages() do conn:send(msg, kind) end
      end
      local released = false -- GET /release ends the sleep of the "slow" hook
      listen({ path = "/ws", protocols = { "p1", "p2" }, require_protocol = false,
        handshake = function(req)
          local token = req.headers["authorization"]
          if req.query == "slow" then
            log("slow hook sleeping")
            local deadline = ws.now() + 30
            while not released and ws.now() < deadline do ws.sleep(0.01) end
          end
          if token == "Bearer good" then
            return true, { headers = { ["X-Welcome"] = "yes" }, data = { user = "ann" } }
          elseif token == "Bearer proto" then
            return true, { protocol = "custom" }
          elseif token == "Bearer limit" then
            return false, 429, { ["Retry-After"] = "7" }, "slow down\n"
          elseif token then
            return false, 401, { ["WWW-Authenticate"] = 'Bearer realm="ws"' }, "who are you?\n"
          end
          return true
        end,
        http = function(req)
          if req.path == "/release" then released = true return 200, {}, "released\n" end
          if req.path == "/big" then return 200, {}, #(req.headers["x-big"] or "") .. "\n" end
          if req.path == "/health" then
            return 200, { ["Content-Type"] = "text/plain" }, "ok " .. req.method .. "\n"
          end
          return 404, { ["Content-Type"] = "text/plain" }, "nothing at " .. req.path .. "\n"
        end,
      }, echo)
      listen({ protocols = { "only" }, require_protocol = true }, echo)
      listen({ origins = { "https://good.example" } }, echo)
      listen({ origins = function(origin, req) return origin and origin:match("%.trusted$") ~= nil end }, echo)
    ]])
    -- the four servers print their ports in order
    local out = assert(srv:wait_output("listening %d+\nlistening %d+\nlistening %d+\nlistening (%d+)"))
    local ports = {}
    for p in srv:output():gmatch("listening (%d+)") do ports[#ports + 1] = tonumber(p) end
    srv.ports = ports
  end)
  teardown(function() srv:stop() end)

  it("upgrades on its path only; other paths get 404 from the http hook", function()
    local c = assert(client.connect(srv.port, { path = "/ws" }))
    local _, first = c:message()
    assert.are.equal("nil nil", first)
    c:close()
    local ok, _, status, _, body = client.connect(srv.port, { path = "/other" })
    assert.is_nil(ok)
    assert.are.equal(404, status)
    assert.are.equal("Not Found\n", body)
  end)

  it("serves plain HTTP requests through the http hook", function()
    local status, headers, body = client.get(srv.port, "/health")
    assert.are.equal(200, status)
    assert.are.equal("text/plain", headers["content-type"])
    assert.are.equal("ok GET\n", body)
  end)

  it("accepts with headers and data from the handshake hook", function()
    local c = assert(client.connect(srv.port, { path = "/ws", headers = { Authorization = "Bearer good" } }))
    local h = c.response.headers
    assert.are.equal("yes", h["x-welcome"])
    local _, first = c:message()
    assert.are.equal("nil ann", first)
    c:close()
  end)

  it("lets the hook choose the protocol", function()
    local c = assert(client.connect(srv.port, { path = "/ws", protocols = { "custom", "p1" }, headers = { Authorization = "Bearer proto" } }))
    assert.are.equal("custom", c.protocol)
    c:close()
  end)

  it("refuses with 401 and WWW-Authenticate, and 429 with Retry-After, as real responses", function()
    local ok, _, status, headers, body = client.connect(srv.port, { path = "/ws", headers = { Authorization = "Bearer bad" } })
    assert.is_nil(ok)
    assert.are.equal(401, status)
    assert.are.equal('Bearer realm="ws"', headers["www-authenticate"])
    assert.are.equal("who are you?\n", body)
    local s2, h2, b2 = client.http(srv.port, upgrade_request(srv.port, { "Authorization: Bearer limit" }))
    assert.are.equal(429, s2)
    assert.are.equal("7", h2["retry-after"])
    assert.are.equal("slow down\n", b2)
  end)

  it("runs the hook in a coroutine that may sleep without holding up other clients", function()
    local slow = client.tcp(srv.port)
    slow:send((upgrade_request(srv.port):gsub("GET /ws ", "GET /ws?slow ")))
    -- the slow hook sleeps until released; another client is served meanwhile
    assert.truthy(srv:wait_output("slow hook sleeping"))
    local c = assert(client.connect(srv.port, { path = "/ws" }))
    assert.are.same({ nil, "timeout" }, { client.recv_some(slow, 0.05) }) -- still sleeping
    assert.are.equal(200, (client.get(srv.port, "/release")))
    local buf = client.read_until(slow, "", function(b) return b:find("\r\n\r\n", 1, true) end, 10)
    assert.matches("^HTTP/1.1 101", buf)
    slow:close()
    c:close()
  end)

  it("refuses a client offering none of the protocols when one is required", function()
    local ok, _, status = client.connect(srv.ports[2], { protocols = { "nope" } })
    assert.is_nil(ok)
    assert.are.equal(400, status)
    local c = assert(client.connect(srv.ports[2], { protocols = { "nope", "only" } }))
    assert.are.equal("only", c.protocol)
    c:close()
  end)

  it("applies the default origin policy: no Origin or the same origin pass, others get 403", function()
    local c = assert(client.connect(srv.ports[2], { protocols = { "only" }, origin = "http://127.0.0.1:" .. srv.ports[2] }))
    c:close()
    local ok, _, status = client.connect(srv.ports[2], { protocols = { "only" }, origin = "http://evil.example" })
    assert.is_nil(ok)
    assert.are.equal(403, status)
  end)

  it("applies an origin allowlist and an origin function", function()
    local c = assert(client.connect(srv.ports[3], { origin = "https://good.example" }))
    c:close()
    local ok, _, status = client.connect(srv.ports[3], { origin = "https://bad.example" })
    assert.are.equal(403, status)
    c = assert(client.connect(srv.ports[4], { origin = "https://a.trusted" }))
    c:close()
    ok, _, status = client.connect(srv.ports[4], { origin = "https://a.untrusted.example" })
    assert.are.equal(403, status)
  end)

  it("reads a request head that takes more than one read", function()
    -- The first read of a head goes to a 2 KiB stack buffer; a longer head goes on in a buffer.
    for _, n in ipairs({ 10, 2000, 2048, 5000 }) do
      local status, _, body = client.http(srv.port, "GET /big HTTP/1.1\r\nHost: x\r\nX-Big: " .. string.rep("b", n) .. "\r\n\r\n")
      assert.are.equal(200, status)
      assert.are.equal(n .. "\n", body)
    end
  end)

  it("answers malformed upgrades with 400, a wrong version with 426, a huge head with 431", function()
    local s = client.http(srv.port, "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: short\r\nSec-WebSocket-Version: 13\r\n\r\n")
    assert.are.equal(400, s)
    local s2, h2 = client.http(srv.port, (upgrade_request(srv.port):gsub("Version: 13", "Version: 8")))
    assert.are.equal(426, s2)
    assert.are.equal("13", h2["sec-websocket-version"])
    local s3 = client.http(srv.port, "GET /ws HTTP/1.1\r\nX-Big: " .. string.rep("a", 20000) .. "\r\n\r\n")
    assert.are.equal(431, s3)
    local s4 = client.http(srv.port, "NONSENSE\r\n\r\n")
    assert.are.equal(400, s4)
  end)
end)
