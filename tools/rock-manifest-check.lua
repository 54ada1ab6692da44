-- Each installed streamctl rock holds what its rockspec lists and nothing
-- else: its rock_manifest (what luarocks installed) against the rockspec's
-- modules (Lua and C) and programs. A rock that ships another's modules
-- breaks the split (luarocks keeps conflict copies, and the core then holds
-- the emulator); make check-install runs this in its pristine root after the
-- luarocks blocks, for every tree they install into.
--
--   lua5.4 tools/rock-manifest-check.lua TREE LUA_VERSION [TREE LUA_VERSION ...]
--
-- Prints one line per rock checked; exits 1 naming every file that should
-- not be there or is missing, and when no streamctl rock is found at all.

local function die(...)
  io.stderr:write("rock-manifest-check: ", table.concat({ ... }), "\n")
  os.exit(1)
end

local function load_table(path, name)
  local f = io.open(path, "rb")
  if not f then return nil end
  local env = {}
  local chunk, err = load(f:read("*a"), "@" .. path, "t", env)
  f:close()
  if not chunk then die(err) end
  chunk()
  return name and env[name] or env
end

-- "streamctl/cli/init.lua" -> "streamctl.cli", "streamctl/core.so" -> "streamctl.core"
local function module_of(path)
  local m = path:gsub("%.lua$", ""):gsub("%.so$", ""):gsub("/init$", ""):gsub("/", ".")
  return m
end

-- The files under a rock_manifest subtree, as paths.
local function walk(tree, prefix, out)
  for k, v in pairs(tree or {}) do
    local p = prefix and (prefix .. "/" .. k) or k
    if type(v) == "table" then walk(v, p, out) else out[#out + 1] = p end
  end
  return out
end

if #arg < 2 or #arg % 2 ~= 0 then die("usage: rock-manifest-check.lua TREE LUA_VERSION [TREE LUA_VERSION ...]") end
local bad, checked = {}, 0
for i = 1, #arg, 2 do
  local tree, lv = arg[i], arg[i + 1]
  local rocks = tree .. "/lib/luarocks/rocks-" .. lv
  local p = io.popen("ls " .. ("'" .. rocks .. "'") .. " 2>/dev/null")
  for name in p:lines() do
    if name:match("^streamctl") then
      local vp = io.popen("ls '" .. rocks .. "/" .. name .. "'")
      for version in vp:lines() do
        local dir = rocks .. "/" .. name .. "/" .. version
        local manifest = load_table(dir .. "/rock_manifest", "rock_manifest") or die("no rock_manifest in ", dir)
        local spec = load_table(dir .. "/" .. name .. "-" .. version .. ".rockspec") or die("no rockspec in ", dir)
        local want, have = {}, {}
        for module in pairs(spec.build.modules or {}) do want[module] = true end
        for prog in pairs(spec.build.install and spec.build.install.bin or {}) do want["bin/" .. prog] = true end
        for _, f in ipairs(walk(manifest.lua, nil, {})) do have[module_of(f)] = f end
        for _, f in ipairs(walk(manifest.lib, nil, {})) do have[module_of(f)] = f end
        for _, f in ipairs(walk(manifest.bin, nil, {})) do have["bin/" .. f] = f end
        local count, before = 0, #bad
        for key, file in pairs(have) do
          count = count + 1
          if not want[key] then bad[#bad + 1] = ("%s %s (%s): installs %s, which its rockspec does not list")
            :format(name, version, tree, file) end
        end
        for key in pairs(want) do
          if not have[key] then bad[#bad + 1] = ("%s %s (%s): lacks %s, which its rockspec lists")
            :format(name, version, tree, key) end
        end
        checked = checked + 1
        print(("%-20s %-8s %-28s %3d files, %s"):format(name, version, tree, count,
          #bad == before and "as its rockspec lists" or (#bad - before) .. " out of place (below)"))
      end
      vp:close()
    end
  end
  p:close()
end
if checked == 0 then die("no streamctl rock installed in the trees given") end
if #bad > 0 then
  table.sort(bad)
  die(#bad, " files out of place:\n  ", table.concat(bad, "\n  "))
end
print(("rock-manifest-check: %d rocks, each holding what its rockspec lists and nothing else"):format(checked))
