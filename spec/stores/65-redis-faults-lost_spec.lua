-- load: heavy
-- sanitizers: none (the faults run in client processes of their own; the C loaded here, the rest covers)
-- tier: test (a fault matrix: minutes of Redis or nginx faults under many clients)
-- Shared state you can trust: Redis faults mid-run, one of four files
-- (spec/65-redis-faults-*) run side by side. What every case asserts, and
-- what they share: spec/helpers/redis_faults.lua.
--
-- This file: Redis loses what it held mid-run: FLUSHALL, and kill -9 with an
-- immediate restart without persistence.
--
--   FLUSHALL                 -> "lost the shared rate-limit schedule ... its key is gone", once each
--   kill -9 and restart      -> the same (and "failed" / "answers again" when a call fell in the gap)
--
-- SPEC_FIGURES=1 prints each case's figures on stderr; SPEC_DEBUG=1 also
-- every arrival time.
local faults = require "spec.helpers.redis_faults"

describe("shared state you can trust: Redis faults mid-run", function()
  local F = faults.new()
  lazy_setup(F.setup)
  lazy_teardown(F.teardown)
  after_each(F.cleanup)
  local store, ALI_TAG, ZEGO_TAG, now = F.store, F.ALI_TAG, F.ZEGO_TAG, F.now
  local said, rate_of, busiest_second, fresh_redis = F.said, F.rate_of, F.busiest_second, F.fresh_redis
  local figures, check_outcome, check_all_lines, check_pairs = F.figures, F.check_outcome, F.check_all_lines, F.check_pairs
  local once_if_running, mid_run = F.once_if_running, F.mid_run
  -- (Redis' timeout is not under test here: spec/helpers/redis_faults.lua's QUIET_QUERY and QUIET_PAUSE)
  local QUERY, PAUSE = F.QUIET_QUERY, F.QUIET_PAUSE

  it("FLUSHALL mid-run: every process says once that the schedule is gone and waits it out; zero throttled",
    function()
    local srv = fresh_redis()
    local r, o = mid_run(srv, function()
      assert.equal("OK", srv:cli("FLUSHALL"))
      return { flushall = now() }
    end, { query = QUERY })
    check_outcome(r, o)
    local s = said("127.0.0.1:" .. srv.port, PAUSE)
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
    end, { query = QUERY })
    check_outcome(r, o)
    local s = said("127.0.0.1:" .. srv.port, PAUSE)
    -- (a process whose call fell between the kill and the restart also says
    -- that Redis failed, and that it answers again: a ZEGO process maybe
    -- twice, for its rate limits and its Sequences, an Alibaba Cloud one its decisions)
    local total = check_all_lines(r, function(kind, rep)
      local lo, hi = once_if_running(rep, r.marks.back)
      local lines = { { s.gone(kind == "zego" and ZEGO_TAG or ALI_TAG), lo, hi }, { s.failed_rl, 0, 1 },
                      { s.back_rl, 0, 1 } }
      if kind == "zego" then
        lines[4], lines[5] = { s.failed_seq, 0, 1 }, { s.back_seq, 0, 1 }
      else
        lines[4], lines[5] = { s.failed_dec, 0, 1 }, { s.back_dec, 0, 1 }
      end
      return lines
    end)
    check_pairs(r, s, r.marks.back + 1 + store.RETRY_MS / 1000)
    figures("kill -9", { throttled = r.ali_counters.throttled or 0, zthrottled = r.zego_counters.throttled or 0,
      seconds = r.seconds, gap = r.marks.back - r.marks.killed, failed_ali = total.aliyun2,
      failed_zego = total.zego2, lost_ali = total.aliyun1, lost_zego = total.zego1,
      busiest = busiest_second(r.ali), zbusiest = busiest_second(r.zego) })
  end)
end)
