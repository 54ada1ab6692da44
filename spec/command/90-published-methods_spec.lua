-- Issue 91: every method the providers publish, from Lua and from the
-- command. `streamctl PROVIDER methods` lists them; `call` checks each
-- parameter by the published metadata before anything is written or sent;
-- a published method the emulator does not model reaches it and is
-- answered with the provider's own error for an unsupported action.
local cjson = require "cjson"
local checks = require "spec.helpers.checks"
local emu = require "spec.helpers.emulator"
local process = require "spec.helpers.process"
local aliyun = require "streamctl.aliyun"
local zego = require "streamctl.zego"

local HOME = process.temp_dir()
local DOWN = "http://127.0.0.1:9"
local ALI_KEYS = { "--access-key-id", "LTAIemulatorKey", "--access-key-secret", "emulator-secret" }
local ZEGO_KEYS = { "--app-id", "1234567890", "--server-secret", "0123456789abcdef0123456789abcdef" }

local argv_of = checks.argv_of

local function run(argv)
  return checks.run_cli(argv, { home = HOME, stdin = "" })
end

local read = process.read_file

describe("issue 91: streamctl PROVIDER methods", function()
  lazy_teardown(function() os.execute("rm -rf " .. process.quote(HOME)) end)

  it("lists a method: what it does, its cap, its summary and parameters; the source last", function()
    local status, out, err = run { "aliyun", "methods", "PublishList" }
    assert.same({ 0, "" }, { status, err })
    assert.equal("DescribeLiveStreamsPublishList  read, POST, 1/s\n"
      .. "    Queries the stream ingest records of a domain name or an application or stream under a domain name.\n"
      .. "    AppName (string); DomainName (string, required); EndTime (string, required); OrderBy (string); "
      .. "PageNumber (integer); PageSize (integer); QueryType (string); RegionId (string); StartTime (string, "
      .. "required); StreamName (string); StreamType (string)\n"
      .. "1 method, from github.com/aliyun/aliyun-openapi-meta at 2563691c2222 (2026-04-21)\n", out)
  end)

  it("says why a method cannot be called", function()
    local _, out = run { "zego", "methods", "StartMix" }
    assert.falsy(out:find("not callable", 1, true), out) -- (its JSON body is sent)
    _, out = run { "aliyun", "methods", "SetSnapshotCallbackAuth" }
    assert.truthy(out:find("    not callable: it requires CallbackAuthKey, a key streamctl never sends as a "
      .. "parameter (set it in the console)\n", 1, true), out)
  end)

  it("--output json: one object a method, its keys in order, every published method", function()
    local status, out, err = run { "zego", "methods", "--output", "json" }
    assert.same({ 0, "" }, { status, err })
    local n, first = 0, nil
    for line in out:gmatch("[^\n]+") do
      n = n + 1
      local m = cjson.decode(line)
      first = first or line
      assert.truthy(m.action and m.effect and m.method and m.params, line)
    end
    assert.equal(50, n)
    local summary = zego.published_method("AddStream").summary
    local head = '{"action":"AddStream","effect":"change","method":"GET","cap":10,"callable":true,'
      .. '"declared":false,"summary":' .. cjson.encode(summary) .. ',"params":[{"name":"CensorFlag","type":"integer",'
      .. '"required":false,"enum":["0","1"]}'
    assert.equal(head, first:sub(1, #head))
  end)

  it("a pattern nothing matches: exit 1, said; a bad --output: exit 2", function()
    assert.same({ 1, "", "streamctl: no method of zego's has 'nothing' in its name (streamctl zego methods lists "
      .. "them all)\n" }, { run { "zego", "methods", "nothing" } })
    local status = run { "zego", "methods", "--output", "yaml" }
    assert.equal(2, status)
  end)
end)

describe("issue 91: call checks each parameter by the published method, before anything is written or sent",
  function()
  local FORBID = { "aliyun", "call", "ForbidLiveStream", "DomainName=push.example.com", "AppName=live",
                   "StreamName=s1", "LiveStreamType=publisher" }
  local TAKES = ": ForbidLiveStream takes AppName, DomainName, LiveStreamType, Oneshot, RegionId, ResumeTime, "
    .. "StreamName\n"
  for _, row in ipairs {
    { "a misspelt ResumeTime", argv_of(FORBID, "ResumeTIme=2030-01-01T00:00:00Z"),
      "streamctl: unknown parameter 'ResumeTIme' (did you mean 'ResumeTime'?)" .. TAKES },
    { "Bogus=1", argv_of(FORBID, "Bogus=1"), "streamctl: unknown parameter 'Bogus'" .. TAKES },
    { "ZEGO's Bogus=1", { "zego", "call", "ForbidRTCStream", "StreamId=x", "Bogus=1" },
      "streamctl: unknown parameter 'Bogus': ForbidRTCStream takes Sequence, StreamId\n" },
    { "a required one missing", { "aliyun", "call", "ForbidLiveStream", "DomainName=push.example.com" },
      "streamctl: parameters 'AppName', 'LiveStreamType', 'StreamName' are required\n" },
    { "a value of another type", { "zego", "call", "CloseRoom", "RoomId=r1", "RoomCloseCallback=yes" },
      "streamctl: parameter 'RoomCloseCallback' must be true or false\n" },
  } do
    it(row[1] .. ": exit 2 naming it, nothing sent, no intent written", function()
      local log = HOME .. "/audit-" .. row[1]:gsub("%W", "_") .. ".log"
      local keys = row[2][1] == "zego" and ZEGO_KEYS or ALI_KEYS
      local status, out, err = run(argv_of(row[2], keys, "--endpoint", DOWN, "--audit-log", log))
      assert.same({ 2, "", row[3] }, { status, out, err })
      assert.equal("", read(log) or "") -- (opened before anything is checked; no intent in it)
    end)
  end
end)

describe("issue 91: a published method the emulator does not model", function()
  local server
  lazy_setup(function() server = emu.start {} end)
  lazy_teardown(function() if server then server:stop() end end)
  before_each(function() server:reset() end)

  it("reaches it from Lua, signed, and is answered with the provider's unsupported-action error, sent once",
    function()
    local a = assert(aliyun.new { endpoint = server.aliyun_url, access_key_id = "LTAIemulatorKey",
                                  access_key_secret = "emulator-secret" })
    local res, err = a:call("DescribeLiveDomainDetail", { DomainName = "push.example.com" })
    assert.is_nil(res)
    assert.same({ "InvalidApi.NotFound", 404, 1 }, { err.code, err.http_status, err.attempts })
    local log = server:log { limit = 10 }
    assert.equal(1, #log)
    assert.equal("DescribeLiveDomainDetail", log[1].action)
    local z = assert(zego.new { endpoint = server.zego_url, app_id = 1234567890,
                                server_secret = "0123456789abcdef0123456789abcdef" })
    res, err = z:call("DescribeUserNum", { RoomId = { "r1" } })
    assert.is_nil(res)
    assert.same({ 100000007, 1 }, { err.code, err.attempts })
    a:close()
    z:close()
  end)

  it("one whose parameters go in the body: signed with them (V1 and V3, a form; ZEGO, JSON), answered the same",
    function()
    for _, v in ipairs { "v1", "v3" } do
      server:reset()
      local a = assert(aliyun.new { endpoint = server.aliyun_url, access_key_id = "LTAIemulatorKey",
                                    access_key_secret = "emulator-secret", signature_version = v })
      local res, err = a:call("SendLike", { AppId = "app", GroupId = "g1", Count = "3" })
      a:close()
      assert.is_nil(res)
      -- (its signature checked first, over the body's parameters too: a wrong one would say SignatureDoesNotMatch)
      assert.same({ "InvalidApi.NotFound", 404, 1 }, { err.code, err.http_status, err.attempts }, v)
    end
    local z = assert(zego.new { endpoint = server.zego_url, app_id = 1234567890,
                                server_secret = "0123456789abcdef0123456789abcdef" })
    local res, err = z:call("StopMix", { TaskId = "t1" })
    z:close()
    assert.is_nil(res)
    assert.same({ 100000007, 1 }, { err.code, err.attempts })
  end)

  it("reaches it from the command: exit 1, the provider's error said", function()
    local status, out, err = run(argv_of("aliyun", "call", "DescribeLiveDomainDetail", "DomainName=push.example.com",
      ALI_KEYS, "--endpoint", server.aliyun_url, "--no-audit-log", "--output", "json"))
    assert.equal(1, status, err)
    local line = cjson.decode(out:match("[^\n]+"))
    assert.same({ false, "InvalidApi.NotFound", 1 }, { line.ok, line.code, line.attempts })
    assert.equal(1, #server:log { limit = 10 })
  end)

  it("the publish list, which it models, answers the command's call and its named command", function()
    local range = { "--domain-name", "push.example.com", "--start-time", "2026-01-01T00:00:00Z", "--end-time",
                    "2026-01-01T01:00:00Z" }
    local status, out, err = run(argv_of("aliyun", "describe-live-streams-publish-list", range, ALI_KEYS,
      "--endpoint", server.aliyun_url, "--output", "json"))
    assert.equal(0, status, err)
    assert.equal(0, cjson.decode(out:match("[^\n]+")).result.TotalNum)
    status, out, err = run(argv_of("aliyun", "call", "DescribeLiveStreamsPublishList", "DomainName=push.example.com",
      "StartTime=2026-01-01T00:00:00Z", "EndTime=2026-01-01T01:00:00Z", ALI_KEYS, "--endpoint", server.aliyun_url,
      "--output", "json"))
    assert.equal(0, status, err)
    assert.equal(0, cjson.decode(out:match("[^\n]+")).result.TotalNum)
    -- (each run its own budget: the second may be throttled first, and sent again)
    local answered = 0
    for _, e in ipairs(server:log { limit = 10 }) do
      if e.verdict == "ok" then answered = answered + 1 end
    end
    assert.equal(2, answered)
  end)
end)

describe("issue 91: the emulator models the stream-control family's named methods", function()
  local server, a, z
  local DOMAIN = "push.example.com"
  local function iso(t) return os.date("!%Y-%m-%dT%H:%M:%SZ", t) end
  lazy_setup(function()
    server = emu.start {}
    a = assert(aliyun.new { endpoint = server.aliyun_url, access_key_id = "LTAIemulatorKey",
                            access_key_secret = "emulator-secret" })
    z = assert(zego.new { endpoint = server.zego_url, app_id = 1234567890,
                          server_secret = "0123456789abcdef0123456789abcdef" })
  end)
  lazy_teardown(function()
    if a then a:close() end
    if z then z:close() end
    if server then server:stop() end
  end)
  before_each(function() server:reset() end)

  it("a stream-level region block: set, listed for 7 days, replaced, deleted", function()
    local now = os.time()
    assert(a:set_live_stream_block { domain_name = DOMAIN, app_name = "live", stream_name = "s1",
                                     block_type = "blacklist", location_list = "CN,AS" })
    local res = assert(a:describe_stream_location_block { domain_name = DOMAIN })
    assert.equal(1, res.Count)
    local b = res.StreamBlockList.StreamBlock[1]
    assert.same({ "live", "s1", "blacklist", "CN,AS", 2 }, { b.AppName, b.StreamName, b.BlockType, b.LocationList,
                                                              b.Status })
    local ends = require("streamctl.base.validate").parse_time(b.ReleaseTime)
    assert.truthy(math.abs(ends - (now + 7 * 86400)) <= 5, b.ReleaseTime)
    assert(a:set_live_stream_block { domain_name = DOMAIN, app_name = "live", stream_name = "s1",
                                     block_type = "whitelist", location_list = "CN" })
    res = assert(a:describe_stream_location_block { domain_name = DOMAIN, block_type = "whitelist" })
    assert.equal(1, res.Count)
    assert(a:delete_live_stream_block { domain_name = DOMAIN, app_name = "live", stream_name = "s1" })
    assert.equal(0, assert(a:describe_stream_location_block { domain_name = DOMAIN }).Count)
    -- (a delete sent again changes nothing and does not fail)
    assert(a:delete_live_stream_block { domain_name = DOMAIN, app_name = "live", stream_name = "s1" })
  end)

  it("what was published, and the forbids done, each in its look-up", function()
    local from = os.time() - 60
    server:online({ domain = DOMAIN, app = "live", stream = "s1" })
    assert(a:forbid_live_stream { domain_name = DOMAIN, app_name = "live", stream_name = "s1" })
    local to = os.time() + 60
    local res = assert(a:describe_live_streams_publish_list { domain_name = DOMAIN, start_time = iso(from),
                                                              end_time = iso(to) })
    assert.equal(1, res.TotalNum)
    local s = res.PublishInfo.LiveStreamPublishInfo[1]
    assert.same({ "live", "s1" }, { s.AppName, s.StreamName })
    assert.truthy(s.StopTime:find("^%d%d%d%d%-"), "the forbid ended the ingest: " .. tostring(s.StopTime))
    res = assert(a:describe_live_streams_control_history { domain_name = DOMAIN, start_time = iso(from),
                                                           end_time = iso(to) })
    local c = res.ControlInfo.LiveStreamControlInfo
    assert.same({ 1, "ForbidLiveStream", "s1" }, { #c, c[1].Action, c[1].StreamName })
  end)

  it("a room's stream rules: set, described, deleted", function()
    assert(z:set_forbid_stream_rule { room_id = "r1", stream_id = "s1", disable_audio = 1 })
    local res = assert(z:describe_forbid_stream_rules { room_id = "r1", stream_ids = { "s1", "s2" } })
    assert.equal("r1", res.Data.RoomId)
    local list = res.Data.ForbidStreamRuleList
    assert.same({ 1, "s1", 1, 0, 21600 }, { #list, list[1].StreamId, list[1].DisableAudio, list[1].DisableVideo,
                                            list[1].EffectiveTime })
    assert(z:del_forbid_stream_rule { room_id = "r1", stream_id = "s1" })
    res = assert(z:describe_forbid_stream_rules { room_id = "r1", stream_ids = { "s1" } })
    assert.equal(0, #res.Data.ForbidStreamRuleList)
  end)

  it("a room's users: a kicked user's streams close, then the room's; another room's stay", function()
    local function online()
      local out = {}
      for key in pairs(server:control("GET", "zego_online").online) do out[#out + 1] = key end
      table.sort(out)
      return out
    end
    for _, s in ipairs { { "s1", "r1", "u1" }, { "s2", "r1", "u2" }, { "s3", "r2", "u3" } } do
      server:control("POST", "zego_online", { app_id = "1234567890", stream_id = s[1], room_id = s[2],
                                               user_id = s[3] })
    end
    assert.same({ "1234567890/s1", "1234567890/s2", "1234567890/s3" }, online())
    assert(z:kickout_user { room_id = "r1", user_ids = { "u1" } })
    assert.same({ "1234567890/s2", "1234567890/s3" }, online())
    assert(z:close_room { room_id = "r1" })
    assert.same({ "1234567890/s3" }, online())
    -- (a room with no stream the emulator holds: nothing closed, answered 0)
    assert(z:close_room { room_id = "r9" })
  end)
end)
