#!/bin/sh
# Where one call's CPU goes, in machine instructions (callgrind: exact and
# the same on a busy machine, where timings are not): for each mode of
# bench/profile/call.lua (call, prepare, multi, fake, and tracing's: traced,
# spans, export, sampled), the loop is counted at N and
# at 3N calls and the difference divided by 2N, so start-up, loading and
# the warm-up cancel out; the instructions per call are printed by the
# library they ran in (the interpreter, libcurl, libc, libcrypto, our C).
# The kernel's share (syscalls, loopback TCP) is not counted here: see
# docs/performance.md, "Where a call's time goes".
#
#   bench/profile/run.sh [N]        (make profile; N: 1024 by default: at 300,
#                                   the collector's steps made tracing's
#                                   few thousand instructions swing by as many;
#                                   a multiple of 256, export's flush interval)
#
# Lua 5.4 runs in bench/profile/lua54 (built here from Debian's liblua5.4.a,
# with symbols); the call's own C (streamctl/core.so, streamctl/curl.so)
# from build/5.4. Output in build/profile/.
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
N=${1:-1024}
OUT="$ROOT/build/profile"
mkdir -p "$OUT"
BIN="$OUT/lua54"
cc -O2 -g -Wall -Wextra -Werror -I/usr/include/lua5.4 -o "$BIN" "$ROOT/bench/profile/lua54.c" \
  /usr/lib/x86_64-linux-gnu/liblua5.4.a -lm -ldl -Wl,-E
export LUA_PATH="$ROOT/?.lua;$ROOT/src/?.lua;$ROOT/src/?/init.lua;$ROOT/emulator/src/?.lua;$ROOT/emulator/src/?/init.lua;;"
export LUA_CPATH="$ROOT/build/5.4/lib/lua/5.4/?.so;;"
export STREAMCTL_ROOT="$ROOT"

# Instructions per object file in a callgrind output: "count object" lines.
by_object() {
  callgrind_annotate --threshold=100 "$1" 2>/dev/null | awk '
    /^ *[0-9,]+ \(/ && /\[/ {
      n = $1; gsub(",", "", n)
      obj = $0; sub(/.*\[/, "", obj); sub(/\].*/, "", obj); sub(/.*\//, "", obj)
      sum[obj] += n
    }
    END { for (o in sum) print sum[o], o }'
}

per_call() { awk -v calls=$((2 * N)) 'FNR == NR { a += $1; next } { b += $1 } END { printf "%.0f", (b - a) / calls }' \
  "$OUT/$1-$N.objects" "$OUT/$1-$((3 * N)).objects"; }
for mode in call prepare multi fake traced spans export sampled; do
  for n in "$N" $((3 * N)); do
    valgrind --tool=callgrind --callgrind-out-file="$OUT/$mode-$n.out" "$BIN" "$ROOT/bench/profile/call.lua" \
      "$mode" "$n" >"$OUT/$mode-$n.log" 2>&1 || { cat "$OUT/$mode-$n.log"; exit 1; }
    by_object "$OUT/$mode-$n.out" >"$OUT/$mode-$n.objects"
  done
  echo "== $mode: instructions per call, by library (Lua 5.4)"
  awk -v calls=$((2 * N)) -v lua="$(basename "$BIN")" '
    FNR == NR { a[$2] = $1; next }
    { d = ($1 - a[$2]) / calls; total += d; if (d >= 500) { name = $2 == lua ? "the interpreter (Lua 5.4)" : $2; row[name] = d } }
    END {
      for (k in row) printf "%9.0f  %s\n", row[k], k | "sort -rn"
      close("sort -rn")
      printf "%9.0f  all\n", total
    }' "$OUT/$mode-$N.objects" "$OUT/$mode-$((3 * N)).objects"
done
echo "== the steps of a call (instructions; the kernel's share not counted)"
call=$(per_call call) prepare=$(per_call prepare) multi=$(per_call multi) fake=$(per_call fake)
printf "%9d  prepare\n%9d  the exchange in libcurl (multi - prepare)\n%9d  the rest (call - multi)\n" \
  "$prepare" $((multi - prepare)) $((call - multi))
printf "%9d  the call without the network (fake)\n" "$fake"
echo "== what tracing adds to a call without the network (instructions)"
traced=$(per_call traced) spans=$(per_call spans) export=$(per_call export) sampled=$(per_call sampled)
printf "%9d  a traceparent on the request, in a caller's trace (traced - fake)\n" $((traced - fake))
printf "%9d  a new trace sampled out: its ids and traceparent (sampled - fake)\n" $((sampled - fake))
printf "%9d  exported: two spans as records, encoded, queued, flushed (export - fake)\n" $((export - fake))
printf "%9d  the two spans as plain tables to an on_span hook instead (spans - fake)\n" $((spans - fake))

# LuaJIT: its sampling profiler (jit.p) over the same loop against the
# emulator, 20 times as long (samples, not instructions: the kernel's time
# in a syscall counts to the C code that made it).
echo "== LuaJIT: where the samples fell, by VM state and by the function's stack (jit.p)"
export LUA_CPATH="$ROOT/build/jit/lib/lua/5.1/?.so;;"
luajit -jp=v,"$OUT/jit-states.txt" "$ROOT/bench/profile/call.lua" call $((20 * N))
luajit -jp=F2,"$OUT/jit-functions.txt" "$ROOT/bench/profile/call.lua" call $((20 * N))
cat "$OUT/jit-states.txt"
head -8 "$OUT/jit-functions.txt"
