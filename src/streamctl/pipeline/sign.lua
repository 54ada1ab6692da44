--- The sign step of a call, the same for both providers: a request built by
-- the provider's `build` with a fresh nonce and the provider's time; at a
-- call's first send, its decision before it (streamctl.pipeline.decision);
-- and what the engine does with a request whose slot went stale before it
-- left (`unsign`). streamctl.pipeline.client hands `attempt` and `unsign` to
-- the engine, and signs with `request` for `prepare` and `dry_run`.
-- @module streamctl.pipeline.sign

local errors = require "streamctl.base.errors"
local tracecontext = require "streamctl.base.tracecontext"
local redact = require "streamctl.base.redact"
local decision = require "streamctl.pipeline.decision"

local type = type
local new_id, traceparent = tracecontext.new_id, tracecontext.traceparent

local M = {}

--- The current time in Unix seconds, as the provider will see it (the
-- client's clock plus any measured skew correction).
function M.now(client)
  return client._clock() + client.clock_offset
end

--- Signs one request: a fresh nonce and time every time.
-- `params` is the call's own (from the client's encode step): a build may
-- add the common parameters to it, as every signing sets all of them again.
-- @return request table, or nil, err
function M.request(client, action, params)
  local rules = client._rules
  local nonce = client._nonce()
  local why = client._nonce_given and rules.nonce_rule(nonce) -- (the built-in source is trusted)
  if why then
    return nil, errors.invalid(rules.provider, action, "the nonce source returned " .. (type(nonce) == "string"
      and "a value that" or "a " .. type(nonce) .. ", which") .. " " .. why)
  end
  return rules.build(client, action, rules.operations[action], params, M.now(client), nonce)
end

--- Signs an attempt when the engine sends it (the engine's `sign`). A
-- call's decision is taken at its first send, or checked against its
-- window at a later one (streamctl.pipeline.decision: ZEGO's Sequence, the
-- `stamp`, or a value kept beside the call): superseded, it ends with
-- nothing left to send; expired, unsent. What the request carries that no
-- message may show (its signature, a token) is kept beside it: a server
-- that echoes the request must not put it into an error.
-- @return request table; or false and the call's result (nothing to send); or nil, err
function M.attempt(client, attempt)
  local rules, action = client._rules, attempt.action
  if attempt.role == "call" then
    local passed = M.resume_time_passed(client, attempt)
    if passed then return nil, passed end
    local moot, err = decision.before(client, attempt)
    if moot == false then return nil, err end
    if moot then return false, moot end
  end
  local req, err = M.request(client, action, attempt.params)
  if req then
    attempt.hidden, attempt.req = redact.hidden(rules, req), req
    -- In a trace, each attempt is a span of its own, named in the request's `traceparent` (after
    -- the signature: what is signed never holds it) unless the client was told not to send it.
    local ctx = (attempt.job and attempt.job.trace) or client._trace
    if ctx then
      attempt.trace = ctx
      if client._traceparent ~= false then
        local headers = req.headers
        attempt.span_id, headers.traceparent = traceparent(ctx.trace_id, ctx.sampled)
        if ctx.tracestate then headers.tracestate = ctx.tracestate end
      else
        attempt.span_id = new_id(8)
      end
    end
  end
  return req, err
end

--- A forbid's ResumeTime is checked to be ahead when the call is made; an
-- attempt sent later (a throttle, a retry) is checked again: a forbid
-- whose end has passed would be undone at once, or refused. The provider's
-- `ends` says when the forbid ends, and whether by the caller's time.
-- @return nil, or the error that ends the call unsent (this attempt):
--   `ResumeTimePassed`, not the caller's InvalidParameter (the time was
--   ahead when it was given: the run waited past it, a failure, not misuse)
function M.resume_time_passed(client, attempt)
  local ends = client._rules.ends
  if not ends then return nil end
  local now = M.now(client)
  local at, how = ends(attempt.action, attempt.params, now)
  if how ~= "resume_time" or not at or at > now then return nil end
  local e = errors.invalid(client._rules.provider, attempt.action, "field 'resume_time' must be in the future when "
    .. "the forbid is sent: it passed before this attempt could leave (a forbid sent now would end at once); "
    .. "this attempt was not sent")
  e.code, e.sent = "ResumeTimePassed", false
  return e
end

--- Lets go of what the stamp took for an attempt whose slot went stale
-- before it left (the engine's `unsign`): the value is taken afresh at the
-- next send, unless the caller chose it.
-- @return whether the attempt may be signed again with a new value
function M.unsign(client, attempt)
  if attempt.took then attempt.params[client._rules.stamp.param] = nil end
  -- (a decision kept beside the call, never sent: taken again too, as what decides is the send)
  if attempt.decided then attempt.job.decision = nil end
  return not attempt.chosen
end

return M
