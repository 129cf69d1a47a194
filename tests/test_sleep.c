/*
 * test_sleep.c — weft_sleep's timings on the virtual clock (exact), what sleep(0),
 * negative and NaN durations do, the order of equal deadlines, the fate of a
 * cancelled sleeper's timer, and one real-time sleep with a wide margin.
 */
#include <time.h>

#include "common.h"

TestSuite(sleep, .timeout = 20);

/* ---- sequential and parallel sleeps -------------------------------------- */

static void *sleep_one_then_two(void *arg)
{
    double *times = arg;
    times[0] = weft_time();
    cr_expect_eq(weft_sleep(1), 0);
    times[1] = weft_time();
    cr_expect_eq(weft_sleep(2), 0);
    times[2] = weft_time();
    return NULL;
}

Test(sleep, sequential_sleeps_add_up_exactly)
{
    double times[3] = {-1, -1, -1};
    cr_assert_eq(run_virtual(sleep_one_then_two, times, NULL), 0);
    cr_assert(time_is(times[0], 0.0), "virtual clock started at %f", times[0]);
    cr_assert(time_is(times[1], 1.0), "after sleep(1): %f", times[1]);
    cr_assert(time_is(times[2], 3.0), "after sleep(1)+sleep(2): %f", times[2]);
}

static void *sleep_and_record(void *arg)
{
    double seconds = *(double *)arg;
    cr_expect_eq(weft_sleep(seconds), 0);
    trace("%g@%g", seconds, weft_time());
    return NULL;
}

static void *parallel_main(void *arg)
{
    double *end = arg;
    static double two = 2, one = 1;
    weft_task *tasks[2] = {weft_spawn(sleep_and_record, &two), weft_spawn(sleep_and_record, &one)};
    cr_expect_eq(weft_gather(tasks, 2, NULL, NULL, 0), 0);
    *end = weft_time();
    return NULL;
}

Test(sleep, parallel_sleeps_overlap)
{
    double end = -1;
    trace_reset();
    cr_assert_eq(run_virtual(parallel_main, &end, NULL), 0);
    cr_assert_str_eq(trace_text, "1@1 2@2");
    cr_assert(time_is(end, 2.0), "two parallel sleeps of 2 and 1 ended at %f", end);
}

/* ---- sleep(0) and negative sleeps yield exactly one iteration ----------- */

static void *record_twice(void *arg)
{
    const char *label = arg;
    trace("%s1", label);
    cr_expect_eq(weft_yield(), 0);
    trace("%s2", label);
    return NULL;
}

static void *short_sleep_main(void *arg)
{
    double seconds = *(double *)arg;
    weft_task *a = weft_spawn(record_twice, "A");
    weft_task *b = weft_spawn(record_twice, "B");
    cr_expect_eq(weft_sleep(seconds), 0);
    trace("M");
    cr_expect(time_is(weft_time(), 0.0), "sleep(%g) moved the clock to %f", seconds, weft_time());
    cr_expect_eq(weft_await(a, NULL), 0);
    cr_expect_eq(weft_await(b, NULL), 0);
    return NULL;
}

Test(sleep, sleep_zero_yields_one_iteration)
{
    double seconds = 0;
    trace_reset();
    cr_assert_eq(run_virtual(short_sleep_main, &seconds, NULL), 0);
    cr_assert_str_eq(trace_text, "A1 B1 M A2 B2");
}

Test(sleep, negative_sleep_is_sleep_zero)
{
    double seconds = -5;
    trace_reset();
    cr_assert_eq(run_virtual(short_sleep_main, &seconds, NULL), 0);
    cr_assert_str_eq(trace_text, "A1 B1 M A2 B2");
}

/* ---- NaN is an error and does not suspend ---------------------------------- */

static int nan_bystander_ran;

static void *nan_bystander(void *arg)
{
    (void)arg;
    nan_bystander_ran = 1;
    return NULL;
}

static void *nan_main(void *arg)
{
    int *rc = arg;
    weft_task *t = weft_spawn(nan_bystander, NULL);
    *rc = weft_sleep(NAN);
    cr_expect_eq(nan_bystander_ran, 0, "weft_sleep(NAN) suspended");
    cr_expect_eq(weft_await(t, NULL), 0);
    return NULL;
}

Test(sleep, nan_is_einval_without_suspending)
{
    int rc = 1;
    nan_bystander_ran = 0;
    cr_assert_eq(run_virtual(nan_main, &rc, NULL), 0);
    cr_assert_eq(rc, -EINVAL);
}

/* ---- equal deadlines fire in scheduling order ------------------------------- */

#define EQUAL_SLEEPERS 200

static int wake_order[EQUAL_SLEEPERS];
static int wakes;

static void *sleep_two_seconds(void *arg)
{
    cr_expect_eq(weft_sleep(2.0), 0);
    wake_order[wakes++] = (int)(intptr_t)arg;
    return NULL;
}

static void *sleep_until_two(void *arg)
{
    /* Deadlines reached by different paths: scheduled at 0.5 with 1.5 to go. */
    cr_expect_eq(weft_sleep(0.5), 0);
    cr_expect_eq(weft_sleep(1.5), 0);
    wake_order[wakes++] = (int)(intptr_t)arg;
    return NULL;
}

static void *equal_deadlines_main(void *arg)
{
    (void)arg;
    weft_task *tasks[EQUAL_SLEEPERS];
    for (int i = 0; i < EQUAL_SLEEPERS / 2; i++)
        tasks[i] = weft_spawn(sleep_two_seconds, (void *)(intptr_t)i);
    for (int i = EQUAL_SLEEPERS / 2; i < EQUAL_SLEEPERS; i++)
        tasks[i] = weft_spawn(sleep_until_two, (void *)(intptr_t)i);
    cr_expect_eq(weft_gather(tasks, EQUAL_SLEEPERS, NULL, NULL, 0), 0);
    cr_expect(time_is(weft_time(), 2.0));
    return NULL;
}

Test(sleep, equal_deadlines_fire_in_scheduling_order)
{
    wakes = 0;
    cr_assert_eq(run_virtual(equal_deadlines_main, NULL, NULL), 0);
    cr_assert_eq(wakes, EQUAL_SLEEPERS);
    for (int i = 0; i < EQUAL_SLEEPERS; i++)
        cr_assert_eq(wake_order[i], i, "wake %d was task %d", i, wake_order[i]);
}

/* ---- a cancelled sleeper's timer is gone ------------------------------------ */

typedef struct cancelled_sleeper {
    int rc;
    double woke_at;
} cancelled_sleeper;

static void *sleep_hundred(void *arg)
{
    cancelled_sleeper *report = arg;
    report->rc = weft_sleep(100);
    report->woke_at = weft_time();
    return NULL;
}

static void *cancelled_sleeper_main(void *arg)
{
    cancelled_sleeper *report = arg;
    weft_task *t = weft_spawn(sleep_hundred, report);
    cr_expect_eq(weft_sleep(1), 0);
    cr_expect(weft_cancel(t, NULL));
    cr_expect_eq(weft_await(t, NULL), -ECANCELED);
    cr_expect(time_is(weft_time(), 1.0), "await of the cancelled sleeper ended at %f", weft_time());
    return NULL;
}

Test(sleep, cancelled_sleeper_does_not_hold_the_loop)
{
    cancelled_sleeper report = {1, -1};
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    cr_assert_eq(run_virtual(cancelled_sleeper_main, &report, NULL), 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    cr_assert_eq(report.rc, -ECANCELED);
    cr_assert(time_is(report.woke_at, 1.0), "the sleeper woke at %f", report.woke_at);
    double real = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    cr_assert_lt(real, 5.0, "a virtual-time loop took %f real seconds", real);
}

/* A sleeper cancelled, then sleeping again after weft_uncancel, must be woken by its
 * new timer only: a leftover timer at 5 would wake it early. */
static void *resleep_after_cancel(void *arg)
{
    cancelled_sleeper *report = arg;
    cr_expect_eq(weft_sleep(5), -ECANCELED);
    weft_uncancel();
    report->rc = weft_sleep(10);
    report->woke_at = weft_time();
    return NULL;
}

static void *resleep_main(void *arg)
{
    weft_task *t = weft_spawn(resleep_after_cancel, arg);
    cr_expect_eq(weft_sleep(1), 0);
    cr_expect(weft_cancel(t, NULL));
    cr_expect_eq(weft_await(t, NULL), 0);
    return NULL;
}

Test(sleep, cancelled_timer_never_fires)
{
    cancelled_sleeper report = {1, -1};
    cr_assert_eq(run_virtual(resleep_main, &report, NULL), 0);
    cr_assert_eq(report.rc, 0);
    cr_assert(time_is(report.woke_at, 11.0), "woke at %f, expected 11", report.woke_at);
}

/* Many cancelled timers leave the structure: the survivors still fire on time. */
#define MANY_CANCELLED 20000

static void *cancel_many_main(void *arg)
{
    (void)arg;
    static weft_task *tasks[MANY_CANCELLED];
    static cancelled_sleeper reports[MANY_CANCELLED];
    for (int i = 0; i < MANY_CANCELLED; i++)
        tasks[i] = weft_spawn(sleep_hundred, &reports[i]);
    cr_expect_eq(weft_yield(), 0);
    for (int i = 0; i < MANY_CANCELLED; i++)
        weft_cancel(tasks[i], NULL);
    static int errs[MANY_CANCELLED];
    cr_expect_eq(weft_gather(tasks, MANY_CANCELLED, NULL, errs, WEFT_RETURN_EXCEPTIONS), 0);
    for (int i = 0; i < MANY_CANCELLED; i++)
        if (errs[i] != -ECANCELED) {
            cr_expect_eq(errs[i], -ECANCELED, "task %d", i);
            break;
        }
    cr_expect(time_is(weft_time(), 0.0));
    cr_expect_eq(weft_sleep(0.25), 0);
    cr_expect(time_is(weft_time(), 0.25), "a sleep after many cancelled timers ended at %f", weft_time());
    return NULL;
}

Test(sleep, many_cancelled_timers)
{
    cr_assert_eq(run_virtual(cancel_many_main, NULL, NULL), 0);
}

/* ---- real time ---------------------------------------------------------------- */

static void *real_sleep(void *arg)
{
    double *elapsed = arg;
    double t0 = weft_time();
    cr_expect_eq(weft_sleep(0.05), 0);
    *elapsed = weft_time() - t0;
    return NULL;
}

Test(sleep, real_time_sleep, .timeout = 20)
{
    double elapsed = -1;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    cr_assert_eq(weft_run(real_sleep, &elapsed, NULL), 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double outside = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    cr_assert(elapsed >= 0.04 && elapsed <= 1.0, "weft_time saw sleep(0.05) take %f s", elapsed);
    cr_assert(outside >= 0.04 && outside <= 1.0, "weft_run of sleep(0.05) took %f s", outside);
}
