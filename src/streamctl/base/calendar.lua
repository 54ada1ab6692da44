--- Calendar arithmetic in UTC, for the ends a provider gives a forbid by
-- itself (Alibaba Cloud: "6 months" when no ResumeTime is sent).
--
-- Written here rather than taken from `os.time`, which reads a date table
-- in the machine's local time zone (a daylight-saving change would move a
-- UTC end by an hour) and rolls an overflowing day into the next month.
-- The emulator keeps its own copy of the same arithmetic
-- (streamctl.emulator.clock): it stands in for the providers and requires
-- nothing of the library it judges.
-- @module streamctl.base.calendar

local floor = math.floor

local M = {}

local DAY = 86400

-- Days since 1970-01-01 of a proleptic Gregorian date, and back (H.
-- Hinnant's era-based conversion: 400-year cycles of 146097 days,
-- March-first years so that the leap day ends a year).
local function days_from_civil(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = floor(y / 400)
  local yoe = y - era * 400
  local mp = (m + 9) % 12
  local doy = floor((153 * mp + 2) / 5) + d - 1
  local doe = yoe * 365 + floor(yoe / 4) - floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
end

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
  if m <= 2 then y = y + 1 end
  return y, m, d
end

local function month_days(y, m)
  local next_y, next_m = y, m + 1
  if next_m > 12 then next_y, next_m = y + 1, 1 end
  return days_from_civil(next_y, next_m, 1) - days_from_civil(y, m, 1)
end

--- `t` (Unix seconds, UTC) `n` calendar months later, at the same time of
-- day; a day the target month does not have becomes its last (31 August
-- plus 6 months is the end of February: the earliest reading of "6
-- months", so an end said is never later than the provider's).
-- @tparam number t Unix seconds
-- @tparam integer n months (>= 0)
-- @treturn number Unix seconds
function M.add_months(t, n)
  local days = floor(t / DAY)
  local clock = t - days * DAY
  local y, m, d = civil_from_days(days)
  local k = (m - 1) + n
  y, m = y + floor(k / 12), k % 12 + 1
  local last = month_days(y, m)
  if d > last then d = last end
  return days_from_civil(y, m, d) * DAY + clock
end

return M
