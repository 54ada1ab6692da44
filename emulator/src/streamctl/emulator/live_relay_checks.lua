-- The checks of a pull-to-push relay task's settings that its create and
-- its update share (live_relay.lua, live_relay_update.lua): the Region, the
-- times and their span, the source's URLs, the DstUrl as it is compared for
-- uniqueness, the optional settings, and the code of a change the task's
-- state does not allow.

local json = require "streamctl.emulator.json"
local clock = require "streamctl.emulator.clock"
local params = require "streamctl.emulator.live_params"

local type, ipairs, next, format = type, ipairs, next, string.format
local match, find, lower, sub, concat = string.match, string.find, string.lower, string.sub, table.concat
local REGIONS, SOURCE_PROTOCOLS = params.REGIONS, params.SOURCE_PROTOCOLS
local URL_SOURCE_SCHEMES, MAX_URL, MAX_SPAN = params.URL_SOURCE_SCHEMES, params.MAX_URL, params.MAX_SPAN
local missing, invalid, present = params.missing, params.invalid, params.present
local int_param, within_chars, url_param = params.int_param, params.within_chars, params.url_param

local M = {}

-- What a stop of a task that has not started, a restart before the start
-- time and an update of a setting the task's state does not allow answer. The
-- pages say such a request "does not take effect" and name no code for it; the
-- emulator refuses it with the generic code of their error tables (a strict
-- choice: a client never takes it for done).
M.NOT_IN_THIS_STATE = "InvalidParameter"

-- Region, one of a task's Regions (the create's list, which every task
-- operation takes: live_params.lua).
function M.region(p)
  if not present(p.Region) then
    return missing("Region")
  end
  if not REGIONS.valid[p.Region] then
    return invalid("Region", "Valid values: " .. REGIONS.text .. ".")
  end
  return true
end

local function illegal_duration(why)
  return nil, "InvalidParam.CodeIllegalDuration", "The task duration is illegal: " .. why
end

-- The rules every task's times follow (create and update): end after start,
-- end after now, at most 7 days between them.
function M.times(start_at, end_at, now)
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

-- The time of the parameter `name` (UTC, yyyy-MM-ddTHH:mm:ssZ), or nil plus
-- the error.
function M.parse_time(p, name)
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
function M.source_urls(p, source_type, protocol)
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
function M.dst_identity(dst)
  local authority, rest = match(dst, "^[^:]+://([^/]*)(.*)$")
  return "rtmp://" .. lower(authority or "") .. (rest or "")
end

-- The optional settings of a task, in the order they are checked: the
-- parameter, its check, then the check's default (create only), min, max and
-- why; `field` when TaskInfo names it differently.
M.OPTIONAL_SETTINGS = {
  { "RepeatNumber", int_param, 0, -1, nil, "Valid values: -1 (loop), 0, or a positive count." },
  { "FileIndex", int_param, nil, 0 },
  { "Offset", int_param, nil, 1, nil, "The offset must be a whole number of seconds greater than 0." },
  { "CallbackUrl", url_param, field = "CallbackURL" },
  { "RetryInterval", int_param, 60, 60, 300, "Valid values: 60 to 300." },
  { "RetryCount", int_param, 3, 0 },
}

return M
