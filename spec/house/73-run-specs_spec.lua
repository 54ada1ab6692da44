-- sanitizers: none (the house: files, docs and tools, not our C)
-- interpreters: lua5.4 (its subjects are bash and lua5.4 scripts, whatever interpreter runs this file)
-- The test loop's own tools, shown catching what they exist for:
--   * tools/run-specs.sh's unit tier refuses a spec that says it is a unit
--     spec and starts a server, or runs a tool outside Debian's essential
--     ones and make build's (each passes outside the tier: the guard is
--     what fails it); it runs its files in one interpreter a core, each
--     file with its own row and log;
--   * a failed file in a run side by side is named with its log, its port
--     block and the command that replays it alone, and that command
--     replays it on the same ports;
--   * spec/helpers/ports.lua: processes at once get blocks of their own, a
--     block asked for that a live process holds is not shared, and a dead
--     owner's block is taken over; SPEC_PORT_RANGE keeps them to its whole
--     blocks, and a range that breaks its rule stops the run before a spec;
--   * the helpers a spec starts as processes serve while it runs, however
--     slowly, and end with it (a planted 1 s lifetime fails the row);
--   * spec/valgrind.txt names the csrc/ it was chosen for, and
--     tools/run-specs.sh refuses it when it names a file without our C;
--     its chooser picks files that reach every line and branch, and drops
--     one a later pick makes needless;
--   * tools/under-load.sh (the gate under load): each run in a fresh clone
--     at one commit, a line per run, the series ended at the first red
--     run; the busy loops, and whatever a run left or was doing when the
--     series was killed, stopped however it ends; a usage error runs nothing.
-- Everything runs in a directory of its own (STREAMCTL_SPEC_OUT for the
-- runner's logs, TMPDIR for the port claims), never the suite's own.
local socket = require "socket"
local process = require "spec.helpers.process"
local ports = require "spec.helpers.ports"

local ROOT = os.getenv("STREAMCTL_ROOT") or "."
local q = process.quote

describe("the test loop's tools", function()
  local tmp
  lazy_setup(function() tmp = process.temp_dir() end)
  lazy_teardown(function() if tmp then os.execute("rm -rf " .. q(tmp)) end end)

  -- tools/run-specs.sh `args` on `file` (a spec written into tmp): its exit status and output.
  local function runner(args, name, text)
    local file = tmp .. "/" .. name
    process.write_file(file, text)
    local out = process.capture("cd " .. q(ROOT) .. " && STREAMCTL_SPEC_OUT=" .. q(tmp .. "/out")
      .. " TMPDIR=" .. q(tmp) .. " tools/run-specs.sh " .. args .. " " .. q(file) .. " 2>&1; echo \"exit $?\"")
    return tonumber(out:match("exit (%d+)\n$")), out, file
  end

  describe("tools/run-specs.sh", function()
    local UNIT_BUT_SERVER = table.concat({
      "-- tier: unit",
      "local emu = require 'spec.helpers.emulator'",
      "describe('a unit spec', function() it('asks for ports', function() emu.free_ports(1) end) end)",
    }, "\n")

    it("refuses, in the unit tier, a spec that says it is a unit spec and starts a server", function()
      local status, out = runner("-u lua5.4 1", "unit_but_server_spec.lua", UNIT_BUT_SERVER)
      assert.equal(1, status, out)
      assert.truthy(out:find("FAILED lua5.4   unit_but_server_spec", 1, true), out)
      assert.truthy(out:find("this spec starts a server (it asks for ports): it is not a unit spec (drop its line "
        .. "'-- tier: unit')", 1, true), out)
      -- outside the tier the same file passes: the tier's guard is what failed it
      status, out = runner("lua5.4 1", "unit_but_server_spec.lua", UNIT_BUT_SERVER)
      assert.equal(0, status, out)
      assert.truthy(out:find("ok     lua5.4   unit_but_server_spec", 1, true), out)
    end)

    it("refuses, in the unit tier, a spec that runs a tool outside the essential ones and make build's", function()
      local text = table.concat({
        "-- tier: unit",
        "describe('a unit spec', function() it('runs python3', function()",
        "  assert.is_true(os.execute('python3 -c pass'))",
        "end) end)",
      }, "\n")
      local status, out = runner("-u lua5.4 1", "unit_but_tool_spec.lua", text)
      assert.equal(1, status, out)
      assert.truthy(out:find("FAILED lua5.4   unit_but_tool_spec", 1, true), out)
      -- (outside the tier the same file passes: python3 is there, the tier's PATH is what failed it)
      status, out = runner("lua5.4 1", "unit_but_tool_spec.lua", text)
      assert.equal(0, status, out)
    end)

    it("runs the unit tier's files in one interpreter, each with its own row and log; one it never ended fails",
      function()
      local function write(name, lines)
        process.write_file(tmp .. "/" .. name, "-- tier: unit\n" .. table.concat(lines, "\n") .. "\n")
        return q(tmp .. "/" .. name)
      end
      local files = {
        write("b1_passes_spec.lua", { "describe('b1', function() it('passes', function() end) end)" }),
        write("b2_fails_spec.lua", { "describe('b2', function()", "  it('passes', function() end)",
          "  it('fails', function() assert.equal('expected', 'got') end)", "end)" }),
        write("b3_exits_spec.lua", { "describe('b3', function() it('exits', function() os.exit(3) end) end)" }),
        write("b4_never_spec.lua", { "describe('b4', function() it('passes', function() end) end)" }),
      }
      local out = process.capture("cd " .. q(ROOT) .. " && STREAMCTL_SPEC_OUT=" .. q(tmp .. "/batch")
        .. " TMPDIR=" .. q(tmp) .. " tools/run-specs.sh -u lua5.4 1 " .. table.concat(files, " ")
        .. " 2>&1; echo \"exit $?\"")
      assert.equal("1", out:match("exit (%d+)\n$"), out)
      assert.truthy(out:find("  ok     lua5.4   b1_passes_spec %s+[%d.]+ s  1 passed\n"), out)
      assert.truthy(out:find("  FAILED lua5.4   b2_fails_spec %s+[%d.]+ s  1 passed, 1 failed %(exit 1%)"), out)
      -- (the file that ended the interpreter, and the one after it that never ran: each a failed row)
      assert.truthy(out:find("  FAILED lua5.4   b3_exits_spec %s+[%d.]+ s  0 passed, 1 failed %(exit 3%)"), out)
      assert.truthy(out:find("  FAILED lua5.4   b4_never_spec %s+[%d.]+ s  0 passed, 1 failed %(exit 3%)"), out)
      assert.truthy(out:find("lua5.4: 2 passed, 3 failed, 0 pending, 4 files", 1, true), out)
      local log = process.read_file(tmp .. "/batch/specs-lua5.4/b2_fails_spec.log")
      assert.truthy(log:find("FAILED (failure) b2 fails\n  at " .. tmp .. "/b2_fails_spec.lua:4\n", 1, true), log)
      assert.truthy(log:find("\n1 successes / 1 failures / 0 errors / 0 pending : [%d.]+ seconds\n$"), log)
      log = process.read_file(tmp .. "/batch/specs-lua5.4/b4_never_spec.log")
      assert.truthy(log:find("run-specs: its interpreter (running 4 files) ended before this one did (exit 3)", 1, true),
        log)
    end)

    it("names a failed file, its log, its ports and the command that replays it alone on them", function()
      local status, out, file = runner("lua5.4 2", "fails_spec.lua", table.concat({
        "local ports = require 'spec.helpers.ports'",
        "describe('a spec', function() it('fails', function()",
        "  ports.free(2)",
        "  assert.equal('expected', 'got')",
        "end) end)",
      }, "\n"))
      assert.equal(1, status, out)
      local block = out:match("FAILED lua5.4   fails_spec %s+[%d.]+ s  0 passed, 1 failed %(exit 1; ports of block (%d+)%)")
      assert(block, out)
      assert.truthy(out:find(tmp .. "/out/specs-lua5.4/fails_spec.log", 1, true), out)
      local replay = out:match("\n  replay alone: ([^\n]+)")
      assert(replay, out)
      assert.equal("STREAMCTL_SPEC_PORT_BLOCK=" .. block .. " ", replay:sub(1, #block + 27))
      assert.equal(" " .. file, replay:sub(-#file - 1))
      -- the command as given (the block is free again: its owner has ended)
      local again = process.capture("cd " .. q(ROOT) .. " && TMPDIR=" .. q(tmp) .. " " .. replay .. " 2>&1")
      assert.truthy(again:find("spec ports: block " .. block .. ":", 1, true), again)
      assert.truthy(again:find("0 successes / 1 failure", 1, true), again)
    end)

    it("stopped by a signal: stops the files running, sums up what ended, exits 130 or 143", function()
      process.write_file(tmp .. "/quick_spec.lua", "describe('q', function() it('passes', function() end) end)")
      for _, sig in ipairs { { "INT", 130 }, { "TERM", 143 } } do
        local dir = process.temp_dir()
        local f = function(name) return q(dir .. "/" .. name) end
        -- (the slow file's sleep says its pid: the run is signalled once it sleeps, and it must be gone after)
        process.write_file(tmp .. "/slow_spec.lua", "describe('s', function() it('waits', function() "
          .. "os.execute(" .. string.format("%q", "sh -c 'echo $$ >" .. f("sleeping") .. "; exec sleep 600'")
          .. ") end) end)")
        -- (SIGINT at its default: this file may run as a non-interactive shell's background job, whose
        -- children start with it ignored, and bash cannot trap a signal ignored at its start)
        local run = process.spawn("env --default-signal=INT STREAMCTL_SPEC_OUT=" .. q(dir) .. " TMPDIR=" .. q(tmp) .. " "
          .. q(ROOT .. "/tools/run-specs.sh") .. " lua5.4 2 " .. q(tmp .. "/quick_spec.lua") .. " "
          .. q(tmp .. "/slow_spec.lua") .. " >" .. f("log") .. " 2>&1")
        -- (until the quick file has ended and the slow one sleeps: bounded by the run, never a clock)
        while not ((process.read_file(dir .. "/log") or ""):find("ok     lua5.4   quick_spec", 1, true)
          and (process.read_file(dir .. "/sleeping") or ""):find("\n")) do
          assert(process.alive(run.pid), "the run ended first: " .. tostring(process.read_file(dir .. "/log")))
          socket.sleep(0.05)
        end
        os.execute("kill -" .. sig[1] .. " " .. run.pid)
        local _, _, code = run.pipe:close() -- (waits for the run's end)
        local log = process.read_file(dir .. "/log")
        assert.equal(sig[2], code, log)
        assert.truthy(log:find("\nrun%-specs: stopped by SIG" .. sig[1] .. ": 1 file runs were running %(stopped, not "
          .. "counted%), 0 not started; what ended is below\nlua5%.4: 1 passed, 0 failed, 0 pending, 1 files\n"), log)
        -- (sent TERM before the run ended: gone, or going, as the run ends; never its own 600 s)
        local sleeper = tonumber(process.read_file(dir .. "/sleeping"))
        for _ = 1, 100 do
          if not process.alive(sleeper) then break end
          socket.sleep(0.05)
        end
        assert.is_false(process.alive(sleeper), "the slow file's sleep outlived the run")
        os.execute("rm -rf " .. q(dir))
      end
    end)

    it("says once who holds the machine's slots when another run of the suite keeps it waiting", function()
      local dir = tmp .. "/streamctl-spec-jobs/0"
      os.execute("mkdir -p " .. q(dir))
      local holder = process.spawn("sleep 600")
      process.write_file(dir .. "/pid", tostring(holder.pid))
      local out = tmp .. "/waiting.log"
      os.execute("cd " .. q(ROOT) .. " && (STREAMCTL_SPEC_OUT=" .. q(tmp .. "/out") .. " TMPDIR=" .. q(tmp)
        .. " SPEC_MACHINE_JOBS=1 tools/run-specs.sh lua5.4 1 spec/base/18-url-query_spec.lua >" .. q(out)
        .. " 2>&1; echo done >>" .. q(out) .. ") &")
      local line = "run-specs: waiting for one of this machine's 1 'jobs' slots (" .. tmp .. "/streamctl-spec-jobs), "
        .. "held by another run of the suite: processes " .. holder.pid .. "\n"
      while not (process.read_file(out) or ""):find(line, 1, true) do socket.sleep(0.1) end -- (after 10 s of it)
      process.stop(holder) -- (its slot taken over: the file runs)
      while not (process.read_file(out) or ""):find("done\n", 1, true) do socket.sleep(0.1) end
      local text = process.read_file(out)
      assert.equal(1, select(2, text:gsub("run%-specs: waiting", "")), text)
      assert.truthy(text:find("ok     lua5.4   18-url-query_spec", 1, true), text)
    end)

    -- The files spec/valgrind.txt names (a set).
    local function valgrind_listed()
      local set = {}
      for line in io.lines(ROOT .. "/spec/valgrind.txt") do
        if line ~= "" and not line:find("^#") then set[line] = true end
      end
      return set
    end

    -- The runs of a whole suite (-l: listed, none run), as a set of "MODE FILE".
    local function planned(modes)
      -- (HEAVY_MODES unset: make check sets it for the suite this row runs in)
      local out = process.capture("cd " .. q(ROOT) .. " && env -u HEAVY_MODES tools/run-specs.sh -l " .. modes
        .. " 2 2>&1")
      local set = {}
      for m, f in out:gmatch("(%S+) (%S+) %S+\n") do set[m .. " " .. f] = true end
      return set
    end

    it("runs each file where it says: the sanitizers only where our C runs in the spec's process", function()
      local plan = planned("lua5.4,luajit,valgrind,asan")
      local function modes_of(f)
        local got = {}
        for _, m in ipairs { "lua5.4", "luajit", "valgrind", "asan" } do
          if plan[m .. " " .. f] then got[#got + 1] = m end
        end
        return table.concat(got, ",")
      end
      local listed = valgrind_listed() -- (each listed file's modes: in the loop over the tree below)
      assert.is_true(next(listed) ~= nil, "spec/valgrind.txt names no file")
      assert.equal("lua5.4,luajit,asan", modes_of("spec/operator/44-reconcile-scale_spec.lua")) -- not listed
      assert.equal("lua5.4,luajit", modes_of("spec/emulator/10-emulator_spec.lua"))    -- "none"
      assert.equal("lua5.4,luajit", modes_of("spec/engine/06-ratelimit_spec.lua"))
      assert.equal("lua5.4", modes_of("spec/stores/66-shared-dict-faults_spec.lua"))
      assert.equal("lua5.4", modes_of("spec/edge/31-openresty_spec.lua"))    -- "interpreters: lua5.4", "none"
      -- the check tier (-c) leaves out the fault matrices ("-- tier: test (why)"), and nothing else
      local check = planned("-c lua5.4")
      for key in pairs(planned("lua5.4")) do
        local f = key:match("^lua5%.4 (.*)$")
        local text = "\n" .. assert(io.open(ROOT .. "/" .. f)):read("a")
        local test_tier = text:match("\n%-%- tier: test %(") ~= nil
        assert.equal(not test_tier, check[key] == true, f)
      end
      assert.is_nil(check["lua5.4 spec/stores/66-shared-dict-faults_spec.lua"])
      -- every file of the tree: both interpreters unless it says Lua 5.4, ASan unless it says none,
      -- valgrind when spec/valgrind.txt names it
      for f in process.capture("cd " .. q(ROOT) .. " && ls spec/*/*_spec.lua"):gmatch("%S+") do
        local text = "\n" .. assert(io.open(ROOT .. "/" .. f)):read("a")
        local none = text:match("\n%-%- sanitizers: none %(") ~= nil
        local want = text:match("\n%-%- interpreters: lua5%.4 %(") and "lua5.4" or "lua5.4,luajit"
        want = want .. (none and "" or listed[f] and ",valgrind,asan" or ",asan")
        assert.equal(want, modes_of(f), f)
        listed[f] = nil
      end
      assert.same({}, listed, "spec/valgrind.txt names files the tree does not have")
    end)

    it("refuses a file whose sanitizers or interpreters line says something else, naming it and the rule",
    function()
      local status, out = runner("-l lua5.4 1", "odd_spec.lua", "-- sanitizers: valgrind\n")
      assert.equal(2, status, out)
      assert.truthy(out:find("odd_spec.lua: '-- sanitizers: valgrind': the line is '-- sanitizers: none (why)'",
        1, true), out)
      status, out = runner("-l lua5.4 1", "odd_spec.lua", "-- sanitizers: asan (the line this house had before)\n")
      assert.equal(2, status, out)
      assert.truthy(out:find("the line is '-- sanitizers: none (why)'", 1, true), out)
      status, out = runner("-l lua5.4 1", "odd_spec.lua", "-- interpreters: luajit (no reason)\n")
      assert.equal(2, status, out)
      assert.truthy(out:find("odd_spec.lua: '-- interpreters: luajit (no reason)': the line is '-- interpreters: "
        .. "lua5.4 (why)'", 1, true), out)
    end)

    it("tells each spec its mode (STREAMCTL_SPEC_MODE), and runs a file named in every mode given", function()
      local status, out = runner("lua5.4,luajit 2", "mode_spec.lua", table.concat({
        "-- sanitizers: none (a row of 73-run-specs)",
        "describe('a spec', function() it('knows its mode', function()",
        "  local m = os.getenv('STREAMCTL_SPEC_MODE')",
        "  assert.equal(jit and 'luajit' or 'lua5.4', m)",
        "end) end)",
      }, "\n"))
      assert.equal(0, status, out)
      assert.truthy(out:find("ok     lua5.4   mode_spec", 1, true), out)
      assert.truthy(out:find("ok     luajit   mode_spec", 1, true), out)
    end)
  end)

  describe("spec/valgrind.txt and its chooser (make valgrind-set)", function()
    it("was chosen for today's csrc/, and a change to csrc/ changes the hash it names", function()
      local named
      for line in io.lines(ROOT .. "/spec/valgrind.txt") do named = named or line:match("^# csrc: (%x+)$") end
      local now = process.capture("cd " .. q(ROOT) .. " && tools/valgrind-set.sh --hash"):gsub("%s+$", "")
      assert.equal(16, #now)
      assert.equal(named, now, "csrc/ changed since spec/valgrind.txt was chosen: run make valgrind-set")
      -- a copy of the tree's csrc/ with one byte more hashes differently
      local copy = tmp .. "/hash"
      os.execute("mkdir -p " .. q(copy .. "/tools") .. " && cp -r " .. q(ROOT .. "/csrc") .. " " .. q(copy)
        .. " && cp " .. q(ROOT .. "/tools/valgrind-set.sh") .. " " .. q(copy .. "/tools/"))
      assert.equal(now, (process.capture(q(copy .. "/tools/valgrind-set.sh") .. " --hash"):gsub("%s+$", "")))
      os.execute("echo >> " .. q(copy .. "/csrc/core.c"))
      assert.are_not.equal(now, (process.capture(q(copy .. "/tools/valgrind-set.sh") .. " --hash"):gsub("%s+$", "")))
    end)

    it("is refused by tools/run-specs.sh when it names a file that is not a spec where our C runs", function()
      for _, f in ipairs { "spec/engine/06-ratelimit_spec.lua", "spec/base/99-gone_spec.lua" } do
        local list = tmp .. "/valgrind.txt"
        process.write_file(list, "# a list\nspec/base/01-core_spec.lua\n" .. f .. "\n")
        local out = process.capture("cd " .. q(ROOT) .. " && VALGRIND_LIST=" .. q(list)
          .. " tools/run-specs.sh -l valgrind 1 2>&1; echo \"exit $?\"")
        assert.truthy(out:find(list .. ": " .. f .. " is not a spec file where our C runs in its process: run make "
          .. "valgrind-set\nexit 2\n", 1, true), out)
      end
    end)

    -- tools/valgrind-set.lua over made-up runs: name -> { gcov lines, CPU seconds }; its list, and its header.
    local function choose(runs)
      local dir, names = tmp .. "/runs", {}
      os.execute("rm -rf " .. q(dir) .. " && mkdir -p " .. q(dir))
      for name, r in pairs(runs) do
        local id = "spec_x_" .. name .. "_spec.lua"
        local text = { "        -:    0:Source:csrc/x.c" }
        for _, l in ipairs(r[1]) do text[#text + 1] = l end
        process.write_file(dir .. "/" .. id .. ".gcov", table.concat(text, "\n") .. "\n")
        process.write_file(dir .. "/" .. id .. ".cpu", r[2] .. " 0.00\n")
        names[#names + 1] = "spec/x/" .. name .. "_spec.lua"
      end
      table.sort(names)
      local out = process.capture("cd " .. q(ROOT) .. " && lua5.4 tools/valgrind-set.lua " .. q(dir)
        .. " 0123456789abcdef " .. table.concat(names, " ") .. " 2>&1")
      local list = {}
      for line in out:gmatch("[^\n]+") do
        if not line:find("^#") then list[#list + 1] = line:match("^spec/x/(.-)_spec%.lua$") end
      end
      return table.concat(list, " "), out
    end

    it("picks the files that reach every line and branch, the most per CPU second first", function()
      local got, out = choose {
        a = { { "        3:    1:a", "        1:    2:b", "    #####:    3:c" }, "1.00" },
        b = { { "    #####:    1:a", "        2:    2:b", "        1:    3:c" }, "1.00" },
        c = { { "        9:    1:a", "        9:    2:b", "        9:    3:c" }, "5.00" },
        d = { { "        1:    4:d", "branch  0 taken 1", "branch  1 taken 0" }, "0.50" },
        e = { { "        -:    5:comment", "    =====:    6:e" }, "0.01" },
      }
      -- d first (line 4 and its branch 0), then a (line 1; ties with b go by name), then b (line 3): c, which
      -- reaches the same three lines, costs more; e reaches nothing
      assert.equal("a b d", got)
      assert.truthy(out:find("\n# csrc: 0123456789abcdef\nspec/x/a_spec.lua\n", 1, true), out)
      assert.truthy(out:find("valgrind-set: 3 of 5 files reach 5 lines and branches; 2.7 s of Lua 5.4 CPU\n", 1,
        true), out)
    end)

    it("drops a file picked early whose reach a later pick holds", function()
      -- e and f are cheap and picked first; g alone reaches line 5 and, once picked, all that e and f do
      local got = choose {
        e = { { "        1:    1:a", "        1:    2:b" }, "0.10" },
        f = { { "        1:    3:c", "        1:    4:d" }, "0.10" },
        g = { { "        1:    1:a", "        1:    2:b", "        1:    3:c", "        1:    4:d", "        1:    5:e" },
              "10.00" },
      }
      assert.equal("g", got)
    end)
  end)

  describe("tools/under-load.sh", function()
    local checks = require "spec.helpers.checks"
    -- A repository of its own, whose targets stand for a tier: green with a
    -- count, red, one that leaves a process running, one that waits.
    local repo
    lazy_setup(function()
      repo = tmp .. "/gate"
      process.write_file(tmp .. "/Makefile", table.concat({
        "ok:",
        "\t@echo \"in $$(pwd) at $$(git rev-parse HEAD)\"",
        "\t@set -- $$(cat /proc/$$$$/stat); echo \"group $$5 session $$6\"",
        "\t@echo 'in all: 3 passed, 0 failed, 1 pending'",
        "bad:",
        "\t@echo 'in all: 2 passed, 1 failed, 0 pending'; exit 3",
        "leak:",
        "\t@sleep 120 & echo \"left $$!\"",
        "slow:",
        "\t@sleep 120 & echo \"waits on $$!\"; wait",
        "",
      }, "\n"))
      assert(process.run("mkdir -p " .. q(repo) .. " && cd " .. q(repo) .. " && git init -q && mv ../Makefile . "
        .. "&& git add Makefile && git -c user.name=spec -c user.email=spec@localhost commit -qm gate"))
    end)

    -- The tool, without the sanitizer's LD_PRELOAD of `make asan` (bash,
    -- git, make: none loads the C modules; pgrep under it never returns, as
    -- spec/helpers/emulator.lua says). Not niced: at nice 19 beside four
    -- busy loops its clones took seconds each (the file 78 s, not 3); its
    -- one loop lives about a second.
    local TOOL = "env -u LD_PRELOAD tools/under-load.sh "
    -- Whether process `pid` has ended (a zombie has: nothing of it runs),
    -- read from /proc/PID/stat: its state follows the name's ")".
    local function gone(pid)
      return checks.wait_until(function()
        local stat = process.read_file("/proc/" .. pid .. "/stat")
        return stat == nil or stat:match("%) (%a)") == "Z"
      end, 10 * process.slowdown())
    end
    -- After a row, what it started that a broken tool would leave: each pid
    -- still running the command it was given for (never a pid reused since).
    local function reap(pids, command)
      for _, pid in pairs(pids) do
        local cmdline = (process.read_file("/proc/" .. pid .. "/cmdline") or ""):gsub("%z", " ")
        if cmdline:find(command, 1, true) then os.execute("kill -9 " .. pid .. " 2>/dev/null") end
      end
    end
    local function loops_of(out)
      local n, list = out:match("^under load: (%d+) busy loops %(pids ([%d ]+)%) beside ")
      assert(n, out)
      local pids = {}
      for pid in list:gmatch("%d+") do pids[#pids + 1] = pid end
      assert.equal(tonumber(n), #pids)
      return pids
    end

    it("runs each target in a fresh clone at one commit, a line each, and ends at the first red run, "
      .. "stopping its loops and what a run left running", function()
      -- (run as make check runs it, a make's MAKELEVEL and MAKEFLAGS in its
      -- environment: each run's make starts as a developer's, saying no
      -- "make[3]: Entering directory" first)
      local out = process.capture("cd " .. q(ROOT) .. " && MAKELEVEL=2 MAKEFLAGS=k " .. TOOL .. "-l 1 -R " .. q(repo)
        .. " -o " .. q(tmp .. "/series") .. " ok leak ok bad ok 2>&1; echo \"exit $?\"")
      local loops = loops_of(out)
      local left = (process.read_file(tmp .. "/series/2-leak.log") or ""):match("left (%d+)")
      finally(function()
        reap(loops, "while :; do :; done")
        reap({ left }, "sleep 120")
      end)
      assert.equal("exit 2", out:match("exit %d+\n$"):sub(1, -2), out)
      local head = process.capture("git -C " .. q(repo) .. " rev-parse HEAD"):sub(1, -2)
      local at = "^(%d)%-(%a+) " .. head:sub(1, 7) .. " make %a+ (.*)$"
      local lines = {}
      for line in process.read_file(tmp .. "/series/summary.txt"):gmatch("[^\n]+") do
        local n, target, rest = line:match(at)
        assert(n, line)
        lines[#lines + 1] = n .. " " .. target .. " " .. rest:gsub("%d+ s;", "S s;")
          :gsub("; load [%d.]+ [%d.]+ [%d.]+ at %d%d:%d%d UTC$", "; load L")
        assert.truthy(out:find(line, 1, true), out) -- printed as it was written
      end
      assert.same({
        "1 ok green S s; 3 passed, 0 failed, 1 pending; load L",
        "2 leak green S s; left 1 running; load L",
        "3 ok green S s; 3 passed, 0 failed, 1 pending; load L",
        "4 bad RED (exit 2) S s; 2 passed, 1 failed, 0 pending; load L",
      }, lines)
      -- a clone each, at the one commit; make in a process group of its own
      -- (what stops it) in the loops' session, so in their scheduling group
      -- (the kernel's autogroup is one per session: a session of its own
      -- would take half the CPU whatever the loops)
      local my_group, my_session = process.read_file("/proc/self/stat"):match("^%d+ %b() %a %d+ (%d+) (%d+)")
      for _, n in ipairs { 1, 3 } do
        local group, session = process.read_file(tmp .. "/series/" .. n .. "-ok.log"):match(
          "^in " .. tmp:gsub("%p", "%%%0") .. "/series/" .. n .. "%-ok at " .. head .. "\ngroup (%d+) session (%d+)\n")
        assert(group, process.read_file(tmp .. "/series/" .. n .. "-ok.log"))
        assert.equal(my_session, session)
        assert.not_equal(my_group, group)
      end
      -- a green run's clone removed, the red one's kept, nothing after it run
      assert.is_nil(io.open(tmp .. "/series/1-ok/Makefile"))
      assert.truthy(io.open(tmp .. "/series/4-bad/Makefile"))
      assert.is_nil(io.open(tmp .. "/series/5-ok.log"))
      assert.truthy(out:find("run 4-bad is red: its log is " .. tmp .. "/series/4-bad.log", 1, true), out)
      -- what the leak left: said, and stopped
      assert(left, "the leak's log names no pid")
      assert.truthy(out:find("run 2-leak left processes running (stopped now): " .. left .. " sleep 120", 1, true), out)
      assert.is_true(gone(left))
      assert.equal(1, #loops)
      for _, pid in ipairs(loops) do assert.is_true(gone(pid), pid) end
    end)

    it("stops its loops and the running make's group when it is killed, and exits 143", function()
      local series = tmp .. "/killed"
      local child = process.spawn("bash -c " .. q("cd " .. q(ROOT) .. " && { " .. TOOL .. "-l 1 -R " .. q(repo)
        .. " -o " .. q(series) .. " slow ok 2>&1 & echo $!; wait $!; echo \"exit $?\"; }"))
      local tool = child.pipe:read("*l")
      local loops = loops_of(child.pipe:read("*l"))
      local waits
      finally(function()
        reap({ tool }, "under-load.sh")
        reap(loops, "while :; do :; done")
        reap({ waits }, "sleep 120")
      end)
      -- (a clone and a make's start: a wait for a state, generous, not a time claim)
      waits = checks.wait_until(function()
        return (process.read_file(series .. "/1-slow.log") or ""):match("waits on (%d+)")
      end, 60 * process.slowdown())
      assert(waits, "the slow run did not start")
      assert(process.run("kill -TERM " .. tool))
      local rest = child.pipe:read("*a")
      child.pipe:close()
      assert.equal("exit 143\n", rest)
      assert.is_true(gone(waits))
      assert.is_true(gone(loops[1]))
      assert.is_nil(io.open(series .. "/summary.txt"))
      assert.is_nil(io.open(series .. "/2-ok.log"))
    end)

    it("runs nothing on a usage error, and says which", function()
      local cases = {
        { "-l x ok", "-l 'x': LOOPS is a whole number of busy loops (0 or more)" },
        { "-r no-such-ref ok", "-r 'no-such-ref': not a commit of " .. repo },
        { "", "no TARGET: name at least one make target (check, test, ...)" },
        { "'ok;bad'", "target 'ok;bad': a make target is letters, digits, '_', '.' and '-'" },
      }
      for _, c in ipairs(cases) do
        local out = process.capture("cd " .. q(ROOT) .. " && " .. TOOL .. "-R " .. q(repo) .. " -o "
          .. q(tmp .. "/none") .. " " .. c[1] .. " 2>&1; echo \"exit $?\"")
        assert.equal("usage: tools/under-load.sh [-l LOOPS] [-r REF] [-o DIR] [-R REPO] TARGET... (the options: its "
          .. "head)\ntools/under-load.sh: " .. c[2] .. ": nothing was run\nexit 64\n", out)
      end
      assert.is_nil(io.open(tmp .. "/none"))
    end)
  end)

  describe("the helpers a spec starts as processes of their own", function()
    -- Each started by a stand-in for its spec (a shell that runs it in the background and waits for a file):
    -- still serving after 1.5 s of a spec slowed past a planted 1 s lifetime, and gone once the shell is
    -- (issue 90: a helper's clock made a slow machine's specs red).
    it("serve as long as their spec runs, and end with it, never by a clock of their own", function()
      local delayproxy = require "spec.helpers.delayproxy"
      local interp = q(process.interpreter())
      local env = "env STREAMCTL_ROOT=" .. q(ROOT) .. " LUA_PATH=" .. q(ROOT .. "/?.lua;" .. package.path) .. " "
      local helpers = {
        { "httpserver", env .. interp .. " " .. q(ROOT .. "/spec/helpers/httpserver.lua") .. " 1000" },
        { "keepalive_server", env .. interp .. " " .. q(ROOT .. "/spec/helpers/keepalive_server.lua") },
        { "delayproxy", q(delayproxy.binary()) .. " 0 1 5000" },
      }
      for _, h in ipairs(helpers) do
        local dir = process.temp_dir()
        local f = function(name) return q(dir .. "/" .. name) end
        os.execute("sh -c " .. q(h[2] .. " >" .. f("port") .. " </dev/null 2>/dev/null & echo $! >" .. f("pid")
          .. "; while [ ! -e " .. f("stop") .. " ]; do sleep 0.05; done") .. " >/dev/null 2>&1 &")
        -- (a row failed midway: the stand-in ends all the same, and its helper with it)
        finally(function()
          local fh = io.open(dir .. "/stop", "w") -- (none when the row ended well: its directory is gone)
          if fh then fh:close() end
        end)
        local port
        while not port do -- (until it says its port: it prints it first thing)
          port = tonumber((process.read_file(dir .. "/port") or ""):match("^(%d+)\n"))
          if not port then socket.sleep(0.02) end
        end
        local pid = tonumber(process.read_file(dir .. "/pid"))
        socket.sleep(1.5)
        local c = socket.connect("127.0.0.1", port)
        assert.truthy(c, h[1] .. " stopped serving while its spec ran")
        c:close()
        process.write_file(dir .. "/stop", "")
        while process.alive(pid) do socket.sleep(0.05) end -- (until it is gone: the file's timeout bounds it)
        os.execute("rm -rf " .. q(dir))
      end
    end)
  end)

  describe("spec/helpers/ports.lua", function()
    -- A process that takes a port, says its block and port, and holds them `hold` seconds.
    -- (`range`: its SPEC_PORT_RANGE)
    local function claimant(hold, block, range)
      return process.spawn("env TMPDIR=" .. q(tmp) .. " LUA_PATH=" .. q(ROOT .. "/?.lua;" .. package.path)
        .. (block and (" STREAMCTL_SPEC_PORT_BLOCK=" .. block) or "") .. (range and " SPEC_PORT_RANGE=" .. range or "")
        .. " " .. q(process.interpreter())
        .. " -e " .. q("local p = require('spec.helpers.ports'); local port = p.free(1)[1]; "
        .. "io.write(p.describe(), ' ', port, '\\n'); io.stdout:flush(); os.execute('sleep " .. hold .. "')")
        .. " 2>/dev/null")
    end
    local function said(child)
      local line = child.pipe:read("*l")
      local block, first, port = (line or ""):match("^block (%d+): ports (%d+)%-%d+ (%d+)$")
      assert(block, "a claimant said: " .. tostring(line))
      return tonumber(block), tonumber(first), tonumber(port)
    end

    it("gives processes at once blocks of their own, below the ephemeral range, even when both ask for one",
      function()
      local a, b = claimant(2, 7), claimant(2, 7)
      local ba, fa, pa = said(a)
      local bb, fb, pb = said(b)
      process.stop(a)
      process.stop(b)
      assert.are_not.equal(ba, bb)
      assert.same({ 7, 8 }, { math.min(ba, bb), math.max(ba, bb) }) -- (the one that found 7 held took the next)
      for _, v in ipairs { { ba, fa, pa }, { bb, fb, pb } } do
        assert.equal(ports.FIRST + v[1] * ports.BLOCK, v[2])
        assert.is_true(v[3] >= v[2] and v[3] < v[2] + ports.BLOCK)
      end
      local low = tonumber(process.read_file("/proc/sys/net/ipv4/ip_local_port_range"):match("%d+"))
      assert.is_true(math.max(fa, fb) + ports.BLOCK <= low)
    end)

    it("keeps to SPEC_PORT_RANGE's whole blocks; refuses a range that breaks its rule, before a spec runs", function()
      -- (20040-20139: blocks 196 and 197; two claimants take them, a third, while they hold them, finds none)
      local a, b = claimant(5, nil, "20040-20139"), claimant(5, nil, "20040-20139")
      local got = { (said(a)), (said(b)) }
      local c = claimant(0, 196, "20030-20140")
      local third = c.pipe:read("*l")
      for _, child in ipairs { a, b, c } do process.stop(child) end
      table.sort(got)
      assert.same({ 196, 197 }, got)
      assert.is_nil(third) -- (it raised: every block of its range held)
      for _, bad in ipairs { "20000-20049", "80-20139", "20040-40000", "20139-20040", "20040", "x-y" } do
        local out = process.capture("cd " .. q(ROOT) .. " && SPEC_PORT_RANGE=" .. q(bad) .. " tools/run-specs.sh "
          .. "lua5.4 1 spec/base/18-url-query_spec.lua 2>&1; echo \"exit $?\"")
        assert.truthy(out:find("^run%-specs: SPEC_PORT_RANGE=" .. bad:gsub("%p", "%%%0") .. ": must be LOW%-HIGH, two "
          .. "ports from 1024 up and below the kernel's ephemeral range %(%d+%), holding a whole block of 50 ports "
          .. "%(those from 10240 on, 50 at a time%)\nexit 2\n$"), bad .. ": " .. out)
      end
    end)

    it("takes over a block whose owner is gone, and leaves one a live process holds", function()
      local dead = process.capture("sh -c 'echo $$'"):match("%d+") -- (a process that has ended)
      os.execute("mkdir -p " .. q(tmp .. "/streamctl-spec-ports/11"))
      process.write_file(tmp .. "/streamctl-spec-ports/11/pid", dead)
      local c = claimant(0, 11)
      assert.equal(11, (said(c)))
      process.stop(c)
      -- a live owner (this process): the block is left to it
      os.execute("mkdir -p " .. q(tmp .. "/streamctl-spec-ports/12"))
      local me = process.capture("echo $PPID"):match("%d+")
      process.write_file(tmp .. "/streamctl-spec-ports/12/pid", me)
      c = claimant(0, 12)
      assert.equal(13, (said(c)))
      process.stop(c)
    end)
  end)
end)
