-- Node-level gap fill of ordered topics: a node that misses messages on its subscription (lost on
-- the channel, its subscriber connection killed, Redis restarted) reads them from the topic's
-- stream and delivers them in order and once before the live ones; only when the stream no longer
-- holds them, or the epoch changed, is the application told (server.on_gap; by default the
-- connections are closed with 1012). Two node processes (spec/support/bus_node.lua) on a
-- redis-server of the spec's own; every wait is bounded.
local helper = require "helper"
local socket = require "socket"
local resp = require "support.resp"
local wsc = require "support.ws_client"
local scripts = require "ws.bus_scripts"

local nodes = require "support.bus_nodes"

local client = nodes.client
local function start_node(redis_url, name, history, gap_mode)
  return nodes.start(redis_url, name, { presence_ttl = 60, history = history, gap = gap_mode or "notify" })
end

-- The offsets and data of "msg <topic> <offset> <epoch> <data>" events, in arrival order.
local function msgs(c, topic) return c.msgs(topic) end

-- The resident memory (KiB) of a node: its Lua process, in the process group helper.spawn made.
local function rss_kb(proc)
  local f = io.popen("ps -eo pgid=,rss=,comm=")
  local out = f:read("*a")
  f:close()
  local kb = 0
  for pgid, rss, comm in out:gmatch("%s*(%d+)%s+(%d+)%s+(%S+)") do
    if tonumber(pgid) == proc.pid and comm:match("lua") then kb = math.max(kb, tonumber(rss)) end
  end
  return kb
end

local function counter(c, name)
  local line = c.cmd("bus") or ""
  return tonumber(line:match(" " .. name .. "=(%d+)")), line
end

describe("ordered topics: gap fill on a node", function()
  local srv, admin, A, B

  local function subscribe_both(topic)
    local subs = { client(A), client(B) }
    for _, c in ipairs(subs) do assert.equal("ok sub", c.cmd("sub " .. topic)) end
    assert(helper.wait_until(function()
      return admin:call("PUBSUB", "NUMSUB", "ws:t:" .. topic)[2] == 2
    end, 5, 0.05), "both nodes subscribed to " .. topic)
    return subs
  end

  -- An ordered publish that reaches the stream but not the channel (as if the node's
  -- subscription had lost it).
  local function publish_unseen(topic, data)
    local k = scripts.keys("ws:", topic)
    local r = admin:call("EVAL", scripts.publish.src, 2, k.stream, k.meta, "ws:t:nowhere", 1000, 600, "",
      "t", "spec", "", "", data)
    assert(type(r) == "table" and r[1], "publish failed")
    return r[1], r[2]
  end

  setup(function()
    srv, admin, A, B = nodes.pair({ "gapA", "gapB" }, { node = { presence_ttl = 60, gap = "notify" } })
  end)

  teardown(function()
    nodes.stop(srv, admin, A or {}, B or {})
  end)

  it("fills a message lost on the channel from the stream, before the next one, on every node", function()
    local subs = subscribe_both("room:lost")
    local p = client(A)
    assert.equal("ok pub", p.cmd("pub room:lost one"))
    for _, c in ipairs(subs) do assert.equal(1, #c.wait_events("^msg room:lost 1 ", 1, 5)) end
    assert.equal(2, (publish_unseen("room:lost", "two")))
    assert.equal(3, (publish_unseen("room:lost", "three")))
    assert.equal("ok pub", p.cmd("pub room:lost four"))
    for _, c in ipairs(subs) do
      c.wait_events("^msg room:lost 4 ", 1, 5)
      local got = msgs(c, "room:lost")
      assert.equal(4, #got)
      for i, d in ipairs({ "one", "two", "three", "four" }) do
        assert.equal(i, got[i].offset)
        assert.equal(d, got[i].data)
      end
      assert.same({}, c.matching("^gap"))
    end
    local fills = counter(p, "fills")
    assert.is_true(fills >= 1)
    for _, c in ipairs(subs) do c:close() end
    p:close()
  end)

  it("tells on_gap when the stream no longer holds the missing range, then goes on", function()
    local subs = subscribe_both("room:trim")
    local p = client(B)
    assert.equal("ok pub", p.cmd("pub room:trim a"))
    for _, c in ipairs(subs) do assert.equal(1, #c.wait_events("^msg room:trim 1 ", 1, 5)) end
    assert.equal(6, admin:call("HINCRBY", "ws:m:room:trim", "s", 5)) -- offsets 2..6 never existed
    assert.equal("ok pub", p.cmd("pub room:trim b"))
    assert.equal("ok pub", p.cmd("pub room:trim c"))
    for _, c in ipairs(subs) do
      assert.same({ "gap room:trim trimmed 1" }, c.wait_events("^gap", 1, 5))
      c.wait_events("^msg room:trim 8 ", 1, 5)
      local got = msgs(c, "room:trim")
      assert.same({ 1, 7, 8 }, { got[1].offset, got[2].offset, got[3].offset })
      assert.equal(3, #got)
    end
    for _, c in ipairs(subs) do c:close() end
    p:close()
  end)

  it("loses nothing and duplicates nothing in a steady stream (2,000/s for 10 s, node A to node B) when the subscriber connections are killed twice", function()
    -- three subscribers on node B, one on node A; one publisher on node A
    local subs = subscribe_both("room:stream")
    for _ = 1, 2 do
      local c = client(B)
      assert.equal("ok sub", c.cmd("sub room:stream"))
      subs[#subs + 1] = c
    end
    -- and a fast topic alongside (every 4th message), for what the fast class loses meanwhile
    for _, c in ipairs(subs) do assert.equal("ok sub", c.cmd("sub fstream")) end
    assert(helper.wait_until(function() return admin:call("PUBSUB", "NUMSUB", "ws:t:fstream")[2] == 2 end, 5, 0.05))
    local pa = client(A)
    local RATE, SECONDS = 2000, 10
    local N = RATE * SECONDS
    local NF = math.floor(N / 4)
    local sent_at = {}
    local kills, killed_at = { 3, 6.5 }, {}
    local t0 = wsc.now()
    local i = 0
    while i < N and wsc.now() - t0 < SECONDS * 3 do
      local due = math.min(N, math.floor((wsc.now() - t0) * RATE))
      while i < due do
        i = i + 1
        sent_at[i] = wsc.now()
        assert(pa:send("pub room:stream " .. i))
        if i % 4 == 0 then assert(pa:send("pub fstream f " .. math.floor(i / 4))) end
      end
      if kills[#killed_at + 1] and wsc.now() - t0 >= kills[#killed_at + 1] then
        local killed = admin:call("CLIENT", "KILL", "TYPE", "pubsub")
        assert.is_true(killed >= 2)
        killed_at[#killed_at + 1] = wsc.now()
      end
      socket.sleep(0.005)
      for _, c in ipairs(subs) do c.pump(0.001) end
      pa.pump(0.001)
    end
    local elapsed = wsc.now() - t0
    assert.equal(N, i)
    assert.equal(2, #killed_at)
    local delays = {}
    for k, c in ipairs(subs) do
      c.wait_events("^msg room:stream " .. N .. " ", 1, 30)
      local got = msgs(c, "room:stream")
      local bad
      for j, m in ipairs(got) do
        if not bad and (m.offset ~= j or m.data ~= tostring(j)) then
          local around = {}
          for x = math.max(1, j - 3), math.min(#got, j + 3) do around[#around + 1] = got[x].offset .. ":" .. got[x].data end
          bad = "subscriber " .. k .. " of node " .. (k == 1 and "A" or "B") .. ": " .. m.offset .. ":" .. m.data ..
            " at " .. j .. " (" .. table.concat(around, " ") .. ") of " .. #got
        end
      end
      if bad then bad = bad .. "; node A: " .. select(2, counter(pa, "failed")) end
      assert.is_nil(bad)
      assert.equal(N, #got)
      assert.same({}, c.matching("^gap"))
      if k ~= 1 then -- node B's subscribers: how long each message took, the kills included
        local j = 0
        for idx, e in ipairs(c.events) do
          if e:match("^msg room:stream ") then
            j = j + 1
            delays[#delays + 1] = c.at[idx] - sent_at[j]
          end
        end
      end
    end
    pa.wait_events("^ok pub", N + NF, 20)
    assert.equal(N + NF, #pa.matching("^ok pub"))
    -- fast: at most once, in order; node A's subscriber has every one (local delivery)
    local fast_lost = {}
    for k, c in ipairs(subs) do
      local list = {}
      for _, e in ipairs(c.matching("^f %d+$")) do list[#list + 1] = tonumber(e:match("%d+$")) end
      for j = 2, #list do assert.is_true(list[j] > list[j - 1], "fast message " .. list[j] .. " after " .. list[j - 1]) end
      if k == 1 then assert.equal(NF, #list) else fast_lost[#fast_lost + 1] = NF - #list end
    end
    local reconnects = counter(pa, "reconnects")
    assert.is_true(reconnects >= 2, "reconnects " .. tostring(reconnects))
    local probe = client(B)
    local b_reconnects, b_fills = counter(probe, "reconnects"), counter(probe, "fills")
    assert.is_true(b_reconnects >= 2, "node B reconnects " .. tostring(b_reconnects))
    table.sort(delays)
    local function pct(p) return delays[math.max(1, math.floor(#delays * p))] * 1000 end
    io.stderr:write(string.format("\n[steady stream: %d messages in %.1f s (%.0f/s) from node A, CLIENT KILL TYPE pubsub " ..
      "twice: 0 lost, 0 duplicated at %d subscribers; delay at node B's subscribers p50 %.0f ms, p99 %.0f ms, " ..
      "max %.0f ms; fills A=%s B=%s; fast topic alongside: %d of %d lost at node B's subscribers]\n", N, elapsed,
      N / elapsed, #subs, pct(0.5), pct(0.99), pct(1), tostring(counter(pa, "fills")), tostring(b_fills),
      math.max((table.unpack or unpack)(fast_lost)), NF))
    for _, c in ipairs(subs) do c:close() end
    pa:close() probe:close()
  end)

  it("fills the gap of a node stopped 3 s under load that Redis dropped (small output-buffer limit), its memory bounded", function()
    local subs = subscribe_both("room:slow")
    local p = client(A)
    assert.equal("OK", admin:call("CONFIG", "SET", "client-output-buffer-limit", "pubsub 64kb 32kb 1"))
    local pad = string.rep("x", 16000)
    local RATE, SECONDS = 300, 3 -- 14 MB in 3 s: more than the socket buffers take, far over the limit
    local N = RATE * SECONDS       -- within the stream's 1,000 entries: the gap can be filled
    local baseline = rss_kb(B.proc)
    local stopped, t_cont = true, nil
    os.execute("/bin/kill -STOP -- -" .. B.proc.pid)
    local t_stop = wsc.now()
    local ok, err = pcall(function()
      local i = 0
      while wsc.now() - t_stop < SECONDS do
        local due = math.min(N, math.floor((wsc.now() - t_stop) * RATE))
        while i < due do
          i = i + 1
          assert(p:send("pub room:slow " .. i .. " " .. pad))
        end
        socket.sleep(0.01)
        p.pump(0.001)
        subs[1].pump(0.001)
      end
      for j = i + 1, N do assert(p:send("pub room:slow " .. j .. " " .. pad)) end
    end)
    os.execute("/bin/kill -CONT -- -" .. B.proc.pid)
    t_cont = wsc.now()
    stopped = false
    assert(ok, err)
    assert.is_false(stopped)
    -- node B comes back: its memory while it reconnects and fills the gap
    local peak = baseline
    local done = {}
    local deadline = wsc.now() + 30
    local t_filled, sampled = nil, 0
    while wsc.now() < deadline and not t_filled do
      for k, c in ipairs(subs) do
        for _ = 1, 100 do -- read what has come (a pump reads once)
          local n = #c.events
          c.pump(0.005)
          if #c.events == n then break end
        end
        if not done[k] and #c.matching("^msg room:slow " .. N .. " ") > 0 then done[k] = true end
      end
      if wsc.now() - sampled > 0.1 then
        peak = math.max(peak, rss_kb(B.proc))
        sampled = wsc.now()
      end
      if done[1] and done[2] then t_filled = wsc.now() end
    end
    for _, c in ipairs(subs) do
      c.wait_events("^msg room:slow " .. N .. " ", 1, 20)
      local got = c.msgs("room:slow")
      local bad
      for i, m in ipairs(got) do if m.offset ~= i then bad = bad or ("offset " .. m.offset .. " at " .. i) end end
      assert.is_nil(bad)
      assert.equal(N, #got)
      assert.same({}, c.matching("^gap"))
    end
    local probe = client(B)
    local reconnects = counter(probe, "reconnects")
    assert.is_true(reconnects >= 1, "node B was not dropped by Redis")
    peak = math.max(peak, rss_kb(B.proc))
    local missed_kb = N * #pad / 1024
    io.stderr:write(string.format("\n[node B stopped %.1f s while %d messages (%.0f MB) were published; Redis dropped it; " ..
      "every message at both nodes %.2f s after SIGCONT; node B's RSS %.0f MB before, peak %.0f MB; fills B=%s]\n",
      t_cont - t_stop, N, missed_kb / 1024, (t_filled or wsc.now()) - t_cont, baseline / 1024, peak / 1024,
      tostring(counter(probe, "fills"))))
    -- bounded by what it reads back: the missed range (at most `history` entries) is held a few
    -- times over while it is filled (Redis's reply, its Lua strings and their garbage, the frames
    -- queued to the subscribers: 3 to 4 times, measured), whatever the time the node was stopped
    if not os.getenv("WS_TEST_SANITIZE") then -- the sanitizers' allocator inflates RSS
      assert.is_true(peak - baseline < 6 * missed_kb, string.format("RSS grew by %.0f MB", (peak - baseline) / 1024))
    end
    admin:call("CONFIG", "SET", "client-output-buffer-limit", "pubsub 32mb 8mb 60")
    for _, c in ipairs(subs) do c:close() end
    p:close() probe:close()
  end)

  it("reports the epoch change of a Redis restarted without persistence, closing with 1012 by default", function()
    local C = start_node(srv.url, "gapC", 1000, "close")
    local subs = subscribe_both("room:epoch")
    local sc = client(C)
    assert.equal("ok sub", sc.cmd("sub room:epoch"))
    local tracker = client(A)
    local tracker_id = tracker.cmd("id"):match("^ok id (%S+)")
    assert.equal("ok track", tracker.cmd("track room:epoch t1"))
    assert(helper.wait_until(function() return admin:call("PUBSUB", "NUMSUB", "ws:t:room:epoch")[2] == 3 end, 5, 0.05))
    local p = client(B)
    local first = p.cmd("wpub room:epoch before")
    local epoch1 = first:match("^ok wpub 1 (%w+)$")
    assert.is_truthy(epoch1, first)
    for _, c in ipairs(subs) do assert.equal(1, #c.wait_events("^msg room:epoch 1 ", 1, 5)) end
    assert.equal(1, #sc.wait_events("^msg room:epoch 1 ", 1, 5))
    admin:close()
    srv.restart()
    local t_restarted = wsc.now()
    admin = assert(resp.connect(srv.port))
    for _, c in ipairs(subs) do
      assert.same({ "gap room:epoch epoch 1" }, c.wait_events("^gap", 1, 10))
    end
    local t_told = wsc.now()
    -- the default on_gap: closed with 1012
    sc.wait_events("^never", 1, 10)
    assert.equal(1012, sc.closed)
    local t_closed = wsc.now()
    -- live messages go on under the new epoch, from offset 1
    local again
    assert(helper.wait_until(function()
      again = p.cmd("wpub room:epoch after")
      return again and again:match("^ok")
    end, 10, 0.2), "publish after the restart: " .. tostring(again))
    local epoch2 = again:match("^ok wpub 1 (%w+)$")
    assert.is_truthy(epoch2, again)
    assert.not_equal(epoch1, epoch2)
    for _, c in ipairs(subs) do
      assert.equal(1, #c.wait_events("^msg room:epoch 1 " .. epoch2 .. " after$", 1, 5))
    end
    io.stderr:write(string.format("\n[Redis restarted without persistence: the epoch change reached on_gap at both " ..
      "nodes %.2f s after Redis was back, the default closed a client with 1012 after %.2f s; first publish " ..
      "acknowledged in the new epoch after %.2f s]\n", t_told - t_restarted, t_closed - t_restarted,
      wsc.now() - t_restarted))
    -- the tracked member is back in the new Redis (refreshed when the bus came back)
    assert(helper.wait_until(function()
      return (p.cmd("pres room:epoch") or ""):find(tracker_id .. "=t1", 1, true)
    end, 5, 0.1))
    for _, c in ipairs(subs) do c:close() end
    p:close() tracker:close()
    C.proc:kill()
  end)
end)
