/*
 * net.h — the network layer's internal header: what its files share. The layer
 * builds asyncio's streams, servers and datagram endpoints on the core's
 * descriptor watchers and suspensions, and resolves names on the thread pool.
 *
 *   net.c       the layer's loop module and handle checks
 *   resolve.c   weft_getaddrinfo: getaddrinfo on the default pool, errors mapped
 *   connect.c   connecting a TCP socket to host:port: every address, happy eyeballs
 *   stream.c    weft_stream: buffered reading and writing, drain, close
 *   server.c    weft_server: listening sockets, the accept loop, connection tasks
 *   datagram.c  weft_datagram: UDP endpoints
 *
 * Also the hooks the TLS layer (src/tls/) uses to run inside a stream and a server.
 */
#ifndef WEFT__SRC_NET_H
#define WEFT__SRC_NET_H

#include "exec/exec.h"
#include "util/dlist.h"

#include <netdb.h>
#include <sys/socket.h>
#include <sys/uio.h>

/*
 * Handles of the layer's objects (streams, servers, datagram endpoints), checked as
 * task handles are (core.h): the record's address tagged with the record's
 * generation in the top 16 bits and its loop's serial in the low 3. Records are
 * never given back to malloc while their loop runs (a freed one waits on a free
 * list with a new generation), so a stale handle reads valid memory and is refused;
 * one of another loop is refused before its record is touched.
 */
typedef struct weft__net_obj {
    uint16_t gen;      /* 1..65535, new at each use of the record; 0 = free */
    uint8_t kind;      /* WEFT__NET_STREAM, ... */
} weft__net_obj;

enum { WEFT__NET_STREAM = 1, WEFT__NET_SERVER, WEFT__NET_DATAGRAM };

/* The handle of a live record. */
static inline void *weft__net_handle(weft_loop *L, weft__net_obj *o)
{
    return (void *)((uintptr_t)o | (uintptr_t)o->gen << WEFT__TAG_SHIFT | L->serial);
}

/* The record a handle names, or NULL with the error in *err (and the message set,
 * naming `what`): -EINVAL for NULL, WEFT_ENOTINLOOP without a loop, WEFT_ESTATE for
 * another loop's, -ESTALE for a record given up. */
void *weft__net_from(const void *h, uint8_t kind, const char *what, int *err);
/* A new generation for a record being given up or reused. */
static inline void weft__net_retire(weft__net_obj *o)
{
    o->gen = (uint16_t)(o->gen % 65535u + 1u);
    o->kind = 0;
}

/*
 * The loop's network state (slots[WEFT__SLOT_NET]), made when the loop starts and
 * freed by the network's module (net.c) when it ends, after the thread pools'
 * drain (no lookup still runs on a pool thread then). Each file keeps its own
 * part and ends it in its *_term, which net.c calls: servers first (their
 * connections' tasks have finished), then streams, datagram endpoints, lookups.
 */
typedef struct weft__net_loop {
    weft__dlist streams;             /* live streams (stream.c), reported if never closed */
    struct weft_stream *free_streams; /* given-up stream records, kept for stale handles */
    size_t free_count;
    weft__dlist servers;             /* live servers (server.c) */
    struct weft_server *free_servers; /* given-up server records, kept for stale handles */
    weft__dlist datagrams;           /* open endpoints (datagram.c), reported if left open */
    struct weft__dgram *free_dgrams; /* closed endpoint records, kept for stale handles */
    weft__dlist orphans;             /* lookups whose caller left before they ran (resolve.c) */
} weft__net_loop;

/* The loop's network state. */
static inline weft__net_loop *weft__net_state(weft_loop *L)
{
    return (weft__net_loop *)L->slots[WEFT__SLOT_NET];
}

/* net.c: the loop's network module. */
extern const weft__module weft__module_net;
/* Each file's end of a loop (see weft__net_loop). */
void weft__servers_term(weft_loop *L, weft__net_loop *net);
void weft__streams_term(weft_loop *L, weft__net_loop *net);
void weft__datagrams_term(weft_loop *L, weft__net_loop *net);
void weft__resolve_term(weft_loop *L, weft__net_loop *net);

/* resolve.c: weft_format_address for a getaddrinfo entry. */
char *weft__format_ai(const struct addrinfo *ai, char *buf, size_t size);

/* stream.c: a stream for a connected non-blocking descriptor (taken over: closed
 * on failure too when `own_on_failure`). NULL with the error in *err (no message). */
struct weft_stream *weft__stream_new(weft_loop *L, int fd, const weft_stream_options *o, int *err);
/* stream.c: the user's handle of s; for server.c, marks s as its connection's. */
weft_stream *weft__stream_user_handle(struct weft_stream *s);
void weft__stream_mark_server_owned(struct weft_stream *s);
/* stream.c: fills a Unix socket address ('@' first: abstract). 0, -EINVAL, -ENAMETOOLONG. */
struct sockaddr_un;
int weft__unix_address(const char *path, struct sockaddr_un *sun, socklen_t *len);
/* stream.c: for server.c — closes s for good when its handler has returned. */
void weft__stream_server_done(struct weft_stream *s);
/* stream.c: close_clients (abort false) and abort_clients (abort true). */
void weft__stream_close_from_server(struct weft_stream *s, bool abort);

/*
 * TLS inside a stream (stream.c's top comment). The TLS layer (src/tls/, above this
 * one) hands a stream its connection and these calls; the stream then reads
 * through recv and writes through send, and OpenSSL's own reads and writes of the
 * descriptor come back through weft__stream_raw_read and weft__stream_raw_write.
 */
typedef struct weft__tls_ops {
    /* One step of the handshake: 0 when done, -EAGAIN to wait until the descriptor
     * is readable, or an error with the message set. */
    int (*handshake)(void *tls);
    /* Up to n decrypted bytes into p: the count (*more: OpenSSL holds more, or its
     * last read of the descriptor filled its space), 0 at the peer's close_notify,
     * -EAGAIN to wait until readable, or an error with the message set. */
    ssize_t (*recv)(void *tls, char *p, size_t n, bool *more);
    /* Encrypts every byte of iov: 0, or an error with the message set. */
    int (*send)(void *tls, const struct iovec *iov, int count);
    /* Queues the close_notify alert (once; later calls do nothing). */
    void (*close_notify)(void *tls);
    /* Frees the connection, when the stream's record is freed. */
    void (*free)(void *tls);
} weft__tls_ops;

/* The head of every weft_tls_context (src/tls/): what a connect or a server needs of
 * one, so that net can take a context in its options without knowing OpenSSL. */
typedef struct weft__tls_hook {
    /* Wraps s in TLS as this context says and runs the handshake, within the
     * context's handshake timeout. A client checks the peer's certificate against
     * server_hostname (and sends it as SNI). Returns as weft__stream_tls_start. */
    int (*secure)(struct weft__tls_hook *ctx, struct weft_stream *s, const char *server_hostname,
                  const char *what);
    /* Whether a client connection can be secured with this context and
     * server_hostname, checked before connecting: 0, or -EINVAL with the message set
     * (a server's context, or no host name while the context verifies). */
    int (*client_check)(struct weft__tls_hook *ctx, const char *server_hostname, const char *what);
    void (*retain)(struct weft__tls_hook *ctx);
    void (*release)(struct weft__tls_hook *ctx);
    bool server; /* a server's context (else a client's) */
} weft__tls_hook;

/* stream.c: hands s to the TLS layer's connection `tls` and runs the handshake to
 * its end, suspending while it waits (the reader's place is held meanwhile). tls
 * is taken in every case (freed with ops->free when refused). Returns 0, or an
 * error with the message set; on an error after the handshake began, the
 * connection is closed (its handle stays the user's). Refused before it began
 * (WEFT_ESTATE already TLS, WEFT_ECLOSED, -EBUSY another reader or a sendfile,
 * -ENOMEM), s is unchanged. */
int weft__stream_tls_start(struct weft_stream *s, const weft__tls_ops *ops, void *tls, const char *what);
/* stream.c: s's TLS connection once its handshake finished, else NULL. */
void *weft__stream_tls(struct weft_stream *s);
/* stream.c: OpenSSL's reads: bytes read ahead before TLS began, then read(2).
 * Returns the count (0 at end of file; *full: the space was filled) or -errno. */
ssize_t weft__stream_raw_read(struct weft_stream *s, void *p, size_t n, bool *full);
/* stream.c: OpenSSL's writes: sent at once or queued in order, as a plain write.
 * Returns 0 or the write side's error. */
int weft__stream_raw_write(struct weft_stream *s, const void *p, size_t n);
/* stream.c: the descriptor. */
int weft__stream_fd(struct weft_stream *s);

/*
 * Connects a TCP socket to host:port as weft_open_connection describes (resolving,
 * every address tried, happy eyeballs, local address, TCP_NODELAY unless o->nagle).
 * o may be NULL. Returns the connected, non-blocking, close-on-exec descriptor, or a
 * negative error with the message set (weft__set_errmsg). Suspends.
 */
int weft__connect_tcp(const char *host, int port, const weft_connect_options *o);

/* The resolver's error (EAI_*, with errno for EAI_SYSTEM) as a weft code, with the
 * message naming host and the resolver's text. */
int weft__resolve_error(int eai, int err, const char *host, int port);

#endif
