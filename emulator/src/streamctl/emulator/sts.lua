-- Security Token Service (product Sts, version 2015-04-01, RPC style) as the
-- emulator answers it on the Aliyun ports. aliyun_products.lua routes a request here by
-- its Version (V1 `Version`, V3 `x-acs-version`): 2015-04-01 is STS, whatever
-- the Host header says, so a client pointed at the emulator's one endpoint
-- reaches both products. The gateway checks (signature, clock, nonce, rate
-- limit per account and action) are aliyun_gateway.lua's, the same as for Live.
--
-- Operations (each takes the parameters and a context { ak, principal (the
-- caller's config entry or STS session, nil when anonymous), now, cfg
-- (cfg.aliyun) } and returns fields, info or nil, code, message, detail):
--
--   AssumeRole (signed) RoleArn*, RoleSessionName*, DurationSeconds, Policy,
--     ExternalId, SourceIdentity -> {"RequestId","AssumedRoleUser":{"AssumedRoleId",
--     "Arn"},"Credentials":{"AccessKeyId","AccessKeySecret","SecurityToken",
--     "Expiration"}[,"SourceIdentity"]} (SourceIdentity only when sent)
--   AssumeRoleWithOIDC (anonymous: no AccessKeyId, Signature, SignatureMethod,
--     SignatureVersion) OIDCProviderArn*, RoleArn*, OIDCToken*, RoleSessionName*,
--     DurationSeconds, Policy -> AssumeRole's fields plus "OIDCTokenInfo":{"Subject",
--     "Issuer","ClientIds","ExpirationTime","IssuanceTime","VerificationInfo"}
--   GetCallerIdentity (signed; no parameters; no RAM permission needed, as its
--     page says) -> {"IdentityType","AccountId","UserId"|"RoleId","PrincipalId",
--     "Arn","RequestId"}: Account (UserId = PrincipalId = the UID, Arn
--     acs:ram::<uid>:root), RAMUser (UserId = PrincipalId = the user's id, Arn
--     acs:ram::<uid>:user/<name>), AssumedRoleUser (RoleId, PrincipalId
--     <roleId>:<session>, Arn acs:ram::<uid>:role/<role>/<session>)
--
-- Members come in the order CREDENTIALS.md gives them. AssumedRoleUser.Arn
-- takes the current metadata's form (acs:ram::<uid>:role/<name>/<session>; an
-- older page shows acs:sts::<uid>:assumed-role/...): clients must not parse it.
--
-- Errors (the service's codes: the STS metadata and error-code page, and the
-- troubleshooting pages for the NoPermission causes):
--   Missing<Name>                     400  a required parameter absent or empty
--   InvalidParameter.RoleArn          400  not acs:ram::<uid>:role/<name>
--   InvalidParameter.RoleSessionName  400  not 2..64 of A-Z a-z 0-9 . @ - _
--   InvalidParameter.DurationSeconds  400  not a whole number in 900..the role's
--                                          max_session_duration (3600 when the caller is
--                                          itself a role session: see below)
--   InvalidParameter.PolicySize       400  Policy not 1..2048 bytes
--   InvalidParameter.PolicyGrammar    400  Policy not a RAM policy (ram.lua)
--   InvalidParameter.ExternalId       400  not 2..1224 of A-Z a-z 0-9 = , . @ : / - _
--   NoPermission                      403  the account's own (root) key; a RAM policy
--                                          without sts:AssumeRole; a role that does not
--                                          trust the caller's account; a missing or wrong
--                                          ExternalId for a role that has one (the log's
--                                          detail.reason says which)
--   EntityNotExist.Role               404  no such role
--   AuthenticationFail.NoPermission   401  OIDC: provider not registered, or the role
--                                          does not trust it
--   AuthenticationFail.OIDCToken.*    401  OIDC: the token (oidc.lua)
--   InvalidParameter                  400  AssumeRoleWithOIDC sent signed (see below)
--   Throttling                        400  the rate limiter, on AssumeRole and
--                                          AssumeRoleWithOIDC (the RAM notice's code);
--                                          GetCallerIdentity answers Throttling.User
--
-- Strict readings where the documents are silent (each the emulator's choice):
--   * Role chaining (an STS session calling AssumeRole) caps DurationSeconds at
--     3600, whatever the role's maximum.
--   * ExternalId refuses "+" (the parameter's page lists = , . @ : / - _; the
--     metadata's pattern also allows +).
--   * An AssumeRoleWithOIDC that carries AccessKeyId or a signature is refused
--     (InvalidParameter), not served: the operation is anonymous.
--   * Anonymous requests must carry a Timestamp within the clock tolerance
--     (the SDKs send one); no SignatureNonce is needed.
--   * Role names and ARNs are compared exactly (case too).

local json = require "streamctl.emulator.json"
local clock = require "streamctl.emulator.clock"
local ram = require "streamctl.emulator.ram"
local sessions = require "streamctl.emulator.sessions"
local identity = require "streamctl.emulator.identity"
local oidc = require "streamctl.emulator.oidc"

local ipairs, tonumber = ipairs, tonumber
local format, match, find, concat = string.format, string.match, string.find, table.concat

local M = {}

M.VERSION = "2015-04-01"
M.HOST_ID = "sts.aliyuncs.com"
M.PRODUCT = "Sts"

M.ERRORS = {
  ["InvalidSecurityToken.Expired"] = { 400, "Specified SecurityToken is expired." },
  ["InvalidParameter.RoleArn"] = { 400, "The parameter RoleArn is wrongly formed." },
  ["InvalidParameter.RoleSessionName"] = { 400, "The parameter RoleSessionName is wrongly formed." },
  ["InvalidParameter.DurationSeconds"] = { 400, "The Min/Max value of DurationSeconds is 15min/1hr." },
  ["InvalidParameter.PolicySize"] = { 400, "The size of Policy must be smaller than 2048 bytes." },
  ["InvalidParameter.PolicyGrammar"] = { 400, "The parameter Policy has not passed grammar check." },
  ["InvalidParameter.ExternalId"] = { 400, "The parameter ExternalId is wrongly formed." },
  ["NoPermission"] = { 403, "You are not authorized to do this action. You should be authorized by RAM." },
  ["EntityNotExist.Role"] = { 404, "The specified Role not exists ." },
  ["AuthenticationFail.NoPermission"] = { 401, "There is no permission" },
  ["AuthenticationFail.OIDCToken.Invalid"] = { 401, "The Jwt content is invalid that cannot be recognized." },
  ["AuthenticationFail.OIDCToken.InvalidSignature"] = { 401, "OIDC token validate failed: invalid signature." },
  ["AuthenticationFail.OIDCToken.AudienceNotMatch"] = { 401, "Invalid audience." },
  ["AuthenticationFail.OIDCToken.Expired"] = { 401, "This JsonWebToken is expired." },
  ["Throttling"] = { 400, "Request was denied due to user flow control." },
}

-- STS's own text for InternalError (the metadata's).
M.INTERNAL_ERROR = "STS Server Internal Error happened, please send the RequestId to us."

-- The code the rate limiter answers for an action.
function M.throttle_code(action)
  if action == "GetCallerIdentity" then
    return "Throttling.User"
  end
  return "Throttling"
end

local MIN_DURATION = 900
local CHAINED_MAX = 3600

local function missing(name)
  return nil, "Missing" .. name, name .. " is mandatory for this action."
end

local function session_name_ok(s)
  return #s >= 2 and #s <= 64 and not find(s, "[^%w%.@_%-]")
end

local function external_id_ok(s)
  return #s >= 2 and #s <= 1224 and not find(s, "[^%w=,%.@:/_%-]")
end

local function duration_message(max)
  if max % 3600 == 0 then
    return format("The Min/Max value of DurationSeconds is 15min/%dhr.", max / 3600)
  end
  return format("The Min/Max value of DurationSeconds is 15min/%ds.", max)
end

-- The requested duration: DurationSeconds (default 3600) as a number, or
-- nil when it is not a whole number of seconds of at least 900.
local function requested_duration(p)
  local d = p.DurationSeconds
  if d == nil or d == "" then
    return 3600
  end
  if not match(d, "^%d+$") then
    return nil
  end
  d = tonumber(d)
  if d < MIN_DURATION then
    return nil
  end
  return d
end

-- Checks what AssumeRole and AssumeRoleWithOIDC share. Returns a table of the
-- checked values, or nil, code, message.
local function role_request(p)
  if p.RoleArn == nil or p.RoleArn == "" then
    return missing("RoleArn")
  end
  if p.RoleSessionName == nil or p.RoleSessionName == "" then
    return missing("RoleSessionName")
  end
  if not identity.parse_role_arn(p.RoleArn) then
    return nil, "InvalidParameter.RoleArn"
  end
  if not session_name_ok(p.RoleSessionName) then
    return nil, "InvalidParameter.RoleSessionName"
  end
  local duration = requested_duration(p)
  if not duration then
    return nil, "InvalidParameter.DurationSeconds"
  end
  local policy
  if p.Policy ~= nil then
    local code
    policy, code = ram.parse_policy(p.Policy)
    if not policy then
      return nil, code
    end
  end
  return { arn = p.RoleArn, session_name = p.RoleSessionName, duration = duration, policy = policy }
end

local CREDENTIALS_ORDER = { "AccessKeyId", "AccessKeySecret", "SecurityToken", "Expiration" }

-- The response's AssumedRoleUser and Credentials of a session.
local function session_fields(s)
  local role = s.identity.role
  local name = s.identity.session_name
  return json.ordered({
    AssumedRoleId = role.role_id .. ":" .. name,
    Arn = role.arn .. "/" .. name,
  }, { "AssumedRoleId", "Arn" }), json.ordered({
    AccessKeyId = s.access_key_id,
    AccessKeySecret = s.secret,
    SecurityToken = s.security_token,
    Expiration = clock.format_iso8601(s.expires_at),
  }, CREDENTIALS_ORDER)
end

local function issued_detail(s, duration)
  return {
    role = s.identity.role.arn,
    session_name = s.identity.session_name,
    access_key_id = s.access_key_id,
    expiration = clock.format_iso8601(s.expires_at),
    duration = duration,
  }
end

-- The longest session a caller may ask of a role.
local function max_duration(role, principal)
  if principal and principal.identity.type == "AssumedRoleUser" and role.max_session_duration > CHAINED_MAX then
    return CHAINED_MAX
  end
  return role.max_session_duration
end

local function contains(list, value)
  for _, v in ipairs(list) do
    if v == value then
      return true
    end
  end
  return false
end

local function issue(role, r, source, ctx)
  return sessions.issue({
    role = role, session_name = r.session_name, duration = r.duration, policy = r.policy,
    source = source, settings = ctx.cfg.account_settings[role.account], now = ctx.now,
  })
end

local function no_permission(reason)
  return nil, "NoPermission", nil, { reason = reason }
end

function M.AssumeRole(p, ctx)
  local r, code, message = role_request(p)
  if not r then
    return nil, code, message
  end
  if p.ExternalId ~= nil and not external_id_ok(p.ExternalId) then
    return nil, "InvalidParameter.ExternalId"
  end
  local principal = ctx.principal
  if principal.identity.type == "Account" then
    return no_permission("root")
  end
  if not ram.allows(principal, "sts:AssumeRole") then
    return no_permission("policy")
  end
  local role = ctx.cfg.roles[r.arn]
  if not role then
    return nil, "EntityNotExist.Role"
  end
  if not contains(role.trusted_accounts, principal.identity.account) then
    return no_permission("trust")
  end
  if role.external_id and p.ExternalId ~= role.external_id then
    return no_permission("external_id")
  end
  local max = max_duration(role, principal)
  if r.duration > max then
    return nil, "InvalidParameter.DurationSeconds", duration_message(max)
  end
  local s = issue(role, r, "AssumeRole", ctx)
  local user, creds = session_fields(s)
  local fields = json.ordered({
    AssumedRoleUser = user, Credentials = creds,
    SourceIdentity = p.SourceIdentity ~= "" and p.SourceIdentity or nil,
  }, { "RequestId", "AssumedRoleUser", "Credentials", "SourceIdentity" })
  return fields, { applied = true, detail = issued_detail(s, r.duration) }
end

-- The account UID whose budget an anonymous call draws on (its role's), or nil.
function M.budget_uid(p)
  return (identity.parse_role_arn(p.RoleArn))
end

function M.AssumeRoleWithOIDC(p, ctx)
  if p.OIDCProviderArn == nil or p.OIDCProviderArn == "" then
    return missing("OIDCProviderArn")
  end
  local r, code, message = role_request(p)
  if not r then
    return nil, code, message
  end
  local provider = ctx.cfg.oidc_providers[p.OIDCProviderArn]
  if not provider then
    return nil, "AuthenticationFail.NoPermission", "No such OIDC Provider registered."
  end
  local claims
  claims, code, message = oidc.verify(p.OIDCToken, provider, ctx.now)
  if not claims then
    return nil, code, message
  end
  local role = ctx.cfg.roles[r.arn]
  if not role then
    return nil, "EntityNotExist.Role"
  end
  if not contains(role.trusted_oidc_providers, provider.arn) then
    return nil, "AuthenticationFail.NoPermission", nil, { reason = "trust" }
  end
  if r.duration > role.max_session_duration then
    return nil, "InvalidParameter.DurationSeconds", duration_message(role.max_session_duration)
  end
  local s = issue(role, r, "AssumeRoleWithOIDC", ctx)
  local user, creds = session_fields(s)
  local info = json.ordered({
    Subject = claims.sub,
    Issuer = claims.iss,
    ClientIds = concat(claims.audiences, ","),
    ExpirationTime = clock.format_iso8601(claims.exp),
    IssuanceTime = clock.format_iso8601(claims.iat),
    VerificationInfo = "Success",
  }, { "Subject", "Issuer", "ClientIds", "ExpirationTime", "IssuanceTime", "VerificationInfo" })
  local fields = json.ordered({ AssumedRoleUser = user, Credentials = creds, OIDCTokenInfo = info },
    { "RequestId", "AssumedRoleUser", "Credentials", "OIDCTokenInfo" })
  local detail = issued_detail(s, r.duration)
  detail.provider = provider.arn
  detail.subject = claims.sub
  return fields, { applied = true, detail = detail }
end

function M.GetCallerIdentity(_, ctx)
  local id = ctx.principal.identity
  local uid = id.account
  local fields
  if id.type == "Account" then
    fields = { IdentityType = "Account", AccountId = uid, UserId = uid, PrincipalId = uid,
               Arn = "acs:ram::" .. uid .. ":root" }
  elseif id.type == "RAMUser" then
    fields = { IdentityType = "RAMUser", AccountId = uid, UserId = id.user_id, PrincipalId = id.user_id,
               Arn = "acs:ram::" .. uid .. ":user/" .. id.name }
  else
    fields = { IdentityType = "AssumedRoleUser", AccountId = uid, RoleId = id.role.role_id,
               PrincipalId = id.role.role_id .. ":" .. id.session_name,
               Arn = id.role.arn .. "/" .. id.session_name }
  end
  json.ordered(fields, { "IdentityType", "AccountId", "UserId", "RoleId", "PrincipalId", "Arn", "RequestId" })
  return fields, { applied = false, detail = { identity_type = fields.IdentityType, arn = fields.Arn } }
end

-- Operations by Action; ANONYMOUS: those called without a signature.
M.OPERATIONS = {
  AssumeRole = M.AssumeRole,
  AssumeRoleWithOIDC = M.AssumeRoleWithOIDC,
  GetCallerIdentity = M.GetCallerIdentity,
}
M.ANONYMOUS = { AssumeRoleWithOIDC = true }

-- Credentials for a rotating source ("imds", "credentials-uri"): source's
-- settings { role = ARN, credential_lifetime_s, rotation_lead_s }, the
-- session name, the aliyun config and the emulator time. Returns the session
-- and whether it is new, or nil when the source has no role.
function M.rotating_credentials(source, settings, session_name, cfg, now)
  local role = settings.role and cfg.roles[settings.role]
  if not role then
    return nil
  end
  return sessions.current({
    source = source, role = role, session_name = session_name, duration = settings.credential_lifetime_s,
    lead_s = settings.rotation_lead_s, settings = cfg.account_settings[role.account], now = now,
  })
end


return M
