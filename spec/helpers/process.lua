-- Child processes for specs: the interpreter running the spec, shell quoting,
-- and start/stop of a child whose stdout the spec reads.
local M = {}

--- The interpreter running this spec: STREAMCTL_LUA, else the lowest arg[-n], else lua5.4.
function M.interpreter()
  local env = os.getenv("STREAMCTL_LUA")
  if env and env ~= "" then return env end
  if type(arg) == "table" and arg[-1] then
    local i = -1
    while arg[i - 1] do i = i - 1 end
    return arg[i]
  end
  return "lua5.4"
end

function M.quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

--- os.execute's success: 5.1/LuaJIT return the raw wait status, 5.2+ ok, "exit", code.
function M.run(cmd)
  local a = os.execute(cmd)
  if type(a) == "number" then return a == 0 end
  return a == true
end

--- A file's bytes, or nil when it cannot be read.
function M.read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

function M.write_file(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

--- Records every name os.tmpname gives from now on; returns a function
-- that stops recording and lists those still there (a file or a directory
-- a spec left behind).
function M.track_tmpnames()
  local names, tmpname = {}, os.tmpname
  os.tmpname = function() -- luacheck: ignore 122
    local name = tmpname()
    names[#names + 1] = name
    return name
  end
  return function()
    os.tmpname = tmpname -- luacheck: ignore 122
    local left = {}
    for _, name in ipairs(names) do
      if os.rename(name, name) then left[#left + 1] = name end
    end
    return left
  end
end

--- A new empty directory (under the system's temporary directory).
function M.temp_dir()
  local name = os.tmpname()
  os.remove(name)
  assert(M.run("mkdir -p " .. M.quote(name)), "cannot create " .. name)
  return name
end

--- What `cmd` prints on standard output.
function M.capture(cmd)
  local p = assert(io.popen(cmd, "r"))
  local out = p:read("*a") or ""
  p:close()
  return out
end

--- Starts `cmd` in a child process whose stdout we read; the shell execs it, so $$ is its pid.
function M.spawn(cmd)
  local pipe = assert(io.popen("echo $$; exec " .. cmd, "r"))
  local pid = tonumber(pipe:read("*l"))
  assert(pid, "could not start " .. cmd)
  return { pipe = pipe, pid = pid }
end

--- For a helper process that `spawn` started: a function that answers
-- whether the process that started it (the spec's interpreter) is still
-- its parent. A helper serves while it is, and ends when the spec does,
-- however long a busy machine makes that: never a clock of its own. (A
-- parent that dies reparents its children: the parent pid changes.)
function M.parent_watch()
  local function parent()
    local f = io.open("/proc/self/stat", "r")
    local stat = f and f:read("*l")
    if f then f:close() end
    return stat and tonumber(stat:match("^%d+ %b() %a (%d+)"))
  end
  local first = assert(parent(), "cannot read /proc/self/stat")
  -- (looked at twice a second at most: a helper asks it at every turn of its loop)
  local gettime, looked, alive = require("socket").gettime, -1, true
  return function()
    local now = gettime()
    if now - looked >= 0.5 then alive, looked = parent() == first, now end
    return alive
  end
end

-- Whether /proc/locks lists an exclusive flock(2) lock on the file of that
-- device and inode: held (no `waiter`), or waited for by process `waiter`.
local function flock_listed(major, minor, inode, waiter)
  local f = assert(io.open("/proc/locks", "r"))
  local locks = f:read("*a")
  f:close()
  -- ("1: FLOCK  ADVISORY  WRITE 12345 fe:00:1234567 0 EOF", a waiter's with "->" before FLOCK)
  for arrow, pid, ma, mi, ino in locks:gmatch("%d+:%s+(%-?>?)%s*FLOCK%s+%S+%s+WRITE%s+(%d+)%s+(%x+):(%x+):(%d+)") do
    if ino == inode and tonumber(ma, 16) == major and tonumber(mi, 16) == minor
      and (waiter and arrow == "->" and tonumber(pid) == waiter or not waiter and arrow == "") then
      return true
    end
  end
  return false
end

--- Waits until /proc/locks shows an exclusive flock(2) lock on the file at
-- `path`: held, or, given `waiter` (a pid), with that process blocked in
-- flock(2) waiting for it. The file is matched by its device and inode, not
-- by a pid: `flock FILE cmd` takes the lock in one process and runs cmd in
-- another (and makes FILE when it is not there yet). Looks every 10 ms for at
-- most `patience(20)` s; returns whether it saw it. (A spec that signals a process inside
-- such a wait waits on this state, not on a time, which a loaded machine outruns.)
function M.wait_flock(path, waiter)
  local socket = require "socket"
  local deadline = socket.gettime() + M.patience(20)
  local major, minor, inode
  repeat
    if not inode then
      major, minor, inode = M.capture("stat -c '%Hd %Ld %i' " .. M.quote(path) .. " 2>/dev/null")
        :match("^(%d+) (%d+) (%d+)")
    end
    if inode and flock_listed(tonumber(major), tonumber(minor), inode, waiter) then return true end
    socket.sleep(0.01)
  until socket.gettime() > deadline
  return false
end

--- Kills and reaps a child. Until reaped by pipe:close() the pid cannot be
-- reused, so the kill is always aimed right.
function M.stop(child)
  if child then
    os.execute("kill " .. child.pid .. " 2>/dev/null")
    child.pipe:close()
  end
end

--- A port on 127.0.0.1 that nothing listens on, of this spec process's own
-- block (spec/helpers/ports.lua).
function M.free_port()
  return require("spec.helpers.ports").free(1)[1]
end

--- The exit status of os.execute's results (5.1/LuaJIT: a wait status;
-- 5.2+: ok, "exit"/"signal", code).
function M.exit_status(a, _, code)
  if type(a) == "number" then return a > 255 and math.floor(a / 256) or a end
  if a == true then return 0 end
  return code
end

--- Whether this process runs under `make valgrind` or `make asan` (their
-- runtime preloaded): specs whose work is in processes of their own run it
-- once, in the plain run, and are pending here.
function M.preloaded()
  local p = os.getenv("LD_PRELOAD") or ""
  return p:find("vgpreload", 1, true) ~= nil or p:find("libasan", 1, true) ~= nil
end

--- How many times longer than in a plain run a real-time limit that is not
-- what a spec checks (a client's timeout on a call that must answer, a wait
-- for a process) may take here: the code under valgrind runs many times
-- slower, and under ASan a few, and more so on a busy machine. A limit a
-- spec checks (a timeout that must fire, a delay that must be waited) is
-- never scaled by it.
-- @treturn number 10 under valgrind, 3 under ASan, else 1
function M.slowdown()
  local p = os.getenv("LD_PRELOAD") or ""
  if p:find("vgpreload", 1, true) then return 10 end
  if p:find("libasan", 1, true) then return 3 end
  return 1
end

-- The machine's load: its one-minute load average over its processors, at
-- least 1 (read from /proc; 1 where it cannot be read).
local function load_factor()
  local f = io.open("/proc/loadavg", "r")
  local load = f and tonumber(f:read("*l"):match("^(%S+)"))
  if f then f:close() end
  local cpus = 0
  f = io.open("/proc/stat", "r")
  if f then
    for line in f:lines() do if line:match("^cpu%d") then cpus = cpus + 1 end end
    f:close()
  end
  if not load or cpus == 0 then return 1 end
  return math.max(1, load / cpus)
end

--- The bound of a wait for something outside the code under test (a server
-- to start, Sentinels to fail over, a process to end): `seconds` on an idle
-- machine, times `slowdown()`, times the machine's load (its load average
-- over its processors, when above 1), read when the wait begins. Such a wait
-- only fails a spec when what it waits for never comes, never because the
-- machine is busy; a limit a spec checks is never scaled by it.
-- @tparam number seconds the bound on an idle machine, in a plain run
-- @treturn number the bound here, now
function M.patience(seconds)
  return seconds * M.slowdown() * load_factor()
end

--- The `streamctl` command as `make build` installed it for this spec's
-- interpreter: the luarocks tree build/5.4 or build/jit, with only that tree
-- on the module paths, in an empty environment with `opts.home` as HOME (none
-- when it is nil), and SIGPIPE at its default action (this process ignores
-- it, as LuaSocket does when it loads, and children would inherit that; a
-- shell's children do not). Returns a table:
--   command   the shell word that runs it (the tree's bin/streamctl)
--   env       the `env -i ...` words in front of it
--   run(args[, extra[, stdin[, stdout]]]) -> status, stdout, stderr:
--             `streamctl <args>` (a shell fragment), `extra` variables
--             ("A=b C=d"), `stdin` fed in, standard output to the file
--             `stdout` (default: read back); its files in a temporary
--             directory removed afterwards
function M.installed(opts)
  opts = opts or {}
  local root = os.getenv("STREAMCTL_ROOT") or "."
  local jit = rawget(_G, "jit") ~= nil
  local v = jit and "5.1" or "5.4"
  local tree = root .. (jit and "/build/jit" or "/build/5.4")
  local script = tree .. "/lib/luarocks/rocks-" .. v .. "/streamctl-cli/scm-1/bin/streamctl"
  assert(M.read_file(script), "streamctl is not installed in " .. tree .. ": run make build")
  local q = M.quote
  local cmd = {
    tree = tree,
    -- luarocks' wrapper (build/jit's runs LuaJIT: rockspecs/luajit-config.lua)
    command = q(tree .. "/bin/streamctl"),
    env = table.concat({
      "env -i --default-signal=PIPE",
      "PATH=" .. q(tree .. "/bin:/usr/local/bin:/usr/bin:/bin"),
      opts.home and "HOME=" .. q(opts.home) or "",
      "LUA_PATH=" .. q(tree .. "/share/lua/" .. v .. "/?.lua;" .. tree .. "/share/lua/" .. v .. "/?/init.lua;;"),
      "LUA_CPATH=" .. q(tree .. "/lib/lua/" .. v .. "/?.so;;"),
    }, " "),
  }
  function cmd.run(args, extra, stdin, stdout)
    local dir = M.temp_dir()
    local input = ""
    if stdin then
      M.write_file(dir .. "/stdin", stdin)
      input = " <" .. q(dir .. "/stdin")
    end
    local status = M.exit_status(os.execute(cmd.env .. " " .. (extra or "") .. " " .. cmd.command .. " " .. args
      .. input .. " >" .. q(stdout or dir .. "/out") .. " 2>" .. q(dir .. "/err")))
    local o, e = M.read_file(dir .. "/out") or "", M.read_file(dir .. "/err")
    os.execute("rm -rf " .. q(dir))
    return status, o, e
  end
  return cmd
end

--- Starts spec/helpers/httpserver.lua; returns the child and its port. It serves until
-- `requests` are answered or this process is gone (never by a clock), or until stopped.
-- @param requests its bound (1000); root_route the behaviour "/" takes (e.g. "/json")
function M.httpserver(requests, root_route)
  require("spec.helpers.ports").refuse_in_unit_tier("an HTTP server")
  local root = os.getenv("STREAMCTL_ROOT") or "."
  local child = M.spawn(M.quote(M.interpreter()) .. " " .. M.quote(root .. "/spec/helpers/httpserver.lua")
    .. " " .. (requests or 1000) .. (root_route and (" " .. M.quote(root_route)) or ""))
  local port = tonumber(child.pipe:read("*l"))
  assert(port, "the test HTTP server did not start")
  return child, port
end

--- Whether `pid` is a live process (not a zombie waiting to be reaped).
function M.alive(pid)
  local stat = M.read_file("/proc/" .. pid .. "/stat")
  return stat ~= nil and not stat:match("^%d+ %b() [ZX]")
end

--- An object whose finalizer runs `fn`: when it is collected, at the latest
-- when the Lua state closes (busted ends with os.exit(code, true)). Keep it
-- where what it cleans up is kept. (5.1 tables have no __gc: LuaJIT's newproxy.)
function M.on_close(fn)
  if newproxy then -- luacheck: ignore 113
    local p = newproxy(true) -- luacheck: ignore 113
    getmetatable(p).__gc = fn
    return p
  end
  return setmetatable({}, { __gc = fn })
end

return M
