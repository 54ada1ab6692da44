-- The metrics exposition (streamctl.operator.metrics' render) against
-- Prometheus' own checker: `promtool check metrics` (Debian's prometheus
-- package) parses it and lints its names, units, `_total` suffixes and
-- HELP/TYPE lines; it must find nothing. spec/14 pins the same text byte for
-- byte; spec/31 checks the example edge's /metrics, served by nginx, the same
-- way. The checker is shown to catch what it exists for: a counter without
-- its suffix, a sample before its TYPE, a bad escape; and an empty input
-- (which promtool accepts) is refused here before it gets there.
local process = require "spec.helpers.process"
local metrics_mod = require "streamctl.operator.metrics"

local q = process.quote

-- promtool's verdict on `text`: exit status and what it printed.
local function promtool(text)
  if #text == 0 then error("an empty exposition: promtool would accept it, and check nothing", 0) end
  local dir = process.temp_dir()
  process.write_file(dir .. "/metrics.txt", text)
  local out = process.capture("promtool check metrics < " .. q(dir .. "/metrics.txt") .. " 2>&1; echo \"rc=$?\"")
  process.run("rm -rf " .. q(dir))
  local rc = tonumber(out:match("rc=(%d+)%s*$"))
  return rc, (out:gsub("rc=%d+%s*$", ""))
end

-- A registry that saw every kind of series, label values that need escaping included.
local function rendered()
  local m = metrics_mod.new()
  m.on_attempt { provider = "aliyun", action = "ResumeLiveStream", ok = false, throttled = true, retry = false,
    seconds = 0.02, code = 'Throttling"Odd\\code\nline', waited = 0, room = 24, cap = 30 }
  m.on_attempt { provider = "aliyun", action = "ResumeLiveStream", ok = true, retry = true, seconds = 0.3,
    after_code = "Throttling.User", waited = 0.04, room = 22.5, cap = 30 }
  m.on_attempt { provider = "zego", action = 'Odd"Action\\with\nnewline', ok = false, throttled = true, retry = false,
    seconds = 12, code = 30002, waited = 75, room = 20, cap = 20 }
  m:count("callbacks", { provider = "zego", event = "stream_create", result = "accepted" })
  m:count("callbacks", { provider = "aliyun", event = "publish", result = "InvalidSignature" })
  m:count("reactions", { provider = "aliyun", reaction = "forbid_again", result = "ok" })
  m:count("drift", { provider = "aliyun", state = "found" }, 3)
  m:count("spans", { result = "queue_full" }, 2)
  m:places_left("aliyun", { used = 9950, limit = 10000, needed = 3, domains = 2 })
  m:places_left('odd"provider', -1)
  return m:render()
end

describe("the metrics exposition, checked by promtool", function()
  it("streamctl.operator.metrics renders what promtool accepts, lint included", function()
    local text = rendered()
    -- every series there, escaped where it must be
    for _, want in ipairs {
      "# TYPE streamctl_requests_total counter", "# TYPE streamctl_request_duration_seconds histogram",
      'streamctl_request_duration_seconds_bucket{provider="aliyun",action="ResumeLiveStream",le="+Inf"} 2',
      'action="Odd\\"Action\\\\with\\nnewline"', "streamctl_reactions_total{", "streamctl_drift_total{",
      '# TYPE streamctl_room_requests_per_second gauge', '# TYPE streamctl_slot_wait_seconds histogram',
      'code="Throttling\\"Odd\\\\code\\nline"} 1', 'streamctl_retries_by_code_total{', 'code="30002"} 1',
      'streamctl_spans_total{result="queue_full"} 2', "# TYPE streamctl_blocklist_places_left gauge",
      'streamctl_blocklist_places_left{provider="aliyun"} 50', 'streamctl_blocklist_places_left{provider="odd\\"provider"} -1',
    } do
      assert.truthy(text:find(want, 1, true), "the exposition has no " .. want)
    end
    local rc, said = promtool(text)
    assert.equal("", said)
    assert.equal(0, rc)
  end)

  it("an empty registry renders HELP and TYPE alone, which promtool accepts", function()
    local text = metrics_mod.new():render()
    assert.truthy(text:find("# TYPE streamctl_requests_total counter\n", 1, true))
    local rc, said = promtool(text)
    assert.same({ 0, "" }, { rc, said })
  end)

  it("promtool catches what it is here for", function()
    local text = rendered()
    -- a counter named without _total (lint: exit 3), a sample before its
    -- family's TYPE, and an escape the format does not have (parse errors: exit 1)
    local cases = {
      { (text:gsub("streamctl_drift_total", "streamctl_drift")), 3, "counter metrics should have \"_total\" suffix" },
      { 'streamctl_x_total{a="b"} 1\n# TYPE streamctl_x_total counter\n', 1, "" },
      { '# TYPE streamctl_x_total counter\nstreamctl_x_total{a="b\\q"} 1\n', 1, "" },
    }
    for i, case in ipairs(cases) do
      local rc, said = promtool(case[1])
      assert.equal(case[2], rc, "case " .. i .. ": " .. said)
      assert.truthy(said:find(case[3], 1, true), "case " .. i .. ": " .. said)
    end
    assert.has_error(function() promtool("") end, "an empty exposition: promtool would accept it, and check nothing")
  end)
end)
