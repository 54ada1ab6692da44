-- ZEGO streams being published, and the server callbacks stream_create and
-- stream_close (callbacks.lua delivers them). The emulator has no
-- publishers: POST /_emulator/zego_online marks streams published, DELETE
-- stops them (control_online.lua).
--
-- A spec: {"app_id","stream_id","room_id","user_id"} (strings; app_id a
-- configured AppId, also as a number), optional "user_name" (default the
-- user_id), "extra_info" (default ""), "nonce" (decimal digits: the nonce
-- every callback of this event is signed with, so a test can pin the
-- signature; default a fresh random one per send). DELETE takes
-- {"app_id","stream_id"} and an optional "type" (the close reason: 0 normal
-- stop, the default; 1..5 or 100 as the page lists them), or no body (every
-- stream, type 0). A stream forbidden in the emulator's ZEGO state now
-- (ForbidRTCStream(s), or ForbidCDNLiveStream before its ResumeTime) is
-- refused: no stream, no callback. Publishing a stream that is already
-- online changes nothing and sends nothing.
--
-- Callbacks go to zego.apps.<AppId>.callback_url, signed with its
-- callback_secret (config.lua requires one with the other; an app without a
-- callback_url sends none): POST, Content-Type: application/json, a JSON
-- object whose scalar values are all strings, in this order:
--   stream_create: event, appid, timestamp, nonce, signature, room_id,
--     room_session_id, user_id, user_name, channel_id (= room_id), stream_id,
--     stream_alias (= stream_id), stream_sid, title (""), stream_attr
--     ("{\"cid\":0}"), stream_seq, create_time (s), create_time_ms,
--     extra_info, recreate ("0"), publish_id (= user_id), publish_name
--     (= user_name), rtmp_url, hls_url, hdl_url, pic_url ([]: no CDN here)
--   stream_close: event, appid, timestamp, nonce, signature, room_id,
--     room_session_id, user_id, user_name, channel_id, stream_alias,
--     stream_id, stream_sid, stream_seq, type
-- timestamp is the Unix seconds of each send (emulator clock), nonce fresh
-- digits per send (unless pinned), signature = sha1 of the sorted
-- secret/timestamp/nonce (callbacks.zego_signature). stream_seq counts the
-- room's stream-list changes (1, 2, ...); room_session_id is drawn when a
-- room gets its first stream and kept while it has one.
-- Success is any 2xx; otherwise, or with no reply within 5 s, up to 5
-- retries, 2, 4, 8, 16 and 32 s (times zego.callback_retry_scale, default 1)
-- after the previous attempt ended.

local callbacks = require "streamctl.emulator.callbacks"
local json = require "streamctl.emulator.json"

local type, pairs, ipairs, tostring = type, pairs, ipairs, tostring
local floor, random = math.floor, math.random
local format, match = string.format, string.match
local sort = table.sort

local M = {}

local cfg               -- settings.zego
local forbidden         -- function(app_id, stream_id, now) -> bool (zego.lua)
local online = {}       -- "<AppId>/<StreamId>" -> entry
local rooms = {}        -- "<AppId>/<RoomId>" -> { session_id, seq, streams }

M.RETRY_DELAYS = { 2, 4, 8, 16, 32 }
M.TIMEOUT_MS = 5000
M.CLOSE_TYPES = { [0] = true, [1] = true, [2] = true, [3] = true, [4] = true, [5] = true, [100] = true }

local CREATE_ORDER = {
  "event", "appid", "timestamp", "nonce", "signature", "room_id", "room_session_id", "user_id", "user_name",
  "channel_id", "stream_id", "stream_alias", "stream_sid", "title", "stream_attr", "stream_seq",
  "create_time", "create_time_ms", "extra_info", "recreate", "publish_id", "publish_name",
  "rtmp_url", "hls_url", "hdl_url", "pic_url",
}
local CLOSE_ORDER = {
  "event", "appid", "timestamp", "nonce", "signature", "room_id", "room_session_id", "user_id", "user_name",
  "channel_id", "stream_alias", "stream_id", "stream_sid", "stream_seq", "type",
}

function M.init(settings, is_forbidden)
  cfg = settings.zego
  forbidden = is_forbidden
end

function M.reset()
  online, rooms = {}, {}
end

local function digits(n)
  local out = {}
  for i = 1, n do
    out[i] = random(i == 1 and 1 or 0, 9)
  end
  return table.concat(out)
end

local function app_id_of(v)
  if type(v) == "number" and v >= 0 and v % 1 == 0 then
    v = format("%d", v)
  end
  if type(v) == "string" and match(v, "^%d+$") then
    return v
  end
  return nil
end

-- Sends one callback: fields (without the signing ones) in `order`.
local function send(app_id, event, fields, order, pinned_nonce)
  local app = cfg.apps[app_id]
  if not (app and app.callback_url) then
    return nil
  end
  local secret = app.callback_secret
  local scale = cfg.callback_retry_scale or 1
  local delays = {}
  for i, d in ipairs(M.RETRY_DELAYS) do
    delays[i] = d * scale
  end
  return callbacks.enqueue({
    provider = "zego", event = event, method = "POST", url = app.callback_url,
    delays = delays, timeout_ms = M.TIMEOUT_MS,
    success = function(status) return status >= 200 and status < 300 end,
    subject = { app_id = app_id, stream_id = fields.stream_id, room_id = fields.room_id,
                stream_seq = fields.stream_seq },
    prepare = function(now)
      local body, shown = { event = event, appid = app_id }, {}
      for k, v in pairs(fields) do
        body[k] = v
      end
      body.timestamp = format("%d", floor(now))
      body.nonce = pinned_nonce or callbacks.digits_nonce()
      body.signature = callbacks.zego_signature(secret, body.timestamp, body.nonce)
      for k, v in pairs(body) do
        shown[k] = v
      end
      shown.signature = "***"
      return {
        headers = { { "Content-Type", "application/json" } },
        body = json.encode(json.ordered(body, order)),
        log_payload = json.ordered(shown, order),
      }
    end,
  })
end

local function check_spec(spec, i, what, keys)
  if type(spec) ~= "table" then
    return nil, what .. ": entry " .. i .. " must be an object"
  end
  local app_id = app_id_of(spec.app_id)
  if not app_id then
    return nil, what .. ": entry " .. i .. ": app_id must be an AppId (decimal digits)"
  end
  if not cfg.apps[app_id] then
    return nil, what .. ": entry " .. i .. ": app_id " .. app_id .. " is not a configured app"
  end
  for _, k in ipairs(keys) do
    if type(spec[k]) ~= "string" or spec[k] == "" then
      return nil, what .. ": entry " .. i .. ": " .. k .. " must be a non-empty string"
    end
  end
  return app_id
end

-- Publishes streams (specs: a list; see the top of this file). Returns the
-- keys marked and those refused, or nil and a message (nothing marked).
function M.publish(specs, now)
  local checked = {}
  for i, spec in ipairs(specs) do
    local app_id, err = check_spec(spec, i, "zego_online", { "stream_id", "room_id", "user_id" })
    if not app_id then
      return nil, err
    end
    for _, k in ipairs({ "user_name", "extra_info" }) do
      if spec[k] ~= nil and type(spec[k]) ~= "string" then
        return nil, "zego_online: entry " .. i .. ": " .. k .. " must be a string"
      end
    end
    if spec.nonce ~= nil and (type(spec.nonce) ~= "string" or not match(spec.nonce, "^%d+$")) then
      return nil, "zego_online: entry " .. i .. ": nonce must be a string of decimal digits"
    end
    checked[i] = { app_id = app_id, spec = spec }
  end
  local marked, refused = json.array(), json.array()
  for _, c in ipairs(checked) do
    local spec, app_id = c.spec, c.app_id
    local key = app_id .. "/" .. spec.stream_id
    if forbidden(app_id, spec.stream_id, now) then
      refused[#refused + 1] = key
    else
      marked[#marked + 1] = key
      if not online[key] then
        local room_key = app_id .. "/" .. spec.room_id
        local room = rooms[room_key] or { seq = 0, streams = 0 }
        rooms[room_key] = room
        if room.streams == 0 then
          room.session_id = digits(18)
        end
        room.streams = room.streams + 1
        room.seq = room.seq + 1
        local e = {
          app_id = app_id, stream_id = spec.stream_id, room_id = spec.room_id, user_id = spec.user_id,
          user_name = spec.user_name or spec.user_id, extra_info = spec.extra_info or "",
          stream_sid = digits(19), create_time = floor(now), room_key = room_key,
          room_session_id = room.session_id, nonce = spec.nonce,
        }
        online[key] = e
        send(app_id, "stream_create", {
          room_id = e.room_id, room_session_id = e.room_session_id, user_id = e.user_id,
          user_name = e.user_name, channel_id = e.room_id, stream_id = e.stream_id,
          stream_alias = e.stream_id, stream_sid = e.stream_sid, title = "", stream_attr = '{"cid":0}',
          stream_seq = tostring(room.seq), create_time = format("%d", e.create_time),
          create_time_ms = format("%d", floor(now * 1000)), extra_info = e.extra_info, recreate = "0",
          publish_id = e.user_id, publish_name = e.user_name,
          rtmp_url = json.array(), hls_url = json.array(), hdl_url = json.array(), pic_url = json.array(),
        }, CREATE_ORDER, spec.nonce)
      end
    end
  end
  return marked, refused
end

local function close(key, close_type, nonce)
  local e = online[key]
  online[key] = nil
  local room = rooms[e.room_key]
  room.streams = room.streams - 1
  room.seq = room.seq + 1
  send(e.app_id, "stream_close", {
    room_id = e.room_id, room_session_id = e.room_session_id, user_id = e.user_id, user_name = e.user_name,
    channel_id = e.room_id, stream_alias = e.stream_id, stream_id = e.stream_id, stream_sid = e.stream_sid,
    stream_seq = tostring(room.seq), type = format("%d", close_type),
  }, CLOSE_ORDER, nonce)
end

-- Stops streams (specs: a list of {app_id, stream_id, type?, nonce?}; nil:
-- every stream, type 0). Returns the keys stopped, or nil and a message.
function M.stop(specs)
  local removed = json.array()
  if specs == nil then
    for key in pairs(online) do
      removed[#removed + 1] = key
    end
    sort(removed)
    for _, key in ipairs(removed) do
      close(key, 0)
    end
    return removed
  end
  local checked = {}
  for i, spec in ipairs(specs) do
    local app_id, err = check_spec(spec, i, "zego_online", { "stream_id" })
    if not app_id then
      return nil, err
    end
    local t = spec.type
    if t == nil then
      t = 0
    end
    if not M.CLOSE_TYPES[t] then
      return nil, "zego_online: entry " .. i .. ": type must be 0, 1, 2, 3, 4, 5 or 100"
    end
    if spec.nonce ~= nil and (type(spec.nonce) ~= "string" or not match(spec.nonce, "^%d+$")) then
      return nil, "zego_online: entry " .. i .. ": nonce must be a string of decimal digits"
    end
    checked[i] = { key = app_id .. "/" .. spec.stream_id, type = t, nonce = spec.nonce }
  end
  for _, c in ipairs(checked) do
    if online[c.key] then
      close(c.key, c.type, c.nonce)
      removed[#removed + 1] = c.key
    end
  end
  return removed
end

--- Closes the streams online in room `room_id` of app `app_id` (only those
-- `users` publish, a set, when given) with close `close_type` (3: the
-- server kicked the user out; 5: the room was cleared), each with its
-- stream_close callback. Returns the keys closed, sorted.
function M.close_in_room(app_id, room_id, users, close_type)
  local keys = json.array()
  for key, e in pairs(online) do
    if e.app_id == app_id and e.room_id == room_id and (not users or users[e.user_id]) then keys[#keys + 1] = key end
  end
  sort(keys)
  for _, key in ipairs(keys) do close(key, close_type) end
  return keys
end

-- The streams online: "<AppId>/<StreamId>" -> { room_id, user_id, ... }.
function M.snapshot()
  local out = {}
  for key, e in pairs(online) do
    out[key] = {
      app_id = e.app_id, stream_id = e.stream_id, room_id = e.room_id, user_id = e.user_id,
      user_name = e.user_name, stream_sid = e.stream_sid, create_time = e.create_time,
      room_session_id = e.room_session_id,
    }
  end
  return out
end

return M
