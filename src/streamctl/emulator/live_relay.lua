-- ApsaraVideo Live's pull-to-push relay tasks in the emulator
-- (aliyun_live.lua says their lifecycle): create, update, restart, stop,
-- delete, describe and list, each task's status computed from the
-- emulator's clock and its source's health (task_events.lua).

local json = require "streamctl.emulator.json"
local clock = require "streamctl.emulator.clock"
local notify = require "streamctl.emulator.aliyun_notify"
local task_events = require "streamctl.emulator.task_events"
local params = require "streamctl.emulator.live_params"

local type, pairs, ipairs, next, format = type, pairs, ipairs, next, string.format
local match, find, lower, sub, insert = string.match, string.find, string.lower, string.sub, table.insert
local remove, concat = table.remove, table.concat
local CREATE_REGIONS, TASK_REGIONS, SOURCE_TYPES = params.CREATE_REGIONS, params.TASK_REGIONS, params.SOURCE_TYPES
local SOURCE_PROTOCOLS, URL_SOURCE_SCHEMES, MAX_URL = params.SOURCE_PROTOCOLS, params.URL_SOURCE_SCHEMES, params.MAX_URL
local MAX_SPAN, missing, invalid = params.MAX_SPAN, params.missing, params.invalid
local present, int_param, within_chars = params.present, params.int_param, params.within_chars
local url_param, page_params, page_of = params.url_param, params.page_params, params.page_of
local uuid, fuzzy = params.uuid, params.fuzzy

local M = {}

local tasks = {}
local task_order = {}   -- TaskIds in creation order

-- What a stop of a task that has not started, a restart before the start
-- time and an update of a setting the task's state does not allow answer. The
-- pages say such a request "does not take effect" and name no code for it; the
-- emulator refuses it with the generic code of their error tables (a strict
-- choice: a client never takes it for done).
local NOT_IN_THIS_STATE = "InvalidParameter"

-- Deletes the tasks that have run past their EndTime (the create's page: a
-- task "automatically stops and is deleted at the specified end time"). Run
-- lazily, before anything reads or changes the tasks.
local function purge_ended(now)
  -- First the tasks' health up to now (task_events.lua: the source faults,
  -- the retries and their callbacks).
  for _, id in ipairs(task_order) do
    task_events.evaluate(tasks[id], now)
  end
  task_events.prune(now)
  local kept = {}
  for _, id in ipairs(task_order) do
    local t = tasks[id]
    if now < t.end_at then
      kept[#kept + 1] = id
    else
      tasks[id] = nil
    end
  end
  task_order = kept
end

local function delete_task(id)
  tasks[id] = nil
  for i, tid in ipairs(task_order) do
    if tid == id then
      remove(task_order, i)
      break
    end
  end
end

-- Task status at time now (a task past its EndTime is already deleted):
-- 3 stopped by StopLivePullToPush, 0 before StartTime, then its health
-- (task_events.lua, evaluated up to now by purge_ended): 1 running, 2
-- recovering (retrying a failed source), 3 offline (retries exhausted).
local function task_status(t, now)
  if t.stopped then
    return 3
  end
  if now < t.start_at then
    return 0
  end
  return task_events.status(t)
end

-- The settings (the notify presets, the task event name).
function M.init(settings)
  notify.init(settings)
  task_events.init(settings)
end

-- Brings the tasks up to now (health, callbacks, EndTime): the ticker's call.
function M.tick(now)
  purge_ended(now)
end

-- A task as the Describe operations show it. TaskExitReason is only returned
-- for an exited task (-1), which is deleted at once here, so it never shows.
local function task_view(t, now)
  return {
    TaskId = t.TaskId,
    TaskStatus = task_status(t, now),
    TaskInfo = t.info,
  }
end

-- Region, one of `regions` (the operation's own list; default the task
-- operations').
local function check_region(p, regions)
  regions = regions or TASK_REGIONS
  if not present(p.Region) then
    return missing("Region")
  end
  if not regions.valid[p.Region] then
    return invalid("Region", "Valid values: " .. regions.text .. ".")
  end
  return true
end

local function illegal_duration(why)
  return nil, "InvalidParam.CodeIllegalDuration", "The task duration is illegal: " .. why
end

-- The rules every task's times follow (create and update): end after start,
-- end after now, at most 7 days between them.
local function check_times(start_at, end_at, now)
  if end_at <= start_at then
    return illegal_duration("EndTime must be later than StartTime.")
  end
  if end_at <= now then
    return illegal_duration("EndTime must be later than the current time.")
  end
  if end_at - start_at > MAX_SPAN then
    return illegal_duration("the span between StartTime and EndTime must not exceed 7 days.")
  end
  return true
end

local function parse_time(p, name)
  local t = clock.parse_iso8601(p[name])
  if not t then
    return invalid(name, "Use the UTC format yyyy-MM-ddTHH:mm:ssZ.")
  end
  return t
end

-- Does `url` start with one of `schemes` (any case), a host after it?
local function has_scheme(url, schemes)
  for _, scheme in ipairs(schemes) do
    if lower(sub(url, 1, #scheme)) == scheme and find(url, "^[^/]", #scheme + 1) then
      return true
    end
  end
  return false
end

-- The SourceUrls of a create or an update for a task of source_type (and
-- protocol, for live): a JSON array of 1 URL (live) or 1..30 (vod, url),
-- each at most 2000 characters, in a scheme the source is pulled over.
local function source_urls(p, source_type, protocol)
  local urls = json.decode(p.SourceUrls)
  if type(urls) ~= "table" or (next(urls) ~= nil and #urls == 0) then
    return invalid("SourceUrls", "Expected a JSON array of URLs.")
  end
  for _, u in ipairs(urls) do
    if type(u) ~= "string" or u == "" or not within_chars(u, MAX_URL) then
      return invalid("SourceUrls", "Each URL must be a non-empty string of at most 2000 characters.")
    end
  end
  local max_urls = source_type == "live" and 1 or 30
  if #urls < 1 or #urls > max_urls then
    return invalid("SourceUrls", format("SourceType %s takes 1 to %d URLs.", source_type, max_urls))
  end
  local schemes = source_type == "live" and SOURCE_PROTOCOLS[protocol] or source_type == "url" and URL_SOURCE_SCHEMES
  for _, u in ipairs(schemes and urls or {}) do
    if not has_scheme(u, schemes) then
      return invalid("SourceUrls", source_type == "live"
        and format("A live source is pulled over RTMP, SRT or HTTP-FLV: with SourceProtocol %s its URL "
          .. "must start with %s.", protocol, concat(schemes, " or "))
        or "A third-party (url) source is MP4 or HTTP-FLV over HTTP(S): its URLs must start with "
          .. "http:// or https://.")
    end
  end
  return json.array(urls)
end

-- A DstUrl as it is compared for uniqueness: the scheme and the host are
-- case-insensitive, the path is not.
local function dst_identity(dst)
  local authority, rest = match(dst, "^[^:]+://([^/]*)(.*)$")
  return "rtmp://" .. lower(authority or "") .. (rest or "")
end

-- The optional settings of a task, in the order they are checked: the
-- parameter, its check, then the check's default (create only), min, max and
-- why; `field` when TaskInfo names it differently.
local OPTIONAL_SETTINGS = {
  { "RepeatNumber", int_param, 0, -1, nil, "Valid values: -1 (loop), 0, or a positive count." },
  { "FileIndex", int_param, nil, 0 },
  { "Offset", int_param, nil, 1, nil, "The offset must be a whole number of seconds greater than 0." },
  { "CallbackUrl", url_param, field = "CallbackURL" },
  { "RetryInterval", int_param, 60, 60, 300, "Valid values: 60 to 300." },
  { "RetryCount", int_param, 3, 0 },
}

-- CreateLivePullToPush: validates every rule of the operation and stores a task.
-- SourceProtocol is read for live sources only (ignored, not refused, for vod
-- and url); RegionId is accepted; TaskName may be empty.
function M.CreateLivePullToPush(p, ctx)
  for _, name in ipairs({ "Region", "StartTime", "EndTime", "SourceType", "SourceUrls", "DstUrl" }) do
    if not present(p[name]) then
      return missing(name)
    end
  end
  local ok, code, msg = check_region(p, CREATE_REGIONS)
  if not ok then
    return nil, code, msg
  end
  local start_at, end_at
  start_at, code, msg = parse_time(p, "StartTime")
  if not start_at then
    return nil, code, msg
  end
  end_at, code, msg = parse_time(p, "EndTime")
  if not end_at then
    return nil, code, msg
  end
  ok, code, msg = check_times(start_at, end_at, ctx.now)
  if not ok then
    return nil, code, msg
  end
  local source_type = p.SourceType
  if not SOURCE_TYPES[source_type] then
    return invalid("SourceType", "Valid values: live, vod, url.")
  end
  local protocol
  if source_type == "live" then
    if not present(p.SourceProtocol) then
      return missing("SourceProtocol")
    end
    if not SOURCE_PROTOCOLS[p.SourceProtocol] then
      return invalid("SourceProtocol", "Valid values: rtmp, srt, http-flv.")
    end
    protocol = p.SourceProtocol
  end
  local urls
  urls, code, msg = source_urls(p, source_type, protocol)
  if not urls then
    return nil, code, msg
  end
  local dst = p.DstUrl
  if not find(lower(dst), "^rtmp://[^/]+/.") then
    return invalid("DstUrl", "The destination must be an rtmp:// URL with a host and a path.")
  end
  if not within_chars(dst, MAX_URL) then
    return invalid("DstUrl", "At most 2000 characters (UTF-8).")
  end
  local info = {
    TaskName = p.TaskName or "",
    Region = p.Region,
    SourceType = source_type,
    SourceProtocol = protocol,
    SourceUrls = urls,
    DstUrl = dst,
    StartTime = p.StartTime,
    EndTime = p.EndTime,
  }
  for _, o in ipairs(OPTIONAL_SETTINGS) do
    local value
    value, code, msg = o[2](p, o[1], o[3], o[4], o[5], o[6])
    if code then
      return nil, code, msg
    end
    info[o.field or o[1]] = value
  end
  purge_ended(ctx.now)
  local identity = dst_identity(dst)
  for _, id in ipairs(task_order) do
    if dst_identity(tasks[id].info.DstUrl) == identity then
      return nil, "CodeConfigAlreadyExists",
        "The task config already exists: another task pushes to the same DstUrl."
    end
  end
  if #task_order >= (ctx.cfg.max_pull_to_push_tasks or 1000) then
    return nil, "CodeNotEnoughResource", "Not enough resource to create the task."
  end
  local id = uuid()
  while tasks[id] do
    id = uuid()
  end
  tasks[id] = {
    TaskId = id, info = info, start_at = start_at, end_at = end_at,
    created_at = ctx.now, account = ctx.account_id, stopped = false, restart_count = 0,
  }
  task_order[#task_order + 1] = id
  return { RetCode = 0, Description = "OK", TaskId = id },
    { applied = true, detail = { task_id = id } }
end

local function task_not_exist()
  return nil, "CodeTaskNotExist", "The task does not exist."
end

-- The task a request names (Region and TaskId, checked in that order), or nil
-- plus the error. A task is found in its own Region only, unless any_region.
local function find_task(p, ctx, any_region)
  local ok, code, msg = check_region(p)
  if not ok then
    return nil, code, msg
  end
  if not present(p.TaskId) then
    return missing("TaskId")
  end
  purge_ended(ctx.now)
  local t = tasks[p.TaskId]
  if not t or (t.info.Region ~= p.Region and not any_region) then
    return task_not_exist()
  end
  return t
end

-- An operation on one task (StopLivePullToPush, Restart..., Delete...): the
-- task the request names, or the answer that there is none, and then
-- `op(task, its status now, params, ctx)`.
local function on_task(op)
  return function(p, ctx)
    local t, code, msg = find_task(p, ctx)
    if not t then return nil, code, msg end
    return op(t, task_status(t, ctx.now), p, ctx)
  end
end

-- StopLivePullToPush: stops a running task. The page: it "stops running tasks
-- ... It does not affect tasks that are not running": a stopped task answers
-- CodeTaskHasStopped, one that has not started is refused and left as it is.
M.StopLivePullToPush = on_task(function(t, status, _, ctx)
  if status == 3 then
    return nil, "CodeTaskHasStopped", "The task has been stopped."
  end
  if status == 0 then
    return nil, NOT_IN_THIS_STATE, "Specified parameter TaskId is not valid. The task is not running "
      .. "(TaskStatus 0): a stop does not affect a task before its StartTime."
  end
  t.stopped = true
  t.stopped_at = ctx.now
  task_events.emit(t, 3, ctx.now, "TriggerByUser")
  return { TaskId = t.TaskId }, { applied = true, detail = { task_id = t.TaskId } }
end)

local RESTARTED_FROM = { [1] = "running", [2] = "recovering", [3] = "stopped" }

-- RestartLivePullToPush: a running task is stopped and started again, a
-- stopped one is started; before its StartTime a restart "does not take
-- effect", and is refused.
M.RestartLivePullToPush = on_task(function(t, status, _, ctx)
  if status == 0 then
    return nil, NOT_IN_THIS_STATE, "Specified parameter TaskId is not valid. The task has not reached "
      .. "its StartTime (TaskStatus 0): a restart does not take effect."
  end
  t.stopped = false
  t.stopped_at = nil
  t.restart_count = t.restart_count + 1
  t.restarted_at = ctx.now
  task_events.running(t, ctx.now)
  return { TaskId = t.TaskId },
    { applied = true, detail = { task_id = t.TaskId, was = RESTARTED_FROM[status] } }
end)

-- DeleteLivePullToPush: removes a task in any state; a running one is stopped
-- for good (it cannot be restarted: it no longer exists).
M.DeleteLivePullToPush = on_task(function(t, status, _, ctx)
  delete_task(t.TaskId)
  if status == 1 or status == 2 then
    task_events.emit(t, 3, ctx.now, "TriggerByUser")
  end
  return { RetCode = 0, Description = "OK" },
    { applied = true, detail = { task_id = t.TaskId, status = status } }
end)

-- What UpdateLivePullToPush may change, and in which task states (0 before
-- StartTime, 1 running, 3 stopped). The operation's page: Region only before
-- the start; while running (abnormal retries included) only CallbackUrl and
-- RepeatNumber ("RepeatTime"); once stopped everything but Region. Each
-- parameter's own note, where stricter, wins: StartTime "does not take effect"
-- once the task has started; SourceUrls, FileIndex and Offset can be changed
-- "only if the task is stopped".
local UPDATABLE = {
  { "Region", { [0] = true } },
  { "StartTime", { [0] = true } },
  { "EndTime", { [0] = true, [3] = true } },
  { "SourceUrls", { [3] = true } },
  { "RepeatNumber", { [0] = true, [1] = true, [2] = true, [3] = true } },
  { "FileIndex", { [3] = true } },
  { "Offset", { [3] = true } },
  { "CallbackUrl", { [0] = true, [1] = true, [2] = true, [3] = true } },
}

-- Settings a create takes that an update does not (they are not parameters of
-- UpdateLivePullToPush): refused rather than silently ignored.
local NOT_UPDATABLE = { "TaskName", "SourceType", "SourceProtocol", "DstUrl", "RetryInterval", "RetryCount" }

local STATE_NAMES = { [0] = "before its start time", [1] = "while it runs", [2] = "while it recovers",
  [3] = "once it is stopped" }

-- UpdateLivePullToPush: changes a task's settings, as its state allows.
function M.UpdateLivePullToPush(p, ctx)
  local ok, code, msg = check_region(p)
  if not ok then
    return nil, code, msg
  end
  if not present(p.TaskId) then
    return missing("TaskId")
  end
  for _, name in ipairs(NOT_UPDATABLE) do
    if p[name] ~= nil then
      return invalid(name, name .. " is not a parameter of UpdateLivePullToPush.")
    end
  end
  -- The values, checked before the task is looked up.
  local new = {}
  local start_at, end_at
  if present(p.StartTime) then
    start_at, code, msg = parse_time(p, "StartTime")
    if not start_at then
      return nil, code, msg
    end
  end
  if present(p.EndTime) then
    end_at, code, msg = parse_time(p, "EndTime")
    if not end_at then
      return nil, code, msg
    end
  end
  for _, o in ipairs(OPTIONAL_SETTINGS) do
    if present(p[o[1]]) then
      local value
      value, code, msg = o[2](p, o[1], nil, o[4], o[5], o[6])
      if code then
        return nil, code, msg
      end
      new[o.field or o[1]] = value
    end
  end
  local changing = {}
  for _, u in ipairs(UPDATABLE) do
    if present(p[u[1]]) and u[1] ~= "Region" then
      changing[#changing + 1] = u
    end
  end
  -- Region names the task's region, unless the task has not started (the
  -- only state in which it may be changed): look the task up by TaskId.
  purge_ended(ctx.now)
  local t = tasks[p.TaskId]
  if not t then
    return task_not_exist()
  end
  local status = task_status(t, ctx.now)
  local moving = t.info.Region ~= p.Region
  if moving then
    insert(changing, 1, UPDATABLE[1])
  end
  if #changing == 0 then
    return invalid("TaskId", "Specify at least one setting to update: "
      .. "StartTime, EndTime, SourceUrls, RepeatNumber, FileIndex, Offset, CallbackUrl or Region.")
  end
  for _, u in ipairs(changing) do
    if not u[2][status] then
      return nil, NOT_IN_THIS_STATE, "Specified parameter " .. u[1] .. " is not valid. It cannot be updated "
        .. STATE_NAMES[status] .. " (TaskStatus " .. status .. ")."
    end
  end
  local urls
  if present(p.SourceUrls) then
    urls, code, msg = source_urls(p, t.info.SourceType, t.info.SourceProtocol)
    if not urls then
      return nil, code, msg
    end
  end
  if start_at or end_at then
    ok, code, msg = check_times(start_at or t.start_at, end_at or t.end_at, ctx.now)
    if not ok then
      return nil, code, msg
    end
  end
  -- Apply.
  local changed = json.array()
  if moving then
    t.info.Region = p.Region
  end
  if start_at then
    t.start_at = start_at
    t.info.StartTime = p.StartTime
  end
  if end_at then
    t.end_at = end_at
    t.info.EndTime = p.EndTime
  end
  if urls then
    t.info.SourceUrls = urls
  end
  for field, value in pairs(new) do
    t.info[field] = value
  end
  for _, u in ipairs(changing) do
    changed[#changed + 1] = u[1]
  end
  t.updated_at = ctx.now
  return { RetCode = 0, Description = "OK" },
    { applied = true, detail = { task_id = t.TaskId, updated = changed } }
end

-- DescribeLivePullToPush: one task by TaskId.
function M.DescribeLivePullToPush(p, ctx)
  local t, code, msg = find_task(p, ctx)
  if not t then
    return nil, code, msg
  end
  local v = task_view(t, ctx.now)
  v.RetCode = 0
  v.Description = "OK"
  return v, { applied = true }
end

-- DescribeLivePullToPushList: the tasks of a Region, filtered (substring match
-- on DstUrl, TaskId, TaskName) and paged, in creation order.
function M.DescribeLivePullToPushList(p, ctx)
  local ok, code, msg = check_region(p)
  if not ok then
    return nil, code, msg
  end
  local page
  page, code, msg = page_params(p, "PageNumber", 10, 100)
  if not page then
    return nil, code, msg
  end
  purge_ended(ctx.now)
  local matched = {}
  for _, id in ipairs(task_order) do
    local t = tasks[id]
    if t.info.Region == p.Region and fuzzy(t.info.DstUrl, p.DstUrl) and fuzzy(id, p.TaskId)
      and fuzzy(t.info.TaskName, p.TaskName) then
      matched[#matched + 1] = t
    end
  end
  return {
    Total = #matched,
    PageNumber = page.number,
    PageSize = page.size,
    TaskList = page_of(matched, page, function(t)
      return task_view(t, ctx.now)
    end),
  }, { applied = true }
end

--- State for /_emulator/state: every task, evaluated at time now, and their order.
function M.snapshot(now)
  purge_ended(now)
  local out = {}
  for id, t in pairs(tasks) do
    local v = task_view(t, now)
    v.created_at = t.created_at
    v.stopped_at = t.stopped_at
    v.updated_at = t.updated_at
    v.restarted_at = t.restarted_at
    v.restart_count = t.restart_count
    v.account = t.account
    v.health = task_events.view(t)
    out[id] = v
  end
  local order = json.array()
  for i, id in ipairs(task_order) do
    order[i] = id
  end
  return out, order
end

function M.reset()
  tasks, task_order = {}, {}
end

return M
