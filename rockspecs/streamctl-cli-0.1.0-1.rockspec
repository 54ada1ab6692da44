rockspec_format = "3.0"
package = "streamctl-cli"
version = "0.1.0-1"
-- Release 0.1.0, made from rockspecs/streamctl-cli-scm-1.rockspec by tools/rockspecs.lua
-- (make rockspecs): edit that file, not this one.
source = {
   url = "https://github.com/streamctl/streamctl/releases/download/v0.1.0/streamctl-0.1.0.tar.gz",
   dir = "streamctl-0.1.0",
}
description = {
   summary = "The streamctl command: control live streams on Alibaba Cloud and ZEGOCLOUD from a shell",
   detailed = [[
streamctl-cli installs the streamctl command (one subcommand per provider
operation, reconcile, a desired-state file, audit records, the local
emulator's start and stop), its man page and its bash completion. The
library it drives is the streamctl rock.
]],
   license = "MIT",
   labels = { "live", "streaming", "aliyun", "zego", "cli" },
}
dependencies = {
   "lua >= 5.1, < 5.5",
   "streamctl == 0.1.0",
   "argparse >= 0.7",       -- the command line (Debian: lua-argparse)
}
build = {
   type = "builtin",
   modules = {
      ["streamctl.cli"] = "src/streamctl/cli/init.lua",
      ["streamctl.cli.input"] = "src/streamctl/cli/input.lua",
      ["streamctl.cli.output"] = "src/streamctl/cli/output.lua",
      ["streamctl.cli.parser"] = "src/streamctl/cli/parser.lua",
      ["streamctl.cli.habits"] = "src/streamctl/cli/habits.lua",
      ["streamctl.cli.commands"] = "src/streamctl/cli/commands.lua",
      -- each registered provider's command table (streamctl.providers)
      ["streamctl.cli.provider"] = "src/streamctl/cli/provider.lua",
      ["streamctl.cli.providers.aliyun"] = "src/streamctl/cli/providers/aliyun.lua",
      ["streamctl.cli.providers.zego"] = "src/streamctl/cli/providers/zego.lua",
      ["streamctl.cli.client"] = "src/streamctl/cli/client.lua",
      ["streamctl.cli.configure"] = "src/streamctl/cli/configure.lua",
      ["streamctl.cli.guard"] = "src/streamctl/cli/guard.lua",
      ["streamctl.cli.callargs"] = "src/streamctl/cli/callargs.lua",
      ["streamctl.cli.calls"] = "src/streamctl/cli/calls.lua",
      ["streamctl.cli.reconcile"] = "src/streamctl/cli/reconcile.lua",
      ["streamctl.cli.emulator_command"] = "src/streamctl/cli/emulator_command.lua",
      ["streamctl.cli.audit_read"] = "src/streamctl/cli/audit_read.lua",
      ["streamctl.cli.token"] = "src/streamctl/cli/token.lua",
      ["streamctl.cli.telemetry"] = "src/streamctl/cli/telemetry.lua",
      ["streamctl.cli.man"] = "src/streamctl/cli/man.lua",
      ["streamctl.cli.methods"] = "src/streamctl/cli/methods.lua",
      -- where the emulator listens and its accounts, when it is installed (--emulator)
      ["streamctl.cli.emulator"] = "src/streamctl/cli/emulator.lua",
   },
   install = {
      -- the man page and the bash completion (made by make doc), into the rock's conf directory
      conf = {
         ["streamctl.1"] = "docs/streamctl.1",
         ["streamctl.bash"] = "docs/streamctl.bash",
      },
      bin = {
         ["streamctl"] = "bin/streamctl",
      },
   },
}
