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
--   SlotMissed       (sent = false) a request's fresh connection took longer than its
--                    `send_within_ms` (its pacing slot's lateness allowed): pooled,
--                    the request not sent; the engine reserves it a new slot
--
-- `sent` is false while no byte of the request was handed to a connection,
-- true from then on (a failure after it may have reached the server).
--
-- On the wire: streamctl.transport.http1's request head and reading.
--
-- Bodies: Content-Length, chunked (trailers read and dropped) or, without
-- either, read until the server closes. A connection goes back to nginx's
-- keep-alive pool (`setkeepalive`, idle timeout `lua_socket_keepalive_timeout`)
-- only when its response was read completely, nothing more arrived, and the
-- server keeps it open (HTTP/1.1 without `Connection: close`, or HTTP/1.0 with
-- `Connection: keep-alive`). Pools are named by scheme, host, port and TLS
-- settings, so a plain and a TLS connection never share one.
--
-- An attempt goes on the wire once: a pooled connection its server closed
-- while idle is dropped before the request goes (see `recheck`), and a
-- request that left is never sent again here (common.may_send_again): a
-- reused connection that closes before any answer is a NetworkError,
-- `sent = true` (maybe applied), and the engine decides what comes next.
--
-- Options: streamctl.transport.curl's, its defaults and rules (checked here
-- with streamctl.base.validate: a bad one makes `new` return nil and an
-- error object), except: `max_connections` is each keep-alive pool's size
-- (the first transport to use a pool sets it for the worker); `ca_file` is
-- only checked for readability and separates the pools (cosocket TLS trusts
-- what `lua_ssl_trusted_certificate` names: give the same bundle); `proxy`
-- is refused (cosockets connect directly).
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
local common = require "streamctl.transport.common"
local url_grammar = require "streamctl.base.url"
local http1 = require "streamctl.transport.http1"

local type, pairs, ipairs, tostring, error, pcall, select = type, pairs, ipairs, tostring, error, pcall, select
local min = math.min
local format, find, match, lower, byte = string.format, string.find, string.match, string.lower, string.byte

local M = {}

--- The largest response header section (streamctl.transport.http1's).
M.MAX_HEADER_BYTES = http1.MAX_HEADER_BYTES

local failure, reader, read_response, ms_left = http1.failure, http1.reader, http1.read_response, http1.ms_left

-- The defaults: the libcurl transport's, one table for both.
local DEFAULTS = common.DEFAULTS

local MIN_WAIT = 0.001    -- the shortest wait nginx's timers keep (1 ms)

-- RFC 9110 token characters (a method; header names: streamctl.transport.curl.header_fields).
local TOKEN = common.TOKEN

-- Options ---------------------------------------------------------------------

local function refuse_proxy()
  return nil, "option 'proxy' is not supported by streamctl.transport.ngx: cosockets connect directly "
    .. "(use the libcurl transport where a proxy is needed)", true
end

-- The libcurl transport's options (a streamctl.base.validate schema), `proxy` refused.
local OPTIONS = {}
for i, o in ipairs(common.OPTIONS) do
  OPTIONS[i] = o.name == "proxy" and { name = "proxy", type = "custom", check = refuse_proxy } or o
end

-- Requests --------------------------------------------------------------------

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
  local fields, seen = common.header_fields(headers)
  if not fields then return invalid(seen) end
  local body = request.body
  if body ~= nil and type(body) ~= "string" then return invalid("the request body must be a string") end
  local timeout, twhy = common.request_timeout(request.timeout_ms, self.timeout)
  if not timeout then return invalid(twhy) end
  local within = request.send_within_ms
  if within ~= nil and not (type(within) == "number" and within >= 0) then
    return invalid("the request's send_within_ms must be a number of milliseconds, 0 or more")
  end

  local tls = u.scheme == "https"
  return {
    head = http1.request_head(method, u, fields, seen, body, self.user_agent),
    body = body ~= "" and body or nil,
    head_only = method == "HEAD",
    tls = tls,
    host = u.host,
    server_name = u.server_name,
    port = u.port,
    origin = u.scheme .. "://" .. u.authority, -- for messages: never the path or query
    pool = format("streamctl:%s:%s:%d%s", u.scheme, lower(u.host), u.port,
      tls and (":verify:" .. (self.ca_file or "nginx")) or ""),
    timeout = timeout,
    send_within = within and within / 1000,
    sent = false,
  }
end

-- Exchanges -------------------------------------------------------------------

-- Errors a reused connection gives when the server had already dropped it.
local STALE = { closed = true, ["connection reset by peer"] = true, ["broken pipe"] = true }

-- A reused connection silent after the request left: the failure says so.
local function silent_after_send(f)
  f.message = f.message .. " (a reused connection, after the request had left: not sent again, the request may "
    .. "have been applied)"
  return f
end

-- A pooled connection, before anything goes on it: handed back to the pool,
-- and the light thread yields to the event loop once (1 ms), where nginx's
-- own check (a peek at each idle connection that turned readable) closes
-- one its server closed; the next connect takes it again only if it is
-- open. (Without a yield, a step that did not yield since the server's
-- close came in takes it unseen. A receive with a short timeout would
-- tell it too, but logs an error at every reused request.)
local function recheck(sock)
  if not sock:setkeepalive() then sock:close() end -- (refused when nginx sees it closed already)
  ngx.sleep(MIN_WAIT)
end

-- The TLS handshake of a fresh connection: nil, or the failure (the socket closed).
local function handshake(sock, plan, deadline)
  local left = ms_left(deadline)
  if left <= 0 then
    sock:close()
    return failure("Timeout", "timed out before the TLS handshake with " .. plan.origin, plan.sent)
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
  if done then return nil end
  sock:close()
  if herr == "timeout" then
    return failure("Timeout", "timed out in the TLS handshake with " .. plan.origin, plan.sent)
  end
  return failure("TLSError", "TLS handshake with " .. plan.origin .. " failed: " .. tostring(herr), plan.sent)
end

-- One try over one connection: res; or nil, failure, and true when the
-- connection was a pooled one that turned out closed, or stale (the caller
-- asks `common.may_send_again` whether the request may go on another).
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
  if reused and not plan.rechecked then
    plan.rechecked = true
    recheck(sock)
    return nil, nil, true
  end
  if plan.tls and not reused then
    local hfail = handshake(sock, plan, deadline)
    if hfail then return nil, hfail end
  end
  if plan.send_within and not reused then
    -- (a cold connection's handshake would put its request behind later ones, more than a cap in a second)
    ngx.update_time()
    local took = ngx.now() - plan.started
    if took > plan.send_within then
      sock:setkeepalive() -- (a good connection, for the request's next slot)
      return nil, failure("SlotMissed", format("the connection to %s took %d ms, past the request's slot: not "
        .. "sent", plan.origin, took * 1000), false)
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
    if serr == "timeout" then return nil, failure("Timeout", "timed out sending to " .. plan.origin, true) end
    local f = failure("NetworkError", "sending to " .. plan.origin .. " failed: " .. tostring(serr), true)
    if reused and STALE[serr] then return nil, silent_after_send(f), true end
    return nil, f
  end

  local r = reader(sock, deadline)
  local res, keep_or_err = read_response(self, plan, r)
  if not res then
    sock:close()
    -- nothing at all came back on a reused connection: dropped by the
    -- server, before or after it read the request (nothing here tells which)
    if reused and r.total == 0 and keep_or_err.code == "NetworkError" then
      return nil, silent_after_send(keep_or_err), true
    end
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

-- The whole attempt: res, or nil and failure. A stale connection is left
-- for another only while the request is unsent (`common.may_send_again`):
-- once a byte of it left, the attempt is this one, answered or not.
local function exchange(self, plan)
  ngx.update_time()
  plan.started = ngx.now()
  local deadline = plan.started + plan.timeout / 1000
  -- Each stale connection came from the pool, which holds at most pool_size.
  local res, err, stale
  for _ = 1, self.pool_size + 2 do
    res, err, stale = try_once(self, plan, deadline)
    if not (stale and common.may_send_again(plan.sent)) then return res, err end
  end
  return nil, err or failure("NetworkError", "every pooled connection to " .. plan.origin .. " was closed", plan.sent)
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
function M._prepare(request, opts)
  local o = assert(validate.construct(OPTIONS, opts, "streamctl.transport.ngx._prepare", "_prepare"))
  local plan, err = prepare(settings(o), request)
  if not plan then return nil, err end
  return plan.head, plan
end

-- For specs and the fuzzer: an answer read from bytes (streamctl.transport.http1).
M._read_response = http1._read_response

return M

