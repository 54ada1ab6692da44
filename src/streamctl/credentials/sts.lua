--- Alibaba Cloud Security Token Service (STS, RPC OpenAPI, version
-- 2015-04-01): the operations the credential chain needs. `AssumeRole`
-- (signed, by a RAM user's or role's keys), `AssumeRoleWithOIDC`
-- (anonymous: an OIDC token is the proof) and `GetCallerIdentity` (who the
-- keys belong to: the account UID the pacing budget is keyed by).
--
-- This file holds only STS's rules; signing and answers are Alibaba Cloud's
-- (streamctl.pipeline.acs), the pipeline streamctl.pipeline.client. Facts: the STS API pages
-- (RoleSessionName 2 to 64 of letters, digits and `. @ - _`; DurationSeconds
-- from 900 to the role's maximum, at most 43200; Policy 1 to 2048 characters;
-- ExternalId 2 to 1224; AssumeRole and AssumeRoleWithOIDC 100 requests a
-- second per account).
-- @module streamctl.credentials.sts

local acs = require "streamctl.pipeline.acs"
local client = require "streamctl.pipeline.client"
local core = require "streamctl.core"

local type, tostring = type, tostring

local VERSION = "2015-04-01"
local PROVIDER = "sts"

-- A role session name: 2..64 of A-Z a-z 0-9 . @ - _
local function session_name(v)
  if type(v) ~= "string" or #v < 2 or #v > 64 or v:find("[^%w%.@%-_]") then
    return nil, "must be 2 to 64 of A-Z a-z 0-9 . @ - _"
  end
  return v
end
-- An ExternalId: 2..1224 of A-Z a-z 0-9 = , . @ : / - _
local function external_id(v)
  if type(v) ~= "string" or #v < 2 or #v > 1224 or v:find("[^%w=,%.@:/%-_]") then
    return nil, "must be 2 to 1224 of A-Z a-z 0-9 = , . @ : / - _"
  end
  return v
end

-- Every answer carries its Credentials (or the identity); `cap` is the
-- published limit per account (GetCallerIdentity has none published: it is
-- rarely asked, once per credential source). Each is a "read"
-- (streamctl.pipeline.provider): it hands out credentials or says whose they
-- are, and changes nothing of the account's.
local operations = {
  AssumeRole = { effect = "read", method = "POST", idempotent = true, cap = 100, answer = { "Credentials" } },
  AssumeRoleWithOIDC = { effect = "read", method = "POST", idempotent = true, cap = 100, anonymous = true,
                         answer = { "Credentials" } },
  GetCallerIdentity = { effect = "read", method = "POST", idempotent = true,
                        answer = { "AccountId", "Arn", "IdentityType" } },
}

local ROLE_ARN = { name = "role_arn", param = "RoleArn", type = "string", required = true, max_len = 1024 }
local SESSION = { name = "role_session_name", param = "RoleSessionName", type = "custom", check = session_name,
                  required = true }
local DURATION = { name = "duration_seconds", param = "DurationSeconds", type = "integer", min = 900, max = 43200 }
local POLICY = { name = "policy", param = "Policy", type = "string", max_chars = 2048 }

local methods = {
  assume_role = { action = "AssumeRole", fields = { ROLE_ARN, SESSION, DURATION, POLICY,
    { name = "external_id", param = "ExternalId", type = "custom", check = external_id } } },
  assume_role_with_oidc = { action = "AssumeRoleWithOIDC", fields = { ROLE_ARN, SESSION, DURATION, POLICY,
    { name = "oidc_provider_arn", param = "OIDCProviderArn", type = "string", required = true, max_len = 1024 },
    { name = "oidc_token", param = "OIDCToken", type = "string", required = true, max_len = 20000 } } },
  get_caller_identity = { action = "GetCallerIdentity", fields = {} },
}

-- (`measure_skew`: the credentials' Expiration is the provider's time; the
-- client's `server_skew` says how far its clock is from this machine's)
local rules = acs.rules {
  provider = PROVIDER, version = VERSION, endpoint = "https://sts.aliyuncs.com",
  operations = operations, methods = methods, batches = {}, measure_skew = true,
}

local Sts = client.define(rules)
Sts.VERSION = VERSION

--- The credentials in an STS answer, or nil and why. Their Expiration is
-- STS's time: `skew` (seconds STS's clock is ahead of this machine's, from
-- the answer's Date: the client's server_skew) makes it this machine's, and
-- is kept for the cache, which stores STS's time.
function Sts.credentials_of(res, err, skew)
  if not res then return nil, tostring(err) end
  local c = res.Credentials
  local expiration = type(c) == "table" and type(c.Expiration) == "string" and core.parse_utc_timestamp(c.Expiration)
  if not expiration or type(c.AccessKeyId) ~= "string" or type(c.AccessKeySecret) ~= "string" then
    return nil, "STS answered without usable Credentials"
  end
  skew = skew or 0
  return { access_key_id = c.AccessKeyId, access_key_secret = c.AccessKeySecret,
           security_token = c.SecurityToken, expiration = expiration - skew, skew = skew }
end

return Sts
