--- ZEGO's Sequence, the stamp of its RTC calls (streamctl.pipeline.provider's
-- `stamp`): strictly increasing per stream, taken at a call's first send
-- (with Redis as both stores, with its rate-limit slot in one round trip),
-- kept for the retries, decided again past ZEGO's window.
-- @module streamctl.zego.stamp

local errors = require "streamctl.base.errors"
local validate = require "streamctl.base.validate"

local type, tostring, tonumber, pairs, ipairs = type, tostring, tonumber, pairs, ipairs
local format, gsub = string.format, string.gsub

local M = {}

local PROVIDER = "zego"

-- The Sequence store's keys of a call on `ids`. A stream's Sequences must
-- increase over every request (ZEGO compares them within 10 s), reads
-- (DescribeRTCStreamState) too, but only a call that changes the stream
-- decides on it: a read keeps its last value under a key of its own ("r:"
-- and the ID, no stream ID's shape), a change under the ID and that key. So
-- every value is above every earlier one of the stream, and the ID's alone
-- is the last decision (what `renew_sequence` compares with).
local function sequence_keys(op, ids)
  local out, n = {}, #ids
  local read = op.effect == "read"
  for i = 1, n do
    if read then out[i] = "r:" .. ids[i] else out[i], out[n + i] = ids[i], "r:" .. ids[i] end
  end
  return out
end

-- The call's stream IDs, as a list.
local function stream_ids(params)
  local ids = params["StreamId[]"] or params.StreamId
  if type(ids) ~= "table" then ids = { ids } end
  return ids
end

-- The Sequence store's keys a call is still to take its value for at its
-- first send (none when the caller gave one).
local function sequence_ids(_, op, params)
  if not op.sequence or params.Sequence ~= nil then return nil end
  return sequence_keys(op, stream_ids(params))
end

-- The SequenceUnavailable error for a generator that failed.
local function sequence_unavailable(what, err)
  return errors.new { provider = PROVIDER, code = "SequenceUnavailable", kind = "service",
    message = what .. ": " .. tostring(err) }
end

-- At a call's first send: takes the next Sequence for its streams, or
-- records the one the caller chose (so later ones are larger still). Taken
-- then, not when the call was made, a Sequence follows the order in which
-- calls leave, whichever process or nginx worker sends them (they share it
-- through the `shared_dict` or `sequence` store).
local function take_sequence(self, _, op, params)
  if not op.sequence then return true end
  local ids = sequence_keys(op, stream_ids(params))
  if params.Sequence ~= nil then
    local ok, err, last = self._sequence:record(ids, tonumber(params.Sequence))
    if ok == false then -- ZEGO would ignore it as stale: refused, nothing sent
      local e = errors.invalid(PROVIDER, nil, format("parameter 'Sequence' (%s) must be above the last one "
        .. "sent for stream '%s' (%s)", params.Sequence, (gsub(err, "^r:", "")), validate.decimal(last)))
      e.sent = false
      return nil, e
    end
    if not ok then return nil, sequence_unavailable("the Sequence could not be recorded", err) end
    return true
  end
  local seq, err, unsure = self._sequence:next_for(ids)
  if not seq then return nil, sequence_unavailable("no Sequence could be had for the call", err) end
  params.Sequence = seq
  return true, nil, unsure
end

-- ZEGO compares a stream's Sequences only within 10 s of each other (its
-- window): a call sent later than that with the Sequence it was decided
-- with would land over a call decided after it. A call keeps its Sequence
-- while it is younger than this, which leaves 3 s of the window for the
-- request to reach ZEGO; an older one is decided again (`renew_sequence`).
local FRESH_MS = 7000

-- Before an attempt of a call whose Sequence has aged (streamctl.pipeline.sign):
-- the streams a later call decided on (the Sequence store says) are
-- superseded and leave the call; the others take a new Sequence, unless the
-- caller chose it (kept); `age_ms`: how long ago the call was decided.
-- Returns true and the superseded streams (`{ [id] = later Sequence }`, or
-- nil) and, when nobody vouched for the new Sequence, `unsure` (true, or
-- why: the store may have forgotten a later decision); false and the
-- superseded streams when no stream is left; or nil and an error.
local function renew_sequence(self, action, op, params, chosen, age_ms)
  if not op.sequence or op.effect == "read" then return true end
  local ids = stream_ids(params)
  local old, gen = tonumber(params.Sequence), self._sequence
  local v, later, unsure
  if chosen then
    later = gen.later and gen:later(ids, old)
  elseif not gen.renew then
    return nil, sequence_unavailable("the call's Sequence aged past ZEGO's window", "the 'sequence' option's "
      .. "generator has no renew, so whether a later call decided on its streams cannot be told")
  else
    -- (the streams' own keys say whether a later call decided; the reads' count for the new value)
    v, later, unsure = gen:renew(sequence_keys(op, ids), old, #ids, age_ms)
    if v == nil then return nil, sequence_unavailable("the call's Sequence could not be renewed", later) end
  end
  if not later then
    if v then params.Sequence = v end
    return true, nil, unsure
  end
  local rest = {}
  for _, id in ipairs(ids) do if not later[id] then rest[#rest + 1] = id end end
  if #rest == 0 or params["StreamId[]"] == nil then return false, later end
  -- (the rest of a list, decided again; a stream a later call takes meanwhile leaves it too)
  params["StreamId[]"] = rest
  local ok, more = renew_sequence(self, action, op, params, chosen, age_ms)
  if ok == nil then return nil, more end
  for id, l in pairs(more or {}) do later[id] = l end
  return ok, later
end

M.keys = sequence_keys

--- The stamp: its parameter, the keys a call still takes its value for, the
-- take at the first send, the window (`fresh_ms`) and the renewal past it.
M.STAMP = { param = "Sequence", ids = sequence_ids, take = take_sequence, fresh_ms = FRESH_MS,
            renew = renew_sequence, applies = function(op) return op.sequence == true end }

return M
