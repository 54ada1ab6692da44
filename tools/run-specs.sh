#!/usr/bin/env bash
# Runs spec files side by side, each in a busted process of its own, and
# says per file what passed, what failed and how long it took; a failure
# names its file and the command that replays it alone.
#
#   tools/run-specs.sh INTERPRETER JOBS [SPEC_FILE...]
#
# INTERPRETER: lua5.4 or luajit (the trees build/5.4 or build/jit, as make
# test-5.4 / test-jit use them); JOBS: files at once; no files: every
# spec/*_spec.lua. Logs in build/specs-INTERPRETER/. Exit 1 when a file
# fails. (A development tool: make test runs the suite in one process.)
set -u
cd "$(dirname "$0")/.."
ROOT=$PWD
interp=${1:?interpreter: lua5.4 or luajit}
jobs=${2:?jobs}
shift 2
case $interp in
  lua5.4) cpath="$ROOT/build/5.4/lib/lua/5.4/?.so;;" ;;
  luajit) cpath="$ROOT/build/jit/lib/lua/5.1/?.so;;" ;;
  *) echo "run-specs: interpreter must be lua5.4 or luajit" >&2; exit 2 ;;
esac
files=("$@")
[ ${#files[@]} -gt 0 ] || files=(spec/*_spec.lua)
out=$ROOT/build/specs-$interp
rm -rf "$out" && mkdir -p "$out"
export LUA_PATH="$ROOT/src/?.lua;$ROOT/src/?/init.lua;;" LUA_CPATH="$cpath" STREAMCTL_ROOT="$ROOT" interp out

one() {
  local f=$1 name t0 t1 rc
  name=$(basename "$f" .lua)
  t0=$(date +%s.%N)
  "$interp" /usr/bin/busted "$f" > "$out/$name.log" 2>&1 </dev/null
  rc=$?
  t1=$(date +%s.%N)
  printf '%s %s %.1f\n' "$name" "$rc" "$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b - a}')" > "$out/$name.status"
}
export -f one
start=$(date +%s)
printf '%s\n' "${files[@]}" | xargs -P "$jobs" -I{} bash -c 'one "$@"' _ {}
status=0 passed=0 failed=0
for f in "${files[@]}"; do
  name=$(basename "$f" .lua)
  read -r _ rc secs < "$out/$name.status"
  counts=$(sed -n 's/^\([0-9]*\) success\(es\)* \/ \([0-9]*\) failures* \/ \([0-9]*\) errors*.*/\1 \3 \4/p' \
    "$out/$name.log" | tail -1)
  set -- $counts
  p=${1:-0} fl=$(( ${2:-0} + ${3:-0} ))
  passed=$((passed + p)) failed=$((failed + fl))
  if [ "$rc" != 0 ] || [ -z "$counts" ]; then
    status=1
    printf 'FAILED %-34s %5s s  %s passed, %s failed: %s\n' "$name" "$secs" "$p" "$fl" "$out/$name.log"
    printf '  replay: LUA_PATH="%s" LUA_CPATH="%s" STREAMCTL_ROOT=%s %s /usr/bin/busted %s\n' \
      "$LUA_PATH" "$LUA_CPATH" "$ROOT" "$interp" "$f"
  else
    printf 'ok     %-34s %5s s  %s passed\n' "$name" "$secs" "$p"
  fi
done
printf '%s: %d passed, %d failed, %d files in %d s\n' "$interp" "$passed" "$failed" "${#files[@]}" \
  $(( $(date +%s) - start ))
exit $status
