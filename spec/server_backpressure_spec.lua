-- Backpressure both ways. Sending: over send_high_water the sender's coroutine waits until the
-- queue drains under send_low_water, so a slow reader costs at most the high-water mark.
-- Receiving: with max_queue messages waiting for a busy handler the server stops reading that
-- socket, and TCP slows the sender down.
local server = require "support.ws_server"
local client = require "support.ws_client"
local socket = require "socket"

local COUNT, SIZE = 400, 65536
-- Under the sanitizers the allocator keeps freed memory in quarantine: RSS says nothing there.
local CHECK_RSS = not os.getenv("WS_TEST_SANITIZE")
local HIGH = 256 * 1024

local function payload(i)
  local head = ("%06d:"):format(i)
  return head .. string.rep(string.char(65 + i % 26), SIZE - #head)
end

describe("server backpressure", function()
  local srv
  setup(function()
    srv = server.start(([[
      local stats = { sent = 0, max_buffered = 0, received = 0 }
      local released = false -- GET /release lets the "slow" handler start reading
      local COUNT, SIZE = %d, %d
      local function payload(i)
        local head = ("%%06d:"):format(i)
        return head .. string.rep(string.char(65 + i %% 26), SIZE - #head)
      end
      listen({ send_high_water = %d, send_low_water = 64 * 1024, max_queue = 4,
        http = function(req)
          if req.path == "/release" then released = true end
          stats.rss = rss_kib()
          return 200, {}, ("sent=%%d max_buffered=%%d rss=%%d received=%%d"):format(stats.sent, stats.max_buffered, stats.rss, stats.received)
        end,
      }, function(conn)
        local msg = conn:receive()
        if msg == "flood" then
          for i = 1, COUNT do
            assert(conn:send(payload(i), "binary"))
            stats.sent = i
            local b = conn:buffered()
            if b > stats.max_buffered then stats.max_buffered = b end
          end
          log("flood done")
        elseif msg == "slow" then
          -- not receiving until released: the inbox fills up to max_queue, then reading stops
          local deadline = ws.now() + 60
          while not released and ws.now() < deadline do ws.sleep(0.02) end
          local n, bad = 0, 0
          for m in conn:messages() do
            if m == "end" then break end
            n = n + 1
            stats.received = n
            if m:match("^m(%%d+)") ~= tostring(n) then bad = bad + 1 end
          end
          conn:send("got " .. n .. " bad " .. bad)
        end
        while conn:receive() do end
      end)
      stats.rss = rss_kib()
    ]]):format(COUNT, SIZE, HIGH))
  end)
  teardown(function() srv:stop() end)

  local function stats(path)
    local _, _, body = client.get(srv.port, path or "/stats")
    local t = {}
    for k, v in body:gmatch("([%w_]+)=(%d+)") do t[k] = tonumber(v) end
    return t
  end

  it("makes send wait for a slow reader, bounded by the high-water mark, then resumes", function()
    local rss0 = stats().rss
    local c = assert(client.connect(srv.port))
    c:send("flood")
    -- read nothing: the sender comes to a halt (no send completes for 0.3 s), however slowly
    -- the server gets there, and short of COUNT
    local s1, s2
    local deadline = socket.gettime() + 30
    repeat
      s1 = stats()
      socket.sleep(0.3)
      s2 = stats()
    until (s1.sent > 0 and s1.sent == s2.sent) or socket.gettime() > deadline
    assert.are.equal(s1.sent, s2.sent) -- still waiting
    assert.is_true(s2.sent < COUNT, "every send completed while nobody read: " .. s2.sent)
    assert.is_true(s2.max_buffered <= HIGH + SIZE + 64, "queued " .. s2.max_buffered)
    -- (LuaJIT's collector leaves more of the 64 KiB payloads built by the handler as garbage.)
    local bound = (jit and 8 or 4) * 1024
    if CHECK_RSS then assert.is_true(s2.rss - rss0 < bound, ("server grew by %d KiB"):format(s2.rss - rss0)) end
    -- now read everything: every payload, in order
    for i = 1, COUNT do
      local kind, got = c:message(10)
      assert.are.equal("binary", kind)
      if got ~= payload(i) then
        assert.are.equal(payload(i):sub(1, 20), tostring(got):sub(1, 20))
      end
    end
    assert.truthy(srv:wait_output("flood done"))
    assert.are.equal(COUNT, stats().sent)
    c:close()
  end)

  it("stops reading at max_queue so TCP slows the sender, and loses nothing", function()
    local rss0 = stats().rss
    local c = assert(client.connect(srv.port))
    c:send("slow")
    local TOTAL = 20000
    for i = 1, TOTAL do
      c.codec:send(("m%d"):format(i) .. string.rep(".", 1000))
    end
    local blob = c.codec:output()
    -- push as much as the connection takes in 0.5 s; the handler reads nothing until released
    c.sock:settimeout(0.5)
    local sent_upto, err, partial = c.sock:send(blob)
    local pushed = sent_upto or partial
    assert.is_nil(sent_upto, "the whole flood went through while the handler slept")
    assert.are.equal("timeout", err)
    assert.is_true(pushed < #blob)
    local s = stats()
    assert.is_true(s.received == 0)
    if CHECK_RSS then assert.is_true(s.rss - rss0 < 8 * 1024, ("server grew by %d KiB"):format(s.rss - rss0)) end
    stats("/release")
    c.sock:settimeout(10)
    assert(c.sock:send(blob, pushed + 1))
    assert(c:send("end"))
    local _, got = c:message(10)
    assert.are.equal("got " .. TOTAL .. " bad 0", got)
    c:close()
  end)
end)
