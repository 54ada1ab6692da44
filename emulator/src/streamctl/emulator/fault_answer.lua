-- What a provider request is answered with when an injected fault replaces
-- its answer (faults.lua queues the faults; provider_request.lua takes
-- them), or when the emulator raised while serving it (a "crash", answered
-- as fault http500), and the log entry of such an answer.

local json = require "streamctl.emulator.json"
local requestlog = require "streamctl.emulator.requestlog"
local aliyun = require "streamctl.emulator.aliyun"
local zego = require "streamctl.emulator.zego"

local tostring, type = tostring, type
local floor = math.floor
local sub = string.sub

local M = {}

-- Fault kinds that replace the answer (the others only delay or skew it).
local REPLACING = {
  http500 = true, http503 = true, throttle = true, drop = true, malformed = true, truncated = true, code = true,
}

-- Whether `fault` (or nil) replaces the answer.
function M.replaces(fault)
  return fault ~= nil and REPLACING[fault.kind] == true
end

local FAULT_CODES = {
  aliyun = { http500 = "InternalError", http503 = "ServiceUnavailable", throttle = "Throttling.User" },
  zego = { http500 = 30003, http503 = 100000015, throttle = 30002 },
  imds = { http500 = "InternalError", http503 = "ServiceUnavailable" },
}

-- The minimal log of a request that a fault answered before any processing.
local function unprocessed_log(provider, req, action)
  local p = req.params
  return {
    action = action,
    account = provider == "aliyun" and p.AccessKeyId or p.AppId,
    account_uid = provider == "aliyun" and aliyun.account_uid(p.AccessKeyId) or nil,
    params = requestlog.redact(p),
    sequence = provider == "zego" and p.Sequence or nil,
    stream_ids = provider == "zego" and zego.request_stream_ids(req) or nil,
    applied = false,
  }
end

-- The RequestId an answer carries (Aliyun's x-acs-request-id header, or
-- its JSON body's RequestId: ZEGO's), or nil.
local function answered_id(res)
  local rid = res.headers and res.headers["x-acs-request-id"]
  if rid then return rid end
  local body = type(res.body) == "string" and json.decode(res.body)
  return type(body) == "table" and type(body.RequestId) == "string" and body.RequestId or nil
end

-- Builds the faulted answer. processed: the real result when after_apply.
-- The log's request_id is the one answered: the fault's own (none for a
-- dropped answer), never the processed answer's that was not sent.
function M.result(provider, mod, fault, req, action, processed)
  local kind = fault.kind
  local log = processed and processed.log or unprocessed_log(provider, req, action)
  local res
  if kind == "http500" or kind == "http503" or kind == "throttle" or kind == "code" then
    res = mod.fault_response(kind, fault, req)
    log.code = kind == "code" and fault.code or FAULT_CODES[provider][kind]
    log.status = res.status
    log.request_id = answered_id(res)
  elseif kind == "drop" then
    res = { drop = true }
    log.status = nil
    log.request_id = nil
  else
    local base = processed or {
      status = 200,
      headers = { ["Content-Type"] = "application/json" },
      body = mod.placeholder_body(req),
    }
    res = { status = base.status, headers = base.headers, body = base.body }
    if kind == "malformed" then
      res.body = sub(base.body, 1, floor(#base.body / 2)) .. "<!-- emulator fault: malformed -->"
    else
      res.truncate = true
    end
    log.status = res.status
  end
  log.verdict = "fault"
  log.applied = processed ~= nil and processed.applied == true
  res.log = log
  return res
end

-- The answer of a request whose processing raised `err`: the provider's
-- http500, logged with verdict "crash" and the error as its message.
function M.crash_result(provider, mod, fault, req, action, err)
  local res = mod.fault_response("http500", fault or {}, req)
  res.log = unprocessed_log(provider, req, action)
  res.log.verdict = "crash"
  res.log.code = FAULT_CODES[provider].http500
  res.log.status = res.status
  res.log.request_id = answered_id(res)
  res.log.message = tostring(err)
  return res
end

return M
