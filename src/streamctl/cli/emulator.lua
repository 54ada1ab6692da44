--- The emulator as the command sees it: its defaults (streamctl.emulator.defaults,
-- in the emulator's own rock) when it is installed, and when it is not,
-- nothing but a message saying so. The command runs without the emulator;
-- the emulator never names the command.
-- @module streamctl.cli.emulator

local ok, defaults = pcall(require, "streamctl.emulator.defaults")

local M = {}

--- Whether the emulator's rock (or package) is installed here.
M.installed = ok

-- What --emulator says when the emulator is not installed.
local MISSING = "the emulator is not installed (the streamctl-emulator rock, or Debian's streamctl-emulator "
  .. "package)"

if ok then
  M.PORTS, M.ALIYUN, M.ZEGO, M.dir, M.ports = defaults.PORTS, defaults.ALIYUN, defaults.ZEGO, defaults.dir,
    defaults.ports
else
  -- (without the emulator) no default port and no account; finding one running says it is not
  -- installed (--emulator asks nothing else of it then: streamctl.cli.client)
  M.PORTS = {}
  function M.ports() return nil, MISSING end
end

return M
