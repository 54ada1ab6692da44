-- A room's stream rules: SetForbidStreamRule, DelForbidStreamRule and
-- DescribeForbidStreamRules, as their pages describe them.
--
-- State: rules[AppId][RoomId][StreamId] = { DisableAudio (0|1), DisableVideo
-- (0|1), CreateTime, EffectiveTime } (emulator time, seconds). A rule lasts
-- EffectiveTime seconds from its set (default 21600; "values exceeding 24
-- hours will be automatically adjusted to 24 hours": 86400 at most, as the
-- page says; below 1 refused); one ended is gone. Setting a rule again
-- replaces it. Deleting a rule that is not there succeeds, changing nothing
-- (applied = false: a delete sent again must not fail; no page says otherwise).
-- DescribeForbidStreamRules: RoomId and 1..10 StreamId (the key repeated, as
-- the page's array is written); Data { RoomId, ForbidStreamRuleList[]: the
-- rules in effect among them, in the order asked }.
-- A missing or malformed parameter answers 2 ("Incorrect input parameter",
-- the global code; the pages list none of their own); a stream ID breaks the
-- gateway's stream-ID rule (at most 256 letters, digits, '-' and '_'; a
-- test_env app's with its prefix): 30006, as the stream actions answer.
local json = require "streamctl.emulator.json"

local match, sub, tonumber, ipairs = string.match, string.sub, tonumber, ipairs

local M = {}

local DEFAULT_S, MAX_S = 21600, 86400
local MAX_DESCRIBE = 10

local rules = {}

local function bad(what)
  return "error", 2, nil, false, "Incorrect input parameter: " .. what
end

local function stream_id_ok(id, r)
  if id == nil or id == "" or #id > 256 or not match(id, "^[%w_%-]+$") then return false end
  if r.app.test_env then
    local prefix = "zegotest-" .. r.app_id .. "-"
    if sub(id, 1, #prefix) ~= prefix then return false end
  end
  return true
end

local function room_of(r, make)
  local app = rules[r.app_id]
  if not app and make then app = {} rules[r.app_id] = app end
  local room = app and app[r.p.RoomId]
  if not room and make then room = {} app[r.p.RoomId] = room end
  return room
end

-- A 0 or 1 flag: its number, or nil.
local function flag(v)
  if v == nil or v == "" then return 0 end
  if v == "0" or v == "1" then return tonumber(v) end
  return nil
end

local function set(r)
  local p = r.p
  local audio, video = flag(p.DisableAudio), flag(p.DisableVideo)
  if not audio then return bad("DisableAudio must be 0 or 1.") end
  if not video then return bad("DisableVideo must be 0 or 1.") end
  local effective = DEFAULT_S
  if p.EffectiveTime ~= nil and p.EffectiveTime ~= "" then
    effective = match(p.EffectiveTime, "^%d+$") and tonumber(p.EffectiveTime)
    if not effective or effective < 1 then return bad("EffectiveTime must be an integer from 1.") end
    if effective > MAX_S then effective = MAX_S end
  end
  room_of(r, true)[p.StreamId] = { DisableAudio = audio, DisableVideo = video, CreateTime = r.now,
                                   EffectiveTime = effective }
  r.log.applied_streams = json.array({ p.StreamId })
  return "ok", 0, nil, true
end

local function live(rule, now)
  return rule and rule.CreateTime + rule.EffectiveTime > now
end

local function del(r)
  local room = room_of(r, false)
  local had = room and live(room[r.p.StreamId], r.now)
  if room then room[r.p.StreamId] = nil end
  return "ok", 0, nil, had == true
end

local function describe(r)
  local ids = {}
  for _, kv in ipairs(r.req.param_list or {}) do
    if kv[1] == "StreamId" then
      if not stream_id_ok(kv[2], r) then return "error", 30006, nil, false end
      ids[#ids + 1] = kv[2]
    end
  end
  if #ids < 1 or #ids > MAX_DESCRIBE then return bad("StreamId must list 1 to 10 stream IDs.") end
  local room, list = room_of(r, false), json.array()
  for _, id in ipairs(ids) do
    local rule = room and room[id]
    if live(rule, r.now) then
      list[#list + 1] = { StreamId = id, DisableAudio = rule.DisableAudio, DisableVideo = rule.DisableVideo,
                          CreateTime = rule.CreateTime, EffectiveTime = rule.EffectiveTime }
    end
  end
  return "ok", 0, { RoomId = r.p.RoomId, ForbidStreamRuleList = list }, true
end

--- Runs a rule action (r.spec.op: "set", "del" or "describe"): verdict, code, Data, applied, message.
function M.run(r)
  local p = r.p
  if p.RoomId == nil or p.RoomId == "" then return bad("RoomId is required.") end
  if r.spec.op == "describe" then return describe(r) end
  if not stream_id_ok(p.StreamId, r) then return "error", 30006, nil, false end
  r.log.streams = json.array({ p.StreamId })
  if r.spec.op == "set" then return set(r) end
  return del(r)
end

function M.snapshot()
  return rules
end

function M.reset()
  rules = {}
end

return M
