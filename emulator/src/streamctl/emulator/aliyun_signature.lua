-- Alibaba Cloud's request signatures, checked as the OpenAPI gateway checks
-- them: V1 (HMAC-SHA1 over the canonical query string) and V3
-- (ACS3-HMAC-SHA256 over the canonical request: its Authorization and
-- mandatory headers, every x-acs-* header and host signed,
-- x-acs-content-sha256 the SHA-256 of the body).
--
-- Checked with nginx-lua's primitives only (ngx.hmac_sha1,
-- ngx.encode_base64, nginx.sha256 via hmac.lua), never with streamctl's core.
-- Each check gives nothing when the request passes, else the error code and
-- its message (aliyun_response.lua has the codes).

local encoding = require "streamctl.emulator.encoding"
local hmac = require "streamctl.emulator.hmac"

local ngx = ngx
local ngx_hmac_sha1, ngx_encode_base64 = ngx.hmac_sha1, ngx.encode_base64

local pairs, ipairs = pairs, ipairs
local gsub, match, lower, sub = string.gsub, string.match, string.lower, string.sub
local sort, concat = table.sort, table.concat

local M = {}

local INCOMPLETE = "The request signature does not conform to Aliyun standards. "
local NOT_MATCHED = "Specified signature is not matched with our calculation. "

local function trim(s)
  return (gsub(gsub(s, "^%s+", ""), "%s+$", ""))
end

-- Parses "ACS3-HMAC-SHA256 Credential=AK,SignedHeaders=a;b,Signature=hex".
local function parse_authorization(auth)
  local algorithm, rest = match(auth, "^%s*(%S+)%s+(.-)%s*$")
  if not algorithm then
    return nil
  end
  local fields = {}
  for part in (rest .. ","):gmatch("([^,]*),") do
    local k, v = match(part, "^%s*([^=%s]+)%s*=%s*(.-)%s*$")
    if k then
      fields[k] = v
    end
  end
  if not (fields.Credential and fields.SignedHeaders and fields.Signature)
    or fields.Credential == "" or fields.SignedHeaders == "" or fields.Signature == "" then
    return nil
  end
  return algorithm, fields
end

-- A V3 request's Authorization ({ Credential, SignedHeaders, Signature }),
-- once it and the headers a V3 request must carry are there; else nil and
-- IncompleteSignature with its message.
function M.read_v3_authorization(headers)
  local algorithm, auth = parse_authorization(headers["authorization"])
  if not algorithm then
    return nil, "IncompleteSignature",
      INCOMPLETE .. "Expected: ACS3-HMAC-SHA256 Credential=<AccessKeyId>,SignedHeaders=<list>,Signature=<hex>."
  end
  if algorithm ~= "ACS3-HMAC-SHA256" then
    return nil, "IncompleteSignature", INCOMPLETE .. "Unsupported signature algorithm " .. algorithm .. "."
  end
  for _, name in ipairs({ "host", "x-acs-action", "x-acs-version", "x-acs-date",
                          "x-acs-signature-nonce", "x-acs-content-sha256" }) do
    if headers[name] == nil or headers[name] == "" then
      return nil, "IncompleteSignature", INCOMPLETE .. "Header " .. name .. " is mandatory."
    end
  end
  return auth
end

-- V1: the signature of the request's parameters under the key's secret.
function M.check_v1(req, secret)
  local sts = req.method .. "&%2F&"
    .. encoding.aliyun_encode(encoding.aliyun_canonical_query(req.param_list, { Signature = true }))
  local expected = ngx_encode_base64(ngx_hmac_sha1(secret .. "&", sts))
  if expected ~= req.params.Signature then
    return "SignatureDoesNotMatch", NOT_MATCHED .. "server string to sign is:" .. sts
  end
end

-- The signed header names of a V3 Authorization, lowercased, once each, sorted;
-- and the set of them.
local function signed_header_names(auth)
  local signed = {}
  local names = {}
  for name in (auth.SignedHeaders .. ";"):gmatch("([^;]*);") do
    name = lower(trim(name))
    if name ~= "" and not signed[name] then
      signed[name] = true
      names[#names + 1] = name
    end
  end
  sort(names)
  return names, signed
end

-- The canonical request V3 signs, and the SHA-256 of the body in it.
local function canonical_request(req, names)
  local body_hash = hmac.sha256_hex(req.body)
  local canon_headers = {}
  for i, name in ipairs(names) do
    canon_headers[i] = name .. ":" .. trim(req.headers[name] or "") .. "\n"
  end
  local canonical = concat({
    req.method,
    req.path,
    encoding.aliyun_canonical_query(req.query_list),
    concat(canon_headers),
    concat(names, ";"),
    body_hash,
  }, "\n")
  return canonical, body_hash
end

-- V3: every x-acs-* header and host signed, the body's hash, the signature
-- of the canonical request under the key's secret. Gives the canonical
-- request (once it is made, for the log) and, when the check fails, the
-- error code and its message.
function M.check_v3(req, auth, secret)
  local names, signed = signed_header_names(auth)
  for name in pairs(req.headers) do
    if (sub(name, 1, 6) == "x-acs-" or name == "host") and not signed[name] then
      return nil, "IncompleteSignature", INCOMPLETE .. "Header " .. name .. " must be signed."
    end
  end
  local canonical, body_hash = canonical_request(req, names)
  local sts = "ACS3-HMAC-SHA256\n" .. hmac.sha256_hex(canonical)
  if req.headers["x-acs-content-sha256"] ~= body_hash then
    return canonical, "SignatureDoesNotMatch", NOT_MATCHED .. "x-acs-content-sha256 is not "
      .. "the SHA-256 of the request body (" .. body_hash .. "). server string to sign is:" .. sts
  end
  local expected = hmac.hmac_sha256_hex(secret, sts)
  if expected ~= auth.Signature then
    return canonical, "SignatureDoesNotMatch", NOT_MATCHED .. "server string to sign is:" .. sts
  end
  return canonical
end

return M
