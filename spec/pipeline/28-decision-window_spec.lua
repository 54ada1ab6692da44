-- tier: unit
-- The decision made last stands, on both providers, whoever decides
-- (issue 87; streamctl.pipeline.decision). A forbid or resume is decided at
-- its first send; an attempt that would leave more than 7 s later is
-- superseded when a later call decided on its stream, sent with a renewed
-- decision when a store every decider shares vouches that none did, and
-- otherwise not sent at all: `Expired`. Two runs on one machine share the
-- machine's decision file (streamctl.store.decisionfile); a run with a
-- file of its own stands for another machine. A fake provider applies
-- every request as it arrives (Aliyun orders nothing; ZEGO's CDN calls
-- carry no Sequence; its RTC calls are applied by Sequence only within
-- 10 s, past which it takes any: the strictest reading).
local aliyun = require "streamctl.aliyun"
local zego = require "streamctl.zego"
local checks = require "spec.helpers.checks"

local NOW = 1700000000
local reply = checks.reply
local ZEGO_THROTTLED = '{"Code":30002,"Message":"too many requests","RequestId":"t","Data":null}'
local ZEGO_OK = '{"Code":0,"Message":"ok","RequestId":"z","Data":null}'
local ALI_THROTTLED = '{"RequestId":"t","Code":"Throttling.User","Message":"Request was denied due to user flow '
  .. 'control."}'

-- The query's value of `name`.
local function value(url, name)
  for k, v in url:gmatch("[?&]([^=&]+)=([^&]*)") do
    if k == name or k == name .. "%5B%5D" then return v end
  end
end

local process = require "spec.helpers.process"

-- A new directory for decision files, removed when the test ends.
local function tmpdir()
  local d = process.temp_dir()
  finally(function() process.run("rm -rf " .. process.quote(d)) end)
  return d
end

-- The three kinds of call a decision is kept for: how each is made, what
-- its request names, and how its provider answers.
local KINDS = {
  {
    name = "Alibaba Cloud's ForbidLiveStream / ResumeLiveStream", mod = aliyun,
    creds = { access_key_id = "AK", access_key_secret = "sk" },
    forbid = function(c) return c:forbid_live_stream { domain_name = "d.example", app_name = "live", stream_name = "s1" } end,
    resume = function(c) return c:resume_live_stream { domain_name = "d.example", app_name = "live", stream_name = "s1" } end,
    action = function(req) return req.headers["x-acs-action"] end,
    throttled = function() return reply(400, ALI_THROTTLED) end,
    ok = function() return reply(200, '{"RequestId":"r"}') end,
  },
  {
    name = "ZEGO's ForbidCDNLiveStream / ResumeCDNLiveStream", mod = zego,
    creds = { app_id = 1234567890, server_secret = "0123456789abcdef0123456789abcdef" },
    forbid = function(c) return c:forbid_cdn_live_stream { stream_id = "s1" } end,
    resume = function(c) return c:resume_cdn_live_stream { stream_id = "s1" } end,
    action = function(req) return value(req.url, "Action") end,
    throttled = function() return reply(200, ZEGO_THROTTLED) end,
    ok = function() return reply(200, ZEGO_OK) end,
  },
  {
    name = "ZEGO's ForbidRTCStream / ResumeRTCStream", mod = zego,
    creds = { app_id = 1234567890, server_secret = "0123456789abcdef0123456789abcdef" },
    forbid = function(c) return c:forbid_rtc_stream { stream_id = "s1" } end,
    resume = function(c) return c:resume_rtc_stream { stream_id = "s1" } end,
    action = function(req) return value(req.url, "Action") end,
    throttled = function() return reply(200, ZEGO_THROTTLED) end,
    ok = function() return reply(200, ZEGO_OK) end,
    sequenced = true,
  },
}

-- A world on one fake clock: the stream's state as the provider holds it
-- (applied in arrival order, ZEGO's RTC Sequence within 10 s), what each
-- client sent and when.
local function world(kind)
  local w = { mono = 0, sent = {}, state = "normal" }
  function w.client(name, throttle_until, opts)
    local o = {
      clock = function() return NOW + w.mono end, monotonic = function() return w.mono end,
      sleep = function(s) w.mono = w.mono + s end, retry = { random = function() return 0 end },
      transport = function(req)
        local action = kind.action(req)
        local seq = tonumber(value(req.url, "Sequence") or "")
        w.sent[#w.sent + 1] = { by = name, action = action, t = w.mono, seq = seq }
        if w.meanwhile then w.meanwhile(name) end
        if throttle_until and w.mono < throttle_until then return kind.throttled() end
        local last = w.last
        if not (seq and last and last.seq and w.mono - last.t < 10 and seq <= last.seq) then
          w.state = action:find("^Forbid") and "forbidden" or "normal"
          w.last = { seq = seq, t = w.mono }
        end
        return kind.ok()
      end,
    }
    for k, v in pairs(kind.creds) do o[k] = v end
    for k, v in pairs(opts or {}) do o[k] = v end
    return assert(kind.mod.new(o))
  end
  function w.of(name)
    local out = {}
    for _, s in ipairs(w.sent) do if s.by == name then out[#out + 1] = s end end
    return out
  end
  return w
end

-- `late` is throttled 14 s (a stranger holds the cap); 2 s after it
-- started, `other` decides the other way and lands.
local function race(w, kind, late_op, other_op, late_opts, other_opts)
  local other = w.client("O", nil, other_opts)
  w.meanwhile = function(name)
    if name == "L" and w.mono >= 2 and not w.other then
      w.other, w.other_at = assert(kind[other_op](other)), w.mono
    end
  end
  return kind[late_op](w.client("L", 14, late_opts))
end

for _, kind in ipairs(KINDS) do
  describe(kind.name, function()
    for _, dir in ipairs { { "resume", "forbid", "forbidden" }, { "forbid", "resume", "normal" } } do
      local late, other, final = dir[1], dir[2], dir[3]

      it("a " .. late .. " throttled past its window on one machine is superseded by the later " .. other, function()
        local w = world(kind)
        local file = tmpdir() .. "/decisions"
        local res, err = race(w, kind, late, other, { decision_file = file }, { decision_file = file })
        assert.is_nil(err)
        assert.is_true(res.Superseded)
        assert.equal(final, w.state) -- the decision made last stands
        for _, s in ipairs(w.of("L")) do
          assert.is_true(s.t < 7, "the late call sent at " .. s.t .. " s")
          -- (without a Sequence, not sent again once the later call decided: its retry would land over it)
          if not kind.sequenced then assert.is_true(s.t <= w.other_at, "sent at " .. s.t .. " s, after the other") end
        end
      end)

      it("a " .. late .. " throttled past its window with nobody to vouch is not sent: Expired", function()
        local w = world(kind)
        local d = tmpdir()
        -- (another machine: a decision file of its own)
        local res, err = race(w, kind, late, other, { decision_file = d .. "/a" }, { decision_file = d .. "/b" })
        assert.is_nil(res)
        assert.equal("Expired", err.code)
        assert.equal("interrupted", err.kind)
        assert.is_false(err.sent)
        assert.is_false(err.retryable)
        assert.matches("^decided 7 s ago, not sent: stream '[^']*s1'; no decision store shared by every decider",
          err.message)
        assert.equal(final, w.state)
        for _, s in ipairs(w.of("L")) do assert.is_true(s.t < 7, "the late call sent at " .. s.t .. " s") end
      end)
    end

    it("with no store at all, a late call is Expired too (this process's memory vouches for nobody)", function()
      local w = world(kind)
      w.state = "forbidden"
      local res, err = kind.resume(w.client("L", 14))
      assert.is_nil(res)
      assert.equal("Expired", err.code)
      assert.equal("forbidden", w.state)
    end)

    it("declared shared, a late call nobody superseded is renewed and lands", function()
      local w = world(kind)
      w.state = "forbidden"
      local file = tmpdir() .. "/decisions"
      local res = assert(kind.resume(w.client("L", 14, { decision_file = file, decisions_shared = true })))
      assert.is_nil(res.Superseded)
      assert.equal("normal", w.state)
      local sent = w.of("L")
      assert.is_true(sent[#sent].t >= 14)
      if kind.sequenced then assert.is_true(sent[#sent].seq > sent[1].seq, "the Sequence was not renewed") end
    end)

    it("declared shared, a late call a later one decided on is superseded, not renewed", function()
      local w = world(kind)
      local file = tmpdir() .. "/decisions"
      local shared = { decision_file = file, decisions_shared = true }
      local res = assert(race(w, kind, "resume", "forbid", shared, shared))
      assert.is_true(res.Superseded)
      assert.equal("forbidden", w.state)
    end)

    it("inside its window a throttled call is the same decision and is sent", function()
      local w = world(kind)
      w.state = "forbidden"
      assert(kind.resume(w.client("L", 5)))
      assert.equal("normal", w.state)
    end)
  end)
end

describe("a batch whose calls expire", function()
  it("reports each stream failed with Expired, and says superseded ones apart", function()
    local kind = KINDS[1]
    local w = world(kind)
    local d = tmpdir()
    local file = d .. "/decisions"
    local other = w.client("O", nil, { decision_file = file })
    w.meanwhile = function(name)
      if name == "L" and w.mono >= 2 and not w.other then
        w.other = assert(other:forbid_live_stream { domain_name = "d.example", app_name = "live", stream_name = "b" })
      end
    end
    local c = w.client("L", 14, { decision_file = file, concurrency = 2 })
    local report = c:resume_live_streams { domain_name = "d.example", app_name = "live", stream_names = { "a", "b" } }
    local by = {}
    for _, e in ipairs(report.results) do by[e.stream] = e end
    assert.equal("Expired", by.a.error.code)
    assert.is_false(by.a.ok)
    assert.is_true(by.b.ok)
    assert.is_string(by.b.superseded_by)
    assert.equal(1, report.failed)
    assert.equal(1, report.superseded)
  end)
end)

-- A shared store that did not answer (Redis down or slow) answers from the
-- process's own record and says so (`unsure`): such a decision neither
-- vouches for a late call nor proves a later one.
describe("a decision store that did not answer", function()
  local sequence = require "streamctl.engine.sequence"
  local kind = KINDS[3] -- (ZEGO RTC: the caller may hand its generator over)

  -- A generator on one memory store whose answers say `unsure` while `w.away` is true.
  local function generator(w)
    local mem = sequence.memory_store()
    local store = setmetatable({}, { __index = function(_, k)
      local f = mem[k]
      if type(f) ~= "function" then return f end
      return function(_, ...)
        local v, e = f(mem, ...)
        if w.away and (k == "advance_all" or k == "advance" or k == "renew") and v then return v, e, true end
        return v, e
      end
    end })
    return assert(sequence.new { store = store, clock_ms = function() return (NOW + w.mono) * 1000 end })
  end

  -- `k`'s resume decided while the store was away (it comes back when another client forbids, 2 s in),
  -- throttled 14 s: the world and what the resume returned.
  local function decided_away(k)
    local w = world(k)
    local gen = generator(w)
    w.away = true
    local other = w.client("O", nil, { sequence = gen, decisions_shared = true })
    w.meanwhile = function(name)
      if name == "L" and w.mono >= 2 and not w.other then
        w.away = false
        w.other = assert(k.forbid(other))
      end
    end
    local res, err = k.resume(w.client("L", 14, { sequence = gen, decisions_shared = true }))
    return w, res, err
  end

  it("a call decided meanwhile is not superseded by what the store holds later: Expired, nothing claimed", function()
    local w, res, err = decided_away(kind)
    assert.is_nil(res)
    assert.equal("Expired", err.code)
    assert.matches("it was decided while the shared decision store did not answer", err.message, 1, true)
    assert.equal("forbidden", w.state)
  end)

  it("without a Sequence, a later value inside the window proves nothing either: Expired, nothing claimed", function()
    local w, res, err = decided_away(KINDS[2])
    assert.is_nil(res)
    assert.equal("Expired", err.code)
    assert.matches("^decided 3 s ago, not sent: .*it was decided while the shared decision store did not answer",
      err.message)
    assert.equal("forbidden", w.state)
    for _, s in ipairs(w.of("L")) do assert.is_true(s.t <= w.mono - 1, "sent after the other decided") end
  end)

  it("a late call renewed while it does not answer is not sent: nobody vouched", function()
    local w = world(kind)
    w.state = "forbidden"
    local gen = generator(w)
    w.meanwhile = function() if w.mono >= 5 then w.away = true end end
    local res, err = kind.resume(w.client("L", 14, { sequence = gen, decisions_shared = true }))
    assert.is_nil(res)
    assert.equal("Expired", err.code)
    assert.matches("the shared decision store did not answer, so nobody vouched", err.message, 1, true)
    assert.equal("forbidden", w.state)
  end)
end)

describe("a shared decision store that may have forgotten since the call was decided", function()
  local WHY = "Redis at 127.0.0.1:6379 may have forgotten the decisions decided before 2023-11-14T22:13:22Z (it "
    .. "restarted), and this call was decided before then"

  -- The machine's decision file, its renew answering as a store that forgot once `w.forgot` (Redis
  -- restarted without its data: streamctl.store.redisseq), recording the ages it was given.
  local function forgetful(w, ages)
    local Store = getmetatable(require("streamctl.store.decisionfile").sequence_store({ path = "-" }, "p"))
    local renew = Store.renew
    Store.renew = function(self, keys, old, candidate, n, age_ms)
      ages[#ages + 1] = age_ms
      if w.forgot then return false, nil, WHY end
      return renew(self, keys, old, candidate, n, age_ms)
    end
    -- (one finally a test: busted keeps the last one given)
    local d = process.temp_dir()
    finally(function()
      Store.renew = renew
      process.run("rm -rf " .. process.quote(d))
    end)
    return { decision_file = d .. "/decisions", decisions_shared = true }
  end

  for _, kind in ipairs(KINDS) do
    it(kind.name .. ": the late call is not sent, Expired, naming why; the store was told its age", function()
      local w, ages = world(kind), {}
      w.state = "forbidden"
      w.meanwhile = function() if w.mono >= 2 then w.forgot = true end end
      local res, err = kind.resume(w.client("L", 14, forgetful(w, ages)))
      assert.is_nil(res)
      assert.equal("Expired", err.code)
      assert.is_false(err.sent)
      assert.matches("^decided 7 s ago, not sent: stream '[^']*s1'; ", err.message)
      assert.equal(WHY, err.message:match("'; (.*)$"))
      assert.equal("forbidden", w.state)
      for _, s in ipairs(w.of("L")) do assert.is_true(s.t < 14, "sent after the throttle") end
      assert.equal(1, #ages)
      assert.is_true(ages[1] >= 7000 and ages[1] < 8000, "age " .. tostring(ages[1]))
    end)

    it(kind.name .. ": the same store that forgot nothing renews it, and it lands", function()
      local w, ages = world(kind), {}
      w.state = "forbidden"
      assert(kind.resume(w.client("L", 14, forgetful(w, ages))))
      assert.equal("normal", w.state)
      assert.is_true(#ages >= 1)
    end)
  end
end)
