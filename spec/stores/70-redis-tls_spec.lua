-- streamctl.store.redisconn over TLS (rediss://, rediss+sentinel://): the
-- configuration read and refused by its rules, the files loaded when a
-- connection object is made; then against redis-server processes listening
-- with TLS on 127.0.0.1 (certificates made here by the openssl command:
-- spec/helpers/redis.lua make_tls), through hiredis (csrc/redis_tls.c) and
-- inside nginx (cosockets): the certificate checked (its CA, its name), a
-- client certificate where the server asks for one, a plain client and a
-- TLS one on the wrong port failing at once, and a Sentinel set whose every
-- link is TLS followed across SENTINEL FAILOVER and a master killed.

local R = require "streamctl.store.redisconn"
local helper = require "spec.helpers.redis"
local process = require "spec.helpers.process"
local socket = require "socket"

local PASSWORD = "tls-s3cret"
-- (a call's timeout, not under test here: under valgrind and ASan this process runs slower)
local TIMEOUT_MS = 2000 * process.slowdown()
local SET_GET = R.script("redis.call('SET', KEYS[1], ARGV[1]) return redis.call('GET', KEYS[1])")

-- How many scripts a node ran (spec/helpers/redis.lua).
local function scripts_run(srv) return srv:scripts_run() end

local tls -- the CAs and certificates, made once for the file
local function certificates()
  tls = tls or helper.make_tls()
  return tls
end

teardown(function()
  if tls then process.run("rm -rf " .. process.quote(tls.dir)) end
end)

describe("streamctl.store.redisconn config with TLS", function()
  local function fields(c)
    local out = {}
    for _, k in ipairs { "host", "port", "tls", "tls_ca_file", "tls_server_name", "tls_cert_file", "tls_key_file",
                         "master_name" } do
      out[k] = c[k]
    end
    return out
  end

  it("reads rediss:// and rediss+sentinel:// with their TLS parameters, and the same as options", function()
    local t = certificates()
    local c = assert(R.config("rediss://:" .. PASSWORD .. "@10.0.0.5:6380/2?tls_ca_file=" .. t.ca
      .. "&tls_server_name=redis.internal&tls_cert_file=" .. t.client_cert .. "&tls_key_file=" .. t.client_key))
    assert.same({ host = "10.0.0.5", port = 6380, tls = true, tls_ca_file = t.ca, tls_server_name = "redis.internal",
                  tls_cert_file = t.client_cert, tls_key_file = t.client_key }, fields(c))
    assert.equal("rediss://:<redacted>@10.0.0.5:6380/2 (prefix 'streamctl:')", tostring(c))
    local s = assert(R.config("rediss+sentinel://h1,h2:26380/mymaster?tls_ca_file=" .. t.ca))
    assert.same({ tls = true, tls_ca_file = t.ca, master_name = "mymaster" }, fields(s))
    assert.equal("rediss+sentinel://h1:26379,h2:26380/mymaster/0 (prefix 'streamctl:')", tostring(s))
    assert.same({ host = "127.0.0.1", port = 6379, tls = true }, fields(assert(R.config { tls = true })))
    assert.same({ host = "127.0.0.1", port = 6379, tls = false }, fields(assert(R.config "redis://127.0.0.1")))
  end)

  it("refuses what breaks a TLS rule, naming the option and the rule", function()
    local t = certificates()
    local BAD = {
      { { tls_ca_file = t.ca }, "option 'redis.tls_ca_file' goes with 'redis.tls' (rediss://) only" },
      { { tls = "yes" }, "option 'redis.tls' must be true or false" },
      { { tls = true, tls_ca_file = t.client_key }, "option 'redis.tls_ca_file' holds no PEM certificate "
        .. "(-----BEGIN CERTIFICATE-----): name the CA's certificate, not its key or another file" },
      { { tls = true, tls_ca_file = t.dir .. "/none.pem" }, "option 'redis.tls_ca_file' cannot be read: "
        .. t.dir .. "/none.pem does not exist" },
      { { tls = true, tls_server_name = "a b" }, "option 'redis.tls_server_name' must be a host name or an IP address" },
      { { tls = true, tls_key_file = t.client_key }, "option 'redis.tls_key_file' needs 'redis.tls_cert_file' (the "
        .. "certificate it is the key of)" },
      { { tls = true, tls_cert_file = "" }, "option 'redis.tls_cert_file' must be a non-empty string (a path)" },
      { "redis://h?tls_ca_file=" .. t.ca, "redis URL: unknown parameter 'tls_ca_file' (the parameters are nodes, "
        .. "prefix, timeout_ms)" },
      { "rediss://h?sentinel_user=u", "redis URL: unknown parameter 'sentinel_user' (the parameters are nodes, "
        .. "prefix, timeout_ms, tls_ca_file, tls_server_name, tls_cert_file, tls_key_file)" },
      { "rediss://h?tls_server_name=a%20b", "redis URL: tls_server_name must be a host name or an IP address" },
    }
    for _, case in ipairs(BAD) do assert.same({ nil, case[2] }, { R.config(case[1]) }) end
  end)

  it("connect loads the files as a connection will: a key that is not the certificate's is refused then", function()
    local t = certificates()
    local refused = require("spec.helpers.checks").refused
    local conn, err = R.connect { tls = true, tls_ca_file = t.ca, tls_cert_file = t.client_cert,
                                  tls_key_file = t.dir .. "/server.key" }
    assert.is_nil(conn)
    assert.equal("InvalidParameter", err.code)
    assert.matches("^option 'redis.tls_key_file' cannot be loaded %(OpenSSL: .*key values mismatch%)$", err.message)
    refused("option 'redis.tls_cert_file' cannot be loaded (OpenSSL: error:0480006C:PEM routines::no start line)",
      R.connect { tls = true, tls_ca_file = t.ca, tls_cert_file = t.client_key, tls_key_file = t.client_key })
    assert.is_true(R.is_connection(R.connect { tls = true, tls_ca_file = t.ca, tls_cert_file = t.client_cert,
                                              tls_key_file = t.client_key }))
  end)
end)

describe("streamctl.store.redisconn over TLS, through hiredis", function()
  local srv, strict, plain
  lazy_setup(function()
    local t = certificates()
    srv = helper.start { tls = t, password = PASSWORD }
    strict = helper.start { tls = t, tls_auth_clients = "yes" }
    plain = helper.start {}
  end)
  lazy_teardown(function()
    for _, s in ipairs { srv, strict, plain } do if s then s:stop() end end
  end)

  local function url(s, extra)
    return s.url .. "&timeout_ms=" .. TIMEOUT_MS .. (extra or "")
  end

  it("runs a script over TLS, the certificate checked against the CA and the host", function()
    local conn = assert(R.connect(url(srv)))
    assert.equal("v1", conn:eval(SET_GET, { "k" }, { "v1" }))
    assert.equal("v2", conn:eval(SET_GET, { "k" }, { "v2" }))
    assert.equal(2, conn.setups) -- (one connection: AUTH, INFO, the script loaded once)
    assert.equal("v2", srv:cli("GET", "k"))
    assert.equal("127.0.0.1:" .. srv.tls_port, conn:address())
    conn:close()
  end)

  local REFUSALS = {
    { "a CA that did not sign the server's certificate", function(t) return "&tls_ca_file=" .. t.other_ca end,
      "connect: TLS handshake: certificate verify failed (self-signed certificate in certificate chain)" },
    { "a name the certificate does not show", function(t) return "&tls_ca_file=" .. t.ca
      .. "&tls_server_name=redis.internal" end,
      "connect: TLS handshake: certificate verify failed (hostname mismatch)" },
    { "an address the certificate does not show", function(t) return "&tls_ca_file=" .. t.ca
      .. "&tls_server_name=127.0.0.2" end,
      "connect: TLS handshake: certificate verify failed (IP address mismatch)" },
  }
  for _, case in ipairs(REFUSALS) do
    it("refuses " .. case[1] .. ": an io error saying why, nothing run, no password shown", function()
      local base = srv.url:gsub("%?tls_ca_file=[^&]*", "?")
      local conn = assert(R.connect(base .. "timeout_ms=" .. TIMEOUT_MS .. case[2](certificates())))
      local before = scripts_run(srv)
      local res, err = conn:eval(SET_GET, { "refused" }, { "x" })
      assert.is_nil(res)
      assert.same({ "RedisError", "io", case[3] }, { err.code, err.reason, err.message })
      assert.equal(before, scripts_run(srv))
      assert.equal("", srv:cli("GET", "refused"))
      assert.is_nil(tostring(err):find(PASSWORD, 1, true))
    end)
  end

  it("a server that asks for a client certificate: refused without one, served with one", function()
    local t = certificates()
    local without = assert(R.connect(url(strict)))
    local res, err = without:eval(SET_GET, { "c" }, { "1" })
    assert.is_nil(res)
    assert.equal("io", err.reason)
    assert.matches("TLS", err.message)
    local with = assert(R.connect(url(strict, "&tls_cert_file=" .. t.client_cert .. "&tls_key_file=" .. t.client_key)))
    assert.equal("2", with:eval(SET_GET, { "c" }, { "2" }))
    assert.equal("2", strict:cli("GET", "c"))
    with:close()
  end)

  it("a plain client on the TLS port is cut off at once; a TLS client on a plain port times out: io errors", function()
    local t = certificates()
    local conn = assert(R.connect("redis://:" .. PASSWORD .. "@127.0.0.1:" .. srv.tls_port .. "?timeout_ms=" .. TIMEOUT_MS))
    local started = socket.gettime()
    local res, err = conn:eval(SET_GET, { "w" }, { "1" })
    assert.is_nil(res)
    assert.equal("io", err.reason)
    -- (TLS refused, the server closes: with our bytes unread a reset, else an end of stream)
    assert.is_true(err.message == "AUTH: Connection reset by peer" or err.message == "AUTH: Server closed the "
      .. "connection", err.message)
    -- (a bound on a failure, not a speed: the server cuts the connection, the call waits out no timeout)
    assert.is_true(socket.gettime() - started < TIMEOUT_MS / 1000)
    -- (a plain Redis waits for the end of a line the TLS hello never sends: the handshake times out)
    conn = assert(R.connect("rediss://127.0.0.1:" .. plain.port .. "?tls_ca_file=" .. t.ca .. "&timeout_ms=300"))
    res, err = conn:eval(SET_GET, { "w" }, { "1" })
    assert.is_nil(res)
    assert.same({ "io", "connect: TLS handshake: timeout (300 ms)" }, { err.reason, err.message })
    assert.equal("", plain:cli("GET", "w"))
    assert.equal("", srv:cli("GET", "w"))
  end)
end)

describe("streamctl.store.redisconn through Sentinel over TLS", function()
  local set
  lazy_setup(function()
    set = helper.start_sentinel { tls = certificates(), password = PASSWORD }
  end)
  lazy_teardown(function()
    if set then set:stop() end
  end)

  it("asks the Sentinels over TLS, writes to the master over TLS, follows SENTINEL FAILOVER and a kill", function()
    local conn = assert(R.connect(set.url .. "&sentinel_check_ms=100&timeout_ms=" .. TIMEOUT_MS))
    assert.equal("1", conn:eval(SET_GET, { "s" }, { "1" }))
    assert.equal("127.0.0.1:" .. set.master.tls_port .. " (master 'mymaster' by Sentinel)", conn:address())
    local old = set:failover("command")
    socket.sleep(0.15)
    local ran = scripts_run(old)
    assert.equal("2", conn:eval(SET_GET, { "s" }, { "2" }))
    assert.equal(ran, scripts_run(old))
    assert.equal("2", set.master:cli("GET", "s"))
    assert.equal("127.0.0.1:" .. set.master.tls_port .. " (master 'mymaster' by Sentinel)", conn:address())
    set:failover("kill")
    assert.equal("3", conn:eval(SET_GET, { "s" }, { "3" }))
    assert.equal("3", set.master:cli("GET", "s"))
    conn:close()
  end)
end)

describe("streamctl.store.redisconn over TLS, inside nginx (cosockets)", function()
  local nginx = require "spec.helpers.nginx"
  local available, why_not = nginx.available()
  assert(available, why_not) -- `make test` installs nginx; a spec that cannot run fails


  local srv, strict, set, web
  lazy_setup(function()
    local t = certificates()
    srv = helper.start { tls = t, password = PASSWORD }
    strict = helper.start { tls = t, tls_auth_clients = "yes" }
    set = helper.start_sentinel { tls = t }
    local extra = "&timeout_ms=" .. TIMEOUT_MS
    web = nginx.start_driver {
      driver = helper.SET_DRIVER, locations = { ["/set"] = "set" },
      -- (cosockets trust what lua_ssl_trusted_certificate names: tls_ca_file names the same file)
      http_lines = "lua_ssl_trusted_certificate " .. nginx.conf_quoted(t.ca) .. ";\nlua_ssl_verify_depth 2;",
      env = { URL_PLAIN = srv.url .. extra,
              URL_OTHERNAME = srv.url .. extra .. "&tls_server_name=redis.internal",
              URL_NOCERT = strict.url .. extra,
              URL_CLIENT = strict.url .. extra .. "&tls_cert_file=" .. t.client_cert .. "&tls_key_file=" .. t.client_key,
              URL_SENTINEL = set.url .. extra .. "&sentinel_check_ms=100" },
    }
  end)
  lazy_teardown(function()
    if web then web:stop() end
    for _, s in ipairs { srv, strict, set } do if s then s:stop() end end
  end)

  local function set_key(which, k, v) return helper.driver_set(web, which, k, v) end

  it("runs a script over TLS, a pooled connection reused without a new handshake", function()
    local out = set_key("plain", "n", "1")
    assert.same({ "1", "" }, { out.result, out.err })
    out = set_key("plain", "n", "2")
    assert.same({ "2", "" }, { out.result, out.err })
    assert.equal("2", srv:cli("GET", "n"))
    local function connections() -- (each look is a connection of redis-cli's own)
      return tonumber(srv:cli("INFO", "stats"):match("total_connections_received:(%d+)"))
    end
    local before = connections()
    assert.equal("2", set_key("plain", "n", "2").result)
    assert.equal(before + 1, connections())
  end)

  it("refuses a certificate that does not show the name asked for, and runs nothing", function()
    local before = scripts_run(srv)
    local out = set_key("othername", "o", "1")
    assert.equal("nil", out.result)
    -- (nginx answers the refusal itself, or, when the handshake ended at once, closes the socket:
    -- lua-nginx-module 0.10.23 then answers true, and the session reads the closed socket)
    local why = assert(out.err:match("^TLS handshake: (.*)|io$"), out.err)
    assert.is_true(why == "certificate host mismatch"
      or why == "the certificate was refused for 'redis.internal' (nginx's error log says why)", why)
    assert.matches('lua ssl certificate does not match host "redis.internal"', web:error_log(), 1, true)
    assert.equal(before, scripts_run(srv))
    assert.is_nil(web:error_log():find(PASSWORD, 1, true))
  end)

  it("presents the client certificate where the server asks for one (setclientcert)", function()
    local out = set_key("nocert", "c", "1")
    assert.equal("nil", out.result)
    assert.matches("|io$", out.err)
    out = set_key("client", "c", "2")
    assert.same({ "2", "" }, { out.result, out.err })
    assert.equal("2", strict:cli("GET", "c"))
  end)

  it("through Sentinel over TLS: the master named, followed across SENTINEL FAILOVER", function()
    local out = set_key("sentinel", "s", "1")
    assert.same({ result = "1", err = "", address = "127.0.0.1:" .. set.master.tls_port
      .. " (master 'mymaster' by Sentinel)" }, out)
    local old = set:failover("command")
    socket.sleep(0.15)
    local ran = scripts_run(old)
    out = set_key("sentinel", "s", "2")
    assert.same({ "2", "" }, { out.result, out.err })
    assert.equal(ran, scripts_run(old))
    assert.equal("2", set.master:cli("GET", "s"))
  end)
end)
