-- What the Redis fault specs share (spec/65-redis-faults-*: four files, run
-- side by side): the emulator counting the strictest way, fresh Redis
-- servers, client processes (spec/helpers/redis_worker.lua), what each
-- process may say, and the checks every case makes. The cases are in the
-- spec files. Between them: Redis loses what it held, restarts empty,
-- stalls, evicts, or holds a schedule an hour ahead, mid-run, under ten
-- independent processes on one account (and ZEGO processes on one AppId, on
-- the same 20 streams), against the emulator counting the strictest way (a
-- sliding window). Each case: zero throttled, every stream succeeded, every
-- ZEGO Sequence accepted and, per stream, strictly increasing in the order
-- the emulator received them; and each process said exactly what
-- streamctl.store.redis says it says (counted line by line, never the
-- password; a process whose run ended before the event says nothing).
--
--   FLUSHALL                 -> "lost the shared rate-limit schedule ... its key is gone", once each
--   kill -9 and restart      -> the same (and "failed" / "answers again" when a call fell in the gap)
--   DEBUG SLEEP 3            -> "failed", then "answers again", once each; meanwhile rate / 10
--                               (10 processes seen in the heartbeats, though nodes is 4)
--   an evicting maxmemory    -> the policy warned once per process; evictions of other keys harmless
--   a tat an hour ahead      -> "further ahead than any process reserves", once each; nobody sleeps
--   two AccessKeys, one UID  -> one budget through account_id (without it: throttled)
--   Redis 5 ms away (ZEGO)   -> at least 90% of the cap, one round trip per call
--   a Redis that never answers, or stalls (one process): what a call hands out counts from its end
--
--   local F = require("spec.helpers.redis_faults").new()
--   lazy_setup(F.setup) lazy_teardown(F.teardown) after_each(F.cleanup)
--
-- SPEC_FIGURES=1 prints each case's figures on stderr; SPEC_DEBUG=1 also
-- every arrival time.
local assert = require "luassert" -- busted gives specs its assert; a required module asks for it
local emu = require "spec.helpers.emulator"
local redis_helper = require "spec.helpers.redis"
local delayproxy = require "spec.helpers.delayproxy"
local process = require "spec.helpers.process"
local checks = require "spec.helpers.checks"
local cjson = require "cjson"
local socket = require "socket"
local store = require "streamctl.store.redis"

local ROOT = os.getenv("STREAMCTL_ROOT") or "."
local WORKER = ROOT .. "/spec/helpers/redis_worker.lua"
local DEBUG = os.getenv("SPEC_DEBUG")
local FIGURES = DEBUG or os.getenv("SPEC_FIGURES")

local CAP = { aliyun = 30, zego = 20 }      -- ResumeLiveStream per account, ResumeRTCStreams per AppId
local RATE = { aliyun = 30 / 1.05, zego = 20 / 1.05 } -- what the clients pace at (RATE_MARGIN)
local PASSWORD = "fault-spec-pw-7Qx"        -- every Redis here has one; no line may show it
local UID = "1234567890123456"               -- the account of the two keys below
local KEYS = { A = { "LTAIfaultA", "fault-a-secret" }, B = { "LTAIfaultB", "fault-b-secret" } }
-- (LTAIemulatorKey's account: the clients ask STS, the emulator, for it)
local ALI_TAG, ZEGO_TAG = "aliyun:" .. emu.aliyun_uid("LTAIemulatorKey"), "zego:1234567890"

local function sleep(s) socket.sleep(s) end

-- Redis' timeout where its slowness is not under test (every case but the
-- stalls): the 200 ms default is a promise a loaded machine breaks (a call
-- waited past it under four busy loops, and its process said so, a notice
-- those cases do not expect), and the loss pause counts it: QUERY goes on
-- the URL, PAUSE is what the processes then say they wait.
local QUIET_TIMEOUT_MS = 2000 * process.slowdown()
local QUIET_QUERY = "?timeout_ms=" .. QUIET_TIMEOUT_MS
local QUIET_PAUSE = store.ratelimit_store({ timeout_ms = QUIET_TIMEOUT_MS }):loss_pause(30)
local now = socket.gettime

-- What each process may say, as Lua patterns (host:port filled in; the
-- loss pause 1.05 s, the default timeout's, unless `pause` says another).
local function said(addr, pause)
  local at = "^streamctl: Redis at " .. addr:gsub("%.", "%%.") .. " "
  local wait = string.format("%g", pause or 1.05):gsub("%.", "%%.")
  local function lost(tag, reason)
    return at .. "lost the shared rate%-limit schedule of " .. tag:gsub("%p", "%%%0") .. ": " .. reason
      .. ".*; nothing is sent on it for " .. wait .. " s"
  end
  return {
    lost = lost,
    gone = function(tag) return lost(tag, "its key is gone %(FLUSHALL, eviction, or a Redis restarted") end,
    ahead = function(tag) return lost(tag, "it held a schedule further ahead than any process reserves") end,
    failed_rl = at .. "failed %(.*%); rate limits fall back to rate / 4 %(or the processes last seen, if more%) "
      .. "in this process until it answers",
    failed_seq = at .. "failed %(.*%); ZEGO Sequences fall back to this process's own",
    back_rl = at .. "answers again; rate limits are shared through it again$",
    back_seq = at .. "answers again; ZEGO Sequences are shared through it again$",
    -- (an Alibaba Cloud process's decisions: streamctl.pipeline.decision, issue 87)
    failed_dec = at .. "failed %(.*%); decisions fall back to this process's own %(a forbid or resume that waits past "
      .. "its window meanwhile is not sent%)",
    back_dec = at .. "answers again; decisions are shared through it again$",
    policy = function(policy)
      return at .. "has maxmemory%-policy " .. policy:gsub("%-", "%%-") .. ": it may evict streamctl's keys"
    end,
  }
end

-- Checks one process's standard error: no password; every line matches one
-- of `expected` ({ pattern, min, max }); each pattern's count within its
-- bounds. Returns the counts, by index.
local function check_lines(who, text, expected)
  assert.is_nil(text:find(PASSWORD, 1, true), who .. " showed the password:\n" .. text)
  local counts = {}
  for i = 1, #expected do counts[i] = 0 end
  for line in text:gmatch("[^\n]+") do
    local matched
    for i, e in ipairs(expected) do
      if line:find(e[1]) then
        matched = i
        break
      end
    end
    assert(matched, who .. " said what it should not:\n" .. line .. "\n(all it said:)\n" .. text)
    counts[matched] = counts[matched] + 1
  end
  for i, e in ipairs(expected) do
    local lo, hi = e[2], e[3] or e[2]
    assert(counts[i] >= lo and counts[i] <= hi, string.format("%s said %d time(s), not %s, what %s matches:\n%s",
      who, counts[i], lo == hi and tostring(lo) or (lo .. ".." .. hi), e[1], text))
  end
  return counts
end

-- Requests per second over a log: (n - 1) / (last arrival - first).
local function rate_of(entries) return checks.rate_of(entries, "real_time") end

-- The rate while paced, stalls of the machine's left out (spec/helpers/checks.lua).
local steady_rate = checks.steady_rate

-- The most arrivals in any one second (the sliding window's view).
local function busiest_second(entries) return checks.densest_second(entries, "real_time") end

-- What a failure says of a throttled request: when it came (from t0), how
-- many accepted arrivals the second before it held, and the arrivals of
-- that second's last 0.3 s (a burst shows there), with the case's marks.
local function throttle_story(entries, t0, marks)
  local out = {}
  -- (by arrival: the log's order is when each answer was logged)
  local sorted = {}
  for i, e in ipairs(entries) do sorted[i] = e end
  table.sort(sorted, function(a, b) return a.real_time < b.real_time end)
  entries = sorted
  for i, e in ipairs(entries) do
    if e.verdict == "throttled" and #out < 3 then
      local held, recent = 0, {}
      for j = i - 1, 1, -1 do
        local ago = e.real_time - entries[j].real_time
        if ago >= 1 then break end
        if entries[j].verdict == "ok" then held = held + 1 end
        if ago < 0.3 then table.insert(recent, 1, string.format("%.3f", entries[j].real_time - t0)) end
      end
      out[#out + 1] = string.format("throttled at %.3f s (retry after %s ms): %d accepted in the second before; "
        .. "arrivals in its last 0.3 s at %s", e.real_time - t0, tostring(e.retry_after_ms), held,
        table.concat(recent, " "))
    end
  end
  local m = {}
  for k, v in pairs(marks or {}) do m[#m + 1] = string.format("%s at %.3f s", k, v - t0) end
  table.sort(m)
  if #m > 0 then out[#out + 1] = "marks: " .. table.concat(m, ", ") end
  return table.concat(out, "; ")
end

local function between(entries, from, to) return checks.between(entries, "real_time", from, to) end

local M = {}

--- A suite's state and its steps (its emulator, the servers and processes
-- a case started): everything the cases use, by the name they use.
function M.new()
  local emulator, tmp

  local function setup()
      assert(redis_helper.available())
      emulator = emu.start { config = {
        aliyun = { rate_limiter = "sliding_window", accounts = {
          [KEYS.A[1]] = { secret = KEYS.A[2], account = UID },
          [KEYS.B[1]] = { secret = KEYS.B[2], account = UID },
        } },
        zego = { rate_limiter = "sliding_window" },
      } }
      tmp = process.temp_dir()
  end

  local function teardown()
      if emulator then emulator:stop() end
      if tmp then os.execute("rm -rf " .. process.quote(tmp)) end
  end

  -- What a case started, stopped when it ends (last first), however it ends.
  local started = {}
  local function cleanup()
    for i = #started, 1, -1 do
      started[i]()
      started[i] = nil
    end
  end

  -- A fresh Redis for a case (password, no persistence, DEBUG from
  -- 127.0.0.1; `args` more), stopped when the case ends.
  local function fresh_redis(args)
    local a = { "--enable-debug-command", "local" }
    for _, x in ipairs(args or {}) do a[#a + 1] = x end
    local srv = redis_helper.start { password = PASSWORD, args = a }
    started[#started + 1] = function() srv:stop() end
    return srv
  end

  local n_clients = 0
  -- Starts one client process (redis_worker.lua `args`), its stderr to a file.
  local function start_client(args)
    n_clients = n_clients + 1
    local err = tmp .. "/client-" .. n_clients .. ".err"
    local quoted = {}
    for i, a in ipairs(args) do quoted[i] = process.quote(tostring(a)) end
    local child = process.spawn(process.quote(process.interpreter()) .. " " .. process.quote(WORKER) .. " "
      .. table.concat(quoted, " ") .. " 2>" .. process.quote(err))
    local c = { child = child, err = err, kind = args[1] }
    -- (a case that fails before reading it stops it; until its pipe is
    -- closed it is not reaped, so the pid is still its own)
    started[#started + 1] = function() if not c.done then process.stop(child) end end
    return c
  end

  -- A client's line of output (its report), and the client reaped.
  local function report_of(c)
    local line = c.child.pipe:read("*l")
    c.child.pipe:close()
    c.done = true
    return line
  end

  -- Waits for every client: their reports summed, each one's stderr and report.
  local function finish(clients)
    local sum = { total = 0, succeeded = 0, failed = 0, unknown = 0 }
    local errs, reports, codes = {}, {}, {}
    local seen = {}
    for i, c in ipairs(clients) do
      local line = report_of(c)
      errs[i] = process.read_file(c.err) or ""
      assert(line, "client " .. i .. " printed nothing; its stderr:\n" .. errs[i])
      local r = cjson.decode(line)
      reports[i] = r
      for k in pairs(sum) do sum[k] = sum[k] + r[k] end
      for _, code in ipairs(r.codes or {}) do
        if not seen[code] then codes[#codes + 1], seen[code] = code, 0 end
        seen[code] = seen[code] + 1
      end
    end
    -- (what failed, if anything, shows beside the counts: each code and how often)
    for i, code in ipairs(codes) do codes[i] = code .. " x" .. seen[code] end
    if #codes > 0 then sum.codes = table.concat(codes, ", ") end
    return sum, errs, reports
  end

  -- The emulator's log of `action`, in arrival order.
  local function log_of(provider, action)
    local entries = emulator:log { provider = provider, action = action, limit = 10000 }
    table.sort(entries, function(a, b) return a.seq < b.seq end)
    return entries
  end

  -- Every ZEGO call accepted ("ok"), or skipped as superseded ("stale":
  -- below a Sequence already accepted on its stream, which a call decided
  -- later took; a process a busy machine stalls between taking its
  -- Sequence and sending it arrives second, rightly skipped, docs/pacing.md
  -- "Not out of order"); the accepted ones per stream strictly increasing
  -- in arrival order. Returns how many were skipped so.
  local function check_sequences(entries)
    local last, last_at, superseded = {}, {}, 0
    for _, e in ipairs(entries) do
      local s = assert(tonumber(e.sequence), "no Sequence logged")
      local below = true
      for _, x in ipairs(e.streams or {}) do
        if last[x] == nil or s > last[x] then below = false end
      end
      if e.verdict == "stale" and below then
        superseded = superseded + 1
        goto next_entry
      end
      if e.verdict ~= "ok" then
        -- (what came before it on its first stream: a later Sequence that arrived
        -- first, and how long before, tells a stall between taking and sending)
        local id = e.streams and e.streams[1]
        assert.equal("ok", e.verdict, string.format("a call answered %s (Sequence %s, arrived at %.3f); on stream %s "
          .. "the last accepted was %s, arrived at %s", tostring(e.verdict), e.sequence, e.real_time, tostring(id),
          tostring(id and last[id]), id and last_at[id] and string.format("%.3f", last_at[id]) or "-"))
      end
      for _, x in ipairs(e.streams) do
        assert(last[x] == nil or s > last[x], "stream " .. x .. ": Sequence " .. s .. " after " .. tostring(last[x]))
        last[x], last_at[x] = s, e.real_time
      end
      ::next_entry::
    end
    return superseded
  end

  local function debug_dump(name, entries, t0, marks)
    if not DEBUG then return end
    for _, e in ipairs(entries) do
      io.stderr:write(string.format("%s %8.3f %s %s %s\n", name, e.real_time - t0, e.verdict,
        e.params and (e.params.StreamName or "") or "", e.sequence or ""))
    end
    for k, v in pairs(marks or {}) do io.stderr:write(string.format("%s %s at %.3f\n", name, k, v - t0)) end
  end

  local function figures(name, f)
    if not FIGURES then return end
    local keys = {}
    for k in pairs(f) do keys[#keys + 1] = k end
    table.sort(keys)
    local parts = {}
    for _, k in ipairs(keys) do
      local v = f[k]
      parts[#parts + 1] = k .. "=" .. (type(v) == "number" and string.format("%.4g", v) or tostring(v))
    end
    io.stderr:write("[spec/65 " .. name .. "] " .. table.concat(parts, " ") .. "\n")
  end

  -- Runs a case: `aliyun` processes (count streams each, their own names;
  -- `opts(i)` their NAME=VALUE options) and `zego` processes (rounds of one
  -- call on `ids` streams each, the same streams unless `own_streams`), all
  -- on `url`; `event(t0)` in the middle. Returns what happened.
  local function run(o)
    emulator:reset()
    local clients = {}
    local tag = "r" .. n_clients
    for i = 1, o.aliyun or 0 do
      local args = { "aliyun", emulator.aliyun_url, o.url, tag .. "-p" .. i, o.count }
      for _, x in ipairs(o.opts and o.opts(i) or {}) do args[#args + 1] = x end
      clients[#clients + 1] = start_client(args)
    end
    for i = 1, o.zego or 0 do
      local streams = o.own_streams and (tag .. "-z" .. i) or (tag .. "-z")
      clients[#clients + 1] = start_client { "zego", emulator.zego_url, o.url, streams, o.ids or 20, o.rounds }
    end
    local t0 = now()
    local marks = {}
    if o.event then marks = o.event(t0) or {} end
    local sum, errs, reports = finish(clients)
    local r = { sum = sum, errs = errs, reports = reports, clients = clients, t0 = t0, marks = marks,
                seconds = now() - t0 }
    r.ali = log_of("aliyun", "ResumeLiveStream")
    r.zego = log_of("zego", "ResumeRTCStreams")
    local state = emulator:state()
    r.ali_counters = state.aliyun.counters.ResumeLiveStream or { accepted = 0 }
    r.zego_counters = state.zego.counters.ResumeRTCStreams or { accepted = 0 }
    debug_dump("aliyun", r.ali, t0, marks)
    debug_dump("zego", r.zego, t0)
    if FIGURES then
      for i, rep in ipairs(reports) do
        io.stderr:write(string.format("process %d (%s): %.2f s, %d succeeded; said:\n%s", i, clients[i].kind,
          rep.seconds, rep.succeeded, errs[i]))
      end
    end
    return r
  end

  -- What every case asserts: nothing lost, zero throttled, Sequences right.
  local function check_outcome(r, o)
    local streams = (o.aliyun or 0) * (o.count or 0) + (o.zego or 0) * (o.ids or 20) * (o.rounds or 0)
    assert.same({ total = streams, succeeded = streams, failed = 0, unknown = 0 }, r.sum)
    local ali_throttled, zego_throttled = r.ali_counters.throttled or 0, r.zego_counters.throttled or 0
    -- (the story only for a failure: it sorts the whole log)
    assert.equal(0, ali_throttled, ali_throttled > 0 and "Aliyun throttled: " .. throttle_story(r.ali, r.t0, r.marks))
    assert.equal((o.aliyun or 0) * (o.count or 0), r.ali_counters.accepted or 0)
    assert.equal(0, zego_throttled, zego_throttled > 0 and "ZEGO throttled: " .. throttle_story(r.zego, r.t0, r.marks))
    assert.equal((o.zego or 0) * (o.rounds or 0), r.zego_counters.accepted or 0)
    local superseded = check_sequences(r.zego)
    if FIGURES then io.stderr:write("[redis faults] ZEGO calls skipped as superseded: " .. superseded .. "\n") end
  end

  -- Each process's lines: `expect(kind, report)` gives what it must have
  -- said (see check_lines; kind "aliyun" or "zego"). Returns the counts
  -- summed by kind and index ("aliyun1", ...).
  local function check_all_lines(r, expect)
    local total = {}
    for i, c in ipairs(r.clients) do
      local expected = expect(c.kind, r.reports[i])
      local counts = check_lines("process " .. i .. " (" .. c.kind .. ")", r.errs[i], expected)
      for j, n in ipairs(counts) do
        local key = c.kind .. j
        total[key] = (total[key] or 0) + n
      end
    end
    return total
  end

  -- Each process that ran past `settled` (seconds, absolute) said that
  -- Redis answers again as often as that it failed, for each store.
  local function check_pairs(r, s, settled)
    for i, c in ipairs(r.clients) do
      if r.reports[i].ended > settled then
        local e = r.errs[i]
        local function n(p)
          local k = 0
          for line in e:gmatch("[^\n]+") do if line:find(p) then k = k + 1 end end
          return k
        end
        local who = "process " .. i .. " (" .. c.kind .. "):\n" .. e
        assert.equal(n(s.failed_rl), n(s.back_rl), who)
        assert.equal(n(s.failed_seq), n(s.back_seq), who)
        assert.equal(n(s.failed_dec), n(s.back_dec), who)
      end
    end
  end

  -- How many times a process says what an event at `at` makes each process
  -- that knew the budget say once: none when its run ended before the event,
  -- once when it ended `after` seconds past it (default 1: it has asked Redis
  -- since), else either.
  local function once_if_running(rep, at, after)
    if rep.ended < at then return 0, 0 end
    if rep.ended > at + (after or 1) then return 1, 1 end
    return 0, 1
  end

  local function redis_url(port, query)
    return "redis://:" .. PASSWORD .. "@127.0.0.1:" .. port .. (query or "")
  end

  -- The usual mid-run case: 10 Aliyun processes of 60 streams (600 at the
  -- cap: 21 s) and 3 ZEGO processes of 100 calls on one set of 20 streams
  -- (300 calls: 16 s); the event 6 s in. `more` may add `query` to the
  -- URL (a timeout_ms, where Redis' slowness is not under test).
  local MID = { aliyun = 10, count = 60, zego = 3, ids = 20, rounds = 100, at = 6 }
  local function mid_run(srv, event, more)
    local o = {}
    for k, v in pairs(MID) do o[k] = v end
    for k, v in pairs(more or {}) do o[k] = v end
    o.url = srv.url .. (o.query or "")
    o.event = function(t0)
      sleep(o.at - (now() - t0))
      return event()
    end
    return run(o), o
  end

  return {
    setup = setup, teardown = teardown, cleanup = cleanup,
    emu = emu, redis_helper = redis_helper, delayproxy = delayproxy, process = process, cjson = cjson,
    socket = socket, store = store, CAP = CAP, RATE = RATE, PASSWORD = PASSWORD, UID = UID, KEYS = KEYS,
    ALI_TAG = ALI_TAG, ZEGO_TAG = ZEGO_TAG, sleep = sleep, now = now, said = said, check_lines = check_lines,
    rate_of = rate_of, steady_rate = steady_rate, busiest_second = busiest_second, between = between, started = started,
    fresh_redis = fresh_redis, start_client = start_client, report_of = report_of, finish = finish,
    log_of = log_of, check_sequences = check_sequences, figures = figures, run = run,
    check_outcome = check_outcome, check_all_lines = check_all_lines, check_pairs = check_pairs,
    once_if_running = once_if_running, redis_url = redis_url, MID = MID, mid_run = mid_run,
    QUIET_QUERY = QUIET_QUERY, QUIET_PAUSE = QUIET_PAUSE,
  }
end

return M
