/*
 * w5_http_server — workload W5 of ../shared/peers/README.md with weft's streams: a
 * minimal HTTP/1.1 keep-alive server on 127.0.0.1:PORT that finds the end of each
 * request's headers with weft_stream_readuntil("\r\n\r\n") and answers every request
 * with the fixed hello-world response, as the asyncio-streams peer does. (The HTTP
 * showcase in examples/net/ parses requests for real; this is the benchmark's
 * contract.) Pipelined requests are answered in order. It ends by itself after
 * LIFETIME seconds.
 *
 * usage: w5_http_server PORT LIFETIME_S
 */
#include "bench_common.h"

#include <string.h>

#include <weft.h>

static const char RESP[] = "HTTP/1.1 200 OK\r\n"
                           "Content-Type: text/plain\r\n"
                           "Content-Length: 13\r\n"
                           "\r\n"
                           "Hello, World!";

static int port;
static double lifetime;

static void *http(weft_stream *s, void *arg)
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

static void *serve(void *arg)
{
    (void)arg;
    weft_server *srv = weft_start_server(http, NULL, "127.0.0.1", port, &(weft_server_options){.backlog = 1024});
    if (!srv)
        bench_die("w5_http_server", "cannot listen on 127.0.0.1:%d: %s", port, weft_errmsg());
    if (weft_sleep(lifetime) != 0)
        return NULL;
    (void)weft_server_close(srv);
    (void)weft_server_abort_clients(srv);
    if (weft_server_wait_closed(srv) != 0)
        return NULL;
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 3)
        bench_die("w5_http_server", "usage: w5_http_server PORT LIFETIME_S");
    port = atoi(argv[1]);
    lifetime = atof(argv[2]);
    if (weft_run(serve, NULL, NULL) != 0)
        bench_die("w5_http_server", "%s", weft_errmsg());
    return 0;
}
