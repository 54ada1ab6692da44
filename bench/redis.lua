-- One account, several processes (run by `make bench` against the emulator
-- it started, whose default account LTAIemulatorKey is held to 30
-- ResumeLiveStream per second by a sliding window): BENCH_REDIS_PROCS
-- ("3 10": each count in turn, the runs on budgets of their own for the first only)
-- separate Lua processes each resume BENCH_REDIS_STREAMS (100) streams at
-- once, first each on its own budget (no Redis: each paces itself at the cap,
-- together they send three times it), then sharing one budget in a Redis
-- this script starts on 127.0.0.1. Recorded through bench/lib.lua (group
-- "redis"): streams done, requests throttled (the emulator's counters), the
-- requests per second that reached the emulator as a fraction of the cap
-- (over its request log, first to last arrival, and over the whole run: a
-- budget's first use and the processes' start included), the wall time, and Redis
-- round trips per request sent (EVALSHA and EVAL calls from Redis' INFO
-- commandstats, over the requests the emulator saw).
--
-- Then ZEGO through Redis (BENCH_REDIS_PROCS processes resuming 500 IDs,
-- 20 per call, twice), with Redis on loopback and 5 ms away (a TCP proxy
-- adding 5 ms each way, spec/helpers/delayproxy.lua): ResumeRTCStreams per
-- second as a fraction of its cap (20/s) and Redis round trips per call (a
-- call's slot and all its Sequences are one script).
--
-- Then the same two (Aliyun and ZEGO on loopback, the first count of
-- processes) through Redis Sentinel, with no failover (issue 52: today's
-- figures kept): a master, a replica and three Sentinels
-- (spec/helpers/redis.lua start_sentinel), the URL redis+sentinel://; the
-- script round trips counted on the master, the Sentinels' questions (each
-- process asks one every sentinel_check_ms, 1 s) apart.
--
-- Figures, not a test: it exits non-zero only when a shared run lost a
-- stream or was throttled, or when a worker printed no report (what it
-- said on standard error is quoted).
local core = require "streamctl.core"
local lib = require "bench.lib"
local workers = require "bench.workers"
local redis_helper = require "spec.helpers.redis"

-- (each count in turn; the runs on budgets of their own only for the first)
local COUNTS = {}
for n in (os.getenv("BENCH_REDIS_PROCS") or "3 10"):gmatch("%d+") do COUNTS[#COUNTS + 1] = tonumber(n) end
local PROCS = COUNTS[1]
local STREAMS = tonumber(os.getenv("BENCH_REDIS_STREAMS") or "100")
local CAP = 30
local ALIYUN = assert(os.getenv("STREAMCTL_ALIYUN_ENDPOINT"),
  "STREAMCTL_ALIYUN_ENDPOINT: the emulator (bench/run.sh sets it)")
local ZEGO = assert(os.getenv("STREAMCTL_ZEGO_ENDPOINT"),
  "STREAMCTL_ZEGO_ENDPOINT: the emulator (bench/run.sh sets it)")
local ZEGO_CAP = 20
local control_request = workers.control

-- Redis' count of script calls (EVALSHA and EVAL) so far.
local function script_calls(redis)
  local n = 0
  for name, calls in redis:cli("INFO", "commandstats"):gmatch("cmdstat_(%w+):calls=(%d+)") do
    if name == "evalsha" or name == "eval" then n = n + tonumber(calls) end
  end
  return n
end

-- Starts PROCS workers (`worker_args(i)`: redis_worker.lua's arguments
-- after the mode) and waits for them; returns what they did and how long it took.
local function spawn_workers(mode, worker_args)
  local t0 = core.monotonic()
  local children = {}
  for i = 1, PROCS do
    children[i] = workers.start { mode, table.unpack(worker_args(i)) }
  end
  -- (a worker that printed no report stops the bench and says why, never a 0 recorded)
  local done = 0
  for _, report in ipairs(workers.reports(children, mode)) do done = done + (tonumber(report.succeeded) or 0) end
  return done, core.monotonic() - t0
end

-- One run of `p` (a provider's figures: mode, action, cap, worker_args,
-- what it counts) against the emulator, its figures recorded under `what`.
-- Returns the streams done and the requests throttled.
local function measure(p, what, redis)
  control_request("POST", "reset")
  local calls0 = redis and script_calls(redis)
  if redis and redis.sentinel_calls then redis.sentinel0 = redis.sentinel_calls() end
  local done, wall = spawn_workers(p.mode, p.worker_args)
  local counters = control_request("GET", "state")[p.mode].counters[p.action] or {}
  local entries = control_request("GET", "log?provider=" .. p.mode .. "&action=" .. p.action
    .. "&limit=100000").entries
  local first, last = math.huge, -math.huge
  for _, e in ipairs(entries) do
    if e.verdict == "ok" then
      first, last = math.min(first, e.real_time), math.max(last, e.real_time)
    end
  end
  local accepted = counters.accepted or 0
  local rate = accepted > 1 and (accepted - 1) / (last - first) or 0
  local function rec(name, unit, value, decimals)
    lib.record { group = "redis", name = what .. ": " .. name, unit = unit, samples = { value }, decimals = decimals }
  end
  rec(p.done, "", done)
  rec(p.unit .. " throttled", "", counters.throttled or 0)
  rec("accepted per second / cap", "x", rate / p.cap)
  -- (from the workers' start to the last one's end: a budget's first use included)
  rec("accepted over the whole run / cap", "x", accepted / wall / p.cap)
  rec("wall time", "s", wall, 2)
  if redis then rec("Redis round trips per " .. p.per, "x", (script_calls(redis) - calls0) / math.max(#entries, 1)) end
  if redis and redis.sentinel_calls then
    local asked = redis.sentinel_calls() - redis.sentinel0 - redis.background * wall
    rec("Sentinel round trips per " .. p.per, "x", math.max(asked, 0) / math.max(#entries, 1))
  end
  return done, counters.throttled or 0
end

-- Aliyun: PROCS processes x STREAMS ResumeLiveStream, each through `url` ("-": no Redis).
local function run(label, redis)
  return measure({ mode = "aliyun", action = "ResumeLiveStream", cap = CAP, done = "streams done",
                   unit = "requests", per = "request",
                   worker_args = function(i)
                     -- (a stream name is letters, digits, '_' and '-')
                     return { ALIYUN, redis and redis.url or "-", label:gsub("%W", "") .. i, STREAMS }
                   end },
    string.format("%d processes x %d streams, %s", PROCS, STREAMS, label), redis)
end

-- ZEGO: PROCS processes, 500 IDs each, twice, through `url` (Redis itself or a proxy to it).
local ZEGO_IDS, ZEGO_ROUNDS = 500, 2
local function run_zego(label, url, redis)
  return measure({ mode = "zego", action = "ResumeRTCStreams", cap = ZEGO_CAP, done = "IDs done",
                   unit = "calls", per = "call",
                   worker_args = function(i)
                     return { ZEGO, url, label:gsub("%W", "") .. i, ZEGO_IDS, ZEGO_ROUNDS }
                   end },
    string.format("ZEGO, %d processes x %d IDs x %d, %s", PROCS, ZEGO_IDS, ZEGO_ROUNDS, label), redis)
end

-- (Redis started first, so that it has been up a few seconds when the
-- shared runs begin, as a deployment's has: each budget's first use is
-- then proved new, docs/redis.md "A budget's first use"; on a Redis just
-- started it would wait the loss pause once)
local redis = redis_helper.start {}
local set = redis_helper.start_sentinel {} -- (as early, for the same reason)
local delayproxy = require "spec.helpers.delayproxy"
local proxy
-- (every run inside: a failure stops Redis and the proxy before it is raised,
-- or the process would wait for them at its exit)
local ok, err = pcall(function()
  run("each on its own budget", nil)
  local results = {}
  proxy = delayproxy.start { target_port = redis.port, delay_ms = 5 }
  for _, n in ipairs(COUNTS) do
    PROCS = n
    local done, throttled = run("one budget in Redis", redis)
    results[#results + 1] = { done == PROCS * STREAMS, throttled }
    done, throttled = run_zego("Redis on loopback", redis.url, redis)
    results[#results + 1] = { done == PROCS * ZEGO_IDS * ZEGO_ROUNDS, throttled }
    done, throttled = run_zego("Redis 5 ms away", "redis://127.0.0.1:" .. proxy.port, redis)
    results[#results + 1] = { done == PROCS * ZEGO_IDS * ZEGO_ROUNDS, throttled }
  end
  PROCS = COUNTS[1]
  -- (what measure reads: the URL, the master's counts, the Sentinels' questions)
  -- (a Sentinel keeps no commandstats: its commands in all, less what the Sentinels and this
  -- script ask of one another, measured over 3 s with no client)
  local through = { url = set.url, cli = function(_, ...) return set.master:cli(...) end,
                    sentinel_calls = function()
                      local n = 0
                      for _, s in ipairs(set.sentinels) do
                        n = n + tonumber(s:cli("INFO", "stats"):match("total_commands_processed:(%d+)"))
                      end
                      return n
                    end }
  local n0, t0 = through.sentinel_calls(), core.monotonic()
  require("socket").sleep(3)
  through.background = (through.sentinel_calls() - n0) / (core.monotonic() - t0)
  local done, throttled = run("one budget through Sentinel (no failover)", through)
  results[#results + 1] = { done == PROCS * STREAMS, throttled }
  done, throttled = run_zego("through Sentinel (no failover)", set.url, through)
  results[#results + 1] = { done == PROCS * ZEGO_IDS * ZEGO_ROUNDS, throttled }
  return results
end)
if proxy then proxy.stop() end
set:stop()
redis:stop()
workers.close()
if not ok then error(err, 0) end
for _, r in ipairs(err) do
  if not r[1] or r[2] ~= 0 then
    print("a shared run lost a stream or was throttled")
    os.exit(1)
  end
end
