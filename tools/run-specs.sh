#!/usr/bin/env bash
# Runs spec files side by side, each in a busted process of its own, and
# says per file, as each ends, what passed, what failed and how long it
# took; a failure names its file, its log and the command that replays it
# alone. make test-5.4, test-jit, valgrind and asan run the suite this way.
#
#   tools/run-specs.sh MODE JOBS [SPEC_FILE...]
#
# MODE: lua5.4 or luajit (the trees build/5.4 or build/jit); valgrind (Lua
# 5.4 under valgrind: no definite leak, no invalid read or write, exit 99
# otherwise); asan (Lua 5.4 against the C modules make asan builds with
# ASan/UBSan into build/asan, the runtime preloaded: any report aborts).
# JOBS: files at once. No files: every spec/*_spec.lua but those the mode
# leaves out (below). Logs in build/specs-MODE/; the totals ("passed
# failed") in build/specs-MODE/count. Exit 1 when a file fails.
#
# Two runs of the suite on one machine do not collide: a spec takes its
# ports free at the time and its directories from mktemp, and starts its
# own emulator, Redis and nginx (spec/helpers).
set -u
cd "$(dirname "$0")/.."
ROOT=$PWD
mode=${1:?mode: lua5.4, luajit, valgrind or asan}
jobs=${2:?jobs}
shift 2
interp=lua5.4 cpath="$ROOT/build/5.4/lib/lua/5.4/?.so;;" wrap="" preload="" skip=""
case $mode in
  lua5.4) ;;
  luajit) interp=luajit cpath="$ROOT/build/jit/lib/lua/5.1/?.so;;" ;;
  valgrind)
    wrap="valgrind --quiet --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite"
    wrap="$wrap --show-leak-kinds=definite"
    # The fault specs (65, 66: minutes of Redis and nginx faults under many
    # client processes) run what they test in processes of their own, and the
    # C they load here is what the rest covers; the simulation (25), the
    # credentials chain's long waits (26) and reconcile at scale are minutes of
    # Lua whose C, the signing of every request, asan runs.
    skip='/(25|26|65|66)-|-scale_spec' ;;
  asan)
    [ -f "$ROOT/build/asan/streamctl/core.so" ] || { echo "run-specs: make asan builds build/asan first" >&2; exit 2; }
    cpath="$ROOT/build/asan/?.so;;"
    preload="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libubsan.so)"
    skip='/(65|66)-' ;;
  *) echo "run-specs: mode must be lua5.4, luajit, valgrind or asan" >&2; exit 2 ;;
esac
files=("$@")
if [ ${#files[@]} -eq 0 ]; then
  # the longest first, so the others fill in beside them (an order, not a list:
  # a spec missing here runs all the same)
  for f in spec/65-redis-faults_spec.lua spec/29-credentials-client_spec.lua spec/31-openresty_spec.lua \
           spec/66-shared-dict-faults_spec.lua spec/62-redis-shared_spec.lua spec/33-credentials-nginx_spec.lua \
           spec/40-cli_spec.lua spec/41-cli-input_spec.lua spec/25-sim_spec.lua spec/11-emulator-operations_spec.lua \
           spec/*_spec.lua; do
    [ -f "$f" ] || continue
    [ -n "$skip" ] && [[ "/$f" =~ $skip ]] && continue
    case " ${files[*]-} " in *" $f "*) ;; *) files+=("$f") ;; esac
  done
fi
out=$ROOT/build/specs-$mode
rm -rf "$out" && mkdir -p "$out"
export LUA_PATH="$ROOT/src/?.lua;$ROOT/src/?/init.lua;;" LUA_CPATH="$cpath" STREAMCTL_ROOT="$ROOT"
export interp out wrap preload mode

# One file: its log, its status line ("name rc seconds passed failed"), and
# its line on standard output as it ends.
one() {
  local f=$1 name t0 t1 rc secs counts p fl pe more=""
  name=$(basename "$f" .lua)
  t0=$(date +%s.%N)
  if [ -n "$preload" ]; then
    LD_PRELOAD="$preload" ASAN_OPTIONS=detect_leaks=0 $wrap "$interp" /usr/bin/busted "$f" > "$out/$name.log" 2>&1 </dev/null
  else
    $wrap "$interp" /usr/bin/busted "$f" > "$out/$name.log" 2>&1 </dev/null
  fi
  rc=$?
  t1=$(date +%s.%N)
  secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b - a}')
  counts=$(sed -n 's/^\([0-9]*\) success\(es\)* \/ \([0-9]*\) failures* \/ \([0-9]*\) errors* \/ \([0-9]*\) pending.*/\1 \3 \4 \5/p' \
    "$out/$name.log" | tail -1)
  set -- $counts
  p=${1:-0} fl=$(( ${2:-0} + ${3:-0} )) pe=${4:-0}
  [ -n "$counts" ] || [ "$rc" != 0 ] || rc=1 # (no summary line: busted died)
  echo "$name $rc $secs $p $fl $pe" > "$out/$name.status"
  [ "$pe" = 0 ] || more=", $pe pending (each says why in the log)"
  if [ "$rc" = 0 ]; then
    printf '  ok     %-34s %6s s  %s passed%s\n' "$name" "$secs" "$p" "$more"
  else
    printf '  FAILED %-34s %6s s  %s passed, %s failed (exit %s): %s\n' "$name" "$secs" "$p" "$fl" "$rc" \
      "$out/$name.log"
  fi
}
export -f one
start=$(date +%s)
printf '%s\n' "${files[@]}" | xargs -P "$jobs" -I{} bash -c 'one "$@"' _ {}
status=0 passed=0 failed=0 broken=()
for f in "${files[@]}"; do
  name=$(basename "$f" .lua)
  read -r _ rc _ p fl _ < "$out/$name.status"
  passed=$((passed + p)) failed=$((failed + fl))
  if [ "$rc" != 0 ]; then status=1; broken+=("$f"); fi
done
echo "$passed $failed" > "$out/count"
printf '%s: %d passed, %d failed, %d files, %d at once, in %d s\n' "$mode" "$passed" "$failed" "${#files[@]}" \
  "$jobs" $(( $(date +%s) - start ))
for f in "${broken[@]+"${broken[@]}"}"; do
  name=$(basename "$f" .lua)
  echo "FAILED $f: $out/$name.log (its end:)"
  tail -25 "$out/$name.log" | sed 's/^/  | /'
  printf '  replay alone: %sLUA_PATH="%s" LUA_CPATH="%s" STREAMCTL_ROOT=%s %s%s /usr/bin/busted %s\n' \
    "${preload:+LD_PRELOAD=\"$preload\" ASAN_OPTIONS=detect_leaks=0 }" "$LUA_PATH" "$LUA_CPATH" "$ROOT" \
    "${wrap:+$wrap }" "$interp" "$f"
done
exit $status
