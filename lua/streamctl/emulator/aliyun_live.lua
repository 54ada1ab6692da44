-- ApsaraVideo Live operations (API version 2016-11-01) and their state.
--
-- Each operation receives the verified request's parameters (name -> value) and
-- a context { account_id, account, now (emulator time), cfg } and returns either
--   fields, info          -- success: response fields (RequestId is added by the
--                            caller), info.applied (state changed or read done),
--                            info.detail (what happened, for the request log)
-- or
--   nil, code, message    -- an error code from the table in aliyun.lua
--
-- State (global to the emulator, not per account; `account` records who wrote):
--   streams["<domain>/<app>/<stream>"] = { DomainName, AppName, StreamName,
--       status = "forbidden" | "normal"  (as of now: a passed ResumeTime reads "normal"),
--       ResumeTime, Oneshot, forbid_count, resume_count, interrupt_count,
--       updated_at, account }
--   tasks["<TaskId>"] = { TaskId, info (TaskInfo, with Region), start_at, end_at,
--       stopped, created_at, stopped_at, account }; TaskStatus and TaskExitReason
--       are computed (task_status), not stored
--
-- Task status is computed from the emulator clock: 0 before StartTime, 1 between
-- StartTime and EndTime, 3 after StopLivePullToPush (TaskExitReason TriggerByUser),
-- -1 from EndTime on (TaskExitReason OverEndTime). Exited (-1) tasks no longer
-- hold their DstUrl and answer CodeTaskNotExist to StopLivePullToPush; they stay
-- visible to the Describe operations.

local json = require "streamctl.emulator.json"
local clock = require "streamctl.emulator.clock"

local type = type
local pairs = pairs
local ipairs = ipairs
local tonumber = tonumber
local next = next
local ceil = math.ceil
local random = math.random
local format = string.format
local match = string.match
local find = string.find
local lower = string.lower
local sub = string.sub
local sort = table.sort

local _M = {}

local streams = {}
local tasks = {}
local task_order = {}   -- TaskIds in creation order

local REGIONS = {
    ["ap-southeast-1"] = true, ["ap-southeast-5"] = true, ["cn-beijing"] = true,
    ["cn-shanghai"] = true, ["cn-shenzhen"] = true,
}
local SOURCE_TYPES = { live = true, vod = true, url = true }
local SOURCE_PROTOCOLS = { rtmp = true, srt = true, ["http-flv"] = true, hls = true }
local MAX_URL = 2000
local MAX_SPAN = 7 * 86400

local function missing(name)
    return nil, "Missing" .. name, name .. " is mandatory for this action."
end

local function invalid(name, why)
    local msg = "Specified parameter " .. name .. " is not valid."
    if why then
        msg = msg .. " " .. why
    end
    return nil, "InvalidParameter", msg
end

local function present(v)
    return v ~= nil and v ~= ""
end

local function parse_int(s)
    if type(s) ~= "string" or not match(s, "^%-?%d+$") then
        return nil
    end
    return tonumber(s)
end

-- An optional integer parameter: `default` when absent, its value when it is an
-- integer in min..max (max nil: no upper bound), else nil plus the
-- InvalidParameter error (with `why` in the message).
local function int_param(p, name, default, min, max, why)
    if not present(p[name]) then
        return default
    end
    local n = parse_int(p[name])
    if not n or n < min or (max and n > max) then
        return invalid(name, why)
    end
    return n
end

-- An optional URL parameter: nil when absent, its value when it has at most
-- MAX_URL characters, else nil plus the InvalidParameter error.
local function url_param(p, name)
    if not present(p[name]) then
        return nil
    end
    if #p[name] > MAX_URL then
        return invalid(name, "At most 2000 characters.")
    end
    return p[name]
end

-- The paging of a Describe*List request: { number, size } from the parameter
-- `number_name` (>= 1, default 1) and PageSize (1..max_size, default
-- default_size); or nil plus the InvalidParameter error.
local function page_params(p, number_name, default_size, max_size)
    local number, code, msg = int_param(p, number_name, 1, 1)
    if not number then
        return nil, code, msg
    end
    local size
    size, code, msg = int_param(p, "PageSize", default_size, 1, max_size,
        "Valid values: 1 to " .. max_size .. ".")
    if not size then
        return nil, code, msg
    end
    return { number = number, size = size }
end

-- The items of list on that page (a JSON array), each passed through view when
-- one is given.
local function page_of(list, page, view)
    local out = json.array()
    for i = (page.number - 1) * page.size + 1, page.number * page.size do
        local item = list[i]
        if item == nil then
            break
        end
        out[#out + 1] = view and view(item) or item
    end
    return out
end

local function uuid()
    return format("%08x-%04x-4%03x-%04x-%04x%08x",
        random(0, 0x7fffffff), random(0, 0xffff), random(0, 0xfff),
        0x8000 + random(0, 0x3fff), random(0, 0xffff), random(0, 0x7fffffff))
end

local function domain_known(ctx, domain)
    local list = ctx.cfg.domains
    if not list or #list == 0 then
        return true
    end
    for _, d in ipairs(list) do
        if d == domain then
            return true
        end
    end
    return false
end

local function domain_not_found()
    return nil, "InvalidDomain.NotFound", "The domain provided does not exist in our records."
end

local function stream_key(domain, app, stream)
    return domain .. "/" .. app .. "/" .. stream
end

-- Whether a stream record is on the block list at time now.
local function is_blocked(s, now)
    if s.status ~= "forbidden" then
        return false
    end
    return s.resume_at == nil or s.resume_at > now
end

-- The record of a stream, created (not blocked) on first use.
local function stream_record(p)
    local key = stream_key(p.DomainName, p.AppName, p.StreamName)
    local s = streams[key]
    if not s then
        s = {
            DomainName = p.DomainName, AppName = p.AppName, StreamName = p.StreamName,
            status = "normal", forbid_count = 0, resume_count = 0, interrupt_count = 0,
        }
        streams[key] = s
    end
    return key, s
end

local function check_stream_params(p)
    for _, name in ipairs({ "DomainName", "AppName", "StreamName", "LiveStreamType" }) do
        if not present(p[name]) then
            return missing(name)
        end
    end
    if p.LiveStreamType ~= "publisher" then
        return invalid("LiveStreamType", "Valid value: publisher.")
    end
    return true
end

-- ForbidLiveStream: puts a stream on the block list (until ResumeTime, when
-- given); with Oneshot=yes it only cuts the current ingest and blocks nothing.
function _M.ForbidLiveStream(p, ctx)
    local ok, code, msg = check_stream_params(p)
    if not ok then
        return nil, code, msg
    end
    if p.AppName == "*" then
        return invalid("AppName", "Wildcards are only accepted by ResumeLiveStream.")
    end
    local oneshot = p.Oneshot
    if present(oneshot) and oneshot ~= "yes" and oneshot ~= "no" then
        return invalid("Oneshot", "Valid values: yes, no.")
    end
    local resume_at
    if present(p.ResumeTime) then
        resume_at = clock.parse_iso8601(p.ResumeTime)
        if not resume_at then
            return invalid("ResumeTime", "Use the UTC format yyyy-MM-ddTHH:mm:ssZ.")
        end
    end
    if not domain_known(ctx, p.DomainName) then
        return domain_not_found()
    end
    local key, s = stream_record(p)
    s.account = ctx.account_id
    s.updated_at = ctx.now
    if oneshot == "yes" then
        s.interrupt_count = s.interrupt_count + 1
        return {}, { applied = true, detail = { stream = key, oneshot = true } }
    end
    s.status = "forbidden"
    s.resume_at = resume_at
    s.ResumeTime = resume_at and p.ResumeTime or nil
    s.Oneshot = oneshot
    s.forbid_count = s.forbid_count + 1
    return {}, { applied = true, detail = { stream = key, resume_time = s.ResumeTime } }
end

-- ResumeLiveStream: takes a stream (or, with AppName=*, every stream of that
-- name under the domain) off the block list. Resuming a stream that is not
-- blocked succeeds and changes nothing but the counters.
function _M.ResumeLiveStream(p, ctx)
    local ok, code, msg = check_stream_params(p)
    if not ok then
        return nil, code, msg
    end
    if not domain_known(ctx, p.DomainName) then
        return domain_not_found()
    end
    local resumed = json.array()
    local function resume(key, s)
        s.status = "normal"
        s.resume_at = nil
        s.ResumeTime = nil
        s.resume_count = s.resume_count + 1
        s.updated_at = ctx.now
        s.account = ctx.account_id
        resumed[#resumed + 1] = key
    end
    if p.AppName == "*" then
        for key, s in pairs(streams) do
            if s.DomainName == p.DomainName and s.StreamName == p.StreamName then
                resume(key, s)
            end
        end
        sort(resumed)
    else
        resume(stream_record(p))
    end
    return {}, { applied = true, detail = { resumed = resumed } }
end

-- DescribeLiveStreamsBlockList: the blocked streams of a domain, paged.
function _M.DescribeLiveStreamsBlockList(p, ctx)
    if not present(p.DomainName) then
        return missing("DomainName")
    end
    local page, code, msg = page_params(p, "PageNum", 2000, 3000)
    if not page then
        return nil, code, msg
    end
    if not domain_known(ctx, p.DomainName) then
        return domain_not_found()
    end
    local all = {}
    for key, s in pairs(streams) do
        if s.DomainName == p.DomainName and is_blocked(s, ctx.now) then
            all[#all + 1] = key
        end
    end
    sort(all)
    return {
        DomainName = p.DomainName,
        PageNum = page.number,
        PageSize = page.size,
        TotalNum = #all,
        TotalPage = ceil(#all / page.size),
        StreamUrls = { StreamUrl = page_of(all, page) },
    }, { applied = true }
end

-- Task status and exit reason at time now.
local function task_status(t, now)
    if now >= t.end_at then
        return -1, "OverEndTime"
    end
    if t.stopped then
        return 3, "TriggerByUser"
    end
    if now < t.start_at then
        return 0, nil
    end
    return 1, nil
end

local function task_view(t, now)
    local status, reason = task_status(t, now)
    return {
        TaskId = t.TaskId,
        TaskStatus = status,
        TaskExitReason = reason,
        TaskInfo = t.info,
    }
end

local function check_region(p)
    if not present(p.Region) then
        return missing("Region")
    end
    if not REGIONS[p.Region] then
        return invalid("Region", "Valid values: ap-southeast-1, ap-southeast-5, cn-beijing, cn-shanghai, cn-shenzhen.")
    end
    return true
end

local function illegal_duration(why)
    return nil, "InvalidParam.CodeIllegalDuration", "The task duration is illegal: " .. why
end

-- CreateLivePullToPush: validates every rule of the operation and stores a task.
function _M.CreateLivePullToPush(p, ctx)
    for _, name in ipairs({ "Region", "StartTime", "EndTime", "SourceType", "SourceUrls", "DstUrl" }) do
        if not present(p[name]) then
            return missing(name)
        end
    end
    local ok, code, msg = check_region(p)
    if not ok then
        return nil, code, msg
    end
    local start_at = clock.parse_iso8601(p.StartTime)
    if not start_at then
        return invalid("StartTime", "Use the UTC format yyyy-MM-ddTHH:mm:ssZ.")
    end
    local end_at = clock.parse_iso8601(p.EndTime)
    if not end_at then
        return invalid("EndTime", "Use the UTC format yyyy-MM-ddTHH:mm:ssZ.")
    end
    if end_at <= start_at then
        return illegal_duration("EndTime must be later than StartTime.")
    end
    if end_at <= ctx.now then
        return illegal_duration("EndTime must be later than the current time.")
    end
    if end_at - start_at > MAX_SPAN then
        return illegal_duration("the span between StartTime and EndTime must not exceed 7 days.")
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
            return invalid("SourceProtocol", "Valid values: rtmp, srt, http-flv, hls.")
        end
        protocol = p.SourceProtocol
    end
    local urls = json.decode(p.SourceUrls)
    if type(urls) ~= "table" or (next(urls) ~= nil and #urls == 0) then
        return invalid("SourceUrls", "Expected a JSON array of URLs.")
    end
    for _, u in ipairs(urls) do
        if type(u) ~= "string" or u == "" or #u > MAX_URL then
            return invalid("SourceUrls", "Each URL must be a non-empty string of at most 2000 characters.")
        end
    end
    local max_urls = source_type == "live" and 1 or 30
    if #urls < 1 or #urls > max_urls then
        return invalid("SourceUrls", format("SourceType %s takes 1 to %d URLs.", source_type, max_urls))
    end
    local dst = p.DstUrl
    if lower(sub(dst, 1, 7)) ~= "rtmp://" or #dst <= 7 then
        return invalid("DstUrl", "The destination must be an rtmp:// URL.")
    end
    if #dst > MAX_URL then
        return invalid("DstUrl", "At most 2000 characters.")
    end
    local info = {
        TaskName = p.TaskName or "",
        Region = p.Region,
        SourceType = source_type,
        SourceProtocol = protocol,
        SourceUrls = json.array(urls),
        DstUrl = dst,
        StartTime = p.StartTime,
        EndTime = p.EndTime,
    }
    -- The optional parameters, in the order they are checked: the parameter, its
    -- check, then the check's default, min, max and why; `field` when TaskInfo
    -- names it differently.
    for _, o in ipairs({
        { "RepeatNumber", int_param, 0, -1, nil, "Valid values: -1 (loop), 0, or a positive count." },
        { "FileIndex", int_param, nil, 0 },
        { "Offset", int_param, nil, 1, nil, "The offset must be greater than 0." },
        { "CallbackUrl", url_param, field = "CallbackURL" },
        { "RetryInterval", int_param, 60, 60, 300, "Valid values: 60 to 300." },
        { "RetryCount", int_param, 3, 0 },
    }) do
        local value
        value, code, msg = o[2](p, o[1], o[3], o[4], o[5], o[6])
        if code then
            return nil, code, msg
        end
        info[o.field or o[1]] = value
    end
    local live = 0
    for _, id in ipairs(task_order) do
        local t = tasks[id]
        local status = task_status(t, ctx.now)
        if status ~= -1 then
            live = live + 1
            if t.info.DstUrl == dst then
                return nil, "CodeConfigAlreadyExists",
                    "The task config already exists: another task pushes to the same DstUrl."
            end
        end
    end
    if live >= (ctx.cfg.max_pull_to_push_tasks or 1000) then
        return nil, "CodeNotEnoughResource", "Not enough resource to create the task."
    end
    local id = uuid()
    while tasks[id] do
        id = uuid()
    end
    tasks[id] = {
        TaskId = id, info = info, start_at = start_at, end_at = end_at,
        created_at = ctx.now, account = ctx.account_id, stopped = false,
    }
    task_order[#task_order + 1] = id
    return { RetCode = 0, Description = "OK", TaskId = id },
        { applied = true, detail = { task_id = id } }
end

-- The task a Stop/Describe request names (Region and TaskId, checked in that
-- order), or nil plus the error.
local function find_task(p)
    local ok, code, msg = check_region(p)
    if not ok then
        return nil, code, msg
    end
    if not present(p.TaskId) then
        return missing("TaskId")
    end
    local t = tasks[p.TaskId]
    if not t or t.info.Region ~= p.Region then
        return nil, "CodeTaskNotExist", "The task does not exist."
    end
    return t
end

-- StopLivePullToPush: stops a task that has not exited.
function _M.StopLivePullToPush(p, ctx)
    local t, code, msg = find_task(p)
    if not t then
        return nil, code, msg
    end
    local status = task_status(t, ctx.now)
    if status == -1 then
        return nil, "CodeTaskNotExist", "The task does not exist."
    end
    if status == 3 then
        return nil, "CodeTaskHasStopped", "The task has stopped."
    end
    t.stopped = true
    t.stopped_at = ctx.now
    return { TaskId = t.TaskId }, { applied = true, detail = { task_id = t.TaskId } }
end

-- DescribeLivePullToPush: one task by TaskId.
function _M.DescribeLivePullToPush(p, ctx)
    local t, code, msg = find_task(p)
    if not t then
        return nil, code, msg
    end
    local v = task_view(t, ctx.now)
    v.RetCode = 0
    v.Description = "OK"
    return v, { applied = true }
end

local function fuzzy(value, filter)
    if not present(filter) then
        return true
    end
    return value ~= nil and find(value, filter, 1, true) ~= nil
end

-- DescribeLivePullToPushList: the tasks of a Region, filtered (substring match
-- on DstUrl, TaskId, TaskName) and paged, in creation order.
function _M.DescribeLivePullToPushList(p, ctx)
    local ok, code, msg = check_region(p)
    if not ok then
        return nil, code, msg
    end
    local page
    page, code, msg = page_params(p, "PageNumber", 10, 100)
    if not page then
        return nil, code, msg
    end
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

-- Operations that need a live domain on the account (CodeInvalidAliUid).
_M.NEEDS_LIVE_DOMAIN = {
    CreateLivePullToPush = true, StopLivePullToPush = true,
    DescribeLivePullToPush = true, DescribeLivePullToPushList = true,
}

_M.OPERATIONS = {
    ForbidLiveStream = _M.ForbidLiveStream,
    ResumeLiveStream = _M.ResumeLiveStream,
    DescribeLiveStreamsBlockList = _M.DescribeLiveStreamsBlockList,
    CreateLivePullToPush = _M.CreateLivePullToPush,
    StopLivePullToPush = _M.StopLivePullToPush,
    DescribeLivePullToPush = _M.DescribeLivePullToPush,
    DescribeLivePullToPushList = _M.DescribeLivePullToPushList,
}

-- State for /_emulator/state, evaluated at time now.
function _M.snapshot(now)
    local s_out = {}
    for key, s in pairs(streams) do
        s_out[key] = {
            DomainName = s.DomainName, AppName = s.AppName, StreamName = s.StreamName,
            status = is_blocked(s, now) and "forbidden" or "normal",
            ResumeTime = s.ResumeTime, Oneshot = s.Oneshot,
            forbid_count = s.forbid_count, resume_count = s.resume_count,
            interrupt_count = s.interrupt_count, updated_at = s.updated_at, account = s.account,
        }
    end
    local t_out = {}
    for id, t in pairs(tasks) do
        local v = task_view(t, now)
        v.created_at = t.created_at
        v.stopped_at = t.stopped_at
        v.account = t.account
        t_out[id] = v
    end
    local order = json.array()
    for i, id in ipairs(task_order) do
        order[i] = id
    end
    return { streams = s_out, tasks = t_out, task_order = order }
end

function _M.reset()
    streams, tasks, task_order = {}, {}, {}
end

return _M
