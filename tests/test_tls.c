/*
 * test_tls.c — TLS over weft's streams (src/tls/), against real peers on loopback:
 * a weft client and a weft server (lines, a megabyte each way with drain, ALPN,
 * session resumption, SNI, close_notify), a weft client against `openssl s_server` and Python's asyncio TLS
 * server (tls/asyncio_server.py), `openssl s_client` and
 * `curl --cacert` against a weft server, each certificate refusal with its own code
 * (wrong host name, unknown CA, expired, protocol version), the handshake timeout,
 * a peer that ends without close_notify, start_tls on a plain connection, TLS
 * over a Unix socket (a TLS Unix server, a client upgraded with start_tls),
 * sendfile on a TLS stream (the file read and encrypted, other writes after it), and
 * mutual TLS (a client certificate let in and named by the peer-subject getters;
 * none, or an unknown CA's, refused, as each side sees it, in TLS 1.3 against a weft
 * server and in TLS 1.2 against `openssl s_server -Verify`, and with a certificate
 * chosen by SNI), and CAs read from a
 * directory hashed by `openssl rehash` (ca_dir), and start_tls on a server whose
 * readline read ahead into the client's ClientHello, and sessions resumed only with
 * the host and port they were made with, and a TLS Unix connection made in one call.
 * Certificates are made at test time by tests/tls/make_certs.sh (openssl req, x509, ca).
 */
#define _GNU_SOURCE
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

TestSuite(tls, .timeout = 60);

extern char **environ;

static char certdir[256];

/* The certificates are made once, by the runner before it starts the tests, in a
 * directory the tests find in WEFT_TLS_CERTDIR (they run in processes of their own)
 * and that the runner removes at the end. */
ReportHook(PRE_ALL)(struct criterion_test_set *set)
{
    (void)set;
    snprintf(certdir, sizeof certdir, "%s/weft-tls-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(certdir))
        return;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "bash %s %s", WEFT_TLS_CERTS_SCRIPT, certdir);
    if (system(cmd) == 0)
        setenv("WEFT_TLS_CERTDIR", certdir, 1);
}

ReportHook(POST_ALL)(struct criterion_global_stats *stats)
{
    (void)stats;
    const char *dir = getenv("WEFT_TLS_CERTDIR");
    if (dir && strstr(dir, "/weft-tls-")) {
        char cmd[512];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0)
            fprintf(stderr, "test_tls: could not remove %s\n", dir);
    }
}

static void make_certs(void)
{
    const char *dir = getenv("WEFT_TLS_CERTDIR");
    cr_assert(dir, "the certificates were not made (tests/tls/make_certs.sh failed before the tests)");
    snprintf(certdir, sizeof certdir, "%s", dir);
}

static const char *cert(const char *name)
{
    static char paths[8][320];
    static int next;
    char *p = paths[next++ % 8];
    snprintf(p, sizeof paths[0], "%s/%s", certdir, name);
    return p;
}

static weft_tls_context *server_ctx(const char *leaf, const char *const *alpn)
{
    char pem[64], key[64];
    snprintf(pem, sizeof pem, "%s.pem", leaf);
    snprintf(key, sizeof key, "%s.key", leaf);
    weft_tls_context *ctx =
        weft_tls_server_context(&(weft_tls_options){.cert_file = cert(pem), .key_file = cert(key), .alpn = alpn});
    cr_expect(ctx, "weft_tls_server_context: %s", weft_errmsg());
    return ctx;
}

static weft_tls_context *client_ctx(const char *ca, const char *const *alpn)
{
    weft_tls_context *ctx = weft_tls_client_context(&(weft_tls_options){.ca_file = cert(ca), .alpn = alpn});
    cr_expect(ctx, "weft_tls_client_context: %s", weft_errmsg());
    return ctx;
}

/* A string that may be NULL, compared. */
#define expect_is(got, want)                                                                   \
    do {                                                                                       \
        const char *got_ = (got);                                                              \
        cr_expect(got_ && strcmp(got_, (want)) == 0, "%s is %s, not %s", #got, got_ ? got_ : "NULL", \
                  (want));                                                                     \
    } while (0)

/* A free TCP port on 127.0.0.1 (for peers that are not weft). */
static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

/* ---- a weft client and a weft server --------------------------------------- */

static void *echo_handler(weft_stream *s, void *arg)
{
    (void)arg;
    const char *line;
    ssize_t n;
    while ((n = weft_stream_readline(s, &line)) > 0) {
        if (weft_stream_write(s, line, (size_t)n) != 0 || weft_stream_drain(s) != 0)
            break;
    }
    return NULL;
}

#define BIG (1024 * 1024)

static void *big_writer(void *arg)
{
    weft_stream *s = arg;
    char *data = malloc(BIG);
    for (size_t i = 0; i < BIG; i++)
        data[i] = (i % 64 == 63) ? '\n' : (char)('a' + i % 26);
    for (size_t at = 0; at < BIG; at += 100000) {
        size_t n = BIG - at < 100000 ? BIG - at : 100000;
        cr_expect_eq(weft_stream_write(s, data + at, n), 0, "write: %s", weft_errmsg());
        cr_expect_eq(weft_stream_drain(s), 0, "drain: %s", weft_errmsg());
    }
    free(data);
    return NULL;
}

static void *pair_main(void *arg)
{
    (void)arg;
    const char *server_alpn[] = {"h2", "http/1.1", NULL};
    const char *client_alpn[] = {"http/1.1", "h2", NULL};
    weft_tls_context *sctx = server_ctx("server", server_alpn);
    weft_tls_context *cctx = client_ctx("ca.pem", client_alpn);
    weft_server *srv = weft_start_server(echo_handler, NULL, "127.0.0.1", 0, &(weft_server_options){.tls = sctx});
    cr_assert(srv, "weft_start_server: %s", weft_errmsg());
    weft_tls_context_free(sctx); /* the server keeps its own reference */
    int port = weft_server_port(srv);

    /* By address: the certificate's IP entry is checked. */
    weft_stream *s = weft_open_connection("127.0.0.1", port, &(weft_connect_options){.tls = cctx});
    cr_assert(s, "weft_open_connection: %s", weft_errmsg());
    expect_is(weft_stream_tls_version(s), "TLSv1.3");
    const char *alpn = weft_stream_tls_alpn(s);
    cr_expect(alpn && strcmp(alpn, "h2") == 0, "ALPN: the server's first choice, got %s", alpn ? alpn : "none");

    cr_expect_eq(weft_stream_write(s, "hello\n", 6), 0);
    const char *line;
    cr_expect_eq(weft_stream_readline(s, &line), 6, "readline: %s", weft_errmsg());
    cr_expect_eq(memcmp(line, "hello\n", 6), 0);

    /* A megabyte each way, the writer draining while the reader reads. */
    weft_task *w = weft_spawn(big_writer, s);
    char *back = malloc(BIG);
    cr_expect_eq(weft_stream_readexactly(s, back, BIG), BIG, "readexactly: %s", weft_errmsg());
    for (size_t i = 0; i < BIG; i++) {
        if (back[i] != ((i % 64 == 63) ? '\n' : (char)('a' + i % 26))) {
            cr_expect(false, "byte %zu differs", i);
            break;
        }
    }
    free(back);
    cr_expect_eq(weft_await(w, NULL), 0);
    cr_expect_eq(weft_stream_close(s), 0, "close: %s", weft_errmsg());

    /* By name: SNI and the certificate's DNS entry. */
    s = weft_open_connection("127.0.0.1", port, &(weft_connect_options){.tls = cctx, .server_hostname = "localhost"});
    cr_assert(s, "weft_open_connection by name: %s", weft_errmsg());
    cr_expect_not(weft_stream_tls_resumed(s), "a first connection to a name is a full handshake");
    cr_expect_eq(weft_stream_write(s, "again\n", 6), 0);
    cr_expect_eq(weft_stream_readline(s, &line), 6);
    cr_expect_eq(weft_stream_close(s), 0);

    /* The session (a TLS 1.3 ticket, read with the reply) is resumed. */
    s = weft_open_connection("127.0.0.1", port, &(weft_connect_options){.tls = cctx, .server_hostname = "localhost"});
    cr_assert(s, "weft_open_connection, resuming: %s", weft_errmsg());
    cr_expect(weft_stream_tls_resumed(s), "the second connection to localhost resumes its session");
    cr_expect_eq(weft_stream_write(s, "third\n", 6), 0);
    cr_expect_eq(weft_stream_readline(s, &line), 6);
    cr_expect_eq(weft_stream_close(s), 0);

    weft_tls_context_free(cctx);
    weft_server_close(srv);
    cr_expect_eq(weft_server_wait_closed(srv), 0);
    return NULL;
}

Test(tls, weft_client_and_server)
{
    make_certs();
    cr_assert_eq(weft_run(pair_main, NULL, NULL), 0);
}

/* ---- ending: close_notify, and a peer that ends without it ----------------- */

static void *bye_handler(weft_stream *s, void *arg)
{
    bool rude = arg != NULL;
    weft_stream_write(s, "bye\n", 4);
    if (rude) {
        /* The TCP connection ends with no close_notify before it. */
        weft_stream_drain(s);
        shutdown(weft_stream_fd(s), SHUT_WR);
        char c;
        weft_stream_read(s, &c, 1); /* until the client goes */
    }
    return NULL; /* weft closes it: close_notify first */
}

static void *ending_main(void *arg)
{
    (void)arg;
    weft_tls_context *sctx = server_ctx("server", NULL);
    weft_tls_context *cctx = client_ctx("ca.pem", NULL);
    for (int rude = 0; rude < 2; rude++) {
        weft_server *srv = weft_start_server(bye_handler, rude ? (void *)1 : NULL, "127.0.0.1", 0,
                                             &(weft_server_options){.tls = sctx});
        cr_assert(srv);
        weft_stream *s = weft_open_connection("127.0.0.1", weft_server_port(srv), &(weft_connect_options){.tls = cctx});
        cr_assert(s, "connect: %s", weft_errmsg());
        const char *line;
        cr_expect_eq(weft_stream_readline(s, &line), 4);
        char buf[16];
        ssize_t n = weft_stream_read(s, buf, sizeof buf);
        if (rude) {
            cr_expect_eq(n, WEFT_ETLS_EOF, "no close_notify: %zd %s", n, weft_errmsg());
            cr_expect(strstr(weft_errmsg(), "close_notify"), "message: %s", weft_errmsg());
        } else {
            cr_expect_eq(n, 0, "close_notify is end of file: %zd %s", n, weft_errmsg());
            cr_expect(weft_stream_at_eof(s));
        }
        weft_stream_close(s);
        weft_server_close(srv);
        weft_server_wait_closed(srv);
    }
    weft_tls_context_free(sctx);
    weft_tls_context_free(cctx);
    return NULL;
}

Test(tls, close_notify_and_its_absence)
{
    make_certs();
    cr_assert_eq(weft_run(ending_main, NULL, NULL), 0);
}

/* ---- refusals, each with its own code --------------------------------------- */

typedef struct refusal {
    const char *leaf;     /* the server's certificate */
    const char *hostname; /* what the client asks for */
    int code;
} refusal;

static void *quiet_handler(weft_stream *s, void *arg)
{
    (void)s;
    (void)arg;
    cr_expect(false, "a handler ran for a refused handshake");
    return NULL;
}

static void *refusal_main(void *arg)
{
    refusal *r = arg;
    weft_tls_context *sctx = server_ctx(r->leaf, NULL);
    weft_tls_context *cctx = client_ctx("ca.pem", NULL);
    weft_server *srv = weft_start_server(quiet_handler, NULL, "127.0.0.1", 0, &(weft_server_options){.tls = sctx});
    cr_assert(srv);
    weft_stream *s = weft_open_connection("127.0.0.1", weft_server_port(srv),
                                          &(weft_connect_options){.tls = cctx, .server_hostname = r->hostname});
    cr_expect_null(s);
    cr_expect_eq(weft_errcode(), r->code, "%s: got %s: %s", r->leaf, weft_errname(weft_errcode()), weft_errmsg());
    cr_log_info("%s: %s", weft_errname(weft_errcode()), weft_errmsg());
    weft_server_close(srv);
    weft_server_wait_closed(srv);
    weft_tls_context_free(sctx);
    weft_tls_context_free(cctx);
    return NULL;
}

Test(tls, wrong_hostname)
{
    make_certs();
    refusal r = {"server", "wrong.example", WEFT_ETLS_HOSTNAME};
    cr_assert_eq(weft_run(refusal_main, &r, NULL), 0);
}

Test(tls, unknown_ca)
{
    make_certs();
    refusal r = {"stranger", "localhost", WEFT_ETLS_UNKNOWN_CA};
    cr_assert_eq(weft_run(refusal_main, &r, NULL), 0);
}

Test(tls, expired_certificate)
{
    make_certs();
    refusal r = {"expired", "localhost", WEFT_ETLS_EXPIRED};
    cr_assert_eq(weft_run(refusal_main, &r, NULL), 0);
}

static void *insecure_main(void *arg)
{
    (void)arg;
    weft_tls_context *sctx = server_ctx("stranger", NULL);
    weft_tls_context *cctx = client_ctx("ca.pem", NULL);
    cr_expect_eq(weft_tls_context_insecure_skip_verify(cctx), 0);
    cr_expect_eq(weft_tls_context_insecure_skip_verify(sctx), -EINVAL);
    weft_server *srv = weft_start_server(echo_handler, NULL, "127.0.0.1", 0, &(weft_server_options){.tls = sctx});
    weft_stream *s = weft_open_connection("127.0.0.1", weft_server_port(srv),
                                          &(weft_connect_options){.tls = cctx, .server_hostname = "wrong.example"});
    cr_expect(s, "verification off, explicitly: %s", weft_errmsg());
    if (s)
        weft_stream_close(s);
    /* Contexts of the wrong end are refused. */
    cr_expect_null(weft_open_connection("127.0.0.1", weft_server_port(srv), &(weft_connect_options){.tls = sctx}));
    cr_expect_eq(weft_errcode(), -EINVAL);
    cr_expect_null(weft_start_server(echo_handler, NULL, "127.0.0.1", 0, &(weft_server_options){.tls = cctx}));
    cr_expect_eq(weft_errcode(), -EINVAL);
    weft_server_close(srv);
    weft_server_wait_closed(srv);
    weft_tls_context_free(sctx);
    weft_tls_context_free(cctx);
    return NULL;
}

Test(tls, verification_off_only_explicitly)
{
    make_certs();
    cr_assert_eq(weft_run(insecure_main, NULL, NULL), 0);
}

/* ---- SNI: a certificate by name ------------------------------------------------ */

/* Says which name the client asked for, and the cipher: "name|cipher\n". */
static void *sni_handler(weft_stream *s, void *arg)
{
    (void)arg;
    const char *name = weft_stream_tls_server_name(s);
    const char *cipher = weft_stream_tls_cipher(s);
    char line[256];
    int n = snprintf(line, sizeof line, "%s|%s\n", name ? name : "(none)", cipher ? cipher : "(none)");
    (void)weft_stream_write(s, line, (size_t)n);
    return NULL;
}

/* A plain server that answers as HTTP does, before any TLS. */
static void *plain_handler(weft_stream *s, void *arg)
{
    (void)arg;
    (void)weft_stream_write(s, "HTTP/1.0 200 OK\r\n\r\n", 19);
    return NULL;
}

static void *sni_main(void *arg)
{
    (void)arg;
    weft_tls_context *sctx = server_ctx("server", NULL);
    cr_expect_eq(weft_tls_context_add_certificate(sctx, "other.example", cert("other.pem"), cert("other.key")), 0,
                 "%s", weft_errmsg());
    weft_tls_context *cctx = client_ctx("ca.pem", NULL);
    cr_expect_eq(weft_tls_context_add_certificate(cctx, "x", cert("other.pem"), NULL), -EINVAL);
    weft_server *srv = weft_start_server(sni_handler, NULL, "127.0.0.1", 0, &(weft_server_options){.tls = sctx});
    cr_assert(srv);
    cr_expect_eq(weft_tls_context_add_certificate(sctx, "late.example", cert("other.pem"), cert("other.key")),
                 WEFT_ESTATE);
    int port = weft_server_port(srv);
    const char *names[] = {"other.example", "localhost", "wrong.example"};
    int codes[] = {0, 0, WEFT_ETLS_HOSTNAME};
    for (int i = 0; i < 3; i++) {
        weft_stream *s = weft_open_connection("127.0.0.1", port,
                                              &(weft_connect_options){.tls = cctx, .server_hostname = names[i]});
        cr_expect_eq(s ? 0 : weft_errcode(), codes[i], "%s: %s", names[i], weft_errmsg());
        if (s) {
            /* Both ends name the host asked for, and the cipher agreed. */
            expect_is(weft_stream_tls_server_name(s), names[i]);
            const char *cipher = weft_stream_tls_cipher(s);
            cr_expect(cipher && strncmp(cipher, "TLS_", 4) == 0, "cipher %s", cipher ? cipher : "NULL");
            const char *line;
            ssize_t n = weft_stream_readline(s, &line);
            char want[256];
            snprintf(want, sizeof want, "%s|%s\n", names[i], cipher ? cipher : "?");
            cr_expect(n == (ssize_t)strlen(want) && memcmp(line, want, (size_t)n) == 0, "the server said %.*s",
                      (int)(n > 0 ? n : 0), n > 0 ? line : "");
            weft_stream_close(s);
        }
    }
    /* By address, no name is sent. */
    weft_tls_context *trusting = client_ctx("ca.pem", NULL);
    weft_stream *s = weft_open_connection("127.0.0.1", port, &(weft_connect_options){.tls = trusting});
    cr_assert(s, "%s", weft_errmsg());
    cr_expect_null(weft_stream_tls_server_name(s));
    weft_stream_close(s);
    cr_expect_null(weft_stream_tls_cipher(NULL));
    /* A TLS client at a plain port is told so. */
    weft_server *plain = weft_start_server(plain_handler, NULL, "127.0.0.1", 0, NULL);
    cr_assert(plain);
    s = weft_open_connection("127.0.0.1", weft_server_port(plain), &(weft_connect_options){.tls = trusting});
    cr_expect_null(s);
    cr_expect(strstr(weft_errmsg(), "does not speak TLS"), "%s: %s", weft_errname(weft_errcode()), weft_errmsg());
    weft_server_close(plain);
    weft_server_wait_closed(plain);
    weft_tls_context_free(trusting);
    weft_server_close(srv);
    weft_server_wait_closed(srv);
    weft_tls_context_free(sctx);
    weft_tls_context_free(cctx);
    return NULL;
}

Test(tls, sni_picks_the_certificate)
{
    make_certs();
    cr_assert_eq(weft_run(sni_main, NULL, NULL), 0);
}

/* ---- the handshake timeout --------------------------------------------------- */

static void *silent_handler(weft_stream *s, void *arg)
{
    (void)arg;
    char buf[4096];
    while (weft_stream_read(s, buf, sizeof buf) > 0) {
    }
    return NULL;
}

static void *timeout_main(void *arg)
{
    (void)arg;
    weft_server *srv = weft_start_server(silent_handler, NULL, "127.0.0.1", 0, NULL); /* never answers */
    weft_tls_context *cctx =
        weft_tls_client_context(&(weft_tls_options){.ca_file = cert("ca.pem"), .handshake_timeout = 0.2});
    double t0 = weft_time();
    weft_stream *s = weft_open_connection("127.0.0.1", weft_server_port(srv), &(weft_connect_options){.tls = cctx});
    cr_expect_null(s);
    cr_expect_eq(weft_errcode(), WEFT_ETLS_TIMEOUT, "%s", weft_errmsg());
    double took = weft_time() - t0;
    cr_expect(took >= 0.19 && took < 5, "took %.3f s", took);

    /* A scope of the caller's around the call: its own expiry, not the handshake's. */
    weft_tls_context *patient = client_ctx("ca.pem", NULL);
    weft_timeout *to = weft_timeout_enter(0.1);
    s = weft_open_connection("127.0.0.1", weft_server_port(srv), &(weft_connect_options){.tls = patient});
    int rc = weft_timeout_exit(to, s ? 0 : weft_errcode());
    cr_expect_null(s);
    cr_expect_eq(rc, -ETIMEDOUT, "the caller's scope: %s", weft_errname(rc));
    weft_tls_context_free(patient);
    weft_server_close(srv);
    weft_server_abort_clients(srv);
    weft_server_wait_closed(srv);
    weft_tls_context_free(cctx);
    return NULL;
}

Test(tls, handshake_timeout)
{
    make_certs();
    cr_assert_eq(weft_run(timeout_main, NULL, NULL), 0);
}

/* ---- start_tls on a plain connection ------------------------------------------ */

static void *starttls_handler(weft_stream *s, void *arg)
{
    weft_tls_context *sctx = arg;
    const char *line;
    ssize_t n = weft_stream_readline(s, &line);
    cr_expect(n == 9 && memcmp(line, "STARTTLS\n", 9) == 0);
    weft_stream_write(s, "220 go ahead\n", 13);
    cr_expect_eq(weft_start_tls(s, sctx, NULL), 0, "server start_tls: %s", weft_errmsg());
    echo_handler(s, NULL);
    return NULL;
}

static void *starttls_main(void *arg)
{
    (void)arg;
    weft_tls_context *sctx = server_ctx("server", NULL);
    weft_tls_context *cctx = client_ctx("ca.pem", NULL);
    weft_server *srv = weft_start_server(starttls_handler, sctx, "127.0.0.1", 0, NULL);
    cr_assert(srv);
    weft_stream *s = weft_open_connection("127.0.0.1", weft_server_port(srv), NULL);
    cr_assert(s);
    cr_expect_null(weft_stream_tls_version(s));
    weft_stream_write(s, "STARTTLS\n", 9);
    const char *line;
    cr_expect_eq(weft_stream_readline(s, &line), 13);
    cr_expect_eq(weft_start_tls(s, cctx, "localhost"), 0, "client start_tls: %s", weft_errmsg());
    expect_is(weft_stream_tls_version(s), "TLSv1.3");
    cr_expect_eq(weft_start_tls(s, cctx, "localhost"), WEFT_ESTATE);
    weft_stream_write(s, "secret\n", 7);
    cr_expect_eq(weft_stream_readline(s, &line), 7);
    cr_expect_eq(memcmp(line, "secret\n", 7), 0);
    cr_expect_eq(weft_stream_close(s), 0);
    weft_server_close(srv);
    weft_server_wait_closed(srv);
    weft_tls_context_free(sctx);
    weft_tls_context_free(cctx);
    return NULL;
}

Test(tls, start_tls)
{
    make_certs();
    cr_assert_eq(weft_run(starttls_main, NULL, NULL), 0);
}

/* ---- over a Unix socket --------------------------------------------------------- */

static void *unix_main(void *arg)
{
    (void)arg;
    char path[108];
    snprintf(path, sizeof path, "@weft-tls-test-%d", (int)getpid());
    weft_tls_context *sctx = server_ctx("server", NULL);
    weft_tls_context *cctx = client_ctx("ca.pem", NULL);
    weft_server *srv = weft_start_unix_server(echo_handler, NULL, path, &(weft_server_options){.tls = sctx});
    cr_assert(srv, "weft_start_unix_server: %s", weft_errmsg());
    weft_stream *s = weft_open_unix_connection(path, NULL);
    cr_assert(s, "%s", weft_errmsg());
    cr_expect_eq(weft_start_tls(s, cctx, "localhost"), 0, "start_tls over a Unix socket: %s", weft_errmsg());
    weft_stream_write(s, "unix\n", 5);
    const char *line;
    cr_expect_eq(weft_stream_readline(s, &line), 5);
    cr_expect_eq(memcmp(line, "unix\n", 5), 0);
    cr_expect_eq(weft_stream_close(s), 0);
    weft_server_close(srv);
    weft_server_wait_closed(srv);
    weft_tls_context_free(sctx);
    weft_tls_context_free(cctx);
    return NULL;
}

Test(tls, over_a_unix_socket)
{
    make_certs();
    cr_assert_eq(weft_run(unix_main, NULL, NULL), 0);
}

/* ---- openssl s_server as the peer ------------------------------------------- */

static pid_t spawn(char *const argv[])
{
    pid_t pid;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
    cr_assert_eq(posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    return pid;
}

typedef struct s_server_case {
    int port;
    int min_version;
    int expect; /* 0: a page; else the error */
    int max_version;
    const char *version; /* the protocol expected, when a page */
} s_server_case;

/* Connects until s_server listens (it takes a moment to start). */
static weft_stream *connect_retrying(int port, weft_tls_context *ctx)
{
    for (int i = 0; i < 100; i++) {
        weft_stream *s = weft_open_connection("127.0.0.1", port,
                                              &(weft_connect_options){.tls = ctx, .server_hostname = "localhost"});
        if (s || weft_errcode() != -ECONNREFUSED)
            return s;
        weft_sleep(0.05);
    }
    return NULL;
}

static void *s_server_main(void *arg)
{
    s_server_case *c = arg;
    const char *alpn[] = {"http/1.1", NULL};
    weft_tls_context *cctx = weft_tls_client_context(
        &(weft_tls_options){.ca_file = cert("ca.pem"), .alpn = alpn, .min_version = c->min_version,
                             .max_version = c->max_version});
    weft_stream *s = connect_retrying(c->port, cctx);
    if (c->expect) {
        cr_expect_null(s);
        cr_expect_eq(weft_errcode(), c->expect, "got %s: %s", weft_errname(weft_errcode()), weft_errmsg());
        cr_log_info("%s", weft_errmsg());
    } else {
        cr_assert(s, "connect to s_server: %s", weft_errmsg());
        expect_is(weft_stream_tls_alpn(s), "http/1.1");
        expect_is(weft_stream_tls_version(s), c->version);
        const char *req = "GET / HTTP/1.0\r\n\r\n";
        weft_stream_write(s, req, strlen(req));
        const char *line;
        ssize_t n = weft_stream_readline(s, &line);
        cr_expect(n > 12 && memcmp(line, "HTTP/1.0 200", 12) == 0, "s_server said %.*s", (int)(n > 0 ? n : 0),
                  n > 0 ? line : "");
        weft_stream_close(s);
    }
    weft_tls_context_free(cctx);
    return NULL;
}

static void against_s_server(const char *version_flag, int min_version, int max_version, int expect,
                             const char *version)
{
    make_certs();
    s_server_case c = {free_port(), min_version, expect, max_version, version};
    char accept[32];
    snprintf(accept, sizeof accept, "127.0.0.1:%d", c.port);
    char *argv[] = {"openssl", "s_server", "-quiet", "-accept", accept, "-cert", (char *)cert("server.pem"), "-key",
                    (char *)cert("server.key"), "-www", "-alpn", "http/1.1", (char *)version_flag, NULL};
    pid_t pid = spawn(argv);
    int rc = weft_run(s_server_main, &c, NULL);
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    cr_assert_eq(rc, 0);
}

Test(tls, client_against_openssl_s_server)
{
    against_s_server(NULL, 0, 0, 0, "TLSv1.3");
}

Test(tls, max_version_keeps_to_tls_1_2)
{
    against_s_server(NULL, 0, WEFT_TLS_1_2, 0, "TLSv1.2");
}

Test(tls, bad_versions_refused)
{
    cr_expect_null(weft_tls_client_context(&(weft_tls_options){.max_version = 11}));
    cr_expect_eq(weft_errcode(), -EINVAL);
    cr_expect_null(weft_tls_client_context(&(weft_tls_options){.min_version = WEFT_TLS_1_3, .max_version = WEFT_TLS_1_2}));
    cr_expect_eq(weft_errcode(), -EINVAL);
    cr_expect(strstr(weft_errmsg(), "below min_version"), "%s", weft_errmsg());
}

Test(tls, protocol_version_refused)
{
    against_s_server("-tls1_2", WEFT_TLS_1_3, 0, WEFT_ETLS_VERSION, NULL);
}

/* ---- Python's asyncio TLS server as the peer ---------------------------------- */

static void *asyncio_main(void *arg)
{
    int port = *(int *)arg;
    const char *alpn[] = {"h2", NULL};
    weft_tls_context *cctx = client_ctx("ca.pem", alpn);
    weft_stream *s = connect_retrying(port, cctx);
    cr_assert(s, "connect to asyncio: %s", weft_errmsg());
    expect_is(weft_stream_tls_alpn(s), "h2");
    weft_stream_write(s, "hello\n", 6);
    const char *line;
    ssize_t n = weft_stream_readline(s, &line);
    cr_expect(n == 10 && memcmp(line, "h2: hello\n", 10) == 0, "asyncio said %.*s", (int)(n > 0 ? n : 0),
              n > 0 ? line : "");
    cr_expect_eq(weft_stream_close(s), 0, "close: %s", weft_errmsg());
    weft_tls_context_free(cctx);
    return NULL;
}

Test(tls, client_against_python_asyncio_server)
{
    make_certs();
    int port = free_port();
    char ports[16];
    snprintf(ports, sizeof ports, "%d", port);
    char *argv[] = {"python3", WEFT_TLS_ASYNCIO_SERVER, ports, (char *)cert("server.pem"), (char *)cert("server.key"),
                    NULL};
    pid_t pid = spawn(argv);
    int rc = weft_run(asyncio_main, &port, NULL);
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    cr_assert_eq(rc, 0);
}

/* ---- openssl s_client and curl against a weft server --------------------------- */

static void *ping_handler(weft_stream *s, void *arg)
{
    (void)arg;
    const char *line;
    ssize_t n = weft_stream_readline(s, &line);
    if (n > 0 && memcmp(line, "ping", 4) == 0)
        weft_stream_write(s, "pong\n", 5);
    return NULL;
}

static void *http_handler(weft_stream *s, void *arg)
{
    (void)arg;
    const char *head;
    if (weft_stream_readuntil(s, "\r\n\r\n", 4, &head) > 0) {
        const char *resp = "HTTP/1.1 200 OK\r\nContent-Length: 12\r\nConnection: close\r\n\r\nhello, tls\r\n";
        weft_stream_write(s, resp, strlen(resp));
    }
    return NULL;
}

static void *run_command(void *arg)
{
    const char *cmd = arg;
    FILE *p = popen(cmd, "r");
    if (!p)
        return NULL;
    char *out = calloc(1, 65536);
    size_t used = 0, got;
    while ((got = fread(out + used, 1, 65535 - used, p)) > 0)
        used += got;
    pclose(p);
    return out;
}

typedef struct tool_case {
    bool curl;
    char *out;
} tool_case;

static void *tool_main(void *arg)
{
    tool_case *t = arg;
    const char *alpn[] = {"h2", "http/1.1", NULL};
    const char *curl_alpn[] = {"http/1.1", NULL};
    weft_tls_context *sctx = server_ctx("server", t->curl ? curl_alpn : alpn);
    weft_server *srv = weft_start_server(t->curl ? http_handler : ping_handler, NULL, "127.0.0.1", 0,
                                         &(weft_server_options){.tls = sctx});
    cr_assert(srv);
    char cmd[1024];
    if (t->curl)
        snprintf(cmd, sizeof cmd, "curl -sS --cacert %s https://localhost:%d/ 2>&1", cert("ca.pem"),
                 weft_server_port(srv));
    else
        snprintf(cmd, sizeof cmd,
                 "printf 'ping\\n' | openssl s_client -connect 127.0.0.1:%d -servername localhost "
                 "-verify_hostname localhost -CAfile %s -verify_return_error -alpn h2 -quiet 2>&1",
                 weft_server_port(srv), cert("ca.pem"));
    void *out = NULL;
    cr_expect_eq(weft_to_thread(run_command, cmd, &out), 0);
    t->out = out;
    weft_server_close(srv);
    weft_server_wait_closed(srv);
    weft_tls_context_free(sctx);
    return NULL;
}

Test(tls, openssl_s_client_against_server)
{
    make_certs();
    tool_case t = {false, NULL};
    cr_assert_eq(weft_run(tool_main, &t, NULL), 0);
    cr_assert(t.out);
    cr_expect(strstr(t.out, "pong"), "s_client printed: %s", t.out);
    free(t.out);
}

Test(tls, curl_against_server)
{
    make_certs();
    tool_case t = {true, NULL};
    cr_assert_eq(weft_run(tool_main, &t, NULL), 0);
    cr_assert(t.out);
    cr_expect_str_eq(t.out, "hello, tls\r\n", "curl printed: %s", t.out);
    free(t.out);
}

/* ---- sendfile on a TLS stream ---------------------------------------------- */

#define FILE_SIZE (1024 * 1024 + 123)
#define FILE_SKIP 100

static char file_byte(size_t i)
{
    return (char)('A' + (i * 7 + i / 251) % 26);
}

typedef struct file_case {
    int fd;            /* the file the server sends */
    ssize_t sent;      /* what weft_stream_sendfile returned */
    int pipe_rc;       /* ...and for a pipe */
} file_case;

/* Writes while the file goes out: the bytes must come after the file's range. */
static void *tail_writer(void *arg)
{
    cr_expect_eq(weft_stream_write(arg, "TAIL\n", 5), 0, "write during sendfile: %s", weft_errmsg());
    return NULL;
}

static file_case *the_file;

static void *file_handler(weft_stream *s, void *arg)
{
    (void)arg;
    cr_expect_eq(weft_stream_write(s, "HEAD\n", 5), 0);
    weft_task *t = weft_spawn(tail_writer, s); /* runs when the sendfile first waits */
    the_file->sent = weft_stream_sendfile(s, the_file->fd, FILE_SKIP, FILE_SIZE);
    cr_expect_eq(weft_await(t, NULL), 0);
    int p[2];
    cr_assert_eq(pipe(p), 0);
    cr_expect_eq(write(p[1], "x", 1), 1);
    the_file->pipe_rc = (int)weft_stream_sendfile(s, p[0], 0, 1);
    close(p[0]);
    close(p[1]);
    cr_expect_eq(weft_stream_close(s), 0, "close: %s", weft_errmsg());
    return NULL;
}

static void *sendfile_main(void *arg)
{
    file_case *fc = arg;
    the_file = fc;
    weft_tls_context *sctx = server_ctx("server", NULL);
    weft_tls_context *cctx = client_ctx("ca.pem", NULL);
    weft_server *srv = weft_start_server(file_handler, NULL, "127.0.0.1", 0, &(weft_server_options){.tls = sctx});
    cr_assert(srv, "weft_start_server: %s", weft_errmsg());
    weft_stream *s = weft_open_connection("127.0.0.1", weft_server_port(srv), &(weft_connect_options){.tls = cctx});
    cr_assert(s, "weft_open_connection: %s", weft_errmsg());
    char *got = NULL;
    ssize_t n = weft_stream_read_to_eof(s, &got);
    size_t want = 5 + (FILE_SIZE - FILE_SKIP) + 5;
    cr_expect_eq(n, (ssize_t)want, "read_to_eof: %zd bytes (%s), want %zu", n, n < 0 ? weft_errmsg() : "", want);
    if (n == (ssize_t)want) {
        cr_expect_eq(memcmp(got, "HEAD\n", 5), 0, "what was written before the file comes first");
        for (size_t i = 0; i < FILE_SIZE - FILE_SKIP; i++) {
            if (got[5 + i] != file_byte(FILE_SKIP + i)) {
                cr_expect(false, "byte %zu of the file's range differs", i);
                break;
            }
        }
        cr_expect_eq(memcmp(got + want - 5, "TAIL\n", 5), 0, "a write made during the sendfile comes after the file");
    }
    free(got);
    cr_expect_eq(weft_stream_close(s), 0);
    weft_server_close(srv);
    cr_expect_eq(weft_server_wait_closed(srv), 0);
    weft_tls_context_free(sctx);
    weft_tls_context_free(cctx);
    return NULL;
}

Test(tls, sendfile_reads_and_encrypts_the_file)
{
    make_certs();
    char path[] = "/tmp/weft-tls-file-XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    unlink(path);
    char *data = malloc(FILE_SIZE);
    for (size_t i = 0; i < FILE_SIZE; i++)
        data[i] = file_byte(i);
    cr_assert_eq(write(fd, data, FILE_SIZE), FILE_SIZE);
    free(data);
    file_case fc = {.fd = fd};
    cr_assert_eq(weft_run(sendfile_main, &fc, NULL), 0);
    cr_expect_eq(fc.sent, FILE_SIZE - FILE_SKIP, "sendfile returned %zd: the bytes to the file's end", fc.sent);
    cr_expect_eq(fc.pipe_rc, -ESPIPE, "a pipe cannot be read at an offset: %d", fc.pipe_rc);
    close(fd);
}

/* ---- mutual TLS: a server given CAs asks clients for a certificate ------------ */

/* A client context presenting `leaf` (NULL: no certificate). */
static weft_tls_context *client_ctx_as(const char *leaf)
{
    char pem[64], key[64];
    snprintf(pem, sizeof pem, "%s.pem", leaf ? leaf : "");
    snprintf(key, sizeof key, "%s.key", leaf ? leaf : "");
    weft_tls_context *ctx = weft_tls_client_context(&(weft_tls_options){
        .ca_file = cert("ca.pem"), .cert_file = leaf ? cert(pem) : NULL, .key_file = leaf ? cert(key) : NULL});
    cr_expect(ctx, "weft_tls_client_context: %s", weft_errmsg());
    return ctx;
}

/* A server context that asks clients for a certificate signed by the test CA, named
 * by a CA file or by a hashed directory. */
static weft_tls_context *mtls_server_ctx(bool by_dir, int max_version)
{
    weft_tls_context *ctx = weft_tls_server_context(&(weft_tls_options){
        .cert_file = cert("server.pem"), .key_file = cert("server.key"), .max_version = max_version,
        .ca_file = by_dir ? NULL : cert("ca.pem"), .ca_dir = by_dir ? cert("cadir") : NULL});
    cr_expect(ctx, "weft_tls_server_context: %s", weft_errmsg());
    return ctx;
}

/* Tells the client who it is: "subject|common name\n", then echoes. */
static void *whoami_handler(weft_stream *s, void *arg)
{
    int *handled = arg;
    (*handled)++;
    char subject[256], cn[64], line[400];
    ssize_t n = weft_stream_tls_peer_subject(s, subject, sizeof subject);
    ssize_t m = weft_stream_tls_peer_common_name(s, cn, sizeof cn);
    int len = snprintf(line, sizeof line, "%s|%s\n", n >= 0 ? subject : weft_errname((int)n),
                       m >= 0 ? cn : weft_errname((int)m));
    cr_expect_eq(n, n >= 0 ? (ssize_t)strlen(subject) : n, "the subject's length is returned");
    weft_stream_write(s, line, (size_t)len);
    echo_handler(s, NULL);
    return NULL;
}

/* How mutual_main's server is made. */
typedef struct mutual_case {
    bool by_dir;     /* its CAs from a hashed directory, not a file */
    int max_version; /* WEFT_TLS_1_2: a TLS 1.2 server */
} mutual_case;

static void *mutual_main(void *arg)
{
    mutual_case *mc = arg;
    bool tls12 = mc->max_version == WEFT_TLS_1_2;
    int handled = 0;
    weft_tls_context *sctx = mtls_server_ctx(mc->by_dir, mc->max_version);
    weft_server *srv = weft_start_server(whoami_handler, &handled, "127.0.0.1", 0, &(weft_server_options){.tls = sctx});
    cr_assert(srv, "weft_start_server: %s", weft_errmsg());
    int port = weft_server_port(srv);
    const char *line;

    /* A client with a certificate the CA signed is let in, and named, also when it
     * resumes its session (the certificate travels in the session). */
    weft_tls_context *good = client_ctx_as("client");
    for (int i = 0; i < 2; i++) {
        weft_stream *s = weft_open_connection("127.0.0.1", port, &(weft_connect_options){.tls = good});
        cr_assert(s, "a client with a certificate: %s", weft_errmsg());
        expect_is(weft_stream_tls_version(s), tls12 ? "TLSv1.2" : "TLSv1.3");
        cr_expect_eq(weft_stream_tls_resumed(s), i == 1, "connection %d resumed: %d", i, weft_stream_tls_resumed(s));
        ssize_t n = weft_stream_readline(s, &line);
        const char *want = "CN=weft test client,O=weft tests|weft test client\n";
        cr_expect(n == (ssize_t)strlen(want) && memcmp(line, want, strlen(want)) == 0, "the server saw %.*s",
                  (int)(n > 0 ? n : 0), n > 0 ? line : "");
        cr_expect_eq(weft_stream_write(s, "echo\n", 5), 0);
        cr_expect_eq(weft_stream_readline(s, &line), 5, "echo: %s", weft_errmsg());
        /* The client sees the server's name. */
        char subject[64];
        cr_expect_eq(weft_stream_tls_peer_subject(s, subject, sizeof subject), 12, "%s", weft_errmsg());
        cr_expect_str_eq(subject, "CN=localhost");
        cr_expect_eq(weft_stream_close(s), 0);
    }
    cr_expect_eq(handled, 2);

    /* Without a certificate, or with one an unknown CA signed: in TLS 1.3 the client's
     * handshake is over before the server has checked it, so the connection is made,
     * the write is taken, and the server's refusal comes as the first read's error;
     * in TLS 1.2 the connection fails. */
    const char *who[] = {NULL, "stranger"};
    const char *said[] = {tls12 ? "handshake failure" : "certificate required", "unknown ca"};
    for (int i = 0; i < 2; i++) {
        weft_tls_context *cctx = client_ctx_as(who[i]);
        weft_stream *s = weft_open_connection("127.0.0.1", port, &(weft_connect_options){.tls = cctx});
        ssize_t n;
        if (tls12) {
            cr_expect_null(s, "%s: TLS 1.2: the connection fails", who[i] ? who[i] : "no certificate");
            n = s ? 0 : weft_errcode();
        } else {
            cr_assert(s, "%s: the client's side of a TLS 1.3 handshake succeeds: %s",
                      who[i] ? who[i] : "no certificate", weft_errmsg());
            cr_expect_eq(weft_stream_write(s, "hello\n", 6), 0);
            n = weft_stream_readline(s, &line);
        }
        cr_expect_eq(n, WEFT_ETLS_CERT, "%s: %s: %s", who[i] ? who[i] : "no certificate", weft_errname((int)n),
                     weft_errmsg());
        cr_expect(strstr(weft_errmsg(), said[i]) && strstr(weft_errmsg(), "the peer (127.0.0.1)"),
                  "OpenSSL's reason: %s", weft_errmsg());
        cr_expect(strstr(weft_errmsg(), who[i] ? "refused our certificate" : "our context has none (cert_file)"),
                  "%s", weft_errmsg());
        cr_log_info("%s", weft_errmsg());
        if (s)
            weft_stream_close(s);
        weft_tls_context_free(cctx);
    }
    cr_expect_eq(handled, 2, "the handler ran for a refused client");

    weft_tls_context_free(good);
    weft_server_close(srv);
    cr_expect_eq(weft_server_wait_closed(srv), 0);
    weft_tls_context_free(sctx);
    return NULL;
}

Test(tls, mutual_tls)
{
    make_certs();
    cr_assert_eq(weft_run(mutual_main, &(mutual_case){0}, NULL), 0);
}

Test(tls, mutual_tls_1_2)
{
    make_certs();
    cr_assert_eq(weft_run(mutual_main, &(mutual_case){.max_version = WEFT_TLS_1_2}, NULL), 0);
}

Test(tls, mutual_tls_cas_from_a_directory)
{
    make_certs();
    cr_assert_eq(weft_run(mutual_main, &(mutual_case){.by_dir = true}, NULL), 0);
}

/* What the server's side of a refused handshake says, seen through start_tls. */
typedef struct seen {
    weft_tls_context *ctx;
    int calls;
    int rc;
    char msg[512];
} seen;

static void *mtls_starttls_handler(weft_stream *s, void *arg)
{
    seen *r = arg;
    r->rc = weft_start_tls(s, r->ctx, NULL);
    snprintf(r->msg, sizeof r->msg, "%s", r->rc ? weft_errmsg() : "");
    r->calls++;
    if (r->rc == 0)
        echo_handler(s, NULL);
    return NULL;
}

static void *server_sees_main(void *arg)
{
    (void)arg;
    seen r = {.ctx = mtls_server_ctx(false, 0)};
    weft_server *srv = weft_start_server(mtls_starttls_handler, &r, "127.0.0.1", 0, NULL);
    cr_assert(srv);
    const char *who[] = {NULL, "stranger", "client"};
    int server_code[] = {WEFT_ETLS_CERT, WEFT_ETLS_UNKNOWN_CA, 0};
    const char *server_said[] = {"peer did not return a certificate", "unable to get local issuer certificate", ""};
    for (int i = 0; i < 3; i++) {
        weft_tls_context *cctx = client_ctx_as(who[i]);
        weft_stream *s = weft_open_connection("127.0.0.1", weft_server_port(srv), NULL);
        cr_assert(s);
        cr_expect_eq(weft_start_tls(s, cctx, "localhost"), 0, "%s", weft_errmsg());
        cr_expect_eq(weft_stream_write(s, "hi\n", 3), 0);
        const char *line;
        ssize_t n = weft_stream_readline(s, &line);
        cr_expect_eq(n, server_code[i] ? WEFT_ETLS_CERT : 3, "client %s: %s", who[i] ? who[i] : "without",
                     weft_errmsg());
        for (int wait = 0; wait < 1000 && r.calls == i; wait++)
            weft_sleep(0.001);
        cr_expect_eq(r.calls, i + 1);
        cr_expect_eq(r.rc, server_code[i], "client %s: the server's start_tls gave %s: %s", who[i] ? who[i] : "without",
                     weft_errname(r.rc), r.msg);
        cr_expect(strstr(r.msg, server_said[i]), "the server's message: %s", r.msg);
        cr_log_info("server: %s", r.msg);
        weft_stream_close(s);
        weft_tls_context_free(cctx);
    }
    weft_server_close(srv);
    weft_server_wait_closed(srv);
    weft_tls_context_free(r.ctx);
    return NULL;
}

Test(tls, mutual_tls_refusals_seen_by_the_server)
{
    make_certs();
    cr_assert_eq(weft_run(server_sees_main, NULL, NULL), 0);
}

/* ---- the peer's name: what each getter refuses ---------------------------------- */

static void *nameless_handler(weft_stream *s, void *arg)
{
    (void)arg;
    /* A server whose context has no CAs asks for no certificate. */
    char buf[64];
    cr_expect_eq(weft_stream_tls_peer_subject(s, buf, sizeof buf), -ENOENT);
    cr_expect(strstr(weft_errmsg(), "ca_file or ca_dir"), "%s", weft_errmsg());
    cr_expect_eq(weft_stream_tls_peer_common_name(s, buf, sizeof buf), -ENOENT);
    echo_handler(s, NULL);
    return NULL;
}

static void *peer_name_main(void *arg)
{
    (void)arg;
    weft_tls_context *sctx = server_ctx("server", NULL);
    weft_server *srv = weft_start_server(nameless_handler, NULL, "127.0.0.1", 0, &(weft_server_options){.tls = sctx});
    cr_assert(srv);
    int port = weft_server_port(srv);
    weft_tls_context *cctx = client_ctx("ca.pem", NULL);
    weft_stream *s = weft_open_connection("127.0.0.1", port, &(weft_connect_options){.tls = cctx});
    cr_assert(s, "%s", weft_errmsg());
    char buf[64] = "untouched";
    cr_expect_eq(weft_stream_tls_peer_subject(s, NULL, 0), 12, "the length alone");
    cr_expect_eq(weft_stream_tls_peer_subject(s, buf, 12), -ERANGE, "no room for the NUL");
    cr_expect(strstr(weft_errmsg(), "needs 13 bytes"), "%s", weft_errmsg());
    cr_expect_str_eq(buf, "untouched", "nothing copied when it does not fit");
    cr_expect_eq(weft_stream_tls_peer_subject(s, buf, 13), 12);
    cr_expect_str_eq(buf, "CN=localhost");
    cr_expect_eq(weft_stream_tls_peer_common_name(s, buf, sizeof buf), 9);
    cr_expect_str_eq(buf, "localhost");
    cr_expect_eq(weft_stream_tls_peer_subject(s, NULL, 8), -EINVAL);
    weft_stream_write(s, "x\n", 2);
    const char *line;
    cr_expect_eq(weft_stream_readline(s, &line), 2, "the handler's checks ran: %s", weft_errmsg());
    cr_expect_eq(weft_stream_close(s), 0);
    cr_expect_eq(weft_stream_tls_peer_subject(s, buf, sizeof buf), -ESTALE);

    /* Verification off: the certificate was not checked, so it names nobody. */
    weft_tls_context *blind = client_ctx("ca.pem", NULL);
    weft_tls_context_insecure_skip_verify(blind);
    s = weft_open_connection("127.0.0.1", port, &(weft_connect_options){.tls = blind});
    cr_assert(s, "%s", weft_errmsg());
    cr_expect_eq(weft_stream_tls_peer_subject(s, buf, sizeof buf), -ENOENT);
    cr_expect(strstr(weft_errmsg(), "insecure_skip_verify"), "%s", weft_errmsg());
    cr_expect_eq(weft_stream_tls_peer_common_name(s, buf, sizeof buf), -ENOENT);
    weft_stream_close(s);

    /* A plain stream has no peer certificate to ask about. */
    weft_server *plain = weft_start_server(echo_handler, NULL, "127.0.0.1", 0, NULL);
    s = weft_open_connection("127.0.0.1", weft_server_port(plain), NULL);
    cr_assert(s);
    cr_expect_eq(weft_stream_tls_peer_subject(s, buf, sizeof buf), -EINVAL);
    cr_expect_eq(weft_stream_tls_peer_common_name(s, buf, sizeof buf), -EINVAL);
    weft_stream_close(s);
    weft_server_close(plain);
    weft_server_wait_closed(plain);

    weft_tls_context_free(blind);
    weft_tls_context_free(cctx);
    weft_server_close(srv);
    weft_server_wait_closed(srv);
    weft_tls_context_free(sctx);
    return NULL;
}

Test(tls, peer_name_getters)
{
    make_certs();
    cr_assert_eq(weft_run(peer_name_main, NULL, NULL), 0);
}

/* ---- mutual TLS 1.2 (openssl s_server): the refusal comes in the handshake -------- */

static void *s_server_mtls_main(void *arg)
{
    int port = *(int *)arg;
    const char *who[] = {NULL, "stranger", "client"};
    const char *said[] = {"handshake failure", "unknown ca", NULL};
    for (int i = 0; i < 3; i++) {
        weft_tls_context *cctx = client_ctx_as(who[i]);
        weft_stream *s = connect_retrying(port, cctx);
        if (said[i]) {
            cr_expect_null(s, "%s: TLS 1.2's refusal ends the client's handshake", who[i] ? who[i] : "no certificate");
            cr_expect_eq(weft_errcode(), WEFT_ETLS_CERT, "%s: %s", weft_errname(weft_errcode()), weft_errmsg());
            cr_expect(strstr(weft_errmsg(), said[i]), "OpenSSL's reason: %s", weft_errmsg());
            cr_expect(strstr(weft_errmsg(), who[i] ? "refused our certificate" : "our context has none (cert_file)"),
                      "%s", weft_errmsg());
            cr_log_info("%s", weft_errmsg());
        } else {
            cr_assert(s, "a client with a certificate: %s", weft_errmsg());
            expect_is(weft_stream_tls_version(s), "TLSv1.2");
            const char *req = "GET / HTTP/1.0\r\n\r\n";
            weft_stream_write(s, req, strlen(req));
            const char *line;
            ssize_t n = weft_stream_readline(s, &line);
            cr_expect(n > 12 && memcmp(line, "HTTP/1.0 200", 12) == 0, "s_server said %.*s", (int)(n > 0 ? n : 0),
                      n > 0 ? line : "");
        }
        if (s)
            weft_stream_close(s);
        weft_tls_context_free(cctx);
    }
    return NULL;
}

Test(tls, mutual_tls_1_2_against_openssl_s_server)
{
    make_certs();
    int port = free_port();
    char accept[32];
    snprintf(accept, sizeof accept, "127.0.0.1:%d", port);
    char *argv[] = {"openssl", "s_server", "-quiet", "-accept", accept, "-cert", (char *)cert("server.pem"), "-key",
                    (char *)cert("server.key"), "-www", "-tls1_2", "-Verify", "1", "-verify_return_error",
                    "-CAfile", (char *)cert("ca.pem"), NULL};
    pid_t pid = spawn(argv);
    int rc = weft_run(s_server_mtls_main, &port, NULL);
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    cr_assert_eq(rc, 0);
}

/* ---- CAs from a directory (ca_dir) -------------------------------------------- */

static void *ca_dir_main(void *arg)
{
    (void)arg;
    weft_tls_context *sctx = server_ctx("server", NULL);
    weft_server *srv = weft_start_server(echo_handler, NULL, "127.0.0.1", 0, &(weft_server_options){.tls = sctx});
    cr_assert(srv);
    int port = weft_server_port(srv);

    /* The directory `openssl rehash` prepared holds the CA: the server is verified. */
    weft_tls_context *dir = weft_tls_client_context(&(weft_tls_options){.ca_dir = cert("cadir")});
    cr_assert(dir, "%s", weft_errmsg());
    weft_stream *s =
        weft_open_connection("127.0.0.1", port, &(weft_connect_options){.tls = dir, .server_hostname = "localhost"});
    cr_assert(s, "verified against ca_dir: %s", weft_errmsg());
    weft_stream_write(s, "dir\n", 4);
    const char *line;
    cr_expect_eq(weft_stream_readline(s, &line), 4);
    cr_expect_eq(weft_stream_close(s), 0);

    /* A directory without the CA trusts nobody (not the system's store either). */
    weft_tls_context *empty = weft_tls_client_context(&(weft_tls_options){.ca_dir = cert("emptydir")});
    cr_assert(empty, "an empty directory is taken: %s", weft_errmsg());
    s = weft_open_connection("127.0.0.1", port, &(weft_connect_options){.tls = empty, .server_hostname = "localhost"});
    cr_expect_null(s);
    cr_expect_eq(weft_errcode(), WEFT_ETLS_UNKNOWN_CA, "%s: %s", weft_errname(weft_errcode()), weft_errmsg());

    /* A path that is no directory is the context's error, not every handshake's. */
    cr_expect_null(weft_tls_client_context(&(weft_tls_options){.ca_dir = cert("no-such-dir")}));
    cr_expect_eq(weft_errcode(), -ENOENT, "%s", weft_errmsg());
    cr_expect_null(weft_tls_client_context(&(weft_tls_options){.ca_dir = cert("ca.pem")}));
    cr_expect_eq(weft_errcode(), -ENOTDIR, "%s", weft_errmsg());
    cr_expect(strstr(weft_errmsg(), "ca_dir"), "%s", weft_errmsg());

    weft_tls_context_free(dir);
    weft_tls_context_free(empty);
    weft_server_close(srv);
    weft_server_wait_closed(srv);
    weft_tls_context_free(sctx);
    return NULL;
}

Test(tls, ca_dir)
{
    make_certs();
    cr_assert_eq(weft_run(ca_dir_main, NULL, NULL), 0);
}

/* ---- start_tls when the stream has read ahead into the ClientHello ------------------ */

typedef struct ahead {
    weft_tls_context *ctx;
    int queued_before; /* bytes the kernel held when the server read its line */
    int queued_after;  /* ...and after: what the stream read ahead left there */
    ssize_t line_len;
    int rc;
} ahead;

static void *readahead_handler(weft_stream *s, void *arg)
{
    ahead *r = arg;
    int fd = weft_stream_fd(s);
    /* Read nothing until the ClientHello has come behind the line, so that the one
     * read of readline takes both. */
    int queued = 0;
    for (int i = 0; i < 2000; i++) {
        cr_assert_eq(ioctl(fd, FIONREAD, &queued), 0);
        if (queued > 10 + 5) /* the line, and more than a record header */
            break;
        weft_sleep(0.001);
    }
    r->queued_before = queued;
    const char *line;
    r->line_len = weft_stream_readline(s, &line);
    cr_expect(r->line_len == 10 && memcmp(line, "STARTTLS\r\n", 10) == 0, "the line: %zd", r->line_len);
    cr_assert_eq(ioctl(fd, FIONREAD, &r->queued_after), 0);
    r->rc = weft_start_tls(s, r->ctx, NULL);
    if (r->rc == 0)
        echo_handler(s, NULL);
    return NULL;
}

static void *readahead_main(void *arg)
{
    (void)arg;
    /* A short handshake timeout: bytes lost by the server would end it in 2 s. */
    ahead r = {.ctx = weft_tls_server_context(&(weft_tls_options){
                       .cert_file = cert("server.pem"), .key_file = cert("server.key"), .handshake_timeout = 2})};
    cr_assert(r.ctx, "%s", weft_errmsg());
    weft_tls_context *cctx = client_ctx("ca.pem", NULL);
    weft_server *srv = weft_start_server(readahead_handler, &r, "127.0.0.1", 0, NULL);
    cr_assert(srv);
    weft_stream *s = weft_open_connection("127.0.0.1", weft_server_port(srv), NULL);
    cr_assert(s);
    /* The line, and the ClientHello at once, without waiting for an answer. */
    cr_expect_eq(weft_stream_write(s, "STARTTLS\r\n", 10), 0);
    cr_expect_eq(weft_start_tls(s, cctx, "localhost"), 0, "client start_tls: %s", weft_errmsg());
    cr_expect_eq(r.rc, 0, "server start_tls on read-ahead bytes: %s", weft_errname(r.rc));
    cr_expect_gt(r.queued_before, 15, "the ClientHello had come behind the line: %d bytes", r.queued_before);
    cr_expect_eq(r.queued_after, 0, "readline took the ClientHello with the line (%d bytes left behind)",
                 r.queued_after);
    weft_stream_write(s, "after\n", 6);
    const char *line;
    cr_expect_eq(weft_stream_readline(s, &line), 6, "echo over TLS: %s", weft_errmsg());
    cr_expect_eq(weft_stream_close(s), 0);
    weft_server_close(srv);
    weft_server_wait_closed(srv);
    weft_tls_context_free(r.ctx);
    weft_tls_context_free(cctx);
    return NULL;
}

Test(tls, start_tls_takes_bytes_read_ahead)
{
    make_certs();
    cr_assert_eq(weft_run(readahead_main, NULL, NULL), 0);
}

/* ---- sessions are kept by host and port ------------------------------------------ */

/* Connects to localhost at port, echoes a line (the TLS 1.3 tickets come before the
 * answer), closes; whether the handshake resumed a session. */
static bool visit(int port, weft_tls_context *cctx)
{
    weft_stream *s =
        weft_open_connection("127.0.0.1", port, &(weft_connect_options){.tls = cctx, .server_hostname = "localhost"});
    cr_assert(s, "connect to %d: %s", port, weft_errmsg());
    bool resumed = weft_stream_tls_resumed(s);
    const char *line;
    cr_expect_eq(weft_stream_write(s, "visit\n", 6), 0);
    cr_expect_eq(weft_stream_readline(s, &line), 6, "%s", weft_errmsg());
    cr_expect_eq(weft_stream_close(s), 0);
    return resumed;
}

static void *session_key_main(void *arg)
{
    /* Two servers of one host on two ports: with one server context (the same ticket
     * keys, so a session offered to the wrong port would be resumed there), or with
     * one each (the wrong port cannot resume it, but it took the right one's away). */
    bool shared = arg != NULL;
    weft_tls_context *sa = server_ctx("server", NULL);
    weft_tls_context *sb = shared ? sa : server_ctx("server", NULL);
    weft_server *a = weft_start_server(echo_handler, NULL, "127.0.0.1", 0, &(weft_server_options){.tls = sa});
    weft_server *b = weft_start_server(echo_handler, NULL, "127.0.0.1", 0, &(weft_server_options){.tls = sb});
    cr_assert(a && b);
    int pa = weft_server_port(a), pb = weft_server_port(b);
    weft_tls_context *cctx = client_ctx("ca.pem", NULL);
    cr_expect_not(visit(pa, cctx), "the first connection to port A is a full handshake");
    cr_expect(visit(pa, cctx), "the second to port A resumes");
    cr_expect_not(visit(pb, cctx), "port B of the same host is not offered A's session: a full handshake");
    cr_expect(visit(pa, cctx), "port A still resumes after B");
    cr_expect(visit(pb, cctx), "port B resumes its own session");
    weft_tls_context_free(cctx);
    weft_server_close(a);
    weft_server_close(b);
    weft_server_wait_closed(a);
    weft_server_wait_closed(b);
    weft_tls_context_free(sa);
    if (!shared)
        weft_tls_context_free(sb);
    return NULL;
}

Test(tls, sessions_by_host_and_port_one_server_context)
{
    make_certs();
    cr_assert_eq(weft_run(session_key_main, (void *)1, NULL), 0);
}

Test(tls, sessions_by_host_and_port_two_server_contexts)
{
    make_certs();
    cr_assert_eq(weft_run(session_key_main, NULL, NULL), 0);
}

/* ---- a TLS Unix connection in one call ----------------------------------------- */

static void *counting_handler(weft_stream *s, void *arg)
{
    (*(int *)arg)++;
    echo_handler(s, NULL);
    return NULL;
}

static void *unix_one_call_main(void *arg)
{
    (void)arg;
    char path[108];
    snprintf(path, sizeof path, "@weft-tls-unix-%d", (int)getpid());
    weft_tls_context *sctx = server_ctx("server", NULL);
    weft_tls_context *cctx = client_ctx("ca.pem", NULL);
    int handled = 0;
    weft_server *srv = weft_start_unix_server(counting_handler, &handled, path, &(weft_server_options){.tls = sctx});
    cr_assert(srv, "weft_start_unix_server: %s", weft_errmsg());
    const char *line;

    /* Connected, handshaken and checked against server_hostname in the one call; the
     * second connection to the same path resumes the first's session. */
    for (int i = 0; i < 2; i++) {
        weft_stream *s = weft_open_unix_connection(
            path, &(weft_unix_connect_options){.tls = cctx, .server_hostname = "localhost", .stream.limit = 128});
        cr_assert(s, "a TLS Unix connection: %s", weft_errmsg());
        expect_is(weft_stream_tls_version(s), "TLSv1.3");
        cr_expect_eq(weft_stream_tls_resumed(s), i == 1, "connection %d resumed: %d", i, weft_stream_tls_resumed(s));
        char subject[32];
        cr_expect_eq(weft_stream_tls_peer_subject(s, subject, sizeof subject), 12);
        weft_stream_write(s, "unix tls\n", 9);
        cr_expect_eq(weft_stream_readline(s, &line), 9, "%s", weft_errmsg());
        cr_expect_eq(memcmp(line, "unix tls\n", 9), 0);
        /* opts->stream applies: a line longer than the limit is refused. */
        char big[200];
        memset(big, 'x', sizeof big - 1);
        big[sizeof big - 1] = '\n';
        weft_stream_write(s, big, sizeof big);
        cr_expect_eq(weft_stream_readline(s, &line), WEFT_ELIMIT, "the stream's limit of 128 bytes");
        cr_expect_eq(weft_stream_close(s), 0);
    }
    cr_expect_eq(handled, 2);

    /* The certificate is checked against server_hostname. */
    weft_stream *s = weft_open_unix_connection(
        path, &(weft_unix_connect_options){.tls = cctx, .server_hostname = "wrong.example"});
    cr_expect_null(s);
    cr_expect_eq(weft_errcode(), WEFT_ETLS_HOSTNAME, "%s", weft_errmsg());

    /* A path names no host: without server_hostname, or with a server's context, the
     * call is refused before it connects. */
    cr_expect_null(weft_open_unix_connection(path, &(weft_unix_connect_options){.tls = cctx}));
    cr_expect_eq(weft_errcode(), -EINVAL);
    cr_expect(strstr(weft_errmsg(), "server_hostname"), "%s", weft_errmsg());
    cr_expect_null(
        weft_open_unix_connection(path, &(weft_unix_connect_options){.tls = sctx, .server_hostname = "localhost"}));
    cr_expect_eq(weft_errcode(), -EINVAL);
    weft_sleep(0.05);
    cr_expect_eq(handled, 2, "a refused call connected nothing");

    /* Verification off: no host name needed. */
    weft_tls_context *blind = client_ctx("ca.pem", NULL);
    weft_tls_context_insecure_skip_verify(blind);
    s = weft_open_unix_connection(path, &(weft_unix_connect_options){.tls = blind});
    cr_expect(s, "verification off, no host name: %s", weft_errmsg());
    if (s)
        weft_stream_close(s);
    weft_tls_context_free(blind);

    weft_server_close(srv);
    weft_server_wait_closed(srv);
    weft_tls_context_free(sctx);
    weft_tls_context_free(cctx);
    return NULL;
}

Test(tls, unix_connection_in_one_call)
{
    make_certs();
    cr_assert_eq(weft_run(unix_one_call_main, NULL, NULL), 0);
}

/* ---- mutual TLS with a certificate chosen by SNI ----------------------------------- */

static void *sni_mutual_main(void *arg)
{
    (void)arg;
    int handled = 0;
    weft_tls_context *sctx = mtls_server_ctx(false, 0);
    cr_assert_eq(weft_tls_context_add_certificate(sctx, "other.example", cert("other.pem"), cert("other.key")), 0);
    weft_server *srv = weft_start_server(whoami_handler, &handled, "127.0.0.1", 0, &(weft_server_options){.tls = sctx});
    cr_assert(srv);
    /* The client names other.example: the server answers with that certificate and
     * still checks the client's against its CAs. */
    const char *who[] = {"client", "stranger"};
    for (int i = 0; i < 2; i++) {
        weft_tls_context *cctx = client_ctx_as(who[i]);
        weft_stream *s = weft_open_connection("127.0.0.1", weft_server_port(srv),
                                              &(weft_connect_options){.tls = cctx, .server_hostname = "other.example"});
        cr_assert(s, "%s: %s", who[i], weft_errmsg());
        char subject[64];
        cr_expect_eq(weft_stream_tls_peer_common_name(s, subject, sizeof subject), 9);
        cr_expect_str_eq(subject, "localhost", "other.pem's CN (its name is in subjectAltName)");
        const char *line;
        ssize_t n = weft_stream_readline(s, &line);
        if (i == 0) {
            const char *want = "CN=weft test client,O=weft tests|weft test client\n";
            cr_expect(n == (ssize_t)strlen(want) && memcmp(line, want, strlen(want)) == 0,
                      "the client of other.example let in and named: %s", n < 0 ? weft_errmsg() : "wrong line");
        } else {
            cr_expect_eq(n, WEFT_ETLS_CERT, "an unknown CA's client refused: %s", weft_errmsg());
        }
        weft_stream_close(s);
        weft_tls_context_free(cctx);
    }
    cr_expect_eq(handled, 1);
    weft_server_close(srv);
    weft_server_wait_closed(srv);
    weft_tls_context_free(sctx);
    return NULL;
}

Test(tls, mutual_tls_with_a_certificate_chosen_by_sni)
{
    make_certs();
    cr_assert_eq(weft_run(sni_mutual_main, NULL, NULL), 0);
}

/* ---- a context's files and lists: mistakes that say what to do ---------------- */

Test(tls, context_mistakes_say_what_to_do)
{
    make_certs();
    /* An encrypted key fails at once (no prompt on a terminal holding the loop). */
    cr_expect_null(weft_tls_server_context(
        &(weft_tls_options){.cert_file = cert("server.pem"), .key_file = cert("server-enc.key")}));
    cr_expect_eq(weft_errcode(), WEFT_ETLS, "%s", weft_errname(weft_errcode()));
    cr_expect(strstr(weft_errmsg(), "encrypted"), "%s", weft_errmsg());
    /* A bad cipher list is OpenSSL's error, not a file's. */
    cr_expect_null(weft_tls_client_context(&(weft_tls_options){.ciphers = "NOT-A-CIPHER"}));
    cr_expect_eq(weft_errcode(), WEFT_ETLS, "%s: %s", weft_errname(weft_errcode()), weft_errmsg());
    /* A directory where a file belongs. */
    cr_expect_null(weft_tls_server_context(&(weft_tls_options){.cert_file = certdir}));
    cr_expect_eq(weft_errcode(), -EISDIR, "%s: %s", weft_errname(weft_errcode()), weft_errmsg());
    /* A key without its certificate. */
    cr_expect_null(weft_tls_client_context(&(weft_tls_options){.key_file = cert("server.key")}));
    cr_expect_eq(weft_errcode(), -EINVAL);
    cr_expect(strstr(weft_errmsg(), "without cert_file"), "%s", weft_errmsg());
    /* The key given as the certificate: says which blocks each file holds. */
    cr_expect_null(weft_tls_server_context(
        &(weft_tls_options){.cert_file = cert("server.key"), .key_file = cert("server.key")}));
    cr_expect_eq(weft_errcode(), WEFT_ETLS);
    cr_expect(strstr(weft_errmsg(), "BEGIN CERTIFICATE"), "%s", weft_errmsg());
}

/* ---- a client context given up as soon as the connection is made ------------ */

/* As the guide's client does: the context goes right after the connect, and the
 * session ticket TLS 1.3 sends after the handshake arrives with the first read. */
static void *early_free_main(void *arg)
{
    (void)arg;
    weft_tls_context *sctx = server_ctx("server", NULL);
    weft_server *srv = weft_start_server(echo_handler, NULL, "127.0.0.1", 0, &(weft_server_options){.tls = sctx});
    cr_assert(srv);
    weft_tls_context_free(sctx);
    for (int i = 0; i < 3; i++) {
        weft_tls_context *cctx = client_ctx("ca.pem", NULL);
        weft_stream *s = weft_open_connection("localhost", weft_server_port(srv), &(weft_connect_options){.tls = cctx});
        weft_tls_context_free(cctx); /* connections made do not need it */
        cr_assert(s, "weft_open_connection: %s", weft_errmsg());
        char *filler[8]; /* allocations that would reuse the context's memory */
        for (int k = 0; k < 8; k++)
            filler[k] = calloc(1, 512);
        cr_expect_eq(weft_stream_write(s, "hi\n", 3), 0);
        const char *line;
        cr_expect_eq(weft_stream_readline(s, &line), 3, "readline: %s", weft_errmsg());
        for (int k = 0; k < 8; k++)
            free(filler[k]);
        cr_expect_eq(weft_stream_close(s), 0);
    }
    weft_server_close(srv);
    cr_expect_eq(weft_server_wait_closed(srv), 0);
    return NULL;
}

Test(tls, a_client_context_freed_after_connecting)
{
    make_certs();
    cr_assert_eq(weft_run(early_free_main, NULL, NULL), 0);
}

/* ---- a refused client that goes on writing ----------------------------------- */

/* In TLS 1.3 a client the server refuses learns it at its first read; if it writes
 * after the server has hung up, its writes meet a closed socket (EPIPE), and its read
 * must still give the server's reason, not the broken pipe. */
static void *late_refusal_main(void *arg)
{
    (void)arg;
    int handled = 0;
    weft_tls_context *sctx = mtls_server_ctx(false, 0);
    weft_server *srv = weft_start_server(whoami_handler, &handled, "127.0.0.1", 0, &(weft_server_options){.tls = sctx});
    cr_assert(srv);
    weft_tls_context *cctx = client_ctx_as(NULL);
    for (int round = 0; round < 3; round++) {
        weft_stream *s = weft_open_connection("127.0.0.1", weft_server_port(srv), &(weft_connect_options){.tls = cctx});
        cr_assert(s, "%s", weft_errmsg());
        cr_expect_eq(weft_sleep(0.05), 0); /* the server refuses, alerts and closes */
        for (int i = 0; i < 3; i++) {
            (void)weft_stream_write(s, "hello\n", 6); /* into a closed connection */
            cr_expect_eq(weft_sleep(0.01), 0);
        }
        const char *line;
        ssize_t n = weft_stream_readline(s, &line);
        cr_expect_eq(n, WEFT_ETLS_CERT, "round %d: %s: %s", round, weft_errname((int)n), weft_errmsg());
        weft_stream_close(s);
    }
    cr_expect_eq(handled, 0);
    weft_tls_context_free(cctx);
    weft_server_close(srv);
    cr_expect_eq(weft_server_wait_closed(srv), 0);
    weft_tls_context_free(sctx);
    return NULL;
}

Test(tls, a_refused_client_writing_after_the_hang_up_reads_the_reason)
{
    make_certs();
    cr_assert_eq(weft_run(late_refusal_main, NULL, NULL), 0);
}
