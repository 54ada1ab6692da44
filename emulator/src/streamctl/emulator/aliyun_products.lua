-- The products the Aliyun ports answer as, and what a request names before
-- any verification. The request's API version (V1 `Version`, V3
-- `x-acs-version`) picks the product: 2016-11-01 is ApsaraVideo Live
-- (aliyun_live.lua), 2015-04-01 STS (sts.lua); a request that names neither
-- is answered as Live until its operation is known. GET /credentials-uri on
-- the same ports is the credentials URI (credentials_uri.lua).
--
-- A product: { name (Recommend's product=), operations (Action -> function),
-- anonymous (the Actions called without a key), host_id() (the HostId of
-- its errors), internal_error (STS: its own InternalError text),
-- throttle_code(action) (STS: its own throttling code) }.

local live = require "streamctl.emulator.aliyun_live"
local sts_api = require "streamctl.emulator.sts"
local credentials_uri = require "streamctl.emulator.credentials_uri"

local find = string.find

local M = {}

local API_VERSION = "2016-11-01"

local cfg

function M.init(settings)
  cfg = settings
end

M.LIVE = {
  name = "live", operations = live.OPERATIONS, anonymous = {},
  host_id = function() return cfg and cfg.aliyun.host_id or "live.aliyuncs.com" end,
}
M.STS = {
  name = sts_api.PRODUCT, operations = sts_api.OPERATIONS, anonymous = sts_api.ANONYMOUS,
  host_id = function() return sts_api.HOST_ID end,
  internal_error = sts_api.INTERNAL_ERROR, throttle_code = sts_api.throttle_code,
}
local PRODUCTS = { [API_VERSION] = M.LIVE, [sts_api.VERSION] = M.STS }

-- The product an API version names, or nil.
function M.named_by(version)
  return PRODUCTS[version]
end

-- The product a request's version names (Live when it names none).
local function product_of(version)
  return PRODUCTS[version] or M.LIVE
end

-- Whether a request is signed with V3 (ACS3-HMAC-SHA256): its Authorization.
function M.is_v3(req)
  local auth = req.headers["authorization"]
  return auth ~= nil and find(auth, "^%s*ACS3%-") ~= nil
end

-- A request with no key and no signature of either version.
function M.is_anonymous(req)
  return req.headers["authorization"] == nil and req.params.AccessKeyId == nil and req.params.Signature == nil
end

-- The action a request names, before any verification (for fault matching):
-- "credentials-uri" for the credentials URI.
function M.peek_action(req)
  if req.path == credentials_uri.PATH then
    return credentials_uri.ACTION
  end
  if M.is_v3(req) then
    return req.headers["x-acs-action"]
  end
  return req.params.Action or req.headers["x-acs-action"]
end

-- The product a request names, before any verification.
function M.peek_product(req)
  if M.is_v3(req) then
    return product_of(req.headers["x-acs-version"])
  end
  return product_of(req.params.Version or req.headers["x-acs-version"])
end

return M
