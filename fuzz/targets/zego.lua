-- ZEGO's signature input (AppId .. nonce .. secret .. timestamp, MD5):
-- any nonce and secret, AppIds and timestamps across their ranges.
local core = require "streamctl.core"
local u = require "targets.util"

return function(data)
  local p = u.pieces(data, 3)
  local app = (#p[1] * 2654435761 + 1) % 4294967295 + 1
  local ts = tostring(#data * 1000003 % 4102444800)
  local ok, sig = pcall(core.zego_sign, app, p[2], p[3] ~= "" and p[3] or "s", ts)
  if not ok then
    u.check(tostring(sig):find("bad argument", 1, true), "raised something other than a bad argument: %s", sig)
    return
  end
  u.check(#sig == 32 and not sig:find("[^0-9a-f]"), "signature %q", sig)
  -- a streamctl.secret (its MD5 context kept and used again) signs the same
  local key = core.secret(p[3] ~= "" and p[3] or "s")
  for _ = 1, 2 do
    u.check(core.zego_sign(app, p[2], key, ts) == sig, "a streamctl.secret signs otherwise")
  end
end
