-- sanitizers: none (the emulator: its code runs in nginx, not in this process)
-- The emulator's block list (issue 49): its places (aliyun.block_list_limit,
-- every domain; Oneshot takes none; a resume or an end frees one), the
-- default end of a forbid without ResumeTime (6 calendar months, clock.lua's
-- add_months), and DescribeLiveUserDomains (docs/development/emulator-fidelity.md). Hand-built
-- requests (spec/helpers/emulator.lua), never streamctl's core.

local emu = require "spec.helpers.emulator"
local cjson = require "cjson"
local clock = require "streamctl.emulator.clock"
local config = require "streamctl.emulator.config"

local keys = emu.sorted_keys

local FULL_MESSAGE = "The block list is full: at most 3 streams can be disabled."

local function decode(text)
  local ok, v = pcall(cjson.decode, text or "")
  return ok and v or nil
end

describe("clock.add_months (the 6 months of a forbid without ResumeTime)", function()
  local function plus6(iso)
    return clock.format_iso8601(clock.add_months(assert(clock.parse_iso8601(iso)), 6))
  end

  it("keeps the time of day, and clamps the day to the target month's last", function()
    assert.equal("2027-02-28T10:00:00Z", plus6("2026-08-31T10:00:00Z"))
    assert.equal("2027-05-26T02:00:00Z", plus6("2026-11-26T02:00:00Z"))
    assert.equal("2026-09-30T00:00:00Z", plus6("2026-03-31T00:00:00Z"))
    assert.equal("2026-07-01T00:00:00Z", plus6("2026-01-01T00:00:00Z"))
  end)

  it("counts leap years: 29 February in a leap year, 28 in a century that is not one", function()
    assert.equal("2028-02-29T00:00:00Z", plus6("2027-08-31T00:00:00Z"))
    assert.equal("2100-02-28T01:02:03Z", plus6("2099-08-31T01:02:03Z"))
    assert.equal("2400-02-29T23:59:59Z", plus6("2399-08-31T23:59:59Z"))
    assert.equal("2025-02-28T00:00:00Z",
      clock.format_iso8601(clock.add_months(clock.parse_iso8601("2024-02-29T00:00:00Z"), 12)))
  end)

  it("rolls the year over", function()
    assert.equal("2027-06-15T23:59:59Z", plus6("2026-12-15T23:59:59Z"))
    assert.equal("2027-01-31T12:00:00Z", plus6("2026-07-31T12:00:00Z"))
    assert.equal("1970-06-30T00:00:00Z", plus6("1969-12-31T00:00:00Z"))
  end)

  it("gives exact unix seconds and keeps a fraction of a second", function()
    assert.equal(1803808800, clock.add_months(1788170400, 6))   -- 2026-08-31T10 -> 2027-02-28T10
    assert.equal(1811296800.25, clock.add_months(1795658400.25, 6))
    assert.equal(1788170400, clock.add_months(1788170400, 0))
  end)

  it("raises on misuse", function()
    assert.has_error(function() clock.add_months(0, 1.5) end, "clock.add_months: months must be a whole number >= 0")
    assert.has_error(function() clock.add_months(0, -1) end, "clock.add_months: months must be a whole number >= 0")
    assert.has_error(function() clock.add_months("0", 6) end, "clock.add_months: t must be a number (unix seconds)")
  end)
end)

describe("live_places (the block list's places, their ends in time order)", function()
  local places = require "streamctl.emulator.live_places"

  it("counts the places as a model does, through re-forbids, resumes and ends, in end order", function()
    places.reset()
    local model, ended_order = {}, {}
    local function in_model(now)
      local n = 0
      for _, at in pairs(model) do
        if at > now then
          n = n + 1
        end
      end
      return n
    end
    -- 500 streams, each forbidden 20 times with a new end (stale entries
    -- past the compaction's threshold), every 50th resumed
    local seed = 12345
    local function rand(n)
      seed = (seed * 1103515245 + 12345) % 2147483648
      return seed % n
    end
    for round = 1, 20 do
      for i = 1, 500 do
        local key, at = "s" .. i, 1000 + rand(100000) + round
        places.list(key, at)
        model[key] = at
      end
    end
    for i = 50, 500, 50 do
      places.unlist("s" .. i)
      model["s" .. i] = nil
    end
    assert.equal(490, places.in_use())
    local last = -1
    for now = 0, 110000, 5000 do
      places.purge(now, function(key)
        assert.is_true(model[key] <= now and model[key] >= last, key)
        last = model[key]
        ended_order[#ended_order + 1] = key
        model[key] = nil
      end)
      assert.equal(in_model(now), places.in_use(), "at " .. now)
    end
    assert.equal(490, #ended_order)
    assert.equal(0, places.in_use())
    assert.is_nil(places.ends_at("s1"))
  end)
end)

describe("aliyun.block_list_limit", function()
  it("is 10000 by default and takes a whole number >= 0", function()
    assert.equal(10000, config.build(nil).aliyun.block_list_limit)
    assert.equal(10000, config.build({ aliyun = {} }).aliyun.block_list_limit)
    assert.equal(3, config.build({ aliyun = { block_list_limit = 3 } }).aliyun.block_list_limit)
    assert.equal(0, config.build({ aliyun = { block_list_limit = 0 } }).aliyun.block_list_limit)
  end)

  it("refuses anything else, naming the key and the rule", function()
    local rule = "aliyun.block_list_limit: expected a whole number >= 0 (the places on the block list), got "
    for _, c in ipairs({ { -1, "-1" }, { 2.5, "2.5" }, { "10", "string" }, { true, "boolean" } }) do
      local ok, err = pcall(config.build, { aliyun = { block_list_limit = c[1] } })
      assert.is_false(ok)
      assert.equal(rule .. c[2], err)
    end
  end)

  it("stops the emulator's start with that message", function()
    local dir = os.tmpname()
    os.remove(dir)
    local ok, err = pcall(emu.start, { dir = dir, config = { aliyun = { block_list_limit = -1 } } })
    if ok then
      err:stop()
    end
    os.execute("rm -rf '" .. dir .. "'")
    assert.is_false(ok)
    assert.matches("aliyun.block_list_limit: expected a whole number >= 0 (the places on the block list), got -1",
      tostring(err), 1, true)
  end)
end)

describe("the emulator's block list and domains", function()
  local server
  local offset = 0

  lazy_setup(function()
    server = emu.start({ config = { aliyun = { block_list_limit = 3 } } })
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

  local function now()
    return os.time() + offset
  end

  -- Pins the emulator clock at t (requests are then signed with about t).
  local function pin(t)
    offset = t - os.time()
    server:clock({ now = t })
    return t
  end

  local function live(action, params)
    local q = emu.v1_request({ action = action, params = params, method = "GET", time = now() })
    local status, body = server:request({ method = "GET", provider = "aliyun", path = "/?" .. q })
    return status, decode(body), body
  end

  local function stream(domain, name, extra)
    local p = { DomainName = domain, AppName = "app", StreamName = name, LiveStreamType = "publisher" }
    for k, v in pairs(extra or {}) do
      p[k] = v
    end
    return p
  end

  local function forbid(domain, name, extra)
    return live("ForbidLiveStream", stream(domain, name, extra))
  end

  local function listed(domain)
    local status, v = live("DescribeLiveStreamsBlockList", { DomainName = domain })
    assert.equal(200, status)
    return v.StreamUrls.StreamUrl
  end

  local function places()
    return server:state().aliyun.block_list
  end

  -- Fills the 3 places: two streams on one domain, one on another.
  local function fill()
    for _, s in ipairs({ { "a.example.com", "s1" }, { "a.example.com", "s2" }, { "b.example.com", "s3" } }) do
      assert.equal(200, (forbid(s[1], s[2])))
    end
    assert.same({ places_in_use = 3, limit = 3 }, places())
  end

  describe("places", function()
    it("refuses a 4th distinct stream with BlockList.LimitExceeded, changing nothing", function()
      fill()
      server:online({ domain = "b.example.com", app = "app", stream = "s4" })
      local status, v = forbid("b.example.com", "s4")
      assert.equal(400, status)
      assert.same({ "Code", "HostId", "Message", "Recommend", "RequestId" }, keys(v))
      assert.equal("BlockList.LimitExceeded", v.Code)
      assert.equal(FULL_MESSAGE, v.Message)
      assert.equal("live.aliyuncs.com", v.HostId)
      assert.same({ "b.example.com/app/s3" }, listed("b.example.com"))
      local state = server:state()
      assert.is_nil(state.aliyun.streams["b.example.com/app/s4"])
      assert.same({ places_in_use = 3, limit = 3 }, state.aliyun.block_list)
      -- the call failed: the ingest is not cut
      assert.same({ "b.example.com/app/s4" }, keys(state.aliyun.online))
      local entry = server:log({ action = "ForbidLiveStream" })[4]
      assert.same({ "error", "BlockList.LimitExceeded", 400, false },
        { entry.verdict, entry.code, entry.status, entry.applied })
      assert.same({ stream = "b.example.com/app/s4", places_in_use = 3, limit = 3 }, entry.detail)
    end)

    it("takes a re-forbid of a listed stream at the limit (a new end, no new place)", function()
      fill()
      local until_ = emu.iso8601(now() + 3600)
      local status = forbid("a.example.com", "s1", { ResumeTime = until_ })
      assert.equal(200, status)
      local st = server:state().aliyun
      assert.same({ places_in_use = 3, limit = 3 }, st.block_list)
      local s1 = st.streams["a.example.com/app/s1"]
      assert.same({ "forbidden", until_, "resume_time", until_, 2 },
        { s1.status, s1.ends_at, s1.ends_by, s1.ResumeTime, s1.forbid_count })
    end)

    it("takes Oneshot=yes at the limit: no place, not listed", function()
      fill()
      local status = forbid("b.example.com", "kick", { Oneshot = "yes" })
      assert.equal(200, status)
      assert.same({ "b.example.com/app/s3" }, listed("b.example.com"))
      local st = server:state().aliyun
      assert.same({ places_in_use = 3, limit = 3 }, st.block_list)
      local kick = st.streams["b.example.com/app/kick"]
      assert.same({ "normal", 1, 0 }, { kick.status, kick.interrupt_count, kick.forbid_count })
      assert.is_nil(kick.ends_at)
    end)

    it("frees a place on a resume", function()
      fill()
      assert.equal(400, (forbid("b.example.com", "s4")))
      assert.equal(200, (live("ResumeLiveStream", stream("a.example.com", "s1"))))
      assert.same({ places_in_use = 2, limit = 3 }, places())
      assert.equal(200, (forbid("b.example.com", "s4")))
      assert.same({ "b.example.com/app/s3", "b.example.com/app/s4" }, listed("b.example.com"))
      assert.same({ places_in_use = 3, limit = 3 }, places())
    end)

    it("frees a place when a ResumeTime passes", function()
      local t = pin(1788170400)
      assert.equal(200, (forbid("a.example.com", "s1", { ResumeTime = emu.iso8601(t + 60) })))
      assert.equal(200, (forbid("a.example.com", "s2")))
      assert.equal(200, (forbid("a.example.com", "s3")))
      assert.equal(400, (forbid("a.example.com", "s4")))
      pin(t + 60)
      assert.same({ places_in_use = 2, limit = 3 }, places())
      assert.equal(200, (forbid("a.example.com", "s4")))
      assert.same({ "a.example.com/app/s2", "a.example.com/app/s3", "a.example.com/app/s4" },
        listed("a.example.com"))
    end)
  end)

  describe("a forbid without ResumeTime", function()
    it("ends 6 calendar months later, shown in the state, and leaves the list then", function()
      pin(1788170400) -- 2026-08-31T10:00:00Z
      assert.equal(200, (forbid("a.example.com", "s1")))
      assert.equal(200, (forbid("a.example.com", "s2", { Oneshot = "no" })))
      local st = server:state().aliyun
      for _, name in ipairs({ "s1", "s2" }) do
        local s = st.streams["a.example.com/app/" .. name]
        assert.same({ "forbidden", "2027-02-28T10:00:00Z", "default" }, { s.status, s.ends_at, s.ends_by })
        assert.is_nil(s.ResumeTime)
      end
      local entry = server:log({ action = "ForbidLiveStream" })[1]
      assert.same({ stream = "a.example.com/app/s1", ends_at = "2027-02-28T10:00:00Z", ends_by = "default" },
        entry.detail)

      pin(1803808800 - 1) -- one second before its end
      assert.same({ "a.example.com/app/s1", "a.example.com/app/s2" }, listed("a.example.com"))
      assert.same({ "a.example.com/app/s1" }, (server:online({ domain = "a.example.com", app = "app",
        stream = "s1" })).refused)

      pin(1803808800 + 1)
      assert.same({}, listed("a.example.com"))
      st = server:state().aliyun
      local s1 = st.streams["a.example.com/app/s1"]
      assert.same({ "normal", 1 }, { s1.status, s1.forbid_count })
      assert.is_nil(s1.ends_at)
      assert.is_nil(s1.ends_by)
      assert.same({ places_in_use = 0, limit = 3 }, st.block_list)
      local marked = server:online({ domain = "a.example.com", app = "app", stream = "s1" })
      assert.same({ "a.example.com/app/s1" }, marked.marked)
      -- an end seen is final: the clock moved back does not list it again
      pin(1803808800 - 1)
      assert.same({}, listed("a.example.com"))
      assert.same({ places_in_use = 0, limit = 3 }, places())
    end)

    it("ends at the ResumeTime when one is given, and a second forbid without one moves the end", function()
      pin(1795658400) -- 2026-11-26T02:00:00Z
      assert.equal(200, (forbid("a.example.com", "s1", { ResumeTime = "2026-11-27T00:00:00Z" })))
      local s1 = server:state().aliyun.streams["a.example.com/app/s1"]
      assert.same({ "2026-11-27T00:00:00Z", "resume_time" }, { s1.ends_at, s1.ends_by })
      assert.equal(200, (forbid("a.example.com", "s1")))
      s1 = server:state().aliyun.streams["a.example.com/app/s1"]
      assert.same({ "2027-05-26T02:00:00Z", "default" }, { s1.ends_at, s1.ends_by })
      assert.is_nil(s1.ResumeTime)
      pin(1811296800 - 1)
      assert.same({ "a.example.com/app/s1" }, listed("a.example.com"))
      pin(1811296800)
      assert.same({}, listed("a.example.com"))
    end)
  end)

  describe("DescribeLiveUserDomains", function()
    local function domains(params)
      local status, v = live("DescribeLiveUserDomains", params or {})
      assert.equal(200, status)
      return v
    end

    local function names(v)
      local out = {}
      for i, d in ipairs(v.Domains.PageData) do
        out[i] = d.DomainName
      end
      return out
    end

    -- Three domains seen, by three operations, at a pinned time.
    local function see_three()
      local t = pin(1788170400)
      assert.equal(200, (forbid("b.example.com", "s1")))
      assert.equal(200, (live("DescribeLiveStreamsBlockList", { DomainName = "a.example.com" })))
      pin(t + 10)
      assert.equal(200, (live("ResumeLiveStream", stream("c.test", "s1"))))
      -- seen before: its first sight stands
      assert.equal(200, (live("DescribeLiveStreamsOnlineList", { DomainName = "b.example.com" })))
      -- not shaped as a domain: accepted by the block list, not noted
      assert.equal(200, (live("DescribeLiveStreamsBlockList", { DomainName = "Not_A_Domain" })))
    end

    it("lists the domains the Live calls named, sorted, in the page's shape", function()
      assert.same({ PageNumber = 1, PageSize = 20, TotalCount = 0, Domains = { PageData = {} } },
        (function() local v = domains() v.RequestId = nil return v end)())
      see_three()
      local v = domains()
      assert.same({ "Domains", "PageNumber", "PageSize", "RequestId", "TotalCount" }, keys(v))
      assert.same({ 1, 20, 3 }, { v.PageNumber, v.PageSize, v.TotalCount })
      assert.same({ "a.example.com", "b.example.com", "c.test" }, names(v))
      assert.same({
        DomainName = "c.test", LiveDomainType = "liveVideo", LiveDomainStatus = "online",
        Cname = "c.test.livecdn.alikunlun.com", Description = "", GmtCreated = "2026-08-31T10:00:10Z",
        GmtModified = "2026-08-31T10:00:10Z", RegionName = "cn-shanghai",
      }, v.Domains.PageData[3])
      assert.equal("2026-08-31T10:00:00Z", v.Domains.PageData[2].GmtCreated)
    end)

    it("pages by PageSize and PageNumber", function()
      see_three()
      for i, name in ipairs({ "a.example.com", "b.example.com", "c.test" }) do
        local v = domains({ PageSize = "1", PageNumber = tostring(i) })
        assert.same({ { name }, i, 1, 3 }, { names(v), v.PageNumber, v.PageSize, v.TotalCount })
      end
      local v = domains({ PageSize = "2", PageNumber = "2" })
      assert.same({ { "c.test" }, 3 }, { names(v), v.TotalCount })
      v = domains({ PageSize = "1", PageNumber = "4" })
      assert.same({ {}, 3 }, { names(v), v.TotalCount })
      v = domains({ PageSize = "50", PageNumber = "100000" })
      assert.same({ {}, 3 }, { names(v), v.TotalCount })
    end)

    it("filters by DomainName as DomainSearchType says, and by type, status, region and tags", function()
      see_three()
      local cases = {
        { { DomainName = "example" }, { "a.example.com", "b.example.com" } },
        { { DomainName = "example", DomainSearchType = "fuzzy_match" }, { "a.example.com", "b.example.com" } },
        { { DomainName = "c.", DomainSearchType = "pre_match" }, { "c.test" } },
        { { DomainName = "example", DomainSearchType = "pre_match" }, {} },
        { { DomainName = ".com", DomainSearchType = "suf_match" }, { "a.example.com", "b.example.com" } },
        { { DomainName = "b.example.com", DomainSearchType = "full_match" }, { "b.example.com" } },
        { { DomainName = "example.com", DomainSearchType = "full_match" }, {} },
        { { DomainName = "*.example.com" }, {} },   -- taken literally
        { { LiveDomainType = "liveVideo" }, { "a.example.com", "b.example.com", "c.test" } },
        { { LiveDomainType = "liveEdge" }, {} },
        { { DomainStatus = "online" }, { "a.example.com", "b.example.com", "c.test" } },
        { { DomainStatus = "offline" }, {} },
        { { DomainStatus = "configuring" }, {} },
        { { RegionName = "cn-shanghai" }, { "a.example.com", "b.example.com", "c.test" } },
        { { RegionName = "cn-beijing" }, {} },
        { { ["Tag.1.Key"] = "TestKey" }, {} },
      }
      for _, c in ipairs(cases) do
        local v = domains(c[1])
        assert.same({ c[2], #c[2] }, { names(v), v.TotalCount }, cjson.encode(c[1]))
      end
    end)

    it("refuses a value outside its rule with InvalidParameter, naming it", function()
      local cases = {
        { { PageSize = "51" }, "PageSize", "Valid values: 1 to 50." },
        { { PageSize = "0" }, "PageSize", "Valid values: 1 to 50." },
        { { PageSize = "2.5" }, "PageSize", "Valid values: 1 to 50." },
        { { PageNumber = "0" }, "PageNumber", "Valid values: 1 to 100000." },
        { { PageNumber = "100001" }, "PageNumber", "Valid values: 1 to 100000." },
        { { LiveDomainType = "livevideo" }, "LiveDomainType", "Valid values: liveVideo, liveEdge." },
        { { DomainSearchType = "exact" }, "DomainSearchType",
          "Valid values: fuzzy_match, pre_match, suf_match, full_match." },
        { { DomainStatus = "stopped" }, "DomainStatus", "Valid values: online, offline, configuring." },
      }
      for _, c in ipairs(cases) do
        local status, v = live("DescribeLiveUserDomains", c[1])
        assert.same({ 400, "InvalidParameter", "Specified parameter " .. c[2] .. " is not valid. " .. c[3] },
          { status, v.Code, v.Message })
      end
    end)

    it("forgets the domains seen on a reset, and is capped at 100 per second", function()
      see_three()
      server:reset()
      offset = 0
      assert.equal(0, domains().TotalCount)
      assert.equal(100, server:control("GET", "config").aliyun.qps.DescribeLiveUserDomains)
      assert.equal(3, server:control("GET", "config").aliyun.block_list_limit)
    end)
  end)
end)

describe("DescribeLiveUserDomains with aliyun.domains", function()
  local server, before

  lazy_setup(function()
    before = os.time()
    server = emu.start({ config = { aliyun = { domains = { "z.example.com", "a.example.com" } } } })
  end)

  lazy_teardown(function()
    if server then
      server:stop()
    end
  end)

  it("lists the configured domains, sorted, created at the start, whatever the calls named", function()
    local q = emu.v1_request({ action = "ResumeLiveStream", method = "GET", params = { DomainName = "a.example.com",
      AppName = "app", StreamName = "s", LiveStreamType = "publisher" } })
    assert.equal(200, (server:request({ method = "GET", provider = "aliyun", path = "/?" .. q })))
    q = emu.v1_request({ action = "DescribeLiveUserDomains", method = "GET" })
    local status, body = server:request({ method = "GET", provider = "aliyun", path = "/?" .. q })
    assert.equal(200, status)
    local v = decode(body)
    assert.equal(2, v.TotalCount)
    assert.same({ "a.example.com", "z.example.com" },
      { v.Domains.PageData[1].DomainName, v.Domains.PageData[2].DomainName })
    local created = v.Domains.PageData[1].GmtCreated
    assert.equal(created, v.Domains.PageData[2].GmtCreated)
    assert.is_true(created >= emu.iso8601(before) and created <= emu.iso8601(os.time()), created)
  end)
end)
