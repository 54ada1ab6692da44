-- A keep-alive HTTP/1.1 server for the transports' "an attempt goes on the wire
-- once" rows (spec/transports/06-curl-once_spec.lua, 30-ngx-transport_spec.lua): one
-- process, luasocket, on 127.0.0.1, every connection kept open until a path
-- says otherwise, and a log of every request that arrived.
--
--   lua keepalive_server.lua   prints its port, serves until the spec's process that started it
--                              (spec.helpers.process.spawn) is gone or stops it: never by a clock
--
-- Paths (the query's `id` names the request in the log):
--   /ok?id=X              200 "ok X", the connection kept
--   /drop?id=X            read, logged, the connection closed without a byte of an answer
--                         (a server that applied a request and lost its answer)
--   /idle-close?id=X&ms=N[&mark=FILE]
--                         200 "ok X", the connection kept; N ms later the server ends its side
--                         (a FIN, shutdown) while it still reads, and then writes FILE (for a
--                         process that waits on it without yielding: an nginx worker); a request
--                         that comes on it after that is logged, then the connection closed unanswered
--   /log                  {"arrivals":[{id, path, conn, nth}], "ended":[conn...], "closed":[conn...]}
--                         (connections whose side the server shut, and those closed), the connection closed
--   /reset                the log emptied; 200, the connection closed
-- /log and /reset are asked on connections of their own (never a transport's).
local socket = require "socket"

package.path = (os.getenv("STREAMCTL_ROOT") or ".") .. "/?.lua;" .. package.path
local parent_alive = require("spec.helpers.process").parent_watch()

local server = assert(socket.bind("127.0.0.1", 0))
server:settimeout(0)
local _, port = server:getsockname()
io.stdout:write(port, "\n")
io.stdout:flush()

local arrivals, ended, closed = {}, {}, {}
local conns = {}   -- socket -> { id, buf, nth, ended (its side shut), close_at }
local next_id = 0

local function json_string(s)
  return '"' .. tostring(s):gsub('[%c"\\]', function(c) return string.format("\\u%04x", c:byte()) end) .. '"'
end

local function log_json()
  local a = {}
  for i, e in ipairs(arrivals) do
    a[i] = string.format('{"id":%s,"path":%s,"conn":%d,"nth":%d}', json_string(e.id), json_string(e.path),
      e.conn, e.nth)
  end
  return '{"arrivals":[' .. table.concat(a, ",") .. '],"ended":[' .. table.concat(ended, ",") .. '],"closed":['
    .. table.concat(closed, ",") .. "]}"
end

local function close(sock)
  local c = conns[sock]
  if not c then return end
  conns[sock] = nil
  closed[#closed + 1] = c.id
  sock:close()
end

local function answer(sock, body, keep)
  sock:send("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " .. #body .. "\r\n"
    .. (keep and "" or "Connection: close\r\n") .. "\r\n" .. body)
end

-- One whole request (head and Content-Length body) from c.buf, or nil.
local function take_request(c)
  local head_end = c.buf:find("\r\n\r\n", 1, true)
  if not head_end then return nil end
  local head = c.buf:sub(1, head_end - 1)
  local length = tonumber(head:lower():match("\r\ncontent%-length:%s*(%d+)") or "0")
  if #c.buf < head_end + 3 + length then return nil end
  c.buf = c.buf:sub(head_end + 4 + length)
  return head:match("^%u+ (%S+) HTTP/1%.%d")
end

local function serve(sock, c, target)
  local path = target:match("^[^?]*")
  local id = target:match("[?&]id=([^&]*)") or ""
  if path == "/log" then
    answer(sock, log_json(), false)
    return close(sock)
  elseif path == "/reset" then
    arrivals, ended, closed = {}, {}, {}
    answer(sock, "reset", false)
    return close(sock)
  end
  c.nth = c.nth + 1
  arrivals[#arrivals + 1] = { id = id, path = path, conn = c.id, nth = c.nth }
  if c.ended or path == "/drop" then return close(sock) end
  answer(sock, "ok " .. id, true)
  if path == "/idle-close" then
    c.close_at = socket.gettime() + (tonumber(target:match("[?&]ms=(%d+)") or "0") or 0) / 1000
    c.mark = target:match("[?&]mark=([%w/._-]+)")
  end
end

local function read_from(sock)
  local c = conns[sock]
  local data, err, partial = sock:receive(8192)
  data = data or partial
  if data and data ~= "" then c.buf = c.buf .. data end
  while conns[sock] do
    local target = take_request(c)
    if not target then break end
    serve(sock, c, target)
  end
  if conns[sock] and err == "closed" then close(sock) end
end

while parent_alive() do
  local readers = { server }
  for sock in pairs(conns) do readers[#readers + 1] = sock end
  local ready = socket.select(readers, nil, 0.005)
  for _, sock in ipairs(ready) do
    if sock == server then
      local client = server:accept()
      if client then
        client:settimeout(0)
        next_id = next_id + 1
        conns[client] = { id = next_id, buf = "", nth = 0 }
      end
    elseif conns[sock] then
      read_from(sock)
    end
  end
  local now = socket.gettime()
  for sock, c in pairs(conns) do
    if c.close_at and now >= c.close_at then
      c.close_at, c.ended = nil, true
      ended[#ended + 1] = c.id
      sock:shutdown("send")
      if c.mark then assert(io.open(c.mark, "w")):close() end
    end
  end
end
