-- csrc/binding/lua_compat.h, the Lua 5.4 API of the ws.core binding on LuaJIT: a C program
-- (spec/support/lua_compat_check.c) built against each Lua's headers checks user values, the
-- getters' results, lua_resume's results, sized buffers and the main thread.
local helper = require "helper"

local luas = {
  { name = "LuaJIT 2.1", inc = "/usr/include/luajit-2.1", lib = "-lluajit-5.1" },
  { name = "Lua 5.4", inc = "/usr/include/lua5.4", lib = "-llua5.4" },
}

describe("lua_compat.h", function()
  local dir
  setup(function() dir = helper.tmpdir("lua-ws-compat") end)
  teardown(function() if dir then helper.rmtree(dir) end end)

  for i, lua in ipairs(luas) do
    it("maps the binding's API on " .. lua.name, function()
      local exe = dir .. "/check" .. i
      local ok, code, out, err = helper.run({ "cc", "-std=c99", "-Wall", "-Wextra", "-Wpedantic", "-Werror",
        "-I" .. helper.root .. "/csrc", "-I" .. lua.inc, "-o", exe,
        helper.root .. "/spec/support/lua_compat_check.c", lua.lib }, { timeout = 60 })
      assert(ok, ("cc failed (%s):\n%s%s"):format(tostring(code), out or "", err or ""))
      ok, code, out, err = helper.run({ exe }, { timeout = 20 })
      assert.are.equal("ok\n", out, err)
      assert.is_true(ok, tostring(code))
    end)
  end
end)
