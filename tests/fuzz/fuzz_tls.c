/*
 * fuzz_tls.c — a libFuzzer target for weft's TLS streams (src/tls/tls.c inside
 * src/net/stream.c): arbitrary bytes from a peer, over a socketpair, into
 *
 *   mode 0  a TLS server's handshake (weft_start_tls with a server context): the
 *           bytes as a client's;
 *   mode 1  a TLS client's handshake (a client context checking "localhost"
 *           against the test CA): the bytes as a server's;
 *   mode 2  a TLS server stream after a real handshake with a weft client: the
 *           client sends some of the bytes as TLS application data, then the rest
 *           goes raw onto the wire behind it, as a broken or hostile peer's.
 *
 * The peer writes the bytes in pieces the input chooses, yielding between them,
 * then ends its side. Every result must be one tls.h and net.h document for the
 * call: a handshake refused with one of the WEFT_ETLS* codes (never a timeout: the
 * peer always ends), a read giving the application data sent, then 0, one of those
 * codes (the peer's alert's) or a reset; and the stream must close cleanly
 * afterwards (0, or the error the stream already failed with). A crash, leak, hang (the contexts' handshake
 * timeout is 5 s, a timeout is a failure) or any other code aborts.
 *
 * Input: byte 0 the mode, byte 1 the piece size (0: all at once), then the bytes;
 * in mode 2 the first of them says how many go as application data. The
 * certificates are made in memory at start-up. When the corpus directory given on
 * the command line is empty, the target fills it with real first flights, captured
 * from OpenSSL over memory BIOs: ClientHellos (TLS 1.3 and 1.2 only) for mode 0, the
 * server's answers to them for mode 1, and a line of data for mode 2.
 *
 * Built with clang -fsanitize=fuzzer,address,undefined by tests/fuzz/run_fuzz.sh;
 * `make test` runs it for a bounded time (ctest fuzz_tls).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <weft.h>

#define REQUIRE(cond)                                                                                 \
    do {                                                                                              \
        if (!(cond)) {                                                                                \
            fprintf(stderr, "fuzz_tls: %s failed at line %d (errmsg: %s)\n", #cond, __LINE__,         \
                    weft_errmsg());                                                                   \
            abort();                                                                                  \
        }                                                                                             \
    } while (0)

#define MAX_INPUT (64 * 1024) /* well inside a socketpair's buffer: the peer never waits to write */

static weft_tls_context *server_ctx;        /* localhost, signed by the test CA */
static weft_tls_context *client_ctx;        /* trusts the test CA */
static weft_tls_context *insecure_ctx;      /* mode 2's client: no host, so no session kept between inputs */

/* ---- certificates, in memory ------------------------------------------------------ */

static X509 *make_cert(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *issuer_key)
{
    static long serial = 1;
    X509 *x = X509_new();
    REQUIRE(x);
    REQUIRE(X509_set_version(x, 2));
    REQUIRE(ASN1_INTEGER_set(X509_get_serialNumber(x), serial++));
    REQUIRE(X509_gmtime_adj(X509_getm_notBefore(x), -3600));
    REQUIRE(X509_gmtime_adj(X509_getm_notAfter(x), 30L * 86400));
    REQUIRE(X509_set_pubkey(x, key));
    X509_NAME *name = X509_get_subject_name(x);
    REQUIRE(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0));
    REQUIRE(X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name));
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, issuer ? issuer : x, x, NULL, NULL, 0);
    const int nids[] = {NID_basic_constraints, NID_key_usage, NID_subject_alt_name};
    const char *ca_values[] = {"critical,CA:TRUE", "critical,keyCertSign,cRLSign", NULL};
    const char *leaf_values[] = {"CA:FALSE", "digitalSignature", "DNS:localhost,IP:127.0.0.1"};
    for (int i = 0; i < 3; i++) {
        const char *v = issuer ? leaf_values[i] : ca_values[i];
        if (!v)
            continue;
        X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &v3, nids[i], v);
        REQUIRE(e && X509_add_ext(x, e, -1));
        X509_EXTENSION_free(e);
    }
    REQUIRE(X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256()) > 0);
    return x;
}

static void write_pem(const char *path, X509 *cert, EVP_PKEY *key)
{
    FILE *f = fopen(path, "w");
    REQUIRE(f);
    REQUIRE(cert ? PEM_write_X509(f, cert) : PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL));
    REQUIRE(fclose(f) == 0);
}

/* The test CA and a localhost certificate it signs, as weft's contexts (which read
 * files: written to a directory of the moment, removed once read). */
static void make_contexts(X509 **cert_out, EVP_PKEY **key_out)
{
    EVP_PKEY *ca_key = EVP_EC_gen("P-256");
    EVP_PKEY *key = EVP_EC_gen("P-256");
    REQUIRE(ca_key && key);
    X509 *ca = make_cert(ca_key, "weft fuzz CA", NULL, NULL);
    X509 *cert = make_cert(key, "localhost", ca, ca_key);
    char dir[] = "/tmp/weft-fuzz-tls-XXXXXX";
    REQUIRE(mkdtemp(dir));
    char ca_pem[64], cert_pem[64], key_pem[64];
    snprintf(ca_pem, sizeof ca_pem, "%s/ca.pem", dir);
    snprintf(cert_pem, sizeof cert_pem, "%s/server.pem", dir);
    snprintf(key_pem, sizeof key_pem, "%s/server.key", dir);
    write_pem(ca_pem, ca, NULL);
    write_pem(cert_pem, cert, NULL);
    write_pem(key_pem, NULL, key);
    server_ctx = weft_tls_server_context(
        &(weft_tls_options){.cert_file = cert_pem, .key_file = key_pem, .handshake_timeout = 5});
    client_ctx = weft_tls_client_context(&(weft_tls_options){.ca_file = ca_pem, .handshake_timeout = 5});
    insecure_ctx = weft_tls_client_context(&(weft_tls_options){.handshake_timeout = 5});
    REQUIRE(server_ctx && client_ctx && insecure_ctx);
    REQUIRE(weft_tls_context_insecure_skip_verify(insecure_ctx) == 0);
    unlink(ca_pem);
    unlink(cert_pem);
    unlink(key_pem);
    rmdir(dir);
    X509_free(ca);
    EVP_PKEY_free(ca_key);
    *cert_out = cert;
    *key_out = key;
}

/* ---- seeds: real first flights, from OpenSSL over memory BIOs ---------------------- */

/* What ssl has written to its memory BIO so far. */
static size_t drain_bio(BIO *b, uint8_t *out, size_t cap)
{
    size_t n = 0;
    int r;
    while (n < cap && (r = BIO_read(b, out + n, (int)(cap - n))) > 0)
        n += (size_t)r;
    return n;
}

static void write_seed(const char *dir, const char *name, uint8_t mode, uint8_t piece, const uint8_t *p, size_t n)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/seed-%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f)
        return;
    uint8_t head[2] = {mode, piece};
    fwrite(head, 1, 2, f);
    fwrite(p, 1, n, f);
    fclose(f);
}

/* A ClientHello (TLS 1.3, or 1.2 at most) and the server's answer to it. */
static void capture(const char *dir, X509 *cert, EVP_PKEY *key, int max_version, const char *tag)
{
    SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX *sctx = SSL_CTX_new(TLS_server_method());
    REQUIRE(cctx && sctx);
    SSL_CTX_set_max_proto_version(cctx, max_version);
    REQUIRE(SSL_CTX_use_certificate(sctx, cert) == 1 && SSL_CTX_use_PrivateKey(sctx, key) == 1);
    SSL *c = SSL_new(cctx), *s = SSL_new(sctx);
    REQUIRE(c && s);
    BIO *c_in = BIO_new(BIO_s_mem()), *c_out = BIO_new(BIO_s_mem());
    BIO *s_in = BIO_new(BIO_s_mem()), *s_out = BIO_new(BIO_s_mem());
    SSL_set_bio(c, c_in, c_out);
    SSL_set_bio(s, s_in, s_out);
    SSL_set_connect_state(c);
    SSL_set_accept_state(s);
    REQUIRE(SSL_set_tlsext_host_name(c, "localhost"));
    static uint8_t buf[32768];
    (void)SSL_do_handshake(c);
    size_t n = drain_bio(c_out, buf, sizeof buf);
    char name[64];
    snprintf(name, sizeof name, "client-hello-%s", tag);
    write_seed(dir, name, 0, 0, buf, n);
    snprintf(name, sizeof name, "client-hello-%s-cut", tag);
    write_seed(dir, name, 0, 7, buf, n);
    BIO_write(s_in, buf, (int)n);
    (void)SSL_do_handshake(s);
    n = drain_bio(s_out, buf, sizeof buf);
    snprintf(name, sizeof name, "server-flight-%s", tag);
    write_seed(dir, name, 1, 0, buf, n);
    snprintf(name, sizeof name, "server-flight-%s-cut", tag);
    write_seed(dir, name, 1, 100, buf, n);
    SSL_free(c);
    SSL_free(s);
    SSL_CTX_free(cctx);
    SSL_CTX_free(sctx);
}

static bool dir_is_empty(const char *path)
{
    DIR *d = opendir(path);
    if (!d)
        return false;
    struct dirent *e;
    bool empty = true;
    while (empty && (e = readdir(d)) != NULL)
        empty = strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0;
    closedir(d);
    return empty;
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    X509 *cert;
    EVP_PKEY *key;
    make_contexts(&cert, &key);
    for (int i = 1; i < *argc; i++) {
        const char *dir = (*argv)[i];
        if (dir[0] == '-' || !dir_is_empty(dir))
            continue;
        capture(dir, cert, key, TLS1_3_VERSION, "tls13");
        capture(dir, cert, key, TLS1_2_VERSION, "tls12");
        static const uint8_t data[] = "\x05hello, and then the rest raw\n\x17\x03\x03\x00\x05garbage";
        write_seed(dir, "after-handshake", 2, 0, data, sizeof data - 1);
        write_seed(dir, "after-handshake-cut", 2, 3, data, sizeof data - 1);
    }
    X509_free(cert);
    EVP_PKEY_free(key);
    ERR_clear_error();
    return 0;
}

/* ---- one input ---------------------------------------------------------------------- */

typedef struct input {
    int mode;
    size_t piece;        /* bytes per write, 0 = all at once */
    const uint8_t *data; /* from the peer */
    size_t len;
    int fds[2];          /* [0] weft's TLS end, [1] the peer's */
} input;

static bool handshake_refusal(int rc)
{
    switch (rc) {
    case WEFT_ETLS:
    case WEFT_ETLS_UNKNOWN_CA:
    case WEFT_ETLS_HOSTNAME:
    case WEFT_ETLS_EXPIRED:
    case WEFT_ETLS_CERT:
    case WEFT_ETLS_VERSION:
    case WEFT_ETLS_EOF:
        return true;
    default:
        return false;
    }
}

/* What a TLS stream's read may end with (net.h, weft_stream_read): the failures a
 * handshake has, since the peer's alert is said by its code, or a reset. */
static bool read_failure(int rc)
{
    return handshake_refusal(rc) || rc == -ECONNRESET;
}

/* The peer: the bytes in pieces, then the end of its side. */
static int send_raw(weft_stream *peer, const uint8_t *p, size_t n, size_t piece)
{
    size_t off = 0;
    while (off < n) {
        size_t k = piece && piece < n - off ? piece : n - off;
        int rc = weft_stream_write(peer, p + off, k);
        if (rc == 0)
            rc = weft_stream_drain(peer);
        if (rc)
            return rc;
        off += k;
        REQUIRE(weft_yield() == 0); /* the other end may read this piece alone */
    }
    return 0;
}

static void *peer_main(void *arg)
{
    input *in = arg;
    weft_stream *peer = weft_stream_from_fd(in->fds[1], NULL);
    REQUIRE(peer);
    /* weft may refuse before the end of the bytes: it closes its end, and the rest
     * has nowhere to go. */
    int rc = send_raw(peer, in->data, in->len, in->piece);
    REQUIRE(rc == 0 || rc == -EPIPE || rc == -ECONNRESET);
    if (rc == 0)
        REQUIRE(weft_stream_write_eof(peer) == 0);
    /* What weft answered is read and dropped, to its end (weft closes its side). */
    char sink[4096];
    ssize_t r;
    while ((r = weft_stream_read(peer, sink, sizeof sink)) > 0)
        ;
    REQUIRE(r == 0 || r == -ECONNRESET);
    (void)weft_stream_close(peer);
    return NULL;
}

/* Reads a TLS stream to its end: the bytes must be `want`'s, then 0, WEFT_ETLS or
 * WEFT_ETLS_EOF. Returns the end's code. */
static int read_to_end(weft_stream *s, const uint8_t *want, size_t n)
{
    static uint8_t buf[MAX_INPUT];
    size_t have = 0;
    for (;;) {
        ssize_t r = weft_stream_read(s, buf + have, sizeof buf - have);
        if (r <= 0) {
            REQUIRE(r == 0 || read_failure((int)r));
            /* Only decrypted records come through: the data sent through TLS, or a
             * prefix of it when the garbage behind it cut the stream short. */
            REQUIRE(have <= n && (have == 0 || memcmp(buf, want, have) == 0));
            return (int)r;
        }
        have += (size_t)r;
        REQUIRE(have <= n);
    }
}

/* Closes a stream that ended with `rc`: 0, or the error it failed with. */
static void close_after(weft_stream *s, int rc)
{
    int closed = weft_stream_close(s);
    REQUIRE(closed == 0 || closed == rc || handshake_refusal(closed));
}

/* Modes 0 and 1: the bytes are the peer's side of the handshake. */
static void handshake_from_bytes(input *in)
{
    weft_stream *s = weft_stream_from_fd(in->fds[0], NULL);
    REQUIRE(s);
    weft_task *peer = weft_spawn(peer_main, in);
    REQUIRE(peer);
    int rc = in->mode == 0 ? weft_start_tls(s, server_ctx, NULL) : weft_start_tls(s, client_ctx, "localhost");
    if (rc != 0) {
        REQUIRE(handshake_refusal(rc));
        /* Refused: the stream is closed, reads say so. */
        char b[1];
        REQUIRE(weft_stream_read(s, b, 1) < 0);
    } else {
        /* No peer completes a handshake with made-up bytes; were it to, the stream
         * reads as any TLS stream. */
        rc = read_to_end(s, NULL, 0);
    }
    close_after(s, rc);
    REQUIRE(weft_await(peer, NULL) == 0);
}

typedef struct server_side {
    int fd;
    const uint8_t *want;
    size_t n;
} server_side;

static void *tls_server_main(void *arg)
{
    server_side *ss = arg;
    weft_stream *s = weft_stream_from_fd(ss->fd, NULL);
    REQUIRE(s);
    int rc = weft_start_tls(s, server_ctx, NULL);
    REQUIRE(rc == 0);
    rc = read_to_end(s, ss->want, ss->n);
    close_after(s, rc);
    return NULL;
}

/* Mode 2: a real handshake, then data through TLS, then raw bytes behind it. */
static void garbage_after_handshake(input *in)
{
    size_t plain = in->len ? in->data[0] : 0;
    const uint8_t *p = in->len ? in->data + 1 : in->data;
    size_t left = in->len ? in->len - 1 : 0;
    if (plain > left)
        plain = left;
    server_side ss = {in->fds[0], p, plain};
    weft_task *server = weft_spawn(tls_server_main, &ss);
    REQUIRE(server);
    weft_stream *c = weft_stream_from_fd(in->fds[1], NULL);
    REQUIRE(c);
    REQUIRE(weft_start_tls(c, insecure_ctx, NULL) == 0);
    int rc = send_raw(c, p, plain, in->piece);
    REQUIRE(rc == 0);
    /* Behind weft's back, with nothing of the client's queued: the raw bytes, then
     * the end of the client's side. */
    REQUIRE(weft_stream_write_buffer_size(c) == 0);
    size_t off = plain;
    while (off < left) {
        ssize_t w = write(in->fds[1], p + off, left - off);
        REQUIRE(w > 0);
        off += (size_t)w;
    }
    REQUIRE(shutdown(in->fds[1], SHUT_WR) == 0);
    REQUIRE(weft_await(server, NULL) == 0);
    /* The server ended its side (close_notify or not): the client reads to the end. */
    char sink[256];
    ssize_t r;
    while ((r = weft_stream_read(c, sink, sizeof sink)) > 0)
        ;
    REQUIRE(r == 0 || read_failure((int)r));
    (void)weft_stream_close(c);
}

static void *input_main(void *arg)
{
    input *in = arg;
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, in->fds) == 0);
    if (in->mode == 2)
        garbage_after_handshake(in);
    else
        handshake_from_bytes(in);
    return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2 || size > MAX_INPUT)
        return 0;
    input in = {.mode = data[0] % 3, .piece = data[1], .data = data + 2, .len = size - 2};
    if (weft_run(input_main, &in, NULL) != 0) {
        fprintf(stderr, "fuzz_tls: weft_run: %s\n", weft_errmsg());
        abort();
    }
    return 0;
}
