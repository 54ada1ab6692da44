-- Test helper: a Sentinel that answers what a file says, for the answers a
-- real one gives only in a race (a replica named as the master, a master
-- it does not know, an answer that is no address). Run by fake_sentinel.start
-- as a process of its own (the client under test blocks in hiredis); it
-- speaks RESP on 127.0.0.1 to any number of connections at once:
--   AUTH [user] password   +OK (or -WRONGPASS when `password` is set and differs)
--   PING                   +PONG
--   SENTINEL get-master-addr-by-name NAME
--                          the answer file's text: "host port" (an array of two),
--                          "nil" (a nil array), anything else as a status reply
--   anything else          -ERR
-- Each command is counted in the file `dir/asked` (one line per command name).
--
--   local fake = require("spec.helpers.fake_sentinel").start { password = nil }
--   fake.port; fake:answer("127.0.0.1 6380"); fake:asked() -> { "AUTH", "SENTINEL", ... }; fake:stop()
-- It serves until stopped, or until the spec's process that started it is gone
-- (spec.helpers.process.parent_watch): never by a clock.

local socket = require "socket"

if not ... or ... ~= "spec.helpers.fake_sentinel" then
  -- the server: arg[1] the answer file, arg[2] the log, arg[3] the password ("" for none)
  local answer_file, log_file, password = arg[1], arg[2], arg[3] ~= "" and arg[3] or nil
  local server = assert(socket.bind("127.0.0.1", 0))
  server:settimeout(0.05)
  io.stdout:write(select(2, server:getsockname()), "\n")
  io.stdout:flush()
  local clients, buffers = {}, {}
  package.path = (os.getenv("STREAMCTL_ROOT") or ".") .. "/?.lua;" .. package.path
  local parent_alive = require("spec.helpers.process").parent_watch()
  local function reply(c, argv)
    local log = io.open(log_file, "a")
    log:write(argv[1]:upper(), "\n")
    log:close()
    local cmd = argv[1]:upper()
    if cmd == "AUTH" then
      if password and argv[#argv] ~= password then return c:send("-WRONGPASS invalid password\r\n") end
      return c:send("+OK\r\n")
    elseif cmd == "PING" then
      return c:send("+PONG\r\n")
    elseif cmd == "SENTINEL" and argv[2] and argv[2]:lower() == "get-master-addr-by-name" then
      local f = io.open(answer_file)
      local text = f and f:read("*l") or "nil"
      if f then f:close() end
      local host, port = text:match("^(%S+) (%d+)$")
      if host then
        return c:send(("*2\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n"):format(#host, host, #port, port))
      elseif text == "nil" then
        return c:send("*-1\r\n")
      end
      return c:send("+" .. text .. "\r\n")
    end
    return c:send("-ERR unknown command '" .. argv[1] .. "'\r\n")
  end
  -- One whole RESP array off the front of buf: argv, rest; nil when incomplete.
  local function parse(buf)
    local n, at = buf:match("^%*(%d+)\r\n()")
    if not n then return nil end
    local argv = {}
    for i = 1, tonumber(n) do
      local len, from = buf:match("^%$(%d+)\r\n()", at)
      if not len or #buf < from + len + 1 then return nil end
      argv[i] = buf:sub(from, from + len - 1)
      at = from + len + 2
    end
    return argv, buf:sub(at)
  end
  while parent_alive() do
    local c = server:accept()
    if c then
      c:settimeout(0)
      clients[#clients + 1], buffers[c] = c, ""
    end
    local ready = socket.select(clients, nil, 0.05)
    for _, cl in ipairs(ready or {}) do
      local data, err, partial = cl:receive(4096)
      data = data or partial
      if data and data ~= "" then buffers[cl] = buffers[cl] .. data end
      while true do
        local argv, rest = parse(buffers[cl])
        if not argv then break end
        buffers[cl] = rest
        reply(cl, argv)
      end
      if err == "closed" then
        for i, x in ipairs(clients) do if x == cl then table.remove(clients, i) break end end
        cl:close()
      end
    end
  end
  return
end

local process = require "spec.helpers.process"

local M = {}
local Fake = {}
Fake.__index = Fake

--- Starts a fake Sentinel; opts.password makes AUTH check it.
function M.start(opts)
  opts = opts or {}
  require("spec.helpers.ports").refuse_in_unit_tier("a fake Sentinel")
  local dir = process.temp_dir()
  local self = setmetatable({ dir = dir, answer_file = dir .. "/answer", log_file = dir .. "/asked" }, Fake)
  self:answer("nil")
  local root = os.getenv("STREAMCTL_ROOT") or "."
  self.child = process.spawn(process.quote(process.interpreter()) .. " "
    .. process.quote(root .. "/spec/helpers/fake_sentinel.lua") .. " " .. process.quote(self.answer_file) .. " "
    .. process.quote(self.log_file) .. " " .. process.quote(opts.password or ""))
  self.port = tonumber(self.child.pipe:read("*l"))
  assert(self.port, "the fake Sentinel did not start")
  return self
end

--- What it answers SENTINEL get-master-addr-by-name with from now on.
function Fake:answer(text)
  process.write_file(self.answer_file, text .. "\n")
end

--- The commands it was sent so far, by name, in order.
function Fake:asked()
  local out = {}
  for line in (process.read_file(self.log_file) or ""):gmatch("[^\n]+") do out[#out + 1] = line end
  return out
end

function Fake:stop()
  process.stop(self.child)
  os.execute("rm -rf " .. process.quote(self.dir))
end

return M
