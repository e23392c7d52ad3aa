-- Interop of the server (examples/echo.lua, as users run it) with independent clients:
-- Python `websockets` and Node `ws`, each run as a child process with a time limit.
local helper = require "helper"

local CHECKS = { "handshake", "text", "binary", "fragmented", "ping", "burst", "close", "concurrent" }

local function start_echo(args)
  local argv = { helper.root .. "/examples/echo.lua", "--port", tostring(helper.free_port()) }
  for _, a in ipairs(args or {}) do argv[#argv + 1] = a end
  local proc = helper.spawn_lua(argv, { timeout = 120 })
  local port = proc:wait_output("listening on ws://127%.0%.0%.1:(%d+)/", 10)
  assert(port, "echo did not start: " .. proc:errors())
  return proc, tonumber(port)
end

local function check_output(out)
  for _, name in ipairs(CHECKS) do
    assert.matches("ok " .. name .. "\n", out, 1, true)
  end
end

describe("server interop", function()
  local echo, port, echo_p, port_p
  setup(function()
    echo, port = start_echo()
    echo_p, port_p = start_echo({ "--protocol", "echo.v1" })
  end)
  teardown(function()
    echo:kill()
    echo_p:kill()
  end)

  it("passes the Python websockets client's checks", function()
    local ok, code, out, err = helper.run({ helper.python, helper.root .. "/spec/support/interop_client.py",
      "ws://127.0.0.1:" .. port .. "/" }, { timeout = 60 })
    assert.is_true(ok, ("exit %s\n%s\n%s"):format(code, out, err))
    check_output(out)
  end)

  it("negotiates a subprotocol with Python websockets", function()
    local ok, code, out, err = helper.run({ helper.python, helper.root .. "/spec/support/interop_client.py",
      "ws://127.0.0.1:" .. port_p .. "/", "echo.v1" }, { timeout = 60 })
    assert.is_true(ok, ("exit %s\n%s\n%s"):format(code, out, err))
    check_output(out)
  end)

  it("passes the Node ws client's checks", function()
    local ok, code, out, err = helper.run({ helper.node, helper.root .. "/spec/support/interop_client.js",
      "ws://127.0.0.1:" .. port .. "/" }, { timeout = 60, env = { NODE_PATH = helper.node_path } })
    assert.is_true(ok, ("exit %s\n%s\n%s"):format(code, out, err))
    check_output(out)
  end)

  it("negotiates a subprotocol with Node ws", function()
    local ok, code, out, err = helper.run({ helper.node, helper.root .. "/spec/support/interop_client.js",
      "ws://127.0.0.1:" .. port_p .. "/", "echo.v1" }, { timeout = 60, env = { NODE_PATH = helper.node_path } })
    assert.is_true(ok, ("exit %s\n%s\n%s"):format(code, out, err))
    check_output(out)
  end)
end)
