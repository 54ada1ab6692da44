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

local argparse = require "argparse"
local cjson = require "cjson.safe"
local streamctl = require "streamctl"
local audit = require "streamctl.audit"
local credentials = require "streamctl.credentials"
local options_module = require "streamctl.options"
local reconcile = require "streamctl.reconcile"
local emulator = require "streamctl.cli.emulator"
local input = require "streamctl.cli.input"
local validate = require "streamctl.validate"
local version = require "streamctl.version"

local type, pairs, ipairs, tostring, tonumber, setmetatable = type, pairs, ipairs, tostring, tonumber, setmetatable
local format, gsub, match, find, rep, sub = string.format, string.gsub, string.match,
  string.find, string.rep, string.sub
local concat, sort = table.concat, table.sort
local floor, max, min, huge = math.floor, math.max, math.min, math.huge
local unpack = table.unpack or unpack -- luacheck: ignore 143 (5.1's global)

local M = {}

M.EXIT = { ok = 0, failed = 1, usage = 2 }

local PROVIDERS = {
  aliyun = {
    title = "Alibaba Cloud ApsaraVideo Live",
    emulator_port = "aliyun_tls",
    emulator_account = emulator.ALIYUN,
    keys = { "access_key_id", "access_key_secret", "security_token" }, -- the id, the secret, the rest
    example = "streamctl aliyun resume-live-stream --domain-name push.example.com --app-name live "
      .. "--stream-name match-7",
  },
  zego = {
    title = "ZEGOCLOUD Server API v2",
    emulator_port = "zego_tls",
    emulator_account = emulator.ZEGO,
    keys = { "app_id", "server_secret" },
    example = "streamctl zego forbid-rtc-streams --from ids.txt",
  },
}

-- Fields a command line does not take as flags: callbacks, and options the
-- command has globally.
local SKIP = { on_progress = true, concurrency = true, keep_results = true } -- (the command keeps its own)

-- The one stream field of each method, for output: which value names the stream.
local STREAM_FIELDS = { "stream_name", "stream_id", "task_id", "domain_name" }

local function flag(name)
  return "--" .. gsub(name, "_", "-")
end

local function command_name(name)
  return (gsub(name, "_", "-"))
end

-- Output ----------------------------------------------------------------------

local Out = {}
Out.__index = Out

local function new_out(io_out, io_err)
  return setmetatable({ out = io_out or io.stdout, err = io_err or io.stderr }, Out)
end

-- Standard output is checked: the first write or flush that fails (a full
-- disk, a closed pipe: SIGPIPE is ignored once streamctl.signal.catch() ran)
-- is kept as `self.failed`, the system's reason, and nothing more is
-- written. A batch stops sending then (see main's `cancel`), and the
-- command says on standard error what the lost output would have said.
function Out:line(...)
  if self.failed then return nil end
  local ok, err = self.out:write(...)
  if ok then ok, err = self.out:write("\n") end
  if not ok then self.failed = tostring(err) end
  return ok
end

--- Pushes what Lua buffered to standard output: true, or nil once a write failed.
function Out:flush()
  if self.failed then return nil end
  local ok, err = self.out:flush()
  if not ok then self.failed = tostring(err) end
  return ok
end

-- Says on standard error that standard output failed, and what it lost.
function Out:lost(what)
  self:warn(format("cannot write to standard output (%s): %s", self.failed, what))
end

function Out:warn(...)
  self.err:write("streamctl: ", ...)
  self.err:write("\n")
end

-- JSON with "/" as it is (cjson writes "\/").
local function encode(value)
  local text = cjson.encode(value)
  return text and (gsub(text, "\\/", "/")) or "null"
end

-- Reading stream lists --------------------------------------------------------

--- The text of `path` ("-": standard input), a UTF-8 byte order mark at
-- the top taken off: the text and the name to give it in messages, or nil
-- and why (naming `flag_name`, default --from).
function M.read_text(path, stdin, flag_name)
  flag_name = flag_name or "--from"
  local f, name = input.handle(path, stdin, flag_name)
  if not f then return nil, name end
  -- (read whole: a directory, or a read that fails midway, is an error
  -- return here, where f:lines() raises)
  local text, rerr = f:read("*a")
  if f ~= (stdin or io.stdin) then f:close() end
  if not text then return nil, format("%s: cannot read %s: %s", flag_name, name, tostring(rerr)) end
  if sub(text, 1, #credentials.BOM) == credentials.BOM then text = sub(text, #credentials.BOM + 1) end
  return text, name
end

--- Reads stream names from `path` ("-": standard input), whole: one per
-- line, by streamctl.cli.input's rules (which the batches read as they go).
-- @return array, or nil and why (naming --from, the file and the line)
function M.read_list(path, stdin)
  local list, err = input.open(path, stdin, { lookahead = huge })
  return list and list.names, err
end

-- The parser ------------------------------------------------------------------

local function field_help(f)
  local parts = {}
  if f.enum then parts[#parts + 1] = "one of " .. concat(f.enum, ", ") end
  if f.note then parts[#parts + 1] = f.note end
  if f.type == "time" then parts[#parts + 1] = "YYYY-MM-DDThh:mm:ssZ or Unix seconds" end
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
  if #parts > 0 then text = text .. " (" .. concat(parts, "; ") .. ")" end
  return text
end

-- Options every leaf command takes, with their defaults in the help.
local DRY_RUN_HELP = "Print the signed request(s), secrets, signatures and tokens redacted, and send nothing."

local function add_common(cmd, provider, dry_run_help)
  cmd:group("Connection",
    cmd:option("--endpoint", "The API endpoint, https://host[:port] (default: the provider's)."):argname("<url>"),
    cmd:option("--ca-file", "Trust this CA bundle (TLS verification is always on)."):argname("<file>"),
    cmd:option("--proxy", "Send through this proxy, http://host:port, or 'env': the environment's https_proxy "
      .. "and no_proxy (default: none; the environment is ignored). Credential requests use it too; the "
      .. "ECS metadata service never does."):argname("<url|env>"),
    cmd:option("--timeout", "Per attempt, in milliseconds (default: 10000)."):argname("<ms>"),
    cmd:option("--concurrency", "Requests in flight for batches (default: 8)."):argname("<n>"),
    cmd:option("--rate", format("Send no action faster than this, in requests per second, at least %s: one "
      .. "every %d s (lowers the published caps; it never raises them).", tostring(options_module.MIN_RATE),
      floor(1 / options_module.MIN_RATE + 0.5))):argname("<n>"),
    cmd:option("--redis", "Share rate limits and ZEGO Sequences with every process using this Redis, "
      .. "redis://[[user]:password@]host[:port][/db][?nodes=N&prefix=P&timeout_ms=MS] (default: "
      .. "$STREAMCTL_REDIS_URL; the password is better "
      .. "kept in that variable than on the command line)."):argname("<url>"),
    cmd:flag("--emulator", "Use the local emulator: its HTTPS endpoint, CA and default account "
      .. "(start it with 'streamctl emulator start')."),
    cmd:option("--emulator-dir", "With --emulator: where the emulator runs; its ports and CA are read there "
      .. "(default: $STREAMCTL_EMULATOR_DIR or ${XDG_RUNTIME_DIR:-/tmp}/streamctl-emulator-$USER)."):argname("<dir>")
  )
  if provider == "aliyun" then
    cmd:group("Credentials (default: ALIBABA_CLOUD_* variables, then ~/.aliyun/config.json, then "
      .. "~/.alibabacloud/credentials)",
      cmd:option("--access-key-id", "AccessKey ID."):argname("<id>"),
      cmd:option("--access-key-secret", "AccessKey secret (visible to other users in ps: prefer the "
        .. "environment or a profile file)."):argname("<secret>"),
      cmd:option("--security-token", "STS security token."):argname("<token>"),
      cmd:option("--profile", "Profile in the credentials files (default: $ALIBABA_CLOUD_PROFILE or "
        .. "'default')."):argname("<name>"),
      cmd:option("--signature-version", "Request signature: v3 (ACS3-HMAC-SHA256) or v1 (HMAC-SHA1).")
        :choices { "v3", "v1" },
      cmd:option("--account-id", "The account's UID (decimal digits): the rate-limit budget is the "
        .. "account's, shared by all its AccessKeys and STS sessions (default: $ALIBABA_CLOUD_ACCOUNT_ID; "
        .. "without it, a role's ARN, else, with --redis, STS GetCallerIdentity asked once)."):argname("<uid>")
    )
  else
    cmd:group("Credentials (default: ZEGO_APP_ID and ZEGO_SERVER_SECRET, then ~/.config/streamctl/config)",
      cmd:option("--app-id", "AppId."):argname("<id>"),
      cmd:option("--server-secret", "ServerSecret (visible to other users in ps: prefer the environment "
        .. "or the config file)."):argname("<secret>"),
      cmd:option("--profile", "Profile in ~/.config/streamctl/config: section [zego.NAME]."):argname("<name>"),
      cmd:flag("--is-test", "Send IsTest=true (the test environment of projects made before 2021-11-16).")
    )
  end
  cmd:group("Output",
    cmd:option("--output", "table (for people, the default) or json (one JSON object per line).")
      :choices { "table", "json" },
    cmd:flag("--dry-run", dry_run_help or DRY_RUN_HELP),
    cmd:flag("--no-progress", "No progress bar (it is drawn on standard error only when that is a terminal).")
  )
end

-- Does an action change something (everything but the Describe* look-ups)?
local function changes(action)
  return not find(action, "^Describe")
end

-- The audit log's and the blast-radius guard's flags: every command that
-- changes something, and (`forbids`) those that forbid a list.
local function add_safety(cmd, forbids)
  local list = {
    cmd:option("--audit-log", "Append this run's audit line (one JSON object) to FILE, made with mode 0600 "
      .. "(default: $STREAMCTL_AUDIT_LOG, else ${XDG_STATE_HOME:-~/.local/state}/streamctl/audit.jsonl). "
      .. "A log that cannot be opened stops the run before anything is sent."):argname("<file>"),
    cmd:flag("--no-audit-log", "Write no audit line."),
  }
  if forbids then
    list[#list + 1] = cmd:flag("--yes", "Confirm a run that forbids more streams than --max-forbid; without it "
      .. "such a run sends nothing.")
    list[#list + 1] = cmd:option("--max-forbid", format("Forbidding more streams than this in one run needs --yes "
      .. "(default: [defaults] max_forbid, else %d).", audit.MAX_FORBID)):argname("<n>")
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
  local example = { "streamctl", provider, command_name(m.name) }
  local options = {}
  for _, f in ipairs(m.fields) do
    if not SKIP[f.name] and f.type ~= "function" then
      if f.name == m.list then
        cmd:argument("streams", "Stream " .. (provider == "zego" and "IDs" or "names")
          .. " (or --from FILE, or both).")
          :args("*")
        options[#options + 1] = cmd:option("--from", "Read more, one per line, from FILE ('-': standard "
          .. "input); blank lines and lines starting with # are skipped, and so is a UTF-8 byte order mark "
          .. "at the top."):argname("<file>")
        example[#example + 1] = provider == "zego" and "room1-host room2-host" or "match-1 match-2"
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
  if changes(m.action) then add_safety(cmd, m.list ~= nil and find(m.action, "^Forbid") ~= nil) end
  cmd:epilog("Example:\n   " .. concat(example, " "))
  cmd:action(function(args) args._method = m end)
end

local function add_call(parent, provider, mod)
  local cmd = parent:command("call", "Calls any action by the service's own names: Key=Value arguments "
    .. "(a key given twice makes an array).")
  cmd:argument("action", "The action: " .. concat(mod.actions(), ", ") .. "."):argname("<action>")
  cmd:argument("params", "Key=Value parameters."):args("*")
  add_common(cmd, provider)
  add_safety(cmd, false)
  cmd:epilog("Example:\n   streamctl " .. provider .. " call "
    .. (provider == "aliyun" and "DescribeLiveStreamsBlockList DomainName=push.example.com PageSize=100"
        or "DescribeRTCStreamState StreamId=room1-host"))
  cmd:action(function(args) args._call = true end)
end

local RECONCILE = {
  aliyun = {
    what = "Makes the block list hold the streams of a desired state: reads every page of "
      .. "DescribeLiveStreamsBlockList of each domain, forbids the desired streams it lacks, and with "
      .. "--remove-extra resumes the blocked streams not desired (default: reported and left).",
    from = "The desired state: one stream a line, domain/app/stream ('-': standard input; blank lines and "
      .. "lines starting with # skipped), or a JSON array of {domain_name, app_name, stream_name}.",
    example = "streamctl aliyun reconcile --from blocked.txt --dry-run",
  },
  zego = {
    what = "Makes the forbidden streams those of a desired state, as far as --state knows them: ZEGO "
      .. "cannot be asked which streams are forbidden, so the state file holds what this command last "
      .. "applied (a change made elsewhere is not seen).",
    from = "The desired state: one stream ID a line, RTC unless written cdn:ID (rtc:ID also reads as RTC; "
      .. "'-': standard input; blank lines and lines starting with # skipped), or a JSON array of "
      .. "{stream_id, kind} (kind rtc or cdn).",
    example = "streamctl zego reconcile --from forbidden.txt --state ~/.local/state/streamctl/zego-state.json",
  },
}

local function add_reconcile(parent, provider)
  local r = RECONCILE[provider]
  local cmd = parent:command("reconcile", r.what)
  cmd:summary("Makes the forbidden streams a desired state: only the difference is sent.")
  local list = {
    cmd:option("--from", "(required) " .. r.from):argname("<file>"),
    cmd:flag("--remove-extra", "Also resume the streams forbidden but not desired (default: report them and "
      .. "leave them: someone else may have forbidden them)."),
  }
  if provider == "aliyun" then
    list[#list + 1] = cmd:option("--domain-name", "Also read this domain's block list (repeat for more): its "
      .. "blocked streams are extras."):argname("<domain>"):count("*")
    list[#list + 1] = cmd:option("--resume-time", "The forbids last until this time (YYYY-MM-DDThh:mm:ssZ or "
      .. "Unix seconds; default: until resumed)."):argname("<time>")
  else
    list[#list + 1] = cmd:option("--state", "(required) The file holding what this command last applied "
      .. "(JSON, made with mode 0600)."):argname("<file>")
    list[#list + 1] = cmd:option("--cdn-resume-time", "CDN forbids last until this time (at most 30 days "
      .. "ahead; default: a day)."):argname("<time>")
  end
  cmd:group("Reconcile", unpack(list))
  add_common(cmd, provider, "Print the difference (the streams to forbid and to resume) and send nothing; "
    .. "exit 1 when there is one.")
  add_safety(cmd, true)
  cmd:epilog("Exit status: 0 when the provider matches the desired state after the run, 1 when it does not "
    .. "(a change failed or its outcome is unknown; a dry run found a difference), 2 a usage error or a run "
    .. "refused by the guard (nothing sent).\nExample:\n   " .. r.example)
  cmd:action(function(args) args._reconcile = true end)
end

--- The argparse parser of the whole command.
function M.parser()
  local parser = argparse("streamctl", "Control live streams on Alibaba Cloud ApsaraVideo Live and ZEGOCLOUD.")
    :epilog(table.concat({
      "Examples:",
      "   " .. PROVIDERS.aliyun.example,
      "   " .. PROVIDERS.zego.example,
      "   streamctl emulator start",
      "",
      "Exit status: 0 all succeeded, 1 an operation failed or its outcome is unknown, or the output",
      "could not be written (a closed pipe stops sending), 2 a usage or input error (nothing sent),",
      "130 interrupted (after reporting every stream).",
      "Documentation: man streamctl, and docs/cli.md in streamctl's repository.",
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
  for _, provider in ipairs { "aliyun", "zego" } do
    local mod = streamctl[provider]
    local p = parser:command(provider, PROVIDERS[provider].title .. ": every operation.")
    p:summary(PROVIDERS[provider].title .. " operations.")
    p:epilog("Example:\n   " .. PROVIDERS[provider].example)
    p:command_target("operation")
    for _, m in ipairs(mod.methods()) do add_method(p, provider, m) end
    add_call(p, provider, mod)
    add_reconcile(p, provider)
    if provider == "aliyun" then
      local who = p:command("whoami", "Prints who the credentials are (STS GetCallerIdentity): the account, "
        .. "the identity type and ARN, and where the credentials came from; never a secret.")
      who:summary("Who the credentials are.")
      add_common(who, provider)
      who:option("--sts-endpoint", "STS, https://host[:port] (default: $ALIBABA_CLOUD_STS_ENDPOINT, else "
        .. "https://sts.aliyuncs.com; with --emulator, the emulator's)."):argname("<url>")
      who:epilog("Example:\n   streamctl aliyun whoami")
      who:action(function(args) args._whoami = true end)
    end
  end
  local emu = parser:command("emulator", "Start, stop or check the local emulator (runs streamctl-emulator).")
  emu:summary("Start, stop or check the local emulator.")
  emu:argument("what", "start, stop or status."):choices { "start", "stop", "status" }
  emu:option("--dir", "Where it runs (default: $STREAMCTL_EMULATOR_DIR or "
    .. "${XDG_RUNTIME_DIR:-/tmp}/streamctl-emulator-$USER)."):argname("<dir>")
  emu:option("--config", "JSON settings (accounts, rate limits; see docs/emulator.md)."):argname("<file>")
  for _, port in ipairs { "aliyun", "zego", "aliyun_tls", "zego_tls" } do
    emu:option(flag(port .. "_port"), format("Port (default: %d).", emulator.PORTS[port])):argname("<port>")
  end
  emu:option("--imds-port", "Also serve an ECS instance metadata service on 127.0.0.1 (default: none; "
    .. "docs/emulator-credentials.md)."):argname("<port>")
  emu:option("--imds-listen", "The same on another IPv4 address (a test in a network namespace)."):argname(
    "<addr:port>")
  emu:epilog("Example:\n   streamctl emulator start && streamctl aliyun resume-live-stream --emulator "
    .. "--domain-name push.example.com --app-name live --stream-name match-7")
  emu:action(function(args) args._emulator = true end)
  parser:add_complete_command()
  return parser
end

--- The man page's COMMANDS section (a help2man include): every command
-- with its flags, made from the same schemas as the parser.
function M.man_commands()
  local out = { "[COMMANDS]" }
  local function esc(text) return (gsub(gsub(text, "\\", "\\e"), "%-", "\\-")) end
  for _, provider in ipairs { "aliyun", "zego" } do
    local mod = streamctl[provider]
    for _, m in ipairs(mod.methods()) do
      local flags = {}
      for _, f in ipairs(m.fields) do
        if not SKIP[f.name] and f.type ~= "function" then
          if f.name == m.list then
            flags[#flags + 1] = (provider == "zego" and "ID" or "STREAM") .. "... | \\-\\-from FILE"
          else
            flags[#flags + 1] = esc(flag(f.name)) .. (f.required and " (required)" or "")
          end
        end
      end
      out[#out + 1] = ".TP"
      out[#out + 1] = ".B streamctl " .. provider .. " " .. esc(command_name(m.name))
      out[#out + 1] = esc(m.list and format("One %s per stream.", m.action) or ("Calls " .. m.action .. "."))
        .. " " .. concat(flags, ", ") .. "."
    end
    out[#out + 1] = ".TP"
    out[#out + 1] = ".B streamctl " .. provider .. " call"
    out[#out + 1] = "ACTION Key=Value...: any action by the service's own names ("
      .. concat(mod.actions(), ", ") .. ")."
    out[#out + 1] = ".TP"
    out[#out + 1] = ".B streamctl " .. provider .. " reconcile"
    out[#out + 1] = esc("Forbids the streams of a desired state that are not forbidden, and only those "
      .. (provider == "aliyun" and "(the block list is read first)" or "(as the state file knows them)")
      .. ". --from FILE (required), " .. (provider == "zego" and "--state FILE (required), " or "")
      .. "--remove-extra, --dry-run, --yes, --max-forbid N. See docs/reconcile.md.")
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

-- Values and clients ----------------------------------------------------------

-- The fields of method `m` from the parsed arguments, each converted to the
-- field's type where the text is one (otherwise left for the field's check
-- to refuse by name).
-- A list from --from longer than streamctl.cli.input's look-ahead is an
-- iterator, and the list (its count, digest...) the third value.
local function fields_of(m, args, stdin)
  local fields, long = {}, nil
  for _, f in ipairs(m.fields) do
    local v = args[f.name]
    if f.name == m.list then
      local list = {}
      for _, s in ipairs(args.streams or {}) do list[#list + 1] = s end
      if args.from then
        -- (a dry run prints every request: its list is read whole)
        local from, err = input.open(args.from, stdin, { first = list, lookahead = args.dry_run and huge or nil,
          check = function(name) return validate.text_rule(f, name) end })
        if not from then return nil, err end
        list = from.names
        if from.streamed then long = from end
      end
      fields[f.name] = list
    elseif v ~= nil and not SKIP[f.name] then
      if f.type == "strings" then
        if #v == 0 then v = nil end
      elseif f.type == "integer" or f.type == "number" then
        v = tonumber(v) or v
      elseif f.type == "time" and find(v, "^%d+$") then
        v = tonumber(v)
      end
      fields[f.name] = v
    end
  end
  return fields, nil, long
end

-- The number a flag's (or [defaults]') text says: the number, or nil and
-- the rule broken ("a number >= 0.0001"). `least`: the lowest accepted
-- (default: anything above 0).
local function number_text(text, integer, least)
  local n = tonumber(text)
  local ok = n ~= nil and n == n and n ~= huge and not (integer and n ~= floor(n))
  if ok and least then ok = n >= least elseif ok then ok = n > 0 end
  if ok then return n end
  return nil, format("%s %s", integer and "an integer" or "a number", least and ">= " .. tostring(least) or "> 0")
end

-- The client's options from flags, then the emulator, then the environment
-- and the profile files (see streamctl.credentials), then the config's
-- [defaults]. Returns options, or nil and a usage error; and warnings.
local function client_options(provider, args, defaults, where, getenv)
  local o, warnings = {}, {}
  -- The flag, else the [defaults] key, by the same rule; the message names
  -- the one that was given.
  local function num(name, option, integer, least)
    local text, said = args[name], flag(name)
    if text == nil and defaults[option] ~= nil then text, said = defaults[option], where[option] .. ": " .. option end
    if text == nil then return true end
    local v, rule = number_text(text, integer, least)
    if not v then return nil, format("%s must be %s (got '%s')", said, rule, text) end
    o[option] = v
    return true
  end
  local ok, why = num("timeout", "timeout_ms", true)
  if not ok then return nil, why end
  ok, why = num("concurrency", "concurrency", true)
  if not ok then return nil, why end
  ok, why = num("rate", "max_rate", false, options_module.MIN_RATE)
  if not ok then return nil, why end
  o.ca_file = args.ca_file or defaults.ca_file
  o.endpoint = args.endpoint
  o.proxy = args.proxy
  if args.emulator then
    -- the emulator's endpoint and CA both from the directory it runs in: its
    -- ports as it was started there, never the default ones beside its CA
    local dir = args.emulator_dir or emulator.dir(getenv)
    if not o.endpoint then
      local ports, perr = emulator.ports(dir)
      if not ports then
        return nil, format("--emulator: %s; start it with: streamctl emulator start%s", perr,
          args.emulator_dir and (" --dir " .. dir) or "")
      end
      o.endpoint = format("https://127.0.0.1:%d", ports[PROVIDERS[provider].emulator_port])
    end
    -- (its CA too: a [defaults] ca_file is for the real providers; --ca-file alone overrides)
    o.ca_file = args.ca_file or (dir .. "/ca.pem")
  elseif args.emulator_dir then
    return nil, "--emulator-dir goes with --emulator"
  end
  o.redis = args.redis
  o.signature_version = args.signature_version -- (Aliyun's flag)
  o.is_test = args.is_test or nil                -- (ZEGO's flag)
  o.account_id = args.account_id                 -- (Aliyun's flag)
  -- The environment's settings where no flag gave one. A flag is checked by
  -- the client (its message names the flag); a variable here, so that its
  -- message names the variable.
  local rules = { redis = function(v) local _, rule = require("streamctl.store.redis").config(v) return rule end,
                  account_id = streamctl.aliyun.account_id_rule }
  for _, env in ipairs(credentials.settings(provider, { getenv = getenv })) do
    if o[env.option] == nil then
      local rule = rules[env.option](env.value)
      if rule then return nil, "environment variable " .. env.variable .. " " .. rule end
      o[env.option] = env.value
    end
  end
  -- Credentials: the flags, else the emulator's account, else the chain.
  local p = PROVIDERS[provider]
  local id, secret = p.keys[1], p.keys[2]
  local c, source
  if args.profile and (args[id] or args[secret] or args.emulator) then
    -- (two identities named: refused, never one of them picked)
    return nil, format("--profile and %s both name credentials: give one of them",
      args.emulator and "--emulator" or flag(args[id] and id or secret))
  end
  if args[id] or args[secret] then
    if not (args[id] and args[secret]) then return nil, format("%s and %s go together", flag(id), flag(secret)) end
    c, source = {}, "the command line's flags"
    for _, k in ipairs(p.keys) do c[k] = args[k] end
  elseif args.emulator then
    c, source = p.emulator_account, "the emulator's account"
  else
    local err, w
    c, err, w, source = credentials[provider] { profile = args.profile, getenv = getenv, ca_file = o.ca_file,
                                                proxy = o.proxy }
    for _, x in ipairs(w) do warnings[#warnings + 1] = x end
    if not c then return nil, err, warnings end
  end
  for k, v in pairs(c) do o[k] = v end
  return o, nil, warnings, source
end

-- `streamctl aliyun whoami`: who the credentials are, and where they came from.
local function run_whoami(out, opts, args, output, source, getenv)
  local sts = args.sts_endpoint or (args.emulator and opts.endpoint) or nil
  local who, err = credentials.identity(opts, { sts_endpoint = sts, ca_file = opts.ca_file, proxy = opts.proxy,
                                                getenv = getenv })
  if not who then
    out:warn((gsub(tostring(err), "^streamctl: ", "")))
    return M.EXIT.failed
  end
  if output == "json" then
    local parts = {}
    for _, k in ipairs { "account_id", "identity_type", "arn", "principal_id" } do
      if who[k] ~= nil then parts[#parts + 1] = '"' .. k .. '":' .. encode(who[k]) end
    end
    parts[#parts + 1] = '"source":' .. encode(source)
    out:line("{" .. concat(parts, ",") .. "}")
  else
    for _, row in ipairs { { "account", who.account_id }, { "identity", who.identity_type }, { "arn", who.arn },
                           { "source", source } } do
      out:line(format("%-9s %s", row[1], tostring(row[2])))
    end
  end
  return M.EXIT.ok
end

-- A validation message with fields named as the flags that set them.
local function as_flags(message, m)
  message = gsub(message, "field '([%w_]+)'", function(name)
    if m and name == m.list then return "the stream list (arguments or --from)" end
    return "'" .. flag(name) .. "'"
  end)
  message = gsub(message, "option '([%w_]+)'", function(name)
    local flags = { timeout_ms = "--timeout", max_rate = "--rate", concurrency = "--concurrency",
                    ca_file = "--ca-file", endpoint = "--endpoint", app_id = "--app-id" }
    return "'" .. (flags[name] or flag(name)) .. "'"
  end)
  return message
end

-- Reports ---------------------------------------------------------------------

local function stream_of(m, fields)
  for _, name in ipairs(STREAM_FIELDS) do
    if fields[name] ~= nil then
      if name == "stream_name" then
        return format("%s/%s/%s", fields.domain_name or "", fields.app_name or "", fields.stream_name)
      end
      return tostring(fields[name])
    end
  end
  return m and m.action or ""
end

-- One result as the JSON lines carry it.
local function record(stream, ok, attempts, result, err, unknown)
  return {
    stream = stream, ok = ok, attempts = attempts,
    request_id = (result and result.RequestId) or (err and err.request_id) or nil,
    code = err and err.code or nil, message = err and err.message or nil,
    outcome_unknown = unknown or nil,
  }
end

local RECORD_KEYS = { "stream", "ok", "attempts", "request_id", "code", "message", "outcome_unknown", "result" }

-- A record as one line of JSON, its keys always in the same order.
local function record_json(r)
  local parts = {}
  for _, k in ipairs(RECORD_KEYS) do
    if r[k] ~= nil then parts[#parts + 1] = '"' .. k .. '":' .. encode(r[k]) end
  end
  return "{" .. concat(parts, ",") .. "}"
end

-- Does a result say more than its RequestId (a describe's answer)?
local function has_content(result)
  for k in pairs(result) do
    if k ~= "RequestId" then return true end
  end
  return false
end

local function status_word(r)
  if r.ok then return "ok" end
  if r.code == "Interrupted" then return "NOT SENT" end
  if r.outcome_unknown then return "UNKNOWN" end
  return "FAILED"
end

-- The table people read: one row per stream, failures with their message.
local function table_header(out, width)
  out:line(format("%-" .. width .. "s  %-8s  %8s  %s", "STREAM", "RESULT", "ATTEMPTS", "REQUEST ID / ERROR"))
end

local function table_row(out, width, r)
  local detail = r.ok and (r.request_id or "") or (tostring(r.code) .. ": " .. tostring(r.message or ""))
  return out:line(format("%-" .. width .. "s  %-8s  %8d  %s", r.stream, status_word(r), r.attempts or 0, detail))
end

local function print_table(out, rows)
  local width = #"STREAM"
  for _, r in ipairs(rows) do width = max(width, #r.stream) end
  width = min(width, 60)
  table_header(out, width)
  for _, r in ipairs(rows) do table_row(out, width, r) end
end

-- A progress bar on standard error: done/total, rate, ETA, failures so
-- far; done and rate where the total is not known (a list from a pipe).
local function progress_bar(err_stream, clock)
  local started, last = clock(), -1
  local failed = 0
  return function(done, total, entry, final)
    if entry and not entry.ok then failed = failed + 1 end
    local now = clock()
    if not final and ((total and done >= total) or now - last < 0.1) then return end
    last = now
    local elapsed = now - started
    local rate = elapsed > 0 and done / elapsed or 0
    if not total then
      err_stream:write(format("\r%d done  %.1f/s  failed %d ", done, rate, failed))
      if final then err_stream:write("\n") end
      err_stream:flush()
      return
    end
    local eta = rate > 0 and (total - done) / rate or 0
    local cells = 24
    local filled = total > 0 and floor(cells * done / total) or cells
    err_stream:write(format("\r[%s%s] %d/%d  %.1f/s  ETA %ds  failed %d ", rep("#", filled), rep(".", cells - filled),
      done, total, rate, floor(eta + 0.5), failed))
    if final then err_stream:write("\n") end
    err_stream:flush()
  end
end

-- Running ---------------------------------------------------------------------

local function is_tty(fd)
  local ok = os.execute("[ -t " .. fd .. " ]")
  return ok == true or ok == 0
end

-- How to get the emulator when it is not installed (it is a rock of its own).
local NO_EMULATOR = table.concat({
  "streamctl: the emulator is not installed: it is the streamctl-emulator rock. From a clone of streamctl:",
  "  apt-get install nginx libnginx-mod-http-lua lua-resty-core lua-nginx-string lua-cjson",
  "  luarocks --lua-version=5.4 make --deps-mode=none rockspecs/streamctl-emulator-scm-1.rockspec",
  "(docs/emulator.md)",
}, "\n")

-- The streamctl-emulator to run, as shell words: the repository's script
-- beside this one (run by the interpreter running this command), the one in
-- this command's luarocks tree or on PATH (luarocks' wrapper, run as it is);
-- or nil.
local function emulator_command(q)
  local script = arg and arg[0] or ""
  local dir = match(script, "^(.*)/[^/]*$")
  if dir and not find(script, "/lib/luarocks/rocks%-") then
    local f = io.open(dir .. "/streamctl-emulator", "rb")
    if f then
      f:close()
      local i = -1 -- (the interpreter is the lowest argument: lua5.4 [-e ...] script)
      while arg[i - 1] do i = i - 1 end
      return q(arg[i] or "lua") .. " " .. q(dir .. "/streamctl-emulator")
    end
  end
  -- installed by luarocks: TREE/lib/luarocks/rocks-V/streamctl/VERSION/bin/streamctl
  local tree = match(script, "^(.*)/lib/luarocks/rocks%-[^/]+/[^/]+/[^/]+/bin/[^/]+$")
  local wrapper = tree and tree .. "/bin/streamctl-emulator"
  local f = wrapper and io.open(wrapper, "rb")
  if f then
    f:close()
    return q(wrapper)
  end
  local ok = os.execute("command -v streamctl-emulator >/dev/null 2>&1")
  if ok == true or ok == 0 then return "streamctl-emulator" end
  return nil
end

-- Runs streamctl-emulator with the subcommand's arguments; returns its exit
-- status (1, saying how to install it, when it is not installed).
local function run_emulator(args)
  local function q(w) return "'" .. gsub(w, "'", "'\\''") .. "'" end
  local command = emulator_command(q)
  if not command then
    io.stderr:write(NO_EMULATOR, "\n")
    return 1
  end
  local words = { command, args.what }
  for _, name in ipairs { "dir", "config", "aliyun_port", "zego_port", "aliyun_tls_port", "zego_tls_port",
                          "imds_port", "imds_listen" } do
    if args[name] then words[#words + 1] = flag(name) .. " " .. q(args[name]) end
  end
  local a, _, code = os.execute(concat(words, " "))
  if type(a) == "number" then return a > 255 and floor(a / 256) or a end
  return a and 0 or (code or 1)
end

-- Was `err` found here, before anything was sent (a usage error), rather
-- than answered by the provider (which can say InvalidParameter too)?
local function is_usage_error(err)
  return err.code == "InvalidParameter" and err.http_status == nil
end

-- Parses `Key=Value` arguments into service parameters (a repeated key: an array).
local function call_params(list)
  local params = {}
  for _, kv in ipairs(list or {}) do
    local k, v = match(kv, "^([^=]+)=(.*)$")
    if not k then return nil, format("parameter '%s' must be Key=Value", kv) end
    if params[k] == nil then
      params[k] = v
    elseif type(params[k]) == "table" then
      params[k][#params[k] + 1] = v
    else
      params[k] = { params[k], v }
    end
  end
  return params
end

-- --dry-run: prints the requests, redacted; sends nothing.
local function dry_run(out, client, m, fields, args, output)
  local requests, derr
  if m then
    requests, derr = client:dry_run(m.name, fields)
  else
    local params, perr = call_params(args.params)
    if not params then out:warn(perr) return M.EXIT.usage end
    local req
    req, derr = client:prepare(args.action, params)
    requests = req and { client:redact(req) }
  end
  if not requests then out:warn(as_flags(derr.message, m)) return M.EXIT.usage end
  for _, req in ipairs(requests) do
    if output == "json" then
      out:line(encode { method = req.method, url = req.url, headers = req.headers, body = req.body })
    else
      out:line(req.method, " ", req.url)
      local names = {}
      for k in pairs(req.headers) do names[#names + 1] = k end
      sort(names)
      for _, k in ipairs(names) do out:line(k, ": ", req.headers[k]) end
      if req.body ~= "" then out:line("") out:line(req.body) end
      out:line("")
    end
  end
  if not out:flush() then
    out:lost("the requests above are incomplete (nothing was sent)")
    return M.EXIT.failed
  end
  return M.EXIT.ok
end

-- A batch method: every stream reported (JSON lines as each finishes, or
-- the table and a summary at the end), with the progress bar on a terminal.
local function run_batch(out, client, m, fields, args, output)
  local draw = (not args.no_progress and is_tty(2)) and progress_bar(out.err, require("streamctl.core").monotonic)
  fields.on_progress = draw or nil
  if output == "json" then
    -- JSON lines as each stream finishes: a killed run has written what it did.
    fields.on_progress = function(done, total, entry)
      -- (once this fails, main's `cancel` stops the run: nothing more is sent)
      if out:line(record_json(record(entry.stream, entry.ok, entry.attempts, entry.result, entry.error,
        entry.outcome_unknown))) then
        out:flush()
      end
      if draw then draw(done, total, entry) end
    end
  end
  local report, err = client[m.name](client, fields)
  if not report then
    out:warn(as_flags(tostring(err.message), m))
    return is_usage_error(err) and M.EXIT.usage or M.EXIT.failed
  end
  if draw then draw(report.total, report.total, nil, true) end
  local rows, status, not_sent = {}, M.EXIT.ok, 0
  for _, r in ipairs(report.results) do
    rows[#rows + 1] = record(r.stream, r.ok, r.attempts, r.result, r.error, r.outcome_unknown)
    if not r.ok then status = M.EXIT.failed end
    if r.error and r.error.code == "Interrupted" and not r.outcome_unknown then not_sent = not_sent + 1 end
  end
  local summary = format("%d streams: %d succeeded, %d failed%s, %d unknown; %d calls, %.2f s%s", report.total,
    report.succeeded, report.failed, not_sent > 0 and format(" (%d of them not sent)", not_sent) or "",
    report.unknown, report.calls, report.elapsed,
    report.duplicates > 0 and format(" (%d duplicates dropped)", report.duplicates) or "")
  if output == "table" then
    print_table(out, rows)
    out:line(summary)
  end
  if not out:flush() then
    if not_sent > 0 then
      -- The run stopped early (the output closed, a `| head`; or a signal).
      out:lost(format("stopped sending: %d of %d streams done (%d succeeded, %d failed, %d unknown), %d not sent",
        report.total - not_sent, report.total, report.succeeded, report.failed - not_sent, report.unknown, not_sent))
    else
      out:lost("the report is incomplete; " .. summary)
    end
    return M.EXIT.failed, rows, report.calls, report.planned
  end
  return status, rows, report.calls, report.planned
end

-- A row (a record of the output) as the audit line's stream entry.
local function audit_stream(r, action)
  local outcome = r.ok and "ok" or r.outcome_unknown and "unknown"
    or (r.code == "Interrupted" and "not_sent") or "failed"
  return { stream = r.stream, action = r.action or action, outcome = outcome, code = (not r.ok) and r.code or nil,
           request_id = r.request_id }
end

-- A batch whose list is read as it goes (streamctl.cli.input): each row
-- (or JSON line) written as its stream finishes and handed to `finished`
-- (the audit log's), nothing per stream kept, the summary at the end.
-- Returns the exit status, the counts per outcome, the calls sent and
-- planned.
local function run_long(out, client, m, fields, args, output, long, finished)
  local monotonic = require("streamctl.core").monotonic
  local draw = (not args.no_progress and is_tty(2)) and progress_bar(out.err, monotonic)
  local width = min(max(#"STREAM", long.width), 60)
  local counts = { ok = 0, failed = 0, unknown = 0, not_sent = 0 }
  local flushed, headed = monotonic(), output ~= "table"
  local function head() -- (the table's header with its first row, or its summary)
    if not headed then table_header(out, width) headed = true end
  end
  fields.keep_results = false
  fields.on_result = function(entry)
    local r = record(entry.stream, entry.ok, entry.attempts, entry.result, entry.error, entry.outcome_unknown)
    head()
    if output == "json" then out:line(record_json(r)) else table_row(out, width, r) end
    -- (written as they finish, pushed out ten times a second: a killed run
    -- has shown nearly all it did, and its audit log all of it)
    local now = monotonic()
    if now - flushed >= 0.1 then
      out:flush()
      flushed = now
    end
    local a = audit_stream(r, m.action)
    counts[a.outcome] = counts[a.outcome] + 1
    finished(r)
  end
  fields.on_progress = draw and function(done, total, entry) draw(done, long.count or total, entry) end or nil
  -- Each repeat said (its fingerprint was seen: see streamctl.core.fingerprint_set's
  -- collision rule, which makes a false repeat possible, if unlikely, and never silent).
  fields.on_duplicate = function(name)
    out:warn(format("%s: '%s' was read before: dropped (it is sent once)", long.line and format("%s:%d",
      long.name, long.line) or "the command line", name))
  end
  local report, err = client[m.name](client, fields)
  if not report then
    -- (refused before anything was sent, a field by its rule: the audit outcome says none was sent)
    out:warn(as_flags(tostring(err.message), m))
    counts.not_sent = long.count or long.count_at_least
    return is_usage_error(err) and M.EXIT.usage or M.EXIT.failed, counts, 0, 0
  end
  if draw then draw(report.total, long.count or report.total, nil, true) end
  local unread = report.input_left and (long.count and format("%d", long.count - report.total) or "the rest")
  local summary = format("%d streams: %d succeeded, %d failed%s, %d unknown; %d calls, %.2f s%s%s", report.total,
    report.succeeded, report.failed, counts.not_sent > 0 and format(" (%d of them not sent)", counts.not_sent) or "",
    report.unknown, report.calls, report.elapsed,
    report.duplicates > 0 and format(" (%d duplicates dropped)", report.duplicates) or "",
    unread and format("; %s of the list not read (not sent)", unread) or "")
  local status = (report.failed > 0 or report.unknown > 0 or unread or long.error) and M.EXIT.failed or M.EXIT.ok
  if output == "table" then
    head()
    out:line(summary)
  end
  if long.error then out:warn(long.error) end
  if report.progress_error then out:warn("the report could not be written as it went: ", report.progress_error) end
  if not out:flush() then
    out:lost(format("stopped sending: %s", summary))
    return M.EXIT.failed, counts, report.calls, report.planned
  end
  return status, counts, report.calls, report.planned
end

-- A named method or `call`: one row (and a describe's answer), or one JSON line with the result.
local function run_call(out, client, m, fields, args, output, attempts)
  local result, err, stream
  if m then
    stream = stream_of(m, fields)
    result, err = client[m.name](client, fields)
  else
    local params, perr = call_params(args.params)
    if not params then out:warn(perr) return M.EXIT.usage end
    stream = args.action
    result, err = client:call(args.action, params)
  end
  if not result and is_usage_error(err) then
    out:warn(as_flags(tostring(err.message), m))
    return M.EXIT.usage
  end
  local r = record(stream, result ~= nil, attempts(), result, err, err and err.outcome_unknown)
  if output == "json" then
    r.result = result
    out:line(record_json(r))
  else
    print_table(out, { r })
    if result and has_content(result) then out:line(encode(result)) end
  end
  if not out:flush() then
    out:lost(format("the report is incomplete; %s %s", stream,
      r.ok and "succeeded" or r.outcome_unknown and "has an unknown outcome" or "failed"))
    return M.EXIT.failed, { r }
  end
  return r.ok and M.EXIT.ok or M.EXIT.failed, { r }
end

-- The audit log and the guard --------------------------------------------------

-- Where this run's audit line goes: --audit-log, else $STREAMCTL_AUDIT_LOG,
-- else $XDG_STATE_HOME (an absolute path) or ~/.local/state, under
-- streamctl/audit.jsonl; nil with --no-audit-log, or without HOME.
local function audit_path(args, getenv)
  if args.no_audit_log then return nil end
  if args.audit_log then return args.audit_log end
  local v = getenv("STREAMCTL_AUDIT_LOG")
  if v and v ~= "" then return v end
  local state = getenv("XDG_STATE_HOME")
  if state and sub(state, 1, 1) == "/" then return state .. "/streamctl/audit.jsonl" end
  local home = getenv("HOME")
  if home and home ~= "" then return home .. "/.local/state/streamctl/audit.jsonl" end
  return nil
end

-- The guard's limit: --max-forbid, else [defaults] max_forbid, else the
-- library's; or nil and a usage error naming the one given.
local function max_forbid(args, defaults, where)
  local text, said = args.max_forbid, "--max-forbid"
  if text == nil and defaults.max_forbid ~= nil then
    text, said = defaults.max_forbid, where.max_forbid .. ": max_forbid"
  end
  if text == nil then return audit.MAX_FORBID end
  local n, rule = number_text(text, true, 0)
  if not n then return nil, format("%s must be %s (got '%s')", said, rule, text) end
  return n
end

-- The run's outcome in a word, from its audit streams.
local function overall(streams)
  local worst = "ok"
  for _, s in ipairs(streams) do
    if s.outcome == "failed" or s.outcome == "not_sent" then return "failed" end
    if s.outcome == "unknown" then worst = "unknown" end
  end
  return worst
end

-- The refusal of a run that would forbid more than the guard allows.
local function refuse(out, decision, long)
  if long and not long.count then
    out:warn(format("refused: %s is read as it goes and holds more than %d names, so how many this run would "
      .. "forbid is not known before sending; nothing was sent. Pass --yes to send them all, or give the list as "
      .. "a file (--from FILE is counted first).", long.name, input.LOOKAHEAD))
    return M.EXIT.usage
  end
  out:warn(format("refused: this run would forbid %d streams, more than --max-forbid (%d); nothing was sent. "
    .. "Pass --yes to send them (or a larger --max-forbid).", decision.count, decision.max_forbid))
  return M.EXIT.usage
end

-- Reconcile -------------------------------------------------------------------

local CHANGE = { ForbidLiveStream = "forbid", ForbidRTCStreams = "forbid", ForbidCDNLiveStream = "forbid",
                 ResumeLiveStream = "resume", ResumeRTCStreams = "resume", ResumeCDNLiveStream = "resume" }

local function reconcile_row(e)
  local r = record(e.stream, e.ok, e.attempts, nil, e.error, e.outcome_unknown)
  r.request_id = e.request_id or r.request_id
  r.change, r.action = CHANGE[e.action], e.action
  return r
end

local RECONCILE_KEYS = { "stream", "change", "ok", "attempts", "request_id", "code", "message", "outcome_unknown",
                         "dry_run", "left" }

local function reconcile_json(r)
  local parts = {}
  for _, k in ipairs(RECONCILE_KEYS) do
    if r[k] ~= nil then parts[#parts + 1] = '"' .. k .. '":' .. encode(r[k]) end
  end
  return "{" .. concat(parts, ",") .. "}"
end

-- The report as the table (or the last JSON lines): what was or would be
-- changed, the extras left, and a summary.
local function print_reconcile(out, report, rows, output, remove_extra)
  local dry = report.dry_run
  local shown = {}
  if dry then
    for _, key in ipairs(report.found.missing) do
      shown[#shown + 1] = { stream = key, change = "forbid", dry_run = true }
    end
  else
    for _, r in ipairs(rows) do shown[#shown + 1] = r end
  end
  for _, key in ipairs(report.found.extra) do
    if dry and remove_extra then
      shown[#shown + 1] = { stream = key, change = "resume", dry_run = true }
    elseif not remove_extra then
      shown[#shown + 1] = { stream = key, change = "extra", left = true }
    end
  end
  local summary = format("%d desired, %d forbidden before: %d missing, %d extra; %d fixed, %d failed, %d unknown; "
    .. "%d calls. %s", report.desired, report.blocked, #report.found.missing, #report.found.extra, report.fixed,
    #report.failed, #report.unknown, report.calls, report.in_sync and "In sync."
      or dry and "Not in sync (dry run: nothing sent)." or "NOT in sync.")
  if output == "json" then
    for _, r in ipairs(shown) do
      if r.dry_run or r.left then out:line(reconcile_json(r)) end
    end
    out:line(encode { summary = { desired = report.desired, blocked = report.blocked,
      missing = #report.found.missing, extra = #report.found.extra, fixed = report.fixed,
      failed = #report.failed, unknown = #report.unknown, calls = report.calls, in_sync = report.in_sync,
      dry_run = dry } })
    return
  end
  local width = #"STREAM"
  for _, r in ipairs(shown) do width = min(max(width, #r.stream), 60) end
  out:line(format("%-6s  %-" .. width .. "s  %-8s  %s", "CHANGE", "STREAM", "RESULT", "REQUEST ID / ERROR"))
  for _, r in ipairs(shown) do
    local result, detail
    if r.dry_run then
      result, detail = "dry run", "not sent"
    elseif r.left then
      result, detail = "left", "not desired: --remove-extra resumes it"
    else
      result = status_word(r)
      detail = r.ok and (r.request_id or "") or (tostring(r.code) .. ": " .. tostring(r.message or ""))
    end
    out:line(format("%-6s  %-" .. width .. "s  %-8s  %s", r.change, r.stream, result, detail))
  end
  out:line(summary)
  if report.state_error then out:line("the state was not saved: " .. tostring(report.state_error.message)) end
end

-- `streamctl PROVIDER reconcile`: returns the exit status and what the
-- audit line needs ({ streams, actions, outcome, guard, note }).
-- The action that changes `key` (a reconcile's stream) one way or the other.
local function reconcile_action(provider, key, forbid)
  if provider == "aliyun" then return forbid and "ForbidLiveStream" or "ResumeLiveStream" end
  if find(key, "^cdn:") then return forbid and "ForbidCDNLiveStream" or "ResumeCDNLiveStream" end
  return forbid and "ForbidRTCStreams" or "ResumeRTCStreams"
end

-- The options of a reconcile run from the command line: the guard's limit,
-- the provider's scope, the progress shown, and the difference found
-- handed to `intend` (the run's intent) before any of it is sent.
local function reconcile_options(out, provider, args, output, limit, intend)
  local draw = (not args.no_progress and not args.dry_run and is_tty(2))
    and progress_bar(out.err, require("streamctl.core").monotonic)
  local opts = { remove_extra = args.remove_extra or nil, dry_run = args.dry_run or nil, max_forbid = limit,
                 confirm = args.yes or nil }
  local function time_of(v) return v and (find(v, "^%d+$") and tonumber(v) or v) or nil end
  if provider == "aliyun" then
    opts.domains = (args.domain_name and #args.domain_name > 0) and args.domain_name or nil
    opts.resume_time = time_of(args.resume_time)
  else
    opts.state = reconcile.file_store(args.state)
    opts.cdn_resume_time = time_of(args.cdn_resume_time)
  end
  opts.on_progress = function(done, total, entry)
    if output == "json" and out:line(reconcile_json(reconcile_row(entry))) then out:flush() end
    if draw then draw(done, total, entry) end
  end
  -- the difference found, as the run's intent, before any of it is sent
  opts.before_send = function(plan)
    local streams, actions, seen = {}, {}, {}
    for _, part in ipairs { { plan.missing, true }, { plan.extra, false } } do
      for _, key in ipairs(part[1]) do
        local action = reconcile_action(provider, key, part[2])
        streams[#streams + 1] = { stream = key, action = action }
        if not seen[action] then seen[action] = true; actions[#actions + 1] = action end
      end
    end
    return intend { streams = streams, actions = actions, guard = plan.guard,
                    from = args.from == "-" and "standard input" or args.from }
  end
  return opts, draw
end

-- A reconcile that sent nothing (`err`): the exit status said, and for a
-- guard's refusal the streams it would have forbidden, for the audit.
local function reconcile_refused(out, provider, err)
  if err.code == "AuditUnavailable" then return M.EXIT.usage end -- (said by intend)
  if err.code == "TooManyStreams" then
    local streams = {}
    for _, key in ipairs(err.report.found.missing) do
      streams[#streams + 1] = { stream = key, outcome = "not_sent", action = reconcile_action(provider, key, true) }
    end
    return refuse(out, err.guard), { streams = streams, outcome = "refused", guard = err.guard }
  end
  local message = gsub(as_flags(tostring(err.message)), "option '([%w_]+)'", function(o) return "'" .. flag(o)
    .. "'" end)
  if err.code == "InvalidParameter" and not err.http_status then
    out:warn(message)
    return M.EXIT.usage
  end
  local said = gsub(tostring(err), "^streamctl: ", "")
  if err.code == "StateUnavailable" or err.code == "InvalidState" then
    out:warn(said) -- (the message names the state, says why, and that nothing was sent)
  else
    out:warn(format("cannot read the provider's view, nothing was sent: %s", said))
  end
  return M.EXIT.failed
end

local function run_reconcile(out, client, provider, args, output, limit, stdin, intend)
  if not args.from then
    out:warn("--from FILE is required: the desired state (see --help)")
    return M.EXIT.usage
  end
  if provider == "zego" and not args.state then
    out:warn("--state FILE is required: ZEGO cannot be asked which streams are forbidden, so the file keeps "
      .. "what this command applied (see --help)")
    return M.EXIT.usage
  end
  local text, name = M.read_text(args.from, stdin)
  if not text then out:warn(name) return M.EXIT.usage end
  local desired, perr = reconcile.parse(provider, text, "--from " .. name)
  if not desired then out:warn(perr) return M.EXIT.usage end
  local opts, draw = reconcile_options(out, provider, args, output, limit, intend)
  local report, err = reconcile[provider](client, desired, opts)
  if not report then return reconcile_refused(out, provider, err) end
  if draw and #report.results > 0 then draw(#report.results, #report.results, nil, true) end
  local rows = {}
  for i, e in ipairs(report.results) do rows[i] = reconcile_row(e) end
  print_reconcile(out, report, rows, output, args.remove_extra)
  -- (what was sent is audited even when the report cannot be printed)
  local streams, actions, seen = {}, {}, {}
  for i, r in ipairs(rows) do
    streams[i] = audit_stream(r)
    if not seen[r.action] then seen[r.action] = true; actions[#actions + 1] = r.action end
  end
  local flushed = out:flush()
  if not flushed then
    out:lost(format("the report is incomplete; %d fixed, %d failed, %d unknown", report.fixed, #report.failed,
      #report.unknown))
  end
  return (report.in_sync and flushed) and M.EXIT.ok or M.EXIT.failed, {
    streams = streams, actions = actions, guard = report.guard, dry_run = report.dry_run, calls = report.calls,
    outcome = report.in_sync and "ok" or (overall(streams) ~= "ok" and overall(streams) or "failed"),
    note = report.state_error and tostring(report.state_error.message) or nil,
  }
end

-- Before anything is sent: the guard's limit, the audit log (opened now, so
-- that one that cannot be written stops the run), and the guard on a list of
-- forbids. Returns { limit, write, prefix, status (set when refused), info };
-- or nil and the exit status.
local function safety(out, args, m, fields, long, defaults, where, getenv)
  local action = m and m.action or args.action
  local forbids_list = m and m.list and find(m.action, "^Forbid") ~= nil
  local safe = { action = action }
  if args._reconcile or forbids_list then
    local limit, lerr = max_forbid(args, defaults, where)
    if not limit then out:warn(lerr) return nil, M.EXIT.usage end
    safe.limit = limit
  end
  if args.audit_log and args.no_audit_log then
    out:warn("--audit-log and --no-audit-log: one or the other")
    return nil, M.EXIT.usage
  end
  if not args.dry_run and (args._reconcile or (action and changes(action))) then
    local path = audit_path(args, getenv)
    if path then
      local w, why = audit.writer(path, { warn = function(text) out:warn("warning: ", text) end })
      if not w then
        out:warn(format("the audit log cannot be written (%s): nothing was sent (--audit-log FILE for another "
          .. "file, or --no-audit-log)", why))
        return nil, M.EXIT.usage
      end
      if why then out:warn("warning: ", why) end
      safe.write, safe.getenv = w, getenv
    end
  end
  -- Aliyun batches name streams by name alone: the audit line names them whole.
  safe.prefix = (m and m.list == "stream_names") and format("%s/%s/", tostring(fields.domain_name),
    tostring(fields.app_name)) or ""
  if forbids_list and not args.dry_run and long then
    -- A list read as it goes: counted before sending (a file), or not
    -- known (a pipe: refused unless --yes).
    local n = long.count or long.count_at_least
    local ok, decision = audit.guard(n, { max_forbid = safe.limit, confirm = args.yes or nil })
    if ok and not long.count and not args.yes then
      ok, decision = false, { guard = { allowed = false, confirmed = false, count = n, max_forbid = safe.limit } }
    end
    safe.info = { guard = ok and decision or decision.guard }
    if not ok then
      safe.status, safe.info.outcome, safe.info.streams = refuse(out, safe.info.guard, long), "refused", {}
    end
  elseif forbids_list and not args.dry_run then
    local n, seen = 0, {}
    for _, name in ipairs(fields[m.list]) do
      if not seen[name] then seen[name] = true; n = n + 1 end
    end
    local ok, decision = audit.guard(n, { max_forbid = safe.limit, confirm = args.yes or nil })
    safe.info = { guard = ok and decision or decision.guard }
    if not ok then
      safe.status, safe.info.outcome, safe.info.streams = refuse(out, safe.info.guard), "refused", {}
      for name in pairs(seen) do
        safe.info.streams[#safe.info.streams + 1] = { stream = safe.prefix .. name, action = m.action,
                                                      outcome = "not_sent" }
      end
      sort(safe.info.streams, function(a, b) return a.stream < b.stream end)
    end
  end
  return safe
end

-- The fields every record of this run carries: who, the credential, the command.
local function audit_who(safe, run)
  local who, opts, m = audit.who(safe.getenv), run.opts, run.m
  return {
    run = safe.run_id, user = who.user, host = who.host, provider = run.provider,
    credential = opts.access_key_id or (opts.app_id and tostring(opts.app_id)) or nil,
    credential_source = run.source, command = run.args._reconcile and "reconcile"
      or m and command_name(m.name) or "call",
  }
end

-- Writes the run's intent, on the disk before its first request leaves:
-- `plan` = { streams = { { stream, action } }, actions, guard, from }. True,
-- or false after saying that nothing was sent (the caller exits 2).
local function audit_intent(out, safe, run, plan)
  if not safe.write then return true end
  local fields = audit_who(safe, run)
  fields.actions, fields.guard, fields.from = plan.actions, plan.guard, plan.from
  local intent = plan.long and audit.intent_streamed(fields, plan.long) or audit.intent(fields, plan.streams)
  local ok, why = safe.write(audit.record(intent), true)
  if ok then
    safe.intended = true
    return true
  end
  out:warn(format("the audit log cannot be written (%s): nothing was sent (--audit-log FILE for another file, "
    .. "or --no-audit-log)", why))
  return false
end

-- Writes the run's outcome: `rows` (a batch's or a call's records) or
-- `info` (reconcile's, or the guard's refusal). A line that cannot be
-- written is said on standard error; the run's exit status stays.
local function audit_run(out, safe, rows, info, run)
  info = info or {}
  if info.counts then
    -- a long run: its streams went to "outcomes" records as they finished
    local c = info.counts
    info.outcome = (c.failed > 0 or c.not_sent > 0) and "failed" or c.unknown > 0 and "unknown" or "ok"
    info.actions = { safe.action }
  elseif rows then
    info.streams = {}
    for i, r in ipairs(rows) do
      info.streams[i] = audit_stream(r, safe.action)
      info.streams[i].stream = safe.prefix .. info.streams[i].stream
    end
    info.actions = { safe.action }
    info.outcome = overall(info.streams)
  end
  local m = run.m
  local fields = audit_who(safe, run)
  fields.record = "outcome"
  fields.actions, fields.guard = info.actions or (m and { m.action }) or {}, info.guard
  fields.outcome, fields.exit = run.interrupted and "interrupted" or info.outcome, run.status
  fields.calls, fields.streams, fields.note, fields.counts = info.calls, info.streams, info.note, info.counts
  local ok, werr = safe.write(audit.record(fields), true)
  if not ok then
    out:warn("warning: the run's outcome was not written to the audit log (the output above says it; its intent "
      .. "is there, run ", safe.run_id, "): ", werr)
  end
end

-- What a batch or a call means to change, for its intent: each stream
-- once (named whole: an Aliyun batch names streams by name alone) and the
-- action.
local function plan_of(m, fields, args, safe, long)
  local action = m and m.action or args.action
  if long then return { long = long, actions = { action }, guard = safe.info and safe.info.guard } end
  local streams, seen = {}, {}
  if m and m.list then
    for _, name in ipairs(fields[m.list]) do
      if not seen[name] then
        seen[name] = true
        streams[#streams + 1] = { stream = safe.prefix .. name, action = action }
      end
    end
  else
    streams[1] = { stream = m and stream_of(m, fields) or tostring(action), action = action }
  end
  return { streams = streams, actions = { action }, guard = safe.info and safe.info.guard }
end

-- The audit log's "outcomes" records of a long run: its streams as they
-- finish, OUTCOMES_STREAMS a line, each line synced. A line that cannot be
-- written stops the run (what it would change next would go unrecorded):
-- said once, `stop.why` set. `stop.flush()` writes what is left.
local function outcomes_writer(out, safe, run, stop)
  local pending = {}
  function stop.flush()
    if #pending == 0 or not safe.write or stop.why then return end
    local fields = audit_who(safe, run)
    fields.record, fields.actions, fields.streams = "outcomes", { safe.action }, pending
    pending = {}
    local ok, why = safe.write(audit.record(fields), true)
    if not ok then
      stop.why = why
      out:warn("the audit log cannot be written (", why, "): the run stops here; the streams it finished are "
        .. "above, its intent is in the log (run ", safe.run_id, ")")
    end
  end
  return function(r)
    if not safe.write then return end
    local a = audit_stream(r, safe.action)
    a.stream = safe.prefix .. a.stream
    pending[#pending + 1] = a
    if #pending >= audit.OUTCOMES_STREAMS then stop.flush() end
  end
end

-- The command line parsed: the arguments, or nil and the exit status (the
-- usage or the help said).
local function parse(out, argv)
  local parser = M.parser()
  -- argparse hands its error handler the (sub)command being parsed: its
  -- usage is the one to show.
  parser.error = function(p, message) error({ usage = p:get_usage(), message = message }, 0) end
  local ok, args = pcall(parser.parse, parser, argv)
  if not ok then
    if type(args) ~= "table" then error(args, 0) end
    out.err:write(args.usage, "\n\nstreamctl: ", args.message, " (see --help)\n")
    return nil, M.EXIT.usage
  end
  if not args._emulator and not args.provider then
    out.err:write(parser:get_help(), "\n")
    return nil, M.EXIT.usage
  end
  return args
end

-- The client a run of `args` uses, and the run's record: its options,
-- their source, the method and its fields, the guard (`safe`), the
-- defaults; or nil and the exit status (the reason said). `whoami` is
-- answered here (it needs no client).
local function prepare(out, args, env)
  local provider = args.provider
  local defaults, where, dwarnings = credentials.defaults { getenv = env.getenv }
  if not defaults then out:warn(where) return nil, M.EXIT.usage end
  for _, w in ipairs(dwarnings) do out:warn("warning: ", w) end
  local output = args.output or defaults.output or "table"
  if output ~= "table" and output ~= "json" then
    out:warn(format("%s: output must be table or json", where.output))
    return nil, M.EXIT.usage
  end

  local opts, why, warnings, source = client_options(provider, args, defaults, where, env.getenv)
  for _, w in ipairs(warnings or {}) do out:warn("warning: ", w) end
  if not opts then out:warn(why) return nil, M.EXIT.usage end
  if args._whoami then return nil, run_whoami(out, opts, args, output, source, env.getenv) end

  -- Every attempt of a call counted; Ctrl-C and SIGTERM caught, to report
  -- first (catch() also ignores SIGPIPE: a closed output is a failed write,
  -- which stops the run as Ctrl-C does, rather than the end of the process).
  local run = { provider = provider, opts = opts, source = source, args = args, output = output, attempts = 0,
                stop = {} } -- (stop.why: the audit log failed in a long run; see outcomes_writer)
  opts.on_attempt = function(info) if info.role == "call" then run.attempts = run.attempts + 1 end end
  local signal = env.signal or require "streamctl.signal"
  run.signal = signal
  if not args.dry_run then signal.catch() end
  opts.cancel = function() return signal.caught() ~= nil or out.failed ~= nil or run.stop.why ~= nil end

  local client, cerr = streamctl[provider].new(opts)
  if not client then out:warn(as_flags(cerr.message)) return nil, M.EXIT.usage end
  run.client = client

  local m = args._method
  run.m = m
  if args.unexpected and args.unexpected[1] then
    out:warn(format("unexpected argument '%s': %s takes flags only (see --help)", args.unexpected[1],
      command_name(m.name)))
    return nil, M.EXIT.usage
  end
  if m then
    local ferr
    run.fields, ferr, run.long = fields_of(m, args, env.stdin)
    if not run.fields then out:warn(ferr) return nil, M.EXIT.usage end
  end

  local safe, sstatus = safety(out, args, m, run.fields, run.long, defaults, where, env.getenv or os.getenv)
  if not safe then return nil, sstatus end
  if safe.write then safe.run_id = audit.run_id() end
  run.safe = safe
  return run
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
  local status, rows, info, calls, planned = safe.status, nil, safe.info, nil, nil
  if status then -- luacheck: ignore 542 (the guard refused: nothing is sent)
  elseif args._reconcile then
    status, info = run_reconcile(out, client, run.provider, args, output, safe.limit, env.stdin, intend)
  elseif args.dry_run then
    status = dry_run(out, client, m, fields, args, output)
  elseif not intend(plan_of(m, fields, args, safe, long)) then
    status = M.EXIT.usage
  elseif long then
    local counts
    status, counts, calls, planned = run_long(out, client, m, fields, args, output, long,
      outcomes_writer(out, safe, run, run.stop))
    info = info or {}
    info.counts = counts
  elseif m and m.list then
    status, rows, calls, planned = run_batch(out, client, m, fields, args, output)
  else
    status, rows = run_call(out, client, m, fields, args, output, function() return run.attempts end)
    calls = run.attempts
  end
  return status, rows, info, calls, planned
end

-- After a run: an interruption said (how many calls left, never those
-- planned as if sent) and the outcome audited. Returns the exit status.
local function conclude(out, run, status, rows, info, calls, planned)
  local safe = run.safe
  local sig = status ~= M.EXIT.usage and run.signal.caught()
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
-- @tparam[opt] table env `{ stdout, stderr, stdin, getenv, signal }` (for tests: the files, the
-- environment's `os.getenv`, and a stand-in for `streamctl.signal`)
-- @return the exit status
function M.main(argv, env)
  env = env or {}
  local out = new_out(env.stdout, env.stderr)
  local args, status = parse(out, argv)
  if not args then return status end
  if args._emulator then return run_emulator(args) end
  local run
  run, status = prepare(out, args, env)
  if not run then return status end
  local rows, info, calls, planned
  status, rows, info, calls, planned = carry_out(out, run, env)
  run.client:close()
  return conclude(out, run, status, rows, info, calls, planned)
end

return M
