/*
 * test_timeout.c — timeout scopes and weft_wait_for as a user sees them: the
 * instant a deadline interrupts, -ETIMEDOUT and its message at scope exit, the
 * task not left cancelled, nested scopes converting only their own expiry,
 * deadlines already passed, rescheduling, cancellations from outside, and
 * wait_for's waiting for a cancelled task's clean-up.
 */
#include "common.h"

TestSuite(timeout, .timeout = 20);

/* What the body of a scenario saw, checked after weft_run returned. */
typedef struct seen {
    int rc[8];
    double at[8];
    bool flag[8];
    char msg[4][128];
    intptr_t value;
} seen;

static seen s;

static void seen_reset(void)
{
    memset(&s, 0, sizeof s);
    for (int i = 0; i < 8; i++) {
        s.rc[i] = 12345;
        s.at[i] = -1;
    }
    trace_reset();
}

static void keep_msg(int i)
{
    snprintf(s.msg[i], sizeof s.msg[i], "%s", weft_errmsg());
}

/* ---- a scope expiring: the instant, -ETIMEDOUT, the task not cancelled ---- */

static void *expiry_main(void *arg)
{
    (void)arg;
    weft_timeout *to = weft_timeout_enter(1.5);
    cr_expect_not_null(to);
    cr_expect(time_is(weft_timeout_when(to), 1.5), "when() = %f", weft_timeout_when(to));
    s.flag[0] = weft_timeout_expired(to);
    s.rc[0] = weft_sleep(10);
    s.at[0] = weft_time();
    s.flag[1] = weft_timeout_expired(to);
    s.rc[1] = weft_timeout_exit(to, s.rc[0]);
    keep_msg(0);
    s.flag[2] = weft_cancelled();
    s.rc[2] = weft_sleep(1);
    s.at[2] = weft_time();
    return NULL;
}

Test(timeout, expiry_interrupts_at_the_deadline_and_exit_gives_etimedout)
{
    seen_reset();
    cr_assert_eq(run_virtual(expiry_main, NULL, NULL), 0);
    cr_assert_eq(s.flag[0], false, "expired() before the deadline");
    cr_assert_eq(s.rc[0], -ECANCELED, "the interrupted sleep returned %d", s.rc[0]);
    cr_assert(time_is(s.at[0], 1.5), "interrupted at %f", s.at[0]);
    cr_assert_eq(s.flag[1], true, "expired() after the deadline");
    cr_assert_eq(s.rc[1], -ETIMEDOUT, "exit returned %d", s.rc[1]);
    cr_assert(strstr(s.msg[0], "timed out after 1.5 s"), "message: %s", s.msg[0]);
    /* The scope took its cancellation back. */
    cr_assert_eq(s.flag[2], false, "the task is left cancelled");
    cr_assert_eq(s.rc[2], 0);
    cr_assert(time_is(s.at[2], 2.5), "the later sleep ended at %f", s.at[2]);
}

/* A sleep exactly as long as the timeout: the deadline wins, as in asyncio,
 * where the timeout's handle was scheduled first. */
static void *tie_main(void *arg)
{
    (void)arg;
    weft_timeout *to = weft_timeout_enter(2);
    s.rc[0] = weft_sleep(2);
    s.at[0] = weft_time();
    s.rc[1] = weft_timeout_exit(to, s.rc[0]);
    return NULL;
}

Test(timeout, a_sleep_as_long_as_the_timeout_is_interrupted)
{
    seen_reset();
    cr_assert_eq(run_virtual(tie_main, NULL, NULL), 0);
    cr_assert_eq(s.rc[0], -ECANCELED);
    cr_assert(time_is(s.at[0], 2.0));
    cr_assert_eq(s.rc[1], -ETIMEDOUT);
}

/* ---- a body finishing first keeps its outcome; the deadline is gone ------- */

static void *finishes_first_main(void *arg)
{
    (void)arg;
    weft_timeout *to = weft_timeout_enter(5);
    s.rc[0] = weft_sleep(1);
    s.rc[1] = weft_timeout_exit(to, 0);
    s.at[1] = weft_time();
    weft_timeout *to2 = weft_timeout_enter(5);
    s.rc[2] = weft_timeout_exit(to2, -EIO); /* a body's own error passes through */
    /* The first deadline (at 5) would interrupt this sleep if it were still armed. */
    s.rc[3] = weft_sleep(10);
    s.at[3] = weft_time();
    s.flag[0] = weft_cancelled();
    return NULL;
}

Test(timeout, body_finishing_first_keeps_its_outcome_and_the_deadline_is_gone)
{
    seen_reset();
    cr_assert_eq(run_virtual(finishes_first_main, NULL, NULL), 0);
    cr_assert_eq(s.rc[0], 0);
    cr_assert_eq(s.rc[1], 0);
    cr_assert(time_is(s.at[1], 1.0));
    cr_assert_eq(s.rc[2], -EIO);
    cr_assert_eq(s.rc[3], 0, "a later sleep was interrupted (%d): the deadline outlived its scope", s.rc[3]);
    cr_assert(time_is(s.at[3], 11.0), "the later sleep ended at %f", s.at[3]);
    cr_assert_eq(s.flag[0], false);
}

/* Another task's scope that ends early: its abandoned deadline (at 100) must
 * not wake or interrupt anything later. */
static void *detached_scope_user(void *arg)
{
    (void)arg;
    weft_timeout *to = weft_timeout_enter(100);
    s.rc[0] = weft_sleep(1);
    s.rc[1] = weft_timeout_exit(to, s.rc[0]);
    return NULL;
}

static void *loop_end_main(void *arg)
{
    (void)arg;
    weft_task *t = weft_spawn(detached_scope_user, NULL);
    cr_expect_eq(weft_await(t, NULL), 0);
    /* Let anything still scheduled run: only the deadline (at 100) could. */
    s.rc[2] = weft_sleep(200);
    s.at[2] = weft_time();
    return NULL;
}

Test(timeout, no_wake_up_after_the_scope_is_left)
{
    seen_reset();
    cr_assert_eq(run_virtual(loop_end_main, NULL, NULL), 0);
    cr_assert_eq(s.rc[0], 0);
    cr_assert_eq(s.rc[1], 0);
    cr_assert_eq(s.rc[2], 0);
    cr_assert(time_is(s.at[2], 201.0), "main's sleep ended at %f", s.at[2]);
}

/* ---- nested scopes ---------------------------------------------------------- */

static void *inner_first_main(void *arg)
{
    (void)arg;
    weft_timeout *outer = weft_timeout_enter(5);
    weft_timeout *inner = weft_timeout_enter(1);
    s.rc[0] = weft_sleep(10);
    s.at[0] = weft_time();
    s.rc[1] = weft_timeout_exit(inner, s.rc[0]);
    s.flag[0] = weft_timeout_expired(outer);
    s.rc[2] = weft_sleep(1); /* the outer scope goes on */
    s.at[2] = weft_time();
    s.rc[3] = weft_timeout_exit(outer, s.rc[2]);
    s.flag[1] = weft_cancelled();
    return NULL;
}

Test(timeout, nested_inner_expires_first)
{
    seen_reset();
    cr_assert_eq(run_virtual(inner_first_main, NULL, NULL), 0);
    cr_assert_eq(s.rc[0], -ECANCELED);
    cr_assert(time_is(s.at[0], 1.0));
    cr_assert_eq(s.rc[1], -ETIMEDOUT, "inner exit gave %d", s.rc[1]);
    cr_assert_eq(s.flag[0], false, "the outer scope expired too");
    cr_assert_eq(s.rc[2], 0);
    cr_assert(time_is(s.at[2], 2.0));
    cr_assert_eq(s.rc[3], 0);
    cr_assert_eq(s.flag[1], false);
}

static void *outer_first_main(void *arg)
{
    (void)arg;
    weft_timeout *outer = weft_timeout_enter(1);
    weft_timeout *inner = weft_timeout_enter(5);
    s.rc[0] = weft_sleep(10);
    s.at[0] = weft_time();
    s.flag[0] = weft_timeout_expired(inner);
    s.flag[1] = weft_timeout_expired(outer);
    s.rc[1] = weft_timeout_exit(inner, s.rc[0]);
    s.flag[2] = weft_cancelled(); /* still cancelled between the two exits */
    s.rc[2] = weft_timeout_exit(outer, s.rc[1]);
    keep_msg(0);
    s.flag[3] = weft_cancelled();
    return NULL;
}

Test(timeout, nested_outer_expires_first)
{
    seen_reset();
    cr_assert_eq(run_virtual(outer_first_main, NULL, NULL), 0);
    cr_assert_eq(s.rc[0], -ECANCELED);
    cr_assert(time_is(s.at[0], 1.0));
    cr_assert_eq(s.flag[0], false, "the inner scope claims an expiry that was not its own");
    cr_assert_eq(s.flag[1], true);
    cr_assert_eq(s.rc[1], -ECANCELED, "inner exit gave %d", s.rc[1]);
    cr_assert_eq(s.flag[2], true, "the outer scope's cancellation was taken back by the inner one");
    cr_assert_eq(s.rc[2], -ETIMEDOUT, "outer exit gave %d", s.rc[2]);
    cr_assert(strstr(s.msg[0], "timed out after 1 s"), "message: %s", s.msg[0]);
    cr_assert_eq(s.flag[3], false);
}

/* Both expire at once: each took one cancellation; the inner cannot tell the
 * outer's from a foreign one, so only the outer converts (asyncio 3.12 does the
 * same). */
static void *same_deadline_main(void *arg)
{
    (void)arg;
    weft_timeout *outer = weft_timeout_enter(1);
    weft_timeout *inner = weft_timeout_enter(1);
    s.rc[0] = weft_sleep(10);
    s.flag[0] = weft_timeout_expired(inner);
    s.flag[1] = weft_timeout_expired(outer);
    s.rc[1] = weft_timeout_exit(inner, s.rc[0]);
    s.rc[2] = weft_timeout_exit(outer, s.rc[1]);
    s.flag[2] = weft_cancelled();
    return NULL;
}

Test(timeout, nested_same_deadline_outer_converts)
{
    seen_reset();
    cr_assert_eq(run_virtual(same_deadline_main, NULL, NULL), 0);
    cr_assert_eq(s.rc[0], -ECANCELED);
    cr_assert(s.flag[0] && s.flag[1]);
    cr_assert_eq(s.rc[1], -ECANCELED);
    cr_assert_eq(s.rc[2], -ETIMEDOUT);
    cr_assert_eq(s.flag[2], false);
}

/* ---- a deadline already passed interrupts the next suspension point ------- */

static void *passed_main(void *arg)
{
    (void)arg;
    cr_expect_eq(weft_sleep(2), 0);

    weft_timeout *at_past = weft_timeout_enter_at(0.5);
    s.flag[0] = weft_timeout_expired(at_past); /* not yet: nothing has suspended */
    s.rc[0] = weft_sleep(1);
    s.at[0] = weft_time();
    s.rc[0] = weft_timeout_exit(at_past, s.rc[0]);

    weft_timeout *zero = weft_timeout_enter(0);
    s.rc[1] = weft_yield();
    s.rc[1] = weft_timeout_exit(zero, s.rc[1]);

    weft_timeout *negative = weft_timeout_enter(-1);
    cr_expect(time_is(weft_timeout_when(negative), 1.0), "when() = %f", weft_timeout_when(negative));
    s.rc[2] = weft_sleep(3);
    s.at[2] = weft_time();
    s.rc[2] = weft_timeout_exit(negative, s.rc[2]);

    /* Left before any suspension point: nothing happened, nothing is pending. */
    weft_timeout *unused = weft_timeout_enter(0);
    s.rc[3] = weft_timeout_exit(unused, 7);
    s.flag[1] = weft_cancelled();
    s.rc[4] = weft_yield();
    s.at[4] = weft_time();
    return NULL;
}

Test(timeout, a_passed_deadline_interrupts_the_next_suspension_point)
{
    seen_reset();
    cr_assert_eq(run_virtual(passed_main, NULL, NULL), 0);
    cr_assert_eq(s.flag[0], false);
    cr_assert_eq(s.rc[0], -ETIMEDOUT, "enter_at(past): %d", s.rc[0]);
    cr_assert(time_is(s.at[0], 2.0), "interrupted at %f", s.at[0]);
    cr_assert_eq(s.rc[1], -ETIMEDOUT, "enter(0): %d", s.rc[1]);
    cr_assert_eq(s.rc[2], -ETIMEDOUT, "enter(-1): %d", s.rc[2]);
    cr_assert(time_is(s.at[2], 2.0), "interrupted at %f", s.at[2]);
    cr_assert_eq(s.rc[3], 7);
    cr_assert_eq(s.flag[1], false);
    cr_assert_eq(s.rc[4], 0, "a yield after the unused scope gave %d", s.rc[4]);
}

/* ---- rescheduling ----------------------------------------------------------- */

static void *reschedule_main(void *arg)
{
    (void)arg;
    /* Extend: 1 → 3. */
    weft_timeout *to = weft_timeout_enter(1);
    cr_expect_eq(weft_timeout_reschedule(to, weft_time() + 3), 0);
    cr_expect(time_is(weft_timeout_when(to), 3.0));
    s.rc[0] = weft_sleep(10);
    s.at[0] = weft_time();
    /* After expiry the deadline cannot move. */
    s.rc[1] = weft_timeout_reschedule(to, 100);
    keep_msg(0);
    cr_expect_eq(weft_timeout_exit(to, s.rc[0]), -ETIMEDOUT);

    /* Shorten: now + 5 → now + 2. */
    to = weft_timeout_enter(5);
    cr_expect_eq(weft_timeout_reschedule(to, weft_time() + 2), 0);
    s.rc[2] = weft_sleep(10);
    s.at[2] = weft_time();
    cr_expect_eq(weft_timeout_exit(to, s.rc[2]), -ETIMEDOUT);

    /* To no deadline. */
    to = weft_timeout_enter(1);
    cr_expect_eq(weft_timeout_reschedule(to, WEFT_FOREVER), 0);
    s.flag[0] = weft_timeout_when(to) == WEFT_FOREVER;
    s.rc[3] = weft_sleep(3);
    s.at[3] = weft_time();
    s.flag[1] = weft_timeout_expired(to);
    /* From no deadline to one already passed. */
    s.rc[4] = weft_timeout_reschedule(to, 0);
    s.rc[5] = weft_yield();
    s.at[5] = weft_time();
    cr_expect_eq(weft_timeout_exit(to, s.rc[5]), -ETIMEDOUT);

    to = weft_timeout_enter(WEFT_FOREVER);
    s.flag[2] = weft_timeout_when(to) == WEFT_FOREVER;
    s.rc[6] = weft_timeout_reschedule(to, NAN);
    cr_expect_eq(weft_timeout_exit(to, 0), 0);
    return NULL;
}

Test(timeout, reschedule_extends_shortens_removes_and_refuses_after_expiry)
{
    seen_reset();
    cr_assert_eq(run_virtual(reschedule_main, NULL, NULL), 0);
    cr_assert_eq(s.rc[0], -ECANCELED);
    cr_assert(time_is(s.at[0], 3.0), "extended deadline hit at %f", s.at[0]);
    cr_assert_eq(s.rc[1], WEFT_ESTATE);
    cr_assert(strstr(s.msg[0], "already expired"), "message: %s", s.msg[0]);
    cr_assert_eq(s.rc[2], -ECANCELED);
    cr_assert(time_is(s.at[2], 5.0), "shortened deadline hit at %f", s.at[2]);
    cr_assert(s.flag[0], "when() is not WEFT_FOREVER");
    cr_assert_eq(s.rc[3], 0, "a scope without a deadline interrupted a sleep");
    cr_assert(time_is(s.at[3], 8.0));
    cr_assert_eq(s.flag[1], false);
    cr_assert_eq(s.rc[4], 0);
    cr_assert_eq(s.rc[5], -ECANCELED);
    cr_assert(time_is(s.at[5], 8.0));
    cr_assert(s.flag[2]);
    cr_assert_eq(s.rc[6], -EINVAL);
}

/* ---- a cancellation from outside stays -ECANCELED ---------------------------- */

static void *scoped_sleeper(void *arg)
{
    (void)arg;
    weft_timeout *to = weft_timeout_enter(1);
    s.rc[0] = weft_sleep(10);
    s.at[0] = weft_time();
    s.flag[0] = weft_timeout_expired(to);
    s.rc[1] = weft_timeout_exit(to, s.rc[0]);
    keep_msg(0);
    s.flag[1] = weft_cancelled();
    return (void *)1;
}

static void *external_cancel_main(void *arg)
{
    (void)arg;
    weft_task *t = weft_spawn(scoped_sleeper, NULL);
    cr_expect_eq(weft_yield(), 0); /* the child enters its scope */
    cr_expect_eq(weft_sleep(1), 0);
    /* The scope's deadline is due at this same instant: both cancellations reach
     * the child before it runs again. */
    weft_cancel(t, "stop now");
    s.rc[2] = weft_await(t, NULL);
    return NULL;
}

Test(timeout, a_cancellation_from_outside_stays_ecanceled_even_if_the_scope_expired)
{
    seen_reset();
    cr_assert_eq(run_virtual(external_cancel_main, NULL, NULL), 0);
    cr_assert_eq(s.rc[0], -ECANCELED);
    cr_assert(time_is(s.at[0], 1.0));
    cr_assert_eq(s.flag[0], true, "the scope did not expire");
    cr_assert_eq(s.rc[1], -ECANCELED, "exit turned a foreign cancellation into %d", s.rc[1]);
    cr_assert_eq(s.flag[1], true, "the outside cancellation was taken back");
    cr_assert_eq(s.rc[2], -ECANCELED, "the child ended with %d", s.rc[2]);
}

static void *cancelled_before_deadline(void *arg)
{
    (void)arg;
    weft_timeout *to = weft_timeout_enter(5);
    s.rc[0] = weft_sleep(10);
    s.at[0] = weft_time();
    s.flag[0] = weft_timeout_expired(to);
    s.rc[1] = weft_timeout_exit(to, s.rc[0]);
    keep_msg(0);
    return NULL;
}

static void *cancel_before_deadline_main(void *arg)
{
    (void)arg;
    weft_task *t = weft_spawn(cancelled_before_deadline, NULL);
    cr_expect_eq(weft_sleep(1), 0);
    weft_cancel(t, "stop now");
    s.rc[2] = weft_await(t, NULL);
    s.at[2] = weft_time();
    return NULL;
}

Test(timeout, a_cancellation_before_the_deadline_passes_through)
{
    seen_reset();
    cr_assert_eq(run_virtual(cancel_before_deadline_main, NULL, NULL), 0);
    cr_assert_eq(s.rc[0], -ECANCELED);
    cr_assert(time_is(s.at[0], 1.0));
    cr_assert_eq(s.flag[0], false);
    cr_assert_eq(s.rc[1], -ECANCELED);
    cr_assert_eq(s.rc[2], -ECANCELED);
    cr_assert(time_is(s.at[2], 1.0), "the child's deadline kept it alive until %f", s.at[2]);
}

/* ---- misuse ------------------------------------------------------------------ */

static void *other_task_exits(void *arg)
{
    weft_timeout *to = arg;
    s.rc[1] = weft_timeout_exit(to, 0);
    keep_msg(1);
    return NULL;
}

static void *misuse_main(void *arg)
{
    (void)arg;
    s.flag[0] = weft_timeout_enter(NAN) == NULL;
    keep_msg(0);
    s.flag[1] = weft_timeout_enter_at(NAN) == NULL;

    weft_timeout *outer = weft_timeout_enter(1);
    weft_timeout *inner = weft_timeout_enter(5);
    s.rc[0] = weft_timeout_exit(outer, 0); /* out of order: refused, nothing changes */
    keep_msg(2);
    cr_expect_eq(weft_await(weft_spawn(other_task_exits, inner), NULL), 0);
    /* Both scopes still work: the outer expires at 1 and converts. */
    s.rc[2] = weft_sleep(10);
    s.at[2] = weft_time();
    s.rc[3] = weft_timeout_exit(inner, s.rc[2]);
    s.rc[4] = weft_timeout_exit(outer, s.rc[3]);
    s.rc[5] = weft_timeout_exit(NULL, 0);
    return NULL;
}

Test(timeout, misuse_is_refused_without_damage)
{
    seen_reset();
    cr_assert_eq(run_virtual(misuse_main, NULL, NULL), 0);
    cr_assert(s.flag[0] && s.flag[1], "a NaN delay or deadline opened a scope");
    cr_assert(strstr(s.msg[0], "NaN"), "message: %s", s.msg[0]);
    cr_assert_eq(s.rc[0], WEFT_ESTATE);
    cr_assert(strstr(s.msg[2], "innermost first"), "message: %s", s.msg[2]);
    cr_assert_eq(s.rc[1], WEFT_ESTATE);
    cr_assert(strstr(s.msg[1], "only the task that entered"), "message: %s", s.msg[1]);
    cr_assert_eq(s.rc[2], -ECANCELED);
    cr_assert(time_is(s.at[2], 1.0));
    cr_assert_eq(s.rc[3], -ECANCELED);
    cr_assert_eq(s.rc[4], -ETIMEDOUT);
    cr_assert_eq(s.rc[5], -EINVAL);
}

Test(timeout, outside_a_loop)
{
    cr_assert_null(weft_timeout_enter(1));
    cr_assert(strstr(weft_errmsg(), "weft_run"), "message: %s", weft_errmsg());
    cr_assert_eq(weft_timeout_exit(NULL, 0), WEFT_ENOTINLOOP);
    cr_assert_eq(weft_wait_for(NULL, 1, NULL), WEFT_ENOTINLOOP);
}

/* A task that returns inside a scope: reported, and its deadline never fires
 * into the freed task (the loop runs past it). */
static void *forgets_to_exit(void *arg)
{
    (void)arg;
    weft_timeout_enter(1);
    return NULL;
}

static void *forgotten_main(void *arg)
{
    (void)arg;
    cr_expect_eq(weft_await(weft_spawn(forgets_to_exit, NULL), NULL), 0);
    /* Reuse the freed record for a new sleeper the stale deadline could hit. */
    weft_task *t = weft_spawn_opts(detached_scope_user, NULL, NULL);
    cr_expect_eq(weft_sleep(2), 0);
    cr_expect_eq(weft_await(t, NULL), 0);
    return NULL;
}

static int forgotten_scope_scenario(void)
{
    return run_virtual(forgotten_main, NULL, NULL) == 0 ? 0 : 1;
}

Test(timeout, a_task_returning_inside_a_scope_is_reported)
{
    seen_reset();
    child_outcome out;
    run_forked(forgotten_scope_scenario, &out);
    cr_assert(WIFEXITED(out.status) && WEXITSTATUS(out.status) == 0, "status %d, stderr: %s", out.status,
              out.stderr_text);
    cr_assert(strstr(out.stderr_text, "Task-2 finished inside a timeout scope it never left"), "stderr: %s",
              out.stderr_text);
}

/* ---- compact tasks ------------------------------------------------------------ */

static void *compact_scoped(void *arg)
{
    int i = (int)(intptr_t)arg;
    weft_timeout *outer = weft_timeout_enter(2);
    weft_timeout *inner = weft_timeout_enter(1);
    int rc = weft_sleep(10);
    rc = weft_timeout_exit(inner, rc);
    cr_expect_eq(rc, -ETIMEDOUT, "task %d inner: %d", i, rc);
    rc = weft_sleep(10);
    rc = weft_timeout_exit(outer, rc);
    cr_expect_eq(rc, -ETIMEDOUT, "task %d outer: %d", i, rc);
    cr_expect(time_is(weft_time(), 2.0));
    return (void *)(intptr_t)(i + 100);
}

static void *compact_main(void *arg)
{
    (void)arg;
    weft_task *t[8];
    for (int i = 0; i < 8; i++)
        t[i] = weft_spawn_opts(compact_scoped, (void *)(intptr_t)i, &(weft_spawn_options){.compact = 1});
    for (int i = 0; i < 8; i++) {
        void *r = NULL;
        cr_expect_eq(weft_await(t[i], &r), 0);
        cr_expect_eq((intptr_t)r, i + 100);
    }
    return NULL;
}

Test(timeout, scopes_in_compact_tasks)
{
    cr_assert_eq(run_virtual(compact_main, NULL, NULL), 0);
}

/* ======================================================================== */
/* weft_wait_for                                                            */
/* ======================================================================== */

/* A child: sleep, then return `value`; what it does when cancelled is `on_cancel`. */
enum on_cancel { GIVE_UP, CLEAN_UP_SLOWLY, SWALLOW, FAIL_OWN_WAY };

typedef struct child_plan {
    double sleep;
    intptr_t value;
    int on_cancel;
    int sleep_rc;
    double ended_at;
    bool ran;
} child_plan;

static void *planned_child(void *arg)
{
    child_plan *p = arg;
    p->ran = true;
    p->sleep_rc = weft_sleep(p->sleep);
    if (p->sleep_rc == -ECANCELED) {
        switch (p->on_cancel) {
        case CLEAN_UP_SLOWLY:
            weft_uncancel();
            cr_expect_eq(weft_sleep(0.05), 0);
            p->ended_at = weft_time();
            return weft_fail(-ECANCELED, "cleaned up, then gave up");
        case SWALLOW:
            weft_uncancel();
            p->ended_at = weft_time();
            return (void *)(intptr_t)99;
        case FAIL_OWN_WAY:
            p->ended_at = weft_time();
            return weft_fail(-EIO, "the disk went away while stopping");
        default:
            break;
        }
    }
    p->ended_at = weft_time();
    return (void *)p->value;
}

static child_plan plan;

static void plan_reset(child_plan p)
{
    plan = p;
    plan.sleep_rc = 12345;
    plan.ended_at = -1;
}

/* main: wait_for(child, timeout) and record rc, result, time, message. */
static void *wait_for_main(void *arg)
{
    double timeout = *(double *)arg;
    void *r = (void *)(intptr_t)-1;
    s.rc[0] = weft_wait_for(weft_spawn(planned_child, &plan), timeout, &r);
    s.at[0] = weft_time();
    s.value = (intptr_t)r;
    keep_msg(0);
    s.flag[0] = weft_cancelled();
    /* Nothing armed is left behind: a later sleep runs its full length. */
    s.rc[1] = weft_sleep(20);
    s.at[1] = weft_time();
    return NULL;
}

static void run_wait_for(double timeout)
{
    seen_reset();
    cr_assert_eq(run_virtual(wait_for_main, &timeout, NULL), 0);
    cr_assert_eq(s.flag[0], false, "wait_for left the caller cancelled");
    cr_assert_eq(s.rc[1], 0);
    cr_assert(time_is(s.at[1], s.at[0] + 20), "a later sleep ended at %f", s.at[1]);
}

Test(timeout, wait_for_result_before_the_timeout)
{
    plan_reset((child_plan){.sleep = 1, .value = 7});
    run_wait_for(2);
    cr_assert_eq(s.rc[0], 0);
    cr_assert_eq(s.value, 7);
    cr_assert(time_is(s.at[0], 1.0));
    cr_assert_eq(plan.sleep_rc, 0);
}

Test(timeout, wait_for_timeout_gives_etimedout)
{
    plan_reset((child_plan){.sleep = 10, .value = 7});
    run_wait_for(1.5);
    cr_assert_eq(s.rc[0], -ETIMEDOUT);
    cr_assert_null((void *)s.value);
    cr_assert(time_is(s.at[0], 1.5), "returned at %f", s.at[0]);
    cr_assert(strstr(s.msg[0], "timed out after 1.5 s"), "message: %s", s.msg[0]);
    cr_assert_eq(plan.sleep_rc, -ECANCELED, "the child was not cancelled");
    cr_assert(time_is(plan.ended_at, 1.5));
}

Test(timeout, wait_for_waits_for_the_cancelled_childs_clean_up)
{
    plan_reset((child_plan){.sleep = 10, .on_cancel = CLEAN_UP_SLOWLY});
    run_wait_for(1);
    cr_assert_eq(s.rc[0], -ETIMEDOUT);
    cr_assert(time_is(plan.ended_at, 1.05), "the child ended at %f", plan.ended_at);
    cr_assert(time_is(s.at[0], 1.05), "wait_for returned at %f, before the clean-up ended", s.at[0]);
}

Test(timeout, wait_for_a_child_swallowing_the_cancellation_gives_its_value)
{
    plan_reset((child_plan){.sleep = 10, .on_cancel = SWALLOW});
    run_wait_for(1);
    cr_assert_eq(s.rc[0], 0);
    cr_assert_eq(s.value, 99);
    cr_assert(time_is(s.at[0], 1.0));
}

Test(timeout, wait_for_a_child_failing_its_own_way_gives_its_error)
{
    plan_reset((child_plan){.sleep = 10, .on_cancel = FAIL_OWN_WAY});
    run_wait_for(1);
    cr_assert_eq(s.rc[0], -EIO);
    cr_assert_str_eq(s.msg[0], "the disk went away while stopping");
}

static void *fails_at_once(void *arg)
{
    (void)arg;
    cr_expect_eq(weft_sleep(0.5), 0);
    return weft_fail(-EPROTO, "bad reply %d", 3);
}

static void *early_failure_main(void *arg)
{
    (void)arg;
    s.rc[0] = weft_wait_for(weft_spawn(fails_at_once, NULL), 5, NULL);
    keep_msg(0);
    s.at[0] = weft_time();
    return NULL;
}

Test(timeout, wait_for_a_child_failing_before_the_timeout)
{
    seen_reset();
    cr_assert_eq(run_virtual(early_failure_main, NULL, NULL), 0);
    cr_assert_eq(s.rc[0], -EPROTO);
    cr_assert_str_eq(s.msg[0], "bad reply 3");
    cr_assert(time_is(s.at[0], 0.5));
}

Test(timeout, wait_for_forever_is_a_plain_await)
{
    plan_reset((child_plan){.sleep = 3, .value = 5});
    run_wait_for(WEFT_FOREVER);
    cr_assert_eq(s.rc[0], 0);
    cr_assert_eq(s.value, 5);
    cr_assert(time_is(s.at[0], 3.0));
}

/* The caller cancelled while waiting: -ECANCELED at once, the child cancelled. */
static void *waits_for_child(void *arg)
{
    (void)arg;
    s.rc[0] = weft_wait_for(weft_spawn(planned_child, &plan), 10, NULL);
    s.at[0] = weft_time();
    keep_msg(0);
    return NULL;
}

static void *caller_cancelled_main(void *arg)
{
    (void)arg;
    weft_task *w = weft_spawn(waits_for_child, NULL);
    cr_expect_eq(weft_sleep(1), 0);
    weft_cancel(w, "caller stops");
    s.rc[1] = weft_await(w, NULL);
    /* Past the abandoned deadline: it must not fire into anything. */
    s.rc[2] = weft_sleep(20);
    return NULL;
}

Test(timeout, wait_for_caller_cancelled_cancels_the_child)
{
    seen_reset();
    plan_reset((child_plan){.sleep = 10, .on_cancel = CLEAN_UP_SLOWLY});
    cr_assert_eq(run_virtual(caller_cancelled_main, NULL, NULL), 0);
    cr_assert_eq(s.rc[0], -ECANCELED);
    cr_assert(time_is(s.at[0], 1.0), "wait_for returned at %f", s.at[0]);
    cr_assert_str_eq(s.msg[0], "caller stops");
    cr_assert_eq(plan.sleep_rc, -ECANCELED);
    cr_assert(time_is(plan.ended_at, 1.05), "the child ended at %f", plan.ended_at);
    cr_assert_eq(s.rc[1], -ECANCELED, "the cancelled waiter ended with %d", s.rc[1]);
    cr_assert_eq(s.rc[2], 0);
}

/* timeout ≤ 0 */
static void *zero_timeout_main(void *arg)
{
    (void)arg;
    /* Started and sleeping: cancelled at once, its clean-up waited for. */
    weft_task *t = weft_spawn(planned_child, &plan);
    cr_expect_eq(weft_yield(), 0);
    s.rc[0] = weft_wait_for(t, 0, NULL);
    s.at[0] = weft_time();
    keep_msg(0);

    /* Not started yet: it never runs. */
    static child_plan never = {.sleep = 1};
    s.rc[1] = weft_wait_for(weft_spawn(planned_child, &never), -1, NULL);
    s.flag[0] = never.ran;

    /* Finished already: its outcome, even with no time. */
    static child_plan done = {.sleep = 0, .value = 42};
    t = weft_spawn(planned_child, &done);
    cr_expect_eq(weft_sleep(0.5), 0);
    void *r = NULL;
    s.rc[2] = weft_wait_for(t, 0, &r);
    s.value = (intptr_t)r;
    s.flag[1] = weft_cancelled();
    return NULL;
}

Test(timeout, wait_for_zero_timeout)
{
    seen_reset();
    plan_reset((child_plan){.sleep = 10, .on_cancel = CLEAN_UP_SLOWLY});
    cr_assert_eq(run_virtual(zero_timeout_main, NULL, NULL), 0);
    cr_assert_eq(s.rc[0], -ETIMEDOUT);
    cr_assert(time_is(s.at[0], 0.05), "returned at %f", s.at[0]);
    cr_assert(strstr(s.msg[0], "timed out after 0 s"), "message: %s", s.msg[0]);
    cr_assert(time_is(plan.ended_at, 0.05));
    cr_assert_eq(s.rc[1], -ETIMEDOUT);
    cr_assert_eq(s.flag[0], false, "a task cancelled before it started ran");
    cr_assert_eq(s.rc[2], 0);
    cr_assert_eq(s.value, 42);
    cr_assert_eq(s.flag[1], false);
}

static void *bad_args_main(void *arg)
{
    (void)arg;
    plan_reset((child_plan){.sleep = 1, .value = 3});
    s.rc[0] = weft_wait_for(weft_spawn(planned_child, &plan), NAN, NULL);
    keep_msg(0);
    s.rc[1] = weft_wait_for(NULL, 1, NULL);
    s.rc[2] = weft_wait_for(weft_current(), 1, NULL);
    cr_expect_eq(weft_sleep(2), 0); /* the detached child runs on */
    return NULL;
}

Test(timeout, wait_for_bad_arguments)
{
    seen_reset();
    cr_assert_eq(run_virtual(bad_args_main, NULL, NULL), 0);
    cr_assert_eq(s.rc[0], -EINVAL);
    cr_assert(strstr(s.msg[0], "NaN"), "message: %s", s.msg[0]);
    cr_assert(time_is(plan.ended_at, 1.0), "the child given with a NaN timeout did not run on");
    cr_assert_eq(s.rc[1], -EINVAL);
    cr_assert_eq(s.rc[2], -EINVAL);
}

/* wait_for inside an expiring scope: the scope wins, and converts. */
static void *wait_for_in_scope_main(void *arg)
{
    (void)arg;
    plan_reset((child_plan){.sleep = 10});
    weft_timeout *to = weft_timeout_enter(1);
    s.rc[0] = weft_wait_for(weft_spawn(planned_child, &plan), 5, NULL);
    s.at[0] = weft_time();
    s.rc[1] = weft_timeout_exit(to, s.rc[0]);
    s.rc[2] = weft_sleep(10);
    return NULL;
}

Test(timeout, wait_for_inside_an_expiring_scope)
{
    seen_reset();
    cr_assert_eq(run_virtual(wait_for_in_scope_main, NULL, NULL), 0);
    cr_assert_eq(s.rc[0], -ECANCELED);
    cr_assert(time_is(s.at[0], 1.0));
    cr_assert_eq(s.rc[1], -ETIMEDOUT);
    cr_assert_eq(plan.sleep_rc, -ECANCELED);
    cr_assert_eq(s.rc[2], 0, "wait_for's own deadline outlived it");
}

/* A compact caller: wait_for's state must not live on its moving stack. */
static void *compact_waiter(void *arg)
{
    child_plan *p = arg;
    int rc = weft_wait_for(weft_spawn(planned_child, p), 1, NULL);
    cr_expect_eq(rc, -ETIMEDOUT);
    cr_expect(time_is(weft_time(), 1.0));
    return NULL;
}

static void *compact_wait_for_main(void *arg)
{
    (void)arg;
    static child_plan plans[6];
    weft_task *t[6];
    for (int i = 0; i < 6; i++) {
        plans[i] = (child_plan){.sleep = 5};
        t[i] = weft_spawn_opts(compact_waiter, &plans[i], &(weft_spawn_options){.compact = 1});
    }
    for (int i = 0; i < 6; i++)
        cr_expect_eq(weft_await(t[i], NULL), 0);
    for (int i = 0; i < 6; i++)
        cr_expect_eq(plans[i].sleep_rc, -ECANCELED);
    return NULL;
}

Test(timeout, wait_for_from_compact_tasks)
{
    cr_assert_eq(run_virtual(compact_wait_for_main, NULL, NULL), 0);
}
