/*
 * test_sync.c — Lock, Event, Condition, Semaphore and Barrier as a user sees them:
 * waiters served in arrival order with no barging, what a cancelled waiter takes
 * (nothing) and passes on (what it had just been given), the misuses refused with
 * a message, and the exact virtual times at which each waiter goes on.
 */
#include "common.h"

TestSuite(sync, .timeout = 30);

static weft_task *spawn_named(weft_fn fn, void *arg, const char *name, int compact)
{
    weft_task *t = weft_spawn_opts(fn, arg, &(weft_spawn_options){.name = name, .compact = compact});
    cr_expect_not_null(t, "spawn %s: %s", name, weft_errmsg());
    return t;
}

static bool mentions(const char *text, const char *part)
{
    return strstr(text, part) != NULL;
}

/* ======================================================================== */
/* Lock                                                                     */
/* ======================================================================== */

typedef struct lock_user {
    weft_lock *lock;
    double hold;     /* seconds it keeps the lock */
} lock_user;

/* Acquires, traces "<name>:<rc>@<time>", holds the lock `hold` seconds, releases. */
static void *lock_user_fn(void *arg)
{
    lock_user *u = arg;
    int rc = weft_lock_acquire(u->lock);
    trace("%s:%d@%g", weft_task_name(NULL), rc, weft_time());
    if (rc != 0)
        return NULL;
    weft_sleep(u->hold);
    cr_expect_eq(weft_lock_release(u->lock), 0);
    return NULL;
}

static void *lock_fifo_main(void *arg)
{
    int compact = *(int *)arg;
    weft_lock *lock = weft_lock_new();
    cr_expect_eq(weft_lock_acquire(lock), 0);
    lock_user u = {lock, 1};
    weft_task *t[3] = {spawn_named(lock_user_fn, &u, "W0", compact), spawn_named(lock_user_fn, &u, "W1", compact),
                       spawn_named(lock_user_fn, &u, "W2", compact)};
    weft_yield(); /* all three queue on the held lock */
    cr_expect(weft_lock_locked(lock));
    cr_expect_eq(weft_lock_release(lock), 0);
    /* Released and at once acquired again: the holder queues behind the waiters. */
    cr_expect_eq(weft_lock_acquire(lock), 0);
    trace("holder@%g", weft_time());
    cr_expect_eq(weft_lock_release(lock), 0);
    cr_expect(!weft_lock_locked(lock));
    cr_expect_eq(weft_gather(t, 3, NULL, NULL, 0), 0);
    cr_expect_eq(weft_lock_free(lock), 0);
    return NULL;
}

Test(sync, lock_serves_waiters_fifo_and_the_releaser_queues_behind_them)
{
    int compact = 0;
    trace_reset();
    cr_assert_eq(run_virtual(lock_fifo_main, &compact, NULL), 0);
    cr_assert_str_eq(trace_text, "W0:0@0 W1:0@1 W2:0@2 holder@3");
}

Test(sync, lock_fifo_with_compact_waiters)
{
    int compact = 1;
    trace_reset();
    cr_assert_eq(run_virtual(lock_fifo_main, &compact, NULL), 0);
    cr_assert_str_eq(trace_text, "W0:0@0 W1:0@1 W2:0@2 holder@3");
}

static void *lock_handoff_cancel_main(void *arg)
{
    (void)arg;
    weft_lock *lock = weft_lock_new();
    cr_expect_eq(weft_lock_acquire(lock), 0);
    lock_user u = {lock, 1};
    weft_task *a = spawn_named(lock_user_fn, &u, "A", 0);
    weft_task *b = spawn_named(lock_user_fn, &u, "B", 0);
    weft_sleep(1);
    cr_expect_eq(weft_lock_release(lock), 0); /* A is given the lock... */
    cr_expect(!weft_lock_locked(lock));        /* (as asyncio: not locked until A runs) */
    weft_cancel(a, NULL);                      /* ...and cancelled before it runs */
    cr_expect_eq(weft_await(a, NULL), -ECANCELED);
    cr_expect_eq(weft_await(b, NULL), 0);
    /* Not leaked: free, and taken at once. */
    cr_expect(!weft_lock_locked(lock));
    double before = weft_time();
    cr_expect_eq(weft_lock_acquire(lock), 0);
    cr_expect(time_is(weft_time(), before));
    cr_expect_eq(weft_lock_release(lock), 0);
    cr_expect_eq(weft_lock_free(lock), 0);
    return NULL;
}

Test(sync, lock_handed_to_a_cancelled_waiter_passes_to_the_next)
{
    trace_reset();
    cr_assert_eq(run_virtual(lock_handoff_cancel_main, NULL, NULL), 0);
    cr_assert_str_eq(trace_text, "A:-125@1 B:0@1");
}

static void *lock_release_unlocked_main(void *arg)
{
    (void)arg;
    weft_lock *lock = weft_lock_new();
    cr_expect_eq(weft_lock_release(lock), WEFT_ESTATE);
    cr_expect(mentions(weft_errmsg(), "weft_lock_release: the lock is not locked"), "message: %s", weft_errmsg());
    cr_expect_eq(weft_lock_acquire(lock), 0);
    cr_expect_eq(weft_lock_release(lock), 0);
    cr_expect_eq(weft_lock_release(lock), WEFT_ESTATE, "released twice");
    cr_expect(!weft_lock_locked(lock));
    cr_expect_eq(weft_lock_acquire(NULL), -EINVAL);
    cr_expect(mentions(weft_errmsg(), "NULL"), "message: %s", weft_errmsg());
    cr_expect_eq(weft_lock_release(NULL), -EINVAL);
    cr_expect_eq(weft_lock_free(lock), 0);
    cr_expect_eq(weft_lock_free(NULL), 0);
    return NULL;
}

Test(sync, lock_release_of_an_unlocked_lock_is_refused)
{
    cr_assert_eq(run_virtual(lock_release_unlocked_main, NULL, NULL), 0);
}

static void *lock_cancelled_acquire_main(void *arg)
{
    (void)arg;
    weft_lock *lock = weft_lock_new();
    cr_expect_eq(weft_lock_acquire(lock), 0);
    lock_user u = {lock, 1};
    weft_task *a = spawn_named(lock_user_fn, &u, "A", 0);
    weft_sleep(1);
    cr_expect_eq(weft_lock_free(lock), -EBUSY);
    cr_expect(mentions(weft_errmsg(), "1 task(s) still wait to acquire the lock"), "message: %s", weft_errmsg());
    weft_cancel(a, "A is not needed");
    cr_expect_eq(weft_await(a, NULL), -ECANCELED);
    /* A took nothing: the lock is still ours, and nobody gets it on release. */
    cr_expect(weft_lock_locked(lock));
    cr_expect_eq(weft_lock_release(lock), 0);
    cr_expect(!weft_lock_locked(lock));
    cr_expect_eq(weft_lock_free(lock), 0);
    return NULL;
}

Test(sync, lock_cancelled_acquire_takes_nothing)
{
    trace_reset();
    cr_assert_eq(run_virtual(lock_cancelled_acquire_main, NULL, NULL), 0);
    cr_assert_str_eq(trace_text, "A:-125@1");
}

/* asyncio's locked(): false from the release until the waiter it went to runs; a
 * second release in between is refused (the lock is not ours any more), and a task
 * that acquires meanwhile still queues behind the waiter. */
static void *lock_locked_after_release_main(void *arg)
{
    (void)arg;
    weft_lock *lock = weft_lock_new();
    cr_expect_eq(weft_lock_acquire(lock), 0);
    lock_user u = {lock, 1};
    weft_task *w = spawn_named(lock_user_fn, &u, "W", 0);
    weft_yield(); /* W queues */
    cr_expect(weft_lock_locked(lock));
    cr_expect_eq(weft_lock_release(lock), 0);
    cr_expect(!weft_lock_locked(lock), "locked() after a release to a waiter that has not run");
    cr_expect_eq(weft_lock_release(lock), WEFT_ESTATE);
    weft_task *late = spawn_named(lock_user_fn, &u, "late", 0);
    weft_yield(); /* W runs and holds it; late queues */
    cr_expect(weft_lock_locked(lock));
    cr_expect_eq(weft_await(w, NULL), 0);
    cr_expect_eq(weft_await(late, NULL), 0);
    cr_expect(!weft_lock_locked(lock));
    cr_expect_eq(weft_lock_free(lock), 0);
    return NULL;
}

Test(sync, lock_locked_is_false_between_release_and_the_waiter_running)
{
    trace_reset();
    cr_assert_eq(run_virtual(lock_locked_after_release_main, NULL, NULL), 0);
    cr_assert_str_eq(trace_text, "W:0@0 late:0@1");
}

/* A timeout scope around an acquire: the lock is not taken, -ETIMEDOUT at the deadline. */
static void *lock_timeout_main(void *arg)
{
    (void)arg;
    weft_lock *lock = weft_lock_new();
    lock_user u = {lock, 5};
    weft_task *holder = spawn_named(lock_user_fn, &u, "holder", 0);
    weft_yield(); /* the holder has it for 5 s */
    weft_timeout *to = weft_timeout_enter(2);
    int rc = weft_timeout_exit(to, weft_lock_acquire(lock));
    cr_expect_eq(rc, -ETIMEDOUT);
    cr_expect(time_is(weft_time(), 2), "at %g", weft_time());
    cr_expect(!weft_cancelled());
    cr_expect_eq(weft_await(holder, NULL), 0);
    cr_expect(!weft_lock_locked(lock), "the timed-out acquire took the lock after all");
    cr_expect_eq(weft_lock_free(lock), 0);
    return NULL;
}

Test(sync, lock_acquire_in_an_expired_timeout_scope_takes_nothing)
{
    trace_reset();
    cr_assert_eq(run_virtual(lock_timeout_main, NULL, NULL), 0);
    cr_assert_str_eq(trace_text, "holder:0@0");
}

/* Waits that can never end are refused at once with -EDEADLK, naming the tasks,
 * where asyncio (and weft before) waited forever: a task acquiring a lock it
 * holds, two tasks each holding the lock the other wants. */
static weft_lock *lock_a, *lock_b;

static void *takes_b_then_a(void *arg)
{
    (void)arg;
    cr_expect_eq(weft_lock_acquire(lock_b), 0);
    weft_sleep(1);
    int rc = weft_lock_acquire(lock_a); /* main holds a and waits for b */
    trace("B:%d", rc);
    if (rc == 0)
        weft_lock_release(lock_a);
    weft_lock_release(lock_b);
    return NULL;
}

static void *lock_cycle_main(void *arg)
{
    (void)arg;
    lock_a = weft_lock_new();
    lock_b = weft_lock_new();
    cr_expect_eq(weft_lock_acquire(lock_a), 0);
    cr_expect_eq(weft_lock_acquire(lock_a), -EDEADLK);
    cr_expect(mentions(weft_errmsg(), "already holds this lock"), "message: %s", weft_errmsg());
    weft_task *b = spawn_named(takes_b_then_a, NULL, "B", 0);
    weft_yield(); /* B holds b */
    int rc = weft_lock_acquire(lock_b); /* waits: B does not wait for anything yet */
    trace("main:%d@%g", rc, weft_time());
    weft_lock_release(lock_b);
    weft_lock_release(lock_a);
    cr_expect_eq(weft_await(b, NULL), 0);
    weft_lock_free(lock_a);
    weft_lock_free(lock_b);
    return NULL;
}

Test(sync, a_lock_wait_that_could_never_end_is_refused)
{
    trace_reset();
    cr_assert_eq(run_virtual(lock_cycle_main, NULL, NULL), 0);
    /* B, at 1 s, would wait for a held by main, which waits for b held by B. */
    cr_assert_str_eq(trace_text, "B:-35 main:0@1");
}

/* ======================================================================== */
/* Event                                                                    */
/* ======================================================================== */

static void *event_waiter_fn(void *arg)
{
    int rc = weft_event_wait(arg);
    trace("%s:%d@%g", weft_task_name(NULL), rc, weft_time());
    return NULL;
}

static void *event_set_clear_main(void *arg)
{
    (void)arg;
    weft_event *ev = weft_event_new();
    cr_expect(!weft_event_is_set(ev));
    weft_task *t[3] = {spawn_named(event_waiter_fn, ev, "W0", 0), spawn_named(event_waiter_fn, ev, "W1", 1),
                       spawn_named(event_waiter_fn, ev, "W2", 0)};
    weft_sleep(1);
    cr_expect_eq(weft_event_free(ev), -EBUSY);
    cr_expect(mentions(weft_errmsg(), "3 task(s) still wait for the event"), "message: %s", weft_errmsg());
    weft_event_set(ev);
    cr_expect(weft_event_is_set(ev));
    weft_event_clear(ev); /* before any waiter has run */
    trace("set+clear");
    cr_expect_eq(weft_gather(t, 3, NULL, NULL, 0), 0);
    cr_expect(!weft_event_is_set(ev));
    /* Cleared: a new waiter waits again, until cancelled. */
    weft_task *late = spawn_named(event_waiter_fn, ev, "late", 0);
    weft_sleep(1);
    weft_cancel(late, NULL);
    cr_expect_eq(weft_await(late, NULL), -ECANCELED);
    cr_expect_eq(weft_event_free(ev), 0);
    return NULL;
}

Test(sync, event_set_then_cleared_still_wakes_every_waiter)
{
    trace_reset();
    cr_assert_eq(run_virtual(event_set_clear_main, NULL, NULL), 0);
    cr_assert_str_eq(trace_text, "set+clear W0:0@1 W1:0@1 W2:0@1 late:-125@2");
}

static void *tracer_fn(void *arg)
{
    trace("%s", (const char *)arg);
    return NULL;
}

static void *event_set_no_suspend_main(void *arg)
{
    (void)arg;
    weft_event *ev = weft_event_new();
    weft_task *other = spawn_named(tracer_fn, "other", "other", 0);
    weft_event_set(ev);
    weft_event_set(ev); /* setting a set event changes nothing */
    cr_expect_eq(weft_event_wait(ev), 0);
    trace("waited");
    cr_expect_eq(weft_event_wait(ev), 0);
    trace("again");
    cr_expect_eq(weft_await(other, NULL), 0);
    /* Waiters woken by set do not touch the event again: it can go at once. */
    weft_task *w = spawn_named(event_waiter_fn, ev, "W", 0);
    weft_event_clear(ev);
    weft_yield();
    weft_event_set(ev);
    cr_expect_eq(weft_event_free(ev), 0);
    cr_expect_eq(weft_await(w, NULL), 0);
    cr_expect_eq(weft_event_wait(NULL), -EINVAL);
    return NULL;
}

Test(sync, event_wait_on_a_set_event_does_not_suspend)
{
    trace_reset();
    cr_assert_eq(run_virtual(event_set_no_suspend_main, NULL, NULL), 0);
    cr_assert_str_eq(trace_text, "waited again other W:0@0");
}

/* ======================================================================== */
/* Condition                                                                */
/* ======================================================================== */

typedef struct cond_user {
    weft_cond *cond;
    double hold;     /* seconds it keeps the lock after its wait returned */
} cond_user;

/* Takes the lock, waits once, traces "<name>:<rc>@<time>" and whether it holds
 * the lock then (only the holder may notify), keeps it `hold` s, releases it. */
static void *cond_waiter_fn(void *arg)
{
    cond_user *u = arg;
    weft_lock *lock = weft_cond_lock(u->cond);
    cr_expect_eq(weft_lock_acquire(lock), 0);
    int rc = weft_cond_wait(u->cond);
    bool holds = weft_cond_notify(u->cond, 0) == 0;
    trace("%s:%d@%g%s", weft_task_name(NULL), rc, weft_time(), holds ? "" : ":LOCK-NOT-HELD");
    weft_sleep(u->hold);
    cr_expect_eq(weft_lock_release(lock), 0);
    return NULL;
}

static void *cond_notify_one_main(void *arg)
{
    (void)arg;
    weft_cond *cond = weft_cond_new(NULL);
    weft_lock *lock = weft_cond_lock(cond);
    cond_user u = {cond, 0};
    weft_task *t[3] = {spawn_named(cond_waiter_fn, &u, "W0", 0), spawn_named(cond_waiter_fn, &u, "W1", 1),
                       spawn_named(cond_waiter_fn, &u, "W2", 0)};
    weft_sleep(1);
    cr_expect(!weft_lock_locked(lock), "every waiter let the lock go");
    cr_expect_eq(weft_lock_acquire(lock), 0);
    cr_expect_eq(weft_cond_notify(cond, 0), 0); /* wakes none */
    cr_expect_eq(weft_lock_release(lock), 0);
    weft_sleep(1);
    for (int i = 0; i < 3; i++) {
        cr_expect_eq(weft_lock_acquire(lock), 0);
        cr_expect_eq(weft_cond_notify(cond, 1), 0);
        trace("notify@%g", weft_time());
        cr_expect_eq(weft_lock_release(lock), 0);
        weft_sleep(1);
    }
    cr_expect_eq(weft_gather(t, 3, NULL, NULL, 0), 0);
    cr_expect_eq(weft_cond_free(cond), 0);
    return NULL;
}

Test(sync, cond_notify_one_wakes_waiters_in_fifo_order)
{
    trace_reset();
    cr_assert_eq(run_virtual(cond_notify_one_main, NULL, NULL), 0);
    cr_assert_str_eq(trace_text, "notify@2 W0:0@2 notify@3 W1:0@3 notify@4 W2:0@4");
}

static void *cond_notify_all_main(void *arg)
{
    (void)arg;
    weft_lock *lock = weft_lock_new();
    weft_cond *cond = weft_cond_new(lock);
    cr_expect_eq(weft_cond_lock(cond), lock);
    cond_user u = {cond, 1};
    weft_task *t[3] = {spawn_named(cond_waiter_fn, &u, "W0", 0), spawn_named(cond_waiter_fn, &u, "W1", 0),
                       spawn_named(cond_waiter_fn, &u, "W2", 0)};
    weft_sleep(1);
    cr_expect_eq(weft_lock_acquire(lock), 0);
    cr_expect_eq(weft_cond_notify_all(cond), 0);
    trace("notify_all");
    weft_sleep(1); /* they are notified but cannot return before the lock is free */
    cr_expect_eq(weft_lock_release(lock), 0);
    cr_expect_eq(weft_gather(t, 3, NULL, NULL, 0), 0);
    cr_expect_eq(weft_cond_free(cond), 0);
    cr_expect(!weft_lock_locked(lock));
    cr_expect_eq(weft_lock_free(lock), 0); /* the condition did not own it */
    return NULL;
}

Test(sync, cond_notify_all_wakes_all_and_each_returns_holding_the_lock)
{
    trace_reset();
    cr_assert_eq(run_virtual(cond_notify_all_main, NULL, NULL), 0);
    /* Each holds the lock 1 s after its wait: they return one after another. */
    cr_assert_str_eq(trace_text, "notify_all W0:0@2 W1:0@3 W2:0@4");
}

typedef struct counter_state {
    weft_cond *cond;
    int count;
    int pred_calls;
    bool pred_saw_lock_held;
} counter_state;

static bool count_reached_3(void *arg)
{
    counter_state *s = arg;
    s->pred_calls++;
    if (!weft_lock_locked(weft_cond_lock(s->cond)))
        s->pred_saw_lock_held = false;
    return s->count >= 3;
}

static void *counter_producer(void *arg)
{
    counter_state *s = arg;
    for (int i = 0; i < 5; i++) {
        weft_sleep(1);
        cr_expect_eq(weft_lock_acquire(weft_cond_lock(s->cond)), 0);
        s->count++;
        cr_expect_eq(weft_cond_notify_all(s->cond), 0);
        cr_expect_eq(weft_lock_release(weft_cond_lock(s->cond)), 0);
    }
    return NULL;
}

static void *cond_wait_for_main(void *arg)
{
    counter_state *s = arg;
    s->cond = weft_cond_new(NULL);
    s->pred_saw_lock_held = true;
    weft_task *p = spawn_named(counter_producer, s, "producer", 0);
    cr_expect_eq(weft_lock_acquire(weft_cond_lock(s->cond)), 0);
    cr_expect_eq(weft_cond_wait_for(s->cond, count_reached_3, s), 0);
    cr_expect(time_is(weft_time(), 3), "at %g", weft_time());
    cr_expect_eq(s->count, 3);
    cr_expect_eq(weft_cond_notify(s->cond, 1), 0, "wait_for returned without the lock");
    /* Already true: returns at once. */
    cr_expect_eq(weft_cond_wait_for(s->cond, count_reached_3, s), 0);
    cr_expect(time_is(weft_time(), 3));
    cr_expect_eq(weft_cond_wait_for(s->cond, NULL, NULL), -EINVAL);
    cr_expect_eq(weft_lock_release(weft_cond_lock(s->cond)), 0);
    cr_expect_eq(weft_await(p, NULL), 0);
    cr_expect_eq(weft_cond_free(s->cond), 0);
    return NULL;
}

Test(sync, cond_wait_for_returns_when_the_predicate_holds)
{
    counter_state s = {0};
    cr_assert_eq(run_virtual(cond_wait_for_main, &s, NULL), 0);
    /* Checked once at the start, then after each of the 3 notifications, and once
     * by the second call. */
    cr_assert_eq(s.pred_calls, 5);
    cr_assert(s.pred_saw_lock_held);
}

static void *lock_holder_fn(void *arg)
{
    weft_lock *lock = arg;
    cr_expect_eq(weft_lock_acquire(lock), 0);
    weft_sleep(2);
    cr_expect_eq(weft_lock_release(lock), 0);
    return NULL;
}

static bool never(void *arg)
{
    (void)arg;
    return false;
}

static void *cond_without_lock_main(void *arg)
{
    (void)arg;
    weft_cond *cond = weft_cond_new(NULL);
    cr_expect_eq(weft_cond_wait(cond), WEFT_ESTATE);
    cr_expect(mentions(weft_errmsg(), "weft_cond_wait: the calling task does not hold the condition's lock"),
              "message: %s", weft_errmsg());
    cr_expect_eq(weft_cond_wait_for(cond, never, NULL), WEFT_ESTATE);
    cr_expect_eq(weft_cond_notify(cond, 1), WEFT_ESTATE);
    cr_expect(mentions(weft_errmsg(), "weft_cond_notify:"), "message: %s", weft_errmsg());
    cr_expect_eq(weft_cond_notify_all(cond), WEFT_ESTATE);
    cr_expect(mentions(weft_errmsg(), "weft_cond_notify_all:"), "message: %s", weft_errmsg());

    /* Locked by another task is not held by the caller. */
    weft_task *h = spawn_named(lock_holder_fn, weft_cond_lock(cond), "holder", 0);
    weft_sleep(1);
    cr_expect(weft_lock_locked(weft_cond_lock(cond)));
    cr_expect_eq(weft_cond_notify(cond, 1), WEFT_ESTATE);
    cr_expect(mentions(weft_errmsg(), "(another task holds it)"), "message: %s", weft_errmsg());
    cr_expect_eq(weft_cond_wait(cond), WEFT_ESTATE);
    cr_expect(time_is(weft_time(), 1), "a refused wait suspended");
    cr_expect_eq(weft_await(h, NULL), 0);
    cr_expect_eq(weft_cond_wait(NULL), -EINVAL);
    cr_expect_eq(weft_cond_free(cond), 0);
    return NULL;
}

Test(sync, cond_wait_or_notify_without_the_lock_is_refused)
{
    cr_assert_eq(run_virtual(cond_without_lock_main, NULL, NULL), 0);
}

static void *cond_cancelled_wait_main(void *arg)
{
    (void)arg;
    weft_cond *cond = weft_cond_new(NULL);
    weft_lock *lock = weft_cond_lock(cond);
    cond_user u = {cond, 1};
    weft_task *w = spawn_named(cond_waiter_fn, &u, "W", 0);
    weft_sleep(1);
    cr_expect_eq(weft_lock_acquire(lock), 0);
    weft_cancel(w, NULL);
    weft_sleep(1); /* W must wait for the lock even though it is cancelled */
    trace("release@%g", weft_time());
    cr_expect_eq(weft_lock_release(lock), 0);
    cr_expect_eq(weft_await(w, NULL), -ECANCELED);
    cr_expect(!weft_lock_locked(lock));
    cr_expect_eq(weft_cond_free(cond), 0);
    return NULL;
}

Test(sync, cond_cancelled_wait_returns_holding_the_lock)
{
    trace_reset();
    cr_assert_eq(run_virtual(cond_cancelled_wait_main, NULL, NULL), 0);
    cr_assert_str_eq(trace_text, "release@2 W:-125@2");
}

/* Cancelled while its wait's deadline runs: -ETIMEDOUT, with the lock held. */
static void *cond_timeout_main(void *arg)
{
    (void)arg;
    weft_cond *cond = weft_cond_new(NULL);
    weft_lock *lock = weft_cond_lock(cond);
    weft_task *h = spawn_named(lock_holder_fn, lock, "holder", 0);
    cr_expect_eq(weft_lock_acquire(lock), 0);
    weft_yield(); /* holder queues for the lock */
    weft_timeout *to = weft_timeout_enter(1);
    int rc = weft_timeout_exit(to, weft_cond_wait(cond));
    cr_expect_eq(rc, -ETIMEDOUT);
    /* The holder took the lock at 0 when the wait let it go; we got it back at 2. */
    cr_expect(time_is(weft_time(), 2), "at %g", weft_time());
    cr_expect(!weft_cancelled());
    cr_expect_eq(weft_cond_notify(cond, 1), 0, "not holding the lock after the wait");
    cr_expect_eq(weft_lock_release(lock), 0);
    cr_expect_eq(weft_await(h, NULL), 0);
    cr_expect_eq(weft_cond_free(cond), 0);
    return NULL;
}

Test(sync, cond_wait_in_a_timeout_scope_gives_etimedout_with_the_lock)
{
    cr_assert_eq(run_virtual(cond_timeout_main, NULL, NULL), 0);
}

static void *cond_notification_passes_main(void *arg)
{
    int cancel_while_reacquiring = *(int *)arg;
    weft_cond *cond = weft_cond_new(NULL);
    weft_lock *lock = weft_cond_lock(cond);
    cond_user u = {cond, 0};
    weft_task *w0 = spawn_named(cond_waiter_fn, &u, "W0", 0);
    weft_task *w1 = spawn_named(cond_waiter_fn, &u, "W1", 0);
    weft_sleep(1);
    cr_expect_eq(weft_lock_acquire(lock), 0);
    cr_expect_eq(weft_cond_notify(cond, 1), 0); /* W0 is notified... */
    if (cancel_while_reacquiring)
        weft_yield();                            /* ...and now queues for the lock */
    weft_cancel(w0, NULL);                       /* ...then cancelled */
    cr_expect_eq(weft_lock_release(lock), 0);
    weft_sleep(1);
    /* If the notification was lost, W1 still waits: end it so the test reports. */
    weft_cancel(w1, NULL);
    cr_expect_eq(weft_await(w0, NULL), -ECANCELED);
    weft_await(w1, NULL);
    cr_expect_eq(weft_cond_free(cond), 0);
    return NULL;
}

Test(sync, cond_notification_taken_by_a_cancelled_waiter_passes_on)
{
    int cancel_while_reacquiring = 0;
    trace_reset();
    cr_assert_eq(run_virtual(cond_notification_passes_main, &cancel_while_reacquiring, NULL), 0);
    cr_assert_str_eq(trace_text, "W0:-125@1 W1:0@1");
}

Test(sync, cond_notification_passes_on_when_cancelled_while_reacquiring)
{
    int cancel_while_reacquiring = 1;
    trace_reset();
    cr_assert_eq(run_virtual(cond_notification_passes_main, &cancel_while_reacquiring, NULL), 0);
    cr_assert_str_eq(trace_text, "W0:-125@1 W1:0@1");
}

/* ======================================================================== */
/* Semaphore                                                                */
/* ======================================================================== */

typedef struct sem_room {
    weft_sem *sem;
    int inside, max_inside;
} sem_room;

typedef struct sem_guest {
    sem_room *room;
    const char *name;
    double arrive;   /* seconds before it asks */
    double stay;     /* seconds it keeps its permit */
} sem_guest;

static void *sem_guest_fn(void *arg)
{
    sem_guest *g = arg;
    sem_room *r = g->room;
    weft_sleep(g->arrive);
    int rc = weft_sem_acquire(r->sem);
    trace("%s:%d@%g", g->name, rc, weft_time());
    if (rc != 0)
        return NULL;
    if (++r->inside > r->max_inside)
        r->max_inside = r->inside;
    weft_sleep(g->stay);
    r->inside--;
    cr_expect_eq(weft_sem_release(r->sem), 0);
    return NULL;
}

static void *sem_four_main(void *arg)
{
    sem_room *r = arg;
    r->sem = weft_sem_new(2);
    cr_expect_eq(weft_sem_value(r->sem), 2);
    /* G3 asks before G2: they are served in the order they asked. */
    sem_guest g[4] = {{r, "G0", 0, 5}, {r, "G1", 0, 5}, {r, "G2", 2, 1}, {r, "G3", 1, 1}};
    weft_task *t[4];
    for (int i = 0; i < 4; i++)
        t[i] = spawn_named(sem_guest_fn, &g[i], g[i].name, i % 2);
    weft_sleep(3);
    cr_expect(weft_sem_locked(r->sem));
    cr_expect_eq(weft_sem_value(r->sem), 0);
    cr_expect_eq(weft_sem_free(r->sem), -EBUSY);
    cr_expect(mentions(weft_errmsg(), "2 task(s) still wait to acquire the semaphore"), "message: %s",
              weft_errmsg());
    cr_expect_eq(weft_gather(t, 4, NULL, NULL, 0), 0);
    cr_expect_eq(weft_sem_value(r->sem), 2);
    cr_expect(!weft_sem_locked(r->sem));
    cr_expect_eq(weft_sem_free(r->sem), 0);
    return NULL;
}

Test(sync, semaphore_of_two_admits_two_at_a_time_in_fifo_order)
{
    sem_room r = {0};
    trace_reset();
    cr_assert_eq(run_virtual(sem_four_main, &r, NULL), 0);
    cr_assert_eq(r.max_inside, 2);
    cr_assert_str_eq(trace_text, "G0:0@0 G1:0@0 G3:0@5 G2:0@5");
}

static void *sem_no_barging_main(void *arg)
{
    (void)arg;
    sem_room r = {weft_sem_new(1), 0, 0};
    cr_expect_eq(weft_sem_acquire(r.sem), 0);
    sem_guest g = {&r, "W", 0, 1};
    weft_task *w = spawn_named(sem_guest_fn, &g, "W", 1);
    weft_sleep(0.5); /* W queues */
    cr_expect_eq(weft_sem_release(r.sem), 0);
    /* The permit went to W, not back to the pool: asking again waits behind W. */
    cr_expect_eq(weft_sem_value(r.sem), 0);
    cr_expect(weft_sem_locked(r.sem));
    cr_expect_eq(weft_sem_acquire(r.sem), 0);
    trace("M@%g", weft_time());
    cr_expect_eq(weft_sem_release(r.sem), 0);
    cr_expect_eq(weft_await(w, NULL), 0);
    cr_expect_eq(weft_sem_free(r.sem), 0);
    return NULL;
}

Test(sync, semaphore_releaser_does_not_barge_ahead_of_waiters)
{
    trace_reset();
    cr_assert_eq(run_virtual(sem_no_barging_main, NULL, NULL), 0);
    cr_assert_str_eq(trace_text, "W:0@0.5 M@1.5");
}

static void *sem_handoff_cancel_main(void *arg)
{
    (void)arg;
    sem_room r = {weft_sem_new(1), 0, 0};
    cr_expect_eq(weft_sem_acquire(r.sem), 0);
    sem_guest ga = {&r, "A", 0, 1}, gb = {&r, "B", 0, 1}, gc = {&r, "C", 0, 1};
    weft_task *a = spawn_named(sem_guest_fn, &ga, "A", 0);
    weft_task *b = spawn_named(sem_guest_fn, &gb, "B", 0);
    weft_task *c = spawn_named(sem_guest_fn, &gc, "C", 0);
    weft_sleep(1);
    weft_cancel(b, NULL);                     /* cancelled while queued: takes nothing */
    cr_expect_eq(weft_sem_release(r.sem), 0); /* A is given the permit... */
    weft_cancel(a, NULL);                     /* ...and cancelled before it runs: C gets it */
    weft_task *t[3] = {a, b, c};
    int errs[3];
    cr_expect_eq(weft_gather(t, 3, NULL, errs, WEFT_RETURN_EXCEPTIONS), 0);
    cr_expect_eq(errs[0], -ECANCELED);
    cr_expect_eq(errs[1], -ECANCELED);
    cr_expect_eq(errs[2], 0);
    cr_expect_eq(weft_sem_value(r.sem), 1, "a permit was lost");
    cr_expect_eq(weft_sem_free(r.sem), 0);
    return NULL;
}

Test(sync, semaphore_permit_handed_to_a_cancelled_waiter_passes_on)
{
    trace_reset();
    cr_assert_eq(run_virtual(sem_handoff_cancel_main, NULL, NULL), 0);
    cr_assert_str_eq(trace_text, "B:-125@1 A:-125@1 C:0@1");
}

static void *sem_bounded_main(void *arg)
{
    (void)arg;
    weft_sem *b = weft_bounded_sem_new(1);
    cr_expect_eq(weft_sem_release(b), WEFT_ESTATE);
    cr_expect(mentions(weft_errmsg(), "released more times than it was acquired"), "message: %s", weft_errmsg());
    cr_expect_eq(weft_sem_value(b), 1);
    cr_expect_eq(weft_sem_acquire(b), 0);
    cr_expect_eq(weft_sem_value(b), 0);
    cr_expect_eq(weft_sem_release(b), 0);
    cr_expect_eq(weft_sem_release(b), WEFT_ESTATE);
    cr_expect_eq(weft_sem_value(b), 1);
    cr_expect_eq(weft_sem_free(b), 0);

    /* An unbounded one may grow past its initial value. */
    weft_sem *s = weft_sem_new(1);
    cr_expect_eq(weft_sem_release(s), 0);
    cr_expect_eq(weft_sem_value(s), 2);
    cr_expect_eq(weft_sem_free(s), 0);

    /* A semaphore of 0 permits is locked until released. */
    weft_sem *z = weft_sem_new(0);
    cr_expect(weft_sem_locked(z));
    cr_expect_eq(weft_sem_free(z), 0);

    cr_expect_null(weft_sem_new(-1));
    cr_expect(mentions(weft_errmsg(), "weft_sem_new: the initial value -1 is negative"), "message: %s",
              weft_errmsg());
    cr_expect_null(weft_bounded_sem_new(-3));
    cr_expect(mentions(weft_errmsg(), "weft_bounded_sem_new: the initial value -3 is negative"), "message: %s",
              weft_errmsg());
    cr_expect_eq(weft_sem_acquire(NULL), -EINVAL);
    cr_expect_eq(weft_sem_release(NULL), -EINVAL);
    cr_expect_eq(weft_sem_free(NULL), 0);
    return NULL;
}

Test(sync, bounded_semaphore_over_release_and_negative_values_are_refused)
{
    cr_assert_eq(run_virtual(sem_bounded_main, NULL, NULL), 0);
}

/* ======================================================================== */
/* Barrier                                                                  */
/* ======================================================================== */

typedef struct party {
    weft_barrier *b;
    double delay[2];  /* before each of its two rounds */
} party;

static void *party_fn(void *arg)
{
    party *p = arg;
    for (int round = 1; round <= 2; round++) {
        weft_sleep(p->delay[round - 1]);
        int rc = weft_barrier_wait(p->b);
        trace("%s:%d:%d@%g", weft_task_name(NULL), round, rc, weft_time());
        if (rc < 0)
            return NULL;
    }
    return NULL;
}

static void *barrier_cyclic_main(void *arg)
{
    (void)arg;
    weft_barrier *b = weft_barrier_new(3);
    party p[3] = {{b, {0, 3}}, {b, {1, 2}}, {b, {2, 1}}};
    weft_task *t[3] = {spawn_named(party_fn, &p[0], "P0", 0), spawn_named(party_fn, &p[1], "P1", 1),
                       spawn_named(party_fn, &p[2], "P2", 0)};
    weft_sleep(1.5);
    cr_expect_eq(weft_barrier_n_waiting(b), 2);
    cr_expect(!weft_barrier_broken(b));
    weft_sleep(1);
    cr_expect_eq(weft_barrier_n_waiting(b), 0, "the barrier is empty again after a round");
    cr_expect_eq(weft_gather(t, 3, NULL, NULL, 0), 0);
    cr_expect_eq(weft_barrier_free(b), 0);
    return NULL;
}

Test(sync, barrier_gives_arrival_indices_and_is_cyclic)
{
    trace_reset();
    cr_assert_eq(run_virtual(barrier_cyclic_main, NULL, NULL), 0);
    /* The last to arrive goes on without suspending; in round 2 they arrive in the
     * opposite order. */
    cr_assert_str_eq(trace_text, "P2:1:2@2 P0:1:0@2 P1:1:1@2 P0:2:2@5 P2:2:0@5 P1:2:1@5");
}

static void *barrier_once_fn(void *arg)
{
    int rc = weft_barrier_wait(arg);
    trace("%s:%d@%g", weft_task_name(NULL), rc, weft_time());
    if (rc == WEFT_EBROKEN)
        cr_expect(mentions(weft_errmsg(), "aborted or reset while"), "message: %s", weft_errmsg());
    return NULL;
}

static void *barrier_abort_reset_main(void *arg)
{
    (void)arg;
    weft_barrier *b = weft_barrier_new(3);
    weft_task *a = spawn_named(barrier_once_fn, b, "A", 0);
    weft_task *bb = spawn_named(barrier_once_fn, b, "B", 0);
    weft_sleep(1);
    weft_barrier_abort(b);
    cr_expect(weft_barrier_broken(b));
    cr_expect_eq(weft_barrier_n_waiting(b), 0);
    cr_expect_eq(weft_barrier_wait(b), WEFT_EBROKEN, "a broken barrier refuses new waits");
    cr_expect(mentions(weft_errmsg(), "the barrier is broken"), "message: %s", weft_errmsg());
    cr_expect_eq(weft_await(a, NULL), 0);
    cr_expect_eq(weft_await(bb, NULL), 0);

    weft_barrier_reset(b);
    cr_expect(!weft_barrier_broken(b));
    weft_task *c = spawn_named(barrier_once_fn, b, "C", 0);
    weft_task *d = spawn_named(barrier_once_fn, b, "D", 0);
    weft_sleep(1);
    weft_barrier_reset(b); /* breaks the current round only */
    cr_expect(!weft_barrier_broken(b));
    cr_expect_eq(weft_await(c, NULL), 0);
    cr_expect_eq(weft_await(d, NULL), 0);

    weft_task *e = spawn_named(barrier_once_fn, b, "E", 0);
    weft_task *f = spawn_named(barrier_once_fn, b, "F", 0);
    weft_sleep(1);
    int rc = weft_barrier_wait(b);
    trace("M:%d@%g", rc, weft_time());
    cr_expect_eq(weft_await(e, NULL), 0);
    cr_expect_eq(weft_await(f, NULL), 0);
    cr_expect_eq(weft_barrier_free(b), 0);
    return NULL;
}

Test(sync, barrier_abort_and_reset_break_waits)
{
    trace_reset();
    cr_assert_eq(run_virtual(barrier_abort_reset_main, NULL, NULL), 0);
    cr_assert_str_eq(trace_text, "A:-10008@1 B:-10008@1 C:-10008@2 D:-10008@2 M:2@3 E:0@3 F:1@3");
}

static void *barrier_cancelled_party_main(void *arg)
{
    (void)arg;
    weft_barrier *b = weft_barrier_new(3);
    weft_task *a = spawn_named(barrier_once_fn, b, "A", 0);
    weft_task *bb = spawn_named(barrier_once_fn, b, "B", 1);
    weft_sleep(1);
    weft_cancel(a, NULL);
    cr_expect_eq(weft_await(a, NULL), -ECANCELED);
    cr_expect_eq(weft_barrier_n_waiting(b), 1);
    cr_expect(!weft_barrier_broken(b));
    weft_task *c = spawn_named(barrier_once_fn, b, "C", 0);
    weft_sleep(1);
    int rc = weft_barrier_wait(b);
    trace("M:%d@%g", rc, weft_time());
    cr_expect_eq(weft_await(bb, NULL), 0);
    cr_expect_eq(weft_await(c, NULL), 0);
    cr_expect_eq(weft_barrier_free(b), 0);
    return NULL;
}

Test(sync, barrier_cancelled_party_leaves_without_breaking_it)
{
    trace_reset();
    cr_assert_eq(run_virtual(barrier_cancelled_party_main, NULL, NULL), 0);
    /* B and C wait, in that order, and are indexed by their places: 0 and 1. */
    cr_assert_str_eq(trace_text, "A:-125@1 M:2@2 B:0@2 C:1@2");
}

static void *barrier_misuse_main(void *arg)
{
    (void)arg;
    cr_expect_null(weft_barrier_new(0));
    cr_expect(mentions(weft_errmsg(), "weft_barrier_new: 0 parties"), "message: %s", weft_errmsg());
    weft_barrier *one = weft_barrier_new(1);
    cr_expect_eq(weft_barrier_wait(one), 0);
    cr_expect_eq(weft_barrier_wait(one), 0);
    cr_expect_eq(weft_barrier_free(one), 0);
    cr_expect_eq(weft_barrier_wait(NULL), -EINVAL);
    weft_barrier_abort(NULL);
    weft_barrier_reset(NULL);
    cr_expect_eq(weft_barrier_free(NULL), 0);
    return NULL;
}

Test(sync, barrier_of_one_and_misuse)
{
    cr_assert_eq(run_virtual(barrier_misuse_main, NULL, NULL), 0);
}

/* ======================================================================== */
/* Freeing while in use; outside a loop                                     */
/* ======================================================================== */

static void *sem_waiter_fn(void *arg)
{
    int rc = weft_sem_acquire(arg);
    trace("%s:%d", weft_task_name(NULL), rc);
    return NULL;
}

static void *free_busy_main(void *arg)
{
    (void)arg;
    weft_lock *lock = weft_lock_new();
    weft_event *ev = weft_event_new();
    weft_cond *cond = weft_cond_new(NULL);
    weft_sem *sem = weft_sem_new(0);
    weft_barrier *b = weft_barrier_new(2);
    cr_expect_eq(weft_lock_acquire(lock), 0);
    lock_user lu = {lock, 0};
    cond_user cu = {cond, 0};
    weft_task *t[5] = {spawn_named(lock_user_fn, &lu, "L", 0), spawn_named(event_waiter_fn, ev, "E", 0),
                       spawn_named(cond_waiter_fn, &cu, "C", 0), spawn_named(sem_waiter_fn, sem, "S", 0),
                       spawn_named(barrier_once_fn, b, "B", 0)};
    weft_sleep(1);
    cr_expect_eq(weft_lock_free(lock), -EBUSY);
    cr_expect_eq(weft_event_free(ev), -EBUSY);
    cr_expect_eq(weft_cond_free(cond), -EBUSY);
    cr_expect(mentions(weft_errmsg(), "weft_cond_free: 1 task(s) still wait on the condition"), "message: %s",
              weft_errmsg());
    cr_expect_eq(weft_sem_free(sem), -EBUSY);
    cr_expect_eq(weft_barrier_free(b), -EBUSY);
    cr_expect(mentions(weft_errmsg(), "weft_barrier_free: 1 task(s) still wait at the barrier"), "message: %s",
              weft_errmsg());

    /* A waiter given the lock but not yet resumed still counts. */
    cr_expect_eq(weft_lock_release(lock), 0);
    cr_expect_eq(weft_lock_free(lock), -EBUSY);
    weft_event_set(ev);
    cr_expect_eq(weft_lock_acquire(weft_cond_lock(cond)), 0);
    cr_expect_eq(weft_cond_notify_all(cond), 0);
    cr_expect_eq(weft_lock_release(weft_cond_lock(cond)), 0);
    cr_expect_eq(weft_sem_release(sem), 0);
    cr_expect_eq(weft_barrier_wait(b), 1);
    cr_expect_eq(weft_gather(t, 5, NULL, NULL, 0), 0);

    cr_expect_eq(weft_lock_free(lock), 0);
    cr_expect_eq(weft_event_free(ev), 0);
    cr_expect_eq(weft_cond_free(cond), 0);
    cr_expect_eq(weft_sem_free(sem), 0);
    cr_expect_eq(weft_barrier_free(b), 0);
    cr_expect_eq(weft_event_free(NULL), 0);
    cr_expect_eq(weft_cond_free(NULL), 0);
    return NULL;
}

Test(sync, free_is_refused_while_tasks_wait)
{
    trace_reset();
    cr_assert_eq(run_virtual(free_busy_main, NULL, NULL), 0);
    cr_assert_str_eq(trace_text, "L:0@1 E:0@1 C:0@1 S:0 B:0@1");
}

Test(sync, primitives_need_a_running_loop)
{
    cr_assert_null(weft_lock_new());
    cr_assert(mentions(weft_errmsg(), "weft_lock_new needs a running weft loop"), "message: %s", weft_errmsg());
    cr_assert_null(weft_event_new());
    cr_assert_null(weft_cond_new(NULL));
    cr_assert_null(weft_sem_new(1));
    cr_assert_null(weft_barrier_new(2));
}
