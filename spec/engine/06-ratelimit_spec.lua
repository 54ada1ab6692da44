-- tier: unit
-- sanitizers: none (the engine on a fake clock: pure Lua)
-- streamctl.engine.ratelimit: GCRA token buckets, driven by a fake clock.

local ratelimit = require "streamctl.engine.ratelimit"
local room = require "streamctl.engine.room"

local EPS = 1e-9

local checks = require "spec.helpers.checks"
local fake_clock = checks.fake_clock

-- Asserts that fn raises an error mentioning `fragment`, blamed on this file.
local function raises(fn, fragment) checks.raises(fn, fragment, "06-ratelimit_spec.lua") end

local refused = checks.refused

-- (two arguments only: a reservation's second result, committed, is no epsilon)
local function near(expected, actual)
  local eps = EPS
  assert(math.abs(expected - actual) <= eps,
    string.format("expected %.17g, got %.17g", expected, actual))
end

-- A store that records every call and delegates to a memory store.
local function spy_store(clock)
  local inner = ratelimit.memory_store { clock = clock }
  local s = { gets = {}, sets = {} }
  function s:get(key)
    self.gets[#self.gets + 1] = key
    return inner:get(key)
  end
  function s:set(key, value, ttl)
    self.sets[#self.sets + 1] = { key = key, value = value, ttl = ttl }
    return inner:set(key, value, ttl)
  end
  return s
end

-- A store that fails the test if touched.
local untouchable = {
  get = function() error("store:get must not be called") end,
  set = function() error("store:set must not be called") end,
}

describe("limiter:reserve", function()
  local clock, rl
  before_each(function()
    clock = fake_clock(1000)
    rl = ratelimit.new { clock = clock.now }
  end)

  it("gives exactly 0 to the first caller", function()
    assert.are.equal(0, rl:reserve("k", 30))
  end)

  it("spaces 100 reservations at 30/s by exactly 1/30 under a frozen clock", function()
    for i = 0, 99 do
      near(i / 30, rl:reserve("k", 30))
    end
  end)

  it("stays exact over 1000 reservations", function()
    local last
    for _ = 1, 1000 do last = rl:reserve("k", 30) end
    near(999 / 30, last)
  end)

  it("makes callers that each sleep their delay send evenly spaced", function()
    local sends = {}
    for i = 1, 50 do sends[i] = clock.t + rl:reserve("k", 10) end
    for i = 2, 50 do near(0.1, sends[i] - sends[i - 1]) end
    near(1000, sends[1])
  end)

  it("treats burst as 1 by default", function()
    assert.are.equal(0, rl:reserve("k", 2))
    near(0.5, rl:reserve("k", 2))
  end)

  it("lets `burst` callers go at once, then spaces the rest", function()
    assert.are.equal(0, rl:reserve("k", 1, 3))
    assert.are.equal(0, rl:reserve("k", 1, 3))
    assert.are.equal(0, rl:reserve("k", 1, 3))
    near(1, rl:reserve("k", 1, 3))
    near(2, rl:reserve("k", 1, 3))
  end)

  it("refills the bucket at `rate` tokens per second", function()
    for _ = 1, 4 do assert.are.equal(0, rl:reserve("k", 2, 4)) end
    near(0.5, rl:reserve("k", 2, 4)) -- committed: the slot at +0.5 is taken
    clock.t = clock.t + 1.5            -- three tokens back, one of them that slot's
    assert.are.equal(0, rl:reserve("k", 2, 4))
    assert.are.equal(0, rl:reserve("k", 2, 4))
    near(0.5, rl:reserve("k", 2, 4))
  end)

  it("refills partly: two tokens back after one second at 2/s", function()
    for _ = 1, 4 do assert.are.equal(0, rl:reserve("k", 2, 4)) end
    clock.t = clock.t + 1
    assert.are.equal(0, rl:reserve("k", 2, 4))
    assert.are.equal(0, rl:reserve("k", 2, 4))
    near(0.5, rl:reserve("k", 2, 4))
  end)

  it("never stores more than `burst` tokens, however long the idle time", function()
    rl:reserve("k", 1, 2)
    clock.t = clock.t + 3600
    assert.are.equal(0, rl:reserve("k", 1, 2))
    assert.are.equal(0, rl:reserve("k", 1, 2))
    near(1, rl:reserve("k", 1, 2))
  end)

  it("caps the tokens after idle time even when the store keeps stale entries", function()
    local r = ratelimit.new { clock = clock.now, store = ratelimit.memory_store() } -- no expiry
    r:reserve("k", 1, 2)
    clock.t = clock.t + 3600
    assert.are.equal(0, r:reserve("k", 1, 2))
    assert.are.equal(0, r:reserve("k", 1, 2))
    near(1, r:reserve("k", 1, 2))
    near(2, r:reserve("k", 1, 2))
  end)

  it("starts afresh after idle time at burst 1", function()
    for _ = 1, 5 do rl:reserve("k", 10) end -- slots at +0 .. +0.4
    clock.t = clock.t + 10
    assert.are.equal(0, rl:reserve("k", 10))
    near(0.1, rl:reserve("k", 10))
  end)

  it("counts queued reservations when callers arrive part-way", function()
    for i = 0, 4 do near(i * 0.1, rl:reserve("k", 10)) end -- next free slot: +0.5
    clock.t = clock.t + 0.25
    near(0.25, rl:reserve("k", 10))
    clock.t = clock.t + 0.25 -- now at the slot reserved just above; next free: +0.7
    near(0.1, rl:reserve("k", 10))
  end)

  it("gives callers arriving slower than the rate no delay", function()
    for _ = 1, 10 do
      assert.are.equal(0, rl:reserve("k", 10))
      clock.t = clock.t + 0.1
    end
  end)

  it("delays callers arriving faster than the rate by the shortfall", function()
    assert.are.equal(0, rl:reserve("k", 10))
    clock.t = clock.t + 0.01
    near(0.09, rl:reserve("k", 10))
    clock.t = clock.t + 0.01
    near(0.18, rl:reserve("k", 10))
  end)

  it("handles rates below 1 per second", function()
    assert.are.equal(0, rl:reserve("k", 0.5))
    near(2, rl:reserve("k", 0.5))
    near(4, rl:reserve("k", 0.5))
  end)

  it("keeps keys independent", function()
    assert.are.equal(0, rl:reserve("aliyun:AK1:ResumeLiveStream", 1))
    assert.are.equal(0, rl:reserve("aliyun:AK2:ResumeLiveStream", 1))
    assert.are.equal(0, rl:reserve("aliyun:AK1:ForbidLiveStream", 1))
    near(1, rl:reserve("aliyun:AK1:ResumeLiveStream", 1))
  end)

  it("is off for rate nil, false and math.huge, touching no store", function()
    local r = ratelimit.new { clock = clock.now, store = untouchable }
    for _ = 1, 100 do
      assert.are.equal(0, r:reserve("k", nil))
      assert.are.equal(0, r:reserve("k", false))
      assert.are.equal(0, r:reserve("k", math.huge))
      assert.are.equal(0, r:reserve("k", nil, 5))
    end
  end)

  it("raises on bad arguments, naming them", function()
    raises(function() rl:reserve(nil, 1) end, "bad argument #1 to 'reserve' (key must be a string, got nil)")
    raises(function() rl:reserve(5, 1) end, "bad argument #1 to 'reserve' (key must be a string, got number)")
    raises(function() rl:reserve("k", 0) end, "bad argument #2 to 'reserve' (rate must be a positive number")
    raises(function() rl:reserve("k", -1) end, "bad argument #2 to 'reserve' (rate")
    raises(function() rl:reserve("k", 0 / 0) end, "bad argument #2 to 'reserve' (rate")
    raises(function() rl:reserve("k", -math.huge) end, "bad argument #2 to 'reserve' (rate")
    raises(function() rl:reserve("k", "30") end, "bad argument #2 to 'reserve' (rate")
    raises(function() rl:reserve("k", true) end, "bad argument #2 to 'reserve' (rate")
    raises(function() rl:reserve("k", 1, 0) end, "bad argument #3 to 'reserve' (burst must be an integer >= 1, got 0)")
    raises(function() rl:reserve("k", 1, 1.5) end, "bad argument #3 to 'reserve' (burst")
    raises(function() rl:reserve("k", 1, -2) end, "bad argument #3 to 'reserve' (burst")
    raises(function() rl:reserve("k", 1, math.huge) end, "bad argument #3 to 'reserve' (burst")
    raises(function() rl:reserve("k", 1, "2") end, "bad argument #3 to 'reserve' (burst")
  end)

  it("raises when the clock returns something other than a number", function()
    local r = ratelimit.new { clock = function() return nil end }
    raises(function() r:reserve("k", 1) end, "clock returned nil")
    r = ratelimit.new { clock = function() return 0 / 0 end }
    raises(function() r:reserve("k", 1) end, "clock returned")
  end)
end)

describe("limiter:reserve with max_delay (just in time)", function()
  local clock, rl
  before_each(function()
    clock = fake_clock(1000)
    rl = ratelimit.new { clock = clock.now }
  end)

  it("commits a slot within max_delay and says so", function()
    local d0, c0, n0 = rl:reserve("k", 10, 1, 0.25)
    assert.same({ 0, true }, { d0, c0 })
    near(0.1, n0) -- and the slot after it is 0.1 s away
    local d, committed = rl:reserve("k", 10, 1, 0.25)
    near(0.1, d)
    assert.is_true(committed)
  end)

  it("commits nothing beyond max_delay, and says when the slot would be free", function()
    for _ = 1, 3 do rl:reserve("k", 10, 1, 0.25) end -- slots at +0, +0.1, +0.2
    local d, committed = rl:reserve("k", 10, 1, 0.25)
    near(0.3, d)
    assert.is_false(committed)
    -- nothing was recorded: the same answer again, and at +0.05 the slot is within reach
    near(0.3, (rl:reserve("k", 10, 1, 0.25)))
    clock.t = clock.t + 0.05
    local d2, c2 = rl:reserve("k", 10, 1, 0.25)
    near(0.25, d2)
    assert.is_true(c2)
  end)

  it("never holds more than the horizon ahead, however many ask", function()
    local committed = 0
    for _ = 1, 100 do
      local _, c = rl:reserve("k", 20, 1, 0.2)
      if c then committed = committed + 1 end
    end
    assert.equal(5, committed) -- +0, +0.05, +0.1, +0.15, +0.2
  end)

  it("refuses a max_delay that is no number >= 0", function()
    raises(function() rl:reserve("k", 10, 1, -1) end, "bad argument #4 to 'reserve' (max_delay must be a number >= 0, got -1)")
    raises(function() rl:reserve("k", 10, 1, 0 / 0) end, "max_delay must be a number >= 0")
    raises(function() rl:reserve("k", 10, 1, "1") end, "max_delay must be a number >= 0, got 1")
  end)

  it("hands max_delay to a store's reserve, and refuses one that does not say whether it committed", function()
    local seen
    local store = { reserve = function(_, key, rate, burst, max_delay)
      seen = { key, rate, burst, max_delay }
      return 0.5, false
    end }
    local r = ratelimit.new { store = store }
    assert.same({ 0.5, false }, { r:reserve("k", 2, 3, 0.4) })
    assert.same({ "k", 2, 3, 0.4 }, seen)
    r:reserve("k", 2)
    assert.equal(math.huge, seen[4])
    store.reserve = function() return 0.5 end
    raises(function() r:reserve("k", 2) end, "store:reserve returned no 'committed' boolean beside its delay")
  end)
end)

describe("limiter:try", function()
  local clock, rl
  before_each(function()
    clock = fake_clock(50)
    rl = ratelimit.new { clock = clock.now }
  end)

  it("takes a free token", function()
    assert.are.equal(true, rl:try("k", 1))
  end)

  it("refuses when no token is free, saying how long until one is", function()
    assert.is_true(rl:try("k", 4))
    local ok, delay = rl:try("k", 4)
    assert.are.equal(false, ok)
    near(0.25, delay)
  end)

  it("does not consume anything when it refuses", function()
    assert.is_true(rl:try("k", 4))
    for _ = 1, 10 do assert.is_false((rl:try("k", 4))) end
    clock.t = clock.t + 0.25
    assert.is_true(rl:try("k", 4))
    local ok, delay = rl:try("k", 4)
    assert.is_false(ok)
    near(0.25, delay)
  end)

  it("reports the remaining wait as time passes", function()
    assert.is_true(rl:try("k", 1))
    clock.t = clock.t + 0.75
    local ok, delay = rl:try("k", 1)
    assert.is_false(ok)
    near(0.25, delay)
  end)

  it("allows `burst` tokens at once", function()
    for _ = 1, 3 do assert.is_true(rl:try("k", 2, 3)) end
    local ok, delay = rl:try("k", 2, 3)
    assert.is_false(ok)
    near(0.5, delay)
  end)

  it("sees the slots that reserve committed", function()
    assert.are.equal(0, rl:reserve("k", 10))
    near(0.1, rl:reserve("k", 10))
    local ok, delay = rl:try("k", 10)
    assert.is_false(ok)
    near(0.2, delay)
    clock.t = clock.t + 0.2
    assert.is_true(rl:try("k", 10))
  end)

  it("leaves reserve's schedule unchanged when it refuses", function()
    assert.are.equal(0, rl:reserve("k", 10))
    assert.is_false((rl:try("k", 10)))
    near(0.1, rl:reserve("k", 10))
  end)

  it("takes a slot that reserve then skips", function()
    assert.is_true(rl:try("k", 10))
    near(0.1, rl:reserve("k", 10))
  end)

  it("is true for a disabled limit, touching no store", function()
    local r = ratelimit.new { clock = clock.now, store = untouchable }
    assert.are.equal(true, r:try("k", nil))
    assert.are.equal(true, r:try("k", false))
    assert.are.equal(true, r:try("k", math.huge, 3))
  end)

  it("raises on bad arguments, naming them", function()
    raises(function() rl:try({}, 1) end, "bad argument #1 to 'try' (key must be a string, got table)")
    raises(function() rl:try("k", -5) end, "bad argument #2 to 'try' (rate")
    raises(function() rl:try("k", 5, 0.5) end, "bad argument #3 to 'try' (burst")
  end)
end)

describe("the store contract", function()
  local clock
  before_each(function() clock = fake_clock(10) end)

  it("calls get then set with the new tat and the ttl until it stops mattering", function()
    local s = spy_store(clock.now)
    local rl = ratelimit.new { clock = clock.now, store = s }
    rl:reserve("k", 4)
    rl:reserve("k", 4)
    -- (each reservation reads the budget's room first: streamctl.engine.room)
    assert.are.same({ "room:w:k", "k", "room:w:k", "k" }, s.gets)
    assert.are.equal(2, #s.sets)
    assert.are.equal("k", s.sets[1].key)
    near(10.25, s.sets[1].value)
    near(0.25, s.sets[1].ttl)
    near(10.5, s.sets[2].value)
    near(0.5, s.sets[2].ttl)
  end)

  it("gives a ttl after which the entry is the same as no entry", function()
    local s = spy_store(clock.now)
    local rl = ratelimit.new { clock = clock.now, store = s }
    rl:reserve("k", 1, 3)
    near(1, s.sets[1].ttl)
    clock.t = clock.t + s.sets[1].ttl
    assert.is_nil(s:get("k"))
    for _ = 1, 3 do assert.are.equal(0, rl:reserve("k", 1, 3)) end
  end)

  it("does not set when try refuses", function()
    local s = spy_store(clock.now)
    local rl = ratelimit.new { clock = clock.now, store = s }
    assert.is_true(rl:try("k", 1))
    assert.is_false((rl:try("k", 1)))
    assert.are.equal(4, #s.gets) -- (two of them the room's)
    assert.are.equal(1, #s.sets)
  end)

  it("runs get/set inside store:atomically when the store has it", function()
    local inner = ratelimit.memory_store()
    local depth, calls = 0, {}
    local s = {}
    -- luacheck: push ignore 212/self
    function s:get(key)
      assert.are.equal(1, depth, "get outside atomically")
      return inner:get(key)
    end
    function s:set(key, v, ttl)
      assert.are.equal(1, depth, "set outside atomically")
      return inner:set(key, v, ttl)
    end
    function s:atomically(key, fn)
      calls[#calls + 1] = key
      depth = depth + 1
      local r = { fn() }
      depth = depth - 1
      return (table.unpack or unpack)(r)
    end
    -- luacheck: pop
    local rl = ratelimit.new { clock = clock.now, store = s }
    assert.are.equal(0, rl:reserve("a", 1))
    near(1, rl:reserve("a", 1))
    local ok, delay = rl:try("a", 1)
    assert.is_false(ok)
    near(2, delay)
    assert.is_true(rl:try("b", 1))
    assert.are.same({ "a", "a", "a", "b" }, calls)
  end)

  it("keeps a throttle's room under the store's own keys, and spaces the schedule at it", function()
    local s = spy_store(clock.now)
    local rl = ratelimit.new { clock = clock.now, store = s }
    assert.are.equal(0, rl:reserve("k", 10))
    -- a throttle of an attempt sent 0.01 s ago: the room falls to BETA of the cap
    assert.is_true(rl:throttled("k", 0.01))
    near(room.BETA, rl:room("k"))
    assert.are.equal("room:w:k", s.sets[2].key)
    assert.are.equal(1, s.sets[2].value)
    assert.are.equal("room:t:k", s.sets[3].key)
    assert.are.equal(10, s.sets[3].value)
    -- (the ttl: until the room is whole again, and a second)
    near(room.whole_after(1) + 1, s.sets[2].ttl)
    -- the next slot is the old schedule's (0.1 s), the one after it spaced at 10 * BETA a second
    near(0.1, rl:reserve("k", 10))
    near(0.1 + 1 / (10 * room.BETA), rl:reserve("k", 10))
    -- a throttle of an attempt sent before the cut, or within HOLD of it, belongs to the same overshoot
    assert.is_false(rl:throttled("k", 0.02))
    clock.t = clock.t + room.HOLD - 0.1
    assert.is_false(rl:throttled("k", 0))
    near(room.BETA, rl:room("k")) -- (flat through the hold)
    -- one sent after it cuts again: BETA of the room it met, times the share that got through
    clock.t = clock.t + 0.3
    local before = rl:room("k")
    assert.is_true(before > room.BETA and before < 1)
    assert.is_true(rl:throttled("k", 0.1, 0.5))
    near(room.BETA * 0.5 * before, rl:room("k"))
    -- and the room grows back, whole again after room.whole_after(w)
    clock.t = clock.t + room.whole_after(0.5 * before) + 0.001
    assert.are.equal(1, rl:room("k"))
  end)

  it("holds the whole schedule for the provider's retry-after (at most room.MAX_AFTER)", function()
    local rl = ratelimit.new { clock = clock.now }
    assert.are.equal(0, rl:reserve("k", 10))
    assert.is_true(rl:throttled("k", 0, 1, 0.4))
    near(0.4, rl:reserve("k", 10))
    raises(function() rl:throttled("k", 0, 1, room.MAX_AFTER + 0.001) end,
      "bad argument #4 to 'throttled' (after must be a number from 0 to 1, got 1.001)")
  end)

  it("keeps the room in the limiter for a store with reserve that keeps none", function()
    local asked = {}
    local s = { reserve = function(_, key, rate) asked[#asked + 1] = { key, rate } return 0, true end }
    local rl = ratelimit.new { clock = clock.now, store = s }
    rl:reserve("k", 10)
    assert.is_true(rl:throttled("k", 0))
    rl:reserve("k", 10)
    near(10, asked[1][2])
    near(10 * room.BETA, asked[2][2])
    near(room.BETA, rl:room("k"))
  end)

  it("leaves the room to a store that keeps its own", function()
    local told = {}
    local s = {
      reserve = function(_, _, rate) told.rate = rate return 0, true end,
      throttled = function(_, key, age, share, after) told.throttled = { key, age, share, after } return true end,
      room = function() return 0.5 end,
    }
    local rl = ratelimit.new { clock = clock.now, store = s }
    assert.is_true(rl:throttled("k", 0.25, 0.5, 0.1))
    assert.are.same({ "k", 0.25, 0.5, 0.1 }, told.throttled)
    rl:reserve("k", 10)
    assert.are.equal(10, told.rate) -- (the store spaces it at its room itself)
    assert.are.equal(0.5, rl:room("k"))
  end)

  it("refuses a throttle with a bad key or age, naming it", function()
    local rl = ratelimit.new { clock = clock.now }
    raises(function() rl:throttled(1, 0) end, "bad argument #1 to 'throttled' (key must be a string, got number)")
    raises(function() rl:throttled("k", -1) end, "bad argument #2 to 'throttled' (age must be a number >= 0, got -1)")
    raises(function() rl:throttled("k", 0 / 0) end, "bad argument #2 to 'throttled' (age must be a number >= 0")
    raises(function() rl:throttled("k", 0, 2) end, "bad argument #3 to 'throttled' (share must be a number from 0 to 1, got 2)")
  end)

  it("returns nil, err when atomically cannot lock", function()
    local s = {
      get = function() error("not reached") end,
      set = function() error("not reached") end,
      atomically = function() return nil, "timeout" end,
    }
    local rl = ratelimit.new { clock = clock.now, store = s }
    local d, err = rl:reserve("k", 1)
    assert.is_nil(d)
    assert.are.equal("timeout", err)
    local ok, err2 = rl:try("k", 1)
    assert.is_nil(ok)
    assert.are.equal("timeout", err2)
  end)

  it("returns nil, err when get fails", function()
    local s = { get = function() return nil, "no such dict" end, set = function() return true end }
    local rl = ratelimit.new { clock = clock.now, store = s }
    local d, err = rl:reserve("k", 1)
    assert.is_nil(d)
    assert.are.equal("no such dict", err)
    local ok, err2 = rl:try("k", 1)
    assert.is_nil(ok)
    assert.are.equal("no such dict", err2)
  end)

  it("returns nil, err when set fails", function()
    local s = { get = function() return nil end, set = function() return false, "no memory" end }
    local rl = ratelimit.new { clock = clock.now, store = s }
    local d, err = rl:reserve("k", 1)
    assert.is_nil(d)
    assert.are.equal("no memory", err)
    local ok, err2 = rl:try("k", 1)
    assert.is_nil(ok)
    assert.are.equal("no memory", err2)
  end)

  it("reports a set failure without a message", function()
    local s = { get = function() return nil end, set = function() return nil end }
    local rl = ratelimit.new { clock = clock.now, store = s }
    local d, err = rl:reserve("k", 1)
    assert.is_nil(d)
    assert.are.equal("store set failed", err)
  end)

  it("shares state between limiters on one store", function()
    local s = ratelimit.memory_store { clock = clock.now }
    local a = ratelimit.new { clock = clock.now, store = s }
    local b = ratelimit.new { clock = clock.now, store = s }
    assert.are.equal(0, a:reserve("k", 10))
    near(0.1, b:reserve("k", 10))
    near(0.2, a:reserve("k", 10))
  end)
end)

describe("ratelimit.memory_store", function()
  it("keeps values without a clock, ignoring ttl", function()
    local s = ratelimit.memory_store()
    assert.is_nil(s:get("k"))
    assert.is_true(s:set("k", 5, 0.001))
    assert.are.equal(5, s:get("k"))
    assert.are.equal(1, s:count())
  end)

  it("expires values after their ttl with a clock", function()
    local clock = fake_clock(0)
    local s = ratelimit.memory_store { clock = clock.now }
    s:set("k", 7, 2)
    clock.t = 1.999
    assert.are.equal(7, s:get("k"))
    clock.t = 2
    assert.is_nil(s:get("k"))
    assert.are.equal(0, s:count())
  end)

  it("sweeps expired entries every sweep_every sets", function()
    local clock = fake_clock(0)
    local s = ratelimit.memory_store { clock = clock.now, sweep_every = 3 }
    s:set("a", 1, 1)
    s:set("b", 1, 1)
    assert.are.equal(2, s:count())
    clock.t = 5
    s:set("c", 1, 10) -- third set: sweeps a and b
    assert.are.equal(1, s:count())
    assert.are.equal(1, s:get("c"))
  end)

  it("is the default store, and the default drops idle keys", function()
    local clock = fake_clock(0)
    local rl = ratelimit.new { clock = clock.now }
    for i = 1, 2000 do rl:reserve("key" .. i, 100) end -- each expires after 0.01 s
    clock.t = 1
    for i = 1, 1024 do rl:reserve("other" .. i, 100) end -- sweeps happen along the way
    assert.is_true(rl.store:count() <= 1024)
  end)

  it("raises when the options are not a table; returns nil, err for a bad option", function()
    raises(function() ratelimit.memory_store(5) end, "bad argument #1 to 'memory_store' (opts must be a table or nil)")
    refused("option 'clock' must be a function", ratelimit.memory_store { clock = 5 })
    refused("option 'sweep_every' must be at least 1", ratelimit.memory_store { sweep_every = 0 })
  end)
end)

describe("ratelimit.new", function()
  it("works with the default clock", function()
    local rl = ratelimit.new()
    assert.are.equal(0, rl:reserve("k", 1))
    local d = rl:reserve("k", 1)
    assert.is_true(d > 0.5 and d <= 1, "delay " .. tostring(d))
  end)

  it("raises when the options are not a table (misuse)", function()
    raises(function() ratelimit.new(5) end, "bad argument #1 to 'new' (opts must be a table or nil)")
  end)

  it("returns nil and an InvalidParameter error naming a bad option", function()
    refused("option 'clok' is not an option of streamctl.engine.ratelimit.new (did you mean 'clock'?)",
      ratelimit.new { clok = os.time })
    refused("option 'clock' must be a function", ratelimit.new { clock = 5 })
    refused("option 'store' must be an object with methods 'get', 'set'", ratelimit.new { store = 5 })
    refused("option 'store' must be an object with methods 'get', 'set' (it has no 'set')",
      ratelimit.new { store = { get = function() end } })
    refused("option 'store' has an 'atomically' that is not a function",
      ratelimit.new { store = { get = function() end, set = function() end, atomically = 1 } })
    -- (a store with reserve needs nothing else)
    assert.truthy(ratelimit.new { store = { reserve = function() return 0, true end } })
  end)

  it("applies one GCRA step in gcra (its store's and the shared stores' fallback rule)", function()
    -- fresh budget: free now; the next slot one interval on
    assert.same({ 0, true, 0.5, 10.5 }, { ratelimit.gcra(nil, 10, 0.5, 0, math.huge) })
    -- a tat in the past counts as now
    assert.same({ 0, true, 0.5, 10.5 }, { ratelimit.gcra(3, 10, 0.5, 0, math.huge) })
    -- a burst of 2 (tau = T): free until tat runs one interval ahead
    assert.same({ 0, true, 0.5, 11 }, { ratelimit.gcra(10.5, 10, 0.5, 0.5, 0) })
    -- beyond max_delay: not committed, the delay twice, no new tat
    assert.same({ 1, false, 1 }, { ratelimit.gcra(11, 10, 0.5, 0, 0.9) })
    -- within EPSILON of free counts as free
    assert.same({ 0, true, 0.5 + 1e-10, 10.5 + 1e-10 }, { ratelimit.gcra(10 + 1e-10, 10, 0.5, 0, 0) })
  end)
end)

describe("ratelimit.loss_pause", function()
  it("is one window and the lateness (1.05 s) at 4 a second or more; a slower schedule's horizon beyond", function()
    assert.equal(1.05, ratelimit.LOSS_PAUSE)
    assert.equal(0.75, ratelimit.MAX_HORIZON)
    for _, c in ipairs { { 0.001, 1.05 }, { 1 / 30, 1.05 }, { 0.05, 1.05 }, { 0.2, 1.05 }, { 0.25, 1.05 },
                         { 0.5, 1.3 }, { 1, 1.8 }, { 2, 2.8 } } do
      near(c[2], ratelimit.loss_pause(c[1]))
    end
  end)

  -- What the pause must keep apart (see its comment): the slots the lost
  -- schedule handed out (a GCRA at the same interval, the last within
  -- MAX_HORIZON of the loss) and the new schedule, which together must be
  -- one GCRA; and what the fallback sent before Redis answered, which no
  -- window holding a new slot may hold.
  it("keeps the lost schedule's slots and the new one a single GCRA, and the fallback's sends a window apart",
    function()
      for _, rate in ipairs { 2, 3, 10, 19, 28.5, 100 } do
        local interval = 1 / rate
        local pause = ratelimit.loss_pause(interval)
        -- The lost slots: spaced by the interval, the last MAX_HORIZON after the loss at 0.
        local sends = {}
        for k = math.floor(2 * rate), 0, -1 do sends[#sends + 1] = ratelimit.MAX_HORIZON - k * interval end
        -- The new schedule: the stores start its tat at pause + tau (no burst credit), sends at tat - tau on.
        local first_new = #sends + 1
        local clock = fake_clock(pause)
        local rl = ratelimit.new { clock = clock.now }
        rl:reserve("k", rate) -- (a memory store's first slot is now: the new schedule's first)
        sends[#sends + 1] = clock.t
        for _ = 1, 3 * rate do
          local d = rl:reserve("k", rate)
          clock.t = clock.t + d
          sends[#sends + 1] = clock.t
        end
        -- One GCRA without a burst: no two sends closer than the interval, across the loss too.
        for i = 2, #sends do
          assert.is_true(sends[i] - sends[i - 1] >= interval - EPS,
            string.format("%g/s: sends at %.4f and %.4f", rate, sends[i - 1], sends[i]))
        end
        -- The fallback sent before the loss (time 0): a window holding the first new slot starts after it.
        assert.is_true(sends[first_new] - 1 > 0, rate .. "/s: the first new slot within a window of the fallback")
        -- and the pause is no longer than these two need, plus the lateness
        near(math.max(1, ratelimit.MAX_HORIZON + interval) + 0.05, pause)
      end
    end)
end)
