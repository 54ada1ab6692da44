--- The simulator's network: a transport per process (the client's
-- `transport = { start, poll, sleep }` interface) that carries requests to
-- the provider model and answers back through the fault schedule.
--
-- Each request draws its fate from the schedule's network settings: a
-- transit time (base + jitter, and in some schedules a heavier tail: now and
-- then up to `tail` more) each way, and with the schedule's odds one
-- of: refused before it was sent; applied, then its kept-alive connection
-- dropped without a byte of an answer (`drop_after_apply`: what the
-- transport does then is the real transports' rule,
-- streamctl.transport.common.may_send_again: a failure with `sent = true`,
-- never a second copy; libcurl and the cosocket transport sent one, on a
-- fresh connection and without a slot, until issue 66); delivered after the client's timeout (the
-- delayed forbid); answered never; answered after the timeout; the
-- connection reset after it was sent (applied or not); and at the service a
-- 5xx before or after applying, a throttle (with or without Retry-After;
-- never after applying: a throttled request is one the service refused), or
-- an unreadable answer. The client sees what a real transport reports:
-- a response, or `{ code, message, sent }` (Timeout after `timeout`
-- seconds, NetworkError).
-- @module sim.net

local world_mod = require "sim.world"

local transports = require "streamctl.transport.common"

local type, ipairs, tonumber = type, ipairs, tonumber

local M = {}

--- How many polls in a row may find nothing without waiting, at one
-- virtual time, before the process counts as in a busy loop (invariant 6).
M.IDLE_POLLS = 100000

-- The faults a request can meet, with their kinds for the trace.
M.KINDS = { "refused", "drop_after_apply", "late_delivery", "no_answer", "late_answer", "reset_after", "reset_lost",
            "5xx_before", "5xx_after", "throttle", "malformed" }

--- A transport for process `proc` of simulation `sim` (world, model, rng,
-- net settings, trace).
function M.transport(sim, proc)
  local world, model, net = sim.world, sim.model, sim.net
  local rng = sim.net_rng
  local done = {}         -- completions ready for this process
  local pending = {}      -- key -> true while the client waits for it

  local sent_by_key = {}

  local function complete(key, res, err)
    if not pending[key] then return end -- (timed out already: a late answer is dropped)
    pending[key] = nil
    local send = sent_by_key[key]
    sent_by_key[key] = nil
    if send then
      send.answered_at = world:now()
      send.retry_after = res and res.headers and tonumber(res.headers["x-acs-retry-after"])
    end
    done[#done + 1] = { key = key, res = res, err = err }
    world:wake(proc)
  end

  -- (this process's own distance where the schedule gives each one; a
  -- heavier tail where it has one: now and then, up to `tail` more)
  local base = net.bases and net.bases[proc.name] or net.base
  local function transit()
    local t = base + rng:float() * net.jitter
    if net.tail and rng:chance(net.tail_odds) then t = t + rng:float() * net.tail end
    return t
  end

  -- Which fault, if any, this request meets (one at most).
  local function draw()
    if not net.faulty or not rng:chance(net.fault_rate) then return nil end
    return rng:pick(net.kinds)
  end

  local t = {}

  -- A throttle that outlasts ZEGO's Sequence window (`net.sticky`, some ZEGO
  -- schedules): a call that meets a throttle is, at the odds given, throttled
  -- again at every attempt for 10 to 15 s, as a stranger emptying the budget
  -- does, while other calls go through. Drawn by a stream of its own, so that
  -- the rest of a seed's schedule stays as it was.
  local sticky = net.sticky
  local sticky_rng = sticky and world_mod.rng(sticky.seed + (tonumber(proc.name:match("%d+")) or 0))
  local function stuck(fault, req, now)
    local job = req.sim_job
    if not (sticky and job and req.sim_role == "call") then return fault end
    if job.sim_throttled_until and now < job.sim_throttled_until then return "throttle" end
    if fault == "throttle" and not job.sim_throttled_until and sticky_rng:chance(sticky.odds) then
      job.sim_throttled_until = now + sticky_rng:between(10, 15)
    end
    return fault
  end

  function t.start(key, req)
    local now = world:now()
    req.sim_sent_at, req.sim_process, req.sim_key = now, proc.name, key
    local fault = stuck(draw(), req, now)
    local send = { t = now, process = proc.name, req = req, fault = fault, job = req.sim_job, role = req.sim_role }
    sim.sends[#sim.sends + 1] = send
    if req.sim_job then
      local list = req.sim_job.sim_sends or {}
      req.sim_job.sim_sends = list
      list[#list + 1] = send
    end
    if fault == "refused" then
      world:at(now + 0.001, function()
        done[#done + 1] = { key = key, err = { code = "NetworkError", message = "connection refused (simulated)",
                                               sent = false } }
        world:wake(proc)
      end)
      return true
    end
    pending[key] = true
    sent_by_key[key] = send
    world:at(now + net.timeout, function()
      complete(key, nil, { code = "Timeout", message = "timed out (simulated)", sent = true })
    end)
    local there = transit()
    if fault == "late_delivery" then there = net.timeout + rng:float() * net.max_late end
    local service_fault
    if fault == "5xx_before" then service_fault = { kind = "5xx" }
    elseif fault == "5xx_after" then service_fault = { kind = "5xx", after_apply = true }
    elseif fault == "throttle" then
      service_fault = { kind = "throttle", retry_after_ms = rng:chance(0.5) and rng:int(100, 2000) or nil }
    elseif fault == "malformed" then service_fault = { kind = "malformed", after_apply = true }
    end
    local function deliver(copy, fault_here)
      req.sim_copy = copy
      local res, arrival = model:handle(req, fault_here)
      arrival.job, arrival.role = req.sim_job, req.sim_role
      send.arrivals = send.arrivals or {}
      send.arrivals[#send.arrivals + 1] = arrival
      return res
    end
    world:at(now + there, function()
      if fault == "drop_after_apply" or fault == "duplicate" then -- ("duplicate": its name in pinned schedules)
        -- applied; its kept-alive connection then closes without a byte of
        -- an answer, and the request had left: the transport's rule says
        -- whether it goes again (a second copy on a fresh connection)
        deliver(1, nil)
        world:at(world:now() + transit(), function()
          if not transports.may_send_again(true) then
            return complete(key, nil, { code = "NetworkError", sent = true,
                                        message = "the reused connection closed after the request had left (simulated)" })
          end
          local res = deliver(2, nil)
          world:at(world:now() + transit(), function() complete(key, res) end)
        end)
        return
      end
      if fault == "reset_lost" then
        -- reset on the way: never arrives
        world:at(world:now() + 0.001, function()
          complete(key, nil, { code = "NetworkError", message = "connection reset (simulated)", sent = true })
        end)
        return
      end
      local res = deliver(1, service_fault)
      if fault == "no_answer" then return end
      local back = transit()
      if fault == "late_answer" then back = net.timeout + rng:float() * net.max_late end
      world:at(world:now() + back, function()
        if fault == "reset_after" then
          complete(key, nil, { code = "NetworkError", message = "connection reset (simulated)", sent = true })
        else
          complete(key, res)
        end
      end)
    end)
    return true
  end

  -- (polls that found nothing and waited for nothing at one virtual time:
  -- a process that keeps asking so is in a busy loop, which the world's
  -- instruction hook cannot stop under LuaJIT)
  local idle, idle_at = 0, nil

  function t.poll(timeout)
    if #done == 0 and timeout > 0 then world:wait(timeout) end
    if #done == 0 and timeout <= 0 then
      if idle_at ~= world:now() then idle, idle_at = 0, world:now() end
      idle = idle + 1
      if idle > M.IDLE_POLLS then
        error("sim: process " .. proc.name .. " polled its transport " .. M.IDLE_POLLS .. " times at "
          .. world:now() .. " without waiting (a busy loop: the clock stands still)")
      end
    end
    local out = done
    done = {}
    return out
  end

  function t.sleep(seconds)
    world:sleep(seconds)
  end

  return t
end

--- The fault kinds a schedule may draw, the list given or all of them.
function M.kinds(list)
  if type(list) == "table" then return list end
  local out = {}
  for i, k in ipairs(M.KINDS) do out[i] = k end
  return out
end

return M
