--- What the command accepts, made from tables: a subcommand per method of
-- each registered provider's client (made from its schema: each flag a
-- field; its operation's `effect` says whether it is guarded and audited),
-- `call`, and what the provider's command table (streamctl.cli.provider)
-- adds: its credential flags, `reconcile`, `whoami`; then the command's own
-- (configure, emulator, man). The man page's command list from the same.
-- @module streamctl.cli.parser

local argparse = require "argparse"
local provider_tables = require "streamctl.cli.provider"
local audit = require "streamctl.operator.audit"
local options_module = require "streamctl.pipeline.options"
local version = require "streamctl.version"
local cli_output = require "streamctl.cli.output"

local ipairs, tostring, format, gsub = ipairs, tostring, string.format, string.gsub
local upper = string.upper
local concat, floor = table.concat, math.floor
local unpack = table.unpack or unpack -- luacheck: ignore 143 (5.1's global)
local flag, command_name = cli_output.flag, cli_output.command_name

local M = {}

-- Fields a command line does not take as flags: callbacks, and options the
-- command has globally.
-- (the command keeps its own: --max-forbid and --yes, --audit-log, and the block list's places read
-- before the intent: cli/guard.lua)
local SKIP = { on_progress = true, concurrency = true, keep_results = true, check_places = true, guard = true,
               audit = true, trace = true }

local function field_help(f)
  local parts = {}
  if f.enum then parts[#parts + 1] = "one of " .. concat(f.enum, ", ") end
  if f.note then parts[#parts + 1] = f.note end
  if f.type == "time" then -- (a forbid's end also as a duration from now: cli/client.lua's duration)
    parts[#parts + 1] = "YYYY-MM-DDThh:mm:ssZ or Unix seconds" .. (f.name == "resume_time" and ", or a duration "
      .. "from now: +2h, 90m, 1h30m, 45s, 2d (units d h m s, largest first, each once)" or "")
  end
  if f.type == "yesno" then parts[#parts + 1] = "yes or no" end
  if f.type == "integer" then
    if f.min and f.max then
      parts[#parts + 1] = format("an integer, %d..%d", f.min, f.max)
    elseif f.min then
      parts[#parts + 1] = format("an integer >= %d", f.min)
    else
      parts[#parts + 1] = "an integer"
    end
  end
  if f.type == "strings" then parts[#parts + 1] = "repeat for more than one" end
  if f.default ~= nil then parts[#parts + 1] = "default: " .. tostring(f.default) end
  local text = f.required and "(required) " or ""
  if f.param then text = text .. f.param end
  if #parts > 0 then
    -- (a field the service never sees, the command's own: its rules alone, a sentence)
    text = f.param and text .. " (" .. concat(parts, "; ") .. ")" or text .. gsub(concat(parts, "; "), "^%l", upper)
      .. "."
  end
  return text
end

-- Options every leaf command takes, with their defaults in the help.
local DRY_RUN_HELP = "Print the signed request(s), secrets, signatures and tokens redacted, and send nothing."

-- Options of `cmd` from flag tables (streamctl.cli.provider's: { "--name",
-- help, "<arg>" }, with `choices`, `count`, or `flag = true`): the list.
local function add_flags(cmd, flags)
  local list = {}
  for i, f in ipairs(flags) do
    local o = f.flag and cmd:flag(f[1], f[2]) or cmd:option(f[1], f[2])
    if f[3] then o:argname(f[3]) end
    if f.choices then o:choices(f.choices) end
    if f.count then o:count(f.count) end
    list[i] = o
  end
  return list
end

-- `provider`: the command's table of it (streamctl.cli.provider).
local function add_common(cmd, provider, dry_run_help)
  cmd:group("Connection",
    cmd:option("--endpoint", "The API endpoint, https://host[:port] (default: the provider's; http:// only to "
      .. "127.0.0.1, ::1 or localhost)."):argname("<url>"),
    cmd:option("--ca-file", "Trust this CA bundle (TLS verification is always on)."):argname("<file>"),
    cmd:option("--proxy", "Send through this proxy, http://host:port, or 'env': the environment's https_proxy "
      .. "and no_proxy (default: none; the environment is ignored). Credential requests use it too; the "
      .. "ECS metadata service never does."):argname("<url|env>"),
    cmd:option("--timeout", "Milliseconds one attempt may take (default: 10000), answer included; its "
      .. "connection may take 5000 of them at most. A call makes up to 3 attempts (a throttled one: as many "
      .. "as the run lasts)."):argname("<ms>"),
    cmd:option("--concurrency", "Requests in flight for batches (default: 8). Counts are decimal digits: 0x10, "
      .. "1e3, 8.0 are refused."):argname("<n>"),
    cmd:option("--rate", format("Send no action faster than this, in requests per second, at least %s: one "
      .. "every %d s (lowers the published caps; it never raises them).", tostring(options_module.MIN_RATE),
      floor(1 / options_module.MIN_RATE + 0.5))):argname("<n>"),
    cmd:option("--cap", "This account's cap on the command's action, in requests per second, where its quota "
      .. "is known to differ from the published cap (it may raise it; a lower room the pacing learns from the "
      .. "provider's throttles by itself)."):argname("<n>"),
    cmd:option("--deadline", "End the run this many seconds after it starts: nothing is sent after that, a "
      .. "throttled call ends with its throttle, one never sent with DeadlineExceeded, and the command exits 1 "
      .. "(default: none; a call the provider throttles is sent again, slower, for as long as the run lasts)."
      ):argname("<s>"),
    cmd:option("--redis", "Share rate limits, decisions and ZEGO Sequences with every process using this Redis, "
      .. "redis://[[user]:password@]host[:port][/db][?nodes=N&prefix=P&timeout_ms=MS] (default: "
      .. "$STREAMCTL_REDIS_URL; the password is better "
      .. "kept in that variable than on the command line)."):argname("<url>"),
    cmd:option("--decision-file", "Keep this run's decisions in FILE, which every run on this machine shares: a "
      .. "forbid or resume is decided when first sent, and one that waited past its 7 s window while another run "
      .. "decided on its stream is superseded, not sent (default: $STREAMCTL_DECISION_FILE, else "
      .. "${XDG_STATE_HOME:-~/.local/state}/streamctl/decisions; with --redis, Redis keeps them)."):argname("<file>"),
    cmd:flag("--decisions-shared", "Every run that decides on these streams keeps its decisions where this one does "
      .. "(--redis, else the decision file: all on this machine, as this user): a forbid or resume that waited past "
      .. "its 7 s window is then sent late, renewed, when nobody decided since (default: with --redis; without, it "
      .. "ends Expired, not sent, exit 1)."),
    cmd:flag("--emulator", "Use the local emulator: its HTTPS endpoint, CA and default account, each unless "
      .. "its own flag gives one (--endpoint, --ca-file, the credential flags; --profile with it is refused) "
      .. "(start it with 'streamctl emulator start')."),
    cmd:option("--emulator-dir", "With --emulator: where the emulator runs; its ports and CA are read there "
      .. "(default: $STREAMCTL_EMULATOR_DIR or ${XDG_RUNTIME_DIR:-/tmp}/streamctl-emulator-$USER)."):argname("<dir>")
  )
  local creds = provider.credentials
  cmd:group(creds.title, unpack(add_flags(cmd, creds.flags)))
  cmd:group("Output",
    cmd:option("-o --output", "table (for people, the default) or json (one JSON object per line).")
      :choices { "table", "json" },
    cmd:flag("--dry-run", dry_run_help or DRY_RUN_HELP),
    cmd:flag("--no-progress", "No progress bar (it is drawn on standard error only when that is a terminal)."),
    cmd:flag("--debug", "Write each request as sent and each answer as received on standard error, every "
      .. "secret, signature and token redacted (and no progress bar); each line after its UTC time to the "
      .. "millisecond, an attempt's with its wait for a rate-limit slot; the run's trace id first.")
  )
  -- (the run's trace: TRACEPARENT, else a new one; spans to OTEL_EXPORTER_OTLP_ENDPOINT: streamctl.cli.telemetry)
  cmd:group("Telemetry",
    cmd:option("--metrics-file", "Write this run's metrics to FILE at its end, failed runs too, in Prometheus' text "
      .. "format, for node_exporter's textfile collector (name it *.prom in its directory): replaced whole, mode "
      .. "0644 (default: [defaults] metrics_file, else none)."):argname("<file>"),
    cmd:option("--trace-timeout", "Milliseconds the run's end may wait for its spans to reach the OpenTelemetry "
      .. "collector that OTEL_EXPORTER_OTLP_ENDPOINT names; those not sent by then are dropped and said (default: "
      .. "[defaults] trace_timeout_ms, else 2000)."):argname("<ms>")
  )
end

-- Does a call change something? Its operation says (`effect`,
-- streamctl.pipeline.provider): all but a "read"; an effect not known (an
-- action the provider lacks) changes: the safe side. Never read from a name.
local function changes(effect)
  return effect ~= "read"
end

-- What a method's command guards, from its effect: nil (a look-up: no audit
-- log, no guard), or the guards of `add_safety` (`{}`: the audit log only;
-- a list of forbids or resumes: its blast-radius guard too).
local function guards_of(m)
  if not changes(m.effect) then return nil end
  return m.list and { forbid = m.effect == "forbid", resume = m.effect == "resume" } or {}
end

-- The audit log's and the blast-radius guard's flags: every command that
-- changes something, and (`guards`: { forbid, resume }) those that forbid
-- or resume a list.
local function add_safety(cmd, guards)
  local list = {
    cmd:option("--audit-log", "Append this run's audit line (one JSON object) to FILE, made with mode 0600 "
      .. "(default: $STREAMCTL_AUDIT_LOG, else ${XDG_STATE_HOME:-~/.local/state}/streamctl/audit.jsonl). "
      .. "A log that cannot be opened stops the run before anything is sent."):argname("<file>"),
    cmd:flag("--no-audit-log", "Write no audit line."),
  }
  if guards then
    local over = guards.forbid and guards.resume and "forbids more streams than --max-forbid or resumes more than "
      .. "--max-resume" or guards.forbid and "forbids more streams than --max-forbid"
      or "resumes more streams than --max-resume"
    list[#list + 1] = cmd:flag("--yes", "Confirm a run that " .. over .. "; without it such a run sends nothing.")
  end
  if guards and guards.forbid then
    list[#list + 1] = cmd:option("--max-forbid", format("Forbidding more streams than this in one run needs --yes "
      .. "(decimal digits; default: [defaults] max_forbid, else %d).", audit.MAX_FORBID)):argname("<n>")
  end
  if guards and guards.resume then
    list[#list + 1] = cmd:option("--max-resume", format("Resuming more streams than this in one run needs --yes "
      .. "(decimal digits; default: [defaults] max_resume, else %d): un-banning is a blast radius too.",
      audit.MAX_RESUME))
      :argname("<n>")
  end
  cmd:group("Safety", unpack(list))
end

-- Values the help's examples show, by field.
local EXAMPLE_VALUES = {
  domain_name = "push.example.com", app_name = "live", stream_name = "match-7", stream_id = "room1-host",
  region = "cn-shanghai", task_id = "<TaskId>", source_type = "url",
  source_urls = "https://cdn.example.com/intro.mp4", dst_url = "rtmp://push.example.com/live/intro",
  start_time = "2026-12-01T00:00:00Z", end_time = "2026-12-01T01:00:00Z",
}

local function add_method(parent, provider, m)
  local what = m.list and format("One %s per stream%s, every stream reported.", m.action,
    m.list == "stream_ids" and " (20 IDs a call)" or "") or ("Calls " .. m.action .. ".")
  local cmd = parent:command(command_name(m.name), what)
  cmd:summary(what)
  local example = { "streamctl", provider.name, command_name(m.name) }
  local options = {}
  for _, f in ipairs(m.fields) do
    if not SKIP[f.name] and f.type ~= "function" then
      if f.name == m.list then
        cmd:argument("streams", "Stream " .. provider.list.noun .. " (or --from FILE, or both).")
          :args("*")
        options[#options + 1] = cmd:option("--from", "Read more, one per line, from FILE ('-': standard "
          .. "input); blank lines and lines starting with # are skipped, and so is a UTF-8 byte order mark "
          .. "at the top. One file (given twice: refused); for several, cat them into '-'."):argname("<file>")
        example[#example + 1] = provider.list.example
      else
        local o = cmd:option(flag(f.name), field_help(f)):argname("<" .. (f.type == "strings" and "value" or f.type
          == "time" and "time" or gsub(f.name, "_", "-")) .. ">")
        if f.type == "strings" then o:count("*") end
        if f.enum then o:choices(f.enum) end
        if f.type == "yesno" then o:choices { "yes", "no" } end
        options[#options + 1] = o
        if f.required then
          example[#example + 1] = flag(f.name) .. " " .. (EXAMPLE_VALUES[f.name] or (f.enum and f.enum[1]) or "X")
        end
      end
    end
  end
  if not m.list then
    -- argparse's own message for a stray word ("too many arguments") does not say which.
    cmd:argument("unexpected"):args("*"):hidden(true)
  end
  cmd:group(m.action .. " (required ones marked)", unpack(options))
  add_common(cmd, provider)
  local guards = guards_of(m)
  if guards then add_safety(cmd, (guards.forbid or guards.resume) and guards or nil) end
  cmd:epilog("Example:\n   " .. concat(example, " "))
  cmd:action(function(args) args._method = m end)
end

local function add_call(parent, provider, mod)
  local cmd = parent:command("call", "Calls any action by the service's own names: Key=Value arguments "
    .. "(a key given twice, or written Key[], makes an array), each checked by the rule of the field that sets it; "
    .. "the signature's own parameters and any whose name carries a credential (AccessKeySecret, ServerSecret, "
    .. "NotifyAuthKey, ...: streamctl signs with its own) are refused, their values never shown. The report and the "
    .. "audit log name the streams the parameters name.")
  cmd:argument("action", "The action: any method " .. provider.name .. " publishes, each parameter checked "
    .. "by its published name, type and whether it is required ('streamctl " .. provider.name .. " methods' "
    .. "lists them); streamctl's own rules for " .. concat(mod.actions(), ", ") .. "."):argname("<action>")
  cmd:argument("params", "Key=Value parameters."):args("*")
  add_common(cmd, provider)
  -- (a call of a Forbid* or Resume* action is guarded by the streams its parameters name)
  add_safety(cmd, { forbid = true, resume = true })
  cmd:epilog("Example:\n   streamctl " .. provider.name .. " call " .. provider.call_example)
  cmd:action(function(args) args._call = true end)
end

-- `streamctl NAME methods [PATTERN]`: what `call` can send (streamctl.cli.methods).
local function add_methods(parent, provider)
  local cmd = parent:command("methods", "Lists every method " .. provider.title .. " publishes, as its own "
    .. "metadata says: what a call does (read, forbid, resume or change), its HTTP method and the cap streamctl "
    .. "paces it under, its summary and each parameter's name, type and whether it is required. Needs no "
    .. "credentials and sends nothing.")
  cmd:summary("The methods 'call' can send, with their parameters.")
  cmd:argument("pattern", "Only the methods whose name holds this text (any case)."):args("?")
  cmd:option("-o --output", "table (for people, the default) or json (one JSON object per method and line).")
    :choices { "table", "json" }
  cmd:epilog("Exit status: 0 listed, 1 no method matches, 2 a usage error.\nExample:\n   streamctl "
    .. provider.name .. " methods Stream")
  cmd:action(function(args)
    args._run = function(out, a) return require("streamctl.cli.methods").run(out, a, provider) end
  end)
end

local function add_reconcile(parent, provider)
  local r = provider.reconcile
  local cmd = parent:command("reconcile", r.what)
  cmd:summary("Makes the forbidden streams a desired state: only the difference is sent.")
  local list = {
    cmd:option("--from", "(required) " .. r.from .. " One file, the whole desired state (given twice: refused, "
      .. "never one of them read alone); for several, cat them into '-'."):argname("<file>"),
    cmd:flag("--remove-extra", "Also resume the streams forbidden but not desired (default: report them and "
      .. "leave them: someone else may have forbidden them)."),
    cmd:flag("--allow-empty", "With --remove-extra, take a --from that holds no stream (empty, or comments only) "
      .. "as meant: resume every stream forbidden. Without it such a run is refused (a wrong or cut file)."),
  }
  for _, o in ipairs(add_flags(cmd, r.flags or {})) do list[#list + 1] = o end
  cmd:group("Reconcile", unpack(list))
  add_common(cmd, provider, "Print the difference (the streams to forbid and to resume) and send nothing; "
    .. "exit 1 when there is one.")
  add_safety(cmd, { forbid = true, resume = true })
  cmd:epilog("Exit status: 0 when the provider matches the desired state after the run, 1 when it does not "
    .. "(a change failed or its outcome is unknown; a dry run found a difference), 2 a usage error or a run "
    .. "refused by the guard (nothing sent).\nExample:\n   " .. r.example)
  cmd:action(function(args) args._reconcile = true end)
end

-- The top help's examples: one a provider.
local function examples()
  local out = {}
  for i, t in ipairs(provider_tables.all()) do out[i] = "   " .. t.example end
  return concat(out, "\n")
end

-- `streamctl NAME whoami` (a provider's `whoami`: who its credentials are).
local function add_whoami(p, provider)
  local who = p:command("whoami", "Prints who the credentials are (STS GetCallerIdentity): the account, "
    .. "the identity type and ARN, and where the credentials came from; never a secret.")
  who:summary("Who the credentials are.")
  add_common(who, provider)
  add_flags(who, provider.whoami.flags or {})
  who:epilog("Example:\n   streamctl " .. provider.name .. " whoami")
  who:action(function(args) args._whoami = true end)
end

-- A provider's command of its own (its table's `commands`): its
-- credential flags and --output, its own flags and arguments.
local function add_provider_command(p, provider, c)
  local cmd = p:command(c.name, c.help)
  cmd:summary(c.summary)
  local creds, flags = provider.credentials, {}
  -- (`omit`: credential flags it does not take, such as a secret that ps would show)
  for _, f in ipairs(creds.flags) do
    if not (c.omit and c.omit[f[1]]) then flags[#flags + 1] = f end
  end
  cmd:group(creds.title, unpack(add_flags(cmd, flags)))
  add_flags(cmd, c.flags or {})
  for _, a in ipairs(c.arguments or {}) do
    local arg = cmd:argument(a.name, a.help)
    if a.args then arg:args(a.args) end
  end
  cmd:option("-o --output", "table (for people, the default) or json (one JSON object per line).")
    :choices { "table", "json" }
  cmd:epilog("Example:\n   " .. c.example)
  cmd:action(function(args) args._provider_command = c end)
end

-- Every option of `cmd` and of its subcommands that takes one value (or
-- none) comes once: a second is argparse's own usage error naming it
-- ("option '--from' must be used at most once"), never a silent
-- replacement of the first. One that takes many (`count "*"`) says so in its
-- help and keeps every value. Done over the whole tree, so a new flag is
-- covered without a word of its own.
local function once(cmd)
  for _, o in ipairs(cmd._options) do
    if o._maxcount == 1 then o:overwrite(false) end
  end
  for _, c in ipairs(cmd._commands) do once(c) end
end

--- The argparse parser of the whole command: every provider's subcommands,
-- then `own`, the command's own (streamctl.cli.commands' LIST).
local function new_parser(own)
  local parser = argparse("streamctl", "Control live streams on Alibaba Cloud ApsaraVideo Live and ZEGOCLOUD.")
    :epilog(table.concat({
      "Examples:",
      examples(),
      "   streamctl emulator start",
      "",
      "Exit status: 0 all succeeded, 1 an operation failed or its outcome is unknown, or the output",
      "could not be written (a closed pipe stops sending), 2 a usage or input error (nothing sent),",
      "130 interrupted (after reporting every stream).",
      "Documentation: streamctl man (or man streamctl, from the Debian package), and docs/cli.md in",
      "streamctl's repository. Completion: streamctl completion bash >",
      "~/.local/share/bash-completion/completions/streamctl (the Debian package installs it).",
    }, "\n"))
    :help_max_width(100)
  parser:flag("--version", "Print the version and exit."):action(function()
    -- (and the interpreter: the Lua 5.4 and the LuaJIT build can be installed side by side)
    local jit = rawget(_G, "jit")
    local ok, err = io.stdout:write("streamctl ", version._VERSION, " (", jit and jit.version or _VERSION, ")\n")
    if ok then ok, err = io.stdout:flush() end
    if not ok then io.stderr:write("streamctl: cannot write to standard output (", tostring(err), ")\n") end
    os.exit(ok and 0 or 1)
  end)
  parser:command_target("provider")
  local configurable = {}
  for _, provider in ipairs(provider_tables.all()) do
    local mod = provider.class
    local p = parser:command(provider.name, provider.title .. ": every operation.")
    p:summary(provider.title .. " operations.")
    p:epilog("Example:\n   " .. provider.example)
    p:command_target("operation")
    for _, m in ipairs(mod.methods()) do add_method(p, provider, m) end
    add_call(p, provider, mod)
    add_methods(p, provider)
    if provider.reconcile then add_reconcile(p, provider) end
    if provider.whoami then add_whoami(p, provider) end
    for _, c in ipairs(provider.commands or {}) do add_provider_command(p, provider, c) end
    if provider.configure then configurable[#configurable + 1] = provider end
  end
  -- the command's own subcommands, one entry each (streamctl.cli.commands' LIST)
  for _, c in ipairs(own or {}) do
    local cmd = c.add(parser, { configurable = configurable })
    cmd:action(function(args) args._run = c.run end)
  end
  parser:add_complete_command()
  once(parser)
  return parser
end

--- The man page's COMMANDS section (a help2man include): every command
-- with its flags, made from the same schemas as the parser.
local function man_commands()
  local out = { "[COMMANDS]" }
  local function esc(text) return (gsub(gsub(text, "\\", "\\e"), "%-", "\\-")) end
  for _, provider in ipairs(provider_tables.all()) do
    local mod, name = provider.class, provider.name
    for _, m in ipairs(mod.methods()) do
      local flags = {}
      for _, f in ipairs(m.fields) do
        if not SKIP[f.name] and f.type ~= "function" then
          if f.name == m.list then
            flags[#flags + 1] = provider.list.metavar .. "... | \\-\\-from FILE"
          else
            flags[#flags + 1] = esc(flag(f.name)) .. (f.required and " (required)" or "")
          end
        end
      end
      out[#out + 1] = ".TP"
      out[#out + 1] = ".B streamctl " .. name .. " " .. esc(command_name(m.name))
      out[#out + 1] = esc(m.list and format("One %s per stream.", m.action) or ("Calls " .. m.action .. "."))
        .. " " .. concat(flags, ", ") .. "."
    end
    out[#out + 1] = ".TP"
    out[#out + 1] = ".B streamctl " .. name .. " call"
    out[#out + 1] = "ACTION Key=Value...: any action by the service's own names ("
      .. concat(mod.actions(), ", ") .. ")."
    local r = provider.reconcile
    if r then
      -- (its own flags a run cannot go without, as its help writes them)
      local required = {}
      for _, f in ipairs(r.flags or {}) do
        if (r.required or {})[cli_output.option_of(f[1])] then
          required[#required + 1] = f[1] .. " " .. upper(f[3]:sub(2, -2)) .. " (required), "
        end
      end
      out[#out + 1] = ".TP"
      out[#out + 1] = ".B streamctl " .. name .. " reconcile"
      out[#out + 1] = esc("Forbids the streams of a desired state that are not forbidden, and only those " .. r.man
        .. ". --from FILE (required), " .. concat(required) .. "--remove-extra, --dry-run, --yes, --max-forbid N. "
        .. "See docs/reconcile.md.")
    end
    for _, c in ipairs(provider.commands or {}) do
      out[#out + 1] = ".TP"
      out[#out + 1] = ".B streamctl " .. name .. " " .. esc(c.name)
      out[#out + 1] = esc(c.help)
    end
  end
  out[#out + 1] = ".TP"
  out[#out + 1] = ".B streamctl emulator start|stop|status"
  out[#out + 1] = "Runs streamctl\\-emulator, the local emulator of both providers."
  out[#out + 1] = ".TP"
  out[#out + 1] = ".B streamctl completion bash|zsh|fish"
  out[#out + 1] = "Writes a completion script (the rock also installs the bash one as streamctl.bash)."
  out[#out + 1] = ".PP"
  out[#out + 1] = "Every command also takes the connection, credential and output flags that its \\-\\-help lists."
  out[#out + 1] = "Those that change something write an audit line and take \\-\\-audit\\-log FILE and "
    .. "\\-\\-no\\-audit\\-log; those that forbid a list take \\-\\-yes and \\-\\-max\\-forbid N."
  return concat(out, "\n") .. "\n"
end

M.SKIP = SKIP
M.changes = changes
M.guards_of = guards_of
M.parser = new_parser
M.man_commands = man_commands

return M
