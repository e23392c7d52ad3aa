-- The LuaJIT of the version matrix is the LuaJIT nginx runs: /usr/bin/luajit (which runs the
-- codec specs) and /usr/include/luajit-2.1 (which ws.codec is built against for it) come from
-- the same source package and version as the libluajit that nginx's Lua module loads.
local helper = require "helper"

local function sh(cmd)
  local ok, _, out = helper.run({ "sh", "-c", cmd }, { timeout = 20 })
  assert(ok, "failed: " .. cmd)
  return (out:gsub("%s+$", ""))
end

local function origin(path)
  local pkg = sh("dpkg-query -S " .. helper.shell_quote(path) .. " | cut -d: -f1 | head -n 1")
  return sh("dpkg-query -W -f='${source:Package} ${Version}' " .. helper.shell_quote(pkg)), pkg
end

describe("LuaJIT of the version matrix", function()
  it("is the one nginx's Lua module uses", function()
    local module = "/usr/lib/nginx/modules/ngx_http_lua_module.so"
    assert.is_true(helper.exists(module), "libnginx-mod-http-lua is not installed")
    local lib = sh("ldd " .. module .. " | awk '/libluajit/ { print $3 }'")
    assert.are_not.equal("", lib, "the nginx Lua module does not load libluajit")
    -- dpkg names files by their /usr path on merged-/usr systems
    local base = lib:match("[^/]+$")
    local nginx_jit, lib_pkg = origin("*/" .. base)
    local bin_jit = origin("/usr/bin/luajit")
    local inc_jit = origin("/usr/include/luajit-2.1/lua.h")
    assert.matches("^luajit2 ", nginx_jit, lib_pkg)
    assert.are.equal(nginx_jit, bin_jit)
    assert.are.equal(nginx_jit, inc_jit)
    assert.matches("^LuaJIT 2%.1", sh("luajit -v"))
  end)
end)
