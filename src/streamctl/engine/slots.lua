--- When a job of the engine (streamctl.engine.runner) may be sent: its
-- rate-limit slot reserved just in time (a stale one given up, a refusal
-- holding every job of the action until its slot is within reach), the
-- window that holds a request whose second is full, and the settling of a
-- stream after an attempt whose outcome is unknown. See the runner's
-- "Pacing" and "Order".
-- @module streamctl.engine.slots

local ipairs, pairs, max, min, huge = ipairs, pairs, math.max, math.min, math.huge

-- Delays at or below this many seconds count as zero (pacing's own).
local EPSILON = require("streamctl.engine.ratelimit").EPSILON

local M = {}

--- How long (seconds) a reservation may hold the loop before the round trips
-- in flight meanwhile go unmeasured (see `decode_answer`).
M.STALL = 0.002

--- The longest the engine waits before asking `pace` again after it
-- reserved nothing (a delay longer than that, however it came about, is
-- asked about again rather than slept through).
M.MAX_PACE_WAIT = 1

-- The least it waits before asking `pace` again (no busy loop).
local MIN_PACE_WAIT = 0.001

-- The action the job's next attempt sends.
local function next_action(job)
  return job.next_role == "lookup" and job.recover.action or job.action
end

-- When `action` may next be sent under its window (nil: now).
local function window_hold(engine, action, now)
  local n = engine.window and engine.window(action)
  if not n or n < 1 then return nil end
  local ring = engine.sends[action]
  if not ring or #ring < n then return nil end
  local oldest = ring[ring.pos % n + 1] -- the send n back
  local guard = engine.slack()
  local at = oldest + 1 + guard
  if at > now + EPSILON then return at end
  return nil
end

-- Records a send of `action` at `now`.
local function record_send(engine, action, now)
  local n = engine.window and engine.window(action)
  if not n or n < 1 then return end
  local ring = engine.sends[action]
  if not ring or ring.n ~= n then
    ring = { pos = 0, n = n }
    engine.sends[action] = ring
  end
  ring.pos = ring.pos % n + 1
  ring[ring.pos] = now
end

-- Records that `job`'s streams may still see one of its attempts land.
local function unsettle(engine, job, now)
  local settled_at = job.unknown_since + engine.settle
  local u = engine.unsettled
  for _, s in ipairs(job.streams or {}) do
    if not u[s] or u[s].settled_at < settled_at then
      if not u[s] then engine.unsettled_count = engine.unsettled_count + 1 end
      u[s] = { settled_at = settled_at, action = job.action }
    end
  end
  if engine.unsettled_count > 256 then -- forget what has settled
    for s, e in pairs(u) do
      if e.settled_at <= now then u[s], engine.unsettled_count = nil, engine.unsettled_count - 1 end
    end
  end
end

-- Until when a success of `job` must wait for an earlier unknown attempt of
-- another action on one of its streams; nil when none is pending.
local function settles_at(engine, job, now)
  local latest
  for _, s in ipairs(job.streams or {}) do
    local e = engine.unsettled[s]
    if e and e.action ~= job.action and e.settled_at > now and (not latest or e.settled_at > latest) then
      latest = e.settled_at
    end
  end
  return latest
end

local function by_time(a, b) return a.at < b.at end

-- Whether `job`'s reserved slot has gone stale at `now`: used more than the
-- lateness allowed after its time (a stalled process, a busy machine), while
-- the schedule's next slot, as it stood when this one was reserved, is less
-- than a second and the guard away. A request sent later than that shares
-- no provider second with the next one, nor with any reserved after it
-- (none comes sooner), so a slow schedule keeps its slot: at `--rate 0.0001`
-- a slot given up for a 20 ms stall would cost the whole 10,000 s interval
-- (spec/command/40 waited that long on a loaded machine).
local function next_far(job, now, guard)
  return job.slot_next ~= nil and job.slot_next - now >= 1 + guard
end
local function stale(engine, job, now)
  local guard, late = engine.slack()
  if now - job.slot_at <= late then return false end
  return not next_far(job, now, guard)
end

-- nil when `job`, due now, may be sent now; else when to look at it again.
-- Reserves its rate-limit slot just in time (see "Pacing" above): a slot
-- gone stale is given up, a refused reservation keeps every job of that
-- action waiting until the slot is within reach, and the window holds a
-- request whose second is full.
local function reserve_or_wait(engine, job, now)
  local action = next_action(job)
  -- A call that neither a look-up can verify nor the service orders itself
  -- waits until an earlier unknown attempt of another action on its
  -- streams can no longer land (see "Order").
  if not job.recover and not job.ordered and job.next_role == "call" then
    local at = settles_at(engine, job, now)
    if at and at > now + EPSILON then return at end
  end
  if job.slot_at then
    local cut = engine.throttled_at[action]
    if stale(engine, job, now) then
      job.slot_at = nil -- too late for its slot
    elseif cut and job.slot_taken < cut then
      -- The room was cut since it was reserved: the slot was spaced at a room
      -- the provider just refused; a new one is spaced at the room it left.
      -- (Once per cut, never for every throttle: a call throttled again and
      -- again would otherwise take the slot of every other call each time.)
      job.slot_at = nil
    end
  end
  if not engine.pace then return window_hold(engine, action, now) end -- (nothing paced: no slot)
  if not job.slot_at then
    local wait = engine.pace_wait[action]
    if wait then
      if wait > now + EPSILON then return wait end
      engine.pace_wait[action] = nil
    end
    local horizon = engine.horizon and engine.horizon(action) or huge
    local asked = engine.io.now()
    local delay, committed, next_delay, cut = engine.pace(action, horizon, job)
    delay = delay or 0
    -- (a cut of the room another process made, learned with this slot: the
    -- slots reserved before it are given up, as after one of our own)
    if cut then engine.throttled_at[action] = asked end
    now = engine.io.now() -- (a shared store's answer took a round trip: its delays count from now)
    -- (held that long, the loop read no answer meanwhile: see `decode_answer`)
    if now - asked > M.STALL then engine.stalled_until = now end
    if committed == false then
      local back = now + min(max((next_delay or delay) - horizon, MIN_PACE_WAIT), M.MAX_PACE_WAIT)
      engine.pace_wait[action] = back
      return back
    end
    -- the next job of this action asks when the slot after this one is within reach
    if next_delay and next_delay > horizon then
      engine.pace_wait[action] = now + min(next_delay - horizon, M.MAX_PACE_WAIT)
    end
    job.slot_at, job.slot_taken, job.slot_next = now + delay, now, next_delay and now + next_delay
    if delay > EPSILON then return job.slot_at end
  end
  return window_hold(engine, action, now) -- an earlier request went late: wait for its second to pass
end

-- A run: one call of Engine:run, its jobs and their state. Every run of an
-- engine in progress (a run started from another's `on_progress` nests in

M.next_action = next_action
M.record_send = record_send
M.unsettle = unsettle
M.settles_at = settles_at
M.by_time = by_time
M.reserve_or_wait = reserve_or_wait
M.stale = stale

--- How long (seconds) the transport may take to hand `job`'s request to a
-- connection before its slot goes stale (as `stale` counts it), sent at
-- `now`; nil when its slot has none to lose (no slot, the next one a second
-- away) or it missed its slot that way MAX_MISSES times already.
M.MAX_MISSES = 3
function M.send_within(engine, job, now)
  if not job.slot_at or (job.slot_missed or 0) >= M.MAX_MISSES then return nil end
  local guard, late = engine.slack()
  if next_far(job, now, guard) then return nil end
  return max(0, late - (now - job.slot_at))
end

return M
