--- `make sim`: runs seeds until the time budget is spent, checks every
-- invariant after each run, and on a failure prints the trace, shrinks the
-- schedule and prints the smallest one that still fails (exit 1).
--
--   SIM_SECONDS=60   how long to run (seconds of real time; default 60)
--   SIM_SEEDS=n      run exactly n seeds instead
--   SIM_START=1      the first seed
--   SIM_SEED=s       replay one seed and print its trace
--   SIM_EXPECT=n     (make mutants) go on past seeds that fail only other
--                    invariants than n, to the first that fails n; the
--                    first of those others is said at the end if none does
-- @script sim

local sim = require "sim"
local invariants = require "sim.invariants"
local shrink = require "sim.shrink"
local operator = require "sim.operator"

local format = string.format

local function count_faults(rec, totals)
  for _, send in ipairs(rec.sends) do
    if send.fault then totals[send.fault] = (totals[send.fault] or 0) + 1 end
  end
  for _, e in ipairs(rec.schedule.redis.events) do
    totals["redis:" .. e.kind] = (totals["redis:" .. e.kind] or 0) + 1
  end
end

local function check(schedule)
  local rec = sim.run(schedule)
  return invariants.check(rec), rec
end

local function report_failure(seed, failures, rec)
  print(format("\nseed %d FAILED invariant %d: %s", seed, failures[1].invariant, failures[1].message))
  for i = 2, math.min(#failures, 5) do print("  also: " .. failures[i].message) end
  print(shrink.trace(rec, failures[1]))
  print("shrinking ...")
  local small, steps = shrink.shrink(rec.original, failures[1].invariant, function(s)
    local f = check(s)
    return f
  end)
  print(format("shrunk in %d runs to:", steps))
  print(shrink.serialize(small))
  print(format("replay: SIM_SEED=%d make sim", seed))
end

local expect = tonumber(os.getenv("SIM_EXPECT") or "")
local passed_over -- (with SIM_EXPECT: the first seed that failed only other invariants, and how)

-- Failures with invariant SIM_EXPECT first; or nil (kept in passed_over)
-- when none is, under SIM_EXPECT.
local function expected(seed, failures)
  if not expect or #failures == 0 then return failures end
  local first, rest = {}, {}
  for _, f in ipairs(failures) do
    if f.invariant == expect then first[#first + 1] = f else rest[#rest + 1] = f end
  end
  if #first == 0 then
    passed_over = passed_over or { seed = seed, failure = failures[1] }
    return nil
  end
  for _, f in ipairs(rest) do first[#first + 1] = f end
  return first
end

-- The seed's operator scenario (spec/sim/operator.lua: invariants 7 to 12):
-- true, or false after saying what failed.
local function check_operator(seed)
  local failures = expected(seed, operator.run(seed))
  if not failures or #failures == 0 then return true end
  print(format("\nseed %d FAILED invariant %d: %s", seed, failures[1].invariant, failures[1].message))
  for i = 2, math.min(#failures, 5) do print("  also: " .. failures[i].message) end
  print(format("replay: SIM_SEED=%d make sim", seed))
  return false
end

local one = tonumber(os.getenv("SIM_SEED") or "")
if one then
  local failures, rec = check(sim.generate(one))
  print(shrink.trace(rec, failures[1]))
  if #failures > 0 then report_failure(one, failures, rec) os.exit(1) end
  if not check_operator(one) then os.exit(1) end
  print(format("seed %d: every invariant held (%d requests, %d operations)", one, #rec.model.arrivals, #rec.ops))
  os.exit(0)
end

local budget = tonumber(os.getenv("SIM_SECONDS") or "") or 60
local limit = tonumber(os.getenv("SIM_SEEDS") or "")
local seed = tonumber(os.getenv("SIM_START") or "") or 1
local started = os.clock()
local runs, requests, ops, strict = 0, 0, 0, 0
local faults = {}
while true do
  if limit and runs >= limit then break end
  if not limit and os.clock() - started >= budget then break end
  local failures, rec = check(sim.generate(seed))
  runs = runs + 1
  requests, ops = requests + #rec.model.arrivals, ops + #rec.ops
  if rec.strict_caps then strict = strict + 1 end
  count_faults(rec, faults)
  failures = expected(seed, failures)
  if failures and #failures > 0 then
    report_failure(seed, failures, rec)
    os.exit(1)
  end
  if not check_operator(seed) then os.exit(1) end
  if runs % 1000 == 0 then io.stderr:write(format("  %d seeds, %d requests ...\n", runs, requests)) end
  seed = seed + 1
end
if passed_over then
  print(format("\nseed %d FAILED invariant %d: %s (and no seed failed invariant %d)", passed_over.seed,
    passed_over.failure.invariant, passed_over.failure.message, expect))
  os.exit(1)
end
local elapsed = os.clock() - started
print(format("sim: %d seeds (%d..%d) in %.1f s CPU: %.0f seeds/min; %d requests, %d operations; every invariant "
  .. "held", runs, seed - runs, seed - 1, elapsed, runs / elapsed * 60, requests, ops))
local st = operator.stats
print(format("  and as many operator scenarios (credentials renewed; %d command-line runs, reconcile rounds and "
  .. "batches, %d requests, %d killed (%d of them with a power loss), %d writes cut short and %d refused by a full "
  .. "disk): invariants 7 to 10 held", st.runs, st.requests, st.kills, st.power_losses, st.cut, st.full - st.cut))
print(format("  the operator's input: %d runs checked against what their input asked for (11, 12): %d with names that "
  .. "break their rule, %d reconciles of an empty or comment-only list, %d reconciles refused for resuming more "
  .. "than --max-resume and %d over it with --yes, %d batches read as they go, %d of them from a file changed after "
  .. "it was counted, %d with standard output closed: invariants 11 and 12 held", st.checks, st.dirty, st.empty,
  st.over_resume, st.over_resume_yes, st.streamed, st.changed, st.closed))
print(format("  caps checked strictly (jitter within %.0f ms) in %d runs", sim.JITTER_MARGIN * 1000, strict))
local checks = require "sim.crowd_checks"
local cs = checks.stats
print(format("  crowded budgets (13 to 16): %d runs, %d with a stranger (%d calls offered to the provider's window, %d of them "
  .. "refused), %d a lower cap, %d a throttle storm, %d stalls, %d "
  .. "clients with a deadline (%d streams failed by a throttle after it, none before); once the room was learned %d of "
  .. "%d calls throttled (%.1f%%), at most %d in a %g s span (bound %d); the room back to %.2f of the cap at most %.1f s "
  .. "after %d strangers left (bound %g s); %d first calls of a process beside others (%d while the room was cut) at "
  .. "most %.3f of the cap above their room (bound %.2f): invariants 13 to 16 held", cs.runs, cs.strangers,
  cs.stranger_calls, cs.stranger_refused, cs.caps,
  cs.storms, cs.stalls, cs.deadlines, cs.after_deadline, cs.throttled, cs.calls,
  100 * cs.throttled / math.max(cs.calls, 1), cs.worst_span, checks.SPAN, checks.SPAN_THROTTLES, checks.RECOVERED,
  cs.worst_back, cs.left, checks.RECOVERY, cs.joiners, cs.joiners_cut, cs.worst_excess, checks.SHARED_SLACK))
local kinds = {}
for k in pairs(faults) do kinds[#kinds + 1] = k end
table.sort(kinds)
local parts = {}
for _, k in ipairs(kinds) do parts[#parts + 1] = format("%s %d", k, faults[k]) end
print("  faults injected: " .. table.concat(parts, ", "))
