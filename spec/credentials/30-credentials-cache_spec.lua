-- sanitizers: none (many real processes of the command at once: the cache's C is core's, checked by its own specs)
-- interpreters: lua5.4 (the command's processes, whatever interpreter runs this file)
-- Issue 70: short-lived runs share what they learned. The command, with a
-- RAM role profile, keeps the role's temporary credentials in a cache of
-- the user's (streamctl.credentials.cache): 20 processes started at once
-- make one AssumeRole, 20 more none, one more after the renewal point; a
-- cache file cut short, of garbage, a symbolic link, writable by others or
-- another user's is never read as credentials (the run works, asks once,
-- says what it found once); expiry is judged by the provider's clock, ten
-- minutes either way; --no-credentials-cache keeps a run to itself.
-- Issue 89: a directory another user owns is not used; an entry answers
-- its own key only (moved over another's, it answers nobody; a wrong
-- secret is a key of its own); a lock a stopped process holds is waited
-- for, then left out of the run, its holder named; no longer than the run's
-- --deadline; a Ctrl-C in that wait stops the run with nothing asked; a
-- killed holder's is the next run's; a miss says "fetched again", and an
-- entry that cannot be written says so after it.
local cjson = require "cjson"
local emu = require "spec.helpers.emulator"
local process = require "spec.helpers.process"
local socket = require "socket"

local q = process.quote
local UID = "1234567890123456"
local ROLE, OTHER_ROLE = "acs:ram::" .. UID .. ":role/edge", "acs:ram::" .. UID .. ":role/other"
local CONFIG = { aliyun = { accounts = { LTAIuser = { secret = "s", account = UID, user = "u" } },
                            roles = { [ROLE] = {}, [OTHER_ROLE] = {} }, qps = { ResumeLiveStream = 0 } } }

describe("the credentials cache, from the command", function()
  local server, home, cli, cache
  lazy_setup(function() server = emu.start { config = CONFIG } end)
  lazy_teardown(function() if server then server:stop() end end)
  before_each(function()
    server:reset()
    home = process.temp_dir()
    cache = home .. "/.cache/streamctl/credentials"
    cli = process.installed { home = home }
    os.execute("mkdir -p " .. q(home .. "/.aliyun"))
    local sts = server.aliyun_tls_url:gsub("^https://", "")
    process.write_file(home .. "/.aliyun/config.json", cjson.encode { current = "ops", profiles = {
      { name = "ops", mode = "RamRoleArn", access_key_id = "LTAIuser", access_key_secret = "s", ram_role_arn = ROLE,
        ram_session_name = "cron", sts_endpoint = sts },
      { name = "other", mode = "RamRoleArn", access_key_id = "LTAIuser", access_key_secret = "s",
        ram_role_arn = OTHER_ROLE, ram_session_name = "cron", sts_endpoint = sts } } })
    os.execute("chmod 600 " .. q(home .. "/.aliyun/config.json"))
  end)
  after_each(function() os.execute("rm -rf " .. q(home)) end)

  local CALL = "aliyun resume-live-stream --domain-name push.example.com --app-name live --stream-name a --output json"
  local function args() return CALL .. " --endpoint " .. server.aliyun_tls_url .. " --ca-file " .. q(server.ca_file) end
  local function assumed() return #server:log { action = "AssumeRole", limit = 10000 } end
  -- `n` runs of the command at once (`argv`, default a call; a shell starts them all, then waits): their
  -- exit statuses
  local function at_once(n, argv)
    local dir = process.temp_dir()
    local lines = {}
    for i = 1, n do
      local out = q(dir .. "/" .. i)
      lines[i] = "(" .. cli.env .. " " .. cli.command .. " " .. (argv or args()) .. " >" .. out .. ".out 2>" .. out
        .. ".err; echo $? >" .. out .. ".code)"
    end
    os.execute("(" .. table.concat(lines, " & ") .. " & wait)")
    local codes = {}
    for i = 1, n do codes[i] = tonumber(process.read_file(dir .. "/" .. i .. ".code")) end
    os.execute("rm -rf " .. q(dir))
    return codes
  end
  local function all_zero(codes)
    for _, c in ipairs(codes) do if c ~= 0 then return false end end
    return #codes > 0
  end
  -- the cache's entries' paths, sorted
  local function entries()
    local p = io.popen("ls " .. q(cache) .. "/*.json 2>/dev/null")
    local out = {}
    for line in p:lines() do out[#out + 1] = line end
    p:close()
    return out
  end
  -- the one entry of the cache, decoded, and its path
  local function entry()
    local path = assert(entries()[1], "no entry in the cache")
    return cjson.decode((assert(process.read_file(path)))), path
  end

  it("20 runs at once make one AssumeRole, 20 more none, one more after the renewal point", function()
    assert.is_true(all_zero(at_once(20)))
    assert.equal(1, assumed())
    assert.is_true(all_zero(at_once(20)))
    assert.equal(1, assumed())
    -- the directory 0700, the file 0600, the secret and token in it, nothing else there but locks
    assert.equal("drwx------", process.capture("stat -c %A " .. q(cache)):sub(1, 10))
    local e, path = entry()
    assert.equal("-rw-------", process.capture("stat -c %A " .. q(path)):sub(1, 10))
    assert.same({ "number", "string", "string" }, { type(e.exp), type(e.id), type(e.token) })
    -- past the renewal point (the entry made to expire in 10 minutes: under the 15 left at which it is renewed)
    e.exp, e.issued = os.time() + 600, os.time() - 3000
    process.write_file(path, cjson.encode(e))
    assert.is_true(all_zero(at_once(5)))
    assert.equal(2, assumed())
  end)

  it("whoami: 20 at once ask AssumeRole and GetCallerIdentity once, 20 more not at all; it says the cache", function()
    local who = "aliyun whoami --ca-file " .. q(server.ca_file) .. " --sts-endpoint " .. server.aliyun_tls_url
    local function whoami_at_once(n) return at_once(n, who) end
    local function asked(action) return #server:log { action = action, limit = 10000 } end
    assert.is_true(all_zero(whoami_at_once(20)))
    assert.same({ 1, 1 }, { asked("AssumeRole"), asked("GetCallerIdentity") })
    assert.is_true(all_zero(whoami_at_once(20)))
    assert.same({ 1, 1 }, { asked("AssumeRole"), asked("GetCallerIdentity") })
    local code, out, err = cli.run(who)
    assert.equal(0, code, err)
    assert.truthy(out:find("\nexpires   %d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%dZ %(from the credentials cache%)\n$"), out)
    code, out, err = cli.run(who .. " --no-credentials-cache")
    assert.equal(0, code, err)
    assert.truthy(out:find("%(fetched, not cached%)\n$"), out)
    assert.same({ 2, 2 }, { asked("AssumeRole"), asked("GetCallerIdentity") })
  end)

  it("a cache file cut short, garbage, a symbolic link, writable by others, another user's: never read", function()
    local code, _, err = cli.run(args())
    assert.same({ 0, "" }, { code, err })
    local e, path = entry()
    local good = process.read_file(path)
    local cases = {
      { function() process.write_file(path, good:sub(1, 20)) end, "is not an entry (cut short, or not streamctl's)" },
      { function() process.write_file(path, "\0\1garbage") end, "is not an entry (cut short, or not streamctl's)" },
      { function()
          process.write_file(home .. "/other.json", good)
          os.execute("rm -f " .. q(path) .. " && ln -s " .. q(home .. "/other.json") .. " " .. q(path))
        end, "is a symbolic link" },
      { function() process.write_file(path, good) os.execute("chmod 666 " .. q(path)) end,
        "can be written by other users (mode 0666)" },
      { function() process.write_file(path, good) os.execute("chmod 600 " .. q(path) .. " && chown 65534 " .. q(path))
        end, "belongs to another user (uid 65534)" },
    }
    for i, case in ipairs(cases) do
      case[1]()
      local before = assumed()
      code, _, err = cli.run(args())
      assert.equal(0, code, err)
      assert.equal(before + 1, assumed(), "case " .. i)
      assert.equal("streamctl: warning: the credentials cache " .. path .. " " .. case[2]
        .. ": ignored, fetched again\n", err)
      -- replaced: the next run reads it, asks nothing, says nothing
      code, _, err = cli.run(args())
      assert.same({ 0, "", before + 1 }, { code, err, assumed() }, "case " .. i)
    end
    assert.equal(e.id == entry().id, false) -- (renewed: other credentials than the first)
  end)

  it("an entry that cannot be replaced says so after its miss, and the next run asks again (issue 89)", function()
    local code, _, err = cli.run(args())
    assert.same({ 0, "" }, { code, err })
    local _, path = entry()
    -- (a directory where the entry was: not read, and no file renamed over it)
    os.execute("rm -f " .. q(path) .. " && mkdir " .. q(path))
    for run = 1, 2 do
      code, _, err = cli.run(args())
      assert.equal(0, code, err)
      assert.equal(1 + run, assumed())
      assert.equal("streamctl: warning: the credentials cache " .. path .. " is not a file (a directory): ignored, "
        .. "fetched again\nstreamctl: warning: the credentials cache cannot replace " .. path .. ": it is a directory, "
        .. "not a regular file: not replaced (the next run fetches again)\n", err)
    end
  end)

  it("judges expiry by the provider's clock, ten minutes ahead or behind: neither past it nor at every run",
    function()
    for _, offset in ipairs { 600, -600 } do
      server:reset()
      os.execute("rm -rf " .. q(cache))
      server:clock { offset = offset }
      assert.is_true(all_zero(at_once(3)))
      assert.is_true(all_zero(at_once(3)))
      assert.equal(1, assumed(), "offset " .. offset)
      local e = entry()
      -- kept in STS's time, with the skew its writer measured
      assert.truthy(math.abs(e.skew - offset) <= 2, e.skew)
      -- STS's 3600 s from STS's now: 15 minutes before their end in STS's time, renewed
      e.exp, e.issued = os.time() + offset + 850, os.time() + offset - 2750
      process.write_file(select(2, entry()), cjson.encode(e))
      assert.is_true(all_zero(at_once(3)))
      assert.equal(2, assumed(), "offset " .. offset)
    end
  end)

  it("--no-credentials-cache keeps a run to itself; two users never read each other's cache", function()
    cli.run(args())
    assert.equal(1, assumed())
    local code, _, err = cli.run(args() .. " --no-credentials-cache")
    assert.same({ 0, "", 2 }, { code, err, assumed() })
    -- another user's HOME and cache: its own request (its directory is its own)
    local other_home = process.temp_dir()
    os.execute("cp -r " .. q(home .. "/.aliyun") .. " " .. q(other_home .. "/"))
    local other = process.installed { home = other_home }
    code, _, err = other.run(args())
    assert.same({ 0, "", 3 }, { code, err, assumed() })
    os.execute("rm -rf " .. q(other_home))
  end)
  -- Issue 89: the cache's own promises, each a row that failed before its fix.
  it("a cache directory another user owns is not used, nor anything made in it: said, each run its own", function()
    assert.equal(0, (cli.run(args())))
    local path = entries()[1]
    local before = process.read_file(path)
    os.execute("chown -R 65534 " .. q(cache))
    local uid = process.capture("id -u"):match("%d+")
    for run = 1, 2 do
      local code, _, err = cli.run(args())
      assert.equal(0, code, err)
      assert.equal(1 + run, assumed(), "run " .. run)
      assert.equal("streamctl: warning: cannot make " .. cache .. " private: it is owned by uid 65534, not by this "
        .. "user (uid " .. uid .. "): temporary credentials are not cached (each run asks for its own)\n", err)
    end
    assert.same({ { path }, before }, { entries(), process.read_file(path) }) -- (nothing written there)
    assert.equal("65534", process.capture("stat -c %u " .. q(cache)):match("%d+")) -- (nor its mode or owner changed)
  end)

  it("an entry moved over another profile's answers nobody: that profile asks for its own role", function()
    assert.equal(0, (cli.run(args())))
    local ops = entries()[1]
    assert.equal(0, (cli.run(args() .. " --profile other")))
    assert.equal(2, assumed())
    local both = entries()
    local other = both[1] == ops and both[2] or both[1]
    os.execute("cp " .. q(ops) .. " " .. q(other))
    local code, _, err = cli.run(args() .. " --profile other")
    assert.equal(0, code, err)
    assert.equal(3, assumed())
    assert.equal("streamctl: warning: the credentials cache " .. other .. " holds the entry of another key (moved or "
      .. "copied there): ignored, fetched again\n", err)
    local log = server:log { action = "AssumeRole", limit = 10 }
    assert.equal(OTHER_ROLE, log[#log].params.RoleArn) -- (its own role asked for, not the one moved there)
  end)

  it("the right AccessKeyId with a wrong secret is never served the role's cached credentials", function()
    assert.equal(0, (cli.run(args())))
    local config = process.read_file(home .. "/.aliyun/config.json")
    process.write_file(home .. "/.aliyun/config.json", (config:gsub('"access_key_secret":"s"', '"access_key_secret":"x"')))
    local code, _, err = cli.run(args())
    assert.is_true(code ~= 0, err)
    -- (STS asked with it, and refused it: the cache answered nothing)
    local log = server:log { action = "AssumeRole", limit = 10 }
    assert.equal(2, #log)
    assert.same({ "ok", "LTAIuser" }, { log[1].verdict, log[1].account })
    assert.is_true(log[2].verdict ~= "ok", tostring(log[2].verdict))
  end)

  -- A cached entry due for renewal (the lock is asked for), its lock held by another process (a Lua that
  -- locks and reads its standard input, ending when this spec's pipe closes): the entry's path, as it
  -- is, its lock's path and the holder's pid.
  local function held_entry()
    assert.equal(0, (cli.run(args())))
    local path = entries()[1]
    local lock = path:gsub("%.json$", ".lock")
    local holder = io.popen(cli.env .. " lua5.4 -e " .. q("local l = assert(require('streamctl.core').lock_file("
      .. string.format("%q", lock) .. ")); io.read('a')"), "w")
    local pid
    while not pid do -- (until the holder writes its pid: it runs until this spec's pipe closes)
      pid = (process.read_file(lock) or ""):match("^(%d+)\n$")
      if pid and not process.capture("cat /proc/" .. pid .. "/cmdline 2>/dev/null"):find("lua", 1, true) then
        pid = nil
      end
      if not pid then socket.sleep(0.01) end
    end
    finally(function()
      os.execute("kill -KILL " .. pid .. " 2>/dev/null")
      holder:close()
    end)
    local e = cjson.decode(process.read_file(path))
    e.exp, e.issued = os.time() + 600, os.time() - 3000
    process.write_file(path, cjson.encode(e))
    return path, cjson.encode(e), lock, pid
  end

  it("a lock held past the run's --deadline is waited for no longer than it (issue 89)", function()
    local path, before, lock, pid = held_entry()
    local _, _, err = cli.run(args() .. " --deadline 2")
    local waited = tonumber(err:match("^streamctl: warning: the credentials cache " .. lock:gsub("%p", "%%%0")
      .. " is locked by process " .. pid .. " %(waited (%d+) ms%): not used by this run, which fetches its own "
      .. "credentials and writes none\n"))
    assert.truthy(waited, err)
    assert.is_true(waited <= 2000, waited .. " ms")
    assert.equal(before, process.read_file(path)) -- (nothing written)
  end)

  it("Ctrl-C while a lock is waited for: the run stops, asks STS nothing, writes nothing (issue 89)", function()
    local path, before, lock = held_entry()
    local dir = process.temp_dir()
    finally(function() os.execute("rm -rf " .. q(dir)) end)
    local f = function(name) return q(dir .. "/" .. name) end
    local before_sts = assumed() -- (asked before the run starts: nothing asks STS in between)
    os.execute("(sh -c " .. q("echo $$ >" .. f("pid") .. "; exec " .. cli.env .. " " .. cli.command .. " " .. args())
      .. " >" .. f("out") .. " 2>" .. f("err") .. "; echo $? >" .. f("code.tmp") .. "; mv " .. f("code.tmp") .. " "
      .. f("code") .. ") </dev/null >/dev/null 2>&1 &")
    while not (process.read_file(dir .. "/pid") or ""):find("\n") do socket.sleep(0.01) end
    local run_pid = tonumber(process.read_file(dir .. "/pid"))
    -- (in the wait: the run has the lock file open, polling it, while the holder keeps it; bounded by the run's
    -- own end, 15 s of waiting at most)
    local function waiting()
      return process.capture("ls -l /proc/" .. run_pid .. "/fd 2>/dev/null"):find(" -> " .. lock .. "\n", 1, true)
    end
    while not waiting() do
      -- (what it said, if it did: seen once under a loaded make check, without its words)
      assert(not process.read_file(dir .. "/code"), "the run ended before it waited for the lock, exit "
        .. tostring(process.read_file(dir .. "/code")) .. ": " .. tostring(process.read_file(dir .. "/err")))
      socket.sleep(0.02)
    end
    os.execute("kill -INT " .. run_pid)
    while not process.read_file(dir .. "/code") do socket.sleep(0.02) end -- (until the run ends)
    assert.equal("130\n", process.read_file(dir .. "/code"), process.read_file(dir .. "/err"))
    assert.equal(before_sts, assumed())
    assert.equal(before, process.read_file(path))
  end)

  it("a lock whose holder was killed is the next run's at once: it renews and writes, says nothing (issue 89)",
    function()
    local path, before, _, pid = held_entry()
    os.execute("kill -KILL " .. pid)
    local code, _, err = cli.run(args())
    assert.same({ 0, "", 2 }, { code, err, assumed() })
    assert.not_equal(before, process.read_file(path)) -- (renewed, and written)
  end)

  it("a lock its stopped holder keeps: waited for, then this run fetches its own, writes nothing, names it", function()
    local path, before, lock, pid = held_entry()
    os.execute("kill -STOP " .. pid)
    local code, _, err = cli.run(args())
    assert.equal(0, code, err)
    assert.equal(2, assumed())
    assert.equal("streamctl: warning: the credentials cache " .. lock .. " is locked by process " .. pid
      .. " (stopped) (waited 15000 ms): not used by this run, which fetches its own credentials and writes none\n", err)
    assert.equal(before, process.read_file(path)) -- (nothing written)
  end)
end)
