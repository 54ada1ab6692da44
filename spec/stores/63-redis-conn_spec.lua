-- streamctl.store.redisconn: redis:// URLs with parameters and ACL users,
-- unix sockets refused (TLS: spec/stores/70), AUTH with a user, the eviction policy
-- checked on every new connection, and a Redis Cluster's MOVED and ASK
-- followed (hiredis and, inside nginx, cosockets), all against redis-server
-- processes this spec starts on 127.0.0.1 (spec/helpers/redis.lua).

local R = require "streamctl.store.redisconn"
local hiredis = require "streamctl.redis"
local helper = require "spec.helpers.redis"
local process = require "spec.helpers.process"

local PASSWORD = "s3cret-pw"
local UNIX = "redis URL: unix sockets are not supported: have Redis listen on 127.0.0.1 and use redis://127.0.0.1:port"

-- Asserts that fn raises exactly `message` (after the position).
local function raises(message, fn)
  local ok, err = pcall(fn)
  assert.is_false(ok, "expected an error: " .. message)
  assert.equal(message, (tostring(err):gsub("^[^:]*:%d+: ", "")))
end

-- A direct connection (the C module) to check what the connection did.
local function direct(port, password)
  local c = assert(hiredis.connect("127.0.0.1", port, 5000))
  if password then assert(c:command("AUTH", password)) end
  return c
end

-- The warning for host:port and policy, as the spec expects it word for word.
local function warning(port, policy)
  return "streamctl: Redis at 127.0.0.1:" .. port .. " has maxmemory-policy " .. policy
    .. ": it may evict streamctl's keys, which streamctl then treats as lost state (it slows down for a second "
    .. "each time); set maxmemory-policy noeviction, or give streamctl a Redis of its own with room"
end

local SET_GET = "redis.call('SET', KEYS[1], ARGV[1]) return redis.call('GET', KEYS[1])"

describe("streamctl.store.redisconn config", function()
  it("takes an ACL user with its password, and shows the user but never the password", function()
    local c = assert(R.config { user = "alice", password = "hunter2", port = 7000 })
    assert.equal("alice", c.user)
    assert.equal("hunter2", c.password)
    assert.equal("redis://alice:<redacted>@127.0.0.1:7000/0 (prefix 'streamctl:')", tostring(c))
    local conn = R.connect(c)
    assert.equal("streamctl.store.redis connection to redis://alice:<redacted>@127.0.0.1:7000/0 (prefix 'streamctl:')",
      tostring(conn))
    assert.equal("redis://:<redacted>@127.0.0.1:6379/0 (prefix 'streamctl:')",
      tostring(assert(R.config { password = "hunter2" })))
  end)

  local BAD = {
    { { user = "alice" }, "option 'redis.user' needs 'redis.password' (Redis AUTH takes a user name with its password)" },
    { { user = "", password = "p" }, "option 'redis.user' must not be empty" },
    { { user = 7, password = "p" }, "option 'redis.user' must be a string" },
    { { user = "a:b", password = "p" }, "option 'redis.user' must not contain ':'" },
    { { user = "a b", password = "p" }, "option 'redis.user' must be printable ASCII without spaces" },
    { { user = "caf\195\169", password = "p" }, "option 'redis.user' must be printable ASCII without spaces" },
    { { user = string.rep("u", 257), password = "p" }, "option 'redis.user' must be at most 256 bytes" },
    { { usr = "a" }, "option 'redis.usr' is not an option of streamctl.store.redis (did you mean 'redis.user'?)" },
  }
  for _, case in ipairs(BAD) do
    it("refuses " .. case[2], function()
      local c, why = R.config(case[1])
      assert.is_nil(c)
      assert.equal(case[2], why)
    end)
  end

  local function fields(c)
    return { host = c.host, port = c.port, db = c.db, user = c.user, password = c.password, prefix = c.prefix,
             timeout_ms = c.timeout_ms, nodes = c.nodes }
  end
  local DEFAULTS = { host = "h", port = 6379, db = 0, prefix = "streamctl:", timeout_ms = 200, nodes = 4 }
  local function with(t)
    local out = {}
    for k, v in pairs(DEFAULTS) do out[k] = v end
    for k, v in pairs(t) do out[k] = v end
    return out
  end

  local URLS = {
    { "redis://alice:pw@h", with { user = "alice", password = "pw" } },
    { "redis://al%69ce:p%40w@h:7000/2", with { user = "alice", password = "p@w", port = 7000, db = 2 } },
    { "redis://alice:a:b@h", with { user = "alice", password = "a:b" } },
    { "redis://:pw@h", with { password = "pw" } },
    { "redis://h?nodes=10", with { nodes = 10 } },
    { "redis://h?nodes=10&prefix=x&timeout_ms=50", with { nodes = 10, prefix = "x", timeout_ms = 50 } },
    { "redis://alice:p/w?x@h:6380/3?timeout_ms=5&nodes=1", with { user = "alice", password = "p/w?x", port = 6380,
                                                                 db = 3, timeout_ms = 5, nodes = 1 } },
    { "redis://h/?prefix=", with { prefix = "" } },
    { "redis://h?prefix=app%3A%7Bx%7D%40%20", with { prefix = "app:{x}@ " } },
    { "redis://h?node%73=7", with { nodes = 7 } },
    { "redis://h?nodes=010", with { nodes = 10 } },
    { "redis://h?", with {} },
    { "redis://h?&nodes=2&", with { nodes = 2 } },
    { "redis://[::1]:7000/1?nodes=3", with { host = "::1", port = 7000, db = 1, nodes = 3 } },
    { "redis://h?timeout_ms=2147483647&nodes=1000000", with { timeout_ms = 2147483647, nodes = 1000000 } },
  }
  for _, case in ipairs(URLS) do
    it("reads " .. case[1], function()
      assert.same(case[2], fields(assert(R.config(case[1]))))
    end)
  end

  local BAD_URLS = {
    { "rediss://h?tls_ca_file=/nonexistent/ca.pem", "redis URL: tls_ca_file cannot be read: /nonexistent/ca.pem does "
      .. "not exist" },
    { "REDISS://:hunter2@h:6380?tls_cert_file=c", "option 'redis.tls_cert_file' needs 'redis.tls_key_file' (the "
      .. "certificate's key)" },
    { "unix:///var/run/redis.sock", UNIX },
    { "unix:/var/run/redis.sock", UNIX },
    { "redis+unix:///var/run/redis.sock?db=0", UNIX },
    { "redis-socket:///tmp/redis.sock", UNIX },
    { "/var/run/redis/redis-server.sock", UNIX },
    { "./redis.sock", UNIX },
    { "redis://h?db=1", "redis URL: unknown parameter 'db' (the parameters are nodes, prefix, timeout_ms)" },
    { "redis://h?node=1", "redis URL: unknown parameter 'node' (the parameters are nodes, prefix, timeout_ms)" },
    { "redis://h?password=hunter2", "redis URL: unknown parameter 'password' (the parameters are nodes, prefix, "
      .. "timeout_ms)" },
    { "redis://h?hunter%0A2=1", "redis URL: unknown parameter (the parameters are nodes, prefix, timeout_ms)" },
    { "redis://h?nodes=1&nodes=2", "redis URL: parameter 'nodes' is given twice" },
    { "redis://h?prefix=a&node%73=1&nodes=1", "redis URL: parameter 'nodes' is given twice" },
    { "redis://h?nodes", "redis URL: parameter 'nodes' has no value (nodes=...)" },
    { "redis://h?prefix=%zz", "redis URL: parameter 'prefix' has a bad %-escape" },
    { "redis://h?nodes=0", "redis URL: nodes must be an integer in 1..1000000" },
    { "redis://h?nodes=1000001", "redis URL: nodes must be an integer in 1..1000000" },
    { "redis://h?nodes=-1", "redis URL: nodes must be an integer in 1..1000000" },
    { "redis://h?nodes=1.5", "redis URL: nodes must be an integer in 1..1000000" },
    { "redis://h?nodes=", "redis URL: nodes must be an integer in 1..1000000" },
    { "redis://h?nodes=99999999999", "redis URL: nodes must be an integer in 1..1000000" },
    { "redis://h?timeout_ms=0", "redis URL: timeout_ms must be an integer in 1..2147483647" },
    { "redis://h?timeout_ms=2147483648", "redis URL: timeout_ms must be an integer in 1..2147483647" },
    { "redis://h?prefix=" .. string.rep("p", 257), "redis URL: prefix must be at most 256 bytes (got 257)" },
    { "redis://h?prefix=a%0Ab", "redis URL: prefix must not contain CR, LF or NUL" },
    { "redis://h?prefix=a%00b", "redis URL: prefix must not contain CR, LF or NUL" },
    { "redis://alice@h", "redis URL: before the '@' comes ':password' or 'user:password' (an '@' elsewhere is "
      .. "written %40)" },
    { "redis://h?prefix=a@b", "redis URL: before the '@' comes ':password' or 'user:password' (an '@' elsewhere "
      .. "is written %40)" },
    { "redis://alice:@h", "redis URL: the password must not be empty" },
    { "redis://a%3Ab:hunter2@h", "redis URL: the user name must not contain ':'" },
    { "redis://a%20b:hunter2@h", "redis URL: the user name must be printable ASCII without spaces" },
    { "redis://a%2:hunter2@h", "redis URL: the user name has a bad %-escape" },
    { "redis://" .. string.rep("u", 257) .. ":hunter2@h", "redis URL: the user name must be at most 256 bytes" },
    { "redis://alice:hunter%0A2@h", "redis URL: the password must be printable ASCII" },
    { "redis://alice:hunter2@h?nodes=x", "redis URL: nodes must be an integer in 1..1000000" },
    { "redis://alice:hunter2@?nodes=1", "redis URL: the host is missing" },
  }
  for _, case in ipairs(BAD_URLS) do
    it("refuses the URL " .. case[1]:gsub("%c", "?"):sub(1, 60) .. ": " .. case[2], function()
      local c, why = R.config(case[1])
      assert.is_nil(c)
      assert.equal(case[2], why)
      assert.is_nil(why:find("hunter", 1, true))
    end)
  end

  it("connect checks its config and options: nil, err naming them; opts that are not a table raise", function()
    local refused = require("spec.helpers.checks").refused
    refused("option 'log' must be a function", R.connect({}, { log = "stderr" }))
    refused("option 'lg' is not an option of streamctl.store.redis.connect (did you mean 'log'?)",
      R.connect({}, { lg = print }))
    raises("bad argument #2 to 'connect' (opts must be a table or nil)", function() R.connect({}, 5) end)
    refused("option 'redis.tls_server_name' goes with 'redis.tls' (rediss://) only",
      R.connect { tls_server_name = "h" })
    assert.is_true(R.is_connection(R.connect({}, { log = print })))
  end)

  it("without the streamctl-redis rock, connect and a client's redis option say which rock to install", function()
    local saved = package.loaded["streamctl.redis"]
    package.loaded["streamctl.redis"] = nil
    package.preload["streamctl.redis"] = function() error("module 'streamctl.redis' not found:\n\tno file", 0) end
    local refused = require("spec.helpers.checks").refused
    local NO_ROCK = "Redis outside nginx needs the streamctl.redis module, which is not installed: it is the "
      .. "streamctl-redis rock (apt-get install libhiredis-dev; luarocks --lua-version=5.4 make --deps-mode=none "
      .. "rockspecs/streamctl-redis-scm-1.rockspec) (module 'streamctl.redis' not found:)"
    local conn, err = R.connect "redis://127.0.0.1:1"
    package.loaded["streamctl.redis"] = nil -- (LuaJIT marks a module that failed to load)
    local client, cerr = require("streamctl.zego").new { app_id = 1234567890,
      server_secret = "0123456789abcdef0123456789abcdef", redis = "redis://127.0.0.1:1" }
    package.preload["streamctl.redis"] = nil
    package.loaded["streamctl.redis"] = saved
    refused(NO_ROCK, conn, err)
    assert.is_nil(client)
    assert.equal("streamctl: zego: InvalidParameter: option 'redis': " .. NO_ROCK, tostring(cerr))
  end)
end)

describe("streamctl.store.redisconn against redis-server", function()
  local script = R.script(SET_GET)

  describe("an ACL user", function()
    local srv, check
    lazy_setup(function()
      srv = helper.start { password = PASSWORD }
      assert.equal("OK", srv:cli("ACL", "SETUSER", "alice", "on", ">alice-" .. PASSWORD, "~*", "&*", "+@all"))
      check = direct(srv.port, PASSWORD)
    end)
    lazy_teardown(function()
      if check then check:close() end
      if srv then srv:stop() end
    end)

    it("is authenticated with AUTH user password", function()
      local conn = R.connect("redis://alice:alice-" .. PASSWORD .. "@127.0.0.1:" .. srv.port .. "/2")
      assert.equal("v", conn:eval(script, { "k" }, { "v" }))
      local seen = false -- (CLIENT LIST: one line per client, "... db=2 ... user=alice ...")
      for line in check:command("CLIENT", "LIST"):gmatch("[^\n]+") do
        if line:find(" db=2 ", 1, true) and line:find(" user=alice ", 1, true) then seen = true end
      end
      assert.is_true(seen)
      assert.equal("OK", check:command("SELECT", 2))
      assert.equal("v", check:command("GET", "k"))
      conn:close()
    end)

    it("a wrong password is a server error that never shows it", function()
      local conn = R.connect { port = srv.port, user = "alice", password = "wrong-" .. PASSWORD }
      local res, e = conn:eval(script, { "k" }, { "v" })
      assert.is_nil(res)
      assert.equal("AUTH: WRONGPASS invalid username-password pair or user is disabled.", e.message)
      assert.same({ "RedisError", "store", "server" }, { e.code, e.kind, e.reason })
      conn = R.connect { port = srv.port, user = "bob", password = "alice-" .. PASSWORD }
      res, e = conn:eval(script, { "k" }, { "v" })
      assert.is_nil(res)
      assert.equal("AUTH: WRONGPASS invalid username-password pair or user is disabled.", e.message)
      assert.same({ "RedisError", "store", "server" }, { e.code, e.kind, e.reason })
    end)
  end)

  describe("the eviction policy", function()
    local srv, check
    lazy_setup(function()
      srv = helper.start { args = { "--maxmemory-policy", "allkeys-lru" } }
      check = direct(srv.port)
    end)
    lazy_teardown(function()
      if check then check:close() end
      if srv then srv:stop() end
    end)
    after_each(function()
      assert.equal("OK", check:command("CONFIG", "SET", "maxmemory-policy", "allkeys-lru"))
    end)

    it("is read on each new connection and told once per connection object and policy", function()
      local logs = {}
      local conn = R.connect({ port = srv.port }, { log = function(m) logs[#logs + 1] = m end })
      assert.is_nil(conn.maxmemory_policy)
      assert.equal("v", conn:eval(script, { "k" }, { "v" }))
      assert.equal("allkeys-lru", conn.maxmemory_policy)
      assert.same({ warning(srv.port, "allkeys-lru") }, logs)
      assert.equal("w", conn:eval(script, { "k" }, { "w" })) -- the same connection: not asked again
      conn:close()
      assert.equal("x", conn:eval(script, { "k" }, { "x" })) -- a new one, the same policy: not told again
      assert.equal(1, #logs)
      -- volatile-* evict only keys with an expiry, and every key of the stores has one
      assert.equal("OK", check:command("CONFIG", "SET", "maxmemory-policy", "volatile-ttl"))
      assert.equal("y", conn:eval(script, { "k" }, { "y" }))    -- the connection is kept: not asked
      assert.equal("allkeys-lru", conn.maxmemory_policy)
      conn:close()
      assert.equal("z", conn:eval(script, { "k" }, { "z" }))
      assert.equal("volatile-ttl", conn.maxmemory_policy)
      assert.same({ warning(srv.port, "allkeys-lru"), warning(srv.port, "volatile-ttl") }, logs)
      assert.equal("OK", check:command("CONFIG", "SET", "maxmemory-policy", "noeviction"))
      conn:close()
      assert.equal("a", conn:eval(script, { "k" }, { "a" }))
      assert.equal("noeviction", conn.maxmemory_policy)
      assert.equal(2, #logs)
      -- another connection object tells its own
      local other = R.connect({ port = srv.port }, { log = function(m) logs[#logs + 1] = m end })
      assert.equal("OK", check:command("CONFIG", "SET", "maxmemory-policy", "allkeys-lru"))
      assert.equal("b", other:eval(script, { "k" }, { "b" }))
      assert.equal(3, #logs)
      other:close()
      conn:close()
    end)

    it("says nothing under noeviction, and nothing when INFO is refused", function()
      local quiet = helper.start { args = { "--rename-command", "INFO", "" } }
      finally(function() quiet:stop() end) -- (idempotent)
      local logs = {}
      local log = function(m) logs[#logs + 1] = m end
      local conn = R.connect({ port = quiet.port }, { log = log })
      assert.equal("v", conn:eval(script, { "k" }, { "v" }))
      assert.is_nil(conn.maxmemory_policy)
      conn:close()
      quiet:stop()
      assert.equal("OK", check:command("CONFIG", "SET", "maxmemory-policy", "noeviction"))
      conn = R.connect({ port = srv.port }, { log = log })
      assert.equal("v", conn:eval(script, { "k" }, { "v" }))
      assert.equal("noeviction", conn.maxmemory_policy)
      conn:close()
      assert.same({}, logs)
    end)

    it("goes to standard error by default (outside nginx), once, without the password", function()
      local secured = helper.start { password = PASSWORD, args = { "--maxmemory-policy", "volatile-lru" } }
      finally(function() secured:stop() end)
      local dir = process.temp_dir()
      local cmd = process.quote(process.interpreter()) .. " -e " .. process.quote(
        "local R = require 'streamctl.store.redisconn' local c = R.connect { port = " .. secured.port
        .. ", password = '" .. PASSWORD .. "' } local s = R.script 'return 1' "
        .. "assert(c:eval(s, {}) == 1) c:close() assert(c:eval(s, {}) == 1)") .. " 2>" .. process.quote(dir .. "/err")
      local ran = process.run("cd " .. process.quote(os.getenv("STREAMCTL_ROOT") or ".") .. " && " .. cmd)
      local text = process.read_file(dir .. "/err") or ""
      process.run("rm -rf " .. process.quote(dir))
      secured:stop()
      assert.is_true(ran, text)
      assert.equal(warning(secured.port, "volatile-lru") .. "\n", text)
    end)
  end)
end)

-- A server that answers every command with one error line (argv[1]), one
-- connection at a time, for 20 s at most: a cluster node as far as MOVED goes.
local FAKE_NODE = [==[
local socket = require "socket"
local srv = assert(socket.bind("127.0.0.1", tonumber(arg[2]) or 0))
print((select(2, srv:getsockname())))
io.stdout:flush()
local deadline = socket.gettime() + 20
srv:settimeout(1)
while socket.gettime() < deadline do
  local c = srv:accept()
  if c then
    c:settimeout(5)
    while true do
      local line = c:receive("*l")
      local n = line and tonumber(line:match("^%*(%d+)$"))
      if not n then break end
      for _ = 1, n do
        local len = tonumber((c:receive("*l") or ""):match("^%$(%d+)$"))
        if not len or not c:receive(len + 2) then break end
      end
      c:send(arg[1]:gsub("PORT", (select(2, srv:getsockname()))) .. "\r\n")
    end
    c:close()
  end
end
]==]

describe("streamctl.store.redisconn and MOVED from a fake node", function()
  local dir, children = nil, {}

  -- Starts a fake node answering `reply` ("PORT": its own port); its port.
  local function fake(reply)
    if not dir then
      dir = process.temp_dir()
      process.write_file(dir .. "/fake.lua", FAKE_NODE)
    end
    local child = process.spawn(process.quote(process.interpreter()) .. " " .. process.quote(dir .. "/fake.lua")
      .. " " .. process.quote(reply))
    children[#children + 1] = child
    return assert(tonumber(child.pipe:read("*l")), "the fake node did not start")
  end

  lazy_teardown(function()
    for _, child in ipairs(children) do process.stop(child) end
    if dir then process.run("rm -rf " .. process.quote(dir)) end
  end)

  it("forgets a node that cannot be reached, and asks the configured one again", function()
    local gone = process.free_port()
    local port = fake("-MOVED 866 127.0.0.1:" .. gone)
    local conn = R.connect { port = port, timeout_ms = 2000 }
    for _ = 1, 2 do -- (remembered, the second call would go to the gone node directly: no "after MOVED")
      local res, e = conn:eval(R.script("return 1"), { "{t}k" }, {})
      assert.is_nil(res)
      assert.equal("after MOVED to 127.0.0.1:" .. gone .. ": connect: Connection refused", e.message)
      assert.same({ "RedisError", "store", "io" }, { e.code, e.kind, e.reason })
    end
    assert.is_nil(conn.maxmemory_policy) -- (INFO answered an error: nothing said)
    conn:close()
  end)

  it("an empty host is the node that answered; an address it cannot use is an error", function()
    local port = fake("-MOVED 866 :PORT")
    local conn = R.connect { port = port, timeout_ms = 2000 }
    local res, e = conn:eval(R.script("return 1"), { "k" }, {})
    assert.is_nil(res)
    assert.equal("after MOVED to 127.0.0.1:" .. port .. ": MOVED 866 :" .. port
      .. " (a second redirection: streamctl follows one per call)", e.message)
    assert.same({ "RedisError", "store", "server" }, { e.code, e.kind, e.reason })
    conn:close()
    conn = R.connect { port = fake("-ASK 866 ?:6379"), timeout_ms = 2000 }
    res, e = conn:eval(R.script("return 1"), {}, {})
    assert.is_nil(res)
    assert.equal("ASK 866 ?:6379 (streamctl cannot follow that address)", e.message)
    assert.same({ "RedisError", "store", "server" }, { e.code, e.kind, e.reason })
    conn:close()
  end)
end)

describe("streamctl.store.redisconn with a Redis Cluster", function()
  local cl, checks
  local script = R.script(SET_GET)

  -- The first key `fmt:format(i)` that node `n` serves.
  local function key_on(n, fmt)
    for i = 1, 1000 do
      local key = fmt:format(i)
      if cl:owner(key) == n then return key end
    end
    error("no key for node " .. n)
  end

  local function errorstat(n, what)
    return tonumber(checks[n]:command("INFO", "errorstats"):match("errorstat_" .. what .. ":count=(%d+)") or 0)
  end

  -- GET on the node that serves the key, and no key in its slot elsewhere.
  local function stored_where_it_belongs(key)
    local owner, slot = cl:owner(key), cl:keyslot(key)
    for n = 1, 3 do
      local count = checks[n]:command("CLUSTER", "COUNTKEYSINSLOT", slot)
      assert.equal(n == owner and 1 or 0, count, key .. " on node " .. n)
    end
    return checks[owner]:command("GET", key)
  end

  lazy_setup(function()
    cl = helper.start_cluster { password = PASSWORD }
    checks = {}
    for n = 1, 3 do checks[n] = direct(cl.nodes[n].port, PASSWORD) end
  end)

  lazy_teardown(function()
    for _, c in ipairs(checks or {}) do c:close() end
    if cl then cl:stop() end
  end)

  before_each(function()
    for n = 1, 3 do assert.equal("OK", checks[n]:command("FLUSHALL")) end
  end)

  it("follows MOVED to the node that serves each hash tag, and remembers it", function()
    local keys = {
      key_on(1, "streamctl:{aliyun:%d}:rl:ForbidLiveStream"),
      key_on(2, "streamctl:{aliyun:%d}:rl:ForbidLiveStream"),
      key_on(3, "streamctl:{zego:%d}:seq:s1"),
      key_on(2, "plain:%d"), -- no hash tag: the whole key is the tag
    }
    local conn = R.connect { port = cl.nodes[1].port, password = PASSWORD, timeout_ms = 2000 }
    local moved = errorstat(1, "MOVED")
    for i, key in ipairs(keys) do
      -- the same tag, another key: one script call's keys
      local twin = key:find("{", 1, true) and key:gsub("}:.*$", "}:other") or nil
      assert.equal("v" .. i, conn:eval(script, { key, twin }, { "v" .. i }))
      assert.equal("v" .. i, stored_where_it_belongs(key))
    end
    assert.equal(moved + 3, errorstat(1, "MOVED"))
    for round = 1, 3 do -- remembered: no MOVED any more
      for i, key in ipairs(keys) do
        assert.equal("r" .. round .. i, conn:eval(script, { key }, { "r" .. round .. i }))
        assert.equal("r" .. round .. i, stored_where_it_belongs(key))
      end
    end
    assert.equal(moved + 3, errorstat(1, "MOVED"))
    assert.equal("noeviction", conn.maxmemory_policy)
    conn:close()
  end)
  it("refuses a database other than 0, saying why", function()
    local conn = R.connect { port = cl.nodes[1].port, password = PASSWORD, db = 1 }
    local res, e = conn:eval(script, { "k" }, { "v" })
    assert.is_nil(res)
    assert.equal("SELECT: ERR SELECT is not allowed in cluster mode (a Redis Cluster has database 0 only: set db to 0)",
      e.message)
    assert.same({ "RedisError", "store", "server" }, { e.code, e.kind, e.reason })
  end)

  it("follows ASK once, with ASKING, without remembering it", function()
    -- a slot of node 1 half-way to node 2: keys node 1 does not hold are asked of node 2
    local key = key_on(1, "streamctl:{aliyun:ask%d}:rl:x")
    local slot = cl:keyslot(key)
    local id1, id2 = checks[1]:command("CLUSTER", "MYID"), checks[2]:command("CLUSTER", "MYID")
    assert.equal("OK", checks[2]:command("CLUSTER", "SETSLOT", slot, "IMPORTING", id1))
    assert.equal("OK", checks[1]:command("CLUSTER", "SETSLOT", slot, "MIGRATING", id2))
    local ok, err = pcall(function()
      local conn = R.connect { port = cl.nodes[1].port, password = PASSWORD, timeout_ms = 2000 }
      local asked = errorstat(1, "ASK")
      assert.equal("a1", conn:eval(script, { key }, { "a1" }))
      assert.equal("a2", conn:eval(script, { key }, { "a2" }))
      assert.equal(asked + 2, errorstat(1, "ASK")) -- asked of node 1 each time: not remembered
      assert.equal(0, checks[1]:command("CLUSTER", "COUNTKEYSINSLOT", slot))
      assert.equal(1, checks[2]:command("CLUSTER", "COUNTKEYSINSLOT", slot))
      conn:close()
    end)
    -- the migration completed: the slot is node 2's, its key with it
    for n = 2, 3 do checks[n]:command("CLUSTER", "SETSLOT", slot, "NODE", id2) end
    checks[1]:command("CLUSTER", "SETSLOT", slot, "NODE", id2)
    assert(ok, err)
    assert.equal("a2", stored_where_it_belongs(key))
  end)

  it("follows one redirection per call: a second is a server error saying so", function()
    -- node 1 sends keys it lacks to node 3, which is not importing: it answers MOVED back
    local key = key_on(1, "streamctl:{aliyun:twice%d}:rl:x")
    local slot = cl:keyslot(key)
    local id3 = checks[3]:command("CLUSTER", "MYID")
    assert.equal("OK", checks[1]:command("CLUSTER", "SETSLOT", slot, "MIGRATING", id3))
    local ok, err = pcall(function()
      local conn = R.connect { port = cl.nodes[1].port, password = PASSWORD, timeout_ms = 2000 }
      local res, e = conn:eval(script, { key }, { "v" })
      assert.is_nil(res)
      assert.equal("after ASK to 127.0.0.1:" .. cl.nodes[3].port .. ": MOVED " .. slot .. " 127.0.0.1:"
        .. cl.nodes[1].port .. " (a second redirection: streamctl follows one per call)", e.message)
      assert.same({ "RedisError", "store", "server" }, { e.code, e.kind, e.reason })
      conn:close()
    end)
    checks[1]:command("CLUSTER", "SETSLOT", slot, "STABLE")
    assert(ok, err)
  end)

  it("remembers at most MAX_ROUTES hash tags, then starts again", function()
    local keys = {}
    for i = 1, 3 do keys[i] = key_on(2, "streamctl:{r" .. i .. ":%d}:x") end
    local max = R.MAX_ROUTES
    R.MAX_ROUTES = 2
    local ok, err = pcall(function()
      local conn = R.connect { port = cl.nodes[1].port, password = PASSWORD, timeout_ms = 2000 }
      local moved = errorstat(1, "MOVED")
      for _, key in ipairs(keys) do assert.equal("v", conn:eval(script, { key }, { "v" })) end
      assert.equal(moved + 3, errorstat(1, "MOVED"))
      assert.equal("v", conn:eval(script, { keys[3] }, { "v" })) -- kept
      assert.equal(moved + 3, errorstat(1, "MOVED"))
      assert.equal("v", conn:eval(script, { keys[1] }, { "v" })) -- forgotten when the third came
      assert.equal(moved + 4, errorstat(1, "MOVED"))
      conn:close()
    end)
    R.MAX_ROUTES = max
    assert(ok, err)
  end)
  describe("inside nginx (cosockets)", function()
    local nginx = require "spec.helpers.nginx"
    local cjson = require "cjson"
    local available, why_not = nginx.available()
    assert(available, why_not) -- `make test` installs nginx; a spec that cannot run fails

    local web, acl_srv, keys

    local DRIVER = [==[
local cjson = require "cjson"
local R = require "streamctl.store.redisconn"
-- (the pool's idle time, not under test: a loaded machine under valgrind took over its 10 s between the
-- two calls of the MOVED row, whose second must find the first's connections pooled)
require("streamctl.store.redissession").POOL_IDLE_MS = 3600000

local M = {}
local getenv = os.getenv
local cluster = R.connect { port = tonumber(getenv("CLUSTER_PORT")), password = getenv("REDIS_PASSWORD"),
                            timeout_ms = 2000 }
local acl = R.connect("redis://alice:" .. getenv("ACL_PASSWORD") .. "@127.0.0.1:" .. getenv("ACL_PORT")
  .. "?timeout_ms=2000")
local script = R.script("redis.call('SET', KEYS[1], ARGV[1]) return redis.call('GET', KEYS[1])")

local function run(conn, keys)
  local out = { results = {}, errors = {} }
  for i, key in ipairs(keys) do
    local res, e = conn:eval(script, { key }, { ngx.var.arg_v .. i })
    out.results[i] = res or "nil"
    if not res then out.errors[#out.errors + 1] = tostring(e.message) .. "|" .. tostring(e.reason) end
  end
  out.policy = conn.maxmemory_policy or "nil"
  ngx.say(cjson.encode(out))
end

function M.cluster()
  local keys = {}
  for key in getenv("CLUSTER_KEYS"):gmatch("[^,]+") do keys[#keys + 1] = key end
  run(cluster, keys)
end

function M.acl() run(acl, { "k" }) end

return M
]==]

    local function connections(n)
      return tonumber(checks[n]:command("INFO", "stats"):match("total_connections_received:(%d+)"))
    end

    lazy_setup(function()
      keys = {
        key_on(1, "streamctl:{aliyun:ngx%d}:rl:x"),
        key_on(2, "streamctl:{aliyun:ngx%d}:rl:x"),
        key_on(3, "streamctl:{zego:ngx%d}:seq:s"),
        key_on(3, "ngx-plain:%d"),
      }
      acl_srv = helper.start { password = PASSWORD, args = { "--maxmemory-policy", "allkeys-lfu" } }
      assert.equal("OK", acl_srv:cli("ACL", "SETUSER", "alice", "on", ">alice-" .. PASSWORD, "~*", "&*", "+@all"))
      web = nginx.start {
        env = { CLUSTER_PORT = tostring(cl.nodes[1].port), REDIS_PASSWORD = PASSWORD, CLUSTER_KEYS = table.concat(keys, ","),
                ACL_PORT = tostring(acl_srv.port), ACL_PASSWORD = "alice-" .. PASSWORD },
        main = "env CLUSTER_PORT;\nenv REDIS_PASSWORD;\nenv CLUSTER_KEYS;\nenv ACL_PORT;\nenv ACL_PASSWORD;",
        prepare = function(dir) nginx.write_file(dir .. "/driver.lua", DRIVER) end,
        lua_path = function(dir) return dir .. "/?.lua" end,
        lua_cpath = function() return (nginx.jit_cpath():gsub(";.*$", "")) end,
        http = function(ports)
          return table.concat({
            "  server {",
            "    listen 127.0.0.1:" .. ports[1] .. ";",
            "    location = /cluster { content_by_lua_block { require('driver').cluster() } }",
            "    location = /acl { content_by_lua_block { require('driver').acl() } }",
            "  }",
          }, "\n")
        end,
      }
    end)

    lazy_teardown(function()
      if web then web:stop() end
      if acl_srv then acl_srv:stop() end
    end)

    it("follows MOVED through a pool per node, and remembers the nodes", function()
      local moved = errorstat(1, "MOVED")
      local status, body = web:get("/cluster?v=a")
      assert.equal(200, status, body)
      assert.same({ results = { "a1", "a2", "a3", "a4" }, errors = {}, policy = "noeviction" }, cjson.decode(body))
      for i, key in ipairs(keys) do assert.equal("a" .. i, stored_where_it_belongs(key)) end
      assert.equal(moved + 3, errorstat(1, "MOVED"))

      local before = { connections(1), connections(2), connections(3) }
      status, body = web:get("/cluster?v=b") -- nginx's pooled connections, each to its node; no MOVED
      local after = { connections(1), connections(2), connections(3) } -- (before redis-cli connects)
      assert.equal(200, status, body)
      assert.same({ results = { "b1", "b2", "b3", "b4" }, errors = {}, policy = "noeviction" }, cjson.decode(body))
      assert.same(before, after)
      for i, key in ipairs(keys) do assert.equal("b" .. i, stored_where_it_belongs(key)) end
      assert.equal(moved + 3, errorstat(1, "MOVED"))
    end)

    it("authenticates an ACL user and warns of the eviction policy in the error log, once", function()
      for round = 1, 2 do
        local status, body = web:get("/acl?v=" .. round)
        assert.equal(200, status, body)
        assert.same({ results = { round .. "1" }, errors = {}, policy = "allkeys-lfu" }, cjson.decode(body))
      end
      local log = web:error_log()
      local _, told = log:gsub(warning(acl_srv.port, "allkeys-lfu"):gsub("%p", "%%%0"), "")
      assert.equal(1, told, log)
      assert.truthy(log:find("[warn]", 1, true))
      assert.is_nil(log:find(PASSWORD, 1, true))
      local c = direct(acl_srv.port, PASSWORD)
      assert.equal("21", c:command("GET", "k"))
      c:close()
    end)
  end)
end)
