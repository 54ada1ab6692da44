-- How the Aliyun ports answer (Live and STS alike): the error codes with
-- their HTTP statuses and messages, request ids, the answer's format and its
-- body, JSON or XML.
--
-- Error codes and HTTP statuses (from the OpenAPI gateway's common error table and
-- the Live operations' pages; statuses marked * are not confirmed by a document):
--   Code                                         HTTP  when
--   UnsupportedHTTPMethod                        400   method other than GET/POST
--   InvalidParameter.Format                      400   Format other than JSON/XML
--   Missing<Name>                                400   required parameter absent or empty
--   IncompleteSignature                          400   V3 Authorization unparsable, a V3 header
--                                                      missing, or an x-acs-*/host header unsigned
--   InvalidSignatureMethod                       400   SignatureMethod is not HMAC-SHA1
--   InvalidSignatureVersion                      400*  SignatureVersion is not 1.0
--   InvalidTimeStamp.Format                      400   Timestamp / x-acs-date not yyyy-MM-ddTHH:mm:ssZ
--   InvalidAccessKeyId.NotFound                  404   unknown AccessKeyId
--   InvalidTimeStamp.Expired                     400   more than 15 minutes of skew
--   SignatureDoesNotMatch                        400   wrong signature (Message ends with the
--                                                      server's string to sign) or, V3, an
--                                                      x-acs-content-sha256 that is not the body's
--   MissingSecurityToken                         400*  STS account without a token
--   InvalidSecurityToken.MismatchWithAccessKey   400*  STS token not the account's
--   InvalidSecurityToken.Expired                 400*  issued STS key past its Expiration
--   SignatureNonceUsed                           400   nonce seen before
--   InvalidApi.NotFound                          404   Action/Version not a Live operation
--   Throttling.User                              400   rate limit; header x-acs-retry-after (ms)
--                                                      (ForbidLiveStream: 20/s by default)
--   LiveServiceNotFound                          400   account without Live
--   CodeInvalidAliUid                            400   account without a live domain (pull-to-push)
--   InvalidParameter                             400   an operation parameter's value is wrong
--   InvalidDomain.NotFound                       404   DomainName not configured (only when
--                                                      aliyun.domains is set)
--   InvalidParam.CodeIllegalDuration             400   pull-to-push StartTime/EndTime rules (create, update)
--   CodeConfigAlreadyExists                      400   pull-to-push DstUrl already used by a task
--   CodeNotEnoughResource                        400*  too many pull-to-push tasks
--   CodeTaskNotExist                             400   pull-to-push TaskId unknown, in another Region,
--                                                      deleted, or past its EndTime (deleted then)
--   CodeTaskHasStopped                           400   StopLivePullToPush of a stopped task
--   BlockList.LimitExceeded                      400*  ForbidLiveStream with the block list full
--                                                      (aliyun.block_list_limit); the emulator's
--                                                      own code: the pages name none
--   InternalError                                500   injected fault http500
--   ServiceUnavailable                           503   injected fault http503
--   (STS's own codes: sts.lua. Error bodies of STS requests carry HostId
--   sts.aliyuncs.com and product=Sts in Recommend.)
--
-- Response formats: V1 answers JSON when Format=JSON and XML when Format=XML or
-- when Format is absent (the service's default); the XML is a plain rendering
-- of the same fields (<Error>...</Error> or <ActionResponse>...</ActionResponse>,
-- array items repeat their field's element). V3 always answers JSON.

local json = require "streamctl.emulator.json"
local sts_api = require "streamctl.emulator.sts"
local products = require "streamctl.emulator.aliyun_products"

local type, pairs, ipairs, tostring, getmetatable = type, pairs, ipairs, tostring, getmetatable
local random = math.random
local format, gsub, upper = string.format, string.gsub, string.upper
local sort, concat = table.sort, table.concat

local M = {}

local ERRORS = {
  ["UnsupportedHTTPMethod"] = { 400, "This http method is not supported." },
  ["InvalidParameter.Format"] = { 400, "Specified parameter format is not valid. Only JSON and XML are supported." },
  ["IncompleteSignature"] = { 400, "The request signature does not conform to Aliyun standards." },
  ["InvalidSignatureMethod"] = { 400, "Specified signature method is not valid." },
  ["InvalidSignatureVersion"] = { 400, "Specified parameter SignatureVersion is not valid." },
  ["InvalidTimeStamp.Format"] = { 400, "Specified time stamp or date value is not well formatted." },
  ["InvalidAccessKeyId.NotFound"] = { 404, "Specified access key is not found." },
  ["InvalidTimeStamp.Expired"] = { 400, "Specified time stamp or date value is expired." },
  ["SignatureDoesNotMatch"] = { 400, "Specified signature is not matched with our calculation." },
  ["MissingSecurityToken"] = { 400, "SecurityToken is mandatory for this action." },
  ["InvalidSecurityToken.MismatchWithAccessKey"] = { 400, "The security token does not match the access key." },
  ["SignatureNonceUsed"] = { 400, "Specified signature nonce was used already." },
  ["InvalidApi.NotFound"] = { 404, "Specified api is not found, please check your url and method." },
  ["Throttling.User"] = { 400, "Request was denied due to user flow control." },
  ["LiveServiceNotFound"] = { 400, "Your account does not open Live service yet." },
  ["CodeInvalidAliUid"] = { 400, "This aliuid does not have a live domain name." },
  ["InvalidParameter"] = { 400, "Specified parameter is not valid." },
  ["InvalidDomain.NotFound"] = { 404, "The domain provided does not exist in our records." },
  ["InvalidParam.CodeIllegalDuration"] = { 400, "The task duration is illegal." },
  ["CodeConfigAlreadyExists"] = { 400, "The task config already exists." },
  ["CodeNotEnoughResource"] = { 400, "Not enough resource." },
  ["CodeTaskNotExist"] = { 400, "The task does not exist." },
  ["CodeTaskHasStopped"] = { 400, "The task has stopped." },
  ["BlockList.LimitExceeded"] = { 400, "The block list is full." },
  ["Forbidden.RAM"] = { 403, "User not authorized to operate on the specified resource, or this API doesn't "
    .. "support RAM." },
  ["InternalError"] = { 500, "The request processing has failed due to some unknown error, exception or failure." },
  ["ServiceUnavailable"] = { 503, "The request has failed due to a temporary failure of the server." },
}

for code, e in pairs(sts_api.ERRORS) do
  ERRORS[code] = e
end

M.ERRORS = ERRORS

-- The HTTP status of an error code (Missing<Name> and unknown codes: 400).
function M.status_of(code)
  local e = ERRORS[code]
  return e and e[1] or 400
end

-- The message an error answer carries: `message` when given, else the
-- product's own InternalError text (STS), else the code's standard one.
function M.message_of(code, message, product)
  return message or (code == "InternalError" and product.internal_error)
    or (ERRORS[code] and ERRORS[code][2]) or code
end

function M.request_id()
  return format("%08X-%04X-%04X-%04X-%04X%08X",
    random(0, 0x7fffffff), random(0, 0xffff), random(0, 0xffff),
    random(0, 0xffff), random(0, 0xffff), random(0, 0x7fffffff))
end

-- The format of a request's answers: "XML" for a V1 request whose Format is
-- XML or absent, else "JSON" (a Format that is neither is refused in JSON).
function M.format_of(req)
  if not products.is_v3(req) then
    local f = req.params.Format
    if f == nil or f == "" or upper(f) == "XML" then
      return "XML"
    end
  end
  return "JSON"
end

-------------------------------------------------------------------------------
-- Rendering

local function xml_escape(s)
  return (gsub(s, "[&<>\"']", {
    ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;", ["'"] = "&apos;",
  }))
end

local function is_array(v)
  local mt = getmetatable(v)
  if mt and mt.__json_array then
    return true
  end
  return #v > 0
end

local function xml_value(name, v, out)
  if type(v) == "table" then
    if is_array(v) then
      for _, item in ipairs(v) do
        xml_value(name, item, out)
      end
      return
    end
    out[#out + 1] = "<" .. name .. ">"
    local keys = json.order_of(v)
    if not keys then
      keys = {}
      for k in pairs(v) do
        keys[#keys + 1] = tostring(k)
      end
      sort(keys)
    end
    for _, k in ipairs(keys) do
      if v[k] ~= nil then
        xml_value(k, v[k], out)
      end
    end
    out[#out + 1] = "</" .. name .. ">"
  else
    if type(v) == "boolean" then
      v = v and "true" or "false"
    elseif type(v) ~= "string" and type(v) ~= "number" then
      v = ""
    end
    out[#out + 1] = "<" .. name .. ">" .. xml_escape(tostring(v)) .. "</" .. name .. ">"
  end
end

-- An answer: { status, headers, body } with the fields under `root` (XML)
-- or as the JSON object, the request id in x-acs-request-id.
function M.render(status, root, fields, fmt, rid, extra_headers)
  local headers = { ["x-acs-request-id"] = rid }
  local body
  if fmt == "XML" then
    local out = { "<?xml version='1.0' encoding='UTF-8'?>" }
    xml_value(root, fields, out)
    body = concat(out)
    headers["Content-Type"] = "text/xml;charset=utf-8"
  else
    body = json.encode(fields)
    headers["Content-Type"] = "application/json;charset=utf-8"
  end
  if extra_headers then
    for k, v in pairs(extra_headers) do
      headers[k] = v
    end
  end
  return { status = status, headers = headers, body = body }
end

-- An error answer. message nil: the code's standard message (STS's own
-- InternalError text for STS). product: products.LIVE (default) or .STS.
function M.error_response(code, message, fmt, rid, extra_headers, product)
  product = product or products.LIVE
  rid = rid or M.request_id()
  local status = M.status_of(code)
  message = M.message_of(code, message, product)
  local fields = {
    RequestId = rid,
    HostId = product.host_id(),
    Code = code,
    Message = message,
    Recommend = "https://api.aliyun.com/troubleshoot?q=" .. code .. "&product=" .. product.name
      .. "&requestId=" .. rid,
  }
  return M.render(status, "Error", fields, fmt or "JSON", rid, extra_headers)
end

return M
