rockspec_format = "3.0"
package = "streamctl-redis"
version = "scm-1"
-- Releases are tagged vX.Y.Z; rockspecs/streamctl-redis-X.Y.Z-1.rockspec is
-- this file with that version and the release's source tarball,
-- streamctl-X.Y.Z.tar.gz (tools/rockspecs.lua writes it: make rockspecs; make
-- dist writes the tarball).
source = {
   url = "git+https://github.com/streamctl/streamctl.git",
}
description = {
   summary = "The Redis store for streamctl: one provider budget and Sequence shared by every process",
   detailed = [[
streamctl's redis option: the rate-limit and Sequence stores on Redis, which
share one provider budget across processes, nginx workers and machines.
Outside nginx (plain Lua, the command line, cron) they talk to Redis through
streamctl.redis, a blocking client over hiredis; inside nginx through
cosockets (lua-resty-redis: Debian's lua-nginx-redis, bundled by OpenResty).
]],
   license = "MIT",
   labels = { "live", "streaming", "redis" },
}
dependencies = {
   "lua >= 5.1, < 5.5",
   "streamctl",
}
external_dependencies = {
   OPENSSL = { header = "openssl/ssl.h", library = "ssl" },
   HIREDIS = { header = "hiredis/hiredis.h", library = "hiredis" },  -- Debian: libhiredis-dev
}
build = {
   type = "builtin",
   modules = {
      ["streamctl.store.redis"] = "src/streamctl/store/redis.lua",
      ["streamctl.store.redisconn"] = "src/streamctl/store/redisconn.lua",
      ["streamctl.store.redisconfig"] = "src/streamctl/store/redisconfig.lua",
      ["streamctl.store.rediscluster"] = "src/streamctl/store/rediscluster.lua",
      ["streamctl.store.redissentinel"] = "src/streamctl/store/redissentinel.lua",
      ["streamctl.store.redissession"] = "src/streamctl/store/redissession.lua",
      ["streamctl.store.redisreplay"] = "src/streamctl/store/redisreplay.lua",
      ["streamctl.store.redisstore"] = "src/streamctl/store/redisstore.lua",
      ["streamctl.store.redisrate"] = "src/streamctl/store/redisrate.lua",
      ["streamctl.store.redismemory"] = "src/streamctl/store/redismemory.lua",
      ["streamctl.store.redisrate_script"] = "src/streamctl/store/redisrate_script.lua",
      ["streamctl.store.redisseq"] = "src/streamctl/store/redisseq.lua",
      -- SHA-1 of the store's scripts (EVALSHA) from libcrypto; TLS (rediss://) from libssl, which
      -- hiredis 0.14 (Debian 12) lacks
      ["streamctl.redis"] = {
         sources = { "csrc/redis.c", "csrc/redis_resp.c", "csrc/redis_tls.c" },
         libraries = { "hiredis", "ssl", "crypto" },
         incdirs = { "$(HIREDIS_INCDIR)", "$(OPENSSL_INCDIR)", "csrc" },
         libdirs = { "$(HIREDIS_LIBDIR)", "$(OPENSSL_LIBDIR)" },
      },
   },
}
