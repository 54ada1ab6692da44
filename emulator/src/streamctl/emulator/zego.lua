-- ZEGOCLOUD Server API v2 (stream control) as rtc-api.zego.im answers it.
--
-- Every answer is HTTP 200 with {"Code","Message","RequestId","Data"}; Code 0 is
-- success. Injected faults http500/http503 (and an emulator crash, answered like
-- http500) are the only non-200 answers.
--
-- The ZEGO ports as the server sees them (server.lua's provider module:
-- init, peek_action, process, fault_response, placeholder_body, snapshot,
-- reset), and the streams published (/_emulator/zego_online). Its parts:
--   zego_gateway.lua   a request through the checks (their order and codes)
--                      to its action, and its log entry
--   zego_actions.lua   the actions: DescribeRTCStreamState, the CDN forbid
--                      and resume, the RTC ones with the Sequence rule
--   zego_state.lua     each stream's forbid and resume state
--   zego_response.lua  the codes' messages, request ids, the answers
--   zego_streams.lua   the streams published and their callbacks

local stats = require "streamctl.emulator.stats"
local zego_streams = require "streamctl.emulator.zego_streams"
local response = require "streamctl.emulator.zego_response"
local state = require "streamctl.emulator.zego_state"
local actions = require "streamctl.emulator.zego_actions"
local gateway = require "streamctl.emulator.zego_gateway"
local stream_rules = require "streamctl.emulator.zego_rules"

local pairs = pairs

local M = {}

local cfg

M.MESSAGES = response.MESSAGES

function M.init(settings)
  cfg = settings
  gateway.init(settings)
  actions.init(settings)
  zego_streams.init(settings, state.forbidden)
end

-- Streams being published and their callbacks (zego_streams.lua), through
-- /_emulator/zego_online.
M.publish = zego_streams.publish
M.stop = zego_streams.stop
M.online_snapshot = zego_streams.snapshot

function M.peek_action(req)
  return req.params.Action
end

M.compare_decimal = state.compare_decimal
M.cdn_state = state.cdn_state
M.request_stream_ids = gateway.request_stream_ids

-- Verifies and executes one request. Returns { status, headers, body, log, applied }.
M.process = gateway.process

-- The answer of an injected fault: http500 | http503 | throttle.
M.fault_response = response.fault_response
M.placeholder_body = response.placeholder_body

-- The limiter each app uses (its own rate_limiter or the provider's).
local function limiters()
  local out = {}
  for id, app in pairs(cfg.zego.apps) do
    out[id] = app.rate_limiter or cfg.zego.rate_limiter
  end
  return out
end

function M.snapshot(now)
  return {
    streams = state.snapshot(now),
    online = zego_streams.snapshot(),
    stream_rules = stream_rules.snapshot(),
    counters = stats.snapshot("zego"),
    rate_limiter = cfg.zego.rate_limiter,
    rate_limiters = limiters(),
  }
end

function M.reset()
  state.reset()
  zego_streams.reset()
  stream_rules.reset()
end

return M
