-- tier: unit
-- Outcomes that never lie, and values sent the way the services read them:
-- what a report says about attempts that may have taken effect, answers that
-- are not the operation's answer, parameter smuggling, exact block-list
-- matches, Sequences the caller chose, clock corrections with a bound.
-- Fake transports only; the emulator versions are in spec/22.
local aliyun = require "streamctl.aliyun"
local zego = require "streamctl.zego"
local sequence = require "streamctl.engine.sequence"

local checks = require "spec.helpers.checks"

local NOW = 1700000000

-- A client whose transport answers with `script(request, n)` (spec/helpers/checks.lua).
local function client(mod, opts, script)
  return checks.scripted_client(mod, NOW, opts, script)
end

local reply = checks.reply

local OK_ALI = function() return reply(200, '{"RequestId":"r"}') end
local OK_ZEGO = function() return reply(200, '{"Code":0,"Message":"ok","RequestId":"z","Data":null}') end
local STREAM = { domain_name = "d.example", app_name = "live", stream_name = "s" }

describe("an outcome is unknown if any attempt may have taken effect", function()
  it("after a lost answer, a refused retry still says sent and outcome_unknown", function()
    local cli, w = client(aliyun, {}, function(_, n)
      if n == 1 then return nil, { code = "Timeout", message = "timed out", sent = true } end
      if n == 2 then return reply(200, '{"RequestId":"B","TotalNum":0,"StreamUrls":{"StreamUrl":[]}}') end
      return nil, { code = "NetworkError", message = "connection refused", sent = false }
    end)
    local _, err = cli:forbid_live_stream(STREAM)
    assert.equal("NetworkError", err.code) -- what the last attempt met
    assert.is_true(err.sent)
    assert.is_true(err.outcome_unknown)
    assert.equal(3, err.attempts)
    assert.equal(4, #w.sent) -- forbid (lost), look-up (not listed), forbid (refused), forbid (refused)
  end)

  it("an answer that cannot be read is looked up before anything is resent", function()
    for _, first in ipairs {
      function() return reply(200, "<html>gateway</html>") end,
      function() return nil, { code = "InvalidResponse", message = "response body exceeds 1048576 bytes", sent = true } end,
      function() return reply(200, "{}") end,
      function() return reply(200, "[]") end,
    } do
      local cli, w = client(aliyun, {}, function(req, n)
        if n == 1 then return first() end
        assert.equal("DescribeLiveStreamsBlockList", req.headers["x-acs-action"])
        return reply(200, '{"RequestId":"B","TotalNum":1,"StreamUrls":{"StreamUrl":["d.example/live/s"]}}')
      end)
      local res = assert(cli:forbid_live_stream(STREAM))
      assert.is_true(res.Recovered)
      assert.equal(2, #w.sent)
    end
  end)

  it("streams whose attempts may have applied are reported unknown when the retry budget runs out", function()
    local cli = client(zego, { retry = { attempts = 3, budget = { capacity = 1, refill_per_success = 0 },
                                          random = function() return 0 end } },
      function() return nil, { code = "Timeout", message = "timed out", sent = true } end)
    local ids = {}
    for i = 1, 60 do ids[i] = "s" .. i end
    local report = cli:resume_rtc_streams { stream_ids = ids, concurrency = 1 }
    assert.equal(0, report.succeeded)
    assert.equal(0, report.failed) -- not reported as failed: they may have been applied
    assert.equal(60, report.unknown)
    for _, r in ipairs(report.results) do
      assert.is_true(r.outcome_unknown)
      assert.is_true(r.error.outcome_unknown, r.stream)
    end
  end)

  it("a failure that never left the machine is not unknown", function()
    local cli = client(aliyun, { retry = false },
      function() return nil, { code = "NetworkError", message = "refused", sent = false } end)
    local _, err = cli:resume_live_stream(STREAM)
    assert.is_false(err.sent)
    assert.is_nil(err.outcome_unknown)
  end)
end)

describe("an Aliyun 200 that is not the operation's answer", function()
  it("is a response error, not a success", function()
    for body, why in pairs { ["{}"] = "no RequestId", ["[]"] = "no RequestId", ['{"Foo":1}'] = "no RequestId" } do
      local cli = client(aliyun, { retry = false }, function() return reply(200, body) end)
      local res, err = cli:call("StopLivePullToPush", { Region = "cn-shanghai", TaskId = "t" })
      assert.is_nil(res)
      assert.equal("InvalidResponse", err.code)
      assert.equal("response", err.kind)
      assert.is_true(err.outcome_unknown)
      assert.equal("HTTP 200 with JSON that is not the StopLivePullToPush answer (" .. why .. ")", err.message)
    end
  end)

  it("a create without a TaskId, or with a RetCode other than 0, is a failure", function()
    local P = { region = "cn-shanghai", start_time = NOW, end_time = NOW + 60, source_type = "url",
                source_urls = { "https://a/b" }, dst_url = "rtmp://x/y/z" }
    local cli = client(aliyun, { retry = false }, function(req)
      if req.headers["x-acs-action"] == "DescribeLivePullToPushList" then
        return reply(200, '{"RequestId":"L","Total":0,"TaskList":[]}')
      end
      return reply(200, '{"RequestId":"C","RetCode":0}')
    end)
    local _, err = cli:create_live_pull_to_push(P)
    assert.equal("HTTP 200 with JSON that is not the CreateLivePullToPush answer (no TaskId)", err.message)
    cli = client(aliyun, {}, function()
      return reply(200, '{"RequestId":"C","RetCode":1,"Description":"source unreachable","TaskId":""}')
    end)
    _, err = cli:create_live_pull_to_push(P)
    assert.equal("RetCode1", err.code)
    assert.equal("source unreachable", err.message)
    assert.equal(1, err.attempts)
    -- a refusal without a TaskId is still the RetCode's: a definite failure,
    -- neither looked up nor sent again
    local sent
    cli, sent = client(aliyun, {}, function() return reply(200, '{"RequestId":"r","RetCode":5,"Description":"bad"}') end)
    _, err = cli:create_live_pull_to_push(P)
    assert.equal("RetCode5", err.code)
    assert.equal("bad", err.message)
    assert.equal("service", err.kind)
    assert.equal("r", err.request_id)
    assert.is_false(err.retryable)
    assert.is_nil(err.outcome_unknown)
    assert.equal(1, err.attempts)
    assert.equal(1, #sent.sent)
  end)

  it("integer fields come back as integers on every Lua", function()
    local cli = client(aliyun, {}, function()
      return reply(200, '{"RequestId":"D","TaskId":"t","TaskStatus":1,"TaskInfo":{"RepeatNumber":0,"Offset":2.5}}')
    end)
    local res = assert(cli:describe_live_pull_to_push { region = "cn-shanghai", task_id = "t" })
    assert.equal("1", tostring(res.TaskStatus))
    assert.equal("0", tostring(res.TaskInfo.RepeatNumber))
    assert.equal(2.5, res.TaskInfo.Offset)
    if math.type then assert.equal("integer", math.type(res.TaskStatus)) end
  end)
end)

describe("the block-list look-up", function()
  -- A resume of app `live`, stream `match-7` whose answer was lost, and the
  -- block list the look-up finds.
  local function resume_with(listed)
    local cli, w = client(aliyun, { retry = { attempts = 2, random = function() return 0 end } }, function(req, n)
      if n == 1 then return nil, { code = "Timeout", message = "timed out", sent = true } end
      if req.headers["x-acs-action"] == "DescribeLiveStreamsBlockList" then
        return reply(200, '{"RequestId":"B","TotalNum":1,"StreamUrls":{"StreamUrl":["' .. listed .. '"]}}')
      end
      return reply(200, '{"RequestId":"R"}')
    end)
    local res = assert(cli:resume_live_stream { domain_name = "d.example", app_name = "live",
                                                stream_name = "match-7" })
    return res, w
  end

  it("a copy's refusal (SignatureNonceUsed) is not the call's RequestId when the look-up finds it applied", function()
    -- the first arrival applied and its answer was lost; libcurl sent the same signed request again (a
    -- reused connection that died unanswered), and the service refused the copy by its nonce
    local cli, w = client(aliyun, {}, function(req, n)
      if n == 1 then
        return reply(400, '{"RequestId":"COPY","Code":"SignatureNonceUsed","Message":"Specified signature nonce '
          .. 'was used already."}')
      end
      if req.headers["x-acs-action"] == "DescribeLiveStreamsBlockList" then
        return reply(200, '{"RequestId":"B","TotalNum":1,"StreamUrls":{"StreamUrl":["d.example/live/s"]}}')
      end
      return reply(200, '{"RequestId":"R"}')
    end)
    local res = assert(cli:forbid_live_stream(STREAM))
    assert.same({ Recovered = true, LookupRequestId = "B" }, res) -- no RequestId of its own: the copy's is not
    assert.equal(2, #w.sent)
  end)

  it("matches domain/app/stream exactly", function()
    local res, w = resume_with("d.example/live/match-7")
    assert.equal("R", res.RequestId) -- still listed (forbidden): resent, not "recovered"
    assert.equal(3, #w.sent)
    for _, other in ipairs { "d.example/live/match-70", "d.example/live-2/match-7", "d.example.org/live/match-7" } do
      res, w = resume_with(other)
      assert.is_true(res.Recovered, other) -- another stream: ours is not listed
      assert.equal(2, #w.sent)
    end
  end)
end)

describe("parameters", function()
  it("refuse the common parameters, whatever their case, for both providers", function()
    local cases = {
      { zego, "DescribeRTCStreamState", { StreamId = "victim", Action = "ForbidRTCStream" }, "Action" },
      { zego, "ResumeRTCStream", { StreamId = "s", appid = "1" }, "appid" },
      { zego, "ResumeRTCStream", { StreamId = "s", IsTest = "true" }, "IsTest" },
      { zego, "ResumeRTCStream", { StreamId = "s", Signature = "x" }, "Signature" },
      { aliyun, "ResumeLiveStream", { DomainName = "d", AppName = "a", StreamName = "s", LiveStreamType = "publisher",
        Action = "Forbid" }, "Action" },
      { aliyun, "ResumeLiveStream", { DomainName = "d", AppName = "a", StreamName = "s", LiveStreamType = "publisher",
        timestamp = "1" }, "timestamp" },
      { aliyun, "ResumeLiveStream", { DomainName = "d", AppName = "a", StreamName = "s", LiveStreamType = "publisher",
        SecurityToken = "t" },
        "SecurityToken" },
    }
    for _, v in ipairs { "v1", "v3" } do
      for _, c in ipairs(cases) do
        local cli, w = client(c[1], c[1] == aliyun and { signature_version = v } or {}, OK_ALI)
        local res, err = cli:call(c[2], c[3])
        assert.is_nil(res)
        assert.equal("parameter '" .. c[4] .. "' is a common parameter that streamctl sets itself; it cannot be passed",
          err.message)
        assert.equal(0, #w.sent)
      end
    end
  end)

  it("are sent the way the service reads them, or refused with nothing sent", function()
    local cli, w = client(aliyun, {}, OK_ALI)
    local P = { region = "cn-shanghai", start_time = NOW, end_time = NOW + 60, source_type = "url",
                source_urls = { "https://a/b" }, dst_url = "rtmp://x/y/z" }
    local function with(k, v) local p = {} for a, b in pairs(P) do p[a] = b end p[k] = v return p end
    local _, err = cli:create_live_pull_to_push(with("repeat_number", 1e20))
    assert.equal("field 'repeat_number' must be an integer between -(2^53 - 1) and 2^53 - 1", err.message)
    _, err = cli:create_live_pull_to_push(with("offset", "0x10"))
    assert.equal("field 'offset' must be an integer", err.message)
    _, err = cli:create_live_pull_to_push(with("offset", 2.5))
    assert.equal("field 'offset' must be an integer", err.message)
    _, err = cli:call("ResumeLiveStream", { LiveStreamType = "publisher", DomainName = { x = "1" }, AppName = "a",
                                            StreamName = "s" })
    assert.equal("parameter 'DomainName' must be an array (a table with keys 1..n) or a single value", err.message)
    _, err = cli:call("DescribeLiveStreamsPublishList", { DomainName = "d", StartTime = "2026-01-01T00:00:00Z",
                                                          EndTime = "2026-01-01T01:00:00Z", AppName = 1e-7 })
    assert.equal("parameter 'AppName' must be a number that can be written without an exponent (got 1e-07)",
      err.message)
    assert.equal(0, #w.sent)
    if math.type then -- (Lua 5.4's integers are exact at any size: a Long past 2^53 goes as its digits)
      assert(cli:call("AddShowIntoShowList", { CasterId = "c", Duration = math.maxinteger - 1 }))
      assert.equal("9223372036854775806", w.sent[1].url:match("Duration=(%d+)"))
      w.sent[1] = nil
    end
    local z, zw = client(zego, {}, OK_ZEGO)
    _, err = z:call("ForbidRTCStream", {})
    assert.equal("parameter 'StreamId' is required", err.message)
    _, err = z:call("ForbidRTCStreams", { StreamId = { x = 1 } })
    assert.equal("parameter 'StreamId' must be an array (a table with keys 1..n) or a single value", err.message)
    _, err = z:call("ResumeRTCStream", { StreamId = "s", Sequence = "1e3" })
    local rule = "parameter 'Sequence' must be decimal digits of an integer at most 9007198254740991 "
      .. "(2^53 - 1 less room for the calls after it)"
    assert.equal(rule, err.message)
    for _, bad in ipairs { "9007199254740991", "9007198254740992", "00000000000000000001" } do
      _, err = z:call("ResumeRTCStream", { StreamId = "s", Sequence = bad })
      assert.equal(rule, err.message)
    end
    assert(z:call("ResumeRTCStream", { StreamId = "s", Sequence = "9007198254740991" }))
    -- a Sequence not above the last one sent for the stream: refused before sending
    _, err = z:call("ResumeRTCStream", { StreamId = "s", Sequence = "9007198254740991" })
    assert.equal("parameter 'Sequence' (9007198254740991) must be above the last one sent for stream 's' "
      .. "(9007198254740991)", err.message)
    assert.equal("validation", err.kind)
    assert.is_false(err.sent)
    _, err = z:call("ForbidRTCStreams", { StreamId = { "t", "s" }, Sequence = "5" })
    assert.equal("parameter 'Sequence' (5) must be above the last one sent for stream 's' (9007198254740991)",
      err.message)
    -- the generated ones continue above it, with room to spare
    local r = assert(z:call("ForbidRTCStream", { StreamId = "s" }))
    assert.truthy(r)
    assert.equal(1 + 1, #zw.sent)
    assert.equal("9007198254740992", zw.sent[2].url:match("Sequence=(%d+)"))
  end)

  it("CreateLivePullToPush: the documented rules", function()
    local cli, w = client(aliyun, {}, function() return reply(200, '{"RequestId":"C","RetCode":0,"TaskId":"T"}') end)
    local P = { region = "cn-shanghai", start_time = NOW, end_time = NOW + 60, source_type = "live",
                source_urls = { "rtmp://src/a/b" }, dst_url = "RTMP://x/y/z" }
    local _, err = cli:create_live_pull_to_push(P)
    assert.equal("field 'source_protocol' is required when source_type is 'live'", err.message)
    P.source_protocol, P.region_id, P.task_name = "rtmp", "cn-shanghai", ""
    assert(cli:create_live_pull_to_push(P)) -- upper-case scheme, RegionId, an empty TaskName
    local q = w.sent[1].url
    assert.truthy(q:find("&RegionId=cn-shanghai&", 1, true))
    assert.truthy(q:find("&TaskName=&", 1, true) or q:find("&TaskName=$"))
    assert.truthy(q:find("SourceProtocol=rtmp", 1, true))
    -- for vod/url sources SourceProtocol is ignored, as the service does, and not sent
    P.source_type, P.source_urls = "url", { "https://a/b" }
    assert(cli:create_live_pull_to_push(P))
    assert.falsy(w.sent[2].url:find("SourceProtocol", 1, true))
    -- DstUrl's 2,000 counts characters, not bytes
    P.dst_url = "rtmp://x/" .. ("é"):rep(1991)
    assert(cli:create_live_pull_to_push(P))
    P.dst_url = "rtmp://x/" .. ("é"):rep(1992)
    _, err = cli:create_live_pull_to_push(P)
    assert.equal("field 'dst_url' must be at most 2000 characters (got 2001)", err.message)
  end)

  it("a nonce source is held to the provider's rule, nothing sent otherwise", function()
    for _, case in ipairs {
      { zego, function() return nil end, "the nonce source returned a nil, which is not 16 hex characters" },
      { zego, function() return "xyz" end, "the nonce source returned a value that is not 16 hex characters" },
      { aliyun, function() return "a b" end,
        "the nonce source returned a value that is not 1..64 of A-Z a-z 0-9 - _ . ~" },
    } do
      local cli, w = client(case[1], { nonce = case[2] }, OK_ALI)
      local _, err = cli:call(case[1] == zego and "ResumeRTCStream" or "ResumeLiveStream",
        case[1] == zego and { StreamId = "s" }
          or { DomainName = "d", AppName = "a", StreamName = "s", LiveStreamType = "publisher" })
      assert.equal(case[3], err.message)
      assert.equal(0, #w.sent)
      local req, perr = cli:prepare(case[1] == zego and "ResumeCDNLiveStream" or "ResumeLiveStream",
        case[1] == zego and { StreamId = "s" }
          or { DomainName = "d", AppName = "a", StreamName = "s", LiveStreamType = "publisher" })
      assert.is_nil(req)
      assert.equal(case[3], perr.message)
    end
  end)
end)

describe("ZEGO", function()
  it("records a Sequence the caller chose: later calls carry larger ones", function()
    local z, w = client(zego, {}, OK_ZEGO)
    local mine = (NOW + 60) * 1000
    assert(z:forbid_rtc_stream { stream_id = "s", sequence = mine })
    assert(z:resume_rtc_stream { stream_id = "s" })
    local s1 = tonumber(w.sent[1].url:match("Sequence=(%d+)"))
    local s2 = tonumber(w.sent[2].url:match("Sequence=(%d+)"))
    assert.equal(mine, s1)
    assert.is_true(s2 > s1)
  end)

  it("classifies ResumeCDNLiveStream's documented codes", function()
    for code, kind in pairs { [1] = "service", [2] = "validation", [3] = "auth" } do
      local z = client(zego, {}, function()
        return reply(200, '{"Code":' .. code .. ',"Message":"m","RequestId":"q"}')
      end)
      local _, err = z:resume_cdn_live_stream { stream_id = "s" }
      assert.equal(kind, err.kind)
      assert.equal(code, err.code)
    end
  end)

  it("forgets per-stream Sequences that can no longer matter, keeping them increasing", function()
    local t = 1700000000000
    local g = sequence.new { clock_ms = function() return t end }
    local store = g.store
    for i = 1, 5000 do assert(g:next_for { "s" .. i }) end
    t = t + sequence.KEEP_MS + 1
    for i = 1, 2048 do assert(g:next_for { "n" .. i }) end
    local n = 0
    for i = 1, 5000 do if store:get("s" .. i) then n = n + 1 end end
    assert.equal(0, n)
    -- a pruned stream still gets a value above the one it had
    assert.is_true(tonumber(g:next_for { "s1" }) > 1700000000000)
  end)
end)

describe("clock correction", function()
  local function skewed(date)
    return client(aliyun, {}, function(_, n)
      if n == 1 then
        return { status = 400, headers = { date = date },
                 body = '{"RequestId":"e","Code":"InvalidTimeStamp.Expired","Message":"m"}' }
      end
      return reply(200, '{"RequestId":"ok"}')
    end)
  end

  it("is made within a day of the local clock", function()
    local cli, w = skewed("Wed, 15 Nov 2023 00:13:20 GMT") -- NOW + 2 h
    assert(cli:resume_live_stream(STREAM))
    assert.equal(7200, cli.clock_offset)
    assert.equal(2, #w.sent)
  end)

  it("is never made from a Date that cannot be true", function()
    local cli, w = skewed("Fri, 31 Dec 9999 23:59:59 GMT")
    local _, err = cli:resume_live_stream(STREAM)
    assert.equal(0, cli.clock_offset)
    assert.equal(1, #w.sent)
    assert.equal("InvalidTimeStamp.Expired", err.code)
    assert.matches("the clock was not corrected: the response's Date is more than a day from the local clock",
      err.message, 1, true)
  end)
end)

describe("order after an unknown outcome", function()
  -- One stream on a fake server: the first forbid is held 3 s and applied
  -- after the client gave up on it (a straggler).
  -- (the client's is the only decider on the stream, and says so: its repair of the straggler,
  -- 10 s after the resume was decided, is then sent; without, it expires: spec/pipeline/28)
  local function straggler_world(settle_ms, shared)
    local w = { mono = 0, sent = {}, events = {}, forbidden = false }
    local function run_events()
      table.sort(w.events, function(a, b) return a.at < b.at end)
      while w.events[1] and w.events[1].at <= w.mono do table.remove(w.events, 1).fn() end
    end
    local cli = assert(aliyun.new {
      access_key_id = "AK", access_key_secret = "sk", settle_ms = settle_ms, decisions_shared = shared ~= false,
      clock = function() return NOW + w.mono end, monotonic = function() return w.mono end,
      sleep = function(s) w.mono = w.mono + s run_events() end,
      retry = { random = function() return 0 end },
      transport = function(req)
        run_events()
        local action = req.headers["x-acs-action"]
        w.sent[#w.sent + 1] = action
        if action == "ForbidLiveStream" then
          if #w.sent == 1 then
            w.events[#w.events + 1] = { at = w.mono + 3, fn = function() w.forbidden = true end }
            w.mono = w.mono + 1 -- the client's timeout
            return nil, { code = "Timeout", message = "timed out after 1000 ms", sent = true }
          end
          w.forbidden = true
        elseif action == "ResumeLiveStream" then
          w.forbidden = false
        elseif action == "DescribeLiveStreamsBlockList" then
          return reply(200, '{"RequestId":"B","TotalNum":' .. (w.forbidden and 1 or 0) .. ',"StreamUrls":{"StreamUrl":['
            .. (w.forbidden and '"d.example/live/s"' or "") .. ']}}')
        end
        return reply(200, '{"RequestId":"' .. action .. '"}')
      end,
    })
    return w, cli
  end

  it("a resume after a forbid whose first attempt was lost waits for it to settle and re-applies", function()
    local w, cli = straggler_world(nil) -- the default: 10 s
    assert(cli:forbid_live_stream(STREAM))
    local res = assert(cli:resume_live_stream(STREAM))
    assert.equal("ResumeLiveStream", res.RequestId)
    assert.is_false(w.forbidden) -- the stream ends as the last call intended
    assert.same({ "ForbidLiveStream", "DescribeLiveStreamsBlockList", "ForbidLiveStream", "ResumeLiveStream",
                  "DescribeLiveStreamsBlockList", "ResumeLiveStream" }, w.sent)
    assert.is_true(w.mono >= 10) -- reported only once the lost forbid could no longer land
  end)

  it("undeclared, the repair 10 s after the resume was decided is not sent: Expired, the straggler said", function()
    local w, cli = straggler_world(nil, false)
    assert(cli:forbid_live_stream(STREAM))
    local res, err = cli:resume_live_stream(STREAM)
    assert.is_nil(res)
    assert.equal("Expired", err.code)
    assert.is_true(w.forbidden) -- (the straggler landed; the resume's failure says its repair was not sent)
    assert.same({ "ForbidLiveStream", "DescribeLiveStreamsBlockList", "ForbidLiveStream", "ResumeLiveStream",
                  "DescribeLiveStreamsBlockList" }, w.sent)
  end)

  it("without a settle time the straggler wins: what the guarantee prevents", function()
    local w, cli = straggler_world(0)
    assert(cli:forbid_live_stream(STREAM))
    assert(cli:resume_live_stream(STREAM))
    cli._engine.io.sleep(5) -- time passes; the held forbid lands
    assert.is_true(w.forbidden)
  end)

  it("a later call of the same action does not wait", function()
    local w, cli = straggler_world(nil)
    assert(cli:forbid_live_stream(STREAM))
    local t = w.mono
    assert(cli:forbid_live_stream(STREAM))
    assert.is_true(w.mono - t < 1)
  end)
end)

describe("the rest of the pull-to-push family", function()
  local function answering(script)
    return client(aliyun, {}, script)
  end

  it("update, restart and delete send exactly their fields, paced at 10/s", function()
    local cli, w = answering(function() return reply(200, '{"RequestId":"r","TaskId":"t"}') end)
    assert(cli:update_live_pull_to_push { region = "cn-shanghai", task_id = "t", callback_url = "https://cb.example/x",
                                          end_time = NOW + 60 })
    assert(cli:restart_live_pull_to_push { region = "cn-shanghai", task_id = "t" })
    assert(cli:delete_live_pull_to_push { region = "cn-shanghai", task_id = "t", region_id = "cn-shanghai" })
    assert.equal("https://live.aliyuncs.com/?CallbackUrl=https%3A%2F%2Fcb.example%2Fx&EndTime=2023-11-14T22%3A14%3A20Z"
      .. "&Region=cn-shanghai&TaskId=t", w.sent[1].url)
    assert.equal("POST", w.sent[1].method)
    assert.equal("https://live.aliyuncs.com/?Region=cn-shanghai&TaskId=t", w.sent[2].url)
    assert.equal("https://live.aliyuncs.com/?Region=cn-shanghai&RegionId=cn-shanghai&TaskId=t", w.sent[3].url)
    for _, a in ipairs { "UpdateLivePullToPush", "RestartLivePullToPush", "DeleteLivePullToPush" } do
      assert.near(10 / 1.05, cli:rate_for(a), 1e-12, a)
    end
    local _, err = cli:update_live_pull_to_push { region = "cn-shanghai", task_id = "t" }
    assert.equal("aliyun.update_live_pull_to_push needs at least one setting to change", err.message)
    _, err = cli:update_live_pull_to_push { region = "cn-shanghai", task_id = "t", offset = 2.5 }
    assert.equal("field 'offset' must be an integer", err.message)
    -- what the operation does not take (its API model: times, sources, FileIndex, Offset, RepeatNumber, CallbackUrl)
    _, err = cli:update_live_pull_to_push { region = "cn-shanghai", task_id = "t", dst_url = "rtmp://x/y/z" }
    assert.equal("field 'dst_url' is not a field of aliyun.update_live_pull_to_push", err.message)
    _, err = cli:delete_live_pull_to_push { region = "cn-shanghai" }
    assert.equal("field 'task_id' is required", err.message)
  end)

  it("recover after an unknown outcome: an update by the task's settings, a restart if it runs", function()
    local cli, w = answering(function(req, n)
      if n == 1 then return nil, { code = "Timeout", message = "t", sent = true } end
      assert.equal("DescribeLivePullToPush", req.headers["x-acs-action"])
      return reply(200, '{"RequestId":"D","TaskId":"t","TaskStatus":1,"TaskInfo":{"CallbackURL":"https://cb/x"}}')
    end)
    assert.same({ LookupRequestId = "D", TaskId = "t", Recovered = true },
      assert(cli:update_live_pull_to_push { region = "cn-shanghai", task_id = "t", callback_url = "https://cb/x" }))
    assert.equal(2, #w.sent)
    cli, w = answering(function(req, n)
      if n == 1 then return nil, { code = "Timeout", message = "t", sent = true } end
      if n <= 3 then -- (at once, and again once the lost restart has settled: a restart is no idempotent call)
        assert.equal("DescribeLivePullToPush", req.headers["x-acs-action"])
        return reply(200, '{"RequestId":"D","TaskId":"t","TaskStatus":3,"TaskInfo":{}}') -- still stopped
      end
      return reply(200, '{"RequestId":"R","TaskId":"t"}')
    end)
    assert.equal("R", assert(cli:restart_live_pull_to_push { region = "cn-shanghai", task_id = "t" }).RequestId)
    assert.equal(4, #w.sent) -- not running: restarted once more
  end)

  it("a delete answered 'no such task' after a lost answer is done", function()
    local cli, w = answering(function(_, n)
      if n == 1 then return nil, { code = "Timeout", message = "t", sent = true } end
      return reply(400, '{"RequestId":"e","Code":"CodeTaskNotExist","Message":"m"}')
    end)
    assert.same({ RequestId = "e", Recovered = true },
      assert(cli:delete_live_pull_to_push { region = "cn-shanghai", task_id = "t" }))
    assert.equal(2, #w.sent)
  end)
end)
