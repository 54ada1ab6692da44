-- tier: unit
-- sanitizers: none (the engine on a fake clock: pure Lua)
-- Workers that share one budget through a shared dict keep together under
-- its cap, on a simulated clock: four clients (four nginx workers) on one
-- stand-in ngx.shared dict (spec/helpers/fake_shdict.lua), each in a
-- coroutine that yields whenever it sleeps, a scheduler that runs whichever
-- wakes first, and a provider that counts as the emulator's sliding window
-- does (no more than the cap accepted within any second). The timing half
-- of spec/edge/31's "four nginx workers sharing a lua_shared_dict" row,
-- whose real nginx keeps the verdicts (every call done, none throttled).
local aliyun = require "streamctl.aliyun"
local fake_dict = require("spec.helpers.fake_shdict").new

local CAP = 30 -- ResumeLiveStream's published cap, per account

-- A world of `n` workers on one dict: a clock only sleeping moves, the
-- arrivals (virtual times) and how many the provider refused.
local function world(n, clock)
  local w = { clock = clock, arrivals = {}, throttled = 0, workers = {} }
  local accepted = {} -- the accepted arrivals' times, in order
  function w.transport(req)
    local t = w.clock.t
    w.arrivals[#w.arrivals + 1] = t
    local inside = 0
    for i = #accepted, 1, -1 do
      if accepted[i] <= t - 1 then break end
      inside = inside + 1
    end
    if inside >= CAP then
      w.throttled = w.throttled + 1
      return { status = 400, headers = {}, body = '{"RequestId":"t","HostId":"h","Code":"Throttling.User",'
        .. '"Message":"Request was denied due to user flow control."}' }
    end
    accepted[#accepted + 1] = t
    return { status = 200, headers = {}, body = '{"RequestId":"' .. req.url:sub(-8) .. '"}' }
  end
  for i = 1, n do
    w.workers[i] = assert(aliyun.new {
      access_key_id = "AK", access_key_secret = "sk", account_id = "1234567890", shared_dict = "streamctl",
      clock = function() return 1700000000 + w.clock.t end, monotonic = function() return w.clock.t end,
      sleep = function(s) coroutine.yield(s) end, transport = w.transport,
      retry = { random = function() return 1 end },
    })
  end
  return w
end

-- Runs `jobs[i](client)` in worker i's coroutine until all end; returns their results.
local function run(w, jobs)
  local due, results = {}, {}
  for i, job in ipairs(jobs) do
    due[i] = { at = 0, co = coroutine.create(function() return job(w.workers[i]) end) }
  end
  for _ = 1, 1e6 do
    local next_i
    for i, d in pairs(due) do
      if not next_i or d.at < due[next_i].at then next_i = i end
    end
    if not next_i then return results end
    local d = due[next_i]
    w.clock.t = math.max(w.clock.t, d.at)
    local ok, v = coroutine.resume(d.co)
    assert(ok, v)
    if coroutine.status(d.co) == "dead" then
      results[next_i], due[next_i] = v, nil
    else
      d.at = w.clock.t + v
    end
  end
  error("the workers did not finish")
end

describe("workers sharing a lua_shared_dict", function()
  local saved
  before_each(function()
    saved = rawget(_G, "ngx")
  end)
  after_each(function() rawset(_G, "ngx", saved) end)

  it("four workers, 40 calls each: together under the cap in every second, zero throttled", function()
    local clock = { t = 0 }
    rawset(_G, "ngx", { get_phase = function() return "init" end, shared = { streamctl = fake_dict(clock) } })
    local w = world(4, clock)
    local jobs = {}
    for i = 1, 4 do
      jobs[i] = function(client)
        local names = {}
        for k = 1, 40 do names[k] = "w" .. i .. "-" .. k end
        return assert(client:resume_live_streams { domain_name = "b.example", app_name = "live",
                                                   stream_names = names })
      end
    end
    local reports = run(w, jobs)
    -- spec/edge/31's figure, the whole run's rate (every arrival, refused or not): at most the cap
    local a = w.arrivals
    local rate = (#a - 1) / (a[#a] - a[1])
    assert.is_true(rate <= CAP, "together they sent " .. rate .. " per second against a cap of " .. CAP)
    -- and in no second more than the cap
    for i = CAP + 1, #a do
      assert.is_true(a[i] - a[i - CAP] > 1, CAP + 1 .. " arrivals within a second, the last at " .. a[i])
    end
    for i = 1, 4 do assert.same({ 40, 40 }, { reports[i].total, reports[i].succeeded }, "worker " .. i) end
    assert.same({ 160, 0 }, { #a, w.throttled })
  end)
end)
