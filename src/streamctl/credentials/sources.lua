--- Fetching temporary credentials from the sources that hand them out over
-- plain HTTP: the ECS instance metadata service (the instance's RAM role)
-- and a credentials URI. Each `fetch` returns `{ access_key_id,
-- access_key_secret, security_token, expiration (Unix seconds) }` or nil and
-- why (never a secret); streamctl.credentials.refresh decides when to call
-- it, and holds the secret as a streamctl.secret from then on.
--
-- The metadata service, as the official SDKs ask it (facts:
-- docs/emulator-credentials.md and the issue's notes): a token first
-- (IMDSv2: `PUT /latest/api/token` with
-- `X-aliyun-ecs-metadata-token-ttl-seconds`), then with it the role's name
-- (unless given) and its credentials. When the token cannot be had, or a
-- request with it fails, the same request goes without one (IMDSv1), unless
-- `imdsv1_disabled`. An answer must be HTTP 200 with `Code` "Success" and
-- the four fields. The service is plain HTTP at 100.100.100.200 and is never
-- reached through a proxy; timeouts are 1 s to connect, 1 s to answer.
-- @module streamctl.credentials.sources

local core = require "streamctl.core"
local json = require "streamctl.base.json"
local redact = require "streamctl.base.redact"

local type, tostring, ipairs = type, tostring, ipairs
local format, match = string.format, string.match

local M = {}

--- Where the metadata service is (its fixed address).
M.IMDS = "http://100.100.100.200"
--- The token lifetime asked for, and the official SDKs' timeouts (ms).
M.TOKEN_TTL_S = 21600
M.IMDS_TIMEOUT_MS = 1000
M.IMDS_CONNECT_TIMEOUT_MS = 1000
M.URI_TIMEOUT_MS = 10000
M.URI_CONNECT_TIMEOUT_MS = 5000

local TOKEN_HEADER = "x-aliyun-ecs-metadata-token"
local ROLES = "/latest/meta-data/ram/security-credentials/"

--- One request at a time over a transport of its own, for `fetcher`
-- (streamctl.transport.auto's `exchange`).
function M.exchange(opts)
  return require("streamctl.transport.auto").exchange(opts)
end

-- One request through `exchange`: the response, or nil and why (the URL
-- shown redacted, `shown`: a credentials URI may carry a password or a
-- token, in its path as well as its query).
local function fetch_once(exchange, method, url, headers, shown)
  local res, err = exchange { method = method, url = url, headers = headers or {}, body = "" }
  if not res then
    -- (a transport's message may quote the URL too)
    return nil, format("%s %s: %s", method, shown, redact.url_in(tostring(err and err.message or err), url, shown))
  end
  if res.status ~= 200 then
    return nil, format("%s %s: HTTP %d", method, shown, res.status), res
  end
  return res
end

-- The credentials in a JSON answer (the metadata service's and a URI's
-- share the form), or nil and why.
local function parse(body, where)
  local data = json.decode(body)
  if type(data) ~= "table" then return nil, where .. ": the answer is not JSON" end
  if data.Code ~= "Success" then
    return nil, format("%s: Code is %s, not Success", where, type(data.Code) == "string" and data.Code or "missing")
  end
  for _, f in ipairs { "AccessKeyId", "AccessKeySecret", "SecurityToken", "Expiration" } do
    if type(data[f]) ~= "string" or data[f] == "" then return nil, format("%s: the answer has no %s", where, f) end
  end
  local expiration = core.parse_utc_timestamp(data.Expiration)
  if not expiration then
    return nil, format("%s: Expiration is not a UTC time (YYYY-MM-DDThh:mm:ssZ)", where)
  end
  return { access_key_id = data.AccessKeyId, access_key_secret = data.AccessKeySecret,
           security_token = data.SecurityToken, expiration = expiration }
end

-- The metadata service: a fetch for `source` (its role_name, imdsv1_disabled).
local function imds_fetch(source, exchange, base)
  -- (its messages show the paths asked, the service's fixed ones and the
  -- role's name, which hold no secret; the address by the one rule)
  local shown_base = redact.url(base)
  local function get(path, token)
    return fetch_once(exchange, "GET", base .. path, token and { [TOKEN_HEADER] = token } or nil, shown_base .. path)
  end
  -- GET with the token when there is one; without it (IMDSv1) when that is allowed and the first failed
  local function get_either(path, token)
    local res, why = get(path, token)
    if res or not token or source.imdsv1_disabled then return res, why end
    return get(path, nil)
  end
  return function()
    local tres, twhy = fetch_once(exchange, "PUT", base .. "/latest/api/token",
      { ["x-aliyun-ecs-metadata-token-ttl-seconds"] = tostring(M.TOKEN_TTL_S) }, shown_base .. "/latest/api/token")
    local token = tres and tres.body or nil
    if not token and source.imdsv1_disabled then
      return nil, "the metadata service gave no token and IMDSv1 is turned off (ALIBABA_CLOUD_IMDSV1_DISABLED): "
        .. twhy
    end
    local role = source.role_name
    if not role then
      local res, why = get_either(ROLES, token)
      if not res then return nil, "the instance's RAM role name: " .. why end
      role = match(res.body, "^%s*(.-)%s*$")
      if role == "" then return nil, "the instance has no RAM role (" .. shown_base .. ROLES .. " is empty)" end
    end
    local res, why = get_either(ROLES .. role, token)
    if not res then
      if match(why, "HTTP 404$") then
        why = why .. format(" (is '%s' the instance's RAM role?)", role)
      end
      return nil, why
    end
    return parse(res.body, format("the RAM role %s's credentials", role))
  end
end

-- A credentials URI: a fetch for `source` (its uri).
local function uri_fetch(source, exchange)
  return function()
    local shown = redact.url(source.uri)
    local res, why = fetch_once(exchange, "GET", source.uri, nil, shown)
    if not res then return nil, why end
    return parse(res.body, shown)
  end
end

--- A fetch for `source` (from streamctl.credentials.aliyun.resolve): for
-- "ecs_ram_role" and "credentials_uri"; nil and why for another type.
-- @param source the source
-- @tparam function exchange `exchange(request) -> response | nil, err`: one
--   request (`{ method, url, headers, body }`) and its answer (`{ status,
--   headers, body }`); `M.exchange` makes one (for the metadata service
--   with `IMDS_TIMEOUT_MS` and no proxy; for a URI, `URI_TIMEOUT_MS`)
-- @tparam[opt] string imds_base where the metadata service is (default
--   `IMDS`; another only in tests: STREAMCTL_TEST_IMDS_ENDPOINT)
function M.fetcher(source, exchange, imds_base)
  if source.type == "ecs_ram_role" then return imds_fetch(source, exchange, imds_base or M.IMDS) end
  if source.type == "credentials_uri" then return uri_fetch(source, exchange) end
  return nil, format("%s: source type %s is not fetched over plain HTTP", source.from, source.type)
end

return M
