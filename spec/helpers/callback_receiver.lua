-- Test helper: an HTTP receiver for the emulator's callbacks, served from
-- the spec's own process (plain Lua + LuaSocket) on 127.0.0.1, one request
-- per connection. It only serves while a spec waits on it (:wait, :serve);
-- meanwhile the kernel queues the emulator's connections.
--
--   local receiver = require "spec.helpers.callback_receiver"
--   local r = receiver.start()            -- r.port, r:url("/path")
--   r:script({ 500, 500, 200 })           -- the statuses of the next replies (then 200)
--   local reqs = r:wait(3, 10)            -- serves until 3 requests came (or 10 s passed)
--   r:serve(1.5)                          -- serves for 1.5 s (to see that nothing comes)
--   r:reset()                             -- forgets requests and script
--   r:close()
--
-- A request: { method, target, path, query, headers (lowercased name ->
-- value), body, time (socket.gettime() when it was read) }.

local socket = require "socket"

local M = {}
local Receiver = {}
Receiver.__index = Receiver

function M.start()
  require("spec.helpers.ports").refuse_in_unit_tier("a callback receiver")
  local server = assert(socket.bind("127.0.0.1", 0))
  server:settimeout(0)
  local _, port = server:getsockname()
  return setmetatable({ server = server, port = tonumber(port), requests = {}, statuses = {} }, Receiver)
end

function Receiver:url(path)
  return "http://127.0.0.1:" .. self.port .. (path or "/")
end

function Receiver:script(statuses)
  self.statuses = {}
  for i, s in ipairs(statuses) do
    self.statuses[i] = s
  end
end

function Receiver:reset()
  self.requests, self.statuses = {}, {}
end

-- Reads one request from a connection and answers it.
local function handle(self, conn)
  conn:settimeout(5)
  local line = conn:receive("*l")
  if not line then
    conn:close()
    return
  end
  local method, target = line:match("^(%S+) (%S+) HTTP/1%.[01]$")
  local headers, length = {}, 0
  for _ = 1, 200 do
    local h = conn:receive("*l")
    if not h or h == "" then
      break
    end
    local name, value = h:match("^([^:]+):%s*(.-)%s*$")
    if name then
      headers[name:lower()] = value
      if name:lower() == "content-length" then
        length = tonumber(value) or 0
      end
    end
  end
  local body = length > 0 and conn:receive(length) or ""
  local status = table.remove(self.statuses, 1) or 200
  conn:send(("HTTP/1.1 %d X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"):format(status))
  conn:close()
  self.requests[#self.requests + 1] = {
    method = method, target = target, path = target and target:match("^[^?]*"),
    query = target and target:match("%?(.*)$"), headers = headers, body = body,
    time = socket.gettime(), answered = status,
  }
end

-- Serves until done() is true or `seconds` passed (a wait for done(): scaled
-- by spec.helpers.process.patience; without done(), exactly `seconds`).
-- Returns the requests.
function Receiver:serve(seconds, done)
  local deadline = socket.gettime() + (done and require("spec.helpers.process").patience(seconds) or seconds)
  while socket.gettime() < deadline and not (done and done(self)) do
    local readable = socket.select({ self.server }, nil, 0.02)
    if readable[self.server] then
      for _ = 1, 16 do
        local conn = self.server:accept()
        if not conn then
          break
        end
        handle(self, conn)
      end
    end
  end
  return self.requests
end

-- Serves until n requests came in all (or `seconds` passed).
function Receiver:wait(n, seconds)
  return self:serve(seconds or 10, function(r)
    return #r.requests >= n
  end)
end

function Receiver:close()
  self.server:close()
end

return M
