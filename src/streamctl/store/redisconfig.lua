--- A Redis configuration for the Redis stores (streamctl.store.redis): a
-- table of options, a redis:// URL (user, password, host, port, db and
-- the query's nodes, prefix and timeout_ms) or a redis+sentinel:// URL (the
-- Sentinels and the master's name in place of the host), either over TLS
-- as rediss:// (and the TLS options as parameters), checked field by
-- field, each refusal naming the field and the rule, never a password.
-- (streamctl.store.redisconn re-exports `config` and `CONFIG`.)
-- @module streamctl.store.redisconfig

local type, tonumber, tostring, ipairs, pairs, setmetatable, getmetatable =
  type, tonumber, tostring, ipairs, pairs, setmetatable, getmetatable
local floor = math.floor
local format, find, sub, lower, match = string.format, string.find, string.sub, string.lower, string.match
local concat = table.concat

local validate = require "streamctl.base.validate"
local url_grammar = require "streamctl.base.url"
local transport_common = require "streamctl.transport.common"

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

--- Sentinel's default port.
M.SENTINEL_PORT = 26379

--- The most Sentinels a configuration may list.
M.MAX_SENTINELS = 16

-- (Sentinel's rule for a master's name: "A-z 0-9 and the three characters
-- '.-_'", redis.io's Sentinel page, "Configuring Sentinel".)
local function check_master_name(v)
  if type(v) ~= "string" then return nil, "must be a string" end
  if v == "" then return nil, "must not be empty" end
  if #v > 255 then return nil, "must be at most 255 bytes" end
  if find(v, "[^%w%.%-_]") then return nil, "must hold only letters, digits, '.', '-' and '_' (Sentinel's rule)" end
  return v
end

-- One Sentinel: "host[:port]" (the port 26379 when none is written) or
-- { host =, port = }; into { host =, port = }, or nil, rule.
local function sentinel_entry(v)
  local host, port
  if type(v) == "string" then
    local why
    host, why = url_grammar.host_port(v)
    if not host then
      return nil, why == "port" and "has a port that is not an integer in 1..65535"
        or "must be 'host', 'host:port' or '[IPv6]:port'"
    end
    port = why
  elseif type(v) == "table" then
    for k in pairs(v) do
      if k ~= "host" and k ~= "port" then return nil, "has an unknown field '" .. tostring(k) .. "' (host, port)" end
    end
    host, port = v.host, v.port
    if port ~= nil and (type(port) ~= "number" or port ~= floor(port) or port < 1 or port > 65535) then
      return nil, "has a port that is not an integer in 1..65535"
    end
  else
    return nil, "must be 'host:port' or { host =, port = }, not " .. type(v)
  end
  local _, hwhy = check_host(host)
  if hwhy then return nil, "has a host that " .. hwhy end
  return { host = host, port = port or M.SENTINEL_PORT }
end

-- The Sentinels: an array of 1..MAX_SENTINELS entries, each once; or nil,
-- the rule and the index of the entry that breaks it.
local function sentinel_list(v)
  if type(v) ~= "table" then return nil, "must be an array of 'host:port' (the Sentinels)" end
  local n = #v
  for k in pairs(v) do
    if type(k) ~= "number" or k < 1 or k > n or k ~= floor(k) then
      return nil, "must be an array of 'host:port' (the Sentinels), without other keys"
    end
  end
  if n == 0 then return nil, "must name at least one Sentinel" end
  if n > M.MAX_SENTINELS then return nil, "must name at most " .. M.MAX_SENTINELS .. " Sentinels" end
  local out, seen = {}, {}
  for i = 1, n do
    local e, why = sentinel_entry(v[i])
    if not e then return nil, why, i end
    local key = lower(e.host) .. ":" .. e.port
    if seen[key] then return nil, "names " .. key .. " again (each Sentinel once)", i end
    seen[key], out[i] = true, e
  end
  return out
end

local function check_sentinels(v)
  local out, why, i = sentinel_list(v)
  if i then return nil, "option 'redis.sentinels[" .. i .. "]' " .. why, true end
  return out, why
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
  { name = "sentinels", type = "custom", check = check_sentinels },
  { name = "master_name", type = "custom", check = check_master_name },
  { name = "sentinel_user", type = "custom", check = check_user },
  { name = "sentinel_password", type = "custom", check = check_password },
  { name = "sentinel_check_ms", type = "integer", min = 10, max = 86400000, default = 1000 },
  { name = "tls", type = "boolean", default = false },
  { name = "tls_ca_file", type = "custom", check = transport_common.check_ca_file },
  { name = "tls_server_name", type = "custom", check = check_host },
  -- (the client's certificate and key: a path's rule here; the files are loaded and checked when a
  -- connection object is made, streamctl.store.redissession, so a key is never read into a Lua string
  -- outside nginx)
  { name = "tls_cert_file", type = "custom", check = transport_common.check_path },
  { name = "tls_key_file", type = "custom", check = transport_common.check_path },
}

--- The TLS options, besides `tls` itself.
M.TLS_OPTIONS = { "tls_ca_file", "tls_server_name", "tls_cert_file", "tls_key_file" }

-- The fields a URL may set as query parameters, by name: their M.CONFIG
-- specs; and which a URL takes, by scheme (a redis+sentinel:// URL also
-- how to log in to the Sentinels, a rediss:// one the TLS options).
local URL_PARAMS, SCHEME_PARAMS = {}, {}
do
  local plain, sentinel = { "nodes", "prefix", "timeout_ms" }, { "sentinel_user", "sentinel_password",
    "sentinel_check_ms" }
  local function list(...)
    local out = {}
    for _, names in ipairs { ... } do for _, n in ipairs(names) do out[#out + 1] = n end end
    return out
  end
  SCHEME_PARAMS.redis, SCHEME_PARAMS["redis+sentinel"] = plain, list(plain, sentinel)
  SCHEME_PARAMS.rediss, SCHEME_PARAMS["rediss+sentinel"] = list(plain, M.TLS_OPTIONS),
    list(plain, sentinel, M.TLS_OPTIONS)
  for _, f in ipairs(M.CONFIG) do URL_PARAMS[f.name] = f end
end

local UNIX_REFUSED = "redis URL: unix sockets are not supported: have Redis listen on 127.0.0.1 "
  .. "and use redis://127.0.0.1:port"

local Config = {}
Config.__index = Config
--- "host:port", the host in brackets when it is an IPv6 address (it holds
-- ':'): how messages and pool names write a node.
local function address(host, port)
  return (find(host, ":", 1, true) and "[" .. host .. "]" or host) .. ":" .. port
end
M.address = address

--- The AUTH command for a login: `AUTH user password` for an ACL user,
-- else `AUTH password` (the master's and the Sentinels' alike).
function M.auth(user, password)
  return user and { "AUTH", user, password } or { "AUTH", password }
end

function Config.__tostring(c)
  local auth = c.password and ((c.user or "") .. ":<redacted>@") or ""
  local scheme = c.tls and "rediss" or "redis"
  if c.sentinels then
    local list = {}
    for i, e in ipairs(c.sentinels) do list[i] = address(e.host, e.port) end
    return format("%s+sentinel://%s%s/%s/%d (prefix '%s')", scheme, auth, concat(list, ","), c.master_name, c.db,
      c.prefix)
  end
  return format("%s://%s%s/%d (prefix '%s')", scheme, auth, address(c.host, c.port), c.db, c.prefix)
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
  if f.type == "custom" then return f.check(raw) end
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

-- ?nodes=10&prefix=x&timeout_ms=50 into fields, or nil, rule (`names`:
-- the parameters this kind of URL takes).
local function parse_query(query, fields, names)
  local seen, i, takes = {}, 1, {}
  for _, n in ipairs(names) do takes[n] = true end
  while i <= #query + 1 do
    local amp = find(query, "&", i, true) or #query + 1
    local pair = sub(query, i, amp - 1)
    i = amp + 1
    if pair ~= "" then -- (empty pairs, as in "?" or "a=1&&b=2", say nothing)
      local eq = find(pair, "=", 1, true)
      local name = percent_decode(sub(pair, 1, (eq or #pair + 1) - 1))
      local f = name and takes[name] and URL_PARAMS[name]
      if not f then
        return nil, "redis URL: unknown parameter" .. param_name(name) .. " (the parameters are "
          .. concat(names, ", ") .. ")"
      end
      if seen[name] then return nil, "redis URL: parameter '" .. name .. "' is given twice" end
      seen[name] = true
      if not eq then return nil, "redis URL: parameter '" .. name .. "' has no value (" .. name .. "=...)" end
      local raw = percent_decode(sub(pair, eq + 1))
      if not raw then return nil, "redis URL: parameter '" .. name .. "' has a bad %-escape" end
      local v, why = param_value(f, raw)
      if v == nil then return nil, "redis URL: " .. name .. " " .. why end -- (never the value: a password)
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

-- The database of a URL's path into fields.db; nil, or the rule.
local function parse_db(db, fields)
  local n = find(db, "^%d+$") and #db <= 10 and tonumber(db)
  if not n or n > 2147483647 then return "redis URL: the database must be an integer in 0..2147483647" end
  fields.db = n
end

-- What follows the userinfo of a redis+sentinel:// URL (its query apart):
-- host1[:port1],host2[:port2],.../MASTER[/db]; into fields, or nil, rule.
local function parse_sentinel_url(rest, query, fields, names)
  local list, path = match(rest, "^([^/]*)/?(.*)$")
  local entries, i = {}, 0
  for entry in (list .. ","):gmatch("([^,]*),") do
    i = i + 1
    if entry == "" then return nil, "redis URL: Sentinel " .. i .. " of the list is empty (host:port,host:port,...)" end
    entries[i] = entry
  end
  local sentinels, why, at = sentinel_list(entries)
  if not sentinels then
    return nil, at and "redis URL: Sentinel " .. at .. " of the list " .. why or "redis URL: the Sentinels " .. why
  end
  fields.sentinels = sentinels
  local name, slash, db = match(path, "^([^/]*)(/?)(.*)$")
  if name == "" then return nil, "redis URL: the master's name is missing (redis+sentinel://host:port,.../NAME)" end
  local decoded = percent_decode(name)
  local _, nwhy = check_master_name(decoded or "%")
  if nwhy then return nil, "redis URL: the master's name " .. nwhy end
  fields.master_name = decoded
  if slash == "/" and db ~= "" then
    local dwhy = parse_db(db, fields)
    if dwhy then return nil, dwhy end
  end
  if query then return parse_query(query, fields, names) end
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
  if scheme == "unix" or scheme == "redis+unix" or scheme == "redis-socket"
      or (not scheme and (find(lower(url), "^unix:") or find(url, "^[/.~]"))) then
    return nil, UNIX_REFUSED
  end
  local names = SCHEME_PARAMS[scheme]
  if not names then
    return nil, "redis URL must start with redis://, rediss:// (TLS), redis+sentinel:// or rediss+sentinel://"
  end
  local fields = { tls = find(scheme, "^rediss") and true or nil }
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
  if find(scheme, "+sentinel", 1, true) then return parse_sentinel_url(rest, query, fields, names) end
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
    local why = parse_db(db, fields)
    if why then return nil, why end
  end
  if query then return parse_query(query, fields, names) end
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
-- fields take their defaults).
--
-- Through Sentinel: `sentinels` (an array of "host[:port]" or `{ host =,
-- port = }`, 1 to MAX_SENTINELS, the port SENTINEL_PORT when none is given)
-- and `master_name` (the name they monitor it by) in place of `host` and
-- `port`; `sentinel_user` and `sentinel_password` log in to the Sentinels,
-- `user` and `password` to the master; `sentinel_check_ms` (default 1000)
-- is how often a connection asks them again which node is the master (a
-- failover that leaves the old master up is seen within it). As a URL:
-- `redis+sentinel://[[user]:password@]host1[:port1],host2[:port2],.../NAME[/db][?...]`,
-- whose parameters may also be `sentinel_user`, `sentinel_password` and
-- `sentinel_check_ms`.
-- Over TLS: `tls = true` or a `rediss://` (`rediss+sentinel://`) URL, with
-- `tls_ca_file` (the CAs to trust; default OpenSSL's paths, inside nginx
-- `lua_ssl_trusted_certificate`'s), `tls_server_name` (the name each
-- certificate must show; default each node's host) and a client
-- certificate (`tls_cert_file` with `tls_key_file`), as options or the
-- URL's parameters; the Sentinels are reached over TLS too.
-- Unix sockets are refused, saying what to do instead. `timeout_ms` bounds the connect and
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
  if type(input) == "table" and input.sentinels ~= nil and (input.host ~= nil or input.port ~= nil) then
    return nil, "option 'redis." .. (input.host ~= nil and "host" or "port") .. "' goes with no 'redis.sentinels': "
      .. "the Sentinels name the master's address"
  end
  local cfg, why = validate.options(M.CONFIG, input, "streamctl.store.redis", "redis.")
  if not cfg then return nil, why end
  if cfg.user and not cfg.password then
    return nil, "option 'redis.user' needs 'redis.password' (Redis AUTH takes a user name with its password)"
  end
  if cfg.sentinel_user and not cfg.sentinel_password then
    return nil, "option 'redis.sentinel_user' needs 'redis.sentinel_password' (Sentinel's AUTH takes a user name "
      .. "with its password)"
  end
  if (cfg.sentinels == nil) ~= (cfg.master_name == nil) then
    return nil, cfg.sentinels and "option 'redis.sentinels' needs 'redis.master_name' (the name the Sentinels "
      .. "monitor the master by)" or "option 'redis.master_name' needs 'redis.sentinels' (the Sentinels to ask)"
  end
  if not cfg.sentinels then
    for _, name in ipairs { "sentinel_user", "sentinel_password", "sentinel_check_ms" } do
      if input[name] ~= nil then return nil, "option 'redis." .. name .. "' goes with 'redis.sentinels' only" end
    end
    cfg.sentinel_check_ms = nil
  end
  if not cfg.tls then
    for _, name in ipairs(M.TLS_OPTIONS) do
      if cfg[name] ~= nil then return nil, "option 'redis." .. name .. "' goes with 'redis.tls' (rediss://) only" end
    end
  end
  if (cfg.tls_cert_file == nil) ~= (cfg.tls_key_file == nil) then
    return nil, cfg.tls_cert_file and "option 'redis.tls_cert_file' needs 'redis.tls_key_file' (the certificate's key)"
      or "option 'redis.tls_key_file' needs 'redis.tls_cert_file' (the certificate it is the key of)"
  end
  if cfg.sentinels then cfg.host, cfg.port = nil, nil end -- (the Sentinels say where the master is)
  return setmetatable(cfg, Config)
end

-- A number standing for `key` in nginx's pool names: one per distinct key
-- in this process (from 1), so a pool name tells identities and TLS
-- settings apart without showing them.
local ids, id_count = {}, 0
function M.id_of(key)
  local id = ids[key]
  if not id then
    id_count = id_count + 1
    id = id_count
    ids[key] = id
  end
  return id
end

-- Ids standing for logins in nginx's pool names: one per distinct user and
-- password (0: none), so a pooled connection is never used with another
-- identity and no name shows a password.
function M.login_id(user, password)
  if not password then return 0 end
  return M.id_of((user or "") .. "\0" .. password) -- ('\0' is in neither)
end

-- (the host rule, for a cluster's redirections)
M.check_host = check_host

return M
