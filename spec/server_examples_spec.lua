-- The server examples as users run them: examples/dialogue.lua with its client (several at
-- once, each conversation waiting on its own), and examples/echo.lua's command line.
local helper = require "helper"

local function start(script, args)
  local argv = { helper.root .. "/examples/" .. script, "--port", tostring(helper.free_port()) }
  for _, a in ipairs(args or {}) do argv[#argv + 1] = a end
  local proc = helper.spawn_lua(argv, { timeout = 60 })
  local port = proc:wait_output("listening on ws://127%.0%.0%.1:(%d+)/", 10)
  assert(port, script .. " did not start: " .. proc:errors())
  return proc, tonumber(port)
end

describe("server examples", function()
  it("dialogue: each client is asked its name after a second, concurrently", function()
    local proc, port = start("dialogue.lua")
    local clients = {}
    local t0 = helper.now()
    for i = 1, 5 do
      clients[i] = helper.spawn_lua({ helper.root .. "/examples/dialogue_client.lua", "--port", tostring(port),
        "--name", "N" .. i }, { timeout = 30 })
    end
    for i = 1, 5 do
      assert.are.equal(0, clients[i]:wait(15))
      local out = clients[i]:output()
      assert.matches("< What's your name%?\n> N" .. i .. "\n< Nice to meet you, N" .. i .. "! I am connection %d+%.\n", out)
      assert.matches("closed: 1000 bye", out)
      clients[i]:kill()
    end
    local took = helper.now() - t0
    assert.is_true(took < 4.5, "the conversations ran one after another: " .. took)
    proc:kill()
  end)

  it("echo: prints one line and rejects unknown options", function()
    local proc, port = start("echo.lua", { "--protocol", "x" })
    assert.are.equal(("echo: listening on ws://127.0.0.1:%d/\n"):format(port), proc:output())
    proc:kill()
    local ok, code, _, err = helper.run({ helper.lua, helper.root .. "/examples/echo.lua", "--bogus" }, { timeout = 10 })
    assert.is_false(ok)
    assert.are.equal(2, code)
    assert.matches("usage:", err)
  end)
end)
