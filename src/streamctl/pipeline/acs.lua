--- Alibaba Cloud's RPC API style (ACS), shared by the products streamctl
-- speaks: how a request is laid out and signed (V1 HMAC-SHA1, or V3
-- ACS3-HMAC-SHA256), the credentials it is signed with (a client's keys, or a
-- holder's current temporary ones), and how answers and error codes read.
-- Each product's file (streamctl.aliyun: ApsaraVideo Live; streamctl.credentials.sts:
-- STS) holds its own rules and makes them with `rules`; the pipeline is
-- streamctl.pipeline.client.
-- @module streamctl.pipeline.acs

local core = require "streamctl.core"
local redact = require "streamctl.base.redact"
local options = require "streamctl.pipeline.options"
local encode = require "streamctl.base.encode"
local errors = require "streamctl.base.errors"
local jsonenc = require "streamctl.base.json"
local keys = require "streamctl.pipeline.keys"
local acs_account = require "streamctl.pipeline.acs_account"
local curl_options = require("streamctl.transport.common").OPTIONS

local type, tostring, tonumber, ipairs, pairs, setmetatable, pcall = type, tostring, tonumber, ipairs, pairs,
  setmetatable, pcall
local format, match = string.format, string.match

local M = {}

-- Each client's STS security token, kept here rather than in the client
-- table, so that no dump of a client shows it (weak keys: it goes with its
-- client). Needed in plain text: it travels in the request as it is.
local TOKENS = setmetatable({}, { __mode = "k" })
acs_account.token_of = function(self) return TOKENS[self] end

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

-- A credential: the rule it breaks, as streamctl.base.validate's custom checks say it.
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

-- The account a client's budget is keyed by (streamctl.pipeline.acs_account).
M.account_id_rule = acs_account.account_id_rule
M.sts_endpoint_for = acs_account.sts_endpoint_for
local account_id_value, account, resolve_account = acs_account.account_id_value, acs_account.account,
  acs_account.resolve_account

-- ---- What every Alibaba Cloud product's client does the same way. Each
-- takes the client (`self`); its product's rules are `self._rules`.

-- The client's fields, from its options and its credentials (taken from
-- the options or the environment by the client: streamctl.credentials);
-- the token is kept in TOKENS.
local function configure(self, o, creds)
  local sts = o.sts_endpoint and o.sts_endpoint.url
  if not sts then
    -- (checked when it is used: a client that never asks STS is not refused for it)
    sts = acs_account.sts_endpoint_for(self.endpoint, keys.variable("ALIBABA_CLOUD_STS_ENDPOINT"))
  end
  -- (the transport's options, for the lookup: never the whole options, which hold the secret)
  local lookup = { transport = o.transport }
  for _, t in ipairs(curl_options) do lookup[t.name] = o[t.name] end
  local fields = { account_id = o.account_id, signature_version = o.signature_version or "v3",
                   _sts_endpoint = sts, _lookup_options = lookup, _lookup_dict = o.shared_dict }
  if creds.credentials then
    fields._holder = creds.credentials
    return fields
  end
  local secret = creds.access_key_secret
  TOKENS[self] = creds.security_token
  fields.access_key_id = creds.access_key_id
  fields._secret = options.is_secret(secret) and secret or core.secret(secret)
  return fields
end

-- A holder in a message: its source (streamctl.credentials.refresh's), else the option.
local function holder_name(h)
  local ok, source = pcall(function() return h.source end)
  return ok and type(source) == "string" and source or "the 'credentials' option"
end

-- The credentials to sign with now: the client's own, or its holder's
-- current ones (each attempt, retries included, asks); or nil and why.
local function signer(self)
  local P = self._rules.provider
  local h = self._holder
  if not h then return self.access_key_id, self._secret, TOKENS[self] end
  local c, err = h:get()
  if not c then
    if type(err) ~= "table" then
      err = errors.new { provider = P, code = "CredentialsUnavailable", kind = "auth", retryable = false,
                         message = format("credentials from %s: %s", holder_name(h), tostring(err)) }
    end
    return nil, err
  end
  -- (a holder of another make may hand out what has expired: never signed with, in its last second either)
  local expiration = c.expiration
  if type(expiration) == "number" and self._clock() >= expiration - 1 then
    return nil, errors.new { provider = P, code = "CredentialsUnavailable", kind = "auth", retryable = false,
      message = format("credentials from %s expired at %s: the holder gave them, nothing was signed with them",
        holder_name(h), core.utc_timestamp(math.floor(expiration))) }
  end
  return c.access_key_id, c.access_key_secret, c.security_token
end

-- What a dry run hides: V1's Signature and SecurityToken parameters, V3's
-- signature in Authorization and its token header.
local REDACT = {
  query = { "Signature", "SecurityToken" },
  headers = { authorization = "signature", ["x-acs-security-token"] = "all" },
}

local function secrets(self)
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

-- `params` parted as a published method's page puts them (`op.body_params`,
-- by name; `Name.N...` by its list's name): the query's (a copy; the
-- call's own table is signed again on a retry) and the body's, or
-- `params` itself and nil when none goes in the body.
local function split(op, params)
  local names = op.body_params
  if not names then return params, nil end
  local query, body = {}, nil
  for k, v in pairs(params) do
    if names[k] or names[match(k, "^[^.]+")] then
      body = body or {}
      body[k] = v
    else
      query[k] = v
    end
  end
  if not body then return params, nil end
  return query, body
end

local FORM = "application/x-www-form-urlencoded"

local function build(self, action, op, params, now, nonce)
  local P, V = self._rules.provider, self._rules.version
  local method = op.method
  local timestamp = timestamp_of(now)
  local form
  params, form = split(op, params) -- (a Body parameter: sent in the body, form-encoded)
  local body = form and core.canonical_query(form) or ""
  if op.anonymous then
    -- unsigned: the common parameters without a key, a nonce or a signature
    params.Action, params.Version, params.Format, params.Timestamp = action, V, "JSON", timestamp
    return redact.with_hidden {
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
    if form then -- (V1 signs every parameter, the body's too; the URL carries the query's and the Signature)
      for k, v in pairs(form) do params[k] = v end
      local signature = core.aliyun_sign_v1(method, params, secret)
      for k in pairs(form) do params[k] = nil end
      params.Signature = signature
      local url = query_url(self, core.canonical_query(params))
      params.Signature = nil
      return redact.with_hidden({
        provider = P, action = action, method = method, url = url,
        headers = { host = self.endpoint.host, ["content-type"] = FORM, traceparent = nil, tracestate = nil },
        body = body,
      }, signature, token)
    end
    local signature, url = core.aliyun_sign_v1(method, params, secret, self.endpoint.query_url) -- (URL made in C)
    return redact.with_hidden({
      provider = P, action = action, method = method, url = url,
      -- (room kept for a trace's headers, set after signing: none then grows the table)
      headers = { host = self.endpoint.host, traceparent = nil, tracestate = nil }, body = "",
    }, signature, token)
  end
  local headers = {
    host = self.endpoint.host,
    ["x-acs-action"] = action,
    ["x-acs-version"] = V,
    ["x-acs-date"] = timestamp,
    ["x-acs-signature-nonce"] = nonce,
    ["x-acs-content-sha256"] = form and core.sha256_hex(body) or EMPTY_SHA256,
    ["content-type"] = form and FORM or nil,
  }
  if token then
    headers["x-acs-accesskey-id"] = access_key_id
    headers["x-acs-security-token"] = token
  end
  local authorization, signature, _, query = core.aliyun_sign_v3 {
    method = method, path = "/", query = params, headers = headers, body = body,
    access_key_id = access_key_id, access_key_secret = secret,
  }
  headers.authorization = authorization
  return redact.with_hidden({
    provider = P, action = action, method = method,
    url = query_url(self, query), headers = headers, body = body,
  }, signature, token)
end

-- A 2xx whose JSON is not the operation's answer ({}, [], no RequestId, a
-- create without TaskId): an answer came back, but not one to trust.
local function not_the_answer(P, action, status, data, why)
  return errors.new {
    provider = P, action = action, http_status = status, code = "InvalidResponse", kind = "response",
    message = format("HTTP %d with JSON that is not the %s answer (%s)", status, action, why),
    request_id = type(data.RequestId) == "string" and data.RequestId or nil,
    retryable = false, outcome_unknown = true,
  }
end

local function decode(self, action, res)
  local rules = self._rules
  local P = rules.provider
  local status, body = res.status, res.body
  local data = jsonenc.decode(body)
  local headers = res.headers or {}
  if type(data) ~= "table" then
    return nil, errors.unreadable(P, action, status, body, "ServiceUnavailable", "JSON")
  end
  if status >= 200 and status < 300 and data.Code == nil then
    if type(data.RequestId) ~= "string" or data.RequestId == "" then
      return nil, not_the_answer(P, action, status, data, "no RequestId")
    end
    -- (a product's own way of saying no inside a 2xx, before anything else)
    local refused = rules.refused and rules.refused(action, status, data)
    if refused then return nil, refused end
    for _, field in ipairs(rules.operations[action].answer or {}) do
      if data[field] == nil then return nil, not_the_answer(P, action, status, data, "no " .. field) end
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
    retryable = RETRYABLE[kind] or (duplicate and rules.operations[action].idempotent) or false,
    outcome_unknown = duplicate or nil,
    retry_after_ms = retry_after,
  }
end

--- A product's rules: `spec` gives `provider`, `version`, `endpoint` (the
-- default), `operations`, `methods`, `batches` and optionally `streams`
-- (the streams an action changes), `refused(action, status, data)` (an
-- error for a 2xx answer that says no in the product's own way) and
-- `identity` (a function giving STS's client class: the account look-up of
-- a shared budget asks it who the keys belong to; streamctl.credentials.sts, which
-- sits above these rules, is never named here); the rest
-- (options, signing, decoding) is Alibaba Cloud's, the same for every
-- product. An operation with `anonymous = true` is sent unsigned
-- (AssumeRoleWithOIDC).
function M.rules(spec)
  local P, V = spec.provider, spec.version
  local r = {
    provider = P,
    defaults = { endpoint = spec.endpoint },
    variables = keys.VARIABLES.aliyun,
    options = {
      { name = "access_key_id", type = "custom", check = header_value },
      { name = "access_key_secret", type = "custom", check = secret_value },
      { name = "security_token", type = "custom", check = token_value },
      { name = "signature_version", type = "string", enum = { "v3", "v1" } },
      { name = "account_id", type = "custom", check = account_id_value },
      -- where the account is asked when account_id is not given (M.sts_endpoint_for)
      { name = "sts_endpoint", type = "custom", check = options.parse_endpoint },
      -- temporary credentials that renew themselves (streamctl.credentials.refresh)
      { name = "credentials", type = "object", methods = { "get" } },
    },
    operations = spec.operations,
    methods = spec.methods,
    batches = spec.batches,
    streams = spec.streams or function() return nil end,
    version = V, refused = spec.refused, identity = spec.identity, ends = spec.ends,
    measure_skew = spec.measure_skew,
    -- every method the product publishes (streamctl.pipeline.api); a list parameter written Name.N
    -- (its Body parameters sent form-encoded in the body, signed as the SDKs sign them: `split`)
    api = spec.api, default_cap = spec.default_cap, lists = "indexed", bodies = { form = true },
    configure = configure, account = account, resolve_account = resolve_account,
    build = build, decode = decode, secrets = secrets, redact = REDACT,
  }

  --- Aliyun sends an array parameter as one JSON array string: SourceUrls=["u1","u2"]
  -- (under its own name: `SourceUrls[]`, ZEGO's way to write an array, is `SourceUrls`).
  function r.array(name, list)
    if name:sub(-2) == "[]" then name = name:sub(1, -3) end
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

  return r
end

return M
