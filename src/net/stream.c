/*
 * stream.c — weft_stream, asyncio's StreamReader and StreamWriter in one object: a
 * connected non-blocking descriptor (TCP, Unix socket, socketpair, pipe) with a
 * read buffer for the separator reads, a write buffer the loop flushes in the
 * background, drain's high and low water marks, and closing. Also the layer's
 * handle checks and its loop module, which closes what is left when a loop ends.
 *
 * How the descriptor is watched: the stream owns one watcher (io.h). It wants
 * POLL_IN only while a task waits to read and POLL_OUT only while bytes wait to be
 * sent, so an idle connection costs the kernel nothing but its registration, which
 * persists. A reader is woken by the watcher and does its own read(2): weft_stream_read
 * with nothing buffered reads straight into the caller's buffer (no copy), and the
 * buffer is used only by readexactly / readuntil / readline, which need to look
 * ahead. A write goes to the socket at once when nothing is queued before it; what
 * the socket does not take is copied into the write buffer and sent by the watcher
 * when the socket is writable, in order, with writev.
 *
 * Reading ahead without waiting: a read that filled the space it was given may have
 * left more in the socket, so the next read tries the socket first; one that came
 * back short emptied it, so the next read waits for readiness first instead of
 * spending a system call to learn EAGAIN.
 *
 * TLS (src/tls/, a layer above) is a transport inside the stream: once a handshake
 * has begun (weft__stream_tls_start), reads call the TLS layer's recv, which
 * decrypts what OpenSSL reads from the descriptor, and writes its send, which
 * encrypts; the ciphertext OpenSSL produces comes back through
 * weft__stream_raw_write into the same send-or-queue path as a plain write, so the
 * write buffer, drain, the watcher's flush and close are one code for both, and
 * OpenSSL never waits to write. A plain stream pays one test of s->tls per read
 * and write call.
 */
#include "net/net.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define DEFAULT_LIMIT (64 * 1024)
#define DEFAULT_HIGH (64 * 1024)
/* The read buffer's first size, and the least free space a fill reads into. */
#define READ_CHUNK (16 * 1024)

struct weft_stream {
    weft__net_obj obj;
    weft__watcher w;
    weft_loop *loop;
    weft__dlink link;            /* on the loop's list of live streams */
    struct weft_stream *next_free;

    bool is_socket;
    bool read_more;              /* the last read filled its space: try the socket first */
    bool eof;                    /* the peer closed its side (a read returned 0) */
    bool closing;                /* no more writes: write_eof, close, close_clients */
    bool close_when_flushed;     /* close the descriptor once the write buffer is empty */
    bool shut_when_flushed;      /* write_eof: shutdown(SHUT_WR) once flushed */
    bool given_up;               /* the user's handle is given up (close/abort done) */
    bool server_owned;           /* a server's connection: the server frees it */
    bool closed;                 /* the descriptor is closed (fd == -1) */
    bool sending_file;           /* a sendfile is under way: writes queue behind it */
    uint32_t busy;               /* tasks inside a call on s that may suspend: the
                                    record stays theirs until the last one leaves,
                                    even if another task gives the handle up */
    weft_task *reading;          /* the task inside a read call, waiting or not */
    int rerr;                    /* the read side's sticky error (-ECONNRESET, ...) */
    int werr;                    /* the write side's sticky error: unsent bytes are dropped */
    size_t partial;              /* weft_stream_partial */

    bool read_closed;            /* reads give WEFT_ECLOSED: close, close_clients */
    bool sendfile_waits;         /* a sendfile waits (among drainers) for POLL_OUT */
    weft_task *reader;           /* waiting for POLL_IN */
    weft__fifo drainers;         /* tasks in drain or sendfile, chained by their node */
    weft__fifo closers;          /* tasks in close or wait_closed, likewise */

    char *rb;                    /* read buffer: bytes [rstart, rend) unread */
    size_t rstart, rend, rcap;
    char *wb;                    /* write buffer: bytes [wstart, wend) unsent */
    size_t wstart, wend, wcap;

    size_t limit, high, low;

    void *tls;                   /* the TLS layer's connection, or NULL (plain) */
    const weft__tls_ops *tls_ops;
    bool tls_ready;              /* the handshake has finished */
    char *pre;                   /* bytes read before TLS began, for OpenSSL first */
    size_t pre_off, pre_len;
    char *held;                  /* plaintext other tasks wrote during a TLS sendfile,
                                    encrypted after the file's range */
    size_t held_len, held_cap;
};

static weft_stream *user_handle(weft_stream *s)
{
    return weft__net_handle(s->loop, &s->obj);
}

/* ------------------------------------------------------------------------ */
/* Handles                                                                  */
/* ------------------------------------------------------------------------ */

/* Decodes handle h into s, or returns the error from the enclosing function. */
#define STREAM_ARG(s, h, what)                                                 \
    int s##_err_;                                                              \
    weft_stream *s = weft__net_from((h), WEFT__NET_STREAM, (what), &s##_err_); \
    if (!s)                                                                    \
        return s##_err_;

/* ------------------------------------------------------------------------ */
/* Interest, waking and closing                                             */
/* ------------------------------------------------------------------------ */

static size_t wbuffered(const weft_stream *s)
{
    return s->wend - s->wstart;
}

static size_t rbuffered(const weft_stream *s)
{
    return s->rend - s->rstart;
}

/* Tells the loop what s waits for. Shrinking is queued, never refused. Asking
 * again once the registration was dropped (at a poll where nothing was wanted)
 * registers anew, which the kernel may refuse (ENOMEM, ENOSPC): nothing would
 * then wake the task that waits, so a caller that asks for more looks at the
 * error (the fault sweep found readers waiting for ever). */
static int update_interest(weft_stream *s)
{
    if (s->closed)
        return 0;
    unsigned want = (s->reader ? WEFT__POLL_IN : 0) | (wbuffered(s) || s->sendfile_waits ? WEFT__POLL_OUT : 0);
    return weft__watcher_want(&s->loop->io, &s->w, want);
}

static void wake_all(weft__fifo *list, int reason)
{
    weft__node *n;
    while ((n = weft__fifo_pop(list)) != NULL)
        weft__wake(WEFT__CONTAINER_OF(n, weft_task, node), reason);
}

/* Suspends the current task on `list` (s->drainers or s->closers) until woken;
 * returns the wake reason. */
static int wait_on(weft_stream *s, weft__fifo *list);

static void free_buffers(weft_stream *s)
{
    free(s->rb);
    free(s->wb);
    s->rb = s->wb = NULL;
    s->rstart = s->rend = s->rcap = 0;
    s->wstart = s->wend = s->wcap = 0;
    free(s->pre);
    s->pre = NULL;
    s->pre_off = s->pre_len = 0;
    free(s->held);
    s->held = NULL;
    s->held_len = s->held_cap = 0;
    if (s->tls) {
        s->tls_ops->free(s->tls);
        s->tls = NULL;
        s->tls_ops = NULL;
    }
}

/* Closes the descriptor (once): the watcher goes first, as io.h requires. Waiting
 * readers wake with `reason`, drainers with the write error or `reason`, closers
 * with 0 (their wait is over). */
static void close_fd(weft_stream *s, int reason)
{
    if (s->closed)
        return;
    weft__watcher_forget(&s->loop->io, &s->w);
    close(s->w.fd);
    s->w.fd = -1;
    s->closed = true;
    s->closing = true;
    if (s->reader) {
        weft_task *t = s->reader;
        s->reader = NULL;
        weft__wake(t, reason);
    }
    wake_all(&s->drainers, s->werr ? s->werr : reason);
    wake_all(&s->closers, 0);
}

/* The record goes back to the loop's free list with a new generation. */
static void stream_free(weft_stream *s)
{
    weft__net_loop *net = weft__net_state(s->loop);
    WEFT__ASSERT(s->closed && !s->reader && !s->drainers.head && !s->closers.head);
    weft__dlist_unlink(&net->streams, &s->link);
    free_buffers(s);
    weft__net_retire(&s->obj);
    /* Kept until the loop ends (net.h): stale handles to it must still find a
     * stream record, with another generation. */
    s->next_free = net->free_streams;
    net->free_streams = s;
}

/* Frees s once nothing holds it: its handle given up, its server done with it,
 * its descriptor closed, and no task still inside a call on it. */
static void maybe_free(weft_stream *s)
{
    if (s->given_up && !s->server_owned && s->closed && s->busy == 0)
        stream_free(s);
}

/* A task enters a call on s that may suspend; leave() when it returns. Another
 * task may give the handle up meanwhile: the record stays until the last leaves. */
static void enter(weft_stream *s)
{
    s->busy++;
}

static void leave(weft_stream *s)
{
    s->busy--;
    maybe_free(s);
}

/* The user gave the handle up (once: a second close or abort from another task
 * finds it given up): the record goes once nothing else holds it. */
static void give_up(weft_stream *s)
{
    if (s->given_up)
        return;
    s->given_up = true;
    weft__net_retire(&s->obj);
    maybe_free(s);
}

/* ------------------------------------------------------------------------ */
/* Writing to the descriptor                                                */
/* ------------------------------------------------------------------------ */

/* writev without SIGPIPE: sendmsg with MSG_NOSIGNAL for a socket; for a pipe, the
 * signal is blocked around the write and a SIGPIPE it raised is taken back, so a
 * reader that left is -EPIPE, never a killed process. */
static ssize_t send_iov(weft_stream *s, const struct iovec *iov, int count)
{
    if (s->is_socket) {
        /* One piece (the common case) by send, which skips sendmsg's copying in of a
         * message header and vector. */
        ssize_t n;
        if (count == 1) {
            n = send(s->w.fd, iov[0].iov_base, iov[0].iov_len, MSG_NOSIGNAL);
        } else {
            struct msghdr m = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)count};
            n = sendmsg(s->w.fd, &m, MSG_NOSIGNAL);
        }
        return n < 0 ? -errno : n;
    }
    sigset_t pipe_only, old;
    sigemptyset(&pipe_only);
    sigaddset(&pipe_only, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_only, &old);
    ssize_t n = writev(s->w.fd, iov, count);
    int e = errno;
    if (n < 0 && e == EPIPE && !sigismember(&old, SIGPIPE)) {
        sigset_t pending;
        if (sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE)) {
            struct timespec zero = {0, 0};
            while (sigtimedwait(&pipe_only, NULL, &zero) < 0 && errno == EINTR) {
            }
        }
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return n < 0 ? -e : n;
}

static int write_error(weft_stream *s, int e, const char *what)
{
    (void)s;
    if (e == -EPIPE || e == -ECONNRESET)
        return weft__set_errmsg(e, "%s: the peer closed the connection (%s); unsent bytes are lost", what,
                                strerror(-e));
    if (e == WEFT_ECLOSED)
        return weft__set_errmsg(e, "%s: the stream was aborted (weft_stream_abort, or the server's "
                                   "abort_clients); its unsent bytes were dropped",
                                what);
    return weft__set_errmsg(e, "%s: %s", what, weft_strerror(e));
}

/* The write side failed for good: unsent bytes are dropped, drainers told. */
static void fail_writes(weft_stream *s, int e)
{
    if (!s->werr)
        s->werr = e;
    s->wstart = s->wend = 0;
    wake_all(&s->drainers, e);
}

/* What the write buffer does once it is empty: shutdown for write_eof, close for
 * close and close_clients. */
static void after_flush(weft_stream *s)
{
    if (s->shut_when_flushed && !s->closed) {
        s->shut_when_flushed = false;
        /* Refused, the peer is never told the stream ended (it would wait for
         * more): the write side has failed, which the next drain or close says. */
        if (s->is_socket && shutdown(s->w.fd, SHUT_WR) != 0)
            fail_writes(s, -errno);
    }
    if (s->close_when_flushed) {
        close_fd(s, WEFT_ECLOSED);
        /* Closed from a callback, or by its server: nobody else will free it. */
        maybe_free(s);
    }
}

/* Sends as much of the write buffer as the socket takes. */
static void flush(weft_stream *s)
{
    if (s->sending_file && !s->tls)
        return; /* the file's range goes first; the sendfile flushes after it (a TLS
                   stream's file goes through the buffer itself: see tls_sendfile) */
    while (wbuffered(s) > 0) {
        struct iovec iov = {s->wb + s->wstart, wbuffered(s)};
        ssize_t n = send_iov(s, &iov, 1);
        if (n == -EINTR)
            continue;
        if (n == -EAGAIN || n == -EWOULDBLOCK)
            break;
        if (n < 0) {
            fail_writes(s, (int)n);
            /* A task waiting to read learns it now (read_some): the bytes lost may
             * be the ones the peer waits for before it says anything. */
            if (s->reader) {
                weft_task *t = s->reader;
                s->reader = NULL;
                weft__wake(t, 0);
            }
            break;
        }
        s->wstart += (size_t)n;
    }
    if (wbuffered(s) == 0)
        s->wstart = s->wend = 0;
    if (wbuffered(s) <= s->low)
        wake_all(&s->drainers, s->werr);
    if (wbuffered(s) == 0 || s->werr)
        after_flush(s);
    else
        (void)update_interest(s); /* shrinks, or bytes already wanted it */
}

/* Appends bytes to the write buffer. -ENOMEM leaves it as it was. */
static int wbuf_append(weft_stream *s, const struct iovec *iov, int count, size_t skip)
{
    size_t total = 0;
    for (int i = 0; i < count; i++)
        total += iov[i].iov_len;
    total -= skip;
    if (s->wstart > 0 && s->wend + total > s->wcap) {
        memmove(s->wb, s->wb + s->wstart, wbuffered(s));
        s->wend -= s->wstart;
        s->wstart = 0;
    }
    if (s->wend + total > s->wcap) {
        size_t cap = s->wcap ? s->wcap : READ_CHUNK;
        while (cap < s->wend + total)
            cap *= 2;
        char *wb = realloc(s->wb, cap);
        if (!wb)
            return -ENOMEM;
        s->wb = wb;
        s->wcap = cap;
    }
    for (int i = 0; i < count; i++) {
        size_t len = iov[i].iov_len;
        const char *p = iov[i].iov_base;
        if (skip >= len) {
            skip -= len;
            continue;
        }
        memcpy(s->wb + s->wend, p + skip, len - skip);
        s->wend += len - skip;
        skip = 0;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* The watcher                                                              */
/* ------------------------------------------------------------------------ */

static void stream_ready(weft__watcher *w, unsigned events)
{
    weft_stream *s = WEFT__CONTAINER_OF(w, weft_stream, w);
    if (s->reader && (events & (WEFT__POLL_IN | WEFT__POLL_ERR))) {
        weft_task *t = s->reader;
        s->reader = NULL;
        weft__wake(t, 0);
    }
    if (s->sendfile_waits && (events & (WEFT__POLL_OUT | WEFT__POLL_ERR))) {
        s->sendfile_waits = false;
        wake_all(&s->drainers, 0);
    }
    if (wbuffered(s) && (events & (WEFT__POLL_OUT | WEFT__POLL_ERR)))
        flush(s); /* may close s's descriptor: nothing below may need it */
    else
        (void)update_interest(s); /* shrinks, or bytes already wanted it */
}

/* ------------------------------------------------------------------------ */
/* Waiting                                                                  */
/* ------------------------------------------------------------------------ */

/* A waiting task is chained through its own node (free while it waits), as sync/'s
 * waiters are: nothing of a waiter may live on its stack, which may be a compact
 * task's and hold another task's frames while it waits. */
static void list_unwait(weft_task *self, int reason)
{
    (void)reason;
    weft__fifo_remove(self->wait_obj, &self->node);
}

/* weft_dump: the stream's descriptor and what is left to send. */
static void describe_stream(const weft_stream *s, char *buf, size_t size)
{
    snprintf(buf, size, "fd %d: %zu bytes to send%s%s", s->w.fd, s->wend - s->wstart, s->tls ? ", TLS" : "",
             s->closing ? ", closing" : "");
}

static void drain_describe(const weft_task *self, char *buf, size_t size)
{
    describe_stream(WEFT__CONTAINER_OF((const weft__fifo *)self->wait_obj, weft_stream, drainers), buf, size);
}

static void close_describe(const weft_task *self, char *buf, size_t size)
{
    describe_stream(WEFT__CONTAINER_OF((const weft__fifo *)self->wait_obj, weft_stream, closers), buf, size);
}

static const weft__wait_kind drain_wait = {"stream to drain", list_unwait, drain_describe};
static const weft__wait_kind close_wait = {"stream to close", list_unwait, close_describe};

static int wait_on(weft_stream *s, weft__fifo *list)
{
    weft_task *self = weft__current();
    weft__fifo_push(list, &self->node);
    return weft__wait(list == &s->drainers ? &drain_wait : &close_wait, list);
}

static void reader_unwait(weft_task *self, int reason)
{
    (void)reason;
    weft_stream *s = self->wait_obj;
    if (s->reader == self) {
        s->reader = NULL;
        (void)update_interest(s); /* shrinks, or bytes already wanted it */
    }
}

static void reader_describe(const weft_task *self, char *buf, size_t size)
{
    const weft_stream *s = self->wait_obj;
    snprintf(buf, size, "fd %d: %zu bytes buffered%s", s->w.fd, s->rend - s->rstart, s->tls ? ", TLS" : "");
}

static const weft__wait_kind reader_wait = {"stream read", reader_unwait, reader_describe};

/* Suspends the reading task until the descriptor is readable (or failed).
 * Returns the wake reason, or the refusal to watch the descriptor (the task did
 * not suspend), with the message set. */
static int wait_readable(weft_stream *s, const char *what)
{
    s->reader = weft__current();
    int rc = update_interest(s);
    if (rc != 0) {
        s->reader = NULL;
        return weft__set_errmsg(rc, "%s: cannot watch the socket: %s", what, weft_strerror(rc));
    }
    rc = weft__wait(&reader_wait, s);
    if (rc < 0 && rc != -ECANCELED)
        weft__set_errmsg(rc, "%s: %s", what,
                         rc == WEFT_ECLOSED ? "the stream was closed while the task read" : weft_strerror(rc));
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Reading from the descriptor                                              */
/* ------------------------------------------------------------------------ */

static int read_error(weft_stream *s, const char *what)
{
    if (s->rerr == -ECONNRESET)
        return weft__set_errmsg(s->rerr, "%s: the peer reset the connection", what);
    return weft__set_errmsg(s->rerr, "%s: %s", what, weft_strerror(s->rerr));
}

/* A read with nothing to take from a stream whose writes failed (read_some). */
static ssize_t stalled_error(weft_stream *s, const char *what)
{
    return weft__set_errmsg(s->werr, "%s: nothing to read, and the stream's writes failed (%s): the peer may be "
                                     "waiting for bytes that were lost, so none may ever come",
                            what, weft_strerror(s->werr));
}

/*
 * One read(2) into [p, p + n), waiting for readiness as needed. Returns the
 * count (0 at end of file), or a negative error with the message set. The caller
 * holds the reader's place (s->reader is free).
 */
static ssize_t read_some(weft_stream *s, char *p, size_t n, const char *what)
{
    for (;;) {
        if (s->rerr)
            return read_error(s, what);
        if (s->eof)
            return 0;
        if (s->closed || s->read_closed)
            return weft__set_errmsg(WEFT_ECLOSED, "%s: the stream was closed", what);
        if (!s->read_more && s->werr) {
            /* The writes failed: the peer may be waiting for the bytes that were
             * lost, and then nothing would ever come. What has come is still read
             * (one try); with nothing there, the read ends with the write's error
             * (asyncio's transport closes at a write error, and its reader raises). */
            s->read_more = true;
            continue;
        }
        if (!s->read_more) {
            int rc = wait_readable(s, what);
            if (rc == -ECANCELED)
                return weft__cancelled_errmsg(weft__current());
            if (rc < 0)
                return rc;
            /* Readable. Another task may have closed the stream between the wake
             * and now: the checks above come first. */
            s->read_more = true;
            continue;
        }
        if (s->tls) {
            bool more = false;
            ssize_t got = s->tls_ops->recv(s->tls, p, n, &more);
            if (got > 0) {
                s->read_more = more;
                return got;
            }
            if (got == 0) {
                s->eof = true;
                return 0;
            }
            if (got == -EAGAIN) {
                s->read_more = false;
                if (s->werr)
                    return stalled_error(s, what);
                continue;
            }
            /* The TLS layer said why, in OpenSSL's words; later reads say it again. */
            s->rerr = (int)got;
            return got;
        }
        ssize_t got = read(s->w.fd, p, n);
        if (got > 0) {
            s->read_more = (size_t)got == n;
            return got;
        }
        if (got == 0) {
            s->eof = true;
            return 0;
        }
        int e = errno;
        if (e == EINTR)
            continue;
        if (e == EAGAIN || e == EWOULDBLOCK) {
            s->read_more = false;
            if (s->werr)
                return stalled_error(s, what);
            continue;
        }
        s->rerr = -e;
        return read_error(s, what);
    }
}

/* Room for at least `need` more bytes at the end of the read buffer. */
static int rbuf_reserve(weft_stream *s, size_t need)
{
    if (s->rstart == s->rend)
        s->rstart = s->rend = 0;
    if (s->rcap - s->rend >= need)
        return 0;
    if (s->rstart > 0) {
        memmove(s->rb, s->rb + s->rstart, rbuffered(s));
        s->rend -= s->rstart;
        s->rstart = 0;
        if (s->rcap - s->rend >= need)
            return 0;
    }
    size_t cap = s->rcap ? s->rcap : READ_CHUNK;
    while (cap - s->rend < need)
        cap *= 2;
    char *rb = realloc(s->rb, cap);
    if (!rb)
        return -ENOMEM;
    s->rb = rb;
    s->rcap = cap;
    return 0;
}

/* Reads more into the buffer. Returns bytes added, 0 at end of file, or an error. */
static ssize_t fill(weft_stream *s, const char *what)
{
    if (rbuf_reserve(s, READ_CHUNK / 4) != 0)
        return weft__set_errmsg(-ENOMEM, "%s: no memory for the read buffer", what);
    ssize_t got = read_some(s, s->rb + s->rend, s->rcap - s->rend, what);
    if (got > 0)
        s->rend += (size_t)got;
    return got;
}

/* Claims the reader's place: one reading task at a time. */
static int begin_read(weft_stream *s, const char *what)
{
    if (WEFT__UNLIKELY(!weft__current()))
        return weft__set_errmsg(WEFT_ENOTINLOOP, "%s must be called from a task (it may suspend)", what);
    /* Held for the whole call, waiting or not: a reader woken but not yet run
     * still owns the stream's reading. */
    if (WEFT__UNLIKELY(s->reading))
        return weft__set_errmsg(-EBUSY, "%s: task %s is already reading this stream; one task reads a stream "
                                        "at a time",
                                what, weft_task_name(s->reading));
#ifdef WEFT_ASSERTS
    /* Debug and sanitizer builds: the bytes an earlier readuntil or readline handed
     * out (and any read consumed) are overwritten now, so a pointer kept past the
     * next read shows garbage at once instead of data that looks right by luck. */
    if (s->rstart > 0)
        memset(s->rb, 0xDB, s->rstart);
#endif
    s->reading = weft__current();
    enter(s);
    return 0;
}

/* The read call is over (s may be freed here if its handle was given up meanwhile). */
static ssize_t end_read(weft_stream *s, ssize_t result)
{
    s->reading = NULL;
    leave(s);
    return result;
}

/* ------------------------------------------------------------------------ */
/* Reading, public                                                          */
/* ------------------------------------------------------------------------ */

static ssize_t stream_read(weft_stream *s, void *buf, size_t n)
{
    if (n == 0)
        return 0;
    if (!buf)
        return weft__set_errmsg(-EINVAL, "weft_stream_read: buf is NULL");
    size_t have = rbuffered(s);
    if (have > 0) {
        size_t take = have < n ? have : n;
        memcpy(buf, s->rb + s->rstart, take);
        s->rstart += take;
        return (ssize_t)take;
    }
    /* Nothing buffered: straight into the caller's buffer. */
    return read_some(s, buf, n, "weft_stream_read");
}

ssize_t weft_stream_read(weft_stream *h, void *buf, size_t n)
{
    STREAM_ARG(s, h, "weft_stream_read");
    int rc = begin_read(s, "weft_stream_read");
    if (rc)
        return rc;
    return end_read(s, stream_read(s, buf, n));
}

static ssize_t stream_readexactly(weft_stream *s, void *buf, size_t n)
{
    if (!buf && n)
        return weft__set_errmsg(-EINVAL, "weft_stream_readexactly: buf is NULL");
    if (n == 0)
        return 0; /* and no arithmetic on a buffer not made yet */
    /* Everything goes through the buffer, so that a cancelled or failed call
     * consumes nothing: the bytes stay for the next read. */
    while (rbuffered(s) < n) {
        size_t missing = n - rbuffered(s);
        if (rbuf_reserve(s, missing < READ_CHUNK ? READ_CHUNK / 4 : missing) != 0)
            return weft__set_errmsg(-ENOMEM, "weft_stream_readexactly: no memory to buffer %zu bytes", n);
        ssize_t got = read_some(s, s->rb + s->rend, s->rcap - s->rend, "weft_stream_readexactly");
        if (got < 0)
            return got;
        if (got == 0) {
            size_t have = rbuffered(s);
            memcpy(buf, s->rb + s->rstart, have);
            s->rstart = s->rend = 0;
            s->partial = have;
            return weft__set_errmsg(WEFT_EINCOMPLETE, "weft_stream_readexactly: the stream ended after %zu of "
                                                      "%zu bytes (they are in the buffer given)",
                                    have, n);
        }
        s->rend += (size_t)got;
    }
    memcpy(buf, s->rb + s->rstart, n);
    s->rstart += n;
    return (ssize_t)n;
}

ssize_t weft_stream_readexactly(weft_stream *h, void *buf, size_t n)
{
    STREAM_ARG(s, h, "weft_stream_readexactly");
    int rc = begin_read(s, "weft_stream_readexactly");
    if (rc)
        return rc;
    return end_read(s, stream_readexactly(s, buf, n));
}

/*
 * readuntil and readline: the bytes through the separator, with asyncio's limit.
 * At end of file without the separator, readuntil (eof_is_line false) fails with
 * WEFT_EINCOMPLETE, and readline takes the last bytes as its line (0 when none).
 */
static ssize_t read_until(weft_stream *s, const void *sep, size_t seplen, const char **data, bool eof_is_line,
                          const char *what)
{
    if (!sep || seplen == 0 || !data)
        return weft__set_errmsg(-EINVAL, "%s: %s", what, !data ? "data is NULL" : "the separator is empty");
    size_t from = 0; /* where the next search starts, relative to rstart */
    for (;;) {
        size_t have = rbuffered(s);
        /* Nothing buffered may mean no buffer yet: no arithmetic on NULL. */
        const char *base = have ? s->rb + s->rstart : NULL;
        const char *at = have >= seplen ? memmem(base + from, have - from, sep, seplen) : NULL;
        if (at) {
            size_t isep = (size_t)(at - base);
            if (isep > s->limit) {
                s->partial = isep;
                return weft__set_errmsg(WEFT_ELIMIT, "%s: the separator was found %zu bytes in, beyond the "
                                                     "stream's limit of %zu bytes; nothing was consumed",
                                        what, isep, s->limit);
            }
            size_t len = isep + seplen;
            *data = base;
            s->rstart += len;
            return (ssize_t)len;
        }
        from = have + 1 > seplen ? have + 1 - seplen : 0;
        if (from > s->limit) {
            s->partial = from;
            return weft__set_errmsg(WEFT_ELIMIT, "%s: %zu bytes buffered without the separator, more than the "
                                                 "stream's limit of %zu bytes; nothing was consumed",
                                    what, have, s->limit);
        }
        ssize_t got = fill(s, what);
        if (got < 0)
            return got;
        if (got == 0) {
            have = rbuffered(s);
            *data = have ? s->rb + s->rstart : "";
            s->rstart = s->rend = 0;
            s->partial = have;
            if (eof_is_line)
                return (ssize_t)have;
            return weft__set_errmsg(WEFT_EINCOMPLETE, "%s: the stream ended after %zu bytes without the separator",
                                    what, have);
        }
    }
}

ssize_t weft_stream_readuntil(weft_stream *h, const void *sep, size_t seplen, const char **data)
{
    STREAM_ARG(s, h, "weft_stream_readuntil");
    int rc = begin_read(s, "weft_stream_readuntil");
    if (rc)
        return rc;
    return end_read(s, read_until(s, sep, seplen, data, false, "weft_stream_readuntil"));
}

ssize_t weft_stream_readline(weft_stream *h, const char **data)
{
    STREAM_ARG(s, h, "weft_stream_readline");
    int rc = begin_read(s, "weft_stream_readline");
    if (rc)
        return rc;
    /* asyncio's readline: at end of file the last bytes without "\n", then empty. */
    return end_read(s, read_until(s, "\n", 1, data, true, "weft_stream_readline"));
}

static ssize_t stream_read_to_eof(weft_stream *s, char **out)
{
    if (!out)
        return weft__set_errmsg(-EINVAL, "weft_stream_read_to_eof: out is NULL");
    for (;;) {
        ssize_t got = fill(s, "weft_stream_read_to_eof");
        if (got < 0)
            return got;
        if (got == 0)
            break;
    }
    size_t have = rbuffered(s);
    char *p = malloc(have + 1);
    if (!p)
        return weft__set_errmsg(-ENOMEM, "weft_stream_read_to_eof: no memory for %zu bytes (they stay buffered)",
                                have);
    memcpy(p, s->rb + s->rstart, have);
    p[have] = '\0';
    s->rstart = s->rend = 0;
    *out = p;
    return (ssize_t)have;
}

ssize_t weft_stream_read_to_eof(weft_stream *h, char **out)
{
    STREAM_ARG(s, h, "weft_stream_read_to_eof");
    int rc = begin_read(s, "weft_stream_read_to_eof");
    if (rc)
        return rc;
    return end_read(s, stream_read_to_eof(s, out));
}

size_t weft_stream_partial(weft_stream *h)
{
    int err;
    weft_stream *s = weft__net_from(h, WEFT__NET_STREAM, "weft_stream_partial", &err);
    return s ? s->partial : 0;
}

bool weft_stream_at_eof(weft_stream *h)
{
    int err;
    weft_stream *s = weft__net_from(h, WEFT__NET_STREAM, "weft_stream_at_eof", &err);
    return s && s->eof && rbuffered(s) == 0;
}

/* ------------------------------------------------------------------------ */
/* Writing, public                                                          */
/* ------------------------------------------------------------------------ */

/* Sends total bytes of iov to the descriptor, queueing what it does not take. */
static inline int send_or_queue(weft_stream *s, const struct iovec *iov, int count, size_t total,
                                const char *what)
{
    size_t sent = 0;
    if (wbuffered(s) == 0 && !s->sending_file) {
        /* Nothing queued before (nor a file going out): straight to the socket. */
        for (;;) {
            ssize_t n = send_iov(s, iov, count > IOV_MAX ? IOV_MAX : count);
            if (n == -EINTR)
                continue;
            if (n == -EAGAIN || n == -EWOULDBLOCK)
                break;
            if (n < 0) {
                fail_writes(s, (int)n);
                return write_error(s, (int)n, what);
            }
            sent = (size_t)n;
            break;
        }
        if (sent == total)
            return 0;
    }
    if (wbuf_append(s, iov, count, sent) != 0) {
        if (sent > 0) {
            /* Part went out: the stream can no longer keep its order. */
            fail_writes(s, -ENOMEM);
        }
        return weft__set_errmsg(-ENOMEM, "%s: no memory to queue %zu bytes%s", what, total - sent,
                                sent ? " (the stream is broken: part of the write was sent)" : "");
    }
    int rc = update_interest(s);
    if (rc != 0) {
        /* Nothing would send the queued bytes. Refused only when nothing was
         * watched, so nothing was queued before: they are this write's. */
        if (sent > 0)
            fail_writes(s, rc);
        else
            s->wstart = s->wend = 0;
        return weft__set_errmsg(rc, "%s: cannot watch the socket to send %zu queued bytes: %s%s", what, total - sent,
                                weft_strerror(rc), sent ? " (the stream is broken: part of the write was sent)" : "");
    }
    return 0;
}

/* Encrypts through the TLS layer, whose ciphertext comes back to send_or_queue
 * (weft__stream_raw_write). */
static int tls_write(weft_stream *s, const struct iovec *iov, int count, const char *what)
{
    if (!s->tls_ready)
        return weft__set_errmsg(WEFT_ESTATE, "%s: the stream's TLS handshake has not finished (weft_start_tls "
                                             "returns once it has)",
                                what);
    int rc = s->tls_ops->send(s->tls, iov, count);
    if (rc < 0) {
        if (!s->werr)
            fail_writes(s, rc);
        return write_error(s, rc, what);
    }
    return 0;
}

/* Keeps another task's write during a TLS sendfile, to encrypt after the file's range
 * (tls_sendfile, or a close that cuts it short): the file's bytes go first, as on a
 * plain stream. */
static int hold(weft_stream *s, const struct iovec *iov, int count, size_t total, const char *what)
{
    if (total > s->held_cap - s->held_len) {
        size_t cap = s->held_cap ? s->held_cap : 4096;
        while (cap - s->held_len < total)
            cap *= 2;
        char *p = realloc(s->held, cap);
        if (!p)
            return weft__set_errmsg(-ENOMEM, "%s: no memory to hold %zu bytes behind a sendfile", what, total);
        s->held = p;
        s->held_cap = cap;
    }
    for (int i = 0; i < count; i++) {
        memcpy(s->held + s->held_len, iov[i].iov_base, iov[i].iov_len);
        s->held_len += iov[i].iov_len;
    }
    return 0;
}

/* Encrypts what hold() kept, in order; the hold is over. */
static void release_held(weft_stream *s)
{
    if (s->held_len > 0 && !s->werr && !s->closed) {
        struct iovec iov = {s->held, s->held_len};
        (void)tls_write(s, &iov, 1, "weft_stream_write"); /* a failure is the write side's sticky error */
    }
    free(s->held);
    s->held = NULL;
    s->held_len = s->held_cap = 0;
}

static int write_iov(weft_stream *s, const struct iovec *iov, int count, const char *what)
{
    if (s->werr)
        return write_error(s, s->werr, what);
    if (s->closing)
        return weft__set_errmsg(WEFT_ECLOSED, "%s: the stream is closing (write_eof, close or the server's "
                                              "close_clients came first)",
                                what);
    size_t total = 0;
    for (int i = 0; i < count; i++)
        total += iov[i].iov_len;
    if (total == 0)
        return 0;
    if (WEFT__UNLIKELY(s->tls != NULL))
        return s->sending_file ? hold(s, iov, count, total, what) : tls_write(s, iov, count, what);
    return send_or_queue(s, iov, count, total, what);
}

/* ------------------------------------------------------------------------ */
/* For the TLS layer                                                        */
/* ------------------------------------------------------------------------ */

int weft__stream_raw_write(weft_stream *s, const void *p, size_t n)
{
    if (s->werr)
        return s->werr;
    if (s->closed)
        return WEFT_ECLOSED;
    struct iovec iov = {(void *)p, n};
    int rc = send_or_queue(s, &iov, 1, n, "TLS");
    return rc < 0 ? rc : 0;
}

ssize_t weft__stream_raw_read(weft_stream *s, void *p, size_t n, bool *full)
{
    if (s->pre) {
        size_t take = s->pre_len - s->pre_off < n ? s->pre_len - s->pre_off : n;
        memcpy(p, s->pre + s->pre_off, take);
        s->pre_off += take;
        if (s->pre_off == s->pre_len) {
            free(s->pre);
            s->pre = NULL;
            s->pre_off = s->pre_len = 0;
        }
        *full = true; /* the descriptor was not asked: it may hold more */
        return (ssize_t)take;
    }
    for (;;) {
        ssize_t got = read(s->w.fd, p, n);
        if (got >= 0) {
            *full = (size_t)got == n;
            return got;
        }
        if (errno != EINTR)
            return -errno;
    }
}

int weft__stream_fd(weft_stream *s)
{
    return s->w.fd;
}

void *weft__stream_tls(weft_stream *s)
{
    return s->tls_ready ? s->tls : NULL;
}

/* Unwinds a handshake that failed: the alert OpenSSL queued goes out if the socket
 * takes it now, then the connection is closed (readers and writers get `err`). */
static void tls_failed(weft_stream *s, int err)
{
    if (!s->closed && wbuffered(s) > 0 && !s->werr)
        flush(s);
    s->wstart = s->wend = 0;
    if (!s->werr)
        s->werr = err;
    if (!s->rerr)
        s->rerr = err;
    close_fd(s, err);
}

/* Refuses a TLS start before it began: the connection is freed, s unchanged. */
static int tls_refuse(const weft__tls_ops *ops, void *tls, int rc)
{
    ops->free(tls);
    return rc;
}

int weft__stream_tls_start(weft_stream *s, const weft__tls_ops *ops, void *tls, const char *what)
{
    if (s->tls)
        return tls_refuse(ops, tls, weft__set_errmsg(WEFT_ESTATE, "%s: the stream already speaks TLS", what));
    if (s->closing || s->closed || s->werr || s->rerr || s->eof)
        return tls_refuse(ops, tls,
                          weft__set_errmsg(WEFT_ECLOSED, "%s: the stream is %s", what,
                                           s->eof ? "at end of file (the peer closed its side)"
                                                  : "closing or failed"));
    if (s->sending_file)
        return tls_refuse(ops, tls, weft__set_errmsg(-EBUSY, "%s: a sendfile is under way on the stream", what));
    int rc = begin_read(s, what);
    if (rc)
        return tls_refuse(ops, tls, rc);
    /* Bytes read ahead as plain text are the peer's first TLS bytes: OpenSSL reads them
     * first (weft__stream_raw_read). */
    if (rbuffered(s) > 0) {
        s->pre = malloc(rbuffered(s));
        if (!s->pre) {
            rc = weft__set_errmsg(-ENOMEM, "%s: no memory to keep %zu bytes read ahead", what, rbuffered(s));
            end_read(s, 0);
            return tls_refuse(ops, tls, rc);
        }
        memcpy(s->pre, s->rb + s->rstart, rbuffered(s));
        s->pre_len = rbuffered(s);
        s->pre_off = 0;
        s->rstart = s->rend = 0;
    }
    s->tls = tls;
    s->tls_ops = ops;
    s->read_more = true;
    for (;;) {
        if (s->closed || s->read_closed) {
            rc = weft__set_errmsg(WEFT_ECLOSED, "%s: the stream was closed during the TLS handshake", what);
            break;
        }
        if (s->read_more) {
            rc = ops->handshake(tls);
            if (rc == 0)
                break;
            if (rc != -EAGAIN) {
                tls_failed(s, rc);
                break;
            }
            s->read_more = false;
            if (s->werr) {
                /* As in read_some: bytes of the handshake could not be sent (the TLS
                 * layer goes on past a peer that hung up, to read its alert), nothing
                 * has come, and the peer may be waiting for what was lost. */
                rc = weft__set_errmsg(s->werr, "%s: the TLS handshake cannot go on: its bytes could not be sent "
                                               "(%s), and nothing came",
                                      what, weft_strerror(s->werr));
                tls_failed(s, rc);
                break;
            }
            continue;
        }
        rc = wait_readable(s, what);
        if (rc == -ECANCELED) {
            rc = weft__cancelled_errmsg(weft__current());
            break;
        }
        if (rc < 0)
            break;
        s->read_more = true;
    }
    if (rc == 0) {
        s->tls_ready = true;
        s->read_more = true; /* OpenSSL may hold application data that came with the handshake */
    } else if (!s->closed) {
        tls_failed(s, rc == -ECANCELED ? WEFT_ECLOSED : rc);
    }
    end_read(s, 0);
    return rc;
}

int weft_stream_write(weft_stream *h, const void *buf, size_t n)
{
    STREAM_ARG(s, h, "weft_stream_write");
    if (!buf && n)
        return weft__set_errmsg(-EINVAL, "weft_stream_write: buf is NULL");
    struct iovec iov = {(void *)buf, n};
    return write_iov(s, &iov, 1, "weft_stream_write");
}

int weft_stream_writev(weft_stream *h, const struct iovec *iov, int count)
{
    STREAM_ARG(s, h, "weft_stream_writev");
    if (count < 0 || (count > 0 && !iov))
        return weft__set_errmsg(-EINVAL, "weft_stream_writev: %s", count < 0 ? "negative count" : "iov is NULL");
    return write_iov(s, iov, count, "weft_stream_writev");
}

int weft_stream_drain(weft_stream *h)
{
    STREAM_ARG(s, h, "weft_stream_drain");
    if (s->werr)
        return write_error(s, s->werr, "weft_stream_drain");
    if (wbuffered(s) <= s->high)
        return 0;
    if (!weft__current())
        return weft__set_errmsg(WEFT_ENOTINLOOP, "weft_stream_drain must be called from a task (it may suspend)");
    enter(s);
    int rc = wait_on(s, &s->drainers);
    if (rc == -ECANCELED)
        rc = weft__cancelled_errmsg(weft__current());
    else if (rc < 0)
        rc = write_error(s, rc, "weft_stream_drain");
    leave(s);
    return rc;
}

int weft_stream_set_write_buffer_limits(weft_stream *h, size_t high, size_t low)
{
    STREAM_ARG(s, h, "weft_stream_set_write_buffer_limits");
    high = high ? high : DEFAULT_HIGH;
    low = low ? low : high / 4;
    if (low > high)
        return weft__set_errmsg(-EINVAL, "weft_stream_set_write_buffer_limits: low (%zu) is above high (%zu)", low,
                                high);
    s->high = high;
    s->low = low;
    if (wbuffered(s) <= s->low)
        wake_all(&s->drainers, 0);
    return 0;
}

size_t weft_stream_write_buffer_size(weft_stream *h)
{
    int err;
    weft_stream *s = weft__net_from(h, WEFT__NET_STREAM, "weft_stream_write_buffer_size", &err);
    return s ? wbuffered(s) : 0;
}

int weft_stream_write_eof(weft_stream *h)
{
    STREAM_ARG(s, h, "weft_stream_write_eof");
    if (!s->is_socket)
        return weft__set_errmsg(-ENOTSUP, "weft_stream_write_eof: only a socket can close one direction; close "
                                          "the stream instead");
    if (s->tls)
        return weft__set_errmsg(-ENOTSUP, "weft_stream_write_eof: TLS cannot close one direction (asyncio's SSL "
                                          "transport cannot either); close the stream instead");
    if (s->closing)
        return 0;
    s->closing = true;
    if (wbuffered(s) == 0 && !s->sending_file) {
        /* A refusal is the caller's to know: the peer was not told, and a reader
         * waiting for its answer to the end of file would wait for ever. */
        if (!s->closed && shutdown(s->w.fd, SHUT_WR) != 0) {
            int e = errno;
            return weft__set_errmsg(-e, "weft_stream_write_eof: shutdown: %s; the peer was not told the stream "
                                        "ended (close the stream)",
                                    strerror(e));
        }
    } else {
        s->shut_when_flushed = true;
    }
    return 0;
}

static ssize_t stream_sendfile(weft_stream *s, int file_fd, off_t offset, size_t count)
{
    /* What was written before goes first. */
    while (wbuffered(s) > 0 && !s->werr && !s->closed) {
        int rc = wait_on(s, &s->drainers);
        if (rc == -ECANCELED)
            return weft__cancelled_errmsg(weft__current());
        if (rc < 0)
            break;
        if (wbuffered(s) > 0)
            flush(s);
    }
    if (s->werr)
        return write_error(s, s->werr, "weft_stream_sendfile");
    if (s->closed)
        return weft__set_errmsg(WEFT_ECLOSED, "weft_stream_sendfile: the stream was closed");
    /* Writes made while the file goes out queue behind it. */
    s->sending_file = true;
    size_t done = 0;
    while (done < count) {
        off_t off = offset + (off_t)done;
        ssize_t n = sendfile(s->w.fd, file_fd, &off, count - done);
        if (n > 0) {
            done += (size_t)n;
            continue;
        }
        if (n == 0)
            break; /* the file ended */
        int e = errno;
        if (e == EINTR)
            continue;
        if (e == EAGAIN) {
            /* Wait for room, among the drainers, woken when the socket is writable. */
            s->sendfile_waits = true;
            int rc = update_interest(s);
            if (rc != 0) {
                s->sendfile_waits = false;
                return weft__set_errmsg(rc, "weft_stream_sendfile: cannot watch the socket: %s", weft_strerror(rc));
            }
            rc = wait_on(s, &s->drainers);
            if (rc == -ECANCELED)
                return weft__cancelled_errmsg(weft__current());
            if (rc < 0)
                return write_error(s, rc, "weft_stream_sendfile");
            if (s->closed) /* aborted by another task while this one waited */
                return weft__set_errmsg(WEFT_ECLOSED, "weft_stream_sendfile: the stream was closed after %zu of "
                                                      "%zu bytes", done, count);
            continue;
        }
        if (e == EPIPE || e == ECONNRESET) {
            fail_writes(s, -e);
            return write_error(s, -e, "weft_stream_sendfile");
        }
        return weft__set_errmsg(-e, "weft_stream_sendfile: %s", strerror(e));
    }
    return (ssize_t)done;
}

/* How much of a file a TLS sendfile reads and encrypts at a time. */
#define TLS_FILE_CHUNK (64 * 1024)

/* A TLS stream's sendfile (asyncio's fallback for SSL transports): the kernel cannot
 * encrypt, so the file is read here a chunk at a time and written through TLS,
 * drained between chunks so that no more than a chunk and the high-water mark are
 * held. The reads are pread(2) on the loop's thread, where sendfile(2) itself reads
 * the file on a plain stream: from the page cache they take microseconds, and a
 * file on a slow disk holds the loop in both. */
static ssize_t tls_sendfile(weft_stream *s, int file_fd, off_t offset, size_t count)
{
    if (!s->tls_ready)
        return weft__set_errmsg(WEFT_ESTATE, "weft_stream_sendfile: the stream's TLS handshake has not finished "
                                             "(weft_start_tls returns once it has)");
    char *buf = malloc(count < TLS_FILE_CHUNK ? (count ? count : 1) : TLS_FILE_CHUNK);
    if (!buf)
        return weft__set_errmsg(-ENOMEM, "weft_stream_sendfile: no memory for a %d KiB chunk of the file",
                                TLS_FILE_CHUNK / 1024);
    s->sending_file = true;
    size_t done = 0;
    ssize_t rc = 0;
    while (done < count) {
        if (s->closing || s->closed) {
            rc = weft__set_errmsg(WEFT_ECLOSED, "weft_stream_sendfile: the stream was closed after %zu of %zu bytes",
                                  done, count);
            break;
        }
        size_t want = count - done < TLS_FILE_CHUNK ? count - done : TLS_FILE_CHUNK;
        ssize_t n = pread(file_fd, buf, want, offset + (off_t)done);
        if (n < 0) {
            int e = errno;
            if (e == EINTR)
                continue;
            rc = weft__set_errmsg(-e, "weft_stream_sendfile: reading the file at offset %lld: %s",
                                  (long long)(offset + (off_t)done), strerror(e));
            break;
        }
        if (n == 0)
            break; /* the file ended */
        struct iovec iov = {buf, (size_t)n};
        int w = tls_write(s, &iov, 1, "weft_stream_sendfile");
        if (w < 0) {
            rc = w;
            break;
        }
        done += (size_t)n;
        if (wbuffered(s) > s->high) {
            w = wait_on(s, &s->drainers);
            if (w == -ECANCELED) {
                rc = weft__cancelled_errmsg(weft__current());
                break;
            }
            if (w < 0) {
                rc = write_error(s, w, "weft_stream_sendfile");
                break;
            }
        }
    }
    free(buf);
    s->sending_file = false;
    release_held(s);
    return rc < 0 ? rc : (ssize_t)done;
}

ssize_t weft_stream_sendfile(weft_stream *h, int file_fd, off_t offset, size_t count)
{
    STREAM_ARG(s, h, "weft_stream_sendfile");
    if (!weft__current())
        return weft__set_errmsg(WEFT_ENOTINLOOP, "weft_stream_sendfile must be called from a task");
    if (s->closing)
        return weft__set_errmsg(WEFT_ECLOSED, "weft_stream_sendfile: the stream is closing");
    if (s->sending_file)
        return weft__set_errmsg(-EBUSY, "weft_stream_sendfile: another task is sending a file on this stream");
    enter(s);
    if (s->tls) {
        ssize_t rc = tls_sendfile(s, file_fd, offset, count);
        leave(s);
        return rc;
    }
    ssize_t rc = stream_sendfile(s, file_fd, offset, count);
    if (s->sending_file) {
        s->sending_file = false;
        if (!s->closed)
            flush(s); /* what other tasks wrote meanwhile, and a write_eof made meanwhile */
    }
    leave(s);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Ending                                                                   */
/* ------------------------------------------------------------------------ */

/* Wakes a task reading s: the stream is closing under it. */
static void stop_reader(weft_stream *s)
{
    s->read_closed = true;
    if (s->reader) {
        weft_task *t = s->reader;
        s->reader = NULL;
        (void)update_interest(s); /* shrinks, or bytes already wanted it */
        weft__wake(t, WEFT_ECLOSED);
    }
}

/* A TLS stream that ends in order tells its peer so (close_notify, sent once): the
 * alert goes out after the bytes buffered before it. */
static void tls_close_notify(weft_stream *s)
{
    if (s->tls && s->tls_ready && !s->closed && !s->werr && !s->rerr) {
        release_held(s); /* writes made during a sendfile this close cuts short */
        s->tls_ops->close_notify(s->tls);
    }
}

static void abort_now(weft_stream *s)
{
    /* A close waiting to send these bytes must not report success. */
    if (wbuffered(s) > 0 && !s->werr)
        s->werr = WEFT_ECLOSED;
    s->wstart = s->wend = 0;
    if (!s->closed && s->is_socket) {
        /* A reset, not an orderly end: the peer learns the data was dropped. */
        struct linger lg = {1, 0};
        setsockopt(s->w.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    close_fd(s, WEFT_ECLOSED);
}

int weft_stream_close(weft_stream *h)
{
    STREAM_ARG(s, h, "weft_stream_close");
    enter(s);
    tls_close_notify(s);
    s->closing = true;
    stop_reader(s);
    int rc = 0;
    if (!s->closed && wbuffered(s) > 0 && !s->werr) {
        s->close_when_flushed = true;
        (void)update_interest(s); /* shrinks, or bytes already wanted it */
        if (weft__current()) {
            /* Another task may close or abort s meanwhile: this one still holds the
             * record (enter), and both give the handle up once. */
            int w = wait_on(s, &s->closers);
            if (w == -ECANCELED) {
                rc = weft__cancelled_errmsg(weft__current());
                abort_now(s);
            }
        }
    }
    if (rc == 0 && s->werr)
        rc = write_error(s, s->werr, "weft_stream_close");
    if (!s->closed && (wbuffered(s) == 0 || s->werr))
        close_fd(s, WEFT_ECLOSED);
    /* From a callback with bytes queued, nobody can wait: the loop finishes the
     * flush and the close, then frees the record (after_flush). */
    give_up(s);
    leave(s);
    return rc;
}

int weft_stream_abort(weft_stream *h)
{
    STREAM_ARG(s, h, "weft_stream_abort");
    abort_now(s);
    give_up(s);
    return 0;
}

bool weft_stream_is_closing(weft_stream *h)
{
    int err;
    weft_stream *s = weft__net_from(h, WEFT__NET_STREAM, "weft_stream_is_closing", &err);
    return !s || s->closing || s->closed || s->rerr || s->werr;
}

int weft_stream_wait_closed(weft_stream *h)
{
    STREAM_ARG(s, h, "weft_stream_wait_closed");
    if (s->closed)
        return 0;
    if (!weft__current())
        return weft__set_errmsg(WEFT_ENOTINLOOP, "weft_stream_wait_closed must be called from a task");
    enter(s);
    int rc = wait_on(s, &s->closers);
    if (rc == -ECANCELED)
        rc = weft__cancelled_errmsg(weft__current());
    else
        rc = 0;
    leave(s);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Addresses                                                                */
/* ------------------------------------------------------------------------ */

/* getpeername or getsockname of the stream's socket, for the two calls below. */
static int stream_address(weft_stream *h, struct sockaddr *addr, socklen_t *len, const char *what,
                          int (*get)(int, struct sockaddr *, socklen_t *))
{
    STREAM_ARG(s, h, what);
    if (s->closed)
        return weft__set_errmsg(WEFT_ECLOSED, "%s: the stream is closed", what);
    if (get(s->w.fd, addr, len) != 0)
        return weft__set_errmsg(-errno, "%s: %s", what, strerror(errno));
    return 0;
}

int weft_stream_peername(weft_stream *h, struct sockaddr *addr, socklen_t *len)
{
    return stream_address(h, addr, len, "weft_stream_peername", getpeername);
}

int weft_stream_sockname(weft_stream *h, struct sockaddr *addr, socklen_t *len)
{
    return stream_address(h, addr, len, "weft_stream_sockname", getsockname);
}

int weft_stream_fd(weft_stream *h)
{
    STREAM_ARG(s, h, "weft_stream_fd");
    if (s->closed)
        return weft__set_errmsg(WEFT_ECLOSED, "weft_stream_fd: the stream is closed");
    return s->w.fd;
}

/* ------------------------------------------------------------------------ */
/* Making streams                                                           */
/* ------------------------------------------------------------------------ */

static int options_check(const weft_stream_options *o, size_t *limit, size_t *high, size_t *low)
{
    *limit = o && o->limit ? o->limit : DEFAULT_LIMIT;
    *high = o && o->high_water ? o->high_water : DEFAULT_HIGH;
    *low = o && o->low_water ? o->low_water : *high / 4;
    return *low > *high ? -EINVAL : 0;
}

weft_stream *weft__stream_new(weft_loop *L, int fd, const weft_stream_options *o, int *err)
{
    weft__net_loop *net = weft__net_state(L);
    size_t limit, high, low;
    if (options_check(o, &limit, &high, &low) != 0) {
        *err = -EINVAL;
        return NULL;
    }
    weft_stream *s = net->free_streams;
    if (s) {
        net->free_streams = s->next_free;
        net->free_count--;
    } else {
        s = calloc(1, sizeof *s);
        if (!s) {
            *err = -ENOMEM;
            return NULL;
        }
    }
    weft__net_obj obj = s->obj;
    memset(s, 0, sizeof *s);
    s->obj.gen = obj.gen ? obj.gen : 1;
    s->obj.kind = WEFT__NET_STREAM;
    s->loop = L;
    s->limit = limit;
    s->high = high;
    s->low = low;
    s->read_more = true;
    int type = 0;
    socklen_t tl = sizeof type;
    s->is_socket = getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) == 0;
    weft__watcher_init(&s->w, fd, stream_ready);
    /* Registered now, wanting nothing yet: a descriptor the poller refuses (a
     * regular file) is this call's error, and later interest costs no epoll_ctl
     * of its own when it changes back and forth before a poll. */
    int rc = weft__watcher_want(&L->io, &s->w, WEFT__POLL_IN);
    if (rc == 0)
        rc = weft__watcher_want(&L->io, &s->w, 0);
    if (rc != 0) {
        weft__watcher_forget(&L->io, &s->w);
        weft__net_retire(&s->obj);
        s->next_free = net->free_streams;
        net->free_streams = s;
        net->free_count++;
        *err = rc;
        return NULL;
    }
    weft__dlist_push_back(&net->streams, &s->link);
    return s;
}

weft_stream *weft_stream_from_fd(int fd, const weft_stream_options *opts)
{
    weft_loop *L = weft__loop;
    if (!L) {
        weft__set_errmsg(WEFT_ENOTINLOOP, "weft_stream_from_fd needs a running loop");
        return NULL;
    }
    int flags = fcntl(fd, F_GETFL);
    if (fd < 0 || flags < 0) {
        weft__set_errmsg(-EBADF, "weft_stream_from_fd: descriptor %d is not open", fd);
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) == 0 && (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode))) {
        weft__set_errmsg(-EPERM, "weft_stream_from_fd: descriptor %d is a regular file or directory, which "
                                 "is always ready; read it with weft_to_thread",
                         fd);
        return NULL;
    }
    if (!(flags & O_NONBLOCK) && fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) {
        weft__set_errmsg(-errno, "weft_stream_from_fd: cannot make descriptor %d non-blocking: %s", fd,
                         strerror(errno));
        return NULL;
    }
    int err = 0;
    weft_stream *s = weft__stream_new(L, fd, opts, &err);
    if (!s) {
        if (!(flags & O_NONBLOCK))
            fcntl(fd, F_SETFL, flags);
        weft__set_errmsg(err, "weft_stream_from_fd: %s",
                         err == -EINVAL ? "low_water is above high_water" : weft_strerror(err));
        return NULL;
    }
    return user_handle(s);
}

weft_stream *weft_open_connection(const char *host, int port, const weft_connect_options *opts)
{
    weft_loop *L = weft__loop;
    if (!L || !weft__current()) {
        weft__set_errmsg(WEFT_ENOTINLOOP, "weft_open_connection must be called from a task");
        return NULL;
    }
    size_t limit, high, low;
    if (options_check(opts ? &opts->stream : NULL, &limit, &high, &low) != 0) {
        weft__set_errmsg(-EINVAL, "weft_open_connection: low_water is above high_water");
        return NULL;
    }
    weft__tls_hook *tls = opts ? (weft__tls_hook *)opts->tls : NULL;
    if (tls && tls->client_check(tls, opts->server_hostname ? opts->server_hostname : host,
                                 "weft_open_connection") != 0)
        return NULL;
    int fd = weft__connect_tcp(host, port, opts);
    if (fd < 0)
        return NULL;
    int err = 0;
    weft_stream *s = weft__stream_new(L, fd, opts ? &opts->stream : NULL, &err);
    if (!s) {
        close(fd);
        weft__set_errmsg(err, "weft_open_connection: %s", weft_strerror(err));
        return NULL;
    }
    if (tls && tls->secure(tls, s, opts->server_hostname ? opts->server_hostname : host, "weft_open_connection") != 0) {
        /* The message says why (in OpenSSL's words for a refused certificate). */
        abort_now(s);
        give_up(s);
        return NULL;
    }
    return user_handle(s);
}

/* Fills a sockaddr_un for path ('@' first: the abstract namespace). */
int weft__unix_address(const char *path, struct sockaddr_un *sun, socklen_t *len)
{
    size_t n = strlen(path);
    memset(sun, 0, sizeof *sun);
    sun->sun_family = AF_UNIX;
    if (n == 0 || n >= sizeof sun->sun_path)
        return n == 0 ? -EINVAL : -ENAMETOOLONG;
    memcpy(sun->sun_path, path, n);
    if (path[0] == '@') {
        sun->sun_path[0] = '\0';
        *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
    } else {
        *len = (socklen_t)sizeof *sun;
    }
    return 0;
}

weft_stream *weft_open_unix_connection(const char *path, const weft_unix_connect_options *opts)
{
    weft_loop *L = weft__loop;
    weft_task *self = weft__current();
    if (!L || !self) {
        weft__set_errmsg(WEFT_ENOTINLOOP, "weft_open_unix_connection must be called from a task");
        return NULL;
    }
    size_t limit, high, low;
    struct sockaddr_un sun;
    socklen_t len = 0;
    int rc = path ? weft__unix_address(path, &sun, &len) : -EINVAL;
    if (rc == 0 && options_check(opts ? &opts->stream : NULL, &limit, &high, &low) != 0)
        rc = -EINVAL;
    if (rc != 0) {
        weft__set_errmsg(rc, "weft_open_unix_connection: %s",
                         !path ? "path is NULL"
                         : rc == -ENAMETOOLONG ? "the path is longer than a Unix socket address allows"
                         : rc == -EINVAL && !*path ? "the path is empty" : "low_water is above high_water");
        return NULL;
    }
    /* A path names no host: the server's certificate is checked against server_hostname. */
    weft__tls_hook *tls = opts ? (weft__tls_hook *)opts->tls : NULL;
    if (tls && tls->client_check(tls, opts->server_hostname, "weft_open_unix_connection") != 0)
        return NULL;
    if (self->cancelling) {
        weft__cancelled_errmsg(self);
        return NULL;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        weft__set_errmsg(-errno, "weft_open_unix_connection: socket: %s", strerror(errno));
        return NULL;
    }
    /* A Unix listener whose backlog is full refuses at once with EAGAIN (there is
     * no connection in progress to wait for, unlike TCP): try again, backing off
     * from 1 ms to 50 ms, for as long as the caller waits (a timeout scope bounds it). */
    int e;
    double pause = 0.001;
    while ((e = connect(fd, (struct sockaddr *)&sun, len) == 0 ? 0 : errno) == EAGAIN || e == EINTR) {
        if (e == EINTR)
            continue;
        rc = weft_sleep(pause);
        if (rc != 0) {
            close(fd);
            weft__set_errmsg(rc, "weft_open_unix_connection: %s: %s", path,
                             rc == -ECANCELED ? "cancelled while the server's backlog was full"
                                              : weft_strerror(rc));
            return NULL;
        }
        pause = pause * 2 < 0.05 ? pause * 2 : 0.05;
    }
    if (e != 0) {
        close(fd);
        weft__set_errmsg(-e, "weft_open_unix_connection: %s: %s", path, strerror(e));
        return NULL;
    }
    int err = 0;
    weft_stream *s = weft__stream_new(L, fd, opts ? &opts->stream : NULL, &err);
    if (!s) {
        close(fd);
        weft__set_errmsg(err, "weft_open_unix_connection: %s", weft_strerror(err));
        return NULL;
    }
    if (tls) {
        /* The handshake suspends: no yield of its own is needed. */
        if (tls->secure(tls, s, opts->server_hostname, "weft_open_unix_connection") != 0) {
            abort_now(s);
            give_up(s);
            return NULL;
        }
        return user_handle(s);
    }
    /* Asyncio semantics: an awaited call yields at least once. */
    if (e == 0 && self) {
        int y = weft_yield();
        if (y == -ECANCELED) {
            abort_now(s);
            give_up(s);
            weft__cancelled_errmsg(self);
            return NULL;
        }
    }
    return user_handle(s);
}

/* ------------------------------------------------------------------------ */
/* For servers                                                              */
/* ------------------------------------------------------------------------ */

weft_stream *weft__stream_user_handle(weft_stream *s)
{
    return user_handle(s);
}

void weft__stream_mark_server_owned(weft_stream *s)
{
    s->server_owned = true;
}

void weft__stream_close_from_server(weft_stream *s, bool abort)
{
    if (!abort)
        tls_close_notify(s);
    s->closing = true;
    if (abort || wbuffered(s) == 0 || s->werr) {
        if (abort)
            abort_now(s);
        else
            close_fd(s, WEFT_ECLOSED);
    } else {
        s->close_when_flushed = true;
        stop_reader(s);
        (void)update_interest(s); /* shrinks, or bytes already wanted it */
    }
}

/* The handler returned: send what it left, close, free. From the connection's
 * task, which may suspend here to flush. */
void weft__stream_server_done(weft_stream *s)
{
    enter(s);
    tls_close_notify(s);
    s->closing = true;
    stop_reader(s);
    if (!s->closed && wbuffered(s) > 0 && !s->werr) {
        s->close_when_flushed = true;
        (void)update_interest(s); /* shrinks, or bytes already wanted it */
        if (wait_on(s, &s->closers) == -ECANCELED)
            abort_now(s);
    }
    if (!s->closed)
        close_fd(s, WEFT_ECLOSED);
    s->server_owned = false;
    if (!s->given_up) {
        s->given_up = true;
        weft__net_retire(&s->obj);
    }
    leave(s); /* frees it, unless another task is still inside a call on it */
}

/* ------------------------------------------------------------------------ */
/* The loop's end                                                           */
/* ------------------------------------------------------------------------ */

void weft__streams_term(weft_loop *L, weft__net_loop *net)
{
    (void)L;
    weft__dlink *n;
    while ((n = weft__dlist_pop_front(&net->streams)) != NULL) {
        weft_stream *s = WEFT__CONTAINER_OF(n, weft_stream, link);
        if (!s->given_up && !s->server_owned) {
            char addr[128] = "";
            struct sockaddr_storage ss;
            socklen_t len = sizeof ss;
            if (!s->closed && getpeername(s->w.fd, (struct sockaddr *)&ss, &len) == 0)
                weft_format_address((struct sockaddr *)&ss, len, addr, sizeof addr);
            weft__report("weft: a stream%s%s was never closed; weft closes it as its loop ends (close it with "
                         "weft_stream_close or weft_stream_abort)",
                         addr[0] ? " to " : "", addr);
        }
        if (!s->closed) {
            weft__watcher_forget(&s->loop->io, &s->w);
            close(s->w.fd);
        }
        free_buffers(s);
        free(s);
    }
    while (net->free_streams) {
        weft_stream *s = net->free_streams;
        net->free_streams = s->next_free;
        free(s);
    }
}
