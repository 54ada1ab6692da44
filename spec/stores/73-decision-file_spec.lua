-- tier: unit
-- The machine's decision store (streamctl.store.decisionfile, issue 87): a
-- file that every run of a user on the machine shares, holding the
-- decisions and ZEGO's Sequences by streamctl.engine.sequence's store
-- contract. Two store objects on one file stand for two runs; the file's
-- bytes are asserted whole; an unreadable file is an error naming it,
-- never an empty store.
local decisionfile = require "streamctl.store.decisionfile"
local sequence = require "streamctl.engine.sequence"
local core = require "streamctl.core"

local process = require "spec.helpers.process"
local read, write, quote = process.read_file, process.write_file, process.quote

-- A new directory, removed when the test ends.
local function tmpdir()
  local d = process.temp_dir()
  finally(function() process.run("rm -rf " .. quote(d)) end)
  return d
end

local function store_at(path, prefix)
  local h = assert(decisionfile.handle(assert(decisionfile.check(path))))
  return decisionfile.sequence_store(h, prefix or "zego:1:")
end

-- The permission bits of `path`, as octal text.
local function mode(path)
  return (process.capture("stat -c %a " .. quote(path)):gsub("\n$", ""))
end

describe("the machine's decision file", function()
  it("keeps the contract: advance, advance_all, record_all, renew, get, in exact bytes", function()
    local path = tmpdir() .. "/state/streamctl/decisions"
    local s = store_at(path)
    assert.is_nil(s:get("a")) -- (no file yet: a first run, an empty store)
    assert.equal(1000, s:advance("a", 1000))
    assert.equal(1001, s:advance("a", 900))
    assert.equal(1002, s:advance_all({ "a", "b c" }, 1000))
    assert.same({ false, "b c", 1002 }, { s:record_all({ "b c", "a" }, 1002) })
    assert.is_true(s:record_all({ "b c", "a" }, 1500))
    assert.same({ false, { a = 1500 } }, { s:renew({ "a", "r:a" }, 1400, 1450, 1) })
    assert.equal(1501, s:renew({ "a", "r:a" }, 1500, 1450, 1))
    -- (a log: a line a value taken, the first write the file whole; a key's value its largest)
    assert.equal("streamctl decisions 2\n1000 zego%3A1%3Aa\n1001 zego%3A1%3Aa\n1002 zego%3A1%3Aa\n"
      .. "1002 zego%3A1%3Ab%20c\n1500 zego%3A1%3Aa\n1500 zego%3A1%3Ab%20c\n1501 zego%3A1%3Aa\n1501 zego%3A1%3Ar%3Aa\n",
      read(path))
    assert.equal(1501, store_at(path):get("a")) -- (another process reads it whole)
    assert.equal("600", mode(path))
    assert.equal("700", mode(path:match("^(.*)/[^/]*$")))
  end)

  it("two runs on one file see each other's values: every value above the last, whoever took it", function()
    local path = tmpdir() .. "/decisions"
    local a, b = store_at(path), store_at(path)
    local gen_a = assert(sequence.new { store = a, clock_ms = function() return 5000 end })
    local gen_b = assert(sequence.new { store = b, clock_ms = function() return 5000 end })
    assert.equal("5000", gen_a:next_for { "s1" })
    assert.equal("5001", gen_b:next_for { "s1" })
    assert.same({ s1 = 5001 }, gen_a:later({ "s1" }, 5000)) -- (the other run's later decision)
    assert.same({ false, { s1 = 5001 } }, { gen_a:renew({ "s1" }, 5000) })
  end)

  it("a log: another run's lines read as they come, the file rewritten with what is kept once it grew", function()
    local path = tmpdir() .. "/decisions"
    local floor = decisionfile.COMPACT_FLOOR
    decisionfile.COMPACT_FLOOR = 200
    finally(function() decisionfile.COMPACT_FLOOR = floor end)
    local a, b = store_at(path), store_at(path)
    for i = 1, 8 do
      assert.equal(998 + 2 * i, a:advance("s", 1000))
      assert.equal(999 + 2 * i, b:advance("s", 1000)) -- (each sees the other's last line)
    end
    -- (rewritten when it held more than 4 lines a value kept: the one key's value alone, then its lines)
    local text = read(path)
    assert.truthy(#text < 200, text)
    assert.equal("streamctl decisions 2\n", text:sub(1, 22))
    assert.equal("1015 zego%3A1%3As\n", text:match("[^\n]*\n$"))
    -- (a process that knew the file before it was replaced reads the new one whole)
    assert.equal(1016, a:advance("s", 1000))
    assert.equal(1016, store_at(path):get("s"))
  end)

  it("a line another process left cut short is an error, not a value", function()
    local path = tmpdir() .. "/decisions"
    local s = store_at(path)
    s:advance("a", 10)
    local f = assert(io.open(path, "ab"))
    f:write("11 zego%3A1%3A")
    f:close()
    local v, why = s:advance("a", 10)
    assert.is_nil(v)
    assert.matches(path .. " is cut short (its last line has no newline) (move it away", why, 1, true)
  end)

  it("keys under other prefixes stay apart (another provider or account)", function()
    local path = tmpdir() .. "/decisions"
    store_at(path, "aliyun:"):advance("d/a/s", 7000)
    assert.is_nil(store_at(path, "zego:1:"):get("d/a/s"))
    assert.equal(7000, store_at(path, "aliyun:"):get("d/a/s"))
  end)

  it("forgets what is older than the generator keeps (KEEP_MS) when it writes", function()
    local path = tmpdir() .. "/decisions"
    local s = store_at(path)
    s:advance("old", 1000)
    s:advance("new", 1000 + sequence.KEEP_MS + 1)
    assert.is_nil(s:get("old"))
    assert.equal(1000 + sequence.KEEP_MS + 1, s:get("new"))
  end)

  for _, case in ipairs {
    { "another program's file", "hello\n", "is not a streamctl decision store" },
    { "a file cut short", "streamctl decisions 2\n12 a%20b\n13 c", "is cut short" },
    { "a line that is not an entry", "streamctl decisions 2\n12 a\nx y\n", "line 3 is not '<value> <key>'" },
    { "a value past 2^53", "streamctl decisions 2\n99999999999999999 a\n", "line 2 is not '<value> <key>'" },
    { "the first format's file", "streamctl decisions 1\n12 a\n", "is not a streamctl decision store" },
  } do
    it("refuses " .. case[1] .. ", naming the file: never an empty store", function()
      local path = tmpdir() .. "/decisions"
      write(path, case[2])
      local s = store_at(path)
      local v, why = s:advance("a", 1)
      assert.is_nil(v)
      assert.matches(path .. " " .. case[3], why, 1, true)
      assert.matches("move it away to start an empty store", why, 1, true)
      assert.same({ nil, why }, { s:renew({ "a" }, 1, 2) })
      assert.equal(case[2], read(path)) -- (left as it was)
    end)
  end

  it("a rewrite killed before its rename leaves one file, which the next rewrite replaces", function()
    local d = tmpdir()
    local path = d .. "/decisions"
    -- (what a run killed mid-rewrite leaves: the whole of a file, or half of one, beside the store)
    write(path .. ".tmp", "streamctl decisions 2\n5 half-writ")
    local s = store_at(path)
    assert.equal(7000, s:advance("a", 7000)) -- (a new store: its first write is a rewrite)
    assert.equal("streamctl decisions 2\n7000 zego%3A1%3Aa\n", read(path))
    assert.is_nil(read(path .. ".tmp"))
    local names = {}
    for f in require("lfs").dir(d) do if f ~= "." and f ~= ".." then names[#names + 1] = f end end
    table.sort(names)
    assert.same({ "decisions", "decisions.lock" }, names)
  end)

  it("refuses a file others may write, and a symbolic link", function()
    local d = tmpdir()
    local path = d .. "/decisions"
    write(path, "streamctl decisions 2\n")
    process.run("chmod 0622 " .. quote(path))
    local v, why = store_at(path):advance("a", 1)
    assert.is_nil(v)
    assert.matches("can be written by other users (mode 0622)", why, 1, true)
    write(d .. "/real", "streamctl decisions 2\n")
    process.run("chmod 0600 " .. quote(d .. "/real") .. " && ln -s " .. quote(d .. "/real") .. " " .. quote(d .. "/link"))
    v, why = store_at(d .. "/link"):advance("a", 1)
    assert.is_nil(v)
    assert.matches("is a symbolic link", why, 1, true)
  end)

  it("waits for another run's lock, then says it was busy, changing nothing", function()
    local path = tmpdir() .. "/decisions"
    local s = store_at(path)
    s:advance("a", 10)
    local held = assert(core.lock_file(path .. ".lock", 0))
    local saved = decisionfile.LOCK_WAIT_MS
    decisionfile.LOCK_WAIT_MS = 50
    finally(function() decisionfile.LOCK_WAIT_MS = saved end)
    local v, why = s:advance("a", 20)
    assert.is_nil(v)
    -- (the holder named by the pid it wrote into the lock file: this process's own here)
    local pid = assert(process.read_file(path .. ".lock"):match("^(%d+)\n$"))
    assert.matches("is locked by process " .. pid .. " (waited 50 ms)", why, 1, true)
    held:unlock()
    assert.equal(20, s:advance("a", 20))
  end)

  it("is refused inside nginx, naming what to give there", function()
    rawset(_G, "ngx", {})
    local v, why = decisionfile.check("/tmp/decisions")
    rawset(_G, "ngx", nil)
    assert.is_nil(v)
    assert.equal("is for processes outside nginx (its lock would block a worker): give shared_dict for one nginx, "
      .. "redis for several", why)
  end)

  it("takes only an absolute path as its option", function()
    for _, bad in ipairs { "decisions", "", "/tmp/a\nb", "/tmp/dir/", 5 } do
      local v, why = decisionfile.check(bad)
      assert.is_nil(v)
      assert.equal("must be the absolute path of a file (no control characters, not ending in '/')", why)
    end
  end)

  it("by default lives under $XDG_STATE_HOME, else ~/.local/state, unless STREAMCTL_DECISION_FILE says", function()
    local env = { HOME = "/home/u" }
    local function getenv(k) return env[k] end
    assert.equal("/home/u/.local/state/streamctl/decisions", decisionfile.default_path(getenv))
    env.XDG_STATE_HOME = "/x"
    assert.equal("/x/streamctl/decisions", decisionfile.default_path(getenv))
    env.STREAMCTL_DECISION_FILE = "/y/d"
    assert.equal("/y/d", decisionfile.default_path(getenv))
  end)
end)
