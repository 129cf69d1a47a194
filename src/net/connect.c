/*
 * connect.c — connecting a TCP socket to host:port (the part of
 * loop.create_connection before the transport): resolve, then try every address,
 * racing them as RFC 8305's happy eyeballs says, asyncio's way (staggered.py):
 * addresses interleaved by family, the resolver's first family first; the next
 * attempt starts when the latest has not finished after happy_eyeballs_delay, or
 * at once when it fails; the first to connect wins and every other socket is
 * closed. A negative delay tries one address at a time.
 *
 * One task does it all: the caller itself, waiting on every attempt's socket and
 * on the stagger's timer at once (a watcher per socket, one timer callback, one
 * suspension), rather than a task per attempt. So there is no handle to give up
 * on any path, and a cancellation (or a timeout scope's deadline) closes every
 * socket before the call returns, with nothing left to finish later. The records
 * are on the heap, never on the caller's stack: the caller may be a compact task.
 */
#include "net/net.h"

#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* asyncio's recommended delay (RFC 8305 says 250 ms too). */
#define DEFAULT_DELAY 0.25
/* The failure list in the message stops growing here ("... and N more"). */
#define MSG_MAX 2048

typedef struct connecting connecting;

typedef struct attempt {
    weft__watcher w;           /* the socket, watched for writability while it connects */
    connecting *c;
    const struct addrinfo *ai;
    int fd;                    /* -1 before it starts and once closed */
    int err;                   /* its failure, 0 while it runs or once it won */
    uint8_t ready;             /* the socket reported an outcome not looked at yet */
    char what[160];            /* its line in the message: "127.0.0.1:80: Connection refused" */
} attempt;

struct connecting {
    weft_loop *L;
    weft_task *waiter;         /* the caller while it is suspended */
    weft__callback *timer;     /* the stagger: starts the next attempt when due */
    uint8_t timer_fired;
    attempt *at;
    size_t n, started;
    const struct addrinfo *local; /* the local addresses to bind, or NULL */
    bool nagle;
};

/* ------------------------------------------------------------------------ */
/* Waiting for any socket or the timer                                      */
/* ------------------------------------------------------------------------ */

static void wake_caller(connecting *c)
{
    weft_task *t = c->waiter;
    if (t) {
        c->waiter = NULL;
        weft__wake(t, 0);
    }
}

static void attempt_ready(weft__watcher *w, unsigned events)
{
    (void)events; /* SO_ERROR says what happened */
    attempt *a = WEFT__CONTAINER_OF(w, attempt, w);
    a->ready = 1;
    /* Level-triggered: stop wanting, or the loop reports it again every poll. */
    (void)weft__watcher_want(&a->c->L->io, w, 0);
    wake_caller(a->c);
}

static void stagger_due(void *arg)
{
    connecting *c = arg;
    c->timer = NULL; /* the record is freed after this call */
    c->timer_fired = 1;
    wake_caller(c);
}

static void connecting_unwait(weft_task *self, int reason)
{
    (void)reason;
    connecting *c = self->wait_obj;
    c->waiter = NULL;
}

/* weft_dump: the attempts under way. */
static void connecting_describe(const weft_task *self, char *buf, size_t size)
{
    const connecting *c = self->wait_obj;
    size_t open = 0;
    const attempt *first = NULL;
    for (size_t i = 0; i < c->started; i++) {
        if (c->at[i].fd >= 0) {
            open++;
            if (!first)
                first = &c->at[i];
        }
    }
    char addr[128] = "";
    if (first)
        weft__format_ai(first->ai, addr, sizeof addr);
    snprintf(buf, size, "%zu of %zu addresses tried, %zu under way%s%s", c->started, c->n, open,
             first ? ", to " : "", addr);
}

static const weft__wait_kind connecting_wait = {"connect", connecting_unwait, connecting_describe};

static void timer_stop(connecting *c)
{
    if (c->timer) {
        weft__callback_cancel(c->L, c->timer);
        c->timer = NULL;
    }
    c->timer_fired = 0;
}

/* ------------------------------------------------------------------------ */
/* One attempt                                                              */
/* ------------------------------------------------------------------------ */

static void attempt_close(connecting *c, attempt *a)
{
    if (a->fd >= 0) {
        weft__watcher_forget(&c->L->io, &a->w); /* before close: io.h's rule */
        close(a->fd);
        a->fd = -1;
    }
}

static int attempt_fail(connecting *c, attempt *a, int err, const char *fmt, ...) WEFT_PRINTF(4, 5);
static int attempt_fail(connecting *c, attempt *a, int err, const char *fmt, ...)
{
    attempt_close(c, a);
    a->err = err;
    char addr[80], why[100];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    snprintf(a->what, sizeof a->what, "%s: %s", weft__format_ai(a->ai, addr, sizeof addr), why);
    return err;
}

/* Binds a->fd to the first local address of its family that takes it. */
static int attempt_bind(connecting *c, attempt *a)
{
    int err = 0;
    char addr[80] = "";
    for (const struct addrinfo *l = c->local; l; l = l->ai_next) {
        if (l->ai_family != a->ai->ai_family)
            continue;
        if (bind(a->fd, l->ai_addr, l->ai_addrlen) == 0)
            return 0;
        err = -errno;
        weft__format_ai(l, addr, sizeof addr);
    }
    if (err == 0)
        return attempt_fail(c, a, -EADDRNOTAVAIL, "no local address of this family to bind to");
    return attempt_fail(c, a, err, "bind to %s: %s", addr, weft_strerror(err));
}

/* Starts connecting. Returns 1 when connected at once, 0 while in progress, or the
 * attempt's negative error (a->what says it). */
static int attempt_start(connecting *c, attempt *a)
{
    const struct addrinfo *ai = a->ai;
    a->fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (a->fd < 0) {
        int err = -errno;
        return attempt_fail(c, a, err, "socket: %s", weft_strerror(err));
    }
    weft__watcher_init(&a->w, a->fd, attempt_ready);
    if (!c->nagle) {
        int one = 1;
        /* As asyncio: small writes go out at once. A failure only costs latency. */
        (void)setsockopt(a->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    if (c->local) {
        int rc = attempt_bind(c, a);
        if (rc != 0)
            return rc;
    }
    if (connect(a->fd, ai->ai_addr, ai->ai_addrlen) == 0)
        return 1;
    if (errno != EINPROGRESS && errno != EINTR) { /* EINTR: it goes on in the background */
        int err = -errno;
        return attempt_fail(c, a, err, "%s", weft_strerror(err));
    }
    int rc = weft__watcher_want(&c->L->io, &a->w, WEFT__POLL_OUT);
    if (rc != 0)
        return attempt_fail(c, a, rc, "cannot watch the socket: %s", weft_strerror(rc));
    return 0;
}

/* The outcome of an attempt whose socket reported: 1 connected, or its error. */
static int attempt_outcome(connecting *c, attempt *a)
{
    a->ready = 0;
    int soerr = 0;
    socklen_t len = sizeof soerr;
    if (getsockopt(a->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0)
        soerr = errno;
    if (soerr == 0)
        return 1;
    return attempt_fail(c, a, -soerr, "%s", weft_strerror(-soerr));
}

/* ------------------------------------------------------------------------ */
/* The race                                                                 */
/* ------------------------------------------------------------------------ */

/* RFC 8305 section 4, asyncio's _interleave_addrinfos with one address of the
 * first family first: [a1, b1, a2, b2, ...] where a is the resolver's first family. */
static size_t interleave(const struct addrinfo *res, const struct addrinfo **out, bool mix)
{
    size_t n = 0;
    for (const struct addrinfo *ai = res; ai; ai = ai->ai_next)
        out[n++] = ai;
    if (!mix || n < 3)
        return n;
    /* Families in order of first appearance, then round-robin over them. */
    int fams[8];
    size_t nf = 0;
    for (size_t i = 0; i < n; i++) {
        size_t f = 0;
        while (f < nf && fams[f] != out[i]->ai_family)
            f++;
        if (f == nf && nf < sizeof fams / sizeof fams[0])
            fams[nf++] = out[i]->ai_family;
    }
    if (nf < 2)
        return n;
    const struct addrinfo **tmp = malloc(n * sizeof *tmp);
    if (!tmp)
        return n; /* the resolver's order still works */
    bool *used = calloc(n, sizeof *used);
    if (!used) {
        free(tmp);
        return n;
    }
    size_t k = 0;
    while (k < n) {
        size_t before = k;
        for (size_t f = 0; f < nf; f++) {
            for (size_t i = 0; i < n; i++) {
                if (!used[i] && out[i]->ai_family == fams[f]) {
                    used[i] = true;
                    tmp[k++] = out[i];
                    break;
                }
            }
        }
        if (k == before) /* families beyond the eighth: in their order */
            for (size_t i = 0; i < n; i++)
                if (!used[i]) {
                    used[i] = true;
                    tmp[k++] = out[i];
                }
    }
    memcpy(out, tmp, n * sizeof *tmp);
    free(tmp);
    free(used);
    return n;
}

/* The message when every attempt failed: each address and its error, in order. */
static int all_failed(connecting *c, const char *host, int port)
{
    int err = c->at[c->n - 1].err;
    /* One address that is the host itself ("127.0.0.1"): its line says it all. */
    size_t hl = strlen(host);
    if (c->n == 1 && strncmp(c->at[0].what, host, hl) == 0 && c->at[0].what[hl] == ':')
        return weft__set_errmsg(err, "connect to %s", c->at[0].what);
    char *msg = malloc(MSG_MAX);
    if (!msg)
        return weft__set_errmsg(err, "connect to %s:%d: %s", host, port, c->at[c->n - 1].what);
    size_t used = (size_t)snprintf(msg, MSG_MAX, "connect to %s:%d: ", host, port);
    for (size_t i = 0; i < c->n && used < MSG_MAX; i++) {
        int w = snprintf(msg + used, MSG_MAX - used, "%s%s", i ? "; " : "", c->at[i].what);
        if (w < 0 || used + (size_t)w >= MSG_MAX - 32) {
            snprintf(msg + used, MSG_MAX - used, "; and %zu more", c->n - i);
            used = MSG_MAX;
            break;
        }
        used += (size_t)w;
    }
    weft__set_errmsg(err, "%s", msg);
    free(msg);
    return err;
}

static void connecting_free(connecting *c)
{
    timer_stop(c);
    for (size_t i = 0; i < c->n; i++)
        attempt_close(c, &c->at[i]);
    free(c->at);
    free(c);
}

/* Runs the race over the addresses in order. Returns the winner's descriptor or a
 * negative error with the message set. */
static int race(connecting *c, double delay, const char *host, int port)
{
    weft_task *self = weft__current();
    int64_t delay_ns = delay >= 0 ? weft__seconds_to_ns(delay) : -1;
    bool start_next = true; /* the first at once; then after a failure or the delay */
    for (;;) {
        while (start_next && c->started < c->n) {
            attempt *a = &c->at[c->started++];
            timer_stop(c);
            int rc = attempt_start(c, a);
            if (rc == 1) {
                int fd = a->fd;
                weft__watcher_forget(&c->L->io, &a->w);
                a->fd = -1;
                return fd;
            }
            start_next = rc < 0; /* failed at once: the next starts now */
            if (rc == 0 && delay_ns >= 0 && c->started < c->n) {
                c->timer = weft__callback_schedule(c->L, weft__now(c->L) + delay_ns, stagger_due, c);
                if (!c->timer)
                    return weft__set_errmsg(-ENOMEM, "connect to %s:%d: out of memory for the happy eyeballs "
                                                     "timer", host, port);
            }
        }
        bool running = false;
        for (size_t i = 0; i < c->started; i++)
            running |= c->at[i].fd >= 0;
        if (!running) /* all failed: the loop above started every address */
            return all_failed(c, host, port);

        c->waiter = self;
        int rc = weft__wait(&connecting_wait, c);
        if (rc != 0)
            return rc == -ECANCELED ? weft__cancelled_errmsg(self) : rc;

        for (size_t i = 0; i < c->started; i++) {
            attempt *a = &c->at[i];
            if (a->fd < 0 || !a->ready)
                continue;
            if (attempt_outcome(c, a) == 1) {
                int fd = a->fd;
                weft__watcher_forget(&c->L->io, &a->w);
                a->fd = -1;
                return fd;
            }
            if (i == c->started - 1)
                start_next = true; /* the latest failed: do not wait for the delay */
        }
        if (c->timer_fired)
            start_next = true;
    }
}

int weft__connect_tcp(const char *host, int port, const weft_connect_options *o)
{
    static const weft_connect_options defaults = {0};
    if (!o)
        o = &defaults;
    weft_task *self = weft__current();
    if (!self)
        return weft__set_errmsg(WEFT_ENOTINLOOP, "connecting must be done from a task of a running weft loop");
    if (!host)
        return weft__set_errmsg(-EINVAL, "connect: the host is NULL");
    if (port < 1 || port > 65535)
        return weft__set_errmsg(-EINVAL, "connect to %s: port %d is outside 1..65535", host, port);
    if (isnan(o->happy_eyeballs_delay))
        return weft__set_errmsg(-EINVAL, "connect to %s:%d: happy_eyeballs_delay is NaN", host, port);
    if (o->local_port && !o->local_host)
        return weft__set_errmsg(-EINVAL, "connect to %s:%d: local_port %d without local_host (use \"0.0.0.0\" or "
                                         "\"::\" to bind any address)", host, port, o->local_port);
    if (o->local_port < 0 || o->local_port > 65535)
        return weft__set_errmsg(-EINVAL, "connect to %s:%d: local_port %d is outside 0..65535", host, port,
                                o->local_port);
    if (o->family != AF_UNSPEC && o->family != AF_INET && o->family != AF_INET6)
        return weft__set_errmsg(-EINVAL, "connect to %s:%d: family %d is not AF_UNSPEC, AF_INET or AF_INET6", host,
                                port, o->family);
    double delay = o->happy_eyeballs_delay == 0 ? DEFAULT_DELAY : o->happy_eyeballs_delay;

    /* asyncio resolves without AI_ADDRCONFIG: "localhost" keeps its ::1 on a host
     * whose only IPv6 address is the loopback's. */
    struct addrinfo hints = {.ai_family = o->family, .ai_socktype = SOCK_STREAM, .ai_protocol = IPPROTO_TCP};
    struct addrinfo *res = NULL, *local = NULL;
    int rc = weft_getaddrinfo(host, port, &hints, &res);
    if (rc != 0)
        return rc;
    if (o->local_host) {
        struct addrinfo lhints = hints;
        lhints.ai_flags = AI_PASSIVE;
        rc = weft_getaddrinfo(o->local_host, o->local_port, &lhints, &local);
        if (rc != 0) {
            freeaddrinfo(res);
            return rc;
        }
    }

    size_t n = 0;
    for (const struct addrinfo *ai = res; ai; ai = ai->ai_next)
        n++;
    if (n == 0) { /* getaddrinfo never answers an empty list; be safe anyway */
        freeaddrinfo(res);
        if (local)
            freeaddrinfo(local);
        return weft__set_errmsg(WEFT_ENONAME, "connect to %s:%d: the resolver gave no address", host, port);
    }
    connecting *c = calloc(1, sizeof *c);
    const struct addrinfo **order = calloc(n ? n : 1, sizeof *order);
    if (c)
        c->at = calloc(n ? n : 1, sizeof *c->at);
    if (!c || !order || !c->at) {
        if (c)
            free(c->at);
        free(c);
        free(order);
        freeaddrinfo(res);
        if (local)
            freeaddrinfo(local);
        return weft__set_errmsg(-ENOMEM, "connect to %s:%d: out of memory", host, port);
    }
    n = interleave(res, order, delay >= 0);
    c->L = weft__loop;
    c->n = n;
    c->local = local;
    c->nagle = o->nagle != 0;
    for (size_t i = 0; i < n; i++)
        c->at[i] = (attempt){.c = c, .ai = order[i], .fd = -1};
    free(order);

    rc = race(c, delay, host, port);
    connecting_free(c); /* closes every socket but the winner's */
    freeaddrinfo(res);
    if (local)
        freeaddrinfo(local);
    return rc;
}
