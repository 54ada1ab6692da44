-- streamctl.operator.reconcile and `streamctl PROVIDER reconcile`: the forbid list as
-- a desired state, against the emulator. What is sent is counted in the
-- emulator's request log: a drift of one stream is one ForbidLiveStream, a
-- clean state sends nothing, --remove-extra resumes exactly the extras, and
-- a provider view that cannot be read sends nothing.
local cjson = require "cjson"
local emu = require "spec.helpers.emulator"
local nginx = require "spec.helpers.nginx"
local reconcile = require "streamctl.operator.reconcile"
local streamctl = require "streamctl"

local D, APP = "push.example.com", "live"
local HOME = nginx.temp_dir()

-- Runs the command line in this process; returns the exit status, stdout, stderr.
local function run(argv, stdin)
  return require("spec.helpers.checks").run_cli(argv, { stdin = stdin,
    getenv = function(name) if name == "HOME" then return HOME end end })
end

local function write(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
  return path
end

local read = require("spec.helpers.process").read_file

local server, ali, z
local SINCE = 0 -- the request log is read from after this entry

local function log(q)
  q.since, q.limit = SINCE, 10000
  return (server:log(q))
end

local function count(action)
  return #log { action = action }
end

-- Forgets what was sent so far: the log is read from here on.
local function reset_log()
  local _, answer = server:log { limit = 1 }
  SINCE = answer.last_seq
end

local function blocked()
  local r = assert(ali:describe_live_streams_block_list { domain_name = D })
  return r.StreamUrls.StreamUrl
end

local function want(...)
  local out = {}
  for i, s in ipairs { ... } do out[i] = { domain_name = D, app_name = APP, stream_name = s } end
  return out
end

-- A state store in memory, as an nginx shared dict behaves (get: value or nil).
local function memory()
  local t = { data = {} }
  function t.get(self, k) return self.data[k] end
  function t.set(self, k, v) self.data[k] = v return true end
  return t
end

local function ali_args(...)
  local argv = { "aliyun", "reconcile", "--endpoint", server.aliyun_url, "--access-key-id", "LTAIemulatorKey",
                 "--access-key-secret", "emulator-secret", "--no-audit-log" }
  for _, a in ipairs { ... } do argv[#argv + 1] = a end
  return argv
end

local function zego_args(...)
  local argv = { "zego", "reconcile", "--endpoint", server.zego_url, "--app-id", "1234567890",
                 "--server-secret", "0123456789abcdef0123456789abcdef", "--no-audit-log" }
  for _, a in ipairs { ... } do argv[#argv + 1] = a end
  return argv
end

describe("reconcile", function()
  lazy_setup(function()
    server = emu.start {}
    ali = assert(streamctl.aliyun.new { endpoint = server.aliyun_url, access_key_id = "LTAIemulatorKey",
                                        access_key_secret = "emulator-secret" })
    z = assert(streamctl.zego.new { endpoint = server.zego_url, app_id = 1234567890,
                                    server_secret = "0123456789abcdef0123456789abcdef" })
  end)
  lazy_teardown(function()
    if server then server:stop() end
    os.execute("rm -rf '" .. HOME .. "'")
  end)
  before_each(function() server:reset() SINCE = 0 end)

  describe("aliyun (library)", function()
    it("forbids only what the block list lacks: a drift of one stream is one ForbidLiveStream", function()
      local report = assert(reconcile.aliyun(ali, want("a", "b", "c")))
      assert.same({ "push.example.com/live/a", "push.example.com/live/b", "push.example.com/live/c" },
        report.found.missing)
      assert.equal(3, report.fixed)
      assert.is_true(report.in_sync)
      assert.equal(3, count("ForbidLiveStream"))

      -- behind its back: b resumed
      assert(ali:resume_live_stream { domain_name = D, app_name = APP, stream_name = "b" })
      reset_log()
      report = assert(reconcile.aliyun(ali, want("a", "b", "c")))
      local sent = log { action = "ForbidLiveStream" }
      assert.equal(1, #sent)
      assert.equal("b", sent[1].params.StreamName)
      assert.same({ "push.example.com/live/b" }, report.found.missing)
      assert.same({}, report.found.extra)
      -- (3 calls: the block list, the account's domains for the block list's places, the forbid)
      assert.same({ desired = 3, blocked = 2, fixed = 1, calls = 3, in_sync = true },
        { desired = report.desired, blocked = report.blocked, fixed = report.fixed, calls = report.calls,
          in_sync = report.in_sync })
      assert.equal("ForbidLiveStream", report.results[1].action)
      assert.truthy(report.results[1].request_id)
      assert.same({ "push.example.com/live/a", "push.example.com/live/b", "push.example.com/live/c" }, blocked())
    end)

    it("sends nothing when the provider already matches", function()
      assert(ali:forbid_live_streams { domain_name = D, app_name = APP, stream_names = { "a", "b" } })
      reset_log()
      local report = assert(reconcile.aliyun(ali, want("b", "a", "a")))
      assert.equal(0, count("ForbidLiveStream"))
      assert.equal(0, count("ResumeLiveStream"))
      assert.equal(1, count("DescribeLiveStreamsBlockList"))
      assert.same({ desired = 2, blocked = 2, fixed = 0, calls = 1, in_sync = true, missing = {}, extra = {} },
        { desired = report.desired, blocked = report.blocked, fixed = report.fixed, calls = report.calls,
          in_sync = report.in_sync, missing = report.found.missing, extra = report.found.extra })
    end)

    it("reports extras and leaves them; with remove_extra resumes exactly them", function()
      assert(ali:forbid_live_streams { domain_name = D, app_name = APP, stream_names = { "a", "x", "y" } })
      assert(ali:forbid_live_stream { domain_name = D, app_name = "other", stream_name = "z" })
      reset_log()
      local report = assert(reconcile.aliyun(ali, want("a")))
      assert.same({ "push.example.com/live/x", "push.example.com/live/y", "push.example.com/other/z" },
        report.found.extra)
      assert.is_true(report.in_sync)
      assert.equal(0, count("ResumeLiveStream"))

      report = assert(reconcile.aliyun(ali, want("a"), { remove_extra = true }))
      local resumed = {}
      for _, e in ipairs(log { action = "ResumeLiveStream" }) do
        resumed[#resumed + 1] = e.params.AppName .. "/" .. e.params.StreamName
      end
      table.sort(resumed)
      assert.same({ "live/x", "live/y", "other/z" }, resumed)
      assert.equal(3, report.fixed)
      assert.is_true(report.in_sync)
      assert.equal(0, count("ForbidLiveStream"))
      assert.same({ "push.example.com/live/a" }, blocked())
    end)

    it("reads the desired list again before sending: what left it is not forbidden, what joined not resumed",
      function()
      -- (a resume through the same list took b off it, and a forbid put x on it, while the round read the
      -- block list: the decisions made last stand)
      assert(ali:forbid_live_streams { domain_name = D, app_name = APP, stream_names = { "a", "x", "y" } })
      reset_log()
      local report = assert(reconcile.aliyun(ali, want("a", "b", "c"), { remove_extra = true,
        desired_now = function() return want("a", "c", "x") end }))
      assert.same({ "push.example.com/live/c" }, report.found.missing)
      assert.same({ "push.example.com/live/y" }, report.found.extra)
      assert.same({ "push.example.com/live/b", "push.example.com/live/x" }, report.found.changed)
      local sent = {}
      for _, e in ipairs(log {}) do
        if e.action == "ForbidLiveStream" or e.action == "ResumeLiveStream" then
          sent[#sent + 1] = e.action .. " " .. e.params.StreamName
        end
      end
      assert.same({ "ForbidLiveStream c", "ResumeLiveStream y" }, sent)
      -- a list that cannot be read again, or that breaks a rule: nothing sent
      reset_log()
      for _, again in ipairs { function() return nil, "Redis went away" end, function() error("boom") end,
                               function() return { { domain_name = D } } end } do
        local r, err = reconcile.aliyun(ali, want("q"), { desired_now = again })
        assert.is_nil(r)
        assert.same({ "DesiredUnavailable", "store", false }, { err.code, err.kind, err.sent })
        assert.matches("the desired list could not be read again before sending %(.+%): nothing was sent$",
          err.message)
      end
      assert.equal(0, count("ForbidLiveStream"))
    end)

    it("reads every page, and stops at max_pages sending nothing", function()
      assert(ali:forbid_live_streams { domain_name = D, app_name = APP, stream_names = { "a", "b", "c", "d", "e" } })
      reset_log()
      local report = assert(reconcile.aliyun(ali, want("a", "b", "c", "d", "e", "f"), { page_size = 2 }))
      assert.equal(3, count("DescribeLiveStreamsBlockList"))
      assert.same({ "push.example.com/live/f" }, report.found.missing)
      assert.equal(1, count("ForbidLiveStream"))

      reset_log()
      local r, err = reconcile.aliyun(ali, want("g"), { page_size = 2, max_pages = 2 })
      assert.is_nil(r)
      assert.equal("TooManyPages", err.code)
      assert.truthy(err.message:find("more than 2 pages of 2", 1, true))
      assert.equal(0, count("ForbidLiveStream"))
    end)

    it("sends nothing and fails clearly when the block list cannot be read", function()
      server:faults { kind = "http503", action = "DescribeLiveStreamsBlockList", count = 50 }
      local r, err = reconcile.aliyun(ali, want("a", "b"))
      server:clear_faults()
      assert.is_nil(r)
      assert.equal("ServiceUnavailable", err.code)
      assert.equal("DescribeLiveStreamsBlockList", err.action)
      assert.equal(0, count("ForbidLiveStream"))
    end)

    it("a dry run computes the difference and sends nothing", function()
      assert(ali:forbid_live_stream { domain_name = D, app_name = APP, stream_name = "x" })
      reset_log()
      local report = assert(reconcile.aliyun(ali, want("a"), { dry_run = true, remove_extra = true }))
      assert.same({ "push.example.com/live/a" }, report.found.missing)
      assert.same({ "push.example.com/live/x" }, report.found.extra)
      assert.is_false(report.in_sync)
      assert.is_true(report.dry_run)
      assert.equal(0, count("ForbidLiveStream") + count("ResumeLiveStream"))
    end)

    it("tells on_progress of every change, and reads other domains given", function()
      assert(ali:forbid_live_stream { domain_name = "other.example.com", app_name = APP, stream_name = "q" })
      local seen = {}
      local report = assert(reconcile.aliyun(ali, want("a", "b"), {
        domains = { "other.example.com" },
        on_progress = function(done, total, e) seen[#seen + 1] = { done, total, e.stream, e.action, e.ok } end,
      }))
      assert.same({ "other.example.com/live/q" }, report.found.extra)
      -- (told as each ends: which of two sent together ends first is the machine's to say)
      assert.same({ { 1, 2 }, { 2, 2 } }, { { seen[1][1], seen[1][2] }, { seen[2][1], seen[2][2] } })
      table.sort(seen, function(x, y) return x[3] < y[3] end)
      assert.same({ { "push.example.com/live/a", "ForbidLiveStream", true },
                    { "push.example.com/live/b", "ForbidLiveStream", true } },
        { { seen[1][3], seen[1][4], seen[1][5] }, { seen[2][3], seen[2][4], seen[2][5] } })
    end)

    it("refuses bad items and options, and raises for misuse, sending nothing", function()
      local r, err = reconcile.aliyun(ali, { { domain_name = D, app_name = "*", stream_name = "s" } })
      assert.is_nil(r)
      assert.equal("desired[1] app_name must not be '*' (ForbidLiveStream takes no wildcard)", err.message)
      r, err = reconcile.aliyun(ali, { { domain_name = D, app_name = APP, stream = "s" } })
      assert.is_nil(r)
      assert.equal("desired[1] has 'stream', which is not one of domain_name, app_name, stream_name", err.message)
      r, err = reconcile.aliyun(ali, want("a"), { remove_extras = true })
      assert.is_nil(r)
      assert.equal("InvalidParameter", err.code)
      assert.truthy(err.message:find("did you mean 'remove_extra'", 1, true), err.message)
      assert.has_error(function() reconcile.aliyun(z, want("a")) end,
        "bad argument #1 to 'aliyun' (a streamctl.aliyun client expected)")
      -- misuse raises, blamed on the line that called the reconciler (this file)
      local function blamed(f, message)
        local ok, e = pcall(f)
        assert.is_false(ok)
        assert.equal("44-reconcile_spec.lua:" .. message, tostring(e):match("[^/]*$"):gsub("^(44%-reconcile_spec%.lua:)%d+:",
          "%1"))
      end
      blamed(function() reconcile.aliyun(ali, want("a"), 5) end,
        " bad argument #3 to 'aliyun' (opts must be a table or nil)")
      blamed(function() reconcile.aliyun(ali, 5) end, " bad argument #2 to 'aliyun' (desired must be a table)")
      blamed(function() reconcile.aliyun(z, want("a")) end,
        " bad argument #1 to 'aliyun' (a streamctl.aliyun client expected)")
      blamed(function() reconcile.zego(ali, {}) end, " bad argument #1 to 'zego' (a streamctl.zego client expected)")
      blamed(function() reconcile.zego(z, {}, "x") end, " bad argument #3 to 'zego' (opts must be a table or nil)")
      assert.equal(0, #log {})
    end)

    it("parses the command line's lists", function()
      assert.same({ { domain_name = D, app_name = APP, stream_name = "a-b" } },
        reconcile.parse("aliyun", "# c\n\n push.example.com/live/a-b \n"))
      -- a name holds only what a forbid takes: a '/' past the first two is refused, never split or guessed
      local r, why = reconcile.parse("aliyun", "push.example.com/live/a/b\n", "f.txt")
      assert.is_nil(r)
      assert.equal("f.txt:1: stream_name must hold only letters, digits, '-' and '_' (found '/' at byte 2)", why)
      r, why = reconcile.parse("aliyun", "push.example.com/live\n", "f.txt")
      assert.is_nil(r)
      assert.equal("f.txt:1: must be domain/app/stream (got 'push.example.com/live')", why)
      assert.same({ { stream_id = "r1" }, { stream_id = "c1", kind = "cdn" }, { stream_id = "r2", kind = "rtc" } },
        reconcile.parse("zego", "r1\ncdn:c1\nrtc:r2\n"))
      assert.same({ { stream_id = "x", kind = "cdn" } }, reconcile.parse("zego", '[{"stream_id":"x","kind":"cdn"}]'))
      r, why = reconcile.parse("zego", '[{"stream_id":"x","kind":"srt"}]', "f.json")
      assert.is_nil(r)
      assert.equal("f.json: item 1 kind must be 'rtc' or 'cdn'", why)
    end)
  end)

  describe("zego (library)", function()
    it("forbids what its state lacks, in one ForbidRTCStreams per 20 IDs, then nothing", function()
      local store = memory()
      local desired = { { stream_id = "r1" }, { stream_id = "r2" }, { stream_id = "c1", kind = "cdn" } }
      -- (the client's clock, read before and after: os.time() is the kernel's coarse clock, which lags
      -- the precise one by up to a tick and once read a second behind the send)
      local now = require("streamctl.core").now
      local before = now()
      local report = assert(reconcile.zego(z, desired, { state = store }))
      local after = now()
      assert.same({ "rtc:r1", "rtc:r2", "cdn:c1" }, report.found.missing)
      assert.equal(1, count("ForbidRTCStreams"))
      assert.equal(1, count("ForbidCDNLiveStream"))
      assert.is_true(report.in_sync)
      local state = cjson.decode(store.data["streamctl:reconcile:zego:1234567890"])
      assert.equal(0, state.streams["rtc:r1"])
      assert.is_true(state.streams["cdn:c1"] > os.time() + 86000)
      -- each forbid's end: an RTC forbid's none, a CDN forbid's the provider's day
      local ends = {}
      for _, e in ipairs(report.results) do ends[e.stream] = { e.ends_by, e.ends } end
      assert.same({ "until_resumed" }, ends["rtc:r1"])
      assert.equal("provider_default", ends["cdn:c1"][1])
      -- (a day from when it was sent: within the run)
      assert.is_true(ends["cdn:c1"][2] >= before + 86400 and ends["cdn:c1"][2] <= after + 86400,
        string.format("%.4f not within [%.4f, %.4f] + 86400", ends["cdn:c1"][2], before, after))

      reset_log()
      report = assert(reconcile.zego(z, desired, { state = store }))
      assert.equal(0, #log {})
      assert.same({}, report.found.missing)
    end)

    it("cannot see a change made behind its back (documented), and resumes extras only when told", function()
      local store = memory()
      assert(reconcile.zego(z, { { stream_id = "r1" }, { stream_id = "r2" } }, { state = store }))
      assert(z:resume_rtc_stream { stream_id = "r1" })
      reset_log()
      local report = assert(reconcile.zego(z, { { stream_id = "r1" } }, { state = store }))
      assert.equal(0, #log {}) -- r1's resume unseen; r2 an extra, left
      assert.same({ "rtc:r2" }, report.found.extra)
      report = assert(reconcile.zego(z, { { stream_id = "r1" } }, { state = store, remove_extra = true }))
      local sent = log { action = "ResumeRTCStreams" }
      assert.equal(1, #sent)
      assert.same({ "r2" }, sent[1].stream_ids)
      assert.equal(1, report.fixed)
      local state = cjson.decode(store.data["streamctl:reconcile:zego:1234567890"])
      assert.same({ ["rtc:r1"] = 0 }, state.streams)
    end)

    it("sends nothing when its state cannot be read", function()
      local r, err = reconcile.zego(z, { { stream_id = "r1" } },
        { state = { get = function() return nil, "no memory" end, set = function() return true end } })
      assert.is_nil(r)
      assert.equal("StateUnavailable", err.code)
      assert.equal("the state 'streamctl:reconcile:zego:1234567890' cannot be read: no memory; nothing was sent",
        err.message)
      r, err = reconcile.zego(z, { { stream_id = "r1" } },
        { state = { get = function() return "{}" end, set = function() return true end } })
      assert.is_nil(r)
      assert.equal("InvalidState", err.code)
      r, err = reconcile.zego(z, { { stream_id = "r1" } }, {})
      assert.is_nil(r)
      assert.equal("option 'state' is required", err.message)
      assert.equal(0, #log {})
    end)
  end)

  describe("on the command line", function()
    it("aliyun reconcile: the difference sent, the table, exit 0 in sync", function()
      local list = write(HOME .. "/desired.txt", "# blocked\npush.example.com/live/a\n\npush.example.com/live/b\n")
      assert(ali:forbid_live_streams { domain_name = D, app_name = APP, stream_names = { "a", "x" } })
      reset_log()
      local status, out, err = run(ali_args("--from", list))
      assert.equal(0, status, err)
      assert.equal("", err)
      assert.equal(1, count("ForbidLiveStream"))
      local lines = {}
      for l in out:gmatch("[^\n]+") do lines[#lines + 1] = l end
      assert.equal("CHANGE  STREAM                   RESULT    REQUEST ID / ERROR", lines[1])
      assert.truthy(lines[2]:find("^forbid  push.example.com/live/b  ok        %S+$"), lines[2])
      assert.equal("extra   push.example.com/live/x  left      not desired: --remove-extra resumes it", lines[3])
      assert.equal("2 desired, 2 forbidden before: 1 missing, 1 extra; 1 fixed, 0 failed, 0 unknown; 3 calls. "
        .. "In sync.", lines[4])

      status, out = run(ali_args("--from", list, "--output", "json", "--remove-extra"))
      assert.equal(0, status)
      local json = {}
      for l in out:gmatch("[^\n]+") do json[#json + 1] = cjson.decode(l) end
      assert.same({ "push.example.com/live/x", "resume", true }, { json[1].stream, json[1].change, json[1].ok })
      assert.same({ desired = 2, blocked = 3, missing = 0, extra = 1, fixed = 1, failed = 0, unknown = 0, calls = 2,
                    in_sync = true, dry_run = false }, json[2].summary)
    end)

    it("--dry-run prints the difference, sends nothing, exits 1 when there is one", function()
      local status, out = run(ali_args("--from", "-", "--dry-run"), "push.example.com/live/a\n")
      assert.equal(1, status)
      assert.truthy(out:find("forbid  push.example.com/live/a  dry run   not sent", 1, true), out)
      assert.truthy(out:find("Not in sync (dry run: nothing sent).", 1, true), out)
      assert.equal(0, count("ForbidLiveStream"))
      assert(ali:forbid_live_stream { domain_name = D, app_name = APP, stream_name = "a" })
      status = run(ali_args("--from", "-", "--dry-run"), "push.example.com/live/a\n")
      assert.equal(0, status)
    end)

    it("a view that cannot be read: exit 1, nothing sent, said once", function()
      server:faults { kind = "http503", action = "DescribeLiveStreamsBlockList", count = 50 }
      local status, out, err = run(ali_args("--from", "-"), "push.example.com/live/a\n")
      server:clear_faults()
      assert.equal(1, status)
      assert.equal("", out)
      assert.truthy(err:find("^streamctl: cannot read the provider's view, nothing was sent: aliyun "
        .. "DescribeLiveStreamsBlockList: ServiceUnavailable"), err)
      assert.equal(0, count("ForbidLiveStream"))
    end)

    it("usage errors exit 2 naming the flag or the line", function()
      local status, _, err = run(ali_args())
      assert.equal(2, status)
      assert.equal("streamctl: --from FILE is required: the desired state (see --help)\n", err)
      status, _, err = run(ali_args("--from", "-"), "nonsense\n")
      assert.equal(2, status)
      assert.equal("streamctl: --from standard input:1: must be domain/app/stream (got 'nonsense')\n", err)
      status, _, err = run(zego_args("--from", "-"), "r1\n")
      assert.equal(2, status)
      assert.truthy(err:find("--state FILE is required", 1, true))
      assert.equal(0, #log {})
    end)

    it("zego reconcile keeps its state in --state, made 0600", function()
      local state = HOME .. "/zego-state.json"
      os.remove(state)
      local status, out, err = run(zego_args("--from", "-", "--state", state), "r1\nr2\ncdn:c1\n")
      assert.equal(0, status, err)
      assert.truthy(out:find("3 desired, 0 forbidden before: 3 missing, 0 extra; 3 fixed", 1, true), out)
      assert.equal(1, count("ForbidRTCStreams"))
      local saved = cjson.decode(read(state))
      assert.truthy(saved["streamctl:reconcile:zego:1234567890"])
      assert.equal("rw-------", require("lfs").attributes(state, "permissions"))
      reset_log()
      status, out = run(zego_args("--from", "-", "--state", state, "--remove-extra"), "r1\n")
      assert.equal(0, status)
      assert.equal(1, count("ResumeRTCStreams"))
      assert.equal(1, count("ResumeCDNLiveStream"))
      assert.truthy(out:find("1 desired, 3 forbidden before: 0 missing, 2 extra; 2 fixed", 1, true), out)
    end)
  end)
end)
