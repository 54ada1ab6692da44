#!/usr/bin/env bash
# make bench: every benchmark in order, figures into build/bench/figures.jsonl,
# then bench/report.lua's table into bench/results.json (docs/performance.md).
# Figures, never pass/fail: a benchmark that cannot finish stops the run and
# leaves bench/results.json as it was.
#
#   bench/run.sh            (make bench: after deps and build)
#
# The emulator runs on free ports of a block claimed as the specs claim theirs
# (spec/helpers/ports.lua, held by this script's pid while it runs), never on
# fixed ones; whatever the run started (the emulator, Redis, nginx, workers)
# is stopped however it ends: done, failed, Ctrl-C, TERM or HUP. A run killed
# outright (-9) leaves its emulator, which the next run stops first.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD
OUT=$ROOT/build/bench/figures.jsonl
FLOOR=$ROOT/build/bench/floor
EMU_DIR=$ROOT/build/bench-emulator
DEV_PATH="$ROOT/src/?.lua;$ROOT/src/?/init.lua;$ROOT/emulator/src/?.lua;$ROOT/emulator/src/?/init.lua;;"
BENCH_PATH="$ROOT/?.lua;$DEV_PATH"
C54="$ROOT/build/5.4/lib/lua/5.4/?.so;;"
CJIT="$ROOT/build/jit/lib/lua/5.1/?.so;;"
export STREAMCTL_ROOT=$ROOT BENCH_OUT=$OUT

# lua5.4 or luajit, with this tree's modules and the bench's own
lua54() { LUA_PATH=$BENCH_PATH LUA_CPATH=$C54 lua5.4 "$@"; }
luajit_() { LUA_PATH=$BENCH_PATH LUA_CPATH=$CJIT luajit "$@"; }
emulator() { LUA_PATH=$DEV_PATH LUA_CPATH=$C54 "$ROOT/build/5.4/bin/streamctl-emulator" "$@"; }

# Every process below this one, deepest first (read from /proc: no procps needed).
descendants() {
  local parent=$1 stat pid ppid rest
  for stat in /proc/[0-9]*/stat; do
    { read -r pid _ rest < "$stat"; } 2>/dev/null || continue # (gone since the glob)
    rest=${rest##*) }
    ppid=${rest#* }
    ppid=${ppid%% *}
    if [ "$ppid" = "$parent" ]; then
      descendants "$pid"
      echo "$pid"
    fi
  done
}

cleaned=0
cleanup() {
  [ $cleaned = 1 ] && return
  cleaned=1
  local pids
  pids=$(descendants $$)
  # shellcheck disable=SC2086 # (a list of pids)
  [ -z "$pids" ] || kill -TERM $pids 2>/dev/null
  emulator stop --dir "$EMU_DIR" >/dev/null 2>&1
  [ -z "${CLAIM:-}" ] || rm -rf "$CLAIM"
}
trap cleanup EXIT
trap 'echo "make bench: interrupted: what it started is stopped; bench/results.json is left as it was" >&2; exit 130' INT TERM HUP

# BENCH_ONLY="redis shared" (scripts of bench/, by name): only those, their
# figures printed (as every figure is) and bench/results.json left as it was (a figure measured
# alone is no run's: the docs' table comes from a whole one).
only() {
  [ -z "${BENCH_ONLY:-}" ] && return 0
  local n
  for n in $BENCH_ONLY; do [ "$n" = "$1" ] && return 0; done
  return 1
}

mkdir -p build/bench && rm -f "$OUT"
cc -O2 -Wall -Wextra -Werror -o "$FLOOR" bench/floor.c -lcrypto || exit 1
cc -O2 -Wall -Wextra -Werror -o "$ROOT/build/bench/percall_floor" bench/percall_floor.c -lcurl || exit 1
export BENCH_CURL_FLOOR=$ROOT/build/bench/percall_floor
if only sign; then
  echo "== signatures per second"
  BENCH_FLOOR=$FLOOR lua54 bench/sign.lua && luajit_ bench/sign.lua || exit 1
fi
if only scale; then
  echo "== batches of any size: 1,000 to 1,000,000 streams, a transport that answers at once (Lua 5.4, then LuaJIT)"
  lua54 bench/scale.lua && luajit_ bench/scale.lua || exit 1
fi
if only first; then
  echo "== the command with a 1,000,000-line --from file: until it sends (Lua 5.4, then LuaJIT)"
  lua54 bench/first.lua && luajit_ bench/first.lua || exit 1
fi

# The emulator's four ports: a block claimed for this script's pid (its
# directory, CLAIM, removed at the end).
emulator stop --dir "$EMU_DIR" >/dev/null 2>&1 # (a run killed outright left it)
ports=$(STREAMCTL_PORTS_OWNER=$$ lua54 -e '
  local ports = require "spec.helpers.ports"
  local p = ports.free(4)
  io.write(ports.claim_dir(), " ", table.concat(p, ","))') || exit 1
CLAIM=${ports%% *}
IFS=, read -r ALI ZEGO ALI_TLS ZEGO_TLS <<< "${ports#* }"
echo "== batches against the emulator (ports $ALI, $ZEGO, $ALI_TLS, $ZEGO_TLS)"
emulator start --dir "$EMU_DIR" --aliyun-port "$ALI" --zego-port "$ZEGO" --aliyun-tls-port "$ALI_TLS" \
  --zego-tls-port "$ZEGO_TLS" --config bench/emulator.json >/dev/null || exit 1
export STREAMCTL_ALIYUN_ENDPOINT=http://127.0.0.1:$ALI STREAMCTL_ZEGO_ENDPOINT=http://127.0.0.1:$ZEGO
export STREAMCTL_EMULATOR_DIR=$EMU_DIR

status=0
step() { # TITLE, then the command; skipped once one has failed
  [ $status = 0 ] || return 0
  local script=${*: -1}
  script=${script#bench/}
  only "${script%.lua}" || return 0
  [ -z "$1" ] || echo "== $1"
  shift
  "$@" || status=$?
}
step "" lua54 bench/batch.lua
step "one account, three processes: each on its own budget, then one budget in Redis" lua54 bench/redis.lua
step "one budget shared: four nginx workers on one shared dict, two AccessKeys of one account, Redis killed and back" \
  lua54 bench/shared.lua
step "strangers: a budget shared with another tool's load, a lower cap, the load leaving (issue 48's goals)" \
  lua54 bench/strangers.lua
step "memory and load time (Lua 5.4, then LuaJIT)" lua54 bench/memory.lua
step "" luajit_ bench/memory.lua
step "round trips: streamctl beside a bare request, one nginx worker and a shell script" lua54 bench/roundtrip.lua
step "" luajit_ bench/roundtrip.lua
step "tracing's cost: CPU per call, spans off, exported, sampled out, the collector down (Lua 5.4, then LuaJIT)" \
  lua54 bench/tracing.lua
step "" luajit_ bench/tracing.lua
step "what one call costs: its CPU and its steps, beside the official Node SDK (Lua 5.4, then LuaJIT)" \
  lua54 bench/percall.lua
step "" luajit_ bench/percall.lua
step "the door's cost: wrk against /admission beside nginx's own 404, one worker" lua54 bench/admission.lua
step "soak: 100,000 calls with faults injected at random" lua54 bench/soak.lua
emulator stop --dir "$EMU_DIR" >/dev/null
if [ -n "${BENCH_ONLY:-}" ]; then
  echo "make bench (BENCH_ONLY=$BENCH_ONLY): its figures are above; bench/results.json is left as it was"
elif [ $status = 0 ]; then
  lua54 bench/report.lua "$OUT" bench/results.json || status=$?
else
  lua54 bench/report.lua "$OUT" build/bench/results-failed.json
  echo "make bench: a benchmark failed (above): bench/results.json is left as it was; this run's figures are in" \
    "build/bench/results-failed.json" >&2
fi
exit $status
