-- examples/dashboard.lua in a real browser: headless Debian Chromium, driven by playwright-core
-- (spec/support/browser/dashboard_e2e.js), which starts the dashboard, opens its page, puts a load
-- on its /echo socket with Node's ws clients and checks that the uPlot charts follow it. One JSON
-- line per check, each asserted here. The screenshot goes to spec/out/dashboard.png
-- (docs/dashboard.png is made by the same script with --screenshot, see docs/dashboard.md).
local cjson = require "cjson"
local helper = require "helper"
local node_checks = require "support.node_checks"

local RUN_LIMIT = 150 -- seconds for the whole browser run (the script has its own watchdog)

local function run_browser()
  os.execute("mkdir -p spec/out")
  local cmd = ("cd %s && NODE_PATH=%s timeout -k 5 %d %s spec/support/browser/dashboard_e2e.js --server %s --out spec/out 2>&1")
    :format(helper.shell_quote(helper.root), helper.shell_quote(helper.node_path), RUN_LIMIT,
      helper.shell_quote(helper.node), helper.shell_quote(helper.lua .. " examples/dashboard.lua"))
  return node_checks.run(cmd)
end

describe("the dashboard page in Chromium", function()
  local checks, summary, output
  setup(function() checks, summary, output = run_browser() end)

  local function expect_check(name)
    return node_checks.expect(checks, output, name, "; the browser run said").detail
  end

  it("finished every check within its time limit", function()
    assert(summary, "the browser run did not finish: " .. output .. "\n" .. cjson.encode(checks))
    assert.equal(0, summary.failed, cjson.encode(checks))
  end)
  it("serves the page", function() expect_check("page-served") end)
  it("serves uPlot from node_modules", function()
    assert.matches("^uplot %d+%.%d+%.%d+ served from node_modules$", expect_check("uplot-from-npm"))
  end)
  it("draws four live charts", function() expect_check("charts-drawn") end)
  it("moves the charts under a load", function() expect_check("charts-move-under-load") end)
  it("follows the end of the load", function() expect_check("charts-follow-the-end-of-the-load") end)
  it("saves a screenshot", function()
    expect_check("screenshot")
    local f = assert(io.open(helper.root .. "/spec/out/dashboard.png", "rb"))
    local magic = f:read(8)
    f:close()
    assert.equal("\137PNG\r\n\26\n", magic)
  end)
end)
