/*
 * test_queue.c — weft_queue as a user sees it (asyncio.Queue, LifoQueue, PriorityQueue):
 * blocked getters and putters served in the order they came, cancellation that loses
 * and adds no item, the non-waiting calls' errors, LIFO and priority order,
 * task_done/join, shutdown (draining and immediate), free while in use, growth.
 * Everything runs on virtual time, so "when" is exact.
 */
#include "common.h"

#include <errno.h>

TestSuite(queue, .timeout = 20);

/* One task's call on a queue and what came of it. */
typedef struct call {
    weft_queue *q;
    const char *name;
    void *item;         /* put: what to put; get: what it got */
    double delay;       /* sleeps this long before the call */
    int rc;
    double returned_at;
    char msg[160];
} call;

static void finish(call *c, int rc)
{
    c->rc = rc;
    c->returned_at = weft_time();
    if (rc != 0)
        snprintf(c->msg, sizeof c->msg, "%s", weft_errmsg());
}

static void *getter(void *arg)
{
    call *c = arg;
    if (c->delay > 0)
        weft_sleep(c->delay);
    int rc = weft_queue_get(c->q, &c->item);
    finish(c, rc);
    if (rc == 0)
        trace("%s=%s", c->name, (const char *)c->item);
    else
        trace("%s:%s", c->name, weft_errname(rc));
    return NULL;
}

static void *putter(void *arg)
{
    call *c = arg;
    if (c->delay > 0)
        weft_sleep(c->delay);
    int rc = weft_queue_put(c->q, c->item);
    finish(c, rc);
    if (rc == 0)
        trace("%s put %s", c->name, (const char *)c->item);
    else
        trace("%s:%s", c->name, weft_errname(rc));
    return NULL;
}

static void *joiner(void *arg)
{
    call *c = arg;
    int rc = weft_queue_join(c->q);
    finish(c, rc);
    trace("%s joined:%d", c->name, rc);
    return NULL;
}

static void await_all(weft_task **tasks, size_t n)
{
    for (size_t i = 0; i < n; i++)
        cr_expect_eq(weft_await(tasks[i], NULL), 0, "task %zu", i);
}

/* Takes one item that must be there, returning it as a string. */
static const char *take_now(weft_queue *q)
{
    void *item = NULL;
    int rc = weft_queue_get_nowait(q, &item);
    cr_expect_eq(rc, 0, "get_nowait: %s", weft_errname(rc));
    return item;
}

/* ---- getters are served in the order they came ---------------------------- */

static void *three_getters_main(void *arg)
{
    (void)arg;
    weft_queue *q = weft_queue_new(0);
    call c[3] = {{.q = q, .name = "A"}, {.q = q, .name = "B"}, {.q = q, .name = "C"}};
    weft_task *t[3];
    for (int i = 0; i < 3; i++)
        t[i] = weft_spawn(getter, &c[i]);
    weft_sleep(1);
    trace("put");
    cr_expect_eq(weft_queue_put(q, "a"), 0);
    cr_expect_eq(weft_queue_put(q, "b"), 0);
    cr_expect_eq(weft_queue_put(q, "c"), 0);
    await_all(t, 3);
    for (int i = 0; i < 3; i++) {
        cr_expect_eq(c[i].rc, 0);
        cr_expect(time_is(c[i].returned_at, 1.0), "%s returned at %f", c[i].name, c[i].returned_at);
    }
    cr_expect(weft_queue_empty(q));
    cr_expect_eq(weft_queue_free(q), 0);
    return NULL;
}

Test(queue, blocked_getters_receive_items_in_arrival_order)
{
    trace_reset();
    cr_assert_eq(run_virtual(three_getters_main, NULL, NULL), 0);
    cr_assert_str_eq(trace_text, "put A=a B=b C=c");
}

/* A getter woken for an item that a task which never waited took first waits
 * again ahead of the getters behind it. */
static void *barging_main(void *arg)
{
    (void)arg;
    weft_queue *q = weft_queue_new(0);
    call c[3] = {{.q = q, .name = "A"}, {.q = q, .name = "B"}, {.q = q, .name = "C"}};
    weft_task *t[3];
    for (int i = 0; i < 3; i++)
        t[i] = weft_spawn(getter, &c[i]);
    weft_sleep(1);
    weft_queue_put(q, "x");                   /* wakes A ... */
    cr_expect_str_eq(take_now(q), "x");       /* ... but main takes x before A runs */
    weft_sleep(1);                            /* A finds nothing and waits again */
    trace("put");
    weft_queue_put(q, "y");
    weft_queue_put(q, "z");
    weft_queue_put(q, "w");
    await_all(t, 3);
    for (int i = 0; i < 3; i++)
        cr_expect(time_is(c[i].returned_at, 2.0), "%s at %f", c[i].name, c[i].returned_at);
    weft_queue_free(q);
    return NULL;
}

Test(queue, woken_getter_that_lost_its_item_keeps_its_place)
{
    trace_reset();
    cr_assert_eq(run_virtual(barging_main, NULL, NULL), 0);
    cr_assert_str_eq(trace_text, "put A=y B=z C=w");
}

/* ---- a cancelled get takes no item ---------------------------------------- */

static void *cancel_woken_getter_main(void *arg)
{
    (void)arg;
    weft_queue *q = weft_queue_new(0);
    call c[2] = {{.q = q, .name = "A"}, {.q = q, .name = "B"}};
    weft_task *t[2] = {weft_spawn(getter, &c[0]), weft_spawn(getter, &c[1])};
    weft_sleep(1);
    cr_expect_eq(weft_queue_put(q, "x"), 0); /* A is woken for x ... */
    weft_cancel(t[0], "A no longer needed");  /* ... and cancelled before it runs */
    weft_sleep(0.5);
    cr_expect_eq(weft_await(t[1], NULL), 0);
    cr_expect_eq(weft_await(t[0], NULL), -ECANCELED);
    cr_expect_eq(c[0].rc, -ECANCELED);
    cr_expect_str_eq(c[0].msg, "A no longer needed");
    cr_expect_null(c[0].item);
    cr_expect_eq(c[1].rc, 0);
    cr_expect(time_is(c[1].returned_at, 1.0), "B got it at %f", c[1].returned_at);
    cr_expect_eq(weft_queue_size(q), 0);
    cr_expect_eq(weft_queue_free(q), 0);
    return NULL;
}

Test(queue, getter_cancelled_after_a_put_leaves_the_item_to_the_next_getter)
{
    trace_reset();
    cr_assert_eq(run_virtual(cancel_woken_getter_main, NULL, NULL), 0);
    cr_assert_str_eq(trace_text, "A:ECANCELED B=x");
}

static void *cancel_waiting_getter_main(void *arg)
{
    (void)arg;
    weft_queue *q = weft_queue_new(0);
    call c[2] = {{.q = q, .name = "A"}, {.q = q, .name = "B"}};
    weft_task *t[2] = {weft_spawn(getter, &c[0]), weft_spawn(getter, &c[1])};
    weft_sleep(1);
    weft_cancel(t[0], NULL);
    weft_sleep(1);
    trace("put");
    weft_queue_put(q, "x");
    weft_queue_put(q, "y");
    cr_expect_eq(weft_await(t[1], NULL), 0);
    cr_expect_eq(weft_await(t[0], NULL), -ECANCELED);
    cr_expect_str_eq(c[0].msg, "Task-2 was cancelled");
    cr_expect(time_is(c[0].returned_at, 1.0));
    /* y is still there: the cancelled getter took nothing. */
    cr_expect_eq(weft_queue_size(q), 1);
    cr_expect_str_eq(take_now(q), "y");
    weft_queue_free(q);
    return NULL;
}

Test(queue, getter_cancelled_while_waiting_leaves_the_line)
{
    trace_reset();
    cr_assert_eq(run_virtual(cancel_waiting_getter_main, NULL, NULL), 0);
    cr_assert_str_eq(trace_text, "A:ECANCELED put B=x");
}

/* A get inside an expired timeout scope gives -ETIMEDOUT and takes nothing. */
static void *timed_getter(void *arg)
{
    call *c = arg;
    weft_timeout *to = weft_timeout_enter(1.5);
    int rc = weft_queue_get(c->q, &c->item);
    rc = weft_timeout_exit(to, rc);
    finish(c, rc);
    return NULL;
}

static void *timeout_main(void *arg)
{
    (void)arg;
    weft_queue *q = weft_queue_new(0);
    call c = {.q = q, .name = "T"};
    weft_task *t = weft_spawn(timed_getter, &c);
    weft_sleep(2);
    weft_queue_put(q, "late");
    cr_expect_eq(weft_await(t, NULL), 0);
    cr_expect_eq(c.rc, -ETIMEDOUT);
    cr_expect(time_is(c.returned_at, 1.5), "timed out at %f", c.returned_at);
    cr_expect_eq(weft_queue_size(q), 1);
    weft_queue_free(q);
    return NULL;
}

Test(queue, get_in_a_timeout_scope_times_out_and_takes_nothing)
{
    cr_assert_eq(run_virtual(timeout_main, NULL, NULL), 0);
}

/* ---- a cancelled put inserts nothing -------------------------------------- */

static void *cancel_putter_main(void *arg)
{
    (void)arg;
    weft_queue *q = weft_queue_new(1);
    cr_expect_eq(weft_queue_put(q, "first"), 0);
    call c[3] = {{.q = q, .name = "P", .item = "p"},
                 {.q = q, .name = "Q", .item = "q"},
                 {.q = q, .name = "R", .item = "r"}};
    weft_task *t[3];
    for (int i = 0; i < 3; i++)
        t[i] = weft_spawn(putter, &c[i]);
    weft_sleep(1);
    weft_cancel(t[0], NULL);                    /* P waits: cancelled in line */
    weft_sleep(1);
    cr_expect_str_eq(take_now(q), "first");    /* wakes Q for the free slot ... */
    weft_cancel(t[1], NULL);                    /* ... cancelled before it runs: R gets the slot */
    weft_sleep(1);
    cr_expect_eq(weft_queue_size(q), 1);
    cr_expect_str_eq(take_now(q), "r");
    cr_expect(weft_queue_empty(q));
    for (int i = 0; i < 3; i++)
        cr_expect_eq(weft_await(t[i], NULL), i < 2 ? -ECANCELED : 0);
    cr_expect_eq(c[0].rc, -ECANCELED);
    cr_expect(time_is(c[0].returned_at, 1.0));
    cr_expect_eq(c[1].rc, -ECANCELED);
    cr_expect(time_is(c[2].returned_at, 2.0), "R put at %f", c[2].returned_at);
    /* Three items went in ("first", "r"): only they count for join. */
    cr_expect_eq(weft_queue_task_done(q), 0);
    cr_expect_eq(weft_queue_task_done(q), 0);
    cr_expect_eq(weft_queue_task_done(q), WEFT_ESTATE);
    weft_queue_free(q);
    return NULL;
}

Test(queue, cancelled_put_inserts_nothing_and_passes_the_slot_on)
{
    trace_reset();
    cr_assert_eq(run_virtual(cancel_putter_main, NULL, NULL), 0);
    cr_assert_str_eq(trace_text, "P:ECANCELED Q:ECANCELED R put r");
}

/* ---- put waits while full, putters resume in order -------------------------- */

static void *full_main(void *arg)
{
    (void)arg;
    weft_queue *q = weft_queue_new(2);
    cr_expect_eq(weft_queue_maxsize(q), 2);
    cr_expect_eq(weft_queue_put(q, "1"), 0);
    cr_expect_eq(weft_queue_put(q, "2"), 0);
    cr_expect(weft_queue_full(q));
    call c[3] = {{.q = q, .name = "P3", .item = "3"},
                 {.q = q, .name = "P4", .item = "4"},
                 {.q = q, .name = "P5", .item = "5"}};
    weft_task *t[3];
    for (int i = 0; i < 3; i++)
        t[i] = weft_spawn(putter, &c[i]);
    weft_sleep(1);
    trace("size=%zu", weft_queue_size(q));
    for (int i = 0; i < 5; i++) {
        void *item = NULL;
        cr_expect_eq(weft_queue_get(q, &item), 0);
        trace("got %s", (const char *)item);
        weft_sleep(1);
    }
    await_all(t, 3);
    cr_expect(time_is(c[0].returned_at, 1.0));
    cr_expect(time_is(c[1].returned_at, 2.0));
    cr_expect(time_is(c[2].returned_at, 3.0));
    cr_expect(weft_queue_empty(q));
    weft_queue_free(q);
    return NULL;
}

Test(queue, put_waits_while_full_and_putters_resume_in_order)
{
    trace_reset();
    cr_assert_eq(run_virtual(full_main, NULL, NULL), 0);
    cr_assert_str_eq(trace_text, "size=2 got 1 P3 put 3 got 2 P4 put 4 got 3 P5 put 5 got 4 got 5");
}

/* ---- the calls that do not wait --------------------------------------------- */

static void *nowait_main(void *arg)
{
    (void)arg;
    weft_queue *q = weft_queue_new(1);
    void *item = (void *)1;
    cr_expect_eq(weft_queue_get_nowait(q, &item), WEFT_EEMPTY);
    cr_expect_str_eq(weft_errmsg(), "weft_queue_get_nowait: the queue is empty; wait for an item with "
                                    "weft_queue_get");
    cr_expect_eq(item, (void *)1, "no item was written");
    cr_expect_eq(weft_queue_put_nowait(q, "a"), 0);
    cr_expect_eq(weft_queue_put_nowait(q, "b"), WEFT_EFULL);
    cr_expect_str_eq(weft_errmsg(), "weft_queue_put_nowait: the queue is full (maxsize 1 reached); wait for "
                                    "room with weft_queue_put, or make the queue larger");
    cr_expect_eq(weft_queue_size(q), 1);
    cr_expect_str_eq(take_now(q), "a");
    cr_expect_str_eq(weft_strerror(WEFT_EFULL), "the queue is full");
    cr_expect_str_eq(weft_strerror(WEFT_EEMPTY), "the queue is empty");

    cr_expect_eq(weft_queue_put(NULL, "x"), -EINVAL);
    cr_expect_str_eq(weft_errmsg(), "weft_queue_put: the queue is NULL");
    cr_expect_eq(weft_queue_get(q, NULL), -EINVAL);
    cr_expect_str_eq(weft_errmsg(), "weft_queue_get: the item pointer is NULL");
    cr_expect_eq(weft_queue_join(NULL), -EINVAL);
    cr_expect_eq(weft_queue_free(NULL), 0);
    cr_expect_eq(weft_queue_size(NULL), 0);
    weft_queue_free(q);
    return NULL;
}

Test(queue, nowait_calls_report_full_and_empty)
{
    cr_assert_eq(run_virtual(nowait_main, NULL, NULL), 0);
}

/* From a callback (no task), a put with room works and wakes a getter; a get that
 * would have to wait is refused. */
typedef struct from_callback {
    weft_queue *q;
    int put_rc, get_rc;
    char get_msg[200];
} from_callback;

static void callback_uses_queue(void *arg)
{
    from_callback *f = arg;
    f->put_rc = weft_queue_put(f->q, "from callback");
    void *item;
    weft_queue_get(f->q, &item); /* takes it back: nothing to wait for */
    f->get_rc = weft_queue_get(f->q, &item);
    snprintf(f->get_msg, sizeof f->get_msg, "%s", weft_errmsg());
    weft_queue_put(f->q, "second");
}

static void *callback_main(void *arg)
{
    (void)arg;
    from_callback f = {.q = weft_queue_new(0)};
    call c = {.q = f.q, .name = "G"};
    weft_task *t = weft_spawn(getter, &c);
    weft_call_later(1, callback_uses_queue, &f);
    cr_expect_eq(weft_await(t, NULL), 0);
    cr_expect_eq(f.put_rc, 0);
    cr_expect_eq(f.get_rc, WEFT_ENOTINLOOP);
    cr_expect_str_eq(f.get_msg, "weft_queue_get must wait, so it must be called from a task of a running "
                                "weft loop (outside a task, use weft_queue_get_nowait)");
    cr_expect(time_is(c.returned_at, 1.0));
    weft_queue_free(f.q);
    return NULL;
}

Test(queue, callbacks_can_put_but_not_wait)
{
    trace_reset();
    cr_assert_eq(run_virtual(callback_main, NULL, NULL), 0);
    cr_assert_str_eq(trace_text, "G=second");
}

/* A task already cancelled gets an item that is there (the call does not suspend,
 * as in asyncio) but -ECANCELED where it would wait. */
static void *self_cancelled(void *arg)
{
    weft_queue *q = arg;
    weft_cancel(weft_current(), NULL);
    void *item = NULL;
    cr_expect_eq(weft_queue_get(q, &item), 0);
    cr_expect_str_eq(item, "there");
    cr_expect_eq(weft_queue_get(q, &item), -ECANCELED);
    cr_expect_eq(weft_queue_size(q), 0);
    return NULL;
}

static void *already_cancelled_main(void *arg)
{
    (void)arg;
    weft_queue *q = weft_queue_new(0);
    weft_queue_put(q, "there");
    cr_expect_eq(weft_await(weft_spawn(self_cancelled, q), NULL), -ECANCELED);
    cr_expect_eq(weft_queue_free(q), 0);
    return NULL;
}

Test(queue, cancelled_task_is_refused_only_where_it_would_wait)
{
    cr_assert_eq(run_virtual(already_cancelled_main, NULL, NULL), 0);
}

/* ---- LIFO and priority order ---------------------------------------------- */

static void *lifo_main(void *arg)
{
    (void)arg;
    weft_queue *q = weft_lifo_queue_new(0);
    const char *items[] = {"1", "2", "3", "4"};
    for (int i = 0; i < 4; i++)
        weft_queue_put(q, (void *)items[i]);
    for (int i = 0; i < 2; i++) {
        void *item;
        weft_queue_get(q, &item);
        trace("%s", (const char *)item);
    }
    weft_queue_put(q, "5");
    while (!weft_queue_empty(q))
        trace("%s", take_now(q));
    /* A getter that waits gets the next item put. */
    call c = {.q = q, .name = "G"};
    weft_task *t = weft_spawn(getter, &c);
    weft_sleep(1);
    weft_queue_put(q, "6");
    await_all(&t, 1);
    weft_queue_free(q);
    return NULL;
}

Test(queue, lifo_queue_gives_the_newest_item_first)
{
    trace_reset();
    cr_assert_eq(run_virtual(lifo_main, NULL, NULL), 0);
    cr_assert_str_eq(trace_text, "4 3 5 2 1 G=6");
}

typedef struct job {
    int priority;
    const char *name;
} job;

static int by_priority(const void *a, const void *b)
{
    const job *x = a, *y = b;
    return (x->priority > y->priority) - (x->priority < y->priority);
}

static void *priority_cmp_main(void *arg)
{
    (void)arg;
    weft_queue *q = weft_priority_queue_new(0, by_priority);
    static job jobs[] = {{3, "c1"}, {1, "a1"}, {2, "b1"}, {1, "a2"}, {3, "c2"}, {2, "b2"},
                         {1, "a3"}, {0, "z"},  {3, "c3"}, {2, "b3"}, {1, "a4"}};
    size_t n = sizeof jobs / sizeof jobs[0];
    for (size_t i = 0; i < n; i++)
        cr_expect_eq(weft_queue_put(q, &jobs[i]), 0);
    cr_expect_eq(weft_queue_size(q), n);
    void *item;
    cr_expect_eq(weft_queue_get(q, &item), 0);
    trace("%s", ((job *)item)->name);
    static job late = {1, "a5"};
    weft_queue_put(q, &late);
    while (weft_queue_get_nowait(q, &item) == 0)
        trace("%s", ((job *)item)->name);
    weft_queue_free(q);
    return NULL;
}

Test(queue, priority_queue_orders_by_cmp_and_keeps_ties_in_insertion_order)
{
    trace_reset();
    cr_assert_eq(run_virtual(priority_cmp_main, NULL, NULL), 0);
    cr_assert_str_eq(trace_text, "z a1 a2 a3 a4 a5 b1 b2 b3 c1 c2 c3");
}

/* Puts its item as an integer priority and traces it. */
static void *putter_int(void *arg)
{
    call *c = arg;
    int rc = weft_queue_put(c->q, c->item);
    finish(c, rc);
    trace("%s put %ld", c->name, (long)(intptr_t)c->item);
    return NULL;
}

static void *priority_int_main(void *arg)
{
    (void)arg;
    weft_queue *q = weft_priority_queue_new(3, NULL);
    cr_expect_eq(weft_queue_put_priority(q, 5), 0);
    cr_expect_eq(weft_queue_put_priority(q, -2), 0);
    cr_expect_eq(weft_queue_put_priority(q, 40), 0);
    cr_expect_eq(weft_queue_put_nowait(q, (void *)(intptr_t)1), WEFT_EFULL);
    call c = {.q = q, .name = "P", .item = (void *)(intptr_t)-7};
    weft_task *t = weft_spawn(putter_int, &c);
    weft_sleep(1);
    for (int i = 0; i < 4; i++) {
        void *item;
        cr_expect_eq(weft_queue_get(q, &item), 0);
        trace("%ld", (long)(intptr_t)item);
        weft_sleep(0);
    }
    await_all(&t, 1);
    weft_queue_free(q);
    return NULL;
}

Test(queue, priority_queue_without_cmp_orders_integers)
{
    trace_reset();
    cr_assert_eq(run_virtual(priority_int_main, NULL, NULL), 0);
    cr_assert_str_eq(trace_text, "-2 P put -7 -7 5 40");
}

/* ---- task_done and join --------------------------------------------------- */

/* Takes items and marks each done `work` seconds later. */
typedef struct worker {
    weft_queue *q;
    double work;
    int handled;
} worker;

static void *work_loop(void *arg)
{
    worker *w = arg;
    for (;;) {
        void *item;
        int rc = weft_queue_get(w->q, &item);
        if (rc != 0)
            return rc == -ESHUTDOWN ? NULL : weft_fail(rc, "get: %s", weft_errmsg());
        weft_sleep(w->work);
        w->handled++;
        cr_expect_eq(weft_queue_task_done(w->q), 0);
    }
}

static void *join_main(void *arg)
{
    (void)arg;
    weft_queue *q = weft_queue_new(0);
    cr_expect_eq(weft_queue_join(q), 0, "nothing was put: join returns at once");
    cr_expect_eq(weft_queue_task_done(q), WEFT_ESTATE);
    cr_expect_str_eq(weft_errmsg(), "weft_queue_task_done: called more times than items were put (no item "
                                    "is waiting to be marked done)");
    for (intptr_t i = 0; i < 5; i++)
        weft_queue_put(q, (void *)i);
    worker w[2] = {{.q = q, .work = 1.0}, {.q = q, .work = 1.5}};
    weft_task *t[2] = {weft_spawn(work_loop, &w[0]), weft_spawn(work_loop, &w[1])};
    call j = {.q = q, .name = "J"};
    weft_task *jt = weft_spawn(joiner, &j);
    cr_expect_eq(weft_queue_join(q), 0);
    /* Items are taken at 0 (w0, w1), 1 (w0), 1.5 (w1) and 2 (w0); the last two are
     * done at 3. */
    cr_expect(time_is(weft_time(), 3.0), "joined at %f", weft_time());
    trace("main joined");
    cr_expect_eq(w[0].handled + w[1].handled, 5);
    cr_expect_eq(weft_await(jt, NULL), 0);
    cr_expect(time_is(j.returned_at, 3.0));
    weft_queue_shutdown(q, false);
    await_all(t, 2);
    cr_expect_eq(weft_queue_task_done(q), WEFT_ESTATE);
    weft_queue_free(q);
    return NULL;
}

Test(queue, join_returns_when_every_item_is_done)
{
    trace_reset();
    cr_assert_eq(run_virtual(join_main, NULL, NULL), 0);
    /* main began to wait first (J had not run yet), so it is woken first. */
    cr_assert_str_eq(trace_text, "main joined J joined:0");
}

static void *cancelled_joiner_main(void *arg)
{
    (void)arg;
    weft_queue *q = weft_queue_new(0);
    weft_queue_put(q, "x");
    call j = {.q = q, .name = "J"};
    weft_task *jt = weft_spawn(joiner, &j);
    weft_sleep(1);
    cr_expect_eq(weft_queue_free(q), -EBUSY);
    weft_cancel(jt, NULL);
    cr_expect_eq(weft_await(jt, NULL), -ECANCELED);
    cr_expect_eq(j.rc, -ECANCELED);
    cr_expect_eq(weft_queue_free(q), 0, "the cancelled joiner left: %s", weft_errmsg());
    return NULL;
}

Test(queue, cancelled_join_stops_waiting)
{
    trace_reset();
    cr_assert_eq(run_virtual(cancelled_joiner_main, NULL, NULL), 0);
    cr_assert_str_eq(trace_text, "J joined:-125");
}

/* ---- shutdown ------------------------------------------------------------- */

static void *drain_main(void *arg)
{
    (void)arg;
    weft_queue *q = weft_queue_new(2);
    weft_queue_put(q, "1");
    weft_queue_put(q, "2");
    call p = {.q = q, .name = "P", .item = "3"};
    call g[3] = {{.q = q, .name = "A", .delay = 2},
                 {.q = q, .name = "B", .delay = 2},
                 {.q = q, .name = "C", .delay = 2}};
    weft_task *pt = weft_spawn(putter, &p);
    weft_task *gt[3];
    for (int i = 0; i < 3; i++)
        gt[i] = weft_spawn(getter, &g[i]);
    weft_sleep(1);
    trace("shutdown");
    weft_queue_shutdown(q, false);
    cr_expect_eq(weft_queue_put_nowait(q, "4"), -ESHUTDOWN);
    cr_expect_str_eq(weft_errmsg(), "weft_queue_put_nowait: the queue was shut down (weft_queue_shutdown); "
                                    "it takes no more items");
    cr_expect_eq(weft_queue_put(q, "4"), -ESHUTDOWN);
    cr_expect_eq(weft_await(pt, NULL), 0);
    cr_expect_eq(p.rc, -ESHUTDOWN);
    cr_expect(time_is(p.returned_at, 1.0));
    cr_expect_str_eq(p.msg, "weft_queue_put: the queue was shut down (weft_queue_shutdown); it takes no "
                            "more items");
    await_all(gt, 3);
    cr_expect_eq(g[2].rc, -ESHUTDOWN);
    cr_expect_str_eq(g[2].msg, "weft_queue_get: the queue was shut down (weft_queue_shutdown) and has no "
                               "items left");
    void *item;
    cr_expect_eq(weft_queue_get_nowait(q, &item), -ESHUTDOWN);
    /* join still waits for the two items taken. */
    cr_expect_eq(weft_queue_task_done(q), 0);
    cr_expect_eq(weft_queue_task_done(q), 0);
    cr_expect_eq(weft_queue_join(q), 0);
    weft_queue_free(q);
    return NULL;
}

Test(queue, shutdown_lets_getters_drain_then_refuses)
{
    trace_reset();
    cr_assert_eq(run_virtual(drain_main, NULL, NULL), 0);
    cr_assert_str_eq(trace_text, "shutdown P:ESHUTDOWN A=1 B=2 C:ESHUTDOWN");
}

static void *drain_waiting_getters_main(void *arg)
{
    (void)arg;
    weft_queue *q = weft_queue_new(0);
    call g[2] = {{.q = q, .name = "A"}, {.q = q, .name = "B"}};
    weft_task *gt[2] = {weft_spawn(getter, &g[0]), weft_spawn(getter, &g[1])};
    weft_sleep(1);
    weft_queue_shutdown(q, false);
    await_all(gt, 2);
    for (int i = 0; i < 2; i++) {
        cr_expect_eq(g[i].rc, -ESHUTDOWN);
        cr_expect(time_is(g[i].returned_at, 1.0));
    }
    weft_queue_free(q);
    return NULL;
}

Test(queue, shutdown_wakes_getters_of_an_empty_queue)
{
    trace_reset();
    cr_assert_eq(run_virtual(drain_waiting_getters_main, NULL, NULL), 0);
    cr_assert_str_eq(trace_text, "A:ESHUTDOWN B:ESHUTDOWN");
}

static void *immediate_main(void *arg)
{
    (void)arg;
    weft_queue *q = weft_queue_new(3);
    weft_queue_put(q, "1");
    weft_queue_put(q, "2");
    weft_queue_put(q, "3");
    void *item;
    cr_expect_eq(weft_queue_get(q, &item), 0); /* taken, not yet done */
    weft_queue_put(q, "4");
    call p = {.q = q, .name = "P", .item = "5"};
    call j = {.q = q, .name = "J"};
    weft_task *pt = weft_spawn(putter, &p);
    weft_task *jt = weft_spawn(joiner, &j);
    weft_sleep(1);
    trace("shutdown");
    weft_queue_shutdown(q, true);
    cr_expect_eq(weft_queue_size(q), 0);
    cr_expect(weft_queue_empty(q));
    cr_expect_eq(weft_queue_get(q, &item), -ESHUTDOWN);
    cr_expect_eq(weft_await(pt, NULL), 0);
    cr_expect_eq(p.rc, -ESHUTDOWN);
    /* The three dropped items count as done; the one taken still needs task_done. */
    weft_sleep(1);
    trace("done");
    cr_expect_eq(weft_queue_task_done(q), 0);
    cr_expect_eq(weft_await(jt, NULL), 0);
    cr_expect(time_is(j.returned_at, 2.0), "joined at %f", j.returned_at);
    weft_queue_free(q);
    return NULL;
}

Test(queue, immediate_shutdown_drops_items_and_counts_them_done)
{
    trace_reset();
    cr_assert_eq(run_virtual(immediate_main, NULL, NULL), 0);
    cr_assert_str_eq(trace_text, "shutdown P:ESHUTDOWN done J joined:0");
}

static void *immediate_getters_main(void *arg)
{
    (void)arg;
    weft_queue *q = weft_queue_new(0);
    weft_queue_put(q, "x");
    call j = {.q = q, .name = "J"};
    call g[2] = {{.q = q, .name = "A", .delay = 0.5}, {.q = q, .name = "B", .delay = 0.5}};
    weft_task *jt = weft_spawn(joiner, &j);
    weft_task *gt[2] = {weft_spawn(getter, &g[0]), weft_spawn(getter, &g[1])};
    weft_sleep(1); /* A took x; B waits; J waits for x to be done */
    trace("shutdown");
    weft_queue_shutdown(q, true);
    await_all(gt, 2);
    cr_expect(time_is(g[1].returned_at, 1.0));
    /* x was taken, not dropped: join waits for its task_done. */
    cr_expect_eq(weft_queue_task_done(q), 0);
    cr_expect_eq(weft_await(jt, NULL), 0);
    weft_queue_free(q);
    return NULL;
}

Test(queue, immediate_shutdown_wakes_blocked_getters)
{
    trace_reset();
    cr_assert_eq(run_virtual(immediate_getters_main, NULL, NULL), 0);
    cr_assert_str_eq(trace_text, "A=x shutdown B:ESHUTDOWN J joined:0");
}

static void *immediate_releases_join_main(void *arg)
{
    (void)arg;
    weft_queue *q = weft_queue_new(0);
    weft_queue_put(q, "x");
    weft_queue_put(q, "y");
    call j = {.q = q, .name = "J"};
    weft_task *jt = weft_spawn(joiner, &j);
    weft_sleep(1);
    weft_queue_shutdown(q, true);
    cr_expect_eq(weft_await(jt, NULL), 0);
    cr_expect(time_is(j.returned_at, 1.0));
    cr_expect_eq(weft_queue_task_done(q), WEFT_ESTATE);
    weft_queue_free(q);
    return NULL;
}

Test(queue, immediate_shutdown_releases_join)
{
    trace_reset();
    cr_assert_eq(run_virtual(immediate_releases_join_main, NULL, NULL), 0);
    cr_assert_str_eq(trace_text, "J joined:0");
}

/* ---- free while in use ---------------------------------------------------- */

static void *busy_main(void *arg)
{
    (void)arg;
    weft_queue *q = weft_queue_new(1);
    call g = {.q = q, .name = "G"};
    weft_task *gt = weft_spawn(getter, &g);
    weft_sleep(1);
    cr_expect_eq(weft_queue_free(q), -EBUSY);
    cr_expect_str_eq(weft_errmsg(), "weft_queue_free: 1 task(s) still wait in a put, get or join on the "
                                    "queue; free it once they have returned (weft_queue_shutdown wakes "
                                    "getters and putters)");
    weft_queue_put(q, "x");
    /* Woken but not yet run: it will still read the queue. */
    cr_expect_eq(weft_queue_free(q), -EBUSY);
    cr_expect_eq(weft_await(gt, NULL), 0);
    cr_expect_eq(weft_queue_free(q), 0);
    return NULL;
}

Test(queue, free_refuses_while_a_task_waits)
{
    trace_reset();
    cr_assert_eq(run_virtual(busy_main, NULL, NULL), 0);
    cr_assert_str_eq(trace_text, "G=x");
}

/* ---- growth --------------------------------------------------------------- */

static void *growth_main(void *arg)
{
    (void)arg;
    weft_queue *q = weft_queue_new(0);
    cr_expect_eq(weft_queue_maxsize(q), 0);
    /* Keep the ring's start moving so that it grows while wrapped round. */
    intptr_t next_in = 0, next_out = 0;
    int mismatches = 0; /* items out of order */
    for (int round = 0; round < 2000; round++) {
        for (int i = 0; i < 7; i++)
            cr_expect_eq(weft_queue_put_nowait(q, (void *)next_in++), 0);
        for (int i = 0; i < 3; i++) {
            void *item;
            cr_expect_eq(weft_queue_get(q, &item), 0);
            mismatches += (intptr_t)item != next_out;
            next_out++;
        }
        cr_expect_not(weft_queue_full(q));
    }
    cr_expect_eq(weft_queue_size(q), (size_t)(next_in - next_out));
    void *item;
    while (weft_queue_get_nowait(q, &item) == 0) {
        mismatches += (intptr_t)item != next_out;
        next_out++;
    }
    cr_expect_eq(next_out, next_in);
    cr_expect_eq(mismatches, 0);
    weft_queue_free(q);

    /* A bounded queue grows as well, up to its maxsize, keeping FIFO order. */
    q = weft_queue_new(1000);
    next_in = next_out = 0;
    for (int round = 0; round < 300; round++) {
        while (!weft_queue_full(q))
            weft_queue_put(q, (void *)next_in++);
        cr_expect_eq(weft_queue_put_nowait(q, NULL), WEFT_EFULL);
        for (int i = 0; i < 333; i++) {
            cr_expect_eq(weft_queue_get_nowait(q, &item), 0);
            mismatches += (intptr_t)item != next_out;
            next_out++;
        }
    }
    cr_expect_eq(weft_queue_size(q), 1000 - 333);
    cr_expect_eq(mismatches, 0);
    weft_queue_free(q);
    return NULL;
}

/* A priority queue of many integers, growing its heap, gives them back sorted. */
static void *priority_growth_main(void *arg)
{
    (void)arg;
    weft_queue *q = weft_priority_queue_new(0, NULL);
    uint32_t x = 12345;
    for (int i = 0; i < 5000; i++) {
        x = 1664525u * x + 1013904223u;
        cr_expect_eq(weft_queue_put_priority(q, (intptr_t)(x % 2001) - 1000), 0);
    }
    intptr_t previous = INTPTR_MIN;
    int out_of_order = 0, taken = 0;
    void *item;
    while (weft_queue_get_nowait(q, &item) == 0) {
        out_of_order += (intptr_t)item < previous;
        previous = (intptr_t)item;
        taken++;
    }
    cr_expect_eq(taken, 5000);
    cr_expect_eq(out_of_order, 0);
    weft_queue_free(q);
    return NULL;
}

Test(queue, priority_queue_grows_and_stays_sorted)
{
    cr_assert_eq(run_virtual(priority_growth_main, NULL, NULL), 0);
}

Test(queue, queues_grow_in_order)
{
    cr_assert_eq(run_virtual(growth_main, NULL, NULL), 0);
}

/* ---- compact tasks: their wait records cannot live on their stacks --------- */

static void *compact_main(void *arg)
{
    (void)arg;
    weft_queue *q = weft_queue_new(1);
    enum { N = 6 };
    call g[N], p[N];
    weft_task *t[2 * N];
    static const char *names[N] = {"0", "1", "2", "3", "4", "5"};
    weft_spawn_options compact = {.compact = 1};
    for (int i = 0; i < N; i++) {
        g[i] = (call){.q = q, .name = names[i]};
        p[i] = (call){.q = q, .name = names[i], .item = (void *)names[i], .delay = 1.0};
        t[i] = weft_spawn_opts(getter, &g[i], &compact);
        t[N + i] = weft_spawn_opts(putter, &p[i], &compact);
    }
    await_all(t, 2 * N);
    for (int i = 0; i < N; i++)
        cr_expect_str_eq(g[i].item, names[i]);
    weft_queue_free(q);
    return NULL;
}

Test(queue, compact_tasks_wait_on_queues)
{
    trace_reset();
    cr_assert_eq(run_virtual(compact_main, NULL, NULL), 0);
}
