#!/usr/bin/env bash
# The gate under load: runs `make TARGET` for each TARGET in turn, each in a
# fresh clone at one commit, with busy loops beside the whole series, and
# stops at the first run that is not green. A row of the suite holds on a
# busy machine when what it asserts in real time is what must hold anywhere
# (docs/development/README.md, "Time in a spec"); this is how that is shown (issue 51: make check
# and make test green three times in a row beside four busy loops).
#
#   tools/under-load.sh [-l LOOPS] [-r REF] [-o DIR] [-R REPO] TARGET...
#
# -l LOOPS  busy loops (`while :; do :; done`, at nice 0) beside the series: 4
# -r REF    the commit every run takes, resolved once before the first: HEAD
#           (what is committed: a change not committed is in no clone)
# -o DIR    where the logs and the summary go: build/under-load (made; an
#           earlier series' files in it are kept, a run's log replaced)
# -R REPO   the repository cloned: this one
#
# Each run: `git clone` of REPO into DIR/N-TARGET, REF checked out, `make
# TARGET` there (so the build, the C checks' builds included, is made from
# nothing), its output in DIR/N-TARGET.log, and one line, printed and added
# to DIR/summary.txt: the run, the commit, the target, green or its exit
# status, the seconds, the tier's own count ("in all: ..." when it prints
# one), how many processes it left running (said, then stopped: a leak of
# the suite's) and the load average as it ended. A green run's clone is
# removed; a red one's is kept for reading, and the series ends there. Each
# make starts as a developer's would: no MAKELEVEL or MAKEFLAGS of a make
# that runs this, and in this script's session: a session of its own
# (setsid) would be a scheduling group of its own under the kernel's
# autogroup (kernel.sched_autogroup_enabled), given half the CPU whatever
# the loops, and the load a fraction of what it says. The loops and
# whatever the running make started (its process group: not what left it,
# as a daemon does) are stopped however the series ends: the last run, a
# red one, Ctrl-C or a TERM (a KILL of this script leaves them). It
# prints the loops' pids as it starts. Exit: 0 when every run was green; the red run's make's status
# (make's own is 2); 1 when a clone cannot be made; 130 and 143 on INT and
# TERM; 64 on a usage error (nothing run).
set -u
usage() {
  echo "usage: tools/under-load.sh [-l LOOPS] [-r REF] [-o DIR] [-R REPO] TARGET... (the options: its head)" >&2
  echo "tools/under-load.sh: $1: nothing was run" >&2
  exit 64
}
loops=4 ref=HEAD out="" repo=""
while getopts "l:r:o:R:" opt; do
  case $opt in
    l) loops=$OPTARG ;;
    r) ref=$OPTARG ;;
    o) out=$OPTARG ;;
    R) repo=$OPTARG ;;
    *) usage "an option it does not know or without its value (its options: -l, -r, -o, -R)" ;;
  esac
done
shift $((OPTIND - 1))
[ $# -ge 1 ] || usage "no TARGET: name at least one make target (check, test, ...)"
case $loops in
  '' | *[!0-9]*) usage "-l '$loops': LOOPS is a whole number of busy loops (0 or more)" ;;
esac
for target in "$@"; do
  case $target in
    '' | -* | *[!A-Za-z0-9_.-]*) usage "target '$target': a make target is letters, digits, '_', '.' and '-'" ;;
  esac
done
for tool in git make pgrep ps; do
  command -v "$tool" > /dev/null || usage "no '$tool' here: it needs git, make, pgrep and ps (procps)"
done
repo=${repo:-$(cd "$(dirname "$0")/.." && pwd)}
out=${out:-$repo/build/under-load}
commit=$(git -C "$repo" rev-parse --verify --quiet "$ref^{commit}") \
  || usage "-r '$ref': not a commit of $repo"
short=$(git -C "$repo" rev-parse --short "$commit")
mkdir -p "$out" || usage "-o '$out': cannot be made"
out=$(cd "$out" && pwd)

pids=() make_pid=""
# make runs in a process group of its own (job control, below): the group
# is everything it started but what left it. TERM, 10 s, then KILL.
stop_group() {
  [ -n "$make_pid" ] || return 0
  # (and the child itself, should a signal come before its group is made)
  kill -TERM "$make_pid" 2>/dev/null
  kill -TERM -- "-$make_pid" 2>/dev/null
  for _ in $(seq 1 100); do kill -0 -- "-$make_pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL -- "-$make_pid" 2>/dev/null
  make_pid=""
}
stop() {
  stop_group
  [ ${#pids[@]} -eq 0 ] || kill "${pids[@]}" 2>/dev/null
  pids=()
}
trap stop EXIT
trap 'stop; exit 130' INT
trap 'stop; exit 143' TERM

for _ in $(seq 1 "$loops"); do
  # (holding none of the series' output: a reader of it sees its end when it ends)
  bash -c 'while :; do :; done' < /dev/null > /dev/null 2>&1 &
  pids+=($!)
done
echo "under load: ${#pids[@]} busy loops (pids ${pids[*]:-none}) beside $# runs of" \
  "$short; logs in $out"

n=0
for target in "$@"; do
  n=$((n + 1))
  label=$n-$target dir=$out/$n-$target log=$out/$n-$target.log
  rm -rf "$dir"
  if ! { git clone -q "$repo" "$dir" && git -C "$dir" checkout -q "$commit"; }; then
    echo "run $label: cannot clone $repo at $commit into $dir" >&2
    exit 1
  fi
  t0=$(date +%s)
  # job control on for this one: the job leads a process group of its own
  set -m
  (cd "$dir" && exec env -u MAKELEVEL -u MAKEFLAGS -u MFLAGS make "$target") > "$log" 2>&1 < /dev/null &
  make_pid=$!
  set +m
  wait "$make_pid"
  rc=$?
  # what the run left running in its group is a leak of the suite's: said, then stopped
  left=$(pgrep -g "$make_pid" -d ' ')
  [ -z "$left" ] || echo "run $label left processes running (stopped now): $(ps -o pid=,args= -p "${left// /,}" | sed 's/^ *//' | cut -c1-120 | paste -sd ';')" >&2
  stop_group
  count=$(sed -n 's/^in all: //p' "$log" | tail -1)
  line="$label $short make $target"
  line+=" $([ "$rc" = 0 ] && echo green || echo "RED (exit $rc)") $(($(date +%s) - t0)) s"
  line+="${count:+; $count}${left:+; left $(wc -w <<< "$left") running}; load $(cut -d' ' -f1-3 /proc/loadavg) at $(date -u +%H:%M) UTC"
  echo "$line" | tee -a "$out/summary.txt"
  if [ "$rc" != 0 ]; then
    echo "run $label is red: its log is $log, its clone $dir" >&2
    exit "$rc"
  fi
  rm -rf "$dir"
done
