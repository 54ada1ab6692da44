--- The command's own subcommands (a provider's are made from its client
-- and its table: streamctl.cli.parser), one entry each: `add(parser, t)`
-- makes its argparse command (its flags, help and example) and returns it,
-- `run(out, args, env)` runs it and returns the exit status. A new one is an
-- entry in LIST.
-- @module streamctl.cli.commands

local emulator = require "streamctl.cli.emulator"
local cli_output = require "streamctl.cli.output"

local ipairs, format, concat = ipairs, string.format, table.concat
local flag = cli_output.flag

local M = {}

local configure = { name = "configure" }
function configure.add(parser, t)
  -- (the providers' tables that have a `configure`: streamctl.cli.provider)
  local names, says = {}, {}
  for i, p in ipairs(t.configurable) do names[i], says[i] = p.name, p.configure.says end
  local conf = parser:command("configure", "Asks for a provider's keys and writes them where the credential "
    .. "chain reads them: " .. concat(says, ", ") .. "; mode 0600, the file's other lines kept. One answer a line "
    .. "on standard input (an empty one keeps the current value), so it scripts too.")
  conf:summary("Writes a provider's keys into its profile file.")
  conf:argument("what", concat(names, " or ") .. "."):choices(names)
  conf:option("--profile", "The profile to write (default: the default one)."):argname("<name>")
  conf:epilog("Example:\n   streamctl configure aliyun\n   printf '%s\\n' \"$AK_ID\" \"$AK_SECRET\" | "
    .. "streamctl configure aliyun --profile prod")
  return conf
end

local emulator_command = { name = "emulator" }
function emulator_command.add(parser)
  local emu = parser:command("emulator", "Start, stop or check the local emulator (runs streamctl-emulator).")
  emu:summary("Start, stop or check the local emulator.")
  emu:argument("what", "start, stop or status."):choices { "start", "stop", "status" }
  emu:option("--dir", "Where it runs (default: $STREAMCTL_EMULATOR_DIR or "
    .. "${XDG_RUNTIME_DIR:-/tmp}/streamctl-emulator-$USER)."):argname("<dir>")
  emu:option("--config", "JSON settings (accounts, rate limits; see docs/emulator.md)."):argname("<file>")
  for _, port in ipairs { "aliyun", "zego", "aliyun_tls", "zego_tls" } do
    emu:option(flag(port .. "_port"), emulator.PORTS[port] and format("Port (default: %d).", emulator.PORTS[port])
      or "Port."):argname("<port>")
  end
  emu:option("--imds-port", "Also serve an ECS instance metadata service on 127.0.0.1 (default: none; "
    .. "docs/emulator-credentials.md)."):argname("<port>")
  emu:option("--imds-listen", "The same on another IPv4 address (a test in a network namespace)."):argname(
    "<addr:port>")
  emu:epilog("Example:\n   streamctl emulator start && streamctl aliyun resume-live-stream --emulator "
    .. "--domain-name push.example.com --app-name live --stream-name match-7")
  return emu
end

local man_command = { name = "man" }
function man_command.add(parser)
  local man = parser:command("man", "Shows this manual page: man shows it on a terminal; otherwise (a pipe, a "
    .. "system without man) its plain text is written. For installs that put it where man does not look "
    .. "(luarocks: the rock's own directory): --install.")
  man:summary("Show the manual page.")
  man:flag("--roff", "Write the page's roff source (what man reads) instead of its text.")
  man:flag("--install", "Put the page where man looks and the bash completion where bash-completion looks: "
    .. "~/.local/share/man/man1 and ~/.local/share/bash-completion/completions ($XDG_DATA_HOME when set), "
    .. "or /usr/local/share/... as root.")
  man:option("--prefix", "With --install: under this directory instead (DIR/man/man1, "
    .. "DIR/bash-completion/completions)."):argname("<dir>")
  return man
end

function configure.run(out, args, env)
  return require("streamctl.cli.configure").run(out, args, env.stdin or io.stdin, env.getenv or os.getenv)
end

function emulator_command.run(_, args)
  return require("streamctl.cli.emulator_command").run_emulator(args)
end

function man_command.run(out, args, env)
  -- (the completion `streamctl completion bash` writes: argparse's, from the same parser)
  local function completion() return require("streamctl.cli.parser").parser(M.LIST):get_bash_complete() end
  return require("streamctl.cli.man").run(out, args, env.getenv or os.getenv, completion)
end

-- `streamctl audit [LOG]`: the audit log read back (streamctl.cli.audit_read).
local audit_command = { name = "audit" }
function audit_command.add(parser) return require("streamctl.cli.audit_read").add(parser) end
function audit_command.run(out, args, env) return require("streamctl.cli.audit_read").run(out, args, env) end

--- The entries, in the help's order.
M.LIST = { configure, emulator_command, man_command, audit_command }

return M
