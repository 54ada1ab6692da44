-- tier: unit
-- Pacing off costs nothing (issue 72): a client made with rate_limits =
-- false asks its pacer nothing on a call, a retry or a batch (no slot, no
-- window, no horizon, nothing measured or learnt), and still retries a
-- throttle at once as the policy says; a paced client asks it every time.
local aliyun = require "streamctl.aliyun"
local zego = require "streamctl.zego"
local checks = require "spec.helpers.checks"

local NOW = 1700000000
local OK_ALI = '{"RequestId":"r-1"}'
local OK_ZEGO = '{"Code":0,"Message":"success","RequestId":"r-1","Data":{}}'

-- Counts every call into the client's pacer by method name, and the measures.
local function watched(client)
  local asked = {}
  local pacer = client._pacer
  for _, name in ipairs { "pace", "horizon", "window", "slack", "answered" } do
    local f = pacer[name]
    pacer[name] = function(...)
      asked[name] = (asked[name] or 0) + 1
      return f(...)
    end
  end
  for kind, f in pairs(getmetatable(pacer.measure) and getmetatable(pacer.measure).__index or {}) do
    if type(f) == "function" then
      pacer.measure[kind] = function(...)
        asked["measure." .. kind] = (asked["measure." .. kind] or 0) + 1
        return f(...)
      end
    end
  end
  return asked
end

describe("pacing off", function()
  it("asks the pacer nothing on an Aliyun call, a retried throttle or a batch", function()
    local c = checks.scripted_client(aliyun, NOW, { rate_limits = false }, function(_, n)
      if n == 2 then return checks.reply(400, '{"Code":"Throttling.User","RequestId":"t"}') end
      return checks.reply(200, OK_ALI)
    end)
    local asked = watched(c)
    assert(c:resume_live_stream { domain_name = "d.example", app_name = "live", stream_name = "s" })
    assert(c:resume_live_stream { domain_name = "d.example", app_name = "live", stream_name = "s" })
    local report = assert(c:resume_live_streams { domain_name = "d.example", app_name = "live",
      stream_names = { "a", "b", "c" } })
    assert.equal(3, report.succeeded)
    assert.same({}, asked)
  end)

  it("asks the pacer nothing on a ZEGO call", function()
    local c = checks.scripted_client(zego, NOW, { rate_limits = false }, function() return checks.reply(200, OK_ZEGO) end)
    local asked = watched(c)
    assert(c:forbid_rtc_streams { stream_ids = { "s1", "s2" } })
    assert.same({}, asked)
  end)

  it("is what tells the two apart: a paced client asks for its slot and measures", function()
    local c = checks.scripted_client(aliyun, NOW, nil, function() return checks.reply(200, OK_ALI) end)
    local asked = watched(c)
    assert(c:resume_live_stream { domain_name = "d.example", app_name = "live", stream_name = "s" })
    assert.truthy(asked.pace and asked.pace >= 1)
    assert.truthy(asked.answered and asked.answered >= 1)
  end)
end)
