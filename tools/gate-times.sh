#!/usr/bin/env bash
# make gate-times: each tier's time and file count, from a fresh clone at
# HEAD (issue 90: the goals of issues 67 and 68 drifted unseen between two
# measurements by hand). The clone is built first (`make deps build`, not
# counted), then `make check-unit`, `make check` and `make test` run there
# one after the other, each timed whole, with how many spec files (and runs
# of them, every mode counted) it took. Run it on an idle machine: what it
# records is that machine's, with its cores and its load average as each
# tier ended.
#
#   tools/gate-times.sh [OUT]   OUT: where the figures go (bench/gate-times.json)
#
# OUT holds one JSON object: the commit, the date, the machine (cores, the
# kernel) and, per tier, its seconds, green or not, its files and runs, the
# goal (check-unit 8 s, check 150 s, test 480 s: docs/development/README.md)
# and the load average as it ended. It prints the same as a table. A tier
# that is red is recorded red; the next still runs. Exit 1 when one was red.
set -u
cd "$(dirname "$0")/.."
ROOT=$PWD
out=${1:-$ROOT/bench/gate-times.json}
commit=$(git rev-parse HEAD)
dir=$(mktemp -d "${TMPDIR:-/tmp}/gate-times.XXXXXX")
chmod 755 "$dir" # (the specs that run the command as another user read the clone: spec/48)
trap 'rm -rf "$dir"' EXIT
git clone -q "$ROOT" "$dir/clone" && git -C "$dir/clone" checkout -q "$commit" || exit 2
cd "$dir/clone" || exit 2
echo "gate-times: a fresh clone of $commit in $dir/clone; make deps build first (not timed)"
env -u MAKELEVEL -u MAKEFLAGS make --no-print-directory deps build > "$dir/build.log" 2>&1 \
  || { tail -20 "$dir/build.log"; echo "gate-times: the build failed"; exit 2; }
# (the files and runs a tier takes, as tools/run-specs.sh -l lists them)
count() { tools/run-specs.sh -l "$@" 2>/dev/null | awk '{ runs++; files[$2] = 1 } END { n = 0; for (f in files) n++; print n, runs + 0 }'; }
read -r unit_files unit_runs <<< "$(count -u lua5.4 1)"
read -r check_files check_runs <<< "$(count -c lua5.4,luajit 1)"
read -r test_files test_runs <<< "$(count lua5.4,luajit,valgrind,asan 1)"
status=0 rows=""
for t in check-unit:8:$unit_files:$unit_runs check:150:$check_files:$check_runs test:480:$test_files:$test_runs; do
  IFS=: read -r tier goal files runs <<< "$t"
  t0=$(date +%s)
  env -u MAKELEVEL -u MAKEFLAGS make --no-print-directory "$tier" > "$dir/$tier.log" 2>&1
  rc=$?
  secs=$(( $(date +%s) - t0 ))
  load=$(cut -d' ' -f1 /proc/loadavg)
  green=true
  [ "$rc" = 0 ] || { green=false; status=1; }
  printf 'gate-times: make %s: %s in %d s (goal %d s), %d files, %d runs, load %s\n' "$tier" \
    "$([ "$rc" = 0 ] && echo green || echo RED)" "$secs" "$goal" "$files" "$runs" "$load"
  rows="$rows${rows:+,}\"$tier\":{\"seconds\":$secs,\"green\":$green,\"goal\":$goal,\"files\":$files,\"runs\":$runs,\"load\":$load}"
done
printf '{"commit":"%s","date":"%s","cores":%d,"kernel":"%s","tiers":{%s}}\n' "$commit" \
  "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$(nproc)" "$(uname -r)" "$rows" > "$out"
echo "gate-times: written to $out"
exit $status
