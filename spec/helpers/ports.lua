-- Ports for the servers a spec starts, so that spec files run side by side,
-- and two runs of the suite on one machine, never reach for the same one.
--
-- Each spec process claims a block of BLOCK ports of its own, below the
-- kernel's ephemeral range (/proc/sys/net/ipv4/ip_local_port_range): a port
-- from bind(0) is an ephemeral one, which another process's outgoing
-- connection may take between the moment it is found free and the moment
-- the server binds it; a port below that range is only ever taken by a
-- bind that names it. A claim is a directory (mkdir is atomic) holding its
-- owner's pid, under $TMPDIR/streamctl-spec-ports; a claim whose owner is
-- gone is taken over under a second directory of its own (two processes
-- never take the same one over). Hand-written: no Debian Lua package
-- allocates ports across processes.
--
-- Block b holds ports FIRST + b * BLOCK and the BLOCK after it. By default
-- every block below the ephemeral range may be claimed; SPEC_PORT_RANGE=LOW-HIGH
-- (`make test SPEC_PORT_RANGE=20000-24999`: a machine whose own services use
-- some ports) only the blocks wholly within it. A range that is not two ports
-- from 1024 up, below the ephemeral range, holding a whole block, is refused
-- naming the rule, before any port is taken.
-- STREAMCTL_SPEC_PORT_BLOCK=N makes a process start at block N (a failed
-- spec is replayed on the ports it had: tools/run-specs.sh names them).
-- STREAMCTL_PORTS_OWNER=PID claims for another process, which holds the
-- block while it lives (bench/run.sh: a shell that starts servers on them).
local M = {}

M.BLOCK = 50
M.FIRST = 10240

local claimed   -- the block this process holds: its number
local next_port -- the next port of the block to hand out

local process = require "spec.helpers.process"
local sh_ok, quote, read = process.run, process.quote, process.read_file

-- The first port of the kernel's ephemeral range (32768 when it cannot be read).
local function ephemeral_low()
  local s = read("/proc/sys/net/ipv4/ip_local_port_range")
  return tonumber(s and s:match("^%s*(%d+)")) or 32768
end

--- The blocks that may be claimed, the first and the last (SPEC_PORT_RANGE's,
-- else those below the ephemeral range). Raises on a range that breaks its rule.
function M.range()
  local text, low = os.getenv("SPEC_PORT_RANGE"), ephemeral_low()
  if text == nil or text == "" then return 0, math.floor((low - M.FIRST) / M.BLOCK) - 1 end
  local a, b = text:match("^(%d+)%-(%d+)$")
  a, b = tonumber(a), tonumber(b)
  local first = a and math.ceil((a - M.FIRST) / M.BLOCK)
  local last = b and math.floor((b + 1 - M.FIRST) / M.BLOCK) - 1
  if not (a and b and a >= 1024 and b < low and first <= last) then
    error(string.format("SPEC_PORT_RANGE=%s: must be LOW-HIGH, two ports from 1024 up and below the kernel's "
      .. "ephemeral range (%d), holding a whole block of %d ports (those from %d on, %d at a time)", text, low,
      M.BLOCK, M.FIRST, M.BLOCK), 0)
  end
  return first, last
end

--- How many blocks may be claimed (M.range).
function M.blocks()
  local first, last = M.range()
  return last - first + 1
end

-- This process's pid (the shell's parent: the interpreter that runs the spec).
local my_pid
local function pid()
  if not my_pid then
    my_pid = tonumber(os.getenv("STREAMCTL_PORTS_OWNER") or "")
  end
  if not my_pid then
    local p = io.popen("echo $PPID")
    my_pid = assert(tonumber(p:read("*l")), "ports: cannot read this process's pid")
    p:close()
  end
  return my_pid
end

local function root()
  local tmp = os.getenv("TMPDIR")
  return ((tmp and tmp ~= "") and tmp or "/tmp") .. "/streamctl-spec-ports"
end

local function alive(p)
  return p and sh_ok("kill -0 " .. p .. " 2>/dev/null")
end

-- Claims block `b`: true when this process holds it now.
local function try(b)
  local dir = root() .. "/" .. b
  if sh_ok("mkdir " .. quote(dir) .. " 2>/dev/null") then
    local f = assert(io.open(dir .. "/pid", "wb"))
    f:write(tostring(pid()))
    f:close()
    return true
  end
  local owner = tonumber(read(dir .. "/pid") or "")
  if owner == nil or alive(owner) then return false end -- (no pid yet: being claimed now)
  -- its owner is gone: taken over by whoever makes `b.takeover` first
  local guard = dir .. ".takeover"
  if not sh_ok("mkdir " .. quote(guard) .. " 2>/dev/null") then return false end
  local ok = false
  if tonumber(read(dir .. "/pid") or "") == owner then
    os.execute("rm -rf " .. quote(dir))
    ok = try(b)
  end
  os.execute("rmdir " .. quote(guard) .. " 2>/dev/null")
  return ok
end

-- Claims a block (from STREAMCTL_SPEC_PORT_BLOCK, else from one that this
-- process's pid picks, so that processes started together spread out).
local function claim()
  assert(sh_ok("mkdir -p " .. quote(root())), "ports: cannot create " .. root())
  local first, last = M.range()
  local n = last - first + 1
  assert(n > 0, "ports: no room below the ephemeral range")
  local start = tonumber(os.getenv("STREAMCTL_SPEC_PORT_BLOCK") or "")
  if claimed then start = claimed + 1 end
  start = ((start or pid()) - first) % n
  for i = 0, n - 1 do
    local b = first + (start + i) % n
    if b ~= claimed and try(b) then
      claimed, next_port = b, M.FIRST + b * M.BLOCK
      return
    end
  end
  error("ports: every one of the " .. n .. " blocks of " .. M.BLOCK .. " ports" .. (os.getenv("SPEC_PORT_RANGE")
    and " in SPEC_PORT_RANGE=" .. os.getenv("SPEC_PORT_RANGE") or "") .. " is held by a live process")
end

--- Raises when this spec runs in the unit tier (STREAMCTL_SPEC_TIER=unit:
-- tools/run-specs.sh -u), which holds the specs that start no server:
-- every helper that starts one (or asks for ports to) calls it first.
-- @tparam string what what the spec was starting
function M.refuse_in_unit_tier(what)
  if os.getenv("STREAMCTL_SPEC_TIER") == "unit" then
    error("this spec starts " .. what .. ": it is not a unit spec (drop its line '-- tier: unit')", 3)
  end
end

--- The directory of the claim this process holds (its owner removes it
-- when done with the block), or nil.
function M.claim_dir()
  return claimed and root() .. "/" .. claimed or nil
end

--- The block this process holds, as text for a message ("block 3: ports 10390-10439"), or nil.
function M.describe()
  if not claimed then return nil end
  local first = M.FIRST + claimed * M.BLOCK
  return string.format("block %d: ports %d-%d", claimed, first, first + M.BLOCK - 1)
end

--- `n` distinct ports on 127.0.0.1 of this process's block that nothing
-- listens on now (each bound to be sure, then closed).
function M.free(n)
  M.refuse_in_unit_tier("a server (it asks for ports)")
  local socket = require "socket"
  local out = {}
  while #out < n do
    if not claimed or next_port >= M.FIRST + (claimed + 1) * M.BLOCK then
      claim()
      io.stderr:write("spec ports: " .. M.describe() .. " (STREAMCTL_SPEC_PORT_BLOCK=" .. claimed
        .. " replays on them)\n")
    end
    local port = next_port
    next_port = next_port + 1
    local s = socket.bind("127.0.0.1", port)
    if s then
      s:close()
      out[#out + 1] = port
    end
  end
  return out
end

return M
