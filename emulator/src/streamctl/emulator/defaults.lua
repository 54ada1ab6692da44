--- The emulator's defaults (its launcher's ports, the account each provider
-- accepts, the directory it runs in) and how a client finds a running one
-- (`ports`): the emulator's own, in its rock. The command's --emulator reads
-- them through streamctl.cli.emulator when the emulator is installed; the
-- emulator names nothing of the command's.
-- @module streamctl.emulator.defaults

local M = {}

--- The ports `streamctl-emulator start` listens on unless told otherwise (127.0.0.1).
M.PORTS = { aliyun = 18080, zego = 18081, aliyun_tls = 18443, zego_tls = 18444 }

--- The account each provider accepts unless the config file removes it.
M.ALIYUN = { access_key_id = "LTAIemulatorKey", access_key_secret = "emulator-secret" }
M.ZEGO = { app_id = "1234567890", server_secret = "0123456789abcdef0123456789abcdef" }

--- The directory the emulator runs in: $STREAMCTL_EMULATOR_DIR, else
-- ${XDG_RUNTIME_DIR:-/tmp}/streamctl-emulator-$USER.
-- @tparam[opt] function getenv (default os.getenv)
function M.dir(getenv)
  getenv = getenv or os.getenv
  local env = getenv("STREAMCTL_EMULATOR_DIR")
  if env and env ~= "" then return env end
  local base = getenv("XDG_RUNTIME_DIR")
  if not base or base == "" then base = "/tmp" end
  local user = getenv("USER") or getenv("LOGNAME")
  if not user or user == "" then
    -- (the passwd name, else the uid, as `id -u` said: never "" shared by every such user; no shell)
    local signal = require "streamctl.signal"
    user = signal.user() or tostring(signal.uid())
  end
  return base .. "/streamctl-emulator-" .. user
end

--- The ports the emulator in `dir` listens on, as its launcher wrote them
-- into dir/nginx.conf (`streamctl-emulator start --dir DIR --aliyun-port
-- ...`): `{ aliyun, zego, aliyun_tls, zego_tls }`; or nil and why (no
-- emulator was started there).
function M.ports(dir)
  local path = dir .. "/nginx.conf"
  local text, err = require("streamctl.core").read_file(path) -- (a directory or a FIFO said, never read)
  if not text then return nil, string.format("no emulator was started in %s (%s)", dir, tostring(err)) end
  local a, z, at, zt = text:match("ports = { aliyun = (%d+), zego = (%d+), aliyun_tls = (%d+), zego_tls = (%d+)")
  if not a then return nil, string.format("%s does not name the emulator's ports", path) end
  -- Started there once, but running now? nginx writes its pid file when it starts and removes it when it
  -- stops; a pid whose process is gone (killed) is not running either (/proc: Linux, where it runs).
  local read = require("streamctl.core").read_file
  local pid = (read(dir .. "/nginx.pid") or ""):match("^%s*(%d+)")
  if not pid then return nil, string.format("no emulator runs in %s (it was stopped)", dir) end
  if read("/proc/self/stat") and not read("/proc/" .. pid .. "/stat") then
    return nil, string.format("no emulator runs in %s (its server, pid %s, is gone)", dir, pid)
  end
  return { aliyun = tonumber(a), zego = tonumber(z), aliyun_tls = tonumber(at), zego_tls = tonumber(zt) }
end

return M
