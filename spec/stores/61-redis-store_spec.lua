-- streamctl.store.redis: configuration, scripts, the rate-limit and sequence
-- stores against redis-server (spec/helpers/redis.lua), their fallback when
-- Redis is down or slow, and (inside nginx) the cosocket backend.

local R = require "streamctl.store.redis"
local ratelimit = require "streamctl.engine.ratelimit"
local room = require "streamctl.engine.room"
local sequence = require "streamctl.engine.sequence"
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

describe("streamctl.engine.ratelimit with a store that has reserve", function()
  -- A store that records its calls and answers from a script of delays.
  local function reserve_store(answers)
    local s = { calls = {} }
    function s:reserve(key, rate, burst, max_delay)
      self.calls[#self.calls + 1] = { key, rate, burst, max_delay }
      local a = table.remove(answers, 1)
      if type(a) == "table" then return a[1], a[2] end
      return a, type(a) == "number" and a <= max_delay
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
    local huge = math.huge
    assert.same({ { "k", 10, 1, huge }, { "k", 10, 3, huge }, { "k", 10, 1, huge } }, store.calls)
  end)

  it("try passes max_delay 0 and reads the delay", function()
    local store = reserve_store { 0, 0.5 }
    local rl = ratelimit.new { store = store, clock = no_clock }
    assert.is_true(rl:try("k", 2))
    local ok, delay = rl:try("k", 2)
    assert.is_false(ok)
    assert.equal(0.5, delay)
    assert.same({ { "k", 2, 1, 0 }, { "k", 2, 1, 0 } }, store.calls)
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
      raises("streamctl.engine.ratelimit: store:reserve returned " .. tostring(bad) .. ", not a delay in seconds",
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
    { "http://h", "redis URL must start with redis://, rediss:// (TLS), redis+sentinel:// or rediss+sentinel://" },
    { "redis://h?tls_server_name=h", "redis URL: unknown parameter 'tls_server_name' (the parameters are nodes, "
      .. "prefix, timeout_ms)" },
    { "h:6379", "redis URL must start with redis://, rediss:// (TLS), redis+sentinel:// or rediss+sentinel://" },
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
    { "redis://:hunter2%4@h", "redis URL: the password has a bad %-escape" },
    { "redis://:hunter2%zz@h", "redis URL: the password has a bad %-escape" },
    { "redis://:hunter\1@h", "redis URL: the password must be printable ASCII" },
    { "redis://:hunter%0A2@h", "redis URL: the password must be printable ASCII" },
    { "redis://:@h", "redis URL: the password must not be empty" },
    { "redis://h\r\n", "redis URL must not contain CR, LF, NUL or spaces" },
    { "redis://:hunter2@h x", "redis URL must not contain CR, LF, NUL or spaces" },
    { "redis://h\0", "redis URL must not contain CR, LF, NUL or spaces" },
    { "redis://h?db=1", "redis URL: unknown parameter 'db' (the parameters are nodes, prefix, timeout_ms)" },
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

  it("bad configs and options: nil, err from the stores' constructors, naming the field; misuse raises", function()
    local refused = require("spec.helpers.checks").refused
    refused("option 'redis.port' must be at least 1", R.connect { port = 0 })
    refused("redis URL must start with redis://, rediss:// (TLS), redis+sentinel:// or rediss+sentinel://",
      R.connect("http://h"))
    refused("option 'lg' is not an option of streamctl.store.redis.connect (did you mean 'log'?)",
      R.connect({}, { lg = print }))
    raises("bad argument #2 to 'connect' (opts must be a table or nil)", function() R.connect({}, 5) end)
    refused("redis URL must start with redis://, rediss:// (TLS), redis+sentinel:// or rediss+sentinel://",
      R.ratelimit_store("http://h"))
    refused("option 'redis.nodes' must be at least 1", R.sequence_store({ nodes = 0 }, "p:"))
    refused("option 'retry_ms' must be at least 1", R.ratelimit_store({}, { retry_ms = 0 }))
    refused("option 'retry_ms' must be at least 1", R.sequence_store({}, "p:", { retry_ms = 0 }))
    refused("option 'lg' is not an option of streamctl.store.redis.ratelimit_store (did you mean 'log'?)",
      R.ratelimit_store({}, { lg = print }))
    local ok, err = pcall(R.ratelimit_store, {}, 5)
    assert.is_false(ok)
    assert.equal("bad argument #2 to 'ratelimit_store' (opts must be a table or nil)", err)
    raises("61-redis-store_spec.lua", function() R.sequence_store({}, "p:", 5) end) -- (blamed on this file)
    raises("bad argument #3 to 'sequence_store' (opts must be a table or nil)", function()
      R.sequence_store({}, "p:", 5)
    end)
    raises("bad argument #2 to 'sequence_store' (prefix must be a string, got nil)", function()
      R.sequence_store({})
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
      local res, e = conn:eval(R.script("return redis.error_reply('MINE went wrong')"), {}, {})
      assert.is_nil(res)
      assert.equal("MINE went wrong", e.message)
      assert.same({ "RedisError", "store", "server" }, { e.code, e.kind, e.reason })
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
      local res, e = conn:eval(R.script("return 1"), {}, {})
      assert.is_nil(res)
      assert.equal("AUTH: WRONGPASS invalid username-password pair or user is disabled.", e.message)
      assert.same({ "RedisError", "store", "server" }, { e.code, e.kind, e.reason })
    end)
  end)

  -- The server's time in microseconds, and its run id.
  local function server_us(c)
    local t = c:command("TIME")
    return tonumber(t[1]) * 1e6 + tonumber(t[2])
  end
  local function run_id(c) return c:command("INFO", "server"):match("run_id:(%w+)") end

  -- A budget as a store leaves it after a long life: born 10 s ago in this
  -- Redis run (so the first reservation is not paused as after a loss).
  local function seed(c, prefix, tag)
    assert.equal("OK", c:command("HSET", prefix .. "{" .. tag .. "}:rl", "born", string.format("%.0f",
      server_us(c) - 10e6), "run", run_id(c), "why", "missing") and "OK")
  end

  describe("ratelimit_store", function()
    local function hash(tag) return "t:{" .. tag .. "}:rl" end
    local function tat(tag) return tonumber(check:command("HGET", hash(tag), "tat:")) end

    -- A reservation, `fn()`, on the budget `tag` whose schedule stood at `before` (its tat, or nil),
    -- checked against the rule at the server's time of the ask (the store reads Redis' TIME), which is
    -- between `since` (a TIME read before the ask: the last ask's, or read now when nil) and the TIME
    -- read with the tat just after it: its slot is the later of the schedule and that time; the delay
    -- handed back is the slot less that time; a committed slot moves the schedule to the slot plus
    -- `interval` (us; a function when it is read from Redis after the ask); a refused one writes
    -- nothing. However slow the asks (valgrind's on a busy machine can fall behind a 10/s schedule),
    -- this holds exactly; a quick ask finds the schedule ahead, and its slot is the schedule's.
    -- Returns the delay, whether it was committed, the tat after it, and the TIME read after it.
    local AFTER = "local t = redis.call('TIME') return { t[1], t[2], redis.call('HGET', KEYS[1], 'tat:') }"
    local function checked_ask(tag, before, interval, fn, since)
      local s0 = since or server_us(check)
      local d, committed = fn()
      local got = check:command("EVAL", AFTER, 1, hash(tag)) -- (the time and the tat in one round trip)
      local s1, after = tonumber(got[1]) * 1e6 + tonumber(got[2]), tonumber(got[3])
      if type(interval) == "function" then interval = interval() end
      local slot = committed and after - interval or before
      local now = slot - d * 1e6 -- (the time of the ask this delay says)
      assert.is_true(now >= s0 - 2 and now <= s1 + 2, string.format("delay %.6f: the slot %d less a time of the "
        .. "ask outside [%d, %d]", d, slot, s0, s1))
      if not committed then
        assert.equal(before, after)
        return d, committed, after, s1
      end
      assert.is_true(before == nil or slot >= before, "a slot before the schedule")
      if before == nil or slot > before then assert.equal(0, d) end -- (the schedule behind the time: the slot is now)
      return d, committed, after, s1
    end

    it("spaces reservations by exactly 1/rate microseconds of the server's clock, at most 0.75 s ahead", function()
      seed(check, "t:", "spaced")
      local rl = ratelimit.new { store = R.ratelimit_store(cfg) }
      -- Asked until one is refused, each ask checked against the rule at
      -- the server's time of it (checked_ask): at least 8 fit (0 to 0.7 s
      -- ahead) when the asks are quick, more when they are slow (then the
      -- schedule falls behind the clock between two, and a slot is the time
      -- of its ask), so what is asserted is the rule, not how fast this
      -- machine asks. (A slow machine may never get 0.75 s ahead in 30
      -- asks at 10/s: it is asked until it does, for up to 2,000.)
      local delays = {}
      local d, committed, last, since = nil, nil, nil, nil
      for i = 1, 2000 do
        d, committed, last, since = checked_ask("spaced", last, 100000, function() return rl:reserve("spaced", 10) end,
          since)
        if not committed then break end
        delays[i] = d
        assert.is_true(d <= 0.75, "delay " .. d)
      end
      assert.is_false(committed)
      local n = #delays
      assert.is_true(n >= 8, n .. " committed")
      assert.equal(0, delays[1])
      -- the refused one is beyond the horizon, within one interval of it
      assert.is_true(d > 0.75 and d <= 0.85, "delay " .. d)
      -- 1/3 s is 333333.33 microseconds: rounded up, never faster than the rate
      seed(check, "t:", "third")
      rl:reserve("third", 3)
      local t1 = tat("third")
      rl:reserve("third", 3)
      assert.equal(333334, tat("third") - t1)
    end)

    it("keeps one hash per account, all its keys under one hash tag, with no expiry", function()
      seed(check, "t:", "aliyun:1234")
      local rl = ratelimit.new { store = R.ratelimit_store(cfg) }
      rl:reserve("aliyun:1234:ResumeLiveStream", 30)
      rl:reserve("aliyun:1234:ForbidLiveStream", 20)
      local h = check:command("HGETALL", "t:{aliyun:1234}:rl")
      local fields = {}
      for i = 1, #h, 2 do fields[#fields + 1] = h[i] end
      table.sort(fields)
      -- (d:<Action>: the slots handed out by when they are due, for the share a cut takes)
      assert.same({ "born", "d:ForbidLiveStream", "d:ResumeLiveStream", "run", "tat:ForbidLiveStream",
        "tat:ResumeLiveStream", "ts", "why" }, fields)
      assert.equal(-1, check:command("PTTL", "t:{aliyun:1234}:rl"))
      assert.equal(1, check:command("ZCARD", "t:{aliyun:1234}:procs"))
      assert.equal(-1, check:command("PTTL", "t:{aliyun:1234}:procs"))
    end)

    it("lets a burst through, then spaces", function()
      seed(check, "t:", "burst")
      local rl = ratelimit.new { store = R.ratelimit_store(cfg) }
      local s0 = server_us(check)
      assert.equal(0, rl:reserve("burst", 2, 3))
      assert.equal(0, rl:reserve("burst", 2, 3))
      assert.equal(0, rl:reserve("burst", 2, 3))
      local d = rl:reserve("burst", 2, 3)
      -- 0.5 s after the first, less the time the asks took (the server's clock: a busy machine's asks are slow)
      local spent = (server_us(check) - s0) / 1e6
      assert.is_true(d > 0.5 - spent - 0.001 and d <= 0.5, "delay " .. d .. " after " .. spent .. " s of asks")
    end)

    it("with try writes nothing unless the slot is free", function()
      seed(check, "t:", "free")
      local rl = ratelimit.new { store = R.ratelimit_store(cfg) }
      local s0 = server_us(check)
      assert.is_true(rl:try("free", 1)) -- free: taken and written
      local v = tat("free")
      assert.is_number(v)
      local ok, delay = rl:try("free", 1)
      assert.is_false(ok)
      -- 1 s after the first, less the time between the two (the server's clock, bracketing both: a busy
      -- machine's asks are slow, and a bound of 0.1 s for them was one under valgrind)
      local spent = (server_us(check) - s0) / 1e6
      assert.is_true(delay > 1 - spent - 0.001 and delay <= 1, "delay " .. delay .. " after " .. spent .. " s")
      assert.equal(v, tat("free"))
    end)

    it("a throttle cuts the room in Redis for every process: the schedule spaced at it, once per overshoot",
      function()
      seed(check, "t:", "roomy")
      local a_store, b_store = R.ratelimit_store(R.connect(cfg)), R.ratelimit_store(R.connect(cfg))
      local a, b = ratelimit.new { store = a_store }, ratelimit.new { store = b_store }
      assert.equal(0, a:reserve("roomy", 10))
      local t1 = tat("roomy")
      -- a throttle of an attempt sent just now, half the last second's answers throttled
      assert.is_true(a:throttled("roomy", 0, 0.5))
      local w = tonumber(check:command("HGET", hash("roomy"), "rw:"))
      assert.near(0.5, w, 1e-6) -- (the room met, 1, times the share)
      assert.is_number(tonumber(check:command("HGET", hash("roomy"), "rt:")))
      -- the other process's next slot is spaced at interval / (BETA * w): one reservation tells it the room
      -- (after the slot that was the schedule, t1, or after the time of the ask when that is later)
      local _, _, t2 = checked_ask("roomy", t1, math.ceil(100000 / (room.BETA * 0.5)),
        function() return b:reserve("roomy", 10) end)
      assert.is_true(t2 > t1)
      assert.near(room.BETA * 0.5, b:room("roomy"), 1e-6)
      -- a throttle of an attempt sent before the cut (or within its hold) cuts nothing more
      assert.is_false(b:throttled("roomy", 0.5, 0.1))
      assert.near(0.5, tonumber(check:command("HGET", hash("roomy"), "rw:")), 1e-6)
      -- the provider's retry-after holds the whole budget: no slot before it
      local before = tat("roomy")
      assert.is_false(b:throttled("roomy", 0, 1, 0.9))
      assert.is_true(tat("roomy") > before)
      local d = a:reserve("roomy", 10)
      assert.is_true(d > 0.5, "delay " .. d)
      -- a throttle on a budget Redis has no schedule of makes none (it would be taken for a lost one)
      assert.is_false(a:throttled("never-reserved", 0))
      assert.equal(0, check:command("EXISTS", hash("never-reserved")))
    end)

    it("a cut takes what got through the whole budget in the last second, as its slots and throttles show",
      function()
      -- five slots, 0.1 s apart, handed to two processes, then waited until all are due. They are 0.1 s
      -- apart only when the five asks keep ahead of the schedule (0.4 s); a busy machine's slower asks put
      -- later slots at the time of their ask, and the budget is asked again, afresh, up to five times.
      local tag, a, spread
      for try = 1, 5 do
        tag = "through" .. try
        seed(check, "t:", tag)
        a = ratelimit.new { store = R.ratelimit_store(R.connect(cfg)) }
        local b = ratelimit.new { store = R.ratelimit_store(R.connect(cfg)) }
        local s0 = server_us(check)
        for i = 1, 5 do (i % 2 == 1 and a or b):reserve(tag, 10) end
        spread = server_us(check) - s0
        if spread < 400000 then break end
      end
      assert.is_true(spread < 400000, "five asks took " .. spread .. " us, five times")
      local last_slot = tat(tag) - 100000
      assert.is_truthy(checks.wait_until(function() return server_us(check) > last_slot end, 5))
      -- a throttle reported with a local share of 1 (one process's few answers): the budget's own tally
      -- says 5 slots were due in the last second, 1 of them throttled: 4 got through, at a cap of 10
      assert.is_true(a:throttled(tag, 0, 1, nil, 10))
      assert.near(0.4, tonumber(check:command("HGET", hash(tag), "rw:")), 1e-6)
      assert.near(room.BETA * 0.4, a:room(tag), 1e-6)
    end)

    it("two store objects on two connections share one budget", function()
      seed(check, "t:", "shared")
      local a = ratelimit.new { store = R.ratelimit_store(R.connect(cfg)) }
      local b = ratelimit.new { store = R.ratelimit_store(R.connect(cfg)) }
      -- each slot after the one the other store's process took (checked_ask: the rule at the time of the
      -- ask, as fast as this machine asks): one schedule, never two
      local last_tat
      for i = 1, 5 do
        local _, committed, t = checked_ask("shared", last_tat, 100000,
          function() return (i % 2 == 1 and a or b):reserve("shared", 10) end)
        assert.is_true(committed)
        last_tat = t
      end
    end)

    it("hands back the earliest free slot within 0.75 s whatever the asker's horizon: one round trip, not a refusal",
      function()
        -- Two processes asking with a horizon of 0.1 s (a slot at 10/s each,
        -- the schedule already ahead of both): every slot up to 0.75 s ahead
        -- is committed to whoever asks, spaced 1/rate; past it, nothing is.
        seed(check, "t:", "back")
        local a = ratelimit.new { store = R.ratelimit_store(R.connect(cfg)) }
        local b = ratelimit.new { store = R.ratelimit_store(R.connect(cfg)) }
        -- (asked until one is refused, each checked against the rule at the
        -- server's time of the ask, checked_ask: at least 8 fit, more when the
        -- asks are slow, as under valgrind on a busy machine, up to 2,000: the
        -- rule is asserted, not the machine's speed)
        local last_tat, last_delay, n, d, committed, since = nil, -1, 0, nil, nil, nil
        local beyond = 0 -- (slots committed past the asker's horizon of 0.1 s)
        for i = 1, 2000 do
          local t
          d, committed, t, since = checked_ask("back", last_tat, 100000,
            function() return (i % 2 == 1 and a or b):reserve("back", 10, 1, 0.1) end, since)
          if not committed then break end
          n = i
          assert.is_true(d <= 0.75, "delay " .. d)
          if d > 0.1 then beyond = beyond + 1 end
          last_tat, last_delay = t, d
        end
        assert.is_true(n >= 8, n .. " committed")
        assert.is_true(beyond > 0, "no slot committed past the asker's horizon")
        assert.is_true(last_delay > 0.65, "delay " .. last_delay)
        -- the refused one: past the store's horizon, one interval after the last
        assert.is_false(committed)
        assert.is_true(d > 0.75 and d <= 0.85, "delay " .. d)
        -- and 0 still means "only if free now"
        assert.is_false((b:try("back", 10)))
        assert.equal(last_tat, tat("back"))
      end)

    it("a budget Redis has never seen waits one window (it cannot be told from a lost one), saying nothing", function()
      local logs = {}
      local store = R.ratelimit_store(cfg, { log = function(m) logs[#logs + 1] = m end })
      local rl = ratelimit.new { store = store }
      local pause = store:loss_pause(10)
      -- (one window, or retry_ms + timeout_ms + the fallback's horizon when longer: 0.5 + 1 + 0.05 here; and 0.05)
      assert.equal(1.6, pause)
      local t0 = core.monotonic()
      local d, committed = rl:reserve("new", 10)
      local spent = core.monotonic() - t0 -- (the pause runs from the ask: less what the ask took)
      assert.is_false(committed)
      assert.is_true(d > pause - spent - 0.01 and d <= pause, "delay " .. d .. " after " .. spent .. " s of asking")
      assert.equal("missing", check:command("HGET", hash("new"), "why"))
      assert.same({}, logs)
      -- a second process sees the same young budget: the same pause, no second reset
      local born = check:command("HGET", hash("new"), "born")
      local d2 = ratelimit.new { store = R.ratelimit_store(R.connect(cfg)) }:reserve("new", 10)
      spent = core.monotonic() - t0 -- (the same pause, less all the time since the first ask)
      assert.is_true(d2 > pause - spent - 0.01 and d2 <= d, "delay " .. d2 .. " after " .. spent .. " s")
      assert.equal(born, check:command("HGET", hash("new"), "born"))
    end)

    -- Each way a store can forget: the next reservation waits LOSS_PAUSE,
    -- and a process that knew the budget says so once, with the reason.
    local function forgets(what, reason, damage)
      it("treats " .. what .. " as lost state: waits the loss pause, says so once", function()
        seed(check, "t:", "lose")
        local logs = {}
        local store = R.ratelimit_store(cfg, { log = function(m) logs[#logs + 1] = m end })
        local rl = ratelimit.new { store = store }
        local pause = store:loss_pause(10)
        assert.equal(0, rl:reserve("lose", 10))
        damage()
        local d, committed = rl:reserve("lose", 10)
        assert.is_false(committed)
        assert.is_true(d > pause - 0.05 and d <= pause, "delay " .. d)
        assert.equal(1, #logs)
        assert.equal("streamctl: Redis at 127.0.0.1:" .. srv.port .. " lost the shared rate-limit schedule of lose: "
          .. reason .. "; nothing is sent on it for 1.6 s (the last second may have held a full cap), then it "
          .. "starts afresh", logs[1])
        rl:reserve("lose", 10)
        assert.equal(1, #logs)
      end)
    end
    forgets("a FLUSHALL", "its key is gone (FLUSHALL, eviction, or a Redis restarted without its data)", function()
      check:command("FLUSHALL")
    end)
    forgets("a hash written by another Redis run", "Redis restarted or failed over (a new run id): its data may "
      .. "be older than the last second", function() check:command("HSET", hash("lose"), "run", "0123abcd") end)
    forgets("a clock that went back", "Redis' clock went back", function()
      check:command("HSET", hash("lose"), "ts", string.format("%.0f", server_us(check) + 5e6))
    end)
    forgets("a schedule an hour ahead (never slept through)", "it held a schedule further ahead than any process "
      .. "reserves (a clock that stepped back, a stale replica, a key written by hand)", function()
      check:command("HSET", hash("lose"), "tat:", string.format("%.0f", server_us(check) + 3600e6))
    end)

    it("treats a TIME that ran ahead of this machine's clock as lost state (a step forward, a failover)", function()
      seed(check, "t:", "jump")
      local logs, clock = {}, checks.fake_clock(10)
      local rl = ratelimit.new { store = R.ratelimit_store(cfg, { log = function(m) logs[#logs + 1] = m end,
        monotonic = clock.now }) }
      assert.equal(0, rl:reserve("jump", 10))
      clock.t = clock.t + 0.2
      assert.is_true(select(2, rl:reserve("jump", 10))) -- Redis and this clock agree (this one even ran ahead)
      socket.sleep(0.7)                        -- Redis' clock runs 0.7 s, this one stands still
      rl:reserve("jump", 10)                   -- seen here ...
      assert.same({}, logs)
      local d, committed = rl:reserve("jump", 10) -- ... and the schedule starts afresh
      assert.is_false(committed)
      assert.is_true(d > R.LOSS_PAUSE - 0.05, "delay " .. d)
      assert.equal(1, #logs)
      assert.truthy(logs[1]:find("Redis' clock jumped ahead of this machine's", 1, true), logs[1])
      assert.equal("jumped", check:command("HGET", hash("jump"), "why"))
    end)

    it("a process that knew the budget says so when another one found the loss", function()
      seed(check, "t:", "seen")
      local logs = {}
      local a = ratelimit.new { store = R.ratelimit_store(cfg, { log = function(m) logs[#logs + 1] = m end }) }
      local b = ratelimit.new { store = R.ratelimit_store(R.connect(cfg)) }
      a:reserve("seen", 10)
      check:command("FLUSHALL")
      b:reserve("seen", 10) -- b finds it (a first use, for b: silent)
      local d = a:reserve("seen", 10)
      assert.is_true(d > R.LOSS_PAUSE - 0.1, "delay " .. d)
      assert.equal(1, #logs)
      assert.truthy(logs[1]:find("lost the shared rate-limit schedule of seen: its key is gone", 1, true), logs[1])
    end)

    it("spaces the schedule at the largest margin a caller asked with in the last MARGIN_HOLD, then at its own",
      function()
        seed(check, "t:", "wide")
        -- (a store's first reservation has no Redis round trip measured yet: its margin goes as given)
        local a = ratelimit.new { store = R.ratelimit_store(cfg) }
        local b_store = R.ratelimit_store(R.connect(cfg))
        local b = ratelimit.new { store = b_store }
        local s0 = server_us(check) -- (the server's clock before and after the reservation: held 2 s from it)
        assert.equal(0, a:reserve("wide", 10 / 1.10, 1, nil, 0.10)) -- a noisy link: 10%
        local s1 = server_us(check)
        local t0 = tat("wide")
        assert.equal("100000", check:command("HGET", hash("wide"), "mg:")) -- (ppm of the cap's interval)
        local till = tonumber(check:command("HGET", hash("wide"), "mu:"))
        assert.is_true(till >= s0 + 2e6 and till <= s1 + 2e6, "held until " .. till .. ", asked " .. s0 .. ".." .. s1)
        -- a quiet one (1%) on the same budget is spaced at 10% while a's margin is held (after the schedule, or
        -- after the time of the ask when the machine was slower than the schedule: checked_ask)
        local _, _, t1 = checked_ask("wide", t0, 110000, function() return b:reserve("wide", 10 / 1.01, 1, nil, 0.01) end)
        checked_ask("wide", t1, 110000, function() return b:reserve("wide", 10 / 1.01, 1, nil, 0.01) end)
        assert.equal("100000", check:command("HGET", hash("wide"), "mg:")) -- (a smaller one never lowers it)
        -- once held past MARGIN_HOLD, the next caller's own (plus its longest Redis round trip, as its store
        -- measured it before the ask) spaces it. (That the hold lasts MARGIN_HOLD and no longer, with the
        -- round trips exact: spec/engine/11-store-time, in virtual time.)
        check:command("HSET", hash("wide"), "mu:", string.format("%.0f", server_us(check) - 1))
        local ppm, hi
        checked_ask("wide", tat("wide"), function()
          ppm = tonumber(check:command("HGET", hash("wide"), "mg:"))
          return math.ceil(100000 * (1e6 + ppm) / 1e6)
        end, function()
          hi = b_store.rtt.hi
          return b:reserve("wide", 10 / 1.01, 1, nil, 0.01)
        end)
        assert.equal(math.ceil(math.min(0.01 + hi, ratelimit.MARGIN_CEILING) * 1e6), ppm)
        -- a caller that carries no margin (the limiter without one) is spaced at the held one too
        local held = tonumber(check:command("HGET", hash("wide"), "mg:"))
        checked_ask("wide", tat("wide"), math.ceil(100000 * (1e6 + held) / 1e6),
          function() return ratelimit.new { store = R.ratelimit_store(R.connect(cfg)) }:reserve("wide", 10) end)
        assert.equal(held, tonumber(check:command("HGET", hash("wide"), "mg:")))
      end)

    it("takes a ZEGO call's 20 Sequences with its slot in one round trip, from the server's clock", function()
      seed(check, "t:", "zego:77")
      local conn = R.connect(cfg)
      local rls = R.ratelimit_store(conn)
      local seqs = R.sequence_store(conn, "zego:77:")
      local ids = {}
      for i = 1, 20 do ids[i] = "s" .. i end
      check:command("SET", "t:{zego:77}:seq:s7", "9000000000000") -- one stream ahead: the call follows it
      assert.equal("OK", check:command("CONFIG", "RESETSTAT"))
      local d, committed, _, v = rls:reserve_sequenced("zego:77:ResumeRTCStreams", 20, 1, 0.2, seqs, ids)
      local info = check:command("INFO", "commandstats")
      -- (the next two asks at once: the second slot spaced 0.5 s on (a rate of 2 for it), so the third finds
      -- it ahead unless over 0.5 s passed since the first, where a busy machine's 20 GETs between took
      -- more than the 0.1 s of a 20/s schedule)
      local _, _, _, v2 = rls:reserve_sequenced("zego:77:ResumeRTCStreams", 2, 1, 0.2, seqs, { "s1" })
      -- a slot beyond max_delay takes no Sequence either
      local _, c3, _, v3 = rls:reserve_sequenced("zego:77:ResumeRTCStreams", 2, 1, 0, seqs, { "s2" })
      assert.equal(0, d)
      assert.is_true(committed)
      assert.equal("9000000000001", v)
      assert.equal(1, tonumber(info:match("cmdstat_evalsha:calls=(%d+)")) or 0)
      assert.is_nil(info:match("cmdstat_eval:"))
      assert.equal("9000000000002", v2)
      assert.equal(v2, check:command("GET", "t:{zego:77}:seq:s1"))
      for i = 2, 20 do assert.equal(v, check:command("GET", "t:{zego:77}:seq:s" .. i)) end
      assert.is_false(c3)
      assert.is_nil(v3)
      -- a Sequence that cannot be right is reset to the server's time, and said
      -- (seen by another process, which has no value of its own for s3)
      local logs = {}
      local other = R.connect(cfg)
      local rls2 = R.ratelimit_store(other, { log = function(m) logs[#logs + 1] = m end })
      check:command("SET", "t:{zego:77}:seq:s3", "1e300")
      local _, _, _, v4 = rls2:reserve_sequenced("zego:77:ResumeRTCStreams", 1000, 1, 0.75,
        R.sequence_store(other, "zego:77:"), { "s3" })
      local server_ms = math.floor(server_us(check) / 1000)
      assert.is_true(tonumber(v4) <= server_ms and tonumber(v4) > server_ms - 1000, v4)
      assert.equal(1, #logs)
      assert.equal("streamctl: Redis at 127.0.0.1:" .. srv.port .. " held Sequence(s) that cannot be right (not an "
        .. "integer in 0..2^53-1), reset to the server's time: t:{zego:77}:seq:s3=1e300", logs[1])
    end)

    it("counts the server's error as an outage: fallback, one log line", function()
      assert.equal("OK", check:command("SET", hash("wrongtype"), "v"))
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

    it("falls back on the most processes it saw sharing the budget, when that is more than nodes", function()
      seed(check, "t:", "many")
      local one = assert(R.config { port = srv.port, password = PASSWORD, db = 3, prefix = "t:", nodes = 1 })
      local clock = checks.fake_clock(50)
      local stores = {}
      for i = 1, 3 do
        stores[i] = R.ratelimit_store(R.connect(one), { log = function() end, monotonic = clock.now })
        stores[i]:reserve("many", 100, 1, 0.5)
      end
      assert.equal(3, check:command("ZCARD", "t:{many}:procs"))
      assert.equal("OK", check:command("SET", hash("many"), "broken")) -- every call now fails
      clock.t = clock.t + 10
      local rl = ratelimit.new { store = stores[3] }
      assert.equal(0, rl:reserve("many", 3))
      -- 3 / 3 processes: 1 per second (1 s ahead: beyond the horizon, so not committed)
      assert.same({ 1, false, 1 }, { rl:reserve("many", 3) })
    end)
  end)

  describe("sequence_store", function()
    local function server_ms() return math.floor(server_us(check) / 1000) end

    it("hands out strictly increasing values from the server's clock, kept KEEP_MS", function()
      local store = R.sequence_store(cfg, "zego:1:")
      -- a machine clock an hour ahead moves nothing: the server's clock counts
      local gen = sequence.new { store = store, clock_ms = function() return server_ms() + 3600e3 end }
      local before = server_ms()
      local last = -1
      for _ = 1, 100 do
        local v = tonumber(gen:next_for { "s" })
        assert.is_true(v > last)
        last = v
      end
      assert.is_true(last >= before and last < server_ms() + 100, "last " .. last)
      assert.equal(string.format("%.0f", last), check:command("GET", "t:{zego:1}:seq:s"))
      local pttl = check:command("PTTL", "t:{zego:1}:seq:s")
      assert.is_true(pttl > sequence.KEEP_MS - 1000 and pttl <= sequence.KEEP_MS, "PTTL " .. pttl)
      assert.equal(last, store:get("s"))
      assert.is_nil(store:get("never"))
    end)

    it("takes a call's Sequence for all its streams in one round trip", function()
      local gen = sequence.new { store = R.sequence_store(cfg, "z:") }
      check:command("SET", "t:{z}:seq:b", "9000000000000")
      assert.equal("OK", check:command("CONFIG", "RESETSTAT"))
      assert.equal("9000000000001", gen:next_for { "a", "b", "c" })
      assert.equal(1, tonumber(check:command("INFO", "commandstats"):match("cmdstat_evalsha:calls=(%d+)")))
      assert.equal("9000000000001", check:command("GET", "t:{z}:seq:a"))
      assert.equal("9000000000001", check:command("GET", "t:{z}:seq:c"))
    end)

    it("is exact up to 2^53 - 1", function()
      local store = R.sequence_store(cfg, "big:")
      check:command("SET", "t:{big}:seq:s", "9007199254740988")
      assert.equal(2 ^ 53 - 3, store:advance("s", 0))
      assert.equal(2 ^ 53 - 2, store:advance("s", 0))
      assert.equal(2 ^ 53 - 1, store:advance("s", 5))
      assert.equal("9007199254740991", check:command("GET", "t:{big}:seq:s"))
    end)

    it("records a caller's own Sequence only above every stream's last one", function()
      local store = R.sequence_store(cfg, "own:")
      local gen = sequence.new { store = store }
      check:command("SET", "t:{own}:seq:b", "500")
      assert.same({ false, "b", 500 }, { gen:record({ "a", "b" }, 500) })
      assert.equal(0, check:command("EXISTS", "t:{own}:seq:a")) -- nothing written
      assert.is_true(gen:record({ "a", "b" }, 501))
      assert.equal("501", check:command("GET", "t:{own}:seq:a"))
      assert.same({ false, "a", 501 }, { gen:record({ "a" }, 501) }) -- (this process knows it already)
    end)

    it("two stores on two connections never hand out the same value", function()
      local gen1 = sequence.new { store = R.sequence_store(R.connect(cfg), "p:") }
      local gen2 = sequence.new { store = R.sequence_store(R.connect(cfg), "p:") }
      local last = -1
      for i = 1, 50 do
        local v = tonumber((i % 3 == 0 and gen2 or gen1):next_for { "s" })
        assert.is_true(v > last)
        last = v
      end
    end)

    it("lets keys expire", function()
      local keep = sequence.KEEP_MS
      sequence.KEEP_MS = 200 -- read when the store is made
      local ok, err = pcall(function()
        local store = R.sequence_store(cfg, "exp:")
        local v = store:advance("s", 10)
        assert.equal(string.format("%.0f", v), check:command("GET", "t:{exp}:seq:s"))
        socket.sleep(0.4) -- (real time: Redis expires the key by its own clock)
        assert.equal(0, check:command("EXISTS", "t:{exp}:seq:s"))
        assert.is_true(store:advance("s", 5) > v) -- this process's last value still counts
      end)
      sequence.KEEP_MS = keep
      assert(ok, err)
    end)

    it("prunes its own record of old streams", function()
      local store = R.sequence_store(cfg, "pr:")
      store:took({ "old" }, 100)
      store:took({ "new" }, 1000)
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
      local c = direct(down)
      seed(c, "d:", "k")
      assert.equal(0, rl:reserve("k", 8))
      last_seq = tonumber(seq:next_for { "s" })
      local ms = math.floor(server_us(c) / 1000)
      assert.is_true(last_seq <= ms and last_seq > ms - 1000, "Sequence " .. last_seq) -- the server's clock
      assert.equal(1, c:command("EXISTS", "d:{k}:rl"))
      assert.equal(string.format("%.0f", last_seq), c:command("GET", "d:{zego:1}:seq:s"))
      c:close()
      assert.same({}, logs)
    end)

    it("killed: falls back to rate / nodes in this process, logs once, never raises", function()
      down:kill()
      -- after Redis' schedule as its last answer showed it (one slot, 1/8 s
      -- ahead), then every 1/2 s; a slot beyond the horizon is not taken
      -- (a slot of its own committed only within FALLBACK_HORIZON: a local refusal costs nothing)
      assert.equal(0.05, R.FALLBACK_HORIZON)
      assert.same({ 0.625, false, 0.625 }, { rl:reserve("k", 8) })
      assert.same({ 0.625, false, 0.625 }, { rl:reserve("k", 8) })
      clock.t = clock.t + 0.125
      assert.same({ 0.5, false, 0.5 }, { rl:reserve("k", 8) })
      clock.t = clock.t + 0.5
      assert.same({ 0, true, 0.5 }, { rl:reserve("k", 8) }) -- (and the slot after it 1/2 s away)
      local ok, delay = rl:try("k", 8)
      assert.is_false(ok)
      assert.equal(0.5, delay)
      assert.is_true(rl:try("other", 8))
      assert.equal(1, #logs)
      assert.truthy(logs[1]:find("Redis at 127.0.0.1:" .. down.port .. " failed (", 1, true), logs[1])
      assert.truthy(logs[1]:find("rate limits fall back to rate / 4 (or the processes last seen, if more) in this "
        .. "process", 1, true), logs[1])
      assert.is_nil(logs[1]:find(PASSWORD, 1, true))
    end)

    it("killed: sequences keep increasing from this process's last value", function()
      now_ms = 1000 -- a clock far behind: the last value still counts
      for _ = 1, 5 do
        local v = tonumber(seq:next_for { "s" })
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
      seq:next_for { "s2" }
      assert.equal(1, #logs)
      assert.equal(1, #seq_logs)
    end)

    it("restarted empty: back to Redis after retry_ms, the loss said once and waited out, Sequences increasing",
      function()
      down:restart()
      rl:reserve("k", 8) -- still in the retry window: local
      local c = direct(down)
      assert.equal(0, c:command("EXISTS", "d:{k}:rl"))
      clock.t = clock.t + 1.01
      local d, committed = rl:reserve("k", 8)
      assert.is_false(committed)
      local pause = rl.store:loss_pause(8)
      assert.equal(1.6, pause) -- (retry_ms 1000 + timeout_ms 500 + 0.05, and 0.05)
      assert.is_true(d > pause - 0.05 and d <= pause, "delay " .. d)
      assert.equal("missing", c:command("HGET", "d:{k}:rl", "why"))
      assert.equal(3, #logs)
      assert.equal("streamctl: Redis at 127.0.0.1:" .. down.port
        .. " answers again; rate limits are shared through it again", logs[2])
      assert.truthy(logs[3]:find("lost the shared rate-limit schedule of k: its key is gone", 1, true), logs[3])

      local v = tonumber(seq:next_for { "s" }) -- Redis lost everything: still above this process's last value
      assert.is_true(v > last_seq)
      assert.equal(string.format("%.0f", v), c:command("GET", "d:{zego:1}:seq:s"))
      assert.equal(2, #seq_logs)
      assert.equal("streamctl: Redis at 127.0.0.1:" .. down.port
        .. " answers again; ZEGO Sequences are shared through it again", seq_logs[2])
      rl:reserve("k", 8)
      seq:next_for { "s" }
      assert.equal(3, #logs)
      assert.equal(2, #seq_logs)
      c:close()
    end)
  end)

  it("after Redis went quiet long ago, the fallback does not wait for a schedule long run out", function()
    local quiet_srv = helper.start {}
    local logs, clock = {}, checks.fake_clock(1000)
    local rl = ratelimit.new { store = R.ratelimit_store({ port = quiet_srv.port, timeout_ms = 500 }, {
      log = function(m) logs[#logs + 1] = m end, monotonic = clock.now }) }
    local c = direct(quiet_srv)
    seed(c, "streamctl:", "k")
    c:close()
    assert.equal(0, rl:reserve("k", 8))    -- Redis' schedule: 1/8 s ahead
    clock.t = clock.t + 100                  -- nothing for 100 s, then Redis is gone
    quiet_srv:kill()
    local d = rl:reserve("k", 8)
    quiet_srv:stop()
    assert.equal(0, d)
    assert.equal(1, #logs)
  end)

  it("a server that never answers: the fallback answers, Redis' timeout said once", function()
    -- (that it costs one timeout, then the fallback answers at once, Redis not asked again within
    -- retry_ms: spec/engine/11-store-time, in virtual time)
    local sock, port = helper.silent_server()
    local logs = {}
    local rl = ratelimit.new { store = R.ratelimit_store({ port = port, timeout_ms = 150 }, {
      log = function(m) logs[#logs + 1] = m end }) }
    assert.equal(0, rl:reserve("k", 100))
    for _ = 1, 20 do rl:reserve("k", 100) end
    sock:close()
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

describe("streamctl.store.redis: a budget's first use on a Redis that shows it lost nothing", function()
  -- (a server of its own: the others are flushed before each test, and a
  -- flush is what this proof must see)
  local srv, check, cfg
  local function hash(tag) return "n:{" .. tag .. "}:rl" end

  lazy_setup(function()
    srv = helper.start()
    check = direct(srv)
    cfg = assert(R.config { port = srv.port, prefix = "n:", timeout_ms = 1000 })
    -- up longer than the loss pause and a second (uptime counts whole seconds): a bounded wait
    local deadline = socket.gettime() + 10
    while tonumber(check:command("INFO", "server"):match("uptime_in_seconds:(%d+)")) < 3 do
      assert(socket.gettime() < deadline, "redis-server's uptime did not reach 3 s")
      socket.sleep(0.1)
    end
  end)

  lazy_teardown(function()
    if check then check:close() end
    if srv then srv:stop() end
  end)

  it("is not paused; a process that knew a budget whose key is gone waits; after a flush every new one waits",
    function()
      local logs = {}
      local store = R.ratelimit_store(cfg, { log = function(m) logs[#logs + 1] = m end })
      local rl = ratelimit.new { store = store }
      -- never seen, nothing lost: at once, and said nowhere
      local d0, c0 = rl:reserve("first", 10)
      assert.same({ 0, true }, { d0, c0 })
      assert.equal("new", check:command("HGET", hash("first"), "why"))
      assert.same({}, logs)
      -- its key deleted by hand: this process knew it, so it cannot be new
      check:command("DEL", hash("first"))
      local d, committed = rl:reserve("first", 10)
      assert.is_false(committed)
      assert.is_true(d > store:loss_pause(10) - 0.05, "delay " .. d)
      assert.equal("missing", check:command("HGET", hash("first"), "why"))
      assert.equal(1, #logs)
      -- a FLUSHDB anywhere (another db here): from then on a missing budget waits the pause
      local other = direct(srv, 5)
      other:command("FLUSHDB")
      other:close()
      local rl2 = ratelimit.new { store = R.ratelimit_store(R.connect(cfg)) }
      d, committed = rl2:reserve("second", 10)
      assert.is_false(committed)
      assert.is_true(d > store:loss_pause(10) - 0.05, "delay " .. d)
      assert.equal("missing", check:command("HGET", hash("second"), "why"))
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
local ratelimit = require "streamctl.engine.ratelimit"
local sequence = require "streamctl.engine.sequence"

local M = {}
local conn = R.connect { port = tonumber(os.getenv("REDIS_PORT")), password = os.getenv("REDIS_PASSWORD"),
                         db = 3, prefix = "ngx:", timeout_ms = 1000 }
local logs = {}
local function log(m) logs[#logs + 1] = m end
local rl = ratelimit.new { store = R.ratelimit_store(conn, { log = log }) }
local seq = sequence.new { store = R.sequence_store(conn, "z:", { log = log }), clock_ms = function() return 1000 end }

function M.run()
  local out = { delays = {}, seqs = {}, before = {}, after = {} }
  for i = 1, 3 do
    ngx.update_time()
    out.before[i] = ngx.now()
    out.delays[i] = rl:reserve("k", 10)
    ngx.update_time()
    out.after[i] = ngx.now()
  end
  for i = 1, 3 do out.seqs[i] = seq:next_for { "s" } end
  out.logs = logs
  ngx.say(cjson.encode(out))
end

function M.set_phase()
  local res, e = conn:eval(R.script("return 1"), {}, {})
  return tostring(res) .. "|" .. tostring(e.reason) .. "|" .. tostring(e.message)
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

  -- Sequences strictly increasing, from the server's clock.
  local function increasing(seqs, after)
    for i = 1, #seqs do
      local v = tonumber(seqs[i])
      assert.is_true(v > after, seqs[i])
      after = v
    end
    return after
  end

  it("reserves and sequences through a pooled, authenticated connection on its db", function()
    local t = check:command("TIME")
    local ms = math.floor((tonumber(t[1]) * 1e6 + tonumber(t[2])) / 1000)
    assert.equal(3, check:command("HSET", "ngx:{k}:rl", "born", string.format("%.0f", ms * 1000 - 10e6),
      "run", check:command("INFO", "server"):match("run_id:(%w+)"), "why", "missing"))
    local status, body = web:get("/run")
    assert.equal(200, status, body)
    local first = cjson.decode(body)
    assert.equal(0, first.delays[1])
    -- the slots (rate 10): each one's time, its call's plus its delay, lies between (before + delay) and
    -- (after + delay), whenever a busy machine made the call (nginx's clock in milliseconds: 2 ms either
    -- way). Never nearer the one before than 0.1 s; and a call that was made to wait waited no longer.
    for i = 2, 3 do
      local lo = first.before[i] + first.delays[i] - (first.after[i - 1] + first.delays[i - 1])
      local hi = first.after[i] + first.delays[i] - (first.before[i - 1] + first.delays[i - 1])
      local what = string.format("slot %d %.4f..%.4f s after the one before (delays %s)", i, lo, hi,
        table.concat(first.delays, ", "))
      assert.is_true(hi + 0.002 >= 0.1, what)
      if first.delays[i] > 0 then assert.is_true(lo - 0.002 <= 0.1, what) end
    end
    local last = increasing(first.seqs, ms - 1)
    assert.same({}, first.logs)
    assert.equal(1, check:command("EXISTS", "ngx:{k}:rl"))
    assert.equal(string.format("%.0f", last), check:command("GET", "ngx:{z}:seq:s"))

    local function connections()
      return tonumber(check:command("INFO", "stats"):match("total_connections_received:(%d+)"))
    end
    local before = connections()
    status, body = web:get("/run") -- the pooled connection: no new connection, AUTH or SELECT
    assert.equal(200, status, body)
    local second = cjson.decode(body)
    increasing(second.seqs, last)
    assert.equal(before, connections())
    assert.same({}, second.logs)
  end)

  it("in a phase without cosockets answers 'phase' without blocking or logging", function()
    local status, body = web:get("/set")
    assert.equal(200, status)
    assert.equal("nil|phase|streamctl cannot reach Redis from nginx's 'set' phase: it has no cosockets and must "
      .. "not block; reach Redis from ngx.timer.at(0, function() ... end) instead (or from a rewrite, access or "
      .. "content handler)", body)
    assert.is_nil(web:error_log():find("streamctl: Redis", 1, true))
  end)
end)
