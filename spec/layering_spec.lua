-- The C layers stay apart. csrc/core is the sans-I/O protocol core (no libev, no OpenSSL SSL layer,
-- no Lua, nothing of the layers above it); the runtime reaches libev only through ws_rt_internal.h.
-- ws_conn is embedded by its hosts but sealed: its fields end in '_' and only ws_conn.c and the
-- inline functions of ws_conn.h touch them; the runtime, the bindings and the fuzz drivers call
-- the core instead, so every protocol decision about a connection stays in one place.
local helper = require "helper"

local root = helper.root

-- The C files of a directory (relative to the root), sorted.
local function c_files(dir)
  local f = assert(io.popen("ls " .. helper.shell_quote(root .. "/" .. dir)))
  local out = {}
  for name in f:lines() do
    if name:match("%.[ch]$") then out[#out + 1] = dir .. "/" .. name end
  end
  f:close()
  table.sort(out)
  return out
end

-- C source without comments and string or character literals, line breaks kept, so that a
-- match's line number is the source's.
local function code_of(src)
  local out, i, n = {}, 1, #src
  while i <= n do
    local c, d = src:sub(i, i), src:sub(i, i + 1)
    if d == "/*" then
      local e = src:find("*/", i + 2, true) or n - 1
      out[#out + 1] = (src:sub(i, e + 1):gsub("[^\n]", " "))
      i = e + 2
    elseif d == "//" then
      local e = src:find("\n", i, true) or n + 1
      i = e
    elseif c == '"' or c == "'" then
      local j = i + 1
      while j <= n and src:sub(j, j) ~= c and src:sub(j, j) ~= "\n" do
        if src:sub(j, j) == "\\" then j = j + 1 end
        j = j + 1
      end
      out[#out + 1] = c .. c
      i = j + 1
    else
      out[#out + 1] = c
      i = i + 1
    end
  end
  return table.concat(out)
end

local function line_at(s, pos)
  local _, breaks = s:sub(1, pos):gsub("\n", "")
  return breaks + 1
end

-- The names of struct ws_conn's own fields, in order (a nested struct counts as one field).
local function ws_conn_fields()
  local code = code_of(assert(helper.read_file(root .. "/csrc/core/ws_conn.h")))
  local body = assert(code:match("typedef%s+struct%s+ws_conn%s*(%b{})%s*ws_conn%s*;"), "struct ws_conn not found")
  body = body:sub(2, -2):gsub("%b{}", " ")
  local names = {}
  for decl in body:gmatch("([^;]+);") do
    for part in (decl .. ","):gmatch("([^,]*),") do
      part = part:gsub("%s*:%s*%d+%s*$", "") -- a bit-field's width
      local name = part:match("([%a_][%w_]*)%s*$") or part:match("([%a_][%w_]*)%s*%b[]%s*$")
      if name then names[#names + 1] = name end
    end
  end
  return names
end

-- Where code reads or writes `x.name` or `x->name`, for each of the names: { name, line }.
local function matches(code, names)
  local out = {}
  for _, name in ipairs(names) do
    for pos in code:gmatch("[%.>]%s*()" .. name:gsub("_", "%%_") .. "%f[^%w_]") do
      out[#out + 1] = { name, line_at(code, pos) }
    end
  end
  return out
end

-- Every access to the given fields in the files: "file:line: source line".
local function accesses(files, names)
  local found = {}
  for _, file in ipairs(files) do
    local src = assert(helper.read_file(root .. "/" .. file))
    local lines = {}
    for l in (src .. "\n"):gmatch("([^\n]*)\n") do lines[#lines + 1] = l end
    for _, m in ipairs(matches(code_of(src), names)) do
      found[#found + 1] = ("%s:%d: %s"):format(file, m[2], (lines[m[2]] or ""):match("^%s*(.-)%s*$"))
    end
  end
  table.sort(found)
  return found
end

local function includes(file)
  local out = {}
  local code = code_of((assert(helper.read_file(root .. "/" .. file)):gsub('#%s*include%s*"([^"]*)"', "#include <%1>")))
  for h in code:gmatch("#%s*include%s*<([^>]*)>") do out[#out + 1] = h end
  return out
end

local function all_of(dirs)
  local out = {}
  for _, d in ipairs(dirs) do
    for _, f in ipairs(c_files(d)) do out[#out + 1] = f end
  end
  return out
end

describe("layering", function()
  describe("ws_conn is sealed", function()
    it("names every field of struct ws_conn with a trailing underscore", function()
      local names = ws_conn_fields()
      assert.is_true(#names >= 20, "fields found: " .. table.concat(names, " "))
      local open = {}
      for _, n in ipairs(names) do
        if not n:match("_$") then open[#open + 1] = n end
      end
      assert.are.same({}, open)
    end)

    it("has no field read or written outside csrc/core", function()
      local files = all_of({ "csrc/runtime", "csrc/binding", "fuzz", "bench", "spec/support" })
      assert.is_true(#files > 40, "C files found: " .. #files)
      assert.are.same({}, accesses(files, ws_conn_fields()))
    end)

    it("has no field touched in csrc/core but by ws_conn.c and ws_conn.h", function()
      local files = {}
      for _, f in ipairs(c_files("csrc/core")) do
        if not f:match("/ws_conn%.[ch]$") then files[#files + 1] = f end
      end
      assert.are.same({}, accesses(files, ws_conn_fields()))
    end)

    it("finds an access when there is one, and none in comments or strings", function()
      local code = code_of(table.concat({
        "/* s->ws.error_ in a comment, \"c->in_\" in a string */",
        "static int f(ws_stream *s, ws_conn *c) {",
        "  const char *m = \"x->out_\"; // c->in_ after a line comment",
        "  return s->ws . error_ != 0 || c->send_opcode_ || m[0] || c->in_x || c->\n  out_;",
        "}",
      }, "\n"))
      local hits = {}
      for _, m in ipairs(matches(code, { "error_", "send_opcode_", "in_", "out_" })) do
        hits[#hits + 1] = m[1] .. "@" .. m[2]
      end
      table.sort(hits)
      assert.are.same({ "error_@4", "out_@5", "send_opcode_@4" }, hits)
    end)
  end)

  describe("includes", function()
    it("keep the core free of the event loop, TLS sockets, Lua and the layers above", function()
      local bad = {}
      for _, f in ipairs(c_files("csrc/core")) do
        for _, h in ipairs(includes(f)) do
          if h == "ev.h" or h:match("^openssl/ssl") or h:match("^lua") or h:match("^lauxlib") or
             h:match("^ws_rt") or h:match("^ws_tls") or h:match("^ws_topic") or h:match("^ws_bus") or h == "ws.h" then
            bad[#bad + 1] = f .. ": " .. h
          end
        end
      end
      assert.are.same({}, bad)
    end)

    it("keep Lua out of the runtime and libev behind ws_rt_internal.h", function()
      local bad = {}
      for _, f in ipairs(c_files("csrc/runtime")) do
        for _, h in ipairs(includes(f)) do
          if h:match("^lua") or h:match("^lauxlib") or h:match("^lualib") then bad[#bad + 1] = f .. ": " .. h end
          if h == "ev.h" and not f:match("/ws_rt_internal%.h$") then bad[#bad + 1] = f .. ": " .. h end
        end
      end
      for _, f in ipairs(c_files("csrc/binding")) do
        for _, h in ipairs(includes(f)) do
          if h == "ev.h" or h == "ws_rt_internal.h" then bad[#bad + 1] = f .. ": " .. h end
        end
      end
      assert.are.same({}, bad)
    end)
  end)
end)
