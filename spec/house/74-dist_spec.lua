-- sanitizers: none (the house: files, docs and tools, not our C)
-- interpreters: lua5.4 (it builds and checks release files: the interpreter running it is not under test)
-- make dist (tools/dist.sh): the release artifacts of HEAD. The source
-- tarball holds exactly the commit's files under streamctl-X.Y.Z/; the four
-- release rockspecs are the commit's and name that tarball as their source;
-- each packed source rock holds its rockspec and the tarball, byte for byte;
-- SHA256SUMS verifies; the same commit gives the same bytes twice; and
-- luarocks installs the command and the library from the directory alone
-- (--only-server: nothing else is asked; --server in a network namespace of
-- its own, where nothing else can be), Debian's packages standing in for
-- the Lua dependencies (rockspecs/luarocks-config.lua), into a tree of its
-- own, where `streamctl --version` runs.
local process = require "spec.helpers.process"

local q = process.quote
local ROOT = os.getenv("STREAMCTL_ROOT") or "."
local V = require("streamctl.version")._VERSION
local TOP = "streamctl-" .. V
local TARBALL = TOP .. ".tar.gz"
local NAMES = { "streamctl", "streamctl-cli", "streamctl-emulator", "streamctl-redis" }

-- `cmd`'s exit status and output, run without the sanitizer's LD_PRELOAD
-- (under ASan, luarocks' wget never returns).
local function sh(cmd)
  local out = process.capture("env -u LD_PRELOAD sh -c " .. q("(" .. cmd .. ") 2>&1; echo \"rc=$?\""))
  return tonumber(out:match("rc=(%d+)%s*$")), (out:gsub("rc=%d+%s*$", ""))
end

local function lines(text)
  local out = {}
  for line in text:gmatch("[^\n]+") do out[#out + 1] = line end
  table.sort(out)
  return out
end

local function dist(dir)
  local rc, out = sh("cd " .. q(ROOT) .. " && DIST_OUT=" .. q(dir) .. " tools/dist.sh")
  assert(rc == 0, "make dist failed:\n" .. out)
  return out
end

describe("make dist", function()
  local dir, out
  setup(function()
    dir = process.temp_dir()
    out = dist(dir .. "/a")
  end)
  teardown(function() process.run("rm -rf " .. q(dir)) end)

  it("writes the tarball, four rockspecs, four source rocks, a manifest and SHA256SUMS", function()
    local want = { "SHA256SUMS", TARBALL, "index.html", "manifest", "manifest-5.1", "manifest-5.2", "manifest-5.3",
      "manifest-5.4" }
    for _, name in ipairs(NAMES) do
      want[#want + 1] = name .. "-" .. V .. "-1.rockspec"
      want[#want + 1] = name .. "-" .. V .. "-1.src.rock"
    end
    table.sort(want)
    assert.same(want, lines(process.capture("ls " .. q(dir .. "/a"))))
    local rc, said = sh("cd " .. q(dir .. "/a") .. " && sha256sum -c SHA256SUMS")
    assert.equal(0, rc, said)
    assert.equal(9, #lines(said)) -- the tarball, four rockspecs, four rocks: each OK
    assert.truthy(out:find("release " .. V .. " from ", 1, true))
  end)

  it("puts exactly HEAD's files in the tarball, under " .. TOP .. "/", function()
    local files = {}
    for _, f in ipairs(lines(process.capture("cd " .. q(ROOT) .. " && git ls-tree -r --name-only HEAD"))) do
      files[#files + 1] = TOP .. "/" .. f
    end
    local listed = {}
    for _, f in ipairs(lines(process.capture("tar -tzf " .. q(dir .. "/a/" .. TARBALL)))) do
      if f:sub(-1) ~= "/" then listed[#listed + 1] = f end
    end
    table.sort(files)
    assert.same(files, listed)
    -- and their bytes: a file compared whole
    local head = process.capture("cd " .. q(ROOT) .. " && git show HEAD:src/streamctl/version.lua")
    assert.equal(head, process.capture("tar -xzOf " .. q(dir .. "/a/" .. TARBALL) .. " " .. q(TOP
      .. "/src/streamctl/version.lua")))
  end)

  it("gives each rock HEAD's release rockspec, naming the tarball, and the tarball itself", function()
    local tarball = assert(process.read_file(dir .. "/a/" .. TARBALL))
    for _, name in ipairs(NAMES) do
      local file = name .. "-" .. V .. "-1.rockspec"
      local spec_text = assert(process.read_file(dir .. "/a/" .. file))
      assert.equal(process.capture("cd " .. q(ROOT) .. " && git show HEAD:rockspecs/" .. file), spec_text)
      assert.truthy(spec_text:find('url = "https://github.com/streamctl/streamctl/releases/download/v' .. V .. "/"
        .. TARBALL .. '",\n   dir = "' .. TOP .. '",', 1, true), file .. " does not name " .. TARBALL)
      local rock = dir .. "/a/" .. name .. "-" .. V .. "-1.src.rock"
      local held = {}
      for line in process.capture("unzip -Z1 " .. q(rock)):gmatch("[^\n]+") do held[#held + 1] = line end
      table.sort(held)
      local want = { file, TARBALL }
      table.sort(want)
      assert.same(want, held)
      assert.equal(spec_text, process.capture("unzip -p " .. q(rock) .. " " .. q(file)))
      assert.is_true(process.capture("unzip -p " .. q(rock) .. " " .. q(TARBALL)) == tarball, name .. "'s tarball")
    end
  end)

  it("makes the same bytes again from the same commit", function()
    dist(dir .. "/b")
    assert.equal(process.read_file(dir .. "/a/SHA256SUMS"), process.read_file(dir .. "/b/SHA256SUMS"))
  end)

  it("is a rock server luarocks installs the command from, offline, into a tree of its own", function()
    local tree = dir .. "/tree"
    local rc, said = sh("LUAROCKS_CONFIG=" .. q(ROOT .. "/rockspecs/luarocks-config.lua")
      .. " luarocks --lua-version=5.4 --tree " .. q(tree) .. " install --only-server=" .. q(dir .. "/a")
      .. " streamctl-cli")
    assert.equal(0, rc, said)
    assert.truthy(said:find("streamctl-cli " .. V .. "-1 is now installed", 1, true), said)
    assert.truthy(said:find("Installing " .. dir .. "/a/streamctl-" .. V .. "-1.src.rock", 1, true), said)
    assert.equal("streamctl " .. V .. " (Lua 5.4)\n", process.capture(q(tree .. "/bin/streamctl") .. " --version"))
  end)

  it("installs with --server=DIR too, where nothing else can be reached (a network namespace of its own)", function()
    if not process.run("unshare -rn true 2>/dev/null") then
      pending("unshare -rn is not allowed here: --only-server above asks nothing else")
      return
    end
    local tree = dir .. "/tree-server"
    local rc, said = sh("unshare -rn env LUAROCKS_CONFIG=" .. q(ROOT .. "/rockspecs/luarocks-config.lua")
      .. " luarocks --lua-version=5.4 --tree " .. q(tree) .. " install --server=" .. q(dir .. "/a") .. " streamctl")
    assert.equal(0, rc, said)
    assert.truthy(said:find("streamctl " .. V .. "-1 is now installed", 1, true), said)
  end)
end)
