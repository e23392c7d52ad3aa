-- The chat page in a real browser: headless Debian Chromium, driven by playwright-core
-- (spec/support/browser/chat_e2e.js), against examples/chat.lua started by that script.
-- The script prints one JSON line per check; each check is asserted here. Screenshots go to
-- spec/out/.
local cjson = require "cjson"
local helper = require "helper"
local node_checks = require "support.node_checks"

local RUN_LIMIT = 180   -- seconds for the whole browser run (the script has its own watchdog)

local function run_browser(redis_url)
  os.execute("mkdir -p spec/out")
  local cmd = ("timeout -k 5 %d %s spec/support/browser/chat_e2e.js --server %s --out spec/out%s 2>&1")
    :format(RUN_LIMIT, helper.shell_quote(helper.node), helper.shell_quote(helper.lua .. " examples/chat.lua"),
      redis_url and (" --redis " .. helper.shell_quote(redis_url)) or "")
  return node_checks.run(cmd)
end

describe("the chat page in Chromium", function()
  local checks, summary, output

  setup(function()
    checks, summary, output = run_browser()
  end)

  local function expect_check(name) node_checks.expect(checks, output, name, "; the browser run said") end

  it("finished every check within its time limit", function()
    assert(summary, "the browser run did not finish: " .. output .. "\n" .. cjson.encode(checks))
    assert.equal(0, summary.failed, cjson.encode(checks))
    for name, c in pairs(checks) do assert(c.ok, name .. ": " .. c.detail) end
  end)

  it("serves the page from the chat server", function() expect_check("page-served") end)
  it("lets two pages join one room and see each other", function() expect_check("two-pages-join") end)
  it("shows a message typed in one page in the other", function() expect_check("message-delivered") end)
  it("carries replies both ways", function() expect_check("reply-delivered") end)
  it("replays history to a page that joins later", function() expect_check("history-replayed") end)
  it("keeps rooms apart", function() expect_check("other-room-isolated") end)
  it("brings back the form when the nickname is taken", function() expect_check("bad-nick-refused") end)
  it("reconnects and rejoins after the server restarts", function() expect_check("reconnects-after-restart") end)
  it("opens a socket from the page's own origin", function() expect_check("same-origin-socket-opens") end)
  it("refuses a page from another origin", function() expect_check("foreign-origin-refused") end)

  it("saves a screenshot of the chat", function()
    expect_check("screenshot")
    local f = assert(io.open("spec/out/chat.png", "rb"))
    local magic = f:read(8)
    f:close()
    assert.equal("\137PNG\r\n\26\n", magic)
  end)
end)

describe("the chat page in Chromium, on two chat processes sharing one Redis", function()
  local redis, checks, summary, output

  setup(function()
    redis = require("support.redis").start()
    checks, summary, output = run_browser(redis.url)
  end)
  teardown(function() if redis then redis.stop() end end)

  local function expect_check(name) node_checks.expect(checks, output, name, "; the browser run said") end

  it("finished every check within its time limit", function()
    assert(summary, "the browser run did not finish: " .. output .. "\n" .. cjson.encode(checks))
    assert.equal(0, summary.failed, cjson.encode(checks))
  end)
  it("lets two pages on two processes join one room", function() expect_check("two-processes-join") end)
  it("carries messages between the processes", function() expect_check("messages-across-processes") end)
  it("shows a page every message sent while its process restarted, once and in order", function()
    expect_check("resumes-after-its-process-restarts")
  end)
end)
