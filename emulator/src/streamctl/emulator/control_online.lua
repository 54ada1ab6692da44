-- The control endpoints that publish streams, since the emulator has no
-- publishers (control_endpoints.lua routes to them):
--
-- /_emulator/online, Live's streams being published (for
-- DescribeLiveStreamsOnlineList; publish / publish_done callbacks:
-- aliyun_notify.lua). POST marks streams online: one
-- {"domain","app","stream"} or an array of them (optional "client_ip",
-- "publish_time" in Unix seconds); a stream that is blocked now is refused,
-- not marked. DELETE takes the streams in the body offline, or every stream
-- when the body is empty.
--
-- /_emulator/zego_online, ZEGO's (zego_streams.lua): POST publishes one
-- {"app_id","stream_id","room_id","user_id",...} or an array (stream_create
-- callbacks; a forbidden stream is refused), DELETE stops those of the body
-- ({"app_id","stream_id"[,"type"]}) or, without a body, all (stream_close).
--
-- /_emulator/remote_auth, Live's remote authentication (remote_auth.lua):
-- POST sets one domain's, GET shows them and the questions asked, DELETE
-- removes them all. A POST to /_emulator/online then asks the domain's
-- server before marking a stream, and says what it answered
-- (`remote_auth`: stream -> why).
--
-- Each handler returns status, value (the JSON answer).

local clock = require "streamctl.emulator.clock"
local aliyun = require "streamctl.emulator.aliyun"
local zego = require "streamctl.emulator.zego"
local request_io = require "streamctl.emulator.request_io"
local remote_auth = require "streamctl.emulator.remote_auth"

local type, next = type, next

local M = {}

-- The Live stream specs of a body: one object or an array of them.
local function live_specs(value)
  if type(value) ~= "table" then
    return nil, "online: expected an object or an array of objects"
  end
  if value.domain ~= nil or value.app ~= nil or value.stream ~= nil then
    return { value }
  end
  return value
end

-- The ZEGO stream specs of a body: one object or an array of them.
local function zego_specs(value)
  if type(value) ~= "table" then
    return nil, "zego_online: expected an object or an array of objects"
  end
  if value.app_id ~= nil or value.stream_id ~= nil then
    return { value }
  end
  return value
end

-- The specs a DELETE's body names, read by `to_specs`: nil (every stream)
-- for an empty body; nil and a message for a body that is not JSON or
-- not specs.
local function specs_to_remove(to_specs)
  local value, err = request_io.read_json_body(nil)
  if value == nil then
    return nil, err
  end
  return to_specs(value)
end

-- GET /_emulator/online
function M.list_live()
  return 200, { online = aliyun.online_snapshot(clock.now()) }
end

-- POST /_emulator/online (the body decoded)
function M.mark_live_online(value)
  local specs, err = live_specs(value)
  if not specs then
    return 400, { error = err }
  end
  local now = clock.now()
  local marked, refused, reasons = aliyun.mark_online(specs, now)
  if not marked then
    return 400, { error = refused }
  end
  local answer = { marked = marked, refused = refused, online = aliyun.online_snapshot(now) }
  if next(reasons or {}) then answer.remote_auth = reasons end -- (what remote authentication said, by stream)
  return 200, answer
end

-- DELETE /_emulator/online
function M.mark_live_offline()
  local specs, err = specs_to_remove(live_specs)
  if err then
    return 400, { error = err }
  end
  local removed
  removed, err = aliyun.mark_offline(specs, clock.now())
  if not removed then
    return 400, { error = err }
  end
  return 200, { removed = removed, online = aliyun.online_snapshot(clock.now()) }
end

-- GET, POST, DELETE /_emulator/remote_auth
function M.remote_auth_get()
  return 200, remote_auth.snapshot()
end
function M.remote_auth_set(value)
  local s, err = remote_auth.set(value)
  if not s then return 400, { error = err } end
  return 200, remote_auth.snapshot()
end
function M.remote_auth_delete()
  remote_auth.reset()
  return 200, remote_auth.snapshot()
end

-- GET /_emulator/zego_online
function M.list_zego()
  return 200, { online = zego.online_snapshot() }
end

-- POST /_emulator/zego_online (the body decoded)
function M.publish_zego(value)
  local specs, err = zego_specs(value)
  if not specs then
    return 400, { error = err }
  end
  local published, refused = zego.publish(specs, clock.now())
  if not published then
    return 400, { error = refused }
  end
  return 200, { marked = published, refused = refused, online = zego.online_snapshot() }
end

-- DELETE /_emulator/zego_online
function M.stop_zego()
  local specs, err = specs_to_remove(zego_specs)
  if err then
    return 400, { error = err }
  end
  local stopped
  stopped, err = zego.stop(specs)
  if not stopped then
    return 400, { error = err }
  end
  return 200, { removed = stopped, online = zego.online_snapshot() }
end

return M
