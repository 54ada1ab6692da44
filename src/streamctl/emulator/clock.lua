-- The emulator's clock, and the providers' time formats.
--
-- "Emulator time" is what signatures, nonces, the ZEGO sequence window, task
-- start/end times, ResumeTime and the Date header are judged against. Tests can
-- pin it (POST /_emulator/clock {"now": unix}) or shift it ({"offset": seconds});
-- {} returns to real time. Rate limiting and per-second counters always use real
-- time, so pinning the clock never stalls a token bucket.

local ngx = ngx
local ngx_now, ngx_update_time = ngx.now, ngx.update_time
local floor = math.floor
local tonumber, type = tonumber, type
local match = string.match
local os_date = os.date

local M = {}

local pinned -- unix seconds, or nil
local offset = 0

function M.real_now()
  ngx_update_time()
  return ngx_now()
end

function M.now()
  if pinned then
    return pinned
  end
  return M.real_now() + offset
end

-- spec: {now = unix} pins, {offset = seconds} shifts real time, {} resets.
-- Returns true, or nil and a message.
function M.set(spec)
  if type(spec) ~= "table" then
    return nil, "clock: expected a JSON object"
  end
  if spec.now ~= nil then
    if type(spec.now) ~= "number" then
      return nil, "clock: now must be a number (unix seconds)"
    end
    pinned, offset = spec.now, 0
  elseif spec.offset ~= nil then
    if type(spec.offset) ~= "number" then
      return nil, "clock: offset must be a number (seconds)"
    end
    pinned, offset = nil, spec.offset
  else
    pinned, offset = nil, 0
  end
  return true
end

function M.reset()
  pinned, offset = nil, 0
end

function M.snapshot()
  return { now = M.now(), pinned = pinned ~= nil, offset = offset }
end

-- Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
local function days_from_civil(y, m, d)
  if m <= 2 then
    y = y - 1
  end
  local era = floor(y / 400)
  local yoe = y - era * 400
  local mp = (m + 9) % 12
  local doy = floor((153 * mp + 2) / 5) + d - 1
  local doe = yoe * 365 + floor(yoe / 4) - floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
end

local month_days = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 }

local function is_leap(y)
  return (y % 4 == 0 and y % 100 ~= 0) or y % 400 == 0
end

-- Parses the providers' UTC time "YYYY-MM-DDThh:mm:ssZ" (no fraction, no
-- offset) into unix seconds; nil when the text is anything else.
function M.parse_iso8601(s)
  if type(s) ~= "string" then
    return nil
  end
  local y, mo, d, h, mi, se = match(s, "^(%d%d%d%d)%-(%d%d)%-(%d%d)T(%d%d):(%d%d):(%d%d)Z$")
  if not y then
    return nil
  end
  y, mo, d, h, mi, se = tonumber(y), tonumber(mo), tonumber(d), tonumber(h), tonumber(mi), tonumber(se)
  if mo < 1 or mo > 12 or d < 1 or h > 23 or mi > 59 or se > 59 then
    return nil
  end
  local dim = month_days[mo]
  if mo == 2 and is_leap(y) then
    dim = 29
  end
  if d > dim then
    return nil
  end
  return days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se
end

function M.format_iso8601(t)
  return os_date("!%Y-%m-%dT%H:%M:%SZ", floor(t))
end

return M
