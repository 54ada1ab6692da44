rockspec_format = "3.0"
package = "streamctl"
version = "0.1.0-1"
-- Release 0.1.0, made from rockspecs/streamctl-scm-1.rockspec by tools/rockspecs.lua
-- (make rockspecs): edit that file, not this one.
source = {
   url = "git+https://github.com/streamctl/streamctl.git",
   tag = "v0.1.0",
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
      ["streamctl.acs"] = "lua/streamctl/acs.lua",
      ["streamctl.aliyun"] = "lua/streamctl/aliyun.lua",
      ["streamctl.audit"] = "lua/streamctl/audit.lua",
      ["streamctl.authkey"] = "lua/streamctl/authkey.lua",
      ["streamctl.batch"] = "lua/streamctl/batch.lua",
      ["streamctl.callbacks"] = "lua/streamctl/callbacks.lua",
      ["streamctl.cli"] = "lua/streamctl/cli.lua",
      ["streamctl.cli.input"] = "lua/streamctl/cli/input.lua",
      ["streamctl.cli.emulator"] = "lua/streamctl/cli/emulator.lua",
      ["streamctl.client"] = "lua/streamctl/client.lua",
      ["streamctl.credentials"] = "lua/streamctl/credentials.lua",
      ["streamctl.credentials.aliyun"] = "lua/streamctl/credentials/aliyun.lua",
      ["streamctl.credentials.refresh"] = "lua/streamctl/credentials/refresh.lua",
      ["streamctl.credentials.sources"] = "lua/streamctl/credentials/sources.lua",
      ["streamctl.desired"] = "lua/streamctl/desired.lua",
      ["streamctl.encode"] = "lua/streamctl/encode.lua",
      ["streamctl.errors"] = "lua/streamctl/errors.lua",
      -- where the emulator listens and its accounts (the command's --emulator);
      -- the emulator itself is the streamctl-emulator rock
      ["streamctl.json"] = "lua/streamctl/json.lua",
      ["streamctl.metrics"] = "lua/streamctl/metrics.lua",
      ["streamctl.nginx"] = "lua/streamctl/nginx.lua",
      ["streamctl.options"] = "lua/streamctl/options.lua",
      ["streamctl.pacing"] = "lua/streamctl/pacing.lua",
      ["streamctl.samples"] = "lua/streamctl/samples.lua",
      ["streamctl.jitter"] = "lua/streamctl/jitter.lua",
      ["streamctl.keys"] = "lua/streamctl/keys.lua",
      ["streamctl.stores"] = "lua/streamctl/stores.lua",
      ["streamctl.ratelimit"] = "lua/streamctl/ratelimit.lua",
      ["streamctl.reconcile"] = "lua/streamctl/reconcile.lua",
      ["streamctl.redact"] = "lua/streamctl/redact.lua",
      ["streamctl.retry"] = "lua/streamctl/retry.lua",
      ["streamctl.runner"] = "lua/streamctl/runner.lua",
      ["streamctl.sequence"] = "lua/streamctl/sequence.lua",
      ["streamctl.store.shdict"] = "lua/streamctl/store/shdict.lua",
      ["streamctl.sts"] = "lua/streamctl/sts.lua",
      ["streamctl.store.redis"] = "lua/streamctl/store/redis.lua",
      ["streamctl.store.redisconn"] = "lua/streamctl/store/redisconn.lua",
      ["streamctl.log"] = "lua/streamctl/log.lua",
      ["streamctl.transport.auto"] = "lua/streamctl/transport/auto.lua",
      ["streamctl.transport.curl"] = "lua/streamctl/transport/curl.lua",
      ["streamctl.transport.ngx"] = "lua/streamctl/transport/ngx.lua",
      ["streamctl.url"] = "lua/streamctl/url.lua",
      ["streamctl.validate"] = "lua/streamctl/validate.lua",
      ["streamctl.version"] = "lua/streamctl/version.lua",
      ["streamctl.zego"] = "lua/streamctl/zego.lua",
      -- C modules
      ["streamctl.core"] = {
         sources = { "csrc/core.c", "csrc/file.c", "csrc/fingerprint.c" },
         libraries = { "crypto" },
         incdirs = { "$(OPENSSL_INCDIR)", "csrc" },
         libdirs = { "$(OPENSSL_LIBDIR)" },
      },
      ["streamctl.signal"] = { sources = { "csrc/signal.c" }, incdirs = { "csrc" } },
      ["streamctl.curl"] = {
         sources = { "csrc/curl.c" },
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
