-- Aliyun V1: the string to sign for any parameters, and its HMAC-SHA1
-- signature with any secret, never raise and keep their shapes.
local core = require "streamctl.core"
local u = require "targets.util"

return function(data)
  local p = u.pieces(data, 3)
  local params = u.params(p[1])
  local method = (#p[2] % 2 == 0) and "GET" or "POST"
  local sts = core.aliyun_string_to_sign_v1(method, params)
  u.check(sts:sub(1, #method + 5) == method .. "&%2F&", "the string to sign starts %q", sts:sub(1, 12))
  u.check(not sts:sub(#method + 6):find("[^A-Za-z0-9%-_.~%%]"), "an unencoded byte in the string to sign")
  local secret = p[3] ~= "" and p[3] or "s"
  local sig = core.aliyun_sign_v1(method, params, secret)
  u.check(#sig == 28 and sig:find("^[A-Za-z0-9+/]+=$"), "a signature that is not base64 of 20 bytes: %q", sig)
  u.check(core.aliyun_sign_v1(method, params, core.secret(secret)) == sig, "a streamctl.secret signs otherwise")
end
