-- The audit log is a write-ahead log (issue 34), one row per fault: a run's
-- intent is on the disk before its first request leaves and its outcome
-- after; a run killed at any point leaves its intent; every record starts on
-- a line of its own; a record that could not be written whole is said; a
-- run whose intent cannot be written sends nothing; `calls` is what was sent.
-- Against the emulator, with the real command: in this process, or a real
-- child (bin/streamctl) for the kills and the full disk.
local cjson = require "cjson"
local socket = require "socket"
local core = require "streamctl.core"
local audit = require "streamctl.operator.audit"
local emu = require "spec.helpers.emulator"
local process = require "spec.helpers.process"

local q = process.quote
local ROOT = os.getenv("STREAMCTL_ROOT") or "."
local ZEGO_SECRET = "0123456789abcdef0123456789abcdef"
local HOME = process.temp_dir()

local run = require("spec.helpers.checks").cli(nil, HOME).run

local function lines_of(path)
  local out = {}
  for l in (process.read_file(path) or ""):gmatch("[^\n]+") do out[#out + 1] = l end
  return out
end

local function occurrences(text, plain)
  local n, at = 0, 1
  while true do
    local s, e = text:find(plain, at, true)
    if not s then return n end
    n, at = n + 1, e + 1
  end
end

local server
local function zego_flags()
  return { "--endpoint", server.zego_url, "--app-id", "1234567890", "--server-secret", ZEGO_SECRET }
end
local function zg(...)
  local argv = { "zego", ... }
  for _, a in ipairs(zego_flags()) do argv[#argv + 1] = a end
  return argv
end
local function count(action) return #(server:log { action = action, limit = 10000 }) end
local function requests() return #(server:log { limit = 10000 }) end

local function list_file(n, fmt)
  local parts = {}
  for i = 1, n do parts[i] = fmt:format(i) end
  local path = HOME .. "/list-" .. n .. ".txt"
  process.write_file(path, table.concat(parts, "\n") .. "\n")
  return path, parts
end

-- bin/streamctl in a child of its own (the shell execs it: its pid is the
-- command's), in the background; `prefix` runs in the shell first (ulimit).
local function start(args, prefix)
  local dir = process.temp_dir()
  local f = function(name) return q(dir .. "/" .. name) end
  local command = "env LUA_PATH=" .. q(package.path) .. " LUA_CPATH=" .. q(package.cpath) .. " HOME=" .. q(HOME)
    .. " USER=tester " .. q(process.interpreter()) .. " " .. q(ROOT .. "/bin/streamctl") .. " " .. args
  os.execute("(sh -c " .. q((prefix or "") .. "echo $$ >" .. f("pid") .. "; exec " .. command) .. " >" .. f("out")
    .. " 2>" .. f("err") .. "; echo $? >" .. f("code.tmp") .. "; mv " .. f("code.tmp") .. " " .. f("code")
    .. ") </dev/null >/dev/null 2>&1 &")
  -- (every wait below ends on an event, never on a clock: the shell writes
  -- its pid first thing, and `code` once the command has ended, however slow
  -- the machine; a command that hangs is stopped by run-specs' file timeout)
  local h = { dir = dir }
  while not (process.read_file(dir .. "/pid") or ""):find("\n") do socket.sleep(0.02) end
  h.pid = assert(tonumber(process.read_file(dir .. "/pid")), "the command did not start")
  function h.err() return process.read_file(dir .. "/err") or "" end
  function h.kill(sig) os.execute("kill -" .. sig .. " " .. h.pid .. " 2>/dev/null") end
  function h.ended()
    local text = process.read_file(dir .. "/code")
    return text and tonumber(text:match("^(%d+)"))
  end
  function h.wait()
    while not h.ended() do socket.sleep(0.02) end
    return h.ended()
  end
  function h.cleanup()
    if not h.ended() then h.kill("KILL") h.wait() end
    os.execute("rm -rf " .. q(dir))
  end
  return h
end

local function zego_args(list, log)
  return "zego forbid-rtc-streams --from " .. q(list) .. " --yes --audit-log " .. q(log) .. " --endpoint "
    .. q(server.zego_url) .. " --app-id 1234567890 --server-secret " .. ZEGO_SECRET .. " --output json"
end

-- (paced at 20 calls a second, 5,000 IDs' 250 calls take 12 s: waits until
-- `n` have arrived, or the command `h` has ended, which fails the row)
local function until_sent(n, h)
  while count("ForbidRTCStreams") < n do
    assert(not h.ended(), "the command ended before " .. n .. " calls arrived: " .. h.err())
    socket.sleep(0.05)
  end
end

local function check_intent(line, names, list, run_id)
  local intent = cjson.decode(line)
  assert.same({ "intent", "zego", "1234567890", "forbid-rtc-streams", 5000, (audit.digest(names)), list,
    { "ForbidRTCStreams" } }, { intent.record, intent.provider, intent.credential, intent.command, intent.count,
    intent.digest, intent.from, intent.actions })
  assert.is_nil(intent.streams) -- (5,000 streams: their count and digest only)
  assert.truthy(intent.run:match("^%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x$"), intent.run)
  if run_id then assert.equal(run_id, intent.run) end
  assert.is_nil(line:find(ZEGO_SECRET, 1, true))
  return intent
end

describe("the audit log as a write-ahead log: a fault matrix", function()
  lazy_setup(function() server = emu.start {} end)
  lazy_teardown(function()
    if server then server:stop() end
    os.execute("chmod -R u+rwx " .. q(HOME) .. "; rm -rf " .. q(HOME))
  end)
  before_each(function() server:reset() end)

  it("killed by SIGKILL mid-batch: its intent is on the disk, whole, and no outcome", function()
    if process.preloaded() then pending("a child of its own: run in the plain runs") return end
    local list, names = list_file(5000, "room-%d")
    local log = HOME .. "/sigkill.jsonl"
    os.remove(log)
    local h = start(zego_args(list, log))
    until_sent(16, h)
    h.kill("KILL")
    assert.equal(137, h.wait())
    local sent = count("ForbidRTCStreams")
    h.cleanup()
    assert.is_true(sent >= 16 and sent < 250, sent .. " sent")
    local lines = lines_of(log)
    assert.equal(1, #lines)
    local intent = check_intent(lines[1], names, list)
    assert.equal("\n", process.read_file(log):sub(-1))
    -- docs/reconcile.md's recipe lists it, and not a run that ended (one of two lines)
    assert.equal(0, (run(zg("forbid-rtc-streams", "a", "--audit-log", log))))
    local doc = process.read_file(ROOT .. "/docs/reconcile.md")
    local recipe = doc:match("\n```\n(jq %-rs .-)\n```\n")
    assert.truthy(recipe)
    recipe = recipe:gsub("~/%.local/state/streamctl/audit%.jsonl", function() return q(log) end)
    assert.equal(intent.time .. " " .. intent.run .. " forbid-rtc-streams 5000 streams\n", process.capture(recipe))
  end)

  it("SIGINT then SIGTERM mid-batch: the intent first; an outcome, if written, is the same run's, interrupted,"
    .. " with the calls that left", function()
    if process.preloaded() then pending("a child of its own: run in the plain runs") return end
    local list, names = list_file(5000, "room-%d")
    local log = HOME .. "/int-term.jsonl"
    os.remove(log)
    local h = start(zego_args(list, log))
    until_sent(16, h)
    h.kill("INT")
    h.kill("TERM")
    local code = h.wait()
    local err = h.err()
    h.cleanup()
    assert.is_true(code == 130 or code == 143, tostring(code) .. ": " .. err)
    local sent = count("ForbidRTCStreams")
    assert.is_true(sent >= 16 and sent < 250, sent .. " sent")
    local lines = lines_of(log)
    assert.is_true(#lines == 1 or #lines == 2, #lines .. " lines")
    local intent = check_intent(lines[1], names, list)
    if lines[2] then
      local outcome = cjson.decode(lines[2])
      assert.same({ "outcome", intent.run, "interrupted", code, sent }, { outcome.record, outcome.run,
        outcome.outcome, outcome.exit, outcome.calls })
    end
  end)

  it("a torn tail, then a good run: its intent and outcome each on a line of their own, a warning said once",
    function()
    local log = HOME .. "/torn.jsonl"
    process.write_file(log, '{"time":"2026-11-24T00:00:00Z","record":"intent","run":"00ff"}\n{"time":"2026-1')
    os.execute("chmod 600 " .. q(log))
    local status, _, err = run(zg("forbid-rtc-streams", "a", "b", "--audit-log", log))
    assert.equal(0, status, err)
    local lines = lines_of(log)
    assert.equal(4, #lines)
    assert.equal('{"time":"2026-1', lines[2])
    local intent, outcome = cjson.decode(lines[3]), cjson.decode(lines[4])
    assert.same({ "intent", "outcome", intent.run, "ok", 1, 2 }, { intent.record, outcome.record, outcome.run,
      outcome.outcome, outcome.calls, intent.count })
    assert.equal(1, occurrences(err, "ended in a line cut short"), err)
    assert.equal("streamctl: warning: " .. log .. " ended in a line cut short (a full disk or a crash): a newline "
      .. "was added before this run's line\n", err)
  end)

  it("an intent cut short by a full disk: said with its bytes, nothing sent; the next run's records parse",
    function()
    if process.preloaded() then pending("a child of its own: run in the plain runs") return end
    local log = HOME .. "/full.jsonl"
    -- (RLIMIT_FSIZE of one 512-byte block, SIGXFSZ ignored: a write past it is cut at 512 bytes)
    process.write_file(log, string.rep("#", 400) .. "\n")
    os.execute("chmod 600 " .. q(log))
    local h = start("zego forbid-rtc-streams a b --audit-log " .. q(log) .. " --endpoint " .. q(server.zego_url)
      .. " --app-id 1234567890 --server-secret " .. ZEGO_SECRET, "ulimit -f 1; trap '' XFSZ; ")
    local code = h.wait()
    local err = h.err()
    h.cleanup()
    assert.equal(2, code, err)
    assert.equal(0, requests())
    assert.equal(512, #process.read_file(log))
    local whole = #process.read_file(log) - 401
    local said = err:match("the line was cut short: (%d+) of its %d+ bytes written")
    assert.equal(tostring(whole), said, err)
    assert.truthy(err:find("nothing was sent", 1, true), err)
    assert.truthy(err:find(log, 1, true), err)
    -- the next writer adds the newline first: its records parse
    local status, _, err2 = run(zg("forbid-rtc-streams", "a", "--audit-log", log))
    assert.equal(0, status, err2)
    local lines = lines_of(log)
    assert.equal(4, #lines)
    assert.same({ "intent", "outcome" }, { cjson.decode(lines[3]).record, cjson.decode(lines[4]).record })
    assert.equal(1, occurrences(err2, "ended in a line cut short"), err2)
  end)

  it("an intent that cannot be written (a directory, a full device, a read-only place, under a file): nothing sent",
    function()
    process.write_file(HOME .. "/plain", "x\n")
    for _, path in ipairs { HOME, "/dev/full", "/proc/version", HOME .. "/plain/audit.jsonl" } do
      local status, out, err = run(zg("forbid-rtc-streams", "a", "b", "--audit-log", path))
      err = "\n" .. err -- (/dev/full is said first to be readable by others)
      assert.equal(2, status, path .. ": " .. err)
      assert.equal("", out)
      assert.truthy(err:find("\nstreamctl: the audit log cannot be written %(.*" .. path:gsub("%p", "%%%0")
        .. ".*%): nothing was sent %(%-%-audit%-log FILE for another file, or %-%-no%-audit%-log%)\n$"), err)
    end
    assert.equal(0, requests())
  end)

  it("an outcome that cannot be written: said once, naming the run; the exit status unchanged", function()
    local log = HOME .. "/lost-outcome.jsonl"
    os.remove(log)
    local real, writes = core.append_private, 0
    core.append_private = function(path, data, sync)
      if path ~= log then return real(path, data, sync) end -- (the decision file appends too: issue 87)
      writes = writes + 1
      if writes == 2 then return nil, path .. ": No space left on device", 0 end
      return real(path, data, sync)
    end
    local ok, status, out, err = pcall(run, zg("forbid-rtc-streams", "a", "b", "--audit-log", log))
    core.append_private = real
    assert(ok, status)
    assert.equal(0, status, err)
    assert.truthy(out:find("2 streams: 2 succeeded", 1, true), out)
    assert.equal(2, writes)
    assert.equal(1, count("ForbidRTCStreams"))
    local lines = lines_of(log)
    assert.equal(1, #lines)
    local intent = cjson.decode(lines[1])
    assert.equal(1, occurrences(err, "outcome was not written"), err)
    assert.truthy(err:find(intent.run, 1, true), err)
    assert.truthy(err:find("No space left on device", 1, true), err)
  end)

  it("interrupted after its third request: calls = the requests the emulator received, in the summary, the JSON,"
    .. " the outcome and the message (sent of planned)", function()
    for _, output in ipairs { "table", "json" } do
      server:reset()
      local log = HOME .. "/interrupted-" .. output .. ".jsonl"
      os.remove(log)
      local asked, caught = 0, nil
      local signal = { catch = function() end, caught = function()
        asked = asked + 1
        if not caught and asked % 5 == 0 and count("ForbidRTCStreams") >= 3 then caught = 2 end
        return caught
      end }
      local list = list_file(1000, "room-%d")
      local status, out, err = run(zg("forbid-rtc-streams", "--from", list, "--yes", "--audit-log", log,
        "--output", output, "--concurrency", "1"), signal)
      assert.equal(130, status)
      local sent = count("ForbidRTCStreams")
      assert.is_true(sent >= 3 and sent < 50, sent)
      local outcome = cjson.decode(lines_of(log)[2])
      assert.same({ "outcome", "interrupted", sent }, { outcome.record, outcome.outcome, outcome.calls })
      assert.equal("streamctl: interrupted (signal 2): every stream above is reported; those marked Interrupted "
        .. "were not sent (" .. sent .. " of the 50 calls planned were sent)\n",
        err:match("streamctl: interrupted[^\n]*\n"))
      if output == "table" then
        assert.truthy(out:find("; " .. sent .. " calls, ", 1, true), out)
      end
    end
  end)

  it("reconcile: the intent names the difference it is about to send, not the desired list", function()
    local desired = HOME .. "/desired.txt"
    local state = HOME .. "/state.json"
    local log = HOME .. "/reconcile.jsonl"
    os.remove(state) os.remove(log)
    process.write_file(desired, "room-1\nroom-2\n")
    local status, _, err = run(zg("reconcile", "--from", desired, "--state", state, "--audit-log", log))
    assert.equal(0, status, err)
    process.write_file(desired, "room-1\nroom-2\nroom-3\n")
    status, _, err = run(zg("reconcile", "--from", desired, "--state", state, "--audit-log", log))
    assert.equal(0, status, err)
    local lines = lines_of(log)
    assert.equal(4, #lines)
    local intent, outcome = cjson.decode(lines[3]), cjson.decode(lines[4])
    assert.same({ "intent", "reconcile", 1, (audit.digest { "rtc:room-3" }), { { stream = "rtc:room-3",
      action = "ForbidRTCStreams" } } }, { intent.record, intent.command, intent.count, intent.digest,
      intent.streams })
    assert.same({ "outcome", intent.run, 1 }, { outcome.record, outcome.run, outcome.calls })
  end)

  it("--emulator --emulator-dir DIR: DIR's ports and CA, never the defaults' or the config file's CA", function()
    assert.are_not.equal(18444, server.ports.zego_tls)
    local home = process.temp_dir()
    -- a CA in the config's [defaults], for the real providers: not the emulator's
    os.execute("mkdir -p " .. q(home .. "/.config/streamctl"))
    process.write_file(home .. "/.config/streamctl/config",
      "[defaults]\nca_file = /etc/ssl/certs/ca-certificates.crt\n")
    os.execute("chmod 600 " .. q(home .. "/.config/streamctl/config"))
    local env = function(name) if name == "HOME" then return home end end
    local status, out, err = run({ "zego", "forbid-rtc-stream", "--stream-id", "e1", "--emulator", "--emulator-dir",
      server.dir, "--no-audit-log" }, nil, env)
    assert.equal(0, status, err)
    assert.truthy(out:find("e1", 1, true), out)
    assert.equal(1, count("ForbidRTCStream"))
    local dir = process.temp_dir()
    status, out, err = run({ "zego", "forbid-rtc-stream", "--stream-id", "e1", "--emulator", "--emulator-dir",
      dir }, nil, env)
    assert.equal(2, status)
    assert.equal("", out)
    assert.truthy(err:find("--emulator: no emulator was started in " .. dir, 1, true), err)
    assert.truthy(err:find("start it with: streamctl emulator start --dir " .. dir, 1, true), err)
    assert.equal(1, requests())
    os.execute("rm -rf " .. q(dir) .. " " .. q(home))
  end)
end)
