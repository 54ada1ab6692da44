-- sanitizers: none (what it tests runs in nginx, not in this process)
-- interpreters: lua5.4 (what it tests runs in nginx, under LuaJIT, whatever interpreter runs this file)
-- A shell set up for Lua 5.4 and nginx (issue 68): nginx's master reads
-- LUA_PATH and LUA_CPATH from the shell that starts it and puts them where
-- nginx.conf's `;;` says, so LuaJIT loaded Lua 5.4's cjson ("undefined
-- symbol: lua_newuserdatauv"). The example's handlers refuse to start on a
-- Lua 5.4 tree, naming the variable; a clean environment starts.
-- examples/openresty/run.sh (make openresty-demo) starts its nginx without
-- the shell's environment: it says so (a note naming the variable) and starts.

local nginx = require "spec.helpers.nginx"
local emu = require "spec.helpers.emulator"
local process = require "spec.helpers.process"

local q, run, read_file = process.quote, process.run, process.read_file
local ROOT = nginx.root
local TREE54 = ROOT .. "/build/5.4"

local available, why_not = nginx.available()
assert(available, why_not) -- `make test` installs nginx; a spec that cannot run fails
-- Debian's Lua 5.4 cjson (lua-cjson), the module the issue's nginx loaded
local CJSON54 = process.capture("ls -d /usr/lib/*/lua/5.4/cjson.so 2>/dev/null"):match("^([^\n]+)")
assert(CJSON54, "no Lua 5.4 cjson in /usr/lib/*/lua/5.4: apt-get install lua-cjson")
local CJSON54_DIR = CJSON54:match("^(.*)/cjson%.so$")

-- The example's nginx.conf as a Debian install runs it (no lua_package_*path:
-- the environment's paths, `;;`, come first), with this checkout's streamctl
-- after them; a throw-away nginx (daemon off, its files in `dir`).
local function example_conf(port, dir)
  local text = assert(read_file(ROOT .. "/examples/openresty/nginx.conf"))
  for _, r in ipairs {
    { "worker_processes auto;", (nginx.as_root() and "user root;\n" or "") .. "daemon off;\nworker_processes 1;" },
    { "error_log logs/error.log info;", "error_log " .. nginx.conf_quoted(dir .. "/error.log") .. " info;" },
    { "pid logs/nginx.pid;", "pid " .. nginx.conf_quoted(dir .. "/nginx.pid") .. ";" },
    { "access_log logs/access.log;", "access_log off;\n" .. nginx.temp_paths(dir) },
    { "http {", "http {\n    lua_package_path " .. nginx.conf_quoted(";;" .. nginx.lua_path()) .. ";\n"
      .. "    lua_package_cpath " .. nginx.conf_quoted(";;" .. nginx.jit_cpath()) .. ";" },
    { "resolver 127.0.0.53 ipv6=off;", "resolver 127.0.0.1 ipv6=off;" },
    { "listen 8080;", "listen 127.0.0.1:" .. port .. ";" },
  } do
    local i, j = text:find(r[1], 1, true)
    assert(i and not text:find(r[1], j + 1, true), "examples/openresty/nginx.conf: not once: " .. r[1])
    text = text:sub(1, i - 1) .. r[2] .. text:sub(j + 1)
  end
  return text
end

-- { what, LUA_CPATH, LUA_PATH, expected: "starts" or what the refusal says }; a shell set up for
-- LuaJIT (as README's LuaJIT block does) names its trees (LuaJIT's defaults begin with ./?.so, and
-- a checkout's root holds luarocks' Lua 5.4 build in ./streamctl)
local JIT_CPATH, JIT_PATH = nginx.jit_cpath(), nginx.lua_path()
local ROWS = {
  { "Lua 5.4's cjson on LUA_CPATH (the issue's)", CJSON54_DIR .. "/?.so;;", JIT_PATH,
    'require "cjson" would load ' .. CJSON54 .. ", Lua 5.4's, into LuaJIT: LUA_CPATH in nginx's environment ("
      .. CJSON54_DIR .. "/?.so;;) names a Lua 5.4 tree" },
  { "streamctl's Lua 5.4 build on LUA_CPATH (make's)", TREE54 .. "/lib/lua/5.4/?.so;;", JIT_PATH,
    'require "streamctl.core" would load ' .. TREE54 .. "/lib/lua/5.4/streamctl/core.so, Lua 5.4's, into LuaJIT: "
      .. "LUA_CPATH in nginx's environment (" .. TREE54 .. "/lib/lua/5.4/?.so;;) names a Lua 5.4 tree" },
  { "streamctl's Lua 5.4 tree on LUA_PATH", JIT_CPATH, TREE54 .. "/share/lua/5.4/?/init.lua;;",
    'require "streamctl" would load ' .. TREE54 .. "/share/lua/5.4/streamctl/init.lua, Lua 5.4's, into LuaJIT: "
      .. "LUA_PATH in nginx's environment (" .. TREE54 .. "/share/lua/5.4/?/init.lua;;) names a Lua 5.4 tree" },
  { "a shell set up for LuaJIT", JIT_CPATH, JIT_PATH, "starts" },
}
local WHAT_TO_DO = ". Start nginx without it (env -u LUA_PATH -u LUA_CPATH nginx ...), and give Lua 5.4 its paths "
  .. "in LUA_PATH_5_4 and LUA_CPATH_5_4"

describe("the OpenResty example's handlers, started from a shell with Lua 5.4's paths", function()
  for _, row in ipairs(ROWS) do
    it(row[1] .. ": " .. (row[4] == "starts" and "starts" or "refused, naming the variable"), function()
      local dir = process.temp_dir()
      assert(run("mkdir -p " .. q(dir .. "/logs")))
      local ok, srv = pcall(nginx.start, {
        dir = dir, conf = function(ports) return example_conf(ports[1], dir) end,
        env = { LUA_CPATH = row[2], LUA_PATH = row[3], STREAMCTL_EDGE_TOKEN = "t" },
      })
      local log = ok and srv:error_log() or tostring(srv)
      if ok then
        local status = srv:get("/metrics")
        srv:stop()
        run("rm -rf " .. q(dir))
        assert.equal("starts", row[4], log)
        assert.equal(200, status, log)
        assert.not_matches("Lua 5.4", log, 1, true)
      else
        run("rm -rf " .. q(dir))
        assert.matches("init_by_lua error: streamctl.edge.server: " .. row[4] .. WHAT_TO_DO, log, 1, true)
        assert.not_matches("undefined symbol", log, 1, true)
      end
    end)
  end
end)

describe("examples/openresty/run.sh from a shell with Lua 5.4's paths", function()
  local SCRIPT = ROOT .. "/examples/openresty/run.sh"
  -- run.sh with `env` (words for env(1)) and `args`: its exit status and what it printed
  local function script(env, args)
    local out = process.capture("env -u LD_PRELOAD -u LUA_PATH -u LUA_CPATH STREAMCTL_ROOT=" .. q(ROOT) .. " " .. env
      .. " timeout 60 " .. q(SCRIPT) .. " " .. args .. " 2>&1; echo \"rc=$?\"")
    local text, rc = out:match("^(.*)rc=(%d+)\n$")
    return tonumber(rc), text
  end
  local function note(var, value)
    return "examples/openresty/run.sh: note: " .. var .. " names a Lua 5.4 tree (" .. value .. "): this demo's "
      .. "nginx starts without it, but an nginx started from this shell would load Lua 5.4's modules into LuaJIT "
      .. "(undefined symbol: lua_newuserdatauv): give Lua 5.4 its paths in " .. var .. "_5_4 instead "
      .. "(docs/openresty.md)\n"
  end

  it("says so, naming each variable, and starts (its nginx runs without the shell's environment)", function()
    local dir, port = process.temp_dir(), emu.free_ports(1)[1]
    local cpath, path = TREE54 .. "/lib/lua/5.4/?.so;;", "/usr/local/share/lua5.4/?.lua;;"
    local rc, out = script("LUA_CPATH=" .. q(cpath) .. " LUA_PATH=" .. q(path),
      "start --dir " .. q(dir) .. " --port " .. port)
    local status = process.capture("curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:" .. port .. "/metrics")
    script("", "stop --dir " .. q(dir))
    run("rm -rf " .. q(dir))
    assert.equal(0, rc, out)
    assert.equal(note("LUA_CPATH", cpath) .. note("LUA_PATH", path), out:sub(1, #note("LUA_CPATH", cpath)
      + #note("LUA_PATH", path)))
    assert.equal("200", status, out)
  end)

  it("says nothing of it in a clean environment", function()
    local rc, out = script("STREAMCTL_NGINX=/nonexistent/nginx", "start --dir " .. q(process.temp_dir()))
    assert.equal(1, rc)
    assert.equal("examples/openresty/run.sh: no nginx at /nonexistent/nginx: ", out:sub(1, 59))
  end)
end)
