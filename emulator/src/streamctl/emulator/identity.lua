-- Who is who on the Alibaba Cloud side: the identity behind each configured
-- AccessKey (the account's own key, or a RAM user's), the RAM roles, the
-- OIDC identity providers, and the settings of the ECS metadata service and
-- the credentials URI. Built from the config file by config.lua (plain Lua,
-- no nginx API, so specs can build a config outside nginx); the STS, IMDS and
-- credentials-URI modules read the result.
--
-- Config keys (all under "aliyun"; config.lua's header shows them in place):
--
--   accounts.<AK>.root: true       the account's own (root) AccessKey:
--                                  GetCallerIdentity answers IdentityType
--                                  "Account", and AssumeRole is refused
--   accounts.<AK>.user: "alice"    a RAM user's key (1..64 of A-Z a-z 0-9 . @ _ -)
--   accounts.<AK>.user_id: "2..."  that user's id (decimal digits; default: derived)
--     A key with neither is a RAM user's when it has an "account" (its name is
--     the AccessKeyId), and the root key of an account of its own otherwise
--     (the existing meaning of a key without "account"). The UID of a key
--     without "account" is derived from its AccessKeyId (16 digits, the same
--     every run); its rate-limit budget stays its own (aliyun_gateway.lua).
--
--   roles: { "acs:ram::<uid>:role/<name>": {
--       "max_session_duration": 3600,      -- 3600..43200 (RAM's range); default 3600
--       "trusted_accounts": ["<uid>"],     -- accounts whose RAM users and roles may
--                                          -- AssumeRole; default: the role's own
--       "trusted_oidc_providers": ["acs:ram::<uid>:oidc-provider/<name>"],
--                                          -- providers AssumeRoleWithOIDC may use; default none
--       "external_id": "abcd1234",         -- when set, AssumeRole must send it
--       "actions": ["live:*"],             -- the role's RAM policy (as a key's "actions");
--                                          -- absent: every action
--       "role_id": "3..." } }              -- default: derived from the ARN (18 digits)
--     The role name is RAM's: 1..64 of A-Z a-z 0-9 . - (CreateRole's page).
--
--   oidc_providers: { "acs:ram::<uid>:oidc-provider/<name>": {
--       "issuer": "https://...",           -- the tokens' "iss"; default
--                                          -- "https://oidc.emulator.invalid/<name>"
--       "client_ids": ["sts.aliyuncs.com"],-- accepted "aud" values; default that one
--       "tokens": ["<jwt>", ...] } }       -- tokens accepted without a signature check
--                                          -- (their claims are checked as any token's)
--
--   imds: { "role": "<role ARN>",          -- the instance's RAM role (one of "roles");
--                                          -- none: the instance has no role
--           "credential_lifetime_s": 21600,-- lifetime of the role credentials it hands out
--           "rotation_lead_s": 300,        -- new ones when less than this is left
--           "hardened": false }            -- true: token-only (security hardening mode)
--
--   credentials_uri: { "role": "<role ARN>", "credential_lifetime_s": 3600,
--                      "rotation_lead_s": 300 }
--
-- Defaults where the documents are silent: the ECS role credentials' lifetime
-- and when the platform renews them are not documented (CREDENTIALS.md §8);
-- 6 hours and 5 minutes before the end are the emulator's choice. A short
-- lead is the strict reading: a client that asks again before then gets the
-- same credentials, and must not ask in a loop.

local type, pairs, ipairs, error = type, pairs, ipairs, error
local byte, format, match, sub, find = string.byte, string.format, string.match, string.sub, string.find
local floor = math.floor
local sort = table.sort

local M = {}

local MAX_UID = 32

-- n decimal digits that depend only on `text`, the first one `lead`: the
-- emulator's made-up ids (UIDs, user and role ids), the same every run and
-- under every Lua (integer arithmetic below 2^53).
function M.digits(text, n, lead)
  local h1, h2 = 7, 13
  for i = 1, #text do
    local b = byte(text, i)
    h1 = (h1 * 31 + b) % 2147483647
    h2 = (h2 * 131 + b) % 2147483629
  end
  return lead .. sub(format("%010d%010d", h1, h2), 1, n - 1)
end

local function is_uid(s)
  return type(s) == "string" and #s >= 1 and #s <= MAX_UID and not find(s, "%D")
end

-- A RAM ARN acs:ram::<uid>:<kind>/<name> (name: 1..max_name of A-Z a-z 0-9 . -):
-- its UID and name, or nil.
local function parse_arn(s, kind, max_name)
  if type(s) ~= "string" then
    return nil
  end
  local uid, k, name = match(s, "^acs:ram::(%d+):([%w%-]+)/([%w%.%-]+)$")
  if not uid or k ~= kind or #uid > MAX_UID or #name > max_name then
    return nil
  end
  return uid, name
end

-- A role ARN's account UID and role name, or nil.
function M.parse_role_arn(s)
  return parse_arn(s, "role", 64)
end

-- An OIDC provider ARN's account UID and provider name, or nil.
function M.parse_provider_arn(s)
  return parse_arn(s, "oidc-provider", 128)
end

local function fail(key, what, got)
  local shown = type(got) == "string" and format("%q", got) or type(got)
  error(format("%s: expected %s, got %s", key, what, shown), 0)
end

local function check_integer(v, key, lo, hi, what)
  if type(v) ~= "number" or floor(v) ~= v or v < lo or (hi and v > hi) then
    fail(key, what, v)
  end
  return v
end

local function check_strings(v, key, what, test)
  if type(v) ~= "table" then
    fail(key, "an array of " .. what, v)
  end
  local n = 0
  for _ in pairs(v) do
    n = n + 1
  end
  local out = {}
  for i = 1, n do
    local s = v[i]
    if type(s) ~= "string" or (test and not test(s)) then
      fail(format("%s[%d]", key, i), what, s)
    end
    out[i] = s
  end
  return out
end

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do
    keys[#keys + 1] = k
  end
  sort(keys)
  return keys
end

local function object(v, key)
  if v ~= nil and type(v) ~= "table" then
    fail(key, "an object", v)
  end
  return v or {}
end

-- The identity of each configured key: account.identity = { type =
-- "Account" | "RAMUser", account = UID, name (RAM user), user_id }.
local function key_identities(accounts)
  for _, ak in ipairs(sorted_keys(accounts)) do
    local a = accounts[ak]
    local path = "aliyun.accounts." .. ak
    if a.root ~= nil and type(a.root) ~= "boolean" then
      fail(path .. ".root", "true or false", a.root)
    end
    if a.user ~= nil and (type(a.user) ~= "string" or not match(a.user, "^[%w%.@_%-]+$") or #a.user > 64) then
      fail(path .. ".user", "a RAM user name (1 to 64 of A-Z a-z 0-9 . @ _ -)", a.user)
    end
    if a.user_id ~= nil and not is_uid(a.user_id) then
      fail(path .. ".user_id", "a string of decimal digits", a.user_id)
    end
    if a.root and (a.user ~= nil or a.user_id ~= nil) then
      error(path .. ": a key is the account's own (root) or a RAM user's (user), not both", 0)
    end
    local uid = a.account or M.digits("uid:" .. ak, 16, "1")
    if a.root or (a.account == nil and a.user == nil) then
      a.identity = { type = "Account", account = uid }
    else
      local name = a.user or ak
      a.identity = { type = "RAMUser", account = uid, name = name,
                     user_id = a.user_id or M.digits("user:" .. uid .. ":" .. name, 16, "2") }
    end
  end
end

local function build_providers(from)
  local out = {}
  from = object(from, "aliyun.oidc_providers")
  for _, arn in ipairs(sorted_keys(from)) do
    local path = "aliyun.oidc_providers." .. arn
    local uid, name = M.parse_provider_arn(arn)
    if not uid then
      fail(path, "a key of the form acs:ram::<uid>:oidc-provider/<name>", arn)
    end
    local v = object(from[arn], path)
    local issuer = v.issuer
    if issuer == nil then
      issuer = "https://oidc.emulator.invalid/" .. name
    elseif type(issuer) ~= "string" or not match(issuer, "^https://[^%s]+$") then
      fail(path .. ".issuer", "an https:// URL", issuer)
    end
    local client_ids = { "sts.aliyuncs.com" }
    if v.client_ids ~= nil then
      client_ids = check_strings(v.client_ids, path .. ".client_ids", "client ids (non-empty strings)",
        function(s) return s ~= "" end)
      if #client_ids == 0 then
        fail(path .. ".client_ids", "at least one client id", v.client_ids)
      end
    end
    local tokens = {}
    if v.tokens ~= nil then
      tokens = check_strings(v.tokens, path .. ".tokens", "tokens (strings)")
    end
    out[arn] = { arn = arn, account = uid, name = name, issuer = issuer, client_ids = client_ids, tokens = tokens }
  end
  return out
end

local function build_roles(from, providers, check_actions)
  local out = {}
  from = object(from, "aliyun.roles")
  for _, arn in ipairs(sorted_keys(from)) do
    local path = "aliyun.roles." .. arn
    local uid, name = M.parse_role_arn(arn)
    if not uid then
      fail(path, "a key of the form acs:ram::<uid>:role/<name> (name: 1 to 64 of A-Z a-z 0-9 . -)", arn)
    end
    local v = object(from[arn], path)
    local role = {
      arn = arn, account = uid, name = name,
      max_session_duration = 3600, trusted_accounts = { uid }, trusted_oidc_providers = {},
    }
    if v.max_session_duration ~= nil then
      role.max_session_duration = check_integer(v.max_session_duration, path .. ".max_session_duration",
        3600, 43200, "a whole number of seconds in 3600..43200")
    end
    if v.trusted_accounts ~= nil then
      role.trusted_accounts = check_strings(v.trusted_accounts, path .. ".trusted_accounts",
        "account UIDs (strings of decimal digits)", is_uid)
    end
    if v.trusted_oidc_providers ~= nil then
      role.trusted_oidc_providers = check_strings(v.trusted_oidc_providers, path .. ".trusted_oidc_providers",
        "OIDC provider ARNs of aliyun.oidc_providers", function(s) return providers[s] ~= nil end)
    end
    if v.external_id ~= nil then
      if type(v.external_id) ~= "string" or v.external_id == "" then
        fail(path .. ".external_id", "a non-empty string", v.external_id)
      end
      role.external_id = v.external_id
    end
    if v.actions ~= nil then
      check_actions(v.actions, path .. ".actions")
      role.actions = v.actions
    end
    if v.role_id ~= nil then
      if not is_uid(v.role_id) then
        fail(path .. ".role_id", "a string of decimal digits", v.role_id)
      end
      role.role_id = v.role_id
    else
      role.role_id = M.digits("role:" .. arn, 18, "3")
    end
    out[arn] = role
  end
  return out
end

-- A rotating source of role credentials (imds, credentials_uri).
local function build_source(from, key, defaults, roles, extra)
  local v = object(from, key)
  local out = {}
  for k, d in pairs(defaults) do
    out[k] = d
  end
  if v.role ~= nil then
    if type(v.role) ~= "string" or not roles[v.role] then
      fail(key .. ".role", "the ARN of a role in aliyun.roles", v.role)
    end
    out.role = v.role
  end
  for _, k in ipairs({ "credential_lifetime_s", "rotation_lead_s" }) do
    if v[k] ~= nil then
      out[k] = check_integer(v[k], key .. "." .. k, k == "rotation_lead_s" and 0 or 1, nil,
        "a whole number of seconds" .. (k == "rotation_lead_s" and "" or " above 0"))
    end
  end
  if out.rotation_lead_s >= out.credential_lifetime_s then
    error(format("%s.rotation_lead_s: %d is not less than credential_lifetime_s (%d): every fetch would "
      .. "get new credentials", key, out.rotation_lead_s, out.credential_lifetime_s), 0)
  end
  for name, kind in pairs(extra or {}) do
    if v[name] ~= nil then
      if type(v[name]) ~= kind then
        fail(key .. "." .. name, "a " .. kind, v[name])
      end
      out[name] = v[name]
    end
  end
  return out
end

M.IMDS_DEFAULTS = { credential_lifetime_s = 21600, rotation_lead_s = 300, hardened = false }
M.URI_DEFAULTS = { credential_lifetime_s = 3600, rotation_lead_s = 300 }

-- Fills cfg.aliyun's identities, roles, providers, imds, credentials_uri and
-- account_settings from the override's aliyun section `from` (may be nil).
-- check_actions: config.lua's checker of a RAM action list. Raises with a
-- message naming the key.
function M.build(aliyun, from, check_actions)
  from = from or {}
  key_identities(aliyun.accounts)
  aliyun.oidc_providers = build_providers(from.oidc_providers)
  aliyun.roles = build_roles(from.roles, aliyun.oidc_providers, check_actions)
  aliyun.imds = build_source(from.imds, "aliyun.imds", M.IMDS_DEFAULTS, aliyun.roles, { hardened = "boolean" })
  aliyun.credentials_uri = build_source(from.credentials_uri, "aliyun.credentials_uri", M.URI_DEFAULTS,
    aliyun.roles)
  -- The budget settings of each UID's keys (config.lua made sure they agree),
  -- for the STS sessions of that account, which have none of their own.
  local settings = {}
  for _, ak in ipairs(sorted_keys(aliyun.accounts)) do
    local a = aliyun.accounts[ak]
    if a.account and not settings[a.account] then
      settings[a.account] = { qps = a.qps, rate_limiter = a.rate_limiter }
    end
  end
  aliyun.account_settings = settings
  return aliyun
end


return M
