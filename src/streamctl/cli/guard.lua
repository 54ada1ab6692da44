--- The command's safety: the blast-radius guard (how many forbids one run
-- may send unconfirmed), and the audit log's records (the intent before
-- the first request, each stream's outcome, the run's end).
-- @module streamctl.cli.guard

local audit = require "streamctl.operator.audit"
local input = require "streamctl.cli.input"
local cli_output = require "streamctl.cli.output"
local cli_parser = require "streamctl.cli.parser"
local cli_client = require "streamctl.cli.client"

local ipairs, tostring, format = ipairs, tostring, string.format
local sort, gsub = table.sort, string.gsub
local EXIT, command_name, stream_of = cli_output.EXIT, cli_output.command_name, cli_output.stream_of
local changes = cli_parser.changes
local number_text = cli_client.number_text

local M = {}

-- A row (a record of the output) as the audit line's stream entry.
local function audit_stream(r, action)
  local outcome = r.ok and "ok" or r.outcome_unknown and "unknown"
    or (cli_output.not_sent(r) and "not_sent") or "failed"
  return { stream = r.stream, action = r.action or action, outcome = outcome, superseded_by = r.superseded_by,
           code = (not r.ok) and r.code or nil,
           request_id = r.request_id, lookup_request_id = r.lookup_request_id, ends = r.ends, ends_by = r.ends_by }
end

-- Where this run's audit line goes: --audit-log, else the default
-- (streamctl.operator.audit.default_path); nil with --no-audit-log, or
-- without HOME.
local function audit_path(args, getenv)
  if args.no_audit_log then return nil end
  if args.audit_log then return args.audit_log end
  return audit.default_path(getenv)
end

-- The guard's limit: --max-forbid, else [defaults] max_forbid, else the
-- library's; or nil and a usage error naming the one given. (`key`:
-- "max_resume" for the resumes' limit, read the same way.)
local function max_forbid(args, defaults, where, key)
  key = key or "max_forbid"
  local text, said = args[key], "--" .. gsub(key, "_", "-")
  if text == nil and defaults[key] ~= nil then
    text, said = defaults[key], where[key] .. ": " .. key
  end
  if text == nil then return key == "max_resume" and audit.MAX_RESUME or audit.MAX_FORBID end
  local n, rule = number_text(text, true, 0)
  if not n then return nil, format("%s must be %s (got '%s')", said, rule, text) end
  return n
end

-- The run's outcome in a word, from its audit streams.
local overall = audit.overall

-- The refusal of a run that would forbid (or resume) more than the guard allows.
local function refuse(out, decision, long)
  local verb = decision.count == 0 and decision.resumes and "resume" or "forbid"
  if long and not long.count then
    out:warn(format("refused: %s is read as it goes and holds more than %d names, so how many this run would "
      .. "%s is not known before sending; nothing was sent. Pass --yes to send them all, or give the list as "
      .. "a file (--from FILE is counted first).", long.name, input.LOOKAHEAD, verb))
    return EXIT.usage
  end
  local over = {}
  if decision.count > decision.max_forbid then
    over[1] = format("forbid %d streams, more than --max-forbid (%d)", decision.count, decision.max_forbid)
  end
  if decision.resumes and decision.resumes > decision.max_resume then
    over[#over + 1] = format("resume %d streams, more than --max-resume (%d)", decision.resumes, decision.max_resume)
  end
  out:warn(format("refused: this run would %s; nothing was sent. Pass --yes to send them (or a larger %s).",
    table.concat(over, " and "), #over == 2 and "--max-forbid and --max-resume"
      or decision.resumes and decision.resumes > decision.max_resume and "--max-resume" or "--max-forbid"))
  return EXIT.usage
end

-- Whether an action of `effect` (its operation's: streamctl.pipeline.provider)
-- forbids or resumes streams: "forbid", "resume", or nil.
local function direction(effect)
  return (effect == "forbid" or effect == "resume") and effect or nil
end

-- The guard's question for `n` streams an action of `way` ("forbid" or
-- "resume") changes: forbids against --max-forbid, resumes against
-- --max-resume, one --yes for both. audit.guard's answer.
local function ask(safe, args, way, n)
  if way == "forbid" then return audit.guard(n, { max_forbid = safe.limit, confirm = args.yes or nil }) end
  return audit.guard(0, { resumes = n, max_resume = safe.resume_limit, confirm = args.yes or nil })
end

-- The audit entries of a list refused before sending: each stream of it
-- once, in the order given, named whole, `not_sent` (with `code`).
local function unsent_entries(safe, m, fields, code)
  local out, seen = {}, {}
  for _, name in ipairs(fields[m.list]) do
    if not seen[name] then
      seen[name] = true
      out[#out + 1] = { stream = safe.prefix .. name, action = m.action, outcome = "not_sent", code = code }
    end
  end
  return out
end

-- Before anything is sent: the guard's limit, the audit log (opened now, so
-- that one that cannot be written stops the run), and the guard on a list of
-- forbids. Returns { limit, write, prefix, status (set when refused), info };
-- or nil and the exit status.
local function safety(out, args, m, fields, long, defaults, where, getenv, effect_of)
  local action = m and m.action or args.action
  local way = m and m.list and direction(m.effect) -- (a list of forbids or of resumes: guarded)
  local safe = { action = action, effect_of = effect_of }
  -- (`call`: its limits read now, its guard asked once its parameters are checked: call_refused)
  if args._reconcile or way == "forbid" or args._call then
    local limit, lerr = max_forbid(args, defaults, where)
    if not limit then out:warn(lerr) return nil, EXIT.usage end
    safe.limit = limit
  end
  if args._reconcile or way == "resume" or args._call then
    local limit, lerr = max_forbid(args, defaults, where, "max_resume")
    if not limit then out:warn(lerr) return nil, EXIT.usage end
    safe.resume_limit = limit
  end
  if args.audit_log and args.no_audit_log then
    out:warn("--audit-log and --no-audit-log: one or the other")
    return nil, EXIT.usage
  end
  if not args.dry_run and (args._reconcile or (action and changes(effect_of(action)))) then
    local path = audit_path(args, getenv)
    if path then
      local w, why = audit.writer(path, { warn = function(text) out:warn("warning: ", text) end })
      if not w then
        out:warn(format("the audit log cannot be written (%s): nothing was sent (--audit-log FILE for another "
          .. "file, or --no-audit-log)", why))
        return nil, EXIT.usage
      end
      if why then out:warn("warning: ", why) end
      safe.write, safe.getenv = w, getenv
    elseif not args.no_audit_log then
      -- (cron's `env -i`: no HOME, so no default log; said, the run goes on as it did)
      out:warn("warning: no audit log is kept for this run: HOME is not set (--audit-log FILE or "
        .. "STREAMCTL_AUDIT_LOG to keep one, --no-audit-log to say none is wanted)")
    end
  end
  -- Aliyun batches name streams by name alone: the audit line names them whole.
  safe.prefix = (m and m.list == "stream_names") and format("%s/%s/", tostring(fields.domain_name),
    tostring(fields.app_name)) or ""
  local guarded = way and not args.dry_run
  if guarded and long then
    -- A list read as it goes: counted before sending (a file), or not
    -- known (a pipe: refused unless --yes).
    local n = long.count or long.count_at_least
    local ok, decision = ask(safe, args, way, n)
    if ok and not long.count and not args.yes then
      ok, decision = false, { guard = decision }
      decision.guard.allowed = false
    end
    safe.info = { guard = ok and decision or decision.guard }
    if not ok then
      safe.status, safe.info.outcome, safe.info.streams = refuse(out, safe.info.guard, long), "refused", {}
    end
  elseif guarded then
    local unsent = unsent_entries(safe, m, fields)
    local ok, decision = ask(safe, args, way, #unsent)
    safe.info = { guard = ok and decision or decision.guard }
    if not ok then
      safe.status, safe.info.outcome, safe.info.streams = refuse(out, safe.info.guard), "refused", unsent
      sort(safe.info.streams, function(a, b) return a.stream < b.stream end)
    end
  end
  return safe
end

-- A `call` of a Forbid* or Resume* action, asked of the guard once its
-- parameters are checked (cli/callargs.lua check_call: `args._checked.streams`,
-- the streams they name): true when refused (said; `safe.info` holds the
-- refusal for the audit), false to go on (`safe.info.guard` the decision).
local function call_refused(out, safe, args)
  local action = args.action
  local way = direction(safe.effect_of(action))
  if not way or args.dry_run then return false end
  local streams = args._checked.streams
  local ok, decision = ask(safe, args, way, #streams)
  safe.info = { guard = ok and decision or decision.guard }
  if ok then return false end
  refuse(out, safe.info.guard)
  safe.info.outcome, safe.info.streams = "refused", {}
  for i, name in ipairs(streams) do
    safe.info.streams[i] = { stream = name, action = action, outcome = "not_sent" }
  end
  return true
end

-- Before a batch, once its fields are checked and before its intent: what
-- its provider checks first (its command table's `preflight`, e.g. the
-- block list's room for Alibaba Cloud's forbids). False to go on
-- (`safe.places` set to what it found, for the audit); or true after saying
-- why (`safe.info` holds the refusal or the failure, for the audit, and
-- `safe.preflight_status` the exit status).
local function preflight_refused(out, client, m, fields, long, safe, preflight)
  if not (m and preflight) then return false end
  local room, why = preflight(client, m, fields, long)
  if room == false then return false end
  if room then
    safe.places = room
    return false
  end
  why = type(why) == "table" and why or { said = "the provider's check before sending failed: nothing was sent" }
  out:warn(why.said)
  -- (a list read as it goes is not kept: none named, as in the guard's refusal of one)
  safe.info = { guard = safe.info and safe.info.guard, outcome = why.refused and "refused" or "failed",
                streams = long and {} or unsent_entries(safe, m, fields, why.code), places = why.places }
  safe.preflight_status = why.refused and EXIT.usage or EXIT.failed
  return true
end

-- The fields every record of this run carries: who, the credential, the command, the run's trace.
local function audit_who(safe, run)
  local who, opts, m = audit.who(safe.getenv), run.opts, run.m
  return {
    run = safe.run_id, trace_id = run.trace_id, user = who.user, host = who.host, provider = run.provider,
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

-- An "outcomes" record of this run: `streams` (audit entries) as they
-- finished, at most audit.OUTCOMES_STREAMS, for `actions`.
local function outcomes_record(safe, run, actions, streams)
  local fields = audit_who(safe, run)
  fields.record, fields.actions, fields.streams = "outcomes", actions, streams
  return fields
end

-- Writes an outcome or outcomes record `fields`; a line that cannot be
-- written is said on standard error (`what`: "outcome was not"). True when written.
local function written(out, safe, fields, what)
  local ok, werr = safe.write(audit.record(fields), true)
  if not ok then
    out:warn("warning: the run's ", what, " written to the audit log (the output above says it; its intent is "
      .. "there, run ", safe.run_id, "): ", werr)
  end
  return ok
end

-- Writes the run's outcome: `rows` (a batch's or a call's records) or
-- `info` (reconcile's, or the guard's refusal). A line that cannot be
-- written is said on standard error; the run's exit status stays.
local function audit_run(out, safe, rows, info, run)
  info = info or {}
  if info.counts then
    -- a long run: its streams went to "outcomes" records as they finished
    local c = info.counts
    -- (a run that exits 1 with every stream it reached ok stopped early: its
    -- list changed or could not be read to the end, so it failed)
    info.outcome = (c.failed > 0 or c.not_sent > 0 or (run.status == EXIT.failed and c.unknown == 0)) and "failed"
      or c.unknown > 0 and "unknown" or "ok"
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
  -- A run of more streams than a record holds (a list of 10,000 read whole, a reconcile round): its
  -- streams go to "outcomes" records first, OUTCOMES_STREAMS a line, as a long list's do, and the
  -- outcome says their counts: no line of the log grows with the list.
  local all = info.streams
  if all and #all > audit.OUTCOMES_STREAMS then
    local counts = { ok = 0, failed = 0, unknown = 0, not_sent = 0 }
    for _, s in ipairs(all) do counts[s.outcome] = (counts[s.outcome] or 0) + 1 end
    for first = 1, #all, audit.OUTCOMES_STREAMS do
      local part = {}
      for k = first, math.min(#all, first + audit.OUTCOMES_STREAMS - 1) do part[#part + 1] = all[k] end
      if not written(out, safe, outcomes_record(safe, run, info.actions or { safe.action }, part),
        "outcomes were not all") then break end
    end
    info.streams, info.counts = nil, counts
  end
  local m = run.m
  local fields = audit_who(safe, run)
  fields.record = "outcome"
  fields.actions, fields.guard = info.actions or (m and { m.action }) or {}, info.guard
  fields.outcome, fields.exit = run.interrupted and "interrupted" or info.outcome, run.status
  fields.calls, fields.streams, fields.note, fields.counts = info.calls, info.streams, info.note, info.counts
  fields.throttled, fields.lowest_room, fields.places = info.throttled, info.lowest_room, info.places
  written(out, safe, fields, "outcome was not")
end

-- What a batch or a call means to change, for its intent: each stream
-- once (named whole: an Aliyun batch names streams by name alone) and the
-- action; a `call`'s, the streams its parameters name (checked first:
-- streamctl.cli.callargs.check_call).
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
  elseif not m then -- (`call`: checked first, always: streamctl.cli.callargs.check_call)
    for i, name in ipairs(args._checked.streams) do streams[i] = { stream = name, action = action } end
  else
    streams[1] = { stream = stream_of(m, fields), action = action }
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
    local fields = outcomes_record(safe, run, { safe.action }, pending)
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

M.audit_path = audit_path
M.max_forbid = max_forbid
M.overall = overall
M.refuse = refuse
M.safety = safety
M.call_refused = call_refused
M.preflight_refused = preflight_refused
M.audit_stream = audit_stream
M.audit_who = audit_who
M.audit_intent = audit_intent
M.audit_run = audit_run
M.plan_of = plan_of
M.outcomes_writer = outcomes_writer

return M
