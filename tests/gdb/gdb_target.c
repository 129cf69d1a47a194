/*
 * gdb_target.c — the program tests/gdb/check.sh debugs: it stops (at a breakpoint on
 * weft_gdb_breakpoint_here) while two tasks are suspended at known places, so that
 * `weft tasks` and `weft bt` have something definite to show, then finishes with a
 * distinctive exit code that proves the registers gdb borrowed were given back.
 *
 * Task ids: main is 1 ("Task-1"), the sleeper 2 ("Task-2"), the other task 3 ("other"),
 * and two compact tasks 4 ("compact-a") and 5 ("compact-b"): they share one stack, so
 * when gdb stops, compact-a's frames have been copied off it to make room for
 * compact-b's, and `weft bt compact-a` must put them back for the time of the `bt`.
 */
#include "weft.h"

#include <stdio.h>

/* The status check.sh expects when everything ran to the end. */
#define EXIT_ALL_FINISHED 7

#define NOINLINE __attribute__((noinline))

/* An empty function with a side effect the compiler cannot drop: check.sh stops here. */
NOINLINE void weft_gdb_breakpoint_here(void);
void weft_gdb_breakpoint_here(void)
{
    __asm__ volatile("" ::: "memory");
}

/* The frame gdb must find on the sleeper's stack. volatile keeps a value live across
 * the suspension so the frame is not a tail call. */
NOINLINE static int sleeper_deep_function(int depth)
{
    volatile int kept = depth;
    int rc = weft_sleep(10);
    return rc == 0 ? kept : -1;
}

NOINLINE static int sleeper_middle(int depth)
{
    volatile int result = sleeper_deep_function(depth + 1);
    return result;
}

static void *sleeper(void *arg)
{
    (void)arg;
    return sleeper_middle(1) == 2 ? (void *)"slept" : NULL;
}

static void *other(void *arg)
{
    (void)arg;
    weft_sleep(5);
    return (void *)"other done";
}

NOINLINE static int compact_deep_function(int seconds)
{
    volatile int kept = seconds;
    int rc = weft_sleep(seconds);
    return rc == 0 ? kept : -1;
}

static void *compact_sleeper(void *arg)
{
    int seconds = *(const int *)arg;
    return compact_deep_function(seconds) == seconds ? (void *)"compact slept" : NULL;
}

#define N_TASKS 4

static void *main_task(void *arg)
{
    (void)arg;
    static const int compact_seconds[2] = {3, 4};
    weft_task *tasks[N_TASKS];
    tasks[0] = weft_spawn(sleeper, NULL);
    tasks[1] = weft_spawn_opts(other, NULL, &(weft_spawn_options){.name = "other"});
    tasks[2] = weft_spawn_opts(compact_sleeper, (void *)&compact_seconds[0],
                               &(weft_spawn_options){.name = "compact-a", .compact = 1});
    tasks[3] = weft_spawn_opts(compact_sleeper, (void *)&compact_seconds[1],
                               &(weft_spawn_options){.name = "compact-b", .compact = 1});
    for (int i = 0; i < N_TASKS; i++)
        if (!tasks[i])
            return NULL;
    /* One iteration: every task starts and suspends in its sleep. */
    weft_yield();
    weft_gdb_breakpoint_here();
    void *results[N_TASKS] = {NULL};
    if (weft_gather(tasks, N_TASKS, results, NULL, 0) != 0)
        return NULL;
    for (int i = 0; i < N_TASKS; i++)
        if (!results[i])
            return NULL;
    return (void *)"ok";
}

int main(void)
{
    void *result = NULL;
    int rc = weft_run_opts(main_task, NULL, &result, &(weft_options){.virtual_time = 1});
    if (rc != 0 || !result) {
        fprintf(stderr, "gdb_target: weft_run returned %d (%s), result %p\n", rc, weft_errmsg(), result);
        return 1;
    }
    printf("gdb_target: all tasks finished\n");
    return EXIT_ALL_FINISHED;
}
