-- sanitizers: none (the emulator: its code runs in nginx, not in this process)
-- `streamctl-emulator start` when it cannot start: what is missing from the
-- system (nginx, its two modules, the Lua modules that run inside nginx) is
-- named with its Debian package in two lines, before anything starts; when
-- nginx itself fails, what it logged is shown whole.
--
-- A missing package is shown without uninstalling it: the launcher's test-only
-- STREAMCTL_EMULATOR_TEST_SYSROOT names a directory that stands in for / where
-- it looks for those, here a mirror of the real one (symbolic links) with
-- files taken out. The mirror with nothing taken out starts an emulator, so a
-- message below comes from what was taken out, not from the mirror.

local emu = require "spec.helpers.emulator"
local process = require "spec.helpers.process"

local run, capture, read_file = process.run, process.capture, process.read_file
local q = process.quote

-- The directories the launcher looks in, relative to /, that exist here.
local function system_dirs()
  local dirs = { "usr/lib/nginx/modules", "usr/local/share/lua/5.1", "usr/share/lua/5.1",
                 "usr/local/lib/lua/5.1", "usr/lib/lua/5.1" }
  for d in capture("ls -d /usr/lib/*/lua/5.1 2>/dev/null"):gmatch("[^\n]+") do
    dirs[#dirs + 1] = d:sub(2)
  end
  local present = {}
  for _, d in ipairs(dirs) do
    if run("test -d " .. q("/" .. d)) then present[#present + 1] = d end
  end
  return present
end

-- A fresh mirror of / for the launcher (links to the real files), less the
-- files named in `without` (paths relative to the mirror's root).
local function sysroot(without)
  local root = process.temp_dir()
  assert(run("mkdir -p " .. q(root .. "/usr/sbin") .. " && ln -s /usr/sbin/nginx " .. q(root .. "/usr/sbin/nginx")))
  for _, d in ipairs(system_dirs()) do
    local parent = (root .. "/" .. d):match("^(.*)/[^/]*$")
    assert(run("mkdir -p " .. q(parent) .. " && cp -rs " .. q("/" .. d) .. " " .. q(parent .. "/")),
      "cannot mirror /" .. d)
  end
  for _, f in ipairs(without or {}) do
    assert(run("test -L " .. q(root .. "/" .. f)), "the mirror has no " .. f .. " to take out")
    assert(os.remove(root .. "/" .. f))
  end
  return root
end

-- The files in the mirror that provide Lua module `name` (a C module by its
-- first component's .so), relative to its root.
local function files_of(name)
  local found = {}
  local rel = name:gsub("%.", "/")
  for _, d in ipairs(system_dirs()) do
    for _, f in ipairs({ d .. "/" .. rel .. ".lua", d .. "/" .. rel .. "/init.lua",
                         d .. "/" .. name:match("^[^.]+") .. ".so" }) do
      if read_file("/" .. f) then found[#found + 1] = f end
    end
  end
  return found
end

local function start_args(dir, ports)
  ports = ports or emu.free_ports(4)
  return "start --dir " .. q(dir) .. " --aliyun-port " .. ports[1] .. " --zego-port " .. ports[2]
    .. " --aliyun-tls-port " .. ports[3] .. " --zego-tls-port " .. ports[4]
end

local function fresh_dir()
  local dir = process.temp_dir()
  assert(run("rmdir " .. q(dir)))
  return dir
end

local function lines(text)
  local n = 0
  for _ in text:gmatch("[^\n]+") do n = n + 1 end
  return n
end

local ALL = "apt-get install nginx libnginx-mod-http-lua lua-resty-core lua-nginx-string lua-cjson"

describe("streamctl-emulator start, missing what it needs", function()
  local made = {}
  local function track(path) made[#made + 1] = path return path end
  teardown(function()
    for _, p in ipairs(made) do run("rm -rf " .. q(p)) end
  end)

  -- Starts with the mirror less `without`; the launcher must refuse, start
  -- nothing, and say it in two lines. Returns what it said.
  local function refused(without, env)
    env = env or {}
    env.STREAMCTL_EMULATOR_TEST_SYSROOT = env.STREAMCTL_EMULATOR_TEST_SYSROOT or track(sysroot(without))
    local dir = fresh_dir()
    local ok, out, code = emu.launcher(start_args(dir), env)
    if ok then -- it started after all: stop it before failing
      emu.launcher("stop --dir " .. q(dir))
      track(dir)
    end
    assert.is_false(ok, out)
    assert.equal(1, code, out)
    assert.equal(2, lines(out), out)
    assert.matches("^streamctl%-emulator: cannot start: missing ", out)
    assert.matches(ALL, out, 1, true)
    assert.is_false(run("test -e " .. q(dir)), "the launcher made " .. dir .. ":\n" .. out)
    return out
  end

  it("starts from the mirror with nothing taken out (the control for the cases below)", function()
    local root = track(sysroot())
    local dir = track(fresh_dir())
    local env = { STREAMCTL_EMULATOR_TEST_SYSROOT = root }
    local ok, out = emu.launcher(start_args(dir), env)
    local conf = read_file(dir .. "/nginx.conf") or ""
    local stopped, stop_out = emu.launcher("stop --dir " .. q(dir), env)
    assert.is_true(ok, out)
    assert.matches("streamctl emulator running", out, 1, true)
    assert.is_true(stopped, stop_out)
    -- and it ran from the mirror
    assert.matches("load_module " .. root .. "/usr/lib/nginx/modules/ngx_http_lua_module.so;", conf, 1, true)
    assert.matches(root .. "/usr/share/lua/5.1/?.lua", conf, 1, true)
  end)

  it("names lua-nginx-string's modules and the package, alone, when only that package is missing", function()
    local out = refused { "usr/share/lua/5.1/nginx/string.lua", "usr/share/lua/5.1/nginx/sha256.lua" }
    assert.matches("missing Lua modules nginx.sha256, nginx.string (package lua-nginx-string)\n", out, 1, true)
    assert.matches("install it: apt-get install lua-nginx-string ", out, 1, true)
  end)

  it("names resty.core and lua-resty-core", function()
    local out = refused { "usr/share/lua/5.1/resty/core.lua" }
    assert.matches("missing Lua module resty.core (package lua-resty-core)\n", out, 1, true)
  end)

  it("names each nginx module by its path and package", function()
    local out = refused { "usr/lib/nginx/modules/ngx_http_lua_module.so" }
    assert.matches("missing nginx module " .. "[^\n]*/usr/lib/nginx/modules/ngx_http_lua_module%.so "
      .. "%(package libnginx%-mod%-http%-lua%)\n", out)
    out = refused { "usr/lib/nginx/modules/ndk_http_module.so" }
    assert.matches("ndk_http_module.so (package libnginx-mod-http-ndk)", out, 1, true)
  end)

  it("names nginx itself: not installed, or STREAMCTL_NGINX naming nothing", function()
    local out = refused { "usr/sbin/nginx" }
    assert.matches("missing nginx %(no [^\n]*/usr/sbin/nginx; package nginx%)\n", out)
    out = refused(nil, { STREAMCTL_NGINX = "/nonexistent/sbin/nginx" })
    assert.matches("missing nginx (STREAMCTL_NGINX=/nonexistent/sbin/nginx is not an executable; package nginx)",
      out, 1, true)
  end)

  it("names everything missing at once, in one line, and every package in the install line", function()
    local out = refused { "usr/sbin/nginx", "usr/share/lua/5.1/nginx/string.lua", "usr/share/lua/5.1/resty/core.lua" }
    assert.matches("missing nginx %(no [^\n]*; package nginx%); Lua module resty%.core %(package lua%-resty%-core%); "
      .. "Lua module nginx%.string %(package lua%-nginx%-string%)\n", out)
    assert.matches("install them: apt-get install nginx lua-resty-core lua-nginx-string ", out, 1, true)
  end)

  -- Every module emulator/src/streamctl/emulator/*.lua requires from outside streamctl
  -- (LuaJIT's own aside), and resty.core, which lua-nginx-module loads: taken
  -- out, each is named. A require added there without the launcher's check
  -- fails here.
  it("names every module the emulator's Lua requires inside nginx", function()
    local BUILTIN = { bit = true, ffi = true, jit = true, ["table.new"] = true, ["table.clear"] = true,
                      ["string.buffer"] = true }
    local names, seen = { "resty.core" }, {}
    for file in capture("ls " .. q(emu.root .. "/emulator/src/streamctl/emulator") .. "/*.lua"):gmatch("[^\n]+") do
      for name in read_file(file):gmatch("require%s*%(?%s*[\"']([%w_%.]+)[\"']") do
        if not name:match("^streamctl%.") and not BUILTIN[name] and not seen[name] then
          seen[name] = true
          names[#names + 1] = name
        end
      end
    end
    assert.is_true(#names >= 4, "found only: " .. table.concat(names, ", "))
    for _, name in ipairs(names) do
      local files = files_of(name)
      assert.is_true(#files > 0, name .. " is not installed here")
      local out = refused(files)
      local shown = files[1]:match("%.so$") and name:match("^[^.]+") or name
      assert.matches("module[s]? [^\n]*" .. shown:gsub("%p", "%%%0") .. "[,% ]", out)
    end
  end)
end)

describe("streamctl-emulator start, when nginx fails", function()
  it("shows the whole error a Lua module nginx cannot load raised, its first line too", function()
    -- the emulator's Lua, one require pointed at a module that does not exist
    local lua_dir = process.temp_dir()
    assert(run("cp -r " .. q(emu.root .. "/emulator/src/streamctl") .. " " .. q(lua_dir .. "/")))
    local hmac = lua_dir .. "/streamctl/emulator/hmac.lua"
    local text, n = read_file(hmac):gsub('require "nginx.string"', 'require "nginx.no_such_module_for_spec"')
    assert.equal(1, n, "hmac.lua no longer requires nginx.string")
    process.write_file(hmac, text)
    local dir = process.temp_dir()
    local ok, out, code = emu.launcher(start_args(dir), { STREAMCTL_EMULATOR_LUA_DIR = lua_dir })
    run("rm -rf " .. q(lua_dir))
    if ok then emu.launcher("stop --dir " .. q(dir)) end
    assert.is_false(ok, out)
    assert.equal(1, code)
    assert.matches("nginx failed to start; " .. dir .. "/error.log:", out, 1, true)
    assert.matches("init_by_lua error: [^\n]*hmac%.lua:%d+: module 'nginx%.no_such_module_for_spec' not found", out)
    -- every line of the entry in error.log, as far as nginx wrote it (it cuts
    -- an entry at 2 KB), the "no file" lines and the traceback among them
    local entry = read_file(dir .. "/error.log"):match("[^\n]*%[error%][^\n]*init_by_lua error.-\n%d%d%d%d/")
      or read_file(dir .. "/error.log"):match("[^\n]*%[error%][^\n]*init_by_lua error.*$")
    assert.truthy(entry, read_file(dir .. "/error.log"))
    local shown = 0
    for line in entry:gmatch("[^\n]+") do
      if not line:match("^%d%d%d%d/$") then
        assert.matches("  " .. line, out, 1, true)
        shown = shown + 1
      end
    end
    assert.is_true(shown > 20, entry)
    assert.matches("no file '" .. lua_dir .. "/nginx/no_such_module_for_spec.lua'", out, 1, true)
    -- once: nginx's own copy on stderr (cut at 2 KB) is the same entry
    local _, count = out:gsub("init_by_lua error", "")
    assert.equal(1, count, out)
    -- and only what went wrong: no notice-level lines
    assert.not_matches("[notice]", out, 1, true)
    run("rm -rf " .. q(dir))
  end)

  it("shows nginx's reason when a port is taken", function()
    local ports = emu.free_ports(4)
    local taken = assert(require("socket").bind("127.0.0.1", ports[3]))
    local dir = process.temp_dir()
    local ok, out = emu.launcher(start_args(dir, ports))
    taken:close()
    if ok then emu.launcher("stop --dir " .. q(dir)) end
    assert.is_false(ok, out)
    assert.matches("bind() to 127.0.0.1:" .. ports[3] .. " failed (98: Address", out, 1, true)
    local status = emu.launcher("status --dir " .. q(dir))
    assert.is_false(status, "an emulator runs in " .. dir)
    run("rm -rf " .. q(dir))
  end)
end)
