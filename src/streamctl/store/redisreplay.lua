--- The callback replay store in Redis (`replay_store`): what an edge has
-- seen, shared by every worker on every edge that uses the same Redis, so a
-- callback replayed to another edge behind the load balancer is refused
-- there too. streamctl.store.redis, which users require, re-exports it;
-- streamctl.edge.callbacks takes it as its `replay`.
-- @module streamctl.store.redisreplay

local type, error, tostring, setmetatable, floor = type, error, tostring, setmetatable, math.floor

local redisconn = require "streamctl.store.redisconn"

local M = {}

-- One key per callback: SET NX with its window as the expiry; "OK" when it
-- is new, nil when it was there.
local ADD_TEXT = "return redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1])"

local add_script

local ReplayStore = {}
ReplayStore.__index = ReplayStore

--- A replay store for streamctl.edge.callbacks (`replay`): `add(key, ttl)`
-- remembers a callback's key `config.prefix .. "cb:" .. key` in Redis for
-- `ttl` seconds, `SET NX` with that expiry: true when it is new, false when
-- it was seen within its window. A Redis that cannot answer (down, slow,
-- an error) is never taken for "not seen": `add` answers nil, why and
-- "ReplayStoreUnavailable", and the callback is refused (the provider
-- delivers it again). Its keys need room: `maxmemory-policy noeviction`
-- (an evicted key is a callback that could be replayed).
-- @param config_or_conn a connection object, or a config (table or URL) for a new one
-- @return a store (`store.conn` is its connection object); or nil and an
--   InvalidParameter error object for a bad config
function M.replay_store(config_or_conn)
  local conn
  if redisconn.is_connection(config_or_conn) then
    conn = config_or_conn
  else
    local err
    conn, err = redisconn.connect(config_or_conn)
    if not conn then return nil, err end
  end
  add_script = add_script or redisconn.script(ADD_TEXT)
  return setmetatable({ conn = conn, prefix = conn.config.prefix .. "cb:" }, ReplayStore)
end

function ReplayStore:add(key, ttl)
  if type(key) ~= "string" then error("bad argument #1 to 'add' (key must be a string)", 2) end
  if type(ttl) ~= "number" or ttl < 1 then error("bad argument #2 to 'add' (ttl must be at least 1 s)", 2) end
  local res, err = self.conn:eval(add_script, { self.prefix .. key }, { floor(ttl * 1000) })
  if res == nil then
    return nil, "Redis at " .. self.conn:address() .. ": " .. tostring(err and err.message), "ReplayStoreUnavailable"
  end
  return res ~= redisconn.null
end

return M
