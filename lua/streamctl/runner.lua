--- The engine that carries calls to completion: pacing, concurrency,
-- retries, per-stream order and recovery of unknown outcomes.
--
-- A single `client:call` is a run of one job; a batch is a run of many. Every
-- job goes through the same steps, so a retried batch call behaves exactly as
-- a retried single call.
--
-- A job is `{ action, op, params, streams = {key, ...} }`: `params` are the
-- encoded service parameters (fixed for every attempt: a ZEGO Sequence stays
-- the same on a retry); `streams` name what the job acts on. Jobs that share a
-- stream run one after another in the order given, retries included; jobs
-- with no stream in common run side by side, up to `concurrency` at once.
--
-- Before each attempt a job reserves a slot from the client's rate limiter
-- (provider, account, action), so a run never exceeds the published caps by
-- its own doing; every attempt is signed at the moment it is sent.
--
-- When an attempt may have taken effect (sent with no answer, a copy arrived
-- first, or a server error), the operation's `recover` rule (if it has one)
-- looks the effect up before anything is sent again, so an action is not
-- applied twice even where repeating it would be harmless.
--
-- The transport side is an "io": `start(key, request)`, `poll(timeout_s)` ->
-- `{ {key=, res=, err=}, ... }`, `now()` (monotonic seconds), `sleep(s)`.
-- @module streamctl.runner

local errors = require "streamctl.errors"
local retry = require "streamctl.retry"
local ratelimit = require "streamctl.ratelimit"

local type, ipairs, error, tostring = type, ipairs, error, tostring
local max, floor = math.max, math.floor
local remove, sort = table.remove, table.sort

local M = {}

-- Longest single poll while transfers are in flight and nothing else is due
-- (a poll returns early when a transfer finishes).
local MAX_WAIT = 1

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

local function limiter_key(client, action)
  return client._rules.provider .. ":" .. client:account() .. ":" .. action
end

-- Reserves a rate-limit slot for `job`'s next request (its own call, or its
-- look-up, each in its action's bucket); returns the delay.
local function reserve(client, job)
  if not client._limiter then return 0 end
  local action = job.call_action or job.action
  local rate = ratelimit.limit_for(client._rules.provider, action, client.rate_limits)
  if not rate then return 0 end
  -- A store that fails (nil, err) must not stop the run: the slot is then unpaced.
  local delay = client._limiter:reserve(limiter_key(client, action), rate, client.rate_burst)
  return delay or 0
end

--- Runs `jobs` to completion on `client`.
-- @param client a streamctl client
-- @param jobs array of jobs (see above); each gets `result` or `err`, `attempts`
--   (sends of its own call) and `lookups` (calls of its look-up)
-- @param opts `concurrency` (default 1), `on_progress(done, total, job)`
-- @return jobs
function M.run(client, jobs, opts)
  opts = opts or {}
  local concurrency = opts.concurrency or 1
  if type(concurrency) ~= "number" or concurrency < 1 or concurrency ~= floor(concurrency) then
    error("concurrency must be a whole number >= 1", 3)
  end
  local on_progress = opts.on_progress
  local io = client:_io()
  local policy = client._retry
  local total, finished = #jobs, 0
  local queue = {}          -- jobs not yet admitted, in submission order
  local waiting = {}        -- admitted jobs waiting for their time (`at`)
  local inflight, busy = 0, {} -- streams held by admitted jobs
  local by_key, next_key = {}, 0

  for i, job in ipairs(jobs) do
    job.attempts, job.lookups = 0, 0
    queue[i] = job
  end

  local function finish(job)
    for _, s in ipairs(job.streams or {}) do busy[s] = nil end
    finished = finished + 1
    -- (batch methods guard the caller's own callback; see streamctl.client)
    if on_progress then on_progress(finished, total, job) end
  end

  local function schedule(job, delay)
    job.at = io.now() + max(delay, reserve(client, job))
    waiting[#waiting + 1] = job
  end

  -- Admits queued jobs whose streams are free, in order; a job never passes
  -- an earlier queued job that shares a stream with it.
  local function admit()
    local blocked = {}
    local i = 1
    while i <= #queue do
      if inflight + #waiting >= concurrency then return end
      local job = queue[i]
      local free = true
      for _, s in ipairs(job.streams or {}) do
        if busy[s] or blocked[s] then free = false break end
      end
      if free then
        remove(queue, i)
        for _, s in ipairs(job.streams or {}) do busy[s] = true end
        schedule(job, 0)
      else
        for _, s in ipairs(job.streams or {}) do blocked[s] = true end
        i = i + 1
      end
    end
  end

  local function send(job)
    if job.recovering then job.lookups = job.lookups + 1 else job.attempts = job.attempts + 1 end
    local req, err = client:_sign(job.call_action or job.action, job.call_op or job.op, job.call_params or job.params)
    if not req then job.err = err finish(job) return end
    next_key = next_key + 1
    by_key[next_key] = job
    inflight = inflight + 1
    local ok, serr = io.start(next_key, req)
    if not ok then
      by_key[next_key] = nil
      inflight = inflight - 1
      job.err = errors.transport(client._rules.provider, job.action, serr, job.op.idempotent)
      finish(job)
    end
  end

  local function succeed(job, result)
    job.result, job.err = result, nil
    policy:on_success()
    finish(job)
  end

  -- Retries `job` as the policy allows after `err` (which may stand in for
  -- the failure, see below); otherwise finishes it with its own `job.err`.
  local function retry_or_finish(job, err)
    local decision = policy:decide(err, job.attempts)
    if not decision.retry then
      job.err.attempts = job.attempts
      return finish(job)
    end
    if err.kind == "clock" then
      local offset = retry.clock_offset(err, client._clock())
      if offset then client.clock_offset = offset end
    end
    schedule(job, decision.delay_ms / 1000)
  end

  -- Asks the operation's look-up whether the last attempt took effect.
  local function look_up(job, delay)
    local recover = job.op.recover
    job.recovering = true
    job.call_action, job.call_params = recover.action, recover.params(job.params)
    job.call_op = client._rules.operations[recover.action]
    schedule(job, delay)
  end

  local function after_look_up(job, result, err)
    if result ~= nil then
      job.recovering, job.call_action, job.call_op, job.call_params = nil, nil, nil, nil
      local found = job.op.recover.found(result, job.params)
      if found then return succeed(job, found) end
      -- Not in effect: the call may be sent again, as the policy allows.
      return retry_or_finish(job, { kind = job.err.kind, retryable = true, retry_after_ms = job.err.retry_after_ms })
    end
    local decision = policy:decide(err, job.lookups)
    if decision.retry then return schedule(job, decision.delay_ms / 1000) end
    -- Still unknown: report the call's own failure, and why it stays unknown.
    job.recovering, job.call_action, job.call_op, job.call_params = nil, nil, nil, nil
    job.err.message = (job.err.message or "") .. "; the look-up by " .. job.op.recover.action
      .. " failed too: " .. tostring(err)
    job.err.attempts = job.attempts
    finish(job)
  end

  local function complete(job, res, terr)
    local result, err = client:_decode(job.call_action or job.action, job.call_op or job.op, res, terr)
    if job.recovering then return after_look_up(job, result, err) end
    if result ~= nil then return succeed(job, result) end
    job.err = err
    -- An attempt that may have taken effect (no answer, a copy arrived first,
    -- or a server error, which can come after the change was made) is looked
    -- up before anything is sent again, where the operation has a look-up.
    if job.op.recover and (err.outcome_unknown or err.kind == "server") then
      return look_up(job, 0)
    end
    retry_or_finish(job, err)
  end

  admit()
  while finished < total do
    local now = io.now()
    sort(waiting, function(a, b) return a.at < b.at end)
    while waiting[1] and waiting[1].at <= now + ratelimit.EPSILON and inflight < concurrency do
      send(remove(waiting, 1))
    end
    admit()
    if finished >= total then break end
    -- Wait for the next job's time, or for a transfer to finish (a poll
    -- returns as soon as one does).
    local timeout
    if waiting[1] and inflight < concurrency then
      timeout = max(0, waiting[1].at - io.now())
    elseif inflight > 0 then
      timeout = MAX_WAIT
    else
      break -- nothing left that can make progress
    end
    for _, c in ipairs(io.poll(timeout)) do
      local job = by_key[c.key]
      if job then
        by_key[c.key] = nil
        inflight = inflight - 1
        complete(job, c.res, c.err)
      end
    end
  end
  return jobs
end

return M
