# streamctl: one source tree, built and tested for Lua 5.4 and LuaJIT (5.1 C API).
#
#   make demo    install what is missing, build, run examples/demo.lua against the emulator
#   make test    install what is missing, build, lint, run every spec under Lua 5.4 and LuaJIT
#   make bench   signatures per second (and, with the emulator, batch throughput)
#   make check-c the C core under valgrind and ASan/UBSan

SHELL := /bin/bash
ROOT := $(CURDIR)
WARN := -Wall -Wextra -Werror
CFLAGS_BUILD := -O2 -g -fPIC $(WARN)
JIT_INC := /usr/include/luajit-2.1
ROCKSPEC := streamctl-scm-1.rockspec
TREE54 := $(ROOT)/build/5.4
TREEJIT := $(ROOT)/build/jit
SRC := $(wildcard csrc/*.c csrc/*.h)

# Debian packages the build, the tests, the emulator and the demo need.
PACKAGES := gcc make libc6-dev lua5.4 liblua5.4-dev luajit2 libluajit2-5.1-dev \
	libssl-dev openssl libcurl4-openssl-dev lua-cjson lua-busted lua-check luarocks \
	lua-socket nginx libnginx-mod-http-lua lua-resty-core lua-nginx-string valgrind

LUA_PATH_DEV := $(ROOT)/lua/?.lua;$(ROOT)/lua/?/init.lua;;
ENV54 := LUA_PATH="$(LUA_PATH_DEV)" LUA_CPATH="$(TREE54)/lib/lua/5.4/?.so;;" STREAMCTL_ROOT="$(ROOT)"
ENVJIT := LUA_PATH="$(LUA_PATH_DEV)" LUA_CPATH="$(TREEJIT)/lib/lua/5.1/?.so;;" STREAMCTL_ROOT="$(ROOT)"
BUSTED := /usr/bin/busted
SPECS ?= spec

.PHONY: all deps build build-5.4 build-jit test test-5.4 test-jit lint demo bench check-c clean

all: build

deps:
	@missing=$$(for p in $(PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing:" $$missing; \
	  if [ "$$(id -u)" != 0 ]; then SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi

build: build-5.4 build-jit

build-5.4: $(TREE54)/.stamp
build-jit: $(TREEJIT)/.stamp

$(TREE54)/.stamp: $(SRC) $(ROCKSPEC) $(wildcard bin/*)
	luarocks --lua-version=5.4 --tree $(TREE54) make $(ROCKSPEC) --deps-mode=none CFLAGS="$(CFLAGS_BUILD)" >/dev/null
	@touch $@

$(TREEJIT)/.stamp: $(SRC) $(ROCKSPEC) $(wildcard bin/*)
	luarocks --lua-version=5.1 --tree $(TREEJIT) make $(ROCKSPEC) --deps-mode=none LUA_INCDIR=$(JIT_INC) CFLAGS="$(CFLAGS_BUILD)" >/dev/null
	@touch $@

lint:
	luacheck --quiet lua bin spec examples bench

test: deps build lint test-5.4 test-jit

test-5.4: build-5.4
	$(ENV54) lua5.4 $(BUSTED) --lua=lua5.4 $(SPECS)

test-jit: build-jit
	$(ENVJIT) luajit $(BUSTED) --lua=luajit $(SPECS)

clean:
	rm -rf build csrc/*.o streamctl
