-- The libcurl transport's request checks: any method and headers are queued
-- or refused before anything is sent (InvalidRequest, sent = false), CR, LF
-- and NUL always refused; nothing is sent (the transfer is never run).
local curl = require "streamctl.curl"
local u = require "targets.util"

local m = curl.multi {}

return function(data)
  local p = u.pieces(data, 3)
  local headers = u.params(p[2]:gsub("\n", "&"))
  local ok, added, err = pcall(m.add, m, 1, { method = p[1] ~= "" and p[1] or "GET",
    url = "http://127.0.0.1:9/" .. p[3]:gsub("[^%w/._-]", ""), headers = headers, body = "" })
  if not ok then
    u.check(tostring(added):find("streamctl.curl", 1, true), "raised: %s", tostring(added))
    return
  end
  if added then
    for k, v in pairs(headers) do
      u.check(not (k .. v):find("[%z\r\n]"), "a header with CR, LF or NUL was taken")
    end
    m:close() -- drops the queued transfer unsent
    m = curl.multi {}
  else
    u.check(err.code == "InvalidRequest" and err.sent == false, "refused as %s", tostring(err.code))
  end
end
