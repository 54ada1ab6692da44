-- Issue 47, helper "files": a fault matrix, one `it` per row, of the rows
-- "files are opened, never shelled", "a size limit or a full disk is an
-- ordinary write error", "a state file has one writer at a time" and "its
-- loader refuses every key, value and duplicate the writer could never have
-- produced", and the other members of their classes found. Each row fails
-- on 1e4452f (a hang cut by a timeout, a process killed by SIGXFSZ, records
-- lost, a state taken) and passes after. What can hang or kill runs in a
-- child process under `timeout`: the command (bin/streamctl) against the
-- emulator, or a few lines of Lua with this spec's module paths.
local cjson = require "cjson"
local socket = require "socket"
local audit = require "streamctl.operator.audit"
local reconcile = require "streamctl.operator.reconcile"
local emu = require "spec.helpers.emulator"
local process = require "spec.helpers.process"

local q = process.quote
local ROOT = os.getenv("STREAMCTL_ROOT") or "."
local ZEGO_SECRET = "0123456789abcdef0123456789abcdef"
local KEY = "streamctl:reconcile:zego:1234567890"
local HOME = process.temp_dir()

-- `lua -e CODE` (or bin/streamctl ARGS) with this spec's module paths, under
-- `timeout --foreground -s KILL seconds` (its own children not killed: a
-- shell it left is seen), from a shell that runs `pre` first (ulimit...);
-- standard output and error to files. Returns the exit status (137: killed
-- by the timeout), its standard output and its standard error.
local function child(pre, what, seconds, name)
  local out, err = HOME .. "/" .. name .. ".out", HOME .. "/" .. name .. ".err"
  local status = process.exit_status(os.execute("env LUA_PATH=" .. q(package.path) .. " LUA_CPATH="
    .. q(package.cpath) .. " HOME=" .. q(HOME) .. " USER=tester sh -c " .. q((pre or "") .. " exec timeout --foreground -s KILL "
    .. seconds .. " " .. q(process.interpreter()) .. " " .. what) .. " >" .. q(out) .. " 2>" .. q(err)))
  return status, process.read_file(out) or "", process.read_file(err) or ""
end

local function lua_child(pre, code, seconds, name)
  return child(pre, "-e " .. q(code), seconds, name)
end

-- The bound of a child that must not wait (a FIFO opened, a lock waited on): far above what any machine
-- takes to refuse it, so that a child killed by it (exit 137) says that it waited, never that the
-- machine was slow. How long a refusal takes is no verdict; that it came, and not the timeout, is.
local NEVER_WAITS = 20

-- Asserts that a child ended with `want` by itself, not killed by its NEVER_WAITS bound.
local function ended(want, status, err)
  assert(status ~= 137, "killed after " .. NEVER_WAITS .. " s: it waited instead of refusing at once\n" .. err)
  assert.equal(want, status, err)
end

-- Whether this row, whose work is in child processes, is left pending here:
-- under valgrind or ASan (their runtime preloaded) it is the same as in the
-- plain runs, where it runs once.
local function in_children()
  if not process.preloaded() then return false end
  pending("children of their own: the same under valgrind or ASan; run once, in the plain runs")
  return true
end

local server
local function zego_args(...)
  local words = {}
  for _, a in ipairs { ... } do words[#words + 1] = q(a) end
  return q(ROOT .. "/bin/streamctl") .. " zego " .. table.concat(words, " ") .. " --endpoint " .. q(server.zego_url)
    .. " --app-id 1234567890 --server-secret " .. ZEGO_SECRET
end
local function count(action) return #(server:log { action = action, limit = 10000 }) end

-- A store holding `text` under KEY, for the state loader alone (zego_forget
-- reads the state as zego does, and changes nothing when told no streams).
local function loaded(text)
  return reconcile.zego_forget({ get = function() return text end, set = function() return true end }, KEY, {})
end

local function refused_state(text, says)
  local ok, err = loaded(text)
  assert.is_nil(ok, text)
  assert.equal("InvalidState", err.code, text)
  assert.equal(false, err.sent)
  assert.truthy(err.message:find(says, 1, true), text .. ": " .. err.message)
end

describe("issue 47: files and states", function()
  lazy_setup(function() server = emu.start {} end)
  lazy_teardown(function()
    if server then server:stop() end
    os.execute("rm -rf " .. q(HOME))
  end)
  before_each(function() server:reset() end)

  it("files are opened, never shelled: --audit-log naming a FIFO is refused at once, nothing sent, no shell left",
    function()
    if in_children() then return end
    local fifo = HOME .. "/audit.fifo"
    assert(process.run("mkfifo " .. q(fifo)))
    local status, out, err = child(nil, zego_args("forbid-rtc-streams", "f-a", "--audit-log", fifo), NEVER_WAITS,
      "fifo")
    -- (on 1e4452f the command blocks opening the FIFO, by io.open or a shell's `: >> FIFO`, and such a
    -- shell outlives its parent: looked for, then the FIFO opened here and closed, so that whatever waits
    -- on it ends; the pattern's brackets keep pgrep's own shell out)
    local left = process.capture("pgrep -f " .. q(fifo:gsub("audit%.fifo$", "[a]udit.fifo")) .. " || true")
    local f = io.open(fifo, "r+")
    if f then f:close() end
    assert.equal("", left)
    ended(2, status, err)
    assert.equal("", out)
    assert.equal("streamctl: the audit log cannot be written (cannot open " .. fifo .. ": it is a FIFO, not a regular "
      .. "file): nothing was sent (--audit-log FILE for another file, or --no-audit-log)\n", err)
    assert.equal(0, count("ForbidRTCStreams"))
  end)

  it("files are opened, never shelled: a log, its directories, the user, a terminal and the man page, no shell",
    function()
    local execute, popen = os.execute, io.popen
    local shelled = {}
    os.execute = function(cmd) shelled[#shelled + 1] = tostring(cmd) return nil end -- luacheck: ignore 122
    io.popen = function(cmd) shelled[#shelled + 1] = tostring(cmd) return nil end -- luacheck: ignore 122
    local path = HOME .. "/made/deeper/audit.jsonl"
    local ok, made, user, tty, page = pcall(function()
      local m = { audit.private_file(path) }
      local w = audit.who(function() return nil end)
      return m, w.user, require("streamctl.cli.output").is_tty(1), (require("streamctl.cli.man").find())
    end)
    os.execute, io.popen = execute, popen -- luacheck: ignore 122
    assert(ok, made)
    assert.same({}, shelled)
    assert.same({ true }, made)
    local lfs = require "lfs"
    assert.same({ "rwx------", "rwx------", "rw-------" }, { lfs.attributes(HOME .. "/made", "permissions"),
      lfs.attributes(HOME .. "/made/deeper", "permissions"), lfs.attributes(path, "permissions") })
    assert.equal(process.capture("id -un"), user .. "\n")
    assert.equal(false, tty) -- (busted's standard output is a pipe or a file here)
    assert.truthy(page:find("docs/streamctl%.1$"), page)
  end)

  it("files are opened, never shelled: a FIFO, a device or a directory as a log is refused, never waited on",
    function()
    local fifo = HOME .. "/log.fifo"
    os.remove(fifo)
    assert(process.run("mkfifo " .. q(fifo)))
    for _, row in ipairs { { "/dev/null", "a character device" }, { HOME, "a directory" } } do
      assert.same({ nil, "cannot open " .. row[1] .. ": it is " .. row[2] .. ", not a regular file" },
        { audit.writer(row[1]) })
    end
    -- (a child: on 1e4452f the open of a FIFO waits for a writer)
    local status, out, err = lua_child(nil, "io.write(tostring(select(2, require('streamctl.operator.audit').writer("
      .. ("%q"):format(fifo) .. "))))", NEVER_WAITS, "logfifo")
    assert.same({ 0, "cannot open " .. fifo .. ": it is a FIFO, not a regular file" }, { status, out }, err)
    -- a log rotated into a FIFO after the writer opened it: refused, not written into the pipe
    local log = HOME .. "/rotated.jsonl"
    local write = assert(audit.writer(log))
    assert(write('{"a":1}'))
    os.remove(log)
    assert(process.run("mkfifo " .. q(log)))
    assert.same({ nil, "cannot open " .. log .. ": it is a FIFO, not a regular file" }, { write('{"a":2}') })
    os.remove(log)
  end)

  it("files are opened, never shelled: a FIFO, a device or a directory as --state or its lock, refused at once",
    function()
    if in_children() then return end
    local list = HOME .. "/want.txt"
    process.write_file(list, "s-a\n")
    local state = HOME .. "/state.json"
    os.remove(state)
    os.remove(state .. ".lock")
    assert(process.run("mkfifo " .. q(state .. ".lock")))
    local status, _, err = child(nil, zego_args("reconcile", "--from", list, "--state", state,
      "--no-audit-log"), NEVER_WAITS, "statelock")
    local f = io.open(state .. ".lock", "r+")
    if f then f:close() end
    ended(1, status, err)
    assert.truthy(err:find("could not be saved before sending (nothing was sent): cannot lock " .. state .. ".lock: "
      .. "it is a FIFO, not a regular file", 1, true), err)
    assert.equal(0, count("ForbidRTCStreams"))
    os.remove(state .. ".lock")
    -- the state itself: a FIFO, a device, a directory
    local fifo = HOME .. "/state.fifo"
    assert(process.run("mkfifo " .. q(fifo)))
    for _, row in ipairs { { fifo, "a FIFO" }, { "/dev/zero", "a character device" }, { HOME, "a directory" } } do
      status, _, err = child(nil, zego_args("reconcile", "--from", list, "--state", row[1], "--no-audit-log"),
        NEVER_WAITS, "state")
      ended(1, status, err)
      assert.truthy(err:find(row[1] .. " is not a file (" .. row[2] .. ")", 1, true), err)
    end
    assert.equal(0, count("ForbidRTCStreams"))
  end)

  it("files are opened, never shelled: --ca-file naming a FIFO or a device is refused at once, nothing sent",
    function()
    if in_children() then return end
    local fifo = HOME .. "/ca.fifo"
    os.remove(fifo)
    assert(process.run("mkfifo " .. q(fifo)))
    for _, row in ipairs { { fifo, "a FIFO" }, { "/dev/zero", "a character device" } } do
      -- (on 1e4452f io.open of a FIFO waits for a writer: cut by the timeout, then the FIFO opened and closed)
      local status, out, err = child(nil, zego_args("forbid-rtc-streams", "c-a", "--ca-file", row[1],
        "--no-audit-log"), NEVER_WAITS, "cafifo")
      local f = row[1] == fifo and io.open(fifo, "r+")
      if f then f:close() end
      ended(2, status, err)
      assert.equal("", out)
      assert.equal("streamctl: '--ca-file' cannot be read: " .. row[1] .. " is not a file (" .. row[2] .. ")\n", err)
    end
    assert.equal(0, count("ForbidRTCStreams"))
  end)

  it("a size limit is an ordinary write error: the command under ulimit -f exits 1, the streams reported, the "
    .. "audit record whole or cut and said", function()
    if in_children() then return end
    local ids = {}
    for i = 1, 150 do ids[i] = "x-" .. i end
    local list = HOME .. "/150.txt"
    process.write_file(list, table.concat(ids, "\n") .. "\n")
    local log = HOME .. "/limited.jsonl"
    os.remove(log)
    -- 8 blocks of 512 bytes (dash): the intent (a count and a digest) fits, the table and the outcome do not
    local status, out, err = child("ulimit -f 8;", zego_args("forbid-rtc-streams", "--from", list, "--yes",
      "--audit-log", log), 30, "xfsz")
    -- (what the command printed, in the message: an exit 0 here was seen twice under load, unexplained)
    assert.equal(1, status, err .. "\n(standard output: " .. #out .. " bytes, ending: " .. out:sub(-400) .. ")")
    assert.equal(4096, #out)
    -- the table stopped at the limit, as at a full disk: sending stopped there, what was done reported; or,
    -- on a machine slow to write (the calls all answered before the table's first write failed), the whole
    -- run's counts said with the report cut. Either way nothing more is sent after the failed write, and
    -- every call sent is counted.
    -- (the run's decisions go to the machine's decision file, under the limit too: a call whose decision it
    -- could not write is not sent, failed, DecisionUnavailable; issue 87)
    local done, ok, failed, left = err:match("^streamctl: cannot write to standard output %(File too large%): "
      .. "stopped sending: (%d+) of 150 streams done %((%d+) succeeded, (%d+) failed, 0 unknown%), (%d+) not sent\n")
    if not done then
      done, ok, failed = err:match("^streamctl: cannot write to standard output %(File too large%): the report is "
        .. "incomplete; (150) streams: (%d+) succeeded, (%d+) failed, 0 unknown; %d+ calls, [%d.]+ s\n")
      left = "0"
    end
    assert.truthy(done, err)
    assert.same({ tonumber(done), 150 }, { tonumber(ok) + tonumber(failed), tonumber(done) + tonumber(left) })
    -- (each stream the emulator was sent is a succeeded one: the IDs its calls carried, counted, since the call
    -- of 10 IDs, the last made, may leave before the one before it on a busy machine: 6 calls of 20 and it, 130)
    local sent = 0
    for _, e in ipairs(server:log { action = "ForbidRTCStreams", limit = 10000 }) do sent = sent + #e.stream_ids end
    assert.equal(tonumber(ok), sent)
    -- the intent whole; the outcome, longer than the limit leaves, cut at it and said
    local intent_line = process.read_file(log):match("^([^\n]*)\n")
    local intent = cjson.decode(intent_line)
    assert.same({ "intent", 150 }, { intent.record, intent.count })
    local cut, size = err:match("\nstreamctl: warning: the run's outcome was not written to the audit log %(the output "
      .. "above says it; its intent is there, run %x+%): cannot write " .. log:gsub("%p", "%%%0") .. ": File too large "
      .. "%(the line was cut short: (%d+) of its (%d+) bytes written; the next line starts on a line of its own%)\n$")
    assert.truthy(cut, err)
    assert.equal(4096, #intent_line + 1 + tonumber(cut))
    assert.equal(4096, #process.read_file(log))
    assert.is_true(tonumber(size) > 4096)
    -- the next record, the limit gone, starts on a line of its own
    local write = assert(audit.writer(log))
    assert(write('{"next":1}'))
    local last = process.read_file(log):match("\n([^\n]*)\n$")
    assert.equal('{"next":1}', last)
  end)

  it("a size limit is seen on standard output flushed a line at a time, where write and flush say nothing", function()
    if in_children() then return end
    -- (make check saw the command exit 0 with its output cut at 4,096 bytes: each row pushed out as it
    -- finished, the limit crossed inside a flush that Lua reported as done; signal.write_failed asks the stream)
    local code = "local signal = require 'streamctl.signal' signal.catch() "
      .. "local out = require('streamctl.cli.output').new_out(io.stdout, io.stderr) "
      .. "local said for i = 1, 300 do out:line(('line %04d '):format(i), ('.'):rep(30)) "
      .. "if not out:flush() and not said then said = i end end "
      .. "io.stderr:write(tostring(said), ' ', tostring(out.failed))"
    local status, out, err = lua_child("ulimit -f 8;", code, NEVER_WAITS, "lines")
    ended(0, status, err)
    assert.equal(4096, #out)
    local said, why = err:match("^(%d+) (.*)$")
    assert.equal(100, tonumber(said), err) -- (line 100 crosses 4,096 bytes: 41 bytes a line)
    assert.equal("File too large", why)
  end)

  it("a size limit is an ordinary write error: streamctl.core's append and replace under RLIMIT_FSIZE fail with "
    .. "EFBIG, the process alive", function()
    if in_children() then return end
    local log, state = HOME .. "/efbig.jsonl", HOME .. "/efbig.json"
    os.remove(log)
    process.write_file(state, "old\n")
    local status, out, err = lua_child("ulimit -f 1;", table.concat({
      "local core, signal = require 'streamctl.core', require 'streamctl.signal'",
      "signal.catch()",
      "local a = { core.append_private(" .. ("%q"):format(log) .. ", string.rep('x', 700) .. '\\n') }",
      "local r = { core.replace_file(" .. ("%q"):format(state) .. ", string.rep('y', 700)) }",
      "io.write(tostring(a[1]), '|', tostring(a[2]), '|', tostring(a[3]), '\\n', tostring(r[1]), '|', tostring(r[2]))",
    }, "\n"), 10, "efbig")
    assert.equal(0, status, err)
    assert.equal("nil|cannot write " .. log .. ": File too large|512\nnil|cannot replace " .. state
      .. ": File too large", out)
    assert.equal("old\n", process.read_file(state))
    assert.equal(string.rep("x", 512), process.read_file(log))
    assert.equal("", process.capture("ls " .. q(HOME) .. " | grep 'efbig.json.tmp' || true"))
  end)

  it("a state file has one writer at a time: two processes saving 200 states each under their own keys lose none",
    function()
    if in_children() then return end
    local path = HOME .. "/shared-state.json"
    os.remove(path)
    local function writer(name)
      return q(process.interpreter()) .. " -e " .. q("local store = require('streamctl.operator.reconcile')"
        .. ".file_store(" .. ("%q"):format(path) .. ") for i = 1, 200 do "
        .. "assert(store:set('" .. name .. ":' .. i, '{\"v\":2,\"streams\":{},\"pending\":{\"rtc:s-' .. i .. '\":"
        .. "\"forbid\"}}')) end")
    end
    local ok = process.run("env LUA_PATH=" .. q(package.path) .. " LUA_CPATH=" .. q(package.cpath) .. " sh -c "
      .. q("timeout -s KILL 120 " .. writer("app1") .. " & timeout -s KILL 120 " .. writer("app2")
        .. " & wait %1 && wait %2") .. " 2>" .. q(HOME .. "/writers.err"))
    assert(ok, process.read_file(HOME .. "/writers.err"))
    local held = cjson.decode(process.read_file(path))
    local n = 0
    for _ in pairs(held) do n = n + 1 end
    assert.equal(400, n)
  end)

  it("a state file has one writer at a time: a run of the same AppId saving over another's record is refused, "
    .. "nothing sent, nothing forgotten", function()
    local streamctl = require "streamctl"
    local z = assert(streamctl.zego.new { endpoint = server.zego_url, app_id = 1234567890, server_secret = ZEGO_SECRET })
    local path = HOME .. "/same-appid.json"
    os.remove(path)
    -- run B reads the state, then (in its before_send, before its pending save) run A does all of its work
    local a_report, a_err
    local b_report, b_err = reconcile.zego(z, { { stream_id = "s-b" } }, {
      state = reconcile.file_store(path),
      before_send = function()
        a_report, a_err = reconcile.zego(z, { { stream_id = "s-a" } }, { state = reconcile.file_store(path) })
        return true
      end,
    })
    assert(a_report, a_err)
    assert.is_true(a_report.in_sync)
    assert.is_nil(b_report)
    assert.same({ "StateUnavailable", false }, { b_err.code, b_err.sent })
    assert.equal("the state '" .. KEY .. "' could not be saved before sending (nothing was sent): " .. path .. ": the "
      .. "state '" .. KEY .. "' was changed by another run since this one read it (one reconciler per key at a time); "
      .. "left as that run saved it", b_err.message)
    -- A's forbid is remembered; B sent nothing
    assert.same({ v = 2, streams = { ["rtc:s-a"] = 0 }, pending = {} },
      cjson.decode(cjson.decode(process.read_file(path))[KEY]))
    local log = server:log { action = "ForbidRTCStreams", limit = 100 }
    assert.equal(1, #log)
    local params = cjson.encode(log[1].params)
    assert.truthy(params:find('"s-a"', 1, true) and not params:find('"s-b"', 1, true), params)
  end)

  it("a state file has one writer at a time: a save waiting for the lock ends at Ctrl-C, not when the lock is "
    .. "free, the file as it was", function()
    if in_children() then return end
    local path = HOME .. "/locked-state.json"
    process.write_file(path, "{}\n")
    -- (flock(1) holds the lock file for 10 s, or until it is stopped)
    local holder = process.spawn("flock " .. q(path .. ".lock") .. " sleep 10")
    -- (waits on states, not times, which a loaded machine outruns: the lock held before the saver starts, and
    -- the saver past catch() when INT comes, or INT kills it silently; its wait polls a lock it never blocks
    -- on, so /proc/locks shows it no waiter: it says "ready" before its save instead)
    local held = process.wait_flock(path .. ".lock")
    if not held then process.stop(holder) end
    assert.is_true(held, "flock(1) never held " .. path .. ".lock")
    local saver = process.spawn("env LUA_PATH=" .. q(package.path) .. " LUA_CPATH=" .. q(package.cpath) .. " "
      .. q(process.interpreter()) .. " -e " .. q("require('streamctl.signal').catch() "
      .. "local store = require('streamctl.operator.reconcile').file_store(" .. ("%q"):format(path) .. ") "
      .. "io.write('ready\\n') io.stdout:flush() "
      .. "local ok, err = store:set('k', 'v') io.write(tostring(ok), '|', tostring(err)) io.stdout:flush()"))
    local ready = saver.pipe:read("*l")
    if ready ~= "ready" then process.stop(saver) process.stop(holder) end
    assert.equal("ready", ready)
    os.execute("kill -INT " .. saver.pid)
    local said = saver.pipe:read("*a")
    saver.pipe:close()
    process.stop(holder)
    -- (the wait ended at the signal, as it says: not when the holder let go after its 10 s, which would
    -- have saved, nor at its own 10 s bound. That it ends within one 100 ms slice of the signal, even
    -- when no wait is cut short by it, is asserted on a simulated clock: "a state file's lock wait" below)
    assert.equal("nil|" .. path .. ".lock is locked by another process, and this one stopped waiting at a signal (2)",
      said)
    assert.equal("{}\n", process.read_file(path))
  end)

  it("a state file has one writer at a time: streamctl.core's lock is exclusive, bounded, freed, and only a file's",
    function()
    local core = require "streamctl.core"
    local path = HOME .. "/core.lock"
    os.remove(path)
    local lock = assert(core.lock_file(path))
    local t0 = socket.gettime()
    local pid = assert(process.read_file(path):match("^(%d+)\n$")) -- (the holder's, this process's)
    assert.same({ nil, path .. " is locked by process " .. pid .. " (waited 50 ms)", "busy" }, { core.lock_file(path, 50) })
    assert.is_true(socket.gettime() - t0 >= 0.05)
    lock:unlock()
    lock:unlock() -- (twice: nothing more)
    assert(core.lock_file(path, 0)) -- (kept by nothing)
    collectgarbage()
    collectgarbage() -- (collected: the lock is dropped with its descriptor)
    assert.truthy(core.lock_file(path, 0))
    assert.equal("rw-------", require("lfs").attributes(path, "permissions"))
    assert.same({ nil, "cannot lock " .. HOME .. ": it is a directory, not a regular file", "failed" },
      { core.lock_file(HOME) })
    assert.has_error(function() core.lock_file(path, 60001) end)
    assert.has_error(function() core.lock_file("") end)
  end)

  it("its loader refuses a key the writer could never have produced: rtc:a b, cdn:a#b, a look-alike, 257 bytes",
    function()
    for _, key in ipairs { "rtc:a b", "cdn:a#b", "rtc:a\226\128\144b", "rtc:" .. string.rep("a", 257) } do
      refused_state('{"v":2,"streams":{' .. cjson.encode(key) .. ':0},"pending":{}}', "has a stream entry that is not")
      refused_state('{"v":2,"streams":{},"pending":{' .. cjson.encode(key) .. ':"forbid"}}',
        "has a pending entry that is not")
    end
    assert.is_true(loaded('{"v":2,"streams":{"rtc:a-b_C9":0,"cdn:' .. string.rep("a", 256) .. '":0},"pending":{}}'))
  end)

  it("its loader refuses a duplicated JSON key, in a state or in the state file, rather than keep the last", function()
    refused_state('{"v":2,"streams":{"rtc:a":0,"rtc:b":0,"rtc:a":1700000000},"pending":{}}',
      'has the key "rtc:a" twice (the second at byte 39)')
    refused_state('{"v":2,"streams":{},"pending":{"rtc:a":"forbid","rtc:\\u0061":"resume"}}',
      'has the key "rtc:a" twice')
    refused_state('{"v":2,"streams":{"rtc:a":0},"pending":{},"streams":{}}', 'has the key "streams" twice')
    local path = HOME .. "/dup.json"
    local state = cjson.encode('{"v":2,"streams":{"rtc:a":0},"pending":{}}')
    process.write_file(path, '{"' .. KEY .. '":' .. state .. ',"' .. KEY .. '":"{\\"v\\":2,\\"streams\\":{}}"}\n')
    local text, err, kind = reconcile.file_store(path):get(KEY)
    assert.same({ nil, "corrupt" }, { text, kind })
    assert.equal(path .. ' has the key "' .. KEY .. '" twice (the second at byte ' .. (#KEY + 6 + #state) .. "): not "
      .. "a JSON object of states as streamctl writes it", err)
  end)

  it("its loader refuses a NUL and what follows it, which lua-cjson never reads: in a state, in the state file",
    function()
    refused_state('{"v":2,"streams":{},"pending":{}}\0{"v":2,"streams":{"rtc:a":0}}', "has a NUL byte at byte 34")
    local path = HOME .. "/nul.json"
    process.write_file(path, '{"' .. KEY .. '":"{\\"v\\":2,\\"streams\\":{}}"}\n\0{"x":"y"}\n')
    local text, err, kind = reconcile.file_store(path):get(KEY)
    assert.same({ nil, "corrupt" }, { text, kind })
    assert.equal(path .. " has a NUL byte at byte " .. (#KEY + 33) .. ": not a JSON object of states as streamctl "
      .. "writes it", err)
  end)

  it("its loader refuses an empty array where the writer writes an object: \"streams\":[], \"pending\":[]",
    function()
    refused_state('{"v":2,"streams":[],"pending":{}}', "has an array at byte 18, where only objects are written")
    refused_state('{"v":2,"streams":{},"pending":[]}', "has an array at byte 31, where only objects are written")
    refused_state('{"v":1,"streams":[]}', "has an array at byte 18")
  end)

  it("its loader refuses a time the writer could never have written: 1.5, 1e3 as 1000.5", function()
    refused_state('{"v":2,"streams":{"rtc:a":1.5},"pending":{}}', "(rtc:a: 1.5)")
    refused_state('{"v":2,"streams":{"rtc:a":1700000000.25},"pending":{}}', "with a time in whole seconds")
  end)

  it("streamctl.signal tells a closed output and a terminal without writing, waiting or a shell", function()
    local signal = require "streamctl.signal"
    assert.equal(process.run("[ -t 1 ]"), signal.isatty(1))
    assert.equal(false, signal.isatty(99))
    local _, _, said = lua_child(nil, "local s = require 'streamctl.signal' os.execute('sleep 0.3') "
      .. "io.stderr:write(tostring(s.output_closed(1)))", 10, "closed")
    assert.equal("false", said) -- (standard output a file)
    -- a pipe whose reader has gone (`| true`): the child asks about its own standard output
    local p = assert(io.popen("env LUA_PATH=" .. q(package.path) .. " LUA_CPATH=" .. q(package.cpath) .. " "
      .. q(process.interpreter()) .. " -e " .. q("local s = require 'streamctl.signal' os.execute('sleep 0.3') "
      .. "io.stderr:write(tostring(s.output_closed(1)))") .. " 2>" .. q(HOME .. "/closed3.err") .. " | true"))
    p:close()
    assert.equal("true", process.read_file(HOME .. "/closed3.err"))
    assert.same({ nil, "file descriptor 99: Bad file descriptor" }, { signal.output_closed(99) })
  end)
end)

-- The lock wait of a state file's save (streamctl.operator.reconcile's file_store), on a simulated
-- clock: streamctl.core's lock_file stood in for by one that waits out each slice whole (the worst case: a
-- C wait the signal does not cut short), streamctl.signal's caught() by one that says SIGINT from a
-- given time. The real process's row above asserts what the wait ends with; this one, when.
describe("a state file's lock wait, on a simulated clock", function()
  local saved
  before_each(function()
    saved = {}
    for _, m in ipairs { "streamctl.core", "streamctl.signal", "streamctl.operator.reconcile_zego" } do
      saved[m] = package.loaded[m]
    end
  end)
  after_each(function()
    for m, v in pairs(saved) do package.loaded[m] = v end
  end)

  -- A file store whose lock is always held elsewhere; SIGINT caught from `signal_at` (nil: never).
  -- Returns the store and the clock (clock.t: seconds; clock.slices: each wait asked, in ms).
  local function locked_store(signal_at)
    local core = require "streamctl.core"
    local clock = { t = 0, slices = {} }
    package.loaded["streamctl.core"] = setmetatable({ lock_file = function(path, ms)
      clock.slices[#clock.slices + 1] = ms
      clock.t = clock.t + (ms or 0) / 1000
      return nil, path .. " is locked by another process", "busy"
    end }, { __index = core })
    package.loaded["streamctl.signal"] = { caught = function()
      return signal_at and clock.t >= signal_at and 2 or nil
    end }
    package.loaded["streamctl.operator.reconcile_zego"] = nil
    local store = require("streamctl.operator.reconcile_zego").file_store(HOME .. "/simulated.json")
    return store, clock
  end

  it("ends within one 100 ms slice of the signal, however long the lock is held", function()
    for _, at in ipairs { 0.35, 0.4, 3.001 } do
      local store, clock = locked_store(at)
      assert.same({ nil, HOME .. "/simulated.json.lock is locked by another process, and this one stopped waiting "
        .. "at a signal (2)" }, { store:set("k", "v") })
      assert.is_true(clock.t >= at and clock.t <= at + 0.1 + 1e-9, "signalled at " .. at .. ", ended at " .. clock.t)
    end
  end)

  it("without a signal, waits LOCK_WAIT_MS in slices of 100 ms, then says so", function()
    local store, clock = locked_store(nil)
    assert.same({ nil, HOME .. "/simulated.json.lock is locked by another process (waited 10000 ms)" },
      { store:set("k", "v") })
    assert.near(10, clock.t, 1e-9)
    for i = 2, #clock.slices do assert.equal(100, clock.slices[i]) end
  end)
end)
