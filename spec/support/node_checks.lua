-- Runs a Node script that prints one JSON line per check ({"check": name, "ok": bool, "detail": s})
-- and a last {"done": true, "failed": n}, and collects them (the browser and Socket.IO specs).
--   local node_checks = require "support.node_checks"
--   local checks, summary, output = node_checks.run(shell_command)
--     checks[name] = the check's object (reported twice, a failure wins), summary = the done line
--     or nil, output = every other line of the run
--   node_checks.expect(checks, output, name [, said]) -> the check; raises when it did not run or failed
local cjson = require "cjson"

local M = {}

function M.run(cmd)
  local pipe = assert(io.popen(cmd, "r"))
  local checks, summary, other = {}, nil, {}
  for line in pipe:lines() do
    local ok, obj = pcall(cjson.decode, line)
    if ok and type(obj) == "table" and obj.check then
      -- A check may be reported more than once (a page error): a failure wins.
      if checks[obj.check] == nil or not obj.ok then checks[obj.check] = obj end
    elseif ok and type(obj) == "table" and obj.done then
      summary = obj
    else
      other[#other + 1] = line
    end
  end
  pipe:close()
  return checks, summary, table.concat(other, "\n")
end

-- said: what follows "did not run" in the message, e.g. "; the browser run said".
function M.expect(checks, output, name, said)
  local c = checks[name]
  assert(c, ("check %q did not run%s:\n%s\n%s"):format(name, said or "", cjson.encode(checks), output))
  assert(c.ok, ("%s: %s"):format(name, c.detail))
  return c
end

return M
