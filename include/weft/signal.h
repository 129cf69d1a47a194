/*
 * weft/signal.h — Unix signals handled on the loop (asyncio's loop.add_signal_handler
 * and remove_signal_handler), a task waiting for a signal, and Ctrl-C as weft_run
 * handles it (asyncio.run's SIGINT handling).
 *
 * A signal is handled on a loop, never inside the signal handler: weft installs a
 * handler of its own (sigaction, SA_RESTART | SA_ONSTACK) that only counts the
 * arrival and calls weft_notify, the one async-signal-safe weft call. The loop then
 * runs your callback, or wakes your tasks, on its own thread, where every weft call
 * and every C function (printf, malloc) is allowed. A signal is a process-wide thing:
 * one loop of the process at a time owns a given signal; another loop asking for it
 * is refused with -EBUSY naming the owner. The kernel may deliver the signal to any
 * thread; that thread's handler just notifies the owning loop.
 *
 * Arrivals are counted: each callback, and each weft_signal_wait, is told how many
 * arrivals it accounts for (at least 1). Several arrivals before the loop gets to
 * them make one callback with their number. The kernel itself merges a standard
 * signal (1..31) sent again while one is pending, so the count is of the arrivals
 * weft's handler saw, not of every kill(2) made; real-time signals (SIGRTMIN..) are
 * queued by the kernel and each one is seen.
 *
 * Async-signal-safety. Exactly one weft call may be made from a signal handler of
 * your own: weft_notify (weft/notify.h). Nothing in this file is async-signal-safe,
 * nor is any other weft call; with weft_add_signal_handler you need no handler of
 * your own at all.
 *
 * Threads. Because any thread may run the handler, weft's handler is installed with
 * SA_RESTART: a read(2) or write(2) blocked in another thread (a weft_to_thread
 * call, a thread of your own) is restarted, not failed with EINTR. Calls the kernel
 * never restarts (poll, epoll_wait, nanosleep and sleep, sem_timedwait; see
 * signal(7)) still return early with EINTR in whatever thread takes the signal, as
 * with any handler. To keep signals off a thread, block them in it (pthread_sigmask)
 * before the loop's owner needs them; the owning loop's thread need not be the one
 * that takes them.
 *
 * Processes. A child made by fork(2) gets back, for every signal a loop owned, the
 * disposition that was there before weft took it (its copy of the loop does not
 * run). So the process pool's helper and workers (weft_procpool_new) are not weft's
 * handlers: a Ctrl-C at the terminal reaches them as it would without weft (by
 * default it ends them; their calls then fail with WEFT_EBROKENPOOL while main is
 * being cancelled). exec(2) resets caught signals to the default anyway.
 *
 * Ctrl-C. weft_run, when called on the process's main thread while SIGINT's
 * disposition is the default (SIG_DFL), handles SIGINT as asyncio.run does:
 *   - the first SIGINT cancels the main task, with the message "weft_run: SIGINT
 *     (Ctrl-C): main task cancelled"; main's suspension points return -ECANCELED,
 *     so it can clean up and return;
 *   - when main then ends cancelled, weft_run returns WEFT_EINTERRUPTED (asyncio.run
 *     raises KeyboardInterrupt). A main that survives the cancellation
 *     (weft_uncancel) and returns normally makes weft_run return 0, as in asyncio.
 *     "Ends cancelled" is main's result: -ECANCELED from its last wait, or a main
 *     that called weft_uncancel to wait through its cleanup and then returns
 *     weft_fail(-ECANCELED, ...) to say it was interrupted;
 *   - a second SIGINT, or a first one once main has finished (while weft_run
 *     cancels leftover tasks and waits for threads), restores SIGINT's default and
 *     re-raises it from the handler: the process dies of SIGINT at once, even when
 *     the loop is stuck in a blocking call (the shell reports status 130);
 *   - when weft_run returns, SIGINT's disposition is SIG_DFL again.
 * weft_options.no_sigint turns this off. Only the main thread's weft_run takes
 * SIGINT, so several loops in several threads leave it alone; a program that
 * ignores SIGINT (SIG_IGN, as a background job of a shell does) or handles it
 * itself is left alone too. A handler of your own for SIGINT on that loop
 * (weft_add_signal_handler, or a task in weft_signal_wait(SIGINT)) takes SIGINT over
 * from the Ctrl-C handling until it is removed.
 * To end the program the way Python does after KeyboardInterrupt (dead of SIGINT,
 * so that a shell script running it stops too), call weft_exit_interrupted() when
 * weft_run returns WEFT_EINTERRUPTED.
 *
 * Refused: SIGKILL and SIGSTOP (the kernel never lets them be caught), SIGSEGV,
 * SIGBUS, SIGILL and SIGFPE (a fault: a handler that returns runs the faulting
 * instruction again, forever; weft reports a crash in a task itself), the signals
 * the C library keeps for its threads (32 and 33 on glibc: between SIGSYS and
 * SIGRTMIN), and numbers outside 1..NSIG-1. Each is -EINVAL with a message saying
 * why.
 *
 * Part of weft's public header: include <weft.h>, not this file.
 */
#ifndef WEFT_SIGNAL_H
#define WEFT_SIGNAL_H

#include "base.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A signal callback: run on the loop, outside any task, with the signal and the
 * number of arrivals it accounts for (1 or more). Like any loop callback it must not
 * suspend, and may spawn tasks, set events, cancel tasks, add and remove signal
 * handlers (its own included). */
typedef void (*weft_signal_fn)(int sig, unsigned arrivals, void *arg);

/*
 * weft_add_signal_handler — handle signal `sig` on the current loop: from now on,
 * each time it arrives the loop calls cb(sig, arrivals, arg) on its thread
 * (asyncio's loop.add_signal_handler). Arrivals that come before the loop gets to
 * them are merged into one call whose `arrivals` says how many; one that comes once
 * the call has started makes another. If this loop already handles sig, the
 * callback and arg are replaced (asyncio does the same) and nothing else changes.
 * The disposition sig had before is kept, and put back by weft_remove_signal_handler
 * or when weft_run ends. While the loop owns a signal for you, a loop whose tasks
 * all wait is waiting for it, not deadlocked (until main returns). From a task or a
 * callback of a running loop.
 * Returns: 0.
 * Suspends: never.
 * Errors: -EINVAL for a signal that cannot be handled (see the top of this file:
 *   SIGKILL, SIGSTOP, the fault signals, the C library's, a number out of range) or
 *   a NULL cb; -EBUSY when another loop (another thread) owns sig, the message
 *   naming that loop's thread (and saying when it is weft_run's Ctrl-C handling);
 *   -ENOMEM; WEFT_ENOTINLOOP outside a loop; the error of sigaction(2) as a
 *   negative errno.
 */
WEFT_API int weft_add_signal_handler(int sig, weft_signal_fn cb, void *arg);

/*
 * weft_remove_signal_handler — stop handling `sig` on the current loop (asyncio's
 * loop.remove_signal_handler), whether for a callback or for tasks waiting in
 * weft_signal_wait, and put back the disposition sig had before this loop took it:
 * the program's own handler, SIG_IGN, SIG_DFL, or, for SIGINT on weft_run's main
 * loop, weft_run's Ctrl-C handling. Arrivals not yet run are dropped. Tasks waiting
 * for sig are woken with WEFT_ECLOSED. From a task or a callback of the loop,
 * including sig's own callback.
 * Returns: 1 if the loop was handling sig, 0 if it was not.
 * Suspends: never.
 * Errors: -EINVAL for a signal number that cannot be handled; -EBUSY when another
 *   loop owns sig (remove it there); WEFT_ENOTINLOOP outside a loop.
 */
WEFT_API int weft_remove_signal_handler(int sig);

/*
 * weft_signal_wait — wait until `sig` arrives (the asyncio idiom: an Event set by
 * the handler, awaited and cleared; POSIX's sigwait). If the loop does not handle
 * sig yet, it starts to, as weft_add_signal_handler would without a callback, and
 * keeps handling it after the wait, until weft_remove_signal_handler or the end of
 * weft_run: so an arrival between two waits is not lost, nor does it kill the
 * process. Arrivals that came while no task of the loop was waiting for sig (since
 * the previous wait returned, or since the loop began handling it) are returned at
 * once; otherwise the task waits for the next ones, and every task waiting for sig
 * then is woken and sees them. A callback for sig, if any, runs as well.
 * From a task.
 * Returns: the number of arrivals (1 or more).
 * Suspends: yes, unless arrivals are already there.
 * Errors: -ECANCELED; WEFT_ECLOSED if weft_remove_signal_handler(sig) was called
 *   while it waited; the errors of weft_add_signal_handler (-EINVAL, -EBUSY,
 *   -ENOMEM, the error of sigaction(2)); WEFT_ENOTINLOOP outside a task.
 * On cancel: arrivals it did not return are left for the next wait (unless another
 *   waiting task returned them); the loop goes on handling sig.
 */
WEFT_API WEFT_WAIT int weft_signal_wait(int sig);

/*
 * weft_exit_interrupted — end the process as killed by SIGINT, as Python does after
 * an unhandled KeyboardInterrupt: flushes stdio's buffers, restores SIGINT's default
 * disposition, unblocks it and raises it. The parent sees WIFSIGNALED with
 * WTERMSIG == SIGINT, and a shell status 130, so a script running the program stops
 * as it would on Ctrl-C. Call it from main() when weft_run returned
 * WEFT_EINTERRUPTED. atexit handlers do not run (the process dies of the signal).
 * Returns: never (should SIGINT not end the process, it calls _exit(130)).
 * Suspends: never.
 * Errors: none.
 */
WEFT_API void weft_exit_interrupted(void)
#if defined(__GNUC__)
    __attribute__((noreturn))
#endif
    ;

#ifdef __cplusplus
}
#endif

#endif /* WEFT_SIGNAL_H */
