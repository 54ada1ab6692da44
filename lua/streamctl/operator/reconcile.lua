--- The forbid list as a desired state: read what the provider blocks,
-- compare, send only the difference.
--
-- `reconcile.aliyun(client, desired, opts)` reads each domain's block list
-- (DescribeLiveStreamsBlockList, every page, bounded), forbids the desired
-- streams it lacks (`forbid_live_streams`, paced), and, only with
-- `remove_extra`, resumes the blocked streams not desired. ZEGO's Server API
-- cannot be asked which streams are forbidden (DescribeRTCStreamState answers
-- for one stream, in a shape its pages do not document), so
-- `reconcile.zego(client, desired, opts)` takes its view from a state store
-- the caller gives (`get`/`set`: `file_store(path)`, an nginx shared dict):
-- what this reconciler last applied. A change made behind its back on ZEGO
-- cannot be seen there. Both refuse, sending nothing, when the provider's
-- view cannot be read, and when the forbids are more than the blast-radius
-- guard allows (streamctl.operator.audit.guard). See docs/reconcile.md.
-- @module streamctl.operator.reconcile

local audit = require "streamctl.operator.audit"
local core = require "streamctl.core"
local errors = require "streamctl.base.errors"
local json = require "streamctl.base.json"
local validate = require "streamctl.base.validate"

local type, ipairs, pairs, tostring, tonumber, pcall, error, next = type, ipairs, pairs, tostring, tonumber, pcall,
  error, next
local format, sub, find, match, gmatch = string.format, string.sub, string.find, string.match, string.gmatch
local concat, sort = table.concat, table.sort
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
  { name = "confirm", type = "boolean" },
  { name = "concurrency", type = "integer", min = 1, max = 256 },
  { name = "before_send", type = "function" },
}
local function schema(more)
  local out = {}
  for _, f in ipairs(COMMON) do out[#out + 1] = f end
  for _, f in ipairs(more) do out[#out + 1] = f end
  return out
end

local ALIYUN_OPTIONS = schema {
  { name = "resume_time", type = "time" },
  { name = "domains", type = "strings" },
  { name = "max_pages", type = "integer", min = 1 },
  { name = "page_size", type = "integer", min = 1, max = 3000 },
}
local ZEGO_OPTIONS = schema {
  { name = "state", type = "object", methods = { "get", "set" }, required = true },
  { name = "state_key", type = "string" },
  { name = "cdn_resume_time", type = "time" },
}

-- The rule every name obeys: the clients' own text rule for a field.
local NAME = { type = "string" }
local ID = { type = "string", max_len = 256 }

local function invalid(provider, message)
  local e = errors.invalid(provider, nil, message)
  e.sent = false
  return e
end

-- The desired items ----------------------------------------------------------------

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
  if provider == "aliyun" then
    for _, k in ipairs(ALIYUN_KEYS) do
      if item[k] == nil then return k .. " is required" end
      local _, why = validate.value(NAME, item[k])
      if why then return k .. " " .. why end
    end
    if item.app_name == "*" then return "app_name must not be '*' (ForbidLiveStream takes no wildcard)" end
    return nil
  end
  if item.stream_id == nil then return "stream_id is required" end
  local _, why = validate.value(ID, item.stream_id)
  if why then return "stream_id " .. why end
  if item.kind ~= nil and not KINDS[item.kind] then return "kind must be 'rtc' or 'cdn'" end
  return nil
end

-- The key of an item: "domain/app/stream", or "rtc:ID" / "cdn:ID".
local function key_of(provider, item)
  if provider == "aliyun" then return item.domain_name .. "/" .. item.app_name .. "/" .. item.stream_name end
  return (item.kind or "rtc") .. ":" .. item.stream_id
end

-- The desired items without repeats: keys in order, key -> item; or nil, err.
local function wanted(provider, desired)
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
function M.parse(provider, text, name)
  if provider ~= "aliyun" and provider ~= "zego" then
    error("bad argument #1 to 'parse' (provider must be 'aliyun' or 'zego')", 2)
  end
  if type(text) ~= "string" then error("bad argument #2 to 'parse' (text must be a string)", 2) end
  name = name or "the list"
  local items = {}
  if find(text, "^%s*%[") then
    local list, err = json.decode(text)
    if type(list) ~= "table" then return nil, format("%s: not a JSON array (%s)", name, tostring(err)) end
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

-- Reports ------------------------------------------------------------------------

local function new_report(provider, o, ndesired)
  return { provider = provider, dry_run = o.dry_run == true, desired = ndesired, blocked = 0,
           found = { missing = {}, extra = {} }, fixed = 0, failed = {}, unknown = {}, results = {}, calls = 0 }
end

-- One stream's entry: { stream, action, ok, attempts, request_id, error, outcome_unknown }.
local function entry_of(key, action, e)
  return { stream = key, action = action, ok = e.ok, attempts = e.attempts or 0, request_id = e.request_id,
           error = e.error, outcome_unknown = e.outcome_unknown }
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
  add(report, o, entry_of(key, action, { ok = res ~= nil, attempts = 1, request_id = res and res.RequestId
    or err and err.request_id, error = err, outcome_unknown = err and err.outcome_unknown }), total)
end

-- The guard, the report's in_sync, and what a dry run or a refusal returns;
-- then `before_send` (the caller's intent, written before anything is
-- sent). Returns true to go on sending; else what `aliyun`/`zego` return.
local function before_sending(report, o, nsend, extras)
  local gok, decision = audit.guard(#report.found.missing, { max_forbid = o.max_forbid, confirm = o.confirm })
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

-- Alibaba Cloud -----------------------------------------------------------------

-- What is wrong with a block-list page (a message), or nil: its StreamUrls
-- must be a list of non-empty texts, TotalNum (when given) a count, and a
-- last page (shorter than asked) must not end before TotalNum says the
-- list does (entries resumed between two pages may make it end later).
local function page_flaw(urls, total, page, size)
  if type(urls) ~= "table" then return "has no StreamUrls list" end
  local n = #urls
  for k in pairs(urls) do
    if type(k) ~= "number" or k < 1 or k > n or k ~= floor(k) then
      return "has a StreamUrls that is not a list (key " .. tostring(k) .. ")"
    end
  end
  for i = 1, n do
    if type(urls[i]) ~= "string" or urls[i] == "" then
      return format("has a StreamUrls entry %d that is not a stream (%s)", i, type(urls[i]))
    end
  end
  if n > size then return format("holds %d entries, more than the %d asked", n, size) end
  local count = tonumber(total)
  if total ~= nil and (not count or count < 0 or count ~= floor(count)) then
    return "has a TotalNum that is not a count (" .. tostring(total) .. ")"
  end
  if count and n < size and (page - 1) * size + n < count then
    return format("ends the list at %d entries, but its TotalNum is %d", (page - 1) * size + n, count)
  end
  return nil
end

-- Every page of `domain`'s block list: the entries, or nil and an error.
local function block_list(client, domain, o, report)
  local out, size = {}, o.page_size or M.PAGE_SIZE
  for page = 1, o.max_pages or M.MAX_PAGES do
    local res, err = client:describe_live_streams_block_list { domain_name = domain, page_number = page,
                                                              page_size = size }
    report.calls = report.calls + 1
    if not res then return nil, err end
    local urls, total = res.StreamUrls, res.TotalNum
    if type(urls) == "table" and urls.StreamUrl ~= nil then urls = urls.StreamUrl end
    if urls == nil and tonumber(total) == 0 then urls = {} end
    local flaw = page_flaw(urls, total, page, size)
    if flaw then
      return nil, errors.new { provider = "aliyun", action = "DescribeLiveStreamsBlockList", code = "InvalidResponse",
        kind = "response", request_id = res.RequestId, message = format("page %d of the block list of "
          .. "%s %s: nothing was sent", page, domain, flaw) }
    end
    for _, u in ipairs(urls) do out[#out + 1] = u end
    total = tonumber(total)
    if #urls < size or (total and page * size >= total) then return out end
  end
  return nil, errors.new { provider = "aliyun", action = "DescribeLiveStreamsBlockList", code = "TooManyPages",
    kind = "validation", message = format("the block list of %s has more than %d pages of %d: nothing was sent "
      .. "(raise max_pages)", domain, o.max_pages or M.MAX_PAGES, size) }
end

-- An extra entry "domain/app/stream" as its parts, or nil when the app
-- cannot be told from the stream (a "/" in either).
local function split_extra(domain, entry)
  local rest = sub(entry, #domain + 2)
  if sub(entry, 1, #domain + 1) ~= domain .. "/" then return nil end
  local a, s = match(rest, "^([^/]+)/([^/]+)$")
  if not a then return nil end
  return { domain_name = domain, app_name = a, stream_name = s }
end

--- Makes Alibaba Cloud's block list hold the desired streams.
-- @param client a `streamctl.aliyun` client
-- @tparam table desired `{ { domain_name, app_name, stream_name }, ... }`: the streams that must be blocked
-- @tparam[opt] table opts `remove_extra`, `dry_run`, `on_progress(done, total, entry)`, `max_forbid`,
-- `confirm`, `concurrency`, `resume_time` (the forbids', default none: until resumed), `domains` (more
-- domains to read: their blocked streams are extras), `max_pages` (per domain, default 100), `page_size`
-- (default 3000)
-- @return the report (docs/reconcile.md); or nil and an error: a bad item or option, the block list
-- unreadable, the guard's refusal (its `report`: the difference found). Nothing is sent then.
function M.aliyun(client, desired, opts)
  if not has_methods(client, { "describe_live_streams_block_list", "forbid_live_streams", "resume_live_streams" })
  then
    error("bad argument #1 to 'aliyun' (a streamctl.aliyun client expected)", 2)
  end
  if type(desired) ~= "table" then error("bad argument #2 to 'aliyun' (desired must be a table)", 2) end
  local o, oerr = validate.construct(ALIYUN_OPTIONS, opts, "streamctl.operator.reconcile.aliyun", "aliyun", 3)
  if not o then return nil, oerr end
  local keys, items = wanted("aliyun", desired)
  if not keys then return nil, items end
  local report = new_report("aliyun", o, #keys)
  local domains, seen = {}, {}
  for _, key in ipairs(keys) do
    local d = items[key].domain_name
    if not seen[d] then seen[d] = true; domains[#domains + 1] = d end
  end
  for _, d in ipairs(o.domains or {}) do
    if not seen[d] then seen[d] = true; domains[#domains + 1] = d end
  end
  local blocked, extra_parts = {}, {}
  for _, d in ipairs(domains) do
    local list, err = block_list(client, d, o, report)
    if not list then return nil, err end
    for _, u in ipairs(list) do
      if not blocked[u] then
        blocked[u] = true
        report.blocked = report.blocked + 1
        if not items[u] then
          report.found.extra[#report.found.extra + 1] = u
          extra_parts[u] = split_extra(d, u) or false
        end
      end
    end
  end
  for _, key in ipairs(keys) do
    if not blocked[key] then report.found.missing[#report.found.missing + 1] = key end
  end
  sort(report.found.extra)
  local extras = o.remove_extra and report.found.extra or {}
  local go, out, err = before_sending(report, o, #report.found.missing + #extras, extras)
  if not go then return out, err end
  local total = #report.found.missing + #extras
  for _, g in ipairs(by_app(report.found.missing, items)) do
    batch(client, "forbid_live_streams", { domain_name = g.domain_name, app_name = g.app_name,
      stream_names = g.names, resume_time = o.resume_time, concurrency = o.concurrency }, g.keys,
      "ForbidLiveStream", report, o, total)
  end
  local resumable = {}
  for _, key in ipairs(extras) do
    if extra_parts[key] then
      resumable[#resumable + 1] = key
    else
      add(report, o, entry_of(key, "ResumeLiveStream", { ok = false, error = invalid("aliyun", format(
        "cannot tell the app name from the stream name in '%s' (a '/' in one of them): resume it by hand", key)) }),
        total)
    end
  end
  for _, g in ipairs(by_app(resumable, extra_parts)) do
    batch(client, "resume_live_streams", { domain_name = g.domain_name, app_name = g.app_name,
      stream_names = g.names, concurrency = o.concurrency }, g.keys, "ResumeLiveStream", report, o, total)
  end
  return finish(report)
end

-- ZEGO ---------------------------------------------------------------------------

-- The state's version: 2 holds `pending` (streams a run was about to change
-- when it last saved); 1 (read too) has none.
local STATE_VERSION = 2

local function state_error(code, message)
  return errors.new { provider = "zego", code = code, kind = "service", sent = false, message = message }
end

local STATE_FIELDS = { v = true, streams = true, pending = true }
local MAX_TIME = 2 ^ 53

-- Whether `k` is a state's stream key: "rtc:ID" or "cdn:ID".
local function stream_key(k)
  return type(k) == "string" and (find(k, "^rtc:.") or find(k, "^cdn:.")) ~= nil
end

-- What is wrong with a state's decoded table (a message), or nil.
local function state_flaw(state)
  if type(state) ~= "table" then return "is not a JSON object" end
  if state.v ~= 1 and state.v ~= STATE_VERSION then
    return format("has version %s, not 1 or %d", tostring(state.v), STATE_VERSION)
  end
  for k in pairs(state) do
    if not STATE_FIELDS[k] then return format("has \"%s\", which is not v, streams or pending", tostring(k)) end
  end
  if type(state.streams) ~= "table" then return "has no \"streams\" object" end
  for k, expiry in pairs(state.streams) do
    if not stream_key(k) or type(expiry) ~= "number" or not (expiry >= 0 and expiry < MAX_TIME) then
      return format("has a stream entry that is not \"rtc:ID\" or \"cdn:ID\" with a time (%s: %s)", tostring(k),
        tostring(expiry))
    end
  end
  if state.pending ~= nil and (state.v == 1 or type(state.pending) ~= "table") then
    return "has a \"pending\" that is not a version 2 object"
  end
  for k, change in pairs(state.pending or {}) do
    if not stream_key(k) or (change ~= "forbid" and change ~= "resume") then
      return format("has a pending entry that is not a stream with \"forbid\" or \"resume\" (%s: %s)",
        tostring(k), tostring(change))
    end
  end
  return nil
end

-- The state under `key`: the streams still forbidden at `now` (key ->
-- expiry, 0: none) and those pending (key -> "forbid" | "resume"); or nil
-- and an error: StateUnavailable when the store cannot be read,
-- InvalidState when what it holds is not a reconciler's state. Absent is a
-- first run: nothing applied, nothing pending.
local function read_state(store, key, now)
  local ok, text, err, kind = pcall(store.get, store, key)
  if not ok then error(format("the state store's get raised: %s", tostring(text)), 3) end
  if text == nil and err ~= nil then
    if kind == "corrupt" then
      return nil, state_error("InvalidState", format("the state '%s' is not a reconciler's: %s; nothing was "
        .. "sent (look at it, or move it away to start from nothing applied)", key, tostring(err)))
    end
    return nil, state_error("StateUnavailable", format("the state '%s' cannot be read: %s; nothing was sent",
      key, tostring(err)))
  end
  if text == nil then return {}, {} end
  local state = type(text) == "string" and json.decode(text)
  local flaw = state_flaw(state)
  if flaw then
    return nil, state_error("InvalidState", format("the state '%s' %s: not a reconciler's state (version %d); "
      .. "nothing was sent (look at it, or remove it to start from nothing applied)", key, flaw, STATE_VERSION))
  end
  local live, pending = {}, {}
  for k, expiry in pairs(state.streams) do
    if expiry == 0 or expiry > now then live[k] = floor(expiry) end
  end
  for k, change in pairs(state.pending or {}) do pending[k] = change end
  return live, pending
end

local function sorted_object(t, value)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  sort(keys)
  local parts = {}
  for i, k in ipairs(keys) do parts[i] = json.string(k) .. ":" .. value(t[k]) end
  return "{" .. concat(parts, ",") .. "}"
end

local function state_text(streams, pending)
  return format('{"v":%d,"streams":%s,"pending":%s}', STATE_VERSION, sorted_object(streams, validate.decimal),
    sorted_object(pending or {}, json.string))
end

local function save_state(store, key, streams, pending, when)
  local ok, serr = store:set(key, state_text(streams, pending))
  if ok then return true end
  return nil, state_error("StateUnavailable", format("the state '%s' could not be saved %s: %s", key, when,
    tostring(serr)))
end

-- The desired keys the view lacks (pending ones too: maybe applied, sent
-- again), and the view's keys (pending ones too) not desired, sorted.
local function zego_difference(keys, items, view, pending, report)
  local extra = {}
  for k in pairs(view) do
    report.blocked = report.blocked + 1
    if not items[k] then extra[k] = true end
  end
  for k in pairs(pending) do
    if not items[k] then extra[k] = true end
  end
  for k in pairs(extra) do report.found.extra[#report.found.extra + 1] = k end
  sort(report.found.extra)
  for _, key in ipairs(keys) do
    if not view[key] or pending[key] then report.found.missing[#report.found.missing + 1] = key end
  end
end

--- Makes ZEGO's forbidden streams the desired ones, as far as this
-- reconciler's state knows them (ZEGO cannot be asked).
--
-- The state is a write-ahead record: before anything is sent, the streams
-- about to change are saved as pending (and nothing is sent if that save
-- fails); after, those whose outcome is known leave `pending` for
-- `streams` (a forbid) or for nothing (a resume). A run killed between the
-- two leaves them pending, and the next run takes a pending stream as
-- maybe changed: forbidden again while desired, an extra (resumed with
-- `remove_extra`) when not. No forbid is ever made that no state remembers.
-- @param client a `streamctl.zego` client
-- @tparam table desired `{ { stream_id, kind = "rtc" | "cdn" (default "rtc") }, ... }`
-- @tparam table opts `state` (required: an object with `get(key) -> text | nil | nil, err [, "corrupt"]`
-- and `set(key, text) -> true | nil, err`, such as `file_store(path)` or an `ngx.shared` dict), `state_key`
-- (default `streamctl:reconcile:zego:<AppId>`), `cdn_resume_time` (CDN forbids', default a day), and
-- `remove_extra`, `dry_run`, `on_progress`, `max_forbid`, `confirm`, `concurrency`, `before_send` as `aliyun`'s
-- @return the report; or nil and an error (nothing sent): StateUnavailable (the state cannot be read, or
-- the pending record cannot be saved), InvalidState (it is not a reconciler's state), the guard's refusal
function M.zego(client, desired, opts)
  if not has_methods(client, { "forbid_rtc_streams", "resume_rtc_streams", "forbid_cdn_live_stream",
                               "resume_cdn_live_stream" }) then
    error("bad argument #1 to 'zego' (a streamctl.zego client expected)", 2)
  end
  if type(desired) ~= "table" then error("bad argument #2 to 'zego' (desired must be a table)", 2) end
  local o, oerr = validate.construct(ZEGO_OPTIONS, opts, "streamctl.operator.reconcile.zego", "zego", 3)
  if not o then return nil, oerr end
  local keys, items = wanted("zego", desired)
  if not keys then return nil, items end
  local now = floor(client:now())
  if o.cdn_resume_time and o.cdn_resume_time <= now then
    return nil, invalid("zego", "option 'cdn_resume_time' must be in the future")
  end
  local state_key = o.state_key or ("streamctl:reconcile:zego:" .. tostring(client.app_id))
  local view, pending = read_state(o.state, state_key, now)
  if not view then return nil, pending end
  local report = new_report("zego", o, #keys)
  zego_difference(keys, items, view, pending, report)
  local extras = o.remove_extra and report.found.extra or {}
  local go, out, gerr = before_sending(report, o, #report.found.missing + #extras, extras)
  if not go then return out, gerr end
  -- the write-ahead record: every stream about to change, pending, before the first request
  for _, key in ipairs(report.found.missing) do pending[key] = "forbid" end
  for _, key in ipairs(extras) do pending[key] = "resume" end
  local saved, serr = save_state(o.state, state_key, view, pending, "before sending (nothing was sent)")
  if not saved then return nil, serr end
  local total = #report.found.missing + #extras
  local function send(list, rtc_method, rtc_action, cdn_method, cdn_action, extra_fields)
    local rtc, rtc_keys = {}, {}
    for _, key in ipairs(list) do
      local kind, id = match(key, "^(%a+):(.*)$")
      if kind == "rtc" then
        rtc[#rtc + 1], rtc_keys[#rtc_keys + 1] = id, key
      end
    end
    if #rtc > 0 then
      batch(client, rtc_method, { stream_ids = rtc, concurrency = o.concurrency }, rtc_keys, rtc_action, report, o,
        total)
    end
    for _, key in ipairs(list) do
      local kind, id = match(key, "^(%a+):(.*)$")
      if kind == "cdn" then
        local fields = { stream_id = id }
        for k, v in pairs(extra_fields) do fields[k] = v end
        single(client, cdn_method, fields, key, cdn_action, report, o, total)
      end
    end
  end
  send(report.found.missing, "forbid_rtc_streams", "ForbidRTCStreams", "forbid_cdn_live_stream",
    "ForbidCDNLiveStream", { resume_time = o.cdn_resume_time })
  send(extras, "resume_rtc_streams", "ResumeRTCStreams", "resume_cdn_live_stream", "ResumeCDNLiveStream", {})
  -- What is known applied leaves `pending`; a stream whose change failed or
  -- whose outcome is unknown stays pending, and is sent again next time.
  local cdn_until = (o.cdn_resume_time or (now + M.CDN_BAN)) - CDN_MARGIN
  for _, e in ipairs(report.results) do
    if e.ok and find(e.action, "^Forbid") then
      view[e.stream], pending[e.stream] = find(e.stream, "^cdn:") and cdn_until or 0, nil
    elseif e.ok then
      view[e.stream], pending[e.stream] = nil, nil
    end
  end
  local confirmed, cerr = save_state(o.state, state_key, view, pending,
    "after sending (what was sent stays pending there: the next run sends it again)")
  if not confirmed then report.state_error = cerr end
  return finish(report)
end

--- Forgets what the state says was applied to ZEGO streams that something
-- else has just changed (an nginx handler's own forbid or resume), so that
-- the next `zego` run looks at them again instead of trusting a view that
-- may no longer hold: a desired stream is forbidden again, an extra is
-- reported. Misuse raises.
-- @tparam table store the state store (`get`, `set`)
-- @tparam string state_key the key `zego` uses (`streamctl:reconcile:zego:<AppId>` by default)
-- @tparam table items `{ { stream_id, kind = "rtc" | "cdn" }, ... }`
-- @return true, or nil and an error (the state unreadable or not saved)
function M.zego_forget(store, state_key, items)
  if type(store) ~= "table" and type(store) ~= "userdata" then
    error("bad argument #1 to 'zego_forget' (a state store expected)", 2)
  end
  if type(state_key) ~= "string" or type(items) ~= "table" then
    error("bad argument to 'zego_forget' (a state key and a list of items expected)", 2)
  end
  local view, pending = read_state(store, state_key, 0)
  if not view then return nil, pending end
  local changed = false
  for _, item in ipairs(items) do
    local key = key_of("zego", item)
    if view[key] ~= nil then view[key], changed = nil, true end
  end
  if not changed then return true end
  return save_state(store, state_key, view, pending, "")
end

-- A state in a file ---------------------------------------------------------------

--- A state store in one JSON file (`{ key: value }`), for the command line:
-- `get(key)` and `set(key, value)`. Absent, the file is a first run
-- (nothing held); one that cannot be read, is not a file, or is not such a
-- JSON object is an error naming it (`get` returns nil, why and, when the
-- file is there but not a state, "corrupt"), never taken for an empty one.
-- `set` replaces the file whole and atomically (streamctl.core.replace_file:
-- a temporary file beside it, fsync, rename, made with mode 0600): a failed
-- save leaves what it held. One reconciler at a time per file.
-- @tparam string path the file
-- @return the store
function M.file_store(path)
  if type(path) ~= "string" or path == "" then error("bad argument #1 to 'file_store' (path must be a string)", 2) end
  local store = {}
  local function load()
    local text, why, kind = core.read_file(path)
    if not text then
      if kind == "absent" then return {} end
      return nil, why
    end
    local t = find(text, "^%s*{") and json.decode(text)
    if type(t) ~= "table" or (next(t) ~= nil and #t > 0) then
      return nil, format("%s is not a JSON object of states (%d bytes%s)", path, #text,
        match(text, "^%s*$") and ", all blank" or ""), "corrupt"
    end
    for k, v in pairs(t) do
      if type(k) ~= "string" or type(v) ~= "string" then
        return nil, format("%s holds %s under '%s', not a state's text", path, type(v), tostring(k)), "corrupt"
      end
    end
    return t
  end
  function store.get(_, key)
    local t, err, kind = load()
    if not t then return nil, err, kind end
    return t[key]
  end
  function store.set(_, key, value)
    local t, err = load()
    if not t then return nil, err end
    t[key] = value
    local names = {}
    for k in pairs(t) do names[#names + 1] = k end
    sort(names)
    local parts = {}
    for i, k in ipairs(names) do parts[i] = json.string(k) .. ":" .. json.string(tostring(t[k])) end
    return core.replace_file(path, "{" .. concat(parts, ",") .. "}\n")
  end
  return store
end

return M
