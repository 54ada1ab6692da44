-- Batches at the caps against the emulator counting the strictest way (a
-- sliding window: no more than N requests accepted within any 1,000 ms),
-- with the client's defaults: 1,000 ZEGO IDs (50 calls at 20/s) and 300
-- Aliyun streams (300 calls at 30/s) go through with zero throttled.
-- Verdicts only: "never faster than the cap and its margin allow" is
-- asserted in virtual time (spec/engine/10-pacing-time, its first two rows,
-- at these sizes); wall time against the minimum is a figure of `make
-- bench`.
local emu = require "spec.helpers.emulator"
local streamctl = require "streamctl"

describe("pacing against a sliding window", function()
  local server

  lazy_setup(function()
    server = emu.start { config = { aliyun = { rate_limiter = "sliding_window" },
                                    zego = { rate_limiter = "sliding_window" } } }
  end)

  lazy_teardown(function()
    if server then server:stop() end
  end)

  local function counters(provider, action)
    return server:state()[provider].counters[action] or {}
  end

  it("1,000 ZEGO IDs: zero throttled, every stream resumed", function()
    server:reset()
    local z = assert(streamctl.zego.new { endpoint = server.zego_url, app_id = 1234567890,
      server_secret = "0123456789abcdef0123456789abcdef" })
    local ids = {}
    for i = 1, 1000 do ids[i] = string.format("pace-%04d", i) end
    local report = z:resume_rtc_streams { stream_ids = ids }
    z:close()
    assert.equal(1000, report.succeeded)
    assert.equal(50, report.calls)
    local c = counters("zego", "ResumeRTCStreams")
    assert.equal(0, c.throttled or 0)
    assert.equal(50, c.accepted)
  end)

  it("300 Aliyun streams: zero throttled, every stream resumed", function()
    server:reset()
    local ali = assert(streamctl.aliyun.new { endpoint = server.aliyun_url, access_key_id = "LTAIemulatorKey",
      access_key_secret = "emulator-secret" })
    local names = {}
    for i = 1, 300 do names[i] = string.format("pace-%03d", i) end
    local report = ali:resume_live_streams { domain_name = "push.example.com", app_name = "live", stream_names = names }
    ali:close()
    assert.equal(300, report.succeeded)
    local c = counters("aliyun", "ResumeLiveStream")
    assert.equal(0, c.throttled or 0)
    assert.equal(300, c.accepted)
  end)
end)
