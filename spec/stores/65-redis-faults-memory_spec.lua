-- load: heavy
-- sanitizers: none (the faults run in client processes of their own; the C loaded here, the rest covers)
-- tier: test (a fault matrix: minutes of Redis or nginx faults under many clients)
-- Shared state you can trust: Redis faults mid-run, one of four files
-- (spec/65-redis-faults-*) run side by side. What every case asserts, and
-- what they share: spec/helpers/redis_faults.lua.
--
-- This file: what Redis holds goes wrong: an evicting maxmemory beside a cache
-- that fills it, and a schedule an hour ahead mid-run.
--
--   an evicting maxmemory    -> the policy warned once per process; evictions of other keys harmless
--   a tat an hour ahead      -> "further ahead than any process reserves", once each; nobody sleeps
--
-- SPEC_FIGURES=1 prints each case's figures on stderr; SPEC_DEBUG=1 also
-- every arrival time.
local faults = require "spec.helpers.redis_faults"

describe("shared state you can trust: Redis faults mid-run", function()
  local F = faults.new()
  lazy_setup(F.setup)
  lazy_teardown(F.teardown)
  after_each(F.cleanup)
  local cjson, RATE, PASSWORD = F.cjson, F.RATE, F.PASSWORD
  local ALI_TAG, ZEGO_TAG, sleep, now = F.ALI_TAG, F.ZEGO_TAG, F.sleep, F.now
  local said, rate_of, busiest_second, fresh_redis = F.said, F.rate_of, F.busiest_second, F.fresh_redis
  local start_client, report_of, figures, run = F.start_client, F.report_of, F.figures, F.run
  local check_outcome, check_all_lines, once_if_running = F.check_outcome, F.check_all_lines, F.once_if_running
  -- (Redis' timeout is not under test here: spec/helpers/redis_faults.lua's QUIET_QUERY and QUIET_PAUSE)
  local QUERY, PAUSE = F.QUIET_QUERY, F.QUIET_PAUSE

  for _, policy in ipairs { "allkeys-lru", "volatile-ttl" } do
    it("an evicting maxmemory (" .. policy .. ") beside a cache that fills it: warned once per process, "
      .. "zero throttled, nothing lost", function()
      local srv = fresh_redis { "--maxmemory", "4mb", "--maxmemory-policy", policy }
      -- (it fills all through the run, until told to stop and the server has evicted 200 keys: however slow
      -- the machine, evictions happen)
      local stop = os.tmpname()
      os.remove(stop)
      local filler = start_client { "fill", srv.port, PASSWORD, 200, policy == "volatile-ttl" and 600 or 0, stop }
      local o = { url = srv.url .. QUERY, aliyun = 10, count = 40, zego = 2, ids = 20, rounds = 60 }
      local r = run(o)
      io.open(stop, "w"):close()
      local fill = cjson.decode((assert(report_of(filler), "the filler printed nothing")))
      os.remove(stop)
      check_outcome(r, o)
      for i, rep in ipairs(r.reports) do assert.equal(policy, rep.policy, "process " .. i .. "'s connection") end
      local evicted = tonumber(srv:cli("INFO", "stats"):match("evicted_keys:(%d+)"))
      assert.is_true(evicted > 100, "evicted only " .. tostring(evicted) .. " keys")
      local s = said("127.0.0.1:" .. srv.port, PAUSE)
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
    local o = { url = srv.url .. QUERY, aliyun = 10, count = 50 }
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
    local s = said("127.0.0.1:" .. srv.port, PAUSE)
    local total = check_all_lines(r, function(_, rep)
      local lo, hi = once_if_running(rep, r.marks.ahead)
      return { { s.ahead(ALI_TAG), lo, hi } }
    end)
    -- (that nobody sleeps the hour, each process done within the run's own time, the first use's pause
    -- and the loss's: asserted in virtual time, spec/engine/11-store-time, "a schedule an hour ahead";
    -- here a figure)
    local expected = o.aliyun * o.count / RATE.aliyun + 2 * PAUSE
    figures("an hour ahead", { throttled = r.ali_counters.throttled or 0, lines = total.aliyun1, seconds = r.seconds, expected = expected,
      busiest = busiest_second(r.ali), rate = rate_of(r.ali) })
  end)
end)
