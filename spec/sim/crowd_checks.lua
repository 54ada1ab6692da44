--- The promises of issue 48 (a budget shared with strangers), checked
-- after a run against the model's record and the rooms the clients
-- reported (each attempt's `on_attempt` room, in crowded runs):
--
--  13 deadline    no stream fails for a throttle inside its run's
--                 deadline: without `deadline_ms` none fails with a
--                 throttle (nor unsent: DeadlineExceeded, Interrupted) at
--                 all, unless its process was cancelled; with one, only at
--                 or after its run's start plus the deadline (every run,
--                 crowded or not: the network's injected throttles count
--                 too)
--  14 throttles   on the crowded action, in any 5 s span after the first
--                 second of a stranger or a lower cap (from the first call
--                 that met it) and outside a storm (and the first second
--                 after it), at most SPAN_THROTTLES calls are throttled
--  15 recovery    once a stranger left (no lower cap, no storm after it),
--                 every call of the crowded action answered RECOVERY s
--                 after or later reports a room of at least 0.95 of the
--                 cap
--  16 shared      through Redis, a process's first call of the crowded
--                 action reports a room at most SHARED_SLACK of the cap
--                 above what another process reported in the half second
--                 before it, grown since as fast as the rule can grow it:
--                 a process that starts later starts from the room the
--                 others learned
--
-- Each check also adds to `M.stats` (make sim's summary line).
-- @module sim.crowd_checks

local room = require "streamctl.engine.room"

local format = string.format
local ipairs, pairs, tostring = ipairs, pairs, tostring
local max, huge = math.max, math.huge

local M = {}

--- 14: the span (s) and the throttles it may hold.
M.SPAN, M.SPAN_THROTTLES = 5, 20
--- 14: how long after the first call that met a stranger, a lower cap or a
-- storm's end the rule may take to find the room.
M.LEARN = 1
--- 15: the room is back to RECOVERED of the cap within RECOVERY s of the stranger leaving.
M.RECOVERY, M.RECOVERED = 10, 0.95
--- 16: how far above the others' room a newcomer's may be, and how long
-- after theirs.
M.SHARED_SLACK, M.SHARED_WITHIN = 0.15, 0.5
--- 16: the fastest the rule grows a room (of the cap a second): CUBIC's
-- slope 3 C x^2 where it reaches the cap from the floor, x = cbrt((1 -
-- FLOOR) / C) (0.62 with C 0.01).
M.GROWTH = 3 * room.C * ((1 - room.FLOOR) / room.C) ^ (2 / 3)

M.stats = { runs = 0, strangers = 0, caps = 0, storms = 0, stalls = 0, deadlines = 0, calls = 0, throttled = 0,
            worst_span = 0, left = 0, worst_back = 0, joiners = 0, joiners_cut = 0, worst_excess = -huge,
            after_deadline = 0, stranger_calls = 0, stranger_refused = 0 }

local function fail(out, n, msg, ...)
  out[#out + 1] = { invariant = n, message = format(msg, ...) }
end

-- The deadline (s) of process `name` in schedule `s` and when it is cancelled.
local function process_of(s, name)
  for _, p in ipairs(s.procs) do
    if p.name == name then return p.deadline_ms and p.deadline_ms / 1000, p.cancel_at end
  end
end

-- A failure a throttle or a stop makes: the throttle itself, or a call
-- never sent because the run stopped (its deadline; Interrupted is a
-- cancel's, and a run its process never cancelled must not end so).
local function by_throttle(kind, code)
  return kind == "throttled" or code == "DeadlineExceeded" or code == "Interrupted"
end

-- 13: each stream that failed by a throttle (or the deadline) did so at or
-- after its run's deadline.
local function check_deadlines(rec, out)
  local st = M.stats
  for _, op in ipairs(rec.ops) do
    local deadline, cancel_at = process_of(rec.schedule, op.process)
    local function check(stream, kind, code, t)
      if not by_throttle(kind, code) or (cancel_at and t >= cancel_at) then return end
      if deadline and t >= op.started_at + deadline - 1e-9 then
        st.after_deadline = st.after_deadline + 1
        return
      end
      fail(out, 13, "%s op %s(%s) started at %.3f: stream %s failed (%s) at %.3f, %s", op.process, op.kind,
        tostring(op.method), op.started_at, tostring(stream), tostring(code), t,
        deadline and format("inside its deadline of %.3f s", deadline) or "in a run without a deadline")
    end
    if op.kind == "batch" then
      for _, e in ipairs(op.entries) do
        if not e.ok then check(e.stream, e.kind, e.code, e.t) end
      end
    elseif op.err and op.finished_at then
      check(op.stream, op.err.kind, op.err.code, op.finished_at)
    end
  end
end

-- The crowded action's arrivals, in order.
local function arrivals_of(rec, action)
  local list = {}
  for _, a in ipairs(rec.model.arrivals) do
    if a.action == action then list[#list + 1] = a end
  end
  return list
end

-- Where 14 does not look: from a stranger's or a lower cap's start to LEARN
-- after the first call that met it; a storm, and LEARN after the first call
-- after it.
local function learning(c, list)
  local zones = {}
  local function from(t0, t1)
    local met
    for _, a in ipairs(list) do
      if a.t >= t1 then met = a.t break end
    end
    zones[#zones + 1] = { t0, (met or huge) + M.LEARN }
  end
  if c.stranger then from(c.stranger.from, c.stranger.from) end
  if c.cap then from(c.cap.from, c.cap.from) end
  if c.storm then from(c.storm.from, c.storm.to) end
  return zones
end

-- 14: the throttled calls of the crowded action in each SPAN.
local function check_throttles(rec, out)
  local c, st = rec.schedule.crowd, M.stats
  local list = arrivals_of(rec, c.action)
  local zones = learning(c, list)
  local worst, at = 0, nil
  for i, a in ipairs(list) do
    local clear = true
    for _, z in ipairs(zones) do
      if z[1] < a.t + M.SPAN and z[2] > a.t then clear = false break end
    end
    local inside = false
    for _, z in ipairs(zones) do
      if a.t >= z[1] and a.t < z[2] then inside = true break end
    end
    if not inside then
      st.calls = st.calls + 1
      if a.verdict == "throttled" then st.throttled = st.throttled + 1 end
    end
    if clear then
      local n = 0
      for j = i, #list do
        if list[j].t >= a.t + M.SPAN then break end
        if list[j].verdict == "throttled" then n = n + 1 end
      end
      if n > worst then worst, at = n, a.t end
    end
  end
  st.worst_span = max(st.worst_span, worst)
  if worst > M.SPAN_THROTTLES then
    fail(out, 14, "%s: %d calls throttled in the %g s from %.3f (at most %d once the room is learned)", c.action,
      worst, M.SPAN, at, M.SPAN_THROTTLES)
  end
end

-- 15: the room back after the stranger left.
local function check_recovery(rec, out)
  local c, st = rec.schedule.crowd, M.stats
  local left = c.stranger and c.stranger.to
  if not left or c.cap or (c.storm and c.storm.to > left - 1) then return end
  local last_low, seen = nil, 0
  for _, r in ipairs(rec.rooms) do
    if r.action == c.action and r.t >= left and r.cap then
      local f = r.room / r.cap
      if f < M.RECOVERED then last_low = r end
      if r.t >= left + M.RECOVERY then seen = seen + 1 end
    end
  end
  if seen == 0 then return end -- (no call after: nothing to see)
  st.left = st.left + 1
  local back = last_low and last_low.t - left or 0
  st.worst_back = max(st.worst_back, back)
  if back >= M.RECOVERY then
    fail(out, 15, "%s: the stranger left at %.3f, and %s reported a room of %.3f of the cap at %.3f (%.2f s later; "
      .. "at least %.2f within %g s)", c.action, left, last_low.process, last_low.room / last_low.cap, last_low.t,
      back, M.RECOVERED, M.RECOVERY)
  end
end

-- 16: a process's first call of the crowded action against the rooms the
-- others reported around it.
local function check_shared(rec, out)
  local s, st = rec.schedule, M.stats
  if s.store ~= "redis" or s.processes < 2 then return end
  local list = {}
  for _, r in ipairs(rec.rooms) do
    if r.action == s.crowd.action and r.cap then list[#list + 1] = r end
  end
  local first = {}
  for i, r in ipairs(list) do
    if not first[r.process] then first[r.process] = i end
  end
  for name, i in pairs(first) do
    local mine, high = list[i], nil
    for _, r in ipairs(list) do
      if r.process ~= name and r.t >= mine.t - M.SHARED_WITHIN and r.t <= mine.t then
        high = max(high or 0, r.room / r.cap + M.GROWTH * (mine.t - r.t))
      end
    end
    if high then
      st.joiners = st.joiners + 1
      if high < 1 - M.SHARED_SLACK then st.joiners_cut = st.joiners_cut + 1 end -- (where it can fail)
      local excess = mine.room / mine.cap - high
      st.worst_excess = max(st.worst_excess, excess)
      if excess > M.SHARED_SLACK then
        fail(out, 16, "%s: %s's first call at %.3f reports a room of %.3f of the cap, where the others' in the %g s "
          .. "before, grown since at %.2f a second, was at most %.3f", s.crowd.action, name, mine.t, mine.room / mine.cap,
          M.SHARED_WITHIN, M.GROWTH, high)
      end
    end
  end
end

--- Checks a run's record (13 for every run, 14 to 16 for crowded ones),
-- adding failures `{ invariant, message }` to `out`.
function M.check(rec, out)
  check_deadlines(rec, out)
  local c = rec.schedule.crowd
  if not c then return end
  local st = M.stats
  st.runs = st.runs + 1
  if c.stranger then
    st.strangers = st.strangers + 1
    st.stranger_calls = st.stranger_calls + c.stranger.accepted + c.stranger.refused
    st.stranger_refused = st.stranger_refused + c.stranger.refused
  end
  if c.cap then st.caps = st.caps + 1 end
  if c.storm then st.storms = st.storms + 1 end
  for _, p in ipairs(rec.schedule.procs) do
    if p.stalls then st.stalls = st.stalls + #p.stalls end
    if p.deadline_ms then st.deadlines = st.deadlines + 1 end
  end
  check_throttles(rec, out)
  check_recovery(rec, out)
  check_shared(rec, out)
end

return M
