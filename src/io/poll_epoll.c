/*
 * poll_epoll.c — the Linux poller backend: the functions of the backend contract
 * (io.h) on epoll, with an eventfd as the wake-up. Registrations are
 * level-triggered and persistent: a descriptor is added once, modified when its
 * interest changes, and deleted when nobody wants it or it is forgotten.
 * Another backend (io_uring) is another file with the same functions.
 */
#include "io/io.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

struct weft__poller {
    int epfd;
    int wake_fd;                 /* an eventfd; its registration's data is NULL */
};

int weft__poller_init(weft__io *io)
{
    struct weft__poller *p = malloc(sizeof *p);
    if (!p)
        return -ENOMEM;
    p->epfd = epoll_create1(EPOLL_CLOEXEC);
    p->wake_fd = p->epfd < 0 ? -1 : eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    int rc = 0;
    if (p->epfd < 0 || p->wake_fd < 0) {
        rc = -errno;
    } else {
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
        if (epoll_ctl(p->epfd, EPOLL_CTL_ADD, p->wake_fd, &ev) < 0)
            rc = -errno;
    }
    if (rc != 0) {
        if (p->wake_fd >= 0)
            close(p->wake_fd);
        if (p->epfd >= 0)
            close(p->epfd);
        free(p);
        return rc;
    }
    io->backend = p;
    return 0;
}

void weft__poller_term(weft__io *io)
{
    struct weft__poller *p = io->backend;
    close(p->wake_fd);
    close(p->epfd);
    free(p);
}

static uint32_t to_epoll(unsigned events)
{
    return ((events & WEFT__POLL_IN) ? EPOLLIN : 0) | ((events & WEFT__POLL_OUT) ? EPOLLOUT : 0);
}

int weft__poller_apply(weft__io *io, weft__watcher *w)
{
    struct weft__poller *p = io->backend;
    struct epoll_event ev = {.events = to_epoll(w->want), .data.ptr = w};
    int op = !w->want ? EPOLL_CTL_DEL : w->registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    int rc = epoll_ctl(p->epfd, op, w->fd, &ev);
    if (rc < 0 && op == EPOLL_CTL_MOD && errno == ENOENT) {
        op = EPOLL_CTL_ADD; /* the kernel dropped it: the descriptor was closed and reopened */
        rc = epoll_ctl(p->epfd, op, w->fd, &ev);
    } else if (rc < 0 && op == EPOLL_CTL_ADD && errno == EEXIST) {
        op = EPOLL_CTL_MOD;
        rc = epoll_ctl(p->epfd, op, w->fd, &ev);
    }
    if (rc < 0)
        return -errno;
    w->registered = w->want;
    return 0;
}

int weft__poller_wait(weft__io *io, int64_t timeout_ns, weft__io_event *out, int max)
{
    struct weft__poller *p = io->backend;
    struct epoll_event evs[WEFT__IO_BATCH];
    if (max > WEFT__IO_BATCH)
        max = WEFT__IO_BATCH;
    int ms;
    if (timeout_ns < 0)
        ms = -1;
    else if (timeout_ns == 0)
        ms = 0;
    else {
        /* Round up: waking a little late is harmless, waking early costs a
         * pointless extra iteration (epoll's resolution is 1 ms). */
        int64_t m = (timeout_ns + 999999) / 1000000;
        ms = m > 86400000 ? 86400000 : (int)m;
    }
    int n = epoll_wait(p->epfd, evs, max, ms);
    if (n < 0)
        return -errno;
    int got = 0;
    for (int i = 0; i < n; i++) {
        uint32_t e = evs[i].events;
        if (!evs[i].data.ptr) {
            uint64_t v;
            ssize_t r = read(p->wake_fd, &v, sizeof v);
            (void)r; /* EAGAIN: another read took it; the wake-up did its job */
            continue;
        }
        out[got].w = evs[i].data.ptr;
        out[got].events = ((e & EPOLLIN) ? WEFT__POLL_IN : 0) | ((e & EPOLLOUT) ? WEFT__POLL_OUT : 0) |
                          ((e & (EPOLLERR | EPOLLHUP)) ? WEFT__POLL_ERR : 0);
        got++;
    }
    return got;
}

void weft__poller_wake(weft__io *io)
{
    struct weft__poller *p = io->backend;
    uint64_t one = 1;
    ssize_t w = write(p->wake_fd, &one, sizeof one); /* write(2) is async-signal-safe */
    (void)w; /* EAGAIN: the counter is already nonzero, the loop will wake */
}
