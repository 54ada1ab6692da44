-- tier: unit
-- sanitizers: none (the engine on a fake clock: pure Lua)
-- The runner through the clients, on a fake clock: pacing at the published
-- caps, retries (re-signed, backoff, budget), clock-skew correction,
-- per-stream order, ZEGO Sequence kept across retries, and recovery of a
-- create whose outcome is unknown.
local aliyun = require "streamctl.aliyun"
local zego = require "streamctl.zego"
local runner = require "streamctl.engine.runner"
local retry = require "streamctl.engine.retry"

local NOW = 1700000000

-- A fake world: a monotonic clock that only sleeping moves, and a transport
-- that answers with `script(request, n)` (n counts requests).
local function world()
  local w = { mono = 0, sent = {}, sleeps = {} }
  w.monotonic = function() return w.mono end
  w.sleep = function(s)
    w.sleeps[#w.sleeps + 1] = s
    w.mono = w.mono + s
  end
  w.transport = function(req)
    w.sent[#w.sent + 1] = { req = req, at = w.mono }
    return w.script(req, #w.sent)
  end
  w.script = function() return { status = 200, headers = {}, body = '{"RequestId":"ok"}' } end
  return w
end

local function ali(w, opts)
  local n = 0
  local o = {
    access_key_id = "AK", access_key_secret = "sk", clock = function() return NOW + w.mono end,
    nonce = function() n = n + 1 return "n" .. n end,
    monotonic = w.monotonic, sleep = w.sleep, transport = w.transport,
    retry = { random = function() return 1 end },
  }
  for k, v in pairs(opts or {}) do o[k] = v end
  return assert(aliyun.new(o))
end

local function err_body(code)
  return '{"RequestId":"e","HostId":"h","Code":"' .. code .. '","Message":"m"}'
end

local function names(n)
  local t = {}
  for i = 1, n do t[i] = "s" .. i end
  return t
end

local S = { domain_name = "example.com", app_name = "live" }

describe("pacing", function()
  it("sends ResumeLiveStream evenly under 30/s, with a fixed 5% margin (rate_margin)", function()
    local w = world()
    local cli = ali(w, { rate_margin = 0.05 })
    local report = cli:resume_live_streams { domain_name = S.domain_name, app_name = S.app_name,
                                             stream_names = names(90), concurrency = 8 }
    assert.equal(90, report.succeeded)
    assert.equal(90, #w.sent)
    for i = 2, 90 do
      assert.near(1.05 / 30, w.sent[i].at - w.sent[i - 1].at, 1e-9)
    end
    assert.near(89 * 1.05 / 30, w.mono, 1e-9)
  end)

  it("has a margin rule: the constants while cold; twice the spreads measured, within floors and ceilings",
    function()
      local pacing = require "streamctl.pipeline.pacing"
      local m = pacing.measure()
      assert.same({ 0.05, 0.02, 0.02 }, { m:rule() })
      for _ = 1, pacing.WARM - 1 do m:round_trip(0.001) m:sent_late(0) end
      assert.same({ 0.05, 0.02, 0.02 }, { m:rule() }) -- still cold
      m:round_trip(0.001)
      m:sent_late(0)
      assert.same({ 0.01, 0.005, 0.005 }, { m:rule() }) -- warm, quiet: the floors
      m:round_trip(0.9) -- a spread of 0.899 s: the guard at its ceiling (an eighth of a second)
      assert.same({ 0.13, 0.125, 0.005 }, { m:rule() })
      -- only the last SAMPLES count: a spread of 10 ms, sends up to 4 ms late
      for i = 1, pacing.SAMPLES do m:round_trip(0.002 + (i % 2) * 0.010) m:sent_late(0.004) end
      local margin, guard, late = m:rule()
      assert.near(0.022, guard, 1e-12)
      assert.near(0.010, late, 1e-12)
      assert.near(0.032, margin, 1e-12)
      m:round_trip(-1) -- (a clock that went back is no sample)
      assert.near(0.022, select(2, m:rule()), 1e-12)
      -- the lowest and highest kept as samples come and go: those of the last SAMPLES, every time
      local seen, k = {}, 7
      m = pacing.measure()
      for i = 1, 700 do
        k = (k * 1103515245 + 12345) % 2147483648
        local v = (k % 1000) / 1e5
        seen[i] = v
        m:round_trip(v)
        local lo, hi = math.huge, 0
        for j = math.max(1, i - pacing.SAMPLES + 1), i do lo, hi = math.min(lo, seen[j]), math.max(hi, seen[j]) end
        assert(m.rtt.lo == lo and m.rtt.hi == hi, "sample " .. i)
      end
    end)

  it("has a shared margin: the constant while cold, the longest round trip and the lateness once warm", function()
    -- Beside other processes on one budget what counts is how far this
    -- one's requests may trail theirs: its longest round trip (a one-way
    -- trip is anywhere within it), not its spread.
    local pacing = require "streamctl.pipeline.pacing"
    local m = pacing.measure()
    assert.equal(0.05, m:shared_margin())
    for _ = 1, pacing.WARM do m:round_trip(0.001) m:sent_late(0) end
    assert.equal(0.01, m:shared_margin()) -- quiet and near: the floor (1 ms + 5 ms + 2 ms under 1%)
    for _ = 1, pacing.SAMPLES do m:round_trip(0.040) m:sent_late(0.004) end
    assert.near(0.040 + 0.010 + 0.002, m:shared_margin(), 1e-12) -- steady but 40 ms away: no spread, 5.2%
    assert.near(0.005 + 0.010, m:rule(), 1e-12) -- (its own rule sees no spread: the guard at its floor)
    m:round_trip(0.5)
    assert.equal(0.25, m:shared_margin()) -- the ceiling
  end)

  it("takes its margin from what it measured: the constant while cold, the floor on a quiet link", function()
    -- Answers at once, sent on time: after pacing.WARM requests the spread is
    -- nil and the margin is its floor (1%), the window guard and lateness 5 ms.
    local pacing = require "streamctl.pipeline.pacing"
    local w = world()
    local cli = ali(w)
    assert(cli:resume_live_streams { domain_name = "d", app_name = "a", stream_names = names(60) })
    -- (a slot is reserved a few intervals ahead: the margin known then, the first pacing.WARM at 5%)
    local warm
    for i = 2, 60 do
      local gap = (w.sent[i].at - w.sent[i - 1].at) * 30
      if math.abs(gap - 1.01) < 1e-6 then
        warm = warm or i
      else
        assert.is_nil(warm, "request " .. i .. " at the cold margin after a warm one")
        assert.near(1.05, gap, 1e-6, "request " .. i)
      end
    end
    assert.is_true(warm > pacing.WARM and warm <= pacing.WARM + 8, "warm from request " .. tostring(warm))
    assert.same({ 0.01, 0.005, 0.005 }, { cli._pacer.measure:rule() })
  end)

  it("takes a larger margin on a noisy link: twice the round trips' spread and the sends' lateness", function()
    -- Round trips between 10 and 40 ms (a spread of 30 ms): the window
    -- guard 62 ms, and the margin that plus the lateness allowed (5 ms).
    local w = world()
    local k = 0
    w.transport = function(req)
      w.sent[#w.sent + 1] = { req = req, at = w.mono }
      k = k + 1
      w.mono = w.mono + 0.010 + (k % 4) * 0.010 -- (a transport that takes that long: this fake io waits)
      return w.script(req, #w.sent)
    end
    local cli = ali(w, { concurrency = 1 })
    assert(cli:resume_live_streams { domain_name = "d", app_name = "a", stream_names = names(40) })
    local margin, guard, late = cli._pacer.measure:rule()
    assert.near(0.062, guard, 1e-9)
    assert.is_true(late >= 0.005 and late <= 0.02, "late " .. late) -- (each send waited on the one before)
    assert.near(guard + late, margin, 1e-9)
    -- and every 31 consecutive sends span more than a second plus the guard, once warm
    for i = 31 + 10, #w.sent do
      assert.is_true(w.sent[i].at - w.sent[i - 30].at >= 1 + guard - 1e-9, "request " .. i)
    end
  end)

  it("keeps every N + 1 consecutive requests more than 1 s apart, so jitter cannot crowd a second", function()
    -- Each request leaves up to 45 ms after its slot (scheduling, network):
    -- counted the strictest way (any 1,000 ms window), no window holds more
    -- than the cap. Paced at exactly the cap, the same jitter puts cap + 1
    -- into some window.
    local function max_in_window(margin)
      local w = world()
      local k = 0
      local cli = ali(w, { rate_margin = margin })
      assert(cli:resume_live_streams { domain_name = "d", app_name = "a", stream_names = names(120) })
      local arrivals = {}
      for i, e in ipairs(w.sent) do
        k = (k * 1103515245 + 12345) % 2147483648 -- a fixed pseudo-random jitter
        arrivals[i] = e.at + (i % 2 == 0 and 0.045 or 0) * (k % 2)
      end
      table.sort(arrivals)
      local most, j = 0, 1
      for i = 1, #arrivals do
        while arrivals[i] - arrivals[j] >= 1.0 do j = j + 1 end
        most = math.max(most, i - j + 1)
      end
      return most
    end
    assert.is_true(max_in_window(nil) <= 30)
  end)

  it("lets a request that went out late delay the later ones instead of crowding a second", function()
    -- The process stalls 80 ms once (a GC pause, a busy machine): the
    -- request due then goes late. Counted by actual send times, no second
    -- may hold more than 30 ResumeLiveStream; the schedule alone would put
    -- 31 into the second after the late one. The late request gives up its
    -- slot (80 ms > runner.LATE) and takes the next free one, so the densest
    -- second holds 29.
    local w = world()
    local sleeps = 0
    w.sleep = function(s)
      sleeps = sleeps + 1
      w.mono = w.mono + s + (sleeps == 10 and 0.08 or 0)
    end
    local cli = ali(w, { sleep = w.sleep, rate_margin = 0.05 }) -- (the fixed margin: runner.LATE, WINDOW_GUARD)
    assert(cli:resume_live_streams { domain_name = "d", app_name = "a", stream_names = names(100) })
    local most, j = 0, 1
    for i = 1, #w.sent do
      while w.sent[i].at - w.sent[j].at >= 1.0 do j = j + 1 end
      most = math.max(most, i - j + 1)
    end
    assert.equal(29, most)
    for i = 31, #w.sent do
      assert.is_true(w.sent[i].at - w.sent[i - 30].at >= 1.02 - 1e-9, "request " .. i)
    end
  end)

  it("keeps separate buckets per action and honours overrides", function()
    local w = world()
    local cli = ali(w, { rate_limits = { ForbidLiveStream = 2 } })
    assert(cli:forbid_live_streams { domain_name = "d", app_name = "a", stream_names = names(3) })
    assert.near(1.05, w.mono, 1e-9) -- 3 under 2/s: 0, 0.525, 1.05
    assert(cli:resume_live_stream { domain_name = "d", app_name = "a", stream_name = "x" })
    assert.near(1.05, w.mono, 1e-9) -- another bucket: no wait
  end)

  it("can be switched off", function()
    local w = world()
    local cli = ali(w, { rate_limits = false })
    assert(cli:resume_live_streams { domain_name = "d", app_name = "a", stream_names = names(50) })
    assert.equal(0, w.mono)
  end)
end)

describe("pacing just in time", function()
  -- The engine alone on a fake clock, its pace a limiter over a memory store.
  local function engine_world(opts)
    local w = world()
    local pending = {}
    local io = {
      start = function(key, req) pending[#pending + 1] = { key = key, req = req } w.sent[#w.sent + 1] = { at = w.mono }
        return true end,
      poll = function(timeout)
        if #pending == 0 then w.mono = w.mono + timeout return {} end
        local out = pending
        pending = {}
        return (function()
          local t = {}
          for i, c in ipairs(out) do t[i] = { key = c.key, res = { status = 200, headers = {}, body = "ok" } } end
          return t
        end)()
      end,
      now = w.monotonic, sleep = w.sleep,
    }
    local limiter = require("streamctl.engine.ratelimit").new { clock = w.monotonic }
    w.held = 0   -- slots committed and not yet used, at most
    w.max_held = 0
    local engine = runner.new {
      io = io, retry = retry.policy {}, cancel = opts and opts.cancel,
      sign = function(a)
        w.held = w.held - 1
        w.signed = (w.signed or 0) + 1
        -- (a process held while it signs: `signing` seconds, the first time)
        if opts and opts.signing and w.signed == 1 then w.mono = w.mono + opts.signing end
        return { url = "/" .. a.action }
      end,
      decode = function(_, res, terr)
        if not res then return nil, { code = terr.code, message = terr.message, sent = terr.sent } end
        return { RequestId = "ok" }
      end,
      pace = function(action, max_delay)
        local d, committed, next_delay = limiter:reserve(action, opts and opts.rate or 10, 1, max_delay)
        if committed then
          w.held = w.held + 1
          if w.held > w.max_held then w.max_held = w.held end
        end
        w.reserved = (w.reserved or 0) + (committed and 1 or 0)
        return d, committed, next_delay
      end,
      horizon = function() return 0.4 end,
    }
    return w, engine
  end

  it("never holds more than the horizon's slots, however many jobs wait", function()
    local w, engine = engine_world()
    local jobs = {}
    for i = 1, 60 do jobs[i] = { action = "A", params = { N = i } } end
    engine:run(jobs, { concurrency = 16 })
    assert.equal(60, #w.sent)
    assert.equal(5, w.max_held) -- now, +0.1 .. +0.4
    for i = 2, 60 do assert.near(0.1, w.sent[i].at - w.sent[i - 1].at, 1e-9) end
  end)

  -- A slot the process was held past while signing: given up when the next
  -- slot is within a second and the guard of the late send (it would crowd
  -- that second), kept when it is further (a slow schedule: a new slot would
  -- cost a whole interval). spec/command/40's `--rate 0.0001` waited
  -- 10,000 s on a loaded machine before the slot was kept.
  local function held_while_signing(rate, signing)
    local w, engine = engine_world { rate = rate, signing = signing }
    engine:run({ { action = "A", params = {} } }, { concurrency = 1 })
    assert.equal(1, #w.sent)
    return w.sent[1].at, w.reserved
  end

  it("keeps a slot it was held past when the next slot is over a second and the guard away", function()
    local at, reserved = held_while_signing(0.0001, 0.5) -- the next slot 10,000 s on
    assert.near(0.5, at, 1e-9)
    assert.equal(1, reserved)
    at, reserved = held_while_signing(0.5, 0.5) -- the next slot at 2 s: 1.5 s after the late send
    assert.near(0.5, at, 1e-9)
    assert.equal(1, reserved)
  end)

  it("gives up a slot it was held past when the late send would share a second with the next slot", function()
    -- rate 10: held 0.5 s on a slot at 0, the next at 0.1; a new slot at 0.5, taken at once
    local at, reserved = held_while_signing(10, 0.5)
    assert.near(0.5, at, 1e-9)
    assert.equal(2, reserved)
    -- rate 0.5: held 1.5 s, the next slot at 2 s is 0.5 s on: given up, and the request waits for it
    at, reserved = held_while_signing(0.5, 1.5)
    assert.near(2, at, 1e-9)
    assert.equal(2, reserved)
    -- the boundary: the next slot exactly 1 s and the guard after the send keeps it
    at, reserved = held_while_signing(0.5, 2 - 1 - runner.WINDOW_GUARD)
    assert.near(2 - 1 - runner.WINDOW_GUARD, at, 1e-9)
    assert.equal(1, reserved)
  end)

  it("asks a cancel at least every 100 ms, however long the wait", function()
    local asked = {}
    local w
    local cancel = function()
      asked[#asked + 1] = w and w.mono or 0
      return w ~= nil and w.mono >= 5
    end
    local engine
    w, engine = engine_world { cancel = cancel, rate = 0.5 } -- a slot every 2 s
    local jobs = {}
    for i = 1, 100 do jobs[i] = { action = "A", params = { N = i } } end
    engine:run(jobs, { concurrency = 1 })
    assert.equal(3, #w.sent) -- at 0, 2 and 4 s
    for i = 2, #asked do assert.is_true(asked[i] - asked[i - 1] <= runner.CANCEL_POLL + 1e-9) end
    assert.is_true(w.mono < 5 + runner.CANCEL_POLL + 1e-9, "stopped at " .. w.mono)
  end)
end)

describe("retries", function()
  it("re-signs each attempt and backs off 100, 200 ms on server errors", function()
    local w = world()
    w.script = function(_, n)
      if n <= 2 then return { status = 500, headers = {}, body = err_body("InternalError") } end
      return { status = 200, headers = {}, body = '{"RequestId":"ok"}' }
    end
    local cli = ali(w, { rate_limits = false })
    local res = assert(cli:stop_live_pull_to_push { region = "cn-shanghai", task_id = "t" })
    assert.equal("ok", res.RequestId)
    assert.equal(3, #w.sent)
    assert.equal(2, #w.sleeps)
    assert.near(0.1, w.sleeps[1], 1e-9)
    assert.near(0.2, w.sleeps[2], 1e-9)
    assert.same({ "n1", "n2", "n3" }, { w.sent[1].req.headers["x-acs-signature-nonce"],
      w.sent[2].req.headers["x-acs-signature-nonce"], w.sent[3].req.headers["x-acs-signature-nonce"] })
    assert.equal("2023-11-14T22:13:20Z", w.sent[2].req.headers["x-acs-date"])
  end)

  it("backs off from 500 ms on throttling and honours x-acs-retry-after", function()
    local w = world()
    w.script = function(_, n)
      if n == 1 then return { status = 400, headers = {}, body = err_body("Throttling.User") } end
      if n == 2 then
        return { status = 400, headers = { ["x-acs-retry-after"] = "3000" }, body = err_body("Throttling.User") }
      end
      return { status = 200, headers = {}, body = '{"RequestId":"ok"}' }
    end
    local cli = ali(w, { rate_limits = false })
    assert(cli:resume_live_stream { domain_name = "d", app_name = "a", stream_name = "s" })
    assert.equal(2, #w.sleeps)
    assert.near(0.5, w.sleeps[1], 1e-9)
    assert.near(3.0, w.sleeps[2], 1e-9)
  end)

  it("gives up after the attempts and says how many were made", function()
    local w = world()
    w.script = function() return { status = 503, headers = {}, body = err_body("ServiceUnavailable") } end
    local cli = ali(w, { rate_limits = false })
    local res, err = cli:stop_live_pull_to_push { region = "cn-shanghai", task_id = "t" }
    assert.is_nil(res)
    assert.equal("ServiceUnavailable", err.code)
    assert.equal(3, err.attempts)
    assert.equal(3, #w.sent)
  end)

  it("never retries signature, auth or validation failures", function()
    for _, code in ipairs { "SignatureDoesNotMatch", "InvalidAccessKeyId.NotFound", "InvalidParameter" } do
      local w = world()
      w.script = function() return { status = 400, headers = {}, body = err_body(code) } end
      local cli = ali(w, { rate_limits = false })
      local _, err = cli:resume_live_stream { domain_name = "d", app_name = "a", stream_name = "s" }
      assert.equal(code, err.code)
      assert.equal(1, err.attempts)
      assert.equal(1, #w.sent)
    end
  end)

  it("corrects the clock from the Date header and retries once", function()
    local w = world()
    w.script = function(req, n)
      if n == 1 then
        return { status = 400, headers = { date = "Tue, 14 Nov 2023 23:13:20 GMT" },
                 body = err_body("InvalidTimeStamp.Expired") }
      end
      assert.equal("2023-11-14T23:13:20Z", req.headers["x-acs-date"])
      return { status = 200, headers = {}, body = '{"RequestId":"ok"}' }
    end
    local cli = ali(w, { rate_limits = false })
    assert(cli:resume_live_stream { domain_name = "d", app_name = "a", stream_name = "s" })
    assert.equal(2, #w.sent)
    assert.equal(3600, cli.clock_offset)
    assert.same({}, w.sleeps)
  end)

  it("stops retrying when the retry budget is spent, and the others still finish", function()
    local w = world()
    w.script = function(req)
      if req.headers["x-acs-action"] == "DescribeLiveStreamsBlockList" then -- nothing was forbidden
        return { status = 200, headers = {}, body = '{"RequestId":"B","TotalNum":0,"StreamUrls":{"StreamUrl":[]}}' }
      end
      if req.url:find("StreamName=bad", 1, true) then
        return { status = 500, headers = {}, body = err_body("InternalError") }
      end
      return { status = 200, headers = {}, body = '{"RequestId":"ok"}' }
    end
    local cli = ali(w, { rate_limits = false, retry = { random = function() return 0 end,
                                                        budget = { capacity = 2, refill_per_success = 0 } } })
    local list = { "bad", "ok1", "bad2", "ok2" }
    local report = cli:forbid_live_streams { domain_name = "d", app_name = "a", stream_names = list, concurrency = 1 }
    assert.equal(2, report.succeeded)
    -- a 500 may come after the change was made: those two are unknown, not failed
    assert.equal(0, report.failed)
    assert.equal(2, report.unknown)
    assert.same({ "bad", "ok1", "bad2", "ok2" }, { report.results[1].stream, report.results[2].stream,
      report.results[3].stream, report.results[4].stream })
    assert.equal(3, report.results[1].attempts) -- two retries take the whole budget
    assert.equal(1, report.results[3].attempts) -- none left
    assert.equal("InternalError", report.results[3].error.code)
    -- bad: 3 sends, each 500 followed by a block-list look-up; bad2: 1 send, 1 look-up; ok1, ok2: 1 each
    assert.equal(3 + 3 + 1 + 1 + 2, #w.sent)
  end)
end)

describe("unknown outcomes", function()
  local P = { region = "cn-shanghai", start_time = NOW, end_time = NOW + 3600, source_type = "vod",
              source_urls = { "https://a.example/1.mp4" }, dst_url = "rtmp://push.example/live/s1" }
  -- The TaskInfo DescribeLivePullToPushList shows for the task P creates.
  local OURS = '{"TaskName":"","SourceType":"vod","SourceUrls":["https://a.example/1.mp4"],'
    .. '"DstUrl":"rtmp://push.example/live/s1","StartTime":"2023-11-14T22:13:20Z","EndTime":"2023-11-14T23:13:20Z",'
    .. '"RepeatNumber":0,"RetryCount":3,"RetryInterval":60}'

  it("looks a create up by DstUrl instead of sending it again", function()
    local w = world()
    w.script = function(req, n)
      if n == 1 then return nil, { code = "Timeout", message = "timed out", sent = true } end
      assert.equal("DescribeLivePullToPushList", req.headers["x-acs-action"])
      assert.truthy(req.url:find("DstUrl=rtmp%3A%2F%2Fpush.example%2Flive%2Fs1", 1, true))
      return { status = 200, headers = {}, body = '{"RequestId":"L","Total":2,"TaskList":['
        .. '{"TaskId":"other","TaskStatus":1,"TaskInfo":{"DstUrl":"rtmp://push.example/live/s10"}},'
        .. '{"TaskId":"T-1","TaskStatus":1,"TaskInfo":' .. OURS .. '}]}' }
    end
    local cli = ali(w)
    local res = assert(cli:create_live_pull_to_push(P))
    -- (the create's own answer was lost: no RequestId of its own; the look-up's apart)
    assert.same({ LookupRequestId = "L", TaskId = "T-1", Recovered = true }, res)
    assert.equal(2, #w.sent)
  end)

  -- A look-up that lists `task` (JSON) for the DstUrl, asked at once and again once the lost
  -- create has settled (a copy of it may still land until then), then the resend's answer.
  local function after_lookup(task, resend)
    local w = world()
    w.script = function(req, n)
      if n == 1 then return nil, { code = "Timeout", message = "timed out", sent = true } end
      if n <= 3 then
        assert.equal("DescribeLivePullToPushList", req.headers["x-acs-action"])
        return { status = 200, headers = {}, body = '{"RequestId":"L","Total":1,"TaskList":[' .. task .. ']}' }
      end
      assert.equal("CreateLivePullToPush", req.headers["x-acs-action"])
      assert.is_true(w.sent[3].at >= w.sent[1].at + 10, "looked up again before the create settled")
      return resend
    end
    return w, ali(w)
  end

  it("takes no task for ours unless it has every setting the create sent and still runs", function()
    local created = { status = 200, headers = {}, body = '{"RequestId":"C","RetCode":0,"TaskId":"T-new"}' }
    -- a task for the same DstUrl that ran past its end (exited), and one that was stopped
    for _, status in ipairs { -1, 3 } do
      local w, cli = after_lookup('{"TaskId":"old","TaskStatus":' .. status .. ',"TaskInfo":' .. OURS .. '}', created)
      assert.same({ RequestId = "C", RetCode = 0, TaskId = "T-new" }, assert(cli:create_live_pull_to_push(P)))
      assert.equal(4, #w.sent)
    end
    -- a running task with the same DstUrl but other sources, start or end: someone else's
    for _, other in ipairs {
      OURS:gsub("1%.mp4", "2.mp4"), OURS:gsub("2023%-11%-14T22:13:20Z", "2023-11-14T22:13:21Z"),
      OURS:gsub('"vod"', '"url"'), OURS:gsub('"TaskName":""', '"TaskName":"theirs"'),
    } do
      local w, cli = after_lookup('{"TaskId":"theirs","TaskStatus":1,"TaskInfo":' .. other .. '}',
        { status = 400, headers = {}, body = err_body("CodeConfigAlreadyExists") })
      local res, err = cli:create_live_pull_to_push(P)
      assert.is_nil(res, other)
      assert.equal("CodeConfigAlreadyExists", err.code) -- the true answer, not a recovery
      assert.is_true(err.outcome_unknown) -- the first attempt's fate is still unknown
      assert.equal(4, #w.sent)
    end
  end)

  it("reports a stop whose answer was lost and whose retry says 'has stopped' as done", function()
    local w = world()
    w.script = function(_, n)
      if n == 1 then return nil, { code = "Timeout", message = "timed out", sent = true } end
      return { status = 400, headers = {}, body = err_body("CodeTaskHasStopped") }
    end
    local res = assert(ali(w):stop_live_pull_to_push { region = "cn-shanghai", task_id = "T-1" })
    assert.same({ RequestId = "e", Recovered = true }, res)
    assert.equal(2, #w.sent)
    -- without an earlier attempt that may have done it, "has stopped" is the answer
    local w2 = world()
    w2.script = function() return { status = 400, headers = {}, body = err_body("CodeTaskHasStopped") } end
    local _, err = ali(w2):stop_live_pull_to_push { region = "cn-shanghai", task_id = "T-1" }
    assert.equal("CodeTaskHasStopped", err.code)
  end)

  it("sends the create again when the look-up finds nothing, asked again once the lost one settled", function()
    local w = world()
    w.script = function(req, n)
      if n == 1 then return nil, { code = "NetworkError", message = "reset", sent = true } end
      if n <= 3 then return { status = 200, headers = {}, body = '{"RequestId":"L","Total":0,"TaskList":[]}' } end
      assert.equal("CreateLivePullToPush", req.headers["x-acs-action"])
      return { status = 200, headers = {}, body = '{"RequestId":"C","RetCode":0,"TaskId":"T-2"}' }
    end
    local cli = ali(w)
    local res = assert(cli:create_live_pull_to_push(P))
    assert.equal("T-2", res.TaskId)
    assert.equal(4, #w.sent)
    -- (the second look-up when the first create can no longer land: settle_ms, 10 s, after it left)
    assert.same({ 0, 0, 10 }, { w.sent[1].at, w.sent[2].at, w.sent[3].at })
  end)

  it("with settle_ms = 0, sends the create again right after a look-up that finds nothing", function()
    local w = world()
    w.script = function(req, n)
      if n == 1 then return nil, { code = "NetworkError", message = "reset", sent = true } end
      if n == 2 then return { status = 200, headers = {}, body = '{"RequestId":"L","Total":0,"TaskList":[]}' } end
      assert.equal("CreateLivePullToPush", req.headers["x-acs-action"])
      return { status = 200, headers = {}, body = '{"RequestId":"C","RetCode":0,"TaskId":"T-2"}' }
    end
    assert.equal("T-2", assert(ali(w, { settle_ms = 0 }):create_live_pull_to_push(P)).TaskId)
    assert.equal(3, #w.sent)
  end)

  it("reports the create's own failure when the look-up fails too", function()
    local w = world()
    w.script = function() return nil, { code = "Timeout", message = "timed out", sent = true } end
    local cli = ali(w)
    local res, err = cli:create_live_pull_to_push(P)
    assert.is_nil(res)
    assert.equal("CreateLivePullToPush", err.action)
    assert.equal("Timeout", err.code)
    assert.is_true(err.outcome_unknown)
    assert.matches("the look-up by DescribeLivePullToPushList failed too", err.message, 1, true)
    assert.equal(1, err.attempts)
    assert.equal(4, #w.sent) -- the create once, the look-up three times (its own attempts); never a second create
    assert.equal("CreateLivePullToPush", w.sent[1].req.headers["x-acs-action"])
    for i = 2, 4 do assert.equal("DescribeLivePullToPushList", w.sent[i].req.headers["x-acs-action"]) end
  end)

  it("checks the block list before forbidding a stream a second time", function()
    local w = world()
    w.script = function(req, n)
      if n == 1 then return nil, { code = "NetworkError", message = "reset", sent = true } end
      assert.equal("DescribeLiveStreamsBlockList", req.headers["x-acs-action"])
      assert.equal("https://live.aliyuncs.com/?DomainName=d&PageSize=3000", req.url)
      return { status = 200, headers = {}, body = '{"RequestId":"B","TotalNum":2,'
        .. '"StreamUrls":{"StreamUrl":["d/a/other","d/a/s"]}}' }
    end
    local res = assert(ali(w):forbid_live_stream { domain_name = "d", app_name = "a", stream_name = "s" })
    assert.same({ LookupRequestId = "B", Recovered = true }, res)
    assert.equal(2, #w.sent)
  end)

  it("resends a resume whose stream is still on the block list", function()
    local w = world()
    w.script = function(req, n)
      if n == 1 then return nil, { code = "Timeout", message = "timed out", sent = true } end
      if n == 2 then
        return { status = 200, headers = {}, body = '{"RequestId":"B","TotalNum":1,"StreamUrls":{"StreamUrl":["d/a/s"]}}' }
      end
      assert.equal("ResumeLiveStream", req.headers["x-acs-action"])
      return { status = 200, headers = {}, body = '{"RequestId":"R2"}' }
    end
    assert.equal("R2", assert(ali(w):resume_live_stream { domain_name = "d", app_name = "a", stream_name = "s" }).RequestId)
    assert.equal(3, #w.sent)
  end)

  it("resends when an incomplete block list cannot prove the stream absent", function()
    local w = world()
    w.script = function(_, n)
      if n == 1 then return nil, { code = "Timeout", message = "timed out", sent = true } end
      if n == 2 then
        return { status = 200, headers = {}, body = '{"RequestId":"B","TotalNum":5000,"StreamUrls":{"StreamUrl":["d/a/x"]}}' }
      end
      return { status = 200, headers = {}, body = '{"RequestId":"R2"}' }
    end
    assert(ali(w):resume_live_stream { domain_name = "d", app_name = "a", stream_name = "s" })
    assert.equal(3, #w.sent)
  end)

  it("looks a forbid up after a server error before sending it again", function()
    local w = world()
    w.script = function(req, n)
      if n == 1 then return { status = 500, headers = {}, body = err_body("InternalError") } end
      assert.equal("DescribeLiveStreamsBlockList", req.headers["x-acs-action"])
      return { status = 200, headers = {}, body = '{"RequestId":"B","TotalNum":1,"StreamUrls":{"StreamUrl":["d/a/s"]}}' }
    end
    local res = assert(ali(w):forbid_live_stream { domain_name = "d", app_name = "a", stream_name = "s" })
    assert.is_true(res.Recovered) -- the 500 came after the change was made: not sent again
    assert.equal(2, #w.sent)
  end)

  it("retries a create that never left the machine", function()
    local w = world()
    w.script = function(_, n)
      if n == 1 then return nil, { code = "NetworkError", message = "refused", sent = false } end
      return { status = 200, headers = {}, body = '{"RequestId":"C","TaskId":"T-3"}' }
    end
    local cli = ali(w)
    assert.equal("T-3", assert(cli:create_live_pull_to_push(P)).TaskId)
    assert.equal(2, #w.sent)
  end)
end)

describe("a room another process cut", function()
  -- A shared store that keeps rooms (as Redis does): its room drops to `cut` when the first request is
  -- answered (another process's throttle, learned at the next reservation). Never refuses a slot.
  local function run_with(cut)
    local w = world()
    local tat, asked, f = 0, 0, 1
    local store = {
      reserve = function(_, _, rate)
        asked = asked + 1
        if tat < w.mono then tat = w.mono end
        local delay = tat - w.mono
        tat = tat + 1 / (rate * f)
        return delay, true, tat - w.mono
      end,
      throttled = function() return true end,
      room = function() return f end,
    }
    w.script = function(_, n)
      if n == 2 then f = cut end -- (while other calls hold slots reserved before)
      return { status = 200, headers = {}, body = '{"RequestId":"ok"}' }
    end
    local cli = ali(w, { rate_limit_store = store, rate_margin = 0, account_id = "1" })
    local report = cli:resume_live_streams { domain_name = S.domain_name, app_name = S.app_name,
                                             stream_names = names(8), concurrency = 4 }
    assert.equal(8, report.succeeded)
    return asked, #w.sent
  end

  it("under 0.7 of the room last seen: the slots reserved before it are given up and reserved again", function()
    local asked, sent = run_with(0.5)
    assert.equal(8, sent)
    assert.is_true(asked > sent, asked .. " reservations for " .. sent .. " requests")
  end)

  it("a smaller cut (a probe's) keeps them: one reservation a request", function()
    local asked, sent = run_with(0.8)
    assert.equal(8, sent)
    assert.equal(sent, asked)
  end)
end)

describe("ZEGO", function()
  local function zc(w, opts)
    local n = 0
    local o = {
      app_id = 1234567890, server_secret = "0123456789abcdef0123456789abcdef",
      clock = function() return NOW + w.mono end, nonce = function() n = n + 1 return string.format("%016x", n) end,
      monotonic = w.monotonic, sleep = w.sleep, transport = w.transport,
      retry = { random = function() return 1 end },
    }
    for k, v in pairs(opts or {}) do o[k] = v end
    w.script = w.script_zego or function()
      return { status = 200, headers = {}, body = '{"Code":0,"Message":"success","RequestId":"z","Data":null}' }
    end
    return assert(zego.new(o))
  end

  it("lets go of a slot that went stale while its call was signed, and of the Sequence it took", function()
    local w = world()
    local slow = true
    local n = 0
    -- (signing held 0.1 s the first time: credentials renewed on the way, the process held)
    local cli = zc(w, { nonce = function()
      n = n + 1
      if slow then slow = false w.mono = w.mono + 0.1 end
      return string.format("%016x", n)
    end })
    local first = tonumber(cli._sequence:peek_for { "a" })
    local res = assert(cli:resume_rtc_stream { stream_id = "a" })
    assert.equal("z", res.RequestId)
    assert.equal(1, #w.sent) -- (the stale one never left)
    local sent = tonumber(w.sent[1].req.url:match("Sequence=(%d+)"))
    assert.is_true(sent > first, "a later Sequence than the one let go")
    assert.equal(2, n) -- signed twice
  end)

  -- (issue 87: a cold connection's handshake put its request behind later ones, 31 in 991 ms)
  it("takes back a request its transport did not send in time (SlotMissed): paced again, its Sequence given back",
    function()
      local w = world()
      w.script_zego = function(_, n)
        if n <= 3 then
          w.mono = w.mono + 0.05 -- (the connection's handshake)
          return nil, { code = "SlotMissed", sent = false, message = "the connection took 50 ms" }
        end
        return { status = 200, headers = {}, body = '{"Code":0,"Message":"success","RequestId":"z","Data":null}' }
      end
      local report = zc(w):resume_rtc_streams { stream_ids = { "a" } }
      assert.same({ 1, 1, 1 }, { report.succeeded, report.results[1].attempts, report.calls })
      assert.equal(4, #w.sent)
      local seqs = {}
      for i = 1, 3 do
        local within = w.sent[i].req.send_within_ms
        assert.is_true(type(within) == "number" and within > 0 and within <= 20, tostring(within))
        seqs[i] = tonumber(w.sent[i].req.url:match("Sequence=(%d+)"))
      end
      -- (after MAX_MISSES, sent however long its connection takes)
      assert.equal(3, require("streamctl.engine.slots").MAX_MISSES)
      assert.is_nil(w.sent[4].req.send_within_ms)
      assert.is_true(tonumber(w.sent[4].req.url:match("Sequence=(%d+)")) > seqs[3], "a Sequence taken afresh")
      -- each went on a slot of its own: the schedule's, never the missed one
      for i = 2, 4 do assert.is_true(w.sent[i].at > w.sent[i - 1].at) end
    end)

  it("sends a caller's Sequence late rather than lose it", function()
    local w = world()
    local slow = true
    local cli = zc(w, { nonce = function()
      if slow then slow = false w.mono = w.mono + 0.1 end
      return "00000000000000aa"
    end })
    assert(cli:resume_rtc_stream { stream_id = "a", sequence = "5" })
    assert.equal(1, #w.sent)
    assert.equal("5", w.sent[1].req.url:match("Sequence=(%d+)"))
  end)

  -- A call of `ids` answered `first`, then OK: done in two attempts, the retry with the first's
  -- Sequence, signed afresh. Returns the world.
  local function retried_after(first, ids)
    local w = world()
    w.script_zego = function(_, n)
      if n == 1 then return { status = 200, headers = {}, body = first } end
      return { status = 200, headers = {}, body = '{"Code":0,"Message":"ok","RequestId":"r2","Data":null}' }
    end
    local report = zc(w):resume_rtc_streams { stream_ids = ids }
    assert.equal(#ids, report.succeeded)
    assert.equal(2, report.results[1].attempts)
    local u1, u2 = w.sent[1].req.url, w.sent[2].req.url
    assert.equal(u1:match("Sequence=(%d+)"), u2:match("Sequence=(%d+)"))
    assert.not_equal(u1:match("SignatureNonce=(%x+)"), u2:match("SignatureNonce=(%x+)"))
    return w
  end

  it("keeps the Sequence on a retry after a throttle, and signs afresh", function()
    -- (the Sequence says when the call was decided: one another process decided later, for these
    -- streams, still wins over this retry, as it would have over the first send)
    local w = retried_after('{"Code":30002,"Message":"limit","RequestId":"r"}', { "a", "b" })
    -- a throttle goes back to the schedule: no backoff, the next slot (1.05 / 20 s after the first)
    assert.near(1.05 / 20, w.sleeps[#w.sleeps], 1e-9)
  end)

  it("keeps the Sequence on a retry after an answer that may have applied (a late duplicate is stale)", function()
    retried_after('{"Code":42001,"Message":"retry","RequestId":"r"}', { "a" })
  end)

  it("backs a throttled call off when nothing paces it (rate_limits = false)", function()
    local w = world()
    w.script_zego = function(_, n)
      if n == 1 then return { status = 200, headers = {}, body = '{"Code":30002,"Message":"limit","RequestId":"r"}' } end
      return { status = 200, headers = {}, body = '{"Code":0,"Message":"ok","RequestId":"r2","Data":null}' }
    end
    local cli = zc(w, { rate_limits = false })
    local report = cli:resume_rtc_streams { stream_ids = { "a" } }
    assert.equal(1, report.succeeded)
    assert.equal(0.5, w.sleeps[#w.sleeps]) -- throttle base (random() = 1 in this world)
  end)

  it("paces 1,000 IDs as 50 calls under 20/s", function()
    local w = world()
    local cli = zc(w, { rate_margin = 0.05 })
    local report = cli:forbid_rtc_streams { stream_ids = names(1000) }
    assert.equal(1000, report.succeeded)
    assert.equal(50, #w.sent)
    assert.near(49 * 1.05 / 20, w.mono, 1e-9)
  end)

  it("paces RTC forbid/resume at 5/s in the test environment", function()
    local w = world()
    local cli = zc(w, { is_test = true })
    local ids = {}
    for i = 1, 60 do ids[i] = "zegotest-1234567890-" .. i end
    assert(cli:resume_rtc_streams { stream_ids = ids })
    assert.equal(3, #w.sent)
    assert.near(2 * 1.05 / 5, w.mono, 1e-9)
  end)

  it("gives later calls on a stream later Sequences", function()
    local w = world()
    local cli = zc(w)
    assert(cli:forbid_rtc_streams { stream_ids = { "a", "b" } })
    assert(cli:resume_rtc_streams { stream_ids = { "a" } })
    local s1 = tonumber(w.sent[1].req.url:match("Sequence=(%d+)"))
    local s2 = tonumber(w.sent[2].req.url:match("Sequence=(%d+)"))
    assert.is_true(s2 > s1)
  end)
end)

describe("batch reports", function()
  it("keep every stream when on_progress raises", function()
    local w = world()
    local cli = ali(w, { rate_limits = false })
    local report = cli:resume_live_streams { domain_name = "d", app_name = "a", stream_names = names(5),
      on_progress = function(done) if done == 2 then error("callback bug") end end }
    assert.equal(5, report.succeeded)
    assert.equal(5, #report.results)
    assert.matches("callback bug", report.progress_error, 1, true)
  end)

  it("pace a look-up in its own action's bucket", function()
    local w = world()
    w.script = function(req, n)
      if req.headers["x-acs-action"] == "DescribeLivePullToPushList" then
        return { status = 200, headers = {}, body = '{"RequestId":"L","Total":0,"TaskList":[]}' }
      end
      if n == 1 then return nil, { code = "Timeout", message = "t", sent = true } end
      return { status = 200, headers = {}, body = '{"RequestId":"C","TaskId":"T"}' }
    end
    -- (settle_ms = 0: the create is sent again right after the look-up, its own bucket still full)
    local cli = ali(w, { rate_limits = { CreateLivePullToPush = 1, DescribeLivePullToPushList = 1000 }, settle_ms = 0 })
    assert(cli:create_live_pull_to_push { region = "cn-shanghai", start_time = NOW, end_time = NOW + 60,
      source_type = "url", source_urls = { "https://a/b" }, dst_url = "rtmp://x/y/z" })
    -- create at 0, look-up at once (its own bucket), the second create 1.05 s after the first
    assert.same({ 0, 0 }, { w.sent[1].at, w.sent[2].at })
    assert.near(1.05, w.sent[3].at, 1e-9)
  end)
end)

describe("per-stream order under concurrency", function()
  it("never starts a job before the earlier job on its stream has finished", function()
    local w = world()
    -- An io that finishes transfers last-in-first-out, one per poll.
    local pending = {}
    local io = {
      start = function(key, req) pending[#pending + 1] = { key = key, req = req } return true end,
      poll = function(timeout)
        local c = table.remove(pending)
        if not c then w.mono = w.mono + timeout return {} end
        w.sent[#w.sent + 1] = { req = c.req, at = w.mono }
        return { { key = c.key, res = { status = 200, headers = {}, body = '{"RequestId":"ok"}' } } }
      end,
    }
    io.now, io.sleep = w.monotonic, w.sleep
    -- The engine alone, without a client: its whole interface is given here.
    local engine = runner.new {
      io = io, retry = retry.policy {},
      sign = function(a) return { url = "/?N=" .. a.params.N } end,
      decode = function(_, res) return { RequestId = res.body } end,
      pace = function() return 0 end,
    }
    local jobs, order = {}, {}
    local streams = { "x", "y", "x", "z", "y", "x", "z", "x" }
    for i, s in ipairs(streams) do
      jobs[i] = { action = "ResumeLiveStream", params = { StreamName = s, N = tostring(i) }, streams = { s } }
    end
    local finished = {}
    engine:run(jobs, { concurrency = 4, on_progress = function(_, _, job)
      finished[#finished + 1] = job.params.N
    end })
    for _, entry in ipairs(w.sent) do
      order[#order + 1] = entry.req.url:match("N=(%d+)")
    end
    assert.equal(8, #order)
    -- Per stream, completions follow submission order.
    local last = {}
    for _, n in ipairs(finished) do
      local s = streams[tonumber(n)]
      if last[s] then assert.is_true(tonumber(n) > last[s], "stream " .. s .. " reordered") end
      last[s] = tonumber(n)
    end
    -- And jobs on different streams really overlapped (LIFO finished 4 before 1).
    local pos = {}
    for i, n in ipairs(finished) do pos[n] = i end
    assert.is_true(pos["4"] < pos["1"])
  end)
end)

describe("the engine", function()
  -- An io that completes one transfer per poll, oldest first, and counts its
  -- polls so that a run which cannot finish fails instead of hanging.
  local function one_per_poll(w)
    local pending, polls = {}, 0
    return {
      start = function(key, req) pending[#pending + 1] = { key = key, req = req } return true end,
      poll = function(timeout)
        polls = polls + 1
        if polls > 10000 then error("the run is stuck: 10,000 polls") end
        local c = table.remove(pending, 1)
        if not c then w.mono = w.mono + timeout return {} end
        w.sent[#w.sent + 1] = { req = c.req, at = w.mono }
        return { { key = c.key, res = { status = 200, headers = {}, body = '{"RequestId":"ok"}' } } }
      end,
      now = w.monotonic, sleep = w.sleep,
    }
  end

  it("lets on_progress call the same client: nested runs keep their own completions", function()
    local w = world()
    local cli = ali(w, { transport = one_per_poll(w), rate_limits = false })
    local inner = {}
    local report = cli:resume_live_streams { domain_name = "d", app_name = "a", stream_names = names(6),
      concurrency = 4,
      on_progress = function(_, _, entry)
        inner[#inner + 1] = assert(cli:forbid_live_stream { domain_name = "d", app_name = "a",
                                                             stream_name = "n-" .. entry.stream })
      end }
    assert.is_nil(report.progress_error)
    assert.equal(6, report.succeeded)
    assert.equal(6, #inner)
    assert.equal(12, #w.sent)
  end)

  it("measures no round trip over which a reservation held the loop (its answer waited on the process)",
    function()
      -- Each transfer is answered 5 ms after it starts; the second job's
      -- reservation takes 20 ms (a blocking Redis call), while the first is
      -- in flight. The first's 25 ms is the process's, not the network's.
      local w = world()
      local pending = {}
      local io = {
        start = function(key) pending[#pending + 1] = { key = key, at = w.mono + 0.005 } return true end,
        poll = function(timeout)
          local c = pending[1]
          if not c then w.mono = w.mono + timeout return {} end
          table.remove(pending, 1)
          if c.at > w.mono then w.mono = c.at end
          return { { key = c.key, res = { status = 200, headers = {}, body = "ok" } } }
        end,
        now = w.monotonic, sleep = w.sleep,
      }
      local rtts, n = {}, 0
      local engine = runner.new {
        io = io, retry = retry.policy {},
        sign = function() return { url = "/" } end,
        decode = function(_, res) return { RequestId = res.body } end,
        pace = function()
          n = n + 1
          if n == 2 then w.mono = w.mono + 0.020 end
          return 0
        end,
        measured = function(kind, seconds) if kind == "round_trip" then rtts[#rtts + 1] = seconds end end,
      }
      local jobs = {}
      for i = 1, 3 do jobs[i] = { action = "A", params = {}, streams = { "s" .. i } } end
      engine:run(jobs, { concurrency = 3 })
      -- the first held (not measured); the others 5 ms each
      assert.equal(2, #rtts)
      for _, v in ipairs(rtts) do assert.near(0.005, v, 1e-9) end
      assert.equal(0.002, runner.STALL)
    end)

  it("routes completions between interleaved runs on one io by their keys", function()
    local w = world()
    local io = one_per_poll(w)
    local engine = runner.new {
      io = io, retry = retry.policy {}, pace = function() return 0 end,
      sign = function(a) return { url = a.params.id } end,
      decode = function(a, res) return { id = a.params.id, status = res.status } end,
    }
    local nested
    local jobs = engine:run({ { action = "X", params = { id = "outer-1" } }, { action = "X", params = { id = "outer-2" } } }, {
      concurrency = 2,
      on_progress = function(done)
        if done == 1 then nested = engine:run({ { action = "X", params = { id = "inner" } } })[1] end
      end,
    })
    assert.equal("outer-1", jobs[1].result.id)
    assert.equal("outer-2", jobs[2].result.id)
    assert.equal("inner", nested.result.id)
  end)

  it("keeps the call's own error when a look-up cannot even start", function()
    local w = world()
    local calls = 0
    local io = {
      start = function(key, req)
        if req.action == "DescribeLivePullToPushList" then
          return nil, { code = "NetworkError", message = "no free connection", sent = false }
        end
        calls = calls + 1
        w.done = { { key = key, err = { code = "Timeout", message = "timed out after 10000 ms", sent = true } } }
        return true
      end,
      poll = function(timeout)
        local d = w.done or {}
        w.done = nil
        if #d == 0 then w.mono = w.mono + timeout end
        return d
      end,
    }
    local cli = ali(w, { transport = io, rate_limits = false })
    local res, err = cli:create_live_pull_to_push { region = "cn-shanghai", start_time = NOW, end_time = NOW + 60,
      source_type = "url", source_urls = { "https://a/b" }, dst_url = "rtmp://x/y/z" }
    assert.is_nil(res)
    assert.equal(1, calls) -- never re-sent blindly
    assert.equal("CreateLivePullToPush", err.action)
    assert.equal("Timeout", err.code)
    assert.is_true(err.outcome_unknown)
    assert.matches("timed out after 10000 ms; the look-up by DescribeLivePullToPushList failed too: "
      .. "streamctl: aliyun DescribeLivePullToPushList: NetworkError: no free connection", err.message, 1, true)
  end)

  it("checks its interface", function()
    local ok = function() end
    local io = { start = ok, poll = ok, now = ok, sleep = ok }
    assert.has_error(function() runner.new { io = io, sign = ok, decode = ok, pace = ok } end,
      "bad argument #1 to 'new' (retry must be a table)")
    assert.has_error(function()
      runner.new { io = { start = ok, poll = ok, now = ok }, sign = ok, decode = ok, pace = ok, retry = {} }
    end, "bad argument #1 to 'new' (io.sleep must be a function)")
  end)
end)

describe("the caps", function()
  local function zc(opts)
    local o = { app_id = 1234567890, server_secret = "s", transport = function() end }
    for k, v in pairs(opts or {}) do o[k] = v end
    return assert(zego.new(o))
  end

  it("are each provider's published limits, less the margin", function()
    local cli = aliyun.new { access_key_id = "AK", access_key_secret = "sk", transport = function() end }
    local want = { ResumeLiveStream = 30, ForbidLiveStream = 20, CreateLivePullToPush = 10, StopLivePullToPush = 10,
                   DescribeLivePullToPush = 10, DescribeLivePullToPushList = 10, DescribeLiveStreamsBlockList = 50 }
    for action, cap in pairs(want) do assert.near(cap / 1.05, cli:rate_for(action), 1e-12, action) end
    assert.is_nil(cli:rate_for("DescribeLiveStreamsOnlineList"))
    local z = zc()
    for _, action in ipairs { "ResumeRTCStreams", "ForbidRTCStreams", "ResumeRTCStream", "ForbidRTCStream",
                              "ResumeCDNLiveStream", "ForbidCDNLiveStream" } do
      assert.near(20 / 1.05, z:rate_for(action), 1e-12, action)
    end
    assert.near(40 / 1.05, z:rate_for("DescribeRTCStreamState"), 1e-12)
  end)

  it("are 5/s for RTC forbid/resume in ZEGO's test environment", function()
    local z = zc { is_test = true }
    for _, action in ipairs { "ResumeRTCStreams", "ForbidRTCStreams", "ResumeRTCStream", "ForbidRTCStream" } do
      assert.near(5 / 1.05, z:rate_for(action), 1e-12, action)
    end
    assert.near(20 / 1.05, z:rate_for("ResumeCDNLiveStream"), 1e-12)
  end)

  it("give way to overrides, a wildcard, false, and another margin", function()
    local z = zc { rate_limits = { ResumeRTCStreams = 2, ["*"] = 4, ForbidRTCStream = false }, rate_margin = 0 }
    assert.equal(2, z:rate_for("ResumeRTCStreams"))
    assert.equal(4, z:rate_for("DescribeRTCStreamState"))
    assert.is_nil(z:rate_for("ForbidRTCStream"))
    assert.is_nil(zc({ rate_limits = false }):rate_for("ResumeRTCStreams"))
  end)
end)

describe("a run nested in on_progress", function()
  -- A fake asynchronous io: each request is answered `delay(req)` seconds
  -- after it was started; poll moves the clock to the next answer (or by
  -- the timeout).
  local function async_io(delay)
    local io = { t = 0, flying = {}, log = {} }
    io.now = function() return io.t end
    io.sleep = function(s) io.t = io.t + s end
    io.start = function(key, req)
      io.log[#io.log + 1] = string.format("send %s at %.2f", req.name, io.t)
      io.flying[#io.flying + 1] = { key = key, at = io.t + delay(req), req = req }
      return true
    end
    io.poll = function(timeout)
      table.sort(io.flying, function(a, b) return a.at < b.at end)
      local first = io.flying[1]
      if not first or first.at > io.t + timeout then io.t = io.t + timeout return {} end
      io.t = math.max(io.t, first.at)
      table.remove(io.flying, 1)
      io.log[#io.log + 1] = string.format("answer %s at %.2f", first.req.name, io.t)
      return { { key = first.key, res = { name = first.req.name } } }
    end
    return io
  end

  local function engine(io)
    return runner.new {
      io = io, retry = retry.policy {},
      sign = function(attempt) return { name = attempt.job.name } end,
      decode = function(_, res) return { name = res.name } end,
      pace = function() return 0, true end,
    }
  end

  it("waits for the enclosing batch's job on its stream, which goes on meanwhile; the batch hears of it after",
    function()
      local io = async_io(function(req) return req.name == "forbid A" and 0.5 or 0.01 end)
      local e = engine(io)
      local told = {}
      local jobs = {
        { action = "Forbid", name = "forbid A", streams = { "A" }, params = {} },
        { action = "Forbid", name = "forbid B", streams = { "B" }, params = {} },
      }
      e:run(jobs, { concurrency = 2, on_progress = function(_, _, job)
        told[#told + 1] = job.name
        io.log[#io.log + 1] = "told " .. job.name
        if job.name == "forbid B" then
          local nested = { { action = "Resume", name = "resume A", streams = { "A" }, params = {} } }
          e:run(nested, { on_progress = function(_, _, j) io.log[#io.log + 1] = "told " .. j.name end })
          io.log[#io.log + 1] = "nested returned"
        end
      end })
      assert.same({
        "send forbid A at 0.00", "send forbid B at 0.00", "answer forbid B at 0.01", "told forbid B",
        -- the resume of A waits for the batch's forbid of A, which the nested run drives to its end
        "answer forbid A at 0.50", "send resume A at 0.50", "answer resume A at 0.51", "told resume A",
        "nested returned", "told forbid A",
      }, io.log)
      assert.same({ "forbid B", "forbid A" }, told)
      assert.same({ name = "forbid A" }, jobs[1].result)
    end)

  it("runs beside a job of a run in another coroutine (an nginx request's and a timer's interleave)", function()
    local io = async_io(function(req) return req.name == "forbid A" and 0.5 or 0.01 end)
    local e = engine(io)
    local co = coroutine.create(function()
      e:run({ { action = "Forbid", name = "forbid A", streams = { "A" }, params = {} } })
    end)
    -- the first run starts and waits in its poll: here the poll yields instead
    local poll = io.poll
    io.poll = function(timeout)
      if coroutine.running() == co then coroutine.yield() end
      return poll(timeout)
    end
    coroutine.resume(co)
    e:run({ { action = "Resume", name = "resume A", streams = { "A" }, params = {} } })
    assert.same({ "send forbid A at 0.00", "send resume A at 0.00" }, { io.log[1], io.log[2] })
  end)
end)
