/*
 * tls.c — TLS on OpenSSL inside weft's streams: contexts (SSL_CTX with weft's secure
 * defaults), the connection each TLS stream carries (an SSL on a BIO of weft's own),
 * the handshake with its timeout, and OpenSSL's failures named as weft's codes.
 *
 * How the bytes move: the stream (net/stream.c) calls this file's recv and send in
 * place of read(2) and its own socket write. OpenSSL reads and writes the
 * descriptor through the BIO below, whose read is the stream's raw read (bytes
 * read ahead before TLS began first, then read(2)) and whose write is the stream's
 * raw write: sent at once when nothing waits before it, otherwise queued in the
 * stream's write buffer, which the loop flushes. So OpenSSL never waits to write:
 * SSL_write takes every byte at once, a handshake or a key update that answers
 * the peer queues its answer, close_notify goes out behind what was written
 * before it, and the only wait is the reader's, for the socket to be readable.
 * Renegotiation is refused (SSL_OP_NO_RENEGOTIATION), so SSL_write never needs
 * to read.
 */
#include "tls/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <netinet/in.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#define DEFAULT_HANDSHAKE_TIMEOUT 60.0

/* A server's certificate for one name (SNI), weft_tls_context_add_certificate. */
typedef struct named_cert {
    char *name;          /* "example.com", or "*.example.com" for any one label before it */
    SSL_CTX *ssl;        /* that certificate and key */
} named_cert;

/* Where a client connected: the host name it checked the server against, and the
 * server's port ("443") or Unix socket path. A session is offered only to the place
 * it was made with: two servers of one host, on two ports, need not share keys or
 * certificates. */
typedef struct session_key {
    char host[256];
    char where[112];      /* the port, or the socket's path ('@' first: abstract); "" unknown */
} session_key;

/* A client's latest session with one place, to resume the next connection. */
typedef struct saved_session {
    session_key key;
    SSL_SESSION *session; /* one reference, ours */
} saved_session;

#define SAVED_SESSIONS 64

struct weft_tls_context {
    weft__tls_hook hook; /* first: net sees a context as its hook */
    SSL_CTX *ssl;
    named_cert *names;   /* a server's certificates by name (SNI) */
    size_t nnames;
    atomic_int refs;
    atomic_bool verify;  /* a client checks the peer's certificate and name */
    double handshake_timeout;
    unsigned char *alpn; /* the ALPN list in its wire form (length-prefixed names) */
    size_t alpn_len;
    /* A client's sessions by host and port, most recent first, for resumption; shared by
     * every loop that uses the context, so under a lock. */
    pthread_mutex_t sessions_lock;
    saved_session *sessions;
    size_t nsessions;
};

/* One TLS stream's connection. */
typedef struct tls_conn {
    SSL *ssl;
    struct weft_stream *s;
    bool server;
    bool eof;            /* the descriptor's read gave end of file */
    bool last_full;      /* the descriptor's last read filled the space OpenSSL gave */
    bool failed;         /* a fatal error: OpenSSL must not write again */
    bool shut_sent;      /* close_notify queued */
    bool asked_for_cert; /* a client: the server asked for a certificate and we had none */
    int io_err;          /* the descriptor's last error (negative), for SSL_ERROR_SYSCALL */
    char alpn[256];      /* the protocol agreed, NUL-terminated ("" = none) */
    char peer[256];      /* the host name asked for, for messages */
    session_key key;     /* a client's: where its session is saved ("" host: nowhere) */
    const char *what;    /* the call that made it (weft_open_connection, ...), for messages */
    weft_tls_context *ctx; /* a reference, held until the connection goes: a TLS 1.3 ticket
                              may come (to session_new) long after the handshake, when the
                              caller has given its own reference up */
} tls_conn;

/* ------------------------------------------------------------------------ */
/* The BIO: OpenSSL's reads and writes of the descriptor, through the stream */
/* ------------------------------------------------------------------------ */

static int bio_write(BIO *b, const char *data, int len)
{
    tls_conn *c = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    int rc = weft__stream_raw_write(c->s, data, (size_t)len);
    if (rc == -EPIPE || rc == -ECONNRESET) {
        /* The peer hung up. The stream has made it the write side's sticky error
         * (later writes, drain and close give it), but OpenSSL is told the bytes went:
         * as if lost in flight, which they are. So the connection is not failed, and
         * a read still decrypts what the peer sent before it went — often an alert
         * that says why (a server refusing our certificate in TLS 1.3). */
        return len;
    }
    if (rc < 0) {
        c->io_err = rc;
        return -1;
    }
    return len;
}

static int bio_read(BIO *b, char *buf, int len)
{
    tls_conn *c = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    bool full = false;
    ssize_t n = weft__stream_raw_read(c->s, buf, (size_t)len, &full);
    if (n > 0) {
        c->last_full = full;
        return (int)n;
    }
    c->last_full = false;
    if (n == 0) {
        c->eof = true;
        return 0;
    }
    if (n == -EAGAIN) {
        BIO_set_retry_read(b);
        return -1;
    }
    c->io_err = (int)n;
    return -1;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)num;
    (void)ptr;
    tls_conn *c = BIO_get_data(b);
    switch (cmd) {
    case BIO_CTRL_FLUSH:
        return 1; /* every write is already sent or queued */
    case BIO_CTRL_EOF:
        return c && c->eof; /* how OpenSSL tells an end without close_notify */
    case BIO_C_GET_FD:
        return -1; /* the descriptor is the stream's, not OpenSSL's to use */
    default:
        return 0;
    }
}

static int bio_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static int bio_destroy(BIO *b)
{
    (void)b;
    return 1;
}

static BIO_METHOD *bio_method_made;
static pthread_once_t bio_method_once = PTHREAD_ONCE_INIT;

/* The method table, made once per process and never changed after. */
static void bio_method_make(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "weft stream");
    if (m && (!BIO_meth_set_write(m, bio_write) || !BIO_meth_set_read(m, bio_read) ||
              !BIO_meth_set_ctrl(m, bio_ctrl) || !BIO_meth_set_create(m, bio_create) ||
              !BIO_meth_set_destroy(m, bio_destroy))) {
        BIO_meth_free(m);
        m = NULL;
    }
    bio_method_made = m;
}

static BIO_METHOD *bio_method(void)
{
    pthread_once(&bio_method_once, bio_method_make);
    return bio_method_made;
}

/* ------------------------------------------------------------------------ */
/* OpenSSL's failures as weft's codes                                       */
/* ------------------------------------------------------------------------ */

/* The first error in OpenSSL's queue, in its words ("certificate verify failed"). */
static const char *ossl_reason(unsigned long e, char *buf, size_t size)
{
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    if (r)
        return r;
    if (!e)
        return "no reason given";
    ERR_error_string_n(e, buf, size);
    return buf;
}

/* A refused certificate: the verify result as a code and message. */
static int verify_failure(tls_conn *c, const char *what)
{
    long v = SSL_get_verify_result(c->ssl);
    int code;
    switch (v) {
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
        code = WEFT_ETLS_UNKNOWN_CA;
        break;
    case X509_V_ERR_HOSTNAME_MISMATCH:
    case X509_V_ERR_IP_ADDRESS_MISMATCH:
        code = WEFT_ETLS_HOSTNAME;
        break;
    case X509_V_ERR_CERT_HAS_EXPIRED:
        code = WEFT_ETLS_EXPIRED;
        break;
    default:
        code = WEFT_ETLS_CERT;
        break;
    }
    return weft__set_errmsg(code, "%s: certificate verify failed: %s%s%s%s", what, X509_verify_cert_error_string(v),
                            c->peer[0] ? " (" : "", c->peer, c->peer[0] ? ")" : "");
}

/* Whether OpenSSL's reason is the peer's alert refusing our certificate (or asking
 * for one we did not send): the peer checked us and said no. A TLS 1.2 server that
 * wants a certificate and gets none answers handshake_failure, which says so only
 * when it asked us for one. */
static bool peer_refused_ours(const tls_conn *c, int reason)
{
    switch (reason) {
    case SSL_R_SSLV3_ALERT_HANDSHAKE_FAILURE:
        return c->asked_for_cert;
    case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
    case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_REVOKED:
    case SSL_R_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE:
    case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
    case SSL_R_TLSV1_ALERT_ACCESS_DENIED:
        return true;
    default:
        return false;
    }
}

/* The peer's alert or OpenSSL's own refusal, by OpenSSL's reason. WEFT_ETLS_UNKNOWN_CA,
 * _HOSTNAME and _EXPIRED say that we refused the peer's certificate (verify_failure);
 * the peer's refusal of ours is WEFT_ETLS_CERT, whatever its alert. */
static int reason_code(int reason)
{
    switch (reason) {
    case SSL_R_UNEXPECTED_EOF_WHILE_READING:
        return WEFT_ETLS_EOF;
    case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
        return WEFT_ETLS_CERT;
    case SSL_R_UNSUPPORTED_PROTOCOL:
    case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION:
    case SSL_R_NO_PROTOCOLS_AVAILABLE:
    case SSL_R_VERSION_TOO_LOW:
    case SSL_R_VERSION_TOO_HIGH:
        return WEFT_ETLS_VERSION;
    default:
        return WEFT_ETLS;
    }
}

/*
 * What a failed SSL_* call (ret) means: -EAGAIN to wait until readable, 0 at the
 * peer's close_notify (when zero_is_eof), or an error with the message set.
 */
static int ssl_failure(tls_conn *c, int ret, bool zero_is_eof, const char *what)
{
    int e = SSL_get_error(c->ssl, ret);
    char buf[256];
    switch (e) {
    case SSL_ERROR_WANT_READ:
        return -EAGAIN;
    case SSL_ERROR_ZERO_RETURN:
        if (zero_is_eof)
            return 0;
        c->failed = true;
        return weft__set_errmsg(WEFT_ETLS_EOF, "%s: the peer closed the TLS connection during the handshake%s%s",
                                what, c->peer[0] ? " with " : "", c->peer);
    case SSL_ERROR_SYSCALL:
        c->failed = true;
        ERR_clear_error();
        if (c->io_err) {
            int io = c->io_err;
            if (io == -EPIPE || io == -ECONNRESET)
                return weft__set_errmsg(io, "%s: the peer closed the connection (%s)", what, strerror(-io));
            return weft__set_errmsg(io, "%s: %s", what, weft_strerror(io));
        }
        if (c->eof)
            return weft__set_errmsg(WEFT_ETLS_EOF, "%s: unexpected eof while reading: the peer closed the "
                                                   "connection without close_notify",
                                    what);
        return weft__set_errmsg(WEFT_ETLS, "%s: OpenSSL failed without a reason", what);
    case SSL_ERROR_SSL: {
        c->failed = true;
        unsigned long err = ERR_peek_error();
        int reason = ERR_GET_REASON(err);
        int rc;
        if (reason == SSL_R_CERTIFICATE_VERIFY_FAILED) {
            rc = verify_failure(c, what);
        } else if (reason == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
            rc = weft__set_errmsg(WEFT_ETLS_EOF, "%s: unexpected eof while reading: the peer closed the "
                                                 "connection without close_notify",
                                  what);
        } else if (peer_refused_ours(c, reason)) {
            /* A TLS 1.2 client learns it in the handshake; a TLS 1.3 client at its
             * first read after it (the server checks the client's certificate last). */
            bool have = SSL_get_certificate(c->ssl) != NULL;
            rc = weft__set_errmsg(WEFT_ETLS_CERT, "%s: the peer%s%s%s %s: %s (its alert)", what,
                                  c->peer[0] ? " (" : "", c->peer, c->peer[0] ? ")" : "",
                                  !c->asked_for_cert ? "refused our certificate"
                                  : have ? "asks for a certificate and ours suits none of its signature algorithms"
                                         : "asks for a certificate and our context has none (cert_file)",
                                  ossl_reason(err, buf, sizeof buf));
        } else {
            int code = reason_code(reason);
            const char *r = ossl_reason(err, buf, sizeof buf);
            bool alert = strstr(r, "alert") != NULL;
            rc = weft__set_errmsg(code, "%s: %s%s%s%s%s", what, r,
                                  alert ? " (the peer's alert: it refused the handshake)"
                                  : reason == SSL_R_WRONG_VERSION_NUMBER || reason == SSL_R_HTTP_REQUEST
                                      ? " (the peer does not speak TLS: a plain port?)"
                                      : "",
                                  c->peer[0] ? " (" : "", c->peer, c->peer[0] ? ")" : "");
        }
        ERR_clear_error();
        return rc;
    }
    default:
        c->failed = true;
        ERR_clear_error();
        return weft__set_errmsg(WEFT_ETLS, "%s: OpenSSL asked for %s, which a weft stream never needs", what,
                                e == SSL_ERROR_WANT_WRITE ? "a wait to write" : "an unexpected wait");
    }
}

/* ------------------------------------------------------------------------ */
/* The connection's calls, for the stream                                   */
/* ------------------------------------------------------------------------ */

static int conn_handshake(void *tls)
{
    tls_conn *c = tls;
    ERR_clear_error();
    int r = SSL_do_handshake(c->ssl);
    if (r == 1) {
        const unsigned char *p = NULL;
        unsigned len = 0;
        SSL_get0_alpn_selected(c->ssl, &p, &len);
        if (p && len < sizeof c->alpn) {
            memcpy(c->alpn, p, len);
            c->alpn[len] = '\0';
        }
        return 0;
    }
    return ssl_failure(c, r, false, c->what);
}

static ssize_t conn_recv(void *tls, char *p, size_t n, bool *more)
{
    tls_conn *c = tls;
    if (c->failed)
        return weft__set_errmsg(WEFT_ETLS, "weft_stream_read: the TLS connection failed earlier");
    ERR_clear_error();
    size_t got = 0;
    int r = SSL_read_ex(c->ssl, p, n, &got);
    if (r == 1) {
        *more = SSL_has_pending(c->ssl) || c->last_full;
        return (ssize_t)got;
    }
    return ssl_failure(c, r, true, "weft_stream_read (TLS)");
}

static int write_all(tls_conn *c, const void *p, size_t n)
{
    ERR_clear_error();
    size_t done = 0;
    int r = SSL_write_ex(c->ssl, p, n, &done);
    if (r == 1)
        return 0;
    return ssl_failure(c, r, false, "weft_stream_write (TLS)");
}

/* Small pieces are gathered into one record, as writev gathers them into one
 * system call; large ones go as they are. */
static int conn_send(void *tls, const struct iovec *iov, int count)
{
    tls_conn *c = tls;
    if (c->failed)
        return weft__set_errmsg(WEFT_ETLS, "weft_stream_write: the TLS connection failed earlier");
    char gather[4096];
    size_t used = 0;
    for (int i = 0; i < count; i++) {
        size_t len = iov[i].iov_len;
        if (len == 0)
            continue;
        if (len <= sizeof gather - used) {
            memcpy(gather + used, iov[i].iov_base, len);
            used += len;
            continue;
        }
        if (used) {
            int rc = write_all(c, gather, used);
            if (rc)
                return rc;
            used = 0;
        }
        if (len <= sizeof gather) {
            memcpy(gather, iov[i].iov_base, len);
            used = len;
        } else {
            int rc = write_all(c, iov[i].iov_base, len);
            if (rc)
                return rc;
        }
    }
    return used ? write_all(c, gather, used) : 0;
}

static void conn_close_notify(void *tls)
{
    tls_conn *c = tls;
    if (c->shut_sent || c->failed || !SSL_is_init_finished(c->ssl))
        return;
    c->shut_sent = true;
    ERR_clear_error();
    (void)SSL_shutdown(c->ssl); /* queues the alert; the peer's answer is not awaited */
    ERR_clear_error();
}

static void ctx_release(weft__tls_hook *h);

static void conn_free(void *tls)
{
    tls_conn *c = tls;
    SSL_free(c->ssl); /* and its BIO */
    if (c->ctx)
        ctx_release(&c->ctx->hook);
    free(c);
}

static const weft__tls_ops conn_ops = {
    .handshake = conn_handshake,
    .recv = conn_recv,
    .send = conn_send,
    .close_notify = conn_close_notify,
    .free = conn_free,
};

/* ------------------------------------------------------------------------ */
/* Securing a stream                                                        */
/* ------------------------------------------------------------------------ */

static bool is_ip_literal(const char *host)
{
    unsigned char addr[16];
    return inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1;
}

static void ctx_retain(weft__tls_hook *h)
{
    weft_tls_context *ctx = (weft_tls_context *)h;
    atomic_fetch_add(&ctx->refs, 1);
}

static void ctx_release(weft__tls_hook *h)
{
    weft_tls_context *ctx = (weft_tls_context *)h;
    if (atomic_fetch_sub(&ctx->refs, 1) == 1) {
        for (size_t i = 0; i < ctx->nnames; i++) {
            free(ctx->names[i].name);
            SSL_CTX_free(ctx->names[i].ssl);
        }
        free(ctx->names);
        for (size_t i = 0; i < ctx->nsessions; i++)
            SSL_SESSION_free(ctx->sessions[i].session);
        free(ctx->sessions);
        pthread_mutex_destroy(&ctx->sessions_lock);
        SSL_CTX_free(ctx->ssl);
        free(ctx->alpn);
        free(ctx);
    }
}

/* ------------------------------------------------------------------------ */
/* A client's sessions, resumed                                             */
/* ------------------------------------------------------------------------ */

static bool same_key(const session_key *a, const session_key *b)
{
    return strcmp(a->host, b->host) == 0 && strcmp(a->where, b->where) == 0;
}

/* The key of a client connection to host over s: the host and the peer's port or
 * path. A host name too long to keep whole keeps no session. */
static void key_make(session_key *k, struct weft_stream *s, const char *host)
{
    memset(k, 0, sizeof *k);
    if (strlen(host) >= sizeof k->host)
        return;
    memcpy(k->host, host, strlen(host) + 1);
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getpeername(weft__stream_fd(s), (struct sockaddr *)&ss, &len) != 0)
        return;
    if (ss.ss_family == AF_INET) {
        snprintf(k->where, sizeof k->where, "%u", ntohs(((struct sockaddr_in *)&ss)->sin_port));
    } else if (ss.ss_family == AF_INET6) {
        snprintf(k->where, sizeof k->where, "%u", ntohs(((struct sockaddr_in6 *)&ss)->sin6_port));
    } else if (ss.ss_family == AF_UNIX) {
        struct sockaddr_un *sun = (struct sockaddr_un *)&ss;
        size_t n = len > offsetof(struct sockaddr_un, sun_path) ? len - offsetof(struct sockaddr_un, sun_path) : 0;
        if (n > sizeof k->where - 1)
            n = sizeof k->where - 1;
        memcpy(k->where, sun->sun_path, n);
        if (n && k->where[0] == '\0')
            k->where[0] = '@'; /* the abstract namespace */
        k->where[n] = '\0';
    }
}

/* OpenSSL has a new session for a client connection (after the handshake in TLS
 * 1.2, with each ticket in 1.3): a copy becomes the one saved for its host and port.
 * A copy, so that no session object is shared: the connection keeps its own, and the
 * saved one goes, under the lock, to the one connection that resumes it (possibly on another
 * thread's loop), each used once as RFC 8446 (C.4) asks of TLS 1.3 tickets. */
static int session_new(SSL *ssl, SSL_SESSION *given)
{
    tls_conn *c = SSL_get_app_data(ssl);
    weft_tls_context *ctx = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
    if (!c || !ctx || !c->key.host[0] || !SSL_SESSION_is_resumable(given))
        return 0;
    SSL_SESSION *session = SSL_SESSION_dup(given);
    if (!session)
        return 0; /* no memory: the next connection makes a full handshake */
    pthread_mutex_lock(&ctx->sessions_lock);
    size_t i = 0;
    while (i < ctx->nsessions && !same_key(&ctx->sessions[i].key, &c->key))
        i++;
    if (i == ctx->nsessions) {
        if (ctx->nsessions < SAVED_SESSIONS) {
            ctx->nsessions++;
        } else {
            i = ctx->nsessions - 1; /* the oldest goes */
            SSL_SESSION_free(ctx->sessions[i].session);
        }
    } else {
        SSL_SESSION_free(ctx->sessions[i].session);
    }
    memmove(&ctx->sessions[1], &ctx->sessions[0], i * sizeof ctx->sessions[0]);
    ctx->sessions[0].key = c->key;
    ctx->sessions[0].session = session;
    pthread_mutex_unlock(&ctx->sessions_lock);
    return 0; /* OpenSSL keeps its own reference to the one given */
}

/* Offers the session saved for the connection's host and port, if any, taking it
 * out of the cache. */
static void resume(weft_tls_context *ctx, tls_conn *c)
{
    if (!ctx->sessions)
        return;
    SSL_SESSION *session = NULL;
    pthread_mutex_lock(&ctx->sessions_lock);
    for (size_t i = 0; i < ctx->nsessions; i++) {
        if (same_key(&ctx->sessions[i].key, &c->key)) {
            session = ctx->sessions[i].session;
            memmove(&ctx->sessions[i], &ctx->sessions[i + 1], (ctx->nsessions - i - 1) * sizeof ctx->sessions[0]);
            ctx->nsessions--;
            break;
        }
    }
    pthread_mutex_unlock(&ctx->sessions_lock);
    if (session) {
        SSL_set_session(c->ssl, session); /* takes its own reference */
        SSL_SESSION_free(session);
    }
}

/* OpenSSL asks a client's callback for a certificate only when the server wants one
 * and the context has none: we send none, and remember why the server may refuse us. */
static int cert_asked(SSL *ssl, X509 **x509, EVP_PKEY **pkey)
{
    (void)x509;
    (void)pkey;
    tls_conn *c = SSL_get_app_data(ssl);
    if (c)
        c->asked_for_cert = true;
    return 0;
}

/* A new connection for s, configured for this end and peer; NULL with the message set. */
static tls_conn *conn_new(weft_tls_context *ctx, struct weft_stream *s, const char *host, const char *what)
{
    BIO_METHOD *m = bio_method();
    tls_conn *c = calloc(1, sizeof *c);
    SSL *ssl = c && m ? SSL_new(ctx->ssl) : NULL;
    BIO *bio = ssl ? BIO_new(m) : NULL;
    if (!bio) {
        SSL_free(ssl);
        free(c);
        ERR_clear_error();
        weft__set_errmsg(-ENOMEM, "%s: no memory for a TLS connection", what);
        return NULL;
    }
    c->ssl = ssl;
    c->what = what;
    c->ctx = ctx;
    ctx_retain(&ctx->hook);
    SSL_set_app_data(ssl, c);
    c->s = s;
    c->server = ctx->hook.server;
    BIO_set_data(bio, c);
    SSL_set_bio(ssl, bio, bio);
    if (c->server) {
        SSL_set_accept_state(ssl);
        return c;
    }
    SSL_set_connect_state(ssl);
    if (!host)
        return c;
    snprintf(c->peer, sizeof c->peer, "%s", host);
    key_make(&c->key, s, host);
    resume(ctx, c);
    bool ip = is_ip_literal(host);
    int ok = 1;
    /* SNI carries names only (RFC 6066), never an address. */
    if (!ip)
        ok = SSL_set_tlsext_host_name(ssl, host);
    if (ok && atomic_load(&ctx->verify)) {
        if (ip) {
            ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host);
        } else {
            SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
            ok = SSL_set1_host(ssl, host);
        }
    }
    if (!ok) {
        /* A name SNI cannot carry (empty, or past 255 bytes) is the caller's; the
         * calls fail otherwise only when OpenSSL runs out of memory, whatever reason
         * it then gives (the fault sweep saw "malloc failure", "internal error" and
         * none). */
        char buf[256];
        unsigned long e = ERR_peek_error();
        if (ERR_GET_LIB(e) == ERR_LIB_SSL && ERR_GET_REASON(e) == SSL_R_SSL3_EXT_INVALID_SERVERNAME)
            weft__set_errmsg(-EINVAL, "%s: the host name \"%s\" cannot be checked: %s", what, host,
                             ossl_reason(e, buf, sizeof buf));
        else
            weft__set_errmsg(-ENOMEM, "%s: no memory to check the host name \"%s\" (%s)", what, host,
                             ossl_reason(e, buf, sizeof buf));
        ERR_clear_error();
        conn_free(c);
        return NULL;
    }
    return c;
}

static int ctx_client_check(weft__tls_hook *h, const char *host, const char *what)
{
    weft_tls_context *ctx = (weft_tls_context *)h;
    if (h->server)
        return weft__set_errmsg(-EINVAL, "%s: opts->tls is a server's context (make one with "
                                         "weft_tls_client_context)",
                                what);
    if (!host && atomic_load(&ctx->verify))
        return weft__set_errmsg(-EINVAL, "%s: a TLS client needs the server's host name to check its "
                                         "certificate (server_hostname, or weft_tls_context_insecure_skip_verify)",
                                what);
    return 0;
}

static int ctx_secure(weft__tls_hook *h, struct weft_stream *s, const char *host, const char *what)
{
    weft_tls_context *ctx = (weft_tls_context *)h;
    if (!h->server) {
        int rc = ctx_client_check(h, host, what);
        if (rc)
            return rc;
    }
    tls_conn *c = conn_new(ctx, s, host, what);
    if (!c)
        return weft_errcode();
    weft_timeout *to = weft_timeout_enter(ctx->handshake_timeout);
    if (!to) {
        conn_free(c);
        return weft_errcode();
    }
    ctx_retain(h);
    int rc = weft__stream_tls_start(s, &conn_ops, c, what); /* takes c */
    int out = weft_timeout_exit(to, rc);
    if (out == -ETIMEDOUT)
        rc = weft__set_errmsg(WEFT_ETLS_TIMEOUT, "%s: the TLS handshake%s%s did not finish within %g s (the "
                                                 "context's handshake_timeout)",
                              what, host ? " with " : "", host ? host : "", ctx->handshake_timeout);
    ctx_release(h);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Contexts                                                                 */
/* ------------------------------------------------------------------------ */

/* Set when OpenSSL asked for a passphrase on this thread (an encrypted key). */
static _Thread_local bool password_asked;

/* The passphrase callback of every context: none is given, at once. */
static int no_password(char *buf, int size, int rwflag, void *arg)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)arg;
    password_asked = true;
    return -1;
}

/* Whether OpenSSL's queue says it ran out of memory anywhere: the reason it gives
 * last is often a caller's wrapper ("PEM lib", "library has no ciphers", "ASN1
 * lib") around the malloc failure deeper down. Empties the queue. */
static bool ossl_out_of_memory(void)
{
    bool oom = false;
    unsigned long x;
    while ((x = ERR_get_error()) != 0)
        if (ERR_GET_REASON(x) == ERR_R_MALLOC_FAILURE)
            oom = true;
    return oom;
}

/* The error of a context being made: errno for a file it could not read, -ENOMEM
 * when OpenSSL ran out of memory (not the file's fault), else OpenSSL's reason,
 * with what to do where OpenSSL's words ("PEM lib") do not say. */
static int context_error(const char *what, const char *doing, const char *file)
{
    unsigned long e = ERR_peek_last_error();
    char buf[256];
    int rc;
    struct stat st;
    if (file && access(file, R_OK) != 0) {
        int err = errno;
        rc = weft__set_errmsg(-err, "%s: %s %s: %s", what, doing, file, strerror(err));
    } else if (file && stat(file, &st) == 0 && S_ISDIR(st.st_mode)) {
        rc = weft__set_errmsg(-EISDIR, "%s: %s %s: it is a directory; give a PEM file", what, doing, file);
    } else if (password_asked) {
        rc = weft__set_errmsg(WEFT_ETLS, "%s: %s %s: the key is encrypted, and weft asks for no passphrase: "
                                         "decrypt it first (openssl pkey -in KEY -out PLAIN_KEY)",
                              what, doing, file ? file : "");
    } else if (ossl_out_of_memory() || !e) {
        rc = weft__set_errmsg(-ENOMEM, "%s: %s%s%s: no memory (%s)", what, doing, file ? " " : "",
                              file ? file : "", ossl_reason(e, buf, sizeof buf));
    } else if (file && (ERR_GET_LIB(e) == ERR_LIB_PEM || (ERR_GET_LIB(e) == ERR_LIB_SSL && ERR_GET_REASON(e) == ERR_R_PEM_LIB))) {
        rc = weft__set_errmsg(WEFT_ETLS, "%s: %s %s: %s (not the PEM expected: a certificate file holds "
                                         "\"BEGIN CERTIFICATE\" blocks, a key file a \"BEGIN ... PRIVATE KEY\" "
                                         "block; give key_file when the key is not in cert_file)",
                              what, doing, file, ossl_reason(e, buf, sizeof buf));
    } else {
        rc = weft__set_errmsg(WEFT_ETLS, "%s: %s%s%s: %s", what, doing, file ? " " : "", file ? file : "",
                              ossl_reason(e, buf, sizeof buf));
    }
    ERR_clear_error();
    return rc;
}

/* Chooses the first of the server's protocols the client offers; none in common,
 * the handshake goes on without ALPN (as Python's ssl and nginx do). */
static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
                       unsigned inlen, void *arg)
{
    (void)ssl;
    weft_tls_context *ctx = arg;
    unsigned char *o = NULL;
    if (SSL_select_next_proto(&o, outlen, ctx->alpn, (unsigned)ctx->alpn_len, in, inlen) == OPENSSL_NPN_NEGOTIATED) {
        *out = o;
        return SSL_TLSEXT_ERR_OK;
    }
    return SSL_TLSEXT_ERR_NOACK;
}

/* Whether a certificate for `pattern` serves `name` (case aside; "*." stands for
 * exactly one label). */
static bool name_matches(const char *pattern, const char *name)
{
    if (pattern[0] == '*' && pattern[1] == '.') {
        const char *dot = strchr(name, '.');
        return dot && dot != name && strcasecmp(dot + 1, pattern + 2) == 0;
    }
    return strcasecmp(pattern, name) == 0;
}

/* SNI: the client's name picks the certificate; an unknown name or none gets the
 * context's own. */
static int servername_pick(SSL *ssl, int *alert, void *arg)
{
    (void)alert;
    weft_tls_context *ctx = arg;
    const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (!name)
        return SSL_TLSEXT_ERR_OK;
    for (size_t i = 0; i < ctx->nnames; i++) {
        if (name_matches(ctx->names[i].name, name)) {
            SSL_set_SSL_CTX(ssl, ctx->names[i].ssl);
            break;
        }
    }
    return SSL_TLSEXT_ERR_OK;
}

static int alpn_wire(weft_tls_context *ctx, const char *const *names, const char *what)
{
    size_t len = 0;
    for (const char *const *n = names; *n; n++) {
        size_t l = strlen(*n);
        if (l == 0 || l > 255)
            return weft__set_errmsg(-EINVAL, "%s: the ALPN name \"%s\" is %s", what, *n,
                                    l ? "longer than 255 bytes" : "empty");
        len += 1 + l;
    }
    if (len == 0)
        return 0;
    ctx->alpn = malloc(len);
    if (!ctx->alpn)
        return weft__set_errmsg(-ENOMEM, "%s: no memory", what);
    size_t at = 0;
    for (const char *const *n = names; *n; n++) {
        size_t l = strlen(*n);
        ctx->alpn[at++] = (unsigned char)l;
        memcpy(ctx->alpn + at, *n, l);
        at += l;
    }
    ctx->alpn_len = len;
    return 0;
}

static weft_tls_context *context_new(const weft_tls_options *o, bool server, const char *what)
{
    weft_tls_options none = {0};
    if (!o)
        o = &none;
    if (o->min_version != 0 && o->min_version != WEFT_TLS_1_2 && o->min_version != WEFT_TLS_1_3) {
        weft__set_errmsg(-EINVAL, "%s: min_version %d is neither WEFT_TLS_1_2 (12) nor WEFT_TLS_1_3 (13)", what,
                         o->min_version);
        return NULL;
    }
    if (o->max_version != 0 && o->max_version != WEFT_TLS_1_2 && o->max_version != WEFT_TLS_1_3) {
        weft__set_errmsg(-EINVAL, "%s: max_version %d is neither WEFT_TLS_1_2 (12) nor WEFT_TLS_1_3 (13)", what,
                         o->max_version);
        return NULL;
    }
    if (o->max_version != 0 && o->max_version < (o->min_version ? o->min_version : WEFT_TLS_1_2)) {
        weft__set_errmsg(-EINVAL, "%s: max_version %d is below min_version %d: no protocol is left", what,
                         o->max_version, o->min_version);
        return NULL;
    }
    if (o->key_file && !o->cert_file) {
        weft__set_errmsg(-EINVAL, "%s: key_file is given without cert_file (the certificate it is the key of)",
                         what);
        return NULL;
    }
    if (server && !o->cert_file) {
        weft__set_errmsg(-EINVAL, "%s: a server needs its certificate (opts->cert_file)", what);
        return NULL;
    }
    if (o->handshake_timeout < 0 || o->handshake_timeout != o->handshake_timeout) {
        weft__set_errmsg(-EINVAL, "%s: handshake_timeout must be positive (0 = 60 s)", what);
        return NULL;
    }
    weft_tls_context *ctx = calloc(1, sizeof *ctx);
    if (!ctx) {
        weft__set_errmsg(-ENOMEM, "%s: no memory", what);
        return NULL;
    }
    ctx->hook.secure = ctx_secure;
    ctx->hook.client_check = ctx_client_check;
    ctx->hook.retain = ctx_retain;
    ctx->hook.release = ctx_release;
    ctx->hook.server = server;
    atomic_init(&ctx->refs, 1);
    pthread_mutex_init(&ctx->sessions_lock, NULL);
    atomic_init(&ctx->verify, !server);
    ctx->handshake_timeout = o->handshake_timeout > 0 ? o->handshake_timeout : DEFAULT_HANDSHAKE_TIMEOUT;
    ERR_clear_error();
    password_asked = false;
    SSL_CTX *c = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
    ctx->ssl = c;
    if (c)
        SSL_CTX_set_app_data(c, ctx);
    if (!c) {
        context_error(what, "SSL_CTX_new", NULL);
        goto fail;
    }
    SSL_CTX_set_min_proto_version(c, o->min_version == WEFT_TLS_1_3 ? TLS1_3_VERSION : TLS1_2_VERSION);
    if (o->max_version)
        SSL_CTX_set_max_proto_version(c, o->max_version == WEFT_TLS_1_2 ? TLS1_2_VERSION : TLS1_3_VERSION);
    SSL_CTX_set_options(c, SSL_OP_NO_RENEGOTIATION);
    /* OpenSSL reads as much as the socket holds, not a record header and then its body. */
    SSL_CTX_set_read_ahead(c, 1);
    /* An idle connection holds no record buffers (as nginx sets it): 37 -> 28 KB per idle
     * TLS connection in bench/idle_conns, for no measurable cost per request (callgrind:
     * ~20k instructions per W5 request either way). */
    SSL_CTX_set_mode(c, SSL_MODE_RELEASE_BUFFERS);
    if (o->ciphers && !SSL_CTX_set_cipher_list(c, o->ciphers)) {
        context_error(what, "the cipher list (ciphers)", NULL); /* a list, not a file */
        goto fail;
    }
    if (o->ciphersuites && !SSL_CTX_set_ciphersuites(c, o->ciphersuites)) {
        context_error(what, "the TLS 1.3 cipher suites", NULL);
        goto fail;
    }
    /* An encrypted key must not prompt on the terminal (OpenSSL's default), which would
     * hold the calling thread, a loop's perhaps: it fails at once, and says why. */
    SSL_CTX_set_default_passwd_cb(c, no_password);
    if (o->cert_file) {
        if (SSL_CTX_use_certificate_chain_file(c, o->cert_file) != 1) {
            context_error(what, "reading the certificate chain", o->cert_file);
            goto fail;
        }
        const char *key = o->key_file ? o->key_file : o->cert_file;
        if (SSL_CTX_use_PrivateKey_file(c, key, SSL_FILETYPE_PEM) != 1) {
            context_error(what, "reading the private key", key);
            goto fail;
        }
        if (SSL_CTX_check_private_key(c) != 1) {
            context_error(what, "the private key does not match the certificate", NULL);
            goto fail;
        }
    }
    if (o->ca_dir) {
        /* OpenSSL looks in the directory only when a handshake needs a CA: a path that
         * is not a directory would be every handshake's WEFT_ETLS_UNKNOWN_CA. */
        struct stat st;
        int err = stat(o->ca_dir, &st) != 0 ? errno
                  : !S_ISDIR(st.st_mode)    ? ENOTDIR
                  : access(o->ca_dir, R_OK | X_OK) != 0 ? errno : 0;
        if (err) {
            weft__set_errmsg(-err, "%s: the CA directory (ca_dir) %s: %s", what, o->ca_dir, strerror(err));
            goto fail;
        }
    }
    if (o->ca_file || o->ca_dir) {
        if (SSL_CTX_load_verify_locations(c, o->ca_file, o->ca_dir) != 1) {
            context_error(what, "reading the CAs", o->ca_file ? o->ca_file : o->ca_dir);
            goto fail;
        }
    } else if (!server && SSL_CTX_set_default_verify_paths(c) != 1) {
        context_error(what, "the system's CA store", NULL);
        goto fail;
    }
    if (server) {
        static const unsigned char sid[] = "weft";
        SSL_CTX_set_session_id_context(c, sid, sizeof sid - 1);
        /* A server given CAs asks its clients for a certificate they sign (mutual TLS). */
        if (o->ca_file || o->ca_dir)
            SSL_CTX_set_verify(c, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    } else {
        SSL_CTX_set_verify(c, SSL_VERIFY_PEER, NULL);
        SSL_CTX_set_client_cert_cb(c, cert_asked);
        /* Sessions are kept by host name and port here, not in OpenSSL's cache (keyed
         * by server session id, which a client cannot look up). */
        ctx->sessions = calloc(SAVED_SESSIONS, sizeof *ctx->sessions);
        if (!ctx->sessions) {
            weft__set_errmsg(-ENOMEM, "%s: no memory", what);
            goto fail;
        }
        SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
        SSL_CTX_sess_set_new_cb(c, session_new);
    }
    if (o->alpn) {
        if (alpn_wire(ctx, o->alpn, what) != 0)
            goto fail;
        if (ctx->alpn_len) {
            if (server) {
                SSL_CTX_set_alpn_select_cb(c, alpn_select, ctx);
            } else if (SSL_CTX_set_alpn_protos(c, ctx->alpn, (unsigned)ctx->alpn_len) != 0) {
                context_error(what, "the ALPN list", NULL);
                goto fail;
            }
        }
    }
    return ctx;
fail:
    SSL_CTX_free(ctx->ssl);
    free(ctx->alpn);
    free(ctx->sessions);
    pthread_mutex_destroy(&ctx->sessions_lock);
    free(ctx);
    return NULL;
}

weft_tls_context *weft_tls_client_context(const weft_tls_options *opts)
{
    return context_new(opts, false, "weft_tls_client_context");
}

weft_tls_context *weft_tls_server_context(const weft_tls_options *opts)
{
    return context_new(opts, true, "weft_tls_server_context");
}

int weft_tls_context_insecure_skip_verify(weft_tls_context *ctx)
{
    if (!ctx || ctx->hook.server)
        return weft__set_errmsg(-EINVAL, "weft_tls_context_insecure_skip_verify: %s",
                                !ctx ? "ctx is NULL" : "a server's context (servers check no certificate "
                                                       "unless given CAs)");
    atomic_store(&ctx->verify, false);
    SSL_CTX_set_verify(ctx->ssl, SSL_VERIFY_NONE, NULL);
    return 0;
}

int weft_tls_context_add_certificate(weft_tls_context *ctx, const char *name, const char *cert_file,
                                     const char *key_file)
{
    const char *what = "weft_tls_context_add_certificate";
    if (!ctx || !ctx->hook.server || !name || !*name || !cert_file)
        return weft__set_errmsg(-EINVAL, "%s: %s", what,
                                !ctx ? "ctx is NULL"
                                : !ctx->hook.server ? "a client's context (a client's certificate is cert_file)"
                                : !cert_file ? "cert_file is NULL" : "the name is empty");
    if (atomic_load(&ctx->refs) != 1)
        return weft__set_errmsg(WEFT_ESTATE, "%s: the context is in use (a server holds it); add every name "
                                             "before serving with it",
                                what);
    named_cert *names = realloc(ctx->names, (ctx->nnames + 1) * sizeof *names);
    if (!names)
        return weft__set_errmsg(-ENOMEM, "%s: no memory", what);
    ctx->names = names;
    ERR_clear_error();
    password_asked = false;
    SSL_CTX *c = SSL_CTX_new(TLS_server_method());
    char *copy = strdup(name);
    if (!c || !copy) {
        SSL_CTX_free(c);
        free(copy);
        ERR_clear_error();
        return weft__set_errmsg(-ENOMEM, "%s: no memory", what);
    }
    const char *key = key_file ? key_file : cert_file;
    int rc = 0;
    SSL_CTX_set_default_passwd_cb(c, no_password);
    if (SSL_CTX_use_certificate_chain_file(c, cert_file) != 1)
        rc = context_error(what, "reading the certificate chain", cert_file);
    else if (SSL_CTX_use_PrivateKey_file(c, key, SSL_FILETYPE_PEM) != 1)
        rc = context_error(what, "reading the private key", key);
    else if (SSL_CTX_check_private_key(c) != 1)
        rc = context_error(what, "the private key does not match the certificate", NULL);
    if (rc) {
        SSL_CTX_free(c);
        free(copy);
        return rc;
    }
    /* After the switch, OpenSSL asks the named context for ALPN, and checks a client's
     * certificate against its CAs: it answers as ours, with our CAs (mutual TLS). */
    SSL_CTX_set1_cert_store(c, SSL_CTX_get_cert_store(ctx->ssl));
    static const unsigned char sid[] = "weft";
    SSL_CTX_set_session_id_context(c, sid, sizeof sid - 1);
    if (ctx->alpn_len)
        SSL_CTX_set_alpn_select_cb(c, alpn_select, ctx);
    if (ctx->nnames == 0) {
        SSL_CTX_set_tlsext_servername_callback(ctx->ssl, servername_pick);
        SSL_CTX_set_tlsext_servername_arg(ctx->ssl, ctx);
    }
    ctx->names[ctx->nnames].name = copy;
    ctx->names[ctx->nnames].ssl = c;
    ctx->nnames++;
    return 0;
}

void weft_tls_context_free(weft_tls_context *ctx)
{
    if (ctx)
        ctx_release(&ctx->hook);
}

/* ------------------------------------------------------------------------ */
/* Streams                                                                  */
/* ------------------------------------------------------------------------ */

int weft_start_tls(weft_stream *h, weft_tls_context *ctx, const char *server_hostname)
{
    int err;
    struct weft_stream *s = weft__net_from(h, WEFT__NET_STREAM, "weft_start_tls", &err);
    if (!s)
        return err;
    if (!weft__current())
        return weft__set_errmsg(WEFT_ENOTINLOOP, "weft_start_tls must be called from a task (it suspends)");
    if (!ctx)
        return weft__set_errmsg(-EINVAL, "weft_start_tls: ctx is NULL");
    return ctx_secure(&ctx->hook, s, server_hostname, "weft_start_tls");
}

static tls_conn *stream_conn(weft_stream *h, const char *what)
{
    int err;
    struct weft_stream *s = weft__net_from(h, WEFT__NET_STREAM, what, &err);
    return s ? weft__stream_tls(s) : NULL;
}

const char *weft_stream_tls_version(weft_stream *h)
{
    tls_conn *c = stream_conn(h, "weft_stream_tls_version");
    return c ? SSL_get_version(c->ssl) : NULL;
}

bool weft_stream_tls_resumed(weft_stream *h)
{
    tls_conn *c = stream_conn(h, "weft_stream_tls_resumed");
    return c && SSL_session_reused(c->ssl);
}

const char *weft_stream_tls_alpn(weft_stream *h)
{
    tls_conn *c = stream_conn(h, "weft_stream_tls_alpn");
    return c && c->alpn[0] ? c->alpn : NULL;
}

const char *weft_stream_tls_cipher(weft_stream *h)
{
    tls_conn *c = stream_conn(h, "weft_stream_tls_cipher");
    return c ? SSL_get_cipher_name(c->ssl) : NULL;
}

const char *weft_stream_tls_server_name(weft_stream *h)
{
    tls_conn *c = stream_conn(h, "weft_stream_tls_server_name");
    if (!c)
        return NULL;
    const char *name = SSL_get_servername(c->ssl, TLSEXT_NAMETYPE_host_name);
    return name && *name ? name : NULL;
}

/* The peer's certificate, when it was checked: a client with verification off, or a
 * server that asked for none, has no name to give. NULL with the message set. */
static X509 *checked_peer(weft_stream *h, const char *what, int *err)
{
    struct weft_stream *s = weft__net_from(h, WEFT__NET_STREAM, what, err);
    if (!s)
        return NULL;
    tls_conn *c = weft__stream_tls(s);
    if (!c) {
        *err = weft__set_errmsg(-EINVAL, "%s: not a TLS stream (or its handshake has not finished)", what);
        return NULL;
    }
    X509 *peer = SSL_get0_peer_certificate(c->ssl);
    if (!peer) {
        *err = weft__set_errmsg(-ENOENT, "%s: the peer sent no certificate%s", what,
                                c->server ? " (a server asks clients for one only when its context has CAs: "
                                            "ca_file or ca_dir)"
                                          : "");
        return NULL;
    }
    if (!(SSL_get_verify_mode(c->ssl) & SSL_VERIFY_PEER) || SSL_get_verify_result(c->ssl) != X509_V_OK) {
        *err = weft__set_errmsg(-ENOENT, "%s: the peer's certificate was not checked "
                                         "(weft_tls_context_insecure_skip_verify): its names prove nothing",
                                what);
        return NULL;
    }
    return peer;
}

/* Copies a name of n bytes into buf, or says how much room it needs. */
static ssize_t give_name(const char *name, size_t n, char *buf, size_t size, const char *what)
{
    if (!buf && size == 0)
        return (ssize_t)n;
    if (n + 1 > size)
        return weft__set_errmsg(-ERANGE, "%s: the name needs %zu bytes (NUL included), buf has %zu", what, n + 1,
                                size);
    memcpy(buf, name, n);
    buf[n] = '\0';
    return (ssize_t)n;
}

ssize_t weft_stream_tls_peer_subject(weft_stream *h, char *buf, size_t size)
{
    const char *what = "weft_stream_tls_peer_subject";
    if (!buf && size)
        return weft__set_errmsg(-EINVAL, "%s: buf is NULL and size is %zu", what, size);
    int err;
    X509 *peer = checked_peer(h, what, &err);
    if (!peer)
        return err;
    BIO *mem = BIO_new(BIO_s_mem());
    /* RFC 2253, UTF-8 left as it is (not escaped byte by byte). */
    if (!mem || X509_NAME_print_ex(mem, X509_get_subject_name(peer), 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) < 0) {
        BIO_free(mem);
        ERR_clear_error();
        return weft__set_errmsg(-ENOMEM, "%s: no memory", what);
    }
    char *text = NULL;
    long n = BIO_get_mem_data(mem, &text);
    ssize_t rc = give_name(text ? text : "", n > 0 ? (size_t)n : 0, buf, size, what);
    BIO_free(mem);
    return rc;
}

ssize_t weft_stream_tls_peer_common_name(weft_stream *h, char *buf, size_t size)
{
    const char *what = "weft_stream_tls_peer_common_name";
    if (!buf && size)
        return weft__set_errmsg(-EINVAL, "%s: buf is NULL and size is %zu", what, size);
    int err;
    X509 *peer = checked_peer(h, what, &err);
    if (!peer)
        return err;
    /* The last common name is the most specific (as OpenSSL's host check takes it). */
    X509_NAME *subject = X509_get_subject_name(peer);
    int at = -1;
    for (int i; (i = X509_NAME_get_index_by_NID(subject, NID_commonName, at)) >= 0;)
        at = i;
    if (at < 0)
        return weft__set_errmsg(-ENOENT, "%s: the peer's certificate names no common name (CN)", what);
    unsigned char *utf8 = NULL;
    int n = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, at)));
    if (n < 0) {
        ERR_clear_error();
        return weft__set_errmsg(WEFT_ETLS, "%s: the common name cannot be read as UTF-8", what);
    }
    ssize_t rc;
    if (memchr(utf8, '\0', (size_t)n))
        rc = weft__set_errmsg(-EILSEQ, "%s: the common name holds a NUL byte (a name made to be cut short)", what);
    else
        rc = give_name((const char *)utf8, (size_t)n, buf, size, what);
    OPENSSL_free(utf8);
    return rc;
}
