--- The error model shared by every streamctl call.
--
-- The convention, everywhere in the library:
--
-- * Misuse raises, blamed on the caller (`error(..., 2)`: "bad argument #1
--   to 'reserve' (...)"): a wrong type where a client, a table of options or
--   a key was expected, an unknown method, a store that breaks its contract.
-- * Expected failures return `nil, err` with an error object (below): the
--   provider refused, the network failed, a store could not answer.
-- * Options are checked at construction (`new`, a store's constructor) and
--   a bad or unknown one is an expected failure: `nil, err`, `err.code`
--   "InvalidParameter", its message naming the option
--   (streamctl.base.validate.construct). Options that are not a table at all
--   are misuse and raise.
--
-- Expected failures are returned as `nil, err`, where `err` is a table:
--
--   provider      "aliyun" | "zego", or nil for a library object's own
--                 options (a rate limiter's, a store's)
--   action        the service action ("ResumeLiveStream"), or nil
--   code          the service's code as it sends it (Aliyun: a string such as
--                 "Throttling.User"; ZEGO: a number such as 30002), or a local
--                 code: "InvalidParameter", "MissingCredentials", "Timeout",
--                 "NetworkError", "TLSError", "InvalidResponse", "InvalidRequest",
--                 "Interrupted", "DeadlineExceeded" (a run's `deadline_ms` passed before
--                 it was sent), "RedisError" (a Redis connection's `eval`),
--                 "BlockListFull" (Alibaba Cloud's block list has no place for the run:
--                 refused before sending, or, in a batch, a call not sent after one
--                 was refused at the limit)
--   message       human text; names the field and the rule for validation errors
--   http_status   the HTTP status, when a response arrived
--   request_id    the provider's RequestId, when it sent one
--   retryable     whether a retry can help
--   kind          "validation" | "auth" | "signature" | "clock" | "throttled" |
--                 "server" | "network" | "timeout" | "tls" | "response" |
--                 "duplicate" (a copy of the request arrived first) | "service" |
--                 "interrupted" (the caller stopped the run, or its deadline passed,
--                 before it was sent) |
--                 "store" (Redis failed; `reason`: "server", "io" or "phase") |
--                 "audit" (a batch's audit log could not be written)
--   sent          for network failures: whether the request reached the wire
--   outcome_unknown  the request may or may not have taken effect
--   hint          what to do about it, where the failure tells (a certificate
--                 that cannot be verified: option 'ca_file'), or nil
--   retry_after_ms  from `x-acs-retry-after`, when present
--   server_date   Unix seconds of the response's `Date` header, when present
--
-- `tostring(err)` gives one line. No secret, signature or security token is
-- ever put into an error: provider messages are scrubbed with `redact`.
-- @module streamctl.base.errors

local setmetatable, getmetatable, tostring, type, pairs = setmetatable, getmetatable, tostring, type, pairs
local concat = table.concat
local gsub, format, find = string.gsub, string.format, string.find

local M = {}

local Error = {}
Error.__index = Error

function Error.__tostring(e)
  -- ("streamctl: zego ForbidRTCStream: 30002 ..."; without a provider,
  -- "streamctl: InvalidParameter: ...")
  local parts = { "streamctl: " }
  if e.provider then parts[#parts + 1] = e.provider .. (e.action and " " .. e.action or "") .. ": " end
  parts[#parts + 1] = tostring(e.code)
  if e.http_status then parts[#parts + 1] = format(" (HTTP %d)", e.http_status) end
  if e.message and e.message ~= "" then parts[#parts + 1] = ": " .. e.message end
  if e.request_id then parts[#parts + 1] = " [RequestId " .. e.request_id .. "]" end
  return concat(parts)
end

--- The kinds of provider answer that a retry can help: throttling, server
-- failures, and a clock the provider disagrees with (retried once).
M.RETRYABLE_KINDS = { throttled = true, server = true, clock = true }

--- Makes an error object from a table of the fields above.
function M.new(fields)
  if fields.retryable == nil then fields.retryable = false end
  return setmetatable(fields, Error)
end

--- Is `v` a streamctl error?
function M.is(v)
  return type(v) == "table" and getmetatable(v) == Error
end

--- A validation failure: nothing was sent.
function M.invalid(provider, action, message)
  return M.new {
    provider = provider, action = action, code = "InvalidParameter",
    kind = "validation", message = message, retryable = false,
  }
end

local function escape_pattern(s)
  return (gsub(s, "[%^%$%(%)%%%.%[%]%*%+%-%?]", "%%%0"))
end

--- The forms in which `secrets` can stand in a text: each (of at least 4
-- bytes), doubly percent-encoded, once encoded, and as it is, in the order
-- they must be replaced.
-- @param secrets array of strings (short or empty ones are ignored)
-- @param encode the provider percent-encoder (optional)
-- @return array of strings
function M.redaction_forms(secrets, encode)
  local forms = {}
  for _, s in pairs(secrets) do
    if type(s) == "string" and #s >= 4 then
      if encode then
        local once = encode(s)
        forms[#forms + 1] = encode(once)
        forms[#forms + 1] = once
      end
      forms[#forms + 1] = s
    end
  end
  return forms
end

--- `text` with every form (see redaction_forms) replaced by "<redacted>".
function M.redact_forms(text, forms)
  if type(text) ~= "string" then return text end
  for i = 1, #forms do
    if find(text, forms[i], 1, true) then text = gsub(text, escape_pattern(forms[i]), "<redacted>") end
  end
  return text
end

--- Removes every occurrence of each secret (and its percent-encoded and
-- doubly encoded forms) from `text`.
-- @param text string
-- @param secrets array of strings (empty ones are ignored)
-- @param encode the provider percent-encoder
function M.redact(text, secrets, encode)
  if type(text) ~= "string" then return text end
  return M.redact_forms(text, M.redaction_forms(secrets, encode))
end

--- A response whose body is not the provider's answer: a server failure
-- (retryable, `server_code`) on HTTP 5xx, else InvalidResponse. Either way an
-- answer came back, so the request may have taken effect: `outcome_unknown`.
function M.unreadable(provider, action, status, body, server_code, what)
  local server = status >= 500
  return M.new {
    provider = provider, action = action, http_status = status,
    code = server and server_code or "InvalidResponse",
    kind = server and "server" or "response", retryable = server, outcome_unknown = true,
    message = format("HTTP %d with a body that is not %s (%d bytes)", status, what, #body),
  }
end

local TRANSPORT_KIND = {
  Timeout = "timeout", NetworkError = "network", TLSError = "tls",
  InvalidResponse = "response", InvalidRequest = "validation",
  Interrupted = "interrupted", -- the caller stopped the run (streamctl.engine.runner's cancel)
  DeadlineExceeded = "interrupted", -- the run's deadline passed (streamctl.engine.runner's deadline)
  -- an answer every call after it would meet too stopped the sending (an operation's `halt`:
  -- Alibaba Cloud's block list full, streamctl.aliyun.places)
  BlockListFull = "interrupted",
  -- the calls before it could not reach the endpoint (streamctl.pipeline.batch: its sending stopped)
  Unreachable = "interrupted",
}

-- What to do about a transport failure, when its message says: a server's
-- certificate this client cannot verify names the option that fixes it
-- (libcurl: "unable to get local issuer certificate", "self-signed
-- certificate in certificate chain"; nginx: "certificate verify failed").
local function transport_hint(code, message)
  if code ~= "TLSError" or type(message) ~= "string" then return nil end
  if find(message, "subject name", 1, true) or find(message, "does not match", 1, true) then
    return "the server's certificate does not name the endpoint's host: check option 'endpoint'"
  end
  local function says(word) return find(message, word, 1, true) end
  if says("certificate") and (says("issuer") or says("self-signed") or says("self signed") or says("verif")) then
    return "the server's certificate is not signed by a CA this client trusts: name the CA that signed it with "
      .. "option 'ca_file' (the default is the system's CAs)"
  end
  return nil
end

--- Wraps a transport failure `{code, message, sent}` for `action`; `hint`
-- says what to do about it where the message tells (a certificate that
-- cannot be verified: option 'ca_file').
-- A failure before the request reached the wire is always retryable; after it,
-- only when the operation may safely be repeated (`idempotent`). A request
-- that was sent and got no answer, or one that could not be read (a body over
-- the cap, oversized headers), may have taken effect: `outcome_unknown`.
function M.transport(provider, action, terr, idempotent)
  local code = type(terr) == "table" and terr.code or "NetworkError"
  local kind = TRANSPORT_KIND[code] or "network"
  local sent = type(terr) == "table" and terr.sent
  local retryable = false
  if kind == "network" or kind == "timeout" then
    retryable = (sent == false) or (idempotent and true or false)
  end
  local message = type(terr) == "table" and terr.message or tostring(terr)
  return M.new {
    provider = provider, action = action, code = code, kind = kind, message = message,
    hint = transport_hint(code, message), sent = sent, retryable = retryable,
    outcome_unknown = (sent ~= false and (kind == "network" or kind == "timeout" or kind == "response")) or nil,
  }
end

return M
