-- Coroutine-style handlers run on threads the server reuses: a handler that returned leaves its
-- thread to the next one, which starts with nothing of the last (no hook); a thread with a hook
-- set on it, or whose handler failed, is not reused.
local helper = require "helper"
local server = require "support.ws_server"
local client = require "support.ws_client"

describe("server handler threads", function()
  local srv
  setup(function()
    srv = server.start([[
      local n = 0
      listen({}, function(conn)
        n = n + 1
        local me, hook, n_args = tostring(coroutine.running()), debug.gethook(), n
        for msg in conn:messages() do
          if msg == "who" then conn:send(me .. "|" .. tostring(hook) .. "|" .. tostring(jit ~= nil))
          elseif msg == "hook" then debug.sethook(function() end, "", 1000000)
          elseif msg == "fail" then error("failed on purpose") end
        end
        log("done " .. n_args)
      end)
    ]])
  end)
  teardown(function() srv:stop() end)

  -- One connection: its handler's thread and hook; then `last` sent and the connection closed.
  local count = 0
  local function session(last)
    count = count + 1
    local c = assert(client.connect(srv.port))
    assert(c:send("who", "text"))
    local kind, got = c:message()
    assert.are.equal("text", kind)
    if last then assert(c:send(last, "text")) end
    c:close(1000, "")
    if last ~= "fail" then assert.truthy(srv:wait_output("done " .. count)) end
    local thread, hook, on_luajit = got:match("^(.-)|(.-)|(.*)$")
    return thread, hook, on_luajit == "true"
  end

  it("reuses a returned handler's thread, never one with a hook or one that failed", function()
    local a = session()
    local b = session()
    assert.are.equal(a, b) -- returned: the next handler runs on the same thread
    local c, c_hook = session("hook")
    assert.are.equal(a, c)
    assert.are.equal("nil", c_hook)
    local d, d_hook, on_luajit = session()
    assert.are_not.equal(c, d) -- the hooked thread was not kept
    -- LuaJIT's hooks belong to the whole VM, not to a thread: there every thread has it now
    -- (so none is reused any more); Lua 5.4's belong to the thread that set it.
    if not on_luajit then assert.are.equal("nil", d_hook) end
    local e = session("fail")
    assert.truthy(helper.wait_until(function() return srv:errors():find("failed on purpose", 1, true) end, 5))
    local f = session()
    assert.are_not.equal(e, f) -- the failed thread was not kept
  end)
end)
