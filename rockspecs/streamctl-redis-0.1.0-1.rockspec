rockspec_format = "3.0"
package = "streamctl-redis"
version = "0.1.0-1"
-- Release 0.1.0, made from rockspecs/streamctl-redis-scm-1.rockspec by tools/rockspecs.lua
-- (make rockspecs): edit that file, not this one.
source = {
   url = "git+https://github.com/streamctl/streamctl.git",
   tag = "v0.1.0",
}
description = {
   summary = "Redis over hiredis for streamctl outside nginx (the redis option's shared budgets)",
   detailed = [[
streamctl.redis: a blocking Redis client over hiredis, which streamctl's Redis
store uses outside nginx (plain Lua, the command line, cron) to share one
provider budget across processes and machines. Inside nginx the store uses
cosockets (lua-resty-redis) and does not need this rock.
]],
   license = "MIT",
   labels = { "live", "streaming", "redis" },
}
dependencies = {
   "lua >= 5.1, < 5.5",
   "streamctl == 0.1.0",
}
external_dependencies = {
   OPENSSL = { header = "openssl/evp.h", library = "crypto" },
   HIREDIS = { header = "hiredis/hiredis.h", library = "hiredis" },  -- Debian: libhiredis-dev
}
build = {
   type = "builtin",
   modules = {
      -- SHA-1 of the store's scripts (EVALSHA) from libcrypto
      ["streamctl.redis"] = {
         sources = { "csrc/redis.c" },
         libraries = { "hiredis", "crypto" },
         incdirs = { "$(HIREDIS_INCDIR)", "$(OPENSSL_INCDIR)", "csrc" },
         libdirs = { "$(HIREDIS_LIBDIR)", "$(OPENSSL_LIBDIR)" },
      },
   },
}
