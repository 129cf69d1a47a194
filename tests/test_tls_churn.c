/*
 * test_tls_churn.c — no memory kept per TLS connection. A weft server and a weft
 * client in one loop make 10,000 sequential connections (handshake, one echo,
 * close): every other one resumes the session of the one before it, the rest are
 * full handshakes (start_tls with a client context that verifies nothing and names
 * no host, which keeps no session). The heap in use (mallinfo2's uordblks), read
 * once the server's side of a connection has ended too, must be the same after the
 * last connection as after the first 1,000, when every cache and free list has
 * reached its size, within BOUND bytes.
 *
 * glibc's per-thread cache (tcache) counts as in use and fills slowly, size class by
 * size class (about 50 KiB over 10,000 connections here, then flat), which would
 * hide a small leak or look like one: the test runs itself again with it off
 * (GLIBC_TUNABLES=glibc.malloc.tcache_count=0), and the heap is then flat to the byte.
 * Sanitizer builds replace malloc (mallinfo2 does not see theirs) and run slower:
 * they make 2,000 connections, and LeakSanitizer checks at exit that nothing is lost.
 *
 *   test_tls_churn [CONNECTIONS [WARMUP]]
 *
 * Certificates are made at test time by tls/make_certs.sh. No test framework, so
 * that it runs alike in every build.
 */
#define _GNU_SOURCE
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "weft.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED 1
#else
#define SANITIZED 0
#endif

#define BOUND (16 * 1024) /* bytes the heap may grow by between warm-up and the end */
#define TCACHE_OFF "glibc.malloc.tcache_count=0"

static int total = SANITIZED ? 2000 : 10000;
static int warmup = SANITIZED ? 200 : 1000;
static weft_tls_context *server_ctx, *client_ctx, *blind_ctx;
static size_t heap_warm, heap_end;
static int done, resumed;

static void *echo(weft_stream *s, void *arg)
{
    (void)arg;
    const char *line;
    ssize_t n = weft_stream_readline(s, &line);
    if (n > 0)
        weft_stream_write(s, line, (size_t)n);
    return NULL; /* weft closes the stream: close_notify, then the socket */
}

/* The heap in use once the server's side of the last connection has ended too (its
 * task closes and frees it after the client's close has returned). */
static size_t heap_settled(void)
{
    weft_sleep(0.02);
    return mallinfo2().uordblks;
}

static void *churn_main(void *arg)
{
    (void)arg;
    weft_server *srv = weft_start_server(echo, NULL, "127.0.0.1", 0, &(weft_server_options){.tls = server_ctx});
    if (!srv)
        return weft_fail(weft_errcode(), "weft_start_server: %s", weft_errmsg());
    int port = weft_server_port(srv);
    for (int i = 0; i < total; i++) {
        bool full = i % 2;
        weft_stream *s = weft_open_connection(
            "127.0.0.1", port, full ? NULL : &(weft_connect_options){.tls = client_ctx, .server_hostname = "localhost"});
        if (!s)
            return weft_fail(weft_errcode(), "connection %d: %s", i, weft_errmsg());
        if (full && weft_start_tls(s, blind_ctx, NULL) != 0) {
            int rc = weft_errcode();
            weft_stream_abort(s);
            return weft_fail(rc, "connection %d: start_tls: %s", i, weft_errmsg());
        }
        resumed += weft_stream_tls_resumed(s);
        char msg[32];
        int len = snprintf(msg, sizeof msg, "ping %d\n", i);
        const char *line = NULL;
        ssize_t n = weft_stream_write(s, msg, (size_t)len);
        if (n == 0)
            n = weft_stream_readline(s, &line);
        if (n != len || memcmp(line, msg, (size_t)len) != 0) {
            weft_stream_abort(s);
            return weft_fail(n < 0 ? (int)n : WEFT_ETLS, "connection %d: the echo: %s", i,
                             n < 0 ? weft_errmsg() : "wrong bytes");
        }
        int rc = weft_stream_close(s);
        if (rc != 0)
            return weft_fail(rc, "connection %d: close: %s", i, weft_errmsg());
        done++;
        if (done == warmup)
            heap_warm = heap_settled();
    }
    heap_end = heap_settled();
    weft_server_close(srv);
    weft_server_wait_closed(srv);
    return NULL;
}

/* Runs this program again with glibc's tcache off, unless it already is. */
static void without_tcache(char **argv)
{
    const char *t = getenv("GLIBC_TUNABLES");
    if (SANITIZED || (t && strstr(t, TCACHE_OFF)))
        return;
    char value[512];
    snprintf(value, sizeof value, "%s%s" TCACHE_OFF, t ? t : "", t && *t ? ":" : "");
    setenv("GLIBC_TUNABLES", value, 1);
    execv("/proc/self/exe", argv);
    perror("test_tls_churn: execv /proc/self/exe (to turn glibc's tcache off)");
    exit(1);
}

int main(int argc, char **argv)
{
    without_tcache(argv);
    if (argc > 1)
        total = atoi(argv[1]);
    if (argc > 2)
        warmup = atoi(argv[2]);
    if (total < 1 || warmup < 1 || warmup > total) {
        fprintf(stderr, "usage: test_tls_churn [CONNECTIONS [WARMUP]] (1 <= WARMUP <= CONNECTIONS)\n");
        return 2;
    }
    char dir[] = "/tmp/weft-tls-churn-XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    char cmd[512], pem[256], key[256], ca[256];
    snprintf(cmd, sizeof cmd, "bash %s %s", WEFT_TLS_CERTS_SCRIPT, dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "test_tls_churn: %s failed\n", cmd);
        return 1;
    }
    snprintf(pem, sizeof pem, "%s/server.pem", dir);
    snprintf(key, sizeof key, "%s/server.key", dir);
    snprintf(ca, sizeof ca, "%s/ca.pem", dir);
    server_ctx = weft_tls_server_context(&(weft_tls_options){.cert_file = pem, .key_file = key});
    client_ctx = weft_tls_client_context(&(weft_tls_options){.ca_file = ca});
    blind_ctx = weft_tls_client_context(&(weft_tls_options){.ca_file = ca});
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "test_tls_churn: could not remove %s\n", dir);
    if (!server_ctx || !client_ctx || !blind_ctx || weft_tls_context_insecure_skip_verify(blind_ctx) != 0) {
        fprintf(stderr, "test_tls_churn: contexts: %s\n", weft_errmsg());
        return 1;
    }
    int rc = weft_run(churn_main, NULL, NULL);
    if (rc != 0)
        fprintf(stderr, "test_tls_churn: %s\n", weft_errmsg());
    weft_tls_context_free(server_ctx);
    weft_tls_context_free(client_ctx);
    weft_tls_context_free(blind_ctx);
    long growth = (long)heap_end - (long)heap_warm;
    int want = (total + 1) / 2 - 1; /* the even ones, but the first */
    bool ok = rc == 0 && done == total && resumed == want && (SANITIZED || growth <= BOUND);
    printf("tls_churn: %d of %d connections, %d resumed (want %d)", done, total, resumed, want);
    if (SANITIZED)
        printf("; the heap is left to LeakSanitizer (mallinfo2 does not see a sanitizer's malloc)");
    else
        printf("; heap in use after %d: %zu bytes, after %d: %zu (%+ld, bound %d)", warmup, heap_warm, total, heap_end,
               growth, BOUND);
    printf(": %s\n", ok ? "ok" : "FAILED");
    fflush(stdout); /* before LeakSanitizer's check at exit, which may abort */
    return ok ? 0 : 1;
}
