--- Connections to Redis for the Redis stores (streamctl.store.redis): the
-- configuration (a table or a redis:// URL, checked by
-- streamctl.store.redisconfig and re-exported here), scripts (text and
-- SHA-1), and `conn:eval`, which runs a script wherever it is called from.
--
-- Where it talks to Redis, chosen at every call as the HTTP transport is
-- (streamctl.transport.auto; the two sessions, and TLS with a rediss://
-- URL, are streamctl.store.redissession's): inside nginx, in a phase with cosockets
-- (streamctl.base.nginx.YIELDING: rewrite, access, content, ngx.timer callbacks,
-- ssl_*...), through
-- `nginx.redis` (Debian's lua-nginx-redis; OpenResty's `resty.redis`):
-- connect (from nginx's pool when it can), the greeting below on a new
-- connection only, the script, then `set_keepalive` (a cosocket cannot
-- outlive its request or timer). The pool is named by host, port, db, user
-- and password (by a number standing for the last two), so a pooled
-- connection is never used with another node, database or identity.
-- Elsewhere (plain Lua 5.4 and LuaJIT, nginx's init phase) through the
-- blocking hiredis module streamctl.redis: one connection per node per
-- connection object, made on first use and made again after an I/O error
-- (in nginx's init phase all are closed after each call, so no worker
-- inherits one). In the other nginx phases (init_worker, log, filters...)
-- there is no way to reach Redis without blocking the worker: `eval`
-- answers `nil, err, "phase"` there.
--
-- The greeting on a new connection: AUTH (with a password; `AUTH user
-- password` with a Redis 6 ACL user), SELECT (with a db other than 0), and
-- INFO memory, whose maxmemory_policy is kept in `conn.maxmemory_policy`
-- and, when it lets Redis evict keys, told once per policy through the
-- connection's `log` (an evicted key is state streamctl has lost; see
-- EVICTION_WARNING). A server that refuses INFO (renamed on managed Redis)
-- is not checked.
--
-- Round trips per call: one (EVALSHA of a script); two when Redis does not
-- know the script yet (NOSCRIPT: then EVAL, which also loads it, and EVALSHA
-- again from the next call on); plus, on a new connection, the greeting (one
-- to three); plus, in a Redis Cluster, the redirection below.
--
-- Redis Cluster (and proxies that answer as one): a call's keys must share
-- one hash tag (`{...}`: the stores put the account in it), so one node
-- holds them all; `MOVED` is followed and remembered per hash tag, `ASK`
-- followed once, one redirection per call (streamctl.store.rediscluster). A
-- cluster has database 0 only. Through Sentinel (a redis+sentinel:// URL), a
-- call goes to the master the Sentinels name, checked and followed across a
-- failover as streamctl.store.redissentinel says.
--
-- A connection object keeps its hiredis connections across calls: do not use
-- one on both sides of a fork (make it in the child, or `close` it first).
-- @module streamctl.store.redisconn

-- luacheck: globals ngx
local type, error, tostring, pairs, setmetatable, getmetatable, rawget, require, pcall =
  type, error, tostring, pairs, setmetatable, getmetatable, rawget, require, pcall
local floor = math.floor
local format, find, sub, byte, match = string.format, string.find, string.sub, string.byte, string.match
local concat = table.concat

local validate = require "streamctl.base.validate"
local errors = require "streamctl.base.errors"
local nginx = require "streamctl.base.nginx"
local redisconfig = require "streamctl.store.redisconfig"
local rediscluster = require "streamctl.store.rediscluster"
local sentinel = require "streamctl.store.redissentinel"
local sessions = require "streamctl.store.redissession"

local M = {}

--- What a nil bulk or nil array reply becomes in `conn:eval`'s results,
-- whichever backend answered (streamctl.store.redissession.null).
M.null = sessions.null

--- How many hash tags a connection object remembers a cluster node for
-- (MOVED). Past it the memory starts again: the stores use one tag per
-- account, so only keys without a tag (each key its own tag) can fill it.
M.MAX_ROUTES = 1024

--- The warning told once per connection object and policy when Redis may
-- evict keys (host:port, policy). Every policy but noeviction evicts;
-- volatile-* ones only keys with an expiry, but every key the stores write
-- has one.
M.EVICTION_WARNING = "streamctl: Redis at %s has maxmemory-policy %s: it may evict streamctl's keys, "
  .. "which streamctl then treats as lost state (it slows down for a second each time); "
  .. "set maxmemory-policy noeviction, or give streamctl a Redis of its own with room"

--- Where warnings go unless a connection is given its own `log`
-- (streamctl.base.log: nginx's error log inside nginx, else standard error).
M.default_log = require("streamctl.base.log").warn

-- ---- Configuration (streamctl.store.redisconfig)

--- The fields of a Redis configuration, with their defaults; the largest
-- password and the longest user name accepted (bytes).
M.CONFIG = redisconfig.CONFIG
M.MAX_PASSWORD = redisconfig.MAX_PASSWORD
M.MAX_USER = redisconfig.MAX_USER

--- A configuration checked, from a table or a redis:// URL (streamctl.store.redisconfig.config).
M.config = redisconfig.config

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
    if v == floor(v) and v > -2 ^ 63 and v < 2 ^ 63 then return validate.decimal(v) end
    return format("%.17g", v)
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

local pool_id = redisconfig.login_id

local address = redisconfig.address

local Conn = {}
Conn.__index = Conn
function Conn.__tostring(c) return "streamctl.store.redis connection to " .. tostring(c.config) end

local CONNECT_OPTIONS = {
  { name = "log", type = "function" },
}

-- A node of this connection object (the configured one, or one a cluster
-- redirected to): host, port, addr, the nginx pool name, and (outside nginx)
-- its hiredis connection in `link`.
local function node_for(self, host, port, kind)
  local addr = address(host, port)
  local key = kind and kind .. " " .. addr or addr
  local node = self._nodes[key]
  if not node then
    node = { host = host, port = port, addr = addr, pool = "streamctl.redis:" .. addr .. self._pool_suffix }
    self._nodes[key] = node
  end
  return node
end

--- A connection object for `config` (see `config`). Makes no connection yet:
-- the first `eval` does, and each later one reuses or remakes it.
-- @param config a config, a table or a URL
-- @param[opt] opts `{ log = function(message) }`: where the eviction warning
--   goes (default `default_log`)
-- @return connection object with `eval`, `close`, `address`, `config` and
--   `maxmemory_policy` (the policy the last new connection's INFO showed; nil
--   until then, or when INFO is refused), `setups` (connections made and
--   scripts loaded so far: a call across one took more than one round
--   trip); or nil and an InvalidParameter
--   error for a bad config or option (opts that are not a table raise)
function M.connect(config, opts)
  local o, oerr = validate.construct(CONNECT_OPTIONS, opts, "streamctl.store.redis.connect", "connect", 2)
  if not o then return nil, oerr end
  local cfg, why = M.config(config)
  if not cfg then return nil, errors.invalid(nil, nil, why) end
  if not rawget(_G, "ngx") then
    -- outside nginx every command goes through the streamctl-redis rock: said now, not at the first command
    local ok, loaded = pcall(require, "streamctl.redis")
    if not ok then
      return nil, errors.invalid(nil, nil, sessions.NO_HIREDIS .. " (" .. tostring(loaded):match("^[^\n]*") .. ")")
    end
  end
  local tls, twhy = sessions.tls(cfg)
  if cfg.tls and not tls then return nil, errors.invalid(nil, nil, twhy) end
  local suffix = ":" .. cfg.db .. (cfg.password and ":" .. pool_id(cfg.user, cfg.password) or "")
    .. (tls and tls.pool or "")
  local self = setmetatable({ config = cfg, _log = o.log or M.default_log, _warned = {}, _pool_suffix = suffix,
                              _tls = tls, _nodes = {}, _routes = {}, _route_count = 0, setups = 0 }, Conn)
  if cfg.sentinels then -- (the master: asked of them at the first call, streamctl.store.redissentinel)
    self._sentinels = sentinel.nodes(self, cfg, node_for, pool_id)
  else
    self._home = node_for(self, cfg.host, cfg.port)
  end
  return self
end

--- "host:port" of the configured server (through Sentinel: the master's
-- name, and its address once known), for messages.
function Conn:address()
  if self._sentinels then return sentinel.address(self) end
  return self._home.addr
end

-- Keeps the policy a new connection's INFO showed; tells an evicting one
-- once per policy.
local function note_policy(self, node, policy)
  if not policy then return end
  self.maxmemory_policy = policy
  if policy == "noeviction" or self._warned[policy] then return end
  self._warned[policy] = true
  self._log(format(M.EVICTION_WARNING, node.addr, policy))
end

-- The greeting on a new connection, through send(argv) -> reply | nil, err,
-- kind: AUTH, SELECT, INFO memory. nil, or err, kind.
local function greet(self, node, send)
  local cfg = self.config
  if node.sentinel then return sentinel.greet(cfg, send) end
  if cfg.password then
    local r, err, kind = send(redisconfig.auth(cfg.user, cfg.password))
    if r == nil then return "AUTH: " .. tostring(err), kind end
  end
  if cfg.db ~= 0 then
    local r, err, kind = send { "SELECT", arg_string(cfg.db) }
    if r == nil then
      err = tostring(err)
      if find(err, "cluster mode", 1, true) then err = err .. " (a Redis Cluster has database 0 only: set db to 0)" end
      return "SELECT: " .. err, kind
    end
  end
  if node.verify then
    local why, vkind = sentinel.verify(node, send)
    if why then return why, vkind end
  end
  -- INFO, not CONFIG GET: managed Redis often renames or disables CONFIG.
  -- An error reply says nothing; an I/O failure is the connection's, told
  -- as the command would have told it (INFO is streamctl's own question).
  local info, err, kind = send { "INFO", "memory" }
  if info == nil and kind == "io" then return tostring(err), kind end
  if type(info) == "string" then note_policy(self, node, match(info, "maxmemory_policy:([%w%-]+)")) end
  return nil
end

-- The two ways to a node (streamctl.store.redissession), with this module's greeting.
local function hiredis_session(self, node, fn) return sessions.hiredis(self, node, fn, greet) end
local function ngx_session(self, node, fn) return sessions.cosocket(self, node, fn, greet) end

-- MOVED and ASK: a Redis Cluster's redirections, followed once
-- (streamctl.store.rediscluster).
local hash_tag = rediscluster.hash_tag
local follow = rediscluster.follower(node_for, function() return M.MAX_ROUTES end)

-- A failure of Redis as the library hands it on: the plumbing below (the C
-- module's and nginx.redis' answers, the sessions) speaks `nil, message,
-- kind`, as those clients do; this is where it becomes an error object.
local function redis_error(message, reason)
  return errors.new { code = "RedisError", kind = "store", reason = reason, message = message,
                      retryable = reason ~= "server" }
end

--- Runs a script: EVALSHA, and EVAL when Redis answers NOSCRIPT; on the
-- node a cluster says holds KEYS[1] (see the module comment).
-- @param script made by `script`
-- @tparam {string,...} keys the script's KEYS (in a cluster: one hash tag)
-- @tparam {string|number,...} args its ARGV (numbers sent as decimals)
-- @return the script's reply (nil replies as `null`; an error inside an
--   array as `{ false, message }`); or nil and an error object (code
--   "RedisError", kind "store") whose `reason` is "server" (Redis answered
--   an error, a second redirection included), "io" (unreachable, timeout,
--   connection lost) or "phase" (an nginx phase without cosockets). Never
--   raises for Redis.
function Conn:eval(script, keys, args)
  if getmetatable(script) ~= Script then
    error("bad argument #1 to 'eval' (a script made by streamctl.store.redis.script expected)", 2)
  end
  if type(keys) ~= "table" then error("bad argument #2 to 'eval' (keys must be an array of strings)", 2) end
  if args ~= nil and type(args) ~= "table" then error("bad argument #3 to 'eval' (args must be an array)", 2) end
  if script.sha == nil then return nil, redis_error("streamctl.redis (the C module) is not installed", "io") end
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
      self.setups = self.setups + 1
      argv[1], argv[2] = "EVAL", script.text
      res, err, kind = cmd(argv)
    end
    return res, err, kind
  end

  local how, why = nginx.io("reach Redis")
  if not how then return nil, redis_error(why, "phase") end
  local session = how == "cosocket" and ngx_session or hiredis_session
  local in_init = how == "blocking" and nginx.phase() == "init"
  local tag = keys[1] and hash_tag(keys[1])
  local node = tag and self._routes[tag] or self._home
  local res, err, kind
  if self._sentinels then
    res, err, kind = sentinel.call(self, session, run, node_for, M.null)
  else
    res, err, kind = session(self, node, run)
  end
  if res == nil and kind == "server" and rediscluster.redirection(err, node) then
    res, err, kind = follow(self, session, node, tag, err, run)
  elseif res == nil and kind == "io" and node ~= self._home then
    self._routes[tag] = false -- (the node may be gone: ask the configured one again)
  end
  if in_init then self:close() end -- (so no worker inherits a connection)
  if res == nil then
    return nil, redis_error(scrub(scrub(err, self.config.password), self.config.sentinel_password), kind)
  end
  return res
end


--- Whether `value` is a connection object made by `connect`.
function M.is_connection(value)
  return getmetatable(value) == Conn
end

--- Closes the connections this object keeps outside nginx, to every node
-- (the next `eval` makes new ones). Inside nginx connections go back to
-- nginx's pool after each call.
function Conn:close()
  for _, node in pairs(self._nodes) do
    if node.link then node.link:close() end
    node.link = nil
  end
end

return M
