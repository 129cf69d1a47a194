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

int main(int argc, char **argv)
{
    const char *prog = "w5_https_server";
    if (argc != 5)
        bench_die(prog, "usage: %s PORT LIFETIME_S CERT_PEM KEY_PEM", prog);
    weft_tls_context *tls = weft_tls_server_context(
        &(weft_tls_options){.cert_file = argv[3], .key_file = argv[4], .min_version = WEFT_TLS_1_3});
    if (!tls)
        bench_die(prog, "%s", weft_errmsg());
    bench_server b = {prog, bench_http_hello, atoi(argv[1]), atof(argv[2]), tls};
    if (weft_run(bench_server_main, &b, NULL) != 0)
        bench_die(prog, "%s", weft_errmsg());
    weft_tls_context_free(tls);
    return 0;
}
