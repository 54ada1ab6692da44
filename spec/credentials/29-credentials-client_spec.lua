-- An Aliyun client signing with temporary credentials that renew themselves
-- (the `credentials` option: a streamctl.credentials.refresh holder fed by
-- the emulator's metadata service), end to end: a batch across three
-- expiries with no auth failure and one renewal per expiry (the emulator's
-- own counters), the service refusing an expired token, and a clear error
-- while nothing valid can be had.
local emu = require "spec.helpers.emulator"
local aliyun = require "streamctl.aliyun"
local core = require "streamctl.core"
local refresh = require "streamctl.credentials.refresh"
local sources = require "streamctl.credentials.sources"

local UID = "1234567890123456"
local ROLE = "acs:ram::" .. UID .. ":role/edge"
local LIFE, STALE = 120, 40
-- 2,000 calls under Lua 5.4 and LuaJIT, unpaced (this spec is about
-- credentials: at ResumeLiveStream's 30/s they took 70 s of waiting); 400
-- under valgrind and ASan, across the same three expiries
local CALLS = require("spec.helpers.process").preloaded() and 400 or 2000
local OIDC_PROVIDER = "acs:ram::" .. UID .. ":oidc-provider/ack"
local OIDC_ROLE = "acs:ram::" .. UID .. ":role/pods"
local CONFIG = { aliyun = {
  accounts = { LTAIuser = { secret = "s", account = UID, user = "u" } },
  roles = { [ROLE] = {}, [OIDC_ROLE] = { trusted_oidc_providers = { OIDC_PROVIDER } } },
  oidc_providers = { [OIDC_PROVIDER] = {} },
  imds = { role = ROLE, credential_lifetime_s = LIFE, rotation_lead_s = 60 },
  credentials_uri = { role = ROLE },
  qps = { ResumeLiveStream = 0 }, -- (unlimited: this spec is about credentials, not pacing)
} }

describe("an Aliyun client with self-renewing credentials", function()
  -- The clients' clock and the emulator's, pinned at `now` by client() (a reset gives the emulator
  -- real time back): the credentials' lives (120 s, stale at 80) are counted in it, and only
  -- advance() moves it, so a run slower than real time (400 calls under valgrind on a busy machine
  -- take minutes) renews once per advance, as it would in a real 120 s.
  local server, now
  local function clock() return now end
  lazy_setup(function() server = emu.start { imds = true, config = CONFIG } end)
  lazy_teardown(function() if server then server:stop() end end)
  before_each(function()
    server:reset()
  end)

  -- Moves both clocks (the emulator's and the client's) on by `s` seconds.
  local function advance(s)
    now = now + s
    server:clock { now = now }
  end

  -- `store`: a rate_limit_store (a shared budget) and no account_id (STS is
  -- asked); `unpaced`: rate_limits = false
  local function client(fetch, store, unpaced)
    now = core.now()
    server:clock { now = now }
    local slow = require("spec.helpers.process").slowdown() -- (the metadata service must answer)
    local exchange = assert(sources.exchange { timeout_ms = 1000 * slow, connect_timeout_ms = 1000 * slow })
    local holder = refresh.new { source = "the ECS instance's RAM role edge", clock = clock, stale_s = STALE,
      fetch = fetch or assert(sources.fetcher({ type = "ecs_ram_role", from = "x", role_name = "edge" }, exchange,
        server.imds_url)) }
    local o = { endpoint = server.aliyun_tls_url, ca_file = server.ca_file, credentials = holder,
                clock = clock, account_id = not store and UID or nil, rate_limit_store = store,
                timeout_ms = 10000 * slow, connect_timeout_ms = 5000 * slow }
    if unpaced then o.rate_limits = false end
    local c = assert(aliyun.new(o))
    return c, holder
  end

  it("the account behind the instance's role (no ARN in its answer): asked of STS once, it keys a shared budget",
    function()
    local store = require("streamctl.engine.ratelimit").memory_store()
    local c = client(nil, store)
    assert.equal("unknown-account", c:account()) -- (not known before the first call asks)
    local streams = { "a1", "a2", "a3" }
    for round = 1, 3 do
      local report = c:resume_live_streams { domain_name = "push.example.com", app_name = "live",
                                             stream_names = streams }
      assert.equal(3, report.succeeded)
      if round < 3 then advance(LIFE - STALE + 1) end -- (renewed: the account stays known)
    end
    assert.equal(UID, c:account())
    local asked = server:log { action = "GetCallerIdentity" }
    assert.equal(1, #asked)
    assert.equal(200, asked[1].status)
    assert.matches("^STS%.", asked[1].account) -- signed with the role's temporary key
    c:close()
  end)

  it("signs every attempt with the current credentials: " .. CALLS .. " calls across three expiries, no auth failure",
    function()
    local c, holder = client(nil, nil, true)
    local streams = {}
    for i = 1, CALLS do streams[i] = "s" .. i end
    local report = c:resume_live_streams { domain_name = "push.example.com", app_name = "live",
      stream_names = streams, concurrency = 16,
      on_progress = function(done)
        -- every quarter, past the renewal point of the credentials in use
        if done % (CALLS / 4) == 0 and done < CALLS then advance(LIFE - STALE + 1) end
      end }
    assert.equal(CALLS, report.succeeded)
    assert.equal(0, report.failed)
    assert.equal(4, holder.fetches) -- the first, then one per expiry
    local issued = {}
    for _, e in ipairs(server:log { provider = "imds", action = "credentials" }) do
      if e.status == 200 then issued[#issued + 1] = e end
    end
    assert.equal(4, #issued)
    local keys = {}
    for _, e in ipairs(server:log { action = "ResumeLiveStream", limit = 3000 }) do
      assert.equal(200, e.status, e.code)
      keys[e.account] = true -- (the AccessKeyId it was signed with)
    end
    local n = 0
    for _ in pairs(keys) do n = n + 1 end
    assert.equal(4, n)
  end)

  it("the metadata service down for 30 s around an expiry: calls work until the credentials expire, then fail "
    .. "clearly, sending nothing, then recover", function()
    local c = client()
    local p = { domain_name = "push.example.com", app_name = "live", stream_name = "a" }
    assert(c:resume_live_stream(p)) -- t = 0: credentials until t = 120
    advance(100)
    server:faults { provider = "imds", kind = "http500", duration_s = 30 } -- down from t = 100 to t = 130
    assert(c:resume_live_stream(p)) -- stale: the renewal fails, the current ones still sign
    advance(21) -- t = 121: expired, and the service still down
    local sent = #server:log { action = "ResumeLiveStream" }
    local res, err = c:resume_live_stream(p)
    assert.is_nil(res)
    assert.equal("auth", err.kind)
    assert.equal("ResumeLiveStream", err.action)
    assert.matches("^credentials from the ECS instance's RAM role edge expired at %d+%-%d+%-%d+T%d+:%d+:%d+Z: GET "
      .. ".*/latest/meta%-data/ram/security%-credentials/edge: HTTP 500", err.message)
    assert.equal(sent, #server:log { action = "ResumeLiveStream" })
    advance(10) -- t = 131: back
    assert(c:resume_live_stream(p))
    -- the role's credentials were asked for four times in all: at the start, once when stale, once after the
    -- expiry, once when back (while down, without a token: the token request failed first), never in a loop
    local asked = 0
    for _, e in ipairs(server:log { provider = "imds", action = "credentials" }) do
      if e.status == 500 or e.status == 200 then asked = asked + 1 end
    end
    assert.equal(4, asked)
  end)

  it("from the command: the instance's role and a credentials URI found by the chain", function()
    local process = require "spec.helpers.process"
    local home = process.temp_dir()
    local cli = process.installed { home = home }
    local call = "aliyun resume-live-stream --domain-name push.example.com --app-name live --stream-name a "
      .. "--endpoint " .. server.aliyun_tls_url .. " --ca-file " .. process.quote(server.ca_file) .. " --output json"
    local code, out, err = cli.run(call, "ALIBABA_CLOUD_ECS_METADATA=edge STREAMCTL_TEST_IMDS_ENDPOINT="
      .. server.imds_url)
    assert.equal(0, code, err)
    assert.matches('"ok":true', out)
    assert.equal(1, #server:log { provider = "imds", action = "credentials" })
    local uri = server.aliyun_url .. "/credentials-uri"
    code, out, err = cli.run(call, "ALIBABA_CLOUD_CREDENTIALS_URI=" .. uri)
    assert.equal(0, code, err)
    assert.matches('"ok":true', out)
    -- the metadata service down: a run with the credentials cache uses what the first run cached
    -- (issue 70); one without says so, naming the source, and sends nothing
    local before = #server:log { action = "ResumeLiveStream" }
    server:faults { provider = "imds", kind = "http500", count = 10 }
    local cached_code, _, cached_err = cli.run(call, "ALIBABA_CLOUD_ECS_METADATA=edge "
      .. "ALIBABA_CLOUD_IMDSV1_DISABLED=true STREAMCTL_TEST_IMDS_ENDPOINT=" .. server.imds_url)
    assert.equal(0, cached_code, cached_err)
    assert.equal(1, #server:log { provider = "imds", action = "credentials" })
    before = before + 1
    code, out = cli.run(call .. " --no-credentials-cache", "ALIBABA_CLOUD_ECS_METADATA=edge "
      .. "ALIBABA_CLOUD_IMDSV1_DISABLED=true STREAMCTL_TEST_IMDS_ENDPOINT=" .. server.imds_url)
    assert.equal(1, code)
    assert.matches('"code":"CredentialsUnavailable"', out)
    assert.matches("credentials from the ECS instance's RAM role %(edge%) could not be had: the metadata service "
      .. "gave no token and IMDSv1 is turned off", out)
    assert.equal(before, #server:log { action = "ResumeLiveStream" })
    os.execute("rm -rf " .. process.quote(home))
  end)

  describe("roles assumed through STS, found by the chain", function()
    local process = require "spec.helpers.process"
    local cjson = require "cjson"
    local home
    before_each(function() home = process.temp_dir() end)
    after_each(function() os.execute("rm -rf " .. process.quote(home)) end)

    -- The client streamctl.credentials.aliyun makes from `env` and HOME's files, and a call with it.
    local function call_with(env, cache)
      env.HOME = home
      local creds, err = require("streamctl.credentials").aliyun { getenv = function(name) return env[name] end,
                                                                   ca_file = server.ca_file, credentials_cache = cache }
      assert.is_nil(err)
      local c = assert(aliyun.new { endpoint = server.aliyun_tls_url, ca_file = server.ca_file,
                                    credentials = creds.credentials })
      local res, cerr = c:resume_live_stream { domain_name = "push.example.com", app_name = "live", stream_name = "a" }
      return res, cerr, creds.credentials
    end
    local function sts_calls(action)
      local n = 0
      for _, e in ipairs(server:log { action = action }) do
        if e.status == 200 then n = n + 1 end
      end
      return n
    end

    it("RamRoleArn (aliyun-cli), and a chain of two roles", function()
      local sts_host = server.aliyun_tls_url:gsub("^https://", "")
      os.execute("mkdir -p " .. process.quote(home .. "/.aliyun"))
      process.write_file(home .. "/.aliyun/config.json", cjson.encode { current = "ops", profiles = {
        { name = "ops", mode = "RamRoleArn", access_key_id = "LTAIuser", access_key_secret = "s",
          ram_role_arn = ROLE, ram_session_name = "cron", sts_endpoint = sts_host },
        { name = "chain", mode = "ChainableRamRoleArn", source_profile = "ops", ram_role_arn = ROLE,
          sts_endpoint = sts_host } } })
      local res, err, holder = call_with {}
      assert.is_nil(err)
      assert.truthy(res.RequestId)
      assert.equal(UID, holder.account_id) -- (from the role's ARN: the budget's key)
      assert.equal(1, sts_calls("AssumeRole"))
      res, err = call_with { ALIBABA_CLOUD_PROFILE = "chain" }
      assert.is_nil(err)
      assert.truthy(res.RequestId)
      -- (the chain: ops's role, which the first call left in the credentials cache, then the role it assumes)
      assert.equal(2, sts_calls("AssumeRole"))
      res, err = call_with({ ALIBABA_CLOUD_PROFILE = "chain" }, false)
      assert.is_nil(err)
      assert.truthy(res.RequestId)
      assert.equal(4, sts_calls("AssumeRole")) -- (without the cache: both roles again)
    end)

    it("OIDC from the environment (RRSA), the token file read at each renewal", function()
      local token = server:oidc_token({ provider = OIDC_PROVIDER }).token
      process.write_file(home .. "/token", token .. "\n")
      -- (no credentials cache: each call renews, as a process of its own without one would)
      local res, err = call_with({ ALIBABA_CLOUD_OIDC_TOKEN_FILE = home .. "/token",
        ALIBABA_CLOUD_OIDC_PROVIDER_ARN = OIDC_PROVIDER, ALIBABA_CLOUD_ROLE_ARN = OIDC_ROLE,
        ALIBABA_CLOUD_STS_ENDPOINT = server.aliyun_tls_url }, false)
      assert.is_nil(err)
      assert.truthy(res.RequestId)
      assert.equal(1, sts_calls("AssumeRoleWithOIDC"))
      os.remove(home .. "/token")
      local _, err2 = call_with({ ALIBABA_CLOUD_OIDC_TOKEN_FILE = home .. "/token",
        ALIBABA_CLOUD_OIDC_PROVIDER_ARN = OIDC_PROVIDER, ALIBABA_CLOUD_ROLE_ARN = OIDC_ROLE,
        ALIBABA_CLOUD_STS_ENDPOINT = server.aliyun_tls_url }, false)
      assert.equal("auth", err2.kind)
      assert.matches("the OIDC token file " .. (home .. "/token"):gsub("%p", "%%%0") .. " cannot be read", err2.message)
    end)

    it("a role that refuses: the call fails naming the source and STS's answer", function()
      os.execute("mkdir -p " .. process.quote(home .. "/.aliyun"))
      process.write_file(home .. "/.aliyun/config.json", cjson.encode { current = "ops", profiles = {
        { name = "ops", mode = "RamRoleArn", access_key_id = "LTAIuser", access_key_secret = "s",
          ram_role_arn = "acs:ram::" .. UID .. ":role/nobody", sts_endpoint = server.aliyun_tls_url } } })
      local res, err = call_with {}
      assert.is_nil(res)
      assert.equal("auth", err.kind)
      assert.matches("^credentials from .*config%.json %[ops%] %(acs:ram::" .. UID .. ":role/nobody%) could not be "
        .. "had: streamctl: sts AssumeRole: ", err.message)
    end)
  end)

  it("says who the credentials are: streamctl aliyun whoami, and streamctl.credentials.identity", function()
    local process = require "spec.helpers.process"
    local home = process.temp_dir()
    local cli = process.installed { home = home }
    local flags = " --ca-file " .. process.quote(server.ca_file) .. " --sts-endpoint " .. server.aliyun_tls_url
    local code, out, err = cli.run("aliyun whoami" .. flags, "ALIBABA_CLOUD_ACCESS_KEY_ID=LTAIuser "
      .. "ALIBABA_CLOUD_ACCESS_KEY_SECRET=s")
    assert.equal(0, code, err)
    assert.equal("account   " .. UID .. "\nidentity  RAMUser\narn       acs:ram::" .. UID .. ":user/u\n"
      .. "source    environment\n", out)
    code, out, err = cli.run("aliyun whoami --output json" .. flags, "ALIBABA_CLOUD_ECS_METADATA=edge "
      .. "STREAMCTL_TEST_IMDS_ENDPOINT=" .. server.imds_url)
    assert.equal(0, code, err)
    assert.matches('^{"account_id":"' .. UID .. '","identity_type":"AssumedRoleUser","arn":"acs:ram::' .. UID
      .. ':role/edge/[^"]+","principal_id":"[^"]+","source":"the ECS instance\'s RAM role","expires":"%d%d%d%d%-%d%d%-'
      .. '%d%dT%d%d:%d%d:%d%dZ","from_cache":false}\n$', out) -- (temporary: when they expire, fetched by this run)
    -- a key STS does not know: said, exit 1, no secret shown
    code, out, err = cli.run("aliyun whoami" .. flags, "ALIBABA_CLOUD_ACCESS_KEY_ID=LTAInobody "
      .. "ALIBABA_CLOUD_ACCESS_KEY_SECRET=topsecret-value")
    assert.equal(1, code)
    assert.equal("", out)
    assert.matches("^streamctl: sts GetCallerIdentity: InvalidAccessKeyId%.NotFound %(HTTP 404%): Specified access key "
      .. "is not found%. %[RequestId [%x-]+%]\n$", err)
    assert.is_nil(err:find("topsecret", 1, true))
    -- --debug: STS's requests and answers too, redacted (issue 89: it printed nothing); the instance's role:
    -- the metadata service's, then GetCallerIdentity's
    code, out, err = cli.run("aliyun whoami --debug --no-credentials-cache" .. flags,
      "ALIBABA_CLOUD_ACCESS_KEY_ID=LTAIuser ALIBABA_CLOUD_ACCESS_KEY_SECRET=topsecret-value")
    assert.equal(1, code, err) -- (LTAIuser's secret is "s": STS refuses it, and --debug shows why)
    assert.equal("", out)
    assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ streamctl: debug: GetCallerIdentity call, attempt 1: ",
      err)
    assert.truthy(err:find("\n[%d%-T:.Z]+ > POST " .. server.aliyun_tls_url:gsub("%p", "%%%0")) or
      err:find("\n[%d%-T:.Z]+ > GET " .. server.aliyun_tls_url:gsub("%p", "%%%0")), err)
    assert.truthy(err:find("\n[%d%-T:.Z]+ < 4%d%d"), err)
    assert.is_nil(err:find("topsecret", 1, true))
    os.execute("rm -rf " .. process.quote(home))
    -- in Lua
    local who = assert(require("streamctl.credentials").identity({ access_key_id = "LTAIuser",
      access_key_secret = "s" }, { sts_endpoint = server.aliyun_tls_url, ca_file = server.ca_file }))
    assert.same({ UID, "RAMUser", "acs:ram::" .. UID .. ":user/u" }, { who.account_id, who.identity_type, who.arn })
  end)

  it("takes either the keys or credentials, not both", function()
    local c, err = aliyun.new { credentials = refresh.new { source = "s", fetch = function() end },
                                access_key_id = "K", access_key_secret = "S" }
    assert.is_nil(c)
    assert.equal("streamctl: aliyun: InvalidParameter: option 'access_key_id' cannot be given with 'credentials' "
      .. "(which gives the keys)", tostring(err))
    c, err = aliyun.new { credentials = {} }
    assert.is_nil(c)
    assert.matches("option 'credentials' must be an object with methods 'get'", tostring(err), 1, true)
  end)
end)
