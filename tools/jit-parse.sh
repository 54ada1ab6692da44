#!/bin/sh
# make lint: every Lua file LuaJIT runs parses as LuaJIT's Lua (5.1 with its
# extensions): the library, the emulator, the specs and the examples run
# under both interpreters, and Lua 5.4's own syntax (`//`, `<const>`, an
# integer `0x` past 2^53...) passes luacheck yet breaks every LuaJIT user
# at load time. Compiling to bytecode (`luajit -b`) parses without running.
# Usage: tools/jit-parse.sh DIR...   (exit 1 naming each file that does not parse)
set -u
status=0
for f in $(find "$@" -name '*.lua' -type f | sort); do
  if ! out=$(luajit -b "$f" /dev/null 2>&1); then
    echo "$out"
    status=1
  fi
done
exit $status
