/*
 * weft/timeout.h — deadlines: timeout scopes (asyncio.timeout / timeout_at) and
 * awaiting a task with a time limit (asyncio.wait_for). WEFT_FOREVER, "no deadline",
 * is in weft/base.h.
 *
 * Part of weft's public header: include <weft.h>, not this file.
 */
#ifndef WEFT_TIMEOUT_H
#define WEFT_TIMEOUT_H

#include "base.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * A timeout scope (asyncio.timeout / timeout_at):
 *
 *     weft_timeout *to = weft_timeout_enter(1.5);
 *     int rc = do_work();                       // its suspension points return
 *     rc = weft_timeout_exit(to, rc);           // -ECANCELED once the deadline passes
 *     if (rc == -ETIMEDOUT) ...
 *
 * At the deadline the task's current suspension point is interrupted (as by
 * weft_cancel). weft_timeout_exit turns the -ECANCELED that caused into -ETIMEDOUT
 * and takes the cancellation back, so the task is not left cancelled. Nested scopes
 * each convert only their own expiry; a cancellation from elsewhere stays
 * -ECANCELED. A deadline already passed interrupts the next suspension point.
 * Scopes of one task must be exited in reverse order of entering.
 */
typedef struct weft_timeout weft_timeout;

/*
 * weft_timeout_enter — open a scope expiring `delay` seconds from now (WEFT_FOREVER:
 * no deadline until rescheduled); weft_timeout_enter_at — at loop time `when`.
 * Returns: the scope, or NULL with weft_errmsg().
 * Suspends: never.
 * Errors (NULL returned): -EINVAL for NaN, -ENOMEM, WEFT_ENOTINLOOP outside a
 *   task.
 */
WEFT_API weft_timeout *weft_timeout_enter(double delay);
WEFT_API weft_timeout *weft_timeout_enter_at(double when);

/*
 * weft_timeout_reschedule — move the deadline to loop time `when` (WEFT_FOREVER: none).
 * Returns: 0.
 * Suspends: never.
 * Errors: WEFT_ESTATE if the scope has already expired; -EINVAL for NaN or a NULL
 *   scope; -ENOMEM (the old deadline stays); WEFT_ENOTINLOOP outside a loop.
 */
WEFT_API int weft_timeout_reschedule(weft_timeout *to, double when);

/* weft_timeout_when — the deadline in loop time.
 * Returns: the deadline; WEFT_FOREVER if none; NaN for NULL.
 * Suspends: never.
 * Errors: none. */
WEFT_API double weft_timeout_when(const weft_timeout *to);

/* weft_timeout_expired — true once the deadline has passed and interrupted the scope.
 * Returns: that; false for NULL.
 * Suspends: never.
 * Errors: none. */
WEFT_API bool weft_timeout_expired(const weft_timeout *to);

/*
 * weft_timeout_exit — close the scope and free it. `rc` is the body's outcome.
 * Returns: -ETIMEDOUT (message "timed out after ...") if the scope expired and rc is
 *   the -ECANCELED that caused; otherwise rc unchanged.
 * Suspends: never.
 * Errors (the scope is then left open, nothing changes): WEFT_ESTATE when called
 *   from another task or for a scope that is not the innermost one open; -EINVAL for
 *   NULL; WEFT_ENOTINLOOP outside a task. A task that returns inside a scope is
 *   reported on stderr and the scope is closed for it.
 */
WEFT_API int weft_timeout_exit(weft_timeout *to, int rc);

/*
 * weft_wait_for — await a task with a time limit (asyncio.wait_for). Consumes the
 * handle. On timeout the task is cancelled and its clean-up waited for; then
 * -ETIMEDOUT is returned — unless the task swallowed the cancellation and returned
 * a value or failed otherwise, which is then returned instead.
 * Returns: 0 (result in *result), the task's error, -ETIMEDOUT, -ECANCELED.
 * Suspends: unless the task has finished. timeout ≤ 0: a task not yet finished is
 *   cancelled at once and waited for. WEFT_FOREVER: weft_await.
 * Errors: as weft_await, plus -ETIMEDOUT; -EINVAL for a NaN timeout (the task is
 *   then detached: the handle is consumed in every case) or for a task another
 *   call is already awaiting (that handle is left alone); -ENOMEM (the task is
 *   detached and runs on).
 * On cancel: as weft_await (the task is cancelled and left to finish on its own).
 */
WEFT_API WEFT_WAIT int weft_wait_for(weft_task *t, double timeout, void **result);

#ifdef __cplusplus
}
#endif

#endif /* WEFT_TIMEOUT_H */
