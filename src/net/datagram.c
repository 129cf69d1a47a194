/*
 * datagram.c — UDP endpoints (loop.create_datagram_endpoint, straight-line):
 * opening one (resolve, bind, connect), sending and receiving datagrams with the
 * task suspended only while the socket cannot, closing; and the network's loop
 * module, which closes and reports the endpoints a loop leaves open and frees the
 * layer's per-loop state.
 *
 * Each endpoint's record embeds the core's weft__fd (a watcher with one waiting
 * task per direction), so a receive that finds a datagram waiting costs one system
 * call and no poll. Records stay with their loop once closed, on a free list, so a
 * handle used after close still points at an endpoint record: its tag (the record's
 * generation, as task handles carry their id) no longer matches, and the call
 * says -ESTALE instead of touching another endpoint.
 */
#include "net/net.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The wake reason of a task whose endpoint was closed while it waited (fdwait.c). */
#define FD_FORGOTTEN (-EBADFD)

typedef struct weft__dgram {
    weft__net_obj obj;            /* generation and kind: the handle's tag (net.h) */
    weft__fd f;                   /* f.w.fd is the socket */
    weft__dlink link;             /* on net->datagrams while open */
    struct weft__dgram *next_free;
    uint8_t connected;
    socklen_t peerlen;
    struct sockaddr_storage peer; /* a connected endpoint's peer */
    char name[80];                /* its local address when opened, for reports */
} weft__dgram;

/* ------------------------------------------------------------------------ */
/* The loop's network module                                                */
/* ------------------------------------------------------------------------ */

static void dgram_shut(weft_loop *L, weft__dgram *d)
{
    int fd = d->f.w.fd;
    weft__fd_forget(L, &d->f); /* wakes a receiver and a sender with FD_FORGOTTEN */
    close(fd);
    weft__net_retire(&d->obj);
}

/* The loop ends (net.c): endpoints still open were forgotten by their program. */
void weft__datagrams_term(weft_loop *L, weft__net_loop *net)
{
    for (weft__dlink *l; (l = weft__dlist_pop_front(&net->datagrams));) {
        weft__dgram *d = WEFT__CONTAINER_OF(l, weft__dgram, link);
        weft__report("weft: a datagram endpoint on %s was never closed; weft closes it as its loop ends (close it "
                     "with weft_datagram_close)",
                     d->name);
        dgram_shut(L, d);
        free(d);
    }
    for (weft__dgram *d = net->free_dgrams, *next; d; d = next) {
        next = d->next_free;
        free(d);
    }
}


/* ------------------------------------------------------------------------ */
/* Handles                                                                  */
/* ------------------------------------------------------------------------ */

static weft_datagram *handle_of(weft_loop *L, weft__dgram *d)
{
    return weft__net_handle(L, &d->obj);
}

/* The open endpoint h names on the caller's loop, or NULL with *rc set (and the
 * message) saying why not (net.c: the record is read only once the loop matches). */
static weft__dgram *dgram_from(weft_datagram *h, const char *what, int *rc)
{
    return weft__net_from(h, WEFT__NET_DATAGRAM, what, rc);
}

/* ------------------------------------------------------------------------ */
/* Opening                                                                  */
/* ------------------------------------------------------------------------ */

static int family_check(int family)
{
    return family == AF_UNSPEC || family == AF_INET || family == AF_INET6;
}

/* One socket bound to local (may be NULL) and connected to remote (may be NULL).
 * Returns the descriptor or a negative error, with *why saying which step failed. */
static int try_pair(const weft_datagram_options *o, int family, const struct addrinfo *local,
                    const struct addrinfo *remote, char *why, size_t whylen)
{
    int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_UDP);
    if (fd < 0) {
        int err = -errno;
        snprintf(why, whylen, "socket: %s", weft_strerror(err));
        return err;
    }
    int one = 1;
    if (o->reuse_port && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
        int err = -errno;
        snprintf(why, whylen, "SO_REUSEPORT: %s", weft_strerror(err));
        close(fd);
        return err;
    }
    if (o->allow_broadcast && setsockopt(fd, SOL_SOCKET, SO_BROADCAST, &one, sizeof one) != 0) {
        int err = -errno;
        snprintf(why, whylen, "SO_BROADCAST: %s", weft_strerror(err));
        close(fd);
        return err;
    }
    char addr[80];
    if (local && bind(fd, local->ai_addr, local->ai_addrlen) != 0) {
        int err = -errno;
        snprintf(why, whylen, "bind to %s: %s", weft__format_ai(local, addr, sizeof addr), weft_strerror(err));
        close(fd);
        return err;
    }
    if (remote && connect(fd, remote->ai_addr, remote->ai_addrlen) != 0) {
        int err = -errno;
        snprintf(why, whylen, "connect to %s: %s", weft__format_ai(remote, addr, sizeof addr),
                 weft_strerror(err));
        close(fd);
        return err;
    }
    return fd;
}

/* Tries one pair; on failure adds its reason to msg ("; " between). Returns the
 * descriptor or the negative error. */
static int try_one(const weft_datagram_options *o, int family, const struct addrinfo *local,
                   const struct addrinfo *remote, char *msg, size_t size)
{
    char why[200];
    int fd = try_pair(o, family, local, remote, why, sizeof why);
    if (fd < 0) {
        size_t used = strlen(msg);
        if (used < size)
            snprintf(msg + used, size - used, "%s%s", used ? "; " : "", why);
    }
    return fd;
}

/* Tries each remote address (with each local address of its family), or each
 * local address, or the family alone, in order. Returns the first descriptor
 * that binds and connects, or the last error with every failure in msg. */
static int open_socket(const weft_datagram_options *o, const struct addrinfo *locals,
                       const struct addrinfo *remotes, char *msg, size_t size)
{
    int fd = -EAFNOSUPPORT;
    if (remotes) {
        bool paired = false;
        for (const struct addrinfo *r = remotes; r; r = r->ai_next) {
            if (!locals) {
                if ((fd = try_one(o, r->ai_family, NULL, r, msg, size)) >= 0)
                    return fd;
                continue;
            }
            for (const struct addrinfo *l = locals; l; l = l->ai_next) {
                if (l->ai_family != r->ai_family)
                    continue;
                paired = true;
                if ((fd = try_one(o, r->ai_family, l, r, msg, size)) >= 0)
                    return fd;
            }
        }
        if (locals && !paired) {
            snprintf(msg, size, "no local address has the family of a remote address");
            return -EAFNOSUPPORT;
        }
        return fd;
    }
    if (locals) {
        for (const struct addrinfo *l = locals; l; l = l->ai_next)
            if ((fd = try_one(o, l->ai_family, l, NULL, msg, size)) >= 0)
                return fd;
        return fd;
    }
    return try_one(o, o->family, NULL, NULL, msg, size);
}

weft_datagram *weft_datagram_open(const weft_datagram_options *o)
{
    weft_task *self = weft__current();
    weft_loop *L = weft__loop;
    if (!self) {
        weft__set_errmsg(WEFT_ENOTINLOOP, "weft_datagram_open must be called from a task of a running weft loop");
        return NULL;
    }
    static const weft_datagram_options none = {0};
    if (!o)
        o = &none;
    int bad = 0;
    if (!family_check(o->family))
        bad = weft__set_errmsg(-EINVAL, "weft_datagram_open: family %d is not AF_UNSPEC, AF_INET or AF_INET6",
                               o->family);
    else if (o->local_port < 0 || o->local_port > 65535 || o->remote_port < 0 || o->remote_port > 65535)
        bad = weft__set_errmsg(-EINVAL, "weft_datagram_open: a port is outside 0..65535 (local %d, remote %d)",
                               o->local_port, o->remote_port);
    else if (o->remote_host && o->remote_port == 0)
        bad = weft__set_errmsg(-EINVAL, "weft_datagram_open: remote_host \"%s\" without remote_port",
                               o->remote_host);
    else if (!o->local_host && !o->local_port && !o->remote_host && o->family == AF_UNSPEC)
        bad = weft__set_errmsg(-EINVAL, "weft_datagram_open: no local address, no remote address and no family: "
                                        "say at least which family (AF_INET or AF_INET6)");
    if (bad)
        return NULL;

    struct addrinfo *locals = NULL, *remotes = NULL;
    struct addrinfo hints = {.ai_family = o->family, .ai_socktype = SOCK_DGRAM, .ai_protocol = IPPROTO_UDP};
    int rc = 0;
    if (o->remote_host)
        rc = weft_getaddrinfo(o->remote_host, o->remote_port, &hints, &remotes);
    if (rc == 0 && (o->local_host || o->local_port)) {
        struct addrinfo lh = hints;
        lh.ai_flags = AI_PASSIVE;
        rc = weft_getaddrinfo(o->local_host, o->local_port, &lh, &locals);
    }
    if (rc == 0 && !remotes && !locals)
        rc = weft_yield(); /* nothing to resolve: suspend once all the same */
    if (rc != 0) {
        if (rc == -ECANCELED)
            weft__cancelled_errmsg(self);
        if (remotes)
            freeaddrinfo(remotes);
        return NULL; /* the message is set */
    }

    char msg[1024] = "";
    int fd = open_socket(o, locals, remotes, msg, sizeof msg);
    weft__net_loop *net = fd >= 0 ? weft__net_state(L) : NULL;
    weft__dgram *d = NULL;
    if (net && (d = net->free_dgrams) != NULL)
        net->free_dgrams = d->next_free;
    else if (net)
        d = calloc(1, sizeof *d);
    if (fd >= 0 && !d) {
        close(fd);
        fd = -ENOMEM;
        snprintf(msg, sizeof msg, "out of memory for the endpoint");
    }
    if (fd < 0) {
        weft__set_errmsg(fd, "weft_datagram_open (local %s:%d, remote %s:%d): %s",
                         o->local_host ? o->local_host : "*", o->local_port, o->remote_host ? o->remote_host : "-",
                         o->remote_port, msg);
    } else {
        uint16_t gen = d->obj.gen;
        memset(d, 0, sizeof *d);
        d->obj.gen = gen ? gen : 1;
        d->obj.kind = WEFT__NET_DATAGRAM;
        weft__fd_init(&d->f, fd);
        d->peerlen = sizeof d->peer;
        if (remotes && getpeername(fd, (struct sockaddr *)&d->peer, &d->peerlen) == 0)
            d->connected = 1;
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
            weft_format_address((struct sockaddr *)&ss, len, d->name, sizeof d->name);
        weft__dlist_push_back(&net->datagrams, &d->link);
    }
    if (remotes)
        freeaddrinfo(remotes);
    if (locals)
        freeaddrinfo(locals);
    return fd >= 0 ? handle_of(L, d) : NULL;
}

/* ------------------------------------------------------------------------ */
/* Sending and receiving                                                    */
/* ------------------------------------------------------------------------ */

/* Waits until d's socket is ready for `events`. Returns 0 or the error to give. */
static int dgram_wait(weft__dgram *d, unsigned events, const char *what)
{
    weft_loop *L = weft__loop;
    weft_task *self = weft__current();
    int fd = d->f.w.fd;
    int rc = weft__fd_wait(L, &d->f, events);
    if (rc > 0)
        return 0;
    if (rc == -ECANCELED)
        return weft__cancelled_errmsg(self);
    if (rc == -EBUSY) {
        weft_task *other = events == WEFT__POLL_IN ? d->f.reader : d->f.writer;
        return weft__set_errmsg(-EBUSY, "%s: task %s is already waiting to %s on this endpoint (one waiting task "
                                        "per direction)", what, other ? weft_task_name(other) : "?",
                                events == WEFT__POLL_IN ? "receive" : "send");
    }
    if (rc == FD_FORGOTTEN) /* d may be reused already: do not touch it */
        return weft__set_errmsg(WEFT_ECLOSED, "%s: the endpoint (socket %d) was closed while %s waited", what, fd,
                                weft_task_name(self));
    return weft__set_errmsg(rc, "%s: cannot watch socket %d: %s", what, fd, weft_strerror(rc));
}

/* The error of a failed sendto or recvfrom on d, with its message. */
static int io_error(weft__dgram *d, int err, const char *what)
{
    char peer[80];
    if (err == -ECONNREFUSED && d->connected)
        return weft__set_errmsg(err, "%s: %s refused a datagram: nothing listens on its port (ICMP port "
                                     "unreachable); the endpoint stays usable",
                                what, weft_format_address((struct sockaddr *)&d->peer, d->peerlen, peer, sizeof peer));
    return weft__set_errmsg(err, "%s on %s: %s", what, d->name, weft_strerror(err));
}

static bool same_address(const struct sockaddr *a, socklen_t alen, const struct sockaddr_storage *b, socklen_t blen)
{
    if (a->sa_family != b->ss_family)
        return false;
    if (a->sa_family == AF_INET && alen >= (socklen_t)sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    if (a->sa_family == AF_INET6 && alen >= (socklen_t)sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
        return x->sin6_port == y->sin6_port && memcmp(&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr) == 0;
    }
    return alen == blen && memcmp(a, b, alen) == 0;
}

ssize_t weft_datagram_sendto(weft_datagram *h, const void *buf, size_t n, const struct sockaddr *addr,
                             socklen_t addrlen)
{
    static const char what[] = "weft_datagram_sendto";
    int rc;
    weft__dgram *d = dgram_from(h, what, &rc);
    if (!d)
        return rc;
    weft_task *self = weft__current();
    if (!self)
        return weft__set_errmsg(WEFT_ENOTINLOOP, "%s must be called from a task (a callback cannot wait)", what);
    if (!buf && n > 0)
        return weft__set_errmsg(-EINVAL, "%s: buf is NULL", what);
    if (self->cancelling)
        return weft__cancelled_errmsg(self);
    char peer[80], other[80];
    if (addr && d->connected) {
        if (!same_address(addr, addrlen, &d->peer, d->peerlen))
            return weft__set_errmsg(-EISCONN, "%s: the endpoint is connected to %s; it cannot send to %s (pass "
                                              "NULL, or open an endpoint without a remote address)", what,
                                    weft_format_address((struct sockaddr *)&d->peer, d->peerlen, peer, sizeof peer),
                                    weft_format_address(addr, addrlen, other, sizeof other));
        addr = NULL; /* send() on a connected socket */
        addrlen = 0;
    }
    if (!addr && !d->connected)
        return weft__set_errmsg(-EDESTADDRREQ, "%s: the endpoint is not connected: give the address to send to",
                                what);
    for (;;) {
        ssize_t sent = sendto(d->f.w.fd, buf, n, MSG_NOSIGNAL, addr, addrlen);
        if (sent >= 0)
            return sent;
        int err = -errno;
        if (err == -EINTR)
            continue;
        if (err != -EAGAIN && err != -EWOULDBLOCK)
            return io_error(d, err, what);
        rc = dgram_wait(d, WEFT__POLL_OUT, what);
        if (rc != 0)
            return rc;
    }
}

ssize_t weft_datagram_recvfrom(weft_datagram *h, void *buf, size_t n, struct sockaddr *addr, socklen_t *addrlen)
{
    static const char what[] = "weft_datagram_recvfrom";
    int rc;
    weft__dgram *d = dgram_from(h, what, &rc);
    if (!d)
        return rc;
    weft_task *self = weft__current();
    if (!self)
        return weft__set_errmsg(WEFT_ENOTINLOOP, "%s must be called from a task (a callback cannot wait)", what);
    if (!buf && n > 0)
        return weft__set_errmsg(-EINVAL, "%s: buf is NULL", what);
    if (addr && !addrlen)
        return weft__set_errmsg(-EINVAL, "%s: addr without addrlen", what);
    if (self->cancelling)
        return weft__cancelled_errmsg(self);
    socklen_t size = addr ? *addrlen : 0;
    for (;;) {
        if (addrlen)
            *addrlen = size;
        /* MSG_TRUNC: the datagram's real length, so that truncation is told. */
        ssize_t got = recvfrom(d->f.w.fd, buf, n, MSG_TRUNC, addr, addr ? addrlen : NULL);
        if (got >= 0) {
            if ((size_t)got > n)
                return weft__set_errmsg(-EMSGSIZE, "%s: a datagram of %zd bytes did not fit in %zu: its first %zu "
                                                   "bytes are in buf, the rest is lost", what, got, n, n);
            return got;
        }
        int err = -errno;
        if (err == -EINTR)
            continue;
        if (err != -EAGAIN && err != -EWOULDBLOCK)
            return io_error(d, err, what);
        rc = dgram_wait(d, WEFT__POLL_IN, what);
        if (rc != 0)
            return rc;
    }
}

/* ------------------------------------------------------------------------ */
/* The rest                                                                 */
/* ------------------------------------------------------------------------ */

int weft_datagram_sockname(weft_datagram *h, struct sockaddr *addr, socklen_t *len)
{
    int rc;
    weft__dgram *d = dgram_from(h, "weft_datagram_sockname", &rc);
    if (!d)
        return rc;
    if (!addr || !len)
        return weft__set_errmsg(-EINVAL, "weft_datagram_sockname: addr or len is NULL");
    if (getsockname(d->f.w.fd, addr, len) != 0) {
        int err = -errno;
        return weft__set_errmsg(err, "weft_datagram_sockname: %s", weft_strerror(err));
    }
    return 0;
}

int weft_datagram_peername(weft_datagram *h, struct sockaddr *addr, socklen_t *len)
{
    int rc;
    weft__dgram *d = dgram_from(h, "weft_datagram_peername", &rc);
    if (!d)
        return rc;
    if (!addr || !len)
        return weft__set_errmsg(-EINVAL, "weft_datagram_peername: addr or len is NULL");
    if (!d->connected)
        return weft__set_errmsg(-ENOTCONN, "weft_datagram_peername: endpoint %s is not connected", d->name);
    socklen_t copy = *len < d->peerlen ? *len : d->peerlen;
    memcpy(addr, &d->peer, copy);
    *len = d->peerlen;
    return 0;
}

int weft_datagram_fd(weft_datagram *h)
{
    int rc;
    weft__dgram *d = dgram_from(h, "weft_datagram_fd", &rc);
    return d ? d->f.w.fd : rc;
}

int weft_datagram_close(weft_datagram *h)
{
    int rc;
    weft__dgram *d = dgram_from(h, "weft_datagram_close", &rc);
    if (!d)
        return rc;
    weft_loop *L = weft__loop;
    weft__net_loop *net = weft__net_state(L);
    weft__dlist_unlink(&net->datagrams, &d->link);
    dgram_shut(L, d);
    d->next_free = net->free_dgrams;
    net->free_dgrams = d;
    return 0;
}
