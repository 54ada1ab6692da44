-- What a rockspec installs, as file lists for the builds that are not
-- luarocks (debian/*.dh-lua.conf, debian/rules): the rockspecs stay the one
-- list of which file belongs to which part (spec/house/00-package_spec.lua checks
-- them against src/ and csrc/).
--
--   lua5.4 tools/rock-files.lua ROCKSPEC lua          its Lua modules' files (src/...)
--   lua5.4 tools/rock-files.lua ROCKSPEC objs MODULE  the C module's sources as libtool
--                                                     objects (csrc/x.lo), dh-lua's CLIB_OBJS
--   lua5.4 tools/rock-files.lua ROCKSPEC libs MODULE  its libraries as -l flags
--   lua5.4 tools/rock-files.lua ROCKSPEC cmodules     its C modules' names
--   lua5.4 tools/rock-files.lua ROCKSPEC bin          the programs it installs (bin/...)
--   lua5.4 tools/rock-files.lua ROCKSPEC source       its source's file name and directory
--                                                     (the release tarball: tools/dist.sh)
--
-- Prints one per line, sorted; exits 1 naming what is wrong (no such file,
-- mode or module).

local function die(...)
  io.stderr:write("rock-files: ", table.concat({ ... }), "\n")
  os.exit(1)
end

local path, mode, module = arg[1], arg[2], arg[3]
if not path or not mode then die("usage: rock-files.lua ROCKSPEC lua|objs MODULE|libs MODULE|cmodules|bin|source") end

-- A rockspec is Lua assignments: run in an empty environment of its own.
local f = io.open(path, "rb")
if not f then die("cannot read ", path) end
local text = f:read("*a")
f:close()
local spec = {}
local chunk, err = load(text, "@" .. path, "t", spec)
if not chunk then die(err) end
local ok, run_err = pcall(chunk)
if not ok then die(tostring(run_err)) end
local modules = spec.build and spec.build.modules or {}

local out = {}
if mode == "lua" then
  for _, v in pairs(modules) do
    if type(v) == "string" then out[#out + 1] = v end
  end
elseif mode == "cmodules" then
  for name, v in pairs(modules) do
    if type(v) == "table" then out[#out + 1] = name end
  end
elseif mode == "objs" or mode == "libs" then
  local m = modules[module or ""]
  if type(m) ~= "table" then die(path, " has no C module ", tostring(module)) end
  for _, v in ipairs(mode == "objs" and m.sources or m.libraries or {}) do
    out[#out + 1] = mode == "objs" and (v:gsub("%.c$", ".lo")) or "-l" .. v
  end
elseif mode == "source" then
  local src = spec.source or {}
  out[1] = tostring(src.url):match("[^/]+$") .. " " .. tostring(src.dir)
elseif mode == "bin" then
  for _, v in pairs(spec.build and spec.build.install and spec.build.install.bin or {}) do out[#out + 1] = v end
else
  die("unknown mode ", mode, " (lua, objs, libs, cmodules, bin, source)")
end
if mode ~= "libs" and mode ~= "source" then table.sort(out) end
io.write(table.concat(out, "\n"), #out > 0 and "\n" or "")
