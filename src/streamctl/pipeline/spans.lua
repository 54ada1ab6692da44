--- Spans of a client's work, handed as plain tables to its `on_span(span)`
-- (for a user's own tracing SDK or log pipeline, or streamctl.trace's
-- OTLP exporter): one span per operation (a call, or a batch over all its
-- calls) and, under it, one CLIENT span per HTTP attempt, each named in
-- the attempt's `traceparent` (streamctl.pipeline.sign).
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
-- the room and the cap then). A hook that raises changes nothing of the
-- call (its first error is kept in client.on_span_error).
-- @module streamctl.pipeline.spans

local tracecontext = require "streamctl.base.tracecontext"
local nginx = require "streamctl.base.nginx"
local url = require "streamctl.base.url"

local pcall, pairs, tostring, type, error, setmetatable = pcall, pairs, tostring, type, error, setmetatable
local running = coroutine.running
local pack = table.pack or function(...) return { n = select("#", ...), ... } end
local unpack = table.unpack or unpack -- luacheck: ignore (LuaJIT's)

-- (the main coroutine's key: Lua 5.1's coroutine.running gives nil there)
local MAIN = {}
local format = string.format

local M = {}

-- The service a provider's spans name, and its rpc.system.
local SERVICE = { aliyun = { "Live", "alibaba-cloud-openapi" }, zego = { "ZEGO", "zego-server-api" },
                  sts = { "STS", "alibaba-cloud-openapi" } }

local function service(client)
  local p = client._rules.provider
  return SERVICE[p] or { p, p }
end

-- A span's name, "Live.ForbidLiveStream": made once per client and action.
local function span_name(client, s, action)
  local names = client._span_names
  if not names then
    names = {}
    client._span_names = names
  end
  local name = names[action]
  if not name then
    name = s[1] .. "." .. action
    names[action] = name
  end
  return name
end

-- The server's host and port (the scheme's when the endpoint names none):
-- read from the endpoint once per client, not at every attempt.
local function address(client)
  local a = client._span_server
  if not a then
    local e = client.endpoint
    local host, port = url.host_port(e and e.host or "")
    a = { host, host and (port or (e.scheme == "https" and 443 or 80)) }
    client._span_server = a
  end
  return a[1], a[2]
end

local function hand(client, span)
  local ok, err = pcall(client._on_span, span)
  if not ok and client.on_span_error == nil then client.on_span_error = tostring(err) end
end

--- The trace an operation belongs to: `given` (a call's or a batch's
-- `trace`, parsed), else the client's, else (inside nginx, in a request's
-- phase) the request's `traceparent`; or nil.
function M.context(client, given)
  if given then return given end
  local scopes = client._span_scopes -- (an `around`'s, for the coroutine it runs in)
  local scoped = scopes and scopes[running() or MAIN]
  if scoped or client._trace then return scoped or client._trace end
  local req = nginx.request_trace()
  return req and tracecontext.from(req) or nil
end

-- Whether an operation in `ctx` is recorded: the client's `sampler`, asked
-- with the parent's context (nil at a new trace's root), else the parent's
-- choice (OpenTelemetry's default, parent-based always-on). A sampler that
-- raises records nothing (its first error kept in client.on_span_error).
local function sampled(client, ctx)
  local sampler = client._sampler
  if not sampler then return ctx.parent_id == nil or ctx.sampled end
  local ok, yes = pcall(sampler, ctx.trace_id, ctx.parent_id and ctx or nil)
  if not ok and client.on_span_error == nil then client.on_span_error = tostring(yes) end
  return ok and yes == true
end

--- An operation's span, begun (nil when the client has no `on_span`), and
-- the trace its attempts go in (nil when there is none): `trace` (a
-- tracecontext) else `context`'s, a new trace when spans are kept. An
-- operation the sampler leaves out still has its span's id (its attempts'
-- parent, their `traceparent` not sampled) but is never handed over.
function M.start(client, action, trace)
  local ctx = M.context(client, trace)
  if not client._on_span then return nil, ctx end
  ctx = ctx or tracecontext.from(nil)
  local yes = sampled(client, ctx)
  local child = { trace_id = ctx.trace_id, parent_id = ctx.parent_id, sampled = yes, tracestate = ctx.tracestate }
  if not yes then -- (left out: its id alone, its attempts' parent; nothing else made)
    local span = { trace_id = ctx.trace_id, span_id = tracecontext.new_span_id(), recording = false, ctx = child }
    return span, child
  end
  local s = service(client)
  local span = { trace_id = ctx.trace_id, span_id = tracecontext.new_span_id(), parent_span_id = ctx.parent_id,
                 name = span_name(client, s, action), kind = "internal", start_time = client._clock(),
                 attributes = { ["rpc.system"] = s[2], ["rpc.service"] = s[1], ["rpc.method"] = action },
                 events = {}, trace_state = ctx.tracestate, recording = true, ctx = child }
  return span, span.ctx
end

--- Runs `fn(...)` as one operation, `action` (a reconcile), over the calls
-- it makes: one span, and every call made on `client` meanwhile, from the
-- same coroutine, in its trace under it (another coroutine's calls, an
-- nginx request's sharing the client, are not). `outcome_of(...)` names the
-- outcome from fn's results: "ok", "failed", "unknown" or "not_sent", and a
-- message. Returns fn's results.
function M.around(client, action, outcome_of, fn, ...)
  local span = M.start(client, action)
  if not span then return fn(...) end
  local scopes = client._span_scopes
  if not scopes then
    scopes = setmetatable({}, { __mode = "k" })
    client._span_scopes = scopes
  end
  local key = running() or MAIN
  local before = scopes[key]
  scopes[key] = { trace_id = span.trace_id, parent_id = span.span_id, sampled = span.recording,
                  tracestate = span.ctx.tracestate }
  local results = pack(pcall(fn, ...))
  scopes[key] = before
  if not results[1] then error(results[2], 0) end
  M.finish(client, span, outcome_of(unpack(results, 2, results.n)))
  return unpack(results, 2, results.n)
end

--- Ends an operation's span with its `outcome` ("ok", "failed", "unknown",
-- "not_sent"), `message` and more attributes, and hands it over.
function M.finish(client, span, outcome, message, attributes)
  if not (span and span.recording) then return end
  span.end_time = client._clock()
  span.attributes["streamctl.outcome"] = outcome
  for k, v in pairs(attributes or {}) do span.attributes[k] = v end
  span.status = outcome == "ok" and { code = "ok" } or { code = "error", message = message }
  span.ctx, span.recording = nil, nil
  hand(client, span)
end

--- A batch's span, begun (nil without `on_span`): its calls go in the
-- batch's trace and their attempts under its span (`values._trace`,
-- `values._span_parent`: the batch's parsed fields).
function M.batch_start(client, action, values)
  local span, ctx = M.start(client, action, values._trace)
  values._trace, values._span_parent = ctx, span and span.span_id
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
-- and the cap then).
function M.attempt(client, attempt, result, err, seconds, res, throttled, waited, room, cap)
  local ctx = attempt.trace
  if not (client._on_span and ctx and ctx.sampled and attempt.span_id) then return end
  local s = service(client)
  local now = client._clock()
  local host, port = address(client)
  local code = err and tostring(err.code)
  -- (every key in one constructor, those without a value nil: the table is made its size at once)
  local a = { ["rpc.system"] = s[2], ["rpc.service"] = s[1], ["rpc.method"] = attempt.action,
              ["server.address"] = host, ["server.port"] = port,
              ["http.request.method"] = attempt.req and attempt.req.method,
              ["http.response.status_code"] = res and res.status,
              ["http.request.resend_count"] = attempt.n > 1 and attempt.n - 1 or nil,
              ["error.type"] = code,
              ["streamctl.request_id"] = err and err.request_id
                or (type(result) == "table" and result.RequestId or nil),
              ["streamctl.throttle_code"] = throttled and code or nil,
              ["streamctl.retry_after_ms"] = err and err.retry_after_ms }
  local events = {}
  if waited and waited > 0 then
    events[1] = { name = "streamctl.slot_wait", time = now - (seconds or 0),
                  attributes = { ["streamctl.waited_s"] = waited, ["streamctl.room"] = room,
                                 ["streamctl.cap"] = cap } }
  end
  hand(client, { trace_id = ctx.trace_id, span_id = attempt.span_id,
                 parent_span_id = (attempt.job and attempt.job.span_parent) or ctx.parent_id,
                 name = span_name(client, s, attempt.action), kind = "client", start_time = now - (seconds or 0),
                 trace_state = ctx.tracestate,
                 end_time = now, attributes = a, events = events,
                 status = err and { code = "error", message = tostring(err.message) } or { code = "ok" } })
end

return M
