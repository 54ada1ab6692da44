-- A scripted HTTP/1.1 server for spec/transports/05-curl_spec.lua (plain Lua + LuaSocket + lua-cjson).
--
--   LUA spec/helpers/httpserver.lua [max_requests] [root_route]
--
-- Binds 127.0.0.1 on an ephemeral port and prints the port as the first stdout line.
-- Serves every connection from one select() loop (keep-alive, several clients at once).
-- Serves until max_requests (default 1000) requests have been answered, or until the spec's
-- process that started it (spec.helpers.process.spawn) is gone: never by a clock, so a slow
-- machine makes a spec slower, never red.
--
-- Behaviour by path (a request target in absolute form, as sent to a proxy, is routed by its
-- path; the query string is ignored except for delay=MS, which holds any answer MS ms):
--   /echo...     200, JSON {method, target, headers = {{name, value}, ...}, body, conn, RequestId = "echo"}
--                exactly as received; conn numbers the TCP connection (1, 2, ...)
--   /json        200 JSON with a Date and an x-acs-retry-after header
--   /error       400 with a provider error JSON
--   /500         500 with a provider error JSON
--   /malformed   200 with broken JSON
--   /big         200 with a Content-Length body of 1 MiB + 1 bytes
--   /bigstream   200, 2 MiB body without Content-Length (ends at connection close)
--   /bigheaders  200 with about 80 KiB of header lines
--   /repeat      200 with a header repeated three times (X-Multi: a / b / c)
--   /redirect    302 to /json
--   /hang        reads the request and never answers
--   /close       reads the request and closes the connection without answering
--   /slowbody    200 with Content-Length 100, sends 10 bytes of the body, then nothing
--   /stats       200 JSON {requests = N}: requests seen so far, /stats and /last excluded
--   /last        200, the last request seen as /echo shows it (what a client's answer may not
--                show: streamctl scrubs an answer that quotes its request's signature)
--   anything else: 404
-- A root_route of "@reset" or "@stall" acts at the TCP level instead, on every connection:
--   @reset       accepts and resets it at once (SO_LINGER 0), before reading anything
--   @stall       accepts and never answers (a TLS handshake there never completes)
local socket = require "socket"
local cjson = require "cjson"

local MAX_REQUESTS = tonumber(arg and arg[1]) or 1000
local ROOT_ROUTE = arg and arg[2] -- the behaviour "/" takes, e.g. "/json" (clients always send "/?...")

local JSON_BODY = '{"RequestId":"req-json","Data":{"ok":true}}'
local ERROR_BODY = '{"RequestId":"req-err","Code":"InvalidParameter","Message":"bad StreamName"}'
local E500_BODY = '{"RequestId":"req-500","Code":"InternalError","Message":"oops"}'
local MALFORMED_BODY = '{"RequestId":"req-bad","Data":[1,2'
local DATE = "Mon, 01 Jan 2024 00:00:00 GMT"

local server = assert(socket.bind("127.0.0.1", 0))
server:settimeout(0)
local _, port = server:getsockname()
io.stdout:write(port, "\n")
io.stdout:flush()

package.path = (os.getenv("STREAMCTL_ROOT") or ".") .. "/?.lua;" .. package.path
local parent_alive = require("spec.helpers.process").parent_watch()
local requests, answered, conn_seq = 0, 0, 0
local clients = {} -- array of { sock, id, inbuf, out, outpos, close_after, hang, dead, held, due }

local function respond(c, req, status, reason, headers, body, opts)
  opts = opts or {}
  local parts = { ("HTTP/1.1 %d %s\r\n"):format(status, reason) }
  for _, h in ipairs(headers) do parts[#parts + 1] = h[1] .. ": " .. h[2] .. "\r\n" end
  if not (opts.no_length or opts.length) then parts[#parts + 1] = "Content-Length: " .. #body .. "\r\n" end
  if opts.length then parts[#parts + 1] = "Content-Length: " .. opts.length .. "\r\n" end
  if opts.close then parts[#parts + 1] = "Connection: close\r\n" end
  parts[#parts + 1] = "\r\n"
  if req.method ~= "HEAD" then parts[#parts + 1] = body end
  c.out = c.out:sub(c.outpos) .. table.concat(parts)
  c.outpos = 1
  if opts.close then c.close_after = true end
  answered = answered + 1
end

local function json_headers() return { { "Content-Type", "application/json" } } end

local last_request -- the last request seen (not /stats or /last), for GET /last

local function handle(c, req)
  local path = req.target:gsub("^[hH][tT][tT][pP][sS]?://[^/]*", ""):match("^[^?]*")
  if path == "/" and ROOT_ROUTE then path = ROOT_ROUTE end
  local delay = tonumber(req.target:match("[?&]delay=(%d+)"))
  if delay and not req.held then
    req.held = true
    c.held, c.due = req, socket.gettime() + delay / 1000
    return
  end
  if path ~= "/stats" and path ~= "/last" then
    requests = requests + 1
    last_request = { method = req.method, target = req.target, headers = req.headers, body = req.body, conn = c.id }
  end
  if path:sub(1, 5) == "/echo" then
    respond(c, req, 200, "OK", json_headers(), cjson.encode({
      method = req.method, target = req.target, headers = req.headers, body = req.body, conn = c.id,
      RequestId = "echo", -- so that an Aliyun client takes the echo for an answer
    }))
  elseif path == "/json" then
    respond(c, req, 200, "OK", {
      { "Content-Type", "application/json" }, { "Date", DATE }, { "x-acs-retry-after", "3" },
    }, JSON_BODY)
  elseif path == "/error" then
    respond(c, req, 400, "Bad Request", json_headers(), ERROR_BODY)
  elseif path == "/500" then
    respond(c, req, 500, "Internal Server Error", json_headers(), E500_BODY)
  elseif path == "/malformed" then
    respond(c, req, 200, "OK", json_headers(), MALFORMED_BODY)
  elseif path == "/big" then
    respond(c, req, 200, "OK", {}, string.rep("x", 1048577))
  elseif path == "/bigstream" then
    respond(c, req, 200, "OK", {}, string.rep("y", 2 * 1048576), { no_length = true, close = true })
  elseif path == "/bigheaders" then
    local hs = {}
    for i = 1, 80 do hs[i] = { ("X-Pad-%02d"):format(i), string.rep("p", 1000) } end
    respond(c, req, 200, "OK", hs, "")
  elseif path == "/repeat" then
    respond(c, req, 200, "OK", { { "X-Multi", "a" }, { "x-multi", "b" }, { "X-MULTI", "c" } }, "ok")
  elseif path == "/redirect" then
    respond(c, req, 302, "Found", { { "Location", "/json" } }, "moved")
  elseif path == "/hang" then
    c.hang = true
    answered = answered + 1
  elseif path == "/slowbody" then
    respond(c, req, 200, "OK", json_headers(), '{"RequestId"', { length = 100 })
    c.hang = true
  elseif path == "/close" then
    c.dead = true
    answered = answered + 1
  elseif path == "/stats" then
    respond(c, req, 200, "OK", json_headers(), cjson.encode({ requests = requests }))
  elseif path == "/last" then
    respond(c, req, 200, "OK", json_headers(), cjson.encode(last_request or {}))
  else
    respond(c, req, 404, "Not Found", {}, "no such path")
  end
end

-- Parses and handles every complete request in c.inbuf.
local function parse(c)
  while not (c.hang or c.dead or c.held) do
    local hend = c.inbuf:find("\r\n\r\n", 1, true)
    if not hend then return end
    local head = c.inbuf:sub(1, hend - 1)
    local reqline = head:match("^[^\r\n]*")
    local method, target = reqline:match("^(%S+) (%S+) HTTP/1%.[01]$")
    if not method then
      c.dead = true
      return
    end
    local headers, length = {}, 0
    for line in head:sub(#reqline + 3):gmatch("[^\r\n]+") do
      local name, value = line:match("^([^:]+):[ \t]*(.-)[ \t]*$")
      if name then
        headers[#headers + 1] = { name, value }
        if name:lower() == "content-length" then length = tonumber(value) or 0 end
      end
    end
    if #c.inbuf < hend + 3 + length then return end
    local body = c.inbuf:sub(hend + 4, hend + 3 + length)
    c.inbuf = c.inbuf:sub(hend + 4 + length)
    handle(c, { method = method, target = target, headers = headers, body = body })
  end
end

local function pending_output()
  for _, c in ipairs(clients) do
    if not c.dead and c.outpos <= #c.out then return true end
  end
  return false
end

while answered < MAX_REQUESTS or pending_output() do
  if not parent_alive() then break end
  local recvt, sendt = { server }, {}
  for _, c in ipairs(clients) do
    recvt[#recvt + 1] = c.sock
    if c.outpos <= #c.out then sendt[#sendt + 1] = c.sock end
  end
  local readable, writable = socket.select(recvt, sendt, 0.01)
  for _, c in ipairs(clients) do
    if c.held and socket.gettime() >= c.due then
      local req = c.held
      c.held = nil
      handle(c, req)
      parse(c)
    end
  end
  if readable[server] then
    for _ = 1, 64 do
      local s = server:accept()
      if not s then break end
      s:settimeout(0)
      conn_seq = conn_seq + 1
      if ROOT_ROUTE == "@reset" then
        s:setoption("linger", { on = true, timeout = 0 })
        s:close()
        answered = answered + 1
      elseif ROOT_ROUTE == "@stall" then
        clients[#clients + 1] = { sock = s, id = conn_seq, inbuf = "", out = "", outpos = 1, hang = true }
        answered = answered + 1
      else
        clients[#clients + 1] = { sock = s, id = conn_seq, inbuf = "", out = "", outpos = 1 }
      end
    end
  end
  for _, c in ipairs(clients) do
    if readable[c.sock] and not c.dead then
      local data, err, partial = c.sock:receive(65536)
      local chunk = data or partial
      if chunk and #chunk > 0 and not c.hang then
        c.inbuf = c.inbuf .. chunk
        parse(c)
      end
      if err == "closed" then c.dead = true end
    end
    if writable[c.sock] and not c.dead and c.outpos <= #c.out then
      local last, err, partial_last = c.sock:send(c.out, c.outpos)
      last = last or partial_last
      if last then c.outpos = last + 1 end
      if err and err ~= "timeout" then c.dead = true end
    end
    if not c.dead and c.close_after and c.outpos > #c.out then c.dead = true end
  end
  local live = {}
  for _, c in ipairs(clients) do
    if c.dead then c.sock:close() else live[#live + 1] = c end
  end
  clients = live
end

for _, c in ipairs(clients) do c.sock:close() end
server:close()
