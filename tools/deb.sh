#!/usr/bin/env bash
# make deb: the Debian packages (debian/, dh-lua, debhelper) from this working
# tree (its tracked files and the new ones git does not ignore), into
# build/deb/: lua-streamctl, lua-streamctl-redis, streamctl and
# streamctl-emulator. Installs what the build needs from apt first (as root;
# otherwise names it), then checks the packages with lintian (--pedantic,
# informational tags shown) when it is installed: any error or warning that
# no override in debian/ explains fails the build.
#
#   tools/deb.sh             build, and lintian if installed; prints the packages
#   DEB_LINT=1 tools/deb.sh  lintian always (installed first): make check-deb
#   tools/deb.sh --lint      only lintian, on what build/deb holds
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=$PWD/build/deb

die() { printf 'make deb: %s\n' "$*" >&2; exit 1; }

# apt_get install PACKAGE... | apt_get build-dep DIR: as root, quietly (the
# log in build/deb.apt.log, its end said on a failure); otherwise says what
# to run.
apt_get() {
  local what=$1
  shift
  [ $# -gt 0 ] || return 0
  if [ "$(id -u)" != 0 ]; then die "needs: apt-get $what $*, or run as root to do it"; fi
  echo "apt-get $what $*"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get "$what" -y -qq --no-install-recommends "$@"; } \
    >"$OUT.apt.log" 2>&1 || { tail -20 "$OUT.apt.log"; die "apt-get $what failed ($OUT.apt.log)"; }
}

lint() {
  local changes
  changes=$(ls "$OUT"/*.changes 2>/dev/null | head -1)
  [ -n "$changes" ] || die "nothing to check in $OUT: run make deb"
  # (lintian is not meant to run as root: as nobody, when this is root)
  local -a as=()
  if [ "$(id -u)" = 0 ]; then as=(setpriv --reuid=nobody --regid=nogroup --clear-groups env HOME=/tmp); fi
  echo "lintian --pedantic --info on $(basename "$changes"):"
  if "${as[@]}" lintian --pedantic --info --fail-on error,warning "$changes" >"$OUT/lintian.log" 2>&1; then
    sed 's/^/  /' "$OUT/lintian.log"
    echo "  lintian: no error, no warning; $(cat debian/*.lintian-overrides | grep -vc '^#\|^$') tags overridden," \
      "each with its reason (debian/*.lintian-overrides)"
  else
    sed 's/^/  /' "$OUT/lintian.log"
    die "lintian found errors or warnings (above)"
  fi
}

if [ "${1:-}" = --lint ]; then lint; exit 0; fi

mkdir -p build
missing=()
tools=(dpkg-buildpackage:dpkg-dev git:git)
[ "${DEB_LINT:-}" != 1 ] || tools+=(lintian:lintian)
for tool in "${tools[@]}"; do
  command -v "${tool%%:*}" >/dev/null || missing+=("${tool#*:}")
done
apt_get install "${missing[@]}"

version=$(sed -n 's/^local V = "\(.*\)"$/\1/p' src/streamctl/version.lua)
debversion=$(dpkg-parsechangelog -S Version)
[ "$version" = "$debversion" ] \
  || die "debian/changelog is at $debversion but src/streamctl/version.lua at $version: add a debian/changelog entry"

rm -rf "$OUT" && mkdir -p "$OUT"
tree=$OUT/streamctl-$version
mkdir -p "$tree"
git ls-files -z -co --exclude-standard | xargs -0 cp -P --parents -t "$tree"

# the build dependencies debian/control names, when this machine lacks some
# (said as what it is on a fresh machine, the normal path: what the build will install, not an "error")
if ! unmet=$(cd "$tree" && dpkg-checkbuilddeps 2>&1); then
  echo "the build needs, from Debian: ${unmet#*Unmet build dependencies: }"
  apt_get build-dep "$tree"
fi

echo "dpkg-buildpackage -b (log: $OUT/build.log)"
if ! (cd "$tree" && dpkg-buildpackage -b -us -uc) >"$OUT/build.log" 2>&1; then
  tail -40 "$OUT/build.log"
  die "dpkg-buildpackage failed (above; whole log: $OUT/build.log)"
fi
grep -h 'signs the .* published vectors' "$OUT/build.log" | sed 's/^/  built: /'
rm -rf "$tree"
if command -v lintian >/dev/null; then
  lint
else
  echo "lintian is not installed: the packages are not checked (DEB_LINT=1, or make check-deb, installs and runs it)"
fi
echo "packages in $OUT:"
for d in "$OUT"/*.deb; do
  printf '  %-42s %6s KB  Depends: %s\n' "$(basename "$d")" "$(( $(stat -c %s "$d") / 1024 ))" \
    "$(dpkg-deb -f "$d" Depends)"
done
echo "install them: apt install $(for d in "$OUT"/*.deb; do printf './build/deb/%s ' "$(basename "$d")"; done)"
