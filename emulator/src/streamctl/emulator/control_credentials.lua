-- The control endpoints of the emulator's identities and credentials
-- (control_endpoints.lua routes to them): GET /_emulator/credentials, what
-- the config and the emulator issued, without a secret; POST
-- /_emulator/oidc_token, a token AssumeRoleWithOIDC accepts (oidc.lua).
-- Each takes the emulator's settings (config.lua) and returns status,
-- value (the JSON answer).

local json = require "streamctl.emulator.json"
local clock = require "streamctl.emulator.clock"
local imds = require "streamctl.emulator.imds"
local sessions = require "streamctl.emulator.sessions"
local oidc = require "streamctl.emulator.oidc"
local ram = require "streamctl.emulator.ram"
local credentials_uri = require "streamctl.emulator.credentials_uri"

local type, pairs, ipairs, tostring = type, pairs, ipairs, tostring

local M = {}

local function list_copy(t)
  local out = json.array()
  for i, v in ipairs(t or {}) do
    out[i] = v
  end
  return out
end

-- GET /_emulator/credentials, no secrets (no key secret, security token,
-- OIDC token or MAC key):
--   { "principals": { "<AK>": { "type": "Account"|"RAMUser", "account", "user", "user_id" } },
--     "roles": { "<ARN>": { "account", "name", "role_id", "max_session_duration",
--                "trusted_accounts", "trusted_oidc_providers", "external_id", "actions" } },
--     "oidc_providers": { "<ARN>": { "account", "name", "issuer", "client_ids", "tokens": n } },
--     "sessions": { "<STS.AK>": { "source", "role", "account", "session_name", "issued_at",
--                   "expires_at", "Expiration", "expired" } },
--     "issued": { "AssumeRole": n, "AssumeRoleWithOIDC": n, "imds": n, "credentials-uri": n },
--     "imds": <GET /_emulator/imds>,
--     "credentials_uri": { "path", "role", "credential_lifetime_s", "rotation_lead_s",
--                          "current": {"AccessKeyId","Expiration","LastUpdated"}, "rotations" } }
-- ("issued" counts every session since the last reset, by what issued it;
-- "sessions" lists those still kept, expired ones too.)
local function credentials_view(settings, now)
  local a = settings.aliyun
  local principals, roles, providers = {}, {}, {}
  for ak, entry in pairs(a.accounts) do
    local id = entry.identity
    principals[ak] = { type = id.type, account = id.account, user = id.name, user_id = id.user_id }
  end
  for arn, r in pairs(a.roles) do
    roles[arn] = {
      account = r.account, name = r.name, role_id = r.role_id, max_session_duration = r.max_session_duration,
      trusted_accounts = list_copy(r.trusted_accounts), trusted_oidc_providers = list_copy(r.trusted_oidc_providers),
      external_id = r.external_id, actions = r.actions and list_copy(r.actions) or nil,
    }
  end
  for arn, pr in pairs(a.oidc_providers) do
    providers[arn] = { account = pr.account, name = pr.name, issuer = pr.issuer,
                       client_ids = list_copy(pr.client_ids), tokens = #pr.tokens }
  end
  local list, issued = sessions.snapshot(now)
  local current, rotations = sessions.rotating("credentials-uri")
  local uri = a.credentials_uri
  return {
    principals = principals, roles = roles, oidc_providers = providers,
    sessions = list, issued = issued,
    imds = imds.snapshot(now),
    credentials_uri = {
      path = credentials_uri.PATH, role = uri.role,
      credential_lifetime_s = uri.credential_lifetime_s, rotation_lead_s = uri.rotation_lead_s,
      current = sessions.summary(current),
      rotations = rotations,
    },
  }
end

-- GET /_emulator/credentials
function M.show(settings)
  return 200, credentials_view(settings, clock.now())
end

-- The OIDC provider a token is for: `arn`, or the only one configured; nil
-- and a message when there is no such provider.
local function oidc_provider(settings, arn)
  local all = settings.aliyun.oidc_providers
  if arn == nil then
    local only, n = nil, 0
    for k in pairs(all) do
      only, n = k, n + 1
    end
    if n ~= 1 then
      return nil, "oidc_token: provider is required (the ARN of one of aliyun.oidc_providers; "
        .. n .. " are configured)"
    end
    arn = only
  end
  local provider = type(arn) == "string" and all[arn]
  if not provider then
    return nil, "oidc_token: provider " .. tostring(arn) .. " is not one of aliyun.oidc_providers"
  end
  return provider
end

-- POST /_emulator/oidc_token: a token of the emulator's for an OIDC provider
-- of the config. Body (every key optional): "provider" (its ARN; needed when
-- the config has more than one), "subject" (default
-- "system:serviceaccount:default:streamctl"), "audience" (a string or an array
-- of them; default the provider's first client id), "issued_at" (emulator
-- time, default now), "lifetime_s" (default 3600; 0 or less: already expired).
function M.issue_oidc_token(settings, spec)
  if type(spec) ~= "table" then
    return 400, { error = "oidc_token: expected a JSON object" }
  end
  local provider, err = oidc_provider(settings, spec.provider)
  if not provider then
    return 400, { error = err }
  end
  local subject = spec.subject
  if subject == nil then
    subject = "system:serviceaccount:default:streamctl"
  end
  if type(subject) ~= "string" or subject == "" then
    return 400, { error = "oidc_token: subject must be a non-empty string" }
  end
  local audience = spec.audience
  if audience == nil then
    audience = provider.client_ids[1]
  end
  if not ram.string_list(audience) then
    return 400, { error = "oidc_token: audience must be a non-empty string or a non-empty array of them" }
  end
  local issued_at, lifetime = spec.issued_at, spec.lifetime_s
  if issued_at == nil then
    issued_at = clock.now()
  end
  if lifetime == nil then
    lifetime = 3600
  end
  if type(issued_at) ~= "number" or type(lifetime) ~= "number" then
    return 400, { error = "oidc_token: issued_at and lifetime_s must be numbers of seconds" }
  end
  local token, claims = oidc.issue({
    provider = provider, subject = subject, audience = audience,
    issued_at = issued_at, expires_at = issued_at + lifetime,
  })
  return 200, { token = token, claims = claims, provider = provider.arn }
end

return M
