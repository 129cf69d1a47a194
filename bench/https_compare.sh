#!/usr/bin/env bash
# W5 over TLS: weft's bench/w5_https_server beside nginx (Debian nginx-light, `return
# 200`) and Go's net/http with TLS, one run. Each server is pinned to CPU 0 (Go with
# GOMAXPROCS=1, nginx with one worker), the load generator to CPU 1. For each server:
#
#   req/s       wrk over https, keep-alive (TLS 1.3, one handshake per connection)
#   hs/s        full TLS 1.3 handshakes per second: `openssl s_time -new`, one
#               connection after another, each a new session
#
#   bench/https_compare.sh [BUILD_DIR]      (default: build; needs build/bench/w5_https_server)
#
# Environment: DURATION (s, default 10), CONNS (wrk connections, default 64),
# PORT (default 18443). Needs wrk, openssl, nginx (nginx-light) and go.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
weft_server=$build/bench/w5_https_server
DURATION=${DURATION:-10}
CONNS=${CONNS:-64}
PORT=${PORT:-18443}

for tool in wrk openssl nginx go taskset; do
  command -v "$tool" >/dev/null || { echo "https_compare: $tool is not installed" >&2; exit 1; }
done
[ -x "$weft_server" ] || { echo "https_compare: build $weft_server first (make build)" >&2; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/weft-https.XXXXXX")
server_pid=
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

# The server's certificate (P-256, as nginx's and Go's defaults serve fastest).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$tmp/key.pem" -out "$tmp/cert.pem" \
  -days 2 -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 2>/dev/null

(cd "$root/bench/go_https" && go build -o "$tmp/go_w5_https_server" main.go)

cat >"$tmp/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $tmp/nginx.pid;
error_log $tmp/nginx-error.log;
events { worker_connections 4096; }
http {
  access_log off;
  server {
    listen 127.0.0.1:$PORT ssl;
    ssl_certificate $tmp/cert.pem;
    ssl_certificate_key $tmp/key.pem;
    ssl_protocols TLSv1.3;
    keepalive_requests 1000000;
    location / { default_type text/plain; return 200 "Hello, World!"; }
  }
}
CONF

wait_port() {
  for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  echo "https_compare: nothing listens on $PORT" >&2
  return 1
}

# measure NAME COMMAND... — starts the server, measures, stops it; prints "NAME req/s hs/s".
measure() {
  local name=$1
  shift
  taskset -c 0 "$@" >"$tmp/$name.log" 2>&1 &
  server_pid=$!
  wait_port
  local wrk_out rps hs_out hs
  wrk_out=$(taskset -c 1 wrk -t1 -c"$CONNS" -d"${DURATION}s" "https://127.0.0.1:$PORT/")
  rps=$(awk '/^Requests\/sec:/ { print $2 }' <<<"$wrk_out")
  hs_out=$(taskset -c 1 openssl s_time -connect "127.0.0.1:$PORT" -new -time "$DURATION" 2>/dev/null </dev/null)
  hs=$(awk '/connections in .* real seconds/ { printf "%.0f", $1 / $4 }' <<<"$hs_out")
  kill "$server_pid"
  wait "$server_pid" 2>/dev/null || true
  server_pid=
  echo "$name ${rps:-?} ${hs:-?}"
}

results=()
results+=("$(measure weft "$weft_server" "$PORT" $((DURATION * 4 + 10)) "$tmp/cert.pem" "$tmp/key.pem")")
results+=("$(measure nginx nginx -c "$tmp/nginx.conf" -e "$tmp/nginx-error.log")")
results+=("$(measure go env GOMAXPROCS=1 "$tmp/go_w5_https_server" "$PORT" "$tmp/cert.pem" "$tmp/key.pem")")

nginx_rps=$(awk '$1 == "nginx" { print $2 }' <<<"$(printf '%s\n' "${results[@]}")")
echo "W5 over TLS 1.3: ${DURATION}s each, wrk -t1 -c$CONNS keep-alive; handshakes by openssl s_time -new"
printf '%-8s %12s %10s %12s\n' server req/s x-nginx handshakes/s
for line in "${results[@]}"; do
  read -r name rps hs <<<"$line"
  ratio=$(awk -v a="$rps" -v b="$nginx_rps" 'BEGIN { if (b + 0 > 0 && a + 0 > 0) printf "%.2fx", a / b; else print "?" }')
  printf '%-8s %12s %10s %12s\n' "$name" "$rps" "$ratio" "$hs"
done
