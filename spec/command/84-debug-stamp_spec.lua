-- Issue 68, "Operators' reading": each `--debug` line starts with the time
-- it was written (UTC, ISO 8601, to the millisecond), and an attempt's line
-- says how long it waited for its rate-limit slot (on_attempt's `waited`).
-- The time is the command's clock: env.clock, a fixed one here.
local checks = require "spec.helpers.checks"
local emu = require "spec.helpers.emulator"
local process = require "spec.helpers.process"
local cli_output = require "streamctl.cli.output"

local HOME = process.temp_dir()

-- The command in this process with `clock` as its clock: status, stdout, stderr.
local function run(argv, clock)
  return checks.run_cli(argv, { home = HOME, clock = clock })
end

describe("issue 68, --debug lines: a time and the slot wait", function()
  it("stamp: UTC ISO 8601 to the millisecond", function()
    assert.equal("2026-11-27T17:16:10.062Z", cli_output.stamp(1795799770.0625))
    assert.equal("1970-01-01T00:00:00.000Z", cli_output.stamp(0))
    assert.equal("2026-11-27T17:16:10.999Z", cli_output.stamp(1795799770.9996))
  end)

  it("an attempt's lines, each after the stamp; the first says the wait for a slot", function()
    local info = {
      action = "ForbidLiveStream", role = "call", attempt = 2, ok = false, code = "Throttling", sent = true,
      seconds = 0.041, waited = 63.25,
      wire = function()
        return { method = "POST", url = "https://live.example/?A=1", headers = { ["x-b"] = "2", ["x-a"] = "1" },
                 body = "" },
               { status = 400, headers = { ["content-type"] = "application/json" }, body = '{"Code":"Throttling"}' }
      end,
    }
    local T = "2026-11-27T17:16:10.062Z "
    assert.same({
      T .. "streamctl: debug: ForbidLiveStream call, attempt 2: Throttling in 0.041 s (waited 63.250 s for a slot)",
      T .. "> POST https://live.example/?A=1",
      T .. "> x-a: 1",
      T .. "> x-b: 2",
      T .. "< 400",
      T .. "< content-type: application/json",
      T .. '< {"Code":"Throttling"}',
    }, cli_output.debug_lines(info, "2026-11-27T17:16:10.062Z"))
    -- (never sent: no answer, no wait known)
    info.waited, info.sent, info.code = nil, false, "Unreachable"
    info.wire = function() return nil, nil end
    assert.same({
      T .. "streamctl: debug: ForbidLiveStream call, attempt 2: Unreachable (never sent) in 0.041 s "
        .. "(waited 0.000 s for a slot)",
      T .. "< no answer: Unreachable",
    }, cli_output.debug_lines(info, "2026-11-27T17:16:10.062Z"))
  end)

  describe("through the command, on its clock", function()
    local server
    lazy_setup(function() server = emu.start {} end)
    lazy_teardown(function()
      if server then server:stop() end
      os.execute("rm -rf " .. process.quote(HOME))
    end)

    it("every line of --debug starts with the clock's time; the attempt's line says its wait", function()
      local t = os.time() + 0.25 -- (now, as the emulator checks a request's time; a fixed fraction)
      local stamp = os.date("!%Y-%m-%dT%H:%M:%S", math.floor(t)) .. ".250Z "
      for _, argv in ipairs {
        { "aliyun", "resume-live-stream", "--domain-name", "push.example.com", "--app-name", "live", "--stream-name",
          "dbg", "--debug", "--no-audit-log", "--endpoint", server.aliyun_url, "--access-key-id", "LTAIemulatorKey",
          "--access-key-secret", "emulator-secret" },
        { "zego", "resume-rtc-stream", "--stream-id", "dbg", "--debug", "--no-audit-log", "--endpoint", server.zego_url,
          "--app-id", "1234567890", "--server-secret", "0123456789abcdef0123456789abcdef" },
      } do
        local status, _, err = run(argv, function() return t end)
        assert.equal(0, status, err)
        local lines = checks.lines(err)
        assert.is_true(#lines >= 4, err)
        for _, l in ipairs(lines) do assert.equal(stamp, l:sub(1, #stamp), err) end
        -- (the run's trace first, once: spec/command/88)
        assert.matches("^" .. stamp:gsub("%p", "%%%0") .. "streamctl: debug: trace %x+ %(a new trace: TRACEPARENT is "
          .. "not set%)$", lines[1])
        assert.matches("^" .. stamp:gsub("%p", "%%%0") .. "streamctl: debug: Resume%w+ call, attempt 1: ok in "
          .. "%d+%.%d%d%d s %(waited %d+%.%d%d%d s for a slot%)$", lines[2])
      end
    end)
  end)
end)
