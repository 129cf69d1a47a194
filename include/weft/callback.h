/*
 * weft/callback.h — loop callbacks: scheduling plain functions on the loop
 * (call_soon, call_later, call_at), cancelling them, and asking a loop to run one
 * from another thread (call_soon_threadsafe).
 *
 * Part of weft's public header: include <weft.h>, not this file.
 */
#ifndef WEFT_CALLBACK_H
#define WEFT_CALLBACK_H

#include "base.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef void (*weft_callback_fn)(void *arg);

/*
 * A scheduled call (asyncio's Handle / TimerHandle), returned by value. ("Handle"
 * in weft always means a task pointer; this is a weft_call.) It stays safe to use
 * after the callback has run or been cancelled: the loop recognises a stale call
 * and weft_call_cancel then returns false. Use it only while the loop that made it
 * runs. A failed call returns a weft_call for which weft_call_ok() is false, with
 * weft_errmsg() saying why.
 */
typedef struct weft_call {
    void *rec;   /* the loop's record; NULL when the call failed */
    uint64_t id; /* which use of that record this weft_call names */
} weft_call;

/* weft_call_ok — true when the call that returned h succeeded.
 * Returns: that.
 * Suspends: never.
 * Errors: none. */
static inline bool weft_call_ok(weft_call h) { return h.rec != NULL; }

/*
 * weft_call_soon — run cb(arg) from the loop on its next iteration, after the tasks
 * and callbacks already ready (loop.call_soon). Callbacks run in the order they were
 * scheduled, outside any task: a callback must not suspend (weft_sleep etc. return
 * WEFT_ENOTINLOOP there), but may spawn tasks, schedule callbacks, set futures and
 * cancel tasks. From a task or a callback of a running loop.
 * Returns: the weft_call; not ok on an error (weft_errmsg() says which).
 * Suspends: never.
 * Errors (a weft_call that is not ok): -ENOMEM, a NULL cb (-EINVAL) or outside a
 *   loop (WEFT_ENOTINLOOP).
 */
WEFT_API weft_call weft_call_soon(weft_callback_fn cb, void *arg);

/*
 * weft_call_later — run cb(arg) from the loop after `delay` seconds
 * (loop.call_later); 0 or negative = on the next iteration's timer pass. Callbacks
 * due at the same time run in the order they were scheduled.
 * Returns: the weft_call; not ok on an error.
 * Suspends: never.
 * Errors: as weft_call_soon, and -EINVAL for a NaN delay.
 */
WEFT_API weft_call weft_call_later(double delay, weft_callback_fn cb, void *arg);

/* weft_call_at — as weft_call_later, at loop time `when` (see weft_time).
 * Returns: the weft_call; not ok on an error.
 * Suspends: never.
 * Errors: as weft_call_later (-EINVAL for a NaN time). */
WEFT_API weft_call weft_call_at(double when, weft_callback_fn cb, void *arg);

/*
 * weft_call_cancel — make sure a scheduled callback never runs (handle.cancel());
 * a timer leaves the timer structure at once.
 * Returns: true if the callback was pending and now will not run; false if it has
 *   already run (or is running), was already cancelled, or h is not ok.
 * Suspends: never.
 * Errors: none (false outside a loop).
 */
WEFT_API bool weft_call_cancel(weft_call h);

/*
 * weft_call_soon_threadsafe — from any thread, ask `loop` to run cb(arg) soon, in
 * the order of calls. Wakes the loop if it is waiting; many calls share one wake-up.
 * The loop comes from weft_loop_current(); a loop whose weft_run has returned (or
 * is finishing) refuses safely with -ESHUTDOWN, however long ago it ended.
 * Not async-signal-safe: it takes the loop's lock and may realloc its queue. From a
 * signal handler, use weft_notify (weft/notify.h) instead. A handler that calls it
 * while its own thread was interrupted inside it (holding the lock) gets -EDEADLK
 * rather than waiting forever: the locks are error-checking.
 * Returns: 0.
 * Suspends: never (takes the loop's lock for a moment).
 * Errors: -ENOMEM; -ESHUTDOWN if the loop has finished (cb will not run); -EINVAL
 *   for a NULL loop or cb. These codes come without a weft_errmsg() message.
 *   -EDEADLK when the calling thread already holds the loop's lock (called from a
 *   signal handler that interrupted it), with a message naming weft_notify.
 */
WEFT_API int weft_call_soon_threadsafe(weft_loop *loop, weft_callback_fn cb, void *arg);

#ifdef __cplusplus
}
#endif

#endif /* WEFT_CALLBACK_H */
