-- Aliyun V3 (ACS3-HMAC-SHA256): any query, headers and body are signed or
-- refused with a "bad argument" error (a header name that is not a token),
-- or a header given twice; the Authorization value keeps its shape.
-- (A found case, now a spec in spec/01: a ',' in a signed header name made
-- the Authorization value say another SignedHeaders.)
local core = require "streamctl.core"
local u = require "targets.util"

return function(data)
  local p = u.pieces(data, 4)
  local headers = { host = "live.aliyuncs.com", ["x-acs-action"] = "ResumeLiveStream" }
  for k, v in pairs(u.params(p[2])) do headers[k] = v end
  local req = {
    method = "POST", path = "/" .. p[4], query = u.params(p[1]), headers = headers, body = p[3],
    access_key_id = "AK", access_key_secret = "secret",
  }
  local ok, auth, sig, hashed = pcall(core.aliyun_sign_v3, req)
  if not ok then
    -- the documented refusals: a bad argument (a header name that is not a token, a value with
    -- CR/LF/NUL...), or the same header twice in different case
    u.check(tostring(auth):find("bad argument", 1, true) or tostring(auth):find("given twice", 1, true),
      "raised something other than a bad argument: %s", auth)
    return
  end
  u.check(auth:find("^ACS3%-HMAC%-SHA256 Credential=AK,SignedHeaders=[^,]*,Signature=%x+$"), "Authorization %q", auth)
  u.check(#sig == 64 and not sig:find("[^0-9a-f]"), "signature %q", sig)
  u.check(#hashed == 64 and not hashed:find("[^0-9a-f]"), "hashed canonical request %q", hashed)
  -- a streamctl.secret (its HMAC and SHA-256 contexts kept and used again) signs the same
  req.access_key_secret = core.secret("secret")
  for _ = 1, 2 do
    local auth2, sig2, hashed2 = core.aliyun_sign_v3(req)
    u.check(auth2 == auth and sig2 == sig and hashed2 == hashed, "a streamctl.secret signs otherwise")
  end
end
