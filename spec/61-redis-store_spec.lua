-- streamctl.store.redis: configuration, scripts, the rate-limit and sequence
-- stores against redis-server (spec/helpers/redis.lua), their fallback when
-- Redis is down or slow, and (inside nginx) the cosocket backend.

local R = require "streamctl.store.redis"
local ratelimit = require "streamctl.ratelimit"
local sequence = require "streamctl.sequence"
local hiredis = require "streamctl.redis"
local core = require "streamctl.core"
local helper = require "spec.helpers.redis"
local checks = require "spec.helpers.checks"
local socket = require "socket"

local PASSWORD = "s3cret-pw"

-- Asserts that fn raises an error containing `fragment`.
local function raises(fragment, fn)
  local ok, err = pcall(fn)
  assert.is_false(ok, "expected an error: " .. fragment)
  assert.truthy(tostring(err):find(fragment, 1, true), "error '" .. tostring(err) .. "' lacks '" .. fragment .. "'")
end

-- A direct connection (the C module) to check what the stores wrote.
local function direct(srv, db)
  local c = assert(hiredis.connect("127.0.0.1", srv.port, 2000))
  if srv.password then assert(c:command("AUTH", srv.password)) end
  if db then assert(c:command("SELECT", db)) end
  return c
end

describe("streamctl.ratelimit with a store that has reserve", function()
  -- A store that records its calls and answers from a script of delays.
  local function reserve_store(answers)
    local s = { calls = {} }
    function s:reserve(key, rate, burst, only_if_free)
      self.calls[#self.calls + 1] = { key, rate, burst, only_if_free }
      local a = table.remove(answers, 1)
      if type(a) == "table" then return a[1], a[2] end
      return a
    end
    return s
  end
  local function no_clock() error("the limiter's clock must not be read") end

  it("hands the whole reservation to the store, never reading its own clock", function()
    local store = reserve_store { 0, 0.25, 1e-12 }
    local rl = ratelimit.new { store = store, clock = no_clock }
    assert.equal(0, rl:reserve("k", 10))
    assert.equal(0.25, rl:reserve("k", 10, 3))
    assert.equal(0, rl:reserve("k", 10)) -- within EPSILON: 0
    assert.same({ { "k", 10, 1, false }, { "k", 10, 3, false }, { "k", 10, 1, false } }, store.calls)
  end)

  it("try passes only_if_free and reads the delay", function()
    local store = reserve_store { 0, 0.5 }
    local rl = ratelimit.new { store = store, clock = no_clock }
    assert.is_true(rl:try("k", 2))
    local ok, delay = rl:try("k", 2)
    assert.is_false(ok)
    assert.equal(0.5, delay)
    assert.same({ { "k", 2, 1, true }, { "k", 2, 1, true } }, store.calls)
  end)

  it("passes the store's failure on, and calls nothing for an unlimited rate", function()
    local store = reserve_store { { nil, "down" }, { nil, "down" } }
    local rl = ratelimit.new { store = store, clock = no_clock }
    assert.same({ nil, "down" }, { rl:reserve("k", 1) })
    assert.same({ nil, "down" }, { rl:try("k", 1) })
    assert.equal(0, rl:reserve("k", nil))
    assert.is_true(rl:try("k", false))
    assert.equal(2, #store.calls)
  end)

  it("raises when the store answers something that is not a delay", function()
    for _, bad in ipairs { -1, "0.5", 0 / 0, math.huge, true } do
      local rl = ratelimit.new { store = reserve_store { bad }, clock = no_clock }
      raises("streamctl.ratelimit: store:reserve returned " .. tostring(bad) .. ", not a delay in seconds",
        function() rl:reserve("k", 1) end)
    end
  end)

  it("accepts a store with reserve alone; others still need get and set", function()
    assert.is_table(ratelimit.new { store = { reserve = function() return 0 end } })
    assert.same({ nil, "must be an object with methods 'get', 'set' (it has no 'get')" },
      { ratelimit.check_store { reserve = 5 } })
    assert.same({ nil, "must be an object with methods 'get', 'set'" }, { ratelimit.check_store(5) })
  end)
end)

describe("streamctl.store.redis config", function()
  it("fills in the defaults", function()
    local c = assert(R.config {})
    assert.same({ host = "127.0.0.1", port = 6379, db = 0, prefix = "streamctl:", timeout_ms = 200, nodes = 4 },
      { host = c.host, port = c.port, db = c.db, prefix = c.prefix, timeout_ms = c.timeout_ms, nodes = c.nodes })
    assert.is_nil(c.password)
    assert.equal(c, R.config(c))
  end)

  it("takes every field", function()
    local c = assert(R.config { host = "redis.internal", port = 7000, password = "p w!", db = 5, prefix = "",
                                timeout_ms = 50, nodes = 16 })
    assert.equal("redis.internal", c.host)
    assert.equal(7000, c.port)
    assert.equal("p w!", c.password)
    assert.equal(5, c.db)
    assert.equal("", c.prefix)
    assert.equal(50, c.timeout_ms)
    assert.equal(16, c.nodes)
  end)

  local BAD = {
    { { hots = "x" }, "option 'redis.hots' is not an option of streamctl.store.redis (did you mean 'redis.host'?)" },
    { { host = "" }, "option 'redis.host' must not be empty" },
    { { host = 5 }, "option 'redis.host' must be a string" },
    { { host = "a b" }, "option 'redis.host' must be a host name or an IP address" },
    { { host = "h/x" }, "option 'redis.host' must be a host name or an IP address" },
    { { host = string.rep("h", 256) }, "option 'redis.host' must be at most 255 bytes" },
    { { port = 0 }, "option 'redis.port' must be at least 1" },
    { { port = 65536 }, "option 'redis.port' must be at most 65535" },
    { { port = "6379" }, "option 'redis.port' must be an integer" },
    { { port = 1.5 }, "option 'redis.port' must be an integer" },
    { { password = "" }, "option 'redis.password' must not be empty" },
    { { password = 12 }, "option 'redis.password' must be a string" },
    { { password = "a\nb" }, "option 'redis.password' must be printable ASCII" },
    { { password = "caf\195\169" }, "option 'redis.password' must be printable ASCII" },
    { { password = string.rep("x", 513) }, "option 'redis.password' must be at most 512 bytes" },
    { { db = -1 }, "option 'redis.db' must be at least 0" },
    { { db = "0" }, "option 'redis.db' must be an integer" },
    { { prefix = 1 }, "option 'redis.prefix' must be a string" },
    { { prefix = "a\nb" }, "option 'redis.prefix' must not contain CR, LF or NUL" },
    { { prefix = string.rep("p", 257) }, "option 'redis.prefix' must be at most 256 bytes (got 257)" },
    { { timeout_ms = 0 }, "option 'redis.timeout_ms' must be at least 1" },
    { { timeout_ms = 2.5 }, "option 'redis.timeout_ms' must be an integer" },
    { { nodes = 0 }, "option 'redis.nodes' must be at least 1" },
    { { nodes = 1000001 }, "option 'redis.nodes' must be at most 1000000" },
    { 42, "redis must be a table of options or a redis:// URL, not number" },
    { true, "redis must be a table of options or a redis:// URL, not boolean" },
  }
  for _, case in ipairs(BAD) do
    it("refuses " .. (type(case[1]) == "table" and next(case[1]) or tostring(case[1])) .. ": " .. case[2], function()
      local c, why = R.config(case[1])
      assert.is_nil(c)
      assert.equal(case[2], why)
    end)
  end

  local URLS = {
    { "redis://localhost", { host = "localhost", port = 6379, db = 0 } },
    { "redis://127.0.0.1:6380", { host = "127.0.0.1", port = 6380, db = 0 } },
    { "redis://127.0.0.1:6380/", { host = "127.0.0.1", port = 6380, db = 0 } },
    { "redis://h/7", { host = "h", port = 6379, db = 7 } },
    { "redis://:pw@127.0.0.1:6380/2", { host = "127.0.0.1", port = 6380, db = 2, password = "pw" } },
    { "redis://:p%40ss%2Fw%25@h", { host = "h", port = 6379, db = 0, password = "p@ss/w%" } },
    { "redis://:a@b@h:1", { host = "h", port = 1, db = 0, password = "a@b" } },
    { "redis://:x/y@h/3", { host = "h", port = 6379, db = 3, password = "x/y" } },
    { "redis://[::1]:7000/1", { host = "::1", port = 7000, db = 1 } },
    { "REDIS://h", { host = "h", port = 6379, db = 0 } },
  }
  for _, case in ipairs(URLS) do
    it("reads " .. case[1], function()
      local c = assert(R.config(case[1]))
      assert.same(case[2], { host = c.host, port = c.port, db = c.db, password = c.password })
      assert.equal("streamctl:", c.prefix)
      assert.equal(200, c.timeout_ms)
      assert.equal(4, c.nodes)
    end)
  end

  local BAD_URLS = {
    { "http://h", "redis URL must start with redis://" },
    { "rediss://h", "redis URL must start with redis://" },
    { "h:6379", "redis URL must start with redis://" },
    { "redis://", "redis URL: the host is missing" },
    { "redis://:hunter2@", "redis URL: the host is missing" },
    { "redis://:6379", "redis URL: the host is missing" },
    { "redis://h:0", "redis URL: the port must be an integer in 1..65535" },
    { "redis://h:65536", "redis URL: the port must be an integer in 1..65535" },
    { "redis://h:", "redis URL: the port must be an integer in 1..65535" },
    { "redis://h:x", "redis URL: the port must be an integer in 1..65535" },
    { "redis://:hunter2@h:99999999", "redis URL: the port must be an integer in 1..65535" },
    { "redis://h/x", "redis URL: the database must be an integer in 0..2147483647" },
    { "redis://h/1/2", "redis URL: the database must be an integer in 0..2147483647" },
    { "redis://h/99999999999", "redis URL: the database must be an integer in 0..2147483647" },
    { "redis://user:hunter2@h", "redis URL: only ':password@' may come before the host (no user name)" },
    { "redis://:hunter2%4@h", "redis URL: the password has a bad %-escape" },
    { "redis://:hunter2%zz@h", "redis URL: the password has a bad %-escape" },
    { "redis://:hunter\1@h", "redis URL: the password must be printable ASCII" },
    { "redis://:hunter%0A2@h", "redis URL: the password must be printable ASCII" },
    { "redis://:@h", "redis URL: the password must not be empty" },
    { "redis://h\r\n", "redis URL must not contain CR, LF, NUL or spaces" },
    { "redis://:hunter2@h x", "redis URL must not contain CR, LF, NUL or spaces" },
    { "redis://h\0", "redis URL must not contain CR, LF, NUL or spaces" },
    { "redis://h?db=1", "redis URL: the host must be a host name or an IP address" },
    { "redis://[zz]:1", "redis URL: the host in [] must be an IPv6 address" },
  }
  for _, case in ipairs(BAD_URLS) do
    it("refuses the URL " .. case[1]:gsub("%c", "?") .. ": " .. case[2], function()
      local c, why = R.config(case[1])
      assert.is_nil(c)
      assert.equal(case[2], why)
      assert.is_nil(why:find("hunter", 1, true))
    end)
  end

  it("never shows the password in tostring", function()
    local c = assert(R.config "redis://:hunter2@10.1.2.3:6380/4")
    assert.equal("redis://:<redacted>@10.1.2.3:6380/4 (prefix 'streamctl:')", tostring(c))
    assert.equal("redis://127.0.0.1:6379/0 (prefix 'streamctl:')", tostring(assert(R.config {})))
    local conn = R.connect(c)
    assert.is_nil(tostring(conn):find("hunter2", 1, true))
  end)

  it("bad configs and options raise from the constructors, naming the field", function()
    raises("bad argument #1 to 'connect' (option 'redis.port' must be at least 1)", function()
      R.connect { port = 0 }
    end)
    raises("bad argument #1 to 'ratelimit_store' (redis URL must start with redis://)", function()
      R.ratelimit_store("http://h")
    end)
    raises("bad argument #1 to 'sequence_store' (option 'redis.nodes' must be at least 1)", function()
      R.sequence_store({ nodes = 0 }, "p:")
    end)
    raises("bad argument #2 to 'sequence_store' (prefix must be a string, got nil)", function()
      R.sequence_store({})
    end)
    raises("bad argument #1 to 'ratelimit_store' (option 'retry_ms' must be at least 1)", function()
      R.ratelimit_store({}, { retry_ms = 0 })
    end)
    raises("bad argument #1 to 'script' (text must be a non-empty string)", function() R.script("") end)
  end)
end)

describe("streamctl.store.redis against redis-server", function()
  local srv, check, cfg

  lazy_setup(function()
    srv = helper.start { password = PASSWORD }
    check = direct(srv, 3)
    cfg = assert(R.config { port = srv.port, password = PASSWORD, db = 3, prefix = "t:", timeout_ms = 1000 })
  end)

  lazy_teardown(function()
    if check then check:close() end
    if srv then srv:stop() end
  end)

  before_each(function()
    assert.equal("OK", check:command("FLUSHALL"))
  end)

  describe("eval", function()
    local function stats()
      local info = check:command("INFO", "commandstats")
      local function calls(name)
        return tonumber(info:match("cmdstat_" .. name .. ":calls=(%d+)") or 0)
      end
      return calls("evalsha"), calls("eval")
    end

    it("runs EVALSHA, EVAL once after NOSCRIPT, then EVALSHA again", function()
      local conn = R.connect(cfg)
      local script = R.script("return ARGV[1] .. KEYS[1]")
      assert.equal(hiredis.sha1_hex("return ARGV[1] .. KEYS[1]"), script.sha)
      assert.equal(check:command("SCRIPT", "LOAD", script.text), script.sha)
      assert.equal("OK", check:command("SCRIPT", "FLUSH"))
      assert.equal("OK", check:command("CONFIG", "RESETSTAT"))
      assert.equal("ak", conn:eval(script, { "k" }, { "a" }))
      assert.same({ 1, 1 }, { stats() })     -- EVALSHA (NOSCRIPT), EVAL
      assert.equal("bk", conn:eval(script, { "k" }, { "b" }))
      assert.same({ 2, 1 }, { stats() })     -- one EVALSHA
      assert.equal("OK", check:command("SCRIPT", "FLUSH"))
      assert.equal("ck", conn:eval(script, { "k" }, { "c" }))
      assert.same({ 3, 2 }, { stats() })
      conn:close()
    end)

    it("sends numbers as exact decimals and gives nil replies as null", function()
      local conn = R.connect(cfg)
      assert.equal("9007199254740991|42|1.5", conn:eval(R.script("return ARGV[1] .. '|' .. ARGV[2] .. '|' .. ARGV[3]"),
        {}, { 2 ^ 53 - 1, 42, 1.5 }))
      local t = conn:eval(R.script("return {1, redis.call('GET', KEYS[1]), 'x'}"), { "absent" }, {})
      assert.same({ 1, R.null, "x" }, t)
      assert.equal(R.null, conn:eval(R.script("return redis.call('GET', KEYS[1])"), { "absent" }))
    end)

    it("returns a script's error as nil, message, 'server'", function()
      local conn = R.connect(cfg)
      local res, err, kind = conn:eval(R.script("return redis.error_reply('MINE went wrong')"), {}, {})
      assert.is_nil(res)
      assert.equal("MINE went wrong", err)
      assert.equal("server", kind)
    end)

    it("raises for a programming error", function()
      local conn = R.connect(cfg)
      raises("bad argument #1 to 'eval' (a script made by streamctl.store.redis.script expected)", function()
        conn:eval("return 1", {})
      end)
      raises("bad argument #2 to 'eval' (keys[1] must be a string)", function()
        conn:eval(R.script("return 1"), { 1 })
      end)
      raises("bad argument #3 to 'eval' (args[2] must be a string or a number)", function()
        conn:eval(R.script("return 1"), {}, { 1, true })
      end)
    end)

    it("answers a wrong password as a server error, never showing it", function()
      local conn = R.connect { port = srv.port, password = "wrong-one" }
      local res, err, kind = conn:eval(R.script("return 1"), {}, {})
      assert.is_nil(res)
      assert.equal("AUTH: WRONGPASS invalid username-password pair or user is disabled.", err)
      assert.equal("server", kind)
    end)
  end)

  describe("ratelimit_store", function()
    local function tat(key) return tonumber(check:command("GET", "t:rl:" .. key)) end

    it("spaces reservations by exactly 1/rate microseconds of the server's clock", function()
      local rl = ratelimit.new { store = R.ratelimit_store(cfg) }
      local delays, tats = {}, {}
      for i = 1, 10 do
        delays[i] = rl:reserve("spaced", 10)
        tats[i] = tat("spaced")
      end
      assert.equal(0, delays[1])
      for i = 2, 10 do
        assert.equal(100000, tats[i] - tats[i - 1])
        assert.is_true(delays[i] > delays[i - 1])
        assert.is_true(math.abs(delays[i] - (i - 1) * 0.1) < 0.05, "delay " .. delays[i])
      end
      -- 1/3 s is 333333.33 microseconds: rounded up, never faster than the rate
      rl:reserve("third", 3)
      local t1 = tat("third")
      rl:reserve("third", 3)
      assert.equal(333334, tat("third") - t1)
    end)

    it("lets a burst through, then spaces", function()
      local rl = ratelimit.new { store = R.ratelimit_store(cfg) }
      assert.equal(0, rl:reserve("burst", 2, 3))
      assert.equal(0, rl:reserve("burst", 2, 3))
      assert.equal(0, rl:reserve("burst", 2, 3))
      local d = rl:reserve("burst", 2, 3)
      assert.is_true(d > 0.4 and d <= 0.5, "delay " .. d)
    end)

    it("with only_if_free (try) writes nothing unless the slot is free", function()
      local rl = ratelimit.new { store = R.ratelimit_store(cfg) }
      assert.is_true(rl:try("free", 1)) -- free: taken and written
      local v = check:command("GET", "t:rl:free")
      assert.is_string(v)
      local ok, delay = rl:try("free", 1)
      assert.is_false(ok)
      assert.is_true(delay > 0.9 and delay <= 1, "delay " .. delay)
      assert.equal(v, check:command("GET", "t:rl:free"))
      assert.equal(0, rl:reserve("other", 1))
    end)

    it("sets the key to expire when its state stops mattering", function()
      local rl = ratelimit.new { store = R.ratelimit_store(cfg) }
      for _ = 1, 5 do rl:reserve("ttl", 20) end -- tat 250 ms ahead
      local pttl = check:command("PTTL", "t:rl:ttl")
      assert.is_true(pttl > 200 and pttl <= 250, "PTTL " .. pttl)
      socket.sleep(0.35)
      assert.equal(0, check:command("EXISTS", "t:rl:ttl"))
    end)

    it("two store objects on two connections share one budget", function()
      local a = ratelimit.new { store = R.ratelimit_store(R.connect(cfg)) }
      local b = ratelimit.new { store = R.ratelimit_store(R.connect(cfg)) }
      local last_tat, last_delay = nil, -1
      for i = 1, 10 do
        local d = (i % 2 == 1 and a or b):reserve("shared", 10)
        local t = tat("shared")
        if last_tat then assert.equal(100000, t - last_tat) end
        assert.is_true(d > last_delay)
        last_tat, last_delay = t, d
      end
      assert.is_true(last_delay > 0.85 and last_delay <= 0.9, "delay " .. last_delay)
    end)

    it("counts the server's error as an outage: fallback, one log line", function()
      assert.equal(1, check:command("HSET", "t:rl:wrongtype", "f", "v"))
      local logs, clock = {}, checks.fake_clock(50)
      local rl = ratelimit.new { store = R.ratelimit_store(cfg, {
        log = function(m) logs[#logs + 1] = m end, monotonic = clock.now }) }
      assert.equal(0, rl:reserve("wrongtype", 8))
      assert.equal(0.5, rl:reserve("wrongtype", 8)) -- 8 / 4 nodes: 2 per second, in this process
      clock.t = clock.t + 1.5                          -- past retry_ms: Redis is asked again, fails again
      rl:reserve("wrongtype", 8)
      assert.equal(1, #logs)
      assert.matches("WRONGTYPE", logs[1])
      assert.truthy(logs[1]:find("Redis at 127.0.0.1:" .. srv.port .. " failed", 1, true))
    end)
  end)

  describe("sequence_store", function()
    it("hands out strictly increasing values, kept KEEP_MS", function()
      local store = R.sequence_store(cfg, "zego:1:")
      local gen = sequence.new { store = store, clock_ms = function() return 1e12 end }
      local last = -1
      for i = 1, 100 do
        local v = tonumber(gen:next("s"))
        assert.equal(1e12 + i - 1, v)
        assert.is_true(v > last)
        last = v
      end
      assert.equal(string.format("%.0f", last), check:command("GET", "t:seq:zego:1:s"))
      local pttl = check:command("PTTL", "t:seq:zego:1:s")
      assert.is_true(pttl > sequence.KEEP_MS - 1000 and pttl <= sequence.KEEP_MS, "PTTL " .. pttl)
      assert.equal(last, store:get("s"))
      assert.is_nil(store:get("never"))
    end)

    it("follows the clock when it is ahead, and next_for settles across ids", function()
      local now = 2e12
      local gen = sequence.new { store = R.sequence_store(cfg, "z:"), clock_ms = function() return now end }
      assert.equal("2000000000000", gen:next("a"))
      assert.equal("2000000000001", gen:next("a"))
      now = 3e12
      assert.equal("3000000000000", gen:next("a"))
      assert.equal("3000000000001", gen:next_for { "a", "b" })
      assert.equal("3000000000001", check:command("GET", "t:seq:z:b"))
    end)

    it("is exact up to 2^53 - 1", function()
      local store = R.sequence_store(cfg, "big:")
      assert.equal(2 ^ 53 - 3, store:advance("s", 2 ^ 53 - 3))
      assert.equal(2 ^ 53 - 2, store:advance("s", 0))
      assert.equal(2 ^ 53 - 1, store:advance("s", 5))
      assert.equal("9007199254740991", check:command("GET", "t:seq:big:s"))
    end)

    it("two stores on two connections never hand out the same value", function()
      local gen1 = sequence.new { store = R.sequence_store(R.connect(cfg), "p:"), clock_ms = function() return 5e12 end }
      local gen2 = sequence.new { store = R.sequence_store(R.connect(cfg), "p:"), clock_ms = function() return 5e12 end }
      local last = -1
      for i = 1, 50 do
        local v = tonumber((i % 3 == 0 and gen2 or gen1):next("s"))
        assert.is_true(v > last)
        last = v
      end
      assert.equal(5e12 + 49, last)
    end)

    it("lets keys expire", function()
      local keep = sequence.KEEP_MS
      sequence.KEEP_MS = 200 -- read when the store is made
      local ok, err = pcall(function()
        local store = R.sequence_store(cfg, "exp:")
        store:advance("s", 10)
        assert.equal("10", check:command("GET", "t:seq:exp:s"))
        socket.sleep(0.4)
        assert.equal(0, check:command("EXISTS", "t:seq:exp:s"))
        assert.equal(11, store:advance("s", 5)) -- this process's last value still counts
      end)
      sequence.KEEP_MS = keep
      assert(ok, err)
    end)

    it("prunes its own record of old streams", function()
      local store = R.sequence_store(cfg, "pr:")
      store:advance("old", 100)
      store:advance("new", 1000)
      assert.equal(1, store:prune(500))
      assert.equal(0, store:prune(500))
    end)
  end)

  describe("when Redis goes away", function()
    local down, logs, seq_logs, clock, rl, seq, seq_store, now_ms

    lazy_setup(function()
      down = helper.start { password = PASSWORD }
      local dcfg = { port = down.port, password = PASSWORD, prefix = "d:", timeout_ms = 500 }
      logs, seq_logs, clock = {}, {}, checks.fake_clock(1000)
      rl = ratelimit.new { store = R.ratelimit_store(dcfg, {
        log = function(m) logs[#logs + 1] = m end, monotonic = clock.now, retry_ms = 1000 }) }
      seq_store = R.sequence_store(dcfg, "zego:1:", {
        log = function(m) seq_logs[#seq_logs + 1] = m end, monotonic = clock.now, retry_ms = 1000 })
      now_ms = 7e12
      seq = sequence.new { store = seq_store, clock_ms = function() return now_ms end }
    end)

    lazy_teardown(function()
      if down then down:stop() end
    end)

    local last_seq

    it("(Redis up) reserves and sequences through Redis", function()
      assert.equal(0, rl:reserve("k", 8))
      last_seq = tonumber(seq:next("s"))
      assert.equal(7e12, last_seq)
      local c = direct(down)
      assert.equal(1, c:command("EXISTS", "d:rl:k"))
      assert.equal("7000000000000", c:command("GET", "d:seq:zego:1:s"))
      c:close()
      assert.same({}, logs)
    end)

    it("killed: falls back to rate / nodes in this process, logs once, never raises", function()
      down:kill()
      local delays = {}
      for i = 1, 8 do delays[i] = rl:reserve("k", 8) end     -- frozen clock: 2 per second
      -- after Redis' schedule as its last answer showed it (one slot, 1/8 s
      -- ahead), then every 1/2 s
      assert.same({ 0.625, 1.125, 1.625, 2.125, 2.625, 3.125, 3.625, 4.125 }, delays)
      local ok, delay = rl:try("k", 8)
      assert.is_false(ok)
      assert.equal(4.625, delay)
      assert.is_true(rl:try("other", 8))
      assert.equal(1, #logs)
      assert.truthy(logs[1]:find("Redis at 127.0.0.1:" .. down.port .. " failed (", 1, true), logs[1])
      assert.truthy(logs[1]:find("rate limits fall back to rate / 4 in this process", 1, true), logs[1])
      assert.is_nil(logs[1]:find(PASSWORD, 1, true))
    end)

    it("killed: sequences keep increasing from this process's last value", function()
      now_ms = 1000 -- a clock far behind: the last value still counts
      for _ = 1, 5 do
        local v = tonumber(seq:next("s"))
        assert.equal(last_seq + 1, v)
        last_seq = v
      end
      assert.equal(1, #seq_logs)
      assert.truthy(seq_logs[1]:find("Redis at 127.0.0.1:" .. down.port .. " failed (", 1, true), seq_logs[1])
      assert.is_nil(seq_logs[1]:find(PASSWORD, 1, true))
      assert.equal(last_seq, seq_store:get("s"))
    end)

    it("killed: Redis is tried again only after retry_ms, and still no second log line", function()
      clock.t = clock.t + 1.01
      rl:reserve("k2", 8)
      seq:next("s2")
      assert.equal(1, #logs)
      assert.equal(1, #seq_logs)
    end)

    it("restarted: back to Redis after retry_ms, one log line each, values still increasing", function()
      down:restart()
      rl:reserve("k3", 8) -- still in the retry window: local
      local c = direct(down)
      assert.equal(0, c:command("EXISTS", "d:rl:k3"))
      clock.t = clock.t + 1.01
      assert.equal(0, rl:reserve("k3", 8))
      assert.equal(1, c:command("EXISTS", "d:rl:k3"))
      -- for retry_ms after its return, this process keeps to its own budget
      -- as well (1/2 s), and puts that slot into Redis' schedule
      local d = rl:reserve("k3", 8)
      assert.equal(0.5, d)
      local tat = tonumber(c:command("GET", "d:rl:k3"))
      local t = c:command("TIME")
      local ahead = tat - (tonumber(t[1]) * 1e6 + tonumber(t[2]))
      assert.is_true(ahead > 0.5e6 and ahead <= 0.625e6, "Redis' schedule runs " .. ahead .. " us ahead")
      clock.t = clock.t + 1.01 -- then Redis' schedule alone (its clock is the real one):
      d = rl:reserve("k3", 8)  -- 1/8 s after the slot it holds
      assert.is_true(d > 0.55 and d <= 0.625, "delay " .. d)
      assert.equal(2, #logs)
      assert.equal("streamctl: Redis at 127.0.0.1:" .. down.port
        .. " answers again; rate limits are shared through it again", logs[2])

      local v = tonumber(seq:next("s")) -- Redis lost everything: this process's last value still counts
      assert.equal(last_seq + 1, v)
      assert.equal(string.format("%.0f", v), c:command("GET", "d:seq:zego:1:s"))
      assert.equal(2, #seq_logs)
      assert.equal("streamctl: Redis at 127.0.0.1:" .. down.port
        .. " answers again; ZEGO Sequences are shared through it again", seq_logs[2])
      rl:reserve("k3", 8)
      seq:next("s")
      assert.equal(2, #logs)
      assert.equal(2, #seq_logs)
      c:close()
    end)
  end)

  it("after Redis went quiet long ago, the fallback does not wait for a schedule long run out", function()
    local quiet_srv = helper.start {}
    local logs, clock = {}, checks.fake_clock(1000)
    local rl = ratelimit.new { store = R.ratelimit_store({ port = quiet_srv.port, timeout_ms = 500 }, {
      log = function(m) logs[#logs + 1] = m end, monotonic = clock.now }) }
    assert.equal(0, rl:reserve("k", 8))    -- Redis' schedule: 1/8 s ahead
    clock.t = clock.t + 100                  -- nothing for 100 s, then Redis is gone
    quiet_srv:kill()
    local d = rl:reserve("k", 8)
    quiet_srv:stop()
    assert.equal(0, d)
    assert.equal(1, #logs)
  end)

  it("a server that never answers costs one timeout, then the fallback answers at once", function()
    local sock, port = helper.silent_server()
    local logs = {}
    local rl = ratelimit.new { store = R.ratelimit_store({ port = port, timeout_ms = 150 }, {
      log = function(m) logs[#logs + 1] = m end }) }
    local t0 = core.monotonic()
    assert.equal(0, rl:reserve("k", 100))
    local first = core.monotonic() - t0
    for _ = 1, 20 do rl:reserve("k", 100) end
    local rest = core.monotonic() - t0 - first
    sock:close()
    assert.is_true(first >= 0.1 and first < 1, "first call took " .. first .. " s")
    assert.is_true(rest < 0.1, "later calls took " .. rest .. " s")
    assert.equal(1, #logs)
    assert.truthy(logs[1]:find("Redis at 127.0.0.1:" .. port .. " failed (timeout (150 ms))", 1, true), logs[1])
  end)

  it("logs to standard error by default (outside nginx)", function()
    local port = require("spec.helpers.process").free_port()
    local out = os.tmpname()
    local root = os.getenv("STREAMCTL_ROOT") or "."
    local cmd = require("spec.helpers.process").interpreter() .. " -e " .. require("spec.helpers.process").quote(
      "local R = require 'streamctl.store.redis' local s = R.ratelimit_store { port = " .. port .. ", password = '"
      .. PASSWORD .. "' } s:reserve('k', 1, 1) s:reserve('k', 1, 1)") .. " 2>" .. out
    assert.is_true(os.execute("cd " .. root .. " && " .. cmd) ~= false)
    local f = assert(io.open(out))
    local text = f:read("*a")
    f:close()
    os.remove(out)
    local _, lines = text:gsub("\n", "")
    assert.equal(1, lines, text)
    assert.truthy(text:find("Redis at 127.0.0.1:" .. port .. " failed (connect: Connection refused)", 1, true), text)
    assert.is_nil(text:find(PASSWORD, 1, true))
  end)
end)

describe("streamctl.store.redis inside nginx (cosockets)", function()
  local nginx = require "spec.helpers.nginx"
  local cjson = require "cjson"
  local available, why_not = nginx.available()
  assert(available, why_not) -- `make test` installs nginx; a spec that cannot run fails

  local srv, web, check

  local DRIVER = [==[
local cjson = require "cjson"
local R = require "streamctl.store.redis"
local ratelimit = require "streamctl.ratelimit"
local sequence = require "streamctl.sequence"

local M = {}
local conn = R.connect { port = tonumber(os.getenv("REDIS_PORT")), password = os.getenv("REDIS_PASSWORD"),
                         db = 3, prefix = "ngx:", timeout_ms = 1000 }
local logs = {}
local function log(m) logs[#logs + 1] = m end
local rl = ratelimit.new { store = R.ratelimit_store(conn, { log = log }) }
local seq = sequence.new { store = R.sequence_store(conn, "z:", { log = log }), clock_ms = function() return 1000 end }

function M.run()
  local out = { delays = {}, seqs = {} }
  for i = 1, 3 do out.delays[i] = rl:reserve("k", 10) end
  for i = 1, 3 do out.seqs[i] = seq:next("s") end
  out.logs = logs
  ngx.say(cjson.encode(out))
end

function M.set_phase()
  local res, err, kind = conn:eval(R.script("return 1"), {}, {})
  return tostring(res) .. "|" .. tostring(kind) .. "|" .. tostring(err)
end

return M
]==]

  lazy_setup(function()
    srv = helper.start { password = PASSWORD }
    check = direct(srv, 3)
    web = nginx.start {
      env = { REDIS_PORT = tostring(srv.port), REDIS_PASSWORD = PASSWORD },
      main = "env REDIS_PORT;\nenv REDIS_PASSWORD;",
      prepare = function(dir) nginx.write_file(dir .. "/driver.lua", DRIVER) end,
      lua_path = function(dir) return dir .. "/?.lua" end,
      lua_cpath = function() return (nginx.jit_cpath():gsub(";.*$", "")) end,
      http = function(ports)
        return table.concat({
          "  server {",
          "    listen 127.0.0.1:" .. ports[1] .. ";",
          "    location = /run { content_by_lua_block { require('driver').run() } }",
          "    location = /set { set_by_lua_block $r { return require('driver').set_phase() } return 200 $r; }",
          "  }",
        }, "\n")
      end,
    }
  end)

  lazy_teardown(function()
    if web then web:stop() end
    if check then check:close() end
    if srv then srv:stop() end
  end)

  it("reserves and sequences through a pooled, authenticated connection on its db", function()
    local status, body = web:get("/run")
    assert.equal(200, status, body)
    local first = cjson.decode(body)
    assert.equal(0, first.delays[1])
    assert.is_true(first.delays[2] > 0.05 and first.delays[2] <= 0.1)
    assert.is_true(first.delays[3] > 0.15 and first.delays[3] <= 0.2)
    assert.same({ "1000", "1001", "1002" }, first.seqs)
    assert.same({}, first.logs)
    assert.equal(1, check:command("EXISTS", "ngx:rl:k"))
    assert.equal("1002", check:command("GET", "ngx:seq:z:s"))

    local function connections()
      return tonumber(check:command("INFO", "stats"):match("total_connections_received:(%d+)"))
    end
    local before = connections()
    status, body = web:get("/run") -- the pooled connection: no new connection, AUTH or SELECT
    assert.equal(200, status, body)
    local second = cjson.decode(body)
    assert.same({ "1003", "1004", "1005" }, second.seqs)
    assert.equal(before, connections())
    assert.same({}, second.logs)
  end)

  it("in a phase without cosockets answers 'phase' without blocking or logging", function()
    local status, body = web:get("/set")
    assert.equal(200, status)
    assert.equal("nil|phase|Redis cannot be reached from nginx's 'set' phase (no cosockets)", body)
    assert.is_nil(web:error_log():find("streamctl: Redis", 1, true))
  end)
end)
