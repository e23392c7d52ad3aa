-- busted output for `make test`: utfTerminal's dots and summary, plus the test now running written
-- to the file named by WS_TEST_PROGRESS, so that a run stopped by its time limit can say where it hung.
return function(options)
  local busted = require "busted"
  local handler = require("busted.outputHandlers.utfTerminal")(options)
  local path = os.getenv("WS_TEST_PROGRESS")
  if path then
    busted.subscribe({ "test", "start" }, function(element)
      local f = io.open(path, "w")
      if f then
        local trace = element.trace or {}
        f:write(handler.getFullName(element), " (", tostring(trace.short_src), ":",
          tostring(trace.currentline), ")\n")
        f:close()
      end
      return nil, true
    end)
  end
  return handler
end
