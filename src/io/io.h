/*
 * io.h — the I/O layer: watchers and the poller backend behind them. It knows
 * descriptors and callbacks, nothing of loops or tasks, and may use only util/.
 * The core's loop owns one weft__io and calls weft__io_poll once per iteration
 * that needs it; tasks wait on descriptors through core/fdwait.c, built on this.
 *
 * The watcher contract:
 *   - A watcher is a descriptor, the events wanted and a callback, embedded in
 *     whatever owns it (a task-waitable descriptor, a socket, a process pool
 *     worker). weft__io never allocates one.
 *   - weft__watcher_want changes the interest. A descriptor the kernel does not
 *     know yet is registered at once, so that a descriptor the poller refuses
 *     (a regular file, a closed one) is an error of the call that asked; every
 *     other change is queued and applied just before the next poll. A watcher
 *     that stops wanting and starts again before then costs no system call: a
 *     task that reads, waits, is woken and waits again keeps one registration.
 *   - Registrations persist until the interest drops to nothing at a poll, or
 *     until weft__watcher_forget. A queued change the kernel refuses at the poll
 *     is the watcher's POLL_ERR, and leaves it unregistered: the owner's next
 *     weft__watcher_want, even for the same events, registers it again, and a
 *     refusal then is that call's error.
 *   - The owner calls weft__watcher_forget before it closes the descriptor (and
 *     before it frees the watcher): the kernel registration goes at once, a queued
 *     change is dropped, and an event already fetched for it is not delivered.
 *     Closing first would leave the kernel registration to a descriptor number the
 *     next open may reuse.
 *   - The callback runs from weft__io_poll, on the loop's own stack, with the
 *     events that happened among those wanted (WEFT__POLL_ERR when the descriptor
 *     failed or hung up, whatever was wanted). It may change any watcher's
 *     interest and forget any watcher, itself included.
 *
 * The backend contract (poll_epoll.c; an io_uring file later, chosen by
 * cmake/poller.cmake): weft__poller_init / _term, weft__poller_apply (one queued
 * interest change), weft__poller_forget, weft__poller_wait (wait and collect
 * ready watchers), weft__poller_wake (async-signal-safe, from any thread). The
 * wake-up descriptor is the backend's own. The generic part (io.c) keeps the
 * queue of changes and dispatches.
 */
#ifndef WEFT__SRC_IO_H
#define WEFT__SRC_IO_H

#include "util/dlist.h"
#include "util/util.h"

#include <stdint.h>

enum { WEFT__POLL_IN = 1, WEFT__POLL_OUT = 2, WEFT__POLL_ERR = 4 };

typedef struct weft__watcher weft__watcher;
/* Told that events (among those wanted, or WEFT__POLL_ERR) happened on w's descriptor. */
typedef void (*weft__watcher_fn)(weft__watcher *w, unsigned events);

struct weft__watcher {
    int fd;
    uint8_t want;                /* events wanted now */
    uint8_t registered;          /* events the kernel was last told; 0 = not registered */
    uint8_t queued;              /* its change is on weft__io.changes */
    uint8_t spare;
    weft__watcher_fn cb;
    weft__dlink change;          /* on weft__io.changes while queued */
};

/* One event fetched by the backend, waiting to be dispatched. */
typedef struct weft__io_event {
    weft__watcher *w;            /* NULL once the watcher was forgotten */
    uint32_t events;
} weft__io_event;

#define WEFT__IO_BATCH 64

typedef struct weft__io {
    struct weft__poller *backend;
    weft__dlist changes;         /* watchers whose interest changed since the last poll */
    size_t active;               /* watchers wanting events: the loop must poll while > 0 */
    weft__io_event *dispatching; /* the batch being dispatched, for forget */
    int ndispatching;
} weft__io;

/* Creates the backend and its wake-up. Returns 0 or a negative errno. */
int weft__io_init(weft__io *io);
/* Forgets the backend; every watcher must have been forgotten. */
void weft__io_term(weft__io *io);

void weft__watcher_init(weft__watcher *w, int fd, weft__watcher_fn cb);
/* Sets the events w wants (0 = none). Returns 0, or the backend's negative errno
 * when it refuses a descriptor it did not know (w then wants nothing). */
int weft__watcher_want(weft__io *io, weft__watcher *w, unsigned events);
/* Before the owner closes the descriptor or frees w. Never fails. */
void weft__watcher_forget(weft__io *io, weft__watcher *w);

/* Applies the queued changes, waits up to timeout_ns (-1 = until woken, 0 = not at
 * all) and calls the callback of each ready watcher. Returns the number of events
 * dispatched, or a negative errno from the backend (EINTR counts as 0). */
int weft__io_poll(weft__io *io, int64_t timeout_ns);
/* From any thread or a signal handler: makes a poll in progress (or the next) return. */
void weft__io_wake(weft__io *io);

/* ---- the backend's functions (one file implements them) ---- */
int weft__poller_init(weft__io *io);
void weft__poller_term(weft__io *io);
/* Tells the kernel w's new interest (w->want; 0 = remove). Returns 0 or a negative errno;
 * on success w->registered == w->want. */
int weft__poller_apply(weft__io *io, weft__watcher *w);
/* Fills out[] with up to max ready watchers; returns how many, or a negative errno. */
int weft__poller_wait(weft__io *io, int64_t timeout_ns, weft__io_event *out, int max);
void weft__poller_wake(weft__io *io);

#endif
