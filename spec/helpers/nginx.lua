-- Test helper: a throw-away nginx (Debian's nginx + libnginx-mod-http-lua +
-- lua-resty-core) for specs that must run Lua inside nginx. Plain Lua (5.1/LuaJIT
-- and 5.4); luasocket for the readiness check and for plain HTTP requests.
--
--   local nginx = require "spec.helpers.nginx"
--   local ok, why = nginx.available()         -- false, "missing ..." when not installed
--   local srv = nginx.start {
--     ports = 3,                                -- free 127.0.0.1 ports to reserve: srv.ports[1..3]
--     http = function(ports, dir) return "server { listen 127.0.0.1:" .. ports[1] .. "; ... }" end,
--     main = nil,                               -- optional: more main-context lines (string)
--     ready = { 1, 2 },                         -- indexes of the ports to wait for (default: { 1 })
--     dir = nil,                                -- default: a fresh temp dir, removed by :stop()
--     prepare = function(dir, ports) end,       -- optional: runs before nginx starts (certificates...)
--     lua_path = function(dir) return dir .. "/?.lua" end,  -- optional: first on lua_package_path
--     lua_cpath = function(dir) return "/x/?.so" end,       -- optional: first on lua_package_cpath
--   }
--   srv.dir, srv.ports, srv.pid, srv.conf
--   srv:get(path, port_index) -> status, body, headers   plain HTTP GET to 127.0.0.1 (luasocket)
--   srv:error_log() -> text                     the error log so far
--   srv:stop()                                  TERM (then KILL after 10 s), reaped; idempotent
--
-- The server: one worker (so a counter or a connection pool is one per
-- server), `daemon off` as a child of the spec (stopped by its pid), its prefix,
-- pid, error log and temp files in `dir`, workers as root when the spec runs as
-- root (so they read the spec's files), the repository's lua/ first on
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

-- os.execute: 5.1/LuaJIT return the raw wait status, 5.2+ ok, "exit", code.
local function run(cmd)
  local a = os.execute(cmd)
  if type(a) == "number" then return a == 0 end
  return a == true
end

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end
M.read_file = read_file

local function write_file(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end
M.write_file = write_file

local function capture(cmd)
  local p = assert(io.popen(cmd, "r"))
  local out = p:read("*a") or ""
  p:close()
  return out
end

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
    if not read_file(m) then return false, "missing " .. m .. " (install nginx libnginx-mod-http-lua lua-resty-core)" end
  end
  if not read_file("/usr/share/lua/5.1/ngx/semaphore.lua") then
    return false, "missing lua-resty-core (ngx.semaphore)"
  end
  return true
end

--- `n` distinct free ports on 127.0.0.1 (the emulator helper's, one piece of code for both).
M.free_ports = require("spec.helpers.emulator").free_ports

--- A fresh temporary directory.
function M.temp_dir()
  local name = os.tmpname()
  os.remove(name)
  assert(run("mkdir -p " .. quote(name)), "cannot create " .. name)
  return name
end

-- Lua 5.1 C module directories that hold cjson.so (Debian's multiarch ones first).
local function lua51_cpath()
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

--- The whole nginx.conf for `opts` (see nginx.start), with `ports` and `dir` filled in.
function M.conf(opts, ports, dir)
  local root = M.root
  local lua_path = table.concat({
    root .. "/lua/?.lua", root .. "/lua/?/init.lua",
    "/usr/local/share/lua/5.1/?.lua", "/usr/local/share/lua/5.1/?/init.lua",
    "/usr/share/lua/5.1/?.lua", "/usr/share/lua/5.1/?/init.lua", "",
  }, ";") .. ";"
  if opts.lua_path then lua_path = opts.lua_path(dir) .. ";" .. lua_path end
  local as_root = capture("id -u"):match("^%s*0%s*$") ~= nil
  local lines = {
    "# written by spec/helpers/nginx.lua",
    "load_module " .. M.MODULES[1] .. ";",
    "load_module " .. M.MODULES[2] .. ";",
    as_root and "user root;" or "",
    "worker_processes 1;",
    "daemon off;",
    "master_process on;",
    "pid " .. conf_quoted(dir .. "/nginx.pid") .. ";",
    "error_log " .. conf_quoted(dir .. "/error.log") .. " info;",
    opts.main or "",
    "events { worker_connections 1024; }",
    "http {",
    "    access_log off;",
    "    client_body_temp_path " .. conf_quoted(dir .. "/tmp/client_body") .. ";",
    "    proxy_temp_path " .. conf_quoted(dir .. "/tmp/proxy") .. ";",
    "    fastcgi_temp_path " .. conf_quoted(dir .. "/tmp/fastcgi") .. ";",
    "    uwsgi_temp_path " .. conf_quoted(dir .. "/tmp/uwsgi") .. ";",
    "    scgi_temp_path " .. conf_quoted(dir .. "/tmp/scgi") .. ";",
    "    server_tokens off;",
    "    lua_package_path " .. conf_quoted(lua_path) .. ";",
    "    lua_package_cpath " .. conf_quoted((opts.lua_cpath and (opts.lua_cpath(dir) .. ";") or "")
      .. lua51_cpath()) .. ";",
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
  local ports = M.free_ports(opts.ports or 1)
  if opts.prepare then
    local prepared, err = pcall(opts.prepare, dir, ports)
    if not prepared then
      if own_dir then run("rm -rf " .. quote(dir)) end
      error(err, 2)
    end
  end
  local conf = M.conf(opts, ports, dir)
  write_file(dir .. "/nginx.conf", conf)
  local out = dir .. "/nginx.out"
  local cmd = quote(M.nginx_binary()) .. " -p " .. quote(dir .. "/") .. " -c " .. quote(dir .. "/nginx.conf")
    .. " -e " .. quote(dir .. "/error.log") .. " >" .. quote(out) .. " 2>&1"
  -- The shell execs nginx, so $$ is nginx's (the master's) pid, and the
  -- pipe's close reaps it.
  local pipe = assert(io.popen("echo $$; exec " .. cmd, "r"))
  local pid = tonumber(pipe:read("*l"))
  assert(pid, "could not start nginx")
  local self = setmetatable({ dir = dir, ports = ports, pid = pid, pipe = pipe, conf = conf,
                              own_dir = own_dir, running = true }, Server)
  local wait_for = opts.ready or { 1 }
  local deadline = socket.gettime() + WAIT_SECONDS
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
    error("nginx did not come up within " .. WAIT_SECONDS .. " s:\n" .. log, 2)
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

function Server:stop()
  if not self.running then return end
  self.running = false
  run("kill -TERM " .. self.pid .. " 2>/dev/null")
  local deadline = socket.gettime() + WAIT_SECONDS
  while alive(self.pid) and socket.gettime() < deadline do socket.sleep(0.05) end
  if alive(self.pid) then run("kill -KILL " .. self.pid .. " 2>/dev/null") end
  self.pipe:close() -- reaps it: until then its pid cannot be reused
  if self.own_dir and not os.getenv("STREAMCTL_KEEP_NGINX_DIR") then
    run("rm -rf " .. quote(self.dir))
  end
end

return M
