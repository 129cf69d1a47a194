/*
 * weft/tls.h — TLS over weft's streams, built on OpenSSL (asyncio's ssl= argument,
 * SSLContext and start_tls). A TLS stream is a weft_stream: read, readline,
 * readexactly, readuntil, write, drain and close work on it unchanged, with the
 * same buffering and back-pressure.
 *
 *   asyncio / ssl                                   weft
 *   ctx = ssl.create_default_context()              ctx = weft_tls_client_context(NULL)
 *   ctx.load_verify_locations(cafile=f)             opts.ca_file = f (which replaces the system's
 *                                                     store, where Python's adds to it)
 *   ctx.load_cert_chain(cert, key)                  opts.cert_file = cert; opts.key_file = key
 *   ctx.minimum_version = TLSVersion.TLSv1_3        opts.min_version = WEFT_TLS_1_3
 *   ctx.maximum_version = TLSVersion.TLSv1_2        opts.max_version = WEFT_TLS_1_2
 *   ctx.set_alpn_protocols(["h2", "http/1.1"])      opts.alpn = (const char *[]){"h2", "http/1.1", NULL}
 *   ctx.check_hostname = False;                     weft_tls_context_insecure_skip_verify(ctx)
 *     ctx.verify_mode = CERT_NONE
 *   open_connection(h, p, ssl=ctx)                  weft_open_connection(h, p, &(weft_connect_options){.tls = ctx})
 *   start_server(cb, h, p, ssl=ctx)                 weft_start_server(cb, arg, h, p, &(weft_server_options){.tls = ctx})
 *   open_unix_connection(path, ssl=ctx,             weft_open_unix_connection(path, &(weft_unix_connect_options)
 *     server_hostname=h)                              {.tls = ctx, .server_hostname = h})
 *   await writer.start_tls(ctx, server_hostname=h)  weft_start_tls(s, ctx, h)
 *   writer.get_extra_info("ssl_object")
 *     .version(), .selected_alpn_protocol()         weft_stream_tls_version(s), weft_stream_tls_alpn(s)
 *     .cipher(), .server_hostname                   weft_stream_tls_cipher(s), weft_stream_tls_server_name(s)
 *   writer.get_extra_info("peercert")["subject"]    weft_stream_tls_peer_subject(s, buf, size)
 *   a server's ctx.verify_mode = CERT_REQUIRED      a server context given ca_file or ca_dir
 *   ctx.sni_callback choosing a context by name     weft_tls_context_add_certificate(ctx, name, cert, key)
 *
 * Secure by default: a client context trusts the system's CA store, checks the
 * peer's certificate and that it names the host asked for, and refuses anything
 * older than TLS 1.2. Only weft_tls_context_insecure_skip_verify turns checking off.
 * Errors say why in OpenSSL's words, each reason its own code (weft/errors.h):
 * WEFT_ETLS_UNKNOWN_CA, WEFT_ETLS_HOSTNAME, WEFT_ETLS_EXPIRED, WEFT_ETLS_CERT,
 * WEFT_ETLS_VERSION, WEFT_ETLS_TIMEOUT, WEFT_ETLS_EOF and WEFT_ETLS for the rest.
 *
 * A context is read-only once made and may be shared by any number of connections,
 * servers and threads. OpenSSL's types stay out of this header.
 *
 * Part of weft's public header: include <weft.h>, not this file.
 */
#ifndef WEFT_TLS_H
#define WEFT_TLS_H

#include "base.h"
#include "net.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Protocol versions for weft_tls_options.min_version and max_version. */
enum { WEFT_TLS_1_2 = 12, WEFT_TLS_1_3 = 13 };

/* A context's configuration; all zeros means the secure defaults. Files are PEM. */
typedef struct weft_tls_options {
    const char *ca_file;        /* trust these CAs (a PEM bundle) instead of the system's store */
    const char *ca_dir;         /* ...or these (a directory hashed by `openssl rehash`); with
                                   neither, a client trusts the system's store
                                   (ssl.create_default_context). A server given either asks
                                   each client for a certificate they sign and refuses a
                                   client without one (mutual TLS; weft_start_tls says
                                   what a refused client sees) */
    const char *cert_file;      /* our certificate chain, leaf first: required for a server,
                                   optional for a client (a client certificate) */
    const char *key_file;       /* its private key; NULL = in cert_file */
    int min_version;            /* 0 = WEFT_TLS_1_2; WEFT_TLS_1_3 refuses TLS 1.2 */
    int max_version;            /* 0 = the newest OpenSSL speaks; WEFT_TLS_1_2 refuses TLS 1.3 */
    const char *ciphers;        /* TLS 1.2 cipher list (OpenSSL's syntax); NULL = OpenSSL's defaults */
    const char *ciphersuites;   /* TLS 1.3 suites; NULL = OpenSSL's defaults */
    const char *const *alpn;    /* ALPN protocols, most wanted first, NULL-terminated; NULL = none.
                                   A server picks the first of its list the client offers. */
    double handshake_timeout;   /* seconds; 0 = 60 (asyncio's ssl_handshake_timeout) */
} weft_tls_options;

/*
 * weft_tls_client_context / weft_tls_server_context — make a TLS configuration
 * (ssl.create_default_context(Purpose.SERVER_AUTH / CLIENT_AUTH)). Certificates
 * and keys are read now, so a missing or wrong file is this call's error.
 * opts may be NULL for a client (the defaults); a server needs cert_file.
 * Returns: the context (freed with weft_tls_context_free), or NULL with
 *   weft_errcode() saying why. Any thread, in a loop or not.
 * Suspends: never (the files are read on the calling thread: make contexts at
 *   start-up, or through weft_to_thread).
 * Errors: -EINVAL (a server without cert_file, a min_version or max_version other
 *   than 0, 12 or 13, a max_version below min_version,
 *   an ALPN name empty or longer than 255 bytes); -ENOENT and the like for a file that
 *   cannot be read, -ENOTDIR for a ca_dir that is not a directory (a directory with
 *   no CA in it is taken: it trusts nobody); WEFT_ETLS for a file OpenSSL refuses (not PEM, a key that does not
 *   match the certificate, an unknown cipher), with OpenSSL's reason in weft_errmsg();
 *   -ENOMEM.
 */
WEFT_API weft_tls_context *weft_tls_client_context(const weft_tls_options *opts);
WEFT_API weft_tls_context *weft_tls_server_context(const weft_tls_options *opts);

/*
 * weft_tls_context_insecure_skip_verify — stop checking the peer's certificate and
 * host name (ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE). Anyone
 * between the client and the server can then read and change the traffic: for tests
 * against self-signed servers only. Call it before the context is used (connections
 * made afterwards are affected; one already shared with other threads must not change).
 * Returns: 0.
 * Suspends: never.
 * Errors: -EINVAL for NULL or a server's context.
 */
WEFT_API int weft_tls_context_insecure_skip_verify(weft_tls_context *ctx);

/*
 * weft_tls_context_add_certificate — serve another certificate to clients that ask
 * for `name` by SNI (a server with several names on one address; asyncio's
 * sni_callback choosing a context). "*.example.com" stands for any one label before
 * example.com. A client that names none of them, or sends no name, gets the
 * context's own cert_file. A context given CAs (mutual TLS) checks clients against
 * them whichever certificate it serves. Add every name before a server uses the
 * context.
 * Returns: 0.
 * Suspends: never (the files are read now).
 * Errors: -EINVAL (NULL or a client's context, an empty name, NULL cert_file);
 *   WEFT_ESTATE (a server already holds the context); as weft_tls_server_context for
 *   the files; -ENOMEM.
 */
WEFT_API int weft_tls_context_add_certificate(weft_tls_context *ctx, const char *name, const char *cert_file,
                                              const char *key_file);

/* weft_tls_context_free — give up the caller's reference, exactly once (as free()):
 * the context goes once the servers and connections using it are given up, so a
 * caller may free it as soon as its connections are made and its servers started.
 * A context freed twice, or used after its free, is memory gone: weft cannot tell.
 * Returns: nothing.
 * Suspends: never.
 * Errors: none (NULL is ignored). */
WEFT_API void weft_tls_context_free(weft_tls_context *ctx);

/*
 * weft_start_tls — upgrade an open stream to TLS in place (asyncio's
 * StreamWriter.start_tls; SMTP's STARTTLS, PostgreSQL's SSLRequest). A client
 * context makes this end the client, checking the peer against server_hostname
 * (NULL only with weft_tls_context_insecure_skip_verify); a server context makes it
 * the server (server_hostname ignored). Bytes written before are sent first, in
 * plain; bytes the stream had read ahead are taken as the peer's first TLS bytes.
 * Other tasks' writes during the handshake fail with WEFT_ESTATE, and their reads
 * with -EBUSY (the handshake holds the reader's place).
 * Mutual TLS, the client's side: a server that refuses the client's certificate (or
 * its lack of one) sends an alert. In TLS 1.2 the client reads it inside the handshake:
 * the call that makes the connection fails with WEFT_ETLS_CERT. In TLS 1.3 the
 * client's handshake is over before the server has checked its certificate: the call
 * succeeds, writes are taken, and the first read (weft_stream_read, readline, ...)
 * fails with WEFT_ETLS_CERT, as Python's ssl raises at its first read (a write made
 * after the server hung up, or a drain, may give -EPIPE or -ECONNRESET; the read
 * still gives the server's reason). Either way
 * weft_errmsg() gives OpenSSL's words for the alert: "tlsv13 alert certificate
 * required" or, in TLS 1.2, "sslv3 alert handshake failure" (no certificate: the
 * message adds that our context has no cert_file), "tlsv1 alert unknown ca" (one the
 * server's CAs did not sign), "sslv3 alert certificate expired", "sslv3 alert bad
 * certificate". The server's side fails in the handshake: WEFT_ETLS_CERT ("peer did
 * not return a certificate") or the code of its own check (WEFT_ETLS_UNKNOWN_CA,
 * WEFT_ETLS_EXPIRED, ...); a server started with opts->tls does not call the handler.
 * WEFT_ETLS_UNKNOWN_CA, WEFT_ETLS_HOSTNAME and WEFT_ETLS_EXPIRED always mean that this
 * end refused the peer's certificate; the peer's refusal of ours, whatever its alert,
 * is WEFT_ETLS_CERT.
 * Returns: 0 once the handshake is done: the same handle now reads and writes TLS.
 * Suspends: until the handshake is done, within the context's handshake timeout.
 * Errors: WEFT_ETLS_UNKNOWN_CA, WEFT_ETLS_HOSTNAME, WEFT_ETLS_EXPIRED, WEFT_ETLS_CERT
 *   (the peer's certificate was refused for another reason or not sent when asked
 *   for, or the peer refused ours), WEFT_ETLS_VERSION,
 *   WEFT_ETLS_TIMEOUT, WEFT_ETLS_EOF (the peer closed during the handshake),
 *   -ECONNRESET or -EPIPE (the socket's: the peer reset the connection, or our
 *   handshake bytes could not be sent and nothing came back),
 *   WEFT_ETLS (any other failure, OpenSSL's reason in weft_errmsg()): the stream is
 *   then closed, and its handle still the caller's to give up (weft_stream_close);
 *   refused before anything was sent, the stream unchanged: -EINVAL (NULL ctx, or a
 *   client context without a host name and verification on), WEFT_ESTATE (already
 *   TLS), WEFT_ECLOSED (closing, or at end of file), -EBUSY (another task is reading
 *   s or sending a file), -ENOMEM; -ESTALE; WEFT_ENOTINLOOP.
 * On cancel: returns -ECANCELED; the handshake is abandoned and the stream closed
 *   (its handle still the caller's).
 */
WEFT_API WEFT_WAIT int weft_start_tls(weft_stream *s, weft_tls_context *ctx, const char *server_hostname);

/* weft_stream_tls_version — the protocol version a TLS stream speaks ("TLSv1.3").
 * Returns: a static string, or NULL for a plain stream or a stale handle.
 * Suspends: never.
 * Errors: none. */
WEFT_API const char *weft_stream_tls_version(weft_stream *s);

/* weft_stream_tls_resumed — true when the handshake resumed an earlier session (a
 * client context keeps the latest session of each of up to 64 places it connected
 * to, a place being the host name checked (server_hostname, or the host; a
 * connection without one keeps no session) and the server's port, or its Unix
 * socket's path, and offers it, once, on the next connection to the same place: two servers of one host on two ports are never
 * offered each other's sessions; ssl_object.session_reused).
 * Returns: the flag; false for a plain stream or a stale handle.
 * Suspends: never.
 * Errors: none. */
WEFT_API bool weft_stream_tls_resumed(weft_stream *s);

/* weft_stream_tls_alpn — the ALPN protocol agreed in the handshake ("h2").
 * Returns: a string owned by the stream, valid until it is given up; NULL when none
 *   was agreed, for a plain stream or a stale handle.
 * Suspends: never.
 * Errors: none. */
WEFT_API const char *weft_stream_tls_alpn(weft_stream *s);

/* weft_stream_tls_cipher — the cipher suite agreed ("TLS_AES_256_GCM_SHA384";
 * ssl_object.cipher()[0]).
 * Returns: a static string; NULL for a plain stream or a stale handle.
 * Suspends: never.
 * Errors: none. */
WEFT_API const char *weft_stream_tls_cipher(weft_stream *s);

/* weft_stream_tls_server_name — the host name sent by SNI: on a server, the one the
 * client asked for (which chose the certificate, weft_tls_context_add_certificate);
 * on a client, the one it sent (ssl_object.server_hostname).
 * Returns: a string owned by the stream, valid until it is given up; NULL when no
 *   name was sent (an address, or no host name), for a plain stream or a stale handle.
 * Suspends: never.
 * Errors: none. */
WEFT_API const char *weft_stream_tls_server_name(weft_stream *s);

/*
 * weft_stream_tls_peer_subject — the subject of the peer's certificate, once checked
 * against our CAs (get_extra_info("peercert")["subject"]), in RFC 2253's form, which
 * lists the parts in the reverse of the certificate's order (a subject made with
 * -subj "/O=weft tests/CN=weft test client" reads "CN=weft test client,O=weft tests"; one
 * made with "/CN=alice/O=Example" reads "O=Example,CN=alice") (UTF-8 as it is; ',', '+',
 * '"', '\', '<', '>', ';' within a value escaped with '\'). A server learns from it
 * who its client is (mutual TLS: a server context given ca_file or ca_dir); a client,
 * whom the server's certificate names.
 * weft_stream_tls_peer_common_name — its common name alone ("weft test client"; the
 *   last CN when there are several, as OpenSSL's host check reads it).
 * Both copy the name into buf, NUL-terminated; buf NULL with size 0 asks only for the
 * length.
 * Returns: the name's length (the NUL not counted).
 * Suspends: never.
 * Errors: -ENOENT: no checked certificate (a server whose context has no CAs asks
 *   for none; a client context with weft_tls_context_insecure_skip_verify checked
 *   nothing, so it names nobody, as Python's getpeercert() returns {} then; for the
 *   common name, a subject without one); -ERANGE: buf is too small (size less than
 *   the length plus one): nothing copied, weft_errmsg() says the size needed;
 *   -EILSEQ: the common name holds a NUL byte; -EINVAL: a plain stream, one whose
 *   handshake has not finished, or buf NULL with size > 0; -ENOMEM; -ESTALE;
 *   WEFT_ESTATE; WEFT_ENOTINLOOP.
 */
WEFT_API ssize_t weft_stream_tls_peer_subject(weft_stream *s, char *buf, size_t size);
WEFT_API ssize_t weft_stream_tls_peer_common_name(weft_stream *s, char *buf, size_t size);

#ifdef __cplusplus
}
#endif

#endif /* WEFT_TLS_H */
