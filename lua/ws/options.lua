-- ws.options: the type checks of option tables and arguments, shared by ws.server, ws.connect,
-- ws.reconnecting and ws.resty. An option of the wrong type raises at once, naming the option,
-- instead of failing later on every request. Plain Lua (no ws.core), so it loads under OpenResty.
--
--   local check = require "ws.options"
--   check.options("ws.server", opts, { port = "number", handler = "function" }, 2)
--   check.arg("conn:receive", "timeout", timeout, "number?", 2)
--
-- Values (ranges, names such as "shared") are checked where they are read; unknown option
-- names are not refused here.
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
  workers = { function(v) return type(v) == "string" or is_number(v) end, 'a number or "auto"' },
  ["list|function"] = { function(v) return type(v) == "function" or string_list(v) end,
                        "a list of strings or a function" },
}
M.kinds = KINDS

local function kind_of(kind)
  local optional = kind:sub(-1) == "?"
  local k = KINDS[optional and kind:sub(1, -2) or kind]
  if not k then error("ws.options: unknown kind " .. tostring(kind), 3) end
  return k, optional
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
  for name, kind in pairs(spec) do
    local v = opts[name]
    if v ~= nil then
      local fields
      if type(kind) == "table" then kind, fields = kind[1], kind.fields end
      local k = kind_of(kind)
      if not k[1](v) then
        error(("%s: option '%s%s' must be %s"):format(where, prefix or "", name, k[2]), level)
      end
      if fields and type(v) == "table" then M.options(where, v, fields, level, (prefix or "") .. name .. ".") end
    end
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

-- A spec from a base spec and extra entries (the client's options are the server's plus some).
function M.extend(base, extra)
  local t = {}
  for k, v in pairs(base) do t[k] = v end
  for k, v in pairs(extra or {}) do t[k] = v end
  return t
end

return M
