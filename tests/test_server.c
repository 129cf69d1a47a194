/*
 * test_server.c — weft_server (src/net/server.c) with real clients on loopback:
 * 1,000 concurrent echo connections that lose no byte, an ephemeral port read back,
 * close and wait_closed, close_clients and abort_clients, serve_forever ended by
 * cancellation, Unix-domain servers (path, abstract namespace, stale socket files),
 * out of descriptors survived (RLIMIT_NOFILE lowered), and Python asyncio's
 * streams as the client.
 */
#define _GNU_SOURCE
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>

TestSuite(server, .timeout = 60);

/* A blocking client socket connected to 127.0.0.1:port (loopback connects complete
 * in the kernel, before the server accepts). */
static int connect_tcp(int port)
{
    int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(c, (struct sockaddr *)&a, sizeof a) != 0) {
        int e = errno;
        close(c);
        return -e;
    }
    return c;
}

static void *echo_handler(weft_stream *s, void *arg)
{
    (void)arg;
    char buf[65536];
    for (;;) {
        ssize_t n = weft_stream_read(s, buf, sizeof buf);
        if (n == 0 || n == WEFT_ECLOSED) /* the peer's end, or the server's */
            return NULL;
        if (n < 0)
            return weft_fail((int)n, "echo: %s", weft_errmsg());
        if (weft_stream_write(s, buf, (size_t)n) != 0 || weft_stream_drain(s) != 0)
            return NULL;
    }
}

/* ---- many connections --------------------------------------------------------- */

#define CLIENTS 1000
#define BYTES_EACH 20000

static int echo_port;
static int clients_ok;

static void *echo_client(void *arg)
{
    uintptr_t id = (uintptr_t)arg;
    int fd = connect_tcp(echo_port);
    cr_expect(fd >= 0, "connect: %s", strerror(-fd));
    if (fd < 0)
        return NULL;
    weft_stream *s = weft_stream_from_fd(fd, NULL);
    cr_assert(s);
    static __thread char out[BYTES_EACH];
    char *mine = malloc(BYTES_EACH), *back = malloc(BYTES_EACH);
    for (size_t i = 0; i < BYTES_EACH; i++)
        mine[i] = (char)(id * 31 + i * 7);
    /* In pieces, reading back as it goes. */
    size_t sent = 0, got = 0;
    while (got < BYTES_EACH) {
        if (sent < BYTES_EACH) {
            size_t piece = BYTES_EACH - sent < 1500 ? BYTES_EACH - sent : 1500;
            cr_expect_eq(weft_stream_write(s, mine + sent, piece), 0);
            sent += piece;
        }
        ssize_t n = weft_stream_read(s, back + got, BYTES_EACH - got);
        if (n <= 0) {
            cr_expect(n > 0, "client %zu: read gave %zd (%s)", (size_t)id, n, weft_errmsg());
            break;
        }
        got += (size_t)n;
    }
    if (got == BYTES_EACH && memcmp(mine, back, BYTES_EACH) == 0)
        clients_ok++;
    (void)out;
    free(mine);
    free(back);
    cr_expect_eq(weft_stream_close(s), 0);
    return NULL;
}

static void *many_main(void *arg)
{
    (void)arg;
    weft_server *srv = weft_start_server(echo_handler, NULL, "127.0.0.1", 0,
                                         &(weft_server_options){.backlog = 1024});
    cr_assert(srv, "start_server: %s", weft_errmsg());
    echo_port = weft_server_port(srv);
    cr_assert(echo_port > 0);
    weft_task *c[CLIENTS];
    for (uintptr_t i = 0; i < CLIENTS; i++)
        c[i] = weft_spawn(echo_client, (void *)i);
    cr_expect_eq(weft_gather(c, CLIENTS, NULL, NULL, 0), 0, "%s", weft_errmsg());
    cr_expect_eq(clients_ok, CLIENTS, "%d of %d clients got every byte back", clients_ok, CLIENTS);
    cr_expect_eq(weft_server_close(srv), 0);
    cr_expect_eq(weft_server_wait_closed(srv), 0);
    return NULL;
}

Test(server, a_thousand_echo_connections_lose_no_byte)
{
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < 2 * CLIENTS + 64) {
        rl.rlim_cur = rl.rlim_max < 2 * CLIENTS + 64 ? rl.rlim_max : 2 * CLIENTS + 64;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    cr_assert_eq(weft_run(many_main, NULL, NULL), 0, "%s", weft_errmsg());
}

/* ---- closing ---------------------------------------------------------------- */

static int handlers_done;

static void *slow_handler(weft_stream *s, void *arg)
{
    (void)arg;
    const char *line;
    ssize_t n = weft_stream_readline(s, &line);
    if (n > 0) {
        (void)weft_sleep(0.05);
        (void)weft_stream_write(s, "bye\n", 4);
    }
    handlers_done++;
    return NULL;
}

static void *close_main(void *arg)
{
    (void)arg;
    weft_server *srv = weft_start_server(slow_handler, NULL, "127.0.0.1", 0, NULL);
    cr_assert(srv);
    int port = weft_server_port(srv);
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    cr_expect_eq(weft_server_sockname(srv, 0, (struct sockaddr *)&a, &len), 0);
    cr_expect_eq(ntohs(a.sin_port), port);
    cr_expect_eq(weft_server_sockname(srv, 1, (struct sockaddr *)&a, &len), -ENOENT);
    int c = connect_tcp(port);
    cr_assert(c >= 0);
    cr_expect_eq(write(c, "hi\n", 3), 3);
    cr_expect_eq(weft_sleep(0.01), 0); /* accepted, its handler sleeps */
    cr_expect_eq(weft_server_close(srv), 0);
    /* No longer listening: a new connection is refused. */
    cr_expect_eq(connect_tcp(port), -ECONNREFUSED);
    /* The handler is still in its sleep (0.05 s of the loop's time; a count, not a
     * clock, so that a busy machine cannot make this pass or fail). */
    cr_expect_eq(handlers_done, 0, "the handler finished before wait_closed was called");
    cr_expect_eq(weft_server_wait_closed(srv), 0);
    cr_expect_eq(handlers_done, 1, "wait_closed waited for the handler");
    /* The handler's write was sent before its stream closed. */
    char buf[8] = {0};
    cr_expect_eq(read(c, buf, sizeof buf), 4);
    cr_expect_str_eq(buf, "bye\n");
    close(c);
    /* The handle was given up. */
    cr_expect_eq(weft_server_port(srv), -ESTALE);
    cr_expect_eq(weft_server_close(srv), -ESTALE);
    return NULL;
}

Test(server, close_stops_accepting_and_wait_closed_waits_for_handlers)
{
    cr_assert_eq(weft_run(close_main, NULL, NULL), 0, "%s", weft_errmsg());
}

static int reader_results[2];

static void *blocked_reader(weft_stream *s, void *arg)
{
    int *slot = arg;
    /* Something for the peer first, still buffered when the clients are told. */
    (void)weft_stream_write(s, "greeting\n", 9);
    char buf[16];
    *slot = (int)weft_stream_read(s, buf, sizeof buf);
    return NULL;
}

static void *clients_main(void *arg)
{
    (void)arg;
    reader_results[0] = reader_results[1] = 1;
    weft_server *a = weft_start_server(blocked_reader, &reader_results[0], "127.0.0.1", 0, NULL);
    weft_server *b = weft_start_server(blocked_reader, &reader_results[1], "127.0.0.1", 0, NULL);
    cr_assert(a && b);
    int ca = connect_tcp(weft_server_port(a)), cb = connect_tcp(weft_server_port(b));
    cr_expect_eq(weft_sleep(0.02), 0);
    cr_expect_eq(weft_server_close_clients(a), 1);
    cr_expect_eq(weft_server_abort_clients(b), 1);
    cr_expect_eq(weft_server_close(a), 0);
    cr_expect_eq(weft_server_close(b), 0);
    cr_expect_eq(weft_server_wait_closed(a), 0);
    cr_expect_eq(weft_server_wait_closed(b), 0);
    /* Both handlers' reads ended with WEFT_ECLOSED. */
    cr_expect_eq(reader_results[0], WEFT_ECLOSED);
    cr_expect_eq(reader_results[1], WEFT_ECLOSED);
    /* close_clients: the greeting, then an orderly end of file. */
    char buf[32] = {0};
    cr_expect_eq(read(ca, buf, sizeof buf), 9);
    cr_expect_eq(read(ca, buf, sizeof buf), 0);
    /* abort_clients: the peer sees a reset once the greeting (sent already) is read. */
    ssize_t n = read(cb, buf, sizeof buf);
    if (n == 9)
        n = read(cb, buf, sizeof buf);
    cr_expect(n < 0 && errno == ECONNRESET, "after abort: %zd (%s)", n, strerror(errno));
    close(ca);
    close(cb);
    return NULL;
}

Test(server, close_clients_ends_connections_gracefully_and_abort_clients_resets)
{
    cr_assert_eq(weft_run(clients_main, NULL, NULL), 0, "%s", weft_errmsg());
}

static void *forever_task(void *arg)
{
    return (void *)(intptr_t)weft_server_serve_forever(arg);
}

static void *forever_main(void *arg)
{
    (void)arg;
    weft_server *srv = weft_start_server(echo_handler, NULL, NULL, 0, NULL);
    cr_assert(srv, "%s", weft_errmsg());
    int port = weft_server_port(srv);
    weft_task *t = weft_spawn(forever_task, srv);
    int c = connect_tcp(port);
    cr_expect_eq(write(c, "ping", 4), 4);
    char buf[8] = {0};
    cr_expect_eq(weft_sleep(0.02), 0);
    cr_expect_eq(read(c, buf, sizeof buf), 4);
    cr_expect(weft_cancel(t, "shutting down"));
    cr_expect_eq(weft_await(t, NULL), -ECANCELED);
    cr_expect_eq(weft_server_port(srv), -ESTALE);
    cr_expect_eq(weft_sleep(0.01), 0);
    cr_expect_eq(connect_tcp(port), -ECONNREFUSED);
    cr_expect_eq(read(c, buf, sizeof buf), -1, "the client was aborted");
    close(c);
    return NULL;
}

Test(server, serve_forever_ends_by_cancellation)
{
    cr_assert_eq(weft_run(forever_main, NULL, NULL), 0, "%s", weft_errmsg());
}

static void *addr_main(void *arg)
{
    (void)arg;
    weft_server *a = weft_start_server(echo_handler, NULL, "127.0.0.1", 0, NULL);
    cr_assert(a);
    int port = weft_server_port(a);
    /* The port is taken. */
    cr_expect_null(weft_start_server(echo_handler, NULL, "127.0.0.1", port, NULL));
    cr_expect_eq(weft_errcode(), -EADDRINUSE);
    cr_expect(strstr(weft_errmsg(), "127.0.0.1"), "message: %s", weft_errmsg());
    /* With SO_REUSEPORT on both, two servers share it. */
    weft_server *r1 = weft_start_server(echo_handler, NULL, "127.0.0.1", 0, &(weft_server_options){.reuse_port = 1});
    cr_assert(r1);
    weft_server *r2 = weft_start_server(echo_handler, NULL, "127.0.0.1", weft_server_port(r1),
                                        &(weft_server_options){.reuse_port = 1});
    cr_expect(r2, "reuse_port: %s", weft_errmsg());
    cr_expect_null(weft_start_server(NULL, NULL, "127.0.0.1", 0, NULL));
    cr_expect_eq(weft_errcode(), -EINVAL);
    cr_expect_null(weft_start_server(echo_handler, NULL, "127.0.0.1", 70000, NULL));
    cr_expect_eq(weft_errcode(), -EINVAL);
    weft_server *all[] = {a, r1, r2};
    for (int i = 0; i < 3; i++) {
        if (!all[i])
            continue;
        cr_expect_eq(weft_server_close(all[i]), 0);
        cr_expect_eq(weft_server_wait_closed(all[i]), 0);
    }
    return NULL;
}

Test(server, addresses_in_use_and_bad_arguments)
{
    cr_assert_eq(weft_run(addr_main, NULL, NULL), 0, "%s", weft_errmsg());
}

/* ---- Unix-domain servers ------------------------------------------------------ */

static void *unix_main(void *arg)
{
    (void)arg;
    char path[64];
    snprintf(path, sizeof path, "/tmp/weft-test-%d.sock", (int)getpid());
    unlink(path);
    weft_server *srv = weft_start_unix_server(echo_handler, NULL, path, NULL);
    cr_assert(srv, "%s", weft_errmsg());
    cr_expect_eq(weft_server_port(srv), -ENOTSOCK);
    /* A second server on a live path is refused. */
    cr_expect_null(weft_start_unix_server(echo_handler, NULL, path, NULL));
    cr_expect_eq(weft_errcode(), -EADDRINUSE);
    weft_stream *c = weft_open_unix_connection(path, NULL);
    cr_assert(c, "%s", weft_errmsg());
    cr_expect_eq(weft_stream_write(c, "over unix\n", 10), 0);
    const char *line;
    cr_expect_eq(weft_stream_readline(c, &line), 10);
    cr_expect_eq(weft_stream_close(c), 0);
    cr_expect_eq(weft_server_close(srv), 0);
    cr_expect_eq(weft_server_wait_closed(srv), 0);
    cr_expect_neq(access(path, F_OK), 0, "close removes the socket file");
    /* A stale socket file (its server died) is replaced; another file is not. */
    int stale = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    strcpy(sun.sun_path, path);
    cr_assert_eq(bind(stale, (struct sockaddr *)&sun, sizeof sun), 0);
    close(stale);
    srv = weft_start_unix_server(echo_handler, NULL, path, NULL);
    cr_expect(srv, "a stale socket file: %s", weft_errmsg());
    if (srv) {
        cr_expect_eq(weft_server_close(srv), 0);
        cr_expect_eq(weft_server_wait_closed(srv), 0);
    }
    FILE *f = fopen(path, "w");
    fclose(f);
    cr_expect_null(weft_start_unix_server(echo_handler, NULL, path, NULL));
    cr_expect_eq(weft_errcode(), -EADDRINUSE);
    cr_expect(strstr(weft_errmsg(), "not a socket"), "message: %s", weft_errmsg());
    unlink(path);
    /* The abstract namespace. */
    char abstract[64];
    snprintf(abstract, sizeof abstract, "@weft-test-%d", (int)getpid());
    srv = weft_start_unix_server(echo_handler, NULL, abstract, NULL);
    cr_assert(srv, "%s", weft_errmsg());
    c = weft_open_unix_connection(abstract, NULL);
    cr_assert(c, "%s", weft_errmsg());
    cr_expect_eq(weft_stream_write(c, "abstract\n", 9), 0);
    cr_expect_eq(weft_stream_readline(c, &line), 9);
    cr_expect_eq(weft_stream_close(c), 0);
    cr_expect_eq(weft_server_close(srv), 0);
    cr_expect_eq(weft_server_wait_closed(srv), 0);
    cr_expect_null(weft_open_unix_connection(abstract, NULL));
    cr_expect_eq(weft_errcode(), -ECONNREFUSED);
    cr_expect_null(weft_open_unix_connection("/tmp/weft-no-such-socket", NULL));
    cr_expect_eq(weft_errcode(), -ENOENT);
    return NULL;
}

Test(server, unix_domain_servers)
{
    cr_assert_eq(weft_run(unix_main, NULL, NULL), 0, "%s", weft_errmsg());
}

/* ---- out of descriptors ------------------------------------------------------- */

#define EMFILE_CLIENTS 40

/* Holds its descriptor a while, so that the client's burst of connections finds the
 * server out of descriptors however fast the machine is. */
static void *line_echo_handler(weft_stream *s, void *arg)
{
    (void)arg;
    const char *line;
    ssize_t n = weft_stream_readline(s, &line);
    if (n > 0) {
        char copy[16];
        size_t len = (size_t)n < sizeof copy ? (size_t)n : sizeof copy;
        memcpy(copy, line, len);
        if (weft_sleep(0.05) == 0)
            (void)weft_stream_write(s, copy, len);
    }
    return NULL;
}

static void client_process(int port)
{
    int fds[EMFILE_CLIENTS];
    /* Every connection at once: they wait in the kernel's queue. */
    for (int i = 0; i < EMFILE_CLIENTS; i++) {
        fds[i] = connect_tcp(port);
        if (fds[i] < 0)
            _exit(10);
        if (write(fds[i], "hello\n", 6) != 6)
            _exit(11);
    }
    for (int i = 0; i < EMFILE_CLIENTS; i++) {
        char buf[16];
        struct timeval tv = {10, 0};
        setsockopt(fds[i], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        if (read(fds[i], buf, sizeof buf) != 6)
            _exit(12);
        close(fds[i]);
    }
    _exit(0);
}

static void *reap(void *arg)
{
    int status = -1;
    waitpid((pid_t)(intptr_t)arg, &status, 0);
    return (void *)(intptr_t)status;
}

static void *emfile_main(void *arg)
{
    (void)arg;
    weft_server *srv = weft_start_server(line_echo_handler, NULL, "127.0.0.1", 0,
                                         &(weft_server_options){.backlog = 128});
    if (!srv)
        return weft_fail(weft_errcode(), "%s", weft_errmsg());
    int port = weft_server_port(srv);
    pid_t pid = fork();
    if (pid == 0)
        client_process(port);
    /* Room for only a few connections at once. */
    int used = 0;
    for (int fd = 0; fd < 1024; fd++)
        if (fcntl(fd, F_GETFD) != -1)
            used = fd + 1;
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = (rlim_t)used + 4;
    setrlimit(RLIMIT_NOFILE, &rl);
    void *status = NULL;
    int rc = weft_to_thread(reap, (void *)(intptr_t)pid, &status);
    (void)weft_server_close(srv);
    (void)weft_server_wait_closed(srv);
    if (rc != 0 || (intptr_t)status != 0)
        return weft_fail(-EIO, "the client process ended with status %d", (int)(intptr_t)status);
    return NULL;
}

static int emfile_body(void)
{
    int rc = weft_run(emfile_main, NULL, NULL);
    if (rc != 0)
        fprintf(stderr, "emfile: %s\n", weft_errmsg());
    return rc == 0 ? 0 : 1;
}

Test(server, out_of_descriptors_is_survived_and_said_once)
{
    child_outcome out;
    run_forked(emfile_body, &out);
    cr_expect(WIFEXITED(out.status) && WEXITSTATUS(out.status) == 0, "status %d, stderr: %s", out.status,
              out.stderr_text);
    const char *first = strstr(out.stderr_text, "cannot accept");
    cr_expect(first, "stderr: %s", out.stderr_text);
    cr_expect(first && !strstr(first + 1, "cannot accept"), "said once per episode: %s", out.stderr_text);
    const char *again = strstr(out.stderr_text, "accepts connections again");
    cr_expect(again && !strstr(again + 1, "accepts connections again"), "stderr: %s", out.stderr_text);
}

/* ---- Python asyncio as the client ------------------------------------------------ */

static const char *asyncio_client =
    "import asyncio, sys\n"
    "async def main(port):\n"
    "    r, w = await asyncio.open_connection('127.0.0.1', port)\n"
    "    for i in range(100):\n"
    "        msg = (f'line {i} ' + 'x' * i + '\\n').encode()\n"
    "        w.write(msg)\n"
    "        await w.drain()\n"
    "        got = await r.readexactly(len(msg))\n"
    "        assert got == msg, (got, msg)\n"
    "    w.write_eof()\n"
    "    assert await r.read() == b''\n"
    "    w.close()\n"
    "    await w.wait_closed()\n"
    "    print('asyncio client: 100 lines echoed')\n"
    "asyncio.run(main(int(sys.argv[1])))\n";

static void *python_main(void *arg)
{
    (void)arg;
    weft_server *srv = weft_start_server(echo_handler, NULL, "127.0.0.1", 0, NULL);
    cr_assert(srv);
    char port[16];
    snprintf(port, sizeof port, "%d", weft_server_port(srv));
    pid_t pid = fork();
    if (pid == 0) {
        execlp("python3", "python3", "-c", asyncio_client, port, (char *)NULL);
        _exit(127);
    }
    void *status = NULL;
    cr_expect_eq(weft_to_thread(reap, (void *)(intptr_t)pid, &status), 0);
    cr_expect(WIFEXITED((int)(intptr_t)status) && WEXITSTATUS((int)(intptr_t)status) == 0,
              "python3 asyncio client ended with status %d", (int)(intptr_t)status);
    cr_expect_eq(weft_server_close(srv), 0);
    cr_expect_eq(weft_server_wait_closed(srv), 0);
    return NULL;
}

Test(server, python_asyncio_streams_as_the_client)
{
    cr_assert_eq(weft_run(python_main, NULL, NULL), 0, "%s", weft_errmsg());
}

/* ---- a failing handler is reported naming its connection ------------------------ */

static void *failing_handler(weft_stream *s, void *arg)
{
    (void)s;
    (void)arg;
    return weft_fail(-EIO, "the handler gave up");
}

static void *named_main(void *arg)
{
    (void)arg;
    weft_server *srv = weft_start_server(failing_handler, NULL, "127.0.0.1", 0, NULL);
    if (!srv)
        return weft_fail(weft_errcode(), "%s", weft_errmsg());
    int c = connect_tcp(weft_server_port(srv));
    struct sockaddr_in me;
    socklen_t len = sizeof me;
    getsockname(c, (struct sockaddr *)&me, &len);
    fprintf(stderr, "client port %d\n", ntohs(me.sin_port));
    if (weft_sleep(0.02) != 0)
        return NULL;
    close(c);
    if (weft_server_close(srv) != 0 || weft_server_wait_closed(srv) != 0)
        return weft_fail(weft_errcode(), "%s", weft_errmsg());
    return NULL;
}

static int named_body(void)
{
    return weft_run(named_main, NULL, NULL) == 0 ? 0 : 1;
}

Test(server, a_failing_handler_is_reported_naming_its_connection)
{
    child_outcome out;
    run_forked(named_body, &out);
    int port = 0;
    const char *p = strstr(out.stderr_text, "client port ");
    cr_assert(p && sscanf(p, "client port %d", &port) == 1, "stderr: %s", out.stderr_text);
    char expect[64];
    snprintf(expect, sizeof expect, "conn 127.0.0.1:%d", port);
    cr_expect(strstr(out.stderr_text, expect) && strstr(out.stderr_text, "the handler gave up"), "stderr: %s",
              out.stderr_text);
}

/* ---- ending a server: close then cancel, handlers waited for, paths, main's end -- */

static void *quiet_handler(weft_stream *s, void *arg)
{
    (void)s;
    (void)arg;
    return NULL;
}

static void *serve_task(void *arg)
{
    return (void *)(intptr_t)weft_server_serve_forever(arg);
}

static void *close_then_cancel_main(void *arg)
{
    (void)arg;
    weft_server *srv = weft_start_server(quiet_handler, NULL, "127.0.0.1", 0, NULL);
    cr_assert(srv);
    weft_task *t = weft_spawn(serve_task, srv);
    cr_expect_eq(weft_yield(), 0);       /* t waits in serve_forever */
    cr_expect_eq(weft_server_close(srv), 0); /* wakes t: the server is done */
    cr_expect(weft_cancel(t, "shutdown")); /* t woken, not yet run */
    void *r = NULL;
    (void)weft_await(t, &r);
    /* The record went once: two new servers are two records, each with its port. */
    weft_server *a = weft_start_server(quiet_handler, NULL, "127.0.0.1", 0, NULL);
    weft_server *b = weft_start_server(quiet_handler, NULL, "127.0.0.1", 0, NULL);
    cr_assert(a && b);
    uintptr_t mask = ((uintptr_t)1 << 48) - 8;
    cr_expect_neq((uintptr_t)a & mask, (uintptr_t)b & mask, "two live servers share one record");
    cr_expect_eq(weft_server_close(b), 0);
    cr_expect(weft_server_port(a) > 0, "closing b closed a: %d", weft_server_port(a));
    cr_expect_eq(weft_server_wait_closed(b), 0);
    cr_expect_eq(weft_server_close(a), 0);
    cr_expect_eq(weft_server_wait_closed(a), 0);
    return NULL;
}

Test(server, closing_then_cancelling_serve_forever_frees_the_server_once)
{
    cr_assert_eq(weft_run(close_then_cancel_main, NULL, NULL), 0, "%s", weft_errmsg());
}

static int slow_handlers_done;

static void *slow_cleanup_handler(weft_stream *s, void *arg)
{
    (void)arg;
    char buf[8];
    (void)weft_stream_read(s, buf, sizeof buf); /* WEFT_ECLOSED when the clients are aborted */
    (void)weft_sleep(0.05);                     /* cleaning up, after the abort */
    slow_handlers_done++;
    return NULL;
}

static void *serve_waits_main(void *arg)
{
    (void)arg;
    weft_server *srv = weft_start_server(slow_cleanup_handler, NULL, "127.0.0.1", 0, NULL);
    cr_assert(srv);
    int c = connect_tcp(weft_server_port(srv));
    weft_task *t = weft_spawn(serve_task, srv);
    cr_expect_eq(weft_sleep(0.02), 0); /* accepted; its handler reads */
    cr_expect(weft_cancel(t, "shutdown"));
    void *r = NULL;
    cr_expect_eq(weft_await(t, &r), -ECANCELED);
    /* serve_forever returned only once the handler had returned. */
    cr_expect_eq(slow_handlers_done, 1, "serve_forever returned before its handler finished");
    close(c);
    return NULL;
}

Test(server, serve_forever_cancelled_waits_for_its_handlers)
{
    cr_assert_eq(weft_run(serve_waits_main, NULL, NULL), 0, "%s", weft_errmsg());
}

static char handover_path[64];

static void *handover_main(void *arg)
{
    (void)arg;
    snprintf(handover_path, sizeof handover_path, "/tmp/weft-handover-%d.sock", (int)getpid());
    unlink(handover_path);
    weft_server *old = weft_start_unix_server(quiet_handler, NULL, handover_path, NULL);
    cr_assert(old);
    cr_expect_eq(weft_server_close(old), 0); /* removes the path once */
    /* Another server binds the path (here a plain socket); the old one is not
     * waited for: the loop's end must not remove the new socket file. */
    int other = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    strcpy(sun.sun_path, handover_path);
    cr_assert_eq(bind(other, (struct sockaddr *)&sun, sizeof sun), 0);
    cr_assert_eq(listen(other, 1), 0);
    return (void *)(intptr_t)other;
}

Test(server, a_closed_unix_server_removes_its_path_once)
{
    void *other = NULL;
    cr_assert_eq(weft_run(handover_main, NULL, &other), 0, "%s", weft_errmsg());
    cr_expect_eq(access(handover_path, F_OK), 0, "the new server's socket file was removed");
    close((int)(intptr_t)other);
    unlink(handover_path);
}


/* ---- compact tasks waiting for a server's end ------------------------------- */

/* Compact tasks' stacks move while they wait: two in wait_closed and one in
 * serve_forever, with frames of different shapes, all see the server's end; and a
 * serve_forever cancelled while another task waits in wait_closed hands that task
 * the end too. */
static void *compact_wait_closed(void *arg)
{
    char pad[200 + 300 * (int)(intptr_t)((weft_server **)arg)[1]];
    memset(pad, 'p', sizeof pad);
    int rc = weft_server_wait_closed(((weft_server **)arg)[0]);
    return (void *)(intptr_t)(rc == 0 && pad[sizeof pad - 1] == 'p');
}

static void *compact_serve(void *arg)
{
    char pad[1500];
    memset(pad, 's', sizeof pad);
    int rc = weft_server_serve_forever(arg);
    return (void *)(intptr_t)(rc == 0 && pad[7] == 's');
}

static void *compact_server_waits_main(void *arg)
{
    (void)arg;
    weft_spawn_options compact = {.compact = 1};
    weft_server *srv = weft_start_server(slow_handler, NULL, "127.0.0.1", 0, NULL);
    cr_assert(srv);
    int c = connect_tcp(weft_server_port(srv));
    cr_assert(c >= 0);
    cr_expect_eq(write(c, "hi\n", 3), 3);
    weft_server *args[2][2] = {{srv, (weft_server *)(intptr_t)0}, {srv, (weft_server *)(intptr_t)1}};
    weft_task *t[3] = {weft_spawn_opts(compact_wait_closed, args[0], &compact),
                       weft_spawn_opts(compact_wait_closed, args[1], &compact),
                       weft_spawn_opts(compact_serve, srv, &compact)};
    cr_expect_eq(weft_sleep(0.01), 0); /* all three wait; the handler sleeps */
    cr_expect_eq(weft_server_close(srv), 0);
    for (int i = 0; i < 3; i++) {
        void *r = NULL;
        cr_expect_eq(weft_await(t[i], &r), 0);
        cr_expect(r, "waiter %d did not see the end, or its frame changed", i);
    }
    close(c);

    /* serve_forever cancelled, another task in wait_closed, no connection open. */
    srv = weft_start_server(quiet_handler, NULL, "127.0.0.1", 0, NULL);
    cr_assert(srv);
    args[0][0] = srv;
    weft_task *serve = weft_spawn_opts(compact_serve, srv, &compact);
    weft_task *waiter = weft_spawn_opts(compact_wait_closed, args[0], &compact);
    cr_expect_eq(weft_yield(), 0);
    cr_expect(weft_cancel(serve, NULL));
    cr_expect_eq(weft_await(serve, NULL), -ECANCELED);
    void *r = NULL;
    cr_expect_eq(weft_await(waiter, &r), 0);
    cr_expect(r, "wait_closed did not see the end serve_forever made");
    return NULL;
}

Test(server, compact_tasks_wait_for_the_end)
{
    cr_assert_eq(weft_run(compact_server_waits_main, NULL, NULL), 0);
}
