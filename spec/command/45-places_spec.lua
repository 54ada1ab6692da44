-- The block list's places and a forbid's end on the command line (issue
-- 49), against the emulator with 3 places (aliyun.block_list_limit): a
-- forbid batch past the places refused before anything is sent (exit 2,
-- naming the places in use and needed, audited as a refusal); a oneshot
-- batch sent; the provider's answer at the limit reported once, the rest
-- not sent; a forbid's end in the table, the JSON lines and the audit log;
-- reconcile refused past the places, and a forbid the provider ended by
-- itself (6 months) forbidden again by the next round.
local cjson = require "cjson"
local emu = require "spec.helpers.emulator"
local nginx = require "spec.helpers.nginx"
local calendar = require "streamctl.base.calendar"
local core = require "streamctl.core"

local HOME = nginx.temp_dir()
local D, APP = "push.example.com", "live"
local LOG = HOME .. "/audit.jsonl"

local server
local c = require("spec.helpers.checks").cli(function() return server end, HOME)
local run = c.run
-- (every Aliyun run writes its audit line to LOG, and draws no progress bar)
local function ali(...)
  local argv = c.al(...)
  for _, a in ipairs { "--audit-log", LOG, "--no-progress" } do argv[#argv + 1] = a end
  return argv
end

local function count(action)
  return #(server:log { action = action, limit = 10000 })
end

local function listed()
  local state = server:state().aliyun.streams
  local out = {}
  for key, s in pairs(state) do
    if s.status == "forbidden" then out[#out + 1] = key end
  end
  table.sort(out)
  return out
end

local function last_audit()
  local f = assert(io.open(LOG, "rb"))
  local last
  for l in f:lines() do last = l end
  f:close()
  return cjson.decode(last)
end

local lines = require("spec.helpers.checks").lines

describe("the block list's places on the command line (3 places)", function()
  lazy_setup(function()
    server = emu.start { config = { aliyun = { block_list_limit = 3 } } }
  end)
  lazy_teardown(function() if server then server:stop() end end)
  before_each(function()
    server:reset()
    os.remove(LOG)
  end)

  it("refuses a batch that needs more places than are left: exit 2, nothing forbidden, audited", function()
    -- one place taken on another domain of the account
    assert.equal(0, run(ali("forbid-live-stream", "--domain-name", "other.example.com", "--app-name", APP,
      "--stream-name", "x")))
    local before = count("ForbidLiveStream")
    local status, out, err = run(ali("forbid-live-streams", "--domain-name", D, "--app-name", APP,
      "a", "b", "c", "--places-limit", "3"))
    assert.equal(2, status)
    assert.equal("", out)
    assert.equal("streamctl: refused: the block list has 1 of its 3 places in use (over 2 domains: one list per "
      .. "account, the strictest reading of the ForbidLiveStream page) and this run needs 3 more, 1 past the "
      .. "limit: nothing was sent (a oneshot forbid cuts the ingest without taking a place). Pass --places-limit "
      .. "N where the account's quota is larger, or --oneshot yes to cut the streams without listing them.\n", err)
    assert.equal(before, count("ForbidLiveStream"))
    assert.same({ "other.example.com/live/x" }, listed())
    local rec = last_audit()
    assert.same({ "refused", 2, { used = 1, limit = 3, needed = 3, domains = 2 } },
      { rec.outcome, rec.exit, rec.places })
    assert.same({ stream = "push.example.com/live/a", action = "ForbidLiveStream", outcome = "not_sent",
                  code = "BlockListFull" }, rec.streams[1])
    assert.equal(3, #rec.streams)
  end)

  it("counts the streams already listed as needing no place, and sends a batch that fits", function()
    assert.equal(0, run(ali("forbid-live-streams", "--domain-name", D, "--app-name", APP, "a", "b",
      "--places-limit", "3")))
    -- a and b listed: a, b, c need one place, and one is left
    local status, out, err = run(ali("forbid-live-streams", "--domain-name", D, "--app-name", APP, "a", "b", "c",
      "--places-limit", "3", "--output", "json"))
    assert.equal(0, status, err)
    assert.equal(3, #lines(out))
    assert.same({ "push.example.com/live/a", "push.example.com/live/b", "push.example.com/live/c" }, listed())
    assert.same({ used = 2, limit = 3, needed = 1, domains = 1 }, last_audit().places)
  end)

  it("refuses a 20,000-stream list read as it goes before anything is sent (the issue's example)", function()
    local path = HOME .. "/twenty-thousand.txt"
    local f = assert(io.open(path, "wb"))
    for i = 1, 20000 do f:write("room-", i, "\n") end
    f:close()
    local status, out, err = run(ali("forbid-live-streams", "--domain-name", D, "--app-name", APP, "--from", path,
      "--yes"))
    assert.equal(2, status)
    assert.equal("", out)
    assert.truthy(err:find("the block list has 0 of its 10000 places in use (over 1 domains: one list per account, "
      .. "the strictest reading of the ForbidLiveStream page) and this run needs 20000 more, 10000 past the limit: "
      .. "nothing was sent", 1, true), err)
    assert.equal(0, count("ForbidLiveStream"))
    local rec = last_audit()
    assert.same({ "refused", { used = 0, limit = 10000, needed = 20000, domains = 1 } }, { rec.outcome, rec.places })
  end)

  it("sends a oneshot batch at the limit: it takes no place, and has no end", function()
    assert.equal(0, run(ali("forbid-live-streams", "--domain-name", D, "--app-name", APP, "a", "b", "c")))
    local reads = count("DescribeLiveUserDomains")
    local status, out, err = run(ali("forbid-live-streams", "--domain-name", D, "--app-name", APP, "d", "e",
      "--oneshot", "yes"))
    assert.equal(0, status, err)
    assert.equal(reads, count("DescribeLiveUserDomains")) -- (nothing read: a oneshot forbid needs no place)
    local l = lines(out)
    assert.equal("oneshot: the ingest was cut and nothing listed (the streams may publish again at once)", l[#l])
    assert.same({ "push.example.com/live/a", "push.example.com/live/b", "push.example.com/live/c" }, listed())
  end)

  it("reports the provider's answer at the limit once, not retried, and sends no more", function()
    -- the command told of more places than the emulator has: the provider refuses the 4th
    assert.equal(0, run(ali("forbid-live-streams", "--domain-name", D, "--app-name", APP, "a", "b", "c")))
    local before = count("ForbidLiveStream")
    local status, out = run(ali("forbid-live-streams", "--domain-name", D, "--app-name", APP, "d", "e", "f", "g",
      "--places-limit", "10", "--concurrency", "1", "--output", "json"))
    assert.equal(1, status)
    assert.equal(before + 1, count("ForbidLiveStream"))
    local rows = {}
    for _, l in ipairs(lines(out)) do rows[#rows + 1] = cjson.decode(l) end
    assert.same({ "d", false, 1, "BlockList.LimitExceeded", "The block list is full: at most 3 streams can be "
      .. "disabled." }, { rows[1].stream, rows[1].ok, rows[1].attempts, rows[1].code, rows[1].message })
    for i = 2, 4 do
      assert.same({ false, 0, "BlockListFull", "not sent: a forbid of this run was refused at the block list's "
        .. "limit" }, { rows[i].ok, rows[i].attempts, rows[i].code, rows[i].message })
    end
    local rec = last_audit()
    assert.same({ failed = 1, not_sent = 3 }, rec.counts)
  end)

  it("says when each forbid ends: the provider's 6 months, or --resume-time", function()
    local t0 = os.time()
    local status, out, err = run(ali("forbid-live-streams", "--domain-name", D, "--app-name", APP, "a", "b"))
    local t1 = os.time()
    assert.equal(0, status, err)
    local l = lines(out)
    local first, last = l[#l]:match("^forbidden until (%S+Z)"), l[#l]:match("(%S+Z) %(no %-%-resume%-time")
    assert.truthy(first and last, l[#l])
    assert.truthy(l[#l]:find(" (no --resume-time: the provider's own end)", 1, true), l[#l])
    for _, t in ipairs { first, last } do
      local ends = core.parse_utc_timestamp(t)
      assert.is_true(ends >= calendar.add_months(t0, 6) and ends <= calendar.add_months(t1 + 1, 6), t)
    end
    local at = core.utc_timestamp(os.time() + 3600)
    status, out = run(ali("forbid-live-streams", "--domain-name", D, "--app-name", APP, "c", "--resume-time", at,
      "--output", "json"))
    assert.equal(0, status)
    local row = cjson.decode(lines(out)[1])
    assert.same({ at, "resume_time" }, { row.ends, row.ends_by })
    assert.same({ at, "resume_time" }, { last_audit().streams[1].ends, last_audit().streams[1].ends_by })
    -- a single forbid too
    status, out = run(ali("forbid-live-stream", "--domain-name", D, "--app-name", APP, "--stream-name", "c",
      "--resume-time", at))
    assert.equal(0, status)
    l = lines(out)
    assert.equal("forbidden until " .. at .. " (--resume-time)", l[#l])
  end)

  it("reconcile: refused past the places (exit 2, nothing sent); a forbid ended by the provider is forbidden again",
    function()
      local list = HOME .. "/desired.txt"
      local f = assert(io.open(list, "wb"))
      f:write("push.example.com/live/a\npush.example.com/live/b\npush.example.com/live/c\n",
        "push.example.com/live/d\n")
      f:close()
      local status, out, err = run(ali("reconcile", "--from", list, "--places-limit", "3"))
      assert.equal(2, status, err .. out)
      assert.truthy(err:find("the block list has 0 of its 3 places in use (over 1 domains: one list per account, "
        .. "the strictest reading of the ForbidLiveStream page) and this run needs 4 more, 1 past the limit", 1,
        true), err)
      assert.equal(0, count("ForbidLiveStream"))
      assert.equal("", out)

      -- three desired: forbidden, without a ResumeTime (the provider's 6 months)
      f = assert(io.open(list, "wb"))
      f:write("push.example.com/live/a\npush.example.com/live/b\npush.example.com/live/c\n")
      f:close()
      status, out, err = run(ali("reconcile", "--from", list, "--places-limit", "3"))
      assert.equal(0, status, err)
      assert.truthy(out:find("block list: 0 of 3 places in use before this round, which needs 3", 1, true), out)
      assert.equal(3, #listed())
      -- 6 months and a day later the provider has let them go: the next round forbids them again
      -- (the clock moved there and back: requests are signed with today's time, and the ends the
      -- emulator saw pass stay passed)
      server:clock { offset = calendar.add_months(os.time(), 6) - os.time() + 86400 }
      assert.same({}, listed())
      server:clock {}
      assert.same({}, listed())
      status, out, err = run(ali("reconcile", "--from", list, "--places-limit", "3"))
      assert.equal(0, status, err)
      assert.truthy(out:find("3 desired, 0 forbidden before: 3 missing, 0 extra; 3 fixed", 1, true), out)
      assert.equal(3, #listed())
    end)
end)

describe("a ZEGO forbid's end on the command line", function()
  lazy_setup(function() server = emu.start {} end)
  lazy_teardown(function() if server then server:stop() end end)

  local function zg(...)
    local argv = c.zg(...)
    for _, a in ipairs { "--no-audit-log", "--no-progress" } do argv[#argv + 1] = a end
    return argv
  end

  it("an RTC forbid until resumed; a CDN forbid a day, or its --resume-time", function()
    local status, out, err = run(zg("forbid-rtc-streams", "r1", "r2"))
    assert.equal(0, status, err)
    local l = lines(out)
    assert.equal("forbidden until resumed (the provider gives these forbids no end)", l[#l])
    local t0 = os.time()
    status, out = run(zg("forbid-cdn-live-stream", "--stream-id", "c1", "--output", "json"))
    local t1 = os.time()
    assert.equal(0, status)
    local row = cjson.decode(lines(out)[1])
    assert.equal("provider_default", row.ends_by)
    local ends = core.parse_utc_timestamp(row.ends)
    assert.is_true(ends >= t0 + 86400 and ends <= t1 + 86401, row.ends)
  end)
end)
