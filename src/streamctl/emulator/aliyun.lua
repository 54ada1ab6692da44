-- Alibaba Cloud OpenAPI (RPC style) as ApsaraVideo Live and STS answer it:
-- request parsing, signature V1 (HMAC-SHA1) and V3 (ACS3-HMAC-SHA256)
-- verification, clock/nonce/key checks, per-account per-action throttling,
-- and the response and error formats. The operations themselves are in
-- aliyun_live.lua (Live, version 2016-11-01) and sts.lua (STS, version
-- 2015-04-01): the request's Version (V3: x-acs-version) picks the product.
-- GET /credentials-uri on the same ports is the credentials URI
-- (credentials_uri.lua), outside this pipeline.
--
-- Keys: a configured AccessKeyId (config.lua), or one STS issued
-- (sessions.lua), which must carry its SecurityToken and is refused once
-- expired. AssumeRoleWithOIDC is anonymous: a request with no AccessKeyId,
-- Signature or Authorization that names it takes the short path below.
--
-- Signatures are checked with nginx-lua's primitives only (ngx.hmac_sha1,
-- ngx.encode_base64, nginx.sha256 via hmac.lua), never with streamctl's core.
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
--      Throttling on AssumeRole* (sts.lua)
--  14. Live: the key's RAM policy (ram.lua: its "actions", an STS session's
--      role's and session policy; Forbidden.RAM), then the account has Live
--      (LiveServiceNotFound) / a live domain (CodeInvalidAliUid)
--  15. the operation's own rules (aliyun_live.lua, sts.lua)
--
-- Anonymous requests (AssumeRoleWithOIDC): 1, 2, then Action, Version and
-- Timestamp required (Missing<Name>), 5, 7, 13 (the RoleArn's account), 15.
--
-- Error codes and HTTP statuses (from the OpenAPI gateway's common error table and
-- the Live operations' pages; statuses marked * are not confirmed by a document):
--   Code                                         HTTP  when
--   UnsupportedHTTPMethod                        400   method other than GET/POST
--   InvalidParameter.Format                      400   Format other than JSON/XML
--   Missing<Name>                                400   required parameter absent or empty
--   IncompleteSignature                          400   V3 Authorization unparsable, a V3 header
--                                                      missing, or an x-acs-*/host header unsigned
--   InvalidSignatureMethod                       400   SignatureMethod is not HMAC-SHA1
--   InvalidSignatureVersion                      400*  SignatureVersion is not 1.0
--   InvalidTimeStamp.Format                      400   Timestamp / x-acs-date not yyyy-MM-ddTHH:mm:ssZ
--   InvalidAccessKeyId.NotFound                  404   unknown AccessKeyId
--   InvalidTimeStamp.Expired                     400   more than 15 minutes of skew
--   SignatureDoesNotMatch                        400   wrong signature (Message ends with the
--                                                      server's string to sign) or, V3, an
--                                                      x-acs-content-sha256 that is not the body's
--   MissingSecurityToken                         400*  STS account without a token
--   InvalidSecurityToken.MismatchWithAccessKey   400*  STS token not the account's
--   InvalidSecurityToken.Expired                 400*  issued STS key past its Expiration
--   SignatureNonceUsed                           400   nonce seen before
--   InvalidApi.NotFound                          404   Action/Version not a Live operation
--   Throttling.User                              400   rate limit; header x-acs-retry-after (ms)
--                                                      (ForbidLiveStream: 20/s by default)
--   LiveServiceNotFound                          400   account without Live
--   CodeInvalidAliUid                            400   account without a live domain (pull-to-push)
--   InvalidParameter                             400   an operation parameter's value is wrong
--   InvalidDomain.NotFound                       404   DomainName not configured (only when
--                                                      aliyun.domains is set)
--   InvalidParam.CodeIllegalDuration             400   pull-to-push StartTime/EndTime rules (create, update)
--   CodeConfigAlreadyExists                      400   pull-to-push DstUrl already used by a task
--   CodeNotEnoughResource                        400*  too many pull-to-push tasks
--   CodeTaskNotExist                             400   pull-to-push TaskId unknown, in another Region,
--                                                      deleted, or past its EndTime (deleted then)
--   CodeTaskHasStopped                           400   StopLivePullToPush of a stopped task
--   InternalError                                500   injected fault http500
--   ServiceUnavailable                           503   injected fault http503
--   (STS's own codes: sts.lua. Error bodies of STS requests carry HostId
--   sts.aliyuncs.com and product=Sts in Recommend.)
--
-- Response formats: V1 answers JSON when Format=JSON and XML when Format=XML or
-- when Format is absent (the service's default); the XML is a plain rendering
-- of the same fields (<Error>...</Error> or <ActionResponse>...</ActionResponse>,
-- array items repeat their field's element). V3 always answers JSON.

local json = require "streamctl.emulator.json"
local clock = require "streamctl.emulator.clock"
local encoding = require "streamctl.emulator.encoding"
local hmac = require "streamctl.emulator.hmac"
local ratelimit = require "streamctl.emulator.ratelimit"
local stats = require "streamctl.emulator.stats"
local requestlog = require "streamctl.emulator.requestlog"
local live = require "streamctl.emulator.aliyun_live"
local sts_api = require "streamctl.emulator.sts"
local ram = require "streamctl.emulator.ram"
local sessions = require "streamctl.emulator.sessions"
local credentials_uri = require "streamctl.emulator.credentials_uri"

local ngx = ngx
local ngx_hmac_sha1, ngx_encode_base64 = ngx.hmac_sha1, ngx.encode_base64

local type, pairs, ipairs, tostring, getmetatable = type, pairs, ipairs, tostring, getmetatable
local random, abs = math.random, math.abs
local format, gsub, find, match, lower = string.format, string.gsub, string.find, string.match, string.lower
local upper, sub = string.upper, string.sub
local sort, concat = table.sort, table.concat

local M = {}

local API_VERSION = "2016-11-01"

local cfg

-- Used nonces: key -> expiry (emulator time), plus a FIFO of {key, expiry} in
-- insertion order. Each insert drops entries from the FIFO's head while they
-- have expired or while more than MAX_NONCES are kept, so memory stays bounded
-- under benchmark load: replay detection covers nonce_ttl_s (15 minutes) or the
-- last MAX_NONCES requests, whichever is less.
local MAX_NONCES = 200000
local nonces = {}
local fifo = {}
local fifo_head, fifo_tail = 1, 0

local ERRORS = {
  ["UnsupportedHTTPMethod"] = { 400, "This http method is not supported." },
  ["InvalidParameter.Format"] = { 400, "Specified parameter format is not valid. Only JSON and XML are supported." },
  ["IncompleteSignature"] = { 400, "The request signature does not conform to Aliyun standards." },
  ["InvalidSignatureMethod"] = { 400, "Specified signature method is not valid." },
  ["InvalidSignatureVersion"] = { 400, "Specified parameter SignatureVersion is not valid." },
  ["InvalidTimeStamp.Format"] = { 400, "Specified time stamp or date value is not well formatted." },
  ["InvalidAccessKeyId.NotFound"] = { 404, "Specified access key is not found." },
  ["InvalidTimeStamp.Expired"] = { 400, "Specified time stamp or date value is expired." },
  ["SignatureDoesNotMatch"] = { 400, "Specified signature is not matched with our calculation." },
  ["MissingSecurityToken"] = { 400, "SecurityToken is mandatory for this action." },
  ["InvalidSecurityToken.MismatchWithAccessKey"] = { 400, "The security token does not match the access key." },
  ["SignatureNonceUsed"] = { 400, "Specified signature nonce was used already." },
  ["InvalidApi.NotFound"] = { 404, "Specified api is not found, please check your url and method." },
  ["Throttling.User"] = { 400, "Request was denied due to user flow control." },
  ["LiveServiceNotFound"] = { 400, "Your account does not open Live service yet." },
  ["CodeInvalidAliUid"] = { 400, "This aliuid does not have a live domain name." },
  ["InvalidParameter"] = { 400, "Specified parameter is not valid." },
  ["InvalidDomain.NotFound"] = { 404, "The domain provided does not exist in our records." },
  ["InvalidParam.CodeIllegalDuration"] = { 400, "The task duration is illegal." },
  ["CodeConfigAlreadyExists"] = { 400, "The task config already exists." },
  ["CodeNotEnoughResource"] = { 400, "Not enough resource." },
  ["CodeTaskNotExist"] = { 400, "The task does not exist." },
  ["CodeTaskHasStopped"] = { 400, "The task has stopped." },
  ["Forbidden.RAM"] = { 403, "User not authorized to operate on the specified resource, or this API doesn't "
    .. "support RAM." },
  ["InternalError"] = { 500, "The request processing has failed due to some unknown error, exception or failure." },
  ["ServiceUnavailable"] = { 503, "The request has failed due to a temporary failure of the server." },
}

for code, e in pairs(sts_api.ERRORS) do
  ERRORS[code] = e
end

M.ERRORS = ERRORS

-- The products on these ports, by API version.
local LIVE = {
  name = "live", operations = live.OPERATIONS, anonymous = {},
  host_id = function() return cfg and cfg.aliyun.host_id or "live.aliyuncs.com" end,
}
local STS = {
  name = sts_api.PRODUCT, operations = sts_api.OPERATIONS, anonymous = sts_api.ANONYMOUS,
  host_id = function() return sts_api.HOST_ID end,
  internal_error = sts_api.INTERNAL_ERROR, throttle_code = sts_api.throttle_code,
}
local PRODUCTS = { [API_VERSION] = LIVE, [sts_api.VERSION] = STS }

-- The product a request's version names (Live when it names none).
local function product_of(version)
  return PRODUCTS[version] or LIVE
end

-- The HTTP status of an error code (Missing<Name> and unknown codes: 400).
function M.status_of(code)
  local e = ERRORS[code]
  return e and e[1] or 400
end

function M.init(settings)
  cfg = settings
  live.init(settings)
end

-- A key's entry: a configured one, or an issued STS session.
local function lookup(ak)
  return cfg.aliyun.accounts[ak] or sessions.get(ak)
end

-- The account UID a known AccessKeyId belongs to (its "account" in the
-- config, or an issued key's role's); nil for an unknown key and for a key
-- that is an account of its own.
function M.account_uid(ak)
  local account = ak and lookup(ak)
  return account and account.account or nil
end

-- The rate limiter's key for a request of `ak` (whose config entry is
-- `account`): its account's UID, or the key itself. The two are kept apart
-- by their prefixes, so a key whose id happens to be a UID never shares that
-- account's window.
local function uid_budget_key(uid, action)
  return "uid\0" .. uid .. "\0" .. action
end

local function budget_key(ak, account, action)
  if account.account then
    return uid_budget_key(account.account, action)
  end
  return "key\0" .. ak .. "\0" .. action
end

local function request_id()
  return format("%08X-%04X-%04X-%04X-%04X%08X",
    random(0, 0x7fffffff), random(0, 0xffff), random(0, 0xffff),
    random(0, 0xffff), random(0, 0xffff), random(0, 0x7fffffff))
end

local function is_v3(req)
  local auth = req.headers["authorization"]
  return auth ~= nil and find(auth, "^%s*ACS3%-") ~= nil
end

-- A request with no key and no signature of either version.
local function is_anonymous(req)
  return req.headers["authorization"] == nil and req.params.AccessKeyId == nil and req.params.Signature == nil
end

-- The action a request names, before any verification (for fault matching):
-- "credentials-uri" for the credentials URI.
function M.peek_action(req)
  if req.path == credentials_uri.PATH then
    return credentials_uri.ACTION
  end
  if is_v3(req) then
    return req.headers["x-acs-action"]
  end
  return req.params.Action or req.headers["x-acs-action"]
end

-- The product a request names, before any verification.
local function peek_product(req)
  if is_v3(req) then
    return product_of(req.headers["x-acs-version"])
  end
  return product_of(req.params.Version or req.headers["x-acs-version"])
end

-------------------------------------------------------------------------------
-- Rendering

local function xml_escape(s)
  return (gsub(s, "[&<>\"']", {
    ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;", ["'"] = "&apos;",
  }))
end

local function is_array(v)
  local mt = getmetatable(v)
  if mt and mt.__json_array then
    return true
  end
  return #v > 0
end

local function xml_value(name, v, out)
  if type(v) == "table" then
    if is_array(v) then
      for _, item in ipairs(v) do
        xml_value(name, item, out)
      end
      return
    end
    out[#out + 1] = "<" .. name .. ">"
    local keys = json.order_of(v)
    if not keys then
      keys = {}
      for k in pairs(v) do
        keys[#keys + 1] = tostring(k)
      end
      sort(keys)
    end
    for _, k in ipairs(keys) do
      if v[k] ~= nil then
        xml_value(k, v[k], out)
      end
    end
    out[#out + 1] = "</" .. name .. ">"
  else
    if type(v) == "boolean" then
      v = v and "true" or "false"
    elseif type(v) ~= "string" and type(v) ~= "number" then
      v = ""
    end
    out[#out + 1] = "<" .. name .. ">" .. xml_escape(tostring(v)) .. "</" .. name .. ">"
  end
end

local function render(status, root, fields, fmt, rid, extra_headers)
  local headers = { ["x-acs-request-id"] = rid }
  local body
  if fmt == "XML" then
    local out = { "<?xml version='1.0' encoding='UTF-8'?>" }
    xml_value(root, fields, out)
    body = concat(out)
    headers["Content-Type"] = "text/xml;charset=utf-8"
  else
    body = json.encode(fields)
    headers["Content-Type"] = "application/json;charset=utf-8"
  end
  if extra_headers then
    for k, v in pairs(extra_headers) do
      headers[k] = v
    end
  end
  return { status = status, headers = headers, body = body }
end

-- An error answer. message nil: the code's standard message (STS's own
-- InternalError text for STS). product: LIVE (default) or STS.
function M.error_response(code, message, fmt, rid, extra_headers, product)
  product = product or LIVE
  rid = rid or request_id()
  local e = ERRORS[code]
  local status = e and e[1] or 400
  if code == "InternalError" and product.internal_error then
    message = message or product.internal_error
  end
  message = message or (e and e[2]) or code
  local fields = {
    RequestId = rid,
    HostId = product.host_id(),
    Code = code,
    Message = message,
    Recommend = "https://api.aliyun.com/troubleshoot?q=" .. code .. "&product=" .. product.name
      .. "&requestId=" .. rid,
  }
  return render(status, "Error", fields, fmt or "JSON", rid, extra_headers)
end

-------------------------------------------------------------------------------
-- Verification helpers

local function trim(s)
  return (gsub(gsub(s, "^%s+", ""), "%s+$", ""))
end

-- Records a nonce; false when it was already used and has not expired.
local function use_nonce(ak, nonce, now)
  local key = ak .. "\n" .. nonce
  local exp = nonces[key]
  if exp and exp > now then
    return false
  end
  exp = now + cfg.aliyun.nonce_ttl_s
  nonces[key] = exp
  fifo_tail = fifo_tail + 1
  fifo[fifo_tail] = { key, exp }
  while fifo_head <= fifo_tail do
    local e = fifo[fifo_head]
    if fifo_tail - fifo_head + 1 <= MAX_NONCES and e[2] > now then
      break
    end
    if nonces[e[1]] == e[2] then
      nonces[e[1]] = nil
    end
    fifo[fifo_head] = nil
    fifo_head = fifo_head + 1
  end
  return true
end

-- Parses "ACS3-HMAC-SHA256 Credential=AK,SignedHeaders=a;b,Signature=hex".
local function parse_authorization(auth)
  local algorithm, rest = match(auth, "^%s*(%S+)%s+(.-)%s*$")
  if not algorithm then
    return nil
  end
  local fields = {}
  for part in (rest .. ","):gmatch("([^,]*),") do
    local k, v = match(part, "^%s*([^=%s]+)%s*=%s*(.-)%s*$")
    if k then
      fields[k] = v
    end
  end
  if not (fields.Credential and fields.SignedHeaders and fields.Signature)
    or fields.Credential == "" or fields.SignedHeaders == "" or fields.Signature == "" then
    return nil
  end
  return algorithm, fields
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

-------------------------------------------------------------------------------
-- The pipeline

-- Verifies and executes one request. Returns a result:
--   { status, headers, body, log = {...}, applied = bool }
function M.process(req)
  if req.path == credentials_uri.PATH then
    return credentials_uri.process(req, cfg.aliyun)
  end
  local now = clock.now()
  local rid = request_id()
  local v3 = is_v3(req)
  local fmt = "JSON"
  -- The product whose HostId errors name: the one the request names, until
  -- the operation is known.
  local product = peek_product(req)
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

  local function fail(verdict, code, message, extra_headers)
    local res = M.error_response(code, message, fmt, rid, extra_headers, product)
    log.verdict = verdict
    log.code = code
    log.message = message or (code == "InternalError" and product.internal_error)
      or (ERRORS[code] and ERRORS[code][2]) or code
    log.status = res.status
    log.applied = false
    res.log = log
    res.applied = false
    return res
  end

  local function missing(name)
    return fail("rejected", "Missing" .. name, name .. " is mandatory for this action.")
  end

  local p = req.params
  if not v3 then
    local f = p.Format
    if f == nil or f == "" then
      fmt = "XML"
    elseif upper(f) == "XML" or upper(f) == "JSON" then
      fmt = upper(f)
    end
  end

  if req.method ~= "GET" and req.method ~= "POST" then
    return fail("rejected", "UnsupportedHTTPMethod")
  end

  local ak, action, version, nonce, ts_text, token, account

  -- Takes this request from a budget (rate limiter key `key`; `entry`, the
  -- key's config entry or session, may give qps and rate_limiter). Returns
  -- the throttled answer, or nil when the request may go on.
  local function take_budget(key, entry)
    local qps = entry and entry.qps and entry.qps[action] or cfg.aliyun.qps[action]
    local limiter = entry and entry.rate_limiter or cfg.aliyun.rate_limiter
    local allowed, retry_after = ratelimit.take(key, qps, limiter)
    local real_now = clock.real_now()
    if not allowed then
      stats.count("aliyun", action, "throttled", real_now)
      log.retry_after_ms = retry_after
      log.rate_limiter = limiter
      local code = product.throttle_code and product.throttle_code(action) or "Throttling.User"
      return fail("throttled", code, nil, { ["x-acs-retry-after"] = tostring(retry_after) })
    end
    stats.count("aliyun", action, "accepted", real_now)
    return nil
  end

  -- The answer of an operation's result: fields, info or nil, code, message, detail.
  local function finish(fields, info, message, detail)
    if not fields then
      log.detail = detail
      return fail("error", info, message)
    end
    fields.RequestId = rid
    local res = render(200, action .. "Response", fields, fmt, rid)
    log.verdict = "ok"
    log.code = "OK"
    log.status = 200
    log.applied = info.applied and true or false
    log.detail = info.detail
    res.log = log
    res.applied = log.applied
    return res
  end

  -- An anonymous operation (AssumeRoleWithOIDC): no key, no signature, no
  -- nonce; a Timestamp within the tolerance; the budget of the RoleArn's account.
  local function anonymous()
    local h = req.headers
    action, version = p.Action or h["x-acs-action"], p.Version or h["x-acs-version"]
    log.action = action
    log.signature_version = "anonymous"
    ts_text = p.Timestamp or h["x-acs-date"]
    if ts_text == nil or ts_text == "" then
      return missing("Timestamp")
    end
    local ts = clock.parse_iso8601(ts_text)
    if not ts then
      return fail("rejected", "InvalidTimeStamp.Format")
    end
    if abs(now - ts) > cfg.aliyun.timestamp_tolerance_s then
      return fail("rejected", "InvalidTimeStamp.Expired")
    end
    local uid = sts_api.budget_uid(p)
    log.account_uid = uid
    if uid then
      local limited = take_budget(uid_budget_key(uid, action), cfg.aliyun.account_settings[uid])
      if limited then
        return limited
      end
    else
      stats.count("aliyun", action, "accepted", clock.real_now())
    end
    return finish(product.operations[action](p, { now = now, cfg = cfg.aliyun }))
  end

  if not v3 then
    if p.Format ~= nil and p.Format ~= "" and fmt ~= upper(p.Format) then
      return fail("rejected", "InvalidParameter.Format")
    end
    if is_anonymous(req) and product.anonymous[p.Action or req.headers["x-acs-action"]] then
      return anonymous()
    end
    for _, name in ipairs({ "AccessKeyId", "Action", "Version", "Signature", "SignatureMethod",
                            "SignatureVersion", "SignatureNonce", "Timestamp" }) do
      if p[name] == nil or p[name] == "" then
        return missing(name)
      end
    end
    if p.SignatureMethod ~= "HMAC-SHA1" then
      return fail("rejected", "InvalidSignatureMethod")
    end
    if p.SignatureVersion ~= "1.0" then
      return fail("rejected", "InvalidSignatureVersion")
    end
    ak, action, version = p.AccessKeyId, p.Action, p.Version
    nonce, ts_text, token = p.SignatureNonce, p.Timestamp, p.SecurityToken
  else
    local h = req.headers
    local algorithm, auth = parse_authorization(h["authorization"])
    if not algorithm then
      return fail("rejected", "IncompleteSignature",
        "The request signature does not conform to Aliyun standards. "
        .. "Expected: ACS3-HMAC-SHA256 Credential=<AccessKeyId>,SignedHeaders=<list>,Signature=<hex>.")
    end
    if algorithm ~= "ACS3-HMAC-SHA256" then
      return fail("rejected", "IncompleteSignature",
        "The request signature does not conform to Aliyun standards. "
        .. "Unsupported signature algorithm " .. algorithm .. ".")
    end
    for _, name in ipairs({ "host", "x-acs-action", "x-acs-version", "x-acs-date",
                            "x-acs-signature-nonce", "x-acs-content-sha256" }) do
      if h[name] == nil or h[name] == "" then
        return fail("rejected", "IncompleteSignature",
          "The request signature does not conform to Aliyun standards. Header "
          .. name .. " is mandatory.")
      end
    end
    ak, action, version = auth.Credential, h["x-acs-action"], h["x-acs-version"]
    nonce, ts_text, token = h["x-acs-signature-nonce"], h["x-acs-date"], h["x-acs-security-token"]
    log.account = ak
    req.v3_auth = auth
  end
  log.action = action

  local ts = clock.parse_iso8601(ts_text)
  if not ts then
    return fail("rejected", "InvalidTimeStamp.Format")
  end
  account = lookup(ak)
  if not account then
    return fail("rejected", "InvalidAccessKeyId.NotFound")
  end
  log.account_uid = account.account
  if abs(now - ts) > cfg.aliyun.timestamp_tolerance_s then
    return fail("rejected", "InvalidTimeStamp.Expired")
  end

  if not v3 then
    local sts = req.method .. "&%2F&"
      .. encoding.aliyun_encode(encoding.aliyun_canonical_query(req.param_list, { Signature = true }))
    local expected = ngx_encode_base64(ngx_hmac_sha1(account.secret .. "&", sts))
    if expected ~= p.Signature then
      return fail("rejected", "SignatureDoesNotMatch",
        "Specified signature is not matched with our calculation. server string to sign is:" .. sts)
    end
  else
    local auth = req.v3_auth
    local signed = {}
    local names = {}
    for name in (auth.SignedHeaders .. ";"):gmatch("([^;]*);") do
      name = lower(trim(name))
      if name ~= "" and not signed[name] then
        signed[name] = true
        names[#names + 1] = name
      end
    end
    sort(names)
    for name in pairs(req.headers) do
      if (sub(name, 1, 6) == "x-acs-" or name == "host") and not signed[name] then
        return fail("rejected", "IncompleteSignature",
          "The request signature does not conform to Aliyun standards. Header "
          .. name .. " must be signed.")
      end
    end
    local body_hash = hmac.sha256_hex(req.body)
    local canon_headers = {}
    for i, name in ipairs(names) do
      canon_headers[i] = name .. ":" .. trim(req.headers[name] or "") .. "\n"
    end
    local canonical = concat({
      req.method,
      req.path,
      encoding.aliyun_canonical_query(req.query_list),
      concat(canon_headers),
      concat(names, ";"),
      body_hash,
    }, "\n")
    local sts = "ACS3-HMAC-SHA256\n" .. hmac.sha256_hex(canonical)
    log.canonical_request = canonical
    if req.headers["x-acs-content-sha256"] ~= body_hash then
      return fail("rejected", "SignatureDoesNotMatch",
        "Specified signature is not matched with our calculation. x-acs-content-sha256 is not "
        .. "the SHA-256 of the request body (" .. body_hash .. "). server string to sign is:" .. sts)
    end
    local expected = hmac.hmac_sha256_hex(account.secret, sts)
    if expected ~= auth.Signature then
      return fail("rejected", "SignatureDoesNotMatch",
        "Specified signature is not matched with our calculation. server string to sign is:" .. sts)
    end
  end

  if account.security_token then
    if token == nil or token == "" then
      return fail("rejected", "MissingSecurityToken")
    end
    if token ~= account.security_token then
      return fail("rejected", "InvalidSecurityToken.MismatchWithAccessKey")
    end
  end
  if account.expires_at and now >= account.expires_at then
    return fail("rejected", "InvalidSecurityToken.Expired")
  end

  if not use_nonce(ak, nonce, now) then
    return fail("rejected", "SignatureNonceUsed")
  end

  local named = PRODUCTS[version]
  local op = named and named.operations[action]
  if not op then
    return fail("rejected", "InvalidApi.NotFound")
  end
  product = named
  if product.anonymous[action] then
    return fail("rejected", "InvalidParameter", action .. " is called anonymously: a request that carries an "
      .. "AccessKeyId or a signature is refused.")
  end

  local limited = take_budget(budget_key(ak, account, action), account)
  if limited then
    return limited
  end

  local ctx
  if product == LIVE then
    -- A key's RAM policy: the actions it may call (after the throttle: a
    -- refused call still counts against the account's budget, the strict
    -- reading).
    if not ram.allows(account, "live:" .. action) then
      return fail("rejected", "Forbidden.RAM")
    end
    if account.live_service == false then
      return fail("error", "LiveServiceNotFound")
    end
    if account.has_live_domain == false and live.NEEDS_LIVE_DOMAIN[action] then
      return fail("error", "CodeInvalidAliUid")
    end
    ctx = { account_id = ak, account = account, now = now, cfg = cfg.aliyun }
  else
    ctx = { ak = ak, principal = account, now = now, cfg = cfg.aliyun }
  end
  return finish(op(p, ctx))
end

-- The answer an injected fault gives in place of (or over) a request.
-- kind: http500 | http503 | throttle. Returns a result like process().
function M.fault_response(kind, fault, req)
  if req.path == credentials_uri.PATH then
    return credentials_uri.fault_response(kind)
  end
  local product = peek_product(req)
  local fmt = "JSON"
  if not is_v3(req) then
    local f = req.params.Format
    if f == nil or f == "" or upper(f) == "XML" then
      fmt = "XML"
    end
  end
  if kind == "code" then
    local rid = request_id()
    return render(200, (M.peek_action(req) or "") .. "Response",
      { RequestId = rid, RetCode = fault.code, Description = fault.message or "Failed" }, fmt, rid)
  elseif kind == "http500" then
    return M.error_response("InternalError", nil, fmt, nil, nil, product)
  elseif kind == "http503" then
    return M.error_response("ServiceUnavailable", nil, fmt, nil, nil, product)
  end
  return M.error_response("Throttling.User", nil, fmt,
    nil, { ["x-acs-retry-after"] = tostring(fault.retry_after_ms) }, product)
end

-- A plausible success body for malformed/truncated faults that replace the
-- request entirely.
function M.placeholder_body(req)
  if req.path == credentials_uri.PATH then
    return credentials_uri.placeholder_body()
  end
  return json.encode({ RequestId = request_id(), Action = M.peek_action(req) })
end

-- The limiter each key uses (its own rate_limiter or the provider's), and
-- the account UID of each key that has one.
local function limiters()
  local out, uids = {}, {}
  for id, account in pairs(cfg.aliyun.accounts) do
    out[id] = account.rate_limiter or cfg.aliyun.rate_limiter
    uids[id] = account.account
  end
  return out, uids
end

-- Online streams (DescribeLiveStreamsOnlineList), set through /_emulator/online.
M.tick = live.tick
M.mark_online = live.mark_online
M.mark_offline = live.mark_offline
M.online_snapshot = live.online_snapshot

function M.snapshot(now)
  local s = live.snapshot(now)
  s.counters = stats.snapshot("aliyun")
  s.rate_limiter = cfg.aliyun.rate_limiter
  s.rate_limiters, s.account_uids = limiters()
  return s
end

function M.reset()
  live.reset()
  sessions.reset()
  nonces, fifo, fifo_head, fifo_tail = {}, {}, 1, 0
end

return M
