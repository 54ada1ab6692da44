-- The pull-to-push relay tasks the emulator holds (live_relay.lua says what
-- the operations do with them): the tasks by TaskId and their creation
-- order, brought up to now before each reading (health, EndTime), each
-- one's status and view, the task a request names, and the state
-- /_emulator/state shows.

local json = require "streamctl.emulator.json"
local task_events = require "streamctl.emulator.task_events"
local params = require "streamctl.emulator.live_params"
local checks = require "streamctl.emulator.live_relay_checks"

local pairs, ipairs = pairs, ipairs
local remove = table.remove
local missing, present, uuid = params.missing, params.present, params.uuid

local M = {}

local tasks = {}
local task_order = {}   -- TaskIds in creation order

-- Deletes the tasks that have run past their EndTime (the create's page: a
-- task "automatically stops and is deleted at the specified end time"). Run
-- lazily, before anything reads or changes the tasks.
function M.purge_ended(now)
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

function M.delete(id)
  tasks[id] = nil
  for i, tid in ipairs(task_order) do
    if tid == id then
      remove(task_order, i)
      break
    end
  end
end

-- The task of TaskId `id`, or nil.
function M.get(id)
  return tasks[id]
end

-- The tasks, in creation order (a new list).
function M.in_order()
  local out = {}
  for i, id in ipairs(task_order) do
    out[i] = tasks[id]
  end
  return out
end

-- How many tasks there are.
function M.count()
  return #task_order
end

-- A TaskId no task has.
function M.new_id()
  local id = uuid()
  while tasks[id] do
    id = uuid()
  end
  return id
end

-- Stores the new task `t` (t.TaskId from new_id), the last in order.
function M.add(t)
  tasks[t.TaskId] = t
  task_order[#task_order + 1] = t.TaskId
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

M.status = task_status

-- A task as the Describe operations show it. TaskExitReason is only returned
-- for an exited task (-1), which is deleted at once here, so it never shows.
local function task_view(t, now)
  return {
    TaskId = t.TaskId,
    TaskStatus = task_status(t, now),
    TaskInfo = t.info,
  }
end

M.view = task_view

function M.not_exist()
  return nil, "CodeTaskNotExist", "The task does not exist."
end

-- The task a request names (Region and TaskId, checked in that order), or nil
-- plus the error. A task is found in its own Region only, unless any_region.
function M.find(p, ctx, any_region)
  local ok, code, msg = checks.region(p)
  if not ok then
    return nil, code, msg
  end
  if not present(p.TaskId) then
    return missing("TaskId")
  end
  M.purge_ended(ctx.now)
  local t = tasks[p.TaskId]
  if not t or (t.info.Region ~= p.Region and not any_region) then
    return M.not_exist()
  end
  return t
end

--- State for /_emulator/state: every task, evaluated at time now, and their order.
function M.snapshot(now)
  M.purge_ended(now)
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
