/*
 * test_threads.c — the parts of the core that involve more than one thread: a loop
 * per thread running at the same time, and weft_call_soon_threadsafe hammered from
 * several threads (every callback runs once, in each thread's order, and a waiting
 * loop wakes up for it, round after round: no wake-up is ever lost). Labelled `threads` so the ThreadSanitizer build runs it.
 *
 * It uses no test framework: Criterion cannot start under ThreadSanitizer (its
 * runner's shared arena collides with TSan's memory layout: "Could not initialize
 * inheritable arena"). It prints one line per test, then "N passed, M failed", and
 * exits non-zero on any failure. `test_threads NAME` runs only the test NAME.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
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
        weft_handle watchdog = weft_call_later(5, storm_watchdog, s);
        double began = weft_time();
        atomic_store(&s->round_open, round);
        rc = weft_future_await(s->round_done, NULL);
        /* The calls of a stalled round run at last when the loop wakes for its
         * timer, maybe just before the watchdog is due: the time tells. */
        if (s->watchdog_fired || weft_time() - began > 1.0) {
            s->watchdog_fired = 1;
            rc = -ETIMEDOUT;
        }
        weft_handle_cancel(watchdog);
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

/* ---- runner ----------------------------------------------------------------------- */

static const struct {
    const char *name;
    void (*fn)(void);
} tests[] = {
    {"one_loop_per_thread_at_once", one_loop_per_thread_at_once},
    {"call_soon_threadsafe_from_four_threads", call_soon_threadsafe_from_four_threads},
    {"threadsafe_call_wakes_a_waiting_loop", threadsafe_call_wakes_a_waiting_loop},
    {"no_lost_wakeups_between_storms", no_lost_wakeups_between_storms},
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
