--- Where a client's options become store objects: the one module of the
-- core that names the stores (streamctl.store.redis, streamctl.store.shdict),
-- and only when an option asks for one, so a client that uses neither
-- loads neither (docs/architecture.md, "Layers").
--
-- The options it reads: `shared_dict` (an nginx lua_shared_dict's name or
-- the dict), `redis` (a config, a URL or a connection object) and
-- `rate_limit_store` (a store object, used as given).
-- @module streamctl.pipeline.stores

local require = require

local M = {}

local function redis() return require "streamctl.store.redis" end
local function shdict() return require "streamctl.store.shdict" end

--- The `shared_dict` option's rule: the dict, or nil and why.
function M.check_shared_dict(v)
  return shdict().open(v)
end

--- The `redis` option's rule: a connection object as given, else the
-- config it parses to; or nil and why (an error object).
function M.check_redis(v)
  local r = redis()
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
