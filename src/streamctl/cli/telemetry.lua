--- What a run of the command tells beyond its output (issue 71): the trace
-- it belongs to, its spans sent to an OpenTelemetry collector, and its
-- metrics written for node_exporter's textfile collector.
--
-- The trace: TRACEPARENT and TRACESTATE (the environment carrier a program
-- started by another reads) when TRACEPARENT is valid, else a new trace whose
-- id is drawn here, so that it is known before the first request: every
-- client of the run gets it as its `trace` option (each request then
-- carries a `traceparent`), and the audit records, the JSON lines and
-- --debug name it. A TRACEPARENT that breaks its rule is ignored, as the W3C
-- specification says (a new trace), never an error; --debug says so.
--
-- The spans: streamctl.trace's exporter from the OTEL_* variables (none
-- set: no exporter), given to every client as its `tracer`; a batch sent
-- as soon as one is queued (`sender`), until a send fails;
-- shut down at the run's end within --trace-timeout (default 2000 ms),
-- whatever the run's outcome. A collector down, slow or refusing never
-- changes the exit status; spans dropped are said in one line. A variable
-- that breaks its rule refuses the run before anything is sent (exit 2).
--
-- The metrics (--metrics-file FILE, [defaults] metrics_file): a
-- streamctl.operator.metrics fed by the clients' on_attempt, the block
-- list's places left when the places check ran, the exporter's spans, and
-- the run's own gauges (RUN_FAMILIES), written whole at the end (failed
-- runs too) by streamctl.core's replace_file (a temporary file beside it,
-- fsync, rename), mode 0644: node_exporter reads it as its own user.
-- @module streamctl.cli.telemetry

local core = require "streamctl.core"
local tracecontext = require "streamctl.base.tracecontext"
local cli_output = require "streamctl.cli.output"
local cli_client = require "streamctl.cli.client"

local type, ipairs, pcall, tostring, tonumber, setmetatable = type, ipairs, pcall, tostring, tonumber, setmetatable
local format, gsub, match, concat, max = string.format, string.gsub, string.match, table.concat, math.max
local EXIT, flag = cli_output.EXIT, cli_output.flag
local number_text = cli_client.number_text

local M = {}

--- How long the run's end waits for its spans to be sent, by default (ms).
M.TRACE_TIMEOUT_MS = 2000

-- The longest --trace-timeout taken (ms): ten minutes.
local MAX_TRACE_TIMEOUT_MS = 600000

-- The metrics file's mode: node_exporter reads it as a user of its own (it holds no secret).
local METRICS_MODE = 420 -- (0644)

-- The most of an earlier metrics file read for its last success (a file of this run's size is a few KiB).
local MAX_OLD_FILE = 1048576

--- The run's own series, after streamctl.operator.metrics' (labels
-- `provider`, `command`: the subcommand, as the audit log names it).
M.RUN_FAMILIES = {
  { "exit_code", "streamctl_run_exit_code", "The exit status of the last run (0 all succeeded, 1 an operation "
    .. "failed or is unknown, 2 refused or a usage error: nothing sent, 130 or 143 interrupted)." },
  { "ended", "streamctl_run_end_timestamp_seconds", "When the last run ended, in Unix seconds." },
  { "duration", "streamctl_run_duration_seconds", "How long the last run took, its spans' export included." },
  { "success", "streamctl_run_last_success_timestamp_seconds", "When a run last exited 0, in Unix seconds "
    .. "(kept from the file's earlier version while runs fail; absent until one succeeds)." },
}

local Telemetry = {}
Telemetry.__index = Telemetry

-- A flag's value, else its [defaults] key's: the text and how to name it; nil when neither is given.
local function setting(args, option, key, defaults, where)
  if args[option] ~= nil then return args[option], flag(option) end
  if defaults[key] ~= nil then return defaults[key], where[key] .. ": " .. key end
  return nil
end

--- The run's telemetry from its flags, [defaults] and environment (`env`:
-- main's, `getenv` its environment), the trace decided; or nil and the
-- message of a value that breaks its rule (a usage error).
function M.new(args, defaults, where, env, getenv)
  local path, said = setting(args, "metrics_file", "metrics_file", defaults, where)
  if path == "" then return nil, said .. " must not be empty" end
  -- (a provider's command of its own, such as issue-token, sends no request: no file replaced by it)
  if args._provider_command then path = nil end
  local text, tsaid = setting(args, "trace_timeout", "trace_timeout_ms", defaults, where)
  local ms = M.TRACE_TIMEOUT_MS
  if text ~= nil then
    local n = number_text(text, true, 0)
    if not n or n > MAX_TRACE_TIMEOUT_MS then
      return nil, format("%s must be an integer from 0 to %d in decimal digits (milliseconds; got '%s')", tsaid,
        MAX_TRACE_TIMEOUT_MS, text)
    end
    ms = n
  end
  local parent, state = getenv("TRACEPARENT"), getenv("TRACESTATE")
  if parent == "" then parent = nil end
  local p = tracecontext.parse_parent(parent)
  local self = setmetatable({
    clock = env.clock or core.now, monotonic = env.monotonic or core.monotonic, getenv = getenv,
    metrics_path = path, timeout = ms / 1000, provider = args.provider,
    -- (the subcommand, as the audit log names it: streamctl.cli.guard's audit_who)
    command = args._reconcile and "reconcile" or args._whoami and "whoami" or args._provider_command
      and args._provider_command.name or args._method and cli_output.command_name(args._method.name) or "call",
    trace_id = p and p.trace_id or tracecontext.new_trace_id(),
    parent_id = p and p.parent_id, ignored = parent ~= nil and not p,
  }, Telemetry)
  self.started = self.monotonic()
  -- (the client option: a valid TRACEPARENT is the trace, else this new one)
  self.trace = { traceparent = p and parent or nil, tracestate = p and state ~= "" and state or nil,
                 trace_id = not p and self.trace_id or nil }
  if path then self.metrics = require("streamctl.operator.metrics").new() end
  return self
end

--- The run's telemetry made (`held.telemetry`, for main to finish on every
-- way out, and `out.trace_id`, for the JSON lines) and its exporter started:
-- the telemetry, or nil and the exit status after saying why.
function M.start(out, args, defaults, where, env, held)
  local tel, why = M.new(args, defaults, where, env, env.getenv or os.getenv)
  if not tel then out:warn(why) return nil, EXIT.usage end
  held.telemetry, out.trace_id = tel, tel.trace_id
  local ok, status = tel:start_tracing(out)
  if not ok then return nil, status end
  return tel
end

-- Is tracing asked for by the environment? What streamctl.trace.from_env
-- answers nil, nil for (OTEL_SDK_DISABLED=true, or neither endpoint set),
-- asked first so that a run that exports nothing loads none of its modules.
local function asked(getenv)
  if (getenv("OTEL_SDK_DISABLED") or ""):lower() == "true" then return false end
  return (getenv("OTEL_EXPORTER_OTLP_ENDPOINT") or "") ~= "" or (getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or "")
    ~= ""
end

--- The exporter, when the environment asks for one (streamctl.trace's
-- from_env). True; or nil and the exit status after saying which variable
-- breaks its rule (nothing was sent). Without the tracing module installed,
-- a run asked to export says once that it exports nothing, and goes on.
function Telemetry:start_tracing(out)
  if not asked(self.getenv) then return true end -- (and the exporter's modules not even loaded)
  local ok, trace = pcall(require, "streamctl.trace")
  if not ok then
    out:warn("warning: OTEL_EXPORTER_OTLP_ENDPOINT is set, but streamctl.trace is not installed: this run's spans "
      .. "are not exported")
    return true
  end
  local tracer, err = trace.from_env { getenv = self.getenv, service_name = "streamctl", metrics = self.metrics }
  if err then
    out:warn(tostring(err), ": nothing was sent")
    return nil, EXIT.usage
  end
  self.tracer = tracer
  return true
end

-- The spans sent while the run goes on (issue 89): after an attempt, a batch's worth queued is
-- flushed, within --trace-timeout. A long run's spans would otherwise fill the queue before its end,
-- and its operation's span, ended last, the root of what it sent, be the one dropped. A flush that
-- fails ends this: the rest wait for the run's end, whose flush says what was lost.
function Telemetry:sender()
  local tracer, sending = self.tracer, true
  local batch = tracer.max_batch or 512
  return function()
    if not sending or tracer:queued() < batch then return end
    local before = tracer:stats().dropped.export_failed
    local ok, stats = pcall(tracer.flush, tracer, self.timeout)
    if not ok or stats.dropped.export_failed > before then sending = false end
  end
end

--- Gives client options `opts` the run's trace, the exporter's hooks and
-- the metrics' feed (after the on_attempt the command set); with `debug`
-- (--debug's standard error), writes the trace's line there, first.
function Telemetry:attach(opts, debug)
  if debug then debug:write(self:debug_line(cli_output.stamp(self.clock())), "\n") end
  opts.trace = self.trace
  if self.tracer then opts.tracer = self.tracer end
  local m, told, send = self.metrics, opts.on_attempt, self.tracer and self:sender()
  if m or send then
    opts.on_attempt = function(info)
      if m then m.on_attempt(info) end
      if told then told(info) end
      if send then send() end
    end
  end
  opts.monotonic = opts.monotonic or (self.monotonic ~= core.monotonic and self.monotonic or nil)
end

--- --debug's line about the trace, once, at the start of the run (each
-- request's own `traceparent`, its span, is among its headers): once rather
-- than on every line, since a run is one trace and its lines are long.
function Telemetry:debug_line(stamp)
  local whence = self.parent_id and "TRACEPARENT's, parent span " .. self.parent_id
    or self.ignored and "a new trace: TRACEPARENT breaks its rule, ignored" or "a new trace: TRACEPARENT is not set"
  return format("%s streamctl: debug: trace %s (%s)", stamp, self.trace_id, whence)
end

-- A number as the text format writes it: at most 3 decimals, none trailing.
local function number(v)
  local s = format("%.3f", v)
  return (gsub(gsub(s, "0+$", ""), "%.$", ""))
end

local function escaped(v)
  return (gsub(gsub(gsub(tostring(v), "\\", "\\\\"), "\"", "\\\""), "\n", "\\n"))
end

-- The last success an earlier version of the file holds for `labels`, or nil.
local function last_success(path, labels)
  local text = core.read_file(path, MAX_OLD_FILE)
  if not text then return nil end
  local name = M.RUN_FAMILIES[4][2]
  for line in text:gmatch("[^\n]+") do
    local l, v = match(line, "^" .. name .. "(%b{}) (%S+)$")
    local n = l == labels and tonumber(v)
    if n and n == n and n >= 0 and n < math.huge then return n end
  end
  return nil
end

-- The run's own families, as text.
local function run_families(self, status, ended)
  local labels = format('{provider="%s",command="%s"}', escaped(self.provider or ""), escaped(self.command))
  local success = status == EXIT.ok and ended or last_success(self.metrics_path, labels)
  local values = { exit_code = status, ended = ended, duration = max(0, self.monotonic() - self.started),
                   success = success }
  local out = {}
  for _, f in ipairs(M.RUN_FAMILIES) do
    out[#out + 1] = "# HELP " .. f[2] .. " " .. f[3]
    out[#out + 1] = "# TYPE " .. f[2] .. " gauge"
    if values[f[1]] then out[#out + 1] = f[2] .. labels .. " " .. number(values[f[1]]) end
  end
  return concat(out, "\n") .. "\n"
end

-- The exporter shut down within the bound; spans it dropped said in one line.
local function shutdown(self, out)
  local ok, stats = pcall(self.tracer.shutdown, self.tracer, self.timeout)
  if not ok then
    out:warn("warning: the spans' exporter failed at the run's end (", tostring(stats), "): spans may be lost")
    return
  end
  local d = type(stats) == "table" and type(stats.dropped) == "table" and stats.dropped or {}
  local full, failed, roots = tonumber(d.queue_full) or 0, tonumber(d.export_failed) or 0,
    tonumber(d.queue_full_roots) or 0
  if full + failed > 0 then
    -- (a root dropped: its trace's others are orphans at the collector; none dropped: each trace's root kept)
    local whose = full == 0 and "" or roots > 0 and format(", %d of them a trace's root", roots)
      or ", no trace's root among them"
    out:warn(format("warning: %d span%s not exported (%d the queue was full%s; %d the collector did not take)%s",
      full + failed, full + failed == 1 and "" or "s", full, whose, failed, stats.last_error and ("; last error: "
        .. tostring(stats.last_error)) or ""))
  end
end

--- The run's end, whatever it was (`status`, the exit status; `info`, what
-- carry_out knew: `places` when the places check ran): the exporter shut
-- down, then the metrics file written. Neither changes the exit status: a
-- failure is said once on standard error.
function Telemetry:finish(out, status, info)
  if self.tracer then shutdown(self, out) end
  local m = self.metrics
  if not m then return end
  -- (the places the run left: the check's count before it, grown by what the run may have taken)
  local places = type(info) == "table" and (info.places_after or info.places)
  if type(places) == "table" and type(places.used) == "number" and type(places.limit) == "number" then
    m:places_left(self.provider, places)
  end
  local text = m:render() .. run_families(self, status, self.clock())
  local ok, why = core.replace_file(self.metrics_path, text, METRICS_MODE)
  if not ok then
    out:warn("warning: the metrics file was not written (", tostring(why), "); the run's exit status stands")
  end
end

return M
