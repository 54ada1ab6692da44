-- tier: unit
-- What the command line stands on, checked in one process: dry runs that
-- show no secret, stopping a run between steps (Ctrl-C), max_rate, the
-- credentials chain and its files, stream lists.
local aliyun = require "streamctl.aliyun"
local zego = require "streamctl.zego"
local credentials = require "spec.helpers.credentials"
local cli = require "streamctl.cli"
local checks = require "spec.helpers.checks"

local NOW = 1700000000
local reply = checks.reply
local function client(mod, opts, script)
  return checks.scripted_client(mod, NOW, opts, script)
end
local OK_ALI = function() return reply(200, '{"RequestId":"ok"}') end
local OK_ZEGO = function() return reply(200, '{"Code":0,"Message":"ok","RequestId":"z"}') end

describe("client:dry_run", function()
  it("signs what the method would send and hides the secret, signature and token; nothing is sent", function()
    local secret, token = "SECRET-abc123", "TOKEN-xyz789"
    for _, version in ipairs { "v3", "v1" } do
      local cli_, w = client(aliyun, { access_key_secret = secret, security_token = token, signature_version = version,
                                       nonce = function() return "nonce-1" end }, OK_ALI)
      local reqs = assert(cli_:dry_run("forbid_live_streams", { domain_name = "d.example", app_name = "live",
                                                                stream_names = { "a", "b", "a" } }))
      assert.equal(2, #reqs)
      assert.equal(0, #w.sent)
      for _, r in ipairs(reqs) do
        local text = r.url .. r.body
        for k, v in pairs(r.headers) do text = text .. k .. v end
        assert.is_nil(text:find(secret, 1, true))
        assert.is_nil(text:find(token, 1, true))
        assert.truthy(text:find("Signature=<redacted>", 1, true))
      end
      if version == "v1" then
        assert.truthy(reqs[1].url:find("&SecurityToken=<redacted>&", 1, true))
        assert.truthy(reqs[2].url:find("StreamName=b", 1, true))
      else
        assert.equal("<redacted>", reqs[1].headers["x-acs-security-token"])
        assert.truthy(reqs[1].headers.authorization:find("^ACS3%-HMAC%-SHA256 Credential=AK,SignedHeaders=[%w;-]+,"
          .. "Signature=<redacted>$"))
      end
    end
  end)

  it("for ZEGO hides the Signature, which would let the URL be replayed, and takes no Sequence", function()
    local z, w = client(zego, {}, OK_ZEGO)
    local reqs = assert(z:dry_run("resume_rtc_streams", { stream_ids = { "a", "b" } }))
    assert.equal(1, #reqs)
    assert.truthy(reqs[1].url:find("&Signature=<redacted>&", 1, true))
    assert.is_nil(reqs[1].url:find("Signature=%x"))
    assert(z:resume_rtc_streams { stream_ids = { "a", "b" } })
    assert.equal(reqs[1].url:match("Sequence=(%d+)"), w.sent[1].url:match("Sequence=(%d+)"))
  end)

  it("checks the fields as the method does, and names an unknown method", function()
    local z = client(zego, {}, OK_ZEGO)
    local reqs, err = z:dry_run("resume_rtc_stream", {})
    assert.is_nil(reqs)
    assert.equal("field 'stream_id' is required", err.message)
    checks.raises(function() z:dry_run("resume_rtc_stream_please", {}) end,
      "not a method of streamctl.zego: resume_rtc_stream_please", "15-tools_spec")
  end)

  it("client:redact takes a prepared request", function()
    local ali = client(aliyun, { signature_version = "v1", security_token = "TOKEN-1" }, OK_ALI)
    local req = assert(ali:prepare("ResumeLiveStream", { LiveStreamType = "publisher", DomainName = "d", AppName = "a", StreamName = "s" }))
    assert.truthy(req.url:find("SecurityToken=TOKEN-1", 1, true))
    local r = ali:redact(req)
    assert.is_nil(r.url:find("TOKEN-1", 1, true))
    assert.equal(req.url:gsub("Signature=[^&]*", "Signature=<redacted>"):gsub("TOKEN%-1", "<redacted>"), r.url)
  end)
end)

describe("cancel", function()
  it("stops a batch between steps: sent streams reported, the rest not sent and marked Interrupted", function()
    local stop = false
    local ali, w = client(aliyun, { cancel = function() return stop end }, function(_, n)
      if n == 3 then stop = true end
      return OK_ALI()
    end)
    local names = {}
    for i = 1, 10 do names[i] = "s" .. i end
    local report = assert(ali:resume_live_streams { domain_name = "d", app_name = "live", stream_names = names,
                                                    concurrency = 1 })
    assert.equal(3, #w.sent)
    assert.same({ 10, 3, 7, 0 }, { report.total, report.succeeded, report.failed, report.unknown })
    local r = report.results[4]
    assert.same({ "s4", false, 0, "Interrupted", "interrupted", false },
      { r.stream, r.ok, r.attempts, r.error.code, r.error.kind, r.error.sent })
  end)

  it("keeps unknown a stream whose earlier attempt may have applied", function()
    local stop = false
    local ali = client(aliyun, { cancel = function() return stop end }, function()
      stop = true
      return nil, { code = "Timeout", message = "timed out", sent = true }
    end)
    local report = assert(ali:forbid_live_streams { domain_name = "d", app_name = "live", stream_names = { "x" } })
    local r = report.results[1]
    assert.same({ 1, true, "Timeout" }, { report.unknown, r.outcome_unknown, r.error.code })
  end)
end)

describe("max_rate", function()
  it("lowers every cap, never raises one, and needs pacing", function()
    local ali = client(aliyun, { max_rate = 5, rate_margin = 0 }, OK_ALI)
    assert.equal(5, ali:rate_for("ResumeLiveStream"))
    assert.equal(5, ali:rate_for("DescribeLiveStreamsOnlineList")) -- no published cap: now 5
    ali = client(aliyun, { max_rate = 100, rate_margin = 0 }, OK_ALI)
    assert.equal(30, ali:rate_for("ResumeLiveStream"))
    local _, err = aliyun.new { access_key_id = "AK", access_key_secret = "sk", max_rate = 5, rate_limits = false }
    assert.equal("option 'max_rate' needs pacing; it cannot be combined with rate_limits = false", err.message)
    -- the lowest rate pacing keeps (the command's --rate has the same floor)
    for _, v in ipairs { 0, 0.00001, 1e-310 } do
      _, err = aliyun.new { access_key_id = "AK", access_key_secret = "sk", max_rate = v }
      assert.equal("option 'max_rate' must be at least 0.0001", err.message)
    end
    assert(aliyun.new { access_key_id = "AK", access_key_secret = "sk", max_rate = 0.0001 })
  end)
end)

describe("streamctl.credentials", function()
  local home
  before_each(function()
    home = os.tmpname()
    os.remove(home)
    os.execute("mkdir -p '" .. home .. "/.alibabacloud' '" .. home .. "/.config/streamctl'")
  end)
  after_each(function() os.execute("rm -rf '" .. home .. "'") end)
  local function write(path, text)
    local f = assert(io.open(home .. "/" .. path, "wb"))
    f:write(text)
    f:close()
    os.execute("chmod 600 '" .. home .. "/" .. path .. "'")
  end
  local function env(vars) return function(name) return vars[name] end end

  it("gives the client's options, and says where it found them", function()
    local c, err, warnings, source = credentials.aliyun { getenv = env {
      ALIBABA_CLOUD_ACCESS_KEY_ID = "AK", ALIBABA_CLOUD_ACCESS_KEY_SECRET = "SK", ALIBABA_CLOUD_SECURITY_TOKEN = "T" } }
    assert.same({ access_key_id = "AK", access_key_secret = "SK", security_token = "T" }, c)
    assert.same({ nil, {}, "environment" }, { err, warnings, source })
    assert(aliyun.new(c))
    write(".alibabacloud/credentials", "[default]\ntype = sts\naccess_key_id = STS.A\naccess_key_secret = S\n"
      .. "security_token = 'quoted token'\n")
    local warnings2
    c, err, warnings2, source = credentials.aliyun { getenv = env { HOME = home } }
    assert.same({}, warnings2) -- 600: nobody else reads it
    assert.is_nil(err)
    assert.same({ access_key_id = "STS.A", access_key_secret = "S", security_token = "quoted token" }, c)
    assert.equal(home .. "/.alibabacloud/credentials [default]", source)
  end)

  it("names what is missing, and the file and line of what is wrong", function()
    local c, err = credentials.aliyun { getenv = env { ALIBABA_CLOUD_ACCESS_KEY_ID = "AK", HOME = home } }
    assert.is_nil(c)
    assert.equal("ALIBABA_CLOUD_ACCESS_KEY_ID is set but ALIBABA_CLOUD_ACCESS_KEY_SECRET is not", err)
    c, err = credentials.aliyun { getenv = env { HOME = home } }
    assert.is_nil(c)
    assert.equal("no Alibaba Cloud credentials: set ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET, "
      .. "or add profile [default] to " .. home .. "/.alibabacloud/credentials or " .. home .. "/.aliyun/config.json",
      err)
    for text, want in pairs {
      ["[default]\naccess_key_id = A\n"] = ":1: profile [default] has no access_key_secret",
      ["access_key_id = A\n"] = ":1: 'access_key_id' comes before any [section]",
      ["[default]\n[default]\n"] = ":2: section [default] appears twice (first at line 1)",
      ["[]\n"] = ":1: a section needs a name",
    } do
      write(".alibabacloud/credentials", text)
      c, err = credentials.aliyun { getenv = env { HOME = home } }
      assert.is_nil(c)
      assert.equal(home .. "/.alibabacloud/credentials" .. want, err)
    end
    write(".config/streamctl/config", "[zego]\napp_id = 1\n")
    c, err = credentials.zego { getenv = env { HOME = home } }
    assert.is_nil(c)
    assert.equal(home .. "/.config/streamctl/config:1: [zego] has no server_secret", err)
  end)

  it("read one INI dialect: comments on their own line or after a [section], quoted values, a BOM", function()
    write(".alibabacloud/credentials", "\239\187\191; mine\n  # also mine\n[default] ; the default\n"
      .. "access_key_id = A;B#C\naccess_key_secret = \"S ; # S\"   # a comment\n[prod]\t#\n"
      .. "access_key_id = 'P'\naccess_key_secret=Q\n")
    assert.same({ access_key_id = "A;B#C", access_key_secret = "S ; # S" },
      credentials.aliyun { getenv = env { HOME = home } })
    assert.same({ access_key_id = "P", access_key_secret = "Q" },
      credentials.aliyun { getenv = env { HOME = home }, profile = "prod" })
    local file = home .. "/.alibabacloud/credentials"
    for text, want in pairs {
      ["[default]\naccess_key_id = A\naccess_key_secret = S ; prod\n"] = ":3: the value of access_key_secret has "
        .. "a blank followed by ; or #, which streamctl neither keeps nor cuts as a comment: put the comment on a "
        .. "line of its own, or the value in quotes",
      ["[default]\naccess_key_id = A\naccess_key_secret = 'S' x\n"] = ":3: the value of access_key_secret has "
        .. "text after its closing quote (only a ; or # comment, after a blank, may follow it)",
      ["[default]\naccess_key_id = A\nAccess_Key_Id = A\n"] = ":3: access_key_id is set twice in [default] "
        .. "(first at line 2)",
      ["[default]x\n"] = ":1: expected '[section]', optionally followed by a ; or # comment",
      ["[default];x\n"] = ":1: expected '[section]', optionally followed by a ; or # comment",
    } do
      write(".alibabacloud/credentials", text)
      local c, err = credentials.aliyun { getenv = env { HOME = home } }
      assert.is_nil(c)
      assert.equal(file .. want, err)
    end
  end)

  it("without HOME, look for no file under it (and say so), but read XDG_CONFIG_HOME's", function()
    for _, vars in ipairs { {}, { HOME = "" } } do
      local c, err = credentials.aliyun { getenv = env(vars) }
      assert.is_nil(c)
      assert.equal("no Alibaba Cloud credentials: set ALIBABA_CLOUD_ACCESS_KEY_ID and "
        .. "ALIBABA_CLOUD_ACCESS_KEY_SECRET (HOME is not set: profile files under it were not read)", err)
      c, err = credentials.zego { getenv = env(vars) }
      assert.is_nil(c)
      assert.equal("no ZEGO credentials: set ZEGO_APP_ID and ZEGO_SERVER_SECRET (HOME is not set: profile files "
        .. "under it were not read)", err)
      assert.is_nil(credentials.config_path { getenv = env(vars) })
      assert.same({}, (credentials.defaults { getenv = env(vars) }))
    end
    write(".config/streamctl/config", "[zego]\napp_id = 1\nserver_secret = s\n")
    assert.same({ app_id = "1", server_secret = "s" },
      credentials.zego { getenv = env { XDG_CONFIG_HOME = home .. "/.config" } })
    assert.equal(home .. "/.config/streamctl/config", credentials.config_path { getenv = env {
      XDG_CONFIG_HOME = home .. "/.config" } })
    assert.equal(home .. "/.config/streamctl/config", credentials.config_path { getenv = env {
      HOME = home, XDG_CONFIG_HOME = "relative/dir" } })
  end)

  it("skips a profile switched off, and reads [defaults] with where each is set", function()
    write(".alibabacloud/credentials", "[default]\nenable = false\naccess_key_id = A\naccess_key_secret = S\n")
    local c = credentials.aliyun { getenv = env { HOME = home } }
    assert.is_nil(c)
    write(".config/streamctl/config", "# mine\n[defaults]\noutput = json\n\nconcurrency = 4\n")
    local d, where = credentials.defaults { getenv = env { HOME = home } }
    assert.same({ output = "json", concurrency = "4" }, d)
    assert.equal(home .. "/.config/streamctl/config:5", where.concurrency)
  end)
end)

describe("stream lists (--from)", function()
  it("take one per line, trimmed, skipping blank lines and # comments (and a BOM at the top)", function()
    local path = os.tmpname()
    finally(function() os.remove(path) end)
    local f = assert(io.open(path, "wb"))
    f:write("\239\187\191# header\n a \n\n\tb\t\n#c\nd e\n")
    f:close()
    assert.same({ "a", "b", "d e" }, cli.read_list(path))
    local list, err = cli.read_list("/nonexistent/ids")
    assert.is_nil(list)
    assert.equal("--from: cannot read /nonexistent/ids: No such file or directory", err)
  end)
end)

describe("errors from a server that echoes the request", function()
  it("show no signature, token or secret, whatever the server quotes", function()
    local secret, token = "SECRET-abc123", "TOKEN-xyz789+/="
    local function echo(req)
      local quoted = req.url
      for k, v in pairs(req.headers) do quoted = quoted .. " " .. k .. ": " .. v end
      return quoted
    end
    for _, case in ipairs {
      { aliyun, { access_key_secret = secret, security_token = token, signature_version = "v1" } },
      { aliyun, { access_key_secret = secret, security_token = token } },
      { zego, { server_secret = "ZS-0123456789abcdef0123456789ab" } },
    } do
      local mod, opts = case[1], case[2]
      local sent = {}
      local c = client(mod, opts, function(req)
        sent[#sent + 1] = req
        local body = mod == zego and { Code = 5, Message = echo(req), RequestId = "r" }
          or { Code = "Forbidden.Echo", Message = echo(req), RequestId = "r" }
        return reply(400, require("cjson").encode(body))
      end)
      local _, err = c:call(mod == zego and "ResumeCDNLiveStream" or "DescribeLiveStreamsBlockList",
        mod == zego and { StreamId = "s" } or { DomainName = "d" })
      local text = tostring(err)
      local req = sent[1]
      local sig = req.url:match("[?&]Signature=([^&]+)") or req.headers.authorization:match("Signature=(%x+)")
      assert.truthy(sig)
      for _, s in ipairs { sig, secret, token, require("streamctl.core").percent_encode(token) } do
        assert.is_nil(text:find(s, 1, true), s .. " in " .. text)
      end
      assert.truthy(text:find("Signature=<redacted>", 1, true), text)
    end
  end)

  it("a transport failure's message is scrubbed too", function()
    local c = client(zego, {}, function(req)
      return nil, { code = "NetworkError", message = "proxy said no to " .. req.url, sent = false }
    end)
    local _, err = c:call("ResumeCDNLiveStream", { StreamId = "s" })
    assert.truthy(err.message:find("Signature=<redacted>&", 1, true), err.message)
  end)
end)

describe("a client", function()
  it("keeps no secret or token where a dump of it shows one", function()
    local secret, token = "SECRET-abc123", "TOKEN-xyz789"
    local c = assert(aliyun.new { access_key_id = "AK", access_key_secret = secret, security_token = token })
    local z = assert(zego.new { app_id = 1, server_secret = "ZS-0123456789abcdef0123456789ab" })
    for _, obj in ipairs { c, z } do
      local seen = {}
      local function walk(v, path)
        if type(v) == "string" then
          for _, s in ipairs { secret, token, "ZS-0123456789abcdef0123456789ab" } do
            assert.is_nil(v:find(s, 1, true), "a secret at " .. path)
          end
        elseif type(v) == "table" and not seen[v] then
          seen[v] = true
          for k, x in pairs(v) do walk(x, path .. "." .. tostring(k)) end
        end
      end
      walk(obj, "client")
      assert.is_nil(tostring(obj):find("SECRET", 1, true))
    end
    -- and it still signs with the token
    local req = assert(c:prepare("ResumeLiveStream", { LiveStreamType = "publisher", DomainName = "d", AppName = "a", StreamName = "s" }))
    assert.equal(token, req.headers["x-acs-security-token"])
  end)
end)
