-- JSON for the emulator's responses.
--
-- lua-cjson 2.1.0 (Debian) cannot tell an empty array from an empty object, and
-- its key order is random. This encoder is deterministic instead: object keys are
-- sorted, a table marked with json.array() is always an array (even when empty),
-- an unmarked table is an array when it is a non-empty sequence, and json.null is
-- JSON null. Decoding is cjson's (it is fast and strict). A table marked with
-- json.ordered(t, keys) is an object whose members come in that order (the
-- byte shape a provider documents; absent keys are left out).

local cjson = require "cjson.safe"

local type, pairs, ipairs, tostring, tonumber, setmetatable = type, pairs, ipairs, tostring, tonumber, setmetatable
local getmetatable = getmetatable
local floor, huge = math.floor, math.huge
local format, gsub, byte = string.format, string.gsub, string.byte
local sort, concat = table.sort, table.concat

local M = {}

local array_mt = { __json_array = true }

M.null = cjson.null

-- Marks t (or a new table) as a JSON array.
function M.array(t)
  return setmetatable(t or {}, array_mt)
end

-- Marks t as a JSON object written with its members in the order of `keys`
-- (a list of names); members not named there are not written.
function M.ordered(t, keys)
  return setmetatable(t, { __json_order = keys })
end

-- The order json.ordered gave t, or nil.
function M.order_of(t)
  local mt = getmetatable(t)
  return mt and mt.__json_order or nil
end

local escapes = {
  ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f",
  ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t",
}

local function escape_char(c)
  return escapes[c] or format("\\u%04x", byte(c))
end

local function encode_string(s)
  return '"' .. gsub(s, '[%c"\\]', escape_char) .. '"'
end

local function encode_number(n)
  if n ~= n or n == huge or n == -huge then
    return "null"
  end
  if floor(n) == n and n > -1e15 and n < 1e15 then
    return format("%d", n)
  end
  return format("%.14g", n)
end

local function is_sequence(t)
  local n = #t
  if n == 0 then
    return false
  end
  local count = 0
  for _ in pairs(t) do
    count = count + 1
  end
  return count == n
end

local encode_value

local function encode_table(t, out)
  local mt = getmetatable(t)
  if (mt and mt.__json_array) or is_sequence(t) then
    out[#out + 1] = "["
    for i, v in ipairs(t) do
      if i > 1 then
        out[#out + 1] = ","
      end
      encode_value(v, out)
    end
    out[#out + 1] = "]"
    return
  end
  if mt and mt.__json_order then
    out[#out + 1] = "{"
    local first = true
    for _, k in ipairs(mt.__json_order) do
      local v = t[k]
      if v ~= nil then
        if not first then
          out[#out + 1] = ","
        end
        first = false
        out[#out + 1] = encode_string(k)
        out[#out + 1] = ":"
        encode_value(v, out)
      end
    end
    out[#out + 1] = "}"
    return
  end
  local keys = {}
  for k in pairs(t) do
    keys[#keys + 1] = tostring(k)
  end
  sort(keys)
  out[#out + 1] = "{"
  for i, k in ipairs(keys) do
    if i > 1 then
      out[#out + 1] = ","
    end
    out[#out + 1] = encode_string(k)
    out[#out + 1] = ":"
    local v = t[k]
    if v == nil then
      v = t[tonumber(k)]
    end
    encode_value(v, out)
  end
  out[#out + 1] = "}"
end

encode_value = function(v, out)
  local tv = type(v)
  if tv == "string" then
    out[#out + 1] = encode_string(v)
  elseif tv == "number" then
    out[#out + 1] = encode_number(v)
  elseif tv == "boolean" then
    out[#out + 1] = v and "true" or "false"
  elseif tv == "table" then
    encode_table(v, out)
  else
    -- nil, json.null (lightuserdata) and anything else
    out[#out + 1] = "null"
  end
end

function M.encode(v)
  local out = {}
  encode_value(v, out)
  return concat(out)
end

-- Returns the decoded value, or nil and an error message.
function M.decode(s)
  return cjson.decode(s)
end

return M
