--- One URL grammar for the library: a client's endpoint, a request's URL
-- (the nginx transport), a proxy, a Redis URL. Each caller keeps its own
-- rules (which schemes, whether user information or a path may be there)
-- and its own messages; how a URL splits into its parts is written here once.
-- @module streamctl.base.url

local match, lower, find, byte, gsub, char, sub, format = string.match, string.lower, string.find,
  string.byte, string.gsub, string.char, string.sub, string.format
local concat = table.concat
local tonumber, type = tonumber, type

local M = {}

-- A table with room for `n` names made at once (LuaJIT's table.new; elsewhere a plain table): a form's
-- table grown name by name was rehashed four times on every hook the door read.
local new_table = (function()
  local ok, new = pcall(require, "table.new")
  return ok and function(n) return new(0, n) end or function() return {} end
end)()

--- Splits `scheme://authority rest`: the scheme in lower case, the
-- authority as written (up to the first `/`, `?` or `#`), and the rest.
-- @return scheme, authority, rest; or nil when the text is not of that shape
function M.split(s)
  local scheme, authority, rest = match(s, "^(%a[%w+.-]*)://([^/?#]*)(.*)$")
  if not scheme then return nil end
  return lower(scheme), authority, rest
end

--- Splits an authority at its last `@`: the user information (nil when
-- there is none) and `host[:port]`. (A password may hold an `@` unescaped;
-- a host never does.)
function M.userinfo(authority)
  for i = #authority, 1, -1 do
    if byte(authority, i) == 64 then return authority:sub(1, i - 1), authority:sub(i + 1) end
  end
  return nil, authority
end

--- Splits `host[:port]`: a name (any characters but `:`, `[` and `]`: the
-- caller checks them), or an IPv6 literal in brackets.
-- @return host (an IPv6 literal without its brackets), port (a number in
--   1..65535, or nil when none is written), bracketed (true for an IPv6
--   literal); or nil and what is wrong: "host" or "port"
function M.host_port(hostport)
  local host, rest, bracketed = match(hostport, "^%[([%x:.]+)%](.*)$")
  if host then
    bracketed = true
  elseif find(hostport, "^%[") then
    return nil, "host"
  else
    host, rest = match(hostport, "^([^:%[%]]*)(.*)$")
  end
  if host == "" then return nil, "host" end
  if rest == "" then return host, nil, bracketed end
  local digits = match(rest, "^:(%d+)$")
  local port = digits and #digits <= 5 and tonumber(digits)
  if not port or port < 1 or port > 65535 then return nil, "port" end
  return host, port, bracketed
end

--- Is `host` a DNS name or an IPv4 address as a URL writes it (letters,
-- digits, `.` and `-`)?
function M.is_name(host)
  return find(host, "^[%w.-]+$") ~= nil
end

-- A hex digit's value by its byte (nil for any other byte).
local HEX = {}
for i = 0, 15 do
  HEX[byte(format("%x", i))], HEX[byte(format("%X", i))] = i, i
end

-- (unescape's pieces: one table for every call, its first n used, as nothing between its filling and its
-- concat can call it again; a table made per call was most of what reading a form allocated)
local PARTS = {}

--- `s` with its `%XX` escapes decoded; nil when one is malformed (a `%`
-- not followed by two hex digits). (A loop of plain finds and a table of
-- digits, not gsub with a function: every attempt decodes its signature,
-- and LuaJIT compiles neither gsub nor a function made per call.)
function M.unescape(s)
  local at = find(s, "%", 1, true)
  if not at then return s end
  local parts, n, from = PARTS, 0, 1
  repeat
    local hi, lo = HEX[byte(s, at + 1)], HEX[byte(s, at + 2)]
    if not (hi and lo) then return nil end
    parts[n + 1] = sub(s, from, at - 1)
    parts[n + 2] = char(hi * 16 + lo)
    n, from = n + 2, at + 3
    at = find(s, "%", from, true)
  until not at
  parts[n + 1] = sub(s, from)
  return concat(parts, "", 1, n + 1)
end

-- Whether every `%` in q[from..to] starts a well-formed escape (two hex digits).
local function escapes_whole(q, from, to)
  local at = find(q, "%", from, true)
  while at and at <= to do
    if at + 2 > to or not (HEX[byte(q, at + 1)] and HEX[byte(q, at + 2)]) then return false end
    at = find(q, "%", at + 3, true)
  end
  return true
end

-- The one of `names` (a list) that the key q[from..to] spells, compared byte by byte, no string made;
-- false when it spells none of them; nil when it holds a % or a + (it must be decoded first).
local function spelt(q, from, to, names)
  for i = from, to do
    local b = byte(q, i)
    if b == 37 or b == 43 then return nil end
  end
  local len = to - from + 1
  for n = 1, #names do
    local name = names[n]
    if #name == len then
      local i = 1
      while i <= len and byte(q, from + i - 1) == byte(name, i) do i = i + 1 end
      if i > len then return name end
    end
  end
  return false
end

-- Whether `name` is one of `names` (a list).
local function listed(names, name)
  for n = 1, #names do
    if names[n] == name then return true end
  end
  return false
end

--- A query string (or a form body) as a table: each name's value decoded
-- (`%XX`, and `+` as a space, as forms and nginx read them); a name given
-- more than once, an array of its values; a name without `=`, "". nil when
-- an escape is malformed, unless `lenient`: then that text is kept as it came.
-- `keep` (a list of names, or nil for all): only those names' values are
-- made and kept; every other pair's escapes are still checked, never decoded.
function M.parse_query(q, lenient, keep)
  -- (plain finds and subs, gsub only where a + is: LuaJIT compiles these, not gmatch or match. The
  -- door reads every nginx-rtmp hook's form with it, `keep` naming the six fields it decides on: a
  -- name is compared in place and a value not kept neither cut out nor decoded, as each string made
  -- is hashed, interned and swept again on every hook, which was most of reading a form.)
  local out, from, last = new_table(8), 1, #q
  while from <= last do
    local amp = find(q, "&", from, true) or last + 1
    if amp > from then
      local eq = find(q, "=", from, true)
      if not eq or eq > amp then eq = amp end
      local k
      if keep then k = spelt(q, from, eq - 1, keep) end
      if k == nil then
        local rk = sub(q, from, eq - 1)
        if find(rk, "+", 1, true) then rk = gsub(rk, "+", " ") end
        k = M.unescape(rk)
        if lenient then k = k or rk end
        if not k then return nil end
        if keep and not listed(keep, k) then k = false end
      end
      if not k then
        if not lenient and not escapes_whole(q, eq + 1, amp - 1) then return nil end
      else
        local rv = eq < amp and sub(q, eq + 1, amp - 1) or ""
        if find(rv, "+", 1, true) then rv = gsub(rv, "+", " ") end
        local v = M.unescape(rv)
        if lenient then v = v or rv end
        if not v then return nil end
        local had = out[k]
        if had == nil then
          out[k] = v
        elseif type(had) == "table" then
          had[#had + 1] = v
        else
          out[k] = { had, v }
        end
      end
    end
    from = amp + 1
  end
  return out
end

return M
