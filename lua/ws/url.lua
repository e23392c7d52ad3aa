-- ws.url: the one parser of ws:// and wss:// URLs (ws.connect, ws.resty.connect, the specs'
-- clients) and the one origin policy (ws.server, ws.resty.accept). Pure Lua (5.1 to 5.4,
-- LuaJIT), no module of ours needed, so it loads in nginx.
local M = {}

-- "ws[s]://host[:port][/path][?query]" -> { scheme, host, port, target, host_header, tls }
-- or nil, message, what ("scheme" | "url" | "host" | "port" | "userinfo"). IPv6 literals go in
-- brackets; the fragment is dropped; host_header leaves out the scheme's default port.
function M.parse(url)
  local scheme, rest = url:match("^(%a[%w+.-]*)://(.*)$")
  if not scheme then return nil, "invalid URL " .. url, "url" end
  scheme = scheme:lower()
  if scheme ~= "ws" and scheme ~= "wss" then return nil, "unsupported URL scheme " .. scheme, "scheme" end
  local authority, target = rest:match("^([^/?#]*)(.*)$")
  target = target:gsub("#.*$", "")
  if target == "" then target = "/" elseif target:sub(1, 1) == "?" then target = "/" .. target end
  if authority:find("@", 1, true) then return nil, "user information in URLs is not supported", "userinfo" end
  local host, port
  if authority:sub(1, 1) == "[" then
    host, port = authority:match("^%[([%x:.]+)%]:?(%d*)$")
  else
    host, port = authority:match("^([^:]+):?(%d*)$")
  end
  if not host or host == "" then return nil, "invalid host in URL " .. url, "host" end
  local default = scheme == "wss" and 443 or 80
  port = port ~= "" and tonumber(port) or default
  if port < 1 or port > 65535 then return nil, "invalid port in URL " .. url, "port" end
  local host_header = authority:sub(1, 1) == "[" and ("[" .. host .. "]") or host
  if port ~= default then host_header = host_header .. ":" .. port end
  return { scheme = scheme, host = host, port = port, target = target, host_header = host_header,
           tls = scheme == "wss" }
end

local function lower(s) return s and s:lower() end

-- Does a browser's Origin name the host it connects to? No Origin (a non-browser client) passes.
function M.same_origin(origin, host)
  if not origin then return true end
  local authority = origin:match("^%a[%w+.-]*://([^/?#]+)")
  return authority ~= nil and host ~= nil and lower(authority) == lower(host)
end

-- The `origins` option -> allowed(origin, host, request), request a function returning the
-- request table (asked only by a function policy). nil: same origin; "*" or true: any; a
-- list: those origins, compared without case; a function: function(origin, request) decides.
-- Every policy admits a request without Origin (browsers always send one); require_origin
-- is the caller's, asked before. Raises `where .. ": origins must be ..."` at `level`.
function M.origin_policy(opt, where, level)
  if opt == nil then
    return M.same_origin
  elseif opt == "*" or opt == true then
    return function() return true end
  elseif type(opt) == "function" then
    return function(origin, _, request) return opt(origin, request()) end
  elseif type(opt) == "table" then
    local allowed = {}
    for _, o in ipairs(opt) do allowed[lower(o)] = true end
    return function(origin) return origin == nil or allowed[lower(origin)] == true end
  end
  error(where .. ": origins must be a list, a function or \"*\"", level + 1)
end

return M
