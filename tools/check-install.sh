#!/usr/bin/env bash
# make check-install: README "Install" as a new user meets it. Every
# ```sh install block of that section runs, in order, as root in a pristine
# Debian 12 root (debootstrap --variant=minbase bookworm) inside a private
# network namespace (only loopback; apt reaches the Debian mirror through a
# forwarder), from a clone of this repository's HEAD (committed work only).
# Nothing on this machine (its packages, its ports, a running emulator) can
# hide a missing step. Not in make test: it needs root, debootstrap and the
# mirror, and takes about ten minutes.
#
#   tools/check-install.sh            run every block; exit 1 at the first that fails
#   KEEP=1 tools/check-install.sh     leave the root in build/check-install/root to look at
#   README=FILE tools/check-install.sh  the blocks of another file's Install section (trying a draft)
#
# The pristine root is made once into build/check-install/bookworm.tgz and
# unpacked afresh for every run (delete the file to make a new one).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
WORK=$REPO/build/check-install
ROOT=$WORK/root
BASE=$WORK/bookworm.tgz
NS=streamctl-install-$$
SOCK=$WORK/apt.sock
PIDS=()

say() { printf '%s\n' "$*"; }
die() { printf 'check-install: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root (debootstrap, chroot, ip netns)"
mirror=$(sed -n 's/^URIs: *\(http:[^ ]*\/debian\)$/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1)
mirror=${mirror:-http://deb.debian.org/debian}
host=$(printf '%s' "$mirror" | sed 's|^http://\([^/:]*\).*|\1|')

need=()
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v socat >/dev/null || need+=(socat)
command -v ip >/dev/null || need+=(iproute2)
if [ ${#need[@]} -gt 0 ]; then
  say "installing on this machine: ${need[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

begun=$(date +%s)
cleanup() {
  set +e
  # anything the blocks left running inside the root (nginx, the emulator)
  for p in /proc/[0-9]*; do
    [ "$(readlink "$p/root" 2>/dev/null)" = "$ROOT" ] && kill -9 "${p#/proc/}" 2>/dev/null
  done
  for m in dev/pts dev sys proc; do umount -l "$ROOT/$m" 2>/dev/null; done
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  ip netns del "$NS" 2>/dev/null
  rm -f "$SOCK"
  [ -n "${KEEP:-}" ] || rm -rf "$ROOT"
}
trap cleanup EXIT

# The blocks: README's "## Install" section, each ```sh install fence.
blocks=$WORK/blocks
mkdir -p "$WORK" && rm -rf "$blocks" && mkdir -p "$blocks"
awk -v dir="$blocks" '
  /^## / { inside = ($0 == "## Install") }
  inside && /^```sh install$/ { n++; file = sprintf("%s/%02d.sh", dir, n); open = 1; next }
  open && /^```$/ { open = 0; close(file); next }
  open { print > file }
' "${README:-README.md}"
count=$(find "$blocks" -name '*.sh' | wc -l)
[ "$count" -gt 0 ] || die "README.md has no \`\`\`sh install block under ## Install"

if [ ! -f "$BASE" ]; then
  say "making a pristine Debian 12 root (debootstrap --variant=minbase bookworm, about a minute)"
  rm -rf "$WORK/base" && mkdir -p "$WORK/base"
  debootstrap --variant=minbase bookworm "$WORK/base" "$mirror" >"$WORK/debootstrap.log" 2>&1 \
    || { tail -20 "$WORK/debootstrap.log"; die "debootstrap failed"; }
  tar -C "$WORK/base" -czf "$BASE" . && rm -rf "$WORK/base"
fi
rm -rf "$ROOT" && mkdir -p "$ROOT" && tar -C "$ROOT" -xzf "$BASE"
rm -f "$ROOT/etc/apt/sources.list"
cp /etc/apt/sources.list.d/*.sources "$ROOT/etc/apt/sources.list.d/" 2>/dev/null \
  || printf 'deb %s bookworm main\n' "$mirror" > "$ROOT/etc/apt/sources.list"
printf 'Acquire::http::Proxy "http://127.0.0.1:3142/";\n' > "$ROOT/etc/apt/apt.conf.d/99proxy"
git bundle create "$ROOT/root/streamctl.bundle" HEAD >/dev/null 2>&1
for m in proc sys dev dev/pts; do mount --bind "/$m" "$ROOT/$m"; done

# Only loopback; apt's proxy port inside is a unix socket bridged to the mirror outside.
ip netns add "$NS"
ip netns exec "$NS" ip link set lo up
rm -f "$SOCK"
socat "UNIX-LISTEN:$SOCK,fork" "TCP:$host:80" & PIDS+=($!)
ip netns exec "$NS" socat TCP-LISTEN:3142,bind=127.0.0.1,fork,reuseaddr "UNIX-CONNECT:$SOCK" & PIDS+=($!)
sleep 0.5

inside() {
  ip netns exec "$NS" chroot "$ROOT" /usr/bin/env -i HOME=/root TERM=dumb LANG=C.UTF-8 \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin /bin/bash -c "$1"
}

# git, to clone: a user has the clone already (README: "from a clone of this repository")
inside 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq git >/dev/null' \
  || die "could not install git in the root"
inside 'git -c advice.detachedHead=false clone -q /root/streamctl.bundle /root/streamctl' || die "could not clone"
say "a pristine Debian 12 root, no network but the mirror, a clone of $(git log -1 --format='%h %s' | cut -c1-70)"

n=0
for b in "$blocks"/*.sh; do
  n=$((n + 1))
  say ""
  say "== block $n of $count (README Install):"
  sed 's/^/   $ /' "$b"
  cp "$b" "$ROOT/root/block.sh"
  t0=$(date +%s)
  # each line echoed as it runs; the first that fails stops the block
  if inside 'cd /root/streamctl && DEBIAN_FRONTEND=noninteractive bash -e /root/block.sh' \
      >"$WORK/block-$n.log" 2>&1; then
    sed 's/^/   | /' "$WORK/block-$n.log" | tail -15
    say "   ok ($(( $(date +%s) - t0 )) s)"
  else
    sed 's/^/   | /' "$WORK/block-$n.log" | tail -40
    die "block $n failed after $(( $(date +%s) - t0 )) s (whole log: $WORK/block-$n.log)"
  fi
done
say ""
say "check-install: all $count blocks of README Install passed ($(( $(date +%s) - begun )) s in all)"
