#!/bin/bash
# seed_pictures.sh — draws the seeds' lessons as timelines: runs six seed ports with
# WEFT_TRACE and draws each trace with tools/weft-timeline into OUT_DIR (docs/pictures
# holds the committed ones; `make pictures` and `make demo PICTURES=DIR` call this).
#
#   usage: seed_pictures.sh OUT_DIR [SEEDS_DIR]   SEEDS_DIR: the built ports
#                                                 (default build/examples/seeds)
#
# The ports run at WEFT_TIME_SCALE (default 0.1, so all six take ~4 s); the pictures
# divide by it and show the programs' own seconds (16 s against 11 s), and say so.
# Exits non-zero, naming the port, if one is missing or fails.
set -euo pipefail

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
    echo "usage: seed_pictures.sh OUT_DIR [SEEDS_DIR]   (SEEDS_DIR: the built ports, default build/examples/seeds)" >&2
    exit 2
fi
out=$1
seeds=${2:-build/examples/seeds}
here=$(cd "$(dirname "$0")/.." && pwd)
tool="$here/tools/weft-timeline"
scale=${WEFT_TIME_SCALE:-0.1}
export WEFT_TIME_SCALE="$scale"

if [ ! -d "$seeds" ]; then
    echo "seed_pictures.sh: $seeds is not a directory of built seed ports (run make build first)" >&2
    exit 2
fi
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# picture NAME TITLE NOTE [--name TASK=LABEL ...]
picture() {
    local name=$1 title=$2 note=$3
    shift 3
    if [ ! -x "$seeds/$name" ]; then
        echo "seed_pictures.sh: $seeds/$name has not been built" >&2
        exit 1
    fi
    if ! WEFT_TRACE="$work/$name.json" "$seeds/$name" >"$work/$name.out" 2>&1; then
        echo "seed_pictures.sh: $name failed; its output:" >&2
        cat "$work/$name.out" >&2
        exit 1
    fi
    python3 "$tool" "$work/$name.json" -o "$out/$name.svg" --time-scale "$scale" \
        --title "$title" --note "$note" "$@"
    echo "wrote $out/$name.svg"
}

picture s0_main1 "s0_main1: await a(), then b() — about 16 s" \
    "Everything runs in main, one step after the other: a()'s 1 s of compute, its 5 s of I/O, b()'s 5 s, b()'s 5 s of I/O." \
    --name "Task-1=main: a() then b()"
picture s0_main2 "s0_main2: create_task(a()), then b() — about 11 s" \
    "a() starts only when b() (in main) suspends for its I/O; then a()'s compute and I/O overlap b()'s I/O." \
    --name "Task-1=main: b()" --name "Task-2=a()"
picture s3_async_tasks_blocked "s3_async_tasks_blocked: a blocking sleep holds the loop — about 3 s" \
    "task_a's time.sleep(1) blocks the loop: task_b, ready, cannot even start its 2 s wait until task_a returns." \
    --name "Task-1=main: gather" --name "Task-2=task_a" --name "Task-3=task_b"
picture s3_async_tasks_blocked_reversed "s3_async_tasks_blocked_reversed: task_b first — about 2 s" \
    "task_b starts its 2 s wait first; task_a's 1 s block then runs while task_b waits, so the block costs nothing." \
    --name "Task-1=main: gather" --name "Task-2=task_b" --name "Task-3=task_a"
picture s1_tasks10 "s1_tasks10: 10 random waits together take the MAX, not the SUM" \
    "Every task starts before any finishes; the sleeps' sum (legend) is what the sequential run (before the loop) took." \
    --name "Task-1=main: gather" --name "Task-2=task1" --name "Task-3=task2" --name "Task-4=task3" \
    --name "Task-5=task4" --name "Task-6=task5" --name "Task-7=task6" --name "Task-8=task7" \
    --name "Task-9=task8" --name "Task-10=task9" --name "Task-11=task10"
picture s4_to_thread "s4_to_thread: a blocking call on a pool thread; the loop ticks on" \
    "A() blocks a thread of the pool for 2 s; meanwhile the loop runs 'other' (3 ticks of 0.5 s): about 2 s in all." \
    --name "Task-1=main: gather" --name "Task-2=B" --name "Task-3=other" --name "Task-4=to_thread(A)"
