-- Issue 47, the input side: what the command and the reconcilers *read*
-- never turns into an action the operator did not ask for. One `it` per
-- row of the fault matrix (the issue's rows on desired lists, the guard,
-- the list read twice, a closed output and usage errors, and the other
-- members of their classes), each against the emulator, with what was
-- sent read from its log. Rows on files and state: spec/47-input-files;
-- on flags and configuration: spec/47-input-config; on `call`, secrets
-- and redaction: spec/47-input-secrets; on relays and request ids:
-- spec/47-input-relay.
local cjson = require "cjson"
local input = require "streamctl.cli.input"
local reconcile = require "streamctl.operator.reconcile"
local streamctl = require "streamctl"
local emu = require "spec.helpers.emulator"
local process = require "spec.helpers.process"

local q = process.quote
local ROOT = os.getenv("STREAMCTL_ROOT") or "."
local HOME = process.temp_dir()
local D, APP = "push.example.com", "live"
local ZEGO_SECRET = "0123456789abcdef0123456789abcdef"
local HYPHEN, ZWSP = "\226\128\144", "\226\128\139" -- U+2010 (looks like '-'), U+200B (invisible)

local server, ali, z

local commands = require("spec.helpers.checks").cli(function() return server end, HOME)
local run, al, zg = commands.run, commands.al, commands.zg

local function count(action) return #(server:log { action = action, limit = 100000 }) end
local function sent_total()
  return #(server:log { limit = 100000 })
end

local function file(name, text)
  local path = HOME .. "/" .. name
  process.write_file(path, text)
  return path
end

local function lines_of(path)
  local out = {}
  for l in (process.read_file(path) or ""):gmatch("[^\n]+") do out[#out + 1] = cjson.decode(l) end
  return out
end

local function blocked()
  local res = assert(ali:describe_live_streams_block_list { domain_name = D, page_size = 3000 })
  local list = res.StreamUrls
  if type(list) == "table" and list.StreamUrl then list = list.StreamUrl end
  table.sort(list)
  return list
end

local function ids(prefix, n)
  local out = {}
  for i = 1, n do out[i] = prefix .. i end
  return out
end

describe("issue 47: only what the operator asked", function()
  lazy_setup(function()
    server = emu.start {}
    ali = assert(streamctl.aliyun.new { endpoint = server.aliyun_url, access_key_id = "LTAIemulatorKey",
                                        access_key_secret = "emulator-secret" })
    z = assert(streamctl.zego.new { endpoint = server.zego_url, app_id = 1234567890, server_secret = ZEGO_SECRET })
  end)
  lazy_teardown(function()
    if server then server:stop() end
    os.execute("rm -rf " .. q(HOME))
  end)
  before_each(function() server:reset() end)

  describe("a desired list is read whole and valid before anything is read or sent", function()
    it("an inline comment after an Aliyun name is refused, naming the line: the stream it names is not resumed",
      function()
      assert(ali:forbid_live_streams { domain_name = D, app_name = APP, stream_names = { "a", "b" } })
      local before = sent_total()
      local from = file("comment.txt", D .. "/live/a # keep this one forbidden\n" .. D .. "/live/b\n")
      local status, out, err = run(al("reconcile", "--from", from, "--remove-extra", "--no-audit-log"))
      assert.equal(2, status)
      assert.equal("", out)
      assert.equal("streamctl: --from " .. from .. ":1: stream_name must hold only letters, digits, '-' and '_' "
        .. "(found a space at byte 2) (a '#' after a name is not a comment: a comment is a line of its own that "
        .. "starts with '#')\n", err)
      assert.equal(before, sent_total()) -- (not even the block list was read)
      assert.same({ D .. "/live/a", D .. "/live/b" }, blocked())
    end)

    it("a look-alike or invisible character in a ZEGO ID is refused, naming it: nothing resumed, the state as it was",
      function()
      local state = HOME .. "/lookalike-state.json"
      os.remove(state)
      local first = file("ok.txt", "c-a\nc-b\n")
      assert.equal(0, (run(zg("reconcile", "--from", first, "--state", state, "--no-audit-log"))))
      local saved = process.read_file(state)
      local before = sent_total()
      for _, case in ipairs { { "c" .. HYPHEN .. "a", "U+2010", 2 }, { "c-a" .. ZWSP, "U+200B", 4 } } do
        local from = file("lookalike.txt", case[1] .. "\nc-b\n")
        local status, out, err = run(zg("reconcile", "--from", from, "--state", state, "--remove-extra",
          "--no-audit-log"))
        assert.equal(2, status, case[2])
        assert.equal("", out)
        assert.equal("streamctl: --from " .. from .. ":1: stream_id must hold only letters, digits, '-' and '_' "
          .. "(found a non-ASCII character (" .. case[2] .. ") at byte " .. case[3] .. ")\n", err)
      end
      assert.equal(before, sent_total())
      assert.equal(saved, process.read_file(state))
    end)

    it("a batch's --from list refuses a '#' after a name, saying it is not a comment; nothing sent, no intent",
      function()
      local log = HOME .. "/batch-comment.jsonl"
      os.remove(log)
      local from = file("batch-comment.txt", "room-1\nroom-2 # the host's\nroom-3\n")
      local status, out, err = run(zg("forbid-rtc-streams", "--from", from, "--audit-log", log))
      assert.equal(2, status)
      assert.equal("", out)
      assert.equal("streamctl: --from: " .. from .. ":2: the name must hold only letters, digits, '-' and '_' (found "
        .. "a space at byte 7) (a '#' after a name is not a comment: a comment is a line of its own that starts with "
        .. "'#')\n", err)
      assert.equal(0, sent_total())
      assert.same({}, lines_of(log))
    end)

    it("a JSON desired list with a key given twice or a NUL is refused, never read as its last word", function()
      local state = HOME .. "/json-state.json"
      os.remove(state)
      assert.equal(0, (run(zg("reconcile", "--from", file("ab.json", '[{"stream_id":"j-a"},{"stream_id":"j-b"}]'),
        "--state", state, "--no-audit-log"))))
      local saved = process.read_file(state)
      local before = sent_total()
      local cases = {
        { '[{"stream_id":"j-a","stream_id":"j-c"},{"stream_id":"j-b"}]',
          'has the key "stream_id" twice (the second at byte 21)' },
        { '[{"stream_id":"j-b"}]\0[{"stream_id":"j-a"}]', "has a NUL byte at byte 22" },
      }
      for _, case in ipairs(cases) do
        local from = file("twice.json", case[1])
        local status, out, err = run(zg("reconcile", "--from", from, "--state", state, "--remove-extra",
          "--no-audit-log"))
        assert.equal(2, status, case[2])
        assert.equal("", out)
        assert.equal("streamctl: --from " .. from .. ": " .. case[2] .. "\n", err)
      end
      assert.equal(before, sent_total())
      assert.equal(saved, process.read_file(state))
    end)

    it("a Lua desired table with a hole or a named key is refused, never read up to the hole", function()
      local store = { data = { ["streamctl:reconcile:zego:1234567890"] =
        '{"v":2,"streams":{"rtc:h-a":0,"rtc:h-b":0,"rtc:h-c":0},"pending":{}}' } }
      function store.get(self, k) return self.data[k] end
      function store.set(self, k, v) self.data[k] = v return true end
      local saved = store.data["streamctl:reconcile:zego:1234567890"]
      local report, err = reconcile.zego(z, { { stream_id = "h-a" }, nil, { stream_id = "h-c" },
        b = { stream_id = "h-b" } }, { state = store, remove_extra = true })
      assert.is_nil(report)
      assert.same({ "InvalidParameter", false, "desired must be a list of 3 items: it has the key 'b', which is not "
        .. "one of the positions 1..3 (a hole, or a named key)" }, { err.code, err.sent, err.message })
      report, err = reconcile.aliyun(ali, { [2] = { domain_name = D, app_name = APP, stream_name = "h-a" } },
        { remove_extra = true })
      assert.is_nil(report)
      assert.equal("desired must be a list of 1 items: it has the key 2, which is not one of the positions 1..1 (a "
        .. "hole, or a named key)", err.message)
      assert.equal(0, sent_total())
      assert.equal(saved, store.data["streamctl:reconcile:zego:1234567890"])
      -- the same rules without a client, for what keeps a desired state
      assert.is_true(reconcile.check("zego", { { stream_id = "h-a" }, { stream_id = "h-b", kind = "cdn" } }))
      local ok, cerr = reconcile.check("aliyun", { { domain_name = D, app_name = APP, stream_name = "h a" } })
      assert.is_nil(ok)
      assert.equal("desired[1] stream_name must hold only letters, digits, '-' and '_' (found a space at byte 2)",
        cerr.message)
      ok, cerr = reconcile.check("zego", { nil, { stream_id = "h-a" } })
      assert.is_nil(ok)
      assert.equal("InvalidParameter", cerr.code)
    end)

    it("the library's desired tables obey the same field rules as a call: nil, err, nothing read or sent", function()
      local cases = {
        { "aliyun", { domain_name = D, app_name = APP, stream_name = "a # keep" },
          "desired[1] stream_name must hold only letters, digits, '-' and '_' (found a space at byte 2) (a '#' after "
            .. "a name is not a comment: a comment is a line of its own that starts with '#')" },
        { "aliyun", { domain_name = "Push.example.com", app_name = APP, stream_name = "a" },
          "desired[1] domain_name must be lower case (push.example.com)" },
        { "aliyun", { domain_name = D, app_name = "li ve", stream_name = "a" },
          "desired[1] app_name must hold only letters, digits, '-' and '_' (found a space at byte 3)" },
        { "zego", { stream_id = "c" .. HYPHEN .. "a" },
          "desired[1] stream_id must hold only letters, digits, '-' and '_' (found a non-ASCII character (U+2010) "
            .. "at byte 2)" },
      }
      local store = { data = {}, get = function(self, k) return self.data[k] end,
                      set = function(self, k, v) self.data[k] = v return true end }
      for _, case in ipairs(cases) do
        local report, err
        if case[1] == "aliyun" then
          report, err = reconcile.aliyun(ali, { case[2] }, { remove_extra = true })
        else
          report, err = reconcile.zego(z, { case[2] }, { state = store, remove_extra = true })
        end
        assert.is_nil(report)
        assert.same({ "InvalidParameter", false, case[3] }, { err.code, err.sent, err.message })
      end
      assert.equal(0, sent_total())
      assert.same({}, store.data)
    end)
  end)

  describe("un-banning is a blast radius too", function()
    it("an empty or comment-only --from, or [], with --remove-extra is refused unless --allow-empty", function()
      assert(ali:forbid_live_streams { domain_name = D, app_name = APP, stream_names = { "a", "b" } })
      local before = sent_total()
      for _, text in ipairs { "", "# nothing here\n\n", "[]" } do
        local from = file("empty.txt", text)
        local status, out, err = run(al("reconcile", "--from", from, "--domain-name", D, "--remove-extra",
          "--no-audit-log"))
        assert.equal(2, status, text)
        assert.equal("", out)
        assert.equal("streamctl: refused: --from " .. from .. " holds no stream (it is empty, or holds only blank "
          .. "lines and comments), and --remove-extra would resume every stream forbidden in the domains named by "
          .. "--domain-name; nothing was read or sent. Pass --allow-empty if that is what you mean.\n", err)
      end
      assert.equal(before, sent_total())
      -- ZEGO: every stream of the state
      local state = HOME .. "/empty-state.json"
      os.remove(state)
      assert.equal(0, (run(zg("reconcile", "--from", file("two.txt", "e1\ne2\n"), "--state", state,
        "--no-audit-log"))))
      local saved = process.read_file(state)
      local status, _, err = run(zg("reconcile", "--from", file("empty.txt", "# none\n"), "--state", state,
        "--remove-extra", "--no-audit-log"))
      assert.equal(2, status)
      assert.truthy(err:find("would resume every stream forbidden in --state", 1, true), err)
      assert.equal(saved, process.read_file(state))
      assert.equal(0, count("ResumeRTCStreams"))
      -- the library says the same; said explicitly, it is done
      local report, lerr = reconcile.aliyun(ali, {}, { remove_extra = true, domains = { D } })
      assert.is_nil(report)
      assert.same({ "InvalidParameter", false }, { lerr.code, lerr.sent })
      assert.equal(0, count("ResumeLiveStream"))
      status = run(al("reconcile", "--from", file("empty.txt", ""), "--domain-name", D, "--remove-extra",
        "--allow-empty", "--no-audit-log"))
      assert.equal(0, status)
      assert.equal(2, count("ResumeLiveStream"))
      assert.same({}, blocked())
    end)

    it("reconcile --remove-extra that would resume 147 streams needs --yes; the refusal is audited", function()
      local state, log = HOME .. "/many-state.json", HOME .. "/many.jsonl"
      os.remove(state)
      os.remove(log)
      local all = file("all.txt", table.concat(ids("m", 148), "\n") .. "\n")
      assert.equal(0, (run(zg("reconcile", "--from", all, "--state", state, "--yes", "--no-audit-log"))))
      local saved = process.read_file(state)
      local one = file("one.txt", "m1\n")
      local status, out, err = run(zg("reconcile", "--from", one, "--state", state, "--remove-extra", "--audit-log",
        log))
      assert.equal(2, status)
      assert.equal("", out)
      assert.equal("streamctl: refused: this run would resume 147 streams, more than --max-resume (100); nothing was "
        .. "sent. Pass --yes to send them (or a larger --max-resume).\n", err)
      assert.equal(0, count("ResumeRTCStreams"))
      assert.equal(saved, process.read_file(state))
      local records = lines_of(log)
      assert.equal(1, #records)
      assert.same({ "outcome", "refused", 147, 100, 0, false }, { records[1].record, records[1].outcome,
        records[1].guard.resumes, records[1].guard.max_resume, records[1].guard.count, records[1].guard.allowed })
      assert.equal(147, #records[1].streams)
      assert.same({ "ResumeRTCStreams", "not_sent" }, { records[1].streams[1].action, records[1].streams[1].outcome })
      -- a larger --max-resume lets it through
      status = run(zg("reconcile", "--from", one, "--state", state, "--remove-extra", "--max-resume", "147",
        "--no-audit-log"))
      assert.equal(0, status)
      assert.equal(8, count("ResumeRTCStreams"))
    end)

    it("a list of resumes is guarded as a list of forbids is: --max-resume, the same --yes", function()
      local from = file("resumes.txt", table.concat(ids("r", 101), "\n") .. "\n")
      local status, out, err = run(zg("resume-rtc-streams", "--from", from, "--no-audit-log"))
      assert.equal(2, status)
      assert.equal("", out)
      assert.equal("streamctl: refused: this run would resume 101 streams, more than --max-resume (100); nothing was "
        .. "sent. Pass --yes to send them (or a larger --max-resume).\n", err)
      status, out, err = run(al("resume-live-streams", "--domain-name", D, "--app-name", APP, "x", "y", "z",
        "--max-resume", "2", "--no-audit-log"))
      assert.equal(2, status, out)
      assert.truthy(err:find("would resume 3 streams, more than --max-resume (2)", 1, true), err)
      assert.equal(0, sent_total())
      status = run(zg("resume-rtc-streams", "--from", from, "--yes", "--no-audit-log"))
      assert.equal(0, status)
      assert.equal(6, count("ResumeRTCStreams"))
    end)

    it("a call of a Forbid* or Resume* action is guarded by the streams its parameters name", function()
      local log = HOME .. "/call-guard.jsonl"
      os.remove(log)
      local status, out, err = run(zg("call", "ForbidRTCStreams", "StreamId[]=c-a", "StreamId[]=c-b",
        "StreamId[]=c-c", "--max-forbid", "2", "--audit-log", log))
      assert.equal(2, status)
      assert.equal("", out)
      assert.equal("streamctl: refused: this run would forbid 3 streams, more than --max-forbid (2); nothing was sent. "
        .. "Pass --yes to send them (or a larger --max-forbid).\n", err)
      status, out, err = run(zg("call", "ResumeRTCStreams", "StreamId[]=c-a", "StreamId[]=c-b", "--max-resume", "1",
        "--audit-log", log))
      assert.equal(2, status, out)
      assert.truthy(err:find("would resume 2 streams, more than --max-resume (1)", 1, true), err)
      assert.equal(0, sent_total())
      local records = lines_of(log)
      assert.same({ "refused", 3, "c-a", "not_sent" }, { records[1].outcome, #records[1].streams,
        records[1].streams[1].stream, records[1].streams[1].outcome })
      assert.same({ "refused", 2 }, { records[2].outcome, records[2].guard.resumes })
      status = run(zg("call", "ForbidRTCStreams", "StreamId[]=c-a", "StreamId[]=c-b", "StreamId[]=c-c",
        "--max-forbid", "2", "--yes", "--no-audit-log"))
      assert.equal(0, status)
      assert.equal(1, count("ForbidRTCStreams"))
    end)
  end)

  describe("what the guard counted is what is sent", function()
    it("a --from file changed after its count stops the run at the first changed block; the audit says failed",
      function()
      local saved_block, saved_ahead = input.BLOCK, input.LOOKAHEAD
      input.BLOCK, input.LOOKAHEAD = 64, 5
      local names = ids("w", 400) -- 20 IDs a call: 20 calls, read a few calls ahead of sending
      local from = file("changing.txt", table.concat(names, "\n") .. "\n")
      local log = HOME .. "/changing.jsonl"
      os.remove(log)
      local rewritten = false
      local signal = { catch = function() end, caught = function()
        -- (between rounds, once the first call arrived: the file rewritten, every byte after the first block)
        if not rewritten and count("ForbidRTCStreams") >= 1 then
          rewritten = true
          local text = process.read_file(from)
          process.write_file(from, text:sub(1, 64) .. (text:sub(65):gsub("w", "X")))
        end
        return nil
      end }
      local status, _, err = run(zg("forbid-rtc-streams", "--from", from, "--yes", "--audit-log", log, "--output", "json"),
        signal)
      input.BLOCK, input.LOOKAHEAD = saved_block, saved_ahead
      assert.is_true(rewritten)
      assert.equal(1, status)
      local sent = {}
      for _, e in ipairs(server:log { action = "ForbidRTCStreams", limit = 1000 }) do
        for _, id in ipairs(e.stream_ids) do sent[#sent + 1] = id end
      end
      for _, id in ipairs(sent) do assert.truthy(id:match("^w%d+$"), "a name never counted was sent: " .. id) end
      assert.is_true(#sent < 400, #sent .. " sent")
      assert.truthy(err:find("changed while it was read: its bytes", 1, true), err)
      local records = lines_of(log)
      local outcome = records[#records]
      assert.same({ "outcome", "failed", 1 }, { outcome.record, outcome.outcome, outcome.exit })
      assert.equal(400 - #sent, outcome.counts.not_sent)
    end)

    it("a closed output stops sending for the table as for JSON lines (| head -1)", function()
      if process.preloaded() then
        pending("a child of its own: the same under valgrind or ASan; run once, in the plain runs")
        return
      end
      local from = file("closed.txt", table.concat(ids("h", 200), "\n") .. "\n")
      for _, output in ipairs { "table", "json" } do
        server:reset()
        local errfile = HOME .. "/closed-" .. output .. ".err"
        -- (paced at ForbidLiveStream's 20 a second, 200 streams take 10 s: a run that stops sends a few)
        local cmd = "env LUA_PATH=" .. q(package.path) .. " LUA_CPATH=" .. q(package.cpath) .. " HOME=" .. q(HOME)
          .. " " .. q(process.interpreter()) .. " " .. q(ROOT .. "/bin/streamctl")
          .. " aliyun forbid-live-streams --domain-name " .. D .. " --app-name " .. APP .. " --from " .. q(from)
          .. " --yes --no-audit-log --output " .. output .. " --endpoint " .. q(server.aliyun_url)
          .. " --access-key-id LTAIemulatorKey --access-key-secret emulator-secret 2>" .. q(errfile)
          .. " | head -1 >/dev/null; echo \"${PIPESTATUS[0]}\""
        local status = process.capture("bash -c " .. q(cmd))
        local sent = count("ForbidLiveStream")
        assert.is_true(sent < 200, output .. ": " .. sent .. " of 200 sent")
        assert.equal("1", (status:gsub("%s+$", "")), output)
        assert.truthy(process.read_file(errfile):find("cannot write to standard output", 1, true),
          process.read_file(errfile))
      end
    end)
  end)

  describe("a wait ends at Ctrl-C", function()
    it("an audit log another process holds locked: Ctrl-C ends the intent's wait, nothing sent", function()
      if process.preloaded() then
        pending("a child of its own: the same under valgrind or ASan; run once, in the plain runs")
        return
      end
      local log = HOME .. "/held.jsonl"
      process.write_file(log, "")
      os.execute("chmod 600 " .. q(log))
      -- (flock(1) holds the log's lock for 10 s, or until it is stopped)
      local holder = process.spawn("flock " .. q(log) .. " sleep 10")
      -- (waits on states, not times, which a loaded machine outruns: the lock held before the command starts,
      -- and the command blocked in flock(2) when INT comes; sooner, it is not yet caught and kills silently, or
      -- is caught but interrupts no wait, and the command waits out the holder)
      local held = process.wait_flock(log)
      if not held then process.stop(holder) end
      assert.is_true(held, "flock(1) never held " .. log)
      local errfile = HOME .. "/held.err"
      local child = process.spawn("env LUA_PATH=" .. q(package.path) .. " LUA_CPATH=" .. q(package.cpath)
        .. " HOME=" .. q(HOME) .. " " .. q(process.interpreter()) .. " " .. q(ROOT .. "/bin/streamctl")
        .. " zego forbid-rtc-streams w-a --audit-log " .. q(log) .. " --endpoint " .. q(server.zego_url)
        .. " --app-id 1234567890 --server-secret " .. ZEGO_SECRET .. " 2>" .. q(errfile))
      local waiting = process.wait_flock(log, child.pid)
      if not waiting then process.stop(child) process.stop(holder) end
      assert.is_true(waiting, "streamctl never waited for the lock on " .. log .. ": "
        .. (process.read_file(errfile) or ""))
      os.execute("kill -INT " .. child.pid)
      child.pipe:read("*a")
      child.pipe:close()
      process.stop(holder)
      -- (the wait ended at the signal, as the message says, the flock(2) interrupted: not when the holder let
      -- go after its 10 s, when the intent would have been written and the forbid sent. How soon is the
      -- machine's: no verdict)
      assert.equal("streamctl: the audit log cannot be written (cannot write " .. log .. ": Interrupted system call): "
        .. "nothing was sent (--audit-log FILE for another file, or --no-audit-log)\n", process.read_file(errfile))
      assert.equal(0, sent_total())
      assert.equal("", process.read_file(log))
    end)
  end)

  describe("a usage error happens before the intent", function()
    it("a past --resume-time, a bad name, an empty --from: exit 2, nothing sent, no intent in the audit log",
      function()
      local log = HOME .. "/usage.jsonl"
      local past = "2020-01-01T00:00:00Z"
      local cases = {
        al("forbid-live-stream", "--domain-name", D, "--app-name", APP, "--stream-name", "a", "--resume-time", past),
        al("forbid-live-streams", "--domain-name", D, "--app-name", APP, "a", "b", "--resume-time", past),
        al("forbid-live-streams", "--domain-name", D, "--app-name", APP, "--from",
          file("long.txt", table.concat(ids("l", 30), "\n")), "--resume-time", past),
        al("reconcile", "--from", file("desired.txt", D .. "/live/a\n"), "--resume-time", past),
        zg("forbid-rtc-streams", "--from", "/dev/null"),
        al("forbid-live-streams", "--domain-name", D, "--app-name", APP, "--from", "/dev/null"),
        zg("reconcile", "--from", file("bad.txt", "a b\n"), "--state", HOME .. "/usage-state.json"),
        al("reconcile", "--from", file("desired.txt", D .. "/live/a\n"), "--domain-name", "Push.example.com"),
      }
      for i, argv in ipairs(cases) do
        os.remove(log)
        argv[#argv + 1] = "--audit-log"
        argv[#argv + 1] = log
        local saved = input.LOOKAHEAD
        input.LOOKAHEAD = 5
        local status, out, err = run(argv)
        input.LOOKAHEAD = saved
        assert.equal(2, status, i .. ": " .. err)
        assert.equal("", out, i)
        assert.is_nil(err:find("traceback", 1, true), err)
        for _, r in ipairs(lines_of(log)) do
          assert.is_not.equal("intent", r.record, i .. ": an intent for a run that sent nothing: " .. err)
        end
      end
      assert.equal(0, sent_total())
    end)
  end)
end)
