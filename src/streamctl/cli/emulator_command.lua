--- `streamctl emulator start|stop|status`: the emulator's launcher, found
-- beside the command, run with the command's defaults.
-- @module streamctl.cli.emulator_command

local cli_output = require "streamctl.cli.output"

local type, ipairs, gsub, match, find = type, ipairs, string.gsub, string.match, string.find
local concat, floor = table.concat, math.floor
local flag = cli_output.flag

local M = {}

-- How to get the emulator when it is not installed, for a command the
-- Debian package installed: its own package (which apt removes with
-- nginx-lua when Debian's luajit, which conflicts with luajit2, is installed).
local NO_EMULATOR_DEB = table.concat({
  "streamctl: the emulator is not installed: apt-get install streamctl-emulator",
  "(it needs nginx-lua, which needs luajit2: installing Debian's luajit package removes all three;",
  "luajit2 has a luajit of its own)",
}, "\n")

-- How to get the emulator when it is not installed (it is a rock of its own).
local NO_EMULATOR = table.concat({
  "streamctl: the emulator is not installed: it is the streamctl-emulator rock. From a clone of streamctl:",
  "  apt-get install nginx libnginx-mod-http-lua lua-resty-core lua-nginx-string lua-cjson",
  "  luarocks --lua-version=5.4 make --deps-mode=none rockspecs/streamctl-emulator-scm-1.rockspec",
  "(docs/emulator.md)",
}, "\n")

-- The streamctl-emulator to run, as shell words: the repository's
-- (emulator/bin/streamctl-emulator, from bin/streamctl: run by the
-- interpreter running this command), the one in this command's luarocks tree
-- or on PATH (luarocks' wrapper, run as it is); or nil.
local function emulator_command(q)
  local script = arg and arg[0] or ""
  local dir = match(script, "^(.*)/[^/]*$")
  if dir and not find(script, "/lib/luarocks/rocks%-") then
    local launcher = dir .. "/../emulator/bin/streamctl-emulator"
    local f = io.open(launcher, "rb")
    if f then
      f:close()
      local i = -1 -- (the interpreter is the lowest argument: lua5.4 [-e ...] script)
      while arg[i - 1] do i = i - 1 end
      return q(arg[i] or "lua") .. " " .. q(launcher)
    end
  end
  -- installed by luarocks: TREE/lib/luarocks/rocks-V/streamctl/VERSION/bin/streamctl
  local tree = match(script, "^(.*)/lib/luarocks/rocks%-[^/]+/[^/]+/[^/]+/bin/[^/]+$")
  local wrapper = tree and tree .. "/bin/streamctl-emulator"
  local f = wrapper and io.open(wrapper, "rb")
  if f then
    f:close()
    return q(wrapper)
  end
  local ok = os.execute("command -v streamctl-emulator >/dev/null 2>&1")
  if ok == true or ok == 0 then return "streamctl-emulator" end
  return nil
end

-- Runs streamctl-emulator with the subcommand's arguments; returns its exit
-- status (1, saying how to install it, when it is not installed).
local function run_emulator(args)
  local function q(w) return "'" .. gsub(w, "'", "'\\''") .. "'" end
  local command = emulator_command(q)
  if not command then
    -- (the message that fits how the command was installed: the Debian package knows its files)
    local deb = io.open("/var/lib/dpkg/info/streamctl.list", "rb")
    if deb then deb:close() end
    io.stderr:write(deb and (arg and arg[0] or "") == "/usr/bin/streamctl" and NO_EMULATOR_DEB or NO_EMULATOR, "\n")
    return 1
  end
  local words = { command, args.what }
  for _, name in ipairs { "dir", "config", "aliyun_port", "zego_port", "aliyun_tls_port", "zego_tls_port",
                          "imds_port", "imds_listen" } do
    if args[name] then words[#words + 1] = flag(name) .. " " .. q(args[name]) end
  end
  local a, _, code = os.execute(concat(words, " "))
  if type(a) == "number" then return a > 255 and floor(a / 256) or a end
  return a and 0 or (code or 1)
end

M.run_emulator = run_emulator

return M
