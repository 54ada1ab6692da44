-- One HTTP/1.1 request from inside nginx (a cosocket), for the callbacks the
-- emulator sends (callbacks.lua). It answers the status of the reply and
-- nothing else: a callback's sender reads no body.
--
--   parse_url(url) -> { scheme, host, port, target, host_header } | nil, err
--   request(req, timeout_ms) -> status | nil, err
--     req: { method, url (parsed), headers = { {name, value}, ... }, body }
--
-- The whole exchange (connect, TLS handshake, send, the status line and the
-- headers) shares one deadline of timeout_ms: "no reply within 5 s". The
-- connection is closed after each request (Connection: close), so at most
-- one connection per attempt is open. Only the host of the configured URL is
-- contacted; it must be an IP address or "localhost" (taken as 127.0.0.1):
-- the emulator's nginx has no resolver. https:// targets get a TLS handshake
-- without certificate verification (nginx.conf names no trusted CA); tests
-- use http:// receivers.

local clock = require "streamctl.emulator.clock"

local ngx = ngx
local tcp = ngx.socket.tcp

local type, tostring, tonumber, ipairs = type, tostring, tonumber, ipairs
local concat, floor = table.concat, math.floor
local match, lower, find = string.match, string.lower, string.find

local M = {}

-- At most this many header lines are read from a reply.
local MAX_HEADER_LINES = 100

-- A callback URL: http(s)://host[:port][/path][?query], the host an IPv4
-- address, a bracketed IPv6 address or localhost. Returns the parts, or nil
-- and a message.
function M.parse_url(url)
  if type(url) ~= "string" then
    return nil, "not a string"
  end
  -- (it becomes a request line: no whitespace or control character, and no
  -- fragment, after which the event's fields would be lost)
  if find(url, "[%s%c#]") then
    return nil, "whitespace, a control character or # in the URL"
  end
  local scheme, authority, rest = match(url, "^(%a[%w+.-]*)://([^/?#]*)(.*)$")
  if not scheme then
    return nil, "not an absolute http(s) URL"
  end
  scheme = lower(scheme)
  if scheme ~= "http" and scheme ~= "https" then
    return nil, "scheme " .. scheme .. " is not http or https"
  end
  if find(authority, "@", 1, true) then
    return nil, "user information in the URL is not supported"
  end
  local host, port = match(authority, "^%[([%x:.]+)%]:?(%d*)$")
  if not host then
    host, port = match(authority, "^([^:]+):?(%d*)$")
  end
  if not host or host == "" then
    return nil, "no host"
  end
  port = port ~= "" and tonumber(port) or (scheme == "https" and 443 or 80)
  if port < 1 or port > 65535 then
    return nil, "bad port"
  end
  local connect_host = host
  if lower(host) == "localhost" then
    connect_host = "127.0.0.1"
  elseif not (match(host, "^%d+%.%d+%.%d+%.%d+$") or find(host, ":", 1, true)) then
    return nil, "host " .. host .. " is not an IP address or localhost (the emulator resolves no names)"
  end
  rest = match(rest, "^[^#]*")
  if rest == "" or find(rest, "^%?") then
    rest = "/" .. rest
  end
  return {
    scheme = scheme, host = connect_host, port = port, target = rest,
    host_header = authority,
  }
end

-- Sends req and reads the reply's status line and headers. Returns the
-- status, or nil and a message ("timeout", "connection refused", ...).
function M.request(req, timeout_ms)
  local u = req.url
  local deadline = clock.real_now() + timeout_ms / 1000
  local sock = tcp()
  local function remaining()
    local left = floor((deadline - clock.real_now()) * 1000)
    return left > 0 and left or 1
  end
  local function fail(what, err)
    sock:close()
    return nil, what .. ": " .. tostring(err)
  end
  sock:settimeout(remaining())
  local ok, err = sock:connect(u.host, u.port)
  if not ok then
    return nil, "connect: " .. tostring(err)
  end
  if u.scheme == "https" then
    sock:settimeout(remaining())
    ok, err = sock:sslhandshake(nil, u.host_header, false)
    if not ok then
      return fail("tls", err)
    end
  end
  local lines = { req.method .. " " .. u.target .. " HTTP/1.1", "Host: " .. u.host_header,
    "User-Agent: streamctl-emulator", "Connection: close" }
  for _, h in ipairs(req.headers or {}) do
    lines[#lines + 1] = h[1] .. ": " .. h[2]
  end
  local body = req.body or ""
  if req.method ~= "GET" or body ~= "" then
    lines[#lines + 1] = "Content-Length: " .. #body
  end
  sock:settimeout(remaining())
  ok, err = sock:send(concat(lines, "\r\n") .. "\r\n\r\n" .. body)
  if not ok then
    return fail("send", err)
  end
  sock:settimeout(remaining())
  local line
  line, err = sock:receive("*l")
  if not line then
    return fail("receive", err)
  end
  local status = tonumber(match(line, "^HTTP/%d%.%d (%d%d%d)"))
  if not status then
    return fail("receive", "not an HTTP status line")
  end
  for _ = 1, MAX_HEADER_LINES do
    sock:settimeout(remaining())
    line = sock:receive("*l")
    if not line or line == "" then
      break
    end
  end
  sock:close()
  return status
end

return M
