--- The libcurl transport for scripts: concurrent transfers on libcurl's multi
-- interface, one connection cache per client. It blocks while it waits, so
-- it is not for nginx request handlers.
--
-- `new(opts)` returns a transport table (see streamctl.pipeline.client):
-- `start(key, request)`, `poll(timeout_seconds)`, `sleep(seconds)`, `close()`.
-- The C module (streamctl.curl) is loaded on first use, so reading
-- `OPTIONS`, `DEFAULTS` or `header_fields` (which streamctl.transport.ngx
-- does) never loads libcurl; they need streamctl.core only (streamctl.base.validate).
--
-- Every wait ends early when a signal handler runs (a Ctrl-C or SIGTERM that
-- streamctl.signal caught): `sleep` returns what it did not sleep and `poll`
-- returns what has completed, maybe nothing. The caller (the engine) then
-- asks its `cancel` and waits again if nothing asked it to stop.
-- @module streamctl.transport.curl

local version = require "streamctl.version"
local validate = require "streamctl.base.validate"
local url = require "streamctl.base.url"

local floor, find, lower, sub, gsub = math.floor, string.find, string.lower, string.sub, string.gsub
local io_open, ipairs, pairs, type, tostring, sort = io.open, ipairs, pairs, type, tostring, table.sort

local M = {}

local function c()
  return require "streamctl.curl"
end

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

local function check_ca_file(v)
  if type(v) ~= "string" or v == "" then return nil, "must be a non-empty string (a path)" end
  if find(v, "%z") then return nil, "must not contain NUL" end
  local f, why = io_open(v, "rb")
  if not f then return nil, "cannot be read: " .. tostring(why) end
  f:close()
  return v
end

local function check_user_agent(v)
  if type(v) ~= "string" or v == "" then return nil, "must be a non-empty string" end
  if find(v, "%c") then return nil, "must not contain control characters" end
  return v
end

--- The options this transport takes, which a client passes through (a
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

--- The defaults of both transports (streamctl.transport.ngx reads them
-- too), written once: `new` passes every option to the C module, whose own
-- fallbacks serve only its direct callers (bench, examples, spec helpers).
M.DEFAULTS = {
  timeout_ms = 10000,
  connect_timeout_ms = 5000,
  max_connections = 8,
  max_body = 1048576,
  user_agent = version.user_agent, -- "streamctl/<version>"
}

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
    if type(name) ~= "string" then return nil, "header names must be strings (got " .. type(name) .. ")" end
    local v = header_text(value)
    if not v then return nil, "header '" .. shown(name) .. "' must have a string or number value" end
    if name == "" then return nil, "header name must not be empty" end
    if not find(name, M.TOKEN) then
      return nil, "header '" .. shown(name) .. "' has CR, LF, NUL or another invalid character in its name"
    end
    if find(v, "[%z\1-\8\10-\31\127]") then
      return nil, "header '" .. name .. "' value contains CR, LF, NUL or another control character"
    end
    local l = lower(name)
    if l == "content-length" or l == "transfer-encoding" then
      return nil, "header '" .. name .. "' is set by the transport"
    end
    if seen[l] then return nil, "header '" .. name .. "' given twice (names are case-insensitive)" end
    seen[l] = true
    fields[#fields + 1] = { l, name, v }
  end
  sort(fields, function(a, b) return a[1] < b[1] end)
  return fields, seen
end

--- A blocking sleep, for scripts.
-- @return the seconds not slept: 0, or more when a signal handler ended it
function M.sleep(seconds)
  return c().sleep(seconds)
end

-- The proxies a transport may go through (its option's, or with "env" the
-- environment's), for its messages: a completion's message that quotes one
-- shows it as streamctl.base.redact.url does (user information and query hidden).
local PROXY_VARIABLES = { "https_proxy", "HTTPS_PROXY", "http_proxy", "all_proxy", "ALL_PROXY" }
local function proxies(proxy)
  if proxy == nil then return nil end
  if proxy ~= "env" then return { proxy } end
  local out = {}
  for _, name in ipairs(PROXY_VARIABLES) do
    local v = os.getenv(name)
    if v and v ~= "" then out[#out + 1] = v end
  end
  return #out > 0 and out or nil
end

-- `done`'s failures with every proxy in their messages redacted.
local function redact_proxies(done, urls)
  local redact = require "streamctl.base.redact"
  for _, d in ipairs(done) do
    local e = d.err
    if type(e) == "table" and type(e.message) == "string" then
      for _, p in ipairs(urls) do e.message = redact.url_in(e.message, p) end
    end
  end
  return done
end

--- Makes a transport.
-- @param opts a table holding the options in `OPTIONS` (all optional; other
--   keys, a client's own options, are not looked at); those not given are
--   `DEFAULTS`'
-- @return the transport, or nil and an InvalidParameter error naming the option
function M.new(opts)
  if opts ~= nil and type(opts) ~= "table" then error("bad argument #1 to 'new' (opts must be a table or nil)", 2) end
  local given = {}
  for _, o in ipairs(M.OPTIONS) do given[o.name] = opts and opts[o.name] end
  local checked, err = validate.construct(M.OPTIONS, given, "streamctl.transport.curl.new", "new")
  if not checked then return nil, err end
  local copts = {}
  for _, o in ipairs(M.OPTIONS) do
    local v = checked[o.name]
    if v == nil then v = M.DEFAULTS[o.name] end
    copts[o.name] = v
  end
  local curl = c()
  local m = curl.multi(copts)
  local t = { sleep = curl.sleep }
  local via = proxies(copts.proxy)

  function t.start(key, request)
    -- The header rule is checked here, as the cosocket transport checks it;
    -- curl.c checks again on its own (see there why).
    local headers = type(request) == "table" and request.headers -- (anything else: curl.c raises)
    if type(headers) == "table" then
      local ok, why = M.header_fields(headers)
      if not ok then return nil, { code = "InvalidRequest", message = why, sent = false } end
    end
    return m:add(key, request)
  end

  --- Completions, waiting up to `timeout` seconds for at least one (less
  -- when a signal handler ran: then maybe none).
  function t.poll(timeout)
    if m:pending() == 0 then
      if timeout > 0 then curl.sleep(timeout) end
      return {}
    end
    local done = m:poll(floor(timeout * 1000 + 0.5))
    if via then return redact_proxies(done, via) end
    return done
  end

  function t.close()
    m:close()
  end

  return t
end

return M
