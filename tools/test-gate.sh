#!/usr/bin/env bash
# make test, the gate CI runs (docs/development/README.md), in phases:
#
#   setup     what is missing installed, both trees and the ASan/UBSan
#             builds built, lint
#   specs     one pool (tools/run-specs.sh): every spec under Lua 5.4 and
#             LuaJIT, and the files where our C runs in the spec's process
#             under valgrind and against the ASan/UBSan builds, the
#             CPU-bound ones filling the cores the others leave idle; beside
#             it, at nice 10, static analysis, the docs and the fuzz binaries
#             (their output in build/prelude.log)
#   fuzz      fuzz-smoke (one core, nice 10) while chaos-short runs
#
# Each phase says how long it took, and the times go to build/test-phases.txt
# (a line per phase: its name, seconds and ok or FAILED, tab-separated).
# A failed setup ends the gate; the specs and what runs beside them run to
# their end whatever fails among them, and fuzz and chaos only when all
# before were green. MAKE, TEST_JOBS and SPECS come from the Makefile.
set -u
cd "$(dirname "$0")/.."
make=${MAKE:-make}
jobs=${TEST_JOBS:-8}
read -r -a specs <<< "${SPECS-}"
mkdir -p build
phases=build/test-phases.txt
: > "$phases"
start=$(date +%s)
red=0

# A phase's line: its name, its seconds (since T0, or SECS given), ok or FAILED.
said() {
  local name=$1 t0=$2 rc=$3 secs=${4-} word=ok
  [ -n "$secs" ] || secs=$(( $(date +%s) - t0 ))
  [ "$rc" = 0 ] || { word=FAILED; red=1; }
  printf '%s\t%s\t%s\n' "$name" "$secs" "$word" >> "$phases"
  printf '== make test: %s: %s in %d s\n' "$name" "$word" "$secs"
}

t=$(date +%s)
$make --no-print-directory deps build lint asan-build
rc=$?
said setup "$t" "$rc"
[ "$rc" = 0 ] || exit 1

t=$(date +%s)
( nice -n 10 $make --no-print-directory static check-doc fuzz-build > build/prelude.log 2>&1
  r=$?; echo $(( $(date +%s) - t )) > build/prelude.secs; exit $r ) &
prelude=$!
tools/run-specs.sh lua5.4,luajit,valgrind,asan "$jobs" "${specs[@]+"${specs[@]}"}"
said "the specs" "$t" $?
# (the specs done, what is left of the prelude runs at nice 0: beside four busy loops, at nice 10 it held
# the gate's end 94 s)
tools/renice-tree.sh "$prelude"

t=$(date +%s)
wait "$prelude"
rc=$?
grep '^docs: \|^== static' build/prelude.log
if [ "$rc" != 0 ]; then
  tail -40 build/prelude.log
  echo "make test: static analysis, the docs or the fuzz binaries failed (above; build/prelude.log)"
fi
said "static, docs, fuzz build (beside the specs)" "$t" "$rc" "$(cat build/prelude.secs 2>/dev/null)"
[ $(( $(date +%s) - t )) -le 1 ] || echo "make test: the specs' end waited $(( $(date +%s) - t )) s for them"

tools/spec-summary.sh lua5.4 luajit valgrind asan

if [ "$red" = 0 ]; then
  t=$(date +%s)
  nice -n 10 $make --no-print-directory fuzz-smoke > build/fuzz-smoke.log 2>&1 &
  fz=$!
  $make --no-print-directory chaos-short
  c=$?
  wait "$fz"
  f=$?
  cat build/fuzz-smoke.log
  [ "$c" = 0 ] && [ "$f" = 0 ]
  said "fuzz-smoke beside chaos-short" "$t" $?
fi

echo "make test: $(awk -F'\t' '{printf "%s%s %s s%s", (NR > 1 ? "; " : ""), $1, $2, $3 == "ok" ? "" : " FAILED"}' \
  "$phases"); in all $(( $(date +%s) - start )) s$([ "$red" = 0 ] || echo ': FAILED')"
exit "$red"
