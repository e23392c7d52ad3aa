-- The Socket.IO chat page (examples/socketio_chat/) in headless Chromium with the official
-- browser bundle: two pages chat through examples/socketio_chat.lua
-- (spec/support/browser/socketio_e2e.js prints one JSON line per check).
local cjson = require "cjson"
local helper = require "helper"
local node_checks = require "support.node_checks"

local RUN_LIMIT = 120

describe("the Socket.IO chat page in Chromium", function()
  local checks, summary, output = {}, nil, ""

  setup(function()
    local cmd = ("timeout -k 5 %d %s spec/support/browser/socketio_e2e.js --server %s 2>&1")
      :format(RUN_LIMIT, helper.shell_quote(helper.node), helper.shell_quote(helper.lua .. " examples/socketio_chat.lua"))
    checks, summary, output = node_checks.run(cmd)
  end)

  local function expect_check(name) node_checks.expect(checks, output, name) end

  it("finishes every check", function()
    assert(summary, "the browser run did not finish: " .. output .. "\n" .. cjson.encode(checks))
    assert.equal(0, summary.failed, cjson.encode(checks))
  end)
  it("serves the page and the official browser bundle", function() expect_check("page-and-bundle-served") end)
  it("connects two pages, polling first, then upgraded to WebSocket", function() expect_check("two-pages-connect-and-upgrade") end)
  it("carries a chat both ways between the pages", function() expect_check("two-pages-chat") end)
  it("keeps rooms apart", function() expect_check("rooms-keep-pages-apart") end)
end)
