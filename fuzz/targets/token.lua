-- ZEGO's Token04 read back (streamctl.edge.token04) and the strict base64
-- under it: any bytes as a token, after "04" and as base64 text, never
-- raise and never verify (a 32-byte secret no input can know); base64 that
-- decodes encodes back to the same text; a token issued for a fuzzed user
-- either is refused by the field's rule or reads back as issued.
local core = require "streamctl.core"
local token04 = require "streamctl.edge.token04"
local u = require "targets.util"

local SECRET = "0123456789abcdef0123456789abcdef"
local O = { app_id = 1234567890, secret = SECRET, now = 1795800000 }
local CODES = { InvalidToken = true, TokenExpired = true }

return function(data)
  local text = core.base64_decode(data)
  if text then u.check(core.base64_encode(text) == data, "base64 %q decodes but does not encode back", data) end
  for _, t in ipairs { data, "04" .. data, "04" .. core.base64_encode(data) } do
    local r, err = token04.read(t, O)
    u.check(r == nil and err and CODES[err.code], "token %q: read as %s", t, tostring(err and err.code or r))
    u.check(not tostring(err.message):find(SECRET, 1, true), "the secret in a message")
  end
  local p = u.pieces(data, 2)
  local tok, err = token04.issue { app_id = 42, secret = SECRET, user_id = p[1], stream_ids = { p[2] },
                                  publish = true, now = 1795800000 }
  if not tok then
    u.check(err.code == "InvalidParameter", "issue failed with %s", tostring(err.code))
    return
  end
  local r = token04.read(tok, { app_id = 42, secret = SECRET, now = 1795800001 })
  u.check(r and r.user_id == p[1] and r.stream_ids[1] == p[2], "issued for %q, read otherwise", p[1])
end
