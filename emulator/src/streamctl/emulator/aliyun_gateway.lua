-- The Alibaba Cloud OpenAPI gateway (RPC style) in front of ApsaraVideo Live
-- and STS: one request through its checks, in the gateway's order, to the
-- operation (aliyun_live.lua, sts.lua), and its answer and log entry.
-- Signatures: aliyun_signature.lua; nonces: aliyun_nonces.lua; answers and
-- error codes: aliyun_response.lua; products: aliyun_products.lua.
--
-- Keys: a configured AccessKeyId (config.lua), or one STS issued
-- (sessions.lua), which must carry its SecurityToken and is refused once
-- expired. AssumeRoleWithOIDC is anonymous: a request with no AccessKeyId,
-- Signature or Authorization that names it takes the short path below.
--
-- Order of checks (the first failure answers):
--   1. HTTP method GET or POST
--   2. V1: Format is JSON or XML (absent: XML, as the service defaults)
--   3. required common parameters (V1) / headers and Authorization syntax (V3)
--   4. SignatureMethod / SignatureVersion (V1)
--   5. Timestamp / x-acs-date format
--   6. AccessKeyId known
--   7. clock skew <= timestamp_tolerance_s (15 minutes)
--   8. V3: every x-acs-* header and host signed; x-acs-content-sha256 = SHA-256(body)
--   9. signature
--  10. security token (accounts configured with one, and issued STS keys:
--      MissingSecurityToken, InvalidSecurityToken.MismatchWithAccessKey),
--      then an issued key's expiry: InvalidSecurityToken.Expired (400,
--      "Specified SecurityToken is expired."; a code Alibaba Cloud's common
--      error list has, with no status given: 400 is the emulator's choice)
--  11. nonce not used within nonce_ttl_s (the nonce is recorded here, once the
--      signature is known good, so a throttled request still uses its nonce)
--  12. Action and Version name a Live or STS operation (an anonymous one,
--      AssumeRoleWithOIDC, sent signed: InvalidParameter, sts.lua)
--  13. rate limit per account and Action (ratelimit.lua): the account is the
--      key's "account" UID (config.lua), so every key of one UID draws on one
--      budget as Alibaba Cloud counts it, else the AccessKeyId alone; the
--      key's rate_limiter, else aliyun.rate_limiter (default sliding_window:
--      at most qps accepted in any 1 s; a refusal carries x-acs-retry-after,
--      the ms until the oldest accepted arrival leaves the window). An
--      issued STS key counts against its role's account. STS answers
--      Throttling on AssumeRole* (sts.lua). A stranger on the budget
--      (strangers.lua) has its arrivals counted first; a run-time cap
--      (POST /_emulator/qps) replaces the qps
--  14. Live: the key's RAM policy (ram.lua: its "actions", an STS session's
--      role's and session policy; Forbidden.RAM), then the account has Live
--      (LiveServiceNotFound) / a live domain (CodeInvalidAliUid)
--  15. the operation's own rules (aliyun_live.lua, sts.lua)
--
-- Anonymous requests (AssumeRoleWithOIDC): 1, 2, then Action, Version and
-- Timestamp required (Missing<Name>), 5, 7, 13 (the RoleArn's account), 15.
--
-- A request on its way is a table `r`: the request (req, p its parameters),
-- now, rid, v3, fmt, the product whose HostId errors name (the one the
-- request names, until the operation is known), its log entry, and what the
-- checks learn: ak, action, version, nonce, ts_text, token, auth (V3), account.

local clock = require "streamctl.emulator.clock"
local ratelimit = require "streamctl.emulator.ratelimit"
local stats = require "streamctl.emulator.stats"
local requestlog = require "streamctl.emulator.requestlog"
local live = require "streamctl.emulator.aliyun_live"
local sts_api = require "streamctl.emulator.sts"
local ram = require "streamctl.emulator.ram"
local sessions = require "streamctl.emulator.sessions"
local products = require "streamctl.emulator.aliyun_products"
local response = require "streamctl.emulator.aliyun_response"
local signature = require "streamctl.emulator.aliyun_signature"
local nonces = require "streamctl.emulator.aliyun_nonces"

local pairs, ipairs, tostring = pairs, ipairs, tostring
local abs = math.abs
local upper, sub = string.upper, string.sub

local M = {}

local cfg

function M.init(settings)
  cfg = settings
end

-- A key's entry: a configured one, or an issued STS session.
function M.lookup(ak)
  return cfg.aliyun.accounts[ak] or sessions.get(ak)
end

-- The budget of an account for `action`, as the rate limiter counts it: its
-- key, qps and limiter. The account is a UID (the "account" of its keys, an
-- STS session's role's), or else `ak`, a key that is an account of its own;
-- the two kinds of key are kept apart by their prefixes, so a key whose id
-- happens to be a UID never shares that account's window. entry: the key,
-- session or UID settings that may give qps and rate_limiter (nil: the
-- provider's). control_budgets.lua names budgets by the same function.
function M.budget(uid, ak, entry, action)
  local key = uid and ("uid\0" .. uid .. "\0" .. action) or ("key\0" .. ak .. "\0" .. action)
  local qps = entry and entry.qps and entry.qps[action] or cfg.aliyun.qps[action]
  local limiter = entry and entry.rate_limiter or cfg.aliyun.rate_limiter
  return key, qps, limiter
end

-- The headers of a V3 request worth logging (secrets redacted).
local function loggable_headers(req)
  local out = {}
  for k, v in pairs(req.headers) do
    if sub(k, 1, 6) == "x-acs-" or k == "host" or k == "content-type" or k == "authorization" then
      out[k] = v
    end
  end
  return requestlog.redact(out)
end

-- A request as it arrives: nothing checked yet, its log entry begun.
local function arrival(req)
  local now = clock.now()
  local rid = response.request_id()
  local v3 = products.is_v3(req)
  local log = {
    request_id = rid,
    params = requestlog.redact(req.params),
    signature_version = v3 and "ACS3-HMAC-SHA256" or "1.0",
  }
  if v3 then
    log.action = req.headers["x-acs-action"]
    log.headers = loggable_headers(req)
  else
    log.action = req.params.Action
    log.account = req.params.AccessKeyId
  end
  return {
    req = req, p = req.params, now = now, rid = rid, v3 = v3,
    fmt = response.format_of(req), product = products.peek_product(req), log = log,
  }
end

-------------------------------------------------------------------------------
-- Answers

-- The refusal of a request: its error answer, logged with `verdict`.
local function fail(r, verdict, code, message, extra_headers)
  local res = response.error_response(code, message, r.fmt, r.rid, extra_headers, r.product)
  local log = r.log
  log.verdict = verdict
  log.code = code
  log.message = response.message_of(code, message, r.product)
  log.status = res.status
  log.applied = false
  res.log = log
  res.applied = false
  return res
end

local function missing(r, name)
  return fail(r, "rejected", "Missing" .. name, name .. " is mandatory for this action.")
end

-- The answer of an operation's result: fields, info or nil, code, message, detail.
local function finish(r, fields, info, message, detail)
  local log = r.log
  if not fields then
    log.detail = detail
    return fail(r, "error", info, message)
  end
  fields.RequestId = r.rid
  local res = response.render(200, r.action .. "Response", fields, r.fmt, r.rid)
  log.verdict = "ok"
  log.code = "OK"
  log.status = 200
  log.applied = info.applied and true or false
  log.detail = info.detail
  res.log = log
  res.applied = log.applied
  return res
end

-- Takes the request from a budget (M.budget's uid, ak and entry). Returns
-- the throttled answer, or nil when the request may go on. The log entry
-- keeps the limiter's time (rate_limit_time).
local function take_budget(r, uid, ak, entry)
  local action = r.action
  local key, qps, limiter = M.budget(uid, ak, entry, action)
  local at = ratelimit.now()
  local allowed, retry_after = ratelimit.take(key, qps, limiter, at)
  r.log.rate_limit_time = at
  local real_now = clock.real_now()
  if not allowed then
    stats.count("aliyun", action, "throttled", real_now)
    r.log.retry_after_ms = retry_after
    r.log.rate_limiter = limiter
    local code = r.product.throttle_code and r.product.throttle_code(action) or "Throttling.User"
    return fail(r, "throttled", code, nil, { ["x-acs-retry-after"] = tostring(retry_after) })
  end
  stats.count("aliyun", action, "accepted", real_now)
  return nil
end

-------------------------------------------------------------------------------
-- The checks: each gives the refusal, or nothing when the request passes

-- An anonymous operation (AssumeRoleWithOIDC): no key, no signature, no
-- nonce; a Timestamp within the tolerance; the budget of the RoleArn's account.
local function serve_anonymous(r)
  local p, h = r.p, r.req.headers
  r.action, r.version = p.Action or h["x-acs-action"], p.Version or h["x-acs-version"]
  r.log.action = r.action
  r.log.signature_version = "anonymous"
  r.ts_text = p.Timestamp or h["x-acs-date"]
  if r.ts_text == nil or r.ts_text == "" then
    return missing(r, "Timestamp")
  end
  local ts = clock.parse_iso8601(r.ts_text)
  if not ts then
    return fail(r, "rejected", "InvalidTimeStamp.Format")
  end
  if abs(r.now - ts) > cfg.aliyun.timestamp_tolerance_s then
    return fail(r, "rejected", "InvalidTimeStamp.Expired")
  end
  local uid = sts_api.budget_uid(p)
  r.log.account_uid = uid
  if uid then
    local limited = take_budget(r, uid, nil, cfg.aliyun.account_settings[uid])
    if limited then
      return limited
    end
  else
    stats.count("aliyun", r.action, "accepted", clock.real_now())
  end
  return finish(r, r.product.operations[r.action](p, { now = r.now, cfg = cfg.aliyun }))
end

-- 3, 4 (V1): the common parameters, the signature's method and version.
local function read_v1_credentials(r)
  local p = r.p
  for _, name in ipairs({ "AccessKeyId", "Action", "Version", "Signature", "SignatureMethod",
                          "SignatureVersion", "SignatureNonce", "Timestamp" }) do
    if p[name] == nil or p[name] == "" then
      return missing(r, name)
    end
  end
  if p.SignatureMethod ~= "HMAC-SHA1" then
    return fail(r, "rejected", "InvalidSignatureMethod")
  end
  if p.SignatureVersion ~= "1.0" then
    return fail(r, "rejected", "InvalidSignatureVersion")
  end
  r.ak, r.action, r.version = p.AccessKeyId, p.Action, p.Version
  r.nonce, r.ts_text, r.token = p.SignatureNonce, p.Timestamp, p.SecurityToken
end

-- 3 (V3): the Authorization and the headers a V3 request must carry.
local function read_v3_credentials(r)
  local h = r.req.headers
  local auth, code, message = signature.read_v3_authorization(h)
  if not auth then
    return fail(r, "rejected", code, message)
  end
  r.ak, r.action, r.version = auth.Credential, h["x-acs-action"], h["x-acs-version"]
  r.nonce, r.ts_text, r.token = h["x-acs-signature-nonce"], h["x-acs-date"], h["x-acs-security-token"]
  r.log.account = r.ak
  r.auth = auth
end

-- 5, 6, 7: the timestamp's format, the key, the clock skew.
local function check_key_and_clock(r)
  local ts = clock.parse_iso8601(r.ts_text)
  if not ts then
    return fail(r, "rejected", "InvalidTimeStamp.Format")
  end
  r.account = M.lookup(r.ak)
  if not r.account then
    return fail(r, "rejected", "InvalidAccessKeyId.NotFound")
  end
  r.log.account_uid = r.account.account
  if abs(r.now - ts) > cfg.aliyun.timestamp_tolerance_s then
    return fail(r, "rejected", "InvalidTimeStamp.Expired")
  end
end

-- 8, 9: the signature (V3: its headers and the body's hash first).
local function check_signature(r)
  local code, message
  if r.v3 then
    r.log.canonical_request, code, message = signature.check_v3(r.req, r.auth, r.account.secret)
  else
    code, message = signature.check_v1(r.req, r.account.secret)
  end
  if code then
    return fail(r, "rejected", code, message)
  end
end

-- 10, 11: the security token, an issued key's expiry, the nonce.
local function check_token_and_nonce(r)
  local account, token = r.account, r.token
  if account.security_token then
    if token == nil or token == "" then
      return fail(r, "rejected", "MissingSecurityToken")
    end
    if token ~= account.security_token then
      return fail(r, "rejected", "InvalidSecurityToken.MismatchWithAccessKey")
    end
  end
  if account.expires_at and r.now >= account.expires_at then
    return fail(r, "rejected", "InvalidSecurityToken.Expired")
  end
  if not nonces.use(r.ak, r.nonce, r.now, cfg.aliyun.nonce_ttl_s) then
    return fail(r, "rejected", "SignatureNonceUsed")
  end
end

-- 12: the operation the Action and Version name (the request's product from
-- now on); nil and the refusal when there is none or it is anonymous.
local function find_operation(r)
  local named = products.named_by(r.version)
  local op = named and named.operations[r.action]
  if not op then
    return nil, fail(r, "rejected", "InvalidApi.NotFound")
  end
  r.product = named
  if named.anonymous[r.action] then
    return nil, fail(r, "rejected", "InvalidParameter", r.action .. " is called anonymously: a request that "
      .. "carries an AccessKeyId or a signature is refused.")
  end
  return op
end

-- 14: the context the operation runs with, once Live's account rules allow
-- the call; nil and the refusal when they do not.
local function operation_context(r)
  local ak, account, action = r.ak, r.account, r.action
  if r.product ~= products.LIVE then
    return { ak = ak, principal = account, now = r.now, cfg = cfg.aliyun }
  end
  -- A key's RAM policy: the actions it may call (after the throttle: a
  -- refused call still counts against the account's budget, the strict
  -- reading).
  if not ram.allows(account, "live:" .. action) then
    return nil, fail(r, "rejected", "Forbidden.RAM")
  end
  if account.live_service == false then
    return nil, fail(r, "error", "LiveServiceNotFound")
  end
  if account.has_live_domain == false and live.NEEDS_LIVE_DOMAIN[action] then
    return nil, fail(r, "error", "CodeInvalidAliUid")
  end
  return { account_id = ak, account = account, now = r.now, cfg = cfg.aliyun }
end

-------------------------------------------------------------------------------
-- The pipeline

-- Verifies and executes one request. Returns a result:
--   { status, headers, body, log = {...}, applied = bool }
function M.process(req)
  local r = arrival(req)
  if req.method ~= "GET" and req.method ~= "POST" then
    return fail(r, "rejected", "UnsupportedHTTPMethod")
  end
  if not r.v3 then
    local p = r.p
    if p.Format ~= nil and p.Format ~= "" and r.fmt ~= upper(p.Format) then
      return fail(r, "rejected", "InvalidParameter.Format")
    end
    if products.is_anonymous(req) and r.product.anonymous[p.Action or req.headers["x-acs-action"]] then
      return serve_anonymous(r)
    end
  end
  local refused = (r.v3 and read_v3_credentials or read_v1_credentials)(r)
    or check_key_and_clock(r) or check_signature(r) or check_token_and_nonce(r)
  if refused then
    return refused
  end
  local op
  op, refused = find_operation(r)
  if not op then
    return refused
  end
  refused = take_budget(r, r.account.account, r.ak, r.account)
  if refused then
    return refused
  end
  local ctx
  ctx, refused = operation_context(r)
  if not ctx then
    return refused
  end
  return finish(r, op(r.p, ctx))
end

return M
