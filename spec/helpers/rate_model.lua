-- Test helper: independent models of the emulator's rate limiters
-- (emulator/src/streamctl/emulator/ratelimit.lua, docs/development/emulator-fidelity.md), and a
-- check of a running emulator's verdicts against them, fed the times the
-- emulator itself reports: each request's rate_limit_time in its log (the
-- limiter's own clock when the request reached it). A row that sends a burst
-- asserts its verdicts this way on any machine, however slow; the pattern it
-- planned ("the first 30 ok, then throttled") holds only when the arrivals
-- really came as planned, by that clock, so the row asserts the pattern only
-- then (rate_model.planned) and otherwise says so on stderr, never failing
-- on the machine's speed alone (that is make bench's).
--
--   local rates = require "spec.helpers.rate_model"
--   rates.window_model(n, span), rates.bucket_model(qps)   -- model(t) -> ok, wait_ms
--   rates.limiter(qps, algorithm)                          -- the model the emulator uses for qps
--   rates.run_model(model, stranger_times, real_times)     -- verdicts, stranger accepted, throttled
--   rates.check(entries, budget, what) -> replay           -- asserts the log's verdicts = the models'
--   rates.times(entries, pred), rates.spread(times)
--   rates.planned(fits, what, detail)                      -- true, or a note on stderr and false
--   rates.within(times, span, what), rates.apart(times, span, what)   -- planned on the spread
local assert = require "luassert" -- busted gives specs its assert; a required module asks for it

local M = {}

-- An independent sliding window: the accepted arrivals in a list; an arrival
-- at t is accepted when fewer than n of them are in (t - span, t]. A refused
-- one gets the wait, in ms unrounded, until the oldest of them leaves the
-- window (the emulator answers its ceiling, at least 1).
-- `closed`: [t - span, t], an arrival exactly span old still inside.
function M.window_model(n, span, closed)
  local accepted = {}
  return function(t)
    local inside, oldest = 0, nil
    for _, a in ipairs(accepted) do
      if a > t - span or closed and a == t - span then
        inside = inside + 1
        oldest = oldest or a -- (fed in time order: the first inside is the oldest)
      end
    end
    if inside < n then
      accepted[#accepted + 1] = t
      return true
    end
    return false, (oldest + span - t) * 1000
  end
end

-- A token bucket, created full at its first arrival. A refused arrival gets
-- the wait, in ms unrounded, until one token is back.
function M.bucket_model(qps)
  local tokens, last
  return function(t)
    tokens = last and math.min(qps, tokens + (t - last) * qps) or qps
    last = t
    if tokens >= 1 then
      tokens = tokens - 1
      return true
    end
    return false, (1 - tokens) / qps * 1000
  end
end

-- The model of the emulator's limiter for qps: "sliding_window" (nil: the
-- default) allows floor(qps) in any 1 s, a qps below 1 one per 1 / qps s;
-- "token_bucket" a bucket of qps tokens.
function M.limiter(qps, algorithm)
  algorithm = algorithm or "sliding_window"
  if algorithm == "token_bucket" then
    return M.bucket_model(qps)
  end
  local closed = algorithm == "sliding_window_closed"
  assert(closed or algorithm == "sliding_window", "unknown rate limiter " .. tostring(algorithm))
  if qps < 1 then
    return M.window_model(1, 1 / qps, closed)
  end
  return M.window_model(math.floor(qps), 1, closed)
end

-- Feeds the model a stranger's arrivals and the real ones in time order
-- (a stranger's arrival first at the same time: it was due before the real
-- request reached the limiter). Returns the real verdicts in order and the
-- stranger's accepted and throttled.
function M.run_model(model, stranger_times, real_times)
  local events = {}
  for i, t in ipairs(stranger_times) do
    events[#events + 1] = { t = t, stranger = true, i = i }
  end
  for i, t in ipairs(real_times) do
    events[#events + 1] = { t = t, stranger = false, i = i }
  end
  table.sort(events, function(a, b)
    if a.t ~= b.t then return a.t < b.t end
    if a.stranger ~= b.stranger then return a.stranger end
    return a.i < b.i
  end)
  local verdicts, accepted, throttled = {}, 0, 0
  for _, e in ipairs(events) do
    local ok = model(e.t)
    if not e.stranger then
      verdicts[e.i] = ok
    elseif ok then
      accepted = accepted + 1
    else
      throttled = throttled + 1
    end
  end
  return verdicts, accepted, throttled
end

-- The budget a log entry counted against, as the gateways key it
-- (aliyun_gateway.budget, zego_gateway.budget): an Aliyun key configured
-- with an account (its entry's account_uid) on the account's, another key
-- on its own; a ZEGO request on its AppId's; per action.
function M.key_of(e)
  local who
  if e.provider == "aliyun" then
    who = e.account_uid and ("uid " .. e.account_uid) or ("key " .. tostring(e.account))
  else
    who = "app " .. tostring(e.account)
  end
  return e.provider .. " " .. who .. " " .. tostring(e.action)
end

-- The entries that reached the limiter (a rate_limit_time: those refused
-- before it have none), in the limiter's order: its clock, then seq.
local function limited(entries)
  local out = {}
  for _, e in ipairs(entries) do
    if e.rate_limit_time then
      out[#out + 1] = e
    end
  end
  table.sort(out, function(a, b)
    if a.rate_limit_time ~= b.rate_limit_time then return a.rate_limit_time < b.rate_limit_time end
    return a.seq < b.seq
  end)
  return out
end

-- The limiter's verdict of an entry: "throttled", or "ok" for any other
-- (an operation's error comes after the limiter accepted the request).
local function limiter_verdict(e)
  return e.verdict == "throttled" and "throttled" or "ok"
end

-- Whether the retry_after_ms the emulator answered is the model's wait:
-- its ceiling, at least 1 (either ceiling when the wait is within a
-- rounding of a whole ms: the log keeps 14 digits of each time).
local function same_wait(got, wait)
  local function answer(w) return math.max(1, math.ceil(w)) end
  return got == answer(wait) or got == answer(wait - 1e-6) or got == answer(wait + 1e-6)
end

--- Replays the log's entries that reached the limiter through the models,
-- one per budget (M.key_of), at the limiter's own times, and asserts that
-- the emulator's verdicts (and a refusal's retry_after_ms) are the models'.
-- budget(entry) -> qps, algorithm (nil: the default sliding window); a
-- number: that qps for every entry. what: named in a failure.
-- Returns { verdicts (the limiter's, "ok"/"throttled", of the entries that
-- reached it, in their order), by_seq (seq -> that verdict), accepted,
-- throttled, times (sorted), keys (key -> its sorted times) }.
function M.check(entries, budget, what)
  local models, keys, times = {}, {}, {}
  local want, got, by_seq, waits = {}, {}, {}, {}
  local accepted, throttled = 0, 0
  local order = limited(entries)
  for _, e in ipairs(order) do
    local key = M.key_of(e)
    if not models[key] then
      local qps, algorithm
      if type(budget) == "number" then
        qps = budget
      else
        qps, algorithm = budget(e)
      end
      assert(qps, (what or "") .. ": no budget given for " .. key)
      models[key], keys[key] = M.limiter(qps, algorithm), {}
    end
    local ok, wait = models[key](e.rate_limit_time)
    local label = string.format("seq %d (%s at %.9f)", e.seq, key, e.rate_limit_time)
    want[#want + 1] = label .. ": " .. (ok and "ok" or "throttled")
    local v = limiter_verdict(e)
    got[#got + 1] = label .. ": " .. v
    if v == "throttled" and not ok then
      waits[#waits + 1] = { label = label, got = e.retry_after_ms, wait = wait }
    end
    by_seq[e.seq] = v
    accepted = accepted + (v == "ok" and 1 or 0)
    throttled = throttled + (v == "throttled" and 1 or 0)
    times[#times + 1] = e.rate_limit_time
    keys[key][#keys[key] + 1] = e.rate_limit_time
  end
  assert.are.same(want, got, (what or "") .. ": the emulator's verdicts against the model's, at its own times")
  for _, w in ipairs(waits) do
    assert.is_true(same_wait(w.got, w.wait), (what or "") .. ": " .. w.label .. " retry_after_ms "
      .. tostring(w.got) .. ", the model's wait " .. w.wait .. " ms")
  end
  local verdicts = {}
  for _, e in ipairs(entries) do
    if by_seq[e.seq] then
      verdicts[#verdicts + 1] = by_seq[e.seq]
    end
  end
  return { verdicts = verdicts, by_seq = by_seq, accepted = accepted, throttled = throttled, times = times,
           keys = keys }
end

--- The rate_limit_time of the entries that reached the limiter (and that
-- pred(entry) accepts, when given), sorted.
function M.times(entries, pred)
  local out = {}
  for _, e in ipairs(limited(entries)) do
    if not pred or pred(e) then
      out[#out + 1] = e.rate_limit_time
    end
  end
  return out
end

--- Seconds from the first of the times (sorted) to the last; 0 for fewer than two.
function M.spread(times)
  if #times < 2 then
    return 0
  end
  return times[#times] - times[1]
end

--- Whether to assert a row's planned pattern: `fits`, whether the arrivals
-- came as planned by the limiter's clock. When not, a note on stderr says
-- the pattern was not checked (the machine was too slow, or the arrivals
-- bunched), the verdicts having been checked against the model all the same.
function M.planned(fits, what, detail)
  if not fits then
    io.stderr:write("\nnote: ", what, ": the planned pattern was not checked: the arrivals did not come as planned",
      " by the emulator's limiter clock (", detail or "a slow machine", "); its verdicts were checked",
      " against the model at those times\n")
  end
  return fits
end

--- rate_model.planned for a plan of arrivals all within `span` s of the
-- first (times: sorted).
function M.within(times, span, what)
  local spread = M.spread(times)
  return M.planned(spread < span, what, string.format("%d arrivals over %.3f s, planned within %g s",
    #times, spread, span))
end

--- rate_model.planned for a plan of the last arrival at least `span` s
-- after the first (times: sorted).
function M.apart(times, span, what)
  local spread = M.spread(times)
  return M.planned(spread >= span, what, string.format("%d arrivals over %.3f s, planned over %g s at least",
    #times, spread, span))
end

return M
