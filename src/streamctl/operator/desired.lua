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
-- @module streamctl.operator.desired

local type, ipairs, tostring, error, setmetatable = type, ipairs, tostring, error, setmetatable
local sub, format = string.sub, string.format

local M = {}

local MEMBER, VALUE = "m|", "v|"

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

--- The key a forbid list (the edge's desired state) holds a stream by:
-- "aliyun|DOMAIN|APP|STREAM" (`stream` = `{ domain_name, app_name,
-- stream_name }`) or "zego|STREAM_ID" (`stream` = the ID). The edge's
-- requests, its callbacks' reactions, its reconciler and the admission
-- decision (streamctl.edge.admission) all name streams so.
function M.key(provider, stream)
  if provider == "aliyun" then
    if type(stream) ~= "table" then
      error("bad argument #2 to 'key' (a table of domain_name, app_name, stream_name)", 2)
    end
    return format("aliyun|%s|%s|%s", tostring(stream.domain_name), tostring(stream.app_name),
      tostring(stream.stream_name))
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

-- true, false; or nil and why: the dict's error, or a value that is not a
-- member's (true), with "corrupt".
function Dict:has(key)
  check_key(key, "has")
  local v, err = self.dict:get(MEMBER .. key)
  if v == nil then
    if err ~= nil then return nil, format("the shared dict cannot tell whether %s is listed: %s", key, err) end
    return false
  end
  if v ~= true then
    return nil, format("the shared dict holds a %s for member %s, not true", type(v), key), "corrupt"
  end
  return true
end

-- The members; or nil and why: a member whose value is not true (as `has`).
function Dict:members()
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

local scripts -- made on first use (their SHA-1 needs streamctl.core or nginx)
local function script(name)
  if not scripts then
    local store = require "streamctl.store.redis"
    scripts = {
      add = store.script("return redis.call('SADD', KEYS[1], unpack(ARGV))"),
      remove = store.script("return redis.call('SREM', KEYS[1], unpack(ARGV))"),
      has = store.script("return redis.call('SISMEMBER', KEYS[1], ARGV[1])"),
      members = store.script("return redis.call('SMEMBERS', KEYS[1])"),
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
  return setmetatable({ conn = conn, set_key = tag .. ":set", value_prefix = tag .. ":v:" }, Redis)
end

-- Runs a script on the set (or a value's key), chunked so no call carries too many arguments.
local function each_chunk(self, name, keys)
  for i = 1, #keys, 500 do
    local chunk = {}
    for j = i, math.min(i + 499, #keys) do chunk[#chunk + 1] = keys[j] end
    local res, err = self.conn:eval(script(name), { self.set_key }, chunk)
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

function Redis:has(key)
  check_key(key, "has")
  local res, err = self.conn:eval(script("has"), { self.set_key }, { key })
  if res == nil then return nil, "Redis at " .. self.conn:address() .. ": " .. err.message end
  if res ~= 0 and res ~= 1 then
    return nil, format("Redis at %s answered %s for whether %s is listed, not 0 or 1", self.conn:address(),
      type(res), key), "corrupt"
  end
  return res == 1
end

function Redis:members()
  local res, err = self.conn:eval(script("members"), { self.set_key }, {})
  if res == nil then return nil, "Redis at " .. self.conn:address() .. ": " .. err.message end
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
