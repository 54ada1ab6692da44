-- tier: unit
-- streamctl.core's file operations (csrc/file.c): what the audit log and the
-- state files stand on. Exact messages and kinds; a torn tail repaired; a
-- record cut short counted; a replace that fails leaves the old bytes.
local core = require "streamctl.core"
local quote = require("spec.helpers.process").quote

local function slurp(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

local function spit(path, s)
  local f = assert(io.open(path, "wb"))
  f:write(s)
  f:close()
end

local function sh(cmd)
  local a, _, c = os.execute(cmd)
  if type(a) == "number" then return a == 0 end
  return a == true and c == 0
end

local is_root = (function()
  local p = assert(io.popen("id -u"))
  local uid = p:read("*l")
  p:close()
  return uid == "0"
end)()

local dir
before_each(function()
  dir = os.tmpname()
  os.remove(dir)
  assert(sh("mkdir -p " .. quote(dir)))
end)
after_each(function()
  sh("chmod -R u+rwx " .. quote(dir) .. " 2>/dev/null; rm -rf " .. quote(dir))
end)

describe("core.read_file", function()
  it("reads a file whole", function()
    spit(dir .. "/s", "one\ntwo\0three")
    assert.equal("one\ntwo\0three", core.read_file(dir .. "/s"))
    spit(dir .. "/e", "")
    assert.equal("", core.read_file(dir .. "/e"))
  end)

  it("tells a file that is not there (absent: a first run)", function()
    assert.same({ nil, dir .. "/none does not exist", "absent" }, { core.read_file(dir .. "/none") })
    spit(dir .. "/f", "x")
    assert.same({ nil, dir .. "/f/x does not exist", "absent" }, { core.read_file(dir .. "/f/x") })
  end)

  it("tells what is not a file, without blocking on a FIFO", function()
    assert.same({ nil, dir .. " is not a file (a directory)", "not_a_file" }, { core.read_file(dir) })
    assert(sh("mkfifo " .. quote(dir .. "/fifo")))
    assert.same({ nil, dir .. "/fifo is not a file (a FIFO)", "not_a_file" }, { core.read_file(dir .. "/fifo") })
    assert.same({ nil, "/dev/null is not a file (a character device)", "not_a_file" }, { core.read_file("/dev/null") })
  end)

  it("tells a file that cannot be read (unreadable), when not root", function()
    if is_root then
      -- root reads a mode-000 file; a directory without search permission stops
      -- everyone but root too, so the unreadable kind is shown by a loop of links
      assert(sh("ln -s loop " .. quote(dir .. "/loop")))
      local _, msg, kind = core.read_file(dir .. "/loop")
      assert.equal(dir .. "/loop cannot be read: Too many levels of symbolic links", msg)
      assert.equal("unreadable", kind)
      return
    end
    spit(dir .. "/locked", "secret state")
    assert(sh("chmod 000 " .. quote(dir .. "/locked")))
    assert.same({ nil, dir .. "/locked cannot be read: Permission denied", "unreadable" },
      { core.read_file(dir .. "/locked") })
  end)

  it("private: refuses a symbolic link, a file others may write, another user's (untrusted); reads the rest", function()
    spit(dir .. "/mine", "cached")
    assert(sh("chmod 600 " .. quote(dir .. "/mine")))
    assert.equal("cached", core.read_file(dir .. "/mine", nil, true))
    assert.equal("cac", core.read_file(dir .. "/mine", 3, true))
    assert(sh("ln -s mine " .. quote(dir .. "/link")))
    assert.equal("cached", core.read_file(dir .. "/link")) -- (followed when not private)
    assert.same({ nil, dir .. "/link is a symbolic link", "untrusted" }, { core.read_file(dir .. "/link", nil, true) })
    spit(dir .. "/shared", "x")
    assert(sh("chmod 620 " .. quote(dir .. "/shared")))
    assert.same({ nil, dir .. "/shared can be written by other users (mode 0620)", "untrusted" },
      { core.read_file(dir .. "/shared", nil, true) })
    assert(sh("chmod 602 " .. quote(dir .. "/shared")))
    assert.same({ nil, dir .. "/shared can be written by other users (mode 0602)", "untrusted" },
      { core.read_file(dir .. "/shared", nil, true) })
    assert.same({ nil, dir .. "/none does not exist", "absent" }, { core.read_file(dir .. "/none", nil, true) })
    if is_root then
      spit(dir .. "/theirs", "x")
      assert(sh("chmod 600 " .. quote(dir .. "/theirs") .. " && chown 65534 " .. quote(dir .. "/theirs")))
      assert.same({ nil, dir .. "/theirs belongs to another user (uid 65534)", "untrusted" },
        { core.read_file(dir .. "/theirs", nil, true) })
    end
  end)
end)

describe("core.replace_file", function()
  it("replaces whole, mode 0600, leaving no temporary", function()
    spit(dir .. "/state", "old")
    assert.is_true(core.replace_file(dir .. "/state", "new bytes"))
    assert.equal("new bytes", slurp(dir .. "/state"))
    local p = assert(io.popen("stat -c %a " .. quote(dir .. "/state") .. "; ls -A " .. quote(dir)))
    assert.equal("600\nstate\n", p:read("*a"))
    p:close()
  end)

  it("fails naming the path, and leaves the old bytes, when it cannot write beside it", function()
    assert.same({ nil, "cannot replace " .. dir .. "/no/state: No such file or directory" },
      { core.replace_file(dir .. "/no/state", "x") })
    -- a directory, a FIFO, a symbolic link (as root, a device node too): never replaced, nothing left beside
    assert(sh("mkdir " .. quote(dir .. "/d") .. " && touch " .. quote(dir .. "/d/keep") .. " && mkfifo "
      .. quote(dir .. "/fifo") .. " && echo held > " .. quote(dir .. "/target") .. " && ln -s target "
      .. quote(dir .. "/link")))
    assert.same({ nil, "cannot replace " .. dir .. "/d: it is a directory, not a regular file" },
      { core.replace_file(dir .. "/d", "x") })
    assert.same({ nil, "cannot replace " .. dir .. "/fifo: it is a FIFO, not a regular file" },
      { core.replace_file(dir .. "/fifo", "x") })
    assert.same({ nil, "cannot replace " .. dir .. "/link: it is a symbolic link, not a regular file" },
      { core.replace_file(dir .. "/link", "x") })
    local p = assert(io.popen("ls -A " .. quote(dir)))
    assert.equal("d\nfifo\nlink\ntarget\n", p:read("*a"))
    p:close()
    assert.equal("", slurp(dir .. "/d/keep"))
    assert.equal("held\n", slurp(dir .. "/target"))
  end)

  it("raises on misuse", function()
    assert.has_error(function() core.replace_file(dir .. "/x") end)
    assert.has_error(function() core.replace_file("", "x") end, "bad argument #1 to 'replace_file' (an empty path)")
  end)
end)

describe("core.append_private", function()
  it("appends, makes the file 0600, and syncs when asked", function()
    local log = dir .. "/audit.jsonl"
    assert.same({ true, false }, { core.append_private(log, "{\"a\":1}\n", true) })
    assert.same({ true, false }, { core.append_private(log, "{\"a\":2}\n") })
    assert.equal("{\"a\":1}\n{\"a\":2}\n", slurp(log))
    local p = assert(io.popen("stat -c %a " .. quote(log)))
    assert.equal("600\n", p:read("*a"))
    p:close()
  end)

  it("starts a record on a line of its own after a record cut short, and says so", function()
    local log = dir .. "/audit.jsonl"
    spit(log, "{\"a\":1}\n{\"cut\":")
    assert.same({ true, true }, { core.append_private(log, "{\"b\":2}\n", true) })
    assert.equal("{\"a\":1}\n{\"cut\":\n{\"b\":2}\n", slurp(log))
    assert.same({ true, false }, { core.append_private(log, "{\"c\":3}\n") })
  end)

  it("counts the bytes of a record that reached the file when the disk fills", function()
    -- (a device is refused, never written: the full disk is the size limit below)
    assert.same({ nil, "cannot open /dev/full: it is a character device, not a regular file" },
      { core.append_private("/dev/full", "x\n") })
    -- a file size limit (RLIMIT_FSIZE: 2 blocks, 1,024 bytes in dash's units) stands in for a
    -- disk that fills midway through the record
    local log = dir .. "/full.jsonl"
    local lua = arg and arg[-1] or "lua5.4"
    local script = dir .. "/w.lua"
    spit(script, "local core = require 'streamctl.core'\n"
      .. "local ok, msg, n = core.append_private(" .. string.format("%q", log) .. ", string.rep('x', 1500) .. '\\n')\n"
      .. "io.write(tostring(ok), '|', tostring(msg), '|', tostring(n))\n")
    local p = assert(io.popen("trap '' XFSZ; ulimit -f 2; " .. quote(lua) .. " " .. quote(script) .. " 2>&1"))
    local out = p:read("*a")
    p:close()
    local n = tonumber(out:match("^nil|cannot write " .. log:gsub("%p", "%%%0") .. ": File too large|(%d+)$"))
    assert(n and n > 0 and n < 1501, out)
    assert.equal(n, #slurp(log))
    -- the next record, the limit gone, starts on a line of its own
    assert.same({ true, true }, { core.append_private(log, "{\"next\":1}\n") })
    assert.equal(string.rep("x", n) .. "\n{\"next\":1}\n", slurp(log))
  end)

  it("fails naming the path when it cannot open it", function()
    assert.same({ nil, "cannot open " .. dir .. ": it is a directory, not a regular file" },
      { core.append_private(dir, "x\n") })
  end)
end)

describe("core.private_dir", function()
  local function mode(p)
    local h = assert(io.popen("stat -c %a " .. quote(p)))
    local m = h:read("*l")
    h:close()
    return m
  end

  it("makes a directory 0700 and returns the mode it had", function()
    assert(sh("chmod 755 " .. quote(dir)))
    assert.equal(tonumber("755", 8), core.private_dir(dir))
    assert.equal("700", mode(dir))
    assert.equal(tonumber("700", 8), core.private_dir(dir)) -- (already private: unchanged)
  end)

  it("refuses a link, a file and what is not there, naming the path, and changes nothing", function()
    local target = dir .. "/t"
    assert(sh("mkdir -m 755 " .. quote(target) .. " && ln -s " .. quote(target) .. " " .. quote(dir .. "/l")
      .. " && touch " .. quote(dir .. "/f")))
    assert.same({ nil, "cannot make " .. dir .. "/l private: it is a symbolic link, not a directory" },
      { core.private_dir(dir .. "/l") })
    assert.equal("755", mode(target))
    assert.same({ nil, "cannot make " .. dir .. "/f private: it is a file, not a directory" },
      { core.private_dir(dir .. "/f") })
    assert.same({ nil, "cannot open the directory " .. dir .. "/none: No such file or directory", "absent" },
      { core.private_dir(dir .. "/none") })
    assert.has_error(function() core.private_dir("") end)
  end)

  it("refuses a directory another user owns, untouched (its owner can move what is in it: issue 89)", function()
    local other = dir .. "/other"
    assert(sh("mkdir -m 755 " .. quote(other) .. " && chown 65534 " .. quote(other)))
    local uid = assert(tonumber(io.popen("id -u"):read("l")))
    assert.same({ nil, "cannot make " .. other .. " private: it is owned by uid 65534, not by this user (uid " .. uid
      .. ")" }, { core.private_dir(other) })
    assert.equal("755", mode(other)) -- (root could have changed its mode: that would protect nothing)
  end)
end)
