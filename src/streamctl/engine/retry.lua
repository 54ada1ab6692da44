--- Retry policy: which failures to retry, how long to wait, and a retry budget.
--
-- A policy is pure: it sends nothing and sleeps nowhere. The caller makes the
-- request, and on failure asks `policy:decide(err, attempt)`; on success it
-- calls `policy:on_success()`. One policy is meant to be shared by every call
-- of a client, so that its budget sees all of them.
--
-- Rules, in the order `decide` applies them:
--
-- 1. Kinds "validation", "auth" and "signature" are never retried, whatever
--    `err.retryable` says: the same request fails the same way.
-- 2. Kind "clock" (the provider rejected our timestamp) is retried once, and
--    only as the first retry of a call (`attempt == 1`), only when the
--    response carried a Date (`err.server_date`), and with no delay: the
--    caller corrects its clock offset with `retry.clock_offset` and re-signs.
--    It does not need `err.retryable`. A later clock failure is not retried.
-- 3. Anything else is retried only if `err.retryable`.
-- 4. `attempts` counts the first try: with 3, at most 2 retries.
-- 5. Each retry withdraws 1 token from the budget; each success adds
--    `refill_per_success`, up to `capacity`. With less than 1 token left there
--    is no retry ("retry budget exhausted"). The budget starts full.
-- 6. Delay: full-jitter exponential backoff,
--    `random() * min(cap_ms, base * 2^(attempt - 1))` with
--    `base = throttle_base_ms` for kind "throttled", else `base_ms`; then at
--    least `min(err.retry_after_ms, cap_ms)` when the provider sent one.
--    `delay_ms` is a whole number of milliseconds.
--
-- @module streamctl.engine.retry

local type, error, pairs, tostring, setmetatable = type, error, pairs, tostring, setmetatable
local floor, ceil, min, huge = math.floor, math.ceil, math.min, math.huge
local format = string.format

local validate = require "streamctl.base.validate"

local M = {}

--- Kinds that are never retried.
M.NEVER_RETRIED = { validation = true, auth = true, signature = true }

-- The budget is kept in millionths of a token so that refills such as 0.1
-- add up exactly (ten float 0.1s make 0.9999999999999999, not 1).
local SCALE = 1000000

local function to_units(x)
  return floor(x * SCALE + 0.5)
end

local DEFAULTS = {
  attempts = 3,
  base_ms = 100,
  throttle_base_ms = 500,
  cap_ms = 20000,
}

local function is_nonneg(v)
  return type(v) == "number" and v >= 0 and v < huge -- false for NaN
end

-- The budget: false, or a table of capacity (> 0) and refill_per_success (>= 0).
local function check_budget(v)
  if type(v) ~= "table" then return nil, "must be a table or false" end
  for k in pairs(v) do
    if k ~= "capacity" and k ~= "refill_per_success" then
      return nil, "has no setting '" .. tostring(k) .. "' (it takes capacity and refill_per_success)"
    end
  end
  if v.capacity ~= nil and not (is_nonneg(v.capacity) and v.capacity > 0) then
    return nil, "capacity must be a finite number > 0"
  end
  if v.refill_per_success ~= nil and not is_nonneg(v.refill_per_success) then
    return nil, "refill_per_success must be a finite number >= 0"
  end
  return v
end

--- The settings `policy` takes (a streamctl.base.validate schema); a client's
-- `retry` option is checked against it too.
M.OPTIONS = {
  { name = "attempts", type = "integer", min = 1 },
  { name = "base_ms", type = "number", min = 0, max_exclusive = huge },
  { name = "throttle_base_ms", type = "number", min = 0, max_exclusive = huge },
  { name = "cap_ms", type = "number", min = 0, max_exclusive = huge },
  { name = "budget", type = "custom", nullable_false = true, check = check_budget },
  { name = "random", type = "function" },
}

local Policy = {}
Policy.__index = Policy

local function is_count(v)
  return type(v) == "number" and v >= 1 and v < huge and floor(v) == v
end

--- Makes a retry policy.
-- @tparam[opt] table opts
--   `attempts` (integer >= 1, default 3; counts the first try),
--   `base_ms` (default 100), `throttle_base_ms` (default 500),
--   `cap_ms` (default 20000): backoff parameters in milliseconds, >= 0;
--   `budget`: `{ capacity = 10, refill_per_success = 0.1 }` (the default), or
--   `false` for no budget; `capacity` > 0, `refill_per_success` >= 0;
--   `random`: function returning a number in [0, 1], default `math.random`
--   (not seeded here: seeding is the application's business).
-- @return policy, or nil and an InvalidParameter error naming the option
function M.policy(opts)
  local why
  opts, why = validate.construct(M.OPTIONS, opts, "streamctl.engine.retry.policy", "policy")
  if not opts then return nil, why end
  local p = {}
  for k, d in pairs(DEFAULTS) do
    local v = opts[k]
    if v == nil then v = d end
    p[k] = v
  end
  p.random = opts.random or math.random

  local budget = opts.budget
  if budget == nil then budget = {} end
  if budget ~= false then
    local capacity = budget.capacity == nil and 10 or budget.capacity
    local refill = budget.refill_per_success == nil and 0.1 or budget.refill_per_success
    p.capacity_units = to_units(capacity)
    p.refill_units = to_units(refill)
    p.tokens_units = p.capacity_units
  end
  return setmetatable(p, Policy)
end

--- Tokens left in the retry budget, or nil when the policy has none.
-- @treturn number|nil
function Policy:budget()
  if not self.capacity_units then return nil end
  return self.tokens_units / SCALE
end

--- Records a successful call: refills the budget by `refill_per_success`.
function Policy:on_success()
  if not self.capacity_units then return end
  local t = self.tokens_units + self.refill_units
  if t > self.capacity_units then t = self.capacity_units end
  self.tokens_units = t
end

local function no(reason)
  return { retry = false, reason = reason }
end

-- Why no retry may happen after `attempt` (attempts used up, budget empty),
-- or nil if one may.
local function refusal(self, attempt)
  if attempt >= self.attempts then
    return format("attempts exhausted (%d of %d)", attempt, self.attempts)
  end
  if self.capacity_units and self.tokens_units < SCALE then
    return "retry budget exhausted"
  end
  return nil
end

-- Commits a retry: withdraws its budget token.
local function grant(self, delay_ms, reason)
  if self.capacity_units then self.tokens_units = self.tokens_units - SCALE end
  return { retry = true, delay_ms = delay_ms, reason = reason }
end

-- Full-jitter exponential backoff (ms) from `base` after attempt `n`.
local function backoff(self, base, n)
  local r = self.random()
  if type(r) ~= "number" or not (r >= 0 and r <= 1) then
    error("streamctl.engine.retry: random() returned " .. tostring(r) .. ", not a number in [0, 1]", 3)
  end
  return floor(r * min(self.cap_ms, base * 2 ^ (n - 1)))
end

--- Decides whether to retry after attempt number `attempt` failed with `err`.
--
-- A positive decision is committed: it has taken a token from the budget.
-- @tparam table err a streamctl error (`kind`, `retryable`, `retry_after_ms`,
--   `server_date` are read)
-- @tparam integer attempt the attempt that just failed (1 = the first try)
-- @treturn table `{ retry = true, delay_ms = integer, reason = string }` or
--   `{ retry = false, reason = string }`
function Policy:decide(err, attempt)
  if type(err) ~= "table" then
    error("bad argument #1 to 'decide' (err must be an error table, got " .. type(err) .. ")", 2)
  end
  if not is_count(attempt) then
    error("bad argument #2 to 'decide' (attempt must be an integer >= 1, got " .. tostring(attempt) .. ")", 2)
  end
  local kind = err.kind

  if M.NEVER_RETRIED[kind] then
    return no(kind .. " errors are never retried")
  end

  if kind == "clock" then
    if attempt > 1 then return no("clock skew is retried once, as the first retry only") end
    if type(err.server_date) ~= "number" then
      return no("clock skew, but the response had no Date to correct the clock from")
    end
    local why = refusal(self, attempt)
    if why then return no(why) end
    return grant(self, 0, "clock skew: retry once with the clock corrected from the server's Date")
  end

  if not err.retryable then
    return no("not retryable (" .. tostring(kind) .. " " .. tostring(err.code) .. ")")
  end
  local why = refusal(self, attempt)
  if why then return no(why) end

  local delay = backoff(self, kind == "throttled" and self.throttle_base_ms or self.base_ms, attempt)
  local reason = tostring(kind) .. ": backoff"
  local after = err.retry_after_ms
  if type(after) == "number" and after > 0 then
    after = ceil(min(after, self.cap_ms))
    if after > delay then
      delay = after
      reason = tostring(kind) .. ": provider's retry-after"
    end
  end
  return grant(self, delay, reason)
end

--- Whether `err` says the provider throttled the request, or asked for it
-- to come back later: kind "throttled", or any answer with a retry-after
-- (`retry_after_ms`, Alibaba Cloud's `x-acs-retry-after`). The pacing
-- learns the account's room from these (streamctl.engine.room).
function M.is_throttle(err)
  if type(err) ~= "table" then return false end
  if err.kind == "throttled" then return true end
  local after = err.retry_after_ms
  return type(after) == "number" and after > 0
end

--- How long (ms) a throttled call waits before it goes back to the
-- schedule, after its `n`-th throttle: the provider's retry-after when it
-- sent one (at most `cap_ms`), else nothing when the call is `paced` (its
-- slot, at the room the throttle left, spaces it); unpaced (`rate_limits =
-- false`: nothing else spaces it), full-jitter backoff from
-- `throttle_base_ms`. Throttles take no budget token and count no
-- attempt: a throttled request was not applied (streamctl.engine.run).
function Policy:throttle_delay(err, n, paced)
  local delay = paced and 0 or backoff(self, self.throttle_base_ms, min(n, 64))
  local after = type(err) == "table" and err.retry_after_ms
  if type(after) == "number" and after > 0 then
    after = ceil(min(after, self.cap_ms))
    if after > delay then delay = after end
  end
  return delay
end

--- The offset to add to the local clock to match the server's, from the
-- Date of a response (`err.server_date`), rounded to whole seconds
-- (a Date has no finer resolution).
-- @tparam table err a streamctl error (any table with `server_date`)
-- @tparam number local_now_seconds the local Unix time when the response arrived
-- @treturn integer|nil seconds, nil when `err` has no `server_date`
function M.clock_offset(err, local_now_seconds)
  if type(err) ~= "table" then
    error("bad argument #1 to 'clock_offset' (err must be a table, got " .. type(err) .. ")", 2)
  end
  if type(local_now_seconds) ~= "number" or local_now_seconds ~= local_now_seconds then
    error("bad argument #2 to 'clock_offset' (local_now_seconds must be a number, got "
      .. tostring(local_now_seconds) .. ")", 2)
  end
  local server = err.server_date
  if type(server) ~= "number" or server ~= server then return nil end
  return floor(server - local_now_seconds + 0.5)
end

return M
