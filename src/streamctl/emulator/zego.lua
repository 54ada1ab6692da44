-- ZEGOCLOUD Server API v2 (stream control) as rtc-api.zego.im answers it.
--
-- Every answer is HTTP 200 with {"Code","Message","RequestId","Data"}; Code 0 is
-- success. Injected faults http500/http503 (and an emulator crash, answered like
-- http500) are the only non-200 answers.
--
-- Order of checks (the first failure answers), with its Code:
--   HTTP method not GET (every action's page names GET; no document gives a
--       code for another method: 2, "Incorrect input parameter", a strict choice)
--   Action empty 100000006, unknown 100000007
--   AppId empty or not a uint32 100000001
--   SignatureNonce empty 100000008, not 16 hexadecimal characters (the common
--       parameter's page: "a 16-character hexadecimal random string") 2
--   Timestamp empty 100000002, not an integer 100000003
--   Signature empty 100000009
--   SignatureVersion empty 100000013, not "2.0" 100000014
--   AppId not configured 30005
--   |now - Timestamp| > 600 s 100000004
--   Signature != lowercase hex MD5(AppId .. SignatureNonce .. ServerSecret .. Timestamp)
--       100000005 (checked with ngx.md5; uppercase hex is rejected)
--   IsTest not "true"/"false", or not the app's environment 30004
--   rate limit per AppId and Action (20/s; RTC actions of a test_env app 5/s;
--       DescribeRTCStreamState 40/s) 30002; the app's rate_limiter, else
--       zego.rate_limiter (default sliding_window: at most qps accepted in any
--       1 s, see ratelimit.lua); the log records retry_after_ms (no header)
--   stream ids: StreamId[] (batch actions) must hold 1..20 non-empty entries,
--       counted as sent (duplicates included; each id is applied once), StreamId
--       (single actions) must be non-empty, and a test_env app's ids must start
--       with "zegotest-<AppId>-": otherwise 30006
--   Sequence missing on an RTC forbid/resume (single or batch: the pages mark it
--       required) 2, present but not a decimal integer 2; ForbidCDNLiveStream's
--       ResumeTime not a UTC time yyyy-MM-ddTHH:mm:ssZ, not later than now, or
--       more than 30 days ahead 2 (without one, the ban lasts the documented
--       default of one day)
--   ResumeCDNLiveStream on an app with cdn_resume_enabled=false 100000017
-- On the CDN actions, whose pages list their own codes (1 failed, 2 parameter
-- error, 3 authentication failed), 100000004, 100000005 and 30005 answer 3
-- and 30006 answers 2 (CDN_CODES); 1 and 42001..42004 come from a "code" fault.
--
-- Sequence rule (ForbidRTCStream(s) / ResumeRTCStream(s)): per (AppId, StreamId)
-- the emulator remembers the last APPLIED sequence and when it was applied
-- (emulator clock). A request whose Sequence is <= that one and arrives less than
-- sequence_window_s (10 s) after it is not executed for that stream; it is still
-- answered Code 0 "success" (the service does not report it), and the request log
-- lists it in stale_streams; when no stream of the request was applied the verdict
-- is "stale" and applied=false. Sequences are compared as arbitrary-length
-- decimal integers (never as floats).
--
-- DescribeRTCStreamState Data (the emulator's design; the service's is not
-- documented in PROVIDERS.md):
--   { "StreamId": "s", "RTCState": "normal" | "forbidden",
--     "CDNState": "normal" | "forbidden", "CDNResumeTime": <unix s or 0>,
--     "LastSequence": "<last applied sequence>" | "", "UpdatedAt": <unix s or 0> }
-- CDN actions answer Data [{"CdnType": <type>, "CdnResult": <string>}] for each
-- of the app's cdn_types (default ["ws"]); CdnResult is a string, as the pages
-- document it: their sample texts "success append purge tasks." (forbid) and
-- "Resume tasks added successfully." (resume).

local json = require "streamctl.emulator.json"
local clock = require "streamctl.emulator.clock"
local ratelimit = require "streamctl.emulator.ratelimit"
local stats = require "streamctl.emulator.stats"
local requestlog = require "streamctl.emulator.requestlog"
local zego_streams = require "streamctl.emulator.zego_streams"

local ngx = ngx
local ngx_md5 = ngx.md5

local pairs, ipairs, tonumber, tostring = pairs, ipairs, tonumber, tostring
local random, abs = math.random, math.abs
local format, match, gsub, sub = string.format, string.match, string.gsub, string.sub

local M = {}

local cfg

-- streams[AppId][StreamId] = { rtc, cdn, cdn_resume_at, last_sequence,
--   last_sequence_at, updated_at, forbid_count, resume_count }
local streams = {}

local MESSAGES = {
  [0] = "success",
  [1] = "Request failed.",
  [2] = "Incorrect input parameter.",
  [3] = "Authentication failed.",
  [30002] = "The number of requests per second has exceeded the API rate limit.",
  [30003] = "Internal error. Please retry.",
  [30004] = "IsTest is wrong.",
  [30005] = "Invalid AppId.",
  [30006] = "Invalid StreamId list.",
  [42001] = "Forbid or resume failed, please retry.",
  [42002] = "Forbid or resume failed, please retry.",
  [42003] = "Forbid or resume failed, please retry.",
  [42004] = "Forbid or resume failed, please retry.",
  [100000001] = "Invalid AppId format.",
  [100000002] = "Timestamp is null.",
  [100000003] = "Invalid Timestamp format.",
  [100000004] = "Signature expired.",
  [100000005] = "Invalid signature.",
  [100000006] = "Action is null.",
  [100000007] = "Unsupported Action.",
  [100000008] = "SignatureNonce is null.",
  [100000009] = "Signature is null.",
  [100000013] = "SignatureVersion is null.",
  [100000014] = "Unsupported SignatureVersion.",
  [100000015] = "API gateway internal error.",
  [100000017] = "The service is not available for the app.",
}

M.MESSAGES = MESSAGES

-- The CDN actions' pages list their own return codes (0 success, 1 failed,
-- 2 parameter error, 3 authentication failed) where the RTC ones use the
-- global table: each page is followed, its codes standing in for the global
-- ones of the same meaning (a wrong or expired signature, an unknown AppId:
-- 3; a missing or bad StreamId: 2).
local CDN_CODES = { [100000004] = 3, [100000005] = 3, [30005] = 3, [30006] = 2 }

local ACTIONS = {
  ForbidRTCStream = { kind = "rtc", batch = false, forbid = true },
  ResumeRTCStream = { kind = "rtc", batch = false, forbid = false },
  ForbidRTCStreams = { kind = "rtc", batch = true, forbid = true },
  ResumeRTCStreams = { kind = "rtc", batch = true, forbid = false },
  ForbidCDNLiveStream = { kind = "cdn", forbid = true, codes = CDN_CODES },
  ResumeCDNLiveStream = { kind = "cdn", forbid = false, codes = CDN_CODES },
  DescribeRTCStreamState = { kind = "describe" },
}

-- CdnResult, a string: the text of the pages' sample responses.
local CDN_RESULT = { forbid = "success append purge tasks.", resume = "Resume tasks added successfully." }

-- The code of a request that is not a GET (every action's page names GET
-- only; no document gives a code for another method, see the header).
local BAD_METHOD = 2

local MAX_BATCH = 20

-- ForbidCDNLiveStream's ResumeTime (the page: a UTC time such as
-- 2018-11-29T19:00:00Z; "a default push ban of 1 day and a maximum ... of 30 days").
local DEFAULT_CDN_BAN = 86400
local MAX_CDN_BAN = 30 * 86400

-- Whether a stream may not be published now: forbidden by ForbidRTCStream(s),
-- or by ForbidCDNLiveStream until its ResumeTime.
local function forbidden(app_id, stream_id, now)
  local s = streams[app_id] and streams[app_id][stream_id]
  return s ~= nil and (s.rtc == "forbidden" or M.cdn_state(s, now) == "forbidden")
end

function M.init(settings)
  cfg = settings
  zego_streams.init(settings, forbidden)
end

-- Streams being published and their callbacks (zego_streams.lua), through
-- /_emulator/zego_online.
M.publish = zego_streams.publish
M.stop = zego_streams.stop
M.online_snapshot = zego_streams.snapshot

local function request_id()
  return format("%d%09d", random(100000000, 999999999), random(0, 999999999))
end

function M.peek_action(req)
  return req.params.Action
end

local function body(code, rid, data, message)
  return json.encode({
    Code = code,
    Message = message or MESSAGES[code] or "error",
    RequestId = rid,
    Data = data == nil and json.null or data,
  })
end

local function respond(status, code, rid, data, message)
  return {
    status = status,
    headers = { ["Content-Type"] = "application/json; charset=utf-8" },
    body = body(code, rid, data, message),
  }
end

-- Compares two decimal integer strings (optional leading "-" not accepted):
-- returns -1, 0 or 1.
local function compare_decimal(a, b)
  a = gsub(a, "^0+(%d)", "%1")
  b = gsub(b, "^0+(%d)", "%1")
  if #a ~= #b then
    return #a < #b and -1 or 1
  end
  if a == b then
    return 0
  end
  return a < b and -1 or 1
end

M.compare_decimal = compare_decimal

local function stream_state(app_id, stream_id)
  local by_app = streams[app_id]
  if not by_app then
    by_app = {}
    streams[app_id] = by_app
  end
  local s = by_app[stream_id]
  if not s then
    s = { rtc = "normal", cdn = "normal", forbid_count = 0, resume_count = 0 }
    by_app[stream_id] = s
  end
  return s
end

local function cdn_state(s, now)
  if s.cdn == "forbidden" and s.cdn_resume_at and s.cdn_resume_at <= now then
    return "normal"
  end
  return s.cdn
end

M.cdn_state = cdn_state

-- Collects and validates the stream ids of a request: a list (each id once),
-- or nil and a code. A batch's StreamId[] entries are counted as sent,
-- duplicates included, against 1..20.
local function stream_ids(req, spec, app_id, app)
  local ids = {}
  if spec.batch then
    local seen, entries = {}, 0
    for _, kv in ipairs(req.param_list) do
      if kv[1] == "StreamId[]" then
        if kv[2] == "" then
          return nil, 30006
        end
        entries = entries + 1
        if not seen[kv[2]] then
          seen[kv[2]] = true
          ids[#ids + 1] = kv[2]
        end
      end
    end
    if entries < 1 or entries > MAX_BATCH then
      return nil, 30006
    end
  else
    local id = req.params.StreamId
    if id == nil or id == "" then
      return nil, 30006
    end
    ids[1] = id
  end
  if app.test_env then
    local prefix = "zegotest-" .. app_id .. "-"
    for _, id in ipairs(ids) do
      if sub(id, 1, #prefix) ~= prefix then
        return nil, 30006
      end
    end
  end
  return ids
end

-- The StreamIds a request names, as it carries them (StreamId[] entries in
-- order, repeats and empty ones kept; or its one StreamId), whatever its
-- action and whether or not it is valid: the request log's `stream_ids`, on
-- every entry (a throttled or fault-answered one too), so a reader can follow
-- a stream's requests and their Sequences in the order they arrived.
function M.request_stream_ids(req)
  local ids = json.array()
  for _, kv in ipairs(req.param_list or {}) do
    if kv[1] == "StreamId[]" or kv[1] == "StreamId" then
      ids[#ids + 1] = kv[2]
    end
  end
  return ids
end

-- Verifies and executes one request. Returns { status, headers, body, log, applied }.
function M.process(req)
  local now = clock.now()
  local rid = request_id()
  local p = req.params
  local log = {
    request_id = rid,
    action = p.Action,
    account = p.AppId,
    params = requestlog.redact(p),
    signature_version = p.SignatureVersion,
    sequence = p.Sequence,
    stream_ids = M.request_stream_ids(req),
  }

  local spec -- (the action's, once known: its page's codes)
  local function finish(verdict, code, data, applied, message)
    local own = spec and spec.codes and spec.codes[code]
    if own then
      message = MESSAGES[own] .. " (" .. (message or MESSAGES[code]) .. ")"
      code = own
    end
    local res = respond(200, code, rid, data, message)
    log.verdict = verdict
    log.code = code
    log.status = 200
    log.applied = applied
    if code ~= 0 then
      log.message = message or MESSAGES[code]
    end
    res.log = log
    res.applied = applied
    return res
  end

  if req.method ~= "GET" then
    return finish("rejected", BAD_METHOD, nil, false,
      "Incorrect input parameter: " .. tostring(req.method) .. " is not supported; use GET.")
  end
  local action = p.Action
  if action == nil or action == "" then
    return finish("rejected", 100000006, nil, false)
  end
  spec = ACTIONS[action]
  if not spec then
    return finish("rejected", 100000007, nil, false)
  end
  local app_id = p.AppId
  if app_id == nil or not match(app_id, "^%d+$") or #app_id > 10 or tonumber(app_id) > 4294967295 then
    return finish("rejected", 100000001, nil, false)
  end
  if p.SignatureNonce == nil or p.SignatureNonce == "" then
    return finish("rejected", 100000008, nil, false)
  end
  if not match(p.SignatureNonce, "^%x+$") or #p.SignatureNonce ~= 16 then
    return finish("rejected", 2, nil, false,
      "Incorrect input parameter: SignatureNonce must be 16 hexadecimal characters.")
  end
  if p.Timestamp == nil or p.Timestamp == "" then
    return finish("rejected", 100000002, nil, false)
  end
  if not match(p.Timestamp, "^%d+$") then
    return finish("rejected", 100000003, nil, false)
  end
  if p.Signature == nil or p.Signature == "" then
    return finish("rejected", 100000009, nil, false)
  end
  if p.SignatureVersion == nil or p.SignatureVersion == "" then
    return finish("rejected", 100000013, nil, false)
  end
  if p.SignatureVersion ~= "2.0" then
    return finish("rejected", 100000014, nil, false)
  end
  local app = cfg.zego.apps[app_id]
  if not app then
    return finish("rejected", 30005, nil, false)
  end
  if abs(now - tonumber(p.Timestamp)) > cfg.zego.timestamp_tolerance_s then
    return finish("rejected", 100000004, nil, false)
  end
  local expected = ngx_md5(app_id .. p.SignatureNonce .. app.secret .. p.Timestamp)
  if expected ~= p.Signature then
    return finish("rejected", 100000005, nil, false)
  end
  local test_env = app.test_env == true
  if p.IsTest ~= nil and p.IsTest ~= "" then
    if (p.IsTest ~= "true" and p.IsTest ~= "false") or (p.IsTest == "true") ~= test_env then
      return finish("rejected", 30004, nil, false)
    end
  end

  local qps = cfg.zego.qps[action]
  if test_env and spec.kind == "rtc" then
    qps = cfg.zego.test_env_qps
  end
  if app.qps and app.qps[action] then
    qps = app.qps[action]
  end
  local limiter = app.rate_limiter or cfg.zego.rate_limiter
  local allowed, retry_after = ratelimit.take(app_id .. "\0" .. action, qps, limiter)
  local real_now = clock.real_now()
  if not allowed then
    stats.count("zego", action, "throttled", real_now)
    log.retry_after_ms = retry_after
    log.rate_limiter = limiter
    return finish("throttled", 30002, nil, false)
  end
  stats.count("zego", action, "accepted", real_now)

  local ids, bad = stream_ids(req, spec, app_id, app)
  if not ids then
    return finish("error", bad, nil, false)
  end
  log.streams = json.array(ids)
  local seq = p.Sequence
  if seq == "" then
    seq = nil
  end
  if seq == nil and spec.kind == "rtc" then
    return finish("error", 2, nil, false, "Incorrect input parameter: Sequence is required.")
  end
  if seq ~= nil and not match(seq, "^%d+$") then
    return finish("error", 2, nil, false, "Incorrect input parameter: Sequence must be a decimal integer.")
  end

  if spec.kind == "describe" then
    local s = (streams[app_id] or {})[ids[1]]
    local data = {
      StreamId = ids[1],
      RTCState = s and s.rtc or "normal",
      CDNState = s and cdn_state(s, now) or "normal",
      CDNResumeTime = s and cdn_state(s, now) == "forbidden" and s.cdn_resume_at or 0,
      LastSequence = s and s.last_sequence or "",
      UpdatedAt = s and s.updated_at or 0,
    }
    return finish("ok", 0, data, true)
  end

  if spec.kind == "cdn" then
    local resume_at
    if spec.forbid and p.ResumeTime ~= nil and p.ResumeTime ~= "" then
      resume_at = clock.parse_iso8601(p.ResumeTime)
      if not resume_at then
        return finish("error", 2, nil, false,
          "Incorrect input parameter: ResumeTime must be a UTC time such as 2018-11-29T19:00:00Z.")
      end
      if resume_at <= now or resume_at > now + MAX_CDN_BAN then
        return finish("error", 2, nil, false,
          "Incorrect input parameter: ResumeTime must be later than now and at most 30 days ahead.")
      end
    elseif spec.forbid then
      resume_at = now + DEFAULT_CDN_BAN
    end
    if not spec.forbid and app.cdn_resume_enabled == false then
      return finish("error", 100000017, nil, false)
    end
    local s = stream_state(app_id, ids[1])
    if spec.forbid then
      s.cdn = "forbidden"
      s.cdn_resume_at = resume_at
      s.forbid_count = s.forbid_count + 1
    else
      s.cdn = "normal"
      s.cdn_resume_at = nil
      s.resume_count = s.resume_count + 1
    end
    s.updated_at = now
    local data = json.array()
    for _, cdn_type in ipairs(app.cdn_types or { "ws" }) do
      data[#data + 1] = { CdnType = cdn_type, CdnResult = spec.forbid and CDN_RESULT.forbid or CDN_RESULT.resume }
    end
    log.applied_streams = json.array({ ids[1] })
    return finish("ok", 0, data, true)
  end

  -- RTC forbid / resume, with the sequence rule.
  local applied, stale = json.array(), json.array()
  local window = cfg.zego.sequence_window_s
  for _, id in ipairs(ids) do
    local s = stream_state(app_id, id)
    local is_stale = false
    if seq and s.last_sequence and (now - s.last_sequence_at) < window
      and compare_decimal(seq, s.last_sequence) <= 0 then
      is_stale = true
    end
    if is_stale then
      stale[#stale + 1] = id
    else
      if spec.forbid then
        s.rtc = "forbidden"
        s.forbid_count = s.forbid_count + 1
      else
        s.rtc = "normal"
        s.resume_count = s.resume_count + 1
      end
      if seq then
        s.last_sequence = seq
        s.last_sequence_at = now
      end
      s.updated_at = now
      applied[#applied + 1] = id
    end
  end
  log.applied_streams = applied
  log.stale_streams = stale
  if #applied == 0 then
    return finish("stale", 0, nil, false)
  end
  return finish("ok", 0, nil, true)
end

-- The answer of an injected fault: http500 | http503 | throttle.
function M.fault_response(kind, fault)
  local rid = request_id()
  if kind == "code" then
    return respond(200, fault.code, rid, nil, fault.message)
  elseif kind == "http500" then
    return respond(500, 30003, rid)
  elseif kind == "http503" then
    return respond(503, 100000015, rid)
  end
  return respond(200, 30002, rid)
end

function M.placeholder_body()
  return body(0, request_id())
end

-- The limiter each app uses (its own rate_limiter or the provider's).
local function limiters()
  local out = {}
  for id, app in pairs(cfg.zego.apps) do
    out[id] = app.rate_limiter or cfg.zego.rate_limiter
  end
  return out
end

function M.snapshot(now)
  local out = {}
  for app_id, by_app in pairs(streams) do
    local o = {}
    for id, s in pairs(by_app) do
      o[id] = {
        rtc = s.rtc,
        cdn = cdn_state(s, now),
        cdn_resume_time = s.cdn_resume_at,
        last_sequence = s.last_sequence,
        last_sequence_at = s.last_sequence_at,
        forbid_count = s.forbid_count,
        resume_count = s.resume_count,
        updated_at = s.updated_at,
      }
    end
    out[tostring(app_id)] = o
  end
  return {
    streams = out,
    online = zego_streams.snapshot(),
    counters = stats.snapshot("zego"),
    rate_limiter = cfg.zego.rate_limiter,
    rate_limiters = limiters(),
  }
end

function M.reset()
  streams = {}
  zego_streams.reset()
end

return M
