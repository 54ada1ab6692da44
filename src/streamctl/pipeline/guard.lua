--- The blast-radius guard: how many streams one run may forbid (or
-- resume) without a confirmation. One rule for every caller: the command
-- (`--yes`, `--max-forbid`, `--max-resume`), a library batch's `guard`
-- option (streamctl.pipeline.batch), streamctl.operator.reconcile and an
-- nginx handler (a `confirm` field in its API). streamctl.operator.audit
-- gives it under its old names (`audit.guard`, `audit.MAX_FORBID`). See
-- docs/reconcile.md "The blast-radius guard".
-- @module streamctl.pipeline.guard

local errors = require "streamctl.base.errors"
local validate = require "streamctl.base.validate"

local type, error = type, error
local format, concat, gsub = string.format, table.concat, string.gsub
local floor, huge = math.floor, math.huge

local M = {}

--- The default limit: forbidding more than this many streams in one run
-- needs a confirmation. A mistaken list of thousands would cut that many
-- live streams and hold ForbidLiveStream's whole budget (20 a second per
-- account) for minutes: 100 is 5 seconds of it.
M.MAX_FORBID = 100

--- The default limit on resumes: resuming more than this many streams in
-- one run needs a confirmation too. Un-banning is a blast radius of its
-- own: an empty or mistaken desired list with `remove_extra` would let
-- every stream forbidden for moderation publish again.
M.MAX_RESUME = 100

local OPTIONS = {
  { name = "max_forbid", type = "integer", min = 0 },
  { name = "confirm", type = "boolean" },
  { name = "resumes", type = "integer", min = 0 },
  { name = "max_resume", type = "integer", min = 0 },
}

--- The guard: may one run forbid `count` streams (and resume `opts.resumes`)?
-- @tparam integer count how many distinct streams the run would forbid
-- @tparam[opt] table opts `max_forbid` (integer >= 0, default `MAX_FORBID`), `confirm`, and for a run
-- that also resumes: `resumes` (how many, counted as forbids are) and `max_resume` (default `MAX_RESUME`)
-- @return true and the decision `{ count, max_forbid, confirmed, allowed }` (with `resumes` and
-- `max_resume` when resumes were counted); or nil and an error (code `TooManyStreams`, kind
-- `validation`, `sent = false`, its `guard` the decision with `allowed = false`). Bad options: `nil, err`
-- (`InvalidParameter`).
function M.guard(count, opts)
  if type(count) ~= "number" or count < 0 or count ~= floor(count) or count == huge then
    error("bad argument #1 to 'guard' (count must be an integer >= 0)", 2)
  end
  local o, err = validate.construct(OPTIONS, opts, "streamctl.operator.audit.guard", "guard", 2)
  if not o then return nil, err end
  local max = o.max_forbid or M.MAX_FORBID
  local decision = { count = count, max_forbid = max, confirmed = o.confirm == true, allowed = true }
  local resumes = o.resumes
  if resumes then decision.resumes, decision.max_resume = resumes, o.max_resume or M.MAX_RESUME end
  local over_forbid = count > max
  local over_resume = resumes ~= nil and resumes > decision.max_resume
  if not (over_forbid or over_resume) or o.confirm then return true, decision end
  decision.allowed = false
  local said = {}
  if over_forbid then said[1] = format("forbidding %d streams in one run is more than max_forbid (%d)", count, max) end
  if over_resume then
    said[#said + 1] = format("resuming %d streams in one run is more than max_resume (%d)", resumes,
      decision.max_resume)
  end
  local e = errors.new {
    code = "TooManyStreams", kind = "validation", sent = false,
    message = concat(said, "; ") .. ": nothing was sent; confirm to send them",
  }
  e.guard = decision
  return nil, e
end

-- A batch's `guard` field: true (the command's limits) or a table of
-- `max_forbid`, `max_resume` and `confirm`, checked by their rules.
local BATCH = { OPTIONS[1], OPTIONS[2], OPTIONS[4] }
function M.batch_field(v)
  if v == true then return {} end
  if type(v) ~= "table" then return nil, "must be true (at most 100 streams unconfirmed) or a table of "
    .. "max_forbid, max_resume and confirm" end
  local o, why = validate.options(BATCH, v, "the guard", "guard.")
  if not o then return nil, (gsub(why, "^option ", "field ")), true end
  return o
end

--- A batch's guard (`o`: its `guard` field, checked) over `count` distinct
-- streams whose action has `effect` ("forbid" or "resume"; any other is not
-- guarded): true and the decision, or nil and the refusal (its `hint`: the
-- batch's own ways to confirm).
function M.batch(effect, count, o)
  local ok, decision
  if effect == "forbid" then
    ok, decision = M.guard(count, { max_forbid = o.max_forbid, confirm = o.confirm })
  elseif effect == "resume" then
    ok, decision = M.guard(0, { resumes = count, max_resume = o.max_resume, confirm = o.confirm })
  else
    return true, nil
  end
  if not ok then
    -- (the batch's own ways to confirm, in its message too: "confirm" is the command's word)
    decision.hint = format("guard = { confirm = true } to send them, or a larger guard.%s",
      effect == "forbid" and "max_forbid" or "max_resume")
    decision.message = gsub(decision.message, "confirm to send them$", decision.hint)
  end
  return ok, decision
end

return M
