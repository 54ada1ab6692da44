-- tier: unit
-- sanitizers: none (the engine on a fake clock: pure Lua)
-- streamctl.engine.retry: decisions, backoff schedule and budget, with a fixed random.

local retry = require "streamctl.engine.retry"

local checks = require "spec.helpers.checks"

local function raises(fn, fragment) checks.raises(fn, fragment, "07-retry_spec.lua") end

local function fixed(r) return function() return r end end

-- Errors as the classifiers produce them.
local function server_err(fields)
  local e = { provider = "aliyun", action = "ResumeLiveStream", code = "InternalError",
              http_status = 500, retryable = true, kind = "server" }
  for k, v in pairs(fields or {}) do e[k] = v end
  return e
end

local function throttled_err(fields)
  local e = { provider = "aliyun", action = "ResumeLiveStream", code = "Throttling.User",
              http_status = 400, retryable = true, kind = "throttled" }
  for k, v in pairs(fields or {}) do e[k] = v end
  return e
end

local function clock_err(fields)
  local e = { provider = "zego", action = "ForbidRTCStream", code = 100000004, http_status = 200,
              retryable = true, kind = "clock", server_date = 1700000000 }
  for k, v in pairs(fields or {}) do e[k] = v end
  return e
end

-- The delays decide gives for attempts 1..n (stopping at the first refusal).
local function schedule(p, err, n)
  local out = {}
  for attempt = 1, n do
    local d = p:decide(err, attempt)
    if not d.retry then break end
    out[#out + 1] = d.delay_ms
  end
  return out
end

describe("retry.policy defaults", function()
  it("makes 3 attempts with 100 ms base backoff", function()
    local p = retry.policy { random = fixed(1) }
    assert.are.same({ retry = true, delay_ms = 100, reason = "server: backoff" }, p:decide(server_err(), 1))
    assert.are.same({ retry = true, delay_ms = 200, reason = "server: backoff" }, p:decide(server_err(), 2))
    assert.are.same({ retry = false, reason = "attempts exhausted (3 of 3)" }, p:decide(server_err(), 3))
  end)

  it("uses 500 ms base for throttling", function()
    local p = retry.policy { random = fixed(1) }
    assert.are.same({ 500, 1000 }, schedule(p, throttled_err(), 5))
  end)

  it("starts with a full budget of 10", function()
    assert.are.equal(10, retry.policy():budget())
  end)

  it("uses math.random by default, within the full-jitter range", function()
    local p = retry.policy { budget = false, attempts = 100 }
    for attempt = 1, 8 do
      for _ = 1, 20 do
        local d = p:decide(server_err(), attempt)
        assert.is_true(d.retry)
        assert.is_true(d.delay_ms >= 0 and d.delay_ms <= 100 * 2 ^ (attempt - 1))
      end
    end
  end)
end)

describe("policy:decide backoff", function()
  it("doubles from base_ms and stops at cap_ms (random = 1)", function()
    local p = retry.policy { attempts = 12, budget = false, random = fixed(1) }
    assert.are.same({ 100, 200, 400, 800, 1600, 3200, 6400, 12800, 20000, 20000, 20000 },
      schedule(p, server_err(), 12))
  end)

  it("honours custom base and cap", function()
    local p = retry.policy { attempts = 6, base_ms = 50, cap_ms = 300, budget = false, random = fixed(1) }
    assert.are.same({ 50, 100, 200, 300, 300 }, schedule(p, server_err(), 6))
  end)

  it("uses throttle_base_ms for throttling errors", function()
    local p = retry.policy { attempts = 8, throttle_base_ms = 250, cap_ms = 5000, budget = false,
                             random = fixed(1) }
    assert.are.same({ 250, 500, 1000, 2000, 4000, 5000, 5000 }, schedule(p, throttled_err(), 8))
  end)

  it("scales by random(): full jitter", function()
    local p = retry.policy { attempts = 5, budget = false, random = fixed(0.5) }
    assert.are.same({ 50, 100, 200, 400 }, schedule(p, server_err(), 5))
    p = retry.policy { attempts = 5, budget = false, random = fixed(0) }
    assert.are.same({ 0, 0, 0, 0 }, schedule(p, server_err(), 5))
  end)

  it("rounds down to whole milliseconds", function()
    local p = retry.policy { attempts = 3, budget = false, random = fixed(0.33333) }
    assert.are.same({ 33, 66 }, schedule(p, server_err(), 3))
  end)

  it("gives delays that print as integers", function()
    local p = retry.policy { attempts = 3, budget = false, random = fixed(1) }
    local d = p:decide(server_err(), 2)
    assert.are.equal("200", tostring(d.delay_ms))
    assert.are.equal("200", string.format("%d", d.delay_ms))
    d = p:decide(server_err { retry_after_ms = 1234.2 }, 1)
    assert.are.equal("1235", tostring(d.delay_ms))
  end)

  it("calls random once per granted decision, in order", function()
    local values, i = { 0.1, 0.2, 0.9 }, 0
    local p = retry.policy { attempts = 4, budget = false, random = function() i = i + 1; return values[i] end }
    assert.are.same({ 10, 40, 360 }, schedule(p, server_err(), 4))
    assert.are.equal(3, i)
  end)

  it("stays finite for very late attempts", function()
    local p = retry.policy { attempts = 5000, budget = false, random = fixed(1) }
    assert.are.equal(20000, p:decide(server_err(), 1100).delay_ms)
    p = retry.policy { attempts = 5000, budget = false, random = fixed(0) }
    assert.are.equal(0, p:decide(server_err(), 1100).delay_ms)
  end)

  it("retries network and timeout failures that were classified retryable", function()
    local p = retry.policy { random = fixed(1) }
    local d = p:decide({ provider = "aliyun", code = "Timeout", kind = "timeout", sent = false, retryable = true }, 1)
    assert.are.same({ retry = true, delay_ms = 100, reason = "timeout: backoff" }, d)
    d = p:decide({ provider = "zego", code = "NetworkError", kind = "network", sent = true, retryable = true }, 1)
    assert.are.same({ retry = true, delay_ms = 100, reason = "network: backoff" }, d)
  end)

  it("retries ZEGO's numeric throttling code", function()
    local p = retry.policy { random = fixed(1) }
    local d = p:decide({ provider = "zego", code = 30002, kind = "throttled", http_status = 200, retryable = true }, 1)
    assert.are.same({ retry = true, delay_ms = 500, reason = "throttled: backoff" }, d)
  end)
end)

describe("policy:decide retry_after_ms", function()
  it("waits at least the provider's retry-after", function()
    local p = retry.policy { random = fixed(0) }
    assert.are.same({ retry = true, delay_ms = 3000, reason = "throttled: provider's retry-after" },
      p:decide(throttled_err { retry_after_ms = 3000 }, 1))
  end)

  it("keeps the backoff when it is longer than the retry-after", function()
    local p = retry.policy { random = fixed(1) }
    assert.are.same({ retry = true, delay_ms = 500, reason = "throttled: backoff" },
      p:decide(throttled_err { retry_after_ms = 200 }, 1))
  end)

  it("caps the retry-after at cap_ms", function()
    local p = retry.policy { cap_ms = 20000, random = fixed(0) }
    assert.are.equal(20000, p:decide(throttled_err { retry_after_ms = 60000 }, 1).delay_ms)
  end)

  it("rounds a fractional retry-after up", function()
    local p = retry.policy { random = fixed(0) }
    assert.are.equal(1501, p:decide(throttled_err { retry_after_ms = 1500.5 }, 1).delay_ms)
  end)

  it("ignores a retry-after of zero, negative or not a number", function()
    local p = retry.policy { budget = false, random = fixed(1) }
    assert.are.equal(500, p:decide(throttled_err { retry_after_ms = 0 }, 1).delay_ms)
    assert.are.equal(500, p:decide(throttled_err { retry_after_ms = -5 }, 1).delay_ms)
    assert.are.equal(500, p:decide(throttled_err { retry_after_ms = "9000" }, 1).delay_ms)
  end)

  it("does not make a non-retryable error retryable", function()
    local p = retry.policy { random = fixed(0) }
    assert.is_false(p:decide(server_err { retryable = false, retry_after_ms = 100 }, 1).retry)
  end)

  it("does not extend the attempts", function()
    local p = retry.policy { random = fixed(0) }
    assert.is_false(p:decide(throttled_err { retry_after_ms = 100 }, 3).retry)
  end)
end)

describe("policy:decide refusals", function()
  it("never retries validation, auth or signature errors, even if marked retryable", function()
    local p = retry.policy { random = fixed(1) }
    for _, kind in ipairs { "validation", "auth", "signature" } do
      for _, retryable in ipairs { true, false } do
        local d = p:decide({ provider = "aliyun", code = "X", kind = kind, retryable = retryable }, 1)
        assert.are.same({ retry = false, reason = kind .. " errors are never retried" }, d)
      end
    end
    assert.are.equal(10, p:budget())
  end)

  it("does not retry errors not marked retryable", function()
    local p = retry.policy { random = fixed(1) }
    assert.are.same({ retry = false, reason = "not retryable (service CodeConfigAlreadyExists)" },
      p:decide({ provider = "aliyun", code = "CodeConfigAlreadyExists", kind = "service", retryable = false }, 1))
    assert.are.same({ retry = false, reason = "not retryable (timeout Timeout)" },
      p:decide({ provider = "aliyun", code = "Timeout", kind = "timeout", sent = true }, 1))
    assert.are.same({ retry = false, reason = "not retryable (tls TLSError)" },
      p:decide({ provider = "zego", code = "TLSError", kind = "tls", retryable = false }, 1))
    assert.are.equal(10, p:budget())
  end)

  it("treats a missing retryable as false", function()
    local p = retry.policy { random = fixed(1) }
    assert.is_false(p:decide({ kind = "server", code = "InternalError" }, 1).retry)
  end)

  it("counts the first try in attempts", function()
    local p = retry.policy { attempts = 1, random = fixed(1) }
    assert.are.same({ retry = false, reason = "attempts exhausted (1 of 1)" }, p:decide(server_err(), 1))
    p = retry.policy { attempts = 5, budget = false, random = fixed(1) }
    assert.are.same({ 100, 200, 400, 800 }, schedule(p, server_err(), 10))
    assert.are.same({ retry = false, reason = "attempts exhausted (5 of 5)" }, p:decide(server_err(), 5))
    assert.are.same({ retry = false, reason = "attempts exhausted (6 of 5)" }, p:decide(server_err(), 6))
  end)
end)

describe("policy:decide clock skew", function()
  it("retries once, immediately, when the response had a Date", function()
    local p = retry.policy { random = fixed(1) }
    assert.are.same({ retry = true, delay_ms = 0,
                      reason = "clock skew: retry once with the clock corrected from the server's Date" },
      p:decide(clock_err(), 1))
  end)

  it("never retries a second time", function()
    local p = retry.policy { attempts = 10, budget = false, random = fixed(1) }
    assert.is_true(p:decide(clock_err(), 1).retry)
    for attempt = 2, 9 do
      assert.are.same({ retry = false, reason = "clock skew is retried once, as the first retry only" },
        p:decide(clock_err(), attempt))
    end
  end)

  it("is not retried when it comes after other retries", function()
    local p = retry.policy { attempts = 10, budget = false, random = fixed(1) }
    assert.is_true(p:decide(throttled_err(), 1).retry)
    assert.is_false(p:decide(clock_err(), 2).retry)
  end)

  it("gives one retry along a whole call: skew, corrected, skew again", function()
    local p = retry.policy { attempts = 5, random = fixed(1) }
    local failures = { clock_err(), clock_err(), clock_err() }
    local retries = 0
    for attempt = 1, #failures do
      if not p:decide(failures[attempt], attempt).retry then break end
      retries = retries + 1
    end
    assert.are.equal(1, retries)
  end)

  it("is retried even when the classifier left retryable false", function()
    local p = retry.policy { random = fixed(1) }
    assert.is_true(p:decide(clock_err { retryable = false }, 1).retry)
  end)

  it("is not retried without a server Date to correct from", function()
    local p = retry.policy { random = fixed(1) }
    assert.are.same({ retry = false, reason = "clock skew, but the response had no Date to correct the clock from" },
      p:decide(clock_err { server_date = false }, 1))
    assert.is_false(p:decide({ kind = "clock", retryable = true }, 1).retry)
  end)

  it("respects attempts = 1 and the budget", function()
    assert.is_false(retry.policy { attempts = 1 }:decide(clock_err(), 1).retry)
    local p = retry.policy { budget = { capacity = 1, refill_per_success = 0 } }
    assert.is_true(p:decide(clock_err(), 1).retry)
    assert.are.equal(0, p:budget())
    assert.are.same({ retry = false, reason = "retry budget exhausted" }, p:decide(clock_err(), 1))
  end)

  it("ignores retry_after_ms", function()
    local p = retry.policy { random = fixed(1) }
    assert.are.equal(0, p:decide(clock_err { retry_after_ms = 5000 }, 1).delay_ms)
  end)
end)

describe("retry.clock_offset", function()
  it("is the server's Date minus local time, in whole seconds", function()
    assert.are.equal(-900, retry.clock_offset({ server_date = 1700000000 }, 1700000900))
    assert.are.equal(1200, retry.clock_offset({ server_date = 1700001200 }, 1700000000))
    assert.are.equal(0, retry.clock_offset({ server_date = 1700000000 }, 1700000000))
  end)

  it("rounds fractional local times to the nearest second", function()
    assert.are.equal(0, retry.clock_offset({ server_date = 1000 }, 999.6))
    assert.are.equal(1, retry.clock_offset({ server_date = 1000 }, 999.4))
    assert.are.equal(-1, retry.clock_offset({ server_date = 1000 }, 1000.6))
  end)

  it("prints as an integer", function()
    local off = retry.clock_offset({ server_date = 1700000000 }, 1700000900.25)
    assert.are.equal("-900", tostring(off))
  end)

  it("is nil without a server Date", function()
    assert.is_nil(retry.clock_offset({}, 1700000000))
    assert.is_nil(retry.clock_offset({ server_date = "Tue, 14 Nov 2023" }, 1700000000))
  end)

  it("raises on bad arguments, naming them", function()
    raises(function() retry.clock_offset(nil, 1) end, "bad argument #1 to 'clock_offset' (err must be a table")
    raises(function() retry.clock_offset({}, "now") end, "bad argument #2 to 'clock_offset' (local_now_seconds")
    raises(function() retry.clock_offset({}, 0 / 0) end, "bad argument #2 to 'clock_offset'")
  end)
end)

describe("the retry budget", function()
  it("withdraws one token per retry and refuses when empty", function()
    local p = retry.policy { budget = { capacity = 3, refill_per_success = 0.1 }, random = fixed(1) }
    -- retries from different calls share one budget
    for i = 1, 3 do
      assert.is_true(p:decide(server_err(), 1).retry)
      assert.are.equal(3 - i, p:budget())
    end
    assert.are.same({ retry = false, reason = "retry budget exhausted" }, p:decide(server_err(), 1))
    assert.are.same({ retry = false, reason = "retry budget exhausted" }, p:decide(throttled_err(), 2))
  end)

  it("needs a whole token", function()
    local p = retry.policy { budget = { capacity = 1.5, refill_per_success = 0.1 }, random = fixed(1) }
    assert.is_true(p:decide(server_err(), 1).retry)
    assert.are.equal(0.5, p:budget())
    assert.is_false(p:decide(server_err(), 1).retry)
  end)

  it("refills exactly: ten successes at 0.1 give one retry", function()
    local p = retry.policy { budget = { capacity = 1, refill_per_success = 0.1 }, random = fixed(1) }
    assert.is_true(p:decide(server_err(), 1).retry)
    for _ = 1, 9 do p:on_success() end
    assert.are.same({ retry = false, reason = "retry budget exhausted" }, p:decide(server_err(), 1))
    p:on_success()
    assert.are.equal(1, p:budget())
    assert.is_true(p:decide(server_err(), 1).retry)
    assert.is_false(p:decide(server_err(), 1).retry)
  end)

  it("refills up to capacity and no further", function()
    local p = retry.policy { budget = { capacity = 2, refill_per_success = 0.5 }, random = fixed(1) }
    p:decide(server_err(), 1)
    assert.are.equal(1, p:budget())
    for _ = 1, 100 do p:on_success() end
    assert.are.equal(2, p:budget())
    assert.is_true(p:decide(server_err(), 1).retry)
    assert.is_true(p:decide(server_err(), 1).retry)
    assert.is_false(p:decide(server_err(), 1).retry)
  end)

  it("never refills with refill_per_success = 0", function()
    local p = retry.policy { budget = { capacity = 1, refill_per_success = 0 }, random = fixed(1) }
    p:decide(server_err(), 1)
    for _ = 1, 1000 do p:on_success() end
    assert.are.equal(0, p:budget())
  end)

  it("is untouched by refusals", function()
    local p = retry.policy { budget = { capacity = 2 }, random = fixed(1) }
    p:decide(server_err { retryable = false }, 1)
    p:decide(server_err(), 3)
    p:decide({ kind = "auth", retryable = true }, 1)
    p:decide(clock_err(), 2)
    assert.are.equal(2, p:budget())
  end)

  it("stops a retry storm: 100 failing calls get 10 retries, then one per 10 successes", function()
    local p = retry.policy { random = fixed(0) }
    local granted = 0
    for _ = 1, 100 do
      for attempt = 1, 3 do
        if not p:decide(server_err(), attempt).retry then break end
        granted = granted + 1
      end
    end
    assert.are.equal(10, granted)
    for _ = 1, 10 do p:on_success() end
    assert.is_true(p:decide(server_err(), 1).retry)
    assert.is_false(p:decide(server_err(), 1).retry)
  end)

  it("fills unspecified budget fields with the defaults", function()
    local p = retry.policy { budget = { capacity = 4 }, random = fixed(1) }
    p:decide(server_err(), 1)
    for _ = 1, 10 do p:on_success() end
    assert.are.equal(4, p:budget())
    p = retry.policy { budget = {}, random = fixed(1) }
    assert.are.equal(10, p:budget())
  end)

  it("is unlimited with budget = false", function()
    local p = retry.policy { budget = false, random = fixed(1) }
    for _ = 1, 1000 do assert.is_true(p:decide(server_err(), 1).retry) end
    assert.is_nil(p:budget())
    p:on_success() -- harmless
  end)
end)

describe("argument checking", function()
  it("refuses bad policy options with nil, err naming them (options not a table raise)", function()
    raises(function() retry.policy(3) end, "bad argument #1 to 'policy' (opts must be a table or nil)")
    local function refused(message, opts) checks.refused(message, retry.policy(opts)) end
    refused("option 'retries' is not an option of streamctl.engine.retry.policy", { retries = 3 })
    refused("option 'attempts' must be at least 1", { attempts = 0 })
    refused("option 'attempts' must be an integer", { attempts = 2.5 })
    refused("option 'attempts' must be an integer", { attempts = math.huge })
    refused("option 'base_ms' must be at least 0", { base_ms = -1 })
    refused("option 'throttle_base_ms' must be a finite number", { throttle_base_ms = "500" })
    refused("option 'cap_ms' must be a finite number", { cap_ms = math.huge })
    refused("option 'cap_ms' must be a finite number", { cap_ms = 0 / 0 })
    refused("option 'budget' must be a table or false", { budget = 10 })
    refused("option 'budget' must be a table or false", { budget = true })
    refused("option 'budget' capacity must be a finite number > 0", { budget = { capacity = 0 } })
    refused("option 'budget' capacity must be a finite number > 0", { budget = { capacity = -1 } })
    refused("option 'budget' refill_per_success must be a finite number >= 0", { budget = { refill_per_success = -0.1 } })
    refused("option 'budget' has no setting 'refill' (it takes capacity and refill_per_success)",
      { budget = { refill = 1 } })
    refused("option 'random' must be a function", { random = 0.5 })
  end)

  it("raises on bad decide arguments, naming them", function()
    local p = retry.policy()
    raises(function() p:decide(nil, 1) end, "bad argument #1 to 'decide' (err must be an error table, got nil)")
    raises(function() p:decide("Throttling", 1) end, "bad argument #1 to 'decide'")
    raises(function() p:decide(server_err(), 0) end, "bad argument #2 to 'decide' (attempt must be an integer >= 1")
    raises(function() p:decide(server_err(), 1.5) end, "bad argument #2 to 'decide'")
    raises(function() p:decide(server_err()) end, "bad argument #2 to 'decide'")
  end)

  it("raises when random() returns something outside [0, 1]", function()
    raises(function() retry.policy { random = fixed(1.5) }:decide(server_err(), 1) end, "random() returned 1.5")
    raises(function() retry.policy { random = fixed(-0.1) }:decide(server_err(), 1) end, "random() returned")
    raises(function() retry.policy { random = fixed(nil) }:decide(server_err(), 1) end, "random() returned nil")
    raises(function() retry.policy { random = fixed(0 / 0) }:decide(server_err(), 1) end, "random() returned")
  end)

  it("does not call random() for a refusal", function()
    local p = retry.policy { attempts = 2, budget = { capacity = 1 },
                             random = function() error("random called") end }
    assert.is_false(p:decide(server_err(), 2).retry)              -- attempts exhausted
    assert.is_false(p:decide(server_err { retryable = false }, 1).retry)
    assert.is_false(p:decide({ kind = "auth" }, 1).retry)
    assert.is_true(p:decide(clock_err(), 1).retry)                -- no jitter for clock skew
    assert.is_false(p:decide(server_err(), 1).retry)              -- budget exhausted
  end)

  it("takes no token when random() raises", function()
    local p = retry.policy { random = fixed(2) }
    pcall(p.decide, p, server_err(), 1)
    assert.are.equal(10, p:budget())
  end)
end)

describe("streamctl.base.jitter", function()
  it("draws a uniform number in [0, 1) from streamctl.core's random_hex, looked up at each draw", function()
    local core = require "streamctl.core"
    local jitter = require "streamctl.base.jitter"
    local real = core.random_hex
    local asked = {}
    local ok, err = pcall(function()
      core.random_hex = function(n) asked[#asked + 1] = n return "ffffffff" end
      assert.equal(4294967295 / 4294967296, jitter.unit()) -- (never 1)
      core.random_hex = function(n) asked[#asked + 1] = n return "00000000" end
      assert.equal(0, jitter.unit())
    end)
    core.random_hex = real
    assert(ok, err)
    assert.same({ 4, 4 }, asked)
    local seen = {}
    for _ = 1, 50 do
      local u = jitter.unit()
      assert.is_true(u >= 0 and u < 1)
      seen[u] = true
    end
    local distinct = 0
    for _ in pairs(seen) do distinct = distinct + 1 end
    assert.is_true(distinct > 45, distinct .. " distinct draws in 50")
  end)
end)
