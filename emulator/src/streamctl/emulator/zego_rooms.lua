-- A room's users, as far as the emulator holds them (the publishers of the
-- streams marked online: zego_streams.lua): CloseRoom and KickoutUser, as
-- their pages describe them.
--
-- CloseRoom "removes all users from the Room and closes the Room": every
-- stream online in it closes, stream_close type 5 ("Room was cleared and
-- Stream was closed"). KickoutUser: the streams of its users (1..5 UserId,
-- the key repeated, as the page writes the array) close, type 3 ("Server
-- interface kickout user"). A room or user with no stream online changes
-- nothing and answers 0 (applied = false): the emulator holds no other
-- users, and no page names a code for an empty room. CustomReason at most
-- 256 bytes, RoomCloseCallback true or false (the emulator sends no room
-- callbacks). A missing or malformed parameter answers 2 ("Incorrect input
-- parameter", the global code; the pages list none of their own).
local zego_streams = require "streamctl.emulator.zego_streams"

local ipairs = ipairs

local M = {}

local MAX_KICK = 5
local MAX_REASON = 256

local function bad(what)
  return "error", 2, nil, false, "Incorrect input parameter: " .. what
end

local function close(r)
  local p = r.p
  if p.RoomCloseCallback ~= nil and p.RoomCloseCallback ~= "true" and p.RoomCloseCallback ~= "false" then
    return bad("RoomCloseCallback must be true or false.")
  end
  local closed = zego_streams.close_in_room(r.app_id, p.RoomId, nil, 5)
  r.log.applied_streams = closed
  return "ok", 0, nil, #closed > 0
end

local function kick(r)
  local users, n = {}, 0
  for _, kv in ipairs(r.req.param_list or {}) do
    if kv[1] == "UserId" then
      if kv[2] == "" then return bad("UserId must not be empty.") end
      users[kv[2]], n = true, n + 1
    end
  end
  if n < 1 or n > MAX_KICK then return bad("UserId must list 1 to 5 users.") end
  local closed = zego_streams.close_in_room(r.app_id, r.p.RoomId, users, 3)
  r.log.applied_streams = closed
  return "ok", 0, nil, #closed > 0
end

--- Runs a room action (r.spec.op: "close" or "kick"): verdict, code, Data, applied, message.
function M.run(r)
  local p = r.p
  if p.RoomId == nil or p.RoomId == "" then return bad("RoomId is required.") end
  if p.CustomReason ~= nil and #p.CustomReason > MAX_REASON then
    return bad("CustomReason must be at most 256 bytes.")
  end
  r.log.room = p.RoomId
  if r.spec.op == "close" then return close(r) end
  return kick(r)
end

return M
