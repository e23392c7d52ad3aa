-- Throwaway certificates for the TLS specs, made at test time with the `openssl` command in a
-- temporary directory (nothing secret is committed). certs.make() returns a table of paths:
--   ca, ca_key            test CA "lua-ws test CA"
--   cert, key             server certificate from ca: SAN IP:127.0.0.1, DNS:localhost
--   other_cert, other_key server certificate from ca for the name other.test (SNI)
--   ca2, cert2, key2      a second CA and a server certificate from it (SAN as above), for reloads
--   client_cert, client_key  a client certificate from ca (verify_peer)
--   both_ca               ca and ca2 in one file
--   dir                   the directory; certs.cleanup() (or the end of the process) removes it
-- The directory is made once per process and shared by every spec that asks.
local helper = require "helper"

local M = {}
local made

local function sh(cmd)
  local ok, code, out, err = helper.run({ "sh", "-c", cmd }, { timeout = 60 })
  if not ok then error("openssl failed (" .. tostring(code) .. "): " .. cmd .. "\n" .. tostring(out) .. tostring(err)) end
end

local function q(s) return helper.shell_quote(s) end

-- EC P-256 keys: quick to make and to use.
local NEWKEY = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"

local function make_ca(dir, name, cn)
  sh(("openssl req -x509 %s -keyout %s -out %s -days 2 -subj %s " ..
      "-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign")
    :format(NEWKEY, q(dir .. "/" .. name .. ".key"), q(dir .. "/" .. name .. ".crt"), q("/CN=" .. cn)))
end

local function make_leaf(dir, ca, name, cn, san, usage)
  local ext = dir .. "/" .. name .. ".ext"
  helper.write_file(ext, ("basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=%s\n%s")
    :format(usage, san and ("subjectAltName=" .. san .. "\n") or ""))
  sh(("openssl req %s -keyout %s -out %s -subj %s"):format(NEWKEY, q(dir .. "/" .. name .. ".key"),
    q(dir .. "/" .. name .. ".csr"), q("/CN=" .. cn)))
  sh(("openssl x509 -req -in %s -CA %s -CAkey %s -CAcreateserial -out %s -days 2 -extfile %s 2>/dev/null")
    :format(q(dir .. "/" .. name .. ".csr"), q(dir .. "/" .. ca .. ".crt"), q(dir .. "/" .. ca .. ".key"),
      q(dir .. "/" .. name .. ".crt"), q(ext)))
end

function M.make()
  if made then return made end
  local dir = helper.tmpdir("lua-ws-certs")
  make_ca(dir, "ca", "lua-ws test CA")
  make_ca(dir, "ca2", "lua-ws second test CA")
  make_leaf(dir, "ca", "server", "localhost", "IP:127.0.0.1,DNS:localhost", "serverAuth")
  make_leaf(dir, "ca", "other", "other.test", "DNS:other.test", "serverAuth")
  make_leaf(dir, "ca2", "server2", "localhost", "IP:127.0.0.1,DNS:localhost", "serverAuth")
  make_leaf(dir, "ca", "client", "lua-ws test client", nil, "clientAuth")
  helper.write_file(dir .. "/both.crt", helper.read_file(dir .. "/ca.crt") .. helper.read_file(dir .. "/ca2.crt"))
  made = {
    dir = dir,
    ca = dir .. "/ca.crt", ca_key = dir .. "/ca.key",
    cert = dir .. "/server.crt", key = dir .. "/server.key",
    other_cert = dir .. "/other.crt", other_key = dir .. "/other.key",
    ca2 = dir .. "/ca2.crt", cert2 = dir .. "/server2.crt", key2 = dir .. "/server2.key",
    client_cert = dir .. "/client.crt", client_key = dir .. "/client.key",
    both_ca = dir .. "/both.crt",
  }
  -- The directory goes when the test process ends (its state is closed at exit).
  made._guard = setmetatable({}, { __gc = function() helper.rmtree(dir) end })
  return made
end

function M.cleanup()
  if made then helper.rmtree(made.dir) end
  made = nil
end

return M
