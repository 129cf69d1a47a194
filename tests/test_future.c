/*
 * test_future.c — futures as a user sees them: many tasks await one future and
 * wake in the order they started waiting; result, error and cancellation reach
 * every awaiter; done callbacks run from the loop in registration order and never
 * synchronously; a second completion is refused; cancelling an awaiter cancels the
 * future (asyncio's rule); freeing a future still in use is refused.
 */
#include "common.h"

TestSuite(future, .timeout = 30);

typedef struct waiter_arg {
    weft_future *f;
    const char *name;
} waiter_arg;

static void *awaiter(void *arg)
{
    waiter_arg *w = arg;
    void *result = NULL;
    int rc = weft_future_await(w->f, &result);
    trace("%s:%d:%s@%g", w->name, rc, rc == 0 ? (const char *)result : weft_errmsg(), weft_time());
    return NULL;
}

static void on_done(weft_future *f, void *arg)
{
    trace("cb-%s:%s", (const char *)arg, weft_future_done(f) ? "done" : "pending");
}

static void *result_main(void *arg)
{
    (void)arg;
    weft_future *f = weft_future_new();
    cr_expect_not_null(f);
    waiter_arg w1 = {f, "w1"}, w2 = {f, "w2"}, w3 = {f, "w3"};
    weft_task *t[3] = {weft_spawn(awaiter, &w1), weft_spawn(awaiter, &w2), weft_spawn(awaiter, &w3)};
    cr_expect_eq(weft_future_add_done_callback(f, on_done, "a"), 0);
    cr_expect_eq(weft_future_add_done_callback(f, on_done, "b"), 0);
    weft_sleep(1);
    cr_expect(!weft_future_done(f));
    void *r = NULL;
    cr_expect_eq(weft_future_result(f, &r), -EINPROGRESS);
    cr_expect_eq(weft_future_set_result(f, "hello"), 0);
    trace("set"); /* nothing ran inside set_result */
    cr_expect_eq(weft_future_set_result(f, "again"), WEFT_ESTATE);
    cr_expect_eq(weft_future_set_error(f, -EIO, "late"), WEFT_ESTATE);
    cr_expect(!weft_future_cancel(f, NULL));
    cr_expect_eq(weft_gather(t, 3, NULL, NULL, 0), 0);
    cr_expect_eq(weft_future_result(f, &r), 0);
    cr_expect_str_eq((const char *)r, "hello");
    /* A done future: awaiting returns at once. */
    double before = weft_time();
    cr_expect_eq(weft_future_await(f, &r), 0);
    cr_expect(time_is(weft_time(), before));
    cr_expect_eq(weft_future_free(f), 0);
    return NULL;
}

Test(future, result_reaches_every_awaiter_in_order)
{
    trace_reset();
    cr_assert_eq(run_virtual(result_main, NULL, NULL), 0);
    cr_assert_str_eq(trace_text, "set w1:0:hello@1 w2:0:hello@1 w3:0:hello@1 cb-a:done cb-b:done");
}

static void *error_main(void *arg)
{
    (void)arg;
    weft_future *f = weft_future_new();
    waiter_arg w1 = {f, "w1"}, w2 = {f, "w2"};
    weft_task *t[2] = {weft_spawn(awaiter, &w1), weft_spawn(awaiter, &w2)};
    weft_sleep(0.5);
    cr_expect_eq(weft_future_set_error(f, ECONNRESET, "peer %s went away", "db"), 0);
    cr_expect_eq(weft_gather(t, 2, NULL, NULL, 0), 0);
    cr_expect_eq(weft_future_result(f, NULL), -ECONNRESET);
    cr_expect_str_eq(weft_errmsg(), "peer db went away");

    weft_future *g = weft_future_new();
    waiter_arg w3 = {g, "w3"};
    weft_task *t3 = weft_spawn(awaiter, &w3);
    weft_sleep(0.5);
    cr_expect(weft_future_cancel(g, "no longer needed"));
    cr_expect(weft_future_cancelled(g));
    weft_await(t3, NULL);
    cr_expect_eq(weft_future_free(f), 0);
    cr_expect_eq(weft_future_free(g), 0);
    return NULL;
}

Test(future, error_and_cancellation_reach_awaiters)
{
    trace_reset();
    cr_assert_eq(run_virtual(error_main, NULL, NULL), 0);
    cr_assert_str_eq(trace_text, "w1:-104:peer db went away@0.5 w2:-104:peer db went away@0.5 "
                                 "w3:-125:no longer needed@1");
}

static void *cancel_awaiter_main(void *arg)
{
    (void)arg;
    weft_future *f = weft_future_new();
    waiter_arg w1 = {f, "w1"}, w2 = {f, "w2"};
    weft_task *a = weft_spawn(awaiter, &w1);
    weft_task *b = weft_spawn(awaiter, &w2);
    weft_sleep(0.25);
    /* The future cannot be freed while tasks wait on it. */
    cr_expect_eq(weft_future_free(f), -EBUSY);
    cr_expect(strstr(weft_errmsg(), "await") != NULL, "message: %s", weft_errmsg());
    weft_cancel(a, "stop a");
    weft_await(a, NULL);
    weft_await(b, NULL);
    cr_expect(weft_future_cancelled(f), "cancelling an awaiter did not cancel the future");
    cr_expect_eq(weft_future_free(f), 0);
    return NULL;
}

Test(future, cancelling_an_awaiter_cancels_the_future)
{
    trace_reset();
    cr_assert_eq(run_virtual(cancel_awaiter_main, NULL, NULL), 0);
    /* The other awaiter is woken by the future's cancellation, inside weft_cancel
     * and so before the cancelled task itself. */
    cr_assert_str_eq(trace_text, "w2:-125:stop a@0.25 w1:-125:stop a@0.25");
}

static void *late_callback_main(void *arg)
{
    (void)arg;
    weft_future *f = weft_future_new();
    weft_future_set_result(f, NULL);
    cr_expect_eq(weft_future_add_done_callback(f, on_done, "late"), 0);
    trace("added");
    cr_expect_eq(weft_future_free(f), -EBUSY); /* its callback has not run yet */
    weft_yield();
    trace("yielded");
    cr_expect_eq(weft_future_add_done_callback(f, on_done, "gone"), 0);
    cr_expect_eq(weft_future_remove_done_callback(f, on_done, "gone"), 0); /* already scheduled */
    weft_yield();
    weft_future *g = weft_future_new();
    cr_expect_eq(weft_future_add_done_callback(g, on_done, "removed"), 0);
    cr_expect_eq(weft_future_add_done_callback(g, on_done, "removed"), 0);
    cr_expect_eq(weft_future_remove_done_callback(g, on_done, "removed"), 2);
    weft_future_set_result(g, NULL);
    weft_yield();
    cr_expect_eq(weft_future_free(f), 0);
    cr_expect_eq(weft_future_free(g), 0);
    return NULL;
}

Test(future, callbacks_on_a_done_future_are_scheduled_not_called)
{
    trace_reset();
    cr_assert_eq(run_virtual(late_callback_main, NULL, NULL), 0);
    cr_assert_str_eq(trace_text, "added cb-late:done yielded cb-gone:done");
}

static void *self_cancel_main(void *arg)
{
    (void)arg;
    weft_future *f = weft_future_new();
    weft_cancel(weft_current(), NULL);
    cr_expect_eq(weft_future_await(f, NULL), -ECANCELED);
    weft_uncancel();
    cr_expect(weft_future_cancelled(f));
    cr_expect_eq(weft_future_free(f), 0);
    cr_expect_eq(weft_future_await(NULL, NULL), -EINVAL);
    return NULL;
}

Test(future, a_cancelled_caller_returns_at_once)
{
    cr_assert_eq(run_virtual(self_cancel_main, NULL, NULL), 0);
    cr_assert_null(weft_future_new(), "a future outside a loop");
}
