--- The libcurl transport for scripts: concurrent transfers on libcurl's multi
-- interface, one connection cache per client. It blocks while it waits, so
-- it is not for nginx request handlers.
--
-- `new(opts)` returns a transport table (see streamctl.client):
-- `start(key, request)`, `poll(timeout_seconds)`, `sleep(seconds)`, `close()`.
-- The C module (streamctl.curl) is loaded on first use, so reading
-- `OPTIONS` costs nothing where libcurl is never used.
--
-- Every wait ends early when a signal handler runs (a Ctrl-C or SIGTERM that
-- streamctl.signal caught): `sleep` returns what it did not sleep and `poll`
-- returns what has completed, maybe nothing. The caller (the engine) then
-- asks its `cancel` and waits again if nothing asked it to stop.
-- @module streamctl.transport.curl

local version = require "streamctl.version"

local floor, find, lower, match = math.floor, string.find, string.lower, string.match
local io_open, ipairs, type, tostring = io.open, ipairs, type, tostring

local M = {}

local function c()
  return require "streamctl.curl"
end

local PROXY_SCHEMES = { http = true, https = true, socks4 = true, socks4a = true, socks5 = true, socks5h = true }

local function check_proxy(v)
  if type(v) ~= "string" or v == "" then return nil, "must be a non-empty string" end
  if find(v, "[%c%s]") then return nil, "must not contain whitespace or control characters" end
  local scheme = match(v, "^(%a[%w+.-]*)://[^/]")
  if not scheme or not PROXY_SCHEMES[lower(scheme)] then
    return nil, "must look like http://host:port (schemes: http, https, socks4, socks4a, socks5, socks5h)"
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
-- streamctl.validate schema). Timeouts are per attempt.
M.OPTIONS = {
  { name = "timeout_ms", type = "integer", min = 1, max = 2147483647 },
  { name = "connect_timeout_ms", type = "integer", min = 1, max = 2147483647 },
  { name = "ca_file", type = "custom", check = check_ca_file },
  { name = "proxy", type = "custom", check = check_proxy },
  { name = "max_connections", type = "integer", min = 1, max = 1024 },
  { name = "max_body", type = "integer", min = 1, max = 1073741824 },
  { name = "user_agent", type = "custom", check = check_user_agent },
}

--- A blocking sleep, for scripts.
-- @return the seconds not slept: 0, or more when a signal handler ended it
function M.sleep(seconds)
  return c().sleep(seconds)
end

--- Makes a transport.
-- @param opts the options in `OPTIONS` (all optional, already checked);
--   `user_agent` defaults to "streamctl/<version>"
function M.new(opts)
  local curl = c()
  local copts = {}
  for _, o in ipairs(M.OPTIONS) do copts[o.name] = opts[o.name] end
  copts.user_agent = copts.user_agent or version.user_agent
  local m = curl.multi(copts)
  local t = { sleep = curl.sleep }

  function t.start(key, request)
    return m:add(key, request)
  end

  --- Completions, waiting up to `timeout` seconds for at least one (less
  -- when a signal handler ran: then maybe none).
  function t.poll(timeout)
    if m:pending() == 0 then
      if timeout > 0 then curl.sleep(timeout) end
      return {}
    end
    return m:poll(floor(timeout * 1000 + 0.5))
  end

  function t.close()
    m:close()
  end

  return t
end

return M
