/*
 * weft/combine.h — waiting for several tasks: gather (outcomes in argument order),
 * wait (done and pending sets), as_completed (in the order they finish) and shield
 * (await without passing the caller's cancellation on).
 *
 * Part of weft's public header: include <weft.h>, not this file.
 */
#ifndef WEFT_COMBINE_H
#define WEFT_COMBINE_H

#include "base.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Flags for weft_gather. */
#define WEFT_RETURN_EXCEPTIONS 1u /* collect every error instead of returning the first */

/*
 * weft_gather — wait for n tasks and collect their outcomes in argument order
 * (asyncio.gather). Consumes every handle (after -EINVAL and -ENOMEM too: the tasks
 * are then detached and run on; only WEFT_ENOTINLOOP leaves them to the caller).
 * results[i] (results may be NULL) receives task i's return value, or NULL if it
 * failed; errs[i] (errs may be NULL) receives 0 or task i's error.
 * Without WEFT_RETURN_EXCEPTIONS: returns 0 when all succeeded; at the first
 * failure (by completion time) returns that error at once (weft_errmsg() holds its
 * message) while the other tasks keep running to completion on their own, their
 * outcomes dropped; results[]/errs[] of tasks finished by then are filled in, and
 * errs[i] of a task still running is -EINPROGRESS.
 * With WEFT_RETURN_EXCEPTIONS: waits for all; every slot holds a result or an
 * error; returns 0.
 * Returns: 0, or the first failure (see above).
 * Suspends: unless every task has already finished.
 * Errors: the first failure (see above); -ECANCELED; -EINVAL (a NULL
 *   task, the same task twice, a task already awaited, a child of a weft_group, or
 *   the calling task); -ENOMEM; WEFT_ENOTINLOOP.
 * On cancel: every unfinished task is cancelled and left to finish on its own;
 *   the outcomes of those already finished are dropped; returns -ECANCELED at once.
 */
WEFT_API WEFT_WAIT int weft_gather(weft_task **tasks, size_t n, void **results, int *errs, unsigned flags);

/*
 * weft_gather_msgs — weft_gather that also keeps every slot's error message, as
 * asyncio's return_exceptions keeps each exception object: msgs[i] (msgs may be
 * NULL) receives task i's message (malloc'd: release it with free()) or NULL when
 * it succeeded or was not finished.
 * Returns: as weft_gather.
 * Suspends: as weft_gather.
 * Errors: as weft_gather; -ENOMEM is never returned for a message: one that cannot
 *   be copied is NULL.
 * On cancel: as weft_gather; every msgs[i] is NULL.
 */
WEFT_API WEFT_WAIT int weft_gather_msgs(weft_task **tasks, size_t n, void **results, int *errs, char **msgs,
                              unsigned flags);

#define WEFT_FIRST_COMPLETED 1 /* return when any task finishes */
#define WEFT_FIRST_EXCEPTION 2 /* ... when any fails (not cancelled), else when all finish */
#define WEFT_ALL_COMPLETED 3   /* ... when all finish */

/*
 * weft_wait — wait for tasks (asyncio.wait) without consuming or cancelling any.
 * Fills done[] and pending[] (either may be NULL; each room for n) with the tasks,
 * each array in argument order, and their counts. A task's own error is never
 * returned: read it with weft_task_result or weft_await.
 * Returns: 0 when the condition was met or the timeout (seconds; WEFT_FOREVER for
 *   none) passed — on timeout the sets are partial.
 * Suspends: always, at least once, as asyncio.wait does: when the condition
 *   already holds or the timeout is ≤ 0, for one loop iteration (other ready tasks
 *   run first; no time passes), else until the condition or the timeout.
 * Errors: -ECANCELED (nothing is cancelled but the caller); -EINVAL (n == 0, a NULL
 *   or repeated task, the calling task itself, a bad return_when, NaN timeout);
 *   -ENOMEM; WEFT_ENOTINLOOP. On any error *ndone and *npending are 0.
 * On cancel: returns -ECANCELED at once; no task is cancelled or consumed, and
 *   *ndone and *npending are 0.
 */
WEFT_API WEFT_WAIT int weft_wait(weft_task *const *tasks, size_t n, int return_when, double timeout,
                       weft_task **done, size_t *ndone, weft_task **pending, size_t *npending);

/*
 * as_completed: the tasks in the order they finish (asyncio.as_completed):
 *
 *     weft_as_completed *ac = weft_as_completed_new(tasks, n, 5.0);
 *     weft_task *t;
 *     while ((rc = weft_as_completed_next(ac, &t)) > 0)
 *         ... weft_task_result(t, &r) ...
 *     weft_as_completed_free(ac);
 *
 * Handles are not consumed; the timeout (from creation; WEFT_FOREVER for none)
 * cancels nothing.
 */
typedef struct weft_as_completed weft_as_completed;

/* weft_as_completed_new — the iterator over `tasks`. n == 0 is an empty iteration.
 * A timeout ≤ 0 has already passed: finished tasks are handed out, then -ETIMEDOUT.
 * Returns: the iterator, or NULL with weft_errmsg().
 * Suspends: never.
 * Errors (NULL returned): -EINVAL (NULL/repeated task, NaN), -ENOMEM,
 *   WEFT_ENOTINLOOP. */
WEFT_API weft_as_completed *weft_as_completed_new(weft_task *const *tasks, size_t n, double timeout);

/*
 * weft_as_completed_next — the next task to finish, in *out.
 * Returns: 1 with a task; 0 when every task has been returned.
 * Suspends: until a task not yet returned finishes; not when a finished task is
 *   still to be handed out, or the deadline has passed.
 * Errors: -ETIMEDOUT once the deadline passed (again on every later call; tasks that
 *   finished before it are still handed out first); -ECANCELED; WEFT_ESTATE when
 *   another task is already waiting in it, or the iterator was freed while this call
 *   waited; -EINVAL (ac NULL); WEFT_ENOTINLOOP outside a task.
 * On cancel: returns -ECANCELED; nothing is handed out or cancelled, and the iterator
 *   stays usable: a task that finishes meanwhile is handed out by a later call.
 */
WEFT_API WEFT_WAIT int weft_as_completed_next(weft_as_completed *ac, weft_task **out);

/* weft_as_completed_free — release the iterator (the tasks are untouched); also
 * allowed after weft_run has returned. A task waiting in weft_as_completed_next on
 * it gets WEFT_ESTATE.
 * Returns: nothing.
 * Suspends: never.
 * Errors: none. */
WEFT_API void weft_as_completed_free(weft_as_completed *ac);

/*
 * weft_task_wait — wait for task t to finish and read its outcome, without
 * consuming the handle: any number of tasks may wait for one task this way
 * (asyncio lets many tasks `await` one task), and a TaskGroup's body may wait for
 * one of its children. The handle stays with its owner, who still awaits, detaches
 * or gathers it; the outcome is copied to each waiter when t finishes, so the
 * owner may take it first. weft_await remains the one consuming await.
 * Returns: 0 and t's result in *result (may be NULL) when t succeeded; t's error
 *   code (-ECANCELED if t was cancelled) with its message in weft_errmsg().
 * Suspends: until t finishes; not when it already has.
 * Errors: -ECANCELED when the caller is cancelled; -EINVAL (t NULL, or the calling
 *   task itself); -ENOMEM; WEFT_ENOTINLOOP outside a task.
 * On cancel: returns -ECANCELED and, as asyncio's `await task` does, cancels t too
 *   if it has not finished. The handle stays with its owner.
 */
WEFT_API WEFT_WAIT int weft_task_wait(weft_task *t, void **result);

/*
 * weft_shield — await a task that the caller's cancellation must not cancel
 * (asyncio.shield): if the caller is cancelled (or its timeout expires) while
 * waiting (or already is), weft_shield returns -ECANCELED at once and the task runs
 * on; the handle is then NOT consumed, even if the task has finished, so its result
 * or error can still be taken with weft_await or dropped with weft_detach.
 * Otherwise as weft_await (the handle is consumed).
 * Returns: as weft_await.
 * Suspends: unless the task has finished.
 * Errors: as weft_await, plus -EINVAL for a task another call already awaits or
 *   gathers, and -ENOMEM.
 * On cancel: returns -ECANCELED at once; the task is not cancelled and runs on, and
 *   the handle is still the caller's (see above).
 */
WEFT_API WEFT_WAIT int weft_shield(weft_task *t, void **result);

#ifdef __cplusplus
}
#endif

#endif /* WEFT_COMBINE_H */
