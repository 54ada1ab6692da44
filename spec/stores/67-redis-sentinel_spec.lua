-- streamctl.store.redisconn through Redis Sentinel (streamctl.store.redissentinel):
-- redis+sentinel:// URLs and the sentinels option read and refused by their
-- rules; the master asked of the Sentinels, its ROLE checked, followed across
-- SENTINEL FAILOVER and across a master killed; READONLY from a node demoted
-- behind a kept connection; the Sentinels' own password. Against real
-- redis-server processes in sentinel mode (three Sentinels, a master, a
-- replica: spec/helpers/redis.lua start_sentinel) and, for the answers a
-- real Sentinel gives only in a race, a fake one (spec/helpers/fake_sentinel.lua),
-- all on 127.0.0.1.

local R = require "streamctl.store.redisconn"
local hiredis = require "streamctl.redis"
local helper = require "spec.helpers.redis"
local fake_sentinel = require "spec.helpers.fake_sentinel"
local process = require "spec.helpers.process"
local socket = require "socket"

local PASSWORD, SENTINEL_PASSWORD = "data-s3cret", "sentinel-s3cret"
-- (a call's timeout, not under test here: under valgrind and ASan this process runs slower)
local TIMEOUT = "&timeout_ms=" .. 2000 * require("spec.helpers.process").slowdown()
local SET_GET = R.script("redis.call('SET', KEYS[1], ARGV[1]) return redis.call('GET', KEYS[1])")

-- A direct connection (the C module) to look at a node.
local function direct(port, password)
  local c = assert(hiredis.connect("127.0.0.1", port, 5000))
  if password then assert(c:command("AUTH", password)) end
  return c
end

-- How many scripts a node ran (spec/helpers/redis.lua).
local function scripts_run(srv) return srv:scripts_run() end

describe("streamctl.store.redisconn config through Sentinel", function()
  it("reads a redis+sentinel:// URL: the Sentinels (26379 by default), the master's name, both logins", function()
    local c = assert(R.config("redis+sentinel://alice:pw1@10.0.0.1,10.0.0.2:26380,[::1]/cache-1.a/3"
      .. "?sentinel_user=sen&sentinel_password=p%40ss&sentinel_check_ms=250&prefix=x:"))
    assert.same({ { host = "10.0.0.1", port = 26379 }, { host = "10.0.0.2", port = 26380 },
                  { host = "::1", port = 26379 } }, c.sentinels)
    assert.same({ "cache-1.a", 3, "alice", "pw1", "sen", "p@ss", 250, "x:" },
      { c.master_name, c.db, c.user, c.password, c.sentinel_user, c.sentinel_password, c.sentinel_check_ms, c.prefix })
    assert.is_nil(c.host)
    assert.is_nil(c.port)
    assert.equal("redis+sentinel://alice:<redacted>@10.0.0.1:26379,10.0.0.2:26380,[::1]:26379/cache-1.a/3 "
      .. "(prefix 'x:')", tostring(c))
  end)

  it("reads the same as options, sentinel_check_ms 1000 by default", function()
    local c = assert(R.config { sentinels = { "10.0.0.1", { host = "10.0.0.2", port = 26380 } },
                                master_name = "m", password = "pw" })
    assert.same({ { host = "10.0.0.1", port = 26379 }, { host = "10.0.0.2", port = 26380 } }, c.sentinels)
    assert.equal(1000, c.sentinel_check_ms)
    assert.equal("redis+sentinel://:<redacted>@10.0.0.1:26379,10.0.0.2:26380/m/0 (prefix 'streamctl:')", tostring(c))
    assert.is_nil(assert(R.config { port = 7000 }).sentinel_check_ms)
  end)

  local BAD = {
    { { sentinels = { "h" } }, "option 'redis.sentinels' needs 'redis.master_name' (the name the Sentinels "
      .. "monitor the master by)" },
    { { master_name = "m" }, "option 'redis.master_name' needs 'redis.sentinels' (the Sentinels to ask)" },
    { { sentinels = { "h" }, master_name = "m", host = "h2" },
      "option 'redis.host' goes with no 'redis.sentinels': the Sentinels name the master's address" },
    { { sentinels = { "h" }, master_name = "m", port = 6379 },
      "option 'redis.port' goes with no 'redis.sentinels': the Sentinels name the master's address" },
    { { sentinels = {}, master_name = "m" }, "option 'redis.sentinels' must name at least one Sentinel" },
    { { sentinels = "h:1", master_name = "m" }, "option 'redis.sentinels' must be an array of 'host:port' "
      .. "(the Sentinels)" },
    { { sentinels = { "h", x = 1 }, master_name = "m" }, "option 'redis.sentinels' must be an array of "
      .. "'host:port' (the Sentinels), without other keys" },
    { { sentinels = { "h", "h2:99999" }, master_name = "m" },
      "option 'redis.sentinels[2]' has a port that is not an integer in 1..65535" },
    { { sentinels = { { host = "h", port = 1.5 } }, master_name = "m" },
      "option 'redis.sentinels[1]' has a port that is not an integer in 1..65535" },
    { { sentinels = { { host = "h", pass = "x" } }, master_name = "m" },
      "option 'redis.sentinels[1]' has an unknown field 'pass' (host, port)" },
    { { sentinels = { "bad host" }, master_name = "m" },
      "option 'redis.sentinels[1]' has a host that must be a host name or an IP address" },
    { { sentinels = { "H:26379", "h" }, master_name = "m" },
      "option 'redis.sentinels[2]' names h:26379 again (each Sentinel once)" },
    { { sentinels = { "h" }, master_name = "a b" },
      "option 'redis.master_name' must hold only letters, digits, '.', '-' and '_' (Sentinel's rule)" },
    { { sentinels = { "h" }, master_name = "m", sentinel_user = "u" }, "option 'redis.sentinel_user' needs "
      .. "'redis.sentinel_password' (Sentinel's AUTH takes a user name with its password)" },
    { { sentinel_password = "p" }, "option 'redis.sentinel_password' goes with 'redis.sentinels' only" },
    { { sentinel_check_ms = 100 }, "option 'redis.sentinel_check_ms' goes with 'redis.sentinels' only" },
    { { sentinels = { "h" }, master_name = "m", sentinel_check_ms = 5 },
      "option 'redis.sentinel_check_ms' must be at least 10" },
  }

  local BAD_URLS = {
    { "redis+sentinel://h1,h2", "redis URL: the master's name is missing (redis+sentinel://host:port,.../NAME)" },
    { "redis+sentinel://h1,,h2/m", "redis URL: Sentinel 2 of the list is empty (host:port,host:port,...)" },
    { "redis+sentinel:///m", "redis URL: Sentinel 1 of the list is empty (host:port,host:port,...)" },
    { "redis+sentinel://h1:0/m", "redis URL: Sentinel 1 of the list has a port that is not an integer in 1..65535" },
    { "redis+sentinel://h1,h1:26379/m", "redis URL: Sentinel 2 of the list names h1:26379 again (each Sentinel once)" },
    { "redis+sentinel://h1/m%20y", "redis URL: the master's name must hold only letters, digits, '.', '-' and '_' "
      .. "(Sentinel's rule)" },
    { "redis+sentinel://h1/m/x", "redis URL: the database must be an integer in 0..2147483647" },
    { "redis+sentinel://h1/m?sentinel_check_ms=1", "redis URL: sentinel_check_ms must be an integer in 10..86400000" },
    { "redis+sentinel://h1/m?sentinel_password=a%01b", "redis URL: sentinel_password must be printable ASCII" },
    { "redis+sentinel://h1/m?host=x", "redis URL: unknown parameter 'host' (the parameters are nodes, prefix, "
      .. "timeout_ms, sentinel_user, sentinel_password, sentinel_check_ms)" },
    { "redis://h1/0?sentinel_password=x", "redis URL: unknown parameter 'sentinel_password' (the parameters are "
      .. "nodes, prefix, timeout_ms)" },
    { "rediss+sentinel://h1/m?tls_server_name=a%20b", "redis URL: tls_server_name must be a host name or an IP "
      .. "address" },
    { "sentinel://h1/m", "redis URL must start with redis://, rediss:// (TLS), redis+sentinel:// or "
      .. "rediss+sentinel://" },
  }
  it("refuses each of " .. #BAD .. " bad options and " .. #BAD_URLS .. " bad URLs, naming the field and the rule",
    function()
      for _, case in ipairs(BAD) do assert.same({ nil, case[2] }, { R.config(case[1]) }) end
      for _, case in ipairs(BAD_URLS) do assert.same({ nil, case[2] }, { R.config(case[1]) }, case[1]) end
    end)
end)

describe("streamctl.store.redisconn through a fake Sentinel", function()
  local fake, nodes = nil, {}
  lazy_setup(function()
    fake = fake_sentinel.start { password = SENTINEL_PASSWORD }
  end)
  lazy_teardown(function()
    if fake then fake:stop() end
    for _, n in ipairs(nodes) do n:stop() end
  end)
  local function url(check_ms)
    return "redis+sentinel://127.0.0.1:" .. fake.port .. "/mymaster?sentinel_password=" .. SENTINEL_PASSWORD
      .. "&sentinel_check_ms=" .. (check_ms or 86400000) .. TIMEOUT
  end

  it("logs in to the Sentinel with its own password; a wrong one is an error that never shows it", function()
    local srv = helper.start {}
    nodes[#nodes + 1] = srv
    fake:answer("127.0.0.1 " .. srv.port)
    local conn = assert(R.connect(url()))
    assert.equal("v", conn:eval(SET_GET, { "k" }, { "v" }))
    local asked = fake:asked()
    assert.same({ "AUTH", "SENTINEL" }, { asked[1], asked[2] })
    assert.equal("v", srv:cli("GET", "k"))
    assert.equal("127.0.0.1:" .. srv.port .. " (master 'mymaster' by Sentinel)", conn:address())
    conn:close()
    conn = assert(R.connect((url():gsub("sentinel_password=[^&]*", "sentinel_password=wrong-" .. SENTINEL_PASSWORD))))
    local res, e = conn:eval(SET_GET, { "k" }, { "v" })
    assert.is_nil(res)
    assert.equal("no Sentinel named the master 'mymaster' (127.0.0.1:" .. fake.port
      .. " Sentinel AUTH: WRONGPASS invalid password)", e.message)
    assert.same({ "RedisError", "store", "io" }, { e.code, e.kind, e.reason })
    assert.equal("master 'mymaster' by Sentinel 127.0.0.1:" .. fake.port, conn:address())
  end)

  it("logs in to the master as an ACL user and to the Sentinel as its own, each apart", function()
    local srv = helper.start { password = PASSWORD }
    nodes[#nodes + 1] = srv
    assert.equal("OK", srv:cli("ACL", "SETUSER", "alice", "on", ">alice-" .. PASSWORD, "~*", "&*", "+@all"))
    fake:answer("127.0.0.1 " .. srv.port)
    local before = #fake:asked()
    local conn = assert(R.connect("redis+sentinel://alice:alice-" .. PASSWORD .. "@127.0.0.1:" .. fake.port
      .. "/mymaster/2?sentinel_user=watcher&sentinel_password=" .. SENTINEL_PASSWORD .. TIMEOUT))
    assert.equal("v", conn:eval(SET_GET, { "acl" }, { "v" }))
    assert.same({ "AUTH", "SENTINEL" }, { table.unpack(fake:asked(), before + 1) })
    local seen = false -- (CLIENT LIST: one line per client, "... db=2 ... user=alice ...")
    for line in srv:cli("CLIENT", "LIST"):gmatch("[^\n]+") do
      if line:find(" db=2 ", 1, true) and line:find(" user=alice ", 1, true) then seen = true end
    end
    assert.is_true(seen)
    conn:close()
  end)

  it("refuses a node the Sentinel names that says it is a replica, runs nothing there, asks again next call",
    function()
      local master = helper.start {}
      local replica = helper.start { args = { "--replicaof", "127.0.0.1", tostring(master.port) } }
      nodes[#nodes + 1], nodes[#nodes + 2] = master, replica
      fake:answer("127.0.0.1 " .. replica.port)
      local conn = assert(R.connect(url()))
      local before = scripts_run(replica)
      local res, e = conn:eval(SET_GET, { "k2" }, { "v" })
      assert.is_nil(res)
      assert.equal("127.0.0.1:" .. replica.port .. ", which Sentinel named the master, says it is a slave "
        .. "(a failover under way?)", e.message)
      assert.same({ "RedisError", "store", "io" }, { e.code, e.kind, e.reason })
      assert.equal(before, scripts_run(replica))
      fake:answer("127.0.0.1 " .. master.port)
      assert.equal("v", conn:eval(SET_GET, { "k2" }, { "v" }))
      assert.equal("v", master:cli("GET", "k2"))
      conn:close()
    end)

  it("on READONLY from a node demoted behind a kept connection, asks again and sends the call once more", function()
    local a, b = helper.start {}, helper.start {}
    nodes[#nodes + 1], nodes[#nodes + 2] = a, b
    fake:answer("127.0.0.1 " .. a.port)
    local conn = assert(R.connect(url()))
    assert.equal("1", conn:eval(SET_GET, { "n" }, { "1" }))
    -- a demoted by hand: no Sentinel, so nobody kills its clients; the kept connection meets READONLY
    assert.equal("OK", a:cli("REPLICAOF", "127.0.0.1", b.port))
    fake:answer("127.0.0.1 " .. b.port)
    local sentinel_asked = #fake:asked()
    assert.equal("2", conn:eval(SET_GET, { "n" }, { "2" }))
    assert.equal("2", b:cli("GET", "n"))
    assert.equal(sentinel_asked + 1, #fake:asked()) -- (asked once more: its connection kept)
    assert.equal("127.0.0.1:" .. b.port .. " (master 'mymaster' by Sentinel)", conn:address())
    conn:close()
  end)

  it("asks the Sentinels again after sentinel_check_ms, and moves when they name another master", function()
    local a, b = helper.start {}, helper.start {}
    nodes[#nodes + 1], nodes[#nodes + 2] = a, b
    fake:answer("127.0.0.1 " .. a.port)
    local conn = assert(R.connect(url(200)))
    local asked = #fake:asked()
    -- (not asked again within the interval, asked again after it: spec/engine/11-store-time, on a
    -- virtual clock; here the Sentinel's answers are followed)
    assert.equal("a", conn:eval(SET_GET, { "w" }, { "a" }))
    assert.same({ "AUTH", "SENTINEL" }, { table.unpack(fake:asked(), asked + 1) })
    assert.equal("a", conn:eval(SET_GET, { "w" }, { "a" }))
    fake:answer("127.0.0.1 " .. b.port)
    socket.sleep(0.25) -- (past the interval)
    local before = #fake:asked()
    assert.equal("b", conn:eval(SET_GET, { "w" }, { "b" }))
    assert.same({ "SENTINEL" }, { table.unpack(fake:asked(), before + 1) }) -- (its connection kept)
    assert.equal("b", b:cli("GET", "w"))
    assert.equal("a", a:cli("GET", "w"))
    conn:close()
  end)

  it("Sentinels that name no master keep the known one serving, asked again after sentinel_check_ms", function()
    local a = helper.start {}
    nodes[#nodes + 1] = a
    fake:answer("127.0.0.1 " .. a.port)
    local conn = assert(R.connect(url(200)))
    assert.equal("1", conn:eval(SET_GET, { "q" }, { "1" }))
    fake:answer("I am no address")
    socket.sleep(0.25) -- (past the interval)
    -- calls for 0.3 s: each served by the master known, the Sentinel asked again (once an interval at
    -- most: spec/engine/11-store-time, on a virtual clock)
    local before, t, n = #fake:asked(), socket.gettime(), 1
    repeat
      n = n + 1
      assert.equal(tostring(n), conn:eval(SET_GET, { "q" }, { tostring(n) }))
    until socket.gettime() - t >= 0.3
    local asked = #fake:asked() - before
    assert.is_true(asked >= 1, asked .. " questions in " .. n - 1 .. " calls")
    assert.equal(tostring(n), a:cli("GET", "q"))
    conn:close()
  end)

  it("a master it does not know, an answer that is no address, none reachable: an io error naming each", function()
    local gone = process.free_port()
    fake:answer("nil")
    local conn = assert(R.connect("redis+sentinel://:" .. PASSWORD .. "@127.0.0.1:" .. gone .. ",127.0.0.1:"
      .. fake.port .. "/mymaster?sentinel_password=" .. SENTINEL_PASSWORD .. TIMEOUT))
    local res, e = conn:eval(SET_GET, { "k" }, { "v" })
    assert.is_nil(res)
    assert.equal("no Sentinel named the master 'mymaster' (127.0.0.1:" .. gone .. " connect: Connection refused; "
      .. "127.0.0.1:" .. fake.port .. " does not know that master)", e.message)
    assert.same({ "RedisError", "store", "io" }, { e.code, e.kind, e.reason })
    fake:answer("I am no address")
    res, e = conn:eval(SET_GET, { "k" }, { "v" })
    assert.is_nil(res)
    assert.equal("no Sentinel named the master 'mymaster' (127.0.0.1:" .. gone .. " connect: Connection refused; "
      .. "127.0.0.1:" .. fake.port .. " answered no address)", e.message)
    assert.is_nil(e.message:find(PASSWORD, 1, true))
    assert.is_nil(e.message:find(SENTINEL_PASSWORD, 1, true))
  end)
end)

describe("streamctl.store.redisconn with Redis Sentinel", function()
  local set
  lazy_setup(function()
    set = helper.start_sentinel { password = PASSWORD, sentinel_password = SENTINEL_PASSWORD }
  end)
  lazy_teardown(function()
    if set then set:stop() end
  end)

  it("writes to the master the Sentinels name, after checking its ROLE", function()
    local conn = assert(R.connect(set.url .. "&sentinel_check_ms=100" .. TIMEOUT))
    assert.equal("v", conn:eval(SET_GET, { "k" }, { "v" }))
    local check = direct(set.master.port, PASSWORD)
    assert.equal("v", check:command("GET", "k"))
    check:close()
    assert.equal("127.0.0.1:" .. set.master.port .. " (master 'mymaster' by Sentinel)", conn:address())
    conn:close()
  end)

  it("follows SENTINEL FAILOVER at its next check: nothing more runs on the old master", function()
    local conn = assert(R.connect(set.url .. "&sentinel_check_ms=100" .. TIMEOUT))
    assert.equal("1", conn:eval(SET_GET, { "f" }, { "1" }))
    local old = set:failover("command")
    -- (the next call after sentinel_check_ms asks the Sentinels; on a loaded machine an ask can time
    -- out, and the master known goes on serving until the next: bounded, never a clock of the spec's.
    -- Under such load the Sentinels (down after 1 s) may also fail over again: the client follows
    -- whichever they name now, and their logs say how often they switched)
    local function named() return "127.0.0.1:" .. set:master_port(1) .. " (master 'mymaster' by Sentinel)" end
    local function switches()
      local out = {}
      for i, s in ipairs(set.sentinels) do
        for line in s:log():gmatch("[^\n]*%+switch%-master[^\n]*") do out[#out + 1] = i .. ": " .. line end
      end
      return table.concat(out, "\n")
    end
    for _ = 1, 100 do
      socket.sleep(0.15)
      assert.equal("1", conn:eval(SET_GET, { "f" }, { "1" }))
      if conn:address() == named() then break end
    end
    assert.equal(named(), conn:address(), "the Sentinels' switches:\n" .. switches())
    -- (the master they name now, and the node that is not it: the old master, unless they switched back)
    local master = assert(set:server_on(set:master_port(1)))
    local other = master == old and set.master or old
    set.master, set.replicas[1] = master, other
    local ran = scripts_run(other)
    for i = 2, 5 do assert.equal(tostring(i), conn:eval(SET_GET, { "f" }, { tostring(i) })) end
    assert.equal(ran, scripts_run(other), "the Sentinels' switches:\n" .. switches())
    assert.equal("5", master:cli("GET", "f"))
    assert.equal(named(), conn:address())
    conn:close()
  end)

  it("after the master is killed, the first call goes to the one the Sentinels promoted", function()
    local conn = assert(R.connect(set.url .. "&sentinel_check_ms=86400000" .. TIMEOUT))
    assert.equal("1", conn:eval(SET_GET, { "g" }, { "1" }))
    local old = set:failover("kill")
    assert.equal("2", conn:eval(SET_GET, { "g" }, { "2" }))
    assert.equal("2", set.master:cli("GET", "g"))
    -- the old master back (a master of nothing until Sentinel makes it a replica, which can take it
    -- longer than a spec waits: a fresh clone's make check saw 30 s go by): nothing of ours runs there
    old:restart()
    local ran = scripts_run(old)
    assert.equal("3", conn:eval(SET_GET, { "g" }, { "3" }))
    assert.equal(ran, scripts_run(old))
    conn:close()
  end)
end)

describe("streamctl.store.redisconn with Redis Sentinel, inside nginx (cosockets)", function()
  local nginx = require "spec.helpers.nginx"
  local available, why_not = nginx.available()
  assert(available, why_not) -- `make test` installs nginx; a spec that cannot run fails

  local set, web
  lazy_setup(function()
    set = helper.start_sentinel { password = PASSWORD, sentinel_password = SENTINEL_PASSWORD }
    web = nginx.start_driver { driver = helper.SET_DRIVER, locations = { ["/set"] = "set" },
                               env = { URL_SENTINEL = set.url .. "&sentinel_check_ms=100&timeout_ms=2000" } }
  end)
  lazy_teardown(function()
    if web then web:stop() end
    if set then set:stop() end
  end)

  local function set_key(k, v) return helper.driver_set(web, "sentinel", k, v) end

  it("writes to the master the Sentinels name, and follows SENTINEL FAILOVER and a master killed", function()
    local out = set_key("n", "1")
    assert.same({ result = "1", err = "", address = "127.0.0.1:" .. set.master.port
      .. " (master 'mymaster' by Sentinel)" }, out)
    local old = set:failover("command")
    socket.sleep(0.15)
    local ran = scripts_run(old)
    out = set_key("n", "2")
    assert.same({ "2", "" }, { out.result, out.err })
    assert.equal("127.0.0.1:" .. set.master.port .. " (master 'mymaster' by Sentinel)", out.address)
    assert.equal(ran, scripts_run(old))
    assert.equal("2", set.master:cli("GET", "n"))
    set:failover("kill")
    out = set_key("n", "3")
    assert.same({ "3", "" }, { out.result, out.err })
    assert.equal("3", set.master:cli("GET", "n"))
    local log = web:error_log()
    assert.is_nil(log:find(PASSWORD, 1, true))
    assert.is_nil(log:find(SENTINEL_PASSWORD, 1, true))
  end)
end)
