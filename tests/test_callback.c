/*
 * test_callback.c — loop callbacks as a user sees them: weft_call_soon runs on the
 * next iteration in FIFO order after the tasks already ready, never inside the
 * call that scheduled it; handles cancel pending callbacks and are safe (false) once
 * a callback has run or was cancelled; task done callbacks run from the loop in
 * registration order, even after the task's handle was consumed.
 */
#include "common.h"

TestSuite(callback, .timeout = 30);

static void note(void *arg)
{
    trace("%s%s", (const char *)arg, weft_current() == NULL ? "" : "(in-task)");
}

static void *ticker(void *arg)
{
    for (int i = 0; i < 3; i++) {
        trace("%s%d", (const char *)arg, i);
        weft_yield();
    }
    return NULL;
}

static void *soon_main(void *arg)
{
    (void)arg;
    weft_task *a = weft_spawn(ticker, "A");
    trace("M0");
    cr_expect(weft_call_ok(weft_call_soon(note, "s1")));
    cr_expect(weft_call_ok(weft_call_soon(note, "s2")));
    trace("M1"); /* nothing has run inside the calls */
    weft_yield();
    trace("M2");
    weft_await(a, NULL);
    return NULL;
}

Test(callback, call_soon_runs_next_iteration_in_order)
{
    trace_reset();
    cr_assert_eq(run_virtual(soon_main, NULL, NULL), 0);
    /* A was ready before the callbacks were scheduled, so it runs first; main,
     * yielding after them, comes after. */
    cr_assert_str_eq(trace_text, "M0 M1 A0 s1 s2 M2 A1 A2");
}

static void chain(void *arg)
{
    int *left = arg;
    trace("c%d", *left);
    if (--*left > 0)
        weft_call_soon(chain, left);
}

static void *chain_main(void *arg)
{
    (void)arg;
    static int left;
    left = 3;
    weft_call_soon(chain, &left);
    for (int i = 0; i < 4; i++) {
        trace("m%d", i);
        weft_yield();
    }
    return NULL;
}

Test(callback, a_callback_scheduled_from_a_callback_waits_one_iteration)
{
    trace_reset();
    cr_assert_eq(run_virtual(chain_main, NULL, NULL), 0);
    cr_assert_str_eq(trace_text, "m0 c3 m1 c2 m2 c1 m3");
}

static int fired;
static void count_fire(void *arg)
{
    (void)arg;
    fired++;
}

static void *handles_main(void *arg)
{
    (void)arg;
    weft_call soon = weft_call_soon(count_fire, NULL);
    weft_call later = weft_call_later(1, count_fire, NULL);
    weft_call ran = weft_call_later(0.5, count_fire, NULL);
    cr_expect(weft_call_cancel(soon), "a pending call_soon could not be cancelled");
    cr_expect(!weft_call_cancel(soon), "cancelling twice returned true");
    cr_expect_eq(weft_sleep(0.75), 0);
    cr_expect_eq(fired, 1, "only the 0.5 s timer should have run, %d did", fired);
    cr_expect(!weft_call_cancel(ran), "a handle whose callback ran still cancelled");
    /* Its record has been reused meanwhile: the stale handle must not cancel it. */
    weft_call fresh = weft_call_later(0.1, count_fire, NULL);
    cr_expect(!weft_call_cancel(ran));
    cr_expect(weft_call_cancel(later));
    cr_expect(!weft_call_cancel(later));
    cr_expect_eq(weft_sleep(2), 0);
    cr_expect_eq(fired, 2, "the fresh timer must run and the cancelled one not (%d ran)", fired);
    cr_expect(!weft_call_cancel(fresh));
    cr_expect(!weft_call_cancel((weft_call){0}));
    return NULL;
}

Test(callback, handles_cancel_once_and_are_safe_when_stale)
{
    fired = 0;
    cr_assert_eq(run_virtual(handles_main, NULL, NULL), 0);
    cr_assert_eq(fired, 2);
}

static void *bad_args_main(void *arg)
{
    (void)arg;
    weft_call h = weft_call_soon(NULL, NULL);
    cr_expect(!weft_call_ok(h));
    cr_expect(strstr(weft_errmsg(), "NULL") != NULL, "message: %s", weft_errmsg());
    h = weft_call_at(NAN, count_fire, NULL);
    cr_expect(!weft_call_ok(h));
    cr_expect(strstr(weft_errmsg(), "NaN") != NULL, "message: %s", weft_errmsg());
    return NULL;
}

Test(callback, bad_arguments_are_refused_with_a_message)
{
    cr_assert_eq(run_virtual(bad_args_main, NULL, NULL), 0);
    cr_assert(!weft_call_ok(weft_call_soon(count_fire, NULL)), "call_soon outside a loop succeeded");
}

/* ---- task done callbacks --------------------------------------------------------- */

static void on_done(weft_task *t, void *arg)
{
    void *result = NULL;
    int rc = weft_task_result(t, &result);
    trace("%s:%s:%d:%s@%g", (const char *)arg, weft_task_name(t), rc, result ? (const char *)result : "-",
          weft_time());
}

static void *worker(void *arg)
{
    double seconds = *(const double *)arg;
    if (weft_sleep(seconds) != 0)
        return NULL;
    if (seconds > 1)
        return weft_fail(-EIO, "too slow");
    return "ok";
}

static void *done_cb_main(void *arg)
{
    (void)arg;
    static const double quick = 0.5, slow = 2;
    weft_task *a = weft_spawn_opts(worker, (void *)&quick, &(weft_spawn_options){.name = "quick"});
    weft_task *b = weft_spawn_opts(worker, (void *)&slow, &(weft_spawn_options){.name = "slow"});
    cr_expect_eq(weft_task_add_done_callback(a, on_done, "first"), 0);
    cr_expect_eq(weft_task_add_done_callback(a, on_done, "second"), 0);
    cr_expect_eq(weft_task_add_done_callback(a, on_done, "removed"), 0);
    cr_expect_eq(weft_task_remove_done_callback(a, on_done, "removed"), 1);
    cr_expect_eq(weft_task_add_done_callback(b, on_done, "b"), 0);
    void *result = NULL;
    cr_expect_eq(weft_task_result(a, &result), -EINPROGRESS);
    /* Awaiting consumes a's handle; its callbacks still see the record. */
    cr_expect_eq(weft_await(a, &result), 0);
    trace("awaited-a@%g", weft_time());
    cr_expect_eq(weft_await(b, NULL), -EIO);
    trace("awaited-b");
    weft_task *c = weft_spawn(worker, (void *)&quick);
    weft_sleep(1);
    /* Already done: the callback is scheduled, not called from here. */
    cr_expect_eq(weft_task_add_done_callback(c, on_done, "late"), 0);
    trace("added-late");
    weft_yield();
    weft_await(c, NULL);
    return NULL;
}

Test(callback, task_done_callbacks_run_from_the_loop_in_order)
{
    trace_reset();
    cr_assert_eq(run_virtual(done_cb_main, NULL, NULL), 0);
    /* As in asyncio, where waking the awaiter is itself a done callback added
     * when it started awaiting: callbacks added before that run first. */
    cr_assert_str_eq(trace_text, "first:quick:0:ok@0.5 second:quick:0:ok@0.5 awaited-a@0.5 b:slow:-5:-@2 "
                                 "awaited-b added-late late:Task-4:0:ok@3");
}

/* Deadlines already past run in deadline order, as asyncio's heap orders them:
 * call_later(-1) after call_later(-2), though scheduled first; call_at likewise,
 * even before the loop's time origin. (Negative delays used to collapse to 0 and
 * run in scheduling order.) */
static void *past_main(void *arg)
{
    (void)arg;
    cr_expect_eq(weft_sleep(5), 0); /* virtual time 5 s */
    cr_expect(weft_call_ok(weft_call_later(-1, note, "later-1")));
    cr_expect(weft_call_ok(weft_call_later(-2, note, "later-2")));
    cr_expect(weft_call_ok(weft_call_later(0, note, "later0")));
    cr_expect(weft_call_ok(weft_call_at(-1, note, "at-1")));
    cr_expect(weft_call_ok(weft_call_at(-3, note, "at-3")));
    cr_expect(weft_call_ok(weft_call_at(4.5, note, "at4.5")));
    cr_expect_eq(weft_sleep(0.1), 0);
    return NULL;
}

Test(callback, deadlines_in_the_past_run_in_deadline_order)
{
    trace_reset();
    cr_assert_eq(run_virtual(past_main, NULL, NULL), 0);
    cr_assert_str_eq(trace_text, "at-3 at-1 later-2 later-1 at4.5 later0");
}

/* A done callback still scheduled when weft_run ends is dropped with the loop, and
 * the task record it pinned is freed with it (LeakSanitizer reports the 72-byte
 * side record otherwise, in the sanitizer build of this test). */
static void *noop_task(void *arg)
{
    return arg;
}

static void never_runs(weft_task *t, void *arg)
{
    (void)t;
    (void)arg;
    trace("ran");
}

static void *pinned_main(void *arg)
{
    (void)arg;
    weft_task *t = weft_spawn(noop_task, NULL);
    cr_expect_eq(weft_task_add_done_callback(t, never_runs, NULL), 0);
    cr_expect_eq(weft_yield(), 0); /* t finishes; its done callback is scheduled */
    cr_expect_eq(weft_await(t, NULL), 0);
    return NULL;                   /* ... and the loop ends before it runs */
}

Test(callback, a_done_callback_pending_at_the_end_leaks_nothing)
{
    trace_reset();
    cr_assert_eq(run_virtual(pinned_main, NULL, NULL), 0);
}
