# streamctl: one source tree, built and tested for Lua 5.4 and LuaJIT (5.1 C API).
#
#   make demo    install what is missing, build, run examples/demo.lua against the emulator
#   make openresty-demo  the OpenResty example against the emulator, for the curl lines it prints (-stop: ends it;
#                OPENRESTY_DEMO_ARGS="--port N --emulator-ports A,Z,AT,ZT": its ports)
#   make check-unit  the quick specs that start no server (a line '-- tier: unit'), under Lua 5.4 (seconds)
#   make check   the loop after every change: build, lint, every spec under Lua 5.4 and LuaJIT, side by side,
#                but the fault matrices (a line '-- tier: test'); the heavy ones, many processes at a cap,
#                under Lua 5.4 only (make test runs them all under both)
#                (no C checks, fuzz or chaos)
#   make test    what CI runs (tools/test-gate.sh): install what is missing, build, lint, then one pool:
#                every spec under Lua 5.4 and LuaJIT, and the files where our C runs in process against
#                ASan/UBSan builds (under valgrind those of spec/valgrind.txt), with static analysis,
#                the docs check and the fuzz build beside it; then fuzz-smoke beside chaos-short
#   make test-5.4, test-jit, valgrind, asan  one phase of the specs alone (SPECS=...: those files)
#   make doc     the API reference (docs/api), the two man pages, the bash completion and docs/methods.md
#   make provider-api  the providers' published methods as data, from their metadata (ALIYUN_META, ZEGO_DOCS)
#   make bench   the figures of docs/performance.md into bench/results.json and bench/pacing.svg:
#                signing beside bare OpenSSL, batches of 1,000 to 1,000,000 streams, round trips,
#                batches at the caps, memory, load time
#   make check-c the files where our C runs in the spec's process (those without a line '-- sanitizers: none')
#                against ASan/UBSan builds, and spec/valgrind.txt's under valgrind (make valgrind, make asan)
#   make valgrind-set  chooses spec/valgrind.txt: the files that reach all that C (gcov; after csrc/ changes)
#   make fuzz    libFuzzer on the encoders, signers and parsers (FUZZ_SECONDS each; make fuzz-smoke: 5 s)
#   make sim     the deterministic simulation (docs/development/simulation.md): SIM_SEEDS seeds (1500;
#                SIM_SECONDS=n: n s of them), every invariant checked after each; SIM_SEED=n replays one with its
#                trace; make mutants: planted bugs each caught within its own seed count
#   make check-install  README "Install" run block by block on a pristine Debian 12 root (debootstrap, a network
#                namespace of its own), then man, completion, plain luajit and the OpenResty example on what they
#                installed (tools/installed-check.sh); not in make test: root, the mirror, about two minutes
#   make sizes   the library's file sizes and longest functions, the emulator and bin/ apart (bench/sizes.sh; SIZES_TOP: 15),
#                and the pages' budgets (tools/pages.sh)
#   make under-load  the gate under load: make check three times, then make test three times, each in a
#                fresh clone of HEAD, four busy loops beside them (tools/under-load.sh; UNDER_LOAD_TARGETS,
#                UNDER_LOAD_LOOPS); stops at the first red run; about 2.5 hours on 2 cores
#   make gate-times  each tier's time and file count from a fresh clone of HEAD, into bench/gate-times.json
#                (tools/gate-times.sh); about 30 minutes, on an idle machine
#   make chaos   real emulator, Redis and nginx under random faults, restarts and reloads, five client processes on
#                one account, then the invariants checked (CHAOS_SECONDS: 300; CHAOS_SEED replays; make chaos-short: 60 s)

SHELL := /bin/bash
ROOT := $(CURDIR)
WARN := -Wall -Wextra -Werror
CFLAGS_BUILD := -O2 -g -fPIC $(WARN)
# The four rocks (rockspecs/): streamctl (the library), streamctl-cli (the
# command: argparse), streamctl-redis (the Redis store: hiredis) and
# streamctl-emulator (nginx-lua). The development trees get all four, each in a tree
# of its own as README "Install" does for LuaJIT (LR_CONFIG: luarocks sees
# Debian's Lua packages, and the trees' commands find their trees).
LR_CONFIG := rockspecs/luarocks-config.lua
ROCKSPECS := rockspecs/streamctl-scm-1.rockspec rockspecs/streamctl-cli-scm-1.rockspec \
	rockspecs/streamctl-redis-scm-1.rockspec rockspecs/streamctl-emulator-scm-1.rockspec
TREE54 := $(ROOT)/build/5.4
TREEJIT := $(ROOT)/build/jit
SRC := $(wildcard csrc/*.c csrc/*.h)
# what the rock installs besides the C: a change to any of it reinstalls the trees
INSTALLED := $(shell find src emulator/src -name '*.lua') $(wildcard bin/* emulator/bin/*)

# Debian packages: what make demo needs (the Lua 5.4 build and the emulator),
# and what the rest needs besides (LuaJIT, the tests, the C checks, the docs,
# Redis, the benchmarks).
DEMO_PACKAGES := gcc make libc6-dev lua5.4 liblua5.4-dev libssl-dev openssl libcurl4-openssl-dev lua-cjson \
	lua-argparse lua-filesystem luarocks libhiredis-dev lua-socket nginx libnginx-mod-http-lua lua-resty-core \
	lua-nginx-string
OPENRESTY_DEMO_PACKAGES := $(DEMO_PACKAGES) luajit2 libluajit2-5.1-dev curl
# (make bench alone: wrk against the edge's door, bench/admission.sh; the official Node SDK beside
# streamctl, bench/percall.lua, never the product's: installed when no node and npm are on the PATH,
# which a Node from elsewhere may already give)
BENCH_PACKAGES := wrk
BENCH_NODE_PACKAGES := nodejs npm
PACKAGES := $(DEMO_PACKAGES) luajit2 libluajit2-5.1-dev lua-busted lua-check lua-sec valgrind lua-ldoc help2man groff-base \
	cppcheck clang-tidy clang libclang-rt-14-dev redis-server lua-nginx-redis gnuplot-nox curl universal-ctags \
	prometheus zip procps python3-cryptography protobuf-compiler python3-protobuf lua-yaml \
	libnginx-mod-rtmp ffmpeg

LUA_PATH_DEV := $(ROOT)/src/?.lua;$(ROOT)/src/?/init.lua;$(ROOT)/emulator/src/?.lua;$(ROOT)/emulator/src/?/init.lua;;
ENV54 := LUA_PATH="$(LUA_PATH_DEV)" LUA_CPATH="$(TREE54)/lib/lua/5.4/?.so;;" STREAMCTL_ROOT="$(ROOT)"
ENVJIT := LUA_PATH="$(LUA_PATH_DEV)" LUA_CPATH="$(TREEJIT)/lib/lua/5.1/?.so;;" STREAMCTL_ROOT="$(ROOT)"
# The spec files a run takes (empty: every spec/*_spec.lua the phase runs),
# and how many run at once: each in a busted process of its own
# (tools/run-specs.sh). Most wait on servers, pacing and children, so more
# files run at once than there are cores; valgrind's and ASan's are
# CPU-bound and run at nice 10 (make test: a pool for Lua 5.4 and LuaJIT,
# then one for valgrind and ASan). The unit tier is CPU-bound too: as
# many as there are cores.
SPECS ?=
CORES := $(shell nproc 2>/dev/null || echo 2)
UNIT_JOBS ?= $(CORES)
SPEC_JOBS ?= 8
TEST_JOBS ?= 8
VALGRIND_JOBS ?= $(CORES)
ASAN_JOBS ?= $(CORES)
RUN_SPECS = tools/run-specs.sh $(1) $(2) $(SPECS)
COMMA := ,
# A tier's recipe: its steps (sub-makes, so that the time it says counts
# them), then its specs; it says what it ran and how long it took.
TIER = @t0=$$(date +%s); $(MAKE) --no-print-directory $(1) && { $(2); }; rc=$$?; \
	echo "make $@: $(3), in $$(( $$(date +%s) - t0 )) s$$( [ $$rc = 0 ] || echo ': FAILED' )"; exit $$rc

.PHONY: all check-unit deps demo-deps openresty-demo-deps openresty-demo openresty-demo-stop build build-5.4 build-jit rockspecs check test test-5.4 test-jit lint static doc check-doc demo bench profile check-c \
	valgrind valgrind-set asan asan-build \
	provider-api fuzz fuzz-build fuzz-smoke chaos chaos-short sim mutants sizes check-install deb check-deb dist under-load clean \
	gate-times

all: build

# Installs what is missing of $(1) with apt-get (through sudo unless root).
INSTALL_MISSING = @missing=$$(for p in $(1); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null \
	  | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing with apt-get (a few minutes on a new machine):" $$missing; \
	  if [ "$$(id -u)" != 0 ]; then SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q --no-install-recommends $$missing; \
	fi
deps:
	$(call INSTALL_MISSING,$(PACKAGES))
demo-deps:
	$(call INSTALL_MISSING,$(DEMO_PACKAGES))
openresty-demo-deps:
	$(call INSTALL_MISSING,$(OPENRESTY_DEMO_PACKAGES))
bench-deps: deps
	$(call INSTALL_MISSING,$(BENCH_PACKAGES))
	@command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || $(MAKE) --no-print-directory bench-node
bench-node:
	$(call INSTALL_MISSING,$(BENCH_NODE_PACKAGES))

build: build-5.4 build-jit

build-5.4: $(TREE54)/.stamp
build-jit: $(TREEJIT)/.stamp

# One build at a time (BUILD_LOCK): luarocks compiles both trees' C in csrc/
# itself, so two builds at once (make -j, or two makes in one checkout) would
# mix their objects. Its builtin backend leaves the modules it linked in
# ./streamctl/ too: removed, or a Lua started in the checkout would load them
# through `./?.so`, the other interpreter's build included.
BUILD_LOCK := flock $(ROOT)/build/.build-lock
$(TREE54)/.stamp: $(SRC) $(ROCKSPECS) $(LR_CONFIG) $(INSTALLED)
	@mkdir -p build
	$(BUILD_LOCK) sh -c 'for r in $(ROCKSPECS); do \
	  LUAROCKS_CONFIG=$(LR_CONFIG) luarocks --lua-version=5.4 --tree $(TREE54) make $$r \
	    CFLAGS="$(CFLAGS_BUILD)" >/dev/null || exit 1; \
	done; rm -rf streamctl'
	@touch $@

$(TREEJIT)/.stamp: $(SRC) $(ROCKSPECS) $(LR_CONFIG) $(INSTALLED)
	@mkdir -p build
	$(BUILD_LOCK) sh -c 'for r in $(ROCKSPECS); do \
	  LUAROCKS_CONFIG=$(LR_CONFIG) luarocks --lua-version=5.1 --tree $(TREEJIT) make $$r \
	    CFLAGS="$(CFLAGS_BUILD)" >/dev/null || exit 1; \
	done; rm -rf streamctl'
	@touch $@

# The release rockspecs (rockspecs/NAME-X.Y.Z-1.rockspec) from the scm ones
# and src/streamctl/version.lua (CHANGELOG.md: when the version changes).
rockspecs:
	lua5.4 tools/rockspecs.lua

lint:
	@echo "== lint: luacheck"
	luacheck --quiet $$([ -t 1 ] || echo --no-color) src bin emulator spec examples bench tools
	@echo "== lint: what LuaJIT runs parses under it (tools/jit-parse.sh)"
	@tools/jit-parse.sh src emulator/src spec examples
	@echo "== lint: the house's walls (tools/layers.lua: requires point down, the core names no optional part)"
	@lua5.4 tools/layers.lua
	@echo "== lint: the house's size limits (make sizes)"
	@mkdir -p build && bench/sizes.sh 0 > build/sizes.txt || { sed -n '/over the limits/,$$p' build/sizes.txt; exit 1; }
	@echo "== lint: the pages' budgets (tools/pages.sh)"
	@tools/pages.sh > build/pages.txt; rc=$$?; sed 1d build/pages.txt; exit $$rc

sizes:
	@bench/sizes.sh $(or $(SIZES_TOP),15)
	@tools/pages.sh

# Static analysis of the C: cppcheck, and clang-tidy with .clang-tidy's checks
# (warnings are errors). Suppressions are inline, each with its reason.
static:
	@echo "== static analysis: cppcheck and clang-tidy on csrc/"
	cppcheck --enable=warning,style,performance,portability --error-exitcode=1 --inline-suppr --quiet \
	  -U__clang_analyzer__ -I csrc csrc/
	clang-tidy --quiet csrc/*.c -- -I csrc -I /usr/include/lua5.4

# The tiers (docs/development/README.md): check-unit, the quick specs that start
# no server (Lua 5.4: seconds); check, the loop after every change (build,
# lint, every spec but the fault matrices under Lua 5.4 and LuaJIT in one
# pool); test, what CI runs (tools/test-gate.sh: installs what is missing;
# build, lint, the ASan builds; one pool of every spec under Lua 5.4 and
# LuaJIT and the files where our C runs in process under valgrind and
# ASan/UBSan, static analysis, the docs and the fuzz build beside it;
# fuzz-smoke and chaos-short). Each says what it ran and how long it took.
check-unit:
	$(call TIER,build-5.4,tools/run-specs.sh -u lua5.4 $(UNIT_JOBS) $(SPECS),the unit tier under Lua 5.4)
check:
	$(call TIER,build lint,HEAVY_MODES=lua5.4 tools/run-specs.sh -c lua5.4$(COMMA)luajit $(SPEC_JOBS) $(SPECS); r=$$?; \
	  tools/spec-summary.sh lua5.4 luajit; [ $$r = 0 ],build$(COMMA) lint$(COMMA) every spec under Lua 5.4 and LuaJIT but the fault \
	  matrices (the heavy ones under Lua 5.4: make test runs them all under both))
test:
	@MAKE="$(MAKE)" TEST_JOBS=$(TEST_JOBS) SPECS="$(SPECS)" tools/test-gate.sh
# Each tier's time and file count, from a fresh clone of HEAD, into
# bench/gate-times.json (tools/gate-times.sh; about 30 minutes, an idle machine).
gate-times:
	@tools/gate-times.sh
# The gate under load (docs/development/README.md): the tiers each in a fresh
# clone of HEAD, one after the other, busy loops beside the whole series,
# ended at the first red run; a line per run into build/under-load/summary.txt
# (tools/under-load.sh). Not in make test: it runs make test.
UNDER_LOAD_TARGETS ?= check check check test test test
UNDER_LOAD_LOOPS ?= 4
under-load:
	@tools/under-load.sh -l $(UNDER_LOAD_LOOPS) $(UNDER_LOAD_TARGETS)
# The API reference (LDoc, from the modules' doc comments) into docs/api, and the
# command's man page and bash completion, made from the command itself (both
# are installed by the rock, so they are kept in the repository).
STREAMCTL54 := lua5.4 $(ROOT)/bin/streamctl
MAN_NAME := control live streams on Alibaba Cloud ApsaraVideo Live and ZEGOCLOUD
# streamctl-emulator's page, from its --help (installed by the Debian package)
EMULATOR_MAN = help2man --no-info --no-discard-stderr --section=1 \
	  --name="local emulator of the Alibaba Cloud Live and ZEGOCLOUD APIs, for streamctl" \
	  --version-string="$$($(ENV54) lua5.4 -e 'io.write(require("streamctl.version")._VERSION)')" \
	  "lua5.4 $(ROOT)/emulator/bin/streamctl-emulator"
doc: build-5.4
	rm -rf docs/api
	ldoc . | grep -v '^reading configuration\|^output written' | { ! grep . ; }
	@mkdir -p build
	$(ENV54) lua5.4 -e 'io.write(require("streamctl.cli").man_commands())' > build/commands.h2m
	SOURCE_DATE_EPOCH=$$(git log -1 --format=%ct 2>/dev/null || date +%s) $(ENV54) help2man --no-info \
	  --version-string="$$($(ENV54) lua5.4 -e 'io.write(require("streamctl.version")._VERSION)')" \
	  --name="$(MAN_NAME)" --section=1 --include=docs/streamctl.h2m --include=build/commands.h2m \
	  "$(STREAMCTL54)" > docs/streamctl.1
	SOURCE_DATE_EPOCH=$$(git log -1 --format=%ct 2>/dev/null || date +%s) $(ENV54) $(EMULATOR_MAN) \
	  > docs/streamctl-emulator.1
	$(ENV54) $(STREAMCTL54) completion bash > docs/streamctl.bash
	lua5.4 tools/methods-page.lua . > docs/methods.md
	@echo "docs/api/index.html, docs/streamctl.1, docs/streamctl-emulator.1, docs/streamctl.bash, docs/methods.md"

# The providers' published methods as data (tools/provider-api.lua), from
# snapshots of their metadata: ALIYUN_META a copy of
# github.com/aliyun/aliyun-openapi-meta, ZEGO_DOCS one of
# github.com/ZEGOCLOUD/docs_all; each one's commit and date read by git
# when it is a checkout, else given (ALIYUN_COMMIT, ALIYUN_DATE, ZEGO_COMMIT,
# ZEGO_DATE). Then the methods page (docs/methods.md).
provider-api:
	@test -d "$(ALIYUN_META)/metadatas/live" && test -d "$(ZEGO_DOCS)/core_products" \
	  || { echo "make provider-api ALIYUN_META=DIR ZEGO_DOCS=DIR (copies of the two repositories)"; exit 2; }
	@mkdir -p build
	lua5.4 tools/provider-api.lua aliyun "$(ALIYUN_META)" \
	  "$(or $(ALIYUN_COMMIT),$$(git -C "$(ALIYUN_META)" log -1 --format=%H))" \
	  "$(or $(ALIYUN_DATE),$$(git -C "$(ALIYUN_META)" log -1 --format=%cs))" > build/aliyun-api.lua
	lua5.4 tools/provider-api.lua zego "$(ZEGO_DOCS)" \
	  "$(or $(ZEGO_COMMIT),$$(git -C "$(ZEGO_DOCS)" log -1 --format=%H))" \
	  "$(or $(ZEGO_DATE),$$(git -C "$(ZEGO_DOCS)" log -1 --format=%cs))" > build/zego-api.lua
	mv build/aliyun-api.lua src/streamctl/aliyun/api.lua && mv build/zego-api.lua src/streamctl/zego/api.lua
	lua5.4 tools/methods-page.lua . > docs/methods.md

# In make test: LDoc warning-free, and the man page and completion in the
# repository the ones the command makes now.
DOC_TMP := $(ROOT)/build/doc-check
check-doc: build-5.4
	@rm -rf $(DOC_TMP) && mkdir -p $(DOC_TMP)
	@ldoc -d $(DOC_TMP)/api . 2>&1 | grep -v '^reading configuration\|^output written' | { ! grep . ; } \
	  || { echo "ldoc warns (above): fix the doc comments"; exit 1; }
	@$(ENV54) lua5.4 -e 'io.write(require("streamctl.cli").man_commands())' > $(DOC_TMP)/commands.h2m
	@$(ENV54) help2man --no-info --name="$(MAN_NAME)" --section=1 --include=docs/streamctl.h2m \
	  --include=$(DOC_TMP)/commands.h2m "$(STREAMCTL54)" | grep -v '^\.TH ' > $(DOC_TMP)/streamctl.1
	@grep -v '^\.TH ' docs/streamctl.1 | diff -u - $(DOC_TMP)/streamctl.1 \
	  || { echo "docs/streamctl.1 is out of date: run make doc"; exit 1; }
	@$(ENV54) $(EMULATOR_MAN) | grep -v '^\.TH ' | diff -u <(grep -v '^\.TH ' docs/streamctl-emulator.1) - \
	  || { echo "docs/streamctl-emulator.1 is out of date: run make doc"; exit 1; }
	@$(ENV54) $(STREAMCTL54) completion bash | diff -u docs/streamctl.bash - \
	  || { echo "docs/streamctl.bash is out of date: run make doc"; exit 1; }
	@for page in docs/streamctl.1 docs/streamctl-emulator.1; do \
	  groff -man -Tutf8 -ww -z -rLL=78n -rLT=78n $$page 2>&1 | { ! grep . ; } \
	    || { echo "$$page: groff warns when man shows it 80 columns wide (above)"; exit 1; }; \
	done
	@echo "docs: ldoc clean, man page and completion current, both pages without a warning at 80 columns"

# One phase alone (its files $(SPEC_JOBS) at once; the logs are in
# build/specs-MODE/, and a failure names its log, its ports and how to
# replay it).
test-5.4: build-5.4 build-jit
	@$(call RUN_SPECS,lua5.4,$(SPEC_JOBS))

test-jit: build-jit
	@$(call RUN_SPECS,luajit,$(SPEC_JOBS))

# The demo runs against an emulator of its own, in its own directory, on
# ports free at the time (so one already running, such as the command line's
# on the default ports, is left alone), or on DEMO_PORTS="A Z AT ZT" (Aliyun
# HTTP, ZEGO HTTP, Aliyun HTTPS, ZEGO HTTPS: four distinct ports 1..65535,
# refused naming DEMO_PORTS otherwise, before the emulator starts).
DEMO_DIR := $(ROOT)/build/demo-emulator
EMULATOR54 := $(ENV54) $(TREE54)/bin/streamctl-emulator
FREE_PORTS := $(ENV54) LUA_PATH="$(ROOT)/?.lua;$(LUA_PATH_DEV)" lua5.4 -e \
	'io.write(table.concat(require("spec.helpers.emulator").free_ports(4), " "))'

demo: demo-deps build-5.4
	@set -e; ports='$(subst ','\'',$(DEMO_PORTS))'; read -ra w <<< "$$ports" || true; \
	if [ $${#w[@]} = 0 ]; then set -- $$($(FREE_PORTS) 2>/dev/null); \
	  [ $$# = 4 ] || { echo "make demo: could not find 4 free ports (name them: DEMO_PORTS=\"A Z AT ZT\")" >&2; exit 1; }; \
	else ok=$$([ $${#w[@]} = 4 ] && [ "$$(printf '%s\n' "$${w[@]}" | sort -u | wc -l)" = 4 ] && echo y || true); \
	  for p in "$${w[@]}"; do [[ $$p =~ ^[1-9][0-9]{0,4}$$ ]] && [ "$$p" -le 65535 ] || ok=; done; \
	  [ -n "$$ok" ] || { echo "make demo: DEMO_PORTS=\"$$ports\": not four distinct ports 1..65535" \
	    "(Aliyun HTTP, ZEGO HTTP, Aliyun HTTPS, ZEGO HTTPS: DEMO_PORTS=\"28080 28081 28443 28444\")" >&2; exit 2; }; \
	  set -- "$${w[@]}"; fi; \
	$(EMULATOR54) stop --dir $(DEMO_DIR) >/dev/null 2>&1 || true; \
	$(EMULATOR54) start --dir $(DEMO_DIR) --aliyun-port $$1 --zego-port $$2 --aliyun-tls-port $$3 --zego-tls-port $$4; \
	status=0; $(ENV54) STREAMCTL_EMULATOR_DIR=$(DEMO_DIR) STREAMCTL_ALIYUN_ENDPOINT=https://127.0.0.1:$$3 \
	  STREAMCTL_ZEGO_ENDPOINT=https://127.0.0.1:$$4 lua5.4 examples/demo.lua || status=$$?; \
	$(EMULATOR54) stop --dir $(DEMO_DIR) >/dev/null; \
	[ $$status != 0 ] || { echo; echo "Next: make demo put no streamctl on your PATH (it ran the build in build/5.4)."; \
	  echo "README.md \"Install\" installs it; \"Quick starts\" then runs it against an emulator."; }; exit $$status

# The OpenResty example (examples/openresty/) against an emulator of its own,
# on 127.0.0.1:8080, ready for the curl lines it prints with a throwaway token
# (examples/openresty/run.sh; docs/openresty.md). OPENRESTY_DEMO_ARGS: run.sh
# start's flags (--port N, --emulator-ports A,Z,AT,ZT, --emulator-dir DIR).
# make openresty-demo-stop stops both.
OPENRESTY_DEMO_ARGS ?=
openresty-demo: openresty-demo-deps build-jit
	@STREAMCTL_DEMO_STOP="make openresty-demo-stop" examples/openresty/run.sh start $(OPENRESTY_DEMO_ARGS)
openresty-demo-stop:
	@examples/openresty/run.sh stop

# Figures, never pass/fail (docs/performance.md): signing beside bare OpenSSL
# (bench/sign.lua, bench/floor.c) on both interpreters; against the emulator,
# batches at the caps with bench/pacing.svg (bench/batch.lua), three processes
# on one account without and with Redis (bench/redis.lua), a budget shared
# with strangers against issue 48's goals (bench/strangers.lua), memory and load
# time (bench/memory.lua), round trips beside a bare request, one nginx worker
# and a shell script (bench/roundtrip.lua), a call's CPU with tracing off,
# on, sampled out and the collector down (bench/tracing.lua), a call's CPU and
# its steps beside libcurl alone from C (bench/percall_floor.c) and the official
# Node SDK (bench/percall.lua), and the soak
# (bench/soak.lua).
# bench/report.lua gathers the figures into bench/results.json and one table.
# bench/run.sh runs them in order: the emulator on free ports (a block
# claimed as the specs claim theirs), and whatever it started stopped
# however the run ends (Ctrl-C included).
bench: bench-deps build
	@bench/run.sh

# Where one call's CPU goes, in machine instructions by library (callgrind;
# docs/performance.md, "Where a call's time goes"): bench/profile/run.sh.
profile: build
	@bench/profile/run.sh

# The suite (emulator, nginx and command-line specs included) against the
# C modules built with ASan/UBSan, the runtime preloaded (any report aborts
# the run), and the files of spec/valgrind.txt under valgrind (no definite
# leaks, no invalid reads or writes: exit 99 otherwise). Lua 5.4: valgrind and the sanitizers see the
# test process and the C it loads; nginx, the emulator and the installed
# command run in processes of their own.
# The specs each leaves out, and why: tools/run-specs.sh (valgrind, asan).
SAN_DIR := $(ROOT)/build/asan
# streamctl.curl's, streamctl.redis' and streamctl.core's sources (the rockspecs list the same)
CURL_SRC := csrc/curl.c csrc/curl_request.c csrc/curl_transfer.c
REDIS_SRC := csrc/redis.c csrc/redis_resp.c csrc/redis_tls.c
CORE_SRC := csrc/core.c csrc/encode.c csrc/sign_v1.c csrc/sign_v3.c csrc/sign_zego.c csrc/digest.c csrc/cipher.c csrc/nonce.c csrc/clock.c csrc/file.c csrc/lock.c csrc/fingerprint.c csrc/otlp.c csrc/otlp_record.c csrc/otlp_queue.c csrc/bytes.c
SIGNAL_SRC := csrc/signal.c
# (the libraries each links, for the builds made here: the sanitizers', gcov's)
CORE_LIBS := -lcrypto
CURL_LIBS := -lcurl
REDIS_LIBS := -lhiredis -lssl -lcrypto
SAN_FLAGS := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all $(WARN)

valgrind: deps build
	@$(call RUN_SPECS,valgrind,$(VALGRIND_JOBS))
asan-build: deps build
	@mkdir -p $(SAN_DIR)/streamctl
	gcc $(SAN_FLAGS) -shared -fPIC -I/usr/include/lua5.4 -Icsrc $(CORE_SRC) -o $(SAN_DIR)/streamctl/core.so $(CORE_LIBS)
	gcc $(SAN_FLAGS) -shared -fPIC -I/usr/include/lua5.4 -Icsrc $(CURL_SRC) -o $(SAN_DIR)/streamctl/curl.so $(CURL_LIBS)
	gcc $(SAN_FLAGS) -shared -fPIC -I/usr/include/lua5.4 -Icsrc $(SIGNAL_SRC) -o $(SAN_DIR)/streamctl/signal.so
	gcc $(SAN_FLAGS) -shared -fPIC -I/usr/include/lua5.4 -Icsrc $(REDIS_SRC) -o $(SAN_DIR)/streamctl/redis.so $(REDIS_LIBS)
asan: asan-build
	@$(call RUN_SPECS,asan,$(ASAN_JOBS))
# The files valgrind runs, spec/valgrind.txt: those that together reach every
# line and branch of csrc/ the ASan files reach in their own process (gcov;
# tools/valgrind-set.sh). Run it when csrc/ changes: spec/house/73 says so.
valgrind-set: deps build
	@CORE_SRC="$(CORE_SRC)" CURL_SRC="$(CURL_SRC)" REDIS_SRC="$(REDIS_SRC)" SIGNAL_SRC="$(SIGNAL_SRC)" \
	  CORE_LIBS="$(CORE_LIBS)" CURL_LIBS="$(CURL_LIBS)" REDIS_LIBS="$(REDIS_LIBS)" tools/valgrind-set.sh
check-c: valgrind asan

# libFuzzer harnesses (clang): fuzz/harness.c with the C modules, built with
# the fuzzer and ASan/UBSan, one binary per fuzz/targets/NAME.lua. `make fuzz`
# runs each for FUZZ_SECONDS (60) from a copy of its seed corpus in
# fuzz/corpus/NAME and prints its executions; `make fuzz-smoke` (in make test)
# does the same for 5 s. A finding leaves crash-* in build/fuzz: add it to the
# corpus and to a spec once fixed.
FUZZ_TARGETS := percent sign_v1 sign_v3 zego time response ngx_http curl_headers callbacks state token
FUZZ_DIR := $(ROOT)/build/fuzz
FUZZ_SECONDS ?= 60
FUZZ_FLAGS := -O1 -g -fno-omit-frame-pointer -fno-sanitize-recover=all -Wall -Wextra -Werror \
	-I/usr/include/lua5.4 -Icsrc
FUZZ_CFLAGS := $(FUZZ_FLAGS) -fsanitize=fuzzer,address,undefined
# The C modules' sources compiled once (instrumented, not linked with the
# fuzzer's main), then linked into each target beside its harness.
FUZZ_OBJ := $(patsubst csrc/%.c,$(FUZZ_DIR)/obj/%.o,$(CORE_SRC) $(CURL_SRC))
fuzz-build: deps $(addprefix $(FUZZ_DIR)/,$(FUZZ_TARGETS))
.SECONDARY: $(FUZZ_OBJ)
$(FUZZ_DIR)/obj/%.o: csrc/%.c csrc/core.h csrc/transfer.h csrc/compat.h
	@mkdir -p $(FUZZ_DIR)/obj
	clang $(FUZZ_FLAGS) -fsanitize=fuzzer-no-link,address,undefined -c $< -o $@
$(FUZZ_DIR)/%: fuzz/harness.c $(FUZZ_OBJ)
	clang $(FUZZ_CFLAGS) -DFUZZ_TARGET='"$*"' -DFUZZ_ROOT='"$(ROOT)"' fuzz/harness.c $(FUZZ_OBJ) \
	  -o $@ -llua5.4 -lcrypto -lcurl
fuzz fuzz-smoke: fuzz-build
	@echo "== $@: libFuzzer on $(words $(FUZZ_TARGETS)) targets, $(if $(filter fuzz-smoke,$@),5,$(FUZZ_SECONDS)) s each"
	@seconds=$(if $(filter fuzz-smoke,$@),5,$(FUZZ_SECONDS)); \
	for t in $(FUZZ_TARGETS); do \
	  rm -rf $(FUZZ_DIR)/corpus-$$t && cp -r fuzz/corpus/$$t $(FUZZ_DIR)/corpus-$$t; \
	  ( cd $(FUZZ_DIR) && ASAN_OPTIONS=detect_leaks=1 ./$$t -max_total_time=$$seconds -print_final_stats=1 \
	    -artifact_prefix=$(FUZZ_DIR)/$$t- corpus-$$t ) > $(FUZZ_DIR)/$$t.log 2>&1 \
	    || { tail -30 $(FUZZ_DIR)/$$t.log; echo "fuzz target $$t: a finding (above; build/fuzz/$$t-*)"; exit 1; }; \
	  printf '%-14s %10s executions in %s s\n' $$t "$$(sed -n 's/^stat::number_of_executed_units: *//p' \
	    $(FUZZ_DIR)/$$t.log)" $$seconds; \
	done

# The simulation (docs/development/simulation.md): spec/sim, pure Lua against the built C core.
ENVSIM := LUA_PATH="$(ROOT)/spec/?.lua;$(ROOT)/spec/?/init.lua;$(LUA_PATH_DEV)" \
	LUA_CPATH="$(TREE54)/lib/lua/5.4/?.so;;" STREAMCTL_ROOT="$(ROOT)"
# Decided by seeds, never by the machine's speed: SIM_SEEDS seeds from
# SIM_START (1); SIM_SECONDS=n explores for n seconds of CPU instead.
SIM_SEEDS ?= 1500
SIM_SECONDS ?=
sim: build-5.4
	@$(ENVSIM) $(if $(SIM_SECONDS),SIM_SECONDS=$(SIM_SECONDS),SIM_SEEDS=$(SIM_SEEDS)) lua5.4 spec/sim/main.lua
mutants: build-5.4
	@$(ENVSIM) lua5.4 spec/sim/mutants.lua

# The chaos run (docs/development/chaos.md; not in make test): spec/chaos/run.lua starts the
# emulator, a Redis and a client nginx on free ports, runs five client
# processes (Lua 5.4, LuaJIT, two through the nginx's workers) on one account
# for CHAOS_SECONDS while it injects random faults, flushes and restarts Redis
# and reloads the nginx, then checks the emulator's log and final state
# against the clients' reports (spec/chaos/check.lua). It prints its seed:
# CHAOS_SEED=N replays the same choices. chaos-short (about a minute) is CI's.
CHAOS_SECONDS ?= 300
CHAOS_SHORT_SECONDS ?= 60
chaos: deps build
	@$(ENV54) CHAOS_SECONDS=$(CHAOS_SECONDS) lua5.4 spec/chaos/run.lua
chaos-short: deps build
	@$(ENV54) CHAOS_SECONDS=$(CHAOS_SHORT_SECONDS) lua5.4 spec/chaos/run.lua

# README "Install" as a new user meets it (tools/check-install.sh; not in make
# test: needs root, debootstrap and the Debian mirror; about two minutes, 76 s of them the blocks):
# every ```sh install block of that section, in order, as root on a pristine
# Debian 12 root in a network namespace of its own, from a clone of HEAD; then
# on each root, what an operator does next (tools/installed-check.sh: man,
# bash completion, plain luajit, the shipped OpenResty example).
check-install:
	@tools/check-install.sh

# The Debian packages (debian/, dh-lua) into build/deb, checked by lintian
# (tools/deb.sh; installs its build dependencies from apt as root). check-deb
# also installs them into a pristine Debian 12 root in a network namespace
# and runs them there, then purges them (tools/check-deb.sh; like
# check-install: root, debootstrap and the mirror, not in make test).
deb:
	@tools/deb.sh

# The release artifacts of HEAD into build/dist: the source tarball, the four
# release rockspecs and their packed source rocks, a rock manifest (a local
# rock server) and SHA256SUMS (tools/dist.sh; spec/74 checks them).
dist:
	@tools/dist.sh
check-deb:
	@DEB_LINT=1 tools/deb.sh && tools/check-deb.sh

clean:
	rm -rf build csrc/*.o streamctl
