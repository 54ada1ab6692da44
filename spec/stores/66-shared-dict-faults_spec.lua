-- load: heavy
-- sanitizers: none (the faults run in client processes of their own; the C loaded here, the rest covers)
-- interpreters: lua5.4 (what it tests runs in nginx, under LuaJIT, whatever interpreter runs this file)
-- tier: test (a fault matrix: minutes of Redis or nginx faults under many clients)
-- The shared-dict stores (streamctl.store.shdict) when the dict or nginx
-- misbehaves, against the emulator counting the strictest way (a sliding
-- window: at most N accepted in any 1 s), with real nginx workers:
--   * a dict far too small (12k: 31 entries) for 4 workers resuming 4,000
--     ZEGO IDs: its LRU evicts Sequences, the counter and the budget itself;
--   * a 12k dict with no room at all for an Aliyun budget (a 256-byte entry):
--     the store fails, each client falls back, and nothing says "lost";
--   * `nginx -s reload` while old workers still send (a timer, a request) and
--     new ones start: the dict, and the schedule in it, survive;
--   * four workers sharing a budget while every core is busy and, one at a
--     time, a worker is stopped for 150 ms (descheduled);
--   * the room an entry takes, for docs/openresty.md's "10m holds about N streams";
-- and, over a stand-in dict, the Sequence counter evicted between the two
-- `incr` of one call. Each run asserts: zero throttled, every stream
-- succeeded, ZEGO Sequences strictly increasing per stream in arrival order
-- (none stale), and exactly the lines the store says in nginx's error log.
-- Verdicts only: the times (never more than the cap in any second of
-- arrivals, the sends pausing while a lost budget's pause is waited out)
-- are asserted in virtual time, workers on a stand-in dict
-- (spec/engine/11-store-time, "nginx workers on one shared dict"); here the
-- emulator's own window says it (zero throttled), and the rest is printed.
-- Every server is started here on 127.0.0.1 and stopped at the end.
local cjson = require "cjson"
local socket = require "socket"
local nginx = require "spec.helpers.nginx"
local emu = require "spec.helpers.emulator"
local process = require "spec.helpers.process"


-------------------------------------------------------------------------------
-- The driver: jobs each worker runs in a timer (POST /job, every worker
-- takes it once), the same jobs in a request (GET /run), and the room
-- measurement (GET /room). Every job makes a client of its own on the dict.

local DRIVER = [==[
local streamctl = require "streamctl"
local shdict = require "streamctl.store.shdict"
local cjson = require "cjson.safe"

local getenv = os.getenv
local M = {}

local function now() ngx.update_time() return ngx.now() end

local jobs = {}

-- ZEGO: resumes PREFIX-1..PREFIX-COUNT, in an order turned by ROTATE x the
-- worker's id (so the workers reach one stream at different times).
function jobs.zego(job, w)
  local c = assert(streamctl.zego.new { endpoint = getenv("ZEGO"), app_id = 1234567890,
    server_secret = "0123456789abcdef0123456789abcdef", shared_dict = "streamctl" })
  local ids, n = {}, job.count
  for i = 1, n do ids[i] = job.prefix .. "-" .. ((i - 1 + (job.rotate or 0) * w) % n + 1) end
  local report = assert(c:resume_rtc_streams { stream_ids = ids })
  c:close()
  return report
end

-- Aliyun: resumes PREFIX-COUNT streams of its own (job.first_sent: when
-- its first request was handed to the transport, its pacing done).
function jobs.aliyun(job, w)
  local c = assert(streamctl.aliyun.new { endpoint = getenv("ALIYUN"), access_key_id = "LTAIemulatorKey",
    access_key_secret = "emulator-secret", shared_dict = "streamctl",
    on_attempt = function(info)
      local sent = now() - info.seconds
      if not job.first_sent or sent < job.first_sent then job.first_sent = sent end
    end })
  local names = {}
  for i = 1, job.count do names[i] = job.prefix .. "-w" .. w .. "-" .. i end
  local report = assert(c:resume_live_streams { domain_name = "push.example.com", app_name = "live",
                                                stream_names = names })
  c:close()
  return report
end

-- Runs `job`; a summary of its report (the first failures named).
local function run(job)
  local w = ngx.worker.id()
  local t0 = now()
  local ok, report = pcall(jobs[job.kind], job, w)
  local out = { worker = w, pid = ngx.worker.pid(), t0 = t0, t1 = now(), first_sent = job.first_sent }
  if not ok then
    out.error = tostring(report)
    return out
  end
  out.total, out.succeeded, out.failed, out.unknown = report.total, report.succeeded, report.failed, report.unknown
  out.failures = {}
  for _, r in ipairs(report.results) do
    if not r.ok and #out.failures < 5 then out.failures[#out.failures + 1] = r.stream .. ": " .. tostring(r.error) end
  end
  return out
end

local results = ngx.shared.results

local function run_job(premature, job)
  if premature then return end
  results:set("job:" .. job.id .. ":" .. ngx.worker.id(), cjson.encode(run(job)))
end

-- Every worker takes each job once (a worker started by a reload too, but
-- not a job its predecessor of the same id took).
local last_job = 0
local function poll_jobs(premature)
  if premature then return end
  local job = cjson.decode(results:get("job") or "null")
  if type(job) == "table" and job.id > last_job then
    last_job = job.id
    if results:add("claim:" .. job.id .. ":" .. ngx.worker.id(), true) then ngx.timer.at(0, run_job, job) end
  end
end

function M.init_worker()
  ngx.timer.every(0.05, poll_jobs)
end

local function reply(value)
  ngx.header.content_type = "application/json"
  ngx.print(cjson.encode(value))
end

function M.job()
  ngx.req.read_body()
  results:set("job", ngx.req.get_body_data())
  reply { ok = true }
end

function M.results()
  local out = {}
  for w = 0, tonumber(ngx.var.arg_workers) - 1 do
    out[#out + 1] = cjson.decode(results:get("job:" .. ngx.var.arg_id .. ":" .. w) or "null")
  end
  reply(out)
end

-- GET /run?kind=&count=&prefix=: a job in this request.
function M.run()
  local a = ngx.req.get_uri_args()
  reply(run { kind = a.kind, count = tonumber(a.count), prefix = a.prefix, rotate = tonumber(a.rotate) })
end

-- GET /budget?key=K: the budget K's entry as the dict holds it now
-- ("born tat"), or null.
function M.budget()
  reply { entry = ngx.shared.streamctl:get("rl:" .. ngx.var.arg_key) }
end

-- `dict` as the stores see it, calling on_evict() when a write evicted
-- other entries (`forcible`). (A table of its own: the store's "said once"
-- is kept per dict object, so the real dict's stays untouched.)
local function watched(dict, on_evict)
  return setmetatable({}, { __index = function(_, method)
    return function(_, ...)
      local a, b, forcible = dict[method](dict, ...)
      if forcible then on_evict() end
      return a, b, forcible
    end
  end })
end

-- GET /probe?key=K: whether the budget K's entry, as the store writes it
-- now, finds room in the (empty) dict at all; the dict is left as it was.
function M.probe()
  local dict = ngx.shared.streamctl
  local store = shdict.ratelimit_store(watched(dict, function() end), { log = function() end })
  local delay, err = store:reserve(ngx.var.arg_key, 20, 1, 0.5)
  dict:delete("rl:" .. ngx.var.arg_key)
  reply { fits = delay ~= nil, err = err }
end

-- GET /room?dict=NAME: fills the (empty) dict with the stores' own entries
-- until a write evicts (`forcible`): first ZEGO streams (one Sequence entry
-- each, beside the AppId's counter), then, in the emptied dict, budgets.
function M.room()
  local name = ngx.var.arg_dict
  local dict = ngx.shared[name]
  local evicted = false
  local proxy = watched(dict, function() evicted = true end)
  local quiet = { log = function() end, name = name }
  -- How many entries `write(i)` adds before one evicts or finds no room.
  local function fill(write)
    dict:flush_all()
    dict:flush_expired()
    evicted = false
    local n = 0
    while n < 1000000 do
      local ok = write(n + 1)
      if evicted or not ok then break end
      n = n + 1
    end
    dict:flush_all()
    dict:flush_expired()
    return n
  end
  local seq = shdict.sequence_store(proxy, "zego:1234567890:", quiet)
  local base = 1700000000000
  local id_length = tonumber(ngx.var.arg_id_length) or 16
  local rl = shdict.ratelimit_store(proxy, quiet)
  reply {
    capacity = dict:capacity(),
    -- ZEGO streams (one Sequence entry each, beside the AppId's counter), IDs of id_length characters
    streams = fill(function(i)
      return seq:advance_all({ string.format("room-%0" .. (id_length - 10) .. "d-host", i) }, base + i)
    end),
    -- budgets: an Aliyun account (an AccessKeyId of 24 characters) and an action
    budgets = fill(function(i)
      return rl:reserve(string.format("aliyun:LTAI%020d:ResumeLiveStream", i), 30, 1, 0.5)
    end),
  }
end

return M
]==]

-- Starts an nginx running the driver with `workers` workers and
-- `lua_shared_dict streamctl SIZE;`.
local function start_driver(emulator, workers, size)
  return nginx.start {
    workers = workers,
    env = { ALIYUN = emulator.aliyun_url, ZEGO = emulator.zego_url },
    prepare = function(dir) nginx.write_file(dir .. "/faults66_driver.lua", DRIVER) end,
    lua_path = function(dir) return dir .. "/?.lua" end,
    lua_cpath = function() return (nginx.jit_cpath():gsub(";.*$", "")) end,
    main = "env ALIYUN; env ZEGO;",
    http = function(ports)
      return table.concat({
        "lua_shared_dict streamctl " .. size .. ";",
        "lua_shared_dict results 1m;",
        "init_worker_by_lua_block { require('faults66_driver').init_worker() }",
        "server {",
        "  listen 127.0.0.1:" .. ports[1] .. ";",
        "  location = /job { content_by_lua_block { require('faults66_driver').job() } }",
        "  location = /results { content_by_lua_block { require('faults66_driver').results() } }",
        "  location = /run { content_by_lua_block { require('faults66_driver').run() } }",
        "  location = /room { content_by_lua_block { require('faults66_driver').room() } }",
        "  location = /probe { content_by_lua_block { require('faults66_driver').probe() } }",
        "  location = /budget { content_by_lua_block { require('faults66_driver').budget() } }",
        "}",
      }, "\n    ")
    end,
  }
end

-------------------------------------------------------------------------------
-- HTTP from this process, without waiting: `send` writes a request on a
-- connection of its own, `receive` reads its answer until the server closes
-- it (a batch's answer comes when the batch ends, however busy the machine:
-- a hung nginx is stopped by run-specs' file timeout, never a clock here).

local function send(port, method, path, body)
  local s = socket.tcp()
  s:settimeout(5)
  assert(s:connect("127.0.0.1", port))
  local head = method .. " " .. path .. " HTTP/1.0\r\nHost: 127.0.0.1\r\n"
    .. (body and ("Content-Length: " .. #body .. "\r\n") or "") .. "\r\n"
  assert(s:send(head .. (body or "")))
  return s
end

local function receive(s)
  local parts = {}
  s:settimeout(0.25)
  while true do
    local data, err, partial = s:receive(65536)
    local chunk = data or partial
    if chunk and chunk ~= "" then parts[#parts + 1] = chunk end
    if err == "closed" or (err and err ~= "timeout") then break end
  end
  s:close()
  local raw = table.concat(parts)
  local status, body = raw:match("^HTTP/1%.%d (%d%d%d).-\r\n\r\n(.*)$")
  assert(status, "no answer: " .. raw)
  assert(status == "200", "HTTP " .. status .. ": " .. body)
  return cjson.decode(body)
end

local function request(port, method, path, body)
  return receive(send(port, method, path, body))
end

-- The results of job `id` once `workers` workers have each left theirs (an nginx gone fails it at once);
-- `between()`, if given, runs between two looks.
local function results(srv, workers, id, between)
  while true do
    if between then between() else socket.sleep(0.2) end
    assert(process.alive(srv.pid), "nginx is gone: " .. srv:error_log())
    local out = request(srv.ports[1], "GET", "/results?workers=" .. workers .. "&id=" .. id)
    local n = 0
    for _, r in pairs(out) do if r ~= cjson.null then n = n + 1 end end
    if n == workers then return out end
  end
end

-- Hands every one of `workers` workers `job` and waits for their results
-- (however long a busy machine makes them: never a clock); `between()`, if
-- given, runs between two looks.
local job_id = 0
local function run_everywhere(srv, workers, job, between)
  job_id = job_id + 1
  job.id = job_id
  request(srv.ports[1], "POST", "/job", cjson.encode(job))
  return results(srv, workers, job_id, between)
end

-- A worker's report: everything succeeded, nothing failed.
local function assert_all_succeeded(r, total, who)
  assert.is_nil(r.error, r.error)
  assert.same({ total = total, succeeded = total, failed = 0, unknown = 0 },
    { total = r.total, succeeded = r.succeeded, failed = r.failed, unknown = r.unknown },
    who .. ": " .. table.concat(r.failures or {}, "; "))
end

-------------------------------------------------------------------------------
-- nginx's error log: streamctl's lines, by worker pid.

local LOST = "streamctl: the shared dict lost the rate%-limit schedule of "
local FULL = "streamctl: the shared dict[^\n]* is full: "

-- The lines of `text` that say something of streamctl (or an error), each as
-- { pid =, line = }.
local function notable(text)
  local out = {}
  for line in text:gmatch("[^\n]+") do
    if line:find("streamctl", 1, true) or line:find("%[error%]") or line:find("%[alert%]")
      or line:find("%[crit%]") or line:find("%[emerg%]") then
      out[#out + 1] = { pid = tonumber(line:match("%] (%d+)#")), line = line }
    end
  end
  return out
end

local function count(lines, pattern)
  local n, per_pid = 0, {}
  for _, l in ipairs(lines) do
    if l.line:find(pattern) then
      n = n + 1
      per_pid[l.pid or 0] = (per_pid[l.pid or 0] or 0) + 1
    end
  end
  return n, per_pid
end

-- Every line but those matching one of `allowed`, as text ("" when none).
local function others(lines, allowed)
  local rest = {}
  for _, l in ipairs(lines) do
    local ok = false
    for _, p in ipairs(allowed) do if l.line:find(p) then ok = true end end
    if not ok then rest[#rest + 1] = l.line end
  end
  return table.concat(rest, "\n")
end

-------------------------------------------------------------------------------
-- The emulator's view.

local function log_of(emulator, provider, action)
  local entries = emulator:log { provider = provider, action = action, limit = 10000 }
  table.sort(entries, function(a, b) return a.seq < b.seq end)
  return entries
end

-- The most requests accepted within any 1 s of arrivals (the emulator's own window).
local function densest_second(entries)
  local times = {}
  for _, e in ipairs(entries) do
    if e.verdict ~= "throttled" then times[#times + 1] = e.real_time end
  end
  table.sort(times)
  return require("spec.helpers.checks").densest_second(times)
end

-- ZEGO: every entry "ok", and each stream's Sequences strictly increasing
-- in arrival order. Returns how many times each stream was sent.
local function assert_sequences(entries)
  local last, sent = {}, {}
  for _, e in ipairs(entries) do
    assert.equal("ok", e.verdict, "entry " .. e.seq .. ": " .. tostring(e.verdict) .. " " .. tostring(e.message))
    local s = assert(tonumber(e.sequence), "no Sequence logged")
    for _, id in ipairs(e.streams) do
      assert.is_true(last[id] == nil or s > last[id],
        string.format("stream %s: Sequence %.0f after %.0f", id, s, last[id] or 0))
      last[id], sent[id] = s, (sent[id] or 0) + 1
    end
  end
  return sent
end

local function debug_log(fmt, ...)
  if os.getenv("SPEC_DEBUG") then io.stderr:write(string.format(fmt, ...), "\n") end
end

local available, why_not = nginx.available()
assert(available, why_not) -- `make test` installs nginx; a spec that cannot run fails

local FALLBACK = "streamctl: the rate%-limit store failed %(shared dict set: no memory%); pacing in this process"
local ZEGO_BUDGET = "zego:1234567890:ResumeRTCStreams"
local ALIYUN_BUDGET = "aliyun:" .. emu.aliyun_uid("LTAIemulatorKey") .. ":ResumeLiveStream" -- (its account, from STS)

-- Runs fn(srv) against a driver nginx, and stops it whatever fn does.
local function with_driver(emulator, workers, size, fn)
  local srv = start_driver(emulator, workers, size)
  local ok, err = pcall(fn, srv)
  srv:stop()
  assert(ok, err)
end

-- The longest time between two consecutive arrivals, and how many such
-- gaps were at least `least` seconds.
local function gaps(entries, least)
  local longest, n = 0, 0
  for i = 2, #entries do
    local gap = entries[i].real_time - entries[i - 1].real_time
    if gap > longest then longest = gap end
    if gap >= least then n = n + 1 end
  end
  return longest, n
end

-- The pids (as keys) of a list of worker results.
local function pids_of(reports)
  local set = {}
  for _, r in ipairs(reports) do set[r.pid] = true end
  return set
end

describe("the shared-dict stores under faults", function()
  local emulator
  lazy_setup(function()
    emulator = emu.start { config = { aliyun = { rate_limiter = "sliding_window" },
                                      zego = { rate_limiter = "sliding_window" } } }
  end)
  lazy_teardown(function()
    if emulator then emulator:stop() end
  end)
  before_each(function() emulator:reset() end)

  it("a 12k dict, 4 workers, 4,000 ZEGO IDs: zero throttled, none lost, none stale, 'full' said once a worker",
    function()
    with_driver(emulator, 4, "12k", function(srv)
      -- Whether the ZEGO budget's entry fits at all: a 12k dict has a single
      -- page, of 128-byte slots, and the entry's text grows with the
      -- machine's uptime (CLOCK_MONOTONIC): up to 27.8 hours it takes 128
      -- bytes, after that 256, which never fit (the store then fails and
      -- each client paces on its own at rate / 4: 4 of them, 20 a second).
      local fits = request(srv.ports[1], "GET", "/probe?key=" .. ZEGO_BUDGET).fits
      -- 1,000 IDs, each resumed by every worker (4,000 in all, 200 calls of
      -- 20), the workers 240 IDs (12 calls, about 2.5 s) apart: each stream
      -- comes back while ZEGO still compares its Sequences (10 s), after the
      -- dict (31 entries) has long forgotten it and, many times, the counter.
      local t0 = socket.gettime()
      local out = run_everywhere(srv, 4, { kind = "zego", count = 1000, prefix = "tiny", rotate = 240 })
      local seconds = socket.gettime() - t0
      for w = 1, 4 do assert_all_succeeded(out[w], 1000, "worker " .. (w - 1)) end
      local c = emulator:state().zego.counters.ResumeRTCStreams
      assert.same({ accepted = 200, throttled = 0 }, { accepted = c.accepted, throttled = c.throttled or 0 })
      local entries = log_of(emulator, "zego", "ResumeRTCStreams")
      assert.equal(200, #entries)
      local sent = assert_sequences(entries)
      local n = 0
      for id, k in pairs(sent) do
        n = n + 1
        assert.equal(4, k, id .. " sent " .. k .. " times")
      end
      assert.equal(1000, n)

      local lines = notable(srv:error_log())
      local full, full_per_pid = count(lines, FULL)
      local lost, lost_per_pid = count(lines, LOST)
      local found = count(lines, LOST .. ZEGO_BUDGET .. ": its entry is gone")
      local longest, pauses = gaps(entries, 0.5)
      print(string.format("\n[66] 12k dict, ZEGO budget %s: 4,000 IDs in %.1f s, %d 'full' lines, %d 'lost' "
        .. "(%d by the finder), %d pauses of 0.5 s or more between arrivals (the longest %.2f s)",
        fits and "fits" or "does not fit", seconds, full, lost, found, pauses, longest))
      debug_log("%s", others(lines, {}))
      assert.is_true(full >= 1, "a 12k dict holding 1,000 streams never said it was full")
      for pid, k in pairs(full_per_pid) do
        assert.is_true(k <= 1, "worker " .. pid .. " said 'full' " .. k .. " times")
        assert.is_true(pids_of(out)[pid], "a 'full' line from a worker that ran no job")
      end
      if fits then
        -- The budget's entry is evicted now and then (the dict holds 31
        -- entries and every call writes 20; during a pause, the calls on
        -- slots reserved before it can evict the fresh entry again): each
        -- loss said by the worker that found it and at most once by each
        -- other one. (Waited out, the arrivals pausing for the loss pause
        -- less the slots reserved before it: spec/engine/11-store-time, in
        -- virtual time; the pauses here are printed above.)
        for pid, k in pairs(lost_per_pid) do
          assert.is_true(k <= found, "worker " .. pid .. " said 'lost' " .. k .. " times for " .. found .. " losses")
        end
        assert.equal("", others(lines, { FULL, LOST .. ZEGO_BUDGET }))
      else
        -- Never written, never lost: no 'lost' line; each client falls back, once.
        assert.equal(0, lost, others(lines, { FULL, FALLBACK }))
        local fallback, per_pid = count(lines, FALLBACK)
        assert.equal(4, fallback)
        for pid, k in pairs(per_pid) do assert.equal(1, k, "worker " .. pid) end
        assert.equal("", others(lines, { FULL, FALLBACK }))
      end
    end)
  end)

  it("a 12k dict with no room for an Aliyun budget: each worker falls back and says so once, and no loss",
    function()
    with_driver(emulator, 2, "12k", function(srv)
      -- The budget's entry (256 bytes) never fits: each client paces on its
      -- own at rate / 4 (2 workers: half the cap). Before, every
      -- reservation also said the budget was lost, though it never existed.
      assert.is_false(request(srv.ports[1], "GET", "/probe?key=" .. ALIYUN_BUDGET).fits)
      local out = run_everywhere(srv, 2, { kind = "aliyun", count = 45, prefix = "noroom" })
      for w = 1, 2 do assert_all_succeeded(out[w], 45, "worker " .. (w - 1)) end
      local c = emulator:state().aliyun.counters.ResumeLiveStream
      assert.same({ accepted = 90, throttled = 0 }, { accepted = c.accepted, throttled = c.throttled or 0 })
      local lines = notable(srv:error_log())
      local full, full_per_pid = count(lines, FULL)
      local fallback, fallback_per_pid = count(lines, FALLBACK)
      assert.same({ 2, 2 }, { full, fallback }, others(lines, {}))
      for _, per_pid in ipairs { full_per_pid, fallback_per_pid } do
        for pid, k in pairs(per_pid) do
          assert.equal(1, k)
          assert.is_true(pids_of(out)[pid], "a line from a worker that ran no job")
        end
      end
      assert.equal("", others(lines, { FULL, FALLBACK }))
    end)
  end)

  it("nginx -s reload mid-run: the dict and its schedule survive; zero throttled, nothing lost, no 'lost' line",
    function()
    with_driver(emulator, 2, "1m", function(srv)
      -- On the old workers: a batch in each one's timer (2 x 45), and one in
      -- a request (30); about 1.5 s into sending, the reload; then two
      -- batches in requests (2 x 30), which only the new workers take.
      job_id = job_id + 1
      local old_job = { id = job_id, kind = "aliyun", count = 45, prefix = "old-timer" }
      request(srv.ports[1], "POST", "/job", cjson.encode(old_job))
      local old_request = send(srv.ports[1], "GET", "/run?kind=aliyun&count=30&prefix=old-request")
      local deadline = socket.gettime() + 20
      while #emulator:log { provider = "aliyun", action = "ResumeLiveStream" } < 40 and socket.gettime() < deadline do
        socket.sleep(0.05)
      end
      -- The budget's entry as the old workers wrote it: "born tat". A
      -- schedule lost at the reload would be born again afterwards.
      local born_before = tostring(request(srv.ports[1], "GET", "/budget?key=" .. ALIYUN_BUDGET).entry):match("^%S+")
      assert.is_truthy(born_before, "the old workers wrote no budget entry")
      -- (the time the reload began: srv:reload() returns once every old worker is shutting down, which a
      -- busy machine makes late, and a batch that overlapped the reload may end before it returns)
      local reloaded_at = socket.gettime()
      local new_pids, old_pids = srv:reload()
      local new_requests = {}
      for i = 1, 2 do
        new_requests[i] = send(srv.ports[1], "GET", "/run?kind=aliyun&count=30&prefix=new-request-" .. i)
      end
      local sent_new_at = socket.gettime()
      local answers = { receive(old_request) }
      for i = 1, 2 do answers[#answers + 1] = receive(new_requests[i]) end
      -- the timers' results, from the dict that survived (old workers wrote them)
      local timers = results(srv, 2, old_job.id)
      local in_old, in_new = {}, {}
      for _, p in ipairs(old_pids) do in_old[p] = true end
      for _, p in ipairs(new_pids) do in_new[p] = true end
      for w = 1, 2 do
        assert_all_succeeded(timers[w], 45, "old worker " .. (w - 1) .. "'s timer")
        assert.is_true(in_old[timers[w].pid], "a timer's batch ran outside the old workers")
        assert.is_true(timers[w].t1 > reloaded_at, "the timer's batch ended before the reload: nothing overlapped")
      end
      assert_all_succeeded(answers[1], 30, "the old workers' request")
      assert.is_true(in_old[answers[1].pid], "the first request was not on an old worker")
      assert.is_true(answers[1].t1 > reloaded_at, "the old request ended before the reload")
      for i = 2, 3 do
        assert_all_succeeded(answers[i], 30, "a new request")
        assert.is_true(in_new[answers[i].pid], "a request after the reload reached an old worker")
      end
      local c = emulator:state().aliyun.counters.ResumeLiveStream
      assert.same({ accepted = 180, throttled = 0 }, { accepted = c.accepted, throttled = c.throttled or 0 })
      local entries = log_of(emulator, "aliyun", "ResumeLiveStream")
      -- The new workers paced on the old workers' schedule: the entry they
      -- reserved on is the one born before the reload (a lost one would
      -- have been born again, and its loss pause kept everyone waiting).
      -- How long the first new request waited is printed, not asserted: it
      -- is at most the horizon (0.75 s) on a quiet machine, but a busy one
      -- can add tenths, and a lost schedule's pause is only 1.05 s.
      local born_after = tostring(request(srv.ports[1], "GET", "/budget?key=" .. ALIYUN_BUDGET).entry):match("^%S+")
      assert.equal(born_before, born_after, "the budget was born again after the reload: the schedule was lost")
      local began = math.min(answers[2].t0, answers[3].t0)
      local wait = math.min(answers[2].first_sent, answers[3].first_sent) - began
      print(string.format("\n[66] reload: %d old workers -> %d new, %.3f s after they were asked; the first new "
        .. "request sent %.3f s after a new worker began, %d arrivals, at most %d in a second", #old_pids,
        #new_pids, began - sent_new_at, wait, #entries, densest_second(entries)))
      local lines = notable(srv:error_log())
      assert.equal("", others(lines, {}))
    end)
  end)

  it("4 workers on one budget while every core is busy and workers stall: zero throttled", function()
    local burners = {}
    local ok, err = pcall(function()
      with_driver(emulator, 4, "1m", function(srv)
        -- Other work on every core, twice over, each burner ending by itself.
        local cores = tonumber(process.capture("nproc 2>/dev/null"):match("%d+")) or 2
        for i = 1, math.min(2 * cores, 8) do
          burners[i] = process.spawn("timeout 40 sh -c 'while :; do :; done'")
        end
        -- And a descheduled worker for certain (busy cores alone rarely delay
        -- a worker that sleeps until its slot by more than a few ms): every
        -- 0.3 s one worker in turn is stopped for 150 ms, the same shell
        -- letting it go on. A request sent on its slot after such a stall
        -- would crowd the second (30 requests 35 ms apart: late by 53 ms,
        -- the 31st is one too many).
        -- (its four workers, once each has its title: a busy machine may not have given them one yet)
        local pids = require("spec.helpers.checks").wait_until(function()
          local w = srv:workers()
          return #w == 4 and w
        end, 20)
        assert(pids, "nginx did not show its four workers")
        local n = 0
        local function stall()
          n = n + 1
          local pid = pids[(n - 1) % #pids + 1].pid
          process.run("kill -STOP " .. pid .. "; sleep 0.15; kill -CONT " .. pid)
          socket.sleep(0.15)
        end
        local t0 = socket.gettime()
        local out = run_everywhere(srv, 4, { kind = "aliyun", count = 30, prefix = "busy" }, stall)
        local seconds = socket.gettime() - t0
        for w = 1, 4 do assert_all_succeeded(out[w], 30, "worker " .. (w - 1)) end
        local c = emulator:state().aliyun.counters.ResumeLiveStream
        local entries = log_of(emulator, "aliyun", "ResumeLiveStream")
        print(string.format("\n[66] busy cores (%d burners) and %d stalls of 150 ms: 120 requests in %.1f s, %d "
          .. "throttled, at most %d in a second", #burners, n, seconds, c.throttled or 0, densest_second(entries)))
        assert.same({ accepted = 120, throttled = 0 }, { accepted = c.accepted, throttled = c.throttled or 0 })
        -- a fresh dict: the budget's first use, known to nobody before; no loss, nothing full
        assert.equal("", others(notable(srv:error_log()), {}))
      end)
    end)
    for _, b in ipairs(burners) do process.stop(b) end
    assert(ok, err)
  end)

  it("room: bytes per ZEGO stream and per budget, and the streams 10m holds", function()
    local srv = nginx.start {
      prepare = function(dir) nginx.write_file(dir .. "/faults66_driver.lua", DRIVER) end,
      lua_path = function(dir) return dir .. "/?.lua" end,
      lua_cpath = function() return (nginx.jit_cpath():gsub(";.*$", "")) end,
      http = function(ports)
        return "lua_shared_dict results 1m;\n    lua_shared_dict room1m 1m;\n    lua_shared_dict room10m 10m;\n"
          .. "    server { listen 127.0.0.1:" .. ports[1] .. ";\n"
          .. "      location = /room { content_by_lua_block { require('faults66_driver').room() } } }"
      end,
    }
    local ok, err = pcall(function()
      local r1 = request(srv.ports[1], "GET", "/room?dict=room1m")
      local r10 = request(srv.ports[1], "GET", "/room?dict=room10m")
      local long = request(srv.ports[1], "GET", "/room?dict=room10m&id_length=64")
      local per_stream, per_budget = r1.capacity / r1.streams, r1.capacity / r1.budgets
      print(string.format("\n[66] room: 1m holds %d streams (16-character IDs; %.0f bytes each) or %d budgets "
        .. "(%.0f bytes each); 10m holds %d streams (%d with 64-character IDs) or %d budgets", r1.streams, per_stream,
        r1.budgets, per_budget, r10.streams, long.streams, r10.budgets))
      -- an entry is nginx's node (68 bytes) + key + value in a slab slot of
      -- 128 bytes (stream IDs up to 32 characters) or 256 (a budget, longer IDs)
      assert.is_true(per_stream >= 112 and per_stream <= 160, per_stream .. " bytes per stream")
      assert.is_true(per_budget >= 224 and per_budget <= 320, per_budget .. " bytes per budget")
      assert.is_true(r10.streams >= 65000, "10m holds only " .. r10.streams .. " streams")
      assert.is_true(long.streams >= 32000, "10m holds only " .. long.streams .. " streams with long IDs")
    end)
    srv:stop()
    assert(ok, err)
  end)
end)

-- A stand-in dict: the counter evicted between the store's two incr calls.
describe("the shared-dict Sequence store", function()
  it("hands out a Sequence when a full dict evicts the counter between its two incr calls", function()
    local shdict = require "streamctl.store.shdict"
    local values, incrs = {}, 0
    local dict = {}
    function dict:get(k) return values[k] end -- luacheck: ignore 212/self
    function dict:set(k, v) values[k] = v return true end -- luacheck: ignore 212/self
    function dict:expire() return true end -- luacheck: ignore 212/self
    function dict:incr(k, by, init) -- luacheck: ignore 212/self
      incrs = incrs + 1
      local v = values[k]
      if v == nil then
        if init == nil then return nil, "not found" end
        v = init
      end
      values[k] = v + by
      -- the first incr of the second call: then another worker's writes evict the counter
      if incrs == 2 then values[k] = nil end
      return v + by
    end
    local store = shdict.sequence_store(dict, "zego:1:", { log = function() end })
    assert.equal(1000, store:advance_all({ "a" }, 1000))
    local v, err = store:advance_all({ "a" }, 2000)
    assert.is_nil(err)
    assert.equal(2000, v)
    assert.equal(2000, values["seq:zego:1:a"])
  end)
end)
