-- The emulator's operations, rate limits, fault injection and request log, driven
-- by hand-built requests (luasocket + openssl-CLI signatures from
-- spec/helpers/emulator.lua; never streamctl's core).

local emu = require "spec.helpers.emulator"
local cjson = require "cjson"
local socket = require "socket"


local CONFIG = {
    aliyun = {
        accounts = {
            LTAIslow = { secret = "slow-secret", qps = { ResumeLiveStream = 2 } },
            LTAIbulk = { secret = "bulk-secret", qps = { CreateLivePullToPush = 1000 } },
            LTAInoLive = { secret = "s", live_service = false },
            LTAInoDomain = { secret = "s", has_live_domain = false },
            -- 5/s, to test the limiters quickly: the provider's default / a token bucket
            LTAIwindow = { secret = "window-secret", qps = { ResumeLiveStream = 5 } },
            LTAIbucket = { secret = "bucket-secret", qps = { ResumeLiveStream = 5 }, rate_limiter = "token_bucket" },
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

    -- A signed V1 request for server:request (signing runs the openssl CLI, so
    -- timed tests build their requests first and send them later).
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

    local function zego_request(action, opts)
        opts = opts or {}
        local q = emu.zego_query({ action = action, app_id = opts.app_id, secret = opts.secret,
            time = opts.time or now(), params = opts.params, streams = opts.streams, is_test = opts.is_test })
        return { provider = "zego", path = "/?" .. q }
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
        local function create(over)
            return live("CreateLivePullToPush", task_params(over), { key = "LTAIbulk", secret = "bulk-secret" })
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
            assert.are.equal("TriggerByUser", v.TaskExitReason)
            status, v = live("StopLivePullToPush", { Region = "cn-shanghai", TaskId = id })
            assert.are.equal(400, status)
            assert.are.equal("CodeTaskHasStopped", v.Code)
            status, v = live("CreateLivePullToPush", task_params({ DstUrl = p.DstUrl }))
            assert.are.equal(400, status)
            assert.are.equal("CodeConfigAlreadyExists", v.Code)
        end)

        it("exits at EndTime, freeing its DstUrl", function()
            local p = task_params({ StartTime = emu.iso8601(now() - 10), EndTime = emu.iso8601(now() + 60) })
            local _, v = live("CreateLivePullToPush", p)
            local id = v.TaskId
            shift(61)
            local status
            status, v = live("DescribeLivePullToPush", { Region = "cn-shanghai", TaskId = id })
            assert.are.equal(200, status)
            assert.are.equal(-1, v.TaskStatus)
            assert.are.equal("OverEndTime", v.TaskExitReason)
            status, v = live("StopLivePullToPush", { Region = "cn-shanghai", TaskId = id })
            assert.are.equal(400, status)
            assert.are.equal("CodeTaskNotExist", v.Code)
            assert.are.equal(200, (live("CreateLivePullToPush", task_params({ DstUrl = p.DstUrl }))))
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
                { { DstUrl = "rtmp://dst.example.com/" .. string.rep("x", 2000) }, "InvalidParameter" },
                { { RetryInterval = "59" }, "InvalidParameter" },
                { { RetryInterval = "301" }, "InvalidParameter" },
                { { RetryInterval = "300" }, nil },
                { { Offset = "0" }, "InvalidParameter" },
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
            status, v = zego("ForbidRTCStream", { params = { StreamId = "s", Sequence = "5" } })
            assert.are.equal(200, status)
            assert.are.equal(0, v.Code)
            assert.are.equal("forbidden", rtc("s").rtc)
            status, v = zego("DescribeRTCStreamState", { params = { StreamId = "s" } })
            assert.are.equal(200, status)
            assert.are.same({ StreamId = "s", RTCState = "forbidden", CDNState = "normal", CDNResumeTime = 0,
                LastSequence = "5", UpdatedAt = v.Data.UpdatedAt }, v.Data)
            assert.is_true(math.abs(v.Data.UpdatedAt - now()) < 5)
        end)

        it("compares sequences as decimal integers of any length", function()
            zego("ForbidRTCStream", { params = { StreamId = "big", Sequence = "99999999999999999999" } })
            zego("ResumeRTCStream", { params = { StreamId = "big", Sequence = "100000000000000000000" } })
            assert.are.equal("normal", rtc("big").rtc)
            zego("ForbidRTCStream", { params = { StreamId = "big", Sequence = "99999999999999999999" } })
            assert.are.equal("normal", rtc("big").rtc)
            -- no Sequence: always applied, the remembered one stays
            zego("ForbidRTCStream", { params = { StreamId = "big" } })
            assert.are.equal("forbidden", rtc("big").rtc)
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
            local status, v = zego("ForbidCDNLiveStream",
                { params = { StreamId = "cdn1", ResumeTime = tostring(now() + 30) } })
            assert.are.equal(200, status)
            assert.are.same({ { CdnType = "ws", CdnResult = 0 } }, v.Data)
            status, v = zego("DescribeRTCStreamState", { params = { StreamId = "cdn1" } })
            assert.are.equal(200, status)
            assert.are.equal("forbidden", v.Data.CDNState)
            assert.are.equal("normal", v.Data.RTCState)
            shift(31)
            status, v = zego("DescribeRTCStreamState", { params = { StreamId = "cdn1" } })
            assert.are.equal(200, status)
            assert.are.equal("normal", v.Data.CDNState)
            zego("ForbidCDNLiveStream", { params = { StreamId = "cdn1" } })
            status, v = zego("ResumeCDNLiveStream", { params = { StreamId = "cdn1" } })
            assert.are.equal(200, status)
            assert.are.same({ { CdnType = "ws", CdnResult = 0 } }, v.Data)
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
    end)

    describe("rate limits", function()
        -- Sends pre-built requests, each `at` seconds after the start (plan
        -- entries { request, at }; a late entry goes at once); returns the
        -- answers (with the client's times: sent before, done after) and the
        -- seconds from the first send to the last answer.
        local function timed(plan, srv)
            srv = srv or server
            local answers = {}
            local t0 = socket.gettime()
            for i, p in ipairs(plan) do
                local wait = t0 + (p.at or 0) - socket.gettime()
                if wait > 0 then
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
            assert.is_true(elapsed < 0.9, "too slow to test a 1 s window: " .. elapsed)
            local accepted, throttled = 0, 0
            for _, a in ipairs(answers) do
                if a.status == 200 then
                    accepted = accepted + 1
                else
                    throttled = throttled + 1
                    assert.are.equal(400, a.status)
                    assert.are.equal("Throttling.User", a.body.Code)
                    assert.are.equal("Request was denied due to user flow control.", a.body.Message)
                    -- sliding window: the wait until the burst's first request is 1 s old
                    local ms = tonumber(a.headers["x-acs-retry-after"])
                    assert.is_true(ms >= 1000 - math.ceil(elapsed * 1000) and ms <= 1000, tostring(ms))
                end
            end
            assert.are.equal(30, accepted)
            assert.are.equal(15, throttled)
            local c = server:state().aliyun.counters.ResumeLiveStream
            assert.are.equal(accepted, c.accepted)
            assert.are.equal(throttled, c.throttled)
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
            local answers, elapsed = burst(requests)
            assert.is_true(elapsed < 0.5)
            assert.are.equal(200, answers[1].status)
            assert.are.equal(200, answers[2].status)
            assert.are.equal(400, answers[3].status)
            assert.are.equal("Throttling.User", answers[3].body.Code)
            assert.are.equal(200, answers[4].status)
        end)

        it("throttles ZEGO per AppId at 20/s with 30002, and a test-env app at 5/s", function()
            local requests = {}
            for i = 1, 30 do
                requests[i] = zego_request("ForbidRTCStream", { params = { StreamId = "z" .. i } })
            end
            local answers, elapsed = burst(requests)
            assert.is_true(elapsed < 0.9, "too slow to test a 1 s window: " .. elapsed)
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
            assert.are.equal(20, ok_count)
            assert.are.equal(10, limited)
            local c = server:state().zego.counters.ForbidRTCStream
            assert.are.equal(ok_count, c.accepted)
            assert.are.equal(limited, c.throttled)

            requests = {}
            for i = 1, 7 do
                requests[i] = zego_request("ResumeRTCStream", { app_id = "777", secret = "test-env-secret",
                    params = { StreamId = "zegotest-777-" .. i } })
            end
            answers, elapsed = burst(requests)
            assert.is_true(elapsed < 0.9, "too slow to test a 1 s window: " .. elapsed)
            assert.are.same({ "ok", "ok", "ok", "ok", "ok", "throttled", "throttled" }, verdicts(answers))
        end)

        it("caps ForbidLiveStream at 20 per second by default", function()
            local requests = {}
            for i = 1, 21 do
                requests[i] = live_request("ForbidLiveStream", stream("fl" .. i))
            end
            local answers, elapsed = burst(requests)
            assert.is_true(elapsed < 0.9, "too slow to test a 1 s window: " .. elapsed)
            assert.are.same(oks_then_throttled(21), verdicts(answers))
            local c = server:state().aliyun.counters.ForbidLiveStream
            assert.are.equal(20, c.accepted)
            assert.are.equal(1, c.throttled)
            assert.are.equal(20, server:control("GET", "config").aliyun.qps.ForbidLiveStream)
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

            -- Runs one schedule for each (provider, who): offsets in seconds, the
            -- same for every pair, interleaved. Returns verdicts[provider][who]
            -- and the elapsed time.
            local function run(offsets, pairs_, srv)
                local plan, where = {}, {}
                for _, at in ipairs(offsets) do
                    for _, pw in ipairs(pairs_) do
                        plan[#plan + 1] = { request = limited(pw[1], pw[2]), at = at }
                        where[#plan] = pw
                    end
                end
                local answers, elapsed = timed(plan, srv)
                local out = { aliyun = {}, zego = {} }
                for i, a in ipairs(answers) do
                    local pw = where[i]
                    out[pw[1]][pw[2]] = out[pw[1]][pw[2]] or {}
                    local list = out[pw[1]][pw[2]]
                    list[#list + 1] = (verdict(a))
                end
                return out, elapsed
            end

            local ALL = { { "aliyun", "window" }, { "aliyun", "bucket" }, { "zego", "window" }, { "zego", "bucket" } }

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
                    local answers, elapsed = burst(requests)
                    assert.is_true(elapsed < 0.9, "too slow to test a 1 s window: " .. elapsed)
                    assert.are.same(oks_then_throttled(N + 1), verdicts(answers), provider)
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
                    local c = server:state()[provider].counters[ACTION[provider]]
                    assert.are.equal(N, c.accepted)
                    assert.are.equal(1, c.throttled)
                end
            end)

            it("answers retry-after = the wait until the oldest accepted arrival leaves the window", function()
                -- N arrivals 0.1 s apart, then one at 0.5 s: refused until the first
                -- is 1 s old (about 500 ms; the newest would give about 900)
                local plan = {}
                for i = 1, N + 1 do
                    for _, provider in ipairs({ "aliyun", "zego" }) do
                        plan[#plan + 1] = { request = limited(provider, "window"), at = (i - 1) * 0.1 }
                    end
                end
                local answers = timed(plan)
                local zego_retries = {}
                for _, e in ipairs(server:log({ provider = "zego", action = ACTION.zego })) do
                    if e.verdict == "throttled" then
                        zego_retries[#zego_retries + 1] = e.retry_after_ms
                    end
                end
                local follow_ups = {
                    aliyun = { limited("aliyun", "window"), limited("aliyun", "window") },
                    zego = { limited("zego", "window"), limited("zego", "window") },
                }
                for k, provider in ipairs({ "aliyun", "zego" }) do
                    local mine = {}
                    for i = k, #answers, 2 do
                        mine[#mine + 1] = answers[i]
                    end
                    assert.are.same(oks_then_throttled(N + 1), verdicts(mine), provider)
                    local first, second, last = mine[1], mine[2], mine[N + 1]
                    local _, ms = verdict(last)
                    if provider == "zego" then
                        ms = zego_retries[1]
                    end
                    local earliest = math.floor((1 - (last.done - first.sent)) * 1000)
                    local latest = math.ceil((1 - (last.sent - first.done)) * 1000) + 1
                    assert.is_true(ms >= earliest and ms <= latest, provider .. ": " .. tostring(ms)
                        .. " not in " .. earliest .. ".." .. latest)
                    -- retrying after it is accepted; the next one waits for the second arrival
                    socket.sleep(math.max(0, last.done + ms / 1000 + 0.005 - socket.gettime()))
                    local again = timed({ { request = follow_ups[provider][1] }, { request = follow_ups[provider][2] } })
                    assert.is_true(again[2].done < second.sent + 1, "too slow to test a 1 s window")
                    assert.are.same({ "ok", "throttled" }, verdicts(again), provider)
                    local _, ms2 = verdict(again[2])
                    if provider == "zego" then
                        local retries = {}
                        for _, e in ipairs(server:log({ provider = "zego", action = ACTION.zego })) do
                            if e.verdict == "throttled" then
                                retries[#retries + 1] = e.retry_after_ms
                            end
                        end
                        ms2 = retries[2]
                    end
                    assert.is_true(ms2 >= 1 and ms2 <= math.ceil((second.done + 1 - again[2].sent) * 1000) + 1,
                        provider .. ": " .. tostring(ms2))
                end
            end)

            it("refuses one more request 1/N s after a burst of N, which a token bucket accepts", function()
                local offsets = {}
                for i = 1, N do
                    offsets[i] = 0
                end
                offsets[N + 1] = 1 / N + 0.05
                local got, elapsed = run(offsets, ALL)
                assert.is_true(elapsed < 0.9, "too slow to test a 1 s window: " .. elapsed)
                for _, provider in ipairs({ "aliyun", "zego" }) do
                    assert.are.same(oks_then_throttled(N + 1), got[provider].window, provider)
                    assert.are.same(oks(N + 1), got[provider].bucket, provider)
                end
                assert.are.equal(2 * N + 1, server:state().aliyun.counters.ResumeLiveStream.accepted)
                assert.are.equal(1, server:state().zego.counters.ForbidRTCStream.throttled)
            end)

            it("refuses N+1 requests evenly spaced slightly faster than N/s, accepts them slightly slower", function()
                local fast = {}
                for i = 1, N + 1 do
                    fast[i] = (i - 1) * 0.85 / N      -- N+1 arrivals within 0.85 s
                end
                local got, elapsed = run(fast, ALL)
                assert.is_true(elapsed < 0.98, "too slow to test a 1 s window: " .. elapsed)
                for _, provider in ipairs({ "aliyun", "zego" }) do
                    assert.are.same(oks_then_throttled(N + 1), got[provider].window, provider)
                    assert.are.same(oks(N + 1), got[provider].bucket, provider)
                end

                server:reset()
                local slow = {}
                for i = 1, N + 1 do
                    slow[i] = (i - 1) * 1.03 / N      -- the first and the last 1.03 s apart
                end
                got = run(slow, { { "aliyun", "window" }, { "zego", "window" } })
                assert.are.same(oks(N + 1), got.aliyun.window)
                assert.are.same(oks(N + 1), got.zego.window)
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
                assert.are.same(oks(2 * N), verdicts((timed(first))))
                local first_done = socket.gettime()
                -- half a second in: the window is full, so these are refused
                socket.sleep(math.max(0, t0 + 0.5 - socket.gettime()))
                local refused_at = socket.gettime()
                assert.are.same({ "throttled", "throttled" }, verdicts((timed(refused))))
                -- just over 1 s after the first burst: it has left the window; had
                -- the refused requests been counted they would still be in it
                socket.sleep(math.max(0, first_done + 1.02 - socket.gettime()))
                local answers = timed(again)
                assert.is_true(socket.gettime() < refused_at + 1, "too slow to test a 1 s window")
                local want = oks(2 * N)
                want[2 * N + 1], want[2 * N + 2] = "throttled", "throttled"
                assert.are.same(want, verdicts(answers))
                for _, provider in ipairs({ "aliyun", "zego" }) do
                    local c = server:state()[provider].counters[ACTION[provider]]
                    assert.are.equal(2 * N, c.accepted)
                    assert.are.equal(2, c.throttled)
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
                    local got, elapsed = run(offsets, ALL, other)
                    assert.is_true(elapsed < 0.9, "too slow to test a 1 s window: " .. elapsed)
                    for _, provider in ipairs({ "aliyun", "zego" }) do
                        assert.are.same(oks_then_throttled(N + 1), got[provider].window, provider)
                        assert.are.same(oks(N + 1), got[provider].bucket, provider)
                    end
                    -- the token bucket's retry-after: the time until one token is back
                    local requests = {}
                    for i = 1, N + 1 do
                        requests[i] = limited("aliyun", "bucket")
                    end
                    other:reset()
                    local answers = burst(requests, other)
                    assert.are.same(oks_then_throttled(N + 1), verdicts(answers))
                    local _, ms = verdict(answers[N + 1])
                    assert.is_true(ms >= 1 and ms <= 1000 / N, tostring(ms))
                    assert.are.equal("token_bucket", select(2, logged_retry_after("aliyun", ACTION.aliyun, other))
                        .rate_limiter)
                end)
            end)

            it("rejects an unknown rate_limiter at start, naming the key", function()
                local cases = {
                    { { aliyun = { rate_limiter = "leaky_bucket" } }, 'aliyun.rate_limiter: expected "sliding_window"'
                        .. ' or "token_bucket", got "leaky_bucket"' },
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
            assert.is_true(e.duration_ms >= 300)
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
