-- Issue 68, "Nothing reads the audit log back": `streamctl audit [LOG]`
-- lists a log's runs (when, who, what, outcome), `--run ID` one run's
-- streams, `--stream NAME` and `--since TIME` filter, `--output json`. The
-- log is written by the writer's own functions (streamctl.operator.audit's
-- record, intent and writer, as the command writes it), a line cut short
-- (a full disk) among them; the reader says it once and skips it. Issue
-- 89: anything but a file refused unopened; control characters escaped.
local checks = require "spec.helpers.checks"
local process = require "spec.helpers.process"
local audit = require "streamctl.operator.audit"
local cli = require "streamctl.cli"

local DIR = process.temp_dir()
local LOG = DIR .. "/audit.jsonl"

local function who(run, provider, command, action)
  return { run = run, user = "ops", host = "edge-1", provider = provider, credential = "1234567890",
           credential_source = "the command line", command = command, actions = { action } }
end

local function intent(time, fields, names, action)
  local streams = {}
  for i, n in ipairs(names) do streams[i] = { stream = n, action = action } end
  fields.time, fields.from = time, "the command line"
  return audit.record(audit.intent(fields, streams))
end

local function outcome(time, fields, outcome_, streams)
  fields.time, fields.record, fields.outcome, fields.exit = time, "outcome", outcome_, outcome_ == "ok" and 0 or 1
  fields.streams, fields.calls = streams, #streams
  return audit.record(fields)
end

-- The log: lines 1-2 run A (ok), 3 run B's intent alone (a crash), 4 a line cut short, 5-6 run C (one stream
-- failed), 7 a Lua batch's single line (no run id).
local function write_log()
  os.remove(LOG)
  local write = assert(audit.writer(LOG))
  local A, B, C = "3f9a6c0e5b1d2a48", "b000000000000002", "c000000000000003"
  local F = "ForbidLiveStream"
  assert(write(intent("2026-11-22T12:00:00Z", who(A, "aliyun", "forbid-live-streams", F),
    { "push.example.com/live/a" }, F)))
  assert(write(outcome("2026-11-22T12:00:01Z", who(A, "aliyun", "forbid-live-streams", F), "ok",
    { { stream = "push.example.com/live/a", action = F, outcome = "ok", request_id = "8D2A" } })))
  assert(write(intent("2026-11-23T02:00:00Z", who(B, "zego", "forbid-rtc-streams", "ForbidRTCStreams"),
    { "room-1", "room-2" }, "ForbidRTCStreams")))
  local f = assert(io.open(LOG, "ab"))
  f:write('{"time":"2026-11-23T03:00:00Z","record":"int')
  f:close()
  local R = "ResumeRTCStreams"
  assert(write(intent("2026-11-23T04:00:00Z", who(C, "zego", "resume-rtc-streams", R), { "room-1", "room-3" }, R)))
  assert(write(outcome("2026-11-23T04:00:02Z", who(C, "zego", "resume-rtc-streams", R), "failed", {
    { stream = "room-1", action = R, outcome = "ok", request_id = "1506" },
    { stream = "room-3", action = R, outcome = "failed", code = "StreamNotExist", request_id = "1507" } })))
  assert(write(audit.record { time = "2026-11-24T00:00:00Z", user = "edge", host = "nginx-1", provider = "zego",
    command = "forbid", actions = { "ForbidRTCStreams" }, outcome = "ok", exit = 0,
    streams = { { stream = "room-9", action = "ForbidRTCStreams", outcome = "ok" } } }))
  -- lines 8, 9: the guard's refusal (an outcome alone), and a run none of whose streams was sent (too few places)
  local unsent = { { stream = "push.example.com/live/b", action = F, outcome = "not_sent", code = "TooManyStreams" } }
  assert(write(outcome("2026-11-25T00:00:00Z", who("e000000000000005", "aliyun", "forbid-live-streams", F), "refused",
    unsent)))
  unsent[1].code = "NoPlacesLeft"
  assert(write(outcome("2026-11-25T01:00:00Z", who("f000000000000006", "aliyun", "forbid-live-streams", F), "failed",
    unsent)))
  -- another log, of control characters (a window title, a carriage return, C1's CSI), and a FIFO
  local esc = DIR .. "/escapes.jsonl"
  os.remove(esc)
  local write_esc = assert(audit.writer(esc))
  assert(write_esc(audit.record { time = "2026-11-26T00:00:00Z", user = "ops\27]0;owned\7", host = "edge\r",
    provider = "zego", command = "forbid\194\1552J", actions = { "ForbidRTCStreams" }, outcome = "ok", exit = 0,
    streams = { { stream = "room\27[2J-9", action = "ForbidRTCStreams", outcome = "ok" } } }))
  os.remove(DIR .. "/fifo")
  assert(os.execute("mkfifo " .. process.quote(DIR .. "/fifo")))
end

local CUT = "streamctl: " .. LOG .. ":4: not an audit record (a line cut short?): skipped\n"
local LA = "2026-11-22T12:00:00Z  3f9a6c0e5b1d2a48  ops@edge-1  aliyun ForbidLiveStream 1 stream via forbid-live-streams  succeeded\n"
local LB = "2026-11-23T02:00:00Z  b000000000000002  ops@edge-1  zego ForbidRTCStreams 2 streams via forbid-rtc-streams  "
  .. "no outcome recorded\n"
local LC = "2026-11-23T04:00:00Z  c000000000000003  ops@edge-1  zego ResumeRTCStreams 2 streams via resume-rtc-streams  failed\n"
local LD = "2026-11-24T00:00:00Z  -  edge@nginx-1  zego ForbidRTCStreams 1 stream via forbid  succeeded\n"
local LE = "2026-11-25T00:00:00Z  e000000000000005  ops@edge-1  aliyun ForbidLiveStream 1 stream via "
  .. "forbid-live-streams  refused\n"
local LF = "2026-11-25T01:00:00Z  f000000000000006  ops@edge-1  aliyun ForbidLiveStream 1 stream via "
  .. "forbid-live-streams  not sent\n"
local ALL = LA .. LB .. LC .. LD .. LE .. LF

-- { name, argv after `audit`, environment, exit status, standard output, standard error[, clock] }
local ROWS = {
  { "list", { LOG }, {}, 0, ALL, CUT },
  { "default log ($STREAMCTL_AUDIT_LOG)", {}, { STREAMCTL_AUDIT_LOG = LOG }, 0, ALL, CUT },
  { "--run: each stream's outcome", { LOG, "--run", "c000000000000003" }, {}, 0,
    LC .. "  room-1  ResumeRTCStreams  succeeded\n  room-3  ResumeRTCStreams  failed  StreamNotExist\n", CUT },
  { "--run of an intent alone", { LOG, "--run", "b000000000000002" }, {}, 0,
    LB .. "  room-1  ForbidRTCStreams  no outcome recorded\n  room-2  ForbidRTCStreams  no outcome recorded\n", CUT },
  { "--stream", { LOG, "--stream", "room-1" }, {}, 0, LB .. LC, CUT },
  -- (issue 87: a name alone finds an Alibaba Cloud stream in any domain and app; none found is said)
  { "--stream, an Alibaba Cloud name alone", { LOG, "--stream", "a" }, {}, 0, LA, CUT },
  { "--stream, domain/app/stream", { LOG, "--stream", "push.example.com/live/b" }, {}, 0, LE .. LF, CUT },
  { "--stream that no run touched", { LOG, "--stream", "room-404" }, {}, 1, "",
    CUT .. "streamctl: no run in " .. LOG .. " touched stream room-404\n" },
  { "--stream, neither a name alone nor domain/app/stream", { LOG, "--stream", "live/a" }, {}, 2, "",
    "streamctl: --stream takes a stream's name alone (any domain and app) or domain/app/stream (got 'live/a')\n" },
  { "--run with --stream: that stream's row alone", { LOG, "--run", "c000000000000003", "--stream", "room-3" }, {}, 0,
    LC .. "  room-3  ResumeRTCStreams  failed  StreamNotExist\n", CUT },
  { "--since, a UTC time", { LOG, "--since", "2026-11-23T03:00:00Z" }, {}, 0, LC .. LD .. LE .. LF, CUT },
  { "--since, how long ago (the clock: 2026-11-24T04:00:00Z)", { LOG, "--since", "24h" }, {}, 0,
    LC .. LD .. LE .. LF, CUT, 1795492800 },
  { "--since, Unix seconds", { LOG, "--since", "1795402800" }, {}, 0, LC .. LD .. LE .. LF, CUT },
  { "--output json", { LOG, "--since", "2026-11-23T04:00:00Z", "-o", "json" }, {}, 0,
    '{"run":"c000000000000003","time":"2026-11-23T04:00:00Z","user":"ops","host":"edge-1","provider":"zego",'
      .. '"command":"resume-rtc-streams","actions":["ResumeRTCStreams"],"count":2,"outcome":"failed"}\n'
      .. '{"run":"-","time":"2026-11-24T00:00:00Z","user":"edge","host":"nginx-1","provider":"zego",'
      .. '"command":"forbid","actions":["ForbidRTCStreams"],"count":1,"outcome":"succeeded"}\n'
      .. '{"run":"e000000000000005","time":"2026-11-25T00:00:00Z","user":"ops","host":"edge-1","provider":"aliyun",'
      .. '"command":"forbid-live-streams","actions":["ForbidLiveStream"],"count":1,"outcome":"refused"}\n'
      .. '{"run":"f000000000000006","time":"2026-11-25T01:00:00Z","user":"ops","host":"edge-1","provider":"aliyun",'
      .. '"command":"forbid-live-streams","actions":["ForbidLiveStream"],"count":1,"outcome":"not sent"}\n', CUT },
  { "--run --output json", { LOG, "--run", "3f9a6c0e5b1d2a48", "--output", "json" }, {}, 0,
    '{"run":"3f9a6c0e5b1d2a48","stream":"push.example.com/live/a","action":"ForbidLiveStream",'
      .. '"outcome":"succeeded","request_id":"8D2A"}\n', CUT },
  { "an unknown run", { LOG, "--run", "0000000000000000" }, {}, 2, "",
    CUT .. "streamctl: no run 0000000000000000 in " .. LOG .. "\n" },
  { "a bad --since", { LOG, "--since", "yesterday" }, {}, 2, "",
    "streamctl: --since must be a time (YYYY-MM-DDThh:mm:ssZ or Unix seconds) or how long ago (N followed by d, h, m "
      .. "or s, largest unit first: 24h, 90m, 1d12h) (got 'yesterday')\n" },
  { "--since, a time to come", { LOG, "--since", "+2h" }, {}, 2, "",
    "streamctl: --since must be a time (YYYY-MM-DDThh:mm:ssZ or Unix seconds) or how long ago (N followed by d, h, m "
      .. "or s, largest unit first: 24h, 90m, 1d12h) (got '+2h')\n" },
  { "a missing log", { DIR .. "/none.jsonl" }, {}, 2, "", "streamctl: cannot read the audit log " .. DIR
    .. "/none.jsonl (" .. DIR .. "/none.jsonl: No such file or directory)\n" },
  -- (issue 89: anything but a file refused before it is opened: a FIFO was waited on, /dev/zero read without end)
  { "a directory", { DIR }, {}, 2, "", "streamctl: cannot read the audit log " .. DIR .. " (it is a directory, "
    .. "not a file: an audit log is a file (standard input: -))\n" },
  { "a FIFO, never waited on", { DIR .. "/fifo" }, {}, 2, "", "streamctl: cannot read the audit log " .. DIR
    .. "/fifo (it is a FIFO, not a file: an audit log is a file (standard input: -))\n" },
  { "/dev/zero, never read", { "/dev/zero" }, {}, 2, "", "streamctl: cannot read the audit log /dev/zero (it is a "
    .. "character device, not a file: an audit log is a file (standard input: -))\n" },
  -- (issue 89: a log's control characters shown escaped, never sent to the terminal as they are)
  { "control characters escaped in the table", { DIR .. "/escapes.jsonl" }, {}, 0,
    "2026-11-26T00:00:00Z  -  ops\\x1b]0;owned\\x07@edge\\x0d  zego ForbidRTCStreams 1 stream via forbid\\u009b2J  "
      .. "succeeded\n", "" },
  { "control characters escaped in --run's rows", { DIR .. "/escapes.jsonl", "--run", "line 1" }, {}, 0,
    "2026-11-26T00:00:00Z  -  ops\\x1b]0;owned\\x07@edge\\x0d  zego ForbidRTCStreams 1 stream via forbid\\u009b2J  "
      .. "succeeded\n  room\\x1b[2J-9  ForbidRTCStreams  succeeded\n", "" },
  { "control characters in JSON, as JSON escapes them", { DIR .. "/escapes.jsonl", "-o", "json" }, {}, 0,
    '{"run":"-","time":"2026-11-26T00:00:00Z","user":"ops\\u001b]0;owned\\u0007","host":"edge\\r",'
      .. '"provider":"zego","command":"forbid\194\1552J","actions":["ForbidRTCStreams"],"count":1,'
      .. '"outcome":"succeeded"}\n', "" },
}

describe("issue 68, streamctl audit: the audit log read back", function()
  setup(write_log)
  for _, row in ipairs(ROWS) do
    it(row[1], function()
      local argv = { "audit" }
      for _, a in ipairs(row[2]) do argv[#argv + 1] = a end
      local before = process.read_file(LOG)
      local out, err = checks.buffer(), checks.buffer()
      local getenv = function(name) if name == "HOME" then return DIR end return row[3][name] end
      local clock = row[7] and function() return row[7] end
      local ok, status = pcall(cli.main, argv, { stdout = out, stderr = err, getenv = getenv, clock = clock,
        signal = checks.NO_SIGNALS })
      assert(ok, status)
      out, err = out:text(), err:text()
      assert.same({ row[4], row[5], row[6] }, { status, out, err })
      assert.equal(before, process.read_file(LOG)) -- read-only
    end)
  end

  it("- reads standard input: two logs joined by cat", function()
    local text = process.read_file(LOG)
    local status, out, err = checks.run_cli({ "audit", "-", "--since", "2026-11-25T00:00:00Z" },
      { stdin = text .. text:gsub("e000000000000005", "e000000000000099"), home = DIR })
    assert.equal(0, status)
    assert.equal(LE .. LF .. LE:gsub("e000000000000005", "e000000000000099"), out)
    assert.equal(2, select(2, err:gsub("streamctl: standard input:%d+: not an audit record", "")), err)
  end)
end)

describe("issue 68: a run that changes something, with no HOME for the default audit log", function()
  it("says once that no audit log is kept, and goes on", function()
    local _, _, err = checks.run_cli({ "zego", "forbid-rtc-streams", "--endpoint", "http://127.0.0.1:9",
      "--app-id", "1234567890", "--server-secret", "0123456789abcdef0123456789abcdef", "room-1" },
      { getenv = function() return nil end })
    local warning = "streamctl: warning: no audit log is kept for this run: HOME is not set (--audit-log FILE or "
      .. "STREAMCTL_AUDIT_LOG to keep one, --no-audit-log to say none is wanted)\n"
    assert.truthy(err:find(warning, 1, true), err)
    assert.equal(1, select(2, err:gsub("no audit log is kept", "")))
  end)
end)
