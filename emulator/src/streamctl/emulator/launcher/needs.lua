--- What the emulator needs from the system (nginx, its modules, the Lua
-- modules that run inside it, openssl), where each is found, and what to
-- install when one is missing.
-- @module streamctl.emulator.launcher.needs

local sys = require "streamctl.emulator.launcher.sys"
local certs = require "streamctl.emulator.launcher.certs"

local SYSROOT = sys.SYSROOT
local file_exists, capture, trim, shell_quote, run, absolute = sys.file_exists, sys.capture, sys.trim,
  sys.shell_quote, sys.run, sys.absolute

local M = {}

local NGINX_MODULES = {
  SYSROOT .. "/usr/lib/nginx/modules/ndk_http_module.so",
  SYSROOT .. "/usr/lib/nginx/modules/ngx_http_lua_module.so",
}

-- What the emulator needs from the system, and the Debian package each comes
-- from: nginx, the modules nginx.conf loads, and the Lua modules that run
-- inside nginx (resty.core, which lua-nginx-module loads itself, and what
-- emulator/src/streamctl/emulator/*.lua require beside LuaJIT's own bit and ffi;
-- spec/emulator/10-emulator-start_spec.lua checks each of those is here).
local NEEDS = {
  { kind = "program", name = "nginx", package = "nginx" },
  { kind = "nginx module", name = NGINX_MODULES[1], package = "libnginx-mod-http-ndk" },
  { kind = "nginx module", name = NGINX_MODULES[2], package = "libnginx-mod-http-lua" },
  { kind = "Lua module", name = "resty.core", package = "lua-resty-core" },
  { kind = "Lua module", name = "resty.lrucache", package = "lua-resty-lrucache" }, -- resty.core's
  { kind = "Lua module", name = "nginx.sha256", package = "lua-nginx-string" },
  { kind = "Lua module", name = "nginx.string", package = "lua-nginx-string" },
  { kind = "Lua 5.1 C module", name = "cjson", package = "lua-cjson" },
  { kind = "program", name = "openssl", package = "openssl" }, -- only to make the certificates
}
local ALL_PACKAGES = "nginx libnginx-mod-http-lua lua-resty-core lua-nginx-string lua-cjson"

-- The system's Lua 5.1 directories nginx.conf's lua_package_path names after
-- the emulator's own.
local function lua51_share_dirs()
  return { SYSROOT .. "/usr/local/share/lua/5.1", SYSROOT .. "/usr/share/lua/5.1" }
end

-- The directory on package.path (a template ending in ?.lua) holding `rel`
-- (a file under it), or nil.
local function dir_on_path(rel)
  for template in package.path:gmatch("[^;]+") do
    if template:match("%?%.lua$") then
      local candidate = template:gsub("%?%.lua$", rel)
      if file_exists(candidate) then
        local prefix = template:match("^(.-)%?") or ""
        prefix = prefix:gsub("/$", "")
        if prefix == "" or prefix == "." then
          prefix = absolute(".")
        end
        return absolute(prefix)
      end
    end
  end
  return nil
end

-- The directories nginx.conf's lua_package_path names first: the one
-- holding the emulator's modules ($STREAMCTL_EMULATOR_LUA_DIR, else found on
-- package.path, where the launcher's own modules were found, else the
-- system's 5.1 directories of the Debian package), and the one holding streamctl's own
-- (streamctl/version.lua), when that is another (a checkout: emulator/src
-- and src). Nil when the emulator's cannot be found.
local function find_lua_dirs()
  local dir
  local env = os.getenv("STREAMCTL_EMULATOR_LUA_DIR")
  if env and env ~= "" then
    dir = absolute(env)
  end
  dir = dir or dir_on_path("streamctl/emulator/server.lua")
  -- installed for nginx's LuaJIT only (the Debian package): the system's 5.1 directories
  for _, d in ipairs(lua51_share_dirs()) do
    if not dir and file_exists(d .. "/streamctl/emulator/server.lua") then
      dir = d
    end
  end
  if not dir then return nil end
  local dirs = { dir }
  local core = dir_on_path("streamctl/version.lua")
  if core and core ~= dir and not file_exists(dir .. "/streamctl/version.lua") then dirs[2] = core end
  return dirs
end

-- The Lua 5.1 C module directories that hold cjson.so (Debian's multiarch ones first).
local function lua51_lib_dirs()
  local dirs = {}
  local seen = {}
  local function add(d)
    if not seen[d] and file_exists(d .. "/cjson.so") then
      seen[d] = true
      dirs[#dirs + 1] = d
    end
  end
  add(SYSROOT .. "/usr/lib/x86_64-linux-gnu/lua/5.1")
  for d in capture("ls -d " .. shell_quote(SYSROOT .. "/usr/lib") .. "/*/lua/5.1 2>/dev/null"):gmatch("[^\n]+") do
    add(d)
  end
  add(SYSROOT .. "/usr/local/lib/lua/5.1")
  add(SYSROOT .. "/usr/lib/lua/5.1")
  return dirs
end

local function lua51_cpath()
  local dirs = {}
  for i, d in ipairs(lua51_lib_dirs()) do
    dirs[i] = d .. "/?.so"
  end
  dirs[#dirs + 1] = ""
  return table.concat(dirs, ";") .. ";"
end

-- The nginx to run: $STREAMCTL_NGINX (a path, or a name looked up on PATH),
-- else /usr/sbin/nginx, else the one on PATH; and whether it is there.
local function find_nginx()
  local env = os.getenv("STREAMCTL_NGINX")
  if env and env ~= "" then
    if not env:find("/", 1, true) then
      return env, trim(capture("command -v " .. shell_quote(env) .. " 2>/dev/null")) ~= ""
    end
    return env, run("test -x " .. shell_quote(env))
  end
  if file_exists(SYSROOT .. "/usr/sbin/nginx") then
    return SYSROOT .. "/usr/sbin/nginx", true
  end
  if SYSROOT == "" then
    local on_path = trim(capture("command -v nginx 2>/dev/null"))
    if on_path ~= "" then
      return on_path, true
    end
  end
  return "nginx", false
end

local function nginx_binary()
  return (find_nginx())
end

-- Is each of NEEDS there? Returns the list of those missing (kind, label,
-- package, and a note for nginx), empty when nothing is.
local function missing_needs(dir)
  local missing = {}
  local function lua_module(name)
    local rel = name:gsub("%.", "/")
    for _, d in ipairs(lua51_share_dirs()) do
      if file_exists(d .. "/" .. rel .. ".lua") or file_exists(d .. "/" .. rel .. "/init.lua") then
        return true
      end
    end
    return false
  end
  for _, need in ipairs(NEEDS) do
    local present, note
    if need.kind == "program" and need.name == "nginx" then
      local path
      path, present = find_nginx()
      local env = os.getenv("STREAMCTL_NGINX")
      if env and env ~= "" then
        note = "STREAMCTL_NGINX=" .. path .. " is not an executable" .. (path:find("/", 1, true) and "" or " on PATH")
      else
        note = "no " .. SYSROOT .. "/usr/sbin/nginx" .. (SYSROOT == "" and ", none on PATH" or "")
      end
    elseif need.kind == "program" then
      present = certs.current(dir) or trim(capture("command -v " .. need.name .. " 2>/dev/null")) ~= ""
    elseif need.kind == "nginx module" then
      present = file_exists(need.name)
    elseif need.kind == "Lua module" then
      present = lua_module(need.name)
    else -- the C module: nginx.conf's lua_package_cpath names only directories that hold it
      present = #lua51_lib_dirs() > 0
    end
    if not present then
      missing[#missing + 1] = { kind = need.kind, label = need.name, note = note, package = need.package }
    end
  end
  return missing
end

-- Two lines: what is missing, grouped by package, and the apt-get line.
local function missing_message(missing)
  local groups, order, packages = {}, {}, {}
  for _, m in ipairs(missing) do
    local key = m.package .. "\0" .. m.kind
    if not groups[key] then
      groups[key] = { kind = m.kind, package = m.package, labels = {}, notes = {} }
      order[#order + 1] = key
      if not packages[m.package] then
        packages[m.package] = true
        packages[#packages + 1] = m.package
      end
    end
    table.insert(groups[key].labels, m.label)
    if m.note then
      table.insert(groups[key].notes, m.note)
    end
  end
  local parts = {}
  for i, key in ipairs(order) do
    local g = groups[key]
    local kind = g.kind == "program" and "" or (g.kind .. (#g.labels > 1 and "s" or "") .. " ")
    g.notes[#g.notes + 1] = "package " .. g.package
    parts[i] = kind .. table.concat(g.labels, ", ") .. " (" .. table.concat(g.notes, "; ") .. ")"
  end
  return "cannot start: missing " .. table.concat(parts, "; ") .. "\n"
    .. "  install " .. (#packages > 1 and "them" or "it") .. ": apt-get install " .. table.concat(packages, " ")
    .. "   (all the emulator needs: apt-get install " .. ALL_PACKAGES .. ")"
end

M.NGINX_MODULES, M.lua51_share_dirs, M.lua51_cpath = NGINX_MODULES, lua51_share_dirs, lua51_cpath
M.find_lua_dirs, M.nginx_binary, M.missing, M.missing_message = find_lua_dirs, nginx_binary, missing_needs,
  missing_message

return M
