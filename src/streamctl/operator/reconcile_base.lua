--- What both reconcilers share (streamctl.operator.reconcile, which users
-- require, says what they do): their options, the desired list read and
-- checked item by item, and the report (each stream's entry, the calls,
-- the intent written before anything is sent).
-- @module streamctl.operator.reconcile_base

local audit = require "streamctl.operator.audit"
local errors = require "streamctl.base.errors"
local json = require "streamctl.base.json"
local validate = require "streamctl.base.validate"
local spans = require "streamctl.pipeline.spans"

local type, ipairs, pairs, tostring, pcall, error = type, ipairs, pairs, tostring, pcall, error
local format, find, match, gmatch, concat = string.format, string.find, string.match, string.gmatch, table.concat
local floor = math.floor

local M = {}

--- Pages of the block list read per domain at most (by default), and their size.
M.MAX_PAGES = 100
M.PAGE_SIZE = 3000

--- How long a ZEGO CDN forbid lasts when no resume time is given (its page: a day).
M.CDN_BAN = 24 * 3600
-- The state forgets a CDN forbid this much before the provider lifts it.
local CDN_MARGIN = 60

local COMMON = {
  { name = "remove_extra", type = "boolean" },
  { name = "dry_run", type = "boolean" },
  { name = "on_progress", type = "function" },
  { name = "max_forbid", type = "integer", min = 0 },
  { name = "max_resume", type = "integer", min = 0 },
  { name = "confirm", type = "boolean" },
  { name = "allow_empty", type = "boolean" },
  { name = "concurrency", type = "integer", min = 1, max = 256 },
  { name = "before_send", type = "function" },
  { name = "desired_now", type = "function" },
}
local function schema(more)
  local out = {}
  for _, f in ipairs(COMMON) do out[#out + 1] = f end
  for _, f in ipairs(more) do out[#out + 1] = f end
  return out
end

local ALIYUN_OPTIONS = schema {
  { name = "resume_time", type = "time" },
  { name = "domains", type = "strings", shape = "domain" }, -- (DomainName's rule, as the block list's look-up takes it)
  { name = "max_pages", type = "integer", min = 1 },
  { name = "page_size", type = "integer", min = 1, max = 3000 },
  -- (the block list's places: read before the forbids, unless check_places is false; streamctl.aliyun.places)
  { name = "places_limit", type = "integer", min = 0 },
  { name = "check_places", type = "boolean" },
}
local ZEGO_OPTIONS = schema {
  { name = "state", type = "object", methods = { "get", "set" }, required = true },
  { name = "state_key", type = "string" },
  { name = "cdn_resume_time", type = "time" },
}

-- The rule every desired field obeys: the provider's own field, as its
-- client checks it (streamctl.aliyun's forbid_live_stream, streamctl.zego's
-- forbid_rtc_stream: type, length, characters and shape), taken from the
-- method's schema so that a desired item is never looser than a call.
local FIELDS = {}
local function field_rules()
  if FIELDS.aliyun then return FIELDS end
  local classes = { aliyun = require "streamctl.aliyun", zego = require "streamctl.zego" }
  for provider, method in pairs { aliyun = "forbid_live_stream", zego = "forbid_rtc_stream" } do
    FIELDS[provider] = {}
    for _, m in ipairs(classes[provider].methods()) do
      if m.name == method then
        for _, f in ipairs(m.fields) do FIELDS[provider][f.name] = f end
      end
    end
  end
  return FIELDS
end

local function invalid(provider, message)
  local e = errors.invalid(provider, nil, message)
  e.sent = false
  return e
end

local ALIYUN_KEYS = { "domain_name", "app_name", "stream_name" }
local ZEGO_KEYS = { "stream_id", "kind" }
local KINDS = { rtc = true, cdn = true }

-- What is wrong with an item (a message fragment naming the key), or nil.
local function item_rule(provider, item)
  if type(item) ~= "table" then
    return provider == "aliyun" and "must be a table { domain_name, app_name, stream_name }"
      or "must be a table { stream_id, kind }"
  end
  local keys = provider == "aliyun" and ALIYUN_KEYS or ZEGO_KEYS
  local known = {}
  for _, k in ipairs(keys) do known[k] = true end
  for k in pairs(item) do
    if not known[k] then return format("has '%s', which is not one of %s", tostring(k), concat(keys, ", ")) end
  end
  local rules = field_rules()[provider]
  if provider == "aliyun" then
    for _, k in ipairs(ALIYUN_KEYS) do
      if item[k] == nil then return k .. " is required" end
      if k == "app_name" and item[k] == "*" then
        return "app_name must not be '*' (ForbidLiveStream takes no wildcard)"
      end
      local _, why = validate.value(rules[k], item[k])
      if why then return k .. " " .. why .. validate.comment_hint(item[k]) end
    end
    return nil
  end
  if item.stream_id == nil then return "stream_id is required" end
  local _, why = validate.value(rules.stream_id, item.stream_id)
  if why then return "stream_id " .. why .. validate.comment_hint(item.stream_id) end
  if item.kind ~= nil and not KINDS[item.kind] then return "kind must be 'rtc' or 'cdn'" end
  return nil
end

-- The key of an item: "domain/app/stream", or "rtc:ID" / "cdn:ID".
local function key_of(provider, item)
  if provider == "aliyun" then return item.domain_name .. "/" .. item.app_name .. "/" .. item.stream_name end
  return (item.kind or "rtc") .. ":" .. item.stream_id
end

-- The desired items without repeats: keys in order, key -> item; or nil, err.
-- A list is read whole: a key of `desired` other than a position 1..n (a
-- hole, a name) is refused, never skipped (ipairs would stop at a hole, and
-- what follows it would be an extra).
local function wanted(provider, desired)
  local n = 0
  for _ in pairs(desired) do n = n + 1 end
  for k in pairs(desired) do
    if type(k) ~= "number" or k < 1 or k > n or k ~= floor(k) then
      return nil, invalid(provider, format("desired must be a list of %d items: it has the key %s, which is not "
        .. "one of the positions 1..%d (a hole, or a named key)", n, type(k) == "string" and ("'" .. k .. "'")
        or tostring(k), n))
    end
  end
  local keys, by_key = {}, {}
  for i, item in ipairs(desired) do
    local why = item_rule(provider, item)
    if why then return nil, invalid(provider, format("desired[%d] %s", i, why)) end
    local key = key_of(provider, item)
    if not by_key[key] then keys[#keys + 1] = key; by_key[key] = item end
  end
  return keys, by_key
end

--- Reads a desired state from text: one stream a line (blank lines and lines
-- starting with # skipped), or a JSON array of objects. Aliyun lines are
-- `domain/app/stream` (split at the first two "/"); ZEGO lines are a stream
-- ID (RTC), or `rtc:ID` / `cdn:ID`.
-- @tparam string provider "aliyun" or "zego"
-- @tparam string text the list
-- @tparam[opt] string name what to call it in messages (default "the list")
-- @return the items (tables as `aliyun`/`zego` take them); or nil and why (naming the line or item)
local function parse(provider, text, name)
  if provider ~= "aliyun" and provider ~= "zego" then
    error("bad argument #1 to 'parse' (provider must be 'aliyun' or 'zego')", 2)
  end
  if type(text) ~= "string" then error("bad argument #2 to 'parse' (text must be a string)", 2) end
  name = name or "the list"
  local items = {}
  if find(text, "^%s*%[") then
    local list, err = json.decode(text)
    if type(list) ~= "table" then return nil, format("%s: not a JSON array (%s)", name, tostring(err)) end
    -- (what decoding cannot show: a key given twice, of which lua-cjson keeps the last, so the stream the
    -- first named would be an extra; a NUL, after which nothing is read)
    local flaw = json.strict_flaw(text)
    if flaw then return nil, format("%s: %s", name, flaw) end
    for i, item in ipairs(list) do
      local why = item_rule(provider, item)
      if why then return nil, format("%s: item %d %s", name, i, why) end
      items[i] = item
    end
    return items
  end
  local n = 0
  for line in gmatch(text, "([^\n]*)\n?") do
    n = n + 1
    line = match(line, "^%s*(.-)%s*$")
    if line ~= "" and not find(line, "^#") then
      local item
      if provider == "aliyun" then
        local d, a, s = match(line, "^([^/]*)/([^/]*)/(.*)$")
        if not d or d == "" or a == "" or s == "" then
          return nil, format("%s:%d: must be domain/app/stream (got '%s')", name, n, line)
        end
        item = { domain_name = d, app_name = a, stream_name = s }
      else
        local kind, id = match(line, "^(%a%a%a):(.*)$")
        if kind and KINDS[kind] then item = { stream_id = id, kind = kind } else item = { stream_id = line } end
      end
      local why = item_rule(provider, item)
      if why then return nil, format("%s:%d: %s", name, n, why) end
      items[#items + 1] = item
    end
  end
  return items
end

local function new_report(provider, o, ndesired)
  return { provider = provider, dry_run = o.dry_run == true, desired = ndesired, blocked = 0,
           found = { missing = {}, extra = {}, changed = {} },
           fixed = 0, failed = {}, unknown = {}, results = {}, calls = 0 }
end

-- One stream's entry: { stream, action, ok, attempts, request_id, lookup_request_id, error,
-- outcome_unknown } (the look-up's RequestId apart from the call's: streamctl.engine.runner).
local function entry_of(key, action, e)
  local entry = { stream = key, action = action, ok = e.ok, attempts = e.attempts or 0, request_id = e.request_id,
                  lookup_request_id = e.lookup_request_id or e.error and e.error.lookup_request_id or nil,
                  error = e.error, outcome_unknown = e.outcome_unknown }
  -- (a forbid's end, added only where there is one: a constructor that names them sizes every
  -- entry for them, 10% more memory a stream at 20,000 streams, spec/44-reconcile-scale)
  if e.ends_by then entry.ends, entry.ends_by = e.ends, e.ends_by end
  return entry
end

-- Adds a finished entry to the report, and tells on_progress.
local function add(report, o, entry, total)
  local r = report.results
  r[#r + 1] = entry
  if entry.ok then
    report.fixed = report.fixed + 1
  elseif entry.outcome_unknown then
    report.unknown[#report.unknown + 1] = { stream = entry.stream, action = entry.action, error = entry.error }
  else
    report.failed[#report.failed + 1] = { stream = entry.stream, action = entry.action, error = entry.error }
  end
  if o.on_progress and not report.progress_error then
    local ok, perr = pcall(o.on_progress, #r, total, entry)
    if not ok then report.progress_error = tostring(perr) end
  end
end

-- Runs a batch method over `names` (each with its report key) and adds
-- each stream as it finishes (the batch keeps none of its own results).
local function batch(client, method, fields, keys, action, report, o, total)
  local by_name = {}
  for i, name in ipairs(fields.stream_names or fields.stream_ids) do by_name[name] = keys[i] end
  fields.keep_results = false
  fields.on_result = function(e) add(report, o, entry_of(by_name[e.stream], action, e), total) end
  local r, err = client[method](client, fields)
  if not r then
    for _, key in ipairs(keys) do add(report, o, entry_of(key, action, { ok = false, error = err }), total) end
    return
  end
  report.calls = report.calls + r.calls
  if r.progress_error and not report.progress_error then report.progress_error = r.progress_error end
end

-- One call for one stream.
local function single(client, method, fields, key, action, report, o, total)
  local res, err = client[method](client, fields)
  report.calls = report.calls + 1
  -- (a forbid's end, from what it sent: both providers call its time ResumeTime)
  local ends, ends_by
  if res and client.forbid_ends then
    ends, ends_by = client.forbid_ends(action, { ResumeTime = fields.resume_time }, client:now())
  end
  add(report, o, entry_of(key, action, { ok = res ~= nil, attempts = 1, request_id = res and res.RequestId
    or err and err.request_id, lookup_request_id = res and res.LookupRequestId, error = err,
    outcome_unknown = err and err.outcome_unknown, ends = ends, ends_by = ends_by }), total)
end

-- Keeps the keys of `list` (in place, in order) that `keep` says; adds the others to `dropped`.
local function keep_only(list, keep, dropped)
  local j = 0
  for i = 1, #list do
    local k = list[i]
    if keep(k) then j = j + 1 list[j] = k else dropped[#dropped + 1] = k end
  end
  for i = #list, j + 1, -1 do list[i] = nil end
end

-- The desired list read again (`desired_now`), once the provider's state was read: a stream
-- that left the list meanwhile is not forbidden, one that joined it is not resumed. The change
-- that moved it (a resume or forbid that updates the list before it is sent) was decided later
-- than this round's first read, and the decision made last stands. Such streams go to
-- `found.changed`. Read whole and valid, or nothing is sent: true, or nil and the error.
local function still_desired(report, o)
  if not o.desired_now then return true end
  local ok, now, why = pcall(o.desired_now)
  local items
  if ok and type(now) == "table" then
    local keys, its = wanted(report.provider, now)
    if keys then items = its else why = its.message end
  elseif not ok then
    why = now
  end
  if not items then
    return nil, errors.new { provider = report.provider, code = "DesiredUnavailable", kind = "store", reason = "io",
      sent = false,
      message = "the desired list could not be read again before sending (" .. tostring(why) .. "): nothing was sent" }
  end
  local changed = report.found.changed
  keep_only(report.found.missing, function(k) return items[k] ~= nil end, changed)
  -- (`extras` is `found.extra` itself with remove_extra, else empty: filtered here with it)
  keep_only(report.found.extra, function(k) return items[k] == nil end, changed)
  return true
end

-- The desired list read again (still_desired), the guard, the report's in_sync, and what a dry
-- run or a refusal returns; then `before_send` (the caller's intent, written before anything is
-- sent). Returns true to go on sending; else what `aliyun`/`zego` return.
local function before_sending(report, o, extras)
  local fresh, ferr = still_desired(report, o)
  if not fresh then return false, nil, ferr end
  local nsend = #report.found.missing + #extras
  -- (resumes are counted when the run would send them: remove_extra)
  local gok, decision = audit.guard(#report.found.missing, { max_forbid = o.max_forbid, confirm = o.confirm,
    resumes = o.remove_extra and #extras or nil, max_resume = o.max_resume })
  report.guard = gok and decision or decision.guard
  if o.dry_run or nsend == 0 then
    report.in_sync = #report.found.missing == 0 and (not o.remove_extra or #report.found.extra == 0)
    return false, report
  end
  if not gok then
    decision.report = report
    return false, nil, decision
  end
  if o.before_send then
    local ok, why = o.before_send { missing = report.found.missing, extra = extras, guard = report.guard }
    if not ok then
      return false, nil, errors.new { provider = report.provider, code = "AuditUnavailable", kind = "validation",
        sent = false, message = "before_send refused the run" .. (why and (": " .. tostring(why)) or "")
          .. ": nothing was sent" }
    end
  end
  return true
end

local function finish(report)
  report.in_sync = #report.failed == 0 and #report.unknown == 0 and report.state_error == nil
  return report
end

-- A reconcile's outcome, for its span (streamctl.pipeline.spans.around):
-- a refusal sends nothing; a report is ok, failed or unknown by its streams.
local function span_outcome(report, err)
  if not report then return "not_sent", tostring(err and err.message or err) end
  local failed, unknown = #report.failed, #report.unknown
  return (failed > 0 and "failed") or (unknown > 0 and "unknown") or "ok",
    format("%d failed, %d unknown", failed, unknown),
    { ["streamctl.reconcile.missing"] = #report.found.missing, ["streamctl.reconcile.extra"] = #report.found.extra,
      ["streamctl.reconcile.fixed"] = report.fixed, ["streamctl.reconcile.failed"] = failed,
      ["streamctl.reconcile.unknown"] = unknown, ["streamctl.batch.calls"] = report.calls }
end

--- A reconciler run as one operation over its calls (with the client's
-- `tracer` or `on_span`: one span, "Live.Reconcile" or "ZEGO.Reconcile", its calls
-- under it; streamctl.pipeline.spans).
local function traced(run)
  return function(client, desired, opts)
    if type(client) ~= "table" then return run(client, desired, opts) end -- (its own refusal names the misuse)
    return spans.around(client, "Reconcile", span_outcome, run, client, desired, opts)
  end
end

local function has_methods(client, names)
  if type(client) ~= "table" then return false end
  for _, n in ipairs(names) do
    if type(client[n]) ~= "function" then return false end
  end
  return true
end

-- Groups `keys` by domain and app: { {domain, app, names = {}, keys = {}} } in order.
local function by_app(keys, parts)
  local groups, index = {}, {}
  for _, key in ipairs(keys) do
    local p = parts[key]
    local g = p.domain_name .. "\0" .. p.app_name
    if not index[g] then
      index[g] = { domain_name = p.domain_name, app_name = p.app_name, names = {}, keys = {} }
      groups[#groups + 1] = index[g]
    end
    local t = index[g]
    t.names[#t.names + 1], t.keys[#t.keys + 1] = p.stream_name, key
  end
  return groups
end

--- The field `name` of a desired item of `provider` as its client checks
-- it (forbid_live_stream's or forbid_rtc_stream's schema): for whatever
-- else holds such a name (the ZEGO state's keys).
function M.field_rule(provider, name)
  return field_rules()[provider][name]
end

M.ALIYUN_OPTIONS = ALIYUN_OPTIONS
M.ZEGO_OPTIONS = ZEGO_OPTIONS
--- What every reconciler does first with its arguments: `client` must have
-- `methods` (else misuse: raised, blamed on the reconciler's caller, as is
-- `desired` not a table), `opts` is checked against `options`, and the
-- desired list is read. Returns the options, the desired keys and their
-- items; or nil and the error object (a bad option or item: nothing sent).
local function arguments(provider, what, methods, options, client, desired, opts)
  if not has_methods(client, methods) then
    error(format("bad argument #1 to '%s' (a %s client expected)", provider, what), 3)
  end
  if type(desired) ~= "table" then error(format("bad argument #2 to '%s' (desired must be a table)", provider), 3) end
  local o, oerr = validate.construct(options, opts, "streamctl.operator.reconcile." .. provider, provider, 3, 4)
  if not o then return nil, oerr end
  local keys, items = wanted(provider, desired)
  if not keys then return nil, items end
  if #keys == 0 and o.remove_extra and not o.allow_empty and not o.dry_run then
    -- An empty list with remove_extra resumes every stream forbidden: what a
    -- wrong or truncated file asks for far more often than an operator does.
    return nil, invalid(provider, "desired is empty and remove_extra would resume every stream forbidden "
      .. (provider == "aliyun" and "in the domains read" or "in the state") .. ": nothing was sent (option "
      .. "'allow_empty' = true says that is meant)")
  end
  return o, keys, items
end

M.arguments = arguments
M.wanted = wanted
M.by_app = by_app
M.CDN_MARGIN = CDN_MARGIN
M.schema = schema
M.COMMON = COMMON
M.invalid = invalid
M.key_of = key_of
M.new_report = new_report
M.entry_of = entry_of
M.add = add
M.batch = batch
M.single = single
M.before_sending = before_sending
M.finish = finish
M.traced = traced
M.has_methods = has_methods
M.parse = parse

--- Is `desired` a desired list `aliyun` or `zego` would take (a list,
-- each item by its provider's field rules), checked without a client, so
-- that what keeps a desired state (a store, a file) refuses what no run
-- could use before it is kept?
-- @return true, or nil and an error (`InvalidParameter`, naming `desired[i]`, its field and the rule)
function M.check(provider, desired)
  if provider ~= "aliyun" and provider ~= "zego" then
    error("bad argument #1 to 'check' (provider must be 'aliyun' or 'zego')", 2)
  end
  if type(desired) ~= "table" then error("bad argument #2 to 'check' (desired must be a table)", 2) end
  local keys, err = wanted(provider, desired)
  if not keys then return nil, err end
  return true
end

return M
