--- streamctl-emulator's commands: start, stop and status of the local
-- emulator of Alibaba Cloud ApsaraVideo Live and ZEGOCLOUD Server API v2
-- (nginx + lua-nginx-module, the logic in streamctl.emulator.server). Runs
-- under Lua 5.1/LuaJIT and 5.4; emulator/bin/streamctl-emulator runs `main`.
--
-- The server runs from a prefix directory of its own (DIR): nginx.conf, pid,
-- error.log, temp files, the generated CA (ca.pem) and server certificate all
-- live there, and it listens on 127.0.0.1 only (the metadata service also on
-- an address --imds-listen names, and only then).
--
-- A second `start` while the emulator runs in DIR does not restart it: it says
-- so, prints the endpoints, and exits 0. To change ports or the config file,
-- `stop` first.
-- @module streamctl.emulator.launcher

local defaults = require "streamctl.emulator.defaults"
local sys = require "streamctl.emulator.launcher.sys"
local args = require "streamctl.emulator.launcher.args"
local certs = require "streamctl.emulator.launcher.certs"
local needs = require "streamctl.emulator.launcher.needs"
local conf = require "streamctl.emulator.launcher.conf"
local report = require "streamctl.emulator.launcher.report"

local say, warn, die, shell_quote, run, capture = sys.say, sys.warn, sys.die, sys.shell_quote, sys.run, sys.capture
local trim, file_exists, read_file, write_file, sleep, absolute = sys.trim, sys.file_exists, sys.read_file,
  sys.write_file, sys.sleep, sys.absolute
local socket = sys.socket

local M = {}

local WAIT_SECONDS = 10

-------------------------------------------------------------------------------
-- Process state

local function pid_of(dir)
  local text = read_file(dir .. "/nginx.pid")
  local pid = text and tonumber(trim(text))
  return pid
end

local function alive(pid)
  if not pid then
    return false
  end
  if not run("kill -0 " .. pid .. " 2>/dev/null") then
    return false
  end
  local stat = read_file("/proc/" .. pid .. "/stat")
  if stat and stat:match("^%d+ %b() ([ZX])") then
    return false -- exited, waiting to be reaped
  end
  local cmdline = read_file("/proc/" .. pid .. "/cmdline")
  if cmdline and not cmdline:find("nginx", 1, true) then
    return false -- a recycled pid, not our server
  end
  return true
end

local function endpoints(dir, opts)
  local ports = opts.ports
  return {
    ALIYUN_URL = "http://127.0.0.1:" .. ports.aliyun,
    ZEGO_URL = "http://127.0.0.1:" .. ports.zego,
    ALIYUN_TLS_URL = "https://127.0.0.1:" .. ports.aliyun_tls,
    ZEGO_TLS_URL = "https://127.0.0.1:" .. ports.zego_tls,
    IMDS_URL = opts.imds and ("http://" .. opts.imds.host .. ":" .. opts.imds.port) or nil,
    CA_FILE = dir .. "/ca.pem",
    DIR = dir,
  }
end

-- IMDS_URL only when the metadata service is served.
local ENDPOINT_KEYS = { "ALIYUN_URL", "ZEGO_URL", "ALIYUN_TLS_URL", "ZEGO_TLS_URL", "IMDS_URL", "CA_FILE", "DIR" }

-- The names the quick starts and docs read (exported), from the keys above.
local EXPORTED = { { "STREAMCTL_ALIYUN_ENDPOINT", "ALIYUN_TLS_URL" }, { "STREAMCTL_ZEGO_ENDPOINT", "ZEGO_TLS_URL" },
  { "STREAMCTL_CA_FILE", "CA_FILE" } }

-- The STREAMCTL_EMULATOR_* names (kept for scripts that read them), then the exported ones.
local function write_endpoints(dir, e)
  local lines = { "# streamctl-emulator endpoints (shell syntax; `. " .. dir .. "/endpoints.env`)" }
  for _, k in ipairs(ENDPOINT_KEYS) do
    if e[k] then
      lines[#lines + 1] = "STREAMCTL_EMULATOR_" .. k .. "=" .. shell_quote(e[k])
    end
  end
  for _, pair in ipairs(EXPORTED) do
    lines[#lines + 1] = "export " .. pair[1] .. "=" .. shell_quote(e[pair[2]])
  end
  write_file(dir .. "/endpoints.env", table.concat(lines, "\n") .. "\n", "644")
end

local function read_endpoints(dir)
  local text = read_file(dir .. "/endpoints.env")
  if not text then
    return nil
  end
  local e = {}
  for k, v in text:gmatch("STREAMCTL_EMULATOR_([%w_]+)='([^']*)'") do
    e[k] = v
  end
  return e
end

local function print_endpoints(e, pid)
  say("streamctl emulator running (pid ", tostring(pid), ")")
  say("  Aliyun  ", e.ALIYUN_URL or "?", "   ", e.ALIYUN_TLS_URL or "?")
  say("  ZEGO    ", e.ZEGO_URL or "?", "   ", e.ZEGO_TLS_URL or "?")
  if e.IMDS_URL then
    say("  IMDS    ", e.IMDS_URL)
  end
  say("  CA      ", e.CA_FILE or "?")
  say("  dir     ", e.DIR or "?", "   (endpoints.env, error.log)")
end


-------------------------------------------------------------------------------
-- Readiness

-- GET /_emulator/health on port (of host, default 127.0.0.1); true when it answers 200.
local function healthy(port, host)
  host = host or "127.0.0.1"
  if socket then
    local tcp = socket.tcp()
    tcp:settimeout(1)
    local ok = tcp:connect(host, port)
    if not ok then
      tcp:close()
      return false
    end
    tcp:send("GET /_emulator/health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
    local line = tcp:receive("*l")
    tcp:close()
    return line ~= nil and line:match("^HTTP/1%.%d 200") ~= nil
  end
  local out = capture("timeout 2 bash -c " .. shell_quote(
    "exec 3<>/dev/tcp/" .. host .. "/" .. port
    .. "; printf 'GET /_emulator/health HTTP/1.0\\r\\nHost: 127.0.0.1\\r\\n\\r\\n' >&3; head -n 1 <&3")
    .. " 2>/dev/null")
  return out:match("^HTTP/1%.%d 200") ~= nil
end

local function tls_listening(port)
  if socket then
    local tcp = socket.tcp()
    tcp:settimeout(1)
    local ok = tcp:connect("127.0.0.1", port)
    tcp:close()
    return ok ~= nil
  end
  return run("timeout 2 bash -c " .. shell_quote("exec 3<>/dev/tcp/127.0.0.1/" .. port) .. " 2>/dev/null")
end


-------------------------------------------------------------------------------
-- Commands

local function cmd_status(dir)
  local pid = pid_of(dir)
  if alive(pid) then
    print_endpoints(read_endpoints(dir) or { DIR = dir }, pid)
    return 0
  end
  say("streamctl emulator stopped (dir ", dir, ")")
  return 3
end

local function stop_pid(pid)
  run("kill -TERM " .. pid .. " 2>/dev/null")
  local deadline = os.time() + WAIT_SECONDS
  while alive(pid) and os.time() <= deadline do
    sleep(0.05)
  end
  if alive(pid) then
    run("kill -KILL " .. pid .. " 2>/dev/null")
    -- (a killed process is gone once the kernel has run it again: on a loaded machine that took longer
    -- than the 2 s this waited before, and the stop failed while the process was on its way out)
    local hard = os.time() + WAIT_SECONDS
    while alive(pid) and os.time() <= hard do
      sleep(0.05)
    end
  end
  return not alive(pid)
end

local function cmd_stop(dir)
  local pid = pid_of(dir)
  if not alive(pid) then
    os.remove(dir .. "/nginx.pid")
    say("streamctl emulator not running (dir ", dir, ")")
    return 0
  end
  if not stop_pid(pid) then
    warn("nginx (pid ", pid, ") did not exit")
    return 1
  end
  os.remove(dir .. "/nginx.pid")
  say("streamctl emulator stopped (pid ", pid, ")")
  return 0
end

local function cmd_start(dir, opts)
  local pid = pid_of(dir)
  if alive(pid) then
    say("streamctl emulator already running in ", dir, "; not restarted (stop it first to change settings)")
    print_endpoints(read_endpoints(dir) or { DIR = dir }, pid)
    return 0
  end
  local missing = needs.missing(dir)
  if #missing > 0 then
    die(1, needs.missing_message(missing))
  end
  local lua_dirs = needs.find_lua_dirs()
  if not lua_dirs then
    die(1, "cannot find the emulator's Lua files (streamctl/emulator/server.lua) in package.path;",
      " set LUA_PATH or STREAMCTL_EMULATOR_LUA_DIR")
  end
  if not run("mkdir -p " .. shell_quote(dir .. "/tmp")) then
    die(1, "cannot create ", dir)
  end
  local config_file = opts.config
  if config_file then
    config_file = absolute(config_file)
    if not file_exists(config_file) then
      die(1, "cannot read config file ", config_file)
    end
  elseif file_exists(dir .. "/config.json") then
    config_file = dir .. "/config.json"
  end
  local as_root = trim(capture("id -u")) == "0"
  certs.ensure(dir)
  write_file(dir .. "/nginx.conf", conf.text(dir, opts, lua_dirs, config_file, as_root), "644")
  os.remove(dir .. "/nginx.pid")
  local e = endpoints(dir, opts)
  write_endpoints(dir, e)

  local log_offset = #(read_file(dir .. "/error.log") or "")
  local start_log = dir .. "/start.log"
  local q = shell_quote
  local ok = run(q(needs.nginx_binary()) .. " -p " .. q(dir .. "/") .. " -c " .. q(dir .. "/nginx.conf")
    .. " -e " .. q(dir .. "/error.log") .. " >" .. q(start_log) .. " 2>&1")
  if not ok then
    die(1, "nginx failed to start; ", report.failure(dir, log_offset, start_log, opts.ports))
  end

  local deadline = os.time() + WAIT_SECONDS
  local ready = false
  repeat
    pid = pid_of(dir)
    if pid and alive(pid) and healthy(opts.ports.aliyun) and healthy(opts.ports.zego)
      and tls_listening(opts.ports.aliyun_tls) and tls_listening(opts.ports.zego_tls)
      and (not opts.imds or healthy(opts.imds.port, opts.imds.host)) then
      ready = true
      break
    end
    sleep(0.05)
  until os.time() > deadline
  if not ready then
    if pid and alive(pid) then
      stop_pid(pid)
    end
    die(1, "the emulator did not become ready within ", WAIT_SECONDS, " s; ",
      report.failure(dir, log_offset, start_log, opts.ports))
  end
  print_endpoints(e, pid)
  return 0
end

local function main(argv)
  local opts = args.parse(argv)
  if opts.command == "help" then
    io.stdout:write(args.USAGE)
    return 0
  end
  if not opts.command then
    io.stderr:write(args.USAGE)
    return 2
  end
  local dir = absolute(opts.dir or defaults.dir())
  if opts.command == "start" then
    return cmd_start(dir, opts)
  elseif opts.command == "stop" then
    return cmd_stop(dir)
  elseif opts.command == "status" then
    return cmd_status(dir)
  end
  warn("unknown command ", opts.command, " (see --help)")
  return 2
end

M.main = main

return M
