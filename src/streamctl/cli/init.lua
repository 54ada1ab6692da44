--- The `streamctl` command: every operation of both providers from a shell
-- or cron, batches from files, progress, JSON lines. bin/streamctl runs
-- `os.exit(require("streamctl.cli").main(arg))`.
--
-- Subcommands are made from the clients' own method schemas
-- (`streamctl.aliyun.methods()`), so each flag is a method's field
-- (`--domain-name` is `domain_name`), checked by the same rules, and a new
-- method is a new subcommand. Exit codes: 0 everything succeeded, 1 an
-- operation failed or its outcome is unknown (each is named in the output),
-- or standard output could not be written (a full disk; a closed pipe,
-- which stops sending as Ctrl-C does; said on standard error), 2 a usage or
-- input error (nothing was sent), 130 (143) interrupted by SIGINT (SIGTERM)
-- after reporting every stream.
-- @module streamctl.cli


local streamctl = require "streamctl"
local audit = require "streamctl.operator.audit"
local credentials = require "streamctl.credentials"
local input = require "streamctl.cli.input"
local cli_output = require "streamctl.cli.output"
local cli_parser = require "streamctl.cli.parser"
local commands = require "streamctl.cli.commands"
local habits = require "streamctl.cli.habits"
local provider_tables = require "streamctl.cli.provider"
local cli_client = require "streamctl.cli.client"
local cli_guard = require "streamctl.cli.guard"
local cli_calls = require "streamctl.cli.calls"
local callargs = require "streamctl.cli.callargs"
local cli_reconcile = require "streamctl.cli.reconcile"
local telemetry = require "streamctl.cli.telemetry"
local validate = require "streamctl.base.validate"
local core = require "streamctl.core"

local type, ipairs, format, concat = type, ipairs, string.format, table.concat
local EXIT, command_name, new_out = cli_output.EXIT, cli_output.command_name, cli_output.new_out
local as_flags, is_tty = cli_output.as_flags, cli_output.is_tty
local new_parser = cli_parser.parser
local fields_of, client_options, run_whoami = cli_client.fields_of, cli_client.client_options, cli_client.run_whoami
local safety, audit_intent, audit_run = cli_guard.safety, cli_guard.audit_intent, cli_guard.audit_run
local plan_of, outcomes_writer, call_refused = cli_guard.plan_of, cli_guard.outcomes_writer, cli_guard.call_refused
local preflight_refused = cli_guard.preflight_refused
local dry_run, run_batch, run_long = cli_calls.dry_run, cli_calls.run_batch, cli_calls.run_long
local run_call = cli_calls.run_call
local run_reconcile = cli_reconcile.run_reconcile

local M = {}

M.EXIT = EXIT
--- The argparse parser of the whole command.
function M.parser() return cli_parser.parser(commands.LIST) end
M.man_commands = cli_parser.man_commands
M.read_text = input.read_text
M.read_list = input.read_list

-- The parser, made once per process: it depends on nothing but the
-- providers' methods, and making it is most of a usage error's time
-- (cli.main called again in one process: an embedding, the specs, the
-- simulation). argparse keeps each parse's results apart from the parser.
local the_parser
local function get_parser()
  if not the_parser then
    the_parser = new_parser(commands.LIST)
    -- argparse hands its error handler the (sub)command being parsed: its
    -- usage is the one to show.
    the_parser.error = function(p, message)
      error({ usage = p:get_usage(), message = message, help = p:get_help() }, 0)
    end
  end
  return the_parser
end

-- For an unknown option argparse had no tip for (it knows one edit away,
-- never a start: `--domain`): " (did you mean '--domain-name'?)" when the
-- typed name starts one option, or two of them, of the (sub)command's help,
-- else when one is a few edits away; or nil. Suggested, never taken.
-- Returns the message and the suggestion: argparse's own tip ("...\nDid you
-- mean '--stream-name'?") said the same way. A value that starts with '-'
-- (`--start-time -1`: argparse reads an option '-1') is told how to give it.
local function suggest(message, help, argv)
  if type(message) ~= "string" then return message, nil end
  local head, tip = message:match("^(unknown option '[^']*')\nDid you mean '([^']*)'%?$")
  local short = (head or message):match("^unknown option '(%-[^%-'][^']*)'")
  if short then
    for i = 2, #(argv or {}) do
      local before = argv[i - 1]
      if argv[i]:sub(1, #short) == short and before:match("^%-%-[%w][%w%-]*$") then
        return "unknown option '" .. argv[i] .. "'", format(" (a value that starts with '-' goes after '=': %s=%s)",
          before, argv[i])
      end
    end
  end
  local typed = message:match("^unknown option '(%-%-[^'=]+)[^']*'")
  -- (an option another tool takes for a provider: what stands for it, e.g. aliyun-cli's --region; the
  -- provider named on the line, the first one after the options given before it, else any that knows it)
  local named
  for _, a in ipairs(argv or {}) do
    named = named or provider_tables.get(a)
  end
  local told
  for _, p in ipairs(named and { named } or provider_tables.all()) do
    told = told or (typed and p.unknown_option and p.unknown_option(typed))
  end
  if told then return "unknown option '" .. typed .. "'", told end
  if head then return head, " (did you mean '" .. tip .. "'?)" end
  typed = message:match("^unknown option '(%-%-[^'=]+)[^']*'$")
  if not typed or type(help) ~= "string" then return message, nil end
  local names, seen, starting = {}, {}, {}
  for name in help:gmatch("%-%-[%w][%w%-]*") do
    if not seen[name] then
      seen[name] = true
      names[#names + 1] = name
      if name:sub(1, #typed) == typed then starting[#starting + 1] = name end
    end
  end
  if #starting == 1 or #starting == 2 then
    return message, " (did you mean '" .. table.concat(starting, "' or '") .. "'?)"
  end
  local hint = validate.hint(typed, names)
  return message, hint ~= "" and hint or nil
end

-- The command line parsed: the arguments, or nil and the exit status (the
-- usage or the help said).
local function parse(out, argv)
  local parser = get_parser()
  -- (an action's own name, as aliyun-cli users type it, is its command, and its parameters' names flags:
  -- ForbidLiveStream --DomainName d is forbid-live-stream --domain-name d)
  argv = habits.canonical(argv)
  local provider = argv[1]
  local ok, args = pcall(parser.parse, parser, argv)
  if not ok then
    if type(args) ~= "table" then error(args, 0) end
    local unknown = type(args.message) == "string" and args.message:match("^unknown command '([^']*)'")
    if unknown and provider_tables.get(provider) then
      local like = habits.commands_like(provider, unknown)
      local said = #like > 1 and "'" .. concat(like, "', '", 1, #like - 1) .. "' or '" .. like[#like] .. "'"
        or like[1] and "'" .. like[1] .. "'"
      out.err:write("streamctl: unknown command '", unknown, "' of ", provider, said and format(
        " (did you mean %s?)", said) or "", "; `streamctl ", provider, " --help` lists them all, "
        .. "and `streamctl ", provider, " call ACTION Key=Value...` sends any action by its own name\n")
      return nil, EXIT.usage
    end
    -- (an option that takes one value, given again: argparse's "must be used at most 1 time", said plainly)
    local twice = type(args.message) == "string"
      and args.message:match("^(option '[^']*') must be used at most 1 time$")
    if twice then
      out.err:write("streamctl: ", twice, " given twice: it is taken once (see --help; one that takes many says "
        .. "'repeat')\n")
      return nil, EXIT.usage
    end
    local message, suggestion = suggest(args.message, args.help, argv)
    if suggestion then -- (an option mistyped: the suggestion, not the whole usage)
      out.err:write("streamctl: ", message, suggestion, "\n")
    else
      out.err:write(args.usage, "\n\nstreamctl: ", args.message, " (see --help)\n")
    end
    return nil, EXIT.usage
  end
  if not args._run and not args.provider then
    out.err:write(parser:get_help(), "\n")
    return nil, EXIT.usage
  end
  return args
end

-- The client a run of `args` uses, and the run's record: its options,
-- their source, the method and its fields, the guard (`safe`), the
-- defaults; or nil and the exit status (the reason said). `whoami` is
-- answered here (it needs no client).
-- The flags that set when a forbid ends: an absolute time or a duration (streamctl.cli.client's duration).
local TIME_FLAGS = { "resume_time", "cdn_resume_time" }

-- --debug's on_attempt: each request and answer on standard error, redacted, as it ends, after the
-- time it ended (on `clock`). The credentials' own requests (STS) have it alone.
local function debug_writer(out, clock)
  return function(info)
    for _, line in ipairs(cli_output.debug_lines(info, cli_output.stamp(clock()))) do out.err:write(line, "\n") end
  end
end

-- The run's on_attempt: each call's attempts counted, and with --debug written (debug_writer).
local function watcher(out, run, clock)
  local debug = run.args.debug and debug_writer(out, clock)
  return function(info)
    if info.role == "call" then run.attempts = run.attempts + 1 end
    if debug then debug(info) end
  end
end

local function prepare(out, args, env, held)
  local provider = args.provider
  local defaults, where, dwarnings = credentials.defaults { getenv = env.getenv }
  if not defaults then out:warn(where) return nil, EXIT.usage end
  for _, w in ipairs(dwarnings) do out:warn("warning: ", w) end
  local output = args.output or defaults.output or "table"
  if output ~= "table" and output ~= "json" then
    out:warn(format("%s: output must be table or json", where.output))
    return nil, EXIT.usage
  end
  -- (the run's trace, its exporter and its metrics file: finished by main on every way out from here)
  local tel, tstatus = telemetry.start(out, args, defaults, where, env, held)
  if not tel then return nil, tstatus end

  args._warn = function(text) out:warn("warning: ", text) end
  -- (--debug: the credentials' own requests too, STS's AssumeRole and whoami's GetCallerIdentity)
  if args.debug then args._debug = debug_writer(out, env.clock or core.now) end
  local opts, why, warnings, source = client_options(provider, args, defaults, where, env.getenv)
  for _, w in ipairs(warnings or {}) do out:warn("warning: ", w) end
  if not opts then out:warn(why) return nil, EXIT.usage end
  if args._whoami then return nil, run_whoami(out, provider, opts, args, output, source, env.getenv) end
  if args._provider_command then return nil, args._provider_command.run(out, args, opts, output, env) end

  -- Every attempt of a call counted; Ctrl-C and SIGTERM caught, to report
  -- first (catch() also ignores SIGPIPE: a closed output is a failed write,
  -- which stops the run as Ctrl-C does, rather than the end of the process).
  local run = { provider = provider, opts = opts, source = source, args = args, output = output, attempts = 0,
                stop = {}, trace_id = tel.trace_id } -- (stop.why: the audit log failed in a long run; outcomes_writer)
  -- (the command's clock, the client's too: env.clock, a test's stand-in, else the system's)
  local clock = env.clock or core.now
  opts.clock = env.clock
  opts.on_attempt = watcher(out, run, clock)
  tel:attach(opts, args.debug and out.err) -- (its trace, the exporter's hooks, the metrics' feed; --debug's first line)
  local signal = env.signal or require "streamctl.signal"
  run.signal = signal
  if not args.dry_run then signal.catch() end
  -- A reader of standard output gone (`| head -1`) stops the run before it
  -- sends more, whatever the output format: asked without writing, so a
  -- table written at the end stops as JSON lines do (their write fails).
  local closed = out.out == io.stdout and signal.output_closed
  opts.cancel = function()
    -- (said as a write to it would be, EPIPE's words: the same message whichever way it was found)
    if closed and not out.failed and closed(1) then out.failed = "Broken pipe" end
    return signal.caught() ~= nil or out.failed ~= nil or run.stop.why ~= nil
  end

  local client, cerr = streamctl[provider].new(opts)
  if not client then out:warn(as_flags(cerr.message)) return nil, EXIT.usage end
  run.client = client

  -- (a forbid's end given as a duration: its end, read once now, on the client's clock, and said)
  for _, k in ipairs(TIME_FLAGS) do
    local v, said = cli_client.duration.resolve(args[k], client:now(), cli_output.flag(k))
    if not v and said then out:warn(said) return nil, EXIT.usage end
    if said then args[k] = tostring(v) out:warn(said) end
  end

  local m = args._method
  run.m = m
  if args.unexpected and args.unexpected[1] then
    out:warn(format("unexpected argument '%s': %s takes flags only (see --help)", args.unexpected[1],
      command_name(m.name)))
    return nil, EXIT.usage
  end
  if m then
    local ferr
    run.fields, ferr, run.long = fields_of(m, args, env.stdin)
    if not run.fields then out:warn(ferr) return nil, EXIT.usage end
    local fill = provider_tables.get(provider).fill -- (fields the environment gives: the provider's)
    ferr = fill and fill(m, run.fields, env.getenv or os.getenv)
    if ferr then out:warn(ferr) return nil, EXIT.usage end
  end

  local safe, sstatus = safety(out, args, m, run.fields, run.long, defaults, where, env.getenv or os.getenv,
    streamctl[provider].effect)
  if not safe then return nil, sstatus end
  if safe.write then safe.run_id = audit.run_id() end
  run.safe = safe
  return run
end

-- Are a method's fields what it takes (checked as the method checks them,
-- before the run's intent is written)? False after saying why.
local function checked(out, client, m, fields)
  local ok, err = client:check(m.name, fields)
  if not ok then out:warn(as_flags(tostring(err.message), m)) end
  return ok
end

-- `info` with what a batch's report says of throttles, for the audit's
-- outcome (its throttled calls, the lowest room in requests per second).
local function paced(info, report)
  info = info or {}
  if report and report.throttled and report.throttled > 0 then
    info.throttled = report.throttled
    info.lowest_room = report.lowest_room and math.floor(report.lowest_room * 100 + 0.5) / 100
  end
  return info
end

-- Carries out a prepared run: status, rows, info, calls, planned. The
-- run's intent goes to the audit log, on the disk, before its first
-- request leaves (reconcile: once it knows the difference to send).
local function carry_out(out, run, env)
  local client, m, fields, args, safe, long = run.client, run.m, run.fields, run.args, run.safe, run.long
  local output = run.output
  local function intend(plan)
    plan.from = plan.from or (args.from and (args.from == "-" and "standard input" or args.from))
      or "the command line"
    return audit_intent(out, safe, run, plan)
  end
  local status, rows, info, calls, planned, report = safe.status, nil, safe.info, nil, nil, nil
  if status then -- luacheck: ignore 542 (the guard refused: nothing is sent)
  elseif args._reconcile then
    status, info = run_reconcile(out, client, run.provider, args, output,
      { forbid = safe.limit, resume = safe.resume_limit }, env.stdin, intend)
  elseif args.dry_run then
    status = dry_run(out, client, m, fields, args, output)
  elseif m and not checked(out, client, m, fields) then
    status = EXIT.usage -- (a field breaks its rule: said, and no intent written for a run that sends nothing)
  elseif not m and not callargs.check_call(out, client, args) then
    status = EXIT.usage -- (a `call` parameter breaks its rule, or names a credential: said; no intent written)
  elseif not m and call_refused(out, safe, args) then
    status, info = EXIT.usage, safe.info -- (the guard: said, and audited as a refusal)
  elseif preflight_refused(out, client, m or args._checked.method, fields or args._checked.fields, long, safe,
      provider_tables.get(run.provider).preflight) then
    -- (what the provider checks before a batch does not hold, e.g. the block list's room: said, and audited;
    -- a `call` of a named action goes through its named command's step: cli/callargs.lua check_call)
    status, info = safe.preflight_status, safe.info
  elseif not intend(plan_of(m, fields, args, safe, long)) then
    status = EXIT.usage
  elseif long then
    local counts
    status, counts, calls, planned, report = run_long(out, client, m, fields, args, output, long,
      outcomes_writer(out, safe, run, run.stop))
    info = paced(info, report)
    info.counts = counts
  elseif m and m.list then
    status, rows, calls, planned, report = run_batch(out, client, m, fields, args, output)
    info = paced(info, report)
  else
    status, rows = run_call(out, client, m, fields, args, output, function() return run.attempts end)
    calls = run.attempts
  end
  if safe.places and info then
    info.places = safe.places
    -- (the places as the run left them, for the metrics: the provider's rule, streamctl.aliyun.places.after)
    local after = provider_tables.get(run.provider).places_after
    if after and report then info.places_after = after(safe.places, report) end
  end
  return status, rows, info, calls, planned
end

-- After a run: an interruption said (how many calls left, never those
-- planned as if sent) and the outcome audited. Returns the exit status.
local function conclude(out, run, status, rows, info, calls, planned)
  local safe = run.safe
  local sig = status ~= EXIT.usage and run.signal.caught()
  if sig then
    local sent = calls or (info and info.calls)
    out:warn(format("interrupted (signal %d): every stream above is reported; those marked Interrupted "
      .. "were not sent%s", sig, not sent and "" or planned and format(" (%d of the %d calls planned were sent)",
      sent, planned) or format(" (%d calls were sent)", sent)))
    status = 128 + sig
  end
  if safe.write and (rows or (info and (info.streams or info.counts))) then
    if info and info.counts then run.stop.flush() end
    info = info or {}
    info.calls = info.calls or calls
    run.status, run.interrupted = status, sig and true or false
    audit_run(out, safe, rows, info, run)
  end
  return status
end

--- Runs the command line `argv` (without the program name).
-- @tparam table argv the arguments
-- @tparam[opt] table env `{ stdout, stderr, stdin, getenv, signal, clock, monotonic }` (for tests: the
-- files, the environment's `os.getenv`, a stand-in for `streamctl.signal`, the clock: Unix seconds, and
-- the clients' monotonic clock)
-- @return the exit status
function M.main(argv, env)
  env = env or {}
  local out = new_out(env.stdout, env.stderr)
  -- (people read a terminal: a stopped batch's rows not sent are counted there, not listed; `terminal`:
  -- a test's stand-in)
  if env.terminal ~= nil then out.terminal = env.terminal else out.terminal = env.stdout == nil and is_tty(1) end
  local args, status = parse(out, argv)
  if not args then return status end
  if args._run then return args._run(out, args, env) end -- (the command's own: streamctl.cli.commands)
  -- (the run's telemetry, once prepare made it: its spans sent and its metrics written whatever the end)
  local held, info = {}, nil
  local run
  run, status = prepare(out, args, env, held)
  if run then
    local rows, calls, planned
    status, rows, info, calls, planned = carry_out(out, run, env)
    run.client:close()
    status = conclude(out, run, status, rows, info, calls, planned)
  end
  if held.telemetry then held.telemetry:finish(out, status, info) end
  return status
end

return M

