-- ws.resty inside Debian's nginx + lua-nginx-module (LuaJIT): examples/openresty/run.sh serves the
-- echo and the chat, spec/support/openresty_locations.conf adds a few locations, and independent
-- clients (Python websockets, spec/support/openresty_client.py) check the RFC's answers.
local helper = require "helper"
local cjson = require "cjson"

local root = helper.root
local have_nginx = helper.exists("/usr/sbin/nginx")
  and helper.exists("/usr/lib/nginx/modules/ngx_http_lua_module.so")

local describe_nginx = have_nginx and describe or pending

describe_nginx("ws.resty in nginx", function()
  local port, nginx, base

  local function client(scenario, timeout)
    local ok, code, out, err = helper.run({ helper.python, root .. "/spec/support/openresty_client.py",
      base, scenario }, { timeout = timeout or 60 })
    assert(ok, ("client %s failed (%s):\n%s\n%s\nnginx:\n%s"):format(scenario, tostring(code),
      tostring(out), tostring(err), nginx and nginx:errors() or ""))
    return cjson.decode(out)
  end

  setup(function()
    port = helper.free_port()
    base = "ws://127.0.0.1:" .. port
    nginx = helper.spawn({ "bash", root .. "/examples/openresty/run.sh", tostring(port) }, {
      timeout = 600,
      env = { WS_NGINX_INCLUDE = root .. "/spec/support/openresty_locations.conf" },
    })
    -- The first run also builds ws.codec for LuaJIT; nginx says when its worker runs.
    local up = helper.wait_until(function()
      if nginx:errors():find("start worker process", 1, true) then return true end
      if not nginx:running() then return "exited" end
    end, 180, 0.1)
    if up ~= true then
      local errors = nginx:errors()
      nginx:kill()
      error("nginx did not start: " .. tostring(up) .. "\n" .. errors)
    end
  end)

  -- run.sh, nginx's master and its worker share one process group: kill() ends them all.
  teardown(function()
    if nginx then nginx:kill() end
  end)

  describe("handshake", function()
    it("answers a valid upgrade with 101 and the RFC's accept key", function()
      local r = client("handshake_accept")
      assert.equal(101, r.status)
      assert.equal("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", r.headers["sec-websocket-accept"])
      assert.equal("websocket", r.headers["upgrade"]:lower())
    end)

    it("answers a plain GET with 426 and the version it speaks", function()
      local r = client("handshake_plain_get")
      assert.equal(426, r.status)
      assert.equal("13", r.headers["sec-websocket-version"])
    end)

    it("answers a wrong version with 426 and Sec-WebSocket-Version: 13", function()
      local r = client("handshake_bad_version")
      assert.equal(426, r.status)
      assert.equal("13", r.headers["sec-websocket-version"])
    end)

    it("answers a missing key, a POST and HTTP/1.0 with 400", function()
      assert.equal(400, client("handshake_no_key").status)
      assert.equal(400, client("handshake_post").status)
      assert.equal(400, client("handshake_http10").status)
    end)

    it("chooses the server's preferred subprotocol among those offered, and none otherwise", function()
      local r = client("subprotocol")
      assert.equal("chat.v2", r.chosen)
      assert.equal("protocol=chat.v2", r.said)
      assert.equal(cjson.null, r.none)
      assert.equal("protocol=nil", r.said_none)
    end)
  end)

  describe("the request", function()
    it("is in conn.request as the codec's parser reads it, white space nginx overwrote put back", function()
      for _, name in ipairs { "plain", "ows" } do
        local r = client("request_" .. name)
        assert.equal(101, r.status)
        assert.equal("method=GET path=/request query=q=1 x-test=[a b] upgrade=true", r.message)
      end
    end)
  end)

  describe("echo", function()
    it("returns text and binary messages unchanged, with their kind", function()
      assert.same({ true, true, true }, client("text").equal)
      assert.same({ true, true, true }, client("binary").equal)
    end)

    it("returns large messages (700 KB of text, 1 MB of binary)", function()
      assert.same({ true, true }, client("large").equal)
    end)

    it("reassembles fragmented messages", function()
      local r = client("fragmented")
      assert.equal("fragmented tëxt", r.text)
      assert.same({ 1, 2, 3 }, r.binary)
    end)

    it("answers a ping with a pong and goes on", function()
      local r = client("ping")
      assert.is_true(r.pong)
      assert.equal("after ping", r.echo)
    end)
  end)

  describe("several messages in one read", function()
    it("answers every one in order: small, held and streamed sizes, a ping and fragments among them", function()
      local r = client("pipelined")
      assert.same({ true, true, true, true, true, true, true }, r.mixed)
      assert.equal("frag", r.fragmented)
      assert.equal(500, r.many)
    end)

    it("sends an answer at once when the handler waits before it reads the next message", function()
      local r = client("slow_handler")
      assert.same({ "one", "two" }, r.got)
      assert.is_true(r.first_ms < 1000, "first answer after " .. tostring(r.first_ms) .. " ms")
    end)
  end)

  describe("closing", function()
    it("echoes the client's close code and reason", function()
      local r = client("close_normal")
      assert.equal(1000, r.code)
      assert.equal(4000, client("close_custom").code)
    end)

    it("answers a close frame with no code with one with no code (1005)", function()
      assert.equal(1005, client("close_empty").code)
    end)

    it("answers an invalid close code, or a one-byte close payload, with 1002", function()
      assert.equal(1002, client("close_reserved").code)
      assert.equal(1002, client("close_out_of_range").code)
      assert.equal(1002, client("close_one_byte").code)
    end)

    it("answers a close reason that is not UTF-8 with 1007", function()
      assert.equal(1007, client("close_bad_reason").code)
    end)

    it("closes with the server's code when the handler closes", function()
      local r = client("server_close")
      assert.equal(4001, r.code)
      assert.equal("server says bye", r.reason)
    end)
  end)

  describe("checks the codec makes", function()
    it("closes with 1007 on invalid UTF-8 in a text message", function()
      assert.equal(1007, client("invalid_utf8").code)
    end)

    it("closes with 1007 on invalid UTF-8 in a later fragment", function()
      assert.equal(1007, client("invalid_utf8_fragment").code)
    end)

    it("closes with 1009 on a message over max_message (16 MiB, as examples/echo.lua)", function()
      assert.equal(1009, client("too_big").code)
    end)

    it("honours a smaller max_message", function()
      local r = client("limited")
      assert.same({ true }, r.first)
      assert.equal(1009, r.code)
    end)
  end)

  describe("permessage-deflate", function()
    it("is negotiated with a client that offers it, and messages come back intact", function()
      local r = client("deflate")
      assert.same({ "permessage-deflate" }, r.extensions)
      assert.same({ true, true, true }, r.equal)
    end)

    it("closes with 1009 on a message that inflates past max_message", function()
      local r = client("deflate_bomb")
      assert.same({ "permessage-deflate" }, r.extensions)
      assert.equal(1009, r.code)
    end)
  end)

  describe("chat", function()
    it("delivers a message to the others and says who joined and left", function()
      local r = client("chat")
      assert.equal("chat", r.protocol)
      assert.truthy(r.welcome:match("^%* welcome alice %(%d+ online%)$"))
      assert.equal("alice: hi bob", r.bob_got)
      assert.equal("* bob left", r.alice_saw_left)
    end)
  end)

  describe("the cosocket client", function()
    it("talks to the echo: text, binary, large, ping, timeout, close", function()
      local r = client("http_client-test")
      assert.equal(200, r.status)
      local lines = {}
      for name, rest in r.body:gmatch("(%S+) ?([^\n]*)\n") do lines[name] = rest end
      assert.equal("true nil nil", lines.connect)
      assert.equal("open", lines.state)
      assert.equal("hello text", lines.text)
      assert.equal("true binary", lines.binary)
      assert.equal("true", lines.large)
      assert.equal("after ping 1", lines.ping) -- the message, then the pongs seen
      assert.equal("nil timeout timeout", lines.timeout)
      assert.equal("still there text", lines.after_timeout)
      assert.equal("true", lines.close)
      assert.equal("closed 1000", lines.closed:match("^closed %d+"))
      assert.equal("nil closed closed", lines.receive_after_close)
      assert.equal("nil closed closed", lines.send_after_close)
      assert.equal("chat.v1 protocol=chat.v1", lines.protocol)
      assert.equal("nil handshake failed: unexpected status 404 handshake", lines.not_found)
      assert.equal("nil bad url (ws:// or wss:// expected): http://127.0.0.1/ handshake", lines.bad_url)
    end)

    it("negotiates permessage-deflate when asked, in both modes", function()
      local r = client("http_client-test")
      local lines = {}
      for name, rest in r.body:gmatch("(%S+) ?([^\n]*)\n") do lines[name] = rest end
      assert.equal("permessage-deflate true true", lines.deflate_dedicated)
      assert.equal("permessage-deflate true true", lines.deflate_shared)
      assert.equal("nil", lines.deflate_off)
    end)
  end)
end)
