-- Echo: every message comes back with its kind. Run by `content_by_lua_file` for each
-- connection; permessage-deflate is accepted when the client offers it.
local resty = require "ws.resty"

local conn, err = resty.accept{
  compression = "dedicated",       -- answered only when the client offers permessage-deflate
  max_message = 16 * 1024 * 1024, -- as examples/echo.lua: a bigger message is closed with 1009
  timeout = 300,                  -- an idle client is dropped after five minutes
}
if not conn then
  ngx.log(ngx.INFO, err)       -- accept() has answered the request (400, 403 or 426)
  return
end

for msg, kind in conn:messages() do
  local ok, serr = conn:send(msg, kind)
  if not ok then
    ngx.log(ngx.INFO, "echo: ", serr)
    break
  end
end
if conn.error then ngx.log(ngx.INFO, "echo: ", conn.error) end
conn:close()
