#!/usr/bin/env bash
# W5 over TLS: weft's bench/w5_https_server beside nginx (Debian nginx-light, `return
# 200`) and Go's net/http with TLS. Each server is pinned to CPU 0 (Go with
# GOMAXPROCS=1, nginx as one process: master_process off, so its CPU time is one
# process's), the load generator to CPU 1. REPS rounds, the three servers in turn
# within each round (rotated, so none always goes first); the table gives medians.
# For each server:
#
#   req/s       wrk over https, keep-alive (TLS 1.3, one handshake per connection)
#   us/req      the server's CPU time (user + system, /proc/PID/stat) per request in
#               that run: what a request costs the server, whether or not the one
#               client core is the limit (on two cores it often is: a server far
#               below 100% CPU is waiting for wrk)
#   cpu%        the server's CPU use during the wrk run
#   hs/s        full TLS 1.3 handshakes per second: `openssl s_time -new`, one
#               connection after another, each a new session
#   us/hs       the server's CPU time per handshake in that run
#
#   bench/https_compare.sh [BUILD_DIR]      (default: build; needs build/bench/w5_https_server)
#
# Environment: DURATION (s per measurement, default 10), REPS (rounds, default 3),
# CONNS (wrk connections, default 64), PORT (default 18443).
# Needs wrk, openssl, nginx (nginx-light), go and taskset.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
weft_server=$build/bench/w5_https_server
DURATION=${DURATION:-10}
REPS=${REPS:-3}
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
master_process off;
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

# cpu_ticks PID — the process's user + system CPU time so far, in clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

# measure NAME COMMAND... — starts the server, measures, stops it; prints
# "NAME req/s us/req cpu% hs/s us/hs".
measure() {
  local name=$1
  shift
  taskset -c 0 "$@" >"$tmp/$name.log" 2>&1 &
  server_pid=$!
  wait_port
  local t0 t1 t2 wrk_out rps reqs hs_out hs conns
  t0=$(cpu_ticks "$server_pid")
  wrk_out=$(taskset -c 1 wrk -t1 -c"$CONNS" -d"${DURATION}s" "https://127.0.0.1:$PORT/")
  t1=$(cpu_ticks "$server_pid")
  rps=$(awk '/^Requests\/sec:/ { print $2 }' <<<"$wrk_out")
  reqs=$(awk '/requests in/ { print $1 }' <<<"$wrk_out")
  hs_out=$(taskset -c 1 openssl s_time -connect "127.0.0.1:$PORT" -new -time "$DURATION" 2>/dev/null </dev/null)
  t2=$(cpu_ticks "$server_pid")
  hs=$(awk '/connections in .* real seconds/ { printf "%.0f", $1 / $4 }' <<<"$hs_out")
  conns=$(awk '/connections in .* real seconds/ { print $1 }' <<<"$hs_out")
  kill "$server_pid"
  wait "$server_pid" 2>/dev/null || true
  server_pid=
  awk -v n="$name" -v rps="${rps:-0}" -v reqs="${reqs:-0}" -v hs="${hs:-0}" -v conns="${conns:-0}" \
    -v a="$t0" -v b="$t1" -v c="$t2" -v hz="$hz" -v d="$DURATION" 'BEGIN {
      printf "%s %.0f %.2f %.0f %.0f %.0f\n", n, rps, (reqs > 0 ? (b - a) / hz * 1e6 / reqs : 0),
        (b - a) / hz / d * 100, hs, (conns > 0 ? (c - b) / hz * 1e6 / conns : 0) }'
}

servers=(weft nginx go)
run_server() {
  case $1 in
  weft) measure weft "$weft_server" "$PORT" $((DURATION * 4 + 10)) "$tmp/cert.pem" "$tmp/key.pem" ;;
  nginx) measure nginx nginx -c "$tmp/nginx.conf" -e "$tmp/nginx-error.log" ;;
  go) measure go env GOMAXPROCS=1 "$tmp/go_w5_https_server" "$PORT" "$tmp/cert.pem" "$tmp/key.pem" ;;
  esac
}

: >"$tmp/runs"
for ((rep = 0; rep < REPS; rep++)); do
  for ((i = 0; i < ${#servers[@]}; i++)); do
    run_server "${servers[(i + rep) % ${#servers[@]}]}" | tee -a "$tmp/runs" >&2
  done
done

echo "W5 over TLS 1.3: medians of $REPS rounds of ${DURATION}s each; wrk -t1 -c$CONNS keep-alive; handshakes by openssl s_time -new"
echo "server pinned to CPU 0, client to CPU 1; us/req and us/hs are the server's CPU time per request / handshake"
# median NAME COLUMN — the median of that server's column over the rounds.
median() {
  awk -v n="$1" -v col="$2" '$1 == n { print $col }' "$tmp/runs" | sort -g |
    awk '{ v[NR] = $1 } END { if (NR == 0) print 0; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
nginx_rps=$(median nginx 2)
nginx_us=$(median nginx 3)
printf '%-8s %10s %8s %8s %10s %6s %12s %8s\n' server req/s x-nginx us/req x-nginx cpu% handshakes/s us/hs
for name in "${servers[@]}"; do
  rps=$(median "$name" 2) us=$(median "$name" 3) cpu=$(median "$name" 4) hs=$(median "$name" 5) ushs=$(median "$name" 6)
  awk -v n="$name" -v rps="$rps" -v us="$us" -v cpu="$cpu" -v hs="$hs" -v ushs="$ushs" -v nr="$nginx_rps" -v nu="$nginx_us" 'BEGIN {
    printf "%-8s %10.0f %7.2fx %8.2f %9.2fx %5.0f%% %12.0f %8.0f\n", n, rps, (nr > 0 ? rps / nr : 0), us,
      (us > 0 ? nu / us : 0), cpu, hs, ushs }'
done
echo "(x-nginx: req/s over nginx's; for us/req, nginx's over this server's, so above 1 is cheaper than nginx)"
