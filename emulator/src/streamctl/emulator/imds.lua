-- The ECS instance metadata service, as far as the credential providers use it
-- (CREDENTIALS.md §3): served on a port of its own when the launcher is given
-- --imds-port or --imds-listen (plain HTTP), provider "imds".
--
--   PUT /latest/api/token                         header X-aliyun-ecs-metadata-token-ttl-seconds:
--                                                 1..21600 -> 200 text/plain, the token
--   GET /latest/meta-data/ram/security-credentials/        -> 200 text/plain, the role name
--   GET /latest/meta-data/ram/security-credentials/<role>  -> 200 application/json
--       {"AccessKeyId","AccessKeySecret","Expiration","SecurityToken","LastUpdated","Code":"Success"}
--   (a GET takes the token in X-aliyun-ecs-metadata-token)
--
-- The role is aliyun.imds.role (identity.lua); its credentials are an STS
-- session of that role (sessions.lua), handed out until less than
-- rotation_lead_s of them is left, then new ones (the old stay valid until
-- their own Expiration). LastUpdated is when they were issued. The session
-- name is "i-emulator" (an instance id's place).
--
-- Errors (HTML bodies, as the service's 404 is: aliyun-cli#525; the statuses
-- are the emulator's, the documents give none):
--   400  the token PUT without a TTL header, or one that is not a whole number in 1..21600
--   401  a GET whose token header names no token, or an expired one (on the emulator
--        clock); also, in security hardening mode ("hardened": true, or POST
--        /_emulator/imds {"hardened": true}), a GET without a token. 401, not 403:
--        what is wrong is the credential (absent or not valid), which is what 401
--        means; it is also what the IMDSv2 design Alibaba's copies answers. A token
--        that is sent is always checked, hardened or not: a bad one is never read as v1.
--   404  any other path; a role name other than the role; no role configured
--   405  PUT on a metadata path, another method on the token path (header Allow)
-- In normal mode a GET without a token is served (IMDSv1).
--
-- Its request log entries (provider "imds") have the action "token", "role",
-- "credentials" or "other", the code "OK" or one of InvalidTTL, InvalidToken,
-- TokenRequired, NotFound, MethodNotAllowed, and a detail saying which way
-- the GET came ("v2" with a token, "v1" without). Its counters are per
-- action: accepted (200), refused (any other answer), faulted.

local json = require "streamctl.emulator.json"
local clock = require "streamctl.emulator.clock"
local stats = require "streamctl.emulator.stats"
local sessions = require "streamctl.emulator.sessions"
local sts = require "streamctl.emulator.sts"
local requestlog = require "streamctl.emulator.requestlog"
local bounded = require "streamctl.emulator.bounded"

local tonumber, pairs = tonumber, pairs
local sub, match = string.sub, string.match

local M = {}

M.TOKEN_PATH = "/latest/api/token"
M.ROLE_DIR = "/latest/meta-data/ram/security-credentials/"
M.TTL_HEADER = "x-aliyun-ecs-metadata-token-ttl-seconds"
M.TOKEN_HEADER = "x-aliyun-ecs-metadata-token"
M.MAX_TTL = 21600
M.SESSION_NAME = "i-emulator"

local MAX_TOKENS = 100000

local cfg
local listen          -- "addr:port" when served
local hardened        -- the mode now (config, or POST /_emulator/imds)
local tokens = bounded.new(MAX_TOKENS)   -- token -> expiry (emulator time)

function M.init(settings, listen_address)
  cfg = settings
  listen = listen_address
  hardened = cfg.aliyun.imds.hardened
end

-- Whether the emulator serves the metadata service (the launcher gave it an address).
function M.served()
  return listen ~= nil
end

function M.set_hardened(on)
  hardened = on and true or false
end

local REASONS = {
  [400] = "Bad Request", [401] = "Unauthorized", [404] = "Not Found", [405] = "Not Allowed",
  [500] = "Internal Server Error", [503] = "Service Temporarily Unavailable",
}

local function html(status)
  local title = status .. " " .. REASONS[status]
  return "<html>\r\n<head><title>" .. title .. "</title></head>\r\n<body>\r\n<center><h1>" .. title
    .. "</h1></center>\r\n</body>\r\n</html>\r\n"
end

local function text(status, body, content_type, extra)
  local headers = { ["Content-Type"] = content_type or "text/plain" }
  for k, v in pairs(extra or {}) do
    headers[k] = v
  end
  return { status = status, headers = headers, body = body }
end

function M.peek_action(req)
  local path = req.path
  if path == M.TOKEN_PATH then
    return "token"
  elseif path == M.ROLE_DIR then
    return "role"
  elseif sub(path, 1, #M.ROLE_DIR) == M.ROLE_DIR then
    return "credentials"
  end
  return "other"
end

local function loggable_headers(req)
  local out = {}
  for k, v in pairs(req.headers) do
    if match(k, "^x%-aliyun%-ecs%-metadata%-") then
      out[k] = v
    end
  end
  return requestlog.redact(out)
end

local function credentials_body(s)
  return json.encode(json.ordered({
    AccessKeyId = s.access_key_id,
    AccessKeySecret = s.secret,
    Expiration = clock.format_iso8601(s.expires_at),
    SecurityToken = s.security_token,
    LastUpdated = clock.format_iso8601(s.issued_at),
    Code = "Success",
  }, { "AccessKeyId", "AccessKeySecret", "Expiration", "SecurityToken", "LastUpdated", "Code" }))
end

-- Serves one request. Returns { status, headers, body, log }.
function M.process(req)
  local now = clock.now()
  local action = M.peek_action(req)
  local log = { action = action, headers = loggable_headers(req), params = {}, applied = false, detail = {} }
  local role = cfg.aliyun.imds.role and cfg.aliyun.roles[cfg.aliyun.imds.role]

  local function answer(res, code)
    log.code = code
    log.verdict = res.status == 200 and "ok" or "rejected"
    log.status = res.status
    res.log = log
    stats.count("imds", action, res.status == 200 and "accepted" or "refused", clock.real_now())
    return res
  end
  local function refuse(status, code, extra)
    return answer(text(status, html(status), "text/html", extra), code)
  end

  if action == "token" then
    if req.method ~= "PUT" then
      return refuse(405, "MethodNotAllowed", { Allow = "PUT" })
    end
    local ttl = req.headers[M.TTL_HEADER]
    ttl = ttl and match(ttl, "^%s*(%d+)%s*$") and tonumber(ttl)
    if not ttl or ttl < 1 or ttl > M.MAX_TTL then
      return refuse(400, "InvalidTTL")
    end
    local token = sessions.random_alnum(56)
    tokens:put(token, now + ttl)
    log.detail.ttl = ttl
    log.applied = true
    return answer(text(200, token), "OK")
  end

  if req.method ~= "GET" then
    return refuse(405, "MethodNotAllowed", { Allow = "GET" })
  end
  local token = req.headers[M.TOKEN_HEADER]
  if token ~= nil then
    local expiry = tokens:get(token)
    if not expiry or now >= expiry then
      return refuse(401, "InvalidToken")
    end
    log.detail.version = "v2"
  elseif hardened then
    return refuse(401, "TokenRequired")
  else
    log.detail.version = "v1"
  end

  if action == "role" and role then
    log.detail.role = role.name
    return answer(text(200, role.name), "OK")
  end
  if action == "credentials" and role and sub(req.path, #M.ROLE_DIR + 1) == role.name then
    local s, rotated = sts.rotating_credentials("imds", cfg.aliyun.imds, M.SESSION_NAME, cfg.aliyun, now)
    log.detail.role = role.name
    log.detail.access_key_id = s.access_key_id
    log.detail.expiration = clock.format_iso8601(s.expires_at)
    log.detail.rotated = rotated
    log.account_uid = s.account
    log.applied = true
    return answer(text(200, credentials_body(s), "application/json"), "OK")
  end
  return refuse(404, "NotFound")
end

-- The answer of an injected fault (only http500 and http503 replace an
-- answer here; faults.lua refuses the other replacing kinds but drop,
-- malformed and truncated for this provider).
function M.fault_response(kind)
  local status = kind == "http503" and 503 or 500
  return text(status, html(status), "text/html")
end

-- A success-shaped body for the malformed and truncated faults.
function M.placeholder_body(req)
  if M.peek_action(req) == "credentials" then
    return json.encode(json.ordered({ AccessKeyId = "STS.placeholder", Code = "Success" }, { "AccessKeyId", "Code" }))
  end
  return "placeholder"
end

-- For /_emulator/state (when served) and /_emulator/credentials.
function M.snapshot(now)
  local valid = 0
  for _, expiry in tokens:each() do
    if expiry > now then
      valid = valid + 1
    end
  end
  local s, rotations = sessions.rotating("imds")
  local settings = cfg.aliyun.imds
  return {
    served = listen ~= nil,
    listen = listen,
    role = settings.role,
    hardened = hardened,
    credential_lifetime_s = settings.credential_lifetime_s,
    rotation_lead_s = settings.rotation_lead_s,
    tokens = valid,
    current = sessions.summary(s),
    rotations = rotations,
    counters = stats.snapshot("imds"),
  }
end

function M.reset()
  tokens = bounded.new(MAX_TOKENS)
  hardened = cfg.aliyun.imds.hardened
end

return M
