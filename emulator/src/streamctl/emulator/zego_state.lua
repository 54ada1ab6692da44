-- The forbid and resume state of the streams the emulator's ZEGO ports know
-- (zego_actions.lua changes it): per AppId and StreamId, RTC and CDN state,
-- the CDN ban's end, the last applied Sequence, and counts; whether a stream
-- may be published now; the state /_emulator/state shows.

local pairs, tostring = pairs, tostring
local gsub = string.gsub

local M = {}

-- streams[AppId][StreamId] = { rtc, cdn, cdn_resume_at, last_sequence,
--   last_sequence_at, updated_at, forbid_count, resume_count }
local streams = {}

-- The state of a stream, nil when it has none yet.
function M.get(app_id, stream_id)
  return (streams[app_id] or {})[stream_id]
end

-- The state of a stream, made (normal, nothing counted) when it has none yet.
function M.entry(app_id, stream_id)
  local by_app = streams[app_id]
  if not by_app then
    by_app = {}
    streams[app_id] = by_app
  end
  local s = by_app[stream_id]
  if not s then
    s = { rtc = "normal", cdn = "normal", forbid_count = 0, resume_count = 0 }
    by_app[stream_id] = s
  end
  return s
end

-- A stream's CDN state at time now: a ban ends at its ResumeTime.
local function cdn_state(s, now)
  if s.cdn == "forbidden" and s.cdn_resume_at and s.cdn_resume_at <= now then
    return "normal"
  end
  return s.cdn
end

M.cdn_state = cdn_state

-- Whether a stream may not be published now: forbidden by ForbidRTCStream(s),
-- or by ForbidCDNLiveStream until its ResumeTime.
function M.forbidden(app_id, stream_id, now)
  local s = streams[app_id] and streams[app_id][stream_id]
  return s ~= nil and (s.rtc == "forbidden" or cdn_state(s, now) == "forbidden")
end

-- Compares two decimal integer strings (optional leading "-" not accepted):
-- returns -1, 0 or 1.
function M.compare_decimal(a, b)
  a = gsub(a, "^0+(%d)", "%1")
  b = gsub(b, "^0+(%d)", "%1")
  if #a ~= #b then
    return #a < #b and -1 or 1
  end
  if a == b then
    return 0
  end
  return a < b and -1 or 1
end

-- Every stream's state at time now, by AppId (a string) and StreamId.
function M.snapshot(now)
  local out = {}
  for app_id, by_app in pairs(streams) do
    local o = {}
    for id, s in pairs(by_app) do
      o[id] = {
        rtc = s.rtc,
        cdn = cdn_state(s, now),
        cdn_resume_time = s.cdn_resume_at,
        last_sequence = s.last_sequence,
        last_sequence_at = s.last_sequence_at,
        forbid_count = s.forbid_count,
        resume_count = s.resume_count,
        updated_at = s.updated_at,
      }
    end
    out[tostring(app_id)] = o
  end
  return out
end

function M.reset()
  streams = {}
end

return M
