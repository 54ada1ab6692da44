-- Issue 66's fault matrix for the command's input, the rows that need an
-- answer (spec/command/77-once holds those that do not), against the
-- emulator on 127.0.0.1, one `it` a row: "nothing sent" is its request log
-- empty, "what it says" the exact line.
--   * `reconcile --from A --from B --remove-extra` (both providers): B alone
--     was read and A's streams resumed, "In sync"; refused now, nothing sent,
--     A's streams still forbidden;
--   * `call` of a named action is the named command: a ResumeTime past
--     (Aliyun) or 40 days out (ZEGO's CDN forbid) was sent; refused now; and
--     reconcile's --cdn-resume-time by the same rule, before anything is sent;
--   * every forbid says when it ends: forbid-cdn-live-stream and `call
--     ForbidCDNLiveStream` printed no "forbidden until" line (an answer with
--     content skipped it); ZEGO's reconcile said the RTC forbids' end for its
--     CDN ones too, and named --resume-time for its --cdn-resume-time; a
--     `call`'s end is its ResumeTime. Aliyun's forbid-live-stream, which
--     printed its line, is the control.
local emu = require "spec.helpers.emulator"
local process = require "spec.helpers.process"

local HOME = process.temp_dir()
local D, APP = "push.example.com", "live"

local server
local commands = require("spec.helpers.checks").cli(function() return server end, HOME)
local run, al, zg = commands.run, commands.al, commands.zg

local function sent() return #(server:log { limit = 100000 }) end

local function file(name, text)
  local path = HOME .. "/" .. name
  process.write_file(path, text)
  return path
end

local function last_line(text)
  local last
  for l in text:gmatch("[^\n]+") do last = l end
  return last
end

local function days(n) return os.date("!%Y-%m-%dT%H:%M:%SZ", os.time() + n * 86400) end

local TWICE = "streamctl: option '--from' given twice: it is taken once (see --help; one that takes many says 'repeat')\n"

describe("issue 66, once: the rows that need an answer", function()
  lazy_setup(function()
    server = emu.start {}
  end)
  lazy_teardown(function()
    if server then server:stop() end
    os.execute("rm -rf " .. process.quote(HOME))
  end)
  before_each(function() server:reset() end)

  it("zego reconcile --from A --from B --remove-extra: refused naming --from, nothing sent, A's stream stays "
    .. "forbidden (B alone was read, A's resumed, 'In sync', exit 0)", function()
    local state = HOME .. "/zego-state.json"
    local a, b = file("a.txt", "keep-a\n"), file("b.txt", "keep-b\n")
    assert.equal(0, (run(zg("reconcile", "--from", a, "--state", state, "--no-audit-log"))))
    local saved = process.read_file(state)
    local before = sent()
    local status, out, err = run(zg("reconcile", "--from", a, "--from", b, "--remove-extra", "--state", state,
      "--no-audit-log"))
    assert.same({ 2, "", TWICE }, { status, out, err })
    assert.equal(before, sent())
    assert.equal(saved, process.read_file(state))
  end)

  it("aliyun reconcile --from A --from B --remove-extra: refused naming --from, nothing read or sent, A's stream "
    .. "still on the block list", function()
    local a, b = file("ali-a.txt", D .. "/live/keep-a\n"), file("ali-b.txt", D .. "/live/keep-b\n")
    assert.equal(0, (run(al("reconcile", "--from", a, "--no-audit-log"))))
    assert.equal(1, #server:log { action = "ForbidLiveStream" })
    local before = sent()
    local status, out, err = run(al("reconcile", "--from", a, "--from", b, "--remove-extra", "--no-audit-log"))
    assert.same({ 2, "", TWICE }, { status, out, err })
    assert.equal(before, sent()) -- (not even the block list read: keep-a was not resumed)
  end)

  it("zego reconcile --cdn-resume-time 40 days out: refused naming the flag by ForbidCDNLiveStream's rule, nothing "
    .. "sent (the RTC forbids were sent, then each CDN one failed naming a field, 'resume_time')", function()
    local state = HOME .. "/cdn-state.json"
    local status, out, err = run(zg("reconcile", "--from", file("cdn.txt", "r1\ncdn:c1\n"), "--state", state,
      "--cdn-resume-time", days(40), "--no-audit-log"))
    assert.same({ 2, "", "streamctl: '--cdn-resume-time' must be at most 30 days ahead\n" }, { status, out, err })
    assert.equal(0, sent())
    assert.is_nil(process.read_file(state))
    -- within the 30 days: both sent
    status, out, err = run(zg("reconcile", "--from", HOME .. "/cdn.txt", "--state", state, "--cdn-resume-time",
      days(10), "--no-audit-log"))
    assert.equal(0, status, out .. err)
    assert.equal(1, #server:log { action = "ForbidCDNLiveStream" })
  end)

  it("zego reconcile of an RTC and a CDN stream: a line for each end, with how many it speaks for (it said the RTC "
    .. "one's, 'until resumed', for both)", function()
    local status, out, err = run(zg("reconcile", "--from", file("mixed.txt", "r1\ncdn:c1\n"), "--state",
      HOME .. "/mixed.json", "--no-audit-log"))
    assert.equal(0, status, err)
    local l = {}
    for line in out:gmatch("[^\n]+") do l[#l + 1] = line end
    assert.equal("forbidden until resumed (the provider gives these forbids no end): 1 of the 2 forbids", l[#l - 1])
    assert.matches("^forbidden until %d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%dZ %(no %-%-cdn%-resume%-time: the provider's "
      .. "own end%): 1 of the 2 forbids$", l[#l])
  end)

  for _, row in ipairs {
    { "aliyun call ForbidLiveStream ... ResumeTime=2020-01-01T00:00:00Z", function()
      return al("call", "ForbidLiveStream", "DomainName=" .. D, "AppName=" .. APP, "StreamName=s1",
        "LiveStreamType=publisher", "ResumeTime=2020-01-01T00:00:00Z", "--no-audit-log")
    end, "streamctl: parameter 'ResumeTime' must be in the future (it is when the forbidden stream may publish "
      .. "again)\n" },
    { "zego call ForbidCDNLiveStream 40 days out", function()
      return zg("call", "ForbidCDNLiveStream", "StreamId=x1", "ResumeTime=" .. days(40), "--no-audit-log")
    end, "streamctl: parameter 'ResumeTime' must be at most 30 days ahead\n" },
  } do
    it(row[1] .. ": refused as the named command refuses it, nothing sent (it was sent, 'ok')", function()
      local status, out, err = run(row[2]())
      assert.same({ 2, "", row[3] }, { status, out, err })
      assert.equal(0, sent())
    end)
  end

  local T = days(10):sub(1, 11) .. "00:00:00Z"
  for _, row in ipairs {
    { "zego forbid-cdn-live-stream", function() return zg("forbid-cdn-live-stream", "--stream-id", "x1",
      "--no-audit-log") end, "^forbidden until %d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%dZ %(no %-%-resume%-time: the "
      .. "provider's own end%)$" },
    { "zego forbid-cdn-live-stream --resume-time T", function() return zg("forbid-cdn-live-stream", "--stream-id",
      "x1", "--resume-time", T, "--no-audit-log") end, "forbidden until " .. T .. " (--resume-time)" },
    { "zego call ForbidCDNLiveStream ResumeTime=T", function() return zg("call", "ForbidCDNLiveStream",
      "StreamId=x1", "ResumeTime=" .. T, "--no-audit-log") end, "forbidden until " .. T .. " (ResumeTime)" },
    { "aliyun forbid-live-stream --resume-time T (the control: it said so before)", function() return al("forbid-live-stream",
      "--domain-name", D, "--app-name", APP, "--stream-name", "s1", "--resume-time", T, "--no-audit-log") end,
      "forbidden until " .. T .. " (--resume-time)" },
    { "zego reconcile cdn:c1 --cdn-resume-time T (it named --resume-time, a flag it has not)", function()
      return zg("reconcile", "--from", file("cdn-t.txt", "cdn:c1\n"), "--state", HOME .. "/cdn-t.json",
        "--cdn-resume-time", T, "--no-audit-log") end, "forbidden until " .. T .. " (--cdn-resume-time)" },
  } do
    it(row[1] .. ": its last line says when the forbid ends", function()
      local status, out, err = run(row[2]())
      assert.equal(0, status, err)
      local last = last_line(out)
      if row[3]:sub(1, 1) == "^" then
        assert.matches(row[3], last)
      else
        assert.equal(row[3], last, out)
      end
    end)
  end
end)
