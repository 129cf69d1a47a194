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

int main(int argc, char **argv)
{
    return bench_serve(argc, argv, "w5_http_server", bench_http_hello);
}
