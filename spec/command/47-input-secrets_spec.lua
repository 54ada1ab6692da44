-- Issue 47's fault matrix, the rows of helper "secrets", one `it` a row:
-- "Secrets never travel as parameters" (a credential-bearing parameter
-- name refused by `call` and the library, never printed, sent or audited;
-- a `call` argument's parameters read as written), "One redaction rule
-- covers URL paths too" (a credentials URI's token in its path, a proxy's,
-- a URL with no scheme), and "The audit names what a run changes" for
-- `call` (the streams its parameters name, in the intent and the outcome,
-- each with its outcome; a bad parameter refused before the intent).
-- Against the emulator (127.0.0.1): "nothing sent" is its request log empty.
local cjson = require "cjson"
local streamctl = require "streamctl"
local redact = require "streamctl.base.redact"
local sources = require "streamctl.credentials.sources"
local emu = require "spec.helpers.emulator"
local process = require "spec.helpers.process"

local HOME = process.temp_dir()
local ALI_SECRET, ZEGO_SECRET = "emulator-secret", "0123456789abcdef0123456789abcdef"
local LEAK = "TOPSECRET-VALUE-42"

local server
local cmd = require("spec.helpers.checks").cli(function() return server end, HOME)
local run, ali, zg = cmd.run, cmd.al, cmd.zg

local unpack = table.unpack or unpack -- luacheck: ignore 143 (LuaJIT's)

local function with(argv, ...)
  for _, a in ipairs { ... } do argv[#argv + 1] = a end
  return argv
end

local function sent() return #server:log { limit = 10000 } end

local function records(path)
  local out = {}
  for l in (process.read_file(path) or ""):gmatch("[^\n]+") do out[#out + 1] = cjson.decode(l) end
  return out
end

-- A record's streams as "stream action outcome" (the outcome only when it has one).
local function streams_of(rec)
  local out = {}
  for i, s in ipairs(rec.streams or {}) do
    out[i] = s.stream .. " " .. s.action .. (s.outcome and (" " .. s.outcome) or "")
  end
  return out
end

local fresh = 0
local function log_path()
  fresh = fresh + 1
  return HOME .. "/audit-" .. fresh .. ".jsonl"
end

local ALI_STREAM = { "DomainName=push.example.com", "AppName=live", "StreamName=s1", "LiveStreamType=publisher" }

describe("issue 47, secrets: what `call` sends, shows and audits", function()
  lazy_setup(function() server = emu.start {} end)
  lazy_teardown(function()
    if server then server:stop() end
    os.execute("rm -rf " .. process.quote(HOME))
  end)
  before_each(function() server:reset() end)

  it("aliyun call ... AccessKeySecret=... (and with --dry-run): exit 2 naming it, nothing printed, sent or audited",
    function()
      for _, dry in ipairs { true, false } do
        local log = log_path()
        local argv = with(ali("call", "ForbidLiveStream", ALI_STREAM[1], ALI_STREAM[2], ALI_STREAM[3], ALI_STREAM[4],
          "AccessKeySecret=" .. LEAK, "--audit-log", log))
        if dry then argv[#argv + 1] = "--dry-run" end
        local status, out, err = run(argv)
        assert.same({ 2, "", "streamctl: parameter 'AccessKeySecret' names a credential (a secret, password, token, "
          .. "signature or key): streamctl never sends one as a parameter (it signs each request with the "
          .. "credentials it was given), and its value is not shown\n" }, { status, out, err })
        assert.same({}, records(log), "no intent")
      end
      assert.equal(0, sent())
    end)

  it("zego call ... ServerSecret=, NotifyAuthKey=, SecurityToken=, access_key_secret=, Password=, AppSign=: each "
    .. "refused the same way, on both providers", function()
    local names = { "ServerSecret", "NotifyAuthKey", "SecurityToken", "access_key_secret", "Access-Key-Id", "Password",
                    "AppSign", "StsToken", "PrivateKey", "Credentials", "ServerSecret[]" }
    for _, name in ipairs(names) do
      local log = log_path()
      local status, out, err = run(zg("call", "ForbidRTCStream", "StreamId=r1", name .. "=" .. LEAK,
        "--audit-log", log))
      assert.same({ 2, "" }, { status, out }, name)
      assert.truthy(err:find("parameter '" .. name .. "' names a credential", 1, true), err)
      assert.is_nil(err:find(LEAK, 1, true), err)
      assert.same({}, records(log), "no intent: " .. name)
      -- Aliyun: the same names, but for those its signature owns (SecurityToken: a common parameter)
      status, out, err = run(with(ali("call", "ResumeLiveStream", ALI_STREAM[1], ALI_STREAM[2], ALI_STREAM[3],
        ALI_STREAM[4], name .. "=" .. LEAK, "--dry-run")))
      assert.same({ 2, "" }, { status, out }, name)
      assert.truthy(err:find("parameter '" .. name .. "' ", 1, true), err)
      assert.is_nil(err:find(LEAK, 1, true), err)
    end
    assert.equal(0, sent())
  end)

  it("the library's call and prepare refuse a credential-bearing name: nil, InvalidParameter naming it, nothing sent",
    function()
      local ali_client = assert(streamctl.aliyun.new { endpoint = server.aliyun_url, access_key_id = "LTAIemulatorKey",
        access_key_secret = ALI_SECRET })
      local z = assert(streamctl.zego.new { endpoint = server.zego_url, app_id = 1234567890,
        server_secret = ZEGO_SECRET })
      for _, row in ipairs {
        { ali_client, "ForbidLiveStream", { DomainName = "push.example.com", AppName = "live", StreamName = "s1",
          LiveStreamType = "publisher", AccessKeySecret = LEAK }, "AccessKeySecret" },
        { ali_client, "ResumeLiveStream", { DomainName = "push.example.com", AppName = "live", StreamName = "s1",
          LiveStreamType = "publisher", NotifyAuthKey = LEAK, Zzz = "1" }, "NotifyAuthKey" },
        { z, "ForbidRTCStreams", { StreamId = { "a", "b" }, ServerSecret = { LEAK } }, "ServerSecret" },
        { z, "ForbidCDNLiveStream", { StreamId = "a", AccessKeyId = "LTAI" }, "AccessKeyId" },
      } do
        for _, how in ipairs { "call", "prepare", "check_call" } do
          local res, err = row[1][how](row[1], row[2], row[3])
          assert.is_nil(res, how)
          assert.same({ "InvalidParameter", true }, { err.code, err.message:find("parameter '" .. row[4]
            .. "' names a credential", 1, true) == 1 }, how .. " " .. row[4] .. ": " .. err.message)
          assert.is_nil(err.message:find(LEAK, 1, true))
        end
      end
      -- the signature's own parameters stay refused as such (whatever their case)
      local _, err = z:call("ForbidRTCStream", { StreamId = "a", signaturenonce = "0011223344556677" })
      assert.equal("parameter 'signaturenonce' is a common parameter that streamctl sets itself; it cannot be passed",
        err.message)
      ali_client:close()
      z:close()
      assert.equal(0, sent())
    end)

  it("a call argument without '=' that names a credential is not echoed", function()
    local status, out, err = run(zg("call", "ForbidRTCStream", "StreamId=r1", "ServerSecret:" .. LEAK, "--dry-run"))
    assert.same({ 2, "", "streamctl: parameter 2 must be Key=Value (not shown: it may hold a credential)\n" },
      { status, out, err })
    assert.equal(0, sent())
  end)

  it("StreamId and StreamId[] both given (one would replace the other): refused naming both, nothing sent",
    function()
      local log = log_path()
      local status, out, err = run(zg("call", "ForbidRTCStreams", "StreamId=a", "StreamId=b", "StreamId[]=c",
        "--audit-log", log))
      assert.same({ 2, "", "streamctl: parameter 'StreamId' and parameter 'StreamId[]' are both sent as "
        .. "'StreamId[]': give the values under one name\n" }, { status, out, err })
      assert.same({}, records(log))
      assert.equal(0, sent())
    end)

  it("a call parameter outside its field's values (an enum, a URL scheme, a time, yes/no, empty, a DstUrl): exit 2 "
    .. "naming it, no intent, nothing sent", function()
    local forbid = { "call", "ForbidLiveStream", ALI_STREAM[1], ALI_STREAM[2], ALI_STREAM[3] }
    for _, row in ipairs {
      { with(ali(unpack(forbid)), "LiveStreamType=player"), "parameter 'LiveStreamType' must be one of "
        .. "'publisher'" },
      { with(ali(unpack(forbid)), ALI_STREAM[4], "ResumeTime=tomorrow"), "parameter 'ResumeTime' must be UTC "
        .. "time as YYYY-MM-DDThh:mm:ssZ" },
      { with(ali(unpack(forbid)), ALI_STREAM[4], "Oneshot=true"), "parameter 'Oneshot' must be 'yes' or 'no'" },
      { ali("call", "ForbidLiveStream", ALI_STREAM[1], ALI_STREAM[2], "StreamName=", ALI_STREAM[4]),
        "parameter 'StreamName' must not be empty" },
      { ali("call", "UpdateLivePullToPush", "Region=cn-shanghai", "TaskId=t", "CallbackUrl=ftp://x/y"),
        "parameter 'CallbackUrl' must start with 'http://', 'https://'" },
      { ali("call", "CreateLivePullToPush", "Region=cn-shanghai", "DstUrl=http://x/y", "SourceType=url",
          "SourceUrls[]=https://a/b.mp4", "StartTime=2030-01-01T00:00:00Z", "EndTime=2030-01-01T01:00:00Z"),
        "parameter 'DstUrl' must be an rtmp:// URL with a host and a path (rtmp://host/app/stream)" },
      { zg("call", "ForbidCDNLiveStream", "StreamId=a", "ResumeTime=soon"),
        "parameter 'ResumeTime' must be UTC time as YYYY-MM-DDThh:mm:ssZ" },
    } do
      local log = log_path()
      local status, out, err = run(with(row[1], "--audit-log", log))
      assert.same({ 2, "", "streamctl: " .. row[2] .. "\n" }, { status, out, err })
      assert.same({}, records(log), "no intent: " .. row[2])
    end
    assert.equal(0, sent())
  end)

  it("zego call ForbidRTCStreams StreamId[]=one: a key written Key[] is an array, even of one", function()
    local status, out, err = run(zg("call", "ForbidRTCStreams", "StreamId[]=one", "--no-audit-log"))
    assert.equal(0, status, err)
    assert.truthy(out:find("\none ", 1, true), out)
    local e = server:log { action = "ForbidRTCStreams" }
    assert.equal(1, #e)
  end)

  it("a credentials URI with a token in its path: the path hidden in every message, exact", function()
    local uri = "http://ops:hunter2@127.0.0.1:1/creds/tok-" .. LEAK .. "?role=edge"
    local fetch = assert(sources.fetcher({ type = "credentials_uri", uri = uri }, function(req)
      return nil, { code = "NetworkError", message = "connect to " .. req.url .. " refused" }
    end))
    local c, why = fetch()
    assert.is_nil(c)
    assert.equal("GET http://<redacted>@127.0.0.1:1/<redacted>?role=<redacted>: connect to http://<redacted>@"
      .. "127.0.0.1:1/<redacted>?role=<redacted> refused", why)
    -- an answer: HTTP 404 from the emulator, and an answer that is not credentials
    uri = server.aliyun_url .. "/creds/tok-" .. LEAK
    -- (times process.slowdown(): this call must answer, under valgrind on a busy machine too)
    local exchange = assert(sources.exchange { timeout_ms = 2000 * process.slowdown(),
                                               connect_timeout_ms = 1000 * process.slowdown() })
    c, why = assert(sources.fetcher({ type = "credentials_uri", uri = uri }, exchange))()
    assert.is_nil(c)
    assert.matches("^GET " .. server.aliyun_url:gsub("%p", "%%%0") .. "/<redacted>: HTTP %d+$", why)
    assert.is_nil(why:find(LEAK, 1, true), why)
  end)

  it("redact.url: one rule for every URL, its path hidden too (a proxy's, a Redis URL's, one without a scheme)",
    function()
      for _, row in ipairs {
        { "http://127.0.0.1:8080/creds/" .. LEAK, "http://127.0.0.1:8080/<redacted>" },
        { "http://proxy-user:pw@10.0.0.9:3128/" .. LEAK .. "?key=k", "http://<redacted>@10.0.0.9:3128/<redacted>?key="
          .. "<redacted>" },
        { "redis://:s3cret@10.0.0.5:6379/" .. LEAK, "redis://<redacted>@10.0.0.5:6379/<redacted>" },
        { "https://sts.aliyuncs.com/", "https://sts.aliyuncs.com/" },
        { "https://sts.aliyuncs.com", "https://sts.aliyuncs.com" },
        { "127.0.0.1:8080/creds/" .. LEAK, "127.0.0.1:8080/<redacted>" },
        { "/var/run/" .. LEAK, "/<redacted>" },
        { "127.0.0.1:8080", "127.0.0.1:8080" },
      } do
        assert.equal(row[2], redact.url(row[1]), row[1])
      end
      local proxy = "http://127.0.0.1:3128/" .. LEAK
      assert.equal("via http://127.0.0.1:3128/<redacted>: refused", redact.url_in("via " .. proxy .. ": refused", proxy))
    end)

  it("zego call ForbidRTCStreams StreamId[]=c-a StreamId[]=c-b: the intent and the outcome name c-a and c-b, each "
    .. "with its outcome, as forbid-rtc-streams does; the report a row each", function()
    local log = log_path()
    local status, out, err = run(zg("call", "ForbidRTCStreams", "StreamId[]=c-a", "StreamId[]=c-b", "StreamId[]=c-a",
      "--audit-log", log, "--output", "json"))
    assert.equal(0, status, err)
    local lines = {}
    for l in out:gmatch("[^\n]+") do lines[#lines + 1] = cjson.decode(l) end
    assert.equal(2, #lines, out)
    assert.same({ { "c-a", true }, { "c-b", true } }, { { lines[1].stream, lines[1].ok },
      { lines[2].stream, lines[2].ok } })
    local recs = records(log)
    assert.equal(2, #recs)
    assert.same({ "intent", 2, { "c-a ForbidRTCStreams", "c-b ForbidRTCStreams" } },
      { recs[1].record, recs[1].count, streams_of(recs[1]) })
    assert.same({ "outcome", "ok", { "c-a ForbidRTCStreams ok", "c-b ForbidRTCStreams ok" } },
      { recs[2].record, recs[2].outcome, streams_of(recs[2]) })
    -- the named command records the same streams the same way
    local named = log_path()
    assert.equal(0, (run(zg("forbid-rtc-streams", "c-a", "c-b", "--audit-log", named))))
    assert.same(streams_of(recs[2]), streams_of(records(named)[2]))
    assert.equal(2, #server:log { action = "ForbidRTCStreams" })
  end)

  it("aliyun call ForbidLiveStream DomainName AppName StreamName: the intent and outcome name domain/app/stream; a "
    .. "failed call says failed for it", function()
    local log = log_path()
    local status, out, err = run(with(ali("call", "ForbidLiveStream", ALI_STREAM[1], ALI_STREAM[2], ALI_STREAM[3],
      ALI_STREAM[4], "--audit-log", log)))
    assert.equal(0, status, err)
    assert.truthy(out:find("\npush.example.com/live/s1  ok ", 1, true), out)
    local recs = records(log)
    assert.same({ { "push.example.com/live/s1 ForbidLiveStream" }, { "push.example.com/live/s1 ForbidLiveStream ok" } },
      { streams_of(recs[1]), streams_of(recs[2]) })
    -- a forbid of every app (AppName=*) the provider refuses: the outcome says failed, for that stream
    log = log_path()
    status = run(with(ali("call", "ForbidLiveStream", ALI_STREAM[1], "AppName=*", "StreamName=s2", ALI_STREAM[4],
      "--audit-log", log)))
    assert.equal(1, status)
    recs = records(log)
    assert.same({ { "push.example.com/*/s2 ForbidLiveStream" }, { "push.example.com/*/s2 ForbidLiveStream failed" },
      "failed" }, { streams_of(recs[1]), streams_of(recs[2]), recs[2].outcome })
  end)

  it("zego call ForbidCDNLiveStream StreamId=x: audited as forbid-cdn-live-stream audits it", function()
    local log, named = log_path(), log_path()
    assert.equal(0, (run(zg("call", "ForbidCDNLiveStream", "StreamId=x1", "--audit-log", log))))
    assert.equal(0, (run(zg("forbid-cdn-live-stream", "--stream-id", "x1", "--audit-log", named))))
    assert.same({ "x1 ForbidCDNLiveStream ok" }, streams_of(records(log)[2]))
    assert.same(streams_of(records(named)[2]), streams_of(records(log)[2]))
    assert.same(streams_of(records(named)[1]), streams_of(records(log)[1]))
  end)

  it("a bad call parameter (a name's shape, a StreamId[] item, a Sequence): exit 2 naming it, no intent, nothing sent",
    function()
      for _, row in ipairs {
        { ali("call", "ForbidLiveStream", ALI_STREAM[1], ALI_STREAM[2], "StreamName=s b", ALI_STREAM[4]),
          "streamctl: parameter 'StreamName' must hold only letters, digits, '-' and '_' (found a space at byte 2)\n" },
        { zg("call", "ForbidRTCStreams", "StreamId[]=ok", "StreamId[]=c a"),
          "streamctl: parameter 'StreamId[]' item 2 must hold only letters, digits, '-' and '_' (found a space at "
          .. "byte 2)\n" },
        { zg("call", "ForbidRTCStream", "StreamId=a", "Sequence=x"), "streamctl: parameter 'Sequence' must be decimal "
          .. "digits of an integer at most 9007198254740991 (2^53 - 1 less room for the calls after it)\n" },
      } do
        local log = log_path()
        local status, out, err = run(with(row[1], "--audit-log", log))
        assert.same({ 2, "", row[2] }, { status, out, err })
        assert.same({}, records(log), "no intent: " .. row[2])
      end
      assert.equal(0, sent())
    end)
end)
