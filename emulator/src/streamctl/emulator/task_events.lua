-- Pull-to-push tasks' health (a source that fails and recovers) and the task
-- callbacks: POST JSON to the task's CallbackUrl on each status change
-- (callbacks.lua delivers them). aliyun_live.lua owns the tasks and calls in.
--
-- Source faults: a fault of kind "source_down" (faults.lua; POST
-- /_emulator/faults {"kind":"source_down","task_id":..., "source_url":...,
-- "duration_s":...}) takes down, from the emulator time it is posted until
-- that time + duration_s (none: until DELETE /_emulator/faults or a reset),
-- the source of every task it matches: the task with that TaskId, the tasks
-- pulling that SourceUrl, both when both are given, every task when neither is.
--
-- The health of a task that has started and is not stopped, on the emulator
-- clock (RetryInterval I, default 60, and RetryCount N, default 3, are the
-- task's; the states and TaskStatus values are the callback page's):
--   Running (1) from StartTime (or from its creation, when later), or from a
--     restart;
--   Recovering (2) from the instant its source is down; it retries at
--     down + I, down + 2I, ... down + N*I; the first retry that finds the
--     source up makes it Running again (at that retry's instant);
--   Offline (3, TaskInvalidReason RetryTimesOffline) when retry N fails (at
--     once with N = 0). It stays Offline until RestartLivePullToPush.
-- StopLivePullToPush gives Offline (3, TriggerByUser), and so does
-- DeleteLivePullToPush of a running or recovering task. Transitions are
-- evaluated up to now (never past the task's EndTime, where it is deleted)
-- whenever the tasks are read and from the ticker (server.lua, every 200 ms),
-- so a clock moved forward plays every transition in between, in order, each
-- with its own EventTime; moving the clock back undoes nothing.
--
-- A callback, when the task has a CallbackUrl (the one it has at the event):
--   POST, Content-Type: application/json, body (members in this order)
--   {"Event":"<event name>","EventTime":"<unix s, a JSON string>","TaskId":"...",
--    "TaskInfo":{<the task's TaskInfo, with TaskId>},"TaskStatus":1|2|3,
--    "TaskInvalidReason":"..." (Offline only)}
-- The event name is aliyun.pull_to_push_event: "LivePullToPushRuning" by
-- default (the spelling of the page's sample body), or "LivePullToPushRunning"
-- (its field table's). No retries (none are documented): one send, 5 s,
-- success any 2xx. No exit callback is sent (its fields are not documented),
-- neither at EndTime nor on a delete.

local callbacks = require "streamctl.emulator.callbacks"
local json = require "streamctl.emulator.json"

local pairs, ipairs, tostring = pairs, ipairs, tostring
local floor, max, min, huge = math.floor, math.max, math.min, math.huge

local M = {}

local cfg
local windows = {}   -- source faults: { id, task_id, source_url, from, till (nil: open) }

M.DEFAULT_EVENT = "LivePullToPushRuning"
M.EVENTS = { LivePullToPushRuning = true, LivePullToPushRunning = true }
M.TIMEOUT_MS = 5000

local BODY_ORDER = { "Event", "EventTime", "TaskId", "TaskInfo", "TaskStatus", "TaskInvalidReason" }

function M.init(settings)
  cfg = settings.aliyun
end

function M.reset()
  windows = {}
end

-- A source_down fault, as faults.add stored it, posted at emulator time now.
function M.add_source_fault(f, now)
  windows[#windows + 1] = { id = f.id, task_id = f.task_id, source_url = f.source_url, from = now,
    till = f["until"] }
end

-- DELETE /_emulator/faults: every source is up from now on.
function M.end_source_faults(now)
  for _, w in ipairs(windows) do
    if not w.till or w.till > now then
      w.till = max(w.from, now)
    end
  end
end

local function matches(w, t)
  if w.task_id and w.task_id ~= t.TaskId then
    return false
  end
  if w.source_url then
    for _, u in ipairs(t.info.SourceUrls) do
      if u == w.source_url then
        return true
      end
    end
    return false
  end
  return true
end

-- The earliest instant in [a, b] at which t's source is down, or nil.
local function down_from(t, a, b)
  local best
  for _, w in ipairs(windows) do
    if matches(w, t) then
      local s = max(a, w.from)
      if s <= b and s < (w.till or huge) and (best == nil or s < best) then
        best = s
      end
    end
  end
  return best
end

local function up_at(t, instant)
  for _, w in ipairs(windows) do
    if matches(w, t) and w.from <= instant and instant < (w.till or huge) then
      return false
    end
  end
  return true
end

-- Drops the faults that ended by now (every task has been evaluated up to now).
function M.prune(now)
  local kept = {}
  for _, w in ipairs(windows) do
    if not w.till or w.till > now then
      kept[#kept + 1] = w
    end
  end
  windows = kept
end

-- Sends the callback of a status change of task t (when it has a CallbackUrl).
function M.emit(t, status, instant, reason)
  t.last_event = { TaskStatus = status, EventTime = floor(instant), TaskInvalidReason = reason }
  local url = t.info.CallbackURL
  if url == nil or url == "" then
    return nil
  end
  local info = { TaskId = t.TaskId }
  for k, v in pairs(t.info) do
    info[k] = v
  end
  local event = cfg and cfg.pull_to_push_event or M.DEFAULT_EVENT
  local body = json.encode(json.ordered({
    Event = event, EventTime = tostring(floor(instant)), TaskId = t.TaskId, TaskInfo = info,
    TaskStatus = status, TaskInvalidReason = reason,
  }, BODY_ORDER))
  return callbacks.enqueue({
    provider = "aliyun", event = event, method = "POST", url = url, delays = {},
    timeout_ms = M.TIMEOUT_MS,
    success = function(code) return code >= 200 and code < 300 end,
    subject = { task_id = t.TaskId, task_status = status, task_invalid_reason = reason },
    prepare = function()
      return {
        headers = { { "Content-Type", "application/json" } },
        body = body, log_payload = { TaskStatus = status, TaskInvalidReason = reason },
      }
    end,
  })
end

local function go_offline(t, instant)
  t.phase = "offline"
  t.invalid_reason = "RetryTimesOffline"
  M.emit(t, 3, instant, "RetryTimesOffline")
end

-- Plays t's transitions up to now (see the top of this file).
function M.evaluate(t, now)
  if t.stopped then
    return
  end
  local horizon = min(now, t.end_at)
  if horizon < t.start_at then
    return
  end
  if t.phase == nil then
    M.running(t, max(t.start_at, t.created_at))
  end
  local interval = t.info.RetryInterval or 60
  local count = t.info.RetryCount or 3
  for _ = 1, 10000 do
    if t.phase == "running" then
      local down = down_from(t, t.checked_to, horizon)
      if not down then
        t.checked_to = max(t.checked_to, horizon)
        return
      end
      t.phase, t.down_since, t.retries = "recovering", down, 0
      M.emit(t, 2, down)
      if count <= 0 then
        go_offline(t, down)
      end
    elseif t.phase == "recovering" then
      local instant = t.down_since + (t.retries + 1) * interval
      if instant > horizon or instant >= t.end_at then
        return
      end
      t.retries = t.retries + 1
      if up_at(t, instant) then
        M.running(t, instant)
      elseif t.retries >= count then
        go_offline(t, instant)
      end
    else
      return
    end
  end
end

-- t runs from `instant` (its start, a recovery, a restart): callback 1.
function M.running(t, instant)
  t.phase, t.run_since, t.checked_to, t.retries = "running", instant, instant, 0
  t.down_since, t.invalid_reason = nil, nil
  M.emit(t, 1, instant)
end

-- The status a started, unstopped task has: 1 running, 2 recovering, 3 offline.
function M.status(t)
  if t.phase == "recovering" then
    return 2
  elseif t.phase == "offline" then
    return 3
  end
  return 1
end

-- The health fields of a task, for the state.
function M.view(t)
  return {
    phase = t.phase, down_since = t.down_since, retries = t.retries,
    TaskInvalidReason = t.stopped and "TriggerByUser" or t.invalid_reason,
    last_event = t.last_event,
  }
end

-- The source faults, for the state.
function M.snapshot()
  local out = json.array()
  for i, w in ipairs(windows) do
    out[i] = { id = w.id, task_id = w.task_id, source_url = w.source_url, from = w.from, ["until"] = w.till }
  end
  return out
end

return M
