-- OIDC tokens for AssumeRoleWithOIDC: the ones the emulator issues (POST
-- /_emulator/oidc_token) and how a token presented to STS is checked.
--
-- A token is a JWT: three base64url parts (no padding) joined by ".", the
-- first two JSON objects (header, claims). The emulator's own are
--   header {"alg":"RS256","kid":"streamctl-emulator","typ":"JWT"}
--   claims {"aud","exp","iat","iss","jti","sub"}
-- and signed with a MAC of the emulator's (HMAC-SHA256 under a random key made
-- when the worker first needs it) in place of an RSA signature: only the
-- emulator checks it. The header says RS256 because STS refuses HS256
-- ("The algorithm HS256 that be specified in Jwt header is unknown.").
--
-- Checks, in order (codes and messages from STS's error code page; HTTP 401):
--   empty                                  AuthenticationFail.OIDCToken.Invalid "The OIDCToken can not empty."
--   not 4..20000 characters                AuthenticationFail.OIDCToken.Invalid (the parameter's
--                                          length rule; message the emulator's)
--   not three parts                        ...Invalid "The number of Jwt field should be divided into 3
--                                          parts with '.' ."
--   a part not base64url                   ...Invalid "Cannot decode base64 encoded response(format invalided)."
--   header or claims not a JSON object, or
--   a claim missing or of the wrong type   ...Invalid "The Jwt content is invalid that cannot be recognized."
--   alg not RS/ES/PS 256/384/512           ...Invalid "The algorithm <alg> that be specified in Jwt header is unknown."
--   signature (not for a configured token) AuthenticationFail.OIDCToken.InvalidSignature
--   iss not the provider's issuer          ...Invalid (message the emulator's: STS lists no code for it)
--   no aud among the provider's client ids AuthenticationFail.OIDCToken.AudienceNotMatch "Invalid audience."
--   exp <= now (emulator clock)            AuthenticationFail.OIDCToken.Expired "This JsonWebToken is expired."
--   nbf > now                              ...Invalid (the emulator's: not yet valid)
-- Claims required: iss, sub (strings), aud (a string or an array of them),
-- exp, iat (numbers); the emulator's strict reading of an OIDC ID token.

local json = require "streamctl.emulator.json"
local hmac = require "streamctl.emulator.hmac"
local sessions = require "streamctl.emulator.sessions"
local ram = require "streamctl.emulator.ram"

local ngx = ngx
local encode_base64, decode_base64 = ngx.encode_base64, ngx.decode_base64

local type, ipairs, tostring = type, ipairs, tostring
local floor = math.floor
local gsub, find, match = string.gsub, string.find, string.match

local M = {}

local INVALID = "AuthenticationFail.OIDCToken.Invalid"

M.MESSAGES = {
  empty = "The OIDCToken can not empty.",
  parts = "The number of Jwt field should be divided into 3 parts with '.' .",
  base64 = "Cannot decode base64 encoded response(format invalided).",
  content = "The Jwt content is invalid that cannot be recognized.",
}

local KID = "streamctl-emulator"
local ALGORITHMS = {
  RS256 = true, RS384 = true, RS512 = true, ES256 = true, ES384 = true, ES512 = true,
  PS256 = true, PS384 = true, PS512 = true,
}

local mac_key

local function key()
  if not mac_key then
    mac_key = sessions.random_alnum(48)
  end
  return mac_key
end

local function b64url_encode(s)
  return (gsub(encode_base64(s, true), "[+/]", { ["+"] = "-", ["/"] = "_" }))
end

local function b64url_decode(s)
  if s == "" or find(s, "[^%w%-_]") or #s % 4 == 1 then
    return nil
  end
  return decode_base64((gsub(s, "[-_]", { ["-"] = "+", ["_"] = "/" })))
end

local function mac(input)
  return b64url_encode(hmac.hmac_sha256(key(), input))
end

-- A token of the emulator's. spec: { provider (identity.lua's), subject,
-- audience (string or list), issued_at, expires_at }. Returns the token and
-- its claims.
function M.issue(spec)
  local claims = {
    iss = spec.provider.issuer,
    sub = spec.subject,
    aud = spec.audience,
    iat = floor(spec.issued_at),
    exp = floor(spec.expires_at),
    jti = sessions.random_alnum(16),
  }
  local head = b64url_encode(json.encode({ alg = "RS256", kid = KID, typ = "JWT" }))
  local body = b64url_encode(json.encode(claims))
  return head .. "." .. body .. "." .. mac(head .. "." .. body), claims
end

local function listed(provider, token)
  for _, t in ipairs(provider.tokens) do
    if t == token then
      return true
    end
  end
  return false
end

-- Checks `token` for `provider` at emulator time `now`. Returns the claims
-- (with .audiences, the aud as a list), or nil, code, message.
function M.verify(token, provider, now)
  if token == nil or token == "" then
    return nil, INVALID, M.MESSAGES.empty
  end
  if #token < 4 or #token > 20000 then
    return nil, INVALID, "The OIDCToken must be 4 to 20000 characters long."
  end
  local h, c, sig = match(token, "^([^%.]*)%.([^%.]*)%.([^%.]*)$")
  if not h then
    return nil, INVALID, M.MESSAGES.parts
  end
  local htext, ctext = b64url_decode(h), b64url_decode(c)
  if not htext or not ctext or (sig ~= "" and not b64url_decode(sig)) then
    return nil, INVALID, M.MESSAGES.base64
  end
  local header, claims = json.decode(htext), json.decode(ctext)
  if type(header) ~= "table" or type(claims) ~= "table" or type(header.alg) ~= "string" then
    return nil, INVALID, M.MESSAGES.content
  end
  local aud = ram.string_list(claims.aud)
  if type(claims.iss) ~= "string" or type(claims.sub) ~= "string" or not aud
    or type(claims.exp) ~= "number" or type(claims.iat) ~= "number"
    or (claims.nbf ~= nil and type(claims.nbf) ~= "number") then
    return nil, INVALID, M.MESSAGES.content
  end
  if not ALGORITHMS[header.alg] then
    return nil, INVALID, "The algorithm " .. tostring(header.alg) .. " that be specified in Jwt header is unknown."
  end
  if not listed(provider, token) and (header.kid ~= KID or sig ~= mac(h .. "." .. c)) then
    return nil, "AuthenticationFail.OIDCToken.InvalidSignature", "OIDC token validate failed: invalid signature."
  end
  if claims.iss ~= provider.issuer then
    return nil, INVALID, "The issuer of the OIDCToken is not the issuer URL of the OIDC provider."
  end
  local match_aud = false
  for _, a in ipairs(aud) do
    for _, id in ipairs(provider.client_ids) do
      if a == id then
        match_aud = true
      end
    end
  end
  if not match_aud then
    return nil, "AuthenticationFail.OIDCToken.AudienceNotMatch", "Invalid audience."
  end
  if claims.exp <= now then
    return nil, "AuthenticationFail.OIDCToken.Expired", "This JsonWebToken is expired."
  end
  if claims.nbf and claims.nbf > now then
    return nil, INVALID, "The OIDCToken is not valid yet (nbf)."
  end
  claims.audiences = aud
  return claims
end


return M
