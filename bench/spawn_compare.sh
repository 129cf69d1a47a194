#!/usr/bin/env bash
# W9, processes started and reaped per second: weft's bench/w9_spawn beside Python
# asyncio (bench/spawn_asyncio.py: create_subprocess_exec and wait) and Go's os/exec
# (bench/go_spawn: exec.Command(...).Run() in goroutines). Each starts N /bin/true
# children with stdin, stdout and stderr on /dev/null, CONC at a time, waits for
# each, and checks every exit status. Nothing is pinned: the children run on either
# CPU, and each runtime spawns as it does by default (weft from its one loop thread,
# asyncio from its loop thread with a waiting thread per child in 3.11, Go from as
# many threads as goroutines wait). REPS rounds with the peers rotated, so none
# always goes first; the table gives medians. A last row runs weft from a parent
# of PARENT_MB MiB (touched), to show a spawn does not copy the parent.
#
#   procs/s     children started and reaped per second
#   x-asyncio   procs/s over asyncio's;  x-go: over Go's
#   cpu_ms/1000 CPU time (user + system, the children's included) per 1000 children
#               (not for the big parent, whose CPU time is mostly touching its memory)
#   rss_kb      the parent's peak RSS
#
#   bench/spawn_compare.sh [BUILD_DIR]      (default: build; needs build/bench/w9_spawn)
#
# Environment: N (default 2000), CONC (default 8), REPS (default 3), PARENT_MB
# (default 1024; 0 skips the row). Needs go, /usr/bin/time and Python 3 (/usr/bin/python3 when
# present, as ../shared/peers uses).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
weft=$build/bench/w9_spawn
N=${N:-2000}
CONC=${CONC:-8}
REPS=${REPS:-3}
PARENT_MB=${PARENT_MB:-1024}
python=/usr/bin/python3
[ -x "$python" ] || python=$(command -v python3)

command -v go >/dev/null || { echo "spawn_compare: go is not installed" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "spawn_compare: /usr/bin/time is needed (apt-get install time)" >&2; exit 1; }
[ -x "$weft" ] || { echo "spawn_compare: build $weft first (make build)" >&2; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/weft-spawn.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
(cd "$root/bench/go_spawn" && go build -o "$tmp/go_spawn" main.go)

# measure NAME COMMAND... — runs one program; prints "NAME procs/s cpu_ms rss_kb".
measure() {
  local name=$1 line
  shift
  # /usr/bin/time's %U and %S include the children the program waited for.
  line=$(/usr/bin/time -f 'cpu %U %S' "$@" 2>"$tmp/time" | tail -n 1)
  awk -v n="$name" -v line="$line" -v count="$N" '
    /^cpu / { cpu = $2 + $3 }
    END {
      split(line, f, " "); rate = 0; rss = 0
      for (i in f) { if (f[i] ~ /^procs_per_s=/) rate = substr(f[i], 13); if (f[i] ~ /^peak_rss_kb=/) rss = substr(f[i], 13) }
      printf "%s %.1f %.1f %d\n", n, rate, cpu * 1000 * 1000 / count, rss }' "$tmp/time"
}

peers=(weft asyncio go)
run_peer() {
  case $1 in
  weft) measure weft "$weft" "$N" "$CONC" ;;
  asyncio) measure asyncio "$python" "$root/bench/spawn_asyncio.py" "$N" "$CONC" ;;
  go) measure go "$tmp/go_spawn" "$N" "$CONC" ;;
  weft-big) measure "weft-${PARENT_MB}MB" "$weft" "$N" "$CONC" "$PARENT_MB" ;;
  esac
}
[ "$PARENT_MB" -gt 0 ] && peers+=(weft-big)

: >"$tmp/runs"
for ((rep = 0; rep < REPS; rep++)); do
  for ((i = 0; i < ${#peers[@]}; i++)); do
    run_peer "${peers[(i + rep) % ${#peers[@]}]}" | tee -a "$tmp/runs" >&2
  done
done

echo "W9 spawn: N=$N children of /bin/true (stdio on /dev/null), $CONC at a time, each waited for; medians of $REPS rounds"
echo "load average after the runs: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs"
median() {
  awk -v n="$1" -v col="$2" '$1 == n { print $col }' "$tmp/runs" | sort -g |
    awk '{ v[NR] = $1 } END { if (NR == 0) print 0; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
py_rate=$(median asyncio 2)
go_rate=$(median go 2)
printf '%-12s %10s %10s %8s %12s %10s\n' peer procs/s x-asyncio x-go cpu_ms/1000 rss_kb
names=(weft asyncio go)
[ "$PARENT_MB" -gt 0 ] && names+=("weft-${PARENT_MB}MB")
for name in "${names[@]}"; do
  rate=$(median "$name" 2) cpu=$(median "$name" 3) rss=$(median "$name" 4)
  # The big parent's CPU time is mostly touching its ballast: not shown.
  awk -v n="$name" -v r="$rate" -v c="$cpu" -v m="$rss" -v p="$py_rate" -v g="$go_rate" 'BEGIN {
    cpu = n ~ /MB$/ ? "-" : sprintf("%.0f", c)
    printf "%-12s %10.0f %9.2fx %7.2fx %12s %10d\n", n, r, (p > 0 ? r / p : 0), (g > 0 ? r / g : 0), cpu, m }'
done
