--- Stores in Redis: one rate-limit budget and one ZEGO Sequence per stream
-- for every process on every machine that uses the same Redis, which say
-- when Redis forgot them.
--
--   local redis_store = require "streamctl.store.redis"
--   local conn = redis_store.connect "redis://:secret@10.0.0.5:6379/0"   -- or a table, see `config`
--   local limiter = ratelimit.new { store = redis_store.ratelimit_store(conn) }
--   local seq = sequence.new { store = redis_store.sequence_store(conn, "zego:1234567890:") }
--
-- Connections (configuration, URLs, scripts, where Redis is reached from and
-- with how many round trips) are streamctl.store.redisconn's; this module
-- re-exports its `config`, `connect`, `is_connection`, `script` and `null`.
--
-- Keys. All of one account's keys share one hash tag, `{provider:account}`
-- (the limiter key up to its last ':', or a sequence store's prefix), so a
-- script touches one node of a cluster: `prefix .. "{aliyun:123}:rl"` (a
-- hash: `born`, `run`, `ts`, `why`, `new`, and per action `tat:<Action>` and
-- the largest margin asked with lately, `mg:<Action>` until `mu:<Action>`;
-- no expiry),
-- `...}:procs` (a sorted set of heartbeats) and `...}:seq:<stream>`.
--
-- Rate limits (`ratelimit_store`): a store for streamctl.engine.ratelimit with
-- `reserve(key, rate, burst, max_delay)`, so the limiter's reservation
-- happens in one script, atomically: the GCRA of streamctl.engine.ratelimit (tat,
-- T = 1/rate, tau = (burst - 1) * T) in integer microseconds of the Redis
-- server's clock (`TIME`), so machines whose clocks differ share one
-- schedule. T is 1/rate rounded up to a whole microsecond (never faster than
-- the rate). A slot is committed only within `max_delay`, and never more
-- than MAX_HORIZON (0.75 s) ahead, so the slots handed out are few whatever
-- happens. The answer also says when to ask again (`next`).
--
-- Lost state. The script starts an account's schedule afresh, LOSS_PAUSE
-- (1.05 s; streamctl.engine.ratelimit.loss_pause) from now, when it cannot prove it remembers the last second: the
-- hash is missing (a first use, FLUSHALL, eviction, a restart without its
-- data), its `run` is not the server's run id (a restart or failover onto
-- older data), TIME went back more than 100 ms, a schedule lies further
-- ahead than any process reserves, or the caller saw TIME run ahead of its
-- own clock (MAX_JUMP). Each process that had used the budget says so once.
-- A missing hash that no asking process knew starts at once when INFO shows
-- the server lost nothing since it could have held one (up longer than the
-- pause and a second, no eviction, flush, swap, DEBUG or change of role
-- ever: docs/redis.md "A budget's first use"); `why` is then `new`.
--
-- Sequences (`sequence_store`): a store for streamctl.engine.sequence whose values
-- follow the Redis server's clock: v = max(server ms, floor, every stream's
-- value + 1) for all of a call's streams in one script (`advance_all`), SET
-- with an expiry of sequence.KEEP_MS; a caller's own Sequence only when it
-- is above every stream's (`record_all`). A ZEGO call's Sequence can also
-- be taken with its slot, in the rate-limit script (`reserve_sequenced`).
-- Values stay below 2^53 (Redis' Lua numbers are doubles); one that cannot
-- be right is reset to the server's time, and said.
--
-- When Redis is unreachable, slow (timeout_ms) or answers an error, neither
-- store raises nor sends unlimited. The rate-limit store falls back to a
-- GCRA in this process (streamctl.engine.ratelimit.gcra on a table of its own, in
-- the monotonic clock) at `rate / nodes` with a burst of `floor(burst / nodes)` (at least
-- 1), where `nodes` is the config's (default 4, the number of processes
-- expected to share the account) or the processes Redis last counted (by
-- their heartbeats of the last ALIVE seconds), whichever is more: with that
-- many processes each in fallback, their sum stays at the rate. More
-- processes can exceed it while Redis is down; fewer leave budget unused. The
-- switches between the two never crowd the provider: the fallback starts
-- after the slots Redis had handed out (its
-- schedule ran as far ahead as its last answer said), and after Redis
-- answers again a process keeps to its own budget as well, until the others
-- (which may still be on theirs until they try Redis again) must be back,
-- and a second more (retry_ms + timeout_ms + its own interval + 1 s), and puts its
-- slot, not an earlier one, into Redis' schedule, so the shared schedule
-- resumes after the slots handed out locally. spec/62 kills Redis under
-- three processes at the cap and restarts it: zero throttled.
--
-- The sequence store falls back to `max(candidate, last + 1)` where `last`
-- is the last value it handed out for that stream (from Redis or locally),
-- and while Redis is back it passes `last + 1` as the floor, so the values
-- of one process never go down. Across processes, the fallback relies on the candidates (each machine's wall
-- clock in milliseconds) being sane: two machines whose clocks differ can
-- hand out values out of order for one stream while Redis is down.
--
-- An outage is told once by each store (a ZEGO client's two stores: twice;
-- in nginx, by each worker), through `opts.log` (default: `ngx.log(ngx.WARN,
-- ...)` inside nginx, else standard error), naming host:port and the error
-- (never the password), and its end once, when Redis answers again. While
-- in fallback a store does not try Redis on every call: again after
-- `opts.retry_ms` (default 500) milliseconds.
--
-- @module streamctl.store.redis

local type, error, tostring, tonumber, pairs, require, setmetatable =
  type, error, tostring, tonumber, pairs, require, setmetatable
local floor, ceil, min = math.floor, math.ceil, math.min
local format, match = string.format, string.match

local validate = require "streamctl.base.validate"
local errors = require "streamctl.base.errors"
local ratelimit = require "streamctl.engine.ratelimit"
local sequence = require "streamctl.engine.sequence"
local redisconn = require "streamctl.store.redisconn"
local samples = require "streamctl.base.samples"
local jitter = require "streamctl.base.jitter"

local M = {}

M.null = redisconn.null
M.config = redisconn.config
M.connect = redisconn.connect
M.is_connection = redisconn.is_connection
M.script = redisconn.script

--- Milliseconds a store in fallback waits before it tries Redis again.
-- (It bounds how long a process may stay on its own budget after Redis is
-- back, which the pause after a loss waits out: see `FALLBACK_HORIZON`.)
M.RETRY_MS = 500

--- How far ahead (seconds) a slot of a process's own budget is committed
-- (the fallback, and a process just back from it). A local refusal costs no
-- round trip, so this can be short: the slots a process still in fallback
-- holds when Redis answers again end within retry_ms + timeout_ms + this,
-- and a schedule Redis starts afresh waits that out
-- (streamctl.engine.ratelimit.loss_pause).
M.FALLBACK_HORIZON = 0.05

-- ---- Outages

local default_log = redisconn.default_log

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

-- A store's options checked, and its connection: the one given, or a new
-- one for a config (its eviction-policy warning told through the store's
-- log). Returns opts and the connection, or nil and an InvalidParameter
-- error object (a bad config or option: streamctl.base.errors' convention);
-- options that are not a table raise at the store's caller.
local function store_setup(config_or_conn, opts, fname)
  local o, err = validate.construct(STORE_OPTIONS, opts, "streamctl.store.redis." .. fname, fname,
    fname == "sequence_store" and 3 or 2, 4) -- (blamed on the store's caller: two calls up)
  if not o then return nil, err end
  if redisconn.is_connection(config_or_conn) then return o, config_or_conn end
  local cfg, why = M.config(config_or_conn)
  if not cfg then return nil, errors.invalid(nil, nil, why) end
  return o, M.connect(cfg, { log = o.log })
end

-- ---- Keys

-- All of one account's keys share one hash tag (the text in braces), so one
-- script may touch them all behind a cluster proxy or in Redis Cluster.
-- The tag is the limiter key up to its last ':' ("aliyun:<account>",
-- "zego:<AppId>"), or a sequence store's prefix without its trailing ':'.
local function tagged(prefix, tag)
  return prefix .. "{" .. tag .. "}:"
end

-- "provider:account:action" -> "provider:account", "action"
local function split_key(key)
  local tag, action = match(key, "^(.*):([^:]*)$")
  if not tag or tag == "" then return key, "" end
  return tag, action
end

-- ---- Rate limits

--- How long (seconds) nothing is sent on a budget after its state was lost
-- or first made: the limiter's (streamctl.engine.ratelimit.LOSS_PAUSE).
M.LOSS_PAUSE = ratelimit.LOSS_PAUSE

--- The longest horizon a slot is committed ahead: the limiter's
-- (streamctl.engine.ratelimit.MAX_HORIZON).
M.MAX_HORIZON = ratelimit.MAX_HORIZON

-- How far Redis' clock may run ahead of this machine's between two
-- answers (seconds) before the schedule is taken for lost.
local MAX_JUMP = 0.5

-- How long a process counts as sharing a budget after its last heartbeat
-- (seconds): the fallback divides the rate by the most processes seen.
local ALIVE = 10

-- Margins carried (streamctl.pipeline.pacing, "With a shared budget"): a caller's
-- margin, plus its longest Redis round trip of the last RTT_SAMPLES (it
-- learns its slot that late), spaces the whole schedule for MARGIN_HOLD
-- seconds after it last asked (a window and the horizon: its slots are
-- over by then), unless a larger one comes; never more than MARGIN_CEILING.
local RTT_SAMPLES = 64
M.MARGIN_HOLD = 2
local MARGIN_HOLD = M.MARGIN_HOLD
local MARGIN_CEILING = ratelimit.MARGIN_CEILING

-- The rate-limit script. KEYS[1]: the account's hash (born, run, ts, why,
-- and "tat:<action>" per action); KEYS[2]: the account's processes (a
-- sorted set of heartbeats); KEYS[3..]: the Sequence keys of a ZEGO call
-- (optional: their Sequence is taken only when the slot is committed).
-- ARGV: the action's field, interval and tau (us), max_delay (us, -1 for
-- none), earliest (us from now: the local slot after an outage), the loss
-- pause (us), this process's id ('' when no heartbeat is due), the
-- Sequences' floor and keep (ms), the heartbeat lifetime (us), and a reason
-- to start afresh the caller found ('jumped': TIME ran ahead of its own
-- clock), honoured unless the schedule is younger than the pause already.
--
-- The hash has no expiry (one per account: volatile-* eviction never
-- takes it, and an idle budget is not mistaken for a lost one). When the
-- script cannot prove it remembers the last second (the hash is missing,
-- it was written by another Redis run, TIME went back, or a schedule lies
-- further ahead than any process can reserve), it starts the schedule
-- afresh `pause` from now and says why.
local RESERVE_TEXT = [[
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local info = redis.call('INFO', 'server')
local run = string.match(info, 'run_id:(%w+)') or ''
local K = KEYS[1]
local interval, tau, maxd = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local pause = tonumber(ARGV[6])
local act = string.sub(ARGV[1], 5)
local h = redis.call('HMGET', K, 'born', 'run', 'ts', 'why', ARGV[1], 'new', 'mg:' .. act, 'mu:' .. act)
local born, ts, why, tat = tonumber(h[1]), tonumber(h[3]), h[4], tonumber(h[5])
local new, held, till = h[6], tonumber(h[7]), tonumber(h[8])
-- A missing hash no caller knew is a new budget when the server shows it
-- lost nothing that could have held one in the last pause: up longer than
-- that, never evicted a key, never flushed, swapped or replaced its data,
-- a master that was never anything else.
local function unlost()
  local up = tonumber(string.match(info, 'uptime_in_seconds:(%d+)'))
  if up == nil or up * 1000000 < pause + 1000000 then return false end
  if string.match(redis.call('INFO', 'stats'), 'evicted_keys:(%d+)') ~= '0' then return false end
  local rep = redis.call('INFO', 'replication')
  if string.match(rep, 'role:(%a+)') ~= 'master' or string.match(rep, 'second_repl_offset:(%-?%d+)') ~= '-1' then
    return false
  end
  local cs = redis.call('INFO', 'commandstats')
  for _, c in ipairs({ 'flushall', 'flushdb', 'swapdb', 'debug', 'replicaof', 'slaveof', 'failover' }) do
    if string.find(cs, 'cmdstat_' .. c .. ':', 1, true) then return false end
  end
  return true
end
local fresh = nil
if born == nil then fresh = (ARGV[12] == '' and unlost()) and 'new' or 'missing'
elseif h[2] ~= run then fresh = 'restarted'
elseif ts ~= nil and now < ts - 100000 then fresh = 'clock'
elseif born > now + 100000 or (tat ~= nil and tat > now + 2 * pause + tau + 2 * interval) then fresh = 'ahead'
elseif ARGV[11] ~= '' and born < now - pause then fresh = ARGV[11]
end
if fresh then
  redis.call('DEL', K)
  born, tat, why, new, held = now, nil, fresh, nil, nil
  redis.call('HSET', K, 'born', now, 'run', run, 'why', fresh, 'ts', now)
  if fresh == 'new' then new = '1' redis.call('HSET', K, 'new', '1') end
else
  redis.call('HSET', K, 'ts', now)
end
-- The schedule's spacing: at the largest margin a caller asked with in the
-- last HOLD (ARGV[13], ppm of the cap whose interval is ARGV[14]), this
-- caller's refreshing it when it is the largest; a caller that carries
-- none ('') is spaced at the held one over its own interval.
local m, base = tonumber(ARGV[13]), tonumber(ARGV[14])
local live = held ~= nil and till ~= nil and till >= now
if m ~= nil then
  if live and held > m then m = held
  else redis.call('HSET', K, 'mg:' .. act, m, 'mu:' .. act, now + tonumber(ARGV[15])) end
elseif live then m, base = held, interval end
if m ~= nil then
  local wide = math.ceil(base * (1000000 + m) / 1000000)
  if wide > interval then interval = wide end
end
if tat == nil or tat < now then tat = now end
local start = born + (new == '1' and 0 or pause) + tau
if tat < start then tat = start end
local earliest = now + tonumber(ARGV[5])
if tat < earliest then tat = earliest end
local delay = tat - tau - now
if delay < 0 then delay = 0 end
local nodes = 0
if ARGV[7] ~= '' then
  redis.call('ZADD', KEYS[2], now, ARGV[7])
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - tonumber(ARGV[10]))
  nodes = redis.call('ZCARD', KEYS[2])
end
if maxd >= 0 and delay > maxd then
  return { delay, 0, tat - now, born, why or '', fresh and 1 or 0, nodes, '', 0, now, interval }
end
local new_tat = tat + interval
redis.call('HSET', K, ARGV[1], string.format('%.0f', new_tat))
local seq, bad = '', 0
if #KEYS > 2 then
  local v = math.floor(now / 1000)
  local fl = tonumber(ARGV[8])
  if fl > v then v = fl end
  for i = 3, #KEYS do
    local cur = tonumber(redis.call('GET', KEYS[i]))
    if cur ~= nil and not (cur >= 0 and cur <= 9007199254740991) then cur, bad = nil, bad + 1 end
    if cur ~= nil and cur + 1 > v then v = cur + 1 end
  end
  seq = string.format('%.0f', v)
  for i = 3, #KEYS do redis.call('SET', KEYS[i], seq, 'PX', ARGV[9]) end
end
return { delay, 1, new_tat - now, born, why or '', fresh and 1 or 0, nodes, seq, bad, now, interval }
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

-- What each reason for a fresh schedule means, for the log.
local LOSS_REASONS = {
  missing = "its key is gone (FLUSHALL, eviction, or a Redis restarted without its data)",
  restarted = "Redis restarted or failed over (a new run id): its data may be older than the last second",
  clock = "Redis' clock went back",
  jumped = "Redis' clock jumped ahead of this machine's (by more than 0.5 s between two answers)",
  ahead = "it held a schedule further ahead than any process reserves (a clock that stepped back, "
    .. "a stale replica, a key written by hand)",
}

local reserve_script

-- Where a store tells of lost state: once per loss and budget, by the
-- process that found it or that had seen the budget before. `known`: tag
-- -> born, as last seen (a budget this process knew is never taken for a
-- new one: see RESERVE_TEXT).
local function new_losses(conn, log, known)
  return function(tag, born, why, fresh, pause)
    local before = known[tag]
    known[tag] = born
    if before == born then return end
    if before == nil and (not fresh or why == "missing" or why == "new") then return end -- (a first use looks the same)
    log(format("streamctl: Redis at %s lost the shared rate-limit schedule of %s: %s; nothing is sent on it "
      .. "for %g s (the last second may have held a full cap), then it starts afresh", conn:address(), tag,
      LOSS_REASONS[why] or tostring(why), pause))
  end
end

-- The rate-limit store's methods and steps. A store's state (one table,
-- its fields named where ratelimit_store makes it) is per process: what
-- Redis last said, and this process's own budget for the fallback.
local RateStore = {}
RateStore.__index = RateStore

--- A store for streamctl.engine.ratelimit with `reserve` (see the module comment).
-- @param config_or_conn a connection object, or a config (table or URL) for a new one
-- @tparam[opt] table opts `log` (function(message)), `retry_ms` (default 500),
--   `monotonic` (the fallback's and retry's clock, seconds; default streamctl.core's)
-- @return a store; its `reserve(key, rate, burst, max_delay)` returns the
--   delay in seconds and whether it committed, from Redis or from the
--   fallback; never nil. `store.conn` is its connection object. Or nil and
--   an InvalidParameter error object for a bad config or option.
function M.ratelimit_store(config_or_conn, opts)
  local conn
  opts, conn = store_setup(config_or_conn, opts, "ratelimit_store")
  if not opts then return nil, conn end
  reserve_script = reserve_script or M.script(RESERVE_TEXT)
  local cfg = conn.config
  local log = opts.log or default_log
  -- (streamctl.core looked up now, not when this module loaded: the
  -- simulation replaces its random_hex)
  local core = require "streamctl.core"
  local known = {}
  return setmetatable({
    conn = conn, cfg = cfg, log = log,
    retry_s = (opts.retry_ms or M.RETRY_MS) / 1000,
    health = new_health(conn, "rate limits are shared through it again",
      format("rate limits fall back to rate / %d (or the processes last seen, if more) in this process",
        cfg.nodes), opts),
    known = known,
    lost = new_losses(conn, log, known),
    carries_margin = true, -- (see streamctl.engine.ratelimit's store contract)
    rtt = samples.new(RTT_SAMPLES), -- the last evals' round trips (s)
    clock = opts.monotonic or core.monotonic,
    id = core.random_hex(8), -- this store's heartbeat name
    own_tat = {},         -- per key: the fallback's GCRA state (ratelimit.gcra), in this clock
    horizon = {},         -- per key: when this process's latest slot is due (clock seconds)
    backlog = {},         -- per key, from Redis' last answer: how far ahead its schedule ran (s)
    answered = {},        -- per key: when Redis last answered (clock seconds)
    seen_nodes = {},      -- per tag: how many processes Redis last counted
    beat_at = {},         -- per tag: when this process last sent a heartbeat
    server_at = {},       -- per tag: { Redis' TIME (us), this clock (s) } at its last answer
    jumped = {},          -- per tag: Redis' clock ran ahead of this one: start afresh
    calls = 0,
    grace_until = -math.huge, -- until then, this process's own budget holds besides Redis'
  }, RateStore)
end

-- The processes the budget is shared by, as far as anyone knows.
local function nodes_for(s, tag)
  local n = s.seen_nodes[tag]
  if n and n > s.cfg.nodes then return n end
  return s.cfg.nodes
end

-- The delay from this process's own budget (rate / nodes, the GCRA of
-- streamctl.engine.ratelimit on `own_tat`). Just after Redis answered, it starts
-- after the slots Redis had handed out by then (this process's, and the
-- others' as far as Redis' last answer showed them: its schedule ran that
-- far ahead), so they are not crowded.
local function local_delay(s, key, rate, burst, max_delay, now, shared_end)
  local nodes = nodes_for(s, (split_key(key)))
  local local_rate, local_burst = rate / nodes, floor(burst / nodes)
  if local_burst < 1 then local_burst = 1 end
  local interval = 1 / local_rate
  local h = s.horizon[key]
  if shared_end and shared_end > now and (h == nil or shared_end > h) then h = shared_end end
  if h then
    local start = h + interval
    local tat = s.own_tat[key]
    if start > now and (tat == nil or tat < start) then s.own_tat[key] = start end
  end
  -- (the clock read again: an eval may have taken up to timeout_ms since `now`)
  local delay, committed, next_delay, new_tat = ratelimit.gcra(s.own_tat[key], s.clock(), interval,
    (local_burst - 1) * interval, max_delay)
  if committed then s.own_tat[key] = new_tat end
  return delay, committed, next_delay
end

-- Records a committed slot as this process's latest for key.
local function note(s, key, now, delay, committed, next_delay)
  if committed then
    local at = now + delay
    local h = s.horizon[key]
    if h == nil or at > h then s.horizon[key] = at end
  end
  return delay, committed, next_delay
end

-- Every 1024 calls, forgets what is past (the tables stay bounded).
local function sweep(s, now)
  s.calls = s.calls + 1
  if s.calls % 1024 ~= 0 then return end
  for k, at in pairs(s.horizon) do if at < now then s.horizon[k] = nil end end
  for k, tat in pairs(s.own_tat) do if tat <= now then s.own_tat[k] = nil end end
  for k, at in pairs(s.answered) do
    if at + s.backlog[k] < now then s.answered[k], s.backlog[k] = nil, nil end
  end
end

-- How long (seconds) after Redis answers again every process in the
-- fallback has tried it again: retry_ms after its last failure, which may
-- have been an attempt of up to timeout_ms begun just before. (Processes
-- sharing a budget are taken to share both: docs/redis.md.)
local function others_back_within(s)
  return s.retry_s + s.cfg.timeout_ms / 1000
end

-- The pause after a loss (seconds) for a budget of `interval`: what every
-- process still on its own budget may send after Redis answers again (until
-- it is back, on a slot FALLBACK_HORIZON ahead) waited out too.
local function loss_pause(s, interval)
  return ratelimit.loss_pause(interval, others_back_within(s) + M.FALLBACK_HORIZON)
end

-- The script's KEYS and ARGV for one reservation (see RESERVE_TEXT).
local function script_args(s, key, rate, burst, max_delay, now, own, seq, margin)
  local tag, action = split_key(key)
  local base = tagged(s.cfg.prefix, tag)
  local keys = { base .. "rl", base .. "procs" }
  local beat = ""
  if not s.beat_at[tag] or now - s.beat_at[tag] >= 1 then beat = s.id end
  if seq then
    for i = 1, #seq.ids do keys[#keys + 1] = base .. "seq:" .. seq.ids[i] end
  end
  local t = interval_us(rate)
  local tau = (burst - 1) * t
  if tau > MAX_US then tau = MAX_US end
  -- The margin this process needs beside the others: its own, and how late
  -- it learns a slot (its longest Redis round trip of late).
  local ppm, cap_us = "", ""
  if margin then
    local m = margin + s.rtt.hi -- (0 before the first)
    if m > MARGIN_CEILING then m = MARGIN_CEILING end
    ppm, cap_us = ceil(m * 1e6), interval_us(rate * (1 + margin))
  end
  return keys, { "tat:" .. action, t, tau, floor(max_delay * 1e6),
    own and min(ceil(own * 1e6), MAX_US) or 0, ceil(loss_pause(s, t / 1e6) * 1e6), beat,
    seq and seq.floor or 0, sequence.KEEP_MS, ALIVE * 1e6, s.jumped[tag] and "jumped" or "",
    s.known[tag] and "1" or "", ppm, cap_us, MARGIN_HOLD * 1e6 }
end

-- A TIME that ran ahead of this machine's clock (a step forward, a
-- failover to a server whose clock is ahead) makes the slots handed out
-- before it look past: the next call starts the schedule afresh. (Backward
-- steps the script sees by itself.) (TIME is read somewhere within each
-- round trip: between the start of the last one and the end of this one,
-- this clock ran at least as far as Redis' did, however long either took;
-- from this call's start, a Redis that stalled, its answer still within
-- timeout_ms, would look like a jump)
local function watch_server_clock(s, tag, server_now, now)
  local before = s.server_at[tag]
  s.jumped[tag] = nil
  if server_now and before and (server_now - before[1]) / 1e6 - (s.clock() - before[2]) > MAX_JUMP then
    s.jumped[tag] = true
  end
  s.server_at[tag] = server_now and { server_now, now } or nil
end

-- Redis' answer to one reservation, read: delay, committed, when to ask
-- again, the Sequence (a string) when one was taken; nil when the answer
-- is broken. `t`, `tau`: the interval and tau sent (us); `own`: this
-- process's own delay, when it keeps to its budget too; `pause`: the loss
-- pause sent (us).
local function read_answer(s, res, key, rate, now, own, beat, t, tau, pause)
  local delay = type(res) == "table" and tonumber(res[1])
  local ahead = type(res) == "table" and tonumber(res[3])
  -- (the interval the schedule was spaced at: this process's, or wider for
  -- another's margin, by at most MARGIN_CEILING)
  local wide = type(res) == "table" and tonumber(res[11])
  if wide and wide >= t and wide <= t * (1 + MARGIN_CEILING) + 1 then t = wide end
  -- (nothing read back is trusted without bounds: a delay beyond what the
  -- script can give is a broken answer, never a reason to sleep)
  if not (delay and delay >= 0 and delay <= 2 * pause + 1e6 + tau + 2 * t and ahead) then
    return nil
  end
  local tag = (split_key(key))
  local committed = res[2] == 1
  delay = delay / 1e6
  s.backlog[key], s.answered[key] = ahead / 1e6, now
  if beat ~= "" then
    s.beat_at[tag] = now
    local n = tonumber(res[7])
    if n and n >= 1 then s.seen_nodes[tag] = n end
  end
  -- Back from an outage: the others are back only when they try Redis
  -- again (retry_ms after their last failure, which may have ended
  -- timeout_ms before this call began, at their next own slot), and what
  -- they sent on their own budgets until then is not in Redis' schedule:
  -- this process keeps to its own budget until all are back and a whole
  -- window (1 s) has passed since. (retry_ms alone let it run on Redis'
  -- schedule beside others still on theirs: spec/65's DEBUG SLEEP,
  -- throttled.)
  if s.health.succeeded() then
    s.grace_until = now + others_back_within(s) + nodes_for(s, tag) / rate + 1
  end
  s.lost(tag, tonumber(res[4]), res[5], res[6] == 1, pause / 1e6)
  watch_server_clock(s, tag, tonumber(res[10]), now)
  -- (own counts from before the round trip, the engine counts from its
  -- end: what is left of it)
  local left = own and own - (s.clock() - now)
  if left and left > delay then delay = left end
  -- When to ask again: the slot after this one; refused, the free slot
  -- plus a share of the processes' turns, so they do not all come back at
  -- once (each refusal is a round trip).
  local next_delay
  if committed then
    next_delay = (ahead - tau) / 1e6
  else
    next_delay = delay + jitter.unit() * (nodes_for(s, tag) - 1) * t / 1e6
  end
  if next_delay < delay then next_delay = delay end
  local value = committed and res[8] ~= "" and res[8] or nil
  if value and tonumber(res[9]) and tonumber(res[9]) > 0 then
    s.log(format("streamctl: Redis at %s held %d Sequence(s) for %s that cannot be right (not an integer "
      .. "in 0..2^53-1); they were reset to the server's time", s.conn:address(), res[9], tag))
  end
  return delay, committed, next_delay, value
end

-- One reservation through Redis. Returns what read_answer gives, or
-- nothing (Redis failed: told) and the time the attempt took.
local function ask_redis(s, key, rate, burst, max_delay, now, own, seq, margin)
  local keys, args = script_args(s, key, rate, burst, max_delay, now, own, seq, margin)
  local setups = s.conn.setups
  local res, err, kind = s.conn:eval(reserve_script, keys, args)
  -- (a plain round trip: not one that connected or loaded the script)
  if res ~= nil and s.conn.setups == setups then samples.push(s.rtt, s.clock() - now) end
  local delay, committed, next_delay, value = read_answer(s, res, key, rate, now, own, args[7], args[2], args[3],
    args[6])
  if delay then return delay, committed, next_delay, value end
  if kind ~= "phase" then
    s.health.failed(err or ("unexpected answer " .. (type(res) == "table" and tostring(res[1]) or tostring(res))))
  end
end

-- One reservation, through Redis when it can; `seq` (optional): the
-- Sequence keys and floor of a ZEGO call, taken in the same script when
-- the slot is committed. Returns delay, committed, when to ask again
-- (`next`, see streamctl.engine.ratelimit), and the Sequence (a string) when
-- Redis gave one.
local function reserve(s, key, rate, burst, max_delay, seq, margin)
  local now = s.clock()
  -- The slot handed back: whatever the caller's own horizon, the earliest
  -- free one within MAX_HORIZON is committed (a refusal is a round trip
  -- spent for nothing while processes compete), never one further (it could
  -- not be kept through a loss: see LOSS_PAUSE); 0 still means "only now".
  if max_delay == nil or max_delay > 0 then max_delay = M.MAX_HORIZON end
  sweep(s, now)
  if s.health.usable() then
    -- Trying Redis again, or just back from an outage: the others may
    -- still be on their own budgets, so for retry_ms this process keeps to
    -- its own as well, and its slot (not earlier) goes into Redis'
    -- schedule, so the schedule resumes after the slots handed out here.
    local own
    if s.health.down or now < s.grace_until then
      local committed, own_next
      own, committed, own_next = local_delay(s, key, rate, burst, min(max_delay, M.FALLBACK_HORIZON), now)
      if not committed then return own, false, own_next end
    end
    local delay, committed, next_delay, value = ask_redis(s, key, rate, burst, max_delay, now, own, seq, margin)
    if delay then return delay, committed, next_delay, value end
    -- The slot already taken from this process's budget, counted from now
    -- (the engine counts a delay from the answer, and a failed eval can
    -- take timeout_ms: sent that late, it would crowd the next one); one
    -- that passed meanwhile is given up for the next.
    local spent = s.clock() - now
    if own and own >= spent then return note(s, key, now + spent, own - spent, true) end
    now = now + spent
  end
  -- (the first time after Redis answered: after its schedule as last seen,
  -- which the others kept extending since, as far as a second of it)
  local shared_end
  local at = s.answered[key]
  if at then
    shared_end = (now - at <= 1 and now or at) + s.backlog[key]
    s.answered[key], s.backlog[key] = nil, nil
  end
  return note(s, key, now, local_delay(s, key, rate, burst, min(max_delay, M.FALLBACK_HORIZON), now, shared_end))
end

--- How long (seconds) a budget of `rate` waits after a loss through this
-- store (its retry_ms and timeout_ms count: see `FALLBACK_HORIZON`);
-- 1.05 with the defaults at any rate of 4 a second or more.
function RateStore:loss_pause(rate)
  return ceil(loss_pause(self, interval_us(rate) / 1e6) * 1e6) / 1e6
end

--- The store's reservation (see the module comment and streamctl.engine.ratelimit).
function RateStore:reserve(key, rate, burst, max_delay, margin)
  local delay, committed, next_delay = reserve(self, key, rate, burst, max_delay, nil, margin)
  return delay, committed, next_delay
end

--- A reservation and, when it is committed, the Sequence of a ZEGO call
-- on `ids` from `seq_store` (a sequence store on the same connection), in
-- one round trip. Returns the delay, whether it committed, when to ask
-- again, and the Sequence (a string) when one was taken; with none (the
-- slot not committed, or Redis unreachable) the caller takes it the
-- usual way.
function RateStore:reserve_sequenced(key, rate, burst, max_delay, seq_store, ids, margin)
  local delay, committed, next_delay, value = reserve(self, key, rate, burst, max_delay,
    { ids = ids, floor = seq_store:floor(ids) }, margin)
  if value then seq_store:took(ids, tonumber(value), true) end
  return delay, committed, next_delay, value
end

-- ---- Sequences

-- KEYS: one stream's or a call's Sequence keys. ARGV[1]: the floor (the
-- caller's candidate or this process's last + 1), ARGV[2]: keep (ms),
-- ARGV[3]: "record" for a caller's own Sequence (refused, and nothing
-- written, unless it is above every key's value), else "next".
-- v = max(server ms, floor, every key's value + 1), set on every key.
local ADVANCE_TEXT = [[
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local v = math.floor((tonumber(t[1]) * 1000000 + tonumber(t[2])) / 1000)
local fl = tonumber(ARGV[1])
local bad = 0
if ARGV[3] == 'record' then v = fl elseif fl > v then v = fl end
for i = 1, #KEYS do
  local cur = tonumber(redis.call('GET', KEYS[i]))
  if cur ~= nil and not (cur >= 0 and cur <= 9007199254740991) then cur, bad = nil, bad + 1 end
  if cur ~= nil and cur + 1 > v then
    if ARGV[3] == 'record' then return { 0, i, string.format('%.0f', cur), bad } end
    v = cur + 1
  end
end
local s = string.format('%.0f', v)
for i = 1, #KEYS do redis.call('SET', KEYS[i], s, 'PX', ARGV[2]) end
return { 1, s, '', bad }
]]

local GET_TEXT = "return redis.call('GET', KEYS[1])"

local advance_script, get_script

local function is_sequence(v)
  return v ~= nil and v >= 0 and v <= sequence.MAX and v == floor(v)
end

-- The sequence store's methods; its state: the connection, its health,
-- its keys' prefix, and `last`, the last value handed out per stream (from
-- Redis or locally).
local SeqStore = {}
SeqStore.__index = SeqStore

--- A store for streamctl.engine.sequence (`advance`, `advance_all`, `record_all`,
-- `get`, `prune`; see the module comment), its keys `config.prefix ..
-- "{" .. tag .. "}:seq:" .. stream ID`, where the tag is `prefix` without its
-- trailing ':' (the provider and AppId, the hash tag the rate-limit store
-- uses for the same account). Its values follow the Redis server's clock
-- (milliseconds), never this machine's: `own_clock` is true.
-- @param config_or_conn a connection object, or a config (table or URL) for a new one
-- @tparam string prefix e.g. "zego:1234567890:"
-- @tparam[opt] table opts as for `ratelimit_store`
-- @return a store (`store.conn` is its connection object); or nil and an
--   InvalidParameter error object for a bad config or option
function M.sequence_store(config_or_conn, prefix, opts)
  if type(prefix) ~= "string" then
    error("bad argument #2 to 'sequence_store' (prefix must be a string, got " .. type(prefix) .. ")", 2)
  end
  local conn
  opts, conn = store_setup(config_or_conn, opts, "sequence_store")
  if not opts then return nil, conn end
  advance_script = advance_script or M.script(ADVANCE_TEXT)
  get_script = get_script or M.script(GET_TEXT)
  return setmetatable({
    conn = conn, own_clock = true,
    log = opts.log or default_log,
    health = new_health(conn, "ZEGO Sequences are shared through it again",
      "ZEGO Sequences fall back to this process's own (still increasing)", opts),
    key_prefix = tagged(conn.config.prefix, (match(prefix, "^(.-):?$"))) .. "seq:",
    clock = opts.monotonic or require("streamctl.core").monotonic,
    last = {}, -- the last value handed out per stream, from Redis or locally
  }, SeqStore)
end

local function keys_for(s, ids)
  local keys = {}
  for i = 1, #ids do keys[i] = s.key_prefix .. ids[i] end
  return keys
end

-- max(candidate, last + 1) over ids: what this process may hand out now.
local function at_least(s, ids, candidate)
  for i = 1, #ids do
    local l = s.last[ids[i]]
    if l and l + 1 > candidate then candidate = l + 1 end
  end
  return candidate
end

local function say_bad_sequences(s, n)
  if n and n > 0 then
    s.log(format("streamctl: Redis at %s held %d Sequence(s) under %s that cannot be right (not an integer in "
      .. "0..2^53-1); they were reset to the server's time", s.conn:address(), n, s.key_prefix))
  end
end

-- One script call; returns the reply or nil (Redis unusable: told).
local function run(s, ids, floor_value, mode)
  if not s.health.usable() then return nil end
  local res, err, kind = s.conn:eval(advance_script, keys_for(s, ids), { floor_value, sequence.KEEP_MS, mode })
  if type(res) == "table" and (res[1] == 1 or res[1] == 0) then
    s.health.succeeded()
    say_bad_sequences(s, tonumber(res[4]))
    return res
  end
  if kind ~= "phase" then s.health.failed(err or ("unexpected answer " .. tostring(res))) end
  return nil
end

--- This process's floor for a call on ids: its last value + 1 (0: none).
function SeqStore:floor(ids)
  return at_least(self, ids, 0)
end

--- Records that `value` was taken for ids (by the rate-limit store's
-- reserve_sequenced: `from_redis` true).
function SeqStore:took(ids, value, from_redis)
  local last = self.last
  for i = 1, #ids do
    local l = last[ids[i]]
    if l == nil or value > l then last[ids[i]] = value end
  end
  -- (Redis gave this call's Sequence: it answers again, which this store,
  -- no longer asked while the rate-limit store takes the Sequences, would
  -- otherwise never say)
  if from_redis then self.health.succeeded() end
end

--- v = max(server ms, candidate floor, every id's value + 1) for all ids
-- at once, recorded in Redis (or, while it is down, locally from
-- `candidate`, this machine's clock).
function SeqStore:advance_all(ids, candidate)
  local t0 = self.clock()
  local res = run(self, ids, at_least(self, ids, 0), "next")
  local v = res and tonumber(res[2])
  if not is_sequence(v) then
    -- (the candidate is this machine's clock when the call began, and a
    -- failed eval can take timeout_ms, in which another process may send
    -- a later value for these streams: the clock as it is now. And
    -- at_least again: the eval may have yielded.)
    local spent = floor((self.clock() - t0) * 1000)
    if spent > 0 and candidate + spent <= sequence.MAX then candidate = candidate + spent end
    v = at_least(self, ids, candidate)
  end
  self:took(ids, v)
  return v
end

--- max(candidate, current + 1) for one stream (see advance_all).
function SeqStore:advance(key, candidate)
  return self:advance_all({ key }, candidate)
end

--- A caller's own Sequence for ids: recorded when it is above every id's
-- last value; else false, the id and its last value, nothing written.
function SeqStore:record_all(ids, value)
  for i = 1, #ids do
    local l = self.last[ids[i]]
    if l and l >= value then return false, ids[i], l end
  end
  local res = run(self, ids, value, "record")
  if res and res[1] == 0 then
    local i = tonumber(res[2])
    return false, ids[i], tonumber(res[3])
  end
  self:took(ids, value)
  return true
end

--- The last value handed out for key (Redis', or this store's when larger), or nil.
function SeqStore:get(key)
  local l = self.last[key]
  if self.health.usable() then
    local res, err, kind = self.conn:eval(get_script, { self.key_prefix .. key }, {})
    if res ~= nil then
      self.health.succeeded()
      local v = tonumber(res)
      if is_sequence(v) and (l == nil or v > l) then return v end
      return l
    end
    if kind ~= "phase" then self.health.failed(err) end
  end
  return l
end

--- Forgets this store's own record of streams whose last value is below
-- `below` (Redis expires its keys by itself). Returns how many.
function SeqStore:prune(below)
  local n = sequence.prune_below(self.last, below, 3) -- (not a tail call: the error names prune's caller)
  return n
end

return M
