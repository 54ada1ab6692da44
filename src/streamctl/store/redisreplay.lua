--- The callback replay store in Redis (`replay_store`): what an edge has
-- seen, shared by every worker on every edge that uses the same Redis, so a
-- callback replayed to another edge behind the load balancer is refused
-- there too. streamctl.store.redis, which users require, re-exports it;
-- streamctl.edge.callbacks takes it as its `replay`.
--
-- A Redis that may have forgotten is taken as having forgotten. Beside the
-- callbacks' keys, one hash, `config.prefix .. "cb:@"` (no expiry), says
-- since when this Redis remembers every callback given to it (`since`, ms
-- of its clock), under which run id and replication id (`run`, `rid`) and
-- after how many evictions (`ev`). A restart (a new run id), a failover (a
-- new replication id: a replica promoted may lag behind the callbacks its
-- master took), an eviction, or the hash gone while a process had seen it
-- (a restart without its data, a FLUSHALL) moves `since` to the moment the
-- server's memory provably began: its start when since then it lost
-- nothing (streamctl.store.redismemory, every store's
-- rule), else the moment it was found. A callback whose window began
-- before `since` may have been seen and forgotten: it is refused
-- (ReplayStoreUnavailable: the provider delivers it again), for at most a
-- window's length after; the process that finds the loss says so once.
-- The hash missing on a server that lost nothing, and no process that
-- had seen it, is a first use: nothing forgotten, but nothing seen before
-- the server started either (a restart without its data looks the same to
-- a process that never asked before): `since` is the server's start, never
-- earlier, whoever asks.
-- @module streamctl.store.redisreplay

local type, error, tostring, tonumber, setmetatable = type, error, tostring, tonumber, setmetatable
local floor, ceil, format = math.floor, math.ceil, string.format

local redisconn = require "streamctl.store.redisconn"
local validate = require "streamctl.base.validate"
local memory = require "streamctl.store.redismemory"

local M = {}

-- KEYS[1]: the callback's key; KEYS[2]: the store's memory (a hash: run,
-- rid, since, ev, why). ARGV[1]: the window (ms, the key's expiry);
-- ARGV[2]: how long ago (ms) the callback's window began; ARGV[3]: '1'
-- when the asking process had seen the hash before. Answers { 1 new, 2
-- seen, 0 refused (its window began before `since`), since (ms), why,
-- 1 when this call found the loss, else 0 }.
local ADD_TEXT = memory.SERVER .. memory.SINCE .. [[
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local since, why, found = server_since(KEYS[2], ARGV[3] ~= '', now)
local fresh = found and 1 or 0
if now - tonumber(ARGV[2]) < since then return { 0, string.format('%.0f', since), why, fresh } end
local set = redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1])
return { set and 1 or 2, string.format('%.0f', since), why, fresh }
]]

local FORGOT, utc = memory.FORGOT, memory.utc

local add_script

local ReplayStore = {}
ReplayStore.__index = ReplayStore

local OPTIONS = { { name = "log", type = "function" } }

--- A replay store for streamctl.edge.callbacks (`replay`): `add(key, ttl,
-- now, begun)` remembers a callback's key `config.prefix .. "cb:" .. key`
-- in Redis for `ttl` seconds, `SET NX` with that expiry: true when it is
-- new, false when it was seen within its window. `begun` (default `ttl`):
-- how long ago (seconds) the callback's window began; one that began
-- before this Redis' memory did (see the module) is refused. A Redis that
-- cannot answer (down, slow, an error), or may have forgotten, is never
-- taken for "not seen": `add` answers nil, why and
-- "ReplayStoreUnavailable", and the callback is refused (the provider
-- delivers it again). Its keys need room: `maxmemory-policy noeviction`
-- (an evicted key is a callback that could be replayed: refused for a
-- window after, and said). Under Redis Cluster give a `prefix` with a hash
-- tag (`edge{cb}:`): a callback's key and the store's memory must share a
-- slot.
-- @param config_or_conn a connection object, or a config (table or URL) for a new one
-- @tparam[opt] table opts `log` (function(message); default: nginx's error log or standard error)
-- @return a store (`store.conn` is its connection object); or nil and an
--   InvalidParameter error object for a bad config or option
function M.replay_store(config_or_conn, opts)
  local o, bad = validate.construct(OPTIONS, opts, "streamctl.store.redis.replay_store", "replay_store", 2, 3)
  if not o then return nil, bad end
  local conn
  if redisconn.is_connection(config_or_conn) then
    conn = config_or_conn
  else
    local err
    conn, err = redisconn.connect(config_or_conn)
    if not conn then return nil, err end
  end
  add_script = add_script or redisconn.script(ADD_TEXT)
  return setmetatable({ conn = conn, prefix = conn.config.prefix .. "cb:", memory = conn.config.prefix .. "cb:@",
    log = o.log or redisconn.default_log, known = false }, ReplayStore)
end

function ReplayStore:add(key, ttl, _, begun)
  if type(key) ~= "string" then error("bad argument #1 to 'add' (key must be a string)", 2) end
  if type(ttl) ~= "number" or ttl < 1 then error("bad argument #2 to 'add' (ttl must be at least 1 s)", 2) end
  if begun ~= nil and (type(begun) ~= "number" or begun ~= begun or begun < 0) then
    error("bad argument #4 to 'add' (begun must be a number of seconds, 0 or more)", 2)
  end
  local res, err = self.conn:eval(add_script, { self.prefix .. key, self.memory },
    { floor(ttl * 1000), ceil((begun or ttl) * 1000), self.known and "1" or "" })
  local code, since = type(res) == "table" and res[1], type(res) == "table" and tonumber(res[2])
  if not ((code == 0 or code == 1 or code == 2) and since) then
    return nil, "Redis at " .. self.conn:address() .. ": " .. tostring(err and err.message
      or ("unexpected answer " .. tostring(type(res) == "table" and res[1] or res))), "ReplayStoreUnavailable"
  end
  self.known = true
  local why = FORGOT[res[3]] or "its memory began again"
  if res[4] == 1 and res[3] ~= "new" then
    self.log(format("streamctl: Redis at %s may have forgotten the callbacks it had seen: %s; a callback "
      .. "whose window began before %s (Redis' clock) is refused (ReplayStoreUnavailable: the provider delivers "
      .. "it again), for at most a window's length after", self.conn:address(), why, utc(since)))
  end
  if code == 0 then
    return nil, format("Redis at %s may have forgotten the callbacks seen before %s (%s): this one's window "
      .. "began before then", self.conn:address(), utc(since), why), "ReplayStoreUnavailable"
  end
  return code == 1
end

return M
