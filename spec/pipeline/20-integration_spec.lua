-- The clients against the emulator: every operation over HTTP (V3 and V1) and
-- over HTTPS with the emulator's CA, an untrusted CA refused, and every error
-- the providers answer, each read back from the emulator's state and log.
local emu = require "spec.helpers.emulator"
local streamctl = require "streamctl"
local core = require "streamctl.core"

local ALI = { access_key_id = "LTAIemulatorKey", access_key_secret = "emulator-secret" }
local ZEGO = { app_id = 1234567890, server_secret = "0123456789abcdef0123456789abcdef" }
local FAST = { base_ms = 1, throttle_base_ms = 1 }
-- (every call here must answer: the default timeouts times process.slowdown(), for the TLS handshakes of
-- valgrind's and ASan's runs on a busy machine)
local SLOW = require("spec.helpers.process").slowdown()
local TIMEOUTS = { timeout_ms = 10000 * SLOW, connect_timeout_ms = 5000 * SLOW }

local function merge(...)
  local out = {}
  for i = 1, select("#", ...) do
    for k, v in pairs((select(i, ...))) do out[k] = v end
  end
  return out
end

describe("clients against the emulator", function()
  local server

  lazy_setup(function()
    server = emu.start { config = { aliyun = { accounts = {
      -- a RAM user whose policy allows resuming only
      LTAIresumeOnly = { secret = "resume-secret", actions = { "live:ResumeLiveStream" } },
    } } } }
  end)

  lazy_teardown(function()
    if server then server:stop() end
  end)

  before_each(function()
    server:reset()
  end)

  local function ali(opts)
    return assert(streamctl.aliyun.new(merge(ALI, TIMEOUTS, { endpoint = server.aliyun_url, retry = FAST }, opts or {})))
  end

  local function zc(opts)
    return assert(streamctl.zego.new(merge(ZEGO, TIMEOUTS, { endpoint = server.zego_url, retry = FAST }, opts or {})))
  end

  local TRANSPORTS = {
    { "V3 over HTTP", function() return {} end },
    { "V1 over HTTP", function() return { signature_version = "v1" } end },
    { "V3 over HTTPS", function() return { endpoint = server.aliyun_tls_url, ca_file = server.ca_file } end },
  }

  for _, t in ipairs(TRANSPORTS) do
    describe("Aliyun, " .. t[1], function()
      it("forbids, lists and resumes a stream", function()
        local cli = ali(t[2]())
        assert(cli:forbid_live_stream { domain_name = "push.example.com", app_name = "live", stream_name = "s1",
                                        resume_time = os.time() + 600, oneshot = false })
        local s = server:state().aliyun.streams["push.example.com/live/s1"]
        assert.equal("forbidden", s.status)
        local list = assert(cli:describe_live_streams_block_list { domain_name = "push.example.com" })
        assert.same({ "push.example.com/live/s1" }, list.StreamUrls.StreamUrl)
        assert(cli:resume_live_stream { domain_name = "push.example.com", app_name = "live", stream_name = "s1" })
        assert.equal("normal", server:state().aliyun.streams["push.example.com/live/s1"].status)
        cli:close()
      end)

      it("creates, describes, finds, stops a pull-to-push task, and refuses what the service refuses", function()
        local cli = ali(t[2]())
        local now = os.time()
        local fields = { region = "cn-shanghai", task_name = "t1", source_type = "vod",
          source_urls = { "https://cdn.example.com/a.mp4", "https://cdn.example.com/b.mp4" },
          dst_url = "rtmp://push.example.com/live/relay", start_time = now, end_time = now + 600 }
        local created = assert(cli:create_live_pull_to_push(fields))
        assert.is_string(created.TaskId)
        local d = assert(cli:describe_live_pull_to_push { region = "cn-shanghai", task_id = created.TaskId })
        assert.equal("rtmp://push.example.com/live/relay", d.TaskInfo.DstUrl)
        assert.same({ "https://cdn.example.com/a.mp4", "https://cdn.example.com/b.mp4" }, d.TaskInfo.SourceUrls)
        local l = assert(cli:describe_live_pull_to_push_list { region = "cn-shanghai", dst_url = "relay" })
        assert.equal(1, l.Total)
        assert.equal(created.TaskId, l.TaskList[1].TaskId)
        local _, dup = cli:create_live_pull_to_push(fields)
        assert.equal("CodeConfigAlreadyExists", dup.code)
        assert(cli:stop_live_pull_to_push { region = "cn-shanghai", task_id = created.TaskId })
        assert.equal(3, server:state().aliyun.tasks[created.TaskId].TaskStatus)
        local _, again = cli:stop_live_pull_to_push { region = "cn-shanghai", task_id = created.TaskId }
        assert.equal("CodeTaskHasStopped", again.code)
        local _, missing = cli:stop_live_pull_to_push { region = "cn-shanghai", task_id = "no-such-task" }
        assert.equal("CodeTaskNotExist", missing.code)
        local creates = server:log { action = "CreateLivePullToPush" }
        assert.equal(2, #creates)
        assert.same({ "ok", "error" }, { creates[1].verdict, creates[2].verdict })
        local n = 0
        for _ in pairs(server:state().aliyun.tasks) do n = n + 1 end
        assert.equal(1, n)
        cli:close()
      end)
    end)
  end

  describe("Aliyun errors", function()
    it("refuses an untrusted CA before anything is sent", function()
      local cli = ali { endpoint = server.aliyun_tls_url }
      local _, err = cli:resume_live_stream { domain_name = "d", app_name = "a", stream_name = "s" }
      assert.equal("TLSError", err.code)
      assert.is_false(err.retryable)
      assert.equal(0, #server:log {})
    end)

    it("reports a wrong secret as SignatureDoesNotMatch, once, without the secret", function()
      local cli = ali { access_key_secret = "not-the-secret" }
      local _, err = cli:resume_live_stream { domain_name = "d", app_name = "a", stream_name = "s" }
      assert.equal("SignatureDoesNotMatch", err.code)
      assert.equal("signature", err.kind)
      assert.equal(1, err.attempts)
      assert.is_nil(tostring(err):find("not-the-secret", 1, true))
      assert.equal(1, #server:log {})
    end)

    it("reports Forbidden.RAM once per stream, never retried, and the allowed action works", function()
      local cli = ali { access_key_id = "LTAIresumeOnly", access_key_secret = "resume-secret" }
      local S = { domain_name = "d", app_name = "a", stream_name = "s" }
      local _, err = cli:forbid_live_stream(S)
      assert.equal("Forbidden.RAM", err.code)
      assert.equal("auth", err.kind)
      assert.equal(403, err.http_status)
      assert.is_false(err.retryable)
      assert.is_nil(err.outcome_unknown)
      assert.equal(1, err.attempts)
      assert.equal("streamctl: aliyun ForbidLiveStream: Forbidden.RAM (HTTP 403): User not authorized to operate on "
        .. "the specified resource, or this API doesn't support RAM. [RequestId " .. err.request_id .. "]",
        tostring(err))
      local report = cli:forbid_live_streams { domain_name = "d", app_name = "a", stream_names = { "x", "y" } }
      assert.equal(2, report.failed)
      assert.equal(0, report.unknown)
      for _, r in ipairs(report.results) do assert.equal("Forbidden.RAM", r.error.code) end
      assert.equal(3, #server:log { action = "ForbidLiveStream" })
      assert(cli:resume_live_stream(S))
      assert.is_nil(server:state().aliyun.streams["d/a/x"])
    end)

    it("takes a create's non-zero RetCode as a definite failure: sent once, nothing looked up", function()
      server:faults { action = "CreateLivePullToPush", kind = "code", code = 5, message = "bad" }
      local _, err = ali():create_live_pull_to_push { region = "cn-shanghai", start_time = os.time() + 60,
        end_time = os.time() + 3600, source_type = "url", source_urls = { "https://a.example/x.mp4" },
        dst_url = "rtmp://p.example/live/x" }
      assert.equal("RetCode5", err.code)
      assert.equal("bad", err.message)
      assert.is_nil(err.outcome_unknown)
      assert.equal(1, err.attempts)
      assert.equal(1, #server:log {})
    end)

    it("reports an unknown key", function()
      local _, err = ali { access_key_id = "LTAInobody" }:resume_live_stream { domain_name = "d", app_name = "a",
                                                                            stream_name = "s" }
      assert.equal("InvalidAccessKeyId.NotFound", err.code)
      assert.equal(404, err.http_status)
    end)

    it("corrects a skewed clock from the Date header and succeeds", function()
      local cli = ali { clock = function() return core.now() - 3600 end }
      assert(cli:resume_live_stream { domain_name = "d", app_name = "a", stream_name = "s" })
      local log = server:log {}
      assert.equal(2, #log)
      assert.equal("InvalidTimeStamp.Expired", log[1].code)
      assert.equal("ok", log[2].verdict)
      assert.is_true(math.abs(cli.clock_offset - 3600) <= 2)
      local _, err = ali { clock = function() return core.now() - 3600 end, retry = false }
        :resume_live_stream { domain_name = "d", app_name = "a", stream_name = "s" }
      assert.equal("InvalidTimeStamp.Expired", err.code)
    end)

    it("reports a reused nonce", function()
      local cli = ali { nonce = function() return "always-the-same" end }
      assert(cli:resume_live_stream { domain_name = "d", app_name = "a", stream_name = "s" })
      local _, err = cli:resume_live_stream { domain_name = "d", app_name = "a", stream_name = "s" }
      assert.equal("SignatureNonceUsed", err.code)
      assert.equal("duplicate", err.kind)
      assert.is_true(err.outcome_unknown)
    end)

    it("is throttled twice with x-acs-retry-after, sends again and succeeds", function()
      -- (that each retry waits the retry-after is asserted in virtual time: spec/engine/10-pacing-time,
      -- "a provider's retry-after")
      server:faults { kind = "throttle", action = "ResumeLiveStream", count = 2, retry_after_ms = 30 }
      local cli = ali()
      assert(cli:resume_live_stream { domain_name = "d", app_name = "a", stream_name = "s" })
      local verdicts = {}
      for i, e in ipairs(server:log {}) do verdicts[i] = e.verdict end
      assert.same({ "fault", "fault", "ok" }, verdicts)
    end)

    it("is throttled by the emulator's own limiter when pacing is off, and recovers", function()
      -- Not by outrunning the published 30/s (45 unpaced streams do that only on a machine that sends
      -- them fast enough): the account's cap is one call in any 2 s from now (a run-time qps of 0.5,
      -- docs/emulator.md "Run-time caps"), and three streams sent at once land within 2 s on any
      -- machine, so two are throttled by the limiter, with its retry-after, and must recover.
      server:control("POST", "qps", { account = "LTAIemulatorKey", action = "ResumeLiveStream", qps = 0.5 })
      -- (A budget large enough for every throttled stream; the default 10 would stop the storm early.)
      local cli = ali { rate_limits = false, retry = { attempts = 10, throttle_base_ms = 50, cap_ms = 2000,
                                                       budget = { capacity = 100, refill_per_success = 0.1 } } }
      local report = cli:resume_live_streams { domain_name = "d", app_name = "a", stream_names = { "s1", "s2", "s3" },
                                               concurrency = 3 }
      assert.equal(3, report.succeeded)
      local c = server:state().aliyun.counters.ResumeLiveStream
      assert.equal(3, c.accepted)
      assert.is_true(c.throttled > 0)
    end)

    it("paces by itself and is never throttled", function()
      local names = {}
      for i = 1, 45 do names[i] = "s" .. i end
      local report = ali():resume_live_streams { domain_name = "d", app_name = "a", stream_names = names }
      assert.equal(45, report.succeeded)
      assert.equal(0, server:state().aliyun.counters.ResumeLiveStream.throttled)
    end)
  end)

  describe("ZEGO", function()
    local function app_state()
      return server:state().zego.streams["1234567890"] or {}
    end

    for _, t in ipairs { { "HTTP", function() return {} end },
                         { "HTTPS", function() return { endpoint = server.zego_tls_url, ca_file = server.ca_file } end } } do
      it("forbids and resumes RTC and CDN streams over " .. t[1], function()
        local z = zc(t[2]())
        assert(z:forbid_rtc_stream { stream_id = "a" })
        assert.equal("forbidden", app_state().a.rtc)
        local report = z:forbid_rtc_streams { stream_ids = { "b", "c" } }
        assert.equal(2, report.succeeded)
        assert.equal("forbidden", app_state().c.rtc)
        local st = assert(z:describe_rtc_stream_state { stream_id = "a" })
        assert.equal(0, st.Code)
        report = z:resume_rtc_streams { stream_ids = { "a", "b", "c" } }
        assert.equal(3, report.succeeded)
        for _, id in ipairs { "a", "b", "c" } do assert.equal("normal", app_state()[id].rtc) end
        assert(z:resume_rtc_stream { stream_id = "a" })
        assert(z:forbid_cdn_live_stream { stream_id = "a" })
        assert.equal("forbidden", app_state().a.cdn)
        local res = assert(z:resume_cdn_live_stream { stream_id = "a" })
        assert.equal("normal", app_state().a.cdn)
        assert.is_table(res.Data)
        z:close()
      end)
    end

    it("reports a wrong secret (100000005) and an unknown AppId (30005)", function()
      local _, err = zc { server_secret = "wrong" }:resume_rtc_stream { stream_id = "a" }
      assert.equal(100000005, err.code)
      assert.equal(1, err.attempts)
      _, err = zc { app_id = 42 }:resume_rtc_stream { stream_id = "a" }
      assert.equal(30005, err.code)
    end)

    it("the CDN actions' own codes: 3 (a wrong secret) and 1 (failed) are not retried", function()
      local _, err = zc { server_secret = "wrong" }:resume_cdn_live_stream { stream_id = "a" }
      assert.equal(3, err.code)
      assert.equal("auth", err.kind)
      assert.equal(1, err.attempts)
      server:faults { provider = "zego", action = "ForbidCDNLiveStream", kind = "code", code = 1 }
      _, err = zc():forbid_cdn_live_stream { stream_id = "a" }
      assert.equal(1, err.code)
      assert.equal("service", err.kind)
      assert.equal(1, err.attempts)
      -- (an empty StreamId is refused before sending now, as resume_cdn_live_stream refuses it: the code injected)
      server:faults { provider = "zego", action = "ResumeCDNLiveStream", kind = "code", code = 2 }
      _, err = zc():call("ResumeCDNLiveStream", { StreamId = "a" })
      assert.equal(2, err.code)
      assert.equal("validation", err.kind)
    end)

    it("retries ResumeRTCStreams' 42004 (failed, please retry)", function()
      server:faults { provider = "zego", action = "ResumeRTCStreams", kind = "code", code = 42004 }
      local report = zc():resume_rtc_streams { stream_ids = { "a", "b" } }
      assert.equal(2, report.succeeded)
      assert.equal(2, report.results[1].attempts)
      local log = server:log { action = "ResumeRTCStreams" }
      assert.equal(2, #log)
      assert.equal(42004, log[1].code)
      assert.equal("ok", log[2].verdict)
    end)

    it("corrects a skewed clock (100000004) and succeeds", function()
      local z = zc { clock = function() return core.now() - 3600 end }
      assert(z:resume_rtc_stream { stream_id = "a" })
      local log = server:log {}
      assert.equal(2, #log)
      assert.equal(100000004, log[1].code)
    end)

    it("refuses an untrusted CA", function()
      local _, err = zc { endpoint = server.zego_tls_url }:resume_rtc_stream { stream_id = "a" }
      assert.equal("TLSError", err.code)
    end)
  end)
end)
