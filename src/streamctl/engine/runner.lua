--- The engine that carries jobs to completion: pacing, concurrency, retries,
-- per-stream order and the look-up of unknown outcomes.
--
-- It knows nothing of providers or clients: `runner.new(iface)` is handed
-- everything it uses, and a client is one user of it.
--
--   io             the transport side (below)
--   sign(attempt)  -> request | nil, err      signs one attempt, at the moment it is sent;
--                  | false, result             false: the call is moot (a later call
--                                             superseded it), nothing is sent and it ends
--                                             with `result`
--   decode(attempt, response, failure) -> result | nil, err
--                                             reads an answer, or wraps a transport failure
--   pace(action, max_delay, job) -> seconds, committed[, next[, cut]]
--                                            (optional: without it nothing is paced) reserves
--                                             a rate-limit slot for one request of
--                                             `action` (the job's next attempt) when it is at
--                                             most `max_delay` seconds away, and says how long
--                                             to wait for it; `committed` false: nothing was
--                                             reserved, the delay says when a slot would be
--                                             free (a pace that returns only seconds commits);
--                                             `next`: when to ask again for this action (see
--                                             streamctl.engine.ratelimit's store contract);
--                                             `cut`: the room was cut since the last slot (by
--                                             another process): the slots reserved before it
--                                             are given up
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
--   unsign(attempt) -> bool                  (optional) an attempt signed but never sent (its
--                                             slot went stale while it was signed): undo what
--                                             signing took, or false when it cannot be (the
--                                             attempt is then sent); without it, nothing is undone
--   answered(action, seconds, err) -> cut    (optional) told of every answer to a request
--                                             of `action` (err nil: a success), `seconds` after
--                                             it was sent, before anything else is sent: the
--                                             pacing learns the room from the throttles among
--                                             them (streamctl.engine.retry's `is_throttle`);
--                                             true when it cut the room: the slots of the action
--                                             reserved before then are given up, and reserved
--                                             again at the room it left
--   paced(action) -> bool                    (optional, default true) whether `pace` spaces
--                                             `action`: a throttled call goes back to the
--                                             schedule at once when it does, after a backoff
--                                             when it does not
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
-- A paced request whose slot has lateness to lose carries `send_within_ms`:
-- an io may hand it back unsent (`{ code = "SlotMissed", sent = false }`)
-- when its connection took longer than that (streamctl.transport.ngx: a cold
-- connection's handshake), and it is taken back and paced again (at most
-- streamctl.engine.slots.MAX_MISSES times a job); an io may ignore it.
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
-- attempt): found means done, with what `found` returned, its `RequestId`
-- the call's own (its last attempt's, when that answer carried one: none
-- for a dropped answer) and the look-up's `LookupRequestId` apart; not found
-- means the call may be sent again as the retry policy allows (a job with
-- `once`, a call that must not apply twice, is looked up again when the
-- unknown attempt has settled, and only then sent again); a failed
-- look-up leaves the call's own error (and RequestId), with the look-up's
-- failure added to its message and its RequestId as `lookup_request_id`.
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
-- for a new one, so a late request never goes out on its old slot, unless
-- the schedule's next slot was more than a second and the guard after it
-- (a slow schedule: the late request shares no second with it). With
-- `window`, the engine also keeps the actual send times of each action's
-- last n requests and holds a request until the one n before it is more
-- than a second old.
--
-- Cancellation. Once `cancel()` is true, no wait of the engine's lasts
-- longer than `CANCEL_POLL` seconds: it asks `cancel` at least that often.
--
-- Throttles. A throttled call was not applied: it goes back to the
-- schedule, through `pace` like any other request, as often as it is
-- throttled, until the run ends; neither its attempts nor the retry budget
-- count it (streamctl.engine.retry's `throttle_delay`). A run's `deadline`
-- ends it: from then on nothing more is sent, as on a cancel, and the jobs
-- not done end with their own error (a throttle's: not applied) or
-- `{ code = "DeadlineExceeded", sent = false }`.
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

local type, ipairs, error = type, ipairs, error
local setmetatable, getmetatable = setmetatable, getmetatable
local max, min, floor = math.max, math.min, math.floor
local remove = table.remove

local run_module = require "streamctl.engine.run"
local new_run, Run = run_module.new_run, run_module.Run
local STOPS = run_module.STOPS
local slots = require "streamctl.engine.slots"

local M = {}

-- Longest single poll while transfers are in flight and nothing else is due
-- (a poll returns early when a transfer finishes).
local MAX_WAIT = 1

-- The key of the main thread's runs (LuaJIT's coroutine.running() is nil there).
local MAIN = {}

--- What the (k + n)-th request of an action waits beyond 1 s after the k-th
-- was sent: room for the network to carry one a little faster than the other.
M.WINDOW_GUARD = 0.02

--- How late (seconds) a request may go out after its reserved slot before
-- the slot is given up and a new one reserved (unless the next slot is more
-- than a second and WINDOW_GUARD away: streamctl.engine.slots' `stale`). Within the pacing margin
-- (streamctl.pipeline.pacing's RATE_MARGIN: 5% of a second is 50 ms, of which this
-- takes 20 and the network's jitter the rest).
M.LATE = 0.02

--- How long (seconds) a reservation may hold the loop before the round trips
-- in flight meanwhile go unmeasured; the longest the engine waits before
-- asking `pace` again after it reserved nothing (streamctl.engine.slots').
M.STALL = slots.STALL
M.MAX_PACE_WAIT = slots.MAX_PACE_WAIT

--- With a `cancel`, the longest the engine waits before asking it again.
M.CANCEL_POLL = 0.1

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
  if iface.pace ~= nil then need(iface, "pace", "function") end
  need(iface, "retry", "table")
  if iface.correct_clock ~= nil then need(iface, "correct_clock", "function") end
  if iface.window ~= nil then need(iface, "window", "function") end
  if iface.horizon ~= nil then need(iface, "horizon", "function") end
  if iface.observe ~= nil then need(iface, "observe", "function") end
  if iface.answered ~= nil then need(iface, "answered", "function") end
  if iface.unsign ~= nil then need(iface, "unsign", "function") end
  if iface.paced ~= nil then need(iface, "paced", "function") end
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
    answered = iface.answered, paced = iface.paced, unsign = iface.unsign,
    slack = iface.slack or function() return M.WINDOW_GUARD, M.LATE end, measured = iface.measured,
    unsettled = {}, unsettled_count = 0, -- stream -> { settled_at = t, action = a }
    stacks = setmetatable({}, { __mode = "k" }), -- per coroutine: its runs in progress, outermost first
    sends = {},                          -- action -> ring of the last n send times
    pace_wait = {},                      -- action -> until when no job asks pace again (refused)
    throttled_at = {},                   -- action -> when a throttle of it was last answered
    stalled_until = nil,                 -- when a reservation last held the loop over STALL (see `decode_answer`)
  }, Engine)
end

-- The loop ------------------------------------------------------------------

-- One round over every run in progress, the outermost (the earliest
-- submissions) first: their answers, then admission and sends.
local function round(active)
  for _, r in ipairs(active) do
    while r.inbox[1] do r:take_completion(remove(r.inbox, 1)) end
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
  -- (a run's deadline wakes it; one past it waits for its answers in flight as any run does, never
  -- polling at once again and again: make sim's seed 57 spun there)
  for _, r in ipairs(active) do
    local left = r.deadline_at and r.deadline_at - engine.io.now()
    if left and left > 0 then timeout = min(timeout, left) end
  end
  return timeout
end

-- Hands each completion to the run whose attempt it is: one this loop
-- drives, or (another engine's on the same io) its inbox, which its own
-- loop empties. (A key that is not an attempt of ours is dropped.)
local function route(completions, driven)
  for _, c in ipairs(completions) do
    local owner = type(c.key) == "table" and c.key.run
    if owner and driven[owner] then
      owner:take_completion(c)
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
    if run.notify[1] then run:tell_finished() end
    -- (the caller may halt it: an answer every call after it would meet too)
    if run.opts.halt and not run.opts.stopped then run:stop(run.opts.halt) end
    if run.finished >= run.total and run.exhausted and not run.notify[1] then return end
    if engine.cancel and (cancelled or engine.cancel()) then
      cancelled = true
      for _, r in ipairs(active) do r:stop(STOPS.cancel) end
    end
    -- (a run past its deadline sends nothing more; those it is nested in go on to theirs)
    for _, r in ipairs(active) do
      if r.deadline_at and engine.io.now() >= r.deadline_at then r:stop(STOPS.deadline) end
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
-- the source has still to make, called when a run is nested in this one),
-- and `deadline` (seconds from now, > 0: see "Throttles"). Its
-- `on_progress` may set `opts.halt` (`{ code, message, sent = false }`):
-- nothing more is sent, and the jobs not on the wire end with it. When the
-- run stopped sending before its jobs were done, `opts.stopped` is set to
-- the failure its unsent jobs ended with (`{ code = "Interrupted" |
-- "DeadlineExceeded" | the halt's code, message, sent = false }`), for the
-- caller to give what its source never made.
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
  local deadline = opts.deadline
  if deadline ~= nil and not (type(deadline) == "number" and deadline > 0) then
    error("deadline must be a number of seconds > 0", 2)
  end
  local run = new_run(self, jobs, concurrency, opts.on_progress, active, opts.source, opts.rest)
  run.deadline_at = deadline and self.io.now() + deadline
  run.opts = opts
  active[#active + 1] = run
  local ok, err = pcall(drive, self, run, active)
  remove(active)
  if not active[1] then self.stacks[thread] = nil end
  if not ok then error(err, 0) end
  return jobs
end

return M
