#!/usr/bin/env bash
# make check-install: README "Install" as a new user meets it. Every ```sh
# install-deb block of that section (the Debian packages), then every ```sh
# install block (luarocks), each kind in order in a pristine Debian 12 root of
# its own (tools/pristine-root.sh: debootstrap --variant=minbase bookworm, in
# a private network namespace that reaches only the Debian mirror), as root,
# from a clone of this repository's HEAD (committed work only); then checks
# each rock the luarocks blocks installed, in each tree, against its
# rockspec (tools/rock-manifest-check.lua: no file of another rock); and in
# each root, what an operator does next (tools/installed-check.sh): man
# finds the page, bash-completion loads the completion, plain luajit
# requires streamctl beside lua5.4, the shipped OpenResty example runs. Not in
# make test: it needs root, debootstrap and the mirror; about 80 s once the
# pristine root is made.
#
#   tools/check-install.sh            run every block; exit 1 at the first that fails
#   KEEP=1 tools/check-install.sh     leave the last root in build/check-install/ to look at
#   README=FILE tools/check-install.sh  the blocks of another file's Install section (trying a draft)
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
WORK=$REPO/build/check-install
PRISTINE_PROG=check-install
# shellcheck source=tools/pristine-root.sh
. tools/pristine-root.sh


begun=$(date +%s)
mkdir -p "$WORK"
git bundle create "$WORK/streamctl.bundle" HEAD >/dev/null 2>&1

# The blocks of one kind (`sh install`, `sh install-deb`): README's "## Install" section, in order.
blocks_of() {
  local kind=$1 dir=$WORK/blocks-$1
  rm -rf "$dir" && mkdir -p "$dir"
  awk -v dir="$dir" -v fence="\`\`\`sh $kind" '
    /^## / { inside = ($0 == "## Install") }
    inside && $0 == fence { n++; file = sprintf("%s/%02d.sh", dir, n); open = 1; next }
    open && /^```$/ { open = 0; close(file); next }
    open { print > file }
  ' "${README:-README.md}"
  find "$dir" -name '*.sh' | sort
}

total=0
for kind in install-deb install; do
  mapfile -t blocks < <(blocks_of "$kind")
  [ ${#blocks[@]} -gt 0 ] || die "README.md has no \`\`\`sh $kind block under ## Install"
  pristine_begin "$kind"
  cp "$WORK/streamctl.bundle" "$ROOT/root/streamctl.bundle"
  # git, to clone: a user has the clone already (README: "from a clone of this repository")
  pristine_run 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq git >/dev/null' \
    || die "could not install git in the root"
  pristine_run 'git -c advice.detachedHead=false clone -q /root/streamctl.bundle /root/streamctl' \
    || die "could not clone"
  say ""
  say "== the \`sh $kind\` blocks: a pristine Debian 12 root, no network but the mirror, a clone of" \
    "$(git log -1 --format='%h %s' | cut -c1-60)"
  n=0
  for b in "${blocks[@]}"; do
    n=$((n + 1))
    say ""
    say "== $kind block $n of ${#blocks[@]} (README Install):"
    sed 's/^/   $ /' "$b"
    cp "$b" "$ROOT/root/block.sh"
    t0=$(date +%s)
    log=$WORK/$kind-$n.log
    # each line echoed as it runs; the first that fails stops the block
    if pristine_run 'cd /root/streamctl && DEBIAN_FRONTEND=noninteractive bash -e /root/block.sh' >"$log" 2>&1; then
      sed 's/^/   | /' "$log" | tail -15
      say "   ok ($(($(date +%s) - t0)) s)"
    else
      sed 's/^/   | /' "$log" | tail -40
      die "$kind block $n failed after $(($(date +%s) - t0)) s (whole log: $log)"
    fi
  done
  total=$((total + n))
  if [ "$kind" = install ]; then
    # each rock the blocks installed, in each tree, holds what its rockspec lists and nothing else
    say ""
    say "== the installed rocks' manifests against their rockspecs (tools/rock-manifest-check.lua):"
    if pristine_run 'cd /root/streamctl && lua5.4 tools/rock-manifest-check.lua /usr/local 5.4 /opt/streamctl-luajit 5.1' \
        >"$WORK/manifests.log" 2>&1; then
      sed 's/^/   | /' "$WORK/manifests.log"
    else
      sed 's/^/   | /' "$WORK/manifests.log"
      die "an installed rock holds what its rockspec does not list (above)"
    fi
  fi
  # what an operator does next, on what these blocks installed (tools/installed-check.sh):
  # man, completion, plain luajit beside lua5.4, the shipped OpenResty example
  cp tools/installed-check.sh "$ROOT/root/installed-check.sh"
  if [ "$kind" = install ]; then how="rocks /root/streamctl"; else how=deb; fi
  for check in tools man completion "luajit $how" "openresty $how"; do
    say ""
    say "== after the \`sh $kind\` blocks: installed-check.sh $check"
    log=$WORK/$kind-check-${check%% *}.log
    if pristine_run "cd /root && bash /root/installed-check.sh $check" >"$log" 2>&1; then
      sed 's/^/   | /' "$log" | tail -15
    else
      sed 's/^/   | /' "$log" | tail -40
      die "installed-check.sh $check failed after the \`sh $kind\` blocks (whole log: $log)"
    fi
  done
  pristine_end
done
say ""
say "check-install: all $total blocks of README Install and the checks after them passed ($(($(date +%s) - begun)) s in all)"
