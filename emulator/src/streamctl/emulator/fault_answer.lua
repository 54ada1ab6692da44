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

-- Where each listing's page and total sit in its answer (a page fault cuts them).
local LISTINGS = {
  DescribeLiveUserDomains = { "Domains", "PageData", total = "TotalCount" },
  DescribeLiveStreamsBlockList = { "StreamUrls", "StreamUrl", total = "TotalNum" },
  DescribeLiveStreamsOnlineList = { "OnlineInfo", "LiveStreamOnlineInfo", total = "TotalNum" },
  DescribeLivePullToPushList = { "TaskList", total = "Total" },
  DescribeStreamLocationBlock = { "StreamBlockList", "StreamBlock", total = "Count" },
  DescribeLiveStreamsPublishList = { "PublishInfo", "LiveStreamPublishInfo", total = "TotalNum" },
}

-- A listing's answer `res` (served) with its page cut to `fault.keep` entries
-- and its total answered as `fault.total` ("none": left out); any other
-- answer (not a listing's, not JSON, a refusal) as it is.
function M.page(res, fault, action)
  local where = LISTINGS[action]
  local data = where and res.status == 200 and type(res.body) == "string" and json.decode(res.body)
  if type(data) ~= "table" or data[where.total] == nil then return res end
  local holder, key = data, where[1]
  if where[2] then holder, key = data[where[1]], where[2] end
  local list = type(holder) == "table" and holder[key]
  if type(list) == "table" and fault.keep then
    for i = #list, fault.keep + 1, -1 do list[i] = nil end
    holder[key] = json.array(list)
  end
  if fault.total == "none" then data[where.total] = nil elseif fault.total then data[where.total] = fault.total end
  res.body = json.encode(data)
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
