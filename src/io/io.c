/*
 * io.c — the generic half of the I/O layer: watchers' interest changes queued and
 * applied before each poll, and the dispatch of what the backend reports (the
 * contract is in io.h). The kernel half is the backend (poll_epoll.c).
 */
#include "io/io.h"

#include <errno.h>

int weft__io_init(weft__io *io)
{
    *io = (weft__io){0};
    return weft__poller_init(io);
}

void weft__io_term(weft__io *io)
{
    if (io->backend)
        weft__poller_term(io);
    io->backend = NULL;
}

void weft__watcher_init(weft__watcher *w, int fd, weft__watcher_fn cb)
{
    *w = (weft__watcher){.fd = fd, .cb = cb};
}

static void unqueue(weft__io *io, weft__watcher *w)
{
    if (w->queued) {
        weft__dlist_unlink(&io->changes, &w->change);
        w->queued = 0;
    }
}

int weft__watcher_want(weft__io *io, weft__watcher *w, unsigned events)
{
    uint8_t want = (uint8_t)(events & (WEFT__POLL_IN | WEFT__POLL_OUT));
    /* Wanting and not registered: a change refused at a poll (apply_changes), the
     * kernel's registration unknown. Asking again registers anew below, or the
     * owner, told POLL_ERR, would wait for events nobody asked the kernel for. */
    if (want == w->want && (w->registered || !want))
        return 0;
    if (w->want == 0)
        io->active++;
    else if (want == 0)
        io->active--;
    w->want = want;
    if (want && !w->registered) {
        /* New to the kernel: register now, so a refusal is the caller's error. */
        unqueue(io, w);
        int rc = weft__poller_apply(io, w);
        if (rc != 0) {
            w->want = 0;
            io->active--;
        }
        return rc;
    }
    if (!w->queued && want != w->registered) {
        weft__dlist_push_back(&io->changes, &w->change);
        w->queued = 1;
    }
    return 0;
}

void weft__watcher_forget(weft__io *io, weft__watcher *w)
{
    unqueue(io, w);
    if (w->want)
        io->active--;
    w->want = 0;
    if (w->registered)
        weft__poller_apply(io, w); /* an error means the kernel has already forgotten it */
    w->registered = 0;
    for (int i = 0; i < io->ndispatching; i++)
        if (io->dispatching[i].w == w)
            io->dispatching[i].w = NULL;
}

/* Tells the kernel every interest that changed since the last poll. A change the
 * kernel refuses (the owner closed the descriptor without forgetting it, or the
 * kernel is out of memory) is reported to the watcher as an error at this poll
 * rather than lost; the watcher is left unregistered, so that its owner's next
 * weft__watcher_want registers it again, even for the same events. */
static int apply_changes(weft__io *io, weft__io_event *failed, int max)
{
    int nfailed = 0;
    weft__dlink *link;
    while ((link = weft__dlist_pop_front(&io->changes)) != NULL) {
        weft__watcher *w = WEFT__CONTAINER_OF(link, weft__watcher, change);
        w->queued = 0;
        if (w->want == w->registered)
            continue;
        if (weft__poller_apply(io, w) != 0) {
            w->registered = 0;
            if (w->want && nfailed < max)
                failed[nfailed++] = (weft__io_event){w, WEFT__POLL_ERR};
        }
    }
    return nfailed;
}

int weft__io_poll(weft__io *io, int64_t timeout_ns)
{
    weft__io_event ev[WEFT__IO_BATCH];
    int n = apply_changes(io, ev, WEFT__IO_BATCH / 2);
    int got = weft__poller_wait(io, n ? 0 : timeout_ns, ev + n, WEFT__IO_BATCH - n);
    if (got < 0)
        return got == -EINTR ? 0 : got;
    n += got;
    io->dispatching = ev;
    io->ndispatching = n;
    int dispatched = 0;
    for (int i = 0; i < n; i++) {
        weft__watcher *w = ev[i].w;
        if (!w)
            continue; /* forgotten by an earlier callback of this batch */
        unsigned events = ev[i].events & (w->want | WEFT__POLL_ERR);
        if (!events || !w->want)
            continue; /* nobody wants it any more; the change queued says so to the kernel */
        dispatched++;
        w->cb(w, events);
    }
    io->dispatching = NULL;
    io->ndispatching = 0;
    return dispatched;
}

void weft__io_wake(weft__io *io)
{
    weft__poller_wake(io);
}
