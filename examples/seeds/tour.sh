#!/bin/sh
# tour.sh — the `make demo` tour: runs every seed port in teaching order, seed 0 to 4,
# each under a heading naming its tutorial and one line on what it teaches.
#
#   usage: tour.sh DIR     DIR = the folder of the built ports (build/examples/seeds)
#
# WEFT_TIME_SCALE from the environment scales every wait (make demo sets 0.1; unset
# means real time). Exits non-zero if any port fails or is missing.
set -u

if [ $# -ne 1 ] || [ ! -d "$1" ]; then
    echo "usage: tour.sh DIR   (DIR: the built ports, e.g. build/examples/seeds)" >&2
    exit 2
fi
dir=$1
scale=${WEFT_TIME_SCALE:-1.0}
export WEFT_TIME_SCALE="$scale"

failed=""
ran=0

seed() {
    printf '\n==================== Seed %s: %s ====================\n' "$1" "$2"
}

example() {
    name=$1
    lesson=$2
    printf '\n--- %s — %s\n' "$name" "$lesson"
    if [ ! -x "$dir/$name" ]; then
        echo "MISSING: $dir/$name has not been built"
        failed="$failed $name"
        return
    fi
    ran=$((ran + 1))
    "$dir/$name"
    status=$?
    if [ $status -eq 2 ]; then
        # Only a bad WEFT_TIME_SCALE gives 2; every later port would refuse it too.
        echo "tour: stopped, fix WEFT_TIME_SCALE ('$scale') and run again" >&2
        exit 2
    fi
    if [ $status -ne 0 ]; then
        echo "FAILED: $name exited with status $status"
        failed="$failed $name"
    fi
}

echo "weft seeds tour: each asyncio example of the five tutorials, ported to C."
echo "Durations below are the programs' own seconds x WEFT_TIME_SCALE=$scale."

seed 0 "Understanding Asyncio in Python (Part 2)"
example s0_main1 "await a() then b(): every step is on the critical path, about 16 s"
example s0_main2 "create_task(a()) runs a() while b() waits on I/O: about 11 s instead of 16 s"
example s0_rpc_main "the sequential version with an RPC at the end (its first call returns at once): about 16 s"
example s0_rpc_main2 "the create_task version with the RPC at the end: about 11 s"

seed 1 "Understanding concurrency with asyncio"
example s1_tasks10 "10 random jobs: sequential total = SUM of their times, concurrent total = MAX, finishing shortest first"
example s1_tasks100 "100 shorter jobs: SUM about 5 s, MAX about 0.1 s; the speed-up grows with the number of tasks"

seed 2 "Understanding AsyncIO by Code"
example s2_hello_world "a coroutine object handed to asyncio.run, which starts the loop: hello, 2 s, world"
example s2_sync_mode1 "two create_task tasks (2 s, 1 s) awaited one after the other still overlap: about 2 s"
example s2_sync_mode2 "gather returns results in argument order, whichever finishes first: about 2 s"

seed 3 "Better Python Asyncio Examples for Beginners"
example s3_async_hello "asyncio.run creates the loop and runs main: Hello, 1 s, World"
example s3_async_tasks "gather runs a 1 s and a 2 s task concurrently: both start before either ends, about 2 s"
example s3_async_tasks_create "create_task schedules but does not start: the main task's lines come first"
example s3_async_tasks_blocked "a BLOCKING sleep in task_a holds the whole loop: task_b starts late, 1 + 2 = about 3 s"
example s3_async_tasks_blocked_reversed "task_b first: its wait overlaps task_a's block, about 2 s"

seed 4 "Learning Notes: Asyncio"
example s4_coroutine_object "calling an async function runs nothing; awaiting the coroutine object runs it"
example s4_create_task "create_task runs the task only when its creator gives control back to the loop"
example s4_awaitables_ab "while A waits on I/O the loop runs B; B's work costs no extra time: about 1 s"
example s4_gather_raise "a failing child makes gather raise at once (1 s); the other child runs on"
example s4_gather_return_exceptions "return_exceptions: gather waits for all (2 s); the error sits in the result list"
example s4_taskgroup "a TaskGroup awaits its tasks when the block ends: about 2 s, not 3 s"
example s4_to_thread "to_thread runs a blocking call on another thread; the loop keeps ticking"
example s4_process_pool "a process pool runs a blocking function in another process"

echo
if [ -n "$failed" ]; then
    echo "tour: $ran ports run; FAILED:$failed"
    exit 1
fi
echo "tour: all $ran ports ran"
