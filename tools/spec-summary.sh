#!/usr/bin/env bash
# The totals of the spec phases that ran, from each mode's
# build/specs-MODE/count ("passed failed pending", tools/run-specs.sh): a
# line "MODE N passed; ..." (or "MODE not run"), then "in all: P passed,
# F failed, E pending". make check and make test end with it.
#
#   tools/spec-summary.sh MODE...
cd "$(dirname "$0")/.." || exit 2
for m in "$@"; do
  if read -r p f e 2>/dev/null < "build/specs-$m/count"; then printf '%s %s %s %s\n' "$m" "$p" "$f" "$e"
  else printf '%s -\n' "$m"; fi
done | awk '$2 == "-" {printf "%s%s not run", (NR > 1 ? "; " : ""), $1; next}
  {printf "%s%s %d passed", (NR > 1 ? "; " : ""), $1, $2; p += $2; f += $3; e += $4}
  END {printf "\nin all: %d passed, %d failed, %d pending\n", p, f, e}'
