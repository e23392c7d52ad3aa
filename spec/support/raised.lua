-- The error a call raises, without its position, and whether that position is the caller's
-- line in the spec file (the regression specs of argument and option errors).
--   local raised = require("support.raised").at("option_types_spec")
--   local msg, here = raised(fn)   -- raises (luassert) when fn does not
--   require("support.raised").cases(raised, { { fn, message }, ... })
--     every fn raises exactly message, at the caller's line
local luassert = require "luassert"

local M = {}

function M.at(spec_name)
  local at_caller = "^[^:]*" .. spec_name .. "%.lua:%d+: "
  return function(fn)
    local ok, err = pcall(fn)
    luassert.is_false(ok, "no error raised")
    err = tostring(err)
    local here = err:match(at_caller) ~= nil
    return (err:gsub("^[^:]*:%d+: ", "")), here
  end
end

function M.cases(raised, cases)
  for _, case in ipairs(cases) do
    local msg, here = raised(case[1])
    luassert.are.equal(case[2], msg)
    luassert.is_true(here, "not at the caller's line: " .. msg)
  end
end

return M
