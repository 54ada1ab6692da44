-- The operator's layer under faults, identities and what is shown (issue 34),
-- one row per fault: a source the operator named (a profile, a credentials
-- file, a config file's current profile) that is missing or broken is an
-- error naming it, never a fall-through to another identity; credentials
-- that arrive expired are a failed renewal (backoff, one fetch per step, a
-- message that says what arrived); a URL with a password or a token is
-- never shown whole; --emulator-dir takes that emulator's ports. Rows on the
-- audit log and the state: spec/47.
local credentials = require "spec.helpers.credentials"
local refresh = require "streamctl.credentials.refresh"
local sources = require "streamctl.credentials.sources"
local redact = require "streamctl.base.redact"
local cli = require "streamctl.cli"
local emu = require "spec.helpers.emulator"
local process = require "spec.helpers.process"

local q = process.quote
local T0 = 1800000000

local function home_with(files)
  local dir = process.temp_dir()
  for path, text in pairs(files) do
    os.execute("mkdir -p " .. q(dir .. "/" .. path:match("^(.*)/[^/]*$")))
    process.write_file(dir .. "/" .. path, text)
    os.execute("chmod 600 " .. q(dir .. "/" .. path))
  end
  return dir
end

local function env(vars)
  return function(name) return vars[name] end
end

local INI_DEFAULT = "[default]\naccess_key_id = LTAIdefault\naccess_key_secret = default-secret\n"
local CONFIG = [[{"current":"dev","profiles":[{"name":"dev","mode":"AK","access_key_id":"LTAIdev",
  "access_key_secret":"dev-secret"}]}]]

describe("the operator's layer under faults: identities", function()
  describe("a source the operator named", function()
    it("a profile named by --profile that is nowhere: an error naming it, not the [default] beside it", function()
      local home = home_with { [".alibabacloud/credentials"] = INI_DEFAULT }
      local c, err = credentials.aliyun { profile = "prod", getenv = env {}, home = home }
      assert.is_nil(c)
      assert.equal("profile 'prod' (named by the profile option, --profile) is not in " .. home
        .. "/.aliyun/config.json or " .. home .. "/.alibabacloud/credentials", err)
    end)

    it("a profile named without a home directory: an error naming it, once saying why no file was read", function()
      local c, err = credentials.aliyun { profile = "prod", getenv = env {
        ALIBABA_CLOUD_CREDENTIALS_URI = nil, HOME = nil } }
      assert.is_nil(c)
      assert.equal("profile 'prod' (named by the profile option, --profile) is not in any profile file (HOME is not "
        .. "set: profile files under it were not read)", err)
    end)

    it("a profile named by ALIBABA_CLOUD_PROFILE that is nowhere, with aliyun-cli's current profile there", function()
      local home = home_with { [".alibabacloud/credentials"] = INI_DEFAULT, [".aliyun/config.json"] = CONFIG }
      local c, err = credentials.aliyun { getenv = env { ALIBABA_CLOUD_PROFILE = "prod" }, home = home }
      assert.is_nil(c)
      assert.equal("profile 'prod' (named by ALIBABA_CLOUD_PROFILE) is not in " .. home .. "/.aliyun/config.json or "
        .. home .. "/.alibabacloud/credentials", err)
    end)

    it("a profile named with an instance role or a credentials URI also named: refused, naming both", function()
      local home = home_with { [".alibabacloud/credentials"] = INI_DEFAULT .. "[prod]\naccess_key_id = LTAIprod\n"
        .. "access_key_secret = prod-secret\n" }
      local c, err = credentials.aliyun { getenv = env { ALIBABA_CLOUD_PROFILE = "prod",
        ALIBABA_CLOUD_ECS_METADATA = "edge" }, home = home }
      assert.is_nil(c)
      assert.equal("profile 'prod' (named by ALIBABA_CLOUD_PROFILE) and ALIBABA_CLOUD_ECS_METADATA (the RAM role "
        .. "'edge') both name credentials: unset one of them", err)
      c, err = credentials.aliyun { profile = "prod", getenv = env {
        ALIBABA_CLOUD_CREDENTIALS_URI = "http://ops:hunter2@127.0.0.1:1/creds?token=abc123" }, home = home }
      assert.is_nil(c)
      assert.equal("profile 'prod' (named by the profile option, --profile) and ALIBABA_CLOUD_CREDENTIALS_URI both "
        .. "name credentials: unset one of them", err)
    end)

    it("a profile named while the environment's keys are set: two identities named, refused", function()
      local home = home_with { [".alibabacloud/credentials"] = INI_DEFAULT .. "[prod]\naccess_key_id = LTAIprod\n"
        .. "access_key_secret = prod-secret\n" }
      local c, err = credentials.aliyun { profile = "prod", home = home, getenv = env {
        ALIBABA_CLOUD_ACCESS_KEY_ID = "LTAIenv", ALIBABA_CLOUD_ACCESS_KEY_SECRET = "env-secret" } }
      assert.is_nil(c)
      assert.equal("profile 'prod' (named by the profile option, --profile) and the environment's keys "
        .. "(ALIBABA_CLOUD_ACCESS_KEY_ID) both name credentials: unset one of them", err)
    end)

    it("ZEGO: a profile named while ZEGO_APP_ID is set, or named and missing: an error naming it", function()
      local home = home_with { [".config/streamctl/config"] = "[zego]\napp_id = 1234567890\nserver_secret = "
        .. "0123456789abcdef0123456789abcdef\n" }
      local c, err = credentials.zego { profile = "prod", home = home, getenv = env {
        ZEGO_APP_ID = "1234567890", ZEGO_SERVER_SECRET = "0123456789abcdef0123456789abcdef" } }
      assert.is_nil(c)
      assert.equal("profile 'prod' (named by the profile option, --profile) and the environment (ZEGO_APP_ID) both "
        .. "name credentials: unset one of them", err)
      c, err = credentials.zego { profile = "prod", home = home, getenv = env {} }
      assert.is_nil(c)
      assert.equal("no ZEGO credentials: set ZEGO_APP_ID and ZEGO_SERVER_SECRET, or add [zego.prod] to " .. home
        .. "/.config/streamctl/config", err)
    end)

    it("a credentials file named by ALIBABA_CLOUD_CREDENTIALS_FILE that is not there, or not a file", function()
      local home = home_with { [".alibabacloud/credentials"] = INI_DEFAULT }
      local c, err = credentials.aliyun { home = home, getenv = env {
        ALIBABA_CLOUD_CREDENTIALS_FILE = home .. "/elsewhere/credentials" } }
      assert.is_nil(c)
      assert.equal("ALIBABA_CLOUD_CREDENTIALS_FILE names " .. home .. "/elsewhere/credentials, which does not exist",
        err)
      c, err = credentials.aliyun { home = home, getenv = env { ALIBABA_CLOUD_CREDENTIALS_FILE = home } }
      assert.is_nil(c)
      assert.equal("ALIBABA_CLOUD_CREDENTIALS_FILE names " .. home .. ", which cannot be read: " .. home
        .. " is not a file (a directory)", err)
    end)

    it("aliyun-cli's config names a current profile it lacks: an error, not the [default] of the other file",
      function()
      local home = home_with { [".aliyun/config.json"] = CONFIG:gsub('"current":"dev"', '"current":"gone"'),
                               [".alibabacloud/credentials"] = INI_DEFAULT }
      local c, err = credentials.aliyun { home = home, getenv = env {} }
      assert.is_nil(c)
      assert.equal(home .. "/.aliyun/config.json: its current profile 'gone' is not in its \"profiles\" list", err)
    end)

    it("a profile file that is a directory, or unreadable: an error naming it, never an empty file", function()
      local home = home_with {}
      os.execute("mkdir -p " .. q(home .. "/.aliyun/config.json") .. " " .. q(home .. "/.alibabacloud"))
      local c, err = credentials.aliyun { home = home, getenv = env {} }
      assert.is_nil(c)
      assert.equal(home .. "/.aliyun/config.json is not a file (a directory)", err)
      -- (a link to itself: ELOOP, where a dangling link is a file that is not there)
      os.execute("rmdir " .. q(home .. "/.aliyun/config.json") .. "; ln -s config.json "
        .. q(home .. "/.aliyun/config.json"))
      c, err = credentials.aliyun { home = home, getenv = env {} }
      assert.is_nil(c)
      assert.equal(home .. "/.aliyun/config.json cannot be read: Too many levels of symbolic links", err)
    end)

    it("a profile file that is a FIFO, or corrupt: an error naming the path (and the line), never skipped", function()
      local home = home_with { [".alibabacloud/credentials"] = INI_DEFAULT }
      os.execute("mkdir -p " .. q(home .. "/.aliyun") .. "; mkfifo " .. q(home .. "/.aliyun/config.json"))
      -- (a writer for 2 s at most: code that opens the FIFO to read it gets an empty file, not a hang)
      local writer = process.spawn("timeout 2 sh -c " .. q("exec 3>>" .. q(home .. "/.aliyun/config.json"))
        .. " >/dev/null 2>&1")
      local c, err = credentials.aliyun { home = home, getenv = env {} }
      assert.is_nil(c)
      assert.equal(home .. "/.aliyun/config.json is not a file (a FIFO)", err)
      -- (ended first: a writer that started late, on a busy machine, made the path a file after the rm)
      process.stop(writer)
      os.execute("rm -f " .. q(home .. "/.aliyun/config.json"))
      process.write_file(home .. "/.aliyun/config.json", '{"current":"dev",\n"profiles":[')
      c, err = credentials.aliyun { home = home, getenv = env {} }
      assert.is_nil(c)
      assert.truthy(err:find(home .. "/.aliyun/config.json:2: not valid JSON (", 1, true), err)
      os.execute("rm -f " .. q(home .. "/.aliyun/config.json"))
      process.write_file(home .. "/.alibabacloud/credentials", INI_DEFAULT .. "access_key_id = again\n")
      c, err = credentials.aliyun { home = home, getenv = env {} }
      assert.is_nil(c)
      assert.equal(home .. "/.alibabacloud/credentials:4: access_key_id is set twice in [default] (first at line 2)",
        err)
    end)

    it("a credentials file named without the profile, or with aliyun-cli's current beside it", function()
      local home = home_with { [".aliyun/config.json"] = CONFIG, ["etc/ali"] = "[prod]\naccess_key_id = LTAIprod\n"
        .. "access_key_secret = prod-secret\n" }
      local c, err = credentials.aliyun { home = home, getenv = env { ALIBABA_CLOUD_CREDENTIALS_FILE = home
        .. "/etc/ali" } }
      assert.is_nil(c)
      assert.equal("ALIBABA_CLOUD_CREDENTIALS_FILE names " .. home .. "/etc/ali, which has no profile [default]", err)
      -- (the profile named: from that file, not from aliyun-cli's, whose current is 'dev')
      c, err = credentials.aliyun { home = home, profile = "prod", getenv = env { ALIBABA_CLOUD_CREDENTIALS_FILE = home
        .. "/etc/ali" } }
      assert.is_nil(err)
      assert.equal("LTAIprod", c.access_key_id)
    end)

    it("a credentials URI named, with a [default] nobody named: the URI, never the [default]", function()
      local home = home_with { [".alibabacloud/credentials"] = INI_DEFAULT }
      local c, err, _, source = credentials.aliyun { home = home, getenv = env {
        ALIBABA_CLOUD_CREDENTIALS_URI = "http://127.0.0.1:1/creds" } }
      assert.is_nil(err)
      assert.equal("environment (ALIBABA_CLOUD_CREDENTIALS_URI)", source)
      assert.equal("streamctl credentials from environment (ALIBABA_CLOUD_CREDENTIALS_URI)", tostring(c.credentials))
    end)

    it("a named profile turned off (enable = false): an error, not the next source", function()
      local home = home_with { [".alibabacloud/credentials"] = INI_DEFAULT .. "[prod]\nenable = false\n"
        .. "access_key_id = LTAIprod\naccess_key_secret = prod-secret\n" }
      local c, err = credentials.aliyun { profile = "prod", home = home, getenv = env {} }
      assert.is_nil(c)
      assert.equal(home .. "/.alibabacloud/credentials:4: profile [prod] is turned off (enable = false), and it is "
        .. "the one named", err)
    end)
  end)

  describe("credentials that arrive expired", function()
    local function world(expires_in)
      local w = { now = T0, fetches = 0 }
      function w.clock() return w.now end
      function w.fetch()
        if w.fail then return nil, "the metadata service answered 500" end
        w.fetches = w.fetches + 1
        return { access_key_id = "STS.K" .. w.fetches, access_key_secret = "s", security_token = "t",
                 expiration = w.now + expires_in }
      end
      return w
    end

    for _, row in ipairs {
      { "already expired (a clock ahead of the source's)", -30, "expired at 2027-01-15T07:59:30Z" },
      { "expiring within the clock's uncertainty", 3, "expire at 2027-01-15T08:00:03Z" },
    } do
      it(row[1] .. ": a failed renewal, one fetch per backoff step, the message saying what arrived", function()
        local w = world(row[2])
        local h = refresh.new { source = "the ECS instance's RAM role edge", fetch = w.fetch, clock = w.clock,
                                random = function() return 1 end }
        local err
        for _ = 1, 50 do
          local c
          c, err = h:get()
          assert.is_nil(c)
        end
        assert.equal(1, w.fetches) -- (50 gets, 50 fetches before)
        assert.equal("credentials from the ECS instance's RAM role edge could not be had: the source gave "
          .. "credentials that " .. row[3] .. " (this machine's clock says 2027-01-15T08:00:00Z; less than 5 s left "
          .. "is taken as none) (next try in 1.0 s)", err.message)
        w.now = T0 + 1
        assert.is_nil((h:get()))
        assert.equal(2, w.fetches)
        w.now = T0 + 2 -- (the second step: 2 s)
        assert.is_nil((h:get()))
        assert.equal(2, w.fetches)
      end)
    end

    it("rotated: credentials renewed before they expire are used; none signs past its expiry", function()
      local w = world(1800)
      local h = refresh.new { source = "s", fetch = w.fetch, clock = w.clock, random = function() return 1 end }
      assert.equal("STS.K1", assert(h:get()).access_key_id)
      w.now = T0 + 1300 -- (a third of the life left: renewed first)
      assert.equal("STS.K2", assert(h:get()).access_key_id)
      -- the source fails from here: the current ones until their last signing second, then an error
      w.fail = true
      w.now = T0 + 1300 + 1800 - 2
      assert.equal("STS.K2", assert(h:get()).access_key_id)
      w.now = T0 + 1300 + 1800 - 1
      local c, err = h:get()
      assert.is_nil(c)
      assert.equal("CredentialsUnavailable", err.code)
    end)
  end)

  describe("credentials and the clock", function()
    it("a clock ahead of the source's: what arrives counts as expired, one fetch per backoff step", function()
      -- the source's clock says T0; this machine's says T0 + 1000; it hands out 900 s by its own
      local now, fetches = T0 + 1000, 0
      local h = refresh.new { source = "the credentials URI", clock = function() return now end,
        random = function() return 1 end, fetch = function()
          fetches = fetches + 1
          return { access_key_id = "STS.A", access_key_secret = "s", security_token = "t", expiration = T0 + 900 }
        end }
      local err
      for _ = 1, 50 do
        local c
        c, err = h:get()
        assert.is_nil(c)
      end
      assert.equal(1, fetches)
      assert.equal("credentials from the credentials URI could not be had: the source gave credentials that expired "
        .. "at 2027-01-15T08:15:00Z (this machine's clock says 2027-01-15T08:16:40Z; less than 5 s left is taken as "
        .. "none) (next try in 1.0 s)", err.message)
      assert.equal("auth", err.kind)
    end)

    it("a holder of another make that hands out expired credentials: nothing signed with them", function()
      local exp, started = os.time() - 10, 0
      -- (a transport that answers 200 at once: the code before the check signed and "succeeded")
      local keys = {}
      local transport = { start = function(key) started = started + 1 keys[#keys + 1] = key return true end,
        poll = function()
          local done = {}
          for i, key in ipairs(keys) do
            done[i] = { key = key, res = { status = 200, headers = {}, body = '{"RequestId":"R-1"}' } }
          end
          keys = {}
          return done
        end, sleep = function() end, close = function() end }
      local ali = assert(require("streamctl.aliyun").new { account_id = "1234567890123456", transport = transport,
        endpoint = "https://127.0.0.1:1", credentials = { source = "a test holder", get = function()
          return { access_key_id = "STS.old", access_key_secret = "s", security_token = "t", expiration = exp }
        end } })
      local res, err = ali:forbid_live_stream { domain_name = "push.example.com", app_name = "live",
        stream_name = "s1" }
      assert.is_nil(res)
      assert.equal("CredentialsUnavailable", err.code)
      assert.equal("credentials from a test holder expired at " .. os.date("!%Y-%m-%dT%H:%M:%SZ", exp) .. ": the "
        .. "holder gave them, nothing was signed with them", err.message)
      assert.equal(0, started)
    end)
  end)

  describe("a URL never shown whole", function()
    it("redact.url: the user information, the path, every query value and the fragment hidden, the rest kept",
      function()
      for _, row in ipairs {
        { "http://ops:hunter2@127.0.0.1:8080/creds?token=abc123&role=edge",
          "http://<redacted>@127.0.0.1:8080/<redacted>?token=<redacted>&role=<redacted>" },
        { "redis://:s3cret@10.0.0.5:6379/0", "redis://<redacted>@10.0.0.5:6379/<redacted>" },
        { "socks5h://proxy-user:proxy-pw@10.0.0.9:1080", "socks5h://<redacted>@10.0.0.9:1080" },
        { "https://sts.aliyuncs.com", "https://sts.aliyuncs.com" },
        { "http://[::1]:8080/x", "http://[::1]:8080/<redacted>" },
        { "https://h/p#access_token=x", "https://h/<redacted>#<redacted>" },
        { "http://h/p?a=1&bare-token&b=", "http://h/<redacted>?a=<redacted>&<redacted>&b=<redacted>" },
        -- (a password with an unescaped '/', '?' or '#' cuts the authority short: all hidden)
        { "http://ops:hun/ter2@host/creds", "http://<redacted>" },
        { "http://ops:hun?ter2@host/creds", "http://<redacted>" },
        { "http://ops:hun#ter2@host/creds", "http://<redacted>" },
        { "http://ops:hunter2/creds", "http://<redacted>" }, -- (no '@': 'ops:hunter2' is no host:port)
        { "ops:hunter2@host", "<redacted>" },
        { "/var/run/creds", "/<redacted>" },
      } do
        assert.equal(row[2], redact.url(row[1]), row[1])
      end
    end)

    it("a credentials URI with a password and a token, failing: neither in the message, exact", function()
      local uri = "http://ops:hunter2@127.0.0.1:1/creds?token=abc123"
      -- a transport whose message quotes the URL, as some do
      local fetch = assert(sources.fetcher({ type = "credentials_uri", uri = uri }, function(req)
        return nil, { code = "NetworkError", message = "connect to " .. req.url .. " refused" }
      end))
      local h = refresh.new { source = "environment (ALIBABA_CLOUD_CREDENTIALS_URI)", fetch = fetch,
        clock = function() return T0 end, random = function() return 0.5 end }
      local c, err = h:get()
      assert.is_nil(c)
      assert.equal("credentials from environment (ALIBABA_CLOUD_CREDENTIALS_URI) could not be had: GET "
        .. "http://<redacted>@127.0.0.1:1/<redacted>?token=<redacted>: connect to http://<redacted>@127.0.0.1:1/"
        .. "<redacted>?token=<redacted> refused (next try in 0.5 s)", err.message)
      -- and through libcurl, a port nobody listens on
      local port = process.free_port()
      uri = "http://ops:hunter2@127.0.0.1:" .. port .. "/creds?token=abc123"
      fetch = assert(sources.fetcher({ type = "credentials_uri", uri = uri },
        assert(sources.exchange { timeout_ms = 1000, connect_timeout_ms = 1000 })))
      local why
      c, why = fetch()
      assert.is_nil(c)
      assert.is_nil(why:find("hunter2", 1, true), why)
      assert.is_nil(why:find("abc123", 1, true), why)
      assert.equal("GET http://<redacted>@127.0.0.1:" .. port .. "/<redacted>?token=<redacted>: ",
        why:sub(1, #("GET http://<redacted>@127.0.0.1:" .. port .. "/<redacted>?token=<redacted>: ")))
    end)

    it("a Redis URL with a password, bad or unreachable: the password in no message", function()
      local redisconn = require "streamctl.store.redisconn"
      local c, err = redisconn.config("redis://alice:s3cret@127.0.0.1:99999/0")
      assert.is_nil(c)
      assert.equal("redis URL: the port must be an integer in 1..65535", err)
      local port = process.free_port()
      local cfg = assert(redisconn.config("redis://alice:s3cret@127.0.0.1:" .. port .. "/0"))
      local conn = assert(redisconn.connect(cfg))
      local res, why = conn:eval(redisconn.script("return 1"), {}, {})
      assert.is_nil(res)
      for _, text in ipairs { tostring(cfg), tostring(conn), tostring(why), conn:address() } do
        assert.is_nil(text:find("s3cret", 1, true), text)
      end
      assert.equal("127.0.0.1:" .. port, conn:address())
      conn:close()
    end)

    it("a proxy with a password, failing: neither the user's password nor the proxy's in the message", function()
      local port = process.free_port()
      local proxy = "http://proxy-user:proxy-pw@127.0.0.1:" .. port .. "/?key=k3y"
      local fetch = assert(sources.fetcher({ type = "credentials_uri", uri = "http://127.0.0.1:1/creds" },
        assert(sources.exchange { timeout_ms = 1000, connect_timeout_ms = 1000, proxy = proxy })))
      local c, why = fetch()
      assert.is_nil(c)
      assert.is_nil(why:find("proxy-pw", 1, true), why)
      assert.is_nil(why:find("k3y", 1, true), why)
      assert.truthy(why:find("^GET http://127.0.0.1:1/<redacted>: "), why)
      -- a transport's message that quotes the proxy: shown redacted
      assert.equal("via http://<redacted>@127.0.0.1:" .. port .. "/?key=<redacted>: refused",
        redact.url_in("via " .. proxy .. ": refused", proxy))
    end)
  end)

  describe("the emulator the command is pointed at", function()
    local server
    lazy_setup(function() server = emu.start {} end)
    lazy_teardown(function() if server then server:stop() end end)

    local function run(argv)
      local buffer = require("spec.helpers.checks").buffer
      local out, err = buffer(), buffer()
      local status = cli.main(argv, { stdout = out, stderr = err,
        signal = { catch = function() end, caught = function() return nil end },
        getenv = function(name) if name == "HOME" then return server.dir end end })
      return status, out:text(), err:text()
    end

    it("--profile with the command line's keys or with --emulator: two identities named, refused", function()
      for _, row in ipairs {
        { { "zego", "forbid-rtc-stream", "--stream-id", "p1", "--profile", "prod", "--emulator", "--emulator-dir",
            server.dir }, "--emulator" },
        { { "zego", "forbid-rtc-stream", "--stream-id", "p1", "--profile", "prod", "--app-id", "1234567890",
            "--server-secret", "0123456789abcdef0123456789abcdef", "--endpoint", server.zego_url }, "--app-id" },
        { { "aliyun", "resume-live-stream", "--domain-name", "d", "--app-name", "a", "--stream-name", "s",
            "--profile", "prod", "--access-key-secret", "x", "--endpoint", server.aliyun_url }, "--access-key-secret" },
      } do
        local status, out, err = run(row[1])
        assert.same({ 2, "", "streamctl: --profile and " .. row[2] .. " both name credentials: give one of them\n" },
          { status, out, err })
      end
      assert.equal(0, #server:log { limit = 10 })
    end)

    it("--emulator --emulator-dir DIR: that emulator's ports, not the default ones beside its CA", function()
      assert.are_not.equal(18444, server.ports.zego_tls)
      local status, out, err = run { "zego", "forbid-rtc-stream", "--stream-id", "e1", "--emulator", "--emulator-dir",
        server.dir, "--no-audit-log" }
      assert.equal(0, status, err)
      assert.truthy(out:find("e1", 1, true), out)
      assert.equal(1, #server:log { action = "ForbidRTCStream" })
      local dir = process.temp_dir()
      local _
      status, _, err = run { "zego", "forbid-rtc-stream", "--stream-id", "e1", "--emulator", "--emulator-dir", dir }
      assert.equal(2, status)
      assert.truthy(err:find("--emulator: no emulator was started in " .. dir, 1, true), err)
      assert.truthy(err:find("start it with: streamctl emulator start --dir " .. dir, 1, true), err)
      status, _, err = run { "zego", "forbid-rtc-stream", "--stream-id", "e1", "--emulator-dir", dir }
      assert.equal(2, status)
      assert.equal("streamctl: --emulator-dir goes with --emulator\n", err)
      os.execute("rm -rf " .. q(dir))
    end)
  end)
end)
