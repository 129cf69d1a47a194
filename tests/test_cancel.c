/*
 * test_cancel.c — cancellation as a user sees it: level-triggered -ECANCELED at
 * every suspension point, the cancel message, tasks cancelled before they start,
 * propagation into an awaited task, weft_uncancel, and cancelling main.
 */
#include "common.h"

TestSuite(cancel, .timeout = 20);

static void *return_arg(void *arg)
{
    return arg;
}

static void *sleep_long(void *arg)
{
    (void)arg;
    weft_sleep(50);
    return NULL;
}

/* ---- every suspension point returns -ECANCELED until the task returns ---- */

typedef struct level_report {
    int first_sleep, sleep_again, yield, last_sleep;
    bool cancelled_flag;
    double time_at_end;
} level_report;

static level_report level;

static void *keeps_waiting_after_cancel(void *arg)
{
    (void)arg;
    level.first_sleep = weft_sleep(10);
    level.cancelled_flag = weft_cancelled();
    level.sleep_again = weft_sleep(1);
    level.yield = weft_yield();
    level.last_sleep = weft_sleep(1);
    level.time_at_end = weft_time();
    return NULL;
}

/* Runs `victim` in a task, cancels it at 1 s, and checks it ends cancelled at once. */
static void *cancel_at_one_second(void *victim)
{
    weft_task *t = weft_spawn((weft_fn)victim, NULL);
    cr_expect_eq(weft_sleep(1), 0);
    cr_expect(weft_cancel(t, NULL));
    cr_expect_eq(weft_await(t, NULL), -ECANCELED);
    cr_expect(time_is(weft_time(), 1.0), "awaiting the cancelled task took until %f", weft_time());
    return NULL;
}

static int run_cancel_at_one_second(weft_fn victim)
{
    return run_virtual(cancel_at_one_second, (void *)victim, NULL);
}

Test(cancel, level_triggered_sleep_and_yield)
{
    memset(&level, 0x55, sizeof level);
    cr_assert_eq(run_cancel_at_one_second(keeps_waiting_after_cancel), 0);
    cr_assert_eq(level.first_sleep, -ECANCELED);
    cr_assert(level.cancelled_flag, "weft_cancelled() false in a cancelled task");
    cr_assert_eq(level.sleep_again, -ECANCELED);
    cr_assert_eq(level.yield, -ECANCELED);
    cr_assert_eq(level.last_sleep, -ECANCELED);
    cr_assert(time_is(level.time_at_end, 1.0), "suspension points waited: time %f", level.time_at_end);
}

typedef struct child_report {
    int rc;
    int child_sleep_rc;
    int child_ran;
    double time_after;
} child_report;

static child_report in_cancelled;

static void *sleeping_child(void *arg)
{
    (void)arg;
    in_cancelled.child_ran = 1;
    in_cancelled.child_sleep_rc = weft_sleep(50);
    return NULL;
}

static void *awaits_after_cancel(void *arg)
{
    (void)arg;
    cr_expect_eq(weft_sleep(10), -ECANCELED);
    in_cancelled.rc = weft_await(weft_spawn(sleeping_child, NULL), NULL);
    in_cancelled.time_after = weft_time();
    return NULL;
}

static void *gathers_after_cancel(void *arg)
{
    (void)arg;
    cr_expect_eq(weft_sleep(10), -ECANCELED);
    weft_task *pair[2] = {weft_spawn(sleeping_child, NULL), weft_spawn(return_arg, NULL)};
    in_cancelled.rc = weft_gather(pair, 2, NULL, NULL, 0);
    in_cancelled.time_after = weft_time();
    return NULL;
}

Test(cancel, level_triggered_await)
{
    memset(&in_cancelled, 0, sizeof in_cancelled);
    in_cancelled.rc = in_cancelled.child_sleep_rc = 1;
    cr_assert_eq(run_cancel_at_one_second(awaits_after_cancel), 0);
    cr_assert_eq(in_cancelled.rc, -ECANCELED);
    cr_assert(time_is(in_cancelled.time_after, 1.0));
    /* The awaited task was cancelled too, before it could start. */
    cr_assert_eq(in_cancelled.child_ran, 0, "the awaited task ran (its sleep gave %d)", in_cancelled.child_sleep_rc);
}

Test(cancel, level_triggered_gather)
{
    memset(&in_cancelled, 0, sizeof in_cancelled);
    in_cancelled.rc = in_cancelled.child_sleep_rc = 1;
    cr_assert_eq(run_cancel_at_one_second(gathers_after_cancel), 0);
    cr_assert_eq(in_cancelled.rc, -ECANCELED);
    cr_assert(time_is(in_cancelled.time_after, 1.0));
    cr_assert_eq(in_cancelled.child_ran, 0, "a gathered task ran (its sleep gave %d)", in_cancelled.child_sleep_rc);
}

/* ---- the awaiter receives -ECANCELED and the cancel message ---------------- */

static void *cancel_message_main(void *arg)
{
    char *msg_out = arg;
    weft_task *t = weft_spawn(sleep_long, NULL);
    cr_expect_eq(weft_yield(), 0);
    cr_expect(weft_cancel(t, "shutting down"));
    int rc = weft_await(t, NULL);
    cr_expect_eq(rc, -ECANCELED);
    snprintf(msg_out, 64, "%s", weft_errmsg());
    return NULL;
}

Test(cancel, awaiter_gets_ecanceled_and_message)
{
    char msg[64] = "";
    cr_assert_eq(run_virtual(cancel_message_main, msg, NULL), 0);
    cr_assert_str_eq(msg, "shutting down");
}

/* ---- a task cancelled before it starts never runs its function ----------- */

static int never_ran;

static void *must_not_run(void *arg)
{
    (void)arg;
    never_ran = 1;
    return NULL;
}

static void *cancel_before_start_main(void *arg)
{
    (void)arg;
    weft_task *t = weft_spawn(must_not_run, NULL);
    cr_expect(weft_cancel(t, NULL), "cancelling a task that has not started returned false");
    cr_expect_eq(weft_await(t, NULL), -ECANCELED);
    return NULL;
}

Test(cancel, cancelled_before_start_never_runs)
{
    never_ran = 0;
    cr_assert_eq(run_virtual(cancel_before_start_main, NULL, NULL), 0);
    cr_assert_eq(never_ran, 0, "the function of a task cancelled before it started ran");
}

/* ---- cancelling a task that awaits another cancels that one too ------------ */

typedef struct chain_report {
    int inner_rc;
    double inner_time;
    int outer_rc;
    double outer_time;
} chain_report;

static chain_report chain;

static void *inner(void *arg)
{
    (void)arg;
    chain.inner_rc = weft_sleep(10);
    chain.inner_time = weft_time();
    return NULL;
}

static void *outer(void *arg)
{
    (void)arg;
    chain.outer_rc = weft_await(weft_spawn(inner, NULL), NULL);
    chain.outer_time = weft_time();
    return NULL;
}

static void *chain_main(void *arg)
{
    (void)arg;
    weft_task *t = weft_spawn(outer, NULL);
    cr_expect_eq(weft_sleep(1), 0);
    cr_expect(weft_cancel(t, NULL));
    cr_expect_eq(weft_await(t, NULL), -ECANCELED);
    /* inner was left to finish on its own: give it the chance. */
    cr_expect_eq(weft_sleep(0.5), 0);
    return NULL;
}

Test(cancel, cancel_propagates_to_awaited_task)
{
    memset(&chain, 0, sizeof chain);
    chain.inner_rc = 1;
    chain.outer_rc = 1;
    cr_assert_eq(run_virtual(chain_main, NULL, NULL), 0);
    cr_assert_eq(chain.outer_rc, -ECANCELED);
    cr_assert(time_is(chain.outer_time, 1.0), "outer's await returned at %f", chain.outer_time);
    cr_assert_eq(chain.inner_rc, -ECANCELED, "the awaited task was not cancelled");
    cr_assert(time_is(chain.inner_time, 1.0), "inner woke at %f", chain.inner_time);
}

/* ---- weft_cancel on a finished task returns false ------------------------- */

static void *cancel_finished_main(void *arg)
{
    (void)arg;
    weft_task *t = weft_spawn(return_arg, (void *)(intptr_t)11);
    cr_expect_eq(weft_yield(), 0);
    cr_expect(weft_task_done(t));
    cr_expect_not(weft_cancel(t, "too late"), "weft_cancel on a finished task returned true");
    void *result = NULL;
    cr_expect_eq(weft_await(t, &result), 0, "the late cancel changed the outcome");
    cr_expect_eq((intptr_t)result, 11);
    return NULL;
}

Test(cancel, cancel_of_finished_task_returns_false)
{
    cr_assert_eq(run_virtual(cancel_finished_main, NULL, NULL), 0);
}

/* ---- weft_uncancel ----------------------------------------------------------- */

typedef struct uncancel_report {
    int first_rc;
    int remaining;
    bool still_cancelled;
    int second_rc;
    double woke_at;
} uncancel_report;

static uncancel_report survivor;

static void *survives_cancel(void *arg)
{
    (void)arg;
    survivor.first_rc = weft_sleep(5);
    survivor.remaining = weft_uncancel();
    survivor.still_cancelled = weft_cancelled();
    /* The first sleep's timer (due at 5) must be gone: this one ends at 1 + 10. */
    survivor.second_rc = weft_sleep(10);
    survivor.woke_at = weft_time();
    return (void *)(intptr_t)5;
}

static void *uncancel_main(void *arg)
{
    (void)arg;
    weft_task *t = weft_spawn(survives_cancel, NULL);
    cr_expect_eq(weft_sleep(1), 0);
    cr_expect(weft_cancel(t, NULL));
    void *result = NULL;
    cr_expect_eq(weft_await(t, &result), 0);
    cr_expect_eq((intptr_t)result, 5);
    return NULL;
}

Test(cancel, uncancel_lets_task_go_on)
{
    memset(&survivor, 0x55, sizeof survivor);
    cr_assert_eq(run_virtual(uncancel_main, NULL, NULL), 0);
    cr_assert_eq(survivor.first_rc, -ECANCELED);
    cr_assert_eq(survivor.remaining, 0);
    cr_assert_not(survivor.still_cancelled);
    cr_assert_eq(survivor.second_rc, 0, "sleep after weft_uncancel gave %d", survivor.second_rc);
    cr_assert(time_is(survivor.woke_at, 11.0), "woke at %f, expected 11 (1 + 10)", survivor.woke_at);
}

/* ---- returning a value while cancelled ends cancelled ------------------- */

static void *returns_value_anyway(void *arg)
{
    (void)arg;
    weft_sleep(10);
    return (void *)(intptr_t)99;
}

static void *value_dropped_main(void *arg)
{
    (void)arg;
    weft_task *t = weft_spawn(returns_value_anyway, NULL);
    cr_expect_eq(weft_yield(), 0);
    cr_expect(weft_cancel(t, NULL));
    void *result = (void *)(intptr_t)-1;
    cr_expect_eq(weft_await(t, &result), -ECANCELED);
    cr_expect(result == NULL || (intptr_t)result == -1, "the value of a cancelled task was delivered");
    return NULL;
}

Test(cancel, value_returned_while_cancelled_is_dropped)
{
    cr_assert_eq(run_virtual(value_dropped_main, NULL, NULL), 0);
}

/* ---- cancelling oneself ------------------------------------------------------ */

static void *self_cancel_main(void *arg)
{
    int *rc_out = arg;
    cr_expect(weft_cancel(weft_current(), NULL));
    cr_expect(weft_cancelled());
    *rc_out = weft_sleep(1);
    cr_expect(time_is(weft_time(), 0.0));
    weft_uncancel();
    return (void *)(intptr_t)3;
}

Test(cancel, cancel_self)
{
    int rc = 1;
    void *result = NULL;
    cr_assert_eq(run_virtual(self_cancel_main, &rc, &result), 0);
    cr_assert_eq(rc, -ECANCELED);
    cr_assert_eq((intptr_t)result, 3);
}

/* ---- cancelling main from a child ------------------------------------------ */

static weft_task *main_task;

static void *cancel_main_task(void *arg)
{
    (void)arg;
    cr_expect_eq(weft_sleep(1), 0);
    cr_expect(weft_cancel(main_task, "child says stop"));
    return NULL;
}

static void *cancellable_main(void *arg)
{
    int *sleep_rc = arg;
    main_task = weft_current();
    weft_task *child = weft_spawn(cancel_main_task, NULL);
    *sleep_rc = weft_sleep(10);
    weft_detach(child);
    return (void *)(intptr_t)1;
}

Test(cancel, cancelling_main_makes_run_return_ecanceled)
{
    int sleep_rc = 1;
    void *result = (void *)(intptr_t)-1;
    int rc = run_virtual(cancellable_main, &sleep_rc, &result);
    cr_assert_eq(sleep_rc, -ECANCELED);
    cr_assert_eq(rc, -ECANCELED, "weft_run returned %d", rc);
    cr_assert(result == NULL || (intptr_t)result == -1, "weft_run delivered the value of a cancelled main");
}

/* Another task's cancellation state is readable without changing it
 * (asyncio's task.cancelling()). */
static void *survives_two_cancels(void *arg)
{
    (void)arg;
    cr_expect_eq(weft_sleep(1), -ECANCELED);
    cr_expect_eq(weft_task_cancelling(NULL), 2);
    cr_expect_str_eq(weft_task_cancel_message(NULL), "second");
    cr_expect_eq(weft_uncancel(), 1);
    cr_expect_eq(weft_uncancel(), 0);
    cr_expect_null(weft_task_cancel_message(NULL));
    cr_expect_eq(weft_sleep(1), 0);
    return NULL;
}

static void *cancelling_main(void *arg)
{
    (void)arg;
    weft_task *t = weft_spawn(survives_two_cancels, NULL);
    cr_expect_eq(weft_task_cancelling(t), 0);
    cr_expect_null(weft_task_cancel_message(t));
    cr_expect_eq(weft_sleep(0.5), 0);
    cr_expect(weft_cancel(t, "first"));
    cr_expect(weft_cancel(t, "second"));
    cr_expect_eq(weft_task_cancelling(t), 2);
    cr_expect_str_eq(weft_task_cancel_message(t), "second");
    /* Reading it changed nothing for the task itself. */
    cr_expect_eq(weft_await(t, NULL), 0);
    cr_expect_eq(weft_task_cancelling(NULL), 0);
    return NULL;
}

Test(cancel, another_tasks_cancellation_state_is_readable)
{
    cr_assert_eq(run_virtual(cancelling_main, NULL, NULL), 0);
}

/* A task that ignores -ECANCELED in a loop used to spin at 100 % CPU forever once
 * weft_run's main had returned. Now it is named on stderr, stopped, and weft_run
 * returns WEFT_EDEADLOCK_LOOP. */
static void *ignores_cancellation(void *arg)
{
    (void)arg;
    for (;;) {
        int rc = weft_sleep(1);
        (void)rc; /* the bug: the result is ignored */
    }
    return NULL;
}

static void *leaves_a_task_ignoring_cancellation(void *arg)
{
    (void)arg;
    weft_task *t = weft_spawn_opts(ignores_cancellation, NULL, &(weft_spawn_options){.name = "deaf"});
    cr_expect_eq(weft_sleep(0.1), 0);
    weft_detach(t);
    return NULL;
}

static int ignoring_body(void)
{
    int rc = weft_run(leaves_a_task_ignoring_cancellation, NULL, NULL);
    return rc == WEFT_EDEADLOCK_LOOP ? 0 : 1;
}

Test(cancel, a_task_that_ignores_cancellation_at_the_end_is_named_and_stopped, .timeout = 30)
{
    child_outcome out;
    run_forked(ignoring_body, &out);
    cr_assert(WIFEXITED(out.status) && WEXITSTATUS(out.status) == 0, "status %d, stderr: %s", out.status,
              out.stderr_text);
    cr_assert(strstr(out.stderr_text, "weft: deaf ignores its cancellation") != NULL, "%s", out.stderr_text);
}

/* When every task waits and nothing can wake them, the report names the tasks
 * that wait (not only main), and their cancellation does not claim that main
 * returned. */
static weft_event *never_set;

static void *waits_for_the_event(void *arg)
{
    (void)arg;
    int rc = weft_event_wait(never_set);
    if (rc == -ECANCELED && strstr(weft_errmsg(), "main returned"))
        return weft_fail(-EIO, "told main returned: %s", weft_errmsg());
    return NULL;
}

static void *deadlocked_main(void *arg)
{
    (void)arg;
    never_set = weft_event_new();
    weft_task *w = weft_spawn_opts(waits_for_the_event, NULL, &(weft_spawn_options){.name = "waiter"});
    int rc = weft_await(w, NULL);
    fprintf(stderr, "main's await: %s: %s\n", weft_errname(rc), weft_errmsg());
    return NULL;
}

static int deadlock_body(void)
{
    return weft_run(deadlocked_main, NULL, NULL) == WEFT_EDEADLOCK_LOOP ? 0 : 1;
}

Test(cancel, a_deadlock_report_names_the_waiting_tasks)
{
    child_outcome out;
    run_forked(deadlock_body, &out);
    cr_assert(WIFEXITED(out.status) && WEXITSTATUS(out.status) == 0, "status %d: %s", out.status, out.stderr_text);
    cr_assert(strstr(out.stderr_text, "weft: deadlock: every task is waiting") != NULL, "%s", out.stderr_text);
    cr_assert(strstr(out.stderr_text, "Task-1 (main), waiter") != NULL, "%s", out.stderr_text);
    cr_assert(strstr(out.stderr_text, "main returned") == NULL, "%s", out.stderr_text);
}
