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
local log = require "streamctl.base.log"
local keys = require "streamctl.pipeline.keys"
local curl_options = require("streamctl.transport.common").OPTIONS

local type, tostring, tonumber, ipairs, pairs, setmetatable, pcall = type, tostring, tonumber, ipairs, pairs,
  setmetatable, pcall
local format, match = string.format, string.match

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

--- The budget key of clients whose account is not known (the lookup below
-- failed, or has not answered yet): one budget for all of them, which can
-- only send less than the caps allow, never more.
M.UNKNOWN_ACCOUNT = "unknown-account"
--- Seconds before a failed account lookup is tried again.
M.LOOKUP_RETRY_S = 60
--- Seconds a call waits for a lookup another coroutine of the process has
-- under way (inside nginx) before it paces as UNKNOWN_ACCOUNT.
M.LOOKUP_WAIT_S = 10

-- The account behind credentials that name none (no `account_id`, no role
-- ARN): STS GetCallerIdentity, asked once per credential source in a
-- process and remembered: the state of each AccessKeyId's lookup (by STS
-- endpoint and key id), and of each holder's (on the holder). Asked only when the budget is shared (a
-- rate_limit_store, shared_dict or Redis): a client's own budget is keyed
-- by nothing another client sees.
local LOOKUPS = {}

--- Where a client's account lookup asks STS unless `sts_endpoint` says:
-- $ALIBABA_CLOUD_STS_ENDPOINT (given by the client: `env`), else for an
-- Alibaba Cloud endpoint the STS of its region (live.<region>.aliyuncs.com ->
-- sts.<region>.aliyuncs.com; live.aliyuncs.com -> sts.aliyuncs.com), else
-- the endpoint itself: a gateway or the emulator, which serves STS beside
-- the API; anything else would send the keys somewhere the caller never named.
-- @tparam table endpoint the client's (options.parse_endpoint)
-- @tparam[opt] string env $ALIBABA_CLOUD_STS_ENDPOINT
function M.sts_endpoint_for(endpoint, env)
  if env and env ~= "" then return match(env, "^https?://") and env or "https://" .. env end
  local host = match(endpoint.host, "^(.-):%d+$") or endpoint.host -- (a port is the endpoint's, not STS's)
  if host == "live.aliyuncs.com" then return "https://sts.aliyuncs.com" end
  local region = match(host, "^live%.([%w%-]+)%.aliyuncs%.com$")
  if region then return "https://sts." .. region .. ".aliyuncs.com" end
  if match(host, "%.aliyuncs%.com$") then return "https://sts.aliyuncs.com" end
  return endpoint.url
end

-- ---- What every Alibaba Cloud product's client does the same way. Each
-- takes the client (`self`); its product's rules are `self._rules`.

-- The client's fields, from its options and its credentials (taken from
-- the options or the environment by the client: streamctl.credentials);
-- the token is kept in TOKENS.
local function configure(self, o, creds)
  local sts = o.sts_endpoint and o.sts_endpoint.url
  if not sts then
    -- (checked when it is used: a client that never asks STS is not refused for it)
    sts = M.sts_endpoint_for(self.endpoint, keys.variable("ALIBABA_CLOUD_STS_ENDPOINT"))
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

-- The state of the lookup of `self`'s account (see LOOKUPS), or nil when
-- its credentials say the account (a holder's role ARN).
local function lookup_of(self)
  local h = self._holder
  if not h then
    local id = self.access_key_id
    local key = self._sts_endpoint .. " " .. id -- (one key id may be an emulator's and a real one)
    local st = LOOKUPS[key]
    if not st then st = { source = "AccessKeyId " .. id, key = key, retry_at = -1 / 0 }; LOOKUPS[key] = st end
    return st
  end
  if h.account_id then return nil end
  local st = h._account_lookup
  if not st then
    -- (a holder without a name is known in this process only: no shared-dict key, which another
    -- worker's unnamed holder of another account would read)
    local named = type(h.source) == "string" and h.source ~= ""
    st = { source = named and h.source or tostring(h), retry_at = -1 / 0,
           key = named and (self._sts_endpoint .. " " .. h.source) or nil }
    h._account_lookup = st
  end
  return st
end

--- The budget's owner: the account UID. Alibaba Cloud counts a QPS cap per
-- account, over all its RAM users' keys and STS sessions, so that every
-- client of one account must share one budget: `account_id` when given,
-- else a role ARN's UID, else the UID STS gave (`resolve_account`); while
-- that is unknown, UNKNOWN_ACCOUNT when the budget is shared, and the
-- AccessKeyId or the source when it is the client's own (nothing else sees it).
local function account(self)
  if self.account_id then return self.account_id end
  local st = lookup_of(self)
  if not st then return self._holder.account_id end
  if st.uid then return st.uid end
  if self._pacer and self._pacer.shared then return M.UNKNOWN_ACCOUNT end
  return self.access_key_id or ("source " .. st.source)
end

-- Asks STS who `self`'s credentials are: the account UID, or nil and why.
local function ask_sts_account(self)
  local so = { endpoint = self._sts_endpoint, rate_limits = false, retry = { attempts = 2 } }
  for k, v in pairs(self._lookup_options) do so[k] = v end
  local given = type(so.transport) == "table"
  if self._holder then
    so.credentials = self._holder
  else
    so.credentials = { get = function()
      return { access_key_id = self.access_key_id, access_key_secret = self._secret, security_token = TOKENS[self] }
    end }
  end
  if not options.parse_endpoint(so.endpoint) then
    return nil, "its endpoint (sts_endpoint or $ALIBABA_CLOUD_STS_ENDPOINT) is not https://host[:port]"
  end
  -- (STS's client class, from the provider's rules: `identity`, a loader;
  -- STS's own rules have none, and it never shares a budget)
  local identity = self._rules.identity
  if not identity then return nil, "these rules cannot ask STS who the keys belong to" end
  local sts, err = identity().new(so)
  if not sts then return nil, tostring(err) end
  local ok, res, cerr = pcall(sts.get_caller_identity, sts, {})
  if not given then sts:close() end -- (a transport the caller gave is the caller's to close)
  if not ok then return nil, tostring(res) end
  if not res then return nil, tostring(cerr) end
  local why = account_id_rule(res.AccountId)
  if why then return nil, "its AccountId " .. why end
  return res.AccountId
end

--- Before a call or batch: when the budget is shared and the account is
-- not known, asks STS once (GetCallerIdentity; a failure is said once and
-- asked again after LOOKUP_RETRY_S, the calls meanwhile paced as
-- UNKNOWN_ACCOUNT: the safe side). `sleep` waits for a lookup another
-- coroutine has under way.
local function resolve_account(self, sleep)
  if self.account_id or not (self._pacer and self._pacer.shared) then return end
  local st = lookup_of(self)
  if not st or st.uid then return end
  local monotonic = self._monotonic
  -- (a lookup under way in another coroutine, until its deadline: one abandoned mid-way,
  -- an nginx request killed, is not waited for after it)
  local deadline = monotonic() + M.LOOKUP_WAIT_S
  while st.pending_until and st.pending_until > monotonic() and monotonic() < deadline do sleep(0.02) end
  if st.uid or (st.pending_until and st.pending_until > monotonic()) or monotonic() < st.retry_at then return end
  -- inside nginx, what another worker learnt (an account never changes: kept for the dict's life)
  local dict = st.key and self._lookup_dict
  local dict_key = dict and "streamctl:account:" .. st.key
  local known = dict and dict:get(dict_key)
  if known then st.uid = known; return end
  st.pending_until = monotonic() + M.LOOKUP_WAIT_S
  local ok, uid, why = pcall(ask_sts_account, self)
  st.pending_until = nil
  if ok and uid then
    st.uid = uid
    if dict then dict:set(dict_key, uid) end -- (no room: each worker asks once, which is all)
    if st.warned then log.warn(format("streamctl: %s is account %s: its calls share that account's budget "
      .. "from now on", st.source, uid)) end
    return
  end
  st.retry_at = monotonic() + M.LOOKUP_RETRY_S
  if not st.warned then
    st.warned = true
    log.warn(format("streamctl: the account behind %s is unknown (STS GetCallerIdentity at %s: %s); its calls "
      .. "are paced under one budget with every other unknown account's until STS answers (asked again every "
      .. "%d s); give account_id to say it", st.source, redact.url(self._sts_endpoint),
      tostring(ok and why or uid),
      M.LOOKUP_RETRY_S))
  end
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

local function build(self, action, op, params, now, nonce)
  local P, V = self._rules.provider, self._rules.version
  local method = op.method
  local timestamp = timestamp_of(now)
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
    ["x-acs-content-sha256"] = EMPTY_SHA256,
  }
  if token then
    headers["x-acs-accesskey-id"] = access_key_id
    headers["x-acs-security-token"] = token
  end
  local authorization, signature, _, query = core.aliyun_sign_v3 {
    method = method, path = "/", query = params, headers = headers, body = "",
    access_key_id = access_key_id, access_key_secret = secret,
  }
  headers.authorization = authorization
  return redact.with_hidden({
    provider = P, action = action, method = method,
    url = query_url(self, query), headers = headers, body = "",
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
    api = spec.api, default_cap = spec.default_cap, lists = "indexed",
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
