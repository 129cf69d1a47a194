/*
 * net_scenario.c — the network layer's program for the fault sweep: run once per
 * injection point with that allocation, system call or lookup failing (wrap.c
 * built with WEFT_FAULT_NET), it must end by itself with status 0 every time. A
 * TCP server on 127.0.0.1 with clients that connect by address and by name (the
 * name is resolved on the thread pool), lines echoed, a two-piece write,
 * readexactly, sendfile, a large write drained, write_eof, close and abort,
 * close_clients, wait_closed, a cancelled read, serve_forever ended by
 * cancellation; a Unix server and client; a UDP exchange, with a receiver waiting
 * and a datagram cut short. It is written as a careful user writes:
 * every result is looked at, a failure ends that part, and everything opened is
 * closed on every path — so a stream, server or endpoint left for the loop's end
 * to close (weft reports it) is a lost handle the sweep looks for (sweep.py
 * --forbid). A separate program from scenario.c, so that each sweep stays short.
 *
 * It makes no wrapped call itself, so every point counted is weft's; the bytes it
 * sends come from static buffers. The lookup of "localhost" is made while no
 * other task of the loop has anything to do: the pool thread's calls are then the
 * only ones, and the numbering stays the same from run to run.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "weft.h"

#define FILE_BYTES 3000         /* sent by sendfile */
#define BIG_BYTES (256 * 1024)  /* one write larger than the high-water mark: drain waits */
#define WATCHDOG_S 10.0         /* far beyond a clean run (~20 ms); a run that reaches it hangs */

static int file_fd = -1;        /* the file sendfile sends (a memfd) */
static char big[BIG_BYTES];     /* what "big" sends */
static char got[BIG_BYTES];     /* what the client reads back */

/* ---- the server's side: one task per connection ------------------------------- */

/*
 * Commands, one a line: "exact\n" and 8 bytes: the 8 bytes back (readexactly);
 * "file\n": FILE_BYTES by sendfile; "big\n": BIG_BYTES in one write, drained; any
 * other line comes back as it is. At the client's end of file the handler says
 * "bye\n" and returns; weft then flushes and closes the stream. Any error ends the
 * handler too: the stream is closed by weft, and the client sees it end.
 */
static void *serve(weft_stream *s, void *arg)
{
    (void)arg;
    for (;;) {
        const char *line;
        ssize_t n = weft_stream_readline(s, &line);
        if (n == 0) {
            (void)weft_stream_write(s, "bye\n", 4); /* failing, it is just not said */
            return NULL;
        }
        if (n < 0) /* a reset, close_clients, a failure: nothing more to do */
            return NULL;
        int rc;
        if (n == 6 && memcmp(line, "exact\n", 6) == 0) {
            char b[8];
            ssize_t r = weft_stream_readexactly(s, b, sizeof b);
            rc = r < 0 ? (int)r : weft_stream_write(s, b, sizeof b);
        } else if (n == 5 && memcmp(line, "file\n", 5) == 0) {
            ssize_t r = weft_stream_sendfile(s, file_fd, 0, FILE_BYTES);
            rc = r < 0 ? (int)r : r == FILE_BYTES ? 0 : -EIO;
        } else if (n == 4 && memcmp(line, "big\n", 4) == 0) {
            rc = weft_stream_write(s, big, sizeof big);
        } else {
            rc = weft_stream_write(s, line, (size_t)n);
        }
        if (rc == 0)
            rc = weft_stream_drain(s);
        if (rc != 0)
            return NULL;
    }
}

/* ---- the client's side ---------------------------------------------------------- */

/* Writes n bytes and waits until the stream's buffer is low. */
static int put(weft_stream *c, const char *p, size_t n)
{
    int rc = weft_stream_write(c, p, n);
    return rc ? rc : weft_stream_drain(c);
}

/* Sends a line; its echo must come back. */
static int ask(weft_stream *c, const char *line)
{
    size_t n = strlen(line);
    int rc = put(c, line, n);
    if (rc)
        return rc;
    const char *answer;
    ssize_t r = weft_stream_readline(c, &answer);
    if (r < 0)
        return (int)r;
    return (size_t)r == n && memcmp(answer, line, n) == 0 ? 0 : -EPROTO;
}

/* Sends a command and reads exactly n bytes of answer. */
static int fetch(weft_stream *c, const char *cmd, size_t n)
{
    int rc = put(c, cmd, strlen(cmd));
    if (rc)
        return rc;
    ssize_t r = weft_stream_readexactly(c, got, n);
    return r < 0 ? (int)r : 0;
}

/* A connection that goes through the whole protocol and ends by half-closing:
 * echo, readexactly both ways, sendfile, a drained large write, write_eof, the
 * server's last words read to end of file, close. */
static int full_session(int port)
{
    weft_stream *c = weft_open_connection("127.0.0.1", port, NULL);
    if (!c)
        return weft_errcode();
    int rc = ask(c, "echo one\n");
    if (rc == 0) {
        rc = put(c, "exact\nABCDEFGH", 14);
        ssize_t r = rc ? rc : weft_stream_readexactly(c, got, 8);
        rc = r < 0 ? (int)r : memcmp(got, "ABCDEFGH", 8) == 0 ? 0 : -EPROTO;
    }
    if (rc == 0)
        rc = fetch(c, "file\n", FILE_BYTES);
    if (rc == 0)
        rc = fetch(c, "big\n", BIG_BYTES);
    if (rc == 0)
        rc = weft_stream_write_eof(c);
    if (rc == 0) {
        char *rest = NULL;
        ssize_t r = weft_stream_read_to_eof(c, &rest);
        rc = r < 0 ? (int)r : r == 4 && memcmp(rest, "bye\n", 4) == 0 ? 0 : -EPROTO;
        free(rest);
    }
    int closed = weft_stream_close(c);
    return rc ? rc : closed;
}

/* A connection by name (getaddrinfo on the pool: the scenario's only lookup there,
 * since a second one could find the pool's thread not yet back from the first and
 * start another, a point more or less from run to run), a write of two pieces,
 * ended by a reset. */
static int aborted_session(int port)
{
    weft_stream *c = weft_open_connection("localhost", port, NULL);
    if (!c)
        return weft_errcode();
    int rc = ask(c, "echo two\n");
    if (rc == 0) {
        /* Two pieces, one system call (sendmsg); the echo is one line. */
        struct iovec iov[2] = {{"echo ", 5}, {"four\n", 5}};
        rc = weft_stream_writev(c, iov, 2);
        const char *answer;
        ssize_t r = rc ? rc : weft_stream_readline(c, &answer);
        rc = r < 0 ? (int)r : r == 10 && memcmp(answer, "echo four\n", 10) == 0 ? 0 : -EPROTO;
    }
    (void)weft_stream_abort(c);
    return rc;
}

static void *watch_closed(void *c)
{
    int rc = weft_stream_wait_closed(c);
    return rc ? weft_fail(rc, "wait_closed: %s", weft_errmsg()) : NULL;
}

/* Two connections the server ends (close_clients), the first bound to a local
 * address, while another task waits for its stream to be closed (wait_closed),
 * which the client then does. */
static int closed_by_server(weft_server *srv, int port)
{
    weft_stream *c = weft_open_connection("127.0.0.1", port, &(weft_connect_options){.local_host = "127.0.0.1"});
    if (!c)
        return weft_errcode();
    weft_stream *d = weft_open_connection("127.0.0.1", port, NULL);
    int rc = d ? ask(c, "echo three\n") : weft_errcode();
    if (rc == 0)
        rc = ask(d, "echo four\n");
    weft_task *watcher = rc == 0 ? weft_spawn(watch_closed, c) : NULL;
    if (rc == 0 && !watcher)
        rc = weft_errcode();
    if (rc == 0) {
        (void)weft_yield(); /* the watcher starts waiting */
        (void)weft_server_close_clients(srv);
        const char *line;
        ssize_t r = weft_stream_readline(c, &line); /* the server's close: end of file */
        if (r == 0)
            r = weft_stream_readline(d, &line);
        rc = r < 0 ? (int)r : r == 0 ? 0 : -EPROTO;
    }
    int closed = weft_stream_close(c);
    if (d) {
        int e = weft_stream_close(d);
        closed = closed ? closed : e;
    }
    if (watcher) {
        int w = weft_await(watcher, NULL);
        rc = rc ? rc : w;
    }
    return rc ? rc : closed;
}

typedef struct forever_arg {
    weft_server *srv;
    int started; /* serve_forever owns the server from here on */
} forever_arg;

static void *forever(void *arg)
{
    forever_arg *fa = arg;
    fa->started = 1;
    (void)weft_server_serve_forever(fa->srv); /* -ECANCELED: how it ends */
    return NULL;
}

static void *reader(void *c)
{
    char b[4];
    ssize_t r = weft_stream_read(c, b, sizeof b);
    return r < 0 ? weft_fail((int)r, "read: %s", weft_errmsg()) : NULL;
}

/* A server run by serve_forever in its own task, ended by cancelling that task
 * (which aborts the client), and a read cancelled before anything came. */
static int forever_part(void)
{
    forever_arg fa = {weft_start_server(serve, NULL, "127.0.0.1", 0, NULL), 0};
    if (!fa.srv)
        return weft_errcode();
    int port = weft_server_port(fa.srv);
    weft_task *t = port > 0 ? weft_spawn(forever, &fa) : NULL;
    int rc = port < 0 ? port : t ? weft_yield() : weft_errcode();
    weft_stream *c = rc == 0 ? weft_open_connection("127.0.0.1", port, NULL) : NULL;
    if (rc == 0 && !c)
        rc = weft_errcode();
    if (rc == 0) {
        weft_task *r = weft_spawn(reader, c);
        rc = r ? weft_yield() : weft_errcode();
        if (r) {
            (void)weft_cancel(r, "enough");
            int w = weft_await(r, NULL);
            rc = rc ? rc : w == -ECANCELED ? 0 : -EPROTO;
        }
    }
    if (rc == 0)
        rc = ask(c, "echo five\n");
    if (t) {
        (void)weft_cancel(t, "the end");
        (void)weft_await(t, NULL);
    }
    if (c) {
        const char *line;
        (void)weft_stream_readline(c, &line); /* the server's abort: a reset or end of file */
        int closed = weft_stream_close(c);
        rc = rc ? rc : closed == 0 || closed == -ECONNRESET || closed == -EPIPE ? 0 : closed;
    }
    if (!fa.started) { /* the task never ran: the server is still ours */
        (void)weft_server_close(fa.srv);
        int w = weft_server_wait_closed(fa.srv);
        rc = rc ? rc : w;
    }
    return rc;
}

static int tcp_part(void)
{
    weft_server *srv = weft_start_server(serve, NULL, "127.0.0.1", 0,
                                         &(weft_server_options){.task = {.name = "connection"}});
    if (!srv)
        return weft_errcode();
    int port = weft_server_port(srv);
    int rc = port < 0 ? port : 0;
    if (rc == 0)
        rc = full_session(port);
    if (rc == 0)
        rc = aborted_session(port);
    if (rc == 0)
        rc = closed_by_server(srv, port);
    (void)weft_server_close(srv);
    int w = weft_server_wait_closed(srv);
    if (rc == 0)
        rc = forever_part();
    return rc ? rc : w;
}

static int unix_part(void)
{
    char path[64];
    snprintf(path, sizeof path, "@weft-fault-net-%d", (int)getpid());
    weft_server *srv = weft_start_unix_server(serve, NULL, path, NULL);
    if (!srv)
        return weft_errcode();
    weft_stream *c = weft_open_unix_connection(path, NULL);
    int rc = c ? ask(c, "echo unix\n") : weft_errcode();
    if (rc == 0)
        rc = fetch(c, "file\n", FILE_BYTES);
    if (c) {
        int closed = weft_stream_close(c);
        rc = rc ? rc : closed;
    }
    (void)weft_server_close(srv);
    int w = weft_server_wait_closed(srv);
    return rc ? rc : w;
}

static void *udp_receiver(void *a)
{
    char buf[4];
    ssize_t r = weft_datagram_recvfrom(a, buf, sizeof buf, NULL, NULL);
    return r == -EMSGSIZE ? NULL : weft_fail(r < 0 ? (int)r : -EPROTO, "recvfrom: %s", weft_errmsg());
}

/* A UDP endpoint on 127.0.0.1 and one connected to it: ping, pong; then a
 * datagram too long for the buffer of a receiver already waiting for it. */
static int udp_part(void)
{
    weft_datagram *a = weft_datagram_open(&(weft_datagram_options){.local_host = "127.0.0.1"});
    if (!a)
        return weft_errcode();
    struct sockaddr_in where;
    socklen_t len = sizeof where;
    int rc = weft_datagram_sockname(a, (struct sockaddr *)&where, &len);
    weft_datagram *b = NULL;
    if (rc == 0) {
        b = weft_datagram_open(&(weft_datagram_options){
            .remote_host = "127.0.0.1", .remote_port = ntohs(where.sin_port)});
        if (!b)
            rc = weft_errcode();
    }
    char buf[16];
    struct sockaddr_storage from;
    socklen_t fromlen = sizeof from;
    /* One task: each step runs only when the datagram it waits for was sent. */
    ssize_t r = rc ? rc : weft_datagram_sendto(b, "ping", 4, NULL, 0);
    if (r >= 0)
        r = weft_datagram_recvfrom(a, buf, sizeof buf, (struct sockaddr *)&from, &fromlen);
    if (r >= 0)
        r = weft_datagram_sendto(a, "pong", 4, (struct sockaddr *)&from, fromlen);
    if (r >= 0)
        r = weft_datagram_recvfrom(b, buf, sizeof buf, NULL, NULL);
    if (r >= 0) {
        struct sockaddr_storage peer;
        socklen_t plen = sizeof peer;
        r = weft_datagram_peername(b, (struct sockaddr *)&peer, &plen);
    }
    weft_task *t = r >= 0 ? weft_spawn(udp_receiver, a) : NULL;
    if (r >= 0)
        r = t ? weft_yield() : weft_errcode();
    if (r >= 0)
        r = weft_datagram_sendto(b, "a longer datagram", 17, NULL, 0);
    if (t) {
        if (r < 0) /* nothing comes: the receiver is told to stop */
            (void)weft_cancel(t, "nothing was sent");
        int w = weft_await(t, NULL);
        r = r < 0 ? r : w;
    }
    if (b)
        (void)weft_datagram_close(b);
    (void)weft_datagram_close(a);
    return r < 0 ? (int)r : 0;
}

typedef struct outcome {
    int timed_out;
    int rc[3]; /* the TCP, Unix and UDP parts' */
} outcome;

/* A part's outcome, said when it failed (in the sweep's output of a failing point). */
static int said(const char *part, int rc)
{
    if (rc)
        fprintf(stderr, "net_scenario: the %s part ended: %s\n", part, weft_errmsg());
    return rc;
}

static void *amain(void *arg)
{
    outcome *out = arg;
    /* A careful user bounds the whole: a hang becomes a status, not a kill. */
    weft_timeout *watchdog = weft_timeout_enter(WATCHDOG_S);
    out->rc[0] = said("TCP", tcp_part());
    out->rc[1] = said("Unix", unix_part());
    out->rc[2] = said("UDP", udp_part());
    if (watchdog) {
        out->timed_out = weft_timeout_expired(watchdog);
        (void)weft_timeout_exit(watchdog, 0);
    }
    return NULL;
}

int main(void)
{
    memset(big, 'b', sizeof big);
    file_fd = memfd_create("weft-fault-net", MFD_CLOEXEC);
    if (file_fd < 0 || write(file_fd, big, FILE_BYTES) != FILE_BYTES) {
        perror("net_scenario: the file for sendfile");
        return 1;
    }
    outcome out = {0};
    int rc = weft_run(amain, &out, NULL);
    close(file_fd);
    if (out.timed_out) {
        fprintf(stderr, "net_scenario: the network part was still running after %.0f s: a hang\n", WATCHDOG_S);
        return 1;
    }
    /* With a fault injected, any error weft reports is an acceptable outcome (the
     * sweep looks for crashes, hangs, leaks and lost handles). Without one, every
     * part must work: a part that fails by itself would hide its calls from the sweep. */
    if (!getenv("WEFT_FAULT_AT") && (rc || out.rc[0] || out.rc[1] || out.rc[2])) {
        fprintf(stderr, "net_scenario: failed without a fault (weft_run %d, TCP %d, Unix %d, UDP %d)\n", rc,
                out.rc[0], out.rc[1], out.rc[2]);
        return 1;
    }
    return 0;
}
