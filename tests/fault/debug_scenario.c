/*
 * debug_scenario.c — the debug layer for the fault sweep: a loop run with everything
 * that looks inside it switched on (debug mode with a threshold every step passes, the
 * watchdog, a trace, step timing, the SIGQUIT dump), run once per injection point with
 * that allocation or system call failing. Tasks wait on a sleep, a lock another holds,
 * a queue, a thread pool call and an awaited task; a detached task fails with nobody to
 * retrieve its error; a task dumps the loop and reads its metrics. It must end by
 * itself with status 0 every time: an error from weft (weft_run refusing to start
 * because the watchdog's thread or the trace's file could not be made, a dump cut
 * short) is acceptable, a crash, hang or leak is not.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "weft.h"

#define HANG_S 10.0 /* far beyond a clean run (~0.1 s); a run that reaches it hangs */

static weft_lock *lock;
static weft_queue *queue;

static void *holder(void *arg)
{
    (void)arg;
    if (weft_lock_acquire(lock) != 0)
        return NULL;
    (void)weft_sleep(0.01);
    weft_lock_release(lock);
    return NULL;
}

static void *contender(void *arg)
{
    (void)arg;
    if (weft_lock_acquire(lock) == 0)
        weft_lock_release(lock);
    return NULL;
}

static void *consumer(void *arg)
{
    (void)arg;
    void *item = NULL;
    (void)weft_queue_get(queue, &item);
    return item;
}

static void *blocking(void *arg)
{
    (void)arg;
    usleep(5000);
    return NULL;
}

static void *offloader(void *arg)
{
    (void)arg;
    void *out = NULL;
    (void)weft_to_thread(blocking, NULL, &out);
    return out;
}

static void *failing(void *arg)
{
    (void)arg;
    return weft_fail(-EIO, "failing on purpose, with nobody to retrieve it");
}

static void *look_inside(void *arg)
{
    (void)arg;
    FILE *out = fopen("/dev/null", "w");
    if (out) {
        (void)weft_dump(out);
        fclose(out);
    }
    weft_loop_metrics m;
    (void)weft_get_loop_metrics(&m);
    return NULL;
}

static void *amain(void *arg)
{
    int *timed_out = arg;
    weft_timeout *hang = weft_timeout_enter(HANG_S);
    lock = weft_lock_new();
    queue = weft_queue_new(4);
    weft_task *tasks[5] = {0};
    size_t n = 0;
    if (lock && queue) {
        weft_fn fns[] = {holder, contender, consumer, offloader, look_inside};
        weft_task *waits_for_item = NULL;
        for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
            weft_task *t = weft_spawn(fns[i], NULL);
            if (t)
                tasks[n++] = t;
            if (fns[i] == consumer)
                waits_for_item = t;
        }
        weft_task *f = weft_spawn(failing, NULL);
        if (f)
            weft_detach(f);
        (void)weft_sleep(0.02);
        /* The queue's first put makes its ring: without memory for it, the consumer
         * would wait for ever, so it is cancelled instead. */
        if (weft_queue_put_nowait(queue, "item") != 0 && waits_for_item)
            weft_cancel(waits_for_item, NULL);
    }
    /* Every task is awaited whatever happened, so none is left for the loop's end. */
    for (size_t i = 0; i < n; i++) {
        if (weft_timeout_expired(hang))
            weft_cancel(tasks[i], NULL);
        (void)weft_await(tasks[i], NULL);
    }
    if (hang) {
        *timed_out = weft_timeout_expired(hang);
        (void)weft_timeout_exit(hang, 0);
    }
    if (queue)
        weft_queue_free(queue);
    if (lock)
        weft_lock_free(lock);
    return NULL;
}

int main(void)
{
    char trace[64];
    snprintf(trace, sizeof trace, "/tmp/weft-fault-trace.%d.json", (int)getpid());
    weft_options opts = {
        .debug = 1,
        .slow_step = 1e-6, /* every step is "slow": the report's path runs at every step */
        .watchdog = 10,
        .trace_file = trace,
        .time_steps = 1,
        .dump_signal = 1,
    };
    int timed_out = 0;
    int rc = weft_run_opts(amain, &timed_out, NULL, &opts);
    unlink(trace);
    if (timed_out) {
        fprintf(stderr, "debug_scenario: still running after %.0f s: a hang\n", HANG_S);
        return 1;
    }
    if (!getenv("WEFT_FAULT_AT") && rc != 0) {
        fprintf(stderr, "debug_scenario: failed without a fault: %s\n", weft_errmsg());
        return 1;
    }
    return 0;
}
