--- A client's pacing: the cap on each action, the limiter and its store, and
-- the slot reserved for each request (streamctl.engine.runner's `pace`, `horizon`
-- and `window`). See docs/pacing.md.
--
-- `new(client, o, handles)` takes the client (for its provider's rules,
-- account and clock), its checked options (`rate_limits`, `rate_burst`,
-- `rate_margin`, `max_rate`, `rate_limit_store`) and its store backends'
-- handles (streamctl.pipeline.stores: it names no backend).
-- @module streamctl.pipeline.pacing

local ratelimit = require "streamctl.engine.ratelimit"
local retry = require "streamctl.engine.retry"
local room = require "streamctl.engine.room"
local stores = require "streamctl.pipeline.stores"
local log = require "streamctl.base.log"
local samples = require "streamctl.base.samples"

local tostring, setmetatable, pairs, next = tostring, setmetatable, pairs, next
local min, max, floor, huge = math.min, math.max, math.floor, math.huge
local push = samples.push
local format = string.format

local M = {}

--- The fraction by which pacing stays under every cap (docs/pacing.md, "The
-- margin"): with 5%, any N + 1 consecutive requests to an
-- action capped at N per second span at least 1.05 s, so up to 50 ms of
-- scheduling and network jitter cannot put N + 1 of them into one second,
-- the strictest way a provider can count.
M.RATE_MARGIN = 0.05

--- How many slots of one action a client reserves ahead at most (see
-- streamctl.engine.runner, "Pacing"): a horizon of this many intervals, and never
-- more than `MAX_HORIZON` seconds. Whatever happens to a shared store, the
-- slots already promised are this few.
M.HORIZON_SLOTS = 4
M.MAX_HORIZON = ratelimit.MAX_HORIZON

--- When a rate-limit store fails (an error, not a wait), the client paces
-- in its own process at the rate divided by this, and says so once: the
-- store's other users are unknown, so it keeps to the safe side.
M.FALLBACK_SHARE = 4

-- The margin from what is measured (docs/pacing.md, "The margin") -------------

--- Round trips and send delays kept, and how many make the measure warm.
M.SAMPLES = 64
M.WARM = 8

--- What the measured margin never goes below (seconds of a one-second
-- window: the margin's 1% is 0.01), and what it never goes above.
M.MARGIN_FLOOR = 0.01
M.MARGIN_CEILING = ratelimit.MARGIN_CEILING
M.GUARD_FLOOR = 0.005
M.LATE_FLOOR = 0.005

--- Before anything is measured: the fixed margin, window guard and
-- lateness (what a cold client, or one given `rate_margin`, keeps).
M.COLD_GUARD = 0.02
M.COLD_LATE = 0.02

local Measure = {}
Measure.__index = Measure

--- A measure of the spread the margin must cover: the last SAMPLES round
-- trips (send to answer, of attempts the provider answered) and the last
-- SAMPLES send delays (how late a request left on its slot).
function M.measure()
  return setmetatable({ rtt = samples.new(M.SAMPLES), late = samples.new(M.SAMPLES) }, Measure)
end

--- A round trip the provider answered (seconds from send to answer).
function Measure:round_trip(seconds)
  if seconds >= 0 then push(self.rtt, seconds) self.cached = nil end
end

--- How late a request left after its slot's time (seconds, >= 0).
function Measure:sent_late(seconds)
  if seconds >= 0 then push(self.late, seconds) self.cached = nil end
end

--- The rule: `margin, guard, late` in seconds (see docs/pacing.md).
-- Cold (fewer than WARM round trips or sends): RATE_MARGIN, COLD_GUARD,
-- COLD_LATE. Warm, with J the spread of the round trips (the most one
-- request's arrival can trail another's, each leg within it) and D the
-- latest send: the window guard covers twice J, the lateness allowed twice
-- D (a slot used later than that is given up), and the margin both, since a
-- request may leave `late` after its slot and arrive J after that; each
-- within its floor and ceiling.
function Measure:rule()
  local c = self.cached
  if c then return c[1], c[2], c[3] end
  local margin, guard, late = M.RATE_MARGIN, M.COLD_GUARD, M.COLD_LATE
  if self.rtt.n >= M.WARM and self.late.n >= M.WARM then
    local j, d = self.rtt.hi - self.rtt.lo, self.late.hi
    guard = min(max(2 * j + 0.002, M.GUARD_FLOOR), M.MARGIN_CEILING / 2)
    late = min(max(2 * d + 0.002, M.LATE_FLOOR), M.COLD_LATE)
    margin = min(max(guard + late, M.MARGIN_FLOOR), M.MARGIN_CEILING)
  end
  self.cached = { margin, guard, late }
  return margin, guard, late
end

--- The margin this client needs beside others on one shared budget (docs/
-- pacing.md, "With a shared budget"): what its own requests may trail
-- another client's by, whose link this one cannot see. Not the spread of
-- its round trips but their longest (a request's one-way trip is anywhere
-- within it, another's may be near nothing) plus the lateness allowed;
-- within the floor and ceiling. Cold: RATE_MARGIN.
function Measure:shared_margin()
  if self.rtt.n < M.WARM or self.late.n < M.WARM then return M.RATE_MARGIN end
  local _, _, late = self:rule()
  return min(max(self.rtt.hi + late + 0.002, M.MARGIN_FLOOR), M.MARGIN_CEILING)
end

local Pacer = {}
Pacer.__index = Pacer

--- Makes a client's pacer (see above).
function M.new(client, o, handles)
  local self = setmetatable({
    client = client, rules = client._rules, monotonic = client._monotonic,
    overrides = o.rate_limits, burst = o.rate_burst or 1, fixed_margin = o.rate_margin,
    max_rate = o.max_rate, measure = M.measure(),
    answers = {},                                    -- action -> the last second's answers
    last_room = {},                                  -- action -> the room its last reservation saw
    watchers = setmetatable({}, { __mode = "k" }),   -- the batches told the lowest room
  }, Pacer)
  -- the provider's caps, each asked once: its own for this client (`caps`), else the operation's
  local own = client._rules.caps and client._rules.caps(client) or {}
  self.own_caps = own
  self.caps = {}
  for action, op in pairs(client._rules.operations) do self.caps[action] = own[action] or op.cap or false end
  if o.rate_limits ~= false then
    -- shared: other clients (processes, workers, machines) may pace under the same keys
    local store, handle = stores.ratelimit(o, handles, self.monotonic)
    self.shared = store ~= nil
    self.store_handle = handle -- (a provider's stamp may be taken with the slot on it: client's sequence_for)
    self.limiter = ratelimit.new { clock = self.monotonic, store = store }
    self.carried = store ~= nil and store.carries_margin == true
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
    v = self.caps[action]
    if v == nil then -- (a published action streamctl declares no operation for, asked first now)
      local op = self.rules.operations[action]
      v = op and (self.own_caps[action] or op.cap) or false
      if op then self.caps[action] = v end
    end
    v = v or nil
  end
  local ceiling = self.max_rate
  if ceiling and (not v or v > ceiling) then v = ceiling end
  return v or nil
end

--- The cap on `action` and the room under it, both in requests per second
-- (the cap times `room`'s fraction); nil when it is not paced.
function Pacer:cap_room(action)
  local cap = self:cap(action)
  return cap, cap and cap * self:room(action) or nil
end

--- The rate at which this client sends `action` (requests per second, with
-- the margin taken off) and that margin, or nil when it is not paced.
function Pacer:rate(action)
  local cap = self:cap(action)
  if not cap then return nil end
  local margin = self:margin()
  return cap / (1 + margin), margin
end

--- The margin this client paces with (a fraction of the cap): `rate_margin`
-- when given; else the measured rule's, and with a shared store the larger
-- of that and `shared_margin` (what its requests may trail another
-- client's by). A store that holds the largest margin of all its users
-- (`store.carries_margin`: Redis) is told this one with each reservation
-- and spaces the schedule at theirs; with any other shared store the
-- others are unknown, and the margin never goes below RATE_MARGIN.
function Pacer:margin()
  if self.fixed_margin then return self.fixed_margin end
  local m = self.measure
  local margin = m:rule()
  if not self.shared then return margin end
  if self.carried then return max(margin, m:shared_margin()) end
  return max(margin, M.RATE_MARGIN)
end

--- The window guard and the lateness allowed (runner's `slack`): the
-- measured rule's, or the cold ones with a fixed `rate_margin`.
function Pacer:slack()
  if self.fixed_margin then return M.COLD_GUARD, M.COLD_LATE end
  local _, guard, late = self.measure:rule()
  return guard, late
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
  self:fallback_limiter_made(why)
  return self.fallback_limiter:reserve(key, rate / M.FALLBACK_SHARE, 1, max_delay)
end

-- The fallback's limiter, made (and said, once) the first time the store fails.
function Pacer:fallback_limiter_made(why)
  if self.fallback_limiter then return end
  self.fallback_limiter = ratelimit.new { clock = self.monotonic }
  log.warn(format("streamctl: the rate-limit store failed (%s); pacing in this process at rate / %d "
    .. "until it answers", tostring(why), M.FALLBACK_SHARE))
end

--- The budget's key of `action` in the limiter's store.
function Pacer:key(action)
  local rules = self.rules
  return rules.provider .. ":" .. rules.account(self.client) .. ":" .. action
end

--- The room of `action` (streamctl.engine.room): the fraction of its cap
-- the provider's throttles left it, 1 when it is whole or not paced.
function Pacer:room(action)
  if not self.limiter or not self:cap(action) then return 1 end
  return self.limiter:room(self:key(action))
end

-- Tells every watcher the room of `action` just seen.
local function note_room(self, action, f)
  for w in pairs(self.watchers) do
    local low = w[action]
    if not low or f < low then w[action] = f end
  end
end

--- A watcher of the lowest room of each action from now on (a table:
-- action -> the lowest fraction seen, absent while it was whole), until it
-- is let go by `unwatch`.
function Pacer:watch()
  local w = {}
  self.watchers[w] = true
  return w
end

function Pacer:unwatch(w)
  self.watchers[w] = nil
end

--- Answers counted for the share a throttle's cut takes (see
-- streamctl.engine.room): the last second's, when there are at least this
-- many of them (fewer say too little: the room it paced at is taken).
M.SHARE_ANSWERS = 4

--- The most answers the share is measured over (the newest): a second of
-- any published cap, and a bound on what a client keeps per action.
M.MAX_ANSWERS = 1024

-- Counts an answer of the queue `q` (the last second's, oldest first: their
-- times in `q.at`, throttles as true in `q.bad_at`) at `now`: how many
-- there are, and how many were throttles.
local function count_answer(q, now, throttled)
  local at, bad_at = q.at, q.bad_at
  q.last = q.last + 1
  at[q.last], bad_at[q.last] = now, throttled or nil
  if throttled then q.bad = q.bad + 1 end
  while at[q.first] <= now - 1 or q.last - q.first >= M.MAX_ANSWERS do
    if bad_at[q.first] then q.bad = q.bad - 1 end
    at[q.first], bad_at[q.first], q.first = nil, nil, q.first + 1
  end
  return q.last - q.first + 1, q.bad
end

--- An answer to an attempt of `action` sent `age` seconds ago (runner's
-- `answered`; `err` nil for a success); true when it cut the room. On a
-- throttle the room is cut, for every user of the budget where the store
-- is shared, by the share of the last second's answers that were not
-- throttles (streamctl.engine.room); on a budget this client has alone, to
-- no more than it got through in the last second (the AWS SDKs' "measured
-- rate": a provider that counts the last second lets a cap through at once
-- after a quiet one, and the share of the first throttle says nothing yet;
-- the Redis store measures the same over the whole budget). A store that
-- cannot take the cut is said once, and the cut holds in this process.
function Pacer:answered(action, age, err)
  local limiter = self.limiter
  if not limiter or not self:cap(action) then return end -- (not paced: nothing to learn)
  local q = self.answers[action]
  if not q then
    q = { first = 1, last = 0, bad = 0, at = {}, bad_at = {} }
    self.answers[action] = q
  end
  local throttled = retry.is_throttle(err)
  local n, bad = count_answer(q, self.monotonic(), throttled)
  if not throttled then return end
  local key, share = self:key(action), n >= M.SHARE_ANSWERS and (n - bad) / n or 1
  if not self.shared and n >= M.SHARE_ANSWERS then
    local got = (n - bad) / (self:cap(action) * limiter:room(key))
    if got < share then share = got end
  end
  -- (the provider's retry-after holds the whole budget, up to room.MAX_AFTER: everyone waits)
  local after = err.retry_after_ms
  after = type(after) == "number" and after > 0 and min(after / 1000, room.MAX_AFTER) or nil
  local cut, why = limiter:throttled(key, age, share, after, self:cap(action))
  if cut == nil then
    self:fallback_limiter_made(why)
    self.fallback_limiter:throttled(key, age, share, after)
  end
  note_room(self, action, cut == nil and self.fallback_limiter:room(key) or limiter:room(key))
  return cut ~= false
end

--- A slot reserved just in time (at most `max_delay` ahead: runner's
-- `pace`). Where the provider has a step of its own at a call's first send
-- (its `stamp`: ZEGO's Sequence) and the store can take its value with the
-- slot (Redis: `client._stamp_store`), both are taken in one round trip:
-- the value goes into the job's params, which stay fixed for its retries.
function Pacer:pace(action, max_delay, job)
  local limiter = self.limiter
  if not limiter then return 0, true end
  local rate, margin = self:rate(action)
  if not rate then return 0, true end
  -- (a store that carries margins is told this one: see Pacer:margin)
  if not self.carried then margin = nil end
  local rules, client = self.rules, self.client
  local key = self:key(action)
  local stamp, stamp_store = rules.stamp, client._stamp_store
  -- A job asking again before its first send gave up its slot (late): the
  -- value taken with it would now leave after later ones; it takes a new
  -- one with its new slot.
  if job and job.stamped and job.attempts == 0 then
    job.params[stamp.param], job.stamped = nil, nil
  end
  local ids = stamp_store and job and job.next_role == "call" and job.attempts == 0 and not job.stamped
    and stamp.ids(action, rules.operations[action], job.params)
  if ids then
    local delay, committed, next_delay, value = limiter.store:reserve_sequenced(key, rate, self.burst, max_delay,
      stamp_store, ids, margin)
    if value then job.params[stamp.param], job.stamped = value, true end
    return delay, committed, next_delay, self:seen_room(action, limiter:room(key))
  end
  local delay, committed, next_delay = limiter:reserve(key, rate, self.burst, max_delay, margin)
  if delay == nil then return self:fallback(key, rate, max_delay, committed) end
  return delay, committed, next_delay, self:seen_room(action, limiter:room(key))
end

--- How far below the room last seen a reservation must find it before the
-- slots this client reserved earlier are given up (a cut another process
-- or worker made: runner's `pace`). Given up, they still stand in the
-- shared schedule, and the new ones come after them: 0.6 to 0.7 s with
-- nothing sent, through Redis, after every cut. Worth it after the first
-- cut, which finds a stranger (the room down to a half or less), not after
-- the probes' cuts (to 0.9 of what got through): ten processes beside a
-- stranger at 50% used 0.82 to 0.84 of the room giving up at every cut,
-- 0.86 to 0.87 at this one (make bench, bench/strangers.lua).
M.GIVE_UP_CUT = 0.7

--- The room of `action` as a reservation just found it: told to the
-- watchers; true when it is under GIVE_UP_CUT of the last one seen (see
-- there).
function Pacer:seen_room(action, f)
  if next(self.watchers) then note_room(self, action, f) end
  local before = self.last_room[action]
  self.last_room[action] = f
  return before ~= nil and f < before * M.GIVE_UP_CUT
end

return M
