-- Starts examples/openresty/run.sh (the echo at / and the chat at /chat) on a free port, as
-- spec/openresty_spec.lua does, with extra `location` blocks given as text. Returns nil when
-- nginx or its Lua module is not installed.
local helper = require "helper"

local M = {}

M.available = helper.exists("/usr/sbin/nginx")
  and helper.exists("/usr/lib/nginx/modules/ngx_http_lua_module.so")

-- start([locations]) -> { port, proc, stop = function }. `locations` is nginx configuration
-- put inside the server block (@ROOT@ and @PORT@ are filled in by run.sh).
function M.start(locations)
  local port = helper.free_port()
  local env = {}
  local dir
  if locations then
    dir = helper.tmpdir("lua-ws-nginx")
    helper.write_file(dir .. "/extra.conf", locations)
    env.WS_NGINX_INCLUDE = dir .. "/extra.conf"
  end
  local proc = helper.spawn({ "bash", helper.root .. "/examples/openresty/run.sh", tostring(port) },
    { timeout = 600, env = env })
  -- The first run also builds ws.codec for LuaJIT; nginx says when its worker runs.
  local up = helper.wait_until(function()
    if proc:errors():find("start worker process", 1, true) then return true end
    if not proc:running() then return "exited" end
  end, 180, 0.1)
  local self = { port = port, proc = proc }
  function self.stop()
    proc:kill()
    if dir then helper.rmtree(dir) end
  end
  if up ~= true then
    local errors = proc:errors()
    self.stop()
    error("nginx did not start: " .. tostring(up) .. "\n" .. errors)
  end
  return self
end

return M
