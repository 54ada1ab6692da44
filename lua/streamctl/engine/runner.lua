--- The engine that carries jobs to completion: pacing, concurrency, retries,
-- per-stream order and the look-up of unknown outcomes.
--
-- It knows nothing of providers or clients: `runner.new(iface)` is handed
-- everything it uses, and a client is one user of it.
--
--   io             the transport side (below)
--   sign(attempt)  -> request | nil, err      signs one attempt, at the moment it is sent
--   decode(attempt, response, failure) -> result | nil, err
--                                             reads an answer, or wraps a transport failure
--   pace(action, max_delay, job) -> seconds, committed[, next]
--                                            reserves a rate-limit slot for one request of
--                                             `action` (the job's next attempt) when it is at
--                                             most `max_delay` seconds away, and says how long
--                                             to wait for it; `committed` false: nothing was
--                                             reserved, the delay says when a slot would be
--                                             free (a pace that returns only seconds commits);
--                                             `next`: when to ask again for this action (see
--                                             streamctl.engine.ratelimit's store contract)
--   horizon(action) -> seconds               (optional) the longest delay a slot may be
--                                             reserved ahead (see "Pacing"); without it a
--                                             slot is reserved whatever its delay
--   retry          a streamctl.engine.retry policy (`decide(err, n)`, `on_success()`)
--   window(action) -> n | nil                (optional) the cap as "n per any 1 s": the
--                                             engine then never sends the (k + n)-th request of
--                                             an action sooner than 1 s + WINDOW_GUARD after the
--                                             k-th was actually sent (see "Pacing" below)
--   settle         seconds (optional, default 0): how long after it was sent an attempt
--                  whose outcome is unknown may still take effect (see "Order" below)
--   correct_clock(err) -> bool               (optional) called before the one retry of a
--                                             clock-skew error, to correct the signing clock;
--                                             false: no correction could be made, no retry
--   cancel() -> bool                         (optional) asked between steps; once true, nothing
--                                             more is sent: jobs not started, and jobs waiting
--                                             for a retry or a look-up, finish with the
--                                             transport failure `{ code = "Interrupted",
--                                             sent = false }` as their attempt's (unknown if an
--                                             earlier attempt may have applied); attempts in
--                                             flight are waited for and reported as they end
--   slack() -> guard, late                   (optional) the window guard and the lateness
--                                             allowed, in seconds (default WINDOW_GUARD, LATE):
--                                             a client's, from what it measured (streamctl.pipeline.pacing)
--   measured(kind, seconds)                  (optional) told "round_trip" (an attempt's send to
--                                             its answer, when the provider answered) and
--                                             "sent_late" (how late a request left on its slot)
--   observe(attempt, result, err, seconds, response)
--                                            (optional) told of every attempt handed to the
--                                             io, once it is decoded: `seconds` from its send
--                                             to then, `response` the raw one (nil on a
--                                             transport failure); what it returns is ignored
--
-- The io is `start(key, request) -> true | nil, failure`, `poll(timeout_s) ->
-- { {key=, res=, err=}, ... }` (waits up to the timeout for at least one
-- completion), `now()` (monotonic seconds) and `sleep(s)`. Light threads fit
-- it as well as libcurl's multi interface: `start` launches, `poll` waits.
--
-- A job is `{ action, params, recover = nil | { action, params(p), found(result, p) },
-- done_codes = nil | { [code] = true }, streams = { key, ... }, ordered = bool }`. Its
-- `params` are fixed for every attempt (a ZEGO Sequence stays the same on a
-- retry). Jobs that share a stream run one after another in the order given,
-- retries included; jobs with no stream in common run side by side, up to
-- `concurrency` at once. A finished job has `result` or `err`, `attempts`
-- (sends of its own call) and `lookups`.
--
-- An attempt *may have taken effect* when its error says `outcome_unknown`
-- (sent with no answer, an answer that could not be read, a copy that arrived
-- first) or is a server error (which can come after the change was made).
-- Once one has, the job's outcome stays unknown unless a later attempt
-- succeeds: its final error says `sent = true` and `outcome_unknown = true`
-- whatever the last attempt met (a refused connection, an exhausted retry
-- budget). And a later answer whose code is in `done_codes` (e.g. "the task
-- has stopped" for a stop) means the earlier attempt did it: the job succeeds
-- with `{ RequestId, Recovered = true }`.
--
-- Every send is an *attempt*: `{ role = "call" | "lookup", action, params, n,
-- job }`, with `n` counting the attempts of its role. The attempt is also the
-- key the io hands back, and the interface's to use: what `sign` learns of it
-- (the values the signed request carries that no message may show) it may
-- keep on it for `decode`. A job's `params` may be filled in once, before its
-- first send (a ZEGO Sequence, taken with its slot or at that send), and
-- then stay fixed for its retries. When a call may have
-- taken effect (sent with no answer, a copy arrived first, a server error),
-- the job's `recover` rule, if it has one, is asked first (a "lookup"
-- attempt): found means done; not found means the call may be sent again as
-- the retry policy allows; a failed look-up leaves the call's own error,
-- with the look-up's failure added to its message.
--
-- Pacing. `pace` spaces requests on a schedule, reserved just in time: a
-- job asks for its slot only when its own time has come (a retry's backoff
-- over), and only a slot at most `horizon(action)` ahead is asked for; a
-- farther one is asked for again when it is within reach (one job per action
-- asks meanwhile, the others wait with it). A shared store may hand back a
-- slot further than the horizon (never more than its own MAX_HORIZON): it is
-- taken, and waited for. So whatever goes wrong (a shared
-- store that forgets its schedule), the slots this engine holds lie within
-- the horizon, a few requests. A request sent late (a stalled process, a
-- garbage-collection pause) must not crowd a second either: a slot that was
-- not used within `LATE` seconds of its time is given up and the job asks
-- for a new one, so a late request never goes out on its old slot. With
-- `window`, the engine also keeps the actual send times of each action's
-- last n requests and holds a request until the one n before it is more
-- than a second old.
--
-- Cancellation. Once `cancel()` is true, no wait of the engine's lasts
-- longer than `CANCEL_POLL` seconds: it asks `cancel` at least that often.
--
-- Order. An attempt whose outcome is unknown can still land later (a request
-- the server holds while the client times out). Once a job on a stream had
-- one, the stream is *unsettled* until `settle` seconds after that attempt
-- was sent. A later job on the stream with another action (a resume after a
-- forbid) that succeeds while it is unsettled is not reported until then:
-- at that time its own look-up verifies that the stream is in the state the
-- job intended, and if a straggler changed it, the job's call is sent again.
-- A job marked `ordered` relies on the provider's own ordering (ZEGO's
-- Sequence makes a late copy stale). A job with neither is not sent until
-- the stream has settled (ZEGO's CDN actions: found by the simulation, seed
-- 3747). The engine keeps this across runs.
--
-- Nesting. A run started from inside another's `on_progress` (a batch whose
-- callback calls the same client, in the same coroutine) is submitted after
-- every job of the runs it is nested in: a job of it waits while one of
-- theirs holds or has queued one of its streams. Its loop drives theirs
-- meanwhile (their answers, retries, look-ups and queued jobs go on), and
-- their jobs that finish are told to their own `on_progress` once control
-- is back in their loop, never from inside the nested one. Runs in other
-- coroutines (an nginx request's and a timer's) interleave and are not
-- ordered with it. Completions are routed by keys unique to each io, to the
-- run that started them, so interleaved runs and engines that share an io
-- (two clients on one transport) never take each other's answers.
-- @module streamctl.engine.runner

local type, ipairs, pairs, error, tostring = type, ipairs, pairs, error, tostring
local setmetatable, getmetatable = setmetatable, getmetatable
local max, min, floor, huge = math.max, math.min, math.floor, math.huge
local remove, sort = table.remove, table.sort

local M = {}

-- Longest single poll while transfers are in flight and nothing else is due
-- (a poll returns early when a transfer finishes).
local MAX_WAIT = 1
-- How many jobs a run takes from its source beyond those it can admit now:
-- a few, so that admission never waits on the source, and a streamed list
-- is held in memory only as far as it is in flight.
local PULL_AHEAD = 16

-- The key of the main thread's runs (LuaJIT's coroutine.running() is nil there).
local MAIN = {}

-- Delays at or below this many seconds count as zero (pacing's own).
local EPSILON = require("streamctl.engine.ratelimit").EPSILON

--- What the (k + n)-th request of an action waits beyond 1 s after the k-th
-- was sent: room for the network to carry one a little faster than the other.
M.WINDOW_GUARD = 0.02

--- How long (seconds) a reservation may hold the loop before the round trips
-- in flight meanwhile go unmeasured (see `answered`).
M.STALL = 0.002

--- How late (seconds) a request may go out after its reserved slot before
-- the slot is given up and a new one reserved. Within the pacing margin
-- (streamctl.pipeline.pacing's RATE_MARGIN: 5% of a second is 50 ms, of which this
-- takes 20 and the network's jitter the rest).
M.LATE = 0.02

--- With a `cancel`, the longest the engine waits before asking it again.
M.CANCEL_POLL = 0.1

--- The longest the engine waits before asking `pace` again after it
-- reserved nothing (a delay longer than that, however it came about, is
-- asked about again rather than slept through).
M.MAX_PACE_WAIT = 1

-- The least it waits before asking `pace` again (no busy loop).
local MIN_PACE_WAIT = 0.001

--- Wraps a blocking transport `function(request) -> res | nil, err` as an io.
function M.sync_io(send, now, sleep)
  local done = {}
  return {
    start = function(key, request)
      local res, err = send(request)
      done[#done + 1] = { key = key, res = res, err = err }
      return true
    end,
    poll = function(timeout)
      if #done == 0 then
        if timeout > 0 then sleep(timeout) end
        return {}
      end
      local out = done
      done = {}
      return out
    end,
    now = now,
    sleep = sleep,
  }
end

local Engine = {}
Engine.__index = Engine

local function need(iface, name, kind)
  if type(iface[name]) ~= kind then
    error("bad argument #1 to 'new' (" .. name .. " must be a " .. kind .. ")", 3)
  end
end

--- Makes an engine from its interface (see above).
function M.new(iface)
  if type(iface) ~= "table" then error("bad argument #1 to 'new' (a table expected)", 2) end
  need(iface, "io", "table")
  for _, f in ipairs { "start", "poll", "now", "sleep" } do
    if type(iface.io[f]) ~= "function" then error("bad argument #1 to 'new' (io." .. f .. " must be a function)", 2) end
  end
  need(iface, "sign", "function")
  need(iface, "decode", "function")
  need(iface, "pace", "function")
  need(iface, "retry", "table")
  if iface.correct_clock ~= nil then need(iface, "correct_clock", "function") end
  if iface.window ~= nil then need(iface, "window", "function") end
  if iface.horizon ~= nil then need(iface, "horizon", "function") end
  if iface.observe ~= nil then need(iface, "observe", "function") end
  if iface.slack ~= nil then need(iface, "slack", "function") end
  if iface.measured ~= nil then need(iface, "measured", "function") end
  if iface.cancel ~= nil then need(iface, "cancel", "function") end
  if iface.settle ~= nil and not (type(iface.settle) == "number" and iface.settle >= 0) then
    error("bad argument #1 to 'new' (settle must be a number >= 0)", 2)
  end
  return setmetatable({
    io = iface.io, sign = iface.sign, decode = iface.decode, pace = iface.pace,
    retry = iface.retry, correct_clock = iface.correct_clock, settle = iface.settle or 0, window = iface.window,
    observe = iface.observe, cancel = iface.cancel, horizon = iface.horizon,
    slack = iface.slack or function() return M.WINDOW_GUARD, M.LATE end, measured = iface.measured,
    unsettled = {}, unsettled_count = 0, -- stream -> { settled_at = t, action = a }
    stacks = setmetatable({}, { __mode = "k" }), -- per coroutine: its runs in progress, outermost first
    sends = {},                          -- action -> ring of the last n send times
    pace_wait = {},                      -- action -> until when no job asks pace again (refused)
    stalled_until = nil,                 -- when a reservation last held the loop over STALL (see `answered`)
  }, Engine)
end

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
    local _, late = engine.slack()
    if now - job.slot_at > late then job.slot_at = nil end -- too late for its slot
  end
  if not job.slot_at then
    local wait = engine.pace_wait[action]
    if wait then
      if wait > now + EPSILON then return wait end
      engine.pace_wait[action] = nil
    end
    local horizon = engine.horizon and engine.horizon(action) or huge
    local asked = engine.io.now()
    local delay, committed, next_delay = engine.pace(action, horizon, job)
    delay = delay or 0
    now = engine.io.now() -- (a shared store's answer took a round trip: its delays count from now)
    -- (held that long, the loop read no answer meanwhile: see `answered`)
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
    job.slot_at = now + delay
    if delay > EPSILON then return job.slot_at end
  end
  return window_hold(engine, action, now) -- an earlier request went late: wait for its second to pass
end


-- A run: one call of Engine:run, its jobs and their state. Every run of an
-- engine in progress (a run started from another's `on_progress` nests in
-- it) is driven by the innermost one's loop (see "Nesting" above).
local Run = {}
Run.__index = Run

local function new_run(engine, jobs, concurrency, on_progress, active, source, rest)
  local run = setmetatable({
    source = source,             -- (optional) more jobs, made when there is room for them
    exhausted = source == nil,   -- the source has no more
    rest = rest,                 -- (optional) the streams of the jobs the source has still to make
    reserved = false,            -- those streams are counted in `queued` (a run was nested in this one)
    engine = engine, io = engine.io, policy = engine.retry,
    on_progress = on_progress, concurrency = concurrency,
    active = active,             -- the runs in progress in this coroutine, outermost first (this one last)
    inbox = {},                  -- completions routed here by another engine's loop
    attempts = {},               -- attempt -> true while it is on the wire
    total = #jobs, finished = 0, told = 0,
    queue = {}, head = 1,        -- jobs not yet admitted, in submission order, from queue[head]
                                 -- (an admitted job leaves a false behind it: no shifting)
    queued = {},                 -- stream -> how many jobs in the queue name it
    waiting = {},                -- admitted jobs waiting for their time (`at`)
    inflight = 0, busy = {},     -- attempts on the wire; streams held by admitted jobs
    notify = {},                 -- finished jobs whose on_progress is still to be called
  }, Run)
  for i, job in ipairs(jobs) do run:enqueue(i, job) end
  run.tail = #jobs
  return run
end

-- Puts `job` at queue[i] (the end).
function Run:enqueue(i, job, counted)
  local queued = self.queued
  job.attempts, job.lookups, job.sent = 0, 0, 0
  self.queue[i] = job
  if counted then return end
  for _, s in ipairs(job.streams or {}) do queued[s] = (queued[s] or 0) + 1 end
end

-- Before a run is nested in this one: the streams of the jobs this run's
-- source has still to make count as queued (they were submitted with it),
-- so that the later run waits for them. A source without `rest` (a list
-- read as it goes) has submitted only what it has made: it makes no more
-- while the nested run is active (see `pull`).
function Run:reserve_rest()
  if self.exhausted or self.reserved or not self.rest then return end
  self.reserved = true
  local queued = self.queued
  for _, s in ipairs(self.rest()) do queued[s] = (queued[s] or 0) + 1 end
end

-- The source's next job at the end of the queue (true), when there is room
-- for it: the jobs not yet admitted are few (so a source that is read as
-- the run goes, a file, is read no faster than it is sent). False when the
-- source has no more, or while a run is nested in this one: what the
-- source has not yet made is not yet submitted, so a run started inside
-- this one (a later submission, which waits for this run's jobs on its
-- streams) comes before it, and the source waits for it to end.
function Run:pull()
  if self.exhausted or self.tail - self.head + 1 > self.concurrency + PULL_AHEAD then return false end
  if not self.reserved and self.active[#self.active] ~= self then return false end
  local job = self.source()
  if job == nil then
    self.exhausted = true
    return false
  end
  self.tail = self.tail + 1
  self.total = self.total + 1
  self:enqueue(self.tail, job, self.reserved)
  return true
end

-- Admission -----------------------------------------------------------------

-- Puts `job` in line for its next attempt of `role`, after `delay`
-- seconds; its rate-limit slot is reserved when that time has come.
function Run:schedule(job, role, delay)
  job.next_role = role
  job.at = self.io.now() + delay
  job.slot_at = nil
  self.waiting[#self.waiting + 1] = job
end

-- Is one of `job`'s streams held or queued by a run this one is nested in
-- (an earlier submission)?
function Run:held_outside(job)
  for _, outer in ipairs(self.active) do
    if outer == self then return false end
    for _, s in ipairs(job.streams or {}) do
      if outer.busy[s] or outer.queued[s] then return true end
    end
  end
  return false
end

-- Takes `job`, at queue[i], out of the queue; the head moves past the
-- holes, so admitting a batch in order costs O(1) a job.
function Run:dequeue(i, job)
  local queue, queued = self.queue, self.queued
  queue[i] = false
  for _, s in ipairs(job.streams or {}) do
    local n = queued[s] - 1
    queued[s] = n > 0 and n or nil
  end
  local head = self.head
  while queue[head] == false do queue[head], head = nil, head + 1 end
  self.head = head
end

-- Admits queued jobs whose streams are free, in order; a job never passes
-- an earlier queued job that shares a stream with it, in this run or in
-- one it is nested in. (A job held back is looked at again each round:
-- only jobs on a stream already in use wait so, and each is one of a
-- stream's later jobs.)
function Run:admit()
  local queue, busy, blocked = self.queue, self.busy, nil
  local i = self.head
  while queue[i] ~= nil or (self.inflight + #self.waiting < self.concurrency and self:pull()) do
    if self.inflight + #self.waiting >= self.concurrency then return end
    local job = queue[i]
    if job then
      local free = true
      for _, s in ipairs(job.streams or {}) do
        if busy[s] or (blocked and blocked[s]) then free = false break end
      end
      if free and #self.active > 1 and self:held_outside(job) then free = false end
      if free then
        self:dequeue(i, job)
        for _, s in ipairs(job.streams or {}) do busy[s] = true end
        self:schedule(job, "call", 0)
      else
        blocked = blocked or {}
        for _, s in ipairs(job.streams or {}) do blocked[s] = true end
      end
    end
    i = i + 1
  end
end

-- Endings -------------------------------------------------------------------

-- A finished job frees its streams at once; the caller hears of it from
-- this run's own loop (never from inside a nested run's).
function Run:finish(job)
  local engine = self.engine
  if job.unknown_since and engine.settle > 0 then unsettle(engine, job, self.io.now()) end
  for _, s in ipairs(job.streams or {}) do self.busy[s] = nil end
  self.finished = self.finished + 1
  if self.on_progress then self.notify[#self.notify + 1] = job end
end

-- Tells the caller of the jobs finished so far, in the order they finished.
function Run:flush()
  local notify = self.notify
  self.notify = {}
  for _, job in ipairs(notify) do
    self.told = self.told + 1
    self.on_progress(self.told, self.total, job)
  end
end

function Run:succeed(job, result)
  self.policy:on_success()
  local now = self.io.now()
  local at = job.recover and settles_at(self.engine, job, now)
  if at then
    -- An earlier attempt of another action may still land: verify then.
    job.pending, job.verifying = result, true
    return self:schedule(job, "lookup", at - now)
  end
  job.result, job.err = result, nil
  self:finish(job)
end

-- Finishes with the job's own error: applied and unknown once any of its
-- attempts may have taken effect, whatever the last one met.
function Run:fail(job)
  local err = job.err
  err.attempts = job.attempts
  if job.maybe_applied then err.sent, err.outcome_unknown = true, true end
  self:finish(job)
end

-- Retries the call as the policy allows after `err` (which may stand in
-- for the failure, see AFTER.lookup); otherwise finishes with the job's own error.
function Run:retry_or_finish(job, err)
  local decision = self.policy:decide(err, job.attempts)
  if not decision.retry then return self:fail(job) end
  local correct = self.engine.correct_clock
  if err.kind == "clock" and correct and not correct(err) then return self:fail(job) end
  self:schedule(job, "call", decision.delay_ms / 1000)
end

-- Transitions ---------------------------------------------------------------

-- What an answered attempt leads to, by what it was: the job's call, a
-- look-up of whether a call whose outcome is unknown took effect, or the
-- look-up that verifies a success after the settle time (see "Order").
local AFTER = {}

function AFTER.call(run, job, result, err, attempt)
  if result ~= nil then return run:succeed(job, result) end
  if job.maybe_applied and job.done_codes and job.done_codes[err.code] then
    return run:succeed(job, { RequestId = err.request_id, Recovered = true })
  end
  job.err = err
  -- An attempt that may have taken effect is looked up before anything is
  -- sent again, where the operation has a look-up.
  if err.outcome_unknown or err.kind == "server" then
    job.maybe_applied, job.unknown_since = true, attempt.sent_at
    if job.recover then return run:schedule(job, "lookup", 0) end
  end
  run:retry_or_finish(job, err)
end

function AFTER.lookup(run, job, result, err)
  if result ~= nil then
    local found = job.recover.found(result, job.params)
    if found then return run:succeed(job, found) end
    -- Not in effect: the call may be sent again, as the policy allows.
    return run:retry_or_finish(job, { kind = job.err.kind, retryable = true, retry_after_ms = job.err.retry_after_ms })
  end
  local decision = run.policy:decide(err, job.lookups)
  if decision.retry then return run:schedule(job, "lookup", decision.delay_ms / 1000) end
  -- Still unknown: the call's own failure, and why it stays unknown.
  job.err.message = (job.err.message or "") .. "; the look-up by " .. job.recover.action
    .. " failed too: " .. tostring(err)
  run:fail(job)
end

-- The stream as the job left it: done; else the job's call once more (a
-- straggler changed it).
function AFTER.verify(run, job, result, err)
  if result ~= nil then
    job.verifying = nil
    if job.recover.found(result, job.params) then
      job.result, job.err = job.pending, nil
      return run:finish(job)
    end
    return run:schedule(job, "call", 0)
  end
  local decision = run.policy:decide(err, job.lookups)
  if decision.retry then return run:schedule(job, "lookup", decision.delay_ms / 1000) end
  job.err = err
  err.message = (err.message or "") .. "; it was to verify " .. job.action .. " after an earlier attempt "
    .. "whose outcome was unknown"
  err.outcome_unknown = true
  run:fail(job)
end

function Run:conclude(attempt, result, err)
  local job = attempt.job
  local step = attempt.role ~= "lookup" and "call" or job.verifying and "verify" or "lookup"
  return AFTER[step](self, job, result, err, attempt)
end

-- Sending -------------------------------------------------------------------

-- An attempt the io has answered (or failed to start): decoded, shown to
-- the observer, concluded.
function Run:answered(attempt, res, terr)
  local engine = self.engine
  local result, err = engine.decode(attempt, res, terr)
  local seconds = self.io.now() - attempt.sent_at
  -- A round trip over which this process was held in a store's round trip
  -- (a blocking Redis call) is not measured: its answer may have waited on
  -- the process, not on the network (the lateness the hold causes is
  -- measured where it is real, in the sends).
  local held = engine.stalled_until and engine.stalled_until > attempt.sent_at
  if res ~= nil and engine.measured and not held then engine.measured("round_trip", seconds) end
  if engine.observe then engine.observe(attempt, result, err, seconds, res) end
  return self:conclude(attempt, result, err)
end

-- A completion of one of this run's attempts (its key is the attempt).
function Run:complete(c)
  local attempt = c.key
  if self.attempts[attempt] then
    self.attempts[attempt] = nil
    self.inflight = self.inflight - 1
    -- (a request the transport says never left, a refused connection: not a call made)
    local err = c.err
    if attempt.role == "call" and type(err) == "table" and err.sent == false then
      attempt.job.sent = attempt.job.sent - 1
    end
    self:answered(attempt, c.res, err)
  end
end

-- The job's next attempt: its call, or a look-up.
local function next_attempt(run, job)
  if job.next_role == "lookup" then
    job.lookups = job.lookups + 1
    return { role = "lookup", action = job.recover.action, params = job.recover.params(job.params),
             n = job.lookups, job = job, run = run }
  end
  job.attempts = job.attempts + 1
  return { role = "call", action = job.action, params = job.params, n = job.attempts, job = job, run = run }
end

-- Signs and starts the job's next attempt. The attempt itself is the key
-- the io hands back with its completion, and it names its run: no table of
-- keys outlives a run, and engines sharing an io never take each other's.
function Run:send(job)
  local io = self.io
  local attempt = next_attempt(self, job)
  attempt.sent_at = io.now()
  local req, serr = self.engine.sign(attempt)
  if not req then return self:conclude(attempt, nil, serr) end
  self.attempts[attempt] = true
  self.inflight = self.inflight + 1
  local ok, terr = io.start(attempt, req)
  if ok and job.slot_at and self.engine.measured then
    local late = attempt.sent_at - job.slot_at
    self.engine.measured("sent_late", late > 0 and late or 0)
  end
  if ok then
    -- (a call's requests that left: what a report's `calls` counts, never those planned; one
    -- the transport then says never left is taken back in `complete`)
    if attempt.role == "call" then job.sent = job.sent + 1 end
    return record_send(self.engine, attempt.action, io.now())
  end
  self.attempts[attempt] = nil
  self.inflight = self.inflight - 1
  -- A start that fails is this attempt's failure, whatever its role.
  self:answered(attempt, nil, terr)
end

-- Sends the jobs whose time has come, as concurrency allows.
function Run:send_due()
  local io, waiting = self.io, self.waiting
  local now = io.now()
  sort(waiting, by_time)
  while waiting[1] and waiting[1].at <= now + EPSILON and self.inflight < self.concurrency do
    local job = remove(waiting, 1)
    local later = reserve_or_wait(self.engine, job, now)
    if later then
      job.at = later
      waiting[#waiting + 1] = job
      sort(waiting, by_time)
    else
      self:send(job)
    end
    now = io.now()
  end
end

-- When this run next has something to do without an answer (nil: never).
function Run:next_at()
  local first = self.waiting[1]
  if first and self.inflight < self.concurrency then return first.at end
  return nil
end

-- Once the caller cancels: every job not on the wire ends now, its own
-- error (an earlier attempt's, kept unknown if that may have applied) or
-- "interrupted" when it has none. (The failure is wrapped by `decode`, as
-- every transport failure is.)
function Run:cancel_rest()
  local rest, queue = {}, self.queue
  local at = self.head
  while queue[at] ~= nil do
    if queue[at] then rest[#rest + 1] = queue[at] end
    queue[at], at = nil, at + 1
  end
  self.head, self.tail, self.queued, self.exhausted = 1, 0, {}, true
  for i, job in ipairs(self.waiting) do rest[#rest + 1], self.waiting[i] = job, nil end
  for _, job in ipairs(rest) do
    local _, err = self.engine.decode({ role = job.next_role or "call", action = job.action, job = job }, nil,
      { code = "Interrupted", message = "interrupted before it was sent", sent = false })
    if job.verifying or not job.err then job.err = err end
    if job.verifying then
      -- Its call was sent and succeeded, but a straggler of an earlier
      -- attempt may still undo it: applied, with an unknown outcome.
      job.err.message = "interrupted while waiting to verify " .. job.action .. " after an earlier attempt "
        .. "whose outcome was unknown"
      job.err.sent, job.err.outcome_unknown = true, true
    end
    self:fail(job)
  end
end

-- The loop ------------------------------------------------------------------

-- One round over every run in progress, the outermost (the earliest
-- submissions) first: their answers, then admission and sends.
local function round(active)
  for _, r in ipairs(active) do
    while r.inbox[1] do r:complete(remove(r.inbox, 1)) end
    r:admit() -- (what it admits is due at once: sent in this same round)
    r:send_due()
    r:admit()
  end
end

-- How long to wait for the next job's time, or for a transfer to finish (a
-- poll returns as soon as one does).
local function timeout_for(engine, active)
  local next_at, flying = nil, false
  for _, r in ipairs(active) do
    local at = r:next_at()
    if at and (not next_at or at < next_at) then next_at = at end
    if r.inflight > 0 then flying = true end
  end
  local timeout
  if next_at then
    timeout = max(0, next_at - engine.io.now())
    if flying and timeout > MAX_WAIT then timeout = MAX_WAIT end
  elseif flying then
    timeout = MAX_WAIT
  else
    error("streamctl.engine.runner: no job can make progress") -- a bug, never a user's error
  end
  if engine.cancel and timeout > M.CANCEL_POLL then timeout = M.CANCEL_POLL end
  return timeout
end

-- Hands each completion to the run whose attempt it is: one this loop
-- drives, or (another engine's on the same io) its inbox, which its own
-- loop empties. (A key that is not an attempt of ours is dropped.)
local function route(completions, driven)
  for _, c in ipairs(completions) do
    local owner = type(c.key) == "table" and c.key.run
    if owner and driven[owner] then
      owner:complete(c)
    elseif getmetatable(owner) == Run then
      owner.inbox[#owner.inbox + 1] = c
    end
  end
end

-- Drives `run` (and the runs it is nested in) until its jobs are done and told.
local function drive(engine, run, active)
  local driven = {}
  for _, r in ipairs(active) do driven[r] = true end
  local cancelled = false
  while true do
    if run.notify[1] then run:flush() end
    if run.finished >= run.total and run.exhausted and not run.notify[1] then return end
    if engine.cancel and (cancelled or engine.cancel()) then
      cancelled = true
      for _, r in ipairs(active) do r:cancel_rest() end
    end
    round(active)
    if not run.notify[1] and (run.finished < run.total or not run.exhausted) then
      route(engine.io.poll(timeout_for(engine, active)), driven)
    end
  end
end

--- Runs `jobs` to completion.
-- @param jobs array of jobs (see above)
-- @param opts `concurrency` (default 1), `on_progress(done, total, job)`,
-- `source` (a function that makes the next job, nil at the end: called when
-- the run has room, a few jobs ahead; `total` grows as it makes them), and
-- `rest` (with `source`: a function that returns the streams of every job
-- the source has still to make, called when a run is nested in this one)
-- @return jobs
function Engine:run(jobs, opts)
  opts = opts or {}
  local concurrency = opts.concurrency or 1
  if type(concurrency) ~= "number" or concurrency < 1 or concurrency ~= floor(concurrency) then
    error("concurrency must be a whole number >= 1", 2)
  end
  -- The runs this one is nested in: those in progress in this coroutine
  -- (runs in other coroutines, an nginx request's and a timer's, interleave
  -- and are not ordered with it).
  local thread = coroutine.running() or MAIN
  local active = self.stacks[thread]
  if not active then
    active = {}
    self.stacks[thread] = active
  end
  for _, outer in ipairs(active) do outer:reserve_rest() end
  local run = new_run(self, jobs, concurrency, opts.on_progress, active, opts.source, opts.rest)
  active[#active + 1] = run
  local ok, err = pcall(drive, self, run, active)
  remove(active)
  if not active[1] then self.stacks[thread] = nil end
  if not ok then error(err, 0) end
  return jobs
end

return M
