-- `make chaos` / `make chaos-short` (docs/development/chaos.md): the real emulator with
-- random fault configurations, a real Redis flushed and restarted (with and
-- without its data) at random, a client nginx reloaded at random, and
-- several client processes (Lua 5.4 and LuaJIT, and two driving the nginx's
-- workers) on one account; then spec/chaos/check.lua reads the emulator's
-- request log and final state against what the clients reported.
--
--   CHAOS_SEED=N        the run's seed (default: a fresh one, printed); the
--                       same seed makes the same choices (faults, events, each
--                       client's ops), not the same timing
--   CHAOS_SECONDS=S     how long the clients run (default 300); the whole run
--                       takes about S + 30 s, and at most S + 120
--   CHAOS_VERBOSE=1     every event as it happens
--
-- Every server is started here on free 127.0.0.1 ports and stopped at the
-- end, with its files, whatever happens (a watchdog does it should this
-- process be killed). Exit status 0 when every invariant held, 1 when one
-- did not (the first violation is printed in full), 2 when the run itself
-- could not be carried out, 130 when interrupted (Ctrl-C, SIGTERM).
-- The clients, the client nginx and the emulator load the Lua modules of
-- STREAMCTL_ROOT's src/ (the working tree), the C modules of its build/.
local ROOT = os.getenv("STREAMCTL_ROOT") or "."
package.path = ROOT .. "/?.lua;" .. package.path

local cjson = require "cjson"
local socket = require "socket"
local core = require "streamctl.core"
local signal = require "streamctl.signal"
local emu = require "spec.helpers.emulator"
local redis_helper = require "spec.helpers.redis"
local nginx = require "spec.helpers.nginx"
local process = require "spec.helpers.process"
local check = require "spec.chaos.check"

local q = process.quote
local now = socket.gettime

local SECONDS = tonumber(os.getenv("CHAOS_SECONDS") or "300")
local SEED = tonumber(os.getenv("CHAOS_SEED") or "") or (tonumber(core.random_hex(3), 16) % 1000000)
local VERBOSE = os.getenv("CHAOS_VERBOSE")
local GRACE = 60        -- seconds past the clients' deadline before a process is killed (invariant 6)
local NGINX_WORKERS = 2
local LUA_CLIENTS = { { "p1", "lua5.4" }, { "p2", "luajit" }, { "p3", "lua5.4" } }
local NGX_CLIENTS = { "n1", "n2" }
local STREAMS = { aliyun = 12, zego = 40 }
local TIMEOUT_MS, SETTLE_MS = 1000, 3000
-- processes that may share the budget at once: the Lua clients and the
-- nginx workers, twice (old and new ones during a reload)
local NODES = #LUA_CLIENTS + 2 * NGINX_WORKERS

assert(SECONDS and SECONDS >= 5, "CHAOS_SECONDS must be a number of seconds, at least 5")
io.stdout:setvbuf("line")
signal.catch()
math.randomseed(SEED)
local function rng(a, b) return math.random(a, b) end
local function say(fmt, ...) io.write(string.format(fmt, ...), "\n") end
local T0 -- when the clients started
local events = {} -- { t = wall clock, what = "..." }: every chaos event, for the report
local function note(fmt, ...)
  local what = string.format(fmt, ...)
  events[#events + 1] = { t = core.now(), what = what }
  if VERBOSE then say("  %7.2f %s", now() - (T0 or now()), what) end
end

say("chaos: seed %d, %d s (replay: CHAOS_SEED=%d CHAOS_SECONDS=%d make chaos)", SEED, SECONDS, SEED, SECONDS)

-------------------------------------------------------------------------------
-- Cleanup: everything started is stopped, last first, however the run ends.

local cleanups = {}
local function on_exit(f) cleanups[#cleanups + 1] = f end
local function cleanup()
  for i = #cleanups, 1, -1 do
    local ok, err = pcall(cleanups[i])
    if not ok then io.stderr:write("chaos: cleanup: ", tostring(err), "\n") end
    cleanups[i] = nil
  end
end

local TMP = process.temp_dir()
on_exit(function() os.execute("rm -rf " .. q(TMP)) end)
local PIDS = TMP .. "/pids"
process.write_file(PIDS, "")
local function track(pid) local f = io.open(PIDS, "a") if f then f:write(pid, "\n") f:close() end end
-- The watchdog: should this process die without cleaning up, it kills what
-- the run started (the pids listed, the emulator's nginx) and removes TMP.
local SELF = assert(process.read_file("/proc/self/stat")):match("^(%d+)")
os.execute("(while kill -0 " .. SELF .. " 2>/dev/null; do sleep 1; done; "
  .. "for p in $(cat " .. q(PIDS) .. " 2>/dev/null) $(cat " .. q(TMP .. "/emulator/nginx.pid") .. " 2>/dev/null); "
  .. "do kill -9 $p 2>/dev/null; done; rm -rf " .. q(TMP) .. ") </dev/null >/dev/null 2>&1 &")

-------------------------------------------------------------------------------
-- The run

local figures = { faults = {}, faults_taken = {}, redis_flush = 0, redis_restart_data = 0,
                  redis_restart_empty = 0, nginx_reloads = 0, fault_posts = 0, fault_clears = 0 }
local faults = {}        -- id -> spec as the emulator stored it
local log = {}           -- trimmed entries, in seq order
local last_seq = 0
local server, redis, client_nginx
local workers = {}

-- The log since the last fetch; every seq must follow the last (nothing dropped).
local function fetch_log()
  local answer = server:control("GET", "log?since=" .. last_seq)
  local entries = answer.entries or {}
  table.sort(entries, function(a, b) return a.seq < b.seq end)
  for _, e in ipairs(entries) do
    if e.seq ~= last_seq + 1 then
      error(string.format("the emulator's log skipped from seq %d to %d (dropped %s): raise log_limit", last_seq,
        e.seq, tostring(answer.dropped)))
    end
    last_seq = e.seq
    log[#log + 1] = check.trim(e)
  end
end

local ALIYUN_ACTIONS = { "ForbidLiveStream", "ResumeLiveStream", "CreateLivePullToPush", "StopLivePullToPush",
                         "DescribeLiveStreamsBlockList", "DescribeLivePullToPushList" }
local ZEGO_ACTIONS = { "ForbidRTCStreams", "ResumeRTCStreams", "ForbidCDNLiveStream", "ResumeCDNLiveStream" }
local KINDS = { "http500", "http503", "throttle", "delay", "drop", "malformed", "truncated", "skew", "code" }
-- after_apply models "applied, but the answer was lost or a server error": a
-- provider never answers "throttled" or an operation's failure code for a
-- change it made, so those two always replace the request.
local AFTER_APPLY = { http500 = true, http503 = true, drop = true, malformed = true, truncated = true }

-- A random fault spec.
local function random_fault()
  local provider = rng(1, 2) == 1 and "aliyun" or "zego"
  local kind = KINDS[rng(1, #KINDS)]
  local actions = provider == "aliyun" and ALIYUN_ACTIONS or ZEGO_ACTIONS
  local action = rng(1, 5) == 1 and "*" or actions[rng(1, #actions)]
  local spec = { provider = provider, kind = kind, count = rng(1, 4) }
  if kind == "code" then
    if provider == "aliyun" then
      action = rng(1, 2) == 1 and "CreateLivePullToPush" or "StopLivePullToPush"
      spec.code = ({ 1, 2, 500 })[rng(1, 3)]
    elseif action == "ForbidCDNLiveStream" or action == "ResumeCDNLiveStream" then
      spec.code = 1
    else
      action = ({ "ForbidRTCStreams", "ResumeRTCStreams" })[rng(1, 2)]
      spec.code = rng(42001, 42004)
    end
  end
  spec.action = action
  if AFTER_APPLY[kind] then spec.after_apply = rng(1, 2) == 1 end
  if kind == "delay" then spec.delay_ms = ({ 20, 40, 150, 600, 1400 })[rng(1, 5)] end
  if kind == "skew" then spec.skew_s = ({ -1200, -60, 900, 3600 })[rng(1, 4)] end
  if kind == "throttle" then spec.retry_after_ms = ({ 20, 200, 1000 })[rng(1, 3)] end
  return spec
end

local function post_faults()
  local specs = {}
  for i = 1, rng(1, 3) do specs[i] = random_fault() end
  local answer, status = server:control("POST", "faults", specs)
  assert(status == 200, "POST /_emulator/faults answered " .. tostring(status) .. ": " .. cjson.encode(answer))
  for _, f in ipairs(answer.added) do
    faults[f.id] = f
    local key = f.kind .. (f.after_apply and "+after_apply" or "")
    figures.faults[key] = (figures.faults[key] or 0) + 1
    note("fault %d: %s %s %s x%d%s", f.id, f.provider, f.kind, f.action, f.count,
      f.after_apply and " after_apply" or "")
  end
  figures.fault_posts = figures.fault_posts + 1
end

local outages = {} -- { from, to }: when Redis was down (wall clock), for check.caps

local function redis_down_and_back(with_data)
  local dump = redis.dir .. "/dump.rdb"
  local from = core.now()
  if with_data then
    assert(redis:cli("SAVE") == "OK", "redis SAVE failed")
  else
    os.remove(dump)
  end
  note("redis killed (%s its data)", with_data and "SAVEd, restarted with" or "restarted without")
  redis:kill()
  local down = rng(0, 1500) / 1000
  if down > 0 then socket.sleep(down) end
  redis:restart()
  track(redis.pid)
  note("redis restarted %s its data, down %.2f s", with_data and "with" or "without", down)
  outages[#outages + 1] = { from, core.now() }
end

-- One chaos event at random.
local function event()
  local roll = rng(1, 100)
  if roll <= 50 then
    post_faults()
  elseif roll <= 55 then
    server:control("DELETE", "faults")
    figures.fault_clears = figures.fault_clears + 1
    note("faults cleared")
  elseif roll <= 63 then
    assert(redis:cli("FLUSHALL") == "OK", "redis FLUSHALL failed")
    figures.redis_flush = figures.redis_flush + 1
    note("redis FLUSHALL")
  elseif roll <= 69 then
    redis_down_and_back(false)
    figures.redis_restart_empty = figures.redis_restart_empty + 1
  elseif roll <= 75 then
    redis_down_and_back(true)
    figures.redis_restart_data = figures.redis_restart_data + 1
  elseif roll <= 85 then
    note("client nginx reload")
    client_nginx:reload()
    for _, w in ipairs(client_nginx:workers()) do track(w.pid) end
    figures.nginx_reloads = figures.nginx_reloads + 1
    note("client nginx reloaded")
  end
end

local function alive(pid)
  local stat = process.read_file("/proc/" .. pid .. "/stat")
  return stat ~= nil and not stat:match("^%d+ %b() [ZX]")
end

local function start_workers(deadline)
  local tree54, treejit = ROOT .. "/build/5.4/lib/lua/5.4/?.so;;", ROOT .. "/build/jit/lib/lua/5.1/?.so;;"
  local lua_path = ROOT .. "/?.lua;" .. ROOT .. "/src/?.lua;" .. ROOT .. "/src/?/init.lua;;"
  local base = { deadline = deadline, aliyun_url = server.aliyun_url, zego_url = server.zego_url,
                 redis = redis.url .. "/0?nodes=" .. NODES, streams = STREAMS, timeout_ms = TIMEOUT_MS,
                 settle_ms = SETTLE_MS }
  local list = {}
  for _, c in ipairs(LUA_CLIENTS) do list[#list + 1] = { name = c[1], mode = "lua", interp = c[2] } end
  for _, n in ipairs(NGX_CLIENTS) do list[#list + 1] = { name = n, mode = "ngx", interp = "lua5.4" } end
  for i, w in ipairs(list) do
    local cfg = {}
    for k, v in pairs(base) do cfg[k] = v end
    cfg.name, cfg.mode, cfg.seed = w.name, w.mode, SEED * 100 + i
    cfg.out = TMP .. "/" .. w.name .. ".jsonl"
    cfg.nginx_url = "http://127.0.0.1:" .. client_nginx.ports[1]
    local cpath = w.interp == "luajit" and treejit or tree54
    local cmd = "env LUA_PATH=" .. q(lua_path) .. " LUA_CPATH=" .. q(cpath) .. " STREAMCTL_ROOT=" .. q(ROOT) .. " "
      .. w.interp .. " " .. q(ROOT .. "/spec/chaos/worker.lua") .. " " .. q(cjson.encode(cfg))
      .. " >" .. q(TMP .. "/" .. w.name .. ".stdout") .. " 2>" .. q(TMP .. "/" .. w.name .. ".stderr")
    -- (the shell prints the exit status last, so the pipe tells it)
    local child = process.spawn("sh -c " .. q(cmd .. "; echo status $?"))
    track(child.pid)
    w.child, w.out, w.started = child, cfg.out, now()
    workers[#workers + 1] = w
    on_exit(function()
      if not w.reaped then
        os.execute("pkill -9 -P " .. child.pid .. " 2>/dev/null; kill -9 " .. child.pid .. " 2>/dev/null")
        child.pipe:close()
        w.reaped = true
      end
    end)
  end
end

-- Waits (bounded by `hard`) for every worker; kills those still running then.
local function finish_workers(hard)
  local processes = {}
  for _, w in ipairs(workers) do
    while alive(w.child.pid) and now() < hard do socket.sleep(0.1) end
    local p = { name = w.name .. " (" .. w.mode .. ", " .. w.interp .. ")", seconds = now() - w.started }
    if alive(w.child.pid) then
      p.overran = true
      os.execute("pkill -9 -P " .. w.child.pid .. " 2>/dev/null; kill -9 " .. w.child.pid .. " 2>/dev/null")
    end
    local text = w.child.pipe:read("*a") or ""
    w.child.pipe:close()
    w.reaped = true
    p.status = tonumber(text:match("status (%d+)"))
    if p.overran then p.status = nil end
    p.stderr = (process.read_file(TMP .. "/" .. w.name .. ".stderr") or ""):sub(-2000)
    processes[#processes + 1] = p
  end
  return processes
end

-- Every op the workers wrote; an op started but never written has no t_end.
local function load_ops()
  local ops = {}
  for _, w in ipairs(workers) do
    local started = {}
    for line in (process.read_file(w.out) or ""):gmatch("[^\n]+") do
      local ok, r = pcall(cjson.decode, line)
      if ok and type(r) == "table" then
        if r.type == "start" then
          started[r.op] = r
        elseif r.type == "op" then
          started[r.op] = nil
          if r.results == nil or r.results == cjson.null then r.results = {} end
          ops[#ops + 1] = r
        end
      end
    end
    for _, s in pairs(started) do
      ops[#ops + 1] = { client = s.client, op = s.op, action = s.action, t_start = s.t_start, results = {},
                        provider = "?", input = {} }
    end
  end
  return ops
end

local function count_by(list, f)
  local out = {}
  for _, x in ipairs(list) do
    local k = f(x)
    if k then out[k] = (out[k] or 0) + 1 end
  end
  return out
end

local function line_of(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys)
  local parts = {}
  for _, k in ipairs(keys) do parts[#parts + 1] = k .. " " .. tostring(t[k]) end
  return #parts > 0 and table.concat(parts, ", ") or "none"
end

local function main()
  server = emu.start { dir = TMP .. "/emulator", config = {
    aliyun = { rate_limiter = "sliding_window" }, zego = { rate_limiter = "sliding_window" }, log_limit = 100000 } }
  on_exit(function() server:stop() end)
  redis = redis_helper.start {}
  track(redis.pid)
  on_exit(function() redis:stop() end)
  client_nginx = nginx.start {
    dir = TMP .. "/nginx", workers = NGINX_WORKERS,
    lua_path = function() return ROOT .. "/?.lua" end,
    lua_cpath = function() return (nginx.jit_cpath():gsub(";.*$", "")) end,
    http = function(ports)
      return "    lua_socket_log_errors off;\n    server { listen 127.0.0.1:" .. ports[1] .. ";\n"
        .. "      location = /op { content_by_lua_block { require('spec.chaos.nginx_handler').op() } } }"
    end,
  }
  track(client_nginx.pid)
  on_exit(function() client_nginx:stop() end)
  say("chaos: emulator %s %s, redis %s, client nginx :%d (%d workers), clients %d Lua + %d through nginx",
    server.aliyun_url, server.zego_url, redis.url, client_nginx.ports[1], NGINX_WORKERS, #LUA_CLIENTS,
    #NGX_CLIENTS)

  T0 = now()
  local deadline = core.now() + SECONDS
  start_workers(deadline)
  local next_fetch = now() + 2
  for _ = 1, 100000 do
    if core.now() >= deadline or signal.caught() then break end
    local pause = rng(300, 2500) / 1000
    socket.sleep(math.max(0, math.min(pause, deadline - core.now())))
    if core.now() >= deadline or signal.caught() then break end
    event()
    if now() >= next_fetch then
      fetch_log()
      next_fetch = now() + 2
    end
  end
  if signal.caught() then
    say("chaos: interrupted (seed %d); everything it started is being stopped", SEED)
    return 130
  end
  server:control("DELETE", "faults")
  local processes = finish_workers(now() + GRACE + math.max(0, deadline - core.now()))
  fetch_log()
  local state = server:state()
  local ops = load_ops()

  local result = check.all { log = log, state = state, ops = ops, faults = faults, processes = processes,
    outages = outages,
                             app_id = "1234567890" }

  -- Figures
  local f = result.figures
  say("")
  local by_provider = count_by(log, function(e) return e.provider end)
  say("requests seen: %d (aliyun %d, zego %d)", #log, by_provider.aliyun or 0, by_provider.zego or 0)
  say("  by verdict: %s", line_of(count_by(log, function(e) return e.verdict end)))
  say("  by action: %s", line_of(count_by(log, function(e) return e.action end)))
  say("faults injected (specs, by kind): %s", line_of(figures.faults))
  say("faults taken (requests a fault answered or touched): %s", line_of(count_by(log, function(e) return e.fault end)))
  say("fault posts %d, clears %d; redis FLUSHALL %d, restarts with data %d, without %d; nginx reloads %d",
    figures.fault_posts, figures.fault_clears, figures.redis_flush, figures.redis_restart_data,
    figures.redis_restart_empty, figures.nginx_reloads)
  local totals = { ops = #ops, items = 0, done = 0, failed = 0, unknown = 0 }
  for _, op in ipairs(ops) do
    totals.items = totals.items + (op.total or 0)
    totals.done = totals.done + (op.succeeded or 0)
    totals.failed = totals.failed + (op.failed or 0)
    totals.unknown = totals.unknown + (op.unknown or 0)
  end
  say("client ops %d: %d items, %d done, %d failed, %d unknown; by client: %s", totals.ops, totals.items,
    totals.done, totals.failed, totals.unknown, line_of(count_by(ops, function(op) return op.client end)))
  local codes = {}
  for _, op in ipairs(ops) do
    for _, r in ipairs(op.results or {}) do
      if not r.ok then
        local k = tostring(r.code) .. (r.unknown and " (unknown)" or "")
        codes[k] = (codes[k] or 0) + 1
      end
    end
  end
  say("  not done, by code: %s", line_of(codes))
  local busiest = {}
  for k, n in pairs(f.busiest or {}) do
    local provider, action = k:match("^([^|]*)|.*|([^|]*)$")
    local was = busiest[action] and tonumber(busiest[action]:match("^%d+")) or -1
    if n > was then busiest[action] = n .. "/" .. tostring(check.CAPS[provider][action]) end
  end
  say("busiest second per action (arrivals/cap): %s; windows over the cap excused by delay faults: %d, by a Redis "
    .. "outage: %d", line_of(busiest), f.excused_windows or 0, f.outage_windows or 0)
  for _, p in ipairs(processes) do
    say("process %s: %s, %.1f s", p.name, p.overran and "KILLED at the deadline" or ("exit " .. tostring(p.status)),
      p.seconds)
  end
  say("")
  local per = count_by(result.violations, function(v) return v.invariant end)
  for n, text in ipairs(check.INVARIANTS) do
    say("invariant %d %s: %s", n, result.held[n] and "held" or ("VIOLATED (" .. per[n] .. ")"), text)
  end
  if #result.violations > 0 then
    say("")
    local first = result.violations[1]
    say("first violation (invariant %d):\n%s", first.invariant, first.message)
    if first.at then
      say("chaos events from 5 s before to 1 s after it (times from its start):")
      for _, ev in ipairs(events) do
        if ev.t >= first.at - 5 and ev.t <= first.at + 1 then say("  %+7.3f %s", ev.t - first.at, ev.what) end
      end
    end
    for i = 2, math.min(#result.violations, 6) do
      say("also (invariant %d): %s", result.violations[i].invariant, (result.violations[i].message:gsub("\n.*", " ...")))
    end
    say("seed %d: CHAOS_SEED=%d CHAOS_SECONDS=%d make chaos", SEED, SEED, SECONDS)
  end
  local keep = os.getenv("CHAOS_KEEP")
  if keep and keep ~= "" then
    os.execute("mkdir -p " .. q(keep))
    process.write_file(keep .. "/log.json", cjson.encode(log))
    process.write_file(keep .. "/state.json", cjson.encode(state))
    process.write_file(keep .. "/ops.json", cjson.encode(ops))
    process.write_file(keep .. "/faults.json", cjson.encode(faults))
    say("(the log, final state, ops and faults are in %s: spec/chaos/check.lua reads them)", keep)
  end
  if #result.violations > 0 then return 1 end
  say("all invariants held (seed %d)", SEED)
  return 0
end

local ok, status = xpcall(main, debug.traceback)
cleanup()
if not ok then
  io.stderr:write("chaos: the run could not be carried out (seed ", SEED, "): ", tostring(status), "\n")
  os.exit(2)
end
os.exit(status)
