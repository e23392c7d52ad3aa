-- A chat-like lua-ws node on a Redis bus, for the multi-process bus specs. Usage:
--   lua bus_node.lua <port> <redis url> <node id> [presence_ttl] [history] [close|notify]
-- Prints "ready <port>" once listening. Each client drives it with one-line text commands and gets
-- one reply per command, "ok ..." or "err <message> <code>"; messages of the topics it subscribed
-- arrive as "msg <topic> <offset> <epoch> <data>" (the bus's `format`), presence events (for
-- clients that sent "watch") as "presence <topic> <join|leave> <id> <info>", direct messages as
-- "direct <data>".
--   id                         -> ok id <conn.id>
--   sub <topic>                -> ok sub
--   rsub <topic> <since> [epoch] -> ok rsub <replayed> | ok rsub false (subscribed already) | err rsub <message> <code>
--   track <topic> <info>       -> ok track | err ...
--   untrack <topic>            -> ok untrack
--   pub <topic> <data>         -> ok pub         (ordered topics: queued; fast: local count)
--   cpub <topic> <data>        -> ok cpub        (conn:publish: everyone but this connection)
--   wpub <topic> <data>        -> ok wpub <offset> <epoch>
--   hist <topic> <limit> [since [epoch]] -> ok hist <top> <epoch> <gone|-> <offset>:<data> ...
--   pres <topic>               -> ok pres <id>=<info> ... (sorted by id)
--   watch                      -> ok watch
--   sendto <id> <data>         -> ok sendto | err ...
--   bus                        -> ok bus <state> <counter>=<value> ...
local ws = require "ws"

local port, url, node = tonumber(arg[1]), arg[2], arg[3]
local presence_ttl, history = tonumber(arg[4] or "60"), tonumber(arg[5] or "1000")
local gap_mode = arg[6] or "close" -- "close": the default on_gap (1012); "notify": "gap <topic> <why> <n>" to them

local watchers = setmetatable({}, { __mode = "k" })

local server
local function reply(conn, ...)
  local parts = { ... }
  for i = 1, #parts do parts[i] = tostring(parts[i]) end
  conn:send(table.concat(parts, " "))
end

local function err_reply(conn, what, msg, code)
  reply(conn, "err", what, tostring(msg):gsub("%s", "_"), tostring(code))
end

local handlers = {}
function handlers.id(conn) reply(conn, "ok id", conn.id) end
function handlers.sub(conn, topic) conn:subscribe(topic) reply(conn, "ok sub") end
function handlers.rsub(conn, topic, rest)
  local since, epoch = (rest or ""):match("^(%d+)%s*(%S*)")
  local ok, msg, code = conn:subscribe(topic, { since = tonumber(since), epoch = epoch ~= "" and epoch or nil })
  if ok ~= nil then reply(conn, "ok rsub", ok and msg or "false") else err_reply(conn, "rsub", msg, code) end
end
function handlers.track(conn, topic, info)
  local ok, msg, code = conn:track(topic, info or "")
  if ok then reply(conn, "ok track") else err_reply(conn, "track", msg, code) end
end
function handlers.untrack(conn, topic)
  local ok, msg, code = conn:untrack(topic)
  if ok then reply(conn, "ok untrack") else err_reply(conn, "untrack", msg, code) end
end
function handlers.pub(conn, topic, data)
  local ok, msg, code = server:publish(topic, data or "")
  if ok then reply(conn, "ok pub") else err_reply(conn, "pub", msg, code) end
end
function handlers.cpub(conn, topic, data)
  local ok, msg, code = conn:publish(topic, data or "")
  if ok then reply(conn, "ok cpub") else err_reply(conn, "cpub", msg, code) end
end
function handlers.wpub(conn, topic, data)
  local offset, epoch, code = server:publish(topic, data or "", { wait = true })
  if offset then reply(conn, "ok wpub", offset, epoch) else err_reply(conn, "wpub", epoch, code) end
end
function handlers.hist(conn, topic, rest)
  local limit, since, epoch = (rest or ""):match("^(%d+)%s*(%d*)%s*(%S*)")
  local list, top, code = server:history(topic, {
    limit = tonumber(limit), since = tonumber(since), epoch = epoch ~= "" and epoch or nil })
  if not list then return err_reply(conn, "hist", top, code) end
  local out = { "ok hist", top.offset, top.epoch, top.gone or "-" }
  for _, e in ipairs(list) do out[#out + 1] = e.offset .. ":" .. e.data end
  reply(conn, (table.unpack or unpack)(out))
end
function handlers.pres(conn, topic)
  local map, msg, code = server:presence(topic)
  if not map then return err_reply(conn, "pres", msg, code) end
  local list = {}
  for id, info in pairs(map) do list[#list + 1] = id .. "=" .. info end
  table.sort(list)
  reply(conn, "ok pres", (table.unpack or unpack)(list))
end
function handlers.watch(conn) watchers[conn] = true reply(conn, "ok watch") end
function handlers.sendto(conn, id, data)
  local ok, msg, code = server:send_to(id, "direct " .. (data or ""))
  if ok then reply(conn, "ok sendto") else err_reply(conn, "sendto", msg, code) end
end
function handlers.bus(conn)
  local state, counters = server:bus()
  local out = { "ok bus", state }
  local names = {}
  for k in pairs(counters or {}) do names[#names + 1] = k end
  table.sort(names)
  for _, k in ipairs(names) do out[#out + 1] = k .. "=" .. tostring(counters[k]) end
  reply(conn, (table.unpack or unpack)(out))
end

server = assert(ws.server({
  port = port,
  max_backlog = 64 * 1024 * 1024, -- a gap fill delivers a burst at once: the specs count every message
  bus = {
    url = url, node = node, ordered = { "room:*" }, history = history, presence_ttl = presence_ttl,
    linger = 0.2, ping = 1, timeout = 1,
    format = function(topic, data, offset, epoch)
      return "msg " .. topic .. " " .. offset .. " " .. epoch .. " " .. data
    end,
  },
}, function(conn)
  for msg in conn:messages() do
    local cmd, a, b = msg:match("^(%S+)%s*(%S*)%s?(.*)$")
    local h = handlers[cmd]
    if h then h(conn, a ~= "" and a or nil, b ~= "" and b or nil) else reply(conn, "err " .. tostring(cmd) .. " unknown") end
  end
end))

server.on_presence = function(topic, event, id, info)
  for conn in pairs(watchers) do
    if conn.state == "open" then reply(conn, "presence", topic, event, id, info) end
  end
end

if gap_mode == "notify" then
  server.on_gap = function(topic, conns, why)
    for _, conn in ipairs(conns) do reply(conn, "gap", topic, why, #conns) end
  end
end

io.stdout:write("ready ", server.port, "\n")
io.stdout:flush()
ws.run()
