-- tier: unit
-- What embedding streamctl needs, checked outside nginx (spec/31 does it inside
-- a real one): the on_attempt hook, where a call may be sent from (the
-- transport chosen by phase), the shared-dict stores' logic over a stand-in
-- dict, and ZEGO Sequences taken when a call is first sent.
local aliyun = require "streamctl.aliyun"
local zego = require "streamctl.zego"
local auto = require "streamctl.transport.auto"
local shdict = require "streamctl.store.shdict"
local ratelimit = require "streamctl.engine.ratelimit"
local room = require "streamctl.engine.room"
local sequence = require "streamctl.engine.sequence"

local checks = require "spec.helpers.checks"

local NOW = 1700000000
local ZEGO_SECRET = "0123456789abcdef0123456789abcdef"

-- A client whose transport answers with `script(request, n)` (spec/helpers/checks.lua).
local function client(mod, opts, script)
  return checks.scripted_client(mod, NOW, opts, script)
end

local reply = checks.reply

local STREAM = { domain_name = "d.example", app_name = "live", stream_name = "s" }

describe("on_attempt", function()
  it("is told of every attempt: action, role, number, outcome, status, time", function()
    local seen = {}
    local cli = client(aliyun, { on_attempt = function(info) seen[#seen + 1] = info end }, function(_, n)
      if n == 1 then return reply(400, '{"RequestId":"t","Code":"Throttling.User","Message":"slow down"}') end
      if n == 2 then return nil, { code = "NetworkError", message = "refused", sent = false } end
      return reply(200, '{"RequestId":"ok"}')
    end)
    assert(cli:resume_live_stream(STREAM))
    assert.equal(3, #seen)
    local a, b, c = seen[1], seen[2], seen[3]
    assert.same({ "aliyun", "ResumeLiveStream", "call", 1, false, false, 400, "Throttling.User", "throttled", true, true },
      { a.provider, a.action, a.role, a.attempt, a.retry, a.ok, a.status, a.code, a.kind, a.throttled, a.sent })
    assert.same({ 2, true, false, "NetworkError", "network", false, false },
      { b.attempt, b.retry, b.ok, b.code, b.kind, b.throttled, b.sent })
    assert.is_nil(b.status)
    assert.same({ 3, true, true, 200, false, true }, { c.attempt, c.retry, c.ok, c.status, c.throttled, c.sent })
    assert.is_nil(c.code)
    assert.is_nil(c.error)
    assert.equal("Throttling.User", a.error.code)
    for _, info in ipairs(seen) do
      assert.equal("number", type(info.seconds))
      assert.is_true(info.seconds >= 0)
    end
  end)

  it("sees look-ups as their own action and role", function()
    local seen = {}
    local cli = client(aliyun, { on_attempt = function(info) seen[#seen + 1] = info.action .. "/" .. info.role end },
      function(_, n)
        if n == 1 then return nil, { code = "Timeout", message = "timed out", sent = true } end
        return reply(200, '{"RequestId":"B","TotalNum":1,"StreamUrls":{"StreamUrl":["d.example/live/s"]}}')
      end)
    local res = assert(cli:forbid_live_stream(STREAM))
    assert.is_true(res.Recovered)
    assert.same({ "ForbidLiveStream/call", "DescribeLiveStreamsBlockList/lookup" }, seen)
  end)

  it("never changes a call's outcome when it raises; the first error is kept", function()
    local calls = 0
    local cli = client(aliyun, { on_attempt = function() calls = calls + 1 error("hook broke " .. calls) end },
      function() return reply(200, '{"RequestId":"ok"}') end)
    assert(cli:resume_live_stream(STREAM))
    assert(cli:resume_live_stream(STREAM))
    assert.equal(2, calls)
    assert.truthy(cli.on_attempt_error:find("hook broke 1", 1, true))
  end)
end)

describe("where a call is sent from", function()
  local saved
  before_each(function() saved = rawget(_G, "ngx") end)
  after_each(function() rawset(_G, "ngx", saved) end)

  -- A stand-in for nginx's `ngx` in `phase` (only what the choice reads).
  local function in_phase(phase)
    rawset(_G, "ngx", { get_phase = function() return phase end, ctx = {}, socket = {} })
  end

  it("uses libcurl outside nginx and in init_by_lua, cosockets in handlers and timers", function()
    assert.equal("curl", auto.here())
    in_phase("init")
    assert.equal("curl", auto.here())
    for _, phase in ipairs { "rewrite", "access", "content", "timer" } do
      in_phase(phase)
      assert.equal("ngx", auto.here())
    end
  end)

  it("refuses the phases with neither, naming the phase and ngx.timer.at, with nothing sent", function()
    for _, phase in ipairs { "init_worker", "set", "header_filter", "body_filter", "log", "balancer" } do
      in_phase(phase)
      local where, why = auto.here()
      assert.is_nil(where)
      assert.equal("streamctl cannot send from nginx's '" .. phase .. "' phase: it has no cosockets and must "
        .. "not block; send from ngx.timer.at(0, function() ... end) instead (or from a rewrite, access or content "
        .. "handler)", why)
      local ali = assert(aliyun.new { access_key_id = "AK", access_key_secret = "sk", endpoint = "http://127.0.0.1:9" })
      local res, err = ali:resume_live_stream(STREAM)
      assert.is_nil(res)
      assert.same({ "InvalidRequest", "validation", false, false, why },
        { err.code, err.kind, err.sent, err.retryable, err.message })
      local z = assert(zego.new { app_id = 1, server_secret = ZEGO_SECRET, endpoint = "http://127.0.0.1:9" })
      local report, zerr = z:resume_rtc_streams { stream_ids = { "a", "b" } }
      assert.is_nil(report)
      assert.equal(why, zerr.message)
    end
  end)

  it("transport = \"ngx\" outside nginx says what it needs; nothing is sent", function()
    local ali = assert(aliyun.new { access_key_id = "AK", access_key_secret = "sk", transport = "ngx",
                                    endpoint = "http://127.0.0.1:9" })
    local _, err = ali:resume_live_stream(STREAM)
    assert.equal("InvalidRequest", err.code)
    assert.equal("transport 'ngx' needs nginx's cosockets: call from a rewrite, access or content handler or an "
      .. "ngx.timer.at callback", err.message)
  end)

  it("a proxy cannot be used over cosockets: said, not ignored", function()
    in_phase("content")
    local ali = assert(aliyun.new { access_key_id = "AK", access_key_secret = "sk", proxy = "http://127.0.0.1:3128",
                                    endpoint = "http://127.0.0.1:9" })
    local _, err = ali:resume_live_stream(STREAM)
    assert.equal("InvalidRequest", err.code)
    assert.truthy(err.message:find("option 'proxy' cannot be used inside nginx", 1, true))
  end)

  it("shared_dict and the stores it stands for are not combined", function()
    rawset(_G, "ngx", { shared = { streamctl = {} }, get_phase = function() return "init" end })
    local _, err = aliyun.new { access_key_id = "AK", access_key_secret = "sk", shared_dict = "streamctl",
                                rate_limit_store = ratelimit.memory_store() }
    assert.equal("option 'shared_dict' holds the rate-limit state; it cannot be combined with 'rate_limit_store'",
      err.message)
    _, err = zego.new { app_id = 1, server_secret = ZEGO_SECRET, shared_dict = "streamctl", sequence = sequence.new() }
    assert.equal("option 'shared_dict' holds the Sequences; it cannot be combined with 'sequence'", err.message)
    _, err = zego.new { app_id = 1, server_secret = ZEGO_SECRET, shared_dict = "other" }
    assert.equal("option 'shared_dict' names no shared dict: nginx.conf needs 'lua_shared_dict other 10m;' in its "
      .. "http block", err.message)
  end)
end)

describe("streamctl.base.nginx: the phase sets and their message, once", function()
  local nginx = require "streamctl.base.nginx"
  local saved
  before_each(function() saved = rawget(_G, "ngx") end)
  after_each(function() rawset(_G, "ngx", saved) end)
  local function in_phase(phase) rawset(_G, "ngx", { get_phase = function() return phase end }) end

  it("outside nginx: no phase, no yielding, blocking I/O", function()
    rawset(_G, "ngx", nil)
    assert.is_nil(nginx.phase())
    assert.is_false(nginx.can_yield())
    assert.equal("blocking", nginx.io("send"))
  end)

  it("lua-nginx-module's yieldable contexts (and stream's preread) use cosockets; init blocks", function()
    for _, phase in ipairs { "rewrite", "server_rewrite", "access", "content", "timer", "ssl_client_hello",
                             "ssl_cert", "ssl_session_fetch", "preread" } do
      in_phase(phase)
      assert.equal(phase, nginx.phase())
      assert.is_true(nginx.can_yield(), phase)
      assert.equal("cosocket", nginx.io("send"), phase)
    end
    in_phase("init")
    assert.is_false(nginx.can_yield())
    assert.equal("blocking", nginx.io("send"))
  end)

  it("sends only where a request's ngx.ctx is documented: not from the SSL phases or preread", function()
    for _, phase in ipairs { "rewrite", "server_rewrite", "access", "content", "timer" } do
      in_phase(phase)
      assert.equal("cosocket", nginx.io("send", nginx.SENDING), phase)
      assert.equal("ngx", require("streamctl.transport.auto").here(), phase)
    end
    for _, phase in ipairs { "ssl_client_hello", "ssl_cert", "ssl_session_fetch", "preread" } do
      in_phase(phase)
      assert.equal("cosocket", nginx.io("reach Redis"), phase) -- (Redis and the lock wait still can)
      local how, why = require("streamctl.transport.auto").here()
      assert.is_nil(how, phase)
      assert.equal("streamctl cannot send from nginx's '" .. phase .. "' phase: it has no request context "
        .. "(ngx.ctx) to keep a client's connections in; send from ngx.timer.at(0, function() ... end) instead "
        .. "(or from a rewrite, access or content handler)", why)
    end
  end)

  it("refuses every other phase with one message naming the phase and what to do", function()
    for _, phase in ipairs { "init_worker", "set", "header_filter", "body_filter", "log", "balancer",
                             "ssl_session_store", "exit_worker" } do
      in_phase(phase)
      assert.is_false(nginx.can_yield(), phase)
      local how, why = nginx.io("reach Redis")
      assert.is_nil(how)
      assert.equal("streamctl cannot reach Redis from nginx's '" .. phase .. "' phase: it has no cosockets and "
        .. "must not block; reach Redis from ngx.timer.at(0, function() ... end) instead (or from a rewrite, "
        .. "access or content handler)", why)
    end
  end)
end)

-- A stand-in for an ngx.shared dict: the calls the stores make, with ttl in
-- seconds against a clock the spec moves (spec/helpers/fake_shdict.lua).
local fake_dict = require("spec.helpers.fake_shdict").new

describe("the shared-dict stores", function()
  local enter, leave = require("spec.helpers.fake_shdict").init_phase()
  before_each(enter)
  after_each(leave)

  it("check their options: nil, err for a bad one; raise for a dict or options of the wrong type", function()
    local dict = fake_dict({ t = 0 })
    checks.refused("option 'clock' must be a function", shdict.ratelimit_store(dict, { clock = 5 }))
    checks.refused("option 'nmae' is not an option of streamctl.store.shdict.ratelimit_store (did you mean 'name'?)",
      shdict.ratelimit_store(dict, { nmae = "x" }))
    checks.refused("option 'clock' is not an option of streamctl.store.shdict.sequence_store (did you mean 'log'?)",
      shdict.sequence_store(dict, "z:", { clock = os.time }))
    checks.refused("option 'log' must be a function", shdict.sequence_store(dict, "z:", { log = "x" }))
    checks.raises(function() shdict.ratelimit_store(dict, 5) end,
      "bad argument #2 to 'ratelimit_store' (opts must be a table or nil)", "14-embedding_spec.lua")
    checks.raises(function() shdict.sequence_store(dict, "z:", 5) end,
      "bad argument #3 to 'sequence_store' (opts must be a table or nil)", "14-embedding_spec.lua")
    checks.raises(function() shdict.ratelimit_store(nil) end,
      "bad argument #1 to 'ratelimit_store' (an ngx.shared dict expected, got nil)", "14-embedding_spec.lua")
  end)

  it("keep Sequences as long as streamctl.engine.sequence's store contract asks (without requiring it)", function()
    assert.equal(sequence.KEEP_MS / 1000, shdict.SEQUENCE_TTL)
    local dict = fake_dict({ t = 0 })
    local ttls = {}
    local set, incr = dict.set, dict.incr
    function dict.set(d, k, v, ttl) ttls[#ttls + 1] = ttl return set(d, k, v, ttl) end
    function dict.incr(d, k, by, init, ttl) ttls[#ttls + 1] = ttl return incr(d, k, by, init, ttl) end
    local store = shdict.sequence_store(dict, "zego:1:")
    assert.equal(1700000000000, store:advance_all({ "a", "b" }, 1700000000000))
    assert.is_true(#ttls >= 3) -- (the counter and both streams; the stand-in's incr sets too)
    for _, ttl in ipairs(ttls) do assert.equal(60, ttl) end
  end)

  it("pace one budget through the dict, under a lock that is always released", function()
    local clock = { t = 0 }
    local dict = fake_dict(clock)
    local logs = {}
    local now = function() return clock.t end
    local store = shdict.ratelimit_store(dict, { clock = now, log = function(m) logs[#logs + 1] = m end })
    local a = ratelimit.new { clock = now, store = store }
    local b = ratelimit.new { clock = now, store = store } -- another worker
    -- a budget the dict has never held (nginx just started): one whole window and the lateness first
    -- (1.05 s), said by nobody
    assert.same({ shdict.LOSS_PAUSE, false }, { a:reserve("k", 10, 1, 0.5) })
    assert.equal(1.05, shdict.LOSS_PAUSE)
    assert.equal("0.000000 1.050000", dict.values["rl:k"])
    clock.t = 1.05
    assert.equal(0, a:reserve("k", 10))
    assert.near(0.1, b:reserve("k", 10), 1e-9)
    assert.near(0.2, a:reserve("k", 10), 1e-9)
    assert.equal("0.000000 1.350000", dict.values["rl:k"])
    assert.is_nil(dict.values["lock:rl:k"])
    assert.same({}, logs)
    local ok, err = pcall(store.atomically, store, "k", function() error("inside") end)
    assert.is_false(ok)
    assert.truthy(tostring(err):find("inside", 1, true))
    assert.is_nil(dict.values["lock:rl:k"], "the lock outlived an error")
  end)

  it("keep a throttle's room for every worker: the schedule spaced at it, once per overshoot", function()
    local clock = { t = 10 }
    local dict = fake_dict(clock)
    local now = function() return clock.t end
    local store = shdict.ratelimit_store(dict, { clock = now })
    local a = ratelimit.new { clock = now, store = store }
    local b = ratelimit.new { clock = now, store = store } -- another worker
    dict.values["rl:k"] = "0.000000 10.000000" -- (a budget that lived: born long ago)
    assert.equal(0, a:reserve("k", 10))
    assert.is_true(a:throttled("k", 0, 0.5))
    assert.equal("0.500000 10.000000", dict.values["room:k"])
    assert.near(room.BETA * 0.5, b:room("k"), 1e-9)
    -- the other worker's next slot: the old schedule's (0.1 s), the one after spaced at 10 * BETA * 0.5 a second
    assert.near(0.1, b:reserve("k", 10), 1e-9)
    assert.near(0.1 + 1 / (10 * room.BETA * 0.5), b:reserve("k", 10), 1e-6) -- (the entry keeps microseconds)
    assert.is_false(b:throttled("k", 0.01)) -- (sent before the cut: the same overshoot)
    -- the provider's retry-after holds the whole budget
    assert.is_false(b:throttled("k", 0, 1, 0.9))
    assert.equal("0.000000 10.900000", dict.values["rl:k"])
    -- and the room grows back, whole after room.whole_after(0.5)
    clock.t = 10 + room.whole_after(0.5) + 0.001
    assert.equal(1, a:room("k"))
  end)

  it("cut the room by what got through every worker's slots in the last second", function()
    local clock = { t = 10 }
    local dict = fake_dict(clock)
    local now = function() return clock.t end
    local store = shdict.ratelimit_store(dict, { clock = now })
    local a = ratelimit.new { clock = now, store = store }
    local b = ratelimit.new { clock = now, store = store }
    dict.values["rl:k"] = "0.000000 10.000000"
    for i = 1, 5 do (i % 2 == 1 and a or b):reserve("k", 10) end -- (0.1 s apart)
    clock.t = 10.55
    -- a worker's own share says nothing (1); five slots were due in the last second, one throttled, cap 10
    assert.is_true(a:throttled("k", 0, 1, nil, 10))
    assert.equal("0.400000 10.550000", dict.values["room:k"])
  end)

  it("hand back the earliest free slot within 0.75 s whatever the asker's horizon; none past it", function()
    local clock = { t = 10 }
    local dict = fake_dict(clock)
    local now = function() return clock.t end
    local store = shdict.ratelimit_store(dict, { clock = now })
    local a = ratelimit.new { clock = now, store = store }
    local b = ratelimit.new { clock = now, store = store }
    dict.values["rl:k"] = "0.000000 10.000000" -- (a budget that lived: born long ago)
    for i = 1, 8 do
      local d, committed = (i % 2 == 1 and a or b):reserve("k", 10, 1, 0.1)
      assert.is_true(committed, "ask " .. i)
      assert.near((i - 1) * 0.1, d, 1e-9) -- (spaced 1/rate: never over the cap)
    end
    local d, committed = a:reserve("k", 10, 1, 0.1)
    assert.is_false(committed)
    assert.near(0.8, d, 1e-9)
    assert.equal("0.000000 10.800000", dict.values["rl:k"])
    assert.is_false((b:try("k", 10))) -- (0: only if free now)
  end)

  it("treat an evicted or implausible budget as lost: the window waited out, said once", function()
    local clock = { t = 100 }
    local dict = fake_dict(clock)
    local logs = {}
    local now = function() return clock.t end
    local rl = ratelimit.new { clock = now, store = shdict.ratelimit_store(dict, { clock = now,
      log = function(m) logs[#logs + 1] = m end }) }
    dict.values["rl:k"] = "90.000000 100.000000" -- a budget born 10 s ago
    assert.equal(0, rl:reserve("k", 10))
    dict.values["rl:k"] = nil -- evicted
    local d0, c0 = rl:reserve("k", 10, 1, 0.5)
    assert.near(shdict.LOSS_PAUSE, d0, 1e-9)
    assert.is_false(c0)
    assert.same({ "streamctl: the shared dict lost the rate-limit schedule of k: its entry is gone (nginx started, "
      .. "or the dict evicted it); nothing is sent on it for 1.05 s (the last second may have held a full cap), "
      .. "then it starts afresh" }, logs)
    clock.t = clock.t + 10
    dict.values["rl:k"] = string.format("%.6f %.6f", clock.t - 20, clock.t + 3600) -- an hour ahead: never slept
    local d = rl:reserve("k", 10, 1, 0.5)
    assert.near(shdict.LOSS_PAUSE, d, 1e-9)
    assert.equal(2, #logs)
    assert.truthy(logs[2]:find("its entry lies further ahead than any worker reserves", 1, true), logs[2])
  end)

  it("say once that the dict is full when a write evicted other entries", function()
    local clock = { t = 0 }
    local dict = fake_dict(clock)
    local set = dict.set
    function dict:set(k, v, ttl) set(self, k, v, ttl) return true, nil, true end -- forcible
    local logs = {}
    local now = function() return clock.t end
    local rl = ratelimit.new { clock = now, store = shdict.ratelimit_store(dict, { clock = now, name = "tiny",
      log = function(m) logs[#logs + 1] = m end }) }
    rl:reserve("k", 10)
    rl:reserve("k", 10)
    local gen = sequence.new { clock_ms = function() return 1000 end,
                               store = shdict.sequence_store(dict, "z:", { log = function(m) logs[#logs + 1] = m end }) }
    gen:next_for { "s" }
    assert.same({ "streamctl: the shared dict 'tiny' is full: taking a lock evicted other entries; what it forgot "
      .. "is treated as lost (the budget waits 1.05 s, as after a restart); give it more room (lua_shared_dict ... "
      .. "10m holds about 80,000 streams; see docs/openresty.md in streamctl)" }, logs)
  end)

  it("a lock held elsewhere is waited for, then given up with a message", function()
    local clock = { t = 0 }
    local dict = fake_dict(clock)
    local store = shdict.ratelimit_store(dict)
    dict:set("lock:rl:k", true) -- held by a worker that never lets go (no expiry here)
    local saved_wait = shdict.LOCK_WAIT
    shdict.LOCK_WAIT = 0.01
    local res, err = store:atomically("k", function() return "ran" end)
    shdict.LOCK_WAIT = saved_wait
    assert.is_nil(res)
    assert.equal("shared dict lock for 'k' still held after 0.01 s", err)
    assert.is_true(dict.adds > 1)
  end)

  it("hand out Sequences above every earlier one, from any generator sharing the dict", function()
    local clock = { t = 0 }
    local dict = fake_dict(clock)
    local ms = 1700000000000
    local function gen() return sequence.new { clock_ms = function() return ms end,
                                                store = shdict.sequence_store(dict, "zego:1:") } end
    local w1, w2 = gen(), gen()
    assert.equal("1700000000000", w1:next_for { "s" })
    assert.equal("1700000000001", w2:next_for { "s" })
    assert.equal("1700000000002", w1:next_for { "s" })
    ms = ms + 500
    assert.equal("1700000000500", w2:next_for { "s" })
    -- one counter per AppId: above every earlier value of any stream
    assert.equal("1700000000501", w1:next_for { "t" })
    assert.equal(1700000000500, dict.values["seq:zego:1:s"])
    assert.equal(sequence.KEEP_MS / 1000, dict.expires["seq:zego:1:s"] - clock.t)
    assert.equal("1700000000502", w2:next_for { "s", "t" })
    assert.equal(1700000000502, dict.values["seq:zego:1:t"])
    -- a caller's own Sequence: only above its streams' last ones
    assert.same({ false, "t", 1700000000502 }, { w1:record({ "u", "t" }, 1700000000502) })
    assert.is_true(w1:record({ "u", "t" }, 1800000000000))
    assert.equal("1800000000001", w2:next_for { "v" }) -- the counter followed it
  end)
end)

describe("a ZEGO Sequence", function()
  it("is taken when its call is first sent, and kept for its retries: after an answer that may have applied "
    .. "and after a throttle", function()
    local seqs = {}
    local first = '{"Code":42001,"Message":"please retry","RequestId":"x"}'
    local z = client(zego, {}, function(req, n)
      seqs[#seqs + 1] = req.url:match("Sequence=(%d+)")
      if n == 1 then return reply(200, first) end
      return reply(200, '{"Code":0,"Message":"ok","RequestId":"z"}')
    end)
    -- The first call is sent at once; the second waits for its pacing slot
    -- (1/19.05 s at 20/s with the margin) and takes its Sequence then.
    assert(z:resume_rtc_stream { stream_id = "a" })
    assert.equal(seqs[1], seqs[2]) -- the retry kept it: a late duplicate of the first is stale
    assert(z:resume_rtc_stream { stream_id = "a" })
    assert.is_true(tonumber(seqs[3]) > tonumber(seqs[2]))
    -- a throttle applied nothing, and the retry keeps it all the same: the Sequence says when the call
    -- was decided, so one decided later by another process still wins (spec/sim, invariant 2)
    seqs, first = {}, '{"Code":30002,"Message":"busy","RequestId":"x"}'
    z = client(zego, {}, function(req, n)
      seqs[#seqs + 1] = req.url:match("Sequence=(%d+)")
      if n == 1 then return reply(200, first) end
      return reply(200, '{"Code":0,"Message":"ok","RequestId":"z"}')
    end)
    assert(z:resume_rtc_stream { stream_id = "a" })
    assert.equal(seqs[1], seqs[2])
  end)

  it("of a call that waited for its slot is the time it left, not the time it was made", function()
    local seqs = {}
    local z, w = client(zego, { rate_limits = { ["*"] = 1 }, rate_margin = 0 }, function(req)
      seqs[#seqs + 1] = req.url:match("Sequence=(%d+)")
      return reply(200, '{"Code":0,"Message":"ok","RequestId":"z"}')
    end)
    local report = assert(z:resume_rtc_streams { stream_ids = { "a" } })
    assert.equal(1, report.succeeded)
    report = assert(z:resume_rtc_streams { stream_ids = { "a" } }) -- paced: sent a second (and a guard) later
    assert.equal(1, report.succeeded)
    assert.is_true(w.mono >= 1)
    assert.equal(tostring(NOW * 1000), seqs[1])
    assert.equal(string.format("%.0f", math.floor((NOW + w.mono) * 1000)), seqs[2])
  end)
end)

-- The lines of histogram `name` for `id` (its labels): a bucket a bound, `counts` cumulative.
local DURATION_BOUNDS = { "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10" }
local WAIT_BOUNDS = { "0.001", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "30", "60" }
local function histogram_lines(name, bounds, id, counts, total, sum)
  assert(#counts == #bounds, "a count for each bound")
  local lines = {}
  for i, le in ipairs(bounds) do lines[i] = name .. "_bucket{" .. id .. ',le="' .. le .. '"} ' .. counts[i] end
  lines[#lines + 1] = name .. "_bucket{" .. id .. ',le="+Inf"} ' .. total
  lines[#lines + 1] = name .. "_sum{" .. id .. "} " .. sum
  lines[#lines + 1] = name .. "_count{" .. id .. "} " .. total
  return table.concat(lines, "\n")
end
-- The HELP and TYPE lines of the series of issue 48.
local THROTTLED_BY_CODE_HEAD = "# HELP streamctl_throttled_by_code_total Attempts the provider throttled, by their code.\n"
  .. "# TYPE streamctl_throttled_by_code_total counter"
local RETRIES_BY_CODE_HEAD = "# HELP streamctl_retries_by_code_total Attempts sent after a failure (a retry or a "
  .. "look-up), by the code of the failure they came after.\n# TYPE streamctl_retries_by_code_total counter"
local ROOM_HEAD = "# HELP streamctl_room_requests_per_second The action's learned room: its cap times the fraction "
  .. "of it the provider's throttles left, as the last attempt saw it.\n"
  .. "# TYPE streamctl_room_requests_per_second gauge"
local CAP_HEAD = "# HELP streamctl_cap_requests_per_second The action's cap, as the last attempt saw it.\n"
  .. "# TYPE streamctl_cap_requests_per_second gauge"
local SLOT_WAIT_HEAD = "# HELP streamctl_slot_wait_seconds Time an attempt waited for its rate-limit slot and "
  .. "window, from when it was due to when it was sent.\n# TYPE streamctl_slot_wait_seconds histogram"
-- The HELP and TYPE lines of the series of issue 71: the tracing exporter's spans, the block list's places.
local SPANS_HEAD = "# HELP streamctl_spans_total Spans the tracing exporter exported, or dropped (queue_full: its queue "
  .. "was full; export_failed: the collector refused, was down or too slow).\n# TYPE streamctl_spans_total counter"
local PLACES_HEAD = "# HELP streamctl_blocklist_places_left Places left on the account's block list, as the last run "
  .. "left them (its places check's count, less what the run may have taken).\n# TYPE streamctl_blocklist_places_left "
  .. "gauge"

describe("streamctl.operator.metrics", function()
  it("raises when the options are not a table; returns nil, err for a bad option", function()
    local metrics = require "streamctl.operator.metrics"
    local ok, err = pcall(metrics.new, 5)
    assert.is_false(ok)
    assert.truthy(tostring(err):find("bad argument #1 to 'new' (opts must be a table or nil)", 1, true))
    checks.refused("option 'dict' must be an object with methods 'incr', 'set', 'get', 'get_keys'", metrics.new { dict = 5 })
    checks.refused("option 'dict' must be an object with methods 'incr', 'set', 'get', 'get_keys' (it has no 'get_keys')",
      metrics.new { dict = { incr = function() end, set = function() end, get = function() end } })
    checks.refused("option 'dict' must be an object with methods 'incr', 'set', 'get', 'get_keys' (it has no 'set')",
      metrics.new { dict = { incr = function() end, get = function() end, get_keys = function() end } })
    checks.refused("option 'dcit' is not an option of streamctl.operator.metrics.new (did you mean 'dict'?)",
      metrics.new { dcit = {} })
  end)

  it("counts the attempts whose outcome was unknown, apart from the failures that were not", function()
    local metrics = require("streamctl.operator.metrics").new()
    local id = 'provider="aliyun",action="ForbidLiveStream"'
    metrics:observe { provider = "aliyun", action = "ForbidLiveStream", ok = false, retry = false, seconds = 10,
                      error = { code = "Timeout", sent = true, outcome_unknown = true } }
    metrics:observe { provider = "aliyun", action = "ForbidLiveStream", ok = false, retry = true, seconds = 0.1,
                      error = { code = "InvalidParameter", sent = true } }
    local text = metrics:render()
    for _, line in ipairs { "streamctl_failures_total{" .. id .. "} 2", "streamctl_outcome_unknown_total{" .. id .. "} 1" } do
      assert.truthy(text:find("\n" .. line .. "\n", 1, true), line)
    end
  end)

  it("renders what on_attempt saw in the Prometheus text format, byte for byte", function()
    local metrics = require("streamctl.operator.metrics").new()
    local seen = {}
    local function on_attempt(info)
      seen[#seen + 1] = { info.room, info.cap, info.waited, info.after_code }
      return metrics.on_attempt(info)
    end
    local cli = client(aliyun, { on_attempt = on_attempt }, function(_, n)
      if n == 1 then return reply(400, '{"RequestId":"t","Code":"Throttling.User","Message":"slow down"}') end
      return reply(200, '{"RequestId":"ok"}')
    end)
    assert(cli:resume_live_stream(STREAM))
    -- What the engine told (the text below shows it): the room its lone throttle left (BETA of the cap of
    -- 30, streamctl.engine.room's: one answer in the last second is too few to measure a share by),
    -- and the retry's wait for its slot, 35 ms (the next slot of the schedule as it was), after the
    -- throttle it names.
    local cut = 30 * room.BETA
    assert.same({ { cut, 30, 0 }, { cut, 30, 0.035, "Throttling.User" } }, seen)
    -- One more, by hand: a ZEGO action with a quote in its name shows the escaping, and a time of 0.3 s.
    metrics:observe { provider = "zego", action = 'Odd"Action', ok = true, retry = false, seconds = 0.3 }
    -- the edge's event counters
    metrics:count("callbacks", { provider = "aliyun", event = "publish", result = "accepted" })
    metrics:count("callbacks", { provider = "aliyun", event = "publish", result = "accepted" })
    metrics:count("callbacks", { provider = "aliyun", event = "publish", result = "InvalidSignature" })
    metrics:count("drift", { provider = "aliyun", state = "found" }, 3)
    -- the door's (streamctl.edge.admission): a decision's time, its verdict, a token
    metrics:admission_time("zego", 0.0003)
    metrics:count("admissions", { provider = "zego", verdict = "deny", code = "Forbidden" })
    metrics:count("tokens", { provider = "zego", result = "issued" })
    assert.has_error(function() metrics:admission_time("zego", -1) end)
    assert.has_error(function() metrics:count("nope", {}) end)
    assert.has_error(function() metrics:count("drift", { provider = "aliyun" }) end)
    assert.has_error(function() metrics:count("drift", { provider = "a|b", state = "found" }) end)
    -- (a key count has made once: labels that only begin like it, or break a rule, still refused)
    for _, labels in ipairs { { provider = "zego", verdict = "deny" }, { provider = "zego", verdict = "deny",
                              code = "Forbidden|x" }, { provider = "zego", verdict = "deny", code = 7 }, "zego" } do
      local ok, err = pcall(metrics.count, metrics, "admissions", labels)
      assert.is_false(ok)
      assert.truthy(tostring(err):find("label '", 1, true), tostring(err))
    end
    local buckets = function(id, counts, total, sum)
      return histogram_lines("streamctl_request_duration_seconds", DURATION_BOUNDS, id, counts, total, sum)
    end
    local ali, odd = 'provider="aliyun",action="ResumeLiveStream"', 'provider="zego",action="Odd\\"Action"'
    assert.equal(table.concat({
      "# HELP streamctl_requests_total Requests sent to the provider: every attempt, retries and look-ups included.",
      "# TYPE streamctl_requests_total counter",
      "streamctl_requests_total{" .. ali .. "} 2",
      "streamctl_requests_total{" .. odd .. "} 1",
      "# HELP streamctl_retries_total Attempts after the first of a call.",
      "# TYPE streamctl_retries_total counter",
      "streamctl_retries_total{" .. ali .. "} 1",
      "streamctl_retries_total{" .. odd .. "} 0",
      "# HELP streamctl_throttled_total Attempts the provider throttled.",
      "# TYPE streamctl_throttled_total counter",
      "streamctl_throttled_total{" .. ali .. "} 1",
      "streamctl_throttled_total{" .. odd .. "} 0",
      "# HELP streamctl_failures_total Attempts that failed (throttled ones included).",
      "# TYPE streamctl_failures_total counter",
      "streamctl_failures_total{" .. ali .. "} 1",
      "streamctl_failures_total{" .. odd .. "} 0",
      "# HELP streamctl_outcome_unknown_total Attempts that ended with their outcome unknown (sent, then no answer "
        .. "to trust): looked up or sent again; a report counts a stream it could not settle as unknown.",
      "# TYPE streamctl_outcome_unknown_total counter",
      "streamctl_outcome_unknown_total{" .. ali .. "} 0",
      "streamctl_outcome_unknown_total{" .. odd .. "} 0",
      "# HELP streamctl_request_duration_seconds Time from sending an attempt to its answer or failure.",
      "# TYPE streamctl_request_duration_seconds histogram",
      -- the fake clock does not move while a request is answered: both took 0 s
      buckets(ali, { 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2 }, 2, "0.000000"),
      buckets(odd, { 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1 }, 1, "0.300000"),
      THROTTLED_BY_CODE_HEAD,
      "streamctl_throttled_by_code_total{" .. ali .. ',code="Throttling.User"} 1',
      RETRIES_BY_CODE_HEAD,
      "streamctl_retries_by_code_total{" .. ali .. ',code="Throttling.User"} 1',
      ROOM_HEAD,
      "streamctl_room_requests_per_second{" .. ali .. "} " .. string.format("%g", cut), -- (the hand-made one told no room: no line)
      CAP_HEAD,
      "streamctl_cap_requests_per_second{" .. ali .. "} 30",
      SLOT_WAIT_HEAD,
      histogram_lines("streamctl_slot_wait_seconds", WAIT_BOUNDS, ali,
        { 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2 }, 2, "0.035000"),
      '# HELP streamctl_admission_duration_seconds Time an admission decision took (action "admission").',
      "# TYPE streamctl_admission_duration_seconds histogram",
      -- 0.3 ms in the bucket of 0.5 ms
      histogram_lines("streamctl_admission_duration_seconds",
        { 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1 },
        'provider="zego",action="admission"', { 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1 }, 1, "0.000300"),
      "# HELP streamctl_callbacks_total Provider callbacks received, by event and result (accepted, or the code "
        .. "that refused it).",
      "# TYPE streamctl_callbacks_total counter",
      'streamctl_callbacks_total{provider="aliyun",event="publish",result="InvalidSignature"} 1',
      'streamctl_callbacks_total{provider="aliyun",event="publish",result="accepted"} 2',
      "# HELP streamctl_reactions_total What the edge did about a callback, and whether it worked.",
      "# TYPE streamctl_reactions_total counter",
      "# HELP streamctl_drift_total Differences the reconciler found between the desired state and the provider's, "
        .. "and what became of them.",
      "# TYPE streamctl_drift_total counter",
      'streamctl_drift_total{provider="aliyun",state="found"} 3',
      "# HELP streamctl_admissions_total Admission decisions at the door (streamctl.edge.admission), by verdict "
        .. "and its code.",
      "# TYPE streamctl_admissions_total counter",
      'streamctl_admissions_total{provider="zego",verdict="deny",code="Forbidden"} 1',
      "# HELP streamctl_tokens_total ZEGO tokens the edge issued, or refused to (the code that refused it).",
      "# TYPE streamctl_tokens_total counter",
      'streamctl_tokens_total{provider="zego",result="issued"} 1',
      "# HELP streamctl_stale_admissions_total Admission decisions made while the forbid list could not be read: "
        .. "answered from the list last read whole (answered), or past its grace (expired).",
      "# TYPE streamctl_stale_admissions_total counter",
      "# HELP streamctl_list_reads_total Reads of the whole forbid list the door keeps for a failover (each worker's, "
        .. "every second, with Redis): read whole, or failed.",
      "# TYPE streamctl_list_reads_total counter",
      SPANS_HEAD,
      PLACES_HEAD,
    }, "\n") .. "\n", metrics:render())
  end)

  -- The part of `text` from the spans on: the series of issue 71.
  local function issue71_part(text)
    local from = assert(text:find("# HELP streamctl_spans_total", 1, true))
    return text:sub(from)
  end

  it("counts the exporter's spans and sets the block list's places left, byte for byte", function()
    local metrics = require("streamctl.operator.metrics").new()
    -- the exporter's three results, counted by the n it hands
    metrics:count("spans", { result = "exported" }, 120)
    metrics:count("spans", { result = "queue_full" }, 7)
    metrics:count("spans", { result = "export_failed" })
    metrics:count("spans", { result = "exported" }, 5)
    -- a forbid batch's report.places (check_places): limit - used, the run's own need not taken off
    assert.is_true(metrics:places_left("aliyun", { used = 9950, limit = 10000, needed = 30, domains = 3 }))
    -- a oneshot batch's: nothing counted, nothing set (the value before stands)
    assert.is_false(metrics:places_left("aliyun", { used = nil, limit = 10000, needed = 0, domains = 0 }))
    -- a number; the last set stands; below 0 where a places_limit is under the use
    assert.is_true(metrics:places_left("zego", 40))
    assert.is_true(metrics:places_left("zego", { used = 12, limit = 10, needed = 1, domains = 1 }))
    assert.is_true(metrics:places_left('odd"one', 0))
    assert.equal(table.concat({
      SPANS_HEAD,
      'streamctl_spans_total{result="export_failed"} 1',
      'streamctl_spans_total{result="exported"} 125',
      'streamctl_spans_total{result="queue_full"} 7',
      PLACES_HEAD,
      'streamctl_blocklist_places_left{provider="aliyun"} 50',
      'streamctl_blocklist_places_left{provider="odd\\"one"} 0',
      'streamctl_blocklist_places_left{provider="zego"} -2',
    }, "\n") .. "\n", issue71_part(metrics:render()))
    -- misuse raises, naming the argument and its rule, and sets nothing
    local before = metrics:render()
    for _, case in ipairs {
      { { "", 1 }, "bad argument #1 to 'places_left' (provider must be a non-empty string without | or newline)" },
      { { "a|b", 1 }, "bad argument #1 to 'places_left' (provider must be a non-empty string without | or newline)" },
      { { 5, 1 }, "bad argument #1 to 'places_left' (provider must be a non-empty string without | or newline)" },
      { { "aliyun", 1.5 }, "bad argument #2 to 'places_left' (n must be a whole number or a places check's places)" },
      { { "aliyun", 0 / 0 }, "bad argument #2 to 'places_left' (n must be a whole number or a places check's places)" },
      { { "aliyun", math.huge }, "bad argument #2 to 'places_left' (n must be a whole number or a places check's places)" },
      { { "aliyun", "9950" }, "bad argument #2 to 'places_left' (n must be a whole number or a places check's places)" },
      { { "aliyun", { used = "1", limit = 10 } },
        "bad argument #2 to 'places_left' (places.used and places.limit must be numbers)" },
      { { "aliyun", { used = 1 } }, "bad argument #2 to 'places_left' (places.used and places.limit must be numbers)" },
    } do
      local ok, err = pcall(metrics.places_left, metrics, case[1][1], case[1][2])
      assert.is_false(ok, case[2])
      assert.truthy(tostring(err):find(case[2], 1, true), tostring(err))
    end
    assert.has_error(function() metrics:count("spans", {}) end)
    assert.equal(before, metrics:render())
  end)

  -- The part of `text` from the counters by code to the event counters: the series of issue 48.
  local function issue48_part(text)
    local from = assert(text:find("# HELP streamctl_throttled_by_code_total", 1, true))
    local to = assert(text:find("# HELP streamctl_admission_duration_seconds", 1, true))
    return text:sub(from, to - 2)
  end

  it("renders the room and the cap (the last seen), the slot waits and the throttles and retries by code", function()
    local metrics = require("streamctl.operator.metrics").new()
    local function z(info)
      info.provider, info.action, info.role, info.seconds, info.cap = "zego", "ResumeRTCStreams", "call", 0.01, 20
      return info
    end
    -- ZEGO: its number codes, one of them a float (30002.0, as a JSON decoder may give it), in decimal;
    -- the room cut twice, the last value shown
    metrics:observe(z { ok = false, retry = false, throttled = true, code = 30002, waited = 0, room = 20 })
    metrics:observe(z { ok = false, retry = true, throttled = true, code = 30002.0, after_code = 30002, waited = 0.001,
                        room = 16 })
    metrics:observe(z { ok = true, retry = true, after_code = 30002.0, waited = 0.0011, room = 12.8 })
    -- Aliyun: string codes, one with a quote and a | (neither breaks the line nor the key); waits past 10 s
    metrics:observe { provider = "aliyun", action = "ResumeLiveStream", ok = false, retry = false, throttled = true,
                      code = "Throttling.User", waited = 0.3, room = 30, cap = 30, seconds = 0.01 }
    metrics:observe { provider = "aliyun", action = "ResumeLiveStream", ok = false, retry = true, throttled = true,
                      code = 'Odd"Code|x', after_code = "Throttling.User", waited = 45, room = 24, cap = 30,
                      seconds = 0.01 }
    metrics:observe { provider = "aliyun", action = "ResumeLiveStream", ok = true, retry = true,
                      after_code = 'Odd"Code|x', waited = 61, room = 24, cap = 30, seconds = 0.01 }
    -- a first look-up after a call's failure: not in streamctl_retries_total (its number is 1), in the
    -- retries by code (it comes after a failure); unpaced, no room nor cap: no gauge line
    metrics:observe { provider = "aliyun", action = "DescribeLiveStreamsBlockList", role = "lookup", ok = true,
                      retry = false, after_code = "InternalError", waited = 0, seconds = 0.01 }
    local text = metrics:render()
    local ali, zid = 'provider="aliyun",action="ResumeLiveStream"', 'provider="zego",action="ResumeRTCStreams"'
    local look = 'provider="aliyun",action="DescribeLiveStreamsBlockList"'
    assert.equal(table.concat({
      THROTTLED_BY_CODE_HEAD,
      "streamctl_throttled_by_code_total{" .. ali .. ',code="Odd\\"Code|x"} 1',
      "streamctl_throttled_by_code_total{" .. ali .. ',code="Throttling.User"} 1',
      "streamctl_throttled_by_code_total{" .. zid .. ',code="30002"} 2',
      RETRIES_BY_CODE_HEAD,
      "streamctl_retries_by_code_total{" .. look .. ',code="InternalError"} 1',
      "streamctl_retries_by_code_total{" .. ali .. ',code="Odd\\"Code|x"} 1',
      "streamctl_retries_by_code_total{" .. ali .. ',code="Throttling.User"} 1',
      "streamctl_retries_by_code_total{" .. zid .. ',code="30002"} 2',
      ROOM_HEAD,
      "streamctl_room_requests_per_second{" .. ali .. "} 24",
      "streamctl_room_requests_per_second{" .. zid .. "} 12.8",
      CAP_HEAD,
      "streamctl_cap_requests_per_second{" .. ali .. "} 30",
      "streamctl_cap_requests_per_second{" .. zid .. "} 20",
      SLOT_WAIT_HEAD,
      -- 0 s: the first bucket (1 ms)
      histogram_lines("streamctl_slot_wait_seconds", WAIT_BOUNDS, look,
        { 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1 }, 1, "0.000000"),
      -- 0.3 s in 0.5; 45 s in 60; 61 s above every bound (+Inf only)
      histogram_lines("streamctl_slot_wait_seconds", WAIT_BOUNDS, ali,
        { 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 2 }, 3, "106.300000"),
      -- 0 and 0.001 s in 0.001 (a bound holds its own value), 0.0011 s in 0.005
      histogram_lines("streamctl_slot_wait_seconds", WAIT_BOUNDS, zid,
        { 2, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3 }, 3, "0.002100"),
    }, "\n"), issue48_part(text))
    -- the series before them as they were
    for _, line in ipairs {
      "streamctl_retries_total{" .. look .. "} 0", "streamctl_retries_total{" .. ali .. "} 2",
      "streamctl_retries_total{" .. zid .. "} 2", "streamctl_throttled_total{" .. ali .. "} 2",
      "streamctl_throttled_total{" .. zid .. "} 2", "streamctl_failures_total{" .. zid .. "} 2",
    } do
      assert.truthy(text:find("\n" .. line .. "\n", 1, true), line)
    end
  end)

  it("with one dict for many workers: a gauge holds the last value any of them set; counters add", function()
    local values = {}
    local dict = {
      incr = function(_, k, by, init) values[k] = (values[k] or init) + by return values[k] end,
      set = function(_, k, v) values[k] = v return true end,
      get = function(_, k) return values[k] end,
      get_keys = function() local ks = {} for k in pairs(values) do ks[#ks + 1] = k end return ks end,
    }
    local metrics_mod = require "streamctl.operator.metrics"
    local a, b = metrics_mod.new { dict = dict }, metrics_mod.new { dict = dict }
    local info = { provider = "zego", action = "ForbidRTCStreams", ok = false, retry = false, throttled = true,
                   code = 30002, waited = 0, cap = 20, seconds = 0.01 }
    info.room = 20
    a.on_attempt(info)
    info.room, info.retry, info.after_code = 16, true, 30002
    b.on_attempt(info)
    local id = 'provider="zego",action="ForbidRTCStreams"'
    local part = issue48_part(a:render()) .. "\n"
    assert.equal(part, issue48_part(b:render()) .. "\n")
    for _, line in ipairs {
      "streamctl_throttled_by_code_total{" .. id .. ',code="30002"} 2',
      "streamctl_retries_by_code_total{" .. id .. ',code="30002"} 1',
      "streamctl_room_requests_per_second{" .. id .. "} 16", "streamctl_cap_requests_per_second{" .. id .. "} 20",
      "streamctl_slot_wait_seconds_count{" .. id .. "} 2",
    } do
      assert.truthy(part:find("\n" .. line .. "\n", 1, true), line)
    end
  end)

  it("raises for an info field of the wrong type, and records nothing of that attempt", function()
    local metrics = require("streamctl.operator.metrics").new()
    local good = { provider = "zego", action = "ResumeRTCStreams", ok = true, retry = false, seconds = 0.01,
                   waited = 0, room = 20, cap = 20 }
    metrics:observe(good)
    local before = metrics:render()
    for _, case in ipairs {
      { "waited", -1, "info.waited must be a finite number >= 0 or nil" },
      { "waited", 0 / 0, "info.waited must be a finite number >= 0 or nil" },
      { "room", "fast", "info.room must be a finite number >= 0 or nil" },
      { "cap", math.huge, "info.cap must be a finite number >= 0 or nil" },
      { "code", {}, "info.code must be a string, a number or nil" },
      { "after_code", true, "info.after_code must be a string, a number or nil" },
    } do
      local info = {}
      for k, v in pairs(good) do info[k] = v end
      info[case[1]] = case[2]
      local ok, err = pcall(metrics.on_attempt, info)
      assert.is_false(ok, case[1])
      assert.truthy(tostring(err):find("bad argument #1 to 'observe' (" .. case[3] .. ")", 1, true), tostring(err))
    end
    assert.equal(before, metrics:render())
  end)
end)
