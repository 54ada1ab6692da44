-- Shared state you can trust: Redis loses what it held, restarts empty,
-- stalls, evicts, or holds a schedule an hour ahead, mid-run, under ten
-- independent processes on one account (and ZEGO processes on one AppId,
-- on the same 20 streams), against the emulator counting the strictest way
-- (a sliding window). Each case: zero throttled, every stream succeeded,
-- every ZEGO Sequence accepted and, per stream, strictly increasing in the
-- order the emulator received them; and each process said exactly what
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
-- SPEC_FIGURES=1 prints each case's figures on stderr; SPEC_DEBUG=1 also
-- every arrival time.
local emu = require "spec.helpers.emulator"
local redis_helper = require "spec.helpers.redis"
local delayproxy = require "spec.helpers.delayproxy"
local process = require "spec.helpers.process"
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
local now = socket.gettime

-- What each process may say, as Lua patterns (host:port filled in).
local function said(addr)
  local at = "^streamctl: Redis at " .. addr:gsub("%.", "%%.") .. " "
  local function lost(tag, reason)
    return at .. "lost the shared rate%-limit schedule of " .. tag:gsub("%p", "%%%0") .. ": " .. reason
      .. ".*; nothing is sent on it for 1%.05 s"
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
local function rate_of(entries)
  if #entries < 2 then return 0 end
  return (#entries - 1) / (entries[#entries].real_time - entries[1].real_time)
end

-- The most arrivals in any one second (the sliding window's view).
local function busiest_second(entries)
  local most, j = 0, 1
  for i = 1, #entries do
    while entries[i].real_time - entries[j].real_time >= 1 do j = j + 1 end
    if i - j + 1 > most then most = i - j + 1 end
  end
  return most
end

local function between(entries, from, to)
  local list = {}
  for _, e in ipairs(entries) do
    if e.real_time >= from and e.real_time < to then list[#list + 1] = e end
  end
  return list
end

describe("shared state you can trust: Redis faults mid-run", function()
  local emulator, tmp

  lazy_setup(function()
    assert(redis_helper.available())
    emulator = emu.start { config = {
      aliyun = { rate_limiter = "sliding_window", accounts = {
        [KEYS.A[1]] = { secret = KEYS.A[2], account = UID },
        [KEYS.B[1]] = { secret = KEYS.B[2], account = UID },
      } },
      zego = { rate_limiter = "sliding_window" },
    } }
    tmp = process.temp_dir()
  end)

  lazy_teardown(function()
    if emulator then emulator:stop() end
    if tmp then os.execute("rm -rf " .. process.quote(tmp)) end
  end)

  -- What a case started, stopped when it ends (last first), however it ends.
  local started = {}
  after_each(function()
    for i = #started, 1, -1 do
      started[i]()
      started[i] = nil
    end
  end)

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

  -- Every ZEGO call accepted ("ok"), and per stream strictly increasing
  -- Sequences in arrival order.
  local function check_sequences(entries)
    local last = {}
    for _, e in ipairs(entries) do
      local s = assert(tonumber(e.sequence), "no Sequence logged")
      assert.equal("ok", e.verdict, "a call answered " .. tostring(e.verdict) .. " (Sequence " .. e.sequence .. ")")
      for _, id in ipairs(e.streams) do
        assert(last[id] == nil or s > last[id], "stream " .. id .. ": Sequence " .. s .. " after " .. tostring(last[id]))
        last[id] = s
      end
    end
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
    assert.equal(0, r.ali_counters.throttled or 0, "Aliyun throttled")
    assert.equal((o.aliyun or 0) * (o.count or 0), r.ali_counters.accepted or 0)
    assert.equal(0, r.zego_counters.throttled or 0, "ZEGO throttled")
    assert.equal((o.zego or 0) * (o.rounds or 0), r.zego_counters.accepted or 0)
    check_sequences(r.zego)
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
  -- (300 calls: 16 s); the event 6 s in.
  local MID = { aliyun = 10, count = 60, zego = 3, ids = 20, rounds = 100, at = 6 }
  local function mid_run(srv, event, more)
    local o = {}
    for k, v in pairs(MID) do o[k] = v end
    for k, v in pairs(more or {}) do o[k] = v end
    o.url = srv.url
    o.event = function(t0)
      sleep(o.at - (now() - t0))
      return event()
    end
    return run(o), o
  end

  it("FLUSHALL mid-run: every process says once that the schedule is gone and waits it out; zero throttled",
    function()
    local srv = fresh_redis()
    local r, o = mid_run(srv, function()
      assert.equal("OK", srv:cli("FLUSHALL"))
      return { flushall = now() }
    end)
    check_outcome(r, o)
    local s = said("127.0.0.1:" .. srv.port)
    local total = check_all_lines(r, function(kind, rep)
      local lo, hi = once_if_running(rep, r.marks.flushall)
      return { { s.gone(kind == "zego" and ZEGO_TAG or ALI_TAG), lo, hi } }
    end)
    figures("FLUSHALL", { lines_ali = total.aliyun1, lines_zego = total.zego1,
      throttled = r.ali_counters.throttled or 0, zthrottled = r.zego_counters.throttled or 0,
      failed = r.sum.failed, seconds = r.seconds, busiest = busiest_second(r.ali), zbusiest = busiest_second(r.zego),
      rate = rate_of(r.ali), zrate = rate_of(r.zego) })
  end)

  it("kill -9 and an immediate restart without persistence: the same, and nothing lost", function()
    local srv = fresh_redis()
    local r, o = mid_run(srv, function()
      local t = now()
      srv:kill()
      srv:restart()
      return { killed = t, back = now() }
    end)
    check_outcome(r, o)
    local s = said("127.0.0.1:" .. srv.port)
    -- (a process whose call fell between the kill and the restart also says
    -- that Redis failed, and that it answers again: a ZEGO process maybe
    -- twice, for its rate limits and its Sequences)
    local total = check_all_lines(r, function(kind, rep)
      local lo, hi = once_if_running(rep, r.marks.back)
      local lines = { { s.gone(kind == "zego" and ZEGO_TAG or ALI_TAG), lo, hi }, { s.failed_rl, 0, 1 },
                      { s.back_rl, 0, 1 } }
      if kind == "zego" then
        lines[4], lines[5] = { s.failed_seq, 0, 1 }, { s.back_seq, 0, 1 }
      end
      return lines
    end)
    check_pairs(r, s, r.marks.back + 1 + store.RETRY_MS / 1000)
    figures("kill -9", { throttled = r.ali_counters.throttled or 0, zthrottled = r.zego_counters.throttled or 0,
      seconds = r.seconds, gap = r.marks.back - r.marks.killed, failed_ali = total.aliyun2,
      failed_zego = total.zego2, lost_ali = total.aliyun1, lost_zego = total.zego1,
      busiest = busiest_second(r.ali), zbusiest = busiest_second(r.zego) })
  end)

  it("DEBUG SLEEP 3 mid-run: each process falls back to rate / 10 (the processes seen), says so once, and "
    .. "comes back", function()
    local srv = fresh_redis()
    -- (each ZEGO process on streams of its own: while some processes are on
    -- their own budgets and others back on Redis' schedule, Sequences for
    -- one stream from two of them can arrive out of order, which
    -- streamctl.store.redis does not promise to prevent)
    local r, o = mid_run(srv, function()
      -- from a connection of its own, not waited for
      assert(process.run("redis-cli -h 127.0.0.1 -p " .. srv.port .. " -a " .. process.quote(PASSWORD)
        .. " --no-auth-warning DEBUG SLEEP 3 >/dev/null 2>&1 &"))
      return { sleep = now() }
    end, { own_streams = true })
    check_outcome(r, o)
    local s = said("127.0.0.1:" .. srv.port)
    -- (failed: at its first call in the sleep; back: within retry_ms of its end)
    local total = check_all_lines(r, function(kind, rep)
      local flo, fhi = once_if_running(rep, r.marks.sleep)
      local blo, bhi = once_if_running(rep, r.marks.sleep + 3, 1 + store.RETRY_MS / 1000)
      local lines = { { s.failed_rl, flo, fhi }, { s.back_rl, blo, bhi } }
      if kind == "zego" then
        lines[3], lines[4] = { s.failed_seq, 0, 1 }, { s.back_seq, 0, 1 }
      end
      return lines
    end)
    check_pairs(r, s, r.marks.sleep + 3 + 1 + store.RETRY_MS / 1000)
    -- While Redis sleeps (after the slots it had handed out): together at
    -- most the rate (each process at rate / 10), where rate / 4 would be 2.5 times it.
    local at = r.marks.sleep
    local asleep = between(r.ali, at + 1, at + 3)
    local down = rate_of(asleep)
    assert.is_true(down <= RATE.aliyun * 1.1, "while Redis slept, together " .. down .. " per second")
    figures("DEBUG SLEEP", { throttled = r.ali_counters.throttled or 0, zthrottled = r.zego_counters.throttled or 0,
      seconds = r.seconds, asleep_rate = down, failed_ali = total.aliyun1, back_ali = total.aliyun2,
      failed_zego = total.zego1, back_zego = total.zego2, failed_seq = total.zego3, back_seq = total.zego4,
      zasleep_rate = rate_of(between(r.zego, at + 1, at + 3)),
      busiest = busiest_second(r.ali), zbusiest = busiest_second(r.zego) })
  end)

  for _, policy in ipairs { "allkeys-lru", "volatile-ttl" } do
    it("an evicting maxmemory (" .. policy .. ") beside a cache that fills it: warned once per process, "
      .. "zero throttled, nothing lost", function()
      local srv = fresh_redis { "--maxmemory", "4mb", "--maxmemory-policy", policy }
      local filler = start_client { "fill", srv.port, PASSWORD, 16, policy == "volatile-ttl" and 600 or 0 }
      local o = { url = srv.url, aliyun = 10, count = 40, zego = 2, ids = 20, rounds = 60 }
      local r = run(o)
      local fill = cjson.decode((assert(report_of(filler), "the filler printed nothing")))
      check_outcome(r, o)
      for i, rep in ipairs(r.reports) do assert.equal(policy, rep.policy, "process " .. i .. "'s connection") end
      local evicted = tonumber(srv:cli("INFO", "stats"):match("evicted_keys:(%d+)"))
      assert.is_true(evicted > 100, "evicted only " .. tostring(evicted) .. " keys")
      local s = said("127.0.0.1:" .. srv.port)
      -- (allkeys-lru may take streamctl's own hash, rarely: each time, each
      -- process says so; volatile-* never takes it, it has no expiry)
      local losses = policy == "allkeys-lru" and 100 or 0
      local total = check_all_lines(r, function(kind)
        return { { s.policy(policy), 1 }, { s.gone(kind == "zego" and ZEGO_TAG or ALI_TAG), 0, losses } }
      end)
      figures("maxmemory " .. policy, { throttled = r.ali_counters.throttled or 0,
        zthrottled = r.zego_counters.throttled or 0, seconds = r.seconds, evicted = evicted, filled = fill.set,
        fill_errors = fill.errors, losses_ali = total.aliyun2, losses_zego = total.zego2,
        busiest = busiest_second(r.ali), zbusiest = busiest_second(r.zego) })
    end)
  end

  it("a schedule an hour ahead mid-run: said once by each process as further ahead than possible; "
    .. "nobody sleeps on it", function()
    local srv = fresh_redis()
    local o = { url = srv.url, aliyun = 10, count = 50 }
    local key = "streamctl:{" .. ALI_TAG .. "}:rl"
    o.event = function(t0)
      sleep(6 - (now() - t0))
      local secs, usecs = srv:cli("TIME"):match("^(%d+)\n(%d+)$")
      local ahead = string.format("%.0f", (tonumber(secs) + 3600) * 1e6 + tonumber(usecs))
      assert.equal("0", srv:cli("HSET", key, "tat:ResumeLiveStream", ahead)) -- (the field was there)
      return { ahead = now() }
    end
    local r = run(o)
    check_outcome(r, o)
    local s = said("127.0.0.1:" .. srv.port)
    local total = check_all_lines(r, function(_, rep)
      local lo, hi = once_if_running(rep, r.marks.ahead)
      return { { s.ahead(ALI_TAG), lo, hi } }
    end)
    -- the run's own time (500 at the rate), the first use's pause and the
    -- loss's, and a few seconds for a loaded machine
    local expected = o.aliyun * o.count / RATE.aliyun + 2 * store.LOSS_PAUSE
    for i, rep in ipairs(r.reports) do
      assert.is_true(rep.seconds < expected + 4, "process " .. i .. " took " .. rep.seconds .. " s")
    end
    figures("an hour ahead", { throttled = r.ali_counters.throttled or 0, lines = total.aliyun1, seconds = r.seconds, expected = expected,
      busiest = busiest_second(r.ali), rate = rate_of(r.ali) })
  end)

  it("two RAM users' AccessKeys of one account: one budget, zero throttled, with account_id or asking STS "
    .. "(two budgets: throttled)", function()
    local srv = fresh_redis()
    -- `uid(k)`: the account_id the process with key k gives (nil: none, it asks STS)
    local function key_opts(i, uid)
      local k = i % 2 == 1 and KEYS.A or KEYS.B
      local args = { "key=" .. k[1], "secret=" .. k[2] }
      if uid and uid(k) then args[#args + 1] = "account_id=" .. uid(k) end
      return args
    end
    for _, how in ipairs { "account_id", "STS" } do
      local given = how == "account_id" and function() return UID end or nil
      local o = { url = srv.url, aliyun = 10, count = 30, opts = function(i) return key_opts(i, given) end }
      local r = run(o)
      check_outcome(r, o)
      check_all_lines(r, function() return {} end)
      local rate = rate_of(r.ali)
      assert.is_true(rate >= 0.9 * CAP.aliyun, how .. ": together only " .. rate .. " requests per second")
      -- asking STS: once per process (each has one key), none with account_id
      local asked = log_of("aliyun", "GetCallerIdentity")
      assert.equal(how == "STS" and 10 or 0, #asked)
      figures("two keys, " .. how, { throttled = r.ali_counters.throttled or 0, seconds = r.seconds, rate = rate,
                                     busiest = busiest_second(r.ali), sts_calls = #asked })
    end
    -- each key on a budget of its own (each process names a different account, as keying by
    -- AccessKeyId did): the account sees twice the cap
    local o2 = { url = srv.url, aliyun = 2, count = 40,
                 opts = function(i) return key_opts(i, function(k) return k == KEYS.A and "1" or "2" end) end }
    local r2 = run(o2)
    assert.equal(80, r2.sum.total)
    assert.is_true((r2.ali_counters.throttled or 0) > 0, "two budgets on one account were never throttled")
    figures("two keys, two budgets", { throttled = r2.ali_counters.throttled or 0 })
  end)

  -- In one process, against a Redis that stops answering for a while (a
  -- connect succeeds, commands wait): a call takes up to timeout_ms, and
  -- what the store hands out must count from when it answers.
  describe("a Redis that stops answering: what a slow call hands out counts from its end", function()
    local core = require "streamctl.core"
    local sleep_s = require("streamctl.transport.curl").sleep

    it("the fallback's slots stay 1/rate apart across the retries' timeouts", function()
      local sock, port = redis_helper.silent_server()
      started[#started + 1] = function() sock:close() end
      local logs = {}
      local rl = store.ratelimit_store({ port = port, timeout_ms = 200, nodes = 1 },
        { log = function(m) logs[#logs + 1] = m end, retry_ms = 300 })
      -- as the engine does: ask when the slot is within reach, send at its time
      local sends, deadline = {}, core.monotonic() + 10
      while #sends < 10 and core.monotonic() < deadline do
        local d, committed = rl:reserve("aliyun:silent:ResumeLiveStream", 4, 1, 0.5)
        if committed then
          if d > 0 then sleep_s(d) end
          sends[#sends + 1] = core.monotonic()
        else
          sleep_s(math.max(d - 0.5, 0.01))
        end
      end
      assert.equal(10, #sends)
      for i = 2, #sends do
        -- (4 per second, nodes 1: 0.25 s apart; a retry's 200 ms counted twice made 0.05)
        assert.is_true(sends[i] - sends[i - 1] >= 0.25 - 0.02,
          string.format("sends %d and %d only %.3f s apart", i - 1, i, sends[i] - sends[i - 1]))
      end
      assert.equal(1, #logs)
      assert.matches("failed %(timeout %(200 ms%)%)", logs[1])
    end)

    it("a Redis that stalls within timeout_ms is no clock jump: nothing lost, no pause", function()
      local srv = fresh_redis()
      local logs = {}
      local rl = store.ratelimit_store({ port = srv.port, password = PASSWORD, timeout_ms = 2000 },
        { log = function(m) logs[#logs + 1] = m end })
      local key = "aliyun:stall:ResumeLiveStream"
      assert.is_false(select(2, rl:reserve(key, 10, 1, 0.5)))  -- a first use: the pause
      sleep(rl:loss_pause(10) + 0.1) -- (2.6 s: timeout_ms 2000 counts)
      assert.is_true(select(2, rl:reserve(key, 10, 1, 0.5)))
      -- the stall asked for on a connection of this process's own, so it is
      -- under way before the reserve (a redis-cli started in the background
      -- could come after it on a busy machine)
      local function resp(args)
        local parts = { "*" .. #args .. "\r\n" }
        for _, x in ipairs(args) do parts[#parts + 1] = "$" .. #x .. "\r\n" .. x .. "\r\n" end
        return table.concat(parts)
      end
      local staller = assert(socket.tcp())
      staller:settimeout(5)
      assert(staller:connect("127.0.0.1", srv.port))
      assert(staller:send(resp { "AUTH", PASSWORD }))
      assert.equal("+OK", staller:receive("*l"))
      assert(staller:send(resp { "DEBUG", "SLEEP", "0.8" }))
      sleep(0.05)
      local t = now()
      assert.is_true(select(2, rl:reserve(key, 10, 1, 0.5)))  -- answered when Redis wakes
      assert.is_true(now() - t > 0.5, "Redis did not stall")
      assert.equal("+OK", staller:receive("*l"))
      staller:close()
      local d, committed = rl:reserve(key, 10, 1, 0.5)
      assert.is_true(committed and d < 0.5, "after the stall: " .. d .. " s")
      assert.same({}, logs)
    end)

    it("a Sequence taken after a timed-out call is this machine's clock at its end", function()
      local sock, port = redis_helper.silent_server()
      started[#started + 1] = function() sock:close() end
      local seq = store.sequence_store({ port = port, timeout_ms = 200 }, "zego:1234567890:",
        { log = function() end })
      local candidate = math.floor(core.now() * 1000)
      local v = seq:advance_all({ "s1", "s2" }, candidate)
      -- (another process may have sent a later value in those 200 ms)
      assert.is_true(v >= candidate + 150, "Sequence " .. v .. " for a call that began at " .. candidate)
      assert.is_true(v <= math.floor(core.now() * 1000))
    end)
  end)

  describe("ZEGO with Redis 5 ms away (a delaying proxy)", function()
    for _, procs in ipairs { 1, 3 } do
      it(procs .. " process(es): at least 90% of the cap, and one round trip per call", function()
        local srv = fresh_redis()
        local proxy = delayproxy.start { target_port = srv.port, delay_ms = 5, max_seconds = 120 }
        started[#started + 1] = proxy.stop
        assert.equal("OK", srv:cli("CONFIG", "RESETSTAT"))
        local o = { url = redis_url(proxy.port), zego = procs, ids = 20, rounds = math.floor(150 / procs) }
        local r = run(o)
        check_outcome(r, o)
        check_all_lines(r, function() return {} end)
        local rate = rate_of(r.zego)
        local stats = srv:cli("INFO", "commandstats")
        local evals = tonumber(stats:match("cmdstat_evalsha:calls=(%d+)") or 0)
          + tonumber(stats:match("cmdstat_eval:calls=(%d+)") or 0)
        local calls = r.zego_counters.accepted
        figures("ZEGO 5 ms x" .. procs, { throttled = r.zego_counters.throttled or 0, seconds = r.seconds,
          rate = rate, calls = calls, evals = evals, per_call = evals / calls, busiest = busiest_second(r.zego) })
        assert.is_true(rate >= 0.9 * CAP.zego, "only " .. rate .. " calls per second")
        -- one script call per call; a few more per process: the first
        -- (NOSCRIPT, then EVAL) and the first use's pause, asked about again
        assert.is_true(evals <= calls * 1.05 + 6 * procs, evals .. " script calls for " .. calls .. " calls")
      end)
    end
  end)
end)
