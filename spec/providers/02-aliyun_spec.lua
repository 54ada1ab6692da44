-- tier: unit
-- streamctl.aliyun: exact requests for every operation (V3 and V1), every
-- validation rule with its message, and how answers and failures decode.
local aliyun = require "streamctl.aliyun"
local openssl = require "spec.helpers.openssl"

local NOW = 1700000000 -- 2023-11-14T22:13:20Z
local EMPTY_SHA = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

-- A client whose transport records what it is given and answers `reply`.
local function make(opts, reply)
  local sent, mono = {}, 0
  opts = opts or {}
  local o = {
    access_key_id = "AKID", access_key_secret = "secret",
    clock = function() return NOW end, nonce = function() return "nonce-1" end,
    monotonic = function() return mono end, sleep = function(s) mono = mono + s end,
    transport = function(req)
      sent[#sent + 1] = req
      if reply then return reply(req) end
      -- a create's answer carries its TaskId
      local create = (req.headers["x-acs-action"] or req.url:match("[?&]Action=(%w+)")) == "CreateLivePullToPush"
      return { status = 200, headers = {}, body = create and '{"RequestId":"r-1","RetCode":0,"TaskId":"T-1"}'
        or '{"RequestId":"r-1"}' }
    end,
  }
  for k, v in pairs(opts) do o[k] = v end
  return assert(aliyun.new(o)), sent
end

local function enc(s)
  return (s:gsub("[^A-Za-z0-9%-_.~]", function(c) return string.format("%%%02X", c:byte()) end))
end

-- The V3 Authorization header expected for `query`, from a canonical request
-- written out here and signed by openssl.
local function v3_authorization(method, action, query, extra_headers)
  local lines = { "host:live.aliyuncs.com", "x-acs-action:" .. action,
                  "x-acs-content-sha256:" .. EMPTY_SHA }
  local names = { "host", "x-acs-action", "x-acs-content-sha256" }
  for _, h in ipairs(extra_headers or {}) do
    lines[#lines + 1] = h[1] .. ":" .. h[2]
    names[#names + 1] = h[1]
  end
  for _, h in ipairs { { "x-acs-date", "2023-11-14T22:13:20Z" }, { "x-acs-signature-nonce", "nonce-1" },
                        { "x-acs-version", "2016-11-01" } } do
    lines[#lines + 1] = h[1] .. ":" .. h[2]
    names[#names + 1] = h[1]
  end
  table.sort(lines)
  table.sort(names)
  local signed = table.concat(names, ";")
  local canonical = method .. "\n/\n" .. query .. "\n" .. table.concat(lines, "\n") .. "\n\n" .. signed .. "\n" .. EMPTY_SHA
  local sig = openssl.hmac_sha256_hex("secret", "ACS3-HMAC-SHA256\n" .. openssl.sha256_hex(canonical))
  return "ACS3-HMAC-SHA256 Credential=AKID,SignedHeaders=" .. signed .. ",Signature=" .. sig
end

local Q_STREAM = "AppName=live&DomainName=example.com&LiveStreamType=publisher&StreamName=s1"

local CASES = {
  { "resume_live_stream", { domain_name = "example.com", app_name = "live", stream_name = "s1" },
    "POST", "ResumeLiveStream", Q_STREAM },
  { "forbid_live_stream", { domain_name = "example.com", app_name = "live", stream_name = "s1",
                            oneshot = true, resume_time = NOW + 3600, region_id = "cn-shanghai" },
    "POST", "ForbidLiveStream",
    "AppName=live&DomainName=example.com&LiveStreamType=publisher&Oneshot=yes&RegionId=cn-shanghai"
      .. "&ResumeTime=2023-11-14T23%3A13%3A20Z&StreamName=s1" },
  { "create_live_pull_to_push", {
      region = "cn-shanghai", task_name = "relay 1", start_time = "2023-11-14T22:13:20Z", end_time = NOW + 3600,
      source_type = "url", source_urls = { "https://a.example/x.mp4", "https://a.example/y.mp4" },
      dst_url = "rtmp://push.example/live/s1", repeat_number = -1, retry_interval = 60, offset = 2 },
    "POST", "CreateLivePullToPush",
    "DstUrl=rtmp%3A%2F%2Fpush.example%2Flive%2Fs1&EndTime=2023-11-14T23%3A13%3A20Z&Offset=2"
      .. "&Region=cn-shanghai&RepeatNumber=-1&RetryInterval=60&SourceType=url"
      .. "&SourceUrls=%5B%22https%3A%2F%2Fa.example%2Fx.mp4%22%2C%22https%3A%2F%2Fa.example%2Fy.mp4%22%5D"
      .. "&StartTime=2023-11-14T22%3A13%3A20Z&TaskName=relay%201" },
  { "stop_live_pull_to_push", { region = "cn-shanghai", task_id = "t-1" },
    "GET", "StopLivePullToPush", "Region=cn-shanghai&TaskId=t-1" },
  { "describe_live_pull_to_push", { region = "cn-beijing", task_id = "t-1" },
    "GET", "DescribeLivePullToPush", "Region=cn-beijing&TaskId=t-1" },
  { "describe_live_pull_to_push_list", { region = "cn-shanghai", dst_url = "rtmp://push.example/live/s1", page_size = 50 },
    "GET", "DescribeLivePullToPushList", "DstUrl=rtmp%3A%2F%2Fpush.example%2Flive%2Fs1&PageSize=50&Region=cn-shanghai" },
  { "describe_live_streams_block_list", { domain_name = "example.com", page_number = 2 },
    "POST", "DescribeLiveStreamsBlockList", "DomainName=example.com&PageNum=2" },
  { "describe_live_streams_online_list", { domain_name = "example.com" },
    "POST", "DescribeLiveStreamsOnlineList", "DomainName=example.com" },
}

describe("aliyun requests, V3", function()
  for _, c in ipairs(CASES) do
    local name, fields, method, action, query = c[1], c[2], c[3], c[4], c[5]
    it(name .. " sends exactly the signed request", function()
      local cli, sent = make()
      local res = assert(cli[name](cli, fields))
      assert.equal("r-1", res.RequestId)
      assert.equal(1, #sent)
      local req = sent[1]
      assert.equal(method, req.method)
      assert.equal("https://live.aliyuncs.com/?" .. query, req.url)
      assert.equal("", req.body)
      assert.same({
        host = "live.aliyuncs.com", ["x-acs-action"] = action, ["x-acs-version"] = "2016-11-01",
        ["x-acs-date"] = "2023-11-14T22:13:20Z", ["x-acs-signature-nonce"] = "nonce-1",
        ["x-acs-content-sha256"] = EMPTY_SHA,
        authorization = v3_authorization(method, action, query),
      }, req.headers)
    end)
  end

  it("adds the STS headers and signs them", function()
    local cli, sent = make { security_token = "STS.token/xyz" }
    assert(cli:resume_live_stream { domain_name = "example.com", app_name = "live", stream_name = "s1" })
    local h = sent[1].headers
    assert.equal("STS.token/xyz", h["x-acs-security-token"])
    assert.equal("AKID", h["x-acs-accesskey-id"])
    assert.equal(v3_authorization("POST", "ResumeLiveStream", Q_STREAM,
      { { "x-acs-accesskey-id", "AKID" }, { "x-acs-security-token", "STS.token/xyz" } }), h.authorization)
  end)

  it("puts the port of a non-default endpoint into host", function()
    local cli = make { endpoint = "http://127.0.0.1:18080" }
    local req = assert(cli:prepare("StopLivePullToPush", { Region = "cn-shanghai", TaskId = "t" }))
    assert.equal("http://127.0.0.1:18080/?Region=cn-shanghai&TaskId=t", req.url)
    assert.equal("127.0.0.1:18080", req.headers.host)
  end)
end)

describe("aliyun requests, V1", function()
  for _, c in ipairs(CASES) do
    local name, fields, method, action, query = c[1], c[2], c[3], c[4], c[5]
    it(name .. " sends exactly the signed request", function()
      local cli, sent = make { signature_version = "v1" }
      assert(cli[name](cli, fields))
      local req = sent[1]
      -- Insert the common parameters into the operation's query, by name order.
      local pairs_ = {}
      for kv in query:gmatch("[^&]+") do pairs_[#pairs_ + 1] = kv end
      for _, kv in ipairs { "AccessKeyId=AKID", "Action=" .. action, "Format=JSON", "SignatureMethod=HMAC-SHA1",
                            "SignatureNonce=nonce-1", "SignatureVersion=1.0",
                            "Timestamp=2023-11-14T22%3A13%3A20Z", "Version=2016-11-01" } do
        pairs_[#pairs_ + 1] = kv
      end
      table.sort(pairs_, function(a, b) return a:match("^[^=]*") < b:match("^[^=]*") end)
      local canonical = table.concat(pairs_, "&")
      local sig = openssl.hmac_sha1_base64("secret&", method .. "&%2F&" .. enc(canonical))
      assert.equal(method, req.method)
      assert.equal("https://live.aliyuncs.com/?" .. canonical .. "&Signature=" .. enc(sig), req.url)
      assert.same({ host = "live.aliyuncs.com" }, req.headers)
      assert.equal("", req.body)
    end)
  end

  it("signs the SecurityToken like any parameter", function()
    local cli = make { signature_version = "v1", security_token = "tok" }
    local req = assert(cli:prepare("StopLivePullToPush", { Region = "cn-shanghai", TaskId = "t" }))
    local canonical = "AccessKeyId=AKID&Action=StopLivePullToPush&Format=JSON&Region=cn-shanghai"
      .. "&SecurityToken=tok&SignatureMethod=HMAC-SHA1&SignatureNonce=nonce-1&SignatureVersion=1.0"
      .. "&TaskId=t&Timestamp=2023-11-14T22%3A13%3A20Z&Version=2016-11-01"
    local sig = openssl.hmac_sha1_base64("secret&", "GET&%2F&" .. enc(canonical))
    assert.equal("https://live.aliyuncs.com/?" .. canonical .. "&Signature=" .. enc(sig), req.url)
  end)
end)

describe("aliyun prepare and call with service names", function()
  it("encodes numbers, booleans and arrays the service's way", function()
    local cli = make()
    local req = assert(cli:prepare("CreateLivePullToPush", {
      Region = "cn-shanghai", RepeatNumber = 3, Offset = 2, SourceUrls = { "rtmp://a/b", 'q"s' },
      SourceType = "vod", StartTime = "2023-11-15T00:00:00Z", EndTime = "2023-11-15T01:00:00Z", DstUrl = "rtmp://d/a/s",
    }))
    assert.equal("https://live.aliyuncs.com/?DstUrl=rtmp%3A%2F%2Fd%2Fa%2Fs&EndTime=2023-11-15T01%3A00%3A00Z"
      .. "&Offset=2&Region=cn-shanghai&RepeatNumber=3&SourceType=vod"
      .. "&SourceUrls=%5B%22rtmp%3A%2F%2Fa%2Fb%22%2C%22q%5C%22s%22%5D&StartTime=2023-11-15T00%3A00%3A00Z", req.url)
    -- (a Float as decimal digits; a boolean as true or false; a RepeatList item by item, Name.N)
    req = assert(cli:prepare("UpdateLiveStreamWatermark", { TemplateId = "t", YOffset = 2.25 }))
    assert.equal("https://live.aliyuncs.com/?TemplateId=t&YOffset=2.25", req.url)
    req = assert(cli:prepare("UnTagLiveResources", { ResourceType = "DOMAIN", ResourceId = { "d1", "d2" },
                                                     All = true }))
    assert.equal("https://live.aliyuncs.com/?All=true&ResourceId.1=d1&ResourceId.2=d2&ResourceType=DOMAIN", req.url)
  end)

  it("signs every attempt afresh", function()
    local n, t = 0, NOW
    local cli = make { nonce = function() n = n + 1; return "n" .. n end, clock = function() return t end }
    local a = assert(cli:prepare("StopLivePullToPush", { Region = "cn-shanghai", TaskId = "t" }))
    t = t + 1
    local b = assert(cli:prepare("StopLivePullToPush", { Region = "cn-shanghai", TaskId = "t" }))
    assert.equal("n1", a.headers["x-acs-signature-nonce"])
    assert.equal("n2", b.headers["x-acs-signature-nonce"])
    assert.equal("2023-11-14T22:13:21Z", b.headers["x-acs-date"])
    assert.not_equal(a.headers.authorization, b.headers.authorization)
  end)

  it("refuses unknown actions and bad values without sending", function()
    local cli, sent = make()
    local _, err = cli:call("NoSuchAction", {})
    assert.equal("InvalidParameter", err.code)
    assert.equal("unknown action 'NoSuchAction'", err.message)
    _, err = cli:call("StopLivePullToPush", { Region = {} , TaskId = function() end })
    assert.equal("InvalidParameter", err.code)
    assert.equal("parameter 'Region' must not be an empty array", err.message) -- the first bad one by name
    _, err = cli:call("StopLivePullToPush", { Region = "cn-shanghai" , TaskId = function() end })
    assert.equal("parameter 'TaskId' must be a string, number or boolean (got function)", err.message)
    _, err = cli:call("StopLivePullToPush", { Region = "cn-shanghai", TaskId = 0 / 0 })
    assert.equal("parameter 'TaskId' must be a finite number", err.message)
    assert.equal(0, #sent)
  end)

  it("raises on programming errors", function()
    local cli = make()
    assert.has_error(function() cli:prepare(42, {}) end, "action must be a string")
    assert.has_error(function() cli:prepare("ResumeLiveStream", "x") end, "params must be a table")
    assert.has_error(function() aliyun.new("x") end, "options must be a table")
  end)
end)

describe("aliyun validation", function()
  local S = { domain_name = "example.com", app_name = "live", stream_name = "s1" }
  local function with(base, changes)
    local t = {}
    for k, v in pairs(base) do t[k] = v end
    for k, v in pairs(changes) do if v == "<nil>" then t[k] = nil else t[k] = v end end
    return t
  end
  local P = { region = "cn-shanghai", start_time = NOW, end_time = NOW + 3600, source_type = "vod",
              source_urls = { "https://a.example/1.mp4" }, dst_url = "rtmp://push.example/live/s1" }
  local long = "rtmp://p/" .. string.rep("x", 1992)
  local LIVE = "(a live source is pulled over RTMP, SRT or HTTP-FLV, in the scheme of its source_protocol)"
  local URL = "(a third-party (url) source is MP4 or HTTP-FLV over HTTP(S))"
  local function live(protocol, url) return with(P, { source_type = "live", source_protocol = protocol,
                                                      source_urls = { url } }) end

  local RULES = {
    { "resume_live_stream", with(S, { domain_name = "<nil>" }), "field 'domain_name' is required" },
    { "resume_live_stream", with(S, { stream_nam = "s" }),
      "field 'stream_nam' is not a field of aliyun.resume_live_stream (did you mean 'stream_name'?)" },
    { "resume_live_stream", with(S, { bogus_thing = 1 }), "field 'bogus_thing' is not a field of aliyun.resume_live_stream" },
    { "resume_live_stream", with(S, { live_stream_type = "player" }), "field 'live_stream_type' must be one of 'publisher'" },
    { "resume_live_stream", with(S, { domain_name = 123 }), "field 'domain_name' must be a string" },
    { "resume_live_stream", with(S, { app_name = "" }), "field 'app_name' must not be empty" },
    { "resume_live_stream", with(S, { stream_name = "a\r\nb" }), "field 'stream_name' must not contain CR, LF or NUL" },
    { "resume_live_stream", "oops", "aliyun.resume_live_stream takes a table of fields" },
    { "forbid_live_stream", with(S, { oneshot = "maybe" }), "field 'oneshot' must be true, false, 'yes' or 'no'" },
    { "forbid_live_stream", with(S, { resume_time = "tomorrow" }),
      "field 'resume_time' must be UTC time as YYYY-MM-DDThh:mm:ssZ" },
    { "forbid_live_stream", with(S, { resume_time = "2023-02-30T00:00:00Z" }),
      "field 'resume_time' is not a valid UTC date and time" },
    { "forbid_live_stream", with(S, { resume_time = 1.5 }), "field 'resume_time' must be whole Unix seconds (>= 0)" },
    { "create_live_pull_to_push", with(P, { region = "us-east-1" }),
      "field 'region' must be one of 'ap-southeast-1', 'ap-southeast-5', 'cn-beijing', 'cn-shanghai', 'cn-shenzhen'" },
    { "create_live_pull_to_push", with(P, { dst_url = long }), "field 'dst_url' must be at most 2000 characters (got 2001)" },
    { "create_live_pull_to_push", with(P, { dst_url = "http://push.example/a" }),
      "field 'dst_url' must be an rtmp:// URL with a host and a path (rtmp://host/app/stream)" },
    { "create_live_pull_to_push", with(P, { dst_url = "rtmp://" }),
      "field 'dst_url' must be an rtmp:// URL with a host and a path (rtmp://host/app/stream)" },
    { "create_live_pull_to_push", with(P, { dst_url = "rtmp://host" }),
      "field 'dst_url' must be an rtmp:// URL with a host and a path (rtmp://host/app/stream)" },
    { "create_live_pull_to_push", with(P, { dst_url = "rtmp:///app/s" }),
      "field 'dst_url' must be an rtmp:// URL with a host and a path (rtmp://host/app/stream)" },
    { "create_live_pull_to_push", with(P, { dst_url = "rtmp://host/" }),
      "field 'dst_url' must be an rtmp:// URL with a host and a path (rtmp://host/app/stream)" },
    { "create_live_pull_to_push", with(P, { dst_url = "rtmp://h/a\r\n" }), "field 'dst_url' must not contain CR, LF or NUL" },
    { "create_live_pull_to_push", live("rtmp", "ftp://a/b"),
      "field 'source_urls' item 1 must start with 'rtmp://' and a host when source_type is 'live' and source_protocol "
        .. "'rtmp' " .. LIVE },
    { "create_live_pull_to_push", live("rtmp", "srt://a:9000?streamid=x"),
      "field 'source_urls' item 1 must start with 'rtmp://' and a host when source_type is 'live' and source_protocol "
        .. "'rtmp' " .. LIVE },
    { "create_live_pull_to_push", live("srt", "rtmp://a/b"),
      "field 'source_urls' item 1 must start with 'srt://' and a host when source_type is 'live' and source_protocol "
        .. "'srt' " .. LIVE },
    { "create_live_pull_to_push", live("http-flv", "rtmp://a/b.flv"),
      "field 'source_urls' item 1 must start with 'http://' or 'https://' and a host when source_type is 'live' and "
        .. "source_protocol 'http-flv' " .. LIVE },
    { "create_live_pull_to_push", live("rtmp", "rtmp://"),
      "field 'source_urls' item 1 must start with 'rtmp://' and a host when source_type is 'live' and source_protocol "
        .. "'rtmp' " .. LIVE },
    { "create_live_pull_to_push", live("hls", "https://a/b.m3u8"),
      "field 'source_protocol' must be one of 'rtmp', 'srt', 'http-flv' when source_type is 'live' " .. LIVE },
    { "create_live_pull_to_push", with(P, { source_type = "url", source_urls = { "https://a/1.mp4", "rtmp://a/b" } }),
      "field 'source_urls' item 2 must start with 'http://' or 'https://' and a host when source_type is 'url' " .. URL },
    { "create_live_pull_to_push", with(P, { source_type = "url", source_urls = { "file:///etc/passwd" } }),
      "field 'source_urls' item 1 must start with 'http://' or 'https://' and a host when source_type is 'url' " .. URL },
    { "stop_live_pull_to_push", { region = "us-east-1", task_id = "t" },
      "field 'region' must be one of 'ap-southeast-1', 'ap-southeast-5', 'cn-beijing', 'cn-shanghai', 'cn-shenzhen'" },
    { "update_live_pull_to_push", { region = "us-east-1", task_id = "t", offset = 2 },
      "field 'region' must be one of 'ap-southeast-1', 'ap-southeast-5', 'cn-beijing', 'cn-shanghai', 'cn-shenzhen'" },
    { "restart_live_pull_to_push", { region = "us-east-1", task_id = "t" },
      "field 'region' must be one of 'ap-southeast-1', 'ap-southeast-5', 'cn-beijing', 'cn-shanghai', 'cn-shenzhen'" },
    { "delete_live_pull_to_push", { region = "us-east-1", task_id = "t" },
      "field 'region' must be one of 'ap-southeast-1', 'ap-southeast-5', 'cn-beijing', 'cn-shanghai', 'cn-shenzhen'" },
    { "describe_live_pull_to_push", { region = "us-east-1", task_id = "t" },
      "field 'region' must be one of 'ap-southeast-1', 'ap-southeast-5', 'cn-beijing', 'cn-shanghai', 'cn-shenzhen'" },
    { "describe_live_pull_to_push_list", { region = "us-east-1" },
      "field 'region' must be one of 'ap-southeast-1', 'ap-southeast-5', 'cn-beijing', 'cn-shanghai', 'cn-shenzhen'" },
    { "create_live_pull_to_push", with(P, { callback_url = "https://" .. string.rep("c", 1993) }),
      "field 'callback_url' must be at most 2000 characters (got 2001)" },
    { "create_live_pull_to_push", with(P, { callback_url = "ftp://x" }),
      "field 'callback_url' must start with 'http://', 'https://'" },
    { "create_live_pull_to_push", with(P, { retry_interval = 59 }), "field 'retry_interval' must be at least 60" },
    { "create_live_pull_to_push", with(P, { retry_interval = 301 }), "field 'retry_interval' must be at most 300" },
    { "create_live_pull_to_push", with(P, { retry_interval = 60.5 }), "field 'retry_interval' must be an integer" },
    { "create_live_pull_to_push", with(P, { retry_count = -1 }), "field 'retry_count' must be at least 0" },
    { "create_live_pull_to_push", with(P, { repeat_number = -2 }), "field 'repeat_number' must be at least -1" },
    { "create_live_pull_to_push", with(P, { offset = 0 }), "field 'offset' must be at least 1" },
    { "create_live_pull_to_push", with(P, { source_type = "file" }),
      "field 'source_type' must be one of 'live', 'vod', 'url'" },
    { "create_live_pull_to_push", with(P, { source_urls = {} }), "field 'source_urls' must have at least 1 item (got 0)" },
    { "create_live_pull_to_push", with(P, { source_urls = "rtmp://a/b" }), "field 'source_urls' must be an array of strings" },
    { "create_live_pull_to_push", with(P, { source_urls = { "a", 2 } }), "field 'source_urls' item 2 must be a non-empty string" },
    { "create_live_pull_to_push", with(P, { source_urls = (function()
        local t = {} for i = 1, 31 do t[i] = "https://a.example/" .. i end return t end)() }),
      "field 'source_urls' must have at most 30 items (got 31)" },
    { "create_live_pull_to_push", with(P, { source_type = "live", source_urls = { "rtmp://a/1", "rtmp://a/2" } }),
      "field 'source_urls' must have exactly 1 URL when source_type is 'live' (got 2)" },
    { "create_live_pull_to_push", with(P, { source_type = "live", source_urls = { "rtmp://a/1" } }),
      "field 'source_protocol' is required when source_type is 'live'" },
    { "create_live_pull_to_push", with(P, { source_type = "live", source_urls = { "rtmp://a/1" }, source_protocol = "udp" }),
      "field 'source_protocol' must be one of 'rtmp', 'srt', 'http-flv' when source_type is 'live' " .. LIVE },
    { "create_live_pull_to_push", with(P, { end_time = NOW }), "field 'end_time' must be after start_time" },
    { "create_live_pull_to_push", with(P, { start_time = NOW - 7200, end_time = NOW - 60 }),
      "field 'end_time' must be in the future" },
    { "create_live_pull_to_push", with(P, { end_time = NOW + 7 * 86400 + 1 }),
      "fields 'start_time'..'end_time' must span at most 7 days" },
    { "create_live_pull_to_push", with(P, { start_time = "<nil>" }), "field 'start_time' is required" },
    { "describe_live_pull_to_push_list", { region = "cn-shanghai", page_size = 101 }, "field 'page_size' must be at most 100" },
    { "describe_live_pull_to_push_list", { region = "cn-shanghai", page_number = 0 }, "field 'page_number' must be at least 1" },
    { "stop_live_pull_to_push", { region = "cn-shanghai" }, "field 'task_id' is required" },
  }

  for _, r in ipairs(RULES) do
    it(r[1] .. ": " .. r[3], function()
      local cli, sent = make()
      local res, err = cli[r[1]](cli, r[2])
      assert.is_nil(res)
      assert.equal("InvalidParameter", err.code)
      assert.equal("validation", err.kind)
      assert.equal(r[3], err.message)
      assert.is_false(err.retryable)
      assert.equal(0, #sent)
    end)
  end

  it("accepts the edges of every range", function()
    local cli, sent = make()
    assert(cli:create_live_pull_to_push(with(P, { end_time = NOW + 7 * 86400, retry_interval = 300,
      dst_url = string.sub(long, 1, 2000), repeat_number = -1, retry_count = 0 })))
    assert(cli:create_live_pull_to_push(with(P, { source_urls = (function()
      local t = {} for i = 1, 30 do t[i] = "https://a.example/" .. i end return t end)() })))
    assert(cli:create_live_pull_to_push(with(P, { source_type = "live", source_urls = { "srt://a:9000?streamid=1" },
      source_protocol = "srt" })))
    -- each live protocol with its own scheme, in any case; url sources over HTTP(S)
    assert(cli:create_live_pull_to_push(live("rtmp", "RTMP://a/live/1")))
    assert(cli:create_live_pull_to_push(live("http-flv", "http://a/live/1.flv")))
    assert(cli:create_live_pull_to_push(live("http-flv", "HTTPS://a/live/1.flv")))
    assert(cli:create_live_pull_to_push(with(P, { source_type = "url",
      source_urls = { "http://a/1.mp4", "https://b/2.flv" } })))
    -- a URL of 2,000 characters, each of four bytes (the page counts characters)
    assert(cli:create_live_pull_to_push(with(P, { source_urls = { "https://a/" .. string.rep("\240\157\132\158", 1990) } })))
    -- Create's own Regions include cn-shenzhen
    assert(cli:create_live_pull_to_push(with(P, { region = "cn-shenzhen" })))
    assert.equal(9, #sent)
    -- SourceProtocol is read for live sources only: for vod and url any value
    -- passes, and none is sent
    for _, t in ipairs { "vod", "url" } do
      assert(cli:create_live_pull_to_push(with(P, { source_type = t, source_protocol = "foo" })))
      assert.falsy(sent[#sent].url:find("SourceProtocol", 1, true))
    end
  end)
end)

describe("aliyun client options", function()
  local function new_err(opts)
    local base = { access_key_id = "AK", access_key_secret = "sk", transport = function() end }
    for k, v in pairs(opts) do base[k] = v end
    local c, err = aliyun.new(base)
    assert.is_nil(c)
    return err
  end

  it("explains bad options", function()
    assert.equal("option 'endpoint' must use https or http (got ftp)",
      new_err { endpoint = "ftp://live.aliyuncs.com" }.message)
    assert.equal("option 'endpoint' must not have a path, query or fragment",
      new_err { endpoint = "https://live.aliyuncs.com/x" }.message)
    assert.equal("option 'endpoint' must not contain whitespace, CR, LF or NUL",
      new_err { endpoint = "https://live.aliyuncs.com\r\nX: y" }.message)
    assert.equal("option 'signature_version' must be one of 'v3', 'v1'", new_err { signature_version = "v2" }.message)
    assert.equal("option 'access_key_id' must not contain CR, LF or NUL", new_err { access_key_id = "AK\n" }.message)
    assert.equal("option 'security_token' must not contain CR, LF or NUL", new_err { security_token = "t\r" }.message)
    assert.equal("option 'clock' must be a function", new_err { clock = 5 }.message)
  end)

  -- The environment as the client sees it: `vars` replaces the
  -- ALIBABA_CLOUD_* variables (nil: unset) whatever the user's shell has, and
  -- passes every other name through. The clients look os.getenv up at call
  -- time; after_each puts the real one back, so a failing test cannot leak it.
  local getenv_at_load, real_getenv = os.getenv, nil
  local function isolate_env(vars)
    real_getenv = real_getenv or os.getenv
    local getenv = real_getenv
    os.getenv = function(name) -- luacheck: ignore 122
      if type(name) == "string" and name:find("^ALIBABA_CLOUD_") then return vars[name] end
      return getenv(name)
    end
  end

  after_each(function()
    if real_getenv then
      os.getenv = real_getenv -- luacheck: ignore 122
      real_getenv = nil
    end
  end)

  it("says which credentials are missing", function()
    isolate_env({})
    local c, err = aliyun.new { transport = function() end }
    assert.is_nil(c)
    assert.equal("MissingCredentials", err.code)
    assert.matches("ALIBABA_CLOUD_ACCESS_KEY_ID", err.message, 1, true)
    -- an id alone is not enough either
    isolate_env({ ALIBABA_CLOUD_ACCESS_KEY_ID = "AKenv" })
    c, err = aliyun.new { transport = function() end }
    assert.is_nil(c)
    assert.equal("MissingCredentials", err.code)
  end)

  it("takes credentials from the environment, checked like the options", function()
    isolate_env({ ALIBABA_CLOUD_ACCESS_KEY_ID = "AKenv", ALIBABA_CLOUD_ACCESS_KEY_SECRET = "s",
                  ALIBABA_CLOUD_SECURITY_TOKEN = "tok" })
    local c = assert(aliyun.new { transport = function() end, clock = function() return NOW end })
    assert.equal("AKenv", c.access_key_id)
    local req = c:prepare("ResumeLiveStream", { LiveStreamType = "publisher", DomainName = "d", AppName = "a", StreamName = "s" })
    assert.equal("tok", req.headers["x-acs-security-token"])
    isolate_env({ ALIBABA_CLOUD_ACCESS_KEY_ID = "AK\nX", ALIBABA_CLOUD_ACCESS_KEY_SECRET = "s" })
    local err
    c, err = aliyun.new { transport = function() end }
    assert.is_nil(c)
    assert.equal("environment variable ALIBABA_CLOUD_ACCESS_KEY_ID must not contain CR, LF or NUL", err.message)
  end)

  it("never mixes the options and the environment, and names the half of a pair that is missing", function()
    isolate_env({ ALIBABA_CLOUD_ACCESS_KEY_ID = "AKenv", ALIBABA_CLOUD_ACCESS_KEY_SECRET = "s",
                  ALIBABA_CLOUD_SECURITY_TOKEN = "tok" })
    local c, err = aliyun.new { transport = function() end, access_key_id = "AKopt" }
    assert.is_nil(c)
    assert.equal("MissingCredentials", err.code)
    assert.equal("option 'access_key_secret' is missing: 'access_key_id' was given (the environment is read only "
      .. "when no credential option is)", err.message)
    -- given as options, the environment's token is not added to them
    c = assert(aliyun.new { transport = function() end, access_key_id = "AKopt", access_key_secret = "s",
                            clock = function() return NOW end })
    local req = c:prepare("ResumeLiveStream", { LiveStreamType = "publisher", DomainName = "d", AppName = "a", StreamName = "s" })
    assert.is_nil(req.headers["x-acs-security-token"])
    isolate_env({ ALIBABA_CLOUD_ACCESS_KEY_SECRET = "s" })
    c, err = aliyun.new { transport = function() end }
    assert.is_nil(c)
    assert.equal("MissingCredentials", err.code)
    assert.equal("ALIBABA_CLOUD_ACCESS_KEY_SECRET is set but ALIBABA_CLOUD_ACCESS_KEY_ID is not", err.message)
  end)

  it("isolates only the ALIBABA_CLOUD_* variables", function()
    local real = os.getenv
    isolate_env({})
    assert.not_equal(real, os.getenv)
    assert.equal(real("PATH"), os.getenv("PATH"))
    assert.is_nil(os.getenv("ALIBABA_CLOUD_ACCESS_KEY_ID"))
  end)

  it("has the real os.getenv back after an isolated test", function()
    assert.equal(getenv_at_load, os.getenv)
  end)

  it("never shows the secret", function()
    local cli = make()
    assert.equal("streamctl.aliyun client (https://live.aliyuncs.com)", tostring(cli))
    for k, v in pairs(cli) do
      assert.not_equal("secret", v, k)
    end
  end)
end)

describe("aliyun answers", function()
  local function answer(status, body, headers)
    return function() return { status = status, headers = headers or {}, body = body } end
  end

  it("returns the provider's error with every field", function()
    -- (one attempt: a throttle would otherwise be sent again for as long as the run lasts)
    local cli = make({ retry = false }, answer(400,
      '{"RequestId":"R-9","HostId":"live.aliyuncs.com","Code":"Throttling.User","Message":"Request was denied due to user flow control."}',
      { ["x-acs-retry-after"] = "1500", date = "Tue, 14 Nov 2023 22:13:20 GMT" }))
    local res, err = cli:resume_live_stream { domain_name = "d", app_name = "a", stream_name = "s" }
    assert.is_nil(res)
    assert.equal("aliyun", err.provider)
    assert.equal("ResumeLiveStream", err.action)
    assert.equal("Throttling.User", err.code)
    assert.equal("throttled", err.kind)
    assert.equal(400, err.http_status)
    assert.equal("R-9", err.request_id)
    assert.equal(1500, err.retry_after_ms)
    assert.equal(NOW, err.server_date)
    assert.is_true(err.retryable)
    assert.equal("streamctl: aliyun ResumeLiveStream: Throttling.User (HTTP 400): "
      .. "Request was denied due to user flow control. [RequestId R-9]", tostring(err))
  end)

  it("classifies codes for retries", function()
    local cases = {
      { 500, "InternalError", "server", true }, { 503, "ServiceUnavailable", "server", true },
      { 400, "SignatureDoesNotMatch", "signature", false }, { 400, "SignatureNonceUsed", "duplicate", true },
      { 400, "InvalidTimeStamp.Expired", "clock", true }, { 404, "InvalidAccessKeyId.NotFound", "auth", false },
      { 400, "CodeConfigAlreadyExists", "service", false }, { 400, "Throttling.Api", "throttled", true },
      { 502, "BadGatewayish", "server", true },
    }
    for _, c in ipairs(cases) do
      local cli = make({ retry = false }, answer(c[1], '{"RequestId":"r","Code":"' .. c[2] .. '","Message":"m"}'))
      local _, err = cli:call("StopLivePullToPush", { Region = "cn-shanghai", TaskId = "t" })
      assert.equal(c[2], err.code)
      assert.equal(c[3], err.kind, c[2])
      assert.equal(c[4], err.retryable, c[2])
    end
  end)

  it("treats a body that is not JSON as InvalidResponse, or as a server failure on 5xx", function()
    local cli = make({}, answer(200, "{not json"))
    local _, err = cli:call("StopLivePullToPush", { Region = "cn-shanghai", TaskId = "t" })
    assert.equal("InvalidResponse", err.code)
    assert.equal("HTTP 200 with a body that is not JSON (9 bytes)", err.message)
    assert.is_false(err.retryable)
    cli = make({}, answer(502, "<html>bad gateway</html>"))
    _, err = cli:call("StopLivePullToPush", { Region = "cn-shanghai", TaskId = "t" })
    assert.equal("ServiceUnavailable", err.code)
    assert.is_true(err.retryable)
  end)

  it("wraps transport failures and knows which may be retried", function()
    local cli = make({}, function() return nil, { code = "Timeout", message = "timed out", sent = true } end)
    local _, err = cli:resume_live_stream { domain_name = "d", app_name = "a", stream_name = "s" }
    assert.equal("Timeout", err.code)
    assert.equal("timeout", err.kind)
    assert.is_true(err.retryable) -- resuming twice is harmless
    assert.is_true(err.outcome_unknown)
    local CREATE = { Region = "cn-shanghai", SourceType = "vod", SourceUrls = { "http://a/b.mp4" },
                     StartTime = "2023-11-15T00:00:00Z", EndTime = "2023-11-15T01:00:00Z", DstUrl = "rtmp://d/a/s" }
    _, err = cli:call("CreateLivePullToPush", CREATE)
    assert.is_false(err.retryable) -- a second create is not harmless
    assert.is_true(err.outcome_unknown)
    cli = make({}, function() return nil, { code = "NetworkError", message = "refused", sent = false } end)
    _, err = cli:call("CreateLivePullToPush", CREATE)
    assert.is_true(err.retryable)
    assert.is_nil(err.outcome_unknown)
    cli = make({}, function() return nil, { code = "TLSError", message = "bad cert", sent = false } end)
    _, err = cli:call("StopLivePullToPush", { Region = "cn-shanghai", TaskId = "t" })
    assert.equal("tls", err.kind)
    assert.is_false(err.retryable)
  end)

  it("scrubs the security token from provider messages", function()
    local token = "STS.secret-token/with+chars"
    local cli = make({ security_token = token }, answer(400, '{"RequestId":"r","Code":"SignatureDoesNotMatch",'
      .. '"Message":"Specified signature is not matched with our calculation. server string to sign is:POST&%2F&'
      .. 'SecurityToken%3DSTS.secret-token%252Fwith%252Bchars raw STS.secret-token/with+chars"}'))
    local _, err = cli:resume_live_stream { domain_name = "d", app_name = "a", stream_name = "s" }
    assert.equal("Specified signature is not matched with our calculation. server string to sign is:POST&%2F&"
      .. "SecurityToken%3D<redacted> raw <redacted>", err.message)
    assert.is_nil(tostring(err):find("secret-token", 1, true))
  end)

  it("scrubs a secret a successful answer quotes, as written or behind JSON escapes", function()
    local token = "STS.secret-token/with+chars"
    for _, body in ipairs {
      '{"RequestId":"r","Echo":{"Token":"' .. token .. '"}}',
      '{"RequestId":"r","Echo":{"Token":"STS.secret-token\\/with+chars"}}', -- ("\/" is "/": not in the raw text)
      '{"RequestId":"r","Echo":{"Token":"STS.secret-token\\u002fwith+chars"}}',
    } do
      local cli = make({ security_token = token }, answer(200, body))
      local res = assert(cli:resume_live_stream { domain_name = "d", app_name = "a", stream_name = "s" })
      assert.equal("<redacted>", res.Echo.Token, body)
    end
    local cli = make({ security_token = token }, answer(200, '{"RequestId":"r","Echo":{"Token":"STS.other"}}'))
    assert.equal("STS.other", assert(cli:resume_live_stream { domain_name = "d", app_name = "a",
      stream_name = "s" }).Echo.Token)
  end)
end)
