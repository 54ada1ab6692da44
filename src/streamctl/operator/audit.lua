--- What a run meant to change, and the limit on how much at once: the
-- blast-radius guard and the audit log's lines.
--
-- `guard(count, opts)` is the one rule for "how many streams may one run
-- forbid without a confirmation": the command line (`--yes`,
-- `--max-forbid`), streamctl.operator.reconcile and an nginx handler (a `confirm`
-- field in its API) all ask it. `record(fields)` makes one audit line (a
-- JSON object, keys in a fixed order, never a secret: it takes only the
-- fields below, and an AccessKeyId or AppId names the credential);
-- `writer(path)` appends lines to a file created with mode 0600. See
-- docs/reconcile.md.
-- @module streamctl.operator.audit

local core = require "streamctl.core"
local guard = require "streamctl.pipeline.guard"
local json = require "streamctl.base.json"
local xdg = require "streamctl.base.xdg"
local validate = require "streamctl.base.validate"

local type, ipairs, pairs, tostring, error, pcall = type, ipairs, pairs, tostring, error, pcall
local format, find = string.format, string.find
local concat, sort = table.concat, table.sort
local floor, huge = math.floor, math.huge

local M = {}

--- The blast-radius guard, its limits and its rule: streamctl.pipeline.guard
-- (`guard(count, opts)`, `MAX_FORBID`, `MAX_RESUME`), given here too.
M.guard = guard.guard
M.MAX_FORBID = guard.MAX_FORBID
M.MAX_RESUME = guard.MAX_RESUME

-- JSON --------------------------------------------------------------------------

local encode_value

-- An array (every key 1..n) or an object (keys sorted), written by the
-- library's own string escaping (lua-cjson writes "/" as "\/").
local function encode_table(t, depth)
  if depth > 8 then error("audit record nested too deeply", 4) end
  local n = #t
  local count = 0
  for _ in pairs(t) do count = count + 1 end
  local parts = {}
  if count == n and n > 0 then
    for i = 1, n do parts[i] = encode_value(t[i], depth + 1) end
    return "[" .. concat(parts, ",") .. "]"
  end
  local keys = {}
  for k in pairs(t) do
    if type(k) ~= "string" then error("audit record: object keys must be strings", 4) end
    keys[#keys + 1] = k
  end
  sort(keys)
  for i, k in ipairs(keys) do parts[i] = json.string(k) .. ":" .. encode_value(t[k], depth + 1) end
  return "{" .. concat(parts, ",") .. "}"
end

function encode_value(v, depth)
  local t = type(v)
  if t == "string" then return json.string(v) end
  if t == "boolean" then return tostring(v) end
  if t == "number" then
    if v ~= v or v == huge or v == -huge then return "null" end
    if v == floor(v) and v > -2 ^ 53 and v < 2 ^ 53 then return validate.decimal(v) end
    return format("%.17g", v)
  end
  if t == "table" then return encode_table(v, depth) end
  if v == nil then return "null" end
  error("audit record: a " .. t .. " cannot be written", 4)
end

-- A list as a JSON array, `[]` when empty.
local function array_json(list)
  local parts = {}
  for i = 1, #list do parts[i] = encode_value(list[i], 2) end
  return "[" .. concat(parts, ",") .. "]"
end

-- The keys of an audit line, in the order written, and what each must be.
local FIELDS = {
  { "time", "string" },            -- UTC, YYYY-MM-DDThh:mm:ssZ
  { "record", "string" },          -- intent (before the first request), outcomes (a long run's streams as
                                   -- they finish), outcome (after); absent: a single line
  { "run", "string" },             -- the run's id: an intent and its outcome share it
  { "trace_id", "string" },        -- the W3C trace the run's requests went in (their traceparent's)
  { "user", "string" },            -- the OS user
  { "host", "string" },            -- the machine
  { "provider", "string" },        -- aliyun, zego
  { "credential", "string" },      -- the AccessKeyId or AppId (never a secret)
  { "credential_source", "string" }, -- where the credentials came from
  { "command", "string" },         -- the subcommand (reconcile, forbid-live-streams...)
  { "actions", "table" },          -- the service actions the run sent (or would have)
  { "guard", "table" },            -- the guard's decision
  { "from", "string" },            -- where the streams came from (--from FILE, standard input, the flags)
  { "count", "number" },           -- the streams the run means to change (an intent)
  { "count_at_least", "number" },  -- instead of count, where a list read as it goes could not be counted first
  { "digest", "string" },          -- SHA-256 of their names, sorted, one a line (an intent)
  { "from_sha256", "string" },     -- instead of digest, for a list read as it goes: SHA-256 of the file's bytes
  { "outcome", "string" },         -- ok, failed, unknown, refused, interrupted
  { "exit", "number" },            -- the command's exit status
  { "calls", "number" },           -- the requests that left
  { "throttled", "number" },       -- of them, those the provider throttled (and sent again)
  { "lowest_room", "number" },     -- the lowest room the pacing learned meanwhile (requests per second)
  { "places", "table" },           -- Alibaba Cloud's block list before a forbid: { used, limit, needed, domains }
  { "counts", "table" },           -- streams per outcome
  { "request_ids", "table" },      -- the providers' RequestIds, each once
  { "unknown", "table" },          -- the streams whose outcome is unknown
  { "streams", "table" },          -- { stream, action, outcome, code, request_id, lookup_request_id, ends,
                                   --   ends_by } each (ends: when a forbid ends by itself, UTC; ends_by:
                                   --   "resume_time", "provider_default", "until_resumed", "oneshot")
  { "note", "string" },            -- anything else worth a line (a state that could not be saved)
}
local KNOWN = {}
for _, f in ipairs(FIELDS) do KNOWN[f[1]] = f[2] end

-- Each stream's entry, its keys in this order.
local STREAM_KEYS = { "stream", "action", "outcome", "superseded_by", "code", "request_id", "lookup_request_id", "ends",
                      "ends_by" }

local function stream_json(s)
  local parts = {}
  for _, k in ipairs(STREAM_KEYS) do
    if s[k] ~= nil then parts[#parts + 1] = '"' .. k .. '":' .. encode_value(s[k], 2) end
  end
  return "{" .. concat(parts, ",") .. "}"
end

--- One audit line: a JSON object (without the newline) of `fields`, keys in
-- the order of the table in docs/reconcile.md. `time` defaults to now (UTC);
-- `request_ids`, `unknown` and `counts` are made from `streams` when not given.
-- A key that is not an audit field raises (so nothing unexpected, a secret
-- least of all, is ever written); `nil` values are left out.
-- @tparam table fields see docs/reconcile.md "The audit log"
-- @treturn string the line
function M.record(fields)
  if type(fields) ~= "table" then error("bad argument #1 to 'record' (fields must be a table)", 2) end
  for k, v in pairs(fields) do
    if not KNOWN[k] then error(format("bad argument #1 to 'record' ('%s' is not an audit field)", tostring(k)), 2) end
    if type(v) ~= KNOWN[k] then
      error(format("bad argument #1 to 'record' (field '%s' must be a %s)", k, KNOWN[k]), 2)
    end
  end
  local f = {}
  for k, v in pairs(fields) do f[k] = v end
  f.time = f.time or core.utc_timestamp(floor(core.now()))
  local streams = f.streams
  if streams and f.record ~= "intent" then
    local ids, seen, unknown, counts = {}, {}, {}, {}
    for _, s in ipairs(streams) do
      if s.request_id and not seen[s.request_id] then seen[s.request_id] = true; ids[#ids + 1] = s.request_id end
      if s.outcome == "unknown" then unknown[#unknown + 1] = s.stream end
      if s.outcome then counts[s.outcome] = (counts[s.outcome] or 0) + 1 end
    end
    f.request_ids = f.request_ids or ids
    f.unknown = f.unknown or unknown
    f.counts = f.counts or counts
  end
  local parts = {}
  for _, spec in ipairs(FIELDS) do
    local k, v = spec[1], f[spec[1]]
    if v ~= nil then
      local text
      if k == "streams" then
        local items = {}
        for i, s in ipairs(v) do items[i] = stream_json(s) end
        text = "[" .. concat(items, ",") .. "]"
      elseif k == "actions" or k == "request_ids" or k == "unknown" then
        text = array_json(v)
      else
        text = encode_value(v, 1)
      end
      parts[#parts + 1] = '"' .. k .. '":' .. text
    end
  end
  return "{" .. concat(parts, ",") .. "}"
end

-- Files -------------------------------------------------------------------------

--- Makes `path` (and the directories above it) if it does not exist: the
-- file with mode 0600, the directories 0700, with no shell (streamctl.core's
-- private_file: mkdir(2) and open(2)). A FIFO, a device or a directory is
-- refused, never waited on; a file that cannot be written is refused now.
-- Blocking (a local disk), so inside nginx call it from init_worker, not
-- from a request.
-- @return true, or nil and why (naming the path)
function M.private_file(path)
  if type(path) ~= "string" or path == "" then error("bad argument #1 to 'private_file' (a path)", 2) end
  return core.private_file(path)
end

--- Is `path` readable or writable by others than its owner? The reason, or nil.
function M.loose_mode(path)
  local ok, lfs = pcall(require, "lfs")
  if not ok then return nil end
  local perms = lfs.attributes(path, "permissions")
  if perms and not find(perms, "^...%-%-%-%-%-%-$") then
    return format("%s can be read by other users (%s); run: chmod 600 %s", path, perms, path)
  end
  return nil
end

--- An appender of audit lines to `path`: the file is made now if it does
-- not exist (mode 0600, see `private_file`), so a log that cannot be
-- written is found before anything is sent.
--
-- Each line is one write(2) under an exclusive lock (streamctl.core's
-- append_private), so that lines of processes writing at once never
-- interleave, however long, and always starts on a line of its own: after
-- a line cut short (a full disk, a crash) a newline is written first. With
-- `sync`, the line is on the disk (fdatasync) before `write` returns: an
-- intent is written so, before its run sends anything.
-- @tparam string path the file
-- @return a function `write(line [, sync]) -> true | nil, why`, and a warning when the file can be read
-- by other users; or nil and why. `why` names the file and, for a line cut short, the bytes written of
-- it. The first line that had to start after a cut one is said through `opts.warn(text)` (default: none).
-- @tparam[opt] table opts `{ warn = function(text) }`
function M.writer(path, opts)
  if type(path) ~= "string" or path == "" then error("bad argument #1 to 'writer' (path must be a string)", 2) end
  local warn = opts and opts.warn
  local ok, why = M.private_file(path)
  if not ok then return nil, why end
  return function(line, sync)
    if type(line) ~= "string" then error("bad argument #1 to 'write' (a line)", 2) end
    local data = line .. "\n"
    local done, repaired, written = core.append_private(path, data, sync)
    if not done then
      if written and written > 0 then
        return nil, format("%s (the line was cut short: %d of its %d bytes written; the next line starts on a "
          .. "line of its own)", repaired, written, #data)
      end
      return nil, repaired
    end
    if repaired and warn then
      warn(format("%s ended in a line cut short (a full disk or a crash): a newline was added before this "
        .. "run's line", path))
    end
    return true
  end, M.loose_mode(path)
end

--- The most streams an intent names one by one; beyond, their count and digest only.
M.INTENT_STREAMS = 100

--- Makes `fields` an intent for `streams` (`{ { stream, action }, ... }`):
-- `record`, `count` and `digest`, and `streams` when there are at most
-- INTENT_STREAMS of them. Returns `fields`, for `record`.
function M.intent(fields, streams)
  if type(fields) ~= "table" or type(streams) ~= "table" then
    error("bad argument to 'intent' (fields and a list of streams expected)", 2)
  end
  local names = {}
  for i, e in ipairs(streams) do names[i] = e.stream end
  fields.record = "intent"
  fields.digest, fields.count = M.digest(names)
  if fields.count <= M.INTENT_STREAMS then fields.streams = streams end
  return fields
end

--- Makes `fields` the intent of a run whose list is read as it goes
-- (too long to name, or to sort for a digest, before the first request):
-- `about` = `{ count, sha256 }` for a file counted first, or
-- `{ count_at_least }` for a pipe. Returns `fields`, for `record`.
function M.intent_streamed(fields, about)
  if type(fields) ~= "table" or type(about) ~= "table" then
    error("bad argument to 'intent_streamed' (fields and { count, sha256 } or { count_at_least } expected)", 2)
  end
  fields.record = "intent"
  fields.count, fields.from_sha256, fields.count_at_least = about.count, about.sha256, about.count_at_least
  return fields
end

--- The most streams an "outcomes" record of a long run names.
M.OUTCOMES_STREAMS = 1000

--- A new run's id: 16 hex digits from OpenSSL, which its intent and its
-- outcome share.
function M.run_id()
  return core.random_hex(8)
end

--- The digest of a run's streams, for its intent: SHA-256 (hex) of their
-- names sorted and joined by newlines, and how many.
-- @tparam table names the names
-- @return digest, count
function M.digest(names)
  if type(names) ~= "table" then error("bad argument #1 to 'digest' (a list of names)", 2) end
  local copy = {}
  for i, n in ipairs(names) do copy[i] = tostring(n) end
  sort(copy)
  return core.sha256_hex(concat(copy, "\n")), #copy
end

--- The audit log a run writes when none is named: $STREAMCTL_AUDIT_LOG,
-- else $XDG_STATE_HOME (an absolute path) or ~/.local/state, under
-- streamctl/audit.jsonl; nil without HOME (cron's `env -i`).
-- @tparam[opt] function getenv the environment (default os.getenv)
function M.default_path(getenv)
  return xdg.path(getenv or os.getenv, "STREAMCTL_AUDIT_LOG", "XDG_STATE_HOME", ".local/state", "streamctl/audit.jsonl")
end

--- A run's outcome in a word, from its streams' (`{ outcome }` each):
-- failed (one failed or was not sent), else unknown, else ok.
function M.overall(streams)
  local worst = "ok"
  for _, s in ipairs(streams) do
    if s.outcome == "failed" or s.outcome == "not_sent" then return "failed" end
    if s.outcome == "unknown" then worst = "unknown" end
  end
  return worst
end

--- Who runs this: `{ user, host }`, from USER (else LOGNAME, else the
-- passwd entry of the process's user: streamctl.signal.user, no shell) and
-- the kernel's host name (else HOSTNAME).
-- @tparam[opt] function getenv the environment (default os.getenv)
function M.who(getenv)
  getenv = getenv or os.getenv
  local user = getenv("USER")
  if not user or user == "" then user = getenv("LOGNAME") end
  if not user or user == "" then
    local ok, signal = pcall(require, "streamctl.signal")
    user = ok and signal.user() or nil
  end
  local host
  local f = io.open("/proc/sys/kernel/hostname", "rb")
  if f then host = f:read("*l") f:close() end
  if not host or host == "" then host = getenv("HOSTNAME") end
  return { user = (user and user ~= "") and user or "unknown", host = (host and host ~= "") and host or "unknown" }
end

-- A library batch's audit log ---------------------------------------------------

--- A stream's audit entry from a batch's report entry (`entry`: `{ ok,
-- outcome_unknown, error, request_id, superseded_by, ... }`), named `name`,
-- for `action`. A stream a later call decided on is "ok" (nothing was left
-- to do) with that call's decision, `superseded_by`.
function M.entry(entry, name, action)
  local err = entry.error
  local outcome = entry.ok and "ok" or entry.outcome_unknown and "unknown"
    or (err and err.sent == false and "not_sent") or "failed"
  return { stream = name, action = action, outcome = outcome, superseded_by = entry.superseded_by,
           code = err and err.code or nil,
           request_id = entry.request_id or (err and err.request_id) or nil,
           lookup_request_id = entry.lookup_request_id,
           ends = entry.ends and core.utc_timestamp(floor(entry.ends)) or nil, ends_by = entry.ends_by }
end

local Log, Run = {}, {}
Log.__index, Run.__index = Log, Run

-- The fields every record of a batch's run carries: who, the credential,
-- the method (`zego.forbid_rtc_streams`: a library batch, where the
-- command names its subcommand).
local function batch_fields(log, info, run_id)
  local who, client = M.who(log.getenv), info.client
  local credential = type(client) == "table" and (client.access_key_id or (client.app_id and tostring(client.app_id)))
  return { run = run_id, trace_id = info.trace_id, user = who.user, host = who.host, provider = info.provider,
           credential = credential or nil, command = info.method, actions = { info.action } }
end

--- The intent of a batch (`info`: `{ client, provider, method, action,
-- streams (names, or nil for a list read as it goes), guard, places,
-- trace_id (the trace its calls go in: each record names it) }`),
-- on the disk before its first call: its run, or nil and why.
function Log:intent(info)
  local id = M.run_id()
  local fields = batch_fields(self, info, id)
  fields.guard, fields.places = info.guard, info.places
  if info.streams then
    local streams = {}
    for i, name in ipairs(info.streams) do streams[i] = { stream = name, action = info.action } end
    M.intent(fields, streams)
  else
    M.intent_streamed(fields, {})
    fields.from = "a list read as it goes"
  end
  local ok, why = self.write(M.record(fields), true)
  if not ok then return nil, why end
  return setmetatable({ log = self, id = id, info = info, pending = {}, flushed = false,
                        counts = { ok = 0, failed = 0, unknown = 0, not_sent = 0 } }, Run)
end

--- The outcome of a batch refused before sending (the guard, the block
-- list's places, a read that failed): `err`, its streams not sent.
-- True, or nil and why.
function Log:refused(info, err)
  local fields = batch_fields(self, info, M.run_id())
  fields.record, fields.guard, fields.places = "outcome", err.guard or info.guard, err.places or info.places
  fields.outcome = err.kind == "validation" and "refused" or "failed"
  fields.note = err.message and tostring(err.message) or nil
  fields.streams = {}
  for i, name in ipairs(info.streams or {}) do
    fields.streams[i] = { stream = name, action = info.action, outcome = "not_sent", code = err.code }
  end
  if #fields.streams > M.OUTCOMES_STREAMS then
    fields.counts, fields.streams = { not_sent = #fields.streams }, nil
  end
  return self.write(M.record(fields), true)
end

-- Writes the pending entries as an "outcomes" record.
local function flush(run)
  if #run.pending == 0 then return true end
  local fields = batch_fields(run.log, run.info, run.id)
  fields.record, fields.streams = "outcomes", run.pending
  run.pending, run.flushed = {}, true
  local ok, why = run.log.write(M.record(fields), true)
  if not ok then run.failed = why end
  return ok, why
end

--- One stream's end (a report entry, named `name`): kept, and written
-- with others, OUTCOMES_STREAMS a line. True, or nil and why (the log
-- could not be written: nothing more is written for this run).
function Run:result(entry, name)
  if self.failed then return nil, self.failed end
  local e = M.entry(entry, name, self.info.action)
  self.counts[e.outcome] = self.counts[e.outcome] + 1
  self.pending[#self.pending + 1] = e
  if #self.pending >= M.OUTCOMES_STREAMS then return flush(self) end
  return true
end

--- The batch's outcome, from its report: its streams (or, when some were
-- written already, the rest as "outcomes" and the counts here), calls,
-- throttles and the places. True, or nil and why.
function Run:outcome(report)
  if self.failed then return nil, self.failed end
  local fields = batch_fields(self.log, self.info, self.id)
  fields.record, fields.guard, fields.places = "outcome", self.info.guard, self.info.places
  fields.calls, fields.throttled, fields.lowest_room = report.calls, report.throttled, report.lowest_room
  local c = self.counts
  fields.outcome = (c.failed > 0 or c.not_sent > 0) and "failed" or c.unknown > 0 and "unknown" or "ok"
  if self.flushed then
    local ok, why = flush(self)
    if not ok then return nil, why end
    fields.counts = c
  else
    fields.streams = self.pending
  end
  if report.input_left then fields.outcome, fields.note = "failed", "the list was not read to its end" end
  return self.log.write(M.record(fields), true)
end

--- An audit log for library batches: their `audit` option. The file
-- (`opts.path`, default `default_path()`) is made now if it does not exist
-- (mode 0600; see `writer`), so a log that cannot be written is found
-- before anything is sent. Each batch given it writes the command's
-- records: an intent before its first call, "outcomes" as its streams end
-- (for more than OUTCOMES_STREAMS), an outcome after; a batch refused
-- before sending, its outcome. `streamctl audit LOG` reads them back.
-- Blocking (a local disk, fdatasync): inside nginx, a batch with it runs
-- in a timer. See docs/clients.md.
-- @tparam[opt] table opts `path`, `warn(text)` (a line cut short found), `getenv`
-- @return the log and a warning when the file can be read by other users; or nil and why
function M.log(opts)
  if opts ~= nil and type(opts) ~= "table" then error("bad argument #1 to 'log' (opts must be a table or nil)", 2) end
  opts = opts or {}
  local getenv = opts.getenv or os.getenv
  local path = opts.path or M.default_path(getenv)
  if path == nil then
    return nil, "no audit log path: STREAMCTL_AUDIT_LOG, XDG_STATE_HOME and HOME are unset (give opts.path)"
  end
  local write, why = M.writer(path, { warn = opts.warn })
  if not write then return nil, why end
  return setmetatable({ path = path, write = write, getenv = getenv }, Log), why
end

return M
