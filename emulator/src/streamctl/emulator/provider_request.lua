-- One request on a provider port, from arrival to answer: read whole, the
-- fault queued for it taken (a delay, a skewed Date, or an answer in place
-- of or over the real one: fault_answer.lua), processed by its provider
-- (aliyun.lua, zego.lua, imds.lua), logged, sent.
--
-- Request log entry (GET /_emulator/log), one per provider request:
--   { "seq": n, "provider": "aliyun"|"zego", "time": <emulator unix time at receipt>,
--     "real_time": <unix>, "duration_ms": n, "method", "scheme", "port",
--     "action", "account" (AccessKeyId / AppId), "account_uid" (Aliyun: the UID
--     of the key's account, when the config gives it one; its budget's owner),
--     "params" (secrets as "***"),
--     "headers" (V3: x-acs-*, host, content-type, authorization; secrets "***"),
--     "signature_version", "request_id",
--     "verdict": "ok" | "rejected" (gateway/signature checks) | "error" (operation
--                rules) | "throttled" | "stale" (ZEGO sequence: nothing applied)
--                | "fault" (an injected fault answered)
--                | "crash" (the emulator raised; answered as fault http500),
--     "code": "OK" / Aliyun code / ZEGO numeric Code, "message", "status" (HTTP),
--     "applied": bool (the operation ran against the state),
--     "sequence" (ZEGO), "streams", "applied_streams", "stale_streams" (ZEGO),
--     "stream_ids" (ZEGO, every entry: the StreamIds the request named, as sent),
--     "detail" (what changed), "canonical_request" (V3),
--     "fault": kind, "fault_id": n (when a fault touched the request),
--     "retry_after_ms", "rate_limiter" (throttled: the wait and the algorithm),
--     "rate_limit_time" (the limiter's clock when the request reached it:
--     ratelimit.lua, the strangers' set_at's clock) }
-- Secrets never appear: Signature, AccessKeySecret, SecurityToken,
-- x-acs-security-token and Authorization values are replaced by "***".

local clock = require "streamctl.emulator.clock"
local faults = require "streamctl.emulator.faults"
local stats = require "streamctl.emulator.stats"
local requestlog = require "streamctl.emulator.requestlog"
local aliyun = require "streamctl.emulator.aliyun"
local zego = require "streamctl.emulator.zego"
local imds = require "streamctl.emulator.imds"
local request_io = require "streamctl.emulator.request_io"
local fault_answer = require "streamctl.emulator.fault_answer"

local ngx = ngx
local ngx_sleep, ngx_log, ngx_ERR = ngx.sleep, ngx.log, ngx.ERR

local pcall, tostring = pcall, tostring
local floor = math.floor

local M = {}

local PROVIDERS = { aliyun = aliyun, zego = zego, imds = imds }

-- The entry of a request in the request log: its answer's log and what the
-- server knows of the request (when it came, how long it took, its fault).
local function log_entry(provider, req, res, fault, received, real_start)
  local entry = res.log
  entry.provider = provider
  entry.time = received
  entry.real_time = real_start
  entry.duration_ms = floor((clock.real_now() - real_start) * 1000 + 0.5)
  entry.method = req.method
  entry.scheme = req.scheme
  entry.port = req.port
  -- (W3C Trace Context as received: a caller's trace, for a test to follow; never part of a signature)
  local h = req.headers or {}
  entry.traceparent, entry.tracestate = h.traceparent, h.tracestate
  if fault then
    entry.fault = fault.kind
    entry.fault_id = fault.id
  end
  return entry
end

-- Waits until `deadline` (real seconds, as clock.real_now tells them). Alone,
-- ngx.sleep can end a few milliseconds early: its timers run on nginx's
-- CLOCK_MONOTONIC_COARSE milliseconds, which trail the real clock by up to
-- a kernel tick, and a loop woken by another event (the ticker, another
-- connection) runs a timer as soon as that clock reaches it.
local function sleep_until(deadline)
  local left = deadline - clock.real_now()
  while left > 0 do
    ngx_sleep(left)
    left = deadline - clock.real_now()
  end
end

-- Serves the request in progress on a port of `provider`.
function M.serve(provider)
  local mod = PROVIDERS[provider]
  local received = clock.now()
  local real_start = clock.real_now()
  local req = request_io.collect()
  local action = mod.peek_action(req)
  local fault = faults.take(provider, action, received)
  if fault and fault.kind == "delay" then
    -- (+1 ms: real_now is in whole milliseconds, cut, so the arrival was up to 1 ms after real_start)
    sleep_until(real_start + fault.delay_ms / 1000 + 0.001)
  elseif fault and fault.kind == "skew" then
    ngx.ctx.date_skew = fault.skew_s
  end

  local res
  local ok, err = pcall(function()
    if fault_answer.replaces(fault) and not fault.after_apply then
      stats.count(provider, action, "faulted", clock.real_now())
      res = fault_answer.result(provider, mod, fault, req, action, nil)
    else
      res = mod.process(req)
      if fault_answer.replaces(fault) then
        res = fault_answer.result(provider, mod, fault, req, action, res)
      elseif fault and fault.kind == "page" then
        res = fault_answer.page(res, fault, action)
      end
    end
  end)
  if not ok then
    ngx_log(ngx_ERR, "emulator: ", provider, " request failed: ", tostring(err))
    res = fault_answer.crash_result(provider, mod, fault, req, action, err)
  end

  local entry = log_entry(provider, req, res, fault, received, real_start)
  -- A message quoting a string to sign, or the canonical request, holds the
  -- request's security token: the log shows "***" there as everywhere.
  requestlog.append(requestlog.scrub(entry, req))
  return request_io.send(res)
end

return M
