--- Exact JSON for what streamctl itself sends.
--
-- Aliyun takes array parameters as one JSON array string
-- (`SourceUrls=["rtmp://a/b"]`). lua-cjson writes "/" as "\/", which is valid
-- JSON but not the bytes the official SDKs send; this writer escapes only
-- what JSON requires (quote, backslash, control characters).
-- @module streamctl.json

local byte, format, gsub = string.byte, string.format, string.gsub
local concat = table.concat

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

return M
