--- Client-side rate limiting: one token bucket per key, kept as GCRA state.
--
-- A limiter hands out *reservations*. `reserve` always commits one and says
-- how long the caller must wait before sending; successive callers get
-- successive slots, so N callers that each sleep their own delay send evenly
-- spaced at `1/rate` seconds (after an initial burst of `burst`). `try` takes
-- a slot only if it is free now.
--
-- The algorithm is GCRA (virtual scheduling). Per key the store holds one
-- number, the theoretical arrival time `tat` (in the limiter's clock). With
-- `T = 1/rate` and `tau = (burst - 1) * T`, a request at `now` conforms at
-- `max(tat, now) - tau`; reserving moves `tat` to `max(tat, now) + T`.
--
-- Store contract (what `store` passed to `new` must provide):
--
--   store:get(key)              -> number | nil        (nil: no state; or nil, err on failure)
--   store:set(key, value, ttl)  -> truthy | nil, err   (ttl: seconds, > 0, may be fractional)
--   store:atomically(key, fn)   -> ...                 (optional, see below)
--
-- or, instead of those three, one method that does the whole reservation:
--
--   store:reserve(key, rate, burst, max_delay[, margin]) -> delay, committed[, next] | nil, err
--
-- `value` is a `tat` in the limiter's clock. `ttl` is when the entry stops
-- mattering: once it has passed, a missing entry means the same as the stored
-- one, so a store may expire or evict it then (not before: evicting early
-- lets a burst through). A store may round `ttl` up, never down.
--
-- Atomicity: `reserve` and `try` do `get` then (maybe) `set` for one key and
-- nothing else may touch that key in between, or two callers get the same
-- slot. Inside one Lua state this holds as long as `get` and `set` do not
-- yield (true of `memory_store` and of `ngx.shared.DICT`). When several
-- processes share the store (nginx workers sharing an `ngx.shared` dict) that
-- is not enough: the store must provide `atomically(key, fn)`, which runs
-- `fn()` while holding an exclusive per-key lock that every process honours
-- (e.g. `resty.lock` on the same dict), releases it whatever `fn` does, and
-- returns `fn`'s results, or `nil, err` if the lock cannot be had. The
-- limiter then does its get/set inside `fn`. (A compare-and-set on the stored
-- number would do as well, but `ngx.shared` has none; `incr` cannot express
-- `max(tat, now) + T`.) The clock must then be one all processes share:
-- the default monotonic clock is (CLOCK_MONOTONIC is system-wide).
--
-- A store with `reserve` (checked first: it may have `get` and `set` too)
-- keeps the schedule itself, atomically and in a clock of its own, e.g. a
-- Redis server's (streamctl.store.redis), so that processes on machines whose
-- clocks differ share one schedule. The limiter then calls only `reserve`
-- and never reads its own clock. `reserve` applies the GCRA above to `key`
-- (`rate` > 0 tokens per second, `burst` an integer >= 1, both already
-- checked) and commits the slot when its delay is at most `max_delay`
-- seconds (a number >= 0, `math.huge` for "whatever the delay"; 0 means
-- "only if free now"). It returns the delay in seconds (a number >= 0; 0
-- means go now) and whether it committed the slot; when it did not, the
-- delay says when the slot would be free. Optionally a third value, `next`:
-- seconds until the slot after the one committed would be free (when one
-- was), or when to count on a free slot (when none was: a store shared by
-- many may add a spread, so that the refused do not all come back at once).
-- The engine asks again when `next` is within its horizon, not before: one
-- round trip per request where the schedule allows. `nil, err` when it
-- fails.
--
-- The room (streamctl.engine.room): what the provider's throttles taught of
-- the account's real room, a fraction of the cap the schedule is spaced at
-- (`rate * room`). The limiter keeps it itself, under two keys of the store
-- of its own for a get/set store ("room:w:" .. key, "room:t:" .. key: the
-- rule's w and t0, in the limiter's clock), so every user of the store
-- learns together, and in this Lua state for a store with `reserve` that
-- says nothing of rooms. A store that keeps rooms itself (a Redis server's
-- schedule, a shared dict's) says so with two more methods, and applies the
-- room in its own `reserve`:
--
--   store:throttled(key, age, share, after, cap) -> cut | nil, err   (see Limiter:throttled;
--                                 true when it cut the room)
--   store:room(key) -> fraction   (the room as last known, 0 < f <= 1)
--
-- `margin` (optional, a fraction: rate = cap / (1 + margin)) is the caller's
-- pacing margin, for a store whose users may need different ones (their
-- links differ): a store that says `carries_margin = true` spaces the
-- schedule at the largest margin any of its users asked with lately (the
-- cap, `rate * (1 + margin)`, stays the caller's), and any other ignores it.
--
-- Reserving just in time. A caller that holds a slot far in the future has
-- promised a request nobody can take back: if the shared state is lost
-- (a Redis that restarts empty, an evicted key), the new schedule knows
-- nothing of it. `reserve`'s `max_delay` lets a caller hold only a short
-- horizon of slots: it asks again when the time has nearly come (the engine
-- does, with `horizon`).
--
-- @module streamctl.engine.ratelimit

local type, error, pairs, tostring, require, setmetatable =
  type, error, pairs, tostring, require, setmetatable
local floor, huge = math.floor, math.huge
local format = string.format

local validate = require "streamctl.base.validate"
local room = require "streamctl.engine.room"

local M = {}

--- Delays at or below this many seconds count as zero (absorbs the rounding
-- of summed float intervals; far below any clock's resolution). The one
-- tolerance of the library's schedules: the stores' and the runner's.
M.EPSILON = 1e-9

--- One GCRA step, the rule every schedule in the library applies (a
-- limiter on its store, a shared store's local fallback): for a budget whose
-- theoretical arrival time is `tat` (nil: none yet) at `now`, with T =
-- `interval` and `tau`, the delay before the slot (0 within EPSILON),
-- whether it is committed (the delay is at most `max_delay` + EPSILON),
-- when the slot after it would be free (the delay again when not
-- committed), and the new tat to record (nil when not committed).
function M.gcra(tat, now, interval, tau, max_delay)
  if tat == nil or tat < now then tat = now end
  local delay = tat - tau - now
  if delay <= M.EPSILON then
    delay = 0
  elseif delay > max_delay + M.EPSILON then
    return delay, false, delay
  end
  local new_tat = tat + interval
  return delay, true, new_tat - tau - now, new_tat
end

--- The longest horizon a shared store commits a slot ahead, in seconds:
-- further than that, it answers `committed = false` whatever `max_delay`
-- says, so the slots handed out before a loss are few (the engine's
-- horizon keeps below it). The shared stores' own `MAX_HORIZON` is this.
-- Three quarters of a second: room for a slot each for 15 processes on a
-- budget of 20 a second (0.5 s refused a third of ten processes' asks),
-- and with one interval of any published cap (5 a second and up) still
-- within the window, so the pause after a loss is no longer for it.
M.MAX_HORIZON = 0.75

--- The largest pacing margin (a fraction of the cap) a caller paces with,
-- and a store that carries margins spaces its schedule at: streamctl.pipeline.pacing's
-- ceiling, and the Redis store's bound on what it sends and reads back.
M.MARGIN_CEILING = 0.25

--- How long (seconds) nothing is sent on a budget after a shared store
-- lost its state (or made it afresh), at any rate of 4 a second or more (a
-- slower budget waits longer: `loss_pause`). The shared stores' own
-- `LOSS_PAUSE` is this.
M.LOSS_PAUSE = 1.05

-- A schedule's window (s): a provider's cap counts the calls of one second.
local WINDOW = 1
-- What a lost schedule's pause adds for lateness and jitter (s): runner.LATE
-- and the network's share of the margin, as the cold margin allows them.
local LOSS_LATE = 0.05

--- How long (seconds) nothing is sent on a budget of `interval` (1/rate,
-- seconds) after a shared store lost its state (or made it afresh);
-- `fallback` (seconds, optional): how long after the store answers again a
-- process still on a budget of its own may yet send on a slot of its own
-- (the Redis store's retry_ms + timeout_ms + its fallback horizon). What the
-- new schedule cannot see is of three kinds, each with its own end:
--
-- - the slots the lost schedule handed out, which still fire until
--   MAX_HORIZON (plus one interval, the schedule's tat) after the loss.
--   They were a GCRA sequence; a schedule started at or after their tat is
--   the same GCRA continued (a later tat only delays), so any window holds
--   what the GCRA allows whatever it spans of both. (The stores start the
--   new tat at pause + tau, so it has no burst credit either.)
-- - what processes in the fallback sent while the store was away, at most
--   a cap in the last second before it answered again: one WINDOW after,
--   no window holds both them and a new slot.
-- - what those not back yet still send on their own slots, until `fallback`
--   after it answered: a new slot after them keeps a ZEGO Sequence taken
--   later from arriving earlier.
--
-- A window spanning new slots holds at most the first kind, so the ends are
-- not added: the latest of them plus LOSS_LATE; 1.05 s at any rate of 4 a
-- second or more with the Redis store's defaults (it was 1.55, the window
-- and the horizon added).
function M.loss_pause(interval, fallback)
  local pause = WINDOW
  local horizon_end = M.MAX_HORIZON + interval
  if horizon_end > pause then pause = horizon_end end
  if fallback and fallback > pause then pause = fallback end
  return pause + LOSS_LATE
end

local MEMORY_STORE_OPTIONS = {
  { name = "clock", type = "function" },
  { name = "sweep_every", type = "integer", min = 1 },
}

--- An in-memory store for one Lua state.
--
-- With `opts.clock` (the limiter's clock; `new` passes it for the default
-- store) entries expire after their ttl, lazily on `get` and by a sweep every
-- `opts.sweep_every` (default 1024) `set`s, so per-key state does not pile up.
-- Without a clock, ttl is ignored and entries live as long as the store.
-- @tparam[opt] table opts `{ clock = function, sweep_every = integer }`
-- @return a store; or nil, err (an InvalidParameter error object) for a bad option
function M.memory_store(opts)
  local why
  opts, why = validate.construct(MEMORY_STORE_OPTIONS, opts, "streamctl.engine.ratelimit.memory_store", "memory_store")
  if not opts then return nil, why end
  local clock = opts.clock
  local sweep_every = opts.sweep_every or 1024

  local values, expires = {}, {}
  local sets = 0
  local store = {}

  --- Value for key, or nil if absent or expired.
  function store:get(key) -- luacheck: ignore 212/self
    local v = values[key]
    if v ~= nil and clock and expires[key] <= clock() then
      values[key], expires[key] = nil, nil
      return nil
    end
    return v
  end

  --- Stores value for key; with a clock it expires `ttl` seconds from now.
  function store:set(key, value, ttl) -- luacheck: ignore 212/self
    values[key] = value
    if clock then
      local now = clock()
      expires[key] = now + (ttl or huge)
      sets = sets + 1
      if sets >= sweep_every then
        sets = 0
        for k, e in pairs(expires) do
          if e <= now then values[k], expires[k] = nil, nil end
        end
      end
    end
    return true
  end

  --- Number of entries held (expired ones not yet swept included).
  function store:count() -- luacheck: ignore 212/self
    local n = 0
    for _ in pairs(values) do n = n + 1 end
    return n
  end

  return store
end

-- The default clock: streamctl.core's CLOCK_MONOTONIC seconds (steps of the
-- wall clock do not move it; it is system-wide, so processes sharing a store
-- agree on it).
local function get_default_clock()
  return require("streamctl.core").monotonic
end

local Limiter = {}
Limiter.__index = Limiter

-- A store without `reserve` (a streamctl.base.validate spec): an object with
-- `get` and `set`, and optionally `atomically` (see above).
local GET_SET_STORE = { type = "object", methods = { "get", "set" }, optional = { "atomically" } }

--- Checks a store for the limiter (a streamctl.base.validate custom check): an
-- object with a `reserve` function, or else one with `get` and `set` (and
-- optionally `atomically`). Returns the store, or nil and the rule broken
-- (the get/set one: a store with `reserve` is the exception to it).
function M.check_store(v)
  if (type(v) == "table" or type(v) == "userdata") and type(validate.method_of(v, "reserve")) == "function" then
    return v
  end
  return validate.value(GET_SET_STORE, v)
end

local OPTIONS = {
  { name = "clock", type = "function" },
  { name = "store", type = "custom", check = M.check_store },
}

--- Makes a limiter.
-- @tparam[opt] table opts
--   `clock`: function returning seconds (any origin, monotonic, fractional
--   preferred); default streamctl.core's monotonic clock.
--   `store`: see the store contract above; default `memory_store{ clock = clock }`.
-- @return limiter; or nil, err (an InvalidParameter error object naming the
--   option) for a bad or unknown option. Options that are not a table raise.
function M.new(opts)
  local why
  opts, why = validate.construct(OPTIONS, opts, "streamctl.engine.ratelimit.new", "new")
  if not opts then return nil, why end
  local clock = opts.clock or get_default_clock()
  local store = opts.store or M.memory_store { clock = clock }
  -- (rooms: key -> { w, t0 }, for a store with `reserve` that keeps none)
  return setmetatable({ clock = clock, store = store, rooms = {} }, Limiter)
end

-- The room's state of `key` (w, t0; nil, nil: none), where the limiter
-- keeps it: under the store's own keys for a get/set store, else here. A
-- get that fails is said as its error.
local function room_state(self, key)
  local store = self.store
  if store.reserve then
    local r = self.rooms[key]
    if r then return r[1], r[2] end
    return nil, nil
  end
  local w, err = store:get("room:w:" .. key)
  if w == nil then return nil, nil, err end
  local t0, terr = store:get("room:t:" .. key)
  if t0 == nil and terr ~= nil then return nil, nil, terr end
  if type(w) ~= "number" or type(t0) ~= "number" then return nil, nil end
  return w, t0
end

-- Records the room's state of `key` after a cut, for as long as it matters.
local function set_room(self, key, w, t0)
  local store = self.store
  if store.reserve then
    self.rooms[key] = { w, t0 }
    return true
  end
  local ttl = room.whole_after(w) + 1
  local ok, err = store:set("room:w:" .. key, w, ttl)
  if ok then ok, err = store:set("room:t:" .. key, t0, ttl) end
  if not ok then return nil, err or "store set failed" end
  return true
end

--- The room of `key` now: the fraction of its cap the provider's throttles
-- left it (streamctl.engine.room; 1 until one did).
-- @treturn number a fraction, room.FLOOR to 1
function Limiter:room(key)
  local store = self.store
  if store.throttled then return store:room(key) end
  local w, t0 = room_state(self, key)
  return room.at(w, t0, self.clock())
end

--- Tells the limiter the provider throttled an attempt on `key` sent `age`
-- seconds ago, when `share` (0 to 1; nil: 1) of the last second's answers
-- were not throttles: the room is cut (streamctl.engine.room), once per
-- overshoot; `after` (seconds, nil: none; at most room.MAX_AFTER): the
-- provider's retry-after, before which no slot of `key` is handed out (a
-- store with `reserve` that keeps no rooms cannot be told, and is not);
-- `cap` (requests per second, optional): the budget's, for a store that
-- measures what got through the whole budget against it (Redis, a shared
-- dict).
-- @treturn boolean whether it cut the room (false: an earlier cut answered
--   the same overshoot); or nil, err when the store failed
function Limiter:throttled(key, age, share, after, cap)
  if type(key) ~= "string" then
    error("bad argument #1 to 'throttled' (key must be a string, got " .. type(key) .. ")", 2)
  end
  if type(age) ~= "number" or not (age >= 0 and age < huge) then
    error("bad argument #2 to 'throttled' (age must be a number >= 0, got " .. tostring(age) .. ")", 2)
  end
  if share ~= nil and not (type(share) == "number" and share >= 0 and share <= 1) then
    error("bad argument #3 to 'throttled' (share must be a number from 0 to 1, got " .. tostring(share) .. ")", 2)
  end
  if after ~= nil and not (type(after) == "number" and after >= 0 and after <= room.MAX_AFTER) then
    error("bad argument #4 to 'throttled' (after must be a number from 0 to " .. room.MAX_AFTER .. ", got "
      .. tostring(after) .. ")", 2)
  end
  local store = self.store
  if store.throttled then return store:throttled(key, age, share, after, cap) end
  local function cut()
    local w, t0, err = room_state(self, key)
    if err ~= nil then return nil, err end
    local now = self.clock()
    if after and after > 0 and not store.reserve then
      local tat, gerr = store:get(key)
      if tat == nil and gerr ~= nil then return nil, gerr end
      if tat == nil or tat < now + after then
        local ok, serr = store:set(key, now + after, after)
        if not ok then return nil, serr or "store set failed" end
      end
    end
    local nw, nt = room.cut(w, t0, now, now - age, share)
    if not nw then return false end
    local ok, serr = set_room(self, key, nw, nt)
    if not ok then return nil, serr end
    return true
  end
  if store.atomically and not store.reserve then return store:atomically("room:" .. key, cut) end
  return cut()
end

local function is_positive_rate(v)
  return type(v) == "number" and v > 0 -- false for NaN
end

-- Validates arguments; returns the burst, or nil when the limit is off.
local function check_args(fname, key, rate, burst)
  if type(key) ~= "string" then
    error(format("bad argument #1 to '%s' (key must be a string, got %s)", fname, type(key)), 3)
  end
  if rate == nil or rate == false or rate == huge then return nil end
  if not is_positive_rate(rate) then
    error(format("bad argument #2 to '%s' (rate must be a positive number, nil, false or math.huge, got %s)",
      fname, tostring(rate)), 3)
  end
  if burst == nil then return 1 end
  if type(burst) ~= "number" or burst < 1 or burst == huge or floor(burst) ~= burst then
    error(format("bad argument #3 to '%s' (burst must be an integer >= 1, got %s)", fname, tostring(burst)), 3)
  end
  return burst
end

-- Computes one reservation and records it when its delay is at most
-- `max_delay`. Returns the delay and whether it was committed, or nil, err
-- when the store fails.
local function take(self, key, rate, burst, max_delay, margin)
  local store = self.store
  -- (the room, where the limiter keeps it: a store that keeps its own applies it; a get/set
  -- store's is read with the schedule, under its lock)
  if store.reserve and not store.throttled then
    local w, t0 = room_state(self, key)
    if w then rate = rate * room.at(w, t0, self.clock()) end
  end
  if store.reserve then -- the store's own clock and atomicity
    local delay, committed, next_delay = store:reserve(key, rate, burst, max_delay, margin)
    if delay == nil then return nil, committed or "store reserve failed" end
    if type(delay) ~= "number" or not (delay >= 0 and delay < huge) then
      error("streamctl.engine.ratelimit: store:reserve returned " .. tostring(delay) .. ", not a delay in seconds", 3)
    end
    if type(committed) ~= "boolean" then
      error("streamctl.engine.ratelimit: store:reserve returned no 'committed' boolean beside its delay", 3)
    end
    if delay <= M.EPSILON then delay = 0 end
    if type(next_delay) ~= "number" or next_delay ~= next_delay or next_delay < delay then next_delay = nil end
    return delay, committed, next_delay
  end

  local now = self.clock()
  if type(now) ~= "number" or now ~= now then
    error("streamctl.engine.ratelimit: clock returned " .. tostring(now) .. ", not a number", 3)
  end

  local function body()
    local w, t0, rerr = room_state(self, key)
    if rerr ~= nil then return nil, rerr end
    local interval = 1 / (rate * room.at(w, t0, now))
    local tau = (burst - 1) * interval
    local tat, err = store:get(key)
    if tat == nil and err ~= nil then return nil, err end
    local delay, committed, next_delay, new_tat = M.gcra(tat, now, interval, tau, max_delay)
    if not committed then return delay, false, next_delay end
    local ok, serr = store:set(key, new_tat, new_tat - now)
    if not ok then return nil, serr or "store set failed" end
    return delay, true, next_delay
  end

  if store.atomically then
    return store:atomically(key, body)
  end
  return body()
end

--- Reserves one token for `key` and says how long to wait before using it.
--
-- The reservation is committed: the caller is expected to wait the returned
-- delay and then send. With `max_delay`, it is committed only when the
-- delay is at most that many seconds; otherwise nothing is recorded and the
-- delay says when a slot would be free (ask again a little before then).
-- With `rate` nil, false or `math.huge` there is no limit and nothing is
-- recorded.
-- @tparam string key the bucket, e.g. "aliyun:LTAI...:ResumeLiveStream"
-- @tparam number|nil|false rate tokens per second (> 0)
-- @tparam[opt=1] integer burst bucket size (>= 1)
-- @tparam[opt=math.huge] number max_delay the longest delay to commit, in seconds (>= 0)
-- @tparam[opt] number margin the caller's pacing margin (>= 0; see the store contract)
-- @treturn number seconds to wait (0: go now); or nil, err if the store failed
-- @treturn boolean whether the slot was committed
-- @treturn[opt] number when to ask again (see the store contract's `next`)
function Limiter:reserve(key, rate, burst, max_delay, margin)
  burst = check_args("reserve", key, rate, burst)
  if max_delay == nil then
    max_delay = huge
  elseif type(max_delay) ~= "number" or max_delay ~= max_delay or max_delay < 0 then
    error("bad argument #4 to 'reserve' (max_delay must be a number >= 0, got " .. tostring(max_delay) .. ")", 2)
  end
  if margin ~= nil and (type(margin) ~= "number" or not (margin >= 0 and margin < huge)) then
    error("bad argument #5 to 'reserve' (margin must be a number >= 0, got " .. tostring(margin) .. ")", 2)
  end
  if not burst then return 0, true end
  local delay, committed, next_delay = take(self, key, rate, burst, max_delay, margin) -- (not a tail call)
  return delay, committed, next_delay
end

--- Takes one token for `key` only if one is available now.
-- @tparam string key
-- @tparam number|nil|false rate tokens per second (> 0)
-- @tparam[opt=1] integer burst bucket size (>= 1)
-- @treturn boolean true if taken; or false, delay (seconds until one would be
-- free; nothing is recorded); or nil, err if the store failed
function Limiter:try(key, rate, burst)
  burst = check_args("try", key, rate, burst)
  if not burst then return true end
  local delay, committed = take(self, key, rate, burst, 0)
  if delay == nil then return nil, committed end
  if committed then return true end
  return false, delay
end

return M
