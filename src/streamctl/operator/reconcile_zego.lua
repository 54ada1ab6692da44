--- Reconciling a ZEGO forbid list (streamctl.operator.reconcile's `zego`):
-- the view is what this reconciler last applied, kept in a state store
-- (`get`/`set`; `file_store(path)`, a JSON file replaced by rename), with
-- the streams a run was about to change saved before it sends.
-- @module streamctl.operator.reconcile_zego

local core = require "streamctl.core"
local errors = require "streamctl.base.errors"
local json = require "streamctl.base.json"
local validate = require "streamctl.base.validate"
local base = require "streamctl.operator.reconcile_base"
-- (what each action does, as ZEGO's operations declare it: never read from a name)
local zego_rules = require "streamctl.zego"

local type, ipairs, pairs, tostring, pcall, error = type, ipairs, pairs, tostring, pcall, error
local next, format, find, match, concat, sort = next, string.format, string.find, string.match, table.concat, table.sort
local floor = math.floor
local ZEGO_OPTIONS, CDN_MARGIN = base.ZEGO_OPTIONS, base.CDN_MARGIN
local invalid, key_of, new_report = base.invalid, base.key_of, base.new_report
local batch, single, before_sending = base.batch, base.single, base.before_sending
local finish = base.finish

local M = {}

-- The state's version: 2 holds `pending` (streams a run was about to change
-- when it last saved); 1 (read too) has none.
local STATE_VERSION = 2

local function state_error(code, message)
  return errors.new { provider = "zego", code = code, kind = "service", sent = false, message = message }
end

local STATE_FIELDS = { v = true, streams = true, pending = true }
local MAX_TIME = 2 ^ 53

-- Whether `k` is a state's stream key: "rtc:ID" or "cdn:ID", the ID by
-- ZEGO's rule (what the writer saves is only ever a key a run could send).
local function stream_key(k)
  if type(k) ~= "string" then return false end
  local id = match(k, "^rtc:(.+)$") or match(k, "^cdn:(.+)$")
  return id ~= nil and validate.text_rule(base.field_rule("zego", "stream_id"), id) == nil
end

-- What is wrong with a state's decoded table (a message), or nil.
local function state_flaw(state)
  if type(state) ~= "table" then return "is not a JSON object" end
  if state.v ~= 1 and state.v ~= STATE_VERSION then
    return format("has version %s, not 1 or %d", tostring(state.v), STATE_VERSION)
  end
  for k in pairs(state) do
    if not STATE_FIELDS[k] then return format("has \"%s\", which is not v, streams or pending", tostring(k)) end
  end
  if type(state.streams) ~= "table" then return "has no \"streams\" object" end
  for k, expiry in pairs(state.streams) do
    if not stream_key(k) or type(expiry) ~= "number" or not (expiry >= 0 and expiry < MAX_TIME)
      or expiry ~= floor(expiry) then
      return format("has a stream entry that is not \"rtc:ID\" or \"cdn:ID\" (the ID by ZEGO's stream ID rule) "
        .. "with a time in whole seconds (%s: %s)", tostring(k), tostring(expiry))
    end
  end
  if state.pending ~= nil and (state.v == 1 or type(state.pending) ~= "table") then
    return "has a \"pending\" that is not a version 2 object"
  end
  for k, change in pairs(state.pending or {}) do
    if not stream_key(k) or (change ~= "forbid" and change ~= "resume") then
      return format("has a pending entry that is not a stream (\"rtc:ID\" or \"cdn:ID\", the ID by ZEGO's "
        .. "stream ID rule) with \"forbid\" or \"resume\" (%s: %s)", tostring(k), tostring(change))
    end
  end
  return nil
end

-- The state under `key`: the streams still forbidden at `now` (key ->
-- expiry, 0: none) and those pending (key -> "forbid" | "resume"); or nil
-- and an error: StateUnavailable when the store cannot be read,
-- InvalidState when what it holds is not a reconciler's state. Absent is a
-- first run: nothing applied, nothing pending.
local function read_state(store, key, now)
  local ok, text, err, kind = pcall(store.get, store, key)
  if not ok then error(format("the state store's get raised: %s", tostring(text)), 3) end
  if text == nil and err ~= nil then
    if kind == "corrupt" then
      return nil, state_error("InvalidState", format("the state '%s' is not a reconciler's: %s; nothing was "
        .. "sent (look at it, or move it away to start from nothing applied)", key, tostring(err)))
    end
    return nil, state_error("StateUnavailable", format("the state '%s' cannot be read: %s; nothing was sent",
      key, tostring(err)))
  end
  if text == nil then return {}, {} end
  local state = type(text) == "string" and json.decode(text)
  -- then what the decoded table cannot show: a key twice, an array for an object
  local flaw = state_flaw(state) or json.strict_flaw(text, true)
  if flaw then
    return nil, state_error("InvalidState", format("the state '%s' %s: not a reconciler's state (version %d); "
      .. "nothing was sent (look at it, or remove it to start from nothing applied)", key, flaw, STATE_VERSION))
  end
  local live, pending = {}, {}
  for k, expiry in pairs(state.streams) do
    if expiry == 0 or expiry > now then live[k] = floor(expiry) end
  end
  for k, change in pairs(state.pending or {}) do pending[k] = change end
  return live, pending
end

local function sorted_object(t, value)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  sort(keys)
  local parts = {}
  for i, k in ipairs(keys) do parts[i] = json.string(k) .. ":" .. value(t[k]) end
  return "{" .. concat(parts, ",") .. "}"
end

local function state_text(streams, pending)
  return format('{"v":%d,"streams":%s,"pending":%s}', STATE_VERSION, sorted_object(streams, validate.decimal),
    sorted_object(pending or {}, json.string))
end

local function save_state(store, key, streams, pending, when)
  local ok, serr = store:set(key, state_text(streams, pending))
  if ok then return true end
  return nil, state_error("StateUnavailable", format("the state '%s' could not be saved %s: %s", key, when,
    tostring(serr)))
end

-- The desired keys the view lacks (pending ones too: maybe applied, sent
-- again), and the view's keys (pending ones too) not desired, sorted.
local function zego_difference(keys, items, view, pending, report)
  local extra = {}
  for k in pairs(view) do
    report.blocked = report.blocked + 1
    if not items[k] then extra[k] = true end
  end
  for k in pairs(pending) do
    if not items[k] then extra[k] = true end
  end
  for k in pairs(extra) do report.found.extra[#report.found.extra + 1] = k end
  sort(report.found.extra)
  for _, key in ipairs(keys) do
    if not view[key] or pending[key] then report.found.missing[#report.found.missing + 1] = key end
  end
end

--- Makes ZEGO's forbidden streams the desired ones, as far as this
-- reconciler's state knows them (ZEGO cannot be asked).
--
-- The state is a write-ahead record: before anything is sent, the streams
-- about to change are saved as pending (and nothing is sent if that save
-- fails); after, those whose outcome is known leave `pending` for
-- `streams` (a forbid) or for nothing (a resume). A run killed between the
-- two leaves them pending, and the next run takes a pending stream as
-- maybe changed: forbidden again while desired, an extra (resumed with
-- `remove_extra`) when not. No forbid is ever made that no state remembers.
-- @param client a `streamctl.zego` client
-- @tparam table desired `{ { stream_id, kind = "rtc" | "cdn" (default "rtc") }, ... }`
-- @tparam table opts `state` (required: an object with `get(key) -> text | nil | nil, err [, "corrupt"]`
-- and `set(key, text) -> true | nil, err`, such as `file_store(path)` or an `ngx.shared` dict), `state_key`
-- (default `streamctl:reconcile:zego:<AppId>`), `cdn_resume_time` (CDN forbids', default a day), and
-- `remove_extra`, `dry_run`, `on_progress`, `max_forbid`, `confirm`, `concurrency`, `before_send` as `aliyun`'s
-- @return the report; or nil and an error (nothing sent): StateUnavailable (the state cannot be read, or
-- the pending record cannot be saved), InvalidState (it is not a reconciler's state), the guard's refusal
local function zego(client, desired, opts)
  local o, keys, items = base.arguments("zego", "streamctl.zego", { "forbid_rtc_streams", "resume_rtc_streams",
    "forbid_cdn_live_stream", "resume_cdn_live_stream" }, ZEGO_OPTIONS, client, desired, opts)
  if not o then return nil, keys end
  local now = floor(client:now())
  if o.cdn_resume_time and o.cdn_resume_time <= now then
    return nil, invalid("zego", "option 'cdn_resume_time' must be in the future")
  end
  local state_key = o.state_key or ("streamctl:reconcile:zego:" .. tostring(client.app_id))
  local view, pending = read_state(o.state, state_key, now)
  if not view then return nil, pending end
  local report = new_report("zego", o, #keys)
  zego_difference(keys, items, view, pending, report)
  local extras = o.remove_extra and report.found.extra or {}
  local go, out, gerr = before_sending(report, o, extras)
  if not go then return out, gerr end
  -- the write-ahead record: every stream about to change, pending, before the first request
  for _, key in ipairs(report.found.missing) do pending[key] = "forbid" end
  for _, key in ipairs(extras) do pending[key] = "resume" end
  local saved, serr = save_state(o.state, state_key, view, pending, "before sending (nothing was sent)")
  if not saved then return nil, serr end
  local total = #report.found.missing + #extras
  local function send(list, rtc_method, rtc_action, cdn_method, cdn_action, extra_fields)
    local rtc, rtc_keys = {}, {}
    for _, key in ipairs(list) do
      local kind, id = match(key, "^(%a+):(.*)$")
      if kind == "rtc" then
        rtc[#rtc + 1], rtc_keys[#rtc_keys + 1] = id, key
      end
    end
    if #rtc > 0 then
      batch(client, rtc_method, { stream_ids = rtc, concurrency = o.concurrency }, rtc_keys, rtc_action, report, o,
        total)
    end
    for _, key in ipairs(list) do
      local kind, id = match(key, "^(%a+):(.*)$")
      if kind == "cdn" then
        local fields = { stream_id = id }
        for k, v in pairs(extra_fields) do fields[k] = v end
        single(client, cdn_method, fields, key, cdn_action, report, o, total)
      end
    end
  end
  send(report.found.missing, "forbid_rtc_streams", "ForbidRTCStreams", "forbid_cdn_live_stream",
    "ForbidCDNLiveStream", { resume_time = o.cdn_resume_time })
  send(extras, "resume_rtc_streams", "ResumeRTCStreams", "resume_cdn_live_stream", "ResumeCDNLiveStream", {})
  -- What is known applied leaves `pending`; a stream whose change failed or
  -- whose outcome is unknown stays pending, and is sent again next time.
  local cdn_until = (o.cdn_resume_time or (now + base.CDN_BAN)) - CDN_MARGIN
  for _, e in ipairs(report.results) do
    if e.ok and zego_rules.effect(e.action) == "forbid" then
      view[e.stream], pending[e.stream] = find(e.stream, "^cdn:") and cdn_until or 0, nil
    elseif e.ok then
      view[e.stream], pending[e.stream] = nil, nil
    end
  end
  local confirmed, cerr = save_state(o.state, state_key, view, pending,
    "after sending (what was sent stays pending there: the next run sends it again)")
  if not confirmed then report.state_error = cerr end
  return finish(report)
end

--- Forgets what the state says was applied to ZEGO streams that something
-- else has just changed (an nginx handler's own forbid or resume), so that
-- the next `zego` run looks at them again instead of trusting a view that
-- may no longer hold: a desired stream is forbidden again, an extra is
-- reported. Misuse raises.
-- @tparam table store the state store (`get`, `set`)
-- @tparam string state_key the key `zego` uses (`streamctl:reconcile:zego:<AppId>` by default)
-- @tparam table items `{ { stream_id, kind = "rtc" | "cdn" }, ... }`
-- @return true, or nil and an error (the state unreadable or not saved)
local function zego_forget(store, state_key, items)
  if type(store) ~= "table" and type(store) ~= "userdata" then
    error("bad argument #1 to 'zego_forget' (a state store expected)", 2)
  end
  if type(state_key) ~= "string" or type(items) ~= "table" then
    error("bad argument to 'zego_forget' (a state key and a list of items expected)", 2)
  end
  local view, pending = read_state(store, state_key, 0)
  if not view then return nil, pending end
  local changed = false
  for _, item in ipairs(items) do
    local key = key_of("zego", item)
    if view[key] ~= nil then view[key], changed = nil, true end
  end
  if not changed then return true end
  return save_state(store, state_key, view, pending, "")
end

--- The longest wait for another process's save of the same state file (a
-- save is a read, a write and two fsyncs: milliseconds, seconds on a slow
-- disk).
M.LOCK_WAIT_MS = 10000

-- The lock on `lock_path`, waited for at most LOCK_WAIT_MS in slices of
-- 100 ms, ended when the command has caught a signal (streamctl.signal:
-- the C wait returns at the handler, EINTR, and each slice looks); or nil
-- and why.
local function lock_state(lock_path)
  local sok, signal = pcall(require, "streamctl.signal")
  local waited, slice = 0, 0
  repeat
    local lock, why, kind = core.lock_file(lock_path, slice)
    if lock then return lock end
    if kind == "failed" then return nil, why end
    local sig = sok and signal.caught()
    if sig then
      return nil, format("%s is locked by another process, and this one stopped waiting at a signal (%d)", lock_path,
        sig)
    end
    waited, slice = waited + slice, 100
  until waited >= M.LOCK_WAIT_MS
  return nil, format("%s is locked by another process (waited %d ms)", lock_path, waited)
end

--- A state store in one JSON file (`{ key: value }`), for the command line:
-- `get(key)` and `set(key, value)`. Absent, the file is a first run
-- (nothing held); one that cannot be read, is not a file, or is not such a
-- JSON object is an error naming it (`get` returns nil, why and, when the
-- file is there but not a state, "corrupt"), never taken for an empty one.
-- A key the file holds twice or an array (its writer writes neither) is
-- "corrupt" too: the decoded table would keep one of two values silently.
-- `set` replaces the file whole and atomically (streamctl.core.replace_file:
-- a temporary file beside it, fsync, rename, made with mode 0600): a failed
-- save leaves what it held. Its read-modify-replace is made under an
-- exclusive lock on PATH.lock (made 0600 beside it, never removed), so two
-- processes saving states under different keys (two AppIds) never lose
-- each other's: a wait for it is bounded (`LOCK_WAIT_MS`) and ends at once
-- when the command's Ctrl-C or SIGTERM is caught (streamctl.signal). A FIFO,
-- a device or a directory as the file or its lock is refused, never
-- waited on. One reconciler at a time per key, and `set` holds it: a key
-- this store has read (`get`) or saved is saved again only if the file
-- still holds what it read or saved there; else another run (the same
-- AppId) changed that state meanwhile, and `set` returns nil and why,
-- leaving the file as it is, rather than write over the other run's
-- pending record (a run refused so before sending sends nothing; after,
-- what it sent stays pending in the file, and the next run sends it again).
-- @tparam string path the file
-- @return the store
local function file_store(path)
  if type(path) ~= "string" or path == "" then error("bad argument #1 to 'file_store' (path must be a string)", 2) end
  local store = {}
  -- what this store last read or saved under each key (false: nothing was there)
  local seen = {}
  local function load()
    local text, why, kind = core.read_file(path)
    if not text then
      if kind == "absent" then return {} end
      return nil, why
    end
    local t = find(text, "^%s*{") and json.decode(text)
    if type(t) ~= "table" or (next(t) ~= nil and #t > 0) then
      return nil, format("%s is not a JSON object of states (%d bytes%s)", path, #text,
        match(text, "^%s*$") and ", all blank" or ""), "corrupt"
    end
    local flaw = json.strict_flaw(text, true)
    if flaw then
      return nil, format("%s %s: not a JSON object of states as streamctl writes it", path, flaw), "corrupt"
    end
    for k, v in pairs(t) do
      if type(k) ~= "string" or type(v) ~= "string" then
        return nil, format("%s holds %s under '%s', not a state's text", path, type(v), tostring(k)), "corrupt"
      end
    end
    return t
  end
  function store.get(_, key)
    local t, err, kind = load()
    if not t then return nil, err, kind end
    if type(key) == "string" then seen[key] = t[key] or false end
    return t[key]
  end
  local function merge(key, value)
    local t, err = load()
    if not t then return nil, err end
    if seen[key] ~= nil and seen[key] ~= (t[key] or false) then
      return nil, format("%s: the state '%s' was changed by another run since this one read it (one reconciler "
        .. "per key at a time); left as that run saved it", path, tostring(key))
    end
    t[key] = value
    local names = {}
    for k in pairs(t) do names[#names + 1] = k end
    sort(names)
    local parts = {}
    for i, k in ipairs(names) do parts[i] = json.string(k) .. ":" .. json.string(tostring(t[k])) end
    return core.replace_file(path, "{" .. concat(parts, ",") .. "}\n")
  end
  function store.set(_, key, value)
    local lock, lerr = lock_state(path .. ".lock")
    if not lock then return nil, lerr end
    local ok, done, err = pcall(merge, key, value)
    lock:unlock()
    if not ok then error(done, 0) end
    -- (a save that failed may have replaced the file all the same, its
    -- directory's fsync failing after the rename: what it holds is not known)
    if done then seen[key] = tostring(value) else seen[key] = nil end
    return done, err
  end
  return store
end

M.zego = base.traced(zego)
M.zego_forget = zego_forget
M.file_store = file_store

return M
