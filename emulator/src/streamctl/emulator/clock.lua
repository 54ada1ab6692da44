-- The emulator's clock, and the providers' time formats.
--
-- "Emulator time" is what signatures, nonces, the ZEGO sequence window, task
-- start/end times, ResumeTime and the Date header are judged against. Tests can
-- pin it (POST /_emulator/clock {"now": unix}) or shift it ({"offset": seconds});
-- {} returns to real time. Rate limiting and per-second counters always use real
-- time, so pinning the clock never stalls a token bucket.

local floor, min = math.floor, math.min
local tonumber, type, error = tonumber, type, error
local match = string.match
local os_date = os.date

local M = {}

local pinned -- unix seconds, or nil
local offset = 0

-- (ngx is looked up here, not at load, so the calendar functions below can
-- be used, and unit-tested, outside nginx.)
function M.real_now()
  local ngx = ngx
  ngx.update_time()
  return ngx.now()
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

-- The date of a day number (days since 1970-01-01): y, m, d (H. Hinnant's
-- algorithm, the inverse of days_from_civil).
local function civil_from_days(z)
  z = z + 719468
  local era = floor(z / 146097)
  local doe = z - era * 146097
  local yoe = floor((doe - floor(doe / 1460) + floor(doe / 36524) - floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + floor(yoe / 4) - floor(yoe / 100))
  local mp = floor((5 * doy + 2) / 153)
  local d = doy - floor((153 * mp + 2) / 5) + 1
  local m = mp < 10 and mp + 3 or mp - 9
  local y = yoe + era * 400
  if m <= 2 then
    y = y + 1
  end
  return y, m, d
end

--- Unix time t plus `months` calendar months, in UTC: the same time of day
-- (and fraction of a second), the day of the month kept unless the target
-- month is shorter, then its last day (2026-08-31T10:00:00Z + 6 months =
-- 2027-02-28T10:00:00Z; 2027-08-31 + 6 = 2028-02-29). ForbidLiveStream's
-- default end is "6 months" (its Chinese page); a month has no fixed length,
-- and clamping to the month's last day is the earliest reading of it (the
-- alternative, rolling over into the next month, ends later), so a client
-- that plans by it never counts on a forbid longer than the service's.
-- months is a whole number >= 0; anything else raises.
function M.add_months(t, months)
  if type(t) ~= "number" or t ~= t then
    error("clock.add_months: t must be a number (unix seconds)", 2)
  end
  if type(months) ~= "number" or months < 0 or months % 1 ~= 0 then
    error("clock.add_months: months must be a whole number >= 0", 2)
  end
  local days = floor(t / 86400)
  local y, m, d = civil_from_days(days)
  local m0 = m - 1 + months
  y, m = y + floor(m0 / 12), m0 % 12 + 1
  local dim = month_days[m]
  if m == 2 and is_leap(y) then
    dim = 29
  end
  return days_from_civil(y, m, min(d, dim)) * 86400 + (t - days * 86400)
end

function M.format_iso8601(t)
  return os_date("!%Y-%m-%dT%H:%M:%SZ", floor(t))
end

return M
