#!/bin/sh
# make sizes: the library's file sizes and its longest functions (the house keeps every function under about 80 lines).
#   Lua: luac5.4 -l lists every function with its first and last line ("function <file:a,b>").
#   C:   Universal Ctags gives each function's end line (--fields=+ne).
# Usage: bench/sizes.sh [TOP]   (TOP: how many functions to list, 15 by default)
# Run from the repository's root; reads lua/streamctl (the library, emulator aside) and csrc.
set -eu
top=${1:-15}
lib=$(find lua/streamctl -name '*.lua' -not -path '*/emulator/*' | sort)
echo "== files (lines), library"
wc -l $lib csrc/*.c | sort -rn
echo "== longest functions (lines, file:first line)"
{
  for f in $lib; do
    luac5.4 -p -l "$f" | sed -nE 's/^function <([^:]+):([0-9]+),([0-9]+)>.*/\1 \2 \3/p'
  done
  ctags -x --c-kinds=f --fields=+ne --_xformat='%F %n %{end}' csrc/*.c
} | awk '{ printf "%5d  %s:%d\n", $3 - $2 + 1, $1, $2 }' | sort -rn | head -n "$top"
