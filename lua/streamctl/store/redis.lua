--- Stores in Redis: one rate-limit budget and one ZEGO Sequence per stream
-- for every process on every machine that uses the same Redis (issue 13).
--
--   local redis_store = require "streamctl.store.redis"
--   local conn = redis_store.connect "redis://:secret@10.0.0.5:6379/0"   -- or a table, see `config`
--   local limiter = ratelimit.new { store = redis_store.ratelimit_store(conn) }
--   local seq = sequence.new { store = redis_store.sequence_store(conn, "zego:1234567890:") }
--
-- Connections (configuration, URLs, scripts, where Redis is reached from and
-- with how many round trips) are streamctl.store.redisconn's; this module
-- re-exports its `config`, `connect`, `script` and `null`.
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
-- @module streamctl.store.redis

local type, error, tostring, tonumber, pairs, require =
  type, error, tostring, tonumber, pairs, require
local floor, ceil, min = math.floor, math.ceil, math.min
local format = string.format

local validate = require "streamctl.validate"
local ratelimit = require "streamctl.ratelimit"
local sequence = require "streamctl.sequence"
local redisconn = require "streamctl.store.redisconn"

local M = {}

M.null = redisconn.null
M.config = redisconn.config
M.connect = redisconn.connect
M.script = redisconn.script
M.CONFIG = redisconn.CONFIG
M.MAX_PASSWORD = redisconn.MAX_PASSWORD
M.POOL_IDLE_MS, M.POOL_SIZE = redisconn.POOL_IDLE_MS, redisconn.POOL_SIZE

--- Milliseconds a store in fallback waits before it tries Redis again.
M.RETRY_MS = 1000

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
  if redisconn.is_connection(value) then return value end
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
