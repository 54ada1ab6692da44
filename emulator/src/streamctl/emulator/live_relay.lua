-- ApsaraVideo Live's pull-to-push relay tasks in the emulator
-- (aliyun_live.lua says their lifecycle): create, update, restart, stop,
-- delete, describe and list, each task's status computed from the
-- emulator's clock and its source's health (task_events.lua). Its parts:
--   live_relay_tasks.lua   the tasks held, their status and views
--   live_relay_checks.lua  the checks of a task's settings create and
--                          update share
--   live_relay_update.lua  UpdateLivePullToPush

local notify = require "streamctl.emulator.aliyun_notify"
local task_events = require "streamctl.emulator.task_events"
local params = require "streamctl.emulator.live_params"
local checks = require "streamctl.emulator.live_relay_checks"
local tasks = require "streamctl.emulator.live_relay_tasks"
local update = require "streamctl.emulator.live_relay_update"

local ipairs = ipairs
local find, lower = string.find, string.lower
local SOURCE_TYPES = params.SOURCE_TYPES
local SOURCE_PROTOCOLS, MAX_URL = params.SOURCE_PROTOCOLS, params.MAX_URL
local missing, invalid, present = params.missing, params.invalid, params.present
local within_chars, page_params, page_of, fuzzy = params.within_chars, params.page_params, params.page_of, params.fuzzy
local NOT_IN_THIS_STATE, OPTIONAL_SETTINGS = checks.NOT_IN_THIS_STATE, checks.OPTIONAL_SETTINGS

local M = {}

-- The settings (the notify presets, the task event name).
function M.init(settings)
  notify.init(settings)
  task_events.init(settings)
end

-- Brings the tasks up to now (health, callbacks, EndTime): the ticker's call.
function M.tick(now)
  tasks.purge_ended(now)
end

-- A create's parameters every task needs, its Region, and its times:
-- { start_at, end_at }, or nil plus the error.
local function read_window(p, now)
  for _, name in ipairs({ "Region", "StartTime", "EndTime", "SourceType", "SourceUrls", "DstUrl" }) do
    if not present(p[name]) then
      return missing(name)
    end
  end
  local ok, code, msg = checks.region(p)
  if not ok then
    return nil, code, msg
  end
  local start_at, end_at
  start_at, code, msg = checks.parse_time(p, "StartTime")
  if not start_at then
    return nil, code, msg
  end
  end_at, code, msg = checks.parse_time(p, "EndTime")
  if not end_at then
    return nil, code, msg
  end
  ok, code, msg = checks.times(start_at, end_at, now)
  if not ok then
    return nil, code, msg
  end
  return { start_at = start_at, end_at = end_at }
end

-- A create's source: { type, protocol (live only), urls }, or nil plus the
-- error.
local function read_source(p)
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
  local urls, code, msg = checks.source_urls(p, source_type, protocol)
  if not urls then
    return nil, code, msg
  end
  return { type = source_type, protocol = protocol, urls = urls }
end

-- The new task's TaskInfo (its DstUrl checked, then its optional settings),
-- or nil plus the error.
local function task_info(p, source)
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
    SourceType = source.type,
    SourceProtocol = source.protocol,
    SourceUrls = source.urls,
    DstUrl = dst,
    StartTime = p.StartTime,
    EndTime = p.EndTime,
  }
  for _, o in ipairs(OPTIONAL_SETTINGS) do
    local value, code, msg = o[2](p, o[1], o[3], o[4], o[5], o[6])
    if code then
      return nil, code, msg
    end
    info[o.field or o[1]] = value
  end
  return info
end

-- Whether a task pushing to `dst` may be added: no task pushes there yet and
-- the account's tasks are fewer than the limit; else nil plus the error.
local function check_room(dst, ctx)
  tasks.purge_ended(ctx.now)
  local identity = checks.dst_identity(dst)
  for _, t in ipairs(tasks.in_order()) do
    if checks.dst_identity(t.info.DstUrl) == identity then
      return nil, "CodeConfigAlreadyExists",
        "The task config already exists: another task pushes to the same DstUrl."
    end
  end
  if tasks.count() >= (ctx.cfg.max_pull_to_push_tasks or 1000) then
    return nil, "CodeNotEnoughResource", "Not enough resource to create the task."
  end
  return true
end

-- CreateLivePullToPush: validates every rule of the operation and stores a task.
-- SourceProtocol is read for live sources only (ignored, not refused, for vod
-- and url); RegionId is accepted; TaskName may be empty.
function M.CreateLivePullToPush(p, ctx)
  local window, code, msg = read_window(p, ctx.now)
  if not window then
    return nil, code, msg
  end
  local source, info, ok
  source, code, msg = read_source(p)
  if source then
    info, code, msg = task_info(p, source)
  end
  if info then
    ok, code, msg = check_room(p.DstUrl, ctx)
  end
  if not ok then
    return nil, code, msg
  end
  local id = tasks.new_id()
  tasks.add({
    TaskId = id, info = info, start_at = window.start_at, end_at = window.end_at,
    created_at = ctx.now, account = ctx.account_id, stopped = false, restart_count = 0,
  })
  return { RetCode = 0, Description = "OK", TaskId = id },
    { applied = true, detail = { task_id = id } }
end

-- An operation on one task (StopLivePullToPush, Restart..., Delete...): the
-- task the request names, or the answer that there is none, and then
-- `op(task, its status now, params, ctx)`.
local function on_task(op)
  return function(p, ctx)
    local t, code, msg = tasks.find(p, ctx)
    if not t then return nil, code, msg end
    return op(t, tasks.status(t, ctx.now), p, ctx)
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
  tasks.delete(t.TaskId)
  if status == 1 or status == 2 then
    task_events.emit(t, 3, ctx.now, "TriggerByUser")
  end
  return { RetCode = 0, Description = "OK" },
    { applied = true, detail = { task_id = t.TaskId, status = status } }
end)

-- UpdateLivePullToPush: changes a task's settings, as its state allows
-- (live_relay_update.lua).
M.UpdateLivePullToPush = update.UpdateLivePullToPush

-- DescribeLivePullToPush: one task by TaskId.
function M.DescribeLivePullToPush(p, ctx)
  local t, code, msg = tasks.find(p, ctx)
  if not t then
    return nil, code, msg
  end
  local v = tasks.view(t, ctx.now)
  v.RetCode = 0
  v.Description = "OK"
  return v, { applied = true }
end

-- DescribeLivePullToPushList: the tasks of a Region, filtered (substring match
-- on DstUrl, TaskId, TaskName) and paged, in creation order.
function M.DescribeLivePullToPushList(p, ctx)
  local ok, code, msg = checks.region(p)
  if not ok then
    return nil, code, msg
  end
  local page
  page, code, msg = page_params(p, "PageNumber", 10, 100)
  if not page then
    return nil, code, msg
  end
  tasks.purge_ended(ctx.now)
  local matched = {}
  for _, t in ipairs(tasks.in_order()) do
    if t.info.Region == p.Region and fuzzy(t.info.DstUrl, p.DstUrl) and fuzzy(t.TaskId, p.TaskId)
      and fuzzy(t.info.TaskName, p.TaskName) then
      matched[#matched + 1] = t
    end
  end
  return {
    Total = #matched,
    PageNumber = page.number,
    PageSize = page.size,
    TaskList = page_of(matched, page, function(t)
      return tasks.view(t, ctx.now)
    end),
  }, { applied = true }
end

--- State for /_emulator/state: every task, evaluated at time now, and their order.
M.snapshot = tasks.snapshot

function M.reset()
  tasks.reset()
end

return M
