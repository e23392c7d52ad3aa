-- Lifecycle: server:close() and SIGINT/SIGTERM stop accepting, deliver everything already
-- queued, then close each connection with 1001 and end the loop; max_connections leaves extra
-- clients waiting in the backlog; a handler that returns closes its connection with 1000.
local server = require "support.ws_server"
local client = require "support.ws_client"

local BURST = 2000

local CODE = ([[
  local srv
  srv = listen({ max_connections = 3, close_timeout = 2 }, function(conn)
    for msg in conn:messages() do
      if msg == "burst" then
        for i = 1, %d do conn:send("n" .. i .. string.rep("-", 200)) end
        conn:send("burst queued")
        log("burst queued")
      elseif msg == "shutdown" then
        ws.spawn(function() srv:close({ code = 1001, reason = "maintenance", timeout = 5 }) log("server closed") end)
      elseif msg == "return" then
        return
      else
        conn:send(msg)
      end
    end
  end)
  ws.run()
  log("run returned")
  os.exit(0)
]]):format(BURST)

local function read_burst(c)
  for i = 1, BURST do
    local _, got = c:message(5)
    assert.are.equal("n" .. i, got and got:match("^n%d+"))
  end
  local _, last = c:message(5)
  assert.are.equal("burst queued", last)
end

describe("server lifecycle", function()
  it("server:close delivers every queued message before the 1001, then the loop ends", function()
    local srv = server.start(CODE, { no_run = true })
    local a = assert(client.connect(srv.port))
    local b = assert(client.connect(srv.port))
    a:send("burst")
    assert.truthy(srv:wait_output("burst queued")) -- a reads nothing yet
    b:send("shutdown")
    read_burst(a)
    local kind, code, reason = a:message(5)
    assert.are.same({ "close", 1001, "maintenance" }, { kind, code, reason })
    a:close()
    kind, code = b:message(5)
    assert.are.same({ "close", 1001 }, { kind, code })
    b:close()
    assert.truthy(srv:wait_output("server closed\nrun returned", 5))
    assert.are.equal(0, srv.proc:wait(5))
    assert.is_nil(client.tcp(srv.port, 1)) -- no longer listening
    srv:stop()
  end)

  for _, sig in ipairs({ "TERM", "INT" }) do
    it("SIG" .. sig .. " closes gracefully the same way", function()
      local srv = server.start(CODE, { no_run = true })
      local a = assert(client.connect(srv.port))
      a:send("burst")
      assert.truthy(srv:wait_output("burst queued"))
      srv:signal(sig)
      read_burst(a)
      local kind, code = a:message(5)
      assert.are.same({ "close", 1001 }, { kind, code })
      a:close()
      assert.truthy(srv:wait_output("run returned", 5))
      srv:stop()
    end)
  end

  it("holds clients over max_connections in the backlog until a slot frees", function()
    local srv = server.start(CODE, { no_run = true })
    local held = {}
    for i = 1, 3 do held[i] = assert(client.connect(srv.port)) end
    local extra = client.tcp(srv.port)
    extra:send(client.upgrade_request(srv.port, "/"))
    local data = client.recv_some(extra, 0.5)
    assert.is_nil(data) -- not served yet
    held[1]:close()
    data = client.recv_some(extra, 10)
    assert.matches("^HTTP/1.1 101", data)
    extra:close()
    for i = 2, 3 do held[i]:close() end
    srv:stop()
  end)

  it("closes with 1000 when the handler returns", function()
    local srv = server.start(CODE, { no_run = true })
    local c = assert(client.connect(srv.port))
    c:send("return")
    local kind, code = c:message(5)
    assert.are.same({ "close", 1000 }, { kind, code })
    c:close()
    srv:stop()
  end)
end)
