/*
 * test_compact.c — compact tasks (weft_spawn_options.compact): they behave exactly as
 * ordinary tasks — order, results, timings, cancellation, gather — while sharing one
 * stack, and their local variables survive being copied out and back.
 */
#include "common.h"

#include <stdint.h>

static const weft_spawn_options compact = {.compact = 1};

/* Fills a local buffer with a pattern, sleeps (so other compact tasks run on the
 * same stack), and checks the pattern is intact afterwards. */
static void *pattern_sleeper(void *arg)
{
    intptr_t id = (intptr_t)arg;
    unsigned char buf[512];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (unsigned char)(id * 31 + (intptr_t)i);
    trace("S%d", (int)id);
    if (weft_sleep(0.001 * (double)(id % 7)) != 0)
        return weft_fail(-EIO, "sleep failed");
    if (weft_yield() != 0)
        return weft_fail(-EIO, "yield failed");
    for (size_t i = 0; i < sizeof buf; i++)
        if (buf[i] != (unsigned char)(id * 31 + (intptr_t)i))
            return weft_fail(-EIO, "task %d: byte %zu of its stack changed", (int)id, i);
    trace("E%d", (int)id);
    return (void *)(id * 10);
}

static void *gather_compact(void *arg)
{
    intptr_t n = (intptr_t)arg;
    weft_task *tasks[64];
    for (intptr_t i = 0; i < n; i++)
        tasks[i] = weft_spawn_opts(pattern_sleeper, (void *)i, &compact);
    void *results[64];
    int rc = weft_gather(tasks, (size_t)n, results, NULL, 0);
    if (rc != 0)
        return weft_fail(rc, "%s", weft_errmsg());
    intptr_t sum = 0;
    for (intptr_t i = 0; i < n; i++)
        sum += (intptr_t)results[i];
    return (void *)sum;
}

Test(compact, locals_survive_and_results_arrive)
{
    trace_reset();
    void *sum = NULL;
    cr_assert_eq(run_virtual(gather_compact, (void *)(intptr_t)20, &sum), 0, "%s", weft_errmsg());
    cr_assert_eq((intptr_t)sum, 10 * (19 * 20 / 2));
}

Test(compact, runs_in_spawn_order_like_ordinary_tasks)
{
    trace_reset();
    cr_assert_eq(run_virtual(gather_compact, (void *)(intptr_t)3, NULL), 0);
    /* Spawn order to start; then by sleep length 0, 1, 2 ms (ids 0, 1, 2). */
    cr_assert_str_eq(trace_text, "S0 S1 S2 E0 E1 E2");
}

/* A compact task that gathers compact children: the gather's state must not live on
 * the gatherer's moving stack. */
static void *compact_parent(void *arg)
{
    (void)arg;
    weft_task *t = weft_spawn_opts(gather_compact, (void *)(intptr_t)10, &compact);
    void *sum = NULL;
    int rc = weft_await(t, &sum);
    return rc ? weft_fail(rc, "%s", weft_errmsg()) : sum;
}

Test(compact, compact_task_gathers_compact_children)
{
    trace_reset();
    void *sum = NULL;
    cr_assert_eq(run_virtual(compact_parent, NULL, &sum), 0, "%s", weft_errmsg());
    cr_assert_eq((intptr_t)sum, 10 * 45);
}

static void *sleep_long(void *arg)
{
    (void)arg;
    int rc = weft_sleep(100);
    return weft_fail(rc ? rc : -EIO, "sleep returned %d", rc);
}

static void *cancel_compact_gatherer(void *arg)
{
    (void)arg;
    double *when = arg;
    weft_task *t = weft_spawn_opts(gather_compact, (void *)(intptr_t)5, &compact);
    weft_task *sleeper = weft_spawn_opts(sleep_long, NULL, &compact);
    cr_expect_eq(weft_sleep(0.0005), 0);
    cr_expect(weft_cancel(t, "stop"));
    cr_expect(weft_cancel(sleeper, NULL));
    cr_expect_eq(weft_await(t, NULL), -ECANCELED);
    cr_expect_str_eq(weft_errmsg(), "stop");
    cr_expect_eq(weft_await(sleeper, NULL), -ECANCELED);
    *when = weft_time();
    return NULL;
}

Test(compact, cancellation_reaches_compact_tasks)
{
    trace_reset();
    double when = -1;
    cr_assert_eq(run_virtual(cancel_compact_gatherer, &when, NULL), 0);
    cr_assert(time_is(when, 0.0005), "finished at %f", when);
}

static void *many_compact(void *arg)
{
    intptr_t n = (intptr_t)arg;
    weft_task **tasks = malloc((size_t)n * sizeof *tasks);
    cr_expect_not_null(tasks);
    for (intptr_t i = 0; i < n; i++)
        tasks[i] = weft_spawn_opts(pattern_sleeper, (void *)(i % 1000), &compact);
    void **results = malloc((size_t)n * sizeof *results);
    int rc = weft_gather(tasks, (size_t)n, results, NULL, 0);
    intptr_t sum = 0;
    for (intptr_t i = 0; i < n && rc == 0; i++)
        sum += (intptr_t)results[i];
    free(tasks);
    free(results);
    return rc ? weft_fail(rc, "%s", weft_errmsg()) : (void *)sum;
}

Test(compact, fifty_thousand_sleeping_compact_tasks)
{
    trace_reset();
    void *sum = NULL;
    cr_assert_eq(run_virtual(many_compact, (void *)(intptr_t)50000, &sum), 0, "%s", weft_errmsg());
    cr_assert_eq((intptr_t)sum, 50 * 10 * (999 * 1000 / 2));
}

static void *deep(int n)
{
    volatile char pad[1024];
    pad[0] = (char)n;
    if (n > 0)
        return deep(n - 1);
    return (void *)(intptr_t)(pad[0] + weft_yield());
}

static void *deep_compact(void *arg)
{
    (void)arg;
    return deep(100); /* ~100 KiB of frames copied out and back */
}

static void *two_deep(void *arg)
{
    (void)arg;
    weft_task *t[2] = {weft_spawn_opts(deep_compact, NULL, &compact), weft_spawn_opts(deep_compact, NULL, &compact)};
    return (void *)(intptr_t)weft_gather(t, 2, NULL, NULL, 0);
}

Test(compact, deep_frames_are_saved_whole)
{
    void *rc = (void *)1;
    cr_assert_eq(run_virtual(two_deep, NULL, &rc), 0);
    cr_assert_eq((intptr_t)rc, 0);
}

#ifdef WEFT_TEST_ASSERTS
/* Debug and sanitizer builds: a compact task spawning a child with a pointer to
 * its own local (the natural `weft_spawn(child, &local)`) is refused, since the
 * child would read the shared stack after the parent's frames moved away. */
static void *reads_int(void *arg)
{
    return (void *)(intptr_t)*(int *)arg;
}

static void *spawns_with_a_local(void *arg)
{
    (void)arg;
    int local = 42;
    weft_task *t = weft_spawn(reads_int, &local);
    if (t)
        return weft_fail(-EIO, "spawned with a pointer into the compact stack");
    if (!strstr(weft_errmsg(), "points into the stack of compact task"))
        return weft_fail(-EIO, "message: %s", weft_errmsg());
    static int in_static = 7;
    void *result = NULL;
    int rc = weft_await(weft_spawn(reads_int, &in_static), &result);
    if (rc != 0 || (intptr_t)result != 7)
        return weft_fail(-EIO, "static memory refused: %d", rc);
    return NULL;
}

static void *compact_local_main(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)weft_await(weft_spawn_opts(spawns_with_a_local, NULL, &compact), NULL);
}

Test(compact, a_pointer_into_a_compact_stack_is_refused_in_debug_builds)
{
    void *result = NULL;
    cr_assert_eq(run_virtual(compact_local_main, NULL, &result), 0);
    cr_assert_eq((intptr_t)result, 0, "%s", weft_errmsg());
}
#endif
