/*
 * test_metrics.c — weft_get_loop_metrics as a user reads it: tasks alive and timers
 * after spawning sleepers, iterations that grow, callbacks counted, the longest step
 * and its task's name while steps are timed (and nothing of steps when they are not),
 * thread pool calls queued and running while they block, time in the poller after a
 * real sleep, and the errors for a NULL struct and for a call outside any loop.
 *
 * Timings are checked only from below (a step that busy-waits 50 ms is at least
 * 40 ms): a loaded machine makes steps longer, never shorter.
 */
#include <criterion/criterion.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "weft.h"

/* Nothing from the environment may turn step timing on behind a test's back. */
static void clean_env(void)
{
    unsetenv("WEFT_DEBUG");
    unsetenv("WEFT_WATCHDOG");
    unsetenv("WEFT_TRACE");
    unsetenv("WEFT_SLOW_STEP");
    unsetenv("WEFT_DUMP_SIGNAL");
}

TestSuite(metrics, .init = clean_env, .timeout = 30);

static weft_loop_metrics get(void)
{
    weft_loop_metrics m;
    memset(&m, 0xa5, sizeof m);
    int rc = weft_get_loop_metrics(&m);
    cr_expect_eq(rc, 0, "weft_get_loop_metrics failed: %d %s", rc, weft_errmsg());
    return m;
}

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void busy_wait(double seconds)
{
    double end = mono_s() + seconds;
    while (mono_s() < end) {
    }
}

/* ---- counts: tasks alive, spawned, timers, iterations, callbacks ---------- */

static void *sleeper(void *arg)
{
    (void)arg;
    (void)weft_sleep(100);
    return NULL;
}

static int callback_ran;

static void count_callback(void *arg)
{
    (void)arg;
    callback_ran++;
}

#define SLEEPERS 5

static void *counts_main(void *arg)
{
    (void)arg;
    weft_loop_metrics m0 = get();
    cr_expect_eq(m0.tasks_alive, 1, "only main is alive at its start, got %ju", (uintmax_t)m0.tasks_alive);
    cr_expect_eq(m0.tasks_spawned, 1, "main counts as spawned, got %ju", (uintmax_t)m0.tasks_spawned);
    cr_expect_eq(m0.timers, 0);

    weft_task *t[SLEEPERS];
    for (int i = 0; i < SLEEPERS; i++)
        t[i] = weft_spawn(sleeper, NULL);
    weft_loop_metrics m1 = get();
    cr_expect_eq(m1.tasks_alive, 1 + SLEEPERS);
    cr_expect_eq(m1.tasks_spawned, 1 + SLEEPERS);
    cr_expect_geq(m1.ready, SLEEPERS, "the new tasks are ready to run, got %ju ready", (uintmax_t)m1.ready);

    (void)weft_yield(); /* each sleeper starts and goes to sleep */
    weft_loop_metrics m2 = get();
    cr_expect_eq(m2.tasks_alive, 1 + SLEEPERS);
    cr_expect_eq(m2.timers, SLEEPERS, "one timer per sleeper, got %ju", (uintmax_t)m2.timers);
    cr_expect_eq(m2.ready, 0, "nothing is ready while every sleeper sleeps, got %ju", (uintmax_t)m2.ready);
    cr_expect_gt(m2.iterations, m0.iterations, "iterations did not grow: %ju then %ju",
                 (uintmax_t)m0.iterations, (uintmax_t)m2.iterations);

    callback_ran = 0;
    cr_expect(weft_call_ok(weft_call_soon(count_callback, NULL)));
    cr_expect(weft_call_ok(weft_call_soon(count_callback, NULL)));
    (void)weft_sleep(1);
    cr_expect_eq(callback_ran, 2);
    weft_loop_metrics m3 = get();
    cr_expect_geq(m3.callbacks_run, m2.callbacks_run + 2);
    cr_expect_gt(m3.iterations, m2.iterations);

    for (int i = 0; i < SLEEPERS; i++) {
        weft_cancel(t[i], NULL);
        (void)weft_await(t[i], NULL);
    }
    weft_loop_metrics m4 = get();
    cr_expect_eq(m4.tasks_alive, 1, "the sleepers are done, got %ju alive", (uintmax_t)m4.tasks_alive);
    cr_expect_eq(m4.timers, 0, "their timers are gone, got %ju", (uintmax_t)m4.timers);
    cr_expect_eq(m4.tasks_spawned, 1 + SLEEPERS);
    return NULL;
}

Test(metrics, counts_tasks_timers_iterations_callbacks)
{
    cr_assert_eq(weft_run_opts(counts_main, NULL, NULL, &(weft_options){.virtual_time = 1}), 0);
}

/* ---- the longest step, with and without step timing ---------------------- */

static void *busy_50ms(void *arg)
{
    (void)arg;
    busy_wait(0.05);
    return NULL;
}

static void *longest_main(void *arg)
{
    weft_task *t = weft_spawn_opts(busy_50ms, NULL, &(weft_spawn_options){.name = "cruncher"});
    cr_expect_not_null(t);
    (void)weft_await(t, NULL);
    weft_loop_metrics *out = arg;
    *out = get();
    return NULL;
}

Test(metrics, time_steps_names_the_longest_step)
{
    weft_loop_metrics m;
    memset(&m, 0, sizeof m);
    cr_assert_eq(weft_run_opts(longest_main, &m, NULL, &(weft_options){.time_steps = 1}), 0);
    cr_expect_eq(m.steps_timed, 1, "time_steps alone times steps");
    cr_expect_geq(m.steps, 2, "main's first step and cruncher's ran, got %ju", (uintmax_t)m.steps);
    cr_expect_str_eq(m.longest_step_task, "cruncher");
    cr_expect_neq(m.longest_step_task_id, 0);
    cr_expect_geq(m.longest_step_ns, 40 * 1000 * 1000, "the longest step took %jd ns, less than the 50 ms busy wait",
                  (intmax_t)m.longest_step_ns);
    cr_expect_geq(m.run_ns, 40 * 1000 * 1000, "run_ns %jd does not hold the 50 ms busy wait", (intmax_t)m.run_ns);
}

Test(metrics, no_step_figures_unless_steps_are_timed)
{
    weft_loop_metrics m;
    memset(&m, 0xa5, sizeof m);
    cr_assert_eq(weft_run(longest_main, &m, NULL), 0);
    cr_expect_eq(m.steps_timed, 0);
    cr_expect_eq(m.steps, 0);
    cr_expect_eq(m.longest_step_ns, 0);
    cr_expect_eq(m.longest_step_task_id, 0);
    cr_expect_str_eq(m.longest_step_task, "");
    /* The rest is counted all the same. */
    cr_expect_geq(m.tasks_spawned, 2);
    cr_expect_geq(m.run_ns, 40 * 1000 * 1000);
}

/* ---- thread pool calls: queued and running ------------------------------- */

static atomic_int release_calls;
static atomic_int calls_started;

static void *blocking_call(void *arg)
{
    (void)arg;
    atomic_fetch_add(&calls_started, 1);
    while (!atomic_load(&release_calls))
        nanosleep(&(struct timespec){.tv_nsec = 1000 * 1000}, NULL);
    return NULL;
}

static void *call_on_pool(void *pool)
{
    int rc = weft_pool_run(pool, blocking_call, NULL, NULL);
    cr_expect_eq(rc, 0, "weft_pool_run: %d %s", rc, weft_errmsg());
    return NULL;
}

static void *call_to_thread(void *arg)
{
    (void)arg;
    int rc = weft_to_thread(blocking_call, NULL, NULL);
    cr_expect_eq(rc, 0, "weft_to_thread: %d %s", rc, weft_errmsg());
    return NULL;
}

/* Sleeps a little at a time until the loop counts `running` and `queued` calls;
 * false after 10 s. */
static bool wait_for_counts(uint64_t running, uint64_t queued, weft_loop_metrics *m)
{
    for (int i = 0; i < 10000; i++) {
        *m = get();
        if (m->pool_calls_running == running && m->pool_calls_queued == queued)
            return true;
        (void)weft_sleep(0.001);
    }
    return false;
}

static void *pool_main(void *arg)
{
    (void)arg;
    weft_loop_metrics m = get();
    cr_expect_eq(m.pool_calls_running, 0);
    cr_expect_eq(m.pool_calls_queued, 0);

    /* One call on the default pool, blocked until released. */
    atomic_store(&release_calls, 0);
    atomic_store(&calls_started, 0);
    weft_task *t = weft_spawn(call_to_thread, NULL);
    (void)weft_yield(); /* it submits its call: queued (not handed to a thread yet) or running */
    m = get();
    cr_expect_eq(m.pool_calls_queued + m.pool_calls_running, 1, "the call is neither queued nor running: %ju %ju",
                 (uintmax_t)m.pool_calls_queued, (uintmax_t)m.pool_calls_running);
    cr_expect(wait_for_counts(1, 0, &m), "a blocked weft_to_thread call: running %ju, queued %ju (want 1, 0)",
              (uintmax_t)m.pool_calls_running, (uintmax_t)m.pool_calls_queued);
    atomic_store(&release_calls, 1);
    (void)weft_await(t, NULL);
    m = get();
    cr_expect_eq(m.pool_calls_running, 0);
    cr_expect_eq(m.pool_calls_queued, 0);

    /* A pool of one thread and two calls: one runs, the other waits for the thread. */
    atomic_store(&release_calls, 0);
    atomic_store(&calls_started, 0);
    weft_pool *pool = weft_pool_new(1);
    cr_assert_not_null(pool);
    weft_task *a = weft_spawn(call_on_pool, pool);
    weft_task *b = weft_spawn(call_on_pool, pool);
    cr_expect(wait_for_counts(1, 1, &m), "two calls on a pool of one thread: running %ju, queued %ju (want 1, 1)",
              (uintmax_t)m.pool_calls_running, (uintmax_t)m.pool_calls_queued);
    atomic_store(&release_calls, 1);
    (void)weft_await(a, NULL);
    (void)weft_await(b, NULL);
    cr_expect_eq(atomic_load(&calls_started), 2);
    m = get();
    cr_expect_eq(m.pool_calls_running, 0);
    cr_expect_eq(m.pool_calls_queued, 0);
    weft_pool_free(pool);
    return NULL;
}

Test(metrics, pool_calls_queued_and_running)
{
    cr_assert_eq(weft_run(pool_main, NULL, NULL), 0);
}

/* ---- time in the poller -------------------------------------------------- */

static void *poll_main(void *arg)
{
    weft_loop_metrics *out = arg;
    weft_loop_metrics m0 = get();
    (void)weft_sleep(0.02);
    weft_loop_metrics m1 = get();
    cr_expect_gt(m1.polls, m0.polls, "a sleep with nothing else to do polls");
    cr_expect_geq(m1.poll_ns - m0.poll_ns, 10 * 1000 * 1000, "20 ms asleep, %jd ns in the poller",
                  (intmax_t)(m1.poll_ns - m0.poll_ns));
    cr_expect_geq(m1.elapsed_ns, m1.poll_ns + m1.run_ns - 1000);
    cr_expect_geq(m1.elapsed_ns, 20 * 1000 * 1000);
    *out = m1;
    return NULL;
}

Test(metrics, poll_time_after_a_real_sleep)
{
    weft_loop_metrics m;
    cr_assert_eq(weft_run(poll_main, &m, NULL), 0);
    cr_expect_gt(m.poll_ns, 0);
}

/* ---- misuse ----------------------------------------------------------------- */

static void *null_main(void *arg)
{
    int *rc = arg;
    *rc = weft_get_loop_metrics(NULL);
    return NULL;
}

Test(metrics, null_is_einval)
{
    int rc = 0;
    cr_assert_eq(weft_run(null_main, &rc, NULL), 0);
    cr_expect_eq(rc, -EINVAL);
}

Test(metrics, outside_a_loop_is_enotinloop)
{
    weft_loop_metrics m;
    cr_expect_eq(weft_get_loop_metrics(&m), WEFT_ENOTINLOOP);
    cr_expect_not_null(strstr(weft_errmsg(), "running weft loop"), "message: %s", weft_errmsg());
}
