#!/usr/bin/env bash
# Sets each PID given, and all its descendants, to nice 0: what
# tools/run-specs.sh runs at nice 10 beside the heavy files, and make test's
# static analysis and fuzz build beside the specs, once nothing is left for
# them to hold back. Best effort: raising a priority needs root or
# CAP_SYS_NICE; without it they stay where they were, and this says nothing.
#
#   tools/renice-tree.sh PID...
tree() {
  local p
  for p in "$@"; do
    renice -n 0 -p "$p" >/dev/null 2>&1
    # shellcheck disable=SC2046
    tree $(ps -o pid= --ppid "$p" 2>/dev/null)
  done
}
tree "$@"
exit 0
