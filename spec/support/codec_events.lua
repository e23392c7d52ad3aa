-- Events of a ws.codec connection, collected in bounded loops (shared by the codec specs).
local M = {}

M.MAX_EVENTS = 100000 -- every loop is bounded

-- Appends every event c:next() has now (each as the list of its values) to `into`.
function M.drain(c, into)
  into = into or {}
  for _ = 1, M.MAX_EVENTS do
    local ev = { c:next() }
    if ev[1] == nil then return into end
    into[#into + 1] = ev
  end
  error("too many events")
end

return M
