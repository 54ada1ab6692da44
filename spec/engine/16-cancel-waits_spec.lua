-- tier: unit
-- sanitizers: none (the engine on a fake clock: pure Lua)
-- A cancel ends the engine's waits within runner.CANCEL_POLL, on a simulated
-- clock: a pacing wait (a slot 100 s away) and a Retry-After wait (a throttle
-- that asked for 600 s), through a client whose `cancel` turns true at a
-- given time, as the command's does at SIGINT or SIGTERM. The timing half of
-- spec/command/42's "SIGTERM ends a pacing wait" and "SIGTERM ends a
-- Retry-After wait" rows, whose real processes keep the verdicts (the exit
-- status, the streams reported, what the emulator received).
local aliyun = require "streamctl.aliyun"
local runner = require "streamctl.engine.runner"

local THROTTLED = { status = 400, headers = { ["x-acs-retry-after"] = "600000" },
  body = '{"RequestId":"t","HostId":"h","Code":"Throttling.User","Message":"Request was denied due to user flow '
    .. 'control."}' }

-- A client on a clock only sleeping moves, cancelled from `cancel_at`; `answer(n)` answers the n-th request.
local function client(cancel_at, answer, opts)
  local w = { t = 0, sent = {} }
  local o = {
    access_key_id = "AK", access_key_secret = "sk", account_id = "1234567890",
    clock = function() return 1700000000 + w.t end, monotonic = function() return w.t end,
    sleep = function(s) w.t = w.t + s end,
    cancel = function() return w.t >= cancel_at end,
    transport = function()
      w.sent[#w.sent + 1] = w.t
      return answer(#w.sent)
    end,
  }
  for k, v in pairs(opts or {}) do o[k] = v end
  return assert(aliyun.new(o)), w
end

local function ok() return { status = 200, headers = {}, body = '{"RequestId":"r"}' } end

describe("a cancel", function()
  it("ends a pacing wait (a slot every 100 s) within CANCEL_POLL: the streams not sent reported so", function()
    for _, at in ipairs { 1, 1.05, 37.31 } do
      local c, w = client(at, ok, { max_rate = 0.01 })
      local report = c:resume_live_streams { domain_name = "d.example", app_name = "live",
                                             stream_names = { "s1", "s2", "s3" } }
      assert.is_true(w.t >= at and w.t <= at + runner.CANCEL_POLL + 1e-9, "cancelled at " .. at .. ", ended at "
        .. w.t)
      assert.same({ 0 }, w.sent)
      assert.same({ true, false, false }, { report.results[1].ok, report.results[2].ok, report.results[3].ok })
      for i = 2, 3 do
        local e = report.results[i].error
        assert.same({ "Interrupted", false, 0 }, { e.code, e.sent, report.results[i].attempts })
      end
    end
  end)

  it("ends a Retry-After wait (600 s asked) within CANCEL_POLL: the stream reported throttled", function()
    for _, at in ipairs { 1, 1.05, 14.99 } do
      local c, w = client(at, function(n) return n == 1 and THROTTLED or ok() end)
      local report = c:resume_live_streams { domain_name = "d.example", app_name = "live", stream_names = { "s1" } }
      assert.is_true(w.t >= at and w.t <= at + runner.CANCEL_POLL + 1e-9, "cancelled at " .. at .. ", ended at "
        .. w.t)
      assert.same({ 0 }, w.sent)
      local r = report.results[1]
      assert.same({ false, "Throttling.User", 1 }, { r.ok, r.error.code, r.attempts })
    end
  end)
end)
