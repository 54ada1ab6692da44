-- Issue 68, "Operators' reading": --resume-time (and ZEGO reconcile's
-- --cdn-resume-time) take a duration beside an absolute time: [+]N with
-- units d, h, m, s, largest first, each once. Its end is read once, when
-- the command reads its input, on the command's clock (env.clock: fixed
-- here), said on standard error, and checked by the absolute form's own
-- rules (ZEGO's 30 days, the year 9999). Anything else is refused naming the
-- flag and the rule, before anything is sent. Nothing here reaches a
-- server: a run that would send goes to 127.0.0.1:9, where nothing listens.
local checks = require "spec.helpers.checks"
local process = require "spec.helpers.process"
local duration = require("streamctl.cli.client").duration

local HOME = process.temp_dir()
local DOWN = "http://127.0.0.1:9"
local T = 1795799770 -- 2026-11-27T17:16:10Z: the command's clock
local ALI = { "--endpoint", DOWN, "--access-key-id", "LTAIexample", "--access-key-secret", "example-secret",
              "--no-audit-log" }
local ZEGO = { "--endpoint", DOWN, "--app-id", "1234567890", "--server-secret", "0123456789abcdef0123456789abcdef",
               "--no-audit-log" }

local argv_of = checks.argv_of

-- The command in this process on clock T (standard input: empty): status, stdout, stderr.
local function run(argv)
  return checks.run_cli(argv, { home = HOME, clock = function() return T end, stdin = "" })
end

local FORBID = { "aliyun", "forbid-live-stream", "--domain-name", "push.example.com", "--app-name", "live",
                 "--stream-name", "s1" }

local RULE = "a time (YYYY-MM-DDThh:mm:ssZ or Unix seconds) or a duration: [+]N followed by d, h, m or s, largest "
  .. "unit first, each once, no spaces, above zero (e.g. +2h, 90m, 1h30m, 45s, 2d)"

describe("issue 68, --resume-time as a duration", function()
  lazy_teardown(function() os.execute("rm -rf " .. process.quote(HOME)) end)

  it("the grammar: what it takes, in seconds, and what it does not", function()
    for text, s in pairs { ["+2h"] = 7200, ["90m"] = 5400, ["1h30m"] = 5400, ["45s"] = 45, ["2d"] = 172800,
                           ["1d2h3m4s"] = 93784, ["+0h5m"] = 300, ["999999999s"] = 999999999 } do
      assert.equal(s, duration.seconds(text), text)
    end
    for _, text in ipairs { "", "+", "0h", "0d0s", "-2h", "2 h", " 2h", "2h ", "1h1h", "30m1h", "2x", "2H", "h",
                            "2", "+-2h", "1.5h", "1234567890s", "2h+", "1h,30m" } do
      assert.is_nil(duration.seconds(text), text)
    end
  end)

  it("its end read on the command's clock, said on standard error, and sent (table and json alike)", function()
    for text, said in pairs { ["+2h"] = "2026-11-27T19:16:10Z (in 2h)", ["90m"] = "2026-11-27T18:46:10Z (in 1h30m)",
                              ["1h30m"] = "2026-11-27T18:46:10Z (in 1h30m)", ["45s"] = "2026-11-27T17:16:55Z (in 45s)",
                              ["2d"] = "2026-11-29T17:16:10Z (in 2d)" } do
      for _, output in ipairs { "table", "json" } do
        local status, out, err = run(argv_of(FORBID, "--resume-time", text, "--dry-run", "-o", output, ALI))
        assert.equal(0, status, err)
        assert.equal("streamctl: resume time: " .. said .. "\n", err)
        local at = said:sub(1, 20):gsub(":", "%%3A")
        assert.truthy(out:find("ResumeTime=" .. at, 1, true), out)
      end
    end
  end)

  it("anything else refused naming the flag and the rule, nothing sent", function()
    for _, text in ipairs { "", "+", "0h", "-2h", "2 h", "1h1h", "30m1h", "2x", "1234567890s" } do
      local status, out, err = run(argv_of(FORBID, "--resume-time=" .. text, ALI))
      assert.equal(2, status, text)
      assert.equal("", out)
      assert.equal("streamctl: --resume-time must be " .. RULE .. " (got '" .. text .. "')\n", err)
    end
    -- (an overflow of the absolute form's own bound: its rule)
    local status, out, err = run(argv_of(FORBID, "--resume-time", "999999999d", ALI))
    assert.equal(2, status)
    assert.equal("", out)
    assert.equal("streamctl: --resume-time is beyond the year 9999 (got '999999999d')\n", err)
    -- (aliyun reconcile's, refused before the block list is read)
    status, out, err = run(argv_of("aliyun", "reconcile", "--from", "-", "--resume-time", "2x", ALI))
    assert.equal(2, status)
    assert.equal("", out)
    assert.equal("streamctl: --resume-time must be " .. RULE .. " (got '2x')\n", err)
  end)

  it("ZEGO: past the provider's 30 days refused as the absolute time is; --cdn-resume-time alike", function()
    local status, out, err = run(argv_of("zego", "forbid-cdn-live-stream", "--stream-id", "s1", "--resume-time", "31d",
      ZEGO))
    assert.equal(2, status)
    assert.equal("", out)
    assert.equal("streamctl: resume time: 2026-12-28T17:16:10Z (in 31d)\n"
      .. "streamctl: '--resume-time' must be at most 30 days ahead\n", err)
    status, out, err = run(argv_of("zego", "forbid-cdn-live-stream", "--stream-id", "s1", "--resume-time", "30d",
      "--dry-run", ZEGO))
    assert.equal(0, status, err)
    assert.equal("streamctl: resume time: 2026-12-27T17:16:10Z (in 30d)\n", err)
    assert.truthy(out:find("ResumeTime=2026-12-27T17%3A16%3A10Z", 1, true), out)
    local state = HOME .. "/zego-state.json"
    status, out, err = run(argv_of("zego", "reconcile", "--from", "-", "--state", state, "--allow-empty",
      "--cdn-resume-time", "31d", ZEGO))
    assert.equal(2, status)
    assert.equal("", out)
    assert.equal("streamctl: cdn resume time: 2026-12-28T17:16:10Z (in 31d)\n"
      .. "streamctl: '--cdn-resume-time' must be at most 30 days ahead\n", err)
    status, out, err = run(argv_of("zego", "reconcile", "--from", "-", "--state", state, "--allow-empty",
      "--cdn-resume-time", "+2h", "--dry-run", ZEGO))
    assert.equal(0, status, err)
    assert.equal("streamctl: cdn resume time: 2026-11-27T19:16:10Z (in 2h)\n", err)
    assert.truthy(out:find("In sync", 1, true), out)
  end)
end)
