--- The command's client: its options from flags, the environment, the
-- profile and the defaults file (each value said with where it came
-- from); a method's fields from flags or a --from list; whoami.
-- @module streamctl.cli.client

local options_module = require "streamctl.pipeline.options"
local emulator = require "streamctl.cli.emulator"
local provider_tables = require "streamctl.cli.provider"
local input = require "streamctl.cli.input"
local validate = require "streamctl.base.validate"
local core = require "streamctl.core"
local cli_output = require "streamctl.cli.output"
local cli_parser = require "streamctl.cli.parser"
local decisionfile = require "streamctl.store.decisionfile"

local type, pairs, ipairs, tostring, tonumber, format = type, pairs, ipairs, tostring, tonumber, string.format
local gsub, find, concat, huge, floor = string.gsub, string.find, table.concat, math.huge, math.floor
local EXIT, flag, encode = cli_output.EXIT, cli_output.flag, cli_output.encode
local SKIP = cli_parser.SKIP

local M = {}

-- The text a count (an integer) or a rate (a number) may be written as:
-- decimal digits, and for a number a decimal point after a digit. No
-- sign, blank, hex (0x100), exponent (1e3), "inf" or "nan", all of which
-- tonumber would take: a count is written as people read it, or refused.
local DECIMAL = { integer = "^%d+$", number = "^%d+%.?%d*$" }

-- The largest count taken: the largest integer a number holds exactly.
local MAX_COUNT = 2 ^ 53 - 1

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
        -- decimal digits only: other text (0x10, 1e3, 200.0, " 5") is left
        -- for the field's check to refuse by name, never read as a number
        -- it does not spell (tonumber takes hex, exponents and blanks)
        if find(v, DECIMAL[f.type]) then v = tonumber(v) end
      elseif f.type == "time" and find(v, "^%d+$") then
        v = tonumber(v)
      end
      fields[f.name] = v
    end
  end
  return fields, nil, long
end

-- The number a flag's (or [defaults]') text says: the number, or nil and
-- the rule broken ("an integer >= 1 in decimal digits..."). `least`: the lowest accepted
-- (default: anything above 0).
local function number_text(text, integer, least)
  local n = type(text) == "string" and find(text, DECIMAL[integer and "integer" or "number"]) and tonumber(text)
  local ok = n and n < huge and not (integer and n > MAX_COUNT)
  if ok and least then ok = n >= least elseif ok then ok = n > 0 end
  if ok then return n end
  return nil, format("%s %s in decimal digits%s", integer and "an integer" or "a number",
    least and ">= " .. tostring(least) or integer and ">= 1" or "> 0",
    integer and " (at most 9007199254740991)" or " (a decimal point allowed)")
end

-- The client's options from flags, then the emulator, then the environment
-- and the profile files (see streamctl.credentials), then the config's
-- [defaults]. Returns options, or nil and a usage error; and warnings.
-- The flags whose value names something (a file, a URL, a profile, a
-- key): an empty one is refused naming the flag, never read as the flag
-- left out (`--profile ""` would quietly take the default profile,
-- `--audit-log ""` the default log) nor passed on to fail deeper down.
-- (and a provider's credential flags that take a value: streamctl.cli.provider)
local NAMING_FLAGS = { "endpoint", "ca_file", "proxy", "redis", "emulator_dir", "profile", "sts_endpoint", "audit_log",
  "from", "state", "decision_file" }

-- The [defaults] keys that name a file: an empty value is refused naming the line.
local DEFAULTS_PATHS = { "ca_file" }

-- The longest --deadline, in seconds: what deadline_ms takes (2^31 - 1 ms).
local MAX_DEADLINE = 2147483

-- --deadline (seconds, the client's deadline_ms) and --cap (the command's
-- action's cap, the client's rate_limits), each by its rule.
local function run_limits(o, args)
  if args.deadline ~= nil then
    local v, rule = number_text(args.deadline, true, 1)
    if v and v > MAX_DEADLINE then v, rule = nil, format("an integer from 1 to %d in decimal digits", MAX_DEADLINE) end
    if not v then return nil, format("--deadline must be %s (got '%s')", rule, args.deadline) end
    o.deadline_ms = v * 1000
  end
  if args.cap ~= nil then
    local action = args._method and args._method.action or args.action
    if not action or args._reconcile then return nil, "--cap goes with a command that sends one action" end
    local v, rule = number_text(args.cap, false, options_module.MIN_RATE)
    if not v then return nil, format("--cap must be %s (got '%s')", rule, args.cap) end
    o.rate_limits = { [action] = v }
  end
  return true
end

-- The credentials of a run (provider table `p`): the flags, else the
-- emulator's account, else the provider's chain (else none: the client
-- reads its provider's variables itself). Returns them, where they came
-- from and the chain's warnings; or nil, the message and the warnings.
local function credentials_of(p, args, o, getenv)
  local id, secret, token = p.keys[1], p.keys[2], p.keys[3]
  local c, source, w
  if token and args[token] and not (args[id] and args[secret]) then
    -- (a token alone is no identity: never dropped for the chain's keys)
    return nil, format("%s goes with %s and %s (an STS token is used with its own keys)", flag(token), flag(id),
      flag(secret))
  end
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
    c, source = emulator[p.emulator.account], "the emulator's account"
  elseif not p.chain then
    c, source = {}, "environment" -- (the client reads its provider's variables itself)
  else
    local err
    -- (temporary credentials cached for the runs after this one, unless --no-credentials-cache:
    -- streamctl.credentials.cache; what it finds is said through args._warn, once)
    -- (deadline_ms: the cache's wait for another run's renewal ends with this run's --deadline)
    local chain_opts = { profile = args.profile, getenv = getenv, ca_file = o.ca_file, proxy = o.proxy,
                         warn = args._warn, on_attempt = args._debug, deadline_ms = o.deadline_ms }
    if args.no_credentials_cache then chain_opts.credentials_cache = false end
    c, err, w, source = p.chain(chain_opts)
    if not c then return nil, err.message, w end
    -- Each value by its option's rule here, so that the message names where
    -- it was read (the variable, the file's profile), never a flag that was
    -- not given (the client would say '--app-id' of ZEGO_APP_ID=0x10).
    local check = options_module.check_one(options_module.schema(p.class._rules))
    for _, k in ipairs(p.keys) do
      local good, rule = true, nil
      if c[k] ~= nil then good, rule = check(k, c[k]) end
      if good == nil then
        local variable
        for _, v in ipairs(source == "environment" and p.class._rules.variables or {}) do
          if v[1] == k then variable = v[2] end
        end
        return nil, variable and format("environment variable %s %s", variable, rule)
          or format("%s: %s %s", source, k, rule), w
      end
    end
  end
  return c, source, w
end

-- Where the run keeps its decisions (streamctl.pipeline.decision): Redis
-- when it is given (every process on it, declared shared unless told
-- otherwise); else the machine's decision file, which two runs of this
-- user share, so the later decision wins and the earlier says superseded.
-- `--decisions-shared` declares the store the one every decider uses.
local function decisions_of(p, o, args, getenv, warnings)
  if args.decisions_shared then o.decisions_shared = true end
  if o.redis ~= nil then
    if args.decision_file then return nil, "--decision-file goes without --redis: Redis keeps the decisions" end
    return true
  end
  local path = args.decision_file or decisionfile.default_path(getenv)
  if not path then
    if args.decisions_shared then return nil, "--decisions-shared needs a decision file or --redis" end
    -- (no HOME, no XDG_STATE_HOME: decisions in this run's memory, a late call Expired; said by a run
    -- that decides, a forbid's or resume's, reconcile's)
    local action = args._method and args._method.action or args.action
    local op = action and p.class._rules.operations[action]
    if args._reconcile or (op and (op.effect == "forbid" or op.effect == "resume")) then
      warnings[#warnings + 1] = "no decision file (set STREAMCTL_DECISION_FILE, XDG_STATE_HOME or HOME, or give "
        .. "--decision-file): this run's decisions are its own, and another run's later one cannot supersede them"
    end
    return true
  end
  local checked, rule = decisionfile.check(path)
  if not checked then
    return nil, format("%s %s (got '%s')", args.decision_file and "--decision-file" or "the decision file", rule,
      path)
  end
  o.decision_file = checked
  return true
end

local function client_options(name, args, defaults, where, getenv)
  local p = provider_tables.get(name)
  local o, warnings = {}, {}
  for _, option in ipairs(NAMING_FLAGS) do
    if args[option] == "" then return nil, format("%s must not be empty", flag(option)) end
  end
  for _, f in ipairs(p.credentials.flags) do
    if not f.flag and not f.choices and args[cli_output.option_of(f[1])] == "" then
      return nil, format("%s must not be empty", f[1])
    end
  end
  for _, key in ipairs(DEFAULTS_PATHS) do
    if defaults[key] == "" then return nil, format("%s: %s must not be empty", where[key], key) end
  end
  -- The flag, else the [defaults] key, by the same rule; the message names
  -- the one that was given.
  local function num(given, option, integer, least)
    local text, said = args[given], flag(given)
    if text == nil and defaults[option] ~= nil then text, said = defaults[option], where[option] .. ": " .. option end
    if text == nil then return true end
    local v, rule = number_text(text, integer, least)
    if not v then return nil, format("%s must be %s (got '%s')", said, rule, text) end
    o[option] = v
    return true
  end
  local ok, why = num("timeout", "timeout_ms", true)
  if ok then ok, why = num("concurrency", "concurrency", true) end
  if ok then ok, why = num("rate", "max_rate", false, options_module.MIN_RATE) end
  if ok then ok, why = run_limits(o, args) end
  if not ok then return nil, why end
  o.ca_file = args.ca_file or defaults.ca_file
  o.endpoint = args.endpoint
  o.proxy = args.proxy
  if args.emulator and not emulator.installed then
    return nil, "--emulator: " .. select(2, emulator.ports())
  elseif args.emulator and not p.emulator then
    return nil, "--emulator: the emulator does not emulate " .. name
  elseif args.emulator then
    -- the emulator's endpoint and CA both from the directory it runs in: its
    -- ports as it was started there, never the default ones beside its CA
    local dir = args.emulator_dir or emulator.dir(getenv)
    if not o.endpoint then
      local ports, perr = emulator.ports(dir)
      if not ports then
        return nil, format("--emulator: %s; start it with: streamctl emulator start%s", perr,
          args.emulator_dir and (" --dir " .. dir) or "")
      end
      o.endpoint = format("https://127.0.0.1:%d", ports[p.emulator.port])
    end
    -- (its CA too: a [defaults] ca_file is for the real providers; --ca-file alone overrides)
    o.ca_file = args.ca_file or (dir .. "/ca.pem")
  elseif args.emulator_dir then
    return nil, "--emulator-dir goes with --emulator"
  end
  o.redis = args.redis
  for _, option in ipairs(p.options) do o[option] = args[option] or nil end -- (the provider's own flags)
  -- The environment's settings where no flag gave one. A flag is checked by
  -- the client (its message names the flag); a variable here, so that its
  -- message names the variable.
  local function redis_rule(v) local _, rule = require("streamctl.store.redis").config(v) return rule end
  for _, env in ipairs(p.settings(getenv)) do
    if o[env.option] == nil then
      local check = env.option == "redis" and redis_rule or p.setting_rules[env.option]
      local rule = check and check(env.value)
      if rule then return nil, "environment variable " .. env.variable .. " " .. rule end
      o[env.option] = env.value
    end
  end
  local ok2, dwhy = decisions_of(p, o, args, getenv, warnings)
  if not ok2 then return nil, dwhy end
  local c, source, cwarnings
  c, source, cwarnings = credentials_of(p, args, o, getenv)
  for _, x in ipairs(cwarnings or {}) do warnings[#warnings + 1] = x end
  if not c then return nil, source, warnings end
  for k, v in pairs(c) do o[k] = v end
  return o, nil, warnings, source
end

-- `streamctl NAME whoami`: who the credentials are (the provider's
-- `whoami`), and where they came from.
local function run_whoami(out, name, opts, args, output, source, getenv)
  local who, err = provider_tables.get(name).whoami.identity(opts, args, getenv)
  if not who then
    out:warn(cli_output.as_flags((gsub(tostring(err), "^streamctl: ", "")))) -- (--ca-file, --proxy: STS's options)
    return EXIT.failed
  end
  -- (temporary credentials: when they expire, and whether they came from the credentials cache)
  local holder = type(opts.credentials) == "table" and opts.credentials.state and opts.credentials
  if holder then holder:get() end -- (an identity read from the cache signed nothing: the credentials loaded now)
  local st = holder and holder:state()
  local expires = st and st.expiration and core.utc_timestamp(math.floor(st.expiration))
  local cached = st and (st.from_cache and "from the credentials cache" or st.cache and "fetched, now cached"
    or "fetched, not cached")
  if output == "json" then
    local parts = {}
    for _, k in ipairs { "account_id", "identity_type", "arn", "principal_id" } do
      if who[k] ~= nil then parts[#parts + 1] = '"' .. k .. '":' .. encode(who[k]) end
    end
    parts[#parts + 1] = '"source":' .. encode(source)
    if expires then
      parts[#parts + 1] = '"expires":' .. encode(expires)
      parts[#parts + 1] = '"from_cache":' .. tostring(st.from_cache == true)
    end
    out:line("{" .. concat(parts, ",") .. "}")
  else
    local rows = { { "account", who.account_id }, { "identity", who.identity_type }, { "arn", who.arn },
                   { "source", source } }
    if expires then rows[#rows + 1] = { "expires", expires .. " (" .. cached .. ")" } end
    for _, row in ipairs(rows) do
      out:line(format("%-9s %s", row[1], tostring(row[2])))
    end
  end
  return EXIT.ok
end

M.fields_of = fields_of

-- A forbid's end given as a duration (`--resume-time +2h`, ZEGO
-- reconcile's `--cdn-resume-time 90m`): read once, when the command reads
-- its input, into the absolute time the fields and options take (Unix
-- seconds), from the command's clock; the absolute forms (Unix seconds,
-- YYYY-MM-DDThh:mm:ssZ) are left as they are, for their field's check.
-- The grammar: an optional `+`, then one or more NUMBER UNIT, the units d,
-- h, m, s (days, hours, minutes, seconds), largest first, each at most
-- once, no spaces, more than zero in all: `+2h`, `90m`, `1h30m`, `2d`.
M.duration = {}

local UNITS = { d = 86400, h = 3600, m = 60, s = 1 }
local ORDER = { d = 1, h = 2, m = 3, s = 4 }

-- The most digits a number of the duration takes (more: an overflow).
local MAX_DIGITS = 9

--- The rule, as a refusal says it.
M.duration.RULE = "a time (YYYY-MM-DDThh:mm:ssZ or Unix seconds) or a duration: [+]N followed by d, h, m or s, "
  .. "largest unit first, each once, no spaces, above zero (e.g. +2h, 90m, 1h30m, 45s, 2d)"

--- Is `text` one of the absolute forms (left to the field's own check)?
local function absolute_time(text)
  return find(text, "^%d+$") ~= nil or find(text, "^%d%d%d%d%-") ~= nil
end

--- The seconds a duration says, or nil.
function M.duration.seconds(text)
  local at, total, last = find(text, "^%+") and 2 or 1, 0, 0
  if at > #text then return nil end
  while at <= #text do
    local _, e, digits, unit = find(text, "^(%d+)(%a)", at)
    if not e or #digits > MAX_DIGITS or not UNITS[unit] or ORDER[unit] <= last then return nil end
    total, last, at = total + tonumber(digits) * UNITS[unit], ORDER[unit], e + 1
  end
  if total <= 0 then return nil end
  return total
end

-- A duration as the report says it: 1d2h3m4s, its zero units left out.
local function spelled(n)
  local out = ""
  for _, u in ipairs { "d", "h", "m", "s" } do
    local k = floor(n / UNITS[u])
    if k > 0 then out, n = out .. k .. u, n - k * UNITS[u] end
  end
  return out
end

--- `text` (a flag's value) read at `now`: the value the field takes (a
-- duration's end, Unix seconds; an absolute form unchanged) and, for a
-- duration, the line that says its end ("resume time: ... (in 2h)"); or
-- nil and the refusal naming `name` (the flag).
function M.duration.resolve(text, now, name)
  if text == nil or absolute_time(text) then return text end
  local n = M.duration.seconds(text)
  local shown = #text > 64 and text:sub(1, 64) .. "..." or text -- (a message stays short)
  if not n then return nil, format("%s must be %s (got '%s')", name, M.duration.RULE, shown) end
  local at, why = validate.parse_time(floor(now) + n) -- (the absolute form's own bound: the year 9999)
  if not at then return nil, format("%s %s (got '%s')", name, why, shown) end
  return at, format("%s: %s (in %s)", gsub(gsub(name, "^%-%-", ""), "%-", " "), core.utc_timestamp(at), spelled(n))
end

M.number_text = number_text
M.client_options = client_options
M.run_whoami = run_whoami

return M
