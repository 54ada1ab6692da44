--- Where a client's options become store objects: the one module of the
-- core that names the stores (streamctl.store.redis, streamctl.store.shdict),
-- and only when an option asks for one, so a client that uses neither
-- loads neither (docs/architecture.md, "Layers").
--
-- The options it reads: `shared_dict` (an nginx lua_shared_dict's name or
-- the dict), `redis` (a config, a URL or a connection object) and
-- `rate_limit_store` (a store object, used as given).
-- @module streamctl.pipeline.stores

local require, pcall, error = require, pcall, error
local searchpath = package.searchpath

local M = {}

-- The Redis store is a rock of its own (streamctl-redis: it brings hiredis),
-- so a core installed alone answers the redis option with what to install.
local NO_REDIS = "needs the streamctl-redis rock, which is not installed (README \"Install\": apt-get install "
  .. "libhiredis-dev, then luarocks make rockspecs/streamctl-redis-scm-1.rockspec)"

local function redis()
  local ok, m = pcall(require, "streamctl.store.redis")
  if ok then return m end
  -- (installed but failing to load is another matter: its own error, raised)
  if not searchpath("streamctl.store.redis", package.path) then return nil, NO_REDIS end
  error(m, 0)
end
local function shdict() return require "streamctl.store.shdict" end

--- The `shared_dict` option's rule: the dict, or nil and why.
function M.check_shared_dict(v)
  return shdict().open(v)
end

--- The `redis` option's rule: a connection object as given, else the
-- config it parses to; or nil and why (an error object, or the rule when
-- the streamctl-redis rock is not installed).
function M.check_redis(v)
  local r, missing = redis()
  if not r then return nil, missing end
  if r.is_connection(v) then return v end
  return r.config(v)
end

--- The connection for a checked `redis` option: the object given (the
-- caller's to close: `own` false), or a new one (`own` true); or nil and
-- the error object.
function M.redis_connection(v)
  local r = redis()
  if r.is_connection(v) then return v, false end
  local conn, err = r.connect(v)
  if not conn then return nil, err end
  return conn, true
end

--- The rate-limit store of checked options `o` (`rate_limit_store`, else
-- one on the shared dict, else on `conn`, the client's Redis connection),
-- or nil when the budget is the client's own. `monotonic`: the clock.
function M.ratelimit(o, conn, monotonic)
  if o.rate_limit_store then return o.rate_limit_store end
  if o.shared_dict then return shdict().ratelimit_store(o.shared_dict, { clock = monotonic }) end
  if conn then return redis().ratelimit_store(conn, { monotonic = monotonic }) end
  return nil
end

--- The Sequence stores of checked options `o` for keys under `prefix`:
-- the one the generator uses (on the shared dict, else on Redis; nil: in
-- memory), and the Redis one (nil without `conn`), which a rate-limit
-- store on the same connection can fill in the slot's round trip.
function M.sequence(o, conn, prefix, monotonic)
  local on_redis = conn and redis().sequence_store(conn, prefix, { monotonic = monotonic }) or nil
  if o.shared_dict then return shdict().sequence_store(o.shared_dict, prefix), on_redis end
  return on_redis, on_redis
end

--- A credentials holder's shared state in `dict_or_name` under `name`
-- (the workers of one nginx renew once), or nil and why.
function M.credentials(dict_or_name, name)
  local s = shdict()
  local dict, why = s.open(dict_or_name)
  if not dict then return nil, why end
  return s.credentials_store(dict, name)
end

return M
