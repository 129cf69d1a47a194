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

#include "bench_server.h"

static const char RESP[] = "HTTP/1.1 200 OK\r\n"
                           "Content-Type: text/plain\r\n"
                           "Content-Length: 13\r\n"
                           "\r\n"
                           "Hello, World!";

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

int main(int argc, char **argv)
{
    return bench_serve(argc, argv, "w5_http_server", http);
}
