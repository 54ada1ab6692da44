--- A Redis configuration for the Redis stores (streamctl.store.redis): a
-- table of options or a redis:// URL (user, password, host, port, db and
-- the query's nodes, prefix and timeout_ms), checked field by field, each
-- refusal naming the field and the rule, never the password.
-- (streamctl.store.redisconn re-exports `config` and `CONFIG`.)
-- @module streamctl.store.redisconfig

local type, tonumber, ipairs, setmetatable, getmetatable = type, tonumber, ipairs, setmetatable, getmetatable
local format, find, sub, lower, match = string.format, string.find, string.sub, string.lower, string.match
local concat = table.concat

local validate = require "streamctl.base.validate"
local url_grammar = require "streamctl.base.url"

local M = {}

--- The largest password accepted, in bytes.
M.MAX_PASSWORD = 512

--- The longest ACL user name accepted, in bytes.
M.MAX_USER = 256

local function check_host(v)
  if type(v) ~= "string" then return nil, "must be a string" end
  if v == "" then return nil, "must not be empty" end
  if #v > 255 then return nil, "must be at most 255 bytes" end
  if find(v, "[^%w%.%-_:]") then return nil, "must be a host name or an IP address" end
  return v
end

local function check_password(v)
  if type(v) ~= "string" then return nil, "must be a string" end
  if v == "" then return nil, "must not be empty" end
  if #v > M.MAX_PASSWORD then return nil, "must be at most " .. M.MAX_PASSWORD .. " bytes" end
  if find(v, "[^\32-\126]") then return nil, "must be printable ASCII" end
  return v
end

-- (Redis refuses user names with spaces; a ':' would end the name in a URL.)
local function check_user(v)
  if type(v) ~= "string" then return nil, "must be a string" end
  if v == "" then return nil, "must not be empty" end
  if #v > M.MAX_USER then return nil, "must be at most " .. M.MAX_USER .. " bytes" end
  if find(v, "[^\33-\126]") then return nil, "must be printable ASCII without spaces" end
  if find(v, ":", 1, true) then return nil, "must not contain ':'" end
  return v
end

--- The fields of a Redis configuration (a streamctl.base.validate schema), with
-- their defaults.
M.CONFIG = {
  { name = "host", type = "custom", check = check_host, default = "127.0.0.1" },
  { name = "port", type = "integer", min = 1, max = 65535, default = 6379 },
  { name = "user", type = "custom", check = check_user },
  { name = "password", type = "custom", check = check_password },
  { name = "db", type = "integer", min = 0, max = 2147483647, default = 0 },
  { name = "prefix", type = "string", allow_empty = true, max_len = 256, default = "streamctl:" },
  { name = "timeout_ms", type = "integer", min = 1, max = 2147483647, default = 200 },
  { name = "nodes", type = "integer", min = 1, max = 1000000, default = 4 },
}

-- The fields a URL may set as query parameters, by name: their M.CONFIG specs.
local URL_PARAMS, URL_PARAM_NAMES = {}, { "nodes", "prefix", "timeout_ms" }
for _, f in ipairs(M.CONFIG) do
  for _, name in ipairs(URL_PARAM_NAMES) do
    if f.name == name then URL_PARAMS[name] = f end
  end
end

local TLS_REFUSED = "redis URL: rediss:// (TLS) is not supported (hiredis 0.14 has no TLS): "
  .. "use a local TLS tunnel (stunnel, spiped) and point redis:// at it"
local UNIX_REFUSED = "redis URL: unix sockets are not supported: have Redis listen on 127.0.0.1 "
  .. "and use redis://127.0.0.1:port"

local Config = {}
Config.__index = Config
function Config.__tostring(c)
  local auth = c.password and ((c.user or "") .. ":<redacted>@") or ""
  return format("redis://%s%s:%d/%d (prefix '%s')", auth,
    find(c.host, ":", 1, true) and "[" .. c.host .. "]" or c.host, c.port, c.db, c.prefix)
end

-- s with its %XX escapes decoded; nil when one is malformed.
local percent_decode = url_grammar.unescape

-- A query parameter's name for a message: " 'name'" when it is a plain word,
-- else nothing (it may be a mangled secret, or junk).
local function param_name(name)
  if name and #name <= 64 and find(name, "^[%w_.-]+$") then return " '" .. name .. "'" end
  return ""
end

-- A query parameter's value checked by its M.CONFIG spec's rules: the value,
-- or nil, rule.
local function param_value(f, raw)
  if f.type == "integer" then
    local n = find(raw, "^%d+$") and #raw <= 10 and tonumber(raw)
    if not n or n < f.min or n > f.max then return nil, format("must be an integer in %d..%d", f.min, f.max) end
    return n
  end
  if raw == "" and not f.allow_empty then return nil, "must not be empty" end
  local why = validate.text_rule(f, raw)
  if why then return nil, why end
  return raw
end

-- ?nodes=10&prefix=x&timeout_ms=50 into fields, or nil, rule.
local function parse_query(query, fields)
  local seen, i = {}, 1
  while i <= #query + 1 do
    local amp = find(query, "&", i, true) or #query + 1
    local pair = sub(query, i, amp - 1)
    i = amp + 1
    if pair ~= "" then -- (empty pairs, as in "?" or "a=1&&b=2", say nothing)
      local eq = find(pair, "=", 1, true)
      local name = percent_decode(sub(pair, 1, (eq or #pair + 1) - 1))
      local f = name and URL_PARAMS[name]
      if not f then
        return nil, "redis URL: unknown parameter" .. param_name(name) .. " (the parameters are "
          .. concat(URL_PARAM_NAMES, ", ") .. ")"
      end
      if seen[name] then return nil, "redis URL: parameter '" .. name .. "' is given twice" end
      seen[name] = true
      if not eq then return nil, "redis URL: parameter '" .. name .. "' has no value (" .. name .. "=...)" end
      local raw = percent_decode(sub(pair, eq + 1))
      if not raw then return nil, "redis URL: parameter '" .. name .. "' has a bad %-escape" end
      local v, why = param_value(f, raw)
      if v == nil then return nil, "redis URL: " .. name .. " " .. why end
      fields[name] = v
    end
  end
  return fields
end

-- "user:password" or ":password" (before the '@') into fields, or nil, rule.
local function parse_userinfo(userinfo, fields)
  local colon = find(userinfo, ":", 1, true)
  if not colon then
    return nil, "redis URL: before the '@' comes ':password' or 'user:password' (an '@' elsewhere is written %40)"
  end
  if colon > 1 then
    local user = percent_decode(sub(userinfo, 1, colon - 1))
    if not user then return nil, "redis URL: the user name has a bad %-escape" end
    local _, why = check_user(user)
    if why then return nil, "redis URL: the user name " .. why end
    fields.user = user
  end
  local password = percent_decode(sub(userinfo, colon + 1))
  if not password then return nil, "redis URL: the password has a bad %-escape" end
  local _, why = check_password(password)
  if why then return nil, "redis URL: the password " .. why end
  fields.password = password
  return fields
end

-- redis://[[user]:password@]host[:port][/db][?params] -> the config's fields,
-- or nil, rule. Messages never quote the URL (it may hold the password).
local function parse_url(url)
  if find(url, "[\r\n ]") or find(url, "\0", 1, true) then
    return nil, "redis URL must not contain CR, LF, NUL or spaces"
  end
  local scheme, rest = match(url, "^([%w+.-]+)://(.*)$")
  scheme = scheme and lower(scheme)
  if scheme == "rediss" then return nil, TLS_REFUSED end
  if scheme == "unix" or scheme == "redis+unix" or scheme == "redis-socket"
      or (not scheme and (find(lower(url), "^unix:") or find(url, "^[/.~]"))) then
    return nil, UNIX_REFUSED
  end
  if scheme ~= "redis" then return nil, "redis URL must start with redis://" end
  local fields = {}
  -- The userinfo ends at the last '@' of all the rest: a password may hold
  -- '/', '?' and '@' unescaped (so an '@' in a parameter must be written %40).
  local userinfo
  userinfo, rest = url_grammar.userinfo(rest)
  if userinfo then
    local ok, why = parse_userinfo(userinfo, fields)
    if not ok then return nil, why end
  end
  local query
  local q = find(rest, "?", 1, true)
  if q then rest, query = sub(rest, 1, q - 1), sub(rest, q + 1) end
  local hostport, slash, db = match(rest, "^([^/]*)(/?)(.*)$")
  local host, port = url_grammar.host_port(hostport)
  if port == "host" and sub(hostport, 1, 1) == "[" then
    return nil, "redis URL: the host in [] must be an IPv6 address"
  end
  if port == "host" then return nil, "redis URL: the host is missing" end
  if port == "port" then return nil, "redis URL: the port must be an integer in 1..65535" end
  local _, hwhy = check_host(host)
  if hwhy then return nil, "redis URL: the host " .. hwhy end
  fields.host, fields.port = host, port
  if slash == "/" and db ~= "" then
    local n = find(db, "^%d+$") and #db <= 10 and tonumber(db)
    if not n or n > 2147483647 then return nil, "redis URL: the database must be an integer in 0..2147483647" end
    fields.db = n
  end
  if query then return parse_query(query, fields) end
  return fields
end

--- A Redis configuration, checked and completed with the defaults.
--
-- `value` is a table `{ host = "127.0.0.1", port = 6379, user = nil,
-- password = nil, db = 0, prefix = "streamctl:", timeout_ms = 200,
-- nodes = 4 }` (every field optional, unknown ones refused; `user`, a Redis 6
-- ACL user, only with a password) or a URL
-- `redis://[[user]:password@]host[:port][/db][?nodes=10&prefix=x&timeout_ms=50]`
-- (user, password and parameters may use %-escapes; an '@' after the
-- password must be one; no CR, LF, NUL or spaces anywhere; the parameters
-- are those three fields, each once, checked by the same rules; the other
-- fields take their defaults). `rediss://` (TLS) and unix sockets are
-- refused, saying what to do instead. `timeout_ms` bounds the connect and
-- each read and write of a command (a call may make several: connect, AUTH,
-- SELECT, INFO, EVALSHA, EVAL, and again on a redirected node; a server that
-- answers a byte per timeout is not cut off; host names are resolved
-- without a bound: give an address); `nodes` is the number of processes
-- expected to share the account (see streamctl.store.redis). A config
-- already made is returned as is. Its `tostring` shows everything but the
-- password.
-- @param value a table or a URL string
-- @return the config; or nil and a message naming the field and the rule
--   (never the password)
function M.config(value)
  if getmetatable(value) == Config then return value end
  local input = value
  if type(value) == "string" then
    local fields, why = parse_url(value)
    if not fields then return nil, why end
    input = fields
  elseif type(value) ~= "table" then
    return nil, "redis must be a table of options or a redis:// URL, not " .. type(value)
  end
  local cfg, why = validate.options(M.CONFIG, input, "streamctl.store.redis", "redis.")
  if not cfg then return nil, why end
  if cfg.user and not cfg.password then
    return nil, "option 'redis.user' needs 'redis.password' (Redis AUTH takes a user name with its password)"
  end
  return setmetatable(cfg, Config)
end

-- (the host rule, for a cluster's redirections)
M.check_host = check_host

return M
