-- ws.options: the type checks of option tables and arguments, shared by ws.server, ws.connect,
-- ws.reconnecting and ws.resty. An option of the wrong type raises at once, naming the option,
-- instead of failing later on every request. Plain Lua (no ws.core), so it loads under OpenResty.
--
--   local check = require "ws.options"
--   check.options("ws.server", opts, { port = "number", handler = "function" }, 2)
--   check.arg("conn:receive", "timeout", timeout, "number?", 2)
--
-- Values (ranges, names such as "shared") are checked where they are read. An option name the
-- spec does not know raises too ("ws.server: unknown option 'max_mesage' (did you mean
-- 'max_message'?)"): a misspelled option would otherwise be ignored without a word.
local type, pairs, error, tostring = type, pairs, error, tostring

local M = {}

local function is_number(v) return type(v) == "number" and v == v end

local function string_list(v)
  if type(v) ~= "table" then return false end
  for k, s in pairs(v) do
    if type(k) ~= "number" or type(s) ~= "string" then return false end
  end
  return true
end

-- kind -> { test, what it must be }. A kind ending in "?" also accepts nil (for arguments;
-- options are always optional).
local KINDS = {
  string = { function(v) return type(v) == "string" end, "a string" },
  number = { is_number, "a number" },
  boolean = { function(v) return type(v) == "boolean" end, "a boolean" },
  ["function"] = { function(v) return type(v) == "function" end, "a function" },
  table = { function(v) return type(v) == "table" end, "a table" },
  headers = { function(v) return type(v) == "table" end, "a table of headers" },
  protocols = { function(v) return type(v) == "string" or string_list(v) end,
                "a string or a list of strings" },
  strings = { string_list, "a list of strings" },
  origins = { function(v) return v == "*" or v == true or type(v) == "function" or string_list(v) end,
              'a list of strings, a function or "*"' },
  compression = { function(v) local t = type(v) return t == "string" or t == "table" or t == "boolean" end,
                  '"off", "shared", "dedicated" or a table' },
  ["boolean|table"] = { function(v) return type(v) == "boolean" or type(v) == "table" end,
                        "a boolean or a table" },
  ["function|table"] = { function(v) return type(v) == "function" or type(v) == "table" end,
                         "a function or a table" },
  mode = { function(v) return (is_number(v) and v >= 0 and v % 1 == 0) or (type(v) == "string" and v:match("^[0-7]+$") ~= nil) end,
           'permission bits (a number, or octal digits in a string: "660")' },
  workers = { function(v) return type(v) == "string" or is_number(v) end, 'a number or "auto"' },
  ["list|function"] = { function(v) return type(v) == "function" or string_list(v) end,
                        "a list of strings or a function" },
}
M.kinds = KINDS

local OPTIONAL = {} -- "number?" -> KINDS.number, filled as such kinds are asked for

local function kind_of(kind)
  local k = KINDS[kind]
  if k then return k, false end
  k = OPTIONAL[kind]
  if k then return k, true end
  local optional = kind:sub(-1) == "?"
  k = KINDS[optional and kind:sub(1, -2) or kind]
  if not k then error("ws.options: unknown kind " .. tostring(kind), 3) end
  if optional then OPTIONAL[kind] = k end
  return k, optional
end

-- The spec's name closest to a misspelled one (edit distance at most 2), or nil.
local function closest(name, spec)
  local best, best_d = nil, 3
  for known in pairs(spec) do
    local a, b = name, known
    if math.abs(#a - #b) < best_d then
      local prev = {}
      for j = 0, #b do prev[j] = j end
      for i = 1, #a do
        local cur = { [0] = i }
        for j = 1, #b do
          local cost = a:byte(i) == b:byte(j) and 0 or 1
          cur[j] = math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
        end
        prev = cur
      end
      if prev[#b] < best_d or (prev[#b] == best_d and best and known < best) then
        best, best_d = known, prev[#b]
      end
    end
  end
  if best_d <= 2 then return best end
  return nil
end

local function got(v)
  if v ~= v then return "nan" end
  return type(v)
end

-- Checks opts (a table, or nil) against spec { name = kind | { kind, fields = spec } }: a field
-- spec checks the table's own fields ("option 'reconnect.max'"). Raises "<where>: option '<name>'
-- must be <what>" at `level` (counted from the caller of check.options: 1 = that function, 2 =
-- its caller). Returns opts.
function M.options(where, opts, spec, level, prefix)
  level = (level or 1) + 1
  if opts == nil then return opts end
  if type(opts) ~= "table" then
    if prefix then error(("%s: option '%s' must be a table"):format(where, prefix:sub(1, -2)), level) end
    error(where .. ": options table expected", level)
  end
  for name in pairs(opts) do
    if spec[name] == nil then
      local what = type(name) == "string" and ("'" .. (prefix or "") .. name .. "'") or tostring(name)
      local near = type(name) == "string" and closest(name, spec)
      error(("%s: unknown option %s%s"):format(where, what,
        near and (" (did you mean '" .. (prefix or "") .. near .. "'?)") or ""), level)
    end
  end
  -- the options given, not every one the spec knows: a call passes a few of many
  for name, v in pairs(opts) do
    local kind, fields = spec[name], nil
    if type(kind) == "table" then kind, fields = kind[1], kind.fields end
    local k = kind_of(kind)
    if not k[1](v) then
      error(("%s: option '%s%s' must be %s"):format(where, prefix or "", name, k[2]), level)
    end
    if fields and type(v) == "table" then M.options(where, v, fields, level, (prefix or "") .. name .. ".") end
  end
  return opts
end

-- Checks one argument of a public function: "<where>: <name> must be <what> (got <type>)",
-- raised at `level` (as for check.options). Returns the value.
function M.arg(where, name, value, kind, level)
  local k, optional = kind_of(kind)
  if (value == nil and optional) or k[1](value) then return value end
  error(("%s: %s must be %s (got %s)"):format(where, name, k[2], got(value)), (level or 1) + 1)
end

-- Checks a table of callbacks ({ open =, message =, ... }, or nil): each one a function and
-- named in `names` (a set). Raises "<where>: unknown callback 'mesage' (did you mean
-- 'message'?)" or "<where>: callback 'open' must be a function", at `level` as above.
function M.callbacks(where, cb, names, level)
  level = (level or 1) + 1
  if cb == nil then return cb end
  if type(cb) ~= "table" then error(where .. ": callbacks table expected", level) end
  for name, fn in pairs(cb) do
    if names[name] == nil then
      local near = type(name) == "string" and closest(name, names)
      error(("%s: unknown callback '%s'%s"):format(where, tostring(name),
        near and (" (did you mean '" .. near .. "'?)") or ""), level)
    end
    if type(fn) ~= "function" then
      error(("%s: callback '%s' must be a function"):format(where, name), level)
    end
  end
  return cb
end

-- Calls fn(...) and raises its error again at `level` (as above) with the position inside
-- lua-ws taken off, for checks that happen in C ("ws.server: option max_message must not be
-- negative" at the caller's line, not at the line of lua/ws/server.lua that called C).
-- Passes on at most five results.
function M.relay(level, fn, ...)
  local ok, a, b, c, d, e = pcall(fn, ...)
  if ok then return a, b, c, d, e end
  local msg = tostring(a):gsub("^[^:\n]*%.lua:%d+: ", "")
  local bad = msg:match("^bad argument #%d+ to '[^']*' %((.*)%)$")
  error(bad or msg, (level or 1) + 1)
end

-- The fields of a `compression` table (ws.server, ws.connect): names and types here, values in C.
M.COMPRESSION_FIELDS = { mode = "string", window_bits = "number", mem_level = "number", level = "number",
                         threshold = "number" }

-- A spec from a base spec and extra entries (the client's options are the server's plus some).
function M.extend(base, extra)
  local t = {}
  for k, v in pairs(base) do t[k] = v end
  for k, v in pairs(extra or {}) do t[k] = v end
  return t
end

return M
