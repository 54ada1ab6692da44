--- The launcher's command line: its usage text and its arguments, each
-- checked (a bad one ends the process with status 2, naming it).
-- @module streamctl.emulator.launcher.args

local defaults = require "streamctl.emulator.defaults"
local sys = require "streamctl.emulator.launcher.sys"

local die = sys.die

local M = {}

M.USAGE = [[
Usage: streamctl-emulator <command> [options]

Commands:
  start    start the emulator in the background (no-op if it already runs in DIR)
  stop     stop it (waits up to 10 s)
  status   print whether it runs; exit status 0 when running, 3 when stopped

Options:
  --dir DIR              working directory (default: $STREAMCTL_EMULATOR_DIR, or
                         ${XDG_RUNTIME_DIR:-/tmp}/streamctl-emulator-$USER)
  --config FILE          JSON settings (accounts, QPS, ...); default DIR/config.json
                         when it exists, else the built-in defaults
  --aliyun-port N        Aliyun API over HTTP        (default 18080)
  --zego-port N          ZEGO API over HTTP          (default 18081)
  --aliyun-tls-port N    Aliyun API over HTTPS       (default 18443)
  --zego-tls-port N      ZEGO API over HTTPS         (default 18444)
  --imds-port N          also serve the ECS instance metadata service (the RAM
                         role's credentials) over HTTP on 127.0.0.1:N
                         (default: not served)
  --imds-listen ADDR:PORT  the same on the IPv4 address given (for a test in a
                         network namespace of its own: 100.100.100.200:80)
  -h, --help             this text

Default accounts: Aliyun AccessKeyId LTAIemulatorKey / secret emulator-secret;
ZEGO AppId 1234567890 / ServerSecret 0123456789abcdef0123456789abcdef.
HTTPS uses a CA generated once into DIR/ca.pem (certificate for 127.0.0.1 and
localhost). Control endpoints live under /_emulator/ on every port. STS and
the credentials URI (/credentials-uri) answer on the Aliyun ports
(docs/emulator-credentials.md).

It runs in nginx with the Lua module (Debian: apt-get install nginx
libnginx-mod-http-lua lua-resty-core lua-nginx-string lua-cjson); start checks
for those first and names what is missing and its package.
]]

-- Where --imds-port (a port on 127.0.0.1) or --imds-listen (ADDR:PORT)
-- says the metadata service listens: { host, port }.
local function imds_of(name, v)
  local host, port = "127.0.0.1", v
  if name == "--imds-listen" then
    host, port = v:match("^(%d+%.%d+%.%d+%.%d+):(%d+)$")
    local valid = host ~= nil
    for octet in (host or ""):gmatch("%d+") do
      if tonumber(octet) > 255 or (#octet > 1 and octet:sub(1, 1) == "0") then
        valid = false
      end
    end
    if not valid then
      die(2, name, ": expected an IPv4 address and a port, ADDR:PORT (100.100.100.200:80), got ", v)
    end
  end
  local n = port:find("^%d+$") and #port <= 5 and tonumber(port)
  if not n or n < 1 or n > 65535 then
    die(2, name, ": not a port number (1-65535, decimal digits): ", port)
  end
  return { host = host, port = n }
end

local function parse_args(argv)
  local opts = {
    command = nil,
    ports = {
      aliyun = defaults.PORTS.aliyun, zego = defaults.PORTS.zego,
      aliyun_tls = defaults.PORTS.aliyun_tls, zego_tls = defaults.PORTS.zego_tls,
    },
  }
  local port_flags = {
    ["--aliyun-port"] = "aliyun", ["--zego-port"] = "zego",
    ["--aliyun-tls-port"] = "aliyun_tls", ["--zego-tls-port"] = "zego_tls",
  }
  local i = 1
  while i <= #argv do
    local a = argv[i]
    local name, inline = a:match("^(%-%-[%w%-]+)=(.*)$")
    name = name or a
    local function value()
      if inline then
        return inline
      end
      i = i + 1
      if argv[i] == nil then
        die(2, name, " needs a value (see --help)")
      end
      return argv[i]
    end
    if name == "-h" or name == "--help" or name == "help" then
      opts.command = "help"
    elseif name == "--dir" or name == "--config" then
      local v = value()
      if v == "" then die(2, name, " must not be empty (see --help)") end
      opts[name:sub(3)] = v
    elseif port_flags[name] then
      local v = value()
      -- (decimal digits only: tonumber would take 0x1F90 or 8.08e3 for a port)
      local n = v:find("^%d+$") and #v <= 5 and tonumber(v)
      if not n or n < 1 or n > 65535 then
        die(2, name, ": not a port number (1-65535, decimal digits): ", v)
      end
      opts.ports[port_flags[name]] = n
    elseif name == "--imds-port" or name == "--imds-listen" then
      if opts.imds then
        die(2, "give --imds-port or --imds-listen once")
      end
      opts.imds = imds_of(name, value())
    elseif a:sub(1, 1) == "-" then
      die(2, "unknown option ", a, " (see --help)")
    elseif not opts.command then
      opts.command = a
    else
      die(2, "unexpected argument ", a, " (see --help)")
    end
    i = i + 1
  end
  local seen = {}
  for _, key in ipairs({ "aliyun", "zego", "aliyun_tls", "zego_tls" }) do
    local p = opts.ports[key]
    if seen[p] then
      die(2, "port ", p, " given twice")
    end
    seen[p] = true
  end
  if opts.imds and seen[opts.imds.port] then
    die(2, "port ", opts.imds.port, " given twice")
  end
  return opts
end

M.parse = parse_args

return M
