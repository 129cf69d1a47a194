/*
 * weft/exec.h — executors: running blocking functions on pools of threads
 * (asyncio.to_thread, run_in_executor), running a task of a loop from another thread
 * (run_coroutine_threadsafe), and CPU-bound work in a pool of processes
 * (ProcessPoolExecutor).
 *
 * Part of weft's public header: include <weft.h>, not this file.
 */
#ifndef WEFT_EXECUTORS_H
#define WEFT_EXECUTORS_H

#include "base.h"

#ifdef __cplusplus
extern "C" {
#endif

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
 * Returns: 0 with fn's return value in *result (result may be NULL), or the error
 *   fn gave with weft_fail (its message in weft_errmsg()).
 * Suspends: always, until the call has run (a task already cancelled returns at
 *   once and fn never runs).
 * Errors: fn's error; -ECANCELED; -ENOMEM; -EAGAIN (no thread could be started);
 *   -EINVAL (fn NULL); WEFT_ENOTINLOOP.
 * On cancel: returns -ECANCELED at once. A call that has not started never runs;
 *   one already running runs to completion in its thread and its result is dropped
 *   (if it returns memory the caller would have freed, use weft_to_thread_drop).
 */
WEFT_API WEFT_WAIT int weft_to_thread(weft_blocking_fn fn, void *arg, void **result);

/*
 * weft_to_thread_drop — weft_to_thread with a way to free a result nobody takes:
 * drop(result) is called (from the loop, after fn returned; it must not suspend)
 * when fn succeeded with a non-NULL result and the caller did not take it: it was
 * cancelled or timed out while fn ran, or passed a NULL result pointer.
 * Returns: as weft_to_thread.
 * Suspends: as weft_to_thread.
 * Errors: as weft_to_thread.
 * On cancel: as weft_to_thread; the running call's result goes to drop.
 */
WEFT_API WEFT_WAIT int weft_to_thread_drop(weft_blocking_fn fn, void *arg, void **result, void (*drop)(void *result));

/* weft_default_pool_size — threads of the default pool (0 = the default,
 * min(32, CPUs + 4)). Any thread.
 * Returns: the size of the default pool if it exists, else the size it will have.
 * Suspends: never.
 * Errors: none. */
WEFT_API size_t weft_default_pool_size(void);

/* weft_set_default_pool_size — set the threads of the default pool (0 = the default,
 * min(32, CPUs + 4)). Setting it affects a default pool not yet created. Any thread.
 * Returns: 0.
 * Suspends: never.
 * Errors: WEFT_ESTATE once it exists; -EINVAL above 1024 threads. */
WEFT_API int weft_set_default_pool_size(size_t threads);

/*
 * weft_pool_new — a thread pool of `threads` threads (0 = the default size), started
 * lazily as calls arrive (concurrent.futures.ThreadPoolExecutor). Usable from the
 * tasks of any loop. Any thread.
 * Returns: the pool, or NULL with weft_errmsg().
 * Suspends: never.
 * Errors (NULL returned): -ENOMEM / -EINVAL (more than 1024 threads).
 */
WEFT_API weft_pool *weft_pool_new(size_t threads);

/* weft_pool_run — weft_to_thread on a given pool (loop.run_in_executor).
 * Returns: as weft_to_thread.
 * Suspends: always, until the call has run (as weft_to_thread).
 * Errors: as weft_to_thread, plus -ESHUTDOWN once the pool has been shut down (also
 *   for a queued call a shutdown without waiting dropped) and -EINVAL for a NULL
 *   pool.
 * On cancel: as weft_to_thread. */
WEFT_API WEFT_WAIT int weft_pool_run(weft_pool *pool, weft_blocking_fn fn, void *arg, void **result);

/* weft_pool_run_drop — weft_pool_run with drop(result) for a result nobody takes,
 * as weft_to_thread_drop.
 * Returns: as weft_pool_run.
 * Suspends: as weft_pool_run.
 * Errors: as weft_pool_run.
 * On cancel: as weft_pool_run; the running call's result goes to drop. */
WEFT_API WEFT_WAIT int weft_pool_run_drop(weft_pool *pool, weft_blocking_fn fn, void *arg, void **result,
                                void (*drop)(void *result));

/*
 * weft_pool_shutdown — refuse new calls (-ESHUTDOWN). With `wait`, wait until every
 * queued and running call has finished: a task is suspended meanwhile, a plain
 * thread blocks. Without it, queued calls that have not started are dropped (their
 * callers get -ESHUTDOWN) and running ones finish on their own.
 * Returns: 0.
 * Suspends: with `wait`, from a task, until the pool's calls have finished; never
 *   otherwise (with `wait` a callback blocks its loop's thread, as a plain thread
 *   does).
 * Errors: -ECANCELED (a task cancelled while waiting; the shutdown goes on);
 *   -ENOMEM (no memory to wait; the pool is shut down); -EINVAL for NULL.
 * On cancel: returns -ECANCELED at once; the pool stays shut down and its queued
 *   and running calls go on.
 */
WEFT_API int weft_pool_shutdown(weft_pool *pool, bool wait);

/* weft_pool_free — shut down (waiting, blocking the calling thread) and free. Not
 * from one of the pool's own threads.
 * Returns: nothing.
 * Suspends: never: it blocks the calling thread (from a task: its whole loop) until
 *   the pool's calls have finished and its threads have exited.
 * Errors: none. */
WEFT_API void weft_pool_free(weft_pool *pool);

/*
 * weft_run_in_loop — from a thread that is not running `loop`, run fn(arg) as a
 * task of that loop and wait for its result (asyncio.run_coroutine_threadsafe(...)
 * .result(timeout)). timeout in seconds (WEFT_FOREVER: none); on timeout the task is
 * cancelled and -ETIMEDOUT returned (without waiting for the task to finish).
 * As for weft_call_soon_threadsafe, the caller must know that the loop's weft_run
 * has not returned yet.
 * Returns: 0 with the task's result, or its error (message in weft_errmsg() of this
 *   thread).
 * Suspends: never: it blocks the calling thread.
 * Errors: the task's error; -ETIMEDOUT; -ESHUTDOWN (the loop has finished or
 *   finishes first); -EDEADLK if called from the loop's own thread; -ENOMEM;
 *   -EINVAL (loop or fn NULL, NaN timeout).
 */
WEFT_API WEFT_WAIT int weft_run_in_loop(weft_loop *loop, weft_fn fn, void *arg, void **result, double timeout);

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
 * Workers start with only descriptors 0–2 open, on a fresh 8 MiB stack, with SIGQUIT
 * ignored (a terminal's Ctrl-\ reaches the whole group; it is the program's, for its
 * task dump). A pool is used from the tasks of one loop's thread. weft's own watchdog
 * thread (debug mode) does not count as another thread: it is held still across the
 * fork.
 * Returns: the pool, or NULL with weft_errmsg().
 * Suspends: never (the calling thread blocks while the processes are forked).
 * Errors (NULL returned): -EDEADLK (threads exist), -EAGAIN/-ENOMEM (fork failed),
 *   -EMFILE/-ENFILE (no sockets), -EINVAL (more than 1024 workers). */
WEFT_API weft_procpool *weft_procpool_new(size_t workers);

/*
 * weft_procpool_run — run fn(in) in a worker and wait for its result. *out receives
 * a malloc'd copy of the result bytes (free() it) and *out_len its length.
 * Returns: 0, fn's negative error, or one of the errors below.
 * Suspends: until a worker is free and has run it (a task already cancelled returns
 *   at once).
 * Errors:
 *   WEFT_EBROKENPOOL — the worker died during the call (crashed, was killed); the
 *     worker is replaced and the pool stays usable; other calls are unaffected. Also
 *     when the pool is broken (a dead worker could not be replaced).
 *   -ESHUTDOWN — the pool is shut down (freed while the call waited or ran).
 *   -ECANCELED — the caller was cancelled (a call not yet sent never runs; a running
 *   one finishes and its result is dropped).
 *   -ENOMEM; -EINVAL; WEFT_ENOTINLOOP; or the error the loop's poller gave for the
 *   worker's socket (the message says which).
 * On cancel: returns -ECANCELED at once. A call not yet sent to a worker never runs;
 *   one already sent runs to completion in its worker and its result is dropped
 *   (read and discarded by the worker's next call).
 */
WEFT_API WEFT_WAIT int weft_procpool_run(weft_procpool *pool, weft_proc_fn fn, const void *in, size_t in_len, void **out,
                               size_t *out_len);

/* weft_procpool_free — stop the workers (after their current calls), reap every
 * process (no zombies) and free the pool. Blocks the calling thread until the running
 * calls have finished. Calls still waiting get -ESHUTDOWN. If a dead worker cannot be
 * replaced, the pool is marked broken and every later call gets WEFT_EBROKENPOOL.
 * Returns: nothing.
 * Suspends: never: it blocks the calling thread.
 * Errors: none. The callers of calls still running also get -ESHUTDOWN (their
 *   results are dropped). */
WEFT_API void weft_procpool_free(weft_procpool *pool);

#ifdef __cplusplus
}
#endif

#endif /* WEFT_EXECUTORS_H */
