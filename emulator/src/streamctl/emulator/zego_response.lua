-- The answers of the emulator's ZEGO ports (zego.lua): every one a JSON
-- {"Code","Message","RequestId","Data"}, the codes' messages, request ids,
-- and the answers of injected faults.

local json = require "streamctl.emulator.json"

local random, format = math.random, string.format

local M = {}

local MESSAGES = {
  [0] = "success",
  [1] = "Request failed.",
  [2] = "Incorrect input parameter.",
  [3] = "Authentication failed.",
  [30002] = "The number of requests per second has exceeded the API rate limit.",
  [30003] = "Internal error. Please retry.",
  [30004] = "IsTest is wrong.",
  [30005] = "Invalid AppId.",
  [30006] = "Invalid StreamId list.",
  [42001] = "Forbid or resume failed, please retry.",
  [42002] = "Forbid or resume failed, please retry.",
  [42003] = "Forbid or resume failed, please retry.",
  [42004] = "Forbid or resume failed, please retry.",
  [100000001] = "Invalid AppId format.",
  [100000002] = "Timestamp is null.",
  [100000003] = "Invalid Timestamp format.",
  [100000004] = "Signature expired.",
  [100000005] = "Invalid signature.",
  [100000006] = "Action is null.",
  [100000007] = "Unsupported Action.",
  [100000008] = "SignatureNonce is null.",
  [100000009] = "Signature is null.",
  [100000013] = "SignatureVersion is null.",
  [100000014] = "Unsupported SignatureVersion.",
  [100000015] = "API gateway internal error.",
  [100000017] = "The service is not available for the app.",
}

M.MESSAGES = MESSAGES

function M.request_id()
  return format("%d%09d", random(100000000, 999999999), random(0, 999999999))
end

local function body(code, rid, data, message)
  return json.encode({
    Code = code,
    Message = message or MESSAGES[code] or "error",
    RequestId = rid,
    Data = data == nil and json.null or data,
  })
end

-- An answer: { status, headers, body }.
local function respond(status, code, rid, data, message)
  return {
    status = status,
    headers = { ["Content-Type"] = "application/json; charset=utf-8" },
    body = body(code, rid, data, message),
  }
end

M.respond = respond

-- The answer of an injected fault: http500 | http503 | throttle.
function M.fault_response(kind, fault)
  local rid = M.request_id()
  if kind == "code" then
    return respond(200, fault.code, rid, nil, fault.message)
  elseif kind == "http500" then
    return respond(500, 30003, rid)
  elseif kind == "http503" then
    return respond(503, 100000015, rid)
  end
  return respond(200, 30002, rid)
end

function M.placeholder_body()
  return body(0, M.request_id())
end

return M
