/*
 * weft.h — the one public header of weft, Python asyncio's model for C.
 *
 * A coroutine function is a plain C function `void *f(void *arg)` run inside a task.
 * Calling it directly is asyncio's `await f(x)`: it runs in the current task. Spawning
 * it makes a task that runs concurrently on its own stack and suspends wherever it
 * waits (weft_sleep, weft_await, weft_gather, ...). One loop runs per thread, started
 * by weft_run(); every call below is made from a task running on that loop unless it
 * says otherwise.
 *
 * Errors are negative errno-style codes (0 = success). A task fails with
 *     return weft_fail(-EINVAL, "bad size %d", n);
 * and whoever awaits it receives -EINVAL, with the message available from
 * weft_errmsg(). Cancellation is level-triggered: once a task is cancelled, every
 * suspension point returns -ECANCELED at once until the task returns.
 *
 * Each function documents, in this order:
 *   Returns  — the value and its meaning.
 *   Suspends — whether the calling task can be suspended, and when it returns at once.
 *   Errors   — every error code it can give.
 *   On cancel — what has and has not happened when it returns -ECANCELED.
 */
#ifndef WEFT_H
#define WEFT_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define WEFT_API __attribute__((visibility("default")))
#define WEFT_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define WEFT_API
#define WEFT_PRINTF(f, a)
#endif

#define WEFT_VERSION_MAJOR 0
#define WEFT_VERSION_MINOR 1
#define WEFT_VERSION_PATCH 0
#define WEFT_VERSION_STRING "0.1.0"

/* ======================================================================== */
/* Errors                                                                   */
/* ======================================================================== */

/*
 * weft's own codes, for failures errno has no name for. They are negative like
 * every other error and far from errno's range.
 */
#define WEFT_ERRNO_MAP(X)                                                             \
    X(WEFT_EDEADLOCK_LOOP, -10001, "every task is waiting and nothing can wake them") \
    X(WEFT_ENOTINLOOP, -10002, "called outside a task of a running weft loop")      \
    X(WEFT_ENESTED, -10003, "weft_run called from inside a running loop")

enum weft_errno {
#define WEFT__ERRNO_ENUM(name, value, text) name = value,
    WEFT_ERRNO_MAP(WEFT__ERRNO_ENUM)
#undef WEFT__ERRNO_ENUM
};

/*
 * weft_strerror — a short English description of an error code.
 * Returns a static string for every code: weft's own (WEFT_E*), negative errno codes
 * (-ENOMEM → "Cannot allocate memory"), and 0 ("success"). Never NULL. Any thread.
 */
WEFT_API const char *weft_strerror(int code);

/*
 * weft_errname — the symbolic name of an error code: "ECANCELED", "ETIMEDOUT",
 * "WEFT_ENOTINLOOP", "0" for success, "E?" for an unknown code. Never NULL. Any thread.
 */
WEFT_API const char *weft_errname(int code);

/*
 * weft_fail — end the current coroutine function with an error:
 *     return weft_fail(-ECONNRESET, "peer %s went away", host);
 * Records `code` (negative; a positive code is negated, 0 becomes -EINVAL) and the
 * formatted message as the current task's error. When the task's function returns
 * while an error is recorded, the task ends with that error and its return value is
 * dropped. A caller that runs a coroutine function directly (asyncio's `await f()`)
 * sees the failure with weft_error() and may take it back with weft_error_clear()
 * (asyncio's `except`).
 * The message is formatted before the previous one is released, so passing an error
 * on with `return weft_fail(rc, "%s", weft_errmsg());` is safe.
 * Returns NULL, so it can be returned from a `void *` coroutine function.
 * Suspends: never. Outside a task it records the message for the thread.
 */
WEFT_API void *weft_fail(int code, const char *fmt, ...) WEFT_PRINTF(2, 3);

/*
 * weft_error — the error recorded in the current task by weft_fail (0 if none).
 * Suspends: never.
 */
WEFT_API int weft_error(void);

/*
 * weft_error_clear — forget the current task's recorded error, as `except` does in
 * asyncio. The message stays readable through weft_errmsg() until the next error.
 */
WEFT_API void weft_error_clear(void);

/*
 * weft_errmsg — the message of the latest error the current task (or thread, outside
 * a task) raised with weft_fail or received from a weft call: the awaited task's
 * message, or a sentence from weft saying what went wrong and what to do.
 * Returns a string owned by the task, valid until its next weft call that can fail;
 * "" if there has been no error. Never NULL.
 */
WEFT_API const char *weft_errmsg(void);

/* ======================================================================== */
/* Running a loop                                                           */
/* ======================================================================== */

/* A coroutine function: runs in a task, returns its result (or weft_fail(...)). */
typedef void *(*weft_fn)(void *arg);

typedef struct weft_loop weft_loop;
typedef struct weft_task weft_task;

/*
 * Options for weft_run_opts. The zero value of every field is the default.
 */
typedef struct weft_options {
    /* Stack size of each task, in bytes, rounded up to pages; 0 = the default,
     * WEFT_STACK_DEFAULT (256 KiB: room for printf, getaddrinfo and ordinary C).
     * Stacks are reserved address space, committed only where touched. */
    size_t stack_size;
    /* Nonzero: a virtual clock. Time stands still while any task or callback can
     * run and jumps straight to the next timer when every task is waiting, so
     * sleeps take no real time and timings are exact. For tests. */
    int virtual_time;
    /* Free stacks kept for reuse (0 = default, 1024). Reuse matters: a fresh page
     * costs ~10 µs on virtual machines, a reused one nothing. */
    size_t stack_pool_max;
} weft_options;

#define WEFT_STACK_DEFAULT ((size_t)256 * 1024)
#define WEFT_STACK_MIN ((size_t)16 * 1024)

/*
 * weft_run — run `main(arg)` as the first task of a new loop on this thread, and run
 * the loop until main returns. Tasks still alive then are cancelled and waited for;
 * callbacks and timers left over are dropped. asyncio.run().
 * `result` (may be NULL) receives main's return value on success.
 * Returns 0, or main's error (its weft_errmsg() text is then readable from this
 * thread with weft_errmsg()).
 * Errors: main's own error; -ECANCELED if main was cancelled; -ENOMEM;
 *   WEFT_ENESTED if called from inside a running loop (nothing runs);
 *   WEFT_EDEADLOCK_LOOP if, after main returned, leftover tasks ignored cancellation
 *   and wait on something nothing can wake (each is reported on stderr and freed).
 * Blocks the calling thread until done.
 */
WEFT_API int weft_run(weft_fn main, void *arg, void **result);

/* weft_run_opts — weft_run with options (NULL = defaults). -EINVAL for an option out
 * of range (a stack below WEFT_STACK_MIN), with a message naming it. */
WEFT_API int weft_run_opts(weft_fn main, void *arg, void **result, const weft_options *opts);

/*
 * weft_time — the loop's clock, in seconds, monotonic (asyncio's loop.time()).
 * Under virtual_time it starts at 0 and moves only when every task waits.
 * Outside a loop: the monotonic clock. Suspends: never.
 */
WEFT_API double weft_time(void);

/* weft_loop_current — the loop running on this thread, or NULL. */
WEFT_API weft_loop *weft_loop_current(void);

/* ======================================================================== */
/* Tasks                                                                    */
/* ======================================================================== */

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
     * local variables) while it is suspended. weft's own calls keep that rule.
     * With the portable ucontext backend (WEFT_CTX=ucontext) it has no effect. */
    int compact;
} weft_spawn_options;

/*
 * weft_spawn — create a task running fn(arg) (asyncio.create_task). The task is
 * scheduled at the back of the ready queue; it does not run until the caller
 * suspends. The caller owns the returned handle and must give it up exactly once:
 * weft_await, weft_detach, or weft_gather.
 * Returns the handle, or NULL, with weft_errmsg() saying why: out of memory, no
 * running loop, fn NULL, or (weft_spawn_opts) a stack_size below WEFT_STACK_MIN or
 * above 64 MiB.
 * Suspends: never. The task gets a stack only when it first runs, and gives it back
 * the moment it returns.
 */
WEFT_API weft_task *weft_spawn(weft_fn fn, void *arg);

/* weft_spawn_opts — weft_spawn with a name and/or a stack size (opts may be NULL). */
WEFT_API weft_task *weft_spawn_opts(weft_fn fn, void *arg, const weft_spawn_options *opts);

/*
 * weft_await — wait for a task to finish and take its outcome (`await task`).
 * Consumes the handle in every case: do not use `t` afterwards.
 * `result` (may be NULL) receives the task's return value when it succeeded.
 * Returns 0, or the task's error (weft_errmsg() then holds its message); -ECANCELED
 * if the task was cancelled.
 * Suspends: unless the task has already finished (then returns at once).
 * Errors: the task's error; -ECANCELED; -ETIMEDOUT (an expired timeout scope);
 *   -EINVAL if t is NULL (a failed weft_spawn) or is the calling task itself;
 *   WEFT_ENOTINLOOP outside a task.
 * On cancel: the awaited task is cancelled too (asyncio's rule) and left to finish
 * on its own; its outcome is dropped, and the call returns -ECANCELED at once.
 */
WEFT_API int weft_await(weft_task *t, void **result);

/*
 * weft_detach — give up the handle: the task runs on and is freed when it finishes
 * (fire and forget). If it ends with an error other than cancellation, nobody can
 * retrieve it, so weft reports it on stderr naming the task. NULL does nothing.
 * Suspends: never.
 */
WEFT_API void weft_detach(weft_task *t);

/*
 * weft_cancel — request cancellation of a task (task.cancel(msg)). From then on
 * every suspension point of that task returns -ECANCELED, until it returns; if it
 * is awaiting another task, that task is cancelled too. A task that has not started
 * yet never runs its function. `msg` (may be NULL) becomes the task's error message.
 * Returns true if the request was made, false if the task had already finished.
 * Does not consume the handle. Suspends: never. Cancelling oneself is allowed.
 */
WEFT_API bool weft_cancel(weft_task *t, const char *msg);

/*
 * weft_uncancel — the current task survives its cancellation (asyncio: catch
 * CancelledError and go on; task.uncancel()). Suspension points stop returning
 * -ECANCELED. Returns the number of cancellation requests that remain (0 after one
 * request). Suspends: never.
 */
WEFT_API int weft_uncancel(void);

/* weft_cancelled — true if the current task has been cancelled (and not uncancelled). */
WEFT_API bool weft_cancelled(void);

/* weft_current — the running task (NULL outside a task). Do not await or detach it. */
WEFT_API weft_task *weft_current(void);

/* weft_task_name — the task's name ("Task-N" unless set). Valid while the handle is.
 * NULL t means the current task. */
WEFT_API const char *weft_task_name(const weft_task *t);

/* weft_task_set_name — rename a task (copied). -ENOMEM leaves the old name. */
WEFT_API int weft_task_set_name(weft_task *t, const char *name);

/* weft_task_done — true once the task has finished (result, error or cancelled). */
WEFT_API bool weft_task_done(const weft_task *t);

/* ======================================================================== */
/* Waiting                                                                  */
/* ======================================================================== */

/*
 * weft_sleep — suspend the current task for `seconds` (asyncio.sleep). 0 or negative
 * yields exactly one loop iteration: every task ready now runs once before this one
 * resumes.
 * Returns 0 when the time has passed.
 * Suspends: always (even for 0).
 * Errors: -EINVAL for NaN (nothing waits); -ECANCELED; -ETIMEDOUT (expired timeout
 *   scope); WEFT_ENOTINLOOP outside a task.
 * On cancel: returns at once; the timer is gone.
 */
WEFT_API int weft_sleep(double seconds);

/* weft_yield — weft_sleep(0): let every other ready task run once. */
WEFT_API int weft_yield(void);

/* Flags for weft_gather. */
#define WEFT_RETURN_EXCEPTIONS 1u /* collect every error instead of returning the first */

/*
 * weft_gather — wait for n tasks and collect their outcomes in argument order
 * (asyncio.gather). Consumes every handle.
 * results[i] (results may be NULL) receives task i's return value, or NULL if it
 * failed; errs[i] (errs may be NULL) receives 0 or task i's error.
 * Without WEFT_RETURN_EXCEPTIONS: returns 0 when all succeeded; at the first
 * failure (by completion time) returns that error at once (weft_errmsg() holds its
 * message) while the other tasks keep running to completion on their own, their
 * outcomes dropped; results[]/errs[] of tasks finished by then are filled in, and
 * errs[i] of a task still running is -EINPROGRESS.
 * With WEFT_RETURN_EXCEPTIONS: waits for all; every slot holds a result or an
 * error; returns 0.
 * Suspends: unless every task has already finished.
 * Errors: the first failure (see above); -ECANCELED; -ETIMEDOUT; -EINVAL (a NULL
 *   task, the same task twice, or the calling task); WEFT_ENOTINLOOP.
 * On cancel: every unfinished task is cancelled and left to finish on its own;
 *   returns -ECANCELED at once.
 */
WEFT_API int weft_gather(weft_task **tasks, size_t n, void **results, int *errs, unsigned flags);

/*
 * weft_gather_msgs — weft_gather that also keeps every slot's error message, as
 * asyncio's return_exceptions keeps each exception object: msgs[i] (msgs may be
 * NULL) receives task i's message (malloc'd: release it with free()) or NULL when
 * it succeeded or was not finished. Returns, suspends and fails as weft_gather;
 * -ENOMEM is never returned for a message: one that cannot be copied is NULL.
 */
WEFT_API int weft_gather_msgs(weft_task **tasks, size_t n, void **results, int *errs, char **msgs,
                              unsigned flags);

/* ======================================================================== */
/* Loop callbacks                                                           */
/* ======================================================================== */

typedef void (*weft_callback)(void *arg);
typedef struct weft_timer weft_timer;

/*
 * weft_call_later — run cb(arg) from the loop after `delay` seconds
 * (loop.call_later). Callbacks due at the same time run in the order they were
 * scheduled. A callback runs outside any task: it must not suspend.
 * Returns a handle for weft_timer_cancel, valid until the callback has started or
 * the timer is cancelled; NULL when out of memory (-ENOMEM) or outside a loop.
 * delay NaN → NULL with -EINVAL. Suspends: never.
 */
WEFT_API weft_timer *weft_call_later(double delay, weft_callback cb, void *arg);

/* weft_call_at — as weft_call_later, at loop time `when` (see weft_time). */
WEFT_API weft_timer *weft_call_at(double when, weft_callback cb, void *arg);

/*
 * weft_timer_cancel — cancel a timer that has not fired yet; it leaves the timer
 * structure at once. Returns true if cancelled, false if it already ran (then the
 * handle was already invalid: only cancel timers whose callback has not started).
 */
WEFT_API bool weft_timer_cancel(weft_timer *timer);

/*
 * weft_call_soon_threadsafe — from any thread, ask `loop` to run cb(arg) soon, in
 * the order of calls. Wakes the loop if it is waiting; many calls share one wake-up.
 * Returns 0; -ENOMEM; -ESHUTDOWN if the loop has finished (cb will not run).
 * The loop pointer must come from weft_loop_current() and the caller must know the
 * loop is still running or finishing (weft_run has not returned).
 */
WEFT_API int weft_call_soon_threadsafe(weft_loop *loop, weft_callback cb, void *arg);

#ifdef __cplusplus
}
#endif

#endif /* WEFT_H */
