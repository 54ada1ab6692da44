--- The simulator's crowded schedules (issue 48): an account whose budget is
-- not streamctl's alone. Drawn by a stream of their own (an eighth of the
-- mixed schedules), each has, on one action its processes send batches of
-- (the crowded action: Aliyun's ForbidLiveStream or ResumeLiveStream,
-- ZEGO's ForbidRTCStreams or ResumeRTCStreams), some of:
--
-- * a stranger: another tool on the account, `rate` calls a second (25% to
--   75% of the cap in force), steady or in bursts of `burst` calls at once,
--   from `from` (the start, or a drawn time) until `to` (it leaves; or
--   never), counted by the provider's window as the emulator counts one
--   (spec/sim/provider.lua);
-- * a lower cap: the account's own, 40% to 75% of the page's, from the
--   start or a drawn time;
-- * a throttle storm: 0.5 to 4 s in which the provider refuses every
--   request of the account (a throttle, as its limiter answers);
-- * stalls: a process descheduled for 20 ms to 1.5 s (nothing of it runs,
--   its clock goes on: its slots come due while it cannot send), in half
--   the runs, and in every run that has none of the above (there the caps
--   are checked strictly, invariant 1);
--
-- and processes that start late (the learned room must be theirs too),
-- clients with a deadline (`deadline_ms`, 2 to 20 s: a batch's throttled
-- streams may fail only after it), a network within the margin whose faults
-- are neither throttles nor late deliveries (the storms are this family's
-- throttles), a Redis without events. Each process goes round its batches
-- (two of the crowded action for one of the other) until `until_t`, 12 s
-- after the stranger left, at least 8 s after the storm ended and the cap
-- was lowered: calls keep coming.
-- @module sim.crowd

local world_mod = require "sim.world"
local provider = require "sim.provider"

local floor, max = math.floor, math.max

local M = {}

--- The share of the mixed schedules that are crowded.
M.SHARE = 1 / 8

-- The faults a crowded run's network may inject: no throttles (the storms
-- are), no late deliveries nor second copies (the caps stay strict).
local KINDS = { "refused", "5xx_before", "5xx_after", "no_answer", "late_answer", "reset_after", "reset_lost",
                "malformed" }

local METHODS = {
  aliyun = { { "forbid_live_streams", "ForbidLiveStream" }, { "resume_live_streams", "ResumeLiveStream" } },
  zego = { { "forbid_rtc_streams", "ForbidRTCStreams" }, { "resume_rtc_streams", "ResumeRTCStreams" } },
}

-- The crowd on `action` (cap: the page's): a lower cap, a stranger, a storm.
local function draw_crowd(rng, action, cap)
  local c = { action = action }
  if rng:chance(0.35) then
    c.cap = { action = action, cap = max(2, floor(cap * rng:between(0.4, 0.75))),
              from = rng:chance(0.7) and 0 or rng:between(3, 12) }
  end
  if rng:chance(0.6) then
    local rate = (c.cap and c.cap.cap or cap) * rng:between(0.25, 0.75)
    local from = rng:chance(0.4) and 0 or rng:between(2, 8)
    c.stranger = { action = action, rate = rate, burst = rng:chance(0.5) and 1 or rng:int(2, max(2, floor(rate / 2))),
                   from = from, to = rng:chance(0.6) and from + rng:between(5, 14) or nil }
  end
  if rng:chance(0.3) then
    local from = rng:between(2, 16)
    c.storm = { from = from, to = from + rng:between(0.5, 4) }
  end
  return c
end

-- When the processes stop starting batches: 12 s after the stranger left
-- (invariant 15 looks 10 s after), 8 s after the storm or the lower cap
-- began (or the stranger, when it stays), at least 12 s into the run.
local function until_of(c)
  local t = 12
  if c.stranger then t = max(t, c.stranger.to and c.stranger.to + 12 or c.stranger.from + 8) end
  if c.storm then t = max(t, c.storm.to + 8) end
  if c.cap then t = max(t, c.cap.from + 8) end
  return t
end

--- A crowded schedule for `seed`; `h` the simulator's helpers (`stream_pool`,
-- `some`, `JITTER_MARGIN`).
function M.draw(seed, h)
  local rng = world_mod.rng(seed + 6000029)
  local s = { seed = seed }
  s.provider = rng:chance(0.5) and "aliyun" or "zego"
  s.processes = rng:int(1, 4)
  s.store = s.processes > 1 and "redis" or (rng:chance(0.5) and "redis" or "memory")
  s.signature_version = "v3"
  s.net = { base = rng:between(0.002, 0.02), jitter = rng:between(0, h.JITTER_MARGIN * 0.9), timeout = 2,
            max_late = 0.5, faulty = rng:chance(0.4), fault_rate = rng:between(0.005, 0.03), kinds = KINDS }
  s.redis = { latency = rng:between(0.0002, 0.002), events = {} }
  local methods = METHODS[s.provider]
  local main = rng:int(1, 2)
  local action = methods[main][2]
  local c = draw_crowd(rng, action, provider.CAPS[s.provider][action])
  local calm = not (c.cap or c.stranger or c.storm)
  c.until_t = until_of(c)
  s.crowd = c
  s.procs = {}
  for i = 1, s.processes do
    local name = "p" .. i
    local pool = h.stream_pool(s.provider, name, rng:int(20, 80))
    -- (a late joiner in a third of the later processes: it must start from the learned room)
    local p = { name = name, ops = {}, until_t = c.until_t,
                start = (i > 1 and rng:chance(1 / 3)) and rng:between(3, 12) or rng:between(0, 1) }
    if rng:chance(0.35) then p.deadline_ms = rng:int(2000, 20000) end
    if calm or rng:chance(0.5) then
      p.stalls = {}
      for k = 1, rng:int(1, 3) do p.stalls[k] = { t = rng:between(0.5, c.until_t), seconds = rng:between(0.02, 1.5) } end
    end
    -- (two batches of the crowded action for one of the other: calls on it keep coming)
    for k = 1, 3 do
      local m = methods[k < 3 and main or 3 - main][1]
      p.ops[k] = { kind = "batch", method = m, concurrency = rng:int(4, 16),
                   streams = h.some(rng, pool, rng:int(math.floor(#pool / 2), #pool)) }
    end
    s.procs[i] = p
  end
  return s
end

--- Whether `seed` draws a crowded schedule (of the mixed ones). (Its
-- stream is the seed scattered: consecutive seeds' first draws are close
-- with this generator, and runs of crowded seeds would take the place of
-- the mixed seeds that catch the older mutants.)
function M.chosen(seed)
  return world_mod.rng(seed * 31337 + 6000011):chance(M.SHARE)
end

return M
