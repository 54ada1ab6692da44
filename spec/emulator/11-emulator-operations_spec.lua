-- sanitizers: none (the emulator: its code runs in nginx, not in this process)
-- The emulator's operations, rate limits, fault injection and request log, driven
-- by hand-built requests (luasocket + openssl-CLI signatures from
-- spec/helpers/emulator.lua; never streamctl's core).

local emu = require "spec.helpers.emulator"
local rates = require "spec.helpers.rate_model"
local cjson = require "cjson"
local socket = require "socket"


local CONFIG = {
  aliyun = {
    accounts = {
      LTAIslow = { secret = "slow-secret", qps = { ResumeLiveStream = 2 } },
      LTAIbulk = { secret = "bulk-secret", qps = { CreateLivePullToPush = 1000, UpdateLivePullToPush = 1000,
        RestartLivePullToPush = 1000, DeleteLivePullToPush = 1000, StopLivePullToPush = 1000,
        DescribeLivePullToPush = 1000, DescribeLivePullToPushList = 1000 } },
      LTAInoLive = { secret = "s", live_service = false },
      LTAInoDomain = { secret = "s", has_live_domain = false },
      -- 5/s, to test the limiters quickly: the provider's default / a token bucket
      LTAIwindow = { secret = "window-secret", qps = { ResumeLiveStream = 5 } },
      LTAIbucket = { secret = "bucket-secret", qps = { ResumeLiveStream = 5 }, rate_limiter = "token_bucket" },
      -- a RAM user allowed two actions and the Describe ones
      LTAIops = { secret = "ops-secret", actions = { "live:ResumeLiveStream", "LIVE:stopLivePullToPush",
        "live:Describe*" } },
      LTAInone = { secret = "none-secret", actions = {} },
    },
  },
  zego = {
    apps = {
      ["777"] = { secret = "test-env-secret", test_env = true },
      ["888"] = { secret = "no-cdn-resume", cdn_resume_enabled = false },
      ["501"] = { secret = "window-app", qps = { ForbidRTCStream = 5 } },
      ["502"] = { secret = "bucket-app", qps = { ForbidRTCStream = 5 }, rate_limiter = "token_bucket" },
    },
  },
}

local function decode(text)
  local ok, v = pcall(cjson.decode, text or "")
  return ok and v or nil
end

local keys = emu.sorted_keys

-- What a stop of a task that has not started, and a restart before the start
-- time, answer: the pages name no code; the emulator's choice
-- (docs/development/emulator-fidelity.md, "Differences").
local STOP_NOT_STARTED = "InvalidParameter"
local RESTART_NOT_STARTED = "InvalidParameter"

describe("streamctl emulator operations", function()
  local server
  local offset = 0   -- the emulator clock's shift, mirrored for signing

  lazy_setup(function()
    server = emu.start({ config = CONFIG })
  end)

  lazy_teardown(function()
    if server then
      server:stop()
    end
  end)

  before_each(function()
    server:reset()
    offset = 0
  end)

  local function shift(seconds)
    offset = seconds
    server:clock({ offset = seconds })
  end

  local function now()
    return os.time() + offset
  end

  -- Pins the emulator clock at t (requests are then signed with about t);
  -- returns t.
  local function pin(t)
    offset = t - os.time()
    server:clock({ now = t })
    return t
  end

  -- A signed V1 request for server:request (signing runs the openssl CLI, so
  -- timed tests build their requests first and send them later), every
  -- parameter in the query as the official SDKs send them.
  local function live_request(action, params, opts)
    opts = opts or {}
    local method = opts.method or "POST"
    local q = emu.v1_request({ action = action, params = params, method = method, key = opts.key,
      secret = opts.secret, time = opts.time or now() })
    return { method = method, provider = "aliyun", path = "/?" .. q }
  end

  -- A signed V1 request, sent; returns status, decoded body, headers, raw body, err.
  local function live(action, params, opts)
    local status, body, headers, err = server:request(live_request(action, params, opts))
    return status, decode(body), headers, body, err
  end

  -- opts.sequence = false leaves out the Sequence emu.zego_query adds to RTC
  -- forbid/resume; opts.method (default GET) and opts.nonce as given.
  local function zego_request(action, opts)
    opts = opts or {}
    local q = emu.zego_query({ action = action, app_id = opts.app_id, secret = opts.secret,
      time = opts.time or now(), params = opts.params, streams = opts.streams, is_test = opts.is_test,
      sequence = opts.sequence, nonce = opts.nonce })
    return { method = opts.method, provider = "zego", path = "/?" .. q }
  end

  local function zego(action, opts)
    local status, body, headers, err = server:request(zego_request(action, opts))
    return status, decode(body), headers, body, err
  end

  local STREAM = { DomainName = "live.example.com", AppName = "app", LiveStreamType = "publisher" }

  local function stream(name, extra)
    local p = {}
    for k, v in pairs(STREAM) do
      p[k] = v
    end
    p.StreamName = name
    for k, v in pairs(extra or {}) do
      p[k] = v
    end
    return p
  end

  local function block_list(params)
    local p = { DomainName = "live.example.com" }
    for k, v in pairs(params or {}) do
      p[k] = v
    end
    local status, v = live("DescribeLiveStreamsBlockList", p, { method = "GET" })
    assert.are.equal(200, status)
    return v
  end

  describe("Aliyun ForbidLiveStream / ResumeLiveStream", function()
    it("refuses names and domains outside their shape (the strictest reading) with InvalidParameter", function()
      local cases = {
        { { StreamName = "match 1/../x" }, "StreamName", "It may hold letters, digits, '-' and '_'." },
        { { StreamName = "caf\195\169" }, "StreamName", "It may hold letters, digits, '-' and '_'." },
        { { AppName = "li ve" }, "AppName", "It may hold letters, digits, '-' and '_'." },
        { { DomainName = "https://live.example.com" }, "DomainName",
          "A domain name in lower case, without scheme, port or path." },
        { { DomainName = "Live.example.com" }, "DomainName", "A domain name in lower case, without scheme, port or path." },
        { { DomainName = "live.example.com." }, "DomainName",
          "A domain name in lower case, without scheme, port or path." },
      }
      for _, action in ipairs { "ForbidLiveStream", "ResumeLiveStream" } do
        for _, case in ipairs(cases) do
          local status, v = live(action, stream("m1", case[1]))
          assert.are.same({ 400, "InvalidParameter", "Specified parameter " .. case[2] .. " is not valid. " .. case[3] },
            { status, v.Code, v.Message }, action)
        end
      end
      local status = live("ForbidLiveStream", stream("match_1-A"))
      assert.are.equal(200, status)
    end)

    it("forbids a stream, lists it, and resumes it", function()
      local status, v = live("ForbidLiveStream", stream("s1"))
      assert.are.equal(200, status)
      assert.are.same({ "RequestId" }, keys(v))
      local st = server:state().aliyun.streams["live.example.com/app/s1"]
      assert.are.equal("forbidden", st.status)
      assert.are.equal(1, st.forbid_count)
      assert.are.equal("LTAIemulatorKey", st.account)

      local bl = block_list()
      assert.are.same({ "live.example.com/app/s1" }, bl.StreamUrls.StreamUrl)
      assert.are.equal(1, bl.TotalNum)
      assert.are.equal(1, bl.TotalPage)
      assert.are.equal(1, bl.PageNum)
      assert.are.equal(2000, bl.PageSize)
      assert.are.equal("live.example.com", bl.DomainName)

      status, v = live("ResumeLiveStream", stream("s1"))
      assert.are.equal(200, status)
      assert.are.same({ "RequestId" }, keys(v))
      st = server:state().aliyun.streams["live.example.com/app/s1"]
      assert.are.equal("normal", st.status)
      assert.are.equal(1, st.resume_count)
      bl = block_list()
      assert.are.same({}, bl.StreamUrls.StreamUrl)
      assert.are.equal(0, bl.TotalNum)

      local entries = server:log({ action = "ForbidLiveStream" })
      assert.are.equal(1, #entries)
      assert.are.equal("ok", entries[1].verdict)
      assert.are.equal("OK", entries[1].code)
      assert.is_true(entries[1].applied)
    end)

    it("lifts a forbid at its ResumeTime, and does not block on Oneshot", function()
      assert.are.equal(200, (live("ForbidLiveStream", stream("timed", { ResumeTime = emu.iso8601(now() + 60) }))))
      assert.are.equal(200, (live("ForbidLiveStream", stream("kick", { Oneshot = "yes" }))))
      assert.are.same({ "live.example.com/app/timed" }, block_list().StreamUrls.StreamUrl)
      assert.are.equal(1, server:state().aliyun.streams["live.example.com/app/kick"].interrupt_count)
      shift(61)
      assert.are.same({}, block_list().StreamUrls.StreamUrl)
      assert.are.equal("normal", server:state().aliyun.streams["live.example.com/app/timed"].status)
    end)

    it("resumes every app's stream of that name with AppName=*", function()
      for _, p in ipairs({ { "a1", "s" }, { "a2", "s" }, { "a1", "t" } }) do
        local sp = stream(p[2])
        sp.AppName = p[1]
        assert.are.equal(200, (live("ForbidLiveStream", sp)))
      end
      local sp = stream("s")
      sp.AppName = "*"
      assert.are.equal(200, (live("ResumeLiveStream", sp)))
      assert.are.same({ "live.example.com/a1/t" }, block_list().StreamUrls.StreamUrl)
      local bl = block_list({ PageSize = "1", PageNum = "2" })
      assert.are.same({}, bl.StreamUrls.StreamUrl)
      assert.are.equal(1, bl.TotalNum)
    end)

    it("answers parameter errors with the provider's codes", function()
      local cases = {
        { "ForbidLiveStream", stream("x", { DomainName = "" }), 400, "MissingDomainName" },
        { "ForbidLiveStream", stream("x", { LiveStreamType = "player" }), 400, "InvalidParameter" },
        { "ForbidLiveStream", stream("x", { ResumeTime = "tomorrow" }), 400, "InvalidParameter" },
        { "ForbidLiveStream", stream("x", { Oneshot = "maybe" }), 400, "InvalidParameter" },
        { "ResumeLiveStream", stream("x", { AppName = "" }), 400, "MissingAppName" },
        { "DescribeLiveStreamsBlockList", { DomainName = "d", PageSize = "3001" }, 400, "InvalidParameter" },
        { "DescribeNothing", {}, 404, "InvalidApi.NotFound" },
      }
      for _, c in ipairs(cases) do
        local status, v = live(c[1], c[2])
        assert.are.equal(c[3], status, c[4])
        assert.are.equal(c[4], v.Code)
        assert.are.same({ "Code", "HostId", "Message", "Recommend", "RequestId" }, keys(v))
      end
      local status, v = live("ForbidLiveStream", stream("x"), { key = "LTAInoLive", secret = "s" })
      assert.are.equal(400, status)
      assert.are.equal("LiveServiceNotFound", v.Code)
      status, v = live("DescribeLivePullToPushList", { Region = "cn-shanghai" },
        { key = "LTAInoDomain", secret = "s" })
      assert.are.equal(400, status)
      assert.are.equal("CodeInvalidAliUid", v.Code)
    end)
  end)

  describe("Aliyun pull-to-push", function()
    local dst_counter = 0

    local function task_params(over)
      dst_counter = dst_counter + 1
      local p = {
        Region = "cn-shanghai",
        TaskName = "relay",
        StartTime = emu.iso8601(now() + 3600),
        EndTime = emu.iso8601(now() + 7200),
        SourceType = "live",
        SourceProtocol = "rtmp",
        SourceUrls = '["rtmp://src.example.com/app/in"]',
        DstUrl = "rtmp://dst.example.com/app/out" .. dst_counter,
      }
      for k, v in pairs(over or {}) do
        p[k] = v or nil
      end
      return p
    end

    -- (CreateLivePullToPush allows 10/s per account: tests that create many
    -- tasks at once use an account configured with a higher limit)
    local BULK_KEY = { key = "LTAIbulk", secret = "bulk-secret" }
    local function create(over)
      return live("CreateLivePullToPush", task_params(over), BULK_KEY)
    end

    it("creates, describes and lists a task", function()
      local p = task_params({ RetryCount = "5", CallbackUrl = "https://cb.example.com/x" })
      local status, v = live("CreateLivePullToPush", p)
      assert.are.equal(200, status)
      assert.are.same({ "Description", "RequestId", "RetCode", "TaskId" }, keys(v))
      assert.are.equal(0, v.RetCode)
      assert.are.equal("OK", v.Description)
      assert.matches("^%x+%-%x+%-%x+%-%x+%-%x+$", v.TaskId)
      local id = v.TaskId

      status, v = live("DescribeLivePullToPush", { Region = "cn-shanghai", TaskId = id }, { method = "GET" })
      assert.are.equal(200, status)
      assert.are.equal(id, v.TaskId)
      assert.are.equal(0, v.TaskStatus)
      assert.is_nil(v.TaskExitReason)
      assert.are.same({
        TaskName = "relay", Region = "cn-shanghai", SourceType = "live", SourceProtocol = "rtmp",
        SourceUrls = { "rtmp://src.example.com/app/in" }, DstUrl = p.DstUrl,
        StartTime = p.StartTime, EndTime = p.EndTime, RepeatNumber = 0, RetryCount = 5,
        RetryInterval = 60, CallbackURL = "https://cb.example.com/x",
      }, v.TaskInfo)

      status, v = live("DescribeLivePullToPushList", { Region = "cn-shanghai", DstUrl = "app/out" },
        { method = "GET" })
      assert.are.equal(200, status)
      assert.are.equal(1, v.Total)
      assert.are.equal(1, v.PageNumber)
      assert.are.equal(10, v.PageSize)
      assert.are.equal(id, v.TaskList[1].TaskId)
      assert.are.equal(p.DstUrl, v.TaskList[1].TaskInfo.DstUrl)

      status, v = live("DescribeLivePullToPushList", { Region = "cn-beijing" }, { method = "GET" })
      assert.are.equal(200, status)
      assert.are.equal(0, v.Total)
      assert.are.same({}, v.TaskList)
      status, v = live("DescribeLivePullToPushList", { Region = "cn-shanghai", PageSize = "101" })
      assert.are.equal(400, status)
      assert.are.equal("InvalidParameter", v.Code)
    end)

    it("keeps DstUrl unique among tasks that have not exited", function()
      local p = task_params()
      assert.are.equal(200, (live("CreateLivePullToPush", p)))
      local q = task_params({ DstUrl = p.DstUrl })
      local status, v = live("CreateLivePullToPush", q)
      assert.are.equal(400, status)
      assert.are.equal("CodeConfigAlreadyExists", v.Code)
      assert.are.equal(200, (create()))
    end)

    it("stops a task once, and a stopped task still holds its DstUrl", function()
      local p = task_params({ StartTime = emu.iso8601(now() - 10) })
      local _, v = live("CreateLivePullToPush", p)
      local id = v.TaskId
      local status
      status, v = live("DescribeLivePullToPush", { Region = "cn-shanghai", TaskId = id })
      assert.are.equal(200, status)
      assert.are.equal(1, v.TaskStatus)
      status, v = live("StopLivePullToPush", { Region = "cn-shanghai", TaskId = id }, { method = "GET" })
      assert.are.equal(200, status)
      assert.are.same({ "RequestId", "TaskId" }, keys(v))
      assert.are.equal(id, v.TaskId)
      status, v = live("DescribeLivePullToPush", { Region = "cn-shanghai", TaskId = id })
      assert.are.equal(200, status)
      assert.are.equal(3, v.TaskStatus)
      -- TaskExitReason is returned only for an exited task (-1)
      assert.is_nil(v.TaskExitReason)
      status, v = live("StopLivePullToPush", { Region = "cn-shanghai", TaskId = id })
      assert.are.equal(400, status)
      assert.are.equal("CodeTaskHasStopped", v.Code)
      status, v = live("CreateLivePullToPush", task_params({ DstUrl = p.DstUrl }))
      assert.are.equal(400, status)
      assert.are.equal("CodeConfigAlreadyExists", v.Code)
    end)

    it("is stopped and deleted at its EndTime, running or stopped, freeing its DstUrl", function()
      local t0 = pin(now())
      local running = task_params({ StartTime = emu.iso8601(t0 - 10), EndTime = emu.iso8601(t0 + 60) })
      local stopped = task_params({ StartTime = emu.iso8601(t0 - 10), EndTime = emu.iso8601(t0 + 60) })
      local later = task_params({ StartTime = emu.iso8601(t0 - 10), EndTime = emu.iso8601(t0 + 61) })
      local ids = {}
      for i, p in ipairs({ running, stopped, later }) do
        local status, v = live("CreateLivePullToPush", p)
        assert.are.equal(200, status)
        ids[i] = v.TaskId
      end
      assert.are.equal(200, (live("StopLivePullToPush", { Region = "cn-shanghai", TaskId = ids[2] })))
      -- one second before EndTime every task is still there
      pin(t0 + 59)
      local status, v = live("DescribeLivePullToPush", { Region = "cn-shanghai", TaskId = ids[1] })
      assert.are.equal(200, status)
      assert.are.equal(1, v.TaskStatus)
      assert.are.equal(3, (select(2, live("DescribeLivePullToPush", { Region = "cn-shanghai", TaskId = ids[2] })))
        .TaskStatus)
      -- at EndTime the first two are gone, the third (EndTime one second later) is not
      pin(t0 + 60)
      for i = 1, 2 do
        for _, action in ipairs({ "DescribeLivePullToPush", "StopLivePullToPush" }) do
          status, v = live(action, { Region = "cn-shanghai", TaskId = ids[i] })
          assert.are.equal(400, status, action)
          assert.are.equal("CodeTaskNotExist", v.Code, action)
        end
      end
      status, v = live("DescribeLivePullToPushList", { Region = "cn-shanghai" })
      assert.are.equal(200, status)
      assert.are.equal(1, v.Total)
      assert.are.equal(ids[3], v.TaskList[1].TaskId)
      assert.are.equal(1, v.TaskList[1].TaskStatus)
      local st = server:state().aliyun
      assert.are.same({ ids[3] }, keys(st.tasks))
      assert.are.same({ ids[3] }, st.task_order)
      -- their DstUrls are free again; the third's is not
      assert.are.equal(200, (live("CreateLivePullToPush", task_params({ DstUrl = running.DstUrl }))))
      assert.are.equal(200, (live("CreateLivePullToPush", task_params({ DstUrl = stopped.DstUrl }))))
      status, v = live("CreateLivePullToPush", task_params({ DstUrl = later.DstUrl }))
      assert.are.equal(400, status)
      assert.are.equal("CodeConfigAlreadyExists", v.Code)
      pin(t0 + 61)
      assert.are.equal(200, (live("CreateLivePullToPush", task_params({ DstUrl = later.DstUrl }))))
      -- a deleted task stays deleted when the clock goes back
      pin(t0)
      status, v = live("DescribeLivePullToPush", { Region = "cn-shanghai", TaskId = ids[1] })
      assert.are.equal(400, status)
      assert.are.equal("CodeTaskNotExist", v.Code)
    end)

    it("takes the create's Regions for every task operation, and refuses any other", function()
      -- (issue 47: cn-shenzhen, the create's fifth, is taken by the others too: spec/47-input-relay)
      local _, v = create({ Region = "cn-shenzhen" })
      local id = assert(v.TaskId)
      local RULE = "Specified parameter Region is not valid. Valid values: ap-southeast-1, ap-southeast-5, "
        .. "cn-beijing, cn-shanghai, cn-shenzhen."
      for _, c in ipairs({
        { "StopLivePullToPush", {} }, { "RestartLivePullToPush", {} }, { "DeleteLivePullToPush", {} },
        { "DescribeLivePullToPush", {} }, { "UpdateLivePullToPush", { Offset = "5" } },
        { "DescribeLivePullToPushList", { TaskId = false } },
      }) do
        local p = { Region = "us-east-1", TaskId = id }
        for k, x in pairs(c[2]) do
          p[k] = x or nil
        end
        local status, e = live(c[1], p, BULK_KEY)
        assert.are.equal(400, status, c[1])
        assert.are.equal("InvalidParameter", e.Code, c[1])
        assert.are.equal(RULE, e.Message, c[1])
      end
      -- nothing happened to the task: it is there, untouched
      local t = server:state().aliyun.tasks[id]
      assert.are.equal(0, t.TaskStatus)
      assert.is_nil(t.updated_at)
      assert.is_nil(t.stopped_at)
    end)

    it("answers CodeTaskNotExist for an unknown task or another Region", function()
      local _, v = create()
      for _, p in ipairs({
        { Region = "cn-shanghai", TaskId = "00000000-0000-4000-8000-000000000000" },
        { Region = "cn-beijing", TaskId = v.TaskId },
      }) do
        for _, action in ipairs({ "DescribeLivePullToPush", "StopLivePullToPush" }) do
          local status, e = live(action, p)
          assert.are.equal(400, status)
          assert.are.equal("CodeTaskNotExist", e.Code)
        end
      end
    end)

    it("enforces every creation rule with its code", function()
      local thirty, thirty_one = {}, {}
      for i = 1, 31 do
        local u = '"https://vod.example.com/' .. i .. '.mp4"'
        thirty_one[i] = u
        if i <= 30 then
          thirty[i] = u
        end
      end
      local t = now()
      local cases = {
        { { EndTime = emu.iso8601(t + 3600) }, "InvalidParam.CodeIllegalDuration" },
        { { StartTime = emu.iso8601(t - 7200), EndTime = emu.iso8601(t - 60) },
          "InvalidParam.CodeIllegalDuration" },
        { { StartTime = emu.iso8601(t + 3600), EndTime = emu.iso8601(t + 3600 + 7 * 86400 + 1) },
          "InvalidParam.CodeIllegalDuration" },
        { { EndTime = emu.iso8601(t + 3600 + 7 * 86400) }, nil },
        { { StartTime = "2030-01-01 00:00:00" }, "InvalidParameter" },
        { { EndTime = "2030-02-30T00:00:00Z" }, "InvalidParameter" },
        { { Region = "cn-hangzhou" }, "InvalidParameter" },
        { { Region = false }, "MissingRegion" },
        { { DstUrl = false }, "MissingDstUrl" },
        { { SourceType = "rtsp" }, "InvalidParameter" },
        { { SourceProtocol = false }, "MissingSourceProtocol" },
        { { SourceProtocol = "rtsp" }, "InvalidParameter" },
        { { SourceUrls = '["rtmp://a/b/c","rtmp://a/b/d"]' }, "InvalidParameter" },
        { { SourceUrls = "rtmp://a/b/c" }, "InvalidParameter" },
        { { SourceUrls = "[]" }, "InvalidParameter" },
        { { SourceType = "vod", SourceUrls = "[" .. table.concat(thirty_one, ",") .. "]" },
          "InvalidParameter" },
        { { SourceType = "vod", SourceProtocol = false, SourceUrls = "[" .. table.concat(thirty, ",") .. "]" },
          nil },
        { { SourceType = "url", SourceUrls = '["https://x.example.com/a.m3u8"]' }, nil },
        { { DstUrl = "http://dst.example.com/app/s" }, "InvalidParameter" },
        -- a host and a path
        { { DstUrl = "rtmp://" }, "InvalidParameter" },
        { { DstUrl = "rtmp://dst.example.com" }, "InvalidParameter" },
        { { DstUrl = "rtmp://dst.example.com/" }, "InvalidParameter" },
        { { DstUrl = "rtmp:///app/s" }, "InvalidParameter" },
        -- a live source's URL in its SourceProtocol's scheme (any case)
        { { SourceUrls = '["ftp://src.example.com/app/in"]' }, "InvalidParameter" },
        { { SourceUrls = '["srt://src.example.com:9000"]' }, "InvalidParameter" },
        { { SourceUrls = '["rtmp://"]' }, "InvalidParameter" },
        { { SourceUrls = '["RTMP://src.example.com/app/in"]' }, nil },
        { { SourceProtocol = "srt", SourceUrls = '["srt://src.example.com:9000?streamid=in"]' }, nil },
        { { SourceProtocol = "srt", SourceUrls = '["rtmp://src.example.com/app/in"]' }, "InvalidParameter" },
        { { SourceProtocol = "http-flv", SourceUrls = '["https://src.example.com/app/in.flv"]' }, nil },
        { { SourceProtocol = "http-flv", SourceUrls = '["http://src.example.com/app/in.flv"]' }, nil },
        { { SourceProtocol = "http-flv", SourceUrls = '["rtmp://src.example.com/app/in"]' }, "InvalidParameter" },
        { { SourceProtocol = "hls", SourceUrls = '["https://src.example.com/app/in.m3u8"]' }, "InvalidParameter" },
        -- a third-party source over HTTP(S); a vod source's URLs are not constrained
        { { SourceType = "url", SourceUrls = '["rtmp://x.example.com/a/b"]' }, "InvalidParameter" },
        { { SourceType = "url", SourceUrls = '["https://x.example.com/a.mp4","srt://x"]' }, "InvalidParameter" },
        { { SourceType = "url", SourceUrls = '["HTTP://x.example.com/a.flv"]' }, nil },
        { { SourceType = "vod", SourceUrls = '["rtmp://x.example.com/a/b"]' }, nil },
        -- Create's Regions include cn-shenzhen
        { { Region = "cn-shenzhen" }, nil },
        { { DstUrl = "rtmp://dst.example.com/" .. string.rep("x", 2000) }, "InvalidParameter" },
        { { RetryInterval = "59" }, "InvalidParameter" },
        { { RetryInterval = "301" }, "InvalidParameter" },
        { { RetryInterval = "300" }, nil },
        { { Offset = "0" }, "InvalidParameter" },
        { { Offset = "2.5" }, "InvalidParameter" },     -- a whole number of seconds
        { { Offset = "1e3" }, "InvalidParameter" },
        { { Offset = " 30" }, "InvalidParameter" },
        { { Offset = "30" }, nil },
        { { RegionId = "cn-shanghai" }, nil },
        { { TaskName = "" }, nil },
        { { RepeatNumber = "-2" }, "InvalidParameter" },
        { { RepeatNumber = "-1" }, nil },
        { { CallbackUrl = "https://cb.example.com/" .. string.rep("x", 2000) }, "InvalidParameter" },
      }
      for i, c in ipairs(cases) do
        local status, v = create(c[1])
        if c[2] then
          assert.are.equal(400, status, "case " .. i)
          assert.are.equal(c[2], v.Code, "case " .. i)
        else
          assert.are.equal(200, status, "case " .. i .. ": " .. tostring(v and v.Message))
        end
      end
    end)

    it("applies a create whose answer is lost (drop after_apply), so a retry conflicts", function()
      server:faults({ action = "CreateLivePullToPush", kind = "drop", after_apply = true })
      local p = task_params()
      local status, _, _, _, err = live("CreateLivePullToPush", p)
      assert.is_nil(status)
      assert.is_string(err)
      local tasks = server:state().aliyun.tasks
      assert.are.equal(1, #keys(tasks))
      local status2, v = live("CreateLivePullToPush", p)
      assert.are.equal(400, status2)
      assert.are.equal("CodeConfigAlreadyExists", v.Code)
      local _, list = live("DescribeLivePullToPushList", { Region = "cn-shanghai", DstUrl = p.DstUrl })
      assert.are.equal(1, list.Total)
      local entries = server:log({ action = "CreateLivePullToPush" })
      assert.are.equal("fault", entries[1].verdict)
      assert.are.equal("drop", entries[1].fault)
      assert.is_true(entries[1].applied)
      assert.are.equal("error", entries[2].verdict)
      assert.is_false(entries[2].applied)
    end)

    -- The task operations below, by the account with room to spare (LTAIbulk).
    local BULK = { key = "LTAIbulk", secret = "bulk-secret" }

    -- Creates a task starting `start_in` seconds from now and running for an
    -- hour (over: more create parameters, false removes one); returns its id
    -- and the parameters.
    local function new_task(start_in, over)
      local o = { StartTime = emu.iso8601(now() + start_in), EndTime = emu.iso8601(now() + start_in + 3600) }
      for k, v in pairs(over or {}) do
        o[k] = v
      end
      local p = task_params(o)
      local status, v = live("CreateLivePullToPush", p, BULK)
      assert.are.equal(200, status, v and v.Message)
      return v.TaskId, p
    end

    local VOD = { SourceType = "vod", SourceProtocol = false, SourceUrls = '["https://vod.example.com/a.mp4"]' }

    -- A task operation on TaskId id in cn-shanghai (extra: more parameters,
    -- false removes one); returns status, decoded body.
    local function op(action, id, extra, opts)
      local p = { Region = "cn-shanghai", TaskId = id }
      for k, v in pairs(extra or {}) do
        p[k] = v or nil
      end
      return live(action, p, opts or BULK)
    end

    local function describe_task(id, region)
      local status, v = op("DescribeLivePullToPush", id, { Region = region })
      assert.are.equal(200, status, v and v.Code)
      return v
    end

    it("stops a running task only: one not started is refused and left as it is", function()
      local id = new_task(3600)
      local status, v = op("StopLivePullToPush", id)
      assert.are.equal(400, status)
      assert.are.equal(STOP_NOT_STARTED, v.Code)
      assert.matches("not running (TaskStatus 0)", v.Message, 1, true)
      assert.are.equal(0, describe_task(id).TaskStatus)
      assert.is_nil(server:state().aliyun.tasks[id].stopped_at)
      local e = server:log({ action = "StopLivePullToPush" })[1]
      assert.are.equal("error", e.verdict)
      assert.is_false(e.applied)
      shift(3601)
      status, v = op("StopLivePullToPush", id)
      assert.are.equal(200, status)
      assert.are.same({ "RequestId", "TaskId" }, keys(v))
      assert.are.equal(3, describe_task(id).TaskStatus)
      status, v = op("StopLivePullToPush", id)
      assert.are.equal(400, status)
      assert.are.equal("CodeTaskHasStopped", v.Code)
      assert.are.equal(3, describe_task(id).TaskStatus)
    end)

    it("restarts a running task (stop and start) and a stopped one, never one before its start", function()
      local id = new_task(3600)
      local status, v = op("RestartLivePullToPush", id)
      assert.are.equal(400, status)
      assert.are.equal(RESTART_NOT_STARTED, v.Code)
      assert.matches("StartTime (TaskStatus 0)", v.Message, 1, true)
      assert.are.equal(0, describe_task(id).TaskStatus)
      assert.are.equal(0, server:state().aliyun.tasks[id].restart_count)
      shift(3601)
      local before = now()
      status, v = op("RestartLivePullToPush", id)
      local after = now()
      assert.are.equal(200, status)
      assert.are.same({ "RequestId", "TaskId" }, keys(v))
      assert.are.equal(id, v.TaskId)
      assert.are.equal(1, describe_task(id).TaskStatus)
      local t = server:state().aliyun.tasks[id]
      assert.are.equal(1, t.restart_count)
      -- (when it was restarted: within the request, by the emulator's clock; whole seconds here)
      assert.is_true(t.restarted_at >= before and t.restarted_at < after + 1, tostring(t.restarted_at))
      assert.are.equal(200, (op("StopLivePullToPush", id)))
      assert.are.equal(3, describe_task(id).TaskStatus)
      assert.are.equal(200, (op("RestartLivePullToPush", id)))
      assert.are.equal(1, describe_task(id).TaskStatus)
      t = server:state().aliyun.tasks[id]
      assert.are.equal(2, t.restart_count)
      assert.is_nil(t.stopped_at)
      local entries = server:log({ action = "RestartLivePullToPush" })
      assert.are.same({ "error", "ok", "ok" }, { entries[1].verdict, entries[2].verdict, entries[3].verdict })
      assert.are.equal("running", entries[2].detail.was)
      assert.are.equal("stopped", entries[3].detail.was)
      -- a stopped task stays stopped after a refused restart: none here, and a
      -- task in another Region or unknown is not found
      for _, p in ipairs({ { id, { Region = "cn-beijing" } }, { "00000000-0000-4000-8000-000000000000" } }) do
        status, v = op("RestartLivePullToPush", p[1], p[2])
        assert.are.equal(400, status)
        assert.are.equal("CodeTaskNotExist", v.Code)
      end
    end)

    it("deletes a task in any state, a running one for good; a second delete answers CodeTaskNotExist", function()
      local before = new_task(3600)
      local running, rp = new_task(-10)
      local stopped = new_task(-10)
      assert.are.equal(200, (op("StopLivePullToPush", stopped)))
      for _, id in ipairs({ before, running, stopped }) do
        local status, v = op("DeleteLivePullToPush", id)
        assert.are.equal(200, status)
        assert.are.same({ "Description", "RequestId", "RetCode" }, keys(v))
        assert.are.equal(0, v.RetCode)
        assert.are.equal("OK", v.Description)
        for _, action in ipairs({ "DeleteLivePullToPush", "DescribeLivePullToPush", "RestartLivePullToPush",
          "StopLivePullToPush" }) do
          status, v = op(action, id)
          assert.are.equal(400, status, action)
          assert.are.equal("CodeTaskNotExist", v.Code, action)
        end
        status, v = op("UpdateLivePullToPush", id, { CallbackUrl = "https://cb.example.com/x" })
        assert.are.equal(400, status)
        assert.are.equal("CodeTaskNotExist", v.Code)
      end
      local st = server:state().aliyun
      assert.are.same({}, keys(st.tasks))
      assert.are.same({}, st.task_order)
      local _, list = op("DescribeLivePullToPushList", nil)
      assert.are.equal(0, list.Total)
      local entries = server:log({ action = "DeleteLivePullToPush" })
      assert.are.equal(6, #entries)
      assert.are.same({ 0, 1, 3 }, { entries[1].detail.status, entries[3].detail.status, entries[5].detail.status })
      -- the running task's DstUrl is free again
      assert.are.equal(200, (live("CreateLivePullToPush", task_params({ DstUrl = rp.DstUrl }), BULK)))
    end)

    it("updates a task before its start: its times, CallbackUrl, RepeatNumber and Region", function()
      local t0 = pin(now())
      local id = new_task(3600, VOD)
      local start, stop = emu.iso8601(t0 + 7200), emu.iso8601(t0 + 9000)
      local status, v = op("UpdateLivePullToPush", id, { StartTime = start, EndTime = stop,
        CallbackUrl = "https://cb.example.com/u", RepeatNumber = "-1" })
      assert.are.equal(200, status, v and v.Message)
      assert.are.same({ "Description", "RequestId", "RetCode" }, keys(v))
      assert.are.equal(0, v.RetCode)
      assert.are.equal("OK", v.Description)
      local d = describe_task(id)
      assert.are.equal(0, d.TaskStatus)
      assert.are.equal(start, d.TaskInfo.StartTime)
      assert.are.equal(stop, d.TaskInfo.EndTime)
      assert.are.equal("https://cb.example.com/u", d.TaskInfo.CallbackURL)
      assert.are.equal(-1, d.TaskInfo.RepeatNumber)
      -- the new StartTime is the one the task starts at
      pin(t0 + 7199)
      assert.are.equal(0, describe_task(id).TaskStatus)
      pin(t0 + 7200)
      assert.are.equal(1, describe_task(id).TaskStatus)
      pin(t0)
      local other = new_task(3600, VOD)
      -- the Region: only before the start, and the task then lives there
      status, v = op("UpdateLivePullToPush", other, { Region = "cn-beijing" })
      assert.are.equal(200, status, v and v.Message)
      assert.are.equal("cn-beijing", describe_task(other, "cn-beijing").TaskInfo.Region)
      status, v = op("DescribeLivePullToPush", other)
      assert.are.equal(400, status)
      assert.are.equal("CodeTaskNotExist", v.Code)
    end)

    it("refuses before the start what may change only once a task is stopped: sources, FileIndex, Offset", function()
      local id = new_task(3600, VOD)
      local info = describe_task(id).TaskInfo
      for name, value in pairs({ SourceUrls = '["https://vod.example.com/b.mp4"]', FileIndex = "1", Offset = "5" }) do
        local status, v = op("UpdateLivePullToPush", id, { [name] = value })
        assert.are.equal(400, status, name)
        assert.are.equal("InvalidParameter", v.Code, name)
        assert.matches(name, v.Message, 1, true)
      end
      assert.are.same(info, describe_task(id).TaskInfo)
    end)

    it("updates only CallbackUrl and RepeatNumber of a running task", function()
      local id = new_task(-10, VOD)
      local status, v = op("UpdateLivePullToPush", id, { CallbackUrl = "https://cb.example.com/r",
        RepeatNumber = "3" })
      assert.are.equal(200, status, v and v.Message)
      local d = describe_task(id)
      assert.are.equal(1, d.TaskStatus)
      assert.are.equal("https://cb.example.com/r", d.TaskInfo.CallbackURL)
      assert.are.equal(3, d.TaskInfo.RepeatNumber)
      for name, value in pairs({ StartTime = emu.iso8601(now() + 60), EndTime = emu.iso8601(now() + 600),
        SourceUrls = '["https://vod.example.com/b.mp4"]', FileIndex = "1", Offset = "5", Region = "cn-beijing" }) do
        status, v = op("UpdateLivePullToPush", id, { [name] = value })
        assert.are.equal(400, status, name)
        assert.are.equal("InvalidParameter", v.Code, name)
        assert.matches(name, v.Message, 1, true)
      end
      assert.are.same(d.TaskInfo, describe_task(id).TaskInfo)
      -- one refused setting refuses the whole update
      status, v = op("UpdateLivePullToPush", id, { CallbackUrl = "https://cb.example.com/z", Offset = "5" })
      assert.are.equal(400, status)
      assert.are.equal("InvalidParameter", v.Code)
      assert.are.equal("https://cb.example.com/r", describe_task(id).TaskInfo.CallbackURL)
    end)

    it("updates every setting of a stopped task but Region and StartTime, and a restart runs with them", function()
      local t0 = pin(now())
      local id = new_task(-10, VOD)
      assert.are.equal(200, (op("StopLivePullToPush", id)))
      local stop = emu.iso8601(t0 + 600)
      local status, v = op("UpdateLivePullToPush", id, { EndTime = stop,
        SourceUrls = '["https://vod.example.com/1.mp4","https://vod.example.com/2.mp4"]', FileIndex = "1",
        Offset = "30", RepeatNumber = "2", CallbackUrl = "https://cb.example.com/s" })
      assert.are.equal(200, status, v and v.Message)
      local d = describe_task(id)
      assert.are.equal(3, d.TaskStatus)
      assert.are.equal(stop, d.TaskInfo.EndTime)
      assert.are.same({ "https://vod.example.com/1.mp4", "https://vod.example.com/2.mp4" }, d.TaskInfo.SourceUrls)
      assert.are.equal(1, d.TaskInfo.FileIndex)
      assert.are.equal(30, d.TaskInfo.Offset)
      assert.are.equal(2, d.TaskInfo.RepeatNumber)
      assert.are.equal("https://cb.example.com/s", d.TaskInfo.CallbackURL)
      for name, value in pairs({ StartTime = emu.iso8601(now() + 60), Region = "cn-beijing" }) do
        status, v = op("UpdateLivePullToPush", id, { [name] = value })
        assert.are.equal(400, status, name)
        assert.are.equal("InvalidParameter", v.Code, name)
      end
      assert.are.equal(200, (op("RestartLivePullToPush", id)))
      d = describe_task(id)
      assert.are.equal(1, d.TaskStatus)
      assert.are.equal(30, d.TaskInfo.Offset)
      -- the shorter EndTime is the one the task is deleted at
      pin(t0 + 599)
      assert.are.equal(1, describe_task(id).TaskStatus)
      pin(t0 + 600)
      status, v = op("DescribeLivePullToPush", id)
      assert.are.equal(400, status)
      assert.are.equal("CodeTaskNotExist", v.Code)
    end)

    it("checks an update's parameters and values with the provider's codes", function()
      local id = new_task(3600)
      local live_id = new_task(-10)
      assert.are.equal(200, (op("StopLivePullToPush", live_id)))
      local info = describe_task(id).TaskInfo
      local t = now()
      local cases = {
        { {}, "InvalidParameter" },                       -- nothing to update
        { { Region = false }, "MissingRegion" },
        { { Region = "cn-hangzhou", CallbackUrl = "https://cb.example.com/x" }, "InvalidParameter" },
        { { TaskId = false, CallbackUrl = "https://cb.example.com/x" }, "MissingTaskId" },
        { { TaskId = "nope", CallbackUrl = "https://cb.example.com/x" }, "CodeTaskNotExist" },
        -- not parameters of the operation: refused, even beside one that is
        { { DstUrl = "rtmp://dst.example.com/app/new", CallbackUrl = "https://cb.example.com/x" },
          "InvalidParameter", "DstUrl" },
        { { SourceType = "url", CallbackUrl = "https://cb.example.com/x" }, "InvalidParameter", "SourceType" },
        { { SourceProtocol = "srt", CallbackUrl = "https://cb.example.com/x" }, "InvalidParameter",
          "SourceProtocol" },
        { { TaskName = "renamed", CallbackUrl = "https://cb.example.com/x" }, "InvalidParameter", "TaskName" },
        { { RetryInterval = "120", CallbackUrl = "https://cb.example.com/x" }, "InvalidParameter",
          "RetryInterval" },
        { { RetryCount = "1", CallbackUrl = "https://cb.example.com/x" }, "InvalidParameter", "RetryCount" },
        { { EndTime = "tomorrow" }, "InvalidParameter" },
        { { StartTime = "2030-02-30T00:00:00Z" }, "InvalidParameter" },
        { { RepeatNumber = "-2" }, "InvalidParameter" },
        { { RepeatNumber = "1.5" }, "InvalidParameter" },
        { { CallbackUrl = "https://cb.example.com/" .. string.rep("x", 2000) }, "InvalidParameter" },
        { { EndTime = emu.iso8601(t + 3000) }, "InvalidParam.CodeIllegalDuration" },  -- before StartTime
        { { StartTime = emu.iso8601(t + 7200) }, "InvalidParam.CodeIllegalDuration" }, -- at EndTime
        { { EndTime = emu.iso8601(t + 3600 + 7 * 86400 + 1) }, "InvalidParam.CodeIllegalDuration" },
        { { StartTime = emu.iso8601(t - 7200), EndTime = emu.iso8601(t - 60) },
          "InvalidParam.CodeIllegalDuration" },
      }
      for i, c in ipairs(cases) do
        local status, v = op("UpdateLivePullToPush", id, c[1])
        assert.are.equal(400, status, "case " .. i)
        assert.are.equal(c[2], v.Code, "case " .. i)
        if c[3] then
          assert.matches(c[3] .. " is not a parameter of UpdateLivePullToPush", v.Message, 1, true)
        end
      end
      assert.are.same(info, describe_task(id).TaskInfo)
      -- a live task takes exactly one source URL
      local status, v = op("UpdateLivePullToPush", live_id, { SourceUrls = '["rtmp://a/b/c","rtmp://a/b/d"]' })
      assert.are.equal(400, status)
      assert.are.equal("InvalidParameter", v.Code)
      status, v = op("UpdateLivePullToPush", live_id, { SourceUrls = '["rtmp://a/b/e"]' })
      assert.are.equal(200, status, v and v.Message)
      assert.are.same({ "rtmp://a/b/e" }, describe_task(live_id).TaskInfo.SourceUrls)
      assert.are.equal(1, #server:log({ action = "UpdateLivePullToPush", limit = 1 }))
    end)

    it("ignores SourceProtocol for vod and url, and takes RegionId and an empty TaskName", function()
      local p = task_params({ SourceType = "vod", SourceProtocol = "rtsp", SourceUrls = '["https://v.example.com/a.mp4"]',
        RegionId = "cn-beijing", TaskName = "" })
      local status, v = live("CreateLivePullToPush", p, BULK)
      assert.are.equal(200, status, v and v.Message)
      local d = describe_task(v.TaskId)
      assert.is_nil(d.TaskInfo.SourceProtocol)
      assert.are.equal("", d.TaskInfo.TaskName)
      assert.are.equal("cn-shanghai", d.TaskInfo.Region)
      p = task_params({ SourceType = "url", SourceProtocol = "nonsense", SourceUrls = '["https://v.example.com/b.mp4"]' })
      status, v = live("CreateLivePullToPush", p, BULK)
      assert.are.equal(200, status, v and v.Message)
      assert.is_nil(describe_task(v.TaskId).TaskInfo.SourceProtocol)
      -- a live source needs it, and a valid one
      status, v = live("CreateLivePullToPush", task_params({ SourceProtocol = false }), BULK)
      assert.are.equal(400, status)
      assert.are.equal("MissingSourceProtocol", v.Code)
    end)

    it("counts DstUrl's 2000 in characters, takes its scheme in any case, and compares it so", function()
      local head = "rtmp://dst.example.com/app/"
      local function dst(n, ch)
        return head .. string.rep(ch, n - #head)
      end
      local cases = {
        { dst(2000, "\195\169"), 200 },          -- 2000 characters, 3973 bytes
        { dst(2001, "\195\169"), 400 },
        { dst(2000, "x"), 200 },
        { dst(2001, "x"), 400 },
        { head .. "\255bad", 400 },               -- not UTF-8
        { head .. "\192\175", 400 },              -- an overlong "/"
        { "RTMP://dst.example.com/app/upper", 200 },
        { "Rtmp://dst.example.com/app/mixed", 200 },
        { "rtmps://dst.example.com/app/s", 400 },
      }
      -- (in the query, as the official SDKs send them: the emulator takes
      -- requests as long as the rules allow)
      local FORM = { key = BULK.key, secret = BULK.secret }
      for i, c in ipairs(cases) do
        local status, v = live("CreateLivePullToPush", task_params({ DstUrl = c[1] }), FORM)
        assert.are.equal(c[2], status, "case " .. i .. ": " .. tostring(v and v.Message))
        if c[2] == 400 then
          assert.are.equal("InvalidParameter", v.Code, "case " .. i)
        end
      end
      -- the scheme and the host are case-insensitive, the path is not
      local status, v = live("CreateLivePullToPush", task_params({ DstUrl = "rtmp://DST.example.com/app/upper" }),
        BULK)
      assert.are.equal(400, status)
      assert.are.equal("CodeConfigAlreadyExists", v.Code)
      assert.are.equal(200, (live("CreateLivePullToPush", task_params({ DstUrl = "rtmp://dst.example.com/APP/upper" }),
        BULK)))
      -- SourceUrls and CallbackUrl count characters too
      status, v = live("CreateLivePullToPush", task_params({ SourceType = "vod", SourceProtocol = false,
        SourceUrls = '["https://v.example.com/' .. string.rep("\195\169", 2000 - 23) .. '"]',
        CallbackUrl = "https://cb.example.com/" .. string.rep("\195\169", 2000 - 23) }), FORM)
      assert.are.equal(200, status, v and v.Message)
    end)
  end)

  describe("Aliyun DescribeLiveStreamsOnlineList", function()
    local D = "live.example.com"

    local function online_list(params)
      local p = { DomainName = D }
      for k, v in pairs(params or {}) do
        p[k] = v or nil
      end
      local status, v = live("DescribeLiveStreamsOnlineList", p)
      assert.are.equal(200, status, v and v.Code)
      return v, v.OnlineInfo.LiveStreamOnlineInfo
    end

    local function names(list)
      local out = {}
      for i, e in ipairs(list) do
        out[i] = e.AppName .. "/" .. e.StreamName
      end
      return out
    end

    it("lists the streams marked online, filtered and paged, in the page's shape", function()
      local before = now()
      local answer = server:online({
        { domain = D, app = "app", stream = "cam1", client_ip = "10.0.0.1", publish_time = 1767225600 },
        { domain = D, app = "app", stream = "cam2" },
        { domain = D, app = "other", stream = "cam1" },
        { domain = "other.example.com", app = "app", stream = "cam1" },
      })
      assert.are.same({ D .. "/app/cam1", D .. "/app/cam2", D .. "/other/cam1", "other.example.com/app/cam1" },
        answer.marked)
      assert.are.same({}, answer.refused)
      local after = now()
      local v, list = online_list()
      assert.are.same({ "OnlineInfo", "PageNum", "PageSize", "RequestId", "TotalNum", "TotalPage" }, keys(v))
      assert.are.same({ "LiveStreamOnlineInfo" }, keys(v.OnlineInfo))
      assert.are.equal(3, v.TotalNum)
      assert.are.equal(1, v.TotalPage)
      assert.are.equal(1, v.PageNum)
      assert.are.equal(2000, v.PageSize)
      assert.are.same({ "app/cam1", "app/cam2", "other/cam1" }, names(list))
      assert.are.same({
        DomainName = D, AppName = "app", StreamName = "cam1", PublishTime = "2026-01-01T00:00:00Z",
        PublishUrl = "rtmp://live.example.com/app/cam1", PublishDomain = D, PublishType = "edge",
        ClientIp = "10.0.0.1", ServerIp = "127.0.0.1", Transcoded = "no",
      }, list[1])
      -- the time it was marked (ISO 8601 strings of one format sort as times)
      assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%dZ$", list[2].PublishTime)
      assert.is_true(list[2].PublishTime >= emu.iso8601(before) and list[2].PublishTime <= emu.iso8601(after),
        list[2].PublishTime) -- (within the marking's request)
      -- AppName matches exactly; StreamName is a substring unless QueryType=strict
      assert.are.same({ "app/cam1", "app/cam2" }, names(select(2, online_list({ AppName = "app" }))))
      assert.are.same({}, names(select(2, online_list({ AppName = "ap" }))))
      assert.are.same({ "app/cam1", "app/cam2", "other/cam1" }, names(select(2, online_list({ StreamName = "am" }))))
      assert.are.same({}, names(select(2, online_list({ StreamName = "am", QueryType = "strict" }))))
      assert.are.same({ "app/cam1", "other/cam1" },
        names(select(2, online_list({ StreamName = "cam1", QueryType = "strict" }))))
      assert.are.same({ "app/cam1" }, names(select(2, online_list({ AppName = "app", StreamName = "1" }))))
      -- paging
      v, list = online_list({ PageSize = "1", PageNum = "2" })
      assert.are.same({ "app/cam2" }, names(list))
      assert.are.equal(3, v.TotalNum)
      assert.are.equal(3, v.TotalPage)
      assert.are.equal(2, v.PageNum)
      assert.are.equal(1, v.PageSize)
      v, list = online_list({ PageSize = "2", PageNum = "3" })
      assert.are.same({}, list)
      assert.are.equal(2, v.TotalPage)
      -- only the four fields; only source streams
      list = select(2, online_list({ OnlyStream = "yes" }))
      assert.are.same({ "AppName", "DomainName", "PublishTime", "StreamName" }, keys(list[1]))
      v, list = online_list({ StreamType = "trans" })
      assert.are.same({}, list)
      assert.are.equal(0, v.TotalNum)
      assert.are.equal(3, online_list({ StreamType = "raw" }).TotalNum)
      assert.are.equal(1, online_list({ DomainName = "other.example.com" }).TotalNum)
    end)

    it("never lists a forbidden stream: a forbid takes it offline, a blocked one cannot be marked", function()
      server:online({ { domain = D, app = "app", stream = "cam1" }, { domain = D, app = "app", stream = "cam2" } })
      assert.are.equal(200, (live("ForbidLiveStream", stream("cam1"))))
      assert.are.same({ "app/cam2" }, names(select(2, online_list())))
      -- a one-shot forbid blocks nothing but cuts the ingest
      assert.are.equal(200, (live("ForbidLiveStream", stream("cam2", { Oneshot = "yes" }))))
      assert.are.equal(0, online_list().TotalNum)
      local answer = server:online({ { domain = D, app = "app", stream = "cam1" },
        { domain = D, app = "app", stream = "cam2" } })
      assert.are.same({ D .. "/app/cam1" }, answer.refused)
      assert.are.same({ D .. "/app/cam2" }, answer.marked)
      assert.are.same({ "app/cam2" }, names(select(2, online_list())))
      -- a resume does not bring a publisher back; marking it again does
      assert.are.equal(200, (live("ResumeLiveStream", stream("cam1"))))
      assert.are.same({ "app/cam2" }, names(select(2, online_list())))
      answer = server:online({ domain = D, app = "app", stream = "cam1" })
      assert.are.same({ D .. "/app/cam1" }, answer.marked)
      assert.are.same({ "app/cam1", "app/cam2" }, names(select(2, online_list())))
      -- a timed forbid refuses until its ResumeTime
      assert.are.equal(200, (live("ForbidLiveStream", stream("cam3", { ResumeTime = emu.iso8601(now() + 60) }))))
      assert.are.same({ D .. "/app/cam3" }, server:online({ domain = D, app = "app", stream = "cam3" }).refused)
      shift(61)
      assert.are.same({ D .. "/app/cam3" }, server:online({ domain = D, app = "app", stream = "cam3" }).marked)
      assert.are.same({ "app/cam1", "app/cam2", "app/cam3" }, names(select(2, online_list())))
    end)

    it("answers parameter errors with the provider's codes", function()
      local cases = {
        { { DomainName = false }, "MissingDomainName" },
        { { PageSize = "3001" }, "InvalidParameter" },
        { { PageSize = "0" }, "InvalidParameter" },
        { { PageNum = "0" }, "InvalidParameter" },
        { { PageNum = "x" }, "InvalidParameter" },
        { { QueryType = "exact" }, "InvalidParameter" },
        { { StreamType = "source" }, "InvalidParameter" },
        { { OnlyStream = "maybe" }, "InvalidParameter" },
      }
      for i, c in ipairs(cases) do
        local p = { DomainName = D }
        for k, v in pairs(c[1]) do
          p[k] = v or nil
        end
        local status, v = live("DescribeLiveStreamsOnlineList", p)
        assert.are.equal(400, status, "case " .. i)
        assert.are.equal(c[2], v.Code, "case " .. i)
        assert.are.same({ "Code", "HostId", "Message", "Recommend", "RequestId" }, keys(v))
      end
      assert.are.equal(3000, online_list({ PageSize = "3000" }).PageSize)
    end)

    it("is driven by /_emulator/online: GET lists, DELETE takes streams offline, reset clears it", function()
      local v, status = server:online({ domain = D, app = "app", stream = "s1", client_ip = "192.0.2.7" })
      assert.are.equal(200, status)
      assert.are.same({ D .. "/app/s1" }, v.marked)
      server:online({ { domain = D, app = "app", stream = "s2" }, { domain = D, app = "app", stream = "s3" } })
      v = server:online()
      assert.are.same({ D .. "/app/s1", D .. "/app/s2", D .. "/app/s3" }, keys(v.online))
      assert.are.equal("192.0.2.7", v.online[D .. "/app/s1"].ClientIp)
      assert.are.same(v.online, server:state().aliyun.online)
      v, status = server:online({ { domain = D, app = "app", stream = "s2" } }, "DELETE")
      assert.are.equal(200, status)
      assert.are.same({ D .. "/app/s2" }, v.removed)
      assert.are.same({ D .. "/app/s1", D .. "/app/s3" }, keys(v.online))
      v = server:online(nil, "DELETE")
      assert.are.same({ D .. "/app/s1", D .. "/app/s3" }, v.removed)
      assert.are.same({}, keys(v.online))
      -- bad specs mark nothing
      for _, bad in ipairs({ { domain = D, app = "app" }, { { domain = D, app = "", stream = "s" } }, 5,
        { domain = D, app = "a", stream = "s", publish_time = "now" } }) do
        v, status = server:online(bad)
        assert.are.equal(400, status)
        assert.is_string(v.error)
      end
      assert.are.same({}, keys(server:online().online))
      local _, s405 = server:control("PUT", "online", {})
      assert.are.equal(405, s405)
      server:online({ domain = D, app = "app", stream = "s9" })
      server:reset()
      assert.are.same({}, keys(server:online().online))
      assert.are.equal(0, online_list().TotalNum)
    end)
  end)

  describe("ZEGO stream control", function()
    local function rtc(id)
      return server:state().zego.streams["1234567890"][id]
    end

    it("applies a sequence only when it is newer than the last applied one within 10 s", function()
      local status, v = zego("ForbidRTCStream", { params = { StreamId = "s", Sequence = "100" } })
      assert.are.equal(200, status)
      assert.are.same({ Code = 0, Message = "success", RequestId = v.RequestId, Data = cjson.null }, v)
      assert.are.equal("forbidden", rtc("s").rtc)

      for _, seq in ipairs({ "99", "100", "0100" }) do
        status, v = zego("ResumeRTCStream", { params = { StreamId = "s", Sequence = seq } })
        assert.are.equal(200, status)
        assert.are.equal(0, v.Code)
        assert.are.equal("forbidden", rtc("s").rtc, seq)
      end
      local entries = server:log({ provider = "zego", action = "ResumeRTCStream" })
      assert.are.equal(3, #entries)
      for _, e in ipairs(entries) do
        assert.are.equal("stale", e.verdict)
        assert.is_false(e.applied)
        assert.are.same({ "s" }, e.stale_streams)
      end
      assert.are.equal("99", entries[1].sequence)

      status, v = zego("ResumeRTCStream", { params = { StreamId = "s", Sequence = "101" } })
      assert.are.equal(200, status)
      assert.are.equal(0, v.Code)
      assert.are.equal("normal", rtc("s").rtc)
      assert.are.equal("101", rtc("s").last_sequence)

      shift(11)
      local before = now()
      status, v = zego("ForbidRTCStream", { params = { StreamId = "s", Sequence = "5" } })
      local after = now()
      assert.are.equal(200, status)
      assert.are.equal(0, v.Code)
      assert.are.equal("forbidden", rtc("s").rtc)
      status, v = zego("DescribeRTCStreamState", { params = { StreamId = "s" } })
      assert.are.equal(200, status)
      assert.are.same({ StreamId = "s", RTCState = "forbidden", CDNState = "normal", CDNResumeTime = 0,
        LastSequence = "5", UpdatedAt = v.Data.UpdatedAt }, v.Data)
      assert.is_true(v.Data.UpdatedAt >= before and v.Data.UpdatedAt < after + 1, tostring(v.Data.UpdatedAt))
    end)

    it("compares sequences as decimal integers of any length", function()
      zego("ForbidRTCStream", { params = { StreamId = "big", Sequence = "99999999999999999999" } })
      zego("ResumeRTCStream", { params = { StreamId = "big", Sequence = "100000000000000000000" } })
      assert.are.equal("normal", rtc("big").rtc)
      zego("ForbidRTCStream", { params = { StreamId = "big", Sequence = "99999999999999999999" } })
      assert.are.equal("normal", rtc("big").rtc)
      assert.are.equal("100000000000000000000", rtc("big").last_sequence)
    end)

    it("applies a batch per stream and reports which streams were stale", function()
      zego("ForbidRTCStreams", { streams = { "a", "b", "c" }, params = { Sequence = "10" } })
      for _, id in ipairs({ "a", "b", "c" }) do
        assert.are.equal("forbidden", rtc(id).rtc)
      end
      zego("ResumeRTCStream", { params = { StreamId = "a", Sequence = "20" } })
      local status, v = zego("ResumeRTCStreams", { streams = { "a", "b" }, params = { Sequence = "15" } })
      assert.are.equal(200, status)
      assert.are.equal(0, v.Code)
      assert.are.equal("normal", rtc("b").rtc)
      assert.are.equal("20", rtc("a").last_sequence)
      local e = server:log({ action = "ResumeRTCStreams" })[1]
      assert.are.equal("ok", e.verdict)
      assert.are.same({ "b" }, e.applied_streams)
      assert.are.same({ "a" }, e.stale_streams)
      assert.are.same({ "a", "b" }, e.streams)
    end)

    it("logs the StreamIds every request named (stream_ids), a throttled or fault-answered one too", function()
      server:faults({ kind = "http503", action = "ForbidRTCStreams", provider = "zego" })
      zego("ForbidRTCStreams", { streams = { "p", "q", "p" }, params = { Sequence = "7" } })
      zego("ForbidRTCStreams", { streams = { "p", "q", "p" }, params = { Sequence = "7" } })
      server:faults({ kind = "throttle", action = "ResumeCDNLiveStream", provider = "zego" })
      zego("ResumeCDNLiveStream", { params = { StreamId = "c1" } })
      zego("DescribeRTCStreamState", { params = { StreamId = "" } })
      local entries = server:log({ provider = "zego" })
      assert.are.equal(4, #entries)
      assert.are.equal("fault", entries[1].verdict)
      assert.are.same({ "p", "q", "p" }, entries[1].stream_ids)
      assert.are.equal("7", entries[1].sequence)
      assert.are.equal("ok", entries[2].verdict)
      assert.are.same({ "p", "q", "p" }, entries[2].stream_ids)
      assert.are.same({ "p", "q" }, entries[2].streams)
      assert.are.equal("fault", entries[3].verdict)
      assert.are.same({ "c1" }, entries[3].stream_ids)
      assert.are.equal("error", entries[4].verdict)
      assert.are.same({ "" }, entries[4].stream_ids)
    end)

    it("refuses a stream ID outside letters, digits, '-' and '_' (the strictest reading), single or listed", function()
      for _, bad in ipairs { "room 1#host", " b", "a/b", "caf\195\169", string.rep("z", 257) } do
        local _, v = zego("ForbidRTCStream", { params = { StreamId = bad } })
        assert.are.same({ 30006, "Invalid StreamId list." }, { v.Code, v.Message }, bad)
        _, v = zego("ForbidRTCStreams", { streams = { "ok-1", bad } })
        assert.are.equal(30006, v.Code, bad)
        _, v = zego("ForbidCDNLiveStream", { params = { StreamId = bad } })
        assert.are.equal(2, v.Code, bad)
      end
      local _, v = zego("ForbidRTCStreams", { streams = { "room_1-host", string.rep("z", 256) } })
      assert.are.equal(0, v.Code)
    end)

    it("takes 1 to 20 StreamId[], bracketed literally or percent-encoded", function()
      local ids = {}
      for i = 1, 21 do
        ids[i] = "id" .. i
      end
      local _, v = zego("ForbidRTCStreams", { streams = ids })
      assert.are.equal(30006, v.Code)
      assert.are.equal("Invalid StreamId list.", v.Message)
      ids[21] = nil
      _, v = zego("ForbidRTCStreams", { streams = ids })
      assert.are.equal(0, v.Code)
      _, v = zego("ForbidRTCStreams", {})
      assert.are.equal(30006, v.Code)
      _, v = zego("ForbidRTCStream", {})
      assert.are.equal(30006, v.Code)
      _, v = zego("ForbidRTCStream", { params = { StreamId = "x", Sequence = "12a" } })
      assert.are.equal(2, v.Code)

      local q = emu.zego_query({ action = "ResumeRTCStreams", time = now() })
        .. "&StreamId%5B%5D=id1&StreamId%5B%5D=id2"
      local status, body = server:request({ provider = "zego", path = "/?" .. q })
      assert.are.equal(200, status)
      assert.are.equal(0, cjson.decode(body).Code)
      assert.are.equal("normal", rtc("id1").rtc)
      assert.are.equal("normal", rtc("id2").rtc)
      assert.are.equal("forbidden", rtc("id3").rtc)
    end)

    it("applies the test environment's IsTest and zegotest-<AppId>- rules", function()
      local app = { app_id = "777", secret = "test-env-secret" }
      local function call(id, is_test)
        local _, v = zego("ForbidRTCStream", { app_id = app.app_id, secret = app.secret,
          params = { StreamId = id }, is_test = is_test })
        return v.Code
      end
      assert.are.equal(0, call("zegotest-777-cam", true))
      assert.are.equal(0, call("zegotest-777-cam", nil))
      assert.are.equal(30006, call("cam", true))
      assert.are.equal(30004, call("zegotest-777-cam", false))
      local _, v = zego("ForbidRTCStream", { params = { StreamId = "cam" }, is_test = true })
      assert.are.equal(30004, v.Code)
    end)

    it("forbids and resumes CDN streams with per-CDN results", function()
      local resume_at = now() + 30
      local status, v = zego("ForbidCDNLiveStream",
        { params = { StreamId = "cdn1", ResumeTime = emu.iso8601(resume_at) } })
      assert.are.equal(200, status)
      -- CdnResult is a string, as in the page's sample answer
      assert.are.same({ { CdnType = "ws", CdnResult = "success append purge tasks." } }, v.Data)
      status, v = zego("DescribeRTCStreamState", { params = { StreamId = "cdn1" } })
      assert.are.equal(200, status)
      assert.are.equal("forbidden", v.Data.CDNState)
      assert.are.equal("normal", v.Data.RTCState)
      assert.are.equal(resume_at, v.Data.CDNResumeTime) -- (the ResumeTime given, to the second)
      shift(31)
      status, v = zego("DescribeRTCStreamState", { params = { StreamId = "cdn1" } })
      assert.are.equal(200, status)
      assert.are.equal("normal", v.Data.CDNState)
      zego("ForbidCDNLiveStream", { params = { StreamId = "cdn1" } })
      status, v = zego("ResumeCDNLiveStream", { params = { StreamId = "cdn1" } })
      assert.are.equal(200, status)
      assert.are.same({ { CdnType = "ws", CdnResult = "Resume tasks added successfully." } }, v.Data)
      assert.are.equal("normal", server:state().zego.streams["1234567890"].cdn1.cdn)
      status, v = zego("ResumeCDNLiveStream", { app_id = "888", secret = "no-cdn-resume",
        params = { StreamId = "cdn1" } })
      assert.are.equal(200, status)
      assert.are.equal(100000017, v.Code)
      status, v = zego("DescribeRTCStreamState", { params = { StreamId = "never-seen" } })
      assert.are.equal(200, status)
      assert.are.same({ StreamId = "never-seen", RTCState = "normal", CDNState = "normal",
        CDNResumeTime = 0, LastSequence = "", UpdatedAt = 0 }, v.Data)
    end)

    it("takes ForbidCDNLiveStream's ResumeTime as a UTC time up to 30 days ahead, one day by default", function()
      local t0 = pin(now())
      for i, rt in ipairs({ tostring(t0 + 60), "2030-01-01 00:00:00", "2030-02-30T00:00:00Z",
        emu.iso8601(t0), emu.iso8601(t0 - 60), emu.iso8601(t0 + 30 * 86400 + 1) }) do
        local status, v = zego("ForbidCDNLiveStream", { params = { StreamId = "rt" .. i, ResumeTime = rt } })
        assert.are.equal(200, status, rt)
        assert.are.equal(2, v.Code, rt)
        assert.is_nil((server:state().zego.streams["1234567890"] or {})["rt" .. i], rt)
      end
      local _, v = zego("ForbidCDNLiveStream", { params = { StreamId = "max", ResumeTime = emu.iso8601(t0 + 30 * 86400) } })
      assert.are.equal(0, v.Code)
      -- no ResumeTime: the ban lasts a day
      _, v = zego("ForbidCDNLiveStream", { params = { StreamId = "day" } })
      assert.are.equal(0, v.Code)
      assert.are.equal(t0 + 86400, server:state().zego.streams["1234567890"].day.cdn_resume_time)
      pin(t0 + 86399)
      assert.are.equal("forbidden", server:state().zego.streams["1234567890"].day.cdn)
      pin(t0 + 86400)
      assert.are.equal("normal", server:state().zego.streams["1234567890"].day.cdn)
      assert.are.equal("forbidden", server:state().zego.streams["1234567890"].max.cdn)
    end)

    it("requires Sequence on RTC forbid and resume, single and batch: code 2, nothing applied", function()
      for _, action in ipairs({ "ForbidRTCStream", "ResumeRTCStream", "ForbidRTCStreams", "ResumeRTCStreams" }) do
        local opts = { sequence = false }
        if action:sub(-1) == "s" then
          opts.streams = { "noseq-" .. action }
        else
          opts.params = { StreamId = "noseq-" .. action }
        end
        local status, v = zego(action, opts)
        assert.are.equal(200, status, action)
        assert.are.equal(2, v.Code, action)
        assert.are.equal(cjson.null, v.Data, action)
        assert.is_nil((server:state().zego.streams["1234567890"] or {})["noseq-" .. action], action)
        local e = server:log({ action = action })[1]
        assert.are.equal("error", e.verdict, action)
        assert.is_false(e.applied, action)
      end
      -- an empty Sequence is a missing one
      local _, v = zego("ForbidRTCStream", { sequence = false, params = { StreamId = "x", Sequence = "" } })
      assert.are.equal(2, v.Code)
      -- with one, each is applied
      for _, action in ipairs({ "ForbidRTCStream", "ResumeRTCStreams" }) do
        local opts = action == "ForbidRTCStream" and { params = { StreamId = "seq" } } or { streams = { "seq" } }
        _, v = zego(action, opts)
        assert.are.equal(0, v.Code, action)
      end
      assert.are.equal("normal", rtc("seq").rtc)
      assert.are.equal(2, rtc("seq").forbid_count + rtc("seq").resume_count)
    end)

    it("counts the StreamId[] entries as sent, duplicates included, against 1..20", function()
      local ids = {}
      for i = 1, 20 do
        ids[i] = "u" .. i
      end
      ids[21] = "u1"                 -- 20 different ids in 21 entries
      local _, v = zego("ForbidRTCStreams", { streams = ids })
      assert.are.equal(30006, v.Code)
      assert.is_nil(server:state().zego.streams["1234567890"])
      local twice = {}
      for i = 1, 10 do
        twice[2 * i - 1], twice[2 * i] = "d" .. i, "d" .. i
      end
      _, v = zego("ForbidRTCStreams", { streams = twice })   -- 20 entries, 10 ids
      assert.are.equal(0, v.Code)
      for i = 1, 10 do
        assert.are.equal("forbidden", rtc("d" .. i).rtc)
        assert.are.equal(1, rtc("d" .. i).forbid_count)
      end
      local e = server:log({ action = "ForbidRTCStreams" })[2]
      assert.are.equal(10, #e.streams)
      assert.are.equal(10, #e.applied_streams)
    end)

    it("requires a SignatureNonce of 16 hexadecimal characters on every action", function()
      local actions = {
        { "ForbidRTCStream", { params = { StreamId = "n" } } }, { "ResumeRTCStream", { params = { StreamId = "n" } } },
        { "ForbidRTCStreams", { streams = { "n" } } }, { "ResumeRTCStreams", { streams = { "n" } } },
        { "ForbidCDNLiveStream", { params = { StreamId = "n" } } },
        { "ResumeCDNLiveStream", { params = { StreamId = "n" } } },
        { "DescribeRTCStreamState", { params = { StreamId = "n" } } },
      }
      for _, a in ipairs(actions) do
        for _, nonce in ipairs({ "4fd24687296dd9f", "4fd24687296dd9f3a", "4fd24687296dd9gz", "nonce-1234567890" }) do
          local opts = { nonce = nonce, params = a[2].params, streams = a[2].streams }
          local status, v = zego(a[1], opts)
          assert.are.equal(200, status, a[1] .. " " .. nonce)
          assert.are.equal(2, v.Code, a[1] .. " " .. nonce)
        end
        local _, v = zego(a[1], { nonce = "4FD24687296DD9F3", params = a[2].params, streams = a[2].streams })
        assert.are.equal(0, v.Code, a[1])
      end
      -- refused before the rate limiter: only the good nonces count
      for action, c in pairs(server:state().zego.counters) do
        assert.are.equal(1, c.accepted, action)
      end
      for _, e in ipairs(server:log({ provider = "zego" })) do
        assert.are.equal(e.code == 0 and "ok" or "rejected", e.verdict)
      end
    end)

    it("answers only GET: another method gets code 2 and nothing is applied", function()
      for _, method in ipairs({ "POST", "PUT", "DELETE" }) do
        local status, v = zego("ForbidRTCStream", { method = method, params = { StreamId = "m" } })
        assert.are.equal(200, status, method)
        assert.are.equal(2, v.Code, method)
        assert.are.equal(cjson.null, v.Data, method)
      end
      -- the parameters in a form body change nothing
      local q = emu.zego_query({ action = "ForbidCDNLiveStream", time = now(), params = { StreamId = "m" } })
      local status, body = server:request({ method = "POST", provider = "zego", path = "/", body = q,
        headers = { ["content-type"] = "application/x-www-form-urlencoded" } })
      assert.are.equal(200, status)
      assert.are.equal(2, cjson.decode(body).Code)
      assert.is_nil(server:state().zego.streams["1234567890"])
      local e = server:log({ provider = "zego" })[1]
      assert.are.equal("rejected", e.verdict)
      assert.are.equal("POST", e.method)
      local _, v = zego("ForbidRTCStream", { params = { StreamId = "m" } })
      assert.are.equal(0, v.Code)
    end)
  end)

  describe("rate limits", function()
    -- The limits are the emulator's own, nginx-lua, never under valgrind or
    -- ASan, which slow the client many times (CI saw 1.6 s for 167 requests
    -- under valgrind, 1.14 s under ASan on a busy machine): they are checked
    -- in the Lua 5.4 and LuaJIT phases (emu.timed_bursts). There too a busy
    -- machine can stretch a burst past its 1 s window, so no row asserts how
    -- fast the machine is: each checks the emulator's verdicts against the
    -- model of its limiter at the times the limiter itself read (the log's
    -- rate_limit_time: spec/helpers/rate_model.lua), and the pattern it
    -- planned only when the arrivals came as planned by that clock (a note
    -- on stderr otherwise).
    if not emu.timed_bursts() then
      pending(emu.TIMED_BURSTS)
      return
    end
    -- Sends pre-built requests, each `at` seconds after the start (plan
    -- entries { request, at }; a late entry goes at once); anchored: the
    -- entries after the first group (those at 0) at `at` seconds after its
    -- last answer instead, so a first arrival that came late cannot come
    -- less than `at` before a later one. Returns the answers (with the
    -- client's times: sent before, done after) and the seconds from the
    -- first send to the last answer.
    local function timed(plan, srv, anchored)
      srv = srv or server
      local answers = {}
      local t0 = socket.gettime()
      local start, grouped = t0, true
      for i, p in ipairs(plan) do
        if anchored and grouped and (p.at or 0) > 0 then
          grouped = false
          start = i > 1 and answers[i - 1].done or t0
        end
        local wait = start + (p.at or 0) - socket.gettime()
        if wait > 0 then -- (real time: the emulator's limits count real arrivals, as a provider's do)
          socket.sleep(wait)
        end
        local sent = socket.gettime()
        local status, body, headers = srv:request(p.request)
        answers[i] = { status = status, body = decode(body), headers = headers, sent = sent,
          done = socket.gettime() }
      end
      return answers, socket.gettime() - t0
    end

    -- Sends pre-built requests back to back; returns the answers and the elapsed time.
    local function burst(requests, srv)
      local plan = {}
      for i, r in ipairs(requests) do
        plan[i] = { request = r }
      end
      return timed(plan, srv)
    end

    -- "ok", "throttled" (and, Aliyun, x-acs-retry-after), or what else came back.
    local function verdict(a)
      if a.status == 200 and a.body and a.body.Code == nil then
        return "ok"
      elseif a.status == 400 and a.body and a.body.Code == "Throttling.User" then
        return "throttled", tonumber(a.headers["x-acs-retry-after"])
      elseif a.status == 200 and a.body and a.body.Code == 0 then
        return "ok"
      elseif a.status == 200 and a.body and a.body.Code == 30002 then
        return "throttled"
      end
      return tostring(a.body and a.body.Code or a.status)
    end

    local function verdicts(answers)
      local out = {}
      for i, a in ipairs(answers) do
        out[i] = (verdict(a))
      end
      return out
    end

    -- Checks the requests the log holds (query: server:log's filter; nil:
    -- all since the reset) against the model of their limiters at the
    -- emulator's own times (rate_model.check; budget: the qps, or a function
    -- of the entry giving the qps and the algorithm), and that the client
    -- was answered as logged (answers[i]: the i-th entry's). Returns the
    -- replay and the entries.
    local function modelled(answers, query, budget, what, srv)
      local entries = (srv or server):log(query)
      assert.are.equal(#answers, #entries, what)
      local replay = rates.check(entries, budget, what)
      for i, e in ipairs(entries) do
        assert.are.equal(e.verdict == "throttled", verdict(answers[i]) == "throttled", what .. ": answer " .. i)
      end
      return replay, entries
    end

    -- Asserts that the state's counters of provider's action are what the
    -- log says the limiter decided; returns the accepted and the throttled.
    local function counted(provider, action, srv)
      srv = srv or server
      local accepted, throttled = 0, 0
      for _, e in ipairs(srv:log({ provider = provider, action = action })) do
        if e.verdict == "throttled" then
          throttled = throttled + 1
        elseif e.rate_limit_time then
          accepted = accepted + 1
        end
      end
      local c = srv:state()[provider].counters[action]
      assert.are.same({ accepted, throttled }, { c.accepted, c.throttled }, provider .. " " .. action)
      return accepted, throttled
    end

    -- Lists of n verdicts: all "ok", or n - 1 "ok" then "throttled".
    local function oks(n)
      local out = {}
      for i = 1, n do
        out[i] = "ok"
      end
      return out
    end

    local function oks_then_throttled(n)
      local out = oks(n - 1)
      out[n] = "throttled"
      return out
    end

    -- The retry_after_ms of the last throttled request the log holds.
    local function logged_retry_after(provider, action, srv)
      local last
      for _, e in ipairs((srv or server):log({ provider = provider, action = action })) do
        if e.verdict == "throttled" then
          last = e
        end
      end
      return last and last.retry_after_ms, last
    end

    it("throttles Aliyun per account and action at the documented QPS, with x-acs-retry-after", function()
      local requests = {}
      for i = 1, 45 do
        requests[i] = live_request("ResumeLiveStream", stream("rl" .. i))
      end
      local answers, elapsed = burst(requests)
      local replay = modelled(answers, nil, 30, "45 ResumeLiveStream at 30/s")
      local accepted, throttled = 0, 0
      for _, a in ipairs(answers) do
        if a.status == 200 then
          accepted = accepted + 1
        else
          throttled = throttled + 1
          assert.are.equal(400, a.status)
          assert.are.equal("Throttling.User", a.body.Code)
          assert.are.equal("Request was denied due to user flow control.", a.body.Message)
          -- sliding window: the wait until the oldest arrival in the window (one of
          -- the burst's, at most `elapsed` older) is 1 s old
          local ms = tonumber(a.headers["x-acs-retry-after"])
          assert.is_true(ms >= 1000 - math.ceil(elapsed * 1000) and ms <= 1000, tostring(ms))
        end
      end
      if rates.within(replay.times, 1, "45 ResumeLiveStream at 30/s") then
        assert.are.equal(30, accepted)
        assert.are.equal(15, throttled)
      end
      assert.are.same({ accepted, throttled }, { counted("aliyun", "ResumeLiveStream") })
      local c = server:state().aliyun.counters.ResumeLiveStream
      local sum_a, sum_t = 0, 0
      for _, s in pairs(c.per_second) do
        sum_a, sum_t = sum_a + s.accepted, sum_t + s.throttled
      end
      assert.are.equal(accepted, sum_a)
      assert.are.equal(throttled, sum_t)
      local logged = 0
      for _, e in ipairs(server:log({ action = "ResumeLiveStream" })) do
        if e.verdict == "throttled" then
          logged = logged + 1
          assert.is_false(e.applied)
          assert.are.equal("Throttling.User", e.code)
          assert.are.equal("sliding_window", e.rate_limiter)
        end
      end
      assert.are.equal(throttled, logged)
    end)

    it("keeps buckets per account", function()
      local requests = {}
      for i = 1, 3 do
        requests[i] = live_request("ResumeLiveStream", stream("slow" .. i),
          { key = "LTAIslow", secret = "slow-secret" })
      end
      requests[4] = live_request("ResumeLiveStream", stream("fast"))
      local answers = burst(requests)
      local _, entries = modelled(answers, nil, function(e)
        return e.account == "LTAIslow" and 2 or 30
      end, "LTAIslow at 2/s, LTAIemulatorKey at 30/s")
      local slow = rates.times(entries, function(e) return e.account == "LTAIslow" end)
      if rates.within(slow, 1, "3 of LTAIslow at 2/s") then
        assert.are.equal(200, answers[1].status)
        assert.are.equal(200, answers[2].status)
        assert.are.equal(400, answers[3].status)
        assert.are.equal("Throttling.User", answers[3].body.Code)
      end
      -- the other account's first: its own budget, whatever LTAIslow's holds
      assert.are.equal(200, answers[4].status)
    end)

    it("throttles ZEGO per AppId at 20/s with 30002, and a test-env app at 5/s", function()
      local requests = {}
      for i = 1, 30 do
        requests[i] = zego_request("ForbidRTCStream", { params = { StreamId = "z" .. i } })
      end
      local answers = burst(requests)
      local replay = modelled(answers, { action = "ForbidRTCStream" }, 20, "30 ForbidRTCStream at 20/s")
      local ok_count, limited = 0, 0
      for _, a in ipairs(answers) do
        assert.are.equal(200, a.status)
        if a.body.Code == 0 then
          ok_count = ok_count + 1
        else
          assert.are.equal(30002, a.body.Code)
          limited = limited + 1
        end
      end
      if rates.within(replay.times, 1, "30 ForbidRTCStream at 20/s") then
        assert.are.equal(20, ok_count)
        assert.are.equal(10, limited)
      end
      assert.are.same({ ok_count, limited }, { counted("zego", "ForbidRTCStream") })

      requests = {}
      for i = 1, 7 do
        requests[i] = zego_request("ResumeRTCStream", { app_id = "777", secret = "test-env-secret",
          params = { StreamId = "zegotest-777-" .. i } })
      end
      answers = burst(requests)
      replay = modelled(answers, { action = "ResumeRTCStream" }, 5, "7 ResumeRTCStream of a test-env app at 5/s")
      if rates.within(replay.times, 1, "7 ResumeRTCStream of a test-env app at 5/s") then
        assert.are.same({ "ok", "ok", "ok", "ok", "ok", "throttled", "throttled" }, verdicts(answers))
      end
    end)

    it("caps ForbidLiveStream at 20 per second by default", function()
      local requests = {}
      for i = 1, 21 do
        requests[i] = live_request("ForbidLiveStream", stream("fl" .. i))
      end
      local answers = burst(requests)
      local replay = modelled(answers, nil, 20, "21 ForbidLiveStream at 20/s")
      local accepted, throttled = counted("aliyun", "ForbidLiveStream")
      if rates.within(replay.times, 1, "21 ForbidLiveStream at 20/s") then
        assert.are.same(oks_then_throttled(21), verdicts(answers))
        assert.are.same({ 20, 1 }, { accepted, throttled })
      end
      assert.are.equal(20, server:control("GET", "config").aliyun.qps.ForbidLiveStream)
    end)

    it("caps UpdateLivePullToPush, RestartLivePullToPush and DeleteLivePullToPush at 10 per second each", function()
      local cfg = server:control("GET", "config")
      for _, action in ipairs({ "UpdateLivePullToPush", "RestartLivePullToPush", "DeleteLivePullToPush" }) do
        assert.are.equal(10, cfg.aliyun.qps[action], action)
        local requests = {}
        for i = 1, 11 do
          requests[i] = live_request(action, { Region = "cn-shanghai", TaskId = "none-" .. i,
            CallbackUrl = action == "UpdateLivePullToPush" and "https://cb.example.com/x" or nil })
        end
        local answers = burst(requests)
        local replay = modelled(answers, { action = action }, 10, "11 " .. action .. " at 10/s")
        local accepted, throttled = counted("aliyun", action)
        for _, a in ipairs(answers) do
          -- past the limiter: the task does not exist
          assert.is_true(verdict(a) == "CodeTaskNotExist" or verdict(a) == "throttled", action)
        end
        if rates.within(replay.times, 1, "11 " .. action .. " at 10/s") then
          local want = {}
          for i = 1, 10 do
            want[i] = "CodeTaskNotExist"
          end
          want[11] = "throttled"
          assert.are.same(want, verdicts(answers), action)
          assert.are.same({ 10, 1 }, { accepted, throttled }, action)
        end
        -- an account without a live domain
        local status, v = live(action, { Region = "cn-shanghai", TaskId = "t" }, { key = "LTAInoDomain", secret = "s" })
        assert.are.equal(400, status, action)
        assert.are.equal("CodeInvalidAliUid", v.Code, action)
      end
    end)

    it("caps DescribeLiveStreamsOnlineList at 10000 per minute, counted as at most 166 in any second", function()
      assert.is_true(math.abs(server:control("GET", "config").aliyun.qps.DescribeLiveStreamsOnlineList - 10000 / 60)
        < 1e-9)
      local requests = {}
      for i = 1, 167 do
        requests[i] = live_request("DescribeLiveStreamsOnlineList", { DomainName = "d" .. i })
      end
      local answers = burst(requests)
      local replay = modelled(answers, nil, 10000 / 60, "167 DescribeLiveStreamsOnlineList at 10000/min")
      local accepted, throttled = counted("aliyun", "DescribeLiveStreamsOnlineList")
      if rates.within(replay.times, 1, "167 DescribeLiveStreamsOnlineList at 10000/min") then
        assert.are.same(oks_then_throttled(167), verdicts(answers))
        assert.are.same({ 166, 1 }, { accepted, throttled })
      end
    end)

    describe("algorithms", function()
      local N = 5   -- the qps of the accounts and apps below (CONFIG)

      -- Requests of the accounts and apps limited to N/s: `who` is "window"
      -- (no rate_limiter of its own: the provider's default) or "bucket"
      -- (rate_limiter "token_bucket").
      local ACCOUNTS = {
        window = { key = "LTAIwindow", secret = "window-secret", app_id = "501", app_secret = "window-app" },
        bucket = { key = "LTAIbucket", secret = "bucket-secret", app_id = "502", app_secret = "bucket-app" },
      }
      local ACTION = { aliyun = "ResumeLiveStream", zego = "ForbidRTCStream" }

      local serial = 0
      local function limited(provider, who)
        local a = ACCOUNTS[who]
        serial = serial + 1
        if provider == "aliyun" then
          return live_request("ResumeLiveStream", stream(who .. serial), { key = a.key, secret = a.secret })
        end
        return zego_request("ForbidRTCStream", { app_id = a.app_id, secret = a.app_secret,
          params = { StreamId = who .. serial } })
      end

      -- The budget of an entry of theirs, for the model: N/s, a token bucket
      -- for "bucket"'s, else a sliding window (on both servers below).
      local function budget(e)
        local bucket = e.account == ACCOUNTS.bucket.key or e.account == ACCOUNTS.bucket.app_id
        return N, bucket and "token_bucket" or "sliding_window"
      end

      -- The limiter's times of (provider, who)'s entries, sorted.
      local function arrivals(entries, provider, who)
        local id = provider == "aliyun" and ACCOUNTS[who].key or ACCOUNTS[who].app_id
        return rates.times(entries, function(e) return e.provider == provider and e.account == id end)
      end

      -- Runs one schedule for each (provider, who): offsets in seconds, the
      -- same for every pair, interleaved (anchored: timed's). Returns
      -- verdicts[provider][who], the elapsed time and the answers in order.
      local function run(offsets, pairs_, srv, anchored)
        local plan, where = {}, {}
        for _, at in ipairs(offsets) do
          for _, pw in ipairs(pairs_) do
            plan[#plan + 1] = { request = limited(pw[1], pw[2]), at = at }
            where[#plan] = pw
          end
        end
        local answers, elapsed = timed(plan, srv, anchored)
        local out = { aliyun = {}, zego = {} }
        for i, a in ipairs(answers) do
          local pw = where[i]
          out[pw[1]][pw[2]] = out[pw[1]][pw[2]] or {}
          local list = out[pw[1]][pw[2]]
          list[#list + 1] = (verdict(a))
        end
        return out, elapsed, answers
      end

      local ALL = { { "aliyun", "window" }, { "aliyun", "bucket" }, { "zego", "window" }, { "zego", "bucket" } }

      -- For a schedule of N + 1 that a window refuses the last of and a
      -- bucket accepts: checks `got` (run's) against the model, then the
      -- plan where the arrivals kept to it: the window's N + 1 within 1 s,
      -- the bucket's last at least 1 / N s after its first (N tokens at the
      -- first, at least one back by the last, whatever came between).
      -- Returns fits[provider].window and .bucket: whether they kept to it.
      local function window_refuses_bucket_accepts(got, answers, what, srv)
        local _, entries = modelled(answers, nil, budget, what, srv)
        local fits = {}
        for _, provider in ipairs({ "aliyun", "zego" }) do
          fits[provider] = {
            window = rates.within(arrivals(entries, provider, "window"), 1, what .. ", " .. provider .. "'s window"),
            bucket = rates.apart(arrivals(entries, provider, "bucket"), 1 / N, what .. ", " .. provider .. "'s bucket"),
          }
          if fits[provider].window then
            assert.are.same(oks_then_throttled(N + 1), got[provider].window, provider)
          end
          if fits[provider].bucket then
            assert.are.same(oks(N + 1), got[provider].bucket, provider)
          end
        end
        return fits
      end

      it("is a sliding window by default, for both providers, and says so in the state", function()
        local st = server:state()
        assert.are.equal("sliding_window", st.aliyun.rate_limiter)
        assert.are.equal("sliding_window", st.zego.rate_limiter)
        assert.are.equal("sliding_window", st.aliyun.rate_limiters.LTAIwindow)
        assert.are.equal("sliding_window", st.aliyun.rate_limiters.LTAIemulatorKey)
        assert.are.equal("token_bucket", st.aliyun.rate_limiters.LTAIbucket)
        assert.are.equal("sliding_window", st.zego.rate_limiters["501"])
        assert.are.equal("sliding_window", st.zego.rate_limiters["1234567890"])
        assert.are.equal("token_bucket", st.zego.rate_limiters["502"])
        local cfg = server:control("GET", "config")
        assert.are.equal("sliding_window", cfg.aliyun.rate_limiter)
        assert.are.equal("sliding_window", cfg.zego.rate_limiter)
        -- arrival times with sub-millisecond resolution, not ngx.now()'s milliseconds
        assert.are.equal("clock_gettime(CLOCK_MONOTONIC)", cfg.rate_limit_clock)
      end)

      it("accepts N back to back and refuses the N+1-th until the oldest is 1 s old", function()
        for _, provider in ipairs({ "aliyun", "zego" }) do
          local requests = {}
          for i = 1, N + 1 do
            requests[i] = limited(provider, "window")
          end
          local answers = burst(requests)
          local query = { provider = provider, action = ACTION[provider] }
          local replay = modelled(answers, query, N, provider .. ": N + 1 back to back")
          local accepted, throttled = counted(provider, ACTION[provider])
          if rates.within(replay.times, 1, provider .. ": N + 1 back to back") then
            assert.are.same(oks_then_throttled(N + 1), verdicts(answers), provider)
            assert.are.same({ N, 1 }, { accepted, throttled }, provider)
            local _, ms = verdict(answers[N + 1])
            local entry
            if provider == "zego" then
              ms, entry = logged_retry_after("zego", ACTION.zego)
            else
              _, entry = logged_retry_after("aliyun", ACTION.aliyun)
            end
            assert.are.equal(ms, entry.retry_after_ms)
            assert.are.equal("sliding_window", entry.rate_limiter)
            -- > 0 and <= 1000, and exactly when the first request leaves the
            -- window (a token bucket would answer about 1000 / N), bounded
            -- by the client's times: the first arrived between answers[1].sent
            -- and .done, the last between answers[N + 1].sent and .done
            assert.is_true(ms > 0 and ms <= 1000, tostring(ms))
            local first, last = answers[1], answers[N + 1]
            local earliest = math.floor((1 - (last.done - first.sent)) * 1000)
            local latest = math.ceil((1 - (last.sent - first.done)) * 1000) + 1
            assert.is_true(ms >= earliest and ms <= latest,
              ms .. " not in " .. earliest .. ".." .. latest)
          end
        end
      end)

      it("answers retry-after = the wait until the oldest accepted arrival leaves the window", function()
        -- One arrival at 0, N from 0.45 s 0.05 s apart (the last at 0.65 s):
        -- the last refused until the first is 1 s old (about 350 ms; the
        -- newest would give about 950). The second arrival, at 0.45 s, keeps
        -- the window full for about half a second after the first leaves it:
        -- room for the follow-ups below.
        local plan = {}
        for i = 1, N + 1 do
          for _, provider in ipairs({ "aliyun", "zego" }) do
            plan[#plan + 1] = { request = limited(provider, "window"), at = i == 1 and 0 or 0.4 + (i - 1) * 0.05 }
          end
        end
        local answers = timed(plan)
        -- (ZEGO's answer carries no wait: the log's, of its refusal so far)
        local zego_retry = logged_retry_after("zego", ACTION.zego)
        local follow_ups = {
          aliyun = { limited("aliyun", "window"), limited("aliyun", "window") },
          zego = { limited("zego", "window"), limited("zego", "window") },
        }
        for k, provider in ipairs({ "aliyun", "zego" }) do
          local mine = {}
          for i = k, #answers, 2 do
            mine[#mine + 1] = answers[i]
          end
          local query = { provider = provider, action = ACTION[provider] }
          local replay = modelled(mine, query, N, provider .. ": N + 1 within 0.65 s")
          local times = replay.times
          if rates.within(times, 1, provider .. ": N + 1 within 0.65 s") then
            assert.are.same(oks_then_throttled(N + 1), verdicts(mine), provider)
            local first, second, last = mine[1], mine[2], mine[N + 1]
            local _, ms = verdict(last)
            if provider == "zego" then
              ms = zego_retry
            end
            local earliest = math.floor((1 - (last.done - first.sent)) * 1000)
            local latest = math.ceil((1 - (last.sent - first.done)) * 1000) + 1
            assert.is_true(ms >= earliest and ms <= latest, provider .. ": " .. tostring(ms)
              .. " not in " .. earliest .. ".." .. latest)
            -- retrying after it is accepted; the next one waits for the second arrival
            socket.sleep(math.max(0, last.done + ms / 1000 + 0.005 - socket.gettime()))
            local again = timed({ { request = follow_ups[provider][1] }, { request = follow_ups[provider][2] } })
            for _, a in ipairs(again) do
              mine[#mine + 1] = a
            end
            local all = modelled(mine, query, N, provider .. ": the follow-ups")
            -- the follow-ups came while the second arrival was in the window
            if rates.planned(all.times[N + 3] < times[2] + 1, provider .. ": the follow-ups",
                "the second follow-up " .. all.times[N + 3] - times[2] .. " s after the second arrival") then
              assert.are.same({ "ok", "throttled" }, verdicts(again), provider)
              local _, ms2 = verdict(again[2])
              if provider == "zego" then
                ms2 = logged_retry_after("zego", ACTION.zego) -- (the follow-up's refusal: the last)
              end
              assert.is_true(ms2 >= 1 and ms2 <= math.ceil((second.done + 1 - again[2].sent) * 1000) + 1,
                provider .. ": " .. tostring(ms2))
            end
          end
        end
      end)

      it("refuses one more request 1/N s after a burst of N, which a token bucket accepts", function()
        local offsets = {}
        for i = 1, N do
          offsets[i] = 0
        end
        offsets[N + 1] = 1 / N + 0.05
        local got, _, answers = run(offsets, ALL)
        local fits = window_refuses_bucket_accepts(got, answers, "N, then one 1/N s later")
        local accepted = counted("aliyun", ACTION.aliyun)
        local _, throttled = counted("zego", ACTION.zego)
        if fits.aliyun.window and fits.aliyun.bucket then
          assert.are.equal(2 * N + 1, accepted)  -- the window's N and the bucket's N + 1
        end
        if fits.zego.window and fits.zego.bucket then
          assert.are.equal(1, throttled)         -- the window's last
        end
      end)

      it("refuses N+1 requests evenly spaced slightly faster than N/s, accepts them slightly slower", function()
        local fast = {}
        for i = 1, N + 1 do
          fast[i] = (i - 1) * 0.85 / N      -- N+1 arrivals within 0.85 s
        end
        local got, _, answers = run(fast, ALL)
        window_refuses_bucket_accepts(got, answers, "N + 1 within 0.85 s")

        server:reset()
        local slow = {}
        for i = 1, N + 1 do
          slow[i] = (i - 1) * 1.03 / N      -- the first and the last 1.03 s apart
        end
        -- anchored: the later ones timed from the first's answer, so the
        -- first and the last arrive 1.03 s apart at least, however late the
        -- first came
        got, _, answers = run(slow, { { "aliyun", "window" }, { "zego", "window" } }, nil, true)
        local _, entries = modelled(answers, nil, budget, "N + 1 over 1.03 s")
        for _, provider in ipairs({ "aliyun", "zego" }) do
          if rates.apart(arrivals(entries, provider, "window"), 1, "N + 1 over 1.03 s, " .. provider) then
            assert.are.same(oks(N + 1), got[provider].window, provider)
          end
        end
      end)

      it("accepts again once the window has passed, and a refused request takes nothing", function()
        local pw = { { "aliyun", "window" }, { "zego", "window" } }
        local function build(count)
          local plan = {}
          for _ = 1, count do
            for _, p in ipairs(pw) do
              plan[#plan + 1] = { request = limited(p[1], p[2]) }
            end
          end
          return plan
        end
        local first, refused, again = build(N), build(1), build(N + 1)
        local t0 = socket.gettime()
        local answers = timed(first)
        local first_done = socket.gettime()
        -- half a second in: the window is full, so these are refused (real
        -- time: the emulator's limits count real arrivals, as a provider's do)
        socket.sleep(math.max(0, t0 + 0.5 - socket.gettime()))
        local refused_answers = timed(refused)
        -- just over 1 s after the first burst: it has left the window; had
        -- the refused requests been counted they would still be in it
        socket.sleep(math.max(0, first_done + 1.02 - socket.gettime()))
        local again_answers = timed(again)
        local all = {}
        for _, list in ipairs({ answers, refused_answers, again_answers }) do
          for _, a in ipairs(list) do
            all[#all + 1] = a
          end
        end
        local _, entries = modelled(all, nil, N, "N, one refused, N + 1 again")
        -- a fresh window takes N, whenever they come
        assert.are.same(oks(2 * N), verdicts(answers))
        -- as planned: the refused one within 1 s of the first, the N + 1
        -- again within 1 s of each other, and of the refused one
        local as_planned, spreads = true, {}
        for _, p in ipairs(pw) do
          local t = arrivals(entries, p[1], "window")
          local refused_at, again_over, again_end = t[N + 1] - t[1], t[2 * N + 2] - t[N + 2], t[2 * N + 2] - t[N + 1]
          as_planned = as_planned and refused_at < 1 and again_over < 1 and again_end < 1
          spreads[#spreads + 1] = string.format("%s: the refused %.3f s after the first, the N + 1 again over"
            .. " %.3f s, ending %.3f s after the refused; planned under 1 s each", p[1], refused_at, again_over,
            again_end)
        end
        if rates.planned(as_planned, "N, one refused, N + 1 again", table.concat(spreads, "; ")) then
          assert.are.same({ "throttled", "throttled" }, verdicts(refused_answers))
          local want = oks(2 * N)
          want[2 * N + 1], want[2 * N + 2] = "throttled", "throttled"
          assert.are.same(want, verdicts(again_answers))
          for _, provider in ipairs({ "aliyun", "zego" }) do
            assert.are.same({ 2 * N, 2 }, { counted(provider, ACTION[provider]) }, provider)
          end
        end
      end)

      describe("set per provider", function()
        local other

        lazy_setup(function()
          other = emu.start({ config = {
            aliyun = {
              rate_limiter = "token_bucket",
              accounts = {
                LTAIwindow = { secret = "window-secret", qps = { ResumeLiveStream = N },
                  rate_limiter = "sliding_window" },
                LTAIbucket = { secret = "bucket-secret", qps = { ResumeLiveStream = N } },
              },
            },
            zego = {
              rate_limiter = "token_bucket",
              apps = {
                ["501"] = { secret = "window-app", qps = { ForbidRTCStream = N },
                  rate_limiter = "sliding_window" },
                ["502"] = { secret = "bucket-app", qps = { ForbidRTCStream = N } },
              },
            },
          } })
        end)

        lazy_teardown(function()
          if other then
            other:stop()
          end
        end)

        it("uses the provider's rate_limiter unless the account or app has its own", function()
          local st = other:state()
          assert.are.equal("token_bucket", st.aliyun.rate_limiter)
          assert.are.equal("token_bucket", st.zego.rate_limiter)
          assert.are.equal("token_bucket", st.aliyun.rate_limiters.LTAIemulatorKey)
          assert.are.equal("sliding_window", st.aliyun.rate_limiters.LTAIwindow)
          assert.are.equal("token_bucket", st.zego.rate_limiters["502"])
          assert.are.equal("sliding_window", st.zego.rate_limiters["501"])
          local offsets = {}
          for i = 1, N do
            offsets[i] = 0
          end
          offsets[N + 1] = 1 / N + 0.05
          other:reset()
          local got, _, answers = run(offsets, ALL, other)
          window_refuses_bucket_accepts(got, answers, "the provider's token bucket: N, then one 1/N s later", other)
          -- the token bucket's retry-after: the time until one token is back
          local requests = {}
          for i = 1, N + 1 do
            requests[i] = limited("aliyun", "bucket")
          end
          other:reset()
          answers = burst(requests, other)
          local replay = modelled(answers, nil, budget, "the provider's token bucket: N + 1 back to back", other)
          -- as planned: the N + 1 within 1 / N s, too soon for a token to come back
          if rates.within(replay.times, 1 / N, "the provider's token bucket: N + 1 back to back") then
            assert.are.same(oks_then_throttled(N + 1), verdicts(answers))
            local _, ms = verdict(answers[N + 1])
            assert.is_true(ms >= 1 and ms <= 1000 / N, tostring(ms))
            assert.are.equal("token_bucket", select(2, logged_retry_after("aliyun", ACTION.aliyun, other))
              .rate_limiter)
          end
        end)
      end)

      it("rejects an unknown rate_limiter at start, naming the key", function()
        local cases = {
          { { aliyun = { rate_limiter = "leaky_bucket" } }, 'aliyun.rate_limiter: expected "sliding_window",'
            .. ' "sliding_window_closed" or "token_bucket", got "leaky_bucket"' },
          { { zego = { rate_limiter = 5 } }, "zego.rate_limiter: expected", "got number" },
          { { aliyun = { accounts = { LTAIx = { secret = "s", rate_limiter = "sliding-window" } } } },
            'aliyun.accounts.LTAIx.rate_limiter: expected', 'got "sliding-window"' },
          { { zego = { apps = { ["42"] = { secret = "s", rate_limiter = "fixed_window" } } } },
            'zego.apps.42.rate_limiter: expected', 'got "fixed_window"' },
        }
        for _, c in ipairs(cases) do
          local dir = os.tmpname()
          os.remove(dir)
          local ok, err = pcall(emu.start, { dir = dir, config = c[1] })
          if ok then
            err:stop()
          end
          os.execute("rm -rf '" .. dir .. "'")
          assert.is_false(ok, c[2])
          assert.matches(c[2], tostring(err), 1, true)
          if c[3] then
            assert.matches(c[3], tostring(err), 1, true)
          end
        end
      end)
    end)

    it("reports streamctl.version in /_emulator/health", function()
      local v = server:control("GET", "health")
      assert.are.equal(require("streamctl.version")._VERSION, v.version)
      assert.is_true(v.ok)
    end)
  end)

  describe("RAM", function()
    it("answers Forbidden.RAM (403) for an action the key's policy does not allow, applying nothing", function()
      local OPS = { key = "LTAIops", secret = "ops-secret" }
      local status, v = live("ForbidLiveStream", stream("ram"), OPS)
      assert.are.equal(403, status)
      assert.are.equal("Forbidden.RAM", v.Code)
      assert.are.equal("User not authorized to operate on the specified resource, or this API doesn't support RAM.",
        v.Message)
      assert.is_nil(server:state().aliyun.streams["live.example.com/app/ram"])
      local e = server:log({ action = "ForbidLiveStream" })[1]
      assert.are.equal("rejected", e.verdict)
      assert.is_false(e.applied)
      -- what it allows, in any case and by wildcard
      assert.are.equal(200, (live("ResumeLiveStream", stream("ram"), OPS)))
      status, v = live("StopLivePullToPush", { Region = "cn-shanghai", TaskId = "t" }, OPS)
      assert.are.equal(400, status)
      assert.are.equal("CodeTaskNotExist", v.Code)
      status = live("DescribeLiveStreamsBlockList", { DomainName = "live.example.com" }, OPS)
      assert.are.equal(200, status)
      status, v = live("CreateLivePullToPush", { Region = "cn-shanghai" }, OPS)
      assert.are.equal(403, status)
      assert.are.equal("Forbidden.RAM", v.Code)
      -- an empty policy allows nothing; a key without one, everything
      status, v = live("DescribeLiveStreamsBlockList", { DomainName = "live.example.com" },
        { key = "LTAInone", secret = "none-secret" })
      assert.are.equal(403, status)
      assert.are.equal("Forbidden.RAM", v.Code)
      assert.are.equal(200, (live("ForbidLiveStream", stream("ram"))))
    end)
  end)

  describe("faults", function()
    local function resume(name)
      return live("ResumeLiveStream", stream(name or "f"))
    end

    it("answers http500 and http503 for the next N requests without applying them", function()
      local added = server:faults({ action = "ResumeLiveStream", kind = "http500" })
      assert.are.equal(1, #added.added)
      local status, v = resume("f1")
      assert.are.equal(500, status)
      assert.are.equal("InternalError", v.Code)
      assert.is_nil(server:state().aliyun.streams["live.example.com/app/f1"])
      server:faults({ action = "ResumeLiveStream", kind = "http503", count = 2 })
      assert.are.equal(503, (resume("f2")))
      status, v = resume("f3")
      assert.are.equal(503, status)
      assert.are.equal("ServiceUnavailable", v.Code)
      assert.are.equal(200, (resume("f4")))
      local entries = server:log({ action = "ResumeLiveStream" })
      assert.are.equal("fault", entries[1].verdict)
      assert.are.equal("http500", entries[1].fault)
      assert.are.equal("InternalError", entries[1].code)
      assert.are.equal(500, entries[1].status)
      assert.is_false(entries[1].applied)
      assert.are.equal("ok", entries[4].verdict)
      assert.are.equal(3, server:state().aliyun.counters.ResumeLiveStream.faulted)
    end)

    it("applies the request first with after_apply", function()
      server:faults({ action = "ForbidLiveStream", kind = "http500", after_apply = true })
      local status = live("ForbidLiveStream", stream("aa"))
      assert.are.equal(500, status)
      assert.are.equal("forbidden", server:state().aliyun.streams["live.example.com/app/aa"].status)
      local e = server:log({ action = "ForbidLiveStream" })[1]
      assert.are.equal("fault", e.verdict)
      assert.is_true(e.applied)
    end)

    it("throttles on demand with a chosen retry-after, on both providers", function()
      server:faults({ action = "*", kind = "throttle", retry_after_ms = 250 })
      local status, v, headers = resume()
      assert.are.equal(400, status)
      assert.are.equal("Throttling.User", v.Code)
      assert.are.equal("250", headers["x-acs-retry-after"])
      server:faults({ kind = "throttle", provider = "zego" })
      local _, z = zego("ForbidRTCStream", { params = { StreamId = "t" } })
      assert.are.equal(30002, z.Code)
      assert.are.equal(200, (resume()))
    end)

    it("answers a page's own non-zero code on demand (code), with or without applying", function()
      -- Aliyun: a pull-to-push operation's 200 with RetCode and Description, nothing created
      server:faults({ action = "CreateLivePullToPush", kind = "code", code = 5, message = "bad" })
      local _, v = live("CreateLivePullToPush", {
        Region = "cn-shanghai", StartTime = emu.iso8601(now() + 60), EndTime = emu.iso8601(now() + 3600),
        SourceType = "url", SourceUrls = '["https://a.example/x.mp4"]', DstUrl = "rtmp://d.example/a/code" })
      assert.are.same({ "Description", "RequestId", "RetCode" }, keys(v))
      assert.are.equal(5, v.RetCode)
      assert.are.equal("bad", v.Description)
      assert.are.same({}, keys(server:state().aliyun.tasks))
      local e = server:log({ action = "CreateLivePullToPush" })[1]
      assert.are.equal("fault", e.verdict)
      assert.are.equal("code", e.fault)
      assert.are.equal(5, e.code)
      assert.is_false(e.applied)
      -- ZEGO: ResumeRTCStreams' 42004 after applying; ResumeCDNLiveStream's 1 "failed"
      server:faults({ provider = "zego", action = "ResumeRTCStreams", kind = "code", code = 42004,
        after_apply = true })
      local _, z = zego("ResumeRTCStreams", { streams = { "c1" } })
      assert.are.equal(42004, z.Code)
      assert.are.equal("Forbid or resume failed, please retry.", z.Message)
      assert.are.equal(1, server:state().zego.streams["1234567890"].c1.resume_count)
      server:faults({ provider = "zego", action = "ResumeCDNLiveStream", kind = "code" })
      _, z = zego("ResumeCDNLiveStream", { params = { StreamId = "c2" } })
      assert.are.equal(1, z.Code)
      assert.are.equal("Request failed.", z.Message)
      assert.is_nil(server:state().zego.streams["1234567890"].c2)
      -- a code is a non-zero integer
      for _, bad in ipairs({ 0, 1.5, "1" }) do
        local _, status = server:control("POST", "faults", { kind = "code", code = bad })
        assert.are.equal(400, status, tostring(bad))
      end
    end)

    it("delays a request by delay_ms", function()
      server:faults({ action = "ResumeLiveStream", kind = "delay", delay_ms = 300 })
      local t0 = socket.gettime()
      local status = resume()
      local dt = socket.gettime() - t0
      assert.are.equal(200, status)
      assert.is_true(dt >= 0.3, tostring(dt))
      local e = server:log()[1]
      assert.are.equal("delay", e.fault)
      assert.are.equal("ok", e.verdict)
      -- (the log's duration is nginx's cached clock, updated once per turn of its event loop: a loaded
      -- machine reads it a few ms late at the start; the wait itself is the client's dt above)
      assert.is_true(e.duration_ms >= 290, tostring(e.duration_ms))
    end)

    it("drops the connection without an answer", function()
      server:faults({ kind = "drop" })
      local status, _, _, _, err = resume("d1")
      assert.is_nil(status)
      assert.is_string(err)
      assert.is_nil(server:state().aliyun.streams["live.example.com/app/d1"])
      server:faults({ kind = "drop" }, "zego")
      local zs, _, _, _, zerr = zego("ForbidRTCStream", { params = { StreamId = "d" } })
      assert.is_nil(zs)
      assert.is_string(zerr)
    end)

    it("sends malformed JSON and truncated bodies", function()
      server:faults({ kind = "malformed", after_apply = true })
      local status, v, _, raw = resume("m1")
      assert.are.equal(200, status)
      assert.is_nil(v)
      assert.matches('^{"RequestId":"', raw)
      local marker = "<!-- emulator fault: malformed -->"
      assert.are.equal(marker, raw:sub(-#marker))
      assert.are.equal("normal", server:state().aliyun.streams["live.example.com/app/m1"].status)

      server:faults({ kind = "truncated" })
      -- luasocket's client only reports "closed": read the raw bytes instead
      local tcp = assert(socket.connect("127.0.0.1", server.ports.aliyun))
      tcp:settimeout(5)
      local q = emu.v1_request({ action = "ResumeLiveStream", params = stream("t1"), time = now() })
      tcp:send("POST /?" .. q .. " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n")
      local data, err, partial = tcp:receive("*a")
      tcp:close()
      data = data or partial
      assert.is_nil(err)
      local head, body = data:match("^(.-)\r\n\r\n(.*)$")
      assert.matches("^HTTP/1%.1 200", head)
      local length = tonumber(head:match("\r\n[Cc]ontent%-[Ll]ength: (%d+)"))
      assert.are.equal(math.floor(length / 2), #body)
      assert.matches('^{"', body)
      assert.is_nil(server:state().aliyun.streams["live.example.com/app/t1"])
    end)

    it("skews the Date header", function()
      server:clock({ now = 2000000000 })
      server:faults({ kind = "skew", skew_s = 3600 })
      local status, _, headers = live("ResumeLiveStream", stream("sk"), { time = 2000000000 })
      assert.are.equal(200, status)
      assert.are.equal("Wed, 18 May 2033 04:33:20 GMT", headers.date)
      status, _, headers = live("ResumeLiveStream", stream("sk2"), { time = 2000000000 })
      assert.are.equal(200, status)
      assert.are.equal("Wed, 18 May 2033 03:33:20 GMT", headers.date)
    end)

    it("matches faults by action, lists pending ones and clears them", function()
      server:faults({ { action = "ForbidLiveStream", kind = "http500", count = 2 },
        { action = "ResumeLiveStream", kind = "http503" } })
      assert.are.equal(200, (live("DescribeLiveStreamsBlockList", { DomainName = "d" })))
      local pending = server:faults().faults.aliyun
      assert.are.equal(2, #pending)
      assert.are.equal(2, pending[1].count)
      assert.are.equal(500, (live("ForbidLiveStream", stream("x"))))
      assert.are.equal(1, server:faults().faults.aliyun[1].count)
      local cleared = server:clear_faults()
      assert.are.same({}, cleared.faults.aliyun)
      assert.are.equal(200, (live("ForbidLiveStream", stream("x"))))
      assert.are.equal(200, (resume()))
    end)

    it("answers ZEGO 5xx faults with ZEGO bodies", function()
      server:faults({ kind = "http500", action = "ForbidRTCStream" }, "zego")
      server:faults({ kind = "http503", action = "ForbidRTCStream" }, "zego")
      local status, v = zego("ForbidRTCStream", { params = { StreamId = "x" } })
      assert.are.equal(500, status)
      assert.are.equal(30003, v.Code)
      status, v = zego("ForbidRTCStream", { params = { StreamId = "x" } })
      assert.are.equal(503, status)
      assert.are.equal(100000015, v.Code)
      assert.is_nil(server:state().zego.streams["1234567890"])
    end)
  end)

  describe("request log", function()
    it("filters by provider, action, since and limit, and keeps secrets out", function()
      live("ForbidLiveStream", stream("l1"))
      zego("ForbidRTCStream", { params = { StreamId = "l2", Sequence = "7" } })
      live("ResumeLiveStream", stream("l1"))
      local all, answer = server:log()
      assert.are.equal(3, #all)
      assert.are.equal(3, answer.last_seq)
      assert.are.same({ 1, 2, 3 }, { all[1].seq, all[2].seq, all[3].seq })
      local z = server:log({ provider = "zego" })
      assert.are.equal(1, #z)
      assert.are.equal("7", z[1].sequence)
      assert.are.equal("ForbidRTCStream", z[1].action)
      assert.are.equal(server.ports.zego, z[1].port)
      assert.are.equal("http", z[1].scheme)
      assert.are.equal(2, server:log({ since = 1 })[1].seq)
      assert.are.equal(3, server:log({ limit = 1 })[1].seq)
      assert.are.equal(1, #server:log({ action = "ResumeLiveStream" }))
      local _, raw = server:request({ path = "/_emulator/log" })
      assert.is_nil(raw:find("emulator-secret", 1, true))
      assert.is_nil(raw:find("0123456789abcdef0123456789abcdef", 1, true))
      for _, e in ipairs(all) do
        assert.are.equal("***", e.params.Signature)
        assert.is_number(e.time)
        assert.is_string(e.request_id)
      end
    end)

    it("is emptied by reset, with the state and the counters", function()
      live("ForbidLiveStream", stream("r1"))
      server:reset()
      local st = server:state()
      assert.are.same({}, st.aliyun.streams)
      assert.are.same({}, st.aliyun.counters)
      assert.are.same({}, server:log())
      assert.are.equal(200, (live("ForbidLiveStream", stream("r1"))))
      assert.are.equal(1, server:log()[1].seq)
    end)
  end)
end)
