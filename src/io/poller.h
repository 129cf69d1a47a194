/*
 * poller.h — the interface every poller backend implements (poll_epoll.c now;
 * io_uring later as one more file, chosen by cmake/poller.cmake). It may use only
 * util/.
 */
#ifndef WEFT_POLLER_H
#define WEFT_POLLER_H

#include "util/util.h"

/* ------------------------------------------------------------------------ */
/* The poller backend (poll_epoll.c)                                        */
/* ------------------------------------------------------------------------ */

typedef struct weft__poller {
    int fd;
} weft__poller;

typedef struct weft__poll_event {
    void *data;
    uint32_t events;
} weft__poll_event;

enum { WEFT__POLL_IN = 1, WEFT__POLL_OUT = 2, WEFT__POLL_ERR = 4 };

int weft__poll_init(weft__poller *p);
void weft__poll_close(weft__poller *p);
int weft__poll_add(weft__poller *p, int fd, uint32_t events, void *data);
/* As weft__poll_add, reporting one event and then disabled until removed. */
int weft__poll_add_oneshot(weft__poller *p, int fd, uint32_t events, void *data);
int weft__poll_del(weft__poller *p, int fd);
/* Waits up to timeout_ns (-1 = forever, 0 = not at all); returns the number of
 * events written to out (≤ max), or a negative errno. EINTR returns 0. */
int weft__poll_wait(weft__poller *p, int64_t timeout_ns, weft__poll_event *out, int max);

#endif
