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
  local key = core.secret(secret)
  local sig2, query = core.aliyun_sign_v1(method, params, key)
  u.check(sig2 == sig, "a streamctl.secret signs otherwise")
  -- with a URL prefix, the URL made in C is the query and the encoded signature
  local want = "https://h/?" .. query .. (query ~= "" and "&" or "") .. "Signature=" .. core.percent_encode(sig)
  for _, s in ipairs { secret, key } do
    local sig3, url = core.aliyun_sign_v1(method, params, s, "https://h/?")
    u.check(sig3 == sig and url == want, "the URL made with a prefix differs: %q", url)
  end
end
