/*
 * test_signal_threads.c — two loops in two threads, each owning a signal of its own
 * (loop A SIGUSR1, loop B SIGUSR2), while a third thread without a loop sends them:
 *   - each loop is refused the other's signal with -EBUSY naming the other's thread,
 *     for a handler and for a wait;
 *   - SIGUSR1 sent to B's thread (pthread_kill) is run by A's loop, on A's thread,
 *     and SIGUSR2 sent to A's thread by B's loop on B's thread: the thread that takes
 *     a signal only notifies; signals sent to the process (kill) arrive the same way;
 *   - each arrival is counted once, by the owning loop's callback and its waiting
 *     task, and neither loop ever runs the other's;
 *   - when the loops end, both signals are back at SIG_DFL;
 *   - neither loop's weft_run took SIGINT: only the main thread's does.
 * Labelled `threads`, so ThreadSanitizer runs it; without Criterion, which cannot
 * start under ThreadSanitizer (see test_threads.c). Prints one line, and exits
 * non-zero on any failure.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "weft.h"

#define ROUNDS 50

static atomic_int failures;

#define EXPECT(cond, ...)                                                         \
    do {                                                                          \
        if (!(cond)) {                                                            \
            fprintf(stderr, "%s:%d: failed: %s\n    ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                         \
            fputc('\n', stderr);                                                  \
            atomic_fetch_add(&failures, 1);                                       \
        }                                                                         \
    } while (0)

typedef struct side {
    const char *name;
    int sig, other_sig;
    struct side *other;
    pthread_t thread;
    atomic_long tid;          /* the loop's thread */
    atomic_int owns;          /* 1 once it owns sig */
    atomic_int seen;          /* arrivals its callback ran for */
    atomic_int waited;        /* arrivals its waiting task returned */
    atomic_int wrong_thread;  /* callbacks run on another thread than the loop's */
    int rc;
} side;

static atomic_int stop;

static long tid(void)
{
    return (long)syscall(SYS_gettid);
}

static void on_sig(int sig, unsigned arrivals, void *arg)
{
    side *s = arg;
    if (tid() != atomic_load(&s->tid) || sig != s->sig)
        atomic_fetch_add(&s->wrong_thread, 1);
    atomic_fetch_add(&s->seen, (int)arrivals);
}

static void *waiter(void *arg)
{
    side *s = arg;
    while (atomic_load(&s->waited) < ROUNDS * 2) {
        int n = weft_signal_wait(s->sig);
        if (n <= 0)
            break; /* cancelled at the end */
        atomic_fetch_add(&s->waited, n);
    }
    return NULL;
}

static void *loop_main(void *arg)
{
    side *s = arg;
    atomic_store(&s->tid, tid());
    struct sigaction intr;
    sigaction(SIGINT, NULL, &intr);
    EXPECT(intr.sa_handler == SIG_DFL, "%s: weft_run took SIGINT on a thread that is not the main one", s->name);
    int rc = weft_add_signal_handler(s->sig, on_sig, s);
    EXPECT(rc == 0, "%s: weft_add_signal_handler: %s", s->name, weft_errmsg());
    weft_task *w = weft_spawn(waiter, s);
    if (weft_yield() != 0)
        return NULL;
    atomic_store(&s->owns, 1);
    for (int i = 0; i < 10000 && !atomic_load(&s->other->owns); i++)
        if (weft_sleep(0.001) != 0)
            return NULL;
    char owner[32];
    snprintf(owner, sizeof owner, "thread %ld", atomic_load(&s->other->tid));
    rc = weft_add_signal_handler(s->other_sig, on_sig, s);
    EXPECT(rc == -EBUSY && strstr(weft_errmsg(), owner), "%s: the other's signal: %d (%s), owner %s", s->name, rc,
           weft_errmsg(), owner);
    rc = weft_signal_wait(s->other_sig);
    EXPECT(rc == -EBUSY, "%s: waiting for the other's signal: %d", s->name, rc);
    for (int i = 0; i < 30000 && !atomic_load(&stop); i++)
        if (weft_sleep(0.001) != 0)
            break;
    weft_cancel(w, NULL);
    (void)weft_await(w, NULL);
    return NULL;
}

static void *loop_thread(void *arg)
{
    side *s = arg;
    s->rc = weft_run(loop_main, s, NULL);
    return NULL;
}

static bool wait_until(atomic_int *v, int want)
{
    for (int i = 0; i < 5000; i++) {
        if (atomic_load(v) >= want)
            return true;
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    }
    return false;
}

int main(void)
{
    side a = {.name = "A", .sig = SIGUSR1, .other_sig = SIGUSR2};
    side b = {.name = "B", .sig = SIGUSR2, .other_sig = SIGUSR1};
    a.other = &b;
    b.other = &a;
    if (pthread_create(&a.thread, NULL, loop_thread, &a) != 0 || pthread_create(&b.thread, NULL, loop_thread, &b) != 0) {
        fprintf(stderr, "pthread_create failed\n");
        return 1;
    }
    bool started = wait_until(&a.owns, 1) && wait_until(&b.owns, 1);
    EXPECT(started, "the loops did not take their signals");
    for (int k = 1; started && k <= ROUNDS; k++) {
        /* To the other loop's thread: it notifies the owner. */
        pthread_kill(b.thread, SIGUSR1);
        EXPECT(wait_until(&a.seen, 2 * k - 1), "round %d: A did not see SIGUSR1 sent to B's thread", k);
        pthread_kill(a.thread, SIGUSR2);
        EXPECT(wait_until(&b.seen, 2 * k - 1), "round %d: B did not see SIGUSR2 sent to A's thread", k);
        /* To the process: whichever thread takes it. */
        kill(getpid(), SIGUSR1);
        EXPECT(wait_until(&a.seen, 2 * k), "round %d: A did not see SIGUSR1 sent to the process", k);
        kill(getpid(), SIGUSR2);
        EXPECT(wait_until(&b.seen, 2 * k), "round %d: B did not see SIGUSR2 sent to the process", k);
        if (atomic_load(&failures))
            break;
    }
    EXPECT(wait_until(&a.waited, 2 * ROUNDS) && wait_until(&b.waited, 2 * ROUNDS),
           "the waiting tasks returned %d and %d arrivals", atomic_load(&a.waited), atomic_load(&b.waited));
    atomic_store(&stop, 1);
    pthread_join(a.thread, NULL);
    pthread_join(b.thread, NULL);
    EXPECT(a.rc == 0 && b.rc == 0, "weft_run returned %d and %d", a.rc, b.rc);
    EXPECT(atomic_load(&a.seen) == 2 * ROUNDS && atomic_load(&b.seen) == 2 * ROUNDS,
           "callbacks saw %d and %d arrivals, %d each were sent", atomic_load(&a.seen), atomic_load(&b.seen),
           2 * ROUNDS);
    EXPECT(atomic_load(&a.waited) == 2 * ROUNDS && atomic_load(&b.waited) == 2 * ROUNDS,
           "waits returned %d and %d arrivals", atomic_load(&a.waited), atomic_load(&b.waited));
    EXPECT(atomic_load(&a.wrong_thread) == 0 && atomic_load(&b.wrong_thread) == 0,
           "callbacks run off their loop's thread: A %d, B %d", atomic_load(&a.wrong_thread),
           atomic_load(&b.wrong_thread));
    struct sigaction u1, u2;
    sigaction(SIGUSR1, NULL, &u1);
    sigaction(SIGUSR2, NULL, &u2);
    EXPECT(u1.sa_handler == SIG_DFL && u2.sa_handler == SIG_DFL, "the signals were not given back");
    int failed = atomic_load(&failures);
    printf("test_signal_threads: two loops, %d signals each: %s\n", 2 * ROUNDS, failed ? "FAILED" : "ok");
    return failed ? 1 : 0;
}
