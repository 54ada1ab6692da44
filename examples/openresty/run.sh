#!/usr/bin/env bash
# The OpenResty example (nginx.conf in this directory, streamctl.edge.server)
# against the local emulator, ready for curl: `make openresty-demo`.
#
#   examples/openresty/run.sh start [--port N] [--dir DIR]
#                                   [--emulator-dir EDIR | --emulator-ports A,Z,AT,ZT]
#   examples/openresty/run.sh stop  [--dir DIR]
#
# start: starts an emulator of its own in DIR/emulator on free ports (or on
# --emulator-ports: Aliyun, ZEGO, Aliyun TLS, ZEGO TLS), or uses the one
# already running in EDIR (not stopped by `stop`); writes DIR/nginx.conf, a
# copy of this directory's nginx.conf changed only where it must be (it
# trusts the emulator's CA instead of the system's, listens on 127.0.0.1:N
# only, finds streamctl (its edge among it) in the LuaJIT build (none
# outside a checkout: the system's, from the lua-streamctl package), keeps
# its temp files in DIR, and runs its workers as root when started as root)
# and DIR/demo.env, the settings nginx starts with (a fresh token, the
# emulator's endpoints, CA and default account); starts nginx with DIR as its
# prefix (logs in DIR/logs) and prints the token and the curl lines to try.
# stop: stops that nginx and the emulator it started.
#
# DIR: build/openresty-demo in a checkout (ignored by git), else
# ${TMPDIR:-/tmp}/streamctl-openresty-demo-$USER. N: 8080.
# Environment: STREAMCTL_DEMO_STOP, the command that stops it, as start
# prints it (make openresty-demo: make openresty-demo-stop); STREAMCTL_LUAJIT_TREE, the luarocks tree with streamctl built
# for LuaJIT (default: in a checkout, its build/jit, made by `make build-jit`;
# elsewhere none, streamctl being where nginx-lua looks, as the Debian package
# installs it; /opt/streamctl-luajit for one built as nginx.conf's header says); STREAMCTL_NGINX
# (default /usr/sbin/nginx); STREAMCTL_EMULATOR, the command that runs
# streamctl-emulator (default: the checkout's emulator/bin/streamctl-emulator under
# lua5.4, else streamctl-emulator on PATH). nginx starts with only PATH and
# demo.env's variables: credentials in your environment are never used.
set -euo pipefail
shopt -u patsub_replacement 2>/dev/null || true

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=${STREAMCTL_ROOT:-$(cd "$HERE/../.." && pwd)}
# What a message calls this script: as a checkout names it, or where it is
# (an install's copy: /usr/share/doc/lua-streamctl/examples/openresty/run.sh,
# which may not be executable there: run with bash)
if [ -f "$ROOT/Makefile" ] && [ -d "$ROOT/src/streamctl" ]; then
  PROG="examples/openresty/run.sh"
else
  PROG="bash $HERE/run.sh"
fi
WAIT_TENTHS=100 # 10 s

die() { printf '%s: %s\n' "$PROG" "$*" >&2; exit 1; }
usage() { sed -n '5,7s/^# //p' "${BASH_SOURCE[0]}" >&2; exit 2; }

cmd=${1:-}
[ $# -gt 0 ] && shift
PORT=8080
if [ -f "$ROOT/Makefile" ] && [ -d "$ROOT/src/streamctl" ]; then
  DEFAULT_DIR="$ROOT/build/openresty-demo"
else
  DEFAULT_DIR="${TMPDIR:-/tmp}/streamctl-openresty-demo-${USER:-$(id -u)}"
fi
DIR=$DEFAULT_DIR
EMU_DIR_GIVEN="" EMU_PORTS=""
while [ $# -gt 0 ]; do
  case $1 in
    --port) PORT=${2:?--port needs a value}; shift 2 ;;
    --dir) DIR=${2:?--dir needs a value}; shift 2 ;;
    --emulator-dir) EMU_DIR_GIVEN=${2:?--emulator-dir needs a value}; shift 2 ;;
    --emulator-ports) EMU_PORTS=${2:?--emulator-ports needs a value}; shift 2 ;;
    *) printf '%s: unknown argument %s\n' "$PROG" "$1" >&2; usage ;;
  esac
done
case $PORT in ''|*[!0-9]*) die "--port: not a port number: $PORT" ;; esac
if [ "$PORT" -lt 1 ] || [ "$PORT" -gt 65535 ]; then die "--port: not a port number: $PORT"; fi
if [ "$cmd" = start ]; then mkdir -p "$DIR" || die "cannot create $DIR"; fi
if [ -d "$DIR" ]; then DIR=$(cd "$DIR" && pwd); fi
PIDFILE="$DIR/logs/nginx.pid"
NGINX=${STREAMCTL_NGINX:-/usr/sbin/nginx}

# The emulator's launcher, as words in the array EMULATOR.
if [ -n "${STREAMCTL_EMULATOR:-}" ]; then
  read -r -a EMULATOR <<<"$STREAMCTL_EMULATOR"
elif [ -f "$ROOT/emulator/bin/streamctl-emulator" ] && [ -d "$ROOT/emulator/src/streamctl/emulator" ]; then
  EMULATOR=(env "LUA_PATH=$ROOT/src/?.lua;$ROOT/src/?/init.lua;$ROOT/emulator/src/?.lua;$ROOT/emulator/src/?/init.lua;;" \
    lua5.4 "$ROOT/emulator/bin/streamctl-emulator")
else
  EMULATOR=(streamctl-emulator)
fi

alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }
nginx_pid() { if [ -f "$PIDFILE" ]; then tr -dc '0-9' <"$PIDFILE"; fi; }
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
setting() { sed -n "s/^$1='\\(.*\\)'\$/\\1/p" "$DIR/demo.env" 2>/dev/null; }

# What nginx logged at level error or worse from byte $2 of file $1 on, each
# entry whole (a Lua error's traceback is one entry of many lines).
log_errors() {
  tail -c +"$(($2 + 1))" "$1" 2>/dev/null | awk '
    /^[0-9]+\/[0-9]+\/[0-9]+ [0-9:]+ \[/ { keep = ($3 ~ /^\[(emerg|alert|crit|error)\]$/) }
    keep { print "  " $0 }'
}

# How to stop this demo: what started it says (make openresty-demo sets
# STREAMCTL_DEMO_STOP), for the default directory; else run.sh stop with its --dir.
stop_command() {
  if [ "$DIR" = "$DEFAULT_DIR" ]; then
    printf '%s' "${STREAMCTL_DEMO_STOP:-$PROG stop}"
  else
    printf '%s stop --dir %q' "$PROG" "$DIR"
  fi
}

print_try() {
  local token port ali
  token=$(setting STREAMCTL_EDGE_TOKEN) port=$(setting DEMO_PORT) ali=$(setting DEMO_EMULATOR_HTTP)
  cat <<EOF
The OpenResty example runs on http://127.0.0.1:$port against the emulator ($(setting DEMO_EMULATOR_DIR)).
Its tokens (throwaways, made for this demo): the moderation API's, and /tokens/zego's:

  export STREAMCTL_EDGE_TOKEN=$token
  export STREAMCTL_EDGE_ISSUER_TOKEN=$(setting STREAMCTL_EDGE_ISSUER_TOKEN)

Try:

  curl -s -H "Authorization: Bearer \$STREAMCTL_EDGE_TOKEN" -d '{"domain_name":"push.example.com","app_name":"live","stream_name":"match-7"}' http://127.0.0.1:$port/streams/aliyun/forbid
  curl -s -H "Authorization: Bearer \$STREAMCTL_EDGE_TOKEN" -d '{"domain_name":"push.example.com","app_name":"live","stream_names":["a","b"]}' http://127.0.0.1:$port/streams/aliyun/resume
  curl -s -H "Authorization: Bearer \$STREAMCTL_EDGE_TOKEN" -d '{"stream_ids":["rtc-1","rtc-2"]}' http://127.0.0.1:$port/streams/zego/forbid
  curl -s -H "Authorization: Bearer \$STREAMCTL_EDGE_TOKEN" -d '{"stream_id":"rtc-1"}' http://127.0.0.1:$port/streams/zego/resume
  curl -s http://127.0.0.1:$port/metrics
  curl -s $ali/_emulator/state        # what the emulator holds now

A ZEGO callback, signed as ZEGO signs it (docs/callbacks.md): rtc-2, forbidden above, is
forbidden again when it publishes again (the edge's audit log: $DIR/logs/audit.jsonl). Its
timestamp is 300 s ahead: a callback whose 300 s window began before the edge started is
refused (503, ZEGO sends it again) for the edge's first 5 minutes, as it could have been seen
before a restart:

  secret=$(setting ZEGO_CALLBACK_SECRET) ts=\$((\$(date +%s) + 300)) nonce=\$RANDOM
  sig=\$(printf '%s\\n' "\$secret" "\$ts" "\$nonce" | LC_ALL=C sort | tr -d '\\n' | sha1sum | cut -c1-40)
  curl -s -H 'Content-Type: application/json' -d '{"event":"stream_create","appid":1234567890,"timestamp":"'\$ts'","nonce":"'\$nonce'","signature":"'\$sig'","stream_id":"rtc-2","room_id":"room-1"}' http://127.0.0.1:$port/callbacks/zego

Logs: $DIR/logs/error.log. Settings: $DIR/demo.env. Stop: $(stop_command)
EOF
  command -v curl >/dev/null 2>&1 || printf '(curl is not installed here: apt-get install curl, or any HTTP client)\n'
}

stop_nginx() {
  local pid i
  pid=$(nginx_pid)
  if ! alive "$pid"; then rm -f "$PIDFILE"; return 1; fi
  kill -TERM "$pid"
  i=0
  while alive "$pid" && [ $i -lt $WAIT_TENTHS ]; do sleep 0.1; i=$((i + 1)); done
  if alive "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
  rm -f "$PIDFILE"
  echo "nginx stopped (pid $pid)"
}

stop_emulator() {
  if [ "$(setting DEMO_EMULATOR_OWNED)" = 1 ]; then
    "${EMULATOR[@]}" stop --dir "$(setting DEMO_EMULATOR_DIR)"
  fi
}

cmd_stop() {
  stop_nginx || echo "nginx not running (dir $DIR)"
  stop_emulator
}

# Replaces the one occurrence of $2 in the variable named $1 by $3; fails
# naming it when there is none or more than one (the example changed and this
# script must follow it).
replace_once() {
  local -n text=$1
  local rest=${text#*"$2"}
  [ "$rest" != "$text" ] || die "$HERE/nginx.conf no longer has: $2"
  [ "${rest#*"$2"}" = "$rest" ] || die "$HERE/nginx.conf has more than one: $2"
  text=${text/"$2"/"$3"}
}

# nginx.conf and demo.env quote paths plainly: refuse the few characters that would need more.
check_path() {
  case $1 in *[\"\\\;\?\']*) die "cannot use a path with \", ', \\, ; or ? here: $1" ;; esac
}

write_conf() {
  local ca=$1 tree=$2 conf temp="" kind user=""
  check_path "$HERE"; check_path "$ca"; check_path "$DIR"
  [ -z "$tree" ] || check_path "$tree"
  conf=$(<"$HERE/nginx.conf")
  [ "$(id -u)" = 0 ] && user="user root; # (run.sh: started as root, its workers too, as the emulator's)"$'\n'
  replace_once conf "worker_processes auto;" "${user}worker_processes auto;"
  for kind in client_body proxy fastcgi uwsgi scgi; do
    temp+=$'\n'"    ${kind}_temp_path tmp/$kind;"
  done
  replace_once conf "access_log logs/access.log;" "access_log logs/access.log;$temp"
  if [ -n "$tree" ]; then
    replace_once conf "http {" "http {
    # streamctl's LuaJIT build (run.sh)
    lua_package_path \"$tree/share/lua/5.1/?.lua;$tree/share/lua/5.1/?/init.lua;;\";
    lua_package_cpath \"$tree/lib/lua/5.1/?.so;;\";"
  fi
  replace_once conf "lua_ssl_trusted_certificate /etc/ssl/certs/ca-certificates.crt;" \
    "lua_ssl_trusted_certificate \"$ca\"; # the emulator's CA (run.sh)"
  replace_once conf "listen 8080;" "listen 127.0.0.1:$PORT;"
  printf '# Written by %s from %s for the demo against the emulator; edits are lost.\n%s\n' \
    "$PROG" "$HERE/nginx.conf" "$conf" >"$DIR/nginx.conf"
}

# Four free ports of 127.0.0.1, comma-separated: the kernel's choice where
# lua5.4 and lua-socket are there (each bound to port 0); else (a Debian
# install has no lua-socket) drawn below the kernel's ephemeral range, where
# no outgoing connection takes one, and tried with bash's /dev/tcp (nobody
# listens there now), at most 200 draws.
free_ports() {
  lua5.4 -e 'local socket = require "socket"
    local socks, ports = {}, {}
    for i = 1, 4 do socks[i] = assert(socket.bind("127.0.0.1", 0)); ports[i] = select(2, socks[i]:getsockname()) end
    for _, s in ipairs(socks) do s:close() end
    io.write(table.concat(ports, ","))' 2>/dev/null && return 0
  local ports=() p tries=0 low
  read -r low _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || low=32768
  [ "$low" -gt 12000 ] 2>/dev/null || low=32768
  while [ ${#ports[@]} -lt 4 ] && [ $tries -lt 200 ]; do
    tries=$((tries + 1))
    p=$((10000 + (RANDOM * 32768 + RANDOM) % (low - 10000)))
    case " ${ports[*]} " in *" $p "*) continue ;; esac
    if ! listening "$p"; then ports+=("$p"); fi
  done
  [ ${#ports[@]} = 4 ] || die "cannot find 4 free ports: give them with --emulator-ports A,Z,AT,ZT"
  local IFS=,
  printf '%s' "${ports[*]}"
}

# A shell set up for Lua 5.4 (LUA_PATH or LUA_CPATH naming a lua/5.4 or lua5.4
# tree) has an nginx started from it load Lua 5.4's modules into LuaJIT (cjson:
# "undefined symbol: lua_newuserdatauv"; the example's handlers refuse it).
# This demo's nginx starts without the shell's environment (env -i, below):
# said, not refused, so that one's own nginx is started right.
lua54_paths_note() {
  local var
  for var in LUA_CPATH LUA_PATH; do
    case ${!var:-} in
      *lua/5.4*|*lua5.4*)
        printf '%s: note: %s names a Lua 5.4 tree (%s): this demo'\''s nginx starts without it, but an nginx' \
          "$PROG" "$var" "${!var}" >&2
        printf ' started from this shell would load Lua 5.4'\''s modules into LuaJIT (undefined symbol:' >&2
        printf ' lua_newuserdatauv): give Lua 5.4 its paths in %s_5_4 instead (docs/openresty.md)\n' "$var" >&2 ;;
    esac
  done
}

# The edge's settings a caller's environment may give the demo (docs/openresty.md), and those it
# never takes from there (the demo's credentials, endpoints and secrets are its own).
PASSED_ON=(STREAMCTL_REDIS_URL STREAMCTL_EDGE_FORBIDS STREAMCTL_EDGE_ADOPT STREAMCTL_EDGE_RECONCILE_S
  STREAMCTL_EDGE_MAX_FORBID STREAMCTL_EDGE_MAX_RESUME STREAMCTL_EDGE_ADMIT_ON_LIST_ERROR STREAMCTL_EDGE_AUDIT_LOG
  STREAMCTL_EDGE_TASK_REGION STREAMCTL_ALIYUN_AUTH_KEY STREAMCTL_EDGE_LIST_GRACE_S STREAMCTL_EDGE_RTMP_CONTROL
  STREAMCTL_EDGE_CALLBACK_TOKEN STREAMCTL_EDGE_ZEGO_TOKEN_FORM)
IGNORED=(STREAMCTL_EDGE_TOKEN STREAMCTL_EDGE_ISSUER_TOKEN ALIBABA_CLOUD_ACCESS_KEY_ID ALIBABA_CLOUD_ACCESS_KEY_SECRET ZEGO_APP_ID
  ZEGO_SERVER_SECRET STREAMCTL_ALIYUN_ENDPOINT STREAMCTL_ZEGO_ENDPOINT STREAMCTL_CA_FILE ZEGO_CALLBACK_SECRET
  STREAMCTL_ALIYUN_NOTIFY_KEY STREAMCTL_ALIYUN_NOTIFY_DOMAIN)

cmd_start() {
  local pid tree ca emu_dir owned=0 ali ali_tls zego_tls token issuer cb_secret notify_key offset ok i
  lua54_paths_note
  pid=$(nginx_pid)
  if alive "$pid"; then
    echo "already running (nginx pid $pid); not restarted ($(stop_command) first to change settings)"
    print_try
    return 0
  fi
  # the edge's own settings, from the environment run.sh starts in, passed on (and said); the
  # credentials and endpoints are the emulator's, and one given is ignored (and said)
  local passed="" v
  for v in "${PASSED_ON[@]}"; do
    [ -n "${!v:-}" ] || continue
    case ${!v} in
      *"'"*|*$'\n'*) die "$v: a value with a quote or a newline cannot be passed on to nginx" ;;
    esac
    passed+="$v='${!v}'"$'\n'
    printf '%s: passing %s on to nginx, from the environment\n' "$PROG" "$v" >&2
  done
  for v in "${IGNORED[@]}"; do
    [ -z "${!v:-}" ] || printf '%s: note: %s in the environment is not used: the demo runs on the emulator'\''s\n' \
      "$PROG" "$v" >&2
  done

  [ -x "$NGINX" ] || die "no nginx at $NGINX: apt-get install nginx libnginx-mod-http-lua lua-resty-core lua-cjson (or set STREAMCTL_NGINX)"
  tree=${STREAMCTL_LUAJIT_TREE:-}
  if [ -z "$tree" ] && [ -f "$ROOT/Makefile" ] && [ -d "$ROOT/src/streamctl" ]; then tree=$ROOT/build/jit; fi
  if [ -n "$tree" ]; then
    if [ ! -f "$tree/lib/lua/5.1/streamctl/core.so" ] || [ ! -f "$tree/share/lua/5.1/streamctl/init.lua" ]; then
      die "no LuaJIT build of streamctl in $tree (lib/lua/5.1/streamctl/core.so, share/lua/5.1/streamctl/init.lua):" \
        "run make build-jit, or set STREAMCTL_LUAJIT_TREE"
    fi
  elif [ ! -f /usr/share/lua/5.1/streamctl/init.lua ] || ! compgen -G '/usr/lib/*/lua/5.1/streamctl/core.so' >/dev/null; then
    die "streamctl is not installed for nginx-lua (/usr/share/lua/5.1/streamctl, /usr/lib/*/lua/5.1/streamctl):" \
      "apt install the lua-streamctl package (README, Install), or set STREAMCTL_LUAJIT_TREE to a luarocks tree"
  fi
  listening "$PORT" && die "port $PORT is in use: give another with --port N"

  if [ -n "$EMU_DIR_GIVEN" ]; then
    emu_dir=$(cd "$EMU_DIR_GIVEN" 2>/dev/null && pwd) || die "--emulator-dir: no directory $EMU_DIR_GIVEN"
    "${EMULATOR[@]}" status --dir "$emu_dir" >/dev/null \
      || die "no emulator runs in $emu_dir (start it: streamctl emulator start --dir $emu_dir)"
  else
    emu_dir="$DIR/emulator"
    [ -n "$EMU_PORTS" ] || EMU_PORTS=$(free_ports)
    IFS=, read -r p1 p2 p3 p4 extra <<<"$EMU_PORTS"
    if [ -z "${p4:-}" ] || [ -n "${extra:-}" ]; then die "--emulator-ports: four ports, comma-separated: $EMU_PORTS"; fi
    "${EMULATOR[@]}" stop --dir "$emu_dir" >/dev/null 2>&1 || true
    "${EMULATOR[@]}" start --dir "$emu_dir" --aliyun-port "$p1" --zego-port "$p2" \
      --aliyun-tls-port "$p3" --zego-tls-port "$p4" >/dev/null || die "the emulator did not start (above: why)"
    owned=1
  fi
  local -a e
  # shellcheck source=/dev/null # the emulator's endpoints.env (shell variables it writes)
  mapfile -t e < <(. "$emu_dir/endpoints.env" && printf '%s\n' "$STREAMCTL_EMULATOR_ALIYUN_URL" \
    "$STREAMCTL_EMULATOR_ALIYUN_TLS_URL" "$STREAMCTL_EMULATOR_ZEGO_TLS_URL" "$STREAMCTL_EMULATOR_CA_FILE")
  ali=${e[0]:-} ali_tls=${e[1]:-} zego_tls=${e[2]:-} ca=${e[3]:-}
  if [ -z "$zego_tls" ] || [ ! -f "$ca" ]; then
    die "cannot read the emulator's endpoints and CA from $emu_dir/endpoints.env"
  fi

  token=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')
  issuer=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')
  cb_secret=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
  notify_key=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
  mkdir -p "$DIR/logs" "$DIR/tmp"
  write_conf "$ca" "$tree"
  (
    umask 077
    cat >"$DIR/demo.env" <<EOF
# Written by $PROG: what the example's nginx starts with (only these and PATH).
# The token and the callbacks' secrets are throwaways made for this demo; the
# account is the emulator's default.
STREAMCTL_EDGE_TOKEN='$token'
STREAMCTL_EDGE_ISSUER_TOKEN='$issuer'
ZEGO_CALLBACK_SECRET='$cb_secret'
STREAMCTL_ALIYUN_NOTIFY_KEY='$notify_key'
STREAMCTL_ALIYUN_NOTIFY_DOMAIN='push.example.com'
ALIBABA_CLOUD_ACCESS_KEY_ID='LTAIemulatorKey'
ALIBABA_CLOUD_ACCESS_KEY_SECRET='emulator-secret'
ZEGO_APP_ID='1234567890'
ZEGO_SERVER_SECRET='0123456789abcdef0123456789abcdef'
STREAMCTL_ALIYUN_ENDPOINT='$ali_tls'
STREAMCTL_ZEGO_ENDPOINT='$zego_tls'
STREAMCTL_CA_FILE='$ca'
${passed}# for run.sh itself (nginx.conf names none of these)
DEMO_PORT='$PORT'
DEMO_EMULATOR_DIR='$emu_dir'
DEMO_EMULATOR_OWNED='$owned'
DEMO_EMULATOR_HTTP='$ali'
EOF
  )

  local -a vars=()
  local line value
  while IFS= read -r line; do
    case $line in
      DEMO_*) ;;
      [A-Z]*=*) value=${line#*=}; value=${value#\'}; vars+=("${line%%=*}=${value%\'}") ;;
    esac
  done <"$DIR/demo.env"
  offset=$(stat -c %s "$DIR/logs/error.log" 2>/dev/null || echo 0)
  ok=1
  env -i PATH="$PATH" "${vars[@]}" \
    "$NGINX" -p "$DIR/" -c "$DIR/nginx.conf" -e "$DIR/logs/error.log" >"$DIR/logs/start.log" 2>&1 || ok=0
  if [ $ok = 1 ]; then
    ok=0
    for ((i = 0; i < WAIT_TENTHS; i++)); do
      pid=$(nginx_pid)
      if alive "$pid" && listening "$PORT"; then ok=1; break; fi
      sleep 0.1
    done
  fi
  if [ $ok = 0 ]; then
    # error.log's entries whole; what nginx printed when it has none (its
    # copy of an entry is cut at 2 KB)
    local said
    said=$(log_errors "$DIR/logs/error.log" "$offset")
    if [ -n "$said" ]; then
      printf '%s: nginx did not start; %s:\n%s\n' "$PROG" "$DIR/logs/error.log" "$said" >&2
    else
      printf '%s: nginx did not start; it printed:\n' "$PROG" >&2
      sed 's/^/  /' "$DIR/logs/start.log" >&2
    fi
    stop_nginx >/dev/null || true
    stop_emulator >/dev/null || true
    exit 1
  fi
  print_try
}

case $cmd in
  start) cmd_start ;;
  stop) cmd_stop ;;
  *) usage ;;
esac
