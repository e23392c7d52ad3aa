-- A small chat on nginx: every text message a client sends is delivered to everyone in the
-- room as "<name>: <text>"; a client joining gets the recent history first.
--
-- What is shared between nginx workers, and what is not:
--  * shared (ngx.shared.chat, declared by `lua_shared_dict chat 1m;`): the message log (a
--    ring of the last RING messages, numbered by a sequence counter) and the count of people
--    online. Any worker can append to it and read from it.
--  * per worker (this module's locals; each worker loads its own copy): the connections and
--    the semaphore that wakes them. A message posted in a worker reaches that worker's clients
--    at once; the clients of other workers find it when their sender next looks at the log, at
--    most POLL seconds later. With one worker (run.sh) every delivery is immediate.
-- No timer is used: each connection has one light thread reading and one sending.
local resty = require "ws.resty"
local semaphore = require "ngx.semaphore"

local M = {}

local RING = 100       -- messages kept in the log
local POLL = 0.2       -- longest wait before looking for messages from other workers
local MAX_TEXT = 4096  -- longest chat line

local wakeup = semaphore.new()
local next_id = 0

-- Wake every sender of this worker.
local function wake_all()
  local waiting = -wakeup:count()
  if waiting > 0 then wakeup:post(waiting) end
end

local function publish(line)
  local log = ngx.shared.chat
  local seq = log:incr("seq", 1, 0)
  log:set("msg:" .. (seq % RING), line)
  -- The slot is reused after RING messages; the sequence number next to it says which one
  -- it holds now, so a slow reader can tell that it has missed some.
  log:set("at:" .. (seq % RING), seq)
  wake_all()
  return seq
end

-- The sender: waits for new messages and writes them to this client, from `from` on.
local function sender(conn, state, from)
  local log = ngx.shared.chat
  local last = from
  while not state.done do
    local seq = log:get("seq") or 0
    while last < seq and not state.done do
      last = last + 1
      local slot = last % RING
      if log:get("at:" .. slot) ~= last then
        -- Overwritten: this client fell more than RING messages behind.
        local missed = seq - last + 1
        last = seq
        if not conn:send("* missed " .. missed .. " messages") then state.done = true end
      else
        local line = log:get("msg:" .. slot)
        if line and not conn:send(line) then state.done = true end
      end
    end
    if not state.done then wakeup:wait(POLL) end
  end
end

function M.serve()
  local conn, err = resty.accept{ protocols = { "chat" }, max_message = MAX_TEXT, timeout = 600 }
  if not conn then
    ngx.log(ngx.INFO, err)
    return
  end
  local log = ngx.shared.chat
  next_id = next_id + 1
  local name = ngx.var.arg_name
  if not name or name == "" or #name > 32 or name:find("[^%w_%-]") then
    name = "guest" .. ngx.worker.pid() .. "-" .. next_id
  end

  local seq = log:get("seq") or 0
  local first = seq - RING + 1
  if first < 1 then first = 1 end
  local online = log:incr("online", 1, 0)
  conn:send("* welcome " .. name .. " (" .. online .. " online)")

  local state = { done = false }
  local thread = ngx.thread.spawn(sender, conn, state, first - 1)
  publish("* " .. name .. " joined")

  for msg, kind in conn:messages() do
    if kind == "text" then
      publish(name .. ": " .. msg)
    else
      conn:send("* only text is shared")
    end
  end

  state.done = true
  wake_all()
  ngx.thread.wait(thread)
  log:incr("online", -1, 0)
  publish("* " .. name .. " left")
  conn:close()
end

return M
