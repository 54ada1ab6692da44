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

local byte, format, gsub, find, match, sub = string.byte, string.format, string.gsub, string.find, string.match,
  string.sub
local concat = table.concat
local type, pairs = type, pairs
local cjson_decode = require("cjson.safe").decode
local tointeger = math.tointeger -- nil before Lua 5.3, where numbers are all floats

local M = {}

-- What each byte `[%c"\\]` matches is written as: every control character (as %c has them: 0-31
-- and 127), the quote and the backslash; `ESCAPED`: those bytes, by value. (A table, not a function
-- made per call: LuaJIT compiles neither a closure's making nor a trace that makes one, and the
-- door writes every answer so.)
local ESC = { ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f",
              ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }
local ESCAPED = {}
for b = 0, 127 do
  local c = string.char(b)
  if not ESC[c] and find(c, "%c") then ESC[c] = format("\\u%04x", b) end
  if ESC[c] then ESCAPED[b] = true end
end

--- A JSON string literal for `s`.
function M.string(s)
  -- (each byte looked up first, gsub only when one is escaped: LuaJIT compiles this loop, where a
  -- pattern's class is matched by C outside the trace, several times slower on a long string)
  for i = 1, #s do
    if ESCAPED[byte(s, i)] then return '"' .. gsub(s, '[%c"\\]', ESC) .. '"' end
  end
  return '"' .. s .. '"'
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

--- What in `text` (JSON that `decode` took) its decoded table cannot show:
-- a key an object holds twice (lua-cjson keeps the last one silently), a
-- NUL byte (lua-cjson stops reading at one: what follows, never read, is
-- taken) or, with `no_arrays`, an array (lua-cjson decodes `[]` and `{}`
-- alike). A message saying which and at which byte, or nil. A reader of a file only
-- its own writer makes (a reconciler's state) refuses both: the writer
-- never writes either. Hand-written (a scan of the strings and brackets,
-- nothing decoded but a key with an escape), because neither lua-cjson nor
-- Debian's other JSON module for Lua (lua-dkjson) reports a duplicate key
-- or tells an empty array from an empty object.
function M.strict_flaw(text, no_arrays)
  local nul = find(text, "\0", 1, true)
  if nul then return format("has a NUL byte at byte %d", nul) end
  local stack, depth, pos = {}, 0, 1
  while true do
    local i, _, c = find(text, '([{}%[%]"])', pos)
    if not i then return nil end
    if c == '"' then
      local j, close = i + 1, nil
      repeat
        local k = find(text, '["\\]', j)
        if not k then return nil end -- (an unterminated string: decode has refused it)
        if byte(text, k) == 92 then j = k + 2 else close = k end
      until close
      local keys = stack[depth]
      if keys and match(text, "^[ \t\r\n]*:", close + 1) then
        local key = sub(text, i + 1, close - 1)
        if find(key, "\\", 1, true) then key = cjson_decode(sub(text, i, close)) or key end
        if keys[key] then return format("has the key %s twice (the second at byte %d)", M.string(key), i) end
        keys[key] = true
      end
      pos = close + 1
    elseif c == "[" and no_arrays then
      return format("has an array at byte %d, where only objects are written", i)
    elseif c == "{" or c == "[" then
      depth = depth + 1
      stack[depth] = c == "{" and {} -- (an array's strings are no keys)
      pos = i + 1
    else
      stack[depth], depth, pos = nil, depth - 1, i + 1
    end
  end
end

return M
