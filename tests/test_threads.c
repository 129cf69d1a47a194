/*
 * test_threads.c — the parts of the core that involve more than one thread: a loop
 * per thread running at the same time, and weft_call_soon_threadsafe hammered from
 * several threads (every callback runs once, in each thread's order, and a waiting
 * loop wakes up for it, round after round: no wake-up is ever lost), and the thread
 * executors: pools shared by the loops of four threads (the default one and a custom
 * one, several runs in a row so the default pool is shut down and made again while
 * others use it), cancellations racing the pool's threads, a shutdown without waiting
 * from a plain thread, and weft_run_in_loop from plain threads (results, errors,
 * timeouts, a loop that finishes first), and notifiers notified from other threads
 * (rounds never lost, storms merged, freed and torn down under them). Labelled `threads` so the ThreadSanitizer
 * build runs it.
 *
 * It uses no test framework: Criterion cannot start under ThreadSanitizer (its
 * runner's shared arena collides with TSan's memory layout: "Could not initialize
 * inheritable arena"). It prints one line per test, then "N passed, M failed", and
 * exits non-zero on any failure. `test_threads NAME` runs only the test NAME.
 */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "weft.h"

/* Fails the running test with a message and leaves it. Used only on the test's own
 * thread, never inside a task or a callback (those record what they see). */
static int checks_failed;

#define CHECK(cond, ...)                                                          \
    do {                                                                          \
        if (!(cond)) {                                                            \
            fprintf(stderr, "%s:%d: failed: %s\n    ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                         \
            fputc('\n', stderr);                                                  \
            checks_failed++;                                                      \
            return;                                                               \
        }                                                                         \
    } while (0)

/* ---- one loop per thread, several at once ---------------------------------- */

#define LOOP_THREADS 4
#define TASKS_PER_LOOP 200

typedef struct loop_thread {
    pthread_t thread;
    intptr_t seed;
    int rc;
    intptr_t sum;
    weft_loop *loop;
    weft_loop *loop_after;
    int tasks_ran;
} loop_thread;

static void *scaled(void *arg)
{
    intptr_t v = (intptr_t)arg;
    /* Real time, so the loops of the threads overlap. */
    if (weft_sleep(0.001 * (double)(v % 7)) != 0)
        return weft_fail(-EIO, "sleep failed");
    return (void *)(v * 3);
}

/* Holds every loop alive at once, so their addresses can be compared (a freed loop's
 * memory could otherwise be reused by the next) and they really overlap. */
static pthread_barrier_t all_loops_running;

static void *loop_thread_main(void *arg)
{
    loop_thread *self = arg;
    self->loop = weft_loop_current();
    pthread_barrier_wait(&all_loops_running);
    weft_task *tasks[TASKS_PER_LOOP];
    void *results[TASKS_PER_LOOP];
    for (int i = 0; i < TASKS_PER_LOOP; i++)
        tasks[i] = weft_spawn(scaled, (void *)(self->seed + i));
    if (weft_gather(tasks, TASKS_PER_LOOP, results, NULL, 0) != 0)
        return weft_fail(-EIO, "gather failed: %s", weft_errmsg());
    intptr_t sum = 0;
    for (int i = 0; i < TASKS_PER_LOOP; i++)
        sum += (intptr_t)results[i];
    self->tasks_ran = TASKS_PER_LOOP;
    return (void *)sum;
}

static void *run_loop_on_thread(void *arg)
{
    loop_thread *self = arg;
    void *result = NULL;
    self->rc = weft_run(loop_thread_main, self, &result);
    self->sum = (intptr_t)result;
    self->loop_after = weft_loop_current();
    return NULL;
}

static void one_loop_per_thread_at_once(void)
{
    loop_thread threads[LOOP_THREADS];
    memset(threads, 0, sizeof threads);
    CHECK(pthread_barrier_init(&all_loops_running, NULL, LOOP_THREADS) == 0, "pthread_barrier_init");
    for (int i = 0; i < LOOP_THREADS; i++) {
        threads[i].seed = 1000 * (i + 1);
        CHECK(pthread_create(&threads[i].thread, NULL, run_loop_on_thread, &threads[i]) == 0, "pthread_create");
    }
    for (int i = 0; i < LOOP_THREADS; i++)
        CHECK(pthread_join(threads[i].thread, NULL) == 0, "pthread_join");
    pthread_barrier_destroy(&all_loops_running);
    for (int i = 0; i < LOOP_THREADS; i++) {
        intptr_t expected = 0;
        for (int j = 0; j < TASKS_PER_LOOP; j++)
            expected += (threads[i].seed + j) * 3;
        CHECK(threads[i].rc == 0, "loop %d failed: %d", i, threads[i].rc);
        CHECK(threads[i].sum == expected, "loop %d summed %ld, expected %ld", i, (long)threads[i].sum,
              (long)expected);
        CHECK(threads[i].loop != NULL, "loop %d: weft_loop_current() was NULL inside", i);
        CHECK(threads[i].loop_after == NULL, "loop %d: weft_loop_current() set after weft_run", i);
        for (int j = 0; j < i; j++)
            CHECK(threads[i].loop != threads[j].loop, "threads %d and %d shared a loop", i, j);
    }
}

/* ---- call_soon_threadsafe from many threads ----------------------------------- */

#define POSTER_THREADS 4
#define POSTS_PER_THREAD 10000

typedef struct post {
    int thread;
    int seq;
} post;

static post posts[POSTER_THREADS][POSTS_PER_THREAD];
static int runs_of[POSTER_THREADS][POSTS_PER_THREAD]; /* touched only on the loop's thread */
static int last_seq_of[POSTER_THREADS];
static int out_of_order;
static int callbacks_in_task;
static long callbacks_run;
static atomic_int post_failures;

static void count_post(void *arg)
{
    post *p = arg;
    runs_of[p->thread][p->seq]++;
    if (p->seq <= last_seq_of[p->thread])
        out_of_order++;
    last_seq_of[p->thread] = p->seq;
    if (weft_current() != NULL)
        callbacks_in_task++;
    callbacks_run++;
}

typedef struct poster {
    pthread_t thread;
    int index;
    weft_loop *loop;
} poster;

static void *post_many(void *arg)
{
    poster *self = arg;
    for (int i = 0; i < POSTS_PER_THREAD; i++) {
        post *p = &posts[self->index][i];
        p->thread = self->index;
        p->seq = i;
        if (weft_call_soon_threadsafe(self->loop, count_post, p) != 0)
            atomic_fetch_add(&post_failures, 1);
    }
    return NULL;
}

static void *hammer_main(void *arg)
{
    (void)arg;
    poster posters[POSTER_THREADS];
    for (int i = 0; i < POSTER_THREADS; i++) {
        posters[i].index = i;
        posters[i].loop = weft_loop_current();
        if (pthread_create(&posters[i].thread, NULL, post_many, &posters[i]) != 0)
            return weft_fail(-EAGAIN, "pthread_create failed");
    }
    double give_up = weft_time() + 30;
    while (callbacks_run < (long)POSTER_THREADS * POSTS_PER_THREAD && weft_time() < give_up)
        weft_sleep(0.001);
    /* Every post is in by now (or we gave up): joining blocks the loop only briefly. */
    for (int i = 0; i < POSTER_THREADS; i++)
        pthread_join(posters[i].thread, NULL);
    /* Anything still queued would be a duplicate: let it show. */
    weft_sleep(0.01);
    return NULL;
}

static void call_soon_threadsafe_from_four_threads(void)
{
    memset(runs_of, 0, sizeof runs_of);
    for (int i = 0; i < POSTER_THREADS; i++)
        last_seq_of[i] = -1;
    out_of_order = 0;
    callbacks_in_task = 0;
    callbacks_run = 0;
    atomic_store(&post_failures, 0);
    int rc = weft_run(hammer_main, NULL, NULL);
    CHECK(rc == 0, "weft_run: %d %s", rc, weft_errmsg());
    CHECK(atomic_load(&post_failures) == 0, "weft_call_soon_threadsafe failed %d times", atomic_load(&post_failures));
    CHECK(callbacks_run == (long)POSTER_THREADS * POSTS_PER_THREAD, "%ld callbacks ran", callbacks_run);
    for (int t = 0; t < POSTER_THREADS; t++)
        for (int i = 0; i < POSTS_PER_THREAD; i++)
            CHECK(runs_of[t][i] == 1, "callback %d of thread %d ran %d times", i, t, runs_of[t][i]);
    CHECK(out_of_order == 0, "callbacks of one thread ran out of order %d times", out_of_order);
    CHECK(callbacks_in_task == 0, "%d callbacks ran inside a task", callbacks_in_task);
}

/* ---- a loop waiting on a long timer wakes for a threadsafe call ---------------- */

typedef struct waker {
    weft_loop *loop;
    double ran_at;
    atomic_int posted;
} waker;

static void note_time(void *arg)
{
    waker *w = arg;
    w->ran_at = weft_time();
}

static void *post_after_pause(void *arg)
{
    waker *w = arg;
    nanosleep(&(struct timespec){.tv_nsec = 50 * 1000 * 1000}, NULL);
    if (weft_call_soon_threadsafe(w->loop, note_time, w) == 0)
        atomic_store(&w->posted, 1);
    return NULL;
}

static void *wake_main(void *arg)
{
    waker *w = arg;
    w->loop = weft_loop_current();
    double start = weft_time();
    pthread_t thread;
    if (pthread_create(&thread, NULL, post_after_pause, w) != 0)
        return weft_fail(-EAGAIN, "pthread_create failed");
    weft_sleep(2.0); /* the callback must run long before this ends */
    pthread_join(thread, NULL);
    w->ran_at -= start;
    return NULL;
}

static void threadsafe_call_wakes_a_waiting_loop(void)
{
    waker w = {.ran_at = -100};
    atomic_store(&w.posted, 0);
    int rc = weft_run(wake_main, &w, NULL);
    CHECK(rc == 0, "weft_run: %d %s", rc, weft_errmsg());
    CHECK(atomic_load(&w.posted) == 1, "weft_call_soon_threadsafe failed");
    CHECK(w.ran_at >= 0.04 && w.ran_at < 1.0, "the callback ran %f s after the start", w.ran_at);
}

/* ---- no lost wake-up when the loop sleeps between storms ------------------------ */

/*
 * Each round, four threads wait at a barrier and then post at once, while the loop
 * has nothing else to do: no timer but a far-off watchdog, so it is asleep in the
 * kernel (or about to be) when the calls arrive. The last call of a round completes
 * a future that main awaits. A lost wake-up leaves the loop asleep until its
 * watchdog timer 5 s later, which fails the test (checked: without the eventfd
 * write it fails within a few rounds).
 */
#define STORM_ROUNDS 300
#define STORM_THREADS 4

typedef struct storm {
    weft_loop *loop;
    pthread_barrier_t start;
    weft_future *round_done;     /* touched only on the loop's thread */
    int arrived;                 /* calls of this round run so far (loop thread) */
    atomic_int round_open;       /* the round the loop is ready for */
    atomic_int failures;
    int watchdog_fired;
} storm;

static storm the_storm;

static void storm_arrive(void *arg)
{
    storm *s = arg;
    if (++s->arrived == STORM_THREADS)
        weft_future_set_result(s->round_done, NULL);
}

static void *storm_poster(void *arg)
{
    storm *s = arg;
    for (int round = 1; round <= STORM_ROUNDS; round++) {
        /* Wait (off the loop) until the loop has set the round up, then post
         * together: the loop is idle or falling asleep by then. */
        while (atomic_load(&s->round_open) < round)
            nanosleep(&(struct timespec){.tv_nsec = 20 * 1000}, NULL);
        pthread_barrier_wait(&s->start);
        if (weft_call_soon_threadsafe(s->loop, storm_arrive, s) != 0)
            atomic_fetch_add(&s->failures, 1);
    }
    return NULL;
}

static void storm_watchdog(void *arg)
{
    storm *s = arg;
    s->watchdog_fired = 1;
    weft_future_cancel(s->round_done, "the loop slept through a threadsafe call");
}

static void *storm_main(void *arg)
{
    storm *s = arg;
    s->loop = weft_loop_current();
    pthread_t threads[STORM_THREADS];
    for (int i = 0; i < STORM_THREADS; i++)
        if (pthread_create(&threads[i], NULL, storm_poster, s) != 0)
            return weft_fail(-EAGAIN, "pthread_create failed");
    int rc = 0;
    for (int round = 1; round <= STORM_ROUNDS && rc == 0; round++) {
        s->arrived = 0;
        s->round_done = weft_future_new();
        weft_call watchdog = weft_call_later(5, storm_watchdog, s);
        double began = weft_time();
        atomic_store(&s->round_open, round);
        rc = weft_future_await(s->round_done, NULL);
        /* The calls of a stalled round run at last when the loop wakes for its
         * timer, maybe just before the watchdog is due: the time tells. */
        if (s->watchdog_fired || weft_time() - began > 1.0) {
            s->watchdog_fired = 1;
            rc = -ETIMEDOUT;
        }
        weft_call_cancel(watchdog);
        weft_future_free(s->round_done);
        s->round_done = NULL;
    }
    if (rc != 0)
        atomic_store(&s->round_open, STORM_ROUNDS + 1); /* let the threads run out */
    for (int i = 0; i < STORM_THREADS; i++)
        pthread_join(threads[i], NULL);
    return rc == 0 ? NULL : weft_fail(rc, "%s", weft_errmsg());
}

static void no_lost_wakeups_between_storms(void)
{
    storm *s = &the_storm;
    memset(s, 0, sizeof *s);
    atomic_store(&s->failures, 0);
    pthread_barrier_init(&s->start, NULL, STORM_THREADS);
    int rc = weft_run(storm_main, s, NULL);
    pthread_barrier_destroy(&s->start);
    CHECK(s->watchdog_fired == 0, "a round stalled: the loop slept through a threadsafe call (%d %s)", rc,
          weft_errmsg());
    CHECK(rc == 0, "weft_run: %d %s", rc, weft_errmsg());
    CHECK(atomic_load(&s->failures) == 0, "weft_call_soon_threadsafe failed %d times", atomic_load(&s->failures));
}

/* ---- thread pools shared by loops of several threads ------------------------------- */

#define POOL_LOOPS 4
#define POOL_ROUNDS 3
#define POOL_TASKS 16
#define DEFAULT_CALLS 100
#define CUSTOM_CALLS 50

static void pause_us(long us)
{
    nanosleep(&(struct timespec){.tv_nsec = us * 1000}, NULL);
}

static void *plus_one(void *arg)
{
    return (void *)((intptr_t)arg + 1);
}

typedef struct pool_user {
    pthread_t thread;
    weft_pool *shared;
    intptr_t seed;
    int rc;
    intptr_t sum;
    char msg[160];
} pool_user;

/* Task k of a loop: its calls, on the default pool (shared == NULL) or a shared one. */
typedef struct caller_arg {
    weft_pool *pool;
    intptr_t base;
    int calls;
} caller_arg;

static void *make_calls(void *arg)
{
    caller_arg *c = arg;
    intptr_t sum = 0;
    for (int i = 0; i < c->calls; i++) {
        void *r = NULL;
        int rc = c->pool ? weft_pool_run(c->pool, plus_one, (void *)(c->base + i), &r)
                         : weft_to_thread(plus_one, (void *)(c->base + i), &r);
        if (rc != 0)
            return weft_fail(rc, "%s", weft_errmsg());
        sum += (intptr_t)r;
    }
    return (void *)sum;
}

static void *pool_user_main(void *arg)
{
    pool_user *u = arg;
    caller_arg args[2 * POOL_TASKS];
    weft_task *tasks[2 * POOL_TASKS];
    void *results[2 * POOL_TASKS];
    for (int k = 0; k < 2 * POOL_TASKS; k++) {
        bool shared = k % 2;
        args[k] = (caller_arg){shared ? u->shared : NULL, u->seed + 1000 * k, shared ? CUSTOM_CALLS : DEFAULT_CALLS};
        tasks[k] = weft_spawn(make_calls, &args[k]);
    }
    if (weft_gather(tasks, 2 * POOL_TASKS, results, NULL, 0) != 0)
        return weft_fail(weft_error() ? weft_error() : -EIO, "%s", weft_errmsg());
    intptr_t sum = 0;
    for (int k = 0; k < 2 * POOL_TASKS; k++)
        sum += (intptr_t)results[k];
    return (void *)sum;
}

static void *run_pool_user(void *arg)
{
    pool_user *u = arg;
    for (int round = 0; round < POOL_ROUNDS && u->rc == 0; round++) {
        void *sum = NULL;
        u->rc = weft_run(pool_user_main, u, &sum);
        snprintf(u->msg, sizeof u->msg, "%s", weft_errmsg());
        u->sum += (intptr_t)sum;
    }
    return NULL;
}

static void to_thread_from_loops_of_four_threads(void)
{
    pool_user users[POOL_LOOPS];
    memset(users, 0, sizeof users);
    weft_pool *shared = weft_pool_new(3);
    CHECK(shared != NULL, "weft_pool_new: %s", weft_errmsg());
    CHECK(weft_set_default_pool_size(4) == 0, "weft_set_default_pool_size: %s", weft_errmsg());
    for (int i = 0; i < POOL_LOOPS; i++) {
        users[i].shared = shared;
        users[i].seed = 100000 * (i + 1);
        CHECK(pthread_create(&users[i].thread, NULL, run_pool_user, &users[i]) == 0, "pthread_create");
    }
    for (int i = 0; i < POOL_LOOPS; i++)
        pthread_join(users[i].thread, NULL);
    weft_pool_free(shared);
    for (int i = 0; i < POOL_LOOPS; i++) {
        intptr_t expected = 0;
        for (int k = 0; k < 2 * POOL_TASKS; k++) {
            int calls = k % 2 ? CUSTOM_CALLS : DEFAULT_CALLS;
            for (int j = 0; j < calls; j++)
                expected += users[i].seed + 1000 * k + j + 1;
        }
        CHECK(users[i].rc == 0, "loop %d failed: %d %s", i, users[i].rc, users[i].msg);
        CHECK(users[i].sum == POOL_ROUNDS * expected, "loop %d summed %ld, expected %ld", i, (long)users[i].sum,
              (long)(POOL_ROUNDS * expected));
    }
    /* Every loop has ended, so the default pool is gone: its size can be set again. */
    CHECK(weft_set_default_pool_size(0) == 0, "the default pool outlived its loops: %s", weft_errmsg());
}

/* ---- cancelling calls while pool threads run them ----------------------------------- */

#define STORM_CALLERS 64

typedef struct cancel_storm {
    weft_pool *pool;
    atomic_int ran;          /* blocking calls that ran (pool threads) */
    int submitted;           /* loop thread only */
    int succeeded, cancelled, other;
} cancel_storm;

static void *short_call(void *arg)
{
    cancel_storm *s = arg;
    atomic_fetch_add(&s->ran, 1);
    pause_us(50 + (atomic_load(&s->ran) % 7) * 30);
    return (void *)(intptr_t)1;
}

static void *storm_caller(void *arg)
{
    cancel_storm *s = arg;
    for (;;) {
        s->submitted++;
        void *r = NULL;
        int rc = weft_pool_run(s->pool, short_call, s, &r);
        if (rc == 0 && r == (void *)(intptr_t)1) {
            s->succeeded++;
        } else if (rc == -ECANCELED) {
            s->cancelled++;
            return NULL;
        } else {
            s->other++;
            return NULL;
        }
    }
}

static void *cancel_storm_main(void *arg)
{
    cancel_storm *s = arg;
    weft_task *tasks[STORM_CALLERS];
    for (int i = 0; i < STORM_CALLERS; i++)
        tasks[i] = weft_spawn(storm_caller, s);
    /* Cancel one caller after another while the pool runs their calls: some calls
     * are queued, some running, some on their way back when their caller leaves. */
    for (int i = 0; i < STORM_CALLERS; i++) {
        weft_sleep(0.0005 * (i % 3));
        weft_cancel(tasks[(i * 37) % STORM_CALLERS], NULL);
    }
    weft_gather(tasks, STORM_CALLERS, NULL, NULL, WEFT_RETURN_EXCEPTIONS);
    return NULL;
}

static void cancelling_calls_while_pool_threads_run_them(void)
{
    cancel_storm s;
    memset(&s, 0, sizeof s);
    atomic_store(&s.ran, 0);
    s.pool = weft_pool_new(2);
    CHECK(s.pool != NULL, "weft_pool_new: %s", weft_errmsg());
    int rc = weft_run(cancel_storm_main, &s, NULL);
    int ran = atomic_load(&s.ran);
    weft_pool_free(s.pool);
    CHECK(rc == 0, "weft_run: %d %s", rc, weft_errmsg());
    CHECK(s.cancelled == STORM_CALLERS, "%d callers saw their cancellation", s.cancelled);
    CHECK(s.other == 0, "%d calls failed otherwise", s.other);
    CHECK(s.succeeded > 0, "no call succeeded before the cancellations");
    CHECK(ran >= s.succeeded && ran <= s.submitted, "%d calls ran, %d submitted, %d succeeded", ran, s.submitted,
          s.succeeded);
}

/* ---- a shutdown without waiting from a plain thread while two loops submit ---------- */

typedef struct dropping {
    weft_pool *pool;
    atomic_int ran;
    atomic_int ok, shut_down, other;
} dropping;

static void *five_ms(void *arg)
{
    dropping *d = arg;
    pause_us(5000);
    atomic_fetch_add(&d->ran, 1);
    return NULL;
}

static void *dropping_caller(void *arg)
{
    dropping *d = arg;
    for (;;) {
        int rc = weft_pool_run(d->pool, five_ms, d, NULL);
        if (rc == 0) {
            atomic_fetch_add(&d->ok, 1);
            continue;
        }
        if (rc == -ESHUTDOWN && (strstr(weft_errmsg(), "shut down") != NULL))
            atomic_fetch_add(&d->shut_down, 1);
        else
            atomic_fetch_add(&d->other, 1);
        return NULL;
    }
}

static void *dropping_main(void *arg)
{
    weft_task *tasks[8];
    for (int i = 0; i < 8; i++)
        tasks[i] = weft_spawn(dropping_caller, arg);
    weft_gather(tasks, 8, NULL, NULL, WEFT_RETURN_EXCEPTIONS);
    return NULL;
}

static void *run_dropping_loop(void *arg)
{
    weft_run(dropping_main, arg, NULL);
    return NULL;
}

static void shutdown_without_wait_from_a_plain_thread(void)
{
    dropping d;
    memset(&d, 0, sizeof d);
    d.pool = weft_pool_new(1);
    CHECK(d.pool != NULL, "weft_pool_new: %s", weft_errmsg());
    pthread_t loops[2];
    for (int i = 0; i < 2; i++)
        CHECK(pthread_create(&loops[i], NULL, run_dropping_loop, &d) == 0, "pthread_create");
    pause_us(30 * 1000);
    CHECK(weft_pool_shutdown(d.pool, false) == 0, "weft_pool_shutdown: %s", weft_errmsg());
    for (int i = 0; i < 2; i++)
        pthread_join(loops[i], NULL);
    weft_pool_free(d.pool);
    CHECK(atomic_load(&d.other) == 0, "%d calls failed with another error", atomic_load(&d.other));
    CHECK(atomic_load(&d.shut_down) == 16, "%d callers saw -ESHUTDOWN", atomic_load(&d.shut_down));
    CHECK(atomic_load(&d.ok) == atomic_load(&d.ran), "%d calls returned, %d ran", atomic_load(&d.ok),
          atomic_load(&d.ran));
    CHECK(atomic_load(&d.ran) >= 1, "no call ran in 30 ms");
}

/* ---- weft_run_in_loop from plain threads ------------------------------------------------- */

#define ASKERS 4
#define ASKS_EACH 200

typedef struct asked_loop {
    weft_loop *loop;
    atomic_int askers_done;
    atomic_int slow_task_cancelled;
    atomic_int failures;
    char failure[256];
} asked_loop;

static asked_loop the_asked;

static void *yield_then_add_one(void *arg)
{
    weft_yield();
    return (void *)((intptr_t)arg + 1);
}

static void *fail_in_loop(void *arg)
{
    return weft_fail(-EIO, "bad %d", (int)(intptr_t)arg);
}

static void *sleep_long(void *arg)
{
    (void)arg;
    if (weft_sleep(10) == -ECANCELED)
        atomic_store(&the_asked.slow_task_cancelled, 1);
    return NULL;
}

static void *nothing(void *arg)
{
    return arg;
}

/*
 * A plain thread's latest error message lives in thread-local storage that nothing
 * frees when the thread exits (error.c), so LeakSanitizer reports it. A successful
 * weft_run replaces it with none: threads of these tests that received messages end
 * with one.
 */
static void forget_thread_message(void)
{
    weft_run(nothing, NULL, NULL);
}

static void ask_failed(const char *what)
{
    if (atomic_fetch_add(&the_asked.failures, 1) == 0)
        snprintf(the_asked.failure, sizeof the_asked.failure, "%s", what);
}

static void *asker(void *arg)
{
    intptr_t index = (intptr_t)arg;
    char text[256];
    for (intptr_t i = 0; i < ASKS_EACH; i++) {
        void *r = NULL;
        int rc = weft_run_in_loop(the_asked.loop, yield_then_add_one, (void *)(index * 1000 + i), &r, WEFT_FOREVER);
        if (rc != 0 || (intptr_t)r != index * 1000 + i + 1) {
            snprintf(text, sizeof text, "asker %ld call %ld: rc %d result %ld (%s)", (long)index, (long)i, rc,
                     (long)(intptr_t)r, weft_errmsg());
            ask_failed(text);
            break;
        }
    }
    if (index == 0) {
        void *r = (void *)1;
        int rc = weft_run_in_loop(the_asked.loop, fail_in_loop, (void *)(intptr_t)7, &r, 5.0);
        if (rc != -EIO || r != NULL || strcmp(weft_errmsg(), "bad 7") != 0) {
            snprintf(text, sizeof text, "failing task: rc %d, message '%s'", rc, weft_errmsg());
            ask_failed(text);
        }
    }
    if (index == 1) {
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        int rc = weft_run_in_loop(the_asked.loop, sleep_long, NULL, NULL, 0.05);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double took = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
        if (rc != -ETIMEDOUT || took < 0.04 || took > 2.0 || strstr(weft_errmsg(), "0.05 s") == NULL) {
            snprintf(text, sizeof text, "timeout: rc %d after %f s, message '%s'", rc, took, weft_errmsg());
            ask_failed(text);
        }
    }
    forget_thread_message();
    atomic_fetch_add(&the_asked.askers_done, 1);
    return NULL;
}

static void *asked_main(void *arg)
{
    (void)arg;
    the_asked.loop = weft_loop_current();
    pthread_t threads[ASKERS];
    for (intptr_t i = 0; i < ASKERS; i++)
        if (pthread_create(&threads[i], NULL, asker, (void *)i) != 0)
            return weft_fail(-EAGAIN, "pthread_create failed");
    double give_up = weft_time() + 60;
    while ((atomic_load(&the_asked.askers_done) < ASKERS || !atomic_load(&the_asked.slow_task_cancelled)) &&
           weft_time() < give_up)
        weft_sleep(0.001);
    for (int i = 0; i < ASKERS; i++)
        pthread_join(threads[i], NULL); /* they are done: this blocks only briefly */
    return NULL;
}

static void run_in_loop_from_plain_threads(void)
{
    memset(&the_asked, 0, sizeof the_asked);
    int rc = weft_run(asked_main, NULL, NULL);
    CHECK(rc == 0, "weft_run: %d %s", rc, weft_errmsg());
    CHECK(atomic_load(&the_asked.failures) == 0, "%d failures, the first: %s", atomic_load(&the_asked.failures),
          the_asked.failure);
    CHECK(atomic_load(&the_asked.slow_task_cancelled) == 1, "the timed-out task was not cancelled");
}

/* The loop finishes while a thread waits for its task: -ESHUTDOWN. */
typedef struct late_asker {
    weft_loop *loop;
    pthread_t thread;
    atomic_int task_started;
    int rc;
    char msg[160];
} late_asker;

static void *note_start_and_sleep(void *arg)
{
    late_asker *a = arg;
    atomic_store(&a->task_started, 1);
    weft_sleep(10);
    return NULL;
}

static void *ask_and_wait(void *arg)
{
    late_asker *a = arg;
    a->rc = weft_run_in_loop(a->loop, note_start_and_sleep, a, NULL, WEFT_FOREVER);
    snprintf(a->msg, sizeof a->msg, "%s", weft_errmsg());
    forget_thread_message();
    return NULL;
}

static void *late_main(void *arg)
{
    late_asker *a = arg;
    a->loop = weft_loop_current();
    if (pthread_create(&a->thread, NULL, ask_and_wait, a) != 0)
        return weft_fail(-EAGAIN, "pthread_create failed");
    while (!atomic_load(&a->task_started))
        weft_sleep(0.001);
    return NULL; /* the asked task is a leftover now: it is cancelled */
}

static void run_in_loop_when_the_loop_finishes_first(void)
{
    late_asker a;
    memset(&a, 0, sizeof a);
    a.rc = 1;
    CHECK(weft_run(late_main, &a, NULL) == 0, "weft_run: %s", weft_errmsg());
    pthread_join(a.thread, NULL);
    CHECK(a.rc == -ESHUTDOWN, "rc %d (%s)", a.rc, a.msg);
    CHECK(strstr(a.msg, "finished") != NULL, "message: %s", a.msg);
}

/* ---- objects of one loop, used from elsewhere ------------------------------------- */

/* A loop's task, queue and future, used from a plain thread and from a second
 * loop: each call is refused with its own code (WEFT_ENOTINLOOP without a loop,
 * WEFT_ESTATE from another loop) and changes nothing, where weft_cancel used to
 * crash, put_nowait to race, and a second loop's put to wake a getter on the wrong
 * loop. */
typedef struct foreign_use {
    weft_loop *owner;
    weft_task *task;
    weft_queue *q;
    weft_future *f;
    weft_future *done;
    weft_chan *ch;
    int second_send_rc, second_cancel_code, second_await_rc;
    bool second_cancel_rc;
    bool cancel_rc;
    int cancel_code, put_nowait_rc, set_rc;
    int second_put_rc, second_set_rc, second_get_rc;
    char second_put_msg[256];
    pthread_t thread;
} foreign_use;

static void *second_loop_main(void *arg)
{
    foreign_use *u = arg;
    u->second_put_rc = weft_queue_put(u->q, "from the second loop");
    snprintf(u->second_put_msg, sizeof u->second_put_msg, "%s", weft_errmsg());
    void *item = NULL;
    u->second_get_rc = weft_queue_get_nowait(u->q, &item);
    u->second_set_rc = weft_future_set_result(u->f, "from the second loop");
    int v = 5;
    u->second_send_rc = weft_chan_send(u->ch, &v);
    /* The first loop's task: refused before its record is touched. */
    u->second_cancel_rc = weft_cancel(u->task, NULL);
    u->second_cancel_code = weft_errcode();
    u->second_await_rc = weft_await(u->task, NULL);
    return NULL;
}

static void foreign_done(void *arg)
{
    foreign_use *u = arg;
    weft_future_set_result(u->done, NULL);
}

static void *foreign_thread(void *arg)
{
    foreign_use *u = arg;
    u->cancel_rc = weft_cancel(u->task, "from a plain thread");
    u->cancel_code = weft_errcode();
    u->put_nowait_rc = weft_queue_put_nowait(u->q, "from a plain thread");
    u->set_rc = weft_future_set_result(u->f, "from a plain thread");
    weft_run(second_loop_main, u, NULL);
    weft_call_soon_threadsafe(u->owner, foreign_done, u);
    return NULL;
}

static void *sleeps_long(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)weft_sleep(0.5);
}

static void *foreign_owner_main(void *arg)
{
    foreign_use *u = arg;
    u->owner = weft_loop_current();
    u->task = weft_spawn(sleeps_long, NULL);
    u->q = weft_queue_new(4);
    u->f = weft_future_new();
    u->done = weft_future_new();
    u->ch = weft_chan_new(sizeof(int), 1);
    if (pthread_create(&u->thread, NULL, foreign_thread, u) != 0)
        return weft_fail(-EAGAIN, "pthread_create");
    int rc = weft_future_await(u->done, NULL);
    pthread_join(u->thread, NULL);
    if (rc != 0)
        return weft_fail(rc, "await done: %s", weft_errmsg());
    /* Nothing changed: the task was not cancelled, no item arrived, the future is pending. */
    void *result = NULL;
    rc = weft_await(u->task, &result);
    if (rc != 0 || (intptr_t)result != 0)
        return weft_fail(-EIO, "the task was disturbed: rc %d, its sleep gave %ld", rc, (long)(intptr_t)result);
    if (weft_queue_size(u->q) != 0)
        return weft_fail(-EIO, "%zu item(s) reached the queue from elsewhere", weft_queue_size(u->q));
    if (weft_future_done(u->f))
        return weft_fail(-EIO, "the future was set from elsewhere");
    if (weft_chan_len(u->ch) != 0)
        return weft_fail(-EIO, "a value reached the channel from another loop");
    weft_chan_free(u->ch);
    weft_queue_free(u->q);
    weft_future_free(u->f);
    weft_future_free(u->done);
    return NULL;
}

static void objects_refuse_other_threads_and_loops(void)
{
    foreign_use u = {0};
    int rc = weft_run(foreign_owner_main, &u, NULL);
    CHECK(rc == 0, "weft_run: %d %s", rc, weft_errmsg());
    CHECK(!u.cancel_rc && u.cancel_code == WEFT_ENOTINLOOP, "weft_cancel from a plain thread: %d, code %d",
          u.cancel_rc, u.cancel_code);
    CHECK(u.put_nowait_rc == WEFT_ENOTINLOOP, "put_nowait from a plain thread: %d", u.put_nowait_rc);
    CHECK(u.set_rc == WEFT_ENOTINLOOP, "future_set_result from a plain thread: %d", u.set_rc);
    CHECK(u.second_put_rc == WEFT_ESTATE, "put from a second loop: %d", u.second_put_rc);
    CHECK(strstr(u.second_put_msg, "another thread's loop") != NULL, "message: %s", u.second_put_msg);
    CHECK(u.second_get_rc == WEFT_ESTATE, "get_nowait from a second loop: %d", u.second_get_rc);
    CHECK(u.second_set_rc == WEFT_ESTATE, "future_set_result from a second loop: %d", u.second_set_rc);
    CHECK(u.second_send_rc == WEFT_ESTATE, "chan_send from a second loop: %d", u.second_send_rc);
    CHECK(!u.second_cancel_rc && u.second_cancel_code == WEFT_ESTATE, "weft_cancel from a second loop: %d, %d",
          u.second_cancel_rc, u.second_cancel_code);
    CHECK(u.second_await_rc == WEFT_ESTATE, "weft_await from a second loop: %d", u.second_await_rc);
}

/* ---- a loop's handle after its weft_run has returned --------------------------------- */

/* weft_call_soon_threadsafe and weft_run_in_loop with the handle of a loop that
 * has finished give -ESHUTDOWN safely (they used to read the freed loop: a heap
 * use-after-free under ASan), and never reach a newer loop that reuses the memory. */
static weft_loop *old_loop;
static int posted_to_new_loop;
static int stale_post_in_new_loop;

static void *remember_loop(void *arg)
{
    (void)arg;
    old_loop = weft_loop_current();
    return NULL;
}

static void count_stale_post(void *arg)
{
    (void)arg;
    posted_to_new_loop++;
}

static void *new_loop_main(void *arg)
{
    (void)arg;
    stale_post_in_new_loop = weft_call_soon_threadsafe(old_loop, count_stale_post, NULL);
    weft_sleep(0.01);
    return weft_loop_current() == old_loop ? weft_fail(-EIO, "the new loop has the old handle") : NULL;
}

static void *stale_never_runs(void *arg)
{
    return arg;
}

static void handles_of_finished_loops_are_refused(void)
{
    posted_to_new_loop = 0;
    CHECK(weft_run(remember_loop, NULL, NULL) == 0, "weft_run: %s", weft_errmsg());
    CHECK(old_loop != NULL, "no loop handle");
    CHECK(weft_call_soon_threadsafe(old_loop, count_stale_post, NULL) == -ESHUTDOWN, "post to a finished loop");
    CHECK(weft_run_in_loop(old_loop, stale_never_runs, NULL, NULL, 1) == -ESHUTDOWN, "run_in_loop: %s", weft_errmsg());
    int rc = weft_run(new_loop_main, NULL, NULL);
    CHECK(rc == 0, "second weft_run: %d %s", rc, weft_errmsg());
    CHECK(stale_post_in_new_loop == -ESHUTDOWN, "old handle inside a new loop: %d", stale_post_in_new_loop);
    CHECK(posted_to_new_loop == 0, "a call for the finished loop ran in the new one");
}

/* ---- notifiers from other threads ------------------------------------------------
 *
 * Rounds: a thread sets `want` to i and notifies, then waits until the callback has
 * seen i. A notify made after the callback started must make another call, so a
 * lost one leaves the thread waiting (and the round fails after 5 s). */

#define NOTIFY_ROUNDS 2000

typedef struct rounds {
    weft_notifier *n;
    weft_event *all_seen;
    atomic_int want, got;
    atomic_int thread_failed;         /* 1: weft_notify failed, 2: a round was lost */
    int calls;                        /* the loop's thread only */
} rounds;

static void rounds_ack(void *arg)
{
    rounds *r = arg;
    r->calls++;
    int w = atomic_load(&r->want);
    atomic_store(&r->got, w);
    if (w == NOTIFY_ROUNDS) {
        weft_event_set(r->all_seen);
        return;
    }
    /* Stay in the callback until the thread's next notify has come (at most
     * ~1 ms): that notify, made while the callback runs, must make another call. */
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    do {
        clock_gettime(CLOCK_MONOTONIC, &now);
    } while (atomic_load(&r->want) == w &&
             (now.tv_sec - start.tv_sec) * 1000000000L + (now.tv_nsec - start.tv_nsec) < 1000000L);
}

static void *rounds_thread(void *arg)
{
    rounds *r = arg;
    for (int i = 1; i <= NOTIFY_ROUNDS; i++) {
        atomic_store(&r->want, i);
        if (weft_notify(r->n) != 0) {
            atomic_store(&r->thread_failed, 1);
            return NULL;
        }
        struct timespec start;
        clock_gettime(CLOCK_MONOTONIC, &start);
        while (atomic_load(&r->got) < i) {
            struct timespec now;
            clock_gettime(CLOCK_MONOTONIC, &now);
            if (now.tv_sec - start.tv_sec > 5) {
                atomic_store(&r->thread_failed, 2);
                return NULL;
            }
            sched_yield();
        }
    }
    return NULL;
}

static void *rounds_main(void *arg)
{
    rounds *r = arg;
    r->all_seen = weft_event_new();
    r->n = weft_notifier_new(rounds_ack, r);
    if (!r->all_seen || !r->n)
        return weft_fail(-ENOMEM, "setup");
    pthread_t thread;
    if (pthread_create(&thread, NULL, rounds_thread, r) != 0)
        return weft_fail(-EAGAIN, "pthread_create failed");
    /* Only the notifier can wake this loop; the timeout bounds a lost round. */
    weft_timeout *scope = weft_timeout_enter(20);
    int rc = weft_event_wait(r->all_seen);
    rc = weft_timeout_exit(scope, rc);
    pthread_join(thread, NULL);
    weft_notifier_free(r->n);
    weft_event_free(r->all_seen);
    return rc ? weft_fail(rc, "waiting for the rounds: %s", weft_errmsg()) : NULL;
}

static void notify_rounds_from_a_thread_are_never_lost(void)
{
    static rounds r;
    memset(&r, 0, sizeof r);
    int rc = weft_run(rounds_main, &r, NULL);
    CHECK(atomic_load(&r.thread_failed) == 0, "thread: %s (round %d)",
          atomic_load(&r.thread_failed) == 1 ? "weft_notify failed" : "a notify was lost", atomic_load(&r.got) + 1);
    CHECK(rc == 0, "weft_run: %d %s", rc, weft_errmsg());
    CHECK(r.calls >= NOTIFY_ROUNDS, "%d calls for %d rounds", r.calls, NOTIFY_ROUNDS);
}

/* Four threads notify at once: every notify made before the callback last started
 * is seen by it (`sent` counts them before each notify), merged into far fewer
 * calls; then the notifier is freed, and later the loop ends, while they notify:
 * each thread then gets -ESHUTDOWN, never a crash or a race (TSan, ASan). */

#define NOTIFY_THREADS 4
#define NOTIFIES_PER_THREAD 20000

typedef struct storm_of_notifies {
    weft_notifier *n;
    atomic_long sent;
    atomic_int finished;
    long seen;                        /* `sent` as the latest callback saw it */
    long calls;
} storm_of_notifies;

typedef struct notifier_thread {
    pthread_t thread;
    storm_of_notifies *s;
    long limit;                       /* 0: until weft_notify refuses */
    long accepted;
    int last_rc;
} notifier_thread;

static void storm_seen(void *arg)
{
    storm_of_notifies *s = arg;
    s->calls++;
    s->seen = atomic_load(&s->sent);
}

static void *notifier_thread_main(void *arg)
{
    notifier_thread *t = arg;
    for (long i = 0; t->limit == 0 || i < t->limit; i++) {
        atomic_fetch_add(&t->s->sent, 1);
        t->last_rc = weft_notify(t->s->n);
        if (t->last_rc != 0)
            break;
        t->accepted++;
    }
    atomic_fetch_add(&t->s->finished, 1);
    return NULL;
}

static int start_notifiers(notifier_thread *ts, storm_of_notifies *s, long limit)
{
    atomic_store(&s->finished, 0);
    for (int i = 0; i < NOTIFY_THREADS; i++) {
        ts[i] = (notifier_thread){.s = s, .limit = limit, .last_rc = 1};
        if (pthread_create(&ts[i].thread, NULL, notifier_thread_main, &ts[i]) != 0) {
            for (int j = 0; j < i; j++)
                pthread_join(ts[j].thread, NULL);
            return -EAGAIN;
        }
    }
    return 0;
}

static notifier_thread storm_threads[NOTIFY_THREADS];
static int storm_free_results[NOTIFY_THREADS];

static void *notify_storm_main(void *arg)
{
    storm_of_notifies *s = arg;
    s->n = weft_notifier_new(storm_seen, s);
    if (!s->n)
        return weft_fail(-ENOMEM, "notifier");
    /* 1. Merged, never lost. */
    if (start_notifiers(storm_threads, s, NOTIFIES_PER_THREAD) != 0)
        return weft_fail(-EAGAIN, "pthread_create failed");
    for (int i = 0; i < 20000 && atomic_load(&s->finished) < NOTIFY_THREADS; i++)
        weft_sleep(0.001);
    for (int i = 0; i < NOTIFY_THREADS; i++)
        pthread_join(storm_threads[i].thread, NULL);
    for (int i = 0; i < 2000 && s->seen < (long)NOTIFY_THREADS * NOTIFIES_PER_THREAD; i++)
        weft_sleep(0.001);
    /* 2. Freed while they notify. */
    if (start_notifiers(storm_threads, s, 0) != 0)
        return weft_fail(-EAGAIN, "pthread_create failed");
    weft_sleep(0.005);
    int rc = weft_notifier_free(s->n);
    for (int i = 0; i < NOTIFY_THREADS; i++) {
        pthread_join(storm_threads[i].thread, NULL);
        storm_free_results[i] = storm_threads[i].last_rc;
    }
    if (rc != 0)
        return weft_fail(rc, "weft_notifier_free: %s", weft_errmsg());
    /* 3. Left to the loop's end while they notify (joined after weft_run). */
    s->n = weft_notifier_new(storm_seen, s);
    if (!s->n || start_notifiers(storm_threads, s, 0) != 0)
        return weft_fail(-EAGAIN, "notifier or threads");
    weft_sleep(0.005);
    return NULL;
}

static void notifies_from_four_threads_merge_and_survive_free(void)
{
    static storm_of_notifies s;
    memset(&s, 0, sizeof s);
    int rc = weft_run(notify_storm_main, &s, NULL);
    for (int i = 0; i < NOTIFY_THREADS; i++)
        pthread_join(storm_threads[i].thread, NULL);
    CHECK(rc == 0, "weft_run: %d %s", rc, weft_errmsg());
    long total = (long)NOTIFY_THREADS * NOTIFIES_PER_THREAD;
    CHECK(s.seen >= total, "the last callback saw %ld of %ld notifies: one was lost", s.seen, total);
    CHECK(s.calls >= 1, "no call");
    for (int i = 0; i < NOTIFY_THREADS; i++) {
        CHECK(storm_free_results[i] == -ESHUTDOWN, "thread %d after free: %d", i, storm_free_results[i]);
        CHECK(storm_threads[i].last_rc == -ESHUTDOWN, "thread %d after the loop ended: %d", i,
              storm_threads[i].last_rc);
    }
    printf("    (%ld notifies before the free made %ld calls)\n", total, s.calls);
}

/* ---- runner ----------------------------------------------------------------------- */

static const struct {
    const char *name;
    void (*fn)(void);
} tests[] = {
    {"one_loop_per_thread_at_once", one_loop_per_thread_at_once},
    {"call_soon_threadsafe_from_four_threads", call_soon_threadsafe_from_four_threads},
    {"threadsafe_call_wakes_a_waiting_loop", threadsafe_call_wakes_a_waiting_loop},
    {"no_lost_wakeups_between_storms", no_lost_wakeups_between_storms},
    {"to_thread_from_loops_of_four_threads", to_thread_from_loops_of_four_threads},
    {"cancelling_calls_while_pool_threads_run_them", cancelling_calls_while_pool_threads_run_them},
    {"shutdown_without_wait_from_a_plain_thread", shutdown_without_wait_from_a_plain_thread},
    {"run_in_loop_from_plain_threads", run_in_loop_from_plain_threads},
    {"run_in_loop_when_the_loop_finishes_first", run_in_loop_when_the_loop_finishes_first},
    {"objects_refuse_other_threads_and_loops", objects_refuse_other_threads_and_loops},
    {"handles_of_finished_loops_are_refused", handles_of_finished_loops_are_refused},
    {"notify_rounds_from_a_thread_are_never_lost", notify_rounds_from_a_thread_are_never_lost},
    {"notifies_from_four_threads_merge_and_survive_free", notifies_from_four_threads_merge_and_survive_free},
};

int main(int argc, char **argv)
{
    int passed = 0, failed = 0;
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
        if (argc > 1 && strcmp(argv[1], tests[i].name) != 0)
            continue;
        checks_failed = 0;
        tests[i].fn();
        printf("%s threads::%s\n", checks_failed ? "FAIL" : "PASS", tests[i].name);
        fflush(stdout);
        if (checks_failed)
            failed++;
        else
            passed++;
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 && passed > 0 ? 0 : 1;
}
