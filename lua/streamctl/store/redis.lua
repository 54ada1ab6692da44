--- Stores in Redis: one rate-limit budget and one ZEGO Sequence per stream
-- for every process on every machine that uses the same Redis (issue 13).
--
--   local redis_store = require "streamctl.store.redis"
--   local conn = redis_store.connect "redis://:secret@10.0.0.5:6379/0"   -- or a table, see `config`
--   local limiter = ratelimit.new { store = redis_store.ratelimit_store(conn) }
--   local seq = sequence.new { store = redis_store.sequence_store(conn, "zego:1234567890:") }
--
-- Where it talks to Redis, chosen at every call as the HTTP transport is
-- (streamctl.transport.auto): inside nginx, in a phase with cosockets
-- (rewrite, access, content, ngx.timer callbacks, ssl_*), through
-- `nginx.redis` (Debian's lua-nginx-redis; OpenResty's `resty.redis`):
-- connect (from nginx's pool when it can), AUTH and SELECT on a new connection only, the script, then `set_keepalive`
-- (a cosocket cannot outlive its request or timer). The pool is named by
-- host, port, db and password (by a number standing for it), so a pooled
-- connection is never used with another database or password. Elsewhere
-- (plain Lua 5.4 and LuaJIT, nginx's init phase) through the blocking
-- hiredis module streamctl.redis: one connection per connection object, made
-- on first use and made again (AUTH, SELECT) after an I/O error (in nginx's
-- init phase it is closed after each call, so no worker inherits it). In the
-- other nginx phases (init_worker, log, filters...) there is no way to reach
-- Redis without blocking the worker: the stores answer from their local
-- fallback there, without counting it as an outage.
--
-- Round trips per call: one (EVALSHA of a script); two when Redis does not
-- know the script yet (NOSCRIPT: then EVAL, which also loads it, and EVALSHA
-- again from the next call on); plus, on a new connection, one each for AUTH
-- (with a password) and SELECT (with a db other than 0).
--
-- Rate limits (`ratelimit_store`): a store for streamctl.ratelimit with
-- `reserve`, so the limiter's reservation happens in one script, atomically:
-- the GCRA of streamctl.ratelimit (tat, T = 1/rate, tau = (burst - 1) * T)
-- in integer microseconds of the Redis server's clock (`TIME`), so machines
-- whose clocks differ share one schedule. T is 1/rate rounded up to a whole
-- microsecond (never faster than the rate). The key, `prefix .. "rl:" ..`
-- the limiter's key, holds the tat as decimal microseconds and expires (PX)
-- when it stops mattering: at the tat, after which an absent key means the
-- same. With `only_if_free` the script writes nothing unless the delay is 0.
--
-- Sequences (`sequence_store`): a store for streamctl.sequence. `advance`
-- is one script: v = max(candidate, current + 1) (candidate when absent), SET
-- with an expiry of sequence.KEEP_MS, v returned as a decimal string (Redis'
-- Lua numbers are doubles: values stay below 2^53, exact). Key:
-- `prefix .. "seq:" ..` the store's prefix (the provider and AppId) `..` the
-- stream ID.
--
-- When Redis is unreachable, slow (timeout_ms) or answers an error, neither
-- store raises nor sends unlimited. The rate-limit store falls back to a
-- GCRA in this process (streamctl.ratelimit's memory store, monotonic
-- clock) at `rate / nodes` with a burst of `floor(burst / nodes)` (at least
-- 1), where `nodes` (config, default 4) is the number of processes expected
-- to share the account: with that many processes each in fallback, their
-- sum stays at the rate. More processes than `nodes` can exceed it while
-- Redis is down; fewer leave budget unused. The changes over never crowd the
-- provider: the fallback starts after the slots Redis had handed out (its
-- schedule ran as far ahead as its last answer said), and for `retry_ms`
-- after Redis answers again a process keeps to its own budget as well (the
-- others may still be on theirs until they try Redis again) and puts its
-- slot, not an earlier one, into Redis' schedule, so the shared schedule
-- resumes after the slots handed out locally. spec/62 kills Redis under
-- three processes at the cap and restarts it: zero throttled.
--
-- The sequence store falls back to `max(candidate, last + 1)` where `last`
-- is the last value it handed out for that stream (from Redis or locally),
-- and while Redis is back it passes `max(candidate, last + 1)` as the
-- candidate, so the values of one process never go down. Across
-- processes, the fallback relies on the candidates (each machine's wall
-- clock in milliseconds) being sane: two machines whose clocks differ can
-- hand out values out of order for one stream while Redis is down.
--
-- An outage is told once by each store (a ZEGO client's two stores: twice;
-- in nginx, by each worker), through `opts.log` (default: `ngx.log(ngx.WARN,
-- ...)` inside nginx, else standard error), naming host:port and the error
-- (never the password), and its end once, when Redis answers again. While
-- in fallback a store does not try Redis on every call: again after
-- `opts.retry_ms` (default 1000) milliseconds.
--
-- A connection object keeps its hiredis connection across calls: do not use
-- one on both sides of a fork (make it in the child, or `close` it first).
-- @module streamctl.store.redis

-- luacheck: globals ngx
local type, error, tostring, tonumber, pairs, setmetatable, getmetatable, rawget, require, pcall =
  type, error, tostring, tonumber, pairs, setmetatable, getmetatable, rawget, require, pcall
local floor, ceil, min = math.floor, math.ceil, math.min
local format, find, sub, byte, char, lower, match = string.format, string.find, string.sub, string.byte,
  string.char, string.lower, string.match
local concat = table.concat
local unpack = table.unpack or unpack -- luacheck: ignore 143

local validate = require "streamctl.validate"
local ratelimit = require "streamctl.ratelimit"
local sequence = require "streamctl.sequence"

local M = {}

--- What a nil bulk or nil array reply becomes in `conn:eval`'s results,
-- whichever backend answered.
M.null = setmetatable({}, { __tostring = function() return "streamctl.store.redis.null" end })

--- Milliseconds a store in fallback waits before it tries Redis again.
M.RETRY_MS = 1000

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

--- Closes the connection this object keeps outside nginx (the next `eval`
-- makes a new one). Inside nginx connections go back to nginx's pool after
-- each call.
function Conn:close()
  if self._hiredis then self._hiredis:close() end
  self._hiredis = nil
end

-- ---- Outages

local function default_log(msg)
  local ngx_ = rawget(_G, "ngx")
  if ngx_ and ngx_.log and ngx_.WARN then
    ngx_.log(ngx_.WARN, msg)
  else
    io.stderr:write(msg, "\n")
  end
end

local STORE_OPTIONS = {
  { name = "log", type = "function" },
  { name = "retry_ms", type = "integer", min = 1, max = 86400000 },
  { name = "monotonic", type = "function" },
}

-- Tracks one store's view of Redis: up, or down since an error and to be
-- tried again at retry_at. Tells each change once.
local function new_health(conn, what, fallback, opts)
  local log = opts.log or default_log
  local retry = (opts.retry_ms or M.RETRY_MS) / 1000
  local clock = opts.monotonic or require("streamctl.core").monotonic
  local h = { down = false, retry_at = 0 }

  function h.usable()
    return not h.down or clock() >= h.retry_at
  end

  function h.failed(err)
    h.retry_at = clock() + retry
    if not h.down then
      h.down = true
      log(format("streamctl: Redis at %s failed (%s); %s until it answers (tried again every %g ms)",
        conn:address(), tostring(err), fallback, retry * 1000))
    end
  end

  -- true when Redis was down until now
  function h.succeeded()
    if h.down then
      h.down = false
      log(format("streamctl: Redis at %s answers again; %s", conn:address(), what))
      return true
    end
    return false
  end

  return h
end

local function as_conn(value, fname)
  if getmetatable(value) == Conn then return value end
  local cfg, why = M.config(value)
  if not cfg then error("bad argument #1 to '" .. fname .. "' (" .. why .. ")", 3) end
  return M.connect(cfg)
end

-- ---- Rate limits

local RESERVE_TEXT = [[
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval, tau = tonumber(ARGV[1]), tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]))
if tat == nil or tat < now then tat = now end
local earliest = now + tonumber(ARGV[4])
if tat < earliest then tat = earliest end
local delay = tat - tau - now
if delay <= 0 then
  delay = 0
elseif ARGV[3] == '1' then
  return { delay, tat - now }
end
local new_tat = tat + interval
local px = math.ceil((new_tat - now) / 1000)
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', string.format('%.0f', px))
return { delay, new_tat - now }
]]

-- The longest interval (and burst window) in microseconds: a year. Keeps
-- every sum in the script below 2^53.
local MAX_US = 365 * 86400 * 1e6

-- 1/rate in whole microseconds, rounded up (a value a hair over an integer
-- through float error is that integer).
local function interval_us(rate)
  local x = 1e6 / rate
  local r = floor(x + 0.5)
  if r >= 1 and x - r <= x * 1e-12 and r - x <= x * 1e-12 then x = r else x = ceil(x) end
  if x < 1 then x = 1 end
  if x > MAX_US then x = MAX_US end
  return x
end

local reserve_script

--- A store for streamctl.ratelimit with `reserve` (see the module comment).
-- @param config_or_conn a connection object, or a config (table or URL) for a new one
-- @tparam[opt] table opts `log` (function(message)), `retry_ms` (default 1000),
--   `monotonic` (the fallback's and retry's clock, seconds; default streamctl.core's)
-- @return a store; its `reserve(key, rate, burst, only_if_free)` returns the
--   delay in seconds, from Redis or from the fallback; never nil. `store.conn`
--   is its connection object.
function M.ratelimit_store(config_or_conn, opts)
  local conn = as_conn(config_or_conn, "ratelimit_store")
  opts = validate.options_or_raise(STORE_OPTIONS, opts, "streamctl.store.redis.ratelimit_store",
    "ratelimit_store")
  reserve_script = reserve_script or M.script(RESERVE_TEXT)
  local nodes = conn.config.nodes
  local retry_s = (opts.retry_ms or M.RETRY_MS) / 1000
  local health = new_health(conn, "rate limits are shared through it again",
    format("rate limits fall back to rate / %d in this process", nodes), opts)
  local clock = opts.monotonic or require("streamctl.core").monotonic
  local fb_store = ratelimit.memory_store { clock = clock }
  local fallback = ratelimit.new { clock = clock, store = fb_store }
  local key_prefix = conn.config.prefix .. "rl:"
  local horizon = {}          -- per key: when this process's latest slot is due (clock seconds)
  local backlog = {}          -- per key, from Redis' last answer: how far ahead its schedule ran (s)
  local answered = {}         -- per key: when Redis last answered (clock seconds)
  local calls = 0
  local grace_until = -math.huge   -- until then, this process's own budget holds besides Redis'
  local store = { conn = conn }

  -- The delay from this process's own budget (rate / nodes). Just after
  -- Redis answered, it starts after the slots Redis had handed out by then
  -- (this process's, and the others' as far as Redis' last answer showed
  -- them: its schedule ran that far ahead), so they are not crowded.
  local function local_delay(key, rate, burst, only_if_free, now, shared_end)
    local local_rate, local_burst = rate / nodes, floor(burst / nodes)
    if local_burst < 1 then local_burst = 1 end
    local h = horizon[key]
    if shared_end and shared_end > now and (h == nil or shared_end > h) then h = shared_end end
    if h then
      local start = h + 1 / local_rate
      local tat = fb_store:get(key)
      if start > now and (tat == nil or tat < start) then fb_store:set(key, start, start - now) end
    end
    if only_if_free then
      local ok, delay = fallback:try(key, local_rate, local_burst)
      if ok then return 0 end
      return delay or 1 / local_rate, true
    end
    return fallback:reserve(key, local_rate, local_burst) or 1 / local_rate
  end

  local function note(key, now, delay)
    local at = now + delay
    local h = horizon[key]
    if h == nil or at > h then horizon[key] = at end
    return delay
  end

  function store:reserve(key, rate, burst, only_if_free) -- luacheck: ignore 212/self
    local now = clock()
    calls = calls + 1
    if calls % 1024 == 0 then -- (what is past matters no more: the tables stay bounded)
      for k, at in pairs(horizon) do if at < now then horizon[k] = nil end end
      for k, at in pairs(answered) do
        if at + backlog[k] < now then answered[k], backlog[k] = nil, nil end
      end
    end
    if health.usable() then
      -- Trying Redis again, or just back from an outage: the others may
      -- still be on their own budgets, so for retry_ms this process keeps to
      -- its own as well, and its slot (not earlier) goes into Redis'
      -- schedule, so the schedule resumes after the slots handed out here.
      local own
      if health.down or now < grace_until then
        local refused
        own, refused = local_delay(key, rate, burst, only_if_free, now)
        if refused then return own end
      end
      local t = interval_us(rate)
      local tau = (burst - 1) * t
      if tau > MAX_US then tau = MAX_US end
      local res, err, kind = conn:eval(reserve_script, { key_prefix .. key },
        { t, tau, only_if_free and 1 or 0, own and min(ceil(own * 1e6), MAX_US) or 0 })
      local delay = type(res) == "table" and tonumber(res[1])
      local ahead = type(res) == "table" and tonumber(res[2])
      if delay and delay >= 0 and ahead then
        delay = delay / 1e6
        backlog[key], answered[key] = ahead / 1e6, now
        if health.succeeded() then grace_until = now + retry_s end
        if own and own > delay then delay = own end
        if only_if_free and delay > 0 then return delay end
        return note(key, now, delay)
      end
      if kind ~= "phase" then health.failed(err or ("unexpected answer " .. tostring(res))) end
      if own then return note(key, now, own) end -- (already taken from this process's budget)
    end
    -- (the first time after Redis answered: after its schedule as last seen,
    -- which the others kept extending since, as far as a second of it)
    local shared_end
    local at = answered[key]
    if at then
      shared_end = (now - at <= 1 and now or at) + backlog[key]
      answered[key], backlog[key] = nil, nil
    end
    local d, refused = local_delay(key, rate, burst, only_if_free, now, shared_end)
    if refused then return d end
    return note(key, now, d)
  end

  return store
end

-- ---- Sequences

local ADVANCE_TEXT = [[
local cur = tonumber(redis.call('GET', KEYS[1]))
local v = tonumber(ARGV[1])
if cur ~= nil and cur + 1 > v then v = cur + 1 end
local s = string.format('%.0f', v)
redis.call('SET', KEYS[1], s, 'PX', ARGV[2])
return s
]]

local GET_TEXT = "return redis.call('GET', KEYS[1])"

local advance_script, get_script

local function is_sequence(v)
  return v ~= nil and v >= 0 and v <= sequence.MAX and v == floor(v)
end

--- A store for streamctl.sequence (`advance`, `get`, `prune`; see the
-- module comment), its keys `config.prefix .. "seq:" .. prefix .. stream ID`.
-- @param config_or_conn a connection object, or a config (table or URL) for a new one
-- @tparam string prefix e.g. "zego:1234567890:"
-- @tparam[opt] table opts as for `ratelimit_store`
-- @return a store (`store.conn` is its connection object)
function M.sequence_store(config_or_conn, prefix, opts)
  local conn = as_conn(config_or_conn, "sequence_store")
  if type(prefix) ~= "string" then
    error("bad argument #2 to 'sequence_store' (prefix must be a string, got " .. type(prefix) .. ")", 2)
  end
  opts = validate.options_or_raise(STORE_OPTIONS, opts, "streamctl.store.redis.sequence_store", "sequence_store")
  advance_script = advance_script or M.script(ADVANCE_TEXT)
  get_script = get_script or M.script(GET_TEXT)
  local health = new_health(conn, "ZEGO Sequences are shared through it again",
    "ZEGO Sequences fall back to this process's own (still increasing)", opts)
  local key_prefix = conn.config.prefix .. "seq:" .. prefix
  local keep_ms = sequence.KEEP_MS
  local last = {} -- the last value handed out per stream, from Redis or locally
  local store = { conn = conn }

  -- max(candidate, last + 1): what this process may hand out for key now.
  local function at_least(key, candidate)
    local l = last[key]
    if l and l + 1 > candidate then return l + 1 end
    return candidate
  end

  --- max(candidate, current + 1), recorded in Redis (or locally while it is down).
  function store:advance(key, candidate) -- luacheck: ignore 212/self
    if health.usable() then
      local c = at_least(key, candidate)
      local res, err, kind = conn:eval(advance_script, { key_prefix .. key }, { c, keep_ms })
      local v = tonumber(res)
      if is_sequence(v) and v >= c then
        health.succeeded()
        local l = last[key] -- (another request may have moved it meanwhile, inside nginx)
        if l == nil or v > l then last[key] = v end
        return v
      end
      if kind ~= "phase" then health.failed(err or ("unexpected answer " .. tostring(res))) end
    end
    local c = at_least(key, candidate) -- again: the eval may have yielded
    last[key] = c
    return c
  end

  --- The last value handed out for key (Redis', or this store's when larger), or nil.
  function store:get(key) -- luacheck: ignore 212/self
    local l = last[key]
    if health.usable() then
      local res, err, kind = conn:eval(get_script, { key_prefix .. key }, {})
      if res ~= nil then
        health.succeeded()
        local v = tonumber(res)
        if is_sequence(v) and (l == nil or v > l) then return v end
        return l
      end
      if kind ~= "phase" then health.failed(err) end
    end
    return l
  end

  --- Forgets this store's own record of streams whose last value is below
  -- `below` (Redis expires its keys by itself). Returns how many.
  function store:prune(below) -- luacheck: ignore 212/self
    local n = sequence.prune_below(last, below, 3) -- (not a tail call: the error names prune's caller)
    return n
  end

  return store
end

return M
