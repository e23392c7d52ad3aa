-- Events of a ws.codec connection, collected in bounded loops, and the frames it wrote
-- (shared by the codec specs).
local codec = require "ws.codec"

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

-- The frames in a conn's output, in order: { opcode, payload (unmasked), fin, rsv, masked }.
-- Raises when the output ends inside a frame.
function M.frames_of(out)
  local frames = {}
  for _ = 1, M.MAX_EVENTS do
    if #out == 0 then return frames end
    local h = assert(codec.parse_frame_header(out))
    local payload = out:sub(h.header_length + 1, h.header_length + h.length)
    assert(#payload == h.length, "output ends inside a frame")
    if h.masked then payload = codec.mask(payload, h.mask) end
    frames[#frames + 1] = { opcode = h.opcode, payload = payload, fin = h.fin, rsv = h.rsv, masked = h.masked }
    out = out:sub(h.header_length + h.length + 1)
  end
  error("too many frames")
end

return M
