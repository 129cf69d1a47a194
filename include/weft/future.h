/*
 * weft/future.h — futures (asyncio.Future): a result that will exist later, set by
 * one side and awaited by any number of tasks, with done callbacks.
 *
 * Part of weft's public header: include <weft.h>, not this file.
 */
#ifndef WEFT_FUTURE_H
#define WEFT_FUTURE_H

#include "base.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * A future: a result that will exist later (asyncio.Future). Pending until set
 * to a result, an error or cancelled, then done for good. Any number of tasks may
 * await it; done callbacks run from the loop in registration order, never
 * synchronously from the call that completed it. Owned by its creator, who frees
 * it with weft_future_free once nobody waits on it.
 */
typedef struct weft_future weft_future;
typedef void (*weft_future_done_fn)(weft_future *f, void *arg);

/* weft_future_new — a pending future of the running loop.
 * Returns: the future, or NULL (weft_errmsg() says which error).
 * Suspends: never.
 * Errors (NULL returned): -ENOMEM; WEFT_ENOTINLOOP outside a loop. */
WEFT_API weft_future *weft_future_new(void);

/*
 * weft_future_set_result / weft_future_set_error — complete the future; every
 * awaiting task is woken (in the order they started waiting) and every done
 * callback is scheduled. set_error takes a negative code (positive is negated,
 * 0 is -EINVAL) and a printf-style message (fmt may be NULL).
 * Returns: 0 (both).
 * Suspends: never.
 * Errors: WEFT_ESTATE if the future is already done (nothing changes), or belongs to
 *   another thread's loop; WEFT_ENOTINLOOP from a thread without a loop (post the
 *   call to the future's loop with weft_call_soon_threadsafe); -EINVAL for a NULL
 *   future.
 */
WEFT_API int weft_future_set_result(weft_future *f, void *result);
WEFT_API int weft_future_set_error(weft_future *f, int code, const char *fmt, ...) WEFT_PRINTF(3, 4);

/*
 * weft_future_cancel — cancel a pending future (future.cancel(msg)): its awaiters
 * get -ECANCELED with `msg` (may be NULL) as the message.
 * Returns: true if it was pending, false if already done (or f is NULL).
 * Suspends: never.
 * Errors: none.
 */
WEFT_API bool weft_future_cancel(weft_future *f, const char *msg);

/* weft_future_done / weft_future_cancelled — the future's state.
 * Returns: weft_future_done: true once it is done (result, error or cancelled);
 *   weft_future_cancelled: true if it was cancelled. Both false for NULL.
 * Suspends: never.
 * Errors: none. */
WEFT_API bool weft_future_done(const weft_future *f);
WEFT_API bool weft_future_cancelled(const weft_future *f);

/*
 * weft_future_await — wait until the future is done and read its outcome
 * (`await fut`). Does not consume the future: others may await it too.
 * `result` (may be NULL) receives the result.
 * Returns: 0; the future's error (weft_errmsg() holds its message); -ECANCELED if
 *   the future was cancelled or the caller is cancelled.
 * Suspends: unless the future is already done (then returns its outcome at once,
 *   even in a cancelled caller).
 * Errors: the future's error; -ECANCELED; -EINVAL (f NULL); WEFT_ENOTINLOOP.
 * On cancel: as in asyncio, cancelling a task that awaits a future cancels the
 *   future too (protect a shared future from that with a task and weft_shield); a
 *   task already cancelled that awaits a pending future cancels it as well. Every
 *   other awaiter then gets -ECANCELED.
 */
WEFT_API WEFT_WAIT int weft_future_await(weft_future *f, void **result);

/*
 * weft_future_result — the outcome of a done future without waiting
 * (future.result()).
 * Returns: as weft_future_await; -EINPROGRESS if still pending.
 * Suspends: never.
 * Errors: the future's error; -ECANCELED if it was cancelled; -EINPROGRESS; -EINVAL
 *   for NULL.
 */
WEFT_API int weft_future_result(const weft_future *f, void **result);

/*
 * weft_future_add_done_callback — run cb(f, arg) from the loop once f is done (soon,
 * if it already is), after the callbacks added before it.
 * Returns: 0.
 * Suspends: never.
 * Errors: -ENOMEM; -EINVAL for a NULL future or callback.
 */
WEFT_API int weft_future_add_done_callback(weft_future *f, weft_future_done_fn cb, void *arg);

/*
 * weft_future_remove_done_callback — removes every registration of (cb, arg) that
 * has not been scheduled yet.
 * Returns: how many it removed.
 * Suspends: never.
 * Errors: none.
 */
WEFT_API size_t weft_future_remove_done_callback(weft_future *f, weft_future_done_fn cb, void *arg);

/*
 * weft_future_free — release a future.
 * Returns: 0; NULL returns 0.
 * Suspends: never.
 * Errors: -EBUSY (nothing freed) while a task still waits on it or a done callback
 *   of it is scheduled but has not run.
 */
WEFT_API int weft_future_free(weft_future *f);

#ifdef __cplusplus
}
#endif

#endif /* WEFT_FUTURE_H */
