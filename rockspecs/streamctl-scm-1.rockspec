rockspec_format = "3.0"
package = "streamctl"
version = "scm-1"
-- Releases are tagged vX.Y.Z; rockspecs/streamctl-X.Y.Z-1.rockspec is this
-- file with that version and the release's source tarball, streamctl-X.Y.Z.tar.gz
-- (tools/rockspecs.lua writes it: make rockspecs; make dist writes the tarball).
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
Needs OpenSSL and libcurl. Three rocks beside it, each for a part with
dependencies of its own: streamctl-cli (the streamctl command, on argparse),
streamctl-redis (the Redis store, over hiredis outside nginx) and
streamctl-emulator (a local emulator of both APIs, on nginx-lua).
]],
   license = "MIT",
   labels = { "live", "streaming", "aliyun", "zego", "openresty" },
}
dependencies = {
   "lua >= 5.1, < 5.5",
   "lua-cjson >= 2.1",
   "luafilesystem >= 1.8",  -- profile file permissions (Debian: lua-filesystem)
   -- The redis option needs the streamctl-redis rock; the command is the
   -- streamctl-cli rock.
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
      -- Lua modules: every file under src/ but the command's and the Redis
      -- store's, which their own rocks install (as the emulator's, under emulator/)
      -- (spec/house/00-package_spec.lua checks the lists)
      ["streamctl"] = "src/streamctl/init.lua",
      ["streamctl.providers"] = "src/streamctl/providers.lua",
      ["streamctl.pipeline.acs"] = "src/streamctl/pipeline/acs.lua",
      ["streamctl.pipeline.acs_account"] = "src/streamctl/pipeline/acs_account.lua",
      ["streamctl.pipeline.api"] = "src/streamctl/pipeline/api.lua",
      ["streamctl.aliyun"] = "src/streamctl/aliyun.lua",
      ["streamctl.aliyun.api"] = "src/streamctl/aliyun/api.lua",
      ["streamctl.aliyun.fields"] = "src/streamctl/aliyun/fields.lua",
      ["streamctl.aliyun.neighbours"] = "src/streamctl/aliyun/neighbours.lua",
      ["streamctl.aliyun.places"] = "src/streamctl/aliyun/places.lua",
      ["streamctl.aliyun.tasks"] = "src/streamctl/aliyun/tasks.lua",
      ["streamctl.operator.audit"] = "src/streamctl/operator/audit.lua",
      ["streamctl.edge.admission"] = "src/streamctl/edge/admission.lua",
      ["streamctl.edge.ingest"] = "src/streamctl/edge/ingest.lua",
      ["streamctl.edge.authkey"] = "src/streamctl/edge/authkey.lua",
      ["streamctl.edge.token04"] = "src/streamctl/edge/token04.lua",
      ["streamctl.pipeline.batch"] = "src/streamctl/pipeline/batch.lua",
      ["streamctl.pipeline.catalogue"] = "src/streamctl/pipeline/catalogue.lua",
      ["streamctl.pipeline.guard"] = "src/streamctl/pipeline/guard.lua",
      ["streamctl.pipeline.safety"] = "src/streamctl/pipeline/safety.lua",
      ["streamctl.pipeline.spans"] = "src/streamctl/pipeline/spans.lua",
      ["streamctl.edge.callbacks"] = "src/streamctl/edge/callbacks.lua",
      ["streamctl.edge.settings"] = "src/streamctl/edge/settings.lua",
      ["streamctl.edge.worker"] = "src/streamctl/edge/worker.lua",
      ["streamctl.edge.moderation"] = "src/streamctl/edge/moderation.lua",
      ["streamctl.edge.reactions"] = "src/streamctl/edge/reactions.lua",
      ["streamctl.edge.door"] = "src/streamctl/edge/door.lua",
      ["streamctl.edge.lastlist"] = "src/streamctl/edge/lastlist.lua",
      ["streamctl.edge.rtmp"] = "src/streamctl/edge/rtmp.lua",
      ["streamctl.edge.keeper"] = "src/streamctl/edge/keeper.lua",
      ["streamctl.edge.server"] = "src/streamctl/edge/server.lua",
      ["streamctl.pipeline.client"] = "src/streamctl/pipeline/client.lua",
      ["streamctl.pipeline.decode"] = "src/streamctl/pipeline/decode.lua",
      ["streamctl.pipeline.sign"] = "src/streamctl/pipeline/sign.lua",
      ["streamctl.pipeline.decision"] = "src/streamctl/pipeline/decision.lua",
      ["streamctl.credentials"] = "src/streamctl/credentials/init.lua",
      ["streamctl.credentials.aliyun"] = "src/streamctl/credentials/aliyun.lua",
      ["streamctl.credentials.aliyun_cli"] = "src/streamctl/credentials/aliyun_cli.lua",
      ["streamctl.credentials.cache"] = "src/streamctl/credentials/cache.lua",
      ["streamctl.credentials.ini"] = "src/streamctl/credentials/ini.lua",
      ["streamctl.credentials.refresh"] = "src/streamctl/credentials/refresh.lua",
      ["streamctl.credentials.sources"] = "src/streamctl/credentials/sources.lua",
      ["streamctl.operator.desired"] = "src/streamctl/operator/desired.lua",
      ["streamctl.base.calendar"] = "src/streamctl/base/calendar.lua",
      ["streamctl.base.encode"] = "src/streamctl/base/encode.lua",
      ["streamctl.base.errors"] = "src/streamctl/base/errors.lua",
      ["streamctl.base.json"] = "src/streamctl/base/json.lua",
      ["streamctl.operator.metrics"] = "src/streamctl/operator/metrics.lua",
      ["streamctl.base.nginx"] = "src/streamctl/base/nginx.lua",
      ["streamctl.pipeline.options"] = "src/streamctl/pipeline/options.lua",
      ["streamctl.pipeline.pacing"] = "src/streamctl/pipeline/pacing.lua",
      ["streamctl.pipeline.pages"] = "src/streamctl/pipeline/pages.lua",
      ["streamctl.pipeline.provider"] = "src/streamctl/pipeline/provider.lua",
      ["streamctl.base.samples"] = "src/streamctl/base/samples.lua",
      ["streamctl.base.jitter"] = "src/streamctl/base/jitter.lua",
      ["streamctl.pipeline.keys"] = "src/streamctl/pipeline/keys.lua",
      ["streamctl.pipeline.stores"] = "src/streamctl/pipeline/stores.lua",
      ["streamctl.engine.ratelimit"] = "src/streamctl/engine/ratelimit.lua",
      ["streamctl.operator.reconcile"] = "src/streamctl/operator/reconcile.lua",
      ["streamctl.operator.reconcile_base"] = "src/streamctl/operator/reconcile_base.lua",
      ["streamctl.operator.reconcile_aliyun"] = "src/streamctl/operator/reconcile_aliyun.lua",
      ["streamctl.operator.reconcile_zego"] = "src/streamctl/operator/reconcile_zego.lua",
      ["streamctl.base.spanrecord"] = "src/streamctl/base/spanrecord.lua",
      ["streamctl.base.redact"] = "src/streamctl/base/redact.lua",
      ["streamctl.engine.retry"] = "src/streamctl/engine/retry.lua",
      ["streamctl.engine.runner"] = "src/streamctl/engine/runner.lua",
      ["streamctl.engine.run"] = "src/streamctl/engine/run.lua",
      ["streamctl.engine.slots"] = "src/streamctl/engine/slots.lua",
      ["streamctl.engine.room"] = "src/streamctl/engine/room.lua",
      ["streamctl.engine.sequence"] = "src/streamctl/engine/sequence.lua",
      ["streamctl.store.shdict"] = "src/streamctl/store/shdict.lua",
      ["streamctl.store.replay"] = "src/streamctl/store/replay.lua",
      ["streamctl.store.decisionfile"] = "src/streamctl/store/decisionfile.lua",
      ["streamctl.store.shdictcreds"] = "src/streamctl/store/shdictcreds.lua",
      ["streamctl.credentials.sts"] = "src/streamctl/credentials/sts.lua",
      ["streamctl.base.log"] = "src/streamctl/base/log.lua",
      ["streamctl.transport.auto"] = "src/streamctl/transport/auto.lua",
      ["streamctl.transport.common"] = "src/streamctl/transport/common.lua",
      ["streamctl.transport.curl"] = "src/streamctl/transport/curl.lua",
      ["streamctl.transport.http1"] = "src/streamctl/transport/http1.lua",
      ["streamctl.transport.ngx"] = "src/streamctl/transport/ngx.lua",
      ["streamctl.base.url"] = "src/streamctl/base/url.lua",
      ["streamctl.base.tracecontext"] = "src/streamctl/base/tracecontext.lua",
      ["streamctl.trace"] = "src/streamctl/trace/init.lua",
      ["streamctl.trace.sampler"] = "src/streamctl/trace/sampler.lua",
      ["streamctl.trace.exporter"] = "src/streamctl/trace/exporter.lua",
      ["streamctl.trace.otlp"] = "src/streamctl/trace/otlp.lua",
      ["streamctl.base.validate"] = "src/streamctl/base/validate.lua",
      ["streamctl.base.xdg"] = "src/streamctl/base/xdg.lua",
      ["streamctl.version"] = "src/streamctl/version.lua",
      ["streamctl.zego"] = "src/streamctl/zego.lua",
      ["streamctl.zego.api"] = "src/streamctl/zego/api.lua",
      ["streamctl.zego.stamp"] = "src/streamctl/zego/stamp.lua",
      -- C modules
      ["streamctl.core"] = {
         sources = { "csrc/core.c", "csrc/encode.c", "csrc/sign_v1.c", "csrc/sign_v3.c", "csrc/sign_zego.c",
            "csrc/digest.c", "csrc/cipher.c", "csrc/nonce.c", "csrc/clock.c", "csrc/file.c", "csrc/lock.c",
            "csrc/fingerprint.c", "csrc/otlp.c", "csrc/otlp_record.c", "csrc/otlp_queue.c",
            "csrc/bytes.c" },
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
}
