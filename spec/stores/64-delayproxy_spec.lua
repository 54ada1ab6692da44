-- spec/helpers/delayproxy: a redis-server "5 ms away" (spec/helpers/redis.lua
-- behind the proxy, all on 127.0.0.1). A round trip costs the delay twice,
-- pipelined requests each pay it once (a latency, not a rate limit), big
-- values arrive whole, and the proxy ends by itself.

local redis = require "streamctl.redis"
local helper = require "spec.helpers.redis"
local delayproxy = require "spec.helpers.delayproxy"
local process = require "spec.helpers.process"
local socket = require "socket"

local DELAY_MS = 5
-- The round trips' counts and the pipeline's are timed through a proxy 100 ms away: beside a delay
-- that long, what this machine spends of its own on a round trip (about 25 ms under valgrind with
-- the machine busy, where 200 round trips 5 ms away took 7 s) is small, so their upper bounds hold
-- on a busy machine and still tell a latency from twice one, or from a rate limit.
local LONG_DELAY_MS = 100
local TIMEOUT = 5000 -- ms, for the commands that must not time out

-- Waits (up to `seconds`) for fn() to be true; true if it became so.
local function eventually(seconds, fn)
  return require("spec.helpers.checks").wait_until(fn, seconds) and true or false
end

-- Does something accept connections on 127.0.0.1:port?
local function listening(port)
  local tcp = socket.tcp()
  tcp:settimeout(1)
  local ok = tcp:connect("127.0.0.1", port)
  tcp:close()
  return ok ~= nil
end

describe("spec/helpers/delayproxy in front of redis-server", function()
  local srv, proxy, conn

  lazy_setup(function()
    srv = helper.start()
    proxy = delayproxy.start { target_port = srv.port, delay_ms = DELAY_MS }
  end)

  lazy_teardown(function()
    if proxy then proxy.stop() end
    if srv then srv:stop() end
  end)

  before_each(function()
    conn = assert(redis.connect("127.0.0.1", proxy.port, TIMEOUT))
  end)

  after_each(function()
    if conn then conn:close() end
  end)

  it("a PING round trip takes the delay both ways: at least 10 ms, under 40 ms median (a plain run)", function()
    local times = {}
    for i = 1, 20 do
      local t0 = socket.gettime()
      assert.equal("PONG", conn:command("PING"))
      times[i] = (socket.gettime() - t0) * 1000
    end
    table.sort(times)
    -- no round trip is faster than the delay both ways (a little slack for the clock's granularity)
    assert.is_true(times[1] >= 2 * DELAY_MS - 0.1, "fastest round trip " .. times[1] .. " ms")
    local median = (times[10] + times[11]) / 2
    -- (what is 40 ms here, a Nagle stall's 40 ms on top, is the plain runs' check: the proxy, a C
    -- program, runs the same under them, and this process's own time, many times longer under
    -- valgrind and ASan, is scaled by process.slowdown())
    local bound = 40 * process.slowdown()
    assert.is_true(median < bound, "median round trip " .. median .. " ms, over " .. bound)
  end)

  it("10 sequential PINGs 100 ms away take 10 round trips (2 s to 3 s)", function()
    local far = delayproxy.start { target_port = srv.port, delay_ms = LONG_DELAY_MS }
    local ok, err = pcall(function()
      local c = assert(redis.connect("127.0.0.1", far.port, TIMEOUT))
      local t0 = socket.gettime()
      for _ = 1, 10 do assert.equal("PONG", c:command("PING")) end
      local elapsed = socket.gettime() - t0
      c:close()
      -- each round trip the delay both ways (0.2 s), and at most 0.1 s of this machine's own: the delay
      -- taken twice each way would make them 0.4 s
      assert.is_true(elapsed >= 10 * 2 * LONG_DELAY_MS / 1000 - 0.01 and elapsed < 3,
        "10 round trips took " .. elapsed .. " s")
    end)
    far.stop()
    assert(ok, err)
  end)

  it("pipelined requests each see the delay once: 100 back to back come back in about one round trip", function()
    -- luasocket sends each PING at once (inline commands), then reads the 100 answers, through the
    -- proxy 100 ms away
    local far = delayproxy.start { target_port = srv.port, delay_ms = LONG_DELAY_MS }
    local tcp = socket.tcp()
    local ok, err = pcall(function()
      tcp:settimeout(TIMEOUT / 1000 * process.slowdown())
      assert(tcp:connect("127.0.0.1", far.port))
      tcp:setoption("tcp-nodelay", true)
      local t0 = socket.gettime()
      for _ = 1, 100 do assert(tcp:send("PING\r\n")) end
      for i = 1, 100 do assert.equal("+PONG", tcp:receive("*l"), "answer " .. i) end
      local elapsed = socket.gettime() - t0
      -- one round trip is 0.2 s; a rate limit (one request per delay) would make it 10 s or more:
      -- under 5 s leaves this process 4.8 s to send and read 100 PINGs (under valgrind on a busy
      -- machine it took 1 s)
      assert.is_true(elapsed >= 2 * LONG_DELAY_MS / 1000 - 0.001 and elapsed < 5,
        "100 pipelined PINGs took " .. elapsed .. " s")
    end)
    tcp:close()
    far.stop()
    assert(ok, err)
  end)

  it("big values (1 MiB SET and GET) arrive intact", function()
    local parts = {}
    for i = 0, 65535 do parts[#parts + 1] = string.format("%015x\n", i * 2654435761 % 4294967296) end
    local big = table.concat(parts) -- 1 MiB, no two lines alike: a reordering or a lost chunk shows
    assert.equal(1048576, #big)
    assert.equal("OK", conn:command("SET", "delayproxy:big", big))
    local got = conn:command("GET", "delayproxy:big")
    assert.equal(#big, #got)
    assert.is_true(got == big, "the value read back differs from the one written")
    assert.equal(1, conn:command("DEL", "delayproxy:big"))
  end)

  it("a connection closed by the server is closed on the client's side", function()
    local tcp = socket.tcp()
    tcp:settimeout(TIMEOUT / 1000)
    assert(tcp:connect("127.0.0.1", proxy.port))
    assert(tcp:send("PING\r\nQUIT\r\n"))
    assert.equal("+PONG", tcp:receive("*l"))
    assert.equal("+OK", tcp:receive("*l"))
    local line, err = tcp:receive("*l")
    tcp:close()
    assert.is_nil(line)
    assert.equal("closed", err)
  end)
end)

describe("spec/helpers/delayproxy ends with its spec, never by a clock", function()
  local srv

  lazy_setup(function()
    srv = helper.start()
  end)

  lazy_teardown(function()
    if srv then srv:stop() end
  end)

  it("when its parent dies", function()
    -- a shell starts it in the background and exits once the proxy has said its port
    local dir = process.temp_dir()
    local out, pidfile = dir .. "/port", dir .. "/pid"
    local script = "env -u LD_PRELOAD " .. process.quote(delayproxy.binary()) .. " 0 " .. srv.port .. " 5000 >"
      .. process.quote(out) .. " </dev/null & echo $! >" .. process.quote(pidfile)
      .. "; n=0; while [ ! -s " .. process.quote(out) .. " ] && [ $n -lt 100 ]; do sleep 0.05; n=$((n+1)); done"
    assert.is_true(process.run("sh -c " .. process.quote(script)))
    local pid = assert(tonumber(process.read_file(pidfile)), "no pid")
    local port = assert(tonumber(process.read_file(out)), "no port")
    local function gone()
      local stat = process.read_file("/proc/" .. pid .. "/stat")
      return not stat or stat:match("^%d+ %b() [ZX]") ~= nil
    end
    local ok = eventually(5, gone)
    if not ok then process.run("kill -9 " .. pid .. " 2>/dev/null") end
    process.run("rm -rf " .. process.quote(dir))
    assert.is_true(ok, "the proxy outlived its parent by 5 s")
    assert.is_false(listening(port))
  end)
end)
