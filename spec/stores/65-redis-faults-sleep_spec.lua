-- load: heavy
-- sanitizers: none (the faults run in client processes of their own; the C loaded here, the rest covers)
-- tier: test (a fault matrix: minutes of Redis or nginx faults under many clients)
-- Shared state you can trust: Redis faults mid-run, one of four files
-- (spec/65-redis-faults-*) run side by side. What every case asserts, and
-- what they share: spec/helpers/redis_faults.lua.
--
-- This file: Redis stops answering: DEBUG SLEEP 3 mid-run under the processes,
-- and in one process a Redis that never answers or stalls.
--
--   DEBUG SLEEP 3            -> "failed", then "answers again", once each
--   a Redis that never answers, or stalls (one process): the fallback through its timeouts, said once
--
-- Verdicts only: the times (rate / 10 while Redis sleeps, the processes seen
-- in the heartbeats though nodes is 4; the fallback's slots 1/rate apart
-- across the retries' timeouts; a Sequence from the clock at a timed-out
-- call's end) are asserted in virtual time, on the simulation's Redis
-- (spec/engine/11-store-time).
--
-- SPEC_FIGURES=1 prints each case's figures on stderr; SPEC_DEBUG=1 also
-- every arrival time.
local faults = require "spec.helpers.redis_faults"

describe("shared state you can trust: Redis faults mid-run", function()
  local F = faults.new()
  lazy_setup(F.setup)
  lazy_teardown(F.teardown)
  after_each(F.cleanup)
  local redis_helper, process, socket, store = F.redis_helper, F.process, F.socket, F.store
  local PASSWORD, sleep, now = F.PASSWORD, F.sleep, F.now
  local said, rate_of, busiest_second, between = F.said, F.rate_of, F.busiest_second, F.between
  local started, fresh_redis, figures, check_outcome = F.started, F.fresh_redis, F.figures, F.check_outcome
  local check_all_lines, check_pairs, once_if_running, mid_run = F.check_all_lines, F.check_pairs, F.once_if_running, F.mid_run

  it("DEBUG SLEEP 3 mid-run: each process falls back, says so once, and comes back; zero throttled", function()
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
      else -- (its decisions: issue 87)
        lines[3], lines[4] = { s.failed_dec, 0, 1 }, { s.back_dec, 0, 1 }
      end
      return lines
    end)
    check_pairs(r, s, r.marks.sleep + 3 + 1 + store.RETRY_MS / 1000)
    -- (While Redis sleeps, together at most the rate, each process at rate / 10: spec/engine/11-store-time,
    -- "Redis asleep 3 s", in virtual time; here a figure)
    local at = r.marks.sleep
    local down = rate_of(between(r.ali, at + 1, at + 3))
    figures("DEBUG SLEEP", { throttled = r.ali_counters.throttled or 0, zthrottled = r.zego_counters.throttled or 0,
      seconds = r.seconds, asleep_rate = down, failed_ali = total.aliyun1, back_ali = total.aliyun2,
      failed_zego = total.zego1, back_zego = total.zego2, failed_seq = total.zego3, back_seq = total.zego4,
      zasleep_rate = rate_of(between(r.zego, at + 1, at + 3)),
      busiest = busiest_second(r.ali), zbusiest = busiest_second(r.zego) })
  end)

  -- In one process, against a Redis that stops answering for a while (a
  -- connect succeeds, commands wait): a call takes up to timeout_ms, and
  -- what the store hands out must count from when it answers (the times:
  -- spec/engine/11-store-time, "a Redis that never answers").
  describe("a Redis that stops answering: what a slow call hands out counts from its end", function()
    local core = require "streamctl.core"
    local sleep_s = require("streamctl.transport.curl").sleep

    it("the fallback sends through the retries' timeouts; Redis' failure said once", function()
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
      -- (Redis sleeps from when it reads the command, not before it was sent: timed from the send, as a
      -- process held between the send and the reserve on a busy machine would shorten the wait seen after)
      local sent = now()
      assert(staller:send(resp { "DEBUG", "SLEEP", "0.8" }))
      sleep(0.05)
      assert.is_true(select(2, rl:reserve(key, 10, 1, 0.5)))  -- answered when Redis wakes
      assert.is_true(now() - sent > 0.75, "Redis did not stall")
      assert.equal("+OK", staller:receive("*l"))
      staller:close()
      local d, committed = rl:reserve(key, 10, 1, 0.5)
      assert.is_true(committed and d < 0.5, "after the stall: " .. d .. " s")
      assert.same({}, logs)
    end)

    it("a Sequence taken after a timed-out call is this machine's clock within the call", function()
      local sock, port = redis_helper.silent_server()
      started[#started + 1] = function() sock:close() end
      local seq = store.sequence_store({ port = port, timeout_ms = 200 }, "zego:1234567890:",
        { log = function() end })
      local candidate = math.floor(core.now() * 1000)
      local v = seq:advance_all({ "s1", "s2" }, candidate)
      -- (from the clock at its end, 200 ms after the call began: spec/engine/11-store-time, in virtual time)
      assert.is_true(v >= candidate, "Sequence " .. v .. " for a call that began at " .. candidate)
      assert.is_true(v <= math.floor(core.now() * 1000))
    end)
  end)
end)
