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

local room_at, room_cut = assert(load(M.SOURCE .. "return room_at, room_cut", "=streamctl.engine.room"))()

--- The room at `now` (a fraction of the cap, FLOOR to 1) after the last cut
-- from `w` at `t0` (both nil: none, 1).
M.at = room_at

--- A throttle at `now` of an attempt sent at `sent`, when `share` (0 to 1,
-- nil: 1) of the last second's answers were not throttles: the budget's
-- new `w` and `t0`, or nil when an earlier cut already answered its
-- overshoot.
M.cut = room_cut

--- How long (seconds) after a cut from `w` the room is whole again: past
-- that, its state says nothing and may be forgotten.
function M.whole_after(w)
  local k = (w * (1 - M.BETA) / M.C) ^ (1 / 3)
  local rest = 1 - w
  if rest < 0 then rest = 0 end
  return M.HOLD + k + (rest / M.C) ^ (1 / 3)
end

return M
