#!/bin/sh
# make sizes: the library's file sizes and its longest functions, and what is over the house's limits (no library
# file over about 500 lines, no function over about 80 counting the functions nested in it).
#   Lua: luac5.4 -l lists every function with its first and last line ("function <file:a,b>"): a function's span
#        holds the functions nested in it, so they count.
#   C:   Universal Ctags gives each function's end line (--fields=+ne).
# Usage: bench/sizes.sh [TOP]   (TOP: how many files and functions to list, 15 by default)
# Run from the repository's root; reads src/streamctl (the library) and csrc, then the emulator
# (emulator/) and every program (bin/, emulator/bin/) apart. Exit 1 when anything is over a limit (make lint runs it:
# the limits are a gate, spec/71 shows it catches a file and a function over them).
set -eu
top=${1:-15}
lib=$(find src/streamctl -name '*.lua' | sort)
files=$(wc -l $lib csrc/*.c | grep -v ' total$' | sort -rn)
funcs=$({
  for f in $lib; do
    luac5.4 -p -l "$f" | sed -nE 's/^function <([^:]+):([0-9]+),([0-9]+)>.*/\1 \2 \3/p'
  done
  ctags -x --c-kinds=f --fields=+ne --_xformat='%F %n %{end}' csrc/*.c
} | awk '{ printf "%5d  %s:%d\n", $3 - $2 + 1, $1, $2 }' | sort -rn)
echo "== largest files (lines), library"
echo "$files" | head -n "$top"
echo "== longest functions (lines, nested ones counted; file:first line)"
echo "$funcs" | head -n "$top"
echo "== over the limits: files over 500 lines, functions over 80"
over_lines=$(echo "$files" | awk '$1 > 500 { print "  file " $0 }')
over_funcs=$(echo "$funcs" | awk '$1 > 80 { print "  function " $0 }')
echo "${over_lines:-  no file}"
echo "${over_funcs:-  no function}"
status=0
[ -z "$over_lines$over_funcs" ] || status=1
# The emulator (its own rock) and every program under bin/ (Lua scripts: the
# command's and the emulator's launchers) are held to the same limits, listed apart.
over() { # TITLE FILE...
  echo "== over the limits in $1"
  shift
  o=$(wc -l "$@" | grep -v ' total$' | awk '$1 > 500 { print "  file " $0 }')
  f=$(for x in "$@"; do
    luac5.4 -p -l "$x" | sed -nE 's/^function <([^:]+):([0-9]+),([0-9]+)>.*/\1 \2 \3/p'
  done | awk '{ n = $3 - $2 + 1; if (n > 80) print "  function " n "  " $1 ":" $2 }')
  echo "${o:-  no file}"
  echo "${f:-  no function}"
  [ -z "$o$f" ] || status=1
}
# shellcheck disable=SC2046 # (file names without blanks)
over "the emulator" $(find emulator -name '*.lua' | sort)
# shellcheck disable=SC2046
over "bin/" $(find bin emulator/bin -type f | sort)
exit $status
