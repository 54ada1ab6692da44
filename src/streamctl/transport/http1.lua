--- HTTP/1.1 over a connection (streamctl.transport.ngx's cosockets): the
-- request's head written, and the response read.
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
-- The response: the status line and header fields (1xx answers skipped, one
-- 64 KiB budget for the whole header section, trailers included), a body by
-- Content-Length, chunked or to the close, bounded by `max_body`, and
-- whether the connection may be kept. Every read has one deadline.
-- Hand-written: nginx-lua has no HTTP client of its own, and lua-resty-http
-- is not a Debian package (docs/openresty.md, "With lua-resty-http instead").
-- @module streamctl.transport.http1

local common = require "streamctl.transport.common"

local ipairs, tonumber, tostring = ipairs, tonumber, tostring
local floor, min, huge = math.floor, math.min, math.huge
local format, find, match, lower, sub, byte, gmatch =
  string.format, string.find, string.match, string.lower, string.sub, string.byte, string.gmatch
local concat = table.concat

local M = {}

--- The largest response header section (status line, header lines, 1xx
-- answers before it and trailers after a chunked body), in bytes.
M.MAX_HEADER_BYTES = 65536

local READ_SIZE = 65536   -- the most one receive asks for
local MAX_CHUNK_LINE = 4096 -- a chunk-size line, extensions included

-- RFC 9110 token characters (header names: streamctl.transport.curl.header_fields).
local TOKEN = common.TOKEN

local BODY_METHODS = { POST = true, PUT = true, PATCH = true }

--- The request head: the request line, Host (`u.authority`) and User-Agent
-- unless the caller gave them (`seen`, by lower-case name), the caller's
-- header `fields` (sorted: { lower, name, value }), the body's length.
function M.request_head(method, u, fields, seen, body, user_agent)
  local head = { method, " ", u.target, " HTTP/1.1\r\n" }
  if not seen.host then head[#head + 1] = "Host: " .. u.authority .. "\r\n" end
  if not seen["user-agent"] and user_agent ~= "" then
    head[#head + 1] = "User-Agent: " .. user_agent .. "\r\n"
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

--- A transport failure: `{ code, message, sent }`.
local function failure(code, message, sent)
  return { code = code, message = message, sent = sent }
end

-- luacheck: globals ngx
local ngx = ngx -- nil outside nginx: only a read with a deadline asks its clock

-- Milliseconds left until `deadline` (ngx.now's clock; huge: no deadline).
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

--- Reads one answer to `plan` (`head_only`, for HEAD) from the reader `r`
-- (`reader(sock, deadline)`), within `self.max_body`: the response
-- `{ status, headers, body }` and whether the connection may be kept; or
-- nil and a failure.
M.read_response = read_response
M.reader = reader
M.ms_left = ms_left
M.failure = failure

-- For specs and the fuzzer: `bytes` read as an answer, `opts.chunk` bytes a
-- receive, `opts.max_body`, `opts.method` ("HEAD").
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
  local self = { max_body = opts.max_body or common.DEFAULTS.max_body }
  local plan = { origin = "http://127.0.0.1", head_only = opts.method == "HEAD" }
  return read_response(self, plan, reader(sock, huge))
end

return M
