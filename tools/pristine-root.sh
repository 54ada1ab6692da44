# A pristine Debian 12 root in a private network namespace, for
# tools/check-install.sh and tools/check-deb.sh (sourced; bash). The root is
# `debootstrap --variant=minbase bookworm`, made once into $WORK/bookworm.tgz
# and unpacked afresh by every pristine_begin (delete the file to make a new
# one). The namespace has only loopback; apt inside reaches the Debian mirror
# through a forwarder (a unix socket bridged to the mirror's port 80), so
# nothing on this machine (its packages, its ports, a running emulator) can
# hide a missing step.
#
#   WORK=DIR PRISTINE_PROG=NAME; . tools/pristine-root.sh   (also defines say, die)
#   pristine_begin NAME      # a fresh root in $WORK/NAME (ROOT), its namespace up
#   pristine_run 'CMD'       # CMD as root inside it (bash -c), a clean environment
#   pristine_end             # kills what runs inside, unmounts, deletes it (KEEP=1 keeps the root)
#
# pristine_end runs at exit too. Needs root; installs debootstrap, socat and
# iproute2 on this machine when they are missing.

PRISTINE_PIDS=()
ROOT=""
PRISTINE_NS=""

# say: a line to stdout; die: the script's name and a message to stderr, exit 1
say() { printf '%s\n' "$*"; }
die() { printf '%s: %s\n' "${PRISTINE_PROG:-pristine-root}" "$*" >&2; exit 1; }

pristine_tools() {
  [ "$(id -u)" = 0 ] || die "needs root (debootstrap, chroot, ip netns)"
  local need=()
  command -v debootstrap >/dev/null || need+=(debootstrap)
  command -v socat >/dev/null || need+=(socat)
  command -v ip >/dev/null || need+=(iproute2)
  if [ ${#need[@]} -gt 0 ]; then
    say "installing on this machine: ${need[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  fi
}

pristine_mirror() {
  local mirror
  mirror=$(sed -n 's/^URIs: *\(http:[^ ]*\/debian\)$/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1)
  printf '%s' "${mirror:-http://deb.debian.org/debian}"
}

pristine_begin() {
  local name=$1 mirror host base=$WORK/bookworm.tgz sock
  pristine_tools
  mirror=$(pristine_mirror)
  host=$(printf '%s' "$mirror" | sed 's|^http://\([^/:]*\).*|\1|')
  mkdir -p "$WORK"
  if [ ! -f "$base" ]; then
    say "making a pristine Debian 12 root (debootstrap --variant=minbase bookworm, about a minute)"
    rm -rf "$WORK/base" && mkdir -p "$WORK/base"
    debootstrap --variant=minbase bookworm "$WORK/base" "$mirror" >"$WORK/debootstrap.log" 2>&1 \
      || { tail -20 "$WORK/debootstrap.log"; die "debootstrap failed"; }
    tar -C "$WORK/base" -czf "$base" . && rm -rf "$WORK/base"
  fi
  ROOT=$WORK/$name
  PRISTINE_NS=streamctl-$name-$$
  trap pristine_end EXIT
  rm -rf "$ROOT" && mkdir -p "$ROOT" && tar -C "$ROOT" -xzf "$base"
  rm -f "$ROOT/etc/apt/sources.list"
  cp /etc/apt/sources.list.d/*.sources "$ROOT/etc/apt/sources.list.d/" 2>/dev/null \
    || printf 'deb %s bookworm main\n' "$mirror" >"$ROOT/etc/apt/sources.list"
  printf 'Acquire::http::Proxy "http://127.0.0.1:3142/";\n' >"$ROOT/etc/apt/apt.conf.d/99proxy"
  local m
  for m in proc sys dev dev/pts; do mount --bind "/$m" "$ROOT/$m"; done
  ip netns add "$PRISTINE_NS"
  ip netns exec "$PRISTINE_NS" ip link set lo up
  sock=$WORK/$name.apt.sock
  rm -f "$sock"
  socat "UNIX-LISTEN:$sock,fork" "TCP:$host:80" & PRISTINE_PIDS+=($!)
  ip netns exec "$PRISTINE_NS" socat TCP-LISTEN:3142,bind=127.0.0.1,fork,reuseaddr "UNIX-CONNECT:$sock" &
  PRISTINE_PIDS+=($!)
  sleep 0.5
}

pristine_run() {
  ip netns exec "$PRISTINE_NS" chroot "$ROOT" /usr/bin/env -i HOME=/root TERM=dumb LANG=C.UTF-8 \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin /bin/bash -c "$1"
}

pristine_end() {
  [ -n "$ROOT" ] || return 0
  set +e
  # anything left running inside the root (nginx, the emulator)
  local p m
  for p in /proc/[0-9]*; do
    [ "$(readlink "$p/root" 2>/dev/null)" = "$ROOT" ] && kill -9 "${p#/proc/}" 2>/dev/null
  done
  for m in dev/pts dev sys proc; do umount -l "$ROOT/$m" 2>/dev/null; done
  for p in "${PRISTINE_PIDS[@]}"; do kill "$p" 2>/dev/null; done
  PRISTINE_PIDS=()
  ip netns del "$PRISTINE_NS" 2>/dev/null
  rm -f "$WORK"/*.apt.sock
  [ -n "${KEEP:-}" ] || rm -rf "$ROOT"
  ROOT=""
  set -e
}
