-- Shared by the fuzz targets: cutting input bytes into pieces.
local M = {}

--- Splits `data` at NUL bytes into at most `n` pieces (missing ones are "").
function M.pieces(data, n)
  local out, pos = {}, 1
  for i = 1, n do
    local z = data:find("\0", pos, true)
    if not z or i == n then
      out[i] = data:sub(pos)
      for j = i + 1, n do out[j] = "" end
      break
    end
    out[i] = data:sub(pos, z - 1)
    pos = z + 1
  end
  return out
end

--- name=value pairs from `text` separated by "&" (a name without "=" has value "").
function M.params(text)
  local p = {}
  for item in (text .. "&"):gmatch("([^&]*)&") do
    if item ~= "" then
      local k, v = item:match("^([^=]*)=(.*)$")
      p[k or item] = v or ""
    end
  end
  return p
end

--- Raises with `what` unless `ok`.
function M.check(ok, what, ...)
  if not ok then error(string.format(what, ...), 0) end
end

return M
