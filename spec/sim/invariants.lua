--- The promises, checked after a run against the model's own record (what
-- the services received, applied and hold), never against the clients'
-- word alone.
--
--   1 caps        no request arrives over a cap in any sliding second while
--                 the network's jitter and the store's lag stay within the
--                 documented margin (sim.JITTER_MARGIN) and nothing arrives
--                 late; beyond it, no throttled request is reported OK; and
--                 a retry after a throttle that gave Retry-After leaves no
--                 sooner
--   2 state       for every stream, the service's final state is what the
--                 last operation submitted and reported OK asked for (when
--                 none submitted after it may have applied); an operation
--                 reported OK changed the stream (applied, not ignored as
--                 stale) unless a look-up found it done, and operations
--                 reported OK were applied in the order they were submitted
--                 (none overtaken by an earlier one); on a ZEGO stream
--                 several processes share (whose calls have no order
--                 between them but their Sequences'), the final state is
--                 what the call decided last (its first Sequence the
--                 highest) asked for, when it is reported OK; and
--                 without a store every decider shares (in memory), no
--                 forbid or resume is sent 7 s or more after its first send
--   3 creates     no create applied twice; a reported TaskId names a task
--                 this create made; one applied but not reported so was
--                 looked up first (unless cancelled before)
--   4 reports     every call and stream reported exactly once, the counts
--                 agree, none refused by the client (the simulation's
--                 requests are all valid), and `sent` / `outcome_unknown` agree with what the
--                 services received: a failure that says `sent = false`, or
--                 that is definite (no `outcome_unknown`), was applied by no
--                 request of its call (one refused at the door, a throttle,
--                 may have arrived: docs/pacing.md "What a report says")
--   5 sequences   per ZEGO stream, the Sequences of distinct calls first
--                 leave strictly increasing, and none is applied below one
--                 applied before it within 10 s
--   6 progress    the run ends within the time limit (no hang); after a
--                 process's `cancel` turns true, its operation returns
--                 within CANCEL_POLL, an answer's timeout and a store's
--   9 credentials no request is signed with temporary credentials past
--                 their expiry, by its process's clock when it left (the
--                 expiry its key names: Aliyun schedules with a refresh
--                 holder); 7, 8 and 10 are checked by spec/sim/operator.lua
--  10 backoff     in those runs, after a fetch that gave nothing usable, a
--                 process's source is not asked again within half its
--                 backoff step (the holder's jitter is drawn in [0.5, 1))
--  13 to 16       a budget shared with strangers (issue 48): no stream fails
--                 for a throttle inside its deadline; throttles bounded once
--                 the room is learned; the room back after a stranger left;
--                 a later process starts from the learned room
--                 (spec/sim/crowd_checks.lua)
-- @module sim.invariants

local runner = require "streamctl.engine.runner"
local sim = require "sim"
local provider = require "sim.provider"
local crowd_checks = require "sim.crowd_checks"

local format = string.format
local ipairs, pairs, tostring = ipairs, pairs, tostring

local M = {}

local is_within

local function fail(out, n, msg, ...)
  out[#out + 1] = { invariant = n, message = format(msg, ...) }
end

-- Does a job have a call arrival that applied (for `id`, with ZEGO)?
local function job_applied(job, id)
  for _, send in ipairs(job.sim_sends or {}) do
    if send.role == "call" then
      for _, a in ipairs(send.arrivals or {}) do
        if a.applied and (not id or not a.applied_ids) then return true, a end
        if a.applied_ids then
          for _, x in ipairs(a.applied_ids) do if x == id then return true, a end end
        end
      end
    end
  end
  return false
end

-- The job of `op` that carried stream `id`.
local function job_of(op, id)
  for _, job in ipairs(op.jobs) do
    if job.items then
      for _, x in ipairs(job.items) do if x == id then return job end end
    elseif #op.jobs == 1 then
      return job
    end
  end
  return nil
end

-- 1: per account and action, the arrivals in any one second.
local function check_caps(rec, out)
  local s = rec.schedule
  local spread = s.net.jitter + (s.net.tail or 0)
  if s.net.bases then -- (processes at distances of their own: how far one's transits may trail another's)
    local lo, hi = math.huge, 0
    for _, b in pairs(s.net.bases) do lo, hi = math.min(lo, b), math.max(hi, b) end
    spread = spread + hi - lo
  end
  local strict = spread <= sim.JITTER_MARGIN
  for _, k in ipairs(s.net.kinds) do
    if s.net.faulty and (k == "late_delivery" or k == "duplicate") then strict = false end
  end
  for _, e in ipairs(s.redis.events) do
    if e.kind == "slow" and e.latency / 2 > sim.JITTER_MARGIN - spread then strict = false end
  end
  local by = {}
  for _, a in ipairs(rec.model.arrivals) do
    local key = a.provider .. "|" .. tostring(a.account) .. "|" .. tostring(a.action)
    by[key] = by[key] or { action = a.action, provider = a.provider, is_test = a.is_test, list = {} }
    local l = by[key].list
    l[#l + 1] = a
  end
  for key, g in pairs(by) do
    local cap = (g.is_test and provider.TEST_CAPS[g.action]) or provider.CAPS[g.provider][g.action]
    if cap and strict then
      local l = g.list
      for i = 1, #l - cap do
        if l[i + cap].t - l[i].t < 1 then
          fail(out, 1, "%s: %d requests arrived within %.4f s (t=%.4f..%.4f; cap %d/s)", key, cap + 1,
            l[i + cap].t - l[i].t, l[i].t, l[i + cap].t, cap)
          break
        end
      end
    end
  end
  rec.strict_caps = strict
  -- a throttle that said when to come back (x-acs-retry-after) is honoured:
  -- the job's next request leaves no sooner; and a job whose last request
  -- was throttled is retried, or reported as failed (never OK), or
  -- superseded (not sent again: a later call decided on its streams)
  for _, op in ipairs(rec.ops) do
    for _, job in ipairs(op.jobs) do
      local sends = job.sim_sends or {}
      local last = sends[#sends]
      local arrived = last and last.arrivals and last.arrivals[#last.arrivals]
      if arrived and last.answered_at and (arrived.verdict == "throttled" or arrived.verdict == "fault:throttle")
          and job.result ~= nil and not job.result.Superseded then
        fail(out, 1, "%s %s: reported OK after its last request was throttled", op.process, tostring(job.action))
      end
      for i = 1, #sends - 1 do
        local s1, s2 = sends[i], sends[i + 1]
        if s1.retry_after and s1.answered_at and s2.t < s1.answered_at + s1.retry_after / 1000 - 1e-6 then
          fail(out, 1, "%s %s: a retry left at %.3f, %.0f ms after a throttle that said Retry-After %d ms", op.process,
            tostring(s2.req.action), s2.t, (s2.t - s1.answered_at) * 1000, s1.retry_after)
        end
      end
    end
  end
end

-- 4 (and what 1 asks beyond the margin): every stream reported once, and
-- what each report says against what arrived.
local function check_reports(rec, out)
  for _, op in ipairs(rec.ops) do
    local tag = format("%s op %s(%s) at %.3f", op.process, op.kind, op.method or "", op.started_at)
    if op.kind == "batch" and op.report then
      local r = op.report
      local seen = {}
      for _, e in ipairs(op.entries) do
        if seen[e.stream] then fail(out, 4, "%s: stream %s reported twice", tag, e.stream) end
        seen[e.stream] = true
      end
      local distinct = {}
      for _, id in ipairs(op.streams) do distinct[id] = true end
      for id in pairs(distinct) do
        -- (a streamed list cancelled before its end leaves what it had not read unreported: input_left)
        if not seen[id] and not op.cancelled_before and not (op.streamed and r.input_left) then
          fail(out, 4, "%s: stream %s never reported", tag, id)
        end
      end
      if r.succeeded + r.failed + r.unknown ~= r.total then
        fail(out, 4, "%s: %d + %d + %d reported for %d streams", tag, r.succeeded, r.failed, r.unknown, r.total)
      end
      if #op.entries ~= r.total then fail(out, 4, "%s: %d entries for %d streams", tag, #op.entries, r.total) end
      for _, e in ipairs(op.entries) do
        local job = job_of(op, e.stream)
        if not job then
          -- (a batch interrupted, or past its deadline, before it made the call of a stream reports it not sent)
          if not (e.sent == false and (e.code == "Interrupted" or e.code == "DeadlineExceeded")) then
            fail(out, 4, "%s: no job carried stream %s", tag, e.stream)
          end
        elseif not e.ok then
          if e.kind == "validation" then
            fail(out, 4, "%s: stream %s refused by the client (%s), though every request the simulation makes is "
              .. "valid", tag, e.stream, tostring(e.code))
          end
          if e.sent == false and job_applied(job, e.stream) then
            fail(out, 4, "%s: stream %s reported not sent (%s), but a request of it was applied", tag, e.stream,
              tostring(e.code))
          end
          if not e.outcome_unknown and job_applied(job, e.stream) then
            fail(out, 4, "%s: stream %s reported failed (%s) without outcome_unknown, but it was applied", tag,
              e.stream, tostring(e.code))
          end
        end
      end
    elseif op.kind ~= "batch" and not op.skipped then
      local job = op.jobs[1]
      if op.result == nil and op.err == nil then fail(out, 4, "%s: neither a result nor an error", tag) end
      if #op.jobs ~= 1 and op.err and op.err.kind ~= "validation" then
        fail(out, 4, "%s: %d jobs for one call", tag, #op.jobs)
      end
      if op.err and op.err.kind == "validation" then
        fail(out, 4, "%s: refused by the client (%s: %s), though every request the simulation makes is valid", tag,
          tostring(op.err.code), tostring(op.err.message))
      end
      if job and op.err then
        if op.err.sent == false and job_applied(job) then
          fail(out, 4, "%s: reported not sent (%s), but a request of it was applied", tag, tostring(op.err.code))
        end
        if not op.err.outcome_unknown and job_applied(job) then
          fail(out, 4, "%s: reported failed (%s) without outcome_unknown, but it was applied", tag,
            tostring(op.err.code))
        end
      end
    end
  end
end

-- The model's changes of stream `key`, in their order (an index made once
-- per record: scanning every change for every report made the checks
-- quadratic in the run's length).
local function changes_of(rec, key)
  local index = rec.model.changes_by_stream
  if not index then
    index = {}
    for _, c in ipairs(rec.model.changes) do
      local l = index[c.stream]
      if not l then l = {}; index[c.stream] = l end
      l[#l + 1] = c
    end
    rec.model.changes_by_stream = index
  end
  return index[key] or {}
end

-- When the last arrival of `job` that changed stream `key` was applied (nil: none).
local function last_apply(rec, job, key)
  local at
  for _, c in ipairs(changes_of(rec, key)) do
    if c.arrival.job == job then at = c.t end
  end
  return at
end

-- The last change of stream `key` at or before t.
local function last_change(rec, key, t)
  local last
  for _, c in ipairs(changes_of(rec, key)) do
    if c.t > t then break end
    last = c
  end
  return last
end

-- Was `op` started from inside `outer` (an on_progress of it, at any depth)?
function is_within(op, outer)
  local p = op.parent
  while p do
    if p == outer then return true end
    p = p.parent
  end
  return false
end

-- Is Sequence a (decimal) above b?
local function seq_above(a, b) return #a > #b or (#a == #b and a > b) end

-- Do the processes' Sequences come from one sound source: Redis without
-- events, clocks without skew (otherwise a later one may be lower)?
local function sequences_sound(s)
  if #s.redis.events > 0 or s.decisions_apart then return false end
  for _, p in ipairs(s.procs) do if p.skew then return false end end
  return true
end

-- The Sequence a job's first call carried (nil: none sent).
local function first_sequence(job)
  for _, send in ipairs(job.sim_sends or {}) do
    if send.role == "call" then return provider.parse(send.req).seq end
  end
end

-- 2, on a ZEGO stream processes share: their calls have no order between
-- them but their Sequences', which say when each was decided (taken at a
-- call's first send, kept by its retries). The stream ends as the call
-- decided last asked, when that call is reported OK: a call retried later
-- never wins over one decided after it (an un-ban over a later ban), nor a
-- request arriving late, even past ZEGO's window, where the service applies
-- any Sequence: a call whose Sequence aged there is decided again before it
-- is sent (superseded, or a new Sequence).
local function check_shared(rec, out, key, l)
  if not key:find(":rtc:", 1, true) then return end
  local top, top_seq
  for _, r in ipairs(l) do
    local seq = r.job and first_sequence(r.job)
    if seq and (not top_seq or seq_above(seq, top_seq)) then top, top_seq = r, seq end
  end
  if not (top and top.ok) then return end
  local final = rec.model:state(key)
  if final ~= top.state then
    local c = last_change(rec, key, math.huge)
    fail(out, 2, "%s (shared): ends %s, but the call decided last (Sequence %s, %s %s, reported OK) asked for %s; "
      .. "the last change was Sequence %s from %s at %.3f", key, tostring(final), top_seq, top.op.process,
      top.op.method, top.state, c and tostring(c.arrival.seq) or "-", c and tostring(c.arrival.process) or "-",
      c and c.t or -1)
  end
end

-- The decision window (streamctl.pipeline.decision's WINDOW_MS and ZEGO's
-- fresh_ms, in seconds), and the least a clock's step may shorten it here.
local WINDOW, EPS = 7, 1e-6

-- 2, whoever decides: a forbid or resume is decided at its first send and
-- sent only within its window after that, unless a store every decider
-- shares vouches that nobody decided since (Redis: the processes' clients
-- take it as declared; in memory, nothing vouches: a call that waited past
-- its window is never sent, it ends Expired or superseded).
local function check_window(rec, out)
  if rec.schedule.store == "redis" and not rec.schedule.decisions_apart then return end
  local first = {}
  for _, send in ipairs(rec.sends) do
    local job, action = send.job, send.role == "call" and provider.parse(send.req).action
    if job and action and (action:find("^Forbid") or action:find("^Resume")) then
      first[job] = first[job] or send.t
      if send.t - first[job] >= WINDOW - EPS then
        fail(out, 2, "%s %s sent %.3f s after it was decided (first sent at %.3f), with no store every decider "
          .. "shares to vouch that nobody decided since", send.process, action, send.t - first[job], first[job])
        return
      end
    end
  end
end

-- 2: per stream, the operations in the order they were submitted (a
-- nested one after the operation it was started from).
local function check_state(rec, out)
  check_window(rec, out)
  local per = {}
  for _, op in ipairs(rec.ops) do
    local results = {}
    if op.kind == "batch" then
      for _, e in ipairs(op.entries) do results[e.stream] = e end
    elseif op.kind == "single" then
      results[op.stream] = { ok = op.result ~= nil, t = op.finished_at,
                             recovered = op.result and op.result.Recovered,
                             outcome_unknown = op.err and op.err.outcome_unknown, sent = op.err and op.err.sent }
    end
    for _, tg in ipairs(op.targets or {}) do
      local e = results[tg.id]
      if e then
        per[tg.key] = per[tg.key] or {}
        local l = per[tg.key]
        l[#l + 1] = { op = op, t = e.t, ok = e.ok, unknown = e.outcome_unknown, state = tg.state, id = tg.id,
                      job = job_of(op, tg.id) }
      end
    end
  end
  local count = 0
  local shared = {}
  for _, id in ipairs(rec.schedule.shared or {}) do shared[id] = true end
  -- (Sequences from one store, on clocks that agree)
  local sound = rec.schedule.store == "redis" and sequences_sound(rec.schedule)
  for key, l in pairs(per) do
    count = count + 1
    -- (a stream several processes act on has no order between them: the
    -- Sequences' is checked by invariant 5, and what an OK says here)
    if shared[l[1].id] then
      if sound then check_shared(rec, out, key, l) end
      goto next_stream
    end
    -- (rec.ops is in submission order already)
    for _, r in ipairs(l) do
      if r.ok then
        local at = r.job and last_apply(rec, r.job, key)
        local recovered = r.job and r.job.result and r.job.result.Recovered
        if not at and not recovered then
          fail(out, 2, "%s: %s %s (submitted %.3f) reported OK at %.3f, but none of its requests changed the "
            .. "stream (ignored as stale, or never applied)", key, r.op.process, r.op.method, r.op.started_at, r.t)
        end
        -- at the report, the stream is as asked, or an operation submitted
        -- later has changed it since; never an earlier one's straggler
        local c = last_change(rec, key, r.t)
        if c and c.state ~= r.state then
          local by = c.arrival.job and c.arrival.job.sim_op
          local later = by and (by.started_at > r.op.started_at or is_within(by, r.op))
          if not later then
            fail(out, 2, "%s: %s %s (submitted %.3f) reported OK at %.3f, but the stream was %s then: overtaken "
              .. "at %.3f by %s", key, r.op.process, r.op.method, r.op.started_at, r.t, c.state, c.t,
              by and format("%s %s submitted at %.3f", by.process, by.method or by.kind, by.started_at)
                or "an unknown request")
          end
        end
      end
    end
    -- the final state: the last operation submitted that is reported OK,
    -- unless one submitted after it may have applied
    local last
    for i = #l, 1, -1 do
      if l[i].ok then last = l[i] break end
      if l[i].unknown then break end
    end
    if last then
      local final = rec.model:state(key)
      if final ~= last.state then
        fail(out, 2, "%s: ends %s, but the last operation reported OK (%s %s submitted at %.3f) asked for %s", key,
          final, last.op.process, last.op.method, last.op.started_at, last.state)
      end
    end
    ::next_stream::
  end
  rec.streams_checked = count
end

-- 3: creates.
local function check_creates(rec, out)
  for _, op in ipairs(rec.ops) do
    if op.kind == "create" then
      local applied = 0
      local mine = {}
      for _, job in ipairs(op.jobs) do
        for _, send in ipairs(job.sim_sends or {}) do
          for _, a in ipairs(send.arrivals or {}) do
            if a.action == "CreateLivePullToPush" and a.applied then
              applied = applied + 1
              mine[a.task] = true
            end
          end
        end
      end
      if applied > 1 then fail(out, 3, "%s create %s applied %d times", op.process, op.dst, applied) end
      -- applied, yet not reported with its TaskId: only when the look-up
      -- could not tell (it failed, or the run was cancelled first)
      local job = op.jobs[1]
      if applied > 0 and op.err and op.err.code ~= "Interrupted" and job and job.lookups == 0 then
        fail(out, 3, "%s create %s was applied but reported %s without a look-up", op.process, op.dst,
          tostring(op.err.code))
      end
      if op.result and not mine[op.result.TaskId] then
        fail(out, 3, "%s create %s reported TaskId %s, which it did not create%s", op.process, op.dst,
          tostring(op.result.TaskId), op.result.Recovered and " (recovered)" or "")
      end
    elseif op.kind == "stop" and op.result then
      local task = rec.model.tasks[op.task]
      if not task or task.status ~= 3 then
        fail(out, 2, "%s stop of %s reported OK, but the task is not stopped", op.process, tostring(op.task))
      end
    end
  end
end

-- 5: Sequences per ZEGO stream, in the order calls first leave: within a
-- process, and (for streams processes share, in a run whose Redis and
-- clocks are sound) between the calls of one action, which reserve their
-- slots and Sequences in one schedule. (Calls of two actions from two
-- processes race: the Sequence, taken with the slot, decides which is
-- later. While Redis is down or forgot, each process falls back to its own
-- clock: docs/redis.md's limits.)
local function check_sequences(rec, out)
  local s = rec.schedule
  if s.provider ~= "zego" then return end
  local sound = sequences_sound(s)
  local seen = {}    -- stream -> set of Sequences sent
  local top = {}     -- stream -> { ["p:" .. process] = seq, ["a:" .. action] = seq }
  for _, send in ipairs(rec.sends) do
    local a = provider.parse(send.req)
    if a.seq and send.role == "call" then
      for _, id in ipairs(a.ids) do
        local set = seen[id] or {}
        seen[id] = set
        if not set[a.seq] then
          set[a.seq] = true
          local t = top[id] or {}
          top[id] = t
          for _, k in ipairs { "p:" .. send.process, sound and ("a:" .. a.action) or nil } do
            if t[k] and not seq_above(a.seq, t[k].seq) then
              fail(out, 5, "stream %s: Sequence %s first sent at %.3f by %s (%s) after %s (%s %s)", id, a.seq,
                send.t, send.process, a.action, t[k].seq, t[k].process, t[k].action)
            end
            t[k] = { seq = a.seq, process = send.process, action = a.action }
          end
        end
      end
    end
  end
end

-- 6: the run ended; a cancelled process returned in time.
local function check_progress(rec, out)
  if not rec.ok then fail(out, 6, "the run did not end: %s", tostring(rec.why)) end
  local s = rec.schedule
  local bound = runner.CANCEL_POLL + s.net.timeout + 0.2 * 2 + 0.05
  for _, op in ipairs(rec.ops) do
    local spec
    for _, p in ipairs(s.procs) do if p.name == op.process then spec = p end end
    local c = spec and spec.cancel_at
    if c and op.finished_at and op.started_at < c and op.finished_at > c + bound then
      fail(out, 6, "%s op %s(%s) returned at %.3f, %.3f s after cancel turned true (bound %.3f)", op.process,
        op.kind, op.method or "", op.finished_at, op.finished_at - c, bound)
    end
    if c and op.finished_at then
      for _, job in ipairs(op.jobs) do
        for _, send in ipairs(job.sim_sends or {}) do
          if send.t > c + runner.CANCEL_POLL + 0.2 + 0.01 then
            fail(out, 6, "%s sent %s at %.3f, after cancel turned true at %.3f", op.process,
              tostring(send.req.action), send.t, c)
            break
          end
        end
      end
    end
  end
end

--- Checks a run's record; returns an array of failures `{ invariant, message }`
-- (empty when every promise held).
-- 9: the signing time of every arrival signed with temporary credentials
-- before their expiry.
-- (The process's own clock when it signed: the holder's and the signer's;
-- the signed Timestamp may carry a correction learnt from the provider.)
local function check_credentials(rec, out)
  local skew = {}
  for _, p in ipairs(rec.schedule.procs) do skew[p.name] = p.skew or 0 end
  for _, a in ipairs(rec.model.arrivals) do
    local at = a.key_expires and a.sent_at and provider.EPOCH + a.sent_at + (skew[a.process] or 0)
    if at and at >= a.key_expires then
      fail(out, 9, "%s: a %s signed at %.3f (its clock) with credentials that expired at %d (%.3f s before)",
        tostring(a.process), tostring(a.action), at, a.key_expires, at - a.key_expires)
      return
    end
  end
end

-- 10: after a fetch that gave nothing usable (the streak-th in a row), a
-- process's source is not asked again within half of min(60, 2^(streak-1))
-- seconds (the holder's jitter is drawn in [0.5, 1) here).
local function check_fetches(rec, out)
  for name, log in pairs(rec.fetches or {}) do
    local streak = 0
    for i, f in ipairs(log) do
      if i > 1 and streak > 0 then
        local least = 0.5 * math.min(60, 2 ^ (streak - 1))
        if f.at - log[i - 1].at < least - 1e-9 then
          fail(out, 10, "%s: its credentials source was asked again %.3f s after fetch %d gave nothing usable "
            .. "(%d in a row: at least %.1f s)", name, f.at - log[i - 1].at, i - 1, streak, least)
          return
        end
      end
      streak = f.bad and streak + 1 or 0
    end
  end
end

function M.check(rec)
  local out = {}
  check_progress(rec, out)
  check_credentials(rec, out)
  check_fetches(rec, out)
  if rec.ok then
    check_caps(rec, out)
    check_reports(rec, out)
    check_state(rec, out)
    check_creates(rec, out)
    check_sequences(rec, out)
    crowd_checks.check(rec, out)
  end
  return out
end

return M
