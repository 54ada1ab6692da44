--- The operator's layer in the simulation: each seed also runs, on a
-- virtual clock, a credentials source that expires, rotates, arrives stale
-- and fails under the library's refresh holder, and a few ZEGO reconcile
-- rounds (the library's reconcile.zego, its state in a store that fills and
-- cannot be read, an audit log written through before_send) killed at a
-- random effect: before a request, after one, before the confirmation.
-- Then one clean round. Four invariants (docs/simulation.md):
--
--   7  every request that reached the provider belongs to a run whose
--      intent was durable before it left
--   8  after any crash the next clean round converges: the provider forbids
--      exactly the desired streams, nothing forgotten
--   9  no request is signed with credentials past their expiry
--   10 a credentials source is asked at most once per backoff step
--
--   local failures = require("sim.operator").run(seed)   -- { { invariant, message }, ... }
-- @module sim.operator

local world_mod = require "sim.world"
local refresh = require "streamctl.credentials.refresh"
local reconcile = require "streamctl.reconcile"
local audit = require "streamctl.audit"

local format = string.format
local ipairs, pairs, pcall, error, sort = ipairs, pairs, pcall, error, table.sort

local M = {}

local T0 = 1800000000

local function fail(out, n, fmt, ...)
  out[#out + 1] = { invariant = n, message = format(fmt, ...) }
end

-- ---- Credentials (9, 10)

-- A source whose every answer is drawn: fresh (a life of 30 s to an hour),
-- stale (expired), near (within the clock's uncertainty) or a failure.
local function credentials(rng, out)
  local now = T0 + rng:int(0, 1000)
  local fetches, streak, last_bad = 0, 0, nil
  local weights = { fresh = rng:between(0.2, 0.9), stale = rng:between(0, 0.3), near = rng:between(0, 0.2),
                    fails = rng:between(0, 0.4) }
  local function fetch()
    fetches = fetches + 1
    -- 10: after a fetch that gave nothing usable, none again within half its backoff step
    -- (the holder's jitter is drawn here in [0.5, 1): each wait is at least half its bound)
    if last_bad and now < last_bad.at + 0.5 * math.min(refresh.RETRY_MAX_S, 2 ^ (last_bad.streak - 1)) then
      fail(out, 10, "credentials: the source was asked again %.2f s after answer %d gave nothing usable (failure %d "
        .. "in a row: at least %.1f s)", now - last_bad.at, fetches - 1, last_bad.streak,
        0.5 * math.min(refresh.RETRY_MAX_S, 2 ^ (last_bad.streak - 1)))
    end
    local total = weights.fresh + weights.stale + weights.near + weights.fails
    local r = rng:float() * total
    local expiration
    if r < weights.fresh then
      streak, last_bad = 0, nil
      expiration = now + rng:int(30, 3600)
    else
      streak = streak + 1
      last_bad = { at = now, streak = streak }
      if r < weights.fresh + weights.stale then
        expiration = now - rng:int(0, 600)
      elseif r < weights.fresh + weights.stale + weights.near then
        expiration = now + rng:between(0, refresh.UNCERTAINTY_S - 0.01)
      else
        return nil, "the metadata service answered 500"
      end
    end
    return { access_key_id = "STS.K" .. fetches, access_key_secret = "s", security_token = "t",
             expiration = expiration }
  end
  local holder = refresh.new { source = "the simulated source", fetch = fetch, clock = function() return now end,
                               random = function() return 0.5 + rng:float() / 2 end }
  for _ = 1, rng:int(20, 120) do
    now = now + (rng:chance(0.3) and rng:between(0, 0.2) or rng:between(0, 90))
    for _ = 1, rng:int(1, 5) do
      local c = holder:get()
      -- 9: what a request would be signed with, now
      if c and now >= c.expiration then
        fail(out, 9, "credentials: %s handed out at %.1f, %.1f s past their expiry", c.access_key_id, now - T0,
          now - c.expiration)
      end
    end
  end
end

-- ---- Reconcile rounds (7, 8)

local POOL = { "rtc:a", "rtc:b", "rtc:c", "rtc:d", "rtc:e", "rtc:f", "cdn:g", "cdn:h" }

local function items_of(keys)
  local out = {}
  for i, k in ipairs(keys) do
    local kind, id = k:match("^(%a+):(.*)$")
    out[i] = { stream_id = id, kind = kind }
  end
  return out
end

local function rounds(rng, out)
  local now = T0
  local forbidden = {}                 -- the provider: key -> true
  local log = {}                       -- the audit log's durable lines
  local held = nil                     -- the state store's durable text
  local run = nil                      -- this round's intent: { durable }
  local effects, kill_at = 0, nil      -- effects made this round; the one a kill comes before
  local faults = { set = 0, get = 0, send = 0, intent = 0 }
  local function effect(what)
    effects = effects + 1
    if kill_at and effects == kill_at then error({ killed = what }, 0) end
  end
  local store = {
    get = function()
      if rng:chance(faults.get) then return nil, "cannot be read (simulated)" end
      return held
    end,
    set = function(_, _, text)
      effect("a state save")
      if rng:chance(faults.set) then return nil, "disk full (simulated)" end
      held = text
      return true
    end,
  }
  -- a request reaching the provider: 7 checked as it arrives
  local function arrive(key, forbid)
    if not (run and run.durable) then
      fail(out, 7, "reconcile: a %s of %s reached the provider without a durable intent", forbid and "forbid"
        or "resume", key)
    end
    forbidden[key] = forbid or nil
  end
  local function change(keys, forbid)
    local results = {}
    for _, key in ipairs(keys) do
      effect("a request")
      local r = rng:float()
      if r < faults.send then
        results[#results + 1] = { stream = key, ok = false, error = { code = "InternalError" } }
      elseif r < 2 * faults.send then
        arrive(key, forbid) -- (applied, its answer lost)
        results[#results + 1] = { stream = key, ok = false, outcome_unknown = true, error = { code = "Timeout" } }
      else
        arrive(key, forbid)
        results[#results + 1] = { stream = key, ok = true, attempts = 1, request_id = "r" }
      end
      effect("a recorded answer")
    end
    return results
  end
  local function batch(prefix, forbid)
    return function(_, f)
      local keys = {}
      for i, id in ipairs(f.stream_ids) do keys[i] = prefix .. id end
      local results = change(keys, forbid)
      for i, r in ipairs(results) do r.stream = f.stream_ids[i] end
      return { results = results, calls = #keys }
    end
  end
  local function single(prefix, forbid)
    return function(_, f)
      local r = change({ prefix .. f.stream_id }, forbid)[1]
      if r.ok then return { RequestId = "r" } end
      return nil, { code = r.error.code, outcome_unknown = r.outcome_unknown }
    end
  end
  local client = { app_id = "1234567890", now = function() return now end,
    forbid_rtc_streams = batch("rtc:", true), resume_rtc_streams = batch("rtc:", false),
    forbid_cdn_live_stream = single("cdn:", true), resume_cdn_live_stream = single("cdn:", false) }
  local function before_send(plan)
    effect("the intent")
    run = { durable = false }
    local names = {}
    for _, k in ipairs(plan.missing) do names[#names + 1] = k end
    for _, k in ipairs(plan.extra) do names[#names + 1] = k end
    local digest, count = audit.digest(names)
    local line = audit.record { record = "intent", run = audit.run_id(), command = "reconcile", count = count,
                                digest = digest }
    if rng:chance(faults.intent) then return false, "disk full (simulated)" end
    log[#log + 1] = line
    run.durable = true
    return true
  end
  local desired
  for _ = 1, rng:int(2, 6) do
    now = now + rng:int(1, 600)
    desired = {}
    for _, k in ipairs(POOL) do if rng:chance(0.4) then desired[#desired + 1] = k end end
    faults = { set = rng:chance(0.3) and 0.2 or 0, get = rng:chance(0.15) and 0.5 or 0,
               send = rng:chance(0.4) and 0.15 or 0, intent = rng:chance(0.15) and 0.5 or 0 }
    effects, run = 0, nil
    kill_at = rng:chance(0.5) and rng:int(1, 12) or nil
    local ok, r = pcall(reconcile.zego, client, items_of(desired),
      { state = store, remove_extra = true, confirm = true, before_send = before_send })
    if not ok and not (type(r) == "table" and r.killed) then error(r, 0) end
  end
  -- the clean round: no kill, no fault; twice when the first finds unknowns to settle
  faults, kill_at = { set = 0, get = 0, send = 0, intent = 0 }, nil
  now = now + 1
  local report, err = reconcile.zego(client, items_of(desired), { state = store, remove_extra = true, confirm = true,
                                                                    before_send = before_send })
  if not report then
    fail(out, 8, "reconcile: the clean round did not run: %s", tostring(err and err.message))
    return
  end
  local want, got = {}, {}
  for _, k in ipairs(desired) do want[#want + 1] = k end
  for k in pairs(forbidden) do got[#got + 1] = k end
  sort(want)
  sort(got)
  if table.concat(want, " ") ~= table.concat(got, " ") then
    fail(out, 8, "reconcile: after a clean round the provider forbids {%s}, the desired state is {%s}",
      table.concat(got, " "), table.concat(want, " "))
  end
end

--- Runs seed's operator scenario; returns the failures (empty when every
-- invariant held).
function M.run(seed)
  local out = {}
  credentials(world_mod.rng(seed + 3000017), out)
  rounds(world_mod.rng(seed + 4000037), out)
  return out
end

return M
