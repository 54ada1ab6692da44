--- JSON for what streamctl sends and reads.
--
-- Aliyun takes array parameters as one JSON array string
-- (`SourceUrls=["rtmp://a/b"]`). lua-cjson writes "/" as "\/", which is valid
-- JSON but not the bytes the official SDKs send; this writer escapes only
-- what JSON requires (quote, backslash, control characters).
--
-- Answers are read with lua-cjson; under Lua 5.3+ every number that is a
-- whole value comes back as an integer (cjson gives floats: 0.0, not 0), so
-- RetCode, TaskStatus, Code and TotalNum read the same on every Lua.
-- @module streamctl.base.json

local byte, format, gsub = string.byte, string.format, string.gsub
local concat = table.concat
local type, pairs = type, pairs
local cjson_decode = require("cjson.safe").decode
local tointeger = math.tointeger -- nil before Lua 5.3, where numbers are all floats

local M = {}

local ESC = { ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f",
              ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }

--- A JSON string literal for `s`.
function M.string(s)
  return '"' .. gsub(s, '[%c"\\]', function(c)
    return ESC[c] or format("\\u%04x", byte(c))
  end) .. '"'
end

--- A JSON array of strings, without spaces: ["a","b"].
function M.string_array(list)
  local out = {}
  for i = 1, #list do out[i] = M.string(list[i]) end
  return "[" .. concat(out, ",") .. "]"
end

-- Nesting below which numbers are made integers (answers are shallow).
local MAX_DEPTH = 16

local function integers(t, depth)
  for k, v in pairs(t) do
    if type(v) == "number" then
      local i = tointeger(v)
      if i then t[k] = i end
    elseif type(v) == "table" and depth < MAX_DEPTH then
      integers(v, depth + 1)
    end
  end
end

--- Decodes `text`: the value, or nil and why (never raises).
function M.decode(text)
  local v, err = cjson_decode(text)
  if type(v) == "table" and tointeger then integers(v, 1) end
  return v, err
end

return M
