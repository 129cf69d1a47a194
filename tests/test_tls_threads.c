/*
 * test_tls_threads.c — TLS contexts shared by the loops of several threads: four
 * threads each run a loop with its own TLS server, and every loop connects, many
 * times, to every server with one shared client context (its session cache taken
 * by all, so connections resume each other's sessions) while one shared server
 * context serves them all. Every echo must come back and every loop end cleanly.
 * Labelled `threads` so the ThreadSanitizer build runs it; no test framework
 * (Criterion cannot start under ThreadSanitizer). Certificates are made at test
 * time by tls/make_certs.sh.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "weft.h"

#define THREADS 4
#define ROUNDS 8

static weft_tls_context *server_ctx, *client_ctx;
static atomic_int ports[THREADS];
static atomic_int ready;
static atomic_int echoes, resumed, failures;

static void *echo(weft_stream *s, void *arg)
{
    (void)arg;
    const char *line;
    ssize_t n;
    while ((n = weft_stream_readline(s, &line)) > 0) {
        if (weft_stream_write(s, line, (size_t)n) != 0)
            break;
    }
    return NULL;
}

static void *loop_main(void *arg)
{
    int me = (int)(intptr_t)arg;
    weft_server *srv = weft_start_server(echo, NULL, "127.0.0.1", 0, &(weft_server_options){.tls = server_ctx});
    if (!srv) {
        fprintf(stderr, "loop %d: weft_start_server: %s\n", me, weft_errmsg());
        atomic_fetch_add(&failures, 1);
        return NULL;
    }
    atomic_store(&ports[me], weft_server_port(srv));
    atomic_fetch_add(&ready, 1);
    while (atomic_load(&ready) < THREADS)
        weft_sleep(0.001);
    for (int round = 0; round < ROUNDS; round++) {
        for (int peer = 0; peer < THREADS; peer++) {
            weft_stream *s = weft_open_connection("127.0.0.1", atomic_load(&ports[peer]),
                                                  &(weft_connect_options){.tls = client_ctx, .server_hostname = "localhost"});
            if (!s) {
                fprintf(stderr, "loop %d: connect to %d: %s\n", me, peer, weft_errmsg());
                atomic_fetch_add(&failures, 1);
                continue;
            }
            if (weft_stream_tls_resumed(s))
                atomic_fetch_add(&resumed, 1);
            char line[32];
            int len = snprintf(line, sizeof line, "%d-%d-%d\n", me, round, peer);
            const char *back;
            if (weft_stream_write(s, line, (size_t)len) == 0 && weft_stream_readline(s, &back) == len &&
                memcmp(back, line, (size_t)len) == 0)
                atomic_fetch_add(&echoes, 1);
            else
                atomic_fetch_add(&failures, 1);
            weft_stream_close(s);
        }
    }
    /* Every loop has finished connecting before any server goes. */
    atomic_fetch_add(&ready, 1);
    while (atomic_load(&ready) < 2 * THREADS)
        weft_sleep(0.001);
    weft_server_close(srv);
    weft_server_wait_closed(srv);
    return NULL;
}

static void *run_thread(void *arg)
{
    if (weft_run(loop_main, arg, NULL) != 0) {
        fprintf(stderr, "weft_run: %s\n", weft_errmsg());
        atomic_fetch_add(&failures, 1);
    }
    return NULL;
}

int main(void)
{
    char dir[] = "/tmp/weft-tls-threads-XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    char cmd[512], pem[256], key[256], ca[256];
    snprintf(cmd, sizeof cmd, "bash %s %s", WEFT_TLS_CERTS_SCRIPT, dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "test_tls_threads: %s failed\n", cmd);
        return 1;
    }
    snprintf(pem, sizeof pem, "%s/server.pem", dir);
    snprintf(key, sizeof key, "%s/server.key", dir);
    snprintf(ca, sizeof ca, "%s/ca.pem", dir);
    server_ctx = weft_tls_server_context(&(weft_tls_options){.cert_file = pem, .key_file = key});
    client_ctx = weft_tls_client_context(&(weft_tls_options){.ca_file = ca});
    if (!server_ctx || !client_ctx) {
        fprintf(stderr, "test_tls_threads: contexts: %s\n", weft_errmsg());
        return 1;
    }
    pthread_t threads[THREADS];
    for (int i = 0; i < THREADS; i++)
        pthread_create(&threads[i], NULL, run_thread, (void *)(intptr_t)i);
    for (int i = 0; i < THREADS; i++)
        pthread_join(threads[i], NULL);
    weft_tls_context_free(server_ctx);
    weft_tls_context_free(client_ctx);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "test_tls_threads: could not remove %s\n", dir);
    int want = THREADS * ROUNDS * THREADS;
    int ok = atomic_load(&echoes) == want && atomic_load(&failures) == 0 && atomic_load(&resumed) > 0;
    printf("tls_threads: %d of %d echoes, %d resumed, %d failures: %s\n", atomic_load(&echoes), want,
           atomic_load(&resumed), atomic_load(&failures), ok ? "ok" : "FAILED");
    return ok ? 0 : 1;
}
