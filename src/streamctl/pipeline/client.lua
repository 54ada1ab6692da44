--- The request pipeline shared by both providers.
--
-- A call flows one way: validate -> build -> sign -> send -> decode -> report.
-- This module owns every step that is the same for both providers; a provider
-- module (streamctl.aliyun, streamctl.zego) hands `define` a table of rules,
-- the interface streamctl.pipeline.provider writes down and checks.
--
-- A request is `{ method, url, headers, body, action, provider }`; a response
-- is `{ status, headers (lower-case names), body }`; a transport failure is
-- `{ code, message, sent }`. A transport is either a blocking
-- `function(request) -> response | nil, failure`, or a table with
-- `start(key, request) -> true | nil, failure`, `poll(timeout_seconds) ->
-- { {key=, res=, err=}, ... }`, and optionally `sleep(seconds)`, `close()`
-- and `check() -> true | nil, why` (whether it can send from here).
-- Unless the caller gives one, a client uses streamctl.transport.auto:
-- cosockets inside nginx (streamctl.transport.ngx), libcurl elsewhere
-- (streamctl.transport.curl, on libcurl's multi interface).
--
-- Calls and batches are carried out by a streamctl.engine.runner engine, which the
-- client hands an explicit interface, built in one place (`engine_for`): its
-- io, how to sign an attempt (streamctl.pipeline.sign) and decode its answer
-- (streamctl.pipeline.decode), how to pace an action (streamctl.pipeline.pacing),
-- the retry policy and the clock correction. Beside it, each one job:
-- streamctl.pipeline.options (the options and their rules), streamctl.base.encode
-- (service parameters), streamctl.pipeline.batch (batches and reports),
-- streamctl.base.redact (what is never shown).
-- @module streamctl.pipeline.client

local core = require "streamctl.core"
local tracecontext = require "streamctl.base.tracecontext"
local spans = require "streamctl.pipeline.spans"
local errors = require "streamctl.base.errors"
local validate = require "streamctl.base.validate"
local runner = require "streamctl.engine.runner"
local retry = require "streamctl.engine.retry"
local auto_transport = require "streamctl.transport.auto"
local stores = require "streamctl.pipeline.stores"
local sequence = require "streamctl.engine.sequence"
local keys = require "streamctl.pipeline.keys"
local jitter = require "streamctl.base.jitter"
local batch = require "streamctl.pipeline.batch"
local encode = require "streamctl.base.encode"
local redact = require "streamctl.base.redact"
local decode = require "streamctl.pipeline.decode"
local sign = require "streamctl.pipeline.sign"
local options = require "streamctl.pipeline.options"
local pacing = require "streamctl.pipeline.pacing"
local interface = require "streamctl.pipeline.provider"
local api = require "streamctl.pipeline.api"
local catalogue = require "streamctl.pipeline.catalogue"

local type, pairs, ipairs, error, setmetatable = type, pairs, ipairs, error, setmetatable
local floor = math.floor
local format = string.format

local M = {}

--- How long after it was sent an attempt whose outcome is unknown is taken
-- to be able to land, in milliseconds (see streamctl.engine.runner, "Order", and
-- docs/pacing.md "Not out of order"): 10 s, ZEGO's Sequence window.
M.SETTLE_MS = 10000

local Client = {}

-- Checks and encodes service-named params (streamctl.base.encode); then the
-- provider fills in what must stay fixed across retries (`complete`; `dry`
-- for a prepare, which must commit nothing). `published`: a caller's own
-- parameters, checked first by the published method (streamctl.pipeline.api).
-- @return op, params; or nil, err
function Client:_encode(action, params, level, dry, checked, published)
  local rules = self._rules
  if type(action) ~= "string" then error("action must be a string", level + 1) end
  if params ~= nil and type(params) ~= "table" then error("params must be a table", level + 1) end
  local op = rules.operations[action]
  if not op then return nil, errors.invalid(rules.provider, action, api.unknown_action(rules, action)) end
  if published then
    local why
    params, why = api.checked(rules, action, op, params)
    if not params then return nil, errors.invalid(rules.provider, action, why) end
  end
  local out, err = encode.params(rules, self._texts, action, params, checked)
  if not out then return nil, err end
  if rules.complete then
    local why
    out, why = rules.complete(self, action, op, out, dry)
    if not out then
      if errors.is(why) then why.action = action return nil, why end
      return nil, errors.invalid(rules.provider, action, why)
    end
  end
  return op, out
end

--- Builds and signs the request for `action` without sending it (and
-- without taking a ZEGO Sequence: the generator is only peeked at).
-- `params` uses the service's own parameter names; a Lua array becomes what
-- the service expects (see the provider's rules).
-- @return request table `{ method, url, headers, body, action, provider }`, or nil, err
function Client:prepare(action, params)
  local op, out = self:_encode(action, params, 2, true, nil, true)
  if not op then return nil, out end
  return sign.request(self, action, out)
end

--- Checks `params` for `action` as `call` and `prepare` do (each by its
-- named field's rule; the common parameters and credential-bearing names
-- refused; the provider's own rules), signing, sending and taking nothing.
-- @return the parameters as they would be sent (before the common ones and
--   a ZEGO Sequence), or nil, err (InvalidParameter, naming the parameter)
function Client:check_call(action, params)
  local op, out = self:_encode(action, params, 2, nil, nil, true)
  if not op then return nil, out end
  return out
end

--- The current time in Unix seconds, as the provider will see it
-- (the injected clock plus any measured skew correction).
function Client:now()
  return sign.now(self)
end

--- The account the provider's limits apply to, which keys the pacing budget
-- (Aliyun: the `account_id` option, else a role ARN's UID, else the UID STS
-- answered once the budget is shared, see docs/pacing.md; ZEGO: the AppId).
function Client:account()
  return self._rules.account(self)
end

--- The rate at which this client sends `action` now (requests per second,
-- the margin and the room taken off: docs/pacing.md), its room (the
-- fraction of the cap the provider's throttles left it) and the cap; nil
-- when it is not paced.
function Client:rate_for(action)
  local pacer = self._pacer
  local rate = pacer:rate(action)
  if not rate then return nil end
  local room = pacer:room(action)
  return rate * room, room, pacer:cap(action)
end

-- Makes the job that runs `action` with encoded params.
function Client:_job(action, op, params)
  local rules = self._rules
  return { action = action, params = params, recover = op.recover, done_codes = op.done_codes,
           ordered = op.ordered, streams = rules.streams(action, params), once = not op.idempotent }
end

-- nil, or the error that stops every call from here (an nginx phase in
-- which the transport can neither yield nor block): nothing is paced or sent.
function Client:_send_blocker(action)
  local check = self._check
  if not check then return nil end
  local ok, why = check()
  if ok then return nil end
  return errors.new { provider = self._rules.provider, action = action, code = "InvalidRequest",
                      kind = "validation", message = why, sent = false }
end

--- Sends `action` with service-named `params` and decodes the answer, with
-- rate limiting and retries (each attempt signed afresh).
-- @return the decoded response table, or nil, err (`err.attempts` says how many were made)
function Client:call(action, params)
  return self:_call(action, params)
end

-- `call`, in `trace` (a parsed trace context: a named method's `trace`
-- field) when given; `checked`: `params` made from fields checked by their
-- rules (a named method's), not checked again.
function Client:_call(action, params, given, checked)
  local op, out = self:_encode(action, params, 3, nil, checked, not checked)
  if not op then return nil, out end
  local here = self:_send_blocker(action)
  if here then return nil, here end
  local span, trace, span_id = spans.start(self, given)
  local job = self:_job(action, op, out)
  job.trace, job.span_parent = trace, span_id
  job = self:_run({ job }, { concurrency = 1 })[1]
  local result = job.result
  if span then
    local err = job.err
    spans.finish(self, span, action, result ~= nil and "ok" or err.outcome_unknown and "unknown"
      or err.sent == false and "not_sent" or "failed", err and tostring(err.message))
  end
  if result == nil then return nil, job.err end
  -- (streams a later call decided on, which left the call before it was sent: streamctl.pipeline.sign)
  if job.superseded and result.SupersededBy == nil then result.SupersededBy = job.superseded end
  return result
end

--- Frees the transport's connection (if it has one) and the store
-- connections the client made (a Redis one; not one it was given). Idempotent.
function Client:close()
  local close = self._close
  self._close = nil
  if close then close() end
  stores.close(self._stores)
  self._stores = nil
end

-- Checks a method's fields and its cross-field rule.
-- @return params, values; or nil, err
function Client:_fields(method_name, spec, fields)
  local provider = self._rules.provider
  local params, values = validate.fields(spec.fields, fields, method_name)
  if not params then return nil, errors.invalid(provider, spec.action, values) end
  if spec.check then
    local why = spec.check(params, values, self)
    if why then return nil, errors.invalid(provider, spec.action, why) end
  end
  return params, values
end

-- Runs jobs on this client's engine (its concurrency unless `opts` says).
function Client:_run(jobs, opts)
  local resolve = self._rules.resolve_account
  if resolve then resolve(self, self._sleep) end
  opts = opts or {}
  opts.concurrency, opts.deadline = opts.concurrency or self._concurrency, self._deadline
  return self._engine:run(jobs, opts)
end

-- Runs a named method: validate fields, then call.
local function named(rules, name, spec)
  local method_name = rules.provider .. "." .. name
  return function(self, fields)
    -- (a call's own `trace`, as a client's: not one of the provider's fields, taken out before they
    -- are checked; a copy made only for a call that has one)
    local trace
    if type(fields) == "table" and fields.trace ~= nil then
      local why
      trace, why = options.trace_check(fields.trace)
      if not trace then return nil, errors.invalid(rules.provider, spec.action, "field 'trace' " .. why) end
      local rest = {}
      for k, v in pairs(fields) do if k ~= "trace" then rest[k] = v end end
      fields, trace = rest, tracecontext.from(trace)
    end
    local params, err = self:_fields(method_name, spec, fields)
    if not params then return nil, err end
    return self:_call(spec.action, params, trace, true)
  end
end

-- The engine's interface onto this client: the only things the runner uses.
-- Pacing off (`rate_limits = false`: the pacer has no limiter), nothing is
-- paced and nothing the pacing would learn is read: the engine gets no
-- hook to reserve a slot, hold a window or measure, and a call pays for none.
local function engine_for(self, io)
  local pacer = self._pacer
  local paced = pacer.limiter ~= nil
  local function when(f) return paced and f or nil end
  return runner.new {
    io = io,
    retry = self._retry,
    settle = self._settle,
    cancel = self._cancel,
    sign = function(attempt) return sign.attempt(self, attempt) end,
    decode = function(attempt, res, terr) return decode.attempt(self, attempt, res, terr) end,
    observe = (self._on_attempt and decode.observer(self)) or (self._spans and spans.observer(self)) or nil,
    correct_clock = function(err) return decode.correct_clock(self, err) end,
    pace = when(function(action, max_delay, job) return pacer:pace(action, max_delay, job) end),
    horizon = when(function(action) return pacer:horizon(action) end),
    window = when(function(action) return pacer:window(action) end),
    slack = when(function() return pacer:slack() end),
    measured = when(function(kind, seconds) return pacer.measure[kind](pacer.measure, seconds) end),
    answered = when(function(action, age, err) return pacer:answered(action, age, err) end),
    unsign = function(attempt) return sign.unsign(self, attempt) end,
    paced = function(action) return pacer:cap(action) ~= nil end,
  }
end

--- A copy of a signed request (from `prepare`) that shows no secret,
-- signature or security token: each is replaced by "<redacted>".
function Client:redact(req)
  return redact.request(self._rules, self._rules.secrets(self), req)
end

--- What a method would send for `fields`, without sending anything: the
-- requests signed as they would be now (one per call a batch would make),
-- each with every secret, signature and security token replaced by
-- "<redacted>", so that it can be shown or logged. Fields are checked
-- exactly as the method checks them; no ZEGO Sequence is taken.
-- @tparam string name a named or batch method, e.g. "resume_live_stream"
-- @tparam table fields the method's fields
-- @return array of requests `{ method, url, headers, body, action, provider }`, or nil, err
function Client:dry_run(name, fields)
  local jobs, err = batch.planned(self, name, fields, "dry_run")
  if not jobs then return nil, err end
  local out = {}
  for i, job in ipairs(jobs) do
    local req, serr = sign.request(self, job.action, job.params)
    if not req then return nil, serr end
    out[i] = Client.redact(self, req)
  end
  return out
end

--- Checks `fields` as method `name` would before sending, sending nothing
-- (to run before recording that a run is about to send). A batch's list
-- may be read as it goes (a function or file): the rest is checked now.
-- @return true, or nil, err (as the method would return it)
function Client:check(name, fields)
  local jobs, err = batch.planned(self, name, fields, "check", true)
  if not jobs then return nil, err end
  return true
end

-- The decision store (streamctl.pipeline.decision) as a Sequence generator:
-- the option `sequence` (ZEGO's), else one on the client's store backend (a
-- shared dict, Redis, the machine's file; or in memory). A provider whose
-- calls carry a Sequence keys it by account (ZEGO's AppId); another's keys
-- are its streams' own names (Aliyun's domain/app/stream: a domain is one
-- account's). Where the rate-limit store can take it with the slot (Redis),
-- a call's slot and Sequence are taken in one round trip (streamctl.pipeline.pacing).
local function sequence_for(self, o)
  local rules = self._rules
  local prefix = rules.provider .. ":" .. (rules.sequenced and rules.account(self) .. ":" or "")
  local pacer = self._pacer
  local store, with_slot = stores.sequence(self._stores, prefix, self._monotonic, pacer.store_handle)
  -- (the provider's stamp, its Sequence, then taken with the slot where the store can: streamctl.pipeline.pacing)
  if with_slot and pacer.limiter and pacer.limiter.store.reserve_sequenced and rules.stamp then
    self._stamp_store = with_slot
  end
  -- (who vouches for a late call: the caller's word, else a store every decider shares by its
  -- nature: a shared dict, Redis; never this process's memory, the machine's file or a generator given)
  local first = self._stores[1]
  self._decisions_shared = o.decisions_shared
  if self._decisions_shared == nil then self._decisions_shared = first ~= nil and not first.backend.decisions end
  return o.sequence or sequence.new {
    clock_ms = function() return floor(self._clock() * 1000) end,
    store = store,
  }
end

-- The client's transport as the engine's io (see streamctl.engine.runner); the
-- built-in one unless the caller gave one.
local function io_for(self, o)
  local transport = o.transport
  if transport == nil or type(transport) == "string" then
    local t, why = auto_transport.new(o, transport)
    if not t then return nil, why end
    transport = t
  end
  local is_table = type(transport) == "table"
  self._close = is_table and transport.close or nil
  self._check = is_table and transport.check or nil
  local sleep = o.sleep or (is_table and transport.sleep) or auto_transport.sleep
  if not is_table then return runner.sync_io(transport, self._monotonic, sleep) end
  return { start = transport.start, poll = transport.poll, now = self._monotonic, sleep = sleep }
end

-- Makes a client of `class` from checked options and credentials.
local function make(class, o, creds)
  local rules = class._rules
  local spans_on = o.on_span ~= nil or o.tracer ~= nil
  local self = setmetatable({
    endpoint = o.endpoint or options.parse_endpoint(rules.defaults.endpoint),
    clock_offset = 0,
    _concurrency = o.concurrency or 8,
    _settle = (o.settle_ms or M.SETTLE_MS) / 1000, _deadline = o.deadline_ms and o.deadline_ms / 1000,
    _clock = o.clock or core.now,
    _monotonic = o.monotonic or core.monotonic,
    _on_attempt = o.on_attempt,
    _cancel = o.cancel,
    _nonce_given = o.nonce ~= nil,
    -- (the trace its calls belong to: a caller's, or a new one for a traceparent that breaks its rule)
    _trace = o.trace ~= nil and tracecontext.from(o.trace) or nil,
    _traceparent = o.traceparent,
    -- (who takes its spans, and whether any one does: streamctl.pipeline.spans)
    _on_span = o.on_span, _tracer = o.tracer, _spans = spans_on,
    -- (its actions' span templates, each made at the action's first span)
    _span_templates = spans_on and {} or nil,
    _sampler = o.sampler or (o.tracer and o.tracer.sampler),
    -- (whether a request's `traceparent` may be there to read: OpenResty's `ngx` is there from its
    -- first phase, and never outside it)
    _in_nginx = rawget(_G, "ngx") ~= nil,
  }, class)
  local fields, err = rules.configure(self, o, creds)
  if not fields then return nil, err end
  for k, v in pairs(fields) do self[k] = v end
  self._nonce = o.nonce or function() return rules.nonce(self) end
  -- The store backends' handles for the client's rate limits and Sequences
  -- (streamctl.pipeline.stores: a Redis connection is made on first use, so a
  -- client made while Redis is down works from its fallback; one the caller
  -- made, other clients may share, is theirs to close).
  local handles, option, herr = stores.open(o)
  if not handles then return nil, errors.invalid(rules.provider, nil, "option '" .. option .. "': " .. herr.message) end
  self._stores = handles
  -- Jitter from OpenSSL, so processes never share one math.random sequence.
  local retry_opts = { random = jitter.unit }
  for k, v in pairs(o.retry or {}) do retry_opts[k] = v end
  if o.retry == false then retry_opts.attempts = 1 end
  self._retry = retry.policy(retry_opts)
  self._pacer = pacing.new(self, o, handles)
  self._sequence = sequence_for(self, o)
  local io, why = io_for(self, o)
  if not io then return nil, why end
  self._engine = engine_for(self, io)
  self._sleep = io.sleep
  return self
end

-- The class's own functions: its catalogue (streamctl.pipeline.catalogue),
-- and `new`.
local function class_functions(class, rules)
  catalogue.add(class, rules) -- (methods, effect, actions, published...: what tools read)
  local schema = options.schema(rules)
  local check = options.check_one(schema)

  --- Makes a client. Every option: docs/clients.md.
  -- @return client, or nil, err (bad or unknown option, missing credentials)
  function class.new(opts)
    if opts ~= nil and type(opts) ~= "table" then error("options must be a table", 2) end
    local o, why, code = options.check(rules, schema, opts)
    local creds
    if o then creds, why, code = keys.from_options(rules.variables, o, check) end
    local self
    if creds then self, why = make(class, o, creds) end
    if self then return self end
    local e = errors.is(why) and why or errors.invalid(rules.provider, nil, why)
    if code then e.code = code end
    return nil, e
  end
end

-- `fn`, refusing to run on anything but a client of `class` (or a table that
-- reaches one through __index, as a wrapper does): a method called with a
-- dot (client.forbid_live_stream{...}) gets its fields as the client, and
-- would fail deep inside on a name the caller never wrote.
local function on_client(class, provider, name, fn)
  local rules = class._rules
  return function(self, ...)
    if type(self) ~= "table" or self._rules ~= rules then
      error(format("streamctl.%s: %s is a method: call it with a colon, client:%s(...), not client.%s(...)",
        provider, name, name, name), 2)
    end
    return fn(self, ...)
  end
end

-- The client's own methods a caller may use (the others are its steps, called by itself).
local PUBLIC = { "check", "check_call", "prepare", "now", "account", "rate_for", "call", "close", "redact",
                 "dry_run" }

--- Defines a provider's client class from its rules.
-- @tparam table rules the provider's (streamctl.pipeline.provider: checked first)
function M.define(rules)
  interface.check(rules)
  api.install(rules) -- (every published action an operation)
  local class = { _rules = rules }
  local p = rules.provider
  -- action -> service parameter -> the text field that sets it (for `call`)
  class._texts = encode.texts(rules)
  for k, v in pairs(Client) do class[k] = v end
  for _, name in ipairs(PUBLIC) do class[name] = on_client(class, p, name, Client[name]) end
  for name, spec in pairs(rules.methods) do class[name] = on_client(class, p, name, named(rules, name, spec)) end
  for name, spec in pairs(rules.batches or {}) do
    class[name] = on_client(class, p, name, batch.method(rules, name, spec))
  end
  class.__index = class
  class.__tostring = function(self)
    return format("streamctl.%s client (%s)", rules.provider, redact.url(self.endpoint.url))
  end
  class_functions(class, rules)
  return class
end

return M
