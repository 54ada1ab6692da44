--- The OpenResty transport: HTTP/1.1 over nginx cosockets (`ngx.socket.tcp`),
-- so a request never blocks an nginx worker.
--
-- `new(opts)` returns a transport table (see streamctl.pipeline.client):
--
--   start(key, request) -> true | nil, failure   spawns one `ngx.thread` per request
--   poll(timeout_seconds) -> { {key=, res=, err=}, ... }
--                          waits (on an `ngx.semaphore`) up to the timeout for at
--                          least one completion; with nothing in flight it sleeps
--   sleep(seconds)         `ngx.sleep`
--   close()                kills the light threads it can, forgets their answers;
--                          later starts fail (idle pooled connections stay in
--                          nginx's pool until its keep-alive timeout)
--
-- Usage, inside a request handler or an `ngx.timer.at` callback (the client
-- then sleeps with the transport's `sleep`):
--
--   local client = streamctl.aliyun.new {
--     transport = require("streamctl.transport.ngx").new { timeout_ms = 5000 },
--     rate_limit_store = ..., -- ngx.shared, to pace across requests and workers
--     ...
--   }
--
-- A request is `{ method, url, headers, body }`; a response `{ status,
-- headers (lower-case names, repeated ones joined with ", "), body }`; a
-- failure `{ code, message, sent }`, with the libcurl transport's codes:
--
--   Timeout          the attempt's time (timeout_ms, from the start of the
--                    attempt; connect_timeout_ms for the TCP connect) ran out
--   TLSError         handshake or certificate failure (never a fall-back to plain)
--   InvalidResponse  malformed status line, header line or chunk, a body over
--                    max_body, a header section over 64 KiB
--   InvalidRequest   refused before anything is sent: a scheme other than http
--                    or https, a malformed URL or method, a header against the
--                    transports' one rule (streamctl.transport.curl.header_fields:
--                    a name not a token, a control character but TAB in a value,
--                    a caller's Content-Length or Transfer-Encoding, a name given
--                    twice), or a phase without cosockets (see below)
--   NetworkError     everything else (refused, reset, closed early, no resolver)
--
-- `sent` is false while no byte of the request was handed to a connection,
-- true from then on (a failure after it may have reached the server).
--
-- On the wire: `METHOD target HTTP/1.1`, the request-target being the URL's
-- path and query exactly as given (no normalisation; the fragment is
-- dropped; "/" when the URL has no path); `Host` from the URL unless the
-- caller gives one; `User-Agent` (the `user_agent` option) unless the caller
-- gives one; the caller's headers, sorted by lower-case name; then
-- `Content-Length` when there is a body, or 0 for a POST, PUT or PATCH
-- without one. Nothing else: no Accept, no Connection, no Expect. Redirects
-- are not followed (a 302 is the response). 1xx answers are skipped.
--
-- Bodies: Content-Length, chunked (trailers read and dropped) or, without
-- either, read until the server closes. A connection goes back to nginx's
-- keep-alive pool (`setkeepalive`, idle timeout `lua_socket_keepalive_timeout`)
-- only when its response was read completely, nothing more arrived, and the
-- server keeps it open (HTTP/1.1 without `Connection: close`, or HTTP/1.0 with
-- `Connection: keep-alive`). Pools are named by scheme, host, port and TLS
-- settings, so a plain and a TLS connection never share one. A request whose
-- reused connection turns out closed before any byte of an answer (the
-- server dropped an idle connection) is sent again on another connection,
-- as libcurl does.
--
-- Options (those of streamctl.transport.curl, checked here with
-- streamctl.base.validate: a bad one makes `new` return nil and an error object;
-- defaults: streamctl.transport.curl.DEFAULTS):
--
--   timeout_ms          10000    per attempt: connect, TLS, send and read together
--   connect_timeout_ms  5000     the TCP connect (bounded by timeout_ms too)
--   max_connections     8        the keep-alive pool size of each pool (nginx makes a
--                                pool when it is first used, so the first transport to
--                                use a pool sets its size for the worker)
--   max_body            1048576  the largest response body accepted
--   user_agent          "streamctl/<version>"
--   ca_file             checked for readability only: cosocket TLS trusts what
--                       nginx's `lua_ssl_trusted_certificate` names (there is no
--                       per-socket CA in lua-nginx-module), so ca_file must name
--                       the same CA bundle; it also separates the pools
--   proxy               refused: this transport connects directly
--
-- nginx configuration it relies on: `lua_ssl_trusted_certificate` (e.g.
-- /etc/ssl/certs/ca-certificates.crt) and `lua_ssl_verify_depth` deep enough
-- for the chain (nginx's default, 1, is too shallow for most public chains);
-- a `resolver` for host names (an IP literal needs none). TLS sends the
-- URL's host as SNI and verifies the certificate and the host name
-- (`sslhandshake(false, host, true)`).
--
-- Cosockets exist only in the phases streamctl.base.nginx.YIELDING names (the
-- rewrite, access and content phases, `ngx.timer.at` callbacks, ssl_*...).
-- Elsewhere (init, init_worker, set, header_filter, body_filter, log...)
-- `new()` works but `start` fails with InvalidRequest;
-- from init_worker, do the work in `ngx.timer.at(0, fn)`. A transport's
-- light threads belong to the request (or timer) that started them, and end
-- with it. A client that is not handed a transport (streamctl.transport.auto)
-- makes one per request or timer for itself, so one client per worker is
-- right; a transport passed as `transport =` must be made in the request or
-- timer that sends, with a client made there too.
-- Outside nginx the module loads and `new()` works (for checking options),
-- but `start` fails. It needs streamctl.core (options are checked with
-- streamctl.base.validate), never libcurl.
-- @module streamctl.transport.ngx

-- luacheck: globals ngx
local ngx = ngx -- nil outside nginx: the module loads anywhere, and start says why it cannot send

local nginx = require "streamctl.base.nginx"
local validate = require "streamctl.base.validate"
local curl_transport = require "streamctl.transport.curl" -- OPTIONS, DEFAULTS, header_fields (no libcurl)
local url_grammar = require "streamctl.base.url"

local type, pairs, ipairs, tostring, tonumber, error, pcall, select =
  type, pairs, ipairs, tostring, tonumber, error, pcall, select
local floor, min, huge = math.floor, math.min, math.huge
local format, find, match, lower, sub, byte, gmatch =
  string.format, string.find, string.match, string.lower, string.sub, string.byte, string.gmatch
local concat = table.concat

local M = {}

--- The largest response header section (status line, header lines, 1xx
-- answers before it and trailers after a chunked body), in bytes.
M.MAX_HEADER_BYTES = 65536

-- The defaults: the libcurl transport's, one table for both.
local DEFAULTS = curl_transport.DEFAULTS

local READ_SIZE = 65536   -- the most one receive asks for
local MIN_WAIT = 0.001    -- the shortest wait nginx's timers keep (1 ms)
local MAX_CHUNK_LINE = 4096 -- a chunk-size line, extensions included

-- RFC 9110 token characters (a method; header names: streamctl.transport.curl.header_fields).
local TOKEN = curl_transport.TOKEN

local BODY_METHODS = { POST = true, PUT = true, PATCH = true }

-- Options ---------------------------------------------------------------------

local function refuse_proxy()
  return nil, "option 'proxy' is not supported by streamctl.transport.ngx: cosockets connect directly "
    .. "(use the libcurl transport where a proxy is needed)", true
end

-- The libcurl transport's options (a streamctl.base.validate schema), `proxy` refused.
local OPTIONS = {}
for i, o in ipairs(curl_transport.OPTIONS) do
  OPTIONS[i] = o.name == "proxy" and { name = "proxy", type = "custom", check = refuse_proxy } or o
end

-- Requests --------------------------------------------------------------------

local function failure(code, message, sent)
  return { code = code, message = message, sent = sent }
end

local function invalid(message)
  return nil, failure("InvalidRequest", message, false)
end

-- The parts of an http(s) URL an attempt needs: scheme, authority (as
-- written, for Host), host (to connect to), server_name (SNI), port and the
-- request-target; or nil and why it is refused.
local function parse_url(url)
  if type(url) ~= "string" then return nil, "the request has no URL" end
  if find(url, "[%z\1-\32\127]") then return nil, "the URL must not contain whitespace or control characters" end
  local scheme, authority, rest = url_grammar.split(url)
  if not scheme then return nil, "the URL must look like http://host[:port]/path" end
  if scheme ~= "http" and scheme ~= "https" then
    return nil, "only http and https URLs are supported (got '" .. scheme .. "')"
  end
  if url_grammar.userinfo(authority) then return nil, "the URL must not carry user information" end
  -- (an empty port, "h:", is the scheme's default: RFC 3986 3.2.3, as libcurl reads it)
  local server_name, port, bracketed = url_grammar.host_port((authority:gsub(":$", "")))
  if port == "port" then return nil, "the URL's port must be in 1..65535" end
  if not server_name or not (bracketed or url_grammar.is_name(server_name)) then
    return nil, "the URL must name a valid host"
  end
  -- nginx connects to an IPv6 literal written in brackets; SNI takes it without
  local host = bracketed and "[" .. server_name .. "]" or server_name
  port = port or (scheme == "https" and 443 or 80)
  local target = match(rest, "^[^#]*") -- the fragment is not sent
  if target == "" then
    target = "/"
  elseif byte(target, 1) == 63 then -- "?"
    target = "/" .. target
  end
  return { scheme = scheme, authority = authority, host = host, server_name = server_name, port = port,
           target = target }
end

-- The request head: the request line, Host and User-Agent unless the caller
-- gave them, the caller's headers (`fields`, sorted), the body's length.
local function build_head(self, method, u, fields, seen, body)
  local head = { method, " ", u.target, " HTTP/1.1\r\n" }
  if not seen.host then head[#head + 1] = "Host: " .. u.authority .. "\r\n" end
  if not seen["user-agent"] and self.user_agent ~= "" then
    head[#head + 1] = "User-Agent: " .. self.user_agent .. "\r\n"
  end
  for _, f in ipairs(fields) do head[#head + 1] = f[2] .. ": " .. f[3] .. "\r\n" end
  if body ~= nil then
    head[#head + 1] = "Content-Length: " .. #body .. "\r\n"
  elseif BODY_METHODS[method] then
    head[#head + 1] = "Content-Length: 0\r\n"
  end
  head[#head + 1] = "\r\n"
  return concat(head)
end

-- Checks `request` and makes everything an attempt needs: the bytes of the
-- head, where to connect, the pool's name. nil, failure when it is refused.
local function prepare(self, request)
  if type(request) ~= "table" then return invalid("the request must be a table") end
  local method = request.method
  if method == nil then method = "GET" end
  if type(method) ~= "string" or not find(method, TOKEN) then
    return invalid("the request method must be a token such as GET or POST")
  end
  local u, why = parse_url(request.url)
  if not u then return invalid(why) end
  local headers = request.headers
  if headers ~= nil and type(headers) ~= "table" then return invalid("the request headers must be a table") end
  local fields, seen = curl_transport.header_fields(headers)
  if not fields then return invalid(seen) end
  local body = request.body
  if body ~= nil and type(body) ~= "string" then return invalid("the request body must be a string") end

  local tls = u.scheme == "https"
  return {
    head = build_head(self, method, u, fields, seen, body),
    body = body ~= "" and body or nil,
    head_only = method == "HEAD",
    tls = tls,
    host = u.host,
    server_name = u.server_name,
    port = u.port,
    origin = u.scheme .. "://" .. u.authority, -- for messages: never the path or query
    pool = format("streamctl:%s:%s:%d%s", u.scheme, lower(u.host), u.port,
      tls and (":verify:" .. (self.ca_file or "nginx")) or ""),
    sent = false,
  }
end

-- Reading ---------------------------------------------------------------------

-- Milliseconds left before `deadline` (seconds, ngx.now()), at least 0.
local function ms_left(deadline)
  if deadline == huge then return 2147483647 end -- (_read_response: no clock)
  local left = floor((deadline - ngx.now()) * 1000)
  return left > 0 and left or 0
end

-- A buffered reader over a cosocket with a deadline for everything it reads.
local function reader(sock, deadline)
  return { sock = sock, deadline = deadline, buf = "", total = 0 }
end

-- Receives more (up to `max` bytes): the data, or nil and the socket's error.
local function receive(r, max)
  local left = ms_left(r.deadline)
  if left <= 0 then return nil, "timeout" end
  r.sock:settimeout(left)
  local data, err = r.sock:receiveany(max or READ_SIZE)
  if not data then return nil, err end
  r.total = r.total + #data
  return data
end

-- One line, without its LF or CRLF, at most `limit` bytes with its end; the
-- line and its length with the end. nil, "too long" or the socket's error.
local function read_line(r, limit)
  while true do
    local i = find(r.buf, "\n", 1, true)
    if i then
      if i > limit then return nil, "too long" end
      local line = sub(r.buf, 1, i - 1)
      r.buf = sub(r.buf, i + 1)
      if byte(line, -1) == 13 then line = sub(line, 1, -2) end
      return line, i
    end
    if #r.buf >= limit then return nil, "too long" end
    local data, err = receive(r)
    if not data then return nil, err end
    r.buf = r.buf .. data
  end
end

-- Appends exactly `n` bytes to `parts`. true, or nil and the socket's error.
local function read_exact(r, n, parts)
  local have = #r.buf
  if have >= n then
    parts[#parts + 1] = sub(r.buf, 1, n)
    r.buf = sub(r.buf, n + 1)
    return true
  end
  if have > 0 then parts[#parts + 1] = r.buf end
  r.buf = ""
  n = n - have
  while n > 0 do
    local data, err = receive(r, min(n, READ_SIZE))
    if not data then return nil, err end
    parts[#parts + 1] = data
    n = n - #data
  end
  return true
end

-- Appends everything until the server closes to `parts`, at most `limit`
-- bytes. true, or nil and "too long" or the socket's error.
local function read_to_close(r, limit, parts)
  local size = #r.buf
  if size > limit then return nil, "too long" end
  if size > 0 then parts[#parts + 1] = r.buf end
  r.buf = ""
  while true do
    local data, err = receive(r)
    if not data then
      if err == "closed" then return true end
      return nil, err
    end
    size = size + #data
    if size > limit then return nil, "too long" end
    parts[#parts + 1] = data
  end
end

local function trim(s)
  return match(s, "^[ \t]*(.-)[ \t]*$")
end

-- Does the comma-separated list `value` hold `token` (case-insensitive)?
local function has_token(value, token)
  if not value then return false end
  for item in gmatch(lower(value), "[^,]+") do
    if trim(item) == token then return true end
  end
  return false
end

-- Header lines up to the empty line, within `budget` bytes: the fields
-- (lower-case names, repeats joined with ", ") and the budget left; or nil,
-- "malformed", the line's problem; or nil and read_line's error.
local function read_fields(r, budget)
  local fields, last = {}, nil
  while true do
    local line, n = read_line(r, budget)
    if not line then return nil, n end
    budget = budget - n
    if line == "" then return fields, budget end
    local c = byte(line, 1)
    if c == 32 or c == 9 then -- obs-fold: a continuation of the previous value
      if not last then return nil, "malformed", "a header section starts with a continuation line" end
      local more = trim(line)
      if find(more, "[%z\r]") then return nil, "malformed", "a header value contains CR or NUL" end
      fields[last] = fields[last] .. " " .. more
    else
      local name, value = match(line, "^([^:]*):(.*)$")
      if not name or not find(name, TOKEN) then
        return nil, "malformed", "a header line is not 'name: value'"
      end
      value = trim(value)
      if find(value, "[%z\r]") then return nil, "malformed", "a header value contains CR or NUL" end
      name = lower(name)
      local prev = fields[name]
      fields[name] = prev and (prev .. ", " .. value) or value
      last = name
    end
  end
end

-- The body length a Content-Length gives (repeats must agree), or nil.
local function content_length(value)
  local n
  for item in gmatch(value .. ",", "([^,]*),") do
    local digits = trim(item)
    if not find(digits, "^%d+$") or #digits > 15 then return nil end
    local v = tonumber(digits)
    if n and v ~= n then return nil end
    n = v
  end
  return n
end

-- One exchange ----------------------------------------------------------------

local function over_max_body(self, plan)
  return failure("InvalidResponse", format("the response body from %s is over max_body (%d bytes)",
    plan.origin, self.max_body), true)
end

-- The failure for a read error `err` while reading `what` of the answer.
local function read_failure(plan, err, what, detail)
  if err == "timeout" then
    return failure("Timeout", format("timed out reading the response %s from %s", what, plan.origin), true)
  end
  if err == "closed" then
    return failure("NetworkError", format("the connection to %s closed before the end of the response %s%s",
      plan.origin, what, detail or ""), true)
  end
  return failure("NetworkError", format("reading the response %s from %s failed: %s", what, plan.origin,
    tostring(err)), true)
end

local function malformed(plan, why)
  return failure("InvalidResponse", format("malformed response from %s: %s", plan.origin, why), true)
end

local HEADERS_TOO_LARGE = "the response header section is over 64 KiB"

-- Reads the head of the final answer (1xx ones skipped): status, minor
-- version, fields and the header budget left (trailers count against it);
-- or nil, failure.
local function read_head(plan, r)
  local budget = M.MAX_HEADER_BYTES
  local status, minor, fields
  repeat
    local line, n = read_line(r, budget)
    if not line then
      if n == "too long" then return nil, malformed(plan, HEADERS_TOO_LARGE) end
      return nil, read_failure(plan, n, "headers")
    end
    budget = budget - n
    local v, code, reason = match(line, "^HTTP/1%.(%d) (%d%d%d)(.*)$")
    if not v or (reason ~= "" and byte(reason, 1) ~= 32) or find(reason, "[%z\r]") or tonumber(code) < 100 then
      return nil, malformed(plan, "the status line is not 'HTTP/1.x NNN reason'")
    end
    status, minor = tonumber(code), tonumber(v)
    local left, why, detail = read_fields(r, budget)
    if not left then
      if why == "malformed" then return nil, malformed(plan, detail) end
      if why == "too long" then return nil, malformed(plan, HEADERS_TOO_LARGE) end
      return nil, read_failure(plan, why, "headers")
    end
    fields, budget = left, why
    if status == 101 then return nil, malformed(plan, "an unrequested 101 Switching Protocols") end
  until status >= 200
  return status, minor, fields, budget
end

-- Reads a chunked body into `parts`, then its trailers (dropped): true, or
-- nil, failure.
local function read_chunked(self, plan, r, parts, budget)
  local size = 0
  for _ = 1, 1e9 do -- bounded by max_body: every round but the last reads at least a byte
    local line, err = read_line(r, MAX_CHUNK_LINE)
    if not line then
      if err == "too long" then return nil, malformed(plan, "a chunk-size line is too long") end
      return nil, read_failure(plan, err, "body", " (inside a chunked body)")
    end
    local hex, ext = match(line, "^(%x+)[ \t]*(.*)$")
    if not hex or (ext ~= "" and byte(ext, 1) ~= 59) then -- ";"
      return nil, malformed(plan, "a chunk-size line is not hex digits")
    end
    hex = match(hex, "^0*(.*)$")
    if #hex > 8 then return nil, over_max_body(self, plan) end
    local n = hex == "" and 0 or tonumber(hex, 16)
    if n == 0 then break end
    size = size + n
    if size > self.max_body then return nil, over_max_body(self, plan) end
    local ok, rerr = read_exact(r, n, parts)
    if not ok then return nil, read_failure(plan, rerr, "body", " (inside a chunk)") end
    local crlf, cerr = read_line(r, 2)
    if not crlf then
      if cerr == "too long" then return nil, malformed(plan, "a chunk is longer than its size") end
      return nil, read_failure(plan, cerr, "body", " (after a chunk)")
    end
    if crlf ~= "" then return nil, malformed(plan, "a chunk is longer than its size") end
  end
  local ok, why, detail = read_fields(r, budget) -- trailers, dropped
  if not ok then
    if why == "malformed" then return nil, malformed(plan, "trailer: " .. detail) end
    if why == "too long" then return nil, malformed(plan, HEADERS_TOO_LARGE) end
    return nil, read_failure(plan, why, "trailers")
  end
  return true
end

-- Reads the body the head announces into `parts`: true and whether the
-- connection may still be kept as far as the body goes; or nil, failure.
local function read_body(self, plan, r, parts, status, fields, budget)
  local te, cl = fields["transfer-encoding"], fields["content-length"]
  if plan.head_only or status == 204 or status == 304 then -- no body, whatever the headers say
    return true, not (plan.head_only and te)
  elseif te then
    if lower(trim(te)) ~= "chunked" then
      return nil, malformed(plan, "an unsupported Transfer-Encoding (only chunked is read)")
    end
    local ok, err = read_chunked(self, plan, r, parts, budget)
    if not ok then return nil, err end
    return true, not cl -- both: chunked wins, and the connection is not trusted
  elseif cl then
    local n = content_length(cl)
    if not n then return nil, malformed(plan, "an invalid Content-Length") end
    if n > self.max_body then return nil, over_max_body(self, plan) end
    local ok, err = read_exact(r, n, parts)
    if not ok then
      local got = #concat(parts)
      return nil, read_failure(plan, err, "body", format(" (%d of %d bytes)", got, n))
    end
    return true, true
  end
  -- neither: the body ends when the server closes
  local ok, err = read_to_close(r, self.max_body, parts)
  if not ok then
    if err == "too long" then return nil, over_max_body(self, plan) end
    return nil, read_failure(plan, err, "body")
  end
  return true, false
end

-- Reads one response from `r`: res, keep (may the connection be reused); or
-- nil, failure.
local function read_response(self, plan, r)
  local status, minor, fields, budget = read_head(plan, r)
  if not status then return nil, minor end
  local keep
  if minor >= 1 then
    keep = not has_token(fields.connection, "close")
  else
    keep = has_token(fields.connection, "keep-alive")
  end
  local parts = {}
  local ok, body_keep = read_body(self, plan, r, parts, status, fields, budget)
  if not ok then return nil, body_keep end
  keep = keep and body_keep
  if r.buf ~= "" then keep = false end -- more than one answer: do not trust the connection
  return { status = status, headers = fields, body = concat(parts) }, keep
end

-- Errors a reused connection gives when the server had already dropped it.
local STALE = { closed = true, ["connection reset by peer"] = true, ["broken pipe"] = true }

-- One try over one connection: res; or nil, failure, and true when the
-- request should go again on another connection (a stale pooled one).
local function try_once(self, plan, deadline)
  local left = ms_left(deadline)
  if left <= 0 then return nil, failure("Timeout", "timed out before connecting to " .. plan.origin, plan.sent) end
  local sock = ngx.socket.tcp()
  sock:settimeouts(min(self.connect_timeout, left), left, left)
  local ok, err = sock:connect(plan.host, plan.port, { pool = plan.pool, pool_size = self.pool_size })
  if not ok then
    if err == "timeout" then
      return nil, failure("Timeout", "timed out connecting to " .. plan.origin, plan.sent)
    end
    return nil, failure("NetworkError", "connecting to " .. plan.origin .. " failed: " .. tostring(err), plan.sent)
  end
  local reused = (sock:getreusedtimes() or 0) > 0
  if plan.tls and not reused then
    left = ms_left(deadline)
    if left <= 0 then
      sock:close()
      return nil, failure("Timeout", "timed out before the TLS handshake with " .. plan.origin, plan.sent)
    end
    sock:settimeout(left)
    local done, herr = sock:sslhandshake(false, plan.server_name, true)
    -- lua-nginx-module 0.10.23 can report success for a handshake whose
    -- certificate check failed when the failure completes asynchronously
    -- (it logs "lua ssl certificate verify error" and closes the
    -- connection): a connection gone right after the handshake is that.
    if done and select(2, sock:getreusedtimes()) == "closed" then
      done, herr = nil, "the connection was closed during the handshake (certificate verification failed?)"
    end
    if not done then
      sock:close()
      if herr == "timeout" then
        return nil, failure("Timeout", "timed out in the TLS handshake with " .. plan.origin, plan.sent)
      end
      return nil, failure("TLSError", "TLS handshake with " .. plan.origin .. " failed: " .. tostring(herr), plan.sent)
    end
  end

  left = ms_left(deadline)
  if left <= 0 then
    sock:close()
    return nil, failure("Timeout", "timed out before sending to " .. plan.origin, plan.sent)
  end
  sock:settimeout(left)
  plan.sent = true
  local sent, serr = sock:send(plan.body and { plan.head, plan.body } or plan.head)
  if not sent then
    sock:close()
    if reused and STALE[serr] then return nil, nil, true end
    if serr == "timeout" then return nil, failure("Timeout", "timed out sending to " .. plan.origin, true) end
    return nil, failure("NetworkError", "sending to " .. plan.origin .. " failed: " .. tostring(serr), true)
  end

  local r = reader(sock, deadline)
  local res, keep_or_err = read_response(self, plan, r)
  if not res then
    sock:close()
    -- nothing at all came back on a reused connection: the server had dropped it
    if reused and r.total == 0 and keep_or_err.code == "NetworkError" then return nil, nil, true end
    return nil, keep_or_err
  end
  local keep = keep_or_err
  if keep then
    sock:setkeepalive()
  else
    sock:close()
  end
  return res
end

-- The whole attempt: res, or nil and failure.
local function exchange(self, plan)
  ngx.update_time()
  local deadline = ngx.now() + self.timeout / 1000
  -- Each stale connection came from the pool, which holds at most pool_size.
  for _ = 1, self.pool_size + 1 do
    local res, err, again = try_once(self, plan, deadline)
    if not again then return res, err end
  end
  return nil, failure("NetworkError", "every pooled connection to " .. plan.origin .. " was closed", true)
end

-- The transport ---------------------------------------------------------------

-- true, or nil and why cosockets cannot be used here.
local function cosockets_here()
  if not ngx or not ngx.socket or not ngx.get_phase then
    return nil, "streamctl.transport.ngx needs nginx with lua-nginx-module (OpenResty): ngx.socket.tcp is missing"
  end
  local phase = ngx.get_phase()
  if not nginx.SENDING[phase] then return nil, nginx.refusal("send", phase) end
  return true
end

-- A transport's settings from its checked options `o`, the defaults for the others.
local function settings(o)
  local function get(name)
    local v = o[name]
    if v == nil then v = DEFAULTS[name] end
    return v
  end
  return {
    timeout = get("timeout_ms"),
    connect_timeout = get("connect_timeout_ms"),
    pool_size = get("max_connections"),
    max_body = get("max_body"),
    user_agent = get("user_agent"),
    ca_file = o.ca_file,
  }
end

-- The light thread of one request: the exchange, then its completion for
-- `poll`, waking every poller (each takes what it finds).
local function run(self, key, plan)
  local ok, res, err = pcall(exchange, self, plan)
  if not ok then
    res, err = nil, failure("NetworkError", "streamctl.transport.ngx: internal error: " .. tostring(res), plan.sent)
  end
  self.pending = self.pending - 1
  self.threads[key] = nil
  if self.closed then return end
  self.done[#self.done + 1] = { key = key, res = res, err = err }
  local count = self.sema:count()
  if count < 0 then self.sema:post(-count) end
end

local function start(self, key, request)
  if self.closed then return invalid("the transport is closed") end
  local plan, err = prepare(self, request)
  if not plan then return nil, err end
  local here, why = cosockets_here()
  if not here then return invalid(why) end
  if not self.sema then self.sema = require("ngx.semaphore").new(0) end
  self.pending = self.pending + 1
  local ok, th = pcall(ngx.thread.spawn, run, self, key, plan)
  if not ok then
    self.pending = self.pending - 1
    return invalid("streamctl.transport.ngx cannot start a light thread here: " .. tostring(th))
  end
  if coroutine.status(th) ~= "dead" then self.threads[key] = th end -- it ran until its first wait
  return true
end

local function sleep(seconds)
  if not ngx or not ngx.sleep then error("streamctl.transport.ngx: sleep needs nginx (ngx.sleep)", 2) end
  if seconds < MIN_WAIT then seconds = MIN_WAIT end
  return ngx.sleep(seconds)
end

-- Completions, waiting up to `timeout` seconds for at least one.
local function poll(self, timeout)
  if #self.done == 0 and timeout > 0 then
    -- nginx's timers count whole milliseconds: a shorter wait would not
    -- yield at all (a busy loop) and ngx.sleep(0) only warns.
    if timeout < MIN_WAIT then timeout = MIN_WAIT end
    if self.pending > 0 then
      self.sema:wait(timeout)
    else
      sleep(timeout)
    end
  end
  local out = self.done
  self.done = {}
  return out
end

local function close(self)
  if self.closed then return end
  self.closed = true
  for key, th in pairs(self.threads) do
    pcall(ngx.thread.kill, th) -- only the threads this light thread started can be killed
    self.threads[key] = nil
  end
  self.done = {}
end

--- Makes a transport.
-- @param opts the options of streamctl.transport.curl (all optional; see the
--   module's description)
-- @return the transport; or nil and an InvalidParameter error (streamctl.base.errors)
--   naming a bad or unknown option, or `proxy`. Options that are not a table raise.
function M.new(opts)
  local o, err = validate.construct(OPTIONS, opts, "streamctl.transport.ngx.new", "new")
  if not o then return nil, err end
  local self = settings(o)
  self.done = {}     -- completions not yet polled
  self.threads = {}  -- key -> light thread, while in flight
  self.pending = 0   -- requests in flight
  self.closed = false
  self.sema = nil    -- made on the first start (needs nginx)
  return {
    start = function(key, request) return start(self, key, request) end,
    poll = function(timeout) return poll(self, timeout) end,
    sleep = sleep,
    close = function() return close(self) end,
  }
end

--- For specs and the fuzzer (make fuzz): reads `bytes` as the answer to one
-- request, as `read_response` reads a socket, in pieces of `opts.chunk`
-- bytes (default 4096), the connection closing after the last; no clock.
-- `opts.max_body` as the option; `opts.method = "HEAD"` for an answer without a body.
-- @return res, keep (may the connection be reused); or nil, failure
function M._read_response(bytes, opts)
  opts = opts or {}
  local pos, chunk = 1, opts.chunk or 4096
  local sock = {
    settimeout = function() end,
    receiveany = function(_, max)
      if pos > #bytes then return nil, "closed" end
      local piece = sub(bytes, pos, pos + min(max, chunk) - 1)
      pos = pos + #piece
      return piece
    end,
  }
  local self = { max_body = opts.max_body or DEFAULTS.max_body }
  local plan = { origin = "http://127.0.0.1", head_only = opts.method == "HEAD" }
  return read_response(self, plan, reader(sock, huge))
end

-- For specs: the request head `prepare` makes (nil, failure when refused).
function M._prepare(request, opts)
  local o = assert(validate.construct(OPTIONS, opts, "streamctl.transport.ngx._prepare", "_prepare"))
  local plan, err = prepare(settings(o), request)
  if not plan then return nil, err end
  return plan.head, plan
end

return M
