/*
 * test_run.c — weft_run as a user sees it: main's result and error, what happens
 * to tasks and timers left over when main returns, nesting, running twice, bad
 * options, and the loop's callbacks (call_later, call_at, timer_cancel) on the
 * virtual clock. The multi-threaded cases are in test_threads.c.
 */
#include "common.h"

TestSuite(run, .timeout = 20);

/* ---- main's outcome ------------------------------------------------------------ */

static void *return_arg(void *arg)
{
    return arg;
}

Test(run, returns_main_result)
{
    void *result = NULL;
    cr_assert_eq(run_virtual(return_arg, (void *)(intptr_t)123, &result), 0);
    cr_assert_eq((intptr_t)result, 123);
    cr_assert_eq(run_virtual(return_arg, NULL, NULL), 0, "a NULL result pointer is allowed");
    cr_assert_eq(weft_run(return_arg, (void *)(intptr_t)9, &result), 0, "default options");
    cr_assert_eq((intptr_t)result, 9);
}

static void *failing_main(void *arg)
{
    (void)arg;
    cr_expect_eq(weft_sleep(0.5), 0);
    return weft_fail(-ENOENT, "no file named %s", "config.ini");
}

Test(run, returns_main_error_and_message)
{
    void *result = (void *)(intptr_t)-1;
    int rc = run_virtual(failing_main, NULL, &result);
    cr_assert_eq(rc, -ENOENT, "weft_run returned %d", rc);
    cr_assert_str_eq(weft_errmsg(), "no file named config.ini");
    cr_assert(result == NULL || (intptr_t)result == -1, "a value delivered although main failed");
}

/* ---- leftover tasks are cancelled and waited for --------------------------- */

typedef struct leftover_report {
    int sleep_rc;
    int cleanup_sleep_rc;
    int careful_cleanup_rc;
    double cleanup_done_at;
    int not_started_ran;
} leftover_report;

static leftover_report leftover;

static void *sleeper_with_cleanup(void *arg)
{
    (void)arg;
    leftover.sleep_rc = weft_sleep(100);
    /* Level-triggered: a cleanup that forgets about the cancel cannot wait. */
    leftover.cleanup_sleep_rc = weft_sleep(5);
    return NULL;
}

static void *sleeper_with_slow_cleanup(void *arg)
{
    (void)arg;
    if (weft_sleep(100) == -ECANCELED) {
        /* A cleanup that must wait survives the cancellation on purpose. */
        weft_uncancel();
        leftover.careful_cleanup_rc = weft_sleep(2);
        leftover.cleanup_done_at = weft_time();
    }
    return NULL;
}

static void *not_started(void *arg)
{
    (void)arg;
    leftover.not_started_ran = 1;
    return NULL;
}

static void *leftover_main(void *arg)
{
    (void)arg;
    weft_detach(weft_spawn(sleeper_with_cleanup, NULL));
    weft_detach(weft_spawn(sleeper_with_slow_cleanup, NULL));
    cr_expect_eq(weft_sleep(1), 0);
    weft_detach(weft_spawn(not_started, NULL));
    return (void *)(intptr_t)77;
}

Test(run, leftover_tasks_are_cancelled_and_waited_for)
{
    memset(&leftover, 0, sizeof leftover);
    leftover.sleep_rc = leftover.cleanup_sleep_rc = leftover.careful_cleanup_rc = 1;
    leftover.cleanup_done_at = -1;
    void *result = NULL;
    cr_assert_eq(run_virtual(leftover_main, NULL, &result), 0);
    cr_assert_eq((intptr_t)result, 77);
    cr_assert_eq(leftover.sleep_rc, -ECANCELED, "leftover task's sleep gave %d", leftover.sleep_rc);
    cr_assert_eq(leftover.cleanup_sleep_rc, -ECANCELED);
    cr_assert_eq(leftover.careful_cleanup_rc, 0, "the uncancelled cleanup's sleep gave %d",
                 leftover.careful_cleanup_rc);
    cr_assert(time_is(leftover.cleanup_done_at, 3.0), "weft_run did not wait for the cleanup (%f)",
              leftover.cleanup_done_at);
    cr_assert_eq(leftover.not_started_ran, 0, "a leftover task that had not started ran");
}

/* ---- nesting ---------------------------------------------------------------------- */

static int nested_ran;

static void *nested_body(void *arg)
{
    (void)arg;
    nested_ran = 1;
    return NULL;
}

static void *nesting_main(void *arg)
{
    int *rc = arg;
    *rc = weft_run(nested_body, NULL, NULL);
    return NULL;
}

Test(run, nested_run_is_enested)
{
    int rc = 1;
    nested_ran = 0;
    cr_assert_eq(run_virtual(nesting_main, &rc, NULL), 0);
    cr_assert_eq(rc, WEFT_ENESTED, "nested weft_run returned %d", rc);
    cr_assert_eq(nested_ran, 0, "a nested weft_run ran its main");
}

/* ---- two loops one after the other on one thread ------------------------------ */

static void *sleep_and_sum(void *arg)
{
    intptr_t n = (intptr_t)arg;
    weft_task *t = weft_spawn(return_arg, (void *)(n * 2));
    cr_expect_eq(weft_sleep(1.5), 0);
    void *doubled = NULL;
    cr_expect_eq(weft_await(t, &doubled), 0);
    cr_expect(time_is(weft_time(), 1.5), "the second loop's clock did not start at 0");
    return (void *)((intptr_t)doubled + n);
}

Test(run, sequential_runs_on_one_thread)
{
    void *first = NULL, *second = NULL;
    cr_assert_eq(run_virtual(sleep_and_sum, (void *)(intptr_t)1, &first), 0);
    cr_assert_null(weft_loop_current());
    cr_assert_eq(run_virtual(sleep_and_sum, (void *)(intptr_t)10, &second), 0);
    cr_assert_eq((intptr_t)first, 3);
    cr_assert_eq((intptr_t)second, 30);
}

/* ---- options ------------------------------------------------------------------- */

static int option_main_ran;

static void *mark_ran(void *arg)
{
    (void)arg;
    option_main_ran = 1;
    return NULL;
}

Test(run, stack_below_minimum_is_einval)
{
    option_main_ran = 0;
    int rc = weft_run_opts(mark_ran, NULL, NULL, &(weft_options){.stack_size = WEFT_STACK_MIN - 1});
    cr_assert_eq(rc, -EINVAL, "weft_run_opts gave %d", rc);
    cr_assert_eq(option_main_ran, 0, "main ran despite bad options");
    cr_assert_not_null(strstr(weft_errmsg(), "stack"), "the message does not name the option: \"%s\"",
                       weft_errmsg());

    rc = weft_run_opts(mark_ran, NULL, NULL, &(weft_options){.stack_size = WEFT_STACK_MIN});
    cr_assert_eq(rc, 0, "a stack of exactly WEFT_STACK_MIN was refused: %d", rc);
    cr_assert_eq(option_main_ran, 1);

    option_main_ran = 0;
    cr_assert_eq(weft_run_opts(mark_ran, NULL, NULL, NULL), 0, "NULL options");
    cr_assert_eq(option_main_ran, 1);
}

/* ---- loop callbacks on the virtual clock ------------------------------------------ */

static void record_callback(void *arg)
{
    trace("%s@%g%s", (const char *)arg, weft_time(), weft_current() == NULL ? "" : "(in-task)");
}

static void schedule_from_callback(void *arg)
{
    (void)arg;
    trace("outer@%g", weft_time());
    cr_expect(weft_call_ok(weft_call_later(0.25, record_callback, "inner")));
}

static void must_not_fire(void *arg)
{
    (void)arg;
    trace("CANCELLED-TIMER-FIRED");
}

static void *timers_main(void *arg)
{
    (void)arg;
    cr_expect(weft_call_ok(weft_call_later(2, record_callback, "b")));
    cr_expect(weft_call_ok(weft_call_later(1, record_callback, "a")));
    cr_expect(weft_call_ok(weft_call_at(3, record_callback, "c")));
    cr_expect(weft_call_ok(weft_call_later(1, record_callback, "a2")));
    weft_call doomed = weft_call_later(1.5, must_not_fire, NULL);
    cr_expect(weft_call_ok(doomed));
    cr_expect(weft_call_ok(weft_call_at(1, record_callback, "a3")));
    cr_expect(weft_call_ok(weft_call_later(2.5, schedule_from_callback, NULL)));
    cr_expect(weft_call_cancel(doomed), "cancelling a pending timer returned false");
    cr_expect(!weft_call_ok(weft_call_later(NAN, record_callback, "nan")));
    cr_expect_eq(weft_sleep(5), 0);
    /* A time in the past runs at the next iteration, at the current time. */
    cr_expect(weft_call_ok(weft_call_at(1, record_callback, "past")));
    cr_expect_eq(weft_sleep(1), 0);
    return NULL;
}

Test(run, call_later_call_at_and_timer_cancel)
{
    trace_reset();
    cr_assert_eq(run_virtual(timers_main, NULL, NULL), 0);
    cr_assert_str_eq(trace_text, "a@1 a2@1 a3@1 b@2 outer@2.5 inner@2.75 c@3 past@5");
}

static int leftover_timer_fired;

static void leftover_timer(void *arg)
{
    (void)arg;
    leftover_timer_fired = 1;
}

static void *leave_timer_main(void *arg)
{
    (void)arg;
    cr_expect(weft_call_ok(weft_call_later(100, leftover_timer, NULL)));
    cr_expect_eq(weft_sleep(1), 0);
    return NULL;
}

Test(run, leftover_timers_are_dropped)
{
    leftover_timer_fired = 0;
    cr_assert_eq(run_virtual(leave_timer_main, NULL, NULL), 0);
    cr_assert_eq(leftover_timer_fired, 0);
}

Test(run, callbacks_outside_a_loop_fail)
{
    cr_assert(!weft_call_ok(weft_call_later(1, leftover_timer, NULL)));
    cr_assert(!weft_call_ok(weft_call_at(1, leftover_timer, NULL)));
}
