/*
 * exec.h — what the executors layer (thread pools, the process pool) offers the
 * layers above it: the hooks weft_run calls. It may use core/ and below.
 */
#ifndef WEFT__SRC_EXEC_H
#define WEFT__SRC_EXEC_H

#include "core/core.h"

/* pool.c: the loop's port to the thread pools. Its drain runs when weft_run's
 * main has returned and every task is done: it waits (running the loop) until each
 * call this loop submitted to a thread pool is back, and leaves the default pool,
 * which its last user shuts down. */
extern const weft__module weft__module_pools;

/*
 * weft__to_thread_held — fn(arg) on the default pool, for a caller that must not
 * leave while fn runs because fn uses the caller's memory (a buffer being read
 * into or written from): the layers above build calls whose cancellation loses
 * nothing on it (fs/). Unlike weft_to_thread:
 *   - a cancellation that comes while fn runs does not end the wait: the task
 *     waits on until fn has returned (its cancellation set aside, as
 *     weft__wait_through_cancel does, and kept for its next suspension point), and
 *     *stop, when stop is not NULL, is set to 1 for fn to see between steps;
 *   - a call not yet started when its task is cancelled is taken back and never
 *     runs (-ECANCELED), unless `always`: then it runs, and is waited for, even
 *     for a task cancelled before the call (a close that must happen).
 * fn's return value is ignored: its outcome goes back through arg.
 * Returns 0 when fn ran (even if the task was cancelled meanwhile), -ECANCELED when
 * it never ran, or an error with its message: fn's weft_fail, -ENOMEM, -EAGAIN (no
 * thread could be started), WEFT_ENOTINLOOP; fn did not run after any of these but
 * weft_fail's. `what` names the call in messages.
 */
int weft__to_thread_held(weft_blocking_fn fn, void *arg, atomic_int *stop, bool always, const char *what);

/* pool.c, for weft_get_loop_metrics (loop thread): the calls loop L submitted to
 * thread pools that wait for a thread (*queued) and that run on one now (*running). */
void weft__pools_counts(weft_loop *L, uint64_t *queued, uint64_t *running);

/*
 * For weft_dump (debug/): the thread pool calls of loop L in flight whose task waits
 * for them, each told to fn (on the loop's thread; fn must not suspend or make
 * calls), and in *outstanding (may be NULL) every call L submitted whose completion
 * it has not processed, those whose task left (cancelled) included. Returns the
 * calls told.
 */
typedef struct weft__pool_call_info {
    weft_blocking_fn fn;
    void *arg;
    const weft_task *task;       /* the task waiting for it */
    const char *where;           /* "queued, waiting for a thread", "running on a pool thread", ... */
    bool running;
    bool held;                   /* weft__to_thread_held: its task waits through cancellation */
    bool default_pool;
} weft__pool_call_info;

size_t weft__pools_for_each_call(weft_loop *L, void (*fn)(const weft__pool_call_info *call, void *arg), void *arg,
                                 size_t *outstanding);

#endif
