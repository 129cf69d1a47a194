/*
 * weft/group.h — structured concurrency: the task group (asyncio.TaskGroup), whose
 * first failure cancels the rest and whose errors are all kept.
 *
 * Part of weft's public header: include <weft.h>, not this file.
 */
#ifndef WEFT_GROUP_H
#define WEFT_GROUP_H

#include "base.h"
#include "task.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * A task group (asyncio.TaskGroup): the body that opens it spawns children into
 * it, then leaves it with weft_group_wait, which waits for every child:
 *
 *     weft_group *g = weft_group_new();
 *     weft_task *a = weft_group_spawn(g, fetch, "a");
 *     weft_task *b = weft_group_spawn(g, fetch, "b");
 *     int rc = weft_group_wait(g, 0);            // the end of `async with`
 *     void *ra; weft_task_result(a, &ra);       // results stay readable
 *     weft_group_free(g);
 *
 * The first child that fails cancels the other children and the body (its current
 * suspension point returns -ECANCELED, which the body passes to weft_group_wait).
 * The group's children are owned by the group: their handles are borrowed, valid
 * until weft_group_free; cancel them or read them with weft_task_result, but do not
 * await, detach or gather them (-EINVAL).
 */
typedef struct weft_group weft_group;

/* weft_group_new — open a group owned by the current task.
 * Returns: the group, or NULL with weft_errmsg() saying which error.
 * Suspends: never.
 * Errors (NULL returned): -ENOMEM; WEFT_ENOTINLOOP outside a task. */
WEFT_API weft_group *weft_group_new(void);

/*
 * weft_group_spawn / weft_group_spawn_opts — spawn fn(arg) into the group
 * (tg.create_task), from the body, from a child, or while the body waits in
 * weft_group_wait; weft_group_spawn_opts takes the options of weft_spawn_opts.
 * Returns: the borrowed handle, or NULL with weft_errmsg() saying why.
 * Suspends: never.
 * Errors (NULL returned): WEFT_ESTATE if the group is shutting down after a failure
 *   or has finished, if its owner returned without leaving it, or from another
 *   loop; -EINVAL (g NULL); -ENOMEM; and the errors of weft_spawn_opts.
 */
WEFT_API weft_task *weft_group_spawn(weft_group *g, weft_fn fn, void *arg);
WEFT_API weft_task *weft_group_spawn_opts(weft_group *g, weft_fn fn, void *arg, const weft_spawn_options *opts);

/*
 * weft_group_wait — leave the group (the end of `async with`): wait until every
 * child has finished. `body_rc` is the body's own outcome (0, an error, or
 * -ECANCELED from a suspension point the group or someone else interrupted).
 * Returns: 0 when the body and every child succeeded; WEFT_EGROUP when any failed:
 *   weft_errgroup() then lists every error in the order they happened — child
 *   failures and errors children raised while being cancelled, then body_rc — and a
 *   child that itself failed with a group keeps it nested. Returns -ECANCELED when
 *   the owning task was cancelled from outside (every child is then cancelled and
 *   waited for) and no child failed. The group's own cancellation of the body is
 *   taken back, so the task is not left cancelled.
 *   The body's item takes its message from weft_errmsg() at the call.
 * Suspends: while children run, even when the calling task is cancelled. Call it
 *   once, from the task that opened the group.
 * Errors: WEFT_EGROUP; -ECANCELED; WEFT_ESTATE (called twice or from another task);
 *   -ENOMEM (the group of errors could not be built: the message names the first);
 *   -EINVAL (g NULL); WEFT_ENOTINLOOP outside a task.
 * On cancel: the wait does not end early: every child is cancelled and still waited
 *   for, then -ECANCELED is returned, unless a child failed (WEFT_EGROUP wins). A
 *   cancellation from outside stays on the task after the call.
 * An owner that returns without calling it is reported on stderr; its children run
 * on unsupervised (their errors are reported) and new spawns are refused.
 */
WEFT_API WEFT_WAIT int weft_group_wait(weft_group *g, int body_rc);

/* weft_group_free — release a group that has been left, and its children's
 * records, on the group's loop before weft_run returns. A group not left yet is not
 * freed (reported on stderr). NULL does nothing.
 * Returns: nothing.
 * Suspends: never.
 * Errors: none; a misuse (not left, another loop) is reported on stderr and ignored. */
WEFT_API void weft_group_free(weft_group *g);

#ifdef __cplusplus
}
#endif

#endif /* WEFT_GROUP_H */
