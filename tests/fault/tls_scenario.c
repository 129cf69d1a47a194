/*
 * tls_scenario.c — the TLS layer's program for the fault sweep: run once per
 * injection point with that allocation (weft's or OpenSSL's), system call or
 * socket call failing (wrap.c built with WEFT_FAULT_NET and WEFT_FAULT_TLS), it
 * must end by itself with status 0 every time. A TLS server and client in one
 * process: a client context made; over TCP on 127.0.0.1 the handshake, lines
 * echoed, a read cancelled, the client's "bye" answered by the server's close with
 * close_notify (end of file, not WEFT_ETLS_EOF); a handshake refused for an unknown
 * CA; over a Unix socket a plain connection upgraded by weft_start_tls at both
 * ends, then a drained large write each way and the client's close with
 * close_notify; readline throughout. The certificates are made at test time by
 * tests/tls/make_certs.sh (the ctest fixture), in the directory given.
 *
 *   tls_scenario CERT_DIR
 *
 * ctest fault_sweep_tls runs weft's every point and OpenSSL's allocations once per
 * call site and step (sweep.py --openssl-by-site); the full sweep, by hand (3 to
 * 8 minutes plain, 14 to 16 with AddressSanitizer, on two busy cores):
 *
 *   tests/tls/make_certs.sh /tmp/certs
 *   tests/fault/sweep.py --deterministic --forbid "was never closed|not a failure \
 *       this call can have|wrong bytes|was trusted" BUILD/tests/fault/fault_tls_scenario /tmp/certs
 *
 * Deterministic numbering: OpenSSL fills process-wide caches on first use (error
 * strings, fetched algorithms, the random generator), so the whole scenario runs
 * once in a loop of its own before counting starts (fault_arm), then again in a
 * fresh loop, counted. The main server's context is made before; the client's and
 * the refused server's are made inside the counted run, so that the failures of
 * making a context (files read, OpenSSL's out of memory told from a bad file) are
 * swept too.
 *
 * It is written as a careful user writes: every result is looked at, a failure
 * ends that part, everything opened is closed on every path (sweep.py --forbid
 * catches a stream or server left for the loop's end). Beyond that, every error
 * must be one a real failure gives ("not a failure this call can have" otherwise:
 * -EINVAL, -EBUSY, -EAGAIN, WEFT_ESTATE... say weft blamed the caller or leaked an
 * internal code), and bytes that come back must be the bytes sent ("wrong bytes":
 * TLS lets no corrupted byte through, so only weft could). Both are forbidden too.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "weft.h"
#include "wrap.h"

#define BIG_BYTES (256 * 1024) /* one write larger than the high-water mark: drain waits */
#define WATCHDOG_S 10.0        /* far beyond a clean run: a run that reaches it hangs */

static char big[BIG_BYTES];    /* what "big" sends and "take" expects */
static char got[BIG_BYTES];    /* what the reader reads back */
static char ca_file[512];
static weft_tls_context *server_ctx;   /* localhost, signed by the test CA */
static char stranger_cert[512];        /* localhost, signed by a CA nobody trusts */
static char stranger_key[512];

/* ---- what each call may fail with ----------------------------------------------- */

/* The errors a failing allocation, descriptor or peer gives, as the headers list
 * them for the calls made here. Anything else (-EINVAL, -EBUSY, -EAGAIN,
 * WEFT_ESTATE, a positive value) would blame the caller or leak an internal code. */
static int plausible(int rc)
{
    switch (rc) {
    case -ENOMEM:
    case -EMFILE:
    case -EADDRINUSE:
    case -ECONNREFUSED:
    case -ECONNRESET:
    case -EPIPE:
    case -ENOTCONN:
    case WEFT_ENAMETEMP: /* the resolver's failures (the wrapper's EAI_AGAIN) */
    case WEFT_ERESOLVE:
    case WEFT_ECLOSED:
    case WEFT_EINCOMPLETE:
    case WEFT_ETLS:
    case WEFT_ETLS_UNKNOWN_CA:
    case WEFT_ETLS_HOSTNAME:
    case WEFT_ETLS_EXPIRED:
    case WEFT_ETLS_CERT:
    case WEFT_ETLS_VERSION:
    case WEFT_ETLS_EOF:
        return 1;
    default:
        return 0;
    }
}

/* Looks at a count or an error, and returns it: an implausible error is said
 * (sweep.py --forbid fails the point). */
static ssize_t counted(const char *call, ssize_t n)
{
    if (n < 0 && !plausible((int)n))
        fprintf(stderr, "tls_scenario: %s returned %zd (%s): not a failure this call can have (%s)\n", call, n,
                weft_strerror((int)n), weft_errmsg());
    return n;
}

/* The same for a status (0 or an error). */
static int checked(const char *call, int rc)
{
    return (int)counted(call, rc);
}

/* A context made of good files: WEFT_ETLS ("a file OpenSSL refuses", tls.h) would
 * blame the files for a failure to allocate, which is -ENOMEM. Except where OpenSSL
 * fails an allocation without saying so, and gives a reason a bad file would: one
 * in pem_lib.c leaves only the wrapper's "PEM lib"; its key size and certificate
 * checks, failing to allocate, call the key too small or the certificate invalid. */
static int context_checked(const char *call, int rc)
{
    static const char *const silent[] = {": PEM lib", ": ee key too small", ": invalid certificate",
                                         ": initialization error"};
    const char *m = weft_errmsg();
    bool excused = false;
    for (size_t i = 0; i < sizeof silent / sizeof silent[0]; i++)
        excused = excused || strstr(m, silent[i]) != NULL;
    if (rc == WEFT_ETLS && !excused) {
        fprintf(stderr, "tls_scenario: %s returned WEFT_ETLS for good files: not a failure this call can have (%s)\n",
                call, m);
        return rc;
    }
    return checked(call, rc);
}

/* Bytes that came back other than sent. */
static int wrong_bytes(const char *what)
{
    fprintf(stderr, "tls_scenario: wrong bytes: %s\n", what);
    return -EPROTO;
}

/* ---- the servers' side: one task per connection ------------------------------------ */

/*
 * Commands, one a line: "big\n": BIG_BYTES in one write, drained; "take\n" and
 * BIG_BYTES: "took\n" once they came, as sent; "bye\n": "bye\n" and the handler
 * returns (weft closes the stream with close_notify); any other line comes back as
 * it is. At the client's end of file, or any error, the handler returns.
 */
static void *serve(weft_stream *s, void *arg)
{
    (void)arg;
    for (;;) {
        const char *line;
        ssize_t n = weft_stream_readline(s, &line);
        if (counted("the server's readline", n) <= 0)
            return NULL;
        int rc;
        if (n == 4 && memcmp(line, "big\n", 4) == 0) {
            rc = checked("the server's big write", weft_stream_write(s, big, sizeof big));
        } else if (n == 5 && memcmp(line, "take\n", 5) == 0) {
            ssize_t r = counted("the server's readexactly", weft_stream_readexactly(s, got, sizeof got));
            rc = r < 0 ? (int)r : memcmp(got, big, sizeof got) == 0 ? 0 : wrong_bytes("take");
            if (rc == 0)
                rc = checked("the server's write", weft_stream_write(s, "took\n", 5));
        } else if (n == 4 && memcmp(line, "bye\n", 4) == 0) {
            (void)checked("the server's write", weft_stream_write(s, "bye\n", 4));
            return NULL;
        } else {
            rc = checked("the server's write", weft_stream_write(s, line, (size_t)n));
        }
        if (rc == 0)
            rc = checked("the server's drain", weft_stream_drain(s));
        if (rc != 0)
            return NULL;
    }
}

/* A plain server's connection that the client upgrades: "STARTTLS\n", "OK\n", the
 * handshake as the server, then the commands above in TLS. */
static void *serve_starttls(weft_stream *s, void *arg)
{
    const char *line;
    ssize_t n = counted("the server's readline", weft_stream_readline(s, &line));
    if (n <= 0)
        return NULL;
    if (n != 9 || memcmp(line, "STARTTLS\n", 9) != 0) {
        wrong_bytes("STARTTLS");
        return NULL;
    }
    int rc = checked("the server's write", weft_stream_write(s, "OK\n", 3));
    if (rc == 0)
        rc = checked("the server's weft_start_tls", weft_start_tls(s, server_ctx, NULL));
    return rc ? NULL : serve(s, arg);
}

/* ---- the client's side ---------------------------------------------------------------- */

/* Writes n bytes and waits until the stream's buffer is low. */
static int put(weft_stream *c, const char *p, size_t n)
{
    int rc = checked("weft_stream_write", weft_stream_write(c, p, n));
    return rc ? rc : checked("weft_stream_drain", weft_stream_drain(c));
}

/* Reads a line, which must be `want`. */
static int expect_line(weft_stream *c, const char *want)
{
    const char *answer;
    ssize_t r = counted("weft_stream_readline", weft_stream_readline(c, &answer));
    if (r < 0)
        return (int)r;
    size_t n = strlen(want);
    if (r == 0) /* the server ended (a failure on its side): this part ends too */
        return WEFT_ECLOSED;
    return (size_t)r == n && memcmp(answer, want, n) == 0 ? 0 : wrong_bytes(want);
}

/* Sends a line; its echo must come back. */
static int ask(weft_stream *c, const char *line)
{
    int rc = put(c, line, strlen(line));
    return rc ? rc : expect_line(c, line);
}

/* Nothing comes while it waits (the server waits for the next line): no bytes,
 * and no end of file. */
static void *reader(void *c)
{
    char b[4];
    ssize_t r = weft_stream_read(c, b, sizeof b);
    if (r >= 0)
        fprintf(stderr, "tls_scenario: wrong bytes: a read that waited for nothing gave %zd\n", r);
    return weft_fail(r < 0 ? (int)r : -EPROTO, "read: %s", r < 0 ? weft_errmsg() : "something came");
}

/* A read cancelled before anything came; the stream reads on afterwards. */
static int cancelled_read(weft_stream *c)
{
    weft_task *r = weft_spawn(reader, c);
    if (!r)
        return checked("weft_spawn", weft_errcode());
    int rc = weft_yield(); /* the reader starts waiting */
    (void)weft_cancel(r, "enough");
    int w = weft_await(r, NULL);
    if (w == -ECANCELED)
        return rc;
    return rc ? rc : checked("the cancelled read", w);
}

/* A TLS connection over TCP: the handshake, echo, a cancelled read, then "bye" and
 * the server's close_notify as end of file. */
static int full_session(weft_tls_context *client_ctx, int port)
{
    weft_stream *c = weft_open_connection(
        "127.0.0.1", port, &(weft_connect_options){.tls = client_ctx, .server_hostname = "localhost"});
    if (!c)
        return checked("weft_open_connection (TLS)", weft_errcode());
    int rc = ask(c, "echo one\n");
    if (rc == 0)
        rc = cancelled_read(c);
    if (rc == 0)
        rc = ask(c, "echo two\n");
    if (rc == 0)
        rc = ask(c, "bye\n");
    if (rc == 0) {
        /* The server's handler returned: its close_notify is the end of file. */
        char b[4];
        ssize_t r = counted("weft_stream_read", weft_stream_read(c, b, sizeof b));
        rc = r < 0 ? (int)r : r == 0 ? 0 : wrong_bytes("after bye");
    }
    int closed = checked("weft_stream_close", weft_stream_close(c));
    return rc ? rc : closed;
}

/* A large write each way, drained: the server's "big", the client's "take". */
static int large_writes(weft_stream *c)
{
    int rc = put(c, "big\n", 4);
    if (rc == 0) {
        ssize_t r = counted("weft_stream_readexactly", weft_stream_readexactly(c, got, sizeof got));
        rc = r < 0 ? (int)r : memcmp(got, big, sizeof got) == 0 ? 0 : wrong_bytes("big");
    }
    if (rc == 0)
        rc = put(c, "take\n", 5);
    if (rc == 0)
        rc = put(c, big, sizeof big);
    if (rc == 0)
        rc = expect_line(c, "took\n");
    return rc;
}

/* A server whose certificate no CA of ours signed: the client refuses it. */
static int refused_session(weft_tls_context *client_ctx)
{
    weft_tls_context *stranger_ctx = weft_tls_server_context(
        &(weft_tls_options){.cert_file = stranger_cert, .key_file = stranger_key});
    if (!stranger_ctx)
        return context_checked("weft_tls_server_context", weft_errcode());
    weft_server *srv = weft_start_server(serve, NULL, "127.0.0.1", 0, &(weft_server_options){.tls = stranger_ctx});
    weft_tls_context_free(stranger_ctx); /* the server holds it */
    if (!srv)
        return checked("weft_start_server (TLS)", weft_errcode());
    int port = weft_server_port(srv);
    int rc = port < 0 ? checked("weft_server_port", port) : 0;
    if (rc == 0) {
        weft_stream *c = weft_open_connection(
            "127.0.0.1", port, &(weft_connect_options){.tls = client_ctx, .server_hostname = "localhost"});
        if (c) {
            fprintf(stderr, "tls_scenario: a server signed by an unknown CA was trusted\n");
            (void)weft_stream_close(c);
            rc = -EPROTO;
        } else {
            rc = checked("weft_open_connection (unknown CA)", weft_errcode());
            /* Without a fault, the refusal is the expected end of this part. */
            if (rc == WEFT_ETLS_UNKNOWN_CA)
                rc = 0;
            else if (!getenv("WEFT_FAULT_AT"))
                fprintf(stderr, "tls_scenario: an unknown CA gave %d (%s), not WEFT_ETLS_UNKNOWN_CA\n", rc,
                        weft_errmsg());
        }
    }
    (void)weft_server_close(srv);
    int w = checked("weft_server_wait_closed", weft_server_wait_closed(srv));
    return rc ? rc : w;
}

/* A plain connection over a Unix socket, upgraded in place at both ends, then the
 * large writes, then closed by the client (its close_notify is the server's end of
 * file). Unix, for the large writes: over TCP on loopback, how the bytes arrive in
 * pieces follows the kernel's timing (window growth), and OpenSSL reads what has
 * come, so the number of reads, and the numbering, would vary from run to run. */
static int starttls_session(weft_tls_context *client_ctx)
{
    char path[64];
    snprintf(path, sizeof path, "@weft-fault-tls-%d", (int)getpid());
    weft_server *srv = weft_start_unix_server(serve_starttls, NULL, path, NULL);
    if (!srv)
        return checked("weft_start_unix_server", weft_errcode());
    weft_stream *c = weft_open_unix_connection(path, NULL);
    int rc = c ? 0 : checked("weft_open_unix_connection", weft_errcode());
    if (rc == 0)
        rc = put(c, "STARTTLS\n", 9);
    if (rc == 0)
        rc = expect_line(c, "OK\n");
    if (rc == 0)
        rc = checked("weft_start_tls", weft_start_tls(c, client_ctx, "localhost"));
    if (rc == 0)
        rc = ask(c, "echo three\n");
    if (rc == 0)
        rc = large_writes(c);
    if (c) {
        int closed = checked("weft_stream_close", weft_stream_close(c));
        rc = rc ? rc : closed;
    }
    (void)weft_server_close(srv);
    int w = checked("weft_server_wait_closed", weft_server_wait_closed(srv));
    return rc ? rc : w;
}

/* The scenario's TLS part, from the client's context to the last server closed. */
static int tls_part(void)
{
    weft_tls_context *client_ctx = weft_tls_client_context(&(weft_tls_options){.ca_file = ca_file});
    if (!client_ctx)
        return context_checked("weft_tls_client_context", weft_errcode());
    weft_server *srv = weft_start_server(serve, NULL, "127.0.0.1", 0,
                                         &(weft_server_options){.tls = server_ctx, .task = {.name = "tls conn"}});
    int rc = srv ? 0 : checked("weft_start_server (TLS)", weft_errcode());
    if (srv) {
        int port = weft_server_port(srv);
        rc = port < 0 ? checked("weft_server_port", port) : full_session(client_ctx, port);
        (void)weft_server_close(srv);
        int w = checked("weft_server_wait_closed", weft_server_wait_closed(srv));
        rc = rc ? rc : w;
    }
    if (rc == 0)
        rc = refused_session(client_ctx);
    if (rc == 0)
        rc = starttls_session(client_ctx);
    weft_tls_context_free(client_ctx);
    return rc;
}

typedef struct outcome {
    int timed_out;
    int rc;
} outcome;

static void *amain(void *arg)
{
    outcome *out = arg;
    /* A careful user bounds the whole: a hang becomes a status, not a kill. */
    weft_timeout *watchdog = weft_timeout_enter(WATCHDOG_S);
    out->rc = tls_part();
    if (out->rc)
        fprintf(stderr, "tls_scenario: the TLS part ended: %s\n", weft_errmsg());
    if (watchdog) {
        out->timed_out = weft_timeout_expired(watchdog);
        (void)weft_timeout_exit(watchdog, 0);
    }
    return NULL;
}

/* One run, in a loop of its own; 0 when it ran to its end (and, when strict, every
 * part succeeded). */
static int run_once(const char *which, int strict)
{
    outcome out = {0};
    int rc = weft_run(amain, &out, NULL);
    if (out.timed_out) {
        fprintf(stderr, "tls_scenario: the %s run was still going after %.0f s: a hang\n", which, WATCHDOG_S);
        return 1;
    }
    /* With a fault injected, any plausible error is an acceptable outcome (the sweep
     * looks for crashes, hangs, leaks, lost handles and the reports above). Without
     * one, every part must work: a part that fails by itself hides its calls. */
    if (strict && (rc || out.rc)) {
        fprintf(stderr, "tls_scenario: the %s run failed without a fault (weft_run %d, TLS %d)\n", which, rc,
                out.rc);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (fault_tls_install() != 0) {
        fprintf(stderr, "tls_scenario: OpenSSL allocated before main: its allocations cannot be swept\n");
        return 1;
    }
    if (argc != 2) {
        fprintf(stderr, "usage: tls_scenario CERT_DIR (made by tests/tls/make_certs.sh)\n");
        return 2;
    }
    memset(big, 'b', sizeof big);
    for (size_t i = 0; i < sizeof big; i += 61)
        big[i] = (char)('a' + i % 26); /* not one byte repeated: a misplaced piece shows */
    char cert[512], key[512];
    snprintf(ca_file, sizeof ca_file, "%s/ca.pem", argv[1]);
    snprintf(cert, sizeof cert, "%s/server.pem", argv[1]);
    snprintf(key, sizeof key, "%s/server.key", argv[1]);
    server_ctx = weft_tls_server_context(&(weft_tls_options){.cert_file = cert, .key_file = key});
    snprintf(stranger_cert, sizeof stranger_cert, "%s/stranger.pem", argv[1]);
    snprintf(stranger_key, sizeof stranger_key, "%s/stranger.key", argv[1]);
    if (!server_ctx) {
        fprintf(stderr, "tls_scenario: the server context: %s\n", weft_errmsg());
        return 1;
    }
    /* The warm-up: everything once, uncounted, so that OpenSSL's caches are full. */
    int rc = run_once("warm-up", 1);
    if (rc == 0) {
        fault_arm();
        rc = run_once("counted", !getenv("WEFT_FAULT_AT"));
    }
    weft_tls_context_free(server_ctx);
    return rc;
}
