-- A paged listing read whole or not at all, on the command line (issue
-- 66), against the emulator's page fault (a listing's answer served, then
-- its page cut and its total replaced: docs/emulator.md,
-- "Faults"): the account's 60 domains answered 20 of the 50 asked with
-- TotalCount 60, or with none; a block list answering TotalNum 1e300, for
-- the batch's domain, another domain's count, or a reconcile round. Each
-- run says which page was refused and why, exits 1, sends no forbid and
-- no resume, and audits the failure; none shows a Lua traceback.
local cjson = require "cjson"
local emu = require "spec.helpers.emulator"
local nginx = require "spec.helpers.nginx"
local process = require "spec.helpers.process"

local HOME = nginx.temp_dir()
local D, APP = "push.example.com", "live"
local LOG = HOME .. "/audit.jsonl"

-- the account's domains: D and 59 others, so that two pages of 50 list them
local DOMAINS = { D }
for i = 1, 59 do DOMAINS[#DOMAINS + 1] = string.format("d%02d.example.com", i) end

local server
local c = require("spec.helpers.checks").cli(function() return server end, HOME)
-- (the command with the emulator's endpoint and keys, its audit line written to LOG)
local function run_ali(...)
  local argv = c.al(...)
  argv[#argv + 1], argv[#argv + 2], argv[#argv + 3] = "--audit-log", LOG, "--no-progress"
  return c.run(argv)
end
local function sent(action) return #(server:log { action = action, limit = 10000 }) end
local function audited() return cjson.decode(assert(process.read_file(LOG)):match("([^\n]+)\n?$")) end

local SAID = "streamctl: the block list's places could not be read (streamctl: aliyun %s: InvalidResponse: %s "
  .. "[RequestId "

describe("a paged listing read whole or not at all, on the command line", function()
  lazy_setup(function()
    server = emu.start { config = { aliyun = { domains = DOMAINS } } }
  end)
  lazy_teardown(function() if server then server:stop() end end)
  before_each(function()
    server:reset()
    os.remove(LOG)
  end)

  it("the emulator's page fault cuts a listing's page and answers the total it is given", function()
    local cli = assert(require("streamctl.aliyun").new { endpoint = server.aliyun_url,
      access_key_id = "LTAIemulatorKey", access_key_secret = "emulator-secret" })
    server:faults { kind = "page", action = "DescribeLiveUserDomains", keep = 20, total = 1e300 }
    local res = assert(cli:describe_live_user_domains { page_size = 50 })
    assert.same({ 20, 1e300 }, { #res.Domains.PageData, res.TotalCount })
    server:faults { kind = "page", action = "DescribeLiveUserDomains", total = "none" }
    res = assert(cli:describe_live_user_domains { page_size = 50 })
    assert.same({ 50, nil }, { #res.Domains.PageData, res.TotalCount })
    res = assert(cli:describe_live_user_domains { page_size = 50 })
    assert.same({ 50, 60 }, { #res.Domains.PageData, res.TotalCount })
    -- (a fault of another provider's, or a setting of another kind's, is refused)
    local answer, status = server:faults({ kind = "page" }, "zego")
    assert.same({ "fault: kind page does not apply to zego", 400 }, { answer.error, status })
    answer, status = server:faults { kind = "http500", keep = 1 }
    assert.same({ "fault: keep must be an integer >= 0, for kind page only", 400 }, { answer.error, status })
  end)

  for _, row in ipairs {
    { "the domains answering 20 of the 50 asked with TotalCount 60 (the issue's row)",
      { kind = "page", action = "DescribeLiveUserDomains", keep = 20 }, "DescribeLiveUserDomains",
      "page 1 of the account's domains ends the list at 20 entries, but its TotalCount is 60: the block list's "
        .. "places cannot be counted; nothing was sent" },
    { "the domains answering 20 of the 50 asked with no TotalCount (the issue's row)",
      { kind = "page", action = "DescribeLiveUserDomains", keep = 20, total = "none" }, "DescribeLiveUserDomains",
      "page 1 of the account's domains has no TotalCount: the block list's places cannot be counted; nothing was "
        .. "sent" },
    { "the batch's block list answering TotalNum 1e300 (the issue's row: a Lua traceback)",
      { kind = "page", action = "DescribeLiveStreamsBlockList", total = 1e300 }, "DescribeLiveStreamsBlockList",
      "page 1 of the block list of push.example.com has a TotalNum that is not a count (1e+300): nothing was sent" },
    { "another domain's count answering TotalNum 1e300 (a traceback)",
      { { kind = "delay", delay_ms = 0, action = "DescribeLiveStreamsBlockList" },
        { kind = "page", action = "DescribeLiveStreamsBlockList", total = 1e300 } }, "DescribeLiveStreamsBlockList",
      "page 1 of the block list of d01.example.com has a TotalNum that is not a count (1e+300): the block list's "
        .. "places cannot be counted; nothing was sent" },
    { "the domains' second page answering a TotalCount of 59 where the first said 60",
      { { kind = "delay", delay_ms = 0, action = "DescribeLiveUserDomains" },
        { kind = "page", action = "DescribeLiveUserDomains", total = 59 } }, "DescribeLiveUserDomains",
      "page 2 of the account's domains has a TotalCount of 59 where page 1 had 60: the listing changed while it "
        .. "was read: the block list's places cannot be counted; nothing was sent" },
  } do
    it(row[1] .. ": refused naming the page, exit 1, no forbid sent, audited", function()
      server:faults(row[2])
      local status, out, err = run_ali("forbid-live-streams", "--domain-name", D, "--app-name", APP, "a", "b")
      assert.same({ 1, "" }, { status, out })
      local said = string.format(SAID, row[3], row[4])
      assert.equal(said, err:sub(1, #said))
      assert.falsy(err:find("traceback", 1, true), err)
      assert.equal(0, sent("ForbidLiveStream"))
      local rec = audited()
      assert.same({ "failed", 1, "not_sent" }, { rec.outcome, rec.exit, rec.streams[1].outcome })
    end)
  end

  it("a reconcile round whose block list answers TotalNum 1e300: refused naming the page, nothing sent", function()
    local path = HOME .. "/desired.txt"
    local f = assert(io.open(path, "wb"))
    f:write(D, "/", APP, "/a\n")
    f:close()
    server:faults { kind = "page", action = "DescribeLiveStreamsBlockList", total = 1e300 }
    local status, out, err = run_ali("reconcile", "--from", path, "--remove-extra", "--yes")
    assert.equal(1, status, err)
    assert.equal("", out)
    assert.truthy(err:find("page 1 of the block list of push.example.com has a TotalNum that is not a count "
      .. "(1e+300): nothing was sent", 1, true), err)
    assert.falsy(err:find("traceback", 1, true), err)
    assert.same({ 0, 0 }, { sent("ForbidLiveStream"), sent("ResumeLiveStream") })
  end)
end)
