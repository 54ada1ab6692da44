-- UpdateLivePullToPush in the emulator (live_relay.lua holds the other
-- pull-to-push operations): which settings it takes, which of them a task's
-- state allows to change, their checks, and the change.

local json = require "streamctl.emulator.json"
local params = require "streamctl.emulator.live_params"
local checks = require "streamctl.emulator.live_relay_checks"
local tasks = require "streamctl.emulator.live_relay_tasks"

local pairs, ipairs = pairs, ipairs
local insert = table.insert
local missing, invalid, present = params.missing, params.invalid, params.present
local NOT_IN_THIS_STATE, OPTIONAL_SETTINGS = checks.NOT_IN_THIS_STATE, checks.OPTIONAL_SETTINGS

local M = {}

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

-- The parameters an update takes, and the times it names.
local function read_parameters(p, u)
  local ok, code, msg = checks.region(p)
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
  if present(p.StartTime) then
    u.start_at, code, msg = checks.parse_time(p, "StartTime")
    if not u.start_at then
      return nil, code, msg
    end
  end
  if present(p.EndTime) then
    u.end_at, code, msg = checks.parse_time(p, "EndTime")
    if not u.end_at then
      return nil, code, msg
    end
  end
  return true
end

-- What an update asks for, its values checked before the task is looked up:
-- { start_at, end_at, new = { [TaskInfo field] = value }, changing = the
-- UPDATABLE entries it names, Region aside }; or nil plus the error.
local function read_update(p)
  local u = { new = {}, changing = {} }
  local ok, code, msg = read_parameters(p, u)
  if not ok then
    return nil, code, msg
  end
  for _, o in ipairs(OPTIONAL_SETTINGS) do
    if present(p[o[1]]) then
      local value
      value, code, msg = o[2](p, o[1], nil, o[4], o[5], o[6])
      if code then
        return nil, code, msg
      end
      u.new[o.field or o[1]] = value
    end
  end
  for _, entry in ipairs(UPDATABLE) do
    if present(p[entry[1]]) and entry[1] ~= "Region" then
      u.changing[#u.changing + 1] = entry
    end
  end
  return u
end

-- Whether the task's state (`status`) allows every change the update asks
-- for (u.changing, the Region first when u.moving); else nil plus the error.
local function check_state_allows(u, status)
  if u.moving then
    insert(u.changing, 1, UPDATABLE[1])
  end
  if #u.changing == 0 then
    return invalid("TaskId", "Specify at least one setting to update: "
      .. "StartTime, EndTime, SourceUrls, RepeatNumber, FileIndex, Offset, CallbackUrl or Region.")
  end
  for _, entry in ipairs(u.changing) do
    if not entry[2][status] then
      return nil, NOT_IN_THIS_STATE, "Specified parameter " .. entry[1] .. " is not valid. It cannot be updated "
        .. STATE_NAMES[status] .. " (TaskStatus " .. status .. ")."
    end
  end
  return true
end

-- The checks that depend on the task: its source's URLs (into u.urls) and
-- its times once changed.
local function check_against_task(p, u, t, now)
  local code, msg
  if present(p.SourceUrls) then
    u.urls, code, msg = checks.source_urls(p, t.info.SourceType, t.info.SourceProtocol)
    if not u.urls then
      return nil, code, msg
    end
  end
  if u.start_at or u.end_at then
    local ok
    ok, code, msg = checks.times(u.start_at or t.start_at, u.end_at or t.end_at, now)
    if not ok then
      return nil, code, msg
    end
  end
  return true
end

-- Makes the update's changes to task `t`; the answer.
local function apply(p, u, t, now)
  local changed = json.array()
  if u.moving then
    t.info.Region = p.Region
  end
  if u.start_at then
    t.start_at = u.start_at
    t.info.StartTime = p.StartTime
  end
  if u.end_at then
    t.end_at = u.end_at
    t.info.EndTime = p.EndTime
  end
  if u.urls then
    t.info.SourceUrls = u.urls
  end
  for field, value in pairs(u.new) do
    t.info[field] = value
  end
  for _, entry in ipairs(u.changing) do
    changed[#changed + 1] = entry[1]
  end
  t.updated_at = now
  return { RetCode = 0, Description = "OK" },
    { applied = true, detail = { task_id = t.TaskId, updated = changed } }
end

-- UpdateLivePullToPush: changes a task's settings, as its state allows.
function M.UpdateLivePullToPush(p, ctx)
  local u, code, msg = read_update(p)
  if not u then
    return nil, code, msg
  end
  -- Region names the task's region, unless the task has not started (the
  -- only state in which it may be changed): look the task up by TaskId.
  tasks.purge_ended(ctx.now)
  local t = tasks.get(p.TaskId)
  if not t then
    return tasks.not_exist()
  end
  local status = tasks.status(t, ctx.now)
  u.moving = t.info.Region ~= p.Region
  local ok
  ok, code, msg = check_state_allows(u, status)
  if ok then
    ok, code, msg = check_against_task(p, u, t, ctx.now)
  end
  if not ok then
    return nil, code, msg
  end
  return apply(p, u, t, ctx.now)
end

return M
