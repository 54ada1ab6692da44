-- ApsaraVideo Live's streams in the emulator (aliyun_live.lua says how the
-- operations answer): forbidden and resumed streams, the block list (its
-- places: live_places.lua), and the streams marked online through the
-- control API, with the ingest callbacks a change sends.
--
-- ForbidLiveStream's page (help.aliyun.com/document_detail/35413.html): "You
-- can disable up to 10,000 live streams. If the limit is reached, you cannot
-- disable any more live streams", and "An interrupted live stream is not added
-- to the blacklist and does not occupy the quota" (Oneshot=yes). Its Chinese
-- version: with Oneshot no and no ResumeTime, the stream is forbidden for 6
-- months by default. So every forbid has an end: its ResumeTime, or 6
-- calendar months after the forbid (clock.add_months); at its end the stream
-- leaves the list and frees its place.

local json = require "streamctl.emulator.json"
local clock = require "streamctl.emulator.clock"
local notify = require "streamctl.emulator.aliyun_notify"
local params = require "streamctl.emulator.live_params"
local places = require "streamctl.emulator.live_places"
local remote_auth = require "streamctl.emulator.remote_auth"
local history = require "streamctl.emulator.live_history"

local type, pairs, ipairs, ceil, find = type, pairs, ipairs, math.ceil, string.find
local sort = table.sort
local match = string.match
local missing, invalid, present = params.missing, params.invalid, params.present
local page_params, page_of, domain_known = params.page_params, params.page_of, params.domain_known
local domain_not_found = params.domain_not_found

local M = {}

local streams = {}
local online = {}       -- "<domain>/<app>/<stream>" -> what DescribeLiveStreamsOnlineList shows

-- An ingest ended: its publish_done callback, and its end in the history.
local function ended(entry, now)
  notify.stream_event("publish_done", entry, now)
  history.stopped(entry, now)
end

local function stream_key(domain, app, stream)
  return domain .. "/" .. app .. "/" .. stream
end

-- A forbid without ResumeTime ends this many calendar months after it.
local DEFAULT_FORBID_MONTHS = 6

-- Whether a stream record is on the block list at time now.
local function is_blocked(s, now)
  return s.status == "forbidden" and s.ends_at > now
end

-- Ends the forbids whose end passed (their places are free again).
local function purge(now)
  places.purge(now, function(key)
    streams[key].status = "normal"
  end)
end

-- The error at the block list's limit: the pages name none; the emulator's
-- own code (docs/development/emulator-fidelity.md, "Differences from the real services").
local function list_full(limit, key)
  return nil, "BlockList.LimitExceeded",
    "The block list is full: at most " .. limit .. " streams can be disabled.",
    { stream = key, places_in_use = places.in_use(), limit = limit }
end

-- The record of a stream, created (not blocked) on first use.
local function stream_record(p)
  local key = stream_key(p.DomainName, p.AppName, p.StreamName)
  local s = streams[key]
  if not s then
    s = {
      DomainName = p.DomainName, AppName = p.AppName, StreamName = p.StreamName,
      status = "normal", forbid_count = 0, resume_count = 0, interrupt_count = 0,
    }
    streams[key] = s
  end
  return key, s
end

-- The names' shapes, the strictest reading (the pages give none): letters,
-- digits, '-' and '_', at most 256; a domain in lower-case labels of
-- letters, digits and '-' (docs/development/emulator-fidelity.md, "Names").
local function name_shaped(v)
  return #v <= 256 and match(v, "^[%w_%-]+$") ~= nil
end

local function check_stream_params(p)
  for _, name in ipairs({ "DomainName", "AppName", "StreamName", "LiveStreamType" }) do
    if not present(p[name]) then
      return missing(name)
    end
  end
  if not params.domain_shaped(p.DomainName) then
    return invalid("DomainName", "A domain name in lower case, without scheme, port or path.")
  end
  if p.AppName ~= "*" and not name_shaped(p.AppName) then
    return invalid("AppName", "It may hold letters, digits, '-' and '_'.")
  end
  if not name_shaped(p.StreamName) then
    return invalid("StreamName", "It may hold letters, digits, '-' and '_'.")
  end
  if p.LiveStreamType ~= "publisher" then
    return invalid("LiveStreamType", "Valid value: publisher.")
  end
  return true
end

-- ForbidLiveStream: puts a stream on the block list until ResumeTime, or for
-- 6 months when none is given; with Oneshot=yes it only cuts the current
-- ingest and blocks nothing. A stream not listed yet takes a place: when none
-- is free (aliyun.block_list_limit), the forbid is refused and changes
-- nothing. A stream listed already keeps its place (a new end).
function M.ForbidLiveStream(p, ctx)
  local ok, code, msg = check_stream_params(p)
  if not ok then
    return nil, code, msg
  end
  if p.AppName == "*" then
    return invalid("AppName", "Wildcards are only accepted by ResumeLiveStream.")
  end
  local oneshot = p.Oneshot
  if present(oneshot) and oneshot ~= "yes" and oneshot ~= "no" then
    return invalid("Oneshot", "Valid values: yes, no.")
  end
  local resume_at
  if present(p.ResumeTime) then
    resume_at = clock.parse_iso8601(p.ResumeTime)
    if not resume_at then
      return invalid("ResumeTime", "Use the UTC format yyyy-MM-ddTHH:mm:ssZ.")
    end
  end
  if not domain_known(ctx, p.DomainName) then
    return domain_not_found()
  end
  purge(ctx.now)
  if oneshot ~= "yes" then
    local key = stream_key(p.DomainName, p.AppName, p.StreamName)
    local limit = ctx.cfg.block_list_limit
    if places.ends_at(key) == nil and places.in_use() >= limit then
      return list_full(limit, key)
    end
  end
  local key, s = stream_record(p)
  s.account = ctx.account_id
  s.updated_at = ctx.now
  -- Either kind of forbid cuts the current ingest: the stream goes offline
  -- (its publish_done callback, aliyun_notify.lua).
  if online[key] then
    ended(online[key], ctx.now)
    online[key] = nil
  end
  if oneshot == "yes" then
    s.interrupt_count = s.interrupt_count + 1
    return {}, { applied = true, detail = { stream = key, oneshot = true } }
  end
  s.status = "forbidden"
  s.ends_at = resume_at or clock.add_months(ctx.now, DEFAULT_FORBID_MONTHS)
  s.ends_by = resume_at and "resume_time" or "default"
  s.ResumeTime = resume_at and p.ResumeTime or nil
  s.Oneshot = oneshot
  s.forbid_count = s.forbid_count + 1
  if s.ends_at > ctx.now then
    places.list(key, s.ends_at)
  else
    places.unlist(key) -- a ResumeTime already past: listed no longer
  end
  return {}, { applied = true, detail = { stream = key, resume_time = s.ResumeTime,
    ends_at = clock.format_iso8601(s.ends_at), ends_by = s.ends_by } }
end

-- ResumeLiveStream: takes a stream (or, with AppName=*, every stream of that
-- name under the domain) off the block list. Resuming a stream that is not
-- blocked succeeds and changes nothing but the counters.
function M.ResumeLiveStream(p, ctx)
  local ok, code, msg = check_stream_params(p)
  if not ok then
    return nil, code, msg
  end
  if not domain_known(ctx, p.DomainName) then
    return domain_not_found()
  end
  purge(ctx.now)
  local resumed = json.array()
  local function resume(key, s)
    places.unlist(key)
    s.status = "normal"
    s.ends_at, s.ends_by = nil, nil
    s.ResumeTime = nil
    s.resume_count = s.resume_count + 1
    s.updated_at = ctx.now
    s.account = ctx.account_id
    resumed[#resumed + 1] = key
  end
  if p.AppName == "*" then
    for key, s in pairs(streams) do
      if s.DomainName == p.DomainName and s.StreamName == p.StreamName then
        resume(key, s)
      end
    end
    sort(resumed)
  else
    resume(stream_record(p))
  end
  return {}, { applied = true, detail = { resumed = resumed } }
end

-- DescribeLiveStreamsBlockList: the blocked streams of a domain, paged.
function M.DescribeLiveStreamsBlockList(p, ctx)
  if not present(p.DomainName) then
    return missing("DomainName")
  end
  local page, code, msg = page_params(p, "PageNum", 2000, 3000)
  if not page then
    return nil, code, msg
  end
  if not domain_known(ctx, p.DomainName) then
    return domain_not_found()
  end
  purge(ctx.now)
  local all = {}
  for key, s in pairs(streams) do
    if s.DomainName == p.DomainName and is_blocked(s, ctx.now) then
      all[#all + 1] = key
    end
  end
  sort(all)
  return {
    DomainName = p.DomainName,
    PageNum = page.number,
    PageSize = page.size,
    TotalNum = #all,
    TotalPage = ceil(#all / page.size),
    StreamUrls = { StreamUrl = page_of(all, page) },
  }, { applied = true }
end

-------------------------------------------------------------------------------
-- Online streams (DescribeLiveStreamsOnlineList)
--
-- A stream is online while something publishes it. The emulator has no
-- publishers, so the control API marks streams online (mark_online) and
-- offline (mark_offline). The service refuses to ingest a blocked stream, and a
-- forbid cuts the current ingest (Oneshot=yes as well), so a blocked stream
-- cannot be marked online and ForbidLiveStream takes a stream offline.

-- What an online entry shows (the rest is kept for its callbacks).
local ONLINE_FIELDS = { "DomainName", "AppName", "StreamName", "PublishTime", "ClientIp" }

-- Marks streams online: specs is a list of { domain, app, stream, client_ip,
-- publish_time (Unix s, default now), usrargs, node, height, width (the
-- publish callback's fields) }. Returns the entries marked and those
-- refused (blocked now), or nil and a message for a bad spec (nothing marked).
function M.mark_online(specs, now)
  local checked = {}
  for i, spec in ipairs(specs) do
    if type(spec) ~= "table" then
      return nil, "online: entry " .. i .. " must be an object"
    end
    for _, k in ipairs({ "domain", "app", "stream" }) do
      if type(spec[k]) ~= "string" or spec[k] == "" then
        return nil, "online: entry " .. i .. ": " .. k .. " must be a non-empty string"
      end
    end
    if spec.client_ip ~= nil and type(spec.client_ip) ~= "string" then
      return nil, "online: entry " .. i .. ": client_ip must be a string"
    end
    if spec.publish_time ~= nil and type(spec.publish_time) ~= "number" then
      return nil, "online: entry " .. i .. ": publish_time must be a number (Unix seconds)"
    end
    for _, k in ipairs({ "usrargs", "node" }) do
      if spec[k] ~= nil and type(spec[k]) ~= "string" then
        return nil, "online: entry " .. i .. ": " .. k .. " must be a string"
      end
    end
    for _, k in ipairs({ "height", "width" }) do
      if spec[k] ~= nil and (type(spec[k]) ~= "number" or spec[k] < 1 or spec[k] % 1 ~= 0) then
        return nil, "online: entry " .. i .. ": " .. k .. " must be a positive whole number of pixels"
      end
    end
    checked[i] = spec
  end
  purge(now)
  local marked, refused, reasons = json.array(), json.array(), {}
  for _, spec in ipairs(checked) do
    local key = stream_key(spec.domain, spec.app, spec.stream)
    local s = streams[key]
    -- (a blocked stream is refused before anyone is asked; else the domain's remote authentication, if set)
    local admitted, why
    if not (s and is_blocked(s, now)) then admitted, why = remote_auth.admit(spec) end
    if why then reasons[key] = why end
    if (s and is_blocked(s, now)) or admitted == false then
      refused[#refused + 1] = key
    else
      local was = online[key]
      local entry = json.ordered({
        DomainName = spec.domain, AppName = spec.app, StreamName = spec.stream,
        PublishTime = clock.format_iso8601(spec.publish_time or now),
        ClientIp = spec.client_ip or "127.0.0.1",
        -- for the ingest callbacks (aliyun_notify.lua), not shown
        publish_unix = spec.publish_time or now, usrargs = spec.usrargs, node = spec.node,
        height = spec.height, width = spec.width,
        notify_key = was and was.notify_key or notify.key_for_publish(spec.domain),
      }, ONLINE_FIELDS)
      online[key] = entry
      marked[#marked + 1] = key
      -- Marking a stream that is online already updates its entry: it is the
      -- same ingest, so no second publish callback.
      if not was then
        notify.stream_event("publish", entry, now)
        history.started(entry, now)
      end
    end
  end
  return marked, refused, reasons
end

-- Takes streams offline: specs as for mark_online (nil: every stream), each
-- with its publish_done callback. Returns the keys taken offline, or nil and a
-- message.
function M.mark_offline(specs, now)
  now = now or clock.now()
  local removed = json.array()
  if specs == nil then
    for key in pairs(online) do
      removed[#removed + 1] = key
    end
    sort(removed)
    for _, key in ipairs(removed) do
      ended(online[key], now)
    end
    online = {}
    return removed
  end
  for i, spec in ipairs(specs) do
    if type(spec) ~= "table" or type(spec.domain) ~= "string" or type(spec.app) ~= "string"
      or type(spec.stream) ~= "string" then
      return nil, "online: entry " .. i .. " must be an object with domain, app and stream strings"
    end
  end
  for _, spec in ipairs(specs) do
    local key = stream_key(spec.domain, spec.app, spec.stream)
    if online[key] then
      ended(online[key], now)
      online[key] = nil
      removed[#removed + 1] = key
    end
  end
  return removed
end

-- The online streams at time now, sorted by "domain/app/stream": a list of
-- { key, entry }. Blocked streams are never online.
local function online_streams(now)
  purge(now)
  local keys = {}
  for key in pairs(online) do
    local s = streams[key]
    if not (s and is_blocked(s, now)) then
      keys[#keys + 1] = key
    end
  end
  sort(keys)
  local out = {}
  for i, key in ipairs(keys) do
    out[i] = { key = key, entry = online[key] }
  end
  return out
end

-- The online list for /_emulator/online and the state: key -> entry.
function M.online_snapshot(now)
  local out = {}
  for _, o in ipairs(online_streams(now)) do
    out[o.key] = o.entry
  end
  return out
end

local STREAM_TYPES = { all = true, raw = true, trans = true }

-- DescribeLiveStreamsOnlineList: the streams of a domain being published,
-- filtered and paged. AppName matches exactly (the page: no wildcard, no fuzzy
-- query); StreamName is a substring (QueryType fuzzy, the default) or exact
-- (strict). Every emulated stream is a source stream (Transcoded "no"), so
-- StreamType=trans lists nothing.
function M.DescribeLiveStreamsOnlineList(p, ctx)
  if not present(p.DomainName) then
    return missing("DomainName")
  end
  local query_type = present(p.QueryType) and p.QueryType or "fuzzy"
  if query_type ~= "fuzzy" and query_type ~= "strict" then
    return invalid("QueryType", "Valid values: fuzzy, strict.")
  end
  local stream_type = present(p.StreamType) and p.StreamType or "all"
  if not STREAM_TYPES[stream_type] then
    return invalid("StreamType", "Valid values: all, raw, trans.")
  end
  local only = present(p.OnlyStream) and p.OnlyStream or "no"
  if only ~= "yes" and only ~= "no" then
    return invalid("OnlyStream", "Valid values: yes, no.")
  end
  local page, code, msg = page_params(p, "PageNum", 2000, 3000)
  if not page then
    return nil, code, msg
  end
  if not domain_known(ctx, p.DomainName) then
    return domain_not_found()
  end
  local matched = {}
  if stream_type ~= "trans" then
    for _, o in ipairs(online_streams(ctx.now)) do
      local e = o.entry
      local name_ok = not present(p.StreamName)
        or (query_type == "strict" and e.StreamName == p.StreamName)
        or (query_type == "fuzzy" and find(e.StreamName, p.StreamName, 1, true) ~= nil)
      if e.DomainName == p.DomainName and (not present(p.AppName) or e.AppName == p.AppName)
        and name_ok then
        matched[#matched + 1] = e
      end
    end
  end
  return {
    PageNum = page.number,
    PageSize = page.size,
    TotalNum = #matched,
    TotalPage = ceil(#matched / page.size),
    OnlineInfo = { LiveStreamOnlineInfo = page_of(matched, page, function(e)
      local v = {
        DomainName = e.DomainName, AppName = e.AppName, StreamName = e.StreamName,
        PublishTime = e.PublishTime,
      }
      if only == "no" then
        v.PublishUrl = "rtmp://" .. e.DomainName .. "/" .. e.AppName .. "/" .. e.StreamName
        v.PublishDomain = e.DomainName
        v.PublishType = "edge"
        v.ClientIp = e.ClientIp
        v.ServerIp = "127.0.0.1"
        v.Transcoded = "no"
      end
      return v
    end) },
  }, { applied = true }
end

-------------------------------------------------------------------------------
-- Pull-to-push tasks

--- Brings the block list up to now (the ticker's call): the forbids whose
-- end passed leave it.
function M.tick(now)
  purge(now)
end

--- State for /_emulator/state: every stream, evaluated at time now; a
-- forbidden one with its end (ends_at, ISO 8601 UTC) and what set it
-- (ends_by: "resume_time", or "default", 6 months after the forbid).
function M.snapshot(now)
  purge(now)
  local out = {}
  for key, s in pairs(streams) do
    local blocked = is_blocked(s, now)
    out[key] = {
      DomainName = s.DomainName, AppName = s.AppName, StreamName = s.StreamName,
      status = blocked and "forbidden" or "normal",
      ends_at = blocked and clock.format_iso8601(s.ends_at) or nil, ends_by = blocked and s.ends_by or nil,
      ResumeTime = s.ResumeTime, Oneshot = s.Oneshot,
      forbid_count = s.forbid_count, resume_count = s.resume_count,
      interrupt_count = s.interrupt_count, updated_at = s.updated_at, account = s.account,
    }
  end
  return out
end

-- The places the block list has in use now (every domain).
function M.places_in_use(now)
  purge(now)
  return places.in_use()
end

function M.reset()
  streams, online = {}, {}
  places.reset()
  remote_auth.reset()
end

return M
