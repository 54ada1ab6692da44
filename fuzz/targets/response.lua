-- Any answer (status, content type, body) to any call: decoded into a
-- result or an error with a code and a kind, never a raise, never a secret.
local aliyun = require "streamctl.aliyun"
local zego = require "streamctl.zego"
local u = require "targets.util"

local answer
local function transport() return answer end
local clients = {
  aliyun.new { access_key_id = "AK", access_key_secret = "SECRET-abcdef", security_token = "TOKEN-abcdef",
               transport = transport, retry = false, rate_limits = false, settle_ms = 0 },
  zego.new { app_id = 1, server_secret = "0123456789abcdef0123456789abcdef", transport = transport, retry = false,
             rate_limits = false, settle_ms = 0 },
}
local calls = {
  { "DescribeLiveStreamsBlockList", { DomainName = "d" } },
  { "ResumeCDNLiveStream", { StreamId = "s" } },
}

return function(data)
  local p = u.pieces(data, 2)
  local status = 100 + (#p[1] * 37) % 500
  answer = { status = status, headers = { ["content-type"] = p[1]:sub(1, 40), date = p[1] }, body = p[2] }
  for i, c in ipairs(clients) do
    local res, err = c:call(calls[i][1], calls[i][2])
    if res == nil then
      u.check(type(err) == "table" and err.code ~= nil and type(err.kind) == "string", "an error without code or kind")
      local text = tostring(err)
      u.check(not text:find("SECRET-abcdef", 1, true) and not text:find("TOKEN-abcdef", 1, true), "a secret shown")
    else
      u.check(type(res) == "table", "a result that is not a table")
    end
  end
end
