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
    X(WEFT_ENESTED, -10003, "weft_run called from inside a running loop")             \
    X(WEFT_EGROUP, -10004, "several errors happened; weft_errgroup() lists them")   \
    X(WEFT_ESTATE, -10005, "the object is not in a state that allows this call")      \
    X(WEFT_EFULL, -10006, "the queue is full")                                        \
    X(WEFT_EEMPTY, -10007, "the queue is empty")                                      \
    X(WEFT_EBROKEN, -10008, "the barrier is broken (aborted or reset)")               \
    X(WEFT_ECLOSED, -10009, "the channel is closed")                                  \
    X(WEFT_EBROKENPOOL, -10010, "a worker process of the pool died during the call")

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

/*
 * An error group: the several errors a TaskGroup collected (asyncio's
 * ExceptionGroup). A call that returns WEFT_EGROUP leaves one readable through
 * weft_errgroup(); the item list is in the order the errors happened.
 */
typedef struct weft_error_group weft_error_group;
typedef struct weft_error_item {
    int code;                        /* the error (never 0) */
    const char *msg;                 /* its message ("" if none) */
    const char *task;                /* the name of the task it came from */
    const weft_error_group *nested;  /* code == WEFT_EGROUP: the child's own group */
} weft_error_item;
struct weft_error_group {
    size_t count;
    const weft_error_item *items;
};

/*
 * weft_errgroup — the error group of the latest error the current task received
 * (or raised by returning a WEFT_EGROUP it received), or NULL when that error was
 * not a group. Owned by the task, valid until its next weft call that can fail.
 * A task that returns with WEFT_EGROUP hands its group on to whoever awaits it.
 * Suspends: never.
 */
WEFT_API const weft_error_group *weft_errgroup(void);

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
 * Errors: the task's error; -ECANCELED (also when a timeout scope expires);
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
 * Errors: -EINVAL for NaN (nothing waits); -ECANCELED (also when a timeout scope
 *   expires); WEFT_ENOTINLOOP outside a task.
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
 * Errors: the first failure (see above); -ECANCELED; -EINVAL (a NULL
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

/* weft_call_ok — true when the call that returned h succeeded. */
static inline bool weft_call_ok(weft_call h) { return h.rec != NULL; }

/*
 * weft_call_soon — run cb(arg) from the loop on its next iteration, after the tasks
 * and callbacks already ready (loop.call_soon). Callbacks run in the order they were
 * scheduled, outside any task: a callback must not suspend (weft_sleep etc. return
 * WEFT_ENOTINLOOP there), but may spawn tasks, schedule callbacks, set futures and
 * cancel tasks. From a task or a callback of a running loop.
 * Returns the weft_call; not ok on -ENOMEM, a NULL cb (-EINVAL) or outside a loop
 * (WEFT_ENOTINLOOP). Suspends: never.
 */
WEFT_API weft_call weft_call_soon(weft_callback_fn cb, void *arg);

/*
 * weft_call_later — run cb(arg) from the loop after `delay` seconds
 * (loop.call_later); 0 or negative = on the next iteration's timer pass. Callbacks
 * due at the same time run in the order they were scheduled. Errors as
 * weft_call_soon, and -EINVAL for a NaN delay.
 */
WEFT_API weft_call weft_call_later(double delay, weft_callback_fn cb, void *arg);

/* weft_call_at — as weft_call_later, at loop time `when` (see weft_time). */
WEFT_API weft_call weft_call_at(double when, weft_callback_fn cb, void *arg);

/*
 * weft_call_cancel — make sure a scheduled callback never runs (handle.cancel());
 * a timer leaves the timer structure at once.
 * Returns true if the callback was pending and now will not run; false if it has
 * already run (or is running), was already cancelled, or h is not ok.
 * Suspends: never.
 */
WEFT_API bool weft_call_cancel(weft_call h);

/*
 * weft_call_soon_threadsafe — from any thread, ask `loop` to run cb(arg) soon, in
 * the order of calls. Wakes the loop if it is waiting; many calls share one wake-up.
 * Returns 0; -ENOMEM; -ESHUTDOWN if the loop has finished (cb will not run).
 * The loop pointer must come from weft_loop_current() and the caller must know the
 * loop is still running or finishing (weft_run has not returned).
 */
WEFT_API int weft_call_soon_threadsafe(weft_loop *loop, weft_callback_fn cb, void *arg);

/* ======================================================================== */
/* Futures and done callbacks                                               */
/* ======================================================================== */

/*
 * A future: a result that will exist later (asyncio.Future). Pending until set
 * to a result, an error or cancelled, then done for good. Any number of tasks may
 * await it; done callbacks run from the loop in registration order, never
 * synchronously from the call that completed it. Owned by its creator, who frees
 * it with weft_future_free once nobody waits on it.
 */
typedef struct weft_future weft_future;
typedef void (*weft_future_done_fn)(weft_future *f, void *arg);

/* weft_future_new — a pending future of the running loop. NULL on -ENOMEM or outside
 * a loop (weft_errmsg() says which). Suspends: never. */
WEFT_API weft_future *weft_future_new(void);

/*
 * weft_future_set_result / weft_future_set_error — complete the future; every
 * awaiting task is woken (in the order they started waiting) and every done
 * callback is scheduled. set_error takes a negative code (positive is negated,
 * 0 is -EINVAL) and a printf-style message (fmt may be NULL).
 * Returns 0; WEFT_ESTATE if the future is already done (nothing changes).
 * Suspends: never.
 */
WEFT_API int weft_future_set_result(weft_future *f, void *result);
WEFT_API int weft_future_set_error(weft_future *f, int code, const char *fmt, ...) WEFT_PRINTF(3, 4);

/*
 * weft_future_cancel — cancel a pending future (future.cancel(msg)): its awaiters
 * get -ECANCELED with `msg` (may be NULL) as the message.
 * Returns true if it was pending, false if already done. Suspends: never.
 */
WEFT_API bool weft_future_cancel(weft_future *f, const char *msg);

/* weft_future_done / weft_future_cancelled — the future's state. */
WEFT_API bool weft_future_done(const weft_future *f);
WEFT_API bool weft_future_cancelled(const weft_future *f);

/*
 * weft_future_await — wait until the future is done and read its outcome
 * (`await fut`). Does not consume the future: others may await it too.
 * `result` (may be NULL) receives the result.
 * Returns 0; the future's error (weft_errmsg() holds its message); -ECANCELED if the
 * future was cancelled or the caller is cancelled.
 * Suspends: unless the future is already done.
 * Errors: the future's error; -ECANCELED; -EINVAL (f NULL); WEFT_ENOTINLOOP.
 * On cancel: as in asyncio, cancelling a task that awaits a future cancels the
 * future too (protect a shared future from that with a task and weft_shield).
 */
WEFT_API int weft_future_await(weft_future *f, void **result);

/*
 * weft_future_result — the outcome of a done future without waiting
 * (future.result()). Returns as weft_future_await; -EINPROGRESS if still pending.
 * Suspends: never.
 */
WEFT_API int weft_future_result(const weft_future *f, void **result);

/*
 * weft_future_add_done_callback — run cb(f, arg) from the loop once f is done (soon,
 * if it already is), after the callbacks added before it. Returns 0 or -ENOMEM.
 * weft_future_remove_done_callback removes every registration of (cb, arg) that has
 * not been scheduled yet and returns how many. Suspends: never.
 */
WEFT_API int weft_future_add_done_callback(weft_future *f, weft_future_done_fn cb, void *arg);
WEFT_API size_t weft_future_remove_done_callback(weft_future *f, weft_future_done_fn cb, void *arg);

/*
 * weft_future_free — release a future. Returns 0; -EBUSY (nothing freed) while a
 * task still waits on it or a done callback of it is scheduled but has not run.
 * NULL returns 0. Suspends: never.
 */
WEFT_API int weft_future_free(weft_future *f);

/*
 * weft_task_result — a finished task's outcome without consuming the handle
 * (task.result()): for done callbacks, weft_wait and TaskGroup children.
 * `result` (may be NULL) receives the return value on success.
 * Returns 0, the task's error (its message becomes the caller's weft_errmsg()),
 * -ECANCELED if it was cancelled, or -EINPROGRESS if it has not finished.
 * Suspends: never.
 */
WEFT_API int weft_task_result(const weft_task *t, void **result);

/*
 * weft_task_add_done_callback — run cb(t, arg) from the loop once task t has
 * finished (soon, if it already has), in registration order. The task record stays
 * valid for cb even if its handle is consumed meanwhile. Returns 0 or -ENOMEM;
 * -EINVAL for NULL arguments. weft_task_remove_done_callback returns how many
 * registrations of (cb, arg) it removed. Suspends: never.
 */
typedef void (*weft_task_done_fn)(weft_task *t, void *arg);
WEFT_API int weft_task_add_done_callback(weft_task *t, weft_task_done_fn cb, void *arg);
WEFT_API size_t weft_task_remove_done_callback(weft_task *t, weft_task_done_fn cb, void *arg);

/* ======================================================================== */
/* Structured concurrency: TaskGroup                                        */
/* ======================================================================== */

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

/* weft_group_new — open a group owned by the current task. NULL on -ENOMEM or
 * outside a task (WEFT_ENOTINLOOP), with weft_errmsg() saying which. Suspends: never. */
WEFT_API weft_group *weft_group_new(void);

/*
 * weft_group_spawn — spawn fn(arg) into the group (tg.create_task), from the body,
 * from a child, or while the body waits in weft_group_wait.
 * Returns the borrowed handle, or NULL with weft_errmsg() saying why: WEFT_ESTATE if
 * the group is shutting down after a failure or has finished, -ENOMEM, and the
 * errors of weft_spawn_opts. Suspends: never.
 */
WEFT_API weft_task *weft_group_spawn(weft_group *g, weft_fn fn, void *arg);
WEFT_API weft_task *weft_group_spawn_opts(weft_group *g, weft_fn fn, void *arg, const weft_spawn_options *opts);

/*
 * weft_group_wait — leave the group (the end of `async with`): wait until every
 * child has finished. `body_rc` is the body's own outcome (0, an error, or
 * -ECANCELED from a suspension point the group or someone else interrupted).
 * Returns 0 when the body and every child succeeded; WEFT_EGROUP when any failed:
 * weft_errgroup() then lists every error in the order they happened — child
 * failures and errors children raised while being cancelled, then body_rc — and a
 * child that itself failed with a group keeps it nested. Returns -ECANCELED when
 * the owning task was cancelled from outside (every child is then cancelled and
 * waited for) and no child failed. The group's own cancellation of the body is
 * taken back, so the task is not left cancelled.
 * The body's item takes its message from weft_errmsg() at the call.
 * Suspends: while children run. Call it once, from the task that opened the group.
 * Errors: WEFT_EGROUP; -ECANCELED; WEFT_ESTATE (called twice or from another task);
 *   -ENOMEM (the group of errors could not be built: the message names the first);
 *   -EINVAL (g NULL); WEFT_ENOTINLOOP outside a task.
 * An owner that returns without calling it is reported on stderr; its children run
 * on unsupervised (their errors are reported) and new spawns are refused.
 */
WEFT_API int weft_group_wait(weft_group *g, int body_rc);

/* weft_group_free — release a group that has been left, and its children's
 * records, on the group's loop before weft_run returns. A group not left yet is not
 * freed (reported on stderr). NULL does nothing. */
WEFT_API void weft_group_free(weft_group *g);

/* ======================================================================== */
/* Timeouts                                                                 */
/* ======================================================================== */

/* A timeout of weft_timeout_enter or a wait that means "no deadline". */
#define WEFT_FOREVER 1e300

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
 * Returns the scope, or NULL: -EINVAL for NaN, -ENOMEM, WEFT_ENOTINLOOP outside a
 * task. Suspends: never.
 */
WEFT_API weft_timeout *weft_timeout_enter(double delay);
WEFT_API weft_timeout *weft_timeout_enter_at(double when);

/*
 * weft_timeout_reschedule — move the deadline to loop time `when` (WEFT_FOREVER: none).
 * Returns 0; WEFT_ESTATE if the scope has already expired; -EINVAL for NaN.
 */
WEFT_API int weft_timeout_reschedule(weft_timeout *to, double when);

/* weft_timeout_when — the deadline in loop time (WEFT_FOREVER if none; NaN for NULL). */
WEFT_API double weft_timeout_when(const weft_timeout *to);

/* weft_timeout_expired — true once the deadline has passed and interrupted the scope. */
WEFT_API bool weft_timeout_expired(const weft_timeout *to);

/*
 * weft_timeout_exit — close the scope and free it. `rc` is the body's outcome.
 * Returns -ETIMEDOUT (message "timed out after ...") if the scope expired and rc is
 * the -ECANCELED that caused; otherwise rc unchanged. Suspends: never.
 * Errors (the scope is then left open, nothing changes): WEFT_ESTATE when called
 * from another task or for a scope that is not the innermost one open; -EINVAL for
 * NULL; WEFT_ENOTINLOOP outside a task. A task that returns inside a scope is
 * reported on stderr and the scope is closed for it.
 */
WEFT_API int weft_timeout_exit(weft_timeout *to, int rc);

/*
 * weft_wait_for — await a task with a time limit (asyncio.wait_for). Consumes the
 * handle. On timeout the task is cancelled and its clean-up waited for; then
 * -ETIMEDOUT is returned — unless the task swallowed the cancellation and returned
 * a value or failed otherwise, which is then returned instead.
 * Returns 0 (result in *result), the task's error, -ETIMEDOUT, -ECANCELED.
 * Suspends: unless the task has finished. timeout ≤ 0: a task not yet finished is
 * cancelled at once and waited for. WEFT_FOREVER: weft_await.
 * Errors: as weft_await, plus -ETIMEDOUT; -EINVAL for a NaN timeout (the task is
 *   then detached: the handle is consumed in every case) or for a task another
 *   call is already awaiting (that handle is left alone).
 * On cancel: as weft_await (the task is cancelled and left to finish on its own).
 */
WEFT_API int weft_wait_for(weft_task *t, double timeout, void **result);

/* ======================================================================== */
/* wait, as_completed, shield                                               */
/* ======================================================================== */

#define WEFT_FIRST_COMPLETED 1 /* return when any task finishes */
#define WEFT_FIRST_EXCEPTION 2 /* ... when any fails (not cancelled), else when all finish */
#define WEFT_ALL_COMPLETED 3   /* ... when all finish */

/*
 * weft_wait — wait for tasks (asyncio.wait) without consuming or cancelling any.
 * Fills done[] and pending[] (either may be NULL; each room for n) with the tasks,
 * each array in argument order, and their counts. A task's own error is never
 * returned: read it with weft_task_result or weft_await.
 * Returns 0 when the condition was met or the timeout (seconds; WEFT_FOREVER for
 * none) passed — on timeout the sets are partial.
 * Suspends: unless the condition already holds.
 * Errors: -ECANCELED (nothing is cancelled but the caller); -EINVAL (n == 0, a NULL
 *   or repeated task, the calling task itself, a bad return_when, NaN timeout);
 *   -ENOMEM; WEFT_ENOTINLOOP. On any error *ndone and *npending are 0.
 * A timeout ≤ 0 returns at once, without letting other tasks run first.
 */
WEFT_API int weft_wait(weft_task *const *tasks, size_t n, int return_when, double timeout,
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

/* weft_as_completed_new — NULL with weft_errmsg(): -EINVAL (NULL/repeated task, NaN),
 * -ENOMEM, WEFT_ENOTINLOOP. n == 0 is an empty iteration. A timeout ≤ 0 has already
 * passed: finished tasks are handed out, then -ETIMEDOUT. Suspends: never. */
WEFT_API weft_as_completed *weft_as_completed_new(weft_task *const *tasks, size_t n, double timeout);

/*
 * weft_as_completed_next — the next task to finish, in *out.
 * Returns 1 with a task; 0 when every task has been returned; -ETIMEDOUT once the
 * deadline passed (again on every later call; tasks that finished before it are
 * still handed out first); -ECANCELED; WEFT_ESTATE when another task is already
 * waiting in it, or the iterator was freed while this call waited.
 * Suspends: until a task not yet returned finishes.
 */
WEFT_API int weft_as_completed_next(weft_as_completed *ac, weft_task **out);

/* weft_as_completed_free — release the iterator (the tasks are untouched); also
 * allowed after weft_run has returned. */
WEFT_API void weft_as_completed_free(weft_as_completed *ac);

/*
 * weft_shield — await a task that the caller's cancellation must not cancel
 * (asyncio.shield): if the caller is cancelled (or its timeout expires) while
 * waiting (or already is), weft_shield returns -ECANCELED at once and the task runs
 * on; the handle is then NOT consumed, even if the task has finished, so its result
 * or error can still be taken with weft_await or dropped with weft_detach.
 * Otherwise as weft_await (the handle is consumed).
 * Suspends: unless the task has finished.
 * Errors: as weft_await, plus -EINVAL for a task another call already awaits or
 *   gathers, and -ENOMEM.
 */
WEFT_API int weft_shield(weft_task *t, void **result);

/* ======================================================================== */
/* Synchronisation: Lock, Event, Condition, Semaphore, Barrier              */
/* ======================================================================== */

/*
 * asyncio's primitives, for tasks of one loop (not for threads). Each is a heap
 * object made with _new (NULL with weft_errmsg() on -ENOMEM) and released with
 * _free, which returns 0 (also for NULL) or refuses with -EBUSY, freeing nothing,
 * while a task waits on it. Waiters are served in the order they arrived, and a task that
 * releases and at once re-acquires queues behind them (no barging). A call that
 * would wait returns -ECANCELED when its task is cancelled, having taken nothing; one
 * that need not wait (a free lock, a set event) succeeds even then. Every call
 * gives -EINVAL for a NULL object, WEFT_ENOTINLOOP outside a loop and WEFT_ESTATE
 * from a loop other than the one that made the object (the calls that return
 * nothing report that misuse on stderr and do nothing).
 */
typedef struct weft_lock weft_lock;
typedef struct weft_event weft_event;
typedef struct weft_cond weft_cond;
typedef struct weft_sem weft_sem;
typedef struct weft_barrier weft_barrier;

/* weft_lock_new — an unlocked lock (asyncio.Lock). NULL on -ENOMEM / outside a loop. */
WEFT_API weft_lock *weft_lock_new(void);
WEFT_API int weft_lock_free(weft_lock *lock);

/*
 * weft_lock_acquire — take the lock, waiting behind earlier waiters
 * (`await lock.acquire()`). Not reentrant: a task that holds it and acquires again
 * waits forever (the loop reports the deadlock).
 * Returns 0 with the lock held. Suspends: unless it is free and nobody waits.
 * Errors: -ECANCELED (the lock is not held; if it had just been handed over, it
 * passes on to the next waiter); -EINVAL (NULL); WEFT_ENOTINLOOP.
 */
WEFT_API int weft_lock_acquire(weft_lock *lock);

/* weft_lock_release — release it; the first waiter gets it next.
 * Returns 0; WEFT_ESTATE if it is not locked. Suspends: never. */
WEFT_API int weft_lock_release(weft_lock *lock);

/* weft_lock_locked — true while some task holds it. */
WEFT_API bool weft_lock_locked(const weft_lock *lock);

/* weft_event_new — an event, initially clear (asyncio.Event). */
WEFT_API weft_event *weft_event_new(void);
WEFT_API int weft_event_free(weft_event *ev);

/* weft_event_set — set it and wake every waiter (they return 0 even if the event
 * is cleared before they run). weft_event_clear — clear it. Suspend: never. */
WEFT_API void weft_event_set(weft_event *ev);
WEFT_API void weft_event_clear(weft_event *ev);
/* weft_event_is_set — true while set (false for NULL). Suspends: never. */
WEFT_API bool weft_event_is_set(const weft_event *ev);

/* weft_event_wait — wait until the event is set (at once if it is).
 * Returns 0; -ECANCELED; -EINVAL; WEFT_ENOTINLOOP. */
WEFT_API int weft_event_wait(weft_event *ev);

/*
 * weft_cond_new — a condition variable (asyncio.Condition) over `lock` (NULL: a
 * lock of its own, freed with it). weft_cond_lock gives that lock: acquire and
 * release it with weft_lock_acquire / weft_lock_release.
 */
WEFT_API weft_cond *weft_cond_new(weft_lock *lock);
WEFT_API int weft_cond_free(weft_cond *cond);
WEFT_API weft_lock *weft_cond_lock(weft_cond *cond);

/*
 * weft_cond_wait — release the lock, wait to be notified, re-acquire the lock.
 * The caller must hold the lock. Returns 0 with the lock held.
 * Errors: WEFT_ESTATE (the calling task does not hold the lock; nothing happens);
 * -ECANCELED — the lock has been re-acquired even so (as in asyncio), and a
 * notification the cancelled task had already received passes to the next waiter;
 * a task already cancelled when it calls gets -ECANCELED at once, the lock kept.
 */
WEFT_API int weft_cond_wait(weft_cond *cond);

/*
 * weft_cond_wait_for — wait until pred(arg) is true (checked at once, then after
 * each notification), with the lock held throughout the checks.
 * Returns 0 when pred is true; errors as weft_cond_wait.
 */
WEFT_API int weft_cond_wait_for(weft_cond *cond, bool (*pred)(void *arg), void *arg);

/* weft_cond_notify — wake up to n waiters (n = 0 wakes none); weft_cond_notify_all —
 * all. The caller must hold the lock: WEFT_ESTATE otherwise. Returns 0. Suspends: never. */
WEFT_API int weft_cond_notify(weft_cond *cond, size_t n);
WEFT_API int weft_cond_notify_all(weft_cond *cond);

/*
 * weft_sem_new — a semaphore holding `value` permits (asyncio.Semaphore);
 * weft_bounded_sem_new — one whose releases may not exceed its initial value
 * (asyncio.BoundedSemaphore). NULL with -EINVAL for a negative value.
 */
WEFT_API weft_sem *weft_sem_new(long value);
WEFT_API weft_sem *weft_bounded_sem_new(long value);
WEFT_API int weft_sem_free(weft_sem *sem);

/* weft_sem_acquire — take a permit, waiting FIFO when none is free or others wait.
 * Returns 0; -ECANCELED (no permit taken); -EINVAL; WEFT_ENOTINLOOP. */
WEFT_API int weft_sem_acquire(weft_sem *sem);

/* weft_sem_release — give a permit back (to the first waiter if any).
 * Returns 0; WEFT_ESTATE for a bounded semaphore released more than acquired;
 * -EOVERFLOW at LONG_MAX permits. */
WEFT_API int weft_sem_release(weft_sem *sem);

/* weft_sem_value — permits free now; weft_sem_locked — true if acquire would wait. */
WEFT_API long weft_sem_value(const weft_sem *sem);
WEFT_API bool weft_sem_locked(const weft_sem *sem);

/* weft_barrier_new — a barrier for `parties` tasks (asyncio.Barrier); -EINVAL if 0. */
WEFT_API weft_barrier *weft_barrier_new(size_t parties);
WEFT_API int weft_barrier_free(weft_barrier *b);

/*
 * weft_barrier_wait — wait until `parties` tasks are waiting, then all go on; the
 * barrier is cyclic and can be used again at once.
 * Returns the caller's index, 0 .. parties-1 (≥ 0: its place among the parties
 * that passed together, so a cancelled party leaves no gap), or: WEFT_EBROKEN if the
 * barrier was aborted or reset while waiting or is broken; -ECANCELED (the task
 * leaves without breaking the barrier for the others); -EINVAL; WEFT_ENOTINLOOP.
 */
WEFT_API int weft_barrier_wait(weft_barrier *b);

/* weft_barrier_reset — back to the empty state; current waiters get WEFT_EBROKEN.
 * weft_barrier_abort — break it: current and future waits get WEFT_EBROKEN until a
 * reset. Suspend: never. */
WEFT_API void weft_barrier_reset(weft_barrier *b);
WEFT_API void weft_barrier_abort(weft_barrier *b);
/* weft_barrier_n_waiting — parties waiting now; weft_barrier_broken — true after an
 * abort until a reset. 0 / false for NULL. Suspend: never. */
WEFT_API size_t weft_barrier_n_waiting(const weft_barrier *b);
WEFT_API bool weft_barrier_broken(const weft_barrier *b);

/* ======================================================================== */
/* Queues                                                                   */
/* ======================================================================== */

/*
 * Queues of `void *` items between tasks of one loop (asyncio.Queue, LifoQueue,
 * PriorityQueue). maxsize 0 = unbounded. Getters and putters that must wait are
 * served in the order they arrived. A cancelled get takes no item; a cancelled put
 * inserts none. Creating a queue and the _nowait calls need no running loop.
 */
typedef struct weft_queue weft_queue;

/* Orders two items of a priority queue: < 0 if a comes out first. */
typedef int (*weft_compare_fn)(const void *a, const void *b);

/* FIFO (asyncio.Queue) and LIFO (asyncio.LifoQueue) queues. NULL on -ENOMEM. */
WEFT_API weft_queue *weft_queue_new(size_t maxsize);
WEFT_API weft_queue *weft_lifo_queue_new(size_t maxsize);

/*
 * weft_priority_queue_new — smallest item first (asyncio.PriorityQueue) by `cmp`;
 * cmp NULL orders the items as integers (intptr_t) — put (void *)(intptr_t)priority
 * or use weft_queue_put_priority. Equal items come out in the order they went in.
 */
WEFT_API weft_queue *weft_priority_queue_new(size_t maxsize, weft_compare_fn cmp);

/* weft_queue_free — -EBUSY (nothing freed) while a task waits on it. Items left are
 * the caller's. */
WEFT_API int weft_queue_free(weft_queue *q);

/*
 * weft_queue_put — add an item, waiting while the queue is full (`await q.put(x)`).
 * Returns 0. Suspends: only while full.
 * Errors: -ECANCELED (nothing inserted); -ESHUTDOWN (the queue was shut down);
 * -ENOMEM (unbounded queue growing); -EINVAL; WEFT_ENOTINLOOP.
 */
WEFT_API int weft_queue_put(weft_queue *q, void *item);

/* weft_queue_put_nowait — add without waiting: WEFT_EFULL when full. -ESHUTDOWN, -ENOMEM. */
WEFT_API int weft_queue_put_nowait(weft_queue *q, void *item);

/*
 * weft_queue_get — remove and return the next item in *item, waiting while empty
 * (`await q.get()`). Returns 0. Suspends: only while empty.
 * Errors: -ECANCELED (no item taken: it stays for the next getter); -ESHUTDOWN
 * (shut down, and empty or shut down immediately); -ENOMEM (no memory to wait);
 * -EINVAL (q or item NULL); WEFT_ENOTINLOOP (a callback cannot wait: use
 * weft_queue_get_nowait). A woken getter that finds its item taken by a
 * get_nowait keeps its place at the front of the line.
 */
WEFT_API int weft_queue_get(weft_queue *q, void **item);

/* weft_queue_get_nowait — take without waiting: WEFT_EEMPTY when empty; -ESHUTDOWN. */
WEFT_API int weft_queue_get_nowait(weft_queue *q, void **item);

/* weft_queue_put_priority — put for a priority queue made with cmp NULL:
 * (void *)(intptr_t)priority as the item. */
#define weft_queue_put_priority(q, priority) weft_queue_put((q), (void *)(intptr_t)(priority))

/* weft_queue_task_done — one item taken earlier is fully processed.
 * Returns 0; WEFT_ESTATE if called more times than items were put. */
WEFT_API int weft_queue_task_done(weft_queue *q);

/* weft_queue_join — wait until every item put has been marked done.
 * Returns 0; -ECANCELED; -ENOMEM; -EINVAL; WEFT_ENOTINLOOP. */
WEFT_API int weft_queue_join(weft_queue *q);

/*
 * weft_queue_shutdown — no more puts (asyncio 3.13 Queue.shutdown): blocked and later
 * putters get -ESHUTDOWN. Without `immediate`, getters take what is left, then get
 * -ESHUTDOWN; with it, the items are dropped (counted as done for join) and every
 * blocked getter gets -ESHUTDOWN now. Suspends: never.
 */
WEFT_API void weft_queue_shutdown(weft_queue *q, bool immediate);

/* weft_queue_size — items in the queue now; weft_queue_maxsize — its bound (0:
 * unbounded); weft_queue_empty / weft_queue_full — size 0 / size at the bound (never
 * full when unbounded). NULL reads as an empty unbounded queue. Suspend: never. */
WEFT_API size_t weft_queue_size(const weft_queue *q);
WEFT_API size_t weft_queue_maxsize(const weft_queue *q);
WEFT_API bool weft_queue_empty(const weft_queue *q);
WEFT_API bool weft_queue_full(const weft_queue *q);

/* ======================================================================== */
/* Channels and select (Go)                                                 */
/* ======================================================================== */

/*
 * A channel carries values of `elem_size` bytes between tasks of one loop, copied
 * in and out (Go's chan T). capacity 0 = unbuffered: a send waits for a receiver.
 */
typedef struct weft_chan weft_chan;

/* weft_chan_new — NULL with -EINVAL for elem_size 0 or over 1 GiB, -ENOMEM. Needs
 * no running loop. */
WEFT_API weft_chan *weft_chan_new(size_t elem_size, size_t capacity);
/* weft_chan_free — -EBUSY while a task waits on it (right after weft_chan_close it
 * always succeeds). NULL returns 0. */
WEFT_API int weft_chan_free(weft_chan *ch);

/*
 * weft_chan_send — copy *elem into the channel, waiting until a receiver or buffer
 * space takes it. Returns 0. Errors: WEFT_ECLOSED (the channel is or gets closed;
 * nothing sent); -ECANCELED (nothing sent); -ENOMEM (nothing sent); -EINVAL;
 * WEFT_ENOTINLOOP (outside a loop, or from a callback when it would have to wait).
 * As for every channel call: an operation that can complete without waiting does so
 * even in a cancelled task (clean-up can still send a last value or drain), and one
 * that has completed reports success even if a cancellation arrives before the task
 * runs again.
 */
WEFT_API int weft_chan_send(weft_chan *ch, const void *elem);

/*
 * weft_chan_recv — receive into *out (elem_size bytes), waiting for a value.
 * out may be NULL: the value is dropped.
 * Returns 0. Errors: WEFT_ECLOSED once the channel is closed and drained (*out is
 * zeroed, Go's zero value); -ECANCELED (nothing received); -ENOMEM; -EINVAL;
 * WEFT_ENOTINLOOP (as for send).
 */
WEFT_API int weft_chan_recv(weft_chan *ch, void *out);

/* weft_chan_close — close the channel: waiting receivers get WEFT_ECLOSED (after
 * the buffered values are received), waiting senders get WEFT_ECLOSED. Returns 0;
 * WEFT_ESTATE if already closed; -EINVAL for NULL. */
WEFT_API int weft_chan_close(weft_chan *ch);

/* weft_chan_len — values buffered now; weft_chan_cap — the buffer's capacity (0:
 * unbuffered). 0 for NULL. Suspend: never. */
WEFT_API size_t weft_chan_len(const weft_chan *ch);
WEFT_API size_t weft_chan_cap(const weft_chan *ch);

enum { WEFT_SEND = 1, WEFT_RECV = 2 };

/* One operation of a weft_select. */
typedef struct weft_select_case {
    weft_chan *chan;  /* NULL: the case is ignored (Go's nil channel) */
    int op;           /* WEFT_SEND or WEFT_RECV */
    void *elem;       /* SEND: the value to copy from; RECV: where to copy to (may be NULL) */
    int result;       /* out, for the chosen case: 0, or WEFT_ECLOSED */
} weft_select_case;

/*
 * weft_select — wait until one of the operations can proceed, perform it, and return
 * its index (Go's select). When several are ready, one is chosen at random, so
 * no case starves (the choice is pseudo-random from a fixed seed per channel, so a
 * program's runs repeat). timeout: seconds to wait (WEFT_FOREVER for none; 0 = Go's
 * `default:`, do not wait). A receive on a closed channel, or a send on one, is
 * ready and completes with result WEFT_ECLOSED.
 * A negative timeout acts as 0; cases not chosen keep their `result` untouched.
 * Returns the index (≥ 0). Errors: -ETIMEDOUT (nothing done); -ECANCELED (nothing
 * done); -ENOMEM (nothing done); -EINVAL (no case with a channel and no timeout, a
 * bad op, NaN); WEFT_ENOTINLOOP (as for send).
 */
WEFT_API int weft_select(weft_select_case *cases, size_t n, double timeout);

/* ======================================================================== */
/* Executors: threads                                                       */
/* ======================================================================== */

/*
 * Blocking work must leave the loop: a task that calls sleep(), read() on a slow
 * file or a long computation stops every other task of its loop. These calls run a
 * plain function on a thread of a pool while the calling task waits, suspended.
 *
 * The function runs outside any loop: it must not call weft functions that need a
 * task, except weft_fail, which in a pool thread records the call's error:
 *     static void *read_config(void *path) {
 *         ... if (!f) return weft_fail(-errno, "cannot open %s", (char *)path); ...
 *     }
 */
typedef void *(*weft_blocking_fn)(void *arg);
typedef struct weft_pool weft_pool;

/*
 * weft_to_thread — run fn(arg) on the default thread pool and wait for it
 * (asyncio.to_thread). The pool is created on first use with weft_default_pool_size()
 * threads (asyncio's min(32, CPUs + 4)). It is shared by every loop that uses it:
 * weft_run waits for its own loop's calls before returning, and the last loop using
 * the pool shuts it down (a later call starts a new one, so the size can be set
 * again between runs). A call reaches its pool one loop iteration after its task
 * suspends: calls are handed over in batches.
 * Returns 0 with fn's return value in *result (result may be NULL), or the error
 * fn gave with weft_fail (its message in weft_errmsg()).
 * Suspends: always, until the call has run.
 * Errors: fn's error; -ECANCELED; -ENOMEM; -EAGAIN (no thread could be started);
 *   -EINVAL (fn NULL); WEFT_ENOTINLOOP.
 * On cancel: returns -ECANCELED at once. A call that has not started never runs;
 *   one already running runs to completion in its thread and its result is dropped
 *   (if it returns memory the caller would have freed, that memory is not freed).
 */
WEFT_API int weft_to_thread(weft_blocking_fn fn, void *arg, void **result);

/* weft_default_pool_size / weft_set_default_pool_size — threads of the default pool
 * (0 = the default, min(32, CPUs + 4)). Setting it affects a default pool not yet
 * created: returns 0, or WEFT_ESTATE once it exists. Any thread. */
WEFT_API size_t weft_default_pool_size(void);
WEFT_API int weft_set_default_pool_size(size_t threads);

/*
 * weft_pool_new — a thread pool of `threads` threads (0 = the default size), started
 * lazily as calls arrive (concurrent.futures.ThreadPoolExecutor). Usable from the
 * tasks of any loop. NULL on -ENOMEM / -EINVAL (more than 1024 threads). Any thread.
 */
WEFT_API weft_pool *weft_pool_new(size_t threads);

/* weft_pool_run — weft_to_thread on a given pool (loop.run_in_executor). Errors as
 * weft_to_thread, plus -ESHUTDOWN once the pool has been shut down. */
WEFT_API int weft_pool_run(weft_pool *pool, weft_blocking_fn fn, void *arg, void **result);

/*
 * weft_pool_shutdown — refuse new calls (-ESHUTDOWN). With `wait`, wait until every
 * queued and running call has finished: a task is suspended meanwhile, a plain
 * thread blocks. Without it, queued calls that have not started are dropped (their
 * callers get -ESHUTDOWN) and running ones finish on their own.
 * Returns 0; -ECANCELED (a task cancelled while waiting; the shutdown goes on).
 */
WEFT_API int weft_pool_shutdown(weft_pool *pool, bool wait);

/* weft_pool_free — shut down (waiting, blocking the calling thread) and free. Not
 * from one of the pool's own threads. */
WEFT_API void weft_pool_free(weft_pool *pool);

/*
 * weft_run_in_loop — from a thread that is not running `loop`, run fn(arg) as a
 * task of that loop and wait for its result (asyncio.run_coroutine_threadsafe(...)
 * .result(timeout)). timeout in seconds (WEFT_FOREVER: none); on timeout the task is
 * cancelled and -ETIMEDOUT returned.
 * Returns 0 with the task's result, or its error (message in weft_errmsg() of this
 * thread); -ETIMEDOUT; -ESHUTDOWN (the loop has finished or finishes first);
 * -EDEADLK if called from the loop's own thread; -ENOMEM. Blocks the calling thread.
 * As for weft_call_soon_threadsafe, the caller must know that the loop's weft_run
 * has not returned yet.
 */
WEFT_API int weft_run_in_loop(weft_loop *loop, weft_fn fn, void *arg, void **result, double timeout);

/* ======================================================================== */
/* Executors: processes                                                     */
/* ======================================================================== */

/*
 * A process pool for CPU-bound work (concurrent.futures.ProcessPoolExecutor +
 * loop.run_in_executor). Worker processes are forked when the pool is created, so
 * the function pointers you pass stay valid in them; arguments and results travel
 * as byte buffers.
 *
 * Forking a process that has threads is dangerous: the child gets a copy of every
 * lock as some other thread held it (malloc's, stdio's) and may deadlock on it. So
 * weft_procpool_new refuses (-EDEADLK) when the process already has other threads
 * (for instance after weft_to_thread started the default pool): create process
 * pools at the start of the program. Workers that die are replaced from a helper
 * process forked at creation, which never has threads, so replacement is safe too.
 */
typedef struct weft_procpool weft_procpool;

/*
 * A function run in a worker process: reads in[0..in_len), returns 0 and sets *out
 * to a malloc'd buffer of *out_len bytes (or NULL, 0), or returns a negative error
 * (a message given with weft_fail travels back with it). A positive return counts
 * as success.
 */
typedef int (*weft_proc_fn)(const void *in, size_t in_len, void **out, size_t *out_len);

/* weft_procpool_new — start `workers` worker processes (0 = the number of CPUs).
 * Workers start with only descriptors 0–2 open, on a fresh 8 MiB stack. A pool is
 * used from the tasks of one loop's thread.
 * NULL with weft_errmsg(): -EDEADLK (threads exist), -EAGAIN/-ENOMEM (fork failed),
 * -EMFILE/-ENFILE (no sockets), -EINVAL (more than 1024 workers). */
WEFT_API weft_procpool *weft_procpool_new(size_t workers);

/*
 * weft_procpool_run — run fn(in) in a worker and wait for its result. *out receives
 * a malloc'd copy of the result bytes (free() it) and *out_len its length.
 * Returns 0, fn's negative error, or:
 *   WEFT_EBROKENPOOL — the worker died during the call (crashed, was killed); the
 *     worker is replaced and the pool stays usable; other calls are unaffected.
 *   -ESHUTDOWN — the pool is shut down. -ECANCELED — the caller was cancelled (a
 *   call not yet sent never runs; a running one finishes and its result is dropped).
 *   -ENOMEM; -EINVAL; WEFT_ENOTINLOOP.
 * Suspends: until a worker has run it.
 */
WEFT_API int weft_procpool_run(weft_procpool *pool, weft_proc_fn fn, const void *in, size_t in_len, void **out,
                               size_t *out_len);

/* weft_procpool_free — stop the workers (after their current calls), reap every
 * process (no zombies) and free the pool. Blocks the calling thread until the running
 * calls have finished. Calls still waiting get -ESHUTDOWN. If a dead worker cannot be
 * replaced, the pool is marked broken and every later call gets WEFT_EBROKENPOOL. */
WEFT_API void weft_procpool_free(weft_procpool *pool);

#ifdef __cplusplus
}
#endif

#endif /* WEFT_H */
