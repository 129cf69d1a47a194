/*
 * smoke_test.c — runs the whole library through its public API on whatever machine
 * it is compiled for: tests/ctx/CMakeLists.txt cross-compiles it with the AArch64
 * context switch and runs it under qemu. Plain C with its own checks (no Criterion).
 * Prints one line per test, then "N passed, M failed"; exits non-zero on any failure.
 */
#include <weft.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static int tests_passed, tests_failed, current_test_failures;

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond)) {                                                               \
            current_test_failures++;                                                 \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                            \
    } while (0)

static void run_test(const char *name, void (*test)(void))
{
    current_test_failures = 0;
    test();
    if (current_test_failures == 0) {
        tests_passed++;
        printf("ok   %s\n", name);
    } else {
        tests_failed++;
        printf("FAIL %s\n", name);
    }
    fflush(stdout);
}

#define RUN(test) run_test(#test, test)

static const weft_options virtual_clock = {.virtual_time = 1};

/* ------------------------------------------------------------------------ */
/* Three tasks interleave at weft_yield, sleep in virtual time, are gathered */
/* ------------------------------------------------------------------------ */

enum { WORKERS = 3, YIELDS = 3 };

static char trace[64];
static size_t trace_len;
static double woke_at[WORKERS];

static void record(char c)
{
    if (trace_len + 1 < sizeof trace)
        trace[trace_len++] = c;
}

static void *worker(void *arg)
{
    int id = (int)(intptr_t)arg;
    /* A double live across every suspension: lost d8-d15 would show here. */
    double scale = 1.0 + id * 0.25;
    for (int i = 0; i < YIELDS; i++) {
        record((char)('A' + id));
        if (weft_yield() != 0)
            return weft_fail(-EPROTO, "weft_yield failed");
        scale *= 2.0;
    }
    if (weft_sleep(0.5 * (id + 1)) != 0)
        return weft_fail(-EPROTO, "weft_sleep failed");
    woke_at[id] = weft_time();
    return (void *)(intptr_t)(id * 10 + (int)scale);
}

static void *gather_three(void *arg)
{
    (void)arg;
    weft_task *tasks[WORKERS];
    for (int id = 0; id < WORKERS; id++)
        tasks[id] = weft_spawn(worker, (void *)(intptr_t)id);
    /* Spawned tasks wait until this one suspends. */
    record('M');
    void *results[WORKERS] = {0};
    int errs[WORKERS] = {-1, -1, -1};
    int err = weft_gather(tasks, WORKERS, results, errs, 0);
    if (err != 0)
        return weft_fail(err, "gather: %s", weft_errmsg());
    record('M');
    intptr_t sum = 0;
    for (int id = 0; id < WORKERS; id++) {
        if (errs[id] != 0)
            return weft_fail(-EPROTO, "worker %d failed with %d", id, errs[id]);
        sum += (intptr_t)results[id];
    }
    return (void *)sum;
}

static void test_three_tasks_yield_sleep_and_gather(void)
{
    trace_len = 0;
    memset(woke_at, 0, sizeof woke_at);
    void *result = NULL;
    int err = weft_run_opts(gather_three, NULL, &result, &virtual_clock);
    trace[trace_len] = '\0';
    if (err != 0)
        fprintf(stderr, "weft_run: %s (%s)\n", weft_errname(err), weft_errmsg());
    CHECK(err == 0);
    CHECK(strcmp(trace, "MABCABCABCM") == 0);
    /* Results: id*10 + 8*(1 + id/4) = 8, 20, 32. */
    CHECK((intptr_t)result == 8 + 20 + 32);
    for (int id = 0; id < WORKERS; id++)
        CHECK(fabs(woke_at[id] - 0.5 * (id + 1)) < 1e-9);
}

/* ------------------------------------------------------------------------ */
/* weft_run hands back main's error and message                             */
/* ------------------------------------------------------------------------ */

static void *fail_after_sleeping(void *arg)
{
    (void)arg;
    if (weft_sleep(2.0) != 0)
        return weft_fail(-EPROTO, "weft_sleep failed");
    return weft_fail(-EIO, "disk %d on fire", 7);
}

static void test_run_returns_mains_error(void)
{
    void *result = (void *)1;
    int err = weft_run_opts(fail_after_sleeping, NULL, &result, &virtual_clock);
    CHECK(err == -EIO);
    CHECK(strcmp(weft_errmsg(), "disk 7 on fire") == 0);
}

/* ------------------------------------------------------------------------ */
/* Many tasks, each switching many times                                    */
/* ------------------------------------------------------------------------ */

enum { CROWD = 100, CROWD_YIELDS = 50 };

static void *counting_task(void *arg)
{
    long *counter = arg;
    for (int i = 0; i < CROWD_YIELDS; i++) {
        ++*counter;
        if (weft_yield() != 0)
            return weft_fail(-EPROTO, "weft_yield failed");
    }
    return NULL;
}

static void *crowd(void *arg)
{
    long *counter = arg;
    weft_task *tasks[CROWD];
    for (int i = 0; i < CROWD; i++)
        tasks[i] = weft_spawn(counting_task, counter);
    int err = weft_gather(tasks, CROWD, NULL, NULL, 0);
    return err != 0 ? weft_fail(err, "gather: %s", weft_errmsg()) : NULL;
}

static void test_a_hundred_tasks_yield_fifty_times(void)
{
    long counter = 0;
    int err = weft_run(crowd, &counter, NULL);
    CHECK(err == 0);
    CHECK(counter == (long)CROWD * CROWD_YIELDS);
}

int main(void)
{
    RUN(test_three_tasks_yield_sleep_and_gather);
    RUN(test_run_returns_mains_error);
    RUN(test_a_hundred_tasks_yield_fifty_times);
    printf("%d passed, %d failed\n", tests_passed, tests_failed);
    return tests_failed == 0 ? 0 : 1;
}
