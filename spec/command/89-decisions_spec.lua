-- The decision made last stands between runs of the installed command
-- (issue 87), against the emulator. A stranger holds the late call's
-- action (every attempt throttled); after its first attempt another run
-- decides the other way on the same stream and lands. On one machine (one
-- HOME: one decision file) the late call ends superseded, not sent, exit 0;
-- as another machine (a HOME of its own) nothing can vouch for it: it ends
-- Expired, not sent, exit 1. Either way the stream ends as the other run
-- asked. Verdicts only: the late run is bounded by --deadline, and a
-- DeadlineExceeded fails the spec. Issue 89, from the command too: a late
-- forbid superseded is not said to be "forbidden until resumed"; a forbid
-- whose resume time passes while it waits fails, exit 1 (not 2, usage).
-- load: heavy (two command processes and the emulator, a late call waiting out its 7 s window)
local emu = require "spec.helpers.emulator"
local checks = require "spec.helpers.checks"
local process = require "spec.helpers.process"
local cjson = require "cjson"

local q = process.quote

local server, homes
lazy_setup(function()
  server = emu.start {}
  homes = { process.temp_dir(), process.temp_dir() }
end)
lazy_teardown(function()
  if server then server:stop() end
  for _, h in ipairs(homes or {}) do process.run("rm -rf " .. q(h)) end
end)

local PROVIDERS = {
  aliyun = {
    flags = function() return "--endpoint " .. server.aliyun_url .. " --access-key-id LTAIemulatorKey "
      .. "--access-key-secret emulator-secret" end,
    batch = function(op, stream) return "aliyun " .. op .. "-live-streams --domain-name push.example.com "
      .. "--app-name live " .. stream end,
    action = { resume = "ResumeLiveStream", forbid = "ForbidLiveStream" },
    budget = { account = "LTAIemulatorKey" },
    forbidden = function(stream)
      local s = server:state().aliyun.streams["push.example.com/live/" .. stream]
      return s ~= nil and s.status == "forbidden"
    end,
  },
  zego = {
    flags = function() return "--endpoint " .. server.zego_url .. " --app-id 1234567890 "
      .. "--server-secret 0123456789abcdef0123456789abcdef" end,
    batch = function(op, stream) return "zego " .. op .. "-rtc-streams " .. stream end,
    action = { resume = "ResumeRTCStreams", forbid = "ForbidRTCStreams" },
    budget = { app_id = 1234567890 },
    forbidden = function(stream)
      local s = server:state().zego.streams["1234567890"][stream]
      return s ~= nil and s.rtc == "forbidden"
    end,
  },
}

-- Runs `streamctl` (the build under test) as a user whose HOME is `home`.
local function command(p, home, op, stream, extra)
  local cli = process.installed { home = home }
  return cli.env .. " " .. cli.command .. " " .. (extra or "--output json") .. " "
    .. p.batch(op, stream) .. " " .. p.flags()
end

-- The late run of `late` (throttled all along) and, once its first attempt
-- was throttled, the other run of `other` as the user of `other_home`.
-- Returns the late run's exit status and JSON line, the other's status, the
-- late run's standard error and output. `table`: the late run's output a
-- table (no JSON line then).
local function race(p, late, other, late_home, other_home, stream, table_)
  local action = p.action[late]
  local dir = process.temp_dir()
  finally(function() process.run("rm -rf " .. q(dir)) end)
  local before = ((server:state()[p == PROVIDERS.zego and "zego" or "aliyun"].counters[action] or {}).throttled or 0)
  local child = process.spawn("sh -c " .. q(command(p, late_home, late, stream, "--deadline 60 --output "
    .. (table_ and "table" or "json")) .. " >"
    .. q(dir .. "/out") .. " 2>" .. q(dir .. "/err") .. "; echo $? >" .. q(dir .. "/rc")))
  assert(checks.wait_until(function()
    local c = server:state()[p == PROVIDERS.zego and "zego" or "aliyun"].counters[action]
    return c and (c.throttled or 0) > before
  end, 60), "the late run's first attempt never reached the emulator")
  local other_rc = process.exit_status(os.execute(command(p, other_home, other, stream) .. " >/dev/null 2>&1"))
  assert(checks.wait_until(function() return process.read_file(dir .. "/rc") end, 120), "the late run never ended")
  process.stop(child)
  local out = process.read_file(dir .. "/out")
  return tonumber(process.read_file(dir .. "/rc")),
    out ~= "" and not table_ and cjson.decode(out:match("^[^\n]+")) or nil, other_rc, process.read_file(dir .. "/err"),
    out
end

for _, name in ipairs { "aliyun", "zego" } do
  local p = PROVIDERS[name]
  describe("two runs of `streamctl " .. name .. "` on one stream", function()
    for _, case in ipairs { { "resume", "forbid", true }, { "forbid", "resume", false } } do
      local late, other, ends_forbidden = case[1], case[2], case[3]
      -- (a stranger holds the late action's budget, set once for both cases: the emulator lets one
      -- request through in the first second of a stranger set again on a key just cleared)
      local where = name == "zego" and "zego" or "aliyun"
      describe("(a " .. late .. " held by a stranger)", function()
        lazy_setup(function()
          local stranger = { action = p.action[late], rate = 1000 }
          for k, v in pairs(p.budget) do stranger[k] = v end
          server:control("POST", "strangers", stranger, where)
        end)
        lazy_teardown(function() server:control("DELETE", "strangers", nil, where) end)

        it("on one machine: the late " .. late .. " is superseded by the later " .. other .. ", exit 0", function()
          local stream = name .. "-one-" .. late
          local rc, line, other_rc, err = race(p, late, other, homes[1], homes[1], stream)
          assert.equal(0, other_rc)
          assert.equal(0, rc, err)
          assert.is_true(line.ok)
          assert.is_string(line.superseded_by)
          assert.is_nil(line.ends) -- (it forbade nothing)
          assert.equal(ends_forbidden, p.forbidden(stream))
          -- the audit log says so too, and `streamctl audit --run` reads it back
          local audit_line
          for l in process.read_file(homes[1] .. "/.local/state/streamctl/audit.jsonl"):gmatch("[^\n]+") do
            if l:find('"superseded_by":"' .. line.superseded_by .. '"', 1, true) then audit_line = cjson.decode(l) end
          end
          assert(audit_line, "no audit line names the later decision")
          local entry = audit_line.streams[1]
          assert.same({ "ok", line.superseded_by }, { entry.outcome, entry.superseded_by })
          local cli = process.installed { home = homes[1] }
          local rc2, out2 = cli.run("audit --run " .. audit_line.run .. " --stream " .. stream)
          assert.equal(0, rc2, out2)
          assert.matches("  " .. p.action[late] .. "  superseded  by decision " .. line.superseded_by .. "\n", out2)
        end)

        if name == "zego" and late == "forbid" then
          -- (issue 89: it said "forbidden until resumed" of the forbid it never sent)
          it("on one machine, as a table: the closing lines say the forbid was superseded, not when it ends",
            function()
            local stream = name .. "-table-" .. late
            local rc, _, other_rc, err, out = race(p, late, other, homes[1], homes[1], stream, true)
            assert.same({ 0, 0 }, { other_rc, rc }, err)
            assert.matches("\n1 streams: 1 succeeded %(1 of them superseded by a later call, not sent%), 0 failed, "
              .. "0 unknown; %d+ calls, [%d.]+ s[^\n]*\n1 forbid superseded by a later decision: not sent by this run, "
              .. "its end is that decision's\n$", out)
            assert.is_nil(out:find("until resumed", 1, true), out)
          end)
        end

        if late == "forbid" and name == "aliyun" then -- (ZEGO's RTC forbid takes no resume time)
          -- (issue 89: the time's passing was a usage error, exit 2)
          it("a forbid whose resume time passes while it waits is not sent: ResumeTimePassed, exit 1", function()
            local cli = process.installed { home = homes[1] }
            local rc, out, err = cli.run(p.batch("forbid", name .. "-passes")
              .. " --output json --deadline 60 --resume-time 3s " .. p.flags())
            assert.equal(1, rc, err)
            local line = cjson.decode(out:match("^[^\n]+"))
            assert.same({ false, "ResumeTimePassed" }, { line.ok, line.code })
            assert.is_false(p.forbidden(name .. "-passes"))
          end)
        end

        it("as another machine: the late " .. late .. " is not sent, Expired, exit 1", function()
          local stream = name .. "-two-" .. late
          local rc, line, other_rc, err = race(p, late, other, homes[1], homes[2], stream)
          assert.equal(0, other_rc)
          assert.equal(1, rc, tostring(err) .. cjson.encode(line or {}))
          assert.is_false(line.ok)
          assert.equal("Expired", line.code)
          -- (real processes on a real clock: its age is the window's 7 s or more, by the machine's load)
          local age = tonumber(line.message:match("^decided (%d+) s ago, not sent: "))
          assert.is_true(age ~= nil and age >= 7, line.message)
          assert.equal(ends_forbidden, p.forbidden(stream))
        end)
      end)
    end
  end)
end
