-- Order against the emulator: a forbid whose first attempt the emulator
-- holds for 3 s (its delay fault) while the client times out after 1 s is
-- re-sent and succeeds; a resume follows; then the held forbid is applied.
-- The stream must end resumed, as the last call intended, for both
-- providers: Aliyun through the settle-and-verify rule, ZEGO through its
-- Sequence (the held forbid is stale).
local emu = require "spec.helpers.emulator"
local streamctl = require "streamctl"
local wait_until = require("spec.helpers.checks").wait_until

-- (the calls that must answer time out after 1 s, the held one is held 3 s:
-- both times process.slowdown(), so that under valgrind or ASan on a busy
-- machine only the held attempt times out and the counts below hold; ZEGO's
-- Sequence window, 10 s, within which the held forbid must land to be stale,
-- is scaled with them)
local SLOW = require("spec.helpers.process").slowdown()
local TIMEOUT_MS = 1000 * SLOW
local HOLD_MS = 3000 * SLOW

describe("order after an attempt the provider held", function()
  local server

  lazy_setup(function()
    server = emu.start { config = { zego = { sequence_window_s = 10 * SLOW } } }
  end)

  lazy_teardown(function()
    if server then server:stop() end
  end)

  before_each(function()
    server:reset()
  end)

  local function ali(settle_ms)
    return assert(streamctl.aliyun.new {
      endpoint = server.aliyun_url, access_key_id = "LTAIemulatorKey", access_key_secret = "emulator-secret",
      timeout_ms = TIMEOUT_MS, settle_ms = settle_ms,
      decisions_shared = true, -- (the only decider: its repair after the settle time is renewed, not Expired)
    })
  end

  local S = { domain_name = "push.example.com", app_name = "live", stream_name = "held-1" }
  local KEY = "push.example.com/live/held-1"

  local function hold_next(provider, action)
    server:faults({ kind = "delay", delay_ms = HOLD_MS, count = 1, action = action, provider = provider }, provider)
  end

  it("Aliyun: the resume is verified once the held forbid can no longer land, and re-applied", function()
    local cli = ali(HOLD_MS + 1500 * SLOW)
    hold_next("aliyun", "ForbidLiveStream")
    assert(cli:forbid_live_stream(S))
    assert(cli:resume_live_stream(S))
    assert.equal("normal", server:state().aliyun.streams[KEY].status)
    -- The held forbid did land, before the verification, and the resume was sent again.
    local forbids = server:log { provider = "aliyun", action = "ForbidLiveStream" }
    local resumes = server:log { provider = "aliyun", action = "ResumeLiveStream" }
    assert.equal(2, #forbids)
    assert.equal(2, #resumes)
    cli:close()
  end)

  it("Aliyun without a settle time ends forbidden: the failure the rule prevents", function()
    local cli = ali(0)
    hold_next("aliyun", "ForbidLiveStream")
    assert(cli:forbid_live_stream(S))
    assert(cli:resume_live_stream(S))
    -- (real time: the emulator holds the attempt in nginx, and applies and logs it when it lets it
    -- go: waited for, however long a busy machine takes)
    assert.truthy(wait_until(function()
      return #server:log { provider = "aliyun", action = "ForbidLiveStream" } == 2 end, 60),
      "the held forbid was never applied")
    assert.equal("forbidden", server:state().aliyun.streams[KEY].status)
    cli:close()
  end)

  it("ZEGO: the held forbid carries a smaller Sequence and is stale when it lands", function()
    local z = assert(streamctl.zego.new {
      endpoint = server.zego_url, app_id = 1234567890, server_secret = "0123456789abcdef0123456789abcdef",
      timeout_ms = TIMEOUT_MS,
    })
    hold_next("zego", "ForbidRTCStream")
    assert(z:forbid_rtc_stream { stream_id = "held-z" })
    assert(z:resume_rtc_stream { stream_id = "held-z" })
    -- (the held forbid is answered, and logged, once the emulator lets it go)
    assert.truthy(wait_until(function()
      return #server:log { provider = "zego", action = "ForbidRTCStream" } == 2 end, 60),
      "the held forbid was never answered")
    assert.equal("normal", server:state().zego.streams["1234567890"]["held-z"].rtc)
    z:close()
  end)
end)

describe("a batch when the emulator stops in the middle", function()
  it("accounts for every stream, and calls a stream failed only when nothing reached the server", function()
    local server = emu.start {}
    local ali = assert(streamctl.aliyun.new {
      endpoint = server.aliyun_url, access_key_id = "LTAIemulatorKey", access_key_secret = "emulator-secret",
      timeout_ms = 2000, retry = { attempts = 2, base_ms = 1 },
    })
    local names = {}
    for i = 1, 40 do names[i] = "stop-" .. i end
    local stopped = false
    local ok, report = pcall(ali.forbid_live_streams, ali, {
      domain_name = "push.example.com", app_name = "live", stream_names = names, concurrency = 4,
      on_progress = function(done)
        if done == 10 and not stopped then stopped = true server:stop() end
      end,
    })
    server:stop()
    ali:close()
    assert(ok, report)
    assert.is_true(stopped)
    assert.equal(40, report.succeeded + report.failed + report.unknown)
    assert.is_true(report.succeeded >= 10)
    assert.is_true(report.failed + report.unknown > 0)
    for _, r in ipairs(report.results) do
      if not r.ok then
        -- failed: never sent; anything that reached the wire is unknown
        assert.equal(r.error.sent == true, r.outcome_unknown == true, r.stream .. ": " .. tostring(r.error))
        if r.error.sent then assert.is_true(r.error.outcome_unknown) end
      end
    end
  end)
end)
