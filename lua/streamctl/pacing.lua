--- A client's pacing: the cap on each action, the limiter and its store, and
-- the slot reserved for each request (streamctl.runner's `pace`, `horizon`
-- and `window`). See docs/pacing.md.
--
-- `new(client, o)` takes the client (for its provider's rules, account and
-- clock) and its checked options (`rate_limits`, `rate_burst`,
-- `rate_margin`, `max_rate`, and the store: `rate_limit_store`,
-- `shared_dict` or the client's Redis connection).
-- @module streamctl.pacing

local ratelimit = require "streamctl.ratelimit"
local shdict = require "streamctl.store.shdict"
local log = require "streamctl.log"

local tostring, setmetatable = tostring, setmetatable
local min, floor, huge = math.min, math.floor, math.huge
local format = string.format

local M = {}

--- The fraction by which pacing stays under every cap (docs/pacing.md, "The
-- margin"): with 5%, any N + 1 consecutive requests to an
-- action capped at N per second span at least 1.05 s, so up to 50 ms of
-- scheduling and network jitter cannot put N + 1 of them into one second,
-- the strictest way a provider can count.
M.RATE_MARGIN = 0.05

--- How many slots of one action a client reserves ahead at most (see
-- streamctl.runner, "Pacing"): a horizon of this many intervals, and never
-- more than `MAX_HORIZON` seconds. Whatever happens to a shared store, the
-- slots already promised are this few.
M.HORIZON_SLOTS = 4
M.MAX_HORIZON = ratelimit.MAX_HORIZON

--- When a rate-limit store fails (an error, not a wait), the client paces
-- in its own process at the rate divided by this, and says so once: the
-- store's other users are unknown, so it keeps to the safe side.
M.FALLBACK_SHARE = 4

local Pacer = {}
Pacer.__index = Pacer

--- Makes a client's pacer (see above); `redis` is the client's connection.
function M.new(client, o, redis)
  local self = setmetatable({
    client = client, rules = client._rules, monotonic = client._monotonic,
    overrides = o.rate_limits, burst = o.rate_burst or 1, margin = o.rate_margin or M.RATE_MARGIN,
    max_rate = o.max_rate,
  }, Pacer)
  if o.rate_limits ~= false then
    -- shared: other clients (processes, workers, machines) may pace under the same keys
    self.shared = (o.rate_limit_store or o.shared_dict or redis) and true or false
    local store = o.rate_limit_store
      or (o.shared_dict and shdict.ratelimit_store(o.shared_dict, { clock = self.monotonic }))
      or (redis and require("streamctl.store.redis").ratelimit_store(redis, { monotonic = self.monotonic }))
    self.limiter = ratelimit.new { clock = self.monotonic, store = store }
  end
  return self
end

--- The cap on `action` for this client (an override, else the provider's),
-- in requests per second; nil when it is not paced.
function Pacer:cap(action)
  local o = self.overrides
  if o == false then return nil end
  local v = o and o[action]
  if v == nil and o then v = o["*"] end
  if v == nil then
    local rules = self.rules
    local op = rules.operations[action]
    v = rules.cap and rules.cap(self.client, action, op) or op.cap
  end
  local ceiling = self.max_rate
  if ceiling and (not v or v > ceiling) then v = ceiling end
  return v or nil
end

--- The rate at which this client sends `action` (requests per second, with
-- the margin taken off), or nil when it is not paced.
function Pacer:rate(action)
  local cap = self:cap(action)
  return cap and cap / (1 + self.margin)
end

--- The longest a slot of `action` is reserved ahead (runner's `horizon`).
function Pacer:horizon(action)
  local rate = self:rate(action)
  if not rate then return huge end
  return min(M.HORIZON_SLOTS / rate, M.MAX_HORIZON)
end

--- The cap as "n requests in any second", which the engine holds to by the
-- actual send times (a request sent late never crowds a second). Pacing
-- off (or a burst above 1, which trades the margin away) turns it off.
function Pacer:window(action)
  if not self.limiter or self.burst > 1 then return nil end
  local cap = self:cap(action)
  return cap and floor(cap)
end

-- The store failed (not a wait): pace in this process on a share of the
-- rate, and say so once (never unpaced: the store's other users are still
-- sending).
function Pacer:fallback(key, rate, max_delay, why)
  if not self.fallback_limiter then
    self.fallback_limiter = ratelimit.new { clock = self.monotonic }
    log.warn(format("streamctl: the rate-limit store failed (%s); pacing in this process at rate / %d "
      .. "until it answers", tostring(why), M.FALLBACK_SHARE))
  end
  return self.fallback_limiter:reserve(key, rate / M.FALLBACK_SHARE, 1, max_delay)
end

--- A slot reserved just in time (at most `max_delay` ahead: runner's
-- `pace`). A ZEGO call's first send takes its Sequence with the slot, in
-- the same round trip, where the store can (Redis): it goes into the
-- job's params, which stay fixed for its retries.
function Pacer:pace(action, max_delay, job)
  local limiter = self.limiter
  if not limiter then return 0, true end
  local rate = self:rate(action)
  if not rate then return 0, true end
  local rules, client = self.rules, self.client
  local key = rules.provider .. ":" .. rules.account(client) .. ":" .. action
  local seq_store = client._sequence_store
  -- A job asking again before its first send gave up its slot (late): the
  -- Sequence taken with it would now leave after later ones; it takes a
  -- new one with its new slot.
  if job and job.sequence_taken and job.attempts == 0 then
    job.params.Sequence, job.sequence_taken = nil, nil
  end
  local ids = seq_store and job and job.next_role == "call" and job.attempts == 0 and not job.sequence_taken
    and rules.sequence_ids and rules.sequence_ids(action, rules.operations[action], job.params)
  if ids then
    local delay, committed, next_delay, value = limiter.store:reserve_sequenced(key, rate, self.burst, max_delay,
      seq_store, ids)
    if value then job.params.Sequence, job.sequence_taken = value, true end
    return delay, committed, next_delay
  end
  local delay, committed, next_delay = limiter:reserve(key, rate, self.burst, max_delay)
  if delay ~= nil then return delay, committed, next_delay end
  return self:fallback(key, rate, max_delay, committed)
end

return M
