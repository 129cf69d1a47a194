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
 * Each is a labelled line of the function's comment ("Returns:", "Suspends:",
 * "Errors:", and "On cancel:" for every call whose Suspends is not "never");
 * scripts/check_header.py, run by `make test`, fails when one is missing.
 *
 * The declarations live in the files of include/weft/, one per area, included below in
 * the order they build on each other. Include this file, never one of those.
 */
#ifndef WEFT_H
#define WEFT_H

#include "weft/base.h"     /* WEFT_API, the version, weft_fn, weft_loop, weft_task */
#include "weft/errors.h"   /* error codes, weft_fail, weft_errmsg, error groups */
#include "weft/loop.h"     /* weft_run, weft_options, weft_time */
#include "weft/task.h"     /* spawn, await, detach, cancel, names, sleep */
#include "weft/callback.h" /* call_soon, call_later, call_at, call_soon_threadsafe */
#include "weft/notify.h"   /* notifiers: waking a loop from a signal handler; what is signal-safe */
#include "weft/fd.h"       /* waiting on descriptors: fd_wait, add_reader, add_writer */
#include "weft/future.h"   /* futures */
#include "weft/combine.h"  /* gather, wait, as_completed, shield */
#include "weft/group.h"    /* TaskGroup */
#include "weft/timeout.h"  /* timeout scopes, wait_for */
#include "weft/sync.h"     /* Lock, Event, Condition, Semaphore, Barrier */
#include "weft/queue.h"    /* Queue, LifoQueue, PriorityQueue */
#include "weft/chan.h"     /* channels and select */
#include "weft/exec.h"     /* thread pools, run_in_loop, process pools */
#include "weft/net.h"      /* getaddrinfo, streams, servers */
#include "weft/udp.h"      /* UDP datagram endpoints */
#include "weft/tls.h"      /* TLS contexts, TLS streams, start_tls */
#include "weft/file.h"     /* files off the loop: open, read, write, fsync, stat, whole files */
#include "weft/process.h"  /* subprocesses: create_subprocess_exec/_shell, wait, communicate */
#include "weft/signal.h"   /* signal handlers on the loop, weft_signal_wait, Ctrl-C */
#include "weft/debug.h"    /* seeing inside the loop: weft_dump, weft_get_loop_metrics */

#endif /* WEFT_H */
