--- The rate-limit store in Redis (`ratelimit_store`): one budget for every
-- process that uses the same Redis, its script, the loss rules and the
-- fallback while Redis is away. streamctl.store.redis, which users require,
-- says what it does and re-exports it.
-- @module streamctl.store.redisrate

local type, tostring, tonumber, pairs, require, setmetatable = type, tostring, tonumber, pairs, require, setmetatable
local floor, ceil, min, format = math.floor, math.ceil, math.min, string.format

local ratelimit = require "streamctl.engine.ratelimit"
local room = require "streamctl.engine.room"
local sequence = require "streamctl.engine.sequence"
local redisconn = require "streamctl.store.redisconn"
local sequence_store = require "streamctl.store.redisseq"
local samples = require "streamctl.base.samples"
local jitter = require "streamctl.base.jitter"
local shared = require "streamctl.store.redisstore"
local default_log, new_health, store_setup = shared.default_log, shared.new_health, shared.store_setup
local tagged, split_key = shared.tagged, shared.split_key

local M = {}

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

-- The rate-limit scripts Redis runs (streamctl.store.redisrate_script).
local RESERVE_TEXT = require("streamctl.store.redisrate_script").reserve
local THROTTLED_TEXT = require("streamctl.store.redisrate_script").throttled

-- The widest a schedule's interval gets: the largest margin, the least room.
local WIDEST = (1 + MARGIN_CEILING) / room.FLOOR

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

-- Says, once per repair (the script wrote the safe values back), the
-- values of `hash` that broke their rule ("field=value ..."), read from
-- the script's answer `text`.
local function say_repaired(s, hash, text)
  if type(text) ~= "string" or text == "" then return end
  s.log(format("streamctl: Redis at %s held values that cannot be right in %s: %s; each was replaced by its "
    .. "safe value (a room: the least, growing back by itself; a schedule: started afresh after the loss "
    .. "pause; a margin, a tally or a flag: dropped)", s.conn:address(), hash, text))
end

local reserve_script, throttled_script

-- Where a store tells of lost state: once per loss and budget, by the
-- process that found it or that had seen the budget before. `known`: tag
-- -> born, as last seen (a budget this process knew is never taken for a
-- new one: see RESERVE_TEXT).
local function new_losses(conn, log, known)
  return function(tag, born, why, fresh, pause)
    local before = known[tag]
    known[tag] = born
    if before == born or why == "unreadable" then return end -- (a value that cannot be right: said by say_repaired)
    if before == nil and (not fresh or why == "missing" or why == "new") then return end -- (a first use looks the same)
    log(format("streamctl: Redis at %s lost the shared rate-limit schedule of %s: %s; nothing is sent on it "
      .. "for %g s (the last second may have held a full cap), then it starts afresh", conn:address(), tag,
      LOSS_REASONS[why] or ("a reason this version does not know ('" .. tostring(why):sub(1, 40) .. "')"), pause))
  end
end

-- The rate-limit store's methods and steps. A store's state (one table,
-- its fields named where ratelimit_store makes it) is per process: what
-- Redis last said, and this process's own budget for the fallback.
local RateStore = {}
RateStore.__index = RateStore

--- A store for streamctl.engine.ratelimit with `reserve` (see streamctl.store.redis).
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
  reserve_script = reserve_script or redisconn.script(RESERVE_TEXT)
  throttled_script = throttled_script or redisconn.script(THROTTLED_TEXT)
  local cfg = conn.config
  local log = opts.log or default_log
  -- (streamctl.core looked up now, not when this module loaded: the
  -- simulation replaces its random_hex)
  local core = require "streamctl.core"
  local known = {}
  return setmetatable({
    conn = conn, cfg = cfg, log = log,
    retry_s = (opts.retry_ms or shared.RETRY_MS) / 1000,
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
    learned = {},         -- per key: the room (a fraction) as Redis last answered it
    own_room = {},        -- per key: { w, t0 } of the throttles this process met, in this clock
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
  local local_rate, local_burst = rate * s:room(key) / nodes, floor(burst / nodes)
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
-- it is back, on a slot FALLBACK_HORIZON ahead) waited out too. Through
-- Sentinel, a failover that leaves the old master up (SENTINEL FAILOVER)
-- leaves the others on its schedule, at the full rate, until they ask the
-- Sentinels again (sentinel_check_ms) and use the slots it had handed them
-- (MAX_HORIZON and one interval ahead): waited out as well.
local function loss_pause(s, interval)
  local others = others_back_within(s) + shared.FALLBACK_HORIZON
  local check_ms = s.cfg.sentinel_check_ms
  if check_ms and check_ms / 1000 + ratelimit.MAX_HORIZON + interval > others then
    others = check_ms / 1000 + ratelimit.MAX_HORIZON + interval
  end
  return ratelimit.loss_pause(interval, others)
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
    s.known[tag] and "1" or "", ppm, cap_us, MARGIN_HOLD * 1e6, MARGIN_CEILING }
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
  if type(res) == "table" then say_repaired(s, tagged(s.cfg.prefix, (split_key(key))) .. "rl", res[13]) end
  local delay = type(res) == "table" and tonumber(res[1])
  local ahead = type(res) == "table" and tonumber(res[3])
  -- (the interval the schedule was spaced at: this process's, or wider for
  -- another's margin, by at most MARGIN_CEILING, and for the room)
  local wide = type(res) == "table" and tonumber(res[11])
  if wide and wide >= t and wide <= t * WIDEST + 1 then t = wide end
  -- (nothing read back is trusted without bounds: a delay beyond what the
  -- script can give is a broken answer, never a reason to sleep)
  if not (delay and delay >= 0 and delay <= 2 * pause + 1e6 + tau + 2 * t and ahead) then
    return nil
  end
  local tag = (split_key(key))
  local committed = res[2] == 1
  delay = delay / 1e6
  local f = tonumber(res[12])
  if f and f >= room.FLOOR * 1e6 - 1 and f <= 1e6 then s.learned[key] = f / 1e6 end
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
  if value then sequence_store.say_bad(s, res[9]) end
  return delay, committed, next_delay, value
end

-- One reservation through Redis. Returns what read_answer gives, or
-- nothing (Redis failed: told) and the time the attempt took.
local function ask_redis(s, key, rate, burst, max_delay, now, own, seq, margin)
  local keys, args = script_args(s, key, rate, burst, max_delay, now, own, seq, margin)
  local setups = s.conn.setups
  local res, err = s.conn:eval(reserve_script, keys, args)
  -- (a plain round trip: not one that connected or loaded the script)
  if res ~= nil and s.conn.setups == setups then samples.push(s.rtt, s.clock() - now) end
  local delay, committed, next_delay, value = read_answer(s, res, key, rate, now, own, args[7], args[2], args[3],
    args[6])
  if delay then return delay, committed, next_delay, value end
  if not (err and err.reason == "phase") then
    s.health.failed(err and err.message or ("unexpected answer " .. (type(res) == "table" and tostring(res[1])
      or tostring(res))))
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
      own, committed, own_next = local_delay(s, key, rate, burst, min(max_delay, shared.FALLBACK_HORIZON), now)
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
  return note(s, key, now, local_delay(s, key, rate, burst, min(max_delay, shared.FALLBACK_HORIZON), now, shared_end))
end

--- How long (seconds) a budget of `rate` waits after a loss through this
-- store (its retry_ms and timeout_ms count: see `FALLBACK_HORIZON`);
-- 1.05 with the defaults at any rate of 4 a second or more.
function RateStore:loss_pause(rate)
  return ceil(loss_pause(self, interval_us(rate) / 1e6) * 1e6) / 1e6
end

--- The room of `key` (streamctl.engine.ratelimit's store contract): Redis'
-- as it last answered, or this process's own when lower (the throttles it
-- met while Redis was away, or since its last answer).
function RateStore:room(key)
  local own = self.own_room[key]
  local f = own and room.at(own[1], own[2], self.clock()) or 1
  local shared_room = self.health.usable() and self.learned[key]
  if shared_room and shared_room < f then f = shared_room end
  return f
end

--- A throttle of an attempt on `key` sent `age` seconds ago (`share`: of
-- the last second's answers, those not throttled): the room cut in Redis,
-- for every process on the budget (and in this process's own
-- room, which its fallback paces by). True when Redis cut it; false when an
-- earlier cut answered the same overshoot; nil, err when Redis failed (the
-- cut holds in this process).
function RateStore:throttled(key, age, share, after, cap)
  local now = self.clock()
  local own = self.own_room[key]
  local w, t0 = room.cut(own and own[1], own and own[2], now, now - age, share)
  if w then self.own_room[key] = { w, t0 } end
  if not self.health.usable() then return nil, "Redis is not answering: the room is cut in this process only" end
  local tag, action = split_key(key)
  local res, err = self.conn:eval(throttled_script, { tagged(self.cfg.prefix, tag) .. "rl" },
    { action, ceil(age * 1e6), format("%.6f", share or 1), ceil((after or 0) * 1e6), format("%.6f", cap or 1e9) })
  if type(res) == "table" then say_repaired(self, tagged(self.cfg.prefix, tag) .. "rl", res[3]) end
  local f = type(res) == "table" and tonumber(res[2])
  if not (f and f >= room.FLOOR * 1e6 - 1 and f <= 1e6) then
    local why = err and err.message or ("unexpected answer " .. tostring(type(res) == "table" and res[1] or res))
    if not (err and err.reason == "phase") then self.health.failed(why) end
    return nil, why
  end
  self.learned[key] = f / 1e6
  return res[1] == 1
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

return M
