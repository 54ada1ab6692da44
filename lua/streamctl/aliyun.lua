--- Alibaba Cloud ApsaraVideo Live (RPC OpenAPI, version 2016-11-01).
--
-- This file holds only Aliyun's rules: its operations and their fields, how a
-- request is laid out and signed (V1 HMAC-SHA1 or V3 ACS3-HMAC-SHA256), and
-- how its answers and error codes read. The pipeline is streamctl.client.
-- @module streamctl.aliyun

local core = require "streamctl.core"
local client = require "streamctl.client"
local options = require "streamctl.options"
local encode = require "streamctl.encode"
local errors = require "streamctl.errors"
local jsonenc = require "streamctl.json"
local validate = require "streamctl.validate"

local type, tostring, tonumber, ipairs, pairs = type, tostring, tonumber, ipairs, pairs
local format = string.format

local VERSION = "2016-11-01"
local PROVIDER = "aliyun"
local MAX_URL = 2000
local WEEK = 7 * 24 * 3600

-- Each operation's page lists its own Regions: CreateLivePullToPush's five,
-- the other task operations' four (no cn-shenzhen: a task created there
-- cannot be stopped, changed or looked up by the pages' rules).
local REGIONS = { "ap-southeast-1", "ap-southeast-5", "cn-beijing", "cn-shanghai", "cn-shenzhen" }
local TASK_REGIONS = { "ap-southeast-1", "ap-southeast-5", "cn-beijing", "cn-shanghai" }

local BLOCK_LIST_PAGE = 3000

-- Each client's STS security token, kept here rather than in the client
-- table, so that no dump of a client shows it (weak keys: it goes with its
-- client). Needed in plain text: it travels in the request as it is.
local TOKENS = setmetatable({}, { __mode = "k" })

-- After a forbid or resume whose outcome is unknown, the block list tells
-- whether it took effect, so it is not applied a second time. Only a complete
-- first page can prove a stream absent; otherwise the call is sent again
-- (harmless: both are idempotent).
local function block_list_check(want_listed)
  return {
    action = "DescribeLiveStreamsBlockList",
    params = function(p) return { DomainName = p.DomainName, PageSize = tostring(BLOCK_LIST_PAGE) } end,
    found = function(result, p)
      local urls = result.StreamUrls
      if type(urls) == "table" and type(urls.StreamUrl) == "table" then urls = urls.StreamUrl end
      if type(urls) ~= "table" then return nil end
      -- Entries are "domain/app/stream", and app and stream names may hold
      -- "/": match the whole entry, never a split of it.
      local exact = p.DomainName .. "/" .. p.AppName .. "/" .. p.StreamName
      local head, tail = p.DomainName .. "/", "/" .. p.StreamName
      local listed = false
      for _, u in ipairs(urls) do
        u = tostring(u)
        if u == exact or (p.AppName == "*" and #u > #head + #tail
            and u:sub(1, #head) == head and u:sub(-#tail) == tail) then
          listed = true
          break
        end
      end
      local complete = (tonumber(result.TotalNum) or #urls) <= #urls
      if listed == want_listed and (listed or complete) then
        return { RequestId = result.RequestId, Recovered = true }
      end
      return nil
    end,
  }
end

-- What a create sent, as DescribeLivePullToPushList shows it in TaskInfo
-- (parameter -> TaskInfo key; SourceUrls is compared as a list).
local CREATE_INFO = {
  TaskName = "TaskName", SourceType = "SourceType", SourceProtocol = "SourceProtocol", DstUrl = "DstUrl",
  StartTime = "StartTime", EndTime = "EndTime", RepeatNumber = "RepeatNumber", FileIndex = "FileIndex",
  Offset = "Offset", CallbackUrl = "CallbackURL", RetryCount = "RetryCount", RetryInterval = "RetryInterval",
}

local function same_urls(listed, sent)
  if sent == nil then return true end
  if type(listed) == "string" then return listed == sent end
  local want = jsonenc.decode(sent)
  if type(listed) ~= "table" or type(want) ~= "table" or #listed ~= #want then return false end
  for i = 1, #want do
    if listed[i] ~= want[i] then return false end
  end
  return true
end

-- Does `task` (a TaskList entry, or a DescribeLivePullToPush answer) show
-- every setting in `p` (a create's or an update's parameters)?
local function has_settings(task, p)
  local info = type(task) == "table" and task.TaskInfo
  if type(info) ~= "table" then return false end
  for param, key in pairs(CREATE_INFO) do
    local sent, shown = p[param], info[key]
    if shown == nil then shown = "" end
    if sent ~= nil and tostring(shown) ~= sent then return false end
  end
  return same_urls(info.SourceUrls, p.SourceUrls)
end

-- Is `task` the one this create made? The same settings (an unnamed create
-- does not make a named task), and not stopped (3) or exited (-1): a task
-- that someone else made for the same DstUrl, or an old one, is not ours.
local function is_our_task(task, p)
  local status = tonumber(type(task) == "table" and task.TaskStatus)
  if status == 3 or status == -1 then return false end
  if p.TaskName == nil and type(task.TaskInfo) == "table" and (task.TaskInfo.TaskName or "") ~= "" then
    return false
  end
  return has_settings(task, p)
end

-- After an update or a restart whose outcome is unknown, the task itself
-- (DescribeLivePullToPush) says whether it took effect: an update did if the
-- task shows every setting it sent; a restart did if the task runs (1).
local function task_check(done)
  return {
    action = "DescribeLivePullToPush",
    params = function(p) return { Region = p.Region, TaskId = p.TaskId } end,
    found = function(result, p)
      if done(result, p) then return { RequestId = result.RequestId, TaskId = p.TaskId, Recovered = true } end
      return nil
    end,
  }
end

-- HTTP method per operation, as the official SDKs send it; `cap`, the
-- published limit in requests per second per account (the operation pages;
-- ForbidLiveStream's of June 2026 says 20, replacing an older table's 200);
-- `recover` looks an unknown outcome up before the call is sent again.
local operations = {
  ResumeLiveStream = { method = "POST", idempotent = true, cap = 30, recover = block_list_check(false) },
  ForbidLiveStream = { method = "POST", idempotent = true, cap = 20, recover = block_list_check(true) },
  CreateLivePullToPush = {
    method = "POST", idempotent = false, cap = 10, answer = { "TaskId" },
    -- A create whose outcome is unknown is not sent again blindly: tasks for
    -- its DstUrl (unique across live tasks) are looked up first, and only
    -- one with every setting the create sent is taken for ours.
    recover = {
      action = "DescribeLivePullToPushList",
      params = function(p) return { Region = p.Region, DstUrl = p.DstUrl, PageSize = "100" } end,
      found = function(result, p)
        for _, task in ipairs(type(result.TaskList) == "table" and result.TaskList or {}) do
          if is_our_task(task, p) then
            return { RequestId = result.RequestId, TaskId = task.TaskId, Recovered = true }
          end
        end
        return nil
      end,
    },
  },
  -- A stop answered "has stopped" after an attempt that may have taken effect
  -- was that attempt's doing.
  StopLivePullToPush = { method = "GET", idempotent = true, cap = 10, done_codes = { CodeTaskHasStopped = true } },
  UpdateLivePullToPush = { method = "POST", idempotent = true, cap = 10, recover = task_check(has_settings) },
  -- A restart interrupts the stream: not repeated blindly after an unknown outcome.
  RestartLivePullToPush = { method = "GET", idempotent = false, cap = 10,
                            recover = task_check(function(task) return tonumber(task.TaskStatus) == 1 end) },
  -- A delete answered "no such task" after an attempt that may have deleted it was that attempt's doing.
  DeleteLivePullToPush = { method = "GET", idempotent = true, cap = 10, done_codes = { CodeTaskNotExist = true } },
  DescribeLivePullToPush = { method = "GET", idempotent = true, cap = 10 },
  DescribeLivePullToPushList = { method = "GET", idempotent = true, cap = 10 },
  DescribeLiveStreamsBlockList = { method = "POST", idempotent = true, cap = 50 },
  DescribeLiveStreamsOnlineList = { method = "POST", idempotent = true },
}

-- Paging fields; the stream lists call the page number PageNum.
local function paging(max_size, page_param)
  return {
    { name = "page_number", param = page_param or "PageNumber", type = "integer", min = 1 },
    { name = "page_size", param = "PageSize", type = "integer", min = 1, max = max_size },
  }
end

local function with(...)
  local out = {}
  for _, list in ipairs { ... } do
    for _, f in ipairs(list) do out[#out + 1] = f end
  end
  return out
end

local DOMAIN = { name = "domain_name", param = "DomainName", type = "string", required = true }
local APP = { name = "app_name", param = "AppName", type = "string", required = true }
local STREAM_TYPE = { name = "live_stream_type", param = "LiveStreamType", type = "string", enum = { "publisher" },
                      default = "publisher" }
local STREAM = { DOMAIN, APP, { name = "stream_name", param = "StreamName", type = "string", required = true },
                 STREAM_TYPE }
local REGION_ID = { name = "region_id", param = "RegionId", type = "string" }
-- What ForbidLiveStream takes beyond the stream (single and batch alike).
local FORBID = {
  REGION_ID,
  { name = "oneshot", param = "Oneshot", type = "yesno" },
  { name = "resume_time", param = "ResumeTime", type = "time" },
}
local CREATE_REGION = { name = "region", param = "Region", type = "string", required = true, enum = REGIONS }
local REGION = { name = "region", param = "Region", type = "string", required = true, enum = TASK_REGIONS }
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
      CREATE_REGION,
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
  describe_live_streams_online_list = {
    action = "DescribeLiveStreamsOnlineList",
    fields = with({
      { name = "domain_name", param = "DomainName", type = "string", required = true },
      { name = "app_name", param = "AppName", type = "string" },
      { name = "stream_name", param = "StreamName", type = "string" },
    }, paging(3000, "PageNum")),
  },
}

-- Batch methods: one call per stream, every stream of the list reported.
local STREAMS = with({
  DOMAIN, APP,
  { name = "stream_names", param = "StreamName", type = "strings", required = true, min_items = 1 },
  STREAM_TYPE,
}, validate.BATCH_OPTIONS)

local batches = {
  resume_live_streams = { action = "ResumeLiveStream", fields = STREAMS, list = "stream_names",
                          param = "StreamName" },
  forbid_live_streams = { action = "ForbidLiveStream", fields = with(STREAMS, FORBID), list = "stream_names",
                          param = "StreamName" },
}

-- Error codes and what they mean for a retry.
local KIND = {
  ["Throttling"] = "throttled", ["Throttling.User"] = "throttled", ["Throttling.Api"] = "throttled",
  ["InternalError"] = "server", ["ServiceUnavailable"] = "server",
  ["SignatureDoesNotMatch"] = "signature", ["IncompleteSignature"] = "signature",
  -- A copy of this very request arrived first (a transport, libcurl among them,
  -- re-sends once when a reused connection closes without an answer): what
  -- the first copy did is unknown, not wrong.
  ["SignatureNonceUsed"] = "duplicate",
  ["InvalidTimeStamp.Expired"] = "clock", ["InvalidTimeStamp.Format"] = "signature",
  ["InvalidAccessKeyId.NotFound"] = "auth", ["InvalidAccessKeyId.Inactive"] = "auth",
  ["InvalidSecurityToken.Expired"] = "auth", ["InvalidSecurityToken.MismatchWithAccessKey"] = "auth",
  ["InvalidSecurityToken.Malformed"] = "auth", ["Forbidden.RAM"] = "auth", ["Forbidden"] = "auth",
  ["InvalidParameter"] = "validation", ["MissingParameter"] = "validation",
}
local RETRYABLE = errors.RETRYABLE_KINDS

-- A credential: the rule it breaks, as streamctl.validate's custom checks say it.
local function header_value(v)
  local why = options.header_rule(v)
  if why then return nil, why end
  return v
end
local function token_value(v)
  local why = options.header_rule(v, options.MAX_TOKEN)
  if why then return nil, why end
  return v
end
local function secret_value(v)
  local why = options.secret_rule(v)
  if why then return nil, why end
  return v
end

-- The account UID: Alibaba Cloud counts an API's QPS per account, over every
-- AccessKey and STS session of its RAM users, so the pacing budget is keyed
-- by it (rules.account). Decimal digits, as a string: a UID has 16, more than
-- a Lua 5.1 number keeps exactly.
local MAX_ACCOUNT_ID = 32
local function account_id_rule(v)
  if type(v) ~= "string" or #v < 1 or #v > MAX_ACCOUNT_ID or v:find("%D") then
    return format("must be a string of 1 to %d decimal digits (the account UID)", MAX_ACCOUNT_ID)
  end
  return nil
end
local function account_id_value(v)
  local why = account_id_rule(v)
  if why then return nil, why end
  return v
end

local rules = {
  provider = PROVIDER,
  defaults = { endpoint = "https://live.aliyuncs.com" },
  options = {
    { name = "access_key_id", type = "custom", check = header_value },
    { name = "access_key_secret", type = "custom", check = secret_value },
    { name = "security_token", type = "custom", check = token_value },
    { name = "signature_version", type = "string", enum = { "v3", "v1" } },
    { name = "account_id", type = "custom", check = account_id_value },
    -- temporary credentials that renew themselves (streamctl.credentials.refresh)
    { name = "credentials", type = "object", methods = { "get" } },
  },
  operations = operations,
  methods = methods,
  batches = batches,
}

--- Aliyun sends an array parameter as one JSON array string: SourceUrls=["u1","u2"].
function rules.array(name, list)
  return name, jsonenc.string_array(list)
end

function rules.nonce()
  return core.uuid4()
end

--- A nonce goes into a header (V3) or the signed query (V1): 1..64 printable
-- characters (the official SDKs send a UUID).
function rules.nonce_rule(n)
  if type(n) ~= "string" or n == "" then return "is not a non-empty string" end
  if #n > 64 or n:find("[^%w%-_.~]") then return "is not 1..64 of A-Z a-z 0-9 - _ . ~" end
  return nil
end

-- The common parameters of both signature versions: never taken from a caller.
rules.common_params = {}
for _, name in ipairs { "Action", "Version", "Format", "AccessKeyId", "SignatureMethod", "SignatureVersion",
                        "SignatureNonce", "SignatureType", "Timestamp", "SecurityToken", "Signature" } do
  rules.common_params[name:lower()] = true
end

-- The client's fields, from its options and its credentials (taken from
-- the options or the environment by the client: streamctl.credentials);
-- the token is kept in TOKENS.
function rules.configure(self, o, creds)
  if creds.credentials then
    return { account_id = o.account_id, signature_version = o.signature_version or "v3",
             _holder = creds.credentials }
  end
  local secret = creds.access_key_secret
  TOKENS[self] = creds.security_token
  return {
    access_key_id = creds.access_key_id,
    account_id = o.account_id,
    signature_version = o.signature_version or "v3",
    _secret = options.is_secret(secret) and secret or core.secret(secret),
  }
end

--- The streams an action changes (their order and settling are kept):
-- forbid and resume act on domain/app/stream.
function rules.streams(action, params)
  if action == "ResumeLiveStream" or action == "ForbidLiveStream" then
    local d, a, s = params.DomainName, params.AppName, params.StreamName
    -- (a `call` may leave one out or give a list: the service refuses it, unordered)
    if type(d) == "string" and type(a) == "string" and type(s) == "string" then
      return { d .. "/" .. a .. "/" .. s }
    end
  end
  return nil
end

--- The budget's owner: the account UID when `account_id` is given, so that
-- every key of one account shares one budget (in a shared store: Redis,
-- shared_dict, one rate_limit_store); else the AccessKeyId, a budget of its
-- own, which over-sends when several keys of one account run at once.
function rules.account(self)
  return self.account_id or self.access_key_id or ("source " .. tostring(self._holder.source or self._holder))
end

-- The credentials to sign with now: the client's own, or its holder's
-- current ones (each attempt, retries included, asks); or nil and why.
local function signer(self)
  local h = self._holder
  if not h then return self.access_key_id, self._secret, TOKENS[self] end
  local c, err = h:get()
  if not c then return nil, err end
  return c.access_key_id, c.access_key_secret, c.security_token
end

-- What a dry run hides: V1's Signature and SecurityToken parameters, V3's
-- signature in Authorization and its token header.
rules.redact = {
  query = { "Signature", "SecurityToken" },
  headers = { authorization = "signature", ["x-acs-security-token"] = "all" },
}

function rules.secrets(self)
  return { TOKENS[self] }
end

local function query_url(self, q)
  return q ~= "" and self.endpoint.query_url .. q or self.endpoint.url .. "/"
end

-- SHA-256 of the empty body (every request's body is empty), written out:
-- hashing it when the module loads would start OpenSSL's digests in every
-- process that requires streamctl (2 MB and a millisecond). spec/02 checks it.
local EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

-- The signing time's text (ISO 8601, UTC), made once a second.
local timestamp_of = encode.per_second(core.utc_timestamp)

function rules.build(self, action, op, params, now, nonce)
  local access_key_id, secret, token = signer(self)
  if not access_key_id then
    secret.action = action
    return nil, secret
  end
  local method = op.method
  local timestamp = timestamp_of(now)
  if self.signature_version == "v1" then
    params.Action = action
    params.Version = VERSION
    params.Format = "JSON"
    params.AccessKeyId = access_key_id
    params.SignatureMethod = "HMAC-SHA1"
    params.SignatureVersion = "1.0"
    params.SignatureNonce = nonce
    params.Timestamp = timestamp
    -- (params is the call's own, signed again on a retry: every common
    -- parameter is set each time, the token cleared when there is none)
    params.SecurityToken = token
    local _, url = core.aliyun_sign_v1(method, params, secret, self.endpoint.query_url) -- (the URL, made in C)
    return {
      provider = PROVIDER, action = action, method = method, url = url,
      headers = { host = self.endpoint.host }, body = "",
    }
  end
  local headers = {
    host = self.endpoint.host,
    ["x-acs-action"] = action,
    ["x-acs-version"] = VERSION,
    ["x-acs-date"] = timestamp,
    ["x-acs-signature-nonce"] = nonce,
    ["x-acs-content-sha256"] = EMPTY_SHA256,
  }
  if token then
    headers["x-acs-accesskey-id"] = access_key_id
    headers["x-acs-security-token"] = token
  end
  local authorization, _, _, query = core.aliyun_sign_v3 {
    method = method, path = "/", query = params, headers = headers, body = "",
    access_key_id = access_key_id, access_key_secret = secret,
  }
  headers.authorization = authorization
  return {
    provider = PROVIDER, action = action, method = method,
    url = query_url(self, query), headers = headers, body = "",
  }
end

-- A 2xx whose JSON is not the operation's answer ({}, [], no RequestId, a
-- create without TaskId): an answer came back, but not one to trust.
local function not_the_answer(action, status, data, why)
  return errors.new {
    provider = PROVIDER, action = action, http_status = status, code = "InvalidResponse", kind = "response",
    message = format("HTTP %d with JSON that is not the %s answer (%s)", status, action, why),
    request_id = type(data.RequestId) == "string" and data.RequestId or nil,
    retryable = false, outcome_unknown = true,
  }
end

function rules.decode(_, action, res)
  local status, body = res.status, res.body
  local data = jsonenc.decode(body)
  local headers = res.headers or {}
  if type(data) ~= "table" then
    return nil, errors.unreadable(PROVIDER, action, status, body, "ServiceUnavailable", "JSON")
  end
  if status >= 200 and status < 300 and data.Code == nil then
    if type(data.RequestId) ~= "string" or data.RequestId == "" then
      return nil, not_the_answer(action, status, data, "no RequestId")
    end
    -- The pull-to-push operations answer 200 with RetCode (0: done; any
    -- other value: an error, with its Description) before anything else:
    -- a create refused that way has no TaskId, and is a definite failure,
    -- not an unknown outcome to look up and send again.
    if data.RetCode ~= nil and tonumber(data.RetCode) ~= 0 then
      return nil, errors.new {
        provider = PROVIDER, action = action, http_status = status, code = "RetCode" .. tostring(data.RetCode),
        kind = "service", message = data.Description and tostring(data.Description) or "",
        request_id = data.RequestId, retryable = false,
      }
    end
    for _, field in ipairs(operations[action].answer or {}) do
      if data[field] == nil then return nil, not_the_answer(action, status, data, "no " .. field) end
    end
    return data
  end
  local code = data.Code and tostring(data.Code) or format("HTTP%d", status)
  local kind = KIND[code] or (code:find("^Throttling") and "throttled") or (status >= 500 and "server") or "service"
  local retry_after = tonumber(headers["x-acs-retry-after"])
  local duplicate = kind == "duplicate"
  return nil, errors.new {
    provider = PROVIDER, action = action, http_status = status, code = code, kind = kind,
    message = data.Message and tostring(data.Message) or "", request_id = data.RequestId,
    retryable = RETRYABLE[kind] or (duplicate and operations[action].idempotent) or false,
    outcome_unknown = duplicate or nil,
    retry_after_ms = retry_after,
  }
end

local Aliyun = client.define(rules)
Aliyun.VERSION = VERSION
Aliyun.REGIONS = REGIONS
--- The rule an `account_id` breaks (a message fragment), or nil: for callers
-- that take one from elsewhere (the command line's ALIBABA_CLOUD_ACCOUNT_ID).
Aliyun.account_id_rule = account_id_rule
return Aliyun
