-- Every wait can be interrupted. streamctl.curl's sleep and a multi's poll
-- end early when a signal handler runs, and streamctl.signal's first signal
-- (SIGINT or SIGTERM) restores the default action of both, so the next one
-- of either kind ends the process at once.
--
-- Real child processes, run with this spec's interpreter and module paths
-- (so they load the build under test, as `streamctl` does below: bin/streamctl
-- from this tree, not the installed command), each bounded so that it stops
-- by itself (the old sleep never returned). A background shell sends the
-- signal and writes the time it did, and the child writes the time it woke:
-- it woke after the signal, not before. How soon is the machine's figure, no
-- verdict: a wait the signal did not end runs to its bound and fails there,
-- and a process the signal killed says so by its exit status (128 + n). When
-- the engine's waits end after a cancel is asserted on a simulated clock
-- (spec/engine/16-cancel-waits, spec/engine/09's "asks a cancel at least
-- every 100 ms"). Linux: /proc/self/stat, date +%N.
local cjson = require "cjson"
local socket = require "socket"
local curl = require "streamctl.curl"
local emu = require "spec.helpers.emulator"
local process = require "spec.helpers.process"

local q, read_file, write_file = process.quote, process.read_file, process.write_file
local ROOT = os.getenv("STREAMCTL_ROOT") or "."
local LUA = process.interpreter()
local PATHS = "LUA_PATH=" .. q(package.path) .. " LUA_CPATH=" .. q(package.cpath)

-- (A wait cut short by the signal, where the sleeps are of 600 s or 1e300 s, is told by the time left
-- and by its ending at all: how soon is the machine's figure, a few ms idle, 0.101 s seen under ASan.)
local BOUND = 20                -- seconds: a child still there then is killed (the old sleep never returned)

-- What every child script starts with: the modules, its pid, and helpers.
local PROLOGUE = [=[
local curl = require "streamctl.curl"
local signal = require "streamctl.signal"
local socket = require "socket"
local dir = arg[1]
local f = assert(io.open("/proc/self/stat"))
local pid = f:read("*l"):match("^%d+")
f:close()
local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end
-- In 0.3 s a background shell writes the time into dir/name, then sends sig here.
local function later(sig, name)
  os.execute(("(sleep 0.3; date +%%s.%%N >%s; kill -%s %s) </dev/null >/dev/null 2>&1 &")
    :format(q(dir .. "/" .. name), sig, pid))
end
-- Seconds from when `name` was sent to `at`.
local function since(name, at)
  local g = assert(io.open(dir .. "/" .. name))
  local t = assert(tonumber(g:read("*l")))
  g:close()
  return at - t
end
local function say(...)
  local t = { ... }
  for i = 1, select("#", ...) do t[i] = tostring(t[i]) end
  io.stdout:write(table.concat(t, " "), "\n")
  io.stdout:flush()
end
]=]

-- Runs PROLOGUE .. body in a child (killed after BOUND seconds). Returns its
-- output, its exit status (128 + n: killed by signal n; the scripts never
-- exit with such a status themselves), when it ended, and in sent.term and
-- sent.int when the child's `later` sent each signal.
local function run_child(body)
  local dir = process.temp_dir()
  local script = dir .. "/child.lua"
  write_file(script, PROLOGUE .. body)
  local p = assert(io.popen(PATHS .. " timeout -s KILL " .. BOUND .. " " .. q(LUA) .. " " .. q(script) .. " "
    .. q(dir) .. " 2>&1; s=$?; date +%s.%N; echo exit=$s"))
  local out = p:read("*a")
  p:close()
  local r = { out = out, exit = tonumber(out:match("\nexit=(%d+)\n$")),
    ended = tonumber(out:match("([%d.]+)\nexit=%d+\n$")), sent = {} }
  for _, name in ipairs { "term", "int" } do r.sent[name] = tonumber(read_file(dir .. "/" .. name) or "") end
  os.execute("rm -rf " .. q(dir))
  return r
end

-- The words after `word` on the output line that starts with it (numbers as numbers).
local function number_after(out, word)
  local line = assert(("\n" .. out):match("\n" .. word .. " ([^\n]*)"), "no line '" .. word .. "' in:\n" .. out)
  local t = {}
  for w in line:gmatch("%S+") do t[#t + 1] = tonumber(w) or w end
  return t
end

describe("curl.sleep", function()
  it("returns 0 after the whole time", function()
    local t0 = socket.gettime()
    assert.equal(0, curl.sleep(0.05))
    assert.is_true(socket.gettime() - t0 >= 0.045)
    assert.equal(0, curl.sleep(0))
  end)

  it("raises for a negative or non-finite argument, or not a number", function()
    -- (called as a field, not a tail call, so that LuaJIT names it too: 'sleep'; 5.4: 'streamctl.curl.sleep')
    for _, v in ipairs { -1, -1e-9, 0 / 0, math.huge, -math.huge } do
      local ok, err = pcall(function() curl.sleep(v) end)
      assert.is_false(ok)
      assert.truthy(err:find("bad argument #1 to '[%w.]*sleep' %(seconds must be a finite number >= 0%)$"),
        tostring(v) .. ": " .. err)
    end
    local ok, err = pcall(function() curl.sleep("soon") end)
    assert.is_false(ok)
    assert.truthy(err:find("bad argument #1 to '[%w.]*sleep' %(number expected, got string%)"), err)
  end)
end)

describe("a process that waits", function()
  it("returns from curl.sleep(600) at SIGTERM, then dies of a SIGINT (its default action back)", function()
    local r = run_child [[
signal.catch()
later("TERM", "term")
local left = curl.sleep(600)
say("woke", left, signal.caught(), since("term", socket.gettime()))
later("INT", "int")
say("slept on", curl.sleep(600))
]]
    local woke = number_after(r.out, "woke")
    assert.equal(15, woke[2], r.out)
    assert.is_true(woke[1] > 590 and woke[1] <= 600, "left " .. tostring(woke[1])) -- (cut short)
    assert.is_true(woke[3] >= 0, "woke " .. -woke[3] .. " s before SIGTERM")
    assert.is_nil(r.out:find("slept on", 1, true), r.out)
    assert.equal(130, r.exit, r.out) -- killed by SIGINT: its default action was back (not the bound's KILL)
  end)

  it("the same with SIGINT first, then SIGTERM (and a sleep of 1e300 s is fine)", function()
    local r = run_child [[
signal.catch()
later("INT", "int")
local left = curl.sleep(1e300)
say("woke", left, signal.caught(), since("int", socket.gettime()))
later("TERM", "term")
say("slept on", curl.sleep(600))
]]
    local woke = number_after(r.out, "woke")
    assert.equal(2, woke[2], r.out)
    assert.is_true(woke[1] > 1e299, "left " .. tostring(woke[1]))
    assert.is_true(woke[3] >= 0, "woke " .. -woke[3] .. " s before SIGINT")
    assert.is_nil(r.out:find("slept on", 1, true), r.out)
    assert.equal(143, r.exit, r.out)
  end)

  it("without signal.catch(), dies of SIGTERM in curl.sleep (the default action)", function()
    local r = run_child [[
later("TERM", "term")
say("slept on", curl.sleep(600))
]]
    assert.is_nil(r.out:find("slept on", 1, true), r.out)
    assert.equal(143, r.exit, r.out)
  end)

  it("returns from a multi's poll at SIGTERM, a transfer in flight; waits its time otherwise",
    function()
      -- A listener on 127.0.0.1 that never accepts: the kernel completes the
      -- connection, curl sends the request, no answer ever comes.
      local r = run_child [[
local server = assert(socket.bind("127.0.0.1", 0))
local _, port = server:getsockname()
local m = curl.multi { timeout_ms = 600000 }
assert(m:add("k", { method = "GET", url = "http://127.0.0.1:" .. port .. "/" }))
local t0 = socket.gettime()
local done = m:poll(300)
say("quiet", #done, socket.gettime() - t0)
signal.catch()
later("TERM", "term")
done = m:poll(600000)
local at = socket.gettime()
say("polled", #done, m:pending(), signal.caught(), since("term", at))
m:close()
server:close()
]]
      assert.equal(0, r.exit, r.out)
      local quiet = number_after(r.out, "quiet")
      assert.equal(0, quiet[1])
      assert.is_true(quiet[2] >= 0.29, "a poll of 300 ms without a signal lasted " .. quiet[2] .. " s")
      local polled = number_after(r.out, "polled")
      assert.same({ 0, 1, 15 }, { polled[1], polled[2], polled[3] }, r.out)
      assert.is_true(polled[4] >= 0, "returned " .. -polled[4] .. " s before SIGTERM") -- (and not at 600 s)
    end)
end)

describe("signal.catch() and a closed pipe", function()
  -- A child that writes to a pipe whose reader has exited (`true` reads
  -- nothing), started with SIGPIPE at its default action (this process
  -- ignores it: LuaSocket does when it loads, and children inherit that),
  -- and loading no LuaSocket itself. Returns its output and exit status.
  local function write_to_closed_pipe(prologue)
    local dir = process.temp_dir()
    local script = dir .. "/child.lua"
    write_file(script, prologue .. [[
local p = assert(io.popen("exec true", "w"))
os.execute("sleep 0.2") -- (true has exited: nobody reads the pipe)
local ok, err, code = p:write(string.rep("x", 100000))
if ok then ok, err, code = p:flush() end
io.stdout:write("wrote ", tostring(ok), " ", tostring(code), " ", tostring(err), "\n")
p:close()
]])
    local p = assert(io.popen(PATHS .. " env --default-signal=PIPE timeout -s KILL " .. BOUND .. " " .. q(LUA) .. " "
      .. q(script) .. " 2>&1; echo exit=$?"))
    local out = p:read("*a")
    p:close()
    os.execute("rm -rf " .. q(dir))
    return out, tonumber(out:match("exit=(%d+)\n$"))
  end

  it("makes a write to it fail with EPIPE instead of killing the process", function()
    local out, exit = write_to_closed_pipe('require("streamctl.signal").catch()\n')
    assert.equal("wrote nil 32 Broken pipe\nexit=0\n", out)
    assert.equal(0, exit)
  end)

  it("(without it, SIGPIPE kills the process: the default action)", function()
    local out, exit = write_to_closed_pipe('require("streamctl.signal")\n')
    assert.equal("exit=" .. (128 + 13) .. "\n", out)
    assert.equal(128 + 13, exit)
  end)
end)

describe("streamctl in a long wait", function()
  local server, HOME
  lazy_setup(function()
    server = emu.start {}
    HOME = process.temp_dir()
  end)
  lazy_teardown(function()
    if server then server:stop() end
    if HOME then os.execute("rm -rf " .. q(HOME)) end
  end)
  before_each(function()
    server:reset()
    server:clear_faults()
  end)

  -- `streamctl aliyun <args>` against the emulator: bin/streamctl of this
  -- tree with this spec's interpreter and module paths, in an empty
  -- environment (the sanitizers' variables kept: make asan's children need
  -- them to load its modules).
  local function command(args)
    local env = { "env -i", "PATH=/usr/local/bin:/usr/bin:/bin", "HOME=" .. q(HOME), PATHS }
    for _, name in ipairs { "LD_PRELOAD", "ASAN_OPTIONS", "UBSAN_OPTIONS" } do
      local v = os.getenv(name)
      if v then env[#env + 1] = name .. "=" .. q(v) end
    end
    return table.concat(env, " ") .. " " .. q(LUA) .. " " .. q(ROOT .. "/bin/streamctl") .. " aliyun " .. args
      .. " --endpoint " .. server.aliyun_tls_url .. " --ca-file " .. q(server.ca_file)
      .. " --access-key-id LTAIemulatorKey --access-key-secret emulator-secret"
  end

  -- Starts the command in the background: its own pid (the shell execs
  -- it), its stdout and stderr in files, and, once it ends, its exit status
  -- and the time it ended (written to a file moved into place whole).
  local function start(args)
    local dir = process.temp_dir()
    local f = function(name) return q(dir .. "/" .. name) end
    os.execute("(sh -c " .. q("echo $$ >" .. f("pid") .. "; exec " .. command(args)) .. " >" .. f("out") .. " 2>"
      .. f("err") .. "; echo $? >" .. f("code.tmp") .. "; date +%s.%N >>" .. f("code.tmp") .. "; mv "
      .. f("code.tmp") .. " " .. f("code") .. ") </dev/null >/dev/null 2>&1 &")
    local h = { dir = dir }
    local deadline = socket.gettime() + 10
    while not (read_file(dir .. "/pid") or ""):find("\n") and socket.gettime() < deadline do socket.sleep(0.02) end
    h.pid = assert(tonumber(read_file(dir .. "/pid") or ""), "the command did not start")
    function h.out() return read_file(dir .. "/out") or "" end
    function h.err() return read_file(dir .. "/err") or "" end
    -- Sends a signal and returns when it did (by `date`, like the end time).
    function h.kill(sig)
      os.execute("date +%s.%N >" .. f("sent") .. "; kill -" .. sig .. " " .. h.pid)
      return tonumber(read_file(dir .. "/sent"))
    end
    -- The exit status and when it ended, or nil if it is still running after `seconds`.
    function h.wait(seconds)
      local stop = socket.gettime() + seconds
      while not read_file(dir .. "/code") and socket.gettime() < stop do socket.sleep(0.02) end
      local text = read_file(dir .. "/code")
      if not text then return nil end
      local code, at = text:match("^(%d+)\n([%d.]+)\n$")
      return tonumber(code), tonumber(at)
    end
    function h.cleanup()
      if not read_file(dir .. "/code") then
        os.execute("kill -KILL " .. h.pid .. " 2>/dev/null")
        h.wait(5)
      end
      os.execute("rm -rf " .. q(dir))
    end
    return h
  end

  local function until_true(seconds, f)
    local deadline = socket.gettime() + seconds
    while not f() and socket.gettime() < deadline do socket.sleep(0.02) end
    return f()
  end

  local function json_lines(text)
    local out = {}
    for line in text:gmatch("[^\n]+") do
      if line:sub(1, 1) == "{" then out[#out + 1] = cjson.decode(line) end
    end
    return out
  end

  local function faults_left()
    local pending = assert(server:faults().faults)
    return #(pending.aliyun or {}) + #(pending.zego or {})
  end

  it("SIGTERM ends a pacing wait (--rate 0.01: 100 s), the streams not sent reported", function()
    local h = start("resume-live-streams --domain-name d.example --app-name live --output json --rate 0.01 s1 s2 s3")
    finally(h.cleanup)
    -- s1 reported: the command now waits 100 s to send s2
    assert.is_true(until_true(15, function() return #json_lines(h.out()) == 1 end), h.out() .. h.err())
    h.kill("TERM")
    local code = h.wait(10)
    assert(code, "still running 10 s after SIGTERM, in a wait of 100 s: " .. h.out() .. h.err())
    assert.equal(143, code, h.out() .. h.err())
    local lines = json_lines(h.out())
    assert.equal(3, #lines, h.out())
    assert.same({ "s1", true }, { lines[1].stream, lines[1].ok })
    for i = 2, 3 do
      assert.same({ "s" .. i, false, "Interrupted", "interrupted before it was sent", 0 },
        { lines[i].stream, lines[i].ok, lines[i].code, lines[i].message, lines[i].attempts })
    end
    assert.truthy(h.err():find("streamctl: interrupted (signal 15): every stream above is reported; those marked "
      .. "Interrupted were not sent", 1, true), h.err())
    assert.equal(1, #server:log({ action = "ResumeLiveStream", limit = 100 }))
  end)

  it("SIGTERM ends a Retry-After wait (20 s), the stream reported", function()
    server:faults { kind = "throttle", action = "ResumeLiveStream", count = 1, retry_after_ms = 600000 }
    local h = start("resume-live-streams --domain-name d.example --app-name live s1 s2")
    finally(h.cleanup)
    -- both sent, one throttled: the command now waits for its retry
    assert.is_true(until_true(15, function()
      return faults_left() == 0 and #server:log({ action = "ResumeLiveStream", limit = 100 }) == 2
    end), h.out() .. h.err())
    socket.sleep(0.3) -- (for the answers to be read)
    h.kill("TERM")
    local code = h.wait(10)
    assert(code, "still running 10 s after SIGTERM, in a wait of 20 s: " .. h.out() .. h.err())
    assert.equal(143, code, h.out() .. h.err())
    local out = h.out()
    assert.truthy(out:find("\ns%d  +ok  +1  ") and out:find("\ns%d  +FAILED  +1  Throttling.User: "), out)
    assert.truthy(out:find("\n2 streams: 1 succeeded, 1 failed, 0 unknown; 2 calls, ", 1, true), out)
    assert.truthy(h.err():find("streamctl: interrupted (signal 15)", 1, true), h.err())
  end)

  it("dies of a SIGINT after SIGTERM, while it waits for an attempt in flight", function()
    server:faults { kind = "delay", action = "ResumeLiveStream", count = 1, delay_ms = 30000 }
    local h = start("resume-live-streams --domain-name d.example --app-name live --timeout 60000 s1")
    finally(h.cleanup)
    -- the request is at the emulator, held 30 s: the command waits for its answer
    assert.is_true(until_true(15, function() return faults_left() == 0 end), h.out() .. h.err())
    h.kill("TERM")
    -- SIGTERM does not end a wait for an answer: the attempt's outcome is awaited
    assert.is_nil(h.wait(0.3), h.out() .. h.err())
    h.kill("INT")
    local code = h.wait(10)
    assert(code, "still running 10 s after SIGINT, waiting for an answer held 30 s: " .. h.out() .. h.err())
    assert.equal(130, code, h.out() .. h.err()) -- killed by SIGINT (it would exit 143 itself)
    -- and said so, on a line of its own, the last (issue 50: it died saying nothing)
    local err = h.err()
    assert.equal("\nstreamctl: stopped at once (a second signal): what is above is all that was reported; the "
      .. "audit log has the run's intent, and requests in flight were not waited for\n", err:sub(-166), err)
  end)
end)
