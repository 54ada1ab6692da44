--- What both transports share, written once: the options a client passes
-- through to its transport (a streamctl.base.validate schema), their
-- defaults, and the one header rule (RFC 9110). It needs streamctl.core only
-- (through streamctl.base.validate), never libcurl or nginx, so the client's
-- option checks, streamctl.transport.ngx and streamctl.transport.http1 read
-- it without loading either transport.
-- @module streamctl.transport.common

local core = require "streamctl.core"
local version = require "streamctl.version"
local validate = require "streamctl.base.validate"
local url = require "streamctl.base.url"

local floor, find, lower, sub, gsub = math.floor, string.find, string.lower, string.sub, string.gsub
local pairs, type, tostring, sort = pairs, type, tostring, table.sort

local M = {}

local PROXY_SCHEMES = { http = true, https = true, socks4 = true, socks4a = true, socks5 = true, socks5h = true }

local function check_proxy(v)
  if type(v) ~= "string" or v == "" then return nil, "must be a non-empty string" end
  if v == "env" then return v end -- (the environment's https_proxy, no_proxy: libcurl reads them)
  if find(v, "[%c%s]") then return nil, "must not contain whitespace or control characters" end
  local scheme, authority = url.split(v)
  if not scheme or authority == "" or not PROXY_SCHEMES[scheme] then
    return nil, "must look like http://host:port (schemes: http, https, socks4, socks4a, socks5, socks5h), or "
      .. "be \"env\" (the environment's https_proxy and no_proxy)"
  end
  return v
end

-- How much of a CA file is read to find a certificate in it (a system
-- bundle is about 200 KiB).
local MAX_CA_BYTES = 16 * 1024 * 1024

-- The rule of a path: a non-empty string without NUL.
local function check_path(v)
  if type(v) ~= "string" or v == "" then return nil, "must be a non-empty string (a path)" end
  if find(v, "%z") then return nil, "must not contain NUL" end
  return v
end

local function check_ca_file(v)
  local _, pwhy = check_path(v)
  if pwhy then return nil, pwhy end
  -- (opened without blocking: a FIFO, a device or a directory is refused,
  -- never waited on nor read; io.open of a FIFO waits for a writer)
  local text, why = core.read_file(v, MAX_CA_BYTES)
  if not text then return nil, "cannot be read: " .. tostring(why) end
  -- A CA bundle in PEM (what libcurl and nginx read): a key, a DER file or
  -- an empty one would fail every request later, as a TLS error.
  if text == "" then return nil, "is empty" end
  if not find(text, "-----BEGIN CERTIFICATE-----", 1, true)
      and not find(text, "-----BEGIN TRUSTED CERTIFICATE-----", 1, true) then
    return nil, "holds no PEM certificate (-----BEGIN CERTIFICATE-----): name the CA's certificate, "
      .. "not its key or another file"
  end
  return v
end

local function check_user_agent(v)
  if type(v) ~= "string" or v == "" then return nil, "must be a non-empty string" end
  if find(v, "%c") then return nil, "must not contain control characters" end
  return v
end

--- The rule of a path (a non-empty string without NUL): the value, or nil
-- and the rule it breaks (the Redis store's TLS files too).
M.check_path = check_path

--- The rule of a CA file (a readable PEM file holding a certificate), as
-- `check_path` answers (the Redis store's tls_ca_file too).
M.check_ca_file = check_ca_file

--- The options both transports take, which a client passes through (a
-- streamctl.base.validate schema). Timeouts are per attempt.
M.OPTIONS = {
  { name = "timeout_ms", type = "integer", min = 1, max = 2147483647 },
  { name = "connect_timeout_ms", type = "integer", min = 1, max = 2147483647 },
  { name = "ca_file", type = "custom", check = check_ca_file },
  { name = "proxy", type = "custom", check = check_proxy },
  { name = "max_connections", type = "integer", min = 1, max = 1024 },
  { name = "max_body", type = "integer", min = 1, max = 1073741824 },
  { name = "user_agent", type = "custom", check = check_user_agent },
}

--- The defaults of both transports, written once: the libcurl transport
-- passes every option to the C module, whose own fallbacks serve only its
-- direct callers (bench, examples, spec helpers).
M.DEFAULTS = {
  timeout_ms = 10000,
  connect_timeout_ms = 5000,
  max_connections = 8,
  max_body = 1048576,
  user_agent = version.user_agent, -- "streamctl/<version>"
}

-- An attempt goes on the wire once -------------------------------------------

--- Whether a transport may send a request again, on a fresh connection,
-- after the connection it chose failed: only when no byte of it was handed
-- to that connection (`sent` false: a pooled connection found closed before
-- the request went). A request that left may have been read and applied by
-- the server, even when the connection then closed without a byte of an
-- answer (a reused connection that goes silent looks the same whether the
-- server dropped it idle or after applying); sent again, it would arrive a
-- second time on the attempt's one slot of the budget, and a create would
-- skip the look-up before its resend (issue 66: 21 ForbidLiveStream in a
-- second where the cap is 20). It is a failure with `sent = true` instead,
-- whose outcome is unknown, and the engine decides as for any other. The
-- cosocket transport asks this; the libcurl one keeps the same rule in
-- curl_request.c (`on_prereq`); the simulation's network asks it too.
-- @param sent whether any byte of the request was handed to the connection
-- @return true when the request may go again on another connection
function M.may_send_again(sent)
  return sent == false
end

-- Request headers -------------------------------------------------------------

-- RFC 9110 token characters (a header name, a method).
M.TOKEN = "^[%w!#$%%&'*+%-%.%^_`|~]+$"

-- A header name fit for a message: its first 64 bytes, control characters,
-- quotes and non-ASCII bytes shown as "?", "..." when cut (as curl.c shows it).
local function shown(name)
  local s = gsub(sub(name, 1, 64), "[%c'\128-\255]", "?")
  return #name > 64 and s .. "..." or s
end

-- A header value as text: strings as they are, integers in decimal.
local function header_text(v)
  if type(v) == "string" then return v end
  if type(v) == "number" then
    if v == floor(v) and v > -2 ^ 53 and v < 2 ^ 53 then return validate.decimal(v) end
    return tostring(v)
  end
  return nil
end

--- The one header rule of both transports (RFC 9110): a name is a token; a
-- value is text without control characters (TAB aside), so no CR, LF or NUL
-- can split a header; Content-Length and Transfer-Encoding belong to the
-- transport (it frames the body); a name is given once, whatever its case.
-- Numbers are sent in decimal.
-- @param headers the request's headers (name -> string or number), or nil
-- @return the headers as `{ lower-case name, name, value text }`, sorted by
--   lower-case name, and the set of lower-case names; or nil and why (a
--   message naming the header, never its value)
function M.header_fields(headers)
  local fields, seen = {}, {}
  for name, value in pairs(headers or fields) do
    local v, why, l = M.header_field(name, value, seen)
    if not v then return nil, why end
    fields[#fields + 1] = { l, name, v }
  end
  sort(fields, function(a, b) return a[1] < b[1] end)
  return fields, seen
end

-- The header names found to be tokens (requests repeat a few dozen), each to its lower-case form: at
-- most MAX_NAMES_OK kept.
local NAMES_OK, names_ok, MAX_NAMES_OK = {}, 0, 256
local text_flaws = core.text_flaws

--- One header of `header_fields`' rule, `seen` the lower-case names so far
-- (this one added): its value as text and its lower-case name, or nil and why.
function M.header_field(name, value, seen)
  if type(name) ~= "string" then return nil, "header names must be strings (got " .. type(name) .. ")" end
  local v = header_text(value)
  if not v then return nil, "header '" .. shown(name) .. "' must have a string or number value" end
  local l = NAMES_OK[name]
  if not l then
    if name == "" then return nil, "header name must not be empty" end
    if not find(name, M.TOKEN) then
      return nil, "header '" .. shown(name) .. "' has CR, LF, NUL or another invalid character in its name"
    end
    l = lower(name)
    if names_ok < MAX_NAMES_OK then NAMES_OK[name], names_ok = l, names_ok + 1 end
  end
  -- (one pass in C, `text_flaws`: a value without any control character, the usual case, is done;
  -- one with some is read by the rule itself, which lets TAB through)
  if text_flaws(v) % 4 ~= 0 and find(v, "[%z\1-\8\10-\31\127]") then
    return nil, "header '" .. name .. "' value contains CR, LF, NUL or another control character"
  end
  if l == "content-length" or l == "transfer-encoding" then
    return nil, "header '" .. name .. "' is set by the transport"
  end
  if seen[l] then return nil, "header '" .. name .. "' given twice (names are case-insensitive)" end
  seen[l] = true
  return v, nil, l
end

--- A request's own `timeout_ms` (nil: the transport's, `max`): the
-- milliseconds it may take, at most `max`; or nil and why. (libcurl's
-- transport checks the same rule in C, csrc/curl_request.c.)
function M.request_timeout(ms, max)
  if ms == nil then return max end
  if type(ms) ~= "number" or ms < 1 or ms > 2147483647 or ms ~= floor(ms) then
    return nil, "the request timeout_ms must be a whole number of milliseconds from 1"
  end
  return ms < max and ms or max
end

--- `header_fields`' rule alone, for a transport that needs no list of them
-- (libcurl's: no table per header, no sort, on every request): true, or
-- nil and why.
function M.check_headers(headers)
  local seen = {}
  for name, value in pairs(headers or seen) do
    local v, why = M.header_field(name, value, seen)
    if not v then return nil, why end
  end
  return true
end

return M
