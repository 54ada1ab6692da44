--- Alibaba Cloud's RPC API style (ACS), shared by the products streamctl
-- speaks: how a request is laid out and signed (V1 HMAC-SHA1, or V3
-- ACS3-HMAC-SHA256), the credentials it is signed with (a client's keys, or a
-- holder's current temporary ones), and how answers and error codes read.
-- Each product's file (streamctl.aliyun: ApsaraVideo Live; streamctl.sts:
-- STS) holds its own rules and makes them with `rules`; the pipeline is
-- streamctl.client.
-- @module streamctl.acs

local core = require "streamctl.core"
local options = require "streamctl.options"
local encode = require "streamctl.encode"
local errors = require "streamctl.errors"
local jsonenc = require "streamctl.json"

local type, tostring, tonumber, ipairs, setmetatable = type, tostring, tonumber, ipairs, setmetatable
local format = string.format

local M = {}

-- Each client's STS security token, kept here rather than in the client
-- table, so that no dump of a client shows it (weak keys: it goes with its
-- client). Needed in plain text: it travels in the request as it is.
local TOKENS = setmetatable({}, { __mode = "k" })

local KIND = {
  ["Throttling"] = "throttled", ["Throttling.User"] = "throttled", ["Throttling.Api"] = "throttled",
  ["InternalError"] = "server", ["ServiceUnavailable"] = "server",
  ["SignatureDoesNotMatch"] = "signature", ["IncompleteSignature"] = "signature",
  -- A copy of this very request arrived first (a transport, libcurl among them,
  -- re-sends once when a reused connection closes without an answer): what
  -- the first copy did is unknown, not wrong.
  ["SignatureNonceUsed"] = "duplicate",
  ["InvalidTimeStamp.Expired"] = "clock", ["InvalidTimeStamp.Format"] = "signature",
  ["InvalidAccessKeyId.NotFound"] = "auth", ["InvalidAccessKeyId.Inactive"] = "auth",
  ["InvalidSecurityToken.Expired"] = "auth", ["InvalidSecurityToken.MismatchWithAccessKey"] = "auth",
  ["InvalidSecurityToken.Malformed"] = "auth", ["Forbidden.RAM"] = "auth", ["Forbidden"] = "auth",
  ["InvalidParameter"] = "validation", ["MissingParameter"] = "validation",
}
local RETRYABLE = errors.RETRYABLE_KINDS

-- A credential: the rule it breaks, as streamctl.validate's custom checks say it.
local function header_value(v)
  local why = options.header_rule(v)
  if why then return nil, why end
  return v
end
local function token_value(v)
  local why = options.header_rule(v, options.MAX_TOKEN)
  if why then return nil, why end
  return v
end
local function secret_value(v)
  local why = options.secret_rule(v)
  if why then return nil, why end
  return v
end

-- The account UID: Alibaba Cloud counts an API's QPS per account, over every
-- AccessKey and STS session of its RAM users, so the pacing budget is keyed
-- by it (rules.account). Decimal digits, as a string: a UID has 16, more than
-- a Lua 5.1 number keeps exactly.
local MAX_ACCOUNT_ID = 32
local function account_id_rule(v)
  if type(v) ~= "string" or #v < 1 or #v > MAX_ACCOUNT_ID or v:find("%D") then
    return format("must be a string of 1 to %d decimal digits (the account UID)", MAX_ACCOUNT_ID)
  end
  return nil
end
local function account_id_value(v)
  local why = account_id_rule(v)
  if why then return nil, why end
  return v
end

--- The rule an `account_id` breaks (a message fragment), or nil.
M.account_id_rule = account_id_rule

--- A product's rules: `spec` gives `provider`, `version`, `endpoint` (the
-- default), `operations`, `methods`, `batches` and optionally `streams`
-- (the streams an action changes) and `refused(action, status, data)` (an
-- error for a 2xx answer that says no in the product's own way); the rest
-- (options, signing, decoding) is Alibaba Cloud's, the same for every
-- product. An operation with `anonymous = true` is sent unsigned
-- (AssumeRoleWithOIDC).
function M.rules(spec)
  local P, V = spec.provider, spec.version
  local r = {
    provider = P,
    defaults = { endpoint = spec.endpoint },
    options = {
      { name = "access_key_id", type = "custom", check = header_value },
      { name = "access_key_secret", type = "custom", check = secret_value },
      { name = "security_token", type = "custom", check = token_value },
      { name = "signature_version", type = "string", enum = { "v3", "v1" } },
      { name = "account_id", type = "custom", check = account_id_value },
      -- temporary credentials that renew themselves (streamctl.credentials.refresh)
      { name = "credentials", type = "object", methods = { "get" } },
    },
    operations = spec.operations,
    methods = spec.methods,
    batches = spec.batches,
    streams = spec.streams or function() return nil end,
  }

  --- Aliyun sends an array parameter as one JSON array string: SourceUrls=["u1","u2"].
  function r.array(name, list)
    return name, jsonenc.string_array(list)
  end

  function r.nonce()
    return core.uuid4()
  end

  --- A nonce goes into a header (V3) or the signed query (V1): 1..64 printable
  -- characters (the official SDKs send a UUID).
  function r.nonce_rule(n)
    if type(n) ~= "string" or n == "" then return "is not a non-empty string" end
    if #n > 64 or n:find("[^%w%-_.~]") then return "is not 1..64 of A-Z a-z 0-9 - _ . ~" end
    return nil
  end

  -- The common parameters of both signature versions: never taken from a caller.
  r.common_params = {}
  for _, name in ipairs { "Action", "Version", "Format", "AccessKeyId", "SignatureMethod", "SignatureVersion",
                          "SignatureNonce", "SignatureType", "Timestamp", "SecurityToken", "Signature" } do
    r.common_params[name:lower()] = true
  end

  -- The client's fields, from its options and its credentials (taken from
  -- the options or the environment by the client: streamctl.credentials);
  -- the token is kept in TOKENS.
  function r.configure(self, o, creds)
    if creds.credentials then
      return { account_id = o.account_id, signature_version = o.signature_version or "v3",
               _holder = creds.credentials }
    end
    local secret = creds.access_key_secret
    TOKENS[self] = creds.security_token
    return {
      access_key_id = creds.access_key_id,
      account_id = o.account_id,
      signature_version = o.signature_version or "v3",
      _secret = options.is_secret(secret) and secret or core.secret(secret),
    }
  end

  --- The budget's owner: the account UID when `account_id` is given, so that
  -- every key of one account shares one budget (in a shared store: Redis,
  -- shared_dict, one rate_limit_store); else the AccessKeyId, a budget of its
  -- own, which over-sends when several keys of one account run at once.
  function r.account(self)
    local h = self._holder
    return self.account_id or self.access_key_id or h.account_id or ("source " .. tostring(h.source or h))
  end

  -- The credentials to sign with now: the client's own, or its holder's
  -- current ones (each attempt, retries included, asks); or nil and why.
  local function signer(self)
    local h = self._holder
    if not h then return self.access_key_id, self._secret, TOKENS[self] end
    local c, err = h:get()
    if not c then return nil, err end
    return c.access_key_id, c.access_key_secret, c.security_token
  end

  -- What a dry run hides: V1's Signature and SecurityToken parameters, V3's
  -- signature in Authorization and its token header.
  r.redact = {
    query = { "Signature", "SecurityToken" },
    headers = { authorization = "signature", ["x-acs-security-token"] = "all" },
  }

  function r.secrets(self)
    return { TOKENS[self] }
  end

  local function query_url(self, q)
    return q ~= "" and self.endpoint.query_url .. q or self.endpoint.url .. "/"
  end

  -- SHA-256 of the empty body (every request's body is empty), written out:
  -- hashing it when the module loads would start OpenSSL's digests in every
  -- process that requires streamctl (2 MB and a millisecond). spec/02 checks it.
  local EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

  -- The signing time's text (ISO 8601, UTC), made once a second.
  local timestamp_of = encode.per_second(core.utc_timestamp)

  function r.build(self, action, op, params, now, nonce)
    local method = op.method
    local timestamp = timestamp_of(now)
    if op.anonymous then
      -- unsigned: the common parameters without a key, a nonce or a signature
      params.Action, params.Version, params.Format, params.Timestamp = action, V, "JSON", timestamp
      return {
        provider = P, action = action, method = method, url = query_url(self, core.canonical_query(params)),
        headers = { host = self.endpoint.host }, body = "",
      }
    end
    local access_key_id, secret, token = signer(self)
    if not access_key_id then
      secret.action = action
      return nil, secret
    end
    if self.signature_version == "v1" then
      params.Action = action
      params.Version = V
      params.Format = "JSON"
      params.AccessKeyId = access_key_id
      params.SignatureMethod = "HMAC-SHA1"
      params.SignatureVersion = "1.0"
      params.SignatureNonce = nonce
      params.Timestamp = timestamp
      -- (params is the call's own, signed again on a retry: every common
      -- parameter is set each time, the token cleared when there is none)
      params.SecurityToken = token
      local _, url = core.aliyun_sign_v1(method, params, secret, self.endpoint.query_url) -- (the URL, made in C)
      return {
        provider = P, action = action, method = method, url = url,
        headers = { host = self.endpoint.host }, body = "",
      }
    end
    local headers = {
      host = self.endpoint.host,
      ["x-acs-action"] = action,
      ["x-acs-version"] = V,
      ["x-acs-date"] = timestamp,
      ["x-acs-signature-nonce"] = nonce,
      ["x-acs-content-sha256"] = EMPTY_SHA256,
    }
    if token then
      headers["x-acs-accesskey-id"] = access_key_id
      headers["x-acs-security-token"] = token
    end
    local authorization, _, _, query = core.aliyun_sign_v3 {
      method = method, path = "/", query = params, headers = headers, body = "",
      access_key_id = access_key_id, access_key_secret = secret,
    }
    headers.authorization = authorization
    return {
      provider = P, action = action, method = method,
      url = query_url(self, query), headers = headers, body = "",
    }
  end

  -- A 2xx whose JSON is not the operation's answer ({}, [], no RequestId, a
  -- create without TaskId): an answer came back, but not one to trust.
  local function not_the_answer(action, status, data, why)
    return errors.new {
      provider = P, action = action, http_status = status, code = "InvalidResponse", kind = "response",
      message = format("HTTP %d with JSON that is not the %s answer (%s)", status, action, why),
      request_id = type(data.RequestId) == "string" and data.RequestId or nil,
      retryable = false, outcome_unknown = true,
    }
  end

  function r.decode(_, action, res)
    local status, body = res.status, res.body
    local data = jsonenc.decode(body)
    local headers = res.headers or {}
    if type(data) ~= "table" then
      return nil, errors.unreadable(P, action, status, body, "ServiceUnavailable", "JSON")
    end
    if status >= 200 and status < 300 and data.Code == nil then
      if type(data.RequestId) ~= "string" or data.RequestId == "" then
        return nil, not_the_answer(action, status, data, "no RequestId")
      end
      -- (a product's own way of saying no inside a 2xx, before anything else)
      local refused = spec.refused and spec.refused(action, status, data)
      if refused then return nil, refused end
      for _, field in ipairs(spec.operations[action].answer or {}) do
        if data[field] == nil then return nil, not_the_answer(action, status, data, "no " .. field) end
      end
      return data
    end
    local code = data.Code and tostring(data.Code) or format("HTTP%d", status)
    local kind = KIND[code] or (code:find("^Throttling") and "throttled") or (status >= 500 and "server") or "service"
    local retry_after = tonumber(headers["x-acs-retry-after"])
    local duplicate = kind == "duplicate"
    return nil, errors.new {
      provider = P, action = action, http_status = status, code = code, kind = kind,
      message = data.Message and tostring(data.Message) or "", request_id = data.RequestId,
      retryable = RETRYABLE[kind] or (duplicate and spec.operations[action].idempotent) or false,
      outcome_unknown = duplicate or nil,
      retry_after_ms = retry_after,
    }
  end

  return r
end

return M
