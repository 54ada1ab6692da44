--- Batch methods: one method call over a list of streams, made into calls
-- of `chunk` items (repeats dropped), run together, and reported item by
-- item.
--
-- The list is a Lua array (checked whole before anything is sent, reported
-- in the order given), or streamed: a function that returns the next name
-- (nil at the end) or a file handle of one name a line (blank lines and
-- lines starting with "#" skipped, blanks around a name trimmed). A
-- streamed list is read as the calls go, each name checked as it is read
-- (one that breaks the field's rule is reported failed, not sent), repeats
-- dropped through a compact set (streamctl.core.fingerprint_set), and
-- reported in the order the calls complete.
--
-- Either way a call's parameters are encoded just before the engine admits
-- it, `on_result(entry)` hears of each stream as its call ends, and with
-- `keep_results = false` the report keeps counts only: memory is bounded
-- by what is in flight, not by the list. See docs/clients.md.
--
-- Before the first call, what the batch's options ask (the guard, the
-- provider's preflight, the audit log's intent: streamctl.pipeline.safety);
-- a refusal sends nothing.
--
-- A client's batch method is `batch.method(rules, name, spec)`; what it
-- needs of the client are the client's own steps: `_fields` (check a
-- method's fields), `_send_blocker` (can it send from here), `_encode` and `_job`
-- (a call's parameters and its job), `_run` (the engine) and `_monotonic`.
-- @module streamctl.pipeline.batch

local core = require "streamctl.core"
local errors = require "streamctl.base.errors"
local guard = require "streamctl.pipeline.guard"
local tracecontext = require "streamctl.base.tracecontext"
local spans = require "streamctl.pipeline.spans"
local safety = require "streamctl.pipeline.safety"
local redact = require "streamctl.base.redact"
local validate = require "streamctl.base.validate"

local ipairs, pairs, pcall, tostring, type, error, setmetatable = ipairs, pairs, pcall, tostring, type, error,
  setmetatable
local min = math.min
local format, match, sub, find, gsub = string.format, string.match, string.sub, string.find, string.gsub
local io_type = io.type

local M = {}

--- The fields every batch method takes besides its own (`method` adds them
-- to its spec's): local options, never sent.
M.OPTIONS = {
  { name = "concurrency", type = "integer", min = 1, max = 256 },
  { name = "on_progress", type = "function" },
  { name = "on_result", type = "function" },
  { name = "on_duplicate", type = "function" },
  { name = "keep_results", type = "boolean" },
  { name = "guard", type = "custom", nullable_false = true, check = guard.batch_field },
  { name = "audit", type = "object", methods = { "intent", "refused" } },
  -- (the trace its calls belong to, as a client's `trace` option: streamctl.pipeline.options)
  { name = "trace", type = "custom",
    check = function(v) return require("streamctl.pipeline.options").trace_check(v) end },
}

-- A UTF-8 byte order mark: a file's first line may start with one (Notepad).
local BOM = "\239\187\191"

-- A call's parameters for `chunk` (the batch's own, and the chunk's items).
local function chunk_params(spec, params, chunk)
  local p = {}
  for k, v in pairs(params) do p[k] = v end
  p[spec.param] = (spec.chunk or 1) == 1 and chunk[1] or chunk
  return p
end

--- A batch's calls: its list without repeats, split into calls of
-- `spec.chunk` items (default 1), each encoded (for a `dry` run, as
-- `prepare` does).
-- @return jobs, items, duplicates; or nil, err
function M.jobs(client, spec, params, values, dry)
  local items, duplicates = safety.distinct(values[spec.list])
  local size = spec.chunk or 1
  local jobs = {}
  for i = 1, #items, size do
    local chunk = {}
    for j = i, min(#items, i + size - 1) do chunk[#chunk + 1] = items[j] end
    local op, out = client:_encode(spec.action, chunk_params(spec, params, chunk), 3, dry)
    if not op then return nil, out end
    local job = client:_job(spec.action, op, out)
    job.items = chunk
    jobs[#jobs + 1] = job
  end
  return jobs, items, duplicates
end

-- Reading a streamed list ---------------------------------------------------------

-- The next raw name from a function or a file handle, and its line number
-- (a file's); nil at the end. A function that returns something other than
-- a string or nil is a misuse: it raises.
local function reader(list, field)
  if type(list) == "function" then
    local n = 0
    return function()
      local v = list()
      n = n + 1
      if v ~= nil and type(v) ~= "string" then
        error(format("%s: the iterator's item %d is a %s, not a string", field, n, type(v)), 0)
      end
      return v, n
    end
  end
  local line = 0
  return function()
    while true do
      local text = list:read("*l")
      if text == nil then return nil end
      line = line + 1
      if line == 1 and sub(text, 1, #BOM) == BOM then text = sub(text, #BOM + 1) end
      text = match(text, "^%s*(.-)%s*$")
      if text ~= "" and not find(text, "^#") then return text, line end
    end
  end
end

-- The schema of a batch's fields without its list, and its list's own
-- field (for one item at a time); made once per method.
local function streamed_schema(spec)
  if not spec.streamed then
    local rest, item = {}, nil
    for _, f in ipairs(spec.fields) do
      if f.name == spec.list then
        item = {}
        for k, v in pairs(f) do item[k] = v end
        item.min_items = nil
      else
        rest[#rest + 1] = f
      end
    end
    spec.streamed = { fields = rest, item = { item }, action = spec.action, check = spec.check }
  end
  return spec.streamed
end

-- What is wrong with one streamed name (a message naming it and where it
-- was read), or nil.
local function item_rule(client, spec, item, where, method_name)
  local s = streamed_schema(spec)
  -- (the rule of every item of the list, one item at a time; the usual case, a good name, is one
  -- call into C, and the field's own message is made only for a bad one)
  if item ~= "" and not validate.text_rule(s.item[1], item) then return nil end
  local ok, why = validate.fields(s.item, { [spec.list] = { item } }, method_name)
  if ok then return nil end
  why = gsub(why, "^field '([^']*)' item 1 ", function(field) return format("field '%s' %s ", field, where) end)
  return errors.invalid(client._rules.provider, spec.action, why)
end

-- The report ------------------------------------------------------------------------

-- The report's entry for one item of a finished call.
local function entry_for(report, job, item)
  local later = job.superseded and job.superseded[item]
  local entry = { stream = item, ok = job.result ~= nil or later ~= nil, attempts = job.attempts }
  if later then
    -- (a later call decided on the stream, and it left this call unsent: streamctl.pipeline.sign)
    entry.result, entry.superseded_by = { Superseded = true, SupersededBy = later }, later
    report.succeeded, report.superseded = report.succeeded + 1, report.superseded + 1
  elseif entry.ok then
    -- (a call recovered by a look-up: its own RequestId, or none, and the look-up's apart)
    entry.result, entry.request_id = job.result, job.result.RequestId
    entry.lookup_request_id = job.result.LookupRequestId
    report.succeeded = report.succeeded + 1
  elseif job.err.outcome_unknown then
    -- Not a failure: an attempt may have applied it (see streamctl.engine.runner).
    entry.error, entry.outcome_unknown = job.err, true
    report.unknown = report.unknown + 1
  else
    entry.error = job.err
    report.failed = report.failed + 1
  end
  return entry
end

-- Hands finished entries to the caller: kept in the report (unless
-- keep_results is false), then on_result and on_progress. An error either
-- raises is kept (report.progress_error), never a lost stream.
-- With an audit run (`safe.run`), each entry goes to it first; one it
-- cannot write stops the sending (`halt`): what the batch would change
-- next would go unrecorded.
local function reporter(report, values, total, safe)
  local keep, on_result, on_progress = values.keep_results ~= false, values.on_result, values.on_progress
  local results, done = report.results, 0
  local audit_run = safe and safe.run
  local function tell(f, ...)
    if f and not report.progress_error then
      local ok, perr = pcall(f, ...)
      if not ok then report.progress_error = tostring(perr) end
    end
  end
  local deliver
  deliver = setmetatable({ report = report }, { __call = function(_, entry)
    done = done + 1
    if audit_run then
      local ok, why = audit_run:result(entry, safe.key_of(entry.stream))
      if not ok and not report.audit_error then
        report.audit_error = tostring(why)
        deliver.halt = { code = "AuditLogFailed", sent = false, message = "not sent: the audit log cannot be "
          .. "written (" .. report.audit_error .. ")" }
      end
    end
    if keep then results[#results + 1] = entry end
    tell(on_result, entry)
    tell(on_progress, done, total(), entry)
  end })
  return deliver
end

local function new_report(spec, total, duplicates)
  return { action = spec.action, total = total, succeeded = 0, failed = 0, unknown = 0, superseded = 0, calls = 0,
           planned = 0, duplicates = duplicates, results = {} }
end

-- The source of jobs -------------------------------------------------------------------

-- A function that makes the next job when the engine has room for it
-- (encoded then), from `next_chunk() -> items | nil`; a chunk that cannot
-- be encoded or breaks `check` (the method's own, for a streamed list whose
-- items were not checked together) is reported failed, not sent.
local function job_source(client, spec, params, values, next_chunk, check, deliver)
  local report = deliver.report
  return function()
    while true do
      local chunk = next_chunk()
      if not chunk then return nil end
      local p = chunk_params(spec, params, chunk)
      local why = check and check(p, values, client)
      local op, out
      if why then
        out = errors.invalid(client._rules.provider, spec.action, why)
      else
        op, out = client:_encode(spec.action, p, 3)
      end
      if op then
        local job = client:_job(spec.action, op, out)
        job.items, job.trace, job.span_parent = chunk, values._trace, values._span_parent
        if deliver.streamed then report.planned = report.planned + 1 end
        return job
      end
      out.sent = false
      for _, item in ipairs(chunk) do
        report.failed = report.failed + 1
        deliver { stream = item, ok = false, attempts = 0, error = out }
      end
    end
  end
end

-- Runs `jobs` and those of `source` (nil: none) and reports each stream of
-- each as its call ends.
-- Returns the report and, when the run stopped sending before the end (a
-- cancel, its deadline), the failure its unsent calls end with.
-- The calls in a row that must fail unsent, for a connection that could not
-- be made, before a batch stops sending: its endpoint is down (a stopped
-- emulator, a wrong --endpoint) and every call after them would grind
-- through its attempts to the same end. Any call that reached it resets the count.
M.UNREACHABLE_CALLS = 3
local UNREACHABLE = { network = true, timeout = true, tls = true }

local function run(client, values, report, jobs, source, deliver, rest)
  local started = client._monotonic()
  local sent, throttled = 0, 0
  local pacer = client._pacer
  local lowest = pacer:watch()
  local rules = client._rules
  -- (a forbid's end, when the provider ends it by itself: the provider's `ends`;
  -- an answer every call after it would meet too, its operation's `halt`, stops the sending)
  local ends, halts = rules.ends, (rules.operations[report.action] or {}).halt
  local unreachable = 0
  local opts
  opts = {
    concurrency = values.concurrency,
    source = source, rest = rest,
    on_progress = function(_, _, job)
      sent, throttled = sent + job.sent, throttled + job.throttles
      local err = job.err
      local halt = halts and err and halts[err.code]
      if halt and not opts.halt then opts.halt = { code = halt.code, message = halt.message, sent = false } end
      unreachable = (err and err.sent == false and UNREACHABLE[err.kind]) and unreachable + 1 or 0
      if unreachable >= M.UNREACHABLE_CALLS and not opts.halt then
        opts.halt = { code = "Unreachable", sent = false, message = format("not sent: the %d calls before it could "
          .. "not reach %s (%s)", unreachable, client.endpoint and redact.url(client.endpoint.url) or "the endpoint",
          tostring(err.message)) }
      end
      -- (the call's end, once for its items, and only where the provider gives one: a succeeded forbid)
      local ends_at, ends_by
      if ends and job.result ~= nil then ends_at, ends_by = ends(job.action, job.params, client:now()) end
      for _, item in ipairs(job.items) do
        local entry = entry_for(report, job, item)
        -- (a superseded stream was not forbidden by this call: it has no end of its own)
        if entry.ok and not entry.superseded_by then entry.ends, entry.ends_by = ends_at, ends_by end
        deliver(entry)
      end
      if deliver.halt and not opts.halt then opts.halt = deliver.halt end
    end,
  }
  local ok, err = pcall(client._run, client, jobs, opts)
  pacer:unwatch(lowest)
  if not ok then error(err, 0) end
  report.calls, report.throttled = sent, throttled
  -- (the lowest room it paced at, in requests per second, when a throttle made it less than the cap)
  local low, cap = lowest[report.action], pacer:cap(report.action)
  report.lowest_room = low and cap and low < 1 and low * cap or nil
  report.elapsed = client._monotonic() - started
  return report, opts.stopped
end

-- A list given whole: checked whole, repeats dropped, reported in the order given.
local function run_list(client, spec, params, values, safe)
  local items, duplicates = safe.items, safe.duplicates -- (made distinct already for its guard or audit)
  if not items then items, duplicates = safety.distinct(values[spec.list]) end
  local report = new_report(spec, #items, duplicates)
  report.planned = math.ceil(#items / (spec.chunk or 1))
  local keep = values.keep_results ~= false
  local position
  if keep then
    position = {}
    for i, item in ipairs(items) do position[item] = i end
  end
  local deliver = reporter(report, values, function() return #items end, safe)
  local size, at = spec.chunk or 1, 1
  local function next_chunk()
    if at > #items then return nil end
    local chunk = {}
    for j = at, min(#items, at + size - 1) do chunk[#chunk + 1] = items[j] end
    at = at + size
    return chunk
  end
  -- The list was given whole, so each of its calls is submitted now: a
  -- batch started inside this one (a later submission) must wait for every
  -- stream of it, those of the calls not yet made too (`rest`).
  local function rest()
    local out, streams = {}, client._rules.streams
    for i = at, #items, size do
      local chunk = {}
      for j = i, min(#items, i + size - 1) do chunk[#chunk + 1] = items[j] end
      for _, key in ipairs(streams(spec.action, chunk_params(spec, params, chunk)) or {}) do out[#out + 1] = key end
    end
    return out
  end
  local _, stopped = run(client, values, report, {}, job_source(client, spec, params, values, next_chunk, nil,
    deliver), deliver, rest)
  -- Stopped before its calls were all made (interrupted, or past its deadline): the rest of the
  -- list is reported, not sent.
  while at <= #items do
    local stop = stopped or { code = "Interrupted", message = "interrupted before it was sent" }
    local err = errors.transport(client._rules.provider, spec.action,
      { code = stop.code, message = stop.message, sent = false })
    for _, item in ipairs(next_chunk()) do
      report.failed = report.failed + 1
      deliver { stream = item, ok = false, attempts = 0, error = err }
    end
  end
  if keep then
    -- each item is in the list once: its entry goes to its place, no sort
    local ordered = {}
    for _, e in ipairs(report.results) do ordered[position[e.stream]] = e end
    report.results = ordered
  end
  return report
end

-- A streamed list: read as the calls go, each name checked as it is read.
local function run_streamed(client, spec, params, values, list, method_name, safe)
  local report = new_report(spec, 0, 0)
  local read, seen, ended = reader(list, spec.list), core.fingerprint_set(), false
  local deliver = reporter(report, values, function() return ended and report.total or nil end, safe)
  deliver.streamed = true -- (the calls it needs are known as the list is read)
  local size = spec.chunk or 1
  local function next_chunk()
    local chunk = {}
    while #chunk < size do
      local item, where = read()
      if item == nil then ended = true break end
      where = type(list) == "function" and format("item %d", where) or format("line %d", where)
      local bad = item_rule(client, spec, item, where, method_name)
      if bad then
        report.total, report.failed = report.total + 1, report.failed + 1
        bad.sent = false
        deliver { stream = item, ok = false, attempts = 0, error = bad }
      elseif seen:add(item) then
        report.total = report.total + 1
        chunk[#chunk + 1] = item
      else
        -- (a repeat: dropped, counted and named; see fingerprint_set's collision rule)
        report.duplicates = report.duplicates + 1
        if values.on_duplicate and not report.progress_error then
          local ok, perr = pcall(values.on_duplicate, item, where)
          if not ok then report.progress_error = tostring(perr) end
        end
      end
    end
    if #chunk == 0 then return nil end
    return chunk
  end
  run(client, values, report, {}, job_source(client, spec, params, values, next_chunk, spec.check, deliver),
    deliver)
  report.streamed, report.input_left = true, not ended
  report.dedupe_bytes = seen:bytes()
  return report
end

-- A batch's fields checked (its list, or for a list read as it goes the
-- rest, and the cross-field rule either way): params, values and, for a
-- list read as it goes, the list; or nil, err. Nothing is sent.
local function checked(client, spec, method_name, fields)
  local list = type(fields) == "table" and fields[spec.list] or nil
  if type(list) == "function" or io_type(list) == "file" then
    local rest = {}
    for k, v in pairs(fields) do if k ~= spec.list then rest[k] = v end end
    local params, values = client:_fields(method_name, streamed_schema(spec), rest)
    if not params then return nil, values end
    return params, values, list
  end
  return client:_fields(method_name, spec, fields)
end
M.checked = checked

--- What `client`'s method `name` would send for `fields` (for its
-- `dry_run` and `check`, named `fname` when misused): its jobs (`{ action,
-- params }` a call), checked and encoded as the method does, nothing
-- committed (no ZEGO Sequence taken). With `streamed`, a batch's list may
-- be one read as it goes: no jobs then, its other fields checked. Or nil, err.
function M.planned(client, name, fields, fname, streamed)
  local rules = client._rules
  local spec = type(name) == "string" and (rules.methods[name] or (rules.batches or {})[name])
  if not spec then
    error("bad argument #1 to '" .. fname .. "' (not a method of streamctl." .. rules.provider .. ": "
      .. tostring(name) .. ")", 3)
  end
  local method_name = rules.provider .. "." .. name
  if not spec.list then
    local params, values = client:_fields(method_name, spec, fields)
    if not params then return nil, values end
    local op, out = client:_encode(spec.action, params, 3, true)
    if not op then return nil, out end
    return { { action = spec.action, params = out } }
  end
  local params, values, list
  if streamed then
    params, values, list = checked(client, spec, method_name, fields)
  else
    params, values = client:_fields(method_name, spec, fields)
  end
  if not params then return nil, values end
  if list then return {} end
  return M.jobs(client, spec, params, values, true)
end

-- The spec's fields with the batch options after them (a copy: providers
-- may share one list of fields between batches).
local function with_options(fields)
  local out = {}
  for _, f in ipairs(fields) do out[#out + 1] = f end
  for _, f in ipairs(M.OPTIONS) do out[#out + 1] = f end
  return out
end

--- A batch method: checks the fields once, asks what its options ask
-- (guard, the provider's preflight, the audit log's intent), splits the
-- list into calls, runs them (calls on one stream in submission order, so
-- ZEGO Sequences, taken at each call's first send, follow it), and reports
-- every item. `spec.preflight`, where the provider has one: `{ field,
-- check(client, values) -> found | nil, err, after }`, run when `field` is
-- set (`after(found, report)`: what it found as the run left it).
function M.method(rules, name, spec)
  local method_name = rules.provider .. "." .. name
  spec.fields = with_options(spec.fields)
  return function(self, fields)
    local params, values, list = checked(self, spec, method_name, fields)
    if not params then return nil, values end
    if values.trace ~= nil then values._trace = tracecontext.from(values.trace) end
    local here = self:_send_blocker(spec.action)
    if here then return nil, here end
    -- (its trace, known before the audit's intent is written; with spans handed over, one over its calls)
    local span = spans.batch_start(self, values)
    local safe, refusal = safety.before(self, spec, values, list, function(item)
      local keys = rules.streams(spec.action, chunk_params(spec, params, { item }))
      return keys and keys[1] or item
    end, method_name)
    if not safe then
      spans.finish(self, span, spec.action, "not_sent", tostring(refusal.message))
      return nil, refusal
    end
    -- (both return a report, never nil)
    local report = list and run_streamed(self, spec, params, values, list, method_name, safe)
      or run_list(self, spec, params, values, safe)
    safety.after(safe, report)
    spans.batch_finish(self, span, spec.action, report)
    return report
  end
end

return M
