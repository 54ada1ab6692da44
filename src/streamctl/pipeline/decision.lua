--- A call's decision and its window, the same for both providers.
--
-- A call that changes streams (a forbid or a resume) is *decided* at its
-- first send: it takes a value from the client's decision store (the
-- Sequence generator, streamctl.engine.sequence) for the streams it
-- changes, above every value taken for them before. For ZEGO's RTC calls
-- that value is the Sequence the request carries (the provider's `stamp`);
-- for the others (Aliyun, ZEGO's CDN calls) it is kept beside the call. A
-- call is sent as decided only within its window (the stamp's `fresh_ms`,
-- else `WINDOW_MS`): ZEGO orders Sequences within 10 s only, Aliyun orders
-- nothing. An attempt that would leave later is decided again first:
--
-- * a stream a later call decided on (the store holds a value above the
--   call's) leaves it, superseded (`job.superseded`: stream -> that value);
--   no stream left: the call ends unsent, `{ Superseded = true }`; a call
--   without a stamp is asked this at every retry, inside its window too
--   (its provider orders nothing: ZEGO's Sequence does it for the others);
-- * otherwise it is sent late only when the store is shared by every
--   decider on those streams (the client's `decisions_shared`) and still
--   remembers the call's decision (it keeps a value `sequence.KEEP_MS`):
--   then it takes a new value (ZEGO: a new Sequence) and goes;
-- * otherwise nothing can vouch that no later decision was made: the call
--   ends unsent, `Expired`, naming how long ago it was decided.
-- @module streamctl.pipeline.decision

local errors = require "streamctl.base.errors"
local validate = require "streamctl.base.validate"
local sequence = require "streamctl.engine.sequence"

local pairs, ipairs, tonumber, format, floor = pairs, ipairs, tonumber, string.format, math.floor

local M = {}

--- The window of a call without a stamp of its own, in milliseconds: the
-- same as ZEGO's (Aliyun publishes none; the strictest reading is that it
-- orders nothing, so a decision is only as good as it is fresh).
M.WINDOW_MS = 7000

-- The effects a decision is taken for: those that a later call of the
-- other kind undoes.
local DECIDES = { forbid = true, resume = true }

-- Whether the provider's stamp (ZEGO's Sequence) is the decision of `op`.
local function stamped(stamp, op)
  return stamp ~= nil and (stamp.applies == nil or stamp.applies(op))
end

--- Whether calls of `op` are decided (and so sent only within their window).
function M.decides(op)
  return DECIDES[op.effect] == true
end

-- Whether the client's decision store can vouch for a call decided `age`
-- seconds ago: shared by every decider, and still holding that decision.
local function vouched(client, age)
  return client._decisions_shared == true and age * 1000 < sequence.KEEP_MS
end

-- Why a decision taken while the shared store did not answer is not sent again.
local UNSURE = "it was decided while the shared decision store did not answer, so whether a later call "
  .. "decided since cannot be told"

-- The error of a call that is not sent because its decision expired
-- (`why`: the reason, else the client's).
local function expired(client, action, age, streams, superseded, why)
  local ids = {}
  for _, id in ipairs(streams) do if not (superseded and superseded[id]) then ids[#ids + 1] = id end end
  if why == nil and client._decisions_shared ~= true then
    why = "no decision store shared by every decider says that no later call decided on "
      .. (#ids == 1 and "it" or "them") .. " (declare the one they all share: docs/pacing.md#the-decision-made-last)"
  elseif why == nil then
    why = format("the decision store keeps a decision %d s, and this one is older, or it did not answer",
      floor(sequence.KEEP_MS / 1000))
  end
  local e = errors.new { provider = client._rules.provider, action = action, code = "Expired", kind = "interrupted",
    message = format("decided %d s ago, not sent: %s; %s", floor(age), #ids == 1 and "stream '" .. ids[1] .. "'"
      or #ids .. " streams (" .. tostring(ids[1]) .. ", ...)", why), retryable = false, sent = false }
  e.decided_ago_ms = floor(age * 1000)
  return e
end

-- The streams a later call decided on, recorded on the job.
local function supersede(job, gone)
  job.superseded = job.superseded or {}
  for id, v in pairs(gone) do job.superseded[id] = validate.decimal(v) end
end

-- The stamp's step (ZEGO's RTC Sequence): taken at the first send, decided
-- again past `fresh_ms`. Returns as `M.before`.
local function by_stamp(client, stamp, attempt, op)
  local job, action = attempt.job, attempt.action
  if attempt.n == 1 and not job.stamped then
    local param = stamp.param
    local chosen = attempt.params[param] ~= nil
    local ok, err, unsure = stamp.take(client, action, op, attempt.params)
    if not ok then err.action = action return false, err end
    attempt.took, attempt.chosen = not chosen and attempt.params[param] ~= nil, chosen
    job.stamp_chosen, job.stamp_unsure = chosen, unsure
  end
  if attempt.n == 1 then
    job.stamp_at = attempt.sent_at
    return nil
  end
  local age = job.stamp_at and attempt.sent_at - job.stamp_at
  if not (stamp.renew and age and age * 1000 >= stamp.fresh_ms and M.decides(op)) then return nil end
  local ids = attempt.params["StreamId[]"] or { attempt.params.StreamId }
  -- (decided while the shared store did not answer: see UNSURE; the store is not even asked)
  if job.stamp_unsure then return false, expired(client, action, age, ids, nil, UNSURE) end
  local go = vouched(client, age)
  -- (not vouched: only asked whether a later call decided, never a new value; what is left expires)
  local ok, gone, unsure = stamp.renew(client, action, op, attempt.params, job.stamp_chosen or not go, age * 1000)
  if ok == nil then gone.action = action return false, gone end
  if gone then supersede(job, gone) end
  if not ok then return { Superseded = true, SupersededBy = job.superseded } end
  if not go or unsure then
    return false, expired(client, action, age, ids, job.superseded, type(unsure) == "string" and unsure
      or unsure and "the shared decision store did not answer, so nobody vouched that no later call decided" or nil)
  end
  if not job.stamp_chosen then job.stamp_at = attempt.sent_at end
  return nil
end

-- A decision kept beside the call (no stamp of the provider's): the same
-- rule on the call's streams (`job.streams`, the provider's `streams`).
local function by_store(client, attempt)
  local job, gen, keys = attempt.job, client._sequence, attempt.job.streams
  if attempt.n == 1 and not job.decision then
    local v, err, unsure = gen:next_for(keys)
    if not v then return false, M.unavailable(client, attempt.action, "no decision could be taken", err) end
    job.decision, job.decided_at, job.decision_unsure = tonumber(v), attempt.sent_at, unsure
    attempt.decided = true
    return nil
  end
  local age = job.decided_at and attempt.sent_at - job.decided_at
  if not age then return nil end
  local late = age * 1000 >= M.WINDOW_MS
  -- (decided while the shared store did not answer: see UNSURE; past its window the store is not even asked)
  if late and job.decision_unsure then return false, expired(client, attempt.action, age, keys, nil, UNSURE) end
  local later, v, unsure
  if not late then
    -- (inside it, a retry is the same decision, unless the store shows a later one: the provider
    -- orders nothing, and this request would land over it)
    later = gen:later(keys, job.decision)
    if not later then return nil end
  elseif vouched(client, age) then -- (asked and renewed in one step: nobody decides between the two)
    v, later, unsure = gen:renew(keys, job.decision, nil, age * 1000)
    if v == nil then return false, M.unavailable(client, attempt.action, "the decision could not be renewed", later) end
    if unsure then v = nil end -- (renewed from this process's record alone: nobody vouched)
  else
    later = gen:later(keys, job.decision)
  end
  if later and job.decision_unsure then
    -- (decided while the shared store did not answer: the later value it holds may be this call's
    -- own unanswered request, so it proves no later call; nor is this call known to the others)
    return false, expired(client, attempt.action, age, keys, nil, UNSURE)
  end
  if later then
    -- (by the call's items where a batch gave them, one a stream: its report names them so)
    local items = job.items and #job.items == #keys and job.items
    local named = {}
    for i, k in ipairs(keys) do if later[k] then named[items and items[i] or k] = later[k] end end
    supersede(job, named)
    local left = 0
    for _, k in ipairs(keys) do if not later[k] then left = left + 1 end end
    if left == 0 then return { Superseded = true, SupersededBy = job.superseded } end
  end
  -- (what is left cannot go: not vouched for, or beside a superseded stream in one call, which
  -- this step cannot take apart; the calls it serves name one stream each)
  if not v then
    return false, expired(client, attempt.action, age, keys, job.superseded, type(unsure) == "string" and unsure or nil)
  end
  job.decision, job.decided_at = tonumber(v), attempt.sent_at
  return nil
end

--- The error of a decision store that failed: nothing is sent.
function M.unavailable(client, action, what, err)
  return errors.new { provider = client._rules.provider, action = action, code = "DecisionUnavailable",
    kind = "store", message = what .. ": " .. tostring(err), retryable = false, sent = false }
end

--- Before each attempt of a call (streamctl.pipeline.sign): its decision
-- taken (the first send) or checked against its window.
-- @return nil when the attempt goes; the call's result when nothing is
--   left to send (superseded); or false and the error that ends it unsent
function M.before(client, attempt)
  local rules = client._rules
  local op = rules.operations[attempt.action]
  local stamp = rules.stamp
  if stamped(stamp, op) then return by_stamp(client, stamp, attempt, op) end
  if M.decides(op) and attempt.job.streams and client._sequence then return by_store(client, attempt) end
  return nil
end

return M
