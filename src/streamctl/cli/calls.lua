--- The command's calls: one call, a list (read whole), a long list (read
-- as it goes, rows as streams finish), or a dry run; each reported as a
-- table or JSON lines.
-- @module streamctl.cli.calls

local cli_output = require "streamctl.cli.output"
local cli_guard = require "streamctl.cli.guard"
local callargs = require "streamctl.cli.callargs"

local pairs, ipairs, tostring, format = pairs, ipairs, tostring, string.format
local sort, max, min, concat = table.sort, math.max, math.min, table.concat
local EXIT, encode, as_flags = cli_output.EXIT, cli_output.encode, cli_output.as_flags
local stream_of, record, record_json = cli_output.stream_of, cli_output.record, cli_output.record_json
local superseded_text = cli_output.superseded_text
local has_content, table_header, table_row = cli_output.has_content, cli_output.table_header, cli_output.table_row
local print_table, progress_bar, is_tty = cli_output.print_table, cli_output.progress_bar, cli_output.is_tty
local room_text, throttle_text = cli_output.room_text, cli_output.throttle_text
local hints, not_sent = cli_output.hints, cli_output.not_sent
local is_usage_error = cli_output.is_usage_error
local audit_stream = cli_guard.audit_stream

local M = {}

-- A batch's report entry as a row.
local function row_of(entry)
  return record(entry.stream, entry.ok, entry.attempts, entry.result, entry.error, entry.outcome_unknown, entry.ends,
    entry.ends_by)
end

-- --dry-run: prints the requests, redacted; sends nothing.
local function dry_run(out, client, m, fields, args, output)
  local requests, derr
  if m then
    requests, derr = client:dry_run(m.name, fields)
  else
    if not callargs.check_call(out, client, args) then return EXIT.usage end
    local req
    req, derr = client:prepare(args.action, args._checked.params)
    requests = req and { client:redact(req) }
  end
  if not requests then out:warn(as_flags(derr.message, m)) return EXIT.usage end
  for _, req in ipairs(requests) do
    if output == "json" then
      -- (no trace_id: a dry run sends nothing, so no request of the run's trace is in it)
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
    return EXIT.failed
  end
  return EXIT.ok
end

-- A batch method: every stream reported (JSON lines as each finishes, or
-- the table and a summary at the end), with the progress bar on a terminal.
-- The table of a batch as it goes, in the order given: a stream's row is
-- written once it and every stream before it have finished, and pushed out
-- ten times a second, so that a reader that goes away (`| head -1`) is seen
-- by the next write and the run stops sending, as it does for JSON lines.
-- Returns `add(entry)`, `rest()` (the rows not written yet, at the end) and
-- `hidden()`: on a terminal (`out.terminal`) the rows of streams not sent
-- (a stopped run: thousands of them) are counted, not listed.
local function table_as_it_goes(out, list)
  local monotonic = require("streamctl.core").monotonic
  local position, n, width = {}, 0, #"STREAM"
  for _, name in ipairs(list) do
    if not position[name] then
      n = n + 1
      position[name], width = n, max(width, #name)
    end
  end
  width = min(width, 60)
  local finished, written, flushed, hidden = {}, 0, monotonic(), 0
  local function write_ready()
    while finished[written + 1] do
      if written == 0 then table_header(out, width) end
      written = written + 1
      if finished[written] ~= "hidden" then table_row(out, width, finished[written]) end
      finished[written] = true -- (written: let the row go)
    end
  end
  local function add(entry)
    local i = position[entry.stream]
    if not i then return end
    finished[i] = row_of(entry)
    if out.terminal and not_sent(finished[i]) then finished[i], hidden = "hidden", hidden + 1 end
    local before = written
    write_ready()
    local now = monotonic()
    if before == 0 and written > 0 or now - flushed >= 0.1 then
      out:flush() -- (once this fails, main's `cancel` stops the run: nothing more is sent)
      flushed = now
    end
  end
  return add, function(rows)
    if written == 0 and #rows > 0 then table_header(out, width) end
    for k = written + 1, #rows do
      if finished[k] == "hidden" then -- luacheck: ignore 542 (counted when it finished)
      elseif out.terminal and not_sent(rows[k]) then
        hidden = hidden + 1
      else
        table_row(out, width, rows[k])
      end
    end
  end, function() return hidden end
end

-- The line that says how many rows a terminal was not shown, or nil.
local function hidden_line(n)
  if n == 0 then return nil end
  return format("(%d streams not sent are counted, not listed, on a terminal: --output json, or standard output to "
    .. "a file, lists every one)", n)
end

local function run_batch(out, client, m, fields, args, output)
  local draw = (not args.no_progress and not args.debug and is_tty(2))
    and progress_bar(out.err, require("streamctl.core").monotonic, room_text(client, m.action))
  local add_row, rest_rows, hidden
  if output == "table" then add_row, rest_rows, hidden = table_as_it_goes(out, fields[m.list]) end
  fields.on_progress = function(done, total, entry)
    if add_row then
      add_row(entry)
    elseif out:line(record_json(row_of(entry), out.trace_id)) then
      -- JSON lines as each stream finishes: a killed run has written what it did.
      out:flush() -- (once this fails, main's `cancel` stops the run: nothing more is sent)
    end
    if draw then draw(done, total, entry) end
  end
  local report, err = client[m.name](client, fields)
  if not report then
    out:warn(as_flags(tostring(err.message), m))
    return is_usage_error(err) and EXIT.usage or EXIT.failed
  end
  if draw then draw(report.total, report.total, nil, true) end
  local rows, status, unsent = {}, EXIT.ok, 0
  local hint, ends = hints(out, m), cli_output.ends_tally()
  for _, r in ipairs(report.results) do
    rows[#rows + 1] = row_of(r)
    ends.add(rows[#rows])
    if not r.ok then status = EXIT.failed end
    hint.add(r.error)
    if not_sent(rows[#rows]) then unsent = unsent + 1 end
  end
  local summary = format("%d streams: %d succeeded%s, %d failed%s, %d unknown; %d calls, %.2f s%s%s", report.total,
    report.succeeded, superseded_text(report), report.failed,
    unsent > 0 and format(" (%d of them not sent)", unsent) or "",
    report.unknown, report.calls, report.elapsed, throttle_text(report),
    report.duplicates > 0 and format(" (%d duplicates dropped)", report.duplicates) or "")
  if output == "table" then
    rest_rows(rows)
    out:line(summary)
    if ends.line() then out:line(ends.line()) end
    if hidden_line(hidden()) then out:line(hidden_line(hidden())) end
  end
  hint.say()
  if not out:flush() then
    if unsent > 0 then
      -- The run stopped early (the output closed, a `| head`; or a signal).
      out:lost(format("stopped sending: %d of %d streams done (%d succeeded, %d failed, %d unknown), %d not sent",
        report.total - unsent, report.total, report.succeeded, report.failed - unsent, report.unknown, unsent))
    else
      out:lost("the report is incomplete; " .. summary)
    end
    return EXIT.failed, rows, report.calls, report.planned, report
  end
  return status, rows, report.calls, report.planned, report
end

-- A batch whose list is read as it goes (streamctl.cli.input): each row
-- (or JSON line) written as its stream finishes and handed to `finished`
-- (the audit log's), nothing per stream kept, the summary at the end.
-- Returns the exit status, the counts per outcome, the calls sent and
-- planned.
local function run_long(out, client, m, fields, args, output, long, finished)
  local monotonic = require("streamctl.core").monotonic
  local draw = (not args.no_progress and not args.debug and is_tty(2))
    and progress_bar(out.err, monotonic, room_text(client, m.action))
  local width = min(max(#"STREAM", long.width), 60)
  local counts = { ok = 0, failed = 0, unknown = 0, not_sent = 0 }
  local flushed, headed = monotonic(), output ~= "table"
  local hint, ends, hidden = hints(out, m), cli_output.ends_tally(), 0
  local function head() -- (the table's header with its first row, or its summary)
    if not headed then table_header(out, width) headed = true end
  end
  fields.keep_results = false
  fields.on_result = function(entry)
    local r = row_of(entry)
    ends.add(r)
    head()
    if output == "json" then
      out:line(record_json(r, out.trace_id))
    elseif out.terminal and not_sent(r) then
      hidden = hidden + 1
    else
      table_row(out, width, r)
    end
    -- (written as they finish, pushed out ten times a second: a killed run
    -- has shown nearly all it did, and its audit log all of it)
    local now = monotonic()
    if now - flushed >= 0.1 then
      out:flush()
      flushed = now
    end
    local a = audit_stream(r, m.action)
    counts[a.outcome] = counts[a.outcome] + 1
    hint.add(entry.error)
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
    return is_usage_error(err) and EXIT.usage or EXIT.failed, counts, 0, 0
  end
  if draw then draw(report.total, long.count or report.total, nil, true) end
  -- (the list stopped early, the input closed or changed, or the run
  -- interrupted: the names counted and never reached were not sent either)
  local stopped = report.input_left or long.error ~= nil
  local unread = stopped and (long.count and long.count > report.total and format("%d", long.count - report.total)
    or not long.count and "the rest") or nil
  if stopped and long.count and long.count > report.total then
    counts.not_sent = counts.not_sent + long.count - report.total
  end
  local summary = format("%d streams: %d succeeded%s, %d failed%s, %d unknown; %d calls, %.2f s%s%s%s",
    report.total, report.succeeded, superseded_text(report), report.failed,
    counts.not_sent > 0 and format(" (%d of them not sent)", counts.not_sent) or "",
    report.unknown, report.calls, report.elapsed, throttle_text(report),
    report.duplicates > 0 and format(" (%d duplicates dropped)", report.duplicates) or "",
    unread and format("; %s of the list not read (not sent)", unread) or "")
  local status = (report.failed > 0 or report.unknown > 0 or unread or long.error) and EXIT.failed or EXIT.ok
  if output == "table" then
    head()
    out:line(summary)
    if ends.line() then out:line(ends.line()) end
    if hidden_line(hidden) then out:line(hidden_line(hidden)) end
  end
  hint.say()
  if long.error then out:warn(long.error) end
  if report.progress_error then out:warn("the report could not be written as it went: ", report.progress_error) end
  if not out:flush() then
    out:lost(format("stopped sending: %s", summary))
    return EXIT.failed, counts, report.calls, report.planned, report
  end
  return status, counts, report.calls, report.planned, report
end

-- A named method or `call`: one row (and a describe's answer), or one JSON line with the result.
-- A `call` reports a row for each stream its parameters name (the call's
-- outcome is theirs), as the audit log records them.
local function run_call(out, client, m, fields, args, output, attempts)
  local result, err, streams, params
  if m then
    streams = { stream_of(m, fields) }
    result, err = client[m.name](client, fields)
    params = {} -- (its fields by the service's names: what a forbid's end is read from; a time as given,
    -- Unix seconds or YYYY-MM-DDThh:mm:ssZ, both of which the provider's forbid_ends reads)
    for _, f in ipairs(m.fields) do
      local v = fields[f.name]
      if f.param and v ~= nil then params[f.param] = v end
    end
  else -- (`call`: its parameters were checked, check_call above, before its intent was written)
    streams = args._checked.streams
    result, err = client:call(args.action, args._checked.params)
    params = args._checked.params
  end
  local ends, ends_by
  -- (a superseded call forbade nothing: no end of its own)
  if result and not result.Superseded and client.forbid_ends then
    ends, ends_by = client.forbid_ends(m and m.action or args.action, params, client:now())
  end
  if not result and is_usage_error(err) then
    out:warn(as_flags(tostring(err.message), m))
    return EXIT.usage
  end
  local rows, n = {}, attempts()
  for i, stream in ipairs(streams) do
    rows[i] = record(stream, result ~= nil, n, result, err, err and err.outcome_unknown, ends, ends_by)
  end
  local r = rows[1]
  if output == "json" then
    for _, row in ipairs(rows) do
      row.result = result
      out:line(record_json(row, out.trace_id))
    end
  elseif result and has_content(result) then
    -- (a describe's answer, or a call's: a line saying what it was, then the answer, a value a line)
    out:line(format("%s: ok, %d attempt%s%s", concat(streams, ", "), n, n == 1 and "" or "s",
      r.request_id and ", RequestId " .. r.request_id or ""))
    for _, line in ipairs(cli_output.answer_lines(result)) do out:line("  ", line) end
  else
    print_table(out, rows)
  end
  if output ~= "json" then -- (a forbid's end, whether its answer was printed or its row: ZEGO's CDN forbid has both)
    local tally = cli_output.ends_tally(not m and "ResumeTime" or nil) -- (a `call`'s end is its parameter's)
    tally.add(r)
    if tally.line() then out:line(tally.line()) end
  end
  local hint = hints(out, m)
  hint.add(err)
  hint.say()
  if not out:flush() then
    out:lost(format("the report is incomplete; %s %s", concat(streams, ", "),
      r.ok and "succeeded" or r.outcome_unknown and "has an unknown outcome" or "failed"))
    return EXIT.failed, rows
  end
  return r.ok and EXIT.ok or EXIT.failed, rows
end

M.dry_run = dry_run
M.run_batch = run_batch
M.run_long = run_long
M.run_call = run_call

return M
