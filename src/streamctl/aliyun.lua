--- Alibaba Cloud ApsaraVideo Live (RPC OpenAPI, version 2016-11-01).
--
-- This file holds only ApsaraVideo Live's rules: its operations and their
-- fields, the streams they change, and its own way of saying no (RetCode).
-- How Alibaba Cloud lays out, signs and answers a request is streamctl.pipeline.acs;
-- the pipeline is streamctl.pipeline.client.
-- @module streamctl.aliyun

local acs = require "streamctl.pipeline.acs"
local calendar = require "streamctl.base.calendar"
local client = require "streamctl.pipeline.client"
local errors = require "streamctl.base.errors"
local fields = require "streamctl.aliyun.fields"
local neighbours = require "streamctl.aliyun.neighbours"
local places = require "streamctl.aliyun.places"
local tasks = require "streamctl.aliyun.tasks"
local validate = require "streamctl.base.validate"

local type, tostring, tonumber, ipairs, pairs = type, tostring, tonumber, ipairs, pairs
local format = string.format

local VERSION = "2016-11-01"
local PROVIDER = "aliyun"
local MAX_URL = 2000
local WEEK = 7 * 24 * 3600

-- The Regions of a pull-to-push task. The pages disagree: CreateLivePullToPush's
-- lists five, the other task operations' (Stop, Update, Restart, Delete,
-- Describe, DescribeList) four, without cn-shenzhen. Where a create and its
-- follow-ups disagree, the follow-ups take what the create took: a task
-- that can be created in a Region can be stopped, changed, deleted and
-- looked up there (the stricter list would leave a relay nobody can stop).
local REGIONS = { "ap-southeast-1", "ap-southeast-5", "cn-beijing", "cn-shanghai", "cn-shenzhen" }

local block_list_check = places.lookup

-- The relay tasks' look-ups (streamctl.aliyun.tasks): a create's by its
-- DstUrl, an update's and a restart's by the task.
local TASKS_PAGE, our_listed_task, tasks_unproven = tasks.PAGE, tasks.ours, tasks.unproven
local task_check, has_settings = tasks.check, tasks.has_settings

-- HTTP method per operation, as the official SDKs send it; `cap`, the
-- published limit in requests per second per account (the operation pages;
-- ForbidLiveStream's of June 2026 says 20, replacing an older table's 200);
-- `recover` looks an unknown outcome up before the call is sent again;
-- `effect` says what a call does (streamctl.pipeline.provider).
local operations = {
  ResumeLiveStream = { effect = "resume",
                       method = "POST", idempotent = true, cap = 30, recover = block_list_check(false) },
  -- (at the block list's limit every forbid after it would be refused too: a
  -- batch sends no more, see `halt` in streamctl.pipeline.batch)
  ForbidLiveStream = { effect = "forbid",
                       method = "POST", idempotent = true, cap = 20, recover = block_list_check(true),
                       halt = { [places.FULL] = { code = "BlockListFull", message = "not sent: a forbid of this "
                         .. "run was refused at the block list's limit" } } },
  CreateLivePullToPush = {
    effect = "change", method = "POST", idempotent = false, cap = 10, answer = { "TaskId" },
    -- A create whose outcome is unknown is not sent again blindly: tasks for
    -- its DstUrl (unique across live tasks) are looked up first, and only
    -- one with every setting the create sent is taken for ours; a look-up
    -- that cannot see every task for it proves nothing (`unproven`).
    recover = {
      action = "DescribeLivePullToPushList",
      params = function(p) return { Region = p.Region, DstUrl = p.DstUrl, PageSize = tostring(TASKS_PAGE) } end,
      found = function(result, p)
        return our_listed_task(result, p)
      end,
      unproven = tasks_unproven,
    },
  },
  -- A stop answered "has stopped" after an attempt that may have taken effect
  -- was that attempt's doing.
  StopLivePullToPush = { effect = "change",
                         method = "GET", idempotent = true, cap = 10, done_codes = { CodeTaskHasStopped = true } },
  UpdateLivePullToPush = { effect = "change",
                           method = "POST", idempotent = true, cap = 10, recover = task_check(has_settings) },
  -- A restart interrupts the stream: not repeated blindly after an unknown outcome.
  RestartLivePullToPush = { effect = "change", method = "GET", idempotent = false, cap = 10,
                            recover = task_check(function(task) return tonumber(task.TaskStatus) == 1 end) },
  -- A delete answered "no such task" after an attempt that may have deleted it was that attempt's doing.
  DeleteLivePullToPush = { effect = "change",
                           method = "GET", idempotent = true, cap = 10, done_codes = { CodeTaskNotExist = true } },
  DescribeLivePullToPush = { effect = "read", method = "GET", idempotent = true, cap = 10 },
  DescribeLivePullToPushList = { effect = "read", method = "GET", idempotent = true, cap = 10 },
  DescribeLiveStreamsBlockList = { effect = "read", method = "POST", idempotent = true, cap = 50 },
  DescribeLiveStreamsOnlineList = { effect = "read", method = "POST", idempotent = true },
  DescribeLiveUserDomains = { effect = "read", method = "POST", idempotent = true, cap = 100 },
}
for action, op in pairs(neighbours.operations) do operations[action] = op end

local paging, with = fields.paging, fields.with
local DOMAIN, APP, STREAM_TYPE, STREAM, REGION_ID = fields.DOMAIN, fields.APP, fields.STREAM_TYPE, fields.STREAM,
  fields.REGION_ID
-- What ForbidLiveStream takes beyond the stream (single and batch alike).
local FORBID = {
  REGION_ID,
  { name = "oneshot", param = "Oneshot", type = "yesno",
    note = "yes: cut the current ingest without listing the stream, which takes no place on the block list "
      .. "and may publish again at once; default no" },
  { name = "resume_time", param = "ResumeTime", type = "time",
    note = "when the forbid ends; without it the provider ends it 6 months after the forbid, as the "
      .. "ForbidLiveStream page says" },
}
local REGION = { name = "region", param = "Region", type = "string", required = true, enum = REGIONS }
-- DstUrl: an rtmp:// URL (any case) with a host and a path, at most 2000
-- characters (the page).
local DST_URL_TEXT = { max_chars = MAX_URL }
local function dst_url(v)
  if type(v) ~= "string" then return nil, "must be a string" end
  local why = validate.text_rule(DST_URL_TEXT, v)
  if why then return nil, why end
  if not v:lower():find("^rtmp://[^/]+/.") then
    return nil, "must be an rtmp:// URL with a host and a path (rtmp://host/app/stream)"
  end
  return v
end

-- What a source's URLs may be pulled over, per the page: a live source over
-- RTMP, SRT or HTTP-FLV, its URLs in the scheme of its SourceProtocol; a
-- third-party (url) source, MP4 or HTTP-FLV over HTTP(S). (The SDK's enum
-- and one language of the page also name rtsp and flv: the strictest reading,
-- the pages' common list, is taken.) Every URL needs a host after its scheme.
-- A vod source's URLs are not constrained by the page.
local LIVE_SCHEMES = { rtmp = { "rtmp://" }, srt = { "srt://" }, ["http-flv"] = { "http://", "https://" } }
local LIVE_PROTOCOLS = "'rtmp', 'srt', 'http-flv'"
local SOURCE_SCHEMES = { url = { "http://", "https://" } }
local SOURCE_WHY = {
  live = "a live source is pulled over RTMP, SRT or HTTP-FLV, in the scheme of its source_protocol",
  url = "a third-party (url) source is MP4 or HTTP-FLV over HTTP(S)",
}

-- The first of `urls` whose scheme is not one of `schemes`: its index and the rule.
local function bad_scheme(urls, schemes)
  for i, u in ipairs(urls) do
    local ok = false
    for _, scheme in ipairs(schemes) do
      if u:sub(1, #scheme):lower() == scheme and u:find("^[^/]", #scheme + 1) then ok = true break end
    end
    if not ok then
      local shown = {}
      for j, scheme in ipairs(schemes) do shown[j] = "'" .. scheme .. "'" end
      return i, "must start with " .. table.concat(shown, " or ") .. " and a host"
    end
  end
  return nil
end

-- A pull-to-push task's settings: what a create takes (`for_create`: with
-- its required ones required) and, those marked `update`, what
-- UpdateLivePullToPush takes (its parameters in the service's API model).
local TASK_SETTINGS = {
  { name = "start_time", param = "StartTime", type = "time", create_requires = true, update = true },
  { name = "end_time", param = "EndTime", type = "time", create_requires = true, update = true },
  { name = "source_type", param = "SourceType", type = "string", enum = { "live", "vod", "url" },
    create_requires = true },
  -- (its values are checked with the source type: check_pull_to_push)
  { name = "source_protocol", param = "SourceProtocol", type = "string",
    note = "rtmp, srt or http-flv for a live source; ignored and not sent for vod and url" },
  { name = "source_urls", param = "SourceUrls", type = "strings", min_items = 1, max_items = 30, max_chars = MAX_URL,
    create_requires = true, update = true },
  { name = "dst_url", param = "DstUrl", type = "custom", check = dst_url, create_requires = true },
  { name = "repeat_number", param = "RepeatNumber", type = "integer", min = -1, update = true },
  { name = "file_index", param = "FileIndex", type = "integer", min = 0, update = true },
  { name = "offset", param = "Offset", type = "integer", min = 1, update = true },
  { name = "callback_url", param = "CallbackUrl", type = "string", max_chars = MAX_URL,
    prefix = { "http://", "https://" }, update = true },
  { name = "retry_interval", param = "RetryInterval", type = "integer", min = 60, max = 300 },
  { name = "retry_count", param = "RetryCount", type = "integer", min = 0 },
}

local function task_settings(for_create)
  local out = {}
  for _, f in ipairs(TASK_SETTINGS) do
    if for_create or f.update then
      local c = {}
      for k, v in pairs(f) do c[k] = v end
      c.required, c.create_requires, c.update = for_create and f.create_requires or nil, nil, nil
      out[#out + 1] = c
    end
  end
  return out
end
local TASK_ID = { name = "task_id", param = "TaskId", type = "string", required = true }

-- Cross-field rules of CreateLivePullToPush (times, URL counts, protocol).
local function check_pull_to_push(params, v, self)
  local now = self:now()
  if v.end_time <= v.start_time then return "field 'end_time' must be after start_time" end
  if v.end_time <= now then return "field 'end_time' must be in the future" end
  if v.end_time - v.start_time > WEEK then
    return "fields 'start_time'..'end_time' must span at most 7 days"
  end
  local n = #v.source_urls
  local schemes
  if v.source_type == "live" then
    if n ~= 1 then
      return format("field 'source_urls' must have exactly 1 URL when source_type is 'live' (got %d)", n)
    end
    local protocol = v.source_protocol
    if not protocol then return "field 'source_protocol' is required when source_type is 'live'" end
    schemes = LIVE_SCHEMES[protocol]
    if not schemes then
      return format("field 'source_protocol' must be one of %s when source_type is 'live' (%s)", LIVE_PROTOCOLS,
        SOURCE_WHY.live)
    end
  else
    if n > 30 then
      return format("field 'source_urls' must have at most 30 URLs when source_type is '%s' (got %d)",
        v.source_type, n)
    end
    params.SourceProtocol = nil -- read only for live sources: ignored for vod and url, and not sent
    schemes = SOURCE_SCHEMES[v.source_type]
  end
  local i, rule = bad_scheme(schemes and v.source_urls or {}, schemes)
  if i then
    return format("field 'source_urls' item %d %s when source_type is '%s'%s (%s)", i, rule, v.source_type,
      v.source_type == "live" and format(" and source_protocol '%s'", v.source_protocol) or "",
      SOURCE_WHY[v.source_type])
  end
  return nil
end

local methods = {
  resume_live_stream = { action = "ResumeLiveStream", fields = STREAM },
  forbid_live_stream = { action = "ForbidLiveStream", fields = with(STREAM, FORBID) },
  create_live_pull_to_push = {
    action = "CreateLivePullToPush",
    fields = with({
      REGION,
      { name = "task_name", param = "TaskName", type = "string", allow_empty = true },
      REGION_ID,
    }, task_settings(true)),
    check = check_pull_to_push,
  },
  stop_live_pull_to_push = {
    action = "StopLivePullToPush",
    fields = { REGION, TASK_ID, REGION_ID },
  },
  update_live_pull_to_push = {
    action = "UpdateLivePullToPush",
    fields = with({ REGION, TASK_ID, REGION_ID },
      task_settings(false)),
    check = function(_, v)
      if v.start_time and v.end_time and v.end_time <= v.start_time then
        return "field 'end_time' must be after start_time"
      end
      for _, f in ipairs(TASK_SETTINGS) do
        if f.update and v[f.name] ~= nil then return nil end
      end
      return "aliyun.update_live_pull_to_push needs at least one setting to change"
    end,
  },
  restart_live_pull_to_push = {
    action = "RestartLivePullToPush",
    fields = { REGION, TASK_ID, REGION_ID },
  },
  delete_live_pull_to_push = {
    action = "DeleteLivePullToPush",
    fields = { REGION, TASK_ID, REGION_ID },
  },
  describe_live_pull_to_push = { action = "DescribeLivePullToPush", fields = { REGION, TASK_ID } },
  describe_live_pull_to_push_list = {
    action = "DescribeLivePullToPushList",
    fields = with({
      REGION,
      { name = "dst_url", param = "DstUrl", type = "string", max_chars = MAX_URL },
      { name = "task_id", param = "TaskId", type = "string" },
      { name = "task_name", param = "TaskName", type = "string" },
    }, paging(100)),
  },
  describe_live_streams_block_list = {
    action = "DescribeLiveStreamsBlockList",
    fields = with({ DOMAIN }, paging(3000, "PageNum")),
  },
  describe_live_user_domains = {
    action = "DescribeLiveUserDomains",
    fields = with({
      { name = "live_domain_type", param = "LiveDomainType", type = "string", enum = { "liveVideo", "liveEdge" } },
      -- (a filter matched against the account's domains: a domain or a part of one, in the
      -- domain's shape; the page's example "*.aliyundoc.com" is not taken, the strictest reading)
      { name = "domain_name", param = "DomainName", type = "string", shape = "domain" },
      { name = "domain_search_type", param = "DomainSearchType", type = "string",
        enum = { "fuzzy_match", "pre_match", "suf_match", "full_match" } },
      { name = "domain_status", param = "DomainStatus", type = "string",
        enum = { "online", "offline", "configuring" } },
      { name = "region_name", param = "RegionName", type = "string" },
    }, { { name = "page_number", param = "PageNumber", type = "integer", min = 1, max = 100000 },
         { name = "page_size", param = "PageSize", type = "integer", min = 1, max = 50 } }),
  },
  describe_live_streams_online_list = {
    action = "DescribeLiveStreamsOnlineList",
    fields = with({
      DOMAIN,
      { name = "app_name", param = "AppName", type = "string", shape = "name", also = { "*" } },
      { name = "stream_name", param = "StreamName", type = "string", shape = "name" },
    }, paging(3000, "PageNum")),
  },
}

-- The stream-control family beyond forbid, resume and relays (streamctl.aliyun.neighbours).
for name, spec in pairs(neighbours.methods) do methods[name] = spec end

-- Batch methods: one call per stream, every stream of the list reported.
-- (the options every batch takes are added by streamctl.pipeline.batch)
local STREAMS = {
  DOMAIN, APP,
  { name = "stream_names", param = "StreamName", type = "strings", required = true, min_items = 1, shape = "name" },
  STREAM_TYPE,
}

local batches = {
  resume_live_streams = { action = "ResumeLiveStream", fields = STREAMS, list = "stream_names",
                          param = "StreamName" },
  -- (`check_places`: the block list's places read before anything is sent, its `preflight` below)
  forbid_live_streams = { action = "ForbidLiveStream", fields = with(STREAMS, FORBID, {
                            { name = "check_places", type = "boolean" },
                            { name = "places_limit", type = "integer", min = 0,
                              note = "the account's block-list places, where its quota differs from the "
                                .. "ForbidLiveStream page's 10000 (the default); the places in use are read "
                                .. "first, and a run that needs more than are left sends nothing" } }),
                          list = "stream_names", param = "StreamName" },
}

-- A ResumeTime already past would let the stream back at once: the forbid
-- answered ok would do nothing a caller asked for. Refused before sending,
-- as ZEGO's is.
local function future_resume_time(_, values, self)
  local t = values.resume_time
  if t and t <= self:now() then
    return "field 'resume_time' must be in the future (it is when the forbidden stream may publish again)"
  end
  return nil
end
methods.forbid_live_stream.check = future_resume_time
batches.forbid_live_streams.check = future_resume_time

-- `forbid_live_streams{ ..., check_places = true, places_limit = 10000 }`:
-- before anything is sent, the block list's places in use are read (every
-- domain of the account) and a batch that would take more than are left
-- is refused, `code` "BlockListFull" (its `places`: `{ used, limit, needed,
-- domains }`), nothing sent; a oneshot batch takes none. The report
-- carries `places`. docs/clients.md, "The block list's places".
batches.forbid_live_streams.preflight = { field = "check_places", check = places.check_batch, after = places.after }

-- Error codes and what they mean for a retry.
--- The streams an action changes (their order and settling are kept):
-- forbid and resume act on domain/app/stream.
local function streams(action, params)
  if action == "ResumeLiveStream" or action == "ForbidLiveStream" then
    local d, a, s = params.DomainName, params.AppName, params.StreamName
    -- (a `call` may leave one out or give a list: the service refuses it, unordered)
    if type(d) == "string" and type(a) == "string" and type(s) == "string" then
      return { d .. "/" .. a .. "/" .. s }
    end
  end
  return nil
end

-- A pull-to-push operation answers 200 with RetCode (0: done; any other
-- value: an error, with its Description) before anything else: a create
-- refused that way has no TaskId, and is a definite failure, not an unknown
-- outcome to look up and send again.
local function refused(action, status, data)
  if data.RetCode == nil or tonumber(data.RetCode) == 0 then return nil end
  return errors.new {
    provider = PROVIDER, action = action, http_status = status, code = "RetCode" .. tostring(data.RetCode),
    kind = "service", message = data.Description and tostring(data.Description) or "",
    request_id = data.RequestId, retryable = false,
  }
end

-- When a forbid ends by itself, for the report (`at`: when it was answered):
-- its ResumeTime; else, the Chinese page's note on ResumeTime, "Oneshot 参数为
-- no 时,ResumeTime 不传值时默认禁止直播流指定时间为 6 个月" (6 months); a
-- oneshot forbid cuts the ingest and lists nothing (no end).
local DEFAULT_MONTHS = 6
local function ends(action, params, at)
  if action ~= "ForbidLiveStream" then return nil end
  if params.Oneshot == "yes" or params.Oneshot == true then return nil, "oneshot" end
  if params.ResumeTime then return (validate.parse_time(params.ResumeTime)), "resume_time" end
  return calendar.add_months(at, DEFAULT_MONTHS), "provider_default"
end

local rules = acs.rules {
  provider = PROVIDER, version = VERSION, endpoint = "https://live.aliyuncs.com",
  operations = operations, methods = methods, batches = batches, streams = streams, refused = refused,
  ends = ends,
  -- Every method ApsaraVideo Live publishes (its metadata, loaded when a call first needs it); one
  -- whose cap streamctl does not hold is paced at 1 a second, under the lowest a Live page gives
  -- (DescribeLiveStreamsTotalCount's 100 a minute): the strictest reading of a cap not known.
  api = function() return require "streamctl.aliyun.api" end, default_cap = 1,
  -- who the keys belong to, when a shared budget needs the account: STS's client (loaded then)
  identity = function() return require "streamctl.credentials.sts" end,
}

local Aliyun = client.define(rules)
Aliyun.VERSION = VERSION
Aliyun.REGIONS = REGIONS
--- The rule an `account_id` breaks (a message fragment), or nil: for callers
-- that take one from elsewhere (the command line's ALIBABA_CLOUD_ACCOUNT_ID).
Aliyun.account_id_rule = acs.account_id_rule

--- When a forbid (`action` and its service parameters, as sent) answered
-- at `at` (Unix seconds) ends by itself: Unix seconds and why
-- ("resume_time", or "provider_default": 6 months); nil and "oneshot" for
-- a oneshot forbid (nothing listed); nil for another action.
Aliyun.forbid_ends = ends

--- The block list's places (streamctl.aliyun.places): `LIMIT`, `in_use(client, known)`.
Aliyun.places = places

return Aliyun
