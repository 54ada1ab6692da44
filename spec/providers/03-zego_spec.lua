-- tier: unit
-- streamctl.zego: exact requests for every action, the Sequence rule, the
-- test-environment rule, validation messages and return codes.
local zego = require "streamctl.zego"
local openssl = require "spec.helpers.openssl"

local NOW = 1700000000
local APP = 1234567890
local SECRET = "0123456789abcdef0123456789abcdef"
local NONCE = "0011223344556677"

local function make(opts, reply)
  local sent, mono = {}, 0
  local o = {
    app_id = APP, server_secret = SECRET,
    clock = function() return NOW end, nonce = function() return NONCE end,
    monotonic = function() return mono end, sleep = function(s) mono = mono + s end,
    transport = function(req)
      sent[#sent + 1] = req
      if reply then return reply(req) end
      return { status = 200, headers = {}, body = '{"Code":0,"Message":"success","RequestId":"z-1","Data":null}' }
    end,
  }
  for k, v in pairs(opts or {}) do o[k] = v end
  return assert(zego.new(o)), sent
end

local SIG = openssl.md5_hex(APP .. NONCE .. SECRET .. NOW)
local COMMON = "https://rtc-api.zego.im/?Action=%s&AppId=1234567890&SignatureNonce=0011223344556677"
  .. "&Timestamp=1700000000&Signature=" .. SIG .. "&SignatureVersion=2.0"

describe("zego requests", function()
  local CASES = {
    { "resume_rtc_stream", { stream_id = "s_1-A" }, "ResumeRTCStream", "&Sequence=1700000000000&StreamId=s_1-A" },
    { "forbid_rtc_stream", { stream_id = "s1" }, "ForbidRTCStream", "&Sequence=1700000000000&StreamId=s1" },
    { "describe_rtc_stream_state", { stream_id = "s1" }, "DescribeRTCStreamState",
      "&Sequence=1700000000000&StreamId=s1" },
    { "resume_cdn_live_stream", { stream_id = "s1" }, "ResumeCDNLiveStream", "&StreamId=s1" },
    { "forbid_cdn_live_stream", { stream_id = "s1", resume_time = NOW + 60 }, "ForbidCDNLiveStream",
      "&ResumeTime=2023-11-14T22%3A14%3A20Z&StreamId=s1" },
  }
  for _, c in ipairs(CASES) do
    it(c[1] .. " sends exactly the signed GET", function()
      local cli, sent = make()
      local res = assert(cli[c[1]](cli, c[2]))
      assert.equal(0, res.Code)
      assert.equal("z-1", res.RequestId)
      assert.equal(1, #sent)
      assert.equal("GET", sent[1].method)
      assert.equal(string.format(COMMON, c[3]) .. c[4], sent[1].url)
      assert.same({}, sent[1].headers)
      assert.equal("", sent[1].body)
    end)
  end

  for _, m in ipairs { { "resume_rtc_streams", "ResumeRTCStreams" }, { "forbid_rtc_streams", "ForbidRTCStreams" } } do
    it(m[1] .. " sends up to 20 unique IDs a call, each call with its own Sequence, and reports every stream", function()
      local ids = {}
      for i = 1, 45 do ids[i] = "s" .. i end
      ids[46] = "s3" -- a duplicate is acted on once
      local cli, sent = make()
      local progress = {}
      local report = assert(cli[m[1]](cli, { stream_ids = ids, concurrency = 2,
        on_progress = function(done, total, entry) progress[#progress + 1] = { done, total, entry.stream } end }))
      assert.equal(3, #sent)
      local expect = { {}, {}, {} }
      for i = 1, 45 do table.insert(expect[math.ceil(i / 20)], "StreamId%5B%5D=s" .. i) end
      for call = 1, 3 do
        -- Sequences are per stream: calls on different streams all start at now.
        assert.equal(string.format(COMMON, m[2]) .. "&Sequence=1700000000000&"
          .. table.concat(expect[call], "&"), sent[call].url)
      end
      assert.equal(45, report.total)
      assert.equal(45, report.succeeded)
      assert.equal(0, report.failed)
      assert.equal(3, report.calls)
      assert.equal(1, report.duplicates)
      for i = 1, 45 do
        -- (an RTC forbid has no end of its own: the pages give none; a resume none either)
        assert.same({ stream = "s" .. i, ok = true, attempts = 1, request_id = "z-1",
                      ends_by = m[2] == "ForbidRTCStreams" and "until_resumed" or nil,
                      result = report.results[i].result }, report.results[i])
      end
      assert.equal(45, #progress)
      assert.same({ 45, 45 }, { progress[45][1], progress[45][2] })
    end)
  end

  it("sends IsTest when it is set", function()
    local cli, sent = make { is_test = false }
    assert(cli:resume_cdn_live_stream { stream_id = "s1" })
    assert.equal(string.format(COMMON, "ResumeCDNLiveStream") .. "&IsTest=false&StreamId=s1", sent[1].url)
  end)

  it("never puts the server secret in the request", function()
    local cli, sent = make()
    assert(cli:resume_rtc_stream { stream_id = "s1" })
    assert.is_nil(sent[1].url:find(SECRET, 1, true))
  end)

  it("takes service names and arrays through prepare", function()
    local cli = make()
    local req = assert(cli:prepare("ResumeRTCStreams", { StreamId = { "a", "b" }, Sequence = "1700000000000" }))
    assert.equal(string.format(COMMON, "ResumeRTCStreams") .. "&Sequence=1700000000000&StreamId%5B%5D=a&StreamId%5B%5D=b",
      req.url)
    req = assert(cli:prepare("ResumeRTCStreams", { ["StreamId[]"] = { "c" }, Sequence = 7 }))
    assert.equal(string.format(COMMON, "ResumeRTCStreams") .. "&Sequence=7&StreamId%5B%5D=c", req.url)
  end)
end)

describe("zego Sequence", function()
  it("is max(now in ms, last + 1) per stream", function()
    local t = NOW
    local cli, sent = make { clock = function() return t end }
    assert(cli:resume_rtc_stream { stream_id = "s1" })
    assert(cli:forbid_rtc_stream { stream_id = "s1" })
    assert(cli:resume_rtc_stream { stream_id = "s2" })
    assert(cli:resume_rtc_streams { stream_ids = { "s1", "s2" } })
    t = NOW + 0.5
    assert(cli:forbid_rtc_stream { stream_id = "s1" })
    local seqs = {}
    for i, r in ipairs(sent) do seqs[i] = r.url:match("Sequence=(%d+)") end
    assert.same({ "1700000000000", "1700000000001", "1700000000000", "1700000000002", "1700000000500" }, seqs)
  end)

  it("goes on increasing when the clock steps back", function()
    local t = NOW
    local cli, sent = make { clock = function() return t end }
    assert(cli:resume_rtc_stream { stream_id = "s1" })
    t = NOW - 10
    assert(cli:forbid_rtc_stream { stream_id = "s1" })
    assert.equal("1700000000001", sent[2].url:match("Sequence=(%d+)"))
  end)
end)

describe("zego validation", function()
  local many = {}
  for i = 1, 21 do many[i] = "s" .. i end
  local RULES = {
    { "resume_rtc_streams", { stream_ids = {} }, "field 'stream_ids' must have at least 1 item (got 0)" },
    { "resume_rtc_streams", { stream_ids = { "a", "" } }, "field 'stream_ids' item 2 must be a non-empty string" },
    { "resume_rtc_streams", { stream_ids = { "a" }, concurrency = 0 }, "field 'concurrency' must be at least 1" },
    { "resume_rtc_streams", { stream_ids = { "a" }, on_progress = true }, "field 'on_progress' must be a function" },
    { "resume_rtc_streams", {}, "field 'stream_ids' is required" },
    { "resume_rtc_streams", { stream_id = { "a" } },
      "field 'stream_id' is not a field of zego.resume_rtc_streams (did you mean 'stream_ids'?)" },
    { "resume_rtc_stream", { stream_id = "s", sequence = -1 }, "field 'sequence' must be at least 0" },
    { "resume_rtc_stream", { stream_id = "s", sequence = "12x" }, "field 'sequence' must be an integer" },
    { "resume_cdn_live_stream", { stream_id = string.rep("x", 257) }, "field 'stream_id' must be at most 256 bytes (got 257)" },
    { "forbid_cdn_live_stream", { stream_id = "s", resume_time = "soon" },
      "field 'resume_time' must be UTC time as YYYY-MM-DDThh:mm:ssZ" },
    { "forbid_cdn_live_stream", { stream_id = "s", resume_time = NOW }, "field 'resume_time' must be in the future" },
    { "forbid_cdn_live_stream", { stream_id = "s", resume_time = NOW + 30 * 86400 + 1 },
      "field 'resume_time' must be at most 30 days ahead" },
  }
  for _, r in ipairs(RULES) do
    it(r[1] .. ": " .. r[3], function()
      local cli, sent = make()
      local res, err = cli[r[1]](cli, r[2])
      assert.is_nil(res)
      assert.equal("InvalidParameter", err.code)
      assert.equal(r[3], err.message)
      assert.equal(0, #sent)
    end)
  end

  it("takes 1..20 stream IDs in one raw call", function()
    local cli, sent = make()
    local ids = {}
    for i = 1, 20 do ids[i] = "s" .. i end
    assert(cli:call("ResumeRTCStreams", { StreamId = ids }))
    local n = 0
    for _ in sent[1].url:gmatch("StreamId%%5B%%5D=") do n = n + 1 end
    assert.equal(20, n)
    local _, err = cli:call("ResumeRTCStreams", { StreamId = many })
    -- (the page's own limit, checked first by the published method)
    assert.equal("parameter 'StreamId' must hold at most 20 items (got 21)", err.message)
    _, err = cli:call("ForbidRTCStreams", { StreamId = {} })
    -- (sent as the page writes it: StreamId[])
    assert.equal("parameter 'StreamId[]' must not be an empty array", err.message)
    _, err = cli:call("ForbidRTCStreams", { StreamId = "a" })
    assert.equal("parameter 'StreamId' must be an array of 1..20 stream IDs (got string)", err.message)
    assert.equal(1, #sent)
  end)

  it("enforces the zegotest-<AppId>- prefix in the test environment", function()
    local cli, sent = make { is_test = true }
    local _, err = cli:resume_rtc_streams { stream_ids = { "zegotest-1234567890-a", "b" } }
    assert.equal("stream ID 2 must start with 'zegotest-1234567890-' when is_test is true", err.message)
    assert(cli:resume_rtc_streams { stream_ids = { "zegotest-1234567890-a" } })
    assert.equal(1, #sent)
    assert.truthy(sent[1].url:find("&IsTest=true&", 1, true))
  end)

  it("paces the test environment's RTC forbids and resumes at its own cap, 5 a second (20 otherwise)", function()
    local test, live = make { is_test = true }, make {}
    for _, action in ipairs { "ForbidRTCStreams", "ResumeRTCStreams", "ForbidRTCStream", "ResumeRTCStream" } do
      assert.equal(5, select(3, test:rate_for(action)), action)
      assert.equal(20, select(3, live:rate_for(action)), action)
    end
    -- (a CDN forbid has one cap in both)
    assert.equal(select(3, live:rate_for("ForbidCDNLiveStream")), select(3, test:rate_for("ForbidCDNLiveStream")))
  end)

  it("explains bad options", function()
    local function new_err(o)
      local base = { app_id = APP, server_secret = SECRET, transport = function() end }
      for k, v in pairs(o) do base[k] = v end
      local c, err = zego.new(base)
      assert.is_nil(c)
      return err.message
    end
    assert.equal("option 'app_id' must be an integer in 1..4294967295", new_err { app_id = "abc" })
    assert.equal("option 'app_id' must be an integer in 1..4294967295", new_err { app_id = 4294967296 })
    assert.equal("option 'app_id' must be an integer in 1..4294967295", new_err { app_id = 0 })
    assert.equal("option 'is_test' must be true or false", new_err { is_test = "yes" })
    assert.equal("option 'endpoint' must use https or http (got file)",
      new_err { endpoint = "file:///etc/passwd" })
    assert(zego.new { app_id = "1234567890", server_secret = SECRET, transport = function() end })
  end)
end)

describe("zego answers", function()
  local function answer(status, body)
    return function() return { status = status, headers = {}, body = body } end
  end
  local function code_err(code)
    -- (one attempt: a throttle would otherwise be sent again for as long as the run lasts)
    local cli = make({ retry = false }, answer(200, '{"Code":' .. code .. ',"Message":"m","RequestId":"q"}'))
    local _, err = cli:resume_rtc_stream { stream_id = "s1" }
    return err
  end

  it("classifies return codes", function()
    local cases = {
      { 30002, "throttled", true }, { 1010, "throttled", true }, { 5007, "throttled", true },
      { 42001, "server", true }, { 42004, "server", true }, { 100000004, "clock", true },
      { 100000005, "signature", false }, { 30005, "auth", false }, { 30004, "auth", false },
      { 30006, "validation", false }, { 1, "service", false }, { 30003, "service", false },
    }
    for _, c in ipairs(cases) do
      local err = code_err(c[1])
      assert.equal(c[1], err.code)
      assert.equal(c[2], err.kind, c[1])
      assert.equal(c[3], err.retryable, c[1])
      assert.equal("q", err.request_id)
    end
    assert.equal("streamctl: zego ResumeRTCStream: 30002 (HTTP 200): m [RequestId q]", tostring(code_err(30002)))
  end)

  it("treats bodies that are not ZEGO answers as InvalidResponse, 5xx as retryable", function()
    local cli = make({}, answer(200, "{}"))
    local _, err = cli:resume_rtc_stream { stream_id = "s1" }
    assert.equal("InvalidResponse", err.code)
    assert.is_false(err.retryable)
    cli = make({}, answer(503, "busy"))
    _, err = cli:resume_rtc_stream { stream_id = "s1" }
    assert.equal("HTTP503", err.code)
    assert.equal("server", err.kind)
    assert.is_true(err.retryable)
  end)
end)
