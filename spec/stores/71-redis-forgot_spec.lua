-- Issue 66, "a store that may have forgotten is treated as having forgotten"
-- and "values read from a shared store are checked by their rule": a fault
-- matrix, one row per member, each failing on the code before the fix.
--
--   1. The callback replay stores: a callback replayed inside its window
--      after the store forgot (Redis restarted without its data, flushed,
--      failed over to a lagging replica, evicting; the shared dict's memory
--      evicted; a record of either that cannot be right) is refused
--      (ReplayStoreUnavailable) and the loss said once; one whose window
--      began after the loss passes.
--   2. Values that break their rule in the account's Redis hash (a room of
--      nan, inf, negative, a room's time far ahead, a schedule of nan, a
--      margin of inf, a tally no clock could write, a flag), in the shared
--      dict (a budget's entry, a room), and in the Sequence keys: each is
--      replaced by its safe value, written back, said once naming the key,
--      field and value; never "Redis failed", never an error every call.
--
-- Against redis-server processes (and a fake Sentinel) this spec starts on
-- 127.0.0.1, and a stand-in shared dict.

local R = require "streamctl.store.redis"
local callbacks = require "streamctl.edge.callbacks"
local shdict = require "streamctl.store.shdict"
local room = require "streamctl.engine.room"
local hiredis = require "streamctl.redis"
local helper = require "spec.helpers.redis"
local fake_sentinel = require "spec.helpers.fake_sentinel"
local socket = require "socket"

local SLOW = require("spec.helpers.process").slowdown()
local TIMEOUT = "timeout_ms=" .. 1000 * SLOW

-- A log that keeps its lines.
local function new_log()
  local lines = {}
  return lines, function(m) lines[#lines + 1] = m end
end

-- The lines of `lines` that hold `fragment`.
local function holding(lines, fragment)
  local out = {}
  for _, l in ipairs(lines) do if l:find(fragment, 1, true) then out[#out + 1] = l end end
  return out
end

-- A direct connection (the C module) to see what the stores wrote.
local function direct(srv)
  return assert(hiredis.connect("127.0.0.1", srv.port, 2000))
end

-- Redis' TIME in microseconds.
local function server_us(c)
  local t = c:command("TIME")
  return tonumber(t[1]) * 1e6 + tonumber(t[2])
end

-- A replay store's add, again while Redis cannot answer yet (a restart, a
-- failover under way): bounded.
local function add_once_answered(store, key, begun)
  local fresh, why, code
  for _ = 1, 100 do
    fresh, why, code = store:add(key, 300, nil, begun)
    if fresh ~= nil or not why:find("^Redis at [^:]+:%d+[^:]*: ") or why:find("may have forgotten", 1, true) then
      return fresh, why, code
    end
    socket.sleep(0.05)
  end
  return fresh, why, code
end

describe("issue 66, row 1: a replay store that may have forgotten refuses what it may have seen", function()
  -- Each row: a store on a Redis of its own that took "aliyun:cb1", then the fault; `setup` returns
  -- the store's URL and anything `fault` needs.
  local ROWS = {
    { "Redis restarted without its data", "its memory is gone",
      function() local s = helper.start {} return s.url, s, { s } end,
      function(s) s:restart() end },
    { "a FLUSHALL", "its memory is gone",
      function() local s = helper.start {} return s.url, s, { s } end,
      function(s) assert.equal("OK", s:cli("FLUSHALL")) end },
    { "a failover to a replica that lagged behind its master", "it restarted or failed over",
      function()
        local a = helper.start {}
        local b = helper.start { args = { "--replicaof", "127.0.0.1", tostring(a.port) } }
        local fake = fake_sentinel.start {}
        fake:answer("127.0.0.1 " .. a.port)
        return "redis+sentinel://127.0.0.1:" .. fake.port .. "/mymaster?sentinel_check_ms=86400000",
          { a = a, b = b, fake = fake }, { a, b, fake }
      end,
      function(s, store)
        -- b has what a took so far, then stops following: what a takes next is what a lagging
        -- replica lacks; then a goes and the Sentinel names b
        local deadline = socket.gettime() + 10
        while s.b:cli("EXISTS", "streamctl:cb:aliyun:cb1") ~= "1" and socket.gettime() < deadline do
          socket.sleep(0.02)
        end
        assert.equal("1", s.b:cli("EXISTS", "streamctl:cb:aliyun:cb1"))
        assert.equal("OK", s.b:cli("REPLICAOF", "NO", "ONE"))
        assert.is_true(store:add("aliyun:cb-lag", 300, nil, 0))
        s.fake:answer("127.0.0.1 " .. s.b.port)
        s.a:kill()
      end, "aliyun:cb-lag" },
    { "an eviction (maxmemory-policy volatile-ttl)", "it evicted keys",
      function() local s = helper.start {} return s.url, s, { s } end,
      function(s)
        local c = direct(s)
        local used = tonumber(c:command("INFO", "memory"):match("used_memory:(%d+)"))
        assert(c:command("CONFIG", "SET", "maxmemory-policy", "volatile-ttl"))
        assert(c:command("CONFIG", "SET", "maxmemory", tostring(used + 200000)))
        local filler = string.rep("x", 10000)
        for i = 1, 200 do -- (no expiry: only the callbacks' keys can be evicted)
          if tonumber(c:command("INFO", "stats"):match("evicted_keys:(%d+)")) > 0 then break end
          c:command("SET", "filler:" .. i, filler)
        end
        assert.equal("0", s:cli("EXISTS", "streamctl:cb:aliyun:cb1"))
        assert(c:command("CONFIG", "SET", "maxmemory", "0"))
        c:close()
      end },
    { "a memory record that cannot be right (since far ahead)", "its memory's record held a value that cannot be right",
      function() local s = helper.start {} return s.url, s, { s } end,
      function(s)
        s:cli("HSET", "streamctl:cb:@", "since", "1e300")
        assert.equal("1", s:cli("DEL", "streamctl:cb:aliyun:cb1")) -- (and what it took, gone)
      end },
  }

  for _, row in ipairs(ROWS) do
    local name, reason, setup, fault, taken = row[1], row[2], row[3], row[4], row[5] or "aliyun:cb1"
    it(name .. ": the replay refused (ReplayStoreUnavailable), said once; a later window passes", function()
      local url, s, owned = setup()
      local lines, log = new_log()
      local store = assert(R.replay_store(url .. (url:find("?", 1, true) and "&" or "?") .. TIMEOUT, { log = log }))
      local ok, err = pcall(function()
        -- (a window that began now: a server's memory never begins before its start)
        assert.is_true(store:add("aliyun:cb1", 300, nil, 0))
        fault(s, store)
        local fresh, why, code = add_once_answered(store, taken, 20)
        assert.is_nil(fresh, "a callback the store may have forgotten was taken for new")
        assert.equal("ReplayStoreUnavailable", code)
        assert.truthy(why:find("may have forgotten the callbacks seen before %d+%-%d+%-%d+T[%d:]+Z %(.*"
          .. reason:gsub("%p", "%%%0")), why)
        -- another one whose window began before the loss: refused too, nothing more said
        local again, _, again_code = store:add("aliyun:cb2", 300, nil, 20)
        assert.same({ nil, "ReplayStoreUnavailable" }, { again, again_code })
        local said = holding(lines, "may have forgotten the callbacks it had seen: " .. reason)
        assert.equal(1, #said, table.concat(lines, "\n"))
        assert.equal(1, #holding(lines, "may have forgotten"), table.concat(lines, "\n"))
        -- one whose window began after: taken, once
        assert.is_true(store:add("aliyun:cb3", 300, nil, 0))
        assert.is_false(store:add("aliyun:cb3", 300, nil, 0))
      end)
      store.conn:close()
      for _, x in ipairs(owned) do x:stop() end
      assert(ok, err)
    end)
  end

  it("through verify: a callback replayed after a restart is refused with the store's reason (503's kind)",
    function()
      local srv = helper.start {}
      finally(function() srv:stop() end) -- (however the row ends: see the restarted row below)
      local lines, log = new_log()
      local store = assert(R.replay_store(srv.url .. "?" .. TIMEOUT, { log = log }))
      -- (first seen as its window begins, on a server started just now; replayed 5 s later)
      local ALI = { domain = "learn.aliyundoc.com", timestamp = "1519375990", key = "yourkey",
                    signature = "9e226fc2c250be266e3657e156f68c12", now = 1519375990 - callbacks.WINDOW_S,
                    replay = store }
      assert.is_true(callbacks.aliyun.verify(ALI))
      srv:restart()
      ALI.now = ALI.now + 5
      local ok, err
      for _ = 1, 100 * SLOW do
        ok, err = callbacks.aliyun.verify(ALI)
        if ok or err.message:find("may have forgotten", 1, true) then break end
        socket.sleep(0.05)
      end
      store.conn:close()
      assert.is_nil(ok)
      assert.same({ "ReplayStoreUnavailable", "server" }, { err.code, err.kind })
      assert.equal(1, #holding(lines, "may have forgotten the callbacks it had seen"), table.concat(lines, "\n"))
    end)

  -- (issue 87: a Redis restarted without its data looks new to a process that never asked it; what it
  -- cannot have seen, a callback whose window began before the server's start, is refused, unsaid)
  it("a first use of a Redis, by processes that never saw it: nothing said, nothing before its start", function()
    local srv = helper.start {}
    finally(function() srv:stop() end)
    local lines, log = new_log()
    local store = assert(R.replay_store(srv.url .. "?" .. TIMEOUT, { log = log }))
    local fresh, why, code = store:add("aliyun:old", 300, nil, 600)
    assert.same({ nil, "ReplayStoreUnavailable" }, { fresh, code })
    assert.truthy(why:find("may have forgotten the callbacks seen before %d+%-%d+%-%d+T[%d:]+Z %(it started then, "
      .. "and cannot have seen what came before%)"), why)
    assert.is_true(store:add("aliyun:first", 300, nil, 0))
    assert.is_false(store:add("aliyun:first", 300, nil, 0))
    assert.same({}, lines)
    -- a second process, on the same server: the same start
    local other = assert(R.replay_store(srv.url .. "?" .. TIMEOUT, { log = log }))
    local fresh2, _, code2 = other:add("aliyun:old2", 300, nil, 600)
    assert.same({ nil, "ReplayStoreUnavailable" }, { fresh2, code2 })
    assert.is_false(other:add("aliyun:first", 300, nil, 0))
    assert.same({}, lines)
    store.conn:close()
    other.conn:close()
  end)
end)

-- A stand-in for an ngx.shared dict, its expiries against `clock.t`.
local fake_dict = require("spec.helpers.fake_shdict").new

describe("issue 66, row 1: the shared dict's replay store", function()
  local NOW = 1700000000
  local ROWS = {
    { "its memory evicted by another user of the dict",
      "lost its memory (evicted by another user of the dict, or deleted)",
      function(d) d:delete("streamctl:cb:@") d:delete("streamctl:cb:aliyun:cb1") end },
    { "its memory's record not a number", "held a value that cannot be right (soon)",
      function(d) d:set("streamctl:cb:@", "soon") d:delete("streamctl:cb:aliyun:cb1") end },
    { "its memory's record far ahead", "held a value that cannot be right (1e+300)",
      function(d) d:set("streamctl:cb:@", 1e300) d:delete("streamctl:cb:aliyun:cb1") end },
  }
  for _, row in ipairs(ROWS) do
    local name, reason, fault = row[1], row[2], row[3]
    it(name .. ": the replay refused (ReplayStoreUnavailable), said once; a later window passes", function()
      local clock = { t = NOW }
      local d = fake_dict(clock)
      local lines, log = new_log()
      local store = callbacks.shdict_replay(d, { log = log })
      callbacks.shdict_started(d, NOW - 100) -- (nginx started 100 s ago)
      assert.is_true(store:add("aliyun:cb1", 300, NOW, 10))
      fault(d)
      clock.t = NOW + 5
      local fresh, why, code = store:add("aliyun:cb1", 300, NOW + 5, 15)
      assert.is_nil(fresh, "a callback the dict may have forgotten was taken for new")
      assert.equal("ReplayStoreUnavailable", code)
      assert.equal("the shared dict may have forgotten the callbacks seen before 2023-11-14T22:13:25Z: this one's "
        .. "window began before then", why)
      assert.is_nil((store:add("aliyun:cb2", 300, NOW + 5, 15)))
      assert.equal(1, #lines, table.concat(lines, "\n"))
      assert.equal("streamctl: the shared dict of callbacks seen " .. reason .. "; a callback whose window began "
        .. "before 2023-11-14T22:13:25Z is refused (ReplayStoreUnavailable: the provider delivers it again), for "
        .. "at most a window's length after", lines[1])
      assert.is_true(store:add("aliyun:cb3", 300, NOW + 5, 0))
      assert.is_false(store:add("aliyun:cb3", 300, NOW + 5, 0))
    end)
  end

  it("a dict found empty by a process that never saw it (nginx started) forgets nothing since its start",
    function()
      local d = fake_dict({ t = NOW })
      local lines, log = new_log()
      local store = callbacks.shdict_replay(d, { log = log })
      assert.is_true(callbacks.shdict_started(d, NOW - 700))
      assert.is_true(callbacks.shdict_started(d, NOW - 10)) -- (a reload: the first mark stays)
      assert.is_true(store:add("aliyun:first", 300, NOW, 600))
      assert.is_false(store:add("aliyun:first", 300, NOW, 600))
      -- (issue 87: a window that began before nginx started cannot have been seen by its dict)
      local fresh, why, code = store:add("aliyun:older", 300, NOW, 800)
      assert.same({ nil, "ReplayStoreUnavailable" }, { fresh, code })
      assert.equal("the shared dict may have forgotten the callbacks seen before 2023-11-14T22:01:40Z: this one's "
        .. "window began before then", why)
      assert.same({}, lines)
    end)

  it("a dict with no mark of nginx's start: its memory begins at its first use, said once", function()
    local d = fake_dict({ t = NOW })
    local lines, log = new_log()
    local store = callbacks.shdict_replay(d, { log = log })
    local fresh, _, code = store:add("aliyun:a", 300, NOW, 1)
    assert.same({ nil, "ReplayStoreUnavailable" }, { fresh, code })
    assert.is_nil((store:add("aliyun:b", 300, NOW, 1)))
    assert.is_true(store:add("aliyun:c", 300, NOW, 0))
    assert.same({ "streamctl: the shared dict of callbacks seen holds no mark of nginx's start "
      .. "(streamctl.edge.callbacks.shdict_started(dict, ngx.now()) in init_by_lua): its memory is taken to begin "
      .. "now, and a callback whose window began before 2023-11-14T22:13:20Z is refused (ReplayStoreUnavailable: "
      .. "the provider delivers it again), for at most a window's length after" }, lines)
  end)
end)

describe("issue 66: the account's Redis hash: Sequences after a loss (row 1), values by their rule (row 2)", function()
  local srv, check
  lazy_setup(function()
    srv = helper.start {}
    check = direct(srv)
  end)
  lazy_teardown(function()
    if check then check:close() end
    if srv then srv:stop() end
  end)

  local n = 0
  -- A budget's hash as a store leaves it after a long life (born 10 s ago in this run), with `plant`
  -- (field -> value, or a function of Redis' TIME in us giving that table) written over it.
  local function budget(plant)
    n = n + 1
    local tag = "z:acct" .. n
    local hash = "t:{" .. tag .. "}:rl"
    local now = server_us(check)
    assert(check:command("HSET", hash, "born", string.format("%.0f", now - 10e6), "run",
      check:command("INFO", "server"):match("run_id:(%w+)"), "why", "missing"))
    if type(plant) == "function" then plant = plant(now) end
    for k, v in pairs(plant) do assert(check:command("HSET", hash, k, v)) end
    return tag .. ":A", hash, now
  end

  local FLOOR = string.format("%.6f", room.FLOOR)
  -- name; what is planted; what the log names; what the hash holds after (field -> value, or a
  -- function of the value read and Redis' TIME before the call: true when right); the call
  local ROWS = {
    { "a room of nan", function(t) return { ["rw:A"] = "nan", ["rt:A"] = string.format("%.0f", t - 10e6) } end,
      "rw:A=nan rt:A=", { ["rw:A"] = FLOOR } },
    { "a room of inf", function(t) return { ["rw:A"] = "inf", ["rt:A"] = string.format("%.0f", t - 10e6) } end,
      "rw:A=inf rt:A=", { ["rw:A"] = FLOOR } },
    { "a negative room", function(t) return { ["rw:A"] = "-0.5", ["rt:A"] = string.format("%.0f", t - 10e6) } end,
      "rw:A=-0.5 rt:A=", { ["rw:A"] = FLOOR } },
    { "a room's time far in the future", function(t)
        return { ["rw:A"] = "0.050000", ["rt:A"] = string.format("%.0f", t + 1e12) } end,
      "rw:A=0.050000 rt:A=", { ["rt:A"] = function(v, t) return tonumber(v) >= t and tonumber(v) < t + 60e6 end } },
    { "a schedule (tat) of nan", { ["tat:A"] = "nan" }, "tat:A=nan",
      { ["why"] = "unreadable", ["tat:A"] = function(v) return v == false or tonumber(v) == tonumber(v) end } },
    { "a schedule's birth of nan", { born = "nan" }, "born=nan", { ["why"] = "unreadable" } },
    { "a margin of inf", function(t) return { ["mg:A"] = "inf", ["mu:A"] = string.format("%.0f", t + 1e6) } end,
      "mg:A=inf", { ["mg:A"] = false } },
    { "a tally no clock could write", { ["d:A"] = "99999999999999999999:5" }, "d:A=99999999999999999999:5",
      { ["d:A"] = function(v) return v == false or not v:find("99999999999999999999", 1, true) end } },
    { "a flag that is not one", { new = "yes" }, "new=yes", { new = false } },
    { "a room of nan, met by a throttle", function(t)
        return { ["rw:A"] = "nan", ["rt:A"] = string.format("%.0f", t - 10e6) } end,
      "rw:A=nan rt:A=", { ["rw:A"] = FLOOR }, "throttled" },
  }

  for _, row in ipairs(ROWS) do
    local name, plant, named, after, call = row[1], row[2], row[3], row[4], row[5] or "reserve"
    it(name .. ": replaced by its safe value, written back, said once; Redis not taken for failed", function()
      local key, hash, t = budget(plant)
      local lines, log = new_log()
      local store = assert(R.ratelimit_store(srv.url .. "/0?prefix=t:&" .. TIMEOUT, { log = log }))
      for _ = 1, 3 do
        if call == "throttled" then
          assert.is_boolean(store:throttled(key, 0, 1))
        else
          -- (a value taken for lost starts the schedule afresh: at most the loss pause, which grows with the
          -- connection's timeout, scaled on a slow run)
          local delay = store:reserve(key, 10, 1, 5)
          assert.is_true(type(delay) == "number" and delay == delay and delay <= store:loss_pause(10) + 0.5,
            tostring(delay) .. " (loss pause " .. store:loss_pause(10) .. ")")
        end
      end
      store.conn:close()
      assert.same({}, holding(lines, "failed"))
      local said = holding(lines, "held values that cannot be right in " .. hash .. ": " .. named)
      assert.equal(1, #said, table.concat(lines, "\n"))
      assert.equal(1, #holding(lines, "cannot be right"), table.concat(lines, "\n"))
      for field, want in pairs(after) do
        local v = check:command("HGET", hash, field)
        if type(v) ~= "string" then v = false end -- (a nil reply)
        if type(want) == "function" then
          assert.is_true(want(v, t), field .. " = " .. tostring(v))
        else
          assert.equal(want, v, field)
        end
      end
    end)
  end

  it("a tally of a minute ago (nobody reserved since: a pause, Redis down a while) is kept, said nothing", function()
    local key, hash = budget(function(t)
      return { ["d:A"] = string.format("%.0f:5", math.floor(t / 1e5) - 600) }
    end)
    local old = check:command("HGET", hash, "d:A")
    local lines, log = new_log()
    local store = assert(R.ratelimit_store(srv.url .. "/0?prefix=t:&" .. TIMEOUT, { log = log }))
    assert.is_number(store:reserve(key, 10, 1, 5))
    store.conn:close()
    assert.same({}, holding(lines, "cannot be right"))
    -- (dropped by the count that reserve made, as any bucket past 2 s)
    assert.is_nil(check:command("HGET", hash, "d:A"):find(old, 1, true))
  end)

  -- Row 1's Sequence store: what a Redis that forgot does to the next Sequence of a stream.
  -- Asks for a ZEGO slot and its Sequence until one is committed: a fresh schedule waits out the
  -- loss pause, which grows with the connection's timeout (scaled on a slow run), so the wait is
  -- bounded by that pause, not by a fixed time.
  local function sequenced(rls, seqs, tag, id)
    local deadline = socket.gettime() + rls:loss_pause(20) + 2 * SLOW
    repeat
      local _, committed, _, v = rls:reserve_sequenced(tag .. ":ResumeRTCStreams", 20, 1, 0.75, seqs, { id })
      if committed and v then return tonumber(v) end
      socket.sleep(0.1)
    until socket.gettime() > deadline
    error("no Sequence taken within the loss pause (" .. rls:loss_pause(20) .. " s)")
  end

  it("(row 1, checked) restarted without its data: the next Sequence is still above the last one", function()
    local other = helper.start {}
    -- (stopped however the row ends: a server left running is reaped by its pipe's collection, which
    -- would wait for it for ever)
    finally(function() other:stop() end)
    local url = other.url .. "/0?prefix=t:&" .. TIMEOUT
    local a = assert(R.ratelimit_store(url, { log = function() end }))
    local v1 = sequenced(a, assert(R.sequence_store(a.conn, "zego:9:")), "zego:9", "s1")
    a.conn:close()
    other:restart()
    local b = assert(R.ratelimit_store(url, { log = function() end })) -- (a process that never saw it)
    local v2 = sequenced(b, assert(R.sequence_store(b.conn, "zego:9:")), "zego:9", "s1")
    b.conn:close()
    assert.is_true(v2 > v1, v1 .. " then " .. v2) -- (the server's clock moved on: Sequences follow it)
  end)

  it("(row 1) a failover to a server whose clock is behind: the next Sequence is above the old clock's", function()
    -- the promoted replica's copy of the hash: another run's, last written at a TIME 5 s ahead of
    -- this server's; the stream's Sequence key lost in the lag
    local now = server_us(check)
    assert(check:command("HSET", "t:{zego:8}:rl", "born", string.format("%.0f", now - 10e6), "run", "an-old-run",
      "ts", string.format("%.0f", now + 5e6), "why", "missing"))
    local lines, log = new_log()
    local rls = assert(R.ratelimit_store(srv.url .. "/0?prefix=t:&" .. TIMEOUT, { log = log }))
    local v = sequenced(rls, assert(R.sequence_store(rls.conn, "zego:8:")), "zego:8", "s1")
    rls.conn:close()
    assert.is_true(v > math.floor((now + 5e6) / 1000), string.format("%.0f below the old clock's %.0f", v,
      math.floor((now + 5e6) / 1000)))
    assert.equal(1, #holding(lines, "lost the shared rate-limit schedule of zego:8: Redis restarted or failed over"),
      table.concat(lines, "\n"))
  end)

  it("a Sequence that cannot be right: reset to the server's time, said naming its key and value", function()
    local lines, log = new_log()
    local seq = assert(R.sequence_store(srv.url .. "/0?prefix=t:&" .. TIMEOUT, "zego:1:", { log = log }))
    assert(check:command("SET", "t:{zego:1}:seq:s1", "1e300"))
    local t = math.floor(server_us(check) / 1000)
    local v = seq:advance("s1", 0)
    assert.is_true(v >= t and v < t + 60000, tostring(v))
    seq:advance("s1", 0)
    seq.conn:close()
    assert.same({ "streamctl: Redis at 127.0.0.1:" .. srv.port .. " held Sequence(s) that cannot be right (not an "
      .. "integer in 0..2^53-1), reset to the server's time: t:{zego:1}:seq:s1=1e300" }, lines)
  end)
end)

describe("issue 66, row 2: values in the shared dict are checked by their rule", function()
  local enter, leave = require("spec.helpers.fake_shdict").init_phase()
  before_each(enter)
  after_each(leave)

  local ROWS = {
    { "a budget's entry of nan", "rl:z:1:A", "nan nan",
      "streamctl: the shared dict lost the rate-limit schedule of z:1:A: its entry rl:z:1:A holds a value that "
      .. "cannot be right ('nan nan'); nothing is sent on it for " },
    { "a negative room", "room:z:1:A", "-0.500000 90.000000",
      "streamctl: the shared dict 'cb' held a room that cannot be right in room:z:1:A ('-0.500000 90.000000'); it "
      .. "was replaced by the least room (0.05 of the cap), which grows back by itself" },
    { "a room of nan", "room:z:1:A", "nan 90.000000",
      "streamctl: the shared dict 'cb' held a room that cannot be right in room:z:1:A ('nan 90.000000'); it "
      .. "was replaced by the least room (0.05 of the cap), which grows back by itself" },
    { "a room's time far in the future", "room:z:1:A", "0.500000 100000000.000000",
      "streamctl: the shared dict 'cb' held a room that cannot be right in room:z:1:A ('0.500000 100000000.000000'); "
      .. "it was replaced by the least room (0.05 of the cap), which grows back by itself" },
  }
  -- The Sequence counter: an error at every call, or a Sequence no one could send, before.
  for _, row in ipairs {
    { "a Sequence counter that is no number", "abc", "'abc'" },
    { "a Sequence counter past 2^53", 1e300, "1e+300" },
  } do
    it(row[1] .. ": reset to the clock, said once", function()
      local d = fake_dict({ t = 100 })
      local lines, log = new_log()
      local store = assert(shdict.sequence_store(d, "z:", { log = log, name = "cb" }))
      d:set("seqg:z:", row[2])
      assert.equal(1700000000000, store:advance_all({ "s1" }, 1700000000000))
      assert.equal(1700000000001, store:advance_all({ "s1" }, 1700000000000))
      assert.same({ "streamctl: the shared dict 'cb' held a Sequence counter that cannot be right in seqg:z: ("
        .. row[3] .. "); it was reset to 1700000000000" }, lines)
    end)
  end

  -- Temporary credentials: an expiry no source gives kept every worker on them, never renewed.
  for _, row in ipairs {
    { "credentials whose expiry is inf", "1e400", "inf" },
    { "credentials whose expiry is a century ahead", "4102444800", "4102444800" },
  } do
    it(row[1] .. ": dropped (renewed from their source), said once, the secret never", function()
      local d = fake_dict({ t = 0 })
      local lines, log = new_log()
      local creds = shdict.credentials_store(d, "role", { log = log })
      d:set("cred:role", '{"id":"STS.id","secret":"the-s3cret","token":"tok","exp":' .. row[2] .. '}')
      assert.is_nil(creds.get())
      assert.is_nil(d:get("cred:role"))
      assert.is_nil(creds.get())
      assert.same({ "streamctl: the shared dict held credentials that cannot be right in cred:role (their expiry: "
        .. row[3] .. "); they were dropped, and are renewed from their source" }, lines)
      -- what a source gives is kept
      creds.set { access_key_id = "STS.id", access_key_secret = "s", security_token = "t", expiration = os.time() + 3600 }
      assert.equal("STS.id", creds.get().access_key_id)
    end)
  end

  for _, row in ipairs(ROWS) do
    local name, entry, value, line = row[1], row[2], row[3], row[4]
    it(name .. ": replaced by its safe value, written back, said once", function()
      local clock = { t = 100 }
      local d = fake_dict(clock)
      local lines, log = new_log()
      local store = assert(shdict.ratelimit_store(d, { log = log, name = "cb", clock = function() return clock.t end }))
      d:set(entry, value)
      for _ = 1, 3 do
        local delay = store:reserve("z:1:A", 10, 1, 5)
        assert.is_number(delay)
        assert.is_true(delay == delay)
        clock.t = clock.t + 0.01
      end
      assert.equal(1, #lines, table.concat(lines, "\n"))
      assert.equal(line, lines[1]:sub(1, #line))
      if entry:find("^room:") then
        local w, t0 = d:get(entry):match("^(%S+) (%S+)$")
        assert.same({ room.FLOOR, 100 }, { tonumber(w), tonumber(t0) })
      else
        assert.is_truthy(tonumber(d:get(entry):match("^(%S+)")))
      end
    end)
  end
end)
