/*
 * watchdog_target.c — a program for watchdog_test.py to watch: each mode holds (or does
 * not hold) the loop in a known way, and says on stdout, flushed, when its blocking call
 * has returned and how long it took, so the test can tell whether the watchdog spoke
 * while the loop was still blocked and whether its signal shortened the program's sleep.
 *
 *   sleep     a task named "blocker" calls sleep(2), a real blocking call
 *   nanosleep a task calls nanosleep(&ts, &left) once with ts = 1.5 s and no retry
 *   idle      a task waits 1 s with weft_sleep: the loop is idle, not blocked
 *   callback  a loop callback, on_tick, spins on the clock for 1.2 s
 *   twice     two tasks each block 0.8 s with sleep-like nanosleep, one after the other
 *   usleep    a task calls usleep(1500000), a relative sleep with no remaining-time argument
 *   foreign   as sleep, with SIGRTMIN+5 taken by the program's own handler first
 *   threads   two threads each run a loop whose task ("blocker-a", "blocker-b") sleeps 1 s
 *
 * The lines the test looks for carry marker comments ("MARK: name").
 */
#define _GNU_SOURCE
#include <weft.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *blocker(void *arg)
{
    (void)arg;
    double t0 = now_s();
    unsigned left = sleep(2); /* MARK: sleep */
    printf("sleep returned after %.3f s, %u s left\n", now_s() - t0, left);
    return NULL;
}

static void *one_nanosleep(void *arg)
{
    (void)arg;
    double t0 = now_s();
    struct timespec ts = {1, 500000000}, left = {0, 0};
    int rc = nanosleep(&ts, &left); /* MARK: nanosleep */
    printf("nanosleep returned %d (%s) after %.3f s, %.3f s left\n", rc, rc ? strerror(errno) : "ok",
           now_s() - t0, (double)left.tv_sec + (double)left.tv_nsec / 1e9);
    return NULL;
}

static void *one_usleep(void *arg)
{
    (void)arg;
    double t0 = now_s();
    int rc = usleep(1500000); /* MARK: usleep */
    printf("usleep returned %d after %.3f s\n", rc, now_s() - t0);
    return NULL;
}

static void *idler(void *arg)
{
    (void)arg;
    int rc = weft_sleep(1.0);
    printf("idle wait ended: %d\n", rc);
    return NULL;
}

static void on_tick(void *arg)
{
    (void)arg;
    double t0 = now_s();
    while (now_s() - t0 < 1.2) { /* MARK: spin */
    }
    printf("callback returned\n");
}

static void *hold(void *arg)
{
    double seconds = *(double *)arg;
    struct timespec ts = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) { /* MARK: hold */
    }
    printf("%s held the loop %.1f s\n", weft_task_name(NULL), seconds);
    return NULL;
}

static void *main_task(void *arg)
{
    const char *mode = arg;
    if (strcmp(mode, "sleep") == 0) {
        weft_spawn_options o = {.name = "blocker"};
        weft_task *t = weft_spawn_opts(blocker, NULL, &o); /* MARK: spawn */
        return t && weft_await(t, NULL) == 0 ? NULL : "failed";
    }
    if (strcmp(mode, "nanosleep") == 0) {
        weft_task *t = weft_spawn(one_nanosleep, NULL);
        return t && weft_await(t, NULL) == 0 ? NULL : "failed";
    }
    if (strcmp(mode, "usleep") == 0) {
        weft_task *t = weft_spawn(one_usleep, NULL);
        return t && weft_await(t, NULL) == 0 ? NULL : "failed";
    }
    if (strcmp(mode, "idle") == 0) {
        weft_task *t = weft_spawn(idler, NULL);
        return t && weft_await(t, NULL) == 0 ? NULL : "failed";
    }
    if (strcmp(mode, "callback") == 0) {
        weft_call_soon(on_tick, NULL);
        return weft_sleep(0.1) == 0 ? NULL : "failed";
    }
    if (strcmp(mode, "twice") == 0) {
        static double d = 0.8;
        weft_spawn_options a = {.name = "first"}, b = {.name = "second"};
        weft_task *ts[2] = {weft_spawn_opts(hold, &d, &a), weft_spawn_opts(hold, &d, &b)};
        return ts[0] && ts[1] && weft_gather(ts, 2, NULL, NULL, 0) == 0 ? NULL : "failed";
    }
    fprintf(stderr, "watchdog_target: unknown mode %s\n", mode);
    return "failed";
}

static void *named_sleeper(void *arg)
{
    (void)arg;
    sleep(1); /* MARK: threads */
    printf("%s slept\n", weft_task_name(NULL));
    return NULL;
}

static void *loop_main(void *arg)
{
    weft_spawn_options o = {.name = arg};
    weft_task *t = weft_spawn_opts(named_sleeper, NULL, &o);
    return t && weft_await(t, NULL) == 0 ? NULL : "failed";
}

/* One loop on a thread of its own: its result, or "failed" if weft_run failed. */
static void *loop_thread(void *name)
{
    void *result = NULL;
    if (weft_run(loop_main, name, &result) != 0) {
        fprintf(stderr, "watchdog_target: weft_run: %s\n", weft_errmsg());
        return "failed";
    }
    return result;
}

static int two_loops(void)
{
    pthread_t a, b;
    void *ra = "failed", *rb = "failed";
    if (pthread_create(&a, NULL, loop_thread, "blocker-a") != 0)
        return 1;
    if (pthread_create(&b, NULL, loop_thread, "blocker-b") != 0) {
        pthread_join(a, NULL);
        return 1;
    }
    pthread_join(a, &ra);
    pthread_join(b, &rb);
    printf("done\n");
    return ra || rb ? 1 : 0;
}

static void on_own_signal(int sig)
{
    (void)sig;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc != 2) {
        fprintf(stderr, "usage: watchdog_target sleep|nanosleep|usleep|idle|callback|twice|foreign|threads\n");
        return 2;
    }
    const char *mode = argv[1];
    if (strcmp(mode, "threads") == 0)
        return two_loops();
    if (strcmp(mode, "foreign") == 0) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_own_signal;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGRTMIN + 5, &sa, NULL);
        mode = "sleep";
    }
    void *result = NULL;
    int rc = weft_run(main_task, (void *)mode, &result);
    if (rc != 0) {
        fprintf(stderr, "watchdog_target: weft_run: %s\n", weft_errmsg());
        return 1;
    }
    printf("done\n");
    return result ? 1 : 0;
}
