-- The ZEGO actions themselves, once a request has passed the gateway's checks
-- (zego_gateway.lua): what each is, the codes its page lists, and what it does
-- to the streams' state (zego_state.lua). An action gives its verdict, code,
-- Data, whether it applied, and a message (nil: the code's own).
--
-- Sequence rule (ForbidRTCStream(s) / ResumeRTCStream(s)): per (AppId, StreamId)
-- the emulator remembers the last APPLIED sequence and when it was applied
-- (emulator clock). A request whose Sequence is <= that one and arrives less than
-- sequence_window_s (10 s) after it is not executed for that stream; it is still
-- answered Code 0 "success" (the service does not report it), and the request log
-- lists it in stale_streams; when no stream of the request was applied the verdict
-- is "stale" and applied=false. Sequences are compared as arbitrary-length
-- decimal integers (never as floats).
--
-- DescribeRTCStreamState Data (the emulator's design; the service's is not
-- documented in PROVIDERS.md):
--   { "StreamId": "s", "RTCState": "normal" | "forbidden",
--     "CDNState": "normal" | "forbidden", "CDNResumeTime": <unix s or 0>,
--     "LastSequence": "<last applied sequence>" | "", "UpdatedAt": <unix s or 0> }
-- CDN actions answer Data [{"CdnType": <type>, "CdnResult": <string>}] for each
-- of the app's cdn_types (default ["ws"]); CdnResult is a string, as the pages
-- document it: their sample texts "success append purge tasks." (forbid) and
-- "Resume tasks added successfully." (resume).

local json = require "streamctl.emulator.json"
local clock = require "streamctl.emulator.clock"
local state = require "streamctl.emulator.zego_state"
local stream_rules = require "streamctl.emulator.zego_rules"
local rooms = require "streamctl.emulator.zego_rooms"

local ipairs = ipairs

local M = {}

local cfg

function M.init(settings)
  cfg = settings
end

-- The CDN actions' pages list their own return codes (0 success, 1 failed,
-- 2 parameter error, 3 authentication failed) where the RTC ones use the
-- global table: each page is followed, its codes standing in for the global
-- ones of the same meaning (a wrong or expired signature, an unknown AppId:
-- 3; a missing or bad StreamId: 2).
local CDN_CODES = { [100000004] = 3, [100000005] = 3, [30005] = 3, [30006] = 2 }

-- The actions: their kind, whether they take a StreamId[] list (RTC), forbid
-- or resume, and their page's own codes.
M.ACTIONS = {
  ForbidRTCStream = { kind = "rtc", batch = false, forbid = true },
  ResumeRTCStream = { kind = "rtc", batch = false, forbid = false },
  ForbidRTCStreams = { kind = "rtc", batch = true, forbid = true },
  ResumeRTCStreams = { kind = "rtc", batch = true, forbid = false },
  ForbidCDNLiveStream = { kind = "cdn", forbid = true, codes = CDN_CODES },
  ResumeCDNLiveStream = { kind = "cdn", forbid = false, codes = CDN_CODES },
  DescribeRTCStreamState = { kind = "describe" },
  -- A room's stream rules (zego_rules.lua: they read their own parameters)
  SetForbidStreamRule = { kind = "rule", op = "set" },
  DelForbidStreamRule = { kind = "rule", op = "del" },
  DescribeForbidStreamRules = { kind = "rule", op = "describe" },
  -- A room's users (zego_rooms.lua: the publishers of its streams)
  CloseRoom = { kind = "room", op = "close" },
  KickoutUser = { kind = "room", op = "kick" },
}

-- CdnResult, a string: the text of the pages' sample responses.
local CDN_RESULT = { forbid = "success append purge tasks.", resume = "Resume tasks added successfully." }

-- ForbidCDNLiveStream's ResumeTime (the page: a UTC time such as
-- 2018-11-29T19:00:00Z; "a default push ban of 1 day and a maximum ... of 30 days").
local DEFAULT_CDN_BAN = 86400
local MAX_CDN_BAN = 30 * 86400

-- DescribeRTCStreamState: the state of the request's stream (r.ids[1]).
local function describe(r)
  local now, id = r.now, r.ids[1]
  local s = state.get(r.app_id, id)
  local data = {
    StreamId = id,
    RTCState = s and s.rtc or "normal",
    CDNState = s and state.cdn_state(s, now) or "normal",
    CDNResumeTime = s and state.cdn_state(s, now) == "forbidden" and s.cdn_resume_at or 0,
    LastSequence = s and s.last_sequence or "",
    UpdatedAt = s and s.updated_at or 0,
  }
  return "ok", 0, data, true
end

-- When a ForbidCDNLiveStream's ban ends (its ResumeTime, else a day from
-- now); nil plus the message when its ResumeTime is not one.
local function cdn_resume_at(r)
  local p, now = r.p, r.now
  if p.ResumeTime == nil or p.ResumeTime == "" then
    return now + DEFAULT_CDN_BAN
  end
  local resume_at = clock.parse_iso8601(p.ResumeTime)
  if not resume_at then
    return nil, "Incorrect input parameter: ResumeTime must be a UTC time such as 2018-11-29T19:00:00Z."
  end
  if resume_at <= now or resume_at > now + MAX_CDN_BAN then
    return nil, "Incorrect input parameter: ResumeTime must be later than now and at most 30 days ahead."
  end
  return resume_at
end

-- ForbidCDNLiveStream / ResumeCDNLiveStream on the request's stream.
local function cdn(r)
  local spec, app, now = r.spec, r.app, r.now
  local resume_at, why
  if spec.forbid then
    resume_at, why = cdn_resume_at(r)
    if not resume_at then
      return "error", 2, nil, false, why
    end
  end
  if not spec.forbid and app.cdn_resume_enabled == false then
    return "error", 100000017, nil, false
  end
  local s = state.entry(r.app_id, r.ids[1])
  if spec.forbid then
    s.cdn = "forbidden"
    s.cdn_resume_at = resume_at
    s.forbid_count = s.forbid_count + 1
  else
    s.cdn = "normal"
    s.cdn_resume_at = nil
    s.resume_count = s.resume_count + 1
  end
  s.updated_at = now
  local data = json.array()
  for _, cdn_type in ipairs(app.cdn_types or { "ws" }) do
    data[#data + 1] = { CdnType = cdn_type, CdnResult = spec.forbid and CDN_RESULT.forbid or CDN_RESULT.resume }
  end
  r.log.applied_streams = json.array({ r.ids[1] })
  return "ok", 0, data, true
end

-- Whether a Sequence `seq` comes too late for stream state `s` at time now:
-- not above its last applied one, within the window (the Sequence rule).
local function stale(s, seq, now)
  return seq ~= nil and s.last_sequence ~= nil and (now - s.last_sequence_at) < cfg.zego.sequence_window_s
    and state.compare_decimal(seq, s.last_sequence) <= 0
end

-- ForbidRTCStream(s) / ResumeRTCStream(s), with the Sequence rule.
local function rtc(r)
  local spec, seq, now = r.spec, r.seq, r.now
  local applied, skipped = json.array(), json.array()
  for _, id in ipairs(r.ids) do
    local s = state.entry(r.app_id, id)
    if stale(s, seq, now) then
      skipped[#skipped + 1] = id
    else
      if spec.forbid then
        s.rtc = "forbidden"
        s.forbid_count = s.forbid_count + 1
      else
        s.rtc = "normal"
        s.resume_count = s.resume_count + 1
      end
      if seq then
        s.last_sequence = seq
        s.last_sequence_at = now
      end
      s.updated_at = now
      applied[#applied + 1] = id
    end
  end
  r.log.applied_streams = applied
  r.log.stale_streams = skipped
  if #applied == 0 then
    return "stale", 0, nil, false
  end
  return "ok", 0, nil, true
end

-- Runs the action of request `r` (zego_gateway.lua: r.spec its entry in
-- ACTIONS, r.app_id, r.app, r.ids, r.seq, r.now, r.p, r.log): verdict, code,
-- Data, applied, message.
function M.run(r)
  if r.spec.kind == "describe" then
    return describe(r)
  end
  if r.spec.kind == "cdn" then
    return cdn(r)
  end
  if r.spec.kind == "rule" then
    return stream_rules.run(r)
  end
  if r.spec.kind == "room" then
    return rooms.run(r)
  end
  return rtc(r)
end

return M
