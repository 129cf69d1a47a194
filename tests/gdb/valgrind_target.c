/*
 * valgrind_target.c — the program the ctest valgrind_smoke runs under valgrind's
 * memcheck: a little of everything that moves a thread between stacks (spawning,
 * sleeping on virtual and real time, gathering, cancelling, compact tasks sharing a
 * stack, a task with its own stack size, stacks reused from the pool, a second loop),
 * so that memcheck sees weft's stack switches and reports no error.
 * Exits 0 when every step gave the expected result, 1 otherwise (saying which).
 */
#include "weft.h"

#include <stdio.h>
#include <string.h>

#define NOINLINE __attribute__((noinline))

static int failures;

static void expect(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "valgrind_target: FAILED: %s\n", what);
        failures++;
    }
}

/* Uses a few KiB of the task's stack, with a sleep at the bottom, so memcheck
 * follows reads and writes on it across suspensions. */
NOINLINE static long deep(int depth, double seconds)
{
    char frame[512];
    memset(frame, depth, sizeof frame);
    long sum = 0;
    if (depth > 0)
        sum = deep(depth - 1, seconds);
    else if (weft_sleep(seconds) != 0)
        return -1;
    for (size_t i = 0; i < sizeof frame; i += 64)
        sum += frame[i];
    return sum;
}

static void *worker(void *arg)
{
    int n = (int)(long)arg;
    long sum = deep(4 + n % 4, 0.001 * n);
    return sum < 0 ? NULL : arg;
}

static void *sleeps_forever(void *arg)
{
    (void)arg;
    weft_sleep(1e6);
    return weft_cancelled() ? NULL : (void *)"not cancelled";
}

static void *real_time_nap(void *arg)
{
    (void)arg;
    return weft_sleep(0.01) == 0 ? (void *)"napped" : NULL;
}

#define WORKERS 40
#define COMPACT 8

static void *main_task(void *arg)
{
    int virtual_time = *(const int *)arg;
    weft_task *tasks[WORKERS + COMPACT];
    for (long i = 0; i < WORKERS; i++)
        tasks[i] = weft_spawn(worker, (void *)(i + 1));
    for (long i = 0; i < COMPACT; i++)
        tasks[WORKERS + i] = weft_spawn_opts(worker, (void *)(i + 1), &(weft_spawn_options){.compact = 1});
    void *results[WORKERS + COMPACT];
    int rc = weft_gather(tasks, WORKERS + COMPACT, results, NULL, 0);
    expect(rc == 0, "gather of the workers");
    for (long i = 0; rc == 0 && i < WORKERS + COMPACT; i++)
        expect(results[i] == (void *)(i < WORKERS ? i + 1 : i - WORKERS + 1), "a worker's result");

    /* A second round reuses the pooled stacks. */
    for (long i = 0; i < WORKERS; i++)
        tasks[i] = weft_spawn(worker, (void *)(i + 1));
    expect(weft_gather(tasks, WORKERS, NULL, NULL, 0) == 0, "gather of the second round");

    weft_task *big = weft_spawn_opts(worker, (void *)3L, &(weft_spawn_options){.stack_size = 1024 * 1024});
    expect(weft_await(big, NULL) == 0, "a task with a 1 MiB stack");

    weft_task *doomed = weft_spawn(sleeps_forever, NULL);
    weft_yield();
    weft_cancel(doomed, "test over");
    expect(weft_await(doomed, NULL) == -ECANCELED, "a cancelled sleeper");

    if (!virtual_time)
        expect(weft_await(weft_spawn(real_time_nap, NULL), NULL) == 0, "a nap on real time");

    /* Left running: weft_run cancels it when main returns. */
    weft_detach(weft_spawn(sleeps_forever, NULL));
    return (void *)"done";
}

int main(void)
{
    for (int virtual_time = 1; virtual_time >= 0; virtual_time--) {
        void *result = NULL;
        int rc = weft_run_opts(main_task, &virtual_time, &result,
                               &(weft_options){.virtual_time = virtual_time});
        expect(rc == 0 && result != NULL, virtual_time ? "weft_run on virtual time" : "weft_run on real time");
        if (rc != 0)
            fprintf(stderr, "valgrind_target: weft_run: %s\n", weft_errmsg());
    }
    if (failures)
        return 1;
    printf("valgrind_target: ok\n");
    return 0;
}
