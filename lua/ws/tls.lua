-- ws.tls: TLS options to contexts. Server: { cert, key [, ca, verify_peer], sni = { [name] =
-- { cert, key } } }. Client: { ca, verify = true, server_name, cert, key }. Contexts are
-- reference counted in C: a server's reload swaps the context for new connections only.
local core = require "ws.core"

local M = {}

local function check_string(t, k, where, required)
  local v = t[k]
  if v == nil and not required then return nil end
  if type(v) ~= "string" then error(("%s: tls.%s must be a file name"):format(where, k), 4) end
  return v
end

-- ctx | nil, message
function M.server_context(opts, where)
  where = where or "ws.server"
  if type(opts) ~= "table" then error(where .. ": tls must be a table", 3) end
  local sni
  if opts.sni ~= nil then
    if type(opts.sni) ~= "table" then error(where .. ": tls.sni must be a table", 3) end
    sni = {}
    for name, pair in pairs(opts.sni) do
      if type(name) ~= "string" or type(pair) ~= "table" then
        error(where .. ": tls.sni must map names to { cert =, key = }", 3)
      end
      sni[name] = { cert = check_string(pair, "cert", where, true), key = check_string(pair, "key", where, true) }
    end
  end
  local ctx, err = core.tls_context({
    server = true,
    cert = check_string(opts, "cert", where, true),
    key = check_string(opts, "key", where, true),
    ca = check_string(opts, "ca", where),
    verify = opts.verify_peer == true,
    sni = sni,
  })
  if not ctx then return nil, "tls: " .. err end
  return ctx
end

-- Client contexts are shared by every connection with the same settings.
local client_cache = setmetatable({}, { __mode = "v" })

function M.client_context(opts)
  opts = opts or {}
  if type(opts) ~= "table" then error("ws.connect: tls must be a table", 3) end
  local verify = opts.verify ~= false
  local ca = check_string(opts, "ca", "ws.connect")
  local cert = check_string(opts, "cert", "ws.connect")
  local key = check_string(opts, "key", "ws.connect")
  local id = table.concat({ tostring(verify), ca or "", cert or "", key or "" }, "\0")
  local ctx = client_cache[id]
  if ctx then return ctx end
  local err
  ctx, err = core.tls_context({ server = false, ca = ca, verify = verify, cert = cert, key = key })
  if not ctx then return nil, "tls: " .. err end
  client_cache[id] = ctx
  return ctx
end

-- server:reload_tls(opts): new connections get the new certificates; open ones keep theirs.
-- true | nil, message, "tls" (the old context stays in place on error).
function M.reload(srv, opts)
  if not srv._tls then error("server:reload_tls: the server was not started with tls", 3) end
  if srv.closing then error("server:reload_tls: the server is closed", 3) end
  local ctx, err = M.server_context(opts, "server:reload_tls")
  if not ctx then return nil, err, "tls" end
  core.server_set_tls(srv._l, ctx)
  srv._tls = ctx
  return true
end

-- What a connection negotiated: { version =, cipher =, alpn = } or nil (not TLS).
M.info = core.tls_info

return M
