-- tier: unit
-- Alibaba Cloud's block list (issue 49): its 10,000 places read before a
-- forbid batch (every domain of the account), a batch past them refused
-- with nothing sent, a oneshot batch taking none; a forbid refused at the
-- limit ending the batch's sending; and a forbid's end (its ResumeTime, or
-- the provider's 6 months), for both providers. A transport written here
-- plays the service: each answer below is what the pages describe.
local aliyun = require "streamctl.aliyun"
local zego = require "streamctl.zego"
local places = require "streamctl.aliyun.places"
local calendar = require "streamctl.base.calendar"
local core = require "streamctl.core"
local acs_request = require "spec.helpers.acs_request"

local NOW = 1788170400 -- 2026-08-31T10:00:00Z: 6 months later is the end of February

local action_of, query, count = acs_request.action_of, acs_request.query, acs_request.count

-- A service with `domains` (name -> its listed "domain/app/stream" entries)
-- and `forbid(req, n)` answering the n-th ForbidLiveStream (default: ok).
local function service(domains, forbid)
  local sent, forbids, mono = {}, 0, 0
  local names = {}
  for d in pairs(domains) do names[#names + 1] = d end
  table.sort(names)
  local function answer(req)
    local action = action_of(req)
    sent[#sent + 1] = action
    if action == "DescribeLiveUserDomains" then
      local size, page = tonumber(query(req, "PageSize")), tonumber(query(req, "PageNumber") or "1")
      local data = {}
      for i = (page - 1) * size + 1, math.min(#names, page * size) do
        data[#data + 1] = string.format('{"DomainName":"%s","LiveDomainType":"liveVideo"}', names[i])
      end
      return { status = 200, headers = {}, body = string.format(
        '{"RequestId":"d-%d","TotalCount":%d,"PageNumber":%d,"PageSize":%d,"Domains":{"PageData":[%s]}}',
        page, #names, page, size, table.concat(data, ",")) }
    elseif action == "DescribeLiveStreamsBlockList" then
      local list = domains[query(req, "DomainName")] or {}
      local size, page = tonumber(query(req, "PageSize")), tonumber(query(req, "PageNum") or "1")
      local urls = {}
      for i = (page - 1) * size + 1, math.min(#list, page * size) do urls[#urls + 1] = '"' .. list[i] .. '"' end
      return { status = 200, headers = {}, body = string.format(
        '{"RequestId":"b-1","TotalNum":%d,"PageNum":%d,"PageSize":%d,"StreamUrls":{"StreamUrl":[%s]}}',
        #list, page, size, table.concat(urls, ",")) }
    elseif action == "ForbidLiveStream" then
      forbids = forbids + 1
      if forbid then return forbid(req, forbids) end
      return { status = 200, headers = {}, body = '{"RequestId":"f-' .. forbids .. '"}' }
    end
    return { status = 200, headers = {}, body = '{"RequestId":"x-1"}' }
  end
  local client = assert(aliyun.new {
    access_key_id = "AKID", access_key_secret = "secret", clock = function() return NOW end,
    monotonic = function() return mono end, sleep = function(s) mono = mono + s end, transport = answer,
  })
  return client, sent
end

-- n entries "d/live/sK" on domain d.
local function listed(d, n, from)
  local out = {}
  for i = 1, n do out[i] = d .. "/live/s" .. ((from or 0) + i) end
  return out
end


describe("the block list's places (ForbidLiveStream: 10,000 per account)", function()
  it("reads every domain of the account and refuses a batch past the limit, nothing sent", function()
    -- 3 domains, 2 + 3 + 1 = 6 places in use; a limit of 8 leaves 2; the batch needs 3
    local cli, sent = service { ["a.example.com"] = listed("a.example.com", 2),
                                ["b.example.com"] = listed("b.example.com", 3),
                                ["c.example.com"] = listed("c.example.com", 1) }
    local report, err = cli:forbid_live_streams { domain_name = "a.example.com", app_name = "live",
      stream_names = { "n1", "n2", "n3" }, check_places = true, places_limit = 8 }
    assert.is_nil(report)
    assert.equal("BlockListFull", err.code)
    assert.is_false(err.sent)
    assert.same({ used = 6, limit = 8, needed = 3, domains = 3 }, err.places)
    assert.equal("the block list has 6 of its 8 places in use (over 3 domains: one list per account, the "
      .. "strictest reading of the ForbidLiveStream page) and this run needs 3 more, 1 past the limit: nothing "
      .. "was sent (a oneshot forbid cuts the ingest without taking a place)", err.message)
    assert.equal(0, count(sent, "ForbidLiveStream"))
    -- the batch's domain read whole, the account's domains, the two other domains' TotalNum
    assert.same({ "DescribeLiveStreamsBlockList", "DescribeLiveUserDomains", "DescribeLiveStreamsBlockList",
                  "DescribeLiveStreamsBlockList" }, sent)
  end)

  it("counts a stream already listed as taking no new place, and sends a batch that fits", function()
    local cli, sent = service { ["a.example.com"] = listed("a.example.com", 6) }
    -- s5 and s6 are listed: n1, n2 need 2 places; 6 + 2 = 8 = the limit
    local report = assert(cli:forbid_live_streams { domain_name = "a.example.com", app_name = "live",
      stream_names = { "s5", "n1", "s6", "n2", "n1" }, check_places = true, places_limit = 8 })
    assert.same({ used = 6, limit = 8, needed = 2, domains = 1 }, report.places)
    assert.equal(4, report.succeeded)
    assert.equal(4, count(sent, "ForbidLiveStream"))
    -- and as the run left them: the 2 new ones taken (issue 89), the check's count kept apart
    assert.same({ used = 8, limit = 8, needed = 2, domains = 1 }, report.places_after)
  end)

  it("the places a run left: what it may have taken, at most what it needed, never fewer in use than there are",
    function()
    local before = { used = 100, limit = 10000, needed = 5, domains = 2 }
    for _, case in ipairs {
      { { succeeded = 5, superseded = 0, unknown = 0 }, 105, "every new one forbidden" },
      { { succeeded = 7, superseded = 0, unknown = 0 }, 105, "listed ones among them: at most the 5 needed" },
      { { succeeded = 2, superseded = 0, unknown = 0 }, 102, "3 failed" },
      { { succeeded = 2, superseded = 0, unknown = 2 }, 104, "an unknown outcome may have taken one" },
      { { succeeded = 4, superseded = 3, unknown = 0 }, 101, "a superseded one was not sent by this run" },
    } do
      local after = places.after(before, case[1])
      assert.same({ used = case[2], limit = 10000, needed = 5, domains = 2 }, after, case[3])
    end
    assert.equal(100, before.used) -- (a new table: the check's own is kept)
    -- a oneshot batch's (no count of places in use): as it was
    assert.same({ limit = 10000, needed = 0, domains = 0 }, places.after({ limit = 10000, needed = 0, domains = 0 },
      { succeeded = 3, superseded = 0, unknown = 0 }))
  end)

  it("takes no place for a oneshot batch: nothing read, everything sent", function()
    local cli, sent = service { ["a.example.com"] = listed("a.example.com", 8) }
    local report = assert(cli:forbid_live_streams { domain_name = "a.example.com", app_name = "live",
      stream_names = { "n1", "n2" }, oneshot = true, check_places = true, places_limit = 8 })
    assert.equal(2, report.succeeded)
    assert.same({ "ForbidLiveStream", "ForbidLiveStream" }, sent)
    -- and a oneshot forbid has no end: it cuts the ingest and lists nothing
    assert.is_nil(report.results[1].ends)
    assert.equal("oneshot", report.results[1].ends_by)
  end)

  it("checks the places of a wrapper that reaches a client through __index too", function()
    local cli, sent = service { ["a.example.com"] = listed("a.example.com", 8) }
    local wrapper = setmetatable({}, { __index = cli })
    local report, err = wrapper:forbid_live_streams { domain_name = "a.example.com", app_name = "live",
      stream_names = { "n1" }, check_places = true, places_limit = 8 }
    assert.is_nil(report)
    assert.equal("BlockListFull", err.code)
    assert.equal(0, count(sent, "ForbidLiveStream"))
    -- and a method called with a dot is misuse, named as the method
    assert.has_error(function() cli.forbid_live_streams { domain_name = "a.example.com", check_places = true } end,
      "streamctl.aliyun: forbid_live_streams is a method: call it with a colon, client:forbid_live_streams(...), "
        .. "not client.forbid_live_streams(...)")
  end)

  it("without check_places reads nothing first (the library's default)", function()
    local cli, sent = service { ["a.example.com"] = listed("a.example.com", 8) }
    assert(cli:forbid_live_streams { domain_name = "a.example.com", app_name = "live", stream_names = { "n1" } })
    assert.same({ "ForbidLiveStream" }, sent)
  end)

  it("refuses check_places on a list read as it goes (it cannot be counted first)", function()
    local cli, sent = service { ["a.example.com"] = {} }
    local names = { "n1" }
    local report, err = cli:forbid_live_streams { domain_name = "a.example.com", app_name = "live",
      stream_names = function() return table.remove(names) end, check_places = true }
    assert.is_nil(report)
    assert.equal("InvalidParameter", err.code)
    assert.matches("field 'check_places' needs 'stream_names' as a table", err.message, 1, true)
    assert.same({}, sent)
  end)

  it("a read that fails sends nothing and says why", function()
    local cli, sent = service { ["a.example.com"] = {} }
    -- the account's domains answer without a Domains list
    local transport_cli = assert(aliyun.new {
      access_key_id = "AKID", access_key_secret = "secret", clock = function() return NOW end,
      transport = function(req)
        sent[#sent + 1] = action_of(req)
        if action_of(req) == "DescribeLiveUserDomains" then
          return { status = 200, headers = {}, body = '{"RequestId":"d-1","TotalCount":1}' }
        end
        return { status = 200, headers = {}, body = '{"RequestId":"b-1","TotalNum":0,"StreamUrls":{"StreamUrl":[]}}' }
      end,
    })
    local _ = cli
    local report, err = transport_cli:forbid_live_streams { domain_name = "a.example.com", app_name = "live",
      stream_names = { "n1" }, check_places = true }
    assert.is_nil(report)
    assert.equal("InvalidResponse", err.code)
    assert.equal("page 1 of the account's domains has no Domains list: the block list's places cannot be counted; "
      .. "nothing was sent", err.message)
    assert.equal(0, count(sent, "ForbidLiveStream"))
  end)
end)

describe("a forbid refused at the block list's limit", function()
  it("is reported once, not retried, and the batch sends no more forbids", function()
    local FULL = '{"RequestId":"f-full","Code":"' .. places.FULL .. '","Message":"The block list is full: at most '
      .. '10000 streams can be disabled."}'
    local cli, sent = service({ ["a.example.com"] = {} }, function(_, n)
      if n == 2 then return { status = 400, headers = {}, body = FULL } end
      return { status = 200, headers = {}, body = '{"RequestId":"f-' .. n .. '"}' }
    end)
    local report = assert(cli:forbid_live_streams { domain_name = "a.example.com", app_name = "live",
      stream_names = { "n1", "n2", "n3", "n4", "n5" }, concurrency = 1 })
    assert.equal(2, count(sent, "ForbidLiveStream"))
    local r = report.results
    assert.is_true(r[1].ok)
    assert.equal(places.FULL, r[2].error.code)
    assert.equal(1, r[2].attempts)
    assert.is_false(r[2].error.retryable)
    for i = 3, 5 do
      assert.equal("BlockListFull", r[i].error.code)
      assert.equal(0, r[i].attempts)
      assert.is_false(r[i].error.sent)
      assert.equal("not sent: a forbid of this run was refused at the block list's limit", r[i].error.message)
    end
    assert.same({ 1, 4, 0 }, { report.succeeded, report.failed, report.unknown })
  end)
end)

describe("when a forbid ends", function()
  it("Alibaba Cloud: its ResumeTime, else 6 calendar months after it was answered (clamped)", function()
    local cli = service { ["a.example.com"] = {} }
    local report = assert(cli:forbid_live_streams { domain_name = "a.example.com", app_name = "live",
      stream_names = { "n1" } })
    assert.equal("provider_default", report.results[1].ends_by)
    assert.equal("2027-02-28T10:00:00Z", core.utc_timestamp(report.results[1].ends))
    report = assert(cli:forbid_live_streams { domain_name = "a.example.com", app_name = "live",
      stream_names = { "n2" }, resume_time = "2026-09-01T00:00:00Z" })
    assert.equal("resume_time", report.results[1].ends_by)
    assert.equal("2026-09-01T00:00:00Z", core.utc_timestamp(report.results[1].ends))
    -- the same rule for a single forbid or a call: forbid_ends
    assert.same({ NOW + 3600, "resume_time" }, { aliyun.forbid_ends("ForbidLiveStream",
      { ResumeTime = core.utc_timestamp(NOW + 3600) }, NOW) })
    assert.same({ nil, "oneshot" }, { aliyun.forbid_ends("ForbidLiveStream", { Oneshot = "yes" }, NOW) })
    assert.same({}, { aliyun.forbid_ends("ResumeLiveStream", {}, NOW) })
  end)

  it("ZEGO: a CDN forbid's ResumeTime, else a day; an RTC forbid until resumed", function()
    assert.same({ NOW + 86400, "provider_default" }, { zego.forbid_ends("ForbidCDNLiveStream", {}, NOW) })
    assert.same({ NOW + 600, "resume_time" }, { zego.forbid_ends("ForbidCDNLiveStream",
      { ResumeTime = core.utc_timestamp(NOW + 600) }, NOW) })
    assert.same({ nil, "until_resumed" }, { zego.forbid_ends("ForbidRTCStreams", {}, NOW) })
    assert.same({ nil, "until_resumed" }, { zego.forbid_ends("ForbidRTCStream", {}, NOW) })
    assert.same({}, { zego.forbid_ends("ResumeRTCStreams", {}, NOW) })
  end)

  it("6 calendar months: the same day and time, the day clamped to the month's last", function()
    local function at(text) return core.parse_utc_timestamp(text) end
    for _, c in ipairs {
      { "2026-11-26T02:00:00Z", "2027-05-26T02:00:00Z" },
      { "2026-08-31T10:00:00Z", "2027-02-28T10:00:00Z" },
      { "2027-08-31T10:00:00Z", "2028-02-29T10:00:00Z" }, -- a leap year
      { "2026-12-31T23:59:59Z", "2027-06-30T23:59:59Z" },
      { "2027-07-15T00:00:00Z", "2028-01-15T00:00:00Z" }, -- the year rolls over
      { "2099-08-30T12:00:00Z", "2100-02-28T12:00:00Z" }, -- 2100 is not a leap year
      { "2399-08-30T12:00:00Z", "2400-02-29T12:00:00Z" }, -- 2400 is
    } do
      assert.equal(c[2], core.utc_timestamp(calendar.add_months(at(c[1]), 6)), c[1])
    end
  end)
end)
