--- Stores in an nginx shared dict (`lua_shared_dict`), shared by every worker
-- of one nginx: one rate-limit budget and one ZEGO Sequence per stream for the
-- whole server, not one per worker.
--
--   lua_shared_dict streamctl 10m;          # nginx.conf, http block
--
--   local client = streamctl.zego.new { shared_dict = "streamctl", ... }
--
-- A client's `shared_dict` option uses both stores below; they can also be
-- handed to `streamctl.ratelimit.new{ store = }` and
-- `streamctl.sequence.new{ store = }` directly.
--
-- Rate limits (`ratelimit_store`). The limiter's reservation is a read and a
-- write of one number (GCRA's theoretical arrival time). `ngx.shared` has no
-- compare-and-set and `incr` cannot express `max(tat, now) + T`, so the
-- store provides `atomically(key, fn)`: a per-key lock taken with the dict's
-- atomic `add` (a key that expires after `LOCK_TTL` seconds, so a worker that
-- dies holding it cannot stop the others for longer) and released with
-- `delete`. The work done under the lock is one `get` and one `set`; a worker
-- that finds the lock taken waits 1 ms (`ngx.sleep` where nginx can yield) or
-- spins (in `init_by_lua`, where only the master runs and nobody else holds
-- it). lua-resty-lock does the same, but is not packaged for Debian.
--
-- Sequences (`sequence_store`). `advance` needs no lock: `incr` is atomic.
-- `incr(key, 1, candidate - 1)` gives `current + 1`, or `candidate` when the
-- key is absent; when that is below the candidate a second `incr` adds the
-- difference to whatever is there by then, so the result is at least the
-- candidate and, like every `incr` result, above all earlier ones. Entries
-- live `sequence.KEEP_MS` after their last use (refreshed with `expire`), long
-- after ZEGO's 10-second window: make the dict large enough that its LRU
-- eviction never reaches a live entry (a few bytes over 100 per stream).
--
-- Keys: "rl:" .. the limiter's key, "lock:rl:" .. the limiter's key, and
-- "seq:" .. a prefix (the provider and AppId) .. the stream ID.
-- @module streamctl.store.shdict

-- luacheck: globals ngx
local type, error, tostring, pcall, rawget = type, error, tostring, pcall, rawget

local M = {}

--- How long a rate-limit lock may be held before it expires by itself, in
-- seconds. The work under it takes microseconds.
M.LOCK_TTL = 0.5

--- How long a waiter tries for the lock before it gives up, in seconds.
M.LOCK_WAIT = 2

-- Phases in which ngx.sleep can yield.
local YIELDING = { rewrite = true, access = true, content = true, timer = true, ssl_cert = true,
                   ssl_session_fetch = true, ssl_client_hello = true }

--- The shared dict `name`, or nil and the rule broken (for an option's message).
function M.open(name)
  if type(name) ~= "string" or name == "" then return nil, "must be the name of a lua_shared_dict" end
  local shared = rawget(_G, "ngx") and ngx.shared
  if not shared then
    return nil, "needs nginx with lua-nginx-module (a lua_shared_dict); outside nginx, leave it out"
  end
  local dict = shared[name]
  if not dict then
    return nil, "names no shared dict: nginx.conf needs 'lua_shared_dict " .. name .. " 10m;' in its http block"
  end
  return dict
end

local function check_dict(dict, fname)
  if type(dict) ~= "table" and type(dict) ~= "userdata" then
    error("bad argument #1 to '" .. fname .. "' (an ngx.shared dict expected, got " .. type(dict) .. ")", 3)
  end
end

-- Releases `lock`, then returns what pcall(fn) gave, or raises its error.
local function release(dict, lock, ok, ...)
  dict:delete(lock)
  if not ok then error((...), 0) end
  return ...
end

--- A store for streamctl.ratelimit (get, set, atomically) in `dict`.
-- @param dict an `ngx.shared` dict
function M.ratelimit_store(dict)
  check_dict(dict, "ratelimit_store")
  local monotonic = require("streamctl.core").monotonic
  local store = {}

  function store:get(key) -- luacheck: ignore 212/self
    local v, err = dict:get("rl:" .. key)
    if v == nil and err then return nil, "shared dict get: " .. tostring(err) end
    return v
  end

  function store:set(key, value, ttl) -- luacheck: ignore 212/self
    -- ngx.shared keeps expiry in milliseconds; never round a ttl down to 0 (no expiry).
    if ttl and ttl < 0.001 then ttl = 0.001 end
    local ok, err = dict:set("rl:" .. key, value, ttl or 0)
    if not ok then return nil, "shared dict set: " .. tostring(err) end
    return true
  end

  function store:atomically(key, fn) -- luacheck: ignore 212/self
    local lock = "lock:rl:" .. key
    local deadline
    while true do
      local ok, err = dict:add(lock, true, M.LOCK_TTL)
      if ok then return release(dict, lock, pcall(fn)) end
      if err ~= "exists" then return nil, "shared dict lock: " .. tostring(err) end
      local now = monotonic()
      deadline = deadline or now + M.LOCK_WAIT
      if now > deadline then
        return nil, "shared dict lock for '" .. key .. "' still held after " .. M.LOCK_WAIT .. " s"
      end
      if YIELDING[ngx.get_phase()] then ngx.sleep(0.001) end
    end
  end

  return store
end

--- A store for streamctl.sequence (advance, get) in `dict`, its keys under
-- `prefix` (e.g. "zego:1234567890:").
-- @param dict an `ngx.shared` dict
-- @tparam string prefix
function M.sequence_store(dict, prefix)
  check_dict(dict, "sequence_store")
  if type(prefix) ~= "string" then
    error("bad argument #2 to 'sequence_store' (prefix must be a string, got " .. type(prefix) .. ")", 2)
  end
  local ttl = require("streamctl.sequence").KEEP_MS / 1000
  local store = {}

  function store:advance(key, candidate) -- luacheck: ignore 212/self
    local k = "seq:" .. prefix .. key
    local v, err = dict:incr(k, 1, candidate - 1, ttl)
    if not v then return nil, "shared dict incr: " .. tostring(err) end
    if v < candidate then
      v, err = dict:incr(k, candidate - v)
      if not v then return nil, "shared dict incr: " .. tostring(err) end
    end
    dict:expire(k, ttl)
    return v
  end

  function store:get(key) -- luacheck: ignore 212/self
    return (dict:get("seq:" .. prefix .. key))
  end

  return store
end

return M
