-- The release rockspecs, made from the scm ones so the two never drift:
-- rockspecs/NAME-X.Y.Z-1.rockspec is rockspecs/NAME-scm-1.rockspec with the
-- version of src/streamctl/version.lua, the release's source tarball as its
-- source (streamctl-X.Y.Z.tar.gz, published with the tag vX.Y.Z; make dist
-- writes it), and its dependencies
-- on the other rocks (streamctl, streamctl-cli) pinned to that version. Edit
-- the scm files only.
--
--   lua5.4 tools/rockspecs.lua          write them (make rockspecs), removing other releases'
--   lua5.4 tools/rockspecs.lua --check  exit 1, naming the file, unless they are current
--                                       (spec/house/00-package_spec.lua runs this)
--   lua5.4 tools/rockspecs.lua --tarball  the tarball's file name and top directory

local root = (arg[0]:match("^(.*)/tools/[^/]*$") or ".")
package.path = root .. "/src/?.lua;" .. package.path
local V = require("streamctl.version")._VERSION
local check = arg[1] == "--check"
local NAMES = { "streamctl", "streamctl-cli", "streamctl-redis", "streamctl-emulator" }
-- how many of the others each depends on
local PINS = { streamctl = 0, ["streamctl-cli"] = 1, ["streamctl-redis"] = 1, ["streamctl-emulator"] = 1 }

local function read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

-- Replaces `from` (plain text) by `to`, which must happen exactly `count` times.
local function replace(text, from, to, count, name)
  local out, n, i = {}, 0, 1
  while true do
    local a, b = text:find(from, i, true)
    if not a then break end
    out[#out + 1] = text:sub(i, a - 1) .. to
    i, n = b + 1, n + 1
  end
  out[#out + 1] = text:sub(i)
  if n ~= count then
    error(("%s-scm-1.rockspec: expected %d of %q, found %d"):format(name, count, from, n), 0)
  end
  return table.concat(out)
end

-- The release's source tarball (make dist: tools/dist.sh) and its top directory.
local function tarball_dir(v) return "streamctl-" .. v end
local function tarball_url(v)
  return ("https://github.com/streamctl/streamctl/releases/download/v%s/%s.tar.gz"):format(v, tarball_dir(v))
end

if arg[1] == "--tarball" then -- for tools/dist.sh: the tarball's file name and top directory
  print(tarball_url(V):match("[^/]+$") .. " " .. tarball_dir(V))
  os.exit(0)
end

local function release(name, scm)
  local s = scm
  local header = scm:match("\n(%-%- Releases are tagged.-)\nsource = {")
  if not header then error(name .. "-scm-1.rockspec: the comment above source is not the release note", 0) end
  s = replace(s, header, ("-- Release %s, made from rockspecs/%s-scm-1.rockspec by tools/rockspecs.lua\n"
    .. "-- (make rockspecs): edit that file, not this one."):format(V, name), 1, name)
  s = replace(s, 'version = "scm-1"', ('version = "%s-1"'):format(V), 1, name)
  -- (the source tarball make dist writes, as the release vX.Y.Z publishes it)
  s = replace(s, 'url = "git+https://github.com/streamctl/streamctl.git",\n',
    ('url = "%s",\n   dir = "%s",\n'):format(tarball_url(V), tarball_dir(V)), 1, name)
  s = replace(s, '"streamctl",', ('"streamctl == %s",'):format(V), math.min(PINS[name], 1), name)
  s = replace(s, '"streamctl-cli",', ('"streamctl-cli == %s",'):format(V), PINS[name] - 1 > 0 and 1 or 0, name)
  return s
end

local stale = {}
local p = io.popen("ls '" .. root .. "/rockspecs'")
for file in p:lines() do
  local name, v = file:match("^(.-)%-(%d+%.%d+%.%d+)%-1%.rockspec$")
  if name and v ~= V then stale[#stale + 1] = file end
end
p:close()

local bad = 0
for _, name in ipairs(NAMES) do
  local scm = assert(read(("%s/rockspecs/%s-scm-1.rockspec"):format(root, name)))
  local path = ("%s/rockspecs/%s-%s-1.rockspec"):format(root, name, V)
  local want = release(name, scm)
  if check then
    if read(path) ~= want then
      io.stderr:write(path:sub(#root + 2), " is missing or out of date: run make rockspecs\n")
      bad = bad + 1
    end
  else
    local f = assert(io.open(path, "wb"))
    assert(f:write(want))
    assert(f:close())
    print("wrote " .. path:sub(#root + 2))
  end
end
for _, file in ipairs(stale) do
  if check then
    io.stderr:write("rockspecs/", file, " is another version's (streamctl is ", V, "): run make rockspecs\n")
    bad = bad + 1
  else
    assert(os.remove(root .. "/rockspecs/" .. file))
    print("removed rockspecs/" .. file)
  end
end
os.exit(bad == 0 and 0 or 1)
