-- The Socket.IO chat page (examples/socketio_chat/) in headless Chromium with the official
-- browser bundle: two pages chat through examples/socketio_chat.lua
-- (spec/support/browser/socketio_e2e.js prints one JSON line per check).
local cjson = require "cjson"
local helper = require "helper"

local RUN_LIMIT = 120

describe("the Socket.IO chat page in Chromium", function()
  local checks, summary, output = {}, nil, ""

  setup(function()
    local cmd = ("timeout -k 5 %d %s spec/support/browser/socketio_e2e.js --server %s 2>&1")
      :format(RUN_LIMIT, helper.shell_quote(helper.node), helper.shell_quote(helper.lua .. " examples/socketio_chat.lua"))
    local pipe = assert(io.popen(cmd, "r"))
    local other = {}
    for line in pipe:lines() do
      local ok, obj = pcall(cjson.decode, line)
      if ok and type(obj) == "table" and obj.check then
        if checks[obj.check] == nil or not obj.ok then checks[obj.check] = obj end
      elseif ok and type(obj) == "table" and obj.done then
        summary = obj
      else
        other[#other + 1] = line
      end
    end
    pipe:close()
    output = table.concat(other, "\n")
  end)

  local function expect_check(name)
    local c = checks[name]
    assert(c, ("check %q did not run:\n%s\n%s"):format(name, cjson.encode(checks), output))
    assert(c.ok, ("%s: %s"):format(name, c.detail))
  end

  it("finishes every check", function()
    assert(summary, "the browser run did not finish: " .. output .. "\n" .. cjson.encode(checks))
    assert.equal(0, summary.failed, cjson.encode(checks))
  end)
  it("serves the page and the official browser bundle", function() expect_check("page-and-bundle-served") end)
  it("connects two pages, polling first, then upgraded to WebSocket", function() expect_check("two-pages-connect-and-upgrade") end)
  it("carries a chat both ways between the pages", function() expect_check("two-pages-chat") end)
  it("keeps rooms apart", function() expect_check("rooms-keep-pages-apart") end)
end)
