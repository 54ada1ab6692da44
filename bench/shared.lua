-- One Aliyun budget shared three more ways (run by `make bench` against the
-- emulator it started, whose accounts are held to 30 ResumeLiveStream a
-- second by a sliding window): the throughput floors that left the specs
-- (a busy machine failed them, no fault of the pacing's), measured here as
-- figures instead. Each run resets the emulator first.
--
--   nginx    four nginx workers on one lua_shared_dict (spec/edge/31's "keeps
--            every worker together under the cap"): each worker resumes
--            BENCH_SHARED_NGINX_STREAMS (40) streams through one client of
--            its own on the dict (cosockets, over http), all four told to go
--            at once; BENCH_SHARED_NGINX_RUNS (3) runs, after a warm-up job
--            of one stream a worker (the budget's first use, which waits out
--            the loss pause) that is not recorded.
--   outage   three processes (spec/helpers/redis_worker.lua) on one budget in
--            a Redis this script starts, BENCH_SHARED_OUTAGE_STREAMS (150)
--            streams each; 2 s after the first request arrived Redis is
--            killed (kill -9), 3 s later started again, empty
--            (spec/stores/62's "Redis killed mid-run ... back with Redis").
--   keys     two RAM users' AccessKeys of one account (bench/emulator.json:
--            LTAIbenchRamA and LTAIbenchRamB, UID 1234567890123456), ten
--            processes through that Redis, five on each key, 30 streams
--            each: once giving account_id, once asking STS
--            (GetCallerIdentity) for it (spec/stores/65-redis-faults-keys).
--
-- BENCH_SHARED_ONLY="keys outage" runs those alone (nginx, keys, outage).
--
-- Recorded through bench/lib.lua (group "shared"), from the emulator's
-- counters and its request log (`real_time`, when each accepted request
-- arrived): streams done (the clients' reports) and requests throttled;
-- the rate as a fraction of the cap while paced, stalls left out
-- (spec/helpers/checks.lua steady_rate: a gap over 5 / cap between two
-- arrivals is a stall of the machine's, its time and its request left out;
-- the stalls counted beside it), for the outage after Redis is back and
-- every process has tried it again (its restart + 4.5 s on, the floor
-- spec/62 had) and while it was down (its kill + 1 s to its restart: each
-- process on its own share, rate / 4, about 0.71 of the cap for three);
-- the rate over the whole run, accepted / wall time / cap (from the go, or
-- the processes' start, to the last one's end: their start, a budget's
-- first use and the outage included); the wall time; for the keys the STS
-- calls. The nginx figures are the median of the runs, the others one run.
--
-- Figures, not a test: it exits non-zero only when a run lost a stream or
-- was throttled, or a worker printed no report, or nginx, Redis or the
-- emulator failed. STREAMCTL_ALIYUN_ENDPOINT names the emulator (plain
-- HTTP, 127.0.0.1; bench/run.sh starts it on free ports); nginx and Redis
-- listen on free ports of this process's block (spec/helpers/ports.lua).
-- What it starts (nginx, Redis, the workers) is stopped whether it ends
-- done or failed; on a signal, bench/run.sh stops every process below it.
local core = require "streamctl.core"
local cjson = require "cjson"
local lib = require "bench.lib"
local workers = require "bench.workers"
local checks = require "spec.helpers.checks"
local nginx = require "spec.helpers.nginx"
local redis_helper = require "spec.helpers.redis"
local sleep = require("streamctl.transport.curl").sleep
-- (the arrivals from `from` to `to`, real time: the fault specs' own, made with nothing started)
local between = require("spec.helpers.redis_faults").new().between

local CAP = 30
local ALIYUN = assert(os.getenv("STREAMCTL_ALIYUN_ENDPOINT"),
  "STREAMCTL_ALIYUN_ENDPOINT: the emulator (bench/run.sh sets it)")
local NGINX_WORKERS = 4
local NGINX_STREAMS = tonumber(os.getenv("BENCH_SHARED_NGINX_STREAMS") or "40")
local NGINX_RUNS = tonumber(os.getenv("BENCH_SHARED_NGINX_RUNS") or "3")
local OUTAGE_STREAMS = tonumber(os.getenv("BENCH_SHARED_OUTAGE_STREAMS") or "150")
local UID = "1234567890123456"
local KEYS = { { "LTAIbenchRamA", "bench-ram-a-secret" }, { "LTAIbenchRamB", "bench-ram-b-secret" } }
local ONLY = os.getenv("BENCH_SHARED_ONLY") -- (some of "nginx keys outage": those runs alone)
local WAIT = 120 -- the most any wait here takes, in seconds

-- The nginx workers' module: GET /go?id=&n=&prefix= hands every
-- worker the job (through the dict `bench`, which each polls every 20 ms);
-- each resumes its n streams in a timer, through its one client on the dict
-- `streamctl`, and leaves { total, succeeded, t0, t1 } (or { error }) there;
-- GET /done?id= lists what the workers left, by worker id.
local DRIVER = [==[
local streamctl = require "streamctl"
local cjson = require "cjson.safe"
local bench = ngx.shared.bench
local M = {}
local client, last = nil, 0

local function now() ngx.update_time() return ngx.now() end

local function resume(premature, job)
  if premature then return end
  local w = ngx.worker.id()
  local ok, out = pcall(function()
    client = client or assert(streamctl.aliyun.new { endpoint = os.getenv("ALIYUN"), shared_dict = "streamctl",
      access_key_id = "LTAIemulatorKey", access_key_secret = "emulator-secret" })
    local names = {}
    for i = 1, job.n do names[i] = job.prefix .. "w" .. w .. "-" .. i end
    local t0 = now()
    local report = assert(client:resume_live_streams { domain_name = "bench.example", app_name = "live",
                                                       stream_names = names })
    return { total = report.total, succeeded = report.succeeded, t0 = t0, t1 = now() }
  end)
  bench:set("done:" .. job.id .. ":" .. w, cjson.encode(ok and out or { error = tostring(out) }))
end

local function poll(premature)
  if premature then return end
  local text = bench:get("go")
  local job = text and cjson.decode(text)
  if job and job.id > last then
    last = job.id
    ngx.timer.at(0, resume, job)
  end
end

function M.init_worker() ngx.timer.every(0.02, poll) end

function M.go()
  local a = ngx.req.get_uri_args()
  local job = { id = tonumber(a.id), n = tonumber(a.n), prefix = a.prefix, at = now() }
  bench:set("go", cjson.encode(job))
  ngx.say(cjson.encode(job))
end

function M.done()
  local out = {}
  for w = 0, ]==] .. NGINX_WORKERS - 1 .. [==[ do
    local text = bench:get("done:" .. ngx.var.arg_id .. ":" .. w)
    if text then out[tostring(w)] = cjson.decode(text) end
  end
  ngx.say(cjson.encode(out))
end

return M
]==]

local started = {} -- the worker processes started: any not waited for is stopped at the end
local failures = {} -- the runs that lost a stream or were throttled

-- Starts one worker per list of arguments (after the mode, "aliyun").
local function start_all(args_list)
  local children = {}
  for i, args in ipairs(args_list) do
    children[i] = workers.start { "aliyun", table.unpack(args) }
    started[#started + 1] = children[i]
  end
  return children
end

-- The emulator's accepted ResumeLiveStream requests, by arrival, and its counters.
local function arrivals()
  local entries = workers.control("GET", "log?provider=aliyun&action=ResumeLiveStream&limit=100000").entries
  local ok = {}
  for _, e in ipairs(entries) do
    if e.verdict == "ok" then ok[#ok + 1] = e end
  end
  table.sort(ok, function(a, b) return a.real_time < b.real_time end)
  return ok, workers.control("GET", "state").aliyun.counters.ResumeLiveStream or {}
end

-- One run's figures, from the emulator: `total` streams asked, `done` of
-- them done, in `wall` seconds; `window(entries)` the arrivals its steady
-- rate is taken over (default: all of them).
local function measure(total, done, wall, window)
  local entries, counters = arrivals()
  local steady, stalls = checks.steady_rate(window and window(entries) or entries, CAP)
  return { total = total, done = done, throttled = counters.throttled or 0, steady = steady / CAP, stalls = stalls,
           whole = (counters.accepted or 0) / wall / CAP, wall = wall, entries = entries }
end

-- One figure under `label`: the median of the runs' `key`.
local function rec(label, name, unit, runs, key, decimals)
  local samples = {}
  for i, r in ipairs(runs) do samples[i] = r[key] end
  lib.record { group = "shared", name = label .. ": " .. name, unit = unit, samples = samples, decimals = decimals }
end

-- Records `runs` (each what measure returned) under `label`; `window` names
-- the steady rate's window, when it is not the whole log. Notes a run that
-- lost a stream or was throttled.
local function record(label, runs, window)
  local w = window and window .. ": " or ""
  rec(label, "streams done", "", runs, "done")
  rec(label, "requests throttled", "", runs, "throttled")
  rec(label, w .. "steady rate / cap (stalls left out)", "x", runs, "steady")
  rec(label, w .. "stalls", "", runs, "stalls")
  rec(label, "accepted over the whole run / cap", "x", runs, "whole")
  rec(label, "wall time", "s", runs, "wall", 2)
  for i, r in ipairs(runs) do
    if r.done ~= r.total or r.throttled ~= 0 then
      failures[#failures + 1] = string.format("%s (run %d): %d of %d streams done, %d throttled", label, i, r.done,
        r.total, r.throttled)
    end
  end
end

-- The nginx: NGINX_WORKERS workers, the driver above, the dicts `streamctl` and `bench`.
local function start_nginx()
  return nginx.start {
    workers = NGINX_WORKERS,
    env = { ALIYUN = ALIYUN },
    main = "env ALIYUN;",
    prepare = function(dir) nginx.write_file(dir .. "/bench_shared.lua", DRIVER) end,
    lua_path = function(dir) return dir .. "/?.lua" end,
    lua_cpath = function() return (nginx.jit_cpath():gsub(";.*$", "")) end,
    http = function(ports)
      return table.concat({
        "lua_shared_dict streamctl 1m;",
        "lua_shared_dict bench 1m;",
        "init_worker_by_lua_block { require('bench_shared').init_worker() }",
        "server {",
        "  listen 127.0.0.1:" .. ports[1] .. ";",
        "  location = /go { content_by_lua_block { require('bench_shared').go() } }",
        "  location = /done { content_by_lua_block { require('bench_shared').done() } }",
        "}",
      }, "\n    ")
    end,
  }
end

-- Four nginx workers on one lua_shared_dict.
local server -- (stopped at the end, however the runs end)
local function nginx_runs()
  server = start_nginx()
  local job = 0
  local function run(n)
    workers.control("POST", "reset")
    job = job + 1
    local status, body = server:get(string.format("/go?id=%d&n=%d&prefix=j%d", job, n, job))
    assert(status == 200, "nginx answered /go with " .. tostring(status) .. ": " .. tostring(body))
    local at = cjson.decode(body).at
    local out
    assert(checks.wait_until(function()
      local s, b = server:get("/done?id=" .. job)
      out = s == 200 and cjson.decode(b) or {}
      local n_done = 0
      for _ in pairs(out) do n_done = n_done + 1 end
      return n_done == NGINX_WORKERS
    end, WAIT), "the nginx workers did not finish job " .. job .. " within " .. WAIT .. " s")
    local done, last = 0, at
    for w, r in pairs(out) do
      assert(not r.error, "nginx worker " .. w .. ": " .. tostring(r.error))
      done, last = done + r.succeeded, math.max(last, r.t1)
    end
    return done, last - at
  end
  run(1) -- (the warm-up: the budget's first use waits out the loss pause)
  local runs = {}
  for i = 1, NGINX_RUNS do
    local total = NGINX_WORKERS * NGINX_STREAMS
    runs[i] = measure(total, run(NGINX_STREAMS))
  end
  record(string.format("%d nginx workers x %d streams, one shared dict", NGINX_WORKERS, NGINX_STREAMS), runs)
end

-- Three processes on one budget in Redis, Redis killed and started again mid-run.
local function outage(redis)
  workers.control("POST", "reset")
  local args = {}
  for i = 1, 3 do args[i] = { ALIYUN, redis.url, "outage" .. i, OUTAGE_STREAMS } end
  local t0 = core.monotonic()
  local children = start_all(args)
  -- (2 s on the shared budget from the first arrival, however long the processes took to start)
  assert(checks.wait_until(function()
    return (workers.control("GET", "state").aliyun.counters.ResumeLiveStream or {}).accepted
  end, WAIT), "no request arrived within " .. WAIT .. " s")
  sleep(2)
  redis:kill()
  local killed_at = core.now()
  sleep(3)
  redis:restart()
  local back_at = core.now()
  local done = 0
  for _, r in ipairs(workers.reports(children, "outage")) do done = done + r.succeeded end
  local r = measure(3 * OUTAGE_STREAMS, done, core.monotonic() - t0,
    function(entries) return between(entries, back_at + 4.5, math.huge) end)
  local label = string.format("3 processes x %d streams, Redis killed 2 s in and back 3 s later", OUTAGE_STREAMS)
  record(label, { r }, "back on Redis (restart + 4.5 s on)")
  local down, stalls = checks.steady_rate(between(r.entries, killed_at + 1, back_at), CAP)
  local runs = { { steady = down / CAP, stalls = stalls } }
  rec(label, "Redis down (kill + 1 s to restart): steady rate / cap (stalls left out)", "x", runs, "steady")
  rec(label, "Redis down (kill + 1 s to restart): stalls", "", runs, "stalls")
end

-- Two AccessKeys of one account, ten processes through Redis, with account_id or asking STS.
local function two_keys(redis)
  for _, how in ipairs { "account_id", "STS" } do
    workers.control("POST", "reset")
    local args = {}
    for i = 1, 10 do
      local key = KEYS[(i - 1) % 2 + 1]
      args[i] = { ALIYUN, redis.url, "keys" .. how .. i, 30, "key=" .. key[1], "secret=" .. key[2] }
      if how == "account_id" then table.insert(args[i], "account_id=" .. UID) end
    end
    local t0 = core.monotonic()
    local done = 0
    for _, r in ipairs(workers.reports(start_all(args), how)) do done = done + r.succeeded end
    local label = "two AccessKeys of one account, 10 processes x 30 streams, " .. how
    record(label, { measure(300, done, core.monotonic() - t0) })
    local sts = workers.control("GET", "log?provider=aliyun&action=GetCallerIdentity&limit=1000").entries
    rec(label, "STS calls (GetCallerIdentity)", "", { { n = #sts } }, "n")
  end
end

-- (Redis started first: up a few seconds when its runs begin, as a
-- deployment's is, so a budget's first use is proved new, as in bench/redis.lua)
local redis = redis_helper.start {}
local ok, err = pcall(function()
  for _, run in ipairs { { "nginx", nginx_runs }, { "keys", two_keys, redis }, { "outage", outage, redis } } do
    if not ONLY or (" " .. ONLY .. " "):find(" " .. run[1] .. " ", 1, true) then run[2](run[3]) end
  end
end)
for _, c in ipairs(started) do workers.stop(c) end
if server then server:stop() end
redis:stop()
workers.close()
if not ok then error(err, 0) end
if #failures > 0 then
  print("a shared run lost a stream or was throttled: " .. table.concat(failures, "; "))
  os.exit(1)
end
