-- Streamed batches (docs/clients.md "Streamed batches"): a list given as a
-- function or a file handle is read as the calls go, each stream reported
-- once as its call ends (on_result), with the outcomes the list form gives
-- on the same faults; repeats dropped through a compact set and counted; a
-- bad name reported, not sent; the order rules kept; memory bounded.
local aliyun = require "streamctl.aliyun"
local zego = require "streamctl.zego"
local checks = require "spec.helpers.checks"
local process = require "spec.helpers.process"

local NOW = 1700000000

local function count_from(n, prefix)
  local i = 0
  return function()
    i = i + 1
    if i <= n then return (prefix or "s") .. i end
  end
end

-- An Aliyun transport whose answer depends on the stream alone: s7, s14...
-- are refused (a final error), s11, s22... fail once with a 500 before
-- anything is applied (the client looks the block list up, finds them
-- missing, and sends again), the rest pass at once.
local function faulty_aliyun(seen)
  local blocked = {}
  return function(req)
    local name = req.url:match("StreamName=([^&]+)")
    if not name then -- (the look-up: DescribeLiveStreamsBlockList)
      local urls = {}
      for s in pairs(blocked) do urls[#urls + 1] = '"d.example/live/' .. s .. '"' end
      table.sort(urls)
      return checks.reply(200, '{"RequestId":"l","StreamUrls":{"StreamUrl":[' .. table.concat(urls, ",")
        .. ']},"TotalNum":' .. #urls .. '}')
    end
    local n = tonumber(name:match("%d+"))
    seen[name] = (seen[name] or 0) + 1
    if n % 7 == 0 then
      return checks.reply(400, '{"RequestId":"e","Code":"InvalidStream.NotFound","Message":"m"}')
    end
    if n % 11 == 0 and seen[name] == 1 then return checks.reply(500, '{"RequestId":"e","Code":"InternalError"}') end
    blocked[name] = true
    return checks.reply(200, '{"RequestId":"ok-' .. name .. '"}')
  end
end

local function outcome(e)
  return (e.ok and "ok" or e.outcome_unknown and "unknown" or e.error.code) .. "/" .. e.attempts
end

describe("a streamed batch", function()
  it("reports 100,000 streams once each, as their calls end, keeping nothing per stream", function()
    -- (10,000 under valgrind or ASan: the same C and Lua, a tenth of the minutes)
    local n = process.preloaded() and 10000 or 100000
    local cli = checks.scripted_client(zego, NOW, { rate_limits = false }, function()
      return checks.reply(200, '{"Code":0,"Message":"success","RequestId":"r"}')
    end)
    -- (each stream's checks in plain Lua, the first one broken said at the
    -- end: luassert's 400,000 calls were 95% of this test's time)
    local seen, order, dones, broken = {}, 0, 0, nil
    local function check(ok, why) if not ok and not broken then broken = why end end
    local report = assert(cli:forbid_rtc_streams {
      stream_ids = count_from(n), keep_results = false, concurrency = 8,
      on_result = function(e)
        check(seen[e.stream] == nil, e.stream .. " reported twice")
        order = order + 1
        seen[e.stream] = order
        check(e.ok == true, e.stream .. " not ok")
      end,
      on_progress = function(done, total)
        dones = dones + 1
        check(dones == done, "progress " .. tostring(done) .. " at call " .. dones)
        check(total == nil or total == n, "total " .. tostring(total))
      end,
    })
    assert.is_nil(broken)
    assert.same({ n, n, 0, 0, n / 20, n / 20, 0, true, false },
      { report.total, report.succeeded, report.failed, report.unknown, report.calls, report.planned,
        report.duplicates, report.streamed, report.input_left })
    assert.same({}, report.results)
    assert.equal(n, order)
    for i = 1, n do check(seen["s" .. i] ~= nil, "s" .. i .. " never reported") end
    assert.is_nil(broken)
  end)

  it("gives each stream the outcome the list form gives on the same faults", function()
    local n = 2000
    local function run(list_form)
      local seen = {}
      local cli = checks.scripted_client(aliyun, NOW, { rate_limits = false,
        retry = { random = function() return 0 end, attempts = 3, base_ms = 1 } }, faulty_aliyun(seen))
      local list = list_form and {} or count_from(n)
      if list_form then for i = 1, n do list[i] = "s" .. i end end
      local by_stream, completion = {}, {}
      local report = assert(cli:forbid_live_streams { domain_name = "d.example", app_name = "live",
        stream_names = list, concurrency = 4, on_result = function(e) completion[#completion + 1] = e.stream end })
      for _, e in ipairs(report.results) do by_stream[e.stream] = outcome(e) end
      return report, by_stream, completion, seen
    end
    local lr, lby, lcompletion, lseen = run(true)
    local sr, sby, scompletion, sseen = run(false)
    assert.same(lby, sby)
    assert.same(lseen, sseen)
    assert.same({ lr.total, lr.succeeded, lr.failed, lr.calls }, { sr.total, sr.succeeded, sr.failed, sr.calls })
    assert.same({ 2000, 1715, 285 }, { sr.total, sr.succeeded, sr.failed })
    assert.equal("ok/2", sby.s11)
    assert.equal("InvalidStream.NotFound/1", sby.s7)
    -- the list form reports in the order given; the streamed one as calls end
    assert.equal("s1", lr.results[1].stream)
    assert.equal(n, #scompletion)
    for i, s in ipairs(scompletion) do assert.equal(s, sr.results[i].stream) end
    assert.equal(n, #lcompletion)
  end)

  it("keeps the order rules: a batch started inside it waits for its calls on the same streams", function()
    local log = {}
    local cli = checks.scripted_client(aliyun, NOW, { rate_limits = false }, function(req)
      local action, name = req.headers["x-acs-action"], req.url:match("StreamName=([^&]+)")
      log[#log + 1] = action .. " " .. name
      return checks.reply(200, '{"RequestId":"r"}')
    end)
    local nested = false
    local report = assert(cli:forbid_live_streams { domain_name = "d.example", app_name = "live",
      stream_names = count_from(40), concurrency = 4,
      on_result = function(e)
        if e.stream == "s3" and not nested then
          nested = true
          -- a later submission, on streams the outer batch has read (s1..s4: four in flight at
          -- most) and on streams it has not yet read
          local inner = assert(cli:resume_live_streams { domain_name = "d.example", app_name = "live",
            stream_names = { "s2", "s4", "s30", "s31" } })
          assert.equal(4, inner.succeeded)
        end
      end })
    assert.equal(40, report.succeeded)
    local first = {}
    for i, line in ipairs(log) do first[line] = first[line] or i end
    -- read before the inner batch began: the forbid went first
    assert.is_true(first["ForbidLiveStream s2"] < first["ResumeLiveStream s2"])
    assert.is_true(first["ForbidLiveStream s4"] < first["ResumeLiveStream s4"])
    -- not yet read: the inner batch (submitted first) went first
    assert.is_true(first["ResumeLiveStream s30"] < first["ForbidLiveStream s30"])
    assert.is_true(first["ResumeLiveStream s31"] < first["ForbidLiveStream s31"])
    assert.equal(44, #log)
  end)

  it("(the list form, its calls made as they are admitted too: a batch started inside waits for every stream)",
    function()
    local log = {}
    local cli = checks.scripted_client(aliyun, NOW, { rate_limits = false }, function(req)
      log[#log + 1] = req.headers["x-acs-action"] .. " " .. req.url:match("StreamName=([^&]+)")
      return checks.reply(200, '{"RequestId":"r"}')
    end)
    local list, nested = {}, false
    for i = 1, 40 do list[i] = "s" .. i end
    local report = assert(cli:forbid_live_streams { domain_name = "d.example", app_name = "live",
      stream_names = list, concurrency = 4,
      on_progress = function(_, _, e)
        if e.stream == "s3" and not nested then
          nested = true
          assert(cli:resume_live_streams { domain_name = "d.example", app_name = "live",
            stream_names = { "s2", "s4", "s30", "s31" } })
        end
      end })
    assert.equal(40, report.succeeded)
    local first = {}
    for i, line in ipairs(log) do first[line] = first[line] or i end
    for _, s in ipairs { "s2", "s4", "s30", "s31" } do
      assert.is_true(first["ForbidLiveStream " .. s] < first["ResumeLiveStream " .. s], s)
    end
    assert.equal(44, #log)
  end)

  it("reads a file of one name a line: a repeat late in it dropped and counted, a bad name reported", function()
    local path = os.tmpname()
    local f = assert(io.open(path, "wb"))
    f:write("\239\187\191# the list\nroom-1\n  room-2  \n\nroom 3\nroom-4\n", ("x"):rep(300), "\nroom-1\n")
    f:close()
    local sent = {}
    local cli = checks.scripted_client(zego, NOW, { rate_limits = false }, function(req)
      sent[#sent + 1] = req.url
      return checks.reply(200, '{"Code":0,"Message":"success","RequestId":"r"}')
    end)
    local dups, results = {}, {}
    local fh = assert(io.open(path, "rb"))
    local report = assert(cli:forbid_rtc_streams { stream_ids = fh,
      on_duplicate = function(name, where) dups[#dups + 1] = name .. " at " .. where end,
      on_result = function(e) results[e.stream] = e.ok and "ok" or e.error.message end })
    fh:close()
    os.remove(path)
    assert.same({ "room-1 at line 8" }, dups)
    assert.same({ 5, 3, 2, 1 }, { report.total, report.succeeded, report.failed, report.duplicates })
    assert.equal("ok", results["room-2"])
    assert.equal("field 'stream_ids' line 5 must hold only letters, digits, '-' and '_' (found a space at byte 5)",
      results["room 3"])
    assert.equal("field 'stream_ids' line 7 must be at most 256 bytes (got 300)", results[("x"):rep(300)])
    -- one call: the three good names, room-1 once
    assert.equal(1, #sent)
    local ids = {}
    for id in sent[1]:gmatch("StreamId%%5B%%5D=([^&]+)") do ids[#ids + 1] = id end
    assert.same({ "room-1", "room-2", "room-4" }, ids)
  end)

  it("refuses a bad field before reading the list, and raises on an iterator that gives a non-string", function()
    local read = 0
    local cli = checks.scripted_client(zego, NOW, { rate_limits = false }, function()
      return checks.reply(200, '{"Code":0,"Message":"success","RequestId":"r"}')
    end)
    local report, err = cli:forbid_rtc_streams { stream_ids = function() read = read + 1 return "a" end,
                                                 concurrency = 0 }
    assert.is_nil(report)
    assert.equal("InvalidParameter", err.code)
    assert.equal(0, read)
    local i = 0
    assert.has_error(function()
      cli:forbid_rtc_streams { stream_ids = function() i = i + 1 return i == 1 and "a" or 42 end }
    end, "stream_ids: the iterator's item 2 is a number, not a string")
  end)

  it("holds memory bounded at a million streams (measured precisely by make bench)", function()
    if process.preloaded() then
      pending("a million calls under valgrind or ASan take too long; the plain runs measure it")
      return
    end
    local t = 0
    local cli = checks.scripted_client(zego, NOW, { rate_limits = false,
      -- a clock that moves (a second a reading), so the Sequence store forgets what ZEGO no
      -- longer compares, as it does at the real pace (20 calls a second: 24,000 IDs a minute)
      clock = function() t = t + 1 return NOW + t end,
      -- (a transport that keeps no request: the helper's keeps them all)
      transport = function() return checks.reply(200, '{"Code":0,"Message":"success","RequestId":"r"}') end,
    }, function() end)
    -- (the heap this process held before: busted runs every spec in one Lua state)
    collectgarbage()
    collectgarbage()
    local base, peak = collectgarbage("count"), 0
    local report = assert(cli:forbid_rtc_streams { stream_ids = count_from(1000000), keep_results = false,
      concurrency = 16, on_progress = function(done)
        if done % 100000 == 0 then
          collectgarbage()
          peak = math.max(peak, collectgarbage("count"))
        end
      end })
    assert.equal(1000000, report.succeeded)
    -- (about 2 MiB here; the list form held 2 KiB a stream: 2 GiB)
    assert.is_true(peak - base < 16 * 1024, ("the Lua heap grew by %.1f MiB"):format((peak - base) / 1024))
    assert.is_true(report.dedupe_bytes / 1000000 < 32, report.dedupe_bytes .. " bytes of dedupe set")
  end)
end)
