-- examples/echo.lua on a free port (max_message 16 MiB), an nginx location that echoes with
-- ws.resty, and a payload of a given size, for the specs of message and frame limits.
--   local echo = require "support.echo_example"
--   local proc, port = echo.start()
--   echo.resty_location("/four", "{ max_message = 4 * 1024 * 1024 }") -> text for openresty.start
--   echo.pattern(n) -> n bytes of "0123456789abcdef..."
local helper = require "helper"

local M = {}

function M.start()
  local proc = helper.spawn_lua({ helper.root .. "/examples/echo.lua", "--port", tostring(helper.free_port()) },
    { timeout = 120 })
  local port = proc:wait_output("listening on ws://127%.0%.0%.1:(%d+)/", 10)
  assert(port, "echo.lua did not start: " .. proc:errors())
  return proc, tonumber(port)
end

-- accept_args: the argument text after accept ("()" or "{ ... }").
function M.resty_location(path, accept_args)
  return ([[
location = %s {
    content_by_lua_block {
        local conn = require("ws.resty").accept%s
        if not conn then return end
        for msg, kind in conn:messages() do conn:send(msg, kind) end
        conn:close()
    }
}
]]):format(path, accept_args)
end

function M.pattern(n)
  return ("0123456789abcdef"):rep(math.floor(n / 16) + 1):sub(1, n)
end

return M
