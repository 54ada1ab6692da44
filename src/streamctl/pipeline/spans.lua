--- Spans of a client's work: one span per operation (a call, or a batch
-- over all its calls) and, under it, one CLIENT span per HTTP attempt,
-- each named in the attempt's `traceparent` (streamctl.pipeline.sign).
-- Each is handed over when it ends, to the client's `tracer` as a record
-- (streamctl.base.spanrecord: one flat table, what streamctl.trace's
-- exporter encodes; to a tracer's `put`, when no `on_span` needs the table,
-- the record's slots as arguments) and to its `on_span` as a plain table
-- (for a user's own tracing SDK or log pipeline). A trace's local root (an
-- operation no `around` of the client holds) goes to the tracer's
-- `record_root` or `put_root` where it has them (the exporter keeps it past
-- a full queue):
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
local retry = require "streamctl.engine.retry"

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

-- (`root`: the span is its trace's local root, handed to the tracer's `record_root` when it has one)
local function hand(client, rec, root)
  local tracer, on_span = client._tracer, client._on_span
  if tracer then
    local ok, err = pcall(root and tracer.record_root or tracer.record, tracer, rec)
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
local function hand_root_slots(client, ...) return hand(client, { ... }, true) end

--- The trace an operation belongs to: `given` (a call's or a batch's
-- `trace`, parsed), else the client's, else (inside nginx, in a request's
-- phase) the request's `traceparent`; or nil.
function M.context(client, given)
  if given then return given end
  local scopes = client._span_scopes -- (an `around`'s, for the coroutine it runs in)
  local scoped = scopes and scopes[running() or MAIN]
  if scoped then return scoped, true end
  if client._trace then return client._trace end
  local req = client._in_nginx and nginx.request_trace()
  return req and tracecontext.from(req) or nil
end

-- Whether an operation in trace `trace_id` is recorded, by the client's
-- own `sampler`, asked with the parent's context (`ctx`; nil at a new
-- trace's root). A sampler that raises records nothing (its first error
-- kept in client.on_span_error).
local function ask_sampler(client, sampler, trace_id, ctx)
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
-- trace too, with its `span_id` and `start` (taken when it ends): one
-- table, not two.
function M.start(client, trace)
  local ctx, scoped = trace, nil
  if not ctx then ctx, scoped = M.context(client) end
  if not client._spans then return nil, ctx end
  local trace_id, span_id
  if ctx then trace_id, span_id = ctx.trace_id, new_id(8) else trace_id, span_id = new_id(16, 8) end
  -- (without a sampler of its own, OpenTelemetry's default, parent-based always-on: the parent's choice,
  -- decided here with no call; the sampler that is that default too)
  local sampler, yes = client._sampler
  if not sampler or sampler == DEFAULT_SAMPLER then
    yes = ctx == nil or ctx.parent_id == nil or ctx.sampled
  else
    yes = ask_sampler(client, sampler, trace_id, ctx)
  end
  -- (a new trace's table has no room for a parent and a tracestate: two of a table's slots less)
  if not yes then
    return nil, ctx and { trace_id = trace_id, parent_id = ctx.parent_id, sampled = false, tracestate = ctx.tracestate }
      or { trace_id = trace_id, sampled = false }, span_id
  end
  -- (`root`: no operation of this client's holds it, an `around`'s would: its trace's local root)
  local span = ctx and { trace_id = trace_id, parent_id = ctx.parent_id, sampled = true, tracestate = ctx.tracestate,
                         span_id = span_id, start = client._clock(), root = not scoped }
    or { trace_id = trace_id, sampled = true, span_id = span_id, start = client._clock(), root = true }
  return span, span, span_id
end

--- Runs `fn(...)` as one operation, `action` (a reconcile), over the calls
-- it makes: one span, and every call made on `client` meanwhile, from the
-- same coroutine, in its trace under it (another coroutine's calls, an
-- nginx request's sharing the client, are not). `outcome_of(...)` names the
-- outcome from fn's results: "ok", "failed", "unknown" or "not_sent", and a
-- message. Returns fn's results.
function M.around(client, action, outcome_of, fn, ...)
  local span, ctx, span_id = M.start(client)
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
  M.finish(client, span, action, outcome_of(unpack(results, 2, results.n)))
  return unpack(results, 2, results.n)
end

--- Ends an operation's span (`start`'s; nil: nothing to end), named by
-- its `action`, with its `outcome` ("ok", "failed", "unknown", "not_sent"),
-- `message` and more attributes, and hands it over. A span ends once: its
-- end takes its start, and a second end finds none and is ignored.
function M.finish(client, span, action, outcome, message, attributes)
  local start = span and span.start
  if not start then return end
  span.start = nil
  local ok = outcome == "ok"
  -- (the record's slots in spanrecord's order, then the value of OPERATION's one name; to whom: `attempt`)
  -- (a trace's local root to `put_root` where the tracer has one: a tracer that bounds what it keeps keeps
  -- it, the span a trace's others hang from, ended last)
  local tracer, root = client._tracer, span.root
  local put, to = tracer and not client._on_span and (root and tracer.put_root or tracer.put), tracer
  if not put then put, to = root and hand_root_slots or hand_slots, client end
  local done, err = pcall(put, to, (client._span_templates[action] or make_templates(client, action))[1],
                          span.trace_id, span.span_id, span.parent_id, span.tracestate, start, client._clock(),
                          ok and 1 or 2, not ok and message or nil, nil, attributes, outcome)
  if not done then note_error(client, err) end
end

--- A batch's span, begun (nil when none is handed over): its calls go in
-- the batch's trace and their attempts under its span (`values._trace`,
-- `values._span_parent`: the batch's parsed fields).
function M.batch_start(client, values)
  local span, ctx, span_id = M.start(client, values._trace)
  values._trace, values._span_parent = ctx, span_id
  return span
end

--- Ends a batch's span, of `action`, from its report.
function M.batch_finish(client, span, action, report)
  if not span then return end
  M.finish(client, span, action, (report.failed > 0 and "failed") or (report.unknown > 0 and "unknown") or "ok",
    format("%d of %d streams failed, %d unknown", report.failed, report.total, report.unknown),
    { ["streamctl.batch.total"] = report.total, ["streamctl.batch.succeeded"] = report.succeeded,
      ["streamctl.batch.failed"] = report.failed, ["streamctl.batch.unknown"] = report.unknown,
      ["streamctl.batch.calls"] = report.calls })
end

--- The engine's `observe` for `client`'s attempts' CLIENT spans: made
-- once per engine, and called for each attempt with what the engine saw
-- of it (its result or error, its `seconds`, the response `res`); an
-- attempt in a trace not recorded is passed over. The time it waited for
-- its rate-limit slot is an event, with the room and the cap then, where
-- the action has a cap (without one, `waited` is the engine's own time).
-- The engine calls it itself when the client has no `on_attempt` hook
-- (streamctl.pipeline.decode's observer calls it then): one Lua call an
-- attempt.
function M.observer(client)
  local pacer = client._pacer
  return function(attempt, result, err, seconds, res)
    local ctx = attempt.trace
    if not (ctx and ctx.sampled and attempt.span_id) then return end
    local t = (client._span_templates[attempt.action] or make_templates(client, attempt.action))[2]
    local now = client._clock()
    local start = now - (seconds or 0)
    local code, waited, event = err and tostring(err.code), attempt.waited, nil
    if waited and waited > 0 and pacer.limiter then
      local cap, room = pacer:cap_room(attempt.action)
      if cap then
        event = { name = "streamctl.slot_wait", time = start,
                  attributes = { ["streamctl.waited_s"] = waited, ["streamctl.room"] = room, ["streamctl.cap"] = cap } }
      end
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
               code and retry.is_throttle(err) and code or nil) -- streamctl.throttle_code
    if not done then note_error(client, perr) end
  end
end

return M
