-- ApsaraVideo Live operations (API version 2016-11-01) and their state.
--
-- Each operation receives the verified request's parameters (name -> value) and
-- a context { account_id, account, now (emulator time), cfg } and returns either
--   fields, info          -- success: response fields (RequestId is added by the
--                            caller), info.applied (state changed or read done),
--                            info.detail (what happened, for the request log)
-- or
--   nil, code, message    -- an error code from the table in aliyun.lua
--
-- State (global to the emulator, not per account; `account` records who wrote):
--   streams["<domain>/<app>/<stream>"] = { DomainName, AppName, StreamName,
--       status = "forbidden" | "normal"  (as of now: a passed ResumeTime reads "normal"),
--       ResumeTime, Oneshot, forbid_count, resume_count, interrupt_count,
--       updated_at, account }
--   online["<domain>/<app>/<stream>"] = { DomainName, AppName, StreamName,
--       PublishTime, ClientIp }: streams being published, set through the
--       control API (the emulator has no publishers); a forbid takes a stream
--       offline and a blocked one cannot be marked online
--   tasks["<TaskId>"] = { TaskId, info (TaskInfo, with Region), start_at, end_at,
--       stopped, created_at, stopped_at, updated_at, restarted_at, restart_count,
--       account }; TaskStatus is computed (task_status), not stored
--
-- Pull-to-push task lifecycle, from the operations' pages:
--   * A task runs from StartTime to EndTime and "automatically stops and is
--     deleted" at EndTime (CreateLivePullToPush): from EndTime on it is gone, its
--     DstUrl is free and every operation answers CodeTaskNotExist. Evaluated
--     lazily, against the emulator clock, before anything reads the tasks.
--   * TaskStatus: 0 before StartTime, 1 running, 2 recovering (its source is
--     down: a source_down fault, task_events.lua), 3 stopped by
--     StopLivePullToPush or offline once its retries ran out. Each change is
--     a callback to the task's CallbackUrl (task_events.lua).
--     -1 (exited) is never seen: an exited task is deleted at once.
--     TaskExitReason is only returned for an exited task, so it never shows.
--   * StopLivePullToPush stops a running task; it "does not affect tasks that
--     are not running": a stopped one answers CodeTaskHasStopped, one that has
--     not started is refused (InvalidParameter, a strict choice) and unchanged.
--     A stopped task stays until its EndTime; RestartLivePullToPush restarts it.
--   * RestartLivePullToPush: a running task is stopped and started, a stopped
--     one started; before StartTime it "does not take effect": refused
--     (InvalidParameter, a strict choice).
--   * DeleteLivePullToPush removes a task in any state (a running one stops for
--     good); afterwards the task is unknown (CodeTaskNotExist).
--   * UpdateLivePullToPush: see UPDATABLE below.
--
-- Stream ingest callbacks: a stream marked online sends publish, one taken
-- offline (or cut by a forbid) publish_done (aliyun_notify.lua, which also
-- holds the Set/Describe/DeleteLiveStreamsNotifyUrlConfig operations).

local json = require "streamctl.emulator.json"
local clock = require "streamctl.emulator.clock"
local notify = require "streamctl.emulator.aliyun_notify"
local task_events = require "streamctl.emulator.task_events"

local type, pairs, ipairs, tonumber, next = type, pairs, ipairs, tonumber, next
local ceil, random = math.ceil, math.random
local format, match, find, lower, sub = string.format, string.match, string.find, string.lower, string.sub
local byte = string.byte
local sort, insert, remove, concat = table.sort, table.insert, table.remove, table.concat

local M = {}

local streams = {}
local tasks = {}
local task_order = {}   -- TaskIds in creation order
local online = {}       -- "<domain>/<app>/<stream>" -> what DescribeLiveStreamsOnlineList shows

-- Each operation's page lists its own Regions: CreateLivePullToPush's five;
-- Stop, Update, Restart, Delete, Describe and DescribeList name four (no
-- cn-shenzhen).
local function region_list(...)
  local set = {}
  for _, name in ipairs({ ... }) do
    set[name] = true
  end
  return { valid = set, text = concat({ ... }, ", ") }
end
local CREATE_REGIONS = region_list("ap-southeast-1", "ap-southeast-5", "cn-beijing", "cn-shanghai", "cn-shenzhen")
local TASK_REGIONS = region_list("ap-southeast-1", "ap-southeast-5", "cn-beijing", "cn-shanghai")
local SOURCE_TYPES = { live = true, vod = true, url = true }
-- What a source is pulled over (the page): a live source over RTMP, SRT or
-- HTTP-FLV, its URL in the scheme of its SourceProtocol; a third-party (url)
-- source, MP4 or HTTP-FLV over HTTP(S). A vod source's URLs are not
-- constrained. (The SDK's enum and one language of the page add rtsp and
-- flv: the strictest reading, the pages' common list, is taken.)
local SOURCE_PROTOCOLS = {
  rtmp = { "rtmp://" }, srt = { "srt://" }, ["http-flv"] = { "http://", "https://" },
}
local URL_SOURCE_SCHEMES = { "http://", "https://" }
local MAX_URL = 2000
local MAX_SPAN = 7 * 86400

local function missing(name)
  return nil, "Missing" .. name, name .. " is mandatory for this action."
end

local function invalid(name, why)
  local msg = "Specified parameter " .. name .. " is not valid."
  if why then
    msg = msg .. " " .. why
  end
  return nil, "InvalidParameter", msg
end

local function present(v)
  return v ~= nil and v ~= ""
end

local function parse_int(s)
  if type(s) ~= "string" or not match(s, "^%-?%d+$") then
    return nil
  end
  return tonumber(s)
end

-- An optional integer parameter: `default` when absent, its value when it is an
-- integer in min..max (max nil: no upper bound), else nil plus the
-- InvalidParameter error (with `why` in the message).
local function int_param(p, name, default, min, max, why)
  if not present(p[name]) then
    return default
  end
  local n = parse_int(p[name])
  if not n or n < min or (max and n > max) then
    return invalid(name, why)
  end
  return n
end

-- The number of characters of a UTF-8 string, or nil when it is not valid
-- UTF-8 (overlong forms, surrogates and code points above U+10FFFF included).
local function utf8_chars(s)
  local n, i, len = 0, 1, #s
  while i <= len do
    local c = byte(s, i)
    local extra, lo, hi = 0, 0x80, 0xBF
    if c >= 0xC2 and c <= 0xDF then
      extra = 1
    elseif c >= 0xE0 and c <= 0xEF then
      extra = 2
      if c == 0xE0 then
        lo = 0xA0
      elseif c == 0xED then
        hi = 0x9F
      end
    elseif c >= 0xF0 and c <= 0xF4 then
      extra = 3
      if c == 0xF0 then
        lo = 0x90
      elseif c == 0xF4 then
        hi = 0x8F
      end
    elseif c >= 0x80 then
      return nil
    end
    for k = 1, extra do
      local d = byte(s, i + k)
      if not d or d < (k == 1 and lo or 0x80) or d > (k == 1 and hi or 0xBF) then
        return nil
      end
    end
    i = i + 1 + extra
    n = n + 1
  end
  return n
end

M.utf8_chars = utf8_chars

-- Whether s is valid UTF-8 of at most max characters (the pages count URL
-- lengths in characters; text that is not UTF-8 is refused).
local function within_chars(s, max)
  local n = utf8_chars(s)
  return n ~= nil and n <= max
end

-- An optional URL parameter: nil when absent, its value when it has at most
-- MAX_URL characters, else nil plus the InvalidParameter error.
local function url_param(p, name)
  if not present(p[name]) then
    return nil
  end
  if not within_chars(p[name], MAX_URL) then
    return invalid(name, "At most 2000 characters (UTF-8).")
  end
  return p[name]
end

-- The paging of a Describe*List request: { number, size } from the parameter
-- `number_name` (>= 1, default 1) and PageSize (1..max_size, default
-- default_size); or nil plus the InvalidParameter error.
local function page_params(p, number_name, default_size, max_size)
  local number, code, msg = int_param(p, number_name, 1, 1)
  if not number then
    return nil, code, msg
  end
  local size
  size, code, msg = int_param(p, "PageSize", default_size, 1, max_size,
    "Valid values: 1 to " .. max_size .. ".")
  if not size then
    return nil, code, msg
  end
  return { number = number, size = size }
end

-- The items of list on that page (a JSON array), each passed through view when
-- one is given.
local function page_of(list, page, view)
  local out = json.array()
  for i = (page.number - 1) * page.size + 1, page.number * page.size do
    local item = list[i]
    if item == nil then
      break
    end
    out[#out + 1] = view and view(item) or item
  end
  return out
end

local function uuid()
  return format("%08x-%04x-4%03x-%04x-%04x%08x",
    random(0, 0x7fffffff), random(0, 0xffff), random(0, 0xfff),
    0x8000 + random(0, 0x3fff), random(0, 0xffff), random(0, 0x7fffffff))
end

local function domain_known(ctx, domain)
  local list = ctx.cfg.domains
  if not list or #list == 0 then
    return true
  end
  for _, d in ipairs(list) do
    if d == domain then
      return true
    end
  end
  return false
end

local function domain_not_found()
  return nil, "InvalidDomain.NotFound", "The domain provided does not exist in our records."
end

local function stream_key(domain, app, stream)
  return domain .. "/" .. app .. "/" .. stream
end

-- Whether a stream record is on the block list at time now.
local function is_blocked(s, now)
  if s.status ~= "forbidden" then
    return false
  end
  return s.resume_at == nil or s.resume_at > now
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

local function check_stream_params(p)
  for _, name in ipairs({ "DomainName", "AppName", "StreamName", "LiveStreamType" }) do
    if not present(p[name]) then
      return missing(name)
    end
  end
  if p.LiveStreamType ~= "publisher" then
    return invalid("LiveStreamType", "Valid value: publisher.")
  end
  return true
end

-- ForbidLiveStream: puts a stream on the block list (until ResumeTime, when
-- given); with Oneshot=yes it only cuts the current ingest and blocks nothing.
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
  local key, s = stream_record(p)
  s.account = ctx.account_id
  s.updated_at = ctx.now
  -- Either kind of forbid cuts the current ingest: the stream goes offline
  -- (its publish_done callback, aliyun_notify.lua).
  if online[key] then
    notify.stream_event("publish_done", online[key], ctx.now)
    online[key] = nil
  end
  if oneshot == "yes" then
    s.interrupt_count = s.interrupt_count + 1
    return {}, { applied = true, detail = { stream = key, oneshot = true } }
  end
  s.status = "forbidden"
  s.resume_at = resume_at
  s.ResumeTime = resume_at and p.ResumeTime or nil
  s.Oneshot = oneshot
  s.forbid_count = s.forbid_count + 1
  return {}, { applied = true, detail = { stream = key, resume_time = s.ResumeTime } }
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
  local resumed = json.array()
  local function resume(key, s)
    s.status = "normal"
    s.resume_at = nil
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
  local marked, refused = json.array(), json.array()
  for _, spec in ipairs(checked) do
    local key = stream_key(spec.domain, spec.app, spec.stream)
    local s = streams[key]
    if s and is_blocked(s, now) then
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
      end
    end
  end
  return marked, refused
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
      notify.stream_event("publish_done", online[key], now)
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
      notify.stream_event("publish_done", online[key], now)
      online[key] = nil
      removed[#removed + 1] = key
    end
  end
  return removed
end

-- The online streams at time now, sorted by "domain/app/stream": a list of
-- { key, entry }. Blocked streams are never online.
local function online_streams(now)
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

-- What a stop of a task that has not started, a restart before the start
-- time and an update of a setting the task's state does not allow answer. The
-- pages say such a request "does not take effect" and name no code for it; the
-- emulator refuses it with the generic code of their error tables (a strict
-- choice: a client never takes it for done).
local NOT_IN_THIS_STATE = "InvalidParameter"

-- Deletes the tasks that have run past their EndTime (the create's page: a
-- task "automatically stops and is deleted at the specified end time"). Run
-- lazily, before anything reads or changes the tasks.
local function purge_ended(now)
  -- First the tasks' health up to now (task_events.lua: the source faults,
  -- the retries and their callbacks).
  for _, id in ipairs(task_order) do
    task_events.evaluate(tasks[id], now)
  end
  task_events.prune(now)
  local kept = {}
  for _, id in ipairs(task_order) do
    local t = tasks[id]
    if now < t.end_at then
      kept[#kept + 1] = id
    else
      tasks[id] = nil
    end
  end
  task_order = kept
end

local function delete_task(id)
  tasks[id] = nil
  for i, tid in ipairs(task_order) do
    if tid == id then
      remove(task_order, i)
      break
    end
  end
end

-- Task status at time now (a task past its EndTime is already deleted):
-- 3 stopped by StopLivePullToPush, 0 before StartTime, then its health
-- (task_events.lua, evaluated up to now by purge_ended): 1 running, 2
-- recovering (retrying a failed source), 3 offline (retries exhausted).
local function task_status(t, now)
  if t.stopped then
    return 3
  end
  if now < t.start_at then
    return 0
  end
  return task_events.status(t)
end

-- The settings (the notify presets, the task event name).
function M.init(settings)
  notify.init(settings)
  task_events.init(settings)
end

-- Brings the tasks up to now (health, callbacks, EndTime): the ticker's call.
function M.tick(now)
  purge_ended(now)
end

-- A task as the Describe operations show it. TaskExitReason is only returned
-- for an exited task (-1), which is deleted at once here, so it never shows.
local function task_view(t, now)
  return {
    TaskId = t.TaskId,
    TaskStatus = task_status(t, now),
    TaskInfo = t.info,
  }
end

-- Region, one of `regions` (the operation's own list; default the task
-- operations').
local function check_region(p, regions)
  regions = regions or TASK_REGIONS
  if not present(p.Region) then
    return missing("Region")
  end
  if not regions.valid[p.Region] then
    return invalid("Region", "Valid values: " .. regions.text .. ".")
  end
  return true
end

local function illegal_duration(why)
  return nil, "InvalidParam.CodeIllegalDuration", "The task duration is illegal: " .. why
end

-- The rules every task's times follow (create and update): end after start,
-- end after now, at most 7 days between them.
local function check_times(start_at, end_at, now)
  if end_at <= start_at then
    return illegal_duration("EndTime must be later than StartTime.")
  end
  if end_at <= now then
    return illegal_duration("EndTime must be later than the current time.")
  end
  if end_at - start_at > MAX_SPAN then
    return illegal_duration("the span between StartTime and EndTime must not exceed 7 days.")
  end
  return true
end

local function parse_time(p, name)
  local t = clock.parse_iso8601(p[name])
  if not t then
    return invalid(name, "Use the UTC format yyyy-MM-ddTHH:mm:ssZ.")
  end
  return t
end

-- Does `url` start with one of `schemes` (any case), a host after it?
local function has_scheme(url, schemes)
  for _, scheme in ipairs(schemes) do
    if lower(sub(url, 1, #scheme)) == scheme and find(url, "^[^/]", #scheme + 1) then
      return true
    end
  end
  return false
end

-- The SourceUrls of a create or an update for a task of source_type (and
-- protocol, for live): a JSON array of 1 URL (live) or 1..30 (vod, url),
-- each at most 2000 characters, in a scheme the source is pulled over.
local function source_urls(p, source_type, protocol)
  local urls = json.decode(p.SourceUrls)
  if type(urls) ~= "table" or (next(urls) ~= nil and #urls == 0) then
    return invalid("SourceUrls", "Expected a JSON array of URLs.")
  end
  for _, u in ipairs(urls) do
    if type(u) ~= "string" or u == "" or not within_chars(u, MAX_URL) then
      return invalid("SourceUrls", "Each URL must be a non-empty string of at most 2000 characters.")
    end
  end
  local max_urls = source_type == "live" and 1 or 30
  if #urls < 1 or #urls > max_urls then
    return invalid("SourceUrls", format("SourceType %s takes 1 to %d URLs.", source_type, max_urls))
  end
  local schemes = source_type == "live" and SOURCE_PROTOCOLS[protocol] or source_type == "url" and URL_SOURCE_SCHEMES
  for _, u in ipairs(schemes and urls or {}) do
    if not has_scheme(u, schemes) then
      return invalid("SourceUrls", source_type == "live"
        and format("A live source is pulled over RTMP, SRT or HTTP-FLV: with SourceProtocol %s its URL "
          .. "must start with %s.", protocol, concat(schemes, " or "))
        or "A third-party (url) source is MP4 or HTTP-FLV over HTTP(S): its URLs must start with "
          .. "http:// or https://.")
    end
  end
  return json.array(urls)
end

-- A DstUrl as it is compared for uniqueness: the scheme and the host are
-- case-insensitive, the path is not.
local function dst_identity(dst)
  local authority, rest = match(dst, "^[^:]+://([^/]*)(.*)$")
  return "rtmp://" .. lower(authority or "") .. (rest or "")
end

-- The optional settings of a task, in the order they are checked: the
-- parameter, its check, then the check's default (create only), min, max and
-- why; `field` when TaskInfo names it differently.
local OPTIONAL_SETTINGS = {
  { "RepeatNumber", int_param, 0, -1, nil, "Valid values: -1 (loop), 0, or a positive count." },
  { "FileIndex", int_param, nil, 0 },
  { "Offset", int_param, nil, 1, nil, "The offset must be a whole number of seconds greater than 0." },
  { "CallbackUrl", url_param, field = "CallbackURL" },
  { "RetryInterval", int_param, 60, 60, 300, "Valid values: 60 to 300." },
  { "RetryCount", int_param, 3, 0 },
}

-- CreateLivePullToPush: validates every rule of the operation and stores a task.
-- SourceProtocol is read for live sources only (ignored, not refused, for vod
-- and url); RegionId is accepted; TaskName may be empty.
function M.CreateLivePullToPush(p, ctx)
  for _, name in ipairs({ "Region", "StartTime", "EndTime", "SourceType", "SourceUrls", "DstUrl" }) do
    if not present(p[name]) then
      return missing(name)
    end
  end
  local ok, code, msg = check_region(p, CREATE_REGIONS)
  if not ok then
    return nil, code, msg
  end
  local start_at, end_at
  start_at, code, msg = parse_time(p, "StartTime")
  if not start_at then
    return nil, code, msg
  end
  end_at, code, msg = parse_time(p, "EndTime")
  if not end_at then
    return nil, code, msg
  end
  ok, code, msg = check_times(start_at, end_at, ctx.now)
  if not ok then
    return nil, code, msg
  end
  local source_type = p.SourceType
  if not SOURCE_TYPES[source_type] then
    return invalid("SourceType", "Valid values: live, vod, url.")
  end
  local protocol
  if source_type == "live" then
    if not present(p.SourceProtocol) then
      return missing("SourceProtocol")
    end
    if not SOURCE_PROTOCOLS[p.SourceProtocol] then
      return invalid("SourceProtocol", "Valid values: rtmp, srt, http-flv.")
    end
    protocol = p.SourceProtocol
  end
  local urls
  urls, code, msg = source_urls(p, source_type, protocol)
  if not urls then
    return nil, code, msg
  end
  local dst = p.DstUrl
  if not find(lower(dst), "^rtmp://[^/]+/.") then
    return invalid("DstUrl", "The destination must be an rtmp:// URL with a host and a path.")
  end
  if not within_chars(dst, MAX_URL) then
    return invalid("DstUrl", "At most 2000 characters (UTF-8).")
  end
  local info = {
    TaskName = p.TaskName or "",
    Region = p.Region,
    SourceType = source_type,
    SourceProtocol = protocol,
    SourceUrls = urls,
    DstUrl = dst,
    StartTime = p.StartTime,
    EndTime = p.EndTime,
  }
  for _, o in ipairs(OPTIONAL_SETTINGS) do
    local value
    value, code, msg = o[2](p, o[1], o[3], o[4], o[5], o[6])
    if code then
      return nil, code, msg
    end
    info[o.field or o[1]] = value
  end
  purge_ended(ctx.now)
  local identity = dst_identity(dst)
  for _, id in ipairs(task_order) do
    if dst_identity(tasks[id].info.DstUrl) == identity then
      return nil, "CodeConfigAlreadyExists",
        "The task config already exists: another task pushes to the same DstUrl."
    end
  end
  if #task_order >= (ctx.cfg.max_pull_to_push_tasks or 1000) then
    return nil, "CodeNotEnoughResource", "Not enough resource to create the task."
  end
  local id = uuid()
  while tasks[id] do
    id = uuid()
  end
  tasks[id] = {
    TaskId = id, info = info, start_at = start_at, end_at = end_at,
    created_at = ctx.now, account = ctx.account_id, stopped = false, restart_count = 0,
  }
  task_order[#task_order + 1] = id
  return { RetCode = 0, Description = "OK", TaskId = id },
    { applied = true, detail = { task_id = id } }
end

local function task_not_exist()
  return nil, "CodeTaskNotExist", "The task does not exist."
end

-- The task a request names (Region and TaskId, checked in that order), or nil
-- plus the error. A task is found in its own Region only, unless any_region.
local function find_task(p, ctx, any_region)
  local ok, code, msg = check_region(p)
  if not ok then
    return nil, code, msg
  end
  if not present(p.TaskId) then
    return missing("TaskId")
  end
  purge_ended(ctx.now)
  local t = tasks[p.TaskId]
  if not t or (t.info.Region ~= p.Region and not any_region) then
    return task_not_exist()
  end
  return t
end

-- StopLivePullToPush: stops a running task. The page: it "stops running tasks
-- ... It does not affect tasks that are not running": a stopped task answers
-- CodeTaskHasStopped, one that has not started is refused and left as it is.
function M.StopLivePullToPush(p, ctx)
  local t, code, msg = find_task(p, ctx)
  if not t then
    return nil, code, msg
  end
  local status = task_status(t, ctx.now)
  if status == 3 then
    return nil, "CodeTaskHasStopped", "The task has been stopped."
  end
  if status == 0 then
    return nil, NOT_IN_THIS_STATE, "Specified parameter TaskId is not valid. The task is not running "
      .. "(TaskStatus 0): a stop does not affect a task before its StartTime."
  end
  t.stopped = true
  t.stopped_at = ctx.now
  task_events.emit(t, 3, ctx.now, "TriggerByUser")
  return { TaskId = t.TaskId }, { applied = true, detail = { task_id = t.TaskId } }
end

local RESTARTED_FROM = { [1] = "running", [2] = "recovering", [3] = "stopped" }

-- RestartLivePullToPush: a running task is stopped and started again, a
-- stopped one is started; before its StartTime a restart "does not take
-- effect", and is refused.
function M.RestartLivePullToPush(p, ctx)
  local t, code, msg = find_task(p, ctx)
  if not t then
    return nil, code, msg
  end
  local status = task_status(t, ctx.now)
  if status == 0 then
    return nil, NOT_IN_THIS_STATE, "Specified parameter TaskId is not valid. The task has not reached "
      .. "its StartTime (TaskStatus 0): a restart does not take effect."
  end
  t.stopped = false
  t.stopped_at = nil
  t.restart_count = t.restart_count + 1
  t.restarted_at = ctx.now
  task_events.running(t, ctx.now)
  return { TaskId = t.TaskId },
    { applied = true, detail = { task_id = t.TaskId, was = RESTARTED_FROM[status] } }
end

-- DeleteLivePullToPush: removes a task in any state; a running one is stopped
-- for good (it cannot be restarted: it no longer exists).
function M.DeleteLivePullToPush(p, ctx)
  local t, code, msg = find_task(p, ctx)
  if not t then
    return nil, code, msg
  end
  local status = task_status(t, ctx.now)
  delete_task(t.TaskId)
  if status == 1 or status == 2 then
    task_events.emit(t, 3, ctx.now, "TriggerByUser")
  end
  return { RetCode = 0, Description = "OK" },
    { applied = true, detail = { task_id = t.TaskId, status = status } }
end

-- What UpdateLivePullToPush may change, and in which task states (0 before
-- StartTime, 1 running, 3 stopped). The operation's page: Region only before
-- the start; while running (abnormal retries included) only CallbackUrl and
-- RepeatNumber ("RepeatTime"); once stopped everything but Region. Each
-- parameter's own note, where stricter, wins: StartTime "does not take effect"
-- once the task has started; SourceUrls, FileIndex and Offset can be changed
-- "only if the task is stopped".
local UPDATABLE = {
  { "Region", { [0] = true } },
  { "StartTime", { [0] = true } },
  { "EndTime", { [0] = true, [3] = true } },
  { "SourceUrls", { [3] = true } },
  { "RepeatNumber", { [0] = true, [1] = true, [2] = true, [3] = true } },
  { "FileIndex", { [3] = true } },
  { "Offset", { [3] = true } },
  { "CallbackUrl", { [0] = true, [1] = true, [2] = true, [3] = true } },
}

-- Settings a create takes that an update does not (they are not parameters of
-- UpdateLivePullToPush): refused rather than silently ignored.
local NOT_UPDATABLE = { "TaskName", "SourceType", "SourceProtocol", "DstUrl", "RetryInterval", "RetryCount" }

local STATE_NAMES = { [0] = "before its start time", [1] = "while it runs", [2] = "while it recovers",
  [3] = "once it is stopped" }

-- UpdateLivePullToPush: changes a task's settings, as its state allows.
function M.UpdateLivePullToPush(p, ctx)
  local ok, code, msg = check_region(p)
  if not ok then
    return nil, code, msg
  end
  if not present(p.TaskId) then
    return missing("TaskId")
  end
  for _, name in ipairs(NOT_UPDATABLE) do
    if p[name] ~= nil then
      return invalid(name, name .. " is not a parameter of UpdateLivePullToPush.")
    end
  end
  -- The values, checked before the task is looked up.
  local new = {}
  local start_at, end_at
  if present(p.StartTime) then
    start_at, code, msg = parse_time(p, "StartTime")
    if not start_at then
      return nil, code, msg
    end
  end
  if present(p.EndTime) then
    end_at, code, msg = parse_time(p, "EndTime")
    if not end_at then
      return nil, code, msg
    end
  end
  for _, o in ipairs(OPTIONAL_SETTINGS) do
    if present(p[o[1]]) then
      local value
      value, code, msg = o[2](p, o[1], nil, o[4], o[5], o[6])
      if code then
        return nil, code, msg
      end
      new[o.field or o[1]] = value
    end
  end
  local changing = {}
  for _, u in ipairs(UPDATABLE) do
    if present(p[u[1]]) and u[1] ~= "Region" then
      changing[#changing + 1] = u
    end
  end
  -- Region names the task's region, unless the task has not started (the
  -- only state in which it may be changed): look the task up by TaskId.
  purge_ended(ctx.now)
  local t = tasks[p.TaskId]
  if not t then
    return task_not_exist()
  end
  local status = task_status(t, ctx.now)
  local moving = t.info.Region ~= p.Region
  if moving then
    insert(changing, 1, UPDATABLE[1])
  end
  if #changing == 0 then
    return invalid("TaskId", "Specify at least one setting to update: "
      .. "StartTime, EndTime, SourceUrls, RepeatNumber, FileIndex, Offset, CallbackUrl or Region.")
  end
  for _, u in ipairs(changing) do
    if not u[2][status] then
      return nil, NOT_IN_THIS_STATE, "Specified parameter " .. u[1] .. " is not valid. It cannot be updated "
        .. STATE_NAMES[status] .. " (TaskStatus " .. status .. ")."
    end
  end
  local urls
  if present(p.SourceUrls) then
    urls, code, msg = source_urls(p, t.info.SourceType, t.info.SourceProtocol)
    if not urls then
      return nil, code, msg
    end
  end
  if start_at or end_at then
    ok, code, msg = check_times(start_at or t.start_at, end_at or t.end_at, ctx.now)
    if not ok then
      return nil, code, msg
    end
  end
  -- Apply.
  local changed = json.array()
  if moving then
    t.info.Region = p.Region
  end
  if start_at then
    t.start_at = start_at
    t.info.StartTime = p.StartTime
  end
  if end_at then
    t.end_at = end_at
    t.info.EndTime = p.EndTime
  end
  if urls then
    t.info.SourceUrls = urls
  end
  for field, value in pairs(new) do
    t.info[field] = value
  end
  for _, u in ipairs(changing) do
    changed[#changed + 1] = u[1]
  end
  t.updated_at = ctx.now
  return { RetCode = 0, Description = "OK" },
    { applied = true, detail = { task_id = t.TaskId, updated = changed } }
end

-- DescribeLivePullToPush: one task by TaskId.
function M.DescribeLivePullToPush(p, ctx)
  local t, code, msg = find_task(p, ctx)
  if not t then
    return nil, code, msg
  end
  local v = task_view(t, ctx.now)
  v.RetCode = 0
  v.Description = "OK"
  return v, { applied = true }
end

local function fuzzy(value, filter)
  if not present(filter) then
    return true
  end
  return value ~= nil and find(value, filter, 1, true) ~= nil
end

-- DescribeLivePullToPushList: the tasks of a Region, filtered (substring match
-- on DstUrl, TaskId, TaskName) and paged, in creation order.
function M.DescribeLivePullToPushList(p, ctx)
  local ok, code, msg = check_region(p)
  if not ok then
    return nil, code, msg
  end
  local page
  page, code, msg = page_params(p, "PageNumber", 10, 100)
  if not page then
    return nil, code, msg
  end
  purge_ended(ctx.now)
  local matched = {}
  for _, id in ipairs(task_order) do
    local t = tasks[id]
    if t.info.Region == p.Region and fuzzy(t.info.DstUrl, p.DstUrl) and fuzzy(id, p.TaskId)
      and fuzzy(t.info.TaskName, p.TaskName) then
      matched[#matched + 1] = t
    end
  end
  return {
    Total = #matched,
    PageNumber = page.number,
    PageSize = page.size,
    TaskList = page_of(matched, page, function(t)
      return task_view(t, ctx.now)
    end),
  }, { applied = true }
end

-- Operations that need a live domain on the account (CodeInvalidAliUid).
M.NEEDS_LIVE_DOMAIN = {
  CreateLivePullToPush = true, StopLivePullToPush = true, UpdateLivePullToPush = true,
  RestartLivePullToPush = true, DeleteLivePullToPush = true,
  DescribeLivePullToPush = true, DescribeLivePullToPushList = true,
}

-- The notify configuration operations (aliyun_notify.lua), given the
-- aliyun.domains check.
local function with_domains(op)
  return function(p, ctx)
    ctx.domain_known = function(domain)
      return domain_known(ctx, domain)
    end
    return op(p, ctx)
  end
end

M.OPERATIONS = {
  SetLiveStreamsNotifyUrlConfig = with_domains(notify.SetLiveStreamsNotifyUrlConfig),
  DescribeLiveStreamsNotifyUrlConfig = with_domains(notify.DescribeLiveStreamsNotifyUrlConfig),
  DeleteLiveStreamsNotifyUrlConfig = with_domains(notify.DeleteLiveStreamsNotifyUrlConfig),
  ForbidLiveStream = M.ForbidLiveStream,
  ResumeLiveStream = M.ResumeLiveStream,
  DescribeLiveStreamsBlockList = M.DescribeLiveStreamsBlockList,
  DescribeLiveStreamsOnlineList = M.DescribeLiveStreamsOnlineList,
  CreateLivePullToPush = M.CreateLivePullToPush,
  UpdateLivePullToPush = M.UpdateLivePullToPush,
  RestartLivePullToPush = M.RestartLivePullToPush,
  DeleteLivePullToPush = M.DeleteLivePullToPush,
  StopLivePullToPush = M.StopLivePullToPush,
  DescribeLivePullToPush = M.DescribeLivePullToPush,
  DescribeLivePullToPushList = M.DescribeLivePullToPushList,
}

-- State for /_emulator/state, evaluated at time now.
function M.snapshot(now)
  local s_out = {}
  for key, s in pairs(streams) do
    s_out[key] = {
      DomainName = s.DomainName, AppName = s.AppName, StreamName = s.StreamName,
      status = is_blocked(s, now) and "forbidden" or "normal",
      ResumeTime = s.ResumeTime, Oneshot = s.Oneshot,
      forbid_count = s.forbid_count, resume_count = s.resume_count,
      interrupt_count = s.interrupt_count, updated_at = s.updated_at, account = s.account,
    }
  end
  purge_ended(now)
  local t_out = {}
  for id, t in pairs(tasks) do
    local v = task_view(t, now)
    v.created_at = t.created_at
    v.stopped_at = t.stopped_at
    v.updated_at = t.updated_at
    v.restarted_at = t.restarted_at
    v.restart_count = t.restart_count
    v.account = t.account
    v.health = task_events.view(t)
    t_out[id] = v
  end
  local order = json.array()
  for i, id in ipairs(task_order) do
    order[i] = id
  end
  return { streams = s_out, tasks = t_out, task_order = order, online = M.online_snapshot(now),
    notify = notify.snapshot(), source_faults = task_events.snapshot() }
end

function M.reset()
  streams, tasks, task_order, online = {}, {}, {}, {}
  notify.reset()
  task_events.reset()
end

return M
