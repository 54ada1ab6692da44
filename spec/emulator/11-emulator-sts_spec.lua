-- sanitizers: none (the emulator: its code runs in nginx, not in this process)
-- The emulator plays Alibaba Cloud's side of the credential chain: STS
-- (AssumeRole, AssumeRoleWithOIDC, GetCallerIdentity) on the Aliyun ports,
-- the ECS instance metadata service on a port of its own, and a credentials
-- URI; and the Live API takes the keys they issue (security token, expiry,
-- the role's account budget and RAM policy). Requests are built by hand and
-- signed with the openssl CLI (spec/helpers/emulator.lua), never with
-- streamctl's core or the emulator's code; the emulator clock is pinned so
-- that every Expiration is exact bytes.
local emu = require "spec.helpers.emulator"
local rates = require "spec.helpers.rate_model"
local cjson = require "cjson"
local config = require "streamctl.emulator.config"

local T = 1767225600                   -- 2026-01-01T00:00:00Z, the pinned emulator time
local function at(dt) return emu.iso8601(T + (dt or 0)) end

local UID = "1234567890123456"
local OTHER_UID = "2000000000000002"
local SLOW_UID = "3000000000000003"
local ROLE = "acs:ram::" .. UID .. ":role/streamctl"
local ROLE_ID = "300000000000000001"
local LONG_ROLE = "acs:ram::" .. UID .. ":role/long-sessions"
local NARROW_ROLE = "acs:ram::" .. UID .. ":role/describe-only"
local FOREIGN_ROLE = "acs:ram::" .. OTHER_UID .. ":role/foreign"
local PARTNER_ROLE = "acs:ram::" .. UID .. ":role/partner"
local OIDC_ROLE = "acs:ram::" .. UID .. ":role/oidc-workload"
local OIDC_ROLE_ID = "300000000000000002"
local SLOW_ROLE = "acs:ram::" .. SLOW_UID .. ":role/slow"
local PROVIDER = "acs:ram::" .. UID .. ":oidc-provider/ack"
local OTHER_PROVIDER = "acs:ram::" .. UID .. ":oidc-provider/other"
local ISSUER = "https://oidc.emulator.invalid/ack"
local ALICE_ID = "200000000000000001"

local SECRETS = {
  LTAIalice = "alice-secret", LTAIroot = "root-secret", LTAIbob = "bob-secret",
  LTAIstranger = "stranger-secret", LTAIslow = "slow-secret", LTAIemulatorKey = "emulator-secret",
}

-- base64url without padding (JWT parts), written here.
local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
local function b64url(s)
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = s:byte(i, i + 2)
    local n = a * 65536 + (b or 0) * 256 + (c or 0)
    local digits = { math.floor(n / 262144) % 64, math.floor(n / 4096) % 64, math.floor(n / 64) % 64, n % 64 }
    for k = 1, (c and 4 or b and 3 or 2) do
      out[#out + 1] = B64:sub(digits[k] + 1, digits[k] + 1)
    end
  end
  return table.concat(out)
end

-- A JWT from a header and claims (JSON text), with any signature part.
local function jwt(header, claims, sig)
  return b64url(header) .. "." .. b64url(claims) .. "." .. (sig or b64url("an external IdP's signature"))
end

-- Tokens of an external IdP, listed in the config: accepted without a
-- signature check, their claims checked all the same.
local CONFIGURED_TOKEN = jwt('{"alg":"RS256","kid":"idp-key-1","typ":"JWT"}',
  '{"iss":"' .. ISSUER .. '","sub":"system:serviceaccount:ci:deployer","aud":["sts.aliyuncs.com","other"],'
    .. '"iat":1767000000,"exp":4102444800}')
local CONFIGURED_EXPIRED = jwt('{"alg":"RS256","kid":"idp-key-1","typ":"JWT"}',
  '{"iss":"' .. ISSUER .. '","sub":"system:serviceaccount:ci:deployer","aud":"sts.aliyuncs.com",'
    .. '"iat":1000000000,"exp":1000003600}')

local LIVE_QPS = { ResumeLiveStream = 5 }

local CONFIG = {
  aliyun = {
    accounts = {
      LTAIalice = { secret = SECRETS.LTAIalice, account = UID, user = "alice", user_id = ALICE_ID, qps = LIVE_QPS },
      LTAIroot = { secret = SECRETS.LTAIroot, account = UID, root = true, qps = LIVE_QPS },
      LTAIbob = { secret = SECRETS.LTAIbob, account = UID, user = "bob", actions = { "live:*" }, qps = LIVE_QPS },
      LTAIstranger = { secret = SECRETS.LTAIstranger, account = OTHER_UID, user = "stranger" },
      -- (one AssumeRole in any 5 s: calls signed one by one, as slowly as a busy machine signs, still land
      -- in one window)
      LTAIslow = { secret = SECRETS.LTAIslow, account = SLOW_UID, user = "carol", qps = { AssumeRole = 0.2 } },
    },
    roles = {
      [ROLE] = { role_id = ROLE_ID },
      [LONG_ROLE] = { max_session_duration = 43200 },
      [NARROW_ROLE] = { actions = { "live:Describe*" } },
      [FOREIGN_ROLE] = {},
      [PARTNER_ROLE] = { external_id = "partner-42" },
      [OIDC_ROLE] = { role_id = OIDC_ROLE_ID, trusted_oidc_providers = { PROVIDER } },
      [SLOW_ROLE] = {},
    },
    oidc_providers = {
      [PROVIDER] = { tokens = { CONFIGURED_TOKEN, CONFIGURED_EXPIRED } },
      [OTHER_PROVIDER] = {},
    },
    imds = { role = ROLE, credential_lifetime_s = 3600, rotation_lead_s = 300 },
    credentials_uri = { role = ROLE, credential_lifetime_s = 1800, rotation_lead_s = 120 },
  },
}

local UUID = "%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x"

-- text as a Lua pattern that matches only itself
local function lit(s)
  return (s:gsub("[%^%$%(%)%%%.%[%]%*%+%-%?]", "%%%0"))
end

local function decode(text)
  local ok, v = pcall(cjson.decode, text or "")
  return ok and v or nil
end

local unpack_list = table.unpack or unpack

local function copy(t)
  local c = {}
  for k, v in pairs(t or {}) do c[k] = v end
  return c
end

describe("the emulator as STS, the metadata service and a credentials URI", function()
  local server

  lazy_setup(function()
    server = emu.start { imds = true, config = CONFIG }
  end)

  lazy_teardown(function()
    if server then server:stop() end
  end)

  before_each(function()
    server:reset()
    server:clock { now = T }
  end)

  -- A signed V1 request. opts: { action, version (default STS's), key,
  -- secret, params, time (emulator seconds after T), method, format }.
  local function v1(opts)
    local q = emu.v1_request {
      action = opts.action, version = opts.version or "2015-04-01", key = opts.key,
      secret = opts.secret or SECRETS[opts.key], params = opts.params, time = T + (opts.time or 0),
      method = opts.method, format = opts.format,
    }
    local status, body, headers = server:request { method = opts.method or "POST", provider = "aliyun",
                                                   path = "/?" .. q }
    return status, body, headers, decode(body)
  end

  -- AssumeRole as the Go and Node SDKs send it: the common parameters in the
  -- query, the role's in a form body, the signature over both.
  local function assume_role_form(key, params, secret)
    local common = {
      Action = "AssumeRole", Version = "2015-04-01", Format = "JSON", AccessKeyId = key,
      SignatureMethod = "HMAC-SHA1", SignatureVersion = "1.0", SignatureNonce = emu.nonce(), Timestamp = at(),
    }
    local all = copy(common)
    for k, v in pairs(params) do all[k] = v end
    local sig = emu.v1_signature("POST", all, secret or SECRETS[key])
    local status, body, headers = server:request {
      method = "POST", provider = "aliyun", path = "/?" .. emu.query(common) .. "&Signature=" .. emu.pct(sig),
      headers = { ["content-type"] = "application/x-www-form-urlencoded" }, body = emu.query(params),
    }
    return status, body, headers, decode(body)
  end

  local function assume(key, role, session, extra)
    local params = { RoleArn = role, RoleSessionName = session or "alice" }
    for k, v in pairs(extra or {}) do params[k] = v end
    return v1 { action = "AssumeRole", key = key, params = params }
  end

  -- Credentials from an AssumeRole that must succeed.
  local function session_of(key, role, session, extra)
    local status, body, _, v = assume(key, role, session, extra)
    assert.equal(200, status, body)
    local c = v.Credentials
    return { ak = c.AccessKeyId, secret = c.AccessKeySecret, token = c.SecurityToken, expiration = c.Expiration }
  end

  local n = 0
  -- A ResumeLiveStream signed with creds ({ak, secret, token}); opts: { time,
  -- token (false: none; a string: that one), v3 }.
  local function resume_request(creds, opts)
    opts = opts or {}
    n = n + 1
    local params = { DomainName = "live.example.com", AppName = "app", StreamName = "sts" .. n,
                     LiveStreamType = "publisher" }
    local token = creds.token
    if opts.token ~= nil then token = opts.token or nil end
    if opts.v3 then
      local headers = {
        host = "127.0.0.1:" .. server.ports.aliyun, ["x-acs-action"] = "ResumeLiveStream",
        ["x-acs-version"] = "2016-11-01", ["x-acs-date"] = at(opts.time), ["x-acs-signature-nonce"] = emu.nonce(),
        ["x-acs-security-token"] = token,
      }
      headers = emu.v3_sign { method = "POST", path = "/", query = params, key = creds.ak, secret = creds.secret,
                              headers = headers }
      return { method = "POST", provider = "aliyun", path = "/?" .. emu.query(params), headers = headers }
    end
    params.SecurityToken = token
    local q = emu.v1_request { action = "ResumeLiveStream", params = params, key = creds.ak, secret = creds.secret,
                               time = T + (opts.time or 0) }
    return { method = "POST", provider = "aliyun", path = "/?" .. q }
  end

  local function live(creds, opts)
    local status, body = server:request(resume_request(creds, opts))
    return status, decode(body), body
  end

  local function key_creds(key)
    return { ak = key, secret = SECRETS[key] }
  end

  describe("AssumeRole", function()
    it("issues a session of the role: the exact bytes, an Expiration from the emulator clock", function()
      local status, body, headers = assume_role_form("LTAIalice", { RoleArn = ROLE, RoleSessionName = "alice" })
      assert.equal(200, status, body)
      local rid, ak, secret, token = body:match("^" .. lit('{"RequestId":"') .. "(" .. UUID .. ")"
        .. lit('","AssumedRoleUser":{"AssumedRoleId":"' .. ROLE_ID .. ':alice","Arn":"' .. ROLE
          .. '/alice"},"Credentials":{"AccessKeyId":"') .. "(STS%.%w+)" .. lit('","AccessKeySecret":"') .. "(%w+)"
        .. lit('","SecurityToken":"') .. "(CAIS[%w+/=]+)" .. lit('","Expiration":"2026-01-01T01:00:00Z"}}') .. "$")
      assert.truthy(rid, body)
      assert.equal(rid, headers["x-acs-request-id"])
      assert.equal("application/json;charset=utf-8", headers["content-type"])
      assert.equal(29, #ak)
      assert.equal(44, #secret)
      assert.equal(516, #token)
      -- the session is listed (without its secrets) and counted
      local view = server:credentials()
      assert.same({ source = "AssumeRole", role = ROLE, account = UID, session_name = "alice", issued_at = T,
                    expires_at = T + 3600, Expiration = "2026-01-01T01:00:00Z", expired = false },
                  view.sessions[ak])
      assert.equal(1, view.issued.AssumeRole)
      local text = cjson.encode(view) .. cjson.encode((server:log()))
      assert.is_nil(text:find(secret, 1, true))
      assert.is_nil(text:find(token:sub(1, 40), 1, true))
    end)

    it("takes its parameters in the query too, with GET or POST and V3, and answers XML for Format=XML", function()
      local status, body = v1 { action = "AssumeRole", key = "LTAIalice", method = "GET",
                                params = { RoleArn = ROLE, RoleSessionName = "py-style", DurationSeconds = "900" } }
      assert.equal(200, status, body)
      assert.equal("2026-01-01T00:15:00Z", decode(body).Credentials.Expiration)
      local params = { RoleArn = ROLE, RoleSessionName = "v3-style" }
      local headers = emu.v3_sign { method = "POST", path = "/", query = params, key = "LTAIalice",
        secret = SECRETS.LTAIalice, headers = {
          host = "127.0.0.1:" .. server.ports.aliyun, ["x-acs-action"] = "AssumeRole",
          ["x-acs-version"] = "2015-04-01", ["x-acs-date"] = at(), ["x-acs-signature-nonce"] = emu.nonce() } }
      status, body = server:request { method = "POST", provider = "aliyun", path = "/?" .. emu.query(params),
                                      headers = headers }
      assert.equal(200, status, body)
      assert.equal(ROLE .. "/v3-style", decode(body).AssumedRoleUser.Arn)
      status, body = v1 { action = "AssumeRole", key = "LTAIalice", format = "XML",
                          params = { RoleArn = ROLE, RoleSessionName = "xml" } }
      assert.equal(200, status, body)
      assert.matches("^<%?xml version='1.0' encoding='UTF%-8'%?><AssumeRoleResponse><RequestId>" .. UUID
        .. "</RequestId><AssumedRoleUser><AssumedRoleId>" .. ROLE_ID .. ":xml</AssumedRoleId><Arn>" .. lit(ROLE)
        .. "/xml</Arn></AssumedRoleUser><Credentials><AccessKeyId>STS%.%w+</AccessKeyId><AccessKeySecret>%w+"
        .. "</AccessKeySecret><SecurityToken>CAIS[%w+/=]+</SecurityToken><Expiration>2026%-01%-01T01:00:00Z"
        .. "</Expiration></Credentials></AssumeRoleResponse>$", body)
    end)

    it("echoes SourceIdentity when it is sent, and only then", function()
      local _, _, _, v = assume("LTAIalice", ROLE, "alice", { SourceIdentity = "alice@example.com" })
      assert.equal("alice@example.com", v.SourceIdentity)
      _, _, _, v = assume("LTAIalice", ROLE, "alice")
      assert.is_nil(v.SourceIdentity)
    end)

    local E = {
      DURATION = "The Min/Max value of DurationSeconds is 15min/1hr.",
      NOT_AUTHORIZED = "You are not authorized to do this action. You should be authorized by RAM.",
    }
    local REFUSALS = {
      { "no RoleArn", "LTAIalice", { RoleSessionName = "alice" }, 400, "MissingRoleArn",
        "RoleArn is mandatory for this action." },
      { "no RoleSessionName", "LTAIalice", { RoleArn = ROLE }, 400, "MissingRoleSessionName",
        "RoleSessionName is mandatory for this action." },
      { "a user's ARN", "LTAIalice", { RoleArn = "acs:ram::" .. UID .. ":user/alice", RoleSessionName = "s1" }, 400,
        "InvalidParameter.RoleArn", "The parameter RoleArn is wrongly formed." },
      { "a one-character session name", "LTAIalice", { RoleArn = ROLE, RoleSessionName = "a" }, 400,
        "InvalidParameter.RoleSessionName", "The parameter RoleSessionName is wrongly formed." },
      { "a 65-character session name", "LTAIalice", { RoleArn = ROLE, RoleSessionName = ("s"):rep(65) }, 400,
        "InvalidParameter.RoleSessionName", "The parameter RoleSessionName is wrongly formed." },
      { "a session name with *", "LTAIalice", { RoleArn = ROLE, RoleSessionName = "abc*abc" }, 400,
        "InvalidParameter.RoleSessionName", "The parameter RoleSessionName is wrongly formed." },
      { "899 seconds", "LTAIalice", { RoleArn = ROLE, RoleSessionName = "s1", DurationSeconds = "899" }, 400,
        "InvalidParameter.DurationSeconds", E.DURATION },
      { "3601 seconds of a 3600 s role", "LTAIalice",
        { RoleArn = ROLE, RoleSessionName = "s1", DurationSeconds = "3601" }, 400,
        "InvalidParameter.DurationSeconds", E.DURATION },
      { "a duration that is not a number", "LTAIalice",
        { RoleArn = ROLE, RoleSessionName = "s1", DurationSeconds = "1h" }, 400,
        "InvalidParameter.DurationSeconds", E.DURATION },
      { "43201 seconds of a 12 h role", "LTAIalice",
        { RoleArn = LONG_ROLE, RoleSessionName = "s1", DurationSeconds = "43201" }, 400,
        "InvalidParameter.DurationSeconds", "The Min/Max value of DurationSeconds is 15min/12hr." },
      { "a policy of 2049 bytes", "LTAIalice",
        { RoleArn = ROLE, RoleSessionName = "s1", Policy = '{"Version":"1","Statement":[]}' .. (" "):rep(2019) },
        400, "InvalidParameter.PolicySize", "The size of Policy must be smaller than 2048 bytes." },
      { "a policy that is not JSON", "LTAIalice", { RoleArn = ROLE, RoleSessionName = "s1", Policy = "{Version:1" },
        400, "InvalidParameter.PolicyGrammar", "The parameter Policy has not passed grammar check." },
      { "a statement without Resource", "LTAIalice", { RoleArn = ROLE, RoleSessionName = "s1",
        Policy = '{"Version":"1","Statement":[{"Effect":"Allow","Action":"live:*"}]}' }, 400,
        "InvalidParameter.PolicyGrammar", "The parameter Policy has not passed grammar check." },
      { "an ExternalId with +", "LTAIalice", { RoleArn = PARTNER_ROLE, RoleSessionName = "s1",
        ExternalId = "partner+42" }, 400, "InvalidParameter.ExternalId", "The parameter ExternalId is wrongly formed." },
      { "the account's own key", "LTAIroot", { RoleArn = ROLE, RoleSessionName = "s1" }, 403, "NoPermission",
        E.NOT_AUTHORIZED, "root" },
      { "a RAM user whose policy lacks sts:AssumeRole", "LTAIbob", { RoleArn = ROLE, RoleSessionName = "s1" }, 403,
        "NoPermission", E.NOT_AUTHORIZED, "policy" },
      { "a role that does not trust the caller's account", "LTAIalice",
        { RoleArn = FOREIGN_ROLE, RoleSessionName = "s1" }, 403, "NoPermission", E.NOT_AUTHORIZED, "trust" },
      { "a role of this account that trusts it, from another account", "LTAIstranger",
        { RoleArn = ROLE, RoleSessionName = "s1" }, 403, "NoPermission", E.NOT_AUTHORIZED, "trust" },
      { "no ExternalId for a role that has one", "LTAIalice", { RoleArn = PARTNER_ROLE, RoleSessionName = "s1" },
        403, "NoPermission", E.NOT_AUTHORIZED, "external_id" },
      { "a wrong ExternalId", "LTAIalice", { RoleArn = PARTNER_ROLE, RoleSessionName = "s1",
        ExternalId = "partner-43" }, 403, "NoPermission", E.NOT_AUTHORIZED, "external_id" },
      { "a role that does not exist", "LTAIalice",
        { RoleArn = "acs:ram::" .. UID .. ":role/nobody", RoleSessionName = "s1" }, 404,
        "EntityNotExist.Role", "The specified Role not exists ." },
    }
    for _, case in ipairs(REFUSALS) do
      local what, key, params, status, code, message, reason = unpack_list(case)
      it("refuses " .. what .. ": " .. status .. " " .. code, function()
        local got, body, headers, v = v1 { action = "AssumeRole", key = key, params = params }
        assert.equal(status, got, body)
        assert.same({ "Code", "HostId", "Message", "Recommend", "RequestId" }, emu.sorted_keys(v))
        assert.equal(code, v.Code)
        assert.equal(message, v.Message)
        assert.equal("sts.aliyuncs.com", v.HostId)
        assert.equal("https://api.aliyun.com/troubleshoot?q=" .. code .. "&product=Sts&requestId=" .. v.RequestId,
          v.Recommend)
        assert.equal(v.RequestId, headers["x-acs-request-id"])
        local entry = server:log { action = "AssumeRole" }[1]
        assert.equal(code, entry.code)
        assert.is_false(entry.applied)
        if reason then assert.equal(reason, entry.detail.reason) end
        assert.same({}, server:credentials().sessions)
      end)
    end

    it("lets the right ExternalId through, and a 12 h session of a role that allows it", function()
      assert.equal("2026-01-01T01:00:00Z",
        session_of("LTAIalice", PARTNER_ROLE, "partner", { ExternalId = "partner-42" }).expiration)
      assert.equal("2026-01-01T12:00:00Z",
        session_of("LTAIalice", LONG_ROLE, "long", { DurationSeconds = "43200" }).expiration)
    end)

    it("lets a role session assume a role (chaining), capped at 3600 s whatever the role allows", function()
      local first = session_of("LTAIalice", ROLE, "first")
      local q = { RoleArn = LONG_ROLE, RoleSessionName = "chained", SecurityToken = first.token }
      q.DurationSeconds = "3601"
      local status, body = v1 { action = "AssumeRole", key = first.ak, secret = first.secret, params = q }
      assert.equal(400, status, body)
      assert.equal("The Min/Max value of DurationSeconds is 15min/1hr.", decode(body).Message)
      q.DurationSeconds = "3600"
      status, body = v1 { action = "AssumeRole", key = first.ak, secret = first.secret, params = q }
      assert.equal(200, status, body)
      assert.equal(LONG_ROLE .. "/chained", decode(body).AssumedRoleUser.Arn)
    end)

    it("answers the signature checks with STS's HostId, and InvalidApi.NotFound for an action STS lacks", function()
      local status, body = v1 { action = "AssumeRole", key = "LTAIalice", secret = "wrong",
                                params = { RoleArn = ROLE, RoleSessionName = "s1" } }
      assert.equal(400, status)
      assert.equal("SignatureDoesNotMatch", decode(body).Code)
      assert.equal("sts.aliyuncs.com", decode(body).HostId)
      status, body = v1 { action = "GetFederationToken", key = "LTAIalice" }
      assert.equal(404, status)
      assert.equal("InvalidApi.NotFound", decode(body).Code)
      -- a Live action named with STS's version is no STS action
      status, body = v1 { action = "ResumeLiveStream", key = "LTAIalice" }
      assert.equal(404, status)
      assert.equal("InvalidApi.NotFound", decode(body).Code)
    end)
  end)

  describe("GetCallerIdentity", function()
    local function identity_body(key, creds)
      local params = creds and { SecurityToken = creds.token } or nil
      local status, body = v1 { action = "GetCallerIdentity", key = creds and creds.ak or key,
                                secret = creds and creds.secret or nil, params = params }
      assert.equal(200, status, body)
      return body
    end

    it("answers Account for the account's own key", function()
      assert.matches("^" .. lit('{"IdentityType":"Account","AccountId":"' .. UID .. '","UserId":"' .. UID
        .. '","PrincipalId":"' .. UID .. '","Arn":"acs:ram::' .. UID .. ':root","RequestId":"') .. UUID .. '"}$',
        identity_body("LTAIroot"))
    end)

    it("answers RAMUser for a RAM user's key", function()
      assert.matches("^" .. lit('{"IdentityType":"RAMUser","AccountId":"' .. UID .. '","UserId":"' .. ALICE_ID
        .. '","PrincipalId":"' .. ALICE_ID .. '","Arn":"acs:ram::' .. UID .. ':user/alice","RequestId":"')
        .. UUID .. '"}$', identity_body("LTAIalice"))
    end)

    it("answers AssumedRoleUser for an issued key", function()
      local creds = session_of("LTAIalice", ROLE, "alice-session")
      assert.matches("^" .. lit('{"IdentityType":"AssumedRoleUser","AccountId":"' .. UID .. '","RoleId":"' .. ROLE_ID
        .. '","PrincipalId":"' .. ROLE_ID .. ':alice-session","Arn":"' .. ROLE .. '/alice-session","RequestId":"')
        .. UUID .. '"}$', identity_body(nil, creds))
    end)

    it("answers for a key with no account (an account of its own, its UID made up) and needs no permission", function()
      local v = decode(identity_body("LTAIemulatorKey"))
      assert.equal("Account", v.IdentityType)
      assert.matches("^1%d%d%d%d%d%d%d%d%d%d%d%d%d%d%d$", v.AccountId)
      assert.equal(server:credentials().principals.LTAIemulatorKey.account, v.AccountId)
      -- bob's policy allows live:* only; GetCallerIdentity needs none
      assert.equal("acs:ram::" .. UID .. ":user/bob", decode(identity_body("LTAIbob")).Arn)
    end)
  end)

  describe("the Live API with issued keys", function()
    it("takes an issued key with its SecurityToken, V1 and V3", function()
      local creds = session_of("LTAIalice", ROLE)
      local status, v, body = live(creds)
      assert.equal(200, status, body)
      assert.is_nil(v.Code)
      status, v, body = live(creds, { v3 = true })
      assert.equal(200, status, body)
      assert.is_nil(v.Code)
      local entry = server:log { action = "ResumeLiveStream" }[1]
      assert.equal(creds.ak, entry.account)
      assert.equal(UID, entry.account_uid)
      assert.equal("***", entry.params.SecurityToken)
    end)

    it("refuses an issued key without its token, or with another session's", function()
      local creds = session_of("LTAIalice", ROLE, "one")
      local other = session_of("LTAIalice", ROLE, "two")
      local status, v = live(creds, { token = false })
      assert.equal(400, status)
      assert.equal("MissingSecurityToken", v.Code)
      status, v = live(creds, { token = other.token })
      assert.equal(400, status)
      assert.equal("InvalidSecurityToken.MismatchWithAccessKey", v.Code)
      status, v = live(creds, { token = false, v3 = true })
      assert.equal(400, status)
      assert.equal("MissingSecurityToken", v.Code)
    end)

    it("refuses an issued key once the emulator clock reaches its Expiration: InvalidSecurityToken.Expired", function()
      local creds = session_of("LTAIalice", ROLE, "short", { DurationSeconds = "900" })
      assert.equal("2026-01-01T00:15:00Z", creds.expiration)
      server:clock { now = T + 899 }
      local status = live(creds, { time = 899 })
      assert.equal(200, status)
      server:clock { now = T + 900 }
      local v, body
      status, v, body = live(creds, { time = 900 })
      assert.equal(400, status)
      assert.equal("InvalidSecurityToken.Expired", v.Code)
      assert.equal("Specified SecurityToken is expired.", v.Message)
      assert.equal("live.aliyuncs.com", v.HostId)
      assert.is_nil(body:find(creds.token:sub(1, 40), 1, true))
      -- STS takes it no more either
      status, body = v1 { action = "GetCallerIdentity", key = creds.ak, secret = creds.secret, time = 900,
                          params = { SecurityToken = creds.token } }
      assert.equal(400, status)
      assert.equal("InvalidSecurityToken.Expired", decode(body).Code)
      assert.is_true(server:credentials().sessions[creds.ak].expired)
    end)

    it("counts an issued key against its role's account: with a RAM user's key, 5 of 8 in a second", function()
      if not emu.timed_bursts() then pending(emu.TIMED_BURSTS) return end
      local creds = session_of("LTAIalice", ROLE)
      local requests = {}
      for i = 1, 8 do
        requests[i] = resume_request(i % 2 == 1 and creds or key_creds("LTAIalice"), { v3 = i % 4 == 0 })
      end
      local got = {}
      for i, r in ipairs(requests) do
        local status, body = server:request(r)
        got[i] = status == 200 and "ok" or decode(body).Code
      end
      local entries = server:log { action = "ResumeLiveStream" }
      assert.equal(8, #entries)
      for i, e in ipairs(entries) do
        assert.equal(UID, e.account_uid)
        assert.equal(got[i] == "ok" and "ok" or "throttled", e.verdict)
      end
      -- the account's window at the limiter's own times, on any machine; the
      -- planned 5 of 8 when the 8 came within its second (rate_model.within)
      local replay = rates.check(entries, 5, "8 of one account at 5/s")
      if rates.within(replay.times, 1, "8 of one account at 5/s") then
        assert.same({ "ok", "ok", "ok", "ok", "ok", "Throttling.User", "Throttling.User", "Throttling.User" }, got)
      end
    end)

    it("applies the role's RAM policy, and the session policy within it", function()
      local narrow = session_of("LTAIalice", NARROW_ROLE)
      local status, v = live(narrow)
      assert.equal(403, status)
      assert.equal("Forbidden.RAM", v.Code)
      local q = emu.v1_request { action = "DescribeLiveStreamsBlockList", key = narrow.ak, secret = narrow.secret,
                                 params = { DomainName = "live.example.com", SecurityToken = narrow.token }, time = T }
      local body
      status, body = server:request { method = "POST", provider = "aliyun", path = "/?" .. q }
      assert.equal(200, status, body)
      -- a session policy narrows a role that allows everything
      local policy = '{"Version":"1","Statement":[{"Effect":"Allow","Action":["live:*"],"Resource":"*"},'
        .. '{"Effect":"Deny","Action":"live:ResumeLiveStream","Resource":"acs:live:*:*:*"}]}'
      local denied = session_of("LTAIalice", ROLE, "denied", { Policy = policy })
      status, v = live(denied)
      assert.equal(403, status)
      assert.equal("Forbidden.RAM", v.Code)
      -- an Allow whose Resource is not "*" allows nothing (the strict reading)
      local scoped = session_of("LTAIalice", ROLE, "scoped", { Policy =
        '{"Version":"1","Statement":[{"Effect":"Allow","Action":"live:*","Resource":"acs:live:*:*:domain/x"}]}' })
      status, v = live(scoped)
      assert.equal(403, status)
      assert.equal("Forbidden.RAM", v.Code)
      local allowed = session_of("LTAIalice", ROLE, "allowed", { Policy =
        '{"Version":"1","Statement":[{"Effect":"Allow","Action":"live:Resume*","Resource":"*"}]}' })
      status = live(allowed)
      assert.equal(200, status)
    end)
  end)

  describe("AssumeRoleWithOIDC", function()
    -- An anonymous request as the Go and Node SDKs send it: Version, Action,
    -- Format and Timestamp in the query, the rest as a form body.
    local function oidc(params, opts)
      opts = opts or {}
      local query = { Action = "AssumeRoleWithOIDC", Version = "2015-04-01", Format = "JSON" }
      if not opts.no_timestamp then query.Timestamp = at(opts.time) end
      for k, v in pairs(opts.query or {}) do query[k] = v end
      local status, body, headers = server:request {
        method = "POST", provider = "aliyun", path = "/?" .. emu.query(query),
        headers = { ["content-type"] = "application/x-www-form-urlencoded" }, body = emu.query(params),
      }
      return status, body, headers, decode(body)
    end

    local function params(token, extra)
      local p = { OIDCProviderArn = PROVIDER, RoleArn = OIDC_ROLE, OIDCToken = token, RoleSessionName = "workload" }
      for k, v in pairs(extra or {}) do p[k] = v end
      return p
    end

    it("issues a session for a token the emulator issued: the exact bytes", function()
      local t = server:oidc_token { provider = PROVIDER }
      assert.equal(ISSUER, t.claims.iss)
      local status, body = oidc(params(t.token))
      assert.equal(200, status, body)
      assert.matches("^" .. lit('{"RequestId":"') .. UUID .. lit('","AssumedRoleUser":{"AssumedRoleId":"'
        .. OIDC_ROLE_ID .. ':workload","Arn":"' .. OIDC_ROLE .. '/workload"},"Credentials":{"AccessKeyId":"')
        .. "STS%.%w+" .. lit('","AccessKeySecret":"') .. "%w+" .. lit('","SecurityToken":"') .. "CAIS[%w+/=]+"
        .. lit('","Expiration":"2026-01-01T01:00:00Z"},"OIDCTokenInfo":{"Subject":'
          .. '"system:serviceaccount:default:streamctl","Issuer":"' .. ISSUER .. '","ClientIds":"sts.aliyuncs.com",'
          .. '"ExpirationTime":"2026-01-01T01:00:00Z","IssuanceTime":"2026-01-01T00:00:00Z",'
          .. '"VerificationInfo":"Success"}}') .. "$", body)
      local entry = server:log { action = "AssumeRoleWithOIDC" }[1]
      assert.equal("anonymous", entry.signature_version)
      assert.equal("***", entry.params.OIDCToken)
      assert.equal(UID, entry.account_uid)
      assert.equal(1, server:credentials().issued.AssumeRoleWithOIDC)
      assert.equal(1, server:state().aliyun.counters.AssumeRoleWithOIDC.accepted)
    end)

    it("takes a token the config lists without checking its signature, and joins its audiences", function()
      local status, body, _, v = oidc(params(CONFIGURED_TOKEN, { DurationSeconds = "1800" }))
      assert.equal(200, status, body)
      assert.equal("sts.aliyuncs.com,other", v.OIDCTokenInfo.ClientIds)
      assert.equal("2026-01-01T00:30:00Z", v.Credentials.Expiration)
      assert.equal("system:serviceaccount:ci:deployer", v.OIDCTokenInfo.Subject)
    end)

    local INVALID = "AuthenticationFail.OIDCToken.Invalid"
    local CASES = {
      { "an empty token", function() return params("") end, INVALID, "The OIDCToken can not empty." },
      { "a token of two parts", function() return params("aaaa.bbbb") end, INVALID,
        "The number of Jwt field should be divided into 3 parts with '.' ." },
      { "a part that is not base64url", function() return params("eyJh.b!c.def") end, INVALID,
        "Cannot decode base64 encoded response(format invalided)." },
      { "claims that are not JSON", function() return params(jwt('{"alg":"RS256"}', "not json")) end, INVALID,
        "The Jwt content is invalid that cannot be recognized." },
      { "an HS256 token", function()
          return params(jwt('{"alg":"HS256","typ":"JWT"}', '{"iss":"' .. ISSUER .. '","sub":"x",'
            .. '"aud":"sts.aliyuncs.com","iat":1767225600,"exp":1767229200}'))
        end, INVALID, "The algorithm HS256 that be specified in Jwt header is unknown." },
      { "an unlisted token the emulator did not sign", function()
          return params(jwt('{"alg":"RS256","kid":"streamctl-emulator","typ":"JWT"}', '{"iss":"' .. ISSUER
            .. '","sub":"x","aud":"sts.aliyuncs.com","iat":1767225600,"exp":1767229200}'))
        end, "AuthenticationFail.OIDCToken.InvalidSignature", "OIDC token validate failed: invalid signature." },
      { "a token of another audience", function()
          return params(server:oidc_token({ provider = PROVIDER, audience = "not-sts" }).token)
        end, "AuthenticationFail.OIDCToken.AudienceNotMatch", "Invalid audience." },
      { "an expired token", function()
          return params(server:oidc_token({ provider = PROVIDER, lifetime_s = 0 }).token)
        end, "AuthenticationFail.OIDCToken.Expired", "This JsonWebToken is expired." },
      { "an expired token the config lists", function() return params(CONFIGURED_EXPIRED) end,
        "AuthenticationFail.OIDCToken.Expired", "This JsonWebToken is expired." },
      { "another provider's token", function()
          return params(server:oidc_token({ provider = OTHER_PROVIDER }).token)
        end, INVALID, "The issuer of the OIDCToken is not the issuer URL of the OIDC provider." },
      { "a provider not registered", function()
          return params(server:oidc_token({ provider = PROVIDER }).token,
            { OIDCProviderArn = "acs:ram::" .. UID .. ":oidc-provider/nope" })
        end, "AuthenticationFail.NoPermission", "No such OIDC Provider registered." },
      { "a role that does not trust the provider", function()
          return params(server:oidc_token({ provider = OTHER_PROVIDER }).token,
            { OIDCProviderArn = OTHER_PROVIDER })
        end, "AuthenticationFail.NoPermission", "There is no permission" },
    }
    for _, case in ipairs(CASES) do
      local what, make, code, message = case[1], case[2], case[3], case[4]
      it("refuses " .. what .. ": 401 " .. code, function()
        local status, body, _, v = oidc(make())
        assert.equal(401, status, body)
        assert.equal(code, v.Code)
        assert.equal(message, v.Message)
        assert.equal("sts.aliyuncs.com", v.HostId)
        assert.same({}, server:credentials().sessions)
      end)
    end

    it("tampering with an issued token's claims breaks its signature", function()
      local token = server:oidc_token({ provider = PROVIDER }).token
      local h, _, sig = token:match("^([^.]+)%.([^.]+)%.([^.]+)$")
      local forged = h .. "." .. b64url('{"iss":"' .. ISSUER .. '","sub":"system:serviceaccount:kube-system:admin",'
        .. '"aud":"sts.aliyuncs.com","iat":1767225600,"exp":1767229200}') .. "." .. sig
      local status, _, _, v = oidc(params(forged))
      assert.equal(401, status)
      assert.equal("AuthenticationFail.OIDCToken.InvalidSignature", v.Code)
    end)

    it("refuses the role and session checks AssumeRole makes, and a request without Timestamp", function()
      local token = server:oidc_token({ provider = PROVIDER }).token
      local status, _, _, v = oidc(params(token, { RoleSessionName = "x" }))
      assert.equal(400, status)
      assert.equal("InvalidParameter.RoleSessionName", v.Code)
      status, _, _, v = oidc(params(token, { DurationSeconds = "3601" }))
      assert.equal(400, status)
      assert.equal("InvalidParameter.DurationSeconds", v.Code)
      status, _, _, v = oidc(params(token, { RoleArn = "acs:ram::" .. UID .. ":role/nobody" }))
      assert.equal(404, status)
      assert.equal("EntityNotExist.Role", v.Code)
      status, _, _, v = oidc(params(token), { no_timestamp = true })
      assert.equal(400, status)
      assert.equal("MissingTimestamp", v.Code)
      status, _, _, v = oidc(params(token), { time = -901 })
      assert.equal(400, status)
      assert.equal("InvalidTimeStamp.Expired", v.Code)
    end)

    it("refuses it signed: the operation is anonymous (the strict reading)", function()
      local token = server:oidc_token({ provider = PROVIDER }).token
      local status, body = v1 { action = "AssumeRoleWithOIDC", key = "LTAIalice", params = params(token) }
      assert.equal(400, status, body)
      assert.equal("InvalidParameter", decode(body).Code)
    end)
  end)

  describe("the metadata service", function()
    local function imds(path, headers, method)
      local status, body, h, err = server:request { url = server.imds_url .. path, method = method or "GET",
                                                     headers = headers }
      return status, body, h, err
    end
    local function get_token(ttl)
      local status, body = imds("/latest/api/token", { ["X-aliyun-ecs-metadata-token-ttl-seconds"] = ttl or "21600" },
        "PUT")
      assert.equal(200, status, body)
      return body
    end
    local ROLE_PATH = "/latest/meta-data/ram/security-credentials/"
    local function creds_pattern(expiration, updated)
      return "^" .. lit('{"AccessKeyId":"') .. "(STS%.%w+)" .. lit('","AccessKeySecret":"') .. "(%w+)"
        .. lit('","Expiration":"' .. expiration .. '","SecurityToken":"') .. "(CAIS[%w+/=]+)"
        .. lit('","LastUpdated":"' .. updated .. '","Code":"Success"}') .. "$"
    end

    it("answers IMDSv2: a token, the role name, the role's credentials (exact bytes), usable on the Live API",
      function()
        local token = get_token()
        assert.matches("^%w+$", token)
        local status, body, headers = imds(ROLE_PATH, { ["X-aliyun-ecs-metadata-token"] = token })
        assert.equal(200, status)
        assert.equal("streamctl", body)
        assert.equal("text/plain", headers["content-type"])
        status, body, headers = imds(ROLE_PATH .. "streamctl", { ["X-aliyun-ecs-metadata-token"] = token })
        assert.equal(200, status, body)
        assert.equal("application/json", headers["content-type"])
        local ak, secret, sts_token = body:match(creds_pattern("2026-01-01T01:00:00Z", "2026-01-01T00:00:00Z"))
        assert.truthy(ak, body)
        assert.equal(200, (live({ ak = ak, secret = secret, token = sts_token })))
        -- the log hides the metadata token and says the GET came with one
        local entry = server:log { provider = "imds", action = "credentials" }[1]
        assert.equal("***", entry.headers["x-aliyun-ecs-metadata-token"])
        assert.equal("v2", entry.detail.version)
        assert.same({ token = 1, role = 1, credentials = 1 }, {
          token = server:state().imds.counters.token.accepted,
          role = server:state().imds.counters.role.accepted,
          credentials = server:state().imds.counters.credentials.accepted })
      end)

    it("answers IMDSv1 (no token) in normal mode, and refuses it in hardened mode with 401", function()
      local status, body = imds(ROLE_PATH)
      assert.equal(200, status)
      assert.equal("streamctl", body)
      assert.equal("v1", server:log({ provider = "imds" })[1].detail.version)
      assert.is_true(server:imds_mode({ hardened = true }).hardened)
      status, body = imds(ROLE_PATH .. "streamctl")
      assert.equal(401, status)
      assert.equal("<html>\r\n<head><title>401 Unauthorized</title></head>\r\n<body>\r\n<center><h1>401 Unauthorized"
        .. "</h1></center>\r\n</body>\r\n</html>\r\n", body)
      assert.equal("TokenRequired", server:log({ provider = "imds" })[2].code)
      status = imds(ROLE_PATH .. "streamctl", { ["X-aliyun-ecs-metadata-token"] = get_token() })
      assert.equal(200, status)
      -- a reset returns to the config's mode
      server:reset()
      assert.is_false(server:imds_mode().hardened)
    end)

    it("refuses a token it never issued, and one past its TTL on the emulator clock, even in normal mode", function()
      local status = imds(ROLE_PATH, { ["X-aliyun-ecs-metadata-token"] = "not-a-token" })
      assert.equal(401, status)
      local token = get_token("60")
      assert.equal(200, (imds(ROLE_PATH, { ["X-aliyun-ecs-metadata-token"] = token })))
      server:clock { now = T + 60 }
      assert.equal(401, (imds(ROLE_PATH, { ["X-aliyun-ecs-metadata-token"] = token })))
      assert.equal("InvalidToken", server:log({ provider = "imds" })[4].code)
    end)

    it("refuses a token PUT without a TTL of 1..21600, a GET of the token path, a PUT of a metadata path", function()
      for _, ttl in ipairs({ "0", "21601", "1h", "-5" }) do
        local status = imds("/latest/api/token", { ["X-aliyun-ecs-metadata-token-ttl-seconds"] = ttl }, "PUT")
        assert.equal(400, status, ttl)
      end
      assert.equal(400, (imds("/latest/api/token", nil, "PUT")))
      assert.equal(200, (imds("/latest/api/token", { ["X-aliyun-ecs-metadata-token-ttl-seconds"] = "1" }, "PUT")))
      local status, _, headers = imds("/latest/api/token")
      assert.equal(405, status)
      assert.equal("PUT", headers.allow)
      status, _, headers = imds(ROLE_PATH, nil, "PUT")
      assert.equal(405, status)
      assert.equal("GET", headers.allow)
    end)

    it("answers an HTML 404 for another role name and another path", function()
      local status, body, headers = imds(ROLE_PATH .. "Streamctl")
      assert.equal(404, status)
      assert.equal("text/html", headers["content-type"])
      assert.matches("404 Not Found", body)
      assert.equal(404, (imds("/latest/meta-data/ram/security-credentials")))
      assert.equal(404, (imds("/latest/meta-data/instance-id")))
      assert.equal(3, server:state().imds.counters.credentials.refused + server:state().imds.counters.other.refused)
    end)

    it("rotates the role's credentials when less than the lead is left; the old stay valid to their end", function()
      local _, first = imds(ROLE_PATH .. "streamctl")
      local ak1, secret1, token1 = first:match(creds_pattern("2026-01-01T01:00:00Z", "2026-01-01T00:00:00Z"))
      assert.truthy(ak1, first)
      -- exactly the lead (300 s) left: the same credentials
      server:clock { now = T + 3300 }
      local _, same = imds(ROLE_PATH .. "streamctl")
      assert.equal(first, same)
      -- less than the lead: new ones, issued now
      server:clock { now = T + 3301 }
      local _, second = imds(ROLE_PATH .. "streamctl")
      local ak2, secret2, token2 = second:match(creds_pattern("2026-01-01T01:55:01Z", "2026-01-01T00:55:01Z"))
      assert.truthy(ak2, second)
      assert.not_equal(ak1, ak2)
      assert.equal(200, (live({ ak = ak1, secret = secret1, token = token1 }, { time = 3301 })))
      server:clock { now = T + 3600 }
      local status, v = live({ ak = ak1, secret = secret1, token = token1 }, { time = 3600 })
      assert.equal(400, status)
      assert.equal("InvalidSecurityToken.Expired", v.Code)
      assert.equal(200, (live({ ak = ak2, secret = secret2, token = token2 }, { time = 3600 })))
      -- one refresh per expiry: three fetches, two credentials
      local view = server:credentials()
      assert.equal(2, view.imds.rotations)
      assert.equal(2, view.issued.imds)
      assert.same({ AccessKeyId = ak2, Expiration = "2026-01-01T01:55:01Z", LastUpdated = "2026-01-01T00:55:01Z" },
        view.imds.current)
      assert.equal(3, server:state().imds.counters.credentials.accepted)
      local rotated = {}
      for _, e in ipairs(server:log { provider = "imds", action = "credentials" }) do
        rotated[#rotated + 1] = e.detail.rotated
      end
      assert.same({ true, false, true }, rotated)
    end)
  end)

  describe("the credentials URI", function()
    local URI_PATTERN = "^" .. lit('{"Code":"Success","AccessKeyId":"') .. "(STS%.%w+)"
      .. lit('","AccessKeySecret":"') .. "(%w+)" .. lit('","SecurityToken":"') .. "(CAIS[%w+/=]+)"
      .. lit('","Expiration":"')

    it("answers the role's credentials (exact bytes), the same until the lead, usable on the Live API", function()
      local status, body, headers = server:request { provider = "aliyun", path = "/credentials-uri" }
      assert.equal(200, status, body)
      assert.equal("application/json", headers["content-type"])
      local ak, secret, token = body:match(URI_PATTERN .. lit('2026-01-01T00:30:00Z"}') .. "$")
      assert.truthy(ak, body)
      assert.equal(200, (live({ ak = ak, secret = secret, token = token })))
      server:clock { now = T + 1680 }
      assert.equal(body, select(2, server:request { provider = "aliyun", path = "/credentials-uri" }))
      server:clock { now = T + 1681 }
      local _, again = server:request { provider = "aliyun", path = "/credentials-uri" }
      assert.truthy(again:match(URI_PATTERN .. lit('2026-01-01T00:58:01Z"}') .. "$"), again)
      assert.equal(3, server:state().aliyun.counters["credentials-uri"].accepted)
      assert.equal(2, server:credentials().credentials_uri.rotations)
    end)

    it("answers over HTTPS too, and 405 for another method", function()
      local curl = require "streamctl.curl"
      -- (the handshake's CPU is this process's: the default timeouts times process.slowdown())
      local slow = require("spec.helpers.process").slowdown()
      local res, err = curl.easy({ ca_file = server.ca_file, connect_timeout_ms = 5000 * slow, timeout_ms = 10000 * slow })
        :request({ url = server.aliyun_tls_url .. "/credentials-uri" })
      assert.is_nil(err)
      assert.equal(200, res.status)
      assert.truthy(res.body:match(URI_PATTERN), res.body)
      local status, body = server:request { method = "POST", provider = "aliyun", path = "/credentials-uri", body = "" }
      assert.equal(405, status)
      assert.equal('{"Code":"MethodNotAllowed","Message":"POST is not allowed: GET only"}', body)
    end)
  end)

  describe("faults, throttling and counters", function()
    it("throttles AssumeRole per account at its qps with Throttling (the notice's code) and a retry-after", function()
      local got = {}
      for i = 1, 3 do
        local status, body, headers = assume("LTAIslow", SLOW_ROLE, "s" .. i)
        got[i] = status == 200 and "ok" or (decode(body).Code .. " " .. tostring(headers["x-acs-retry-after"] ~= nil))
      end
      assert.same({ "ok", "Throttling true", "Throttling true" }, got)
      local c = server:state().aliyun.counters.AssumeRole
      assert.same({ 1, 2 }, { c.accepted, c.throttled })
    end)

    it("injects STS's throttling and internal errors", function()
      server:faults { kind = "throttle", action = "AssumeRole", retry_after_ms = 250 }
      local status, body, headers = assume("LTAIalice", ROLE)
      assert.equal(400, status)
      assert.equal("Throttling.User", decode(body).Code)
      assert.equal("250", headers["x-acs-retry-after"])
      server:faults { kind = "http500", action = "GetCallerIdentity" }
      local code, _, _, v = v1 { action = "GetCallerIdentity", key = "LTAIalice" }
      assert.equal(500, code)
      assert.equal("InternalError", v.Code)
      assert.equal("STS Server Internal Error happened, please send the RequestId to us.", v.Message)
      assert.equal("sts.aliyuncs.com", v.HostId)
      assert.equal(1, server:state().aliyun.counters.AssumeRole.faulted)
      -- the next call goes through
      assert.equal(200, (assume("LTAIalice", ROLE)))
    end)

    it("takes the metadata service down for a period of emulator time (500), then it answers again", function()
      local answer = server:faults { provider = "imds", kind = "http500", duration_s = 60 }
      assert.equal(T + 60, answer.added[1]["until"])
      for _ = 1, 3 do
        local status, body = server:request { url = server.imds_url .. "/latest/meta-data/ram/security-credentials/" }
        assert.equal(500, status)
        assert.matches("500 Internal Server Error", body)
      end
      assert.equal(1, #server:faults().faults.imds)
      server:clock { now = T + 60 }
      assert.equal(200, (server:request { url = server.imds_url .. "/latest/meta-data/ram/security-credentials/" }))
      assert.same({}, server:faults().faults.imds)
      assert.equal(3, server:state().imds.counters.role.faulted)
    end)

    it("drops the metadata service's connections and delays its answers", function()
      server:faults { provider = "imds", kind = "drop", action = "token" }
      local status, _, _, err = server:request { url = server.imds_url .. "/latest/api/token", method = "PUT",
        headers = { ["X-aliyun-ecs-metadata-token-ttl-seconds"] = "60" } }
      assert.is_nil(status)
      assert.truthy(err)
      server:faults { provider = "imds", kind = "delay", delay_ms = 300, action = "credentials" }
      local t0 = require("socket").gettime()
      status = server:request { url = server.imds_url .. "/latest/meta-data/ram/security-credentials/streamctl" }
      assert.equal(200, status)
      local took = require("socket").gettime() - t0
      assert(took >= 0.3, ("the answer came %.4f s after the request, not 0.3 s or more"):format(took))
    end)

    it("refuses kinds that do not apply to the metadata service", function()
      local answer, status = server:control("POST", "faults", { provider = "imds", kind = "throttle" })
      assert.equal(400, status)
      assert.equal("fault: kind throttle does not apply to imds", answer.error)
    end)

    it("fails the credentials URI on demand", function()
      server:faults { kind = "http503", action = "credentials-uri" }
      local status, body = server:request { provider = "aliyun", path = "/credentials-uri" }
      assert.equal(503, status)
      assert.equal('{"Code":"ServiceUnavailable","Message":"injected fault"}', body)
      assert.equal(1, server:state().aliyun.counters["credentials-uri"].faulted)
    end)
  end)
end)

describe("a metadata service on an address given, hardened by its config, with no role", function()
  local server

  lazy_setup(function()
    local port = emu.free_ports(1)[1]
    server = emu.start { imds_listen = "127.0.0.2:" .. port, config = { aliyun = { imds = { hardened = true } } } }
  end)

  lazy_teardown(function()
    if server then server:stop() end
  end)

  it("listens there, refuses a GET without a token (401), and answers 404 for the role", function()
    assert.matches("^http://127%.0%.0%.2:%d+$", server.imds_url)
    assert.matches("IMDS    " .. lit(server.imds_url), server.output)
    assert.equal(401, (server:request { url = server.imds_url .. "/latest/meta-data/ram/security-credentials/" }))
    local status, token = server:request { url = server.imds_url .. "/latest/api/token", method = "PUT",
                                           headers = { ["X-aliyun-ecs-metadata-token-ttl-seconds"] = "30" } }
    assert.equal(200, status)
    assert.equal(404, (server:request { url = server.imds_url .. "/latest/meta-data/ram/security-credentials/",
                                        headers = { ["X-aliyun-ecs-metadata-token"] = token } }))
    assert.equal(404, (server:request { provider = "aliyun", path = "/credentials-uri" }))
    assert.equal(server.ports.imds, server:control("GET", "config").ports.imds)
  end)
end)

describe("an emulator without a metadata service", function()
  local server

  lazy_setup(function()
    server = emu.start {}
  end)

  lazy_teardown(function()
    if server then server:stop() end
  end)

  it("lists no imds provider, refuses imds faults, and keeps the shapes it had", function()
    local state = server:state()
    assert.is_nil(state.imds)
    assert.same({ "aliyun", "zego" }, emu.sorted_keys(state.faults))
    local answer, status = server:control("POST", "faults", { provider = "imds", kind = "http500" })
    assert.equal(400, status)
    assert.matches("the emulator serves no metadata service", answer.error)
    assert.is_nil(server:control("GET", "config").ports.imds)
    assert.is_false(server:imds_mode().served)
  end)
end)

describe("streamctl-emulator's metadata options", function()
  local CASES = {
    { "--imds-listen 300.1.1.1:80", "--imds-listen: expected an IPv4 address and a port, ADDR:PORT "
      .. "(100.100.100.200:80), got 300.1.1.1:80" },
    { "--imds-listen localhost:80", "--imds-listen: expected an IPv4 address and a port, ADDR:PORT "
      .. "(100.100.100.200:80), got localhost:80" },
    { "--imds-port 0", "--imds-port: not a port number (1-65535, decimal digits): 0" },
    -- (issue 47: a count is decimal digits, never what tonumber also takes)
    { "--imds-port 0x50", "--imds-port: not a port number (1-65535, decimal digits): 0x50" },
    { "--aliyun-port 8.08e3", "--aliyun-port: not a port number (1-65535, decimal digits): 8.08e3" },
    { "--dir ''", "--dir must not be empty (see --help)" },
    { "--imds-port 18080", "port 18080 given twice" },
    { "--imds-port 1 --imds-listen 127.0.0.2:2", "give --imds-port or --imds-listen once" },
  }
  for _, case in ipairs(CASES) do
    it("refuses " .. case[1], function()
      local ok, out, code = emu.launcher("start --dir /nonexistent/streamctl-spec " .. case[1])
      assert.is_false(ok)
      assert.equal(2, code)
      assert.equal("streamctl-emulator: " .. case[2] .. "\n", out)
    end)
  end
end)

describe("the config of identities, roles and providers", function()
  local function refused(override)
    local ok, err = pcall(config.build, { aliyun = override })
    assert.is_false(ok)
    return err
  end

  it("names the key that is wrong", function()
    assert.equal('aliyun.roles.acs:ram::1:user/x: expected a key of the form acs:ram::<uid>:role/<name> (name: 1 '
      .. 'to 64 of A-Z a-z 0-9 . -), got "acs:ram::1:user/x"', refused { roles = { ["acs:ram::1:user/x"] = {} } })
    assert.equal("aliyun.roles.acs:ram::1:role/r.max_session_duration: expected a whole number of seconds in "
      .. "3600..43200, got number", refused { roles = { ["acs:ram::1:role/r"] = { max_session_duration = 900 } } })
    assert.equal('aliyun.roles.acs:ram::1:role/r.trusted_oidc_providers[1]: expected OIDC provider ARNs of '
      .. 'aliyun.oidc_providers, got "acs:ram::1:oidc-provider/none"',
      refused { roles = { ["acs:ram::1:role/r"] = { trusted_oidc_providers = { "acs:ram::1:oidc-provider/none" } } } })
    assert.equal('aliyun.imds.role: expected the ARN of a role in aliyun.roles, got "acs:ram::1:role/none"',
      refused { imds = { role = "acs:ram::1:role/none" } })
    assert.equal("aliyun.credentials_uri.rotation_lead_s: 3600 is not less than credential_lifetime_s (3600): every "
      .. "fetch would get new credentials", refused { credentials_uri = { rotation_lead_s = 3600 } })
    assert.equal("aliyun.accounts.LTAIx: a key is the account's own (root) or a RAM user's (user), not both",
      refused { accounts = { LTAIx = { secret = "s", root = true, user = "x" } } })
    assert.equal('aliyun.oidc_providers.acs:ram::1:oidc-provider/p.issuer: expected an https:// URL, got '
      .. '"http://x"', refused { oidc_providers = { ["acs:ram::1:oidc-provider/p"] = { issuer = "http://x" } } })
  end)

  it("gives STS its QPS per account: AssumeRole and AssumeRoleWithOIDC 100", function()
    local cfg = config.build(nil)
    assert.same({ 100, 100, 100 }, { cfg.aliyun.qps.AssumeRole, cfg.aliyun.qps.AssumeRoleWithOIDC,
                                     cfg.aliyun.qps.GetCallerIdentity })
    assert.same({ credential_lifetime_s = 21600, rotation_lead_s = 300, hardened = false }, cfg.aliyun.imds)
  end)
end)
