--- How the command speaks: its exit codes, names in flag form, standard
-- output checked as it is written, JSON lines, the table of rows, the
-- progress bar, and messages whose field names are said as flags.
-- @module streamctl.cli.output

local cjson = require "cjson.safe"
local core = require "streamctl.core"

local pairs, ipairs, tostring, setmetatable, format, type, next = pairs, ipairs, tostring, setmetatable, string.format,
  type, next
local gsub, rep, concat, floor, max = string.gsub, string.rep, table.concat, math.floor, math.max
local min = math.min

local M = {}

local EXIT = { ok = 0, failed = 1, usage = 2 }

-- The one stream field of each method, for output: which value names the stream.
local STREAM_FIELDS = { "stream_name", "stream_id", "task_id", "domain_name" }

local function flag(name)
  return "--" .. gsub(name, "_", "-")
end

-- The option (field) a flag sets: `flag`'s inverse ("--state-file" is state_file).
local function option_of(f)
  return (gsub(gsub(f, "^%-%-", ""), "%-", "_"))
end

local function command_name(name)
  return (gsub(name, "_", "-"))
end

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
-- (The stream's own error indicator is asked too: LuaJIT's write and flush
-- can say a write past the file size limit went, flushed a line at a time.)
function Out:flush()
  if self.failed then return nil end
  local ok, err = self.out:flush()
  if ok and io.type(self.out) == "file" then
    local failed, why = require("streamctl.signal").write_failed(self.out)
    if failed then ok, err = nil, why end
  end
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

-- A validation message with fields named as the flags that set them.
local function as_flags(message, m)
  message = gsub(message, "field '([%w_]+)'", function(name)
    if m and name == m.list then return "the stream list (arguments or --from)" end
    return "'" .. flag(name) .. "'"
  end)
  message = gsub(message, "option '([%w_]+)'", function(name)
    local flags = { timeout_ms = "--timeout", max_rate = "--rate", concurrency = "--concurrency",
                    deadline_ms = "--deadline",
                    ca_file = "--ca-file", endpoint = "--endpoint", app_id = "--app-id" }
    return "'" .. (flags[name] or flag(name)) .. "'"
  end)
  return message
end

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

-- One result as the JSON lines carry it. (`request_id` is the operation's
-- own; a call found done by a look-up has the look-up's apart.)
-- (`ends`, `ends_by`: when a forbid that succeeded ends by itself, Unix
-- seconds, and why: the provider's `forbid_ends`; kept as UTC text)
-- (`superseded_by`: the decision of a later call on the stream, a ZEGO RTC
-- call's Sequence, which this one waited past and therefore was not sent:
-- streamctl.pipeline.decision)
local function record(stream, ok, attempts, result, err, unknown, ends, ends_by)
  local later = result and result.SupersededBy
  if type(later) == "table" then later = later[stream] or later[next(later)] end
  return {
    stream = stream, ok = ok, attempts = attempts, superseded_by = later,
    request_id = (result and result.RequestId) or (err and err.request_id) or nil,
    lookup_request_id = (result and result.LookupRequestId) or (err and err.lookup_request_id) or nil,
    code = err and err.code or nil, message = err and err.message or nil,
    outcome_unknown = unknown or nil,
    ends = ok and ends and core.utc_timestamp(floor(ends)) or nil, ends_by = ok and ends_by or nil,
  }
end

local RECORD_KEYS = { "stream", "ok", "attempts", "superseded_by", "request_id", "lookup_request_id", "code",
                      "message", "outcome_unknown", "ends", "ends_by", "result" }

-- A record as one line of JSON, its keys always in the same order, and
-- last the run's trace id (`trace_id`: the command's Out's, when it has one).
local function record_json(r, trace_id)
  local parts = {}
  for _, k in ipairs(RECORD_KEYS) do
    if r[k] ~= nil then parts[#parts + 1] = '"' .. k .. '":' .. encode(r[k]) end
  end
  if trace_id then parts[#parts + 1] = '"trace_id":' .. encode(trace_id) end
  return "{" .. concat(parts, ",") .. "}"
end

-- The distinct hints of a run's failures (errors' `hint`), each said once
-- on standard error after the report, options named as the flags that set
-- them: `add(err)` as failures come, `say()` at the end.
local function hints(out, m)
  local seen, list = {}, {}
  return {
    add = function(err)
      local h = type(err) == "table" and err.hint
      if h and not seen[h] then seen[h] = true list[#list + 1] = h end
    end,
    say = function()
      for _, h in ipairs(list) do out:warn("hint: ", as_flags(h, m)) end
    end,
  }
end

-- What every answer carries, whatever it did: its RequestId, and ZEGO's
-- Code and Message (0, "success" on a result).
local ENVELOPE = { RequestId = true, Code = true, Message = true }

-- Does a result say more than its envelope (a describe's answer)? A null or
-- empty value (ZEGO's "Data": null) says nothing.
local function has_content(result)
  for k, v in pairs(result) do
    if not ENVELOPE[k] and v ~= cjson.null and not (type(v) == "table" and next(v) == nil) then return true end
  end
  return false
end

--- A provider's answer as lines for people, `path: value` each, the paths
-- sorted (`TaskList[1].TaskInfo.DstUrl: rtmp://...`; an empty list or
-- object as `(empty)`, null as `null`, a whole number without a decimal
-- point), the envelope (RequestId, ZEGO's Code and Message) left to the
-- line before it: one form, where the table's row and a JSON blob were two.
-- `--output json` keeps the answer as JSON.
function M.answer_lines(result)
  local out = {}
  local function walk(path, v)
    if type(v) == "number" and v == floor(v) and v > -1e15 and v < 1e15 then
      out[#out + 1] = path .. ": " .. format("%.0f", v)
      return
    elseif type(v) ~= "table" then
      out[#out + 1] = path .. ": " .. (v == cjson.null and "null" or tostring(v))
      return
    end
    local n, keys = #v, {}
    for k in pairs(v) do
      if path ~= "" or not ENVELOPE[k] then keys[#keys + 1] = k end
    end
    if #keys == 0 then
      if path ~= "" then out[#out + 1] = path .. ": (empty)" end
      return
    end
    if n > 0 and n == #keys then
      for i = 1, n do walk(format("%s[%d]", path, i), v[i]) end
      return
    end
    table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
    for _, k in ipairs(keys) do walk(path == "" and tostring(k) or path .. "." .. tostring(k), v[k]) end
  end
  walk("", result)
  return out
end

--- A time (Unix seconds, a fraction allowed) as UTC ISO 8601 to the
-- millisecond: 2026-11-27T17:20:01.234Z.
function M.stamp(t)
  local s = floor(t)
  local ms = floor((t - s) * 1000)
  return (core.utc_timestamp(s):gsub("Z$", format(".%03dZ", ms)))
end

--- What `--debug` writes on standard error for one attempt (an
-- on_attempt `info`), each line after `stamp` (when it was told: M.stamp's
-- text): a line naming it, how it ended and how long it waited for its
-- rate-limit slot, then the request as sent (`> `) and the answer as
-- received (`< `), every secret, signature and token redacted (the
-- library's `wire()`).
function M.debug_lines(info, stamp)
  local req, answer = info.wire()
  local out = { format("streamctl: debug: %s %s, attempt %d: %s in %.3f s (waited %.3f s for a slot)",
    tostring(info.action), info.role, info.attempt, info.ok and "ok" or format("%s%s", tostring(info.code),
      info.sent == false and " (never sent)" or ""), info.seconds or 0, info.waited or 0) }
  local function headers(mark, h)
    local names = {}
    for k in pairs(h or {}) do names[#names + 1] = k end
    table.sort(names)
    for _, k in ipairs(names) do out[#out + 1] = mark .. k .. ": " .. tostring(h[k]) end
  end
  if req then
    out[#out + 1] = "> " .. req.method .. " " .. req.url
    headers("> ", req.headers)
    if req.body and req.body ~= "" then out[#out + 1] = "> " .. req.body end
  end
  if answer then
    out[#out + 1] = "< " .. tostring(answer.status)
    headers("< ", answer.headers)
    if answer.body and answer.body ~= "" then out[#out + 1] = "< " .. answer.body end
  else
    out[#out + 1] = "< no answer: " .. tostring(info.error and info.error.message or info.code)
  end
  for i, line in ipairs(out) do out[i] = stamp .. " " .. line end
  return out
end

--- The codes of a call its run stopped before sending (a cancel, the
-- deadline, a batch halted at the block list's limit).
M.NOT_SENT = { Interrupted = true, DeadlineExceeded = true, BlockListFull = true, Unreachable = true,
               ResumeTimePassed = true }

--- Was a record's stream not sent (its run stopped before it: failed, not
-- unknown, with one of NOT_SENT's codes)?
function M.not_sent(r)
  return not r.ok and not r.outcome_unknown and M.NOT_SENT[r.code] ~= nil
end

local function status_word(r)
  if r.superseded_by then return "SUPERSEDED" end
  if r.ok then return "ok" end
  if M.NOT_SENT[r.code] then return "NOT SENT" end
  if r.outcome_unknown then return "UNKNOWN" end
  return "FAILED"
end

-- The table people read: one row per stream, failures with their message.
local function table_header(out, width)
  out:line(format("%-" .. width .. "s  %-8s  %8s  %s", "STREAM", "RESULT", "ATTEMPTS", "REQUEST ID / ERROR"))
end

local function table_row(out, width, r)
  local detail = r.superseded_by and format("not sent: a later call decided on it (decision %s)", r.superseded_by)
    or r.ok and (r.request_id or "") or (tostring(r.code) .. ": " .. tostring(r.message or ""))
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
-- far; done and rate where the total is not known (a list from a pipe);
-- and the room the pacing learned from the provider's throttles, while it
-- is below the cap (`room()`: the text to show, or nil).
local function progress_bar(err_stream, clock, room)
  local started, last = clock(), -1
  local failed = 0
  return function(done, total, entry, final)
    if entry and not entry.ok then failed = failed + 1 end
    local now = clock()
    if not final and ((total and done >= total) or now - last < 0.1) then return end
    last = now
    local elapsed = now - started
    local rate = elapsed > 0 and done / elapsed or 0
    local learned = room and room()
    learned = learned and "  " .. learned or ""
    if not total then
      err_stream:write(format("\r%d done  %.1f/s  failed %d%s ", done, rate, failed, learned))
      if final then err_stream:write("\n") end
      err_stream:flush()
      return
    end
    local eta = rate > 0 and (total - done) / rate or 0
    local cells = 24
    local filled = total > 0 and floor(cells * done / total) or cells
    err_stream:write(format("\r[%s%s] %d/%d  %.1f/s  ETA %ds  failed %d%s ", rep("#", filled),
      rep(".", cells - filled), done, total, rate, floor(eta + 0.5), failed, learned))
    if final then err_stream:write("\n") end
    err_stream:flush()
  end
end

-- Is `fd` a terminal? isatty(3) through streamctl.signal, no shell.
-- The room of `action` as the progress bar shows it while a throttle keeps
-- it below the cap ("room 12.0/s of 30"), else nil.
local function room_text(client, action)
  return function()
    local _, room, cap = client:rate_for(action)
    if room and room < 1 then return format("room %.1f/s of %g", room * cap, cap) end
  end
end

-- What a batch report says of throttles, for its summary ("; 9 throttled,
-- room down to 11.2/s"), or "".
local function throttle_text(report)
  if not report.throttled or report.throttled == 0 then return "" end
  return format("; %d throttled%s", report.throttled,
    report.lowest_room and format(", room down to %.1f/s", report.lowest_room) or "")
end

local function is_tty(fd)
  return require("streamctl.signal").isatty(fd)
end

-- Was `err` found here, before anything was sent (a usage error), rather
-- than answered by the provider (which can say InvalidParameter too)?
local function is_usage_error(err)
  return err.code == "InvalidParameter" and err.http_status == nil
end

-- The closing line of one reason a forbid ends for (`k`: its earliest and
-- latest end), `setter` naming what sets the end (the command's
-- --resume-time, ZEGO reconcile's --cdn-resume-time, a `call`'s ResumeTime);
-- nil when there is nothing to say.
local function ends_line(by, k, setter)
  if by == "until_resumed" then return "forbidden until resumed (the provider gives these forbids no end)" end
  if by == "oneshot" then
    return "oneshot: the ingest was cut and nothing listed (the streams may publish again at once)"
  end
  if not k.first then return nil end
  local why = by == "resume_time" and setter or by == "provider_default" and "no " .. setter
    .. ": the provider's own end" or by
  return format("forbidden until %s%s (%s)", k.first, k.last ~= k.first and " .. " .. k.last or "", why)
end

--- When a run's forbids end, for the table's closing line: `add(record)`
-- as rows come, `line()` at the end (nil when no forbid succeeded): the
-- end (the earliest and latest, when they differ) and why; forbids that end
-- for different reasons (ZEGO's RTC forbids, with no end, beside its CDN
-- ones, a day) a line each, with how many of the forbids it speaks for;
-- forbids a later decision superseded, a line of their own (not sent here).
-- `setter`: what sets a forbid's end, as the command names it (default
-- "--resume-time").
function M.ends_tally(setter)
  setter = setter or "--resume-time"
  local kinds, order, total, superseded = {}, {}, 0, 0
  return {
    add = function(r)
      -- (a forbid a later decision superseded was not sent by this run: its end is that decision's)
      if r.ok and r.superseded_by ~= nil then superseded = superseded + 1 return end
      if not r.ok or not r.ends_by then return end
      local k = kinds[r.ends_by]
      if not k then
        k = { n = 0 }
        kinds[r.ends_by], order[#order + 1] = k, r.ends_by
      end
      k.n, total = k.n + 1, total + 1
      if r.ends then
        if not k.first or r.ends < k.first then k.first = r.ends end
        if not k.last or r.ends > k.last then k.last = r.ends end
      end
    end,
    line = function()
      local lines = {}
      for _, by in ipairs(order) do
        local text = ends_line(by, kinds[by], setter)
        if text and #order > 1 then text = format("%s: %d of the %d forbids", text, kinds[by].n, total) end
        lines[#lines + 1] = text
      end
      if superseded > 0 then
        lines[#lines + 1] = format("%d forbid%s superseded by a later decision: not sent by this run, %s end is "
          .. "that decision's", superseded, superseded == 1 and "" or "s", superseded == 1 and "its" or "their")
      end
      return #lines > 0 and concat(lines, "\n") or nil
    end,
  }
end

M.EXIT = EXIT
M.flag = flag
M.option_of = option_of
M.command_name = command_name
M.new_out = new_out
M.encode = encode
M.as_flags = as_flags
M.stream_of = stream_of
M.STREAM_FIELDS = STREAM_FIELDS
M.record = record

--- What a batch report's summary says of its superseded streams (ZEGO's:
-- a later call decided on them, so they were not sent), or "".
function M.superseded_text(report)
  local n = report.superseded or 0
  return n > 0 and format(" (%d of them superseded by a later call, not sent)", n) or ""
end
M.record_json = record_json
M.has_content = has_content
M.status_word = status_word
M.table_header = table_header
M.table_row = table_row
M.hints = hints
M.print_table = print_table
M.progress_bar = progress_bar
M.room_text = room_text
M.throttle_text = throttle_text
M.is_tty = is_tty
M.is_usage_error = is_usage_error

return M
