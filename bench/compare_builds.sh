#!/usr/bin/env bash
# compare_builds.sh — runs weft's W1 W2 W3 W6 W7 W8 programs from two bench folders
# (an old and a new build) side by side: REPS rounds, each round running every
# workload once per build, the builds' order alternating between rounds so that
# neither always runs on a warmer machine. Prints, per workload and build, the
# median of the headline figure and the spread (min..max), and the new/old ratio.
# Same arguments and CPU pinning as ../shared/peers/run.sh (see its README).
#
#   bench/compare_builds.sh OLD_BENCH_DIR NEW_BENCH_DIR        (REPS=5 by default)
#
# To make the old build: git worktree add /tmp/weft-old <commit> && cmake -S /tmp/weft-old
#   -B /tmp/weft-old/build -DWEFT_BUILD_TESTS=OFF && cmake --build /tmp/weft-old/build -j2
set -uo pipefail

old=${1:?usage: compare_builds.sh OLD_BENCH_DIR NEW_BENCH_DIR}
new=${2:?usage: compare_builds.sh OLD_BENCH_DIR NEW_BENCH_DIR}
REPS=${REPS:-5}
SOLO_CPU=${SOLO_CPU:-1}
BOTH_CPUS=0,1
N_SWITCH=${N_SWITCH:-5000000}
N_SPAWN=${N_SPAWN:-1000000}
N_SLEEP_BIG=${N_SLEEP_BIG:-1000000}
N_THREAD=${N_THREAD:-200000}
N_QUEUE=${N_QUEUE:-1000000}
N_TIMERS=${N_TIMERS:-1000000}

# name|cpus|program args|figure (key=value in the program's line; lower or higher is better)
workloads=(
  "W1 switch ns|$SOLO_CPU|w1_switch $N_SWITCH|ns_per_switch|lower"
  "W2 spawn tasks/s|$SOLO_CPU|w2_spawn $N_SPAWN|tasks_per_s|higher"
  "W3 sleepers overhead s|$SOLO_CPU|w3_sleepers $N_SLEEP_BIG|overhead_s|lower"
  "W6 to_thread calls/s|$BOTH_CPUS|w6_to_thread $N_THREAD 64 4|calls_per_s|higher"
  "W7 queue items/s|$SOLO_CPU|w7_queue $N_QUEUE 100|items_per_s|higher"
  "W8 timers overhead s|$SOLO_CPU|w8_timers $N_TIMERS|overhead_s|lower"
)

results=$(mktemp)
trap 'rm -f "$results"' EXIT

run() { # run BUILD_LABEL DIR CPUS ARGS FIELD WORKLOAD
  local label=$1 dir=$2 cpus=$3 args=$4 field=$5 workload=$6 line value
  local -a argv
  read -ra argv <<<"$args"
  line=$(taskset -c "$cpus" "$dir/${argv[0]}" "${argv[@]:1}") || { echo "FAILED: $dir/$args" >&2; return; }
  value=$(sed -n "s/.* $field=\([^ ]*\).*/\1/p" <<<"$line")
  echo "$label|$workload|$value" >>"$results"
  echo "  $label: $line" >&2
}

for r in $(seq "$REPS"); do
  echo "-- round $r/$REPS" >&2
  for w in "${workloads[@]}"; do
    IFS='|' read -r name cpus args field _ <<<"$w"
    if [ $((r % 2)) -eq 1 ]; then
      run old "$old" "$cpus" "$args" "$field" "$name"; run new "$new" "$cpus" "$args" "$field" "$name"
    else
      run new "$new" "$cpus" "$args" "$field" "$name"; run old "$old" "$cpus" "$args" "$field" "$name"
    fi
  done
done

python3 - "$results" "${workloads[@]}" <<'PY'
import statistics, sys
rows = [l.rstrip('\n').split('|') for l in open(sys.argv[1]) if l.strip()]
print(f"{'workload':26} {'old median':>12} {'old spread':>22} {'new median':>12} {'new spread':>22} {'new/old':>8}")
for w in sys.argv[2:]:
    name, _, _, field, better = w.split('|')
    vals = {b: [float(v) for lb, wl, v in rows if lb == b and wl == name and v] for b in ('old', 'new')}
    if not vals['old'] or not vals['new']:
        print(f"{name:26} missing runs"); continue
    mo, mn = statistics.median(vals['old']), statistics.median(vals['new'])
    so = f"{min(vals['old']):.4g}..{max(vals['old']):.4g}"
    sn = f"{min(vals['new']):.4g}..{max(vals['new']):.4g}"
    print(f"{name:26} {mo:12.4g} {so:>22} {mn:12.4g} {sn:>22} {mn / mo:8.3f}  ({better} is better)")
PY
