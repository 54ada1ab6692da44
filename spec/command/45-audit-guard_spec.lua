-- The blast-radius guard and the audit log: a 1,000-stream forbid without
-- --yes sends nothing; with it, it goes; [defaults] max_forbid and
-- --max-forbid set the limit; every run that changes something writes one
-- JSON line (exact fields, no secret) to a file made with mode 0600.
local cjson = require "cjson"
local emu = require "spec.helpers.emulator"
local nginx = require "spec.helpers.nginx"
local audit = require "streamctl.operator.audit"
local lfs = require "lfs"

local HOME = nginx.temp_dir()
local ALI_SECRET, ZEGO_SECRET = "emulator-secret", "0123456789abcdef0123456789abcdef"
local HOST = (function()
  local f = io.open("/proc/sys/kernel/hostname", "rb")
  local h = f and f:read("*l")
  if f then f:close() end
  return h or os.getenv("HOSTNAME") or "unknown"
end)()

local ENV = {}

local function run(argv) return require("spec.helpers.checks").run_cli(argv, { home = HOME, env = ENV }) end

local read = require("spec.helpers.process").read_file

local function lines_of(path)
  local out = {}
  for l in (read(path) or ""):gmatch("[^\n]+") do out[#out + 1] = l end
  return out
end

local server
local SINCE = 0
local function count(action)
  return #(server:log { action = action, since = SINCE, limit = 10000 })
end

local function ali(...)
  local argv = { "aliyun", ... }
  for _, a in ipairs { "--endpoint", server.aliyun_url, "--access-key-id", "LTAIemulatorKey",
                       "--access-key-secret", ALI_SECRET } do argv[#argv + 1] = a end
  return argv
end

local function zg(...)
  local argv = { "zego", ... }
  for _, a in ipairs { "--endpoint", server.zego_url, "--app-id", "1234567890", "--server-secret", ZEGO_SECRET } do
    argv[#argv + 1] = a
  end
  return argv
end

local function list_file(n, fmt)
  local parts = {}
  for i = 1, n do parts[i] = fmt:format(i) end
  local path = HOME .. "/list-" .. n .. ".txt"
  local f = assert(io.open(path, "wb"))
  f:write(table.concat(parts, "\n"), "\n")
  f:close()
  return path
end

local DEFAULT_LOG = HOME .. "/.local/state/streamctl/audit.jsonl"

describe("the blast-radius guard and the audit log", function()
  lazy_setup(function() server = emu.start {} end)
  lazy_teardown(function()
    if server then server:stop() end
    os.execute("rm -rf '" .. HOME .. "'")
  end)
  before_each(function()
    server:reset()
    SINCE = 0
    ENV = {}
    os.remove(DEFAULT_LOG)
    os.remove(HOME .. "/.config/streamctl/config")
  end)

  describe("audit.guard", function()
    it("allows up to max_forbid, more only when confirmed", function()
      assert.same({ true, { count = 100, max_forbid = 100, confirmed = false, allowed = true } },
        { audit.guard(100) })
      local ok, err = audit.guard(101)
      assert.is_nil(ok)
      assert.equal("TooManyStreams", err.code)
      assert.is_false(err.sent)
      assert.equal("forbidding 101 streams in one run is more than max_forbid (100): nothing was sent; confirm to "
        .. "send them", err.message)
      assert.same({ count = 101, max_forbid = 100, confirmed = false, allowed = false }, err.guard)
      assert.same({ true, { count = 5000, max_forbid = 100, confirmed = true, allowed = true } },
        { audit.guard(5000, { confirm = true }) })
      assert.is_nil((audit.guard(3, { max_forbid = 2 })))
      ok, err = audit.guard(3, { max_forbid = -1 })
      assert.is_nil(ok)
      assert.equal("option 'max_forbid' must be at least 0", err.message)
      assert.has_error(function() audit.guard("3") end, "bad argument #1 to 'guard' (count must be an integer >= 0)")
    end)
  end)

  describe("audit.writer", function()
    it("appends each line in one write, however long, and makes a file rotated away again with mode 0600", function()
      local path = HOME .. "/writer/audit.jsonl"
      local write = assert(audit.writer(path))
      assert.equal("rw-------", lfs.attributes(path, "permissions"))
      local long = audit.record { provider = "aliyun", command = "x", note = string.rep("n", 40000) }
      -- two processes appending long lines at once: every line whole
      local script = os.tmpname()
      local f = assert(io.open(script, "w"))
      f:write(string.format([[
        package.path = %q
        package.cpath = %q
        local w = assert(require("streamctl.operator.audit").writer(%q))
        for _ = 1, 50 do assert(w(%q)) end
      ]], package.path, package.cpath, path, long))
      f:close()
      -- (this interpreter: package.cpath names its build of the C modules)
      local lua = require("spec.helpers.process").interpreter()
      local p1 = io.popen(lua .. " " .. script .. " & " .. lua .. " " .. script .. "; wait")
      p1:read("*a")
      p1:close()
      os.remove(script)
      local n = 0
      for line in io.lines(path) do
        n = n + 1
        assert.equal(long, line)
      end
      assert.equal(100, n)
      -- rotated away: made again, private, whatever the umask
      os.remove(path)
      assert(write(long))
      assert.equal("rw-------", lfs.attributes(path, "permissions"))
      os.remove(path)
      assert(os.execute("rmdir " .. HOME .. "/writer"))
      local ok, why = write("x")
      assert.is_nil(ok)
      assert.matches("^cannot open .*/writer/audit.jsonl: No such file or directory$", why)
    end)
  end)

  describe("on the command line", function()
    it("stops a 1,000-stream forbid without --yes: nothing sent, exit 2, the flag to pass", function()
      local list = list_file(1000, "room-%d")
      local status, out, err = run(zg("forbid-rtc-streams", "--from", list))
      assert.equal(2, status)
      assert.equal("", out)
      assert.equal("streamctl: refused: this run would forbid 1000 streams, more than --max-forbid (100); nothing "
        .. "was sent. Pass --yes to send them (or a larger --max-forbid).\n", err)
      assert.equal(0, count("ForbidRTCStreams"))
      status = run(ali("forbid-live-streams", "--domain-name", "push.example.com", "--app-name", "live",
        "--from", list))
      assert.equal(2, status)
      assert.equal(0, count("ForbidLiveStream"))
      -- the refusals are in the audit log
      local lines = lines_of(DEFAULT_LOG)
      assert.equal(2, #lines)
      local rec = cjson.decode(lines[2])
      assert.same({ "refused", 2, { count = 1000, max_forbid = 100, confirmed = false, allowed = false }, 1000 },
        { rec.outcome, rec.exit, rec.guard, #rec.streams })
      assert.same({ stream = "push.example.com/live/room-1", action = "ForbidLiveStream", outcome = "not_sent" },
        rec.streams[1])
    end)

    it("lets it through with --yes (1,000 ZEGO streams: 50 calls)", function()
      local list = list_file(1000, "room-%d")
      local status, out, err = run(zg("forbid-rtc-streams", "--from", list, "--yes", "--output", "json"))
      assert.equal(0, status, err)
      assert.equal(50, count("ForbidRTCStreams"))
      local n = 0
      for _ in out:gmatch("[^\n]+") do n = n + 1 end
      assert.equal(1000, n)
      local lines = lines_of(DEFAULT_LOG)
      local intent, rec = cjson.decode(lines[1]), cjson.decode(lines[2])
      -- the intent: 1,000 streams, too many to name one by one: their count and digest
      local names = {}
      for i = 1, 1000 do names[i] = "room-" .. i end
      assert.same({ "intent", 1000, (audit.digest(names)), list }, { intent.record, intent.count, intent.digest,
        intent.from })
      assert.is_nil(intent.streams)
      assert.same({ "outcome", intent.run, "ok", { count = 1000, max_forbid = 100, confirmed = true, allowed = true },
        1000, 50 }, { rec.record, rec.run, rec.outcome, rec.guard, rec.counts.ok, rec.calls })
    end)

    it("reconcile obeys the guard too; a dry run shows what --yes would send", function()
      local list = list_file(1000, "push.example.com/live/s%d")
      local status, _, err = run(ali("reconcile", "--from", list))
      assert.equal(2, status)
      assert.truthy(err:find("would forbid 1000 streams", 1, true), err)
      assert.equal(0, count("ForbidLiveStream"))
      local out
      status, out = run(ali("reconcile", "--from", list, "--yes", "--dry-run", "--output", "json"))
      assert.equal(1, status)
      local last
      for l in out:gmatch("[^\n]+") do last = l end
      assert.equal(1000, cjson.decode(last).summary.missing)
      assert.equal(0, count("ForbidLiveStream"))
      list = list_file(3, "push.example.com/live/s%d")
      status, _, err = run(ali("reconcile", "--from", list, "--max-forbid", "2"))
      assert.equal(2, status)
      assert.truthy(err:find("would forbid 3 streams, more than --max-forbid (2)", 1, true), err)
      status = run(ali("reconcile", "--from", list, "--max-forbid", "2", "--yes"))
      assert.equal(0, status)
      assert.equal(3, count("ForbidLiveStream"))
    end)

    it("takes the limit from [defaults] max_forbid, the flag first, and refuses a bad one", function()
      os.execute("mkdir -p '" .. HOME .. "/.config/streamctl'")
      local f = assert(io.open(HOME .. "/.config/streamctl/config", "wb"))
      f:write("[defaults]\nmax_forbid = 2\n")
      f:close()
      os.execute("chmod 600 '" .. HOME .. "/.config/streamctl/config'")
      local status, _, err = run(zg("forbid-rtc-streams", "a", "b", "c"))
      assert.equal(2, status)
      assert.truthy(err:find("more than --max-forbid (2)", 1, true), err)
      status = run(zg("forbid-rtc-streams", "a", "b", "c", "--max-forbid", "3"))
      assert.equal(0, status)
      status, _, err = run(zg("forbid-rtc-streams", "a", "--max-forbid", "x"))
      assert.equal(2, status)
      assert.equal("streamctl: --max-forbid must be an integer >= 0 in decimal digits (at most 9007199254740991) "
        .. "(got 'x')\n", err)
      f = assert(io.open(HOME .. "/.config/streamctl/config", "wb"))
      f:write("[defaults]\nmax_forbid = lots\n")
      f:close()
      status, _, err = run(zg("forbid-rtc-streams", "a"))
      assert.equal(2, status)
      assert.truthy(err:find("config:2: max_forbid must be an integer >= 0 in decimal digits (at most "
        .. "9007199254740991) (got 'lots')", 1, true), err)
      assert.equal(1, count("ForbidRTCStreams"))
    end)

    it("writes an intent before a run sends and its outcome after: exact fields, no secret, mode 0600", function()
      local before = os.time()
      local status, _, err = run(ali("forbid-live-streams", "--domain-name", "push.example.com", "--app-name", "live",
        "a", "b", "a"))
      local after = os.time()
      assert.equal(0, status, err)
      assert.equal("rw-------", lfs.attributes(DEFAULT_LOG, "permissions"))
      assert.equal("drwx------", "d" .. lfs.attributes(HOME .. "/.local/state/streamctl", "permissions"))
      local text = read(DEFAULT_LOG)
      assert.is_nil(text:find(ALI_SECRET, 1, true))
      local intent, rec = cjson.decode(lines_of(DEFAULT_LOG)[1]), cjson.decode(lines_of(DEFAULT_LOG)[2])
      assert.truthy(rec.time:find("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%dZ$"), rec.time)
      assert.truthy(intent.run:find("^%x+$") and #intent.run == 16, intent.run)
      local run_id, trace_id = intent.run, intent.trace_id
      -- (the run's trace, a new one without TRACEPARENT: spec/command/88 follows it to the requests)
      assert.truthy(trace_id:find("^%x+$") and #trace_id == 32, trace_id)
      intent.time, intent.run, intent.trace_id = nil, nil, nil
      assert.same({
        record = "intent", user = "tester", host = HOST, provider = "aliyun", credential = "LTAIemulatorKey",
        credential_source = "the command line's flags", command = "forbid-live-streams",
        actions = { "ForbidLiveStream" }, guard = { count = 2, max_forbid = 100, confirmed = false, allowed = true },
        from = "the command line", count = 2,
        digest = require("streamctl.core").sha256_hex("push.example.com/live/a\npush.example.com/live/b"),
        streams = { { stream = "push.example.com/live/a", action = "ForbidLiveStream" },
                    { stream = "push.example.com/live/b", action = "ForbidLiveStream" } },
      }, intent)
      local ids = {}
      for i, s in ipairs(rec.streams) do
        assert.truthy(s.request_id:find("^%x+%-%x+%-%x+%-%x+%-%x+$"), s.request_id)
        ids[i] = s.request_id
        s.request_id = nil
      end
      assert.same(ids, rec.request_ids)
      rec.time, rec.request_ids = nil, nil
      -- each forbid's end: no --resume-time, the provider's 6 months after it was answered
      local calendar, core = require "streamctl.base.calendar", require "streamctl.core"
      for _, s in ipairs(rec.streams) do
        local ends = core.parse_utc_timestamp(s.ends)
        assert.is_true(ends >= calendar.add_months(before, 6) and ends <= calendar.add_months(after + 1, 6), s.ends)
        assert.equal("provider_default", s.ends_by)
        s.ends, s.ends_by = nil, nil
      end
      assert.same({
        record = "outcome", run = run_id, trace_id = trace_id, user = "tester", host = HOST, provider = "aliyun",
        credential = "LTAIemulatorKey", credential_source = "the command line's flags",
        command = "forbid-live-streams", actions = { "ForbidLiveStream" },
        guard = { count = 2, max_forbid = 100, confirmed = false, allowed = true },
        -- the block list's places read before it sent: none in use, 2 needed
        places = { used = 0, limit = 10000, needed = 2, domains = 1 },
        outcome = "ok", exit = 0, calls = 2, counts = { ok = 2 }, unknown = {},
        streams = { { stream = "push.example.com/live/a", action = "ForbidLiveStream", outcome = "ok" },
                    { stream = "push.example.com/live/b", action = "ForbidLiveStream", outcome = "ok" } },
      }, rec)
      -- keys in the documented order
      assert.truthy(lines_of(DEFAULT_LOG)[1]:find('^{"time":"[^"]+","record":"intent","run":"%x+","trace_id":"%x+",'
        .. '"user":"tester","host":'))

      -- a failure and an unknown outcome, on ZEGO: codes and unknowns listed
      server:faults { kind = "code", action = "ResumeRTCStream", code = 30006, count = 1, provider = "zego" }
      status = run(zg("resume-rtc-stream", "--stream-id", "r1"))
      assert.equal(1, status)
      server:faults { kind = "drop", action = "ForbidCDNLiveStream", after_apply = true, count = 10,
                      provider = "zego" }
      status = run(zg("forbid-cdn-live-stream", "--stream-id", "c1", "--timeout", "2000"))
      assert.equal(1, status)
      server:clear_faults()
      local lines = lines_of(DEFAULT_LOG)
      assert.equal(6, #lines)
      local failed, unknown = cjson.decode(lines[4]), cjson.decode(lines[6])
      assert.same({ "intent", "intent", failed.run, unknown.run }, { cjson.decode(lines[3]).record,
        cjson.decode(lines[5]).record, cjson.decode(lines[3]).run, cjson.decode(lines[5]).run })
      assert.same({ "1234567890", "the command line's flags", "resume-rtc-stream", "failed", 1 },
        { failed.credential, failed.credential_source, failed.command, failed.outcome, failed.exit })
      assert.same({ stream = "r1", action = "ResumeRTCStream", outcome = "failed", code = 30006 },
        { stream = failed.streams[1].stream, action = failed.streams[1].action, outcome = failed.streams[1].outcome,
          code = failed.streams[1].code })
      assert.same({ "unknown", { "c1" } }, { unknown.outcome, unknown.unknown })
      assert.equal("unknown", unknown.streams[1].outcome)
      assert.is_nil(read(DEFAULT_LOG):find(ZEGO_SECRET, 1, true))
      assert.is_nil(read(DEFAULT_LOG):find(ALI_SECRET, 1, true))
    end)

    it("writes nothing for look-ups and dry runs; --no-audit-log, --audit-log and STREAMCTL_AUDIT_LOG", function()
      assert.equal(0, (run(ali("describe-live-streams-block-list", "--domain-name", "push.example.com"))))
      assert.equal(0, (run(ali("resume-live-stream", "--domain-name", "d", "--app-name", "a", "--stream-name", "s",
        "--dry-run"))))
      assert.equal(1, (run(ali("reconcile", "--from", list_file(1, "d/a/s%d"), "--dry-run")))) -- (a difference)
      assert.is_nil(read(DEFAULT_LOG))
      assert.equal(0, (run(zg("resume-rtc-streams", "r1", "--no-audit-log"))))
      assert.is_nil(read(DEFAULT_LOG))
      local mine = HOME .. "/logs/mine.jsonl"
      assert.equal(0, (run(zg("resume-rtc-streams", "r1", "--audit-log", mine))))
      assert.equal(2, #lines_of(mine))
      assert.equal("rw-------", lfs.attributes(mine, "permissions"))
      ENV.STREAMCTL_AUDIT_LOG = mine
      assert.equal(0, (run(ali("call", "ResumeLiveStream", "DomainName=d", "AppName=a", "StreamName=s",
        "LiveStreamType=publisher"))))
      local rec = cjson.decode(lines_of(mine)[4])
      assert.same({ "outcome", "call", { "ResumeLiveStream" }, 1 }, { rec.record, rec.command, rec.actions,
        rec.calls })
      assert.is_nil(read(DEFAULT_LOG))
    end)

    it("refuses to run when the log cannot be opened or its intent written; a lost outcome is said once", function()
      local status, out, err = run(zg("forbid-rtc-streams", "r1", "--audit-log", "/proc/no/such/audit.jsonl"))
      assert.equal(2, status)
      assert.equal("", out)
      assert.equal("streamctl: the audit log cannot be written (cannot create /proc/no/such/audit.jsonl: No such file "
        .. "or directory): nothing was sent (--audit-log FILE for another file, or --no-audit-log)\n", err)
      assert.equal(0, count("ForbidRTCStreams"))
      -- a device is no log: refused before the intent, never written
      status, out, err = run(zg("forbid-rtc-streams", "r1", "--audit-log", "/dev/full"))
      assert.equal(2, status)
      assert.equal("", out)
      assert.equal("streamctl: the audit log cannot be written (cannot open /dev/full: it is a character device, not "
        .. "a regular file): nothing was sent (--audit-log FILE for another file, or --no-audit-log)\n", err)
      assert.equal(0, count("ForbidRTCStreams"))
      -- a full disk: the intent cannot be written, so nothing is sent
      local core = require "streamctl.core"
      local append, writes = core.append_private, 0
      core.append_private = function(path) return nil, "cannot write " .. path .. ": No space left on device", 0 end
      local full = HOME .. "/logs/intent.jsonl"
      local rok, rs, _, re = pcall(run, zg("forbid-rtc-streams", "r1", "--audit-log", full))
      core.append_private = append
      assert(rok, rs)
      assert.equal(2, rs)
      assert.equal("streamctl: the audit log cannot be written (cannot write " .. full .. ": No space left on device): "
        .. "nothing was sent (--audit-log FILE for another file, or --no-audit-log)\n", re)
      assert.equal(0, count("ForbidRTCStreams"))
      -- the disk fills between the intent and the outcome: sent, and the lost outcome said once
      local mine = HOME .. "/logs/full.jsonl"
      core.append_private = function(path, data, sync)
        if path ~= mine then return append(path, data, sync) end -- (the decision file appends too: issue 87)
        writes = writes + 1
        if writes == 2 then return nil, "cannot write " .. path .. ": No space left on device", 17 end
        return append(path, data, sync)
      end
      local ok, s2, _, e2 = pcall(run, zg("forbid-rtc-streams", "r1", "--audit-log", mine))
      core.append_private = append
      assert(ok, s2)
      assert.equal(0, s2)
      assert.equal(1, count("ForbidRTCStreams"))
      local intent = cjson.decode(lines_of(mine)[1])
      assert.same({ 1, "intent" }, { #lines_of(mine), intent.record })
      local said = "streamctl: warning: the run's outcome was not written to the audit log (the output above says "
        .. "it; its intent is there, run " .. intent.run .. "): cannot write " .. mine .. ": No space left on device "
        .. "(the line was cut short: 17 of its "
      assert.equal(said, e2:sub(1, #said))
      assert.truthy(e2:find("^%d+ bytes written; the next line starts on a line of its own%)\n$", #said + 1), e2)
      local n = 0
      for _ in e2:gmatch("was not written") do n = n + 1 end
      assert.equal(1, n, e2)
      status, _, err = run(zg("forbid-rtc-streams", "r1", "--audit-log", "x", "--no-audit-log"))
      assert.equal(2, status)
      assert.equal("streamctl: --audit-log and --no-audit-log: one or the other\n", err)
    end)
  end)
end)
