--- What the simulator replaces in the library before loading it, so that a
-- run is a function of its seed and the record knows which job sent what.
-- Required first (spec/sim/init.lua does), before any streamctl module.
--
-- * streamctl.core.random_hex and random_id: OpenSSL's randomness (backoff
--   jitter, the Redis store's heartbeat name and spread, trace ids) drawn
--   from the run's generator;
-- * streamctl.base.log.warn: the library's warnings go into the run's record
--   (a promise the code cannot keep must be said: the checks read them);
-- * streamctl.engine.runner.new: each engine's `sign` tags the request with its
--   attempt's job and role, and `run` tags each job with the workload
--   operation that started it: the record then ties every request the
--   model received to the operation and the report it belongs to. Neither
--   changes what the engine does.
--
-- Outside a run (`M.current` unset: a spec file after spec/25 in one busted
-- process) each replacement behaves as the original.
-- @module sim.patch

local core = require "streamctl.core"
local log = require "streamctl.base.log"
local runner = require "streamctl.engine.runner"

local format, floor = string.format, math.floor

local M = { current = nil } -- the running simulation

local real_random_hex = core.random_hex
core.random_hex = function(n)
  local sim = M.current
  if not sim then return real_random_hex(n) end
  local out = {}
  for i = 1, n do out[i] = format("%02x", floor(sim.lib_rng:float() * 256)) end
  return table.concat(out)
end

-- (a trace's and a span's ids, never all zeros, as the original's)
local real_random_id = core.random_id
local function sim_id(n)
  local id
  repeat id = core.random_hex(n) until id:find("[^0]")
  return id
end
core.random_id = function(n, m)
  if not M.current then return real_random_id(n, m) end
  if m == nil then return sim_id(n) end
  return sim_id(n), sim_id(m)
end

log.warn = function(msg)
  local sim = M.current
  if not sim then io.stderr:write(msg, "\n") return end
  local p = sim.world:process()
  sim.logs[#sim.logs + 1] = { t = sim.world:now(), process = p and p.name, message = msg }
end

local real_new = runner.new
runner.new = function(iface)
  -- (an engine made outside a simulation, by a spec that runs after one in
  -- the same process, is the library's own, untouched)
  if not M.current then return real_new(iface) end
  local sign = iface.sign
  iface.sign = function(attempt)
    local req, err = sign(attempt)
    if req then req.sim_job, req.sim_role = attempt.job, attempt.role end
    return req, err
  end
  local engine = real_new(iface)
  local run = engine.run
  engine.run = function(self, jobs, opts)
    local sim = M.current
    local p = sim and sim.world:process()
    local op = p and p.sim_op
    local function mark(job)
      job.sim_op = op
      if op then op.jobs[#op.jobs + 1] = job end
      return job
    end
    for _, job in ipairs(jobs) do mark(job) end
    local source = opts and opts.source
    if not source then return run(self, jobs, opts) end
    -- (a batch's jobs made as the run has room for them: marked as they come;
    -- what the run writes into its options, `stopped`, handed back)
    local o = {}
    for k, v in pairs(opts) do o[k] = v end
    o.source = function()
      local job = source()
      return job and mark(job)
    end
    local out = run(self, jobs, o)
    for k, v in pairs(o) do
      if k ~= "source" then opts[k] = v end
    end
    return out
  end
  return engine
end

return M
