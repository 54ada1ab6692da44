--- ZEGOCLOUD Server API v2: stream control.
--
-- This file holds only ZEGO's rules: its actions and fields, the query layout
-- and MD5 signature, the Sequence rule and its return codes. The pipeline is
-- streamctl.pipeline.client.
-- @module streamctl.zego

local core = require "streamctl.core"
local client = require "streamctl.pipeline.client"
local options = require "streamctl.pipeline.options"
local keys = require "streamctl.pipeline.keys"
local encode = require "streamctl.base.encode"
local errors = require "streamctl.base.errors"
local sequence = require "streamctl.engine.sequence"
local stamp = require "streamctl.zego.stamp"
local validate = require "streamctl.base.validate"
local json = require "streamctl.base.json"
local redact = require "streamctl.base.redact"

local type, tostring, tonumber, pairs, ipairs, setmetatable = type, tostring, tonumber, pairs, ipairs, setmetatable
local floor = math.floor
local format, sub, find = string.format, string.sub, string.find
local concat, sort = table.concat, table.sort

local PROVIDER = "zego"
local MAX_IDS = 20

-- Every stream-control action is a GET with all parameters in the query;
-- `effect` says what a call does (streamctl.pipeline.provider).
-- `sequence` marks the actions whose Sequence streamctl fills in (and which the
-- service orders by it: `ordered`, see streamctl.engine.runner "Order"); `cap` is the
-- published limit per AppId in requests per second, `test_cap` the one of the
-- test environment (the ResumeRTCStreams page: 5/s for RTC forbid/resume).
local CDN_CODES = { [1] = "service", [2] = "validation", [3] = "auth" }
local operations = {
  ResumeRTCStreams = { effect = "resume", method = "GET", idempotent = true, sequence = true, ordered = true,
                       max_ids = MAX_IDS, cap = 20, test_cap = 5 },
  ForbidRTCStreams = { effect = "forbid", method = "GET", idempotent = true, sequence = true, ordered = true,
                       max_ids = MAX_IDS, cap = 20, test_cap = 5 },
  ResumeRTCStream = { effect = "resume", method = "GET", idempotent = true, sequence = true, ordered = true,
                      cap = 20, test_cap = 5 },
  ForbidRTCStream = { effect = "forbid", method = "GET", idempotent = true, sequence = true, ordered = true,
                      cap = 20, test_cap = 5 },
  DescribeRTCStreamState = { effect = "read", method = "GET", idempotent = true, sequence = true, cap = 40 },
  -- The CDN actions' pages list their own return codes: 1 failed, 2 a bad
  -- parameter, 3 authentication failed.
  ResumeCDNLiveStream = { effect = "resume", method = "GET", idempotent = true, cap = 20, codes = CDN_CODES },
  ForbidCDNLiveStream = { effect = "forbid", method = "GET", idempotent = true, cap = 20, codes = CDN_CODES },
  -- Rooms and their users (the room pages; caps as the pages give them). Closing a room and kicking a
  -- user are sent once: the room may have opened again, or the user come back, by a second copy.
  CloseRoom = { effect = "change", method = "GET", idempotent = false, cap = 1, test_cap = 1 },
  KickoutUser = { effect = "change", method = "GET", idempotent = false, cap = 50 },
  -- A room's stream rules: setting or deleting one twice leaves the same rule.
  SetForbidStreamRule = { effect = "change", method = "GET", idempotent = true, cap = 10 },
  DelForbidStreamRule = { effect = "change", method = "GET", idempotent = true, cap = 10 },
  -- (its page gives no cap: the strictest reading, the lowest any page gives)
  DescribeForbidStreamRules = { effect = "read", method = "GET", idempotent = true, cap = 1 },
}

-- Stream IDs: at most 256 of letters, digits, '-' and '_' (the strictest of
-- ZEGO's pages: streamctl.base.validate's "name" shape).
local STREAM_ID = { name = "stream_id", param = "StreamId", type = "string", required = true, max_len = 256,
                    shape = "name" }
local SEQUENCE = { name = "sequence", param = "Sequence", type = "integer", min = 0 }

-- A room's and a user's ID: their pages state no characters; the
-- strictest reading, a stream ID's (letters, digits, '-' and '_'), at most
-- 128 and 64 bytes (the SDK's limits).
local ROOM_ID = { name = "room_id", param = "RoomId", type = "string", required = true, max_len = 128, shape = "name" }
local REASON = { name = "custom_reason", param = "CustomReason", type = "string", max_len = 256,
                 note = "why, told to the users (at most 256 bytes)" }

local methods = {
  close_room = { action = "CloseRoom", fields = { ROOM_ID, REASON,
    { name = "room_close_callback", param = "RoomCloseCallback", type = "string", enum = { "true", "false" },
      note = "true: ZEGO sends its room-closed callback for this close too (default false)" } } },
  kickout_user = { action = "KickoutUser", fields = { ROOM_ID,
    { name = "user_ids", param = "UserId", type = "strings", required = true, min_items = 1, max_items = 5,
      max_len = 64, shape = "name" }, REASON } },
  set_forbid_stream_rule = { action = "SetForbidStreamRule", fields = { ROOM_ID, STREAM_ID,
    { name = "disable_audio", param = "DisableAudio", type = "integer", min = 0, max = 1, note = "1: no audio" },
    { name = "disable_video", param = "DisableVideo", type = "integer", min = 0, max = 1, note = "1: no video" },
    { name = "effective_time", param = "EffectiveTime", type = "integer", min = 1, max = 86400,
      note = "seconds the rule lasts (default 21600, at most 86400)" } } },
  del_forbid_stream_rule = { action = "DelForbidStreamRule", fields = { ROOM_ID, STREAM_ID } },
  describe_forbid_stream_rules = { action = "DescribeForbidStreamRules", fields = { ROOM_ID,
    { name = "stream_ids", param = "StreamId", type = "strings", required = true, min_items = 1, max_items = 10,
      max_len = 256, shape = "name" } } },
  resume_rtc_stream = { action = "ResumeRTCStream", fields = { STREAM_ID, SEQUENCE } },
  forbid_rtc_stream = { action = "ForbidRTCStream", fields = { STREAM_ID, SEQUENCE } },
  describe_rtc_stream_state = { action = "DescribeRTCStreamState", fields = { STREAM_ID, SEQUENCE } },
  resume_cdn_live_stream = { action = "ResumeCDNLiveStream", fields = { STREAM_ID } },
  forbid_cdn_live_stream = {
    action = "ForbidCDNLiveStream",
    -- ResumeTime: a UTC time, later than now and at most 30 days ahead (the page;
    -- without it the ban lasts a day).
    fields = { STREAM_ID, { name = "resume_time", param = "ResumeTime", type = "time",
                            note = "when the ban ends, at most 30 days ahead; without it the provider ends it "
                              .. "after a day, as the ForbidCDNLiveStream page says" } },
  },
}

-- Batch methods: any number of stream IDs, sent MAX_IDS at a time, each call
-- with its own Sequence; every stream reported.
local BATCH_IDS = { { name = "stream_ids", param = "StreamId[]", type = "strings", required = true, min_items = 1,
                      max_len = 256, shape = "name" } }
-- (the options every batch takes are added by streamctl.pipeline.batch)
local batches = {
  resume_rtc_streams = { action = "ResumeRTCStreams", fields = BATCH_IDS, list = "stream_ids",
                         param = "StreamId[]", chunk = MAX_IDS },
  forbid_rtc_streams = { action = "ForbidRTCStreams", fields = BATCH_IDS, list = "stream_ids",
                         param = "StreamId[]", chunk = MAX_IDS },
}

-- In the test environment every stream ID must carry the zegotest-<AppId>- prefix.
local function check_test_prefix(params, _, self)
  if not self.is_test then return nil end
  local prefix = "zegotest-" .. self.app_id .. "-"
  local ids = params["StreamId[]"] or params.StreamId
  if type(ids) ~= "table" then ids = { ids } end
  for i = 1, #ids do
    if sub(ids[i], 1, #prefix) ~= prefix then
      return format("stream ID %d must start with '%s' when is_test is true", i, prefix)
    end
  end
  return nil
end
for _, m in pairs(methods) do m.check = check_test_prefix end
local CDN_BAN_MAX = 30 * 24 * 3600
methods.forbid_cdn_live_stream.check = function(params, values, self)
  local t = values.resume_time
  if t and t <= self:now() then return "field 'resume_time' must be in the future" end
  if t and t > self:now() + CDN_BAN_MAX then return "field 'resume_time' must be at most 30 days ahead" end
  return check_test_prefix(params, values, self)
end
for _, m in pairs(batches) do m.check = check_test_prefix end

-- Return codes and what they mean for a retry.
local KIND = {
  [30002] = "throttled", [1010] = "throttled", [5007] = "throttled",
  [42001] = "server", [42002] = "server", [42003] = "server", [42004] = "server",
  [100000004] = "clock", [100000005] = "signature",
  [30005] = "auth", [30004] = "auth", [30006] = "validation",
}
local RETRYABLE = errors.RETRYABLE_KINDS

local function parse_app_id(v)
  if type(v) == "string" and find(v, "^%d+$") and #v <= 10 then v = tonumber(v) end
  if type(v) ~= "number" or v ~= floor(v) or v < 1 or v > 4294967295 then return nil end
  return validate.decimal(v)
end

local APP_ID_RULE = "must be an integer in 1..4294967295"

local rules = {
  provider = PROVIDER,
  defaults = { endpoint = "https://rtc-api.zego.im" },
  variables = keys.VARIABLES.zego,
  options = {
    { name = "app_id", type = "custom", check = function(v)
        local id = parse_app_id(v)
        if not id then return nil, APP_ID_RULE end
        return id
      end },
    { name = "server_secret", type = "custom", check = function(v)
        local why = options.secret_rule(v)
        if why then return nil, why end
        return v
      end },
    { name = "is_test", type = "boolean" },
    { name = "sequence", type = "object", methods = { "next_for", "peek_for", "record" },
      optional = { "renew", "later" } },
  },
  operations = operations,
  methods = methods,
  batches = batches,
}

-- When a forbid ends by itself, for the report (`at`: when it was
-- answered). ForbidCDNLiveStream's page: "The default banning duration is
-- 1 day, and the maximum supported banning duration is 30 days" (its
-- ResumeTime, else a day). The RTC forbids' pages give no end, default or
-- limit (ForbidRTCStreams: "the stream IDs will be recorded in the
-- background database"): they last until resumed.
local CDN_BAN_DEFAULT = 24 * 3600
function rules.ends(action, params, at)
  if action == "ForbidCDNLiveStream" then
    if params.ResumeTime then return (validate.parse_time(params.ResumeTime)), "resume_time" end
    return at + CDN_BAN_DEFAULT, "provider_default"
  end
  if action == "ForbidRTCStream" or action == "ForbidRTCStreams" then return nil, "until_resumed" end
  return nil
end

--- ZEGO repeats an array's key under the name its page gives it:
-- StreamId[]=a&StreamId[]=b (ForbidRTCStreams), UserId=a&UserId=b
-- (KickoutUser). A call's bare `StreamId` for a page's `StreamId[]` is
-- renamed by the published method's check (streamctl.pipeline.api).
function rules.array(name, list)
  return name, list
end

-- Every method ZEGO's Server API pages publish (loaded when a call first
-- needs it). One whose page gives no cap is paced at 1 a second, the
-- lowest any page gives (CloseRoom's): the strictest reading of a silent
-- page. One that takes a Sequence and a StreamId has streamctl's: its
-- Sequence taken at its first send, strictly increasing per stream.
rules.api = function() return require "streamctl.zego.api" end
rules.default_cap = 1
rules.bodies = { json = true } -- (a page's JSON body: json_body below)
function rules.derive(op, method)
  local seq, stream = false, false
  for _, p in ipairs(method.params) do
    if p.name == "Sequence" then seq = true end
    if p.name == "StreamId" or p.name == "StreamId[]" then stream = true end
  end
  if seq and stream then op.sequence, op.ordered = true, op.effect ~= "read" end
end

function rules.nonce()
  return core.random_hex(8)
end

--- ZEGO's SignatureNonce is 16 hex characters (8 random bytes).
function rules.nonce_rule(n)
  if type(n) ~= "string" or not n:find("^%x+$") or #n ~= 16 then return "is not 16 hex characters" end
  return nil
end

-- The common parameters: never taken from a caller.
rules.common_params = {}
for _, name in ipairs { "Action", "AppId", "SignatureNonce", "Timestamp", "Signature", "SignatureVersion",
                        "IsTest" } do
  rules.common_params[name:lower()] = true
end

-- The client's fields, from its options and its credentials (taken from
-- the options or the environment by the client: streamctl.credentials).
function rules.configure(_, o, creds)
  local secret = creds.server_secret
  return {
    app_id = creds.app_id,
    is_test = o.is_test,
    _secret = options.is_secret(secret) and secret or core.secret(secret),
  }
end

-- Its RTC calls carry a Sequence: the client makes the generator (the
-- option `sequence`, else one on the client's shared dict or Redis).
rules.sequenced = true

--- In the test environment, RTC forbid/resume have their own, lower caps
-- (asked once, when the client is made).
function rules.caps(self)
  if not self.is_test then return {} end
  -- (a published action's, when first asked: streamctl.pipeline.api's operation)
  return setmetatable({}, { __index = function(_, action)
    local op = operations[action]
    return op and op.test_cap or nil
  end })
end

--- The streams an action changes: RTC streams by ID, CDN streams apart
-- from them (another resource with the same ID); look-ups change nothing.
function rules.streams(action, params)
  local ids = params["StreamId[]"] or params.StreamId
  if ids == nil or operations[action].effect == "read" then return nil end
  if type(ids) ~= "table" then ids = { ids } end
  if operations[action].sequence then return ids end
  local out = {}
  for i, id in ipairs(ids) do out[i] = "cdn:" .. id end
  return out
end

function rules.account(self)
  return self.app_id
end

-- What a dry run hides: the Signature, which covers only AppId, nonce and
-- time, so a URL that shows it could be replayed for any action until its
-- Timestamp expires.
rules.redact = { query = { "Signature" } }

function rules.secrets()
  return {}
end

--- Checks the stream IDs and a caller's Sequence before anything is sent;
-- for a dry run (prepare), fills in the Sequence the generator would give,
-- without taking it.
function rules.complete(self, _, op, params, dry)
  local ids = params["StreamId[]"] or params.StreamId
  if op.max_ids and (type(ids) ~= "table" or #ids < 1 or #ids > op.max_ids) then
    return nil, format("parameter 'StreamId' must be an array of 1..%d stream IDs (got %s)", op.max_ids,
      type(ids) == "table" and #ids or type(ids))
  end
  if op.sequence and ids == nil then return nil, "parameter 'StreamId' is required" end
  if not op.sequence then return params end
  if params.Sequence ~= nil then
    local seq = tonumber(params.Sequence)
    if not seq or not params.Sequence:find("^%d+$") or #params.Sequence > 16 or seq > sequence.MAX_GIVEN then
      return nil, format("parameter 'Sequence' must be decimal digits of an integer at most %s "
        .. "(2^53 - 1 less room for the calls after it)", validate.decimal(sequence.MAX_GIVEN))
    end
    return params
  end
  if not dry then return params end
  local out = {}
  for k, v in pairs(params) do out[k] = v end
  out.Sequence = self._sequence:peek_for(stamp.keys(op, type(ids) == "table" and ids or { ids }))
  return out
end

-- The signing time's text (Unix seconds in decimal), made once a second.
local timestamp_of = encode.per_second(validate.decimal)

-- A value as its published type writes it in JSON: a number, a boolean or
-- JSON text as it is (each checked by its type already:
-- streamctl.pipeline.api), text as a string, a list as an array.
local RAW = { integer = true, long = true, number = true, boolean = true, json = true }
local function json_value(t, item, v)
  if t == "list" then
    if type(v) ~= "table" then v = { v } end
    local out = {}
    for i, x in ipairs(v) do out[i] = json_value(item or "string", nil, x) end
    return "[" .. concat(out, ",") .. "]"
  end
  return RAW[t] and v or json.string(v)
end

-- A published method whose page takes a JSON body (`op.body` "json"): its
-- body parameters as one JSON object, keys sorted, each by its published
-- type; the query keeps the rest. `params` and nil for any other.
local function json_body(op, params)
  local names = op.body == "json" and op.body_params
  if not names then return params, nil end
  local query, parts, names_sorted = {}, {}, {}
  for k in pairs(params) do names_sorted[#names_sorted + 1] = k end
  sort(names_sorted)
  for _, k in ipairs(names_sorted) do
    local p = names[k]
    if p then parts[#parts + 1] = json.string(k) .. ":" .. json_value(p.type, p.item, params[k])
    else query[k] = params[k] end
  end
  return query, "{" .. concat(parts, ",") .. "}"
end

function rules.build(self, action, op, params, now, nonce)
  local timestamp = timestamp_of(now)
  local signature = core.zego_sign(self.app_id, nonce, self._secret, timestamp)
  local body
  params, body = json_body(op, params)
  local business = core.canonical_query(params)
  -- The action is one of the operations' names and the nonce 16 hex
  -- characters (nonce_rule): neither needs encoding. One concatenation.
  return redact.with_hidden({
    provider = PROVIDER, action = action, method = op.method,
    url = self.endpoint.query_url .. "Action=" .. action .. "&AppId=" .. self.app_id .. "&SignatureNonce=" .. nonce
      .. "&Timestamp=" .. timestamp .. "&Signature=" .. signature .. "&SignatureVersion=2.0"
      .. (self.is_test ~= nil and (self.is_test and "&IsTest=true" or "&IsTest=false") or "")
      .. (business ~= "" and "&" .. business or ""),
    -- (room kept for a trace's headers)
    headers = { ["content-type"] = body and "application/json" or nil, traceparent = nil, tracestate = nil },
    body = body or "",
  }, signature)
end

function rules.decode(_, action, res)
  local status = res.status
  local data = json.decode(res.body)
  if type(data) ~= "table" or (status == 200 and type(data.Code) ~= "number") then
    return nil, errors.unreadable(PROVIDER, action, status, res.body, format("HTTP%d", status), "a ZEGO response")
  end
  local code = data.Code
  if status == 200 and code == 0 then return data end
  if code == nil then code = format("HTTP%d", status) end
  local codes = operations[action].codes
  local kind = (codes and codes[code]) or KIND[code] or (status >= 500 and "server") or "service"
  return nil, errors.new {
    provider = PROVIDER, action = action, http_status = status, code = code, kind = kind,
    message = data.Message and tostring(data.Message) or "", request_id = data.RequestId,
    retryable = RETRYABLE[kind] or false,
  }
end

--- ZEGO's step of a call (streamctl.pipeline.provider's `stamp`): its
-- Sequence (streamctl.zego.stamp).
rules.stamp = stamp.STAMP

local Zego = client.define(rules)
--- When a forbid (`action` and its service parameters, as sent) answered
-- at `at` ends by itself: Unix seconds and why ("resume_time", or
-- "provider_default": a CDN forbid's day); nil and "until_resumed" for
-- an RTC forbid; nil for another action.
Zego.forbid_ends = rules.ends
Zego.MAX_STREAM_IDS = MAX_IDS
return Zego
