-- tier: unit
-- sanitizers: none (the engine on a fake clock: pure Lua)
-- streamctl.engine.sequence: ZEGO Sequence values, driven by a fake millisecond clock.

local sequence = require "streamctl.engine.sequence"

local T0 = 1700000000000

local checks = require "spec.helpers.checks"

local function fake_clock(t) return checks.fake_clock(t or T0) end

local function raises(fn, fragment) checks.raises(fn, fragment, "08-sequence_spec.lua") end

local function is_decimal(s)
  return type(s) == "string" and s:match("^[1-9]%d*$") ~= nil or s == "0"
end

-- Deterministic pseudo-random integers in [1, n] (Park-Miller; products stay
-- below 2^53, so runs are the same under every interpreter).
local function lcg(seed)
  local state = seed
  return function(n)
    state = (state * 16807) % 2147483647
    return state % n + 1
  end
end

describe("generator:next_for, one stream", function()
  local clock, g
  before_each(function()
    clock = fake_clock()
    g = sequence.new { clock_ms = clock.now }
  end)

  it("starts at now_ms", function()
    assert.are.equal("1700000000000", g:next_for { "s1" })
  end)

  it("strictly increases under a frozen clock", function()
    for i = 0, 999 do
      assert.are.equal(string.format("%.0f", T0 + i), g:next_for { "s1" })
    end
  end)

  it("follows the clock when it moves past the last value", function()
    assert.are.equal("1700000000000", g:next_for { "s1" })
    clock.t = T0 + 5
    assert.are.equal("1700000000005", g:next_for { "s1" })
    clock.t = T0 + 1000
    assert.are.equal("1700000001000", g:next_for { "s1" })
  end)

  it("keeps increasing when the clock goes backwards", function()
    clock.t = T0 + 2000
    assert.are.equal("1700000002000", g:next_for { "s1" })
    clock.t = T0 -- NTP step back by 2 s
    assert.are.equal("1700000002001", g:next_for { "s1" })
    assert.are.equal("1700000002002", g:next_for { "s1" })
    clock.t = T0 + 1999
    assert.are.equal("1700000002003", g:next_for { "s1" })
    clock.t = T0 + 5000
    assert.are.equal("1700000005000", g:next_for { "s1" })
  end)

  it("catches up with the clock after a burst in one millisecond", function()
    for _ = 1, 10 do g:next_for { "s1" } end -- up to T0 + 9
    clock.t = T0 + 5
    assert.are.equal("1700000000010", g:next_for { "s1" })
    clock.t = T0 + 11
    assert.are.equal("1700000000011", g:next_for { "s1" })
    clock.t = T0 + 11
    assert.are.equal("1700000000012", g:next_for { "s1" })
  end)

  it("keeps streams independent", function()
    assert.are.equal("1700000000000", g:next_for { "a" })
    assert.are.equal("1700000000001", g:next_for { "a" })
    assert.are.equal("1700000000000", g:next_for { "b" })
    assert.are.equal("1700000000002", g:next_for { "a" })
    assert.are.equal("1700000000001", g:next_for { "b" })
  end)

  it("drops fractions of a millisecond", function()
    clock.t = T0 + 0.9
    assert.are.equal("1700000000000", g:next_for { "s1" })
    clock.t = T0 + 1.2
    assert.are.equal("1700000000001", g:next_for { "s1" })
    clock.t = T0 + 1.99
    assert.are.equal("1700000000002", g:next_for { "s1" })
  end)

  it("formats as plain decimal digits, from integer or float clocks", function()
    local values = {}
    for _, t in ipairs { T0, T0 + 0.0, 1e12, 1.7e12 + 1, 2 ^ 40, 0, 1, 12345678901234 } do
      local gen = sequence.new { clock_ms = function() return t end }
      local s = gen:next_for { "x" }
      assert.is_true(is_decimal(s), "not plain digits: " .. s)
      assert.is_nil(s:find(".", 1, true))
      assert.is_nil(s:find("e", 1, true))
      values[#values + 1] = s
    end
    assert.are.same({ "1700000000000", "1700000000000", "1000000000000", "1700000000001",
                      "1099511627776", "0", "1", "12345678901234" }, values)
  end)

  it("formats exactly up to 2^53 - 1", function()
    local gen = sequence.new { clock_ms = function() return 2 ^ 53 - 3 end }
    assert.are.equal("9007199254740989", gen:next_for { "x" })
    assert.are.equal("9007199254740990", gen:next_for { "x" })
    assert.are.equal("9007199254740991", gen:next_for { "x" })
    raises(function() gen:next_for { "x" } end, "store:advance_all returned")
  end)

  it("accepts any non-empty string as a stream id", function()
    assert.are.equal("1700000000000", g:next_for { "zegotest-123-room/1 ü" })
  end)

  it("raises when the clock returns a bad value", function()
    for _, bad in ipairs { -1, 0 / 0, 2 ^ 53, math.huge } do
      local gen = sequence.new { clock_ms = function() return bad end }
      raises(function() gen:next_for { "x" } end, "clock_ms returned")
    end
    local gen = sequence.new { clock_ms = function() return nil end }
    raises(function() gen:next_for { "x" } end, "clock_ms returned nil")
    gen = sequence.new { clock_ms = function() return "1700000000000" end }
    raises(function() gen:next_for { "x" } end, "clock_ms returned")
  end)
end)

describe("generator:next_for, several streams", function()
  local clock, g, store
  before_each(function()
    clock = fake_clock()
    store = sequence.memory_store()
    g = sequence.new { clock_ms = clock.now, store = store }
  end)

  it("is now_ms for fresh streams, recorded for each", function()
    assert.are.equal("1700000000000", g:next_for { "a", "b", "c" })
    for _, id in ipairs { "a", "b", "c" } do assert.are.equal(T0, store:get(id)) end
    assert.are.equal("1700000000001", g:next_for { "b" })
  end)

  it("is max over the ids of last + 1 when that is ahead of the clock", function()
    clock.t = T0 + 5
    g:next_for { "a" }            -- a: T0+5
    clock.t = T0 + 10
    g:next_for { "b" }            -- b: T0+10
    clock.t = T0
    assert.are.equal("1700000000011", g:next_for { "a", "b", "c" })
    for _, id in ipairs { "a", "b", "c" } do
      assert.are.equal(T0 + 11, store:get(id))
      assert.are.equal("1700000000012", g:next_for { id })
    end
  end)

  it("is now_ms when the clock is ahead of every last value", function()
    g:next_for { "a" }
    g:next_for { "b" }
    clock.t = T0 + 500
    assert.are.equal("1700000000500", g:next_for { "a", "b" })
  end)

  it("handles the raising id anywhere in the list", function()
    g:next_for { "z" }
    g:next_for { "z" }  -- z: T0+1
    clock.t = T0 - 10
    for _, ids in ipairs { { "z", "p", "q" }, { "p", "z", "q" }, { "p", "q", "z" } } do
      local v = g:next_for(ids)
      for _, id in ipairs(ids) do assert.are.equal(tonumber(v), store:get(id)) end
    end
    assert.are.equal(T0 + 4, store:get("z"))
  end)

  it("strictly increases per stream when called repeatedly under a frozen clock", function()
    local last
    for _ = 1, 100 do
      local v = tonumber(g:next_for { "a", "b" })
      if last then assert.are.equal(last + 1, v) end
      last = v
    end
  end)

  it("counts a repeated id once", function()
    assert.are.equal("1700000000000", g:next_for { "a", "a", "b", "a" })
    assert.are.equal("1700000000001", g:next_for { "a" })
  end)

  it("raises on a bad list, naming the argument", function()
    raises(function() g:next_for() end, "bad argument #1 to 'next_for' (stream_ids must be a non-empty array")
    raises(function() g:next_for {} end, "bad argument #1 to 'next_for'")
    raises(function() g:next_for "a" end, "bad argument #1 to 'next_for'")
    raises(function() g:next_for { "a", 5 } end, "stream_ids[2] must be a non-empty string, got number")
    raises(function() g:next_for { "a", "" } end, 'stream_ids[2] must be a non-empty string, got "")')
  end)

  it("records nothing when the list is rejected", function()
    pcall(g.next_for, g, { "a", false })
    assert.is_nil(store:get("a"))
  end)
end)

describe("generator:record (a caller's own Sequence)", function()
  local clock, g
  before_each(function()
    clock = fake_clock()
    g = sequence.new { clock_ms = clock.now }
  end)

  it("records it when it is above every stream's last value, and later values follow it", function()
    assert.is_true(g:record({ "a", "b" }, T0 + 50))
    assert.equal(tostring(T0 + 51), g:next_for { "a" })
  end)

  it("refuses one not above a stream's last value, naming the stream and recording nothing", function()
    assert.equal(tostring(T0), g:next_for { "b" })
    assert.same({ false, "b", T0 }, { g:record({ "a", "b" }, T0) })
    assert.equal(tostring(T0), g:next_for { "a" }) -- a was not moved
    assert.same({ false, "a", T0 }, { g:record({ "a" }, T0 - 5) })
  end)

  it("refuses (raises) one beyond 2^53 - 1 less the headroom", function()
    assert.equal(sequence.MAX - 1e9, sequence.MAX_GIVEN)
    assert.is_true(g:record({ "a" }, sequence.MAX_GIVEN))
    raises(function() g:record({ "a" }, sequence.MAX_GIVEN + 1) end,
      "bad argument #2 to 'record' (value must be an integer in [0, 2^53 - 1 - 10^9]")
    -- the headroom: a billion more calls on the stream stay exact
    assert.equal("9007198254740992", g:next_for { "a" })
  end)

  it("takes a whole call in one store step when the store can", function()
    local steps = 0
    local inner = sequence.memory_store()
    local store = { advance = function() error("one step per call expected") end,
                    advance_all = function(_, ids, c) steps = steps + 1 return inner:advance_all(ids, c) end }
    local gen = sequence.new { clock_ms = clock.now, store = store }
    local ids = {}
    for i = 1, 20 do ids[i] = "s" .. i end
    assert.equal(tostring(T0), gen:next_for(ids))
    assert.equal(tostring(T0 + 1), gen:next_for(ids))
    assert.equal(2, steps)
  end)
end)

describe("interleaved callers", function()
  it("keep every stream strictly increasing, in call order", function()
    local rnd = lcg(12345)
    local clock = fake_clock()
    local g = sequence.new { clock_ms = clock.now }
    local ids = { "s1", "s2", "s3", "s4", "s5", "s6" }
    local last = {}
    for _ = 1, 5000 do
      -- the clock mostly stands still, sometimes moves on, sometimes steps back
      local move = rnd(10)
      if move == 1 then clock.t = clock.t + rnd(5)
      elseif move == 2 then clock.t = clock.t - rnd(20) end

      local batch, seen = {}, {}
      for _ = 1, rnd(4) do
        local id = ids[rnd(#ids)]
        if not seen[id] then seen[id] = true; batch[#batch + 1] = id end
      end
      local v
      v = g:next_for(batch)
      assert.is_true(is_decimal(v))
      local n = tonumber(v)
      assert.is_true(n >= math.floor(clock.t))
      for _, id in ipairs(batch) do
        if last[id] then assert.is_true(n > last[id], id .. ": " .. n .. " after " .. last[id]) end
        last[id] = n
      end
    end
  end)

  it("never hand two callers the same value for a stream, even when advances interleave", function()
    -- Each caller is a coroutine; the store yields after every (atomic)
    -- advance, so a next_for's passes interleave with other callers' calls.
    local rnd = lcg(777)
    local clock = fake_clock()
    local inner = sequence.memory_store()
    local yielding = {
      advance = function(_, key, candidate)
        local v = inner:advance(key, candidate)
        coroutine.yield()
        return v
      end,
    }
    local g = sequence.new { clock_ms = clock.now, store = yielding }
    local ids = { "a", "b", "c", "d" }
    local step = 0
    local calls = {}    -- every finished call: ids, value, start, finish
    local running = {}
    local function start_caller()
      local batch, seen = {}, {}
      for _ = 1, rnd(4) do
        local id = ids[rnd(#ids)]
        if not seen[id] then seen[id] = true; batch[#batch + 1] = id end
      end
      local call = { ids = batch, start = step }
      call.co = coroutine.create(function()
        call.value = tonumber(g:next_for(batch))
      end)
      running[#running + 1] = call
    end
    for _ = 1, 3000 do
      step = step + 1
      if #running < 5 and rnd(2) == 1 then start_caller() end
      if rnd(8) == 1 then clock.t = clock.t + rnd(3) - 2 end
      if #running > 0 then
        local i = rnd(#running)
        local call = running[i]
        assert(coroutine.resume(call.co))
        if coroutine.status(call.co) == "dead" then
          call.finish = step
          calls[#calls + 1] = call
          table.remove(running, i)
        end
      end
    end
    assert.is_true(#calls > 500)

    local by_stream = {}
    for _, call in ipairs(calls) do
      for _, id in ipairs(call.ids) do
        by_stream[id] = by_stream[id] or {}
        local used = by_stream[id]
        assert.is_nil(used[call.value], "value handed out twice for " .. id)
        used[call.value] = call
        -- the store ends each call holding at least its value
        assert.is_true(inner:get(id) >= call.value)
      end
    end
    -- a call that started after another finished gets a greater value for
    -- every stream they share: compare with the greatest value handed out for
    -- the stream by calls finished before it started
    local done_max = {} -- done_max[id][s]: greatest value for id among calls finished by step s
    for _, id in ipairs(ids) do
      local finished_at = {}
      for _, call in ipairs(calls) do
        if by_stream[id] and by_stream[id][call.value] == call then
          local f = finished_at[call.finish]
          if not f or call.value > f then finished_at[call.finish] = call.value end
        end
      end
      local m, acc = {}, -1
      for s = 0, step do
        if finished_at[s] and finished_at[s] > acc then acc = finished_at[s] end
        m[s] = acc
      end
      done_max[id] = m
    end
    local checked = 0
    for _, y in ipairs(calls) do
      for _, id in ipairs(y.ids) do
        local before = done_max[id][y.start - 1]
        if before >= 0 then
          assert.is_true(y.value > before, id .. ": " .. y.value .. " not above " .. before)
          checked = checked + 1
        end
      end
    end
    assert.is_true(checked > 500)
  end)

  it("converge when a shared store hands out more than asked", function()
    -- A racing shared store may return above max(candidate, current + 1).
    local inner = sequence.memory_store()
    local extra = { b = 7, c = 3 }
    local racing = {
      advance = function(_, key, candidate)
        local bump = extra[key] or 0
        extra[key] = nil
        return inner:advance(key, candidate + bump)
      end,
    }
    local g = sequence.new { clock_ms = function() return T0 end, store = racing }
    -- a gets T0; b jumps to T0+7; c, asked for T0+7, jumps to T0+10; a and b follow
    assert.are.equal("1700000000010", g:next_for { "a", "b", "c" })
    for _, id in ipairs { "a", "b", "c" } do assert.are.equal(T0 + 10, inner:get(id)) end
  end)
end)

describe("the store contract", function()
  it("gives up with nil, err when the store never stops handing out more than asked", function()
    local inner = sequence.memory_store()
    local greedy = { advance = function(_, key, candidate) return inner:advance(key, candidate + 1) end }
    local g = sequence.new { clock_ms = function() return T0 end, store = greedy }
    local v, err = g:next_for { "a", "b" }
    assert.is_nil(v)
    assert.are.equal("sequence did not settle after 100 passes over the store", err)
    assert.are.equal("1700000000001", g:next_for { "c" }) -- a single id always settles
  end)

  it("passes the stream id and floor(now_ms) to advance", function()
    local calls = {}
    local spy = { advance = function(_, key, candidate)
      calls[#calls + 1] = { key, candidate }
      return candidate
    end }
    local g = sequence.new { clock_ms = function() return T0 + 0.5 end, store = spy }
    assert.are.equal("1700000000000", g:next_for { "s" })
    assert.are.same({ { "s", T0 } }, calls)
  end)

  it("returns nil, err when the store fails", function()
    local failing = { advance = function() return nil, "no memory" end }
    local g = sequence.new { clock_ms = function() return T0 end, store = failing }
    local v, err = g:next_for { "s" }
    assert.is_nil(v)
    assert.are.equal("no memory", err)
    v, err = g:next_for { "a", "b" }
    assert.is_nil(v)
    assert.are.equal("no memory", err)
    g = sequence.new { clock_ms = function() return T0 end, store = { advance = function() return nil end } }
    v, err = g:next_for { "s" }
    assert.is_nil(v)
    assert.are.equal("store advance failed", err)
  end)

  it("raises when the store breaks the contract", function()
    for _, bad in ipairs { T0 - 1, "1700000000000", T0 + 0.5, 2 ^ 53 } do
      local g = sequence.new { clock_ms = function() return T0 end,
                               store = { advance = function() return bad end } }
      raises(function() g:next_for { "s" } end, "store:advance returned")
    end
  end)

  it("shares state between generators on one store", function()
    local store = sequence.memory_store()
    local a = sequence.new { clock_ms = function() return T0 end, store = store }
    local b = sequence.new { clock_ms = function() return T0 end, store = store }
    assert.are.equal("1700000000000", a:next_for { "s" })
    assert.are.equal("1700000000001", b:next_for { "s" })
    assert.are.equal("1700000000002", a:next_for { "s" })
  end)
end)

describe("sequence.memory_store", function()
  it("advances to max(candidate, current + 1)", function()
    local s = sequence.memory_store()
    assert.is_nil(s:get("k"))
    assert.are.equal(10, s:advance("k", 10))
    assert.are.equal(11, s:advance("k", 10))
    assert.are.equal(12, s:advance("k", 5))
    assert.are.equal(20, s:advance("k", 20))
    assert.are.equal(20, s:get("k"))
  end)

  it("prunes keys below a value", function()
    local s = sequence.memory_store()
    s:advance("old", 100)
    s:advance("new", 200)
    assert.are.equal(1, s:prune(150))
    assert.is_nil(s:get("old"))
    assert.are.equal(200, s:get("new"))
    assert.are.equal(0, s:prune(150))
    raises(function() s:prune("150") end, "bad argument #1 to 'prune' (below must be a number")
  end)
end)

describe("sequence.new", function()
  it("uses the wall clock in epoch milliseconds by default", function()
    local g = sequence.new()
    -- (os.time() reads the kernel's coarse clock, which can lag the wall
    -- clock the generator reads by a tick: at a second's boundary it still
    -- says the second before, so the bounds allow a second more each side)
    local before = os.time() * 1000
    local v = g:next_for { "s" }
    local after = (os.time() + 2) * 1000
    assert.is_true(is_decimal(v))
    local n = tonumber(v)
    assert.is_true(n >= before - 1000 and n <= after, v)
    assert.is_true(tonumber(g:next_for { "s" }) > n)
  end)

  it("raises when the options are not a table (misuse)", function()
    raises(function() sequence.new(1) end, "bad argument #1 to 'new' (opts must be a table or nil)")
  end)

  it("returns nil and an InvalidParameter error naming a bad option", function()
    local refused = checks.refused
    refused("option 'clock' is not an option of streamctl.engine.sequence.new (did you mean 'clock_ms'?)",
      sequence.new { clock = os.time })
    refused("option 'clock_ms' must be a function", sequence.new { clock_ms = 5 })
    refused("option 'store' must be an object with methods 'advance' (it has no 'advance')",
      sequence.new { store = {} })
    refused("option 'store' must be an object with methods 'advance'", sequence.new { store = 5 })
  end)
end)
