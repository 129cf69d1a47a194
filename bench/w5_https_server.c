/*
 * w5_https_server — workload W5 over TLS: w5_http_server's keep-alive hello-world
 * server on 127.0.0.1:PORT, each connection a TLS stream (weft_server_options.tls,
 * TLS 1.3 at least, OpenSSL's default suites), for bench/https_compare.sh beside
 * nginx and Go's net/http. It ends by itself after LIFETIME seconds.
 *
 * usage: w5_https_server PORT LIFETIME_S CERT_PEM KEY_PEM
 */
#include "bench_common.h"

#include <string.h>

#include "bench_server.h"

static const char RESP[] = "HTTP/1.1 200 OK\r\n"
                           "Content-Type: text/plain\r\n"
                           "Content-Length: 13\r\n"
                           "\r\n"
                           "Hello, World!";

static void *https(weft_stream *s, void *arg)
{
    (void)arg;
    for (;;) {
        const char *head;
        ssize_t n = weft_stream_readuntil(s, "\r\n\r\n", 4, &head);
        if (n <= 0)
            return NULL;
        if (weft_stream_write(s, RESP, sizeof RESP - 1) != 0 || weft_stream_drain(s) != 0)
            return NULL;
    }
}

int main(int argc, char **argv)
{
    const char *prog = "w5_https_server";
    if (argc != 5)
        bench_die(prog, "usage: %s PORT LIFETIME_S CERT_PEM KEY_PEM", prog);
    weft_tls_context *tls = weft_tls_server_context(
        &(weft_tls_options){.cert_file = argv[3], .key_file = argv[4], .min_version = WEFT_TLS_1_3});
    if (!tls)
        bench_die(prog, "%s", weft_errmsg());
    bench_server b = {prog, https, atoi(argv[1]), atof(argv[2]), tls};
    if (weft_run(bench_server_main, &b, NULL) != 0)
        bench_die(prog, "%s", weft_errmsg());
    weft_tls_context_free(tls);
    return 0;
}
