/*
 * weft/task.h — tasks: spawn, await, detach, cancel and uncancel, names, a finished
 * task's outcome and done callbacks, and the plain suspension points weft_sleep and
 * weft_yield.
 *
 * Part of weft's public header: include <weft.h>, not this file.
 */
#ifndef WEFT_TASK_H
#define WEFT_TASK_H

#include "base.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Options for weft_spawn_opts; zero value = defaults. */
typedef struct weft_spawn_options {
    const char *name;  /* copied; NULL = "Task-N" with N counting from 1 per loop (main is Task-1) */
    size_t stack_size; /* 0 = the loop's stack size; ignored for compact tasks */
    /* Nonzero: a compact task. It runs on a stack shared by the loop's compact
     * tasks (of the loop's stack size); when it suspends and another compact task
     * needs that stack, the part its frames use is copied to the heap, and copied
     * back before it resumes. A sleeping compact task so costs a few hundred bytes
     * instead of a page or more: for hundreds of thousands of mostly idle tasks.
     * The price: a copy at each switch between compact tasks, and one rule — no
     * other task or thread may use a pointer into a compact task's stack (its
     * local variables) while it is suspended. weft's own calls keep that rule;
     * `weft_spawn(child, &local)` from a compact task breaks it, and Debug and
     * sanitizer builds, and debug mode (WEFT_DEBUG=1, weft_options.debug), refuse
     * that spawn (-EINVAL, with a message). Pass heap or static memory instead.
     * With the portable ucontext backend (WEFT_CTX=ucontext) it has no effect. */
    int compact;
    /* Non-NULL: how to free the task's result when nobody takes it. weft calls
     * drop(result) (from the loop; it must not suspend) when it frees a task that
     * succeeded with a non-NULL result that no weft_await, weft_gather (with a
     * results array) or weft_wait_for took: a detached task, the tasks a fail-fast
     * gather let go, an await whose caller was cancelled just after the task
     * finished or that passed a NULL result pointer, a TaskGroup's children at
     * weft_group_free, tasks left when weft_run ends. A result read with
     * weft_task_result or weft_task_wait is lent, not taken. */
    void (*drop)(void *result);
} weft_spawn_options;

/*
 * weft_spawn — create a task running fn(arg) (asyncio.create_task). The task is
 * scheduled at the back of the ready queue; it does not run until the caller
 * suspends. From a task or a callback of a running loop. The caller owns the
 * returned handle and must give it up exactly once: weft_await, weft_detach, or
 * weft_gather.
 * Returns: the handle, or NULL, with weft_errmsg() saying why.
 * Suspends: never. The task gets a stack only when it first runs, and gives it back
 *   the moment it returns.
 * Errors (NULL returned; weft_errmsg() says which): out of memory (-ENOMEM); no
 *   running loop (WEFT_ENOTINLOOP); fn NULL (-EINVAL).
 */
WEFT_API weft_task *weft_spawn(weft_fn fn, void *arg);

/* weft_spawn_opts — weft_spawn with a name and/or a stack size (opts may be NULL).
 * Returns: as weft_spawn.
 * Suspends: never.
 * Errors (NULL returned): as weft_spawn, and a stack_size below WEFT_STACK_MIN or
 *   above 64 MiB (-EINVAL); no memory for the name (-ENOMEM). */
WEFT_API weft_task *weft_spawn_opts(weft_fn fn, void *arg, const weft_spawn_options *opts);

/*
 * Handles. A weft_task * is a handle, not a pointer to use: weft recognises a
 * handle whose task was given up (awaited, gathered, detached) even after its
 * record went to a new task, and every call given one says so (-ESTALE, or false,
 * 0, NULL or "(stale task handle)" for the calls without an error code) instead of
 * answering for another task. A handle used from another thread's loop gets
 * WEFT_ESTATE (from a thread without a loop, WEFT_ENOTINLOOP) before its task is
 * touched. (A record's tag repeats after 65535 reuses of that record, and loop
 * serials after 7 loops: only a handle kept that long, or one of the 8th loop
 * running at once, could be mistaken.)
 */

/*
 * weft_await — wait for a task to finish and take its outcome (`await task`).
 * Consumes the handle in every case: do not use `t` afterwards.
 * `result` (may be NULL) receives the task's return value when it succeeded.
 * Returns: 0, or the task's error (weft_errmsg() then holds its message); -ECANCELED
 *   if the task was cancelled.
 * Suspends: unless the task has already finished (then returns at once, even in a
 *   cancelled caller).
 * Errors: the task's error; -ECANCELED (also when a timeout scope expires);
 *   -EINVAL if t is NULL (a failed weft_spawn) or is the calling task itself, or a
 *   child of a weft_group (the group keeps that handle), or another task already
 *   awaits it (one consuming await per task: weft_task_wait lets many wait);
 *   -ESTALE for a handle already given up (awaited, gathered or detached): never
 *   the outcome of whichever task uses the record now; -EDEADLK at once when t
 *   waits, through the tasks it awaits, for the caller (a cycle nothing can break;
 *   t is then detached);
 *   WEFT_ENOTINLOOP outside a task (from a callback the task is then detached).
 * On cancel: the awaited task is cancelled too (asyncio's rule) and left to finish
 *   on its own; its outcome is dropped, and the call returns -ECANCELED at once. If
 *   it had finished just before the caller was cancelled, its outcome is dropped too.
 */
WEFT_API WEFT_WAIT int weft_await(weft_task *t, void **result);

/*
 * weft_detach — give up the handle: the task runs on and is freed when it finishes
 * (fire and forget). If it ends with an error other than cancellation, nobody can
 * retrieve it, so weft reports it on stderr naming the task. NULL does nothing.
 * Returns: nothing.
 * Suspends: never.
 * Errors: none. A child of a weft_group is not detached: the call is reported on
 *   stderr and ignored.
 */
WEFT_API void weft_detach(weft_task *t);

/*
 * weft_cancel — request cancellation of a task (task.cancel(msg)). From then on
 * every suspension point of that task returns -ECANCELED, until it returns; if it
 * is awaiting another task, that task is cancelled too. A task that has not started
 * yet never runs its function. `msg` (may be NULL) becomes the task's error message.
 * Does not consume the handle. Cancelling oneself is allowed.
 * Returns: true if the request was made, false if the task had already finished (or
 *   t is NULL, or the call was refused).
 * Suspends: never.
 * Errors: none returned; when it returns false for a misuse, weft_errcode() says
 *   which: -ESTALE for a handle already given up, WEFT_ENOTINLOOP from a thread
 *   without a loop (post it to the task's loop with weft_call_soon_threadsafe).
 */
WEFT_API bool weft_cancel(weft_task *t, const char *msg);

/*
 * weft_uncancel — the current task survives its cancellation (asyncio: catch
 * CancelledError and go on; task.uncancel()). Suspension points stop returning
 * -ECANCELED.
 * Returns: the number of cancellation requests that remain (0 after one request);
 *   0 outside a task.
 * Suspends: never.
 * Errors: none.
 */
WEFT_API int weft_uncancel(void);

/* weft_cancelled — true if the current task has been cancelled (and not uncancelled).
 * Returns: that; false outside a task.
 * Suspends: never.
 * Errors: none. */
WEFT_API bool weft_cancelled(void);

/*
 * weft_task_cancelling — how many cancellation requests task t has that were not
 * taken back with weft_uncancel (asyncio's task.cancelling()), read without
 * changing anything. NULL means the current task. A finished task keeps the count
 * it ended with.
 * Returns: the count; 0 for NULL outside a task.
 * Suspends: never.
 * Errors: none.
 */
WEFT_API unsigned weft_task_cancelling(const weft_task *t);

/*
 * weft_task_cancel_message — the message of t's pending cancellation (the `msg` of
 * the latest weft_cancel that gave one), read without changing anything. NULL
 * means the current task.
 * Returns: the message, valid until t is cancelled again, uncancelled to 0 or
 *   finishes; NULL when there is none (not cancelled, cancelled without a message,
 *   or finished: a finished task's message is its outcome's, weft_task_result).
 * Suspends: never.
 * Errors: none.
 */
WEFT_API const char *weft_task_cancel_message(const weft_task *t);

/* weft_current — the running task (NULL outside a task). Do not await or detach it.
 * Returns: the task, or NULL.
 * Suspends: never.
 * Errors: none. */
WEFT_API weft_task *weft_current(void);

/* weft_task_name — the task's name ("Task-N" unless set). Valid while the handle is.
 * NULL t means the current task.
 * Returns: the name; "(no task)" for NULL outside a task; "Task-?" when there was no
 *   memory to make the default name.
 * Suspends: never.
 * Errors: none. */
WEFT_API const char *weft_task_name(const weft_task *t);

/* weft_task_set_name — rename a task (copied). NULL t means the current task.
 * Returns: 0.
 * Suspends: never.
 * Errors: -ENOMEM leaves the old name; -EINVAL for a NULL name, or a NULL t outside
 *   a task. */
WEFT_API int weft_task_set_name(weft_task *t, const char *name);

/* weft_task_done — true once the task has finished (result, error or cancelled).
 * Returns: that; false for NULL.
 * Suspends: never.
 * Errors: none. */
WEFT_API bool weft_task_done(const weft_task *t);

/*
 * weft_task_result — a finished task's outcome without consuming the handle
 * (task.result()): for done callbacks, weft_wait and TaskGroup children.
 * `result` (may be NULL) receives the return value on success.
 * Returns: 0, the task's error (its message becomes the caller's weft_errmsg()),
 *   -ECANCELED if it was cancelled, or -EINPROGRESS if it has not finished.
 * Suspends: never.
 * Errors: the task's error; -ECANCELED; -EINPROGRESS; -EINVAL for NULL.
 */
WEFT_API int weft_task_result(const weft_task *t, void **result);

/* A done callback of a task: called from the loop with the finished task. */
typedef void (*weft_task_done_fn)(weft_task *t, void *arg);

/*
 * weft_task_add_done_callback — run cb(t, arg) from the loop once task t has
 * finished (soon, if it already has), in registration order. The task record stays
 * valid for cb even if its handle is consumed meanwhile.
 * Returns: 0.
 * Suspends: never.
 * Errors: -ENOMEM; -EINVAL for NULL arguments; WEFT_ENOTINLOOP outside a loop.
 */
WEFT_API int weft_task_add_done_callback(weft_task *t, weft_task_done_fn cb, void *arg);

/*
 * weft_task_remove_done_callback — remove the registrations of (cb, arg) that have
 * not been scheduled yet.
 * Returns: how many registrations of (cb, arg) it removed (0 outside a loop).
 * Suspends: never.
 * Errors: none.
 */
WEFT_API size_t weft_task_remove_done_callback(weft_task *t, weft_task_done_fn cb, void *arg);

/*
 * weft_sleep — suspend the current task for `seconds` (asyncio.sleep). 0 or negative
 * yields exactly one loop iteration: every task ready now runs once before this one
 * resumes.
 * Returns: 0 when the time has passed.
 * Suspends: always (even for 0), unless the task is already cancelled.
 * Errors: -EINVAL for NaN (nothing waits); -ECANCELED (also when a timeout scope
 *   expires); -ENOMEM (no memory for the timer); WEFT_ENOTINLOOP outside a task.
 * On cancel: returns -ECANCELED at once; the timer is gone.
 */
WEFT_API WEFT_WAIT int weft_sleep(double seconds);

/* weft_yield — weft_sleep(0): let every other ready task run once.
 * Returns: 0.
 * Suspends: always, for one loop iteration, unless the task is already cancelled.
 * Errors: -ECANCELED; WEFT_ENOTINLOOP outside a task.
 * On cancel: returns -ECANCELED (at once if already cancelled, else when it
 *   resumes). */
WEFT_API WEFT_WAIT int weft_yield(void);

#ifdef __cplusplus
}
#endif

#endif /* WEFT_TASK_H */
