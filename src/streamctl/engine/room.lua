--- The room of a budget: how much of its cap the account really has, learned
-- from the provider's throttles (docs/pacing.md, "The room").
--
-- A budget's cap is the page's; the account's real room can be lower (its
-- quota, and every other tool on the account spending from the same cap). The
-- room is a fraction of the cap, 1 until a throttle says otherwise, and
-- follows CUBIC (RFC 9438; the AWS SDKs' "adaptive" retry mode is CUBIC too),
-- with two changes for a provider that counts the calls of the last second:
--
-- - A throttle cuts the room to BETA of `w`, the room the account showed:
--   the room paced at when it came, times `share`, what got through of it
--   (the share of the last second's answers that were not throttles, and no
--   more than what got through the budget in the last second over the cap:
--   30 a second against a room of 15 shows about one half). Then the room stays there for HOLD
--   (a window: the provider still counts the second before the cut, and
--   refuses what arrives while it is full, whatever the rate since), and
--   grows back along
--
--     room(t) = w + C * (t - t0 - HOLD - K)^3,   K = cbrt(w * (1 - BETA) / C)
--
--   quickly at first, slowly near `w` (where the last throttle was: most of
--   the time is spent just under it), and faster again past it (the stranger
--   that took the room may have left), never above 1 (the cap) nor below
--   FLOOR.
-- - One cut per overshoot: a throttle of an attempt sent before the cut, or
--   within HOLD after it, changes nothing (cutting again for what the full
--   second refused took 30 a second down to 2 where the room was 15).
--
-- The room is a function of (w, t0, now) alone: every process that reads the
-- same two numbers paces at the same room, and one that starts later starts
-- from it.
--
-- The rule is written once, as text (`SOURCE`), so that the Redis store's
-- script (streamctl.store.redisrate_script) runs the very same lines inside
-- Redis; this module loads it for everyone else.
-- @module streamctl.engine.room

local format = string.format
local load = load

local M = {}

--- The cut: a throttle leaves BETA of the room the account showed (CUBIC
-- and the AWS SDKs take 0.7, for a signal that comes late and vague; here
-- `w` is measured, and the cut need only drain the second the provider
-- counts: every rate under the room does). 0.8 used 0.81 to 0.85 of the
-- room through Redis beside a stranger; 0.9, 0.86 to 0.92, with throttles
-- still under 4% (make bench).
M.BETA = 0.9

--- The growth constant, in fractions of the cap per second cubed: after a
-- cut from `w` the room is back at `w` HOLD + K = 1 + cbrt(w * 0.1 / C)
-- seconds later (3 s from 0.75), and from there at 0.95 within
-- cbrt((0.95 - w) / C) more (2.7 s from 0.75; from 0.5 it is 2.7 + 3.6 s).
-- Slower than that and a room freed by a stranger that left takes more
-- than 10 s to be used again; faster and the probes past `w` (each of which
-- can cost a throttle) come more often than one in 4 s.
M.C = 0.01

--- The longest wait (seconds) a provider's retry-after puts on a whole
-- budget's schedule (a throttle's own call waits the whole of it, up to
-- its retry policy's cap): a limit per second frees a place within one.
M.MAX_AFTER = 1

--- How long (seconds) after a cut the room stays at it, and the throttles
-- of attempts sent meanwhile cut nothing more: one window of the
-- providers' "per second".
M.HOLD = 1

--- The room never falls below this fraction of the cap (one call a second
-- at 20 a second): an account whose room others take whole is still asked,
-- slowly, whether some came back.
M.FLOOR = 0.05

--- The rule as Lua text (Lua 5.1 to 5.4, and Redis' Lua): two functions,
-- `room_at(w, t0, now)` (the room at `now`: 1 without a cut) and
-- `room_cut(w, t0, now, sent, share)` (a throttle at `now` of an attempt
-- sent at `sent`, when `share` of the last second's answers were not
-- throttles: the new w and t0, or nil when it changes nothing: sent before
-- t0 + HOLD). Times in seconds of one clock.
M.SOURCE = format([[
local ROOM_BETA, ROOM_C, ROOM_FLOOR, ROOM_HOLD = %.17g, %.17g, %.17g, %.17g
local function room_at(w, t0, now)
  if w == nil or t0 == nil then return 1 end
  local f = ROOM_BETA * w
  local x = now - t0 - ROOM_HOLD
  if x > 0 then
    x = x - (w * (1 - ROOM_BETA) / ROOM_C) ^ (1 / 3)
    f = w + ROOM_C * x * x * x
  end
  if f > 1 then return 1 end
  if f < ROOM_FLOOR then return ROOM_FLOOR end
  return f
end
local function room_cut(w, t0, now, sent, share)
  if t0 ~= nil and sent < t0 + ROOM_HOLD then return nil end
  if share == nil or share > 1 then share = 1 elseif share < 0 then share = 0 end
  local nw = room_at(w, t0, now) * share
  if nw < ROOM_FLOOR then nw = ROOM_FLOOR end
  return nw, now
end
]], M.BETA, M.C, M.FLOOR, M.HOLD)

--- What got through a shared budget, as text too (a shared store's: the
-- Redis script's and the shared dict's), since one process of ten sees
-- two or three answers a second, too few to measure a share by: the slots
-- handed out, counted by when they are due, and the throttles reported,
-- each in buckets of 100 ms ("epoch:n" pairs, those of the last 2 s kept,
-- and the slots not due yet). `tally_add(text, epoch, now_epoch)` counts
-- one (the new text); `tally_share(slots, throttles, now_epoch, cap, f)`
-- is what got through in the last second (the slots due in it less the
-- throttles, the one being reported counted) over the cap, as a share of
-- the room `f` paced at, or nil while fewer than SHARE_SLOTS slots were due
-- in it; `tally_epoch(seconds)` is the bucket of a time.
M.TALLY_SOURCE = [[
local SHARE_SLOTS = 4
local function tally_epoch(seconds) return math.floor(seconds * 10) end
local function tally_read(v)
  local r = {}
  for e, c in string.gmatch(v or '', '(%d+):(%d+)') do r[#r + 1] = { tonumber(e), tonumber(c) } end
  return r
end
local function tally_add(v, e, now_e)
  local out, found = {}, false
  for _, b in ipairs(tally_read(v)) do
    if b[1] > now_e - 20 then
      if b[1] == e then b[2], found = b[2] + 1, true end
      out[#out + 1] = string.format('%.0f:%d', b[1], b[2])
    end
  end
  if not found then out[#out + 1] = string.format('%.0f:1', e) end
  return table.concat(out, ' ')
end
local function tally_sum(v, now_e)
  local n = 0
  for _, b in ipairs(tally_read(v)) do if b[1] > now_e - 10 and b[1] <= now_e then n = n + b[2] end end
  return n
end
local function tally_share(slots, throttles, now_e, cap, f)
  local due = tally_sum(slots, now_e)
  if due < SHARE_SLOTS then return nil end
  return (due - tally_sum(throttles, now_e)) / cap / f
end
]]

local room_at, room_cut = assert(load(M.SOURCE .. "return room_at, room_cut", "=streamctl.engine.room"))()
local tally_epoch, tally_add, tally_share = assert(load(M.TALLY_SOURCE .. "return tally_epoch, tally_add, tally_share",
  "=streamctl.engine.room"))()

--- The room at `now` (a fraction of the cap, FLOOR to 1) after the last cut
-- from `w` at `t0` (both nil: none, 1).
M.at = room_at

--- A throttle at `now` of an attempt sent at `sent`, when `share` (0 to 1,
-- nil: 1) of the last second's answers were not throttles: the budget's
-- new `w` and `t0`, or nil when an earlier cut already answered its
-- overshoot.
M.cut = room_cut

--- The tally's bucket of a time in seconds (see TALLY_SOURCE).
M.tally_epoch = tally_epoch

--- One more in a tally's text (see TALLY_SOURCE): the new text.
M.tally_add = tally_add

--- What got through in the last second, as a share of the room paced at
-- (see TALLY_SOURCE), or nil while too few slots were due in it.
M.tally_share = tally_share

--- How long (seconds) after a cut from `w` the room is whole again: past
-- that, its state says nothing and may be forgotten.
function M.whole_after(w)
  local k = (w * (1 - M.BETA) / M.C) ^ (1 / 3)
  local rest = 1 - w
  if rest < 0 then rest = 0 end
  return M.HOLD + k + (rest / M.C) ^ (1 / 3)
end

return M
