--- A run of the engine (streamctl.engine.runner): one call of Engine:run,
-- its jobs and their state: admission (concurrency, per-stream order, a
-- streamed source pulled as far as it is in flight), endings, the
-- transitions of a call, a look-up and a verification, and sending.
-- @module streamctl.engine.run

local type, ipairs, tostring, setmetatable, remove = type, ipairs, tostring, setmetatable, table.remove
local max = math.max
local sort = table.sort

local slots = require "streamctl.engine.slots"
local retry = require "streamctl.engine.retry"
local record_send, unsettle, settles_at = slots.record_send, slots.unsettle, slots.settles_at
local by_time, reserve_or_wait = slots.by_time, slots.reserve_or_wait

-- Delays at or below this many seconds count as zero (pacing's own).
local EPSILON = require("streamctl.engine.ratelimit").EPSILON

local M = {}

-- How many jobs a run takes from its source beyond those it can admit now:
-- a few, so that admission never waits on the source, and a streamed list
-- is held in memory only as far as it is in flight.
local PULL_AHEAD = 16

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
  job.attempts, job.lookups, job.sent, job.throttles = 0, 0, 0, 0
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
  job.due = job.at -- (what `waited` counts from: docs/clients.md, "Watching attempts")
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
function Run:end_job(job)
  local engine = self.engine
  if job.unknown_since and engine.settle > 0 then unsettle(engine, job, self.io.now()) end
  for _, s in ipairs(job.streams or {}) do self.busy[s] = nil end
  self.finished = self.finished + 1
  if self.on_progress then self.notify[#self.notify + 1] = job end
end

-- Tells the caller of the jobs finished so far, in the order they finished.
function Run:tell_finished()
  local notify = self.notify
  self.notify = {}
  for _, job in ipairs(notify) do
    self.told = self.told + 1
    self.on_progress(self.told, self.total, job)
  end
end

function Run:job_succeeded(job, result)
  self.policy:on_success()
  local now = self.io.now()
  local at = job.recover and settles_at(self.engine, job, now)
  if at then
    -- An earlier attempt of another action may still land: verify then.
    job.pending, job.verifying = result, true
    return self:schedule(job, "lookup", at - now)
  end
  job.result, job.err = result, nil
  self:end_job(job)
end

-- Finishes with the job's own error: applied and unknown once any of its
-- attempts may have taken effect, whatever the last one met.
function Run:job_failed(job)
  local err = job.err
  err.attempts = job.attempts
  if job.maybe_applied then err.sent, err.outcome_unknown = true, true end
  self:end_job(job)
end

-- Retries the call as the policy allows after `err` (which may stand in
-- for the failure, see AFTER.lookup); otherwise finishes with the job's own error.
-- A throttle was not applied: the call goes back to the schedule (its slot
-- taken through the pacing like any other, at the room the throttle left:
-- see `decode_answer`), for as long as the run lasts (its deadline, or a
-- cancel, ends it), after the provider's retry-after when it sent one;
-- neither the attempts nor the retry budget count it. Only a policy of one
-- attempt (no retries at all) ends the call on a throttle.
function Run:retry_or_end(job, err)
  if err.kind == "throttled" and self.policy.attempts > 1 then
    job.throttles = job.throttles + 1
    local paced = self.engine.paced == nil or self.engine.paced(job.action)
    return self:schedule(job, "call", self.policy:throttle_delay(err, job.throttles, paced) / 1000)
  end
  local decision = self.policy:decide(err, max(1, job.attempts - job.throttles))
  if not decision.retry then return self:job_failed(job) end
  local correct = self.engine.correct_clock
  if err.kind == "clock" and correct and not correct(err) then return self:job_failed(job) end
  self:schedule(job, "call", decision.delay_ms / 1000)
end

-- Transitions ---------------------------------------------------------------

-- What an answered attempt leads to, by what it was: the job's call, a
-- look-up of whether a call whose outcome is unknown took effect, or the
-- look-up that verifies a success after the settle time (see "Order").
local AFTER = {}

function AFTER.call(run, job, result, err, attempt)
  if result ~= nil then return run:job_succeeded(job, result) end
  if job.maybe_applied and job.done_codes and job.done_codes[err.code] then
    return run:job_succeeded(job, { RequestId = err.request_id, Recovered = true })
  end
  job.err = err
  -- An attempt that may have taken effect is looked up before anything is
  -- sent again, where the operation has a look-up.
  if err.outcome_unknown or err.kind == "server" then
    job.maybe_applied, job.unknown_since = true, attempt.sent_at
    if job.recover then return run:schedule(job, "lookup", 0) end
  end
  run:retry_or_end(job, err)
end

function AFTER.lookup(run, job, result, err)
  if result ~= nil then
    local found = job.recover.found(result, job.params)
    if found then
      -- The call's RequestId is its own last attempt's, when that answer
      -- carried one (a dropped answer carried none), never the look-up's:
      -- the look-up's is told apart. Nor a copy's refusal's (kind
      -- "duplicate": a second arrival of the same signed request, which
      -- libcurl sends by itself when a reused connection dies unanswered):
      -- that RequestId is of the copy refused, not of the request that applied.
      found.RequestId = job.err.kind ~= "duplicate" and job.err.request_id or nil
      found.LookupRequestId = result.RequestId
      return run:job_succeeded(job, found)
    end
    -- Not in effect yet: a call that must not apply twice (`once`: a create) is looked up
    -- again once the attempt whose outcome is unknown can no longer land (`settle` after it
    -- left): sent again before, it would apply twice when that copy arrives late (found by
    -- the simulation: seed 304). Then the call may be sent again, as the policy allows.
    local now, settled = run.io.now(), job.unknown_since + run.engine.settle
    if job.once and settled > now + EPSILON then return run:schedule(job, "lookup", settled - now) end
    return run:retry_or_end(job, { kind = job.err.kind, retryable = true, retry_after_ms = job.err.retry_after_ms })
  end
  local decision = run.policy:decide(err, job.lookups)
  if decision.retry then return run:schedule(job, "lookup", decision.delay_ms / 1000) end
  -- Still unknown: the call's own failure (its own RequestId), and why it
  -- stays unknown (the look-up's RequestId apart).
  job.err.message = (job.err.message or "") .. "; the look-up by " .. job.recover.action
    .. " failed too: " .. tostring(err)
  job.err.lookup_request_id = err.request_id
  run:job_failed(job)
end

-- The stream as the job left it: done; else the job's call once more (a
-- straggler changed it).
function AFTER.verify(run, job, result, err)
  if result ~= nil then
    job.verifying = nil
    if job.recover.found(result, job.params) then
      job.result, job.err = job.pending, nil
      return run:end_job(job)
    end
    return run:schedule(job, "call", 0)
  end
  local decision = run.policy:decide(err, job.lookups)
  if decision.retry then return run:schedule(job, "lookup", decision.delay_ms / 1000) end
  -- The look-up's failure stands for the job's, with the call's RequestId
  -- (its answered attempt's) as the job's and the look-up's apart (and in
  -- the message, where the look-up's action is named).
  job.err = err
  local own = job.pending and job.pending.RequestId
  err.message = (err.message or "") .. (err.request_id and " [RequestId " .. err.request_id .. "]" or "")
    .. "; it was to verify " .. job.action .. " after an earlier attempt whose outcome was unknown"
  err.request_id, err.lookup_request_id = own, err.request_id
  err.outcome_unknown = true
  run:job_failed(job)
end

function Run:apply_outcome(attempt, result, err)
  local job = attempt.job
  local step = attempt.role ~= "lookup" and "call" or job.verifying and "verify" or "lookup"
  return AFTER[step](self, job, result, err, attempt)
end

-- Sending -------------------------------------------------------------------

-- An attempt the io has answered (or failed to start): decoded, shown to
-- the observer, concluded.
function Run:decode_answer(attempt, res, terr)
  local engine = self.engine
  local result, err = engine.decode(attempt, res, terr)
  local seconds = self.io.now() - attempt.sent_at
  -- A round trip over which this process was held in a store's round trip
  -- (a blocking Redis call) is not measured: its answer may have waited on
  -- the process, not on the network (the lateness the hold causes is
  -- measured where it is real, in the sends).
  local held = engine.stalled_until and engine.stalled_until > attempt.sent_at
  if res ~= nil and engine.measured and not held then engine.measured("round_trip", seconds) end
  -- A throttle (or an answer that says when to come back) tells the pacing
  -- the account's room is smaller than it paced at: fed back, with the
  -- answers beside it, before anything else is sent, so every later slot
  -- (this call's own again too) is spaced at the room it leaves.
  -- A cut gives up the slots reserved before it: see `reserve_or_wait`.
  if engine.answered and (res ~= nil or retry.is_throttle(err)) and engine.answered(attempt.action, seconds, err) then
    engine.throttled_at[attempt.action] = self.io.now()
  end
  if engine.observe then engine.observe(attempt, result, err, seconds, res) end
  return self:apply_outcome(attempt, result, err)
end

-- An attempt signed, not sent (its slot stale after signing, or SlotMissed)
-- taken back with what signing took (`unsign`: a ZEGO Sequence); the job
-- reserves a new slot. False when that cannot be given back (a Sequence the
-- caller chose, recorded as sent).
local function take_back(run, job, attempt)
  if run.engine.unsign and not run.engine.unsign(attempt) then return false end
  if attempt.role == "lookup" then job.lookups = job.lookups - 1 else job.attempts = job.attempts - 1 end
  run:schedule(job, job.next_role, 0)
  return true
end

-- A completion of one of this run's attempts (its key is the attempt).
function Run:take_completion(c)
  local attempt = c.key
  if self.attempts[attempt] then
    self.attempts[attempt] = nil
    self.inflight = self.inflight - 1
    -- (a request the transport says never left, a refused connection: not a call made)
    local err, job = c.err, attempt.job
    if type(err) == "table" and err.sent == false then
      if attempt.role == "call" then job.sent = job.sent - 1 end
      -- (its connection took longer than its slot allowed, `send_within_ms`)
      if err.code == "SlotMissed" then
        job.slot_missed = (job.slot_missed or 0) + 1
        if take_back(self, job, attempt) then return end
      end
    end
    self:decode_answer(attempt, c.res, err)
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

-- A slot stale after signing: the attempt taken back (true), unless fresh.
local function stale_after_signing(run, job, attempt)
  if not slots.stale(run.engine, job, run.io.now()) then return false end
  -- (once per attempt: a call whose signing alone outlasts the lateness allowed, a create of 60 KB
  -- under Lua 5.4, goes on its second slot, where it would be let go for ever: spec/18 never ended)
  if job.given_back == attempt.n .. attempt.role then return false end
  if not take_back(run, job, attempt) then return false end
  job.given_back = attempt.n .. attempt.role
  return true
end

-- Signs and starts the job's next attempt. The attempt itself is the key
-- the io hands back with its completion, and it names its run: no table of
-- keys outlives a run, and engines sharing an io never take each other's.
function Run:send(job)
  local io = self.io
  local attempt = next_attempt(self, job)
  attempt.sent_at = io.now()
  -- (how long it waited for its slot and window, and the failure it comes after)
  attempt.waited = job.due and max(0, attempt.sent_at - job.due) or 0
  attempt.after_code = job.err and job.err.code
  local req, serr = self.engine.sign(attempt)
  if req == false then -- (moot: nothing to send, the call ends with the result sign gave)
    if attempt.role == "lookup" then job.lookups = job.lookups - 1 else job.attempts = job.attempts - 1 end
    return self:job_succeeded(job, serr)
  end
  if not req then return self:apply_outcome(attempt, nil, serr) end
  if job.slot_at and stale_after_signing(self, job, attempt) then return end
  -- (how long its connection may take: a fresh one's handshake must not carry it past its slot)
  local within = slots.send_within(self.engine, job, io.now())
  if within then req.send_within_ms = within * 1000 end
  self.attempts[attempt] = true
  self.inflight = self.inflight + 1
  local ok, terr = io.start(attempt, req)
  if ok and job.slot_at and self.engine.measured then
    local late = attempt.sent_at - job.slot_at
    self.engine.measured("sent_late", late > 0 and late or 0)
  end
  if ok then
    -- (a call's requests that left: what a report's `calls` counts, never those planned; one
    -- the transport then says never left is taken back in `take_completion`)
    if attempt.role == "call" then job.sent = job.sent + 1 end
    return record_send(self.engine, attempt.action, io.now())
  end
  self.attempts[attempt] = nil
  self.inflight = self.inflight - 1
  -- A start that fails is this attempt's failure, whatever its role.
  self:decode_answer(attempt, nil, terr)
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

--- Why a run stopped sending before its jobs were done: the transport
-- failure a job not yet sent ends with (M.STOPS.cancel: the caller's
-- `cancel`; M.STOPS.deadline: the run's deadline passed).
M.STOPS = {
  cancel = { code = "Interrupted", message = "interrupted before it was sent", sent = false },
  deadline = { code = "DeadlineExceeded", message = "the run's deadline passed before it was sent", sent = false },
}

-- Once the caller cancels, or the deadline passes (`stop`, one of M.STOPS):
-- every job not on the wire ends now, its own error (an earlier attempt's,
-- kept unknown if that may have applied: a throttle's, which was not
-- applied) or the stop's when it has none. (The failure is wrapped by
-- `decode`, as every transport failure is.)
function Run:stop(stop)
  self.opts.stopped = self.opts.stopped or stop
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
      { code = stop.code, message = stop.message, sent = false })
    if job.verifying or not job.err then job.err = err end
    if job.verifying then
      -- Its call was sent and succeeded, but a straggler of an earlier
      -- attempt may still undo it: applied, with an unknown outcome.
      job.err.message = (stop == M.STOPS.cancel and "interrupted" or "the run's deadline passed")
        .. " while waiting to verify " .. job.action .. " after an earlier attempt whose outcome was unknown"
      job.err.sent, job.err.outcome_unknown = true, true
      -- (the RequestId its answered call carried, with the look-up's when it was recovered)
      job.err.request_id, job.err.lookup_request_id = job.pending.RequestId, job.pending.LookupRequestId
    end
    self:job_failed(job)
  end
end

M.new_run = new_run
M.Run = Run

return M
