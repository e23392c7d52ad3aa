#!/usr/bin/env lua5.4
--[[
lua-ws chat: rooms, nicknames, presence and history, with its web page on the same port.

  lua5.4 examples/chat.lua [--port 8080] [--host 127.0.0.1] [--history 50] [--origin URL ...]
                           [--redis redis://127.0.0.1:6379] [--workers K]

The page is served at http://HOST:PORT/ (examples/chat/), the WebSocket at ws://HOST:PORT/ws.
Browsers are admitted by the server's origin policy: by default a page must come from the host
it connects to; each --origin adds an allowed origin (e.g. --origin https://chat.example.org).
GET /stats answers JSON counters (connections, rooms, messages dropped for slow readers).

Fan-out goes through the server's topics: each room is the topic "room:<name>", and a message is
encoded to JSON once and published once; a member that stops reading has messages dropped (its
`conn.dropped` counts them) instead of holding up the room.

With --redis, rooms span every chat process on that Redis (and, with --workers K, every worker
of this one): room messages are an ordered topic of the server's bus (one `seq` per room, kept by
Redis, the history in a Redis stream), members are the topic's presence, and joined/left come
from presence events. Without --redis everything lives in this one process (docs/chat.md).

The protocol: every WebSocket message is one JSON object (text frames) with a string "type".

  client -> server
    {"type":"join", "room":"lobby", "nick":"ada"}  join a room (leaving the previous one).
        room: 1-32 of A-Z a-z 0-9 - _ .   nick: 1-32 characters, no control characters,
        unique within the room. With "since": <seq of the last message seen>, after a dropped
        link: the messages after it, then {"type":"resumed",...}, instead of the history.
    {"type":"message", "text":"hello"}     say something in the room (1-2000 characters).
    {"type":"leave"}                        leave the room (the connection stays open).

  server -> client
    {"type":"welcome", "id":7, "limits":{"nick":32,"room":32,"text":2000}, "history":50}
        first message on every connection; id is this connection's id.
    {"type":"members", "room":"lobby", "members":[{"id":7,"nick":"ada"}, ...]}
        to who joins: everyone in the room, the joiner included.
    {"type":"history", "room":"lobby", "messages":[<message>, ...]}
        to who joins, right after members: the room's last messages, oldest first.
    {"type":"joined", "room":"lobby", "id":7, "nick":"ada", "ts":1700000000000}
    {"type":"left", "room":"lobby", "id":7, "nick":"ada", "ts":1700000000000}
        to every member, the joiner or leaver included.
    {"type":"message", "room":"lobby", "seq":12, "from":7, "nick":"ada", "text":"hello",
     "ts":1700000000000}
        to every member, the sender included; seq counts the room's messages from 1; ts is in
        milliseconds since 1970.
    {"type":"error", "code":"not_joined", "message":"join a room first"}
        to the one connection whose request failed; it stays open. Codes: bad_json,
        bad_message, unknown_type, bad_nick, bad_room, nick_taken, too_many_rooms, not_joined,
        bad_text, too_long, bad_since, unavailable (with --redis: the room's Redis cannot be reached;
        the message was not sent, the client may retry).
]]

-- Run from anywhere with no environment: find the tree's lua/ next to this script.
local here = (arg and arg[0] or ""):match("^(.*)[/\\][^/\\]*$") or "."
local root = here .. "/.."
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = root .. (jit and "/build/luajit/?.so;" or "/lua/?.so;") .. package.cpath -- `make luajit` builds there

local ws = require "ws"
local cjson = require "cjson"

-- Lua 5.3+ library functions, and what stands in for them on LuaJIT.
local tointeger = math.tointeger or function(n) return n == math.floor(n) and n or nil end
local utf8_len = utf8 and utf8.len or function(s) -- characters, or nil when s is not UTF-8
  if not require("ws.codec").utf8_valid(s) then return nil end
  return select(2, s:gsub("[^\128-\191]", ""))
end

local LIMITS = { nick = 32, room = 32, text = 2000 }
local MAX_ROOMS = 1000
local MAX_FRAME = 16 * 1024   -- the largest JSON message a client may send

local function usage(status)
  io.stderr:write("usage: lua5.4 examples/chat.lua [--port N] [--host H] [--history N] [--origin URL]...\n" ..
                  "                                [--redis redis://HOST:PORT[/DB]] [--workers K]\n")
  os.exit(status)
end

local function parse_args(argv)
  local opts = { port = 8080, host = "127.0.0.1", history = 50, origins = nil }
  local i = 1
  while i <= #argv do
    local a, v = argv[i], argv[i + 1]
    if a == "--help" or a == "-h" then usage(0)
    elseif a == "--port" and tonumber(v) then opts.port = tointeger(tonumber(v))
    elseif a == "--host" and v then opts.host = v
    elseif a == "--history" and tonumber(v) then opts.history = tointeger(tonumber(v))
    elseif a == "--redis" and v then opts.redis = v
    elseif a == "--workers" and v and (v == "auto" or tonumber(v)) then
      opts.workers = v == "auto" and v or tointeger(tonumber(v))
    elseif a == "--origin" and v then
      opts.origins = opts.origins or {}
      opts.origins[#opts.origins + 1] = v
    else
      io.stderr:write("chat: bad argument ", tostring(a), "\n")
      usage(2)
    end
    i = i + 2
  end
  if not opts.port or opts.port < 0 or opts.port > 65535 or not opts.history or opts.history < 0 then
    usage(2)
  end
  if opts.workers ~= nil and opts.workers ~= "auto" and (not opts.workers or opts.workers < 1) then usage(2) end
  if opts.workers and not opts.redis then
    -- Each worker is a process of its own: without a bus its rooms would be its own too, and two
    -- people in one room on two workers would never see each other.
    io.stderr:write("chat: --workers needs --redis: workers share rooms, members and history through Redis\n")
    os.exit(2)
  end
  return opts
end

local opts = parse_args(arg or {})

------------------------------------------------------------------------------------------------
-- The page: a fixed table of files, so no request path ever reaches the file system.

local STATIC_DIR = here .. "/chat/"
local STATIC = {
  ["/"]           = { "index.html", "text/html; charset=utf-8" },
  ["/index.html"] = { "index.html", "text/html; charset=utf-8" },
  ["/chat.css"]   = { "chat.css", "text/css; charset=utf-8" },
  ["/chat.js"]    = { "chat.js", "text/javascript; charset=utf-8" },
}
local PAGE_HEADERS = {
  ["Cache-Control"] = "no-cache",
  ["X-Content-Type-Options"] = "nosniff",
  ["Referrer-Policy"] = "no-referrer",
  ["Content-Security-Policy"] =
    "default-src 'self'; img-src 'self' data:; connect-src 'self' ws: wss:; frame-ancestors 'none'",
}

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local data = f:read("*a")
  f:close()
  return data
end

local function text_response(status, body, ctype)
  return status, { ["Content-Type"] = ctype or "text/plain; charset=utf-8" }, body
end

------------------------------------------------------------------------------------------------
-- Rooms and members.

local rooms = {}       -- name -> { name, members = { [id] = client }, count, history = {json...}, seq }
local room_count = 0
local clients = {}     -- conn.id -> client { conn, id, nick, room }
local stats = { connections = 0, messages = 0, dropped_closed = 0 }

local function now_ms() return os.time() * 1000 end
local function topic(room) return "room:" .. room.name end

-- cjson 2.1 encodes an empty table as {}: lists are joined by hand so they stay [].
local function json_list(items) return "[" .. table.concat(items, ",") .. "]" end

local function send(client, obj)
  return client.conn:send(cjson.encode(obj))
end

local function send_error(client, code, message)
  return send(client, { type = "error", code = code, message = message })
end

local server   -- set below; handlers run only once the loop runs

local function publish(room, obj)
  local data = cjson.encode(obj)
  server:publish(topic(room), data)
  return data
end

local function get_room(name)
  local room = rooms[name]
  if room then return room end
  if room_count >= MAX_ROOMS then
    -- Make room for a new one by forgetting an empty room and its history.
    for other_name, other in pairs(rooms) do
      if other.count == 0 then rooms[other_name] = nil; room_count = room_count - 1; break end
    end
    if room_count >= MAX_ROOMS then return nil end
  end
  room = { name = name, members = {}, count = 0, history = {}, seq = 0 }
  rooms[name] = room
  room_count = room_count + 1
  return room
end

local function leave(client)
  local room = client.room
  if not room then return end
  room.members[client.id] = nil
  room.count = room.count - 1
  -- Published before unsubscribing, so that the leaver hears it too; a closed connection has
  -- already left all its topics.
  publish(room, { type = "left", room = room.name, id = client.id, nick = client.nick, ts = now_ms() })
  if client.conn.state ~= "closed" then client.conn:unsubscribe(topic(room)) end
  client.room, client.nick = nil, nil
end

local function valid_nick(nick)
  if type(nick) ~= "string" then return nil end
  nick = nick:match("^%s*(.-)%s*$")
  local len = utf8_len(nick)
  if not len or len < 1 or len > LIMITS.nick or nick:find("%c") then return nil end
  return nick
end

local function valid_room(name)
  if type(name) ~= "string" or #name < 1 or #name > LIMITS.room or not name:match("^[%w_.-]+$") then
    return nil
  end
  return name
end

-- The checks of a join request, the same in both modes: nick, room (or nil after the error).
local function check_join(client, req)
  local nick = valid_nick(req.nick)
  if not nick then
    send_error(client, "bad_nick", "nickname must be 1 to 32 characters with no control characters")
    return nil
  end
  local name = valid_room(req.room)
  if not name then
    send_error(client, "bad_room", "room must be 1 to 32 letters, digits, '-', '_' or '.'")
    return nil
  end
  return nick, name
end

-- The checks of a message's text, the same in both modes: the text (or nil after the error).
local function check_text(client, req)
  local text = req.text
  if type(text) ~= "string" or not text:find("%S") then
    send_error(client, "bad_text", "message text must be a non-empty string")
    return nil
  end
  local len = utf8_len(text)
  if not len then
    send_error(client, "bad_text", "message text is not valid UTF-8")
    return nil
  end
  if len > LIMITS.text then
    send_error(client, "too_long", ("message text is over %d characters"):format(LIMITS.text))
    return nil
  end
  return text
end

-- A join's `since` (the seq of the last message the client has): nil, or a whole number >= 0.
local function check_since(client, req)
  local since = req.since
  if since == nil or (type(since) == "number" and since >= 0 and since % 1 == 0 and since < 2^53) then
    return true, since
  end
  send_error(client, "bad_since", "since must be the seq of the last message seen (a whole number)")
  return false
end

local function nick_taken(client, nick, name)
  return send_error(client, "nick_taken", ('nickname "%s" is already used in #%s'):format(nick, name))
end

local function send_members(conn, room_json, members)
  return conn:send('{"type":"members","room":' .. room_json .. ',"members":' .. json_list(members) .. '}')
end

local function send_history(conn, room_json, history, reset)
  return conn:send('{"type":"history","room":' .. room_json .. (reset and ',"reset":true' or '') ..
    ',"messages":' .. json_list(history) .. '}')
end

-- The marker that ends what a join with `since` replays: the messages after `since` came
-- just before it (`missed` of them).
local function send_resumed(conn, room_json, since, missed)
  return conn:send('{"type":"resumed","room":' .. room_json .. ',"since":' .. string.format("%d", since) ..
    ',"missed":' .. string.format("%d", missed) .. '}')
end

local function send_join_state(client, name, members, history)
  local room_json = cjson.encode(name)
  local ok, err, code = send_members(client.conn, room_json, members)
  if not ok then return nil, err, code end
  return send_history(client.conn, room_json, history)
end

local function join(client, req)
  local nick, name = check_join(client, req)
  if not nick then return end
  local ok_since, since = check_since(client, req)
  if not ok_since then return end
  local room = rooms[name]
  if room then
    for _, member in pairs(room.members) do
      if member.nick == nick and member ~= client then return nick_taken(client, nick, name) end
    end
  end
  leave(client)
  room = get_room(name)
  if not room then return send_error(client, "too_many_rooms", "too many rooms; join an existing one") end

  client.room, client.nick = room, nick
  room.members[client.id] = client
  room.count = room.count + 1
  client.conn:subscribe(topic(room))

  local members = {}
  for id, member in pairs(room.members) do
    members[#members + 1] = cjson.encode({ id = id, nick = member.nick })
  end
  local ok, err, code
  -- With `since`: the messages after it when the history still holds them all (as on the bus).
  local first = room.seq - #room.history + 1 -- the seq of the oldest message kept
  if since and since <= room.seq and since + 1 >= first then
    local room_json = cjson.encode(name)
    ok, err, code = send_members(client.conn, room_json, members)
    for i = since + 1 - first + 1, #room.history do
      if not ok then break end
      ok, err, code = client.conn:send(room.history[i])
    end
    if ok then ok, err, code = send_resumed(client.conn, room_json, since, room.seq - since) end
  elseif since then -- what followed `since` is no longer kept: the history, marked
    local room_json = cjson.encode(name)
    ok, err, code = send_members(client.conn, room_json, members)
    if ok then ok, err, code = send_history(client.conn, room_json, room.history, true) end
  else
    ok, err, code = send_join_state(client, name, members, room.history)
  end
  if not ok then return nil, err, code end
  publish(room, { type = "joined", room = name, id = client.id, nick = nick, ts = now_ms() })
  return true
end

local function say(client, req)
  local room = client.room
  if not room then return send_error(client, "not_joined", "join a room first") end
  local text = check_text(client, req)
  if not text then return end
  room.seq = room.seq + 1
  stats.messages = stats.messages + 1
  local data = publish(room, { type = "message", room = room.name, seq = room.seq, from = client.id,
                               nick = client.nick, text = text, ts = now_ms() })
  if opts.history > 0 then
    local history = room.history
    history[#history + 1] = data
    if #history > opts.history then table.remove(history, 1) end
  end
  return true
end

------------------------------------------------------------------------------------------------
-- Rooms on the bus (--redis). A room is an ordered topic of the server's bus: Redis numbers its
-- messages (the offset is the message's seq, the same on every node), keeps the last ones in a
-- stream (the history) and the room's members in the topic's presence; joined and left are the
-- presence events, which reach every process with members in the room.

local UNAVAILABLE = "the chat cannot reach its Redis right now; nothing was sent, try again"
local bus_rooms = {}   -- name -> members on this process (for /stats)

-- A room message travels without its seq (Redis gives it); each process adds it once when it
-- delivers the message to its members, and when it replays the history.
local function with_seq(_, data, offset)
  return '{"seq":' .. offset .. ',' .. data:sub(2)
end

local function bus_leave(client)
  local name, nick = client.room_name, client.nick
  if not name then return end
  client.room_name, client.nick = nil, nil
  bus_rooms[name] = bus_rooms[name] - 1
  if bus_rooms[name] == 0 then bus_rooms[name] = nil end
  local conn = client.conn
  if conn.state == "closed" then return end -- the bus took it out of the room's presence itself
  -- Unsubscribed first: the others hear "left" from presence, the leaver from here, once.
  conn:unsubscribe("room:" .. name)
  conn:untrack("room:" .. name)
  send(client, { type = "left", room = name, id = client.id, nick = nick, ts = now_ms() })
end

-- Joins on the bus. The client gets members, then either the room's last messages (history) or,
-- with `since`, exactly the messages after `since` and a "resumed" marker, then live ones:
-- the subscription starts where the history (or `since`) ends, so no message is missed or
-- repeated in between. When Redis no longer holds what follows `since`, the history is sent
-- instead, with "reset":true.
local function bus_join(client, req)
  local nick, name = check_join(client, req)
  if not nick then return end
  local ok_since, since = check_since(client, req)
  if not ok_since then return end
  local t = "room:" .. name
  local present = server:presence(t)
  if not present then return send_error(client, "unavailable", UNAVAILABLE) end
  local members = {}
  for id, info in pairs(present) do
    local ok, m = pcall(cjson.decode, info)
    if ok and type(m) == "table" and id ~= client.id then
      if m.nick == nick then return nick_taken(client, nick, name) end
      members[#members + 1] = cjson.encode({ id = id, nick = m.nick })
    end
  end
  bus_leave(client)
  local conn = client.conn
  members[#members + 1] = cjson.encode({ id = client.id, nick = nick })
  local room_json = cjson.encode(name)

  local resumed
  if since then
    local ok, err, code = send_members(conn, room_json, members)
    if not ok then return nil, err, code end
    local r, missed, rcode = conn:subscribe(t, { since = since })
    if r == nil and rcode ~= "gone" then return send_error(client, "unavailable", UNAVAILABLE) end
    resumed = r ~= nil
    if resumed then send_resumed(conn, room_json, since, tonumber(missed) or 0) end
  end
  if not resumed then
    local list, top = server:history(t, { limit = opts.history })
    if not list then return send_error(client, "unavailable", UNAVAILABLE) end
    local history = {}
    for i, entry in ipairs(list) do history[i] = with_seq(t, entry.data, entry.offset) end
    local ok, err, code
    if since then -- members went out already; what followed `since` is gone
      ok, err, code = send_history(conn, room_json, history, true)
    else
      ok, err, code = send_join_state(client, name, members, history)
    end
    if not ok then return nil, err, code end
    if not conn:subscribe(t, { since = top.offset, epoch = top.epoch }) then
      conn:subscribe(t) -- the topic moved on past the stream meanwhile: live from here
    end
  end
  -- Tracked last: "joined" (from presence) comes after the members and history frames.
  if not conn:track(t, cjson.encode({ nick = nick })) then
    conn:unsubscribe(t)
    return send_error(client, "unavailable", UNAVAILABLE)
  end
  client.room_name, client.nick = name, nick
  bus_rooms[name] = (bus_rooms[name] or 0) + 1
  return true
end

local function bus_say(client, req)
  local name = client.room_name
  if not name then return send_error(client, "not_joined", "join a room first") end
  local text = check_text(client, req)
  if not text then return end
  -- Through Redis first (it gives the seq), then to every member on every process; waiting for
  -- Redis's answer is how a sender learns that its message did not go out.
  local data = cjson.encode({ type = "message", room = name, from = client.id, nick = client.nick,
                              text = text, ts = now_ms() })
  if not server:publish("room:" .. name, data, { wait = true }) then
    return send_error(client, "unavailable", UNAVAILABLE)
  end
  stats.messages = stats.messages + 1
  return true
end

-- Presence events of any process: this process tells its own members of the room.
local function on_presence(t, event, id, info)
  local name = t:match("^room:(.+)$")
  local ok, m = pcall(cjson.decode, info or "")
  if not name or not ok or type(m) ~= "table" then return end
  server:publish(t, cjson.encode({ type = event == "join" and "joined" or "left", room = name, id = id,
                                   nick = m.nick, ts = now_ms() }), { ["local"] = true })
end

local HANDLERS = opts.redis and {
  join = bus_join,
  message = bus_say,
  leave = function(client) bus_leave(client); return true end,
} or {
  join = join,
  message = say,
  leave = function(client) leave(client); return true end,
}

local function on_message(client, data, kind)
  if kind ~= "text" then
    return send_error(client, "bad_message", "messages are JSON text, not binary")
  end
  local ok, req = pcall(cjson.decode, data)
  if not ok then return send_error(client, "bad_json", "message is not valid JSON") end
  if type(req) ~= "table" or type(req.type) ~= "string" then
    return send_error(client, "bad_message", 'a message must be a JSON object with a string "type"')
  end
  local handler = HANDLERS[req.type]
  if not handler then
    return send_error(client, "unknown_type", ('unknown message type "%s"'):format(req.type:sub(1, 32)))
  end
  return handler(client, req)
end

local function session(client)
  local ok, err = send(client, { type = "welcome", id = client.id, limits = LIMITS, history = opts.history })
  if not ok then return nil, err end
  for data, kind in client.conn:messages() do
    on_message(client, data, kind)
  end
end

local function on_connection(conn)
  local client = { conn = conn, id = conn.id }
  clients[conn.id] = client
  stats.connections = stats.connections + 1
  -- Whatever ends the session (a close, an error), the room must hear that this member left.
  local ok, err = xpcall(session, debug.traceback, client)
  if opts.redis then bus_leave(client) else leave(client) end
  clients[conn.id] = nil
  stats.dropped_closed = stats.dropped_closed + (conn.dropped or 0)
  if not ok then error(err, 0) end
end

local function stats_json()
  local open, dropped = 0, stats.dropped_closed
  for _, client in pairs(clients) do
    open = open + 1
    dropped = dropped + (client.conn.dropped or 0)
  end
  local in_rooms = {}
  for name, room in pairs(rooms) do
    if room.count > 0 then in_rooms[#in_rooms + 1] = cjson.encode({ room = name, members = room.count }) end
  end
  for name, count in pairs(bus_rooms) do -- with --redis: this process's members of each room
    in_rooms[#in_rooms + 1] = cjson.encode({ room = name, members = count })
  end
  return '{"connections":' .. open .. ',"accepted":' .. stats.connections .. ',"messages":' ..
    stats.messages .. ',"dropped":' .. dropped .. ',"rooms":' .. json_list(in_rooms) .. '}'
end

local function on_http(req)
  if req.method ~= "GET" and req.method ~= "HEAD" then
    local status, headers, body = text_response(405, "method not allowed\n")
    headers["Allow"] = "GET, HEAD"
    return status, headers, body
  end
  if req.path == "/stats" then
    return text_response(200, stats_json(), "application/json")
  end
  if req.path == "/metrics" then -- Prometheus' text format (docs/metrics.md)
    return text_response(200, ws.metrics(), require("ws.metrics").CONTENT_TYPE)
  end
  local entry = STATIC[req.path]
  if not entry then return text_response(404, "not found\n") end
  local body = read_file(STATIC_DIR .. entry[1])
  if not body then return text_response(500, "page file missing: " .. entry[1] .. "\n") end
  local headers = { ["Content-Type"] = entry[2] }
  for k, v in pairs(PAGE_HEADERS) do headers[k] = v end
  return 200, headers, body
end

-- The origin policy: scripts send no Origin and pass; a browser's page must come from this
-- server itself (its origin names the Host it connects to) or from an --origin.
local extra_origins = {}
for _, o in ipairs(opts.origins or {}) do extra_origins[o:lower()] = true end

local function origin_allowed(origin, req)
  if origin == nil then return true end
  local o = origin:lower()
  if extra_origins[o] then return true end
  local authority = o:match("^https?://([^/?#]+)$")
  local host = req.headers and req.headers.host
  if authority and host and authority == host:lower() then return true end
  io.stderr:write(("chat: origin refused: %q from %s\n"):format(origin, tostring(req.remote_addr)))
  return false
end

local err
server, err = ws.server({
  host = opts.host,
  port = opts.port,
  path = "/ws",
  origins = origin_allowed,
  max_message = MAX_FRAME,
  slow_subscriber = "drop",
  compression = "shared", -- permessage-deflate without per-connection contexts: a room's
                          -- message is compressed once for all its members
  http = on_http,
  bus = opts.redis and {
    url = opts.redis,
    prefix = "chat:",
    ordered = { "room:*" },            -- one seq per room across every process
    history = math.max(opts.history, 1),
    format = with_seq,
  } or nil,
}, on_connection)
if not server then
  io.stderr:write("chat: ", tostring(err), "\n")
  os.exit(1)
end

if opts.redis then server.on_presence = on_presence end

print(("chat: listening on http://%s:%d/ (WebSocket at /ws)"):format(opts.host, server.port))
io.stdout:flush()
ws.run({ workers = opts.workers })
