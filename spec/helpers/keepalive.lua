-- Test helper: the keep-alive server of the "an attempt goes on the wire once"
-- rows (spec/helpers/keepalive_server.lua, a process of its own on 127.0.0.1),
-- and what a spec asks of it on connections of its own, never a transport's.
--
--   local ka = require("spec.helpers.keepalive").start()  -- it serves until stopped or this process ends
--   ka.url("/ok?id=a"); ka.arrivals("a"); ka.log(); ka.ask("/reset"); ka.stop()
local cjson = require "cjson"
local socket = require "socket"
local process = require "spec.helpers.process"

local M = {}

local SERVER = (debug.getinfo(1, "S").source:match("^@(.*)[/\\][^/\\]*$") or ".") .. "/keepalive_server.lua"

--- Starts the server (until stopped, or this process ends: never by a clock): an object
-- with `port`, `url(path)`, `ask(path)` (GET on a connection of its own: the
-- body), `log()` (decoded), `arrivals(id)` (the log's arrivals of request
-- `id`, in order) and `stop()`.
function M.start()
  local child = process.spawn(process.quote(process.interpreter()) .. " " .. process.quote(SERVER))
  local port = tonumber(child.pipe:read("*l"))
  assert(port, "the keep-alive server did not start")
  local ka = { port = port }
  function ka.url(path) return "http://127.0.0.1:" .. port .. path end
  function ka.ask(path)
    local c = assert(socket.tcp())
    c:settimeout(process.patience(10))
    assert(c:connect("127.0.0.1", port))
    assert(c:send("GET " .. path .. " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"))
    local text = c:receive("*a")
    c:close()
    local body = text and text:match("\r\n\r\n(.*)$")
    assert(body, "no answer to " .. path)
    return body
  end
  function ka.log() return cjson.decode(ka.ask("/log")) end
  function ka.arrivals(id)
    local out = {}
    for _, a in ipairs(ka.log().arrivals) do
      if a.id == id then out[#out + 1] = a end
    end
    return out
  end
  function ka.stop() process.stop(child) end
  return ka
end

return M
