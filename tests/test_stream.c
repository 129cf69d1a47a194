/*
 * test_stream.c — weft_stream over real sockets (src/net/stream.c): reading with
 * asyncio's semantics (read, readexactly and its incomplete-read error, readuntil
 * and readline with the limit error that leaves the buffer intact, read_to_eof,
 * at_eof), writing (write never suspends, drain suspends above the high-water mark
 * and resumes at the low one, write_eof), a peer that resets, one reader at a
 * time, a cancelled read that keeps what was buffered, stale handles, sendfile,
 * and a refused shutdown or poller registration reported instead of hanging.
 * Real time on socketpairs and loopback: I/O is real.
 */
#define _GNU_SOURCE
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>

TestSuite(stream, .timeout = 30);

/* A stream on one end of a socketpair; the other end, blocking, in *peer. */
static weft_stream *pair_stream(int *peer, const weft_stream_options *o)
{
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    weft_stream *s = weft_stream_from_fd(sv[0], o);
    cr_assert(s, "weft_stream_from_fd: %s", weft_errmsg());
    *peer = sv[1];
    return s;
}

static void send_all(int fd, const char *text)
{
    size_t n = strlen(text);
    cr_assert_eq(write(fd, text, n), (ssize_t)n);
}

/* ---- reading ------------------------------------------------------------- */

static void *reads_main(void *arg)
{
    (void)arg;
    int peer;
    weft_stream *s = pair_stream(&peer, NULL);
    send_all(peer, "hello world\nsecond line\nHEAD\r\n\r\nbody");
    char buf[64];
    cr_expect_eq(weft_stream_read(s, buf, 5), 5);
    cr_expect_eq(memcmp(buf, "hello", 5), 0);
    const char *p;
    ssize_t n = weft_stream_readline(s, &p);
    cr_expect_eq(n, 7, "readline gave %zd", n);
    cr_expect_eq(memcmp(p, " world\n", 7), 0);
    n = weft_stream_readline(s, &p);
    cr_expect_eq(n, 12);
    cr_expect_eq(memcmp(p, "second line\n", 12), 0);
    n = weft_stream_readuntil(s, "\r\n\r\n", 4, &p);
    cr_expect_eq(n, 8);
    cr_expect_eq(memcmp(p, "HEAD\r\n\r\n", 8), 0);
    cr_expect_eq(weft_stream_readexactly(s, buf, 4), 4);
    cr_expect_eq(memcmp(buf, "body", 4), 0);
    cr_expect(!weft_stream_at_eof(s));
    /* readexactly past the end: the partial bytes are given and counted. */
    send_all(peer, "abc");
    shutdown(peer, SHUT_WR);
    memset(buf, 0, sizeof buf);
    n = weft_stream_readexactly(s, buf, 10);
    cr_expect_eq(n, WEFT_EINCOMPLETE, "readexactly gave %zd", n);
    cr_expect_eq(weft_stream_partial(s), 3);
    cr_expect_str_eq(buf, "abc");
    cr_expect(strstr(weft_errmsg(), "3 of 10"), "message: %s", weft_errmsg());
    cr_expect(weft_stream_at_eof(s));
    cr_expect_eq(weft_stream_read(s, buf, sizeof buf), 0);
    cr_expect_eq(weft_stream_readline(s, &p), 0);
    cr_expect_eq(weft_stream_close(s), 0);
    close(peer);
    return NULL;
}

Test(stream, reads_follow_asyncio_streamreader)
{
    cr_assert_eq(weft_run(reads_main, NULL, NULL), 0, "%s", weft_errmsg());
}

static void *late_writer_main(void *arg)
{
    int peer = *(int *)arg;
    weft_sleep(0.02);
    send_all(peer, "partial ");
    weft_sleep(0.02);
    send_all(peer, "line\nrest");
    weft_sleep(0.02);
    close(peer);
    return NULL;
}

static void *waits_main(void *arg)
{
    (void)arg;
    int peer;
    weft_stream *s = pair_stream(&peer, NULL);
    weft_task *w = weft_spawn(late_writer_main, &peer);
    const char *p;
    double start = weft_time();
    ssize_t n = weft_stream_readline(s, &p);
    cr_expect_eq(n, 13);
    cr_expect_eq(memcmp(p, "partial line\n", 13), 0);
    cr_expect(weft_time() - start >= 0.035, "readline returned after %f s", weft_time() - start);
    /* The last line has no newline: readline gives it, then 0. */
    n = weft_stream_readline(s, &p);
    cr_expect_eq(n, 4, "gave %zd: %s", n, weft_errmsg());
    cr_expect_eq(memcmp(p, "rest", 4), 0);
    cr_expect_eq(weft_stream_readline(s, &p), 0);
    cr_expect_eq(weft_await(w, NULL), 0);
    cr_expect_eq(weft_stream_close(s), 0);
    return NULL;
}

Test(stream, reads_suspend_until_the_data_comes)
{
    cr_assert_eq(weft_run(waits_main, NULL, NULL), 0, "%s", weft_errmsg());
}

static void *limit_main(void *arg)
{
    (void)arg;
    int peer;
    weft_stream *s = pair_stream(&peer, &(weft_stream_options){.limit = 16});
    /* 20 bytes, no separator: more than the limit. */
    send_all(peer, "aaaaaaaaaaaaaaaaaaaa");
    const char *p;
    ssize_t n = weft_stream_readuntil(s, "\n", 1, &p);
    cr_expect_eq(n, WEFT_ELIMIT, "gave %zd", n);
    cr_expect_eq(weft_stream_partial(s), 20, "asyncio's consumed: %zu", weft_stream_partial(s));
    cr_expect(strstr(weft_errmsg(), "limit of 16"), "message: %s", weft_errmsg());
    /* Nothing was consumed: the bytes are all still there. */
    char buf[32];
    cr_expect_eq(weft_stream_readexactly(s, buf, 20), 20);
    /* A separator found beyond the limit: consumed is where it starts. */
    send_all(peer, "bbbbbbbbbbbbbbbbbbbbbbbbb\nok\n");
    n = weft_stream_readline(s, &p);
    cr_expect_eq(n, WEFT_ELIMIT, "gave %zd", n);
    size_t skip = weft_stream_partial(s);
    cr_expect_eq(skip, 25);
    cr_expect_eq(weft_stream_readexactly(s, buf, skip + 1), (ssize_t)skip + 1);
    n = weft_stream_readline(s, &p);
    cr_expect_eq(n, 3);
    cr_expect_eq(memcmp(p, "ok\n", 3), 0);
    /* readuntil at end of file without the separator: incomplete, with what came. */
    send_all(peer, "tail");
    close(peer);
    n = weft_stream_readuntil(s, "\r\n", 2, &p);
    cr_expect_eq(n, WEFT_EINCOMPLETE);
    cr_expect_eq(weft_stream_partial(s), 4);
    cr_expect_eq(memcmp(p, "tail", 4), 0);
    cr_expect_eq(weft_stream_readuntil(s, "", 0, &p), -EINVAL);
    cr_expect_eq(weft_stream_close(s), 0);
    return NULL;
}

Test(stream, the_limit_error_leaves_the_buffer_intact)
{
    cr_assert_eq(weft_run(limit_main, NULL, NULL), 0, "%s", weft_errmsg());
}

static void *to_eof_main(void *arg)
{
    (void)arg;
    int peer;
    weft_stream *s = pair_stream(&peer, NULL);
    /* More than a read buffer's worth, in pieces. */
    static char big[200000];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (char)('a' + i % 26);
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        size_t off = 0;
        while (off < sizeof big) {
            ssize_t n = write(peer, big + off, sizeof big - off < 7000 ? sizeof big - off : 7000);
            if (n <= 0)
                _exit(1);
            off += (size_t)n;
        }
        _exit(0);
    }
    close(peer);
    char *all = NULL;
    ssize_t n = weft_stream_read_to_eof(s, &all);
    cr_expect_eq(n, (ssize_t)sizeof big, "read_to_eof gave %zd: %s", n, weft_errmsg());
    cr_expect(all && memcmp(all, big, sizeof big) == 0);
    cr_expect(all && all[n] == '\0');
    free(all);
    cr_expect(weft_stream_at_eof(s));
    int status;
    waitpid(pid, &status, 0);
    cr_expect_eq(weft_stream_close(s), 0);
    return NULL;
}

Test(stream, read_to_eof_gathers_everything)
{
    cr_assert_eq(weft_run(to_eof_main, NULL, NULL), 0, "%s", weft_errmsg());
}

/* ---- one reader, cancellation, stale handles ------------------------------ */

static void *second_reader(void *arg)
{
    char c;
    return (void *)(intptr_t)weft_stream_read(arg, &c, 1);
}

static void *cancelled_reader(void *arg)
{
    char buf[8];
    return (void *)(intptr_t)weft_stream_readexactly(arg, buf, 8);
}

static void *readers_main(void *arg)
{
    (void)arg;
    int peer;
    weft_stream *s = pair_stream(&peer, NULL);
    /* A task reads; a second reader is refused while it waits. */
    weft_task *a = weft_spawn(cancelled_reader, s);
    cr_expect_eq(weft_sleep(0.01), 0);
    void *r = NULL;
    weft_task *b = weft_spawn(second_reader, s);
    cr_expect_eq(weft_await(b, &r), 0);
    cr_expect_eq((intptr_t)r, -EBUSY);
    /* 5 of the 8 bytes it wants come, then it is cancelled: they are kept. */
    send_all(peer, "12345");
    cr_expect_eq(weft_sleep(0.01), 0);
    cr_expect(weft_cancel(a, "enough"));
    cr_expect_eq(weft_await(a, &r), -ECANCELED);
    char buf[8] = {0};
    cr_expect_eq(weft_stream_read(s, buf, sizeof buf), 5);
    cr_expect_str_eq(buf, "12345");
    /* After close the handle is stale: -ESTALE, never another stream's data. */
    cr_expect_eq(weft_stream_close(s), 0);
    cr_expect_eq(weft_stream_read(s, buf, 1), -ESTALE);
    cr_expect(strstr(weft_errmsg(), "stale"), "message: %s", weft_errmsg());
    cr_expect_eq(weft_stream_write(s, "x", 1), -ESTALE);
    cr_expect_eq(weft_stream_close(s), -ESTALE);
    int peer2;
    weft_stream *s2 = pair_stream(&peer2, NULL);
    cr_expect_eq(weft_stream_write(s, "x", 1), -ESTALE, "the old handle must not reach the new stream");
    cr_expect_eq(weft_stream_abort(s2), 0);
    cr_expect_eq(weft_stream_read(NULL, buf, 1), -EINVAL);
    close(peer);
    close(peer2);
    return NULL;
}

Test(stream, one_reader_at_a_time_and_a_cancelled_read_keeps_its_bytes)
{
    cr_assert_eq(weft_run(readers_main, NULL, NULL), 0, "%s", weft_errmsg());
}

/* ---- writing and drain ------------------------------------------------------ */

typedef struct slow_reader {
    int fd;
    size_t total;
    size_t got;
} slow_reader;

static void *slow_reader_main(void *arg)
{
    slow_reader *r = arg;
    char buf[4096];
    while (r->got < r->total) {
        cr_expect_eq(weft_sleep(0.005), 0);
        ssize_t n = read(r->fd, buf, sizeof buf);
        if (n > 0)
            r->got += (size_t)n;
        else if (n == 0)
            break;
    }
    return NULL;
}

static void *drain_main(void *arg)
{
    (void)arg;
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    int small = 4096;
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    fcntl(sv[1], F_SETFL, O_NONBLOCK);
    weft_stream *s = weft_stream_from_fd(sv[0], &(weft_stream_options){.high_water = 16384, .low_water = 4096});
    cr_assert(s);
    static char chunk[8192];
    memset(chunk, 'z', sizeof chunk);
    size_t total = 0;
    /* write never suspends: the socket takes a little, the buffer the rest. */
    double t0 = weft_time();
    for (int i = 0; i < 8; i++) {
        cr_expect_eq(weft_stream_write(s, chunk, sizeof chunk), 0);
        total += sizeof chunk;
    }
    cr_expect(weft_time() - t0 < 0.005);
    size_t queued = weft_stream_write_buffer_size(s);
    cr_expect(queued > 16384, "queued %zu", queued);
    slow_reader r = {sv[1], total, 0};
    weft_task *reader = weft_spawn(slow_reader_main, &r);
    /* drain suspends above the high-water mark, returns at or below the low one. */
    cr_expect_eq(weft_stream_drain(s), 0);
    cr_expect(weft_stream_write_buffer_size(s) <= 4096, "after drain %zu", weft_stream_write_buffer_size(s));
    cr_expect(weft_time() - t0 >= 0.005, "drain suspended");
    /* Below the high-water mark drain returns at once. */
    cr_expect_eq(weft_stream_drain(s), 0);
    /* close sends every byte before it closes. */
    cr_expect_eq(weft_stream_close(s), 0);
    cr_expect_eq(weft_await(reader, NULL), 0);
    cr_expect_eq(r.got, total, "the reader got %zu of %zu", r.got, total);
    close(sv[1]);
    return NULL;
}

Test(stream, drain_suspends_for_a_slow_reader_and_close_sends_everything)
{
    cr_assert_eq(weft_run(drain_main, NULL, NULL), 0, "%s", weft_errmsg());
}

static void *write_eof_main(void *arg)
{
    (void)arg;
    int peer;
    weft_stream *s = pair_stream(&peer, NULL);
    cr_expect_eq(weft_stream_write(s, "last words", 10), 0);
    cr_expect_eq(weft_stream_write_eof(s), 0);
    cr_expect(weft_stream_is_closing(s));
    cr_expect_eq(weft_stream_write(s, "more", 4), WEFT_ECLOSED);
    char buf[32] = {0};
    ssize_t n = read(peer, buf, sizeof buf);
    cr_expect_eq(n, 10);
    cr_expect_eq(read(peer, buf, sizeof buf), 0, "the peer sees end of file");
    /* Reading goes on after write_eof. */
    send_all(peer, "reply");
    cr_expect_eq(weft_stream_readexactly(s, buf, 5), 5);
    cr_expect_eq(weft_stream_close(s), 0);
    close(peer);
    return NULL;
}

Test(stream, write_eof_half_closes)
{
    cr_assert_eq(weft_run(write_eof_main, NULL, NULL), 0, "%s", weft_errmsg());
}

/* shutdown refused (here: a socket that is not connected, as after a reset): the
 * peer was not told, so write_eof says so instead of returning 0 (the fault sweep
 * found a client left waiting for the answer to an end of file never sent). */
static void *write_eof_refused_main(void *arg)
{
    (void)arg;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    weft_stream *s = weft_stream_from_fd(fd, NULL);
    cr_assert(s, "weft_stream_from_fd: %s", weft_errmsg());
    cr_expect_eq(weft_stream_write_eof(s), -ENOTCONN);
    cr_expect(strstr(weft_errmsg(), "not told"), "message: %s", weft_errmsg());
    cr_expect(weft_stream_is_closing(s));
    cr_expect_eq(weft_stream_write_eof(s), 0, "asked once: the second call has nothing to do");
    cr_expect_eq(weft_stream_abort(s), 0);
    return NULL;
}

Test(stream, write_eof_reports_a_refused_shutdown)
{
    cr_assert_eq(weft_run(write_eof_refused_main, NULL, NULL), 0, "%s", weft_errmsg());
}

/* A read that must wait registers the socket with the poller again (its
 * registration was dropped at a poll where nothing was wanted). Refused, nothing
 * would ever wake the reader: the read fails instead (the fault sweep found readers
 * waiting for ever when epoll_ctl failed). The refusal is made real by putting a
 * regular file, which epoll refuses, under the stream's descriptor number. */
static void *rewatch_refused_main(void *arg)
{
    (void)arg;
    int peer;
    weft_stream *s = pair_stream(&peer, NULL);
    send_all(peer, "one\n");
    const char *p;
    cr_expect_eq(weft_stream_readline(s, &p), 4);
    cr_expect_eq(weft_sleep(0.001), 0, "a poll with nothing wanted drops the registration");
    int fd = weft_stream_fd(s);
    FILE *f = tmpfile();
    cr_assert(f);
    cr_assert_eq(dup2(fileno(f), fd), fd);
    weft_timeout *to = weft_timeout_enter(2);
    cr_assert(to);
    ssize_t n = weft_stream_readline(s, &p);
    n = weft_timeout_exit(to, (int)n);
    cr_expect_eq(n, -EPERM, "readline gave %zd (%s)", n, weft_errmsg());
    cr_expect(strstr(weft_errmsg(), "cannot watch"), "message: %s", weft_errmsg());
    cr_expect_eq(weft_stream_abort(s), 0);
    fclose(f);
    close(peer);
    return NULL;
}

Test(stream, a_refused_watch_fails_the_read_instead_of_hanging)
{
    cr_assert_eq(weft_run(rewatch_refused_main, NULL, NULL), 0, "%s", weft_errmsg());
}

/* ---- a peer that resets ------------------------------------------------------ */

static int tcp_pair(int *server_side)
{
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    cr_assert_eq(bind(l, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(listen(l, 1), 0);
    getsockname(l, (struct sockaddr *)&a, &len);
    int c = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_eq(connect(c, (struct sockaddr *)&a, sizeof a), 0);
    *server_side = accept(l, NULL, NULL);
    close(l);
    return c;
}

static void *reset_main(void *arg)
{
    (void)arg;
    int peer;
    int c = tcp_pair(&peer);
    weft_stream *s = weft_stream_from_fd(c, NULL);
    cr_assert(s);
    send_all(peer, "some");
    struct linger lg = {1, 0};
    setsockopt(peer, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(peer); /* a reset */
    char buf[16];
    ssize_t n = weft_stream_read(s, buf, sizeof buf);
    /* The bytes before the reset may or may not survive it; the reset is seen. */
    if (n == 4)
        n = weft_stream_read(s, buf, sizeof buf);
    cr_expect_eq(n, -ECONNRESET, "read gave %zd (%s)", n, weft_errmsg());
    cr_expect(strstr(weft_errmsg(), "reset"), "message: %s", weft_errmsg());
    /* Writing to it fails too, clearly, and again on drain. */
    int rc = weft_stream_write(s, "x", 1);
    if (rc == 0)
        rc = weft_stream_write(s, "y", 1);
    cr_expect(rc == -EPIPE || rc == -ECONNRESET, "write gave %d", rc);
    cr_expect(weft_stream_is_closing(s));
    cr_expect_eq(weft_stream_drain(s), rc);
    cr_expect_eq(weft_stream_abort(s), 0);
    return NULL;
}

Test(stream, a_peer_reset_is_a_clear_error)
{
    cr_assert_eq(weft_run(reset_main, NULL, NULL), 0, "%s", weft_errmsg());
}

/* ---- sendfile, pipes, bad descriptors ---------------------------------------- */

typedef struct exact_job {
    weft_stream *r;
    char *buf;
    size_t n;
} exact_job;

static void *exact_reader_main(void *arg)
{
    exact_job *j = arg;
    return (void *)(intptr_t)weft_stream_readexactly(j->r, j->buf, j->n);
}

static void *sendfile_main(void *arg)
{
    (void)arg;
    int peer;
    weft_stream *s = pair_stream(&peer, NULL);
    weft_stream *reader = weft_stream_from_fd(peer, NULL);
    cr_assert(reader);
    char path[] = "/tmp/weft-sendfile-XXXXXX";
    int f = mkstemp(path);
    cr_assert(f >= 0);
    unlink(path);
    static char content[300000];
    for (size_t i = 0; i < sizeof content; i++)
        content[i] = (char)(i * 7);
    cr_assert_eq(write(f, content, sizeof content), (ssize_t)sizeof content);
    /* The socketpair holds far less than 300 kB: sendfile waits for room while
     * another task reads. What was written before goes first. */
    static char got[4 + 300000 - 1000];
    exact_job j = {reader, got, sizeof got};
    weft_task *t = weft_spawn(exact_reader_main, &j);
    cr_expect_eq(weft_stream_write(s, "head", 4), 0);
    ssize_t n = weft_stream_sendfile(s, f, 1000, sizeof content);
    cr_expect_eq(n, (ssize_t)(sizeof content - 1000), "sendfile gave %zd: %s", n, weft_errmsg());
    void *r = NULL;
    cr_expect_eq(weft_await(t, &r), 0);
    cr_expect_eq((intptr_t)r, (intptr_t)sizeof got, "the reader got %zd", (ssize_t)(intptr_t)r);
    cr_expect_eq(memcmp(got, "head", 4), 0);
    cr_expect_eq(memcmp(got + 4, content + 1000, sizeof content - 1000), 0);
    close(f);
    cr_expect_eq(weft_stream_close(s), 0);
    cr_expect_eq(weft_stream_close(reader), 0);
    return NULL;
}

Test(stream, sendfile_sends_a_file_range_after_what_was_written)
{
    cr_assert_eq(weft_run(sendfile_main, NULL, NULL), 0, "%s", weft_errmsg());
}

static void *pipe_main(void *arg)
{
    (void)arg;
    int p[2];
    cr_assert_eq(pipe(p), 0);
    weft_stream *w = weft_stream_from_fd(p[1], NULL);
    weft_stream *r = weft_stream_from_fd(p[0], NULL);
    cr_assert(w && r);
    cr_expect_eq(weft_stream_write(w, "through a pipe\n", 15), 0);
    const char *line;
    cr_expect_eq(weft_stream_readline(r, &line), 15);
    cr_expect_eq(weft_stream_write_eof(w), -ENOTSUP);
    /* The reader leaves: writing is -EPIPE, never a SIGPIPE that kills us. */
    cr_expect_eq(weft_stream_close(r), 0);
    cr_expect_eq(weft_stream_write(w, "x", 1), -EPIPE);
    cr_expect_eq(weft_stream_abort(w), 0);
    /* A regular file is refused; so is a closed descriptor. */
    char path[] = "/tmp/weft-stream-XXXXXX";
    int f = mkstemp(path);
    unlink(path);
    cr_expect_null(weft_stream_from_fd(f, NULL));
    cr_expect_eq(weft_errcode(), -EPERM);
    close(f);
    cr_expect_null(weft_stream_from_fd(f, NULL));
    cr_expect_eq(weft_errcode(), -EBADF);
    int sv[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    cr_expect_null(weft_stream_from_fd(sv[0], &(weft_stream_options){.high_water = 10, .low_water = 20}));
    cr_expect_eq(weft_errcode(), -EINVAL);
    close(sv[0]);
    close(sv[1]);
    return NULL;
}

Test(stream, pipes_work_and_bad_descriptors_are_refused)
{
    cr_assert_eq(weft_run(pipe_main, NULL, NULL), 0, "%s", weft_errmsg());
}

static void *unclosed_main(void *arg)
{
    (void)arg;
    int peer;
    weft_stream *s = pair_stream(&peer, NULL);
    (void)s;
    return NULL;
}

static int unclosed_body(void)
{
    return weft_run(unclosed_main, NULL, NULL);
}

Test(stream, a_stream_never_closed_is_reported_and_closed)
{
    child_outcome out;
    run_forked(unclosed_body, &out);
    cr_expect(WIFEXITED(out.status) && WEXITSTATUS(out.status) == 0);
    cr_expect(strstr(out.stderr_text, "was never closed"), "stderr: %s", out.stderr_text);
}

/* ---- a Unix listener whose backlog is full ---------------------------------- */

static int full_listener;

static void *late_acceptor(void *arg)
{
    (void)arg;
    cr_expect_eq(weft_sleep(0.05), 0);
    int c = accept(full_listener, NULL, NULL);
    cr_expect(c >= 0);
    return (void *)(intptr_t)c;
}

static void *backlog_main(void *arg)
{
    (void)arg;
    char path[64];
    snprintf(path, sizeof path, "@weft-backlog-%d", (int)getpid());
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    memcpy(sun.sun_path + 1, path + 1, strlen(path) - 1);
    socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path));
    full_listener = socket(AF_UNIX, SOCK_STREAM, 0);
    cr_assert_eq(bind(full_listener, (struct sockaddr *)&sun, len), 0);
    cr_assert_eq(listen(full_listener, 0), 0);
    /* Fill the backlog with connections nobody accepts. */
    int fillers[4], nfill = 0;
    for (; nfill < 4; nfill++) {
        fillers[nfill] = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
        if (connect(fillers[nfill], (struct sockaddr *)&sun, len) != 0) {
            cr_expect_eq(errno, EAGAIN);
            close(fillers[nfill]);
            break;
        }
    }
    /* A timeout scope ends a connect that keeps finding the backlog full. */
    weft_timeout *t = weft_timeout_enter(0.03);
    weft_stream *none = weft_open_unix_connection(path, NULL);
    cr_expect_null(none);
    cr_expect_eq(weft_timeout_exit(t, weft_errcode()), -ETIMEDOUT);
    /* A connect that waits while the backlog is full gets in once one is accepted. */
    weft_task *acc = weft_spawn(late_acceptor, NULL);
    double t0 = weft_time();
    weft_stream *s = weft_open_unix_connection(path, NULL);
    cr_expect(s, "%s", weft_errmsg());
    cr_expect(weft_time() - t0 >= 0.04, "connected after %f s", weft_time() - t0);
    void *accepted = NULL;
    cr_expect_eq(weft_await(acc, &accepted), 0);
    close((int)(intptr_t)accepted);
    if (s)
        cr_expect_eq(weft_stream_abort(s), 0);
    for (int i = 0; i < nfill; i++)
        close(fillers[i]);
    close(full_listener);
    return NULL;
}

Test(stream, a_unix_connect_waits_while_the_backlog_is_full)
{
    cr_assert_eq(weft_run(backlog_main, NULL, NULL), 0, "%s", weft_errmsg());
}

/* ---- pointers kept too long, NULL buffers ------------------------------------ */

static void *kept_pointer_main(void *arg)
{
    (void)arg;
    int peer;
    weft_stream *s = pair_stream(&peer, NULL);
    send_all(peer, "first\nsecond\n");
    const char *line;
    cr_expect_eq(weft_stream_readline(s, &line), 6);
    cr_expect_eq(memcmp(line, "first\n", 6), 0);
    const char *kept = line;
    cr_expect_eq(weft_stream_readline(s, &line), 7);
#ifdef WEFT_TEST_ASSERTS
    /* Debug and sanitizer builds overwrite what the first readline handed out. */
    cr_expect_eq((unsigned char)kept[0], 0xDB, "the old line still reads '%c'", kept[0]);
#else
    (void)kept;
#endif
    char buf[4];
    cr_expect_eq(weft_stream_read(s, NULL, sizeof buf), -EINVAL);
    cr_expect_eq(weft_stream_readexactly(s, NULL, sizeof buf), -EINVAL);
    cr_expect_eq(weft_stream_write(s, NULL, 3), -EINVAL);
    cr_expect_eq(weft_stream_close(s), 0);
    close(peer);
    return NULL;
}

Test(stream, a_kept_line_pointer_is_overwritten_in_debug_builds_and_null_buffers_are_refused)
{
    cr_assert_eq(weft_run(kept_pointer_main, NULL, NULL), 0, "%s", weft_errmsg());
}

/* ---- two tasks ending one stream; a reader woken, then its stream closed -------- */

static int closer_rc;

static void *closer(void *arg)
{
    closer_rc = weft_stream_close(arg);
    return NULL;
}

static void *two_enders_main(void *arg)
{
    bool abort_second = arg != NULL;
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    int small = 4096;
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    weft_stream *s = weft_stream_from_fd(sv[0], NULL);
    cr_assert(s);
    /* More than the socket takes, and the peer never reads: close must wait. */
    static char big[1 << 20];
    cr_expect_eq(weft_stream_write(s, big, sizeof big), 0);
    closer_rc = 1;
    weft_task *a = weft_spawn(closer, s);
    cr_expect_eq(weft_sleep(0.01), 0); /* a waits in close for the flush */
    int rc = abort_second ? weft_stream_abort(s) : weft_stream_close(s);
    if (!abort_second) {
        /* This close waits too: let the peer read, so that both closes finish. */
        cr_expect(rc == 0 || rc == -ECONNRESET || rc == -EPIPE, "second close gave %d", rc);
    } else {
        cr_expect_eq(rc, 0);
    }
    cr_expect_eq(weft_await(a, NULL), 0);
    if (abort_second) {
        /* The abort dropped what the first close was sending: it says so. */
        cr_expect_eq(closer_rc, WEFT_ECLOSED, "the waiting close gave %d", closer_rc);
    }
    cr_expect_eq(weft_stream_close(s), -ESTALE);
    close(sv[1]);
    /* The record was freed once: two new streams are two records. */
    int p1[2], p2[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, p1), 0);
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, p2), 0);
    weft_stream *x = weft_stream_from_fd(p1[0], NULL), *y = weft_stream_from_fd(p2[0], NULL);
    cr_assert(x && y);
    uintptr_t mask = ((uintptr_t)1 << 48) - 8;
    cr_expect_neq((uintptr_t)x & mask, (uintptr_t)y & mask, "two live streams share one record");
    cr_expect_eq(weft_stream_write(x, "to-x", 4), 0);
    char buf[8] = {0};
    cr_expect_eq(read(p1[1], buf, sizeof buf), 4);
    cr_expect_str_eq(buf, "to-x");
    cr_expect_eq(weft_stream_abort(x), 0);
    cr_expect_eq(weft_stream_abort(y), 0);
    close(p1[1]);
    close(p2[1]);
    return NULL;
}

static void *drain_peer(void *arg)
{
    int fd = *(int *)arg;
    char buf[65536];
    while (read(fd, buf, sizeof buf) > 0) {
    }
    return NULL;
}

static void *two_closes_main(void *arg)
{
    (void)arg;
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    weft_stream *s = weft_stream_from_fd(sv[0], NULL);
    cr_assert(s);
    static char big[1 << 20];
    cr_expect_eq(weft_stream_write(s, big, sizeof big), 0);
    weft_task *a = weft_spawn(closer, s);
    cr_expect_eq(weft_yield(), 0);
    /* The peer reads on a thread, so that both closes can finish their flush. */
    void *ignored;
    weft_task *b = weft_spawn(closer, s);
    cr_expect_eq(weft_to_thread(drain_peer, &sv[1], &ignored), 0);
    cr_expect_eq(weft_await(a, NULL), 0);
    cr_expect_eq(weft_await(b, NULL), 0);
    cr_expect_eq(weft_stream_write(s, "x", 1), -ESTALE);
    int p1[2], p2[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, p1), 0);
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, p2), 0);
    weft_stream *x = weft_stream_from_fd(p1[0], NULL), *y = weft_stream_from_fd(p2[0], NULL);
    uintptr_t mask = ((uintptr_t)1 << 48) - 8;
    cr_expect_neq((uintptr_t)x & mask, (uintptr_t)y & mask, "two live streams share one record");
    cr_expect_eq(weft_stream_abort(x), 0);
    cr_expect_eq(weft_stream_abort(y), 0);
    close(sv[1]);
    close(p1[1]);
    close(p2[1]);
    return NULL;
}

Test(stream, a_close_and_an_abort_from_two_tasks_free_the_stream_once)
{
    cr_assert_eq(weft_run(two_enders_main, (void *)1, NULL), 0, "%s", weft_errmsg());
}

Test(stream, two_concurrent_closes_free_the_stream_once)
{
    cr_assert_eq(weft_run(two_closes_main, NULL, NULL), 0, "%s", weft_errmsg());
}

static weft_stream *woken_s;
static int woken_peer[2], first_peer[2];
static ssize_t woken_result;

static void *woken_reader(void *arg)
{
    (void)arg;
    char buf[32] = {0};
    woken_result = weft_stream_read(woken_s, buf, sizeof buf);
    return NULL;
}

static void *both_writer(void *arg)
{
    (void)arg;
    /* First the stream main waits on, then the reader's: one poll wakes both, main first. */
    cr_expect_eq(write(first_peer[1], "go", 2), 2);
    cr_expect_eq(write(woken_peer[1], "old-data", 8), 8);
    return NULL;
}

static void *woken_main(void *arg)
{
    (void)arg;
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, woken_peer), 0);
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, first_peer), 0);
    woken_s = weft_stream_from_fd(woken_peer[0], NULL);
    weft_stream *first = weft_stream_from_fd(first_peer[0], NULL);
    cr_assert(woken_s && first);
    weft_task *r = weft_spawn(woken_reader, NULL);
    weft_task *w = weft_spawn(both_writer, NULL);
    char buf[4];
    cr_expect_eq(weft_stream_read(first, buf, sizeof buf), 2); /* woken with the reader */
    /* The reader is woken but has not run: its stream goes, a new one comes. */
    cr_expect_eq(weft_stream_read(woken_s, buf, 1), -EBUSY, "the woken reader still holds the stream");
    cr_expect_eq(weft_stream_abort(woken_s), 0);
    int p[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, p), 0);
    cr_expect_eq(write(p[1], "SECRET", 6), 6);
    weft_stream *n2 = weft_stream_from_fd(p[0], NULL);
    cr_assert(n2);
    cr_expect_eq(weft_await(r, NULL), 0);
    cr_expect_eq(woken_result, WEFT_ECLOSED, "the old stream's reader got %zd", woken_result);
    char got[16] = {0};
    cr_expect_eq(weft_stream_read(n2, got, sizeof got), 6);
    cr_expect_str_eq(got, "SECRET");
    cr_expect_eq(weft_await(w, NULL), 0);
    cr_expect_eq(weft_stream_abort(n2), 0);
    cr_expect_eq(weft_stream_abort(first), 0);
    close(woken_peer[1]);
    close(first_peer[1]);
    close(p[1]);
    return NULL;
}

Test(stream, a_reader_woken_then_closed_under_it_reads_nothing_of_another_stream)
{
    cr_assert_eq(weft_run(woken_main, NULL, NULL), 0, "%s", weft_errmsg());
}

/* ---- compact tasks waiting in drain, close and wait_closed ------------------ */

/* A compact task's stack is copied away while it waits, and the memory it ran in
 * holds another task's frames: nothing of its wait may live there. Two compact
 * tasks with frames of different shapes drain 1 MiB each into socketpairs a third
 * task empties slowly, then close with bytes still buffered (waiting in close), and
 * a fourth waits in wait_closed on each. */
#define COMPACT_BYTES (1 << 20)

static int compact_peers[2];
static weft_stream *compact_streams[2];

static void *compact_drainer(void *arg)
{
    int i = (int)(intptr_t)arg;
    char pad[256 + 512 * 2]; /* frames of different sizes in the two tasks */
    memset(pad, 'a' + i, sizeof pad);
    char *big = malloc(COMPACT_BYTES);
    memset(big, 'x', COMPACT_BYTES);
    cr_expect_eq(weft_stream_write(compact_streams[i], big, COMPACT_BYTES), 0);
    free(big);
    int rc = weft_stream_drain(compact_streams[i]);
    cr_expect_eq(rc, 0, "drain %d: %s", i, weft_errmsg());
    cr_expect_eq(weft_stream_write(compact_streams[i], "end", 3), 0);
    rc = weft_stream_close(compact_streams[i]);
    cr_expect_eq(rc, 0, "close %d: %s", i, weft_errmsg());
    return (void *)(intptr_t)(pad[i * 300] == 'a' + i);
}

static void *compact_closed_waiter(void *arg)
{
    int i = (int)(intptr_t)arg;
    char pad[128 + 700 * i];
    memset(pad, 'w', sizeof pad);
    int rc = weft_stream_wait_closed(compact_streams[i]);
    cr_expect(rc == 0 || rc == -ESTALE, "wait_closed %d: %s", i, weft_errname(rc));
    return (void *)(intptr_t)(pad[sizeof pad - 1] == 'w');
}

static void *slow_emptier(void *arg)
{
    (void)arg;
    static char buf[16384];
    size_t got[2] = {0, 0};
    const size_t want = COMPACT_BYTES + 3;
    while (got[0] < want || got[1] < want) {
        for (int i = 0; i < 2; i++) {
            if (got[i] < want) {
                ssize_t n = recv(compact_peers[i], buf, sizeof buf, MSG_DONTWAIT);
                if (n > 0)
                    got[i] += (size_t)n;
            }
        }
        if (weft_sleep(0.0005) != 0)
            break;
    }
    return NULL;
}

static void *compact_waits_main(void *arg)
{
    (void)arg;
    for (int i = 0; i < 2; i++) {
        int sv[2];
        cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
        compact_streams[i] = weft_stream_from_fd(sv[0], NULL);
        cr_assert(compact_streams[i]);
        compact_peers[i] = sv[1];
    }
    weft_spawn_options compact = {.compact = 1};
    weft_task *t[5] = {
        weft_spawn_opts(compact_drainer, (void *)0, &compact),
        weft_spawn_opts(compact_drainer, (void *)1, &compact),
        weft_spawn_opts(compact_closed_waiter, (void *)0, &compact),
        weft_spawn_opts(compact_closed_waiter, (void *)1, &compact),
        weft_spawn(slow_emptier, NULL),
    };
    for (int i = 0; i < 5; i++) {
        void *r = NULL;
        cr_expect_eq(weft_await(t[i], &r), 0, "task %d", i);
        if (i < 4)
            cr_expect(r, "task %d's own frame changed while it waited", i);
    }
    close(compact_peers[0]);
    close(compact_peers[1]);
    return NULL;
}

Test(stream, compact_tasks_wait_in_drain_close_and_wait_closed)
{
    cr_assert_eq(weft_run(compact_waits_main, NULL, NULL), 0);
}
