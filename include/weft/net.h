/*
 * weft/net.h — the network: asyncio's streams in straight-line C. Name resolution
 * off the loop (loop.getaddrinfo), TCP and Unix-domain byte streams
 * (open_connection / StreamReader / StreamWriter), servers that run one task per
 * connection (start_server), and UDP datagram endpoints.
 *
 *   asyncio                                   weft
 *   await loop.getaddrinfo(host, port)        weft_getaddrinfo(host, port, &hints, &res)
 *   r, w = await open_connection(h, p)        s = weft_open_connection(h, p, NULL)
 *   await r.read(n)                           weft_stream_read(s, buf, n)
 *   await r.readexactly(n)                    weft_stream_readexactly(s, buf, n)
 *   await r.readuntil(b"\r\n\r\n")            weft_stream_readuntil(s, "\r\n\r\n", 4, &p)
 *   await r.readline()                        weft_stream_readline(s, &p)
 *   await r.read()                            weft_stream_read_to_eof(s, &buf)
 *   w.write(data); await w.drain()            weft_stream_write(s, d, n); weft_stream_drain(s)
 *   w.close(); await w.wait_closed()          weft_stream_close(s)
 *   await start_server(cb, h, p)              srv = weft_start_server(cb, arg, h, p, NULL)
 *   server.close(); await server.wait_closed() weft_server_close(srv); weft_server_wait_closed(srv)
 *
 * One weft_stream is asyncio's reader and writer pair: one object, read from by one
 * task at a time and written by any task of its loop. Streams, servers and datagram
 * endpoints belong to the loop that made them, as tasks do; their handles are
 * checked as task handles are (a handle used after it was given up gives -ESTALE,
 * never another stream's data).
 *
 * Part of weft's public header: include <weft.h>, not this file.
 */
#ifndef WEFT_NET_H
#define WEFT_NET_H

#include "base.h"
#include "task.h"

#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct weft_stream weft_stream;
typedef struct weft_server weft_server;
typedef struct weft_datagram weft_datagram;
/* A TLS configuration (weft/tls.h), for opts->tls of connections and servers. */
typedef struct weft_tls_context weft_tls_context;
/* From <netdb.h>, which declares it only for POSIX builds (_POSIX_C_SOURCE). */
struct addrinfo;

/* ======================================================================== */
/* Names                                                                    */
/* ======================================================================== */

/*
 * weft_getaddrinfo — resolve host and port to addresses, on the default thread pool
 * (loop.getaddrinfo; the resolver blocks, so it never runs on the loop). host NULL
 * with AI_PASSIVE in hints means every local address; port 0 leaves the port 0.
 * hints may be NULL (any family, stream sockets, AI_ADDRCONFIG).
 * Returns: 0 with the list in *res, which the caller frees with freeaddrinfo.
 * Suspends: always, until the resolver answers.
 * Errors: WEFT_ENONAME (the name is not known), WEFT_ENAMETEMP (the resolver could
 *   not answer now: no network, a server timed out), WEFT_ERESOLVE (any other
 *   resolver failure); weft_errmsg() carries the resolver's own text and the name
 *   asked for. -EINVAL for a NULL res or a port outside 0..65535; -ENOMEM;
 *   -ECANCELED; WEFT_ENOTINLOOP.
 * On cancel: returns -ECANCELED at once, *res untouched; a lookup already running
 *   finishes on its thread and its answer is freed.
 */
WEFT_API WEFT_WAIT int weft_getaddrinfo(const char *host, int port, const struct addrinfo *hints,
                                        struct addrinfo **res);

/* ======================================================================== */
/* Streams                                                                  */
/* ======================================================================== */

/* A stream's tunables; all zeros means asyncio's defaults. */
typedef struct weft_stream_options {
    size_t limit;      /* 0 = 64 KiB: the most readuntil/readline will buffer looking
                          for a separator (asyncio's limit) */
    size_t high_water; /* 0 = 64 KiB: drain suspends while more than this is unsent */
    size_t low_water;  /* 0 = high_water / 4: ...and resumes at or below this */
} weft_stream_options;

/* How weft_open_connection connects; all zeros means asyncio's defaults. */
typedef struct weft_connect_options {
    weft_stream_options stream;
    /* Seconds between starting one connection attempt and the next when the first
     * has not finished (RFC 8305 "happy eyeballs"; addresses interleaved by family,
     * the resolver's first family first). 0 = 0.25 s; negative = one address at a
     * time, each waited for to its end (asyncio's None). */
    double happy_eyeballs_delay;
    int family;             /* 0 = AF_UNSPEC; AF_INET or AF_INET6 to use one family */
    const char *local_host; /* non-NULL: bind to this address before connecting */
    int local_port;         /* with local_host: the local port (0 = any) */
    int nagle;              /* nonzero: keep Nagle's algorithm (weft sets TCP_NODELAY, as asyncio) */
    /* Non-NULL: speak TLS with this client context (weft_tls_client_context; asyncio's
     * ssl=); the handshake is part of the call. The peer's certificate is checked
     * against server_hostname, or host when that is NULL, which is also sent as SNI. */
    weft_tls_context *tls;
    const char *server_hostname;
} weft_connect_options;

/*
 * weft_open_connection — connect to host:port over TCP (asyncio.open_connection).
 * The name is resolved with weft_getaddrinfo; every address is tried, IPv6 and IPv4
 * raced as happy_eyeballs_delay says; the first to connect wins and the others are
 * closed. A timeout scope around the call bounds the whole of it.
 * Returns: the connected stream (the caller gives it up with weft_stream_close or
 *   weft_stream_abort), or NULL with weft_errcode() saying why.
 * Suspends: always: while resolving and while connecting.
 * Errors: the resolver's (WEFT_ENONAME, WEFT_ENAMETEMP, WEFT_ERESOLVE);
 *   -ECONNREFUSED, -ENETUNREACH, -EHOSTUNREACH, -ETIMEDOUT: the error of the last
 *   address tried when none connected (weft_errmsg() names each address and its
 *   error); -EADDRINUSE / -EADDRNOTAVAIL binding local_host; -EINVAL for a NULL host
 *   or a port outside 1..65535; -EMFILE, -ENFILE, -ENOMEM; -ECANCELED;
 *   WEFT_ENOTINLOOP. With opts->tls, the handshake's (weft/tls.h, weft_start_tls):
 *   WEFT_ETLS_UNKNOWN_CA, WEFT_ETLS_HOSTNAME, WEFT_ETLS_EXPIRED, WEFT_ETLS_CERT,
 *   WEFT_ETLS_VERSION, WEFT_ETLS_TIMEOUT, WEFT_ETLS_EOF, WEFT_ETLS, each with
 *   OpenSSL's reason in weft_errmsg(); -EINVAL for a server's context.
 * On cancel: returns NULL with -ECANCELED; every socket opened so far is closed.
 */
WEFT_API WEFT_WAIT weft_stream *weft_open_connection(const char *host, int port,
                                                    const weft_connect_options *opts);

/* How weft_open_unix_connection connects; all zeros means asyncio's defaults. The
 * fields are weft_connect_options's that mean something for a Unix socket. */
typedef struct weft_unix_connect_options {
    weft_stream_options stream;
    /* Non-NULL: speak TLS with this client context (weft_tls_client_context; asyncio's
     * ssl=); the handshake is part of the call. A path names no host, so the server's
     * certificate is checked against server_hostname (also sent as SNI), which is
     * required unless the context skips verification (asyncio requires it too). */
    weft_tls_context *tls;
    const char *server_hostname;
} weft_unix_connect_options;

/*
 * weft_open_unix_connection — connect to a Unix-domain stream socket
 * (asyncio.open_unix_connection), over TLS with opts->tls. A path starting with '@'
 * names Linux's abstract namespace ("@name" is "\0name").
 * Returns: the stream, or NULL with weft_errcode() saying why.
 * Suspends: always, until connected (and, with opts->tls, until the handshake is done).
 * Errors: -ENOENT (no such socket), -ECONNREFUSED (nobody listens), -EACCES,
 *   -ENAMETOOLONG (longer than sockaddr_un allows), -EINVAL (NULL path; with
 *   opts->tls, a server's context, or no server_hostname while the context verifies:
 *   refused before connecting), -EMFILE, -ENFILE, -ENOMEM; -ECANCELED;
 *   WEFT_ENOTINLOOP. With opts->tls, the handshake's, as weft_open_connection's.
 * On cancel: returns NULL with -ECANCELED; the socket is closed.
 */
WEFT_API WEFT_WAIT weft_stream *weft_open_unix_connection(const char *path,
                                                         const weft_unix_connect_options *opts);

/*
 * weft_stream_from_fd — make a stream of a connected descriptor the caller opened: a
 * socket (TCP, Unix, socketpair) or a pipe. weft makes it non-blocking and owns it
 * from here on: weft_stream_close closes it.
 * Returns: the stream, or NULL with weft_errcode() saying why (fd is then still the caller's).
 * Suspends: never.
 * Errors: -EBADF (not open), -EPERM (a regular file or anything the poller refuses),
 *   -EINVAL (opts inconsistent: low_water above high_water), -ENOMEM; WEFT_ENOTINLOOP.
 */
WEFT_API weft_stream *weft_stream_from_fd(int fd, const weft_stream_options *opts);

/* ---- reading: one reading task at a time; a second gets -EBUSY ---- */

/*
 * weft_stream_read — read up to n bytes (StreamReader.read(n)).
 * Returns: 1..n bytes copied into buf, or 0 at end of file (and for n == 0).
 * Suspends: when nothing is buffered and the peer has not closed, until data, end
 *   of file or an error comes. Buffered bytes are returned without suspending.
 * Errors: -ECONNRESET (the peer reset the connection), or the socket's error; once
 *   the stream's writes have failed (-EPIPE, ...), that error when nothing is
 *   left to read, rather than a wait for a peer that may itself wait for the lost
 *   bytes; on a TLS stream, WEFT_ETLS_EOF (the peer closed without close_notify:
 *   what it sent may be cut short), WEFT_ETLS_CERT (a TLS 1.3 server refused our
 *   client certificate, or our lack of one, after the handshake: weft_start_tls
 *   in weft/tls.h), another refusal's code when the peer's alert names one
 *   (WEFT_ETLS_UNKNOWN_CA, WEFT_ETLS_EXPIRED, WEFT_ETLS_VERSION) or WEFT_ETLS (a
 *   protocol error), OpenSSL's reason in weft_errmsg(); a TLS peer's close_notify
 *   is end of file (0);
 *   WEFT_ECLOSED (the stream is being closed: another task's weft_stream_close, or
 *   the server's close_clients or abort_clients, came first or while this read
 *   waited); -EBUSY (another task is reading s); -EINVAL (buf NULL with n > 0);
 *   -ESTALE (s was given up); WEFT_ESTATE (another loop's stream); -ECANCELED;
 *   WEFT_ENOTINLOOP.
 * On cancel: returns -ECANCELED; nothing is consumed: what came is kept for the
 *   next read.
 */
WEFT_API WEFT_WAIT ssize_t weft_stream_read(weft_stream *s, void *buf, size_t n);

/*
 * weft_stream_readexactly — read exactly n bytes (StreamReader.readexactly).
 * Returns: n, with the bytes in buf.
 * Suspends: until n bytes have come, end of file, or an error.
 * Errors: WEFT_EINCOMPLETE when the stream ended first: the bytes that came are in
 *   buf and weft_stream_partial(s) says how many (asyncio's IncompleteReadError);
 *   otherwise as weft_stream_read.
 * On cancel: returns -ECANCELED; nothing is consumed (bytes copied into buf so far
 *   stay in the stream's buffer too).
 */
WEFT_API WEFT_WAIT ssize_t weft_stream_readexactly(weft_stream *s, void *buf, size_t n);

/*
 * weft_stream_readuntil — read up to and including sep (StreamReader.readuntil),
 * without copying: *data points at the bytes in the stream's own buffer, valid until
 * the next call that reads from, or closes, s. Copy what you keep: Debug and
 * sanitizer builds overwrite those bytes at the next read, so a pointer kept too long
 * shows garbage at once.
 * Returns: the length, separator included; the bytes are consumed.
 * Suspends: until the separator comes, the limit is passed, end of file or an error.
 * Errors: WEFT_ELIMIT when the separator starts beyond the limit, or limit bytes
 *   are buffered without it: nothing is consumed, and weft_stream_partial(s) gives
 *   asyncio's LimitOverrunError.consumed — where the separator starts when it was
 *   found (consume that many bytes, then the separator, to skip the long piece),
 *   else how far the search went (the bytes buffered, less the separator's length
 *   plus one);
 *   WEFT_EINCOMPLETE at end of file without the separator: what came is consumed and
 *   *data points at it, weft_stream_partial(s) bytes (maybe 0); -EINVAL for an
 *   empty separator; otherwise as weft_stream_read.
 * On cancel: returns -ECANCELED; nothing is consumed.
 */
WEFT_API WEFT_WAIT ssize_t weft_stream_readuntil(weft_stream *s, const void *sep, size_t seplen,
                                                 const char **data);

/*
 * weft_stream_readline — read one line, "\n" included (StreamReader.readline).
 * *data points into the stream's buffer, as for weft_stream_readuntil.
 * Returns: the length; at end of file the last bytes without "\n", then 0.
 * Suspends: as weft_stream_readuntil.
 * Errors: WEFT_ELIMIT as weft_stream_readuntil (the buffer is left intact); otherwise
 *   as weft_stream_read.
 * On cancel: returns -ECANCELED; nothing is consumed.
 */
WEFT_API WEFT_WAIT ssize_t weft_stream_readline(weft_stream *s, const char **data);

/*
 * weft_stream_read_to_eof — read everything until end of file (StreamReader.read()).
 * Returns: the length, with the bytes in *out, a malloc'd buffer (NUL-terminated
 *   beyond the length) the caller frees; 0 and an empty buffer when nothing came.
 * Suspends: until end of file or an error.
 * Errors: as weft_stream_read; -ENOMEM (what was read stays buffered).
 * On cancel: returns -ECANCELED; nothing is consumed.
 */
WEFT_API WEFT_WAIT ssize_t weft_stream_read_to_eof(weft_stream *s, char **out);

/* weft_stream_partial — after WEFT_EINCOMPLETE or WEFT_ELIMIT, the count those
 * errors describe (see readexactly, readuntil).
 * Returns: the count, 0 before any such error or for a stale handle.
 * Suspends: never.
 * Errors: none. */
WEFT_API size_t weft_stream_partial(weft_stream *s);

/* weft_stream_at_eof — true once the peer has closed its side and every byte it
 * sent was read (StreamReader.at_eof).
 * Returns: the flag; false for a stale handle.
 * Suspends: never.
 * Errors: none. */
WEFT_API bool weft_stream_at_eof(weft_stream *s);

/* ---- writing ---- */

/*
 * weft_stream_write — send n bytes (StreamWriter.write). What the socket does not
 * take at once is copied into the stream's write buffer and sent by the loop, in
 * order; call weft_stream_drain to wait when the buffer grows.
 * Returns: 0.
 * Suspends: never.
 * Errors: -ECONNRESET / -EPIPE (the peer is gone: nothing of this write is kept);
 *   WEFT_ECLOSED (after weft_stream_write_eof, or once the server's close_clients or
 *   abort_clients, or another task's weft_stream_close, has begun closing it);
 *   -EINVAL (buf NULL with n > 0); -ENOMEM (nothing of this write is kept); -ESTALE
 *   (after your own weft_stream_close or weft_stream_abort: the handle is given up);
 *   WEFT_ESTATE; WEFT_ENOTINLOOP.
 */
WEFT_API int weft_stream_write(weft_stream *s, const void *buf, size_t n);

/* weft_stream_writev — weft_stream_write of several pieces, in order, with one
 * system call when the socket takes them.
 * Returns: 0.
 * Suspends: never.
 * Errors: as weft_stream_write; -EINVAL for a negative count. */
WEFT_API int weft_stream_writev(weft_stream *s, const struct iovec *iov, int count);

/*
 * weft_stream_drain — wait until the write buffer is small again
 * (StreamWriter.drain): returns at once at or below the high-water mark, else
 * suspends until it falls to the low-water mark. Any number of tasks may drain one
 * stream at once (a broadcast writes to many streams and drains each); they all
 * wake together. Nothing stops a program that never drains: its writes pile up in
 * memory as fast as it makes them.
 * Returns: 0.
 * Suspends: only above the high-water mark (then at least once).
 * Errors: -ECONNRESET / -EPIPE (the peer is gone; the unsent bytes are dropped);
 *   WEFT_ECLOSED (another task aborted the stream, or the server's abort_clients,
 *   while this one waited: the unsent bytes were dropped); -ESTALE; WEFT_ESTATE;
 *   -ECANCELED; WEFT_ENOTINLOOP.
 * On cancel: returns -ECANCELED; the buffered bytes stay queued and are still sent.
 */
WEFT_API WEFT_WAIT int weft_stream_drain(weft_stream *s);

/* weft_stream_set_write_buffer_limits — set the drain marks (high 0 = 64 KiB; low 0 =
 * high / 4) (WriteTransport.set_write_buffer_limits).
 * Returns: 0.
 * Suspends: never.
 * Errors: -EINVAL when low > high; -ESTALE; WEFT_ESTATE. */
WEFT_API int weft_stream_set_write_buffer_limits(weft_stream *s, size_t high, size_t low);

/* weft_stream_write_buffer_size — bytes written but not yet taken by the socket.
 * Returns: the count (0 for a stale handle).
 * Suspends: never.
 * Errors: none. */
WEFT_API size_t weft_stream_write_buffer_size(weft_stream *s);

/*
 * weft_stream_write_eof — close the writing side once the buffered bytes are sent
 * (StreamWriter.write_eof; shutdown(SHUT_WR)); reading goes on.
 * Returns: 0.
 * Suspends: never.
 * Errors: -ENOTSUP for a stream that cannot half-close (a pipe's read end, a TLS
 *   stream);
 *   shutdown's error, negated (-ENOTCONN once the connection is gone): the peer
 *   was not told the stream ended (when bytes were still buffered, shutdown comes
 *   once they are sent, and its error is the write side's: the next drain or close
 *   returns it); -ESTALE; WEFT_ESTATE; WEFT_ENOTINLOOP.
 */
WEFT_API int weft_stream_write_eof(weft_stream *s);

/*
 * weft_stream_sendfile — send count bytes of the file file_fd from offset, with
 * sendfile(2): no copy through user memory (loop.sendfile). Bytes already in the
 * write buffer go first.
 * Writes other tasks make meanwhile queue behind the file's range.
 * On a TLS stream the kernel cannot encrypt, so (as asyncio's fallback) the file is
 * read 64 KiB at a time with pread(2) on the loop's thread and written through TLS,
 * drained between chunks; the file must be seekable.
 * Returns: the number of bytes sent (less than count only at the file's end).
 * Suspends: while the socket is full.
 * Errors: as weft_stream_drain; WEFT_ECLOSED (the stream was closed meanwhile);
 *   -EBUSY (another task is sending a file on s); -EBADF / -EINVAL for a file that
 *   sendfile refuses; on a TLS stream, pread's errors (-ESPIPE for a pipe, -EIO)
 *   and WEFT_ESTATE while its handshake is under way.
 * On cancel: returns -ECANCELED; part of the range may have been sent (the file
 *   offset argument is not changed). On a plain stream weft_stream_write_buffer_size
 *   is then 0; on a TLS stream the chunk already encrypted is still sent.
 */
WEFT_API WEFT_WAIT ssize_t weft_stream_sendfile(weft_stream *s, int file_fd, off_t offset, size_t count);

/* ---- ending ---- */

/*
 * weft_stream_close — send what is buffered, close the socket and give up the handle
 * (StreamWriter.close() and wait_closed() together). A task waiting in a read of s
 * wakes with WEFT_ECLOSED.
 * Returns: 0 once everything written reached the socket and it is closed.
 * Suspends: while buffered bytes are being sent.
 * Several tasks may close one stream at once (each waits for the same flush),
 *   or one may abort it while another's close waits; the stream ends once.
 * Errors: -ECONNRESET / -EPIPE (the peer left before taking every byte: those are
 *   lost); WEFT_ECLOSED (another task aborted it, or the server's abort_clients,
 *   while this close waited: the unsent bytes were dropped); -ESTALE; WEFT_ESTATE;
 *   WEFT_ENOTINLOOP. The handle is given up whatever the result.
 * On cancel: returns -ECANCELED; the unsent bytes are dropped and the socket is
 *   closed at once (as weft_stream_abort).
 */
WEFT_API WEFT_WAIT int weft_stream_close(weft_stream *s);

/* weft_stream_abort — close at once, dropping unsent bytes (a TCP peer sees a reset),
 * and give up the handle (Transport.abort).
 * Returns: 0.
 * Suspends: never.
 * Errors: -ESTALE; WEFT_ESTATE; WEFT_ENOTINLOOP. */
WEFT_API int weft_stream_abort(weft_stream *s);

/* weft_stream_is_closing — true once the stream is closing or closed: after
 * weft_stream_write_eof, a server's close_clients or abort_clients, or a reset
 * (StreamWriter.is_closing).
 * Returns: the flag; true for a stale handle.
 * Suspends: never.
 * Errors: none. */
WEFT_API bool weft_stream_is_closing(weft_stream *s);

/*
 * weft_stream_wait_closed — wait until the stream's socket is closed by someone else:
 * a server's close_clients or abort_clients, or another task's weft_stream_close
 * (StreamWriter.wait_closed).
 * Returns: 0.
 * Suspends: until the socket is closed.
 * Errors: -ESTALE; WEFT_ESTATE; -ECANCELED; WEFT_ENOTINLOOP.
 * On cancel: returns -ECANCELED; the stream is unchanged.
 */
WEFT_API WEFT_WAIT int weft_stream_wait_closed(weft_stream *s);

/* ---- what it is connected to ---- */

/* weft_stream_peername / weft_stream_sockname — the peer's and the local address
 * (get_extra_info('peername' / 'sockname')); *len is the size of addr on entry.
 * Returns: 0.
 * Suspends: never.
 * Errors: getpeername's / getsockname's error, negated (-ENOTCONN once the peer
 *   left); -ESTALE; WEFT_ESTATE. */
WEFT_API int weft_stream_peername(weft_stream *s, struct sockaddr *addr, socklen_t *len);
WEFT_API int weft_stream_sockname(weft_stream *s, struct sockaddr *addr, socklen_t *len);

/* weft_stream_fd — the descriptor (get_extra_info('socket')), for setsockopt and the
 * like; reading or writing it directly breaks the stream's buffering.
 * Returns: the descriptor, or -ESTALE / WEFT_ESTATE.
 * Suspends: never.
 * Errors: -ESTALE; WEFT_ESTATE. */
WEFT_API int weft_stream_fd(weft_stream *s);

/* weft_format_address — "127.0.0.1:8080", "[::1]:8080" or "/path" into buf (size
 * bytes, NUL-terminated, truncated if need be), for messages and logs.
 * Returns: buf.
 * Suspends: never.
 * Errors: none ("?" for an address family it does not know). */
WEFT_API char *weft_format_address(const struct sockaddr *addr, socklen_t len, char *buf, size_t size);

/* ======================================================================== */
/* Servers                                                                  */
/* ======================================================================== */

/* A connection's handler: runs in its own task, one per accepted connection. The
 * stream belongs to the server: when the handler returns, weft closes it (sending
 * what is buffered) and gives it up; the handler may close or abort it earlier. The
 * handler's return value is dropped (use weft_fail to have a failure reported). */
typedef void *(*weft_connection_fn)(weft_stream *s, void *arg);

typedef struct weft_server_options {
    weft_stream_options stream; /* for each accepted connection's stream */
    int backlog;                /* 0 = 100 (asyncio's) */
    int family;                 /* 0 = every family the host resolves to */
    int reuse_port;             /* nonzero: SO_REUSEPORT (several servers on one port) */
    int no_reuse_address;       /* nonzero: no SO_REUSEADDR (weft sets it, as asyncio) */
    int nagle;                  /* nonzero: keep Nagle's algorithm on accepted sockets */
    weft_spawn_options task;    /* for each connection's task (name, stack size, compact) */
    /* Non-NULL: serve TLS with this server context (weft_tls_server_context; asyncio's
     * ssl=). The server keeps it until it is given up; each connection's handshake
     * runs in its task, within the context's handshake timeout, before the handler,
     * which is not called for a connection whose handshake failed. */
    weft_tls_context *tls;
} weft_server_options;

/*
 * weft_start_server — listen on host:port and run handler(stream, arg) in a new task
 * for each connection (asyncio.start_server). host NULL or "" listens on every
 * address; a name listens on every address it resolves to; port 0 picks a free port
 * (weft_server_port tells it). SO_REUSEADDR is set; IPv6 sockets are IPv6-only, so
 * that "::" and "0.0.0.0" can both be bound.
 * Returns: the listening server (given up by weft_server_wait_closed), or NULL with
 *   weft_errcode() saying why.
 * Suspends: while resolving host (a numeric address or NULL does not suspend).
 * Errors: the resolver's (WEFT_ENONAME, ...); -EADDRINUSE; -EACCES (a port below
 *   1024); -EADDRNOTAVAIL; -EINVAL (NULL handler, port outside 0..65535, a client's
 *   TLS context in opts->tls); -EMFILE;
 *   -ENOMEM; -ECANCELED; WEFT_ENOTINLOOP.
 * On cancel: returns NULL with -ECANCELED; nothing listens.
 */
WEFT_API WEFT_WAIT weft_server *weft_start_server(weft_connection_fn handler, void *arg, const char *host,
                                                 int port, const weft_server_options *opts);

/* weft_start_unix_server — as weft_start_server, on a Unix-domain path ('@' first:
 * the abstract namespace). A stale socket file left by an earlier server is removed
 * first (asyncio does the same); any other file at path is an error.
 * Returns: the server, or NULL with weft_errcode() saying why.
 * Suspends: never.
 * Errors: -EADDRINUSE (path is some other file, or a live server's); -ENAMETOOLONG;
 *   -EACCES; -EINVAL (also a client's TLS context in opts->tls); -EMFILE; -ENOMEM;
 *   WEFT_ENOTINLOOP. */
WEFT_API weft_server *weft_start_unix_server(weft_connection_fn handler, void *arg, const char *path,
                                             const weft_server_options *opts);

/* weft_server_port — the TCP port the server listens on (its first socket's).
 * Returns: the port, or -ESTALE / WEFT_ESTATE / -ENOTSOCK (a Unix server).
 * Suspends: never.
 * Errors: as said. */
WEFT_API int weft_server_port(weft_server *srv);

/* weft_server_sockname — the address of the server's i-th listening socket.
 * Returns: 0, with *len set; -ENOENT when there is no socket i.
 * Suspends: never.
 * Errors: -ENOENT; -ESTALE; WEFT_ESTATE. */
WEFT_API int weft_server_sockname(weft_server *srv, int i, struct sockaddr *addr, socklen_t *len);

/* weft_server_close — stop accepting: the listening sockets are closed (a Unix
 * server's path is removed); connections already accepted go on (Server.close).
 * Returns: 0.
 * Suspends: never.
 * Errors: -ESTALE; WEFT_ESTATE; WEFT_ENOTINLOOP. */
WEFT_API int weft_server_close(weft_server *srv);

/* weft_server_close_clients — close every connection's stream gracefully: buffered
 * bytes are sent, then the socket is closed; handlers' reads see WEFT_ECLOSED
 * (Server.close_clients, asyncio 3.13).
 * Returns: the number of connections told.
 * Suspends: never.
 * Errors: -ESTALE; WEFT_ESTATE. */
WEFT_API int weft_server_close_clients(weft_server *srv);

/* weft_server_abort_clients — as close_clients, at once, dropping unsent bytes
 * (Server.abort_clients).
 * Returns: the number of connections aborted.
 * Suspends: never.
 * Errors: -ESTALE; WEFT_ESTATE. */
WEFT_API int weft_server_abort_clients(weft_server *srv);

/*
 * weft_server_wait_closed — wait until the server is closed and every connection's
 * handler has returned, then give up the handle (Server.wait_closed). Call
 * weft_server_close first, or another task will. Connections still open keep it
 * waiting for as long as their clients stay: to end them, call
 * weft_server_close_clients (graceful) or weft_server_abort_clients first, as
 * asyncio 3.13 does.
 * Returns: 0.
 * Suspends: until then.
 * Errors: -ESTALE; WEFT_ESTATE; -ECANCELED; WEFT_ENOTINLOOP.
 * On cancel: returns -ECANCELED; the handle stays valid and the server unchanged.
 */
WEFT_API WEFT_WAIT int weft_server_wait_closed(weft_server *srv);

/* weft_server_serve_forever — accept until the calling task is cancelled, then close
 * the server, abort its clients, wait for their handlers to return (the
 * cancellation set aside meanwhile, as asyncio's __aexit__ awaits wait_closed) and
 * give up the handle (Server.serve_forever inside `async with server`). Closed by
 * another task instead (weft_server_close), it returns 0 once every handler has
 * returned, the handle given up.
 * Returns: -ECANCELED (that is how it ends), or 0 as said.
 * Suspends: until cancelled.
 * Errors: -ESTALE; WEFT_ESTATE; WEFT_ENOTINLOOP.
 * On cancel: the normal end, as said. */
WEFT_API WEFT_WAIT int weft_server_serve_forever(weft_server *srv);

#ifdef __cplusplus
}
#endif

#endif
