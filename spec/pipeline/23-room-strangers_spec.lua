-- load: heavy
-- sanitizers: none (its clients run in processes and nginx workers of their own; the C loaded here, the rest covers)
-- Issue 48's fault matrix: a budget shared with strangers, and an account
-- whose real cap is below the page's, against the emulator (its strangers
-- and per-account caps, counting the strictest way: a sliding window), one
-- `it` per row:
--   * a 2,000-ID ZEGO resume while a stranger sends 5 calls/s on the AppId:
--     through a Lua script, through the command, through four nginx workers
--     sharing a lua_shared_dict;
--   * 300 Aliyun resumes on an account whose ResumeLiveStream cap is 15/s (the
--     page says 30): through a Lua script, through the command;
--   * three processes sharing a Redis budget beside the 5/s stranger;
--   * the stranger leaves mid-run: every ID done once (the room whole again
--     when the rule says: spec/engine/10-pacing-time, in virtual time);
--   * no stranger: nothing throttled (the pacing of before holds);
--   * a stranger that takes the whole budget, and --deadline 2.
-- What each row asserts holds on a busy machine: every stream done (none
-- failed, none unknown), each applied exactly once (the emulator's log),
-- the throttles counted as the emulator counted them, the learned room below
-- the cap wherever the provider throttled (a machine too busy to reach the
-- cap beside a stranger is not throttled, and learns none), and the exact
-- shape of the report, the summary and the audit outcome. Never rates or
-- throttle shares: those are `make bench`'s.
local cjson = require "cjson"
local socket = require "socket"
local room = require "streamctl.engine.room"
local streamctl = require "streamctl"
local emu = require "spec.helpers.emulator"
local nginx = require "spec.helpers.nginx"
local redis_helper = require "spec.helpers.redis"
local process = require "spec.helpers.process"
local checks = require "spec.helpers.checks"

local q = process.quote
local unpack = table.unpack or unpack
local APP = 1234567890
local ZEGO_SECRET = "0123456789abcdef0123456789abcdef"
local ZEGO_CAP = 20 -- ResumeRTCStreams per AppId (the page's)
local ALIYUN_CAP = 30 -- ResumeLiveStream per account (the page's)
local LOW_CAP = 15 -- the real cap of LTAIlowcap's account
local IDS = 2000 -- a ZEGO resume: 100 calls of 20
local PER_CALL = 20

-- LTAIlowcap: an account whose quota is below the page's, as the config
-- gives it (the emulator's own qps per key; LTAIemulatorKey stays as it is).
local CONFIG = { aliyun = { accounts = { LTAIlowcap = { secret = "lowcap-secret",
                                                        qps = { ResumeLiveStream = LOW_CAP } } } } }

local HOME = process.temp_dir()
local server
local cli = checks.cli(function() return server end, HOME)

-- The figures of a row, on standard error with SPEC_DEBUG set (never asserted).
local function debug_log(fmt, ...)
  if os.getenv("SPEC_DEBUG") then io.stderr:write("\n[23-room] ", string.format(fmt, ...), "\n") end
end

local function names(prefix, n)
  local list = {}
  for i = 1, n do list[i] = prefix .. "-" .. i end
  return list
end

-- A stranger on the AppId's ResumeRTCStreams budget (rate calls a second).
local function stranger(rate)
  local answer, status = server:control("POST", "strangers",
    { provider = "zego", app_id = APP, action = "ResumeRTCStreams", rate = rate }, "zego")
  assert.equal(200, status, cjson.encode(answer))
end

-- The emulator's counters of `action`: accepted, throttled (the requests',
-- not the stranger's).
local function counted(provider, action)
  local c = server:state()[provider].counters[action] or {}
  return c.accepted or 0, c.throttled or 0
end

-- Asserts that each stream of `list` was applied exactly once (one accepted
-- request named it) and nothing else was: a throttled call sent again is
-- applied once, never twice.
local function applied_once(provider, action, list)
  local times = {}
  for _, e in ipairs(server:log { provider = provider, action = action, limit = 10000 }) do
    if e.verdict == "ok" then
      local streams = provider == "zego" and e.streams or { e.params.StreamName }
      for _, id in ipairs(streams) do times[id] = (times[id] or 0) + 1 end
    end
  end
  for _, id in ipairs(list) do
    assert.equal(1, times[id], id .. " applied " .. tostring(times[id]) .. " times")
    times[id] = nil
  end
  assert.is_nil(next(times), "applied, not asked: " .. tostring(next(times)))
end

-- A report (or a summary of one, from another process) of a run that
-- finished: every stream done, `calls` = applied + throttled, and, when the
-- provider throttled any call of the row (`throttled_any`: the emulator's
-- count, whoever was throttled), the learned room below `cap` (and not below
-- the rule's floor); none learned when nothing was. (A machine too busy to
-- send at the cap beside the stranger is never throttled: a verdict either
-- way, never a rate the machine must reach.)
local function assert_done(r, n, applied, cap, who, throttled_any)
  debug_log("%s: %s of %s done, %s calls, %s throttled, lowest room %s/s", who, tostring(r.succeeded), n,
    tostring(r.calls), tostring(r.throttled), tostring(r.lowest_room))
  assert.same({ total = n, succeeded = n, failed = 0, unknown = 0 },
    { total = r.total, succeeded = r.succeeded, failed = r.failed, unknown = r.unknown }, who)
  assert.is_number(r.throttled, who .. ": no throttles counted")
  assert.equal(applied + r.throttled, r.calls, who)
  if not throttled_any then
    assert.is_nil(r.lowest_room, who .. ": a room learned, and nothing throttled")
    return
  end
  assert.is_number(r.lowest_room, who .. ": throttled, and no learned room")
  assert.is_true(r.lowest_room < cap and r.lowest_room >= room.FLOOR * cap - 1e-9,
    who .. ": lowest room " .. r.lowest_room .. " of " .. cap)
end

-- A command's summary's throttles and room (`throttled`, `low`) as assert_done holds a report's.
local function assert_room_said(throttled, low, cap)
  if throttled == 0 then
    assert.is_nil(low, "a room said, and nothing throttled")
  else
    assert.is_true(low ~= nil and low < cap, "room down to " .. tostring(low))
  end
end

-- Every one of `reports` (workers', processes') done: `n` streams each, none
-- failed or unknown (all shown at once when one is not).
local function assert_all_done(reports, n)
  local got, want = {}, {}
  for i, r in ipairs(reports) do got[i], want[i] = { r.succeeded, r.failed, r.unknown }, { n, 0, 0 } end
  assert.same(want, got)
end

-- A script's batch of `list` beside a stranger or under a lower cap (`per_call`
-- streams a call, the page's `cap`): its report done, the emulator's count of
-- applied calls and of throttles agreeing with it, each stream applied once.
local function assert_script_run(r, provider, action, list, per_call, cap)
  local calls = #list / per_call
  local accepted, throttled = counted(provider, action)
  assert_done(r, #list, calls, cap, "the report", throttled > 0)
  assert.equal(calls, accepted)
  assert.equal(throttled, r.throttled)
  applied_once(provider, action, list)
end

-- The last line of a command's output (its summary), for a failure's message.
local function last_line(out)
  return out:match("([^\n]*)\n?$") or ""
end

-- The command's summary line: "N streams: N succeeded, 0 failed, 0 unknown;
-- C calls, S s; T throttled, room down to R/s", its C, T and R.
local function summary_of(out, n)
  local line = last_line(out)
  local calls, rest = line:match("^" .. n .. " streams: " .. n .. " succeeded, 0 failed, 0 unknown; "
    .. "(%d+) calls, %d+%.%d%d s(.*)$")
  assert(calls, "summary: " .. line)
  debug_log("summary: %s", line)
  if rest == "" then return tonumber(calls), 0, nil end -- (nothing throttled: no room said)
  local throttled, low = rest:match("^; (%d+) throttled, room down to (%d+%.%d)/s$")
  assert(throttled, "summary: " .. line)
  return tonumber(calls), tonumber(throttled), tonumber(low)
end

-- The audit log's outcome record of the one run it holds (its intent
-- first; a run of more than 1,000 streams has outcomes records between),
-- its counts with the zeros a big run's carry left out, its unknown
-- streams those its outcomes records name.
local function outcome_of(path)
  local records = {}
  for line in (process.read_file(path) or ""):gmatch("[^\n]+") do records[#records + 1] = cjson.decode(line) end
  assert(#records >= 2, "the audit log holds one run: " .. #records .. " records")
  assert.equal("intent", records[1].record)
  local unknown = {}
  for i = 2, #records - 1 do
    assert.same({ "outcomes", records[1].run }, { records[i].record, records[i].run })
    for _, s in ipairs(records[i].unknown or {}) do unknown[#unknown + 1] = s end
  end
  local o = records[#records]
  o.unknown = o.unknown or unknown -- (a big run's: in its outcomes records)
  assert.same({ "outcome", records[1].run }, { o.record, o.run })
  for k, v in pairs(o.counts or {}) do if v == 0 then o.counts[k] = nil end end
  return o
end

-- Asserts the outcome of a command that finished: its fields agree with
-- the summary (lowest_room: rounded to 2 decimals, the summary to 1).
local function assert_outcome(o, n, calls, throttled, low)
  assert.same({ "ok", 0, calls, throttled, { ok = n } }, { o.outcome, o.exit, o.calls, o.throttled or 0, o.counts })
  if not low then
    assert.is_nil(o.lowest_room)
    return
  end
  assert.is_number(o.lowest_room)
  assert.equal(o.lowest_room, math.floor(o.lowest_room * 100 + 0.5) / 100)
  assert.is_true(math.abs(o.lowest_room - low) <= 0.05 + 1e-9, o.lowest_room .. " said " .. low)
end

-------------------------------------------------------------------------------
-- Four nginx workers on one shared dict: each resumes its share of the
-- batch (COUNT IDs of its own) as it starts, in a timer, and leaves its
-- report in the results dict; GET /results gives the four (null: not yet).

local DRIVER = [==[
local streamctl = require "streamctl"
local cjson = require "cjson.safe"

local M = {}

local function share(premature)
  if premature then return end
  local w = ngx.worker.id()
  local ok, out = pcall(function()
    local c = assert(streamctl.zego.new { endpoint = os.getenv("ZEGO"), app_id = 1234567890,
      server_secret = "0123456789abcdef0123456789abcdef", shared_dict = "streamctl" })
    local ids = {}
    for i = 1, tonumber(os.getenv("COUNT")) do ids[i] = "ngx-w" .. w .. "-" .. i end
    local r = assert(c:resume_rtc_streams { stream_ids = ids })
    c:close()
    return { total = r.total, succeeded = r.succeeded, failed = r.failed, unknown = r.unknown, calls = r.calls,
             throttled = r.throttled, lowest_room = r.lowest_room }
  end)
  if not ok then out = { error = tostring(out) } end
  ngx.shared.results:set("worker:" .. w, cjson.encode(out))
end

function M.init_worker() ngx.timer.at(0, share) end

function M.results()
  local out = {}
  for w = 0, 3 do out[w + 1] = cjson.decode(ngx.shared.results:get("worker:" .. w) or "null") end
  ngx.print(cjson.encode(out))
end

return M
]==]

-- Four workers, each resuming `count` IDs of its own from the start; their
-- reports once all four are in (never a clock: a busy machine waits longer), and nginx stopped.
local function four_workers(count)
  local srv = nginx.start {
    workers = 4,
    env = { ZEGO = server.zego_url, COUNT = tostring(count) },
    prepare = function(dir) nginx.write_file(dir .. "/room48_driver.lua", DRIVER) end,
    lua_path = function(dir) return dir .. "/?.lua" end,
    lua_cpath = function() return (nginx.jit_cpath():gsub(";.*$", "")) end,
    main = "env ZEGO; env COUNT;",
    http = function(ports)
      return "lua_shared_dict streamctl 1m; lua_shared_dict results 1m;\n"
        .. "    init_worker_by_lua_block { require('room48_driver').init_worker() }\n"
        .. "    server { listen 127.0.0.1:" .. ports[1] .. "; location = /results { content_by_lua_block { "
        .. "require('room48_driver').results() } } }"
    end,
  }
  local ok, out = pcall(function()
    local reports
    repeat -- (until the four have reported, however busy the machine: a hung nginx is run-specs' timeout's)
      socket.sleep(0.2)
      assert(process.alive(srv.pid), "nginx is gone: " .. srv:error_log())
      local status, text = srv:get("/results")
      assert(status == 200, "GET /results: " .. tostring(status) .. " " .. tostring(text))
      reports = cjson.decode(text)
      local n = 0
      for _, r in pairs(reports) do if r ~= cjson.null then n = n + 1 end end
    until n == 4
    return reports
  end)
  srv:stop()
  assert(ok, out)
  for w = 1, 4 do
    assert(type(out[w]) == "table", "worker " .. (w - 1) .. " left no report")
    assert(out[w].error == nil, out[w].error)
  end
  return out
end

-------------------------------------------------------------------------------
-- A process of its own on a Redis budget: resumes PREFIX-1..PREFIX-COUNT and
-- prints its report's counts as one JSON line.

local WORKER = [==[
local streamctl = require "streamctl"
local cjson = require "cjson"
local endpoint, redis, prefix, count = arg[1], arg[2], arg[3], tonumber(arg[4])
local ids = {}
for i = 1, count do ids[i] = prefix .. "-" .. i end
local c = assert(streamctl.zego.new { endpoint = endpoint, app_id = 1234567890,
  server_secret = "0123456789abcdef0123456789abcdef", redis = redis })
local r = assert(c:resume_rtc_streams { stream_ids = ids })
c:close()
io.write(cjson.encode { total = r.total, succeeded = r.succeeded, failed = r.failed, unknown = r.unknown,
                        calls = r.calls, throttled = r.throttled, lowest_room = r.lowest_room }, "\n")
]==]

-------------------------------------------------------------------------------

describe("issue 48's fault matrix: a budget shared with strangers, a cap below the page's", function()
  lazy_setup(function() server = emu.start { config = CONFIG } end)
  lazy_teardown(function()
    if server then server:stop() end
    os.execute("rm -rf " .. q(HOME))
  end)
  before_each(function() server:reset() end)

  local function zego_client(extra)
    local o = { endpoint = server.zego_url, app_id = APP, server_secret = ZEGO_SECRET }
    for k, v in pairs(extra or {}) do o[k] = v end
    return assert(streamctl.zego.new(o))
  end

  describe("a 2,000-ID ZEGO resume while a stranger sends 5 calls/s on the AppId", function()
    it("through a Lua script: every ID done, once; throttles sent again; the room learned below 20/s", function()
      stranger(5)
      local ids = names("lib", IDS)
      local r = assert(zego_client():resume_rtc_streams { stream_ids = ids })
      assert_script_run(r, "zego", "ResumeRTCStreams", ids, PER_CALL, ZEGO_CAP)
    end)

    it("through the command: done, the summary and the audit outcome say the throttles and the room", function()
      stranger(5)
      local ids = names("cli", IDS)
      local log = HOME .. "/zego-stranger.jsonl"
      os.remove(log)
      local status, out, err = cli.run(cli.zg("resume-rtc-streams", "--yes", "--audit-log", log, unpack(ids)))
      assert.equal(0, status, err .. last_line(out))
      local calls, throttled, low = summary_of(out, IDS)
      local accepted, counted_throttled = counted("zego", "ResumeRTCStreams")
      assert.equal(IDS / PER_CALL, accepted)
      assert.same({ accepted + counted_throttled, counted_throttled }, { calls, throttled })
      assert_room_said(throttled, low, ZEGO_CAP)
      assert_outcome(outcome_of(log), IDS, calls, throttled, low)
      applied_once("zego", "ResumeRTCStreams", ids)
    end)

    it("through four nginx workers sharing a lua_shared_dict: each worker done, the room learned", function()
      stranger(5)
      -- (the same 2,000 IDs and 100 calls, a quarter in each worker)
      local out = four_workers(IDS / 4)
      assert_all_done(out, IDS / 4)
      local ids, sum, learned = {}, 0, 0
      local accepted, throttled = counted("zego", "ResumeRTCStreams")
      for w = 1, 4 do
        -- (every worker paces at the room the dict holds, one cut lowering it for all: a worker throttled
        -- itself learned it, one that was not may have seen it there or ended before the first cut, as a
        -- busy machine orders them)
        assert_done(out[w], IDS / 4, IDS / 4 / PER_CALL, ZEGO_CAP, "worker " .. (w - 1),
          out[w].throttled > 0 or out[w].lowest_room ~= nil)
        if out[w].lowest_room then learned = learned + 1 end
        sum = sum + out[w].throttled
        for _, id in ipairs(names("ngx-w" .. (w - 1), IDS / 4)) do ids[#ids + 1] = id end
      end
      assert.equal(throttled > 0, learned > 0, "throttled " .. throttled .. ", workers that learned the room: "
        .. learned)
      assert.equal(IDS / PER_CALL, accepted)
      assert.equal(throttled, sum)
      applied_once("zego", "ResumeRTCStreams", ids)
    end)
  end)

  describe("300 Aliyun resumes on an account whose ResumeLiveStream cap is 15/s (the page says 30)", function()
    it("through a Lua script: every stream done, once; the room learned below 30/s", function()
      local list = names("lib", 300)
      local c = assert(streamctl.aliyun.new { endpoint = server.aliyun_url, access_key_id = "LTAIlowcap",
                                              access_key_secret = "lowcap-secret" })
      local r = assert(c:resume_live_streams { domain_name = "push.example.com", app_name = "live",
                                               stream_names = list })
      assert_script_run(r, "aliyun", "ResumeLiveStream", list, 1, ALIYUN_CAP)
    end)

    it("through the command: done, the summary and the audit outcome say the throttles and the room", function()
      local list = names("cli", 300)
      local log = HOME .. "/aliyun-low.jsonl"
      os.remove(log)
      local argv = { "aliyun", "resume-live-streams", "--domain-name", "push.example.com", "--app-name", "live",
        "--endpoint", server.aliyun_url, "--access-key-id", "LTAIlowcap", "--access-key-secret", "lowcap-secret",
        "--yes", "--audit-log", log }
      for _, s in ipairs(list) do argv[#argv + 1] = s end
      local status, out, err = cli.run(argv)
      assert.equal(0, status, err .. last_line(out))
      local calls, throttled, low = summary_of(out, 300)
      local accepted, counted_throttled = counted("aliyun", "ResumeLiveStream")
      assert.equal(300, accepted)
      assert.same({ accepted + counted_throttled, counted_throttled }, { calls, throttled })
      assert_room_said(throttled, low, ALIYUN_CAP)
      assert_outcome(outcome_of(log), 300, calls, throttled, low)
      applied_once("aliyun", "ResumeLiveStream", list)
    end)
  end)

  it("three processes sharing a Redis budget beside the 5/s stranger: each done, each saw the shared room",
    function()
    if process.preloaded() then
      pending("processes of their own: the same under valgrind or ASan; run once, in the plain runs")
      return
    end
    assert(redis_helper.available())
    local redis = redis_helper.start {}
    local dir = process.temp_dir()
    finally(function()
      redis:stop()
      os.execute("rm -rf " .. q(dir))
    end)
    process.write_file(dir .. "/worker.lua", WORKER)
    stranger(5)
    -- (1,800 IDs, 90 calls: 600 IDs a process, started together)
    local children = {}
    for i = 1, 3 do
      children[i] = process.spawn(q(process.interpreter()) .. " " .. q(dir .. "/worker.lua") .. " "
        .. q(server.zego_url) .. " " .. q(redis.url) .. " proc" .. i .. " 600 2>" .. q(dir .. "/" .. i .. ".err"))
    end
    local reports, ids, sum = {}, {}, 0
    for i, child in ipairs(children) do
      local line = child.pipe:read("*l")
      child.pipe:close()
      assert(line, "process " .. i .. " printed nothing: " .. tostring(process.read_file(dir .. "/" .. i .. ".err")))
      reports[i] = cjson.decode(line)
    end
    assert_all_done(reports, 600)
    local accepted, throttled = counted("zego", "ResumeRTCStreams")
    for i, r in ipairs(reports) do
      -- (a process the provider never throttled paces at the room Redis holds all the same)
      assert_done(r, 600, 30, ZEGO_CAP, "process " .. i, throttled > 0)
      assert.equal("", process.read_file(dir .. "/" .. i .. ".err"), "process " .. i .. " said something")
      sum = sum + r.throttled
      for _, id in ipairs(names("proc" .. i, 600)) do ids[#ids + 1] = id end
    end
    assert.equal(90, accepted)
    assert.equal(throttled, sum)
    applied_once("zego", "ResumeRTCStreams", ids)
  end)

  it("the stranger leaves mid-run: every ID done, once, and calls sent after it left", function()
    stranger(5)
    -- The stranger leaves 20 answers after the first throttle (the room cut
    -- while it was there); the run goes on without it. (That the room is
    -- whole again once the rule says it must be, room.whole_after after the
    -- last throttle, is asserted in virtual time: spec/engine/10-pacing-time,
    -- "the room a throttle cut".)
    local first, left, after_left = nil, false, 0
    local c = zego_client { on_attempt = function(info)
      if info.throttled then first = first or 0 end
      if left then
        after_left = after_left + 1
      elseif first then
        first = first + 1
        if first > 20 then
          local _, status = server:control("DELETE", "strangers",
            { provider = "zego", app_id = APP, action = "ResumeRTCStreams" }, "zego")
          assert(status == 200, "DELETE strangers: " .. tostring(status))
          left = true
        end
      end
    end }
    local ids = names("leaves", IDS)
    local r = assert(c:resume_rtc_streams { stream_ids = ids })
    assert.is_nil(c.on_attempt_error)
    assert.is_true(left and after_left > 0, "the stranger did not leave mid-run")
    assert.same({}, server:control("GET", "strangers", nil, "zego").strangers)
    assert_script_run(r, "zego", "ResumeRTCStreams", ids, PER_CALL, ZEGO_CAP)
    local rate, _, cap = c:rate_for("ResumeRTCStreams")
    assert.equal(ZEGO_CAP, cap)
    assert.is_true(rate > 0 and rate <= ZEGO_CAP)
  end)

  it("no stranger: a 2,000-ID ZEGO resume, nothing throttled, no room learned", function()
    local ids = names("alone", IDS)
    local r = assert(zego_client():resume_rtc_streams { stream_ids = ids })
    local accepted, throttled = counted("zego", "ResumeRTCStreams")
    assert.same({ total = IDS, succeeded = IDS, failed = 0, unknown = 0, calls = IDS / PER_CALL, throttled = 0 },
      { total = r.total, succeeded = r.succeeded, failed = r.failed, unknown = r.unknown, calls = r.calls,
        throttled = r.throttled })
    assert.is_nil(r.lowest_room)
    assert.same({ IDS / PER_CALL, 0 }, { accepted, throttled })
    applied_once("zego", "ResumeRTCStreams", ids)
  end)

  it("a stranger that takes the whole budget and --deadline 2: exit 1, the unsent NOT SENT, nothing unknown",
    function()
    stranger(ZEGO_CAP)
    -- (its window full: one second of its arrivals)
    socket.sleep(1.1)
    local ids = names("deadline", IDS)
    local log = HOME .. "/deadline.jsonl"
    os.remove(log)
    local status, out, err = cli.run(cli.zg("resume-rtc-streams", "--yes", "--deadline", "2", "--audit-log", log,
      unpack(ids)))
    assert.equal(1, status, err .. last_line(out))
    local accepted, throttled = counted("zego", "ResumeRTCStreams")
    assert.equal(0, accepted)
    assert.is_true(throttled > 0)
    -- Each row: a throttled call's streams FAILED with 30002 (not applied),
    -- a call never sent NOT SENT; none UNKNOWN, none ok.
    local failed, not_sent, lines = 0, 0, 0
    for line in out:gmatch("[^\n]+") do
      lines = lines + 1
      local word = line:match("^deadline%-%d+%s+(%u[%u ]-)%s+%d+%s")
      if word == "FAILED" then
        assert.truthy(line:find("30002", 1, true), line)
        failed = failed + 1
      elseif word then
        assert.equal("NOT SENT", word, line)
        assert.truthy(line:find("  0  DeadlineExceeded: the run's deadline passed before it was sent", 1, true), line)
        not_sent = not_sent + 1
      end
    end
    assert.equal(IDS + 2, lines) -- (the header and the summary besides)
    assert.equal(IDS, failed + not_sent)
    -- (paced, at most the cap's calls in 2 s were sent: most were not)
    assert.is_true(failed > 0 and not_sent > IDS / 2, failed .. " failed, " .. not_sent .. " not sent")
    assert.equal(0, failed % PER_CALL)
    local line = last_line(out)
    local calls, said_throttled, low = line:match("^" .. IDS .. " streams: 0 succeeded, " .. IDS .. " failed %("
      .. not_sent .. " of them not sent%), 0 unknown; (%d+) calls, %d+%.%d%d s; (%d+) throttled, room down to "
      .. "(%d+%.%d)/s$")
    assert(calls, "summary: " .. line)
    debug_log("summary: %s", line)
    -- (every call sent was throttled; a budget alone whose every answer is a
    -- throttle is cut to the rule's floor: 5% of 20, one a second)
    assert.same({ throttled, throttled, "1.0" }, { tonumber(calls), tonumber(said_throttled), low })
    local o = outcome_of(log)
    assert.same({ "failed", 1, throttled, throttled, room.FLOOR * ZEGO_CAP, { failed = failed, not_sent = not_sent },
      {} }, { o.outcome, o.exit, o.calls, o.throttled, o.lowest_room, o.counts, o.unknown })
  end)
end)
