-- Processes and clients for the chat specs: the chat server as a child process, the Python
-- `websockets` agent (spec/support/chat_agent.py) driven over its control socket, and plain
-- HTTP requests (through support/ws_client.lua). Every wait is bounded: children run under
-- `timeout`, sockets have timeouts.
local socket = require "socket"
local cjson = require "cjson"
local helper = require "helper"
local ws_client = require "support.ws_client"

local M = {}

local PYTHON = helper.python
local CHILD_LIFETIME = 300   -- seconds: no child outlives a stuck spec run for long

local shell_quote = helper.shell_quote

-- Starts `argv` (a list of words) under sh and timeout; returns the popen handle, whose first
-- line is the child's pid and the rest its stdout. Stderr goes to `log`.
local function spawn(argv, log)
  local words = {}
  for i, w in ipairs(argv) do words[i] = shell_quote(w) end
  local cmd = ("echo $$; exec timeout -k 5 %d %s 2>%s"):format(CHILD_LIFETIME, table.concat(words, " "),
    shell_quote(log or "/dev/null"))
  local handle = assert(io.popen(cmd, "r"))
  local pid = tonumber(handle:read("*l"))
  assert(pid, "could not start " .. argv[1])
  return handle, pid
end

local function read_file(path) return helper.read_file(path) or "" end

-- An example server: lua5.4 <script> --port 0 [extra args], which prints a line with
-- "listening on <scheme>://host:port". Returns { port, base, ws_url, pid, log, stop = function }.
function M.start_example(script, extra)
  local log = os.tmpname()
  local argv = { helper.lua, script, "--port", "0" }
  for _, a in ipairs(extra or {}) do argv[#argv + 1] = a end
  local handle, pid = spawn(argv, log)
  local line = handle:read("*l")
  local port = line and tonumber(line:match("listening on %a+://[^:]+:(%d+)"))
  if not port then
    handle:close()
    error(("%s did not start: %s %s"):format(script, tostring(line), read_file(log)))
  end
  local server = { port = port, pid = pid, log = log, handle = handle, line = line,
                   base = "http://127.0.0.1:" .. port, ws_url = "ws://127.0.0.1:" .. port .. "/ws" }
  function server.stderr() return read_file(log) end
  function server.alive()
    local ok = os.execute("kill -0 " .. pid .. " 2>/dev/null")
    return ok == true or ok == 0 -- 5.2+ | 5.1 and LuaJIT
  end
  function server.stop()
    if server.stopped then return end
    server.stopped = true
    os.execute("kill " .. pid .. " 2>/dev/null")
    handle:close()
    os.remove(log)
  end
  return server
end

function M.start_chat(extra) return M.start_example("examples/chat.lua", extra) end

-- One plain HTTP/1.1 request; returns status, headers (lower-case names), body.
function M.http(port, method, path, headers, timeout)
  local h = { Connection = "close" }
  for name, value in pairs(headers or {}) do h[name] = value end
  return ws_client.request(port, method, path, h, timeout)
end

-- A WebSocket upgrade request with the given extra headers (a table name -> value); returns
-- the HTTP status.
function M.upgrade_status(port, path, headers)
  local extra = {}
  for name, value in pairs(headers or {}) do extra[#extra + 1] = name .. ": " .. value end
  return (ws_client.http(port, ws_client.upgrade_request(port, path, extra)))
end

------------------------------------------------------------------------------------------------
-- The Python websockets agent.

local Agent = {}
Agent.__index = Agent

function M.agent()
  local handle, pid = spawn({ PYTHON, "spec/support/chat_agent.py" })
  local line = handle:read("*l")
  local port = line and tonumber(line:match("^port (%d+)"))
  if not port then handle:close(); error("chat agent did not start: " .. tostring(line)) end
  local sock = assert(socket.tcp())
  sock:settimeout(30)   -- above any wait the agent itself performs
  assert(sock:connect("127.0.0.1", port))
  return setmetatable({ sock = sock, handle = handle, pid = pid }, Agent)
end

function Agent:call(req)
  assert(self.sock:send(cjson.encode(req) .. "\n"))
  local line, err = self.sock:receive("*l")
  assert(line, "chat agent: " .. tostring(err))
  return cjson.decode(line)
end

function Agent:open(id, url, opts)
  opts = opts or {}
  return self:call({ op = "open", id = id, url = url, origin = opts.origin, slow = opts.slow or false })
end

function Agent:send(id, data)
  if type(data) == "table" then data = cjson.encode(data) end
  return self:call({ op = "send", id = id, text = data })
end

function Agent:send_binary(id, hex) return self:call({ op = "send", id = id, binary = hex }) end
function Agent:flood(id, texts) return self:call({ op = "flood", id = id, texts = texts }) end

-- The next message, decoded from JSON (or nil, error).
function Agent:recv(id, timeout)
  local r = self:call({ op = "recv", id = id, timeout = timeout or 3 })
  if not r.ok then return nil, r.error, r.code end
  return cjson.decode(r.data), r.data
end

-- Every message until `quiet` seconds pass with nothing new, decoded.
function Agent:drain(id, quiet)
  local r = self:call({ op = "drain", id = id, quiet = quiet or 0.3 })
  local out = {}
  for i, data in ipairs(r.messages) do out[i] = cjson.decode(data) end
  return out
end

function Agent:wait_for(id, contains, count, timeout)
  return self:call({ op = "wait_for", id = id, contains = contains, count = count, timeout = timeout or 10 })
end

function Agent:close(id) return self:call({ op = "close", id = id }) end

-- Messages until one of `type` arrives, and the ones before it (as a Pool's).
Agent.expect = require("support.chat_client").expect

function Agent:quit()
  if self.closed then return end
  self.closed = true
  pcall(self.sock.send, self.sock, '{"op":"quit"}\n')
  self.sock:close()
  self.handle:close()
end

return M
