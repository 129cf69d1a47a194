/*
 * test_pool.c — thread executors as a user sees them: weft_to_thread's results and
 * errors (with their messages), the loop running on while a call blocks, cancelling
 * a queued call (it never runs) and a running one (it finishes, its result dropped),
 * custom pools (size, shutdown with and without waiting, calls after shutdown), the
 * default pool's size rules, weft_run waiting for running calls, and the cases of
 * weft_run_in_loop that need only one thread of ours. The tests with several loops
 * or threads hammering pools are in test_threads.c, which also runs under TSan.
 *
 * Pool threads run in real time, so these tests do too; waits on "has the call
 * started?" poll with short sleeps, and timing checks keep wide margins.
 */
#include "common.h"

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

TestSuite(pool, .timeout = 30);

static void pause_ms(long ms)
{
    nanosleep(&(struct timespec){.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L}, NULL);
}

/* A blocking call that waits until the test opens its gate. */
typedef struct gate {
    atomic_int started;
    atomic_int open;
    atomic_int finished;
    intptr_t value;
} gate;

static void *wait_at_gate(void *arg)
{
    gate *g = arg;
    atomic_store(&g->started, 1);
    while (!atomic_load(&g->open))
        pause_ms(1);
    atomic_store(&g->finished, 1);
    return (void *)g->value;
}

/* From a task: wait (letting the loop run) until the gate's call has started. */
static void until_started(gate *g)
{
    while (!atomic_load(&g->started))
        weft_sleep(0.001);
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* ---- results and errors ------------------------------------------------------ */

typedef struct where {
    pthread_t thread;
    weft_loop *loop;
    weft_task *task;
} where;

static void *double_it_and_say_where(void *arg)
{
    where *w = arg;
    w->thread = pthread_self();
    w->loop = weft_loop_current();
    w->task = weft_current();
    return (void *)(intptr_t)42;
}

static void *result_main(void *arg)
{
    where *w = arg;
    void *result = NULL;
    cr_expect_eq(weft_to_thread(double_it_and_say_where, w, &result), 0, "%s", weft_errmsg());
    cr_expect_eq((intptr_t)result, 42);
    cr_expect_eq(weft_to_thread(double_it_and_say_where, w, NULL), 0, "result may be NULL");
    return NULL;
}

Test(pool, to_thread_returns_the_result_from_another_thread)
{
    where w;
    memset(&w, 0, sizeof w);
    cr_assert_eq(weft_run(result_main, &w, NULL), 0);
    cr_assert(!pthread_equal(w.thread, pthread_self()), "the function ran on the loop's thread");
    cr_assert_null(w.loop, "a pool thread has no loop");
    cr_assert_null(w.task, "a pool thread has no task");
}

static void *fail_with_message(void *arg)
{
    return weft_fail(-EIO, "cannot read %s", (const char *)arg);
}

static void *fail_without_message(void *arg)
{
    (void)arg;
    return weft_fail(-EPERM, NULL);
}

static void *return_seven(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)7;
}

static void *error_main(void *arg)
{
    (void)arg;
    void *result = (void *)1;
    cr_expect_eq(weft_to_thread(fail_with_message, "disk0", &result), -EIO);
    cr_expect_str_eq(weft_errmsg(), "cannot read disk0");
    cr_expect_null(result);
    /* The same (only) thread runs the next call: no error is left over from the last. */
    cr_expect_eq(weft_to_thread(return_seven, NULL, &result), 0, "%s", weft_errmsg());
    cr_expect_eq((intptr_t)result, 7);
    cr_expect_eq(weft_to_thread(fail_without_message, NULL, &result), -EPERM);
    cr_expect(strstr(weft_errmsg(), "EPERM") != NULL, "message: %s", weft_errmsg());
    return NULL;
}

Test(pool, to_thread_delivers_the_error_and_its_message)
{
    cr_assert_eq(weft_set_default_pool_size(1), 0);
    cr_assert_eq(weft_run(error_main, NULL, NULL), 0);
}

static void *argument_errors_main(void *arg)
{
    (void)arg;
    void *result = (void *)1;
    cr_expect_eq(weft_to_thread(NULL, NULL, &result), -EINVAL);
    cr_expect(strstr(weft_errmsg(), "function is NULL") != NULL, "message: %s", weft_errmsg());
    cr_expect_null(result);
    cr_expect_eq(weft_pool_run(NULL, return_seven, NULL, NULL), -EINVAL);
    cr_expect(strstr(weft_errmsg(), "pool is NULL") != NULL, "message: %s", weft_errmsg());
    return NULL;
}

Test(pool, argument_errors)
{
    cr_assert_eq(weft_run(argument_errors_main, NULL, NULL), 0);
    cr_assert_eq(weft_to_thread(return_seven, NULL, NULL), WEFT_ENOTINLOOP);
    cr_assert(strstr(weft_errmsg(), "task of a running weft loop") != NULL, "message: %s", weft_errmsg());
    cr_assert_null(weft_pool_new(2000));
    cr_assert(strstr(weft_errmsg(), "2000 threads") != NULL, "message: %s", weft_errmsg());
    cr_assert_eq(weft_set_default_pool_size(5000), -EINVAL);
}

/* ---- the loop runs on while a call blocks ------------------------------------ */

static atomic_int ticks;

static void *block_100ms(void *arg)
{
    (void)arg;
    pause_ms(100);
    return (void *)(intptr_t)atomic_load(&ticks);
}

static void *ticker(void *arg)
{
    (void)arg;
    for (;;) {
        if (weft_sleep(0.01) != 0)
            return NULL;
        atomic_fetch_add(&ticks, 1);
    }
}

static void *ticking_main(void *arg)
{
    (void)arg;
    weft_task *t = weft_spawn(ticker, NULL);
    void *ticks_seen = NULL;
    cr_expect_eq(weft_to_thread(block_100ms, NULL, &ticks_seen), 0);
    cr_expect_geq((intptr_t)ticks_seen, 4, "the loop ticked %ld times during a 100 ms call",
                  (long)(intptr_t)ticks_seen);
    weft_cancel(t, NULL);
    weft_await(t, NULL);
    return NULL;
}

Test(pool, other_tasks_run_while_a_call_blocks)
{
    cr_assert_eq(weft_run(ticking_main, NULL, NULL), 0);
}

/* ---- cancellation -------------------------------------------------------------- */

static atomic_int counted_runs;

static void *count_run(void *arg)
{
    (void)arg;
    atomic_fetch_add(&counted_runs, 1);
    return NULL;
}

typedef struct call_outcome {
    int rc;
    char msg[128];
    double returned_at;
} call_outcome;

static void *to_thread_count(void *arg)
{
    call_outcome *out = arg;
    out->rc = weft_to_thread(count_run, NULL, NULL);
    snprintf(out->msg, sizeof out->msg, "%s", weft_errmsg());
    return NULL;
}

static void *to_thread_gate(void *arg)
{
    gate *g = arg;
    void *result = NULL;
    int rc = weft_to_thread(wait_at_gate, g, &result);
    return rc ? weft_fail(rc, "%s", weft_errmsg()) : result;
}

static void *cancel_queued_main(void *arg)
{
    (void)arg;
    gate g = {.value = 5};
    weft_task *busy = weft_spawn(to_thread_gate, &g);
    until_started(&g); /* the pool's only thread is taken */
    call_outcome out = {.rc = 1};
    weft_task *queued = weft_spawn(to_thread_count, &out);
    for (int i = 0; i < 3; i++)
        weft_yield(); /* calls reach their pool once per loop iteration: it is in the pool's queue now */
    cr_expect(weft_cancel(queued, "no longer needed"));
    cr_expect_eq(weft_await(queued, NULL), -ECANCELED);
    cr_expect_eq(out.rc, -ECANCELED, "the caller returned at once, before the pool had a thread free");
    cr_expect_str_eq(out.msg, "no longer needed");
    cr_expect_eq(atomic_load(&g.open), 0);
    atomic_store(&g.open, 1);
    void *result = NULL;
    cr_expect_eq(weft_await(busy, &result), 0);
    cr_expect_eq((intptr_t)result, 5);
    /* A later call runs: the cancelled one was taken out of the queue, not run. */
    cr_expect_eq(weft_to_thread(return_seven, NULL, NULL), 0);
    return NULL;
}

Test(pool, a_cancelled_queued_call_never_runs)
{
    atomic_store(&counted_runs, 0);
    cr_assert_eq(weft_set_default_pool_size(1), 0);
    cr_assert_eq(weft_run(cancel_queued_main, NULL, NULL), 0);
    cr_assert_eq(atomic_load(&counted_runs), 0, "the cancelled call ran");
}

static void *cancel_running_main(void *arg)
{
    gate *g = arg;
    weft_task *t = weft_spawn(to_thread_gate, g);
    until_started(g);
    weft_cancel(t, NULL);
    cr_expect_eq(weft_await(t, NULL), -ECANCELED);
    cr_expect_eq(atomic_load(&g->finished), 0, "the caller waited for the running call");
    atomic_store(&g->open, 1);
    return NULL; /* weft_run waits for the call; its result is dropped */
}

Test(pool, a_cancelled_running_call_finishes_and_its_result_is_dropped)
{
    gate g = {.value = 99};
    cr_assert_eq(weft_run(cancel_running_main, &g, NULL), 0);
    cr_assert_eq(atomic_load(&g.finished), 1, "weft_run returned before the running call finished");
}

/*
 * The call's completion has woken its task, but the task is cancelled before it
 * runs: it returns -ECANCELED and frees the record (no leak under ASan). Both
 * completions reach the loop in one batch because the loop's thread is blocked
 * while the pool's only thread runs them; the drain wakes `first` before `second`,
 * and `first` cancels `second` while it is READY.
 */
typedef struct race {
    weft_task *second;
    int second_rc;
    char second_msg[96];
} race;

static race the_race;

static void *first_cancels_second(void *arg)
{
    (void)arg;
    cr_expect_eq(weft_to_thread(return_seven, NULL, NULL), 0);
    cr_expect(weft_cancel(the_race.second, "too late"));
    return NULL;
}

static void *second_call(void *arg)
{
    (void)arg;
    void *result = (void *)1;
    the_race.second_rc = weft_to_thread(return_seven, NULL, &result);
    snprintf(the_race.second_msg, sizeof the_race.second_msg, "%s", weft_errmsg());
    cr_expect_null(result, "a cancelled caller gets no result");
    return NULL;
}

static void *woken_then_cancelled_main(void *arg)
{
    (void)arg;
    weft_task *first = weft_spawn(first_cancels_second, NULL);
    the_race.second = weft_spawn(second_call, NULL);
    for (int i = 0; i < 3; i++)
        weft_yield(); /* both calls are in the pool's queue, first's first */
    pause_ms(100);  /* blocks the loop: both calls finish meanwhile */
    cr_expect_eq(weft_await(first, NULL), 0);
    cr_expect_eq(weft_await(the_race.second, NULL), -ECANCELED, "it returned while cancelled");
    return NULL;
}

Test(pool, a_call_done_but_cancelled_before_its_task_ran_is_dropped)
{
    cr_assert_eq(weft_set_default_pool_size(1), 0);
    memset(&the_race, 0, sizeof the_race);
    cr_assert_eq(weft_run(woken_then_cancelled_main, NULL, NULL), 0);
    cr_assert_eq(the_race.second_rc, -ECANCELED);
    cr_assert_str_eq(the_race.second_msg, "too late");
}

static void *cancelled_before_main(void *arg)
{
    (void)arg;
    weft_cancel(weft_current(), NULL);
    cr_expect_eq(weft_to_thread(count_run, NULL, NULL), -ECANCELED);
    weft_uncancel();
    return NULL;
}

Test(pool, a_cancelled_task_does_not_submit)
{
    atomic_store(&counted_runs, 0);
    cr_assert_eq(weft_run(cancelled_before_main, NULL, NULL), 0);
    cr_assert_eq(atomic_load(&counted_runs), 0);
}

/* ---- many calls ------------------------------------------------------------------ */

#define CALLERS 20
#define CALLS_EACH 50

static void *plus_one(void *arg)
{
    return (void *)((intptr_t)arg + 1);
}

static void *many_calls(void *arg)
{
    intptr_t base = (intptr_t)arg, sum = 0;
    for (intptr_t i = 0; i < CALLS_EACH; i++) {
        void *r = NULL;
        int rc = weft_to_thread(plus_one, (void *)(base + i), &r);
        if (rc != 0)
            return weft_fail(rc, "%s", weft_errmsg());
        sum += (intptr_t)r;
    }
    return (void *)sum;
}

static void *many_main(void *arg)
{
    (void)arg;
    weft_task *tasks[CALLERS];
    void *results[CALLERS];
    for (intptr_t k = 0; k < CALLERS; k++)
        tasks[k] = weft_spawn(many_calls, (void *)(k * 1000));
    cr_expect_eq(weft_gather(tasks, CALLERS, results, NULL, 0), 0, "%s", weft_errmsg());
    for (intptr_t k = 0; k < CALLERS; k++) {
        intptr_t expected = 0;
        for (intptr_t i = 0; i < CALLS_EACH; i++)
            expected += k * 1000 + i + 1;
        cr_expect_eq((intptr_t)results[k], expected, "caller %ld", (long)k);
    }
    return NULL;
}

Test(pool, many_concurrent_calls_from_many_tasks)
{
    cr_assert_eq(weft_set_default_pool_size(4), 0);
    cr_assert_eq(weft_run(many_main, NULL, NULL), 0);
}

/* ---- custom pools: size ------------------------------------------------------------ */

static atomic_int concurrent, max_concurrent;

static void *busy_30ms(void *arg)
{
    (void)arg;
    int now = atomic_fetch_add(&concurrent, 1) + 1;
    int seen = atomic_load(&max_concurrent);
    while (now > seen && !atomic_compare_exchange_weak(&max_concurrent, &seen, now)) {
    }
    pause_ms(30);
    atomic_fetch_sub(&concurrent, 1);
    return NULL;
}

typedef struct sized {
    weft_pool *pool; /* NULL: the default pool */
    int calls;
} sized;

static void *one_busy_call(void *arg)
{
    weft_pool *p = arg;
    int rc = p ? weft_pool_run(p, busy_30ms, NULL, NULL) : weft_to_thread(busy_30ms, NULL, NULL);
    return rc ? weft_fail(rc, "%s", weft_errmsg()) : NULL;
}

static void *sized_main(void *arg)
{
    sized *s = arg;
    weft_task *tasks[16];
    for (int i = 0; i < s->calls; i++)
        tasks[i] = weft_spawn(one_busy_call, s->pool);
    cr_expect_eq(weft_gather(tasks, (size_t)s->calls, NULL, NULL, 0), 0, "%s", weft_errmsg());
    return NULL;
}

Test(pool, a_custom_pool_runs_at_most_its_size_at_once)
{
    atomic_store(&concurrent, 0);
    atomic_store(&max_concurrent, 0);
    sized s = {.pool = weft_pool_new(3), .calls = 12};
    cr_assert_not_null(s.pool);
    double t0 = now_s();
    cr_assert_eq(weft_run(sized_main, &s, NULL), 0);
    double took = now_s() - t0;
    weft_pool_free(s.pool);
    cr_assert_eq(atomic_load(&max_concurrent), 3, "max concurrency %d", atomic_load(&max_concurrent));
    cr_assert_geq(took, 0.11, "12 calls of 30 ms on 3 threads took %f s", took);
}

/* ---- default pool size ---------------------------------------------------------------- */

static void *size_rules_main(void *arg)
{
    sized *s = arg;
    cr_expect_eq(weft_to_thread(return_seven, NULL, NULL), 0);
    cr_expect_eq(weft_set_default_pool_size(5), WEFT_ESTATE, "the pool exists now");
    cr_expect(strstr(weft_errmsg(), "already runs with 3 threads") != NULL, "message: %s", weft_errmsg());
    cr_expect_eq(weft_default_pool_size(), 3);
    return sized_main(s);
}

Test(pool, default_pool_size_rules)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    size_t standard = (size_t)(cpus + 4 < 32 ? cpus + 4 : 32);
    cr_assert_eq(weft_default_pool_size(), standard, "min(32, CPUs + 4)");
    cr_assert_eq(weft_set_default_pool_size(3), 0);
    cr_assert_eq(weft_default_pool_size(), 3);
    atomic_store(&concurrent, 0);
    atomic_store(&max_concurrent, 0);
    sized s = {.pool = NULL, .calls = 9};
    cr_assert_eq(weft_run(size_rules_main, &s, NULL), 0);
    cr_assert_eq(atomic_load(&max_concurrent), 3, "max concurrency %d", atomic_load(&max_concurrent));
    /* weft_run shut the default pool down: the size can be set again for the next. */
    cr_assert_eq(weft_set_default_pool_size(2), 0, "%s", weft_errmsg());
    atomic_store(&max_concurrent, 0);
    cr_assert_eq(weft_run(sized_main, &s, NULL), 0);
    cr_assert_eq(atomic_load(&max_concurrent), 2, "max concurrency %d", atomic_load(&max_concurrent));
    cr_assert_eq(weft_set_default_pool_size(0), 0);
    cr_assert_eq(weft_default_pool_size(), standard);
}

/* ---- custom pools: shutdown -------------------------------------------------------------- */

static atomic_int finished_calls;

static void *sleep_50ms(void *arg)
{
    (void)arg;
    pause_ms(50);
    atomic_fetch_add(&finished_calls, 1);
    return NULL;
}

static void *pool_sleep_50ms(void *arg)
{
    int rc = weft_pool_run(arg, sleep_50ms, NULL, NULL);
    return rc ? weft_fail(rc, "%s", weft_errmsg()) : NULL;
}

static void *shutdown_wait_main(void *arg)
{
    weft_pool *p = arg;
    weft_task *tasks[4];
    for (int i = 0; i < 4; i++)
        tasks[i] = weft_spawn(pool_sleep_50ms, p);
    weft_yield(); /* all four submitted: two run, two queued */
    atomic_store(&ticks, 0);
    weft_task *t = weft_spawn(ticker, NULL);
    double t0 = weft_time();
    cr_expect_eq(weft_pool_shutdown(p, true), 0, "%s", weft_errmsg());
    double waited = weft_time() - t0;
    cr_expect_eq(atomic_load(&finished_calls), 4, "shutdown returned before the calls finished");
    cr_expect_geq(waited, 0.09, "waited %f s for two rounds of 50 ms", waited);
    cr_expect_geq(atomic_load(&ticks), 3, "the loop ran while main waited (the task was suspended)");
    cr_expect_eq(weft_gather(tasks, 4, NULL, NULL, 0), 0, "%s", weft_errmsg());
    cr_expect_eq(weft_pool_run(p, return_seven, NULL, NULL), -ESHUTDOWN);
    cr_expect(strstr(weft_errmsg(), "has been shut down") != NULL, "message: %s", weft_errmsg());
    weft_cancel(t, NULL);
    weft_await(t, NULL);
    return NULL;
}

Test(pool, shutdown_with_wait_suspends_the_task_until_every_call_is_done)
{
    atomic_store(&finished_calls, 0);
    weft_pool *p = weft_pool_new(2);
    cr_assert_eq(weft_run(shutdown_wait_main, p, NULL), 0);
    weft_pool_free(p);
}

typedef struct dropped_call {
    weft_pool *pool;
    int rc;
    char msg[160];
} dropped_call;

static void *pool_count(void *arg)
{
    dropped_call *d = arg;
    d->rc = weft_pool_run(d->pool, count_run, NULL, NULL);
    snprintf(d->msg, sizeof d->msg, "%s", weft_errmsg());
    return NULL;
}

typedef struct pool_gate {
    weft_pool *pool;
    gate *gate;
} pool_gate;

static void *pool_run_gate(void *arg)
{
    pool_gate *pg = arg;
    void *result = NULL;
    int rc = weft_pool_run(pg->pool, wait_at_gate, pg->gate, &result);
    return rc ? weft_fail(rc, "%s", weft_errmsg()) : result;
}

static void *shutdown_nowait_main(void *arg)
{
    weft_pool *p = arg;
    gate g = {.value = 11};
    pool_gate pg = {p, &g};
    weft_task *running = weft_spawn(pool_run_gate, &pg);
    until_started(&g);
    dropped_call d[2] = {{.pool = p, .rc = 1}, {.pool = p, .rc = 1}};
    weft_task *queued[2] = {weft_spawn(pool_count, &d[0]), weft_spawn(pool_count, &d[1])};
    weft_yield(); /* both queued behind the running call */
    cr_expect_eq(weft_pool_shutdown(p, false), 0);
    cr_expect_eq(weft_gather(queued, 2, NULL, NULL, 0), 0);
    for (int i = 0; i < 2; i++) {
        cr_expect_eq(d[i].rc, -ESHUTDOWN, "queued call %d", i);
        cr_expect(strstr(d[i].msg, "shut down without waiting") != NULL, "message: %s", d[i].msg);
    }
    cr_expect_eq(atomic_load(&g.finished), 0, "the running call is still running");
    atomic_store(&g.open, 1);
    void *result = NULL;
    cr_expect_eq(weft_await(running, &result), 0, "the running call finishes: %s", weft_errmsg());
    cr_expect_eq((intptr_t)result, 11);
    return NULL;
}

Test(pool, shutdown_without_wait_drops_queued_calls_and_lets_running_ones_finish)
{
    atomic_store(&counted_runs, 0);
    weft_pool *p = weft_pool_new(1);
    cr_assert_eq(weft_run(shutdown_nowait_main, p, NULL), 0);
    weft_pool_free(p);
    cr_assert_eq(atomic_load(&counted_runs), 0, "a dropped call ran");
}

static void *after_shutdown_main(void *arg)
{
    weft_pool *p = arg;
    void *result = (void *)1;
    cr_expect_eq(weft_pool_run(p, count_run, NULL, &result), -ESHUTDOWN);
    cr_expect(strstr(weft_errmsg(), "weft_pool_run: the pool has been shut down") != NULL, "message: %s",
              weft_errmsg());
    cr_expect_null(result);
    return NULL;
}

Test(pool, a_call_after_shutdown_is_refused)
{
    atomic_store(&counted_runs, 0);
    weft_pool *p = weft_pool_new(2);
    cr_assert_eq(weft_pool_shutdown(p, true), 0, "from a plain thread, nothing to wait for");
    cr_assert_eq(weft_run(after_shutdown_main, p, NULL), 0);
    weft_pool_free(p);
    cr_assert_eq(atomic_load(&counted_runs), 0);
}

typedef struct cancelled_shutdown {
    weft_pool *pool;
    gate gate;
    int rc;
    char msg[128];
} cancelled_shutdown;

static void *shut_down_and_wait(void *arg)
{
    cancelled_shutdown *s = arg;
    s->rc = weft_pool_shutdown(s->pool, true);
    snprintf(s->msg, sizeof s->msg, "%s", weft_errmsg());
    return NULL;
}

static void *cancelled_shutdown_main(void *arg)
{
    cancelled_shutdown *s = arg;
    pool_gate pg = {s->pool, &s->gate};
    weft_task *running = weft_spawn(pool_run_gate, &pg);
    until_started(&s->gate);
    weft_task *waiter = weft_spawn(shut_down_and_wait, s);
    weft_sleep(0.01);
    weft_cancel(waiter, NULL);
    weft_await(waiter, NULL);
    cr_expect_eq(s->rc, -ECANCELED);
    cr_expect(strstr(s->msg, "the shutdown goes on") != NULL, "message: %s", s->msg);
    cr_expect_eq(weft_pool_run(s->pool, count_run, NULL, NULL), -ESHUTDOWN, "still shut down");
    atomic_store(&s->gate.open, 1);
    cr_expect_eq(weft_await(running, NULL), 0, "%s", weft_errmsg());
    return NULL;
}

Test(pool, a_task_cancelled_while_waiting_for_a_shutdown)
{
    cancelled_shutdown s = {.pool = weft_pool_new(1), .rc = 1};
    cr_assert_eq(weft_run(cancelled_shutdown_main, &s, NULL), 0);
    weft_pool_free(s.pool);
}

/* ---- weft_run waits for running calls ---------------------------------------------------- */

static void *fire_and_forget_call(void *arg)
{
    gate *g = arg;
    weft_to_thread(wait_at_gate, g, NULL);
    return NULL;
}

/* Opens the gate from a plain thread some time after the loop's main has returned. */
static void *open_later(void *arg)
{
    gate *g = arg;
    pause_ms(100);
    atomic_store(&g->open, 1);
    return NULL;
}

static void *leave_a_call_running_main(void *arg)
{
    gate *g = arg;
    weft_detach(weft_spawn(fire_and_forget_call, g));
    until_started(g);
    return NULL;
}

Test(pool, weft_run_returns_only_after_the_running_calls_finished)
{
    gate g = {.value = 1};
    pthread_t opener;
    cr_assert_eq(pthread_create(&opener, NULL, open_later, &g), 0);
    double t0 = now_s();
    cr_assert_eq(weft_run(leave_a_call_running_main, &g, NULL), 0);
    double took = now_s() - t0;
    cr_assert_eq(atomic_load(&g.finished), 1, "weft_run returned while its call was running");
    cr_assert_geq(took, 0.09, "took %f s", took);
    pthread_join(opener, NULL);
    /* A new run gets a working default pool again. */
    gate g2 = {.value = 2, .open = 1};
    cr_assert_eq(weft_run(leave_a_call_running_main, &g2, NULL), 0);
    cr_assert_eq(atomic_load(&g2.finished), 1);
}

/* ---- weft_run_in_loop, the cases of one thread -------------------------------------------- */

static void *never_called(void *arg)
{
    (void)arg;
    cr_expect(false, "the function ran");
    return NULL;
}

static void *deadlock_main(void *arg)
{
    (void)arg;
    void *result = (void *)1;
    cr_expect_eq(weft_run_in_loop(weft_loop_current(), never_called, NULL, &result, 1.0), -EDEADLK);
    cr_expect(strstr(weft_errmsg(), "loop's own thread") != NULL, "message: %s", weft_errmsg());
    cr_expect_null(result);
    cr_expect_eq(weft_run_in_loop(NULL, never_called, NULL, NULL, 1.0), -EINVAL);
    return NULL;
}

Test(pool, run_in_loop_from_the_loops_own_thread_is_a_deadlock)
{
    cr_assert_eq(weft_run(deadlock_main, NULL, NULL), 0);
}

/*
 * A blocking call asks its own loop to run a task, and the task that waits for the
 * call is cancelled when main returns: weft_run must not wait forever for the call,
 * which waits for the loop. The loop keeps answering while it waits for its calls:
 * the task is refused with -ESHUTDOWN, the call returns, weft_run returns.
 */
typedef struct callback_into_loop {
    weft_loop *loop;
    atomic_int started;
    atomic_int rc;
    char msg[160];
} callback_into_loop;

static void *sleep_a_second(void *arg)
{
    (void)arg;
    weft_sleep(1.0);
    return NULL;
}

static void *ask_the_loop(void *arg)
{
    callback_into_loop *c = arg;
    atomic_store(&c->started, 1);
    pause_ms(50); /* main has returned by now */
    int rc = weft_run_in_loop(c->loop, sleep_a_second, NULL, NULL, 10.0);
    snprintf(c->msg, sizeof c->msg, "%s", weft_errmsg());
    atomic_store(&c->rc, rc);
    return NULL;
}

static void *ask_through_a_call(void *arg)
{
    weft_to_thread(ask_the_loop, arg, NULL);
    return NULL;
}

static void *callback_into_loop_main(void *arg)
{
    callback_into_loop *c = arg;
    c->loop = weft_loop_current();
    weft_detach(weft_spawn(ask_through_a_call, c));
    while (!atomic_load(&c->started))
        weft_sleep(0.001);
    return NULL;
}

Test(pool, a_call_that_runs_a_task_on_its_own_finishing_loop_is_refused)
{
    callback_into_loop c = {.rc = 1};
    double t0 = now_s();
    cr_assert_eq(weft_run(callback_into_loop_main, &c, NULL), 0);
    cr_assert_lt(now_s() - t0, 5.0);
    cr_assert_eq(atomic_load(&c.rc), -ESHUTDOWN);
    cr_assert(strstr(c.msg, "main had returned") != NULL, "message: %s", c.msg);
}

/* A result nobody takes goes to the drop function: a call whose caller was
 * cancelled while it ran, and one whose caller passed no result pointer; a taken
 * result is not dropped. (LeakSanitizer checks the malloc'd results too.) */
static atomic_int drops;

static void drop_block(void *result)
{
    atomic_fetch_add(&drops, 1);
    free(result);
}

static void *slow_block(void *arg)
{
    pause_ms(*(int *)arg);
    return malloc(64);
}

static void *cancelled_caller(void *arg)
{
    void *result = NULL;
    int rc = weft_to_thread_drop(slow_block, arg, &result, drop_block);
    return (void *)(intptr_t)rc;
}

static void *drop_calls_main(void *arg)
{
    (void)arg;
    static int slow = 100, quick = 1;
    weft_task *t = weft_spawn(cancelled_caller, &slow);
    cr_expect_eq(weft_sleep(0.02), 0); /* the call is running in a pool thread */
    weft_cancel(t, NULL);
    cr_expect_eq(weft_await(t, NULL), -ECANCELED);
    cr_expect_eq(weft_to_thread_drop(slow_block, &quick, NULL, drop_block), 0); /* no result pointer */
    void *result = NULL;
    cr_expect_eq(weft_to_thread_drop(slow_block, &quick, &result, drop_block), 0);
    cr_expect_not_null(result);
    free(result); /* taken: ours */
    return NULL;
}

Test(pool, results_nobody_takes_go_to_the_drop_function)
{
    atomic_store(&drops, 0);
    cr_assert_eq(weft_run(drop_calls_main, NULL, NULL), 0);
    /* weft_run waited for the cancelled call to finish, and dropped its result. */
    cr_assert_eq(atomic_load(&drops), 2);
}
