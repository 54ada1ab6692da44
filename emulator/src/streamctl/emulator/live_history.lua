-- What happened to the streams, for the two look-ups that read it:
-- DescribeLiveStreamsPublishList (each ingest: when it started and stopped)
-- and DescribeLiveStreamsControlHistory (each operation a caller did on a
-- stream, by its action's name, as the page's example shows).
--
-- State, each a list bounded to MAX entries (the oldest forgotten first):
--   sessions: { DomainName, AppName, StreamName, ClientAddr, start, stop }
--     (a stream marked online starts one, marked offline or cut by a forbid
--     ends it: live_streams.lua);
--   controls: { DomainName, AppName, StreamName, Action, ClientIP, at }
--     (every operation answered with success that names a stream:
--     aliyun_live.lua).
-- DescribeLiveStreamsPublishList: DomainName, StartTime and EndTime
-- required, at most 30 days apart; AppName exact, StreamName by QueryType
-- (fuzzy, the default, or strict); PageNumber, PageSize 1..3000 (default
-- 2000); OrderBy publish_time_asc (default), publish_time_desc,
-- stream_name_asc, stream_name_desc. An ingest shows when it overlaps the
-- range. Answer: PageNum, PageSize, TotalNum, TotalPage,
-- PublishInfo.LiveStreamPublishInfo[] (DomainName, AppName, StreamName,
-- PublishTime, StopTime: "" while it lasts, ClientAddr, PublishDomain,
-- PublishType "edge", StreamUrl, Transcoded "no").
-- DescribeLiveStreamsControlHistory: DomainName, StartTime and EndTime
-- required, at most 7 days apart; AppName exact. Answer:
-- ControlInfo.LiveStreamControlInfo[] (StreamName, ClientIP, Action,
-- TimeStamp), oldest first.
local clock = require "streamctl.emulator.clock"
local params = require "streamctl.emulator.live_params"

local ipairs, sort, ceil, find, remove = ipairs, table.sort, math.ceil, string.find, table.remove
local present, missing, invalid = params.present, params.missing, params.invalid

local M = {}

local MAX = 100000
local DAY = 86400
local ORDERS = { publish_time_asc = true, publish_time_desc = true, stream_name_asc = true, stream_name_desc = true }

local sessions, controls = {}, {}

local function push(list, entry)
  list[#list + 1] = entry
  if #list > MAX then remove(list, 1) end
end

--- A stream went online (`entry`: live_streams' online entry).
function M.started(entry, now)
  push(sessions, { DomainName = entry.DomainName, AppName = entry.AppName, StreamName = entry.StreamName,
                   ClientAddr = entry.ClientIp, start = now })
end

--- A stream went offline: its open ingest ends.
function M.stopped(entry, now)
  for i = #sessions, 1, -1 do
    local s = sessions[i]
    if not s.stop and s.DomainName == entry.DomainName and s.AppName == entry.AppName
        and s.StreamName == entry.StreamName then
      s.stop = now
      return
    end
  end
end

--- An operation answered with success: kept when it names a stream.
function M.control(action, p, ctx)
  if present(p.DomainName) and present(p.StreamName) then
    push(controls, { DomainName = p.DomainName, AppName = p.AppName or "", StreamName = p.StreamName,
                     Action = action, ClientIP = ctx.client_ip or "127.0.0.1", at = ctx.now })
  end
end

-- The range StartTime..EndTime, at most `days` apart: start, stop; or nil and the error.
local function range(p, days)
  for _, name in ipairs { "DomainName", "StartTime", "EndTime" } do
    if not present(p[name]) then return missing(name) end
  end
  local from, to = clock.parse_iso8601(p.StartTime), clock.parse_iso8601(p.EndTime)
  if not from then return invalid("StartTime", "must be yyyy-MM-ddTHH:mm:ssZ") end
  if not to then return invalid("EndTime", "must be yyyy-MM-ddTHH:mm:ssZ") end
  if to <= from then return invalid("EndTime", "must be after StartTime") end
  if to - from > days * DAY then return invalid("EndTime", "must be at most " .. days .. " days after StartTime") end
  return from, to
end

function M.DescribeLiveStreamsPublishList(p, ctx)
  local from, to, msg = range(p, 30)
  if not from then return nil, to, msg end
  if present(p.OrderBy) and not ORDERS[p.OrderBy] then return invalid("OrderBy", "is not a sorting method") end
  if present(p.QueryType) and p.QueryType ~= "fuzzy" and p.QueryType ~= "strict" then
    return invalid("QueryType", "must be fuzzy or strict")
  end
  if present(p.StreamType) and p.StreamType ~= "all" and p.StreamType ~= "trans" then
    return invalid("StreamType", "must be all or trans")
  end
  local page, code, why = params.page_params(p, "PageNumber", 2000, 3000)
  if not page then return nil, code, why end
  if not params.domain_known(ctx, p.DomainName) then return params.domain_not_found() end
  local strict = p.QueryType == "strict"
  local found = {}
  for _, s in ipairs(sessions) do
    if s.DomainName == p.DomainName and s.start < to and (not s.stop or s.stop >= from)
        and (not present(p.AppName) or s.AppName == p.AppName)
        and (not present(p.StreamName) or (strict and s.StreamName == p.StreamName)
             or (not strict and find(s.StreamName, p.StreamName, 1, true)))
        and p.StreamType ~= "trans" then -- (the emulator transcodes nothing)
      found[#found + 1] = s
    end
  end
  local order = p.OrderBy or "publish_time_asc"
  sort(found, function(a, b)
    if order == "stream_name_asc" or order == "stream_name_desc" then
      if a.StreamName ~= b.StreamName then
        return (a.StreamName < b.StreamName) == (order == "stream_name_asc")
      end
    elseif a.start ~= b.start then
      return (a.start < b.start) == (order == "publish_time_asc")
    end
    return a.start < b.start
  end)
  local list = {}
  for _, s in ipairs(params.page_of(found, page)) do
    list[#list + 1] = { DomainName = s.DomainName, AppName = s.AppName, StreamName = s.StreamName,
                        PublishTime = clock.format_iso8601(s.start),
                        StopTime = s.stop and clock.format_iso8601(s.stop) or "", ClientAddr = s.ClientAddr,
                        PublishDomain = s.DomainName, PublishType = "edge", Transcoded = "no",
                        StreamUrl = s.DomainName .. "/" .. s.AppName .. "/" .. s.StreamName }
  end
  return { PageNum = page.number, PageSize = page.size, TotalNum = #found, TotalPage = ceil(#found / page.size),
           PublishInfo = { LiveStreamPublishInfo = list } }, { applied = true }
end

function M.DescribeLiveStreamsControlHistory(p, ctx)
  local from, to, msg = range(p, 7)
  if not from then return nil, to, msg end
  if not params.domain_known(ctx, p.DomainName) then return params.domain_not_found() end
  local list = {}
  for _, c in ipairs(controls) do
    if c.DomainName == p.DomainName and c.at >= from and c.at <= to
        and (not present(p.AppName) or c.AppName == p.AppName) then
      list[#list + 1] = { StreamName = c.StreamName, ClientIP = c.ClientIP, Action = c.Action,
                          TimeStamp = clock.format_iso8601(c.at) }
    end
  end
  return { ControlInfo = { LiveStreamControlInfo = list } }, { applied = true }
end

function M.reset()
  sessions, controls = {}, {}
end

return M
