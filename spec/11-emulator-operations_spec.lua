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
        },
    },
    zego = {
        apps = {
            ["777"] = { secret = "test-env-secret", test_env = true },
            ["888"] = { secret = "no-cdn-resume", cdn_resume_enabled = false },
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

    -- A signed V1 request; returns status, decoded body, headers, raw body, err.
    local function live(action, params, opts)
        opts = opts or {}
        local method = opts.method or "POST"
        local q = emu.v1_request({ action = action, params = params, method = method, key = opts.key,
            secret = opts.secret, time = opts.time or now() })
        local status, body, headers, err = server:request({ method = method, provider = "aliyun", path = "/?" .. q })
        return status, decode(body), headers, body, err
    end

    local function zego(action, opts)
        opts = opts or {}
        local q = emu.zego_query({ action = action, app_id = opts.app_id, secret = opts.secret,
            time = opts.time or now(), params = opts.params, streams = opts.streams, is_test = opts.is_test })
        local status, body, headers, err = server:request({ provider = "zego", path = "/?" .. q })
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
                { { EndTime = emu.iso8601(t + 3600 + 7 * 86400 + 1) }, "InvalidParam.CodeIllegalDuration" },
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
        -- Sends pre-built requests back to back; returns the answers and the elapsed time.
        local function burst(requests)
            local answers = {}
            local t0 = socket.gettime()
            for i, r in ipairs(requests) do
                local status, body, headers = server:request(r)
                answers[i] = { status = status, body = decode(body), headers = headers }
            end
            return answers, socket.gettime() - t0
        end

        it("throttles Aliyun per account and action at the documented QPS, with x-acs-retry-after", function()
            local requests = {}
            for i = 1, 45 do
                requests[i] = { method = "POST", provider = "aliyun", path = "/?" .. emu.v1_request({
                    action = "ResumeLiveStream", params = stream("rl" .. i), time = now() }) }
            end
            local answers, elapsed = burst(requests)
            local accepted, throttled = 0, 0
            for _, a in ipairs(answers) do
                if a.status == 200 then
                    accepted = accepted + 1
                else
                    throttled = throttled + 1
                    assert.are.equal(400, a.status)
                    assert.are.equal("Throttling.User", a.body.Code)
                    assert.are.equal("Request was denied due to user flow control.", a.body.Message)
                    local ms = tonumber(a.headers["x-acs-retry-after"])
                    assert.is_true(ms >= 1 and ms <= 34, tostring(ms))
                end
            end
            assert.is_true(throttled >= 1)
            assert.is_true(accepted >= 30)
            assert.is_true(accepted <= 30 + math.ceil(30 * elapsed) + 1)
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
                end
            end
            assert.are.equal(throttled, logged)
        end)

        it("keeps buckets per account", function()
            local requests = {}
            for i = 1, 3 do
                requests[i] = { method = "POST", provider = "aliyun", path = "/?" .. emu.v1_request({
                    action = "ResumeLiveStream", params = stream("slow" .. i), key = "LTAIslow",
                    secret = "slow-secret", time = now() }) }
            end
            requests[4] = { method = "POST", provider = "aliyun", path = "/?" .. emu.v1_request({
                action = "ResumeLiveStream", params = stream("fast"), time = now() }) }
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
                requests[i] = { provider = "zego", path = "/?" .. emu.zego_query({ action = "ForbidRTCStream",
                    params = { StreamId = "z" .. i }, time = now() }) }
            end
            local answers, elapsed = burst(requests)
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
            assert.is_true(limited >= 1)
            assert.is_true(ok_count >= 20 and ok_count <= 20 + math.ceil(20 * elapsed) + 1)
            local c = server:state().zego.counters.ForbidRTCStream
            assert.are.equal(ok_count, c.accepted)
            assert.are.equal(limited, c.throttled)

            requests = {}
            for i = 1, 7 do
                requests[i] = { provider = "zego", path = "/?" .. emu.zego_query({ action = "ResumeRTCStream",
                    app_id = "777", secret = "test-env-secret", params = { StreamId = "zegotest-777-" .. i },
                    time = now() }) }
            end
            answers, elapsed = burst(requests)
            limited = 0
            for _, a in ipairs(answers) do
                if a.body.Code == 30002 then
                    limited = limited + 1
                end
            end
            assert.is_true(limited >= 1)
            assert.is_true(7 - limited <= 5 + math.ceil(5 * elapsed) + 1)
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
