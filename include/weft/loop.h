/*
 * weft/loop.h — running a loop: weft_run and its options (asyncio.run), the loop's
 * clock, and the loop running on this thread.
 *
 * Part of weft's public header: include <weft.h>, not this file.
 */
#ifndef WEFT_LOOP_H
#define WEFT_LOOP_H

#include "base.h"

#ifdef __cplusplus
extern "C" {
#endif

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
    /* Nonzero: leave SIGINT alone. By default weft_run, on the process's main thread
     * and while SIGINT's disposition is SIG_DFL, handles Ctrl-C as asyncio.run
     * does: the first SIGINT cancels main, a second one kills the process at once,
     * and weft_run returns WEFT_EINTERRUPTED when main ended cancelled by it
     * (weft/signal.h says the whole of it). */
    int no_sigint;

    /* Seeing inside the loop (weft/debug.h and the guide's "Seeing inside the loop").
     * Each is also set from the environment, which wins, so that a program can be
     * watched without being rebuilt (WEFT_DEBUG=0 or WEFT_DUMP_SIGNAL=0, or false, no,
     * off, turn off what the options or debug mode turn on; any other value, on). A value in the environment that cannot be
     * used is said on stderr and ignored, and the program runs; a bad field here makes
     * weft_run return -EINVAL with a message naming it. Everything here is off by
     * default and then costs nothing but a test at each task switch. */

    /* Nonzero (or WEFT_DEBUG=1): debug mode, as asyncio's. Each task remembers where
     * it was created and where it last suspended; a step (a task running from one
     * suspension to the next, or a callback) longer than slow_step is reported on
     * stderr with the task's name, where it was created, where it resumed and where it
     * stopped, as file:line; reports about a task (an error nobody retrieved, a task
     * destroyed while pending) say where it was created; tasks main left behind that
     * still run a second after weft_run cancelled them are named, with a dump. Debug
     * mode also turns on the watchdog (1 s unless `watchdog` says otherwise) and the
     * SIGQUIT dump. It costs a stack capture at every spawn and suspension (~0.2 µs,
     * against ~0.01 µs for a switch without it) and ~5 KiB of memory per task: 0.7 KiB
     * of records, and the capture touches about one more page of each task's stack. */
    int debug;
    /* Seconds: the step that debug mode reports as slow (0 = the default, 0.1 s, as
     * asyncio's slow_callback_duration; so is WEFT_SLOW_STEP=0). WEFT_SLOW_STEP=SECONDS. */
    double slow_step;
    /* Seconds (or WEFT_WATCHDOG=SECONDS): start the blocked-loop watchdog, a thread
     * that notices when one step has held the loop for this long and, while it still
     * does, prints where the loop's thread is stuck ("loop blocked for 1.00 s in task
     * fetcher: sleep() called from fetcher at crawl.c:42") and its stack. 0 = off
     * (1 s in debug mode). It interrupts the loop's thread with the real-time signal
     * SIGRTMIN+5 to read its stack (a program that has its own handler for that
     * signal is told so once, and gets reports without the stack); sleep(), usleep()
     * and nanosleep() still last their full time. The loop pays ~2.5 ns a switch for
     * it; its thread wakes twenty times a threshold. */
    double watchdog;
    /* A file name (or WEFT_TRACE=FILE): record a timeline of the loop, every task's
     * spawn, steps, waits and what they wait on, wake-ups and end, into FILE as
     * Chrome trace-event JSON (open it in https://ui.perfetto.dev or chrome://tracing,
     * or draw it with tools/weft-timeline). %p in the name becomes the process id: a
     * program that runs other weft programs (which inherit WEFT_TRACE) gives each its
     * own file that way, as a file another process is tracing to is refused (its lock
     * is held), not mixed into. A file that cannot be written makes weft_run return its
     * error (-ENOENT, -EACCES, -EBUSY for another process's, ...) before main runs; an
     * empty string, -EINVAL. */
    const char *trace_file;
    /* Nonzero: time every step, for weft_loop_metrics' step figures (one clock read
     * per switch, ~25 ns here). Implied by debug and trace_file. */
    int time_steps;
    /* Nonzero (or WEFT_DUMP_SIGNAL=1): SIGQUIT (Ctrl-\) prints every task of the loop
     * with weft_dump, as Go dumps its goroutines, and the program goes on. Only on the
     * process's main thread, and only while SIGQUIT's disposition is SIG_DFL (asked for
     * and not possible, it says so once). On in debug mode. Like any handled signal,
     * SIGQUIT cuts short a blocking call the loop's thread is in (a sleep() returns
     * early): one more reason for blocking calls to live on threads (weft_to_thread). */
    int dump_signal;
} weft_options;

#define WEFT_STACK_DEFAULT ((size_t)256 * 1024)
#define WEFT_STACK_MIN ((size_t)16 * 1024)

/*
 * weft_run — run `main(arg)` as the first task of a new loop on this thread, and run
 * the loop until main returns. Tasks still alive then are cancelled and waited for;
 * callbacks and timers left over are dropped. asyncio.run().
 * `result` (may be NULL) receives main's return value on success.
 * Returns: 0, or main's error (its weft_errmsg() text is then readable from this
 *   thread with weft_errmsg()).
 * Suspends: never: it is called outside any loop and blocks the calling thread until
 *   done.
 * Ctrl-C: on the process's main thread, unless weft_options.no_sigint is set or the
 *   program ignores or handles SIGINT itself, the first SIGINT cancels main, a
 *   second one (or one after main finished) kills the process with SIGINT at once,
 *   and SIGINT's disposition is SIG_DFL again when weft_run returns (weft/signal.h).
 * Errors: main's own error; -ECANCELED if main was cancelled; WEFT_EINTERRUPTED if
 *   main ended cancelled by a Ctrl-C (SIGINT): weft_exit_interrupted() then ends the
 *   process as killed by SIGINT, as Python does; -ENOMEM;
 *   -EINVAL if main is NULL; the error of creating the loop's poller (-EMFILE, ...);
 *   WEFT_ENESTED if called from inside a running loop (nothing runs);
 *   WEFT_EDEADLOCK_LOOP if, after main returned, leftover tasks ignored cancellation
 *   and wait on something nothing can wake (each is reported on stderr and freed),
 *   or if main itself waits on something nothing can wake (reported on stderr;
 *   every task is then cancelled).
 */
WEFT_API int weft_run(weft_fn main, void *arg, void **result);

/* weft_run_opts — weft_run with options (NULL = defaults).
 * Returns: as weft_run.
 * Suspends: never (blocks the calling thread, as weft_run).
 * Errors: as weft_run; -EINVAL for an option out of range (a stack below
 *   WEFT_STACK_MIN), with a message naming it. */
WEFT_API int weft_run_opts(weft_fn main, void *arg, void **result, const weft_options *opts);

/*
 * weft_time — the loop's clock, in seconds, monotonic (asyncio's loop.time()).
 * Under virtual_time it starts at 0 and moves only when every task waits.
 * Returns: the loop's time; outside a loop: the monotonic clock.
 * Suspends: never.
 * Errors: none.
 */
WEFT_API double weft_time(void);

/* weft_loop_current — the loop running on this thread, or NULL. The value is a
 * handle, safe to keep: once that loop's weft_run has returned, the calls that
 * take it say -ESHUTDOWN (never reaching a later loop).
 * Returns: the loop (for weft_call_soon_threadsafe and weft_run_in_loop from other
 *   threads), or NULL outside a loop.
 * Suspends: never.
 * Errors: none. */
WEFT_API weft_loop *weft_loop_current(void);

#ifdef __cplusplus
}
#endif

#endif /* WEFT_LOOP_H */
