--- `streamctl audit [LOG]`: the audit log read back, one line a run (when,
-- who, what, outcome); `--run ID` one run's streams, `--stream NAME` and
-- `--since TIME` to filter, `--output json`. Read-only: the log is opened
-- for reading and never written. A line that is not a record (one cut
-- short by a full disk) is said on standard error, with its number, and
-- skipped. See docs/reconcile.md "Reading the log".
-- @module streamctl.cli.audit_read

local cjson = require "cjson.safe"
local lfs = require "lfs"
local core = require "streamctl.core"
local json = require "streamctl.base.json"
local validate = require "streamctl.base.validate"
local cli_output = require "streamctl.cli.output"

local type, ipairs, pairs, tostring, tonumber, format = type, ipairs, pairs, tostring, tonumber, string.format
local concat, match, floor, find, sub, gsub, byte = table.concat, string.match, math.floor, string.find, string.sub,
  string.gsub, string.byte
local EXIT = cli_output.EXIT

local M = {}

-- A run's outcome (and a stream's), as the listing says it.
local WORDS = { ok = "succeeded", failed = "failed", unknown = "unknown", refused = "refused",
                not_sent = "not sent", interrupted = "interrupted" }

--- Makes the argparse command.
function M.add(parser)
  local cmd = parser:command("audit", "Reads an audit log back: one line a run (when, who, what, its outcome); "
    .. "a run with an intent and no outcome (a crash) says 'no outcome recorded'. Read-only. A line that is not "
    .. "a record (cut short by a full disk) is said on standard error and skipped.")
  cmd:summary("List the runs of an audit log.")
  cmd:argument("log", "The log, - for standard input (default: the one a run writes: $STREAMCTL_AUDIT_LOG, else "
    .. "$XDG_STATE_HOME or ~/.local/state, under streamctl/audit.jsonl)."):args("?")
  cmd:option("--run", "One run's streams, each with its outcome."):argname("<id>")
  cmd:option("--stream", "Only the runs that touched this stream: a name alone (an Alibaba Cloud stream in any "
    .. "domain and app, or a ZEGO stream), or domain/app/stream; with --run, only its rows."):argname("<name>")
  cmd:option("--since", "Only the runs from this time on: YYYY-MM-DDThh:mm:ssZ, Unix seconds, or how long ago "
    .. "(24h, 90m, 1d12h)."):argname("<time>")
  cmd:option("-o --output", "table (for people, the default) or json (one JSON object per line).")
    :choices { "table", "json" }
  cmd:epilog("Example:\n   streamctl audit --since 24h\n   streamctl audit --run 3f9a6c0e5b1d2a48")
  return cmd
end

-- `text` safe to print on a terminal: its control characters (C0, DEL, and C1 as UTF-8 writes
-- them) as \xNN or \u00NN escapes, so a log's bytes never move the cursor, retitle the window or
-- hide a line. (The table only: --output json escapes them as JSON does.)
local function printable(text)
  return (gsub(gsub(text, "[%c]", function(c) return format("\\x%02x", byte(c)) end), "\194([\128-\159])",
    function(c) return format("\\u%04x", byte(c)) end))
end

-- A record: a JSON object with a time string (and, when there, a run and a record string).
local function valid(r)
  return type(r) == "table" and type(r.time) == "string" and core.parse_utc_timestamp(r.time) ~= nil
    and (r.run == nil or type(r.run) == "string") and (r.record == nil or type(r.record) == "string")
end

-- The log's runs in the order first seen, each `{ id, records }`; or nil
-- and why. `path` "-": standard input (`stdin`), as `cat a b | streamctl audit -`.
local function read_runs(out, path, stdin)
  local f, why
  if path == "-" then
    local lines = stdin:lines()
    f = { read = function() return lines() end, close = function() end }
  else
    -- (a file only: a FIFO would be waited on, a device such as /dev/zero read without end)
    local mode = lfs.attributes(path, "mode")
    if mode and mode ~= "file" then
      return nil, format("it is a %s, not a file: an audit log is a file (standard input: -)",
        mode == "named pipe" and "FIFO" or mode == "char device" and "character device" or mode)
    end
    f, why = io.open(path, "rb")
    if not f then return nil, why end
  end
  local runs, by_id, n = {}, {}, 0
  while true do
    local line, err = f:read("l")
    if not line then
      f:close()
      if err then return nil, format("%s: %s", path, err) end
      return runs
    end
    n = n + 1
    local r = cjson.decode(line)
    if not valid(r) then
      out:warn(format("%s:%d: not an audit record (a line cut short?): skipped", path == "-" and "standard input"
        or path, n))
    else
      local id = r.run or ("line " .. n)
      local run = by_id[id]
      if not run then
        run = { id = id, records = {} }
        by_id[id], runs[#runs + 1] = run, run
      end
      run.records[#run.records + 1] = r
    end
  end
end

-- The run's summary: when, who, provider, command, actions, count, outcome, streams.
local function summary(run)
  local s = { id = run.records[1].run or "-", streams = {} }
  for _, r in ipairs(run.records) do
    s.time = s.time or r.time
    s.user, s.host = s.user or r.user, s.host or r.host
    s.trace_id = s.trace_id or (type(r.trace_id) == "string" and r.trace_id or nil)
    s.provider, s.command, s.actions = s.provider or r.provider, s.command or r.command, s.actions or r.actions
    if r.record == "intent" then
      s.intent, s.count, s.at_least = true, r.count, r.count_at_least
      s.planned = type(r.streams) == "table" and r.streams or s.planned
    else
      if r.record ~= "outcomes" then s.outcome, s.counts = r.outcome, r.counts end
      for _, e in ipairs(type(r.streams) == "table" and r.streams or {}) do s.streams[#s.streams + 1] = e end
    end
  end
  return s
end

-- How many streams the run was about, as a number (nil: not said).
local function stream_count(s)
  if s.count then return s.count end
  if type(s.counts) == "table" then
    local n = 0
    for _, v in pairs(s.counts) do n = n + (tonumber(v) or 0) end
    return n
  end
  if #s.streams > 0 then return #s.streams end
  return s.planned and #s.planned or nil
end

-- The run's outcome in words.
local function outcome_word(s)
  if not s.outcome then return s.intent and "no outcome recorded" or "unknown" end
  local c = type(s.counts) == "table" and s.counts
  if s.outcome == "failed" and c and c.not_sent and c.not_sent == stream_count(s) then return "not sent" end
  return WORDS[s.outcome] or tostring(s.outcome)
end

local function who_of(s)
  if not s.user then return "-" end
  return s.host and (s.user .. "@" .. s.host) or s.user
end

local function what_of(s)
  local n = stream_count(s)
  local count = s.at_least and format("at least %d streams", s.at_least)
    or n and format("%d stream%s", n, n == 1 and "" or "s") or "streams not said"
  local actions = type(s.actions) == "table" and #s.actions > 0 and concat(s.actions, ",") or s.command or "-"
  -- (the command too: the command's subcommand, a Lua batch's method, the edge's callback or reaction)
  local via = type(s.command) == "string" and s.command ~= actions and (" via " .. s.command) or ""
  return format("%s %s %s%s", s.provider or "-", actions, count, via)
end

-- A JSON object of `pairs_` ({ key, value } in order; nil values left out).
local function object(list)
  local parts = {}
  for _, p in ipairs(list) do
    local v = p[2]
    if v ~= nil then
      local text = type(v) == "string" and json.string(v) or type(v) == "table" and json.string_array(v)
        or validate.decimal(v)
      parts[#parts + 1] = json.string(p[1]) .. ":" .. text
    end
  end
  return "{" .. concat(parts, ",") .. "}"
end

local function run_json(s)
  return object { { "run", s.id }, { "trace_id", s.trace_id }, { "time", s.time }, { "user", s.user },
    { "host", s.host },
    { "provider", s.provider }, { "command", s.command },
    { "actions", type(s.actions) == "table" and s.actions or nil },
    { "count", stream_count(s) }, { "count_at_least", s.at_least }, { "outcome", outcome_word(s) } }
end

local function run_line(s)
  return printable(format("%s  %s  %s  %s  %s", s.time, s.id, who_of(s), what_of(s), outcome_word(s)))
end

-- One run's streams: each with its outcome (an intent's alone: "no outcome recorded").
local function stream_rows(s)
  local rows = {}
  local list = #s.streams > 0 and s.streams or s.planned or {}
  for _, e in ipairs(list) do
    local word = e.outcome and (WORDS[e.outcome] or tostring(e.outcome)) or outcome_word(s)
    -- (a later call decided on it: nothing was left to do, and that call's decision is named)
    if e.superseded_by ~= nil then word = "superseded" end
    rows[#rows + 1] = { stream = tostring(e.stream), action = e.action, outcome = word, code = e.code,
                        request_id = e.request_id, superseded_by = e.superseded_by }
  end
  return rows
end

-- Whether a logged stream is the one --stream names: the same text, or for
-- a name alone the last part of an Alibaba Cloud stream (domain/app/name).
local function same_stream(logged, name)
  if type(logged) ~= "string" then return false end
  if logged == name then return true end
  return not find(name, "/", 1, true) and #logged > #name + 1 and sub(logged, -#name - 1) == "/" .. name
end

-- The rule --stream's value breaks, or nil: a name alone or domain/app/stream.
local function stream_rule(name)
  local _, slashes = gsub(name, "/", "")
  if name ~= "" and (slashes == 0 or (slashes == 2 and match(name, "^[^/]+/[^/]+/[^/]+$"))) then return nil end
  return format("--stream takes a stream's name alone (any domain and app) or domain/app/stream (got '%s')", name)
end

local function touches(s, name)
  for _, list in ipairs { s.streams, s.planned or {} } do
    for _, e in ipairs(list) do
      if same_stream(e.stream, name) then return true end
    end
  end
  return false
end

-- The --since time as Unix seconds (a duration: that long before `now`,
-- streamctl.cli.client's duration grammar without its `+`), or nil and the usage error.
local function since_of(text, now)
  if text == nil then return 0 end
  local t = match(text, "^%d+$") and validate.parse_time(tonumber(text)) or validate.parse_time(text)
  local ago = not t and not match(text, "^%+") and require("streamctl.cli.client").duration.seconds(text)
  if ago then return floor(now) - ago end
  if t then return t end
  return nil, format("--since must be a time (YYYY-MM-DDThh:mm:ssZ or Unix seconds) or how long ago (N followed by "
    .. "d, h, m or s, largest unit first: 24h, 90m, 1d12h) (got '%s')", #text > 64 and text:sub(1, 64) .. "..." or text)
end

-- (the run's trace, when its records name one: the line that finds its spans in a tracing backend)
-- (`name`: --stream's, only its rows)
local function show_run(out, s, as_json, name)
  if not as_json then out:line(run_line(s)) end
  if not as_json and s.trace_id then out:line("  trace ", printable(s.trace_id)) end
  for _, r in ipairs(stream_rows(s)) do
    if name and not same_stream(r.stream, name) then goto next_row end
    if as_json then
      out:line(object { { "run", s.id }, { "trace_id", s.trace_id }, { "stream", r.stream }, { "action", r.action },
        { "outcome", r.outcome }, { "superseded_by", r.superseded_by }, { "code", r.code },
        { "request_id", r.request_id } })
    else
      out:line(printable("  " .. r.stream .. "  " .. tostring(r.action or "-") .. "  " .. r.outcome
        .. (r.code and ("  " .. tostring(r.code)) or "")
        .. (r.superseded_by and ("  by decision " .. tostring(r.superseded_by)) or "")))
    end
    ::next_row::
  end
end

-- The log's path: LOG, else the one a run writes; or nil and why.
local function log_path(args, getenv)
  if args.log then return args.log end
  local path = require("streamctl.cli.guard").audit_path({}, getenv)
  if path then return path end
  return nil, "no audit log named, and no default one (neither $STREAMCTL_AUDIT_LOG, $XDG_STATE_HOME nor $HOME set)"
end

--- Runs `streamctl audit`: the exit status.
function M.run(out, args, env)
  local since, bad = since_of(args.since, (env.clock or core.now)())
  if not since then out:warn(bad) return EXIT.usage end
  bad = args.stream and stream_rule(args.stream)
  if bad then out:warn(bad) return EXIT.usage end
  local path, why = log_path(args, env.getenv or os.getenv)
  if not path then out:warn(why) return EXIT.usage end
  local runs, err = read_runs(out, path, env.stdin or io.stdin)
  if not runs then out:warn("cannot read the audit log ", path, " (", err, ")") return EXIT.usage end
  local as_json = args.output == "json"
  local shown = false
  for _, run in ipairs(runs) do
    local s = summary(run)
    local t = core.parse_utc_timestamp(s.time)
    if (not args.run or run.id == args.run) and (not args.stream or touches(s, args.stream)) and t >= since then
      shown = true
      if args.run then show_run(out, s, as_json, args.stream) else out:line(as_json and run_json(s) or run_line(s)) end
    end
  end
  if args.run and not shown then
    out:warn(format("no run %s in %s%s", args.run, path, args.stream and " that touched " .. args.stream or ""))
    return EXIT.usage
  end
  if not shown and args.stream then
    -- (said, never an empty listing that reads as "nothing happened to it")
    out:warn(format("no run in %s touched stream %s%s", path, args.stream, args.since and " since " .. args.since
      or ""))
    return EXIT.failed
  end
  if out.failed then out:lost("the audit log's runs") return EXIT.failed end
  return EXIT.ok
end

return M
