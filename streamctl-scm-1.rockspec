rockspec_format = "3.0"
package = "streamctl"
version = "scm-1"
source = {
   url = "git+file:///streamctl",
}
description = {
   summary = "Control live streams on Alibaba Cloud ApsaraVideo Live and ZEGOCLOUD from Lua",
   detailed = [[
streamctl signs and sends stream-control requests (resume, forbid, pull-to-push
relays) to Alibaba Cloud ApsaraVideo Live and ZEGOCLOUD Server API v2. A C core
does the signing over OpenSSL and the HTTP over libcurl; Lua does validation,
batching, rate limiting and retries. Builds for Lua 5.1 (LuaJIT/OpenResty) to 5.4.
Ships a local emulator of both APIs (nginx + Lua) for offline work and tests.
]],
   license = "MIT",
   labels = { "live", "streaming", "aliyun", "zego", "openresty" },
}
dependencies = {
   "lua >= 5.1, < 5.5",
   "lua-cjson >= 2.1",
}
external_dependencies = {
   OPENSSL = { header = "openssl/evp.h", library = "crypto" },
   CURL = { header = "curl/curl.h", library = "curl" },
}
build = {
   type = "builtin",
   modules = {
      ["streamctl.core"] = {
         sources = { "csrc/core.c" },
         libraries = { "crypto" },
         incdirs = { "$(OPENSSL_INCDIR)", "csrc" },
         libdirs = { "$(OPENSSL_LIBDIR)" },
      },
      ["streamctl.curl"] = {
         sources = { "csrc/curl.c" },
         libraries = { "curl" },
         incdirs = { "$(CURL_INCDIR)", "csrc" },
         libdirs = { "$(CURL_LIBDIR)" },
      },
   },
   install = {
      bin = {
         ["streamctl-emulator"] = "bin/streamctl-emulator",
      },
   },
}
