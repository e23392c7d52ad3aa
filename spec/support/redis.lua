-- A redis-server of the spec's own on a free 127.0.0.1 port, killed by its pid (process group)
-- at stop() or when the suite ends: no persistence, nothing shared with a system Redis.
--   local redis = require("spec.support.redis").start()   -- raises when it cannot start
--   redis.port, redis.url ("redis://127.0.0.1:<port>"), redis.pid
--   redis.cli("PUBSUB", "NUMSUB", "ws:t:room") -> redis-cli's output (raw, no trailing newline)
--   redis.stop(), redis.restart()   -- restart keeps the port; the data are gone (no persistence)
-- opts: port (default free), args (extra redis-server arguments), timeout (seconds it may live, 600),
-- tls = { cert =, key =, ca = } (paths, e.g. from support.certs): TLS only, url "rediss://...".
-- redis.args() is the redis-cli connection arguments (host, port, TLS) for callers of their own.
local helper = require "helper"

local M = {}

M.available = (function()
  local ok = helper.run({ "sh", "-c", "command -v redis-server && command -v redis-cli" }, { timeout = 5 })
  return ok
end)()

function M.start(opts)
  opts = opts or {}
  assert(M.available, "redis-server and redis-cli are needed (scripts/deps.sh installs them)")
  local r = { port = opts.port or helper.free_port() }
  r.url = (opts.tls and "rediss" or "redis") .. "://127.0.0.1:" .. r.port

  function r.args()
    local a = { "-h", "127.0.0.1", "-p", tostring(r.port) }
    if opts.tls then
      for _, x in ipairs({ "--tls", "--cacert", opts.tls.ca }) do a[#a + 1] = x end
    end
    return a
  end

  function r.cli(...)
    local argv = { "redis-cli" }
    for _, a in ipairs(r.args()) do argv[#argv + 1] = a end
    argv[#argv + 1] = "--raw"
    for _, a in ipairs({ ... }) do argv[#argv + 1] = tostring(a) end
    local _, _, out = helper.run(argv, { timeout = 10 })
    return ((out or ""):gsub("\n$", ""))
  end

  local function launch()
    local argv = { "redis-server", "--bind", "127.0.0.1", "--port", tostring(r.port), "--save", "",
                   "--appendonly", "no", "--daemonize", "no", "--protected-mode", "no" }
    if opts.tls then
      argv[5] = "0"
      for _, a in ipairs({ "--tls-port", tostring(r.port), "--tls-cert-file", opts.tls.cert, "--tls-key-file",
                           opts.tls.key, "--tls-ca-cert-file", opts.tls.ca, "--tls-auth-clients", "no" }) do
        argv[#argv + 1] = a
      end
    end
    for _, a in ipairs(opts.args or {}) do argv[#argv + 1] = a end
    r.proc = helper.spawn(argv, { timeout = opts.timeout or 600 })
    r.pid = r.proc.pid
    local up = helper.wait_until(function() return r.cli("PING") == "PONG" end, 10, 0.05)
    assert(up, "redis-server did not start: " .. tostring(r.proc:errors()) .. tostring(r.proc:output()))
  end

  function r.stop()
    if r.proc then r.proc:kill(2) end
    r.proc = nil
  end

  function r.restart()
    r.stop()
    launch()
  end

  launch()
  return r
end

return M
