/*
 * weft/debug.h — seeing inside a running loop: task dumps and the loop's metrics.
 * Debug mode, the blocked-loop watchdog, the SIGQUIT dump and the timeline trace are
 * switched on by weft_options (weft/loop.h) or the environment (WEFT_DEBUG=1,
 * WEFT_WATCHDOG=SECONDS, WEFT_DUMP_SIGNAL=1, WEFT_TRACE=FILE); the guide's chapter
 * "Seeing inside the loop" shows each at work.
 *
 * Part of weft's public header: include <weft.h>, not this file.
 */
#ifndef WEFT_DEBUG_H
#define WEFT_DEBUG_H

#include "base.h"

#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * weft_dump — print every task of the calling thread's loop to `out` (stderr when
 * NULL), as Go prints its goroutines on SIGQUIT: each task's id, name and state, what
 * it waits on (which lock and who holds it, which queue, channel, descriptor, timer
 * and when it fires, which task it awaits, which thread pool call) and for how long,
 * where it was created, and its stack trace, file:line; then the loop's callbacks
 * waiting to run and its thread pool calls in flight. Where each task was created and
 * how long it has waited are known in debug mode (WEFT_DEBUG=1); the rest always.
 * A task's stack is its frames innermost first, weft's own included (weft_sleep, the
 * lock's acquire) down to the task's function; a compact task's frames, copied off
 * the shared stack while another runs, are not shown (gdb's `weft bt` shows them).
 * The format is for people, not programs: it may change between versions.
 * With weft_options.dump_signal (WEFT_DUMP_SIGNAL=1, or debug mode), SIGQUIT (Ctrl-\)
 * prints the same on stderr, from the loop, at its next iteration: a loop stuck in a
 * task that never yields prints it only once that task gives the loop back (the
 * watchdog, WEFT_WATCHDOG, reports such a task while it is stuck).
 * Returns: the number of tasks printed, or a negative error.
 * Suspends: never (it may be called from a task or a callback).
 * Errors: WEFT_ENOTINLOOP outside a running loop; -EIO when writing to `out` failed.
 */
WEFT_API int weft_dump(FILE *out);

/* The loop's counters, as tokio-metrics gives them to Tokio's users. Times are in
 * nanoseconds of real (monotonic) time, whatever the loop's clock. */
typedef struct weft_loop_metrics {
    uint64_t iterations;         /* turns of the loop (poll, timers, one batch of ready work) */
    uint64_t tasks_alive;        /* spawned and not finished, main included */
    uint64_t tasks_spawned;      /* since the loop started, main included */
    uint64_t ready;              /* tasks and callbacks ready to run now */
    uint64_t timers;             /* sleeps, timeouts and timed callbacks scheduled */
    uint64_t callbacks_run;      /* loop callbacks run since the loop started, weft's own
                                  * included (a thread pool call's completion is one) */
    uint64_t polls;              /* times the loop asked the kernel for I/O */
    int64_t elapsed_ns;          /* since the loop started */
    int64_t poll_ns;             /* in the poller, waiting for I/O or a timer included */
    int64_t run_ns;              /* the rest: running tasks, callbacks and the loop itself */
    /* Per step (one task running from one suspension to the next, or one callback):
     * measured only while steps are timed (weft_options.time_steps, debug mode or a
     * trace); steps_timed says whether they were. */
    int steps_timed;
    uint64_t steps;
    int64_t longest_step_ns;
    uint32_t longest_step_task_id; /* 0 when the longest step was a callback's */
    char longest_step_task[48];    /* that task's name then, or "(callback)" */
    /* The calls this loop made to thread pools (weft_to_thread, weft_pool_run), the
     * default pool's and its own pools' alike. */
    uint64_t pool_calls_queued;  /* waiting for a thread: not handed over yet, or in a pool's queue */
    uint64_t pool_calls_running; /* running on a pool's thread now */
} weft_loop_metrics;

/*
 * weft_get_loop_metrics — fill *out with the calling thread's loop's counters.
 * Cheap (no system call but one clock read, no lock): a task may poll it every
 * second and export it. The counters only grow while the loop runs (but the gauges:
 * tasks_alive, ready, timers, pool_calls_*); rates are differences between two reads.
 * The step in progress (the caller's own) is not counted yet.
 * Returns: 0.
 * Suspends: never.
 * Errors: WEFT_ENOTINLOOP outside a running loop; -EINVAL when out is NULL.
 */
WEFT_API int weft_get_loop_metrics(weft_loop_metrics *out);

#ifdef __cplusplus
}
#endif

#endif /* WEFT_DEBUG_H */
