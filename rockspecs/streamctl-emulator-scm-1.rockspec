rockspec_format = "3.0"
package = "streamctl-emulator"
version = "scm-1"
-- Releases are tagged vX.Y.Z; rockspecs/streamctl-emulator-X.Y.Z-1.rockspec is
-- this file with that version and the release's source tarball,
-- streamctl-X.Y.Z.tar.gz (tools/rockspecs.lua writes it: make rockspecs; make
-- dist writes the tarball).
source = {
   url = "git+https://github.com/streamctl/streamctl.git",
}
description = {
   summary = "A local emulator of Alibaba Cloud ApsaraVideo Live and ZEGOCLOUD Server API v2",
   detailed = [[
streamctl-emulator starts a local nginx that answers as both providers do:
signatures, clock skew, nonces, rate limits, state and injected faults, over
HTTP and HTTPS (with a CA of its own). For trying streamctl offline and for
tests. Needs nginx with the Lua module (Debian: nginx libnginx-mod-http-lua
lua-resty-core lua-nginx-string lua-cjson), which luarocks cannot install.
]],
   license = "MIT",
   labels = { "live", "streaming", "emulator", "testing" },
}
dependencies = {
   "lua >= 5.1, < 5.5",
   "streamctl",      -- its version (the health answer), the user's name for its directory
   "lua-cjson >= 2.1",
}
build = {
   type = "builtin",
   modules = {
      -- an nginx-lua app: bin/streamctl-emulator points nginx at these files
      ["streamctl.emulator.aliyun"] = "emulator/src/streamctl/emulator/aliyun.lua",
      -- (its defaults: the launcher's, the config's, and the command's --emulator when installed)
      ["streamctl.emulator.defaults"] = "emulator/src/streamctl/emulator/defaults.lua",
      -- bin/streamctl-emulator's commands (start, stop, status), run outside nginx
      ["streamctl.emulator.launcher"] = "emulator/src/streamctl/emulator/launcher/init.lua",
      ["streamctl.emulator.launcher.args"] = "emulator/src/streamctl/emulator/launcher/args.lua",
      ["streamctl.emulator.launcher.certs"] = "emulator/src/streamctl/emulator/launcher/certs.lua",
      ["streamctl.emulator.launcher.conf"] = "emulator/src/streamctl/emulator/launcher/conf.lua",
      ["streamctl.emulator.launcher.needs"] = "emulator/src/streamctl/emulator/launcher/needs.lua",
      ["streamctl.emulator.launcher.report"] = "emulator/src/streamctl/emulator/launcher/report.lua",
      ["streamctl.emulator.launcher.sys"] = "emulator/src/streamctl/emulator/launcher/sys.lua",
      ["streamctl.emulator.aliyun_gateway"] = "emulator/src/streamctl/emulator/aliyun_gateway.lua",
      ["streamctl.emulator.aliyun_nonces"] = "emulator/src/streamctl/emulator/aliyun_nonces.lua",
      ["streamctl.emulator.aliyun_products"] = "emulator/src/streamctl/emulator/aliyun_products.lua",
      ["streamctl.emulator.aliyun_response"] = "emulator/src/streamctl/emulator/aliyun_response.lua",
      ["streamctl.emulator.aliyun_signature"] = "emulator/src/streamctl/emulator/aliyun_signature.lua",
      ["streamctl.emulator.aliyun_live"] = "emulator/src/streamctl/emulator/aliyun_live.lua",
      ["streamctl.emulator.live_domains"] = "emulator/src/streamctl/emulator/live_domains.lua",
      ["streamctl.emulator.live_history"] = "emulator/src/streamctl/emulator/live_history.lua",
      ["streamctl.emulator.live_params"] = "emulator/src/streamctl/emulator/live_params.lua",
      ["streamctl.emulator.live_blocks"] = "emulator/src/streamctl/emulator/live_blocks.lua",
      ["streamctl.emulator.live_places"] = "emulator/src/streamctl/emulator/live_places.lua",
      ["streamctl.emulator.live_streams"] = "emulator/src/streamctl/emulator/live_streams.lua",
      ["streamctl.emulator.live_relay"] = "emulator/src/streamctl/emulator/live_relay.lua",
      ["streamctl.emulator.live_relay_checks"] = "emulator/src/streamctl/emulator/live_relay_checks.lua",
      ["streamctl.emulator.live_relay_tasks"] = "emulator/src/streamctl/emulator/live_relay_tasks.lua",
      ["streamctl.emulator.live_relay_update"] = "emulator/src/streamctl/emulator/live_relay_update.lua",
      ["streamctl.emulator.aliyun_notify"] = "emulator/src/streamctl/emulator/aliyun_notify.lua",
      ["streamctl.emulator.bounded"] = "emulator/src/streamctl/emulator/bounded.lua",
      ["streamctl.emulator.callback_http"] = "emulator/src/streamctl/emulator/callback_http.lua",
      ["streamctl.emulator.callbacks"] = "emulator/src/streamctl/emulator/callbacks.lua",
      ["streamctl.emulator.caps"] = "emulator/src/streamctl/emulator/caps.lua",
      ["streamctl.emulator.clock"] = "emulator/src/streamctl/emulator/clock.lua",
      ["streamctl.emulator.config"] = "emulator/src/streamctl/emulator/config.lua",
      ["streamctl.emulator.credentials_uri"] = "emulator/src/streamctl/emulator/credentials_uri.lua",
      ["streamctl.emulator.encoding"] = "emulator/src/streamctl/emulator/encoding.lua",
      ["streamctl.emulator.faults"] = "emulator/src/streamctl/emulator/faults.lua",
      ["streamctl.emulator.hmac"] = "emulator/src/streamctl/emulator/hmac.lua",
      ["streamctl.emulator.identity"] = "emulator/src/streamctl/emulator/identity.lua",
      ["streamctl.emulator.imds"] = "emulator/src/streamctl/emulator/imds.lua",
      ["streamctl.emulator.json"] = "emulator/src/streamctl/emulator/json.lua",
      ["streamctl.emulator.oidc"] = "emulator/src/streamctl/emulator/oidc.lua",
      ["streamctl.emulator.ram"] = "emulator/src/streamctl/emulator/ram.lua",
      ["streamctl.emulator.ratelimit"] = "emulator/src/streamctl/emulator/ratelimit.lua",
      ["streamctl.emulator.requestlog"] = "emulator/src/streamctl/emulator/requestlog.lua",
      ["streamctl.emulator.server"] = "emulator/src/streamctl/emulator/server.lua",
      ["streamctl.emulator.control_endpoints"] = "emulator/src/streamctl/emulator/control_endpoints.lua",
      ["streamctl.emulator.control_credentials"] = "emulator/src/streamctl/emulator/control_credentials.lua",
      ["streamctl.emulator.control_online"] = "emulator/src/streamctl/emulator/control_online.lua",
      ["streamctl.emulator.remote_auth"] = "emulator/src/streamctl/emulator/remote_auth.lua",
      ["streamctl.emulator.control_budgets"] = "emulator/src/streamctl/emulator/control_budgets.lua",
      ["streamctl.emulator.provider_request"] = "emulator/src/streamctl/emulator/provider_request.lua",
      ["streamctl.emulator.fault_answer"] = "emulator/src/streamctl/emulator/fault_answer.lua",
      ["streamctl.emulator.request_io"] = "emulator/src/streamctl/emulator/request_io.lua",
      ["streamctl.emulator.sessions"] = "emulator/src/streamctl/emulator/sessions.lua",
      ["streamctl.emulator.stats"] = "emulator/src/streamctl/emulator/stats.lua",
      ["streamctl.emulator.strangers"] = "emulator/src/streamctl/emulator/strangers.lua",
      ["streamctl.emulator.sts"] = "emulator/src/streamctl/emulator/sts.lua",
      ["streamctl.emulator.task_events"] = "emulator/src/streamctl/emulator/task_events.lua",
      ["streamctl.emulator.zego"] = "emulator/src/streamctl/emulator/zego.lua",
      ["streamctl.emulator.zego_actions"] = "emulator/src/streamctl/emulator/zego_actions.lua",
      ["streamctl.emulator.zego_gateway"] = "emulator/src/streamctl/emulator/zego_gateway.lua",
      ["streamctl.emulator.zego_response"] = "emulator/src/streamctl/emulator/zego_response.lua",
      ["streamctl.emulator.zego_rooms"] = "emulator/src/streamctl/emulator/zego_rooms.lua",
      ["streamctl.emulator.zego_rules"] = "emulator/src/streamctl/emulator/zego_rules.lua",
      ["streamctl.emulator.zego_state"] = "emulator/src/streamctl/emulator/zego_state.lua",
      ["streamctl.emulator.zego_streams"] = "emulator/src/streamctl/emulator/zego_streams.lua",
   },
   install = {
      bin = {
         ["streamctl-emulator"] = "emulator/bin/streamctl-emulator",
      },
   },
}
