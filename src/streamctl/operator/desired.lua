--- Where a desired state lives: a set of keys (the streams that must be
-- forbidden) and a few text values beside it (what a reconciler last
-- applied: streamctl.operator.reconcile's `state`), in one nginx's lua_shared_dict
-- or, for many edges that must agree, in Redis.
--
--   local desired = require "streamctl.operator.desired"
--   local s = desired.shdict(ngx.shared.streamctl_desired)         -- one nginx
--   local s = desired.redis("redis://10.0.0.5:6379/0")             -- every edge that names it
--   s:add { "aliyun|push.example.com|live|cam-1" }
--   s:has("aliyun|push.example.com|live|cam-1")  --> true
--   s:members()                                  --> { ... }
--   reconcile.zego(client, list, { state = s })  -- (get and set)
--
-- Every method returns its answer, or nil and why (a full dict, Redis that
-- does not answer): a failure is the caller's to say, never silent here. A
-- full dict refuses (safe_set) rather than evicting a listed stream. In
-- Redis, the set and the values share one hash tag (`{prefix}`), so a
-- cluster keeps them on one node. Misuse raises.
--
-- A list that may have forgotten is never read as "nobody is forbidden":
-- it holds a mark that it is whole (`made_whole`, by whoever loaded it:
-- from a seed file, or declared empty), and `has` and `members` answer nil,
-- why and "ListUnavailable" while the mark is missing (a dict nginx made
-- anew at its start: `nginx -s reload` keeps it; one emptied by hand) or,
-- in Redis, was made by another server run, replication or count of
-- evictions (a restart, even with persistence: what came after its last
-- save; a failover to a replica that lagged; an eviction) or is gone.
-- `whole()` says which.
--
-- A ban counts from when it is decided, not from when the provider applies
-- it: a forbid about to be sent marks its streams pending (`pending(keys,
-- id, ttl)`) and, once it ends and the list has followed it, takes its mark
-- away (`settled(keys, id)`); `has` answers true for a stream listed or
-- pending, so the door refuses it while the forbid waits out a throttle,
-- and never lets a later resume's answer race ahead of a forbid still under
-- way. A mark outlives a worker that died mid-call by at most its `ttl`.
-- `members` (what a reconciler enforces) is the list alone.
--
-- `lease(name, owner, ttl)`: one holder at a time for a job every edge
-- could run (the reconciler): true while `owner` holds it (taken, or
-- renewed for another `ttl` seconds), false and the holder otherwise.
-- @module streamctl.operator.desired

local type, ipairs, tostring, error, setmetatable = type, ipairs, tostring, error, setmetatable
local sub, format, lower, byte = string.sub, string.format, string.lower, string.byte

local M = {}

local MEMBER, VALUE, WHOLE, PENDING, LEASE = "m|", "v|", "w|", "p|", "l|"

-- Why a list may have forgotten, for `has` and `members`.
local function unavailable(why)
  return nil, "the forbid list may have forgotten streams: " .. why .. "; it answers again once made whole (from "
    .. "its seed, or declared empty)", "ListUnavailable"
end

-- A list of non-empty strings, or raise.
local function check_keys(keys, fname)
  if type(keys) ~= "table" then error("bad argument #1 to '" .. fname .. "' (a list of keys expected)", 3) end
  for i, k in ipairs(keys) do
    if type(k) ~= "string" or k == "" then
      error(format("bad argument #1 to '%s' (keys[%d] must be a non-empty string)", fname, i), 3)
    end
  end
end
local function check_key(key, fname)
  if type(key) ~= "string" or key == "" then error("bad argument #1 to '" .. fname .. "' (a key expected)", 3) end
end
local function check_mark(id, ttl, fname)
  if type(id) ~= "string" or id == "" then error("bad argument #2 to '" .. fname .. "' (an id expected)", 3) end
  if ttl ~= nil and (type(ttl) ~= "number" or ttl ~= ttl or ttl < 1 or ttl > 86400) then
    error("bad argument #3 to '" .. fname .. "' (ttl must be 1 to 86400 seconds)", 3)
  end
end

--- The key a forbid list (the edge's desired state) holds a stream by:
-- "aliyun|DOMAIN|APP|STREAM" (`stream` = `{ domain_name, app_name,
-- stream_name }`; the domain in lower case, without a trailing dot) or
-- "zego|STREAM_ID" (`stream` = the ID). The edge's
-- requests, its callbacks' reactions, its reconciler and the admission
-- decision (streamctl.edge.admission) all name streams so.
function M.key(provider, stream)
  if provider == "aliyun" then
    if type(stream) ~= "table" then
      error("bad argument #2 to 'key' (a table of domain_name, app_name, stream_name)", 2)
    end
    -- (a domain as DNS has it: case-insensitive, the root's dot implied; app and stream are exact)
    local domain = lower(tostring(stream.domain_name))
    if byte(domain, -1) == 46 then domain = sub(domain, 1, -2) end -- (".")
    return format("aliyun|%s|%s|%s", domain, tostring(stream.app_name), tostring(stream.stream_name))
  end
  if provider == "zego" then
    if type(stream) ~= "string" then error("bad argument #2 to 'key' (a stream ID)", 2) end
    return "zego|" .. stream
  end
  error("bad argument #1 to 'key' (\"aliyun\" or \"zego\")", 2)
end

-- ---- In a shared dict

local Dict = {}
Dict.__index = Dict

--- A desired state in `dict` (an ngx.shared dict): every worker of one nginx.
function M.shdict(dict)
  if type(dict) ~= "table" and type(dict) ~= "userdata" then
    error("bad argument #1 to 'shdict' (an ngx.shared dict expected)", 2)
  end
  return setmetatable({ dict = dict }, Dict)
end

--- Whether the list is whole: true; false, why (no mark: see the module);
-- or nil and why (the dict cannot be read).
function Dict:whole()
  local v, err = self.dict:get(WHOLE)
  if type(v) == "string" then return true end
  if v == nil and err ~= nil then return nil, "the shared dict cannot tell whether the list is whole: " .. err end
  if v ~= nil then return false, format("its mark of being whole holds a %s, not its text", type(v)) end
  return false, "its shared dict holds no mark of being whole (nginx started, not reloaded, or it was emptied)"
end

--- Marks the list whole (`how`: who made it so, e.g. "the seed /etc/forbids.json").
function Dict:made_whole(how)
  check_key(how, "made_whole")
  local ok, err = self.dict:safe_set(WHOLE, how)
  if not ok then return nil, "the shared dict cannot keep the list's mark: " .. tostring(err) .. " (make it larger)" end
  return true
end

function Dict:add(keys)
  check_keys(keys, "add")
  for _, k in ipairs(keys) do
    local ok, err = self.dict:safe_set(MEMBER .. k, true)
    if not ok then return nil, format("the shared dict cannot keep %s: %s (make it larger)", k, tostring(err)) end
  end
  return true
end

function Dict:remove(keys)
  check_keys(keys, "remove")
  for _, k in ipairs(keys) do self.dict:delete(MEMBER .. k) end
  return true
end

--- Marks `keys` pending for the forbid `id` (see the module), for at most
-- `ttl` seconds: a count per key (a dict has no set per key; every mark of
-- one key lasts as long as the latest).
function Dict:pending(keys, id, ttl)
  check_keys(keys, "pending")
  check_mark(id, ttl, "pending")
  for _, k in ipairs(keys) do
    local n, err = self.dict:incr(PENDING .. k, 1, 0, ttl)
    if not n then return nil, format("the shared dict cannot mark %s pending: %s", k, tostring(err)) end
    self.dict:expire(PENDING .. k, ttl)
  end
  return true
end

--- The lease `name` for `owner` (see the module), for `ttl` seconds.
function Dict:lease(name, owner, ttl)
  check_key(name, "lease")
  check_mark(owner, ttl, "lease")
  local k = LEASE .. name
  local ok, err = self.dict:add(k, owner, ttl)
  if ok then return true end
  if err ~= "exists" then return nil, "the shared dict cannot keep the lease " .. name .. ": " .. tostring(err) end
  local holder = self.dict:get(k)
  if holder == owner then
    self.dict:set(k, owner, ttl) -- (renewed; a holder it expired under between add and get takes it next round)
    return true
  end
  return false, holder
end

--- Takes away the marks `pending(keys, id)` made.
function Dict:settled(keys, id)
  check_keys(keys, "settled")
  check_mark(id, nil, "settled")
  for _, k in ipairs(keys) do
    local n = self.dict:incr(PENDING .. k, -1) -- (nil: expired already)
    if n and n <= 0 then self.dict:delete(PENDING .. k) end
  end
  return true
end

-- true, false; or nil and why: the dict's error, or a value that is not a
-- member's (true), with "corrupt".
function Dict:has(key)
  check_key(key, "has")
  local whole, why = self:whole()
  if whole == nil then return nil, why end
  if not whole then return unavailable(why) end
  local v, err = self.dict:get(MEMBER .. key)
  if v == nil then
    if err ~= nil then return nil, format("the shared dict cannot tell whether %s is listed: %s", key, err) end
    local n = self.dict:get(PENDING .. key)
    if n ~= nil and type(n) ~= "number" then
      return nil, format("the shared dict holds a %s for pending %s, not a count", type(n), key), "corrupt"
    end
    return n ~= nil and n > 0
  end
  if v ~= true then
    return nil, format("the shared dict holds a %s for member %s, not true", type(v), key), "corrupt"
  end
  return true
end

-- The members; or nil and why: a member whose value is not true (as `has`).
function Dict:members()
  local whole, why = self:whole()
  if whole == nil then return nil, why end
  if not whole then return unavailable(why) end
  local out = {}
  for _, k in ipairs(self.dict:get_keys(0)) do
    if sub(k, 1, #MEMBER) == MEMBER then
      local v = self.dict:get(k)
      if v ~= nil and v ~= true then
        return nil, format("the shared dict holds a %s for member %s, not true", type(v), sub(k, #MEMBER + 1)),
          "corrupt"
      end
      if v then out[#out + 1] = sub(k, #MEMBER + 1) end -- (nil: deleted since get_keys)
    end
  end
  return out
end

function Dict:get(key)
  check_key(key, "get")
  local v, err = self.dict:get(VALUE .. key)
  if v == nil and err ~= nil then return nil, format("the shared dict cannot read %s: %s", key, tostring(err)) end
  if v == nil then return nil end -- (absent)
  if type(v) ~= "string" then
    return nil, format("the shared dict holds a %s for %s, not its text", type(v), key), "corrupt"
  end
  return v
end

function Dict:set(key, text)
  check_key(key, "set")
  local ok, err = self.dict:safe_set(VALUE .. key, text)
  if not ok then return nil, "the shared dict cannot keep " .. key .. ": " .. tostring(err) end
  return true
end

-- ---- In Redis

local Redis = {}
Redis.__index = Redis

-- KEYS[2], the list's mark of being whole (a hash: the server's run id,
-- replication id and evictions when it was made, and who made it): why
-- the list may have forgotten since, or nil.
local WHOLE_WHY = [[
local function whole_why()
  local m = redis.call('HMGET', KEYS[2], 'run', 'rid', 'ev')
  if m[1] == false then return 'missing' end
  return server_changed(m[1], m[2], m[3])
end
]]

-- Why, by the script's word.
local FORGOT = {
  missing = "its Redis holds no mark of being whole (a first use, a restart without its data, a FLUSHALL)",
  restarted = "its Redis restarted or failed over since it was made whole (what came after its last save, or "
    .. "what its master took that a promoted replica lacked, may be gone)",
  evicted = "its Redis evicted keys since it was made whole (maxmemory-policy is not noeviction)",
}

local scripts -- made on first use (their SHA-1 needs streamctl.core or nginx)
local function script(name)
  if not scripts then
    local store = require "streamctl.store.redis"
    local head = require("streamctl.store.redismemory").SERVER .. WHOLE_WHY
    local function checked(body)
      return store.script(head .. "local why = whole_why() if why then return { 0, why } end " .. body)
    end
    scripts = {
      add = store.script("return redis.call('SADD', KEYS[1], unpack(ARGV))"),
      remove = store.script("return redis.call('SREM', KEYS[1], unpack(ARGV))"),
      -- (listed, or a forbid's mark not yet expired: KEYS[3], by TIME in ms)
      has = checked([[
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then return { 1, 1 } end
local t = redis.call('TIME')
return { 1, redis.call('ZCOUNT', KEYS[3], t[1] * 1000 + math.floor(t[2] / 1000), '+inf') > 0 and 1 or 0 }]]),
      -- (KEYS: the keys' marks; ARGV: the forbid's id, its ttl in ms)
      pending = store.script([[
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
for _, k in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', k, '-inf', now)
  redis.call('ZADD', k, now + tonumber(ARGV[2]), ARGV[1])
  if redis.call('PTTL', k) < tonumber(ARGV[2]) then redis.call('PEXPIRE', k, ARGV[2]) end
end
return 1]]),
      settled = store.script("for _, k in ipairs(KEYS) do redis.call('ZREM', k, ARGV[1]) end return 1"),
      -- (KEYS[1]: the lease; ARGV: the owner, the ttl in ms: { 1 } held, or { 0, the holder })
      lease = store.script([[
local v = redis.call('GET', KEYS[1])
if v == false or v == ARGV[1] then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return { 1 } end
return { 0, v }]]),
      members = checked("return { 1, redis.call('SMEMBERS', KEYS[1]) }"),
      whole = checked("return { 1 }"),
      made_whole = store.script(head .. [[
if redis.replicate_commands then redis.replicate_commands() end
redis.call('HSET', KEYS[2], 'run', server_run(redis.call('INFO', 'server')),
  'rid', server_replid(redis.call('INFO', 'replication')), 'ev', server_evicted() or 0, 'how', ARGV[1])
return 1]]),
      get = store.script("return redis.call('GET', KEYS[1])"),
      set = store.script("return redis.call('SET', KEYS[1], ARGV[1])"),
    }
  end
  return scripts[name]
end

--- A desired state in Redis, shared by every edge that names the same Redis
-- and prefix.
-- @param redis a URL, a config table or a connection (`streamctl.store.redis.connect`)
-- @tparam[opt] table opts `{ prefix = }` (default "streamctl:desired")
-- @return the store, or nil and an error (a bad URL or config)
function M.redis(redis, opts)
  local store = require "streamctl.store.redis"
  local conn, err = redis, nil
  if not store.is_connection(redis) then conn, err = store.connect(redis) end
  if not conn then return nil, err end
  local prefix = (opts and opts.prefix) or "streamctl:desired"
  if type(prefix) ~= "string" or prefix == "" or prefix:find("[{}]") then
    error("bad argument #2 to 'redis' (prefix must be a non-empty string without { or })", 2)
  end
  local tag = "{" .. prefix .. "}"
  return setmetatable({ conn = conn, set_key = tag .. ":set", whole_key = tag .. ":whole",
    value_prefix = tag .. ":v:", pending_prefix = tag .. ":p:", lease_prefix = tag .. ":l:" }, Redis)
end

-- Runs script `name` over `keys`, 500 a call so that none carries too
-- many: each chunk the script's arguments (on the set) or, with `marks`,
-- the keys of their pending marks (`args`: its arguments).
local function each_chunk(self, name, keys, marks, args)
  for i = 1, #keys, 500 do
    local chunk = {}
    for j = i, math.min(i + 499, #keys) do chunk[#chunk + 1] = (marks and self.pending_prefix or "") .. keys[j] end
    local res, err
    if marks then res, err = self.conn:eval(script(name), chunk, args)
    else res, err = self.conn:eval(script(name), { self.set_key }, chunk) end
    if res == nil then return nil, "Redis at " .. self.conn:address() .. ": " .. err.message end
  end
  return true
end

function Redis:add(keys)
  check_keys(keys, "add")
  return each_chunk(self, "add", keys)
end

function Redis:remove(keys)
  check_keys(keys, "remove")
  return each_chunk(self, "remove", keys)
end

--- Marks `keys` pending for the forbid `id` (see the module), for at most
-- `ttl` seconds: per key, a sorted set of the forbids under way, each by
-- when its mark lapses (Redis' clock).
function Redis:pending(keys, id, ttl)
  check_keys(keys, "pending")
  check_mark(id, ttl, "pending")
  return each_chunk(self, "pending", keys, true, { id, math.floor(ttl * 1000) })
end

--- The lease `name` for `owner` (see the module), for `ttl` seconds: in
-- the list's hash tag, by Redis' clock.
function Redis:lease(name, owner, ttl)
  check_key(name, "lease")
  check_mark(owner, ttl, "lease")
  local res, err = self.conn:eval(script("lease"), { self.lease_prefix .. name }, { owner, math.floor(ttl * 1000) })
  if res == nil then return nil, "Redis at " .. self.conn:address() .. ": " .. err.message end
  if type(res) ~= "table" or (res[1] ~= 1 and res[1] ~= 0) then
    return nil, format("Redis at %s answered a %s to lease, not the script's", self.conn:address(), type(res))
  end
  if res[1] == 1 then return true end
  return false, res[2]
end

--- Takes away the marks `pending(keys, id)` made.
function Redis:settled(keys, id)
  check_keys(keys, "settled")
  check_mark(id, nil, "settled")
  return each_chunk(self, "settled", keys, true, { id })
end

-- Runs a script that checks the mark first: its answer; nil, why (and
-- "ListUnavailable" when the list may have forgotten, "corrupt" for an
-- answer that is not the script's).
local function checked_eval(self, name, args, extra_key)
  local res, err = self.conn:eval(script(name), { self.set_key, self.whole_key, extra_key }, args)
  if res == nil then return nil, "Redis at " .. self.conn:address() .. ": " .. err.message end
  if type(res) ~= "table" or (res[1] ~= 0 and res[1] ~= 1) then
    return nil, format("Redis at %s answered a %s to %s, not the script's", self.conn:address(), type(res), name),
      "corrupt"
  end
  if res[1] == 0 then return false, FORGOT[res[2]] or tostring(res[2]) end
  return true, res[2]
end

--- Whether the list is whole: true; false and why (see the module); or
-- nil and why (Redis cannot answer).
function Redis:whole()
  return checked_eval(self, "whole", {})
end

--- Marks the list whole (`how`: who made it so), with this Redis' run id,
-- replication id and evictions.
function Redis:made_whole(how)
  check_key(how, "made_whole")
  local res, err = self.conn:eval(script("made_whole"), { self.set_key, self.whole_key }, { how })
  if res == nil then return nil, "Redis at " .. self.conn:address() .. ": " .. err.message end
  return true
end

function Redis:has(key)
  check_key(key, "has")
  local ok, res, code = checked_eval(self, "has", { key }, self.pending_prefix .. key)
  if ok == nil then return nil, res, code end
  if not ok then return unavailable(res) end
  if res ~= 0 and res ~= 1 then
    return nil, format("Redis at %s answered %s for whether %s is listed, not 0 or 1", self.conn:address(),
      type(res), key), "corrupt"
  end
  return res == 1
end

function Redis:members()
  local ok, res, code = checked_eval(self, "members", {})
  if ok == nil then return nil, res, code end
  if not ok then return unavailable(res) end
  if type(res) ~= "table" then
    return nil, format("Redis at %s answered a %s for the members, not a list", self.conn:address(), type(res)),
      "corrupt"
  end
  local out = {}
  for i, k in ipairs(res) do
    if type(k) ~= "string" then
      return nil, format("Redis at %s answered a %s as member %d, not a key", self.conn:address(), type(k), i),
        "corrupt"
    end
    out[i] = k
  end
  return out
end

function Redis:get(key)
  check_key(key, "get")
  local res, err = self.conn:eval(script("get"), { self.value_prefix .. key }, {})
  if res == nil then return nil, "Redis at " .. self.conn:address() .. ": " .. err.message end
  if res == false or res == require("streamctl.store.redis").null then return nil end -- (none: null)
  if type(res) ~= "string" then
    return nil, format("Redis at %s answered a %s for %s, not its text", self.conn:address(), type(res), key),
      "corrupt"
  end
  return res
end

function Redis:set(key, text)
  check_key(key, "set")
  if type(text) ~= "string" then error("bad argument #2 to 'set' (text expected)", 2) end
  local res, err = self.conn:eval(script("set"), { self.value_prefix .. key }, { text })
  if res == nil then return nil, "Redis at " .. self.conn:address() .. ": " .. err.message end
  return true
end

return M
