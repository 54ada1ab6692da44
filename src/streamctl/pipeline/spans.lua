--- Spans of a client's work: one span per operation (a call, or a batch
-- over all its calls) and, under it, one CLIENT span per HTTP attempt,
-- each named in the attempt's `traceparent` (streamctl.pipeline.sign).
-- Each is handed over when it ends, to the client's `tracer` as a record
-- (streamctl.base.spanrecord: one flat table, what streamctl.trace's
-- exporter encodes; to a tracer's `put`, when no `on_span` needs the table,
-- the record's slots as arguments) and to its `on_span` as a plain table
-- (for a user's own tracing SDK or log pipeline):
--
--   { trace_id, span_id, parent_span_id, trace_state, name = "Live.ForbidLiveStream",
--     kind = "internal" | "client", start_time, end_time (Unix seconds), attributes = { [key] = value },
--     events = { { name, time, attributes } }, status = { code = "ok" | "error", message } }
--
-- Attributes follow OpenTelemetry's conventions: `rpc.system`,
-- `rpc.service`, `rpc.method`; an attempt's `server.address`,
-- `server.port`, `http.request.method`, `http.response.status_code`,
-- `http.request.resend_count` (a retry's), `error.type` (the failure's
-- code); streamctl's own: `streamctl.request_id`, `streamctl.throttle_code`,
-- `streamctl.retry_after_ms`, an operation's `streamctl.outcome` ("ok",
-- "failed", "unknown", "not_sent") and a batch's counts. The wait for a
-- rate-limit slot is an attempt's event `streamctl.slot_wait` (seconds,
-- the room and the cap then). A tracer or hook that raises changes nothing
-- of the call (its first error is kept in client.on_span_error).
-- @module streamctl.pipeline.spans

local tracecontext = require "streamctl.base.tracecontext"
local spanrecord = require "streamctl.base.spanrecord"
local nginx = require "streamctl.base.nginx"
local url = require "streamctl.base.url"

local pcall, tostring, type, error, setmetatable = pcall, tostring, type, error, setmetatable
local running = coroutine.running
local new_id = tracecontext.new_id
local DEFAULT_SAMPLER = tracecontext.parentbased_always_on
local pack = table.pack or function(...) return { n = select("#", ...), ... } end
local unpack = table.unpack or unpack -- luacheck: ignore (LuaJIT's)

-- (the main coroutine's key: Lua 5.1's coroutine.running gives nil there)
local MAIN = {}
local format = string.format
local plain, template = spanrecord.plain, spanrecord.template
local INTERNAL, CLIENT = spanrecord.INTERNAL, spanrecord.CLIENT

local M = {}

-- The attributes an operation's and an attempt's records give values to
-- (sorted; the rest are their templates' constants).
local OPERATION = { "streamctl.outcome" }
local ATTEMPT = { "error.type", "http.request.method", "http.request.resend_count", "http.response.status_code",
                  "streamctl.request_id", "streamctl.retry_after_ms", "streamctl.throttle_code" }

-- The service a provider's spans name, and its rpc.system.
local SERVICE = { aliyun = { "Live", "alibaba-cloud-openapi" }, zego = { "ZEGO", "zego-server-api" },
                  sts = { "STS", "alibaba-cloud-openapi" } }

-- An action's span templates, `{ operation's, attempt's }`: made at the
-- action's first span and kept in the client's `_span_templates` (the name
-- "Live.ForbidLiveStream", rpc.*, and the server's host and port, the
-- scheme's when the endpoint names none). A span looks there first.
local function make_templates(client, action)
  local p = client._rules.provider
  local s = SERVICE[p] or { p, p }
  local name = s[1] .. "." .. action
  local e = client.endpoint
  local host, port = url.host_port(e and e.host or "")
  local port_or_scheme = host and (port or (e.scheme == "https" and 443 or 80))
  local t = { template(name, INTERNAL, OPERATION, { ["rpc.method"] = action, ["rpc.service"] = s[1],
                                                    ["rpc.system"] = s[2] }),
              template(name, CLIENT, ATTEMPT, { ["rpc.method"] = action, ["rpc.service"] = s[1], ["rpc.system"] = s[2],
                                                ["server.address"] = host, ["server.port"] = port_or_scheme }) }
  client._span_templates[action] = t
  return t
end

-- A tracer's, a hook's or a sampler's error: the client keeps the first.
local function note_error(client, err)
  if client.on_span_error == nil then client.on_span_error = tostring(err) end
end

local function hand(client, rec)
  local tracer, on_span = client._tracer, client._on_span
  if tracer then
    local ok, err = pcall(tracer.record, tracer, rec)
    if not ok then note_error(client, err) end
  end
  if on_span then
    local ok, err = pcall(on_span, plain(rec))
    if not ok then note_error(client, err) end
  end
end

-- A span given as its record's slots (`...`: from the template on), as a
-- record to `hand`: for a client whose tracer has no `put`, or whose
-- `on_span` needs the plain table. (Else the span goes to the tracer's
-- `put` from where it ends, the slots as they are: see `attempt`.)
local function hand_slots(client, ...) return hand(client, { ... }) end

--- The trace an operation belongs to: `given` (a call's or a batch's
-- `trace`, parsed), else the client's, else (inside nginx, in a request's
-- phase) the request's `traceparent`; or nil.
function M.context(client, given)
  if given then return given end
  local scopes = client._span_scopes -- (an `around`'s, for the coroutine it runs in)
  local scoped = scopes and scopes[running() or MAIN]
  if scoped or client._trace then return scoped or client._trace end
  local req = client._in_nginx and nginx.request_trace()
  return req and tracecontext.from(req) or nil
end

-- Whether an operation in trace `trace_id` is recorded: the client's
-- `sampler`, asked with the parent's context (`ctx`; nil at a new trace's
-- root), else the parent's choice (OpenTelemetry's default, parent-based
-- always-on: decided here, with no call, for the sampler that is that
-- default too). A sampler that raises records nothing (its first error
-- kept in client.on_span_error).
local function sampled(client, trace_id, ctx)
  local sampler = client._sampler
  if not sampler or sampler == DEFAULT_SAMPLER then return ctx == nil or ctx.parent_id == nil or ctx.sampled end
  local ok, yes = pcall(sampler, trace_id, ctx and ctx.parent_id and ctx or nil)
  if not ok then note_error(client, yes) end
  return ok and yes == true
end

--- An operation's span, begun (nil when the client hands no spans, or the
-- sampler left the operation out), the trace its attempts go in (nil when
-- there is none) and its span's id. The trace is `trace` (a tracecontext)
-- else `context`'s, a new one when spans are handed over. An operation the
-- sampler leaves out still has its span's id (its attempts' parent, their
-- `traceparent` not sampled) but is never handed over. A span begun is its
-- trace too, with what its end needs (`span_id`, `action`, `start`,
-- `ended`): one table, not two.
function M.start(client, action, trace)
  local ctx = trace or M.context(client)
  if not client._spans then return nil, ctx end
  local trace_id = ctx and ctx.trace_id or new_id(16)
  local parent_id, tracestate = ctx and ctx.parent_id, ctx and ctx.tracestate
  local yes, span_id = sampled(client, trace_id, ctx), new_id(8)
  if not yes then
    return nil, { trace_id = trace_id, parent_id = parent_id, sampled = false, tracestate = tracestate }, span_id
  end
  local span = { trace_id = trace_id, parent_id = parent_id, sampled = true, tracestate = tracestate,
                 span_id = span_id, action = action, start = client._clock(), ended = false }
  return span, span, span_id
end

--- Runs `fn(...)` as one operation, `action` (a reconcile), over the calls
-- it makes: one span, and every call made on `client` meanwhile, from the
-- same coroutine, in its trace under it (another coroutine's calls, an
-- nginx request's sharing the client, are not). `outcome_of(...)` names the
-- outcome from fn's results: "ok", "failed", "unknown" or "not_sent", and a
-- message. Returns fn's results.
function M.around(client, action, outcome_of, fn, ...)
  local span, ctx, span_id = M.start(client, action)
  if not span_id then return fn(...) end
  local scopes = client._span_scopes
  if not scopes then
    scopes = setmetatable({}, { __mode = "k" })
    client._span_scopes = scopes
  end
  local key = running() or MAIN
  local before = scopes[key]
  scopes[key] = { trace_id = ctx.trace_id, parent_id = span_id, sampled = ctx.sampled, tracestate = ctx.tracestate }
  local results = pack(pcall(fn, ...))
  scopes[key] = before
  if not results[1] then error(results[2], 0) end
  M.finish(client, span, outcome_of(unpack(results, 2, results.n)))
  return unpack(results, 2, results.n)
end

--- Ends an operation's span (`start`'s; nil: nothing to end) with its
-- `outcome` ("ok", "failed", "unknown", "not_sent"), `message` and more
-- attributes, and hands it over. A span ends once: a second end is ignored.
function M.finish(client, span, outcome, message, attributes)
  if not span or span.ended then return end
  span.ended = true
  local ok, action = outcome == "ok", span.action
  -- (the record's slots in spanrecord's order, then the value of OPERATION's one name; to whom: `attempt`)
  local tracer = client._tracer
  local put, to = tracer and not client._on_span and tracer.put, tracer
  if not put then put, to = hand_slots, client end
  local done, err = pcall(put, to, (client._span_templates[action] or make_templates(client, action))[1],
                          span.trace_id, span.span_id, span.parent_id, span.tracestate, span.start, client._clock(),
                          ok and 1 or 2, not ok and message or nil, nil, attributes, outcome)
  if not done then note_error(client, err) end
end

--- A batch's span, begun (nil when none is handed over): its calls go in
-- the batch's trace and their attempts under its span (`values._trace`,
-- `values._span_parent`: the batch's parsed fields).
function M.batch_start(client, action, values)
  local span, ctx, span_id = M.start(client, action, values._trace)
  values._trace, values._span_parent = ctx, span_id
  return span
end

--- Ends a batch's span from its report.
function M.batch_finish(client, span, report)
  if not span then return end
  M.finish(client, span, (report.failed > 0 and "failed") or (report.unknown > 0 and "unknown") or "ok",
    format("%d of %d streams failed, %d unknown", report.failed, report.total, report.unknown),
    { ["streamctl.batch.total"] = report.total, ["streamctl.batch.succeeded"] = report.succeeded,
      ["streamctl.batch.failed"] = report.failed, ["streamctl.batch.unknown"] = report.unknown,
      ["streamctl.batch.calls"] = report.calls })
end

--- An attempt's CLIENT span, from what observe knows of it (`throttled`:
-- its failure is a throttle; `waited` seconds for its slot, and the room
-- and the cap then: an event when there was a cap to wait under).
function M.attempt(client, attempt, result, err, seconds, res, throttled, waited, room, cap)
  local ctx = attempt.trace
  if not (client._spans and ctx and ctx.sampled and attempt.span_id) then return end
  local t = (client._span_templates[attempt.action] or make_templates(client, attempt.action))[2]
  local now = client._clock()
  local start = now - (seconds or 0)
  local code = err and tostring(err.code)
  local event
  -- (a wait for a slot: only where the action has a cap; without one, `waited` is the engine's own time)
  if cap and waited and waited > 0 then
    event = { name = "streamctl.slot_wait", time = start,
              attributes = { ["streamctl.waited_s"] = waited, ["streamctl.room"] = room, ["streamctl.cap"] = cap } }
  end
  -- The span's slots go to the tracer's `put` as they are, when it has one and no `on_span` needs the
  -- plain table; else to `hand_slots`, as a record. (Written out here and in `finish`, not in a function
  -- of its own: a call more, and its slots copied once more, for every span.)
  local tracer = client._tracer
  local put, to = tracer and not client._on_span and tracer.put, tracer
  if not put then put, to = hand_slots, client end
  -- (the record's slots in spanrecord's order, then the values of ATTEMPT's names in their order)
  local done, perr = pcall(put, to, t, ctx.trace_id, attempt.span_id,
             (attempt.job and attempt.job.span_parent) or ctx.parent_id,
             ctx.tracestate, start, now, err and 2 or 1, err and tostring(err.message) or nil, event, nil,
             code, -- error.type
             attempt.req and attempt.req.method, -- http.request.method
             attempt.n > 1 and attempt.n - 1 or nil, -- http.request.resend_count
             res and res.status, -- http.response.status_code
             err and err.request_id or (type(result) == "table" and result.RequestId or nil), -- .request_id
             err and err.retry_after_ms, -- streamctl.retry_after_ms
             throttled and code or nil) -- streamctl.throttle_code
  if not done then note_error(client, perr) end
end

return M
