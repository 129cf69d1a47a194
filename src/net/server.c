/*
 * server.c — weft_server, asyncio's Server: listening sockets (TCP on every address
 * a host gives, or a Unix path), the accept loop, and one task per connection
 * running the user's handler with the connection's stream; closing, waiting for
 * the handlers, close_clients and abort_clients.
 *
 * Accepting runs in the listening socket's watcher callback, not in a task: each
 * readiness accepts up to ACCEPT_BATCH connections and spawns their tasks, so a
 * burst of connections costs one wake-up, and a server costs no task of its own.
 *
 * Out of descriptors (EMFILE, ENFILE): the connection stays in the kernel's
 * queue, so the socket stays readable and a naive loop would spin. The server
 * stops watching for a while (BACKOFF_S), says so once per episode on stderr, and
 * tries again; a connection handler that closes its stream gives a descriptor
 * back and the queue drains.
 */
#include "net/net.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define ACCEPT_BATCH 64
#define BACKOFF_S 0.1
#define DEFAULT_BACKLOG 100
#define MAX_LISTENERS 16

typedef struct listener {
    weft__watcher w;
    struct weft_server *srv;
} listener;

/* One accepted connection: its stream and the task running the handler. */
typedef struct connection {
    weft__dlink link;
    struct weft_server *srv;
    weft_stream *s;
} connection;


struct weft_server {
    weft__net_obj obj;
    weft_loop *loop;
    weft__dlink link;            /* on the loop's list of servers */
    struct weft_server *next_free;
    weft_connection_fn handler;
    void *arg;
    weft_stream_options stream_opts;
    weft_spawn_options task_opts;
    char *task_name;             /* task_opts.name, copied */
    weft__tls_hook *tls;         /* serve TLS with this context (retained), or NULL */
    bool nagle;
    bool closed;                 /* weft_server_close: listening sockets gone */
    bool backing_off;
    bool out_of_fds_said;        /* the pause was reported (once per server) */
    bool recovery_said;          /* ...and the first recovery after it */
    bool paused_since_accept;    /* backed off since the last accepted connection */
    char *unix_path;             /* a Unix server's path (removed at close), or NULL */
    int nlisteners;
    listener listeners[MAX_LISTENERS];
    weft__dlist conns;
    size_t nconns;
    weft__fifo waiters;          /* tasks in wait_closed or serve_forever, chained by their
                                    node: nothing of a waiter may live on its stack, which
                                    may be a compact task's and hold another task's frames
                                    while it waits */
    uint32_t nwaiting;           /* those tasks, until each has run again: the last of
                                    them frees a finished server */
    weft_call backoff;           /* the timer that resumes accepting, while backing off */
    char where[96];              /* the first address, for messages */
};

#define SERVER_ARG(v, h, what)                                               \
    int v##_err_;                                                            \
    weft_server *v = weft__net_from((h), WEFT__NET_SERVER, (what), &v##_err_); \
    if (!v)                                                                  \
        return v##_err_;

/* ------------------------------------------------------------------------ */
/* Closing and freeing                                                      */
/* ------------------------------------------------------------------------ */

/* Back to the loop's free list with a new generation: a stale handle to it still
 * reads a server record, and is refused. */
static void server_recycle(weft__net_loop *net, weft_server *srv)
{
    free(srv->task_name);
    free(srv->unix_path);
    if (srv->tls)
        srv->tls->release(srv->tls);
    srv->tls = NULL;
    srv->task_name = srv->unix_path = NULL;
    weft__net_retire(&srv->obj);
    srv->next_free = net->free_servers;
    net->free_servers = srv;
}

static void server_free(weft_server *srv)
{
    weft__net_loop *net = weft__net_state(srv->loop);
    weft__dlist_unlink(&net->servers, &srv->link);
    server_recycle(net, srv);
}

static void close_listeners(weft_server *srv)
{
    if (srv->backing_off) {
        (void)weft_call_cancel(srv->backoff);
        srv->backing_off = false;
    }
    bool listened = srv->nlisteners > 0;
    for (int i = 0; i < srv->nlisteners; i++) {
        weft__watcher_forget(&srv->loop->io, &srv->listeners[i].w);
        close(srv->listeners[i].w.fd);
    }
    srv->nlisteners = 0;
    /* Once, when the socket goes: a later call (wait_closed, the loop's end) must
     * not remove a path another server has bound since. */
    if (listened && srv->unix_path && srv->unix_path[0] != '@')
        unlink(srv->unix_path);
}

/* Closed and no handler left: wait_closed's waiters go, and so may the record. */
static void maybe_finished(weft_server *srv)
{
    if (!srv->closed || srv->nconns > 0)
        return;
    weft__node *n;
    while ((n = weft__fifo_pop(&srv->waiters)) != NULL)
        weft__wake(WEFT__CONTAINER_OF(n, weft_task, node), 0); /* they free the record */
}

/* ------------------------------------------------------------------------ */
/* Connections                                                              */
/* ------------------------------------------------------------------------ */

static void *connection_main(void *arg)
{
    connection *c = arg;
    weft_server *srv = c->srv;
    void *result = NULL;
    /* A TLS server's handler gets the stream once the handshake is done; one that
     * fails (a client that does not trust us, a scanner) just ends the connection. */
    if (!srv->tls || srv->tls->secure(srv->tls, c->s, NULL, "TLS server") == 0)
        result = srv->handler(weft__stream_user_handle(c->s), srv->arg);
    weft__stream_server_done(c->s);
    weft__dlist_unlink(&srv->conns, &c->link);
    srv->nconns--;
    free(c);
    maybe_finished(srv);
    return result;
}

static void start_connection(weft_server *srv, int fd, const struct sockaddr *peer, socklen_t peerlen)
{
    weft_loop *L = srv->loop;
    if (!srv->nagle) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); /* fails harmlessly on Unix sockets */
    }
    int err = 0;
    connection *c = malloc(sizeof *c);
    struct weft_stream *s = c ? weft__stream_new(L, fd, &srv->stream_opts, &err) : NULL;
    if (!s) {
        weft__report("weft: server on %s dropped a connection: %s", srv->where,
                     weft_strerror(c ? err : -ENOMEM));
        free(c);
        close(fd);
        return;
    }
    weft__stream_mark_server_owned(s);
    c->srv = srv;
    c->s = s;
    /* Unnamed by the user: the task is named after its peer, so that a report of a
     * failed handler says which connection ("conn 127.0.0.1:40112"). */
    weft_spawn_options task_opts = srv->task_opts;
    char name[112];
    if (!task_opts.name) {
        char addr[96];
        if (srv->unix_path)
            snprintf(addr, sizeof addr, "%s", srv->unix_path);
        else
            weft_format_address(peer, peerlen, addr, sizeof addr);
        snprintf(name, sizeof name, "conn %s", addr);
        task_opts.name = name;
    }
    weft_task *t = weft_spawn_opts(connection_main, c, &task_opts);
    if (!t) {
        weft__report("weft: server on %s dropped a connection: cannot start its task: %s", srv->where,
                     weft_errmsg());
        weft__stream_close_from_server(s, true);
        weft__stream_server_done(s);
        free(c);
        return;
    }
    weft__dlist_push_back(&srv->conns, &c->link);
    srv->nconns++;
    (void)weft_detach(t);
}

static void resume_accepting(void *arg);

static void listener_ready(weft__watcher *w, unsigned events)
{
    (void)events;
    listener *l = WEFT__CONTAINER_OF(w, listener, w);
    weft_server *srv = l->srv;
    if (srv->loop->shutting_down) {
        /* main has returned and left the server open: no new connection may start
         * a task that nothing will cancel (the loop's end reports the server). */
        close_listeners(srv);
        return;
    }
    for (int i = 0; i < ACCEPT_BATCH && !srv->closed && !srv->backing_off; i++) {
        struct sockaddr_storage peer;
        socklen_t peerlen = sizeof peer;
        int fd = accept4(w->fd, (struct sockaddr *)&peer, &peerlen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            if (srv->paused_since_accept && !srv->recovery_said) {
                srv->recovery_said = true;
                weft__report("weft: server on %s accepts connections again (said once; later pauses for lack "
                             "of descriptors are not reported)",
                             srv->where);
            }
            srv->paused_since_accept = false;
            start_connection(srv, fd, (struct sockaddr *)&peer, peerlen);
            continue;
        }
        int e = errno;
        if (e == EAGAIN || e == EWOULDBLOCK)
            break;
        if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM) {
            if (!srv->out_of_fds_said) {
                srv->out_of_fds_said = true;
                weft__report("weft: server on %s cannot accept: %s; it pauses accepting for %.1f s at a time "
                             "until descriptors are free (said once) (raise the limit with ulimit -n, or close connections)",
                             srv->where, strerror(e), BACKOFF_S);
            }
            srv->backing_off = true;
            srv->paused_since_accept = true;
            for (int k = 0; k < srv->nlisteners; k++)
                (void)weft__watcher_want(&srv->loop->io, &srv->listeners[k].w, 0);
            srv->backoff = weft_call_later(BACKOFF_S, resume_accepting, srv);
            if (!weft_call_ok(srv->backoff)) {
                /* No memory for a timer: keep watching rather than stop for good. */
                srv->backing_off = false;
                for (int k = 0; k < srv->nlisteners; k++)
                    (void)weft__watcher_want(&srv->loop->io, &srv->listeners[k].w, WEFT__POLL_IN);
            }
            break;
        }
        /* ECONNABORTED, EPROTO, EINTR, a network error on the new connection:
         * that connection is gone, the next one may be fine. */
    }
}

static void resume_accepting(void *arg)
{
    weft_server *srv = arg;
    srv->backing_off = false;
    if (srv->closed)
        return;
    for (int k = 0; k < srv->nlisteners; k++) {
        int rc = weft__watcher_want(&srv->loop->io, &srv->listeners[k].w, WEFT__POLL_IN);
        if (rc != 0)
            weft__report("weft: server on %s cannot watch its listening socket again (%s); it accepts no "
                         "more connections on it",
                         srv->where, weft_strerror(rc));
    }
}

/* ------------------------------------------------------------------------ */
/* Listening                                                                */
/* ------------------------------------------------------------------------ */

static weft_server *server_new(weft_connection_fn handler, void *arg, const weft_server_options *opts, int *err)
{
    weft__net_loop *net = weft__net_state(weft__loop);
    weft_server *srv = net->free_servers;
    uint16_t gen = 1;
    if (srv) {
        net->free_servers = srv->next_free;
        gen = srv->obj.gen;
        memset(srv, 0, sizeof *srv);
    } else {
        srv = calloc(1, sizeof *srv);
        if (!srv) {
            *err = -ENOMEM;
            return NULL;
        }
    }
    srv->obj.gen = gen;
    srv->obj.kind = WEFT__NET_SERVER;
    srv->loop = weft__loop;
    srv->handler = handler;
    srv->arg = arg;
    if (opts) {
        if (opts->tls) {
            srv->tls = (weft__tls_hook *)opts->tls;
            if (!srv->tls->server) {
                srv->tls = NULL;
                server_recycle(net, srv);
                *err = -EINVAL;
                return NULL;
            }
            srv->tls->retain(srv->tls);
        }
        srv->stream_opts = opts->stream;
        srv->task_opts = opts->task;
        srv->nagle = opts->nagle != 0;
        if (opts->task.name) {
            srv->task_name = strdup(opts->task.name);
            if (!srv->task_name) {
                server_recycle(net, srv);
                *err = -ENOMEM;
                return NULL;
            }
            srv->task_opts.name = srv->task_name;
        }
    }
    return srv;
}

/* Opens, binds and listens one socket; returns it or a negative errno. */
static int listen_on(const struct sockaddr *addr, socklen_t len, const weft_server_options *opts)
{
    int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    if (addr->sa_family != AF_UNIX) {
        if (!(opts && opts->no_reuse_address))
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (opts && opts->reuse_port && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
            int e = errno;
            close(fd);
            return -e;
        }
        if (addr->sa_family == AF_INET6)
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    }
    int backlog = opts && opts->backlog > 0 ? opts->backlog : DEFAULT_BACKLOG;
    if (bind(fd, addr, len) != 0 || listen(fd, backlog) != 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

/* Takes fd as the server's next listener. */
static int add_listener(weft_server *srv, int fd)
{
    listener *l = &srv->listeners[srv->nlisteners];
    l->srv = srv;
    weft__watcher_init(&l->w, fd, listener_ready);
    int rc = weft__watcher_want(&srv->loop->io, &l->w, WEFT__POLL_IN);
    if (rc != 0) {
        weft__watcher_forget(&srv->loop->io, &l->w);
        return rc;
    }
    srv->nlisteners++;
    return 0;
}

static weft_server *started(weft_server *srv)
{
    weft__net_loop *net = weft__net_state(srv->loop);
    weft__dlist_push_back(&net->servers, &srv->link);
    return weft__net_handle(srv->loop, &srv->obj);
}

static weft_server *start_failed(weft_server *srv, int rc, const char *fmt, const char *what)
{
    weft__set_errmsg(rc, fmt, what, weft_strerror(rc));
    close_listeners(srv);
    server_recycle(weft__net_state(srv->loop), srv);
    return NULL;
}

weft_server *weft_start_server(weft_connection_fn handler, void *arg, const char *host, int port,
                               const weft_server_options *opts)
{
    weft_task *self = weft__current();
    if (!weft__loop || !self) {
        weft__set_errmsg(WEFT_ENOTINLOOP, "weft_start_server must be called from a task");
        return NULL;
    }
    if (!handler || port < 0 || port > 65535) {
        weft__set_errmsg(-EINVAL, "weft_start_server: %s", !handler ? "the handler is NULL"
                                                                   : "the port is outside 0..65535");
        return NULL;
    }
    if (self->cancelling) {
        weft__cancelled_errmsg(self);
        return NULL;
    }
    if (host && !*host)
        host = NULL;
    char service[8];
    snprintf(service, sizeof service, "%d", port);
    struct addrinfo hints = {0};
    hints.ai_family = opts && opts->family ? opts->family : AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV | AI_NUMERICHOST;
    struct addrinfo *res = NULL;
    /* A numeric address (or none) needs no resolver and no thread. */
    int eai = getaddrinfo(host, service, &hints, &res);
    if (eai == EAI_NONAME && host) {
        hints.ai_flags = AI_PASSIVE | AI_ADDRCONFIG;
        int rc = weft_getaddrinfo(host, port, &hints, &res);
        if (rc != 0)
            return NULL; /* its message says why */
    } else if (eai != 0) {
        weft__resolve_error(eai, errno, host ? host : "*", port);
        return NULL;
    }
    int err = 0;
    weft_server *srv = server_new(handler, arg, opts, &err);
    if (!srv) {
        freeaddrinfo(res);
        weft__set_errmsg(err, "weft_start_server: %s",
                         err == -EINVAL ? "opts->tls is a client's context (make one with weft_tls_server_context)"
                                        : weft_strerror(err));
        return NULL;
    }
    int bound_port = port;
    int rc = 0;
    for (struct addrinfo *ai = res; ai && srv->nlisteners < MAX_LISTENERS; ai = ai->ai_next) {
        struct sockaddr_storage ss;
        memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
        /* Port 0: the first socket picks a port, the others take the same one. */
        if (bound_port != 0) {
            if (ss.ss_family == AF_INET)
                ((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)bound_port);
            else if (ss.ss_family == AF_INET6)
                ((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)bound_port);
        }
        int fd = listen_on((struct sockaddr *)&ss, ai->ai_addrlen, opts);
        if ((fd == -EAFNOSUPPORT || fd == -EADDRNOTAVAIL) && !host && ai->ai_next != NULL) {
            /* Every address was asked for (host NULL) and this family is not
             * available here (a kernel without IPv6): the others serve. */
            continue;
        }
        if (fd < 0) {
            rc = fd;
            weft_format_address((struct sockaddr *)&ss, ai->ai_addrlen, srv->where, sizeof srv->where);
            break;
        }
        if (srv->nlisteners == 0) {
            socklen_t len = sizeof ss;
            getsockname(fd, (struct sockaddr *)&ss, &len);
            weft_format_address((struct sockaddr *)&ss, len, srv->where, sizeof srv->where);
            bound_port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                        : ((struct sockaddr_in *)&ss)->sin_port);
        }
        rc = add_listener(srv, fd);
        if (rc != 0) {
            close(fd);
            break;
        }
    }
    freeaddrinfo(res);
    if (rc != 0)
        return start_failed(srv, rc, "weft_start_server: cannot listen on %s: %s", srv->where);
    if (srv->nlisteners == 0)
        return start_failed(srv, -EADDRNOTAVAIL, "weft_start_server: %s: %s", host ? host : "*");
    return started(srv);
}

weft_server *weft_start_unix_server(weft_connection_fn handler, void *arg, const char *path,
                                    const weft_server_options *opts)
{
    if (!weft__loop) {
        weft__set_errmsg(WEFT_ENOTINLOOP, "weft_start_unix_server needs a running loop");
        return NULL;
    }
    if (!handler || !path) {
        weft__set_errmsg(-EINVAL, "weft_start_unix_server: the %s is NULL", !handler ? "handler" : "path");
        return NULL;
    }
    struct sockaddr_un sun;
    socklen_t len;
    int rc = weft__unix_address(path, &sun, &len);
    if (rc != 0) {
        weft__set_errmsg(rc, "weft_start_unix_server: %s", rc == -EINVAL ? "the path is empty"
                                                                        : "the path is too long for a Unix socket");
        return NULL;
    }
    struct stat st;
    if (path[0] != '@' && lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            weft__set_errmsg(-EADDRINUSE, "weft_start_unix_server: %s exists and is not a socket; weft removes "
                                          "only a stale socket",
                             path);
            return NULL;
        }
        /* A socket file: stale only if the kernel says nobody listens on it
         * (ECONNREFUSED); any other answer (EACCES from another user's live
         * server, say) leaves it alone. */
        int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        int e = probe < 0 ? errno : connect(probe, (struct sockaddr *)&sun, len) == 0 ? 0 : errno;
        if (probe >= 0)
            close(probe);
        if (e != ECONNREFUSED) {
            weft__set_errmsg(-EADDRINUSE, "weft_start_unix_server: %s: %s", path,
                             e == 0 || e == EAGAIN ? "a server already listens on it"
                                                   : "cannot tell whether a server listens on it");
            return NULL;
        }
        unlink(path);
    }
    int err = 0;
    weft_server *srv = server_new(handler, arg, opts, &err);
    if (srv) {
        srv->nagle = true; /* no TCP here */
        srv->unix_path = strdup(path);
        if (!srv->unix_path)
            err = -ENOMEM;
    }
    if (!srv || err) {
        if (srv)
            server_recycle(weft__net_state(weft__loop), srv);
        weft__set_errmsg(err ? err : -ENOMEM, "weft_start_unix_server: %s",
                         err == -EINVAL ? "opts->tls is a client's context (make one with weft_tls_server_context)"
                                        : "no memory");
        return NULL;
    }
    snprintf(srv->where, sizeof srv->where, "%s", path);
    int fd = listen_on((struct sockaddr *)&sun, len, opts);
    if (fd < 0) {
        free(srv->unix_path);
        srv->unix_path = NULL; /* not ours to remove */
        return start_failed(srv, fd, "weft_start_unix_server: cannot listen on %s: %s", path);
    }
    rc = add_listener(srv, fd);
    if (rc != 0) {
        close(fd);
        return start_failed(srv, rc, "weft_start_unix_server: %s: %s", path);
    }
    return started(srv);
}

/* ------------------------------------------------------------------------ */
/* Asking and ending                                                        */
/* ------------------------------------------------------------------------ */

int weft_server_port(weft_server *h)
{
    SERVER_ARG(srv, h, "weft_server_port");
    if (srv->unix_path)
        return weft__set_errmsg(-ENOTSOCK, "weft_server_port: a Unix server has no port");
    if (srv->nlisteners == 0)
        return weft__set_errmsg(WEFT_ECLOSED, "weft_server_port: the server is closed");
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(srv->listeners[0].w.fd, (struct sockaddr *)&ss, &len) != 0)
        return weft__set_errmsg(-errno, "weft_server_port: %s", strerror(errno));
    return ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                          : ((struct sockaddr_in *)&ss)->sin_port);
}

int weft_server_sockname(weft_server *h, int i, struct sockaddr *addr, socklen_t *len)
{
    SERVER_ARG(srv, h, "weft_server_sockname");
    if (i < 0 || i >= srv->nlisteners)
        return weft__set_errmsg(-ENOENT, "weft_server_sockname: the server has %d listening socket(s), no %d",
                                srv->nlisteners, i);
    if (getsockname(srv->listeners[i].w.fd, addr, len) != 0)
        return weft__set_errmsg(-errno, "weft_server_sockname: %s", strerror(errno));
    return 0;
}

int weft_server_close(weft_server *h)
{
    SERVER_ARG(srv, h, "weft_server_close");
    if (!srv->closed) {
        srv->closed = true;
        close_listeners(srv);
        maybe_finished(srv);
    }
    return 0;
}

static int tell_clients(weft_server *srv, bool abort)
{
    int n = 0;
    for (weft__dlink *l = srv->conns.head; l; l = l->next) {
        connection *c = WEFT__CONTAINER_OF(l, connection, link);
        weft__stream_close_from_server(c->s, abort);
        n++;
    }
    return n;
}

int weft_server_close_clients(weft_server *h)
{
    SERVER_ARG(srv, h, "weft_server_close_clients");
    return tell_clients(srv, false);
}

int weft_server_abort_clients(weft_server *h)
{
    SERVER_ARG(srv, h, "weft_server_abort_clients");
    return tell_clients(srv, true);
}

static void closed_unwait(weft_task *self, int reason)
{
    (void)reason;
    weft__fifo_remove(self->wait_obj, &self->node);
}

/* weft_dump: which server, and what keeps it from finishing. */
static void closed_describe(const weft_task *self, char *buf, size_t size)
{
    const weft_server *srv = WEFT__CONTAINER_OF((const weft__fifo *)self->wait_obj, weft_server, waiters);
    snprintf(buf, size, "server at %s: %s, %zu connection handlers running", srv->where,
             srv->closed ? "closed" : "serving", srv->nconns);
}

static const weft__wait_kind closed_wait = {"server to close", closed_unwait, closed_describe};

/* Whether srv is over: closed, and every handler returned. */
static bool finished(const weft_server *srv)
{
    return srv->closed && srv->nconns == 0;
}

/* Suspends self among srv's waiters until srv finished or the wait ended otherwise
 * (*rc, the wake reason). Returns true when srv finished: the waiter that runs last
 * has freed it. Told from the record, not from the wake reason, which a
 * cancellation arriving after the wake-up replaces. */
static bool wait_finished(weft_server *srv, weft_task *self, bool through_cancel, int *rc)
{
    weft__fifo_push(&srv->waiters, &self->node);
    srv->nwaiting++;
    *rc = through_cancel ? weft__wait_through_cancel(self, &closed_wait, &srv->waiters)
                         : weft__wait(&closed_wait, &srv->waiters);
    srv->nwaiting--;
    if (!finished(srv))
        return false;
    if (srv->nwaiting == 0)
        server_free(srv);
    return true;
}

/* A finished server's record goes, unless waiters still have to run (the last frees it). */
static void free_finished(weft_server *srv)
{
    if (srv->nwaiting == 0)
        server_free(srv);
}

int weft_server_wait_closed(weft_server *h)
{
    SERVER_ARG(srv, h, "weft_server_wait_closed");
    weft_task *self = weft__current();
    if (!self)
        return weft__set_errmsg(WEFT_ENOTINLOOP, "weft_server_wait_closed must be called from a task");
    if (finished(srv)) {
        free_finished(srv);
        return 0;
    }
    int rc;
    /* Finished: the wait is over, even if a cancellation came after the wake-up (it
     * stays pending for the next suspension point). */
    if (wait_finished(srv, self, false, &rc))
        return 0;
    return rc == -ECANCELED ? weft__cancelled_errmsg(self) : rc;
}

int weft_server_serve_forever(weft_server *h)
{
    SERVER_ARG(srv, h, "weft_server_serve_forever");
    weft_task *self = weft__current();
    if (!self)
        return weft__set_errmsg(WEFT_ENOTINLOOP, "weft_server_serve_forever must be called from a task");
    if (finished(srv)) {
        free_finished(srv); /* closed by another task already, nothing to wait for */
        return 0;
    }
    /* Waits among wait_closed's waiters: someone else's close ends it too. */
    int rc;
    if (wait_finished(srv, self, false, &rc))
        return 0; /* closed by another task, handlers done, record freed (a later
                     cancellation stays pending for the next suspension point) */
    /* Cancelled: close, abort the clients, and wait for their handlers to return,
     * as asyncio's `async with server` does, the cancellation set aside meanwhile
     * (each new one interrupts one wait, as in asyncio). */
    (void)rc;
    srv->closed = true;
    close_listeners(srv);
    tell_clients(srv, true);
    while (srv->nconns > 0) {
        int ignored;
        if (wait_finished(srv, self, true, &ignored))
            return weft__cancelled_errmsg(self); /* the last handler returned: freed */
    }
    maybe_finished(srv); /* other tasks waiting for the end: it has come */
    free_finished(srv);
    return weft__cancelled_errmsg(self);
}

/* The loop ends: servers left are closed and freed (their connections' tasks were
 * cancelled and finished before this). */
void weft__servers_term(weft_loop *L, weft__net_loop *net)
{
    (void)L;
    weft__dlink *n;
    while ((n = net->servers.head) != NULL) {
        weft_server *srv = WEFT__CONTAINER_OF(n, weft_server, link);
        if (!srv->closed)
            weft__report("weft: the server on %s was never closed; weft closes it as its loop ends (end it with "
                         "weft_server_close and weft_server_wait_closed, or weft_server_serve_forever)",
                         srv->where);
        srv->closed = true;
        close_listeners(srv);
        server_free(srv);
    }
    while (net->free_servers) {
        weft_server *srv = net->free_servers;
        net->free_servers = srv->next_free;
        free(srv);
    }
}
