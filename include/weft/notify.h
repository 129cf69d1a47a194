/*
 * weft/notify.h — notifiers: waking a loop from a signal handler or any thread
 * (libuv's uv_async_t), and which weft calls a signal handler may make.
 *
 * Async-signal-safety. Exactly one weft call is async-signal-safe: weft_notify.
 * It uses only atomic operations and one write(2) to the loop's wake-up descriptor
 * (an eventfd): no lock, no allocation, errno left as it was. Every other weft
 * call may take a lock or allocate memory, so a signal handler that interrupted
 * its own thread inside one of them could wait forever for a lock the interrupted
 * code holds, or corrupt malloc's state. In particular weft_call_soon_threadsafe
 * is not async-signal-safe: it takes the loop's lock and may grow its queue with
 * realloc. When a signal handler calls it while the same thread is inside it,
 * weft detects the relocked lock and returns -EDEADLK instead of hanging, but
 * that is a diagnosis, not a guarantee: use a notifier from signal handlers.
 *
 * To handle a signal on the loop, weft_add_signal_handler and weft_signal_wait
 * (weft/signal.h) do all of this for you; a notifier is for a handler of your own.
 * The pattern: make a notifier on the loop (its callback sets a weft_event, posts
 * to a queue, ...), install the signal handler, and have the handler call
 * weft_notify; the callback then runs on the loop, where every weft call is
 * allowed. Several notifies before the loop gets to the callback make one call;
 * a notify after the callback started makes another. Signals are not counted:
 * the callback looks at whatever state the handler left (a sig_atomic_t flag, an
 * atomic counter).
 *
 * Part of weft's public header: include <weft.h>, not this file.
 */
#ifndef WEFT_NOTIFY_H
#define WEFT_NOTIFY_H

#include "base.h"
#include "callback.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A notifier: a handle, safe to keep after the notifier is freed or its loop has
 * ended (weft_notify then returns -ESHUTDOWN), but never to free twice. */
typedef struct weft_notifier weft_notifier;

/*
 * weft_notifier_new — make a notifier on the current loop: after each weft_notify
 * (or several, coalesced) the loop calls cb(arg), outside any task, from the
 * iteration after the notify (a callback: it must not suspend, but may spawn
 * tasks, set events and futures, schedule callbacks, free notifiers). From a task
 * or a callback of a running loop. While a notifier lives, a loop whose tasks all
 * wait waits for it instead of reporting a deadlock (it counts as something
 * outside that may wake the loop), until main returns: leftover tasks that ignore
 * their cancellation are then reported, not waited for. Notifiers still alive when
 * weft_run ends are freed by it, their pending calls dropped.
 * Returns: the notifier; NULL on an error (weft_errmsg() says which).
 * Suspends: never.
 * Errors (NULL): -ENOMEM; -EINVAL for a NULL cb; WEFT_ENOTINLOOP outside a loop.
 */
WEFT_API weft_notifier *weft_notifier_new(weft_callback_fn cb, void *arg);

/*
 * weft_notify — ask the notifier's loop to call its callback. From any thread, a
 * signal handler or the loop itself: async-signal-safe (atomic operations and at
 * most one write(2); errno is preserved). Wakes the loop if it waits. A notify
 * that comes before the loop has called the callback for an earlier one is merged
 * with it; one that comes once the callback has started causes another call. A
 * stale handle is safe: its record is never given back to the system, and
 * another generation of it is told apart by the handle.
 * Returns: 0 (the callback will run).
 * Suspends: never (never blocks).
 * Errors: -ESHUTDOWN once the notifier was freed or its loop has ended; -EINVAL
 *   for NULL. No weft_errmsg() message is set (that would allocate).
 */
WEFT_API int weft_notify(weft_notifier *n);

/*
 * weft_notifier_free — free a notifier: its callback will not run again, even for
 * a notify already made, and its handle then gives -ESHUTDOWN to weft_notify.
 * From a task or a callback of its loop, including its own callback. Waits, without
 * suspending, for a weft_notify running on another thread at that moment to finish
 * (a few instructions), so that none is left reading it.
 * Returns: 0.
 * Suspends: never.
 * Errors: -ESTALE if it was already freed (by weft_notifier_free or by its loop's
 *   end); WEFT_ESTATE if it belongs to another thread's loop; WEFT_ENOTINLOOP
 *   outside a loop; -EINVAL for NULL.
 */
WEFT_API int weft_notifier_free(weft_notifier *n);

#ifdef __cplusplus
}
#endif

#endif /* WEFT_NOTIFY_H */
