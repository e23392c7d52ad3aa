-- The release as a user of `luarocks install` gets it: the versioned rockspec packed with
-- `luarocks pack` from this checkout (its source a tarball of the checkout's files), the source
-- rock installed into a fresh tree (built there by luarocks), and the installed modules used from
-- that tree alone: a WebSocket echo on 127.0.0.1 and the metrics. Also: ws._VERSION, the rockspec's
-- version and CHANGELOG.md agree.
local helper = require "helper"

local function sh(cmd, timeout)
  if type(cmd) == "string" then cmd = { "sh", "-c", cmd } end
  local ok, code, out, err = helper.run(cmd, { timeout = timeout or 60 })
  assert(ok, ("%s\nexit %s\n%s\n%s"):format(table.concat(cmd, " "),
    tostring(code), out, err))
  return out
end

local function version_of_tree()
  local src = helper.read_file(helper.root .. "/lua/ws/init.lua")
  return assert(src:match('_VERSION = "([^"]+)"'), "no _VERSION in lua/ws/init.lua")
end

describe("release", function()
  local version = version_of_tree()
  local rockspec = ("%s/rockspecs/lua-ws-%s-1.rockspec"):format(helper.root, version)

  it("has one version in ws._VERSION, the rockspec and the changelog", function()
    assert.matches("^%d+%.%d+%.%d+$", version)
    local spec = assert(helper.read_file(rockspec), "missing " .. rockspec)
    assert.matches('\nversion = "' .. version:gsub("%.", "%%.") .. '%-1"\n', spec)
    assert.matches('\n  tag = "v' .. version:gsub("%.", "%%.") .. '",\n', spec)
    local changelog = assert(helper.read_file(helper.root .. "/CHANGELOG.md"))
    assert.matches("\n## %[" .. version:gsub("%.", "%%.") .. "%]", changelog)
    -- the scm rockspec builds the same way (only the version and the source differ)
    local scm = helper.read_file(helper.root .. "/rockspecs/lua-ws-scm-1.rockspec")
    local function body(s) return (s:gsub('\nversion = "[^"]+"\n', "\n"):gsub('\n  tag = "[^"]+",\n', "\n")) end
    assert.are.equal(body(scm), body(spec))
  end)

  it("packs with luarocks pack, installs into a fresh tree and runs from there", function()
    local dir = helper.tmpdir("lua-ws-release")
    local name = "lua-ws-" .. version
    -- the checkout's files (tracked, and new ones not ignored), as a release tarball would hold them
    sh(("cd %s && mkdir -p %s/%s && git ls-files -z -co --exclude-standard | xargs -0 cp --parents -t %s/%s")
      :format(helper.shell_quote(helper.root), dir, name, dir, name))
    sh(("cd %s && tar czf %s.tar.gz %s"):format(dir, name, name))
    local spec = helper.read_file(rockspec)
    spec = spec:gsub('\n  url = "[^"]+",\n  tag = "[^"]+",\n',
      ('\n  url = "file://%s/%s.tar.gz",\n  dir = "%s",\n'):format(dir, name, name))
    helper.write_file(("%s/lua-ws-%s-1.rockspec"):format(dir, version), spec)
    sh(("cd %s && luarocks --lua-version=5.4 pack lua-ws-%s-1.rockspec"):format(dir, version), 120)
    local rock = ("%s/lua-ws-%s-1.src.rock"):format(dir, version)
    assert.is_truthy(helper.read_file(rock), "luarocks pack made no " .. rock)
    local tree = dir .. "/tree"
    sh(("cd %s && luarocks --lua-version=5.4 install --tree %s %s"):format(dir, tree, rock), 900)
    local list = sh(("luarocks --lua-version=5.4 list --tree %s --porcelain"):format(tree))
    assert.matches("lua%-ws\t" .. version:gsub("%.", "%%.") .. "%-1\tinstalled", list)

    helper.write_file(dir .. "/use.lua", [[
      local ws = require "ws"
      for _, m in ipairs({ "ws", "ws.core", "ws.codec", "ws.metrics" }) do
        local p = package.searchpath(m, package.path) or package.searchpath(m, package.cpath)
        print("from", m, p:sub(1, #arg[1]) == arg[1])
      end
      print("version", ws._VERSION)
      local srv = assert(ws.server({ port = 0 }, function(conn)
        for msg in conn:messages() do conn:send("echo " .. msg) end
      end))
      ws.spawn(function()
        local c = assert(ws.connect("ws://127.0.0.1:" .. srv.port .. "/"))
        c:send("installed")
        print("got", c:receive(5))
        c:close()
        print(ws.metrics():match("\nws_connections_accepted_total %d+"))
        srv:close()
      end)
      ws.run()
    ]])
    -- from another directory, with only the tree on the paths: nothing comes from the checkout
    local lpath = ("%s/share/lua/5.4/?.lua;%s/share/lua/5.4/?/init.lua"):format(tree, tree)
    local cpath = tree .. "/lib/lua/5.4/?.so"
    local out = sh({ "sh", "-c", ('cd / && LUA_PATH="%s" LUA_PATH_5_4="%s" LUA_CPATH="%s" LUA_CPATH_5_4="%s" lua5.4 %s/use.lua %s')
      :format(lpath, lpath, cpath, cpath, dir, tree) })
    for _, m in ipairs({ "ws", "ws.core", "ws.codec", "ws.metrics" }) do
      assert.matches("from\t" .. m:gsub("%.", "%%.") .. "\ttrue\n", out)
    end
    assert.matches("version\t" .. version:gsub("%.", "%%.") .. "\n", out)
    assert.matches("got\techo installed\ttext\n", out, 1, true)
    assert.matches("ws_connections_accepted_total 2", out, 1, true)
    helper.rmtree(dir)
  end)
end)
