--- The command's reconcile: a desired forbid list read, the provider's
-- view compared, only the difference sent, and the report printed.
-- @module streamctl.cli.reconcile

local reconcile = require "streamctl.operator.reconcile"
local input = require "streamctl.cli.input"
local cli_output = require "streamctl.cli.output"
local cli_guard = require "streamctl.cli.guard"
local provider_tables = require "streamctl.cli.provider"

local ipairs, tostring, format, gsub = ipairs, tostring, string.format, string.gsub
local find, concat, max, min = string.find, table.concat, math.max, math.min
local EXIT, encode = cli_output.EXIT, cli_output.encode
local as_flags, record, status_word = cli_output.as_flags, cli_output.record, cli_output.status_word
local progress_bar, is_tty = cli_output.progress_bar, cli_output.is_tty
local overall, refuse, audit_stream = cli_guard.overall, cli_guard.refuse, cli_guard.audit_stream

local M = {}

-- A reconcile's entry as the report's row; its change ("forbid" or
-- "resume") is what its action does (the operation's `effect`), never read
-- from its name.
local function reconcile_row(e, provider)
  local r = record(e.stream, e.ok, e.attempts, nil, e.error, e.outcome_unknown, e.ends, e.ends_by)
  r.request_id = e.request_id or r.request_id
  r.lookup_request_id = e.lookup_request_id or r.lookup_request_id
  local effect = provider_tables.get(provider).class.effect(e.action)
  r.change, r.action = (effect == "forbid" or effect == "resume") and effect or nil, e.action
  return r
end

local RECONCILE_KEYS = { "stream", "change", "ok", "attempts", "request_id", "lookup_request_id", "code", "message",
                         "outcome_unknown", "ends", "ends_by", "dry_run", "left" }

-- (the run's trace id last, as a call's JSON line has it: streamctl.cli.output's record_json)
local function reconcile_json(r, trace_id)
  local parts = {}
  for _, k in ipairs(RECONCILE_KEYS) do
    if r[k] ~= nil then parts[#parts + 1] = '"' .. k .. '":' .. encode(r[k]) end
  end
  if trace_id then parts[#parts + 1] = '"trace_id":' .. encode(trace_id) end
  return "{" .. concat(parts, ",") .. "}"
end

-- The report as the table (or the last JSON lines): what was or would be
-- changed, the extras left, and a summary.
local function print_reconcile(out, report, rows, output, remove_extra, setter)
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
      if r.dry_run or r.left then out:line(reconcile_json(r, out.trace_id)) end
    end
    out:line('{"summary":', encode { desired = report.desired, blocked = report.blocked,
      missing = #report.found.missing, extra = #report.found.extra, fixed = report.fixed,
      failed = #report.failed, unknown = #report.unknown, calls = report.calls, in_sync = report.in_sync,
      dry_run = dry, places = report.places }, out.trace_id and ',"trace_id":' .. encode(out.trace_id) or "", "}")
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
  local ends = cli_output.ends_tally(setter)
  for _, r in ipairs(shown) do if r.change == "forbid" then ends.add(r) end end
  if ends.line() then out:line(ends.line()) end
  local p = report.places
  if p then
    out:line(format("block list: %d of %d places in use before this round, which needs %d%s", p.used, p.limit,
      p.needed, p.full and " (more than are left: a run would be refused; --places-limit N)" or ""))
  end
  if report.state_error then out:line("the state was not saved: " .. tostring(report.state_error.message)) end
end

-- `streamctl PROVIDER reconcile`: returns the exit status and what the
-- audit line needs ({ streams, actions, outcome, guard, note }).
-- The action that changes `key` (a reconcile's stream) one way or the other:
-- the provider's command table says (streamctl.cli.provider).
local function reconcile_action(provider, key, forbid)
  return provider_tables.get(provider).reconcile.action(key, forbid)
end

-- The options of a reconcile run from the command line: the guard's limit,
-- the provider's scope, the progress shown, and the difference found
-- handed to `intend` (the run's intent) before any of it is sent.
local function reconcile_options(out, provider, args, output, limits, intend)
  local draw = (not args.no_progress and not args.debug and not args.dry_run and is_tty(2))
    and progress_bar(out.err, require("streamctl.core").monotonic)
  local opts = { remove_extra = args.remove_extra or nil, dry_run = args.dry_run or nil, max_forbid = limits.forbid,
                 max_resume = limits.resume, confirm = args.yes or nil, allow_empty = args.allow_empty or nil }
  local function time_of(v) return v and (find(v, "^%d+$") and tonumber(v) or v) or nil end
  provider_tables.get(provider).reconcile.options(args, opts, time_of) -- (its own flags: the provider's)
  opts.on_progress = function(done, total, entry)
    if output == "json" and out:line(reconcile_json(reconcile_row(entry, provider), out.trace_id)) then out:flush() end
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

-- The reconciler's options (streamctl.operator.reconcile) whose flag is
-- not their name said as a flag (as_flags says the others).
local OPTION_FLAGS = { domains = "--domain-name", confirm = "--yes" }

-- A reconcile that sent nothing (`err`): the exit status said, and for a
-- guard's refusal the streams it would have forbidden, for the audit.
local function reconcile_refused(out, provider, err)
  if err.code == "AuditUnavailable" then return EXIT.usage end -- (said by intend)
  if err.code == "TooManyStreams" then
    local streams = {}
    for _, key in ipairs(err.report.found.missing) do
      streams[#streams + 1] = { stream = key, outcome = "not_sent", action = reconcile_action(provider, key, true) }
    end
    if err.guard.resumes then -- (remove_extra: the resumes it would have sent)
      for _, key in ipairs(err.report.found.extra) do
        streams[#streams + 1] = { stream = key, outcome = "not_sent", action = reconcile_action(provider, key) }
      end
    end
    return refuse(out, err.guard), { streams = streams, outcome = "refused", guard = err.guard }
  end
  if err.code == "BlockListFull" then -- (the block list's places: too few for the missing forbids)
    local streams = {}
    for _, key in ipairs(err.report.found.missing) do
      streams[#streams + 1] = { stream = key, outcome = "not_sent", action = reconcile_action(provider, key, true),
                                code = err.code }
    end
    out:warn("refused: ", err.message, ". Pass --places-limit N where the account's quota is larger.")
    return EXIT.usage, { streams = streams, outcome = "refused", places = err.places }
  end
  -- (the reconciler's options named as the flags that give them, before as_flags would name them as options)
  local message = as_flags((gsub(tostring(err.message), "option '([%w_]+)'", function(o)
    return OPTION_FLAGS[o] and "'" .. OPTION_FLAGS[o] .. "'"
  end)))
  if err.code == "InvalidParameter" and not err.http_status then
    out:warn(message)
    return EXIT.usage
  end
  local said = gsub(tostring(err), "^streamctl: ", "")
  if err.code == "StateUnavailable" or err.code == "InvalidState" then
    out:warn(said) -- (the message names the state, says why, and that nothing was sent)
  else
    out:warn(format("cannot read the provider's view, nothing was sent: %s", said))
  end
  return EXIT.failed
end

local function run_reconcile(out, client, provider, args, output, limits, stdin, intend)
  if not args.from then
    out:warn("--from FILE is required: the desired state (see --help)")
    return EXIT.usage
  end
  local rules = provider_tables.get(provider).reconcile
  for _, f in ipairs(rules.flags or {}) do -- (in the help's order)
    local option = cli_output.option_of(f[1])
    local why = (rules.required or {})[option]
    if why and not args[option] then out:warn(why) return EXIT.usage end
  end
  local text, name = input.read_text(args.from, stdin)
  if not text then out:warn(name) return EXIT.usage end
  local desired, perr = reconcile.parse(provider, text, "--from " .. name)
  if not desired then out:warn(perr) return EXIT.usage end
  if #desired == 0 and args.remove_extra and not args.allow_empty and not args.dry_run then
    out:warn(format("refused: --from %s holds no stream (it is empty, or holds only blank lines and comments), and "
      .. "--remove-extra would resume every stream forbidden %s; nothing was read or sent. Pass --allow-empty if "
      .. "that is what you mean.", name, rules.empty))
    return EXIT.usage
  end
  local opts, draw = reconcile_options(out, provider, args, output, limits, intend)
  local why = rules.check and rules.check(client, opts) -- (its flags by the rules of the calls they fill)
  if why then out:warn(why) return EXIT.usage end
  local report, err = reconcile[provider](client, desired, opts)
  if not report then return reconcile_refused(out, provider, err) end
  if draw and #report.results > 0 then draw(#report.results, #report.results, nil, true) end
  local rows = {}
  for i, e in ipairs(report.results) do rows[i] = reconcile_row(e, provider) end
  -- (what sets its forbids' end, as its flags name it: --resume-time, ZEGO's --cdn-resume-time)
  local setter
  for _, f in ipairs(rules.flags or {}) do setter = setter or (f[1]:find("resume%-time$") and f[1]) end
  print_reconcile(out, report, rows, output, args.remove_extra, setter)
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
  return (report.in_sync and flushed) and EXIT.ok or EXIT.failed, {
    streams = streams, actions = actions, guard = report.guard, dry_run = report.dry_run, calls = report.calls,
    outcome = report.in_sync and "ok" or (overall(streams) ~= "ok" and overall(streams) or "failed"),
    places = report.places and { used = report.places.used, limit = report.places.limit,
                                 needed = report.places.needed, domains = report.places.domains } or nil,
    note = report.state_error and tostring(report.state_error.message) or nil,
  }
end

M.run_reconcile = run_reconcile

return M
