-- Byte-level encodings the providers define, written out here on purpose.
--
-- `ngx.escape_uri` is not Alibaba Cloud's percent-encoding (it leaves some
-- reserved characters alone depending on the version), and `ngx.decode_args`
-- caps the number of arguments and hides duplicates, so both are done by hand.

local byte, char, format, gsub, find = string.byte, string.char, string.format, string.gsub, string.find
local sub = string.sub
local tonumber, ipairs = tonumber, ipairs
local sort, concat = table.sort, table.concat

local M = {}

local function pct(c)
  return format("%%%02X", byte(c))
end

-- Alibaba Cloud percent-encoding: UTF-8 bytes, only A-Z a-z 0-9 - _ . ~ stay
-- literal, every other byte is %XY with uppercase hex (space is %20, * is %2A).
function M.aliyun_encode(s)
  return (gsub(s, "[^A-Za-z0-9%-_%.~]", pct))
end

local function unhex(h)
  return char(tonumber(h, 16))
end

-- Decodes one application/x-www-form-urlencoded component: "+" is a space,
-- %XY is a byte (either case); a stray "%" stays as it is.
function M.form_decode(s)
  s = gsub(s, "+", " ")
  return (gsub(s, "%%(%x%x)", unhex))
end

-- Parses "a=1&b=&c&a=2" into a list of {name, value} pairs in arrival order
-- (duplicates kept) and a map name -> last value. Empty segments are skipped;
-- a segment without "=" has the value "".
function M.parse_query(raw, list, map)
  list = list or {}
  map = map or {}
  if not raw or raw == "" then
    return list, map
  end
  local pos = 1
  local len = #raw
  while pos <= len do
    local amp = find(raw, "&", pos, true)
    local seg = sub(raw, pos, (amp or len + 1) - 1)
    pos = (amp or len) + 1
    if seg ~= "" then
      local eq = find(seg, "=", 1, true)
      local name, value
      if eq then
        name = M.form_decode(sub(seg, 1, eq - 1))
        value = M.form_decode(sub(seg, eq + 1))
      else
        name = M.form_decode(seg)
        value = ""
      end
      list[#list + 1] = { name, value }
      map[name] = value
    end
  end
  return list, map
end

-- The canonicalized query both Aliyun signatures use: every pair except those
-- named in `skip`, sorted by the raw name (then raw value) in byte order,
-- "enc(name)=enc(value)" joined by "&".
function M.aliyun_canonical_query(list, skip)
  local pairs_ = {}
  for _, kv in ipairs(list) do
    if not (skip and skip[kv[1]]) then
      pairs_[#pairs_ + 1] = kv
    end
  end
  sort(pairs_, function(a, b)
    if a[1] ~= b[1] then
      return a[1] < b[1]
    end
    return a[2] < b[2]
  end)
  local out = {}
  for i, kv in ipairs(pairs_) do
    out[i] = M.aliyun_encode(kv[1]) .. "=" .. M.aliyun_encode(kv[2])
  end
  return concat(out, "&")
end

-- Lowercase hex of a binary string.
function M.hex(s)
  return (gsub(s, ".", function(c)
    return format("%02x", byte(c))
  end))
end

return M
