#!/usr/bin/env bash
# make dist: the release artifacts of the version in src/streamctl/version.lua,
# from the commit HEAD (committed work only), into build/dist (DIST_OUT=DIR
# elsewhere):
#
#   streamctl-X.Y.Z.tar.gz       the source (git archive; byte for byte the same for the same commit)
#   NAME-X.Y.Z-1.rockspec        the four release rockspecs, their source that tarball
#   NAME-X.Y.Z-1.src.rock        each packed with the tarball: luarocks builds it with no download
#   manifest, manifest-5.x       a rock server in a directory (luarocks-admin make-manifest):
#                                  luarocks install --only-server=build/dist streamctl-cli
#   SHA256SUMS                   of the tarball, the rockspecs and the rocks (sha256sum -c SHA256SUMS)
#
# The release rockspecs must be current (make rockspecs) and committed: a
# release is what its commit holds.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${DIST_OUT:-$PWD/build/dist}

die() { printf 'make dist: %s\n' "$*" >&2; exit 1; }

for tool in git:git zip:zip luarocks-admin:luarocks lua5.4:lua5.4 sha256sum:coreutils; do
  command -v "${tool%%:*}" >/dev/null || die "needs ${tool%%:*} (apt-get install ${tool#*:}; make deps installs it)"
done
lua5.4 tools/rockspecs.lua --check >/dev/null 2>&1 || die "the release rockspecs are out of date: run make rockspecs, and commit"
read -r tarball top < <(lua5.4 tools/rockspecs.lua --tarball)
version=${top#streamctl-}
commit=$(git rev-parse HEAD)
rockspecs=()
for r in rockspecs/*-"$version"-1.rockspec; do
  git cat-file -e "HEAD:$r" 2>/dev/null || die "$r is not committed: a release is what its commit holds"
  git diff --quiet HEAD -- "$r" || die "$r differs from HEAD's: commit it"
  rockspecs+=("$r")
done
[ ${#rockspecs[@]} = 4 ] || die "expected the four release rockspecs of $version, found ${#rockspecs[@]}"
if ! git diff --quiet HEAD; then
  echo "note: the working tree has uncommitted changes; the artifacts are HEAD's ($(git rev-parse --short HEAD))"
fi

rm -rf "$OUT" && mkdir -p "$OUT"
# The files' times are the commit's, so the same commit gives the same bytes.
epoch=$(git log -1 --format=%ct HEAD)
git archive --format=tar --prefix="$top/" HEAD | gzip -n -9 >"$OUT/$tarball"
for r in "${rockspecs[@]}"; do
  name=$(basename "$r" .rockspec)
  git show "HEAD:$r" >"$OUT/$name.rockspec"
  # each rockspec's source is this tarball, unpacked into $top
  source=$(lua5.4 tools/rock-files.lua "$OUT/$name.rockspec" source)
  [ "$source" = "$tarball $top" ] || die "$name.rockspec: its source is $source, not $tarball $top"
  touch -d "@$epoch" "$OUT/$name.rockspec" "$OUT/$tarball"
  (cd "$OUT" && zip -q -X "$name.src.rock" "$name.rockspec" "$tarball")
done
luarocks-admin make-manifest "$OUT" >/dev/null 2>"$OUT/manifest.log" \
  || { cat "$OUT/manifest.log"; die "luarocks-admin make-manifest failed"; }
rm -f "$OUT/manifest.log"
(cd "$OUT" && sha256sum "$tarball" ./*.rockspec ./*.src.rock | sed 's| \./| |' >SHA256SUMS)

echo "release $version from $(git rev-parse --short HEAD) ($commit) in ${OUT#"$PWD"/}:"
(cd "$OUT" && for f in $(ls); do printf '  %-40s %7s bytes\n' "$f" "$(stat -c %s "$f")"; done)
echo "check: (cd ${OUT#"$PWD"/} && sha256sum -c SHA256SUMS)"
echo "install from it, offline: luarocks --lua-version=5.4 install --only-server=$OUT streamctl-cli (a path from /)"
