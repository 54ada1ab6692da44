-- tier: unit
-- The command's safety in a Lua batch (issue 68): the blast-radius guard
-- (`guard`), the block list's places (`check_places`) and the audit log
-- (`audit = streamctl.operator.audit.log{...}`), by options, each refusing
-- before anything is sent and each refusal written to the log; the log's
-- records the command's own, read back by `streamctl audit`. A transport
-- written here plays the service and looks at the log as each request leaves.
local cjson = require "cjson"
local aliyun = require "streamctl.aliyun"
local zego = require "streamctl.zego"
local audit = require "streamctl.operator.audit"
local acs_request = require "spec.helpers.acs_request"
local checks = require "spec.helpers.checks"
local process = require "spec.helpers.process"

local NOW = 1788170400 -- 2026-08-31T10:00:00Z
local DIR = process.temp_dir()
local ENV = { USER = "cron" }
local function getenv(name) return ENV[name] end

local function lines_of(path)
  local out = {}
  for l in (process.read_file(path) or ""):gmatch("[^\n]+") do out[#out + 1] = l end
  return out
end

-- A log's line with what changes from run to run (its time, run id, host) made fixed.
local function fixed(line)
  return (line:gsub('"time":"[^"]*"', '"time":"T"'):gsub('"run":"%x+"', '"run":"R"'):gsub('"host":"[^"]*"',
    '"host":"H"'))
end

local n = 0
local function new_log()
  n = n + 1
  local path = DIR .. "/audit-" .. n .. ".jsonl"
  return assert(audit.log { path = path, getenv = getenv }), path
end

local function zego_client(opts)
  return checks.scripted_client(zego, NOW, opts, function(_, i)
    return checks.reply(200, '{"Code":0,"Message":"ok","RequestId":"z' .. i .. '"}')
  end)
end

local function ids(count, fmt)
  local out = {}
  for i = 1, count do out[i] = (fmt or "s%d"):format(i) end
  return out
end

describe("a batch's guard (guard = true or its limits)", function()
  it("refuses 101 distinct forbids, nothing sent, and takes 100 with their repeats", function()
    local z, w = zego_client()
    local report, err = z:forbid_rtc_streams { stream_ids = ids(101), guard = true }
    assert.is_nil(report)
    assert.equal("streamctl: zego ForbidRTCStreams: TooManyStreams: forbidding 101 streams in one run is more than "
      .. "max_forbid (100): nothing was sent; guard = { confirm = true } to send them, or a larger guard.max_forbid",
      tostring(err))
    assert.same({ count = 101, max_forbid = 100, confirmed = false, allowed = false }, err.guard)
    assert.equal("guard = { confirm = true } to send them, or a larger guard.max_forbid", err.hint)
    assert.is_false(err.sent)
    assert.equal(0, #w.sent)
    local list = ids(100)
    for i = 1, 20 do list[#list + 1] = "s" .. i end -- (repeats are not counted twice)
    report = assert(z:forbid_rtc_streams { stream_ids = list, guard = true })
    assert.equal(100, report.succeeded)
    assert.equal(5, #w.sent)
  end)

  it("guards resumes by max_resume; confirm sends them; without the option nothing is guarded", function()
    local a, w = checks.scripted_client(aliyun, NOW, {}, function(_, i)
      return checks.reply(200, '{"RequestId":"r' .. i .. '"}')
    end)
    local fields = { domain_name = "d.example.com", app_name = "live", stream_names = { "a", "b", "c" },
                     guard = { max_resume = 2 } }
    local report, err = a:resume_live_streams(fields)
    assert.is_nil(report)
    assert.equal("streamctl: aliyun ResumeLiveStream: TooManyStreams: resuming 3 streams in one run is more than "
      .. "max_resume (2): nothing was sent; guard = { confirm = true } to send them, or a larger guard.max_resume",
      tostring(err))
    assert.equal("guard = { confirm = true } to send them, or a larger guard.max_resume", err.hint)
    assert.equal(0, #w.sent)
    fields.guard = { max_resume = 2, confirm = true }
    assert.equal(3, assert(a:resume_live_streams(fields)).succeeded)
    fields.guard = nil
    fields.stream_names = ids(150)
    assert.equal(150, assert(a:resume_live_streams(fields)).succeeded)
    assert.equal(153, #w.sent)
  end)

  it("refuses a list read as it goes: it cannot be counted before sending", function()
    local z, w = zego_client()
    local _, err = z:forbid_rtc_streams { stream_ids = function() return nil end, guard = true }
    assert.equal("streamctl: zego ForbidRTCStreams: InvalidParameter: field 'guard' needs 'stream_ids' as a table: "
      .. "a list read as it goes cannot be counted before sending", tostring(err))
    assert.equal(0, #w.sent)
  end)
end)

describe("a batch's audit log (audit = streamctl.operator.audit.log{...})", function()
  it("writes the intent before the first request leaves and the outcome after, streams named whole", function()
    local log, path = new_log()
    local seen_at_first
    local a = checks.scripted_client(aliyun, NOW, {}, function(_, i)
      if i == 1 then seen_at_first = lines_of(path) end
      if i == 2 then return checks.reply(400, '{"RequestId":"r2","Code":"InvalidStream.NotFound","Message":"x"}') end
      return checks.reply(200, '{"RequestId":"r' .. i .. '"}')
    end)
    local report = assert(a:forbid_live_streams { domain_name = "d.example.com", app_name = "live",
      stream_names = { "a", "b", "a" }, resume_time = NOW + 3600, guard = true, audit = log, concurrency = 1 })
    assert.equal(1, report.succeeded)
    assert.equal(1, report.failed)
    assert.is_nil(report.audit_error)
    local intent = '{"time":"T","record":"intent","run":"R","user":"cron","host":"H","provider":"aliyun",'
      .. '"credential":"AK","command":"aliyun.forbid_live_streams","actions":["ForbidLiveStream"],'
      .. '"guard":{"allowed":true,"confirmed":false,"count":2,"max_forbid":100},"count":2,"digest":"'
      .. audit.digest { "d.example.com/live/a", "d.example.com/live/b" } .. '","streams":['
      .. '{"stream":"d.example.com/live/a","action":"ForbidLiveStream"},'
      .. '{"stream":"d.example.com/live/b","action":"ForbidLiveStream"}]}'
    assert.equal(1, #seen_at_first)
    assert.equal(intent, fixed(seen_at_first[1]))
    local lines = lines_of(path)
    assert.equal(2, #lines)
    assert.equal(intent, fixed(lines[1]))
    assert.equal('{"time":"T","record":"outcome","run":"R","user":"cron","host":"H","provider":"aliyun",'
      .. '"credential":"AK","command":"aliyun.forbid_live_streams","actions":["ForbidLiveStream"],'
      .. '"guard":{"allowed":true,"confirmed":false,"count":2,"max_forbid":100},"outcome":"failed","calls":2,'
      .. '"throttled":0,"counts":{"failed":1,"ok":1},"request_ids":["r1","r2"],"unknown":[],"streams":['
      .. '{"stream":"d.example.com/live/a","action":"ForbidLiveStream","outcome":"ok","request_id":"r1",'
      .. '"ends":"2026-08-31T11:00:00Z","ends_by":"resume_time"},'
      .. '{"stream":"d.example.com/live/b","action":"ForbidLiveStream","outcome":"failed",'
      .. '"code":"InvalidStream.NotFound","request_id":"r2"}]}', fixed(lines[2]))
    assert.equal(cjson.decode(lines[1]).run, cjson.decode(lines[2]).run)
    assert.is_nil(cjson.decode(lines[1]).trace_id) -- (no trace: none named)
  end)

  it("names the batch's trace in each record, the one its requests' traceparent names", function()
    local log, path = new_log()
    local sent = {}
    local a = checks.scripted_client(aliyun, NOW, {}, function(req)
      sent[#sent + 1] = req.headers.traceparent
      return checks.reply(200, '{"RequestId":"r"}')
    end)
    local trace = "0af7651916cd43dd8448eb211c80319c"
    assert(a:forbid_live_streams { domain_name = "d.example.com", app_name = "live", stream_names = { "a" },
      audit = log, trace = "00-" .. trace .. "-b7ad6b7169203331-01" })
    local lines = lines_of(path)
    assert.same({ trace, trace }, { cjson.decode(lines[1]).trace_id, cjson.decode(lines[2]).trace_id })
    assert.equal(trace, sent[1]:match("^00%-(%x+)%-"))
  end)

  it("writes a refusal (the guard's, the block list's) as the run's outcome, nothing sent", function()
    local log, path = new_log()
    local z, w = zego_client()
    assert.is_nil(z:forbid_rtc_streams { stream_ids = { "x", "y", "z" }, guard = { max_forbid = 2 }, audit = log })
    assert.equal(0, #w.sent)
    local lines = lines_of(path)
    assert.equal(1, #lines)
    assert.equal('{"time":"T","record":"outcome","run":"R","user":"cron","host":"H","provider":"zego",'
      .. '"credential":"1234567890","command":"zego.forbid_rtc_streams","actions":["ForbidRTCStreams"],'
      .. '"guard":{"allowed":false,"confirmed":false,"count":3,"max_forbid":2},"outcome":"refused",'
      .. '"counts":{"not_sent":3},"request_ids":[],"unknown":[],"streams":['
      .. '{"stream":"x","action":"ForbidRTCStreams","outcome":"not_sent","code":"TooManyStreams"},'
      .. '{"stream":"y","action":"ForbidRTCStreams","outcome":"not_sent","code":"TooManyStreams"},'
      .. '{"stream":"z","action":"ForbidRTCStreams","outcome":"not_sent","code":"TooManyStreams"}],'
      .. '"note":"forbidding 3 streams in one run is more than max_forbid (2): nothing was sent; guard = { confirm '
      .. '= true } to send them, or a larger guard.max_forbid"}', fixed(lines[1]))

    -- The block list holds 9 of 10 places: a batch of 2 new streams is refused, its places written.
    local listed = {}
    for i = 1, 9 do listed[i] = '"d.example.com/live/old' .. i .. '"' end
    local a, aw = checks.scripted_client(aliyun, NOW, {}, function(req)
      if acs_request.action_of(req) == "DescribeLiveUserDomains" then
        return checks.reply(200, '{"RequestId":"d","TotalCount":1,"PageNumber":1,"PageSize":'
          .. acs_request.query(req, "PageSize") .. ',"Domains":{"PageData":[{"DomainName":"d.example.com",'
          .. '"LiveDomainType":"liveVideo"}]}}')
      end
      return checks.reply(200, '{"RequestId":"b","TotalNum":9,"PageNum":1,"PageSize":'
        .. acs_request.query(req, "PageSize") .. ',"StreamUrls":{"StreamUrl":[' .. table.concat(listed, ",") .. ']}}')
    end)
    local _, err = a:forbid_live_streams { domain_name = "d.example.com", app_name = "live",
      stream_names = { "n1", "n2" }, check_places = true, places_limit = 10, audit = log }
    assert.equal("BlockListFull", err.code)
    for _, req in ipairs(aw.sent) do assert.not_equal("ForbidLiveStream", acs_request.action_of(req)) end
    lines = lines_of(path)
    assert.equal(2, #lines)
    local r = cjson.decode(lines[2])
    assert.equal("refused", r.outcome)
    assert.same({ used = 9, limit = 10, needed = 2, domains = 1 }, r.places)
    assert.same({ { stream = "d.example.com/live/n1", action = "ForbidLiveStream", outcome = "not_sent",
                    code = "BlockListFull" },
                  { stream = "d.example.com/live/n2", action = "ForbidLiveStream", outcome = "not_sent",
                    code = "BlockListFull" } }, r.streams)
  end)

  it("sends nothing when the intent cannot be written; stops sending when an outcome cannot be", function()
    assert.is_nil((audit.log { path = DIR, getenv = getenv })) -- (a directory: refused when made)
    local z, w = zego_client()
    local broken = { intent = function() return nil, "/var/log/x: No space left on device" end,
                     refused = function() return true end }
    local report, err = z:forbid_rtc_streams { stream_ids = { "a" }, audit = broken }
    assert.is_nil(report)
    assert.equal("streamctl: zego ForbidRTCStreams: AuditLogFailed: the audit log cannot be written (/var/log/x: No "
      .. "space left on device): nothing was sent", tostring(err))
    assert.is_false(err.sent)
    assert.equal(0, #w.sent)

    -- A log that fails at the second call's first stream: the calls after it are not sent, the report says why.
    local told, finished = 0, nil
    local run = {
      result = function() told = told + 1 if told == 21 then return nil, "disk gone" end return true end,
      outcome = function(_, r) finished = r return nil, "disk still gone" end,
    }
    local failing = { intent = function() return run end, refused = function() return true end }
    report = assert(z:forbid_rtc_streams { stream_ids = ids(60), audit = failing, concurrency = 1 })
    assert.equal(2, #w.sent) -- (20 IDs a call: the third call is not sent)
    assert.equal(40, report.succeeded)
    assert.equal(20, report.failed)
    assert.equal("disk gone", report.audit_error)
    assert.equal("AuditLogFailed", report.results[60].error.code)
    assert.is_false(report.results[60].error.sent)
    assert.equal(report, finished)
  end)

  it("a list read as it goes: an intent without a count, outcomes 1,000 a line, read back by streamctl audit",
    function()
    local log, path = new_log()
    local z = zego_client()
    local i = 0
    local report = assert(z:forbid_rtc_streams { stream_ids = function()
      i = i + 1
      if i <= 2500 then return "room-" .. i end
    end, audit = log, keep_results = false })
    assert.equal(2500, report.succeeded)
    local lines = lines_of(path)
    assert.equal(5, #lines) -- intent, 1000, 1000, 500, outcome
    local intent = cjson.decode(lines[1])
    assert.equal("intent", intent.record)
    assert.is_nil(intent.count)
    assert.equal("a list read as it goes", intent.from)
    for k = 2, 4 do
      local r = cjson.decode(lines[k])
      assert.equal("outcomes", r.record)
      assert.equal(k == 4 and 500 or 1000, #r.streams)
    end
    local outcome = cjson.decode(lines[5])
    assert.same({ ok = 2500, failed = 0, unknown = 0, not_sent = 0 }, outcome.counts)
    assert.is_nil(outcome.streams)
    assert.equal(125, outcome.calls)

    local status, out = checks.run_cli { "audit", path }
    assert.equal(0, status)
    assert.truthy(out:find("  cron@[^ ]+  zego ForbidRTCStreams 2500 streams via zego%.forbid_rtc_streams  succeeded\n$"), out)
    status, out = checks.run_cli { "audit", path, "--run", intent.run, "--stream", "room-2500" }
    assert.equal(0, status)
    assert.truthy(out:find("\n  room-2500  ForbidRTCStreams  succeeded\n", 1, true), out)
  end)
end)
