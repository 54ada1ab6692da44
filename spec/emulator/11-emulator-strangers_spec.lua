-- sanitizers: none (the emulator: its code runs in nginx, not in this process)
-- Strangers: another tool's calls on an account's or AppId's budget, counted
-- by the emulator's rate limiter but sent by nobody (docs/emulator.md,
-- "Strangers"), and the run-time caps (POST /_emulator/qps).
--
-- The limiter's replay is tested directly, at given times: exact counts,
-- bursts, both algorithms, the bounded replay, and against an independent
-- model of the window fed the same arrivals. The emulator's side runs a
-- server: its verdicts are checked against the same model, fed the times the
-- server itself reports (each request's rate_limit_time in the log, the
-- stranger's set_at and schedule), so no assertion depends on how fast the
-- machine is.
local emu = require "spec.helpers.emulator"
local rates = require "spec.helpers.rate_model"
local cjson = require "cjson"
local socket = require "socket"
local streamctl = require "streamctl"
local ratelimit = require "streamctl.emulator.ratelimit"
local strangers = require "streamctl.emulator.strangers"
local stats = require "streamctl.emulator.stats"
local config = require "streamctl.emulator.config"

-- The schedule as docs/development/emulator-fidelity.md states it: group k is `burst` arrivals at
-- t0 + k * (burst / rate), on a grid of 2^-20 s (t0: when it was set,
-- rounded down to the grid).
local GRID = 2 ^ 20
local function grid(t)
  return math.floor(t * GRID + 0.5) / GRID
end

-- The stranger's arrival times up to `upto` (each group's time `burst` times).
-- t0: as a listing shows it (JSON keeps 14 digits: back on the grid it is
-- exact again).
local function schedule(t0, rate, burst, upto, limit)
  local out, k, period = {}, 0, burst / rate
  t0 = grid(t0)
  while true do
    local t = grid(t0 + k * period)
    if t > upto or (limit and #out >= limit) then
      return out
    end
    for _ = 1, burst do
      out[#out + 1] = t
    end
    k = k + 1
  end
end

-- The models (an independent sliding window, a token bucket, and the replay
-- of a stranger's and the real arrivals through one): spec/helpers/rate_model.lua.
local window_model, bucket_model, run_model = rates.window_model, rates.bucket_model, rates.run_model

-- A deterministic generator, the same under Lua 5.4 and LuaJIT (Park and
-- Miller's: every product exact in a double).
local function generator(seed)
  local x = seed
  return function()
    x = (16807 * x) % 2147483647
    return x / 2147483647
  end
end

local INFO = { provider = "aliyun", action = "ResumeLiveStream", account = "LTAIunit", source = "control" }

describe("a stranger on the emulator's rate limiter", function()
  before_each(function()
    ratelimit.reset()
    strangers.reset()
    stats.reset()
  end)

  local function set(spec, t0)
    return strangers.set("k", assert(strangers.check(spec, "")), INFO, t0)
  end

  local function counts(s)
    return { s.accepted, s.throttled, s.skipped }
  end

  it("takes its share of the window before the real requests (steady, 4/s on 20/s)", function()
    local s = set({ rate = 4 }, 100)
    -- at 102.125 the window (101.125, 102.125] holds 101.25, 101.5, 101.75, 102.0
    local got = {}
    for i = 1, 20 do
      local ok, wait = ratelimit.take("k", 20, nil, 102.125)
      got[i] = ok and "ok" or wait
    end
    for i = 1, 16 do assert.equal("ok", got[i]) end
    for i = 17, 20 do assert.equal(125, got[i]) end   -- until 101.25 leaves
    assert.same({ 9, 0, 0 }, counts(s))               -- 100.0 .. 102.0
    -- 102.25 and 102.5 find room (19 in the window each), then the window is full
    assert.same({ false, 250 }, { ratelimit.take("k", 20, nil, 102.5) })
    assert.same({ 11, 0, 0 }, counts(s))
    -- 102.75 and 103.0 too; the oldest is now the real ones of 102.125
    assert.same({ false, 125 }, { ratelimit.take("k", 20, nil, 103.0) })
    assert.same({ 13, 0, 0 }, counts(s))
    -- once they have left, a real request passes beside the stranger's four
    assert.is_true(ratelimit.take("k", 20, nil, 103.2))
    local c = stats.snapshot("aliyun").ResumeLiveStream
    assert.same({ 13, 0 }, { c.stranger_accepted, c.stranger_throttled })
    assert.same({ 0, 0 }, { c.accepted, c.throttled })  -- the real ones are the gateway's to count
  end)

  it("is refused, taking nothing, when the real requests filled the window", function()
    local s = set({ rate = 4 }, 100)
    local ok = 0
    for _ = 1, 20 do
      if ratelimit.take("k", 20, nil, 100.0625) then ok = ok + 1 end
    end
    assert.equal(19, ok)                               -- 100.0 took a place
    assert.same({ false, 938 }, { ratelimit.take("k", 20, nil, 100.0625) })
    ratelimit.settle("k", 20, nil, 101.5)
    -- 100.25, 100.5, 100.75 refused; 101.0 (100.0 has left), 101.25, 101.5 accepted
    assert.same({ 4, 3, 0 }, counts(s))
    assert.same({ 4, 3 }, { stats.snapshot("aliyun").ResumeLiveStream.stranger_accepted,
      stats.snapshot("aliyun").ResumeLiveStream.stranger_throttled })
  end)

  it("sends a burst's arrivals at one instant (sliding window: 8 in any second)", function()
    local s = set({ rate = 10, burst = 5 }, 64)
    ratelimit.settle("k", 8, "sliding_window", 66.75)
    -- groups at 64, 64.5, ..., 66.5: 5, 3, 5, 3, 5, 3 accepted
    assert.same({ 24, 6, 0 }, counts(s))
    assert.is_false((ratelimit.take("k", 8, "sliding_window", 66.75)))
  end)

  it("sends a burst's arrivals at one instant (token bucket: 8 a second refilled)", function()
    local s = set({ rate = 10, burst = 5 }, 64)
    ratelimit.settle("k", 8, "token_bucket", 66.5)
    -- tokens before each group 8, 7, 6, 5, 4, 4: the last two let 4 of 5 through
    assert.same({ 28, 2, 0 }, counts(s))
    assert.same({ false, 125 }, { ratelimit.take("k", 8, "token_bucket", 66.5) })
  end)

  it("replays the last second only after a long idle time, counting the rest by its share", function()
    -- 4/s on 20/s, idle until 100.1: 401 arrivals due; only 99.25 .. 100.0 are offered
    local s = set({ rate = 4 }, 0)
    assert.is_true(ratelimit.take("k", 20, nil, 100.1))
    assert.same({ 401, 0, 397 }, counts(s))
    -- 32/s on 20/s, idle until 100.01: 3201 due; 99.03125 .. 100.0 offered (20 of 32 accepted),
    -- the 3169 before split 20:12, rounded half up: 1981 accepted
    strangers.reset()
    ratelimit.reset()
    s = strangers.set("k2", assert(strangers.check({ rate = 32 }, "")), INFO, 0)
    assert.same({ false, 22 }, { ratelimit.take("k2", 20, nil, 100.01) })
    assert.same({ 2001, 1200, 3169 }, counts(s))
    -- within 10 s of arrivals, everything is offered
    strangers.reset()
    ratelimit.reset()
    s = strangers.set("k3", assert(strangers.check({ rate = 4 }, "")), INFO, 0)
    ratelimit.settle("k3", 20, nil, 9.9)
    assert.same({ 40, 0, 0 }, counts(s))
  end)

  it("bounds a long window's replay by its span (qps 0.1: 10 s)", function()
    -- 1/s on one in any 10 s, idle until 1000.5: 991 .. 1000 offered, 991 accepted;
    -- the 991 skipped split 1:9, rounded half up: 99 accepted
    local s = set({ rate = 1 }, 0)
    assert.same({ false, 500 }, { ratelimit.take("k", 0.1, nil, 1000.5) })
    assert.same({ 100, 901, 991 }, counts(s))
  end)

  it("counts every arrival on an unlimited budget, without offering them one by one", function()
    local s = set({ rate = 1000 }, 0)
    assert.is_true(ratelimit.take("k", 0, nil, 3600))
    assert.same({ 3600001, 0, 0 }, counts(s))
  end)

  it("stays exact at the cap: a steady stranger at exactly qps is never refused", function()
    for _, rate in ipairs({ 1, 5, 15, 20, 30, 166 }) do
      ratelimit.reset()
      strangers.reset()
      local s = set({ rate = rate }, 12345.678901)
      local last
      for t = 12346, 12646, 0.37 do
        ratelimit.settle("k", rate, nil, t)
        last = t
      end
      assert.equal(0, s.throttled, "rate " .. rate)
      assert.equal(#schedule(s.t0, rate, 1, last), s.accepted, "rate " .. rate)
    end
  end)

  it("agrees with an independent model of the window and of the bucket, arrival by arrival", function()
    for _, alg in ipairs({ "sliding_window", "token_bucket" }) do
      for _, spec in ipairs({ { rate = 5 }, { rate = 12, burst = 4 }, { rate = 30 }, { rate = 2.5, burst = 3 } }) do
        ratelimit.reset()
        strangers.reset()
        stats.reset()
        local t0 = 50.3
        local s = set(spec, t0)
        local rnd = generator(7 + spec.rate)
        local reals, t = {}, 50
        while t < 90 do
          t = t + (rnd() < 0.03 and 2 + 3 * rnd() or -math.log(1 - rnd()) / 30)
          reals[#reals + 1] = t
        end
        local got = {}
        for i, r in ipairs(reals) do
          got[i] = ratelimit.take("k", 20, alg, r) and true or false
        end
        ratelimit.settle("k", 20, alg, 95)
        local model = alg == "sliding_window" and window_model(20, 1) or bucket_model(20)
        assert.equal(math.floor(t0 * GRID) / GRID, s.t0)  -- the grid's, never after it was set
        local want, acc, thr = run_model(model, schedule(s.t0, spec.rate, spec.burst or 1, 95), reals)
        local what = alg .. " " .. cjson.encode(spec)
        assert.same(want, got, what)
        assert.same({ acc, thr, 0 }, counts(s), what)
        assert.is_true(thr > 0 or spec.rate <= 12, what)   -- the reals left it no room at times
        local c = stats.snapshot("aliyun").ResumeLiveStream
        assert.same({ acc, thr }, { c.stranger_accepted, c.stranger_throttled }, what)
      end
    end
  end)

  it("keeps the newest arrivals when a run-time cap shrinks the window", function()
    for k = 0, 29 do
      assert.is_true(ratelimit.take("k", 30, nil, k / 64))
    end
    ratelimit.set_cap("k", 15, INFO)
    -- the 15 newest (15/64 .. 29/64) count: refused until 15/64 leaves
    assert.same({ false, 735 }, { ratelimit.take("k", 30, nil, 0.5) })
    assert.is_true(ratelimit.take("k", 30, nil, 1.25))  -- 17/64 .. 29/64 and this one: 14
    assert.equal(15, ratelimit.drop_cap("k").qps)
    assert.is_true(ratelimit.take("k", 30, nil, 1.25))
    ratelimit.set_cap("k", 15, INFO)
    ratelimit.reset()
    assert.is_nil(ratelimit.cap("k"))
  end)
end)

describe("strangers in the emulator's config", function()
  local UID = "1234567890123456"

  local function build_error(override)
    local ok, err = pcall(config.build, override)
    assert.is_false(ok)
    return err
  end

  local function key(strangers_value)
    return { aliyun = { accounts = { LTAIx = { secret = "s", strangers = strangers_value } } } }
  end

  it("names the key and the rule of a bad one", function()
    local P = "aliyun.accounts.LTAIx.strangers"
    local cases = {
      { key(5), P .. ': expected an object of Actions, each {"rate": calls per second, "burst": n}' },
      { key({ ResumeLiveStream = 5 }), P .. '.ResumeLiveStream: expected an object {"rate": calls per second, '
        .. '"burst": n}' },
      { key({ ResumeLiveStream = { rate = 0 } }), P .. ".ResumeLiveStream.rate: expected a number > 0 and at most "
        .. "1000 (calls per second), got 0" },
      { key({ ResumeLiveStream = { rate = "5" } }), P .. ".ResumeLiveStream.rate: expected a number > 0 and at "
        .. 'most 1000 (calls per second), got "5"' },
      { key({ ResumeLiveStream = { rate = 1001 } }), P .. ".ResumeLiveStream.rate: expected a number > 0 and at "
        .. "most 1000 (calls per second), got 1001" },
      { key({ ResumeLiveStream = {} }), P .. ".ResumeLiveStream.rate: expected a number > 0 and at most 1000 "
        .. "(calls per second), got nil" },
      { key({ ResumeLiveStream = { rate = 5, burst = 1.5 } }), P .. ".ResumeLiveStream.burst: expected an integer "
        .. "from 1 to 1000000 (calls at the same instant), got 1.5" },
      { key({ ResumeLiveStream = { rate = 5, burst = 0 } }), P .. ".ResumeLiveStream.burst: expected an integer "
        .. "from 1 to 1000000 (calls at the same instant), got 0" },
      { key({ ResumeLiveStream = { rate = 5, brust = 2 } }), P .. '.ResumeLiveStream: unknown key "brust" (a '
        .. "stranger has rate and burst)" },
      { key({ ResumeLiveStreams = { rate = 5 } }), P .. ".ResumeLiveStreams: expected an Action with a rate "
        .. "limit (a key of aliyun.qps or of this key's qps)" },
      { { zego = { apps = { ["4242"] = { secret = "s", strangers = { ForbidRTCStream = { rate = -1 } } } } } },
        "zego.apps.4242.strangers.ForbidRTCStream.rate: expected a number > 0 and at most 1000 (calls per "
        .. "second), got -1" },
      { { zego = { apps = { ["4242"] = { secret = "s", strangers = { ResumeLiveStream = { rate = 1 } } } } } },
        "zego.apps.4242.strangers.ResumeLiveStream: expected an Action with a rate limit (a key of zego.qps or of "
        .. "this app's qps)" },
      { { aliyun = { accounts = {
          LTAIa = { secret = "a", account = UID, strangers = { ForbidLiveStream = { rate = 2 } } },
          LTAIb = { secret = "b", account = UID, strangers = { ForbidLiveStream = { rate = 2, burst = 2 } } } } } },
        'aliyun.accounts.LTAIb.strangers.ForbidLiveStream: {"rate":2,"burst":2} here but {"rate":2,"burst":1} on '
        .. "LTAIa, another key of account " .. UID .. "; the keys of one account share its budget, so they must "
        .. "give the same strangers (or leave them out)" },
      { { aliyun = { accounts = {
          LTAIa = { secret = "a", account = UID, strangers = { ForbidLiveStream = { rate = 2 } } },
          LTAIb = { secret = "b", account = UID } } } },
        "aliyun.accounts.LTAIb.strangers.ForbidLiveStream: not given here but {\"rate\":2,\"burst\":1} on LTAIa, "
        .. "another key of account " .. UID .. "; the keys of one account share its budget, so they must give the "
        .. "same strangers (or leave them out)" },
    }
    for _, c in ipairs(cases) do
      assert.equal(c[2], build_error(c[1]))
    end
  end)

  it("takes a good one, its burst 1 by default, on an action of the key's own qps too", function()
    local cfg = config.build({ aliyun = { accounts = {
      LTAIa = { secret = "a", account = UID, strangers = { ForbidLiveStream = { rate = 2 } } },
      LTAIb = { secret = "b", account = UID, strangers = { ForbidLiveStream = { rate = 2, burst = 1 } } },
      LTAIc = { secret = "c", qps = { Custom = 3 }, strangers = { Custom = { rate = 0.5, burst = 4 } } } } } })
    assert.same({ ForbidLiveStream = { rate = 2, burst = 1 } }, cfg.aliyun.accounts.LTAIa.strangers)
    assert.same({ Custom = { rate = 0.5, burst = 4 } }, cfg.aliyun.accounts.LTAIc.strangers)
  end)

  it("stops the emulator's start with the message", function()
    local dir = os.tmpname()
    os.remove(dir)
    local ok, err = pcall(emu.start, { dir = dir, config = key({ ResumeLiveStream = { rate = 0 } }) })
    if ok then err:stop() end
    os.execute("rm -rf '" .. dir .. "'")
    assert.is_false(ok)
    assert.matches("config.json: aliyun.accounts.LTAIx.strangers.ResumeLiveStream.rate: expected a number > 0 "
      .. "and at most 1000 (calls per second), got 0", tostring(err), 1, true)
  end)
end)

describe("strangers in the emulator", function()
  local UID = "1234567890123456"
  local ZEGO_SECRET = "0123456789abcdef0123456789abcdef"
  local CONFIG = {
    aliyun = { accounts = {
      LTAIfull = { secret = "full-secret", qps = { ResumeLiveStream = 20 } },
      LTAIram1 = { secret = "ram1-secret", account = UID, strangers = { ForbidLiveStream = { rate = 2 } } },
      LTAIram2 = { secret = "ram2-secret", account = UID, strangers = { ForbidLiveStream = { rate = 2 } } },
    } },
    zego = { apps = {
      ["4242"] = { secret = ZEGO_SECRET, strangers = { ResumeRTCStreams = { rate = 5, burst = 5 } } },
    } },
  }
  local server

  lazy_setup(function()
    server = emu.start({ config = CONFIG })
  end)

  lazy_teardown(function()
    if server then server:stop() end
  end)

  before_each(function()
    server:reset()
  end)

  local function control(method, path, value, want_status)
    local answer, status = server:control(method, path, value)
    assert.equal(want_status or 200, status, cjson.encode(answer))
    return answer
  end

  local function aliyun_client()
    return assert(streamctl.aliyun.new { endpoint = server.aliyun_url, access_key_id = "LTAIfull",
      access_key_secret = "full-secret", rate_limits = false, retry = false })
  end

  local n = 0
  local function resume(client)
    n = n + 1
    local _, err = client:resume_live_stream { domain_name = "live.example.com", app_name = "app",
      stream_name = "stranger" .. n }
    assert(err == nil or err.code == "Throttling.User", tostring(err))
    return err == nil
  end

  -- The stranger of key `account` in a listing.
  local function find(list, account)
    for _, s in ipairs(list) do
      if s.account == account then return s end
    end
  end

  -- The arrivals a listed stranger has had by `now`, by its schedule.
  local function due(s, now)
    return #schedule(s.set_at, s.rate, s.burst, now)
  end

  it("takes its share of a 20/s budget before the real requests, and leaves when removed", function()
    local set = control("POST", "strangers", { account = "LTAIfull", action = "ResumeLiveStream", rate = 5 })
    local s = set.set[1]
    assert.same({ "aliyun", "LTAIfull", "ResumeLiveStream", 5, 1, "control", 20, "sliding_window" },
      { s.provider, s.account, s.action, s.rate, s.burst, s.source, s.qps, s.rate_limiter })
    socket.sleep(1.2)
    local client = aliyun_client()
    local verdicts = {}
    for i = 1, 30 do verdicts[i] = resume(client) end
    local removed = control("DELETE", "strangers", { account = "LTAIfull", action = "ResumeLiveStream" })
    assert.equal(1, #removed.removed)
    assert.is_nil(find(removed.strangers, "LTAIfull"))  -- the config's two stay
    assert.equal(2, #removed.strangers)
    local gone = removed.removed[1]
    for i = 31, 40 do verdicts[i] = resume(client) end
    -- a second later the budget is the real requests' alone: twenty in a row pass, however slow
    socket.sleep(1.1)
    for i = 41, 60 do
      verdicts[i] = resume(client)
      assert.is_true(verdicts[i], "request " .. i)
    end
    client:close()
    -- the model, fed the stranger's arrivals up to its removal and the real ones at the limiter's times
    local entries = server:log({ action = "ResumeLiveStream" })
    assert.equal(60, #entries)                       -- strangers never reach the log
    local times = {}
    for i, e in ipairs(entries) do
      times[i] = e.rate_limit_time
      assert.equal(verdicts[i] and "ok" or "throttled", e.verdict)
    end
    local arrivals = schedule(gone.set_at, 5, 1, math.huge, gone.arrivals)
    assert.equal(gone.arrivals, #arrivals)
    assert.is_true(arrivals[#arrivals] <= times[31])  -- none after the removal
    assert.is_true(gone.arrivals >= due(gone, times[30]))
    local want, acc, thr = run_model(window_model(20, 1), arrivals, times)
    for i = 1, 60 do
      assert.equal(want[i], verdicts[i], "request " .. i)
    end
    assert.same({ acc, thr, gone.arrivals }, { gone.accepted, gone.throttled, gone.accepted + gone.throttled })
    assert.is_true(acc >= 6)                         -- 1.2 s of a steady 5/s before the first real one
    local c = server:state().aliyun.counters.ResumeLiveStream
    local real_ok = 0
    for i = 1, 60 do real_ok = real_ok + (verdicts[i] and 1 or 0) end
    assert.same({ real_ok, 60 - real_ok, acc, thr },
      { c.accepted, c.throttled, c.stranger_accepted, c.stranger_throttled })
  end)

  it("fills a long window (a run-time qps of 0.05): a real request waits until it leaves", function()
    local capped = control("POST", "qps", { account = "LTAIfull", action = "ResumeLiveStream", qps = 0.05 })
    assert.same({ { provider = "aliyun", account = "LTAIfull", action = "ResumeLiveStream", qps = 0.05,
      config_qps = 20 } }, capped.set)
    assert.same(capped.set, capped.qps)
    -- three at once, the next three 300 s later: one fits in one request per 20 s
    local s = control("POST", "strangers", { account = "LTAIfull", action = "ResumeLiveStream", rate = 0.01,
      burst = 3 }).set[1]
    local client = aliyun_client()
    assert.is_false(resume(client))
    local e = server:log({ action = "ResumeLiveStream" })[1]
    assert.equal(math.ceil((grid(s.set_at) + 20 - e.rate_limit_time) * 1000), e.retry_after_ms)
    local listed = find(control("GET", "strangers").strangers, "LTAIfull")
    assert.same({ 3, 1, 2, 0.05 }, { listed.arrivals, listed.accepted, listed.throttled, listed.qps })
    local st = server:state()
    local c = st.aliyun.counters.ResumeLiveStream
    assert.same({ 0, 1, 1, 2 }, { c.accepted, c.throttled, c.stranger_accepted, c.stranger_throttled })
    assert.same(capped.qps, st.aliyun.qps_overrides)
    assert.same({}, st.zego.qps_overrides)
    assert.equal(0.05, find(st.aliyun.strangers, "LTAIfull").qps)
    -- back to the config's 20/s: the stranger's one arrival and this one
    local back = control("DELETE", "qps", { account = "LTAIfull", action = "ResumeLiveStream" })
    assert.same({ capped.set, {} }, { back.removed, back.qps })
    assert.is_true(resume(client))
    client:close()
    assert.equal(20, find(control("GET", "strangers").strangers, "LTAIfull").qps)
  end)

  it("refuses a ZEGO burst past the app's cap, and the real request after it", function()
    control("POST", "qps", { provider = "zego", app_id = 4242, action = "ForbidRTCStream", qps = 0.05 })
    local s = control("POST", "strangers", { provider = "zego", app_id = "4242", action = "ForbidRTCStream",
      rate = 0.01, burst = 3 }).set[1]
    assert.same({ "zego", "4242", 3 }, { s.provider, s.app_id, s.burst })
    local z = assert(streamctl.zego.new { endpoint = server.zego_url, app_id = 4242, server_secret = ZEGO_SECRET,
      rate_limits = false, retry = false })
    local _, err = z:forbid_rtc_stream { stream_id = "z1" }
    z:close()
    assert.equal(30002, err and err.code)
    local c = server:state().zego.counters.ForbidRTCStream
    assert.same({ 0, 1, 1, 2 }, { c.accepted, c.throttled, c.stranger_accepted, c.stranger_throttled })
    assert.equal(1, #server:log({ provider = "zego" }))
  end)

  it("starts the config's strangers, counts them by their schedule, and a reset restarts them", function()
    local function check(listing)
      assert.equal(2, #listing.strangers)
      local ali, zego = listing.strangers[1], listing.strangers[2]
      assert.same({ "aliyun", UID, "ForbidLiveStream", 2, 1, "config" },
        { ali.provider, ali.account_uid, ali.action, ali.rate, ali.burst, ali.source })
      assert.is_nil(ali.account)
      assert.same({ "zego", "4242", "ResumeRTCStreams", 5, 5, "config" },
        { zego.provider, zego.app_id, zego.action, zego.rate, zego.burst, zego.source })
      for _, s in ipairs(listing.strangers) do
        -- under both caps: every arrival accepted, none refused, as many as the schedule has by now
        local times = schedule(s.set_at, s.rate, s.burst, listing.now)
        assert.same({ #times, #times, 0, 0 }, { s.arrivals, s.accepted, s.throttled, s.skipped })
        assert.equal(schedule(s.set_at, s.rate, s.burst, math.huge, #times + 1)[#times + 1], grid(s.next_at))
      end
    end
    local first = control("GET", "strangers")
    check(first)
    control("POST", "strangers", { account = "LTAIfull", action = "ResumeLiveStream", rate = 3 })
    control("POST", "qps", { account = "LTAIfull", action = "ResumeLiveStream", qps = 7 })
    assert.equal(3, #control("GET", "strangers").strangers)
    server:reset()
    local again = control("GET", "strangers")
    check(again)
    assert.is_true(again.strangers[1].set_at >= first.now)
    assert.same({}, control("GET", "qps").qps)
    -- the state shows the same, and the counters only the strangers'
    local st = server:state()
    local c = st.zego.counters.ResumeRTCStreams
    assert.equal(st.zego.strangers[1].accepted, c.stranger_accepted)
    assert.same({ 0, 0, 0 }, { c.accepted, c.throttled, c.stranger_throttled })
    assert.equal(st.aliyun.strangers[1].accepted, st.aliyun.counters.ForbidLiveStream.stranger_accepted)
  end)

  it("names a key's account by its UID: any key of it sets, replaces and removes the same stranger", function()
    local set = control("POST", "strangers", { account = "LTAIram2", action = "ForbidLiveStream", rate = 4 })
    assert.same({ UID, "control", 4 }, { set.set[1].account_uid, set.set[1].source, set.set[1].rate })
    assert.is_nil(set.set[1].account)
    assert.equal(2, #set.strangers)                  -- it replaced the config's
    local removed = control("DELETE", "strangers", { account_uid = UID, action = "ForbidLiveStream" })
    assert.equal(1, #removed.removed)
    assert.same({ "zego" }, { removed.strangers[1].provider })
    local again = control("DELETE", "strangers", { account = "LTAIram1", action = "ForbidLiveStream" }, 400)
    assert.equal("strangers: entry 1: nothing to remove: no stranger on aliyun account_uid " .. UID
      .. " ForbidLiveStream", again.error)
    -- an empty body removes every one
    local status, text = server:request({ method = "DELETE", path = "/_emulator/strangers" })
    assert.equal(200, status)
    assert.same({}, cjson.decode(text).strangers)
  end)

  it("refuses a bad body naming the entry, the field and the rule, and changes nothing", function()
    local A = { account = "LTAIfull", action = "ResumeLiveStream" }
    local function with(t)
      local out = {}
      for k, v in pairs(A) do out[k] = v end
      for k, v in pairs(t) do out[k] = v end
      return out
    end
    local E = "strangers: entry 1: "
    local cases = {
      { "POST", "strangers", {}, "strangers: expected an object or a non-empty array of objects" },
      { "POST", "strangers", 5, "strangers: expected an object or a non-empty array of objects" },
      { "POST", "strangers", with({ rate = 5, provider = "aws" }), E .. 'provider: expected "aliyun" or "zego", got "aws"' },
      { "POST", "strangers", { account = "LTAInope", action = "ResumeLiveStream", rate = 5 }, E .. "account: expected "
        .. 'the AccessKeyId of a configured key or of an issued STS key (or account_uid: an account\'s UID), got "LTAInope"' },
      { "POST", "strangers", { action = "ResumeLiveStream", rate = 5 }, E .. "account: expected the AccessKeyId of a "
        .. "configured key or of an issued STS key (or account_uid: an account's UID), got nil" },
      { "POST", "strangers", { account_uid = "999", action = "ResumeLiveStream", rate = 5 }, E .. "account_uid: "
        .. 'expected the UID of an account the config names (a key\'s "account" or a role\'s), got "999"' },
      { "POST", "strangers", with({ account_uid = UID, rate = 5 }), E .. "account, account_uid: give one of them, not both" },
      { "POST", "strangers", with({ app_id = 4242, rate = 5 }), E .. "app_id: not an Aliyun field (name the budget by "
        .. "account or account_uid)" },
      { "POST", "strangers", with({ action = "Nope", rate = 5 }), E .. "action: expected an Action with a rate limit (a "
        .. 'key of aliyun.qps or of the account\'s qps), got "Nope"' },
      { "POST", "strangers", with({ rate = -1 }), E .. "rate: expected a number > 0 and at most 1000 (calls per "
        .. "second), got -1" },
      { "POST", "strangers", with({ rate = 5, burst = 0 }), E .. "burst: expected an integer from 1 to 1000000 (calls "
        .. "at the same instant), got 0" },
      { "POST", "strangers", with({ rate = 5, rat = 5 }), E .. 'unknown field "rat" (expected provider, account, '
        .. "account_uid, app_id, action, rate, burst)" },
      { "POST", "strangers", { provider = "zego", app_id = 1, action = "ForbidRTCStream", rate = 1 }, E .. "app_id: "
        .. "expected the AppId of a configured app (decimal digits), got 1" },
      { "POST", "strangers", { provider = "zego", app_id = 4242, account = "LTAIfull", action = "ForbidRTCStream",
        rate = 1 }, E .. "account: not a ZEGO field (name the budget by app_id)" },
      { "POST", "strangers", { provider = "zego", app_id = 4242, action = "ResumeLiveStream", rate = 1 }, E .. "action: "
        .. 'expected an Action with a rate limit (a key of zego.qps or of the app\'s qps), got "ResumeLiveStream"' },
      { "POST", "strangers", { with({ rate = 5 }), with({ rate = 0 }) }, "strangers: entry 2: rate: expected a number "
        .. "> 0 and at most 1000 (calls per second), got 0" },
      { "DELETE", "strangers", with({ rate = 5 }), E .. 'unknown field "rate" (expected provider, account, account_uid, '
        .. "app_id, action)" },
      { "DELETE", "strangers", A, E .. "nothing to remove: no stranger on aliyun account LTAIfull ResumeLiveStream" },
      { "POST", "qps", with({ qps = -1 }), "qps: entry 1: qps: expected a number >= 0 (requests per second; 0: "
        .. "unlimited), got -1" },
      { "POST", "qps", with({ qps = "15" }), "qps: entry 1: qps: expected a number >= 0 (requests per second; 0: "
        .. 'unlimited), got "15"' },
      { "POST", "qps", with({ qps = 15, rate = 1 }), 'qps: entry 1: unknown field "rate" (expected provider, account, '
        .. "account_uid, app_id, action, qps)" },
      { "DELETE", "qps", A, "qps: entry 1: nothing to remove: no run-time qps on aliyun account LTAIfull "
        .. "ResumeLiveStream" },
    }
    for _, c in ipairs(cases) do
      local answer = control(c[1], c[2], c[3], 400)
      assert.equal(c[4], answer.error)
    end
    -- nothing changed: the first entry of the refused array was not set
    assert.equal(2, #control("GET", "strangers").strangers)
    assert.same({}, control("GET", "qps").qps)
    local status, text = server:request({ method = "POST", path = "/_emulator/strangers", body = "{rate" })
    assert.equal(400, status)
    assert.matches("^body is not valid JSON", cjson.decode(text).error)
  end)
end)

-- Issue 87: the strictest count a provider could make, for specs that must pass against it.
describe("the emulator's closed sliding window (sliding_window_closed)", function()
  before_each(function() ratelimit.reset() end)

  it("counts an arrival exactly a window old, which the half-open window lets go", function()
    for _, alg in ipairs { "sliding_window", "sliding_window_closed" } do
      assert.is_true((ratelimit.take(alg, 2, alg, 10)))
      assert.is_true((ratelimit.take(alg, 2, alg, 10.5)))
    end
    -- at 11, the arrival at 10 is exactly 1 s old
    assert.same({ true }, { ratelimit.take("sliding_window", 2, "sliding_window", 11) })
    assert.same({ false, 1 }, { ratelimit.take("sliding_window_closed", 2, "sliding_window_closed", 11) })
    assert.same({ true }, { ratelimit.take("sliding_window_closed", 2, "sliding_window_closed", 11.001) })
    -- the independent model agrees
    local model = rates.limiter(2, "sliding_window_closed")
    assert.same({ true, true, false, true }, { model(10), model(10.5), (model(11)), model(11.001) })
    -- and the emulator's config takes it by name
    assert.equal("sliding_window_closed",
      config.build({ aliyun = { rate_limiter = "sliding_window_closed" } }).aliyun.rate_limiter)
  end)
end)
