#!/usr/bin/env bash
# make valgrind-set: chooses the spec files valgrind runs, into spec/valgrind.txt.
#
# valgrind costs 20 to 30 times a file's Lua and 1.5 s to start, and most
# files where our C runs in the spec's process reach only C that others
# reach too. Each file that tools/run-specs.sh runs against the ASan/UBSan
# builds (every file without "-- sanitizers: none (why)") is run once under
# Lua 5.4 with the C modules built with gcov's counters (build/coverage),
# in the spec's own process only: children (the command, the emulator)
# load the tree's modules, as they run outside valgrind too. gcov then
# gives the lines and branches of csrc/ each file reached, and
# tools/valgrind-set.lua picks files until they reach all that the files
# together reach, the most reached for the least CPU first, then drops any
# the others cover. The list records the csrc/ it was chosen for
# (`--hash`); spec/house/73 fails once csrc/ differs, naming this command.
# The ASan/UBSan builds still run every such file, leak checker included.
#
#   make valgrind-set              (a few minutes; the Makefile gives the modules'
#                                  sources and libraries: CORE_SRC, CORE_LIBS, ...)
#   tools/valgrind-set.sh --hash   the hash of csrc/ the list names
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

csrc_hash() { (export LC_ALL=C; cat csrc/*.c csrc/*.h | sha256sum | cut -c1-16); }
if [ "${1:-}" = --hash ]; then csrc_hash; exit 0; fi

: "${CORE_SRC:?run it as make valgrind-set}" "${CURL_SRC:?}" "${REDIS_SRC:?}" "${SIGNAL_SRC:?}"
: "${CORE_LIBS:?}" "${CURL_LIBS:?}" "${REDIS_LIBS:?}"
OUT=$ROOT/build/coverage
rm -rf "$OUT"
mkdir -p "$OUT/obj" "$OUT/streamctl" "$OUT/runs"
# The C modules with gcov's counters, at -O0 (a line is a line), as make build links them.
module() { # NAME LIBS SOURCES...
  local name=$1 libs=$2 objs=() s
  shift 2
  for s in "$@"; do
    gcc -O0 -g --coverage -fPIC -Wall -Wextra -Werror -I/usr/include/lua5.4 -Icsrc -c "$s" \
      -o "$OUT/obj/$(basename "$s" .c).o"
    objs+=("$OUT/obj/$(basename "$s" .c).o")
  done
  # shellcheck disable=SC2086 # (the libraries: words)
  gcc --coverage -shared "${objs[@]}" -o "$OUT/streamctl/$name.so" $libs
}
# shellcheck disable=SC2086 # (the Makefile's lists of sources: words)
{
  module core "$CORE_LIBS" $CORE_SRC
  module curl "$CURL_LIBS" $CURL_SRC
  module signal "" $SIGNAL_SRC
  module redis "$REDIS_LIBS" $REDIS_SRC
}

# The files the ASan mode runs, each with its gcov counts in a directory of its own.
# (VALGRIND_LIST empty: the list being remade may name a file since gone, which run-specs.sh refuses)
mapfile -t files < <(VALGRIND_LIST=/dev/null tools/run-specs.sh -l asan 1 | awk '{ print $2 }')
[ ${#files[@]} -gt 0 ] || { echo "valgrind-set: tools/run-specs.sh listed no file for asan" >&2; exit 1; }
# (the busted process alone takes the counted modules: LUA_INIT_5_4 runs in every lua5.4 the spec
# starts, and takes them out of the path of a child given the spec's own, as spec/operator/48's is)
export LUA_INIT_5_4="local p = '$OUT/?.so;'
if arg and arg[0] and arg[0]:find('busted', 1, true) then package.cpath = p .. package.cpath
else
  local i = package.cpath:find(p, 1, true)
  if i then package.cpath = package.cpath:sub(1, i - 1) .. package.cpath:sub(i + #p) end
end"
jobs=$(( 2 * $(nproc) ))
echo "valgrind-set: ${#files[@]} files under Lua 5.4 with gcov's counters, $jobs at once"
: > "$OUT/failed"
for f in "${files[@]}"; do
  id=${f//\//_}
  (
    TIMEFORMAT='%U %S'
    { time GCOV_PREFIX="$OUT/runs/$id" STREAMCTL_SPEC_OUT="$OUT/specs/$id" VALGRIND_LIST=/dev/null \
        tools/run-specs.sh lua5.4 1 "$f" \
        > "$OUT/runs/$id.log" 2>&1 || echo "$f" >> "$OUT/failed"; } 2> "$OUT/runs/$id.cpu"
  ) &
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do sleep 0.2; done
done
wait
if [ -s "$OUT/failed" ]; then
  echo "valgrind-set: these files failed (their logs: $OUT/runs/*.log); nothing chosen:" >&2
  cat "$OUT/failed" >&2
  exit 1
fi

# Each file's lines and branches by gcov (-t: to standard output; -b: branches).
for f in "${files[@]}"; do
  id=${f//\//_}
  dir=$OUT/runs/$id$OUT/obj
  : > "$OUT/runs/$id.gcov"
  [ -d "$dir" ] || continue # (no C in its process)
  for gcda in "$dir"/*.gcda; do
    name=$(basename "$gcda" .gcda)
    cp "$OUT/obj/$name.gcno" "$dir/"
    gcov -t -b -o "$dir" "csrc/$name.c" >> "$OUT/runs/$id.gcov" # (its errors on stderr; set -e stops there)
  done
done

LUA_INIT_5_4='' lua5.4 tools/valgrind-set.lua "$OUT/runs" "$(csrc_hash)" "${files[@]}" > spec/valgrind.txt.new
mv spec/valgrind.txt.new spec/valgrind.txt
echo "valgrind-set: written to spec/valgrind.txt"
