--- The relay tasks' look-ups: whether a create, an update or a restart of
-- a pull-to-push task whose outcome is unknown took effect
-- (streamctl.engine.runner's `recover`, streamctl.aliyun's operations).
-- A create is looked up by its DstUrl (DescribeLivePullToPushList, one page
-- read by streamctl.pipeline.pages' rule); an update or a restart by its
-- task (DescribeLivePullToPush).
-- @module streamctl.aliyun.tasks

local errors = require "streamctl.base.errors"
local jsonenc = require "streamctl.base.json"
local pages = require "streamctl.pipeline.pages"

local type, tostring, tonumber, ipairs, pairs = type, tostring, tonumber, ipairs, pairs
local format = string.format

local M = {}

-- What a create sent, as DescribeLivePullToPushList shows it in TaskInfo
-- (parameter -> TaskInfo key; SourceUrls is compared as a list).
local CREATE_INFO = {
  TaskName = "TaskName", SourceType = "SourceType", SourceProtocol = "SourceProtocol", DstUrl = "DstUrl",
  StartTime = "StartTime", EndTime = "EndTime", RepeatNumber = "RepeatNumber", FileIndex = "FileIndex",
  Offset = "Offset", CallbackUrl = "CallbackURL", RetryCount = "RetryCount", RetryInterval = "RetryInterval",
}

local function same_urls(listed, sent)
  if sent == nil then return true end
  if type(listed) == "string" then return listed == sent end
  local want = jsonenc.decode(sent)
  if type(listed) ~= "table" or type(want) ~= "table" or #listed ~= #want then return false end
  for i = 1, #want do
    if listed[i] ~= want[i] then return false end
  end
  return true
end

-- Does `task` (a TaskList entry, or a DescribeLivePullToPush answer) show
-- every setting in `p` (a create's or an update's parameters)?
local function has_settings(task, p)
  local info = type(task) == "table" and task.TaskInfo
  if type(info) ~= "table" then return false end
  for param, key in pairs(CREATE_INFO) do
    local sent, shown = p[param], info[key]
    if shown == nil then shown = "" end
    if sent ~= nil and tostring(shown) ~= sent then return false end
  end
  return same_urls(info.SourceUrls, p.SourceUrls)
end

-- Is `task` the one this create made? The same settings (an unnamed create
-- does not make a named task), and not stopped (3) or exited (-1): a task
-- that someone else made for the same DstUrl, or an old one, is not ours.
local function is_our_task(task, p)
  local status = tonumber(type(task) == "table" and task.TaskStatus)
  if status == 3 or status == -1 then return false end
  if p.TaskName == nil and type(task.TaskInfo) == "table" and (task.TaskInfo.TaskName or "") ~= "" then
    return false
  end
  return has_settings(task, p)
end

-- The relay tasks a create's look-up reads (streamctl.pipeline.pages): one
-- page of TASKS_PAGE (DescribeLivePullToPushList's largest PageSize).
local TASKS_PAGE = 100
M.PAGE = TASKS_PAGE
local TASKS = pages.listing {
  list = "TaskList", what = "a task (no TaskId)", total = "Total", number = "PageNumber",
  key = function(t) return type(t) == "table" and type(t.TaskId) == "string" and t.TaskId or nil end,
}

-- The task this create made, among those the look-up lists: `{ TaskId,
-- Recovered }`, or nil.
local function our_listed_task(result, p)
  for _, task in ipairs(type(result.TaskList) == "table" and result.TaskList or {}) do
    if is_our_task(task, p) then return { TaskId = task.TaskId, Recovered = true } end
  end
  return nil
end

-- A create's look-up proves the create absent only when its page is every
-- task for the DstUrl: a page refused by the pages' rule (a Total of 1e300,
-- none, more tasks than asked), or a valid one that is not the whole list
-- (more than TASKS_PAGE tasks for the DstUrl, a page short of its Total)
-- without ours, leaves the outcome unknown: said, and the create not sent
-- again (two relays to one DstUrl; the caller looks).
local function tasks_unproven(result, p)
  local ids, whole = pages.lookup(TASKS, result, TASKS_PAGE)
  if ids and (whole or our_listed_task(result, p)) then return nil end
  local why = ids and format("lists %d of the %d tasks for it (one page of %d)", #ids, result.Total, TASKS_PAGE)
    or whole
  return errors.new { provider = "aliyun", action = "DescribeLivePullToPushList", code = "InvalidResponse",
    kind = "response", request_id = result.RequestId, retryable = false, page = 1,
    message = format("page 1 of the relay tasks for the create's DstUrl %s: the create may have been applied and "
      .. "the look-up cannot tell; not sent again", why) }
end

-- After an update or a restart whose outcome is unknown, the task itself
-- (DescribeLivePullToPush) says whether it took effect: an update did if the
-- task shows every setting it sent; a restart did if the task runs (1).
local function task_check(done)
  return {
    action = "DescribeLivePullToPush",
    params = function(p) return { Region = p.Region, TaskId = p.TaskId } end,
    found = function(result, p)
      if done(result, p) then return { TaskId = p.TaskId, Recovered = true } end
      return nil
    end,
  }
end

M.ours, M.unproven, M.check, M.has_settings = our_listed_task, tasks_unproven, task_check, has_settings

return M
