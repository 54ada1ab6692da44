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

--- `s` with its `%XX` escapes decoded; nil when one is malformed (a `%`
-- not followed by two hex digits). (A loop of plain finds and a table of
-- digits, not gsub with a function: every attempt decodes its signature,
-- and LuaJIT compiles neither gsub nor a function made per call.)
function M.unescape(s)
  local at = find(s, "%", 1, true)
  if not at then return s end
  local parts, n, from = {}, 0, 1
  repeat
    local hi, lo = HEX[byte(s, at + 1)], HEX[byte(s, at + 2)]
    if not (hi and lo) then return nil end
    parts[n + 1] = sub(s, from, at - 1)
    parts[n + 2] = char(hi * 16 + lo)
    n, from = n + 2, at + 3
    at = find(s, "%", from, true)
  until not at
  parts[n + 1] = sub(s, from)
  return concat(parts)
end

--- A query string (or a form body) as a table: each name's value decoded
-- (`%XX`, and `+` as a space, as forms and nginx read them); a name given
-- more than once, an array of its values; a name without `=`, "". nil when
-- an escape is malformed, unless `lenient`: then that text is kept as it came.
function M.parse_query(q, lenient)
  -- (plain finds and subs, gsub only where a + is: LuaJIT compiles these, not gmatch or match; the
  -- door reads every nginx-rtmp hook's form with it)
  local out, from, last = {}, 1, #q
  while from <= last do
    local amp = find(q, "&", from, true) or last + 1
    if amp > from then
      local eq = find(q, "=", from, true)
      local rk, rv
      if eq and eq < amp then rk, rv = sub(q, from, eq - 1), sub(q, eq + 1, amp - 1)
      else rk, rv = sub(q, from, amp - 1), "" end
      if find(rk, "+", 1, true) then rk = gsub(rk, "+", " ") end
      if find(rv, "+", 1, true) then rv = gsub(rv, "+", " ") end
      local k, v = M.unescape(rk), M.unescape(rv)
      if lenient then k, v = k or rk, v or rv end
      if not k or not v then return nil end
      local had = out[k]
      if had == nil then
        out[k] = v
      elseif type(had) == "table" then
        had[#had + 1] = v
      else
        out[k] = { had, v }
      end
    end
    from = amp + 1
  end
  return out
end

return M
