-- Test helper: a throw-away nginx (Debian's nginx + libnginx-mod-http-lua +
-- lua-resty-core) for specs that must run Lua inside nginx. Plain Lua (5.1/LuaJIT
-- and 5.4); luasocket for the readiness check and for plain HTTP requests.
--
--   local nginx = require "spec.helpers.nginx"
--   local ok, why = nginx.available()         -- false, "missing ..." when not installed
--   local srv = nginx.start {
--     ports = 3,                                -- free 127.0.0.1 ports to reserve: srv.ports[1..3]
--                                               -- (or a list of ports the caller reserved)
--     http = function(ports, dir) return "server { listen 127.0.0.1:" .. ports[1] .. "; ... }" end,
--     main = nil,                               -- optional: more main-context lines (string)
--     ready = { 1, 2 },                         -- indexes of the ports to wait for (default: { 1 })
--     dir = nil,                                -- default: a fresh temp dir, removed by :stop()
--     prepare = function(dir, ports) end,       -- optional: runs before nginx starts (certificates...)
--     lua_path = function(dir) return dir .. "/?.lua" end,  -- optional: first on lua_package_path
--     lua_cpath = function(dir) return "/x/?.so" end,       -- optional: first on lua_package_cpath
--     workers = 1,                              -- worker_processes
--     env = { NAME = "value" },                 -- optional: the environment nginx starts with
--                                               -- (workers see only what `env` directives name)
--     conf = function(ports, dir) return text end,  -- optional: the whole nginx.conf instead
--   }
--   srv.dir, srv.ports, srv.pid, srv.conf
--   srv:get(path, port_index) -> status, body, headers   plain HTTP GET to 127.0.0.1 (luasocket)
--   srv:error_log() -> text                     the error log so far
--   srv:workers() -> { {pid=, exiting=}, ... }  the master's worker processes now (from /proc);
--                                               exiting: "worker process is shutting down"
--   srv:reload() -> new, old                    `nginx -s reload`; waits (bounded) until `workers`
--                                               new workers run and every old one is exiting or
--                                               gone; returns both lists of pids
--   srv:stop()                                  TERM (then KILL after 10 s), reaped; idempotent
--
--   local srv = nginx.start_driver {            -- an nginx whose handlers are a module's functions
--     driver = TEXT,                            -- the module's source, written as DIR/<name>.lua
--     name = "driver",                          -- its module name (default "driver")
--     locations = { ["/set"] = "set" },         -- path -> the function content_by_lua calls
--     env = { NAME = "value" },                 -- passed to the workers (an `env` line each)
--     workers = 1, reuseport = false,           -- as nginx.start; reuseport on the listen line
--   }
--
-- The server: one worker (so a counter or a connection pool is one per
-- server), `daemon off` as a child of the spec (stopped by its pid), its prefix,
-- pid, error log and temp files in `dir`, workers as root when the spec runs as
-- root (so they read the spec's files), the repository's src/ first on
-- lua_package_path, Debian's Lua 5.1 C modules (cjson) on lua_package_cpath.
-- nginx.start raises, with nginx's own output and error log, when it does not
-- come up within 10 s. Only 127.0.0.1 is ever used.

local socket = require "socket"
local http = require "socket.http"
local ltn12 = require "ltn12"

local M = {}

M.MODULES = {
  "/usr/lib/nginx/modules/ndk_http_module.so",
  "/usr/lib/nginx/modules/ngx_http_lua_module.so",
}

local WAIT_SECONDS = 10

local function quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end
M.quote = quote

local process = require "spec.helpers.process"
local run, read_file, write_file, capture = process.run, process.read_file, process.write_file, process.capture
M.read_file = read_file
M.write_file = write_file

--- The repository root: $STREAMCTL_ROOT, else two levels above this file.
local function repo_root()
  local env = os.getenv("STREAMCTL_ROOT")
  if env and env ~= "" then return env end
  local src = debug.getinfo(1, "S").source
  local dir = src:match("^@(.*)/spec/helpers/[^/]*$")
  if not dir or dir == "" then return "." end
  return dir
end
M.root = repo_root()

function M.nginx_binary()
  local env = os.getenv("STREAMCTL_NGINX")
  if env and env ~= "" then return env end
  return read_file("/usr/sbin/nginx") and "/usr/sbin/nginx" or "nginx"
end

--- true, or false and what is missing.
function M.available()
  for _, m in ipairs(M.MODULES) do
    if not read_file(m) then return false, "missing " .. m .. " (install nginx libnginx-mod-http-lua lua-resty-core lua-nginx-string)" end
  end
  if not read_file("/usr/share/lua/5.1/ngx/semaphore.lua") then
    return false, "missing lua-resty-core (ngx.semaphore)"
  end
  return true
end

--- `n` distinct free ports on 127.0.0.1 (the emulator helper's, one piece of code for both).
M.free_ports = require("spec.helpers.emulator").free_ports

--- A fresh temporary directory.
M.temp_dir = process.temp_dir

-- Lua 5.1 C module directories that hold cjson.so (Debian's multiarch ones first).
function M.lua51_cpath()
  local dirs = {}
  for d in capture("ls -d /usr/lib/*/lua/5.1 /usr/local/lib/lua/5.1 /usr/lib/lua/5.1 2>/dev/null"):gmatch("[^\n]+") do
    if read_file(d .. "/cjson.so") then dirs[#dirs + 1] = d .. "/?.so" end
  end
  dirs[#dirs + 1] = ""
  return table.concat(dirs, ";") .. ";"
end

local function conf_quoted(s)
  return '"' .. s:gsub('[\\"]', "\\%0") .. '"'
end
M.conf_quoted = conf_quoted

--- lua_package_path for nginx: `first` (optional), the repository's src/,
-- then the system's Lua 5.1 directories.
function M.lua_path(first)
  local root = M.root
  return (first and (first .. ";") or "") .. table.concat({
    root .. "/src/?.lua", root .. "/src/?/init.lua",
    "/usr/local/share/lua/5.1/?.lua", "/usr/local/share/lua/5.1/?/init.lua",
    "/usr/share/lua/5.1/?.lua", "/usr/share/lua/5.1/?/init.lua", "",
  }, ";") .. ";"
end

--- lua_package_cpath for nginx with streamctl's C modules: the LuaJIT build
-- of this tree (`make build-jit`), then Debian's Lua 5.1 modules. Raises
-- when that build is missing, rather than let nginx fail on a require.
function M.jit_cpath()
  local dir = M.root .. "/build/jit/lib/lua/5.1"
  assert(read_file(dir .. "/streamctl/core.so"), "no LuaJIT build of streamctl in " .. dir .. ": run make build-jit")
  return dir .. "/?.so;" .. M.lua51_cpath()
end

--- Makes a CA with the openssl command: `dir/name.pem` and `dir/name.key`.
function M.make_ca(dir, name)
  local q = quote
  assert(run("openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2"
    .. " -keyout " .. q(dir .. "/" .. name .. ".key") .. " -out " .. q(dir .. "/" .. name .. ".pem")
    .. " -subj " .. q("/CN=streamctl spec " .. name)
    .. " -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign"
    .. " >/dev/null 2>&1"), "openssl could not make a CA")
end

--- Makes a certificate signed by the CA `dir/ca.pem` (made by make_ca):
-- `dir/name.pem` and `dir/name.key`, for `san` (e.g. "DNS:127.0.0.1,IP:127.0.0.1")
-- and `usage` (extendedKeyUsage, default "serverAuth").
function M.make_cert(dir, name, ca, san, usage)
  local q = quote
  local p = dir .. "/" .. name
  M.write_file(p .. ".ext", "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
    .. "extendedKeyUsage=" .. (usage or "serverAuth") .. "\nsubjectAltName=" .. san .. "\n")
  assert(run("openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
    .. " -keyout " .. q(p .. ".key") .. " -out " .. q(p .. ".csr") .. " -subj /CN=" .. name
    .. " >/dev/null 2>&1"), "openssl req failed")
  assert(run("openssl x509 -req -in " .. q(p .. ".csr") .. " -CA " .. q(dir .. "/" .. ca .. ".pem")
    .. " -CAkey " .. q(dir .. "/" .. ca .. ".key") .. " -CAcreateserial -days 2 -out " .. q(p .. ".pem")
    .. " -extfile " .. q(p .. ".ext") .. " >/dev/null 2>&1"), "openssl x509 failed")
end

--- Is this process root (so nginx's workers must run as root to read the spec's files)?
function M.as_root()
  return capture("id -u"):match("^%s*0%s*$") ~= nil
end

--- The http-block lines that keep nginx's temporary files in `dir`.
function M.temp_paths(dir)
  local lines = {}
  for _, kind in ipairs { "client_body", "proxy", "fastcgi", "uwsgi", "scgi" } do
    lines[#lines + 1] = "    " .. kind .. "_temp_path " .. conf_quoted(dir .. "/tmp/" .. kind) .. ";"
  end
  return table.concat(lines, "\n")
end

--- The whole nginx.conf for `opts` (see nginx.start), with `ports` and `dir` filled in.
function M.conf(opts, ports, dir)
  local lines = {
    "# written by spec/helpers/nginx.lua",
    "load_module " .. M.MODULES[1] .. ";",
    "load_module " .. M.MODULES[2] .. ";",
    M.as_root() and "user root;" or "",
    "worker_processes " .. (opts.workers or 1) .. ";",
    "daemon off;",
    "master_process on;",
    "pid " .. conf_quoted(dir .. "/nginx.pid") .. ";",
    "error_log " .. conf_quoted(dir .. "/error.log") .. " info;",
    opts.main or "",
    "events { worker_connections 1024; }",
    "http {",
    "    access_log off;",
    M.temp_paths(dir),
    "    server_tokens off;",
    "    lua_package_path " .. conf_quoted(M.lua_path(opts.lua_path and opts.lua_path(dir))) .. ";",
    "    lua_package_cpath " .. conf_quoted((opts.lua_cpath and (opts.lua_cpath(dir) .. ";") or "")
      .. M.lua51_cpath()) .. ";",
    opts.http and opts.http(ports, dir) or "",
    "}",
  }
  return table.concat(lines, "\n") .. "\n"
end

local function listening(port)
  local tcp = socket.tcp()
  tcp:settimeout(0.5)
  local ok = tcp:connect("127.0.0.1", port)
  tcp:close()
  return ok ~= nil
end

-- Is `pid` a live process (not a zombie waiting to be reaped)?
local function alive(pid)
  local stat = read_file("/proc/" .. pid .. "/stat")
  if not stat then return false end
  return not stat:match("^%d+ %b() [ZX]")
end

local Server = {}
Server.__index = Server

function M.start(opts)
  opts = opts or {}
  local ok, why = M.available()
  if not ok then error(why, 2) end
  local own_dir = opts.dir == nil
  local dir = opts.dir or M.temp_dir()
  assert(run("mkdir -p " .. quote(dir .. "/tmp")), "cannot create " .. dir)
  local ports = type(opts.ports) == "table" and opts.ports or M.free_ports(opts.ports or 1)
  if opts.prepare then
    local prepared, err = pcall(opts.prepare, dir, ports)
    if not prepared then
      if own_dir then run("rm -rf " .. quote(dir)) end
      error(err, 2)
    end
  end
  local conf = opts.conf and opts.conf(ports, dir) or M.conf(opts, ports, dir)
  write_file(dir .. "/nginx.conf", conf)
  local out = dir .. "/nginx.out"
  local env = {}
  for k, v in pairs(opts.env or {}) do env[#env + 1] = k .. "=" .. quote(v) end
  table.sort(env)
  local cmd = (#env > 0 and ("env " .. table.concat(env, " ") .. " ") or "") .. quote(M.nginx_binary())
    .. " -p " .. quote(dir .. "/") .. " -c " .. quote(dir .. "/nginx.conf")
    .. " -e " .. quote(dir .. "/error.log") .. " >" .. quote(out) .. " 2>&1"
  -- The shell execs nginx, so $$ is nginx's (the master's) pid, and the
  -- pipe's close reaps it.
  local pipe = assert(io.popen("echo $$; exec " .. cmd, "r"))
  local pid = tonumber(pipe:read("*l"))
  assert(pid, "could not start nginx")
  local self = setmetatable({ dir = dir, ports = ports, pid = pid, pipe = pipe, conf = conf,
                              own_dir = own_dir, running = true }, Server)
  self.worker_count = opts.workers or tonumber(conf:match("\n%s*worker_processes%s+(%d+)%s*;")) or 1
  local wait_for = opts.ready or { 1 }
  local deadline = socket.gettime() + process.patience(WAIT_SECONDS)
  local up = false
  while socket.gettime() < deadline do
    if not alive(pid) then break end
    up = true
    for _, i in ipairs(wait_for) do
      if not listening(ports[i]) then up = false break end
    end
    if up then break end
    socket.sleep(0.05)
  end
  if not up then
    local log = (read_file(out) or "") .. (read_file(dir .. "/error.log") or "")
    self:stop()
    error("nginx did not come up within " .. WAIT_SECONDS .. " s (times process.patience):\n" .. log, 2)
  end
  return self
end

--- A plain HTTP GET of `path` on ports[port_index or 1]; returns status, body, headers.
function Server:get(path, port_index)
  local chunks = {}
  local ok, status, headers = http.request {
    url = "http://127.0.0.1:" .. self.ports[port_index or 1] .. path,
    sink = ltn12.sink.table(chunks),
    redirect = false,
  }
  if not ok then return nil, status end
  return status, table.concat(chunks), headers
end

function Server:error_log()
  return read_file(self.dir .. "/error.log") or ""
end

--- The master's worker processes now, read from /proc: a list of `{ pid =,
-- exiting = }` (exiting: the title says "worker process is shutting down",
-- as after a reload), lowest pid first.
function Server:workers()
  local list = {}
  for pid in capture("ls /proc 2>/dev/null"):gmatch("%d+") do
    local stat = read_file("/proc/" .. pid .. "/stat")
    local ppid = stat and stat:match("^%d+ %b() %a (%d+)")
    if ppid and tonumber(ppid) == self.pid and alive(pid) then
      local title = (read_file("/proc/" .. pid .. "/cmdline") or ""):gsub("%z", " ")
      if title:find("worker process", 1, true) then
        list[#list + 1] = { pid = tonumber(pid), exiting = title:find("shutting down", 1, true) ~= nil }
      end
    end
  end
  table.sort(list, function(a, b) return a.pid < b.pid end)
  return list
end

--- `nginx -s reload`: the master reads nginx.conf again, starts new workers
-- (shared dicts of the same name and size are kept) and tells the old ones
-- to finish what they are doing (requests in progress, running timers) and
-- exit. Waits, at most 10 s, until `worker_count` new workers run and every
-- old one is exiting or gone (so new connections reach only new workers);
-- returns the new pids and the old ones. Raises with the error log otherwise.
function Server:reload()
  local old, before = {}, {}
  for _, w in ipairs(self:workers()) do
    old[#old + 1], before[w.pid] = w.pid, true
  end
  local q = quote
  local out = self.dir .. "/nginx.out"
  if not run(q(M.nginx_binary()) .. " -p " .. q(self.dir .. "/") .. " -c " .. q(self.dir .. "/nginx.conf")
    .. " -e " .. q(self.dir .. "/error.log") .. " -s reload >>" .. q(out) .. " 2>&1") then
    error("nginx -s reload failed:\n" .. (read_file(out) or "") .. self:error_log(), 2)
  end
  local deadline = socket.gettime() + process.patience(WAIT_SECONDS)
  while socket.gettime() < deadline do
    local new, settled = {}, true
    for _, w in ipairs(self:workers()) do
      if before[w.pid] then
        if not w.exiting then settled = false end
      elseif not w.exiting then
        new[#new + 1] = w.pid
      end
    end
    if settled and #new >= self.worker_count then return new, old end
    socket.sleep(0.02)
  end
  error("nginx did not reload within " .. WAIT_SECONDS .. " s (times process.patience):\n" .. self:error_log(), 2)
end

function Server:stop()
  if not self.running then return end
  self.running = false
  run("kill -TERM " .. self.pid .. " 2>/dev/null")
  local deadline = socket.gettime() + process.patience(WAIT_SECONDS)
  while alive(self.pid) and socket.gettime() < deadline do socket.sleep(0.05) end
  if alive(self.pid) then run("kill -KILL " .. self.pid .. " 2>/dev/null") end
  self.pipe:close() -- reaps it: until then its pid cannot be reused
  if self.own_dir and not os.getenv("STREAMCTL_KEEP_NGINX_DIR") then
    run("rm -rf " .. quote(self.dir))
  end
end

--- An nginx whose locations call a driver module's functions (see the
-- module comment): the spec's own Lua on the path first, the Lua 5.1 C
-- modules (cjson) on the cpath, each name of `env` passed to the workers.
function M.start_driver(o)
  local name, env_lines = o.name or "driver", {}
  for k in pairs(o.env or {}) do env_lines[#env_lines + 1] = "env " .. k .. ";" end
  table.sort(env_lines)
  return M.start {
    workers = o.workers, env = o.env, main = #env_lines > 0 and table.concat(env_lines, "\n") or nil,
    prepare = function(dir) write_file(dir .. "/" .. name .. ".lua", o.driver) end,
    lua_path = function(dir) return dir .. "/?.lua" end,
    lua_cpath = function() return (M.jit_cpath():gsub(";.*$", "")) end,
    http = function(ports)
      local lines = { "server {", "  listen 127.0.0.1:" .. ports[1] .. (o.reuseport and " reuseport" or "") .. ";" }
      if o.http_lines then table.insert(lines, 1, o.http_lines) end
      local paths = {}
      for path in pairs(o.locations) do paths[#paths + 1] = path end
      table.sort(paths)
      for _, path in ipairs(paths) do
        lines[#lines + 1] = "  location = " .. path .. " { content_by_lua_block { require('" .. name .. "')."
          .. o.locations[path] .. "() } }"
      end
      lines[#lines + 1] = "}"
      return table.concat(lines, "\n")
    end,
  }
end

return M
