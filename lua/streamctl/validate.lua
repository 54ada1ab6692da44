--- Field validation for the named methods (`resume_live_stream{...}`, ...).
--
-- A method's schema is an array of field specs, in the order they are
-- checked and reported:
--
--   { "domain_name", "DomainName", "string", required = true, max_len = 2000,
--     enum = {...}, prefix = {"rtmp://"}, min = n, max = n, min_items = n,
--     max_items = n, unique = true, default = v }
--
-- Types: "string", "integer", "number" (min_exclusive), "time" (Unix seconds or
-- "YYYY-MM-DDThh:mm:ssZ"; sent as the UTC string, or as Unix seconds with
-- `as = "unix"`), "strings" (array of non-empty strings), "yesno" (boolean or
-- "yes"/"no"), "boolean", "function".
--
-- A spec whose service name is `false` is a local option (such as
-- `concurrency`): checked, returned in `values`, never sent.
--
-- `validate.fields` returns the service parameters (service names, Lua
-- values ready for the provider's encoder) and, for cross-field checks, the
-- parsed values by field name; or `nil, message` naming the field and rule.
-- @module streamctl.validate

local core = require "streamctl.core"

local type, pairs, ipairs, tostring, tonumber = type, pairs, ipairs, tostring, tonumber
local floor, huge = math.floor, math.huge
local format, sub, byte, find = string.format, string.sub, string.byte, string.find
local concat, sort = table.concat, table.sort

local M = {}

local function is_integer(n)
  return type(n) == "number" and n == floor(n) and n > -huge and n < huge
end

--- Edit distance, for "did you mean" on misspelt field names.
local function distance(a, b)
  local prev, cur = {}, {}
  for j = 0, #b do prev[j] = j end
  for i = 1, #a do
    cur[0] = i
    for j = 1, #b do
      local cost = byte(a, i) == byte(b, j) and 0 or 1
      local v = prev[j] + 1
      if cur[j - 1] + 1 < v then v = cur[j - 1] + 1 end
      if prev[j - 1] + cost < v then v = prev[j - 1] + cost end
      cur[j] = v
    end
    prev, cur = cur, prev
  end
  return prev[#b]
end

local function closest(name, schema)
  local best, bestd
  for _, f in ipairs(schema) do
    local d = distance(name, f[1])
    if not bestd or d < bestd then best, bestd = f[1], d end
  end
  if bestd and bestd <= 3 then return best end
  return nil
end

local function quote_list(list)
  local out = {}
  for i, v in ipairs(list) do out[i] = "'" .. tostring(v) .. "'" end
  return concat(out, ", ")
end

--- Parses a time given as Unix seconds or a UTC string: seconds, or nil, rule.
function M.parse_time(v)
  if type(v) == "number" then
    if not is_integer(v) or v < 0 then return nil, "must be whole Unix seconds (>= 0)" end
    if v > 253402300799 then return nil, "is beyond the year 9999" end
    return v
  elseif type(v) == "string" then
    local t, err = core.parse_utc_timestamp(v)
    if not t then return nil, err end
    return t
  end
  return nil, "must be Unix seconds or a UTC time string YYYY-MM-DDThh:mm:ssZ"
end

local checkers = {}

function checkers.string(f, v)
  if type(v) ~= "string" then return nil, "must be a string" end
  if v == "" then return nil, "must not be empty" end
  if find(v, "[%z\r\n]") then return nil, "must not contain CR, LF or NUL" end
  if f.max_len and #v > f.max_len then
    return nil, format("must be at most %d characters (got %d)", f.max_len, #v)
  end
  if f.enum then
    for _, e in ipairs(f.enum) do if v == e then return v end end
    return nil, "must be one of " .. quote_list(f.enum)
  end
  if f.prefix then
    for _, p in ipairs(f.prefix) do if sub(v, 1, #p) == p then return v end end
    return nil, "must start with " .. quote_list(f.prefix)
  end
  return v
end

function checkers.integer(f, v)
  if type(v) == "string" and find(v, "^%-?%d+$") then v = tonumber(v) end
  if not is_integer(v) then return nil, "must be an integer" end
  if f.min and v < f.min then return nil, format("must be at least %d", f.min) end
  if f.max and v > f.max then return nil, format("must be at most %d", f.max) end
  return v
end

function checkers.number(f, v)
  if type(v) == "string" then v = tonumber(v) end
  if type(v) ~= "number" or v ~= v or v == huge or v == -huge then return nil, "must be a number" end
  if f.min_exclusive and v <= f.min_exclusive then
    return nil, "must be greater than " .. tostring(f.min_exclusive)
  end
  return v
end

function checkers.time(_, v)
  return M.parse_time(v)
end

function checkers.strings(f, v)
  if type(v) ~= "table" then return nil, "must be an array of strings" end
  local n = #v
  for k in pairs(v) do
    if type(k) ~= "number" or k < 1 or k > n or not is_integer(k) then
      return nil, "must be an array of strings (found key " .. tostring(k) .. ")"
    end
  end
  if f.min_items and n < f.min_items then
    return nil, format("must have at least %d item%s (got %d)", f.min_items, f.min_items == 1 and "" or "s", n)
  end
  if f.max_items and n > f.max_items then
    return nil, format("must have at most %d items (got %d)", f.max_items, n)
  end
  local seen = {}
  for i = 1, n do
    local s = v[i]
    if type(s) ~= "string" or s == "" then return nil, format("item %d must be a non-empty string", i) end
    if find(s, "[%z\r\n]") then return nil, format("item %d must not contain CR, LF or NUL", i) end
    if f.max_len and #s > f.max_len then
      return nil, format("item %d must be at most %d characters (got %d)", i, f.max_len, #s)
    end
    if f.unique then
      if seen[s] then return nil, format("item %d repeats item %d", i, seen[s]) end
      seen[s] = i
    end
  end
  return v
end

function checkers.yesno(_, v)
  if v == true or v == "yes" then return "yes" end
  if v == false or v == "no" then return "no" end
  return nil, "must be true, false, 'yes' or 'no'"
end

checkers["function"] = function(_, v)
  if type(v) ~= "function" then return nil, "must be a function" end
  return v
end

function checkers.boolean(_, v)
  if type(v) ~= "boolean" then return nil, "must be true or false" end
  return v
end

--- Checks `input` against `schema`.
-- @param schema the method's field specs
-- @param input the caller's table of snake_case fields
-- @param method the method name, for messages
-- @return params (service name -> value), values (field -> parsed value); or nil, message
function M.fields(schema, input, method)
  if type(input) ~= "table" then
    return nil, method .. " takes a table of fields"
  end
  local known = {}
  for _, f in ipairs(schema) do known[f[1]] = f end
  local unknown = {}
  for k in pairs(input) do
    if not known[k] then unknown[#unknown + 1] = tostring(k) end
  end
  if #unknown > 0 then
    sort(unknown)
    local name = unknown[1]
    local hint = closest(name, schema)
    return nil, format("field '%s' is not a field of %s%s", name, method,
      hint and format(" (did you mean '%s'?)", hint) or "")
  end
  local params, values = {}, {}
  for _, f in ipairs(schema) do
    local name, v = f[1], input[f[1]]
    if v == nil then v = f.default end
    if v == nil then
      if f.required then return nil, format("field '%s' is required", name) end
    else
      local parsed, rule = checkers[f[3]](f, v)
      if parsed == nil then return nil, format("field '%s' %s", name, rule) end
      values[name] = parsed
      if f[2] ~= false then -- false: a local option, never sent
        if f[3] == "time" and f.as ~= "unix" then
          params[f[2]] = core.utc_timestamp(parsed)
        else
          params[f[2]] = parsed
        end
      end
    end
  end
  return params, values
end

--- The fields every batch method takes besides its own.
M.BATCH_OPTIONS = {
  { "concurrency", false, "integer", min = 1, max = 256 },
  { "on_progress", false, "function" },
}

return M
