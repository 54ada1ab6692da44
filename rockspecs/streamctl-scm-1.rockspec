rockspec_format = "3.0"
package = "streamctl"
version = "scm-1"
-- Releases are tagged vX.Y.Z; rockspecs/streamctl-X.Y.Z-1.rockspec is this
-- file with that version and tag (tools/rockspecs.lua writes it: make rockspecs).
source = {
   url = "git+https://github.com/streamctl/streamctl.git",
}
description = {
   summary = "Control live streams on Alibaba Cloud ApsaraVideo Live and ZEGOCLOUD from Lua",
   detailed = [[
streamctl signs and sends stream-control requests (resume, forbid, pull-to-push
relays) to Alibaba Cloud ApsaraVideo Live and ZEGOCLOUD Server API v2. A C core
does the signing over OpenSSL and the HTTP over libcurl; Lua does validation,
batching, rate limiting and retries. Builds for Lua 5.1 (LuaJIT/OpenResty) to 5.4.
Needs OpenSSL and libcurl. Two rocks beside it: streamctl-redis (the Redis
store outside nginx, over hiredis) and streamctl-emulator (a local emulator of
both APIs, on nginx-lua).
]],
   license = "MIT",
   labels = { "live", "streaming", "aliyun", "zego", "openresty" },
}
dependencies = {
   "lua >= 5.1, < 5.5",
   "lua-cjson >= 2.1",
   "argparse >= 0.7",       -- the command line (Debian: lua-argparse)
   "luafilesystem >= 1.8",  -- profile file permissions (Debian: lua-filesystem)
   -- The redis option also needs: outside nginx, the streamctl-redis rock;
   -- inside nginx, lua-resty-redis (Debian: lua-nginx-redis, `require
   -- "nginx.redis"`), which OpenResty bundles.
}
external_dependencies = {
   OPENSSL = { header = "openssl/evp.h", library = "crypto" },
   -- No header check for curl: Debian keeps curl/curl.h under a multiarch
   -- include directory that luarocks does not search (the compiler does).
   CURL = { library = "curl" },
}
build = {
   type = "builtin",
   modules = {
      -- Lua modules: every file under lua/ but the emulator's, which
      -- streamctl-emulator installs (spec/00-package_spec.lua checks the lists)
      ["streamctl"] = "lua/streamctl/init.lua",
      ["streamctl.pipeline.acs"] = "lua/streamctl/pipeline/acs.lua",
      ["streamctl.aliyun"] = "lua/streamctl/aliyun.lua",
      ["streamctl.operator.audit"] = "lua/streamctl/operator/audit.lua",
      ["streamctl.edge.authkey"] = "lua/streamctl/edge/authkey.lua",
      ["streamctl.pipeline.batch"] = "lua/streamctl/pipeline/batch.lua",
      ["streamctl.edge.callbacks"] = "lua/streamctl/edge/callbacks.lua",
      ["streamctl.cli"] = "lua/streamctl/cli/init.lua",
      ["streamctl.cli.input"] = "lua/streamctl/cli/input.lua",
      ["streamctl.cli.output"] = "lua/streamctl/cli/output.lua",
      ["streamctl.cli.parser"] = "lua/streamctl/cli/parser.lua",
      ["streamctl.cli.client"] = "lua/streamctl/cli/client.lua",
      ["streamctl.cli.guard"] = "lua/streamctl/cli/guard.lua",
      ["streamctl.cli.calls"] = "lua/streamctl/cli/calls.lua",
      ["streamctl.cli.reconcile"] = "lua/streamctl/cli/reconcile.lua",
      ["streamctl.cli.emulator_command"] = "lua/streamctl/cli/emulator_command.lua",
      ["streamctl.cli.emulator"] = "lua/streamctl/cli/emulator.lua",
      ["streamctl.pipeline.client"] = "lua/streamctl/pipeline/client.lua",
      ["streamctl.credentials"] = "lua/streamctl/credentials/init.lua",
      ["streamctl.credentials.aliyun"] = "lua/streamctl/credentials/aliyun.lua",
      ["streamctl.credentials.refresh"] = "lua/streamctl/credentials/refresh.lua",
      ["streamctl.credentials.sources"] = "lua/streamctl/credentials/sources.lua",
      ["streamctl.operator.desired"] = "lua/streamctl/operator/desired.lua",
      ["streamctl.base.encode"] = "lua/streamctl/base/encode.lua",
      ["streamctl.base.errors"] = "lua/streamctl/base/errors.lua",
      -- where the emulator listens and its accounts (the command's --emulator);
      -- the emulator itself is the streamctl-emulator rock
      ["streamctl.base.json"] = "lua/streamctl/base/json.lua",
      ["streamctl.operator.metrics"] = "lua/streamctl/operator/metrics.lua",
      ["streamctl.base.nginx"] = "lua/streamctl/base/nginx.lua",
      ["streamctl.pipeline.options"] = "lua/streamctl/pipeline/options.lua",
      ["streamctl.pipeline.pacing"] = "lua/streamctl/pipeline/pacing.lua",
      ["streamctl.base.samples"] = "lua/streamctl/base/samples.lua",
      ["streamctl.base.jitter"] = "lua/streamctl/base/jitter.lua",
      ["streamctl.pipeline.keys"] = "lua/streamctl/pipeline/keys.lua",
      ["streamctl.pipeline.stores"] = "lua/streamctl/pipeline/stores.lua",
      ["streamctl.engine.ratelimit"] = "lua/streamctl/engine/ratelimit.lua",
      ["streamctl.operator.reconcile"] = "lua/streamctl/operator/reconcile.lua",
      ["streamctl.operator.reconcile_base"] = "lua/streamctl/operator/reconcile_base.lua",
      ["streamctl.operator.reconcile_aliyun"] = "lua/streamctl/operator/reconcile_aliyun.lua",
      ["streamctl.operator.reconcile_zego"] = "lua/streamctl/operator/reconcile_zego.lua",
      ["streamctl.base.redact"] = "lua/streamctl/base/redact.lua",
      ["streamctl.engine.retry"] = "lua/streamctl/engine/retry.lua",
      ["streamctl.engine.runner"] = "lua/streamctl/engine/runner.lua",
      ["streamctl.engine.run"] = "lua/streamctl/engine/run.lua",
      ["streamctl.engine.slots"] = "lua/streamctl/engine/slots.lua",
      ["streamctl.engine.sequence"] = "lua/streamctl/engine/sequence.lua",
      ["streamctl.store.shdict"] = "lua/streamctl/store/shdict.lua",
      ["streamctl.credentials.sts"] = "lua/streamctl/credentials/sts.lua",
      ["streamctl.store.redis"] = "lua/streamctl/store/redis.lua",
      ["streamctl.store.redisconn"] = "lua/streamctl/store/redisconn.lua",
      ["streamctl.store.redisconfig"] = "lua/streamctl/store/redisconfig.lua",
      ["streamctl.store.redisstore"] = "lua/streamctl/store/redisstore.lua",
      ["streamctl.store.redisrate"] = "lua/streamctl/store/redisrate.lua",
      ["streamctl.store.redisseq"] = "lua/streamctl/store/redisseq.lua",
      ["streamctl.base.log"] = "lua/streamctl/base/log.lua",
      ["streamctl.transport.auto"] = "lua/streamctl/transport/auto.lua",
      ["streamctl.transport.curl"] = "lua/streamctl/transport/curl.lua",
      ["streamctl.transport.http1"] = "lua/streamctl/transport/http1.lua",
      ["streamctl.transport.ngx"] = "lua/streamctl/transport/ngx.lua",
      ["streamctl.base.url"] = "lua/streamctl/base/url.lua",
      ["streamctl.base.validate"] = "lua/streamctl/base/validate.lua",
      ["streamctl.version"] = "lua/streamctl/version.lua",
      ["streamctl.zego"] = "lua/streamctl/zego.lua",
      -- C modules
      ["streamctl.core"] = {
         sources = { "csrc/core.c", "csrc/encode.c", "csrc/sign_v1.c", "csrc/sign_v3.c", "csrc/sign_zego.c",
            "csrc/digest.c", "csrc/nonce.c", "csrc/clock.c", "csrc/file.c", "csrc/fingerprint.c" },
         libraries = { "crypto" },
         incdirs = { "$(OPENSSL_INCDIR)", "csrc" },
         libdirs = { "$(OPENSSL_LIBDIR)" },
      },
      ["streamctl.signal"] = { sources = { "csrc/signal.c" }, incdirs = { "csrc" } },
      ["streamctl.curl"] = {
         sources = { "csrc/curl.c", "csrc/curl_request.c", "csrc/curl_transfer.c" },
         libraries = { "curl" },
         incdirs = { "$(CURL_INCDIR)", "csrc" },
         libdirs = { "$(CURL_LIBDIR)" },
      },
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
