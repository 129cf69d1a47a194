/*
 * poll_epoll.c — the Linux I/O poller backend: the five calls of the poller
 * interface (io/poller.h) on epoll. Another backend (io_uring, kqueue) is another
 * file with the same five functions, chosen by the build.
 */
#include "io/poller.h"

#include <errno.h>
#include <sys/epoll.h>
#include <unistd.h>

int weft__poll_init(weft__poller *p)
{
    p->fd = epoll_create1(EPOLL_CLOEXEC);
    return p->fd < 0 ? -errno : 0;
}

void weft__poll_close(weft__poller *p)
{
    if (p->fd >= 0)
        close(p->fd);
    p->fd = -1;
}

static uint32_t to_epoll(uint32_t events)
{
    return ((events & WEFT__POLL_IN) ? EPOLLIN : 0) | ((events & WEFT__POLL_OUT) ? EPOLLOUT : 0);
}

int weft__poll_add(weft__poller *p, int fd, uint32_t events, void *data)
{
    struct epoll_event ev = {.events = to_epoll(events), .data.ptr = data};
    return epoll_ctl(p->fd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

int weft__poll_add_oneshot(weft__poller *p, int fd, uint32_t events, void *data)
{
    struct epoll_event ev = {.events = to_epoll(events) | EPOLLONESHOT, .data.ptr = data};
    return epoll_ctl(p->fd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

int weft__poll_del(weft__poller *p, int fd)
{
    struct epoll_event ev = {0};
    return epoll_ctl(p->fd, EPOLL_CTL_DEL, fd, &ev) < 0 ? -errno : 0;
}

int weft__poll_wait(weft__poller *p, int64_t timeout_ns, weft__poll_event *out, int max)
{
    struct epoll_event evs[64];
    if (max > 64)
        max = 64;
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
    int n = epoll_wait(p->fd, evs, max, ms);
    if (n < 0)
        return errno == EINTR ? 0 : -errno;
    for (int i = 0; i < n; i++) {
        uint32_t e = evs[i].events;
        out[i].data = evs[i].data.ptr;
        out[i].events = ((e & EPOLLIN) ? WEFT__POLL_IN : 0) | ((e & EPOLLOUT) ? WEFT__POLL_OUT : 0) |
                        ((e & (EPOLLERR | EPOLLHUP)) ? WEFT__POLL_ERR : 0);
    }
    return n;
}
