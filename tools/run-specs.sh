#!/usr/bin/env bash
# Runs spec files side by side, each in a busted process of its own, under
# one or more modes at once, and says per file, as each ends, what passed,
# what failed and how long it took; a failure names its file, its log, the
# ports it had and the command that replays it alone. make check-unit,
# check, test and their phases run the suite this way.
#
#   tools/run-specs.sh [-u | -c] [-l] MODES JOBS [SPEC_FILE...]
#
# MODES: one or more of lua5.4, luajit (the trees build/5.4, build/jit),
# valgrind (Lua 5.4 under valgrind: no definite leak, no invalid read or
# write, exit 99 otherwise) and asan (Lua 5.4 against the C modules make
# asan builds with ASan/UBSan into build/asan, the runtime preloaded: any
# report aborts), joined by commas: their files share one pool (below):
# JOBS files that mostly wait, and CPU_JOBS (twice the cores) CPU-bound ones.
# What is CPU-bound runs at nice 10 (valgrind's and asan's files while a
# heavy file runs or waits, and the unit tier's: pure Lua, a fake clock),
# so it fills the cores while the others wait on their servers and never
# holds back the heavy files at a provider's cap; a heavy file (below) runs
# at nice 0 in every mode.
# SPEC_FILE_TIMEOUT (2400): the seconds a file may run before it is stopped
# and fails, its log saying so (the longest seen, valgrind's 41-cli-input
# with four busy loops beside the suite, before it went to ASan alone,
# took 1,017 s): a file that hangs fails the run in time to be read, never
# CI's own limit with no word.
# HEAVY_JOBS (3): how many heavy files may run at once on this machine,
# SPEC_MACHINE_JOBS (8) how many waiting files and CPU_JOBS how many
# CPU-bound ones, whatever else runs the suite (below);
# HEAVY_MODES (default: every mode given): the modes that run the heavy
# files when no files are named (make check: lua5.4, the heavy ones' LuaJIT
# runs are make test's, which runs every file in every mode).
# -l: list the runs ("MODE FILE KIND", in the order they would start), run nothing.
# -c: the check tier, every spec but those with a line "-- tier: test (why)"
# (the fault matrices: minutes of Redis and nginx faults, make test's).
# -u: the unit tier, the specs that start no server (a spec says so on a
# line "-- tier: unit" of its own; with STREAMCTL_SPEC_TIER=unit the helpers
# refuse to start one, so a spec that says it wrongly fails), JOBS
# interpreters each running its share of the files (spec/helpers/file_logs.lua
# writes each file's log).
# No files: every spec/LAYER/*_spec.lua (a folder per layer of the house, and
# house/ for the house itself) in the modes it runs in: lua5.4 and luajit
# every file but those with a line "-- interpreters: lua5.4 (why)" (luajit
# leaves them out); asan those where our C runs in the spec's own process,
# all but the files with a line "-- sanitizers: none (why)" of their own (the
# emulator's specs, whose C runs in nginx; the engine's, on a fake clock; the
# house's); valgrind the few of those spec/valgrind.txt names, which reach
# all the C the others reach (make valgrind-set chooses them). Files named
# run in every mode given. A spec reads its mode from STREAMCTL_SPEC_MODE
# (spec/helpers/matrix.lua: the big input matrices take a sampled slice
# under the sanitizers).
# SPEC_PORT_RANGE=LOW-HIGH: the ports the specs' servers take (spec/helpers/
# ports.lua; by default from 10240 to the kernel's ephemeral range), checked
# here once: a range that breaks its rule stops the run before a spec starts.
# Logs in build/specs-MODE/; each mode's totals ("passed failed pending")
# in build/specs-MODE/count (STREAMCTL_SPEC_OUT: another directory than
# build/ for both, and for the times). Exit 1 when a file fails.
#
# Two runs of the suite on one machine do not collide: a spec takes its
# ports from a block of its own (spec/helpers/ports.lua), its directories
# from mktemp, and starts its own emulator, Redis and nginx. The longest
# files go first, by the times the last run left in build/spec-times.
set -u
cd "$(dirname "$0")/.."
ROOT=$PWD
tier=all list_only=
while :; do
  case ${1-} in
    -u) tier=unit; shift ;;
    -c) tier=check; shift ;;
    -l) list_only=1; shift ;;
    *) break ;;
  esac
done
modes=${1:?modes: lua5.4, luajit, valgrind or asan, joined by commas}
jobs=${2:?jobs}
shift 2
given=("$@")
heavy_jobs=${HEAVY_JOBS:-3}
file_timeout=${SPEC_FILE_TIMEOUT:-2400}
heavy_modes=${HEAVY_MODES:-}
machine_jobs=${SPEC_MACHINE_JOBS:-8}
cpu_jobs=${CPU_JOBS:-$(( 2 * $(nproc 2>/dev/null || echo 2) ))}
if [ -n "${SPEC_PORT_RANGE:-}" ]; then
  LUA_PATH="$ROOT/?.lua;;" lua5.4 -e 'local p = require "spec.helpers.ports"
    local ok, why = pcall(p.range)
    if not ok then io.stderr:write("run-specs: ", why, "\n") os.exit(2) end
    local first, last = p.range()
    print(string.format("run-specs: the specs take their ports from %d to %d (SPEC_PORT_RANGE=%s: %d blocks of %d)",
      p.FIRST + first * p.BLOCK, p.FIRST + (last + 1) * p.BLOCK - 1, os.getenv("SPEC_PORT_RANGE"), last - first + 1,
      p.BLOCK))' || exit 2
fi

# The module path of every spec run (and of the replay line a failed one gets).
lua_path="$ROOT/src/?.lua;$ROOT/src/?/init.lua;$ROOT/emulator/src/?.lua;$ROOT/emulator/src/?/init.lua;;"

# Exports what a spec run under mode $1 reads (settings' cpath and preload, the
# tier, the mode); in the subshell that runs it.
spec_env() {
  export LUA_PATH="$lua_path" LUA_CPATH="$cpath" STREAMCTL_ROOT="$ROOT" STREAMCTL_SPEC_MODE=$1
  [ "$tier" = unit ] && export STREAMCTL_SPEC_TIER=unit
  if [ -n "$preload" ]; then export LD_PRELOAD="$preload" ASAN_OPTIONS=detect_leaks=0; fi
}

# A mode's settings: interp, cpath, wrap, preload and nice.
settings() {
  interp=lua5.4 cpath="$ROOT/build/5.4/lib/lua/5.4/?.so;;" wrap="" preload="" nice=0
  case $1 in
    lua5.4) ;;
    luajit) interp=luajit cpath="$ROOT/build/jit/lib/lua/5.1/?.so;;" ;;
    valgrind)
      wrap="valgrind --quiet --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite"
      wrap="$wrap --show-leak-kinds=definite" nice=10 ;;
    asan)
      cpath="$ROOT/build/asan/?.so;;" nice=10
      preload="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libubsan.so)" ;;
    *) echo "run-specs: a mode is lua5.4, luajit, valgrind or asan, not '$1'" >&2; exit 2 ;;
  esac
}

IFS=, read -r -a mode_list <<< "$modes"
for m in "${mode_list[@]}"; do
  settings "$m"
  if [ "$m" = asan ] && [ -z "$list_only" ] && [ ! -f "$ROOT/build/asan/streamctl/core.so" ]; then
    echo "run-specs: make asan builds build/asan first" >&2; exit 2
  fi
done

# The files: those given, else every spec (of the tier). Each file's lines
# that say how it runs, read by one awk for all ("FILE|unit|test|heavy|
# INTERPRETERS-LINE|SANITIZERS-LINE", the flags 0 or 1, the lines their
# first ones): a grep per file and line took seconds.
if [ ${#given[@]} -gt 0 ]; then candidates=("${given[@]}"); else candidates=(spec/*/*_spec.lua); fi
for f in "${candidates[@]}"; do [ -f "$f" ] || { echo "run-specs: no spec file $f" >&2; exit 2; }; done
declare -A said
files=()
while IFS='|' read -r f unit test heavy interp_line san_line; do
  if [ ${#given[@]} -eq 0 ]; then
    [ "$tier" = unit ] && [ "$unit" = 0 ] && continue
    [ "$tier" = check ] && [ "$test" = 1 ] && continue
  fi
  files+=("$f")
  said[$f]="$unit|$heavy|$interp_line|$san_line"
done < <(awk '
  FNR == 1 { if (NR > 1) out(); u = t = h = 0; il = sl = "" }
  /^-- tier: unit$/ { u = 1 }
  /^-- tier: test \(.*\)$/ { t = 1 }
  /^-- load: heavy$/ { h = 1 }
  /^-- interpreters:/ && il == "" { il = $0 }
  /^-- sanitizers:/ && sl == "" { sl = $0 }
  function out() { print prev "|" u "|" t "|" h "|" il "|" sl }
  { prev = FILENAME }
  END { if (NR > 0) out() }' "${candidates[@]}")
if [ ${#given[@]} -gt 0 ] && [ ${#files[@]} -ne ${#given[@]} ]; then
  echo "run-specs: a spec file named is empty (or named twice): ${given[*]}" >&2; exit 2
fi

# The files valgrind runs: spec/valgrind.txt's (VALGRIND_LIST: another
# list; make valgrind-set chooses them), each a file asan runs.
valgrind_list=${VALGRIND_LIST:-spec/valgrind.txt}
declare -A under_valgrind
while read -r f; do
  case $f in ""|"#"*) continue ;; esac
  if [ ! -f "$f" ] || grep -q '^-- sanitizers: none (.*)$' "$f"; then
    echo "run-specs: $valgrind_list: $f is not a spec file where our C runs in its process: run make valgrind-set" >&2
    exit 2
  fi
  under_valgrind[$f]=1
done < "$valgrind_list"

# A file's kind, read once per file (not per mode or pool turn): unit ("-- tier: unit"),
# heavy ("-- load: heavy") or plain; and the modes it runs in: both
# interpreters, or Lua 5.4 alone ("-- interpreters: lua5.4 (why)": what it
# tests runs in nginx or in tools, whatever runs the file), and asan, or
# neither sanitizer ("-- sanitizers: none (why)"); valgrind too when
# spec/valgrind.txt names it. A line that says something else is refused.
declare -A kind_of modes_of
for f in "${files[@]}"; do
  IFS='|' read -r unit heavy line san_line <<< "${said[$f]}"
  if [ "$heavy" = 1 ]; then kind_of[$f]=heavy
  elif [ "$unit" = 1 ]; then kind_of[$f]=unit
  else kind_of[$f]=plain; fi
  case $line in
    "") interps=lua5.4,luajit ;;
    "-- interpreters: lua5.4 ("*")") interps=lua5.4 ;;
    *) echo "run-specs: $f: '$line': the line is '-- interpreters: lua5.4 (why)'" >&2; exit 2 ;;
  esac
  line=$san_line
  case $line in
    "") modes_of[$f]=$interps,asan${under_valgrind[$f]:+,valgrind} ;;
    "-- sanitizers: none ("*")") modes_of[$f]=$interps ;;
    *) echo "run-specs: $f: '$line': the line is '-- sanitizers: none (why)'" >&2
       exit 2 ;;
  esac
done

# The jobs ("MODE FILE KIND"), the longest first: by the seconds the last run of
# that mode took (build/spec-times/MODE: "file seconds"); a file not timed
# yet (a fresh clone) by LONG, the files that took longest when this was
# written, in that order, and the others after them.
LONG='66-shared-dict-faults 23-room-strangers 65-redis-faults-memory 65-redis-faults-lost 65-redis-faults-keys
  31-openresty 69-redis-sentinel-faults 65-redis-faults-sleep 62-redis-shared 21-streamed 22-order 21-batches 25-sim
  40-cli 41-cli-input 67-redis-sentinel 24-account 50-faults 71-redis-forgot 11-emulator-callbacks 74-dist 23-pacing
  17-bad-input 18-longest-request 11-emulator-operations 70-redis-tls 70-docs'
outroot=${STREAMCTL_SPEC_OUT:-$ROOT/build}
times=$outroot/spec-times
mkdir -p "$times"
# (one awk reads every mode's times and orders the runs: a fork per file and mode took seconds)
list=$(for m in "${mode_list[@]}"; do
  for f in "${files[@]}"; do
    [[ ",${modes_of[$f]}," != *",$m,"* ]] && [ ${#given[@]} -eq 0 ] && continue
    [ -n "$heavy_modes" ] && [ "${kind_of[$f]}" = heavy ] && [ ${#given[@]} -eq 0 ] \
      && [[ ",$heavy_modes," != *",$m,"* ]] && continue
    echo "$m $f ${kind_of[$f]}"
  done
done | awk -v dir="$times" -v long="$LONG" '
  BEGIN { n = split(long, names, /[ \n]+/); for (i = 1; i <= n; i++) rank[names[i]] = 5000 - i }
  {
    if (!($1 in read)) {
      read[$1] = 1
      file = dir "/" $1
      while ((getline line < file) > 0) { split(line, w, " "); took[$1 " " w[1]] = w[2] }
      close(file)
    }
    s = took[$1 " " $2]
    if (s == "") { b = $2; sub(/.*\//, "", b); sub(/_spec\.lua$/, "", b); s = (b in rank) ? rank[b] : 0 }
    print s, $0
  }' | sort -k1,1 -rn -s) || exit 2
timed=$list
list=$(cut -d' ' -f2- <<< "$timed")
[ -n "$list" ] || { echo "run-specs: no spec file to run" >&2; exit 2; }
if [ -n "$list_only" ]; then echo "$list"; exit 0; fi
for m in "${mode_list[@]}"; do rm -rf "$outroot/specs-$m" && mkdir -p "$outroot/specs-$m"; done

# A slot of a machine-wide pool: one of N directories under
# $TMPDIR/streamctl-spec-NAME, holding its owner's pid, so that two runs of
# the suite at once hold no more files between them than one does (pool
# "jobs", SPEC_MACHINE_JOBS: files waiting on servers; "cpu", CPU_JOBS: the
# CPU-bound ones; "heavy", HEAVY_JOBS: heavy files). A slot whose owner is gone is taken over under a second directory
# of its own, as spec/helpers/ports.lua takes over a port block. Waits until
# one is free (OWNER, a pid, holds it); prints its directory.
machine_slot() {
  local dir=${TMPDIR:-/tmp}/streamctl-spec-$1 n=$2 me=$3 i owner looks=0 others
  mkdir -p "$dir"
  while :; do
    for ((i = 0; i < n; i++)); do
      if mkdir "$dir/$i" 2>/dev/null; then
        echo "$me" > "$dir/$i/pid"
        echo "$dir/$i"
        return
      fi
      owner=$(cat "$dir/$i/pid" 2>/dev/null)
      if [ -n "$owner" ] && ! kill -0 "$owner" 2>/dev/null && mkdir "$dir/$i.takeover" 2>/dev/null; then
        [ "$(cat "$dir/$i/pid" 2>/dev/null)" = "$owner" ] && rm -rf "$dir/$i"
        rmdir "$dir/$i.takeover"
      fi
    done
    # (after 10 s of waiting, once: the holders of another run of the suite named, when some are; this
    # run's own files waiting for one another say nothing)
    looks=$((looks + 1))
    if [ "$looks" = 20 ]; then
      others=$(for f in "$dir"/*/pid; do
        owner=$(cat "$f" 2>/dev/null)
        [ -n "$owner" ] && kill -0 "$owner" 2>/dev/null || continue # (live holders only)
        [ "$(ps -o ppid= -p "$owner" 2>/dev/null | tr -d ' ')" = "$$" ] || echo "$owner"
      done | tr '\n' ' ')
      [ -z "$others" ] || echo "run-specs: waiting for one of this machine's $n '$1' slots ($dir)," \
        "held by another run of the suite: processes ${others% }" >&2
    fi
    sleep 0.5
  done
}

# One file under one mode: its log, its status line ("file rc seconds passed
# failed pending"), and its line on standard output as it ends.
one() {
  local m=$1 f=$2 kind=$3 c=$4 name out t0 t1 rc secs slots me hung
  settings "$m"
  [ "$kind" = unit ] && nice=10
  [ "$c" = cpu ] && nice=$5
  # (the slots' owner is this subshell, which lives until the file has run;
  # read here: inside $(...) BASHPID is the substitution's own)
  me=$BASHPID
  if [ "$c" = cpu ]; then
    slots=$(machine_slot cpu "$cpu_jobs" "$me")
  else
    slots=$(machine_slot jobs "$machine_jobs" "$me")
  fi
  if [ "$c" = heavy ]; then
    nice=0 # (it times real servers, whatever the mode)
    slots="$slots $(machine_slot heavy "$heavy_jobs" "$me")"
  fi
  name=$(basename "$f" .lua) out=$outroot/specs-$m
  t0=$EPOCHREALTIME
  (
    spec_env "$m"
    # (--foreground: busted stays in the suite's process group, so a Ctrl-C still stops every file at
    # once; the cost is that timeout stops busted alone, and what it started may outlive it)
    exec timeout --foreground --kill-after=30 "$file_timeout" nice -n "$nice" $wrap "$interp" /usr/bin/busted "$f"
  ) > "$out/$name.log" 2>&1 </dev/null
  rc=$?
  t1=$EPOCHREALTIME
  rm -rf $slots
  # (tenths of a second, from bash's own clock (microseconds, whatever the locale's decimal point): no fork)
  secs=$(( (10#${t1//[!0-9]/} - 10#${t0//[!0-9]/} + 50000) / 100000 ))
  secs=$((secs / 10)).$((secs % 10))
  hung=0
  # (124: timeout's TERM; 137: its KILL 30 s later, or another's, told apart by the time)
  if [ "$rc" = 124 ] || { [ "$rc" = 137 ] && [ "${secs%.*}" -ge "$file_timeout" ]; }; then
    hung=1
    echo "run-specs: stopped after SPEC_FILE_TIMEOUT=$file_timeout s, by timeout (exit $rc): a row hung" >> "$out/$name.log"
  fi
  report "$m" "$f" "$rc" "$secs" "$hung"
}

# A file's row, from its log's last summary line: its status line ("file rc
# seconds passed failed pending") and its line on standard output. Given
# MODE FILE RC SECONDS HUNG (1: a row hung, counted as failed).
report() {
  local m=$1 f=$2 rc=$3 secs=$4 hung=$5 name out counts p fl pe more="" block
  name=$(basename "$f" .lua) out=$outroot/specs-$m
  counts=$(sed -n 's/^\([0-9]*\) success\(es\)* \/ \([0-9]*\) failures* \/ \([0-9]*\) errors* \/ \([0-9]*\) pending.*/\1 \3 \4 \5/p' \
    "$out/$name.log" | tail -1)
  set -- $counts
  p=${1:-0} fl=$(( ${2:-0} + ${3:-0} + hung )) pe=${4:-0} # (the row that hung counts as failed)
  # (no summary line: busted died, or its interpreter did before this file's end: a failed row)
  [ -n "$counts" ] || { fl=$((fl + 1)); [ "$rc" != 0 ] || rc=1; }
  [ "$fl" = 0 ] || [ "$rc" != 0 ] || rc=1
  echo "$f $rc $secs $p $fl $pe" > "$out/$name.status"
  [ "$pe" = 0 ] || more=", $pe pending (each says why in the log)"
  if [ "$rc" = 0 ]; then
    printf '  ok     %-8s %-32s %6s s  %s passed%s\n' "$m" "$name" "$secs" "$p" "$more"
  else
    block=$(sed -n 's/^spec ports: \(block [0-9]*\):.*/\1/p' "$out/$name.log" | head -1)
    printf '  FAILED %-8s %-32s %6s s  %s passed, %s failed (exit %s%s): %s\n' "$m" "$name" "$secs" "$p" "$fl" \
      "$rc" "${block:+; ports of $block}" "$out/$name.log"
  fi
}

# The tools a unit spec may run: Debian's essential ones (coreutils,
# findutils, dash, bash, grep, sed) and from make build's packages (lua5.4,
# luajit, openssl, valgrind), as the only directory on its PATH ($outroot/unit-path, links made here): a spec that
# runs another (promtool, protoc, python3, a server) fails in the tier, as
# it would on a machine with only make build's packages.
UNIT_TOOLS="sh bash env cat chmod chown cp date echo find grep head id ln ls mkdir mkfifo mknod mktemp mv rm sed sleep sort stat tail
  timeout touch tr true uname wc lua5.4 luajit openssl valgrind"
unit_path() {
  local t where
  rm -rf "$outroot/unit-path" && mkdir -p "$outroot/unit-path"
  for t in $UNIT_TOOLS; do
    where=$(command -v "$t") || continue # (a tool this machine lacks: a spec that runs it fails, as it should)
    [ -x "$where" ] && ln -sf "$where" "$outroot/unit-path/$t"
  done
}

# The unit tier's files, MODE FILE..., in one interpreter (a file's run of
# its own spent more in starting and loading than many of them take):
# busted writes each file's log (spec/helpers/file_logs.lua) and the rows
# follow when it ends; a file it did not end is failed, with what the
# interpreter said. Holds one slot of the machine-wide pool of waiting files.
batch() {
  local m=$1 me slots t0 rc f name out log secs; shift
  settings "$m"
  me=$BASHPID
  slots=$(machine_slot jobs "$machine_jobs" "$me")
  out=$outroot/specs-$m log=$outroot/specs-$m/batch-$me.out
  t0=$EPOCHREALTIME
  (
    spec_env "$m"
    export STREAMCTL_SPEC_LOG_DIR=$out PATH=$outroot/unit-path
    exec timeout --foreground --kill-after=30 "$file_timeout" $wrap "$interp" /usr/bin/busted \
      -o "$ROOT/spec/helpers/file_logs.lua" "$@"
  ) > "$log" 2>&1 </dev/null
  rc=$?
  rm -rf $slots
  for f in "$@"; do
    name=$(basename "$f" .lua)
    secs=$(sed -n 's/^[0-9]* successes \/ .* : \([0-9.]*\) seconds$/\1/p' "$out/$name.log" 2>/dev/null | tail -1)
    if [ -n "$secs" ]; then
      LC_ALL=C printf -v secs '%.1f' "$secs"
      report "$m" "$f" 0 "$secs" 0
    else
      { echo "run-specs: its interpreter (running $# files) ended before this one did (exit $rc); it said:"
        tail -25 "$log"; } >> "$out/$name.log"
      report "$m" "$f" "$(( rc == 0 ? 1 : rc ))" 0.0 "$(( rc == 124 || rc == 137 ))"
    fi
  done
}

start=$(date +%s)
# The pool: JOBS files at once that mostly wait (on their servers, pacing
# and children), of which HEAVY_JOBS at most are heavy (a spec's line "--
# load: heavy": many processes or nginx workers at a provider's cap, under
# the emulator's strictest count), and beside them CPU_JOBS (twice the
# cores: they wait on their servers too) that are CPU-bound (valgrind's and
# asan's light files, at nice 10 while a heavy file runs or waits, then 0),
# so that the sanitizers fill the cores the others leave idle and never take
# their places; on this machine, whatever else runs the suite,
# SPEC_MACHINE_JOBS waiting files, HEAVY_JOBS heavy ones and CPU_JOBS
# CPU-bound ones at most (machine_slot). A file that must wait lets the
# next one of another class go first.
# What ran, per mode, and the failed files' ends; sets `status`.
summary() {
elapsed=$(( $(date +%s) - start ))
status=0 all_p=0 all_f=0
for m in "${mode_list[@]}"; do
  out=$outroot/specs-$m passed=0 failed=0 pending=0 n=0 broken=()
  for s in "$out"/*.status; do
    [ -f "$s" ] || continue
    read -r f rc secs p fl pe < "$s"
    passed=$((passed + p)) failed=$((failed + fl)) pending=$((pending + pe)) n=$((n + 1))
    if [ "$rc" != 0 ]; then status=1; broken+=("$f"); fi
  done
  # (the times the next run orders its files by: this run's, over the last ones, in one pass)
  if [ "$n" -gt 0 ]; then
    touch "$times/$m"
    awk 'FNR == NR { new[$1] = $3; next } !($1 in new) { print } END { for (f in new) print f, new[f] }' \
      <(cat "$out"/*.status) "$times/$m" 2>/dev/null > "$times/$m.new" && mv "$times/$m.new" "$times/$m"
  fi
  echo "$passed $failed $pending" > "$out/count"
  all_p=$((all_p + passed)) all_f=$((all_f + failed))
  printf '%s: %d passed, %d failed, %d pending, %d files\n' "$m" "$passed" "$failed" "$pending" "$n"
  settings "$m"
  for f in "${broken[@]+"${broken[@]}"}"; do
    name=$(basename "$f" .lua)
    block=$(sed -n 's/^spec ports: block \([0-9]*\):.*/\1/p' "$out/$name.log" | head -1)
    echo "FAILED $m $f: $out/$name.log (its end:)"
    tail -25 "$out/$name.log" | sed 's/^/  | /'
    printf '  replay alone: %s%sLUA_PATH="%s" LUA_CPATH="%s" STREAMCTL_ROOT=%s %s%s /usr/bin/busted %s\n' \
      "${block:+STREAMCTL_SPEC_PORT_BLOCK=$block }" \
      "${preload:+LD_PRELOAD=\"$preload\" ASAN_OPTIONS=detect_leaks=0 }" "$lua_path" \
      "$cpath" "$ROOT" "${wrap:+$wrap }" "$interp" "$f"
  done
done
label=$modes
[ "$tier" = unit ] && label="$modes, unit tier"
[ "$tier" = check ] && label="$modes, check tier"
printf '%s: %d passed, %d failed, %d files at once, in %d s\n' "$label" "$all_p" "$all_f" "$jobs" "$elapsed"
}

# Stopped (Ctrl-C, or a TERM): the files running are stopped, and what ran
# is summed up as at the end, with what did not; exit 130 or 143.
kill_tree() { # PID: it and every process under it (a file's busted and the servers it started)
  local c
  for c in $(pgrep -P "$1"); do kill_tree "$c"; done
  kill -TERM "$1" 2>/dev/null
}
stopped() {
  trap - INT TERM
  local left=${#queue[@]} were=$running p
  for p in $(jobs -p); do kill_tree "$p"; done
  wait 2>/dev/null
  echo "run-specs: stopped by SIG$1: $were file runs were running (stopped, not counted), $left not started;" \
    "what ended is below"
  summary
  exit "$2"
}
trap 'stopped INT 130' INT
trap 'stopped TERM 143' TERM
# The unit tier: JOBS interpreters per mode, each running its share of the
# files (batch); a share is made the longest first, each file to the one
# with the fewest seconds so far (by the last run's times).
if [ "$tier" = unit ]; then
  queue=() running=0
  unit_path
  while read -r m shares; do
    read -r -a share <<< "$shares"
    batch "$m" "${share[@]}" &
    running=$((running + 1))
  done < <(awk -v jobs="$jobs" '{
      best = 0
      for (b = 1; b <= jobs; b++) {
        k = $2 SUBSEP b
        if (best == 0 || load[k] + n[k] / 1000 < load[$2 SUBSEP best] + n[$2 SUBSEP best] / 1000) best = b
      }
      k = $2 SUBSEP best
      load[k] += $1; n[k]++; files[k] = files[k] " " $3
      if (!($2 in seen)) { seen[$2] = 1; modes[++nm] = $2 }
    }
    END { for (i = 1; i <= nm; i++) for (b = 1; b <= jobs; b++) if ((modes[i] SUBSEP b) in files) print modes[i] files[modes[i] SUBSEP b] }' \
    <<< "$timed")
  wait
  summary
  exit $status
fi
mapfile -t queue <<< "$list"
declare -A class_of
running=0 waiting=0 heavy=0 cpu=0 heavy_left=0 lane_nice=10
for e in "${queue[@]}"; do
  read -r m f kind <<< "$e"
  [ "$kind" = heavy ] && heavy_left=$((heavy_left + 1))
done
[ "$heavy_left" -gt 0 ] || lane_nice=0
while [ ${#queue[@]} -gt 0 ] || [ "$running" -gt 0 ]; do
  started=
  for i in "${!queue[@]}"; do
    read -r m f kind <<< "${queue[$i]}"
    # (its class: heavy, cpu (a light file under valgrind or asan) or wait)
    c=wait
    if [ "$kind" = heavy ]; then c=heavy; elif [ "$m" = valgrind ] || [ "$m" = asan ]; then c=cpu; fi
    case $c in
      cpu) [ "$cpu" -lt "$cpu_jobs" ] || continue; cpu=$((cpu + 1)) ;;
      heavy) [ "$waiting" -lt "$jobs" ] && [ "$heavy" -lt "$heavy_jobs" ] || continue
        waiting=$((waiting + 1)) heavy=$((heavy + 1)) heavy_left=$((heavy_left - 1)) ;;
      *) [ "$waiting" -lt "$jobs" ] || continue; waiting=$((waiting + 1)) ;;
    esac
    one "$m" "$f" "$kind" "$c" "$lane_nice" &
    class_of[$!]=$c running=$((running + 1)) started=1
    unset 'queue[i]'
    break
  done
  if [ -z "$started" ]; then
    wait -n -p ended
    running=$((running - 1))
    case ${class_of[$ended]-} in
      cpu) cpu=$((cpu - 1)) ;;
      heavy) waiting=$((waiting - 1)) heavy=$((heavy - 1)) ;;
      *) waiting=$((waiting - 1)) ;;
    esac
    unset 'class_of[$ended]'
    # (the last heavy file done: the CPU lane at nice 0 from now on, those running too; at nice 10 beside
    # other load, busy loops say, it would get a tenth of a core)
    if [ "$lane_nice" = 10 ] && [ $((heavy + heavy_left)) -eq 0 ]; then
      lane_nice=0
      for p in "${!class_of[@]}"; do [ "${class_of[$p]}" = cpu ] && tools/renice-tree.sh "$p"; done
    fi
  fi
done

summary
exit $status
