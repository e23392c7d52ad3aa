-- Ordered topics, history, presence and send_to across two lua-ws processes on one Redis: two
-- chat-like nodes (spec/support/bus_node.lua) on a redis-server the spec starts on a free port,
-- driven by blocking WebSocket clients. Every wait is bounded.
local helper = require "helper"
local wsc = require "support.ws_client"

local nodes = require "support.bus_nodes"

local client = nodes.client
local function start_node(redis_url, name, ttl)
  local n = nodes.start(redis_url, name, { presence_ttl = ttl or 2 })
  return n
end

local function kill9(proc)
  os.execute("/bin/kill -KILL -- -" .. proc.pid .. " 2>/dev/null")
end

describe("bus across two nodes", function()
  local srv, admin, A, B

  setup(function()
    -- Both buses up before anything is asserted.
    srv, admin, A, B = nodes.pair({ "nodeA", "nodeB" })
    srv.call = function(...) return admin:call(...) end
  end)

  teardown(function()
    nodes.stop(srv, admin, A or {}, B or {})
  end)

  it("gives conn.id as <node>/<n>", function()
    local a, b = client(A), client(B)
    assert.matches("^ok id nodeA/%d+$", a.cmd("id"))
    assert.matches("^ok id nodeB/%d+$", b.cmd("id"))
    a:close() b:close()
  end)

  it("delivers 400 interleaved ordered messages from two senders on two nodes complete, in one order, with gapless offsets", function()
    local subA, subB = client(A), client(B)
    assert.equal("ok sub", subA.cmd("sub room:chat"))
    assert.equal("ok sub", subB.cmd("sub room:chat"))
    -- Both nodes hold the subscription in Redis before publishing.
    assert(helper.wait_until(function()
      local r = srv.call("PUBSUB", "NUMSUB", "ws:t:room:chat")
      return r[2] == 2
    end, 5, 0.05), "both nodes subscribed")
    local s1, s2 = client(A), client(B)
    for i = 1, 200 do
      assert(s1:send("pub room:chat s1-" .. i))
      assert(s2:send("pub room:chat s2-" .. i))
    end
    for _, s in ipairs({ s1, s2 }) do
      local oks = s.wait_events("^ok pub", 200, 20)
      assert.equal(200, #oks)
      assert.same({}, s.wait_events("^err", 0, 0))
    end
    local orders = {}
    for k, sub in ipairs({ subA, subB }) do
      local msgs = sub.wait_events("^msg room:chat ", 400, 20)
      assert.equal(400, #msgs)
      local order, last, epoch = {}, nil, nil
      local seen = { s1 = 0, s2 = 0 }
      for i, m in ipairs(msgs) do
        local offset, e, data = m:match("^msg room:chat (%d+) (%w+) (.*)$")
        offset = tonumber(offset)
        if last then assert.equal(last + 1, offset, "gap at " .. i) end
        assert.is_true(epoch == nil or epoch == e)
        last, epoch = offset, e
        local who, n = data:match("^(s%d)%-(%d+)$")
        assert.equal(seen[who] + 1, tonumber(n), "per-sender order")
        seen[who] = tonumber(n)
        order[i] = offset .. ":" .. data
      end
      assert.equal(400, last)
      orders[k] = order
    end
    assert.same(orders[1], orders[2])
    -- History, from either node: the same last entries.
    local hA, hB = s1.cmd("hist room:chat 5"), s2.cmd("hist room:chat 5")
    assert.equal(hA, hB)
    local top, epoch, gone, rest = hA:match("^ok hist (%d+) (%w+) (%S+) (.*)$")
    assert.equal("400", top)
    assert.equal("-", gone)
    local expect = {}
    for i = 396, 400 do expect[#expect + 1] = orders[1][i] end
    assert.equal(table.concat(expect, " "), rest)
    -- Since an offset: what followed it.
    local since = s1.cmd("hist room:chat 0 397 " .. epoch)
    assert.equal("ok hist 400 " .. epoch .. " - " .. orders[1][398] .. " " .. orders[1][399] .. " " .. orders[1][400], since)
    assert.matches("^ok hist 400 %w+ epoch$", s2.cmd("hist room:chat 0 397 otherepoch"))
    -- publish with wait: the offset and epoch come back
    assert.equal("ok wpub 401 " .. epoch, s2.cmd("wpub room:chat waited"))
    assert.equal(1, #subA.wait_events("waited$", 1, 5))
    for _, c in ipairs({ subA, subB, s1, s2 }) do c:close() end
  end)

  it("excludes the sender of conn:publish on an ordered topic, on its node only", function()
    local a1, a2, b1 = client(A), client(A), client(B)
    for _, c in ipairs({ a1, a2, b1 }) do assert.equal("ok sub", c.cmd("sub room:ex")) end
    assert(helper.wait_until(function() return srv.call("PUBSUB", "NUMSUB", "ws:t:room:ex")[2] == 2 end, 5, 0.05))
    assert.equal("ok cpub", a1.cmd("cpub room:ex from-a1"))
    assert.equal(1, #a2.wait_events("from%-a1$", 1, 5))
    assert.equal(1, #b1.wait_events("from%-a1$", 1, 5))
    assert.equal(0, #a1.wait_events("from%-a1$", 1, 0.5))
    for _, c in ipairs({ a1, a2, b1 }) do c:close() end
  end)

  it("keeps presence across nodes, with join and leave events on both", function()
    local wa, wb = client(A), client(B)
    for _, w in ipairs({ wa, wb }) do
      assert.equal("ok watch", w.cmd("watch"))
      assert.equal("ok sub", w.cmd("sub room:p"))
    end
    assert(helper.wait_until(function() return srv.call("PUBSUB", "NUMSUB", "ws:t:room:p")[2] == 2 end, 5, 0.05))
    local alice, bob = client(A), client(B)
    local alice_id = alice.cmd("id"):match("^ok id (%S+)")
    local bob_id = bob.cmd("id"):match("^ok id (%S+)")
    assert.equal("ok track", alice.cmd("track room:p alice"))
    assert.equal("ok track", bob.cmd("track room:p bob"))
    local expect = "ok pres " .. table.concat({ alice_id .. "=alice", bob_id .. "=bob" }, " ")
    assert.equal(expect, wa.cmd("pres room:p"))
    assert.equal(expect, wb.cmd("pres room:p"))
    for _, w in ipairs({ wa, wb }) do
      local joins = w.wait_events("^presence room:p join ", 2, 5)
      table.sort(joins)
      assert.same({ "presence room:p join " .. alice_id .. " alice", "presence room:p join " .. bob_id .. " bob" }, joins)
    end
    -- untrack, and a closed connection leaves by itself
    assert.equal("ok untrack", bob.cmd("untrack room:p"))
    alice:close()
    for _, w in ipairs({ wa, wb }) do
      local leaves = w.wait_events("^presence room:p leave ", 2, 5)
      table.sort(leaves)
      assert.same({ "presence room:p leave " .. alice_id .. " alice", "presence room:p leave " .. bob_id .. " bob" }, leaves)
    end
    assert.equal("ok pres", wa.cmd("pres room:p"))
    assert.equal("ok pres", wb.cmd("pres room:p"))
    for _, c in ipairs({ wa, wb, bob }) do c:close() end
  end)

  it("keeps 200 members of two nodes, and a graceful close removes them at once", function()
    local conns = {}
    for i = 1, 200 do
      local c = client(i % 2 == 0 and A or B)
      assert(c:send("track room:many m" .. i))
      conns[i] = c
    end
    for i = 1, 200 do assert.equal(1, #conns[i].wait_events("^ok track$", 1, 5)) end
    local function count(node)
      local c = client(node)
      local line = c.cmd("pres room:many") or ""
      c:close()
      local n = 0
      for _ in line:gmatch(" %S+=m%d+") do n = n + 1 end
      return n
    end
    assert(helper.wait_until(function() return count(A) == 200 end, 5, 0.05), "200 members seen from A")
    assert.equal(200, count(B))
    for i = 2, 200, 2 do conns[i]:close() end -- every member of node A leaves
    local t0 = wsc.now()
    assert(helper.wait_until(function() return count(B) == 100 end, 5, 0.02), "100 left, seen from B")
    local elapsed = wsc.now() - t0
    assert.is_true(elapsed < 1, "removed after " .. elapsed .. " s")
    for i = 1, 200, 2 do conns[i]:close() end
    assert(helper.wait_until(function() return count(A) == 0 end, 5, 0.02))
  end)

  it("drops the members of a killed node within presence_ttl and announces their leave", function()
    local C = start_node(srv.url, "nodeC", 2)
    local w = client(A)
    assert.equal("ok watch", w.cmd("watch"))
    assert.equal("ok sub", w.cmd("sub room:k"))
    local stay = client(A)
    assert.equal("ok track", stay.cmd("track room:k stays")) -- A refreshes room:k, purging others
    local gone = client(C)
    assert(helper.wait_until(function() return (gone.cmd("bus") or ""):match("^ok bus up") end, 10, 0.1))
    local gone_id = gone.cmd("id"):match("^ok id (%S+)")
    assert.equal("ok track", gone.cmd("track room:k doomed"))
    assert.matches(gone_id:gsub("%p", "%%%0") .. "=doomed", w.cmd("pres room:k"))
    kill9(C.proc)
    local t0 = wsc.now()
    local leaves = w.wait_events("^presence room:k leave " .. gone_id:gsub("%p", "%%%0") .. " doomed$", 1, 6)
    local elapsed = wsc.now() - t0
    assert.equal(1, #leaves)
    assert.is_true(elapsed < 2 + 2 / 3 + 0.5, "left after " .. elapsed .. " s")
    assert.not_matches("doomed", w.cmd("pres room:k"))
    C.proc:kill()
    gone:abort()
    w:close() stay:close()
  end)

  it("sends to a connection on another node with send_to", function()
    local a, b = client(A), client(B)
    local a_id = a.cmd("id"):match("^ok id (%S+)")
    local b_id = b.cmd("id"):match("^ok id (%S+)")
    assert.equal("ok sendto", b.cmd("sendto " .. a_id .. " hello from b"))
    assert.same({ "direct hello from b" }, a.wait_events("^direct", 1, 5))
    assert.equal("ok sendto", a.cmd("sendto " .. b_id .. " and back"))
    assert.same({ "direct and back" }, b.wait_events("^direct", 1, 5))
    assert.equal("ok sendto", a.cmd("sendto " .. a_id .. " to myself"))
    assert.same({ "direct to myself" }, a.wait_events("^direct to", 1, 5))
    assert.equal("err sendto no_such_connection notfound", a.cmd("sendto nodeA/999999 x"))
    a:close() b:close()
  end)

  it("refuses an ordered publish at once while Redis is down: nil, \"bus unavailable\", \"unavailable\"", function()
    local a = client(A)
    srv.stop()
    assert(helper.wait_until(function() return not (a.cmd("bus") or ""):match("^ok bus up") end, 10, 0.05))
    local t0 = wsc.now()
    assert.equal("err pub bus_unavailable unavailable", a.cmd("pub room:chat down"))
    assert.equal("err wpub bus_unavailable unavailable", a.cmd("wpub room:chat down"))
    assert.equal("err hist bus_unavailable unavailable", a.cmd("hist room:chat 5"))
    assert.equal("err pres bus_unavailable unavailable", a.cmd("pres room:chat"))
    assert.is_true(wsc.now() - t0 < 1)
    a:close()
  end)
end)
