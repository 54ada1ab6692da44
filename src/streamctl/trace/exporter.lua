--- Spans sent to an OpenTelemetry collector by OTLP/HTTP: a bounded
-- queue, filled by a client (its `tracer`), emptied in batches through the
-- project's own transports (libcurl outside nginx, cosockets inside).
--
--   local exporter = require("streamctl.trace.exporter").new {
--     endpoint = "http://127.0.0.1:4318/v1/traces", resource = { ["service.name"] = "nightly" } }
--   local z = streamctl.zego.new { ..., tracer = exporter }
--   ...
--   exporter:shutdown(2)        -- at exit: what is queued, sent within 2 s
--
-- An exporter is a client's `tracer`: its `sampler` decides which
-- operations are recorded, and the client hands it each span as a record
-- (`record`, streamctl.base.spanrecord), the cheapest form. Its `on_span`
-- takes spans as plain tables, for a program that hands them on itself.
-- A call never waits for the collector: `record`, `put` and `on_span` only
-- queue (in O(1); with protobuf, the span encoded first, in C, `record` and
-- `put` being the queue's own C functions); a full queue drops the new
-- span and counts it (a drop of `record` or `put` in the metrics by the
-- next `flush` or `stats`), but for a trace's root (`record_root`,
-- `put_root`), kept until the queue holds twice its bound. What sends:
--
--   outside nginx   `flush(seconds)` and `shutdown(seconds)`, when the
--                   program says (the command: at exit, bounded by 2 s); a
--                   long-running script calls `flush` between its work
--   inside nginx    one timer per worker and exporter (`ngx.timer.every`,
--                   started by the first span, from any phase that may make
--                   a timer): every `interval` it sends what is queued, with
--                   cosockets (never from a phase that forbids them); at the
--                   worker's exit (the timer's premature run) it flushes what
--                   it can within `exit_seconds`
--
-- A batch the collector refuses, or that meets a network error or the
-- time bound, ends that flush: its spans are dropped (`export_failed`),
-- the rest wait for the next (in nginx) or are dropped at shutdown. A
-- collector that is down, slow or answering 5xx never changes a call's
-- result. The counts are in `stats()` and, with `metrics` (an object with
-- `count(name, labels, n)`, streamctl.operator.metrics), in
-- `streamctl_spans_total{result}`: "exported", "queue_full", "export_failed".
-- @module streamctl.trace.exporter

-- luacheck: globals ngx
local otlp = require "streamctl.trace.otlp"
local spanrecord = require "streamctl.base.spanrecord"
local auto = require "streamctl.transport.auto"
local core = require "streamctl.core"
local version = require "streamctl.version"
local validate = require "streamctl.base.validate"
local url = require "streamctl.base.url"
local transport_common = require "streamctl.transport.common"

local type, pairs, ipairs, tostring, error, rawget, setmetatable = type, pairs, ipairs, tostring, error, rawget,
  setmetatable
local min, floor = math.min, math.floor
local format, find = string.format, string.find

local M = {}

--- The defaults: OpenTelemetry's batch span processor's (OTEL_BSP_*) and
-- the OTLP exporter's timeout (OTEL_EXPORTER_OTLP_TIMEOUT).
M.DEFAULTS = { max_queue = 2048, max_batch = 512, interval_ms = 5000, timeout_ms = 10000, exit_seconds = 2,
               protocol = "http/protobuf" }

-- A collector's URL, its path included (OTLP/HTTP's for traces: /v1/traces).
-- Plain http is allowed anywhere, unlike a provider's endpoint: a
-- collector beside the program is the common case (OTLP's default is
-- http://localhost:4318) and spans carry no secret.
local function check_endpoint(v)
  if type(v) ~= "string" then return nil, "must be an http or https URL string" end
  if find(v, "[%z\r\n%s]") then return nil, "must not contain whitespace, CR, LF or NUL" end
  local scheme, authority = url.split(v)
  if scheme ~= "http" and scheme ~= "https" then return nil, "must be an http or https URL" end
  if url.userinfo(authority) then return nil, "must not carry user information (give headers instead)" end
  local host = url.host_port(authority)
  if not host then return nil, "must name a valid host and port" end
  return v
end

local function check_resource(v)
  if type(v) ~= "table" then return nil, "must be a table of attribute names to values" end
  for k, x in pairs(v) do
    local t = type(x)
    if type(k) ~= "string" or (t ~= "string" and t ~= "number" and t ~= "boolean") then
      return nil, "must map names to strings, numbers or booleans (" .. tostring(k) .. " is a " .. t .. ")"
    end
  end
  return v
end

local function check_headers(v)
  if type(v) ~= "table" then return nil, "must be a table of header names to values" end
  local ok, why = transport_common.header_fields(v)
  if not ok then return nil, why end
  return v
end

local function check_protocol(v)
  if v == "http/protobuf" or v == "http/json" then return v end
  return nil, "must be http/protobuf or http/json (OTLP over gRPC is not supported)"
end

M.check_endpoint = check_endpoint

M.OPTIONS = {
  { name = "endpoint", type = "custom", required = true, check = check_endpoint },
  { name = "headers", type = "custom", check = check_headers },
  { name = "protocol", type = "custom", check = check_protocol },
  { name = "resource", type = "custom", check = check_resource },
  { name = "max_queue", type = "integer", min = 1, max = 1000000 },
  { name = "max_batch", type = "integer", min = 1, max = 100000 },
  { name = "interval_ms", type = "integer", min = 1, max = 3600000 },
  { name = "timeout_ms", type = "integer", min = 1, max = 600000 },
  { name = "exit_seconds", type = "number", min = 0, max = 3600 },
  { name = "ca_file", type = "custom", check = transport_common.check_ca_file },
  { name = "sampler", type = "function" },
  { name = "metrics", type = "object", methods = { "count" } },
  { name = "clock", type = "function" },
}

local Exporter = {}
Exporter.__index = Exporter

-- The tracer methods a protobuf queue has of its own (C: core.otlp_queue's `tracer`).
local TRACER_METHODS = { "record", "put", "record_root", "put_root" }

local function in_nginx()
  local n = rawget(_G, "ngx")
  return n ~= nil and n.get_phase ~= nil and n.get_phase() ~= "init"
end

-- The spans waiting. With protobuf, streamctl.core's otlp_queue: each
-- span encoded as it comes, its bytes in one buffer (no Lua string, no
-- table kept), a batch's request made in one copy. With JSON, this ring
-- of plain tables, encoded a batch at a time. Both: `count()`,
-- `record(rec, most)` and `span(span, most)` (true: queued; false: not
-- taken as it is, for the exporter to `push` its bytes; nil: the queue
-- holds `most` spans already, nothing queued), `take(n, into)` (the
-- request's body, a string or, with protobuf, `into` (core.bytes) written,
-- and how many spans it holds; nil, n and why when they could not be
-- encoded), `clear()` (how many were dropped).
local Plain = {}
Plain.__index = Plain

function Plain:count() return self.tail - self.head + 1 end

function Plain:span(span, most)
  if most and self:count() >= most then return nil end
  self.tail = self.tail + 1
  self.spans[self.tail] = span
  return true
end

function Plain:record(rec, most) return self:span(spanrecord.plain(rec), most) end

function Plain:take(n)
  n = min(n, self:count())
  local batch, spans = {}, self.spans
  for i = 1, n do
    batch[i], spans[self.head] = spans[self.head], nil
    self.head = self.head + 1
  end
  if self:count() == 0 then self.head, self.tail = 1, 0 end
  local ok, body = pcall(otlp.encode, batch, self.resource, "http/json")
  if not ok then return nil, n, tostring(body) end
  return body, n
end

function Plain:clear()
  local n = self:count()
  self.spans, self.head, self.tail = {}, 1, 0
  return n
end

--- Makes an exporter; raises on misuse (an option breaking its rule, named).
function M.new(opts)
  local o, err = validate.construct(M.OPTIONS, opts or {}, "streamctl.trace.exporter.new", "new")
  if not o then error(err.message, 2) end
  local resource = { ["telemetry.sdk.name"] = "streamctl", ["telemetry.sdk.language"] = "lua",
                     ["telemetry.sdk.version"] = version._VERSION }
  for k, v in pairs(o.resource or {}) do resource[k] = v end
  if resource["service.name"] == nil then resource["service.name"] = "unknown_service:streamctl" end
  local self = setmetatable({
    endpoint = o.endpoint, headers = o.headers or {}, protocol = o.protocol or M.DEFAULTS.protocol,
    resource = resource, max_queue = o.max_queue or M.DEFAULTS.max_queue,
    max_batch = o.max_batch or M.DEFAULTS.max_batch,
    interval = (o.interval_ms or M.DEFAULTS.interval_ms) / 1000,
    timeout_ms = o.timeout_ms or M.DEFAULTS.timeout_ms,
    exit_seconds = o.exit_seconds or M.DEFAULTS.exit_seconds,
    ca_file = o.ca_file, metrics = o.metrics, sampler = o.sampler, clock = o.clock or core.monotonic,
    counts = { exported = 0, queue_full = 0, export_failed = 0, queue_full_roots = 0 }, stopped = false,
    dropped_seen = 0, roots_seen = 0, -- (of the queue's own drops, and of its roots, those counted: `count_dropped`)
    -- (OpenResty's `ngx` is there from its first phase: without it, no span is ever queued inside nginx)
    nginx = rawget(_G, "ngx") ~= nil,
  }, Exporter)
  if self.protocol == "http/protobuf" then
    local q = core.otlp_queue(otlp.request_parts(resource))
    self.queue, self.content_type = q, "application/x-protobuf"
    -- (the queue's own `record` and `put`: C from the client's call to the queue; a span its encoder
    -- does not take, the Lua encoder's bytes)
    self._record, self._put, self._record_root, self._put_root = q:tracer(self.max_queue,
      function(_, rec) q:push(otlp.record_pb(rec)) end)
    for _, m in ipairs(TRACER_METHODS) do self[m] = self["_" .. m] end
    -- (inside nginx, through `wake` until the worker's timer runs)
    if self.nginx then
      for _, m in ipairs(TRACER_METHODS) do self[m] = Exporter["_" .. m .. "_waking"] end
    end
    -- (outside nginx, each batch's request is written into these bytes, which libcurl sends as they are: no
    -- Lua string of a few hundred kilobytes a batch; a cosocket sends strings only)
    if not self.nginx then self.body = core.bytes() end
  else
    self.queue, self.content_type = setmetatable({ spans = {}, head = 1, tail = 0, resource = resource }, Plain),
      "application/json"
  end
  self.on_span = function(span) return self:add(span) end
  return self
end

-- (`roots`: how many of the n were traces' local roots)
local function count(self, result, n, roots)
  if n <= 0 then return end
  self.counts[result] = self.counts[result] + n
  if roots and roots > 0 and result == "queue_full" then self.counts.queue_full_roots = self.counts.queue_full_roots
    + roots end
  local m = self.metrics
  if m then m:count("spans", { result = result }, n) end
end

--- How many spans wait.
function Exporter:queued() return self.queue:count() end

-- Inside nginx, the worker's timer, started by the first span that comes
-- in a phase that may make one.
local function start_timer(self)
  if not self.timer and self.nginx and in_nginx() then self:_start_timer() end
end

-- The method that queues a span by the queue's `method` ("span",
-- "record"), unless the exporter stopped or the queue holds its most (then
-- it is counted dropped): `max_queue`, or twice that for a trace's local
-- root (`root`: true, or a function of the span that says); its bytes made
-- by `encode` (the Lua encoder) when the queue's own encoder does not take
-- it. (A closure per method: the span goes from the client's call to the
-- queue through one Lua function.)
local function enqueuer(method, encode, root)
  return function(self, span)
    local is_root = root == true or root and root(span) or false
    if self.stopped then return count(self, "queue_full", 1, is_root and 1) end
    start_timer(self)
    local q = self.queue
    local taken = q[method](q, span, is_root and 2 * self.max_queue or self.max_queue)
    if taken == nil then return count(self, "queue_full", 1, is_root and 1) end
    if not taken then q:push(encode(span)) end
  end
end

--- Queues a span given as a plain table (a client's `on_span`): dropped
-- and counted when the queue is full or the exporter stopped. A span with
-- no parent is its trace's root, kept as `record_root` keeps one.
-- @function Exporter:add
Exporter.add = enqueuer("span", otlp.span_pb, function(span) return span.parent_span_id == nil end)

--- Queues a span given as a record (streamctl.base.spanrecord: a client's
-- `tracer` hands its spans so), as `add` does a plain one; the record
-- itself is never kept. With protobuf, the queue's own (C, from the call
-- to the queue; its drops counted by the next `flush` or `stats`), which
-- also has `put`: the record's slots as arguments, no table made.
-- @function Exporter:record
Exporter.record = enqueuer("record", otlp.record_pb)

--- `record` for a trace's local root (the span its others hang from, ended
-- last: a batch's, a call made alone, a reconcile's): kept while the queue
-- holds fewer than twice `max_queue`, past the children that filled it, so
-- that a trace that lost spans keeps its root. With protobuf, the queue's
-- own, and `put_root` beside it, as `record` and `put`.
-- @function Exporter:record_root
Exporter.record_root = enqueuer("record", otlp.record_pb, true)

-- Inside nginx, the tracer methods start the worker's timer first; once
-- it runs, the queue's own take their place.
local function wake(self)
  start_timer(self)
  if self.timer then
    for _, m in ipairs(TRACER_METHODS) do self[m] = self["_" .. m] end
  end
end

for _, m in ipairs(TRACER_METHODS) do
  local own = "_" .. m
  Exporter[own .. "_waking"] = function(self, ...)
    wake(self)
    return self[own](self, ...)
  end
end

-- The spans the queue's own methods dropped since last counted, counted
-- (in `stats` and the metrics), its traces' roots among them.
local function count_dropped(self)
  local q = self.queue
  if not q.dropped then return end
  local dropped, roots = q:dropped()
  if dropped > self.dropped_seen then
    count(self, "queue_full", dropped - self.dropped_seen, roots - self.roots_seen)
    self.dropped_seen, self.roots_seen = dropped, roots
  end
end

-- Takes the next batch off the queue and sends it within `ms`: how many
-- spans it held, and true or nil and why.
function Exporter:_send(ms)
  local body, n, why = self.queue:take(self.max_batch, self.body)
  if not body then return n, nil, why end
  local headers = { ["Content-Type"] = self.content_type, ["User-Agent"] = version.user_agent }
  for k, v in pairs(self.headers) do headers[k] = v end
  -- Outside nginx, one exchange for the exporter's life: its connection kept alive from batch to batch
  -- (a new one per flush cost more CPU than the batch); inside, one per flush (a timer's light threads
  -- are its own; nginx's pool keeps the connection).
  local exchange = self.exchange
  if not exchange then
    local io
    exchange, io = auto.exchange { timeout_ms = self.timeout_ms, connect_timeout_ms = self.timeout_ms,
                                   ca_file = self.ca_file }
    if not exchange then return n, nil, tostring(io and io.message or io) end
    if not self.nginx then self.exchange, self.io = exchange, io end
  end
  local res, rerr = exchange { method = "POST", url = self.endpoint, headers = headers, body = body, timeout_ms = ms }
  -- (a request the transport gave up waiting for, still under way, may read its bytes: the next batch is
  -- written into new ones; those are freed once it ends)
  if self.body and self.body:sending() then self.body = core.bytes() end
  if not res then return n, nil, tostring(rerr and rerr.message or rerr) end
  if res.status < 200 or res.status > 299 then return n, nil, format("the collector answered HTTP %d", res.status) end
  return n, true
end

--- Sends what is queued, batch by batch, within `seconds` (default: the
-- request timeout): stops at the first batch that fails (its spans
-- dropped) or when the time is up. Returns `stats()`.
function Exporter:flush(seconds)
  if self.flushing then return self:stats() end -- (a timer's run while the last one still sends)
  self.flushing = true
  count_dropped(self)
  local deadline = self.clock() + (seconds or self.timeout_ms / 1000)
  local q = self.queue
  while q:count() > 0 do
    local left_ms = floor((deadline - self.clock()) * 1000)
    if left_ms < 1 then break end
    local before = q:count()
    local called, n, ok, why = pcall(self._send, self, min(self.timeout_ms, left_ms))
    -- (what raised took its batch: the spans it took are counted failed)
    if not called then n, ok, why = before - q:count(), nil, tostring(n) end
    if ok then
      count(self, "exported", n)
    else
      count(self, "export_failed", n)
      self.last_error = why
      break
    end
  end
  self.flushing = false
  return self:stats()
end

--- Flushes within `seconds` (default `exit_seconds`), then takes no more
-- spans: what is still queued is dropped (`export_failed`). Returns `stats()`.
function Exporter:shutdown(seconds)
  if not self.stopped then
    self:flush(seconds or self.exit_seconds)
    self.stopped = true
    if self.queue.stop then self.queue:stop() end
    local left = self.queue:clear()
    if self.io then self.io.close() end
    self.exchange, self.io = nil, nil
    if left > 0 then
      count(self, "export_failed", left)
      self.last_error = self.last_error or "the time to send them ran out"
    end
  end
  return self:stats()
end

--- `{ queued, exported, dropped = { queue_full, export_failed, queue_full_roots }, last_error }`:
-- `queue_full_roots`, of the `queue_full`, traces' local roots (none while
-- the queue holds fewer than twice `max_queue`).
function Exporter:stats()
  count_dropped(self)
  local c = self.counts
  return { queued = self:queued(), exported = c.exported,
           dropped = { queue_full = c.queue_full, export_failed = c.export_failed,
                       queue_full_roots = c.queue_full_roots }, last_error = self.last_error }
end

-- Inside nginx: one timer per worker sends the queue every `interval`; its
-- premature run (the worker exiting) flushes within `exit_seconds`.
function Exporter:_start_timer()
  self.timer = true
  local ok, err = ngx.timer.every(self.interval, function(premature)
    if premature then return self:shutdown(self.exit_seconds) end
    if self:queued() > 0 then self:flush() end
  end)
  if not ok then
    self.timer = nil -- (tried again with the next span)
    self.last_error = "no timer: " .. tostring(err)
  end
end

return M
