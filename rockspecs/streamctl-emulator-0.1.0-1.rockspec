rockspec_format = "3.0"
package = "streamctl-emulator"
version = "0.1.0-1"
-- Release 0.1.0, made from rockspecs/streamctl-emulator-scm-1.rockspec by tools/rockspecs.lua
-- (make rockspecs): edit that file, not this one.
source = {
   url = "https://github.com/streamctl/streamctl/releases/download/v0.1.0/streamctl-0.1.0.tar.gz",
   dir = "streamctl-0.1.0",
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
   "streamctl == 0.1.0",      -- its version (the health answer), the user's name for its directory
   "lua-cjson >= 2.1",
}
build = {
   type = "builtin",
   modules = {
      -- an nginx-lua app: bin/streamctl-emulator points nginx at these files
      ["streamctl.emulator.aliyun"] = "src/streamctl/emulator/aliyun.lua",
      -- (its defaults: the launcher's, the config's, and the command's --emulator when installed)
      ["streamctl.emulator.defaults"] = "src/streamctl/emulator/defaults.lua",
      -- bin/streamctl-emulator's commands (start, stop, status), run outside nginx
      ["streamctl.emulator.launcher"] = "src/streamctl/emulator/launcher/init.lua",
      ["streamctl.emulator.launcher.args"] = "src/streamctl/emulator/launcher/args.lua",
      ["streamctl.emulator.launcher.certs"] = "src/streamctl/emulator/launcher/certs.lua",
      ["streamctl.emulator.launcher.conf"] = "src/streamctl/emulator/launcher/conf.lua",
      ["streamctl.emulator.launcher.needs"] = "src/streamctl/emulator/launcher/needs.lua",
      ["streamctl.emulator.launcher.report"] = "src/streamctl/emulator/launcher/report.lua",
      ["streamctl.emulator.launcher.sys"] = "src/streamctl/emulator/launcher/sys.lua",
      ["streamctl.emulator.aliyun_gateway"] = "src/streamctl/emulator/aliyun_gateway.lua",
      ["streamctl.emulator.aliyun_nonces"] = "src/streamctl/emulator/aliyun_nonces.lua",
      ["streamctl.emulator.aliyun_products"] = "src/streamctl/emulator/aliyun_products.lua",
      ["streamctl.emulator.aliyun_response"] = "src/streamctl/emulator/aliyun_response.lua",
      ["streamctl.emulator.aliyun_signature"] = "src/streamctl/emulator/aliyun_signature.lua",
      ["streamctl.emulator.aliyun_live"] = "src/streamctl/emulator/aliyun_live.lua",
      ["streamctl.emulator.live_domains"] = "src/streamctl/emulator/live_domains.lua",
      ["streamctl.emulator.live_params"] = "src/streamctl/emulator/live_params.lua",
      ["streamctl.emulator.live_places"] = "src/streamctl/emulator/live_places.lua",
      ["streamctl.emulator.live_streams"] = "src/streamctl/emulator/live_streams.lua",
      ["streamctl.emulator.live_relay"] = "src/streamctl/emulator/live_relay.lua",
      ["streamctl.emulator.live_relay_checks"] = "src/streamctl/emulator/live_relay_checks.lua",
      ["streamctl.emulator.live_relay_tasks"] = "src/streamctl/emulator/live_relay_tasks.lua",
      ["streamctl.emulator.live_relay_update"] = "src/streamctl/emulator/live_relay_update.lua",
      ["streamctl.emulator.aliyun_notify"] = "src/streamctl/emulator/aliyun_notify.lua",
      ["streamctl.emulator.bounded"] = "src/streamctl/emulator/bounded.lua",
      ["streamctl.emulator.callback_http"] = "src/streamctl/emulator/callback_http.lua",
      ["streamctl.emulator.callbacks"] = "src/streamctl/emulator/callbacks.lua",
      ["streamctl.emulator.clock"] = "src/streamctl/emulator/clock.lua",
      ["streamctl.emulator.config"] = "src/streamctl/emulator/config.lua",
      ["streamctl.emulator.credentials_uri"] = "src/streamctl/emulator/credentials_uri.lua",
      ["streamctl.emulator.encoding"] = "src/streamctl/emulator/encoding.lua",
      ["streamctl.emulator.faults"] = "src/streamctl/emulator/faults.lua",
      ["streamctl.emulator.hmac"] = "src/streamctl/emulator/hmac.lua",
      ["streamctl.emulator.identity"] = "src/streamctl/emulator/identity.lua",
      ["streamctl.emulator.imds"] = "src/streamctl/emulator/imds.lua",
      ["streamctl.emulator.json"] = "src/streamctl/emulator/json.lua",
      ["streamctl.emulator.oidc"] = "src/streamctl/emulator/oidc.lua",
      ["streamctl.emulator.ram"] = "src/streamctl/emulator/ram.lua",
      ["streamctl.emulator.ratelimit"] = "src/streamctl/emulator/ratelimit.lua",
      ["streamctl.emulator.requestlog"] = "src/streamctl/emulator/requestlog.lua",
      ["streamctl.emulator.server"] = "src/streamctl/emulator/server.lua",
      ["streamctl.emulator.control_endpoints"] = "src/streamctl/emulator/control_endpoints.lua",
      ["streamctl.emulator.control_credentials"] = "src/streamctl/emulator/control_credentials.lua",
      ["streamctl.emulator.control_online"] = "src/streamctl/emulator/control_online.lua",
      ["streamctl.emulator.control_budgets"] = "src/streamctl/emulator/control_budgets.lua",
      ["streamctl.emulator.provider_request"] = "src/streamctl/emulator/provider_request.lua",
      ["streamctl.emulator.fault_answer"] = "src/streamctl/emulator/fault_answer.lua",
      ["streamctl.emulator.request_io"] = "src/streamctl/emulator/request_io.lua",
      ["streamctl.emulator.sessions"] = "src/streamctl/emulator/sessions.lua",
      ["streamctl.emulator.stats"] = "src/streamctl/emulator/stats.lua",
      ["streamctl.emulator.strangers"] = "src/streamctl/emulator/strangers.lua",
      ["streamctl.emulator.sts"] = "src/streamctl/emulator/sts.lua",
      ["streamctl.emulator.task_events"] = "src/streamctl/emulator/task_events.lua",
      ["streamctl.emulator.zego"] = "src/streamctl/emulator/zego.lua",
      ["streamctl.emulator.zego_actions"] = "src/streamctl/emulator/zego_actions.lua",
      ["streamctl.emulator.zego_gateway"] = "src/streamctl/emulator/zego_gateway.lua",
      ["streamctl.emulator.zego_response"] = "src/streamctl/emulator/zego_response.lua",
      ["streamctl.emulator.zego_state"] = "src/streamctl/emulator/zego_state.lua",
      ["streamctl.emulator.zego_streams"] = "src/streamctl/emulator/zego_streams.lua",
   },
   install = {
      bin = {
         ["streamctl-emulator"] = "bin/streamctl-emulator",
      },
   },
}
