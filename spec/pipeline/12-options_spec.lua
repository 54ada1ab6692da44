-- tier: unit
-- Client options: every option is checked in new(), which returns nil and an
-- InvalidParameter error naming the option and the rule (nothing raises, and
-- no client exists); an unknown option is refused with a "did you mean".
local aliyun = require "streamctl.aliyun"
local zego = require "streamctl.zego"
local core = require "streamctl.core"

local NOW = 1700000000
local ZEGO_SECRET = "0123456789abcdef0123456789abcdef"

local function ali_opts(extra)
  local o = { access_key_id = "AK", access_key_secret = "sk" }
  for k, v in pairs(extra) do o[k] = v end
  return o
end

local function zego_opts(extra)
  local o = { app_id = 1234567890, server_secret = ZEGO_SECRET }
  for k, v in pairs(extra) do o[k] = v end
  return o
end

local function refused(new, opts)
  local ok, c, err = pcall(new, opts)
  assert.is_true(ok, "new() raised: " .. tostring(c))
  assert.is_nil(c)
  assert.equal("InvalidParameter", err.code)
  assert.equal("validation", err.kind)
  return err.message
end

local NAN = 0 / 0
local STORE_RULE = "option 'rate_limit_store' must be an object with methods 'get', 'set'"

-- { options, message }: the same rules for both providers.
local COMMON = {
  { { endpont = "http://127.0.0.1:1" },
    "is not an option of streamctl.%s.new (did you mean 'endpoint'?)", prefix = "option 'endpont' " },
  { { timeout_ms = -1 }, "option 'timeout_ms' must be at least 1" },
  { { timeout_ms = 0 }, "option 'timeout_ms' must be at least 1" },
  { { timeout_ms = 1.5 }, "option 'timeout_ms' must be an integer" },
  { { timeout_ms = NAN }, "option 'timeout_ms' must be an integer" },
  { { timeout_ms = "abc" }, "option 'timeout_ms' must be an integer" },
  { { timeout_ms = "5000" }, "option 'timeout_ms' must be an integer" },
  { { connect_timeout_ms = 2 ^ 31 }, "option 'connect_timeout_ms' must be at most 2147483647" },
  { { max_connections = 5000 }, "option 'max_connections' must be at most 1024" },
  { { max_connections = 0 }, "option 'max_connections' must be at least 1" },
  { { max_body = 0 }, "option 'max_body' must be at least 1" },
  { { user_agent = "a\r\nX-Injected: 1" }, "option 'user_agent' must not contain control characters" },
  { { ca_file = 123 }, "option 'ca_file' must be a non-empty string (a path)" },
  { { ca_file = "/nonexistent/ca.pem" }, "option 'ca_file' cannot be read: /nonexistent/ca.pem does not exist" },
  { { proxy = {} }, "option 'proxy' must be a non-empty string" },
  { { proxy = "http://proxy:3128\nX: y" }, "option 'proxy' must not contain whitespace or control characters" },
  { { proxy = "ftp://proxy:21" },
    "option 'proxy' must look like http://host:port (schemes: http, https, socks4, socks4a, socks5, socks5h), or be "
      .. "\"env\" (the environment's https_proxy and no_proxy)" },
  { { concurrency = 0 }, "option 'concurrency' must be at least 1" },
  { { concurrency = 257 }, "option 'concurrency' must be at most 256" },
  { { rate_burst = 0 }, "option 'rate_burst' must be at least 1" },
  { { rate_burst = -5 }, "option 'rate_burst' must be at least 1" },
  { { rate_burst = "x" }, "option 'rate_burst' must be an integer" },
  { { rate_burst = NAN }, "option 'rate_burst' must be an integer" },
  { { rate_margin = 1 }, "option 'rate_margin' must be less than 1" },
  { { rate_margin = -0.1 }, "option 'rate_margin' must be at least 0" },
  { { rate_limits = 5 }, "option 'rate_limits' must be a table of action = requests per second, or false" },
  { { rate_limit_store = 5 }, STORE_RULE },
  { { rate_limit_store = { get = function() end } }, STORE_RULE .. " (it has no 'set')" },
  { { retry = 3 }, "option 'retry' must be a table of retry settings, or false" },
  { { retry = { attempts = 0 } }, "option 'retry.attempts' must be at least 1" },
  { { retry = { atempts = 2 } },
    "option 'retry.atempts' is not an option of the retry settings (did you mean 'retry.attempts'?)" },
  { { retry = { budget = { capacity = -1 } } }, "option 'retry.budget' capacity must be a finite number > 0" },
  { { clock = 5 }, "option 'clock' must be a function" },
  { { nonce = "n" }, "option 'nonce' must be a function" },
  { { transport = 5 },
    'option \'transport\' must be "auto", "curl", "ngx", a function(request) or a table with start and poll' },
  { { transport = "resty" },
    'option \'transport\' must be "auto", "curl", "ngx", a function(request) or a table with start and poll' },
  { { shared_dict = "streamctl" },
    "option 'shared_dict' needs nginx with lua-nginx-module (a lua_shared_dict); outside nginx, leave it out" },
  { { shared_dict = 5 }, "option 'shared_dict' must be the name of a lua_shared_dict" },
  { { on_attempt = "log" }, "option 'on_attempt' must be a function" },
  { { transport = function() end, timeout_ms = 100 },
    "option 'timeout_ms' configures the built-in transport; it cannot be combined with 'transport'" },
  { { endpoint = "ftp://x" }, "option 'endpoint' must use https or http (got ftp)" },
  { { endpoint = "live.aliyuncs.com" }, "option 'endpoint' must look like https://host[:port]" },
  { { endpoint = "https://" }, "option 'endpoint' must look like https://host[:port]" },
  { { endpoint = "https://h/live" }, "option 'endpoint' must not have a path, query or fragment" },
  { { endpoint = "https://h?x=1" }, "option 'endpoint' must not have a path, query or fragment" },
  { { endpoint = "https://u:p@h" }, "option 'endpoint' must not carry user information" },
  { { endpoint = "https://h:0" }, "option 'endpoint' must have a port in 1..65535" },
  { { endpoint = "https://h:65536" }, "option 'endpoint' must have a port in 1..65535" },
  { { endpoint = "https://h:x" }, "option 'endpoint' must have a port in 1..65535" },
  { { endpoint = "https://h_1" }, "option 'endpoint' must name a valid host" },
  { { endpoint = "https://[fe80::1" }, "option 'endpoint' must name a valid host" },
  { { endpoint = "https://h 1" }, "option 'endpoint' must not contain whitespace, CR, LF or NUL" },
}

describe("client options", function()
  for _, p in ipairs { { "aliyun", aliyun, ali_opts }, { "zego", zego, zego_opts } } do
    local name, mod, base = p[1], p[2], p[3]
    for _, case in ipairs(COMMON) do
      local opts, message = case[1], case[2]
      local label = next(opts)
      it(name .. ": refuses " .. label .. " = " .. tostring(opts[label]), function()
        local want = (case.prefix or "") .. message:format(name)
        assert.equal(want, refused(mod.new, base(opts)))
      end)
    end
  end

  it("takes an endpoint as scheme://host[:port], a name or an IPv6 literal, in lower case", function()
    for input, want in pairs {
      ["https://Live.Aliyuncs.com"] = { "https://live.aliyuncs.com", "live.aliyuncs.com" },
      ["http://127.0.0.1:8080/"] = { "http://127.0.0.1:8080", "127.0.0.1:8080" },
      ["HTTPS://[::1]:8443"] = { "https://[::1]:8443", "[::1]:8443" },
      ["https://[fe80::1]"] = { "https://[fe80::1]", "[fe80::1]" },
    } do
      local c = assert(aliyun.new(ali_opts { endpoint = input, transport = function() end }))
      assert.same(want, { c.endpoint.url, c.endpoint.host })
      assert.equal(want[1] .. "/?", c.endpoint.query_url)
    end
  end)

  it("aliyun: refuses a rate limit for an action it does not have, or one that is not a rate", function()
    assert.equal("option 'rate_limits' names 'ResumeLiveStreams', which is not an action (did you mean "
      .. "'ResumeLiveStream'?)", refused(aliyun.new, ali_opts { rate_limits = { ResumeLiveStreams = 5 } }))
    assert.equal("option 'rate_limits' ['ResumeLiveStream'] must be a number > 0 (requests per second) or false",
      refused(aliyun.new, ali_opts { rate_limits = { ResumeLiveStream = "5" } }))
    assert.equal("option 'rate_limits' ['*'] must be a number > 0 (requests per second) or false",
      refused(aliyun.new, ali_opts { rate_limits = { ["*"] = -1 } }))
    assert.equal("option 'rate_limits' ['ForbidLiveStream'] must be a number > 0 (requests per second) or false",
      refused(aliyun.new, ali_opts { rate_limits = { ForbidLiveStream = NAN } }))
  end)

  it("aliyun: checks credentials and the signature version", function()
    assert.equal("option 'access_key_id' must not contain CR, LF or NUL",
      refused(aliyun.new, ali_opts { access_key_id = "AK\n" }))
    assert.equal("option 'security_token' must not contain CR, LF or NUL",
      refused(aliyun.new, ali_opts { security_token = "t\r" }))
    assert.equal("option 'access_key_secret' must be a string or a streamctl.secret",
      refused(aliyun.new, ali_opts { access_key_secret = 42 }))
    assert.equal("option 'signature_version' must be one of 'v3', 'v1'",
      refused(aliyun.new, ali_opts { signature_version = "v2" }))
    assert.equal("option 'app_id' is not an option of streamctl.aliyun.new",
      refused(aliyun.new, ali_opts { app_id = 1 }))
  end)

  it("zego: checks the app, the secret, is_test and the sequence generator", function()
    assert.equal("option 'app_id' must be an integer in 1..4294967295", refused(zego.new, zego_opts { app_id = 0 }))
    assert.equal("option 'server_secret' must not be empty", refused(zego.new, zego_opts { server_secret = "" }))
    assert.equal("option 'is_test' must be true or false", refused(zego.new, zego_opts { is_test = 1 }))
    assert.equal("option 'sequence' must be an object with methods 'next_for', 'peek_for', 'record'",
      refused(zego.new, zego_opts { sequence = 42 }))
    assert.equal("option 'rate_limits' names 'ResumeRTCStreem', which is not an action (did you mean "
      .. "'ResumeRTCStream'?)", refused(zego.new, zego_opts { rate_limits = { ResumeRTCStreem = 1 } }))
  end)

  it("take a streamctl.secret wherever a secret goes, and sign with it exactly as with the string", function()
    local fixed = { clock = function() return NOW end, nonce = function() return "0011223344556677" end,
                    transport = function() end }
    local function with(o) for k, v in pairs(fixed) do o[k] = v end return o end
    local a1 = assert(aliyun.new(with(ali_opts { access_key_secret = core.secret("sk") })))
    local a2 = assert(aliyun.new(with(ali_opts {})))
    local p = { DomainName = "d", AppName = "a", StreamName = "s", LiveStreamType = "publisher" }
    assert.equal(a2:prepare("ResumeLiveStream", p).headers.authorization,
      a1:prepare("ResumeLiveStream", p).headers.authorization)
    local z1 = assert(zego.new(with(zego_opts { server_secret = core.secret(ZEGO_SECRET) })))
    local z2 = assert(zego.new(with(zego_opts {})))
    local q = { StreamId = "s", Sequence = "1" }
    assert.equal(z2:prepare("ResumeRTCStream", q).url, z1:prepare("ResumeRTCStream", q).url)
    assert.equal("option 'access_key_secret' must not be empty",
      refused(aliyun.new, ali_opts { access_key_secret = core.secret("") }))
  end)

  it("raise only for a programming error: options that are not a table", function()
    assert.has_error(function() aliyun.new(5) end, "options must be a table")
    assert.has_error(function() zego.new("x") end, "options must be a table")
  end)
end)

describe("prepare", function()
  it("takes no ZEGO Sequence: a dry run leaves the generator as it was", function()
    -- (the client's monotonic clock moved only by its sleeps, checks.scripted_client: with the real one, a
    -- call whose signing outlasts its slot's lateness, as under valgrind on a busy machine, is taken back
    -- unsent and its Sequence with it, and the call goes with the next one)
    local checks = require "spec.helpers.checks"
    local z, w = checks.scripted_client(zego, NOW, nil, function()
      return checks.reply(200, '{"Code":0,"Message":"ok","RequestId":"r","Data":null}')
    end)
    local seq = function(url) return url:match("Sequence=(%d+)") end
    local p1 = seq(z:prepare("ResumeRTCStream", { StreamId = "s" }).url)
    local p2 = seq(z:prepare("ResumeRTCStreams", { StreamId = { "s", "t" } }).url)
    assert.equal("1700000000000", p1)
    assert.equal(p1, p2)
    assert(z:resume_rtc_stream { stream_id = "s" })
    assert.equal(1, #w.sent)
    assert.equal(p1, seq(w.sent[1].url)) -- the call gets the value the dry runs showed
    -- and after it, a dry run shows the next one
    assert.equal("1700000000001", seq(z:prepare("ResumeRTCStream", { StreamId = "s" }).url))
  end)
end)

describe("close", function()
  local redis_store = require "streamctl.store.redis"

  it("closes the Redis connection the client made, never one it was given (other clients may share it)", function()
    local given = redis_store.connect("redis://127.0.0.1:1") -- (connects on first use: never here)
    local closes = 0
    given.close = function() closes = closes + 1 end
    local a = assert(aliyun.new(ali_opts { transport = function() end, redis = given }))
    local z = assert(zego.new(zego_opts { transport = function() end, redis = given }))
    a:close()
    z:close()
    assert.equal(0, closes)
    local own = assert(aliyun.new(ali_opts { transport = function() end, redis = "redis://127.0.0.1:1" }))
    own._stores[1].handle.close = function() closes = closes + 1 end
    own:close()
    assert.equal(1, closes)
  end)
end)

describe("streamctl.base.url", function()
  local url = require "streamctl.base.url"

  it("splits scheme, authority and the rest, the scheme in lower case", function()
    assert.same({ "https", "H:1", "/p?q#f" }, { url.split("HTTPS://H:1/p?q#f") })
    assert.same({ "redis", "", "" }, { url.split("redis://") })
    assert.is_nil(url.split("h:1/p"))
    assert.is_nil(url.split("1x://h"))
  end)

  it("splits user information at the last @, and host[:port] with IPv6 literals in brackets", function()
    assert.same({ "u:p@ss", "h:1" }, { url.userinfo("u:p@ss@h:1") })
    assert.same({ nil, "h" }, { url.userinfo("h") })
    assert.same({ "h", 6379 }, { url.host_port("h:6379") })
    assert.same({ "h" }, { url.host_port("h") })
    assert.same({ "::1", 443, true }, { url.host_port("[::1]:443") })
    assert.same({ "fe80::1", nil, true }, { url.host_port("[fe80::1]") })
    for input, wrong in pairs { [""] = "host", [":1"] = "host", ["[zz]"] = "host", ["[::1"] = "host",
                                ["h:"] = "port", ["h:0"] = "port", ["h:65536"] = "port", ["h:000001"] = "port",
                                ["h:x"] = "port", ["a:b:c"] = "port", ["[::1]:"] = "port", ["[::1]x"] = "port" } do
      assert.same({ nil, wrong }, { url.host_port(input) }, input)
    end
    assert.equal("a b/@%", url.unescape("a%20b%2F%40%25"))
    assert.equal("plain", url.unescape("plain"))
    for _, bad in ipairs { "%", "%2", "%zz", "a%2Gb", "100%" } do assert.is_nil(url.unescape(bad), bad) end
    assert.is_true(url.is_name("live.aliyuncs.com"))
    assert.is_false(url.is_name("h_1"))
  end)
end)
