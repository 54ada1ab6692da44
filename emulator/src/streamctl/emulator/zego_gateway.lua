-- The ZEGOCLOUD Server API v2 gateway in the emulator: one request through
-- its checks, in the service's order, to its action (zego_actions.lua), and
-- its answer (zego_response.lua) and log entry.
--
-- Order of checks (the first failure answers), with its Code:
--   Action empty 100000006, unknown (or not modelled) 100000007
--   HTTP method not GET (every modelled action's page names GET; no document
--       gives a code for another method: 2, "Incorrect input parameter", a strict choice)
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
--       1 s, see ratelimit.lua; a stranger's arrivals first, strangers.lua); the
--       log records retry_after_ms (no header)
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
-- and 30006 answers 2 (zego_actions.lua's CDN_CODES); 1 and 42001..42004 come
-- from a "code" fault.
--
-- A request on its way is a table `r`: the request (req, p its parameters),
-- now, rid, its log entry, and what the checks learn: spec (the action's
-- entry in zego_actions.ACTIONS), app_id, app, ids (its streams), seq.

local json = require "streamctl.emulator.json"
local clock = require "streamctl.emulator.clock"
local ratelimit = require "streamctl.emulator.ratelimit"
local stats = require "streamctl.emulator.stats"
local requestlog = require "streamctl.emulator.requestlog"
local response = require "streamctl.emulator.zego_response"
local actions = require "streamctl.emulator.zego_actions"

local ngx = ngx
local ngx_md5 = ngx.md5

local ipairs, tonumber, tostring = ipairs, tonumber, tostring
local abs = math.abs
local match, sub = string.match, string.sub
local MESSAGES = response.MESSAGES

local M = {}

local cfg

function M.init(settings)
  cfg = settings
end

-- The code of a request that is not a GET (every action's page names GET
-- only; no document gives a code for another method, see the header).
local BAD_METHOD = 2

local MAX_BATCH = 20

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

-- A request as it arrives: nothing checked yet, its log entry begun.
local function arrival(req)
  local now = clock.now()
  local rid = response.request_id()
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
  return { req = req, p = p, now = now, rid = rid, log = log }
end

-- The answer of request `r`, logged with `verdict`: { status, headers, body,
-- log, applied }. On an action whose page lists its own codes, the code
-- stands for its global one, whose message follows in parentheses.
local function finish(r, verdict, code, data, applied, message)
  local own = r.spec and r.spec.codes and r.spec.codes[code]
  if own then
    message = MESSAGES[own] .. " (" .. (message or MESSAGES[code]) .. ")"
    code = own
  end
  local res = response.respond(200, code, r.rid, data, message)
  local log = r.log
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

local function reject(r, code, message)
  return finish(r, "rejected", code, nil, false, message)
end

-------------------------------------------------------------------------------
-- The checks: each gives the refusal, or nothing when the request passes

-- The method and the action (r.spec from here on).
-- (an action it does not model answers 100000007 whatever its method: the
-- pages' POST actions, mixing and moderation, among them)
local function check_action(r)
  local action = r.p.Action
  if action == nil or action == "" then
    return reject(r, 100000006)
  end
  r.spec = actions.ACTIONS[action]
  if not r.spec then
    return reject(r, 100000007)
  end
  if r.req.method ~= "GET" then
    return reject(r, BAD_METHOD, "Incorrect input parameter: " .. tostring(r.req.method)
      .. " is not supported; use GET.")
  end
end

-- The common parameters' presence and form: AppId, SignatureNonce,
-- Timestamp, Signature, SignatureVersion.
local function check_common_parameters(r)
  local p = r.p
  local app_id = p.AppId
  if app_id == nil or not match(app_id, "^%d+$") or #app_id > 10 or tonumber(app_id) > 4294967295 then
    return reject(r, 100000001)
  end
  if p.SignatureNonce == nil or p.SignatureNonce == "" then
    return reject(r, 100000008)
  end
  if not match(p.SignatureNonce, "^%x+$") or #p.SignatureNonce ~= 16 then
    return reject(r, 2, "Incorrect input parameter: SignatureNonce must be 16 hexadecimal characters.")
  end
  if p.Timestamp == nil or p.Timestamp == "" then
    return reject(r, 100000002)
  end
  if not match(p.Timestamp, "^%d+$") then
    return reject(r, 100000003)
  end
  if p.Signature == nil or p.Signature == "" then
    return reject(r, 100000009)
  end
  if p.SignatureVersion == nil or p.SignatureVersion == "" then
    return reject(r, 100000013)
  end
  if p.SignatureVersion ~= "2.0" then
    return reject(r, 100000014)
  end
end

-- The app (r.app_id, r.app), the clock skew, the signature, IsTest.
local function check_app_and_signature(r)
  local p = r.p
  local app_id = p.AppId
  local app = cfg.zego.apps[app_id]
  if not app then
    return reject(r, 30005)
  end
  if abs(r.now - tonumber(p.Timestamp)) > cfg.zego.timestamp_tolerance_s then
    return reject(r, 100000004)
  end
  local expected = ngx_md5(app_id .. p.SignatureNonce .. app.secret .. p.Timestamp)
  if expected ~= p.Signature then
    return reject(r, 100000005)
  end
  if p.IsTest ~= nil and p.IsTest ~= "" then
    if (p.IsTest ~= "true" and p.IsTest ~= "false") or (p.IsTest == "true") ~= (app.test_env == true) then
      return reject(r, 30004)
    end
  end
  r.app_id, r.app = app_id, app
end

-- The budget of app `app_id` (its config entry `app`) for `action`, as the
-- rate limiter counts it: its key, qps and limiter (control_budgets.lua
-- names budgets by the same function).
function M.budget(app_id, app, action)
  local qps = cfg.zego.qps[action]
  local spec = actions.ACTIONS[action]
  if app.test_env == true and spec and spec.kind == "rtc" then
    qps = cfg.zego.test_env_qps
  end
  if app.qps and app.qps[action] then
    qps = app.qps[action]
  end
  return app_id .. "\0" .. action, qps, app.rate_limiter or cfg.zego.rate_limiter
end

-- The rate limit of the app and action; the log entry keeps the limiter's
-- time (rate_limit_time).
local function take_budget(r)
  local action = r.p.Action
  local key, qps, limiter = M.budget(r.app_id, r.app, action)
  local at = ratelimit.now()
  local allowed, retry_after = ratelimit.take(key, qps, limiter, at)
  r.log.rate_limit_time = at
  local real_now = clock.real_now()
  if not allowed then
    stats.count("zego", action, "throttled", real_now)
    r.log.retry_after_ms = retry_after
    r.log.rate_limiter = limiter
    return finish(r, "throttled", 30002, nil, false)
  end
  stats.count("zego", action, "accepted", real_now)
end

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
  -- (the strictest reading of ZEGO's stream ID page: at most 256 letters,
  -- digits, '-' and '_'; docs/development/emulator-fidelity.md, "Names")
  for _, id in ipairs(ids) do
    if #id > 256 or not match(id, "^[%w_%-]+$") then
      return nil, 30006
    end
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

-- The streams (r.ids) and the Sequence (r.seq).
local function read_streams(r)
  -- (a rule's or a room's action reads its own: zego_rules.lua, zego_rooms.lua)
  if r.spec.kind == "rule" or r.spec.kind == "room" then return nil end
  local ids, bad = stream_ids(r.req, r.spec, r.app_id, r.app)
  if not ids then
    return finish(r, "error", bad, nil, false)
  end
  r.log.streams = json.array(ids)
  r.ids = ids
  local seq = r.p.Sequence
  if seq == "" then
    seq = nil
  end
  if seq == nil and r.spec.kind == "rtc" then
    return finish(r, "error", 2, nil, false, "Incorrect input parameter: Sequence is required.")
  end
  if seq ~= nil and not match(seq, "^%d+$") then
    return finish(r, "error", 2, nil, false, "Incorrect input parameter: Sequence must be a decimal integer.")
  end
  r.seq = seq
end

-------------------------------------------------------------------------------
-- The pipeline

-- Verifies and executes one request. Returns { status, headers, body, log, applied }.
function M.process(req)
  local r = arrival(req)
  local refused = check_action(r) or check_common_parameters(r) or check_app_and_signature(r)
    or take_budget(r) or read_streams(r)
  if refused then
    return refused
  end
  return finish(r, actions.run(r))
end

return M
