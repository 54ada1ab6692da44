-- Test helper: a TCP proxy on 127.0.0.1 that delays every byte, both ways, by
-- a fixed one-way delay (spec/helpers/delayproxy.c): a server "5 ms away" on
-- one machine. Plain Lua (5.1/LuaJIT and 5.4); luasocket for the waits.
--
--   local delayproxy = require "spec.helpers.delayproxy"
--   local proxy = delayproxy.start { target_port = srv.port, delay_ms = 5 }
--   proxy.port                  where to connect (127.0.0.1) instead of target_port
--   proxy.pid                   the proxy's process
--   proxy.alive()               false once it has exited (stopped, or this process gone)
--   proxy.stop()                TERM, then KILL after 5 s; reaped; idempotent
--   delayproxy.binary()         the compiled program's path (built on first use)
--
-- A round trip through it takes at least 2 x delay_ms; pipelined requests each
-- take the delay once (a latency, not a rate limit). The proxy exits when
-- stopped or when this process dies, so a crashed spec leaves nothing behind,
-- and never by a clock (a slow machine makes a spec slower, never red). Only
-- 127.0.0.1 is ever used.

local socket = require "socket"
local process = require "spec.helpers.process"

local M = {}

local WAIT_SECONDS = 5

local quote, run, read_file = process.quote, process.run, process.read_file

local ROOT = os.getenv("STREAMCTL_ROOT") or "."
local SOURCE = ROOT .. "/spec/helpers/delayproxy.c"

-- Where the compiled program is remembered. busted's insulation drops this
-- module from package.loaded after each spec file; the registry outlives it,
-- so the program is compiled once per process, not once per file.
local REGISTRY_KEY = "spec.helpers.delayproxy binary"

-- Is `pid` a live process (not a zombie waiting to be reaped)?
local function alive(pid)
  local stat = read_file("/proc/" .. pid .. "/stat")
  if not stat then return false end
  return not stat:match("^%d+ %b() [ZX]")
end

-- Removes the build's directory when the Lua state closes (a normal end, or
-- busted's os.exit(code, true)). 5.1 tables have no __gc: LuaJIT's newproxy.
local function remove_on_close(dir)
  local function remove() os.execute("rm -rf " .. quote(dir)) end
  if newproxy then -- luacheck: ignore 113
    local p = newproxy(true) -- luacheck: ignore 113
    getmetatable(p).__gc = remove
    return p
  end
  return setmetatable({}, { __gc = remove })
end

-- LD_PRELOAD is unset for gcc and the proxy: `make asan` preloads the
-- sanitizers' runtimes into everything started under it, and neither is the
-- code under test.
local ENV = "env -u LD_PRELOAD "

--- The compiled proxy's path; compiles spec/helpers/delayproxy.c into a temp
-- dir on first use in this process (raises with gcc's messages if it fails).
function M.binary()
  local reg = debug.getregistry()
  local built = reg[REGISTRY_KEY]
  if built then return built.path end
  assert(read_file(SOURCE), "cannot read " .. SOURCE .. " (is STREAMCTL_ROOT the checkout?)")
  local dir = process.temp_dir()
  local path = dir .. "/delayproxy"
  if not run(ENV .. "gcc -std=c99 -O2 -Wall -Wextra -o " .. quote(path) .. " " .. quote(SOURCE)
      .. " >" .. quote(dir .. "/gcc.log") .. " 2>&1") then
    local log = read_file(dir .. "/gcc.log") or ""
    run("rm -rf " .. quote(dir))
    error("cannot compile " .. SOURCE .. ":\n" .. log, 2)
  end
  reg[REGISTRY_KEY] = { path = path, sentinel = remove_on_close(dir) }
  return path
end

-- Waits (bounded) for the child to exit after a signal, then reaps it.
local function reap(child, signal)
  local pid = child.pid
  run("kill -" .. signal .. " " .. pid .. " 2>/dev/null")
  local deadline = socket.gettime() + process.patience(WAIT_SECONDS)
  while alive(pid) and socket.gettime() < deadline do socket.sleep(0.01) end
  if alive(pid) then
    run("kill -9 " .. pid .. " 2>/dev/null")
    deadline = socket.gettime() + process.patience(WAIT_SECONDS)
    while alive(pid) and socket.gettime() < deadline do socket.sleep(0.01) end
  end
  child.pipe:close() -- reaps (the process has exited)
end

local function check_integer(name, v, lo, hi)
  if type(v) ~= "number" or v ~= math.floor(v) or v < lo or v > hi then
    error(name .. " must be an integer in [" .. lo .. ", " .. hi .. "], got " .. tostring(v), 3)
  end
end

--- Starts a proxy from 127.0.0.1:(a free port) to 127.0.0.1:target_port.
-- opts: target_port (required), delay_ms (one way, >= 0, fractions down to a
-- microsecond). Returns { port, pid, alive(), stop() }.
function M.start(opts)
  opts = opts or {}
  check_integer("target_port", opts.target_port, 1, 65535)
  local delay_ms = opts.delay_ms
  if type(delay_ms) ~= "number" or not (delay_ms >= 0 and delay_ms <= 60000) then
    error("delay_ms must be a number in [0, 60000], got " .. tostring(delay_ms), 2)
  end
  local delay_us = math.floor(delay_ms * 1000 + 0.5)
  local bin = M.binary()
  -- The port comes from the proxy itself (it binds port 0): no window in
  -- which another process could take a port picked beforehand. Its stderr
  -- goes to ours: a proxy that cannot start says why.
  local child = process.spawn(ENV .. quote(bin) .. " 0 " .. opts.target_port .. " " .. string.format("%d", delay_us)
    .. " </dev/null")
  -- The first line comes as soon as it listens; EOF (nil) when it failed.
  local port = tonumber(child.pipe:read("*l"))
  if not port then
    reap(child, "KILL")
    error("the delay proxy did not start (see its message above)", 2)
  end
  local stopped = false
  local proxy = { port = port, pid = child.pid }
  function proxy.alive() return not stopped and alive(child.pid) end
  function proxy.stop()
    if not stopped then
      stopped = true
      reap(child, "TERM")
    end
    return true
  end
  return proxy
end

return M
