#!/usr/bin/env bash
# What an operator does first with an installed streamctl, run inside a
# pristine root by tools/check-deb.sh (the Debian packages) and
# tools/check-install.sh (the luarocks install of README "Install"): the man
# page as man shows it, bash completion as bash-completion loads it, plain
# luajit requiring streamctl beside lua5.4, and the shipped OpenResty example
# against the installed emulator. Each check prints what it saw; the first
# that fails stops the script (exit 1).
#
#   bash installed-check.sh tools            the check's own tools from apt (not the packages' dependencies)
#   bash installed-check.sh man|completion   the same for either install
#   bash installed-check.sh luajit deb|rocks
#   bash installed-check.sh openresty deb|rocks [CLONE]
#
# deb: what the packages installed, where Debian puts it, with no Lua path
# set. rocks: the luarocks trees README "Install" makes (/usr/local for Lua
# 5.4, /opt/streamctl-luajit for LuaJIT) and the example from CLONE.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

fail() { printf 'installed-check: %s\n' "$*" >&2; exit 1; }
TREE=/opt/streamctl-luajit

case ${1:-} in
tools)
  # man-db shows pages, bash-completion loads completions, curl asks the
  # example, luajit2 is the luajit nginx-lua is built on
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends man-db bash-completion curl ca-certificates luajit2 \
    > /dev/null 2> >(grep -v '^debconf: delaying package configuration' >&2)
  echo "the check's tools: man-db, bash-completion, curl, luajit2"
  ;;

man)
  page=$(man -w streamctl) || fail "man -w streamctl: man does not find the page"
  echo "man -w streamctl: $page"
  # 80 columns wide, as on a terminal of the usual size: troff says nothing
  MANPAGER=cat MANWIDTH=80 man streamctl > /tmp/man.txt 2> /tmp/man.err || { cat /tmp/man.err; fail "man streamctl failed"; }
  [ ! -s /tmp/man.err ] || { cat /tmp/man.err; fail "man streamctl, 80 columns wide: warnings (above)"; }
  grep -Eq '^ *streamctl +- control live streams' /tmp/man.txt || fail "man streamctl shows no NAME line"
  printf 'man streamctl: %s lines, its NAME: %s\n' "$(wc -l < /tmp/man.txt)" \
    "$(grep -Em1 '^ *streamctl +- ' /tmp/man.txt | sed 's/^ *//; s/  */ /g')"
  # without man (or into a pipe): the command's own plain text
  # (into a file: a pipe that head closes early may fail it under pipefail)
  streamctl man > /tmp/plain.txt || fail "streamctl man failed"
  sed -n 2p /tmp/plain.txt | grep -q 'streamctl - control live streams' \
    || fail "streamctl man: not the page as plain text"
  echo "streamctl man: the page as plain text ($(wc -l < /tmp/plain.txt) lines)"
  ;;

completion)
  # as an interactive bash does: bash-completion finds the file by the
  # command's name under each of XDG_DATA_DIRS (/usr/local/share, /usr/share)
  # shellcheck disable=SC2016 # expanded by the inner bash
  words=$(bash -c '
    . /usr/share/bash-completion/bash_completion
    _completion_loader streamctl
    complete -p streamctl >&2
    COMP_WORDS=(streamctl aliyun forbid-live-s); COMP_CWORD=2
    COMP_LINE="${COMP_WORDS[*]}"; COMP_POINT=${#COMP_LINE}
    _streamctl streamctl forbid-live-s aliyun
    printf "%s\n" "${COMPREPLY[@]}"') || fail "bash-completion could not load streamctl's completion"
  printf 'completion of "streamctl aliyun forbid-live-s": %s\n' "$(echo "$words" | tr '\n' ' ')"
  echo "$words" | grep -qx forbid-live-streams || fail "no forbid-live-streams among the completions"
  ;;

luajit)
  case ${2:-} in
  deb)
    # where Debian's packages put it, which both interpreters search already
    env | grep -q '^LUA_' && fail "a LUA_ variable is set"
    luajit -e 'print("luajit: streamctl " .. require("streamctl")._VERSION .. " from " .. package.searchpath("streamctl", package.path))'
    lua5.4 -e 'print("lua5.4: streamctl " .. require("streamctl")._VERSION .. ", streamctl.core loads")'
    ;;
  rocks)
    # README "Install", plain luajit beside lua5.4: the shared variables for
    # LuaJIT, Lua 5.4's own set to its defaults
    cd "${3:?rocks: the clone}"
    LUA_PATH="$(LUAROCKS_CONFIG=rockspecs/luarocks-config.lua luarocks --lua-version=5.1 --tree $TREE path --lr-path);;"
    LUA_CPATH="$(LUAROCKS_CONFIG=rockspecs/luarocks-config.lua luarocks --lua-version=5.1 --tree $TREE path --lr-cpath);;"
    export LUA_PATH LUA_CPATH LUA_PATH_5_4=';;' LUA_CPATH_5_4=';;'
    luajit -e 'print("luajit: streamctl " .. require("streamctl")._VERSION .. " from " .. package.searchpath("streamctl", package.path))'
    lua5.4 -e 'require "streamctl.core"; print("lua5.4 in the same shell: streamctl " .. require("streamctl")._VERSION .. ", streamctl.core loads")'
    streamctl --version
    ;;
  *) fail "luajit: deb or rocks" ;;
  esac
  ;;

openresty)
  case ${2:-} in
  deb) ex=/usr/share/doc/lua-streamctl/examples/openresty; run=(bash "$ex/run.sh") ;;
  rocks) ex=${3:?rocks: the clone}/examples/openresty; cd "$3"; run=(env "STREAMCTL_LUAJIT_TREE=$TREE" bash examples/openresty/run.sh) ;;
  *) fail "openresty: deb or rocks" ;;
  esac
  dir=/root/edge-run
  "${run[@]}" start --dir "$dir" --port 8080 > /root/start.log || { cat /root/start.log; fail "run.sh start failed"; }
  grep -F "Stop: " /root/start.log
  if [ "$2" = deb ]; then
    grep -qF "Stop: bash $ex/run.sh stop --dir $dir" /root/start.log || fail "its Stop: line does not name where it is"
    ! grep -n '^[[:space:]]*lua_package_c\?path' "$dir/nginx.conf" || fail "nginx.conf names a Lua path"
    echo 'nginx.conf: no lua_package_path, no lua_package_cpath'
  fi
  token=$(sed -n "s/^STREAMCTL_EDGE_TOKEN='\(.*\)'\$/\1/p" "$dir/demo.env")
  answer=$(curl -sS -H "Authorization: Bearer $token" \
    -d '{"domain_name":"push.example.com","app_name":"live","stream_name":"match-7"}' \
    http://127.0.0.1:8080/streams/aliyun/forbid)
  echo "forbid: $answer"
  echo "$answer" | grep -q '"succeeded":1' || fail "the forbid did not succeed"
  curl -sS http://127.0.0.1:8080/metrics | grep -c '^streamctl_' | sed 's/$/ metric samples at \/metrics/'
  "${run[@]}" stop --dir "$dir"
  ;;

*) sed -n '11,14s/^# //p' "$0" >&2; exit 2 ;;
esac
