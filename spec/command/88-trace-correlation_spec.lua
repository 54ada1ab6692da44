-- Issue 71, the command's part, in this process (spec/command/88-trace-export
-- runs it in child processes against a collector): the run's trace is
-- TRACEPARENT's (and TRACESTATE's), the environment carrier of a program
-- started by another, else a new one drawn before the first request; every
-- request carries it (the emulator logs the traceparent it received), and
-- the audit records, each JSON line, --debug and `streamctl audit` name it.
-- A TRACEPARENT that breaks its rule is ignored (a new trace), never an
-- error. --metrics-file writes the run's metrics whole at its end, failed
-- runs too: its exact bytes on a fixed clock, promtool's verdict, the last
-- success kept across a failed run, a write that fails said once. A bad
-- OTEL_* variable refuses the run before anything is sent.
local cjson = require "cjson"
local lfs = require "lfs"
local emu = require "spec.helpers.emulator"
local process = require "spec.helpers.process"
local checks = require "spec.helpers.checks"

local q, read_file, write_file = process.quote, process.read_file, process.write_file

local HOME = process.temp_dir()
local LOG = HOME .. "/audit.jsonl"
local METRICS = HOME .. "/streamctl.prom"
local TRACE, CALLER = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
local PARENT = "00-" .. TRACE .. "-" .. CALLER .. "-01"
local STATE = "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"

local server
local function zg(...)
  local argv = { "zego", ... }
  for _, a in ipairs { "--endpoint", server.zego_url, "--app-id", "1234567890", "--server-secret",
                       "0123456789abcdef0123456789abcdef" } do argv[#argv + 1] = a end
  return argv
end
local function al(...)
  local argv = { "aliyun", ... }
  for _, a in ipairs { "--endpoint", server.aliyun_url, "--access-key-id", "LTAIemulatorKey", "--access-key-secret",
                       "emulator-secret" } do argv[#argv + 1] = a end
  return argv
end

-- The command in this process: status, stdout, stderr. `o`: env (variables), clock, monotonic.
local function run(argv, o)
  o = o or {}
  return checks.run_cli(argv, { home = HOME, env = o.env, clock = o.clock, monotonic = o.monotonic })
end

local function json_lines(text)
  local out = {}
  for line in text:gmatch("[^\n]+") do out[#out + 1] = cjson.decode(line) end
  return out
end

local function audit_lines()
  local out = {}
  for line in (read_file(LOG) or ""):gmatch("[^\n]+") do out[#out + 1] = line end
  return out
end

-- The traceparents the emulator received, in order: { trace, span, flags, tracestate } each.
local function received(provider)
  local out = {}
  for _, e in ipairs(server:log { provider = provider }) do
    local trace, span, flags = (e.traceparent or ""):match("^00%-(%x+)%-(%x+)%-(%x%x)$")
    out[#out + 1] = { trace = trace, span = span, flags = flags, tracestate = e.tracestate, header = e.traceparent }
  end
  return out
end

local IDS = {}
for i = 1, 25 do IDS[i] = "room-" .. i end -- (two calls: 20 IDs a call)

describe("issue 71: the command's trace and metrics", function()
  lazy_setup(function() server = emu.start {} end)
  lazy_teardown(function()
    if server then server:stop() end
    os.execute("rm -rf " .. q(HOME))
  end)
  before_each(function()
    server:reset()
    os.remove(LOG)
    os.remove(METRICS)
  end)

  it("TRACEPARENT's trace in every request, audit record, JSON line, --debug and `streamctl audit`", function()
    local t = os.time() + 0.25
    local stamp = os.date("!%Y-%m-%dT%H:%M:%S", math.floor(t)) .. ".250Z"
    local argv = zg("forbid-rtc-streams", "--output", "json", "--debug", "--audit-log", LOG)
    for _, id in ipairs(IDS) do argv[#argv + 1] = id end
    local status, out, err = run(argv, { env = { TRACEPARENT = PARENT, TRACESTATE = STATE },
                                         clock = function() return t end })
    assert.equal(0, status, err)
    -- every request in the caller's trace, a span of its own under it, the tracestate passed on
    local got = received("zego")
    assert.equal(2, #got)
    for _, r in ipairs(got) do
      assert.same({ TRACE, "01", STATE }, { r.trace, r.flags, r.tracestate })
      assert.truthy(#r.span == 16 and r.span ~= CALLER, r.span)
    end
    assert.not_equal(got[1].span, got[2].span)
    -- each JSON line names the trace, last
    local lines = json_lines(out)
    assert.equal(25, #lines)
    for _, l in ipairs(lines) do assert.equal(TRACE, l.trace_id) end
    assert.truthy(out:find('"ends_by":"until_resumed","trace_id":"' .. TRACE .. '"}\n', 1, true), out)
    -- both audit records, right after the run's id
    local records = audit_lines()
    assert.equal(2, #records)
    for _, line in ipairs(records) do
      assert.truthy(line:find('^{"time":"[^"]+","record":"%a+","run":"%x+","trace_id":"' .. TRACE .. '","user":'), line)
    end
    -- --debug: the trace once, first; each request's own traceparent among its headers, as the emulator got it
    local debug = checks.lines(err)
    assert.equal(stamp .. " streamctl: debug: trace " .. TRACE .. " (TRACEPARENT's, parent span " .. CALLER .. ")",
      debug[1])
    local headers = {}
    for _, l in ipairs(debug) do
      local h = l:match("^" .. stamp:gsub("%p", "%%%0") .. " > traceparent: (.*)$")
      if h then headers[#headers + 1] = h end
    end
    table.sort(headers)
    local sent = { got[1].header, got[2].header }
    table.sort(sent)
    assert.same(sent, headers)
    -- `streamctl audit` shows it: the run's JSON, and its details
    local run_id = cjson.decode(records[1]).run
    local s, listed = run { "audit", LOG, "--output", "json" }
    assert.equal(0, s)
    assert.truthy(listed:find('^{"run":"' .. run_id .. '","trace_id":"' .. TRACE .. '","time":'), listed)
    local _, details = run { "audit", LOG, "--run", run_id }
    assert.equal("  trace " .. TRACE, checks.lines(details)[2])
    local _, rows = run { "audit", LOG, "--run", run_id, "--output", "json" }
    for _, row in ipairs(json_lines(rows)) do assert.equal(TRACE, row.trace_id) end
  end)

  it("reconcile's JSON lines and its reads name the trace; a library batch's audit records name theirs", function()
    local desired = HOME .. "/desired.txt"
    write_file(desired, "push.example.com/live/a\npush.example.com/live/b\n")
    local status, out, err = run(al("reconcile", "--from", desired, "--dry-run", "--output", "json"),
      { env = { TRACEPARENT = PARENT } })
    assert.equal(1, status, err) -- (a dry run's difference)
    local lines = json_lines(out)
    assert.equal(3, #lines) -- (the two forbids it would send, then the summary)
    for _, l in ipairs(lines) do assert.equal(TRACE, l.trace_id) end
    assert.truthy(lines[3].summary)
    local got = received("aliyun")
    assert.is_true(#got >= 1)
    for _, r in ipairs(got) do assert.equal(TRACE, r.trace) end
    -- streamctl.operator.audit's log: a batch's records carry the trace its calls went in (`info.trace_id`)
    local audit = require "streamctl.operator.audit"
    local log = assert(audit.log { path = LOG, getenv = function() return nil end })
    local info = { client = { app_id = 1234567890 }, provider = "zego", method = "zego.forbid_rtc_streams",
                   action = "ForbidRTCStreams", streams = { "a" }, trace_id = TRACE }
    local r = assert(log:intent(info))
    assert(r:result({ ok = true, request_id = "1" }, "a"))
    assert(r:outcome { calls = 1 })
    assert(log:refused(info, { kind = "validation", code = "TooManyStreams", message = "no" }))
    local records = audit_lines()
    assert.equal(3, #records)
    for _, line in ipairs(records) do
      assert.truthy(line:find('^{"time":"[^"]+","record":"%a+","run":"%x+","trace_id":"' .. TRACE .. '","user":'), line)
    end
  end)

  it("a TRACEPARENT that breaks its rule is ignored (a new trace, its TRACESTATE dropped), never an error",
    function()
    local traces = {}
    for _, bad in ipairs {
      "00-0AF7651916CD43DD8448EB211C80319C-B7AD6B7169203331-01", -- (upper case)
      "00-" .. TRACE .. "-" .. CALLER .. "-01-extra",               -- (version 00 with more)
      "00-00000000000000000000000000000000-" .. CALLER .. "-01",   -- (a trace id of zeros)
      "garbage",
      false,                                                         -- (not set)
    } do
      server:reset()
      os.remove(LOG)
      local status, out, err = run(zg("resume-rtc-stream", "--stream-id", "s1", "--output", "json", "--debug",
        "--audit-log", LOG), { env = { TRACEPARENT = bad or nil, TRACESTATE = STATE } })
      assert.equal(0, status, err)
      local got = received("zego")
      assert.equal(1, #got)
      local new = got[1].trace
      assert.truthy(new and #new == 32 and new ~= TRACE and not new:find("^0+$"), got[1].header)
      assert.is_nil(got[1].tracestate)
      assert.equal(new, json_lines(out)[1].trace_id)
      for _, line in ipairs(audit_lines()) do assert.equal(new, cjson.decode(line).trace_id) end
      assert.truthy(checks.lines(err)[1]:find(" streamctl: debug: trace " .. new .. (bad and
        " (a new trace: TRACEPARENT breaks its rule, ignored)" or " (a new trace: TRACEPARENT is not set)"), 1, true),
        err)
      assert.is_nil(traces[new]) -- (each run a trace of its own)
      traces[new] = true
    end
  end)

  it("--metrics-file: the run's metrics, exact, promtool-clean, mode 0644; kept whole across a failed run",
    function()
    local t = 1795799770.25 -- (the emulator's clock set to it below: a ZEGO request's Timestamp is checked)
    server:clock { now = math.floor(t) }
    finally(function() server:clock {} end)
    local fixed = { clock = function() return t end, monotonic = function() return 100 end }
    local status, _, err = run(zg("forbid-rtc-streams", "a", "b", "--no-audit-log", "--metrics-file", METRICS), fixed)
    assert.equal(0, status, err)
    assert.equal("", err)
    local L = '{provider="zego",action="ForbidRTCStreams"'
    local function histogram(name, bounds)
      local out = {}
      for _, b in ipairs(bounds) do out[#out + 1] = name .. "_bucket" .. L .. ',le="' .. b .. '"} 1' end
      out[#out + 1] = name .. "_bucket" .. L .. ',le="+Inf"} 1'
      out[#out + 1] = name .. "_sum" .. L .. "} 0.000000"
      out[#out + 1] = name .. "_count" .. L .. "} 1"
      return table.concat(out, "\n")
    end
    local R = '{provider="zego",command="forbid-rtc-streams"}'
    -- the run's own families: its exit status, its end, its duration (0 on the fixed clock), the last success
    local function run_families(exit, ended, success)
      return table.concat({
        "# HELP streamctl_run_exit_code The exit status of the last run (0 all succeeded, 1 an operation failed or is "
          .. "unknown, 2 refused or a usage error: nothing sent, 130 or 143 interrupted).",
        "# TYPE streamctl_run_exit_code gauge",
        "streamctl_run_exit_code" .. R .. " " .. exit,
        "# HELP streamctl_run_end_timestamp_seconds When the last run ended, in Unix seconds.",
        "# TYPE streamctl_run_end_timestamp_seconds gauge",
        "streamctl_run_end_timestamp_seconds" .. R .. " " .. ended,
        "# HELP streamctl_run_duration_seconds How long the last run took, its spans' export included.",
        "# TYPE streamctl_run_duration_seconds gauge",
        "streamctl_run_duration_seconds" .. R .. " 0",
        "# HELP streamctl_run_last_success_timestamp_seconds When a run last exited 0, in Unix seconds (kept from the "
          .. "file's earlier version while runs fail; absent until one succeeds).",
        "# TYPE streamctl_run_last_success_timestamp_seconds gauge",
        "streamctl_run_last_success_timestamp_seconds" .. R .. " " .. success,
      }, "\n")
    end
    local expected = table.concat({
      "# HELP streamctl_requests_total Requests sent to the provider: every attempt, retries and look-ups included.",
      "# TYPE streamctl_requests_total counter",
      "streamctl_requests_total" .. L .. "} 1",
      "# HELP streamctl_retries_total Attempts after the first of a call.",
      "# TYPE streamctl_retries_total counter",
      "streamctl_retries_total" .. L .. "} 0",
      "# HELP streamctl_throttled_total Attempts the provider throttled.",
      "# TYPE streamctl_throttled_total counter",
      "streamctl_throttled_total" .. L .. "} 0",
      "# HELP streamctl_failures_total Attempts that failed (throttled ones included).",
      "# TYPE streamctl_failures_total counter",
      "streamctl_failures_total" .. L .. "} 0",
      "# HELP streamctl_outcome_unknown_total Attempts that ended with their outcome unknown (sent, then no answer to "
        .. "trust): looked up or sent again; a report counts a stream it could not settle as unknown.",
      "# TYPE streamctl_outcome_unknown_total counter",
      "streamctl_outcome_unknown_total" .. L .. "} 0",
      "# HELP streamctl_request_duration_seconds Time from sending an attempt to its answer or failure.",
      "# TYPE streamctl_request_duration_seconds histogram",
      histogram("streamctl_request_duration_seconds", { "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1",
        "2.5", "5", "10" }),
      "# HELP streamctl_throttled_by_code_total Attempts the provider throttled, by their code.",
      "# TYPE streamctl_throttled_by_code_total counter",
      "# HELP streamctl_retries_by_code_total Attempts sent after a failure (a retry or a look-up), by the code of the "
        .. "failure they came after.",
      "# TYPE streamctl_retries_by_code_total counter",
      "# HELP streamctl_room_requests_per_second The action's learned room: its cap times the fraction of it the "
        .. "provider's throttles left, as the last attempt saw it.",
      "# TYPE streamctl_room_requests_per_second gauge",
      "streamctl_room_requests_per_second" .. L .. "} 20",
      "# HELP streamctl_cap_requests_per_second The action's cap, as the last attempt saw it.",
      "# TYPE streamctl_cap_requests_per_second gauge",
      "streamctl_cap_requests_per_second" .. L .. "} 20",
      "# HELP streamctl_slot_wait_seconds Time an attempt waited for its rate-limit slot and window, from when it was "
        .. "due to when it was sent.",
      "# TYPE streamctl_slot_wait_seconds histogram",
      histogram("streamctl_slot_wait_seconds", { "0.001", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1",
        "2.5", "5", "10", "30", "60" }),
      "# HELP streamctl_admission_duration_seconds Time an admission decision took (action \"admission\").",
      "# TYPE streamctl_admission_duration_seconds histogram",
      "# HELP streamctl_callbacks_total Provider callbacks received, by event and result (accepted, or the code that "
        .. "refused it).",
      "# TYPE streamctl_callbacks_total counter",
      "# HELP streamctl_reactions_total What the edge did about a callback, and whether it worked.",
      "# TYPE streamctl_reactions_total counter",
      "# HELP streamctl_drift_total Differences the reconciler found between the desired state and the provider's, and "
        .. "what became of them.",
      "# TYPE streamctl_drift_total counter",
      "# HELP streamctl_admissions_total Admission decisions at the door (streamctl.edge.admission), by verdict and its "
        .. "code.",
      "# TYPE streamctl_admissions_total counter",
      "# HELP streamctl_tokens_total ZEGO tokens the edge issued, or refused to (the code that refused it).",
      "# TYPE streamctl_tokens_total counter",
      "# HELP streamctl_stale_admissions_total Admission decisions made while the forbid list could not be read: "
        .. "answered from the list last read whole (answered), or past its grace (expired).",
      "# TYPE streamctl_stale_admissions_total counter",
      "# HELP streamctl_list_reads_total Reads of the whole forbid list the door keeps for a failover (each worker's, "
        .. "every second, with Redis): read whole, or failed.",
      "# TYPE streamctl_list_reads_total counter",
      "# HELP streamctl_spans_total Spans the tracing exporter exported, or dropped (queue_full: its queue was full; "
        .. "export_failed: the collector refused, was down or too slow).",
      "# TYPE streamctl_spans_total counter",
      "# HELP streamctl_blocklist_places_left Places left on the account's block list, as the last run left them "
        .. "(its places check's count, less what the run may have taken).",
      "# TYPE streamctl_blocklist_places_left gauge",
      run_families(0, "1795799770.25", "1795799770.25"),
    }, "\n") .. "\n"
    assert.equal(expected, read_file(METRICS))
    assert.equal("rw-r--r--", lfs.attributes(METRICS, "permissions")) -- (node_exporter reads it as its own user)
    local verdict = process.capture("promtool check metrics < " .. q(METRICS) .. " 2>&1; echo \"rc=$?\"")
    assert.equal("rc=0\n", verdict)

    -- a run that fails, later: its exit status and end, the last success kept from the file it replaces
    server:faults { kind = "code", action = "ForbidRTCStreams", code = 30006, count = 1, provider = "zego" }
    t = t + 3600
    status, _, err = run(zg("forbid-rtc-streams", "a", "b", "--no-audit-log", "--metrics-file", METRICS), fixed)
    assert.equal(1, status, err)
    local text = read_file(METRICS)
    assert.equal(run_families(1, "1795803370.25", "1795799770.25") .. "\n",
      text:sub(text:find("# HELP streamctl_run_exit_code ", 1, true), -1))
    assert.truthy(text:find("streamctl_failures_total" .. L .. "} 1\n", 1, true), text)
    assert.equal("rc=0\n", process.capture("promtool check metrics < " .. q(METRICS) .. " 2>&1; echo \"rc=$?\""))
  end)

  it("--metrics-file: a usage error and a refusal are written too; the block list's places left", function()
    -- a refusal by the guard (exit 2, nothing sent)
    local status, _, err = run(zg("forbid-rtc-streams", "--max-forbid", "1", "a", "b", "--no-audit-log",
      "--metrics-file", METRICS))
    assert.equal(2, status, err)
    assert.truthy(read_file(METRICS):find('\nstreamctl_run_exit_code{provider="zego",command="forbid-rtc-streams"} 2\n',
      1, true))
    assert.is_nil(read_file(METRICS):find("streamctl_run_last_success_timestamp_seconds{", 1, true))
    -- Alibaba Cloud's places check, before its forbids (none in use): the places left as the run left them, its two
    -- forbids' taken (issue 89: it said 10000, the check's count before the run)
    status, _, err = run(al("forbid-live-streams", "--domain-name", "push.example.com", "--app-name", "live", "a", "b",
      "--no-audit-log", "--metrics-file", METRICS))
    assert.equal(0, status, err)
    local text = read_file(METRICS)
    assert.truthy(text:find('\nstreamctl_blocklist_places_left{provider="aliyun"} 9998\n', 1, true), text)
    assert.truthy(text:find('\nstreamctl_requests_total{provider="aliyun",action="ForbidLiveStream"} 2\n', 1, true), text)
    assert.equal("rc=0\n", process.capture("promtool check metrics < " .. q(METRICS) .. " 2>&1; echo \"rc=$?\""))
    -- a usage error (a field that breaks its rule): exit 2 in the file too
    status = run(zg("resume-rtc-stream", "--no-audit-log", "--metrics-file", METRICS))
    assert.equal(2, status)
    assert.truthy(read_file(METRICS):find('\nstreamctl_run_exit_code{provider="zego",command="resume-rtc-stream"} 2\n',
      1, true))
    assert.equal(0, #server:log { provider = "zego" })
  end)

  it("a metrics file that cannot be written is said once; the exit status stands", function()
    local path = HOME .. "/no/such/dir/streamctl.prom"
    local status, out, err = run(zg("resume-rtc-stream", "--stream-id", "s1", "--no-audit-log", "--metrics-file", path))
    assert.equal(0, status, err)
    assert.truthy(out:find("ok", 1, true), out)
    local said = checks.lines(err)
    assert.equal(1, #said, err)
    assert.truthy(said[1]:find("^streamctl: warning: the metrics file was not written %(.*"
      .. path:gsub("%p", "%%%0") .. ".*%); the run's exit status stands$"), said[1])
    -- and a failed run's status stands too
    server:faults { kind = "code", action = "ResumeRTCStream", code = 30006, count = 1, provider = "zego" }
    status, out, err = run(zg("resume-rtc-stream", "--stream-id", "s1", "--no-audit-log", "--metrics-file", path))
    assert.equal(1, status, err)
    assert.truthy(out:find("FAILED", 1, true), out)
  end)

  it("streamctl.core's replace_file: the mode given, whatever the umask; 0600 by default; a bad one raises", function()
    local core = require "streamctl.core"
    local path = HOME .. "/replaced"
    assert.is_true(core.replace_file(path, "a\n", 420))
    assert.same({ "rw-r--r--", "a\n" }, { lfs.attributes(path, "permissions"), read_file(path) })
    assert.is_true(core.replace_file(path, "b\n"))
    assert.same({ "rw-------", "b\n" }, { lfs.attributes(path, "permissions"), read_file(path) })
    local ok, err = pcall(core.replace_file, path, "c\n", 512)
    assert.is_false(ok)
    assert.truthy(tostring(err):find("permission bits, 0 to 0777", 1, true), err)
    assert.equal("b\n", read_file(path))
    os.remove(path)
  end)

  it("a bad OTEL_* variable, --trace-timeout or metrics_file refuses the run before anything is sent", function()
    for _, case in ipairs {
      { { OTEL_EXPORTER_OTLP_ENDPOINT = "ftp://127.0.0.1:4318" }, {}, "OTEL_EXPORTER_OTLP_ENDPOINT" },
      { { OTEL_EXPORTER_OTLP_ENDPOINT = "http://127.0.0.1:4318", OTEL_EXPORTER_OTLP_PROTOCOL = "grpc" }, {},
        "OTEL_EXPORTER_OTLP_PROTOCOL" },
      { { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT = "http://127.0.0.1:4318/v1/traces", OTEL_BSP_MAX_QUEUE_SIZE = "0" }, {},
        "OTEL_BSP_MAX_QUEUE_SIZE" },
      { {}, { "--trace-timeout", "1e3" }, "streamctl: --trace-timeout must be an integer from 0 to 600000 in decimal "
        .. "digits (milliseconds; got '1e3')\n" },
      { {}, { "--trace-timeout", "600001" }, "--trace-timeout must be an integer from 0 to 600000" },
      { {}, { "--metrics-file", "" }, "streamctl: --metrics-file must not be empty\n" },
    } do
      os.remove(LOG)
      local argv = zg("forbid-rtc-streams", "a", "--audit-log", LOG)
      for _, a in ipairs(case[2]) do argv[#argv + 1] = a end
      local status, out, err = run(argv, { env = case[1] })
      assert.equal(2, status, err)
      assert.equal("", out)
      if case[3]:find("^streamctl: ") then
        assert.equal(case[3], err)
      else
        assert.equal("streamctl: " .. case[3], err:sub(1, #case[3] + 11))
        -- (a variable: named by streamctl.trace, with its rule; the run says it sent nothing)
        assert.truthy(next(case[1]) == nil or err:find("[^:]: nothing was sent\n"), err)
      end
      assert.is_nil(read_file(LOG)) -- (refused before the audit log was opened)
    end
    -- OTEL_SDK_DISABLED=true: no exporter, whatever the rest say
    local status, _, err = run(zg("resume-rtc-stream", "--stream-id", "s1", "--no-audit-log"),
      { env = { OTEL_SDK_DISABLED = "true", OTEL_EXPORTER_OTLP_ENDPOINT = "ftp://x" } })
    assert.equal(0, status, err)
    -- the [defaults] keys, by the same rules, named by their line
    local dir = HOME .. "/.config/streamctl"
    assert(process.run("mkdir -p " .. q(dir)))
    finally(function() os.remove(dir .. "/config") end)
    for _, case in ipairs {
      { "trace_timeout_ms = soon", ":2: trace_timeout_ms must be an integer from 0 to 600000 in decimal digits "
        .. "(milliseconds; got 'soon')" },
      { "metrics_file = ", ":2: metrics_file must not be empty" },
    } do
      write_file(dir .. "/config", "[defaults]\n" .. case[1] .. "\n")
      assert(process.run("chmod 600 " .. q(dir .. "/config")))
      status, _, err = run(zg("resume-rtc-stream", "--stream-id", "s1", "--no-audit-log"))
      assert.equal(2, status, err)
      assert.equal("streamctl: " .. dir .. "/config" .. case[2] .. "\n", err)
    end
    -- and taken: the metrics file [defaults] names
    write_file(dir .. "/config", "[defaults]\nmetrics_file = " .. METRICS .. "\ntrace_timeout_ms = 0\n")
    status, _, err = run(zg("resume-rtc-stream", "--stream-id", "s1", "--no-audit-log"))
    assert.equal(0, status, err)
    assert.truthy(read_file(METRICS):find('\nstreamctl_run_exit_code{provider="zego",command="resume-rtc-stream"} 0\n',
      1, true))
    assert.equal(0, #server:log { provider = "zego", action = "ForbidRTCStreams" })
  end)
end)
