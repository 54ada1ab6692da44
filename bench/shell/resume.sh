#!/bin/sh
# One Alibaba Cloud ApsaraVideo Live ResumeLiveStream, the way a shell user
# would send it without streamctl: POSIX sh, openssl and curl, signed with the
# RPC signature V1 (HMAC-SHA1). bench/roundtrip.lua runs it once per request
# (row e), against the emulator, to set streamctl beside it.
#
#   ALIBABA_CLOUD_ACCESS_KEY_ID=... ALIBABA_CLOUD_ACCESS_KEY_SECRET=... \
#     bench/shell/resume.sh ENDPOINT DOMAIN APP STREAM [CA_FILE]
#
#   ENDPOINT   http(s)://host[:port], no path
#   CA_FILE    the CA to verify an https ENDPOINT with (default: the system's)
#
# Prints the response body; exits 0 only when the answer is HTTP 200.
#
# The signature (docs: "RPC signature V1"; src/streamctl/aliyun.lua):
#   1. every parameter but Signature, sorted by name in byte order;
#   2. canonical query: enc(name)=enc(value) joined by "&", where enc is
#      RFC 3986 percent-encoding of the UTF-8 bytes: A-Z a-z 0-9 - _ . ~ stay,
#      every other byte is %XY (upper-case hex; space is %20, never +);
#   3. StringToSign = "GET&%2F&" .. enc(canonical query);
#   4. Signature = base64(HMAC-SHA1(key = secret .. "&", StringToSign)), sent
#      percent-encoded as the last parameter.
# The secret reaches openssl on its command line (as `-hmac`), where other
# users of the machine can see it in ps: fine for a benchmark, not for a
# shared host.
set -eu
export LC_ALL=C # byte-wise ${s#?}, sort and printf

[ $# -ge 4 ] || { echo "usage: $0 ENDPOINT DOMAIN APP STREAM [CA_FILE]" >&2; exit 2; }
endpoint=${1%/} domain=$2 app=$3 stream=$4 ca=${5:-}
id=${ALIBABA_CLOUD_ACCESS_KEY_ID:?set ALIBABA_CLOUD_ACCESS_KEY_ID}
secret=${ALIBABA_CLOUD_ACCESS_KEY_SECRET:?set ALIBABA_CLOUD_ACCESS_KEY_SECRET}

# enc VALUE: sets $out to VALUE percent-encoded (RFC 3986). Printable ASCII is
# mapped in the shell itself (no process per character); other bytes go
# through printf's character-code form.
enc() {
  s=$1 out=
  while [ -n "$s" ]; do
    rest=${s#?}
    c=${s%"$rest"}
    s=$rest
    case $c in
      [A-Za-z0-9._~-]) out=$out$c ;;
      ' ') out=$out%20 ;; '!') out=$out%21 ;; '"') out=$out%22 ;; '#') out=$out%23 ;;
      '$') out=$out%24 ;; '%') out=$out%25 ;; '&') out=$out%26 ;; "'") out=$out%27 ;;
      '(') out=$out%28 ;; ')') out=$out%29 ;; '*') out=$out%2A ;; '+') out=$out%2B ;;
      ',') out=$out%2C ;; '/') out=$out%2F ;; ':') out=$out%3A ;; ';') out=$out%3B ;;
      '<') out=$out%3C ;; '=') out=$out%3D ;; '>') out=$out%3E ;; '?') out=$out%3F ;;
      '@') out=$out%40 ;; '[') out=$out%5B ;; \\) out=$out%5C ;; ']') out=$out%5D ;;
      '^') out=$out%5E ;; '`') out=$out%60 ;; '{') out=$out%7B ;; '|') out=$out%7C ;;
      '}') out=$out%7D ;;
      *)
        n=$(printf '%d' "'$c")
        [ "$n" -lt 0 ] && n=$((n + 256)) # a shell whose characters are signed
        out=$out$(printf '%%%02X' "$n")
        ;;
    esac
  done
}

nonce=$(openssl rand -hex 16)
timestamp=$(date -u +%Y-%m-%dT%H:%M:%SZ)

# name=value lines, each side encoded; sorted by name (the text before "=",
# which encoding leaves as it is for these names).
lines=
add() {
  enc "$1"; k=$out
  enc "$2"
  lines="$lines$k=$out
"
}
add Action ResumeLiveStream
add Version 2016-11-01
add Format JSON
add AccessKeyId "$id"
add SignatureMethod HMAC-SHA1
add SignatureVersion 1.0
add SignatureNonce "$nonce"
add Timestamp "$timestamp"
add DomainName "$domain"
add AppName "$app"
add StreamName "$stream"
add LiveStreamType publisher

query=
for line in $(printf '%s' "$lines" | sort -t '=' -k 1,1); do # (no line has a space)
  query=${query:+$query&}$line
done

enc "$query"
signature=$(printf '%s' "GET&%2F&$out" | openssl dgst -sha1 -hmac "$secret&" -binary | openssl base64 -A)
enc "$signature"
url="$endpoint/?$query&Signature=$out"

# The body, then a space and the status code on its last line.
if [ -n "$ca" ]; then
  answer=$(curl -sS --max-time 10 --cacert "$ca" -w ' %{http_code}' "$url")
else
  answer=$(curl -sS --max-time 10 -w ' %{http_code}' "$url")
fi
status=${answer##* }
printf '%s\n' "${answer% *}"
[ "$status" = 200 ] || { echo "$0: HTTP $status" >&2; exit 1; }
