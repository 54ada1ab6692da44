-- ApsaraVideo Live operations (API version 2016-11-01) and their state.
--
-- Each operation receives the verified request's parameters (name -> value) and
-- a context { account_id, account, now (emulator time), cfg } and returns either
--   fields, info          -- success: response fields (RequestId is added by the
--                            caller), info.applied (state changed or read done),
--                            info.detail (what happened, for the request log)
-- or
--   nil, code, message    -- an error code from the table in aliyun_response.lua
--
-- State (global to the emulator, not per account; `account` records who wrote):
--   streams["<domain>/<app>/<stream>"] = { DomainName, AppName, StreamName,
--       status = "forbidden" | "normal"  (as of now: a passed end reads "normal"),
--       ends_at, ends_by ("resume_time" | "default": 6 months after the forbid),
--       ResumeTime, Oneshot, forbid_count, resume_count, interrupt_count,
--       updated_at, account }; the block list's places (aliyun.block_list_limit,
--       every domain): live_places.lua
--   domains: those Live calls named, for DescribeLiveUserDomains (live_domains.lua)
--   online["<domain>/<app>/<stream>"] = { DomainName, AppName, StreamName,
--       PublishTime, ClientIp }: streams being published, set through the
--       control API (the emulator has no publishers); a forbid takes a stream
--       offline and a blocked one cannot be marked online
--   tasks["<TaskId>"] = { TaskId, info (TaskInfo, with Region), start_at, end_at,
--       stopped, created_at, stopped_at, updated_at, restarted_at, restart_count,
--       account }; TaskStatus is computed (task_status), not stored
--
-- Pull-to-push task lifecycle, from the operations' pages:
--   * A task runs from StartTime to EndTime and "automatically stops and is
--     deleted" at EndTime (CreateLivePullToPush): from EndTime on it is gone, its
--     DstUrl is free and every operation answers CodeTaskNotExist. Evaluated
--     lazily, against the emulator clock, before anything reads the tasks.
--   * TaskStatus: 0 before StartTime, 1 running, 2 recovering (its source is
--     down: a source_down fault, task_events.lua), 3 stopped by
--     StopLivePullToPush or offline once its retries ran out. Each change is
--     a callback to the task's CallbackUrl (task_events.lua).
--     -1 (exited) is never seen: an exited task is deleted at once.
--     TaskExitReason is only returned for an exited task, so it never shows.
--   * StopLivePullToPush stops a running task; it "does not affect tasks that
--     are not running": a stopped one answers CodeTaskHasStopped, one that has
--     not started is refused (InvalidParameter, a strict choice) and unchanged.
--     A stopped task stays until its EndTime; RestartLivePullToPush restarts it.
--   * RestartLivePullToPush: a running task is stopped and started, a stopped
--     one started; before StartTime it "does not take effect": refused
--     (InvalidParameter, a strict choice).
--   * DeleteLivePullToPush removes a task in any state (a running one stops for
--     good); afterwards the task is unknown (CodeTaskNotExist).
--   * UpdateLivePullToPush: see UPDATABLE below.
--
-- Stream ingest callbacks: a stream marked online sends publish, one taken
-- offline (or cut by a forbid) publish_done (aliyun_notify.lua, which also
-- holds the Set/Describe/DeleteLiveStreamsNotifyUrlConfig operations).
local notify = require "streamctl.emulator.aliyun_notify"
local task_events = require "streamctl.emulator.task_events"
local params = require "streamctl.emulator.live_params"
local live_streams = require "streamctl.emulator.live_streams"
local relay = require "streamctl.emulator.live_relay"
local domains = require "streamctl.emulator.live_domains"
local blocks = require "streamctl.emulator.live_blocks"
local history = require "streamctl.emulator.live_history"

local pairs = pairs

local M = {}

-- Operations that need a live domain on the account (CodeInvalidAliUid).
M.NEEDS_LIVE_DOMAIN = {
  CreateLivePullToPush = true, StopLivePullToPush = true, UpdateLivePullToPush = true,
  RestartLivePullToPush = true, DeleteLivePullToPush = true,
  DescribeLivePullToPush = true, DescribeLivePullToPushList = true,
}

-- The notify configuration operations (aliyun_notify.lua), given the
-- aliyun.domains check.
local function with_domains(op)
  return function(p, ctx)
    ctx.domain_known = function(domain)
      return params.domain_known(ctx, domain)
    end
    return op(p, ctx)
  end
end
M.OPERATIONS = {
  SetLiveStreamsNotifyUrlConfig = with_domains(notify.SetLiveStreamsNotifyUrlConfig),
  DescribeLiveStreamsNotifyUrlConfig = with_domains(notify.DescribeLiveStreamsNotifyUrlConfig),
  DeleteLiveStreamsNotifyUrlConfig = with_domains(notify.DeleteLiveStreamsNotifyUrlConfig),
  ForbidLiveStream = live_streams.ForbidLiveStream,
  ResumeLiveStream = live_streams.ResumeLiveStream,
  DescribeLiveStreamsBlockList = live_streams.DescribeLiveStreamsBlockList,
  DescribeLiveStreamsOnlineList = live_streams.DescribeLiveStreamsOnlineList,
  CreateLivePullToPush = relay.CreateLivePullToPush,
  UpdateLivePullToPush = relay.UpdateLivePullToPush,
  RestartLivePullToPush = relay.RestartLivePullToPush,
  DeleteLivePullToPush = relay.DeleteLivePullToPush,
  StopLivePullToPush = relay.StopLivePullToPush,
  DescribeLivePullToPush = relay.DescribeLivePullToPush,
  DescribeLivePullToPushList = relay.DescribeLivePullToPushList,
  DescribeLiveUserDomains = domains.DescribeLiveUserDomains,
  SetLiveStreamBlock = blocks.SetLiveStreamBlock,
  DeleteLiveStreamBlock = blocks.DeleteLiveStreamBlock,
  DescribeStreamLocationBlock = blocks.DescribeStreamLocationBlock,
  DescribeLiveStreamsPublishList = history.DescribeLiveStreamsPublishList,
  DescribeLiveStreamsControlHistory = history.DescribeLiveStreamsControlHistory,
}

-- Every operation notes the domains it accepts (live_params.domain_known);
-- one answered with success that names a stream is in its history
-- (live_history.lua: DescribeLiveStreamsControlHistory).
-- (every value an operation returns passed on: an error's detail is its fourth)
local function noted(action, p, ctx, ...)
  if (...) then history.control(action, p, ctx) end
  return ...
end
for action, op in pairs(M.OPERATIONS) do
  M.OPERATIONS[action] = function(p, ctx)
    ctx.note_domain = domains.note
    return noted(action, p, ctx, op(p, ctx))
  end
end

local cfg

function M.init(settings)
  cfg = settings.aliyun
  relay.init(settings)
  domains.init(settings)
end

function M.tick(now)
  relay.tick(now)
  live_streams.tick(now)
end
M.mark_online = live_streams.mark_online
M.mark_offline = live_streams.mark_offline
M.online_snapshot = live_streams.online_snapshot

-- State for /_emulator/state, evaluated at time now.
function M.snapshot(now)
  local tasks, order = relay.snapshot(now)
  return { streams = live_streams.snapshot(now), tasks = tasks, task_order = order,
    block_list = { places_in_use = live_streams.places_in_use(now), limit = cfg and cfg.block_list_limit },
    online = live_streams.online_snapshot(now), notify = notify.snapshot(), source_faults = task_events.snapshot(),
    stream_blocks = blocks.snapshot(now) }
end

function M.reset()
  live_streams.reset()
  domains.reset()
  relay.reset()
  notify.reset()
  task_events.reset()
  blocks.reset()
  history.reset()
end

return M
