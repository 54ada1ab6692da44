-- tier: unit
-- sanitizers: none (the stores on a virtual clock and the simulation's Redis: pure Lua)
-- Time as the shared stores promise it, on a virtual clock (issue 67: the
-- specs against redis-server, nginx and the emulator assert verdicts only;
-- what they claimed of time is claimed here, where a machine's speed cannot
-- decide it). The Redis store runs its own scripts on the simulation's
-- Redis (spec/sim/redis.lua: only the wire is simulated), the shared-dict
-- store on a stand-in dict, processes and nginx workers as the
-- simulation's processes (spec/sim/world.lua):
--   * processes on one Redis budget never over the cap (spec/stores/62);
--   * Redis killed and restarted empty mid-run: each process at its share
--     meanwhile, the shared budget after (spec/stores/62);
--   * Redis asleep 3 s: rate / the processes seen (spec/stores/65-sleep);
--   * a schedule an hour ahead: nobody sleeps on it (spec/stores/65-memory);
--   * a Redis that never answers: one timeout, then the fallback at once
--     (spec/stores/61), its slots 1/rate apart across the retries' timeouts,
--     a Sequence from the clock at the call's end (spec/stores/65-sleep);
--   * a caller's margin held MARGIN_HOLD, then let go (spec/stores/61);
--   * nginx workers on one shared dict, stalled in turn, the budget evicted:
--     never over the cap, the loss waited out (spec/stores/66);
--   * the Sentinels asked again every sentinel_check_ms (spec/stores/67).
local root = os.getenv("STREAMCTL_ROOT") or "."
package.path = root .. "/spec/?.lua;" .. package.path
local world_mod = require "sim.world"
local redis_model = require "sim.redis"
local aliyun = require "streamctl.aliyun"
local core = require "streamctl.core"
local R = require "streamctl.store.redis"
local redisconn = require "streamctl.store.redisconn"
local shdict = require "streamctl.store.shdict"
local ratelimit = require "streamctl.engine.ratelimit"
local fake_shdict = require "spec.helpers.fake_shdict"
local checks = require "spec.helpers.checks"

local NOW = 1700000000
local UID = "1234567890123456"
local CAP = 30 -- ResumeLiveStream per account
local RATE = CAP / 1.05 -- what a client on a shared store paces at (RATE_MARGIN)
local OK = { status = 200, headers = {}, body = '{"RequestId":"ok"}' }
local BUDGET = "aliyun:" .. UID .. ":ResumeLiveStream"

-- Runs fn() with what the library says on standard error kept, per process,
-- in `lines`, and OpenSSL's randomness drawn from a fixed generator (the
-- Redis store's heartbeat names and spread: a run replays exactly).
local function quietly(w, lines, fn)
  local stderr, hex = io.stderr, core.random_hex
  local rng = world_mod.rng(67)
  rawset(io, "stderr", { write = function(self, ...)
    local p = w:process()
    local name = p and p.name or "-"
    lines[name] = (lines[name] or "") .. table.concat({ ... })
    return self
  end })
  core.random_hex = function(n)
    local out = {}
    for i = 1, n do out[i] = string.format("%02x", rng:int(0, 255)) end
    return table.concat(out)
  end
  local ok, err = pcall(fn)
  rawset(io, "stderr", stderr)
  core.random_hex = hex
  assert(ok, err)
end

-- `o.procs` processes, each an Aliyun client on one account resuming
-- `o.count` streams of its own, its store from `o.store(rec, i)` (client
-- options); `o.events`: { { t, fn(rec) }, ... }. rec.redis is a simulated
-- Redis. Returns rec: the sends ({ t, p }, in order), when each process
-- ended, its report, what each said.
local function fleet(o)
  local w = world_mod.new()
  local rec = { w = w, sent = {}, ended = {}, reports = {}, lines = {}, procs = {} }
  rec.redis = redis_model.new(w)
  for i = 1, o.procs do
    rec.procs[i] = w:spawn("p" .. i, function()
      local opts = { access_key_id = "LTAIfleet" .. i, access_key_secret = "s", account_id = UID,
        clock = function() return NOW + w:now() end, monotonic = function() return w:now() end,
        sleep = function(s) w:sleep(s) end,
        transport = function()
          rec.sent[#rec.sent + 1] = { t = w:now(), p = i }
          return OK
        end }
      for k, v in pairs(o.store(rec, i)) do opts[k] = v end
      local c = assert(aliyun.new(opts))
      local names = {}
      for k = 1, o.count do names[k] = "p" .. i .. "-" .. k end
      rec.reports[i] = c:resume_live_streams { domain_name = "push.example.com", app_name = "live",
                                               stream_names = names }
      rec.ended[i] = w:now()
    end)
  end
  for _, e in ipairs(o.events or {}) do w:at(e[1], function() e[2](rec) end) end
  quietly(w, rec.lines, function() assert(w:run(3600)) end)
  return rec
end

local function on_redis(rec) return { redis = rec.redis:connect() } end

-- The sends at from <= t < to.
local function between(sent, from, to) return checks.between(sent, "t", from, to) end

-- Requests per second over a list of sends, and the most sends within any 1 s.
local function rate_of(sent) return checks.rate_of(sent, "t") end
local function densest(sent) return checks.densest_second(sent, "t") end

local function all_done(rec, n)
  for i, r in ipairs(rec.reports) do
    assert.same({ n, 0, 0 }, { r.succeeded, r.failed, r.unknown }, "process " .. i .. " said:\n"
      .. tostring(rec.lines["p" .. i]))
  end
end

-- A connection to `server` (simulated) whose config is `url`'s: its eval
-- crosses the simulated wire, with the simulation's timeout (200 ms).
local function sim_conn(server, url)
  local conn = assert(redisconn.connect(url))
  conn.eval = server:connect().eval
  return conn
end

describe("one Redis budget across processes, in virtual time", function()
  it("five processes, 300 streams: together never over the cap in any second, nor on average", function()
    -- (spec/stores/62's three processes and two nginx servers: zero throttled, under the cap)
    local rec = fleet { procs = 5, count = 60, store = on_redis }
    all_done(rec, 60)
    assert.equal(300, #rec.sent)
    assert.is_true(densest(rec.sent) <= CAP, densest(rec.sent) .. " in one second")
    assert.is_true(rate_of(rec.sent) <= CAP, "together faster than the cap: " .. rate_of(rec.sent))
  end)

  it("Redis killed mid-run and restarted empty: each process at its share meanwhile, the shared budget after",
    function()
      -- (spec/stores/62's outage: about 2 s on the shared budget, 3 s without Redis, then with it again)
      local killed, back = 2, 5
      local rec = fleet { procs = 3, count = 100, store = on_redis, events = {
        { killed, function(r) r.redis.gone = true end },
        { back, function(r) r.redis:restart(false) r.redis.gone = false end },
      } }
      all_done(rec, 100)
      -- while Redis was down (after the slots it had handed out): each at rate / nodes (4), together under it
      local down = rate_of(between(rec.sent, killed + 1, back))
      assert.is_true(down > 0 and down <= 3 * CAP / 1.05 / 4 * 1.1, "without Redis, together " .. down .. " per second")
      -- back (every process has tried Redis again, and kept to its own budget until the others must be back)
      local after = between(rec.sent, back + 4.5, math.huge)
      assert.is_true(#after > 10 and rate_of(after) <= CAP, "back on Redis: " .. rate_of(after) .. " per second")
      assert.is_true(densest(rec.sent) <= CAP, densest(rec.sent) .. " in one second")
      for i, t in ipairs(rec.ended) do assert.is_true(t < 60, "process " .. i .. " ended at " .. t) end
    end)

  it("Redis asleep 3 s under ten processes: each at rate / 10 (the processes seen, though nodes is 4)", function()
    -- (spec/stores/65-redis-faults-sleep's DEBUG SLEEP 3: what Redis is asked meanwhile times out)
    -- (30 streams each: 300 at the cap take 10 s, past the sleep's end)
    local at = 6
    local rec = fleet { procs = 10, count = 30, store = on_redis, events = {
      { at, function(r) r.redis.latency = 3 end },
      { at + 3, function(r) r.redis.latency = 0.0005 end },
    } }
    all_done(rec, 30)
    assert.is_true(rec.sent[#rec.sent].t > at + 3, "the run ended before Redis woke")
    local asleep = between(rec.sent, at + 1, at + 3)
    assert.is_true(#asleep > 0 and rate_of(asleep) <= RATE * 1.1,
      "while Redis slept, together " .. rate_of(asleep) .. " per second")
    assert.is_true(densest(rec.sent) <= CAP, densest(rec.sent) .. " in one second")
  end)

  it("a schedule an hour ahead mid-run: nobody sleeps on it", function()
    -- (spec/stores/65-redis-faults-memory: each process's time within the run's own, the first use's
    -- pause and the loss's, and the half minute that spec gave a loaded machine)
    local at = 6
    local rec = fleet { procs = 10, count = 50, store = on_redis, events = {
      { at, function(r)
        local hash, ahead = "streamctl:{aliyun:" .. UID .. "}:rl", string.format("%.0f", r.redis:time_us() + 3600e6)
        assert.is_string(r.redis:command("HMGET", hash, "tat:ResumeLiveStream")[1]) -- (the field was there)
        r.redis:command("HSET", hash, "tat:ResumeLiveStream", ahead)
      end },
    } }
    all_done(rec, 50)
    local pause = R.ratelimit_store(rec.redis:connect()):loss_pause(CAP)
    local expected = 10 * 50 / RATE + 2 * pause
    for i, t in ipairs(rec.ended) do assert.is_true(t < expected + 30, "process " .. i .. " took " .. t .. " s") end
    assert.is_true(densest(rec.sent) <= CAP, densest(rec.sent) .. " in one second")
  end)
end)

describe("a Redis that never answers, in virtual time", function()
  -- One process, its store on a simulated Redis whose every answer comes
  -- after the connection's timeout (200 ms); `fn(w, conn, said)`.
  local function silent(url, fn)
    local w = world_mod.new()
    local server = redis_model.new(w)
    server.latency = 1e6
    local lines, said = {}, {}
    w:spawn("p", function() fn(w, sim_conn(server, url), function(m) said[#said + 1] = m end) end)
    quietly(w, lines, function() assert(w:run(3600)) end)
    return said
  end

  it("costs one timeout, then the fallback answers at once (spec/stores/61)", function()
    local said = silent("redis://127.0.0.1:6379/0?timeout_ms=200", function(w, conn, log)
      local rl = ratelimit.new { clock = function() return w:now() end,
        store = R.ratelimit_store(conn, { log = log, monotonic = function() return w:now() end }) }
      assert.equal(0, rl:reserve("k", 100))
      assert.equal(0.2, w:now()) -- (one timeout)
      for _ = 1, 20 do rl:reserve("k", 100) end
      assert.equal(0.2, w:now()) -- (Redis not asked again within retry_ms: no time passed)
    end)
    assert.equal(1, #said)
    assert.truthy(said[1]:find("failed (timeout (simulated))", 1, true), said[1])
  end)

  it("the fallback's slots stay 1/rate apart across the retries' timeouts (spec/stores/65-sleep)", function()
    local sends = {}
    local said = silent("redis://127.0.0.1:6379/0?timeout_ms=200&nodes=1", function(w, conn, log)
      local rl = R.ratelimit_store(conn, { log = log, retry_ms = 300, monotonic = function() return w:now() end })
      -- as the engine does: ask when the slot is within reach, send at its time
      while #sends < 10 and w:now() < 10 do
        local d, committed = rl:reserve("aliyun:silent:ResumeLiveStream", 4, 1, 0.5)
        if committed then
          w:sleep(d)
          sends[#sends + 1] = w:now()
        else
          w:sleep(math.max(d - 0.5, 0.01))
        end
      end
    end)
    assert.equal(10, #sends)
    for i = 2, #sends do
      -- (4 per second, nodes 1: 0.25 s apart; a retry's 200 ms counted twice made 0.05)
      assert.is_true(sends[i] - sends[i - 1] >= 0.25 - 1e-9,
        string.format("sends %d and %d only %.3f s apart", i - 1, i, sends[i] - sends[i - 1]))
    end
    assert.equal(1, #said)
  end)

  it("a Sequence taken after a timed-out call is this machine's clock at its end (spec/stores/65-sleep)", function()
    local v, candidate = nil, 1700000000000
    silent("redis://127.0.0.1:6379/0?timeout_ms=200", function(w, conn, log)
      local seq = R.sequence_store(conn, "zego:1234567890:", { log = log, monotonic = function() return w:now() end })
      v = seq:advance_all({ "s1", "s2" }, candidate)
    end)
    assert.equal(candidate + 200, v)
  end)
end)

describe("a caller's margin held in Redis, in virtual time", function()
  it("spaces the schedule at the largest margin asked in the last MARGIN_HOLD, then at the caller's own (spec/stores/61)",
    function()
      local w = world_mod.new()
      local server = redis_model.new(w)
      local hash = "streamctl:{wide}:rl"
      local function field(name) return tonumber(server:command("HMGET", hash, name)[1]) end
      local function spacing(ask) -- the schedule's step at this ask (us)
        local before = field("tat:")
        ask()
        return field("tat:") - before
      end
      local held, own
      w:spawn("p", function()
        local clock = function() return w:now() end
        local a = ratelimit.new { clock = clock, store = R.ratelimit_store(server:connect(), { monotonic = clock }) }
        local b_store = R.ratelimit_store(server:connect(), { monotonic = clock })
        local b = ratelimit.new { clock = clock, store = b_store }
        -- (a budget Redis has never seen: its pause first, then its schedule)
        local d = a:reserve("wide", 10 / 1.10, 1, nil, 0.10)
        w:sleep(d + 0.01)
        assert.is_true(select(2, a:reserve("wide", 10 / 1.10, 1, nil, 0.10)))
        local t = w:now()
        held = field("mg:")
        assert.is_true(held >= 100000, "held " .. held) -- (10% and a's round trip)
        -- b (1%) on the same budget is spaced at a's margin while it is held
        local function ask() b:reserve("wide", 10 / 1.01, 1, nil, 0.01) end
        for _ = 1, 3 do
          w:sleep(0.5)
          ask() -- (the schedule behind the clock: a slot now; the next one spaced)
          assert.equal(math.ceil(100000 * (1e6 + held) / 1e6), spacing(ask))
          assert.equal(held, field("mg:"))
        end
        -- once MARGIN_HOLD (2 s) has passed since a last asked: b's own, and its longest round trip
        w:sleep(t + 2.01 - w:now())
        ask()
        local hi = b_store.rtt.hi
        local step = spacing(ask)
        own = field("mg:")
        assert.equal(math.ceil((0.01 + hi) * 1e6), own)
        assert.equal(math.ceil(100000 * (1e6 + own) / 1e6), step)
      end)
      quietly(w, {}, function() assert(w:run(60)) end)
      assert.is_true(own < held)
    end)
end)

describe("nginx workers on one shared dict, in virtual time", function()
  -- spec/stores/66: four workers, each a client whose store is the shared
  -- dict's (one dict), resuming 30 streams of its own; one worker in turn
  -- stalled for 150 ms every 0.3 s (descheduled); `evict_at`: the budget's
  -- entry evicted then.
  local function workers(evict_at)
    local dict
    local events = {}
    for k = 1, 20 do
      events[#events + 1] = { 0.3 * k, function(r) r.w:stall(r.procs[(k - 1) % 4 + 1], 0.15) end }
    end
    if evict_at then
      events[#events + 1] = { evict_at, function() dict:delete("rl:" .. BUDGET) end }
    end
    local rec = fleet { procs = 4, count = 30, events = events, store = function(r)
      dict = dict or fake_shdict.new(setmetatable({}, { __index = function(_, k)
        if k == "t" then return r.w:now() end
      end }))
      return { rate_limit_store = shdict.ratelimit_store(dict, { clock = function() return r.w:now() end }) }
    end }
    all_done(rec, 30)
    assert.equal(120, #rec.sent)
    return rec
  end

  it("four workers stalled in turn: never over the cap in any second", function()
    local rec = workers()
    assert.is_true(densest(rec.sent) <= CAP, densest(rec.sent) .. " in one second")
  end)

  it("the budget's entry evicted mid-run: the loss waited out (a pause in the sends), never over the cap", function()
    local at = 2
    local rec = workers(at)
    -- Nothing is sent on a fresh schedule until LOSS_PAUSE after the loss was found (at the eviction or
    -- later): what goes out meanwhile is on slots handed out before it, at most MAX_HORIZON ahead. So
    -- the sends pause for at least LOSS_PAUSE - MAX_HORIZON (0.3 s), and none is in between.
    local pause, horizon = shdict.LOSS_PAUSE, ratelimit.MAX_HORIZON
    assert.same({}, between(rec.sent, at + horizon, at + pause))
    local longest = 0
    local sends = between(rec.sent, at, math.huge)
    for i = 2, #sends do longest = math.max(longest, sends[i].t - sends[i - 1].t) end
    assert.is_true(longest >= pause - horizon - 1e-9, "the longest pause after the eviction: " .. longest .. " s")
    assert.is_true(densest(rec.sent) <= CAP, densest(rec.sent) .. " in one second")
    local said = 0
    for _, text in pairs(rec.lines) do
      for _ in text:gmatch("lost the rate%-limit schedule of " .. BUDGET:gsub("%p", "%%%0")) do said = said + 1 end
    end
    assert.is_true(said >= 1, "nobody said the budget was lost")
  end)
end)

describe("Redis through Sentinel: when the Sentinels are asked, in virtual time", function()
  -- streamctl.store.redissentinel's `call` on a virtual monotonic clock: a
  -- connection (`self`) whose Sentinel names `master`; each call recorded
  -- (the node it went to, the command) with the time.
  local clock = { t = 0 }
  local S
  lazy_setup(function()
    local saved, mono = package.loaded["streamctl.store.redissentinel"], core.monotonic
    package.loaded["streamctl.store.redissentinel"], core.monotonic = nil, function() return clock.t end
    S = require "streamctl.store.redissentinel"
    package.loaded["streamctl.store.redissentinel"], core.monotonic = saved, mono
  end)

  local function connection(check_ms)
    local c = { master = "127.0.0.1 7001", asked = {}, served = {} }
    c.self = { config = { master_name = "mymaster", sentinel_check_ms = check_ms },
               _sentinels = { { addr = "127.0.0.1:26379", sentinel = true } } }
    local function node_for(_, host, port) return { addr = host .. ":" .. port } end
    local function session(_, node, run)
      return run(function(cmd)
        if node.sentinel then
          c.asked[#c.asked + 1] = clock.t
          local host, port = c.master:match("^(%S+) (%d+)$")
          if not host then return c.master end -- (no address)
          return { host, port }
        end
        c.served[#c.served + 1] = node.addr
        return cmd[1]
      end)
    end
    function c.call() return S.call(c.self, session, function(cmd) return cmd { "EVALSHA" } end, node_for, nil) end
    return c
  end

  it("asks again every sentinel_check_ms, not within it, and moves when they name another master", function()
    clock.t = 0
    local c = connection(200)
    assert.equal("EVALSHA", c.call())
    clock.t = 0.199
    c.call()
    assert.same({ 0 }, c.asked) -- (within 200 ms: not asked again)
    c.master = "127.0.0.1 7002"
    clock.t = 0.25
    c.call()
    assert.same({ 0, 0.25 }, c.asked)
    assert.same({ "127.0.0.1:7001", "127.0.0.1:7001", "127.0.0.1:7002" }, c.served)
  end)

  it("Sentinels that name no master: the known one serves, the Sentinels asked once an interval at most", function()
    clock.t = 0
    local c = connection(200)
    c.call()
    c.master = "I am no address"
    for k = 1, 100 do -- (a call every 10 ms for a second)
      clock.t = 0.25 + k * 0.01
      assert.equal("EVALSHA", c.call())
    end
    for i = 2, #c.asked do assert.is_true(c.asked[i] - c.asked[i - 1] >= 0.2 - 1e-9, "asked again at " .. c.asked[i]) end
    assert.equal(6, #c.asked) -- (at 0, then 0.26, 0.46, 0.66, 0.86, 1.06 s)
    for _, addr in ipairs(c.served) do assert.equal("127.0.0.1:7001", addr) end
  end)
end)
