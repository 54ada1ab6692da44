--- The simulator's world: a virtual clock, a deterministic random source and
-- processes that run as coroutines.
--
-- Nothing here reads a real clock or a real random source: a run is a pure
-- function of its seed. A process is a coroutine; whenever it waits
-- (`sleep`, a transport's `poll`, a slow store's round trip) it yields to the
-- scheduler, which advances the clock to the earliest thing due and resumes
-- whatever is due then, ties in the order they were scheduled.
--
--   local w = world.new(seed)
--   w:spawn("p1", function() ... w:sleep(0.5) ... end)
--   w:at(2.0, function() ... end)          -- an event (a fault, a delivery)
--   w:stall(p, 0.5)                        -- p runs nothing for 0.5 s (a process descheduled)
--   local ok, why = w:run(limit)           -- until every process ended, or `limit`
-- @module sim.world

local coroutine, error, tostring, setmetatable, ipairs = coroutine, error, tostring, setmetatable, ipairs
local floor = math.floor

local M = {}

--- How many million instructions a process may run without waiting.
M.SPIN_LIMIT = 50

-- Whether debug.sethook(thread, ...) hooks that thread alone (not LuaJIT).
local HOOKS_PER_THREAD = rawget(_G, "jit") == nil

-- ---- Randomness: the Park-Miller "minimal standard" generator with its
-- revised multiplier 48271, exact in doubles on Lua 5.4 and LuaJIT alike (48271 * (2^31 - 2) < 2^53), so a seed draws the same numbers
-- everywhere. Hand-written because math.random differs between Lua 5.4
-- (xoshiro) and LuaJIT and cannot be given a stream per use.
local MOD, MUL = 2147483647, 48271

local Rng = {}
Rng.__index = Rng

--- A generator for `seed` (any integer; 0 and multiples of the modulus are moved off).
function M.rng(seed)
  local s = floor(tonumber(seed) or 1) % MOD
  if s == 0 then s = 1 end
  local r = setmetatable({ s = s }, Rng)
  for _ = 1, 4 do r:next() end -- (small seeds start far apart)
  return r
end

--- The next raw value, 1..2^31-2.
function Rng:next()
  self.s = (self.s * MUL) % MOD
  return self.s
end

--- A number in [0, 1).
function Rng:float()
  return (self:next() - 1) / (MOD - 1)
end

--- An integer in [a, b].
function Rng:int(a, b)
  return a + floor(self:float() * (b - a + 1))
end

--- true with probability p.
function Rng:chance(p)
  return self:float() < p
end

--- A number in [a, b).
function Rng:between(a, b)
  return a + self:float() * (b - a)
end

--- One element of an array.
function Rng:pick(list)
  return list[self:int(1, #list)]
end

--- A child generator (its own stream, drawn from this one).
function Rng:fork()
  return M.rng(self:next())
end

-- ---- The world

local World = {}
World.__index = World

--- A world at virtual time 0.
function M.new()
  return setmetatable({
    t = 0,
    seq = 0,        -- scheduling order, for ties
    queue = {},     -- binary heap of { at, seq, fn | co }
    procs = {},     -- name -> { co, name, done, err }
    order = {},     -- process names in spawn order
    current = nil,  -- the process running now
  }, World)
end

--- The virtual time, in seconds.
function World:now()
  return self.t
end

local function less(a, b)
  if a.at ~= b.at then return a.at < b.at end
  return a.seq < b.seq
end

local function push(self, item)
  self.seq = self.seq + 1
  item.seq = self.seq
  local q = self.queue
  q[#q + 1] = item
  local i = #q
  while i > 1 do
    local p = floor(i / 2)
    if less(q[i], q[p]) then q[i], q[p] = q[p], q[i]; i = p else break end
  end
end

local function pop(self)
  local q = self.queue
  local top = q[1]
  if not top then return nil end
  q[1] = q[#q]
  q[#q] = nil
  local i, n = 1, #q
  while true do
    local l, r, m = 2 * i, 2 * i + 1, i
    if l <= n and less(q[l], q[m]) then m = l end
    if r <= n and less(q[r], q[m]) then m = r end
    if m == i then break end
    q[i], q[m] = q[m], q[i]
    i = m
  end
  return top
end

--- Calls `fn()` at virtual time `at` (not in any process: it must not wait).
function World:at(at, fn)
  if at < self.t then at = self.t end
  push(self, { at = at, fn = fn })
end

--- Starts a process: `fn` runs as a coroutine from now.
function World:spawn(name, fn)
  if self.procs[name] then error("sim: a process named " .. name .. " exists") end
  local p = { name = name, co = coroutine.create(fn), token = {}, spins = 0 }
  -- A process that runs on without ever waiting hangs the run in real time
  -- while its virtual clock stands still: it is stopped with an error
  -- (invariant 6) after M.SPIN_LIMIT million instructions in one go. Lua 5.4
  -- only: LuaJIT's hooks are not per coroutine (one set here would outlive
  -- the run and fire in whatever runs next) and miss compiled loops.
  if HOOKS_PER_THREAD then
    debug.sethook(p.co, function()
      p.spins = p.spins + 1
      if p.spins > M.SPIN_LIMIT then
        p.spins = 0
        error("sim: process " .. name .. " ran " .. M.SPIN_LIMIT .. " million instructions without waiting "
          .. "(a busy loop: the clock stands still at " .. tostring(self.t) .. ")")
      end
    end, "", 1000000)
  end
  self.procs[name] = p
  self.order[#self.order + 1] = name
  push(self, { at = self.t, proc = p, token = p.token })
  return p
end

-- Blocks the running process until an entry carrying its token is due.
local function block(self, p, seconds, wakeable)
  local token = {}
  p.token, p.wakeable, p.woken = token, wakeable, false
  push(self, { at = self.t + ((seconds and seconds >= 0) and seconds or 0), proc = p, token = token })
  coroutine.yield()
end

--- Inside a process: waits `seconds` of virtual time.
function World:sleep(seconds)
  local p = self.current
  if not p then error("sim: sleep outside a process", 2) end
  block(self, p, seconds, false)
end

--- Inside a process: waits until `wake(p)` is called for it or `seconds`
-- pass, whichever is first. Returns true when woken.
function World:wait(seconds)
  local p = self.current
  if not p then error("sim: wait outside a process", 2) end
  block(self, p, seconds, true)
  return p.woken
end

--- Wakes a process blocked in `wait` (at the current time); a process
-- that is not waiting is left alone.
function World:wake(p)
  if p.token and p.wakeable and not p.woken then
    p.woken = true
    push(self, { at = self.t, proc = p, token = p.token })
  end
end

--- Stalls process `p` for `seconds` from now (descheduled, stopped, in a
-- long garbage collection): nothing of it runs before then; what it waits
-- for (an answer, a wake, its sleep's end) is handed to it when it runs
-- again, late. Its clock goes on meanwhile.
function World:stall(p, seconds)
  local till = self.t + seconds
  if not p.stalled_until or p.stalled_until < till then p.stalled_until = till end
end

--- The process running now (nil outside any).
function World:process()
  return self.current
end

--- Runs until every process has ended or the clock passes `limit`.
-- @return true; or false and why (a process raised, or the limit was reached)
function World:run(limit)
  while true do
    local item = pop(self)
    if not item then break end
    if item.at > limit then
      push(self, item)
      return false, "virtual time limit reached (" .. tostring(limit) .. " s)"
    end
    self.t = item.at
    if item.fn then
      item.fn()
    else
      local p = item.proc
      -- (an entry whose token is not the process's current one is stale: the
      -- timeout of a wait that was woken first, or the other way round)
      local due = not p.done and item.token == p.token and coroutine.status(p.co) == "suspended"
      if due and p.stalled_until and p.stalled_until > self.t then
        -- (stalled: it runs, and finds what came meanwhile, when the stall ends)
        push(self, { at = p.stalled_until, proc = p, token = item.token })
      elseif due then
        p.token, p.spins = nil, 0
        self.current = p
        local ok, err = coroutine.resume(p.co)
        self.current = nil
        if not ok then
          p.done, p.err = true, err
          return false, "process " .. p.name .. " raised: " .. tostring(err)
            .. "\n" .. debug.traceback(p.co)
        end
        if coroutine.status(p.co) == "dead" then p.done = true end
      end
    end
    local all_done = true
    for _, name in ipairs(self.order) do
      if not self.procs[name].done then all_done = false break end
    end
    if all_done and #self.order > 0 then return true end
  end
  for _, name in ipairs(self.order) do
    if not self.procs[name].done then
      return false, "process " .. name .. " is blocked with nothing scheduled to wake it"
    end
  end
  return true
end

--- After the processes ended: runs what is still scheduled (answers and
-- late deliveries on their way) until nothing is, or the clock passes `limit`.
function World:drain(limit)
  while true do
    local item = pop(self)
    if not item then return true end
    if item.at > limit then return false, "events still scheduled past " .. tostring(limit) .. " s" end
    self.t = item.at
    if item.fn then item.fn() end
  end
end

return M
