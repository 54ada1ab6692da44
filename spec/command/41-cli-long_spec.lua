-- Long lists on the command line (streamctl.cli.input, docs/cli.md "Long
-- lists"): a --from list longer than the look-ahead is read as it goes.
-- A file is counted first (the guard's count, the progress total, the
-- intent's count and the file's SHA-256) and read again as the batch sends;
-- a pipe is sent as it comes, refused without --yes. Rows are written as
-- streams finish, the audit log gets "outcomes" records as they do, and an
-- interrupted run says how much of the list was not read. The look-ahead is
-- made small here (5 names) so that lists of tens of names stream.
local cjson = require "cjson"
local input = require "streamctl.cli.input"
local audit = require "streamctl.operator.audit"
local core = require "streamctl.core"
local emu = require "spec.helpers.emulator"
local nginx = require "spec.helpers.nginx"

local HOME = nginx.temp_dir()
local ALI_SECRET, ZEGO_SECRET = "emulator-secret", "0123456789abcdef0123456789abcdef"
local NO_SIGNALS = require("spec.helpers.checks").NO_SIGNALS

local process = require "spec.helpers.process"
local write, read = function(path, text) process.write_file(path, text) return path end, process.read_file

local function records(path)
  local out = {}
  for l in (read(path) or ""):gmatch("[^\n]+") do out[#out + 1] = cjson.decode(l) end
  return out
end

local lines = require("spec.helpers.checks").lines

-- Every name the iterator gives.
local function drain(list)
  local out = {}
  for name in list.names do out[#out + 1] = name end
  return out
end

-- A pipe whose reader sees `text` (a shell's printf through cat: not seekable).
local function pipe(text)
  local path = write(os.tmpname(), text)
  local p = assert(io.popen("cat '" .. path .. "'; rm -f '" .. path .. "'", "r"))
  return p
end

describe("streamctl.cli.input", function()
  local saved
  setup(function() saved = input.LOOKAHEAD; input.LOOKAHEAD = 5 end)
  teardown(function() input.LOOKAHEAD = saved end)

  it("reads a list up to the look-ahead whole: an array, as names on the command line", function()
    local path = write(os.tmpname(), "\239\187\191a\n  b  \n\n# note\nc\r\nd\ne")
    local list = assert(input.open(path, nil, { first = { "x" } }))
    os.remove(path)
    assert.same({ names = { "x", "a", "b", "c", "d", "e" }, streamed = false, name = path }, list)
  end)

  it("counts a longer file first (distinct names, its bytes' SHA-256), then reads it again as it is sent", function()
    local text = "\239\187\191n1\nn2\nn3\n# a comment\nn2\nn4\nn5\nn6\n\nn7\nn1\nn8"
    local path = write(os.tmpname(), text)
    local list = assert(input.open(path, nil, { first = { "f1", "n3" } }))
    assert.same({ true, 9, core.sha256_hex(text), #text, nil }, { list.streamed, list.count, list.sha256, list.bytes,
      list.count_at_least })
    -- what `sha256sum FILE` says
    local p = io.popen("sha256sum '" .. path .. "'")
    assert.equal(list.sha256, p:read("*a"):match("^(%x+)"))
    p:close()
    local got, lines_at = {}, {}
    for name in list.names do got[#got + 1], lines_at[#lines_at + 1] = name, list.line or 0 end
    assert.same({ "f1", "n3", "n1", "n2", "n3", "n2", "n4", "n5", "n6", "n7", "n1", "n8" }, got)
    -- the line of each (none for the names given first; comments and blank lines counted)
    assert.same({ 0, 0, 1, 2, 3, 5, 6, 7, 8, 10, 11, 12 }, lines_at)
    assert.is_nil(list.names())
    assert.is_nil(list.error)
    os.remove(path)
  end)

  it("refuses a file with a bad line anywhere before anything is read for sending, naming the line", function()
    local names = {}
    for i = 1, 40 do names[i] = "s" .. i end
    names[33] = "s\1x"
    local path = write(os.tmpname(), table.concat(names, "\n"))
    local list, err = input.open(path, nil, { check = function(name)
      if name:find("%c") then return "must not contain control characters (TAB, DEL...)" end
    end })
    assert.is_nil(list)
    assert.equal("--from: " .. path .. ":33: the name must not contain control characters (TAB, DEL...)", err)
    names[33] = "s33"
    names[38] = "\239\187\191s38"
    write(path, table.concat(names, "\n"))
    list, err = input.open(path)
    assert.is_nil(list)
    assert.equal("--from: " .. path .. ":38: a byte order mark (U+FEFF) inside the list; only the first line may "
      .. "start with one", err)
    os.remove(path)
  end)

  it("stops at the first block that changed between the count and the sending, sending nothing of it", function()
    local path = write(os.tmpname(), "a\nb\nc\nd\ne\nf\ng\n")
    local block = input.BLOCK
    input.BLOCK = 4 -- (blocks "a\nb\n", "c\nd\n"...: a change in the second one)
    local list = assert(input.open(path))
    assert.equal(7, list.count)
    write(path, "a\nb\nc\nX\ne\nf\ng\nh\ni\n")
    local got = drain(list)
    input.BLOCK = block
    -- the names of the blocks read as counted, none of the one that changed or after
    assert.same({ "a", "b" }, got)
    assert.equal("--from: " .. path .. " changed while it was read: its bytes 5 to 8 (from line 3) are not those "
      .. "counted before sending; the run stops there and sends nothing of the list from that line on", list.error)
    -- cut shorter than counted: what is left is sent, and the end is said
    input.BLOCK = 4
    write(path, "a\nb\nc\nd\ne\nf\ng\n")
    list = assert(input.open(path))
    write(path, "a\nb\nc\nd\n")
    got = drain(list)
    input.BLOCK = block
    assert.same({ "a", "b", "c", "d" }, got)
    assert.equal("--from: " .. path .. " changed while it was read: it ends at byte 8, where 14 bytes were counted "
      .. "before sending", list.error)
    -- cut at a block's end inside a name (every block read matches): the name's first bytes are never sent
    -- (the simulation's seed 248: 'x' of 'x-N' forbidden)
    input.BLOCK = 4
    write(path, "a\nb\nc-long\nd\ne\nf\n")
    list = assert(input.open(path))
    write(path, "a\nb\nc-lo")
    got = drain(list)
    input.BLOCK = block
    assert.same({ "a", "b" }, got)
    assert.equal("--from: " .. path .. " changed while it was read: it ends at byte 8, where 17 bytes were counted "
      .. "before sending", list.error)
    -- a last line counted without its newline, grown since ("fff" now "fffggg"): not sent as "fff"
    input.BLOCK = 4
    write(path, "a\nb\nc\nd\ne\nfff")
    list = assert(input.open(path))
    write(path, "a\nb\nc\nd\ne\nfffggg\n")
    got = drain(list)
    input.BLOCK = block
    assert.same({ "a", "b", "c", "d", "e" }, got)
    assert.equal("--from: " .. path .. " changed while it was read: its last line, counted without a newline at "
      .. "byte 13, goes on past it; the run stops there and sends nothing of that line", list.error)
    -- the same file unchanged: every name, "fff" last, and no error
    write(path, "a\nb\nc\nd\ne\nfff")
    list = assert(input.open(path))
    assert.same({ "a", "b", "c", "d", "e", "fff" }, drain(list))
    assert.is_nil(list.error)
    os.remove(path)
  end)

  it("sends a pipe as it comes: the look-ahead first, its count unknown", function()
    local names = {}
    for i = 1, 12 do names[i] = "p" .. (i % 4) end
    for i = 13, 30 do names[i] = "q" .. i end
    local list = assert(input.open("-", pipe(table.concat(names, "\n") .. "\n")))
    -- six names read ahead (the look-ahead and one more), four of them distinct
    assert.same({ true, nil, 4 }, { list.streamed, list.count, list.count_at_least })
    assert.same(names, drain(list))
    assert.is_nil(list.error)
    assert.equal(30, list.line)
    -- a bad name after the look-ahead stops the reading there
    names[20] = "bad\1"
    list = assert(input.open("-", pipe(table.concat(names, "\n")), {
      check = function(name) if name:find("%c") then return "must not contain control characters" end end }))
    local got = drain(list)
    assert.equal(19, #got)
    assert.equal("--from: standard input:20: the name must not contain control characters; the rest of the list "
      .. "was not read", list.error)
  end)

  it("says a directory or a missing file", function()
    local list, err = input.open("/")
    assert.is_nil(list)
    assert.matches("^%-%-from: cannot read /: ", err)
    list, err = input.open("/nonexistent/list")
    assert.is_nil(list)
    assert.equal("--from: cannot read /nonexistent/list: No such file or directory", err)
  end)
end)

describe("the command with a long list", function()
  local server, saved, saved_outcomes
  local SIGNALS = NO_SIGNALS
  local LOG = HOME .. "/audit.jsonl"

  local function run(argv, stdin)
    return require("spec.helpers.checks").run_cli(argv, { home = HOME, signal = SIGNALS, stdin = stdin })
  end

  local function zg(...)
    local argv = { "zego", ... }
    for _, a in ipairs { "--endpoint", server.zego_url, "--app-id", "1234567890", "--server-secret", ZEGO_SECRET,
                         "--audit-log", LOG } do
      argv[#argv + 1] = a
    end
    return argv
  end

  local function ali(...)
    local argv = { "aliyun", ... }
    for _, a in ipairs { "--endpoint", server.aliyun_url, "--access-key-id", "LTAIemulatorKey", "--access-key-secret",
                         ALI_SECRET, "--audit-log", LOG } do
      argv[#argv + 1] = a
    end
    return argv
  end

  local function count(action) return #(server:log { action = action, limit = 10000 }) end

  local function list_file(n, fmt, extra)
    local parts = {}
    for i = 1, n do parts[i] = fmt:format(i) end
    for _, e in ipairs(extra or {}) do parts[#parts + 1] = e end
    return write(HOME .. "/list.txt", table.concat(parts, "\n") .. "\n")
  end

  lazy_setup(function()
    saved, saved_outcomes = input.LOOKAHEAD, audit.OUTCOMES_STREAMS
    input.LOOKAHEAD, audit.OUTCOMES_STREAMS = 5, 10
    server = emu.start {}
  end)
  lazy_teardown(function()
    input.LOOKAHEAD, audit.OUTCOMES_STREAMS = saved, saved_outcomes
    if server then server:stop() end
    os.execute("rm -rf '" .. HOME .. "'")
  end)
  before_each(function()
    server:reset()
    os.remove(LOG)
    SIGNALS = NO_SIGNALS
  end)

  it("forbids a counted file: rows as streams finish, the audit log's intent, outcomes and outcome", function()
    local path = list_file(28, "room-%02d", { "room-03", "room-07" })
    local status, out, err = run(zg("forbid-rtc-streams", "--from", path))
    assert.equal(0, status, err)
    -- each repeat named, with its line
    assert.equal("streamctl: " .. path .. ":29: 'room-03' was read before: dropped (it is sent once)\n"
      .. "streamctl: " .. path .. ":30: 'room-07' was read before: dropped (it is sent once)\n", err)
    local rows = lines(out)
    assert.equal(31, #rows) -- the header, 28 streams, the summary, when the forbids end
    assert.equal("forbidden until resumed (the provider gives these forbids no end)", rows[31])
    assert.equal("STREAM   RESULT    ATTEMPTS  REQUEST ID / ERROR", rows[1])
    assert.matches("^room%-%d%d  ok               1  %S+$", rows[2])
    assert.matches("^28 streams: 28 succeeded, 0 failed, 0 unknown; 2 calls, [%d.]+ s %(2 duplicates dropped%)$",
      rows[30])
    assert.equal(2, count("ForbidRTCStreams"))
    local seen = {}
    for i = 2, 29 do seen[rows[i]:match("^(%S+)")] = true end
    for i = 1, 28 do assert.truthy(seen[("room-%02d"):format(i)]) end

    local recs = records(LOG)
    assert.equal(5, #recs) -- the intent, three outcomes records (10, 10, 8 streams), the outcome
    local intent = recs[1]
    assert.same({ "intent", 28, core.sha256_hex(read(path)), path, { "ForbidRTCStreams" } },
      { intent.record, intent.count, intent.from_sha256, intent.from, intent.actions })
    assert.same({ nil, nil, nil }, { intent.digest, intent.streams, intent.count_at_least })
    assert.same({ allowed = true, confirmed = false, count = 28, max_forbid = 100 }, intent.guard)
    local streams = {}
    for i = 2, 4 do
      assert.same({ "outcomes", intent.run }, { recs[i].record, recs[i].run })
      for _, s in ipairs(recs[i].streams) do
        assert.same({ "ForbidRTCStreams", "ok" }, { s.action, s.outcome })
        streams[#streams + 1] = s.stream
      end
    end
    assert.same({ 10, 10, 8 }, { #recs[2].streams, #recs[3].streams, #recs[4].streams })
    table.sort(streams)
    for i = 1, 28 do assert.equal(("room-%02d"):format(i), streams[i]) end
    local last = recs[5]
    assert.same({ "outcome", intent.run, "ok", 0, 2, { ok = 28, failed = 0, unknown = 0, not_sent = 0 } },
      { last.record, last.run, last.outcome, last.exit, last.calls, last.counts })
    assert.is_nil(last.streams)
  end)

  it("names Aliyun streams whole in the audit log and writes JSON lines as they finish", function()
    local path = list_file(7, "cam-%d")
    local status, out, err = run(ali("forbid-live-streams", "--domain-name", "push.example.com", "--app-name", "live",
      "--from", path, "--output", "json"))
    assert.equal(0, status, err)
    local rows = lines(out)
    assert.equal(7, #rows)
    for _, l in ipairs(rows) do
      local r = cjson.decode(l)
      assert.same({ true, 1 }, { r.ok, r.attempts })
      assert.matches("^cam%-%d$", r.stream)
    end
    assert.equal(7, count("ForbidLiveStream"))
    local recs = records(LOG)
    assert.same({ "intent", "outcomes", "outcome" }, { recs[1].record, recs[2].record, recs[3].record })
    assert.equal(7, #recs[2].streams)
    assert.matches("^push%.example%.com/live/cam%-%d$", recs[2].streams[1].stream)
  end)

  it("holds the guard to the counted file: more than --max-forbid is refused, nothing sent", function()
    local path = list_file(30, "room-%d")
    local status, out, err = run(zg("forbid-rtc-streams", "--from", path, "--max-forbid", "29"))
    assert.equal(2, status)
    assert.equal("", out)
    assert.equal("streamctl: refused: this run would forbid 30 streams, more than --max-forbid (29); nothing was "
      .. "sent. Pass --yes to send them (or a larger --max-forbid).\n", err)
    assert.equal(0, count("ForbidRTCStreams"))
    local recs = records(LOG)
    assert.same({ 1, "refused", 2 }, { #recs, recs[1].outcome, recs[1].exit })
    -- and a bad line anywhere in it: refused before anything is sent, the line named
    path = list_file(30, "room-%d", { "room-\1" })
    status, out, err = run(zg("forbid-rtc-streams", "--from", path, "--yes"))
    assert.equal(2, status)
    assert.equal("", out)
    assert.equal("streamctl: --from: " .. path .. ":31: the name must not contain control characters (TAB, DEL...)\n",
      err)
    assert.equal(0, count("ForbidRTCStreams"))
  end)

  it("refuses a bad field before sending, and before its intent: the audit log holds nothing of it", function()
    local path = list_file(12, "cam-%d")
    local before = #records(LOG)
    local status, out, err = run(ali("forbid-live-streams", "--domain-name", "push.example.com", "--app-name",
      "live\1", "--from", path))
    assert.equal(2, status)
    assert.equal("", out)
    assert.matches("app%-name", err)
    assert.equal(0, count("ForbidLiveStream"))
    -- (an intent says "this run may have changed these streams": a run refused before sending writes none)
    assert.equal(before, #records(LOG))
  end)

  it("refuses a long pipe without --yes (its count is not known), and sends it as it comes with it", function()
    local names = {}
    for i = 1, 25 do names[i] = "pipe-" .. i end
    local text = table.concat(names, "\n") .. "\n"
    local status, out, err = run(zg("forbid-rtc-streams", "--from", "-"), pipe(text))
    assert.equal(2, status)
    assert.equal("", out)
    assert.equal("streamctl: refused: standard input is read as it goes and holds more than 5 names, so how many "
      .. "this run would forbid is not known before sending; nothing was sent. Pass --yes to send them all, or give "
      .. "the list as a file (--from FILE is counted first).\n", err)
    assert.equal(0, count("ForbidRTCStreams"))
    status, out, err = run(zg("forbid-rtc-streams", "--from", "-", "--yes", "--output", "json"), pipe(text))
    assert.equal(0, status, err)
    assert.equal(25, #lines(out))
    assert.equal(2, count("ForbidRTCStreams"))
    local recs = records(LOG)
    local intent = recs[#recs - 4] -- (then three outcomes records of 10, 10 and 5 streams, and the outcome)
    assert.same({ "intent", 6, nil, "standard input" },
      { intent.record, intent.count_at_least, intent.count, intent.from })
    assert.same({ "outcome", "ok", 25 }, { recs[#recs].record, recs[#recs].outcome, recs[#recs].counts.ok })
  end)

  it("stops at Ctrl-C: what was sent is reported, and how much of the list was not read", function()
    local path = list_file(60, "room-%d")
    local polls = 0
    SIGNALS = { catch = function() end, caught = function()
      polls = polls + 1
      if polls > 2 then return 2 end
    end }
    local status, out, err = run(zg("forbid-rtc-streams", "--from", path, "--concurrency", "1"))
    assert.equal(130, status)
    local rows = lines(out)
    local summary = rows[#rows - 1] -- (the last says when the forbids end)
    local total, ok = summary:match("^(%d+) streams: (%d+) succeeded")
    total, ok = tonumber(total), tonumber(ok)
    assert.truthy(total and total < 60, summary)
    assert.equal(ok, count("ForbidRTCStreams") * 20)
    assert.matches("; " .. (60 - total) .. " of the list not read %(not sent%)$", summary)
    assert.matches("streamctl: interrupted %(signal 2%)", err)
    local recs = records(LOG)
    assert.same({ "outcome", "interrupted", 130 }, { recs[#recs].record, recs[#recs].outcome, recs[#recs].exit })
    assert.equal(ok, recs[#recs].counts.ok)
  end)
end)
