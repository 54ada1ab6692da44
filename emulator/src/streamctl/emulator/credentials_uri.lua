-- The credentials URI (ALIBABA_CLOUD_CREDENTIALS_URI): GET /credentials-uri on
-- the Aliyun ports (HTTP and HTTPS) answers the credentials of the role
-- aliyun.credentials_uri.role names, as a credentials server does:
--
--   200 {"Code":"Success","AccessKeyId":"STS.…","AccessKeySecret":"…",
--        "SecurityToken":"…","Expiration":"YYYY-MM-DDThh:mm:ssZ"}
--
-- (the members in CREDENTIALS.md's order). The credentials are an STS
-- session of that role (sessions.lua): usable on the Live API, new ones when
-- less than rotation_lead_s is left. The SDKs define only the success answer;
-- the others are the emulator's: 404 {"Code":"NotConfigured","Message":...}
-- when no role is configured, 405 {"Code":"MethodNotAllowed",...} for a
-- method other than GET. Its request log entries have the action
-- "credentials-uri"; its counters are aliyun.counters["credentials-uri"]
-- (accepted: answered 200; refused: any other answer; faulted).

local json = require "streamctl.emulator.json"
local clock = require "streamctl.emulator.clock"
local sts = require "streamctl.emulator.sts"
local stats = require "streamctl.emulator.stats"

local pairs = pairs

local M = {}

M.PATH = "/credentials-uri"
M.ACTION = "credentials-uri"
M.SESSION_NAME = "credentials-uri"

local function answer(status, fields, order, extra)
  local headers = { ["Content-Type"] = "application/json" }
  for k, v in pairs(extra or {}) do
    headers[k] = v
  end
  return { status = status, headers = headers, body = json.encode(json.ordered(fields, order)) }
end

local ERROR_ORDER = { "Code", "Message" }

-- Serves one request; cfg: the aliyun settings. Returns a result as
-- aliyun.process does ({ status, headers, body, log }).
function M.process(req, cfg)
  local now = clock.now()
  local log = { action = M.ACTION, params = {}, applied = false }
  local res
  if req.method ~= "GET" then
    res = answer(405, { Code = "MethodNotAllowed", Message = req.method .. " is not allowed: GET only" },
      ERROR_ORDER, { Allow = "GET" })
    log.verdict, log.code = "rejected", "MethodNotAllowed"
  else
    local s, rotated = sts.rotating_credentials("credentials-uri", cfg.credentials_uri, M.SESSION_NAME, cfg, now)
    if not s then
      res = answer(404, { Code = "NotConfigured",
        Message = "no role is configured for the credentials URI (aliyun.credentials_uri.role)" }, ERROR_ORDER)
      log.verdict, log.code = "rejected", "NotConfigured"
    else
      res = answer(200, {
        Code = "Success",
        AccessKeyId = s.access_key_id,
        AccessKeySecret = s.secret,
        SecurityToken = s.security_token,
        Expiration = clock.format_iso8601(s.expires_at),
      }, { "Code", "AccessKeyId", "AccessKeySecret", "SecurityToken", "Expiration" })
      log.verdict, log.code, log.applied = "ok", "OK", true
      log.account_uid = s.account
      log.detail = { role = s.identity.role.arn, access_key_id = s.access_key_id,
                     expiration = clock.format_iso8601(s.expires_at), rotated = rotated }
    end
  end
  stats.count("aliyun", M.ACTION, log.verdict == "ok" and "accepted" or "refused", clock.real_now())
  log.status = res.status
  res.log = log
  res.applied = log.applied
  return res
end

-- The answer of an injected fault (http500, http503, throttle, code).
function M.fault_response(kind)
  if kind == "http503" then
    return answer(503, { Code = "ServiceUnavailable", Message = "injected fault" }, ERROR_ORDER)
  elseif kind == "throttle" then
    return answer(429, { Code = "Throttling", Message = "injected fault" }, ERROR_ORDER)
  elseif kind == "code" then
    return answer(200, { Code = "Failed", Message = "injected fault" }, ERROR_ORDER)
  end
  return answer(500, { Code = "InternalError", Message = "injected fault" }, ERROR_ORDER)
end

-- A success-shaped body for the malformed and truncated faults.
function M.placeholder_body()
  return json.encode(json.ordered({ Code = "Success", AccessKeyId = "STS.placeholder" }, { "Code", "AccessKeyId" }))
end

return M
