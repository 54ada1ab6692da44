--- Connections to Redis for the Redis stores (streamctl.store.redis): the
-- configuration (a table or a redis:// URL, checked), scripts (text and
-- SHA-1), and `conn:eval`, which runs a script wherever it is called from.
--
-- Where it talks to Redis, chosen at every call as the HTTP transport is
-- (streamctl.transport.auto): inside nginx, in a phase with cosockets
-- (rewrite, access, content, ngx.timer callbacks, ssl_*), through
-- `nginx.redis` (Debian's lua-nginx-redis; OpenResty's `resty.redis`):
-- connect (from nginx's pool when it can), AUTH and SELECT on a new
-- connection only, the script, then `set_keepalive` (a cosocket cannot
-- outlive its request or timer). The pool is named by host, port, db and
-- password (by a number standing for it), so a pooled connection is never
-- used with another database or password. Elsewhere (plain Lua 5.4 and
-- LuaJIT, nginx's init phase) through the blocking hiredis module
-- streamctl.redis: one connection per connection object, made on first use
-- and made again (AUTH, SELECT) after an I/O error (in nginx's init phase it
-- is closed after each call, so no worker inherits it). In the other nginx
-- phases (init_worker, log, filters...) there is no way to reach Redis
-- without blocking the worker: `eval` answers `nil, err, "phase"` there.
--
-- Round trips per call: one (EVALSHA of a script); two when Redis does not
-- know the script yet (NOSCRIPT: then EVAL, which also loads it, and EVALSHA
-- again from the next call on); plus, on a new connection, one each for AUTH
-- (with a password) and SELECT (with a db other than 0).
--
-- A connection object keeps its hiredis connection across calls: do not use
-- one on both sides of a fork (make it in the child, or `close` it first).
-- @module streamctl.store.redisconn

-- luacheck: globals ngx
local type, error, tostring, tonumber, pairs, setmetatable, getmetatable, rawget, require, pcall =
  type, error, tostring, tonumber, pairs, setmetatable, getmetatable, rawget, require, pcall
local floor = math.floor
local format, find, sub, byte, char, lower, match = string.format, string.find, string.sub, string.byte,
  string.char, string.lower, string.match
local concat = table.concat
local unpack = table.unpack or unpack -- luacheck: ignore 143

local validate = require "streamctl.validate"

local M = {}

--- What a nil bulk or nil array reply becomes in `conn:eval`'s results,
-- whichever backend answered.
M.null = setmetatable({}, { __tostring = function() return "streamctl.store.redis.null" end })

--- nginx's connection pool: how long an idle connection is kept (ms) and how
-- many per worker and pool.
M.POOL_IDLE_MS = 10000
M.POOL_SIZE = 100

--- The largest password accepted, in bytes.
M.MAX_PASSWORD = 512

-- Phases in which nginx has cosockets.
local COSOCKET_PHASES = { rewrite = true, server_rewrite = true, access = true, content = true, timer = true,
                          ssl_cert = true, ssl_session_fetch = true, ssl_client_hello = true, preread = true }

-- ---- Configuration

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

--- The fields of a Redis configuration (a streamctl.validate schema), with
-- their defaults.
M.CONFIG = {
  { name = "host", type = "custom", check = check_host, default = "127.0.0.1" },
  { name = "port", type = "integer", min = 1, max = 65535, default = 6379 },
  { name = "password", type = "custom", check = check_password },
  { name = "db", type = "integer", min = 0, max = 2147483647, default = 0 },
  { name = "prefix", type = "string", allow_empty = true, max_len = 256, default = "streamctl:" },
  { name = "timeout_ms", type = "integer", min = 1, max = 2147483647, default = 200 },
  { name = "nodes", type = "integer", min = 1, max = 1000000, default = 4 },
}

local Config = {}
Config.__index = Config
function Config.__tostring(c)
  return format("redis://%s%s:%d/%d (prefix '%s')", c.password and ":<redacted>@" or "",
    find(c.host, ":", 1, true) and "[" .. c.host .. "]" or c.host, c.port, c.db, c.prefix)
end

-- s with its %XX escapes decoded; nil when one is malformed.
local function percent_decode(s)
  local out, i, n = {}, 1, #s
  while i <= n do
    local c = sub(s, i, i)
    if c == "%" then
      local h = sub(s, i + 1, i + 2)
      if not find(h, "^%x%x$") then return nil end
      out[#out + 1] = char(tonumber(h, 16))
      i = i + 3
    else
      out[#out + 1] = c
      i = i + 1
    end
  end
  return concat(out)
end

-- redis://[:password@]host[:port][/db] -> the config's fields, or nil, rule.
-- Messages never quote the URL (it may hold the password).
local function parse_url(url)
  if find(url, "[\r\n ]") or find(url, "\0", 1, true) then
    return nil, "redis URL must not contain CR, LF, NUL or spaces"
  end
  local scheme, rest = match(url, "^([%w+.-]+)://(.*)$")
  if not scheme or lower(scheme) ~= "redis" then return nil, "redis URL must start with redis://" end
  local fields = {}
  local at
  for i = #rest, 1, -1 do
    if byte(rest, i) == 64 then -- '@'
      at = i
      break
    end
  end
  if at then
    local userinfo = sub(rest, 1, at - 1)
    rest = sub(rest, at + 1)
    if sub(userinfo, 1, 1) ~= ":" then
      return nil, "redis URL: only ':password@' may come before the host (no user name)"
    end
    local password = percent_decode(sub(userinfo, 2))
    if not password then return nil, "redis URL: the password has a bad %-escape" end
    local _, why = check_password(password)
    if why then return nil, "redis URL: the password " .. why end
    fields.password = password
  end
  local hostport, slash, db = match(rest, "^([^/]*)(/?)(.*)$")
  local host, port
  if sub(hostport, 1, 1) == "[" then
    host, port = match(hostport, "^%[([%x:%.]+)%](.*)$")
    if not host then return nil, "redis URL: the host in [] must be an IPv6 address" end
  else
    host, port = match(hostport, "^([^:]*)(.*)$")
  end
  if host == "" then return nil, "redis URL: the host is missing" end
  local _, hwhy = check_host(host)
  if hwhy then return nil, "redis URL: the host " .. hwhy end
  fields.host = host
  if port ~= "" then
    local digits = match(port, "^:(%d+)$")
    local n = digits and #digits <= 5 and tonumber(digits)
    if not n or n < 1 or n > 65535 then return nil, "redis URL: the port must be an integer in 1..65535" end
    fields.port = n
  end
  if slash == "/" and db ~= "" then
    local n = find(db, "^%d+$") and #db <= 10 and tonumber(db)
    if not n or n > 2147483647 then return nil, "redis URL: the database must be an integer in 0..2147483647" end
    fields.db = n
  end
  return fields
end

--- A Redis configuration, checked and completed with the defaults.
--
-- `value` is a table `{ host = "127.0.0.1", port = 6379, password = nil,
-- db = 0, prefix = "streamctl:", timeout_ms = 200, nodes = 4 }` (every field
-- optional, unknown ones refused) or a URL `redis://[:password@]host[:port][/db]`
-- (the password may use %-escapes; no CR, LF, NUL or spaces anywhere; the
-- other fields take their defaults). `timeout_ms` bounds the connect and
-- each read and write of a command (a call may make several: connect, AUTH,
-- SELECT, EVALSHA, EVAL; a server that answers a byte per timeout is not
-- cut off; host names are resolved without a bound: give an address);
-- `nodes` is the number of processes expected to share the account (see
-- the fallback above). A config already made is returned as is.
-- Its `tostring` shows everything but the password.
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
  return setmetatable(cfg, Config)
end

-- ---- Scripts

local sha1_hex -- set on first use

local function get_sha1_hex()
  local ngx_ = rawget(_G, "ngx")
  if ngx_ and ngx_.sha1_bin then
    local sha1_bin = ngx_.sha1_bin
    return function(s)
      return (sha1_bin(s):gsub(".", function(c) return format("%02x", byte(c)) end))
    end
  end
  return require("streamctl.redis").sha1_hex
end

local Script = {}
Script.__index = Script
function Script.__tostring(s) return "streamctl.store.redis script " .. tostring(s.sha) end

--- A Lua script for `conn:eval`: its text and SHA-1 (the EVALSHA name),
-- computed once here.
-- @tparam string text
function M.script(text)
  if type(text) ~= "string" or text == "" then
    error("bad argument #1 to 'script' (text must be a non-empty string)", 2)
  end
  if not sha1_hex then -- (no SHA-1 without the C module outside nginx: then eval fails, never this)
    local ok, f = pcall(get_sha1_hex)
    sha1_hex = ok and f or nil
  end
  return setmetatable({ text = text, sha = sha1_hex and sha1_hex(text) or nil }, Script)
end

-- ---- Connections

-- A number as Redis reads it: integers in decimal, others "%.17g" (never
-- Lua 5.1's "%.14g", which rounds 16-digit values).
local function arg_string(v)
  if type(v) == "number" then
    if v == floor(v) and v > -2 ^ 63 and v < 2 ^ 63 then return format("%.0f", v) end
    return format("%.17g", v)
  end
  return v
end

-- v with every occurrence of `null` (the backend's) replaced by M.null.
local function convert(v, null)
  if v == null then return M.null end
  if type(v) == "table" then
    for k, x in pairs(v) do v[k] = convert(x, null) end
  end
  return v
end

-- s with every plain occurrence of `secret` replaced.
local function scrub(s, secret)
  if not secret or type(s) ~= "string" then return s end
  local out, i = {}, 1
  while true do
    local a, b = find(s, secret, i, true)
    if not a then break end
    out[#out + 1] = sub(s, i, a - 1)
    out[#out + 1] = "<redacted>"
    i = b + 1
  end
  out[#out + 1] = sub(s, i)
  return concat(out)
end

-- Ids for the pool names: one per distinct password in this process.
local password_ids, password_count = {}, 0

local Conn = {}
Conn.__index = Conn
function Conn.__tostring(c) return "streamctl.store.redis connection to " .. tostring(c.config) end

--- A connection object for `config` (see `config`). Makes no connection yet:
-- the first `eval` does, and each later one reuses or remakes it.
-- @param config a config, a table or a URL (bad ones raise)
-- @return connection object with `eval`, `close`, `address`
function M.connect(config)
  local cfg, why = M.config(config)
  if not cfg then error("bad argument #1 to 'connect' (" .. why .. ")", 2) end
  -- (the host in brackets: an IPv6 address holds ':' itself)
  local pool = "streamctl.redis:[" .. cfg.host .. "]:" .. cfg.port .. ":" .. cfg.db
  if cfg.password then
    local id = password_ids[cfg.password]
    if not id then
      password_count = password_count + 1
      id = password_count
      password_ids[cfg.password] = id
    end
    pool = pool .. ":" .. id
  end
  return setmetatable({ config = cfg, _pool = pool }, Conn)
end

--- "host:port" of the server, for messages.
function Conn:address()
  local host = self.config.host
  if find(host, ":", 1, true) then host = "[" .. host .. "]" end
  return host .. ":" .. self.config.port
end

local hiredis_module -- streamctl.redis, loaded on first use

-- A new hiredis connection, authenticated and on its db; or nil, err, kind.
local function hiredis_open(cfg)
  if not hiredis_module then
    local ok, mod = pcall(require, "streamctl.redis")
    if not ok then return nil, "streamctl.redis cannot be loaded: " .. tostring(mod), "io" end
    hiredis_module = mod
  end
  local c, err, kind = hiredis_module.connect(cfg.host, cfg.port, cfg.timeout_ms)
  if not c then return nil, "connect: " .. tostring(err), kind or "io" end
  if cfg.password then
    local res, aerr, akind = c:command("AUTH", cfg.password)
    if res == nil then
      c:close()
      return nil, "AUTH: " .. tostring(aerr), akind
    end
  end
  if cfg.db ~= 0 then
    local res, serr, skind = c:command("SELECT", cfg.db)
    if res == nil then
      c:close()
      return nil, "SELECT: " .. tostring(serr), skind
    end
  end
  return c
end

-- A connection that failed on its first command after it was reused (not
-- a timeout) had gone stale (the server restarted, a proxy dropped it): the
-- sessions below then try once more on a new one.
local function is_stale(err)
  return not find(tostring(err), "^timeout")
end

-- Runs fn(cmd) with a hiredis connection; cmd(argv) -> reply | nil, err, kind.
local function hiredis_session(self, fn, once)
  local res, err, kind
  for _ = 1, 2 do
    local c = self._hiredis
    local reused, stale = c ~= nil, false
    if not c then
      c, err, kind = hiredis_open(self.config)
      if not c then return nil, err, kind end
      self._hiredis = c
    end
    local sent = 0
    local function cmd(argv)
      sent = sent + 1
      local r, cerr, ckind = c:command(unpack(argv, 1, #argv))
      if r == nil then
        if ckind == "io" then
          self._hiredis = nil -- closed by the module; made again next time
          stale = reused and sent == 1 and is_stale(cerr)
        end
        return nil, cerr, ckind
      end
      return convert(r, hiredis_module.null)
    end
    res, err, kind = fn(cmd)
    if once and self._hiredis then
      self._hiredis:close()
      self._hiredis = nil
    end
    if not stale then break end
  end
  return res, err, kind
end

-- Runs fn(cmd) with a cosocket connection from nginx's pool.
local function ngx_session(self, fn)
  -- Debian's lua-nginx-redis is nginx.redis; OpenResty bundles the same as resty.redis
  local ok_mod, redis_ngx = pcall(require, "nginx.redis")
  if not ok_mod then ok_mod, redis_ngx = pcall(require, "resty.redis") end
  if not ok_mod then
    return nil, "neither nginx.redis (Debian: lua-nginx-redis) nor resty.redis (OpenResty) can be loaded", "io"
  end
  local cfg = self.config
  local res, err, kind
  for _ = 1, 2 do
    local red, nerr = redis_ngx:new()
    if not red then return nil, "nginx.redis: " .. tostring(nerr), "io" end
    red:set_timeout(cfg.timeout_ms)
    local ok, cerr = red:connect(cfg.host, cfg.port, { pool = self._pool })
    if not ok then return nil, "connect: " .. tostring(cerr), "io" end
    local reused = (red:get_reused_times() or 0) > 0
    if not reused and cfg.password then
      local r, aerr = red:auth(cfg.password)
      if not r then
        red:close()
        return nil, "AUTH: " .. tostring(aerr), r == false and "server" or "io"
      end
    end
    if not reused and cfg.db ~= 0 then
      local r, serr = red:select(cfg.db)
      if not r then
        red:close()
        return nil, "SELECT: " .. tostring(serr), r == false and "server" or "io"
      end
    end
    local broken, stale, sent = false, false, 0
    local function cmd(argv)
      sent = sent + 1
      local r, rerr = red[lower(argv[1])](red, unpack(argv, 2, #argv))
      if r == nil then
        broken = true
        stale = reused and sent == 1 and is_stale(rerr)
        return nil, tostring(rerr), "io"
      end
      if r == false then return nil, tostring(rerr), "server" end
      return convert(r, ngx.null)
    end
    res, err, kind = fn(cmd)
    if broken then
      red:close()
    else
      red:set_keepalive(M.POOL_IDLE_MS, M.POOL_SIZE)
    end
    if not stale then break end
  end
  return res, err, kind
end

--- Runs a script: EVALSHA, and EVAL when Redis answers NOSCRIPT.
-- @param script made by `script`
-- @tparam {string,...} keys the script's KEYS
-- @tparam {string|number,...} args its ARGV (numbers sent as decimals)
-- @return the script's reply (nil replies as `null`; an error inside an
--   array as `{ false, message }`); or nil, err, kind, where kind is "server"
--   (Redis answered an error), "io" (unreachable, timeout, connection lost)
--   or "phase" (an nginx phase without cosockets). Never raises for Redis.
function Conn:eval(script, keys, args)
  if getmetatable(script) ~= Script then
    error("bad argument #1 to 'eval' (a script made by streamctl.store.redis.script expected)", 2)
  end
  if type(keys) ~= "table" then error("bad argument #2 to 'eval' (keys must be an array of strings)", 2) end
  if args ~= nil and type(args) ~= "table" then error("bad argument #3 to 'eval' (args must be an array)", 2) end
  if script.sha == nil then return nil, "streamctl.redis (the C module) is not installed", "io" end
  local argv = { "EVALSHA", script.sha, #keys }
  for i = 1, #keys do
    if type(keys[i]) ~= "string" then
      error("bad argument #2 to 'eval' (keys[" .. i .. "] must be a string)", 2)
    end
    argv[#argv + 1] = keys[i]
  end
  for i = 1, args and #args or 0 do
    local a = args[i]
    if type(a) ~= "string" and type(a) ~= "number" then
      error("bad argument #3 to 'eval' (args[" .. i .. "] must be a string or a number)", 2)
    end
    argv[#argv + 1] = arg_string(a)
  end
  argv[3] = arg_string(argv[3])

  local function run(cmd)
    local res, err, kind = cmd(argv)
    if res == nil and kind == "server" and find(err, "^NOSCRIPT") then
      argv[1], argv[2] = "EVAL", script.text
      res, err, kind = cmd(argv)
    end
    return res, err, kind
  end

  local res, err, kind
  local ngx_ = rawget(_G, "ngx")
  local phase = ngx_ and ngx_.get_phase and ngx_.get_phase()
  if not phase then
    res, err, kind = hiredis_session(self, run)
  elseif COSOCKET_PHASES[phase] then
    res, err, kind = ngx_session(self, run)
  elseif phase == "init" then
    res, err, kind = hiredis_session(self, run, true)
  else
    return nil, "Redis cannot be reached from nginx's '" .. tostring(phase) .. "' phase (no cosockets)", "phase"
  end
  if res == nil then return nil, scrub(err, self.config.password), kind end
  return res
end

--- Whether `value` is a connection object made by `connect`.
function M.is_connection(value)
  return getmetatable(value) == Conn
end

--- Closes the connection this object keeps outside nginx (the next `eval`
-- makes a new one). Inside nginx connections go back to nginx's pool after
-- each call.
function Conn:close()
  if self._hiredis then self._hiredis:close() end
  self._hiredis = nil
end

return M
