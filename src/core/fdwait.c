/*
 * io.c — a task waiting for a file descriptor to become readable or writable: the
 * primitive under the process pool today, and sockets and pipes later.
 *
 * Each wait registers the descriptor with the poller for one event (one-shot), with
 * the waiting task as its data, and removes it again when the task wakes or leaves.
 * Two syscalls a wait: simple and always consistent with the kernel; a
 * persistent registration can replace it when sockets need the speed.
 */
#include "core/core.h"

#include <string.h>

/* Marks a task as waiting for a descriptor (weft__io_ready checks it); the
 * registration itself is always undone by the waiter when it resumes, whatever
 * woke it, so there is nothing to undo here. */
static void fd_unwait(weft_task *self, int reason)
{
    (void)self;
    (void)reason;
}

int weft__wait_fd(int fd, uint32_t events)
{
    weft_loop *L = weft__loop;
    weft_task *self = weft__current();
    if (!self)
        return WEFT_ENOTINLOOP;
    if (self->cancelling)
        return -ECANCELED;
    int rc = weft__poll_add_oneshot(&L->poller, fd, events, self);
    if (rc != 0)
        return rc;
    L->io_watchers++;
    rc = weft__wait(fd_unwait, NULL);
    weft__poll_del(&L->poller, fd);
    L->io_watchers--;
    return rc;
}

void weft__io_ready(weft_loop *L, void *data, uint32_t events)
{
    (void)L;
    weft_task *t = data;
    if (WEFT__STATE(t) != WEFT__WAITING || t->unwait != fd_unwait)
        return; /* it left (cancelled) after the kernel reported the event */
    t->unwait = NULL;
    weft__wake(t, (int)(events ? events : WEFT__POLL_ERR));
}
