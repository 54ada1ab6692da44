#!/usr/bin/env bash
# make check-deb: the Debian packages in build/deb (made and lintian-checked by
# `DEB_LINT=1 tools/deb.sh` just before) as an operator meets them, in a
# pristine Debian 12 root in a network namespace of its own
# (tools/pristine-root.sh), as root:
#
#   1. apt install ./*.deb: their dependencies come from the mirror, nothing else;
#   2. streamctl --version; lua5.4 and luajit each require "streamctl" with no
#      Lua path set and sign the providers' published vectors byte for byte
#      (tools/deb-smoke.lua), the Redis client loading too;
#   3. man finds the page, bash-completion loads the completion
#      (tools/installed-check.sh, which check-install runs too);
#   4. the OpenResty example, as the package ships it, runs under Debian's nginx
#      against the emulator the package installed: its nginx.conf names no Lua
#      path; a forbid through it succeeds and /metrics answers;
#   5. apt purge (and autoremove --purge of what came with them) leaves no file
#      of theirs behind, and nothing else that was not there before;
#   6. Debian's luajit, installed after them, is asked about first, and
#      streamctl then says how to get its emulator back.
#
# Not in make test (root, debootstrap, the mirror; about five minutes).
#   KEEP=1 make check-deb    leave the root in build/check-deb/ to look at
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
WORK=$REPO/build/check-deb
PRISTINE_PROG=check-deb
# shellcheck source=tools/pristine-root.sh
. tools/pristine-root.sh


debs=("$REPO"/build/deb/*.deb)
[ -f "${debs[0]}" ] || die "no packages in build/deb: run make deb"
begun=$(date +%s)
pristine_begin root
mkdir -p "$ROOT/root/debs" "$ROOT/root/check"
cp "${debs[@]}" "$ROOT/root/debs/"
cp tools/deb-smoke.lua tools/installed-check.sh spec/vectors/signing-vectors.json "$ROOT/root/check/"

step=0
# step TITLE CMD: CMD inside the root; its output indented; stops at a failure
step() {
  step=$((step + 1))
  local t0 log=$WORK/step-$step.log
  t0=$(date +%s)
  say ""
  say "== $step. $1"
  if pristine_run "set -euo pipefail; export DEBIAN_FRONTEND=noninteractive; $2" >"$log" 2>&1; then
    sed 's/^/   | /' "$log" | tail -"${TAIL:-20}"
    say "   ok ($(($(date +%s) - t0)) s)"
  else
    sed 's/^/   | /' "$log" | tail -40
    die "step $step failed after $(($(date +%s) - t0)) s (whole log: $log)"
  fi
}

# Every path in the root, but what apt, dpkg and the check itself keep.
SNAPSHOT='find / -xdev \( -path /proc -o -path /sys -o -path /dev -o -path /run -o -path /tmp \
  -o -path /var/cache -o -path /var/lib/apt -o -path /var/lib/dpkg -o -path /var/log -o -path /root \
  -o -path /var/lib/systemd/deb-systemd-helper-enabled -o -path /etc/ld.so.cache \) -prune -o -print | sort'

step "the check's own tools (not the packages' dependencies; tools/installed-check.sh)" \
  "bash /root/check/installed-check.sh tools
   $SNAPSHOT > /root/before.txt; wc -l < /root/before.txt | sed 's/\$/ paths in the root before/'"

step "apt install ./*.deb (their dependencies from the mirror)" \
  "cd /root/debs && apt-get install -y -q --no-install-recommends ./*.deb > /root/install.log
   grep -E '^(Setting up|Unpacking) (lua-streamctl|streamctl)' /root/install.log
   grep -c '^Setting up' /root/install.log | sed 's/\$/ packages set up in all/'
   dpkg -L lua-streamctl lua-streamctl-redis streamctl streamctl-emulator | sort -u > /root/ours.txt"

step "streamctl --version; lua5.4 and luajit require streamctl with no Lua path set and sign" \
  "command -v streamctl; streamctl --version
   echo \"LUA_ variables set: \$(env | grep -c '^LUA_' || true)\"
   lua5.4 /root/check/deb-smoke.lua /root/check/signing-vectors.json streamctl.redis
   luajit /root/check/deb-smoke.lua /root/check/signing-vectors.json streamctl.redis
   bash /root/check/installed-check.sh luajit deb
   test -f /usr/share/man/man1/streamctl-emulator.1.gz && echo 'streamctl-emulator(1): installed'"

step "man streamctl as man-db shows it, and streamctl man without it" \
  "bash /root/check/installed-check.sh man"

step "bash completion as bash-completion loads it" \
  "bash /root/check/installed-check.sh completion"

TAIL=30 step "the OpenResty example as shipped, where it is installed, under Debian's nginx, against the installed emulator" \
  "bash /root/check/installed-check.sh openresty deb"

step "apt purge, autoremove --purge: nothing of theirs left, nothing new anywhere" \
  "apt-get purge -y -q lua-streamctl lua-streamctl-redis streamctl streamctl-emulator > /root/purge.log
   apt-get autoremove --purge -y -q >> /root/purge.log
   grep -c '^Purging configuration files\\|^Removing' /root/purge.log | sed 's/\$/ removals/'
   left=0
   while read -r p; do
     [ \"\$p\" != /. ] || continue
     if [ -e \"\$p\" ] && ! grep -qxF \"\$p\" /root/before.txt; then echo \"left behind: \$p\"; left=1; fi
   done < /root/ours.txt
   $SNAPSHOT > /root/after.txt
   # (/var/www: nginx-common's postinst writes its welcome page there and its
   # purge keeps it, as Debian's nginx does wherever it is installed)
   comm -13 /root/before.txt /root/after.txt | grep '^/var/www' | sed 's/^/   (nginx-common keeps: /; s/\$/)/' || true
   new=\$(comm -13 /root/before.txt /root/after.txt | grep -v '^/var/www\\(/\\|\$\\)' || true)
   if [ -n \"\$new\" ]; then echo 'new since before the install:'; echo \"\$new\" | head -20; left=1; fi
   [ \$left = 0 ] && echo \"\$(wc -l < /root/ours.txt) paths of theirs: none left; the root as it was before\""

# README "Install" warns that Debian's luajit conflicts with luajit2, which
# nginx-lua is built on: apt asks before it removes them, and streamctl then
# says how to get its emulator back, as a Debian user would.
TAIL=30 step "Debian's luajit beside the packages: apt asks first; after it, streamctl says what was removed" \
  "cd /root/debs && apt-get install -y -q --no-install-recommends ./*.deb > /root/install2.log
   if apt-get install luajit < /dev/null > /root/ask.log 2>&1; then echo 'apt installed luajit without asking'; exit 1; fi
   sed -n '/will be REMOVED/,/^[^ ]/p' /root/ask.log | sed '\$d'; grep -o 'Do you want to continue.*' /root/ask.log
   grep -A3 'will be REMOVED' /root/ask.log | grep -qw streamctl-emulator \
     || { echo 'apt would not remove streamctl-emulator: README says it does'; exit 1; }
   apt-get install -y -q luajit > /root/luajit.log
   echo '\$ streamctl emulator start   (after apt-get install -y luajit)'
   if streamctl emulator start > /root/emu.log 2>&1; then echo 'the emulator started without its package'; exit 1; fi
   cat /root/emu.log
   grep -q 'apt-get install streamctl-emulator' /root/emu.log
   luajit -e 'print(\"Debian luajit: streamctl \" .. require(\"streamctl\")._VERSION)'"

pristine_end
say ""
say "check-deb: the packages install, run and purge cleanly on a pristine Debian 12 ($(($(date +%s) - begun)) s)"
